//! MLflow 3 logged models (`/api/2.0/mlflow/logged-models...`): create, get, finalize, search,
//! tags, params, soft delete and the listing of a model's files. MLflow 2's client never calls
//! these; MLflow 3's `log_model` does (create, then upload under the model's `artifact_uri`, then
//! finalize), and so do `models:/m-…` URIs and its artifact listings (a search by name).
//!
//! The rules live in [`refit_registry::logged_models`]; this module reads MLflow's request shapes
//! and writes its response shape: `{"info": …, "data": …}` with unset fields and empty lists left
//! out, except `model_type` and `source_run_id`, which MLflow always writes (`""` when unset).

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{delete, get, patch, post};
use refit_registry::experiments::Tag;
use refit_registry::logged_models::{
    DatasetFilter, LoggedModel, LoggedModelMetric, LoggedModelOrder, LoggedModelSearch,
    LoggedModelStatus, NewLoggedModel,
};
use refit_registry::runs::Param;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::wire::{
    self, KeyValue, MlflowError, MlflowResult, Params, check_experiment_id, lenient_i64,
    lenient_string, required, tags_from,
};
use crate::http::auth::{Can, can};
use crate::http::extract::{Json, Path};
use crate::http::state::AppState;

/// The logged-model routes, nested at `/2.0/mlflow`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/logged-models", post(create_model))
        .route("/logged-models/search", post(search_models))
        .route(
            "/logged-models/{model_id}",
            get(get_model).patch(finalize_model).delete(delete_model),
        )
        .route("/logged-models/{model_id}/tags", patch(set_tags))
        // Tag keys may contain `/`.
        .route(
            "/logged-models/{model_id}/tags/{*tag_key}",
            delete(delete_tag),
        )
        .route("/logged-models/{model_id}/params", post(log_params))
        .route(
            "/logged-models/{model_id}/artifacts/directories",
            get(list_artifacts),
        )
}

// ---------------------------------------------------------------------------------------------
// Shapes on the wire

/// `{"model": LoggedModel}`.
#[derive(Serialize)]
struct ModelResponse<'a> {
    model: ModelJson<'a>,
}

/// A logged model as MLflow writes it.
#[derive(Serialize)]
struct ModelJson<'a> {
    info: InfoJson<'a>,
    data: DataJson<'a>,
}

#[derive(Serialize)]
struct InfoJson<'a> {
    model_id: &'a str,
    experiment_id: &'a str,
    name: &'a str,
    creation_timestamp_ms: i64,
    last_updated_timestamp_ms: i64,
    artifact_uri: &'a str,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_message: Option<&'a str>,
    model_type: &'a str,
    source_run_id: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<&'a Tag>,
}

/// `"data": {}` when the model has neither params nor metrics.
#[derive(Serialize)]
struct DataJson<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    params: Vec<&'a Param>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    metrics: Vec<MetricJson<'a>>,
}

/// A metric point of a logged model, with the dataset, model and run it belongs to.
#[derive(Serialize)]
struct MetricJson<'a> {
    key: &'a str,
    #[serde(serialize_with = "wire::serialize_metric_value")]
    value: f64,
    timestamp: i64,
    step: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    dataset_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dataset_digest: Option<&'a str>,
    model_id: &'a str,
    run_id: &'a str,
}

impl<'a> From<&'a LoggedModelMetric> for MetricJson<'a> {
    fn from(m: &'a LoggedModelMetric) -> Self {
        MetricJson {
            key: &m.key,
            value: m.value,
            timestamp: m.timestamp,
            step: m.step,
            dataset_name: m.dataset_name.as_deref(),
            dataset_digest: m.dataset_digest.as_deref(),
            model_id: &m.model_id,
            run_id: &m.run_id,
        }
    }
}

/// A logged model in MLflow's JSON shape (for the handlers of other modules that embed one).
pub fn model_json(m: &LoggedModel) -> Value {
    serde_json::to_value(model_shape(m)).expect("a logged model serializes")
}

fn model_shape(m: &LoggedModel) -> ModelJson<'_> {
    ModelJson {
        info: InfoJson {
            model_id: &m.model_id,
            experiment_id: &m.experiment_id,
            name: &m.name,
            creation_timestamp_ms: m.creation_timestamp_ms,
            last_updated_timestamp_ms: m.last_updated_timestamp_ms,
            artifact_uri: &m.artifact_uri,
            status: m.status.as_str(),
            status_message: m.status_message.as_deref(),
            model_type: m.model_type.as_deref().unwrap_or(""),
            source_run_id: m.source_run_id.as_deref().unwrap_or(""),
            tags: m.tags.iter().collect(),
        },
        data: DataJson {
            params: m.params.iter().collect(),
            metrics: m.metrics.iter().map(MetricJson::from).collect(),
        },
    }
}

fn model_response(m: &LoggedModel) -> Response {
    wire::json(ModelResponse {
        model: model_shape(m),
    })
}

/// `{"models": [...], "next_page_token": ...}`, both left out when unset or empty.
#[derive(Serialize)]
struct SearchResponse<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    models: Vec<ModelJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<&'a str>,
}

/// `{"root_uri": ..., "files": [...]}`.
#[derive(Serialize)]
struct ArtifactsResponse<'a> {
    root_uri: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    files: Vec<FileJson>,
}

#[derive(Serialize)]
struct FileJson {
    path: String,
    is_dir: bool,
    /// Left out for directories and, as MLflow does, for empty files.
    #[serde(skip_serializing_if = "Option::is_none")]
    file_size: Option<i64>,
}

// ---------------------------------------------------------------------------------------------
// Requests

fn params_from(list: Option<Vec<KeyValue>>) -> MlflowResult<Vec<Param>> {
    Ok(tags_from(list.unwrap_or_default(), "params")?
        .into_iter()
        .map(|t| Param {
            key: t.key,
            value: t.value,
        })
        .collect())
}

/// A status by enum name (`LOGGED_MODEL_READY`) or number (`2`), as protobuf's JSON mapping
/// reads enums.
fn status_from(value: Option<&Value>) -> MlflowResult<LoggedModelStatus> {
    let invalid = |shown: String| {
        MlflowError::invalid(format!(
            "Invalid value {shown} for parameter 'status' supplied: use LOGGED_MODEL_PENDING, \
             LOGGED_MODEL_READY or LOGGED_MODEL_UPLOAD_FAILED (or 1, 2, 3)."
        ))
    };
    match value {
        None | Some(Value::Null) => Err(MlflowError::missing("status")),
        Some(Value::String(s)) if s.is_empty() => Err(MlflowError::missing("status")),
        Some(Value::String(s)) => {
            LoggedModelStatus::parse(s).ok_or_else(|| invalid(format!("'{s}'")))
        }
        Some(Value::Number(n)) => n
            .as_i64()
            .and_then(LoggedModelStatus::from_number)
            .ok_or_else(|| invalid(n.to_string())),
        Some(other) => Err(invalid(other.to_string())),
    }
}

/// A query-string boolean: `true` or `false` in any case (MLflow's rule).
fn query_bool(params: &Params, key: &str) -> MlflowResult<bool> {
    match params.get(key).filter(|v| !v.is_empty()) {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(MlflowError::invalid(format!(
            "Invalid boolean value: {v}, must be 'true' or 'false'."
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// Handlers

#[derive(Debug, Deserialize)]
struct CreateModel {
    #[serde(default, deserialize_with = "lenient_string")]
    experiment_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    model_type: Option<String>,
    #[serde(default)]
    source_run_id: Option<String>,
    #[serde(default)]
    params: Option<Vec<KeyValue>>,
    #[serde(default)]
    tags: Option<Vec<KeyValue>>,
}

/// `POST /logged-models`: a new model, `LOGGED_MODEL_PENDING`.
async fn create_model(
    State(state): State<AppState>,
    caller: Can<can::WriteExperiments>,
    Json(req): Json<CreateModel>,
) -> MlflowResult<Response> {
    let experiment_id = required(&req.experiment_id, "experiment_id")?.to_string();
    check_experiment_id(&experiment_id)?;
    let new = NewLoggedModel {
        experiment_id,
        name: req.name,
        model_type: req.model_type,
        source_run_id: req.source_run_id,
        params: params_from(req.params)?,
        tags: tags_from(req.tags.unwrap_or_default(), "tags")?,
    };
    let model = state
        .store
        .create_logged_model(&caller.actor(), new)
        .await?;
    Ok(model_response(&model))
}

/// `GET /logged-models/{model_id}[?allow_deleted=true]`.
async fn get_model(
    State(state): State<AppState>,
    _: Can<can::ReadExperiments>,
    Path(model_id): Path<String>,
    params: Params,
) -> MlflowResult<Response> {
    let allow_deleted = query_bool(&params, "allow_deleted")?;
    let model = state
        .store
        .get_logged_model(&model_id, allow_deleted)
        .await?;
    Ok(model_response(&model))
}

#[derive(Debug, Deserialize)]
struct Finalize {
    #[serde(default)]
    status: Option<Value>,
}

/// `PATCH /logged-models/{model_id}`: MLflow's finalize, `{"status": "LOGGED_MODEL_READY"}`.
async fn finalize_model(
    State(state): State<AppState>,
    caller: Can<can::WriteExperiments>,
    Path(model_id): Path<String>,
    Json(req): Json<Finalize>,
) -> MlflowResult<Response> {
    let status = status_from(req.status.as_ref())?;
    let model = state
        .store
        .finalize_logged_model(&caller.actor(), &model_id, status)
        .await?;
    Ok(model_response(&model))
}

/// `DELETE /logged-models/{model_id}`: a soft delete.
async fn delete_model(
    State(state): State<AppState>,
    caller: Can<can::WriteExperiments>,
    Path(model_id): Path<String>,
) -> MlflowResult<Response> {
    state
        .store
        .delete_logged_model(&caller.actor(), &model_id)
        .await?;
    Ok(wire::empty())
}

#[derive(Debug, Deserialize)]
struct SetTags {
    #[serde(default)]
    tags: Option<Vec<KeyValue>>,
}

/// `PATCH /logged-models/{model_id}/tags`: upserts `{"tags": [...]}`.
async fn set_tags(
    State(state): State<AppState>,
    caller: Can<can::WriteExperiments>,
    Path(model_id): Path<String>,
    Json(req): Json<SetTags>,
) -> MlflowResult<Response> {
    let tags = tags_from(req.tags.unwrap_or_default(), "tags")?;
    state
        .store
        .set_logged_model_tags(&caller.actor(), &model_id, &tags)
        .await?;
    Ok(wire::empty())
}

/// `DELETE /logged-models/{model_id}/tags/{tag_key}`.
async fn delete_tag(
    State(state): State<AppState>,
    caller: Can<can::WriteExperiments>,
    Path((model_id, key)): Path<(String, String)>,
) -> MlflowResult<Response> {
    state
        .store
        .delete_logged_model_tag(&caller.actor(), &model_id, &key)
        .await?;
    Ok(wire::empty())
}

#[derive(Debug, Deserialize)]
struct LogParams {
    #[serde(default)]
    params: Option<Vec<KeyValue>>,
}

/// `POST /logged-models/{model_id}/params`: `{"params": [...]}`; params are immutable.
async fn log_params(
    State(state): State<AppState>,
    caller: Can<can::WriteExperiments>,
    Path(model_id): Path<String>,
    Json(req): Json<LogParams>,
) -> MlflowResult<Response> {
    let params = params_from(req.params)?;
    state
        .store
        .log_logged_model_params(&caller.actor(), &model_id, &params)
        .await?;
    Ok(wire::empty())
}

#[derive(Debug, Deserialize)]
struct DatasetIn {
    #[serde(default)]
    dataset_name: Option<String>,
    #[serde(default)]
    dataset_digest: Option<String>,
}

#[derive(Debug, Deserialize)]
struct OrderIn {
    #[serde(default)]
    field_name: Option<String>,
    #[serde(default)]
    ascending: Option<bool>,
    #[serde(default)]
    dataset_name: Option<String>,
    #[serde(default)]
    dataset_digest: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SearchModels {
    #[serde(default)]
    experiment_ids: Option<Vec<Value>>,
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    datasets: Option<Vec<DatasetIn>>,
    #[serde(default, deserialize_with = "lenient_i64")]
    max_results: Option<i64>,
    #[serde(default)]
    order_by: Option<Vec<OrderIn>>,
    #[serde(default)]
    page_token: Option<String>,
}

/// `POST /logged-models/search`: live models of the experiments matching the filter, 50 a page
/// unless `max_results` says otherwise; `{}` when none match.
async fn search_models(
    State(state): State<AppState>,
    _: Can<can::ReadExperiments>,
    Json(req): Json<SearchModels>,
) -> MlflowResult<Response> {
    let experiment_ids = req
        .experiment_ids
        .unwrap_or_default()
        .into_iter()
        .map(|id| match id {
            Value::String(s) => Ok(s),
            Value::Number(n) => Ok(n.to_string()),
            other => Err(MlflowError::invalid(format!(
                "Invalid experiment ID {other}. Experiment ID must be a valid integer."
            ))),
        })
        .collect::<MlflowResult<Vec<String>>>()?;
    for id in &experiment_ids {
        check_experiment_id(id)?;
    }
    if let Some(n) = req.max_results
        && n < 0
    {
        return Err(MlflowError::invalid(format!(
            "Invalid value {n} for parameter 'max_results' supplied. It must be a positive integer"
        )));
    }
    let datasets = req
        .datasets
        .unwrap_or_default()
        .into_iter()
        .map(|d| DatasetFilter {
            dataset_name: d.dataset_name.unwrap_or_default(),
            dataset_digest: d.dataset_digest.filter(|s| !s.is_empty()),
        })
        .collect();
    let order_by = req
        .order_by
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, o)| {
            Ok(LoggedModelOrder {
                field_name: required(&o.field_name, &format!("order_by[{i}].field_name"))?
                    .to_string(),
                ascending: o.ascending.unwrap_or(true),
                dataset_name: o.dataset_name.filter(|s| !s.is_empty()),
                dataset_digest: o.dataset_digest.filter(|s| !s.is_empty()),
            })
        })
        .collect::<MlflowResult<Vec<_>>>()?;
    let page = state
        .store
        .search_logged_models(&LoggedModelSearch {
            experiment_ids,
            filter: req.filter.unwrap_or_default(),
            datasets,
            max_results: req.max_results,
            order_by,
            page_token: req.page_token.filter(|t| !t.is_empty()),
        })
        .await?;
    Ok(wire::json(SearchResponse {
        models: page.items.iter().map(model_shape).collect(),
        next_page_token: page.next_page_token.as_deref(),
    }))
}

/// `GET /logged-models/{model_id}/artifacts/directories[?artifact_directory_path=…]`: one level
/// of the model's files, paths relative to its root. A model whose files are not in refit's
/// artifact store (an experiment with a `file:` or `s3:` location) lists nothing.
async fn list_artifacts(
    State(state): State<AppState>,
    _: Can<can::ReadExperiments>,
    Path(model_id): Path<String>,
    params: Params,
) -> MlflowResult<Response> {
    let model = state.store.get_logged_model(&model_id, false).await?;
    let sub = params
        .get("artifact_directory_path")
        .map(|p| p.trim_matches('/'))
        .filter(|p| !p.is_empty());
    if let Some(path) = sub
        && (path.contains('#') || refit_registry::validate::artifact_path(path).is_err())
    {
        return Err(MlflowError::invalid("Invalid path"));
    }
    let files = match model.artifact_root() {
        None => Vec::new(),
        Some(root) => {
            let dir = match sub {
                Some(path) => format!("{root}/{path}"),
                None => root.clone(),
            };
            state
                .store
                .list_artifacts(&root, &dir)
                .await?
                .into_iter()
                .map(|e| FileJson {
                    path: e.path,
                    is_dir: e.is_dir,
                    file_size: e.file_size.filter(|size| *size > 0),
                })
                .collect()
        }
    };
    Ok(wire::json(ArtifactsResponse {
        root_uri: &model.artifact_uri,
        files,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use refit_registry::experiments::LifecycleStage;
    use serde_json::json;

    fn sample() -> LoggedModel {
        LoggedModel {
            model_id: "m-1".into(),
            experiment_id: "1".into(),
            name: "model".into(),
            artifact_uri: "mlflow-artifacts:/1/models/m-1/artifacts".into(),
            creation_timestamp_ms: 10,
            last_updated_timestamp_ms: 20,
            status: LoggedModelStatus::Ready,
            status_message: None,
            lifecycle_stage: LifecycleStage::Active,
            model_type: None,
            source_run_id: None,
            tags: Vec::new(),
            params: Vec::new(),
            metrics: Vec::new(),
        }
    }

    #[test]
    fn a_bare_model_has_empty_data_and_always_type_and_source_run() {
        assert_eq!(
            model_json(&sample()),
            json!({
                "info": {
                    "model_id": "m-1", "experiment_id": "1", "name": "model",
                    "creation_timestamp_ms": 10, "last_updated_timestamp_ms": 20,
                    "artifact_uri": "mlflow-artifacts:/1/models/m-1/artifacts",
                    "status": "LOGGED_MODEL_READY", "model_type": "", "source_run_id": ""
                },
                "data": {}
            })
        );
    }

    #[test]
    fn tags_params_and_metrics_are_written_as_mlflow_does() {
        let mut m = sample();
        m.status = LoggedModelStatus::Pending;
        m.status_message = Some("uploading".into());
        m.model_type = Some("agent".into());
        m.source_run_id = Some("r1".into());
        m.tags = vec![Tag {
            key: "a".into(),
            value: "1".into(),
        }];
        m.params = vec![Param {
            key: "lr".into(),
            value: "0.1".into(),
        }];
        let point = |value: f64, dataset: bool| LoggedModelMetric {
            model_id: "m-1".into(),
            run_id: "r1".into(),
            key: "acc".into(),
            value,
            timestamp: 5,
            step: 0,
            dataset_name: dataset.then(|| "train".into()),
            dataset_digest: dataset.then(|| "d1".into()),
        };
        m.metrics = vec![point(7.0, true), point(f64::NAN, false)];
        assert_eq!(
            model_json(&m),
            json!({
                "info": {
                    "model_id": "m-1", "experiment_id": "1", "name": "model",
                    "creation_timestamp_ms": 10, "last_updated_timestamp_ms": 20,
                    "artifact_uri": "mlflow-artifacts:/1/models/m-1/artifacts",
                    "status": "LOGGED_MODEL_PENDING", "status_message": "uploading",
                    "model_type": "agent", "source_run_id": "r1",
                    "tags": [{"key": "a", "value": "1"}]
                },
                "data": {
                    "params": [{"key": "lr", "value": "0.1"}],
                    "metrics": [
                        {"key": "acc", "value": 7.0, "timestamp": 5, "step": 0,
                         "dataset_name": "train", "dataset_digest": "d1",
                         "model_id": "m-1", "run_id": "r1"},
                        {"key": "acc", "value": "NaN", "timestamp": 5, "step": 0,
                         "model_id": "m-1", "run_id": "r1"}
                    ]
                }
            })
        );
        // Integral values are written as doubles, as MLflow's client expects.
        let text = serde_json::to_string(&model_shape(&m)).unwrap();
        assert!(text.contains(r#""value":7.0"#), "{text}");
    }

    #[test]
    fn statuses_by_name_or_number() {
        let ok = |v: Value| status_from(Some(&v)).unwrap();
        assert_eq!(ok(json!("LOGGED_MODEL_READY")), LoggedModelStatus::Ready);
        assert_eq!(ok(json!(2)), LoggedModelStatus::Ready);
        assert_eq!(ok(json!("3")), LoggedModelStatus::UploadFailed);
        assert_eq!(ok(json!(1)), LoggedModelStatus::Pending);
        for bad in [json!(0), json!(9), json!("DONE"), json!(true), json!(2.5)] {
            let e = status_from(Some(&bad)).unwrap_err();
            assert_eq!(e.0.code, "INVALID_PARAMETER_VALUE", "{bad}");
        }
        for missing in [None, Some(&Value::Null), Some(&json!(""))] {
            let e = status_from(missing).unwrap_err();
            assert!(e.0.message.contains("'status'"), "{}", e.0.message);
        }
    }

    #[test]
    fn empty_search_results_are_an_empty_object() {
        let body = serde_json::to_value(SearchResponse {
            models: Vec::new(),
            next_page_token: None,
        })
        .unwrap();
        assert_eq!(body, json!({}));
    }
}
