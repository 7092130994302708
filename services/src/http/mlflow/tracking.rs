//! MLflow's tracking API: experiments, runs, params, metrics, tags, dataset inputs, metric
//! history and run search (`/api/2.0/mlflow/experiments/...`, `/runs/...`, `/metrics/...`).

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use base64::Engine;
use bytes::Bytes;
use std::collections::HashMap;

use refit_registry::experiments::{Experiment, LifecycleStage, Tag, ViewType};
use refit_registry::logged_models::{ModelMetric, ModelOutput, RunModels};
use refit_registry::runs::{
    Dataset, DatasetInput, Metric, NewRun, Param, RUN_NAME_TAG, Run, RunInfo, RunStatus, RunUpdate,
};
use refit_registry::search::{ExperimentSearch, RunSearch};
use refit_registry::validate;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::wire::{
    self, KeyValue, MlflowError, MlflowResult, Params, check_experiment_id, lenient_f64,
    lenient_i64, lenient_string, put_list, required, tags_from, tags_json,
};
use crate::http::auth::{Can, can};
use crate::http::extract::Json;
use crate::http::state::AppState;

/// The tracking routes, nested at `/2.0/mlflow`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/experiments/create", post(create_experiment))
        .route("/experiments/get", get(get_experiment))
        .route("/experiments/get-by-name", get(get_experiment_by_name))
        .route(
            "/experiments/search",
            post(search_experiments).get(search_experiments_get),
        )
        .route("/experiments/update", post(rename_experiment))
        .route("/experiments/delete", post(delete_experiment))
        .route("/experiments/restore", post(restore_experiment))
        .route("/experiments/set-experiment-tag", post(set_experiment_tag))
        .route(
            "/experiments/delete-experiment-tag",
            post(delete_experiment_tag),
        )
        .route("/runs/create", post(create_run))
        .route("/runs/get", get(get_run))
        .route("/runs/update", post(update_run))
        .route("/runs/delete", post(delete_run))
        .route("/runs/restore", post(restore_run))
        .route("/runs/log-metric", post(log_metric))
        .route("/runs/log-parameter", post(log_param))
        .route("/runs/set-tag", post(set_tag))
        .route("/runs/delete-tag", post(delete_tag))
        .route("/runs/log-batch", post(log_batch))
        .route("/runs/log-inputs", post(log_inputs))
        .route("/runs/log-model", post(log_model))
        .route("/runs/outputs", post(log_outputs))
        .route("/runs/search", post(search_runs))
        .route("/metrics/get-history", get(metric_history))
        .route("/artifacts/list", get(super::artifacts::list_run_artifacts))
}

// ---------------------------------------------------------------------------------------------
// Shapes on the wire

fn lifecycle(stage: LifecycleStage) -> &'static str {
    match stage {
        LifecycleStage::Active => "active",
        LifecycleStage::Deleted => "deleted",
    }
}

/// An experiment as MLflow writes it.
pub fn experiment_json(e: &Experiment) -> Value {
    let mut o = Map::new();
    o.insert("experiment_id".into(), json!(e.experiment_id));
    o.insert("name".into(), json!(e.name));
    o.insert("artifact_location".into(), json!(e.artifact_location));
    o.insert(
        "lifecycle_stage".into(),
        json!(lifecycle(e.lifecycle_stage)),
    );
    o.insert("last_update_time".into(), json!(e.last_update_time));
    o.insert("creation_time".into(), json!(e.creation_time));
    put_list(&mut o, "tags", tags_json(&e.tags));
    Value::Object(o)
}

fn status_name(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Running => "RUNNING",
        RunStatus::Scheduled => "SCHEDULED",
        RunStatus::Finished => "FINISHED",
        RunStatus::Failed => "FAILED",
        RunStatus::Killed => "KILLED",
    }
}

/// A run's info as MLflow writes it (`end_time` only once set).
#[derive(Serialize)]
pub struct WireRunInfo<'a> {
    run_uuid: &'a str,
    experiment_id: &'a str,
    run_name: &'a str,
    user_id: &'a str,
    status: &'static str,
    start_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_time: Option<i64>,
    artifact_uri: &'a str,
    lifecycle_stage: &'static str,
    run_id: &'a str,
}

impl<'a> WireRunInfo<'a> {
    pub fn new(i: &'a RunInfo) -> WireRunInfo<'a> {
        WireRunInfo {
            run_uuid: &i.run_id,
            experiment_id: &i.experiment_id,
            run_name: &i.run_name,
            user_id: &i.user_id,
            status: status_name(i.status),
            start_time: i.start_time,
            end_time: i.end_time,
            artifact_uri: &i.artifact_uri,
            lifecycle_stage: lifecycle(i.lifecycle_stage),
            run_id: &i.run_id,
        }
    }
}

#[derive(Serialize)]
struct WireMetric<'a> {
    key: &'a str,
    #[serde(serialize_with = "wire::serialize_metric_value")]
    value: f64,
    timestamp: i64,
    step: i64,
}

impl<'a> WireMetric<'a> {
    fn new(m: &'a Metric) -> WireMetric<'a> {
        WireMetric {
            key: &m.key,
            value: m.value,
            timestamp: m.timestamp,
            step: m.step,
        }
    }
}

#[derive(Serialize)]
struct WireDataset<'a> {
    name: &'a str,
    digest: &'a str,
    source_type: &'a str,
    source: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    schema: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile: Option<&'a str>,
}

#[derive(Serialize)]
struct WireDatasetInput<'a> {
    #[serde(skip_serializing_if = "<[Tag]>::is_empty")]
    tags: &'a [Tag],
    dataset: WireDataset<'a>,
}

#[derive(Serialize)]
struct WireModelInput<'a> {
    model_id: &'a str,
}

#[derive(Serialize)]
struct WireRunData<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    metrics: Vec<WireMetric<'a>>,
    #[serde(skip_serializing_if = "<[Param]>::is_empty")]
    params: &'a [Param],
    #[serde(skip_serializing_if = "<[Tag]>::is_empty")]
    tags: &'a [Tag],
}

#[derive(Serialize)]
struct WireRunInputs<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    dataset_inputs: Vec<WireDatasetInput<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    model_inputs: Vec<WireModelInput<'a>>,
}

#[derive(Serialize)]
struct WireRunOutputs<'a> {
    #[serde(skip_serializing_if = "<[ModelOutput]>::is_empty")]
    model_outputs: &'a [ModelOutput],
}

/// A whole run as MLflow writes it: info, latest metrics, params, tags, inputs (datasets and
/// MLflow 3's models) and, for `runs/get` and `runs/search`, outputs (`models` is `None` for
/// `runs/create`, whose answer has no outputs). Empty lists are left out, as protobuf does.
#[derive(Serialize)]
pub struct WireRun<'a> {
    info: WireRunInfo<'a>,
    data: WireRunData<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    outputs: Option<WireRunOutputs<'a>>,
    inputs: WireRunInputs<'a>,
}

impl<'a> WireRun<'a> {
    pub fn new(run: &'a Run, models: Option<&'a RunModels>) -> WireRun<'a> {
        let metrics = run.data.metrics.iter().map(WireMetric::new).collect();
        let dataset_inputs = run
            .inputs
            .dataset_inputs
            .iter()
            .map(|input| {
                let d = &input.dataset;
                WireDatasetInput {
                    tags: &input.tags,
                    dataset: WireDataset {
                        name: &d.name,
                        digest: &d.digest,
                        source_type: &d.source_type,
                        source: &d.source,
                        schema: d.schema.as_deref(),
                        profile: d.profile.as_deref(),
                    },
                }
            })
            .collect();
        let model_inputs = models
            .map(|m| {
                m.inputs
                    .iter()
                    .map(|id| WireModelInput { model_id: id })
                    .collect()
            })
            .unwrap_or_default();
        WireRun {
            info: WireRunInfo::new(&run.info),
            data: WireRunData {
                metrics,
                params: &run.data.params,
                tags: &run.data.tags,
            },
            outputs: models.map(|m| WireRunOutputs {
                model_outputs: &m.outputs,
            }),
            inputs: WireRunInputs {
                dataset_inputs,
                model_inputs,
            },
        }
    }
}

/// The logged models the runs took in and put out, by run id.
async fn models_of(state: &AppState, runs: &[Run]) -> MlflowResult<HashMap<String, RunModels>> {
    let ids: Vec<String> = runs.iter().map(|r| r.info.run_id.clone()).collect();
    Ok(state.store.run_models(&ids).await?)
}

// ---------------------------------------------------------------------------------------------
// Request parsing shared by the handlers

/// `ACTIVE_ONLY` (default), `DELETED_ONLY`, `ALL`, or their numbers 1, 2, 3.
fn view_type(value: Option<&str>) -> MlflowResult<ViewType> {
    Ok(match value.unwrap_or("") {
        "" | "ACTIVE_ONLY" | "1" => ViewType::ActiveOnly,
        "DELETED_ONLY" | "2" => ViewType::DeletedOnly,
        "ALL" | "3" => ViewType::All,
        other => {
            return Err(MlflowError::invalid(format!(
                "Invalid value \"{other}\" for parameter 'view_type' supplied: expected \
                 ACTIVE_ONLY, DELETED_ONLY or ALL"
            )));
        }
    })
}

/// A run status by name or protobuf number.
fn run_status(value: &str) -> MlflowResult<RunStatus> {
    Ok(match value {
        "RUNNING" | "1" => RunStatus::Running,
        "SCHEDULED" | "2" => RunStatus::Scheduled,
        "FINISHED" | "3" => RunStatus::Finished,
        "FAILED" | "4" => RunStatus::Failed,
        "KILLED" | "5" => RunStatus::Killed,
        other => {
            return Err(MlflowError::invalid(format!(
                "Invalid value \"{other}\" for parameter 'status' supplied: expected RUNNING, \
                 SCHEDULED, FINISHED, FAILED or KILLED"
            )));
        }
    })
}

/// `max_results` of a search: `default` when absent, at least 1 and at most `max`.
fn max_results(value: Option<i64>, default: Option<i64>, max: i64) -> MlflowResult<i64> {
    let n = value.or(default).unwrap_or(0);
    if n <= 0 {
        return Err(MlflowError::invalid(format!(
            "Invalid value {n} for parameter 'max_results' supplied. It must be a positive integer"
        )));
    }
    if n > max {
        return Err(MlflowError::invalid(format!(
            "Invalid value {n} for parameter 'max_results' supplied. It must be at most {max}"
        )));
    }
    Ok(n)
}

/// The value MLflow keeps of a param or tag: silently cut to its limit, as MLflow's server does.
fn truncated(value: String, limit: usize) -> String {
    match value.char_indices().nth(limit) {
        Some((cut, _)) => value[..cut].to_string(),
        None => value,
    }
}

/// MLflow's message for a key its rules refuse, naming the field as MLflow does.
fn check_key(key: &str, field: &str) -> MlflowResult<()> {
    match validate::key_problem(key) {
        None => Ok(()),
        Some(problem) => Err(MlflowError::invalid(format!(
            "Invalid value \"{key}\" for parameter '{field}' supplied: {problem}"
        ))),
    }
}

/// A run id from `run_id`, or MLflow's older `run_uuid`.
fn run_id_of(run_id: &Option<String>, run_uuid: &Option<String>) -> MlflowResult<String> {
    required(run_id, "run_id")
        .or_else(|_| required(run_uuid, "run_id"))
        .map(str::to_string)
}

// ---------------------------------------------------------------------------------------------
// Experiments

#[derive(Debug, Deserialize)]
struct CreateExperiment {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    artifact_location: Option<String>,
    #[serde(default)]
    tags: Vec<KeyValue>,
}

async fn create_experiment(
    State(state): State<AppState>,
    caller: Can<can::WriteExperiments>,
    Json(req): Json<CreateExperiment>,
) -> MlflowResult<Response> {
    let name = required(&req.name, "name")?;
    let location = req.artifact_location.as_deref().filter(|l| !l.is_empty());
    if let Some(l) = location
        && l.starts_with("runs:")
    {
        return Err(MlflowError::invalid(format!(
            "Artifact location cannot be a runs:/ URI. Given: '{l}'"
        )));
    }
    let tags = tags_from(req.tags, "tags")?;
    let exp = state
        .store
        .create_experiment(&caller.actor(), name, location, &tags)
        .await?;
    Ok(wire::json(json!({"experiment_id": exp.experiment_id})))
}

async fn get_experiment(
    State(state): State<AppState>,
    _: Can<can::ReadExperiments>,
    params: Params,
) -> MlflowResult<Response> {
    let id = params.required("experiment_id")?;
    check_experiment_id(id)?;
    let exp = state.store.get_experiment(id).await?;
    Ok(wire::json(json!({"experiment": experiment_json(&exp)})))
}

async fn get_experiment_by_name(
    State(state): State<AppState>,
    _: Can<can::ReadExperiments>,
    params: Params,
) -> MlflowResult<Response> {
    let name = params.required("experiment_name")?;
    let exp = state.store.get_experiment_by_name(name).await?;
    Ok(wire::json(json!({"experiment": experiment_json(&exp)})))
}

#[derive(Debug, Default, Deserialize)]
struct SearchExperiments {
    #[serde(default, deserialize_with = "lenient_i64")]
    max_results: Option<i64>,
    #[serde(default)]
    page_token: Option<String>,
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    order_by: Vec<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    view_type: Option<String>,
}

async fn search_experiments(
    State(state): State<AppState>,
    _: Can<can::ReadExperiments>,
    Json(req): Json<SearchExperiments>,
) -> MlflowResult<Response> {
    experiments_page(&state, req).await
}

async fn search_experiments_get(
    State(state): State<AppState>,
    _: Can<can::ReadExperiments>,
    params: Params,
) -> MlflowResult<Response> {
    let req = SearchExperiments {
        max_results: params.int("max_results")?,
        page_token: params.get("page_token").map(str::to_string),
        filter: params.get("filter").map(str::to_string),
        order_by: params.all("order_by"),
        view_type: params.get("view_type").map(str::to_string),
    };
    experiments_page(&state, req).await
}

async fn experiments_page(state: &AppState, req: SearchExperiments) -> MlflowResult<Response> {
    let search = ExperimentSearch {
        filter: req.filter.unwrap_or_default(),
        order_by: req.order_by,
        max_results: max_results(req.max_results, None, 50_000)?,
        page_token: req.page_token.filter(|t| !t.is_empty()),
        view: view_type(req.view_type.as_deref())?,
    };
    let page = state.store.search_experiments(&search).await?;
    let mut o = Map::new();
    put_list(
        &mut o,
        "experiments",
        Value::Array(page.items.iter().map(experiment_json).collect()),
    );
    if let Some(token) = page.next_page_token {
        o.insert("next_page_token".into(), json!(token));
    }
    Ok(wire::json(Value::Object(o)))
}

#[derive(Debug, Deserialize)]
struct ExperimentRef {
    #[serde(default, deserialize_with = "lenient_string")]
    experiment_id: Option<String>,
    #[serde(default)]
    new_name: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    value: Option<String>,
}

async fn rename_experiment(
    State(state): State<AppState>,
    caller: Can<can::WriteExperiments>,
    Json(req): Json<ExperimentRef>,
) -> MlflowResult<Response> {
    let id = required(&req.experiment_id, "experiment_id")?;
    let new_name = required(&req.new_name, "new_name")?;
    check_experiment_id(id)?;
    state
        .store
        .rename_experiment(&caller.actor(), id, new_name)
        .await?;
    Ok(wire::empty())
}

async fn delete_experiment(
    State(state): State<AppState>,
    caller: Can<can::WriteExperiments>,
    Json(req): Json<ExperimentRef>,
) -> MlflowResult<Response> {
    let id = required(&req.experiment_id, "experiment_id")?;
    check_experiment_id(id)?;
    state.store.delete_experiment(&caller.actor(), id).await?;
    Ok(wire::empty())
}

async fn restore_experiment(
    State(state): State<AppState>,
    caller: Can<can::WriteExperiments>,
    Json(req): Json<ExperimentRef>,
) -> MlflowResult<Response> {
    let id = required(&req.experiment_id, "experiment_id")?;
    check_experiment_id(id)?;
    let exp = state.store.get_experiment(id).await?;
    if exp.lifecycle_stage != LifecycleStage::Deleted {
        // MLflow: restoring an experiment that is not deleted is "not found".
        return Err(MlflowError::not_found(format!(
            "No Experiment with id={id} exists"
        )));
    }
    state.store.restore_experiment(&caller.actor(), id).await?;
    Ok(wire::empty())
}

async fn set_experiment_tag(
    State(state): State<AppState>,
    caller: Can<can::WriteExperiments>,
    Json(req): Json<ExperimentRef>,
) -> MlflowResult<Response> {
    let id = required(&req.experiment_id, "experiment_id")?;
    let key = required(&req.key, "key")?;
    check_experiment_id(id)?;
    check_key(key, "key")?;
    let value = req.value.unwrap_or_default();
    state
        .store
        .set_experiment_tag(&caller.actor(), id, key, &value)
        .await?;
    Ok(wire::empty())
}

async fn delete_experiment_tag(
    State(state): State<AppState>,
    caller: Can<can::WriteExperiments>,
    Json(req): Json<ExperimentRef>,
) -> MlflowResult<Response> {
    let id = required(&req.experiment_id, "experiment_id")?;
    let key = required(&req.key, "key")?;
    check_experiment_id(id)?;
    state
        .store
        .delete_experiment_tag(&caller.actor(), id, key)
        .await?;
    Ok(wire::empty())
}

// ---------------------------------------------------------------------------------------------
// Runs

#[derive(Debug, Deserialize)]
struct CreateRun {
    #[serde(default, deserialize_with = "lenient_string")]
    experiment_id: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    run_name: Option<String>,
    #[serde(default, deserialize_with = "lenient_i64")]
    start_time: Option<i64>,
    #[serde(default)]
    tags: Vec<KeyValue>,
}

async fn create_run(
    State(state): State<AppState>,
    caller: Can<can::WriteExperiments>,
    Json(req): Json<CreateRun>,
) -> MlflowResult<Response> {
    let experiment_id = req
        .experiment_id
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| refit_registry::experiments::DEFAULT_EXPERIMENT_ID.to_string());
    check_experiment_id(&experiment_id)?;
    let tags: Vec<Tag> = tags_from(req.tags, "tags")?
        .into_iter()
        .map(|t| Tag {
            value: truncated(t.value, validate::MAX_TAG_VALUE_LENGTH),
            ..t
        })
        .collect();
    for t in &tags {
        check_key(&t.key, "tags.key")?;
    }
    let run_name = req.run_name.filter(|n| !n.is_empty());
    if let (Some(name), Some(tag)) = (&run_name, tags.iter().find(|t| t.key == RUN_NAME_TAG))
        && *name != tag.value
    {
        return Err(MlflowError::invalid(format!(
            "Both 'run_name' argument and '{RUN_NAME_TAG}' tag are specified, but with \
             different values (run_name='{name}', {RUN_NAME_TAG}='{}').",
            tag.value
        )));
    }
    let run = state
        .store
        .create_run(
            &caller.actor(),
            NewRun {
                experiment_id,
                run_name,
                start_time: req.start_time,
                tags,
                user_id: req.user_id,
            },
        )
        .await?;
    Ok(wire::json(json!({"run": WireRun::new(&run, None)})))
}

async fn get_run(
    State(state): State<AppState>,
    _: Can<can::ReadExperiments>,
    params: Params,
) -> MlflowResult<Response> {
    let id = params
        .required("run_id")
        .or_else(|_| params.required("run_uuid"))?;
    let run = state.store.get_run(id).await?;
    let models = models_of(&state, std::slice::from_ref(&run)).await?;
    let models = models.get(&run.info.run_id).cloned().unwrap_or_default();
    Ok(wire::json(
        json!({"run": WireRun::new(&run, Some(&models))}),
    ))
}

/// A request naming a run (`run_id` or `run_uuid`) and, depending on the call, what to log.
#[derive(Debug, Deserialize)]
struct RunRequest {
    #[serde(default)]
    run_id: Option<String>,
    #[serde(default)]
    run_uuid: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    status: Option<String>,
    #[serde(default, deserialize_with = "lenient_i64")]
    end_time: Option<i64>,
    #[serde(default)]
    run_name: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    value: Option<String>,
}

async fn update_run(
    State(state): State<AppState>,
    caller: Can<can::WriteExperiments>,
    Json(req): Json<RunRequest>,
) -> MlflowResult<Response> {
    let id = run_id_of(&req.run_id, &req.run_uuid)?;
    let status = req
        .status
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(run_status)
        .transpose()?;
    let info = state
        .store
        .update_run(
            &caller.actor(),
            &id,
            RunUpdate {
                status,
                end_time: req.end_time,
                run_name: req.run_name.filter(|n| !n.is_empty()),
            },
        )
        .await?;
    Ok(wire::json(json!({"run_info": WireRunInfo::new(&info)})))
}

async fn delete_run(
    State(state): State<AppState>,
    caller: Can<can::WriteExperiments>,
    Json(req): Json<RunRequest>,
) -> MlflowResult<Response> {
    let id = run_id_of(&req.run_id, &req.run_uuid)?;
    state.store.delete_run(&caller.actor(), &id).await?;
    Ok(wire::empty())
}

async fn restore_run(
    State(state): State<AppState>,
    caller: Can<can::WriteExperiments>,
    Json(req): Json<RunRequest>,
) -> MlflowResult<Response> {
    let id = run_id_of(&req.run_id, &req.run_uuid)?;
    state.store.restore_run(&caller.actor(), &id).await?;
    Ok(wire::empty())
}

/// A metric as the client sends it, alone or in a batch.
#[derive(Debug, Deserialize)]
struct MetricIn {
    #[serde(default)]
    run_id: Option<String>,
    #[serde(default)]
    run_uuid: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default, deserialize_with = "lenient_f64")]
    value: Option<f64>,
    #[serde(default, deserialize_with = "lenient_i64")]
    timestamp: Option<i64>,
    #[serde(default, deserialize_with = "lenient_i64")]
    step: Option<i64>,
    #[serde(default)]
    model_id: Option<String>,
    #[serde(default)]
    dataset_name: Option<String>,
    #[serde(default)]
    dataset_digest: Option<String>,
}

/// The points of `metrics` that MLflow 3 also attaches to a logged model (`model_id` set).
fn model_metrics(metrics: &[(Metric, Option<ModelLink>)]) -> Vec<ModelMetric> {
    metrics
        .iter()
        .filter_map(|(m, link)| {
            link.as_ref().map(|l| ModelMetric {
                model_id: l.model_id.clone(),
                key: m.key.clone(),
                value: m.value,
                timestamp: m.timestamp,
                step: m.step,
                dataset_name: l.dataset_name.clone(),
                dataset_digest: l.dataset_digest.clone(),
            })
        })
        .collect()
}

/// A metric point's logged model and the dataset it was measured on.
#[derive(Debug, Clone)]
struct ModelLink {
    model_id: String,
    dataset_name: Option<String>,
    dataset_digest: Option<String>,
}

/// Logs run metrics, then attaches those that name a logged model to it.
async fn log_points(
    state: &AppState,
    actor: &refit_registry::Actor,
    run_id: &str,
    points: Vec<(Metric, Option<ModelLink>)>,
    params: &[Param],
    tags: &[Tag],
) -> MlflowResult<()> {
    let linked = model_metrics(&points);
    let metrics: Vec<Metric> = points.into_iter().map(|(m, _)| m).collect();
    state
        .store
        .log_batch(actor, run_id, &metrics, params, tags)
        .await?;
    if !linked.is_empty() {
        state
            .store
            .log_logged_model_metrics(actor, run_id, &linked)
            .await?;
    }
    Ok(())
}

impl MetricIn {
    /// The metric to store and the logged model it also belongs to; `at` names the field in
    /// messages (`""` or `metrics[3].`).
    fn into_metric(self, at: &str) -> MlflowResult<(Metric, Option<ModelLink>)> {
        let key = self
            .key
            .filter(|k| !k.is_empty())
            .ok_or_else(|| MlflowError::missing(&format!("{at}key")))?;
        let value = self
            .value
            .ok_or_else(|| MlflowError::missing(&format!("{at}value")))?;
        let timestamp = self
            .timestamp
            .ok_or_else(|| MlflowError::missing(&format!("{at}timestamp")))?;
        check_key(&key, &format!("{at}name"))?;
        if timestamp < 0 {
            return Err(MlflowError::invalid(format!(
                "Invalid value {timestamp} for parameter 'timestamp' supplied: metric '{key}' \
                 (value={value}). Timestamp must be a nonnegative long (64-bit integer) "
            )));
        }
        let link = self
            .model_id
            .filter(|id| !id.is_empty())
            .map(|model_id| ModelLink {
                model_id,
                dataset_name: self.dataset_name.filter(|n| !n.is_empty()),
                dataset_digest: self.dataset_digest.filter(|d| !d.is_empty()),
            });
        let metric = Metric {
            key,
            value: wire::stored_metric_value(value),
            timestamp,
            step: self.step.unwrap_or(0),
        };
        Ok((metric, link))
    }
}

async fn log_metric(
    State(state): State<AppState>,
    caller: Can<can::WriteExperiments>,
    Json(req): Json<MetricIn>,
) -> MlflowResult<Response> {
    let id = run_id_of(&req.run_id, &req.run_uuid)?;
    let point = req.into_metric("")?;
    log_points(&state, &caller.actor(), &id, vec![point], &[], &[]).await?;
    Ok(wire::empty())
}

async fn log_param(
    State(state): State<AppState>,
    caller: Can<can::WriteExperiments>,
    Json(req): Json<RunRequest>,
) -> MlflowResult<Response> {
    let id = run_id_of(&req.run_id, &req.run_uuid)?;
    let key = required(&req.key, "key")?.to_string();
    check_key(&key, "key")?;
    let value = truncated(
        req.value.unwrap_or_default(),
        validate::MAX_PARAM_VALUE_LENGTH,
    );
    state
        .store
        .log_batch(&caller.actor(), &id, &[], &[Param { key, value }], &[])
        .await?;
    Ok(wire::empty())
}

async fn set_tag(
    State(state): State<AppState>,
    caller: Can<can::WriteExperiments>,
    Json(req): Json<RunRequest>,
) -> MlflowResult<Response> {
    let id = run_id_of(&req.run_id, &req.run_uuid)?;
    let key = required(&req.key, "key")?.to_string();
    check_key(&key, "key")?;
    let value = truncated(
        req.value.unwrap_or_default(),
        validate::MAX_TAG_VALUE_LENGTH,
    );
    state
        .store
        .log_batch(&caller.actor(), &id, &[], &[], &[Tag { key, value }])
        .await?;
    Ok(wire::empty())
}

async fn delete_tag(
    State(state): State<AppState>,
    caller: Can<can::WriteExperiments>,
    Json(req): Json<RunRequest>,
) -> MlflowResult<Response> {
    let id = run_id_of(&req.run_id, &req.run_uuid)?;
    let key = required(&req.key, "key")?;
    state
        .store
        .delete_run_tag(&caller.actor(), &id, key)
        .await?;
    Ok(wire::empty())
}

#[derive(Debug, Deserialize)]
struct LogBatch {
    #[serde(default)]
    run_id: Option<String>,
    #[serde(default)]
    metrics: Vec<MetricIn>,
    #[serde(default)]
    params: Vec<KeyValue>,
    #[serde(default)]
    tags: Vec<KeyValue>,
}

async fn log_batch(
    State(state): State<AppState>,
    caller: Can<can::WriteExperiments>,
    Json(req): Json<LogBatch>,
) -> MlflowResult<Response> {
    let id = required(&req.run_id, "run_id")?.to_string();
    let metrics = req
        .metrics
        .into_iter()
        .enumerate()
        .map(|(i, m)| m.into_metric(&format!("metrics[{i}].")))
        .collect::<MlflowResult<Vec<_>>>()?;
    let params = tags_from(req.params, "params")?
        .into_iter()
        .map(|t| Param {
            key: t.key,
            value: truncated(t.value, validate::MAX_PARAM_VALUE_LENGTH),
        })
        .collect::<Vec<_>>();
    for (i, p) in params.iter().enumerate() {
        check_key(&p.key, &format!("params[{i}].key"))?;
    }
    let tags = tags_from(req.tags, "tags")?
        .into_iter()
        .map(|t| Tag {
            value: truncated(t.value, validate::MAX_TAG_VALUE_LENGTH),
            ..t
        })
        .collect::<Vec<_>>();
    for (i, t) in tags.iter().enumerate() {
        check_key(&t.key, &format!("tags[{i}].key"))?;
    }
    log_points(&state, &caller.actor(), &id, metrics, &params, &tags).await?;
    Ok(wire::empty())
}

#[derive(Debug, Deserialize)]
struct DatasetIn {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    digest: Option<String>,
    #[serde(default)]
    source_type: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    schema: Option<String>,
    #[serde(default)]
    profile: Option<String>,
}

#[derive(Debug, Deserialize)]
struct DatasetInputIn {
    #[serde(default)]
    tags: Vec<KeyValue>,
    #[serde(default)]
    dataset: Option<DatasetIn>,
}

#[derive(Debug, Deserialize)]
struct LogInputs {
    #[serde(default)]
    run_id: Option<String>,
    #[serde(default)]
    datasets: Vec<DatasetInputIn>,
    #[serde(default)]
    models: Vec<ModelRef>,
}

/// A logged model named in `runs/log-inputs` or `runs/outputs`.
#[derive(Debug, Deserialize)]
struct ModelRef {
    #[serde(default)]
    model_id: Option<String>,
    #[serde(default, deserialize_with = "lenient_i64")]
    step: Option<i64>,
}

fn model_ids(models: &[ModelRef]) -> MlflowResult<Vec<String>> {
    models
        .iter()
        .enumerate()
        .map(|(i, m)| Ok(required(&m.model_id, &format!("models[{i}].model_id"))?.to_string()))
        .collect()
}

async fn log_inputs(
    State(state): State<AppState>,
    caller: Can<can::WriteExperiments>,
    Json(req): Json<LogInputs>,
) -> MlflowResult<Response> {
    let id = required(&req.run_id, "run_id")?.to_string();
    let mut inputs = Vec::with_capacity(req.datasets.len());
    for (i, input) in req.datasets.into_iter().enumerate() {
        let d = input
            .dataset
            .ok_or_else(|| MlflowError::missing(&format!("datasets[{i}].dataset")))?;
        let field = |name: &str| format!("datasets[{i}].dataset.{name}");
        inputs.push(DatasetInput {
            tags: tags_from(input.tags, &format!("datasets[{i}].tags"))?,
            dataset: Dataset {
                name: required(&d.name, &field("name"))?.to_string(),
                digest: required(&d.digest, &field("digest"))?.to_string(),
                source_type: required(&d.source_type, &field("source_type"))?.to_string(),
                source: required(&d.source, &field("source"))?.to_string(),
                schema: d.schema,
                profile: d.profile,
            },
        });
    }
    let models = model_ids(&req.models)?;
    state
        .store
        .log_inputs(&caller.actor(), &id, &inputs)
        .await?;
    if !models.is_empty() {
        state
            .store
            .log_run_model_inputs(&caller.actor(), &id, &models)
            .await?;
    }
    Ok(wire::empty())
}

#[derive(Debug, Deserialize)]
struct LogOutputs {
    #[serde(default)]
    run_id: Option<String>,
    #[serde(default)]
    models: Vec<ModelRef>,
}

/// MLflow 3's `log_outputs`: the logged models a run produced.
async fn log_outputs(
    State(state): State<AppState>,
    caller: Can<can::WriteExperiments>,
    Json(req): Json<LogOutputs>,
) -> MlflowResult<Response> {
    let id = required(&req.run_id, "run_id")?.to_string();
    let outputs = model_ids(&req.models)?
        .into_iter()
        .zip(&req.models)
        .map(|(model_id, m)| ModelOutput {
            model_id,
            step: m.step.unwrap_or(0),
        })
        .collect::<Vec<_>>();
    state
        .store
        .log_run_model_outputs(&caller.actor(), &id, &outputs)
        .await?;
    Ok(wire::empty())
}

#[derive(Debug, Deserialize)]
struct LogModel {
    #[serde(default)]
    run_id: Option<String>,
    #[serde(default)]
    model_json: Option<String>,
}

/// The run tag MLflow 2 appends each logged model's description to.
const LOG_MODEL_HISTORY_TAG: &str = "mlflow.log-model.history";

/// MLflow 2's `log_model`: the model's `MLmodel` description appended to the run's
/// `mlflow.log-model.history` tag (a JSON list).
async fn log_model(
    State(state): State<AppState>,
    caller: Can<can::WriteExperiments>,
    Json(req): Json<LogModel>,
) -> MlflowResult<Response> {
    let id = required(&req.run_id, "run_id")?.to_string();
    let text = required(&req.model_json, "model_json")?;
    let model: Map<String, Value> = serde_json::from_str(text).map_err(|e| {
        MlflowError::invalid(format!(
            "Malformed model info. \n {text} \n is not a valid JSON: {e}"
        ))
    })?;
    let missing: Vec<&str> = ["artifact_path", "flavors", "utc_time_created", "run_id"]
        .into_iter()
        .filter(|k| !model.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        return Err(MlflowError::invalid(format!(
            "Model json is missing mandatory fields: {missing:?}"
        )));
    }
    let run = state.store.get_run(&id).await?;
    let mut history: Vec<Value> = run
        .data
        .tags
        .iter()
        .find(|t| t.key == LOG_MODEL_HISTORY_TAG)
        .and_then(|t| serde_json::from_str(&t.value).ok())
        .unwrap_or_default();
    history.push(Value::Object(model));
    let tag = Tag {
        key: LOG_MODEL_HISTORY_TAG.to_string(),
        value: Value::Array(history).to_string(),
    };
    state
        .store
        .log_batch(&caller.actor(), &id, &[], &[], &[tag])
        .await?;
    Ok(wire::empty())
}

#[derive(Debug, Deserialize)]
struct SearchRuns {
    #[serde(default)]
    experiment_ids: Vec<String>,
    #[serde(default)]
    filter: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    run_view_type: Option<String>,
    #[serde(default, deserialize_with = "lenient_i64")]
    max_results: Option<i64>,
    #[serde(default)]
    order_by: Vec<String>,
    #[serde(default)]
    page_token: Option<String>,
}

async fn search_runs(
    State(state): State<AppState>,
    _: Can<can::ReadExperiments>,
    Json(req): Json<SearchRuns>,
) -> MlflowResult<Response> {
    let max_results = max_results(req.max_results, Some(1000), 50_000)?;
    let view = view_type(req.run_view_type.as_deref())?;
    for id in &req.experiment_ids {
        check_experiment_id(id)?;
    }
    if req.experiment_ids.is_empty() {
        return Ok(wire::empty());
    }
    let search = RunSearch {
        experiment_ids: req.experiment_ids,
        filter: req.filter.unwrap_or_default(),
        order_by: req.order_by,
        max_results,
        page_token: req.page_token.filter(|t| !t.is_empty()),
        view,
    };
    let page = state
        .store
        .search_runs_rendered(&search, &state.mlflow_runs, |run, models| {
            let json = serde_json::to_vec(&WireRun::new(run, Some(models)))
                .expect("a run always serialises");
            Bytes::from(json)
        })
        .await?;
    // `{"runs": [...], "next_page_token": ...}` from the runs' JSON; each part is left out when
    // empty, as protobuf does.
    let mut body = Vec::with_capacity(page.items.iter().map(|r| r.len() + 1).sum::<usize>() + 64);
    body.push(b'{');
    if !page.items.is_empty() {
        body.extend_from_slice(b"\"runs\":[");
        for (i, run) in page.items.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(run);
        }
        body.push(b']');
    }
    if let Some(token) = &page.next_page_token {
        if !page.items.is_empty() {
            body.push(b',');
        }
        body.extend_from_slice(b"\"next_page_token\":");
        serde_json::to_writer(&mut body, token).expect("a string always serialises");
    }
    body.push(b'}');
    Ok(wire::json_bytes(body))
}

/// A page token of metric history: base64 of `{"offset": n}`, as MLflow's.
fn history_offset(token: Option<&str>) -> MlflowResult<usize> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Ok(0);
    };
    let bad = || MlflowError::invalid(format!("Invalid page token '{token}'"));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| bad())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    value
        .get("offset")
        .and_then(Value::as_u64)
        .filter(|n| *n > 0)
        .map(|n| n as usize)
        .ok_or_else(bad)
}

async fn metric_history(
    State(state): State<AppState>,
    _: Can<can::ReadExperiments>,
    params: Params,
) -> MlflowResult<Response> {
    let id = params
        .required("run_id")
        .or_else(|_| params.required("run_uuid"))?;
    let key = params.required("metric_key")?;
    let limit = params.int("max_results")?;
    if let Some(n) = limit
        && n <= 0
    {
        return Err(MlflowError::invalid(format!(
            "Invalid value {n} for parameter 'max_results' supplied. It must be a positive \
             integer."
        )));
    }
    let offset = history_offset(params.get("page_token"))?;
    let mut points = match state.store.metric_history(id, key).await {
        Ok(points) => points,
        // MLflow answers an unknown run's history with an empty one.
        Err(refit_registry::Error::NotFound(_)) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    // MLflow's order: by time, then step, then value.
    points.sort_by(|a, b| {
        (a.timestamp, a.step)
            .cmp(&(b.timestamp, b.step))
            .then(a.value.total_cmp(&b.value))
    });
    let end = limit.map_or(points.len(), |n| {
        offset.saturating_add(n as usize).min(points.len())
    });
    let page = points.get(offset.min(end)..end).unwrap_or(&[]);
    /// The page, serialised straight from the points.
    #[derive(Serialize)]
    struct History<'a> {
        #[serde(skip_serializing_if = "Vec::is_empty")]
        metrics: Vec<WireMetric<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        next_page_token: Option<String>,
    }
    Ok(wire::json(History {
        metrics: page.iter().map(WireMetric::new).collect(),
        next_page_token: (end < points.len()).then(|| {
            base64::engine::general_purpose::STANDARD.encode(json!({"offset": end}).to_string())
        }),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_at_a_character_boundary() {
        assert_eq!(truncated("héllo".into(), 2), "hé");
        assert_eq!(truncated("abc".into(), 3), "abc");
        assert_eq!(truncated("abc".into(), 10), "abc");
    }

    #[test]
    fn history_tokens_are_mlflows_and_bad_ones_are_refused() {
        assert_eq!(history_offset(None).unwrap(), 0);
        // MLflow's own token for offset 2: base64 of `{"offset": 2}`.
        assert_eq!(history_offset(Some("eyJvZmZzZXQiOiAyfQ==")).unwrap(), 2);
        for bad in ["hello", "aGVsbG8=", "eyJvZmZzZXQiOiAwfQ=="] {
            let err = history_offset(Some(bad)).unwrap_err();
            assert_eq!(err.0.code, "INVALID_PARAMETER_VALUE", "{bad}");
        }
    }

    #[test]
    fn empty_lists_and_unset_fields_are_left_out() {
        let e = Experiment {
            experiment_id: "3".into(),
            name: "x".into(),
            artifact_location: "mlflow-artifacts:/3".into(),
            lifecycle_stage: LifecycleStage::Active,
            creation_time: 5,
            last_update_time: 6,
            tags: vec![],
        };
        let v = experiment_json(&e);
        assert!(v.get("tags").is_none());
        assert_eq!(v["lifecycle_stage"], "active");
        assert_eq!(v["creation_time"], 5);
        assert_eq!(wire::metric_value(f64::NAN), json!("NaN"));
        assert_eq!(wire::metric_value(2.0), json!(2.0));
    }
}
