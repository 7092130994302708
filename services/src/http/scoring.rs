//! Batch scoring with a registered model's champion (or any alias or version), in three
//! dialects: refit's own `/api/v1/models/{name}/score`, MLflow's `/invocations` payloads at
//! `/api/v1/models/{name}/invocations`, and the Open Inference Protocol v2 at `/v2/...`.
//!
//! Each request is scored by one model version, named in the response. Request values are
//! read by the model's own input kinds: numbers for numeric features (`null` = missing, which the
//! model imputes), strings for categorical ones. A feature the model needs and the request lacks
//! is a 400 naming it; extra fields (e.g. `machine_id`, `ts`) are ignored.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use refit_scorer::serving::{ServeError, Served};
use refit_scorer::stream::{number_value, prediction_value};
use refit_scorer::{FeatureColumn, FeatureFrame, Predictions};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Can, can};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Path, Query, read_body};
use super::state::AppState;

/// Most rows scored in one request.
pub const MAX_ROWS: usize = 100_000;
/// Batches at least this large are scored on the blocking pool, off the async workers.
const BLOCKING_ROWS: usize = 2_048;
/// The alias served when a request names none.
const CHAMPION: &str = "champion";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(score))
        .routes(routes!(invocations))
}

/// The Open Inference Protocol v2 routes (outside `/api/v1`; health needs no token).
pub fn v2_router() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/v2", get(v2_server_metadata))
        .route("/v2/health/live", get(v2_live))
        .route("/v2/health/ready", get(v2_ready))
        .route("/v2/models/{name}", get(v2_model_metadata))
        .route("/v2/models/{name}/ready", get(v2_model_ready))
        .route("/v2/models/{name}/infer", post(v2_infer))
        .route(
            "/v2/models/{name}/versions/{version}",
            get(v2_version_metadata),
        )
        .route(
            "/v2/models/{name}/versions/{version}/infer",
            post(v2_version_infer),
        )
}

/// Which version scores: an alias (default `champion`) or a version number.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Which {
    /// Alias to score with (default `champion`).
    #[serde(default)]
    alias: Option<String>,
    /// Version to score with (instead of an alias).
    #[serde(default)]
    version: Option<i64>,
}

async fn served(state: &AppState, name: &str, which: &Which) -> ApiResult<Arc<Served>> {
    let served = match (which.version, which.alias.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "give either 'alias' or 'version', not both",
            ));
        }
        (Some(v), None) => state.models.version(name, v).await,
        (None, alias) => state.models.resolve(name, alias.unwrap_or(CHAMPION)).await,
    };
    served.map_err(serve_error)
}

/// How a model that cannot be served is reported.
pub fn serve_error(e: ServeError) -> ApiError {
    match e {
        ServeError::NotFound(m) => ApiError::not_found(m),
        ServeError::Unservable(m) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "MODEL_NOT_SERVABLE", m)
        }
        ServeError::RuntimeMissing(m) => {
            ApiError::new(StatusCode::NOT_IMPLEMENTED, "ONNX_RUNTIME_MISSING", m)
        }
        ServeError::Registry(e) => e.into(),
    }
}

// ----- request rows --------------------------------------------------------------------------

/// Rows of a scoring request, before they meet a model.
#[derive(Debug)]
pub enum Rows {
    /// Objects keyed by feature name.
    Records(Vec<Map<String, Value>>),
    /// Named columns and rows of values in that column order.
    Split {
        columns: Vec<String>,
        data: Vec<Vec<Value>>,
    },
    /// Rows of values in the model's feature order.
    Positional(Vec<Vec<Value>>),
}

impl Rows {
    fn len(&self) -> usize {
        match self {
            Rows::Records(r) => r.len(),
            Rows::Split { data, .. } => data.len(),
            Rows::Positional(r) => r.len(),
        }
    }

    /// The rows as a frame in `served`'s feature order.
    pub fn frame(&self, served: &Served) -> ApiResult<FeatureFrame> {
        let info = served.inner.info();
        let numeric = served.inner.numeric_inputs();
        let n = self.len();
        if n == 0 {
            return Err(ApiError::invalid("no rows to score"));
        }
        if n > MAX_ROWS {
            return Err(ApiError::invalid(format!(
                "at most {MAX_ROWS} rows may be scored in one request, got {n}"
            )));
        }
        let features = &info.features;
        let mut columns = Vec::with_capacity(features.len());
        for (j, (name, &is_numeric)) in features.iter().zip(&numeric).enumerate() {
            let cell = |i: usize| -> ApiResult<&Value> {
                match self {
                    Rows::Records(rows) => rows[i].get(name).ok_or_else(|| {
                        ApiError::invalid(format!("row {i} has no feature '{name}'"))
                    }),
                    Rows::Split { data, .. } => Ok(&data[i][j]),
                    Rows::Positional(rows) => Ok(&rows[i][j]),
                }
            };
            let column = if is_numeric {
                let mut v = Vec::with_capacity(n);
                for i in 0..n {
                    v.push(number(cell(i)?, name, i)?);
                }
                FeatureColumn::Numeric(v)
            } else {
                let mut v = Vec::with_capacity(n);
                for i in 0..n {
                    v.push(category(cell(i)?, name, i)?);
                }
                FeatureColumn::Categorical(v)
            };
            columns.push(column);
        }
        Ok(FeatureFrame { rows: n, columns })
    }

    /// Checks the shape against the model's features, reordering split columns to them.
    fn fit_to(self, features: &[String]) -> ApiResult<Rows> {
        match self {
            Rows::Split { columns, data } => {
                let at: Vec<usize> = features
                    .iter()
                    .map(|f| {
                        columns.iter().position(|c| c == f).ok_or_else(|| {
                            ApiError::invalid(format!(
                                "no column '{f}'; the model needs {features:?}"
                            ))
                        })
                    })
                    .collect::<ApiResult<_>>()?;
                let mut rows = Vec::with_capacity(data.len());
                for (i, row) in data.into_iter().enumerate() {
                    if row.len() != columns.len() {
                        return Err(ApiError::invalid(format!(
                            "row {i} has {} values for {} columns",
                            row.len(),
                            columns.len()
                        )));
                    }
                    rows.push(at.iter().map(|&k| row[k].clone()).collect());
                }
                Ok(Rows::Positional(rows))
            }
            Rows::Positional(rows) => {
                if let Some((i, row)) = rows
                    .iter()
                    .enumerate()
                    .find(|(_, r)| r.len() != features.len())
                {
                    return Err(ApiError::invalid(format!(
                        "row {i} has {} values; the model takes {} features in this order: \
                         {features:?}",
                        row.len(),
                        features.len()
                    )));
                }
                Ok(Rows::Positional(rows))
            }
            records => Ok(records),
        }
    }
}

fn number(v: &Value, feature: &str, row: usize) -> ApiResult<f64> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| {
            ApiError::invalid(format!(
                "feature '{feature}' (row {row}): {n} is not a finite number"
            ))
        }),
        Value::Null => Ok(f64::NAN),
        other => Err(ApiError::invalid(format!(
            "feature '{feature}' (row {row}): expected a number or null, got {other}"
        ))),
    }
}

fn category(v: &Value, feature: &str, row: usize) -> ApiResult<Option<String>> {
    match v {
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(n.as_f64().map(|x| x.to_string())),
        Value::Null => Ok(None),
        other => Err(ApiError::invalid(format!(
            "feature '{feature}' (row {row}): expected a category (string) or null, got {other}"
        ))),
    }
}

/// Scores `rows` with `served`, on the blocking pool when the batch is large.
async fn predict(served: &Arc<Served>, rows: Rows) -> ApiResult<Predictions> {
    let rows = rows.fit_to(&served.inner.info().features)?;
    let frame = rows.frame(served)?;
    let model = served.clone();
    let run = move || model.inner.predict(&frame);
    let result = if rows.len() >= BLOCKING_ROWS {
        tokio::task::spawn_blocking(run)
            .await
            .map_err(ApiError::internal)?
    } else {
        run()
    };
    result.map_err(|e| ApiError::invalid(e.to_string()))
}

// ----- refit's own ----------------------------------------------------------------------------

/// A scored batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScoreResponse {
    /// Registered model.
    model: String,
    /// The version that scored every row.
    version: i64,
    /// Class labels, in the order of each score's probabilities (classifiers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    classes: Option<Vec<String>>,
    /// One per row, in request order.
    scores: Vec<Score>,
}

/// One row's score.
#[derive(Debug, Serialize, ToSchema)]
pub struct Score {
    /// The row's `machine_id`, when it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    machine_id: Option<Value>,
    /// The row's `ts`, when it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    ts: Option<Value>,
    /// The predicted number (regression) or class label.
    #[schema(value_type = Object)]
    prediction: Value,
    /// Class probabilities by class label (classifiers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    probabilities: Option<BTreeMap<String, f64>>,
}

#[utoipa::path(post, path = "/models/{name}/score", tag = "scoring",
    params(("name" = String, Path, description = "Registered model"), Which),
    request_body(content = Vec<serde_json::Value>, description = "Rows keyed by feature name (JSON array or NDJSON); other fields are ignored, machine_id and ts are echoed", content_type = "application/json"),
    responses((status = 200, description = "One score per row, by one version", body = ScoreResponse),
              (status = 400, description = "A row lacks a feature or has a wrong value", body = ErrorBody),
              (status = 404, description = "No such model, version or alias", body = ErrorBody),
              (status = 422, description = "The version cannot be served", body = ErrorBody)))]
async fn score(
    State(state): State<AppState>,
    _: Can<can::Score>,
    Path(name): Path<String>,
    Query(which): Query<Which>,
    req: Request,
) -> ApiResult<axum::Json<ScoreResponse>> {
    let ndjson = super::datasets::is_ndjson(req.headers());
    let body = read_body(req, state.config.max_body_size as usize).await?;
    let records = parse_records(&body, ndjson)?;
    let served = served(&state, &name, &which).await?;
    let keys: Vec<(Option<Value>, Option<Value>)> = records
        .iter()
        .map(|r| (r.get("machine_id").cloned(), r.get("ts").cloned()))
        .collect();
    let predictions = predict(&served, Rows::Records(records)).await?;
    let info = served.inner.info();
    let classes = info.task.is_classification().then(|| info.classes.clone());
    let k = info.classes.len();
    let scores = keys
        .into_iter()
        .enumerate()
        .map(|(i, (machine_id, ts))| Score {
            machine_id,
            ts,
            prediction: prediction_value(&served, predictions.values[i]),
            probabilities: predictions.probabilities.as_ref().map(|p| {
                info.classes
                    .iter()
                    .cloned()
                    .zip(p[i * k..(i + 1) * k].iter().copied())
                    .collect()
            }),
        })
        .collect();
    Ok(axum::Json(ScoreResponse {
        model: served.model.clone(),
        version: served.version,
        classes,
        scores,
    }))
}

/// A JSON array of objects, or NDJSON with one object a line.
fn parse_records(body: &[u8], ndjson: bool) -> ApiResult<Vec<Map<String, Value>>> {
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiError::invalid(format!("the body is not UTF-8: {e}")))?;
    let values: Vec<Value> = if ndjson {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l)
                    .map_err(|e| ApiError::invalid(format!("line {}: invalid JSON: {e}", i + 1)))
            })
            .collect::<ApiResult<_>>()?
    } else {
        match serde_json::from_str(text) {
            Ok(Value::Array(rows)) => rows,
            Ok(_) => return Err(ApiError::invalid("the body must be a JSON array of rows")),
            Err(e) => return Err(ApiError::invalid(format!("invalid JSON: {e}"))),
        }
    };
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::Object(m) => Ok(m),
            other => Err(ApiError::invalid(format!(
                "row {i} is not an object of feature values: {}",
                truncate(&other.to_string())
            ))),
        })
        .collect()
}

fn truncate(s: &str) -> String {
    if s.len() <= 80 {
        s.to_string()
    } else {
        let end = (0..=80).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
        format!("{}…", &s[..end])
    }
}

// ----- MLflow ---------------------------------------------------------------------------------

/// MLflow's scoring payload: exactly one of `dataframe_split`, `dataframe_records`, `instances`,
/// `inputs`; `params` must be absent or empty (refit's models take none).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvocationsRequest {
    /// `{"columns": [...], "data": [[...], ...]}` (an `index` is ignored).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    dataframe_split: Option<Value>,
    /// `[{"feature": value, ...}, ...]`.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    dataframe_records: Option<Value>,
    /// Rows as objects, or as lists in the model's feature order.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    instances: Option<Value>,
    /// As `instances`, or an object of columns (`{"feature": [values...]}`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    inputs: Option<Value>,
    /// Inference parameters (none are supported).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    params: Option<Value>,
}

/// MLflow's answer: one prediction per row.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvocationsResponse {
    /// Predicted numbers, or class labels.
    #[schema(value_type = Vec<Object>)]
    predictions: Vec<Value>,
}

#[utoipa::path(post, path = "/models/{name}/invocations", tag = "scoring",
    params(("name" = String, Path, description = "Registered model"), Which),
    request_body = InvocationsRequest,
    responses((status = 200, description = "One prediction per row", body = InvocationsResponse),
              (status = 400, description = "Not one of MLflow's payload forms, or rows that do not fit the model", body = ErrorBody),
              (status = 404, description = "No such model, version or alias", body = ErrorBody)))]
async fn invocations(
    State(state): State<AppState>,
    _: Can<can::Score>,
    Path(name): Path<String>,
    Query(which): Query<Which>,
    req: Request,
) -> ApiResult<Response> {
    let body = read_body(req, state.config.max_body_size as usize).await?;
    let request: InvocationsRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::invalid(format!(
            "invalid MLflow scoring payload: {e}; send one of dataframe_split, \
             dataframe_records, instances, inputs"
        ))
    })?;
    let rows = mlflow_rows(request)?;
    let served = served(&state, &name, &which).await?;
    let predictions = predict(&served, rows).await?;
    let predictions = predictions
        .values
        .iter()
        .map(|&v| prediction_value(&served, v))
        .collect();
    let mut response = axum::Json(InvocationsResponse { predictions }).into_response();
    set_version_header(&mut response, &served);
    Ok(response)
}

fn set_version_header(response: &mut Response, served: &Served) {
    if let Ok(v) = served.version.to_string().parse() {
        response.headers_mut().insert("x-refit-model-version", v);
    }
}

/// The rows of an MLflow payload.
fn mlflow_rows(r: InvocationsRequest) -> ApiResult<Rows> {
    if r.params
        .as_ref()
        .is_some_and(|p| !p.is_null() && p.as_object().is_none_or(|o| !o.is_empty()))
    {
        return Err(ApiError::invalid("refit's models take no inference params"));
    }
    let given: Vec<(&str, Value)> = [
        ("dataframe_split", r.dataframe_split),
        ("dataframe_records", r.dataframe_records),
        ("instances", r.instances),
        ("inputs", r.inputs),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    let [(form, value)]: [(&str, Value); 1] = given.try_into().map_err(|given: Vec<_>| {
        ApiError::invalid(if given.is_empty() {
            "send one of dataframe_split, dataframe_records, instances, inputs".to_string()
        } else {
            format!(
                "send only one of dataframe_split, dataframe_records, instances, inputs; got {}",
                given.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
            )
        })
    })?;
    match (form, value) {
        ("dataframe_split", Value::Object(mut split)) => {
            let columns = match split.remove("columns") {
                Some(Value::Array(c)) => c
                    .into_iter()
                    .map(|c| match c {
                        Value::String(s) => Ok(s),
                        other => Err(ApiError::invalid(format!(
                            "dataframe_split: column names must be strings, got {other}"
                        ))),
                    })
                    .collect::<ApiResult<Vec<_>>>()?,
                _ => {
                    return Err(ApiError::invalid(
                        "dataframe_split needs 'columns', a list of feature names",
                    ));
                }
            };
            let data = match split.remove("data") {
                Some(Value::Array(rows)) => rows
                    .into_iter()
                    .enumerate()
                    .map(|(i, row)| match row {
                        Value::Array(values) => Ok(values),
                        _ => Err(ApiError::invalid(format!(
                            "dataframe_split: data row {i} is not a list"
                        ))),
                    })
                    .collect::<ApiResult<Vec<_>>>()?,
                _ => {
                    return Err(ApiError::invalid(
                        "dataframe_split needs 'data', a list of rows",
                    ));
                }
            };
            Ok(Rows::Split { columns, data })
        }
        ("dataframe_split", _) => Err(ApiError::invalid(
            "dataframe_split must be an object with 'columns' and 'data'",
        )),
        ("dataframe_records", Value::Array(rows)) => list_rows(form, rows),
        ("dataframe_records", _) => Err(ApiError::invalid(
            "dataframe_records must be a list of objects",
        )),
        ("inputs", Value::Object(columns)) => {
            // Columnar: {"feature": [values...]}.
            let mut names = Vec::with_capacity(columns.len());
            let mut values = Vec::with_capacity(columns.len());
            for (name, column) in columns {
                match column {
                    Value::Array(v) => values.push(v),
                    _ => {
                        return Err(ApiError::invalid(format!(
                            "inputs: column '{name}' is not a list of values"
                        )));
                    }
                }
                names.push(name);
            }
            let n = values.first().map_or(0, Vec::len);
            if let Some(k) = values.iter().position(|v| v.len() != n) {
                return Err(ApiError::invalid(format!(
                    "inputs: column '{}' has {} values, '{}' has {n}",
                    names[k],
                    values[k].len(),
                    names[0]
                )));
            }
            let mut data = vec![Vec::with_capacity(names.len()); n];
            for column in values {
                for (row, v) in data.iter_mut().zip(column) {
                    row.push(v);
                }
            }
            Ok(Rows::Split {
                columns: names,
                data,
            })
        }
        (_, Value::Array(rows)) => list_rows(form, rows),
        (form, _) => Err(ApiError::invalid(format!(
            "{form} must be a list of rows (or, for inputs, an object of columns)"
        ))),
    }
}

/// A list of rows: all objects, or all lists (or all scalars: single-feature rows).
fn list_rows(form: &str, rows: Vec<Value>) -> ApiResult<Rows> {
    if rows.iter().all(Value::is_object) {
        return Ok(Rows::Records(
            rows.into_iter()
                .map(|r| match r {
                    Value::Object(m) => m,
                    _ => unreachable!("checked above"),
                })
                .collect(),
        ));
    }
    if form == "dataframe_records" {
        return Err(ApiError::invalid(
            "dataframe_records must be a list of objects",
        ));
    }
    if rows.iter().all(Value::is_array) {
        return Ok(Rows::Positional(
            rows.into_iter()
                .map(|r| match r {
                    Value::Array(v) => v,
                    _ => unreachable!("checked above"),
                })
                .collect(),
        ));
    }
    if rows.iter().all(|r| !r.is_array() && !r.is_object()) {
        return Ok(Rows::Positional(
            rows.into_iter().map(|v| vec![v]).collect(),
        ));
    }
    Err(ApiError::invalid(format!(
        "{form}: rows must be all objects or all lists"
    )))
}

// ----- Open Inference Protocol v2 --------------------------------------------------------------

/// An error in the protocol's shape, `{"error": "..."}`.
struct V2Error(StatusCode, String);

impl From<ApiError> for V2Error {
    fn from(e: ApiError) -> Self {
        V2Error(e.status, e.message)
    }
}

impl IntoResponse for V2Error {
    fn into_response(self) -> Response {
        (self.0, axum::Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

type V2Result<T> = Result<T, V2Error>;

/// One tensor of an inference request or response.
#[derive(Debug, Deserialize, Serialize)]
struct Tensor {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    data: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parameters: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct InferRequest {
    #[serde(default)]
    id: Option<String>,
    inputs: Vec<Tensor>,
    #[serde(default)]
    #[allow(dead_code)] // every output is returned; requested ones are not filtered
    outputs: Option<Value>,
    #[serde(default)]
    parameters: Option<Value>,
}

async fn v2_server_metadata(_: Can<can::ReadModels>) -> axum::Json<Value> {
    axum::Json(serde_json::json!({
        "name": "refit",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": [],
    }))
}

async fn v2_live() -> axum::Json<Value> {
    axum::Json(serde_json::json!({ "live": true }))
}

async fn v2_ready(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => axum::Json(serde_json::json!({ "ready": true })).into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({ "ready": false })),
        )
            .into_response(),
    }
}

async fn v2_model_ready(
    State(state): State<AppState>,
    _: Can<can::ReadModels>,
    Path(name): Path<String>,
) -> V2Result<axum::Json<Value>> {
    let served = served(&state, &name, &Which::default()).await?;
    Ok(axum::Json(serde_json::json!({
        "name": served.model,
        "ready": true,
    })))
}

async fn v2_model_metadata(
    State(state): State<AppState>,
    _: Can<can::ReadModels>,
    Path(name): Path<String>,
) -> V2Result<axum::Json<Value>> {
    let served = served(&state, &name, &Which::default()).await?;
    Ok(axum::Json(metadata(&served)))
}

async fn v2_version_metadata(
    State(state): State<AppState>,
    _: Can<can::ReadModels>,
    Path((name, version)): Path<(String, String)>,
) -> V2Result<axum::Json<Value>> {
    let which = version_of(&version)?;
    let served = served(&state, &name, &which).await?;
    Ok(axum::Json(metadata(&served)))
}

fn version_of(version: &str) -> V2Result<Which> {
    let version = version.parse::<i64>().map_err(|_| {
        V2Error(
            StatusCode::BAD_REQUEST,
            format!("model version '{version}' is not a number"),
        )
    })?;
    Ok(Which {
        alias: None,
        version: Some(version),
    })
}

fn metadata(served: &Served) -> Value {
    let info = served.inner.info();
    let inputs: Vec<Value> = info
        .features
        .iter()
        .zip(served.inner.numeric_inputs())
        .map(|(f, numeric)| {
            serde_json::json!({
                "name": f,
                "datatype": if numeric { "FP64" } else { "BYTES" },
                "shape": [-1],
            })
        })
        .collect();
    let mut outputs = vec![serde_json::json!({
        "name": "predict",
        "datatype": if info.task.is_classification() { "BYTES" } else { "FP64" },
        "shape": [-1],
    })];
    if info.task.is_classification() {
        outputs.push(serde_json::json!({
            "name": "probabilities",
            "datatype": "FP64",
            "shape": [-1, info.classes.len()],
        }));
    }
    serde_json::json!({
        "name": served.model,
        "versions": [served.version.to_string()],
        "platform": if info.kind == "onnx" { "onnx" } else { "refit-native" },
        "inputs": inputs,
        "outputs": outputs,
    })
}

async fn v2_infer(
    State(state): State<AppState>,
    _: Can<can::Score>,
    Path(name): Path<String>,
    req: Request,
) -> V2Result<Response> {
    infer(&state, &name, &Which::default(), req).await
}

async fn v2_version_infer(
    State(state): State<AppState>,
    _: Can<can::Score>,
    Path((name, version)): Path<(String, String)>,
    req: Request,
) -> V2Result<Response> {
    let which = version_of(&version)?;
    infer(&state, &name, &which, req).await
}

async fn infer(state: &AppState, name: &str, which: &Which, req: Request) -> V2Result<Response> {
    let body = read_body(req, state.config.max_body_size as usize).await?;
    let request: InferRequest = serde_json::from_slice(&body).map_err(|e| {
        V2Error(
            StatusCode::BAD_REQUEST,
            format!("invalid inference request: {e}"),
        )
    })?;
    if request
        .parameters
        .as_ref()
        .is_some_and(|p| p.as_object().is_none_or(|o| !o.is_empty()))
    {
        return Err(V2Error(
            StatusCode::BAD_REQUEST,
            "refit's models take no inference parameters".into(),
        ));
    }
    let served = served(state, name, which).await?;
    let rows = v2_rows(request.inputs, &served.inner.info().features)?;
    let predictions = predict(&served, rows).await?;
    let info = served.inner.info();
    let n = predictions.values.len();
    let mut outputs = vec![Tensor {
        name: "predict".into(),
        shape: vec![n as i64],
        datatype: if info.task.is_classification() {
            "BYTES".into()
        } else {
            "FP64".into()
        },
        data: Value::Array(
            predictions
                .values
                .iter()
                .map(|&v| prediction_value(&served, v))
                .collect(),
        ),
        parameters: None,
    }];
    if let Some(p) = &predictions.probabilities {
        outputs.push(Tensor {
            name: "probabilities".into(),
            shape: vec![n as i64, info.classes.len() as i64],
            datatype: "FP64".into(),
            data: Value::Array(p.iter().map(|&x| number_value(x)).collect()),
            parameters: None,
        });
    }
    let mut body = serde_json::json!({
        "model_name": served.model,
        "model_version": served.version.to_string(),
        "outputs": outputs,
    });
    if let Some(id) = request.id {
        body["id"] = Value::String(id);
    }
    Ok(axum::Json(body).into_response())
}

/// The rows of an inference request: one `[N, F]` tensor in the model's feature order, or one
/// `[N]` (or `[N, 1]`) tensor per feature, named by it.
fn v2_rows(inputs: Vec<Tensor>, features: &[String]) -> V2Result<Rows> {
    let bad = |m: String| V2Error(StatusCode::BAD_REQUEST, m);
    if inputs.is_empty() {
        return Err(bad("no inputs".into()));
    }
    let by_feature = inputs.len() > 1 || features.iter().any(|f| *f == inputs[0].name);
    let mut columns = Vec::with_capacity(inputs.len());
    let mut data_columns = Vec::with_capacity(inputs.len());
    for t in inputs {
        let values = flatten(&t).map_err(&bad)?;
        let total: i64 = t.shape.iter().product();
        if t.shape.iter().any(|&d| d < 0) || total != values.len() as i64 {
            return Err(bad(format!(
                "input '{}': shape {:?} does not hold its {} values",
                t.name,
                t.shape,
                values.len()
            )));
        }
        if !by_feature {
            let width = features.len();
            if t.shape.len() != 2 || t.shape[1] as usize != width {
                return Err(bad(format!(
                    "input '{}' has shape {:?}; the model takes [N, {width}] (features in this \
                     order: {features:?}) or one input per feature",
                    t.name, t.shape
                )));
            }
            let rows = values.chunks(width).map(<[Value]>::to_vec).collect();
            return Ok(Rows::Positional(rows));
        }
        if !(t.shape.len() == 1 || (t.shape.len() == 2 && t.shape[1] == 1)) {
            return Err(bad(format!(
                "input '{}' has shape {:?}; one input per feature takes [N] or [N, 1]",
                t.name, t.shape
            )));
        }
        columns.push(t.name);
        data_columns.push(values);
    }
    let n = data_columns[0].len();
    if let Some(k) = data_columns.iter().position(|c| c.len() != n) {
        return Err(bad(format!(
            "input '{}' has {} rows, '{}' has {n}",
            columns[k],
            data_columns[k].len(),
            columns[0]
        )));
    }
    let mut data = vec![Vec::with_capacity(columns.len()); n];
    for column in data_columns {
        for (row, v) in data.iter_mut().zip(column) {
            row.push(v);
        }
    }
    Ok(Rows::Split { columns, data })
}

/// A tensor's values in row-major order, checked against its datatype.
fn flatten(t: &Tensor) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    fn walk(v: &Value, out: &mut Vec<Value>) {
        match v {
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            other => out.push(other.clone()),
        }
    }
    walk(&t.data, &mut out);
    let numeric = match t.datatype.as_str() {
        "FP16" | "FP32" | "FP64" | "INT8" | "INT16" | "INT32" | "INT64" | "UINT8" | "UINT16"
        | "UINT32" | "UINT64" => true,
        "BYTES" => false,
        "BOOL" => {
            return Err(format!("input '{}': BOOL inputs are not supported", t.name));
        }
        other => return Err(format!("input '{}': unknown datatype '{other}'", t.name)),
    };
    if let Some(v) = out.iter().find(|v| {
        if numeric {
            !v.is_number()
        } else {
            !v.is_string()
        }
    }) {
        return Err(format!(
            "input '{}' is {} but holds {v}",
            t.name, t.datatype
        ));
    }
    Ok(out)
}
