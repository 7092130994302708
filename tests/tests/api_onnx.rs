//! ONNX models over HTTP: a model made by scikit-learn + skl2onnx is uploaded to a run, registered
//! against a dataset (refit opens it and checks it against the schema), made champion, and scores
//! exactly as onnxruntime (Python) does; models that do not fit are refused with the reason; a
//! server without ONNX Runtime still serves native models and names what is missing.

#[path = "../../scorer/tests/onnx/fixtures.rs"]
mod fixtures;

use fixtures::fixtures;
use refit_tests::{Db, TestApp, expect_error, expect_json, spawn_app_beside, spawn_app_with};
use reqwest::Method;
use serde_json::{Value, json};

/// A model made by `make_models.py` and onnxruntime's outputs for its probe rows.
fn case(name: &str) -> (Vec<u8>, Value) {
    let dir = &fixtures().dir;
    let bytes = std::fs::read(dir.join(format!("{name}.onnx"))).unwrap();
    let case = serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.json"))).unwrap());
    (bytes, case.unwrap())
}

/// A dataset with the five AI4I readings the fixtures were trained on, plus a categorical column.
async fn create_dataset(app: &TestApp) {
    let mut features: Vec<Value> = case("logistic").1["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| json!({"name": f, "kind": "numeric", "nullable": true}))
        .collect();
    features.push(json!({"name": "kind", "kind": "categorical"}));
    let response = app
        .admin(Method::POST, "/api/v1/datasets")
        .json(&json!({"name": "press", "features": features}))
        .send()
        .await
        .unwrap();
    expect_json(response, 201).await;
}

/// A run holding `name`'s .onnx file at `path`; returns the run id.
async fn upload(app: &TestApp, name: &str, path: &str) -> String {
    let run = app
        .admin(Method::POST, "/api/v1/runs")
        .json(&json!({"experiment_id": "0", "run_name": name}))
        .send()
        .await
        .unwrap();
    let run_id = expect_json(run, 201).await["info"]["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let put = app
        .admin(
            Method::PUT,
            &format!("/api/v1/runs/{run_id}/artifacts/{path}"),
        )
        .body(case(name).0)
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.status());
    run_id
}

/// Job `id` once it has succeeded or failed (at most a minute).
async fn finished_job(app: &TestApp, id: i64) -> Value {
    let started = std::time::Instant::now();
    loop {
        let job = expect_json(
            app.admin(Method::GET, &format!("/api/v1/jobs/{id}"))
                .send()
                .await
                .unwrap(),
            200,
        )
        .await;
        if job["status"] == "succeeded" || job["status"] == "failed" {
            return job;
        }
        assert!(started.elapsed().as_secs() < 60, "{job}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

fn register(app: &TestApp, model: &str, body: Value) -> reqwest::RequestBuilder {
    app.admin(Method::POST, &format!("/api/v1/models/{model}/onnx"))
        .json(&body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploaded_onnx_model_scores_as_onnxruntime_does() {
    let library = fixtures().library.clone();
    let app = spawn_app_with(Db::Sqlite, |c| c.onnx_runtime = Some(library)).await;
    create_dataset(&app).await;
    let (_, logistic) = case("logistic");
    let features = logistic["features"].clone();

    let run_id = upload(&app, "logistic", "model/model.onnx").await;
    let registered = expect_json(
        register(
            &app,
            "press-onnx",
            json!({"run_id": run_id, "dataset": "press", "features": features, "task": "binary"}),
        )
        .send()
        .await
        .unwrap(),
        201,
    )
    .await;
    assert_eq!(registered["model_version"]["version"], 1);
    assert_eq!(
        registered["model_version"]["source"],
        format!("runs:/{run_id}/model")
    );
    assert_eq!(
        registered["binding"],
        json!({"dataset": "press", "features": features, "task": "binary", "classes": ["0", "1"]})
    );
    let alias = app
        .admin(Method::PUT, "/api/v1/models/press-onnx/aliases/champion")
        .json(&json!({"version": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(alias.status(), 204);

    // The probe rows scored through refit, against onnxruntime's own probabilities.
    let names: Vec<&str> = features
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let rows: Vec<Value> = logistic["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let mut record = serde_json::Map::new();
            for (name, v) in names.iter().zip(row.as_array().unwrap()) {
                record.insert(name.to_string(), v.clone());
            }
            Value::Object(record)
        })
        .collect();
    let scored = expect_json(
        app.admin(Method::POST, "/api/v1/models/press-onnx/score")
            .json(&rows)
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(scored["version"], 1);
    let expected = logistic["probabilities"].as_array().unwrap();
    let labels = logistic["label"].as_array().unwrap();
    assert_eq!(scored["scores"].as_array().unwrap().len(), expected.len());
    for ((score, want), label) in scored["scores"]
        .as_array()
        .unwrap()
        .iter()
        .zip(expected)
        .zip(labels)
    {
        assert_eq!(score["prediction"], json!(label.to_string()));
        for (class, p) in ["0", "1"].iter().zip(want.as_array().unwrap()) {
            let got = &score["probabilities"][class];
            match p.as_f64() {
                Some(p) => {
                    let got = got.as_f64().unwrap();
                    assert!((got - p).abs() <= 1e-6, "{got} vs {p}");
                }
                // NaN in onnxruntime's output (a missing reading): no number here either.
                None => assert_eq!(got, &Value::Null, "{score}"),
            }
        }
    }
    let meta = expect_json(
        app.admin(Method::GET, "/v2/models/press-onnx")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(meta["platform"], "onnx");

    // Models that do not fit are refused with the reason, and nothing is registered.
    let zipmap = upload(&app, "zipmap", "model/model.onnx").await;
    let narrow = upload(&app, "narrow", "model/model.onnx").await;
    let mut with_kind = names.clone();
    with_kind[4] = "kind";
    let mut unknown = names.clone();
    unknown[0] = "humidity";
    for (body, status, message) in [
        (
            json!({"run_id": zipmap, "dataset": "press", "features": names}),
            400,
            "options={'zipmap': False}",
        ),
        (
            json!({"run_id": narrow, "dataset": "press", "features": names}),
            400,
            "has 4 columns (shape [N, 4]), but 5 features are bound",
        ),
        (
            json!({"run_id": run_id, "dataset": "press", "features": with_kind}),
            400,
            "feature 'kind' is categorical",
        ),
        (
            json!({"run_id": run_id, "dataset": "press", "features": unknown}),
            400,
            "feature 'humidity' is not a column",
        ),
        (
            json!({"run_id": run_id, "dataset": "press", "features": names, "task": "regression"}),
            400,
            "the task is regression, but the model is a classifier",
        ),
        (
            json!({"run_id": run_id, "dataset": "nope", "features": names}),
            404,
            "",
        ),
        (
            json!({"run_id": run_id, "dataset": "press", "features": names, "path": "model/other.onnx"}),
            404,
            "no artifact 'model/other.onnx'",
        ),
        (
            json!({"run_id": run_id, "dataset": "press", "features": names, "path": "model/model.json"}),
            400,
            "not an .onnx file",
        ),
    ] {
        let response = register(&app, "press-onnx", body.clone())
            .send()
            .await
            .unwrap();
        let code = if status == 404 {
            "RESOURCE_DOES_NOT_EXIST"
        } else {
            "INVALID_PARAMETER_VALUE"
        };
        expect_error(response, status, code, message).await;
    }
    let versions = expect_json(
        app.admin(Method::GET, "/api/v1/models/press-onnx/versions")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(
        versions["model_versions"].as_array().unwrap().len(),
        1,
        "{versions}"
    );

    // With a profile from a snapshot of the dataset, the uploaded model is monitored for drift
    // like a trained one: a drift check of the stored rows against it works.
    let records: Vec<Value> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut r = r.clone();
            r["machine_id"] = json!(format!("p{}", i % 5));
            r["ts"] = json!(1_700_000_000_000i64 + i as i64 * 1000);
            r["kind"] = json!("L");
            r
        })
        .collect();
    let stored = expect_json(
        app.admin(Method::POST, "/api/v1/datasets/press/records")
            .json(&records)
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(stored["accepted"], records.len(), "{stored}");
    let snapshot = expect_json(
        app.admin(Method::POST, "/api/v1/datasets/press/snapshots")
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    let profiled = upload(&app, "logistic", "model/model.onnx").await;
    let response = register(
        &app,
        "press-watched",
        json!({"run_id": profiled, "dataset": "press", "features": names, "profile_snapshot": 999}),
    )
    .send()
    .await
    .unwrap();
    expect_error(response, 404, "RESOURCE_DOES_NOT_EXIST", "").await;
    expect_json(
        register(
            &app,
            "press-watched",
            json!({"run_id": profiled, "dataset": "press", "features": names,
                   "profile_snapshot": snapshot["id"]}),
        )
        .send()
        .await
        .unwrap(),
        201,
    )
    .await;
    let check = expect_json(
        app.admin(Method::POST, "/api/v1/drift/check")
            .json(&json!({"model": "press-watched", "version": 1, "dataset": "press"}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(check["rows"], records.len(), "{check}");
    assert_eq!(check["features"].as_array().unwrap().len(), 5);
    // The same rows as the reference: nothing drifts.
    assert_eq!(check["drifted_columns"], 0, "{check}");

    // Through a spec's gate: the uploaded version is evaluated on the spec's holdout against the
    // champion (there is none yet) by a job, and promoted by the gate.
    let labelled: Vec<Value> = records
        .iter()
        .zip(labels)
        .map(|(r, label)| {
            let mut r = r.clone();
            r.as_object_mut().unwrap().remove("kind");
            r["failure"] = json!(label.as_i64().unwrap());
            r
        })
        .collect();
    let numeric: Vec<Value> = names
        .iter()
        .map(|f| json!({"name": f, "kind": "numeric", "nullable": true}))
        .collect();
    for (path, body) in [
        (
            "/api/v1/datasets",
            json!({"name": "gated", "features": numeric,
                                    "labels": [{"name": "failure", "kind": "numeric"}]}),
        ),
        (
            "/api/v1/specs",
            json!({"name": "gated", "model": "gated-onnx", "dataset": "gated",
                                 "task": "binary", "target": "failure", "features": names,
                                 "algorithm": "logistic_regression", "holdout": {"fraction": 0.5},
                                 "gate": {"bounds": [{"metric": "accuracy", "min": 0.9}]}}),
        ),
    ] {
        expect_json(
            app.admin(Method::POST, path)
                .json(&body)
                .send()
                .await
                .unwrap(),
            201,
        )
        .await;
    }
    expect_json(
        app.admin(Method::POST, "/api/v1/datasets/gated/records")
            .json(&labelled)
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let gated = upload(&app, "logistic", "model/model.onnx").await;
    let response = register(
        &app,
        "press-onnx",
        json!({"run_id": gated, "dataset": "press", "features": names, "gate_spec": "gated"}),
    )
    .send()
    .await
    .unwrap();
    expect_error(
        response,
        400,
        "INVALID_PARAMETER_VALUE",
        "gate_spec: spec 'gated' trains model 'gated-onnx' on dataset 'gated'",
    )
    .await;
    let response = register(
        &app,
        "gated-onnx",
        json!({"run_id": gated, "dataset": "gated", "features": names, "gate_spec": "nope"}),
    )
    .send()
    .await
    .unwrap();
    expect_error(response, 404, "RESOURCE_DOES_NOT_EXIST", "nope").await;
    let registered = expect_json(
        register(
            &app,
            "gated-onnx",
            json!({"run_id": gated, "dataset": "gated", "features": names, "task": "binary",
                   "gate_spec": "gated"}),
        )
        .send()
        .await
        .unwrap(),
        201,
    )
    .await;
    assert_eq!(registered["job"]["trigger"], "upload");
    let job_id = registered["job"]["id"].as_i64().unwrap();
    let job = finished_job(&app, job_id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["result"]["decision"], "promoted", "{job}");
    assert_eq!(job["result"]["candidate_version"], 1);
    assert_eq!(job["result"]["holdout_rows"], 100);
    // Its labels are onnxruntime's own labels: the upload gets every holdout row right.
    assert_eq!(job["result"]["candidate_metrics"]["accuracy"], 1.0, "{job}");
    let champion = expect_json(
        app.admin(Method::GET, "/api/v1/models/gated-onnx/aliases/champion")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(champion["version"], 1);

    // The same file logged and registered the MLflow 3 way (a logged model, its artifacts through
    // the proxy, a version from `models:/m-...`), then bound and sent through the same gate.
    let logged = expect_json(
        app.admin(Method::POST, "/api/2.0/mlflow/logged-models")
            .json(&json!({"experiment_id": "0", "name": "onnx-model"}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let model_id = logged["model"]["info"]["model_id"]
        .as_str()
        .unwrap()
        .to_string();
    let root = logged["model"]["info"]["artifact_uri"]
        .as_str()
        .unwrap()
        .trim_start_matches("mlflow-artifacts:/")
        .to_string();
    let put = app
        .admin(
            Method::PUT,
            &format!("/api/2.0/mlflow-artifacts/artifacts/{root}/model.onnx"),
        )
        .body(case("logistic").0)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 200);
    let version = expect_json(
        app.admin(Method::POST, "/api/2.0/mlflow/model-versions/create")
            .json(
                &json!({"name": "gated-onnx", "source": format!("models:/{model_id}"),
                          "model_id": model_id}),
            )
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(version["model_version"]["version"], "2");
    let bind = |body: Value| {
        app.admin(Method::POST, "/api/v1/models/gated-onnx/versions/2/onnx")
            .json(&body)
    };
    // Bad bindings, each refused with its exact reason: (version, body, status, code, message).
    let refused = [
        (
            2,
            json!({"file": "nope.onnx", "dataset": "gated", "features": names}),
            404,
            "RESOURCE_DOES_NOT_EXIST",
            "nope.onnx",
        ),
        (
            2,
            json!({"dataset": "gated", "features": ["x"]}),
            400,
            "INVALID_PARAMETER_VALUE",
            "input 'X' has 5 columns (shape [N, 5]), but 1 features are bound",
        ),
        (
            2,
            json!({"file": "model.json", "dataset": "gated", "features": names}),
            400,
            "INVALID_PARAMETER_VALUE",
            "'model.json' is not an .onnx file",
        ),
        (
            2,
            json!({"file": "../x.onnx", "dataset": "gated", "features": names}),
            400,
            "INVALID_PARAMETER_VALUE",
            "'..' segment",
        ),
        (
            9,
            json!({"dataset": "gated", "features": names}),
            404,
            "RESOURCE_DOES_NOT_EXIST",
            "version=9",
        ),
    ];
    for (version, body, status, code, message) in refused {
        let response = app
            .admin(
                Method::POST,
                &format!("/api/v1/models/gated-onnx/versions/{version}/onnx"),
            )
            .json(&body)
            .send()
            .await
            .unwrap();
        expect_error(response, status, code, message).await;
    }
    let bound = expect_json(
        bind(
            json!({"dataset": "gated", "features": names, "task": "binary",
                    "gate_spec": "gated"}),
        )
        .send()
        .await
        .unwrap(),
        200,
    )
    .await;
    assert_eq!(bound["model_version"]["version"], 2);
    assert_eq!(bound["binding"]["task"], "binary");
    let job_id = bound["job"]["id"].as_i64().unwrap();
    let job = finished_job(&app, job_id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["result"]["candidate_version"], 2);
    assert_eq!(job["result"]["candidate_metrics"]["accuracy"], 1.0, "{job}");
    // As good as the champion passes a gate that asks for no improvement: promoted, and MLflow's
    // client sees the new champion.
    assert_eq!(job["result"]["decision"], "promoted", "{job}");
    let champion = expect_json(
        app.admin(
            Method::GET,
            "/api/2.0/mlflow/registered-models/alias?name=gated-onnx&alias=champion",
        )
        .send()
        .await
        .unwrap(),
        200,
    )
    .await;
    assert_eq!(champion["model_version"]["version"], "2");
    let scored = expect_json(
        app.admin(Method::POST, "/api/v1/models/gated-onnx/score")
            .json(&labelled[..1])
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(scored["version"], 2, "{scored}");
    assert_eq!(scored["scores"].as_array().unwrap().len(), 1, "{scored}");

    // A second server on the same database without ONNX Runtime: it runs, and says what is
    // missing when the ONNX model is used or uploaded.
    let bare = spawn_app_beside(&app, |c| {
        c.onnx_runtime = Some("/nowhere/libonnxruntime.so".into())
    })
    .await;
    let response = bare
        .admin(Method::POST, "/api/v1/models/press-onnx/score")
        .json(&rows[..1])
        .send()
        .await
        .unwrap();
    let message = expect_error(
        response,
        501,
        "ONNX_RUNTIME_MISSING",
        "/nowhere/libonnxruntime.so",
    )
    .await;
    assert!(message.contains("ORT_DYLIB_PATH"), "{message}");
    let response = register(
        &bare,
        "press-onnx",
        json!({"run_id": run_id, "dataset": "press", "features": names}),
    )
    .send()
    .await
    .unwrap();
    expect_error(response, 501, "ONNX_RUNTIME_MISSING", "does not exist").await;
    bare.stop().await;
    app.stop().await;
}
