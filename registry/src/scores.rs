//! The score log: every score the stream scorer made, per dataset in increasing positions. A
//! record's scores are appended in the transaction that stores the record (see
//! [`Store::ingest_records_scored`]), so "which model scored this record?" always has an answer,
//! and a subscriber can resume from a position.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use utoipa::ToSchema;

use crate::db::Store;
use crate::error::{Error, Result};
use crate::sql::Sql;

/// Scores per INSERT statement: 5 values each stays under SQLite's 32,766 bound values.
const SCORES_PER_STATEMENT: usize = 6000;
/// Most scores read in one page.
pub const MAX_PAGE: i64 = 10_000;

/// Which alias made a score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ScoreRole {
    /// The champion: its scores go to the stream's consumers.
    Champion,
    /// The challenger (shadow mode): stored, never sent to consumers.
    Challenger,
}

impl ScoreRole {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ScoreRole::Champion => "champion",
            ScoreRole::Challenger => "challenger",
        }
    }

    fn parse(s: &str) -> Result<ScoreRole> {
        match s {
            "champion" => Ok(ScoreRole::Champion),
            "challenger" => Ok(ScoreRole::Challenger),
            other => Err(Error::Integrity(format!("unknown score role '{other}'"))),
        }
    }
}

/// A score to append to the log.
#[derive(Debug, Clone, PartialEq)]
pub struct NewScore {
    /// The record's machine.
    pub machine_id: String,
    /// The record's event time, ms since the Unix epoch.
    pub ts: i64,
    /// Registered model.
    pub model: String,
    /// The version that scored.
    pub version: i64,
    /// Champion or challenger.
    pub role: ScoreRole,
    /// The predicted number (regression) or class label.
    pub prediction: serde_json::Value,
    /// Class probabilities by label (classifiers only).
    pub probabilities: Option<serde_json::Map<String, serde_json::Value>>,
    /// When the record was received, ms since the Unix epoch.
    pub received_at: i64,
}

/// A score as stored in the log.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct StoredScore {
    /// Position in the dataset's score log (increasing in commit order; not contiguous for
    /// consumers, as challenger scores take positions too).
    pub position: i64,
    /// The record's machine.
    pub machine_id: String,
    /// The record's event time, ms since the Unix epoch.
    pub ts: i64,
    /// Registered model.
    pub model: String,
    /// The version that scored.
    pub version: i64,
    /// `champion` or `challenger`.
    pub role: ScoreRole,
    /// The predicted number (regression) or class label.
    #[schema(value_type = Object)]
    pub prediction: serde_json::Value,
    /// Class probabilities by label (classifiers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub probabilities: Option<serde_json::Map<String, serde_json::Value>>,
    /// When the record was received, ms since the Unix epoch.
    pub received_at: i64,
}

const COLUMNS: &str =
    "position, machine_id, ts, model, version, role, prediction, probabilities, received_at";

fn score_from_row(row: &AnyRow) -> Result<StoredScore> {
    let unreadable = |e: serde_json::Error| Error::Integrity(format!("stored score: {e}"));
    let prediction: String = row.try_get("prediction")?;
    let probabilities: Option<String> = row.try_get("probabilities")?;
    Ok(StoredScore {
        position: row.try_get("position")?,
        machine_id: row.try_get("machine_id")?,
        ts: row.try_get("ts")?,
        model: row.try_get("model")?,
        version: row.try_get("version")?,
        role: ScoreRole::parse(&row.try_get::<String, _>("role")?)?,
        prediction: serde_json::from_str(&prediction).map_err(unreadable)?,
        probabilities: probabilities
            .map(|p| serde_json::from_str(&p))
            .transpose()
            .map_err(unreadable)?,
        received_at: row.try_get("received_at")?,
    })
}

/// Appends `scores` to the log of dataset `dataset_id`, in order, inside the caller's transaction
/// (which holds the dataset's row lock, so positions are taken in commit order).
pub(crate) async fn append_scores(
    tx: &mut crate::sql::Tx<'_>,
    dataset_id: i64,
    scores: Vec<NewScore>,
) -> Result<Vec<StoredScore>> {
    if scores.is_empty() {
        return Ok(Vec::new());
    }
    let n = scores.len() as i64;
    let first = tx.reserve("next_score_position", dataset_id, n).await?;
    let stored: Vec<StoredScore> = scores
        .into_iter()
        .enumerate()
        .map(|(i, s)| StoredScore {
            position: first + i as i64,
            machine_id: s.machine_id,
            ts: s.ts,
            model: s.model,
            version: s.version,
            role: s.role,
            prediction: s.prediction,
            probabilities: s.probabilities,
            received_at: s.received_at,
        })
        .collect();
    // What a model's scores of a batch share is bound once per statement, not per row.
    fn shared(s: &StoredScore) -> (&str, i64, ScoreRole, i64) {
        (s.model.as_str(), s.version, s.role, s.received_at)
    }
    for group in stored.chunk_by(|a, b| shared(a) == shared(b)) {
        let (model, version, role, received_at) = shared(&group[0]);
        for chunk in group.chunks(SCORES_PER_STATEMENT) {
            let mut sql = Sql::new(
                "INSERT INTO scores (dataset_id, position, machine_id, ts, model, version, role, \
                 prediction, probabilities, received_at) SELECT ",
            );
            sql.bind(dataset_id)
                .push(", column1, column2, column3, ")
                .bind(model)
                .push(", ")
                .bind(version)
                .push(", ")
                .bind(role.as_str())
                .push(", column4, column5, ")
                .bind(received_at)
                .push(" FROM (VALUES ");
            for (i, s) in chunk.iter().enumerate() {
                let probabilities = s
                    .probabilities
                    .as_ref()
                    .map(|p| serde_json::to_string(p).expect("a JSON map serializes"));
                sql.push(if i == 0 { "(" } else { ", (" })
                    .bind(s.position)
                    .push(", ")
                    .bind(s.machine_id.as_str())
                    .push(", ")
                    .bind(s.ts)
                    .push(", ")
                    .bind(s.prediction.to_string())
                    .push(", ")
                    .bind(probabilities.as_deref())
                    .push(")");
            }
            sql.push(") AS v");
            tx.execute(sql).await?;
        }
    }
    Ok(stored)
}

impl Store {
    /// Up to `limit` scores of the dataset named `dataset` after position `after`, in position
    /// order; only those of `role` when given.
    #[tracing::instrument(skip(self))]
    pub async fn scores_after(
        &self,
        dataset: &str,
        after: i64,
        limit: i64,
        role: Option<ScoreRole>,
    ) -> Result<Vec<StoredScore>> {
        let limit = limit.clamp(1, MAX_PAGE);
        let mut conn = self.read.acquire().await?;
        let id = dataset_id(&mut conn, dataset).await?;
        let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM scores WHERE dataset_id = "));
        sql.bind(id).push(" AND position > ").bind(after);
        if let Some(role) = role {
            sql.push(" AND role = ").bind(role.as_str());
        }
        sql.push(" ORDER BY position LIMIT ").bind(limit);
        sql.fetch_all(&mut conn)
            .await?
            .iter()
            .map(score_from_row)
            .collect()
    }

    /// Every score of the record (machine_id, ts) of the dataset named `dataset`, champion and
    /// challenger, in position order: which model versions scored it.
    #[tracing::instrument(skip(self))]
    pub async fn scores_of_record(
        &self,
        dataset: &str,
        machine_id: &str,
        ts: i64,
    ) -> Result<Vec<StoredScore>> {
        let mut conn = self.read.acquire().await?;
        let id = dataset_id(&mut conn, dataset).await?;
        let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM scores WHERE dataset_id = "));
        sql.bind(id)
            .push(" AND machine_id = ")
            .bind(machine_id)
            .push(" AND ts = ")
            .bind(ts)
            .push(" ORDER BY position");
        sql.fetch_all(&mut conn)
            .await?
            .iter()
            .map(score_from_row)
            .collect()
    }

    /// The champion scores of the records with these (machine_id, ts) keys in `dataset`, by
    /// position (records never scored have none).
    pub async fn champion_scores_of(
        &self,
        dataset: &str,
        keys: &[(String, i64)],
    ) -> Result<Vec<StoredScore>> {
        let mut conn = self.read.acquire().await?;
        let id = dataset_id(&mut conn, dataset).await?;
        let mut out = Vec::new();
        for chunk in keys.chunks(2000) {
            let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM scores WHERE dataset_id = "));
            sql.bind(id)
                .push(" AND role = 'champion' AND (machine_id, ts) IN (VALUES ");
            for (i, (machine_id, ts)) in chunk.iter().enumerate() {
                sql.push(if i == 0 { "(" } else { ", (" });
                sql.bind(machine_id.as_str()).push(", ").bind(*ts).push(")");
            }
            sql.push(")");
            for row in sql.fetch_all(&mut conn).await? {
                out.push(score_from_row(&row)?);
            }
        }
        out.sort_by_key(|s| s.position);
        Ok(out)
    }

    /// The registered models whose champions score the stream of the dataset named `dataset`:
    /// those of its enabled training specs, by name.
    #[tracing::instrument(skip(self))]
    pub async fn models_of_dataset(&self, dataset: &str) -> Result<Vec<String>> {
        let mut conn = self.read.acquire().await?;
        let rows = sqlx::query(
            "SELECT DISTINCT model_name FROM training_specs WHERE dataset = $1 AND enabled <> 0 \
             ORDER BY model_name",
        )
        .bind(dataset)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>("model_name")?))
            .collect()
    }
}

async fn dataset_id(conn: &mut AnyConnection, name: &str) -> Result<i64> {
    Ok(sqlx::query("SELECT id FROM datasets WHERE name = $1")
        .bind(name)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| Error::not_found(format!("No dataset named '{name}'")))?
        .try_get("id")?)
}
