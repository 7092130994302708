//! MLflow's artifact proxy (`/api/2.0/mlflow-artifacts/artifacts/<path>`), which the client uses
//! for every `mlflow-artifacts:` URI — runs' and logged models' artifacts alike — and the
//! tracking server's run listing (`/api/2.0/mlflow/artifacts/list`). Paths are those of refit's
//! artifact store (`<experiment>/<run>/artifacts/...`), so files logged through MLflow and
//! through the native API are the same files.

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use refit_registry::artifacts::ArtifactEntry;
use refit_registry::validate;
use serde_json::{Map, Value, json};

use super::wire::{self, MlflowError, MlflowResult, Params};
use crate::http::artifacts::{download, run_root, stage_upload, store_staged};
use crate::http::auth::{Can, can};
use crate::http::extract::Path;
use crate::http::state::AppState;

/// The proxy's routes, nested at `/2.0/mlflow-artifacts`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/artifacts", get(list))
        .route("/artifacts/", get(list))
        .route("/artifacts/{*path}", get(download_file).put(upload))
}

/// A path in the artifact store, refused as MLflow refuses it: `Invalid path`.
fn checked(path: &str) -> MlflowResult<&str> {
    validate::artifact_path(path).map_err(|_| MlflowError::invalid("Invalid path"))
}

/// `{"files": [...]}` with MLflow's file entries (no size for directories or empty files);
/// `{}` when there are none.
fn listing(entries: Vec<ArtifactEntry>, extra: Map<String, Value>) -> Response {
    let files: Vec<Value> = entries
        .into_iter()
        .map(|e| {
            let mut o = Map::new();
            o.insert("path".into(), json!(e.path));
            o.insert("is_dir".into(), json!(e.is_dir));
            if let Some(size) = e.file_size.filter(|s| *s > 0) {
                o.insert("file_size".into(), json!(size));
            }
            Value::Object(o)
        })
        .collect();
    let mut o = extra;
    if !files.is_empty() {
        o.insert("files".into(), Value::Array(files));
    }
    wire::json(Value::Object(o))
}

/// One directory level, entries named relative to it. A missing directory, or a file, lists as
/// `{}`: the client lists a path first to learn whether it is a directory.
async fn list(
    State(state): State<AppState>,
    _: Can<can::ReadExperiments>,
    params: Params,
) -> MlflowResult<Response> {
    let dir = match params.get("path").map(|p| p.trim_end_matches('/')) {
        None | Some("") => String::new(),
        Some(p) => checked(p)?.to_string(),
    };
    let entries = state.store.list_artifacts(&dir, &dir).await?;
    Ok(listing(entries, Map::new()))
}

async fn upload(
    State(state): State<AppState>,
    caller: Can<can::WriteExperiments>,
    Path(path): Path<String>,
    req: Request,
) -> MlflowResult<Response> {
    if path.ends_with('/') {
        return Err(MlflowError::invalid(
            "Artifact path must include a filename (cannot end with '/').",
        ));
    }
    let path = checked(&path)?.to_string();
    let (staged, sha, _size) =
        stage_upload(&state, req.into_body(), state.config.max_artifact_size).await?;
    store_staged(&state, &caller.actor(), &path, &staged, &sha).await?;
    Ok(axum::http::StatusCode::OK.into_response())
}

async fn download_file(
    State(state): State<AppState>,
    _: Can<can::ReadExperiments>,
    Path(path): Path<String>,
) -> MlflowResult<Response> {
    let path = checked(&path)?;
    if state.store.artifact_info(path).await?.is_none() {
        return Err(MlflowError::not_found(format!(
            "No such artifact: '{path}'"
        )));
    }
    Ok(download(&state, path).await?)
}

/// `GET /api/2.0/mlflow/artifacts/list?run_id=&path=`: a run's directory, entries named relative
/// to the run's artifact root.
pub async fn list_run_artifacts(
    State(state): State<AppState>,
    _: Can<can::ReadExperiments>,
    params: Params,
) -> MlflowResult<Response> {
    let id = params
        .required("run_id")
        .or_else(|_| params.required("run_uuid"))?;
    let run = state.store.get_run(id).await?;
    let root = run_root(&run)?;
    let dir = match params.get("path").map(|p| p.trim_end_matches('/')) {
        None | Some("") => root.clone(),
        Some(p) => format!("{root}/{}", checked(p)?),
    };
    let entries = state.store.list_artifacts(&root, &dir).await?;
    let mut extra = Map::new();
    extra.insert("root_uri".into(), json!(run.info.artifact_uri));
    Ok(listing(entries, extra))
}
