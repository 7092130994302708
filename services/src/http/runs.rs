//! `/api/v1/runs`: create, get, update, delete/restore, log (batch and single metric), metric
//! history, tags, dataset inputs, and search.

use axum::extract::State;
use axum::http::StatusCode;
use refit_registry::experiments::{Tag, ViewType};
use refit_registry::runs::{
    DatasetInput, Metric, NewRun, Param, Run, RunInfo, RunStatus, RunUpdate,
};
use refit_registry::search::{RunSearch, SearchPage};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Can, can};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::experiments::split_order_by;
use super::extract::{Json, Path};
use super::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_run))
        .routes(routes!(search_runs))
        .routes(routes!(get_run, update_run, delete_run))
        .routes(routes!(restore_run))
        .routes(routes!(log_batch))
        .routes(routes!(log_metric))
        .routes(routes!(metric_history))
        .routes(routes!(delete_run_tag))
        .routes(routes!(log_inputs))
}

/// A new run.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRun {
    /// Experiment to create the run in (default `0`).
    #[serde(default)]
    experiment_id: Option<String>,
    /// Name; generated when absent.
    #[serde(default)]
    run_name: Option<String>,
    /// ms since the Unix epoch; now when absent.
    #[serde(default)]
    start_time: Option<i64>,
    /// Initial tags.
    #[serde(default)]
    tags: Vec<Tag>,
}

/// Changes to a run; absent fields stay.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRun {
    #[serde(default)]
    status: Option<RunStatus>,
    /// ms since the Unix epoch.
    #[serde(default)]
    end_time: Option<i64>,
    #[serde(default)]
    run_name: Option<String>,
}

/// Metrics, params and tags to log in one transaction.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogBatch {
    /// At most 1000.
    #[serde(default)]
    metrics: Vec<Metric>,
    /// At most 100. Params are immutable.
    #[serde(default)]
    params: Vec<Param>,
    /// At most 100.
    #[serde(default)]
    tags: Vec<Tag>,
}

/// Datasets the run used.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogInputs {
    datasets: Vec<DatasetInput>,
}

/// A run search.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRuns {
    /// Experiments to search.
    experiment_ids: Vec<String>,
    /// MLflow filter, e.g. `metrics.rmse < 10 AND params.alpha = '0.1'`.
    #[serde(default)]
    filter: Option<String>,
    /// e.g. `["metrics.rmse ASC", "attributes.start_time DESC"]`.
    #[serde(default)]
    order_by: Vec<String>,
    /// Page size (default 1000, at most 50000).
    #[serde(default)]
    max_results: Option<i64>,
    #[serde(default)]
    page_token: Option<String>,
    /// `ACTIVE_ONLY` (default), `DELETED_ONLY`, `ALL`.
    #[serde(default)]
    run_view_type: Option<ViewType>,
}

/// One page of runs.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunPage {
    runs: Vec<Run>,
    next_page_token: Option<String>,
}

impl From<SearchPage<Run>> for RunPage {
    fn from(p: SearchPage<Run>) -> Self {
        RunPage {
            runs: p.items,
            next_page_token: p.next_page_token,
        }
    }
}

/// A metric's history.
#[derive(Debug, Serialize, ToSchema)]
pub struct MetricHistory {
    metrics: Vec<Metric>,
}

/// JSON cannot carry NaN or infinity, so the native API takes finite numbers only; MLflow's API
/// (which accepts them, as MLflow does) shares the same store.
fn check_finite(metrics: &[Metric]) -> Result<(), ApiError> {
    match metrics.iter().find(|m| !m.value.is_finite()) {
        Some(m) => Err(ApiError::invalid(format!(
            "metric '{}' must be a finite number",
            m.key
        ))),
        None => Ok(()),
    }
}

#[utoipa::path(post, path = "/runs", tag = "runs", request_body = CreateRun,
    responses((status = 201, description = "Created", body = Run),
              (status = 404, description = "No such experiment", body = ErrorBody)))]
async fn create_run(
    State(state): State<AppState>,
    caller: Can<can::WriteExperiments>,
    Json(body): Json<CreateRun>,
) -> ApiResult<(StatusCode, axum::Json<Run>)> {
    let new = NewRun {
        experiment_id: body.experiment_id.unwrap_or_else(|| "0".into()),
        run_name: body.run_name,
        start_time: body.start_time,
        tags: body.tags,
        user_id: None,
    };
    Ok((
        StatusCode::CREATED,
        axum::Json(state.store.create_run(&caller.actor(), new).await?),
    ))
}

#[utoipa::path(post, path = "/runs/search", tag = "runs", request_body = SearchRuns,
    responses((status = 200, description = "A page of runs", body = RunPage),
              (status = 400, description = "Invalid filter, order or page token", body = ErrorBody)))]
async fn search_runs(
    State(state): State<AppState>,
    _: Can<can::ReadExperiments>,
    Json(body): Json<SearchRuns>,
) -> ApiResult<axum::Json<RunPage>> {
    let order_by = body
        .order_by
        .iter()
        .flat_map(|o| split_order_by(Some(o)))
        .collect();
    let search = RunSearch {
        experiment_ids: body.experiment_ids,
        filter: body.filter.unwrap_or_default(),
        order_by,
        max_results: body.max_results.unwrap_or(1000),
        page_token: body.page_token,
        view: body.run_view_type.unwrap_or_default(),
    };
    Ok(axum::Json(state.store.search_runs(&search).await?.into()))
}

#[utoipa::path(get, path = "/runs/{run_id}", tag = "runs",
    params(("run_id" = String, Path, description = "Run id")),
    responses((status = 200, description = "The run", body = Run), (status = 404, description = "No such run", body = ErrorBody)))]
async fn get_run(
    State(state): State<AppState>,
    _: Can<can::ReadExperiments>,
    Path(run_id): Path<String>,
) -> ApiResult<axum::Json<Run>> {
    Ok(axum::Json(state.store.get_run(&run_id).await?))
}

#[utoipa::path(patch, path = "/runs/{run_id}", tag = "runs", request_body = UpdateRun,
    params(("run_id" = String, Path, description = "Run id")),
    responses((status = 200, description = "Updated", body = RunInfo), (status = 404, description = "No such run", body = ErrorBody)))]
async fn update_run(
    State(state): State<AppState>,
    caller: Can<can::WriteExperiments>,
    Path(run_id): Path<String>,
    Json(body): Json<UpdateRun>,
) -> ApiResult<axum::Json<RunInfo>> {
    let update = RunUpdate {
        status: body.status,
        end_time: body.end_time,
        run_name: body.run_name,
    };
    Ok(axum::Json(
        state
            .store
            .update_run(&caller.actor(), &run_id, update)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/runs/{run_id}", tag = "runs",
    params(("run_id" = String, Path, description = "Run id")),
    responses((status = 204, description = "Deleted (restorable)"), (status = 404, description = "No such run", body = ErrorBody)))]
async fn delete_run(
    State(state): State<AppState>,
    caller: Can<can::WriteExperiments>,
    Path(run_id): Path<String>,
) -> ApiResult<StatusCode> {
    state.store.delete_run(&caller.actor(), &run_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/runs/{run_id}/restore", tag = "runs",
    params(("run_id" = String, Path, description = "Run id")),
    responses((status = 204, description = "Restored"), (status = 404, description = "No such run", body = ErrorBody)))]
async fn restore_run(
    State(state): State<AppState>,
    caller: Can<can::WriteExperiments>,
    Path(run_id): Path<String>,
) -> ApiResult<StatusCode> {
    state.store.restore_run(&caller.actor(), &run_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/runs/{run_id}/log-batch", tag = "runs", request_body = LogBatch,
    params(("run_id" = String, Path, description = "Run id")),
    responses((status = 204, description = "Logged, all or nothing"),
              (status = 400, description = "Invalid entry, changed param, or over a limit", body = ErrorBody),
              (status = 404, description = "No such run", body = ErrorBody)))]
async fn log_batch(
    State(state): State<AppState>,
    caller: Can<can::WriteExperiments>,
    Path(run_id): Path<String>,
    Json(body): Json<LogBatch>,
) -> ApiResult<StatusCode> {
    check_finite(&body.metrics)?;
    state
        .store
        .log_batch(
            &caller.actor(),
            &run_id,
            &body.metrics,
            &body.params,
            &body.tags,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/runs/{run_id}/metrics", tag = "runs", request_body = Metric,
    params(("run_id" = String, Path, description = "Run id")),
    responses((status = 204, description = "Logged"), (status = 404, description = "No such run", body = ErrorBody)))]
async fn log_metric(
    State(state): State<AppState>,
    caller: Can<can::WriteExperiments>,
    Path(run_id): Path<String>,
    Json(metric): Json<Metric>,
) -> ApiResult<StatusCode> {
    let metrics = [metric];
    check_finite(&metrics)?;
    state
        .store
        .log_batch(&caller.actor(), &run_id, &metrics, &[], &[])
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/runs/{run_id}/metrics/{key}/history", tag = "runs",
    params(("run_id" = String, Path, description = "Run id"), ("key" = String, Path, description = "Metric key")),
    responses((status = 200, description = "Every point, by step then time", body = MetricHistory),
              (status = 404, description = "No such run", body = ErrorBody)))]
async fn metric_history(
    State(state): State<AppState>,
    _: Can<can::ReadExperiments>,
    Path((run_id, key)): Path<(String, String)>,
) -> ApiResult<axum::Json<MetricHistory>> {
    Ok(axum::Json(MetricHistory {
        metrics: state.store.metric_history(&run_id, &key).await?,
    }))
}

#[utoipa::path(delete, path = "/runs/{run_id}/tags/{key}", tag = "runs",
    params(("run_id" = String, Path, description = "Run id"), ("key" = String, Path, description = "Tag key")),
    responses((status = 204, description = "Removed"), (status = 404, description = "No such run or tag", body = ErrorBody)))]
async fn delete_run_tag(
    State(state): State<AppState>,
    caller: Can<can::WriteExperiments>,
    Path((run_id, key)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state
        .store
        .delete_run_tag(&caller.actor(), &run_id, &key)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/runs/{run_id}/inputs", tag = "runs", request_body = LogInputs,
    params(("run_id" = String, Path, description = "Run id")),
    responses((status = 204, description = "Recorded"), (status = 404, description = "No such run", body = ErrorBody)))]
async fn log_inputs(
    State(state): State<AppState>,
    caller: Can<can::WriteExperiments>,
    Path(run_id): Path<String>,
    Json(body): Json<LogInputs>,
) -> ApiResult<StatusCode> {
    state
        .store
        .log_inputs(&caller.actor(), &run_id, &body.datasets)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
