//! Training specs and jobs (`/api/v1/specs`, `/api/v1/jobs`), the promotion ledger
//! (`/api/v1/ledger`) and the operators' actions: approve or reject pending promotions, roll back,
//! pin.

use axum::extract::State;
use axum::http::StatusCode;
use refit_registry::ledger::{LedgerEntry, Pin};
use refit_registry::training::{Job, StoredSpec};
use refit_trainer::spec::{SpecCheckError, TrainingSpec};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Can, can};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Json, Path, Query};
use super::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_spec, list_specs))
        .routes(routes!(get_spec, update_spec))
        .routes(routes!(enable_spec))
        .routes(routes!(disable_spec))
        .routes(routes!(train_spec))
        .routes(routes!(list_jobs))
        .routes(routes!(get_job))
        .routes(routes!(list_ledger))
        .routes(routes!(get_ledger_entry))
        .routes(routes!(pending_promotions))
        .routes(routes!(approve_promotion))
        .routes(routes!(reject_promotion))
        .routes(routes!(rollback_model))
        .routes(routes!(pin_model, unpin_model))
}

/// Specs, by name.
#[derive(Debug, Serialize, ToSchema)]
pub struct SpecList {
    specs: Vec<StoredSpec>,
}

/// Jobs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    jobs: Vec<Job>,
}

/// Ledger entries, newest first (or pending ones, oldest first).
#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerList {
    entries: Vec<LedgerEntry>,
}

/// Which jobs to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobQuery {
    /// Only this spec's jobs (id or name).
    #[serde(default)]
    spec: Option<String>,
    /// Most jobs (default 100).
    #[serde(default)]
    limit: Option<i64>,
}

/// Which ledger entries to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LedgerQuery {
    /// Only this model's entries.
    #[serde(default)]
    model: Option<String>,
    /// Most entries (default 100).
    #[serde(default)]
    limit: Option<i64>,
    /// Only entries older than this id.
    #[serde(default)]
    before: Option<i64>,
}

/// An operator's reason.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    #[serde(default)]
    reason: Option<String>,
}

/// A rollback target.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    /// Version to make champion; default: the previous champion.
    #[serde(default)]
    version: Option<i64>,
    #[serde(default)]
    reason: Option<String>,
}

/// Validates a spec against its dataset (the check the CLI uses too); every refusal names the
/// field.
async fn check_spec(
    state: &AppState,
    spec: &TrainingSpec,
) -> ApiResult<refit_trainer::spec::ValidSpec> {
    spec.check(&state.store).await.map_err(|e| match e {
        SpecCheckError::Invalid(e) => ApiError::invalid(e.to_string()),
        SpecCheckError::Registry(e) => e.into(),
    })
}

async fn resync(state: &AppState) {
    if let Err(e) = state.scheduler.sync().await {
        tracing::warn!(error = %e, "reloading schedules failed");
    }
}

#[utoipa::path(post, path = "/specs", tag = "training", request_body = TrainingSpec,
    responses((status = 201, description = "Stored; its schedule is active", body = StoredSpec),
              (status = 400, description = "Invalid spec (the message names the field)", body = ErrorBody),
              (status = 409, description = "Name taken", body = ErrorBody)))]
async fn create_spec(
    State(state): State<AppState>,
    caller: Can<can::WriteSpecs>,
    Json(spec): Json<TrainingSpec>,
) -> ApiResult<(StatusCode, axum::Json<StoredSpec>)> {
    let valid = check_spec(&state, &spec).await?;
    let json = valid.definition();
    let stored = state
        .store
        .create_spec(&caller.actor(), valid.fields(&json))
        .await?;
    resync(&state).await;
    Ok((StatusCode::CREATED, axum::Json(stored)))
}

#[utoipa::path(get, path = "/specs", tag = "training",
    responses((status = 200, description = "Every spec", body = SpecList)))]
async fn list_specs(
    State(state): State<AppState>,
    _: Can<can::ReadTraining>,
) -> ApiResult<axum::Json<SpecList>> {
    Ok(axum::Json(SpecList {
        specs: state.store.list_specs().await?,
    }))
}

#[utoipa::path(get, path = "/specs/{spec}", tag = "training",
    params(("spec" = String, Path, description = "Spec id or name")),
    responses((status = 200, description = "The spec", body = StoredSpec), (status = 404, description = "No such spec", body = ErrorBody)))]
async fn get_spec(
    State(state): State<AppState>,
    _: Can<can::ReadTraining>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<StoredSpec>> {
    Ok(axum::Json(state.store.get_spec(&id).await?))
}

#[utoipa::path(put, path = "/specs/{spec}", tag = "training", request_body = TrainingSpec,
    params(("spec" = String, Path, description = "Spec id or name")),
    responses((status = 200, description = "Replaced", body = StoredSpec),
              (status = 400, description = "Invalid spec, or a different name", body = ErrorBody),
              (status = 404, description = "No such spec", body = ErrorBody)))]
async fn update_spec(
    State(state): State<AppState>,
    caller: Can<can::WriteSpecs>,
    Path(id): Path<String>,
    Json(spec): Json<TrainingSpec>,
) -> ApiResult<axum::Json<StoredSpec>> {
    let current = state.store.get_spec(&id).await?;
    if current.name != spec.name {
        return Err(ApiError::invalid(format!(
            "name: a spec keeps its name ('{}'); create a new spec instead",
            current.name
        )));
    }
    let valid = check_spec(&state, &spec).await?;
    let json = valid.definition();
    let stored = state
        .store
        .update_spec(&caller.actor(), &id, valid.fields(&json))
        .await?;
    resync(&state).await;
    Ok(axum::Json(stored))
}

#[utoipa::path(post, path = "/specs/{spec}/enable", tag = "training",
    params(("spec" = String, Path, description = "Spec id or name")),
    responses((status = 200, description = "Enabled", body = StoredSpec), (status = 404, description = "No such spec", body = ErrorBody)))]
async fn enable_spec(
    State(state): State<AppState>,
    caller: Can<can::WriteSpecs>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<StoredSpec>> {
    let spec = state
        .store
        .set_spec_enabled(&caller.actor(), &id, true)
        .await?;
    resync(&state).await;
    Ok(axum::Json(spec))
}

#[utoipa::path(post, path = "/specs/{spec}/disable", tag = "training",
    params(("spec" = String, Path, description = "Spec id or name")),
    responses((status = 200, description = "Disabled: no schedule or trigger starts it", body = StoredSpec), (status = 404, description = "No such spec", body = ErrorBody)))]
async fn disable_spec(
    State(state): State<AppState>,
    caller: Can<can::WriteSpecs>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<StoredSpec>> {
    let spec = state
        .store
        .set_spec_enabled(&caller.actor(), &id, false)
        .await?;
    resync(&state).await;
    Ok(axum::Json(spec))
}

#[utoipa::path(post, path = "/specs/{spec}/train", tag = "training",
    params(("spec" = String, Path, description = "Spec id or name")),
    responses((status = 202, description = "Queued; poll the job for progress", body = Job),
              (status = 404, description = "No such spec", body = ErrorBody)))]
async fn train_spec(
    State(state): State<AppState>,
    caller: Can<can::WriteSpecs>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, axum::Json<Job>)> {
    let spec = state.store.get_spec(&id).await?;
    let job = state
        .store
        .create_job(&caller.actor(), spec.id, "manual", None)
        .await?;
    state.scheduler.notify();
    Ok((StatusCode::ACCEPTED, axum::Json(job)))
}

#[utoipa::path(get, path = "/jobs", tag = "training", params(JobQuery),
    responses((status = 200, description = "Jobs, newest first", body = JobList)))]
async fn list_jobs(
    State(state): State<AppState>,
    _: Can<can::ReadTraining>,
    Query(q): Query<JobQuery>,
) -> ApiResult<axum::Json<JobList>> {
    let spec_id = match &q.spec {
        Some(s) => Some(state.store.get_spec(s).await?.id),
        None => None,
    };
    Ok(axum::Json(JobList {
        jobs: state
            .store
            .list_jobs(spec_id, q.limit.unwrap_or(100))
            .await?,
    }))
}

#[utoipa::path(get, path = "/jobs/{id}", tag = "training",
    params(("id" = i64, Path, description = "Job id")),
    responses((status = 200, description = "The job, with its stage and progress", body = Job), (status = 404, description = "No such job", body = ErrorBody)))]
async fn get_job(
    State(state): State<AppState>,
    _: Can<can::ReadTraining>,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<Job>> {
    Ok(axum::Json(state.store.get_job(id).await?))
}

#[utoipa::path(get, path = "/ledger", tag = "promotions", params(LedgerQuery),
    responses((status = 200, description = "Decisions, newest first", body = LedgerList)))]
async fn list_ledger(
    State(state): State<AppState>,
    _: Can<can::ReadTraining>,
    Query(q): Query<LedgerQuery>,
) -> ApiResult<axum::Json<LedgerList>> {
    let entries = state
        .store
        .ledger(q.model.as_deref(), q.limit.unwrap_or(100), q.before)
        .await?;
    Ok(axum::Json(LedgerList { entries }))
}

#[utoipa::path(get, path = "/ledger/{id}", tag = "promotions",
    params(("id" = i64, Path, description = "Ledger entry id")),
    responses((status = 200, description = "The entry", body = LedgerEntry), (status = 404, description = "No such entry", body = ErrorBody)))]
async fn get_ledger_entry(
    State(state): State<AppState>,
    _: Can<can::ReadTraining>,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<LedgerEntry>> {
    Ok(axum::Json(state.store.ledger_entry(id).await?))
}

#[utoipa::path(get, path = "/promotions/pending", tag = "promotions", params(LedgerQuery),
    responses((status = 200, description = "Candidates waiting for an operator, oldest first", body = LedgerList)))]
async fn pending_promotions(
    State(state): State<AppState>,
    _: Can<can::ReadTraining>,
    Query(q): Query<LedgerQuery>,
) -> ApiResult<axum::Json<LedgerList>> {
    Ok(axum::Json(LedgerList {
        entries: state.store.pending_approvals(q.model.as_deref()).await?,
    }))
}

#[utoipa::path(post, path = "/promotions/{id}/approve", tag = "promotions", request_body = Reason,
    params(("id" = i64, Path, description = "The pending ledger entry")),
    responses((status = 200, description = "Approved: the candidate is champion", body = LedgerEntry),
              (status = 400, description = "Not a pending entry", body = ErrorBody),
              (status = 409, description = "Already resolved", body = ErrorBody)))]
async fn approve_promotion(
    State(state): State<AppState>,
    caller: Can<can::Operate>,
    Path(id): Path<i64>,
    Json(b): Json<Reason>,
) -> ApiResult<axum::Json<LedgerEntry>> {
    Ok(axum::Json(
        state
            .store
            .approve(&caller.actor(), id, b.reason.as_deref())
            .await?,
    ))
}

#[utoipa::path(post, path = "/promotions/{id}/reject", tag = "promotions", request_body = Reason,
    params(("id" = i64, Path, description = "The pending ledger entry")),
    responses((status = 200, description = "Rejected", body = LedgerEntry),
              (status = 400, description = "No reason, or not a pending entry", body = ErrorBody),
              (status = 409, description = "Already resolved", body = ErrorBody)))]
async fn reject_promotion(
    State(state): State<AppState>,
    caller: Can<can::Operate>,
    Path(id): Path<i64>,
    Json(b): Json<Reason>,
) -> ApiResult<axum::Json<LedgerEntry>> {
    let reason = b.reason.unwrap_or_default();
    Ok(axum::Json(
        state
            .store
            .reject_pending(&caller.actor(), id, &reason)
            .await?,
    ))
}

#[utoipa::path(post, path = "/models/{name}/rollback", tag = "promotions", request_body = Rollback,
    params(("name" = String, Path, description = "Registered model")),
    responses((status = 200, description = "Rolled back", body = LedgerEntry),
              (status = 404, description = "No such model or version", body = ErrorBody),
              (status = 409, description = "No champion, or no previous champion", body = ErrorBody)))]
async fn rollback_model(
    State(state): State<AppState>,
    caller: Can<can::Operate>,
    Path(name): Path<String>,
    Json(b): Json<Rollback>,
) -> ApiResult<axum::Json<LedgerEntry>> {
    Ok(axum::Json(
        state
            .store
            .rollback(
                &caller.actor(),
                &name,
                b.version,
                b.reason.as_deref(),
                "operator",
                None,
            )
            .await?,
    ))
}

#[utoipa::path(put, path = "/models/{name}/pin", tag = "promotions", request_body = Reason,
    params(("name" = String, Path, description = "Registered model")),
    responses((status = 200, description = "Pinned: automatic promotion waits for approval", body = Pin),
              (status = 404, description = "No such model", body = ErrorBody)))]
async fn pin_model(
    State(state): State<AppState>,
    caller: Can<can::Operate>,
    Path(name): Path<String>,
    Json(b): Json<Reason>,
) -> ApiResult<axum::Json<Pin>> {
    Ok(axum::Json(
        state
            .store
            .pin_model(&caller.actor(), &name, b.reason.as_deref())
            .await?,
    ))
}

#[utoipa::path(delete, path = "/models/{name}/pin", tag = "promotions",
    params(("name" = String, Path, description = "Registered model")),
    responses((status = 204, description = "Unpinned"), (status = 404, description = "Not pinned", body = ErrorBody)))]
async fn unpin_model(
    State(state): State<AppState>,
    caller: Can<can::Operate>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    state.store.unpin_model(&caller.actor(), &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
