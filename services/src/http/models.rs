//! `/api/v1/models`: registered models, their versions, tags, stages and aliases; and
//! `/api/v1/model-versions` to search versions across models.

use axum::extract::State;
use axum::http::StatusCode;
use refit_registry::experiments::Tag;
use refit_registry::models::{ModelVersion, NewModelVersion, RegisteredModel};
use refit_registry::search::{ModelSearch, SearchPage};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Can, can};
use super::error::{ApiResult, ErrorBody};
use super::experiments::{TagValue, split_order_by};
use super::extract::{Json, Path, Query};
use super::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_model, search_models))
        .routes(routes!(get_model, update_model, delete_model))
        .routes(routes!(set_model_tag, delete_model_tag))
        .routes(routes!(create_version, list_versions))
        .routes(routes!(get_version, update_version, delete_version))
        .routes(routes!(set_version_tag, delete_version_tag))
        .routes(routes!(transition_stage))
        .routes(routes!(set_alias, get_alias, delete_alias))
        .routes(routes!(search_versions))
}

/// A new registered model.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateModel {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    tags: Vec<Tag>,
}

/// Changes to a model: a new name and/or description.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateModel {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

/// A new model version.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVersion {
    /// Where the model's files are, e.g. `runs:/<run_id>/model` or `models:/m-…`.
    source: String,
    #[serde(default)]
    run_id: Option<String>,
    #[serde(default)]
    run_link: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    tags: Vec<Tag>,
}

/// Changes to a version.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateVersion {
    #[serde(default)]
    description: Option<String>,
}

/// A stage transition (MLflow's deprecated stages).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Transition {
    /// `None`, `Staging`, `Production` or `Archived`.
    stage: String,
    /// Move other versions in the target stage to `Archived`.
    #[serde(default)]
    archive_existing_versions: bool,
}

/// The version an alias should point at.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AliasTarget {
    version: i64,
}

/// Search parameters for models and versions.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// MLflow filter, e.g. `name LIKE 'churn%'` or `run_id = '…'`.
    #[serde(default)]
    filter: Option<String>,
    /// Comma-separated order clauses.
    #[serde(default)]
    order_by: Option<String>,
    /// Page size (default 100).
    #[serde(default)]
    max_results: Option<i64>,
    #[serde(default)]
    page_token: Option<String>,
}

impl SearchQuery {
    fn into_search(self, model_name: Option<String>) -> ModelSearch {
        ModelSearch {
            model_name,
            filter: self.filter.unwrap_or_default(),
            order_by: split_order_by(self.order_by.as_deref()),
            max_results: self.max_results.unwrap_or(100),
            page_token: self.page_token,
        }
    }
}

/// One page of registered models.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelPage {
    registered_models: Vec<RegisteredModel>,
    next_page_token: Option<String>,
}

/// One page of model versions.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionPage {
    model_versions: Vec<ModelVersion>,
    next_page_token: Option<String>,
}

impl From<SearchPage<ModelVersion>> for VersionPage {
    fn from(p: SearchPage<ModelVersion>) -> Self {
        VersionPage {
            model_versions: p.items,
            next_page_token: p.next_page_token,
        }
    }
}

#[utoipa::path(post, path = "/models", tag = "models", request_body = CreateModel,
    responses((status = 201, description = "Created", body = RegisteredModel),
              (status = 409, description = "Name taken", body = ErrorBody)))]
async fn create_model(
    State(state): State<AppState>,
    caller: Can<can::WriteModels>,
    Json(b): Json<CreateModel>,
) -> ApiResult<(StatusCode, axum::Json<RegisteredModel>)> {
    let model = state
        .store
        .create_registered_model(&caller.actor(), &b.name, b.description.as_deref(), &b.tags)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(model)))
}

#[utoipa::path(get, path = "/models", tag = "models", params(SearchQuery),
    responses((status = 200, description = "A page of models", body = ModelPage),
              (status = 400, description = "Invalid filter or page token", body = ErrorBody)))]
async fn search_models(
    State(state): State<AppState>,
    _: Can<can::ReadModels>,
    Query(q): Query<SearchQuery>,
) -> ApiResult<axum::Json<ModelPage>> {
    let page = state
        .store
        .search_registered_models(&q.into_search(None))
        .await?;
    Ok(axum::Json(ModelPage {
        registered_models: page.items,
        next_page_token: page.next_page_token,
    }))
}

#[utoipa::path(get, path = "/models/{name}", tag = "models",
    params(("name" = String, Path, description = "Model name")),
    responses((status = 200, description = "The model", body = RegisteredModel), (status = 404, description = "No such model", body = ErrorBody)))]
async fn get_model(
    State(state): State<AppState>,
    _: Can<can::ReadModels>,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<RegisteredModel>> {
    Ok(axum::Json(state.store.get_registered_model(&name).await?))
}

#[utoipa::path(patch, path = "/models/{name}", tag = "models", request_body = UpdateModel,
    params(("name" = String, Path, description = "Model name")),
    responses((status = 200, description = "Updated", body = RegisteredModel),
              (status = 404, description = "No such model", body = ErrorBody),
              (status = 409, description = "New name taken", body = ErrorBody)))]
async fn update_model(
    State(state): State<AppState>,
    caller: Can<can::WriteModels>,
    Path(name): Path<String>,
    Json(b): Json<UpdateModel>,
) -> ApiResult<axum::Json<RegisteredModel>> {
    let actor = caller.actor();
    let mut model = state.store.get_registered_model(&name).await?;
    if let Some(description) = &b.description {
        model = state
            .store
            .update_registered_model(&actor, &name, Some(description))
            .await?;
    }
    if let Some(new_name) = &b.name {
        model = state
            .store
            .rename_registered_model(&actor, &name, new_name)
            .await?;
    }
    Ok(axum::Json(model))
}

#[utoipa::path(delete, path = "/models/{name}", tag = "models",
    params(("name" = String, Path, description = "Model name")),
    responses((status = 204, description = "Deleted with its versions"), (status = 404, description = "No such model", body = ErrorBody)))]
async fn delete_model(
    State(state): State<AppState>,
    caller: Can<can::WriteModels>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .store
        .delete_registered_model(&caller.actor(), &name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(put, path = "/models/{name}/tags/{key}", tag = "models", request_body = TagValue,
    params(("name" = String, Path, description = "Model name"), ("key" = String, Path, description = "Tag key")),
    responses((status = 204, description = "Set"), (status = 404, description = "No such model", body = ErrorBody)))]
async fn set_model_tag(
    State(state): State<AppState>,
    caller: Can<can::WriteModels>,
    Path((name, key)): Path<(String, String)>,
    Json(b): Json<TagValue>,
) -> ApiResult<StatusCode> {
    state
        .store
        .set_registered_model_tag(&caller.actor(), &name, &key, b.value())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/models/{name}/tags/{key}", tag = "models",
    params(("name" = String, Path, description = "Model name"), ("key" = String, Path, description = "Tag key")),
    responses((status = 204, description = "Removed"), (status = 404, description = "No such model or tag", body = ErrorBody)))]
async fn delete_model_tag(
    State(state): State<AppState>,
    caller: Can<can::WriteModels>,
    Path((name, key)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state
        .store
        .delete_registered_model_tag(&caller.actor(), &name, &key)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/models/{name}/versions", tag = "models", request_body = CreateVersion,
    params(("name" = String, Path, description = "Model name")),
    responses((status = 201, description = "Registered", body = ModelVersion),
              (status = 404, description = "No such model or run", body = ErrorBody)))]
async fn create_version(
    State(state): State<AppState>,
    caller: Can<can::WriteModels>,
    Path(name): Path<String>,
    Json(b): Json<CreateVersion>,
) -> ApiResult<(StatusCode, axum::Json<ModelVersion>)> {
    let new = NewModelVersion {
        source: b.source,
        run_id: b.run_id,
        run_link: b.run_link,
        description: b.description,
        tags: b.tags,
    };
    Ok((
        StatusCode::CREATED,
        axum::Json(
            state
                .store
                .create_model_version(&caller.actor(), &name, new)
                .await?,
        ),
    ))
}

#[utoipa::path(get, path = "/models/{name}/versions", tag = "models",
    params(("name" = String, Path, description = "Model name"), SearchQuery),
    responses((status = 200, description = "A page of this model's versions", body = VersionPage),
              (status = 404, description = "No such model", body = ErrorBody)))]
async fn list_versions(
    State(state): State<AppState>,
    _: Can<can::ReadModels>,
    Path(name): Path<String>,
    Query(q): Query<SearchQuery>,
) -> ApiResult<axum::Json<VersionPage>> {
    state.store.get_registered_model(&name).await?;
    Ok(axum::Json(
        state
            .store
            .search_model_versions(&q.into_search(Some(name)))
            .await?
            .into(),
    ))
}

#[utoipa::path(get, path = "/model-versions", tag = "models", params(SearchQuery),
    responses((status = 200, description = "A page of versions across models", body = VersionPage),
              (status = 400, description = "Invalid filter or page token", body = ErrorBody)))]
async fn search_versions(
    State(state): State<AppState>,
    _: Can<can::ReadModels>,
    Query(q): Query<SearchQuery>,
) -> ApiResult<axum::Json<VersionPage>> {
    Ok(axum::Json(
        state
            .store
            .search_model_versions(&q.into_search(None))
            .await?
            .into(),
    ))
}

#[utoipa::path(get, path = "/models/{name}/versions/{version}", tag = "models",
    params(("name" = String, Path, description = "Model name"), ("version" = i64, Path, description = "Version number")),
    responses((status = 200, description = "The version", body = ModelVersion), (status = 404, description = "No such version", body = ErrorBody)))]
async fn get_version(
    State(state): State<AppState>,
    _: Can<can::ReadModels>,
    Path((name, version)): Path<(String, i64)>,
) -> ApiResult<axum::Json<ModelVersion>> {
    Ok(axum::Json(
        state.store.get_model_version(&name, version).await?,
    ))
}

#[utoipa::path(patch, path = "/models/{name}/versions/{version}", tag = "models", request_body = UpdateVersion,
    params(("name" = String, Path, description = "Model name"), ("version" = i64, Path, description = "Version number")),
    responses((status = 200, description = "Updated", body = ModelVersion), (status = 404, description = "No such version", body = ErrorBody)))]
async fn update_version(
    State(state): State<AppState>,
    caller: Can<can::WriteModels>,
    Path((name, version)): Path<(String, i64)>,
    Json(b): Json<UpdateVersion>,
) -> ApiResult<axum::Json<ModelVersion>> {
    Ok(axum::Json(
        state
            .store
            .update_model_version(&caller.actor(), &name, version, b.description.as_deref())
            .await?,
    ))
}

#[utoipa::path(delete, path = "/models/{name}/versions/{version}", tag = "models",
    params(("name" = String, Path, description = "Model name"), ("version" = i64, Path, description = "Version number")),
    responses((status = 204, description = "Deleted with its tags and aliases"), (status = 404, description = "No such version", body = ErrorBody)))]
async fn delete_version(
    State(state): State<AppState>,
    caller: Can<can::WriteModels>,
    Path((name, version)): Path<(String, i64)>,
) -> ApiResult<StatusCode> {
    state
        .store
        .delete_model_version(&caller.actor(), &name, version)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(put, path = "/models/{name}/versions/{version}/tags/{key}", tag = "models", request_body = TagValue,
    params(("name" = String, Path, description = "Model name"), ("version" = i64, Path, description = "Version number"), ("key" = String, Path, description = "Tag key")),
    responses((status = 204, description = "Set"), (status = 404, description = "No such version", body = ErrorBody)))]
async fn set_version_tag(
    State(state): State<AppState>,
    caller: Can<can::WriteModels>,
    Path((name, version, key)): Path<(String, i64, String)>,
    Json(b): Json<TagValue>,
) -> ApiResult<StatusCode> {
    state
        .store
        .set_model_version_tag(&caller.actor(), &name, version, &key, b.value())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/models/{name}/versions/{version}/tags/{key}", tag = "models",
    params(("name" = String, Path, description = "Model name"), ("version" = i64, Path, description = "Version number"), ("key" = String, Path, description = "Tag key")),
    responses((status = 204, description = "Removed"), (status = 404, description = "No such version or tag", body = ErrorBody)))]
async fn delete_version_tag(
    State(state): State<AppState>,
    caller: Can<can::WriteModels>,
    Path((name, version, key)): Path<(String, i64, String)>,
) -> ApiResult<StatusCode> {
    state
        .store
        .delete_model_version_tag(&caller.actor(), &name, version, &key)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/models/{name}/versions/{version}/stage", tag = "models", request_body = Transition,
    params(("name" = String, Path, description = "Model name"), ("version" = i64, Path, description = "Version number")),
    responses((status = 200, description = "Moved", body = ModelVersion), (status = 400, description = "Unknown stage", body = ErrorBody)))]
async fn transition_stage(
    State(state): State<AppState>,
    caller: Can<can::WriteModels>,
    Path((name, version)): Path<(String, i64)>,
    Json(b): Json<Transition>,
) -> ApiResult<axum::Json<ModelVersion>> {
    let v = state
        .store
        .transition_model_version_stage(
            &caller.actor(),
            &name,
            version,
            &b.stage,
            b.archive_existing_versions,
        )
        .await?;
    Ok(axum::Json(v))
}

#[utoipa::path(put, path = "/models/{name}/aliases/{alias}", tag = "models", request_body = AliasTarget,
    params(("name" = String, Path, description = "Model name"), ("alias" = String, Path, description = "Alias, e.g. champion")),
    responses((status = 204, description = "Set"), (status = 400, description = "Reserved or malformed alias", body = ErrorBody),
              (status = 404, description = "No such version", body = ErrorBody)))]
async fn set_alias(
    State(state): State<AppState>,
    caller: Can<can::WriteModels>,
    Path((name, alias)): Path<(String, String)>,
    Json(b): Json<AliasTarget>,
) -> ApiResult<StatusCode> {
    state
        .store
        .set_model_alias(&caller.actor(), &name, &alias, b.version)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/models/{name}/aliases/{alias}", tag = "models",
    params(("name" = String, Path, description = "Model name"), ("alias" = String, Path, description = "Alias")),
    responses((status = 200, description = "The version the alias points at", body = ModelVersion),
              (status = 404, description = "No such alias", body = ErrorBody)))]
async fn get_alias(
    State(state): State<AppState>,
    _: Can<can::ReadModels>,
    Path((name, alias)): Path<(String, String)>,
) -> ApiResult<axum::Json<ModelVersion>> {
    Ok(axum::Json(
        state
            .store
            .get_model_version_by_alias(&name, &alias)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/models/{name}/aliases/{alias}", tag = "models",
    params(("name" = String, Path, description = "Model name"), ("alias" = String, Path, description = "Alias")),
    responses((status = 204, description = "Removed"), (status = 404, description = "No such alias", body = ErrorBody)))]
async fn delete_alias(
    State(state): State<AppState>,
    caller: Can<can::WriteModels>,
    Path((name, alias)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state
        .store
        .delete_model_alias(&caller.actor(), &name, &alias)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
