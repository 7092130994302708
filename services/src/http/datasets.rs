//! `/api/v1/datasets`: machine-data datasets and their schemas, ingest of readings and labels
//! (JSON array or NDJSON), dead letters, and snapshots (create, verify, stream rows).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_TYPE, HeaderValue};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use refit_registry::datasets::record::format_time;
use refit_registry::datasets::{
    Column, Dataset, DeadLetter, IngestReport, PruneReport, Schema, SchemaVersion, Snapshot,
    SnapshotRequest, SnapshotRow, SnapshotVerification, Value,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Can, can};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Json, Path, Query, read_body};
use super::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_dataset, list_datasets))
        .routes(routes!(get_dataset, update_dataset))
        .routes(routes!(prune_dataset))
        .routes(routes!(list_schemas, update_schema))
        .routes(routes!(ingest_records))
        .routes(routes!(ingest_labels))
        .routes(routes!(dead_letters))
        .routes(routes!(create_snapshot, list_snapshots))
        .routes(routes!(get_snapshot))
        .routes(routes!(verify_snapshot))
        .routes(routes!(snapshot_rows))
}

/// A new dataset.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDataset {
    /// Unique name: letters, digits, `_ - .`.
    name: String,
    /// Feature columns.
    features: Vec<Column>,
    /// Label columns.
    #[serde(default)]
    labels: Vec<Column>,
    /// Days of history to keep; default: all.
    #[serde(default)]
    retention_days: Option<i64>,
}

/// Changes to a dataset.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDataset {
    /// Days of history to keep; `null` keeps all.
    retention_days: Option<i64>,
}

/// How to prune.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PruneRequest {
    /// Also delete rows kept snapshots cover; those snapshots are no longer kept and fail
    /// verification from then on. Default: false.
    #[serde(default)]
    force: bool,
}

/// A dataset with its stored counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct DatasetDetail {
    #[serde(flatten)]
    dataset: Dataset,
    /// Stored readings.
    records: i64,
    /// Stored labels.
    labels: i64,
}

/// The datasets.
#[derive(Debug, Serialize, ToSchema)]
pub struct DatasetList {
    datasets: Vec<Dataset>,
}

/// A dataset's schema versions, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct SchemaList {
    versions: Vec<SchemaVersion>,
}

/// Dead letters, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterList {
    dead_letters: Vec<DeadLetter>,
}

/// Snapshots, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotList {
    snapshots: Vec<Snapshot>,
}

/// Paging of a newest-first listing.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Most entries (1-1000, default 100).
    #[serde(default)]
    limit: Option<i64>,
    /// Only entries older than this id.
    #[serde(default)]
    before: Option<i64>,
}

/// Format of streamed rows.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RowsQuery {
    /// `ndjson` (default) or `csv`.
    #[serde(default)]
    format: Option<String>,
}

/// Whether a body is NDJSON: by its content type (`application/x-ndjson`, `application/ndjson`,
/// `application/jsonl`); otherwise it must be a JSON array.
pub(crate) fn is_ndjson(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("ndjson") || v.contains("jsonl"))
}

/// Reads the records of a request body: whether it is NDJSON (by content type, else a JSON
/// array), and its text.
pub(crate) async fn body_text(state: &AppState, req: Request) -> ApiResult<(bool, String)> {
    let ndjson = is_ndjson(req.headers());
    let bytes = read_body(req, state.config.max_body_size as usize).await?;
    let text = String::from_utf8(bytes)
        .map_err(|e| ApiError::invalid(format!("the body is not UTF-8: {e}")))?;
    Ok((ndjson, text))
}

#[utoipa::path(post, path = "/datasets", tag = "datasets", request_body = CreateDataset,
    responses((status = 201, description = "Created", body = Dataset),
              (status = 400, description = "Invalid name or schema", body = ErrorBody),
              (status = 409, description = "Name taken", body = ErrorBody)))]
async fn create_dataset(
    State(state): State<AppState>,
    caller: Can<can::WriteData>,
    Json(b): Json<CreateDataset>,
) -> ApiResult<(StatusCode, axum::Json<Dataset>)> {
    let schema = Schema {
        features: b.features,
        labels: b.labels,
    };
    let dataset = state
        .store
        .create_dataset(&caller.actor(), &b.name, &schema, b.retention_days)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(dataset)))
}

#[utoipa::path(get, path = "/datasets", tag = "datasets",
    responses((status = 200, description = "All datasets", body = DatasetList)))]
async fn list_datasets(
    State(state): State<AppState>,
    _: Can<can::ReadData>,
) -> ApiResult<axum::Json<DatasetList>> {
    Ok(axum::Json(DatasetList {
        datasets: state.store.list_datasets().await?,
    }))
}

#[utoipa::path(get, path = "/datasets/{name}", tag = "datasets",
    params(("name" = String, Path, description = "Dataset name")),
    responses((status = 200, description = "The dataset", body = DatasetDetail),
              (status = 404, description = "No such dataset", body = ErrorBody)))]
async fn get_dataset(
    State(state): State<AppState>,
    _: Can<can::ReadData>,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<DatasetDetail>> {
    let dataset = state.store.get_dataset(&name).await?;
    let (records, labels) = state.store.dataset_counts(&name).await?;
    Ok(axum::Json(DatasetDetail {
        dataset,
        records,
        labels,
    }))
}

#[utoipa::path(patch, path = "/datasets/{name}", tag = "datasets", request_body = UpdateDataset,
    params(("name" = String, Path, description = "Dataset name")),
    responses((status = 200, description = "Updated", body = Dataset),
              (status = 404, description = "No such dataset", body = ErrorBody)))]
async fn update_dataset(
    State(state): State<AppState>,
    caller: Can<can::WriteData>,
    Path(name): Path<String>,
    Json(b): Json<UpdateDataset>,
) -> ApiResult<axum::Json<Dataset>> {
    Ok(axum::Json(
        state
            .store
            .set_dataset_retention(&caller.actor(), &name, b.retention_days)
            .await?,
    ))
}

#[utoipa::path(post, path = "/datasets/{name}/prune", tag = "datasets", request_body = PruneRequest,
    params(("name" = String, Path, description = "Dataset name")),
    responses((status = 200, description = "What was deleted and what kept snapshots kept", body = PruneReport),
              (status = 400, description = "The dataset has no retention_days", body = ErrorBody),
              (status = 404, description = "No such dataset", body = ErrorBody)))]
async fn prune_dataset(
    State(state): State<AppState>,
    caller: Can<can::WriteData>,
    Path(name): Path<String>,
    Json(b): Json<PruneRequest>,
) -> ApiResult<axum::Json<PruneReport>> {
    Ok(axum::Json(
        state
            .store
            .prune_dataset(&caller.actor(), &name, b.force)
            .await?,
    ))
}

#[utoipa::path(get, path = "/datasets/{name}/schema", tag = "datasets",
    params(("name" = String, Path, description = "Dataset name")),
    responses((status = 200, description = "Every schema version", body = SchemaList),
              (status = 404, description = "No such dataset", body = ErrorBody)))]
async fn list_schemas(
    State(state): State<AppState>,
    _: Can<can::ReadData>,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<SchemaList>> {
    Ok(axum::Json(SchemaList {
        versions: state.store.schema_versions(&name).await?,
    }))
}

#[utoipa::path(put, path = "/datasets/{name}/schema", tag = "datasets", request_body = Schema,
    params(("name" = String, Path, description = "Dataset name")),
    responses((status = 200, description = "The dataset with its (possibly new) schema version", body = Dataset),
              (status = 400, description = "Invalid schema", body = ErrorBody),
              (status = 404, description = "No such dataset", body = ErrorBody)))]
async fn update_schema(
    State(state): State<AppState>,
    caller: Can<can::WriteData>,
    Path(name): Path<String>,
    Json(schema): Json<Schema>,
) -> ApiResult<axum::Json<Dataset>> {
    Ok(axum::Json(
        state
            .store
            .update_dataset_schema(&caller.actor(), &name, &schema)
            .await?,
    ))
}

#[utoipa::path(post, path = "/datasets/{name}/records", tag = "datasets",
    params(("name" = String, Path, description = "Dataset name")),
    request_body(content = Vec<serde_json::Value>, description = "A JSON array of records, or NDJSON with Content-Type application/x-ndjson; each record: machine_id, ts (RFC 3339 or ms), feature and (optionally) label columns",
                 content_type = "application/json"),
    responses((status = 200, description = "What was stored, what were duplicates, what was refused and why", body = IngestReport),
              (status = 400, description = "The body is not a JSON array, or too many records", body = ErrorBody),
              (status = 404, description = "No such dataset", body = ErrorBody),
              (status = 413, description = "Body over the limit", body = ErrorBody)))]
async fn ingest_records(
    State(state): State<AppState>,
    caller: Can<can::Ingest>,
    Path(name): Path<String>,
    req: Request,
) -> ApiResult<axum::Json<IngestReport>> {
    let (ndjson, text) = body_text(&state, req).await?;
    Ok(axum::Json(
        state
            .store
            .ingest_records(&caller.actor(), &name, text, ndjson, "api")
            .await?,
    ))
}

#[utoipa::path(post, path = "/datasets/{name}/labels", tag = "datasets",
    params(("name" = String, Path, description = "Dataset name")),
    request_body(content = Vec<serde_json::Value>, description = "Records of machine_id, ts and label columns (JSON array or NDJSON)", content_type = "application/json"),
    responses((status = 200, description = "Labels stored, duplicates, refusals", body = IngestReport),
              (status = 404, description = "No such dataset", body = ErrorBody)))]
async fn ingest_labels(
    State(state): State<AppState>,
    caller: Can<can::Ingest>,
    Path(name): Path<String>,
    req: Request,
) -> ApiResult<axum::Json<IngestReport>> {
    let (ndjson, text) = body_text(&state, req).await?;
    let (report, stored) = state
        .store
        .ingest_labels_returning(&caller.actor(), &name, text, ndjson)
        .await?;
    // The labels are stored: realized metrics are a by-product, never a reason to fail the call.
    if let Err(e) = state.realized.observe_labels(&name, &stored).await {
        tracing::warn!(dataset = %name, error = %e, "realized metrics failed");
    }
    Ok(axum::Json(report))
}

#[utoipa::path(get, path = "/datasets/{name}/dead-letters", tag = "datasets",
    params(("name" = String, Path, description = "Dataset name"), ListQuery),
    responses((status = 200, description = "Refused records, newest first", body = DeadLetterList),
              (status = 404, description = "No such dataset", body = ErrorBody)))]
async fn dead_letters(
    State(state): State<AppState>,
    _: Can<can::ReadData>,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<DeadLetterList>> {
    let dead_letters = state
        .store
        .dead_letters(&name, q.limit.unwrap_or(100), q.before)
        .await?;
    Ok(axum::Json(DeadLetterList { dead_letters }))
}

#[utoipa::path(post, path = "/datasets/{name}/snapshots", tag = "datasets", request_body = SnapshotRequest,
    params(("name" = String, Path, description = "Dataset name")),
    responses((status = 201, description = "The snapshot, with its row count and digest", body = Snapshot),
              (status = 400, description = "Empty time range or bad machine list", body = ErrorBody),
              (status = 404, description = "No such dataset or schema version", body = ErrorBody)))]
async fn create_snapshot(
    State(state): State<AppState>,
    caller: Can<can::WriteData>,
    Path(name): Path<String>,
    Json(b): Json<SnapshotRequest>,
) -> ApiResult<(StatusCode, axum::Json<Snapshot>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(
            state
                .store
                .create_snapshot(&caller.actor(), &name, &b)
                .await?,
        ),
    ))
}

#[utoipa::path(get, path = "/datasets/{name}/snapshots", tag = "datasets",
    params(("name" = String, Path, description = "Dataset name"), ListQuery),
    responses((status = 200, description = "Snapshots, newest first", body = SnapshotList),
              (status = 404, description = "No such dataset", body = ErrorBody)))]
async fn list_snapshots(
    State(state): State<AppState>,
    _: Can<can::ReadData>,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<SnapshotList>> {
    Ok(axum::Json(SnapshotList {
        snapshots: state
            .store
            .list_snapshots(&name, q.limit.unwrap_or(100))
            .await?,
    }))
}

#[utoipa::path(get, path = "/datasets/{name}/snapshots/{id}", tag = "datasets",
    params(("name" = String, Path, description = "Dataset name"), ("id" = i64, Path, description = "Snapshot id")),
    responses((status = 200, description = "The snapshot", body = Snapshot),
              (status = 404, description = "No such snapshot", body = ErrorBody)))]
async fn get_snapshot(
    State(state): State<AppState>,
    _: Can<can::ReadData>,
    Path((name, id)): Path<(String, i64)>,
) -> ApiResult<axum::Json<Snapshot>> {
    Ok(axum::Json(state.store.get_snapshot(&name, id).await?))
}

#[utoipa::path(get, path = "/datasets/{name}/snapshots/{id}/verify", tag = "datasets",
    params(("name" = String, Path, description = "Dataset name"), ("id" = i64, Path, description = "Snapshot id")),
    responses((status = 200, description = "The digest recomputed from the rows", body = SnapshotVerification),
              (status = 404, description = "No such snapshot", body = ErrorBody)))]
async fn verify_snapshot(
    State(state): State<AppState>,
    _: Can<can::ReadData>,
    Path((name, id)): Path<(String, i64)>,
) -> ApiResult<axum::Json<SnapshotVerification>> {
    Ok(axum::Json(state.store.verify_snapshot(&name, id).await?))
}

#[utoipa::path(get, path = "/datasets/{name}/snapshots/{id}/rows", tag = "datasets",
    params(("name" = String, Path, description = "Dataset name"), ("id" = i64, Path, description = "Snapshot id"), RowsQuery),
    responses((status = 200, description = "The rows in (ts, machine_id) order, streamed as NDJSON or CSV", body = String, content_type = "application/x-ndjson"),
              (status = 400, description = "Unknown format", body = ErrorBody),
              (status = 404, description = "No such snapshot", body = ErrorBody)))]
async fn snapshot_rows(
    State(state): State<AppState>,
    _: Can<can::ReadData>,
    Path((name, id)): Path<(String, i64)>,
    Query(q): Query<RowsQuery>,
) -> ApiResult<Response> {
    let csv = match q.format.as_deref() {
        None | Some("ndjson") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "unknown format '{other}': use ndjson or csv"
            )));
        }
    };
    let (_, schema, rows) = state.store.snapshot_rows(&name, id).await?;
    let header = csv.then(|| csv_header(&schema));
    let body = rows.map(move |row| {
        row.map(|r| {
            if csv {
                csv_line(&schema, &r)
            } else {
                ndjson_line(&schema, &r)
            }
        })
        .map_err(|e| {
            tracing::error!(error = %e, "snapshot rows failed while streaming");
            std::io::Error::other(e.to_string())
        })
    });
    let body = match header {
        Some(h) => Body::from_stream(futures_util::stream::once(async move { Ok(h) }).chain(body)),
        None => Body::from_stream(body),
    };
    let mut response = body.into_response();
    let kind = if csv {
        "text/csv; charset=utf-8"
    } else {
        "application/x-ndjson"
    };
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    Ok(response)
}

fn csv_header(schema: &Schema) -> String {
    let mut cols = vec!["machine_id".to_string(), "ts".to_string()];
    cols.extend(
        schema
            .features
            .iter()
            .chain(&schema.labels)
            .map(|c| c.name.clone()),
    );
    let mut line = cols
        .iter()
        .map(|c| csv_field(c))
        .collect::<Vec<_>>()
        .join(",");
    line.push('\n');
    line
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::Missing => String::new(),
        Value::Number(x) => x.to_string(),
        Value::Text(s) => csv_field(s),
    }
}

fn csv_line(schema: &Schema, row: &SnapshotRow) -> String {
    let mut fields = vec![csv_field(&row.machine_id), format_time(row.ts)];
    fields.extend(row.features.iter().map(value_text));
    match &row.labels {
        Some(labels) => fields.extend(labels.iter().map(value_text)),
        // Labels not known yet: still one (empty) field per label column, as in the header.
        None => fields.extend(schema.labels.iter().map(|_| String::new())),
    }
    let mut line = fields.join(",");
    line.push('\n');
    line
}

fn ndjson_line(schema: &Schema, row: &SnapshotRow) -> String {
    let mut object = serde_json::Map::new();
    object.insert("machine_id".into(), row.machine_id.clone().into());
    object.insert("ts".into(), format_time(row.ts).into());
    let labels = row.labels.iter().flatten();
    for (column, value) in schema
        .features
        .iter()
        .chain(&schema.labels)
        .zip(row.features.iter().chain(labels))
    {
        let v = match value {
            Value::Missing => serde_json::Value::Null,
            Value::Number(x) => serde_json::json!(x),
            Value::Text(s) => s.clone().into(),
        };
        object.insert(column.name.clone(), v);
    }
    let mut line = serde_json::Value::Object(object).to_string();
    line.push('\n');
    line
}
