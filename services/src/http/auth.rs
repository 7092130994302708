//! Bearer-token authentication and the role matrix.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use refit_registry::Actor;
use refit_registry::tokens::{Principal, Role};

use super::error::ApiError;
use super::state::AppState;

/// What a call needs to be allowed. Each handler names exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Read experiments, runs, metrics and artifacts.
    ReadExperiments,
    /// Create and change experiments and runs; log to runs; upload artifacts.
    WriteExperiments,
    /// Read registered models, versions and aliases.
    ReadModels,
    /// Create and change registered models, versions, tags and aliases.
    WriteModels,
    /// Read the audit log.
    ReadAudit,
    /// Create, list and revoke API tokens.
    ManageTokens,
    /// Read datasets, their snapshots, rows and dead letters.
    ReadData,
    /// Create datasets, change their schema and retention, take snapshots.
    WriteData,
    /// Send readings and labels.
    Ingest,
    /// Create and change training specs; start trainings.
    WriteSpecs,
    /// Read specs, jobs and the promotion ledger.
    ReadTraining,
    /// Approve or reject pending promotions, roll back, pin.
    Operate,
    /// Score rows with a registered model (batch scoring endpoints).
    Score,
    /// Receive stream scores (SSE, WebSocket) and read the score log.
    ReadScores,
    /// Read drift reports: per window, per feature over time, machines ranked.
    ReadDrift,
}

impl Permission {
    /// Whether `role` has this permission. The README's role matrix is this function.
    pub fn allows(self, role: Role) -> bool {
        use Role::{Admin, Consumer, Operator, Scientist};
        match self {
            Permission::ReadExperiments => matches!(role, Admin | Scientist | Operator),
            Permission::WriteExperiments => matches!(role, Admin | Scientist),
            Permission::ReadModels => matches!(role, Admin | Scientist | Operator | Consumer),
            Permission::WriteModels => matches!(role, Admin | Scientist),
            Permission::ReadAudit => matches!(role, Admin | Operator),
            Permission::ManageTokens => matches!(role, Admin),
            Permission::ReadData => matches!(role, Admin | Scientist | Operator),
            Permission::WriteData => matches!(role, Admin | Scientist),
            Permission::Ingest => matches!(role, Admin | Role::Ingest),
            Permission::WriteSpecs => matches!(role, Admin | Scientist),
            Permission::ReadTraining => matches!(role, Admin | Scientist | Operator),
            Permission::Operate => matches!(role, Admin | Operator),
            Permission::Score => matches!(role, Admin | Scientist | Operator | Consumer),
            Permission::ReadScores => matches!(role, Admin | Scientist | Operator | Consumer),
            Permission::ReadDrift => matches!(role, Admin | Scientist | Operator | Consumer),
        }
    }
}

/// A permission as a type, so that a handler states what it needs in its signature and the check
/// runs while extracting the request's head — before the body is read or parsed.
pub trait Requirement {
    /// The permission this marker stands for.
    const PERMISSION: Permission;
}

/// Marker types for [`Can`], one per [`Permission`].
pub mod can {
    use super::{Permission, Requirement};

    macro_rules! markers {
        ($($name:ident),*) => {$(
            #[doc = concat!("Requires [`Permission::", stringify!($name), "`].")]
            #[derive(Debug, Clone, Copy)]
            pub struct $name;
            impl Requirement for $name {
                const PERMISSION: Permission = Permission::$name;
            }
        )*};
    }

    markers!(
        ReadExperiments,
        WriteExperiments,
        ReadModels,
        WriteModels,
        ReadAudit,
        ManageTokens,
        ReadData,
        WriteData,
        Ingest,
        WriteSpecs,
        ReadTraining,
        Operate,
        Score,
        ReadScores,
        ReadDrift
    );
}

/// An authenticated caller whose role has permission `R`: 401 for a missing, malformed, unknown or
/// revoked token, 403 for a role without the permission.
#[derive(Debug, Clone)]
pub struct Can<R>(pub Caller, std::marker::PhantomData<R>);

impl<R> Can<R> {
    /// The caller as the audit log's actor.
    pub fn actor(&self) -> Actor {
        self.0.actor()
    }
}

impl<S, R> FromRequestParts<S> for Can<R>
where
    S: Send + Sync,
    AppState: FromRef<S>,
    R: Requirement + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require(R::PERMISSION)?;
        Ok(Can(caller, std::marker::PhantomData))
    }
}

/// The authenticated caller. Extracting it answers 401 for a missing, malformed, unknown or
/// revoked token.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl Caller {
    /// Refuses with 403 unless the caller's role has `permission`.
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        if permission.allows(self.0.role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "role '{}' may not do this ({permission:?} is required)",
                self.0.role
            )))
        }
    }

    /// The caller as the audit log's actor.
    pub fn actor(&self) -> Actor {
        self.0.actor()
    }
}

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            ApiError::unauthenticated("missing 'Authorization: Bearer <token>' header")
        })?;
        let secret = header
            .to_str()
            .ok()
            .and_then(bearer_or_basic_secret)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ApiError::unauthenticated("the Authorization header must be 'Bearer <token>'")
            })?;
        let state = AppState::from_ref(state);
        match state.store.authenticate(&secret).await? {
            Some(principal) => Ok(Caller(principal)),
            None => Err(ApiError::unauthenticated("invalid or revoked token")),
        }
    }
}

/// The token of an `Authorization` header: `Bearer <token>`, or `Basic` with the token as the
/// password (what MLflow's client sends when `MLFLOW_TRACKING_USERNAME` and
/// `MLFLOW_TRACKING_PASSWORD` are set; the user name is not checked).
fn bearer_or_basic_secret(header: &str) -> Option<String> {
    use base64::Engine;
    let (scheme, rest) = header.trim().split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.trim().to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        return text
            .split_once(':')
            .map(|(_, password)| password.to_string());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_as_bearer_or_as_a_basic_password() {
        assert_eq!(bearer_or_basic_secret("Bearer abc").as_deref(), Some("abc"));
        assert_eq!(
            bearer_or_basic_secret("bearer  abc ").as_deref(),
            Some("abc")
        );
        // base64("ada:refit_secret")
        assert_eq!(
            bearer_or_basic_secret("Basic YWRhOnJlZml0X3NlY3JldA==").as_deref(),
            Some("refit_secret")
        );
        assert_eq!(bearer_or_basic_secret("Basic !!!"), None);
        assert_eq!(bearer_or_basic_secret("Token abc"), None);
        assert_eq!(bearer_or_basic_secret("Bearer"), None);
    }

    #[test]
    fn only_admins_manage_tokens_and_ingest_only_sends_data() {
        for role in Role::ALL {
            assert_eq!(Permission::ManageTokens.allows(role), role == Role::Admin);
            assert_eq!(
                Permission::Ingest.allows(role),
                matches!(role, Role::Admin | Role::Ingest)
            );
            if role == Role::Ingest {
                for p in [
                    Permission::ReadData,
                    Permission::WriteData,
                    Permission::ReadExperiments,
                    Permission::WriteExperiments,
                    Permission::ReadModels,
                    Permission::WriteModels,
                    Permission::ReadAudit,
                ] {
                    assert!(!p.allows(role), "{p:?}");
                }
            }
        }
    }
}
