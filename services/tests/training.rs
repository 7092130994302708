//! Training survives a crash of the process: `refit serve` killed with SIGKILL in the middle of a
//! training, then started again, fails the interrupted job (and its runs) once the lease expires,
//! keeps the champion it had, and trains again normally.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;

use common::{AI4I, refit};

/// A running `refit serve --training-lease-secs 2`.
struct Server {
    process: common::Server,
    client: reqwest::Client,
    token: String,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let process = common::Server::serve(dir, &["--training-lease-secs", "2"]);
        let token = std::fs::read_to_string(dir.join("refit-data/admin-token"))
            .unwrap()
            .trim()
            .to_string();
        Server {
            process,
            client: reqwest::Client::new(),
            token,
        }
    }

    /// Sends `body` (unless null) and expects `status`; returns the JSON answer.
    async fn call(&self, method: reqwest::Method, path: &str, body: Value, status: u16) -> Value {
        let mut request = self
            .client
            .request(method, self.process.url(&format!("/api/v1{path}")))
            .bearer_auth(&self.token);
        if !body.is_null() {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let actual = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_eq!(actual, status, "{path}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, Value::Null, 200)
            .await
    }

    async fn train(&self, spec: &str) -> i64 {
        let job = self
            .call(
                reqwest::Method::POST,
                &format!("/specs/{spec}/train"),
                Value::Null,
                202,
            )
            .await;
        job["id"].as_i64().unwrap()
    }

    /// Polls a job until `done` holds for it.
    async fn wait_job(&self, id: i64, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let job = self.get(&format!("/jobs/{id}")).await;
            if done(&job) {
                return job;
            }
            assert!(start.elapsed() < limit, "job {id} after {limit:?}: {job}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn finished(&self, id: i64) -> Value {
        self.wait_job(id, Duration::from_secs(120), |j| {
            j["status"] == "succeeded" || j["status"] == "failed"
        })
        .await
    }

    async fn champion(&self) -> i64 {
        self.get("/models/ai4i-failure/aliases/champion").await["version"]
            .as_i64()
            .unwrap()
    }

    /// The runs of the spec's experiment tagged with job `id`.
    async fn job_runs(&self, id: i64) -> Vec<Value> {
        let experiment = self.get("/experiments/by-name/ai4i-failure").await;
        let found = self
            .call(
                reqwest::Method::POST,
                "/runs/search",
                json!({
                    "experiment_ids": [experiment["experiment_id"]],
                    "filter": format!("tags.\"refit.job\" = '{id}'"),
                }),
                200,
            )
            .await;
        found["runs"].as_array().unwrap().clone()
    }

    fn kill(self) {
        self.process.kill();
    }

    fn stop(self) {
        self.process.stop();
    }
}

fn spec(n_estimators: i64) -> Value {
    json!({
        "name": "ai4i-failure",
        "dataset": "ai4i",
        "task": "binary",
        "target": "Machine failure",
        "features": ["Type", "Air temperature [K]", "Process temperature [K]",
                     "Rotational speed [rpm]", "Torque [Nm]", "Tool wear [min]"],
        "algorithm": "random_forest",
        "params": {"n_estimators": n_estimators, "max_depth": 6},
        "holdout": {"fraction": 0.2},
        "gate": {"bounds": [{"metric": "roc_auc", "min": 0.6}]},
    })
}

#[tokio::test]
async fn a_training_killed_with_the_process_fails_and_leaves_the_champion() {
    let dir = tempfile::tempdir().unwrap();
    let out = refit(dir.path())
        .env("REFIT_LOG", "warn")
        .args(["datasets", "import", AI4I, "--dataset", "ai4i"])
        .args([
            "--entity",
            "Product ID",
            "--time",
            "UDI",
            "--categorical",
            "Type",
        ])
        .args(["--labels", "Machine failure,TWF,HDF,PWF,OSF,RNF"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("10,000 accepted"), "{stdout}");

    // A first, quick training makes the champion.
    let server = Server::start(dir.path());
    server
        .call(reqwest::Method::POST, "/specs", spec(10), 201)
        .await;
    let first = server.finished(server.train("ai4i-failure").await).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    assert_eq!(first["result"]["decision"], "promoted");
    assert_eq!(server.champion().await, 1);

    // A slow one (300 trees, unlimited depth) is killed, with the process, while it fits.
    let mut slow = spec(300);
    slow["params"]["max_depth"] = Value::Null;
    server
        .call(reqwest::Method::PUT, "/specs/ai4i-failure", slow, 200)
        .await;
    let id = server.train("ai4i-failure").await;
    let running = server
        .wait_job(id, Duration::from_secs(60), |j| {
            assert_ne!(
                j["status"], "succeeded",
                "the slow training was not slow: {j}"
            );
            assert_ne!(j["status"], "failed", "{j}");
            j["status"] == "running" && j["stage"].as_str().unwrap_or("").starts_with("fit")
        })
        .await;
    let owner = running["owner"].as_str().unwrap().to_string();
    server.kill();

    // Started again: once the dead process's lease (2 s) has expired, the job is failed.
    let server = Server::start(dir.path());
    let job = server.get(&format!("/jobs/{id}")).await;
    assert!(
        job["status"] == "running" || job["status"] == "failed",
        "{job}"
    );
    let job = server
        .wait_job(id, Duration::from_secs(20), |j| j["status"] != "running")
        .await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["stage"], "failed");
    assert_eq!(job["owner"], owner);
    let error = job["error"].as_str().unwrap();
    assert!(error.contains("interrupted"), "{error}");
    assert!(job["finished_at"].as_i64().unwrap() >= job["started_at"].as_i64().unwrap());
    // Its runs — the job's and the grid point being fitted — are failed, not left running.
    let runs = server.job_runs(id).await;
    assert_eq!(runs.len(), 2, "{runs:#?}");
    for run in &runs {
        assert_eq!(run["info"]["status"], "FAILED", "{run}");
        assert!(run["info"]["end_time"].is_i64(), "{run}");
    }
    // Nothing was registered, decided or promoted.
    assert_eq!(server.champion().await, 1);
    let versions = server.get("/models/ai4i-failure/versions").await;
    assert_eq!(
        versions["model_versions"].as_array().map(Vec::len),
        Some(1),
        "{versions}"
    );
    let ledger = server.get("/ledger?model=ai4i-failure").await;
    assert_eq!(ledger["entries"].as_array().map(Vec::len), Some(1));

    // The spec is free again: the next training runs to its end.
    server
        .call(reqwest::Method::PUT, "/specs/ai4i-failure", spec(10), 200)
        .await;
    let next = server.finished(server.train("ai4i-failure").await).await;
    assert_eq!(next["status"], "succeeded", "{next}");
    assert_eq!(next["result"]["candidate_version"], 2);
    assert_eq!(next["result"]["champion_version"], 1);
    assert_eq!(next["result"]["decision"], "promoted");
    assert_eq!(server.champion().await, 2);
    // Same spec, same data: the same model as the first training's.
    let v1 = server.get("/models/ai4i-failure/versions/1").await;
    let v2 = server.get("/models/ai4i-failure/versions/2").await;
    let sha = |v: &Value| {
        v["tags"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["key"] == "refit.model_sha256")
            .map(|t| t["value"].clone())
    };
    assert!(sha(&v1).is_some());
    assert_eq!(sha(&v1), sha(&v2));
    server.stop();
}
