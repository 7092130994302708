//! `/api/v1/tokens` (admin): create, list, revoke; `/api/v1/whoami` for any valid token; and
//! `/api/v1/audit` (admin, operator): the audit log, newest first.

use axum::extract::State;
use axum::http::StatusCode;
use refit_registry::AuditEntry;
use refit_registry::tokens::{ApiToken, CreatedToken, Role};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Caller, Can, can};
use super::error::{ApiResult, ErrorBody};
use super::extract::{Json, Path, Query};
use super::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_token, list_tokens))
        .routes(routes!(revoke_token))
        .routes(routes!(whoami))
        .routes(routes!(audit_log))
}

/// A token to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// Unique name; it is the actor in the audit log.
    name: String,
    role: Role,
}

/// The listed tokens (never their secrets).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    tokens: Vec<ApiToken>,
}

/// Who the caller is.
#[derive(Debug, Serialize, ToSchema)]
pub struct WhoAmI {
    name: String,
    role: Role,
}

/// Audit log paging.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Most entries to return (1-1000, default 100).
    #[serde(default)]
    limit: Option<i64>,
    /// Only entries older than this entry id (for paging backwards).
    #[serde(default)]
    before: Option<i64>,
    /// Only entries about this target, e.g. `run:<id>` or `model:churn`.
    #[serde(default)]
    target: Option<String>,
}

/// Audit entries, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    entries: Vec<AuditEntry>,
}

#[utoipa::path(post, path = "/tokens", tag = "tokens", request_body = CreateToken,
    responses((status = 201, description = "Created; the secret is shown only here", body = CreatedToken),
              (status = 409, description = "Name taken", body = ErrorBody)))]
async fn create_token(
    State(state): State<AppState>,
    caller: Can<can::ManageTokens>,
    Json(b): Json<CreateToken>,
) -> ApiResult<(StatusCode, axum::Json<CreatedToken>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(
            state
                .store
                .create_token(&caller.actor(), &b.name, b.role)
                .await?,
        ),
    ))
}

#[utoipa::path(get, path = "/tokens", tag = "tokens",
    responses((status = 200, description = "All tokens, revoked ones included", body = TokenList)))]
async fn list_tokens(
    State(state): State<AppState>,
    _: Can<can::ManageTokens>,
) -> ApiResult<axum::Json<TokenList>> {
    Ok(axum::Json(TokenList {
        tokens: state.store.list_tokens().await?,
    }))
}

#[utoipa::path(delete, path = "/tokens/{id_or_name}", tag = "tokens",
    params(("id_or_name" = String, Path, description = "Token id or name")),
    responses((status = 200, description = "Revoked", body = ApiToken),
              (status = 404, description = "No such token", body = ErrorBody),
              (status = 409, description = "Already revoked", body = ErrorBody)))]
async fn revoke_token(
    State(state): State<AppState>,
    caller: Can<can::ManageTokens>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ApiToken>> {
    Ok(axum::Json(
        state.store.revoke_token(&caller.actor(), &id).await?,
    ))
}

#[utoipa::path(get, path = "/whoami", tag = "tokens",
    responses((status = 200, description = "The caller's token name and role", body = WhoAmI)))]
async fn whoami(caller: Caller) -> axum::Json<WhoAmI> {
    axum::Json(WhoAmI {
        name: caller.0.name,
        role: caller.0.role,
    })
}

#[utoipa::path(get, path = "/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, description = "Audit entries, newest first", body = AuditPage)))]
async fn audit_log(
    State(state): State<AppState>,
    _: Can<can::ReadAudit>,
    Query(q): Query<AuditQuery>,
) -> ApiResult<axum::Json<AuditPage>> {
    let entries = state
        .store
        .audit_log(q.limit.unwrap_or(100), q.before, q.target.as_deref())
        .await?;
    Ok(axum::Json(AuditPage { entries }))
}
