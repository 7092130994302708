//! The model registry: registered models, their numbered versions, tags, and aliases such as
//! `champion` (one version per alias per model).

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use utoipa::ToSchema;

use crate::audit::{self, Actor};
use crate::db::{Store, now_ms};
use crate::error::{Error, Result, is_unique_violation};
use crate::experiments::Tag;
use crate::validate;

/// A version's registration status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ModelVersionStatus {
    /// Still being registered.
    PendingRegistration,
    /// Registration failed.
    FailedRegistration,
    /// Usable.
    Ready,
}

impl ModelVersionStatus {
    fn parse(s: &str) -> Self {
        match s {
            "PENDING_REGISTRATION" => ModelVersionStatus::PendingRegistration,
            "FAILED_REGISTRATION" => ModelVersionStatus::FailedRegistration,
            _ => ModelVersionStatus::Ready,
        }
    }
}

/// An alias and the version it points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ModelAlias {
    /// Alias name, e.g. `champion`.
    pub alias: String,
    /// The version it points at.
    pub version: i64,
}

/// A registered model.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RegisteredModel {
    /// Unique name.
    pub name: String,
    /// ms since the Unix epoch.
    pub creation_timestamp: i64,
    /// ms since the Unix epoch.
    pub last_updated_timestamp: i64,
    /// Free text.
    pub description: Option<String>,
    /// The model's tags.
    pub tags: Vec<Tag>,
    /// The model's aliases.
    pub aliases: Vec<ModelAlias>,
    /// The newest version, if any.
    pub latest_version: Option<i64>,
}

/// A numbered version of a registered model.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ModelVersion {
    /// The registered model's name.
    pub name: String,
    /// Version number, from 1; never reused.
    pub version: i64,
    /// ms since the Unix epoch.
    pub creation_timestamp: i64,
    /// ms since the Unix epoch.
    pub last_updated_timestamp: i64,
    /// Free text.
    pub description: Option<String>,
    /// Who registered it.
    pub user_id: Option<String>,
    /// MLflow's (deprecated) stage: `None`, `Staging`, `Production`, `Archived`.
    pub current_stage: String,
    /// Where the model's files are, e.g. `models:/m-…` or `runs:/<run>/model`.
    pub source: String,
    /// The run that produced it, if known.
    pub run_id: Option<String>,
    /// Link to the run, if given.
    pub run_link: Option<String>,
    /// Registration status.
    pub status: ModelVersionStatus,
    /// Detail on the status.
    pub status_message: Option<String>,
    /// The version's tags.
    pub tags: Vec<Tag>,
    /// Aliases pointing at this version.
    pub aliases: Vec<String>,
}

/// What a new model version is registered with.
#[derive(Debug, Clone, Default)]
pub struct NewModelVersion {
    /// Where the model's files are.
    pub source: String,
    /// The run that produced it.
    pub run_id: Option<String>,
    /// Link to the run.
    pub run_link: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Initial tags.
    pub tags: Vec<Tag>,
}

/// Stages MLflow's deprecated stage transitions accept.
pub const STAGES: [&str; 4] = ["None", "Staging", "Production", "Archived"];

fn not_found_model(name: &str) -> Error {
    Error::not_found(format!("Registered Model with name={name} not found"))
}

fn not_found_version(name: &str, version: i64) -> Error {
    Error::not_found(format!(
        "Model Version (name={name}, version={version}) not found"
    ))
}

fn validate_tags(tags: &[Tag]) -> Result<()> {
    for t in tags {
        validate::key("tag", &t.key)?;
        validate::value_length(
            "tag",
            &t.key,
            &t.value,
            validate::MAX_REGISTRY_TAG_VALUE_LENGTH,
        )?;
    }
    Ok(())
}

/// Alias names: 1-255 characters of letters, digits, `_` and `-`, not `latest` and not of the
/// form `v<number>`, which MLflow reserves for version references.
pub fn validate_alias(alias: &str) -> Result<()> {
    let well_formed = !alias.is_empty()
        && alias.len() <= 255
        && alias
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !well_formed {
        return Err(Error::invalid(format!(
            "Invalid alias name '{alias}': use 1-255 characters from A-Z a-z 0-9 _ -"
        )));
    }
    let lower = alias.to_ascii_lowercase();
    let version_like =
        lower.len() > 1 && lower.starts_with('v') && lower[1..].chars().all(|c| c.is_ascii_digit());
    if lower == "latest" || version_like {
        return Err(Error::invalid(format!(
            "Invalid alias name '{alias}': 'latest' and 'v<number>' are reserved"
        )));
    }
    Ok(())
}

async fn model_tags(conn: &mut AnyConnection, name: &str) -> Result<Vec<Tag>> {
    sqlx::query("SELECT key, value FROM registered_model_tags WHERE name = $1 ORDER BY key")
        .bind(name)
        .fetch_all(conn)
        .await?
        .iter()
        .map(|r| {
            Ok(Tag {
                key: r.try_get("key")?,
                value: r.try_get("value")?,
            })
        })
        .collect()
}

pub(crate) async fn load_model(conn: &mut AnyConnection, name: &str) -> Result<RegisteredModel> {
    let row = sqlx::query(
        "SELECT name, creation_time, last_updated_time, description, \
         (SELECT MAX(version) FROM model_versions v WHERE v.name = m.name) AS latest_version \
         FROM registered_models m WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| not_found_model(name))?;
    let tags = model_tags(conn, name).await?;
    let aliases = sqlx::query(
        "SELECT alias, version FROM registered_model_aliases WHERE name = $1 ORDER BY alias",
    )
    .bind(name)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| {
        Ok(ModelAlias {
            alias: r.try_get("alias")?,
            version: r.try_get("version")?,
        })
    })
    .collect::<Result<_>>()?;
    model_from_row(&row, tags, aliases)
}

pub(crate) fn model_from_row(
    row: &AnyRow,
    tags: Vec<Tag>,
    aliases: Vec<ModelAlias>,
) -> Result<RegisteredModel> {
    Ok(RegisteredModel {
        name: row.try_get("name")?,
        creation_timestamp: row.try_get("creation_time")?,
        last_updated_timestamp: row.try_get("last_updated_time")?,
        description: row.try_get("description")?,
        tags,
        aliases,
        latest_version: row.try_get("latest_version")?,
    })
}

pub(crate) fn version_from_row(row: &AnyRow) -> Result<ModelVersion> {
    Ok(ModelVersion {
        name: row.try_get("name")?,
        version: row.try_get("version")?,
        creation_timestamp: row.try_get("creation_time")?,
        last_updated_timestamp: row.try_get("last_updated_time")?,
        description: row.try_get("description")?,
        user_id: row.try_get("user_id")?,
        current_stage: row.try_get("current_stage")?,
        source: row.try_get("source")?,
        run_id: row.try_get("run_id")?,
        run_link: row.try_get("run_link")?,
        status: ModelVersionStatus::parse(&row.try_get::<String, _>("status")?),
        status_message: row.try_get("status_message")?,
        tags: Vec::new(),
        aliases: Vec::new(),
    })
}

/// Fills in tags and aliases of loaded versions.
pub(crate) async fn attach_version_details(
    conn: &mut AnyConnection,
    versions: &mut [ModelVersion],
) -> Result<()> {
    for v in versions.iter_mut() {
        v.tags = sqlx::query("SELECT key, value FROM model_version_tags WHERE name = $1 AND version = $2 ORDER BY key")
            .bind(&v.name)
            .bind(v.version)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| Ok(Tag { key: r.try_get("key")?, value: r.try_get("value")? }))
            .collect::<Result<_>>()?;
        v.aliases = sqlx::query("SELECT alias FROM registered_model_aliases WHERE name = $1 AND version = $2 ORDER BY alias")
            .bind(&v.name)
            .bind(v.version)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| Ok(r.try_get("alias")?))
            .collect::<Result<_>>()?;
    }
    Ok(())
}

pub(crate) async fn load_version(
    conn: &mut AnyConnection,
    name: &str,
    version: i64,
) -> Result<ModelVersion> {
    let row = sqlx::query(
        "SELECT name, version, creation_time, last_updated_time, description, user_id, current_stage, \
         source, run_id, run_link, status, status_message FROM model_versions WHERE name = $1 AND version = $2",
    )
    .bind(name)
    .bind(version)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| not_found_version(name, version))?;
    let mut versions = [version_from_row(&row)?];
    attach_version_details(conn, &mut versions).await?;
    let [v] = versions;
    Ok(v)
}

async fn touch_model(conn: &mut AnyConnection, name: &str) -> Result<()> {
    let n = sqlx::query("UPDATE registered_models SET last_updated_time = $1 WHERE name = $2")
        .bind(now_ms())
        .bind(name)
        .execute(conn)
        .await?
        .rows_affected();
    if n == 0 {
        return Err(not_found_model(name));
    }
    Ok(())
}

async fn touch_version(conn: &mut AnyConnection, name: &str, version: i64) -> Result<()> {
    let n = sqlx::query(
        "UPDATE model_versions SET last_updated_time = $1 WHERE name = $2 AND version = $3",
    )
    .bind(now_ms())
    .bind(name)
    .bind(version)
    .execute(conn)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(not_found_version(name, version));
    }
    Ok(())
}

impl Store {
    /// Registers a new model name.
    #[tracing::instrument(skip(self, actor, tags))]
    pub async fn create_registered_model(
        &self,
        actor: &Actor,
        name: &str,
        description: Option<&str>,
        tags: &[Tag],
    ) -> Result<RegisteredModel> {
        validate::name("registered model", name)?;
        validate_tags(tags)?;
        let now = now_ms();
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        sqlx::query(
            "INSERT INTO registered_models (name, creation_time, last_updated_time, description) VALUES ($1, $2, $2, $3)",
        )
        .bind(name)
        .bind(now)
        .bind(description)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::AlreadyExists(format!("Registered Model (name={name}) already exists."))
            } else {
                e.into()
            }
        })?;
        for t in tags {
            sqlx::query(
                "INSERT INTO registered_model_tags (name, key, value) VALUES ($1, $2, $3) \
                         ON CONFLICT (name, key) DO UPDATE SET value = excluded.value",
            )
            .bind(name)
            .bind(&t.key)
            .bind(&t.value)
            .execute(&mut *tx)
            .await?;
        }
        audit::record(
            &mut tx,
            actor,
            "models.create",
            &format!("model:{name}"),
            None,
        )
        .await?;
        let model = load_model(&mut tx, name).await?;
        tx.commit().await?;
        Ok(model)
    }

    /// The registered model with this name.
    pub async fn get_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        let mut conn = self.read.acquire().await?;
        load_model(&mut conn, name).await
    }

    /// Renames a model; its versions, tags and aliases follow.
    #[tracing::instrument(skip(self, actor))]
    pub async fn rename_registered_model(
        &self,
        actor: &Actor,
        name: &str,
        new_name: &str,
    ) -> Result<RegisteredModel> {
        validate::name("registered model", new_name)?;
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        load_model(&mut tx, name).await?;
        sqlx::query(
            "UPDATE registered_models SET name = $1, last_updated_time = $2 WHERE name = $3",
        )
        .bind(new_name)
        .bind(now_ms())
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::AlreadyExists(format!(
                    "Registered Model (name={new_name}) already exists."
                ))
            } else {
                e.into()
            }
        })?;
        audit::record(
            &mut tx,
            actor,
            "models.rename",
            &format!("model:{name}"),
            Some(new_name),
        )
        .await?;
        let model = load_model(&mut tx, new_name).await?;
        tx.commit().await?;
        self.aliases_changed();
        Ok(model)
    }

    /// Replaces a model's description.
    #[tracing::instrument(skip(self, actor, description))]
    pub async fn update_registered_model(
        &self,
        actor: &Actor,
        name: &str,
        description: Option<&str>,
    ) -> Result<RegisteredModel> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        touch_model(&mut tx, name).await?;
        sqlx::query("UPDATE registered_models SET description = $1 WHERE name = $2")
            .bind(description)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        audit::record(
            &mut tx,
            actor,
            "models.update",
            &format!("model:{name}"),
            None,
        )
        .await?;
        let model = load_model(&mut tx, name).await?;
        tx.commit().await?;
        Ok(model)
    }

    /// Deletes a model with all its versions, tags and aliases.
    #[tracing::instrument(skip(self, actor))]
    pub async fn delete_registered_model(&self, actor: &Actor, name: &str) -> Result<()> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        let n = sqlx::query("DELETE FROM registered_models WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(not_found_model(name));
        }
        audit::record(
            &mut tx,
            actor,
            "models.delete",
            &format!("model:{name}"),
            None,
        )
        .await?;
        tx.commit().await?;
        self.aliases_changed();
        Ok(())
    }

    /// Sets (or replaces) a tag on a model.
    #[tracing::instrument(skip(self, actor, value))]
    pub async fn set_registered_model_tag(
        &self,
        actor: &Actor,
        name: &str,
        key: &str,
        value: &str,
    ) -> Result<()> {
        validate_tags(&[Tag {
            key: key.into(),
            value: value.into(),
        }])?;
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        touch_model(&mut tx, name).await?;
        sqlx::query(
            "INSERT INTO registered_model_tags (name, key, value) VALUES ($1, $2, $3) \
                     ON CONFLICT (name, key) DO UPDATE SET value = excluded.value",
        )
        .bind(name)
        .bind(key)
        .bind(value)
        .execute(&mut *tx)
        .await?;
        audit::record(
            &mut tx,
            actor,
            "models.set_tag",
            &format!("model:{name}"),
            Some(key),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a tag from a model.
    #[tracing::instrument(skip(self, actor))]
    pub async fn delete_registered_model_tag(
        &self,
        actor: &Actor,
        name: &str,
        key: &str,
    ) -> Result<()> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        touch_model(&mut tx, name).await?;
        let n = sqlx::query("DELETE FROM registered_model_tags WHERE name = $1 AND key = $2")
            .bind(name)
            .bind(key)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(Error::not_found(format!(
                "No tag with key '{key}' on registered model '{name}'"
            )));
        }
        audit::record(
            &mut tx,
            actor,
            "models.delete_tag",
            &format!("model:{name}"),
            Some(key),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Registers the next version of a model. Numbers start at 1 and are never reused.
    #[tracing::instrument(skip(self, actor, new))]
    pub async fn create_model_version(
        &self,
        actor: &Actor,
        name: &str,
        new: NewModelVersion,
    ) -> Result<ModelVersion> {
        if new.source.trim().is_empty() {
            return Err(Error::invalid("a model version needs a non-empty 'source'"));
        }
        if new.source.chars().count() > 2000 {
            return Err(Error::invalid("'source' is longer than 2000 characters"));
        }
        validate_tags(&new.tags)?;
        let now = now_ms();
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        if let Some(run_id) = &new.run_id {
            let exists = sqlx::query("SELECT 1 FROM runs WHERE run_uuid = $1")
                .bind(run_id)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            if !exists {
                return Err(crate::runs::no_run(run_id));
            }
        }
        let version: i64 = sqlx::query(
            "UPDATE registered_models SET next_version = next_version + 1, last_updated_time = $1 \
             WHERE name = $2 RETURNING next_version - 1 AS version",
        )
        .bind(now)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| not_found_model(name))?
        .try_get("version")?;
        sqlx::query(
            "INSERT INTO model_versions (name, version, creation_time, last_updated_time, description, \
             user_id, current_stage, source, run_id, run_link, status) \
             VALUES ($1, $2, $3, $3, $4, $5, 'None', $6, $7, $8, 'READY')",
        )
        .bind(name)
        .bind(version)
        .bind(now)
        .bind(new.description.as_deref())
        .bind(&actor.name)
        .bind(&new.source)
        .bind(new.run_id.as_deref())
        .bind(new.run_link.as_deref())
        .execute(&mut *tx)
        .await?;
        for t in &new.tags {
            sqlx::query("INSERT INTO model_version_tags (name, version, key, value) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (name, version, key) DO UPDATE SET value = excluded.value")
                .bind(name)
                .bind(version)
                .bind(&t.key)
                .bind(&t.value)
                .execute(&mut *tx)
                .await?;
        }
        audit::record(
            &mut tx,
            actor,
            "models.create_version",
            &format!("model:{name}/{version}"),
            Some(&new.source),
        )
        .await?;
        let v = load_version(&mut tx, name, version).await?;
        tx.commit().await?;
        Ok(v)
    }

    /// The directory of refit's artifact store that holds a version's files, from its source:
    /// `runs:/<run>/<dir>` (a directory of a run's artifacts), `models:/m-<id>` (an MLflow 3
    /// logged model's artifacts), `models:/<name>/<version>` (that version's directory) or
    /// `mlflow-artifacts:/<path>`. `None` when the files are not in refit (`s3://...`, ...).
    pub async fn version_directory(&self, version: &ModelVersion) -> Result<Option<String>> {
        let mut source = version.source.clone();
        // `models:/<name>/<version>` may name a version that names another; a few hops at most.
        for _ in 0..4 {
            if let Some(rest) = source.strip_prefix("runs:/") {
                let (run_id, dir) = rest.split_once('/').unwrap_or((rest, ""));
                let run = self.get_run(run_id).await?;
                return Ok(run.info.artifact_root().map(|root| join_dir(&root, dir)));
            }
            if let Some(path) = source.strip_prefix("mlflow-artifacts:") {
                return Ok(Some(path.trim_matches('/').to_string()));
            }
            let Some(rest) = source.strip_prefix("models:/") else {
                return Ok(None);
            };
            let rest = rest.trim_end_matches('/');
            if rest.starts_with("m-") && !rest.contains('/') {
                return Ok(self.get_logged_model(rest, true).await?.artifact_root());
            }
            let Some((name, number)) = rest.rsplit_once('/') else {
                return Ok(None);
            };
            let Ok(number) = number.parse::<i64>() else {
                return Ok(None);
            };
            source = self.get_model_version(name, number).await?.source;
        }
        Ok(None)
    }

    /// One version of a model.
    pub async fn get_model_version(&self, name: &str, version: i64) -> Result<ModelVersion> {
        let mut conn = self.read.acquire().await?;
        load_version(&mut conn, name, version).await
    }

    /// Replaces a version's description.
    #[tracing::instrument(skip(self, actor, description))]
    pub async fn update_model_version(
        &self,
        actor: &Actor,
        name: &str,
        version: i64,
        description: Option<&str>,
    ) -> Result<ModelVersion> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        touch_version(&mut tx, name, version).await?;
        sqlx::query("UPDATE model_versions SET description = $1 WHERE name = $2 AND version = $3")
            .bind(description)
            .bind(name)
            .bind(version)
            .execute(&mut *tx)
            .await?;
        audit::record(
            &mut tx,
            actor,
            "models.update_version",
            &format!("model:{name}/{version}"),
            None,
        )
        .await?;
        let v = load_version(&mut tx, name, version).await?;
        tx.commit().await?;
        Ok(v)
    }

    /// Moves a version to one of MLflow's deprecated stages; with `archive_existing`, other
    /// versions in that stage move to `Archived`.
    #[tracing::instrument(skip(self, actor))]
    pub async fn transition_model_version_stage(
        &self,
        actor: &Actor,
        name: &str,
        version: i64,
        stage: &str,
        archive_existing: bool,
    ) -> Result<ModelVersion> {
        let stage = STAGES
            .iter()
            .find(|s| s.eq_ignore_ascii_case(stage))
            .ok_or_else(|| Error::invalid(format!("Invalid Model Version stage: {stage}. Value must be one of None, Staging, Production, Archived.")))?;
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        touch_version(&mut tx, name, version).await?;
        if archive_existing && matches!(*stage, "Staging" | "Production") {
            sqlx::query(
                "UPDATE model_versions SET current_stage = 'Archived', last_updated_time = $1 \
                         WHERE name = $2 AND current_stage = $3 AND version <> $4",
            )
            .bind(now_ms())
            .bind(name)
            .bind(*stage)
            .bind(version)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "UPDATE model_versions SET current_stage = $1 WHERE name = $2 AND version = $3",
        )
        .bind(*stage)
        .bind(name)
        .bind(version)
        .execute(&mut *tx)
        .await?;
        audit::record(
            &mut tx,
            actor,
            "models.transition_stage",
            &format!("model:{name}/{version}"),
            Some(stage),
        )
        .await?;
        let v = load_version(&mut tx, name, version).await?;
        tx.commit().await?;
        Ok(v)
    }

    /// Deletes a version, its tags and the aliases pointing at it.
    #[tracing::instrument(skip(self, actor))]
    pub async fn delete_model_version(
        &self,
        actor: &Actor,
        name: &str,
        version: i64,
    ) -> Result<()> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        let n = sqlx::query("DELETE FROM model_versions WHERE name = $1 AND version = $2")
            .bind(name)
            .bind(version)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(not_found_version(name, version));
        }
        touch_model(&mut tx, name).await?;
        audit::record(
            &mut tx,
            actor,
            "models.delete_version",
            &format!("model:{name}/{version}"),
            None,
        )
        .await?;
        tx.commit().await?;
        self.aliases_changed();
        Ok(())
    }

    /// Sets (or replaces) a tag on a version.
    #[tracing::instrument(skip(self, actor, value))]
    pub async fn set_model_version_tag(
        &self,
        actor: &Actor,
        name: &str,
        version: i64,
        key: &str,
        value: &str,
    ) -> Result<()> {
        validate_tags(&[Tag {
            key: key.into(),
            value: value.into(),
        }])?;
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        touch_version(&mut tx, name, version).await?;
        sqlx::query(
            "INSERT INTO model_version_tags (name, version, key, value) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (name, version, key) DO UPDATE SET value = excluded.value",
        )
        .bind(name)
        .bind(version)
        .bind(key)
        .bind(value)
        .execute(&mut *tx)
        .await?;
        audit::record(
            &mut tx,
            actor,
            "models.set_version_tag",
            &format!("model:{name}/{version}"),
            Some(key),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a tag from a version.
    #[tracing::instrument(skip(self, actor))]
    pub async fn delete_model_version_tag(
        &self,
        actor: &Actor,
        name: &str,
        version: i64,
        key: &str,
    ) -> Result<()> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        touch_version(&mut tx, name, version).await?;
        let n = sqlx::query(
            "DELETE FROM model_version_tags WHERE name = $1 AND version = $2 AND key = $3",
        )
        .bind(name)
        .bind(version)
        .bind(key)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(Error::not_found(format!(
                "No tag with key '{key}' on model version {name}/{version}"
            )));
        }
        audit::record(
            &mut tx,
            actor,
            "models.delete_version_tag",
            &format!("model:{name}/{version}"),
            Some(key),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Points `alias` at `version`, moving it if it pointed elsewhere.
    #[tracing::instrument(skip(self, actor))]
    pub async fn set_model_alias(
        &self,
        actor: &Actor,
        name: &str,
        alias: &str,
        version: i64,
    ) -> Result<()> {
        validate_alias(alias)?;
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        load_version(&mut tx, name, version).await?;
        set_alias_in_tx(&mut tx, name, alias, version).await?;
        touch_model(&mut tx, name).await?;
        audit::record(
            &mut tx,
            actor,
            "models.set_alias",
            &format!("model:{name}/{version}"),
            Some(alias),
        )
        .await?;
        tx.commit().await?;
        self.aliases_changed();
        Ok(())
    }

    /// The version `alias` points at.
    pub async fn get_model_version_by_alias(
        &self,
        name: &str,
        alias: &str,
    ) -> Result<ModelVersion> {
        let mut conn = self.read.acquire().await?;
        let version: i64 = sqlx::query(
            "SELECT version FROM registered_model_aliases WHERE name = $1 AND alias = $2",
        )
        .bind(name)
        .bind(alias)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::not_found(format!("Registered model alias {alias} not found.")))?
        .try_get("version")?;
        load_version(&mut conn, name, version).await
    }

    /// Removes an alias.
    #[tracing::instrument(skip(self, actor))]
    pub async fn delete_model_alias(&self, actor: &Actor, name: &str, alias: &str) -> Result<()> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        load_model(&mut tx, name).await?;
        let n = sqlx::query("DELETE FROM registered_model_aliases WHERE name = $1 AND alias = $2")
            .bind(name)
            .bind(alias)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(Error::not_found(format!(
                "Registered model alias {alias} not found."
            )));
        }
        touch_model(&mut tx, name).await?;
        audit::record(
            &mut tx,
            actor,
            "models.delete_alias",
            &format!("model:{name}"),
            Some(alias),
        )
        .await?;
        tx.commit().await?;
        self.aliases_changed();
        Ok(())
    }
}

/// Points an alias at a version inside the caller's transaction (promotion uses this too).
pub(crate) async fn set_alias_in_tx(
    conn: &mut AnyConnection,
    name: &str,
    alias: &str,
    version: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO registered_model_aliases (name, alias, version) VALUES ($1, $2, $3) \
                 ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version",
    )
    .bind(name)
    .bind(alias)
    .bind(version)
    .execute(conn)
    .await?;
    Ok(())
}

/// `root/dir`, or `root` when `dir` is empty.
fn join_dir(root: &str, dir: &str) -> String {
    let dir = dir.trim_matches('/');
    if dir.is_empty() {
        root.to_string()
    } else {
        format!("{root}/{dir}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_reserve_latest_and_version_names() {
        for ok in ["champion", "challenger", "prod-2", "v", "version"] {
            assert!(validate_alias(ok).is_ok(), "{ok}");
        }
        for bad in ["latest", "LATEST", "v1", "V23", "", "has space", "a/b"] {
            assert!(validate_alias(bad).is_err(), "{bad}");
        }
    }
}
