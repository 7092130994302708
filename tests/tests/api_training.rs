//! The retraining loop over HTTP, on the AI4I 2020 readings: a gateway sends them, a scientist
//! writes training specs, jobs train, the gate decides, the ledger records, operators approve,
//! reject, roll back and pin; schedules and the data-volume trigger start trainings on their own;
//! two processes on one PostgreSQL never run a job twice; bad specs and unusable data are refused
//! with the field named, never with a 5xx. Every test runs on SQLite and on PostgreSQL (the
//! two-process one on PostgreSQL only).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

mod ai4i_support;

use ai4i_support::{Client, Crew, FEATURES, JOB_TIMEOUT, model_file, ndjson};
use refit_tests::{Db, expect_error, expect_json, on_both_databases, spawn_app, spawn_app_beside};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

on_both_databases!(
    ai4i_trains_promotes_with_lineage_retrains_identically_and_gates_new_data,
    operators_approve_reject_roll_back_and_pin,
    schedules_start_trainings_until_the_spec_is_disabled,
    new_readings_start_a_training_once_there_are_enough,
    bad_specs_are_refused_naming_the_field,
    unusable_data_fails_or_is_rejected_without_a_champion,
    a_failing_fit_fails_its_grid_run,
);

/// Polls until `done` holds for the spec's jobs, or panics after `limit`.
async fn wait_jobs(
    crew: &Crew<'_>,
    spec: &str,
    limit: Duration,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let jobs = crew.jobs(spec).await;
        if done(&jobs) {
            return jobs;
        }
        assert!(
            start.elapsed() < limit,
            "{what}: not within {limit:?}; jobs: {jobs:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn idle(jobs: &[Value]) -> bool {
    jobs.iter()
        .all(|j| j["status"] == "succeeded" || j["status"] == "failed")
}

/// A binary spec predicting `Machine failure` from AI4I's features with logistic regression over
/// a two-point grid, the last 20% held out, promoted when its ROC AUC is at least 0.6.
fn failure_spec(name: &str, dataset: &str) -> Value {
    json!({
        "name": name,
        "dataset": dataset,
        "task": "binary",
        "target": "Machine failure",
        "features": FEATURES,
        "algorithm": "logistic_regression",
        "grid": {"alpha": [0.1, 1.0]},
        "holdout": {"fraction": 0.2},
        "gate": {"bounds": [{"metric": "roc_auc", "min": 0.6}]},
    })
}

/// A spec that trains in a blink: Gaussian naive Bayes, no grid.
fn quick_spec(name: &str, dataset: &str) -> Value {
    json!({
        "name": name,
        "dataset": dataset,
        "task": "binary",
        "target": "Machine failure",
        "features": FEATURES,
        "algorithm": "gaussian_nb",
        "holdout": {"fraction": 0.2},
    })
}

/// The value of tag `key` in a list of `{key, value}`.
fn tag<'v>(tags: &'v Value, key: &str) -> Option<&'v str> {
    tags.as_array()
        .unwrap()
        .iter()
        .find(|t| t["key"] == key)
        .map(|t| t["value"].as_str().unwrap())
}

/// A run's params as a map.
fn params(run: &Value) -> BTreeMap<String, String> {
    run["data"]["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["key"].as_str().unwrap().to_string(),
                p["value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A run's latest metrics as a map.
fn metrics(run: &Value) -> BTreeMap<String, f64> {
    run["data"]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["key"].as_str().unwrap().to_string(),
                m["value"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// Downloads a run's model file; returns its bytes' sha256 and the `x-content-sha256` header.
async fn model_file_sha256(client: &Client<'_>, run_id: &str) -> (String, String) {
    let (bytes, header) = model_file(client, run_id).await;
    let model: Value = serde_json::from_slice(&bytes).expect("the model file is JSON");
    assert!(model.is_object(), "{model}");
    (hex::encode(Sha256::digest(&bytes)), header)
}

/// The whole loop on AI4I: the first 6,000 readings train a first champion whose lineage is
/// checked end to end; retraining the same data gives the same model bytes; the last 4,000
/// readings arrive, a gate that cannot pass rejects, one that passes promotes and keeps the old
/// champion as `previous`.
async fn ai4i_trains_promotes_with_lineage_retrains_identically_and_gates_new_data(db: Db) {
    let app = spawn_app(db).await;
    let crew = Crew::new(&app).await;
    crew.create_dataset("ai4i").await;
    assert_eq!(crew.ingest("ai4i", 1..=6000).await, 6000);

    let mut spec = failure_spec("ai4i-failure", "ai4i");
    let stored = crew.create_spec(&spec).await;
    assert_eq!(stored["name"], "ai4i-failure");
    assert_eq!(stored["model_name"], "ai4i-failure");
    assert_eq!(stored["enabled"], true);
    assert_eq!(stored["created_by"], "alice");
    assert_eq!(crew.alias("ai4i-failure", "champion").await, None);

    // 1. The first training promotes: there was no champion.
    let first = crew.train_ok("ai4i-failure").await;
    assert_eq!(first["decision"], "promoted", "{first}");
    assert_eq!(first["model"], "ai4i-failure");
    assert_eq!(first["candidate_version"], 1);
    assert_eq!(first["champion_version"], Value::Null);
    assert_eq!(first["champion_metrics"], Value::Null);
    // 6,000 readings, one per second: the last 20% by time is the holdout.
    assert_eq!(first["train_rows"], 4800);
    assert_eq!(first["holdout_rows"], 1200);
    let roc_auc = first["candidate_metrics"]["roc_auc"].as_f64().unwrap();
    assert!((0.6..=1.0).contains(&roc_auc), "{first}");

    let ledger = crew.ledger("ai4i-failure").await;
    assert_eq!(ledger.len(), 1, "{ledger:#?}");
    let entry = &ledger[0];
    assert_eq!(entry["id"], first["ledger_entry"]);
    assert_eq!(entry["decision"], "promoted");
    assert_eq!(entry["trigger"], "manual");
    assert_eq!(entry["actor"], "automation:trainer");
    assert_eq!(entry["spec_id"], stored["id"]);
    assert_eq!(entry["candidate_version"], 1);
    assert_eq!(entry["champion_version"], Value::Null);
    assert_eq!(entry["champion_metrics"], Value::Null);
    assert_eq!(entry["candidate_metrics"], first["candidate_metrics"]);
    assert_eq!(
        entry["candidate_metrics"]["roc_auc"].as_f64(),
        Some(roc_auc)
    );
    assert_eq!(
        entry["checks"],
        json!([
            {"check": "holdout rows >= 30", "passed": true, "detail": "1200 rows"},
            {"check": "roc_auc >= 0.6", "passed": true, "detail": format!("roc_auc = {roc_auc}")},
        ])
    );
    assert_eq!(crew.alias("ai4i-failure", "champion").await, Some(1));
    assert_eq!(crew.alias("ai4i-failure", "previous").await, None);

    // Lineage: the candidate run's params, holdout metrics and both snapshots as inputs.
    let run_id = first["run_id"].as_str().unwrap();
    let run = crew.oscar.get(&format!("/api/v1/runs/{run_id}")).await;
    assert_eq!(run["info"]["status"], "FINISHED");
    assert_eq!(run["info"]["run_name"], format!("job-{}", entry["job_id"]));
    let p = params(&run);
    assert_eq!(p["algorithm"], "logistic_regression");
    assert_eq!(p["task"], "binary");
    assert_eq!(p["dataset"], "ai4i");
    assert_eq!(p["target"], "Machine failure");
    assert_eq!(p["features"], FEATURES.join(","));
    assert_eq!(p["seed"], "42");
    assert_eq!(p["refit_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(p["train_rows"], "4800");
    assert_eq!(p["holdout_rows"], "1200");
    assert!(
        p["param.alpha"] == "0.1" || p["param.alpha"] == "1",
        "{p:?}"
    );
    let m = metrics(&run);
    assert_eq!(m["roc_auc"], roc_auc);
    for name in ["accuracy", "precision", "recall", "f1", "log_loss"] {
        assert_eq!(
            Some(m[name]),
            first["candidate_metrics"][name].as_f64(),
            "{name}"
        );
    }
    assert_eq!(tag(&run["data"]["tags"], "refit.role"), Some("candidate"));
    assert_eq!(tag(&run["data"]["tags"], "refit.trigger"), Some("manual"));
    let inputs = run["inputs"]["dataset_inputs"].as_array().unwrap();
    assert_eq!(inputs.len(), 2, "{inputs:#?}");
    let mut contexts = BTreeMap::new();
    for input in inputs {
        let context = tag(&input["tags"], "mlflow.data.context").unwrap();
        contexts.insert(context.to_string(), input["dataset"].clone());
    }
    let snapshots = [
        ("training", &first["train_snapshot"], 4800),
        ("evaluation", &first["holdout_snapshot"], 1200),
    ];
    for (context, id, rows) in snapshots {
        let input = &contexts[context];
        let snap = crew
            .oscar
            .get(&format!("/api/v1/datasets/ai4i/snapshots/{id}"))
            .await;
        assert_eq!(snap["row_count"], rows, "{snap}");
        assert_eq!(input["name"], "ai4i");
        assert_eq!(input["source_type"], "refit-snapshot");
        assert_eq!(input["digest"], snap["digest"], "{context}");
        let source: Value = serde_json::from_str(input["source"].as_str().unwrap()).unwrap();
        assert_eq!(source["snapshot_id"], *id);
        let verified = crew
            .oscar
            .get(&format!("/api/v1/datasets/ai4i/snapshots/{id}/verify"))
            .await;
        assert_eq!(verified["ok"], true, "{verified}");
        assert_eq!(verified["actual_digest"], snap["digest"]);
        assert_eq!(verified["actual_rows"], rows);
    }

    // The version carries the model file's digest, and the file is the run's artifact.
    let v1 = crew
        .oscar
        .get("/api/v1/models/ai4i-failure/versions/1")
        .await;
    assert_eq!(v1["run_id"], run_id);
    assert_eq!(v1["source"], format!("runs:/{run_id}/model"));
    let (sha, header) = model_file_sha256(&crew.oscar, run_id).await;
    assert_eq!(header, sha);
    assert_eq!(tag(&v1["tags"], "refit.model_sha256"), Some(sha.as_str()));
    assert_eq!(tag(&v1["tags"], "refit.decision"), Some("promoted"));
    assert_eq!(
        tag(&v1["tags"], "refit.algorithm"),
        Some("logistic_regression")
    );
    assert_eq!(
        tag(&v1["tags"], "refit.ledger_entry"),
        Some(entry["id"].to_string().as_str())
    );
    assert_eq!(
        tag(&v1["tags"], "refit.train_snapshot"),
        Some(first["train_snapshot"].to_string().as_str())
    );

    // One child run per grid point, tagged with its parent; the best one is named.
    let grid = first["grid"].as_array().unwrap();
    assert_eq!(grid.len(), 2, "{grid:#?}");
    let mut alphas = BTreeSet::new();
    for (i, point) in grid.iter().enumerate() {
        let child_id = point["run_id"].as_str().unwrap();
        let child = crew.oscar.get(&format!("/api/v1/runs/{child_id}")).await;
        assert_eq!(child["info"]["status"], "FINISHED");
        assert_eq!(
            child["info"]["run_name"],
            format!("job-{}-grid-{}", entry["job_id"], i + 1)
        );
        assert_eq!(
            tag(&child["data"]["tags"], "mlflow.parentRunId"),
            Some(run_id)
        );
        assert_eq!(tag(&child["data"]["tags"], "refit.role"), Some("grid"));
        let cp = params(&child);
        assert_eq!(cp["algorithm"], "logistic_regression");
        assert_eq!(cp["validation_rows"], "960");
        alphas.insert(cp["param.alpha"].clone());
        let cm = metrics(&child);
        assert_eq!(Some(cm["validation_f1"]), point["score"].as_f64());
        assert!(cm.contains_key("validation_roc_auc"), "{cm:?}");
    }
    assert_eq!(alphas, BTreeSet::from(["0.1".to_string(), "1".to_string()]));
    let best = tag(&run["data"]["tags"], "refit.best_grid_run").unwrap();
    assert!(grid.iter().any(|g| g["run_id"] == best));
    let experiment = crew
        .oscar
        .get("/api/v1/experiments/by-name/ai4i-failure")
        .await;
    let children = crew
        .oscar
        .post(
            "/api/v1/runs/search",
            json!({
                "experiment_ids": [experiment["experiment_id"]],
                "filter": format!("tags.\"mlflow.parentRunId\" = '{run_id}'"),
            }),
        )
        .await;
    assert_eq!(children["runs"].as_array().unwrap().len(), 2, "{children}");

    // 2. The same data again: a new version with the very same model bytes, promoted over an
    // identical champion (the same metrics on the same holdout).
    let second = crew.train_ok("ai4i-failure").await;
    assert_eq!(second["candidate_version"], 2);
    assert_eq!(second["champion_version"], 1);
    assert_eq!(second["decision"], "promoted");
    assert_eq!(second["candidate_metrics"], first["candidate_metrics"]);
    assert_eq!(second["champion_metrics"], first["candidate_metrics"]);
    assert_ne!(second["train_snapshot"], first["train_snapshot"]);
    for key in ["train_snapshot", "holdout_snapshot"] {
        let a = crew
            .oscar
            .get(&format!("/api/v1/datasets/ai4i/snapshots/{}", first[key]))
            .await;
        let b = crew
            .oscar
            .get(&format!("/api/v1/datasets/ai4i/snapshots/{}", second[key]))
            .await;
        assert_eq!(a["digest"], b["digest"], "{key}");
    }
    let v2 = crew
        .oscar
        .get("/api/v1/models/ai4i-failure/versions/2")
        .await;
    assert_eq!(
        tag(&v2["tags"], "refit.model_sha256"),
        tag(&v1["tags"], "refit.model_sha256")
    );
    let (sha2, _) = model_file_sha256(&crew.oscar, second["run_id"].as_str().unwrap()).await;
    assert_eq!(sha2, sha);
    assert_eq!(crew.alias("ai4i-failure", "champion").await, Some(2));
    assert_eq!(crew.alias("ai4i-failure", "previous").await, Some(1));

    // 3. The rest of the readings arrive. A gate that asks for 0.5 more ROC AUC than the
    // champion cannot pass: rejected, champion unchanged.
    assert_eq!(crew.ingest("ai4i", 6001..=10_000).await, 4000);
    spec["gate"]["versus_champion"] = json!({"metric": "roc_auc", "min_change": 0.5});
    crew.update_spec(&spec).await;
    let third = crew.train_ok("ai4i-failure").await;
    assert_eq!(third["decision"], "rejected", "{third}");
    assert_eq!(third["candidate_version"], 3);
    assert_eq!(third["champion_version"], 2);
    assert_eq!(third["train_rows"], 8000);
    assert_eq!(third["holdout_rows"], 2000);
    let entry = &crew.ledger("ai4i-failure").await[0];
    assert_eq!(entry["id"], third["ledger_entry"]);
    assert_eq!(entry["decision"], "rejected");
    assert_eq!(entry["champion_version"], 2);
    let checks = entry["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 3, "{entry}");
    let failing: Vec<&Value> = checks.iter().filter(|c| c["passed"] == false).collect();
    assert_eq!(failing.len(), 1, "{entry}");
    let failing = failing[0]["check"].as_str().unwrap();
    assert_eq!(
        failing,
        "roc_auc vs champion (higher is better, change >= +0.5)"
    );
    let reason = entry["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("failed: ") && reason.contains(failing),
        "{reason}"
    );
    // Both models were measured on the same, new holdout.
    let champion_auc = entry["champion_metrics"]["roc_auc"].as_f64().unwrap();
    let candidate_auc = entry["candidate_metrics"]["roc_auc"].as_f64().unwrap();
    assert!(
        checks[2]["detail"].as_str().unwrap().starts_with(&format!(
            "candidate {candidate_auc}, champion {champion_auc}"
        )),
        "{entry}"
    );
    assert_eq!(crew.alias("ai4i-failure", "champion").await, Some(2));
    let v3 = crew
        .oscar
        .get("/api/v1/models/ai4i-failure/versions/3")
        .await;
    assert_eq!(tag(&v3["tags"], "refit.decision"), Some("rejected"));

    // A gate that tolerates any loss passes: promoted, the old champion kept as `previous`.
    spec["gate"]["versus_champion"] = json!({"metric": "roc_auc", "min_change": -1.0});
    crew.update_spec(&spec).await;
    let fourth = crew.train_ok("ai4i-failure").await;
    assert_eq!(fourth["decision"], "promoted", "{fourth}");
    assert_eq!(fourth["candidate_version"], 4);
    assert_eq!(fourth["champion_version"], 2);
    assert_eq!(crew.alias("ai4i-failure", "champion").await, Some(4));
    assert_eq!(crew.alias("ai4i-failure", "previous").await, Some(2));
    let decisions: Vec<String> = crew
        .ledger("ai4i-failure")
        .await
        .iter()
        .map(|e| e["decision"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        decisions,
        ["promoted", "rejected", "promoted", "promoted"],
        "newest first"
    );
    app.stop().await;
}

/// Manual mode, approvals and rejections by operators, rollbacks and pins, with the roles that
/// may and may not act.
async fn operators_approve_reject_roll_back_and_pin(db: Db) {
    let app = spawn_app(db).await;
    let crew = Crew::new(&app).await;
    crew.create_dataset("ai4i").await;
    assert_eq!(crew.ingest("ai4i", 1..=2000).await, 2000);
    let mut spec = quick_spec("press", "ai4i");
    spec["model"] = json!("press-failure");
    spec["gate"] = json!({"mode": "manual"});
    crew.create_spec(&spec).await;

    // A passing candidate waits for an operator.
    let first = crew.train_ok("press").await;
    assert_eq!(first["decision"], "pending_approval", "{first}");
    assert_eq!(first["candidate_version"], 1);
    assert_eq!(crew.alias("press-failure", "champion").await, None);
    let pending = crew.oscar.get("/api/v1/promotions/pending").await["entries"].clone();
    assert_eq!(pending.as_array().unwrap().len(), 1, "{pending}");
    assert_eq!(pending[0]["id"], first["ledger_entry"]);
    assert_eq!(pending[0]["decision"], "pending_approval");
    assert_eq!(pending[0]["candidate_version"], 1);
    assert_eq!(
        pending[0]["reason"],
        "passed the gate; manual mode waits for an operator"
    );
    let pending_id = first["ledger_entry"].as_i64().unwrap();

    // Scientists may not approve; operators may.
    let response = crew
        .alice
        .send(
            Method::POST,
            &format!("/api/v1/promotions/{pending_id}/approve"),
            json!({}),
        )
        .await;
    expect_error(response, 403, "PERMISSION_DENIED", "").await;
    let approved = crew
        .oscar
        .post(
            &format!("/api/v1/promotions/{pending_id}/approve"),
            json!({"reason": "checked the holdout"}),
        )
        .await;
    assert_eq!(approved["decision"], "approved");
    assert_eq!(approved["resolves"], pending_id);
    assert_eq!(approved["actor"], "oscar");
    assert_eq!(approved["trigger"], "operator");
    assert_eq!(approved["candidate_version"], 1);
    assert_eq!(approved["champion_version"], Value::Null);
    assert_eq!(approved["reason"], "checked the holdout");
    assert_eq!(approved["candidate_metrics"], first["candidate_metrics"]);
    assert_eq!(crew.alias("press-failure", "champion").await, Some(1));
    assert_eq!(
        crew.oscar.get("/api/v1/promotions/pending").await["entries"],
        json!([])
    );
    // Twice is once too many.
    let response = crew
        .oscar
        .send(
            Method::POST,
            &format!("/api/v1/promotions/{pending_id}/approve"),
            json!({}),
        )
        .await;
    expect_error(
        response,
        409,
        "INVALID_STATE",
        &format!("already resolved by ledger entry {}", approved["id"]),
    )
    .await;
    // An entry that is not pending cannot be approved; an unknown one does not exist.
    let response = crew
        .oscar
        .send(
            Method::POST,
            &format!("/api/v1/promotions/{}/approve", approved["id"]),
            json!({}),
        )
        .await;
    expect_error(
        response,
        400,
        "INVALID_PARAMETER_VALUE",
        "not a pending approval",
    )
    .await;
    let response = crew
        .oscar
        .send(Method::POST, "/api/v1/promotions/9999/approve", json!({}))
        .await;
    expect_error(response, 404, "RESOURCE_DOES_NOT_EXIST", "9999").await;

    // No previous champion yet: nothing to roll back to.
    let response = crew
        .oscar
        .send(
            Method::POST,
            "/api/v1/models/press-failure/rollback",
            json!({}),
        )
        .await;
    expect_error(response, 409, "INVALID_STATE", "no previous champion").await;

    // Another candidate; the operator refuses it, with a reason (required).
    let second = crew.train_ok("press").await;
    assert_eq!(second["decision"], "pending_approval");
    assert_eq!(second["champion_version"], 1);
    let pending_id = second["ledger_entry"].as_i64().unwrap();
    let path = format!("/api/v1/promotions/{pending_id}/reject");
    let response = crew.oscar.send(Method::POST, &path, json!({})).await;
    expect_error(response, 400, "INVALID_PARAMETER_VALUE", "needs a reason").await;
    let rejected = crew
        .oscar
        .post(&path, json!({"reason": "drifts at night"}))
        .await;
    assert_eq!(rejected["decision"], "rejected_by_operator");
    assert_eq!(rejected["resolves"], pending_id);
    assert_eq!(rejected["reason"], "drifts at night");
    assert_eq!(rejected["candidate_version"], 2);
    assert_eq!(rejected["champion_version"], 1);
    assert_eq!(crew.alias("press-failure", "champion").await, Some(1));
    let response = crew
        .oscar
        .send(Method::POST, &path, json!({"reason": "again"}))
        .await;
    expect_error(response, 409, "INVALID_STATE", "already resolved").await;

    // A third, approved: champion 3, previous 1.
    let third = crew.train_ok("press").await;
    assert_eq!(third["decision"], "pending_approval");
    crew.oscar
        .post(
            &format!("/api/v1/promotions/{}/approve", third["ledger_entry"]),
            json!({}),
        )
        .await;
    assert_eq!(crew.alias("press-failure", "champion").await, Some(3));
    assert_eq!(crew.alias("press-failure", "previous").await, Some(1));

    // Rollback: scientists may not; operators go back to `previous`, or to a named version.
    let response = crew
        .alice
        .send(
            Method::POST,
            "/api/v1/models/press-failure/rollback",
            json!({}),
        )
        .await;
    expect_error(response, 403, "PERMISSION_DENIED", "").await;
    let rolled = crew
        .oscar
        .post(
            "/api/v1/models/press-failure/rollback",
            json!({"reason": "alarms doubled"}),
        )
        .await;
    assert_eq!(rolled["decision"], "rolled_back");
    assert_eq!(rolled["candidate_version"], 1);
    assert_eq!(rolled["champion_version"], 3);
    assert_eq!(rolled["actor"], "oscar");
    assert_eq!(rolled["trigger"], "operator");
    assert_eq!(rolled["reason"], "alarms doubled");
    assert_eq!(crew.alias("press-failure", "champion").await, Some(1));
    assert_eq!(crew.alias("press-failure", "previous").await, Some(3));
    let rolled = crew
        .oscar
        .post(
            "/api/v1/models/press-failure/rollback",
            json!({"version": 2}),
        )
        .await;
    assert_eq!(rolled["decision"], "rolled_back");
    assert_eq!(rolled["candidate_version"], 2);
    assert_eq!(rolled["champion_version"], 1);
    assert_eq!(crew.alias("press-failure", "champion").await, Some(2));
    assert_eq!(crew.alias("press-failure", "previous").await, Some(1));
    let response = crew
        .oscar
        .send(
            Method::POST,
            "/api/v1/models/press-failure/rollback",
            json!({"version": 2}),
        )
        .await;
    expect_error(
        response,
        400,
        "INVALID_PARAMETER_VALUE",
        "already the champion",
    )
    .await;
    let response = crew
        .oscar
        .send(
            Method::POST,
            "/api/v1/models/press-failure/rollback",
            json!({"version": 99}),
        )
        .await;
    expect_error(response, 404, "RESOURCE_DOES_NOT_EXIST", "").await;
    let response = crew
        .oscar
        .send(Method::POST, "/api/v1/models/nobody/rollback", json!({}))
        .await;
    assert_eq!(response.status(), 409, "a model without a champion");

    // Pinned: even in auto mode a passing candidate waits, and says why.
    spec["gate"] = json!({"mode": "auto"});
    crew.update_spec(&spec).await;
    let response = crew
        .alice
        .send(
            Method::PUT,
            "/api/v1/models/press-failure/pin",
            json!({"reason": "audit week"}),
        )
        .await;
    expect_error(response, 403, "PERMISSION_DENIED", "").await;
    let pin = crew
        .oscar
        .call(
            Method::PUT,
            "/api/v1/models/press-failure/pin",
            json!({"reason": "audit week"}),
            200,
        )
        .await;
    assert_eq!(pin["pinned_by"], "oscar");
    let fourth = crew.train_ok("press").await;
    assert_eq!(fourth["decision"], "pending_approval", "{fourth}");
    assert_eq!(fourth["candidate_version"], 4);
    let entry = crew
        .oscar
        .get(&format!("/api/v1/ledger/{}", fourth["ledger_entry"]))
        .await;
    assert_eq!(
        entry["reason"],
        "passed the gate; the model is pinned by oscar (audit week)"
    );
    assert_eq!(crew.alias("press-failure", "champion").await, Some(2));
    // Unpinned, the next passing candidate is promoted by itself.
    let response = crew
        .oscar
        .send(
            Method::DELETE,
            "/api/v1/models/press-failure/pin",
            Value::Null,
        )
        .await;
    assert_eq!(response.status(), 204);
    let fifth = crew.train_ok("press").await;
    assert_eq!(fifth["decision"], "promoted", "{fifth}");
    assert_eq!(crew.alias("press-failure", "champion").await, Some(5));
    assert_eq!(crew.alias("press-failure", "previous").await, Some(2));

    let decisions: Vec<String> = crew
        .ledger("press-failure")
        .await
        .iter()
        .map(|e| e["decision"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        decisions,
        [
            "promoted",
            "pending_approval",
            "rolled_back",
            "rolled_back",
            "approved",
            "pending_approval",
            "rejected_by_operator",
            "pending_approval",
            "approved",
            "pending_approval",
        ],
        "newest first"
    );
    // The pending candidate of the pinned model is still waiting.
    let pending = crew.oscar.get("/api/v1/promotions/pending").await["entries"].clone();
    assert_eq!(pending.as_array().unwrap().len(), 1, "{pending}");
    assert_eq!(pending[0]["candidate_version"], 4);
    app.stop().await;
}

/// A seconds-level schedule queues trainings by itself, each for its own tick; disabling the
/// spec stops them.
async fn schedules_start_trainings_until_the_spec_is_disabled(db: Db) {
    let app = spawn_app(db).await;
    let crew = Crew::new(&app).await;
    crew.create_dataset("ai4i").await;
    assert_eq!(crew.ingest("ai4i", 1..=1000).await, 1000);
    let mut spec = quick_spec("every-2s", "ai4i");
    spec["schedule"] = json!("*/2 * * * * *");
    let stored = crew.create_spec(&spec).await;
    assert_eq!(stored["schedule"], "*/2 * * * * *");

    // Ticks are 2 s apart: the first comes within 2 s, its job within a few more.
    let jobs = wait_jobs(
        &crew,
        "every-2s",
        Duration::from_secs(5),
        "a scheduled training",
        |jobs| !jobs.is_empty(),
    )
    .await;
    assert_eq!(jobs[0]["trigger"], "cron", "{jobs:#?}");
    assert_eq!(jobs[0]["created_by"], "automation:trainer");
    // Two ticks, two trainings, each named by its tick (an even second).
    let jobs = wait_jobs(
        &crew,
        "every-2s",
        Duration::from_secs(10),
        "two finished scheduled trainings",
        |jobs| jobs.iter().filter(|j| j["status"] == "succeeded").count() >= 2,
    )
    .await;
    let mut ticks = BTreeSet::new();
    for job in &jobs {
        assert_eq!(job["trigger"], "cron");
        let tick = job["trigger_detail"].as_str().unwrap();
        let seconds: u32 = tick[17..19].parse().unwrap();
        assert_eq!(seconds % 2, 0, "{tick}");
        assert!(ticks.insert(tick.to_string()), "tick {tick} twice");
    }
    // The ledger says which tick caused each decision.
    let done = jobs.iter().find(|j| j["status"] == "succeeded").unwrap();
    let entry = crew
        .oscar
        .get(&format!(
            "/api/v1/ledger/{}",
            done["result"]["ledger_entry"]
        ))
        .await;
    assert_eq!(entry["trigger"], "cron");
    assert_eq!(entry["job_id"], done["id"]);
    assert_eq!(
        entry["cause"],
        json!({"trigger_detail": done["trigger_detail"]})
    );

    let disabled = crew
        .alice
        .post("/api/v1/specs/every-2s/disable", Value::Null)
        .await;
    assert_eq!(disabled["enabled"], false);
    // A tick that fired as the spec was disabled may still have queued a job; let it finish.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let settled = wait_jobs(
        &crew,
        "every-2s",
        JOB_TIMEOUT,
        "the last scheduled training to finish",
        idle,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let later = crew.jobs("every-2s").await;
    assert_eq!(
        later.len(),
        settled.len(),
        "no job after disabling: {later:#?}"
    );

    // Enabled again, it runs again.
    crew.alice
        .post("/api/v1/specs/every-2s/enable", Value::Null)
        .await;
    wait_jobs(
        &crew,
        "every-2s",
        Duration::from_secs(5),
        "a scheduled training after enabling",
        |jobs| jobs.len() > settled.len(),
    )
    .await;
    crew.alice
        .post("/api/v1/specs/every-2s/disable", Value::Null)
        .await;
    app.stop().await;
}

/// `triggers.new_rows`: once that many new readings are stored after the last training, a
/// training starts by itself; readings sent again are not new.
async fn new_readings_start_a_training_once_there_are_enough(db: Db) {
    let app = spawn_app(db).await;
    let crew = Crew::new(&app).await;
    crew.create_dataset("ai4i").await;
    assert_eq!(crew.ingest("ai4i", 1..=1000).await, 1000);
    let mut spec = quick_spec("volume", "ai4i");
    crew.create_spec(&spec).await;
    let first = crew.train_ok("volume").await;
    assert_eq!(first["decision"], "promoted");

    spec["triggers"] = json!({"new_rows": 100});
    crew.update_spec(&spec).await;
    // 99 new readings, and 500 old ones sent again: not enough (the checker runs every 5 s).
    assert_eq!(crew.ingest("ai4i", 1001..=1099).await, 99);
    assert_eq!(crew.ingest("ai4i", 1..=500).await, 0);
    tokio::time::sleep(Duration::from_secs(11)).await;
    let jobs = crew.jobs("volume").await;
    assert_eq!(jobs.len(), 1, "{jobs:#?}");

    // The 100th.
    assert_eq!(crew.ingest("ai4i", 1100..=1100).await, 1);
    let jobs = wait_jobs(
        &crew,
        "volume",
        Duration::from_secs(15),
        "a data-volume training",
        |jobs| jobs.len() == 2 && idle(jobs),
    )
    .await;
    let job = &jobs[0];
    assert_eq!(job["trigger"], "data_volume", "{job}");
    assert_eq!(job["trigger_detail"], "100 new rows (threshold 100)");
    assert_eq!(job["created_by"], "automation:trainer");
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["result"]["train_rows"], 880);
    assert_eq!(job["result"]["holdout_rows"], 220);
    let entry = crew
        .oscar
        .get(&format!("/api/v1/ledger/{}", job["result"]["ledger_entry"]))
        .await;
    assert_eq!(entry["trigger"], "data_volume");
    assert_eq!(
        entry["cause"],
        json!({"trigger_detail": "100 new rows (threshold 100)"})
    );

    // Trained on them: no new training until another 100 arrive; none while the spec is
    // disabled; once enabled again, the readings that arrived meanwhile count.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(crew.jobs("volume").await.len(), 2);
    crew.alice
        .post("/api/v1/specs/volume/disable", Value::Null)
        .await;
    assert_eq!(crew.ingest("ai4i", 1101..=1250).await, 150);
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(crew.jobs("volume").await.len(), 2);
    crew.alice
        .post("/api/v1/specs/volume/enable", Value::Null)
        .await;
    let jobs = wait_jobs(
        &crew,
        "volume",
        Duration::from_secs(15),
        "a data-volume training after enabling",
        |jobs| jobs.len() == 3 && idle(jobs),
    )
    .await;
    assert_eq!(jobs[0]["trigger"], "data_volume");
    assert_eq!(jobs[0]["trigger_detail"], "150 new rows (threshold 100)");
    assert_eq!(jobs[0]["status"], "succeeded", "{:#}", jobs[0]);
    app.stop().await;
}

/// Every mistake in a spec is a 400 naming the field; nothing is stored.
async fn bad_specs_are_refused_naming_the_field(db: Db) {
    let app = spawn_app(db).await;
    let crew = Crew::new(&app).await;
    crew.create_dataset("ai4i").await;
    let good = failure_spec("good", "ai4i");

    let refused = |change: &dyn Fn(&mut Value), fragment: &'static str| {
        let mut spec = good.clone();
        change(&mut spec);
        let crew = &crew;
        async move {
            let response = crew
                .alice
                .send(Method::POST, "/api/v1/specs", spec.clone())
                .await;
            expect_error(response, 400, "INVALID_PARAMETER_VALUE", fragment).await
        }
    };
    let message = refused(
        &|s| s["features"] = json!(["Type", "Torque [Nm]", "Pressure [bar]"]),
        "features[2]: 'Pressure [bar]' is not a feature of dataset 'ai4i'",
    )
    .await;
    assert!(
        message.contains("its features: Type, Air temperature [K]"),
        "{message}"
    );
    refused(
        &|s| s["features"] = json!(["Type", "Type"]),
        "features[1]: 'Type' is listed twice",
    )
    .await;
    refused(
        &|s| s["target"] = json!("Broken"),
        "target: 'Broken' is not a label column of dataset 'ai4i'",
    )
    .await;
    refused(
        &|s| s["target"] = json!("Torque [Nm]"),
        "target: 'Torque [Nm]' is not a label column of dataset 'ai4i' (it is a feature)",
    )
    .await;
    refused(
        &|s| {
            s["algorithm"] = json!("random_forest");
            s["grid"] = json!({
                "max_depth": [2, 3, 4, 5, 6, 7, 8, 9, 10],
                "min_samples_leaf": [1, 2, 3, 4, 5, 6, 7, 8],
            });
        },
        "grid: 72 or more combinations; at most 64 are tried",
    )
    .await;
    refused(
        &|s| s["params"] = json!({"x": 1}),
        "params.x: logistic_regression has no hyperparameter 'x'",
    )
    .await;
    refused(
        &|s| s["grid"] = json!({"x": [1, 2]}),
        "grid.x: logistic_regression has no hyperparameter 'x'",
    )
    .await;
    refused(
        &|s| {
            s["algorithm"] = json!("random_forest");
            s["grid"] = json!({});
            s["params"] = json!({"n_estimators": 0});
        },
        "params.n_estimators: 0 is not an integer from 1 to 5000",
    )
    .await;
    refused(
        &|s| s["grid"] = json!({"alpha": [0.1, -1.0]}),
        "grid.alpha: -1 is not a number >= 0",
    )
    .await;
    refused(
        &|s| s["grid"] = json!({"alpha": []}),
        "grid.alpha: list at least one value",
    )
    .await;
    refused(
        &|s| s["schedule"] = json!("every minute"),
        "schedule: 'every minute' must have 6 fields",
    )
    .await;
    refused(
        &|s| s["schedule"] = json!("0 0 25 * * *"),
        "schedule: '0 0 25 * * *' is not a valid cron expression",
    )
    .await;
    refused(
        &|s| {
            s["algorithm"] = json!("linear_regression");
            s["grid"] = json!({});
        },
        "algorithm: linear_regression cannot do Binary",
    )
    .await;
    refused(
        &|s| s["task"] = json!("regression"),
        "algorithm: logistic_regression cannot do Regression",
    )
    .await;
    refused(
        &|s| s["selection_metric"] = json!("rmse"),
        "selection_metric: rmse does not apply to Binary models",
    )
    .await;
    refused(
        &|s| s["dataset"] = json!("nowhere"),
        "dataset: no dataset named 'nowhere'",
    )
    .await;
    refused(
        &|s| s["holdout"] = json!({"fraction": 0.9}),
        "holdout.fraction: 0.9 is outside 0.05-0.5",
    )
    .await;
    refused(
        &|s| s["gate"]["bounds"] = json!([{"metric": "rmse", "max": 3}]),
        "gate.bounds[0].metric: rmse does not apply to Binary models",
    )
    .await;
    refused(
        &|s| s["triggers"] = json!({"new_rows": 0}),
        "triggers.new_rows: must be at least 1",
    )
    .await;
    refused(&|s| s["features"] = json!("Type"), "at 'features'").await;
    refused(
        &|s| s["algorithm"] = json!("deep_learning"),
        "at 'algorithm'",
    )
    .await;
    refused(&|s| s["colour"] = json!("red"), "unknown field `colour`").await;

    let response = crew
        .alice
        .request(Method::POST, "/api/v1/specs")
        .header("content-type", "application/json")
        .body("{\"name\": \"good\", \"dataset\": ")
        .send()
        .await
        .unwrap();
    expect_error(response, 400, "INVALID_PARAMETER_VALUE", "malformed JSON").await;
    assert_eq!(crew.oscar.get("/api/v1/specs").await["specs"], json!([]));

    // The same checks on a change; the stored spec stays as it was.
    let stored = crew.create_spec(&good).await;
    let mut bad = good.clone();
    bad["features"][2] = json!("Pressure [bar]");
    let response = crew
        .alice
        .send(Method::PUT, "/api/v1/specs/good", bad)
        .await;
    expect_error(response, 400, "INVALID_PARAMETER_VALUE", "features[2]").await;
    let mut renamed = good.clone();
    renamed["name"] = json!("better");
    let response = crew
        .alice
        .send(Method::PUT, "/api/v1/specs/good", renamed)
        .await;
    expect_error(
        response,
        400,
        "INVALID_PARAMETER_VALUE",
        "name: a spec keeps its name",
    )
    .await;
    assert_eq!(crew.oscar.get("/api/v1/specs/good").await, stored);
    // Names, roles, and unknown specs.
    let response = crew
        .alice
        .send(Method::POST, "/api/v1/specs", good.clone())
        .await;
    expect_error(response, 409, "RESOURCE_ALREADY_EXISTS", "'good'").await;
    let response = crew
        .oscar
        .send(Method::POST, "/api/v1/specs/good/train", Value::Null)
        .await;
    expect_error(response, 403, "PERMISSION_DENIED", "").await;
    let response = crew
        .alice
        .send(Method::POST, "/api/v1/specs/nothing/train", Value::Null)
        .await;
    expect_error(response, 404, "RESOURCE_DOES_NOT_EXIST", "'nothing'").await;
    let response = crew
        .oscar
        .send(Method::GET, "/api/v1/jobs/4242", Value::Null)
        .await;
    expect_error(response, 404, "RESOURCE_DOES_NOT_EXIST", "4242").await;
    app.stop().await;
}

/// Data a spec cannot train on: no rows fails the job, a holdout below the minimum is a recorded
/// rejection, a target with one class fails the job; none leaves a champion or a 5xx.
async fn unusable_data_fails_or_is_rejected_without_a_champion(db: Db) {
    let app = spawn_app(db).await;
    let crew = Crew::new(&app).await;

    // No rows at all.
    crew.create_dataset("empty").await;
    crew.create_spec(&quick_spec("on-empty", "empty")).await;
    let job = crew.train("on-empty").await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["stage"], "failed");
    assert_eq!(
        job["error"],
        "dataset 'empty' holds no rows under its current schema"
    );
    assert_eq!(job["result"], Value::Null);
    assert_eq!(crew.alias("on-empty", "champion").await, None);
    assert_eq!(crew.ledger("on-empty").await, Vec::<Value>::new());

    // A holdout of 200 rows where the gate wants 500: a rejection in the ledger, not a failure.
    crew.create_dataset("ai4i").await;
    assert_eq!(crew.ingest("ai4i", 1..=1000).await, 1000);
    let mut spec = quick_spec("small-holdout", "ai4i");
    spec["gate"] = json!({"min_holdout_rows": 500});
    crew.create_spec(&spec).await;
    let result = crew.train_ok("small-holdout").await;
    assert_eq!(result["decision"], "rejected", "{result}");
    assert_eq!(result["holdout_rows"], 200);
    let entry = crew
        .oscar
        .get(&format!("/api/v1/ledger/{}", result["ledger_entry"]))
        .await;
    assert_eq!(
        entry["checks"],
        json!([{"check": "holdout rows >= 500", "passed": false, "detail": "200 rows"}])
    );
    assert_eq!(entry["reason"], "failed: holdout rows >= 500 (200 rows)");
    assert_eq!(crew.alias("small-holdout", "champion").await, None);

    // RNF never happens in the first 1,000 readings: one class cannot train a binary model.
    let mut spec = quick_spec("random-failures", "ai4i");
    spec["target"] = json!("RNF");
    crew.create_spec(&spec).await;
    let job = crew.train("random-failures").await;
    assert_eq!(job["status"], "failed", "{job}");
    let error = job["error"].as_str().unwrap();
    assert_eq!(
        error,
        "the target 'RNF' has 1 class(es) in the training data (0); a Binary model needs exactly 2"
    );
    assert_eq!(crew.alias("random-failures", "champion").await, None);
    assert_eq!(crew.ledger("random-failures").await, Vec::<Value>::new());

    // A regression spec whose data is too small to split: a clear failure too.
    crew.create_dataset("tiny").await;
    let tiny: Vec<String> = ndjson(1..=3);
    let response = crew
        .gateway
        .request(Method::POST, "/api/v1/datasets/tiny/records")
        .header("content-type", "application/x-ndjson")
        .body(tiny.join("\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(response, 200).await["accepted"], 3);
    let mut spec = quick_spec("on-tiny", "tiny");
    spec["task"] = json!("regression");
    spec["algorithm"] = json!("linear_regression");
    spec["target"] = json!("Machine failure");
    crew.create_spec(&spec).await;
    let job = crew.train("on-tiny").await;
    assert_eq!(job["status"], "failed", "{job}");
    assert!(job["error"].as_str().unwrap().contains("too few"), "{job}");
    assert_eq!(crew.alias("on-tiny", "champion").await, None);

    // Nothing above was promoted.
    let ledger = crew.oscar.get("/api/v1/ledger").await["entries"].clone();
    assert!(
        ledger
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["decision"] == "rejected"),
        "{ledger}"
    );
    app.stop().await;
}

/// A grid point whose fit fails (Gaussian naive Bayes without smoothing on a constant feature)
/// fails the job, and leaves its run — and the job's — failed with an end time, not running.
async fn a_failing_fit_fails_its_grid_run(db: Db) {
    let app = spawn_app(db).await;
    let crew = Crew::new(&app).await;
    crew.alice
        .call(
            Method::POST,
            "/api/v1/datasets",
            json!({"name": "flat",
                   "features": [{"name": "x", "kind": "numeric"}, {"name": "c", "kind": "numeric"}],
                   "labels": [{"name": "y", "kind": "numeric"}]}),
            201,
        )
        .await;
    let rows: Vec<Value> = (0..100)
        .map(|i| json!({"machine_id": "m1", "ts": 1_000_000 + i * 1000, "x": i, "c": 1.0, "y": i % 2}))
        .collect();
    let report = crew
        .gateway
        .call(
            Method::POST,
            "/api/v1/datasets/flat/records",
            json!(rows),
            200,
        )
        .await;
    assert_eq!(report["accepted"], 100);
    crew.create_spec(&json!({
        "name": "flat-nb", "dataset": "flat", "task": "binary", "target": "y",
        "features": ["x", "c"], "algorithm": "gaussian_nb", "params": {"var_smoothing": 0.0},
    }))
    .await;
    let job = crew.train("flat-nb").await;
    assert_eq!(job["status"], "failed", "{job}");
    let error = job["error"].as_str().unwrap();
    assert!(error.starts_with("fitting failed: "), "{error}");
    assert!(error.contains("column 1 has zero variance"), "{error}");
    let parent = job["run_id"].as_str().expect("the job names its run");

    let experiment = crew.alice.get("/api/v1/experiments/by-name/flat-nb").await;
    let found = crew
        .alice
        .post(
            "/api/v1/runs/search",
            json!({"experiment_ids": [experiment["experiment_id"]],
                   "filter": format!("tags.\"refit.job\" = '{}'", job["id"])}),
        )
        .await;
    let runs = found["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{runs:#?}");
    let mut roles = BTreeSet::new();
    for run in runs {
        let role = tag(&run["data"]["tags"], "refit.role").unwrap();
        roles.insert(role.to_string());
        if role == "grid" {
            assert_eq!(
                tag(&run["data"]["tags"], "mlflow.parentRunId"),
                Some(parent)
            );
        } else {
            assert_eq!(run["info"]["run_id"], parent);
        }
        assert_eq!(run["info"]["status"], "FAILED", "{run}");
        assert!(
            run["info"]["end_time"].as_i64().unwrap()
                >= run["info"]["start_time"].as_i64().unwrap(),
            "{run}"
        );
    }
    assert_eq!(
        roles,
        BTreeSet::from(["candidate".to_string(), "grid".to_string()])
    );
    assert_eq!(crew.alias("flat-nb", "champion").await, None);
    app.stop().await;
}

/// Two processes on one PostgreSQL with one seconds-level schedule: every tick becomes at most one
/// job, every job runs exactly once, and never two of the spec's jobs at the same time; disabling
/// the spec through one process stops both. (SQLite serves one process by design, so this runs on
/// PostgreSQL only.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_postgres_run_each_scheduled_job_once() {
    let first = spawn_app(Db::Postgres).await;
    let crew = Crew::new(&first).await;
    crew.create_dataset("ai4i").await;
    assert_eq!(crew.ingest("ai4i", 1..=500).await, 500);
    let mut spec = quick_spec("every-second", "ai4i");
    spec["schedule"] = json!("* * * * * *");
    crew.create_spec(&spec).await;
    // The second process finds the schedule in the database when it starts.
    let second = spawn_app_beside(&first, |_| {}).await;

    tokio::time::sleep(Duration::from_secs(8)).await;
    crew.alice
        .post("/api/v1/specs/every-second/disable", Value::Null)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let jobs = wait_jobs(
        &crew,
        "every-second",
        JOB_TIMEOUT,
        "the scheduled trainings to finish",
        idle,
    )
    .await;
    assert!(jobs.len() >= 3, "trainings every second for 8 s: {jobs:#?}");
    // Disabled through the first process, the spec is not trained by the second either.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(crew.jobs("every-second").await.len(), jobs.len());

    let mut ticks = BTreeSet::new();
    let mut owners = BTreeSet::new();
    let mut spans = Vec::new();
    for job in &jobs {
        assert_eq!(job["trigger"], "cron");
        assert_eq!(job["status"], "succeeded", "{job}");
        let tick = job["trigger_detail"].as_str().unwrap().to_string();
        assert!(ticks.insert(tick.clone()), "two jobs for tick {tick}");
        owners.insert(job["owner"].as_str().unwrap().to_string());
        spans.push((
            job["started_at"].as_i64().unwrap(),
            job["finished_at"].as_i64().unwrap(),
        ));
    }
    spans.sort();
    for pair in spans.windows(2) {
        assert!(
            pair[0].1 <= pair[1].0,
            "two trainings of the spec overlapped: {pair:?}"
        );
    }
    assert!(owners.len() <= 2, "{owners:?}");

    // Each job ran once: one candidate run, one version, one ledger entry per job.
    let experiment = crew
        .oscar
        .get("/api/v1/experiments/by-name/every-second")
        .await;
    let runs = crew
        .oscar
        .post(
            "/api/v1/runs/search",
            json!({
                "experiment_ids": [experiment["experiment_id"]],
                "filter": "tags.\"refit.role\" = 'candidate'",
            }),
        )
        .await;
    let mut per_job: BTreeMap<String, usize> = BTreeMap::new();
    for run in runs["runs"].as_array().unwrap() {
        *per_job
            .entry(tag(&run["data"]["tags"], "refit.job").unwrap().to_string())
            .or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = jobs.iter().map(|j| (j["id"].to_string(), 1)).collect();
    assert_eq!(per_job, expected);
    let ledger = crew.ledger("every-second").await;
    assert_eq!(ledger.len(), jobs.len());
    let versions = crew.oscar.get("/api/v1/models/every-second/versions").await;
    assert_eq!(
        versions["model_versions"].as_array().map(Vec::len),
        Some(jobs.len()),
        "{versions}"
    );
    second.stop().await;
    first.stop().await;
}
