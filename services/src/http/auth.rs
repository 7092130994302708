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
}

impl Permission {
    /// Whether `role` has this permission. The README's role matrix is this function.
    pub fn allows(self, role: Role) -> bool {
        use Permission::*;
        use Role::*;
        match self {
            ReadExperiments => matches!(role, Admin | Scientist | Operator),
            WriteExperiments => matches!(role, Admin | Scientist),
            ReadModels => matches!(role, Admin | Scientist | Operator | Consumer),
            WriteModels => matches!(role, Admin | Scientist),
            ReadAudit => matches!(role, Admin | Operator),
            ManageTokens => matches!(role, Admin),
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
        ManageTokens
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
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ApiError::unauthenticated("the Authorization header must be 'Bearer <token>'")
            })?;
        let state = AppState::from_ref(state);
        match state.store.authenticate(secret).await? {
            Some(principal) => Ok(Caller(principal)),
            None => Err(ApiError::unauthenticated("invalid or revoked token")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_admins_manage_tokens_and_ingest_reads_nothing_here() {
        for role in Role::ALL {
            assert_eq!(Permission::ManageTokens.allows(role), role == Role::Admin);
            if role == Role::Ingest {
                for p in [
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
