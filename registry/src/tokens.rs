//! API tokens: random secrets shown once, stored only as their sha256, each carrying a role.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyRow;
use utoipa::ToSchema;

use crate::audit::{self, Actor};
use crate::db::{Store, now_ms};
use crate::error::{Error, Result, is_unique_violation};

/// What a token's holder may do. See the role matrix in the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including managing tokens.
    Admin,
    /// Experiments, runs, artifacts, models and (later) training specs.
    Scientist,
    /// Reviews models: reads everything, approves, rejects, rolls back, pins.
    Operator,
    /// Reads models, scores and reports.
    Consumer,
    /// Sends machine readings and labels.
    Ingest,
}

impl Role {
    /// Every role, in the order the README's matrix lists them.
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Scientist,
        Role::Operator,
        Role::Consumer,
        Role::Ingest,
    ];

    /// The role's name as stored and as written in requests.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Scientist => "scientist",
            Role::Operator => "operator",
            Role::Consumer => "consumer",
            Role::Ingest => "ingest",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Error;

    fn from_str(s: &str) -> Result<Role> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "unknown role '{s}': expected one of admin, scientist, operator, consumer, ingest"
                ))
            })
    }
}

/// A token as listed: never includes the secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiToken {
    /// Stable identifier.
    pub id: i64,
    /// Unique, human-chosen name; it is the actor named in the audit log.
    pub name: String,
    /// What the token may do.
    pub role: Role,
    /// Creation time, ms since the Unix epoch.
    pub created_at: i64,
    /// Who created it.
    pub created_by: String,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
}

/// The holder of a valid token, as seen by the API layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's id.
    pub token_id: i64,
    /// The token's name.
    pub name: String,
    /// The token's role.
    pub role: Role,
}

impl Principal {
    /// The actor recorded in the audit log for this principal's calls.
    pub fn actor(&self) -> Actor {
        Actor::new(self.name.clone())
    }
}

/// A newly created token with its secret, which is never stored and never shown again.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedToken {
    /// The stored token.
    #[serde(flatten)]
    pub token: ApiToken,
    /// The bearer secret: `refit_` followed by 43 base64url characters.
    pub secret: String,
}

const SECRET_PREFIX: &str = "refit_";

fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

fn token_from_row(row: &AnyRow) -> Result<ApiToken> {
    Ok(ApiToken {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: row.try_get::<String, _>("role")?.parse()?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

fn validate_token_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "invalid token name '{name}': use 1-64 characters from A-Z a-z 0-9 - _ . @"
        )))
    }
}

impl Store {
    /// Creates a token and returns it with its secret.
    #[tracing::instrument(skip(self, actor))]
    pub async fn create_token(
        &self,
        actor: &Actor,
        name: &str,
        role: Role,
    ) -> Result<CreatedToken> {
        validate_token_name(name)?;
        let secret = new_secret();
        let now = now_ms();
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        let row = sqlx::query(
            "INSERT INTO api_tokens (name, role, token_hash, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5) \
             RETURNING id, name, role, created_at, created_by, revoked_at",
        )
        .bind(name)
        .bind(role.as_str())
        .bind(hash_secret(&secret))
        .bind(now)
        .bind(&actor.name)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::AlreadyExists(format!("a token named '{name}' already exists"))
            } else {
                e.into()
            }
        })?;
        let token = token_from_row(&row)?;
        audit::record(
            &mut tx,
            actor,
            "tokens.create",
            &format!("token:{name}"),
            Some(role.as_str()),
        )
        .await?;
        tx.commit().await?;
        Ok(CreatedToken { token, secret })
    }

    /// All tokens, revoked ones included, oldest first.
    pub async fn list_tokens(&self) -> Result<Vec<ApiToken>> {
        let rows = sqlx::query(
            "SELECT id, name, role, created_at, created_by, revoked_at FROM api_tokens ORDER BY id",
        )
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    /// Whether any token exists at all (a first start creates the admin token when none does).
    pub async fn has_tokens(&self) -> Result<bool> {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM api_tokens")
            .fetch_one(&self.read)
            .await?
            .try_get("n")?;
        Ok(n > 0)
    }

    /// Revokes the token with this id or name; a token named `id_or_name` wins over one with that
    /// id. Revoking twice is an error naming the first time.
    #[tracing::instrument(skip(self, actor))]
    pub async fn revoke_token(&self, actor: &Actor, id_or_name: &str) -> Result<ApiToken> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        let row = sqlx::query(
            "SELECT id, name, role, created_at, created_by, revoked_at FROM api_tokens \
             WHERE name = $1 OR CAST(id AS TEXT) = $1 \
             ORDER BY CASE WHEN name = $1 THEN 0 ELSE 1 END LIMIT 1",
        )
        .bind(id_or_name)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| Error::not_found(format!("no token with id or name '{id_or_name}'")))?;
        let mut token = token_from_row(&row)?;
        if token.revoked_at.is_some() {
            return Err(Error::InvalidState(format!(
                "token '{}' is already revoked",
                token.name
            )));
        }
        let now = now_ms();
        sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2")
            .bind(now)
            .bind(token.id)
            .execute(&mut *tx)
            .await?;
        audit::record(
            &mut tx,
            actor,
            "tokens.revoke",
            &format!("token:{}", token.name),
            None,
        )
        .await?;
        tx.commit().await?;
        self.tokens.forget(token.id);
        token.revoked_at = Some(now);
        Ok(token)
    }

    /// The holder of `secret`, if it is a token that exists and is not revoked.
    ///
    /// Valid tokens are remembered for [`TOKEN_CACHE_TTL`], so most requests skip the database. A
    /// token revoked through this store stops working at once; one revoked by another process
    /// (the CLI, another replica) within the TTL.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<Principal>> {
        if !secret.starts_with(SECRET_PREFIX) {
            return Ok(None);
        }
        let hash = hash_secret(secret);
        if let Some(principal) = self.tokens.get(&hash) {
            return Ok(Some(principal));
        }
        let row = sqlx::query(
            "SELECT id, name, role FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
        )
        .bind(&hash)
        .fetch_optional(&self.read)
        .await?;
        let principal = row
            .map(|r| {
                Ok::<_, Error>(Principal {
                    token_id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    role: r.try_get::<String, _>("role")?.parse()?,
                })
            })
            .transpose()?;
        // Only valid tokens are remembered: unknown ones would let anyone fill the cache.
        if let Some(p) = &principal {
            self.tokens.remember(hash, p.clone());
        }
        Ok(principal)
    }
}

/// How long a validated token is trusted without asking the database again.
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(2);

/// Recently validated tokens, by the sha256 of their secret.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    entries: Mutex<HashMap<String, (Principal, Instant)>>,
}

impl TokenCache {
    /// Most tokens remembered at once; beyond it the cache starts over.
    const CAPACITY: usize = 10_000;

    fn get(&self, hash: &str) -> Option<Principal> {
        let entries = self
            .entries
            .lock()
            .expect("token cache lock is never poisoned");
        entries
            .get(hash)
            .filter(|(_, at)| at.elapsed() < TOKEN_CACHE_TTL)
            .map(|(p, _)| p.clone())
    }

    fn remember(&self, hash: String, principal: Principal) {
        let mut entries = self
            .entries
            .lock()
            .expect("token cache lock is never poisoned");
        if entries.len() >= Self::CAPACITY {
            entries.clear();
        }
        entries.insert(hash, (principal, Instant::now()));
    }

    fn forget(&self, token_id: i64) {
        let mut entries = self
            .entries
            .lock()
            .expect("token cache lock is never poisoned");
        entries.retain(|_, (p, _)| p.token_id != token_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_random_and_hash_stably() {
        let (a, b) = (new_secret(), new_secret());
        assert!(a.starts_with("refit_"));
        assert_eq!(a.len(), "refit_".len() + 43);
        assert_ne!(a, b);
        assert_eq!(hash_secret(&a), hash_secret(&a));
        assert_ne!(hash_secret(&a), hash_secret(&b));
        assert_eq!(hash_secret(&a).len(), 64);
    }

    #[test]
    fn roles_round_trip_and_unknown_roles_are_refused() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        let err = "root".parse::<Role>().unwrap_err();
        assert!(err.to_string().contains("unknown role 'root'"), "{err}");
    }

    #[test]
    fn token_names_are_checked() {
        assert!(validate_token_name("alice@example.com").is_ok());
        assert!(validate_token_name("").is_err());
        assert!(validate_token_name("has space").is_err());
        assert!(validate_token_name(&"x".repeat(65)).is_err());
    }
}
