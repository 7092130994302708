//! MLflow 3 logged models: a model's files, params, tags and metrics, logged under an experiment
//! on their own (`m-<32 hex>`), and the run↔model links MLflow keeps beside them (a run's model
//! inputs and outputs, in the `inputs` table as MLflow does).
//!
//! A logged model is created `LOGGED_MODEL_PENDING`, its files are uploaded under its
//! `artifact_uri` (`<experiment artifact location>/models/<model_id>/artifacts`), and then it is
//! finalized `LOGGED_MODEL_READY` (or `LOGGED_MODEL_UPLOAD_FAILED`). Deleting one is soft.
//! Metrics reach a model when a run logs a metric that names it (MLflow's `model_id` on a metric).
//!
//! Searches take MLflow's logged-model filter grammar (`search_logged_model_utils.py`), which is
//! not the run grammar of [`crate::search_filter`]: entities are exactly `attributes`, `metrics`,
//! `params` and `tags`, a bare identifier is an attribute, and string comparisons also take
//! `IN` / `NOT IN` lists. Metric comparisons match any recorded point of the metric, optionally
//! only those logged against the given datasets, as MLflow's SQL store does.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::audit::{self, Actor};
use crate::db::{Store, new_id, now_ms};
use crate::error::{Error, Result};
use crate::experiments::{LifecycleStage, Tag, active_experiment};
use crate::page;
use crate::runs::{Param, active_run};
use crate::search::{MAX_ORDER_CLAUSES, MAX_SEARCH_VALUES, SearchPage, check_filter_size};
use crate::search_filter::{Op, Value};
use crate::sql::{Sql, Tx};
use crate::{run_names, validate};

/// The prefix of every logged model id.
pub const MODEL_ID_PREFIX: &str = "m-";
/// The tag listing the registered model versions made from a logged model, as a JSON list of
/// `{"name": …, "version": …}`.
pub const MODEL_VERSIONS_TAG: &str = "mlflow.modelVersions";
/// Page size of a search that names none (MLflow's proto default).
pub const DEFAULT_MAX_RESULTS: i64 = 50;
/// Longest tag or param value of a logged model. MLflow's columns are unbounded text; this bound
/// only keeps a single value from growing without limit (the `mlflow.modelVersions` tag grows
/// with every registration, so it is far above the run tag limit).
pub const MAX_VALUE_LENGTH: usize = 100_000;

/// Characters MLflow refuses in a logged model's name.
const NAME_FORBIDDEN: [char; 6] = ['/', ':', '.', '%', '"', '\''];

/// Where a logged model is in its life (MLflow's `LoggedModelStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LoggedModelStatus {
    /// Created; its files are being uploaded (number 1).
    #[serde(rename = "LOGGED_MODEL_PENDING")]
    Pending,
    /// Its files are complete (number 2).
    #[serde(rename = "LOGGED_MODEL_READY")]
    Ready,
    /// Uploading its files failed (number 3).
    #[serde(rename = "LOGGED_MODEL_UPLOAD_FAILED")]
    UploadFailed,
}

impl LoggedModelStatus {
    /// MLflow's enum name, e.g. `LOGGED_MODEL_READY`; what is stored and compared in filters.
    pub fn as_str(self) -> &'static str {
        match self {
            LoggedModelStatus::Pending => "LOGGED_MODEL_PENDING",
            LoggedModelStatus::Ready => "LOGGED_MODEL_READY",
            LoggedModelStatus::UploadFailed => "LOGGED_MODEL_UPLOAD_FAILED",
        }
    }

    /// MLflow's enum number (protobuf's JSON mapping accepts it in place of the name).
    pub fn number(self) -> i64 {
        match self {
            LoggedModelStatus::Pending => 1,
            LoggedModelStatus::Ready => 2,
            LoggedModelStatus::UploadFailed => 3,
        }
    }

    /// The status with this enum number; 0 (`LOGGED_MODEL_STATUS_UNSPECIFIED`) is none.
    pub fn from_number(n: i64) -> Option<Self> {
        match n {
            1 => Some(LoggedModelStatus::Pending),
            2 => Some(LoggedModelStatus::Ready),
            3 => Some(LoggedModelStatus::UploadFailed),
            _ => None,
        }
    }

    /// The status named `s`: the enum name (`LOGGED_MODEL_READY`), its short form (`READY`, any
    /// case), or the enum number as text (`2`).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if let Ok(n) = s.parse::<i64>() {
            return Self::from_number(n);
        }
        let upper = s.to_ascii_uppercase();
        match upper.strip_prefix("LOGGED_MODEL_").unwrap_or(&upper) {
            "PENDING" => Some(LoggedModelStatus::Pending),
            "READY" => Some(LoggedModelStatus::Ready),
            "UPLOAD_FAILED" => Some(LoggedModelStatus::UploadFailed),
            _ => None,
        }
    }
}

/// One recorded point of a logged model's metric: logged by run `run_id`, optionally on a dataset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoggedModelMetric {
    /// The logged model.
    pub model_id: String,
    /// The run that logged the point.
    pub run_id: String,
    /// Metric key.
    pub key: String,
    /// Value; NaN is kept, ±∞ are stored as ±`f64::MAX` (as MLflow's SQL store does).
    pub value: f64,
    /// ms since the Unix epoch.
    pub timestamp: i64,
    /// Training step.
    pub step: i64,
    /// Name of the dataset the metric was computed on, if any.
    pub dataset_name: Option<String>,
    /// Digest of that dataset, if any.
    pub dataset_digest: Option<String>,
}

/// A metric point a run logs against a logged model (an MLflow metric with `model_id`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ModelMetric {
    /// The logged model the point belongs to.
    pub model_id: String,
    /// Metric key.
    pub key: String,
    /// Value (NaN and ±∞ allowed).
    pub value: f64,
    /// ms since the Unix epoch.
    pub timestamp: i64,
    /// Training step.
    pub step: i64,
    /// Name of the dataset the metric was computed on.
    pub dataset_name: Option<String>,
    /// Digest of that dataset.
    pub dataset_digest: Option<String>,
}

/// A logged model with its tags (sorted by key), params (by key) and metric points.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoggedModel {
    /// `m-` and 32 hex digits.
    pub model_id: String,
    /// The experiment it was logged in.
    pub experiment_id: String,
    /// Name, e.g. `model`; not unique.
    pub name: String,
    /// Root of its files, `<experiment artifact location>/models/<model_id>/artifacts`.
    pub artifact_uri: String,
    /// ms since the Unix epoch.
    pub creation_timestamp_ms: i64,
    /// ms since the Unix epoch: creation, finalization or deletion.
    pub last_updated_timestamp_ms: i64,
    /// Where it is in its life.
    pub status: LoggedModelStatus,
    /// Detail on the status, if any.
    pub status_message: Option<String>,
    /// Live or soft-deleted.
    pub lifecycle_stage: LifecycleStage,
    /// Free-form type, e.g. `agent`.
    pub model_type: Option<String>,
    /// The run that produced it, if it was logged inside one.
    pub source_run_id: Option<String>,
    /// Tags, sorted by key.
    pub tags: Vec<Tag>,
    /// Params, sorted by key.
    pub params: Vec<Param>,
    /// Every recorded metric point, by key, then time, then step.
    pub metrics: Vec<LoggedModelMetric>,
}

impl LoggedModel {
    /// The model's root in refit's artifact store (`<experiment>/models/<model_id>/artifacts`),
    /// when its artifact URI is one refit serves (`mlflow-artifacts:`).
    pub fn artifact_root(&self) -> Option<String> {
        self.artifact_uri
            .strip_prefix("mlflow-artifacts:")
            .map(|rest| rest.trim_start_matches('/').to_string())
    }
}

/// What a new logged model is created with.
#[derive(Debug, Clone, Default)]
pub struct NewLoggedModel {
    /// The experiment to log it in (must exist and be active).
    pub experiment_id: String,
    /// Name; a generated one (`bold-heron-417`) when absent or empty.
    pub name: Option<String>,
    /// Free-form type, e.g. `agent`.
    pub model_type: Option<String>,
    /// The run that produced it.
    pub source_run_id: Option<String>,
    /// Initial params.
    pub params: Vec<Param>,
    /// Initial tags.
    pub tags: Vec<Tag>,
}

/// A run's links to logged models: the models it used and the models it produced.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct RunModels {
    /// Models the run took as inputs (MLflow's `inputs.model_inputs`), by id.
    pub inputs: Vec<String>,
    /// Models the run produced (MLflow's `outputs.model_outputs`), by step then id.
    pub outputs: Vec<ModelOutput>,
}

/// A model a run produced, at a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelOutput {
    /// The logged model.
    pub model_id: String,
    /// The training step it was produced at.
    pub step: i64,
}

/// Restricts a search's metrics to those logged on one dataset (any digest when absent).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DatasetFilter {
    /// Dataset name; required.
    pub dataset_name: String,
    /// Dataset digest.
    pub dataset_digest: Option<String>,
}

/// One sort key of a logged-model search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedModelOrder {
    /// An attribute (`name`, `creation_timestamp`, `creation_time`, `last_updated_timestamp`,
    /// `model_id`, `status`, ...) or `metrics.<key>`.
    pub field_name: String,
    /// Ascending unless false.
    pub ascending: bool,
    /// For a metric: only points logged on this dataset.
    pub dataset_name: Option<String>,
    /// For a metric: only points logged on a dataset with this digest.
    pub dataset_digest: Option<String>,
}

/// A logged-model search: scope, filter, datasets, order and page.
#[derive(Debug, Clone, Default)]
pub struct LoggedModelSearch {
    /// Experiments to search in; none finds nothing.
    pub experiment_ids: Vec<String>,
    /// Filter in MLflow's logged-model grammar; empty matches everything.
    pub filter: String,
    /// Metric comparisons and metric sorts only consider points logged on these datasets, and
    /// when there is no metric comparison, only models with a point on one of them match.
    pub datasets: Vec<DatasetFilter>,
    /// Page size; [`DEFAULT_MAX_RESULTS`] when absent or 0.
    pub max_results: Option<i64>,
    /// Sort keys; ties fall back to creation time (newest first), then model id.
    pub order_by: Vec<LoggedModelOrder>,
    /// Token from the previous page.
    pub page_token: Option<String>,
}

fn not_found(model_id: &str) -> Error {
    Error::not_found(format!("Logged model with ID '{model_id}' not found."))
}

fn target(model_id: &str) -> String {
    format!("logged_model:{model_id}")
}

/// A logged model's name: MLflow's rule (no `/ : . % " '`) plus refit's name rules.
pub fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains(NAME_FORBIDDEN) {
        return Err(Error::invalid(format!(
            "Invalid model name ('{name}') provided. Model name must be a non-empty string and \
             cannot contain the following characters: ('/', ':', '.', '%', '\"', \"'\")"
        )));
    }
    validate::name("logged model", name)
}

fn validate_tags(tags: &[Tag]) -> Result<()> {
    if tags.len() > validate::MAX_BATCH_TOTAL {
        return Err(Error::invalid(format!(
            "At most {} tags can be set at once; got {}",
            validate::MAX_BATCH_TOTAL,
            tags.len()
        )));
    }
    for t in tags {
        validate::key("tag", &t.key)?;
        validate::value_length("tag", &t.key, &t.value, MAX_VALUE_LENGTH)?;
    }
    Ok(())
}

fn validate_params(params: &[Param]) -> Result<()> {
    if params.len() > validate::MAX_BATCH_TOTAL {
        return Err(Error::invalid(format!(
            "At most {} params can be logged at once; got {}",
            validate::MAX_BATCH_TOTAL,
            params.len()
        )));
    }
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for p in params {
        validate::key("param", &p.key)?;
        validate::value_length("param", &p.key, &p.value, MAX_VALUE_LENGTH)?;
        if let Some(previous) = seen.insert(&p.key, &p.value)
            && previous != p.value
        {
            return Err(Error::invalid(format!(
                "Duplicate parameter keys have been submitted: param '{}' appears with values \
                 '{previous}' and '{}'",
                p.key, p.value
            )));
        }
    }
    Ok(())
}

/// The columns [`model_from_row`] reads, for `SELECT ... FROM logged_models m`.
const MODEL_COLUMNS: &str = "m.model_id, m.experiment_id, m.name, m.artifact_location, \
     m.creation_time, m.last_updated_time, m.status, m.lifecycle_stage, m.model_type, \
     m.source_run_id, m.status_message";

fn model_from_row(row: &AnyRow) -> Result<LoggedModel> {
    let experiment_id: i64 = row.try_get("experiment_id")?;
    let status: String = row.try_get("status")?;
    Ok(LoggedModel {
        model_id: row.try_get("model_id")?,
        experiment_id: experiment_id.to_string(),
        name: row.try_get("name")?,
        artifact_uri: row.try_get("artifact_location")?,
        creation_timestamp_ms: row.try_get("creation_time")?,
        last_updated_timestamp_ms: row.try_get("last_updated_time")?,
        // Only this module writes the column; an unknown value reads as pending.
        status: LoggedModelStatus::parse(&status).unwrap_or(LoggedModelStatus::Pending),
        status_message: row.try_get("status_message")?,
        lifecycle_stage: LifecycleStage::parse(&row.try_get::<String, _>("lifecycle_stage")?),
        model_type: row.try_get("model_type")?,
        source_run_id: row.try_get("source_run_id")?,
        tags: Vec::new(),
        params: Vec::new(),
        metrics: Vec::new(),
    })
}

/// NaN cannot be stored as a REAL on SQLite: it is stored as 0 with a flag. ±∞ become ±`f64::MAX`.
fn stored_value(value: f64) -> (f64, i64) {
    if value.is_nan() {
        (0.0, 1)
    } else if value.is_infinite() {
        (f64::MAX.copysign(value), 0)
    } else {
        (value, 0)
    }
}

/// Loads the model's row, whatever its lifecycle stage.
async fn load_row(conn: &mut AnyConnection, model_id: &str) -> Result<Option<LoggedModel>> {
    let mut sql = Sql::new("SELECT ");
    sql.push(MODEL_COLUMNS)
        .push(" FROM logged_models m WHERE m.model_id = ")
        .bind(model_id);
    sql.fetch_all(conn)
        .await?
        .first()
        .map(model_from_row)
        .transpose()
}

/// Loads a model that exists and is not deleted, as every write to one requires.
async fn active_model(conn: &mut AnyConnection, model_id: &str) -> Result<LoggedModel> {
    match load_row(conn, model_id).await? {
        Some(m) if m.lifecycle_stage == LifecycleStage::Active => Ok(m),
        _ => Err(not_found(model_id)),
    }
}

/// Loads a model with its tags, params and metrics.
async fn load_model(
    conn: &mut AnyConnection,
    model_id: &str,
    allow_deleted: bool,
) -> Result<LoggedModel> {
    let model = match load_row(conn, model_id).await? {
        Some(m) if allow_deleted || m.lifecycle_stage == LifecycleStage::Active => m,
        _ => return Err(not_found(model_id)),
    };
    let mut models = vec![model];
    attach_details(conn, &mut models).await?;
    Ok(models.remove(0))
}

/// Fills in tags, params and metrics of `models`, a few statements per 500 models.
async fn attach_details(conn: &mut AnyConnection, models: &mut [LoggedModel]) -> Result<()> {
    let index: HashMap<String, usize> = models
        .iter()
        .enumerate()
        .map(|(i, m)| (m.model_id.clone(), i))
        .collect();
    let ids: Vec<String> = models.iter().map(|m| m.model_id.clone()).collect();
    for chunk in ids.chunks(500) {
        let ids = || chunk.iter().map(String::as_str);
        let mut sql =
            Sql::new("SELECT model_id, key, value FROM logged_model_tags WHERE model_id IN ");
        sql.bind_list(ids()).push(" ORDER BY key");
        for row in sql.fetch_all(&mut *conn).await? {
            models[index[&row.try_get::<String, _>("model_id")?]]
                .tags
                .push(Tag {
                    key: row.try_get("key")?,
                    value: row.try_get("value")?,
                });
        }
        let mut sql =
            Sql::new("SELECT model_id, key, value FROM logged_model_params WHERE model_id IN ");
        sql.bind_list(ids()).push(" ORDER BY key");
        for row in sql.fetch_all(&mut *conn).await? {
            models[index[&row.try_get::<String, _>("model_id")?]]
                .params
                .push(Param {
                    key: row.try_get("key")?,
                    value: row.try_get("value")?,
                });
        }
        let mut sql = Sql::new(
            "SELECT model_id, key, value, is_nan, timestamp, step, run_id, dataset_name, \
             dataset_digest FROM logged_model_metrics WHERE model_id IN ",
        );
        sql.bind_list(ids())
            .push(" ORDER BY key, timestamp, step, run_id");
        for row in sql.fetch_all(&mut *conn).await? {
            let model_id: String = row.try_get("model_id")?;
            let is_nan: i64 = row.try_get("is_nan")?;
            let metric = LoggedModelMetric {
                run_id: row.try_get("run_id")?,
                key: row.try_get("key")?,
                value: if is_nan != 0 {
                    f64::NAN
                } else {
                    row.try_get("value")?
                },
                timestamp: row.try_get("timestamp")?,
                step: row.try_get("step")?,
                dataset_name: row.try_get("dataset_name")?,
                dataset_digest: row.try_get("dataset_digest")?,
                model_id,
            };
            models[index[&metric.model_id]].metrics.push(metric);
        }
    }
    Ok(())
}

/// Upserts tags of a model inside the caller's transaction; the last value of a key wins.
async fn write_tags(conn: &mut AnyConnection, model_id: &str, tags: &[Tag]) -> Result<()> {
    if tags.is_empty() {
        return Ok(());
    }
    // One row per key keeps the upsert valid on PostgreSQL.
    let last: BTreeMap<&str, &str> = tags
        .iter()
        .map(|t| (t.key.as_str(), t.value.as_str()))
        .collect();
    let mut sql = Sql::new("INSERT INTO logged_model_tags (model_id, key, value) VALUES ");
    for (i, (k, v)) in last.iter().enumerate() {
        sql.push(if i == 0 { "(" } else { ", (" });
        sql.bind(model_id)
            .push(", ")
            .bind(*k)
            .push(", ")
            .bind(*v)
            .push(")");
    }
    sql.push(" ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value");
    sql.execute(conn).await?;
    Ok(())
}

/// Writes params of a model inside the caller's transaction. Params are immutable: logging the
/// same value again is a no-op, a different value refuses the whole call.
async fn write_params(conn: &mut AnyConnection, model_id: &str, params: &[Param]) -> Result<()> {
    if params.is_empty() {
        return Ok(());
    }
    let unique: BTreeMap<&str, &str> = params
        .iter()
        .map(|p| (p.key.as_str(), p.value.as_str()))
        .collect();
    // Insert first, then compare with what is stored, so a concurrent writer's value is seen.
    let mut sql = Sql::new("INSERT INTO logged_model_params (model_id, key, value) VALUES ");
    for (i, (k, v)) in unique.iter().enumerate() {
        sql.push(if i == 0 { "(" } else { ", (" });
        sql.bind(model_id)
            .push(", ")
            .bind(*k)
            .push(", ")
            .bind(*v)
            .push(")");
    }
    sql.push(" ON CONFLICT (model_id, key) DO NOTHING");
    sql.execute(&mut *conn).await?;
    let mut sql = Sql::new("SELECT key, value FROM logged_model_params WHERE model_id = ");
    sql.bind(model_id)
        .push(" AND key IN ")
        .bind_list(unique.keys().copied());
    for row in sql.fetch_all(conn).await? {
        let key: String = row.try_get("key")?;
        let old: String = row.try_get("value")?;
        let new = unique[key.as_str()];
        if old != new {
            return Err(Error::invalid(format!(
                "Changing param values is not allowed. Param with key='{key}' was already logged \
                 with value='{old}' for logged model ID='{model_id}'. Attempted logging new value \
                 '{new}'."
            )));
        }
    }
    Ok(())
}

/// Parses experiment ids for a search; MLflow's are integers.
fn experiment_ids(ids: &[String]) -> Result<Vec<i64>> {
    if ids.len() > MAX_SEARCH_VALUES {
        return Err(Error::invalid(format!(
            "A search takes at most {MAX_SEARCH_VALUES} experiment ids; got {}",
            ids.len()
        )));
    }
    ids.iter()
        .map(|id| {
            id.trim().parse::<i64>().map_err(|_| {
                Error::invalid(format!(
                    "Invalid experiment ID '{id}'. Experiment ID must be a valid integer."
                ))
            })
        })
        .collect()
}

impl Store {
    /// Creates a logged model, `LOGGED_MODEL_PENDING`, in an active experiment, with its initial
    /// params and tags.
    #[tracing::instrument(skip(self, actor, new), fields(experiment_id = %new.experiment_id))]
    pub async fn create_logged_model(
        &self,
        actor: &Actor,
        new: NewLoggedModel,
    ) -> Result<LoggedModel> {
        let name = match new.name.filter(|n| !n.is_empty()) {
            Some(name) => {
                validate_name(&name)?;
                name
            }
            None => run_names::generate(),
        };
        validate_tags(&new.tags)?;
        validate_params(&new.params)?;
        let model_type = new.model_type.filter(|t| !t.is_empty());
        let source_run_id = new.source_run_id.filter(|r| !r.is_empty());
        let model_id = format!("{MODEL_ID_PREFIX}{}", new_id());
        let now = now_ms();
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        let exp = active_experiment(&mut tx, &new.experiment_id).await?;
        let artifact_uri = format!(
            "{}/models/{model_id}/artifacts",
            exp.artifact_location.trim_end_matches('/')
        );
        sqlx::query(
            "INSERT INTO logged_models (model_id, experiment_id, name, artifact_location, \
             creation_time, last_updated_time, status, lifecycle_stage, model_type, source_run_id) \
             VALUES ($1, $2, $3, $4, $5, $5, $6, 'active', $7, $8)",
        )
        .bind(&model_id)
        .bind(exp.experiment_id.parse::<i64>().expect("numeric id"))
        .bind(&name)
        .bind(&artifact_uri)
        .bind(now)
        .bind(LoggedModelStatus::Pending.as_str())
        .bind(model_type.as_deref())
        .bind(source_run_id.as_deref())
        .execute(&mut *tx)
        .await?;
        write_tags(&mut tx, &model_id, &new.tags).await?;
        write_params(&mut tx, &model_id, &new.params).await?;
        audit::record(
            &mut tx,
            actor,
            "logged_models.create",
            &target(&model_id),
            Some(&name),
        )
        .await?;
        let model = load_model(&mut tx, &model_id, false).await?;
        tx.commit().await?;
        Ok(model)
    }

    /// The logged model with this id, with its tags, params and metrics. A deleted one is found
    /// only with `allow_deleted`.
    pub async fn get_logged_model(
        &self,
        model_id: &str,
        allow_deleted: bool,
    ) -> Result<LoggedModel> {
        let mut conn = self.read.acquire().await?;
        load_model(&mut conn, model_id, allow_deleted).await
    }

    /// Sets a model's status (MLflow's finalize: `LOGGED_MODEL_READY` once its files are
    /// uploaded, or `LOGGED_MODEL_UPLOAD_FAILED`) and its last-updated time.
    #[tracing::instrument(skip(self, actor))]
    pub async fn finalize_logged_model(
        &self,
        actor: &Actor,
        model_id: &str,
        status: LoggedModelStatus,
    ) -> Result<LoggedModel> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        active_model(&mut tx, model_id).await?;
        sqlx::query(
            "UPDATE logged_models SET status = $1, last_updated_time = $2 WHERE model_id = $3",
        )
        .bind(status.as_str())
        .bind(now_ms())
        .bind(model_id)
        .execute(&mut *tx)
        .await?;
        audit::record(
            &mut tx,
            actor,
            "logged_models.finalize",
            &target(model_id),
            Some(status.as_str()),
        )
        .await?;
        let model = load_model(&mut tx, model_id, false).await?;
        tx.commit().await?;
        Ok(model)
    }

    /// Sets tags on a model, replacing the values of keys it has.
    #[tracing::instrument(skip(self, actor, tags))]
    pub async fn set_logged_model_tags(
        &self,
        actor: &Actor,
        model_id: &str,
        tags: &[Tag],
    ) -> Result<()> {
        validate_tags(tags)?;
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        active_model(&mut tx, model_id).await?;
        write_tags(&mut tx, model_id, tags).await?;
        let keys: BTreeSet<&str> = tags.iter().map(|t| t.key.as_str()).collect();
        let detail = keys.into_iter().collect::<Vec<_>>().join(", ");
        audit::record(
            &mut tx,
            actor,
            "logged_models.set_tags",
            &target(model_id),
            Some(&detail),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a tag from a model; a key it does not have is not found.
    #[tracing::instrument(skip(self, actor))]
    pub async fn delete_logged_model_tag(
        &self,
        actor: &Actor,
        model_id: &str,
        key: &str,
    ) -> Result<()> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        active_model(&mut tx, model_id).await?;
        let n = sqlx::query("DELETE FROM logged_model_tags WHERE model_id = $1 AND key = $2")
            .bind(model_id)
            .bind(key)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(Error::not_found(format!(
                "No tag with key '{key}' found for model with ID '{model_id}'."
            )));
        }
        audit::record(
            &mut tx,
            actor,
            "logged_models.delete_tag",
            &target(model_id),
            Some(key),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Logs params to a model. Params are immutable: the same value again is a no-op, a
    /// different one refuses the whole call.
    #[tracing::instrument(skip(self, actor, params))]
    pub async fn log_logged_model_params(
        &self,
        actor: &Actor,
        model_id: &str,
        params: &[Param],
    ) -> Result<()> {
        validate_params(params)?;
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        active_model(&mut tx, model_id).await?;
        write_params(&mut tx, model_id, params).await?;
        audit::record(
            &mut tx,
            actor,
            "logged_models.log_params",
            &target(model_id),
            Some(&format!("{} params", params.len())),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Soft-deletes a model: it is no longer found, searched or written to. Deleting a deleted
    /// model changes nothing.
    #[tracing::instrument(skip(self, actor))]
    pub async fn delete_logged_model(&self, actor: &Actor, model_id: &str) -> Result<()> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        let model = load_row(&mut tx, model_id)
            .await?
            .ok_or_else(|| not_found(model_id))?;
        if model.lifecycle_stage == LifecycleStage::Deleted {
            return Ok(());
        }
        sqlx::query(
            "UPDATE logged_models SET lifecycle_stage = 'deleted', last_updated_time = $1 \
             WHERE model_id = $2",
        )
        .bind(now_ms())
        .bind(model_id)
        .execute(&mut *tx)
        .await?;
        audit::record(
            &mut tx,
            actor,
            "logged_models.delete",
            &target(model_id),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Appends `{"name": name, "version": version}` to the model's `mlflow.modelVersions` tag
    /// (a JSON list), as MLflow's server does when a version is registered from `models:/m-…`.
    /// Reading and writing the list in one transaction keeps concurrent registrations.
    #[tracing::instrument(skip(self, actor))]
    pub async fn record_logged_model_version(
        &self,
        actor: &Actor,
        model_id: &str,
        name: &str,
        version: i64,
    ) -> Result<()> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        active_model(&mut tx, model_id).await?;
        let current: Option<String> =
            sqlx::query("SELECT value FROM logged_model_tags WHERE model_id = $1 AND key = $2")
                .bind(model_id)
                .bind(MODEL_VERSIONS_TAG)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get("value"))
                .transpose()?;
        // A value that is not a JSON list (set by hand) is replaced rather than refused.
        let mut list: Vec<serde_json::Value> = current
            .and_then(|v| serde_json::from_str(&v).ok())
            .unwrap_or_default();
        list.push(serde_json::json!({"name": name, "version": version}));
        let value = serde_json::Value::Array(list).to_string();
        validate::value_length("tag", MODEL_VERSIONS_TAG, &value, MAX_VALUE_LENGTH)?;
        let tag = Tag {
            key: MODEL_VERSIONS_TAG.into(),
            value,
        };
        write_tags(&mut tx, model_id, &[tag]).await?;
        audit::record(
            &mut tx,
            actor,
            "logged_models.set_tags",
            &target(model_id),
            Some(MODEL_VERSIONS_TAG),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records metric points the active run `run_uuid` logged against logged models (MLflow's
    /// metrics with a `model_id`): each model must exist and not be deleted. The very same point
    /// (model, key, step, timestamp, run) logged again is stored once. One audit entry per model.
    ///
    /// The run's own copy of the points is logged separately, through [`Store::log_batch`].
    #[tracing::instrument(skip(self, actor, metrics), fields(metrics = metrics.len()))]
    pub async fn log_logged_model_metrics(
        &self,
        actor: &Actor,
        run_uuid: &str,
        metrics: &[ModelMetric],
    ) -> Result<()> {
        if metrics.is_empty() {
            return Ok(());
        }
        if metrics.len() > validate::MAX_BATCH_METRICS {
            return Err(Error::invalid(format!(
                "A batch logging request can contain at most {} metrics. Got {} metrics.",
                validate::MAX_BATCH_METRICS,
                metrics.len()
            )));
        }
        for m in metrics {
            validate::key("metric", &m.key)?;
            if m.timestamp < 0 {
                return Err(Error::invalid(format!(
                    "Invalid value {} for parameter 'timestamp' supplied: metric '{}'. \
                     Timestamp must be a nonnegative long (64-bit integer)",
                    m.timestamp, m.key
                )));
            }
        }
        let mut per_model: BTreeMap<&str, usize> = BTreeMap::new();
        for m in metrics {
            *per_model.entry(m.model_id.as_str()).or_default() += 1;
        }
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        active_run(&mut Tx::Any(&mut tx), run_uuid).await?;
        for model_id in per_model.keys() {
            active_model(&mut tx, model_id).await?;
        }
        let mut sql = Sql::new(
            "INSERT INTO logged_model_metrics (model_id, key, value, is_nan, timestamp, step, \
             run_id, dataset_name, dataset_digest) VALUES ",
        );
        for (i, m) in metrics.iter().enumerate() {
            let (value, is_nan) = stored_value(m.value);
            sql.push(if i == 0 { "(" } else { ", (" });
            sql.bind(m.model_id.as_str())
                .push(", ")
                .bind(m.key.as_str())
                .push(", ")
                .bind(value)
                .push(", ")
                .bind(is_nan)
                .push(", ")
                .bind(m.timestamp)
                .push(", ")
                .bind(m.step)
                .push(", ")
                .bind(run_uuid)
                .push(", ")
                .bind(m.dataset_name.as_deref())
                .push(", ")
                .bind(m.dataset_digest.as_deref())
                .push(")");
        }
        sql.push(" ON CONFLICT (model_id, key, step, timestamp, run_id) DO NOTHING");
        sql.execute(&mut tx).await?;
        for (model_id, n) in &per_model {
            audit::record(
                &mut tx,
                actor,
                "logged_models.log_metrics",
                &target(model_id),
                Some(&format!("{n} metrics from run {run_uuid}")),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records logged models as inputs of the active run `run_uuid` (MLflow's `log_inputs` with
    /// `models`). Each model must exist; linking one again is a no-op.
    #[tracing::instrument(skip(self, actor, model_ids))]
    pub async fn log_run_model_inputs(
        &self,
        actor: &Actor,
        run_uuid: &str,
        model_ids: &[String],
    ) -> Result<()> {
        let links: Vec<(&str, i64)> = model_ids.iter().map(|m| (m.as_str(), 0)).collect();
        self.link_run_models(actor, run_uuid, &links, RunLink::Input)
            .await
    }

    /// Records logged models as outputs of the active run `run_uuid`, each at a step (MLflow's
    /// `log_outputs`). Each model must exist; linking one again keeps its first step.
    #[tracing::instrument(skip(self, actor, outputs))]
    pub async fn log_run_model_outputs(
        &self,
        actor: &Actor,
        run_uuid: &str,
        outputs: &[ModelOutput],
    ) -> Result<()> {
        let links: Vec<(&str, i64)> = outputs
            .iter()
            .map(|o| (o.model_id.as_str(), o.step))
            .collect();
        self.link_run_models(actor, run_uuid, &links, RunLink::Output)
            .await
    }

    async fn link_run_models(
        &self,
        actor: &Actor,
        run_uuid: &str,
        links: &[(&str, i64)],
        kind: RunLink,
    ) -> Result<()> {
        if links.is_empty() {
            return Ok(());
        }
        if links.len() > validate::MAX_BATCH_TOTAL {
            return Err(Error::invalid(format!(
                "At most {} models can be linked to a run at once; got {}",
                validate::MAX_BATCH_TOTAL,
                links.len()
            )));
        }
        let (source_type, destination_type, action) = match kind {
            RunLink::Input => ("RUN_INPUT", "MODEL_INPUT", "runs.log_model_inputs"),
            RunLink::Output => ("RUN_OUTPUT", "MODEL_OUTPUT", "runs.log_model_outputs"),
        };
        // One row per model keeps the insert valid on PostgreSQL; the first step given wins.
        let mut unique: BTreeMap<&str, i64> = BTreeMap::new();
        for (model_id, step) in links {
            unique.entry(model_id).or_insert(*step);
        }
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        active_run(&mut Tx::Any(&mut tx), run_uuid).await?;
        for model_id in unique.keys() {
            if load_row(&mut tx, model_id).await?.is_none() {
                return Err(not_found(model_id));
            }
        }
        let mut sql = Sql::new(
            "INSERT INTO inputs (input_uuid, source_type, source_id, destination_type, \
             destination_id, step) VALUES ",
        );
        for (i, (model_id, step)) in unique.iter().enumerate() {
            sql.push(if i == 0 { "(" } else { ", (" });
            sql.bind(new_id())
                .push(", ")
                .bind(source_type)
                .push(", ")
                .bind(run_uuid)
                .push(", ")
                .bind(destination_type)
                .push(", ")
                .bind(*model_id)
                .push(", ")
                .bind(*step)
                .push(")");
        }
        sql.push(
            " ON CONFLICT (source_type, source_id, destination_type, destination_id) DO NOTHING",
        );
        sql.execute(&mut tx).await?;
        audit::record(
            &mut tx,
            actor,
            action,
            &format!("run:{run_uuid}"),
            Some(&unique.keys().copied().collect::<Vec<_>>().join(", ")),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The logged models each of `run_uuids` took as inputs and produced, for runs that have
    /// any (one statement per 1000 runs, so a search can read a whole page's links at once).
    pub async fn run_models(&self, run_uuids: &[String]) -> Result<HashMap<String, RunModels>> {
        if run_uuids.is_empty() {
            return Ok(HashMap::new());
        }
        if let Some(readers) = self.direct_readers() {
            let run_uuids = run_uuids.to_vec();
            return readers
                .run(move |conn| run_models_direct(conn, &run_uuids))
                .await;
        }
        let mut links = Vec::new();
        let mut conn = self.read.acquire().await?;
        for sql in run_models_queries(run_uuids) {
            for row in sql.fetch_all(&mut conn).await? {
                links.push((
                    row.try_get("source_type")?,
                    row.try_get("source_id")?,
                    row.try_get("destination_id")?,
                    row.try_get("step")?,
                ));
            }
        }
        Ok(run_models_from(links))
    }

    /// Live logged models of the given experiments that match the search, in its order: by
    /// default newest first, then by model id.
    #[tracing::instrument(skip(self))]
    pub async fn search_logged_models(
        &self,
        search: &LoggedModelSearch,
    ) -> Result<SearchPage<LoggedModel>> {
        if search
            .datasets
            .iter()
            .any(|d| d.dataset_name.trim().is_empty())
        {
            return Err(Error::invalid(
                "`dataset_name` in the `datasets` clause must be specified.",
            ));
        }
        let ids = experiment_ids(&search.experiment_ids)?;
        let clauses = parse_filter(&search.filter)?;
        if search.order_by.len() > MAX_ORDER_CLAUSES {
            return Err(Error::invalid(format!(
                "Invalid order_by: {} clauses; the limit is {MAX_ORDER_CLAUSES}",
                search.order_by.len()
            )));
        }
        let order = search
            .order_by
            .iter()
            .map(parse_order)
            .collect::<Result<Vec<_>>>()?;
        let max_results = match search.max_results {
            None | Some(0) => DEFAULT_MAX_RESULTS,
            Some(n) => n,
        };
        // The token is only good for the same experiments, filter, datasets and order.
        let print = format!(
            "logged-models\u{0}{ids:?}\u{0}{}\u{0}{:?}\u{0}{:?}",
            search.filter, search.datasets, search.order_by
        );
        let page = page::start(search.page_token.as_deref(), max_results, &print)?;
        if ids.is_empty() {
            return Ok(SearchPage {
                items: Vec::new(),
                next_page_token: None,
            });
        }

        let mut sql = Sql::new("SELECT ");
        sql.planned_per_call()
            .push(MODEL_COLUMNS)
            .push(
                " FROM logged_models m WHERE m.lifecycle_stage = 'active' AND m.experiment_id IN ",
            )
            .bind_list(ids.iter().copied());
        let mut has_metric_clause = false;
        for clause in &clauses {
            sql.push(" AND ");
            push_clause(&mut sql, clause, &search.datasets)?;
            has_metric_clause |= matches!(clause.subject, Subject::Metric(_));
        }
        if !search.datasets.is_empty() && !has_metric_clause {
            sql.push(
                " AND EXISTS (SELECT 1 FROM logged_model_metrics mm \
                 WHERE mm.model_id = m.model_id AND ",
            );
            push_datasets(&mut sql, &search.datasets);
            sql.push(")");
        }
        sql.push(" ORDER BY ");
        let mut by_creation = false;
        let mut by_id = false;
        for (i, o) in order.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            match o {
                Sort::Column(column, ascending) => {
                    by_creation |= *column == "m.creation_time";
                    by_id |= *column == "m.model_id";
                    // Missing values last in either direction, as MLflow.
                    sql.push("CASE WHEN ")
                        .push(column)
                        .push(" IS NULL THEN 1 ELSE 0 END, ")
                        .push(column)
                        .push(direction(*ascending));
                }
                Sort::Metric {
                    key,
                    ascending,
                    datasets,
                } => {
                    // The newest point (by time, then step) of the metric, optionally on one
                    // dataset: values first, then NaN, then models without the metric.
                    let latest = |sql: &mut Sql, column: &str| {
                        sql.push("(SELECT mm.")
                            .push(column)
                            .push(
                                " FROM logged_model_metrics mm \
                                 WHERE mm.model_id = m.model_id AND mm.key = ",
                            )
                            .bind(key.as_str());
                        if !datasets.is_empty() {
                            sql.push(" AND ");
                            push_datasets(sql, datasets);
                        }
                        sql.push(" ORDER BY mm.timestamp DESC, mm.step DESC LIMIT 1)");
                    };
                    sql.push("COALESCE(");
                    latest(&mut sql, "is_nan");
                    sql.push(", 2), ");
                    latest(&mut sql, "value");
                    sql.push(direction(*ascending));
                }
            }
        }
        let mut tie_breaks = Vec::new();
        if !by_creation {
            tie_breaks.push("m.creation_time DESC");
        }
        // The model id makes the order total, so that pages neither repeat nor skip models.
        if !by_id {
            tie_breaks.push("m.model_id ASC");
        }
        let mut first = order.is_empty();
        for term in tie_breaks {
            if !first {
                sql.push(", ");
            }
            first = false;
            sql.push(term);
        }
        // One row beyond the page says whether there is a next one.
        sql.push(" LIMIT ")
            .bind(page.limit + 1)
            .push(" OFFSET ")
            .bind(page.offset);

        let mut conn = self.read.acquire().await?;
        let rows = sql.fetch_all(&mut conn).await?;
        let more = rows.len() as i64 > page.limit;
        let mut items = rows
            .iter()
            .take(page.limit as usize)
            .map(model_from_row)
            .collect::<Result<Vec<_>>>()?;
        attach_details(&mut conn, &mut items).await?;
        let next_page_token = if more {
            page::next(page, page.limit as usize, &print)
        } else {
            None
        };
        Ok(SearchPage {
            items,
            next_page_token,
        })
    }
}

/// Which side of a run a model link is on.
#[derive(Debug, Clone, Copy)]
enum RunLink {
    Input,
    Output,
}

fn direction(ascending: bool) -> &'static str {
    if ascending { " ASC" } else { " DESC" }
}

/// `(mm.dataset_name = $a AND mm.dataset_digest = $b) OR (...)`, in parentheses.
fn push_datasets(sql: &mut Sql, datasets: &[DatasetFilter]) {
    sql.push("(");
    for (i, d) in datasets.iter().enumerate() {
        if i > 0 {
            sql.push(" OR ");
        }
        sql.push("(mm.dataset_name = ")
            .bind(d.dataset_name.as_str());
        if let Some(digest) = &d.dataset_digest {
            sql.push(" AND mm.dataset_digest = ").bind(digest.as_str());
        }
        sql.push(")");
    }
    sql.push(")");
}

// ------------------------------------------------------------------------------------------------
// The logged-model filter grammar
// ------------------------------------------------------------------------------------------------

/// What a filter clause compares.
#[derive(Debug, Clone, PartialEq)]
enum Subject {
    /// A column of `logged_models m`, and whether it holds numbers.
    Attribute { column: &'static str, numeric: bool },
    /// Any recorded point of a metric.
    Metric(String),
    /// A param.
    Param(String),
    /// A tag.
    Tag(String),
}

/// One `identifier comparator value` clause of a filter.
#[derive(Debug, Clone, PartialEq)]
struct Clause {
    subject: Subject,
    op: Op,
    value: Value,
}

/// One parsed sort key.
#[derive(Debug, Clone, PartialEq)]
enum Sort {
    /// A column of `logged_models m`.
    Column(&'static str, bool),
    /// The newest point of a metric.
    Metric {
        key: String,
        ascending: bool,
        datasets: Vec<DatasetFilter>,
    },
}

const ENTITIES: &str = "['attributes', 'metrics', 'params', 'tags']";
const ATTRIBUTE_KEYS: &str = "'creation_time', 'creation_timestamp', 'last_updated_time', \
     'last_updated_timestamp', 'model_id', 'model_type', 'name', 'source_run_id', 'status'";
const NUMERIC_OPS: [Op; 6] = [Op::Lt, Op::Le, Op::Gt, Op::Ge, Op::Eq, Op::Ne];
const STRING_OPS: [Op; 6] = [Op::Eq, Op::Ne, Op::Like, Op::ILike, Op::In, Op::NotIn];

/// The column an attribute name (with MLflow's aliases) filters on, and whether it is numeric.
fn attribute(key: &str) -> Option<(&'static str, bool)> {
    Some(match key {
        "name" => ("m.name", false),
        "model_id" => ("m.model_id", false),
        "model_type" => ("m.model_type", false),
        "status" => ("m.status", false),
        "source_run_id" => ("m.source_run_id", false),
        "creation_timestamp" | "creation_time" | "creation_timestamp_ms" => {
            ("m.creation_time", true)
        }
        "last_updated_timestamp" | "last_updated_time" | "last_updated_timestamp_ms" => {
            ("m.last_updated_time", true)
        }
        _ => return None,
    })
}

/// The column a sort key names: the filterable attributes plus the model's other columns, as
/// MLflow sorts on any column of its table.
fn sort_column(field: &str) -> Option<&'static str> {
    attribute(field).map(|(column, _)| column).or(match field {
        "experiment_id" => Some("m.experiment_id"),
        "artifact_location" | "artifact_uri" => Some("m.artifact_location"),
        "status_message" => Some("m.status_message"),
        _ => None,
    })
}

fn parse_order(o: &LoggedModelOrder) -> Result<Sort> {
    let field = o.field_name.trim();
    match field.split_once('.') {
        None => sort_column(field)
            .map(|column| Sort::Column(column, o.ascending))
            .ok_or_else(|| Error::invalid(format!("Invalid order by field name: {field}"))),
        Some(("metrics", key)) if !key.is_empty() => Ok(Sort::Metric {
            key: key.trim_matches('`').to_string(),
            ascending: o.ascending,
            datasets: match &o.dataset_name {
                Some(name) if !name.is_empty() => vec![DatasetFilter {
                    dataset_name: name.clone(),
                    dataset_digest: o.dataset_digest.clone().filter(|d| !d.is_empty()),
                }],
                _ => Vec::new(),
            },
        }),
        Some(_) => Err(Error::invalid(format!(
            "Invalid order by field name: {field}. Only metrics are supported."
        ))),
    }
}

/// Appends the SQL condition of one clause.
fn push_clause(sql: &mut Sql, clause: &Clause, datasets: &[DatasetFilter]) -> Result<()> {
    let (table, key) = match &clause.subject {
        Subject::Attribute { column, .. } => {
            push_comparison(sql, column, clause.op, &clause.value);
            return Ok(());
        }
        Subject::Metric(key) => {
            sql.push(
                "EXISTS (SELECT 1 FROM logged_model_metrics mm \
                 WHERE mm.model_id = m.model_id AND mm.key = ",
            )
            .bind(key.as_str())
            .push(" AND mm.is_nan = 0 AND ");
            push_comparison(sql, "mm.value", clause.op, &clause.value);
            if !datasets.is_empty() {
                sql.push(" AND ");
                push_datasets(sql, datasets);
            }
            sql.push(")");
            return Ok(());
        }
        Subject::Param(key) => ("logged_model_params", key),
        Subject::Tag(key) => ("logged_model_tags", key),
    };
    sql.push("EXISTS (SELECT 1 FROM ")
        .push(table)
        .push(" kv WHERE kv.model_id = m.model_id AND kv.key = ")
        .bind(key.as_str())
        .push(" AND ");
    push_comparison(sql, "kv.value", clause.op, &clause.value);
    sql.push(")");
    Ok(())
}

/// Appends `<column> <op> <value>`; the parser has already paired operators with value kinds.
fn push_comparison(sql: &mut Sql, column: &str, op: Op, value: &Value) {
    match (op, value) {
        (Op::Like, Value::String(v)) => {
            sql.push(column)
                .push(" LIKE ")
                .bind(v.as_str())
                .push(" ESCAPE '\\'");
        }
        (Op::ILike, Value::String(v)) => {
            sql.push("LOWER(")
                .push(column)
                .push(") LIKE LOWER(")
                .bind(v.as_str())
                .push(") ESCAPE '\\'");
        }
        (Op::In | Op::NotIn, Value::List(items)) => {
            sql.push(column)
                .push(if op == Op::In { " IN " } else { " NOT IN " })
                .bind_list(items.iter().map(String::as_str));
        }
        (_, Value::Number(n)) => {
            sql.push(column)
                .push(" ")
                .push(sql_op(op))
                .push(" ")
                .bind(*n);
        }
        (_, Value::String(s)) => {
            sql.push(column)
                .push(" ")
                .push(sql_op(op))
                .push(" ")
                .bind(s.as_str());
        }
        (_, Value::List(_)) => unreachable!("lists are only parsed for IN and NOT IN"),
    }
}

fn sql_op(op: Op) -> &'static str {
    match op {
        Op::Eq => "=",
        Op::Ne => "<>",
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Gt => ">",
        _ => ">=",
    }
}

/// A lexical token of a filter, with its byte offset.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// A word or a backticked / double-quoted name, possibly dotted: `tags.\`my key\``.
    Identifier(Vec<String>),
    /// A `'...'` literal (without its quotes; MLflow does no unescaping).
    Quoted(String),
    /// A numeric literal as written.
    Number(String),
    /// A parenthesized list of quoted strings.
    List(Vec<String>),
}

/// Parses a logged-model filter into clauses; empty means no filter.
fn parse_filter(input: &str) -> Result<Vec<Clause>> {
    let invalid = |detail: String| {
        Error::invalid(format!(
            "Invalid filter string: '{input}'. {detail} Expected a list of comparisons separated \
             by 'AND' (e.g. 'metrics.loss > 0.1 AND params.lr = 0.01')."
        ))
    };
    let mut lexer = Lexer {
        text: input,
        pos: 0,
    };
    let mut clauses = Vec::new();
    loop {
        lexer.skip_ws();
        if lexer.at_end() {
            break;
        }
        let start = lexer.pos;
        let parts = match lexer.token().map_err(&invalid)? {
            Token::Identifier(parts) => parts,
            other => {
                return Err(invalid(format!(
                    "Expected an identifier at position {start}, found {other:?}."
                )));
            }
        };
        let subject = resolve_subject(&parts)?;
        lexer.skip_ws();
        let op_pos = lexer.pos;
        let op = lexer.comparator().ok_or_else(|| {
            invalid(format!(
                "Expected a comparison operator at position {op_pos}."
            ))
        })?;
        lexer.skip_ws();
        let value_pos = lexer.pos;
        if lexer.at_end() {
            return Err(invalid(format!(
                "Expected a value at position {value_pos}."
            )));
        }
        let value = lexer.token().map_err(&invalid)?;
        clauses.push(check_clause(subject, op, value)?);
        lexer.skip_ws();
        if lexer.at_end() {
            break;
        }
        let and_pos = lexer.pos;
        if !lexer.keyword("AND") {
            return Err(invalid(format!("Expected 'AND' at position {and_pos}.")));
        }
    }
    let values: usize = clauses
        .iter()
        .map(|c| match &c.value {
            Value::List(items) => items.len(),
            _ => 1,
        })
        .sum();
    check_filter_size(clauses.len(), values)?;
    Ok(clauses)
}

/// `entity.key` (split at the first dot) or a bare attribute name.
fn resolve_subject(parts: &[String]) -> Result<Subject> {
    let (entity, key) = match parts {
        [key] => ("attributes", key.clone()),
        [entity, rest @ ..] => (entity.as_str(), rest.join(".")),
        [] => unreachable!("identifiers have at least one part"),
    };
    let keyed = |make: fn(String) -> Subject| {
        if key.is_empty() {
            Err(Error::invalid(format!(
                "Invalid filter: '{entity}.' names no key"
            )))
        } else {
            Ok(make(key.clone()))
        }
    };
    match entity {
        "attributes" => attribute(&key)
            .map(|(column, numeric)| Subject::Attribute { column, numeric })
            .ok_or_else(|| {
                Error::invalid(format!(
                    "Invalid attribute key '{key}' specified. Valid keys are '{{{ATTRIBUTE_KEYS}}}'"
                ))
            }),
        "metrics" => keyed(Subject::Metric),
        "params" => keyed(Subject::Param),
        "tags" => keyed(Subject::Tag),
        other => Err(Error::invalid(format!(
            "Invalid entity type: '{other}'. Expected one of {ENTITIES}."
        ))),
    }
}

fn describe(subject: &Subject) -> String {
    match subject {
        Subject::Attribute { column, .. } => {
            format!("attributes.{}", column.trim_start_matches("m."))
        }
        Subject::Metric(k) => format!("metrics.{k}"),
        Subject::Param(k) => format!("params.{k}"),
        Subject::Tag(k) => format!("tags.{k}"),
    }
}

/// Pairs the comparator with the subject's kind and the value's: numbers for metrics and
/// timestamps, strings (quoted, or a bare number or word, which MLflow takes as written) or an
/// `IN` list for the rest. Status values are normalized to their stored names.
fn check_clause(subject: Subject, op: Op, value: Token) -> Result<Clause> {
    let numeric = matches!(
        subject,
        Subject::Metric(_) | Subject::Attribute { numeric: true, .. }
    );
    let allowed: &[Op] = if numeric { &NUMERIC_OPS } else { &STRING_OPS };
    if !allowed.contains(&op) {
        let names: Vec<String> = allowed
            .iter()
            .map(|o| format!("'{}'", o.as_str()))
            .collect();
        return Err(Error::invalid(format!(
            "Invalid comparison operator for {}: '{}'. Expected one of ({}).",
            describe(&subject),
            op.as_str(),
            names.join(", ")
        )));
    }
    let value = match (numeric, op, value) {
        (true, _, Token::Number(n)) => Value::Number(
            n.parse()
                .map_err(|_| Error::invalid(format!("Invalid filter: '{n}' is not a number")))?,
        ),
        (true, _, other) => {
            return Err(Error::invalid(format!(
                "Invalid filter: {} compares with a number, not {}",
                describe(&subject),
                token_text(&other)
            )));
        }
        (false, Op::In | Op::NotIn, Token::List(items)) => Value::List(items),
        (false, Op::In | Op::NotIn, other) => {
            return Err(Error::invalid(format!(
                "Invalid filter: {} {} needs a list of quoted strings such as ('a', 'b'), not {}",
                describe(&subject),
                op.as_str(),
                token_text(&other)
            )));
        }
        (false, _, Token::List(_)) => {
            return Err(Error::invalid(format!(
                "Invalid filter: a list can only be compared with IN or NOT IN, not '{}'",
                op.as_str()
            )));
        }
        (false, _, Token::Quoted(s) | Token::Number(s)) => Value::String(s),
        (false, _, Token::Identifier(parts)) => Value::String(parts.join(".")),
    };
    let value = match (&subject, op, value) {
        (Subject::Attribute { column, .. }, Op::Eq | Op::Ne | Op::In | Op::NotIn, v)
            if *column == "m.status" =>
        {
            let canonical =
                |s: String| LoggedModelStatus::parse(&s).map_or(s, |st| st.as_str().to_string());
            match v {
                Value::String(s) => Value::String(canonical(s)),
                Value::List(items) => Value::List(items.into_iter().map(canonical).collect()),
                other => other,
            }
        }
        (_, _, v) => v,
    };
    Ok(Clause { subject, op, value })
}

fn token_text(token: &Token) -> String {
    match token {
        Token::Identifier(parts) => parts.join("."),
        Token::Quoted(s) => format!("'{s}'"),
        Token::Number(n) => n.clone(),
        Token::List(items) => format!("{items:?}"),
    }
}

struct Lexer<'a> {
    text: &'a str,
    pos: usize,
}

impl Lexer<'_> {
    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    /// Consumes `word` (any case) if it stands alone here.
    fn keyword(&mut self, word: &str) -> bool {
        let rest = self.rest();
        let matches = rest.len() >= word.len()
            && rest.is_char_boundary(word.len())
            && rest[..word.len()].eq_ignore_ascii_case(word)
            && !rest[word.len()..].chars().next().is_some_and(is_word_char);
        if matches {
            self.pos += word.len();
        }
        matches
    }

    /// A comparator: a symbol, or `LIKE`, `ILIKE`, `IN`, `NOT IN` in any case.
    fn comparator(&mut self) -> Option<Op> {
        for (symbol, op) in [
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("=", Op::Eq),
            ("<", Op::Lt),
            (">", Op::Gt),
        ] {
            if self.rest().starts_with(symbol) {
                self.pos += symbol.len();
                return Some(op);
            }
        }
        if self.keyword("LIKE") {
            return Some(Op::Like);
        }
        if self.keyword("ILIKE") {
            return Some(Op::ILike);
        }
        if self.keyword("IN") {
            return Some(Op::In);
        }
        let before = self.pos;
        if self.keyword("NOT") {
            self.skip_ws();
            if self.keyword("IN") {
                return Some(Op::NotIn);
            }
        }
        self.pos = before;
        None
    }

    /// The next value or identifier token.
    fn token(&mut self) -> Result<Token, String> {
        let start = self.pos;
        let c = self.peek().ok_or("Unexpected end of the filter.")?;
        match c {
            '\'' => self.quoted('\'').map(Token::Quoted),
            '(' => self.list().map(Token::List),
            '`' | '"' => self.identifier(),
            c if c.is_ascii_digit() || c == '.' || c == '-' || c == '+' => self
                .number()
                .ok_or_else(|| format!("Invalid number at position {start}.")),
            c if is_word_char(c) => self.identifier(),
            other => Err(format!("Unexpected '{other}' at position {start}.")),
        }
    }

    /// A `q`-quoted literal; the first closing quote ends it (no escapes, as in MLflow).
    fn quoted(&mut self, q: char) -> Result<String, String> {
        let start = self.pos;
        let body = &self.rest()[1..];
        let end = body
            .find(q)
            .ok_or_else(|| format!("Unterminated quote at position {start}."))?;
        let text = body[..end].to_string();
        self.pos += 1 + end + 1;
        Ok(text)
    }

    fn number(&mut self) -> Option<Token> {
        let rest = self.rest();
        let bytes = rest.as_bytes();
        let mut i = 0;
        if matches!(bytes.first(), Some(b'-' | b'+')) {
            i += 1;
        }
        let digits_start = i;
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        if i == digits_start {
            return None;
        }
        if i < bytes.len() && matches!(bytes[i], b'e' | b'E') {
            let mut j = i + 1;
            if j < bytes.len() && matches!(bytes[j], b'-' | b'+') {
                j += 1;
            }
            let exp_start = j;
            while j < bytes.len() && bytes[j].is_ascii_digit() {
                j += 1;
            }
            if j > exp_start {
                i = j;
            }
        }
        let text = rest[..i].to_string();
        if text.parse::<f64>().is_err() || rest[i..].chars().next().is_some_and(is_word_char) {
            return None;
        }
        self.pos += i;
        Some(Token::Number(text))
    }

    /// Dotted parts, each a word or a backticked or double-quoted name.
    fn identifier(&mut self) -> Result<Token, String> {
        let mut parts = Vec::new();
        loop {
            let start = self.pos;
            match self.peek() {
                Some(q @ ('`' | '"')) => parts.push(self.quoted(q)?),
                Some(c) if is_word_char(c) => {
                    let rest = self.rest();
                    let end = rest.find(|c: char| !is_word_char(c)).unwrap_or(rest.len());
                    parts.push(rest[..end].to_string());
                    self.pos += end;
                }
                _ => return Err(format!("Expected a name at position {start}.")),
            }
            if self.peek() == Some('.') {
                self.pos += 1;
            } else {
                return Ok(Token::Identifier(parts));
            }
        }
    }

    /// `('a', "b", ...)`: quoted strings separated by commas.
    fn list(&mut self) -> Result<Vec<String>, String> {
        let start = self.pos;
        self.pos += 1;
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            match self.peek() {
                Some(q @ ('\'' | '"')) => items.push(self.quoted(q)?),
                Some(')') if items.is_empty() => {
                    return Err(format!("Empty list at position {start}."));
                }
                _ => {
                    return Err(format!(
                        "Expected a list of quoted strings at position {start}."
                    ));
                }
            }
            self.skip_ws();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some(')') => {
                    self.pos += 1;
                    return Ok(items);
                }
                _ => return Err(format!("Unterminated list at position {start}.")),
            }
        }
    }
}

/// Letters, digits and `_` (sqlparse's word characters).
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The queries for the logged-model links of `run_uuids`, one per 1000 runs.
fn run_models_queries(run_uuids: &[String]) -> Vec<Sql> {
    run_uuids
        .chunks(1000)
        .map(|chunk| {
            let mut sql = Sql::new(
                "SELECT source_type, source_id, destination_id, step FROM inputs \
                 WHERE source_type IN ('RUN_INPUT', 'RUN_OUTPUT') \
                 AND destination_type IN ('MODEL_INPUT', 'MODEL_OUTPUT') AND source_id IN ",
            );
            sql.bind_list(chunk.iter().map(String::as_str))
                .push(" ORDER BY source_id, step, destination_id");
            sql
        })
        .collect()
}

/// [`Store::run_models`] on a direct SQLite connection, inside the caller's read.
pub(crate) fn run_models_direct(
    conn: &rusqlite::Connection,
    run_uuids: &[String],
) -> Result<HashMap<String, RunModels>> {
    let mut links = Vec::new();
    for sql in run_models_queries(run_uuids) {
        sql.query_direct(conn, |r| {
            links.push((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?));
            Ok(())
        })?;
    }
    Ok(run_models_from(links))
}

/// The links by run, from (source_type, run, model, step) rows in the queries' order.
fn run_models_from(links: Vec<(String, String, String, i64)>) -> HashMap<String, RunModels> {
    let mut out: HashMap<String, RunModels> = HashMap::new();
    for (kind, run, model_id, step) in links {
        let models = out.entry(run).or_default();
        if kind == "RUN_INPUT" {
            models.inputs.push(model_id);
        } else {
            models.outputs.push(ModelOutput { model_id, step });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(column: &'static str, numeric: bool) -> Subject {
        Subject::Attribute { column, numeric }
    }

    fn clause(subject: Subject, op: Op, value: Value) -> Clause {
        Clause { subject, op, value }
    }

    fn s(v: &str) -> Value {
        Value::String(v.into())
    }

    fn err(filter: &str) -> String {
        parse_filter(filter).unwrap_err().to_string()
    }

    #[test]
    fn statuses_read_by_name_short_name_or_number() {
        for (text, status) in [
            ("LOGGED_MODEL_READY", LoggedModelStatus::Ready),
            ("ready", LoggedModelStatus::Ready),
            ("2", LoggedModelStatus::Ready),
            ("LOGGED_MODEL_PENDING", LoggedModelStatus::Pending),
            ("1", LoggedModelStatus::Pending),
            (
                "LOGGED_MODEL_UPLOAD_FAILED",
                LoggedModelStatus::UploadFailed,
            ),
            ("3", LoggedModelStatus::UploadFailed),
        ] {
            assert_eq!(LoggedModelStatus::parse(text), Some(status), "{text}");
            assert_eq!(LoggedModelStatus::parse(status.as_str()), Some(status));
            assert_eq!(
                LoggedModelStatus::from_number(status.number()),
                Some(status)
            );
        }
        for bad in ["0", "4", "LOGGED_MODEL_STATUS_UNSPECIFIED", "", "done"] {
            assert_eq!(LoggedModelStatus::parse(bad), None, "{bad}");
        }
        assert_eq!(
            serde_json::to_string(&LoggedModelStatus::UploadFailed).unwrap(),
            "\"LOGGED_MODEL_UPLOAD_FAILED\""
        );
    }

    #[test]
    fn names_refuse_mlflows_characters() {
        assert!(validate_name("model").is_ok());
        assert!(validate_name("my model-2_x").is_ok());
        for bad in ["a/b", "a:b", "a.b", "50%", "say \"hi\"", "it's", ""] {
            let e = validate_name(bad).unwrap_err().to_string();
            assert!(e.contains("cannot contain"), "{bad}: {e}");
        }
    }

    #[test]
    fn filters_parse_entities_attributes_and_values() {
        assert_eq!(parse_filter("").unwrap(), vec![]);
        assert_eq!(parse_filter("   ").unwrap(), vec![]);
        assert_eq!(
            parse_filter("name = 'model'").unwrap(),
            vec![clause(attr("m.name", false), Op::Eq, s("model"))]
        );
        assert_eq!(
            parse_filter(
                "attributes.creation_time >= 17e11 and metrics.`val acc`>0.5 AND \
                 params.lr = 0.01 AND tags.\"mlflow.user\" LIKE 'ro%' AND \
                 tags.mlflow.source.type ILIKE 'local' AND"
            )
            .unwrap(),
            vec![
                clause(attr("m.creation_time", true), Op::Ge, Value::Number(17e11)),
                clause(
                    Subject::Metric("val acc".into()),
                    Op::Gt,
                    Value::Number(0.5)
                ),
                clause(Subject::Param("lr".into()), Op::Eq, s("0.01")),
                clause(Subject::Tag("mlflow.user".into()), Op::Like, s("ro%")),
                clause(
                    Subject::Tag("mlflow.source.type".into()),
                    Op::ILike,
                    s("local")
                ),
            ]
        );
        assert_eq!(
            parse_filter("model_id IN ('m-1', \"m-2\") AND source_run_id not in ('r')").unwrap(),
            vec![
                clause(
                    attr("m.model_id", false),
                    Op::In,
                    Value::List(vec!["m-1".into(), "m-2".into()])
                ),
                clause(
                    attr("m.source_run_id", false),
                    Op::NotIn,
                    Value::List(vec!["r".into()])
                ),
            ]
        );
        assert_eq!(
            parse_filter("status = 'READY' AND status IN ('2', 'LOGGED_MODEL_PENDING')").unwrap(),
            vec![
                clause(attr("m.status", false), Op::Eq, s("LOGGED_MODEL_READY")),
                clause(
                    attr("m.status", false),
                    Op::In,
                    Value::List(vec![
                        "LOGGED_MODEL_READY".into(),
                        "LOGGED_MODEL_PENDING".into()
                    ])
                ),
            ]
        );
        assert_eq!(
            parse_filter("metrics.loss<=-1.5e-3").unwrap(),
            vec![clause(
                Subject::Metric("loss".into()),
                Op::Le,
                Value::Number(-1.5e-3)
            )]
        );
    }

    #[test]
    fn filters_refuse_what_mlflow_refuses() {
        assert!(
            err("foo.bar = 'x'").contains(
                "Invalid entity type: 'foo'. Expected one of ['attributes', 'metrics', 'params', 'tags']."
            )
        );
        assert!(err("metric.acc > 1").contains("Invalid entity type: 'metric'"));
        assert!(
            err("lifecycle_stage = 'deleted'").contains("Invalid attribute key 'lifecycle_stage'")
        );
        assert!(
            err("metrics.acc LIKE '1'").contains("Invalid comparison operator for metrics.acc")
        );
        assert!(err("name > 'a'").contains("Invalid comparison operator for attributes.name"));
        assert!(err("metrics.acc > 'high'").contains("compares with a number"));
        assert!(err("creation_time > 'x'").contains("compares with a number"));
        assert!(err("name IN 'a'").contains("needs a list"));
        assert!(err("name = ('a')").contains("only be compared with IN"));
        assert!(err("name = 'a' OR name = 'b'").contains("Expected 'AND'"));
        assert!(err("name = 'a").contains("Unterminated quote"));
        assert!(err("name 'a'").contains("Expected a comparison operator"));
        assert!(err("name =").contains("Expected a value"));
        assert!(err("name IN ()").contains("Empty list"));
        assert!(err("= 'a'").contains("Invalid filter string"));
        assert!(err("tags. = 'a'").contains("Expected a name"));
    }

    #[test]
    fn order_keys_are_attributes_or_metrics() {
        let order = |field: &str| LoggedModelOrder {
            field_name: field.into(),
            ascending: false,
            dataset_name: None,
            dataset_digest: None,
        };
        assert_eq!(
            parse_order(&order("creation_time")).unwrap(),
            Sort::Column("m.creation_time", false)
        );
        assert_eq!(
            parse_order(&order("creation_timestamp_ms")).unwrap(),
            Sort::Column("m.creation_time", false)
        );
        assert_eq!(
            parse_order(&order("experiment_id")).unwrap(),
            Sort::Column("m.experiment_id", false)
        );
        assert_eq!(
            parse_order(&LoggedModelOrder {
                dataset_name: Some("train".into()),
                dataset_digest: Some("abc".into()),
                ..order("metrics.acc")
            })
            .unwrap(),
            Sort::Metric {
                key: "acc".into(),
                ascending: false,
                datasets: vec![DatasetFilter {
                    dataset_name: "train".into(),
                    dataset_digest: Some("abc".into()),
                }],
            }
        );
        let e = parse_order(&order("params.lr")).unwrap_err().to_string();
        assert!(e.contains("Only metrics are supported"), "{e}");
        let e = parse_order(&order("bogus")).unwrap_err().to_string();
        assert!(e.contains("Invalid order by field name: bogus"), "{e}");
    }

    #[test]
    fn nan_and_infinities_are_stored_like_run_metrics() {
        assert_eq!(stored_value(0.5), (0.5, 0));
        assert_eq!(stored_value(f64::NAN), (0.0, 1));
        assert_eq!(stored_value(f64::INFINITY), (f64::MAX, 0));
        assert_eq!(stored_value(f64::NEG_INFINITY), (-f64::MAX, 0));
    }
}
