//! Scoring throughput and latency (the scorer issue's targets), run by `scripts/bench scoring`:
//!
//! * in-process: a logistic-regression model of 8 and of 20 features, trained by refit's own
//!   trainer, predicting batches of 1,024 rows on one thread (the encoder included), without and
//!   with drift monitoring (each batch added to a drift monitor against the model's reference
//!   profile, a report judged every 1,000 rows, as the stream does);
//! * over HTTP: single-row `POST /api/v1/models/{name}/score` requests on loopback against the
//!   release binary: latency at concurrency 1 (one kept-alive connection) and throughput at
//!   concurrency 8 (eight connections, one thread each).

mod common;

use std::time::{Duration, Instant};

use common::{RawClient, percentile, refit_binary, start};
use ndarray::ArrayView2;
use refit_scorer::drift::{
    DriftMonitor, MonitorKey, MonitorSettings, PreparedReference, ProfileSampler, ReferenceProfile,
};
use refit_scorer::native::{FORMAT, NativeModel};
use refit_scorer::{FeatureColumn, FeatureFrame, Model, ModelInfo, Task};
use refit_trainer::algorithms::{Algorithm, Hyperparameters};
use refit_trainer::fit::{self, TrainingData};
use refit_trainer::prepare;
use serde_json::{Value, json};

const BATCH: usize = 1_024;

fn main() {
    let mut lines = Vec::new();
    for features in [8, 20] {
        for drift in [false, true] {
            let rate = in_process(features, drift);
            let monitored = if drift { ", drift monitored" } else { "" };
            eprintln!("in-process, {features} features{monitored}: {rate:.0} rows/s");
            lines.push((
                format!("in-process logistic, {features} features{monitored} (rows/s)"),
                format!("{rate:.0}"),
                ">= 5,000,000".to_string(),
            ));
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (p50, p99, rps) = rt.block_on(http());
    lines.push((
        "HTTP single-row score, concurrency 1, p50 (ms)".into(),
        format!("{p50:.3}"),
        String::new(),
    ));
    lines.push((
        "HTTP single-row score, concurrency 1, p99 (ms)".into(),
        format!("{p99:.3}"),
        "<= 2".into(),
    ));
    lines.push((
        "HTTP single-row score, concurrency 8 (requests/s)".into(),
        format!("{rps:.0}"),
        ">= 20,000".into(),
    ));
    println!();
    println!("refit scoring benchmark (release build; HTTP on loopback, kept-alive connections)");
    println!("{:<58} {:>14} {:>14}", "figure", "refit", "target");
    for (label, value, target) in lines {
        println!("{label:<58} {value:>14} {target:>14}");
    }
}

/// Readings of `features` numbers whose class depends on a few of them.
fn synthetic(rows: usize, features: usize, seed: u64) -> (Vec<Vec<f64>>, Vec<f64>) {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    };
    let mut x = Vec::with_capacity(rows);
    let mut y = Vec::with_capacity(rows);
    for _ in 0..rows {
        let row: Vec<f64> = (0..features).map(|j| next() * (j + 1) as f64).collect();
        let z = row[0] - 0.5 * row[1] + 0.25 * row[features - 1] + 0.3 * next();
        y.push(if z > 0.0 { 1.0 } else { 0.0 });
        x.push(row);
    }
    (x, y)
}

fn frame(x: &[Vec<f64>], features: usize) -> FeatureFrame {
    FeatureFrame {
        rows: x.len(),
        columns: (0..features)
            .map(|j| FeatureColumn::Numeric(x.iter().map(|r| r[j]).collect()))
            .collect(),
    }
}

/// Rows per second of `predict` on batches of 1,024 rows, one thread, for ~2 seconds; with
/// `drift`, each batch also goes through a drift monitor.
fn in_process(features: usize, drift: bool) -> f64 {
    let (x, y) = synthetic(20_000, features, 7);
    let train = frame(&x, features);
    let encoder = prepare::fit_encoder(&train, true);
    let encoded = encoder.encode(&train).unwrap();
    let hp = Hyperparameters::check(Algorithm::LogisticRegression, Default::default()).unwrap();
    let estimator = fit::fit(
        &hp,
        &TrainingData {
            x: ArrayView2::from_shape((x.len(), encoder.width()), &encoded).unwrap(),
            y: &y,
            task: Task::Binary,
            n_classes: 2,
        },
        0,
    )
    .unwrap();
    let model = NativeModel {
        format: FORMAT.into(),
        info: ModelInfo {
            task: Task::Binary,
            features: (0..features).map(|j| format!("f{j}")).collect(),
            classes: vec!["0".into(), "1".into()],
            kind: "logistic_regression".into(),
        },
        encoder,
        estimator,
    };
    model.check().unwrap();
    // The reference profile a training writes: the training values and holdout predictions.
    let (holdout, _) = synthetic(4_000, features, 5);
    let holdout_predictions = model.predict(&frame(&holdout, features)).unwrap();
    let profile = ReferenceProfile::build(
        &model.info,
        &train,
        Some(&holdout_predictions),
        ProfileSampler::with_seed(42),
    );
    let mut monitor = DriftMonitor::new(
        MonitorKey {
            dataset: "bench".into(),
            model: "bench".into(),
            version: 1,
        },
        PreparedReference::new(&profile),
        MonitorSettings::default(),
    );
    let (probe, _) = synthetic(BATCH, features, 11);
    let batch = frame(&probe, features);
    let machines: Vec<String> = (0..BATCH).map(|i| format!("m{}", i % 50)).collect();
    let start = Instant::now();
    let mut rows = 0usize;
    let mut checksum = 0.0;
    let mut reports = 0;
    while start.elapsed() < Duration::from_secs(2) {
        let p = model.predict(&batch).unwrap();
        if drift {
            let ts: Vec<i64> = (0..BATCH).map(|i| (rows + i) as i64).collect();
            reports += monitor.observe(&batch, &p, &machines, &ts).unwrap().len();
        }
        checksum += p.values[0];
        rows += BATCH;
    }
    assert!(checksum.is_finite());
    assert!(
        !drift || reports >= rows / 1_000 - 1,
        "{reports} reports for {rows} rows"
    );
    rows as f64 / start.elapsed().as_secs_f64()
}

/// Trains a champion over HTTP, then times single-row scoring requests.
async fn http() -> (f64, f64, f64) {
    const FEATURES: usize = 8;
    let server = start(&refit_binary(), None);
    let e = server.endpoint.clone();
    let client = reqwest::Client::new();
    let mut columns: Vec<Value> = (0..FEATURES)
        .map(|j| json!({"name": format!("f{j}"), "kind": "numeric"}))
        .collect();
    let labels = vec![json!({"name": "y", "kind": "numeric"})];
    e.call(
        &client,
        "/api/v1/datasets",
        &json!({"name": "bench", "features": columns, "labels": labels}),
    )
    .await;
    let (x, y) = synthetic(5_000, FEATURES, 3);
    let records: Vec<Value> = x
        .iter()
        .zip(&y)
        .enumerate()
        .map(|(i, (row, label))| {
            let mut r = json!({"machine_id": format!("m{}", i % 20), "ts": 1_700_000_000_000i64 + i as i64 * 1000, "y": label});
            for (j, v) in row.iter().enumerate() {
                r[format!("f{j}")] = json!(v);
            }
            r
        })
        .collect();
    e.call(&client, "/api/v1/datasets/bench/records", &json!(records))
        .await;
    columns.clear();
    let features: Vec<String> = (0..FEATURES).map(|j| format!("f{j}")).collect();
    e.train_promoted(&client, &features).await;

    let row = serde_json::to_vec(&json!([records[0]])).unwrap();
    let path = "/api/v1/models/bench/score";
    let latencies = tokio::task::spawn_blocking({
        let (e, row) = (e.clone(), row.clone());
        move || {
            let mut c = RawClient::connect(&e);
            for _ in 0..500 {
                c.post_raw(path, "application/json", &row);
            }
            let mut lat = Vec::with_capacity(10_000);
            for _ in 0..10_000 {
                let t = Instant::now();
                c.post_raw(path, "application/json", &row);
                lat.push(t.elapsed());
            }
            lat.sort();
            lat
        }
    })
    .await
    .unwrap();
    let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));

    let duration = Duration::from_secs(4);
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (e, row) = (e.clone(), row.clone());
            std::thread::spawn(move || {
                let mut c = RawClient::connect(&e);
                let start = Instant::now();
                let mut n = 0u64;
                while start.elapsed() < duration {
                    c.post_raw(path, "application/json", &row);
                    n += 1;
                }
                (n, start.elapsed())
            })
        })
        .collect();
    let mut total = 0.0;
    for t in threads {
        let (n, elapsed) = t.join().unwrap();
        total += n as f64 / elapsed.as_secs_f64();
    }
    (p50, p99, total)
}
