//! Drift end to end on AI4I: the reference profile a training writes, an on-demand check of the
//! stored history, windows of live rows judged by the server's drift monitors and stored as
//! reports, the report, feature and machine endpoints, the drift trigger (after exactly K
//! drifting windows, not during its cooldown, its report in the ledger), and bad input.
//!
//! Every statistic is compared with `column_drift` on the same values computed here.

mod ai4i_support;

use std::time::{Duration, Instant};

use ai4i_support::{Client, Crew, FEATURES, LABELS, Reading, ai4i, ndjson, wait_job};
use refit_registry::drift::ReportSource;
use refit_registry::tokens::Role;
use refit_scorer::drift::{DriftParams, ReferenceProfile, column_drift, load_profile};
use refit_scorer::{FeatureColumn, FeatureFrame};
use refit_tests::{Db, TestApp, expect_error, on_both_databases, spawn_app};
use reqwest::Method;
use serde_json::{Value, json};

on_both_databases!(
    drift_from_profile_to_retraining,
    records_streamed_over_http_are_monitored_and_retrain,
    labels_that_arrive_later_give_realized_metrics_per_window,
    a_champion_worse_on_realized_labels_is_rolled_back,
    drift_bad_input
);

#[test]
fn engines_of_fd002_streamed_into_an_fd001_model_drift_and_retrain() {
    // One database is enough: the path is the same as above, on other real data.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(fd002_into_fd001(Db::Sqlite));
}

const MODEL: &str = "ai4i-drift";

/// Readings as the model's input columns (AI4I's feature order).
fn frame(rows: &[&Reading]) -> FeatureFrame {
    let mut columns = vec![FeatureColumn::Categorical(
        rows.iter().map(|r| Some(r.kind.clone())).collect(),
    )];
    for i in 0..5 {
        columns.push(FeatureColumn::Numeric(
            rows.iter().map(|r| r.sensors[i]).collect(),
        ));
    }
    FeatureFrame {
        rows: rows.len(),
        columns,
    }
}

fn readings(udis: std::ops::RangeInclusive<i64>) -> Vec<&'static Reading> {
    ai4i().iter().filter(|r| udis.contains(&r.udi)).collect()
}

fn params(share: f64) -> refit_scorer::drift::ValidDriftParams {
    DriftParams {
        drift_share: share,
        ..Default::default()
    }
    .check()
    .unwrap()
}

/// Asserts a report's feature verdicts equal `column_drift` of the profile and `current`.
fn assert_features(report: &Value, profile: &ReferenceProfile, current: &FeatureFrame, share: f64) {
    let features = report["features"].as_array().unwrap();
    let n = profile.features.len();
    assert_eq!(features.len(), n, "{report}");
    let mut drifted = 0;
    for (i, f) in features.iter().enumerate() {
        let expected = column_drift(
            &profile.features[i].to_feature_column(),
            &current.columns[i],
            &params(share),
        )
        .unwrap();
        assert_eq!(f["feature"], profile.features[i].name());
        assert_eq!(f["test"], expected.test.name(), "{f}");
        assert_eq!(f["value"].as_f64().unwrap(), expected.value, "{f}");
        assert_eq!(f["threshold"].as_f64().unwrap(), expected.threshold);
        assert_eq!(f["drifted"], expected.drifted, "{f}");
        drifted += usize::from(expected.drifted);
    }
    assert_eq!(report["columns"], n);
    assert_eq!(report["drifted_columns"], drifted);
    assert_eq!(report["share"].as_f64().unwrap(), drifted as f64 / n as f64);
    assert_eq!(report["drift_share"].as_f64().unwrap(), share);
    assert_eq!(
        report["dataset_drift"],
        drifted as f64 / n as f64 >= share,
        "{report}"
    );
}

/// Streams the readings `udis` through the server's drift monitor of the model's version, in
/// batches of 250, with machines m0..m2 (by UDI); returns the ids of the reports stored.
async fn stream(app: &TestApp, version: i64, udis: std::ops::RangeInclusive<i64>) -> Vec<i64> {
    let served = app.state.models.version(MODEL, version).await.unwrap();
    let rows = readings(udis);
    let mut ids = Vec::new();
    for batch in rows.chunks(250) {
        let f = frame(batch);
        let predictions = served.inner.predict(&f).unwrap();
        let machines: Vec<String> = batch.iter().map(|r| format!("m{}", r.udi % 3)).collect();
        let ts: Vec<i64> = batch.iter().map(|r| r.udi * 1000).collect();
        let stored = app
            .state
            .drift
            .observe("ai4i", &served, &f, &predictions, &machines, &ts)
            .await
            .unwrap();
        ids.extend(stored.iter().map(|r| r.id));
    }
    ids
}

async fn drift_jobs(crew: &Crew<'_>) -> Vec<Value> {
    crew.jobs(MODEL)
        .await
        .into_iter()
        .filter(|j| j["trigger"] == "drift")
        .collect()
}

fn spec(cooldown_secs: u64) -> Value {
    json!({
        "name": MODEL, "dataset": "ai4i", "task": "binary", "target": "Machine failure",
        "features": FEATURES, "algorithm": "logistic_regression",
        "holdout": {"fraction": 0.2},
        "triggers": {"drift": {"consecutive": 2, "cooldown_secs": cooldown_secs}}})
}

async fn drift_from_profile_to_retraining(db: Db) {
    let app = spawn_app(db).await;
    let crew = Crew::new(&app).await;
    crew.create_dataset("ai4i").await;
    assert_eq!(crew.ingest("ai4i", 1..=4000).await, 4000);
    crew.create_spec(&spec(3600)).await;
    let trained = crew.train_ok(MODEL).await;
    let version = trained["candidate_version"].as_i64().unwrap();

    // 1. The reference profile: every training value (3,200 rows, under the bound) in time
    //    order, and the holdout predictions as class labels.
    let profile = load_profile(&app.store, MODEL, version).await.unwrap();
    assert_eq!(trained["train_rows"], 3200);
    assert_eq!(profile.training_rows, 3200);
    assert_eq!((profile.bound, profile.seed), (10_000, 42));
    assert_eq!(profile.feature_names(), FEATURES);
    let training = frame(&readings(1..=3200));
    for (i, column) in profile.features.iter().enumerate() {
        assert_eq!(column.to_feature_column(), training.columns[i], "{i}");
    }
    assert_eq!(profile.holdout_rows, 800);
    let FeatureColumn::Categorical(predicted) =
        profile.prediction.as_ref().unwrap().to_feature_column()
    else {
        panic!("a classifier's predictions are labels")
    };
    assert_eq!(predicted.len(), 800);
    assert!(
        predicted
            .iter()
            .all(|p| profile.classes.contains(p.as_ref().unwrap()))
    );

    // 2. On demand: late readings (6001-7000, stored but never trained on) against the profile.
    assert_eq!(crew.ingest("ai4i", 6001..=7000).await, 1000);
    let check = crew
        .alice
        .call(
            Method::POST,
            "/api/v1/drift/check",
            json!({"model": MODEL, "dataset": "ai4i", "from": 6_001_000, "store": true}),
            200,
        )
        .await;
    assert_features(&check, &profile, &frame(&readings(6001..=7000)), 0.5);
    assert_eq!(check["version"], version);
    assert_eq!(check["source"], "check");
    assert_eq!(check["rows"], 1000);
    assert_eq!(check["window_start"], 6_001_000);
    assert_eq!(check["window_end"], 7_000_000);
    // The temperatures drift (normed Wasserstein far over 0.1), tool wear does not.
    assert_eq!(check["features"][1]["drifted"], true);
    assert_eq!(check["features"][2]["drifted"], true);
    assert_eq!(check["features"][5]["drifted"], false);
    assert_eq!(check["dataset_drift"], false, "2 of 6 is under 0.5");
    assert_eq!(check["prediction"]["feature"], "prediction");
    // Product IDs are unique: no machine has 30 rows.
    assert_eq!(check["machines"], json!([]));
    let check_id = check["id"].as_i64().unwrap();

    // 3. Settings: windows of 500 rows, drift at a third of the features.
    let settings = crew
        .alice
        .call(
            Method::PUT,
            "/api/v1/drift/settings/ai4i",
            json!({"window_rows": 500, "drift_share": 0.3}),
            200,
        )
        .await;
    assert_eq!(settings["window_rows"], 500);
    assert_eq!(settings["updated_by"], "alice");
    assert_eq!(
        crew.oscar.get("/api/v1/drift/settings/ai4i").await,
        settings
    );

    // 4. Live windows: 7001-7500 closes one window; the trigger needs two in a row.
    let first = stream(&app, version, 7001..=7500).await;
    assert_eq!(first.len(), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        drift_jobs(&crew).await.is_empty(),
        "one drifting window is not enough"
    );
    let second = stream(&app, version, 7501..=8000).await;
    assert_eq!(second.len(), 1);

    let consumer = Client::new(&app, "dashboard", Role::Consumer).await;
    let listed = consumer
        .get(&format!(
            "/api/v1/drift/reports?model={MODEL}&source=stream"
        ))
        .await;
    let reports = listed["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[0]["id"], second[0], "newest first");
    for (report, udis) in [(&reports[1], 7001..=7500), (&reports[0], 7501..=8000)] {
        assert_features(report, &profile, &frame(&readings(udis.clone())), 0.3);
        assert_eq!(report["dataset_drift"], true);
        assert_eq!(report["rows"], 500);
        assert_eq!(report["window_start"], udis.start() * 1000);
        assert_eq!(report["window_end"], udis.end() * 1000);
        // Per machine: m0, m1, m2 (about 167 rows each), each judged on its own rows.
        let machines = report["machines"].as_array().unwrap();
        assert_eq!(machines.len(), 3, "{report}");
        for m in machines {
            let k: i64 = m["machine_id"].as_str().unwrap()[1..].parse().unwrap();
            let rows: Vec<&Reading> = readings(udis.clone())
                .into_iter()
                .filter(|r| r.udi % 3 == k)
                .collect();
            let own = frame(&rows);
            let drifted: Vec<&str> = (0..6)
                .filter(|&i| {
                    column_drift(
                        &profile.features[i].to_feature_column(),
                        &own.columns[i],
                        &params(0.3),
                    )
                    .unwrap()
                    .drifted
                })
                .map(|i| FEATURES[i])
                .collect();
            assert_eq!(m["rows"], rows.len());
            assert_eq!(m["drifted_features"], json!(drifted), "{m}");
            assert_eq!(m["share"].as_f64().unwrap(), drifted.len() as f64 / 6.0);
        }
    }
    let one = consumer
        .get(&format!("/api/v1/drift/reports/{}", second[0]))
        .await;
    assert_eq!(&one, &reports[0]);
    let series = consumer
        .get(&format!(
            "/api/v1/drift/features/Air%20temperature%20%5BK%5D?model={MODEL}&source=stream"
        ))
        .await;
    let points = series["points"].as_array().unwrap();
    assert_eq!(points.len(), 2);
    assert_eq!(points[0]["report_id"], first[0], "oldest first");
    assert_eq!(points[1]["value"], reports[0]["features"][1]["value"]);
    let predictions = consumer
        .get(&format!("/api/v1/drift/features/prediction?model={MODEL}"))
        .await;
    assert_eq!(
        predictions["points"].as_array().unwrap().len(),
        3,
        "the stored check too"
    );
    let ranking = consumer
        .get(&format!(
            "/api/v1/drift/machines?model={MODEL}&source=stream"
        ))
        .await;
    assert_eq!(ranking["reports"], 2);
    let machines = ranking["machines"].as_array().unwrap();
    assert_eq!(machines.len(), 3);
    assert!(machines.iter().all(|m| m["reports"] == 2));
    assert!(machines.windows(2).all(|w| {
        (
            w[0]["drifted_reports"].as_i64(),
            w[0]["mean_share"].as_f64(),
        ) >= (
            w[1]["drifted_reports"].as_i64(),
            w[1]["mean_share"].as_f64(),
        )
    }));
    let only_check = consumer
        .get(&format!("/api/v1/drift/reports?model={MODEL}&source=check"))
        .await;
    assert_eq!(only_check["reports"][0]["id"], check_id);

    // 5. The second drifting window in a row queued a training (trigger `drift`) naming it.
    let start = Instant::now();
    let job = loop {
        if let Some(job) = drift_jobs(&crew).await.pop() {
            break job;
        }
        assert!(
            start.elapsed().as_secs() < 30,
            "no drift-triggered training"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let detail: Value = serde_json::from_str(job["trigger_detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail["drift_report"], second[0]);
    assert_eq!(detail["drift_reports"], json!([first[0], second[0]]));
    let done = wait_job(&crew.oscar, job["id"].as_i64().unwrap()).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let entry = crew
        .ledger(MODEL)
        .await
        .into_iter()
        .find(|e| e["job_id"] == job["id"])
        .expect("the drift training's decision");
    assert_eq!(entry["trigger"], "drift");
    assert_eq!(entry["cause"]["drift_report"], second[0], "{entry}");

    // 6. During the cooldown, two more drifting windows queue nothing.
    let more = stream(&app, version, 8001..=9000).await;
    assert_eq!(more.len(), 2);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(drift_jobs(&crew).await.len(), 1, "within the cooldown");

    // 7. Without a cooldown, the fresh streak (reports not counted before) queues one more
    //    training, once: the server's hook or its trigger loop may evaluate the streak before
    //    this call does, and of all the evaluations exactly one queues it.
    crew.update_spec(&spec(0)).await;
    let newest = app.store.get_drift_report(more[1]).await.unwrap();
    assert_eq!(newest.report.source, ReportSource::Stream);
    assert!(newest.report.dataset_drift);
    let queued = refit_trainer::drift::on_drift_report(&app.store, &newest)
        .await
        .unwrap();
    assert!(queued.len() <= 1, "{queued:?}");
    let start = Instant::now();
    let fresh = loop {
        let jobs = drift_jobs(&crew).await;
        if jobs.len() == 2 {
            break jobs.into_iter().max_by_key(|j| j["id"].as_i64()).unwrap();
        }
        assert!(
            start.elapsed().as_secs() < 30,
            "no training for the fresh streak"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if let Some(job) = queued.first() {
        assert_eq!(fresh["id"], job.id);
    }
    let detail: Value = serde_json::from_str(fresh["trigger_detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail["drift_reports"], json!([more[0], more[1]]));
    let again = refit_trainer::drift::on_drift_report(&app.store, &newest)
        .await
        .unwrap();
    assert!(again.is_empty(), "a streak queues one training");
    wait_job(&crew.oscar, fresh["id"].as_i64().unwrap()).await;
    let again = refit_trainer::drift::on_drift_report(&app.store, &newest)
        .await
        .unwrap();
    assert!(again.is_empty(), "its reports were counted");
    assert_eq!(drift_jobs(&crew).await.len(), 2);
    app.stop().await;
}

/// The whole loop through the stream endpoint: readings posted to
/// `/api/v1/streams/{dataset}/records` are scored by the champion, and the same batches fill the
/// server's drift windows; two drifting windows in a row start a retraining.
async fn records_streamed_over_http_are_monitored_and_retrain(db: Db) {
    let app = spawn_app(db).await;
    let crew = Crew::new(&app).await;
    crew.create_dataset("ai4i").await;
    assert_eq!(crew.ingest("ai4i", 1..=4000).await, 4000);
    crew.create_spec(&spec(3600)).await;
    let version = crew.train_ok(MODEL).await["candidate_version"]
        .as_i64()
        .unwrap();
    let profile = load_profile(&app.store, MODEL, version).await.unwrap();
    crew.alice
        .call(
            Method::PUT,
            "/api/v1/drift/settings/ai4i",
            json!({"window_rows": 500, "drift_share": 0.3}),
            200,
        )
        .await;

    // Late readings streamed in batches of 250: two windows of 500 close.
    for udis in [7001..=7250, 7251..=7500, 7501..=7750, 7751..=8000] {
        let response = crew
            .gateway
            .request(Method::POST, "/api/v1/streams/ai4i/records")
            .header("content-type", "application/x-ndjson")
            .body(ndjson(udis).join("\n"))
            .send()
            .await
            .unwrap();
        let report = refit_tests::expect_json(response, 200).await;
        assert_eq!(report["accepted"], 250, "{report}");
        assert_eq!(report["scores"].as_array().unwrap().len(), 250);
        assert_eq!(report["scores"][0]["version"], version);
    }
    let listed = crew
        .oscar
        .get(&format!(
            "/api/v1/drift/reports?model={MODEL}&source=stream"
        ))
        .await;
    let reports = listed["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 2, "{listed}");
    for (report, udis) in [(&reports[1], 7001..=7500), (&reports[0], 7501..=8000)] {
        assert_features(report, &profile, &frame(&readings(udis.clone())), 0.3);
        assert_eq!(report["version"], version);
        assert_eq!(report["rows"], 500);
        assert_eq!(report["window_start"], udis.start() * 1000);
        assert_eq!(report["window_end"], udis.end() * 1000);
        assert_eq!(report["dataset_drift"], true);
    }

    // The second drifting window in a row queued a retraining that names it.
    let start = Instant::now();
    let job = loop {
        if let Some(job) = drift_jobs(&crew).await.pop() {
            break job;
        }
        assert!(
            start.elapsed().as_secs() < 30,
            "no drift-triggered training"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let detail: Value = serde_json::from_str(job["trigger_detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail["drift_report"], reports[0]["id"]);
    let done = wait_job(&crew.oscar, job["id"].as_i64().unwrap()).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    app.stop().await;
}

/// C-MAPSS rows of `file`: (machine `<prefix>-<unit>`, time `cycle` s in ms, the 24 settings and
/// sensors, `rul` if the file has it).
fn cmapss(file: &str, prefix: &str, limit: usize) -> (Vec<String>, Vec<Value>, FeatureFrame) {
    let path = format!("{}/data/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let names: Vec<String> = header[2..]
        .iter()
        .filter(|h| **h != "rul")
        .map(|h| h.to_string())
        .collect();
    let mut records = Vec::new();
    let mut columns = vec![Vec::new(); names.len()];
    for line in lines.take(limit) {
        let cells: Vec<&str> = line.split(',').collect();
        let mut record = json!({
            "machine_id": format!("{prefix}-{}", cells[0]),
            "ts": cells[1].parse::<i64>().unwrap() * 1000,
        });
        let mut k = 0;
        for (name, cell) in header.iter().zip(&cells).skip(2) {
            let x: f64 = cell.parse().unwrap();
            record[*name] = json!(x);
            if *name != "rul" {
                columns[k].push(x);
                k += 1;
            }
        }
        records.push(record);
    }
    let frame = FeatureFrame {
        rows: records.len(),
        columns: columns.into_iter().map(FeatureColumn::Numeric).collect(),
    };
    (names, records, frame)
}

/// Drift on real data, end to end: a remaining-useful-life model trained on C-MAPSS FD001 (one
/// operating condition) sees the first 10,000 readings of FD002 (six conditions) streamed in;
/// both windows of 5,000 drift, each statistic as computed here from the model's profile, and the
/// second drifting window in a row starts a retraining.
async fn fd002_into_fd001(db: Db) {
    let app = spawn_app(db).await;
    let alice = Client::new(&app, "alice", Role::Scientist).await;
    let gateway = Client::new(&app, "gateway", Role::Ingest).await;
    let (names, fd001, _) = cmapss("train_FD001.csv", "fd001", usize::MAX);
    let features: Vec<Value> = names
        .iter()
        .map(|n| json!({"name": n, "kind": "numeric"}))
        .collect();
    alice
        .call(
            Method::POST,
            "/api/v1/datasets",
            json!({"name": "engines", "features": features,
                   "labels": [{"name": "rul", "kind": "numeric"}]}),
            201,
        )
        .await;
    for batch in fd001.chunks(5000) {
        let report = gateway
            .call(
                Method::POST,
                "/api/v1/datasets/engines/records",
                json!(batch),
                200,
            )
            .await;
        assert_eq!(report["rejected"], json!([]), "{report}");
    }
    alice
        .call(
            Method::POST,
            "/api/v1/specs",
            json!({"name": "rul", "dataset": "engines", "task": "regression", "target": "rul",
                   "features": names, "algorithm": "linear_regression",
                   "holdout": {"fraction": 0.2},
                   "triggers": {"drift": {"consecutive": 2, "cooldown_secs": 3600}}}),
            201,
        )
        .await;
    let queued = alice
        .call(Method::POST, "/api/v1/specs/rul/train", Value::Null, 202)
        .await;
    let first = wait_job(&alice, queued["id"].as_i64().unwrap()).await;
    assert_eq!(first["result"]["decision"], "promoted", "{first}");
    let profile = load_profile(&app.store, "rul", 1).await.unwrap();
    alice
        .call(
            Method::PUT,
            "/api/v1/drift/settings/engines",
            json!({"window_rows": 5000}),
            200,
        )
        .await;

    let (_, fd002, fd002_frame) = cmapss("train_FD002.csv", "fd002", 10_000);
    for batch in fd002.chunks(2500) {
        let report = gateway
            .call(
                Method::POST,
                "/api/v1/streams/engines/records",
                json!(batch),
                200,
            )
            .await;
        assert_eq!(report["accepted"], 2500, "{report}");
        assert_eq!(report["scored_by"][0]["version"], 1, "{report}");
    }
    let listed = alice
        .get("/api/v1/drift/reports?model=rul&source=stream")
        .await;
    let reports = listed["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 2, "{listed}");
    for (report, rows) in [(&reports[1], 0..5000), (&reports[0], 5000..10_000)] {
        let window = FeatureFrame {
            rows: 5000,
            columns: fd002_frame
                .columns
                .iter()
                .map(|c| match c {
                    FeatureColumn::Numeric(v) => FeatureColumn::Numeric(v[rows.clone()].to_vec()),
                    other => other.clone(),
                })
                .collect(),
        };
        assert_features(report, &profile, &window, 0.5);
        assert_eq!(report["dataset_drift"], true);
        // The operating settings are what changed most: all three drift.
        for setting in 0..3 {
            assert_eq!(report["features"][setting]["drifted"], true, "{report}");
        }
    }
    let start = Instant::now();
    let job = loop {
        let jobs = alice.get("/api/v1/jobs?spec=rul&limit=100").await;
        if let Some(job) = jobs["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["trigger"] == "drift")
        {
            break job.clone();
        }
        assert!(
            start.elapsed().as_secs() < 30,
            "no drift-triggered training"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let done = wait_job(&alice, job["id"].as_i64().unwrap()).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    app.stop().await;
}

/// Streams the readings `udis` without their labels; returns their scores.
async fn stream_unlabelled(crew: &Crew<'_>, udis: std::ops::RangeInclusive<i64>) -> Vec<Value> {
    let unlabelled: Vec<String> = ndjson(udis.clone())
        .iter()
        .map(|line| {
            let mut record: Value = serde_json::from_str(line).unwrap();
            for label in LABELS {
                record.as_object_mut().unwrap().remove(label);
            }
            record.to_string()
        })
        .collect();
    let response = crew
        .gateway
        .request(Method::POST, "/api/v1/streams/ai4i/records")
        .header("content-type", "application/x-ndjson")
        .body(unlabelled.join("\n"))
        .send()
        .await
        .unwrap();
    let streamed = refit_tests::expect_json(response, 200).await;
    let scores = streamed["scores"].as_array().unwrap().clone();
    assert_eq!(scores.len(), udis.count(), "{streamed}");
    scores
}

/// Sends the labels of the readings `udis` (with `Machine failure` flipped when `flip`).
async fn post_labels(crew: &Crew<'_>, udis: std::ops::RangeInclusive<i64>, flip: bool) {
    let labels: Vec<Value> = readings(udis.clone())
        .iter()
        .map(|r| {
            let mut l = json!({"machine_id": r.product, "ts": r.udi * 1000});
            for (name, y) in LABELS.iter().zip(r.labels) {
                l[*name] = json!(y);
            }
            if flip {
                l["Machine failure"] = json!(1 - r.labels[0]);
            }
            l
        })
        .collect();
    let report = crew
        .gateway
        .call(
            Method::POST,
            "/api/v1/datasets/ai4i/labels",
            json!(labels),
            200,
        )
        .await;
    assert_eq!(report["accepted"], udis.count(), "{report}");
}

/// The post-promotion watch: a second champion whose realized accuracy falls more than the
/// margin below its predecessor's is rolled back to it, recorded in the ledger with both sides'
/// windows; a watch that does not fit the task is refused naming the field.
async fn a_champion_worse_on_realized_labels_is_rolled_back(db: Db) {
    let app = spawn_app(db).await;
    let crew = Crew::new(&app).await;
    crew.create_dataset("ai4i").await;
    assert_eq!(crew.ingest("ai4i", 1..=4000).await, 4000);
    let mut spec = json!({
        "name": MODEL, "dataset": "ai4i", "task": "binary", "target": "Machine failure",
        "features": FEATURES, "algorithm": "logistic_regression", "holdout": {"fraction": 0.2},
        "watch": {"metric": "rmse", "margin": 0.05}});
    let response = crew
        .alice
        .send(Method::POST, "/api/v1/specs", spec.clone())
        .await;
    expect_error(response, 400, "INVALID_PARAMETER_VALUE", "watch.metric").await;
    for (watch, message) in [
        (
            json!({"metric": "accuracy", "windows": 0, "margin": 0.05}),
            "watch.windows: 0 is outside 1-100",
        ),
        (
            json!({"metric": "accuracy", "windows": 101, "margin": 0.05}),
            "watch.windows: 101 is outside 1-100",
        ),
        (
            json!({"metric": "accuracy", "margin": -0.1}),
            "watch.margin: must be a number >= 0",
        ),
        (json!({"metric": "accuracy"}), "watch"),
    ] {
        spec["watch"] = watch;
        let response = crew
            .alice
            .send(Method::POST, "/api/v1/specs", spec.clone())
            .await;
        expect_error(response, 400, "INVALID_PARAMETER_VALUE", message).await;
    }
    spec["watch"] = json!({"metric": "accuracy", "windows": 1, "margin": 0.05});
    crew.create_spec(&spec).await;
    assert_eq!(crew.train_ok(MODEL).await["candidate_version"], 1);
    crew.alice
        .call(
            Method::PUT,
            "/api/v1/drift/settings/ai4i",
            json!({"window_rows": 500}),
            200,
        )
        .await;
    // Version 1's realized window, on true labels.
    stream_unlabelled(&crew, 7001..=7500).await;
    post_labels(&crew, 7001..=7500, false).await;

    // Version 2 is promoted; its records' labels say it is wrong nearly every time.
    assert_eq!(crew.ingest("ai4i", 4001..=6000).await, 2000);
    let second = crew.train_ok(MODEL).await;
    assert_eq!(second["decision"], "promoted", "{second}");
    assert_eq!(crew.alias(MODEL, "champion").await, Some(2));
    let scores = stream_unlabelled(&crew, 7501..=8000).await;
    assert!(scores.iter().all(|s| s["version"] == 2));
    post_labels(&crew, 7501..=8000, true).await;

    let realized = crew
        .oscar
        .get(&format!("/api/v1/drift/realized?model={MODEL}"))
        .await;
    let windows = realized["realized"].as_array().unwrap();
    assert_eq!(windows.len(), 2, "{realized}");
    let (now, before) = (&windows[0], &windows[1]);
    assert_eq!(
        (now["version"].as_i64(), before["version"].as_i64()),
        (Some(2), Some(1))
    );
    let (a2, a1) = (
        now["metrics"]["accuracy"].as_f64().unwrap(),
        before["metrics"]["accuracy"].as_f64().unwrap(),
    );
    assert!(a2 < a1 - 0.05, "{a2} vs {a1}");
    assert_eq!(crew.alias(MODEL, "champion").await, Some(1), "rolled back");
    let entry = crew.ledger(MODEL).await.into_iter().next().unwrap();
    assert_eq!(entry["decision"], "rolled_back", "{entry}");
    assert_eq!(entry["trigger"], "watch");
    assert_eq!(entry["actor"], "automation:trainer");
    assert_eq!(entry["cause"]["realized"], json!([now["id"]]));
    assert_eq!(entry["cause"]["baseline"], json!([before["id"]]));
    let reason = entry["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(&format!(
            "post-promotion watch: accuracy {a2:.4} over version 2's first 1 realized window(s), {a1:.4} over version 1's last 1"
        )),
        "{entry}"
    );
    app.stop().await;
}

/// Labels that arrive after their readings were streamed and scored: the champion's realized
/// metrics per window of 500 labelled scores, equal to the trainer's metrics computed here from
/// the stream's own scores and the true labels.
async fn labels_that_arrive_later_give_realized_metrics_per_window(db: Db) {
    let app = spawn_app(db).await;
    let crew = Crew::new(&app).await;
    crew.create_dataset("ai4i").await;
    assert_eq!(crew.ingest("ai4i", 1..=4000).await, 4000);
    crew.create_spec(&json!({
        "name": MODEL, "dataset": "ai4i", "task": "binary", "target": "Machine failure",
        "features": FEATURES, "algorithm": "logistic_regression", "holdout": {"fraction": 0.2}}))
        .await;
    let version = crew.train_ok(MODEL).await["candidate_version"]
        .as_i64()
        .unwrap();
    crew.alice
        .call(
            Method::PUT,
            "/api/v1/drift/settings/ai4i",
            json!({"window_rows": 500}),
            200,
        )
        .await;

    // Streamed without their labels, and scored.
    let scores = stream_unlabelled(&crew, 7001..=8000).await;
    assert!(
        crew.oscar.get("/api/v1/drift/realized").await["realized"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // The labels arrive.
    post_labels(&crew, 7001..=8000, false).await;

    let listed = crew
        .oscar
        .get(&format!("/api/v1/drift/realized?model={MODEL}"))
        .await;
    let windows = listed["realized"].as_array().unwrap();
    assert_eq!(windows.len(), 2, "{listed}");
    for (window, part) in [(&windows[1], 0..500), (&windows[0], 500..1000)] {
        assert_eq!(window["model"], MODEL);
        assert_eq!(window["version"], version);
        assert_eq!(window["dataset"], "ai4i");
        assert_eq!(window["rows"], 500);
        assert_eq!(window["window_start"], (7001 + part.start as i64) * 1000);
        assert_eq!(window["window_end"], (7000 + part.end as i64) * 1000);
        // The trainer's metrics on the same scores and labels.
        let rows = readings(7001..=8000);
        let classes = ["0", "1"];
        let truth: Vec<f64> = part.clone().map(|i| rows[i].labels[0] as f64).collect();
        let values: Vec<f64> = part
            .clone()
            .map(|i| {
                let p = scores[i]["prediction"].as_str().unwrap();
                classes.iter().position(|c| *c == p).unwrap() as f64
            })
            .collect();
        let probabilities: Vec<f64> = part
            .clone()
            .flat_map(|i| {
                classes
                    .iter()
                    .map(|c| scores[i]["probabilities"][*c].as_f64().unwrap())
                    .collect::<Vec<_>>()
            })
            .collect();
        let expected = refit_trainer::evaluate::evaluate(
            refit_scorer::Task::Binary,
            2,
            &truth,
            &refit_scorer::Predictions {
                values,
                probabilities: Some(probabilities),
            },
        );
        let metrics = window["metrics"].as_object().unwrap();
        assert_eq!(metrics.len(), expected.len(), "{window}");
        for (name, value) in expected {
            let got = metrics[name.as_str()].as_f64().unwrap();
            assert!(
                (got - value).abs() <= 1e-12 * value.abs().max(1.0),
                "{name:?}: {got} vs {value}"
            );
        }
    }
    let response = crew
        .oscar
        .request(Method::GET, "/api/v1/drift/realized?limit=0")
        .send()
        .await
        .unwrap();
    expect_error(response, 400, "INVALID_PARAMETER_VALUE", "limit").await;
    app.stop().await;
}

async fn drift_bad_input(db: Db) {
    let app = spawn_app(db).await;
    let crew = Crew::new(&app).await;
    crew.create_dataset("ai4i").await;
    let cases: Vec<(Method, &str, Value, u16, &str, &str)> = vec![
        (
            Method::POST,
            "/api/v1/drift/check",
            json!({"model": "nope", "dataset": "ai4i"}),
            404,
            "RESOURCE_DOES_NOT_EXIST",
            "nope",
        ),
        (
            Method::POST,
            "/api/v1/drift/check",
            json!({"model": "nope", "dataset": "ai4i", "snapshot": 1, "from": 5}),
            400,
            "INVALID_PARAMETER_VALUE",
            "snapshot: give a snapshot or a time range",
        ),
        (
            Method::POST,
            "/api/v1/drift/check",
            json!({"model": "nope", "dataset": "ai4i", "from": 9, "to": 9}),
            400,
            "INVALID_PARAMETER_VALUE",
            "from: 9 is not before to (9)",
        ),
        (
            Method::POST,
            "/api/v1/drift/check",
            json!({"model": "nope", "dataset": "ai4i", "colour": 1}),
            400,
            "INVALID_PARAMETER_VALUE",
            "unknown field `colour`",
        ),
        (
            Method::POST,
            "/api/v1/drift/check",
            json!({"model": "nope", "dataset": "ai4i", "drift_share": 0}),
            400,
            "INVALID_PARAMETER_VALUE",
            "drift_share: 0 is not in (0, 1]",
        ),
        (
            Method::PUT,
            "/api/v1/drift/settings/ai4i",
            json!({"window_rows": 0}),
            400,
            "INVALID_PARAMETER_VALUE",
            "window_rows: 0 is outside 1-1000000",
        ),
        (
            Method::PUT,
            "/api/v1/drift/settings/ai4i",
            json!({"window_rows": 5, "window": "1h"}),
            400,
            "INVALID_PARAMETER_VALUE",
            "window: give window_rows or window, not both",
        ),
        (
            Method::PUT,
            "/api/v1/drift/settings/ai4i",
            json!({"window": "soon"}),
            400,
            "INVALID_PARAMETER_VALUE",
            "window: 'soon'",
        ),
        (
            Method::PUT,
            "/api/v1/drift/settings/nowhere",
            json!({"window": "1h"}),
            404,
            "RESOURCE_DOES_NOT_EXIST",
            "nowhere",
        ),
        (
            Method::GET,
            "/api/v1/drift/reports?limit=0",
            Value::Null,
            400,
            "INVALID_PARAMETER_VALUE",
            "limit: 0 is outside 1-1000",
        ),
        (
            Method::GET,
            "/api/v1/drift/reports/999",
            Value::Null,
            404,
            "RESOURCE_DOES_NOT_EXIST",
            "No drift report 999",
        ),
        (
            Method::GET,
            "/api/v1/drift/reports/x",
            Value::Null,
            400,
            "INVALID_PARAMETER_VALUE",
            "invalid path parameter",
        ),
    ];
    for (method, path, body, status, code, fragment) in cases {
        let mut request = crew.alice.request(method, path);
        if !body.is_null() {
            request = request.json(&body);
        }
        expect_error(request.send().await.unwrap(), status, code, fragment).await;
    }
    let hourly = crew
        .alice
        .call(
            Method::PUT,
            "/api/v1/drift/settings/ai4i",
            json!({"window": "1h"}),
            200,
        )
        .await;
    assert_eq!(hourly["window_rows"], Value::Null);
    assert_eq!(hourly["window_ms"], 3_600_000);
    // Operators may check but not keep a check (that writes).
    expect_error(
        crew.oscar
            .request(Method::POST, "/api/v1/drift/check")
            .json(&json!({"model": "nope", "dataset": "ai4i", "store": true}))
            .send()
            .await
            .unwrap(),
        403,
        "PERMISSION_DENIED",
        "WriteData",
    )
    .await;
    // The drift trigger's fields are checked with the spec.
    for (trigger, fragment) in [
        (
            json!({"consecutive": 0}),
            "triggers.drift.consecutive: 0 is outside 1-100",
        ),
        (
            json!({"cooldown_secs": 99_999_999}),
            "triggers.drift.cooldown_secs: 99999999 is more than 2592000",
        ),
        (
            json!({"consecutive": 2, "every": 1}),
            "unknown field `every`",
        ),
    ] {
        let spec = json!({
            "name": "bad", "dataset": "ai4i", "task": "binary", "target": "Machine failure",
            "features": FEATURES, "algorithm": "logistic_regression",
            "triggers": {"drift": trigger}});
        expect_error(
            crew.alice
                .request(Method::POST, "/api/v1/specs")
                .json(&spec)
                .send()
                .await
                .unwrap(),
            400,
            "INVALID_PARAMETER_VALUE",
            fragment,
        )
        .await;
    }
    app.stop().await;
}
