//! MLflow's REST API over refit's registry tables, so that MLflow's own client (2.x and 3.x)
//! works against refit unchanged: tracking (`/api/2.0/mlflow/experiments|runs|metrics`), MLflow 3
//! logged models, the model registry, the artifact proxy (`/api/2.0/mlflow-artifacts`) and
//! `/api/3.0/mlflow/server-info`, each also under `/ajax-api`.
//!
//! The handlers translate between MLflow's wire format ([`wire`]) and the store; the rules live in
//! the store, shared with the native API. Where MLflow's server answers a caller's mistake with a
//! 5xx (which its client retries for minutes), refit answers 400.

pub mod artifacts;
pub mod logged_models;
pub mod registry;
pub mod tracking;
pub mod wire;

use axum::Router;
use axum::routing::get;

use super::state::AppState;

/// Every MLflow route, under `/api` and mirrored under `/ajax-api`.
pub fn router() -> Router<AppState> {
    let v2 = Router::new()
        .merge(tracking::router())
        .merge(logged_models::router())
        .merge(registry::router());
    let api = Router::new()
        .nest("/2.0/mlflow", v2)
        .nest("/2.0/mlflow-artifacts", artifacts::router())
        .route("/3.0/mlflow/server-info", get(server_info));
    Router::new()
        .nest("/api", api.clone())
        .nest("/ajax-api", api)
}

/// What MLflow 3's client asks before downloading artifacts: no multipart transfers, no
/// workspaces, a SQL store.
async fn server_info() -> axum::response::Response {
    wire::json(serde_json::json!({
        "store_type": "SqlStore",
        "workspaces_enabled": false,
        "trace_archival_enabled": false,
        "multipart_uploads_enabled": false,
        "multipart_downloads_enabled": false,
        "presigned_upload_run_id_supported": false,
        "presigned_upload_model_id_supported": false,
        "features_enabled": {},
    }))
}
