//! The audit log: one append-only row for every state-changing call, written in the same
//! transaction as the change so that neither can exist without the other.

use serde::Serialize;
use sqlx::{AnyConnection, Row};
use utoipa::ToSchema;

use crate::db::{Store, now_ms};
use crate::error::Result;
use crate::sql::Sql;

/// Who is acting: a token's holder, or refit's own automation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The token's name, or `automation:<component>`.
    pub name: String,
}

impl Actor {
    /// An actor with the given name.
    pub fn new(name: impl Into<String>) -> Self {
        Actor { name: name.into() }
    }

    /// refit itself, e.g. `Actor::automation("scheduler")`.
    pub fn automation(component: &str) -> Self {
        Actor {
            name: format!("automation:{component}"),
        }
    }
}

/// One entry of the audit log.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditEntry {
    /// Position in the log; increases with every entry.
    pub id: i64,
    /// When, in milliseconds since the Unix epoch.
    pub at: i64,
    /// Who: a token name or `automation:<component>`.
    pub actor: String,
    /// What, e.g. `runs.log_batch`.
    pub action: String,
    /// On what, e.g. `run:6f1c…` or `model:churn/3`.
    pub target: String,
    /// Further detail, when the action has any worth keeping.
    pub detail: Option<String>,
}

/// Appends an entry inside the caller's transaction.
pub(crate) async fn record(
    conn: &mut AnyConnection,
    actor: &Actor,
    action: &str,
    target: &str,
    detail: Option<&str>,
) -> Result<()> {
    entry(actor, action, target, detail).execute(conn).await?;
    Ok(())
}

/// The statement that appends an entry (`INSERT ... SELECT`, so that a condition can follow).
pub(crate) fn entry(actor: &Actor, action: &str, target: &str, detail: Option<&str>) -> Sql {
    let mut sql = Sql::new("INSERT INTO audit_log (at, actor, action, target, detail) SELECT ");
    sql.bind(now_ms())
        .push(", ")
        .bind(actor.name.as_str())
        .push(", ")
        .bind(action)
        .push(", ")
        .bind(target)
        .push(", ")
        .bind(detail);
    sql
}

/// An entry to append only if the run `run_uuid` is active, as a statement for a
/// [`crate::db::WriteConnection::transaction`]: it changes one row exactly when the run accepted
/// the write it describes.
pub(crate) fn record_if_run_active(
    actor: &Actor,
    action: &str,
    target: &str,
    detail: Option<&str>,
    run_uuid: &str,
) -> Sql {
    let mut sql = entry(actor, action, target, detail);
    sql.push(" WHERE EXISTS (SELECT 1 FROM runs WHERE run_uuid = ")
        .bind(run_uuid)
        .push(" AND lifecycle_stage = 'active')");
    sql
}

impl Store {
    /// The newest entries first, optionally only those before entry `before` and about `target`.
    pub async fn audit_log(
        &self,
        limit: i64,
        before: Option<i64>,
        target: Option<&str>,
    ) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT id, at, actor, action, target, detail FROM audit_log \
             WHERE ($1 IS NULL OR id < $1) AND ($2 IS NULL OR target = $2) \
             ORDER BY id DESC LIMIT $3",
        )
        .bind(before)
        .bind(target)
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.read)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(AuditEntry {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    target: r.try_get("target")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect()
    }
}
