//! The drift trigger: a stored drift report may queue a training of the specs that produce its
//! model on its dataset.
//!
//! A spec with `triggers.drift = {consecutive: K, cooldown_secs: C}` is queued (trigger `drift`)
//! when, after a stream report is stored:
//! 1. the K newest stream reports of the spec's model on the spec's dataset (any version) all show
//!    dataset drift;
//! 2. none of them counted towards an earlier drift-triggered training of the spec (all are newer
//!    than the report that caused it), so one streak queues one training;
//! 3. at least C seconds passed since the spec's last drift-triggered job was queued;
//! 4. the spec is enabled and has no job queued or running.
//!
//! The job's `trigger_detail` is JSON naming the report that completed the streak and the whole
//! streak (`{"drift_report": id, "drift_reports": [...], "consecutive": K}`), and the ledger
//! entry of the training's decision carries it as its `cause` (see [`ledger_cause`]).

use refit_registry::Store;
use refit_registry::db::now_ms;
use refit_registry::drift::{DriftReport, ReportFilter, ReportSource};
use refit_registry::training::{Job, Triggered};
use serde_json::{Value, json};

use crate::spec::TrainingSpec;
use crate::trainer::trainer_actor;

/// The trigger name of drift-triggered jobs.
pub const DRIFT_TRIGGER: &str = "drift";

/// Evaluates the drift triggers of every spec that `report` concerns; returns the jobs queued.
/// The stream pipeline (through [`refit_scorer::monitoring::DriftMonitors`]'s hook) calls this
/// with each stored stream report; the scheduler's trigger loop also calls it with the newest
/// report of each model, so that a trigger is not missed if the hook's call failed.
pub async fn on_drift_report(
    store: &Store,
    report: &DriftReport,
) -> Result<Vec<Job>, refit_registry::Error> {
    let r = &report.report;
    if r.source != ReportSource::Stream || !r.dataset_drift {
        return Ok(Vec::new());
    }
    let mut queued = Vec::new();
    for stored in store.list_specs().await? {
        if !stored.enabled || stored.model_name != r.model || stored.dataset != r.dataset {
            continue;
        }
        let Ok(spec) = serde_json::from_value::<TrainingSpec>(stored.definition.clone()) else {
            continue;
        };
        let Some(trigger) = spec.triggers.drift else {
            continue;
        };
        let k = i64::from(trigger.consecutive.max(1));
        let streak = store
            .list_drift_reports(&ReportFilter {
                model: Some(&r.model),
                dataset: Some(&r.dataset),
                source: Some(ReportSource::Stream),
                limit: k,
                ..Default::default()
            })
            .await?;
        if (streak.len() as i64) < k || !streak.iter().all(|s| s.report.dataset_drift) {
            continue;
        }
        let now = now_ms();
        if let Some(last) = store
            .last_job_with_trigger(stored.id, DRIFT_TRIGGER)
            .await?
        {
            if now - last.created_at < (trigger.cooldown_secs as i64).saturating_mul(1000) {
                tracing::info!(
                    spec = stored.name,
                    report = report.id,
                    "drift streak within the drift trigger's cooldown; not queued"
                );
                continue;
            }
            let counted = last
                .trigger_detail
                .as_deref()
                .and_then(|d| serde_json::from_str::<Value>(d).ok())
                .and_then(|d| d["drift_report"].as_i64())
                .unwrap_or(0);
            if streak.iter().any(|s| s.id <= counted) {
                continue;
            }
        }
        let ids: Vec<i64> = streak.iter().rev().map(|s| s.id).collect();
        let detail = json!({
            "drift_report": streak[0].id,
            "drift_reports": ids,
            "consecutive": k,
        })
        .to_string();
        let actor = trainer_actor();
        let Triggered::Queued(job) = store
            .queue_triggered_job(&actor, stored.id, now, DRIFT_TRIGGER, Some(&detail))
            .await?
        else {
            continue;
        };
        tracing::info!(
            job = job.id,
            spec = stored.name,
            report = report.id,
            "drift queued a training"
        );
        queued.push(*job);
    }
    Ok(queued)
}

/// Evaluates the drift triggers against the newest stream report of every model that has a
/// spec with a drift trigger (the scheduler's safety net beside the pipeline's hook).
pub async fn check_drift_triggers(store: &Store) -> Result<Vec<Job>, refit_registry::Error> {
    let mut queued = Vec::new();
    for stored in store.list_specs().await? {
        let has_trigger = serde_json::from_value::<TrainingSpec>(stored.definition.clone())
            .is_ok_and(|s| s.triggers.drift.is_some());
        if !stored.enabled || !has_trigger {
            continue;
        }
        let newest = store
            .list_drift_reports(&ReportFilter {
                model: Some(&stored.model_name),
                dataset: Some(&stored.dataset),
                source: Some(ReportSource::Stream),
                limit: 1,
                ..Default::default()
            })
            .await?;
        if let Some(report) = newest.first() {
            queued.extend(on_drift_report(store, report).await?);
        }
    }
    Ok(queued)
}

/// The `cause` of a training's ledger entry: `{"trigger_detail": ...}`, and for a drift-triggered
/// training also the drift report that completed the streak and the streak's reports.
pub fn ledger_cause(trigger: &str, detail: Option<&str>) -> Option<Value> {
    let detail = detail?;
    let mut cause = json!({ "trigger_detail": detail });
    if trigger == DRIFT_TRIGGER
        && let Ok(parsed) = serde_json::from_str::<Value>(detail)
    {
        cause["drift_report"] = parsed["drift_report"].clone();
        cause["drift_reports"] = parsed["drift_reports"].clone();
    }
    Some(cause)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_causes_name_the_report() {
        let detail = r#"{"drift_report": 7, "drift_reports": [5, 6, 7], "consecutive": 3}"#;
        let cause = ledger_cause("drift", Some(detail)).unwrap();
        assert_eq!(cause["drift_report"], 7);
        assert_eq!(cause["drift_reports"], json!([5, 6, 7]));
        assert_eq!(cause["trigger_detail"], detail);
        assert_eq!(
            ledger_cause("data_volume", Some("9 new rows")),
            Some(json!({"trigger_detail": "9 new rows"}))
        );
        assert_eq!(ledger_cause("manual", None), None);
    }
}
