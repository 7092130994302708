//! The HTTP API: one module per resource, each with its own router, merged here.

pub mod artifacts;
pub mod auth;
pub mod datasets;
pub mod drift;
pub mod error;
pub mod experiments;
pub mod extract;
pub mod health;
pub mod metrics;
pub mod mlflow;
pub mod models;
pub mod onnx;
pub mod runs;
pub mod scoring;
pub mod state;
pub mod streams;
pub mod tokens;
pub mod training;

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use error::ApiError;
pub use state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "refit", description = "refit's native API: the registry, tokens and audit log."),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "experiments", description = "Groups of runs"),
        (name = "runs", description = "Runs: params, metrics, tags, inputs"),
        (name = "artifacts", description = "Files of runs, content-addressed"),
        (name = "models", description = "Registered models, versions, aliases"),
        (name = "datasets", description = "Machine-data history: schemas, ingest, snapshots"),
        (name = "training", description = "Training specs and jobs"),
        (name = "promotions", description = "The promotion ledger and operators' actions"),
        (name = "scoring", description = "Batch scoring with a model's champion (refit, MLflow and Open Inference Protocol forms)"),
        (name = "streams", description = "Records in, scored as they are stored; scores out over SSE and WebSocket"),
        (name = "drift", description = "Drift reports per window, features over time, machines ranked, on-demand checks"),
        (name = "tokens", description = "API tokens (admin)"),
        (name = "audit", description = "The audit log"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        api.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
    }
}

/// The `/api/v1` routes and the OpenAPI document generated from their handlers.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest(
            "/api/v1",
            OpenApiRouter::new()
                .merge(experiments::router())
                .merge(runs::router())
                .merge(artifacts::router())
                .merge(models::router())
                .merge(tokens::router())
                .merge(datasets::router())
                .merge(training::router())
                .merge(scoring::router())
                .merge(streams::router())
                .merge(onnx::router())
                .merge(drift::router()),
        )
        .split_for_parts();
    // axum writes wildcards as `{*path}`; OpenAPI path templates have no such syntax.
    doc.paths.paths = std::mem::take(&mut doc.paths.paths)
        .into_iter()
        .map(|(path, item)| (path.replace("{*", "{"), item))
        .collect();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc.info.license = None;
    (router, doc)
}

/// The whole application: API, docs, health, readiness and metrics, with request metrics and
/// panics turned into 500 responses in the API's error shape.
pub fn app(state: AppState) -> Router {
    let (api, doc) = api();
    let swagger =
        utoipa_swagger_ui::SwaggerUi::new("/api/v1/docs").url("/api/v1/openapi.json", doc);
    Router::new()
        .merge(api)
        .merge(swagger)
        .merge(scoring::v2_router())
        .merge(mlflow::router())
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::render))
        // After every route: it applies to the routes present when it is called.
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                ApiError::internal("a request handler panicked").into_response()
            },
        ))
        .with_state(state)
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        "this endpoint does not take that method; see /api/v1/docs",
    )
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "ENDPOINT_NOT_FOUND",
        "no such endpoint; see /api/v1/docs",
    )
}
