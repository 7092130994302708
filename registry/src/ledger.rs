//! The promotion ledger (append-only) and the operations that move a model's `champion` alias:
//! promotion, approval of a pending candidate, rejection, rollback — each one transaction with its
//! ledger entry. Pins block automatic promotion.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use utoipa::ToSchema;

use crate::audit::{self, Actor};
use crate::db::{Store, now_ms};
use crate::error::{Error, Result};
use crate::models::{load_version, set_alias_in_tx};

/// The alias of the serving model.
pub const CHAMPION: &str = "champion";
/// The alias of the champion before the last promotion, kept for rollback.
pub const PREVIOUS: &str = "previous";

/// A promotion decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The candidate passed the gate and became champion.
    Promoted,
    /// The candidate failed the gate.
    Rejected,
    /// The candidate passed; an operator must approve (manual mode, or the model is pinned).
    PendingApproval,
    /// An operator approved a pending candidate, which became champion.
    Approved,
    /// An operator refused a pending candidate.
    RejectedByOperator,
    /// The champion was moved back to an earlier version.
    RolledBack,
}

impl Decision {
    fn as_str(self) -> &'static str {
        match self {
            Decision::Promoted => "promoted",
            Decision::Rejected => "rejected",
            Decision::PendingApproval => "pending_approval",
            Decision::Approved => "approved",
            Decision::RejectedByOperator => "rejected_by_operator",
            Decision::RolledBack => "rolled_back",
        }
    }

    fn parse(s: &str) -> Result<Decision> {
        Ok(match s {
            "promoted" => Decision::Promoted,
            "rejected" => Decision::Rejected,
            "pending_approval" => Decision::PendingApproval,
            "approved" => Decision::Approved,
            "rejected_by_operator" => Decision::RejectedByOperator,
            "rolled_back" => Decision::RolledBack,
            other => {
                return Err(Error::Integrity(format!(
                    "unknown decision '{other}' in the ledger"
                )));
            }
        })
    }
}

/// The result of one gate check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GateCheck {
    /// What was checked, e.g. `f1 >= 0.6` or `f1 vs champion (higher is better, +0.01)`.
    pub check: String,
    /// Whether it passed.
    pub passed: bool,
    /// The values behind the verdict.
    pub detail: String,
}

/// A decision to record.
#[derive(Debug, Clone, Default)]
pub struct NewDecision {
    /// Registered model.
    pub model_name: String,
    /// What started it: `manual`, `cron`, `data_volume`, `drift`, `operator`.
    pub trigger: String,
    /// Spec that trained the candidate.
    pub spec_id: Option<i64>,
    /// Job that trained the candidate.
    pub job_id: Option<i64>,
    /// Candidate version.
    pub candidate_version: Option<i64>,
    /// Champion version the candidate was compared with.
    pub champion_version: Option<i64>,
    /// Candidate metrics on the holdout.
    pub candidate_metrics: Option<serde_json::Value>,
    /// Champion metrics on the same holdout.
    pub champion_metrics: Option<serde_json::Value>,
    /// Gate checks.
    pub checks: Vec<GateCheck>,
    /// Why (operator's reason, or a summary).
    pub reason: Option<String>,
    /// What caused it (e.g. `{"drift_report": 12}`).
    pub cause: Option<serde_json::Value>,
}

/// A ledger entry.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct LedgerEntry {
    /// Position in the ledger.
    pub id: i64,
    /// ms since the Unix epoch.
    pub at: i64,
    /// Registered model.
    pub model_name: String,
    /// The decision.
    pub decision: Decision,
    /// What started it.
    pub trigger: String,
    /// Who decided: a token name or `automation:<component>`.
    pub actor: String,
    /// Spec.
    pub spec_id: Option<i64>,
    /// Job.
    pub job_id: Option<i64>,
    /// Candidate version.
    pub candidate_version: Option<i64>,
    /// Champion version at the time.
    pub champion_version: Option<i64>,
    /// Candidate metrics on the holdout.
    #[schema(value_type = Option<Object>)]
    pub candidate_metrics: Option<serde_json::Value>,
    /// Champion metrics on the same holdout.
    #[schema(value_type = Option<Object>)]
    pub champion_metrics: Option<serde_json::Value>,
    /// Gate checks.
    pub checks: Vec<GateCheck>,
    /// Why.
    pub reason: Option<String>,
    /// What caused it.
    #[schema(value_type = Option<Object>)]
    pub cause: Option<serde_json::Value>,
    /// The pending entry this one resolves (approval or operator rejection).
    pub resolves: Option<i64>,
}

/// A model pin.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Pin {
    /// Registered model.
    pub model_name: String,
    /// Who pinned it.
    pub pinned_by: String,
    /// ms since the Unix epoch.
    pub pinned_at: i64,
    /// Why.
    pub reason: Option<String>,
}

fn json_column(row: &AnyRow, name: &str) -> Result<Option<serde_json::Value>> {
    let text: Option<String> = row.try_get(name)?;
    text.map(|t| serde_json::from_str(&t))
        .transpose()
        .map_err(|e| Error::Integrity(format!("ledger column {name} is unreadable: {e}")))
}

fn entry_from_row(row: &AnyRow) -> Result<LedgerEntry> {
    let checks = json_column(row, "checks")?
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| Error::Integrity(format!("ledger checks are unreadable: {e}")))?
        .unwrap_or_default();
    Ok(LedgerEntry {
        id: row.try_get("id")?,
        at: row.try_get("at")?,
        model_name: row.try_get("model_name")?,
        decision: Decision::parse(&row.try_get::<String, _>("decision")?)?,
        trigger: row.try_get("trigger")?,
        actor: row.try_get("actor")?,
        spec_id: row.try_get("spec_id")?,
        job_id: row.try_get("job_id")?,
        candidate_version: row.try_get("candidate_version")?,
        champion_version: row.try_get("champion_version")?,
        candidate_metrics: json_column(row, "candidate_metrics")?,
        champion_metrics: json_column(row, "champion_metrics")?,
        checks,
        reason: row.try_get("reason")?,
        cause: json_column(row, "cause")?,
        resolves: row.try_get("resolves")?,
    })
}

const LEDGER_COLUMNS: &str = "id, at, model_name, decision, trigger, actor, spec_id, job_id, candidate_version, \
     champion_version, candidate_metrics, champion_metrics, checks, reason, cause, resolves";

async fn append(
    conn: &mut AnyConnection,
    actor: &Actor,
    decision: Decision,
    d: &NewDecision,
    resolves: Option<i64>,
) -> Result<LedgerEntry> {
    let id: i64 = sqlx::query(
        "INSERT INTO promotion_ledger (at, model_name, decision, trigger, actor, spec_id, job_id, \
         candidate_version, champion_version, candidate_metrics, champion_metrics, checks, reason, cause, resolves) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id",
    )
    .bind(now_ms())
    .bind(&d.model_name)
    .bind(decision.as_str())
    .bind(&d.trigger)
    .bind(&actor.name)
    .bind(d.spec_id)
    .bind(d.job_id)
    .bind(d.candidate_version)
    .bind(d.champion_version)
    .bind(d.candidate_metrics.as_ref().map(|m| m.to_string()))
    .bind(d.champion_metrics.as_ref().map(|m| m.to_string()))
    .bind(serde_json::to_string(&d.checks).expect("checks serialize"))
    .bind(d.reason.as_deref())
    .bind(d.cause.as_ref().map(|c| c.to_string()))
    .bind(resolves)
    .fetch_one(&mut *conn)
    .await?
    .try_get("id")?;
    audit::record(
        conn,
        actor,
        &format!("ledger.{}", decision.as_str()),
        &format!("model:{}", d.model_name),
        Some(&format!("ledger entry {id}")),
    )
    .await?;
    load_entry(conn, id).await
}

async fn load_entry(conn: &mut AnyConnection, id: i64) -> Result<LedgerEntry> {
    let sql = format!("SELECT {LEDGER_COLUMNS} FROM promotion_ledger WHERE id = ");
    let mut q = crate::sql::Sql::new(&sql);
    q.bind(id);
    q.fetch_all(conn)
        .await?
        .first()
        .map(entry_from_row)
        .transpose()?
        .ok_or_else(|| Error::not_found(format!("No ledger entry {id}")))
}

/// The version an alias points at, if it is set.
async fn alias_version(conn: &mut AnyConnection, model: &str, alias: &str) -> Result<Option<i64>> {
    Ok(
        sqlx::query("SELECT version FROM registered_model_aliases WHERE name = $1 AND alias = $2")
            .bind(model)
            .bind(alias)
            .fetch_optional(conn)
            .await?
            .map(|r| r.try_get("version"))
            .transpose()?,
    )
}

/// Moves `champion` to `version`, keeping the old champion as `previous`.
async fn move_champion(conn: &mut AnyConnection, model: &str, version: i64) -> Result<Option<i64>> {
    load_version(conn, model, version).await?;
    let old = alias_version(conn, model, CHAMPION).await?;
    if let Some(old) = old
        && old != version
    {
        set_alias_in_tx(conn, model, PREVIOUS, old).await?;
    }
    set_alias_in_tx(conn, model, CHAMPION, version).await?;
    sqlx::query("UPDATE registered_models SET last_updated_time = $1 WHERE name = $2")
        .bind(now_ms())
        .bind(model)
        .execute(conn)
        .await?;
    Ok(old)
}

impl Store {
    /// The version a model's champion alias points at, if any.
    pub async fn champion_version(&self, model: &str) -> Result<Option<i64>> {
        let mut conn = self.read.acquire().await?;
        alias_version(&mut conn, model, CHAMPION).await
    }

    /// Records a decision that moves no alias (`rejected`, `pending_approval`).
    pub async fn record_decision(
        &self,
        actor: &Actor,
        decision: Decision,
        d: &NewDecision,
    ) -> Result<LedgerEntry> {
        if matches!(
            decision,
            Decision::Promoted | Decision::Approved | Decision::RolledBack
        ) {
            return Err(Error::invalid(
                "that decision moves the champion: use promote or rollback",
            ));
        }
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        let entry = append(&mut tx, actor, decision, d, None).await?;
        tx.commit().await?;
        Ok(entry)
    }

    /// Promotes `d.candidate_version` in one transaction: `champion` moves to it, the old champion
    /// becomes `previous`, and the `promoted` entry is appended. Refused if the champion is no
    /// longer `d.champion_version` (someone moved it while the candidate was evaluated).
    pub async fn promote(&self, actor: &Actor, d: &NewDecision) -> Result<LedgerEntry> {
        let version = d
            .candidate_version
            .ok_or_else(|| Error::invalid("a promotion needs a candidate version"))?;
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        let current = alias_version(&mut tx, &d.model_name, CHAMPION).await?;
        if current != d.champion_version {
            return Err(Error::InvalidState(format!(
                "the champion of '{}' moved from {:?} to {:?} while the candidate was evaluated",
                d.model_name, d.champion_version, current
            )));
        }
        move_champion(&mut tx, &d.model_name, version).await?;
        let entry = append(&mut tx, actor, Decision::Promoted, d, None).await?;
        tx.commit().await?;
        self.aliases_changed();
        Ok(entry)
    }

    /// Pending decisions no operator has resolved yet, oldest first.
    pub async fn pending_approvals(&self, model: Option<&str>) -> Result<Vec<LedgerEntry>> {
        let sql = format!(
            "SELECT {LEDGER_COLUMNS} FROM promotion_ledger p WHERE decision = 'pending_approval' \
             AND NOT EXISTS (SELECT 1 FROM promotion_ledger r WHERE r.resolves = p.id) \
             AND ($1 IS NULL OR model_name = $1) ORDER BY id"
        );
        let mut conn = self.read.acquire().await?;
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(model)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(entry_from_row)
            .collect()
    }

    /// Approves a pending candidate: it becomes champion, in one transaction with the entry.
    pub async fn approve(
        &self,
        actor: &Actor,
        pending_id: i64,
        reason: Option<&str>,
    ) -> Result<LedgerEntry> {
        self.resolve(actor, pending_id, Decision::Approved, reason)
            .await
    }

    /// Refuses a pending candidate, with a reason.
    pub async fn reject_pending(
        &self,
        actor: &Actor,
        pending_id: i64,
        reason: &str,
    ) -> Result<LedgerEntry> {
        if reason.trim().is_empty() {
            return Err(Error::invalid("a rejection needs a reason"));
        }
        self.resolve(
            actor,
            pending_id,
            Decision::RejectedByOperator,
            Some(reason),
        )
        .await
    }

    async fn resolve(
        &self,
        actor: &Actor,
        pending_id: i64,
        decision: Decision,
        reason: Option<&str>,
    ) -> Result<LedgerEntry> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        let pending = load_entry(&mut tx, pending_id).await?;
        if pending.decision != Decision::PendingApproval {
            return Err(Error::invalid(format!(
                "ledger entry {pending_id} is '{}', not a pending approval",
                pending.decision.as_str()
            )));
        }
        let resolved: Option<i64> =
            sqlx::query("SELECT id FROM promotion_ledger WHERE resolves = $1")
                .bind(pending_id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get("id"))
                .transpose()?;
        if let Some(by) = resolved {
            return Err(Error::InvalidState(format!(
                "pending approval {pending_id} was already resolved by ledger entry {by}"
            )));
        }
        let champion = alias_version(&mut tx, &pending.model_name, CHAMPION).await?;
        let d = NewDecision {
            model_name: pending.model_name.clone(),
            trigger: "operator".into(),
            spec_id: pending.spec_id,
            job_id: pending.job_id,
            candidate_version: pending.candidate_version,
            champion_version: champion,
            candidate_metrics: pending.candidate_metrics.clone(),
            champion_metrics: pending.champion_metrics.clone(),
            checks: pending.checks.clone(),
            reason: reason.map(str::to_string),
            cause: None,
        };
        if decision == Decision::Approved {
            let version = pending.candidate_version.ok_or_else(|| {
                Error::Integrity(format!("pending entry {pending_id} names no candidate"))
            })?;
            move_champion(&mut tx, &pending.model_name, version).await?;
        }
        let entry = append(&mut tx, actor, decision, &d, Some(pending_id)).await?;
        tx.commit().await?;
        self.aliases_changed();
        Ok(entry)
    }

    /// Moves the champion back: to `to_version`, or else to the `previous` alias. The version
    /// rolled back from becomes `previous`.
    pub async fn rollback(
        &self,
        actor: &Actor,
        model: &str,
        to_version: Option<i64>,
        reason: Option<&str>,
        trigger: &str,
        cause: Option<serde_json::Value>,
    ) -> Result<LedgerEntry> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        let champion = alias_version(&mut tx, model, CHAMPION)
            .await?
            .ok_or_else(|| {
                Error::InvalidState(format!("model '{model}' has no champion to roll back"))
            })?;
        let target = match to_version {
            Some(v) => v,
            None => alias_version(&mut tx, model, PREVIOUS)
                .await?
                .ok_or_else(|| {
                    Error::InvalidState(format!(
                        "model '{model}' has no previous champion; name a version"
                    ))
                })?,
        };
        if target == champion {
            return Err(Error::invalid(format!(
                "version {target} is already the champion"
            )));
        }
        move_champion(&mut tx, model, target).await?;
        let d = NewDecision {
            model_name: model.to_string(),
            trigger: trigger.to_string(),
            candidate_version: Some(target),
            champion_version: Some(champion),
            reason: reason.map(str::to_string),
            cause,
            ..Default::default()
        };
        let entry = append(&mut tx, actor, Decision::RolledBack, &d, None).await?;
        tx.commit().await?;
        self.aliases_changed();
        Ok(entry)
    }

    /// The ledger, newest first; one model's when `model` is given.
    pub async fn ledger(
        &self,
        model: Option<&str>,
        limit: i64,
        before: Option<i64>,
    ) -> Result<Vec<LedgerEntry>> {
        let sql = format!(
            "SELECT {LEDGER_COLUMNS} FROM promotion_ledger WHERE ($1 IS NULL OR model_name = $1) \
             AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
        );
        let mut conn = self.read.acquire().await?;
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(model)
            .bind(before)
            .bind(limit.clamp(1, 1000))
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(entry_from_row)
            .collect()
    }

    /// One ledger entry.
    pub async fn ledger_entry(&self, id: i64) -> Result<LedgerEntry> {
        let mut conn = self.read.acquire().await?;
        load_entry(&mut conn, id).await
    }

    /// Pins a model: automatic promotion stops (passing candidates wait for approval).
    pub async fn pin_model(&self, actor: &Actor, model: &str, reason: Option<&str>) -> Result<Pin> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        crate::models::load_model(&mut tx, model).await?;
        let now = now_ms();
        sqlx::query(
            "INSERT INTO model_pins (model_name, pinned_by, pinned_at, reason) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (model_name) DO UPDATE SET pinned_by = excluded.pinned_by, \
             pinned_at = excluded.pinned_at, reason = excluded.reason",
        )
        .bind(model)
        .bind(&actor.name)
        .bind(now)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
        audit::record(
            &mut tx,
            actor,
            "models.pin",
            &format!("model:{model}"),
            reason,
        )
        .await?;
        tx.commit().await?;
        Ok(Pin {
            model_name: model.to_string(),
            pinned_by: actor.name.clone(),
            pinned_at: now,
            reason: reason.map(str::to_string),
        })
    }

    /// Removes a model's pin.
    pub async fn unpin_model(&self, actor: &Actor, model: &str) -> Result<()> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        let n = sqlx::query("DELETE FROM model_pins WHERE model_name = $1")
            .bind(model)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(Error::not_found(format!("model '{model}' is not pinned")));
        }
        audit::record(
            &mut tx,
            actor,
            "models.unpin",
            &format!("model:{model}"),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The pin on a model, if any.
    pub async fn model_pin(&self, model: &str) -> Result<Option<Pin>> {
        sqlx::query(
            "SELECT model_name, pinned_by, pinned_at, reason FROM model_pins WHERE model_name = $1",
        )
        .bind(model)
        .fetch_optional(&self.read)
        .await?
        .map(|r| {
            Ok(Pin {
                model_name: r.try_get("model_name")?,
                pinned_by: r.try_get("pinned_by")?,
                pinned_at: r.try_get("pinned_at")?,
                reason: r.try_get("reason")?,
            })
        })
        .transpose()
    }
}
