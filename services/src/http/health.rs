//! `/healthz` (the process answers) and `/readyz` (the database answers). No token needed.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use super::error::ApiError;
use super::state::AppState;

/// Always 200 while the process serves requests.
pub async fn healthz() -> &'static str {
    "ok"
}

/// 200 when the database answers, 503 otherwise.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "TEMPORARILY_UNAVAILABLE",
                "the database is not reachable",
            )
            .into_response()
        }
    }
}
