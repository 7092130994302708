//! MLflow's REST API over refit's tables, at the HTTP level: roles, the token as a Basic
//! password, MLflow's statuses for its error codes, its value encodings, and one store behind both
//! APIs. (The real MLflow client drives the whole API in tests/python/mlflow_compat.)

use refit_registry::tokens::Role;
use refit_tests::{Db, TestApp, expect_error, expect_json, on_both_databases, spawn_app};
use reqwest::Method;
use serde_json::{Value, json};

on_both_databases!(
    mlflow_routes_obey_the_roles,
    mlflow_errors_use_mlflows_statuses,
    mlflow_values_round_trip_in_mlflows_encoding,
    native_and_mlflow_apis_share_one_registry,
);

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> reqwest::Response {
    app.as_token(token, Method::POST, path)
        .json(&body)
        .send()
        .await
        .expect("request")
}

async fn get(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.as_token(token, Method::GET, path)
        .send()
        .await
        .expect("request")
}

async fn mlflow_routes_obey_the_roles(db: Db) {
    let app = spawn_app(db).await;
    let admin = app.admin_token.clone();
    let consumer = app.token("cora", Role::Consumer).await;
    let operator = app.token("oscar", Role::Operator).await;
    let scientist = app.token("ada", Role::Scientist).await;

    // No token, a bad token: 401, before anything else is looked at.
    let none = app
        .client
        .get(app.url("/api/2.0/mlflow/experiments/get?experiment_id=0"))
        .send()
        .await
        .unwrap();
    expect_error(none, 401, "UNAUTHENTICATED", "Authorization").await;
    let bad = get(
        &app,
        "refit_nope",
        "/api/2.0/mlflow/experiments/get?experiment_id=0",
    )
    .await;
    expect_error(bad, 401, "UNAUTHENTICATED", "invalid").await;

    // MLflow's client sends Basic auth when given a user name and password: the token is the
    // password.
    let basic = app
        .client
        .get(app.url("/api/2.0/mlflow/experiments/get?experiment_id=0"))
        .basic_auth("ada", Some(&scientist))
        .send()
        .await
        .unwrap();
    let body = expect_json(basic, 200).await;
    assert_eq!(body["experiment"]["name"], "Default");

    // A scientist writes; an operator reads runs but cannot write them; a consumer reads models
    // only.
    let created = post(
        &app,
        &scientist,
        "/api/2.0/mlflow/runs/create",
        json!({"experiment_id": "0"}),
    )
    .await;
    let run_id = expect_json(created, 200).await["run"]["info"]["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let refused = post(
        &app,
        &operator,
        "/api/2.0/mlflow/runs/log-metric",
        json!({"run_id": run_id, "key": "m", "value": 1.0, "timestamp": 1}),
    )
    .await;
    expect_error(refused, 403, "PERMISSION_DENIED", "operator").await;
    let read = get(
        &app,
        &operator,
        &format!("/api/2.0/mlflow/runs/get?run_id={run_id}"),
    )
    .await;
    assert_eq!(
        expect_json(read, 200).await["run"]["info"]["run_id"],
        run_id
    );
    let refused = get(
        &app,
        &consumer,
        &format!("/api/2.0/mlflow/runs/get?run_id={run_id}"),
    )
    .await;
    expect_error(refused, 403, "PERMISSION_DENIED", "consumer").await;
    let refused = post(
        &app,
        &consumer,
        "/api/2.0/mlflow/registered-models/create",
        json!({"name": "m"}),
    )
    .await;
    expect_error(refused, 403, "PERMISSION_DENIED", "consumer").await;
    let created = post(
        &app,
        &admin,
        "/api/2.0/mlflow/registered-models/create",
        json!({"name": "m"}),
    )
    .await;
    expect_json(created, 200).await;
    let read = get(
        &app,
        &consumer,
        "/api/2.0/mlflow/registered-models/get?name=m",
    )
    .await;
    assert_eq!(
        expect_json(read, 200).await["registered_model"]["name"],
        "m"
    );
    // The UI's mirror answers the same.
    let mirrored = get(
        &app,
        &consumer,
        "/ajax-api/2.0/mlflow/registered-models/get?name=m",
    )
    .await;
    assert_eq!(
        expect_json(mirrored, 200).await["registered_model"]["name"],
        "m"
    );
    app.stop().await;
}

async fn mlflow_errors_use_mlflows_statuses(db: Db) {
    let app = spawn_app(db).await;
    let t = app.admin_token.clone();
    let created = post(
        &app,
        &t,
        "/api/2.0/mlflow/experiments/create",
        json!({"name": "dup"}),
    )
    .await;
    expect_json(created, 200).await;
    // MLflow: RESOURCE_ALREADY_EXISTS is a 400 (the native API says 409).
    let again = post(
        &app,
        &t,
        "/api/2.0/mlflow/experiments/create",
        json!({"name": "dup"}),
    )
    .await;
    expect_error(again, 400, "RESOURCE_ALREADY_EXISTS", "dup").await;
    let missing = get(
        &app,
        &t,
        "/api/2.0/mlflow/experiments/get-by-name?experiment_name=nope",
    )
    .await;
    expect_error(missing, 404, "RESOURCE_DOES_NOT_EXIST", "nope").await;
    let not_int = get(
        &app,
        &t,
        "/api/2.0/mlflow/experiments/get?experiment_id=abc",
    )
    .await;
    expect_error(
        not_int,
        400,
        "INVALID_PARAMETER_VALUE",
        "must be a valid integer",
    )
    .await;
    let no_field = post(&app, &t, "/api/2.0/mlflow/runs/log-metric", json!({})).await;
    expect_error(no_field, 400, "INVALID_PARAMETER_VALUE", "'run_id'").await;
    let wrong_type = post(
        &app,
        &t,
        "/api/2.0/mlflow/runs/log-metric",
        json!({"run_id": "x", "key": "m", "value": "abc", "timestamp": 1}),
    )
    .await;
    expect_error(wrong_type, 400, "INVALID_PARAMETER_VALUE", "value").await;
    // A missing alias is a 400 in MLflow, and its client relies on it.
    post(
        &app,
        &t,
        "/api/2.0/mlflow/registered-models/create",
        json!({"name": "m"}),
    )
    .await;
    let alias = get(
        &app,
        &t,
        "/api/2.0/mlflow/registered-models/alias?name=m&alias=champion",
    )
    .await;
    expect_error(
        alias,
        400,
        "INVALID_PARAMETER_VALUE",
        "alias champion not found",
    )
    .await;
    // Renaming a deleted experiment: MLflow answers 500 (which its client retries); refit 400.
    let exp = post(
        &app,
        &t,
        "/api/2.0/mlflow/experiments/create",
        json!({"name": "gone"}),
    )
    .await;
    let exp = expect_json(exp, 200).await["experiment_id"].clone();
    let deleted = post(
        &app,
        &t,
        "/api/2.0/mlflow/experiments/delete",
        json!({"experiment_id": exp}),
    )
    .await;
    expect_json(deleted, 200).await;
    let renamed = post(
        &app,
        &t,
        "/api/2.0/mlflow/experiments/update",
        json!({"experiment_id": exp, "new_name": "back"}),
    )
    .await;
    let status = renamed.status().as_u16();
    assert!((400..500).contains(&status), "status {status}");
    // Paths that climb out of the store or are absolute. (An HTTP client resolves `..` in a
    // URL's path itself; a query string and an encoded slash reach the server as written.)
    let climbing = get(
        &app,
        &t,
        "/api/2.0/mlflow-artifacts/artifacts?path=0/x/artifacts/../../evil",
    )
    .await;
    expect_error(climbing, 400, "INVALID_PARAMETER_VALUE", "Invalid path").await;
    let absolute = app
        .admin(
            Method::PUT,
            "/api/2.0/mlflow-artifacts/artifacts/%2Fetc%2Fpasswd",
        )
        .body("evil")
        .send()
        .await
        .unwrap();
    expect_error(absolute, 400, "INVALID_PARAMETER_VALUE", "Invalid path").await;
    app.stop().await;
}

async fn mlflow_values_round_trip_in_mlflows_encoding(db: Db) {
    let app = spawn_app(db).await;
    let t = app.admin_token.clone();
    let run = post(
        &app,
        &t,
        "/api/2.0/mlflow/runs/create",
        json!({"experiment_id": "0", "start_time": "1700000000000"}),
    )
    .await;
    let run = expect_json(run, 200).await["run"].clone();
    let run_id = run["info"]["run_id"].as_str().unwrap().to_string();
    assert_eq!(run["info"]["start_time"], 1_700_000_000_000_i64);
    assert!(run["info"].get("end_time").is_none(), "{run}");
    // A generated name, kept in step with the mlflow.runName tag.
    let name = run["info"]["run_name"].as_str().unwrap();
    assert!(!name.is_empty());
    assert!(
        run["data"]["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["key"] == "mlflow.runName" && t["value"] == name)
    );
    for (key, value) in [
        ("nan", json!("NaN")),
        ("inf", json!("Infinity")),
        ("neg", json!("-Infinity")),
        ("x", json!(0.5)),
    ] {
        let logged = post(
            &app,
            &t,
            "/api/2.0/mlflow/runs/log-metric",
            json!({"run_id": run_id, "key": key, "value": value, "timestamp": 5, "step": "2"}),
        )
        .await;
        expect_json(logged, 200).await;
    }
    let got = get(
        &app,
        &t,
        &format!("/api/2.0/mlflow/runs/get?run_id={run_id}"),
    )
    .await;
    let metrics = expect_json(got, 200).await["run"]["data"]["metrics"].clone();
    let value = |key: &str| {
        metrics
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["key"] == key)
            .unwrap_or_else(|| panic!("{key} in {metrics}"))
            .clone()
    };
    assert_eq!(value("nan")["value"], "NaN");
    // MLflow's store keeps infinities as the largest finite doubles.
    assert_eq!(value("inf")["value"], f64::MAX);
    assert_eq!(value("neg")["value"], -f64::MAX);
    assert_eq!(value("x")["value"], 0.5);
    assert_eq!(value("x")["step"], 2);
    // History pages with MLflow's tokens, ordered by time then step.
    for (ts, step, v) in [(3, 9, 0.1), (4, 1, 0.2)] {
        post(
            &app,
            &t,
            "/api/2.0/mlflow/runs/log-metric",
            json!({"run_id": run_id, "key": "x", "value": v, "timestamp": ts, "step": step}),
        )
        .await;
    }
    let page = get(
        &app,
        &t,
        &format!("/api/2.0/mlflow/metrics/get-history?run_id={run_id}&metric_key=x&max_results=2"),
    )
    .await;
    let page = expect_json(page, 200).await;
    let values: Vec<f64> = page["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_f64().unwrap())
        .collect();
    assert_eq!(values, [0.1, 0.2]);
    let token = page["next_page_token"].as_str().unwrap();
    let rest = get(
        &app,
        &t,
        &format!(
            "/api/2.0/mlflow/metrics/get-history?run_id={run_id}&metric_key=x&max_results=2&page_token={}",
            token.replace('=', "%3D")
        ),
    )
    .await;
    let rest = expect_json(rest, 200).await;
    assert_eq!(rest["metrics"][0]["value"], 0.5);
    assert!(rest.get("next_page_token").is_none(), "{rest}");
    // Long param and tag values are cut to MLflow's limits, not refused.
    let long = post(
        &app,
        &t,
        "/api/2.0/mlflow/runs/log-batch",
        json!({"run_id": run_id, "params": [{"key": "p", "value": "v".repeat(6001)}],
               "tags": [{"key": "t", "value": "w".repeat(9000)}]}),
    )
    .await;
    expect_json(long, 200).await;
    let got = get(
        &app,
        &t,
        &format!("/api/2.0/mlflow/runs/get?run_id={run_id}"),
    )
    .await;
    let data = expect_json(got, 200).await["run"]["data"].clone();
    assert_eq!(data["params"][0]["value"].as_str().unwrap().len(), 6000);
    let tag = data["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["key"] == "t")
        .unwrap();
    assert_eq!(tag["value"].as_str().unwrap().len(), 8000);
    app.stop().await;
}

async fn native_and_mlflow_apis_share_one_registry(db: Db) {
    let app = spawn_app(db).await;
    let t = app.admin_token.clone();
    // Written through the native API...
    let run = app
        .admin(Method::POST, "/api/v1/runs")
        .json(&json!({"experiment_id": "0", "run_name": "native"}))
        .send()
        .await
        .unwrap();
    let run_id = expect_json(run, 201).await["info"]["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let logged = app
        .admin(Method::POST, &format!("/api/v1/runs/{run_id}/log-batch"))
        .json(&json!({"params": [{"key": "model", "value": "rf"}],
                      "metrics": [{"key": "rmse", "value": 0.25, "step": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(logged.status().as_u16(), 204);
    // ...found by MLflow's run search with its grammar.
    let found = post(
        &app,
        &t,
        "/api/2.0/mlflow/runs/search",
        json!({"experiment_ids": ["0"], "filter": "metrics.rmse < 0.3 AND params.model ILIKE 'RF'",
               "max_results": 10, "run_view_type": "ACTIVE_ONLY"}),
    )
    .await;
    let found = expect_json(found, 200).await;
    assert_eq!(found["runs"].as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found["runs"][0]["info"]["run_name"], "native");
    assert_eq!(found["runs"][0]["data"]["metrics"][0]["value"], 0.25);
    // An artifact uploaded through MLflow's proxy is the native API's artifact.
    let root = found["runs"][0]["info"]["artifact_uri"]
        .as_str()
        .unwrap()
        .trim_start_matches("mlflow-artifacts:/")
        .to_string();
    let put = app
        .admin(
            Method::PUT,
            &format!("/api/2.0/mlflow-artifacts/artifacts/{root}/dir/a.txt"),
        )
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 200);
    let native = app
        .admin(
            Method::GET,
            &format!("/api/v1/runs/{run_id}/artifacts/dir/a.txt"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(native.text().await.unwrap(), "hello");
    let listed = get(
        &app,
        &t,
        &format!("/api/2.0/mlflow-artifacts/artifacts?path={root}/dir"),
    )
    .await;
    assert_eq!(
        expect_json(listed, 200).await,
        json!({"files": [{"path": "a.txt", "is_dir": false, "file_size": 5}]})
    );
    // A file lists as nothing: the client lists a path to learn whether it is a directory.
    let file = get(
        &app,
        &t,
        &format!("/api/2.0/mlflow-artifacts/artifacts?path={root}/dir/a.txt"),
    )
    .await;
    assert_eq!(expect_json(file, 200).await, json!({}));
    app.stop().await;
}
