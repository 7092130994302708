//! `/api/v1/experiments`: create, get, get by name, search, rename, tag, delete and restore.

use axum::extract::State;
use axum::http::StatusCode;
use refit_registry::experiments::{Experiment, Tag, ViewType};
use refit_registry::search::{ExperimentSearch, SearchPage};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Can, can};
use super::error::{ApiResult, ErrorBody};
use super::extract::{Json, Path, Query};
use super::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_experiment, search_experiments))
        .routes(routes!(
            get_experiment,
            rename_experiment,
            delete_experiment
        ))
        .routes(routes!(get_experiment_by_name))
        .routes(routes!(restore_experiment))
        .routes(routes!(set_experiment_tag, delete_experiment_tag))
}

/// A new experiment.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateExperiment {
    /// Unique name.
    name: String,
    /// Where runs' artifacts go; default `mlflow-artifacts:/<id>` (stored by refit).
    #[serde(default)]
    artifact_location: Option<String>,
    /// Initial tags.
    #[serde(default)]
    tags: Vec<Tag>,
}

/// Changes to an experiment.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateExperiment {
    /// New unique name.
    name: String,
}

/// A tag value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagValue {
    /// The value.
    value: String,
}

impl TagValue {
    /// The value.
    pub fn value(&self) -> &str {
        &self.value
    }
}

/// Search parameters for experiments.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// MLflow filter, e.g. `name LIKE 'churn%' AND tags.team = 'ml'`.
    #[serde(default)]
    filter: Option<String>,
    /// Comma-separated order, e.g. `name ASC,creation_time DESC`.
    #[serde(default)]
    order_by: Option<String>,
    /// Page size (default 1000).
    #[serde(default)]
    max_results: Option<i64>,
    /// Token from the previous page.
    #[serde(default)]
    page_token: Option<String>,
    /// `ACTIVE_ONLY` (default), `DELETED_ONLY` or `ALL`.
    #[serde(default)]
    #[param(inline)]
    view_type: Option<ViewType>,
}

/// One page of experiments.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExperimentPage {
    experiments: Vec<Experiment>,
    /// Present when there are more.
    next_page_token: Option<String>,
}

impl From<SearchPage<Experiment>> for ExperimentPage {
    fn from(p: SearchPage<Experiment>) -> Self {
        ExperimentPage {
            experiments: p.items,
            next_page_token: p.next_page_token,
        }
    }
}

/// Splits `a ASC, b DESC` into clauses (commas inside quotes are kept).
pub(crate) fn split_order_by(text: Option<&str>) -> Vec<String> {
    let Some(text) = text else { return Vec::new() };
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match (c, quote) {
            ('\'' | '"' | '`', None) => {
                quote = Some(c);
                current.push(c);
            }
            (q, Some(open)) if q == open => {
                quote = None;
                current.push(c);
            }
            (',', None) => out.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    out.push(current);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

#[utoipa::path(post, path = "/experiments", tag = "experiments", request_body = CreateExperiment,
    responses((status = 201, description = "Created", body = Experiment),
              (status = 400, description = "Invalid", body = ErrorBody),
              (status = 409, description = "Name taken", body = ErrorBody)))]
async fn create_experiment(
    State(state): State<AppState>,
    caller: Can<can::WriteExperiments>,
    Json(body): Json<CreateExperiment>,
) -> ApiResult<(StatusCode, axum::Json<Experiment>)> {
    let exp = state
        .store
        .create_experiment(
            &caller.actor(),
            &body.name,
            body.artifact_location.as_deref(),
            &body.tags,
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(exp)))
}

#[utoipa::path(get, path = "/experiments", tag = "experiments", params(SearchQuery),
    responses((status = 200, description = "A page of experiments", body = ExperimentPage),
              (status = 400, description = "Invalid filter or page token", body = ErrorBody)))]
async fn search_experiments(
    State(state): State<AppState>,
    _: Can<can::ReadExperiments>,
    Query(q): Query<SearchQuery>,
) -> ApiResult<axum::Json<ExperimentPage>> {
    let search = ExperimentSearch {
        filter: q.filter.unwrap_or_default(),
        order_by: split_order_by(q.order_by.as_deref()),
        max_results: q.max_results.unwrap_or(1000),
        page_token: q.page_token,
        view: q.view_type.unwrap_or_default(),
    };
    Ok(axum::Json(
        state.store.search_experiments(&search).await?.into(),
    ))
}

#[utoipa::path(get, path = "/experiments/{experiment_id}", tag = "experiments",
    params(("experiment_id" = String, Path, description = "Experiment id")),
    responses((status = 200, description = "The experiment", body = Experiment),
              (status = 404, description = "No such experiment", body = ErrorBody)))]
async fn get_experiment(
    State(state): State<AppState>,
    _: Can<can::ReadExperiments>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Experiment>> {
    Ok(axum::Json(state.store.get_experiment(&id).await?))
}

#[utoipa::path(get, path = "/experiments/by-name/{name}", tag = "experiments",
    params(("name" = String, Path, description = "Experiment name")),
    responses((status = 200, description = "The experiment", body = Experiment),
              (status = 404, description = "No such experiment", body = ErrorBody)))]
async fn get_experiment_by_name(
    State(state): State<AppState>,
    _: Can<can::ReadExperiments>,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<Experiment>> {
    Ok(axum::Json(state.store.get_experiment_by_name(&name).await?))
}

#[utoipa::path(patch, path = "/experiments/{experiment_id}", tag = "experiments", request_body = UpdateExperiment,
    params(("experiment_id" = String, Path, description = "Experiment id")),
    responses((status = 200, description = "Renamed", body = Experiment),
              (status = 404, description = "No such experiment", body = ErrorBody),
              (status = 409, description = "Name taken", body = ErrorBody)))]
async fn rename_experiment(
    State(state): State<AppState>,
    caller: Can<can::WriteExperiments>,
    Path(id): Path<String>,
    Json(body): Json<UpdateExperiment>,
) -> ApiResult<axum::Json<Experiment>> {
    Ok(axum::Json(
        state
            .store
            .rename_experiment(&caller.actor(), &id, &body.name)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/experiments/{experiment_id}", tag = "experiments",
    params(("experiment_id" = String, Path, description = "Experiment id")),
    responses((status = 204, description = "Deleted (restorable)"),
              (status = 404, description = "No such experiment", body = ErrorBody)))]
async fn delete_experiment(
    State(state): State<AppState>,
    caller: Can<can::WriteExperiments>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.store.delete_experiment(&caller.actor(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/experiments/{experiment_id}/restore", tag = "experiments",
    params(("experiment_id" = String, Path, description = "Experiment id")),
    responses((status = 200, description = "Restored", body = Experiment),
              (status = 404, description = "No such experiment", body = ErrorBody)))]
async fn restore_experiment(
    State(state): State<AppState>,
    caller: Can<can::WriteExperiments>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Experiment>> {
    Ok(axum::Json(
        state.store.restore_experiment(&caller.actor(), &id).await?,
    ))
}

#[utoipa::path(put, path = "/experiments/{experiment_id}/tags/{key}", tag = "experiments", request_body = TagValue,
    params(("experiment_id" = String, Path, description = "Experiment id"), ("key" = String, Path, description = "Tag key")),
    responses((status = 204, description = "Set"), (status = 404, description = "No such experiment", body = ErrorBody)))]
async fn set_experiment_tag(
    State(state): State<AppState>,
    caller: Can<can::WriteExperiments>,
    Path((id, key)): Path<(String, String)>,
    Json(body): Json<TagValue>,
) -> ApiResult<StatusCode> {
    state
        .store
        .set_experiment_tag(&caller.actor(), &id, &key, &body.value)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/experiments/{experiment_id}/tags/{key}", tag = "experiments",
    params(("experiment_id" = String, Path, description = "Experiment id"), ("key" = String, Path, description = "Tag key")),
    responses((status = 204, description = "Removed"), (status = 404, description = "No such experiment or tag", body = ErrorBody)))]
async fn delete_experiment_tag(
    State(state): State<AppState>,
    caller: Can<can::WriteExperiments>,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state
        .store
        .delete_experiment_tag(&caller.actor(), &id, &key)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    #[test]
    fn order_by_splits_outside_quotes() {
        assert_eq!(
            super::split_order_by(Some("metrics.`a,b` DESC, name")),
            vec!["metrics.`a,b` DESC", "name"]
        );
        assert!(super::split_order_by(None).is_empty());
        assert!(super::split_order_by(Some(" , ")).is_empty());
    }
}
