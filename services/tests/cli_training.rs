//! Training from the command line, as processes: `refit specs apply|list|show`, `refit train
//! [--wait]` (trained in the CLI's own process when no server takes the job, by the server when
//! one runs) and `refit jobs show`, on the AI4I readings imported with `refit datasets import`.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;

use common::{AI4I, Server, refit};

/// Runs `refit args...` to its end.
fn run(dir: &Path, args: &[&str]) -> Output {
    refit(dir)
        .env("REFIT_LOG", "warn")
        .args(args)
        .output()
        .expect("running refit")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `refit args...` and expects it to succeed; returns its stdout.
#[track_caller]
fn ok(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args);
    assert!(
        out.status.success(),
        "refit {args:?}: {:?}\n{}{}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// Runs `refit args...` and expects exit status 1; returns its stderr.
#[track_caller]
fn fails(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "refit {args:?}\n{}{}",
        stdout(&out),
        stderr(&out)
    );
    stderr(&out)
}

/// Gaussian naive Bayes on AI4I's features, promoted when its ROC AUC reaches 0.6.
fn spec() -> Value {
    json!({
        "name": "ai4i-failure",
        "dataset": "ai4i",
        "task": "binary",
        "target": "Machine failure",
        "features": ["Type", "Air temperature [K]", "Process temperature [K]",
                     "Rotational speed [rpm]", "Torque [Nm]", "Tool wear [min]"],
        "algorithm": "gaussian_nb",
        "holdout": {"fraction": 0.2},
        "gate": {"bounds": [{"metric": "roc_auc", "min": 0.6}]},
    })
}

fn write(dir: &Path, name: &str, spec: &Value) -> String {
    std::fs::write(dir.join(name), spec.to_string()).unwrap();
    name.to_string()
}

#[test]
fn specs_are_applied_listed_shown_and_trained_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let imported = ok(
        dir,
        &[
            "datasets",
            "import",
            AI4I,
            "--dataset",
            "ai4i",
            "--entity",
            "Product ID",
            "--time",
            "UDI",
            "--categorical",
            "Type",
            "--labels",
            "Machine failure,TWF,HDF,PWF,OSF,RNF",
        ],
    );
    assert!(imported.contains("10,000 accepted"), "{imported}");

    // A valid spec is created; refused ones name the field and store nothing.
    let file = write(dir, "spec.json", &spec());
    assert_eq!(
        ok(dir, &["specs", "apply", &file]),
        "created spec 'ai4i-failure' (id 1): gaussian_nb on dataset 'ai4i', model 'ai4i-failure', schedule none\n"
    );
    let mut unknown = spec();
    unknown["name"] = json!("other");
    unknown["features"][0] = json!("Temperature");
    let bad = write(dir, "unknown-feature.json", &unknown);
    let err = fails(dir, &["specs", "apply", &bad]);
    assert!(
        err.contains(
            "unknown-feature.json is refused: features[0]: 'Temperature' is not a feature of dataset 'ai4i'"
        ),
        "{err}"
    );
    let mut mistyped = spec();
    mistyped["holdout"] = json!({"fraction": "a fifth"});
    let bad = write(dir, "mistyped.json", &mistyped);
    let err = fails(dir, &["specs", "apply", &bad]);
    assert!(
        err.contains(
            "mistyped.json is not a training spec: invalid request: at 'holdout.fraction'"
        ),
        "{err}"
    );
    let err = fails(dir, &["specs", "apply", "missing.json"]);
    assert!(err.contains("reading missing.json"), "{err}");

    // Applying a spec of the same name replaces it.
    let mut scheduled = spec();
    scheduled["schedule"] = json!("0 0 3 * * *");
    let file = write(dir, "spec.json", &scheduled);
    assert!(
        ok(dir, &["specs", "apply", &file])
            .starts_with("replaced spec 'ai4i-failure' (id 1): gaussian_nb")
    );
    assert_eq!(
        ok(dir, &["specs", "list"]),
        "name          dataset  model         algorithm    schedule     enabled\n\
         ai4i-failure  ai4i     ai4i-failure  gaussian_nb  0 0 3 * * *  yes\n"
    );
    let shown: Value = serde_json::from_str(&ok(dir, &["specs", "show", "ai4i-failure"])).unwrap();
    assert_eq!(shown["id"], 1);
    assert_eq!(shown["schedule"], "0 0 3 * * *");
    assert_eq!(shown["definition"]["features"], scheduled["features"]);
    assert_eq!(shown["definition"]["seed"], 42, "stored with its defaults");
    assert!(shown["created_by"].as_str().unwrap().starts_with("cli:"));
    let err = fails(dir, &["specs", "show", "nope"]);
    assert!(
        err.contains("No training spec with id or name 'nope'"),
        "{err}"
    );

    // No server runs: `train --wait` trains in its own process, and the first model is promoted.
    let out = run(dir, &["train", "ai4i-failure", "--wait"]);
    let (text, log) = (stdout(&out), stderr(&out));
    assert!(out.status.success(), "{text}{log}");
    assert!(
        log.contains("no server took job 1; training it here"),
        "{log}"
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "1", "the job id first: {text}");
    assert_eq!(lines[1], "job 1: promoted", "{text}");
    assert!(
        lines[2].starts_with("candidate: ai4i-failure version 1 (run "),
        "{text}"
    );
    assert!(
        lines[2].ends_with("8000 training and 2000 holdout rows"),
        "{text}"
    );
    assert_eq!(lines[3], "champion: none yet");
    assert!(lines[4].starts_with("holdout"), "{text}");
    let roc_auc: f64 = lines
        .iter()
        .find_map(|l| l.strip_prefix("roc_auc"))
        .unwrap_or_else(|| panic!("no roc_auc line: {text}"))
        .trim()
        .parse()
        .unwrap();
    assert!((0.6..=1.0).contains(&roc_auc), "{text}");

    let job: Value = serde_json::from_str(&ok(dir, &["jobs", "show", "1"])).unwrap();
    assert_eq!(job["status"], "succeeded");
    assert_eq!(job["trigger"], "manual");
    assert!(job["created_by"].as_str().unwrap().starts_with("cli:"));
    assert!(job["owner"].as_str().unwrap().starts_with("cli:"), "{job}");
    assert!(job["run_id"].is_string(), "{job}");
    assert_eq!(job["run_id"], job["result"]["run_id"]);
    assert_eq!(job["result"]["decision"], "promoted");
    let metric = job["result"]["candidate_metrics"]["roc_auc"]
        .as_f64()
        .unwrap();
    assert!((metric - roc_auc).abs() < 1e-4, "{metric} vs {roc_auc}");
    let err = fails(dir, &["jobs", "show", "99"]);
    assert!(err.contains("No training job 99"), "{err}");

    // A job that fails makes `train --wait` fail, with the reason.
    let mut one_reading = spec();
    one_reading["window"] = json!("1s");
    let file = write(dir, "spec.json", &one_reading);
    ok(dir, &["specs", "apply", &file]);
    let out = run(dir, &["train", "ai4i-failure", "--wait"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).starts_with("2\njob 2: failed\n"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("job 2 failed: the holdout would take the whole window"),
        "{}",
        stderr(&out)
    );

    // Without --wait the job is only queued.
    let file = write(dir, "spec.json", &spec());
    ok(dir, &["specs", "apply", &file]);
    assert_eq!(ok(dir, &["train", "ai4i-failure"]), "3\n");
    let job: Value = serde_json::from_str(&ok(dir, &["jobs", "show", "3"])).unwrap();
    assert_eq!(job["status"], "queued");
    assert_eq!(job["run_id"], Value::Null);

    // With a server running, its worker trains the queued job, and the next one, which the CLI
    // follows to its decision: the new candidate against the champion.
    let server = Server::serve(dir, &[]);
    let started = Instant::now();
    loop {
        let job: Value = serde_json::from_str(&ok(dir, &["jobs", "show", "3"])).unwrap();
        if job["status"] == "succeeded" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "{job}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = run(dir, &["train", "ai4i-failure", "--wait"]);
    let (text, log) = (stdout(&out), stderr(&out));
    assert!(out.status.success(), "{text}{log}");
    assert!(!log.contains("training it here"), "{log}");
    assert!(text.starts_with("4\njob 4: "), "{text}");
    assert!(text.contains("champion: version"), "{text}");
    for id in ["3", "4"] {
        let job: Value = serde_json::from_str(&ok(dir, &["jobs", "show", id])).unwrap();
        assert_eq!(job["status"], "succeeded", "{job}");
        assert!(!job["owner"].as_str().unwrap().starts_with("cli:"), "{job}");
    }
    server.stop();
}

/// C-MAPSS FD001 end to end on the real files: the training readings imported from the command
/// line (engine `unit` as the machine, `cycle` as the time), a gradient-boosting spec for the
/// remaining useful life trained and promoted, and the served champion scoring the last cycle of
/// each `test_FD001` engine, judged against `RUL_FD001.txt`: it must clearly beat predicting the
/// training mean.
#[test]
fn cmapss_fd001_remaining_useful_life_is_trained_promoted_and_served() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data");
    let train = data.join("train_FD001.csv");
    let imported = ok(
        dir,
        &[
            "datasets",
            "import",
            train.to_str().unwrap(),
            "--dataset",
            "fd001",
            "--entity",
            "unit",
            "--time",
            "cycle",
            "--labels",
            "rul",
        ],
    );
    assert!(imported.contains("20,631 accepted"), "{imported}");
    let mut features: Vec<String> = (1..=3).map(|i| format!("setting_{i}")).collect();
    features.extend((1..=21).map(|i| format!("sensor_{i:02}")));
    let spec = json!({
        "name": "fd001-rul",
        "dataset": "fd001",
        "task": "regression",
        "target": "rul",
        "features": features,
        "algorithm": "gradient_boosting",
        "params": {"n_estimators": 60},
        "holdout": {"fraction": 0.2},
        "gate": {"bounds": [{"metric": "r2", "min": 0.3}]},
    });
    let file = write(dir, "fd001.json", &spec);
    ok(dir, &["specs", "apply", &file]);
    let trained = ok(dir, &["train", "fd001-rul", "--wait"]);
    assert!(trained.contains("job 1: promoted"), "{trained}");

    // The test engines' last cycles and their true remaining useful life.
    let read = |name: &str| std::fs::read_to_string(data.join(name)).unwrap();
    let test = read("test_FD001.csv");
    let mut lines = test.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let mut last: std::collections::BTreeMap<u32, Vec<&str>> = Default::default();
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        last.insert(cells[0].parse().unwrap(), cells);
    }
    let truth: Vec<f64> = read("RUL_FD001.txt")
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(last.len(), truth.len());
    let rows: Vec<Value> = last
        .values()
        .map(|cells| {
            let mut row = serde_json::Map::new();
            for (name, cell) in header.iter().zip(cells) {
                row.insert(name.to_string(), json!(cell.parse::<f64>().unwrap()));
            }
            Value::Object(row)
        })
        .collect();

    let server = Server::serve(dir, &[]);
    let token = std::fs::read_to_string(dir.join("refit-data/admin-token")).unwrap();
    let scored: Value = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let response = reqwest::Client::new()
            .post(server.url("/api/v1/models/fd001-rul/score"))
            .bearer_auth(token.trim())
            .json(&rows)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    });
    server.stop();
    assert_eq!(scored["version"], 1);
    let predicted: Vec<f64> = scored["scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["prediction"].as_f64().unwrap())
        .collect();
    let rmse = |guess: &dyn Fn(usize) -> f64| {
        let sum: f64 = truth
            .iter()
            .enumerate()
            .map(|(i, y)| (guess(i) - y).powi(2))
            .sum();
        (sum / truth.len() as f64).sqrt()
    };
    let train_text = read("train_FD001.csv");
    let rul_at = train_text
        .lines()
        .next()
        .unwrap()
        .split(',')
        .position(|c| c == "rul")
        .unwrap();
    let ruls: Vec<f64> = train_text
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(rul_at).unwrap().parse().unwrap())
        .collect();
    let mean = ruls.iter().sum::<f64>() / ruls.len() as f64;
    let model = rmse(&|i| predicted[i]);
    let baseline = rmse(&|_| mean);
    eprintln!("FD001 test engines: RMSE {model:.2} (training mean: {baseline:.2})");
    assert!(model < 0.8 * baseline, "RMSE {model} vs {baseline}");
}
