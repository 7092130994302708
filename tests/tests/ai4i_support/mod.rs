//! The AI4I 2020 readings and the people who use refit over HTTP, shared by the end-to-end test
//! files: a data scientist (alice), a gateway sending readings, and an operator (oscar).

#![allow(dead_code)]

use std::ops::RangeInclusive;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use refit_registry::tokens::Role;
use refit_tests::{TestApp, expect_json};
use reqwest::Method;
use serde_json::{Value, json};

pub const FEATURES: [&str; 6] = [
    "Type",
    "Air temperature [K]",
    "Process temperature [K]",
    "Rotational speed [rpm]",
    "Torque [Nm]",
    "Tool wear [min]",
];
pub const LABELS: [&str; 6] = ["Machine failure", "TWF", "HDF", "PWF", "OSF", "RNF"];

/// Longest a training of these small specs may take before a test gives up.
pub const JOB_TIMEOUT: Duration = Duration::from_secs(120);

/// One AI4I reading.
pub struct Reading {
    pub udi: i64,
    pub product: String,
    pub kind: String,
    pub sensors: [f64; 5],
    pub labels: [i64; 6],
}

/// The 10,000 readings of tests/data/ai4i2020.csv, parsed once.
pub fn ai4i() -> &'static [Reading] {
    static ROWS: OnceLock<Vec<Reading>> = OnceLock::new();
    ROWS.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/ai4i2020.csv");
        let text = std::fs::read_to_string(path).expect("tests/data/ai4i2020.csv");
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap(),
            "UDI,Product ID,Type,Air temperature [K],Process temperature [K],Rotational speed [rpm],\
             Torque [Nm],Tool wear [min],Machine failure,TWF,HDF,PWF,OSF,RNF"
        );
        let rows: Vec<Reading> = lines
            .map(|line| {
                let f: Vec<&str> = line.split(',').collect();
                assert_eq!(f.len(), 14, "{line}");
                Reading {
                    udi: f[0].parse().unwrap(),
                    product: f[1].to_string(),
                    kind: f[2].to_string(),
                    sensors: std::array::from_fn(|i| f[3 + i].parse().unwrap()),
                    labels: std::array::from_fn(|i| f[8 + i].parse().unwrap()),
                }
            })
            .collect();
        assert_eq!(rows.len(), 10_000);
        rows
    })
}

/// The readings with these UDIs as NDJSON lines: Product ID is the machine, the UDI (seconds)
/// the time in ms.
pub fn ndjson(udis: RangeInclusive<i64>) -> Vec<String> {
    ai4i()
        .iter()
        .filter(|r| udis.contains(&r.udi))
        .map(|r| {
            let mut record = json!({
                "machine_id": r.product,
                "ts": r.udi * 1000,
                "Type": r.kind,
            });
            for (name, x) in FEATURES[1..].iter().zip(r.sensors) {
                record[*name] = json!(x);
            }
            for (name, y) in LABELS.iter().zip(r.labels) {
                record[*name] = json!(y);
            }
            record.to_string()
        })
        .collect()
}

/// Calls the API as one token holder.
pub struct Client<'a> {
    pub app: &'a TestApp,
    pub token: String,
}

impl<'a> Client<'a> {
    pub async fn new(app: &'a TestApp, name: &str, role: Role) -> Client<'a> {
        Client {
            app,
            token: app.token(name, role).await,
        }
    }

    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.app.as_token(&self.token, method, path)
    }

    /// Sends `body` as JSON (unless null), expects `status`, returns the JSON answer.
    pub async fn call(&self, method: Method, path: &str, body: Value, status: u16) -> Value {
        expect_json(self.send(method, path, body).await, status).await
    }

    pub async fn send(&self, method: Method, path: &str, body: Value) -> reqwest::Response {
        let mut request = self.request(method, path);
        if !body.is_null() {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    pub async fn get(&self, path: &str) -> Value {
        self.call(Method::GET, path, Value::Null, 200).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        self.call(Method::POST, path, body, 200).await
    }
}

/// The people of these tests: a data scientist, a gateway and an operator.
pub struct Crew<'a> {
    pub alice: Client<'a>,
    pub gateway: Client<'a>,
    pub oscar: Client<'a>,
}

impl<'a> Crew<'a> {
    pub async fn new(app: &'a TestApp) -> Crew<'a> {
        Crew {
            alice: Client::new(app, "alice", Role::Scientist).await,
            gateway: Client::new(app, "gateway-7", Role::Ingest).await,
            oscar: Client::new(app, "oscar", Role::Operator).await,
        }
    }

    /// Creates a dataset with AI4I's features (Type categorical) and its six failure labels.
    pub async fn create_dataset(&self, name: &str) {
        let mut features = vec![json!({"name": "Type", "kind": "categorical"})];
        features.extend(
            FEATURES[1..]
                .iter()
                .map(|s| json!({"name": s, "kind": "numeric"})),
        );
        let labels: Vec<Value> = LABELS
            .iter()
            .map(|s| json!({"name": s, "kind": "numeric"}))
            .collect();
        let created = self
            .alice
            .call(
                Method::POST,
                "/api/v1/datasets",
                json!({"name": name, "features": features, "labels": labels}),
                201,
            )
            .await;
        assert_eq!(created["name"], name);
    }

    /// Sends the readings with these UDIs as NDJSON; returns how many were stored.
    pub async fn ingest(&self, dataset: &str, udis: RangeInclusive<i64>) -> u64 {
        let mut accepted = 0;
        for batch in ndjson(udis).chunks(2_500) {
            let response = self
                .gateway
                .request(Method::POST, &format!("/api/v1/datasets/{dataset}/records"))
                .header("content-type", "application/x-ndjson")
                .body(batch.join("\n"))
                .send()
                .await
                .unwrap();
            let report = expect_json(response, 200).await;
            assert_eq!(report["rejected"], json!([]), "{report}");
            accepted += report["accepted"].as_u64().unwrap();
        }
        accepted
    }

    pub async fn create_spec(&self, spec: &Value) -> Value {
        self.alice
            .call(Method::POST, "/api/v1/specs", spec.clone(), 201)
            .await
    }

    pub async fn update_spec(&self, spec: &Value) -> Value {
        let path = format!("/api/v1/specs/{}", spec["name"].as_str().unwrap());
        self.alice.call(Method::PUT, &path, spec.clone(), 200).await
    }

    /// Queues a manual training and waits for it to end.
    pub async fn train(&self, spec: &str) -> Value {
        let queued = self
            .alice
            .call(
                Method::POST,
                &format!("/api/v1/specs/{spec}/train"),
                Value::Null,
                202,
            )
            .await;
        assert_eq!(queued["status"], "queued", "{queued}");
        assert_eq!(queued["trigger"], "manual");
        assert_eq!(queued["created_by"], "alice");
        assert_eq!(queued["spec"], spec);
        wait_job(&self.oscar, queued["id"].as_i64().unwrap()).await
    }

    /// A training that must succeed; returns its result.
    pub async fn train_ok(&self, spec: &str) -> Value {
        let job = self.train(spec).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        assert_eq!(job["stage"], "succeeded");
        assert_eq!(job["error"], Value::Null);
        assert!(job["run_id"].is_string(), "{job}");
        assert_eq!(job["run_id"], job["result"]["run_id"]);
        job["result"].clone()
    }

    /// The version `alias` of `model` points at, or None if it is not set.
    pub async fn alias(&self, model: &str, alias: &str) -> Option<i64> {
        let response = self
            .oscar
            .send(
                Method::GET,
                &format!("/api/v1/models/{model}/aliases/{alias}"),
                Value::Null,
            )
            .await;
        if response.status() == 404 {
            let body = expect_json(response, 404).await;
            assert_eq!(body["error_code"], "RESOURCE_DOES_NOT_EXIST", "{body}");
            return None;
        }
        let version = expect_json(response, 200).await;
        assert!(
            version["aliases"]
                .as_array()
                .unwrap()
                .contains(&json!(alias)),
            "{version}"
        );
        Some(version["version"].as_i64().unwrap())
    }

    pub async fn ledger(&self, model: &str) -> Vec<Value> {
        self.oscar
            .get(&format!("/api/v1/ledger?model={model}"))
            .await["entries"]
            .as_array()
            .unwrap()
            .clone()
    }

    pub async fn jobs(&self, spec: &str) -> Vec<Value> {
        self.oscar
            .get(&format!("/api/v1/jobs?spec={spec}&limit=1000"))
            .await["jobs"]
            .as_array()
            .unwrap()
            .clone()
    }
}

/// Polls a job until it succeeded or failed.
pub async fn wait_job(client: &Client<'_>, id: i64) -> Value {
    let start = Instant::now();
    loop {
        let job = client.get(&format!("/api/v1/jobs/{id}")).await;
        assert_eq!(job["id"], id);
        match job["status"].as_str().unwrap() {
            "succeeded" | "failed" => return job,
            "queued" | "running" => {}
            other => panic!("unknown job status {other}: {job}"),
        }
        assert!(
            start.elapsed() < JOB_TIMEOUT,
            "job {id} still not finished after {JOB_TIMEOUT:?}: {job}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The model file of a run (`model/model.json`) and the sha256 the server declares for it.
pub async fn model_file(client: &Client<'_>, run_id: &str) -> (Vec<u8>, String) {
    let response = client
        .request(
            Method::GET,
            &format!("/api/v1/runs/{run_id}/artifacts/model/model.json"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let header = response.headers()["x-content-sha256"]
        .to_str()
        .unwrap()
        .to_string();
    (response.bytes().await.unwrap().to_vec(), header)
}
