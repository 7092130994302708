//! Retention over HTTP: `POST /api/v1/datasets/{name}/prune` (forced or not) with its refusals,
//! and the scheduler applying a dataset's retention on its own. Every test runs on SQLite and on
//! PostgreSQL.

use std::time::{Duration, Instant};

use refit_registry::tokens::Role;
use refit_tests::{Db, TestApp, expect_error, expect_json, on_both_databases, spawn_app_with};
use reqwest::Method;
use serde_json::{Value, json};

on_both_databases!(
    prune_keeps_kept_snapshots_unless_forced,
    prune_refuses_datasets_without_retention_and_unknown_ones,
    the_scheduler_applies_retention_on_its_own,
);

/// 2023-11-14T22:13:20Z.
const T0: i64 = 1_700_000_000_000;
const DAY: i64 = 86_400_000;

struct Scientist<'a> {
    app: &'a TestApp,
    token: String,
}

impl Scientist<'_> {
    async fn call(&self, method: Method, path: &str, body: Value, status: u16) -> Value {
        let mut request = self.app.as_token(&self.token, method, path);
        if !body.is_null() {
            request = request.json(&body);
        }
        expect_json(request.send().await.unwrap(), status).await
    }

    async fn send(&self, method: Method, path: &str, body: Value) -> reqwest::Response {
        self.app
            .as_token(&self.token, method, path)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Dataset `name` (feature temp, label failure), with a labelled reading of m1 and m2 at
    /// T0 + d days for d in 0..30.
    async fn press(&self, name: &str, retention_days: Option<i64>) {
        self.call(
            Method::POST,
            "/api/v1/datasets",
            json!({"name": name, "features": [{"name": "temp", "kind": "numeric"}],
                   "labels": [{"name": "failure", "kind": "numeric"}],
                   "retention_days": retention_days}),
            201,
        )
        .await;
        let records: Vec<Value> = (0..30)
            .flat_map(|d| {
                ["m1", "m2"].map(
                    |m| json!({"machine_id": m, "ts": T0 + d * DAY, "temp": d, "failure": d % 2}),
                )
            })
            .collect();
        // Readings come from an ingest token; the admin may send them too.
        let report = expect_json(
            self.app
                .admin(Method::POST, &format!("/api/v1/datasets/{name}/records"))
                .json(&records)
                .send()
                .await
                .unwrap(),
            200,
        )
        .await;
        assert_eq!(report["accepted"], 60);
    }

    /// Polls until the dataset holds `counts` (readings, labels), for 20 s at most.
    async fn wait_for_counts(&self, name: &str, counts: (i64, i64)) {
        let start = Instant::now();
        loop {
            let now = self.counts(name).await;
            if now == counts {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{name} holds {now:?}, not {counts:?}, after 20 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// (readings, labels) stored.
    async fn counts(&self, name: &str) -> (i64, i64) {
        let d = self
            .call(
                Method::GET,
                &format!("/api/v1/datasets/{name}"),
                Value::Null,
                200,
            )
            .await;
        (
            d["records"].as_i64().unwrap(),
            d["labels"].as_i64().unwrap(),
        )
    }
}

async fn scientist(app: &TestApp) -> Scientist<'_> {
    Scientist {
        app,
        token: app.token("ada", Role::Scientist).await,
    }
}

/// The server, without automatic pruning: these tests prune on request only.
async fn app_pruning_on_request(db: Db) -> TestApp {
    spawn_app_with(db, |c| c.retention_interval_secs = 0).await
}

async fn prune_keeps_kept_snapshots_unless_forced(db: Db) {
    let app = app_pruning_on_request(db).await;
    let ada = scientist(&app).await;
    ada.press("press", Some(10)).await;
    // Days 2-4 of both machines.
    let snapshot = ada
        .call(
            Method::POST,
            "/api/v1/datasets/press/snapshots",
            json!({"from": T0 + 2 * DAY, "to": T0 + 5 * DAY}),
            201,
        )
        .await;
    assert_eq!(
        (snapshot["id"].as_i64(), snapshot["kept"].as_bool()),
        (Some(1), Some(true))
    );

    // The newest reading is day 29: days 0-18 are older than 10 days, days 2-4 are kept.
    let report = ada
        .call(
            Method::POST,
            "/api/v1/datasets/press/prune",
            json!({"force": false}),
            200,
        )
        .await;
    assert_eq!(
        report,
        json!({"cutoff": T0 + 19 * DAY, "deleted_records": 32, "deleted_labels": 32, "deleted_scores": 0,
               "kept_for_snapshots": 6, "released_snapshots": []})
    );
    assert_eq!(ada.counts("press").await, (28, 28));
    let verify = ada
        .call(
            Method::GET,
            "/api/v1/datasets/press/snapshots/1/verify",
            Value::Null,
            200,
        )
        .await;
    assert_eq!(
        (verify["ok"].as_bool(), verify["actual_rows"].as_i64()),
        (Some(true), Some(6))
    );

    // Forced: the snapshot's rows go too, and it no longer verifies.
    let report = ada
        .call(
            Method::POST,
            "/api/v1/datasets/press/prune",
            json!({"force": true}),
            200,
        )
        .await;
    assert_eq!(
        report,
        json!({"cutoff": T0 + 19 * DAY, "deleted_records": 6, "deleted_labels": 6, "deleted_scores": 0,
               "kept_for_snapshots": 0, "released_snapshots": [1]})
    );
    assert_eq!(ada.counts("press").await, (22, 22));
    let verify = ada
        .call(
            Method::GET,
            "/api/v1/datasets/press/snapshots/1/verify",
            Value::Null,
            200,
        )
        .await;
    assert_eq!(verify["ok"], false, "{verify}");
    assert_eq!(verify["expected_rows"], 6);
    assert_eq!(verify["actual_rows"], 0);
    let snapshot = ada
        .call(
            Method::GET,
            "/api/v1/datasets/press/snapshots/1",
            Value::Null,
            200,
        )
        .await;
    assert_eq!(snapshot["kept"], false);

    let audit = expect_json(
        app.admin(Method::GET, "/api/v1/audit?limit=2")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let entries: Vec<(&str, &str)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["actor"].as_str().unwrap(), e["action"].as_str().unwrap()))
        .collect();
    assert_eq!(
        entries,
        [("ada", "datasets.prune"), ("ada", "datasets.prune")]
    );
    app.stop().await;
}

async fn prune_refuses_datasets_without_retention_and_unknown_ones(db: Db) {
    let app = app_pruning_on_request(db).await;
    let ada = scientist(&app).await;
    ada.press("press", None).await;
    expect_error(
        ada.send(
            Method::POST,
            "/api/v1/datasets/press/prune",
            json!({"force": false}),
        )
        .await,
        400,
        "INVALID_PARAMETER_VALUE",
        "dataset 'press' has no retention_days",
    )
    .await;
    expect_error(
        ada.send(
            Method::POST,
            "/api/v1/datasets/mill/prune",
            json!({"force": true}),
        )
        .await,
        404,
        "RESOURCE_DOES_NOT_EXIST",
        "No dataset named 'mill'",
    )
    .await;
    expect_error(
        ada.send(
            Method::POST,
            "/api/v1/datasets/press/prune",
            json!({"forced": true}),
        )
        .await,
        400,
        "INVALID_PARAMETER_VALUE",
        "unknown field `forced`",
    )
    .await;
    // Nothing was deleted.
    assert_eq!(ada.counts("press").await, (60, 60));
    app.stop().await;
}

async fn the_scheduler_applies_retention_on_its_own(db: Db) {
    // Every second: in effect at each check of the trigger loop (every 5 s).
    let app = spawn_app_with(db, |c| c.retention_interval_secs = 1).await;
    let ada = scientist(&app).await;
    // Stored without retention: the scheduler leaves it alone...
    ada.press("press", None).await;
    ada.call(
        Method::POST,
        "/api/v1/datasets/press/snapshots",
        json!({"from": T0, "to": T0 + DAY}),
        201,
    )
    .await;
    // ...until it has some: the trigger loop prunes it when it first sees it, days 0-18 but the
    // snapshot's day 0.
    ada.call(
        Method::PATCH,
        "/api/v1/datasets/press",
        json!({"retention_days": 10}),
        200,
    )
    .await;
    ada.wait_for_counts("press", (24, 24)).await;
    let audit = expect_json(
        app.admin(Method::GET, "/api/v1/audit?limit=1")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let entry = &audit["entries"][0];
    assert_eq!(entry["actor"], "automation:retention");
    assert_eq!(entry["action"], "datasets.prune");
    assert_eq!(entry["target"], "dataset:press");
    assert_eq!(
        entry["detail"],
        "before 2023-12-03T22:13:20Z: 36 readings, 36 labels and 0 scores deleted, 2 kept for snapshots"
    );

    // A newer reading moves the cutoff two days on; the next round prunes days 19 and 20.
    let report = expect_json(
        app.admin(Method::POST, "/api/v1/datasets/press/records")
            .json(&json!([{"machine_id": "m1", "ts": T0 + 31 * DAY, "temp": 1, "failure": 0}]))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(report["accepted"], 1);
    ada.wait_for_counts("press", (21, 21)).await;
    app.stop().await;
}
