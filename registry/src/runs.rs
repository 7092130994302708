//! Runs: one execution of training code, with params (immutable), metrics (full history), tags and
//! dataset inputs (lineage).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use utoipa::ToSchema;

use crate::audit::{self, Actor};
use crate::db::{Backend, Store, new_id, now_ms};
use crate::error::{Error, Result};
use crate::experiments::{LifecycleStage, Tag, active_experiment_location};
use crate::sql::{Sql, Tx};
use crate::{run_names, validate};

/// The tag MLflow keeps in step with a run's name.
pub const RUN_NAME_TAG: &str = "mlflow.runName";

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatus {
    /// Started, not ended.
    Running,
    /// Created, waiting to start.
    Scheduled,
    /// Ended normally.
    Finished,
    /// Ended with an error.
    Failed,
    /// Stopped from outside.
    Killed,
}

impl RunStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "RUNNING",
            RunStatus::Scheduled => "SCHEDULED",
            RunStatus::Finished => "FINISHED",
            RunStatus::Failed => "FAILED",
            RunStatus::Killed => "KILLED",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "RUNNING" => RunStatus::Running,
            "SCHEDULED" => RunStatus::Scheduled,
            "FINISHED" => RunStatus::Finished,
            "FAILED" => RunStatus::Failed,
            "KILLED" => RunStatus::Killed,
            other => return Err(Error::invalid(format!("unknown run status '{other}'"))),
        })
    }
}

/// A run's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RunInfo {
    /// 32 hex digits.
    pub run_id: String,
    /// Same as `run_id` (MLflow keeps both).
    pub run_uuid: String,
    /// Human-readable name.
    pub run_name: String,
    /// The experiment the run belongs to.
    pub experiment_id: String,
    /// Who created it.
    pub user_id: String,
    /// Where it is in its life.
    pub status: RunStatus,
    /// ms since the Unix epoch.
    pub start_time: i64,
    /// ms since the Unix epoch, once ended.
    pub end_time: Option<i64>,
    /// Root of the run's artifacts.
    pub artifact_uri: String,
    /// Live or soft-deleted.
    pub lifecycle_stage: LifecycleStage,
}

/// One point of a metric's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Metric {
    /// Metric key.
    pub key: String,
    /// Value. The native API takes only finite numbers (JSON has no NaN or infinity).
    pub value: f64,
    /// ms since the Unix epoch; defaults to the time of logging.
    #[serde(default = "now_ms")]
    pub timestamp: i64,
    /// Training step; defaults to 0.
    #[serde(default)]
    pub step: i64,
}

/// A hyperparameter: set once, never changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Param {
    /// Param key.
    pub key: String,
    /// Param value, as a string.
    pub value: String,
}

impl RunInfo {
    /// The run's root in refit's artifact store (`<experiment>/<run>/artifacts`), when its
    /// artifact URI is one refit serves (`mlflow-artifacts:`).
    pub fn artifact_root(&self) -> Option<String> {
        self.artifact_uri
            .strip_prefix("mlflow-artifacts:")
            .map(|rest| rest.trim_start_matches('/').to_string())
    }
}

/// A run's params, latest metrics and tags.
#[derive(Debug, Clone, PartialEq, Default, Serialize, ToSchema)]
pub struct RunData {
    /// The latest value of each metric.
    pub metrics: Vec<Metric>,
    /// All params.
    pub params: Vec<Param>,
    /// All tags.
    pub tags: Vec<Tag>,
}

/// A dataset as MLflow describes it: refit's snapshots put their full-content digest in `digest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Dataset {
    /// Dataset name.
    pub name: String,
    /// Content digest.
    pub digest: String,
    /// Kind of source, e.g. `refit-snapshot`, `local`, `http`.
    pub source_type: String,
    /// Source description (often JSON).
    pub source: String,
    /// Schema description (often JSON).
    #[serde(default)]
    pub schema: Option<String>,
    /// Profile (row counts and the like, often JSON).
    #[serde(default)]
    pub profile: Option<String>,
}

/// A dataset used by a run, with tags such as `mlflow.data.context` = `training`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DatasetInput {
    /// Tags of the use, e.g. its context.
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// The dataset.
    pub dataset: Dataset,
}

/// A run's inputs.
#[derive(Debug, Clone, PartialEq, Default, Serialize, ToSchema)]
pub struct RunInputs {
    /// Datasets the run read.
    pub dataset_inputs: Vec<DatasetInput>,
}

/// A run with everything recorded about it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Run {
    /// Metadata.
    pub info: RunInfo,
    /// Params, latest metrics, tags.
    pub data: RunData,
    /// Lineage.
    pub inputs: RunInputs,
}

/// What a new run starts with.
#[derive(Debug, Clone, Default)]
pub struct NewRun {
    /// Experiment to create the run in.
    pub experiment_id: String,
    /// Name; generated (`bold-heron-417`) when absent.
    pub run_name: Option<String>,
    /// ms since the Unix epoch; now when absent.
    pub start_time: Option<i64>,
    /// Initial tags.
    pub tags: Vec<Tag>,
    /// Recorded creator; the actor's name when absent.
    pub user_id: Option<String>,
}

/// Changes to a run's metadata; absent fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct RunUpdate {
    /// New status.
    pub status: Option<RunStatus>,
    /// End time, ms since the Unix epoch.
    pub end_time: Option<i64>,
    /// New name.
    pub run_name: Option<String>,
}

/// A run as stored: its internal row id (what params, tags and metrics refer to) and its info.
pub(crate) struct StoredRun {
    pub(crate) id: i64,
    pub(crate) info: RunInfo,
}

/// The columns [`run_from_row`] reads, for `SELECT ... FROM runs r`.
pub(crate) const RUN_COLUMNS: &str = "r.id, r.run_uuid, r.experiment_id, r.name, r.user_id, r.status, \
     r.start_time, r.end_time, r.lifecycle_stage, r.artifact_uri";

pub(crate) fn run_from_row(row: &AnyRow) -> Result<StoredRun> {
    let uuid: String = row.try_get("run_uuid")?;
    let experiment_id: i64 = row.try_get("experiment_id")?;
    let info = RunInfo {
        run_uuid: uuid.clone(),
        run_id: uuid,
        run_name: row.try_get("name")?,
        experiment_id: experiment_id.to_string(),
        user_id: row.try_get("user_id")?,
        status: RunStatus::parse(&row.try_get::<String, _>("status")?)?,
        start_time: row.try_get("start_time")?,
        end_time: row.try_get("end_time")?,
        artifact_uri: row.try_get("artifact_uri")?,
        lifecycle_stage: LifecycleStage::parse(&row.try_get::<String, _>("lifecycle_stage")?),
    };
    Ok(StoredRun {
        id: row.try_get("id")?,
        info,
    })
}

/// A run's stored row from a direct SQLite query whose first columns are [`RUN_COLUMNS`].
pub(crate) fn stored_run_direct(r: &rusqlite::Row<'_>) -> Result<StoredRun> {
    let uuid: String = r.get(1)?;
    let status: String = r.get(5)?;
    let experiment_id: i64 = r.get(2)?;
    Ok(StoredRun {
        id: r.get(0)?,
        info: RunInfo {
            run_uuid: uuid.clone(),
            run_id: uuid,
            run_name: r.get(3)?,
            experiment_id: experiment_id.to_string(),
            user_id: r.get(4)?,
            status: RunStatus::parse(&status)?,
            start_time: r.get(6)?,
            end_time: r.get(7)?,
            artifact_uri: r.get(9)?,
            lifecycle_stage: LifecycleStage::parse(&r.get::<_, String>(8)?),
        },
    })
}

/// The stored rows of the runs with row ids `ids`, in that order, from a direct SQLite read (in
/// whose transaction each of them exists).
pub(crate) fn stored_runs_direct(
    conn: &rusqlite::Connection,
    ids: &[i64],
) -> Result<Vec<StoredRun>> {
    let mut by_id = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(1000) {
        let mut sql = Sql::new(&format!("SELECT {RUN_COLUMNS} FROM runs r WHERE r.id IN "));
        sql.bind_list(chunk.iter().copied());
        for run in sql.rows_direct(conn, stored_run_direct)? {
            by_id.insert(run.id, run);
        }
    }
    ids.iter()
        .map(|id| {
            by_id.remove(id).ok_or_else(|| {
                Error::Integrity(format!("run row {id} vanished within one read transaction"))
            })
        })
        .collect()
}

fn metric_from_row(row: &AnyRow) -> Result<Metric> {
    let is_nan: i64 = row.try_get("is_nan")?;
    Ok(Metric {
        key: row.try_get("key")?,
        value: if is_nan != 0 {
            f64::NAN
        } else {
            row.try_get("value")?
        },
        timestamp: row.try_get("timestamp")?,
        step: row.try_get("step")?,
    })
}

/// NaN cannot be stored as a REAL on SQLite; it is stored as 0 with a flag, as MLflow does.
fn stored_value(value: f64) -> (f64, i64) {
    if value.is_nan() { (0.0, 1) } else { (value, 0) }
}

/// The query for the row of the run `run_id` ([`RUN_COLUMNS`]).
fn run_row(run_id: &str) -> Sql {
    let mut sql = Sql::new(&format!(
        "SELECT {RUN_COLUMNS} FROM runs r WHERE r.run_uuid = "
    ));
    sql.bind(run_id);
    sql
}

/// The error for a run id that names no run.
pub(crate) fn no_run(run_id: &str) -> Error {
    Error::not_found(format!("Run with id={run_id} not found"))
}

async fn load_run(tx: &mut Tx<'_>, run_id: &str) -> Result<StoredRun> {
    tx.fetch_rows(run_row(run_id), run_from_row, stored_run_direct)
        .await?
        .pop()
        .ok_or_else(|| no_run(run_id))
}

/// Loads a run that must exist and be active, as every write to a run requires.
pub(crate) async fn active_run(tx: &mut Tx<'_>, run_id: &str) -> Result<StoredRun> {
    let run = load_run(tx, run_id).await?;
    if run.info.lifecycle_stage != LifecycleStage::Active {
        return Err(Error::invalid(format!(
            "The run {run_id} must be in the 'active' state. Current state is deleted."
        )));
    }
    Ok(run)
}

/// Each run's params, tags, latest metrics and dataset inputs as JSON arrays (PostgreSQL), for
/// `SELECT ... FROM ... runs r`: correlated subqueries, which the planner runs as primary-key
/// probes per run, where `run_id IN (...)` lists of a page's ids were planned as scans of whole
/// tables. Non-finite metric values come out as the strings `"Infinity"` and `"-Infinity"`.
const RUN_DATA_JSON: &str = "\
    (SELECT json_agg(json_build_array(key, value) ORDER BY key)::text \
        FROM params WHERE run_id = r.id) AS params_json, \
    (SELECT json_agg(json_build_array(key, value) ORDER BY key)::text \
        FROM tags WHERE run_id = r.id) AS tags_json, \
    (SELECT json_agg(json_build_array(key, value, timestamp, step, is_nan) ORDER BY key)::text \
        FROM latest_metrics WHERE run_id = r.id) AS metrics_json, \
    (SELECT json_agg(json_build_array(d.name, d.digest, d.source_type, d.source, d.schema, d.profile, \
            (SELECT json_agg(json_build_array(t.name, t.value) ORDER BY t.name) \
             FROM input_tags t WHERE t.input_uuid = i.input_uuid)) \
        ORDER BY d.name, d.digest)::text \
        FROM inputs i JOIN input_datasets d ON d.dataset_uuid = i.source_id \
        WHERE i.source_type = 'DATASET' AND i.destination_type = 'RUN' \
        AND i.destination_id = r.run_uuid) AS inputs_json";

/// The runs `page` selects, with their data, in one statement on PostgreSQL. `page` is a query
/// with the columns `id` (of the run) and `ord` (its place in the result).
pub(crate) async fn load_page_postgres(
    conn: &mut AnyConnection,
    mut page: Sql,
) -> Result<Vec<Run>> {
    page.enclose(
        &format!("SELECT {RUN_COLUMNS}, {RUN_DATA_JSON} FROM ("),
        ") p JOIN runs r ON r.id = p.id ORDER BY p.ord",
    );
    page.fetch_all(conn)
        .await?
        .iter()
        .map(run_with_data_from_row)
        .collect()
}

/// A float as PostgreSQL's JSON writes it: a number, or a string for the non-finite values.
#[derive(Deserialize)]
#[serde(untagged)]
enum JsonFloat {
    Number(f64),
    Text(String),
}

impl JsonFloat {
    fn value(self) -> Result<f64> {
        match self {
            JsonFloat::Number(v) => Ok(v),
            JsonFloat::Text(t) => t
                .parse()
                .map_err(|_| decode_error(format!("stored metric value '{t}' is not a number"))),
        }
    }
}

fn decode_error(what: String) -> Error {
    Error::Database(sqlx::Error::Decode(what.into()))
}

/// A dataset input as [`RUN_DATA_JSON`] writes it: name, digest, source type, source, schema,
/// profile, tags.
type InputJson = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<Vec<(String, String)>>,
);

fn run_with_data_from_row(row: &AnyRow) -> Result<Run> {
    fn list<T: serde::de::DeserializeOwned>(row: &AnyRow, column: &str) -> Result<Vec<T>> {
        match row.try_get::<Option<String>, _>(column)? {
            None => Ok(Vec::new()),
            Some(text) => serde_json::from_str(&text)
                .map_err(|e| decode_error(format!("reading a run's {column}: {e}"))),
        }
    }
    let key_values = |column| -> Result<Vec<(String, String)>> { list(row, column) };
    let mut metrics = Vec::new();
    for (key, value, timestamp, step, is_nan) in
        list::<(String, JsonFloat, i64, i64, i64)>(row, "metrics_json")?
    {
        metrics.push(latest_metric(
            (key, value.value()?),
            (timestamp, step, is_nan),
        ));
    }
    let dataset_inputs = list::<InputJson>(row, "inputs_json")?
        .into_iter()
        .map(
            |(name, digest, source_type, source, schema, profile, tags)| DatasetInput {
                tags: tags
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(key, value)| Tag { key, value })
                    .collect(),
                dataset: Dataset {
                    name,
                    digest,
                    source_type,
                    source,
                    schema,
                    profile,
                },
            },
        )
        .collect();
    Ok(Run {
        info: run_from_row(row)?.info,
        data: RunData {
            metrics,
            params: key_values("params_json")?
                .into_iter()
                .map(|(key, value)| Param { key, value })
                .collect(),
            tags: key_values("tags_json")?
                .into_iter()
                .map(|(key, value)| Tag { key, value })
                .collect(),
        },
        inputs: RunInputs { dataset_inputs },
    })
}

/// Loads params, latest metrics, tags and inputs for `stored` on SQLite, keeping their order,
/// through a direct connection in one blocking call: sqlx hands each row from its worker thread
/// to the async task separately, which for the thousands of rows of a search page costs more than
/// reading them.
pub(crate) fn attach_data_direct(
    conn: &rusqlite::Connection,
    stored: Vec<StoredRun>,
) -> Result<Vec<Run>> {
    let mut data = RunRows::default();
    for chunk in stored.chunks(1000) {
        let [params, tags, metrics, inputs] = run_data_queries(chunk);
        params.query_direct(conn, |r| {
            data.params.push((r.get(0)?, r.get(1)?, r.get(2)?));
            Ok(())
        })?;
        tags.query_direct(conn, |r| {
            data.tags.push((r.get(0)?, r.get(1)?, r.get(2)?));
            Ok(())
        })?;
        metrics.query_direct(conn, |r| {
            data.metrics.push((
                r.get(0)?,
                latest_metric((r.get(1)?, r.get(2)?), (r.get(3)?, r.get(4)?, r.get(5)?)),
            ));
            Ok(())
        })?;
        let first = data.inputs.len();
        inputs.query_direct(conn, |r| {
            data.inputs.push(InputRow {
                run_uuid: r.get(0)?,
                input_uuid: r.get(1)?,
                dataset: Dataset {
                    name: r.get(2)?,
                    digest: r.get(3)?,
                    source_type: r.get(4)?,
                    source: r.get(5)?,
                    schema: r.get(6)?,
                    profile: r.get(7)?,
                },
            });
            Ok(())
        })?;
        if let Some(sql) = input_tags_query(&data.inputs[first..]) {
            sql.query_direct(conn, |r| {
                data.input_tags.push((r.get(0)?, r.get(1)?, r.get(2)?));
                Ok(())
            })?;
        }
    }
    Ok(data.assemble(stored))
}

/// The queries for the params, tags, latest metrics and dataset inputs of `runs`, each ordered
/// as the run's lists are.
fn run_data_queries(runs: &[StoredRun]) -> [Sql; 4] {
    // Ordered by (run_id, key), their primary key, which the lookups walk anyway: ordering by key
    // alone would sort every row of the page in a temporary b-tree.
    let ids = || runs.iter().map(|r| r.id);
    let mut params = Sql::new("SELECT run_id, key, value FROM params WHERE run_id IN ");
    params.bind_list(ids()).push(" ORDER BY run_id, key");
    let mut tags = Sql::new("SELECT run_id, key, value FROM tags WHERE run_id IN ");
    tags.bind_list(ids()).push(" ORDER BY run_id, key");
    let mut metrics = Sql::new(
        "SELECT run_id, key, value, timestamp, step, is_nan FROM latest_metrics WHERE run_id IN ",
    );
    metrics.bind_list(ids()).push(" ORDER BY run_id, key");
    let mut inputs = Sql::new(
        "SELECT i.destination_id AS run_uuid, i.input_uuid, d.name, d.digest, d.source_type, \
         d.source, d.schema, d.profile FROM inputs i JOIN input_datasets d ON d.dataset_uuid = i.source_id \
         WHERE i.source_type = 'DATASET' AND i.destination_type = 'RUN' AND i.destination_id IN ",
    );
    inputs
        .bind_list(runs.iter().map(|r| r.info.run_id.as_str()))
        .push(" ORDER BY d.name, d.digest");
    [params, tags, metrics, inputs]
}

/// The query for the tags of `inputs`, if there are any.
fn input_tags_query(inputs: &[InputRow]) -> Option<Sql> {
    if inputs.is_empty() {
        return None;
    }
    let mut sql = Sql::new("SELECT input_uuid, name, value FROM input_tags WHERE input_uuid IN ");
    sql.bind_list(inputs.iter().map(|i| i.input_uuid.as_str()))
        .push(" ORDER BY name");
    Some(sql)
}

/// A latest metric from its stored columns: (key, value), (timestamp, step, is_nan).
fn latest_metric(
    (key, value): (String, f64),
    (timestamp, step, is_nan): (i64, i64, i64),
) -> Metric {
    Metric {
        key,
        value: if is_nan != 0 { f64::NAN } else { value },
        timestamp,
        step,
    }
}

/// A dataset input row.
struct InputRow {
    run_uuid: String,
    input_uuid: String,
    dataset: Dataset,
}

/// The rows of a page of runs' data, however they were read.
#[derive(Default)]
struct RunRows {
    /// (run, key, value)
    params: Vec<(i64, String, String)>,
    tags: Vec<(i64, String, String)>,
    metrics: Vec<(i64, Metric)>,
    inputs: Vec<InputRow>,
    /// (input, name, value)
    input_tags: Vec<(String, String, String)>,
}

impl RunRows {
    /// The runs with their data, in the order of `stored`.
    fn assemble(self, stored: Vec<StoredRun>) -> Vec<Run> {
        let by_id: HashMap<i64, usize> =
            stored.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
        let mut runs: Vec<Run> = stored
            .into_iter()
            .map(|r| Run {
                info: r.info,
                data: RunData::default(),
                inputs: RunInputs::default(),
            })
            .collect();
        let by_uuid: HashMap<String, usize> = runs
            .iter()
            .enumerate()
            .map(|(i, r)| (r.info.run_id.clone(), i))
            .collect();
        for (run, key, value) in self.params {
            runs[by_id[&run]].data.params.push(Param { key, value });
        }
        for (run, key, value) in self.tags {
            runs[by_id[&run]].data.tags.push(Tag { key, value });
        }
        for (run, metric) in self.metrics {
            runs[by_id[&run]].data.metrics.push(metric);
        }
        let mut by_input: HashMap<String, (usize, usize)> = HashMap::new();
        for input in self.inputs {
            let r = by_uuid[&input.run_uuid];
            let list = &mut runs[r].inputs.dataset_inputs;
            by_input.insert(input.input_uuid, (r, list.len()));
            list.push(DatasetInput {
                tags: Vec::new(),
                dataset: input.dataset,
            });
        }
        for (input, key, value) in self.input_tags {
            let (r, i) = by_input[&input];
            runs[r].inputs.dataset_inputs[i]
                .tags
                .push(Tag { key, value });
        }
        runs
    }
}

fn validate_batch(metrics: &[Metric], params: &[Param], tags: &[Tag]) -> Result<()> {
    let too_many = |kind: &str, n: usize, max: usize| {
        Error::invalid(format!(
            "A batch logging request can contain at most {max} {kind}. Got {n} {kind}. \
             Please split up {kind} across multiple requests and try again."
        ))
    };
    if metrics.len() > validate::MAX_BATCH_METRICS {
        return Err(too_many(
            "metrics",
            metrics.len(),
            validate::MAX_BATCH_METRICS,
        ));
    }
    if params.len() > validate::MAX_BATCH_PARAMS {
        return Err(too_many("params", params.len(), validate::MAX_BATCH_PARAMS));
    }
    if tags.len() > validate::MAX_BATCH_TAGS {
        return Err(too_many("tags", tags.len(), validate::MAX_BATCH_TAGS));
    }
    let total = metrics.len() + params.len() + tags.len();
    if total > validate::MAX_BATCH_TOTAL {
        return Err(Error::invalid(format!(
            "A batch logging request can contain at most {} total metrics, params and tags. Got {total}.",
            validate::MAX_BATCH_TOTAL
        )));
    }
    for m in metrics {
        validate::key("metric", &m.key)?;
    }
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for p in params {
        validate::key("param", &p.key)?;
        validate::value_length("param", &p.key, &p.value, validate::MAX_PARAM_VALUE_LENGTH)?;
        if let Some(previous) = seen.insert(&p.key, &p.value)
            && previous != p.value
        {
            return Err(Error::invalid(format!(
                "Duplicate parameter keys have been submitted: param '{}' appears with values '{previous}' and '{}'",
                p.key, p.value
            )));
        }
    }
    for t in tags {
        validate::key("tag", &t.key)?;
        validate::value_length("tag", &t.key, &t.value, validate::MAX_TAG_VALUE_LENGTH)?;
    }
    Ok(())
}

/// Writes params to an active run (row `run`) inside the caller's transaction. Params are
/// immutable: if any would change, the whole call fails.
async fn write_params(tx: &mut Tx<'_>, run: &StoredRun, params: &[Param]) -> Result<()> {
    if params.is_empty() {
        return Ok(());
    }
    // Insert first, then compare with what is stored: a concurrent writer's value, committed
    // while this insert waited for it, is then seen and refuses this batch instead of being
    // silently kept.
    let mut sql = Sql::new("INSERT INTO params (run_id, key, value) VALUES ");
    for (i, p) in params.iter().enumerate() {
        sql.push(if i == 0 { "(" } else { ", (" });
        sql.bind(run.id)
            .push(", ")
            .bind(p.key.as_str())
            .push(", ")
            .bind(p.value.as_str())
            .push(")");
    }
    sql.push(" ON CONFLICT (run_id, key) DO NOTHING");
    tx.execute(sql).await?;
    let mut sql = Sql::new("SELECT key, value FROM params WHERE run_id = ");
    sql.bind(run.id)
        .push(" AND key IN ")
        .bind_list(params.iter().map(|p| p.key.as_str()));
    let stored: HashMap<String, String> = tx.fetch_all(sql).await?.into_iter().collect();
    for p in params {
        if let Some(old) = stored.get(&p.key)
            && old != &p.value
        {
            return Err(Error::invalid(format!(
                "Changing param values is not allowed. Param with key='{}' was already logged \
                 with value='{old}' for run ID='{}'. Attempted logging new value '{}'.",
                p.key, run.info.run_id, p.value
            )));
        }
    }
    Ok(())
}

/// The statement appending metric points to the log for the run `run_uuid`, only while the run is
/// active; a trigger keeps latest_metrics (the newest point per key) in step. A point already
/// stored is appended again and kept once: the history's readers and [`move_metric_log`] drop the
/// copies.
fn insert_metrics(run_uuid: &str, metrics: &[Metric]) -> Sql {
    let mut sql = Sql::new(
        "INSERT INTO metric_log (run_id, key, step, timestamp, value, is_nan) SELECT r.id, v.* FROM runs r, (VALUES ",
    );
    for (i, m) in metrics.iter().enumerate() {
        let (value, is_nan) = stored_value(m.value);
        sql.push(if i == 0 { "(" } else { ", (" });
        sql.bind(m.key.as_str())
            .push(", ")
            .bind(m.step)
            .push(", ")
            .bind(m.timestamp)
            .push(", ")
            .bind(value)
            .push(", ")
            .bind(is_nan)
            .push(")");
    }
    sql.push(") AS v WHERE r.run_uuid = ")
        .bind(run_uuid)
        .push(" AND r.lifecycle_stage = 'active'");
    sql
}

/// The statement moving the run's version once a batch of metric points is in (SQLite, whose
/// searches keep rendered runs by version: see migration 0013). A trigger on `latest_metrics`
/// would move it once per point. Other backends: none.
fn metrics_moved_version(backend: Backend, run_uuid: &str) -> Option<Sql> {
    (backend == Backend::Sqlite).then(|| {
        let mut sql = Sql::new("UPDATE runs SET data_version = data_version + 1 WHERE run_uuid = ");
        sql.bind(run_uuid);
        sql
    })
}

/// Points the metric log holds before a write moves them into `metrics`: a move writes each of
/// the history's leaves it touches once for many batches, and a metric's history reads at most
/// this many log rows besides its own.
const METRIC_LOG_MOVE_AT: i64 = 10_000;

/// The statements that move the metric log into `metrics` (identical points once) when it holds
/// [`METRIC_LOG_MOVE_AT`] points or more, and do nothing otherwise; run after a write to the log,
/// in its transaction. SQLite has one writer, so copying then deleting is safe; PostgreSQL's
/// writers run side by side, so there the rows deleted are exactly those copied, in one
/// statement.
fn move_metric_log(backend: Backend) -> Vec<Sql> {
    const COLUMNS: &str = "run_id, key, step, timestamp, value, is_nan";
    // Every row when the log is full, none otherwise (ids start at 1): a range of the log's key,
    // so that a log short of full is not scanned; and `max` and `min` apart, each one lookup at
    // an end of the key (SQLite scans the table for both in one query).
    let (max, min) = (
        "(SELECT max(id) FROM metric_log)",
        "(SELECT min(id) FROM metric_log)",
    );
    let full =
        format!("id <= CASE WHEN {max} - {min} + 1 >= {METRIC_LOG_MOVE_AT} THEN {max} ELSE 0 END");
    match backend {
        Backend::Sqlite => vec![
            Sql::new(&format!(
                "INSERT INTO metrics ({COLUMNS}) SELECT {COLUMNS} FROM metric_log WHERE {full} \
                 ORDER BY {COLUMNS} ON CONFLICT DO NOTHING"
            )),
            Sql::new(&format!("DELETE FROM metric_log WHERE {full}")),
        ],
        Backend::Postgres => vec![Sql::new(&format!(
            "WITH moved AS (DELETE FROM metric_log WHERE {full} RETURNING {COLUMNS}) \
             INSERT INTO metrics ({COLUMNS}) SELECT {COLUMNS} FROM moved ORDER BY {COLUMNS} \
             ON CONFLICT DO NOTHING"
        ))],
    }
}

/// Sets tags on an active run (row `run`) inside the caller's transaction; `mlflow.runName` also
/// renames the run, as in MLflow.
async fn write_tags(tx: &mut Tx<'_>, run: &StoredRun, tags: &[Tag]) -> Result<()> {
    if tags.is_empty() {
        return Ok(());
    }
    // Last value wins within a batch; one row per key keeps the upsert valid on PostgreSQL.
    let mut last: BTreeMap<&str, &str> = BTreeMap::new();
    for t in tags {
        last.insert(&t.key, &t.value);
    }
    let mut sql = Sql::new("INSERT INTO tags (run_id, key, value) VALUES ");
    for (i, (k, v)) in last.iter().enumerate() {
        sql.push(if i == 0 { "(" } else { ", (" });
        sql.bind(run.id)
            .push(", ")
            .bind(*k)
            .push(", ")
            .bind(*v)
            .push(")");
    }
    sql.push(" ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value");
    tx.execute(sql).await?;
    // The run's row as read in this transaction names it already when the run was just created
    // with this name: no second write of its row then.
    if let Some(name) = last.get(RUN_NAME_TAG)
        && *name != run.info.run_name
    {
        let mut sql = Sql::new("UPDATE runs SET name = ");
        sql.bind(*name).push(" WHERE id = ").bind(run.id);
        tx.execute(sql).await?;
    }
    Ok(())
}

impl Store {
    /// Creates a run in an active experiment, status `RUNNING`.
    #[tracing::instrument(skip(self, actor, new))]
    pub async fn create_run(&self, actor: &Actor, new: NewRun) -> Result<Run> {
        let run_name = match new.run_name.filter(|n| !n.is_empty()) {
            Some(name) => {
                validate::name("run", &name)?;
                name
            }
            None => new
                .tags
                .iter()
                .find(|t| t.key == RUN_NAME_TAG)
                .map(|t| t.value.clone())
                .unwrap_or_else(run_names::generate),
        };
        let mut tags = new.tags;
        tags.retain(|t| t.key != RUN_NAME_TAG);
        tags.push(Tag {
            key: RUN_NAME_TAG.to_string(),
            value: run_name.clone(),
        });
        validate_batch(&[], &[], &tags)?;
        let run_id = new_id();
        let user_id = new.user_id.unwrap_or_else(|| actor.name.clone());
        let mut conn = self.writer().await?;
        let run = conn
            .write(async |tx| {
                let (experiment_id, location) =
                    active_experiment_location(tx, &new.experiment_id).await?;
                let artifact_uri = format!("{}/{run_id}/artifacts", location.trim_end_matches('/'));
                let mut insert = Sql::new(
                    "INSERT INTO runs (run_uuid, experiment_id, name, user_id, status, start_time, \
                     lifecycle_stage, artifact_uri) VALUES (",
                );
                insert
                    .bind(run_id.as_str())
                    .push(", ")
                    .bind(experiment_id)
                    .push(", ")
                    .bind(run_name.as_str())
                    .push(", ")
                    .bind(user_id.as_str())
                    .push(", 'RUNNING', ")
                    .bind(new.start_time.unwrap_or_else(now_ms))
                    .push(", 'active', ")
                    .bind(artifact_uri)
                    .push(")");
                tx.execute(insert).await?;
                let run = load_run(tx, &run_id).await?;
                write_tags(tx, &run, &tags).await?;
                let target = format!("run:{run_id}");
                tx.execute(audit::entry(actor, "runs.create", &target, Some(&run_name)))
                    .await?;
                Ok(run)
            })
            .await?;
        // A new run holds only these tags: one per key, the last given, in key order as read back.
        let tags: BTreeMap<String, String> = tags.into_iter().map(|t| (t.key, t.value)).collect();
        Ok(Run {
            info: run.info,
            data: RunData {
                tags: tags
                    .into_iter()
                    .map(|(key, value)| Tag { key, value })
                    .collect(),
                ..RunData::default()
            },
            inputs: RunInputs::default(),
        })
    }

    /// The run with this id, deleted or not, with its data and inputs.
    pub async fn get_run(&self, run_id: &str) -> Result<Run> {
        let Some(readers) = self.direct_readers() else {
            let mut conn = self.read.acquire().await?;
            let mut page = Sql::new("SELECT id, 0 AS ord FROM runs WHERE run_uuid = ");
            page.bind(run_id);
            return load_page_postgres(&mut conn, page)
                .await?
                .pop()
                .ok_or_else(|| no_run(run_id));
        };
        // The row and its data in one direct read.
        let run_id = run_id.to_string();
        readers
            .run(move |conn| {
                let run = run_row(&run_id)
                    .rows_direct(conn, stored_run_direct)?
                    .pop()
                    .ok_or_else(|| no_run(&run_id))?;
                Ok(attach_data_direct(conn, vec![run])?.remove(0))
            })
            .await
    }

    /// Updates status, end time or name of an active run.
    #[tracing::instrument(skip(self, actor, update))]
    pub async fn update_run(
        &self,
        actor: &Actor,
        run_id: &str,
        update: RunUpdate,
    ) -> Result<RunInfo> {
        if let Some(name) = &update.run_name {
            validate::name("run", name)?;
        }
        let mut conn = self.writer().await?;
        conn.write(async |tx| {
            let run = active_run(tx, run_id).await?;
            let status = update.status.unwrap_or(run.info.status);
            let end_time = update.end_time.or(run.info.end_time);
            let name = update.run_name.clone().unwrap_or(run.info.run_name.clone());
            let mut sql = Sql::new("UPDATE runs SET status = ");
            sql.bind(status.as_str())
                .push(", end_time = ")
                .bind(end_time)
                .push(", name = ")
                .bind(name.as_str())
                .push(" WHERE id = ")
                .bind(run.id);
            tx.execute(sql).await?;
            if update.run_name.is_some() {
                let tag = Tag {
                    key: RUN_NAME_TAG.into(),
                    value: name,
                };
                write_tags(tx, &run, &[tag]).await?;
            }
            let target = format!("run:{run_id}");
            tx.execute(audit::entry(
                actor,
                "runs.update",
                &target,
                Some(status.as_str()),
            ))
            .await?;
            Ok(load_run(tx, run_id).await?.info)
        })
        .await
    }

    /// Soft-deletes a run.
    #[tracing::instrument(skip(self, actor))]
    pub async fn delete_run(&self, actor: &Actor, run_id: &str) -> Result<()> {
        let mut conn = self.writer().await?;
        conn.write(async |tx| {
            let run = load_run(tx, run_id).await?;
            let mut sql = Sql::new("UPDATE runs SET lifecycle_stage = 'deleted', deleted_time = ");
            sql.bind(now_ms()).push(" WHERE id = ").bind(run.id);
            tx.execute(sql).await?;
            let target = format!("run:{run_id}");
            tx.execute(audit::entry(actor, "runs.delete", &target, None))
                .await?;
            Ok(())
        })
        .await
    }

    /// Restores a soft-deleted run.
    #[tracing::instrument(skip(self, actor))]
    pub async fn restore_run(&self, actor: &Actor, run_id: &str) -> Result<()> {
        let mut conn = self.writer().await?;
        conn.write(async |tx| {
            let run = load_run(tx, run_id).await?;
            let mut sql = Sql::new(
                "UPDATE runs SET lifecycle_stage = 'active', deleted_time = NULL WHERE id = ",
            );
            sql.bind(run.id);
            tx.execute(sql).await?;
            let target = format!("run:{run_id}");
            tx.execute(audit::entry(actor, "runs.restore", &target, None))
                .await?;
            Ok(())
        })
        .await
    }

    /// Logs metrics, params and tags to an active run in one transaction: all or nothing.
    ///
    /// Params are immutable: re-logging the same value is a no-op, a different value refuses the
    /// whole batch. Logging the very same metric point twice stores it once.
    #[tracing::instrument(skip(self, actor, metrics, params, tags), fields(metrics = metrics.len()))]
    pub async fn log_batch(
        &self,
        actor: &Actor,
        run_id: &str,
        metrics: &[Metric],
        params: &[Param],
        tags: &[Tag],
    ) -> Result<()> {
        validate_batch(metrics, params, tags)?;
        let target = format!("run:{run_id}");
        let detail = format!(
            "{} metrics, {} params, {} tags",
            metrics.len(),
            params.len(),
            tags.len()
        );
        let mut conn = self.writer().await?;
        if params.is_empty() && tags.is_empty() && !metrics.is_empty() {
            // The hot path of a training loop: the points and the audit entry, each written only
            // while the run is active, in one short transaction.
            let audit = audit::record_if_run_active(
                actor,
                "runs.log_batch",
                &target,
                Some(&detail),
                run_id,
            );
            let mut statements = vec![insert_metrics(run_id, metrics), audit];
            statements.extend(metrics_moved_version(self.backend(), run_id));
            statements.extend(move_metric_log(self.backend()));
            let changed = conn.transaction(statements).await?;
            if changed[1] == 1 {
                return Ok(());
            }
            // Nothing was written: the run is missing or deleted. Say which.
            drop(conn);
            let mut conn = self.read.acquire().await?;
            active_run(&mut Tx::Any(&mut conn), run_id).await?;
            return Err(Error::InvalidState(format!(
                "run {run_id} changed state while logging; retry"
            )));
        }
        let backend = self.backend();
        conn.write(async |tx| {
            let run = active_run(tx, run_id).await?;
            write_params(tx, &run, params).await?;
            write_tags(tx, &run, tags).await?;
            if !metrics.is_empty() {
                tx.execute(insert_metrics(run_id, metrics)).await?;
                let moved = metrics_moved_version(backend, run_id);
                for statement in moved.into_iter().chain(move_metric_log(backend)) {
                    tx.execute(statement).await?;
                }
            }
            tx.execute(audit::entry(
                actor,
                "runs.log_batch",
                &target,
                Some(&detail),
            ))
            .await?;
            Ok(())
        })
        .await
    }

    /// Removes a tag from an active run.
    #[tracing::instrument(skip(self, actor))]
    pub async fn delete_run_tag(&self, actor: &Actor, run_id: &str, key: &str) -> Result<()> {
        let mut conn = self.writer().await?;
        conn.write(async |tx| {
            let run = active_run(tx, run_id).await?;
            let mut sql = Sql::new("DELETE FROM tags WHERE run_id = ");
            sql.bind(run.id).push(" AND key = ").bind(key);
            if tx.execute(sql).await? == 0 {
                return Err(Error::not_found(format!(
                    "No tag with name: {key} in run with id {run_id}"
                )));
            }
            let target = format!("run:{run_id}");
            tx.execute(audit::entry(actor, "runs.delete_tag", &target, Some(key)))
                .await?;
            Ok(())
        })
        .await
    }

    /// Every recorded point of one metric of a run, by step then timestamp.
    pub async fn metric_history(&self, run_id: &str, key: &str) -> Result<Vec<Metric>> {
        let mut conn = self.read.acquire().await?;
        let run = load_run(&mut Tx::Any(&mut conn), run_id).await?;
        let rows = sqlx::query(
            "SELECT key, value, timestamp, step, is_nan FROM metrics WHERE run_id = $1 AND key = $2 \
             UNION SELECT key, value, timestamp, step, is_nan FROM metric_log \
             WHERE run_id = $1 AND key = $2 ORDER BY step, timestamp, value",
        )
        .bind(run.id)
        .bind(key)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(metric_from_row).collect()
    }

    /// Records datasets as inputs of an active run. Logging the same dataset again is a no-op.
    #[tracing::instrument(skip(self, actor, inputs))]
    pub async fn log_inputs(
        &self,
        actor: &Actor,
        run_id: &str,
        inputs: &[DatasetInput],
    ) -> Result<()> {
        for input in inputs {
            let d = &input.dataset;
            validate::name("dataset", &d.name)?;
            if d.digest.is_empty() || d.digest.len() > 64 * 4 {
                return Err(Error::invalid(format!(
                    "dataset '{}' needs a digest of 1 to 256 characters",
                    d.name
                )));
            }
            for t in &input.tags {
                validate::key("input tag", &t.key)?;
                validate::value_length(
                    "input tag",
                    &t.key,
                    &t.value,
                    validate::MAX_TAG_VALUE_LENGTH,
                )?;
            }
        }
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        let run = active_run(&mut Tx::Any(&mut tx), run_id).await?;
        let experiment_id: i64 = run.info.experiment_id.parse().expect("numeric id");
        for input in inputs {
            let d = &input.dataset;
            // Insert the dataset unless the experiment knows it (waiting for a concurrent writer
            // of the same one), then read back the row that exists either way.
            sqlx::query(
                "INSERT INTO input_datasets (dataset_uuid, experiment_id, name, digest, source_type, \
                 source, schema, profile) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (experiment_id, name, digest) DO NOTHING",
            )
            .bind(new_id())
            .bind(experiment_id)
            .bind(&d.name)
            .bind(&d.digest)
            .bind(&d.source_type)
            .bind(&d.source)
            .bind(d.schema.as_deref())
            .bind(d.profile.as_deref())
            .execute(&mut *tx)
            .await?;
            let dataset_uuid: String = sqlx::query(
                "SELECT dataset_uuid FROM input_datasets WHERE experiment_id = $1 AND name = $2 AND digest = $3",
            )
            .bind(experiment_id)
            .bind(&d.name)
            .bind(&d.digest)
            .fetch_one(&mut *tx)
            .await?
            .try_get("dataset_uuid")?;
            let input_uuid = new_id();
            let inserted = sqlx::query(
                "INSERT INTO inputs (input_uuid, source_type, source_id, destination_type, destination_id) \
                 VALUES ($1, 'DATASET', $2, 'RUN', $3) \
                 ON CONFLICT (source_type, source_id, destination_type, destination_id) DO NOTHING",
            )
            .bind(&input_uuid)
            .bind(&dataset_uuid)
            .bind(run_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 1 {
                for t in &input.tags {
                    sqlx::query(
                        "INSERT INTO input_tags (input_uuid, name, value) VALUES ($1, $2, $3) \
                         ON CONFLICT (input_uuid, name) DO UPDATE SET value = excluded.value",
                    )
                    .bind(&input_uuid)
                    .bind(&t.key)
                    .bind(&t.value)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        audit::record(
            &mut tx,
            actor,
            "runs.log_inputs",
            &format!("run:{run_id}"),
            Some(&format!("{} datasets", inputs.len())),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
