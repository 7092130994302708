//! Experiments: named groups of runs. Experiment `0` ("Default") always exists.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use utoipa::ToSchema;

use crate::audit::{self, Actor};
use crate::db::{Store, now_ms};
use crate::error::{Error, Result, is_unique_violation};
use crate::sql::{Sql, Tx};
use crate::validate;

/// Whether a resource is live or soft-deleted (MLflow's lifecycle stage).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LifecycleStage {
    /// Live.
    Active,
    /// Soft-deleted: hidden from default listings, restorable.
    Deleted,
}

impl LifecycleStage {
    pub(crate) fn parse(s: &str) -> Self {
        if s == "deleted" {
            LifecycleStage::Deleted
        } else {
            LifecycleStage::Active
        }
    }
}

/// Which lifecycle stages a listing includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ViewType {
    /// Only live resources (the default).
    #[default]
    ActiveOnly,
    /// Only soft-deleted resources.
    DeletedOnly,
    /// Both.
    All,
}

impl ViewType {
    /// The lifecycle stages this view includes, for an `IN (...)` clause.
    pub(crate) fn stages(self) -> &'static [&'static str] {
        match self {
            ViewType::ActiveOnly => &["active"],
            ViewType::DeletedOnly => &["deleted"],
            ViewType::All => &["active", "deleted"],
        }
    }
}

/// A key/value tag on an experiment, run, model or version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Tag {
    /// Tag key.
    pub key: String,
    /// Tag value.
    pub value: String,
}

/// An experiment.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Experiment {
    /// Decimal id, as a string (MLflow's convention).
    pub experiment_id: String,
    /// Unique name.
    pub name: String,
    /// Where the runs' artifacts live, e.g. `mlflow-artifacts:/3`.
    pub artifact_location: String,
    /// Live or soft-deleted.
    pub lifecycle_stage: LifecycleStage,
    /// ms since the Unix epoch.
    pub creation_time: i64,
    /// ms since the Unix epoch.
    pub last_update_time: i64,
    /// The experiment's tags.
    pub tags: Vec<Tag>,
}

/// The id of the experiment that always exists.
pub const DEFAULT_EXPERIMENT_ID: &str = "0";

/// Parses an experiment id; anything that is not a decimal integer names no experiment.
pub(crate) fn parse_experiment_id(id: &str) -> Result<i64> {
    id.parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| no_experiment(id))
}

fn no_experiment(id: &str) -> Error {
    Error::not_found(format!("No Experiment with id={id} exists"))
}

/// Refuses a write into the experiment `id` unless it is active.
fn check_active(id: &str, stage: LifecycleStage) -> Result<()> {
    if stage != LifecycleStage::Active {
        return Err(Error::invalid(format!(
            "The experiment {id} must be in the 'active' state. Current state is deleted."
        )));
    }
    Ok(())
}

/// Where an experiment created without an artifact location keeps its runs' artifacts.
fn default_artifact_location(id: i64) -> String {
    format!("mlflow-artifacts:/{id}")
}

pub(crate) fn experiment_from_row(row: &AnyRow, tags: Vec<Tag>) -> Result<Experiment> {
    let id: i64 = row.try_get("experiment_id")?;
    let location: Option<String> = row.try_get("artifact_location")?;
    Ok(Experiment {
        experiment_id: id.to_string(),
        name: row.try_get("name")?,
        artifact_location: location.unwrap_or_else(|| default_artifact_location(id)),
        lifecycle_stage: LifecycleStage::parse(&row.try_get::<String, _>("lifecycle_stage")?),
        creation_time: row.try_get("creation_time")?,
        last_update_time: row.try_get("last_update_time")?,
        tags,
    })
}

async fn experiment_tags(conn: &mut AnyConnection, id: i64) -> Result<Vec<Tag>> {
    let rows =
        sqlx::query("SELECT key, value FROM experiment_tags WHERE experiment_id = $1 ORDER BY key")
            .bind(id)
            .fetch_all(conn)
            .await?;
    rows.iter()
        .map(|r| {
            Ok(Tag {
                key: r.try_get("key")?,
                value: r.try_get("value")?,
            })
        })
        .collect()
}

/// Loads an experiment by numeric id on `conn` (inside or outside a transaction).
pub(crate) async fn load_experiment(
    conn: &mut AnyConnection,
    id: i64,
) -> Result<Option<Experiment>> {
    let row = sqlx::query(
        "SELECT experiment_id, name, artifact_location, lifecycle_stage, creation_time, \
         last_update_time FROM experiments WHERE experiment_id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        None => Ok(None),
        Some(row) => {
            let tags = experiment_tags(conn, id).await?;
            Ok(Some(experiment_from_row(&row, tags)?))
        }
    }
}

/// Loads an experiment that must exist and be active (for creating runs in it, renaming it...).
pub(crate) async fn active_experiment(conn: &mut AnyConnection, id: &str) -> Result<Experiment> {
    let exp = load_experiment(conn, parse_experiment_id(id)?)
        .await?
        .ok_or_else(|| no_experiment(id))?;
    check_active(id, exp.lifecycle_stage)?;
    Ok(exp)
}

/// An experiment that must exist and be active, as [`active_experiment`], for a new run in it:
/// its numeric id and artifact location.
pub(crate) async fn active_experiment_location(tx: &mut Tx<'_>, id: &str) -> Result<(i64, String)> {
    let experiment_id = parse_experiment_id(id)?;
    let mut sql = Sql::new(
        "SELECT artifact_location, lifecycle_stage FROM experiments WHERE experiment_id = ",
    );
    sql.bind(experiment_id);
    let (location, stage) = tx
        .fetch_all::<(Option<String>, String)>(sql)
        .await?
        .pop()
        .ok_or_else(|| no_experiment(id))?;
    check_active(id, LifecycleStage::parse(&stage))?;
    Ok((
        experiment_id,
        location.unwrap_or_else(|| default_artifact_location(experiment_id)),
    ))
}

fn validate_tags(tags: &[Tag]) -> Result<()> {
    for t in tags {
        validate::key("tag", &t.key)?;
        validate::value_length(
            "tag",
            &t.key,
            &t.value,
            validate::MAX_EXPERIMENT_TAG_VALUE_LENGTH,
        )?;
    }
    Ok(())
}

impl Store {
    /// Creates an experiment. Names are unique, deleted experiments included.
    #[tracing::instrument(skip(self, actor, tags))]
    pub async fn create_experiment(
        &self,
        actor: &Actor,
        name: &str,
        artifact_location: Option<&str>,
        tags: &[Tag],
    ) -> Result<Experiment> {
        validate::name("experiment", name)?;
        validate_tags(tags)?;
        let now = now_ms();
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        let id: i64 = sqlx::query(
            "INSERT INTO experiments (name, artifact_location, lifecycle_stage, creation_time, last_update_time) \
             VALUES ($1, $2, 'active', $3, $3) RETURNING experiment_id",
        )
        .bind(name)
        .bind(artifact_location.filter(|s| !s.is_empty()))
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::AlreadyExists(format!("Experiment(name={name}) already exists."))
            } else {
                e.into()
            }
        })?
        .try_get("experiment_id")?;
        for t in tags {
            sqlx::query(
                "INSERT INTO experiment_tags (experiment_id, key, value) VALUES ($1, $2, $3) \
                         ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value",
            )
            .bind(id)
            .bind(&t.key)
            .bind(&t.value)
            .execute(&mut *tx)
            .await?;
        }
        let exp = load_experiment(&mut tx, id).await?.expect("inserted above");
        audit::record(
            &mut tx,
            actor,
            "experiments.create",
            &format!("experiment:{id}"),
            Some(name),
        )
        .await?;
        tx.commit().await?;
        Ok(exp)
    }

    /// The experiment with this id, deleted or not.
    pub async fn get_experiment(&self, id: &str) -> Result<Experiment> {
        let mut conn = self.read.acquire().await?;
        load_experiment(&mut conn, parse_experiment_id(id)?)
            .await?
            .ok_or_else(|| Error::not_found(format!("No Experiment with id={id} exists")))
    }

    /// The experiment with this name, deleted or not.
    pub async fn get_experiment_by_name(&self, name: &str) -> Result<Experiment> {
        let mut conn = self.read.acquire().await?;
        let id: Option<i64> = sqlx::query("SELECT experiment_id FROM experiments WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?
            .map(|r| r.try_get("experiment_id"))
            .transpose()?;
        let id = id.ok_or_else(|| {
            Error::not_found(format!("Could not find experiment with name '{name}'"))
        })?;
        Ok(load_experiment(&mut conn, id)
            .await?
            .expect("found by name"))
    }

    /// Renames an active experiment.
    #[tracing::instrument(skip(self, actor))]
    pub async fn rename_experiment(
        &self,
        actor: &Actor,
        id: &str,
        new_name: &str,
    ) -> Result<Experiment> {
        validate::name("experiment", new_name)?;
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        let exp = active_experiment(&mut tx, id).await?;
        let numeric = parse_experiment_id(id)?;
        sqlx::query(
            "UPDATE experiments SET name = $1, last_update_time = $2 WHERE experiment_id = $3",
        )
        .bind(new_name)
        .bind(now_ms())
        .bind(numeric)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::AlreadyExists(format!("Experiment(name={new_name}) already exists."))
            } else {
                e.into()
            }
        })?;
        audit::record(
            &mut tx,
            actor,
            "experiments.rename",
            &format!("experiment:{id}"),
            Some(&format!("{} -> {new_name}", exp.name)),
        )
        .await?;
        let exp = load_experiment(&mut tx, numeric).await?.expect("exists");
        tx.commit().await?;
        Ok(exp)
    }

    /// Soft-deletes an experiment and its runs. The default experiment cannot be deleted.
    #[tracing::instrument(skip(self, actor))]
    pub async fn delete_experiment(&self, actor: &Actor, id: &str) -> Result<()> {
        // Compare the parsed id: "00" and "+0" name the default experiment too.
        let numeric = parse_experiment_id(id)?;
        if numeric.to_string() == DEFAULT_EXPERIMENT_ID {
            return Err(Error::invalid("Cannot delete the default experiment '0'."));
        }
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        active_experiment(&mut tx, id).await?;
        let now = now_ms();
        sqlx::query("UPDATE experiments SET lifecycle_stage = 'deleted', last_update_time = $1 WHERE experiment_id = $2")
            .bind(now)
            .bind(numeric)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE runs SET lifecycle_stage = 'deleted', deleted_time = $1 \
                     WHERE experiment_id = $2 AND lifecycle_stage = 'active'",
        )
        .bind(now)
        .bind(numeric)
        .execute(&mut *tx)
        .await?;
        audit::record(
            &mut tx,
            actor,
            "experiments.delete",
            &format!("experiment:{id}"),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Restores a soft-deleted experiment and its runs.
    #[tracing::instrument(skip(self, actor))]
    pub async fn restore_experiment(&self, actor: &Actor, id: &str) -> Result<Experiment> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        let numeric = parse_experiment_id(id)?;
        let exp = load_experiment(&mut tx, numeric)
            .await?
            .ok_or_else(|| Error::not_found(format!("No Experiment with id={id} exists")))?;
        if exp.lifecycle_stage != LifecycleStage::Deleted {
            return Err(Error::invalid(format!(
                "Cannot restore an active experiment (id={id})."
            )));
        }
        sqlx::query("UPDATE experiments SET lifecycle_stage = 'active', last_update_time = $1 WHERE experiment_id = $2")
            .bind(now_ms())
            .bind(numeric)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE runs SET lifecycle_stage = 'active', deleted_time = NULL WHERE experiment_id = $1")
            .bind(numeric)
            .execute(&mut *tx)
            .await?;
        audit::record(
            &mut tx,
            actor,
            "experiments.restore",
            &format!("experiment:{id}"),
            None,
        )
        .await?;
        let exp = load_experiment(&mut tx, numeric).await?.expect("exists");
        tx.commit().await?;
        Ok(exp)
    }

    /// Sets (or replaces) a tag on an active experiment.
    #[tracing::instrument(skip(self, actor, value))]
    pub async fn set_experiment_tag(
        &self,
        actor: &Actor,
        id: &str,
        key: &str,
        value: &str,
    ) -> Result<()> {
        let tag = [Tag {
            key: key.to_string(),
            value: value.to_string(),
        }];
        validate_tags(&tag)?;
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        active_experiment(&mut tx, id).await?;
        sqlx::query(
            "INSERT INTO experiment_tags (experiment_id, key, value) VALUES ($1, $2, $3) \
                     ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value",
        )
        .bind(parse_experiment_id(id)?)
        .bind(key)
        .bind(value)
        .execute(&mut *tx)
        .await?;
        audit::record(
            &mut tx,
            actor,
            "experiments.set_tag",
            &format!("experiment:{id}"),
            Some(key),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a tag from an active experiment.
    #[tracing::instrument(skip(self, actor))]
    pub async fn delete_experiment_tag(&self, actor: &Actor, id: &str, key: &str) -> Result<()> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        active_experiment(&mut tx, id).await?;
        let deleted =
            sqlx::query("DELETE FROM experiment_tags WHERE experiment_id = $1 AND key = $2")
                .bind(parse_experiment_id(id)?)
                .bind(key)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if deleted == 0 {
            return Err(Error::not_found(format!(
                "No tag with name: {key} in experiment with id {id}"
            )));
        }
        audit::record(
            &mut tx,
            actor,
            "experiments.delete_tag",
            &format!("experiment:{id}"),
            Some(key),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
