//! `/api/v1/runs/{run_id}/artifacts`: streamed upload (bounded size, optional declared sha256),
//! listing, and streamed download verified against the stored digest.

use std::path::PathBuf;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ETAG};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use refit_registry::artifacts::{self, ArtifactEntry, StoredArtifact};
use refit_registry::runs::Run;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Can, can};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Path, Query};
use super::state::AppState;

/// Header carrying the sha256 (hex) an upload must have, and the digest of a download.
pub const SHA256_HEADER: &str = "x-content-sha256";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_artifacts))
        .routes(routes!(upload_artifact, download_artifact))
}

/// Which directory to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Directory relative to the run's artifact root; the root when absent.
    #[serde(default)]
    path: Option<String>,
}

/// A directory listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct ArtifactListing {
    /// The run's artifact root.
    root_uri: String,
    /// Direct children, by name.
    files: Vec<ArtifactEntry>,
}

/// The run's root inside refit's artifact store, from its artifact URI.
pub fn run_root(run: &Run) -> Result<String, ApiError> {
    run.info.artifact_root().ok_or_else(|| {
        ApiError::invalid(format!(
            "run {} keeps its artifacts at '{}', which refit does not serve",
            run.info.run_id, run.info.artifact_uri
        ))
    })
}

/// A temporary file removed when dropped, so an aborted upload leaves nothing behind.
pub struct StagedFile {
    path: PathBuf,
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Streams `body` into a temporary file in the data dir, hashing as it goes and refusing more than
/// `limit` bytes. Returns the file, its sha256 and its size.
pub async fn stage_upload(
    state: &AppState,
    body: Body,
    limit: u64,
) -> ApiResult<(StagedFile, String, u64)> {
    let dir = state.config.data_dir.join("tmp");
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(ApiError::internal)?;
    let staged = StagedFile {
        path: dir.join(format!("upload-{}", refit_registry::db::new_id())),
    };
    let mut file = tokio::fs::File::create(&staged.path)
        .await
        .map_err(ApiError::internal)?;
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::invalid(format!("could not read the upload: {e}")))?;
        size += chunk.len() as u64;
        if size > limit {
            return Err(ApiError::too_large(format!(
                "the artifact is larger than the limit of {limit} bytes"
            )));
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(ApiError::internal)?;
    }
    file.flush().await.map_err(ApiError::internal)?;
    Ok((staged, hex::encode(hasher.finalize()), size))
}

/// Checks an upload against the sha256 its sender declared, if any.
pub fn check_declared_sha(headers: &HeaderMap, actual: &str) -> ApiResult<()> {
    let Some(declared) = headers.get(SHA256_HEADER) else {
        return Ok(());
    };
    let declared = declared.to_str().unwrap_or("").trim().to_ascii_lowercase();
    if declared.len() != 64 || !declared.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ApiError::invalid(format!(
            "{SHA256_HEADER} must be 64 hex digits"
        )));
    }
    if declared != actual {
        return Err(ApiError::invalid(format!(
            "the uploaded bytes have sha256 {actual}, not the declared {declared}; nothing was stored"
        )));
    }
    Ok(())
}

/// Stores a staged upload at `full_path`.
pub async fn store_staged(
    state: &AppState,
    actor: &refit_registry::Actor,
    full_path: &str,
    staged: &StagedFile,
    sha: &str,
) -> ApiResult<StoredArtifact> {
    let file = tokio::fs::File::open(&staged.path)
        .await
        .map_err(ApiError::internal)?;
    Ok(state
        .store
        .put_artifact(actor, full_path, tokio::io::BufReader::new(file), sha)
        .await?)
}

/// A streamed download of the artifact at `full_path`.
pub async fn download(state: &AppState, full_path: &str) -> ApiResult<Response> {
    let (info, stream) = state.store.open_artifact(full_path).await?;
    let path = info.path.clone();
    let body = Body::from_stream(stream.map(move |chunk| {
        chunk.map_err(|e| {
            // Headers are gone by now: ending the stream early is the only honest signal left.
            tracing::error!(path = %path, error = %e, "artifact failed verification while streaming");
            std::io::Error::other(e.to_string())
        })
    }));
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(info.size as u64));
    if let Ok(v) = HeaderValue::from_str(&info.sha256) {
        headers.insert(SHA256_HEADER, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", info.sha256)) {
        headers.insert(ETAG, v);
    }
    Ok(response)
}

#[utoipa::path(get, path = "/runs/{run_id}/artifacts", tag = "artifacts",
    params(("run_id" = String, Path, description = "Run id"), ListQuery),
    responses((status = 200, description = "Direct children of the directory", body = ArtifactListing),
              (status = 400, description = "Invalid path", body = ErrorBody),
              (status = 404, description = "No such run", body = ErrorBody)))]
async fn list_artifacts(
    State(state): State<AppState>,
    _: Can<can::ReadExperiments>,
    Path(run_id): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<ArtifactListing>> {
    let run = state.store.get_run(&run_id).await?;
    let root = run_root(&run)?;
    let dir = match q.path.as_deref().filter(|p| !p.is_empty()) {
        Some(p) => artifacts::join(&root, p)?,
        None => root.clone(),
    };
    let files = state.store.list_artifacts(&root, &dir).await?;
    Ok(axum::Json(ArtifactListing {
        root_uri: run.info.artifact_uri,
        files,
    }))
}

#[utoipa::path(put, path = "/runs/{run_id}/artifacts/{*path}", tag = "artifacts",
    params(("run_id" = String, Path, description = "Run id"), ("path" = String, Path, description = "Relative file path"),
           ("x-content-sha256" = Option<String>, Header, description = "Expected sha256 of the bytes, hex")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, description = "Stored", body = StoredArtifact),
              (status = 400, description = "Invalid path, run not active, or sha256 mismatch", body = ErrorBody),
              (status = 404, description = "No such run", body = ErrorBody),
              (status = 413, description = "Over the size limit", body = ErrorBody)))]
async fn upload_artifact(
    State(state): State<AppState>,
    caller: Can<can::WriteExperiments>,
    Path((run_id, path)): Path<(String, String)>,
    req: Request,
) -> ApiResult<(StatusCode, axum::Json<StoredArtifact>)> {
    let run = state.store.get_run(&run_id).await?;
    if run.info.lifecycle_stage != refit_registry::experiments::LifecycleStage::Active {
        return Err(ApiError::invalid(format!(
            "The run {run_id} must be in the 'active' state. Current state is deleted."
        )));
    }
    let full_path = artifacts::join(&run_root(&run)?, &path)?;
    if let Some(enc) = req
        .headers()
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        && !enc.eq_ignore_ascii_case("identity")
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            format!("artifacts are stored as sent: Content-Encoding '{enc}' is not accepted"),
        ));
    }
    let headers = req.headers().clone();
    let (staged, sha, _size) =
        stage_upload(&state, req.into_body(), state.config.max_artifact_size).await?;
    check_declared_sha(&headers, &sha)?;
    let stored = store_staged(&state, &caller.actor(), &full_path, &staged, &sha).await?;
    let relative = full_path[full_path.len() - path.trim_end_matches('/').len()..].to_string();
    Ok((
        StatusCode::CREATED,
        axum::Json(StoredArtifact {
            path: relative,
            ..stored
        }),
    ))
}

#[utoipa::path(get, path = "/runs/{run_id}/artifacts/{*path}", tag = "artifacts",
    params(("run_id" = String, Path, description = "Run id"), ("path" = String, Path, description = "Relative file path")),
    responses((status = 200, description = "The bytes, streamed; x-content-sha256 carries their digest", body = Vec<u8>, content_type = "application/octet-stream"),
              (status = 404, description = "No such run or file", body = ErrorBody)))]
async fn download_artifact(
    State(state): State<AppState>,
    _: Can<can::ReadExperiments>,
    Path((run_id, path)): Path<(String, String)>,
) -> ApiResult<Response> {
    let run = state.store.get_run(&run_id).await?;
    let full_path = artifacts::join(&run_root(&run)?, &path)?;
    download(&state, &full_path).await
}
