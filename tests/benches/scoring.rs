//! Scoring throughput and latency (the scorer issue's targets), run by `scripts/bench scoring`:
//!
//! * in-process: a logistic-regression model of 8 and of 20 features, trained by refit's own
//!   trainer, predicting batches of 1,024 rows on one thread (the encoder included), without and
//!   with drift monitoring (each batch added to a drift monitor against the model's reference
//!   profile, a report judged every 1,000 rows, as the stream does);
//! * over HTTP: single-row requests on loopback against the release binary, refit's own
//!   `POST /api/v1/models/{name}/score` and MLflow's `/invocations` payload at
//!   `/api/v1/models/{name}/invocations`: latency at concurrency 1 (one kept-alive connection) and
//!   throughput at concurrency 8 (eight connections, one thread each);
//! * the same `/invocations` requests against `mlflow models serve` (a scaled scikit-learn
//!   logistic regression on the same training rows, saved by `mlflow.sklearn`), side by side, with
//!   the ratios; when `REFIT_BENCH_PYTHON` names the project venv's python (`scripts/bench` sets
//!   it).

mod common;

use std::time::{Duration, Instant};

use common::{Endpoint, RawClient, percentile, refit_binary, start};
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
    // `cargo bench --bench scoring -- <text>` runs only the figures whose label contains <text>.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let wanted = |label: &str| filter.as_ref().is_none_or(|f| label.contains(f.as_str()));
    let mut lines = Vec::new();
    for features in [8, 20] {
        for drift in [false, true] {
            let monitored = if drift { ", drift monitored" } else { "" };
            if !wanted(&format!(
                "in-process logistic, {features} features{monitored}"
            )) {
                continue;
            }
            let rate = in_process(features, drift);
            eprintln!("in-process, {features} features{monitored}: {rate:.0} rows/s");
            lines.push((
                format!("in-process logistic, {features} features{monitored} (rows/s)"),
                format!("{rate:.0}"),
                ">= 5,000,000".to_string(),
            ));
        }
    }
    if wanted("HTTP single-row score") {
        http_figures(&mut lines);
    }
    println!();
    println!("refit scoring benchmark (release build; HTTP on loopback, kept-alive connections)");
    println!("{:<62} {:>34} {:>14}", "figure", "refit", "target");
    for (label, value, target) in lines {
        println!("{label:<62} {value:>34} {target:>14}");
    }
}

fn http_figures(lines: &mut Vec<(String, String, String)>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let figures = rt.block_on(http());
    for (label, refit, baseline, target) in figures {
        let digits = if label.contains("(ms)") { 3 } else { 0 };
        let value = match baseline {
            Some(b) => format!(
                "{refit:.digits$} (mlflow {b:.digits$}, {:.0}x)",
                ratio(label, refit, b)
            ),
            None => format!("{refit:.digits$}"),
        };
        lines.push((label.to_string(), value, target.to_string()));
    }
}

/// How many times better refit's figure is than the baseline's: lower latency, higher rate.
fn ratio(label: &str, refit: f64, baseline: f64) -> f64 {
    if label.contains("(ms)") {
        baseline / refit
    } else {
        refit / baseline
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

/// A figure: its label, refit's value, the baseline's, the target.
type Figure = (&'static str, f64, Option<f64>, &'static str);

/// Trains a champion over HTTP, then times single-row scoring requests against it, and the same
/// `/invocations` requests against `mlflow models serve` when the project venv is known.
async fn http() -> Vec<Figure> {
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
    let invocation = serde_json::to_vec(&json!({
        "dataframe_split": {"columns": features, "data": [x[0]]}
    }))
    .unwrap();
    eprintln!("timing refit's /score");
    let native = timed(&e, "/api/v1/models/bench/score", &row, 10_000).await;
    eprintln!("timing refit's /invocations");
    let invocations = timed(&e, "/api/v1/models/bench/invocations", &invocation, 10_000).await;
    let mlflow = match std::env::var("REFIT_BENCH_PYTHON") {
        Ok(python) => {
            eprintln!("starting mlflow models serve");
            let baseline = MlflowServe::start(&python, &x, &y);
            eprintln!("timing mlflow models serve's /invocations");
            Some(timed(&baseline.endpoint(), "/invocations", &invocation, 1_000).await)
        }
        Err(_) => {
            eprintln!("REFIT_BENCH_PYTHON is not set: no `mlflow models serve` baseline");
            None
        }
    };
    let base = |f: fn(&Timing) -> f64| mlflow.as_ref().map(f);
    vec![
        (
            "HTTP single-row score, concurrency 1, p50 (ms)",
            native.p50,
            None,
            "",
        ),
        (
            "HTTP single-row score, concurrency 1, p99 (ms)",
            native.p99,
            None,
            "<= 2",
        ),
        (
            "HTTP single-row score, concurrency 8 (requests/s)",
            native.rate,
            None,
            ">= 20,000",
        ),
        (
            "HTTP single-row /invocations, concurrency 1, p50 (ms)",
            invocations.p50,
            base(|t| t.p50),
            "",
        ),
        (
            "HTTP single-row /invocations, concurrency 1, p99 (ms)",
            invocations.p99,
            base(|t| t.p99),
            "<= 2",
        ),
        (
            "HTTP single-row /invocations, concurrency 8 (requests/s)",
            invocations.rate,
            base(|t| t.rate),
            ">= 20,000",
        ),
    ]
}

/// Latency at concurrency 1 and throughput at concurrency 8 of one request.
struct Timing {
    p50: f64,
    p99: f64,
    rate: f64,
}

/// Times `count` requests of `body` to `path` on one kept-alive connection (after a warm-up of
/// a twentieth as many), then eight connections on eight threads for 4 s.
async fn timed(e: &Endpoint, path: &'static str, body: &[u8], count: usize) -> Timing {
    let (e, body) = (e.clone(), body.to_vec());
    tokio::task::spawn_blocking(move || {
        let mut c = RawClient::connect(&e);
        for _ in 0..count / 20 {
            c.post_raw(path, "application/json", &body);
        }
        let mut latencies = Vec::with_capacity(count);
        for _ in 0..count {
            let t = Instant::now();
            c.post_raw(path, "application/json", &body);
            latencies.push(t.elapsed());
        }
        latencies.sort();
        let duration = Duration::from_secs(4);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (e, body) = (e.clone(), body.clone());
                std::thread::spawn(move || {
                    let mut c = RawClient::connect(&e);
                    let start = Instant::now();
                    let mut n = 0u64;
                    while start.elapsed() < duration {
                        c.post_raw(path, "application/json", &body);
                        n += 1;
                    }
                    n as f64 / start.elapsed().as_secs_f64()
                })
            })
            .collect();
        Timing {
            p50: percentile(&latencies, 0.5),
            p99: percentile(&latencies, 0.99),
            rate: threads.into_iter().map(|t| t.join().unwrap()).sum(),
        }
    })
    .await
    .unwrap()
}

/// `mlflow models serve` of a scaled scikit-learn logistic regression fitted on the same rows,
/// from the project venv; stopped (its whole process group) when dropped.
struct MlflowServe {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl MlflowServe {
    fn start(python: &str, x: &[Vec<f64>], y: &[f64]) -> MlflowServe {
        use std::os::unix::process::CommandExt;
        use std::process::{Command, Stdio};
        let dir = tempfile::tempdir().unwrap();
        let mut csv = (0..x[0].len())
            .map(|j| format!("f{j},"))
            .collect::<String>()
            + "y\n";
        for (row, label) in x.iter().zip(y) {
            for v in row {
                csv += &format!("{v},");
            }
            csv += &format!("{label}\n");
        }
        let data = dir.path().join("train.csv");
        std::fs::write(&data, csv).unwrap();
        let model = dir.path().join("model");
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/benches/scoring/mlflow_model.py"
        );
        let status = Command::new(python)
            .args([script.as_ref(), data.as_os_str(), model.as_os_str()])
            .status()
            .unwrap();
        assert!(status.success(), "{script} failed");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // MLflow runs `uvicorn` from PATH: the venv's own.
        let bin = std::path::Path::new(python).parent().unwrap();
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let child = Command::new(python)
            .args(["-m", "mlflow", "models", "serve", "--env-manager", "local"])
            .args(["--host", "127.0.0.1", "-p", &port.to_string(), "-m"])
            .arg(&model)
            .env("PATH", path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        let serve = MlflowServe {
            child,
            port,
            _dir: dir,
        };
        let start = Instant::now();
        while !serve.ready() {
            assert!(
                start.elapsed() < Duration::from_secs(180),
                "mlflow models serve did not answer /ping"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        serve
    }

    fn ready(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let mut answer = String::new();
        s.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .is_ok()
            && s.read_to_string(&mut answer).is_ok()
            && answer.starts_with("HTTP/1.1 200")
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint {
            address: format!("127.0.0.1:{}", self.port),
            token: "unused".into(),
        }
    }
}

impl Drop for MlflowServe {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}
