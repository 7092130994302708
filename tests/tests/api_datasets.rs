//! Machine-data history over HTTP: a scientist creates datasets and snapshots, a gateway (role
//! `ingest`) sends readings and labels as JSON arrays or NDJSON, an operator reads it all back —
//! counts, dead letters, snapshot rows as NDJSON and CSV, verification. Ends with the 10,000 rows
//! of the AI4I 2020 data set sent through the API. Every test runs on SQLite and on PostgreSQL.

use std::io::Write;

use refit_registry::datasets::Schema;
use refit_registry::tokens::Role;
use refit_tests::{
    Db, TestApp, expect_error, expect_json, on_both_databases, spawn_app, spawn_app_with,
};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

on_both_databases!(
    datasets_are_created_validated_and_listed,
    records_are_stored_once_whatever_is_resent,
    bad_records_are_refused_one_by_one,
    bodies_are_bounded_and_may_be_gzipped,
    labels_arrive_with_readings_or_later,
    snapshots_select_stream_and_verify,
    ai4i_history_through_the_api,
);

/// 2023-11-14T22:13:20Z.
const T0: i64 = 1_700_000_000_000;

/// Calls the API as one token holder.
struct Client<'a> {
    app: &'a TestApp,
    token: String,
}

impl<'a> Client<'a> {
    async fn new(app: &'a TestApp, name: &str, role: Role) -> Client<'a> {
        Client {
            app,
            token: app.token(name, role).await,
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.app.as_token(&self.token, method, path)
    }

    /// Sends `body` as JSON (unless null), expects `status`, returns the JSON answer.
    async fn call(&self, method: Method, path: &str, body: Value, status: u16) -> Value {
        let mut request = self.request(method.clone(), path);
        if !body.is_null() {
            request = request.json(&body);
        }
        expect_json(request.send().await.unwrap(), status).await
    }

    async fn get(&self, path: &str) -> Value {
        self.call(Method::GET, path, Value::Null, 200).await
    }

    /// Sends `body` with this content type to `path` (POST).
    async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.request(Method::POST, path)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Sends records (a JSON array) to a dataset and returns the ingest report.
    async fn ingest(&self, dataset: &str, records: Value) -> Value {
        self.call(
            Method::POST,
            &format!("/api/v1/datasets/{dataset}/records"),
            records,
            200,
        )
        .await
    }

    /// Sends NDJSON to a dataset and returns the ingest report.
    async fn ingest_ndjson(&self, dataset: &str, body: &str) -> Value {
        let response = self
            .post_raw(
                &format!("/api/v1/datasets/{dataset}/records"),
                "application/x-ndjson",
                body.to_string(),
            )
            .await;
        expect_json(response, 200).await
    }

    async fn labels(&self, dataset: &str, labels: Value) -> Value {
        self.call(
            Method::POST,
            &format!("/api/v1/datasets/{dataset}/labels"),
            labels,
            200,
        )
        .await
    }

    async fn snapshot(&self, dataset: &str, request: Value) -> Value {
        self.call(
            Method::POST,
            &format!("/api/v1/datasets/{dataset}/snapshots"),
            request,
            201,
        )
        .await
    }

    /// A text response: its content type and body, after checking for a 200.
    async fn text(&self, path: &str) -> (String, String) {
        let response = self.request(Method::GET, path).send().await.unwrap();
        let status = response.status();
        let kind = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let text = response.text().await.unwrap();
        assert_eq!(status, 200, "{path}: {text}");
        (kind, text)
    }

    /// A snapshot's rows as NDJSON, parsed line by line.
    async fn rows(&self, dataset: &str, id: &Value) -> Vec<Value> {
        let (kind, text) = self
            .text(&format!("/api/v1/datasets/{dataset}/snapshots/{id}/rows"))
            .await;
        assert_eq!(kind, "application/x-ndjson");
        assert!(text.is_empty() || text.ends_with('\n'), "{text:?}");
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

/// A scientist, a gateway and an operator.
async fn people(app: &TestApp) -> (Client<'_>, Client<'_>, Client<'_>) {
    (
        Client::new(app, "alice", Role::Scientist).await,
        Client::new(app, "gateway-7", Role::Ingest).await,
        Client::new(app, "olga", Role::Operator).await,
    )
}

fn press_schema() -> Value {
    json!({
        "features": [
            {"name": "temp", "kind": "numeric", "nullable": false},
            {"name": "Type", "kind": "categorical", "nullable": false},
            {"name": "wear", "kind": "numeric", "nullable": true},
        ],
        "labels": [{"name": "failure", "kind": "numeric", "nullable": false}],
    })
}

async fn create_press(alice: &Client<'_>) -> Value {
    let mut body = press_schema();
    body["name"] = json!("press");
    alice
        .call(Method::POST, "/api/v1/datasets", body, 201)
        .await
}

/// Asserts an ingest report: counts, and per rejection its index, field and reason fragment.
#[track_caller]
fn assert_report(
    report: &Value,
    accepted: u64,
    duplicates: u64,
    rejected: &[(u64, Option<&str>, &str)],
) {
    assert_eq!(report["accepted"], accepted, "{report:#}");
    assert_eq!(report["duplicates"], duplicates, "{report:#}");
    let got = report["rejected"].as_array().expect("rejected is a list");
    assert_eq!(got.len(), rejected.len(), "{report:#}");
    for (r, (index, field, reason)) in got.iter().zip(rejected) {
        assert_eq!(r["index"], *index, "{r}");
        assert_eq!(r["field"].as_str(), *field, "{r}");
        let text = r["reason"].as_str().unwrap();
        assert!(text.contains(reason), "reason {text:?} lacks {reason:?}");
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// A raw connection to the app's database, for changing rows behind its back.
async fn raw_pool(url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap()
}

async fn datasets_are_created_validated_and_listed(db: Db) {
    let app = spawn_app(db).await;
    let (alice, gateway, olga) = people(&app).await;

    let before = refit_registry::db::now_ms();
    let created = create_press(&alice).await;
    let created_at = created["created_at"].as_i64().unwrap();
    assert!(created_at >= before);
    assert_eq!(
        created,
        json!({
            "name": "press",
            "created_at": created_at,
            "schema_version": 1,
            "schema": press_schema(),
            "retention_days": null,
        })
    );
    alice
        .call(
            Method::POST,
            "/api/v1/datasets",
            json!({"name": "lathe", "features": [{"name": "rpm", "kind": "numeric"}],
                   "retention_days": 30}),
            201,
        )
        .await;

    // Refused: the reason names the problem.
    let column = |name: &str| json!({"name": name, "kind": "numeric"});
    let bad = [
        (
            json!({"name": "x", "features": [column("a"), column("a")]}),
            "features[1]: column 'a' appears twice",
        ),
        (
            json!({"name": "x", "features": [column("a")], "labels": [column("a")]}),
            "labels[0]: column 'a' appears twice",
        ),
        (
            json!({"name": "x", "features": [column("machine_id")]}),
            "'machine_id' is the record's entity key and cannot be a column",
        ),
        (
            json!({"name": "x", "features": [column("a")], "labels": [column("ts")]}),
            "'ts' is the record's event time and cannot be a column",
        ),
        (
            json!({"name": "x", "features": []}),
            "a schema needs at least one feature column",
        ),
        (
            json!({"name": "no spaces", "features": [column("a")]}),
            "invalid dataset name 'no spaces'",
        ),
        (
            json!({"name": "", "features": [column("a")]}),
            "invalid dataset name ''",
        ),
        (
            json!({"name": "x", "features": [{"name": "a", "kind": "float"}]}),
            "unknown variant `float`",
        ),
        (
            json!({"name": "x", "features": [{"name": "a", "kind": "numeric", "nulable": true}]}),
            "unknown field `nulable`",
        ),
        (
            json!({"name": "x", "features": [column("a")], "retention_days": 0}),
            "retention_days must be at least 1",
        ),
        (json!({"name": "x"}), "missing field `features`"),
    ];
    for (body, fragment) in bad {
        let response = alice
            .request(Method::POST, "/api/v1/datasets")
            .json(&body)
            .send()
            .await
            .unwrap();
        expect_error(response, 400, "INVALID_PARAMETER_VALUE", fragment).await;
    }
    let response = alice
        .request(Method::POST, "/api/v1/datasets")
        .json(&json!({"name": "press", "features": [column("a")]}))
        .send()
        .await
        .unwrap();
    expect_error(
        response,
        409,
        "RESOURCE_ALREADY_EXISTS",
        "A dataset named 'press' already exists",
    )
    .await;
    // A gateway sends data but does not define it.
    let response = gateway
        .request(Method::POST, "/api/v1/datasets")
        .json(&json!({"name": "mine", "features": [column("a")]}))
        .send()
        .await
        .unwrap();
    expect_error(response, 403, "PERMISSION_DENIED", "role 'ingest'").await;

    // Read back, with counts, by the operator.
    let listed = olga.get("/api/v1/datasets").await;
    let names: Vec<&str> = listed["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["lathe", "press"]);
    assert_eq!(listed["datasets"][1], created);
    assert_eq!(listed["datasets"][0]["retention_days"], 30);
    let mut detail = created.clone();
    detail["records"] = json!(0);
    detail["labels"] = json!(0);
    assert_eq!(olga.get("/api/v1/datasets/press").await, detail);
    expect_error(
        olga.request(Method::GET, "/api/v1/datasets/nope")
            .send()
            .await
            .unwrap(),
        404,
        "RESOURCE_DOES_NOT_EXIST",
        "No dataset named 'nope'",
    )
    .await;

    gateway
        .ingest(
            "press",
            json!([
                {"machine_id": "M1", "ts": T0, "temp": 300.5, "Type": "L", "failure": 0},
                {"machine_id": "M1", "ts": T0 + 1000, "temp": 300.6, "Type": "L"},
            ]),
        )
        .await;
    let counted = olga.get("/api/v1/datasets/press").await;
    assert_eq!(
        (&counted["records"], &counted["labels"]),
        (&json!(2), &json!(1))
    );

    // Schema versions: the same schema is no change; a different one is version 2.
    let same = alice
        .call(
            Method::PUT,
            "/api/v1/datasets/press/schema",
            press_schema(),
            200,
        )
        .await;
    assert_eq!(same["schema_version"], 1);
    let mut v2 = press_schema();
    v2["features"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "rpm", "kind": "numeric", "nullable": true}));
    let updated = alice
        .call(
            Method::PUT,
            "/api/v1/datasets/press/schema",
            v2.clone(),
            200,
        )
        .await;
    assert_eq!(updated["schema_version"], 2);
    assert_eq!(updated["schema"], v2);
    let again = alice
        .call(
            Method::PUT,
            "/api/v1/datasets/press/schema",
            v2.clone(),
            200,
        )
        .await;
    assert_eq!(again["schema_version"], 2);
    let mut bad_schema = v2.clone();
    bad_schema["features"][3]["name"] = json!("temp");
    expect_error(
        alice
            .request(Method::PUT, "/api/v1/datasets/press/schema")
            .json(&bad_schema)
            .send()
            .await
            .unwrap(),
        400,
        "INVALID_PARAMETER_VALUE",
        "features[3]: column 'temp' appears twice",
    )
    .await;
    let versions = olga.get("/api/v1/datasets/press/schema").await["versions"].clone();
    let versions = versions.as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(
        (&versions[0]["version"], &versions[0]["schema"]),
        (&json!(1), &press_schema())
    );
    assert_eq!(
        (&versions[1]["version"], &versions[1]["schema"]),
        (&json!(2), &v2)
    );
    let detail = olga.get("/api/v1/datasets/press").await;
    assert_eq!(detail["schema_version"], 2);
    assert_eq!(detail["records"], 2);

    // Retention.
    let set = alice
        .call(
            Method::PATCH,
            "/api/v1/datasets/press",
            json!({"retention_days": 30}),
            200,
        )
        .await;
    assert_eq!(set["retention_days"], 30);
    for (body, fragment) in [
        (
            json!({"retention_days": 0}),
            "retention_days must be at least 1",
        ),
        (
            json!({"retention_days": -3}),
            "retention_days must be at least 1",
        ),
        (json!({"retention_days": "forever"}), "invalid type: string"),
        (json!({"keep_days": 3}), "unknown field `keep_days`"),
    ] {
        expect_error(
            alice
                .request(Method::PATCH, "/api/v1/datasets/press")
                .json(&body)
                .send()
                .await
                .unwrap(),
            400,
            "INVALID_PARAMETER_VALUE",
            fragment,
        )
        .await;
    }
    assert_eq!(
        olga.get("/api/v1/datasets/press").await["retention_days"],
        30
    );
    let cleared = alice
        .call(
            Method::PATCH,
            "/api/v1/datasets/press",
            json!({"retention_days": null}),
            200,
        )
        .await;
    assert_eq!(cleared["retention_days"], Value::Null);
}

async fn records_are_stored_once_whatever_is_resent(db: Db) {
    let app = spawn_app(db).await;
    let (alice, gateway, olga) = people(&app).await;
    create_press(&alice).await;

    let report = gateway
        .ingest(
            "press",
            json!([
                {"machine_id": "M1", "ts": T0, "temp": 300.5, "Type": "L", "wear": 1},
                {"machine_id": "M1", "ts": "2023-11-14T22:13:21Z", "temp": 300.75, "Type": "L"},
                {"machine_id": "M2", "ts": T0, "temp": 301, "Type": "H", "failure": 0},
            ]),
        )
        .await;
    assert_eq!(
        report,
        json!({"accepted": 3, "duplicates": 0, "rejected": []})
    );

    // The same keys again as NDJSON with other values (and a label), plus one new record.
    let resent = [
        json!({"machine_id": "M1", "ts": "2023-11-14T23:13:20+01:00", "temp": 1.0, "Type": "M", "wear": 9}),
        json!({"machine_id": "M1", "ts": T0 + 1000, "temp": 2.0, "Type": "M", "failure": 1}),
        json!({"machine_id": "M2", "ts": T0, "temp": 3.0, "Type": "M", "failure": 1}),
        json!({"machine_id": "M3", "ts": T0, "temp": 4.5, "Type": "M"}),
    ]
    .map(|v| v.to_string())
    .join("\n");
    let report = gateway.ingest_ndjson("press", &resent).await;
    assert_eq!(
        report,
        json!({"accepted": 1, "duplicates": 3, "rejected": []})
    );
    let report = gateway.ingest_ndjson("press", &resent).await;
    assert_eq!(
        report,
        json!({"accepted": 0, "duplicates": 4, "rejected": []})
    );
    // `application/ndjson` and `application/jsonl` are NDJSON too.
    for kind in ["application/ndjson", "application/jsonl; charset=utf-8"] {
        let response = gateway
            .post_raw("/api/v1/datasets/press/records", kind, resent.clone())
            .await;
        assert_report(&expect_json(response, 200).await, 0, 4, &[]);
    }

    let detail = olga.get("/api/v1/datasets/press").await;
    assert_eq!(
        (&detail["records"], &detail["labels"]),
        (&json!(4), &json!(1))
    );
    let snap = alice.snapshot("press", json!({})).await;
    assert_eq!(snap["row_count"], 4);
    assert_eq!(
        olga.rows("press", &snap["id"]).await,
        [
            json!({"machine_id": "M1", "ts": "2023-11-14T22:13:20Z", "temp": 300.5, "Type": "L", "wear": 1.0}),
            json!({"machine_id": "M2", "ts": "2023-11-14T22:13:20Z", "temp": 301.0, "Type": "H", "wear": null, "failure": 0.0}),
            json!({"machine_id": "M3", "ts": "2023-11-14T22:13:20Z", "temp": 4.5, "Type": "M", "wear": null}),
            json!({"machine_id": "M1", "ts": "2023-11-14T22:13:21Z", "temp": 300.75, "Type": "L", "wear": null}),
        ]
    );
    let letters = olga.get("/api/v1/datasets/press/dead-letters").await;
    assert_eq!(letters, json!({"dead_letters": []}));
    expect_error(
        gateway
            .request(Method::POST, "/api/v1/datasets/nope/records")
            .json(&json!([]))
            .send()
            .await
            .unwrap(),
        404,
        "RESOURCE_DOES_NOT_EXIST",
        "No dataset named 'nope'",
    )
    .await;
}

async fn bad_records_are_refused_one_by_one(db: Db) {
    let app = spawn_app(db).await;
    let (alice, gateway, olga) = people(&app).await;
    create_press(&alice).await;
    let future = refit_registry::db::now_ms() + 3 * 24 * 3600 * 1000;

    let records = [
        r#"{"machine_id": "ok-1", "ts": 1700000000000, "temp": 1.5, "Type": "L"}"#.to_string(),
        r#"{"machine_id": "M", "ts": 1700000000000, "Type": "L"}"#.to_string(),
        r#"{"machine_id": "M", "ts": 1700000000000, "temp": 1, "Type": "L", "colour": "red"}"#
            .to_string(),
        r#"{"machine_id": "M", "ts": 1700000000000, "temp": {"v": 1}, "Type": "L"}"#.to_string(),
        r#"{"machine_id": "M", "ts": 1700000000000, "temp": "NaN", "Type": "L"}"#.to_string(),
        r#"{"machine_id": "M", "ts": "14/11/2023 22:13", "temp": 1, "Type": "L"}"#.to_string(),
        format!(r#"{{"machine_id": "M", "ts": {future}, "temp": 1, "Type": "L"}}"#),
        r#"{"ts": 1700000000000, "temp": 1, "Type": "L"}"#.to_string(),
        r#"{"machine_id": true, "ts": 1700000000000, "temp": 1, "Type": "L"}"#.to_string(),
        r#""just a string""#.to_string(),
        r#"{"machine_id": "ok-2", "ts": "2023-11-14T22:13:20.5Z", "temp": 2, "Type": "H", "wear": null}"#
            .to_string(),
    ];
    let response = gateway
        .post_raw(
            "/api/v1/datasets/press/records",
            "application/json",
            format!("[{}]", records.join(", ")),
        )
        .await;
    let array_report = expect_json(response, 200).await;
    let expected: [(u64, Option<&str>, &str); 9] = [
        (1, Some("temp"), "missing value for 'temp'"),
        (
            2,
            Some("colour"),
            "unknown field: 'colour' is not a column of the dataset's schema",
        ),
        (
            3,
            Some("temp"),
            "expected a number or string, got an array or object",
        ),
        (
            4,
            Some("temp"),
            "which does not accept missing values (NaN counts as missing)",
        ),
        (
            5,
            Some("ts"),
            "ts \"14/11/2023 22:13\" is not an RFC 3339 time",
        ),
        (6, Some("ts"), "is too far in the future"),
        (7, Some("machine_id"), "missing machine_id"),
        (8, Some("machine_id"), "machine_id must be a string"),
        (9, None, "not a JSON object"),
    ];
    assert_report(&array_report, 2, 0, &expected);

    // NDJSON: a line that is not JSON is refused alone, by its line number minus one.
    let ndjson = concat!(
        "{\"machine_id\": \"ok-3\", \"ts\": 1700000000000, \"temp\": 3, \"Type\": \"M\"}\n",
        "{\"machine_id\": \"M\", \"ts\": 1700000000000, \"temp\": 3,\n",
        "\n",
        "{\"machine_id\": \"ok-4\", \"ts\": 1700000000000, \"temp\": 4, \"Type\": \"M\"}\n",
    );
    let report = gateway.ingest_ndjson("press", ndjson).await;
    assert_report(&report, 2, 0, &[(1, None, "not a JSON object")]);

    // Every refusal is a dead letter, newest first, with what was sent.
    let letters = olga.get("/api/v1/datasets/press/dead-letters").await["dead_letters"].clone();
    let letters = letters.as_array().unwrap();
    assert_eq!(letters.len(), 10);
    let newest = &letters[0];
    assert_eq!(newest["record_index"], 1);
    assert_eq!(newest["field"], Value::Null);
    assert_eq!(newest["source"], "api");
    assert_eq!(
        newest["raw"],
        "{\"machine_id\": \"M\", \"ts\": 1700000000000, \"temp\": 3,"
    );
    assert!(newest["received_at"].as_i64().unwrap() > T0);
    let oldest_first = letters[1..].iter().rev();
    for ((letter, (index, field, _)), rejection) in oldest_first
        .zip(&expected)
        .zip(array_report["rejected"].as_array().unwrap())
    {
        assert_eq!(letter["record_index"], *index, "{letter}");
        assert_eq!(letter["field"].as_str(), *field, "{letter}");
        assert_eq!(letter["source"], "api");
        assert_eq!(letter["reason"], rejection["reason"], "{letter}");
        assert_eq!(letter["raw"], records[*index as usize].as_str());
    }
    // Paging.
    let page = olga
        .get("/api/v1/datasets/press/dead-letters?limit=2")
        .await["dead_letters"]
        .clone();
    assert_eq!(page.as_array().unwrap().len(), 2);
    assert_eq!(page[1]["record_index"], 9);
    let before = page[1]["id"].as_i64().unwrap();
    let older = olga
        .get(&format!(
            "/api/v1/datasets/press/dead-letters?limit=3&before={before}"
        ))
        .await["dead_letters"]
        .clone();
    let indexes: Vec<i64> = older
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["record_index"].as_i64().unwrap())
        .collect();
    assert_eq!(indexes, [8, 7, 6]);
    expect_error(
        olga.request(
            Method::GET,
            "/api/v1/datasets/press/dead-letters?limit=many",
        )
        .send()
        .await
        .unwrap(),
        400,
        "INVALID_PARAMETER_VALUE",
        "invalid query string",
    )
    .await;

    // A body that is not a JSON array is refused whole: nothing stored, nothing dead-lettered.
    for body in [
        records[0].clone(),
        format!("[{}", records[0]),
        "{\"records\": []}".to_string(),
        "".to_string(),
    ] {
        let response = gateway
            .post_raw("/api/v1/datasets/press/records", "application/json", body)
            .await;
        expect_error(
            response,
            400,
            "INVALID_PARAMETER_VALUE",
            "the body is not a JSON array of records",
        )
        .await;
    }
    let response = gateway
        .post_raw(
            "/api/v1/datasets/press/records",
            "application/json",
            vec![b'[', 0xff, 0xfe, b']'],
        )
        .await;
    expect_error(
        response,
        400,
        "INVALID_PARAMETER_VALUE",
        "the body is not UTF-8",
    )
    .await;
    let detail = olga.get("/api/v1/datasets/press").await;
    assert_eq!(detail["records"], 4);
    assert_eq!(
        olga.get("/api/v1/datasets/press/dead-letters").await["dead_letters"]
            .as_array()
            .unwrap()
            .len(),
        10
    );
    let snap = alice.snapshot("press", json!({})).await;
    let machines: Vec<Value> = olga
        .rows("press", &snap["id"])
        .await
        .into_iter()
        .map(|r| json!([r["machine_id"], r["ts"]]))
        .collect();
    assert_eq!(
        machines,
        [
            json!(["ok-1", "2023-11-14T22:13:20Z"]),
            json!(["ok-3", "2023-11-14T22:13:20Z"]),
            json!(["ok-4", "2023-11-14T22:13:20Z"]),
            json!(["ok-2", "2023-11-14T22:13:20.5Z"]),
        ]
    );
}

async fn bodies_are_bounded_and_may_be_gzipped(db: Db) {
    const LIMIT: u64 = 64 << 10;
    let app = spawn_app_with(db, |config| config.max_body_size = LIMIT).await;
    let (alice, gateway, olga) = people(&app).await;
    create_press(&alice).await;

    // gzip, as JSON and as NDJSON.
    let json_body = json!([
        {"machine_id": "Z1", "ts": T0, "temp": 1.25, "Type": "L"},
        {"machine_id": "Z1", "ts": T0 + 1, "temp": "hot", "Type": "L"},
    ])
    .to_string();
    let response = gateway
        .request(Method::POST, "/api/v1/datasets/press/records")
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gzip(json_body.as_bytes()))
        .send()
        .await
        .unwrap();
    assert_report(
        &expect_json(response, 200).await,
        1,
        0,
        &[(1, Some("temp"), "expected a number, got the string \"hot\"")],
    );
    let ndjson: String = (0..500)
        .map(|i| {
            format!(
                "{{\"machine_id\": \"Z2\", \"ts\": {}, \"temp\": {i}, \"Type\": \"M\"}}\n",
                T0 + i
            )
        })
        .collect();
    assert!(ndjson.len() < LIMIT as usize);
    let response = gateway
        .request(Method::POST, "/api/v1/datasets/press/records")
        .header("content-type", "application/x-ndjson")
        .header("content-encoding", "gzip")
        .body(gzip(ndjson.as_bytes()))
        .send()
        .await
        .unwrap();
    assert_report(&expect_json(response, 200).await, 500, 0, &[]);
    // gzip of labels too.
    let response = gateway
        .request(Method::POST, "/api/v1/datasets/press/labels")
        .header("content-type", "application/x-ndjson")
        .header("content-encoding", "gzip")
        .body(gzip(
            format!("{{\"machine_id\": \"Z2\", \"ts\": {T0}, \"failure\": 1}}\n").as_bytes(),
        ))
        .send()
        .await
        .unwrap();
    assert_report(&expect_json(response, 200).await, 1, 0, &[]);

    // Over the limit, plain or once inflated: 413, and nothing is stored.
    let big: String = (0..2_000)
        .map(|i| {
            format!(
                "{{\"machine_id\": \"Z3\", \"ts\": {}, \"temp\": {i}, \"Type\": \"M\"}}\n",
                T0 + i
            )
        })
        .collect();
    assert!(big.len() > LIMIT as usize);
    let response = gateway
        .post_raw(
            "/api/v1/datasets/press/records",
            "application/x-ndjson",
            big.clone(),
        )
        .await;
    expect_error(
        response,
        413,
        "REQUEST_TOO_LARGE",
        "larger than the limit of 65536 bytes",
    )
    .await;
    let compressed = gzip(big.as_bytes());
    assert!(compressed.len() < LIMIT as usize);
    let response = gateway
        .request(Method::POST, "/api/v1/datasets/press/records")
        .header("content-type", "application/x-ndjson")
        .header("content-encoding", "gzip")
        .body(compressed)
        .send()
        .await
        .unwrap();
    expect_error(
        response,
        413,
        "REQUEST_TOO_LARGE",
        "larger than the limit of 65536 bytes (after decompression)",
    )
    .await;
    let response = gateway
        .request(Method::POST, "/api/v1/datasets/press/labels")
        .header("content-type", "application/x-ndjson")
        .body(big)
        .send()
        .await
        .unwrap();
    expect_error(response, 413, "REQUEST_TOO_LARGE", "larger than the limit").await;
    let detail = olga.get("/api/v1/datasets/press").await;
    assert_eq!(
        (&detail["records"], &detail["labels"]),
        (&json!(501), &json!(1))
    );
    assert_eq!(
        olga.get("/api/v1/datasets/press/dead-letters").await["dead_letters"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

async fn labels_arrive_with_readings_or_later(db: Db) {
    let app = spawn_app(db).await;
    let (alice, gateway, olga) = people(&app).await;
    create_press(&alice).await;
    let report = gateway
        .ingest(
            "press",
            json!([
                {"machine_id": "M1", "ts": T0, "temp": 1, "Type": "L", "failure": 1},
                {"machine_id": "M1", "ts": T0 + 1000, "temp": 2, "Type": "L"},
                {"machine_id": "M2", "ts": T0, "temp": 3, "Type": "H"},
            ]),
        )
        .await;
    assert_report(&report, 3, 0, &[]);
    assert_eq!(olga.get("/api/v1/datasets/press").await["labels"], 1);

    let report = gateway
        .labels(
            "press",
            json!([
                {"machine_id": "M9", "ts": T0, "failure": 1},
                {"machine_id": "M1", "ts": T0, "failure": 1},
                {"machine_id": "M1", "ts": T0, "failure": 0},
                {"machine_id": "M1", "ts": "2023-11-14T22:13:21Z", "failure": 0},
                {"machine_id": "M2", "ts": T0, "temp": 3, "failure": 0},
            ]),
        )
        .await;
    assert_report(
        &report,
        1,
        1,
        &[
            (
                0,
                None,
                "no reading for machine_id 'M9' at 2023-11-14T22:13:20Z",
            ),
            (
                2,
                None,
                "labels for this reading are already stored with other values",
            ),
            (4, Some("temp"), "'temp' is a feature"),
        ],
    );
    // The same again: what was stored is now a duplicate, the refusals are refused again.
    let report = gateway
        .labels(
            "press",
            json!([{"machine_id": "M1", "ts": T0 + 1000, "failure": 0}]),
        )
        .await;
    assert_report(&report, 0, 1, &[]);
    // A reading stored under schema version 1 takes no label once version 2 is current.
    let mut v2 = press_schema();
    v2["labels"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "mode", "kind": "categorical", "nullable": true}));
    alice
        .call(Method::PUT, "/api/v1/datasets/press/schema", v2, 200)
        .await;
    gateway
        .ingest(
            "press",
            json!([{"machine_id": "M3", "ts": T0, "temp": 4, "Type": "M", "failure": 0, "mode": "none"}]),
        )
        .await;
    let response = gateway
        .post_raw(
            "/api/v1/datasets/press/labels",
            "application/x-ndjson",
            format!(
                "{{\"machine_id\": \"M2\", \"ts\": {T0}, \"failure\": 0, \"mode\": \"TWF\"}}\n"
            ),
        )
        .await;
    assert_report(
        &expect_json(response, 200).await,
        0,
        0,
        &[(
            0,
            None,
            "the reading was stored under schema version 1; labels follow version 2",
        )],
    );
    let detail = olga.get("/api/v1/datasets/press").await;
    assert_eq!(
        (&detail["records"], &detail["labels"]),
        (&json!(4), &json!(3))
    );

    let letters = olga.get("/api/v1/datasets/press/dead-letters").await["dead_letters"].clone();
    let summary: Vec<Value> = letters
        .as_array()
        .unwrap()
        .iter()
        .map(|l| json!([l["source"], l["record_index"], l["field"]]))
        .collect();
    assert_eq!(
        summary,
        [
            json!(["labels", 0, null]),
            json!(["labels", 4, "temp"]),
            json!(["labels", 2, null]),
            json!(["labels", 0, null]),
        ]
    );
    // Each keeps the labels that were refused.
    let raw =
        |i: usize| -> Value { serde_json::from_str(letters[i]["raw"].as_str().unwrap()).unwrap() };
    assert_eq!(
        raw(0),
        json!({"machine_id": "M2", "ts": T0, "failure": 0.0, "mode": "TWF"})
    );
    assert_eq!(
        raw(1),
        json!({"machine_id": "M2", "ts": T0, "temp": 3, "failure": 0})
    );
    assert_eq!(
        raw(2),
        json!({"machine_id": "M1", "ts": T0, "failure": 0.0})
    );
    assert_eq!(
        raw(3),
        json!({"machine_id": "M9", "ts": T0, "failure": 1.0})
    );

    // Version 1's snapshot shows the labels its rows have.
    let old = alice.snapshot("press", json!({"schema_version": 1})).await;
    assert_eq!(
        olga.rows("press", &old["id"]).await,
        [
            json!({"machine_id": "M1", "ts": "2023-11-14T22:13:20Z", "temp": 1.0, "Type": "L", "wear": null, "failure": 1.0}),
            json!({"machine_id": "M2", "ts": "2023-11-14T22:13:20Z", "temp": 3.0, "Type": "H", "wear": null}),
            json!({"machine_id": "M1", "ts": "2023-11-14T22:13:21Z", "temp": 2.0, "Type": "L", "wear": null, "failure": 0.0}),
        ]
    );
    let new = alice.snapshot("press", json!({})).await;
    assert_eq!(
        olga.rows("press", &new["id"]).await,
        [
            json!({"machine_id": "M3", "ts": "2023-11-14T22:13:20Z", "temp": 4.0, "Type": "M", "wear": null, "failure": 0.0, "mode": "none"})
        ]
    );
}

async fn snapshots_select_stream_and_verify(db: Db) {
    let mut database_url = String::new();
    let app = spawn_app_with(db, |config| database_url = config.database_url.clone()).await;
    let (alice, gateway, olga) = people(&app).await;
    create_press(&alice).await;
    let report = gateway
        .ingest(
            "press",
            json!([
                {"machine_id": "M2", "ts": T0 + 1000, "temp": 2.5, "Type": "H", "wear": 0.5, "failure": 0},
                {"machine_id": "M10", "ts": T0 + 250, "temp": 10, "Type": "say \"hi\", ok", "failure": 1},
                {"machine_id": "M2", "ts": T0, "temp": -1.5, "Type": "L"},
                {"machine_id": "M10", "ts": T0 + 5000, "temp": 11, "Type": "L"},
                {"machine_id": "M1", "ts": T0 + 2000, "temp": 1e21, "Type": "M"},
                {"machine_id": "a1", "ts": T0, "temp": 0, "Type": "M"},
            ]),
        )
        .await;
    assert_report(&report, 6, 0, &[]);

    // [from, to) as RFC 3339 or ms.
    let snap = alice
        .snapshot(
            "press",
            json!({"from": "2023-11-14T22:13:20.250Z", "to": T0 + 5000}),
        )
        .await;
    let id = snap["id"].clone();
    let created_at = snap["created_at"].as_i64().unwrap();
    let digest = snap["digest"].as_str().unwrap().to_string();
    assert_eq!(digest.len(), 64);
    assert!(digest.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(
        snap,
        json!({
            "id": id,
            "dataset": "press",
            "schema_version": 1,
            "ts_from": T0 + 250,
            "ts_to": T0 + 5000,
            "machines": null,
            "max_seq": 6,
            "row_count": 3,
            "digest": digest,
            "created_at": created_at,
            "created_by": "alice",
            "kept": true,
        })
    );
    assert_eq!(
        olga.get(&format!("/api/v1/datasets/press/snapshots/{id}"))
            .await,
        snap
    );

    // NDJSON rows in time order.
    let ndjson = [
        json!({"machine_id": "M10", "ts": "2023-11-14T22:13:20.25Z", "temp": 10.0, "Type": "say \"hi\", ok", "wear": null, "failure": 1.0}),
        json!({"machine_id": "M2", "ts": "2023-11-14T22:13:21Z", "temp": 2.5, "Type": "H", "wear": 0.5, "failure": 0.0}),
        json!({"machine_id": "M1", "ts": "2023-11-14T22:13:22Z", "temp": 1e21, "Type": "M", "wear": null}),
    ];
    assert_eq!(olga.rows("press", &id).await, ndjson);
    let (kind, text) = olga
        .text(&format!(
            "/api/v1/datasets/press/snapshots/{id}/rows?format=ndjson"
        ))
        .await;
    assert_eq!(kind, "application/x-ndjson");
    assert_eq!(text.lines().count(), 3);

    // CSV: a header, then one line per row with every column, empty where missing.
    let (kind, csv) = olga
        .text(&format!(
            "/api/v1/datasets/press/snapshots/{id}/rows?format=csv"
        ))
        .await;
    assert_eq!(kind, "text/csv; charset=utf-8");
    assert_eq!(
        csv,
        concat!(
            "machine_id,ts,temp,Type,wear,failure\n",
            "M10,2023-11-14T22:13:20.25Z,10,\"say \"\"hi\"\", ok\",,1\n",
            "M2,2023-11-14T22:13:21Z,2.5,H,0.5,0\n",
            "M1,2023-11-14T22:13:22Z,1000000000000000000000,M,,\n",
        )
    );

    // The whole history, and only some machines.
    let all = alice.snapshot("press", json!({})).await;
    assert_eq!((&all["row_count"], &all["ts_from"]), (&json!(6), &json!(0)));
    assert_eq!(all["ts_to"], i64::MAX);
    let (_, csv) = olga
        .text(&format!(
            "/api/v1/datasets/press/snapshots/{}/rows?format=csv",
            all["id"]
        ))
        .await;
    let keys: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    // Time order; at T0 "M2" before "a1" (bytewise).
    assert_eq!(keys, ["M2", "a1", "M10", "M2", "M1", "M10"]);
    let some = alice
        .snapshot("press", json!({"machines": ["a1", "M2"], "from": T0}))
        .await;
    assert_eq!(some["machines"], json!(["M2", "a1"]));
    assert_eq!(some["row_count"], 3);
    let empty = alice.snapshot("press", json!({"machines": ["M404"]})).await;
    assert_eq!(empty["row_count"], 0);
    let (_, csv) = olga
        .text(&format!(
            "/api/v1/datasets/press/snapshots/{}/rows?format=csv",
            empty["id"]
        ))
        .await;
    assert_eq!(csv, "machine_id,ts,temp,Type,wear,failure\n");
    assert_eq!(olga.rows("press", &empty["id"]).await, Vec::<Value>::new());
    let listed = olga.get("/api/v1/datasets/press/snapshots").await["snapshots"].clone();
    let ids: Vec<&Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["id"])
        .collect();
    assert_eq!(ids, [&empty["id"], &some["id"], &all["id"], &id]);
    let listed = olga.get("/api/v1/datasets/press/snapshots?limit=1").await["snapshots"].clone();
    assert_eq!(listed.as_array().unwrap().len(), 1);

    // Refusals.
    let refusals = [
        (
            "/api/v1/datasets/press/snapshots",
            json!({"from": T0, "to": T0}),
            400,
            "INVALID_PARAMETER_VALUE",
            "the time range is empty",
        ),
        (
            "/api/v1/datasets/press/snapshots",
            json!({"from": "2023-11-14T22:13:21Z", "to": T0}),
            400,
            "INVALID_PARAMETER_VALUE",
            "the time range is empty",
        ),
        (
            "/api/v1/datasets/press/snapshots",
            json!({"machines": []}),
            400,
            "INVALID_PARAMETER_VALUE",
            "'machines' must list 1 to 10,000 machines",
        ),
        (
            "/api/v1/datasets/press/snapshots",
            json!({"from": "last week"}),
            400,
            "INVALID_PARAMETER_VALUE",
            "is not an RFC 3339 time",
        ),
        (
            "/api/v1/datasets/press/snapshots",
            json!({"until": T0}),
            400,
            "INVALID_PARAMETER_VALUE",
            "unknown field `until`",
        ),
        (
            "/api/v1/datasets/press/snapshots",
            json!({"schema_version": 7}),
            404,
            "RESOURCE_DOES_NOT_EXIST",
            "No schema version 7",
        ),
        (
            "/api/v1/datasets/nope/snapshots",
            json!({}),
            404,
            "RESOURCE_DOES_NOT_EXIST",
            "No dataset named 'nope'",
        ),
    ];
    for (path, body, status, code, fragment) in refusals {
        let response = alice
            .request(Method::POST, path)
            .json(&body)
            .send()
            .await
            .unwrap();
        expect_error(response, status, code, fragment).await;
    }
    for (path, status, code, fragment) in [
        (
            format!("/api/v1/datasets/press/snapshots/{id}/rows?format=xml"),
            400,
            "INVALID_PARAMETER_VALUE",
            "unknown format 'xml': use ndjson or csv",
        ),
        (
            "/api/v1/datasets/press/snapshots/999999/rows".to_string(),
            404,
            "RESOURCE_DOES_NOT_EXIST",
            "No snapshot 999999 of dataset 'press'",
        ),
        (
            "/api/v1/datasets/press/snapshots/999999".to_string(),
            404,
            "RESOURCE_DOES_NOT_EXIST",
            "No snapshot 999999",
        ),
        (
            "/api/v1/datasets/press/snapshots/999999/verify".to_string(),
            404,
            "RESOURCE_DOES_NOT_EXIST",
            "No snapshot 999999",
        ),
        (
            format!("/api/v1/datasets/nope/snapshots/{id}/rows"),
            404,
            "RESOURCE_DOES_NOT_EXIST",
            "No dataset named 'nope'",
        ),
        (
            "/api/v1/datasets/press/snapshots/first".to_string(),
            400,
            "INVALID_PARAMETER_VALUE",
            "invalid path parameter",
        ),
    ] {
        let response = olga.request(Method::GET, &path).send().await.unwrap();
        expect_error(response, status, code, fragment).await;
    }
    let response = gateway
        .request(Method::POST, "/api/v1/datasets/press/snapshots")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    expect_error(response, 403, "PERMISSION_DENIED", "role 'ingest'").await;

    // Late data inside the range, and late labels, leave the snapshot as it was.
    let verify = format!("/api/v1/datasets/press/snapshots/{id}/verify");
    let report = gateway
        .ingest_ndjson(
            "press",
            &[
                json!({"machine_id": "M10", "ts": T0 + 300, "temp": 12, "Type": "L", "failure": 0}),
                json!({"machine_id": "M0", "ts": T0 + 4000, "temp": 13, "Type": "L"}),
            ]
            .map(|v| v.to_string())
            .join("\n"),
        )
        .await;
    assert_report(&report, 2, 0, &[]);
    let report = gateway
        .labels(
            "press",
            json!([{"machine_id": "M1", "ts": T0 + 2000, "failure": 1}]),
        )
        .await;
    assert_report(&report, 1, 0, &[]);
    assert_eq!(
        olga.get(&verify).await,
        json!({
            "snapshot_id": id,
            "ok": true,
            "expected_digest": digest,
            "actual_digest": digest,
            "expected_rows": 3,
            "actual_rows": 3,
        })
    );
    assert_eq!(olga.rows("press", &id).await, ndjson);
    let later = alice
        .snapshot(
            "press",
            json!({"from": "2023-11-14T22:13:20.250Z", "to": T0 + 5000}),
        )
        .await;
    assert_eq!(later["row_count"], 5);
    assert_ne!(later["digest"], digest.as_str());

    // A row deleted behind the server's back: verification fails and says how many rows remain.
    let raw = raw_pool(&database_url).await;
    assert!(refit_tests::tamper_reading(&raw, "M2", T0 + 1000, None).await);
    raw.close().await;
    let result = olga.get(&verify).await;
    assert_eq!(result["ok"], false);
    assert_eq!(result["expected_rows"], 3);
    assert_eq!(result["actual_rows"], 2);
    assert_eq!(result["expected_digest"], digest.as_str());
    assert_ne!(result["actual_digest"], digest.as_str());
    assert_eq!(
        olga.rows("press", &id).await,
        [ndjson[0].clone(), ndjson[2].clone()]
    );
}

/// Reads the AI4I 2020 data set: (UDI, Product ID, Type, five sensor columns as text, Machine
/// failure).
fn ai4i_rows() -> Vec<Vec<String>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/ai4i2020.csv");
    let text = std::fs::read_to_string(path).expect("tests/data/ai4i2020.csv");
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "UDI,Product ID,Type,Air temperature [K],Process temperature [K],Rotational speed [rpm],\
         Torque [Nm],Tool wear [min],Machine failure,TWF,HDF,PWF,OSF,RNF"
    );
    lines
        .map(|l| l.split(',').take(9).map(str::to_string).collect())
        .collect()
}

const AI4I_SENSORS: [&str; 5] = [
    "Air temperature [K]",
    "Process temperature [K]",
    "Rotational speed [rpm]",
    "Torque [Nm]",
    "Tool wear [min]",
];

/// All 10,000 AI4I readings sent as NDJSON in batches, sent again (all duplicates), snapshotted,
/// verified, and streamed back as CSV equal to the source.
async fn ai4i_history_through_the_api(db: Db) {
    let app = spawn_app(db).await;
    let (alice, gateway, olga) = people(&app).await;
    let mut features = vec![json!({"name": "Type", "kind": "categorical"})];
    features.extend(AI4I_SENSORS.map(|s| json!({"name": s, "kind": "numeric"})));
    let created = alice
        .call(
            Method::POST,
            "/api/v1/datasets",
            json!({
                "name": "ai4i",
                "features": features,
                "labels": [{"name": "Machine failure", "kind": "numeric"}],
            }),
            201,
        )
        .await;

    let rows = ai4i_rows();
    assert_eq!(rows.len(), 10_000);
    let lines: Vec<String> = rows
        .iter()
        .map(|r| {
            let mut record = json!({
                "machine_id": r[1],
                "ts": r[0].parse::<i64>().unwrap() * 1000,
                "Type": r[2],
                "Machine failure": r[8].parse::<i64>().unwrap(),
            });
            for (i, sensor) in AI4I_SENSORS.iter().enumerate() {
                record[*sensor] = json!(r[3 + i].parse::<f64>().unwrap());
            }
            record.to_string()
        })
        .collect();
    let send_all = || async {
        let mut totals = (0, 0, 0);
        for batch in lines.chunks(2_500) {
            let report = gateway.ingest_ndjson("ai4i", &batch.join("\n")).await;
            totals.0 += report["accepted"].as_u64().unwrap();
            totals.1 += report["duplicates"].as_u64().unwrap();
            totals.2 += report["rejected"].as_array().unwrap().len();
        }
        totals
    };
    assert_eq!(send_all().await, (10_000, 0, 0));
    assert_eq!(send_all().await, (0, 10_000, 0));
    let detail = olga.get("/api/v1/datasets/ai4i").await;
    assert_eq!(
        (&detail["records"], &detail["labels"]),
        (&json!(10_000), &json!(10_000))
    );

    let snap = alice.snapshot("ai4i", json!({})).await;
    assert_eq!(snap["row_count"], 10_000);
    let verified = olga
        .get(&format!(
            "/api/v1/datasets/ai4i/snapshots/{}/verify",
            snap["id"]
        ))
        .await;
    assert_eq!(verified["ok"], true, "{verified}");
    assert_eq!(verified["actual_rows"], 10_000);
    assert_eq!(verified["actual_digest"], snap["digest"]);

    // The rows stream back as the source says, ordered by Product ID.
    let mut expected = vec![format!(
        "machine_id,ts,Type,{},Machine failure",
        AI4I_SENSORS.join(",")
    )];
    // In (ts, machine_id) order: ts is the UDI, unique per row.
    let mut sorted: Vec<&Vec<String>> = rows.iter().collect();
    sorted.sort_by_key(|r| r[0].parse::<i64>().unwrap());
    for r in sorted {
        let seconds: i64 = r[0].parse().unwrap();
        let ts = format!(
            "1970-01-01T{:02}:{:02}:{:02}Z",
            seconds / 3600,
            seconds / 60 % 60,
            seconds % 60
        );
        let numbers: Vec<String> = r[3..9]
            .iter()
            .map(|x| x.parse::<f64>().unwrap().to_string())
            .collect();
        expected.push(format!("{},{ts},{},{}", r[1], r[2], numbers.join(",")));
    }
    let (_, csv) = olga
        .text(&format!(
            "/api/v1/datasets/ai4i/snapshots/{}/rows?format=csv",
            snap["id"]
        ))
        .await;
    let got: Vec<&str> = csv.lines().collect();
    assert_eq!(got.len(), 10_001);
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g, e, "CSV line {i}");
    }
    let failures = got[1..].iter().filter(|l| l.ends_with(",1")).count();
    assert_eq!(failures, 339);

    // The digest is the one documented in registry/src/datasets/snapshots.rs, computed here from
    // the source file: so it is the same on SQLite and on PostgreSQL.
    let schema: Schema = serde_json::from_value(created["schema"].clone()).unwrap();
    let mut hash = Sha256::new();
    hash.update(b"refit-snapshot-v1\n");
    hash.update(serde_json::to_vec(&schema).unwrap());
    hash.update(b"\n");
    // In (ts, machine_id) order: ts is the UDI, unique per row.
    let mut sorted: Vec<&Vec<String>> = rows.iter().collect();
    sorted.sort_by_key(|r| r[0].parse::<i64>().unwrap());
    for r in sorted {
        hash.update((r[1].len() as u32).to_le_bytes());
        hash.update(r[1].as_bytes());
        hash.update((r[0].parse::<i64>().unwrap() * 1000).to_le_bytes());
        let mut features = vec![2u8];
        features.extend_from_slice(&(r[2].len() as u32).to_le_bytes());
        features.extend_from_slice(r[2].as_bytes());
        for x in &r[3..8] {
            features.push(1);
            features.extend_from_slice(&x.parse::<f64>().unwrap().to_le_bytes());
        }
        hash.update((features.len() as u32).to_le_bytes());
        hash.update(&features);
        let mut labels = vec![1u8];
        labels.extend_from_slice(&r[8].parse::<f64>().unwrap().to_le_bytes());
        hash.update([1u8]);
        hash.update((labels.len() as u32).to_le_bytes());
        hash.update(&labels);
    }
    assert_eq!(snap["digest"], hex::encode(hash.finalize()));
}
