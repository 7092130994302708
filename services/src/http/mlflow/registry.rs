//! MLflow's model registry API (`/api/2.0/mlflow/registered-models/...`,
//! `/model-versions/...`) over refit's registered models, versions, tags and aliases — the same
//! ones refit's trainer promotes, so a champion set by refit's gate is MLflow's `@champion`.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use refit_registry::models::{ModelVersion, NewModelVersion, RegisteredModel, STAGES};
use refit_registry::search::ModelSearch;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::wire::{
    self, KeyValue, MlflowError, MlflowResult, Params, lenient_string, put_list, required,
    tags_from, tags_json,
};
use crate::http::auth::{Can, can};
use crate::http::extract::Json;
use crate::http::state::AppState;

/// The registry routes, nested at `/2.0/mlflow`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/registered-models/create", post(create_model))
        .route("/registered-models/get", get(get_model))
        .route("/registered-models/rename", post(rename_model))
        .route(
            "/registered-models/update",
            axum::routing::patch(update_model),
        )
        .route(
            "/registered-models/delete",
            axum::routing::delete(delete_model),
        )
        .route("/registered-models/search", get(search_models))
        .route(
            "/registered-models/get-latest-versions",
            post(latest_versions).get(latest_versions_get),
        )
        .route("/registered-models/set-tag", post(set_model_tag))
        .route(
            "/registered-models/delete-tag",
            axum::routing::delete(delete_model_tag),
        )
        .route(
            "/registered-models/alias",
            post(set_alias).get(get_by_alias).delete(delete_alias),
        )
        .route("/model-versions/create", post(create_version))
        .route("/model-versions/get", get(get_version))
        .route("/model-versions/get-download-uri", get(download_uri))
        .route(
            "/model-versions/update",
            axum::routing::patch(update_version),
        )
        .route(
            "/model-versions/delete",
            axum::routing::delete(delete_version),
        )
        .route("/model-versions/search", get(search_versions))
        .route("/model-versions/set-tag", post(set_version_tag))
        .route(
            "/model-versions/delete-tag",
            axum::routing::delete(delete_version_tag),
        )
        .route("/model-versions/transition-stage", post(transition_stage))
}

// ---------------------------------------------------------------------------------------------
// Shapes on the wire

/// A model version as MLflow writes it: `version` as a string, `description` and `run_link`
/// always present, status `READY`.
pub fn version_json(v: &ModelVersion) -> Value {
    let mut o = Map::new();
    o.insert("name".into(), json!(v.name));
    o.insert("version".into(), json!(v.version.to_string()));
    o.insert("creation_timestamp".into(), json!(v.creation_timestamp));
    o.insert(
        "last_updated_timestamp".into(),
        json!(v.last_updated_timestamp),
    );
    o.insert("current_stage".into(), json!(v.current_stage));
    o.insert(
        "description".into(),
        json!(v.description.clone().unwrap_or_default()),
    );
    o.insert("source".into(), json!(v.source));
    if let Some(run_id) = v.run_id.as_deref().filter(|r| !r.is_empty()) {
        o.insert("run_id".into(), json!(run_id));
    }
    o.insert(
        "status".into(),
        serde_json::to_value(v.status).unwrap_or(json!("READY")),
    );
    if let Some(m) = &v.status_message {
        o.insert("status_message".into(), json!(m));
    }
    put_list(&mut o, "tags", tags_json(&v.tags));
    o.insert(
        "run_link".into(),
        json!(v.run_link.clone().unwrap_or_default()),
    );
    put_list(&mut o, "aliases", json!(v.aliases));
    Value::Object(o)
}

/// For each stage that has versions, the newest version in it (MLflow's `latest_versions`).
fn latest_per_stage(versions: &[ModelVersion], stages: &[String]) -> Vec<ModelVersion> {
    let mut newest: BTreeMap<&str, &ModelVersion> = BTreeMap::new();
    for v in versions {
        let wanted = stages.is_empty()
            || stages
                .iter()
                .any(|s| s.eq_ignore_ascii_case(&v.current_stage));
        if wanted
            && newest
                .get(v.current_stage.as_str())
                .is_none_or(|n| n.version < v.version)
        {
            newest.insert(&v.current_stage, v);
        }
    }
    newest.into_values().cloned().collect()
}

/// Every version of a model.
async fn all_versions(state: &AppState, name: &str) -> MlflowResult<Vec<ModelVersion>> {
    let mut versions = Vec::new();
    let mut page_token = None;
    loop {
        let page = state
            .store
            .search_model_versions(&ModelSearch {
                model_name: Some(name.to_string()),
                filter: String::new(),
                order_by: vec![],
                max_results: refit_registry::page::MAX_PAGE_SIZE,
                page_token,
            })
            .await?;
        versions.extend(page.items);
        match page.next_page_token {
            Some(t) => page_token = Some(t),
            None => return Ok(versions),
        }
    }
}

/// A registered model as MLflow writes it, with its latest version per stage.
async fn model_json(state: &AppState, m: &RegisteredModel) -> MlflowResult<Value> {
    let versions = if m.latest_version.is_some() {
        all_versions(state, &m.name).await?
    } else {
        Vec::new()
    };
    let mut o = Map::new();
    o.insert("name".into(), json!(m.name));
    o.insert("creation_timestamp".into(), json!(m.creation_timestamp));
    o.insert(
        "last_updated_timestamp".into(),
        json!(m.last_updated_timestamp),
    );
    if let Some(d) = &m.description {
        o.insert("description".into(), json!(d));
    }
    put_list(
        &mut o,
        "latest_versions",
        Value::Array(
            latest_per_stage(&versions, &[])
                .iter()
                .map(version_json)
                .collect(),
        ),
    );
    put_list(&mut o, "tags", tags_json(&m.tags));
    put_list(
        &mut o,
        "aliases",
        Value::Array(
            m.aliases
                .iter()
                .map(|a| json!({"alias": a.alias, "version": a.version.to_string()}))
                .collect(),
        ),
    );
    Ok(Value::Object(o))
}

/// MLflow's rule for registered model names (3.x): not blank, no `/` or `:`.
fn check_model_name(name: &str) -> MlflowResult<()> {
    if name.contains('/') || name.contains(':') {
        return Err(MlflowError::invalid(format!(
            "Invalid model name '{name}'. Names cannot contain '/' or ':'."
        )));
    }
    Ok(())
}

/// A version number, sent as a string.
fn version_number(value: &str) -> MlflowResult<i64> {
    value.trim().parse().map_err(|_| {
        MlflowError::invalid(format!(
            "Parameter 'version' must be an integer, got '{value}'."
        ))
    })
}

/// The fields of every registry request; each call reads the ones it needs.
#[derive(Debug, Deserialize)]
struct RegistryRequest {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    new_name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    version: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    value: Option<String>,
    #[serde(default)]
    alias: Option<String>,
    #[serde(default)]
    tags: Vec<KeyValue>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    run_id: Option<String>,
    #[serde(default)]
    run_link: Option<String>,
    #[serde(default)]
    model_id: Option<String>,
    #[serde(default)]
    stage: Option<String>,
    #[serde(default)]
    stages: Vec<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    archive_existing_versions: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Registered models

async fn create_model(
    State(state): State<AppState>,
    caller: Can<can::WriteModels>,
    Json(req): Json<RegistryRequest>,
) -> MlflowResult<Response> {
    let name = required(&req.name, "name")?;
    check_model_name(name)?;
    let tags = tags_from(req.tags, "tags")?;
    let model = state
        .store
        .create_registered_model(&caller.actor(), name, req.description.as_deref(), &tags)
        .await?;
    Ok(wire::json(
        json!({"registered_model": model_json(&state, &model).await?}),
    ))
}

async fn get_model(
    State(state): State<AppState>,
    _: Can<can::ReadModels>,
    params: Params,
) -> MlflowResult<Response> {
    let name = params.required("name")?;
    let model = state.store.get_registered_model(name).await?;
    Ok(wire::json(
        json!({"registered_model": model_json(&state, &model).await?}),
    ))
}

async fn rename_model(
    State(state): State<AppState>,
    caller: Can<can::WriteModels>,
    Json(req): Json<RegistryRequest>,
) -> MlflowResult<Response> {
    let name = required(&req.name, "name")?;
    let new_name = required(&req.new_name, "new_name")?;
    check_model_name(new_name)?;
    let model = state
        .store
        .rename_registered_model(&caller.actor(), name, new_name)
        .await?;
    Ok(wire::json(
        json!({"registered_model": model_json(&state, &model).await?}),
    ))
}

async fn update_model(
    State(state): State<AppState>,
    caller: Can<can::WriteModels>,
    Json(req): Json<RegistryRequest>,
) -> MlflowResult<Response> {
    let name = required(&req.name, "name")?;
    let model = state
        .store
        .update_registered_model(&caller.actor(), name, req.description.as_deref())
        .await?;
    Ok(wire::json(
        json!({"registered_model": model_json(&state, &model).await?}),
    ))
}

async fn delete_model(
    State(state): State<AppState>,
    caller: Can<can::WriteModels>,
    Json(req): Json<RegistryRequest>,
) -> MlflowResult<Response> {
    let name = required(&req.name, "name")?;
    state
        .store
        .delete_registered_model(&caller.actor(), name)
        .await?;
    Ok(wire::empty())
}

/// The tag that marks MLflow prompts, which live in the registry but are not models.
const PROMPT_TAG: &str = "mlflow.prompt.is_prompt";

/// The filter without the clause MLflow's client adds to every registered-model search
/// (``tag.`mlflow.prompt.is_prompt` != 'true'``), which must also match models that do not carry
/// the tag at all. refit leaves prompts out of the results itself.
fn without_prompt_clause(filter: &str) -> String {
    let lower = filter.to_ascii_lowercase();
    let found = [
        "tags.`mlflow.prompt.is_prompt` != 'true'",
        "tag.`mlflow.prompt.is_prompt` != 'true'",
    ]
    .iter()
    .find_map(|c| lower.find(c).map(|at| (at, c.len())));
    let Some((at, len)) = found else {
        return filter.to_string();
    };
    let strip_and = |s: &str, suffix: bool| -> String {
        let s = s.trim();
        let cut = if suffix {
            (s.len() >= 3 && s[s.len() - 3..].eq_ignore_ascii_case("and"))
                .then(|| &s[..s.len() - 3])
        } else {
            (s.len() >= 3 && s[..3].eq_ignore_ascii_case("and")).then(|| &s[3..])
        };
        cut.unwrap_or(s).trim().to_string()
    };
    let before = strip_and(&filter[..at], true);
    let after = strip_and(&filter[at + len..], false);
    match (before.is_empty(), after.is_empty()) {
        (true, _) => after,
        (_, true) => before,
        _ => format!("{before} AND {after}"),
    }
}

async fn search_models(
    State(state): State<AppState>,
    _: Can<can::ReadModels>,
    params: Params,
) -> MlflowResult<Response> {
    let max_results = params.int("max_results")?.unwrap_or(100);
    if !(1..=1000).contains(&max_results) {
        return Err(MlflowError::invalid(format!(
            "Invalid value \"{max_results}\" for parameter 'max_results' supplied: it must be \
             between 1 and 1000."
        )));
    }
    let page = state
        .store
        .search_registered_models(&ModelSearch {
            model_name: None,
            filter: without_prompt_clause(params.get("filter").unwrap_or("")),
            order_by: params.all("order_by"),
            max_results,
            page_token: params.get("page_token").map(str::to_string),
        })
        .await?;
    let mut models = Vec::with_capacity(page.items.len());
    for m in &page.items {
        if m.tags
            .iter()
            .any(|t| t.key == PROMPT_TAG && t.value == "true")
        {
            continue;
        }
        models.push(model_json(&state, m).await?);
    }
    let mut o = Map::new();
    put_list(&mut o, "registered_models", Value::Array(models));
    if let Some(t) = page.next_page_token {
        o.insert("next_page_token".into(), json!(t));
    }
    Ok(wire::json(Value::Object(o)))
}

async fn latest_versions(
    State(state): State<AppState>,
    _: Can<can::ReadModels>,
    Json(req): Json<RegistryRequest>,
) -> MlflowResult<Response> {
    let name = required(&req.name, "name")?;
    latest_versions_of(&state, name, &req.stages).await
}

async fn latest_versions_get(
    State(state): State<AppState>,
    _: Can<can::ReadModels>,
    params: Params,
) -> MlflowResult<Response> {
    let name = params.required("name")?;
    latest_versions_of(&state, name, &params.all("stages")).await
}

async fn latest_versions_of(
    state: &AppState,
    name: &str,
    stages: &[String],
) -> MlflowResult<Response> {
    state.store.get_registered_model(name).await?;
    let versions = all_versions(state, name).await?;
    let latest: Vec<Value> = latest_per_stage(&versions, stages)
        .iter()
        .map(version_json)
        .collect();
    let mut o = Map::new();
    put_list(&mut o, "model_versions", Value::Array(latest));
    Ok(wire::json(Value::Object(o)))
}

async fn set_model_tag(
    State(state): State<AppState>,
    caller: Can<can::WriteModels>,
    Json(req): Json<RegistryRequest>,
) -> MlflowResult<Response> {
    let name = required(&req.name, "name")?;
    let key = required(&req.key, "key")?;
    state
        .store
        .set_registered_model_tag(
            &caller.actor(),
            name,
            key,
            req.value.as_deref().unwrap_or(""),
        )
        .await?;
    Ok(wire::empty())
}

async fn delete_model_tag(
    State(state): State<AppState>,
    caller: Can<can::WriteModels>,
    Json(req): Json<RegistryRequest>,
) -> MlflowResult<Response> {
    let name = required(&req.name, "name")?;
    let key = required(&req.key, "key")?;
    state
        .store
        .delete_registered_model_tag(&caller.actor(), name, key)
        .await?;
    Ok(wire::empty())
}

// ---------------------------------------------------------------------------------------------
// Aliases

async fn set_alias(
    State(state): State<AppState>,
    caller: Can<can::WriteModels>,
    Json(req): Json<RegistryRequest>,
) -> MlflowResult<Response> {
    let name = required(&req.name, "name")?;
    let alias = required(&req.alias, "alias")?;
    let version = version_number(required(&req.version, "version")?)?;
    state
        .store
        .set_model_alias(&caller.actor(), name, alias, version)
        .await?;
    Ok(wire::empty())
}

async fn get_by_alias(
    State(state): State<AppState>,
    _: Can<can::ReadModels>,
    params: Params,
) -> MlflowResult<Response> {
    let name = params.required("name")?;
    let alias = params.required("alias")?;
    match state.store.get_model_version_by_alias(name, alias).await {
        Ok(v) => Ok(wire::json(json!({"model_version": version_json(&v)}))),
        // MLflow answers a missing alias with a 400, and its client relies on that code.
        Err(refit_registry::Error::NotFound(_))
            if state.store.get_registered_model(name).await.is_ok() =>
        {
            Err(MlflowError::invalid(format!(
                "Registered model alias {alias} not found."
            )))
        }
        Err(e) => Err(e.into()),
    }
}

async fn delete_alias(
    State(state): State<AppState>,
    caller: Can<can::WriteModels>,
    Json(req): Json<RegistryRequest>,
) -> MlflowResult<Response> {
    let name = required(&req.name, "name")?;
    let alias = required(&req.alias, "alias")?;
    state.store.get_registered_model(name).await?;
    match state
        .store
        .delete_model_alias(&caller.actor(), name, alias)
        .await
    {
        // Deleting an alias that is not set succeeds, as in MLflow.
        Ok(()) | Err(refit_registry::Error::NotFound(_)) => Ok(wire::empty()),
        Err(e) => Err(e.into()),
    }
}

// ---------------------------------------------------------------------------------------------
// Model versions

async fn create_version(
    State(state): State<AppState>,
    caller: Can<can::WriteModels>,
    Json(req): Json<RegistryRequest>,
) -> MlflowResult<Response> {
    let name = required(&req.name, "name")?;
    let source = required(&req.source, "source")?;
    check_source(source)?;
    let mut run_id = req.run_id.filter(|r| !r.is_empty());
    let model_id = req.model_id.filter(|m| !m.is_empty());
    let mismatch = |what: &str| {
        MlflowError::invalid(format!(
            "Invalid model version source: '{source}'. The {what} request parameter must \
             identify the resource that contains the source."
        ))
    };
    if let Some(rest) = source.strip_prefix("runs:/") {
        let source_run = rest.split('/').next().unwrap_or("");
        if run_id.as_deref() != Some(source_run) {
            return Err(mismatch("run_id"));
        }
    }
    // MLflow 3 registers a logged model by its id: the version's files are the model's, and its
    // run is the model's run unless the request names one.
    let logged = match logged_model_id(source) {
        Some(id) => {
            if model_id.as_deref().is_some_and(|m| m != id) {
                return Err(mismatch("model_id"));
            }
            Some(state.store.get_logged_model(id, false).await?)
        }
        None => match &model_id {
            Some(id) => Some(state.store.get_logged_model(id, false).await?),
            None => None,
        },
    };
    if let Some(model) = &logged
        && run_id.is_none()
    {
        run_id = model.source_run_id.clone().filter(|r| !r.is_empty());
    }
    let version = state
        .store
        .create_model_version(
            &caller.actor(),
            name,
            NewModelVersion {
                source: source.to_string(),
                run_id,
                run_link: req.run_link.filter(|l| !l.is_empty()),
                description: req.description.filter(|d| !d.is_empty()),
                tags: tags_from(req.tags, "tags")?,
            },
        )
        .await?;
    if let Some(model) = &logged {
        state
            .store
            .record_logged_model_version(&caller.actor(), &model.model_id, name, version.version)
            .await?;
    }
    Ok(wire::json(json!({"model_version": version_json(&version)})))
}

/// The logged model a `models:/m-<id>` source names.
fn logged_model_id(source: &str) -> Option<&str> {
    source
        .strip_prefix("models:/")
        .map(|rest| rest.trim_end_matches('/'))
        .filter(|id| id.starts_with("m-") && !id.contains('/'))
}

/// MLflow's refusals of a version source that could point outside what it names: relative path
/// parts, NUL bytes, local files.
fn check_source(source: &str) -> MlflowResult<()> {
    let path = source.split_once("://").map_or(source, |(_, p)| p);
    if source.contains('\0') || path.split('/').any(|s| s == "..") {
        return Err(MlflowError::invalid(format!(
            "Invalid model version source: '{source}'. If supplying a source as an http, https, \
             local file path, ftp, objectstore, or mlflow-artifacts uri, an absolute path must \
             be provided without relative path references present. Please provide an absolute \
             path."
        )));
    }
    if source.starts_with('/') || source.starts_with("file:") {
        return Err(MlflowError::invalid(format!(
            "Invalid model version source: '{source}'. To use a local path as a model version \
             source, the run_id request parameter has to be specified and the local path has to \
             be contained within the artifact directory of the run specified by the run_id."
        )));
    }
    Ok(())
}

async fn get_version(
    State(state): State<AppState>,
    _: Can<can::ReadModels>,
    params: Params,
) -> MlflowResult<Response> {
    let name = params.required("name")?;
    let version = version_number(params.required("version")?)?;
    let v = state.store.get_model_version(name, version).await?;
    Ok(wire::json(json!({"model_version": version_json(&v)})))
}

/// Where a version's files are: its source, except for sources that name a logged model
/// (`models:/m-...`), whose files are at the logged model's artifact URI.
async fn download_uri(
    State(state): State<AppState>,
    _: Can<can::ReadModels>,
    params: Params,
) -> MlflowResult<Response> {
    let name = params.required("name")?;
    let version = version_number(params.required("version")?)?;
    let v = state.store.get_model_version(name, version).await?;
    let uri = storage_location(&state, &v.source).await?;
    Ok(wire::json(json!({"artifact_uri": uri})))
}

/// Where the files of a version with this source are: a logged model's artifact URI for
/// `models:/m-<id>`, the named version's files for `models:/<name>/<version>`, the source itself
/// otherwise.
async fn storage_location(state: &AppState, source: &str) -> MlflowResult<String> {
    if let Some(id) = logged_model_id(source) {
        return Ok(state.store.get_logged_model(id, true).await?.artifact_uri);
    }
    if let Some((name, version)) = source
        .strip_prefix("models:/")
        .and_then(|rest| rest.split_once('/'))
        && let Ok(version) = version.parse::<i64>()
    {
        let v = state.store.get_model_version(name, version).await?;
        if let Some(id) = logged_model_id(&v.source) {
            return Ok(state.store.get_logged_model(id, true).await?.artifact_uri);
        }
        return Ok(v.source);
    }
    Ok(source.to_string())
}

async fn update_version(
    State(state): State<AppState>,
    caller: Can<can::WriteModels>,
    Json(req): Json<RegistryRequest>,
) -> MlflowResult<Response> {
    let name = required(&req.name, "name")?;
    let version = version_number(required(&req.version, "version")?)?;
    let v = state
        .store
        .update_model_version(&caller.actor(), name, version, req.description.as_deref())
        .await?;
    Ok(wire::json(json!({"model_version": version_json(&v)})))
}

async fn delete_version(
    State(state): State<AppState>,
    caller: Can<can::WriteModels>,
    Json(req): Json<RegistryRequest>,
) -> MlflowResult<Response> {
    let name = required(&req.name, "name")?;
    let version = version_number(required(&req.version, "version")?)?;
    state
        .store
        .delete_model_version(&caller.actor(), name, version)
        .await?;
    Ok(wire::empty())
}

async fn search_versions(
    State(state): State<AppState>,
    _: Can<can::ReadModels>,
    params: Params,
) -> MlflowResult<Response> {
    let max_results = params.int("max_results")?.unwrap_or(200_000);
    if !(1..=200_000).contains(&max_results) {
        return Err(MlflowError::invalid(format!(
            "Invalid value \"{max_results}\" for parameter 'max_results' supplied: it must be \
             between 1 and 200000."
        )));
    }
    let page = state
        .store
        .search_model_versions(&ModelSearch {
            model_name: None,
            filter: params.get("filter").unwrap_or("").to_string(),
            order_by: params.all("order_by"),
            max_results: max_results.min(refit_registry::page::MAX_PAGE_SIZE),
            page_token: params.get("page_token").map(str::to_string),
        })
        .await?;
    let mut o = Map::new();
    put_list(
        &mut o,
        "model_versions",
        Value::Array(page.items.iter().map(version_json).collect()),
    );
    if let Some(t) = page.next_page_token {
        o.insert("next_page_token".into(), json!(t));
    }
    Ok(wire::json(Value::Object(o)))
}

async fn set_version_tag(
    State(state): State<AppState>,
    caller: Can<can::WriteModels>,
    Json(req): Json<RegistryRequest>,
) -> MlflowResult<Response> {
    let name = required(&req.name, "name")?;
    let version = version_number(required(&req.version, "version")?)?;
    let key = required(&req.key, "key")?;
    state
        .store
        .set_model_version_tag(
            &caller.actor(),
            name,
            version,
            key,
            req.value.as_deref().unwrap_or(""),
        )
        .await?;
    Ok(wire::empty())
}

async fn delete_version_tag(
    State(state): State<AppState>,
    caller: Can<can::WriteModels>,
    Json(req): Json<RegistryRequest>,
) -> MlflowResult<Response> {
    let name = required(&req.name, "name")?;
    let version = version_number(required(&req.version, "version")?)?;
    let key = required(&req.key, "key")?;
    state
        .store
        .delete_model_version_tag(&caller.actor(), name, version, key)
        .await?;
    Ok(wire::empty())
}

async fn transition_stage(
    State(state): State<AppState>,
    caller: Can<can::WriteModels>,
    Json(req): Json<RegistryRequest>,
) -> MlflowResult<Response> {
    let name = required(&req.name, "name")?;
    let version = version_number(required(&req.version, "version")?)?;
    let stage = required(&req.stage, "stage")?;
    let Some(stage) = STAGES.iter().find(|s| s.eq_ignore_ascii_case(stage)) else {
        return Err(MlflowError::invalid(format!(
            "Invalid Model Version stage: {stage}. Value must be one of None, Staging, \
             Production, Archived."
        )));
    };
    let archive = req
        .archive_existing_versions
        .as_deref()
        .is_some_and(|a| a.eq_ignore_ascii_case("true"));
    if archive && matches!(*stage, "None" | "Archived") {
        return Err(MlflowError::invalid(format!(
            "Model version transition cannot archive existing model versions because '{stage}' \
             is not an Active stage. Valid stages are Staging and Production."
        )));
    }
    let v = state
        .store
        .transition_model_version_stage(&caller.actor(), name, version, stage, archive)
        .await?;
    Ok(wire::json(json!({"model_version": version_json(&v)})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clients_prompt_clause_is_taken_out_of_model_filters() {
        let clause = "tag.`mlflow.prompt.is_prompt` != 'true'";
        assert_eq!(without_prompt_clause(clause), "");
        assert_eq!(
            without_prompt_clause(&format!("name LIKE 'spec%' AND {clause}")),
            "name LIKE 'spec%'"
        );
        assert_eq!(
            without_prompt_clause(&format!("{clause} AND name = 'a'")),
            "name = 'a'"
        );
        assert_eq!(
            without_prompt_clause(&format!("name = 'a' AND {clause} AND tags.k = 'v'")),
            "name = 'a' AND tags.k = 'v'"
        );
        assert_eq!(without_prompt_clause("name = 'a'"), "name = 'a'");
    }

    #[test]
    fn sources_that_could_escape_are_refused() {
        assert!(check_source("mlflow-artifacts:/1/abc/artifacts/model").is_ok());
        assert!(check_source("runs:/abc/model").is_ok());
        assert!(check_source("s3://bucket/model").is_ok());
        for bad in [
            "/etc/passwd",
            "file:///etc",
            "mlflow-artifacts:/1/../x",
            "a\0b",
        ] {
            assert_eq!(
                check_source(bad).unwrap_err().0.code,
                "INVALID_PARAMETER_VALUE"
            );
        }
    }
}
