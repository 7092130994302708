//! Machine-data datasets: named streams of readings with a versioned schema, their stored history
//! (idempotent on machine and time), late labels, rejected records, snapshots and retention.

mod decimal;
pub(crate) mod history;
mod ingest;
pub mod record;
mod retention;
pub mod schema;
mod snapshots;

pub use ingest::{IngestReport, StoredLabels};
pub use record::{Reading, ReadingRef, Readings, Rejection, Value};
pub use retention::PruneReport;
pub use schema::{Column, ColumnKind, Schema};
pub use snapshots::{Snapshot, SnapshotRequest, SnapshotRow, SnapshotVerification};

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use utoipa::ToSchema;

use crate::audit::{self, Actor};
use crate::db::{Store, now_ms};
use crate::error::{Error, Result, is_unique_violation};

/// A dataset with its current schema.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Dataset {
    /// Internal id.
    #[serde(skip)]
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// ms since the Unix epoch.
    pub created_at: i64,
    /// Version of the current schema; new records are stored under it.
    pub schema_version: i64,
    /// The current schema.
    pub schema: Schema,
    /// History older than this many days is dropped by pruning (snapshots kept excepted).
    pub retention_days: Option<i64>,
}

/// One version of a dataset's schema.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SchemaVersion {
    /// Version number, from 1.
    pub version: i64,
    /// ms since the Unix epoch.
    pub created_at: i64,
    /// The columns.
    pub schema: Schema,
}

/// A record refused at ingest, as kept in the dead-letter table.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DeadLetter {
    /// Position in the dead-letter table.
    pub id: i64,
    /// ms since the Unix epoch.
    pub received_at: i64,
    /// Where it came from: `api`, `import`, `labels`, `stream`.
    pub source: String,
    /// Position of the record in its request.
    pub record_index: i64,
    /// The offending field, if one is to blame.
    pub field: Option<String>,
    /// Why it was refused.
    pub reason: String,
    /// The record as received.
    pub raw: String,
}

/// Dataset names: 1-100 characters of letters, digits, `_ - .`, so they are safe in paths.
fn validate_dataset_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "invalid dataset name '{name}': use 1-100 characters from A-Z a-z 0-9 _ - ."
        )))
    }
}

fn parse_schema(json: &str) -> Result<Schema> {
    serde_json::from_str(json)
        .map_err(|e| Error::Integrity(format!("stored schema is unreadable: {e}")))
}

fn dataset_from_row(row: &AnyRow) -> Result<Dataset> {
    Ok(Dataset {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
        schema_version: row.try_get("schema_version")?,
        schema: parse_schema(&row.try_get::<String, _>("definition")?)?,
        retention_days: row.try_get("retention_days")?,
    })
}

/// Loads a dataset with its current schema.
pub(crate) async fn load_dataset(conn: &mut AnyConnection, name: &str) -> Result<Dataset> {
    let row = sqlx::query(
        "SELECT d.id, d.name, d.created_at, d.schema_version, d.retention_days, s.definition \
         FROM datasets d JOIN dataset_schemas s ON s.dataset_id = d.id AND s.version = d.schema_version \
         WHERE d.name = $1",
    )
    .bind(name)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| Error::not_found(format!("No dataset named '{name}'")))?;
    dataset_from_row(&row)
}

/// The schema of one version of a dataset.
pub(crate) async fn load_schema(
    conn: &mut AnyConnection,
    dataset_id: i64,
    version: i64,
) -> Result<Schema> {
    let json: String = sqlx::query(
        "SELECT definition FROM dataset_schemas WHERE dataset_id = $1 AND version = $2",
    )
    .bind(dataset_id)
    .bind(version)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| Error::not_found(format!("No schema version {version}")))?
    .try_get("definition")?;
    parse_schema(&json)
}

impl Store {
    /// Creates a dataset with its first schema version.
    #[tracing::instrument(skip(self, actor, schema))]
    pub async fn create_dataset(
        &self,
        actor: &Actor,
        name: &str,
        schema: &Schema,
        retention_days: Option<i64>,
    ) -> Result<Dataset> {
        validate_dataset_name(name)?;
        schema.validate()?;
        if let Some(days) = retention_days
            && days < 1
        {
            return Err(Error::invalid("retention_days must be at least 1"));
        }
        let now = now_ms();
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        let id: i64 = sqlx::query(
            "INSERT INTO datasets (name, created_at, schema_version, retention_days) VALUES ($1, $2, 1, $3) RETURNING id",
        )
        .bind(name)
        .bind(now)
        .bind(retention_days)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::AlreadyExists(format!("A dataset named '{name}' already exists"))
            } else {
                e.into()
            }
        })?
        .try_get("id")?;
        sqlx::query("INSERT INTO dataset_schemas (dataset_id, version, definition, created_at) VALUES ($1, 1, $2, $3)")
            .bind(id)
            .bind(serde_json::to_string(schema).expect("schemas serialize"))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        audit::record(
            &mut tx,
            actor,
            "datasets.create",
            &format!("dataset:{name}"),
            None,
        )
        .await?;
        let dataset = load_dataset(&mut tx, name).await?;
        tx.commit().await?;
        Ok(dataset)
    }

    /// The dataset named `name`, with its current schema.
    pub async fn get_dataset(&self, name: &str) -> Result<Dataset> {
        let mut conn = self.read.acquire().await?;
        load_dataset(&mut conn, name).await
    }

    /// All datasets, by name.
    pub async fn list_datasets(&self) -> Result<Vec<Dataset>> {
        let rows = sqlx::query(
            "SELECT d.id, d.name, d.created_at, d.schema_version, d.retention_days, s.definition \
             FROM datasets d JOIN dataset_schemas s ON s.dataset_id = d.id AND s.version = d.schema_version \
             ORDER BY d.name",
        )
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(dataset_from_row).collect()
    }

    /// Every schema version of a dataset, oldest first.
    pub async fn schema_versions(&self, name: &str) -> Result<Vec<SchemaVersion>> {
        let mut conn = self.read.acquire().await?;
        let dataset = load_dataset(&mut conn, name).await?;
        let rows = sqlx::query(
            "SELECT version, created_at, definition FROM dataset_schemas WHERE dataset_id = $1 ORDER BY version",
        )
        .bind(dataset.id)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SchemaVersion {
                    version: r.try_get("version")?,
                    created_at: r.try_get("created_at")?,
                    schema: parse_schema(&r.try_get::<String, _>("definition")?)?,
                })
            })
            .collect()
    }

    /// Makes `schema` the dataset's current schema: a new version if it differs from the current
    /// one (rows stored so far keep their version), no change if it is the same.
    #[tracing::instrument(skip(self, actor, schema))]
    pub async fn update_dataset_schema(
        &self,
        actor: &Actor,
        name: &str,
        schema: &Schema,
    ) -> Result<Dataset> {
        schema.validate()?;
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        let dataset = load_dataset(&mut tx, name).await?;
        if &dataset.schema == schema {
            return Ok(dataset);
        }
        let version = dataset.schema_version + 1;
        sqlx::query("INSERT INTO dataset_schemas (dataset_id, version, definition, created_at) VALUES ($1, $2, $3, $4)")
            .bind(dataset.id)
            .bind(version)
            .bind(serde_json::to_string(schema).expect("schemas serialize"))
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE datasets SET schema_version = $1 WHERE id = $2")
            .bind(version)
            .bind(dataset.id)
            .execute(&mut *tx)
            .await?;
        audit::record(
            &mut tx,
            actor,
            "datasets.update_schema",
            &format!("dataset:{name}"),
            Some(&format!("version {version}")),
        )
        .await?;
        let dataset = load_dataset(&mut tx, name).await?;
        tx.commit().await?;
        Ok(dataset)
    }

    /// Sets (or clears) how many days of history a dataset keeps.
    #[tracing::instrument(skip(self, actor))]
    pub async fn set_dataset_retention(
        &self,
        actor: &Actor,
        name: &str,
        days: Option<i64>,
    ) -> Result<Dataset> {
        if let Some(d) = days
            && d < 1
        {
            return Err(Error::invalid("retention_days must be at least 1"));
        }
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        let dataset = load_dataset(&mut tx, name).await?;
        sqlx::query("UPDATE datasets SET retention_days = $1 WHERE id = $2")
            .bind(days)
            .bind(dataset.id)
            .execute(&mut *tx)
            .await?;
        audit::record(
            &mut tx,
            actor,
            "datasets.set_retention",
            &format!("dataset:{name}"),
            None,
        )
        .await?;
        let dataset = load_dataset(&mut tx, name).await?;
        tx.commit().await?;
        Ok(dataset)
    }

    /// The newest dead letters of a dataset, optionally only those older than entry `before`.
    pub async fn dead_letters(
        &self,
        name: &str,
        limit: i64,
        before: Option<i64>,
    ) -> Result<Vec<DeadLetter>> {
        let mut conn = self.read.acquire().await?;
        let dataset = load_dataset(&mut conn, name).await?;
        let rows = sqlx::query(
            "SELECT id, received_at, source, record_index, field, reason, raw FROM dead_letters \
             WHERE dataset_id = $1 AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
        )
        .bind(dataset.id)
        .bind(before)
        .bind(limit.clamp(1, 1000))
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DeadLetter {
                    id: r.try_get("id")?,
                    received_at: r.try_get("received_at")?,
                    source: r.try_get("source")?,
                    record_index: r.try_get("record_index")?,
                    field: r.try_get("field")?,
                    reason: r.try_get("reason")?,
                    raw: r.try_get("raw")?,
                })
            })
            .collect()
    }

    /// Counts of a dataset's stored readings and labels.
    pub async fn dataset_counts(&self, name: &str) -> Result<(i64, i64)> {
        let mut conn = self.read.acquire().await?;
        let dataset = load_dataset(&mut conn, name).await?;
        let records = history::total(&mut conn, dataset.id).await?;
        let labels: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM record_labels WHERE dataset_id = $1")
                .bind(dataset.id)
                .fetch_one(&mut *conn)
                .await?
                .try_get("n")?;
        Ok((records, labels))
    }
}
