//! Batch scoring over HTTP with a trained champion, in refit's, MLflow's and the Open Inference
//! Protocol's forms: every dialect answers exactly what the stored model file predicts (checked
//! by loading that file in-process), names the version that scored, follows the champion the
//! moment a promotion or rollback moves it, and refuses bad requests with a 4xx naming the cause.

mod ai4i_support;

use ai4i_support::{Client, Crew, FEATURES, ai4i, model_file};
use refit_registry::datasets::Value as Cell;
use refit_registry::tokens::Role;
use refit_scorer::{FeatureFrame, Model, NativeModel};
use refit_tests::{Db, expect_error, expect_json, on_both_databases, spawn_app};
use reqwest::Method;
use serde_json::{Value, json};

on_both_databases!(
    the_champion_scores_in_every_dialect_as_its_model_file_predicts,
    scoring_follows_the_champion_the_moment_it_moves,
);

#[test]
fn bad_scoring_requests_get_a_4xx_naming_the_cause() {
    // One database is enough: nothing here reaches the database after the model is loaded.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(bad_requests(Db::Sqlite));
}

/// Logistic regression on `Machine failure`, promoted by any first training.
fn spec(name: &str) -> Value {
    json!({
        "name": name,
        "dataset": "ai4i",
        "task": "binary",
        "target": "Machine failure",
        "features": FEATURES,
        "algorithm": "logistic_regression",
        "holdout": {"fraction": 0.2},
    })
}

/// A trained champion of `model` on AI4I's first 3,000 readings.
async fn trained(crew: &Crew<'_>, model: &str) -> Value {
    crew.create_dataset("ai4i").await;
    assert_eq!(crew.ingest("ai4i", 1..=3000).await, 3000);
    crew.create_spec(&spec(model)).await;
    let first = crew.train_ok(model).await;
    assert_eq!(first["decision"], "promoted", "{first}");
    first
}

/// The model file of a run, loaded as the server loads it.
async fn native_model(client: &Client<'_>, run_id: &str) -> NativeModel {
    NativeModel::from_json(&model_file(client, run_id).await.0).unwrap()
}

/// AI4I readings `udis` as (JSON record with every field, the model's input cells).
fn rows(udis: std::ops::RangeInclusive<i64>) -> Vec<(Value, Vec<Cell>)> {
    ai4i()
        .iter()
        .filter(|r| udis.contains(&r.udi))
        .map(|r| {
            let mut record = json!({"machine_id": r.product, "ts": r.udi * 1000, "Type": r.kind});
            let mut cells = vec![Cell::Text(r.kind.clone())];
            for (name, x) in FEATURES[1..].iter().zip(r.sensors) {
                record[*name] = json!(x);
                cells.push(Cell::Number(x));
            }
            record["Machine failure"] = json!(r.labels[0]);
            (record, cells)
        })
        .collect()
}

/// What `model` predicts for `rows`: (class label, probability of each class).
fn expected(model: &NativeModel, rows: &[(Value, Vec<Cell>)]) -> Vec<(String, Vec<f64>)> {
    let frame = FeatureFrame::from_rows(
        rows.iter().map(|(_, cells)| cells.as_slice()),
        &[0, 1, 2, 3, 4, 5],
        &[false, true, true, true, true, true],
    );
    let p = model.predict(&frame).unwrap();
    let classes = &model.info().classes;
    let proba = p.probabilities.unwrap();
    p.values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            (
                classes[v as usize].clone(),
                proba[i * classes.len()..(i + 1) * classes.len()].to_vec(),
            )
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * b.abs().max(1.0)
}

async fn the_champion_scores_in_every_dialect_as_its_model_file_predicts(db: Db) {
    let app = spawn_app(db).await;
    let crew = Crew::new(&app).await;
    let first = trained(&crew, "failure").await;
    let model = native_model(&crew.oscar, first["run_id"].as_str().unwrap()).await;
    assert_eq!(model.info().classes, ["0", "1"]);
    let consumer = Client::new(&app, "dashboard", Role::Consumer).await;
    let rows = rows(3001..=3200);
    let want = expected(&model, &rows);
    // Both classes occur, or the comparison would prove little.
    assert!(want.iter().any(|(c, _)| c == "0"));
    assert!(want.iter().any(|(_, p)| p[1] > 0.2), "{want:?}");

    // refit's own form: records with extra fields, machine_id and ts echoed.
    let records: Vec<Value> = rows.iter().map(|(r, _)| r.clone()).collect();
    let scored = consumer
        .post(
            "/api/v1/models/failure/score",
            Value::Array(records.clone()),
        )
        .await;
    assert_eq!(scored["model"], "failure");
    assert_eq!(scored["version"], 1);
    assert_eq!(scored["classes"], json!(["0", "1"]));
    let scores = scored["scores"].as_array().unwrap();
    assert_eq!(scores.len(), rows.len());
    for ((score, (record, _)), (label, proba)) in scores.iter().zip(&rows).zip(&want) {
        assert_eq!(score["machine_id"], record["machine_id"]);
        assert_eq!(score["ts"], record["ts"]);
        assert_eq!(score["prediction"], json!(label));
        for (class, p) in ["0", "1"].iter().zip(proba) {
            let got = score["probabilities"][class].as_f64().unwrap();
            assert!(close(got, *p), "{got} vs {p}");
        }
    }
    // The same as NDJSON.
    let ndjson: Vec<String> = records.iter().map(Value::to_string).collect();
    let response = consumer
        .request(Method::POST, "/api/v1/models/failure/score")
        .header("content-type", "application/x-ndjson")
        .body(ndjson.join("\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(response, 200).await["scores"], scored["scores"]);

    // MLflow's four payload forms answer the class labels.
    let labels: Vec<Value> = want.iter().map(|(l, _)| json!(l)).collect();
    let split_data: Vec<Value> = rows
        .iter()
        .map(|(r, _)| Value::Array(FEATURES.iter().map(|f| r[*f].clone()).collect()))
        .collect();
    let mut columns = serde_json::Map::new();
    for f in FEATURES {
        columns.insert(
            f.to_string(),
            Value::Array(rows.iter().map(|(r, _)| r[f].clone()).collect()),
        );
    }
    let payloads = [
        json!({"dataframe_split": {"columns": FEATURES, "data": split_data, "index": (0..rows.len()).collect::<Vec<_>>()}}),
        json!({"dataframe_records": records}),
        json!({"instances": split_data}),
        json!({"inputs": columns}),
        json!({"inputs": records, "params": {}}),
    ];
    for payload in payloads {
        let response = consumer
            .request(Method::POST, "/api/v1/models/failure/invocations")
            .json(&payload)
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["x-refit-model-version"], "1");
        let answer = expect_json(response, 200).await;
        assert_eq!(answer, json!({"predictions": labels}));
    }
    // Columns in another order are matched by name.
    let mut reversed: Vec<&str> = FEATURES.to_vec();
    reversed.reverse();
    let reversed_data: Vec<Value> = rows
        .iter()
        .map(|(r, _)| Value::Array(reversed.iter().map(|f| r[*f].clone()).collect()))
        .collect();
    let answer = consumer
        .post(
            "/api/v1/models/failure/invocations",
            json!({"dataframe_split": {"columns": reversed, "data": reversed_data}}),
        )
        .await;
    assert_eq!(answer["predictions"], json!(labels));

    // Open Inference Protocol v2, one tensor per feature (Type as BYTES).
    let inputs: Vec<Value> = FEATURES
        .iter()
        .enumerate()
        .map(|(j, f)| {
            json!({
                "name": f,
                "shape": [rows.len()],
                "datatype": if j == 0 { "BYTES" } else { "FP64" },
                "data": rows.iter().map(|(r, _)| r[*f].clone()).collect::<Vec<_>>(),
            })
        })
        .collect();
    let answer = consumer
        .post(
            "/v2/models/failure/infer",
            json!({"id": "req-1", "inputs": inputs}),
        )
        .await;
    assert_eq!(answer["model_name"], "failure");
    assert_eq!(answer["model_version"], "1");
    assert_eq!(answer["id"], "req-1");
    let outputs = answer["outputs"].as_array().unwrap();
    assert_eq!(outputs[0]["name"], "predict");
    assert_eq!(outputs[0]["datatype"], "BYTES");
    assert_eq!(outputs[0]["shape"], json!([rows.len()]));
    assert_eq!(outputs[0]["data"], json!(labels));
    assert_eq!(outputs[1]["name"], "probabilities");
    assert_eq!(outputs[1]["shape"], json!([rows.len(), 2]));
    let flat: Vec<f64> = outputs[1]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let want_flat: Vec<f64> = want.iter().flat_map(|(_, p)| p.clone()).collect();
    assert_eq!(flat.len(), want_flat.len());
    assert!(flat.iter().zip(&want_flat).all(|(a, b)| close(*a, *b)));
    // The same request for version 1 by number.
    let by_version = consumer
        .post(
            "/v2/models/failure/versions/1/infer",
            json!({"id": "req-1", "inputs": inputs}),
        )
        .await;
    assert_eq!(by_version, answer);

    // Metadata, readiness and health.
    let meta = consumer.get("/v2/models/failure").await;
    assert_eq!(meta["name"], "failure");
    assert_eq!(meta["versions"], json!(["1"]));
    assert_eq!(meta["platform"], "refit-native");
    assert_eq!(
        meta["inputs"][0],
        json!({"name": "Type", "datatype": "BYTES", "shape": [-1]})
    );
    assert_eq!(
        meta["inputs"][5],
        json!({"name": "Tool wear [min]", "datatype": "FP64", "shape": [-1]})
    );
    assert_eq!(meta["outputs"][1]["shape"], json!([-1, 2]));
    assert_eq!(
        consumer.get("/v2/models/failure/ready").await,
        json!({"name": "failure", "ready": true})
    );
    for (path, body) in [
        ("/v2/health/live", json!({"live": true})),
        ("/v2/health/ready", json!({"ready": true})),
    ] {
        let response = reqwest::get(app.url(path)).await.unwrap();
        assert_eq!(expect_json(response, 200).await, body, "{path}");
    }
    app.stop().await;
}

async fn scoring_follows_the_champion_the_moment_it_moves(db: Db) {
    let app = spawn_app(db).await;
    let crew = Crew::new(&app).await;
    trained(&crew, "failure").await;
    let consumer = Client::new(&app, "dashboard", Role::Consumer).await;
    let one: Vec<Value> = rows(3001..=3001).into_iter().map(|(r, _)| r).collect();
    let version = |scored: &Value| scored["version"].as_i64().unwrap();
    let path = "/api/v1/models/failure/score";
    assert_eq!(version(&consumer.post(path, json!(one)).await), 1);

    // A second training on more data is promoted (the spec has no champion threshold).
    assert_eq!(crew.ingest("ai4i", 3001..=5000).await, 2000);
    let second = crew.train_ok("failure").await;
    assert_eq!(second["decision"], "promoted", "{second}");
    assert_eq!(second["candidate_version"], 2);
    // The very next request is scored by version 2: the promotion signalled the server.
    assert_eq!(version(&consumer.post(path, json!(one)).await), 2);
    // The previous champion stays reachable by alias and by number.
    let previous = consumer
        .post(&format!("{path}?alias=previous"), json!(one))
        .await;
    assert_eq!(version(&previous), 1);
    assert_eq!(
        version(
            &consumer
                .post(&format!("{path}?version=1"), json!(one))
                .await
        ),
        1
    );
    // The two versions are different models.
    let m1 = previous["scores"][0]["probabilities"]["1"]
        .as_f64()
        .unwrap();
    let now = consumer.post(path, json!(one)).await;
    let m2 = now["scores"][0]["probabilities"]["1"].as_f64().unwrap();
    assert_ne!(m1, m2);

    // An operator rolls back: the next request is scored by version 1 again.
    let rolled = crew
        .oscar
        .post("/api/v1/models/failure/rollback", json!({}))
        .await;
    assert_eq!(rolled["decision"], "rolled_back", "{rolled}");
    let after = consumer.post(path, json!(one)).await;
    assert_eq!(version(&after), 1);
    assert_eq!(after["scores"][0]["probabilities"]["1"].as_f64(), Some(m1));
    let meta = consumer.get("/v2/models/failure").await;
    assert_eq!(meta["versions"], json!(["1"]));
    app.stop().await;
}

async fn bad_requests(db: Db) {
    let app = spawn_app(db).await;
    let crew = Crew::new(&app).await;
    trained(&crew, "failure").await;
    let consumer = Client::new(&app, "dashboard", Role::Consumer).await;
    let gateway = &crew.gateway;
    let score = "/api/v1/models/failure/score";
    let invocations = "/api/v1/models/failure/invocations";
    let good = rows(3001..=3002)[0].0.clone();
    let send = |client: &Client<'_>, path: &str, body: Value| {
        client.request(Method::POST, path).json(&body).send()
    };

    // Who may score: not the ingest role, not without a token.
    let response = send(gateway, score, json!([good])).await.unwrap();
    expect_error(response, 403, "PERMISSION_DENIED", "").await;
    let response = reqwest::Client::new()
        .post(app.url(score))
        .json(&json!([good]))
        .send()
        .await
        .unwrap();
    expect_error(response, 401, "UNAUTHENTICATED", "").await;
    let response = send(gateway, "/v2/models/failure/infer", json!({"inputs": []}))
        .await
        .unwrap();
    expect_error(response, 403, "PERMISSION_DENIED", "").await;
    let response = reqwest::get(app.url("/v2/models/failure")).await.unwrap();
    expect_error(response, 401, "UNAUTHENTICATED", "").await;

    // Unknown model, a model without a champion, a version that does not exist.
    let response = send(&consumer, "/api/v1/models/nope/score", json!([good]))
        .await
        .unwrap();
    expect_error(response, 404, "RESOURCE_DOES_NOT_EXIST", "nope").await;
    crew.alice
        .call(
            Method::POST,
            "/api/v1/models",
            json!({"name": "empty"}),
            201,
        )
        .await;
    let response = send(&consumer, "/api/v1/models/empty/score", json!([good]))
        .await
        .unwrap();
    expect_error(
        response,
        404,
        "RESOURCE_DOES_NOT_EXIST",
        "no version with alias 'champion'",
    )
    .await;
    let response = send(&consumer, &format!("{score}?version=7"), json!([good]))
        .await
        .unwrap();
    expect_error(response, 404, "RESOURCE_DOES_NOT_EXIST", "").await;
    let response = send(
        &consumer,
        &format!("{score}?version=1&alias=champion"),
        json!([good]),
    )
    .await
    .unwrap();
    expect_error(
        response,
        400,
        "INVALID_PARAMETER_VALUE",
        "either 'alias' or 'version'",
    )
    .await;

    // Rows that do not fit the model.
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("Torque [Nm]");
    let mut wrong_type = good.clone();
    wrong_type["Torque [Nm]"] = json!("forty");
    let mut wrong_category = good.clone();
    wrong_category["Type"] = json!(true);
    for (body, status, message) in [
        (
            json!([good, missing]),
            400,
            "row 1 has no feature 'Torque [Nm]'",
        ),
        (
            json!([wrong_type]),
            400,
            "feature 'Torque [Nm]' (row 0): expected a number or null",
        ),
        (
            json!([wrong_category]),
            400,
            "feature 'Type' (row 0): expected a category",
        ),
        (json!([]), 400, "no rows to score"),
        (json!({"rows": [good]}), 400, "JSON array"),
        (json!([1, 2]), 400, "row 0 is not an object"),
    ] {
        let response = send(&consumer, score, body).await.unwrap();
        expect_error(response, status, "INVALID_PARAMETER_VALUE", message).await;
    }
    let response = consumer
        .request(Method::POST, score)
        .body("[{\"Type\": ")
        .send()
        .await
        .unwrap();
    expect_error(response, 400, "INVALID_PARAMETER_VALUE", "invalid JSON").await;
    // A missing value is not an error: the model imputes it.
    let mut null_torque = good.clone();
    null_torque["Torque [Nm]"] = Value::Null;
    let scored = consumer.post(score, json!([null_torque])).await;
    assert_eq!(scored["scores"].as_array().unwrap().len(), 1);

    // MLflow payloads that are none, or two, of its forms, or do not fit.
    let row: Vec<Value> = FEATURES.iter().map(|f| good[*f].clone()).collect();
    for (body, message) in [
        (json!({}), "send one of dataframe_split"),
        (json!({"instances": [row], "inputs": [row]}), "only one of"),
        (
            json!({"dataframe_split": {"data": [row]}}),
            "needs 'columns'",
        ),
        (
            json!({"dataframe_split": {"columns": ["Type"], "data": [["L"]]}}),
            "no column 'Air temperature [K]'",
        ),
        (json!({"dataframe_records": [row]}), "list of objects"),
        (
            json!({"instances": [[1.0, 2.0]]}),
            "row 0 has 2 values; the model takes 6 features",
        ),
        (
            json!({"instances": [row], "params": {"temperature": 1}}),
            "no inference params",
        ),
        (
            json!({"instancez": [row]}),
            "invalid MLflow scoring payload",
        ),
        (
            json!({"inputs": {"Type": ["L", "M"], "Torque [Nm]": [1.0]}}),
            "column 'Type' has 2 values, 'Torque [Nm]' has 1",
        ),
    ] {
        let response = send(&consumer, invocations, body.clone()).await.unwrap();
        expect_error(response, 400, "INVALID_PARAMETER_VALUE", message).await;
    }

    // OIP errors in the protocol's shape.
    for (body, message) in [
        (json!({"inputs": []}), "no inputs"),
        (
            json!({"inputs": [{"name": "x", "shape": [2, 6], "datatype": "FP64", "data": [1, 2]}]}),
            "does not hold its 2 values",
        ),
        (
            json!({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]}),
            "the model takes [N, 6]",
        ),
        (
            json!({"inputs": [{"name": "Type", "shape": [1], "datatype": "FP64", "data": ["L"]}]}),
            "is FP64 but holds",
        ),
        (
            json!({"inputs": [{"name": "Type", "shape": [1], "datatype": "BYTES", "data": ["L"]}]}),
            "no column 'Air temperature [K]'",
        ),
        (
            json!({"inputs": [{"name": "Type", "shape": [1], "datatype": "COMPLEX", "data": ["L"]}]}),
            "unknown datatype",
        ),
        (json!({"input": []}), "invalid inference request"),
    ] {
        let response = send(&consumer, "/v2/models/failure/infer", body.clone())
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let answer: Value = response.json().await.unwrap();
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(message), "{error} lacks {message}");
    }
    let response = send(
        &consumer,
        "/v2/models/failure/versions/x/infer",
        json!({"inputs": []}),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 400);
    let response = send(&consumer, "/v2/models/nope/infer", json!({"inputs": []}))
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    app.stop().await;
}
