//! Bad input over HTTP: each refusal has an exact status, error code and message, leaves no
//! partial state behind (no metric, param, tag, artifact or audit entry), and none is a 5xx.

use std::io::Write;

use refit_registry::runs::{Metric, Run};
use refit_tests::{
    Db, TestApp, expect_error, expect_json, on_both_databases, spawn_app, spawn_app_with,
};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

on_both_databases!(
    malformed_and_mistyped_json_changes_nothing,
    non_finite_metric_values_are_refused,
    unknown_ids_are_not_found,
    duplicate_names_conflict,
    changing_a_param_refuses_the_whole_batch,
    bodies_are_bounded_before_and_after_gunzip,
    artifact_paths_cannot_escape_the_run,
    artifact_uploads_are_checked_before_they_are_stored,
    search_input_errors_name_the_problem,
    path_parameters_and_unknown_endpoints,
    nul_characters_are_refused_or_kept_never_a_server_error,
);

/// Everything a refused request could have touched: the run (params, latest metrics, tags,
/// inputs), the full history of its `loss` metric, its artifacts, and the newest audit entry.
#[derive(Debug, PartialEq)]
struct Snapshot {
    run: Run,
    loss: Vec<Metric>,
    artifacts: Vec<refit_registry::artifacts::ArtifactEntry>,
    audit_head: i64,
}

async fn snapshot(app: &TestApp, run_id: &str) -> Snapshot {
    let run = app.store.get_run(run_id).await.unwrap();
    let root = artifact_root(&run);
    Snapshot {
        loss: app.store.metric_history(run_id, "loss").await.unwrap(),
        artifacts: app.store.list_artifacts(&root, &root).await.unwrap(),
        audit_head: audit_head(app).await,
        run,
    }
}

async fn audit_head(app: &TestApp) -> i64 {
    app.store.audit_log(1, None, None).await.unwrap()[0].id
}

/// The run's root in the artifact store (`<experiment>/<run>/artifacts`).
fn artifact_root(run: &Run) -> String {
    run.info
        .artifact_uri
        .strip_prefix("mlflow-artifacts:/")
        .expect("refit serves the run's artifacts")
        .to_string()
}

/// An experiment `bad-input` with one run that has param `alpha = 0.1`, a `loss` point at step 0,
/// tag `team = ml` and a file `keep.txt`.
async fn seeded_run(app: &TestApp) -> String {
    let exp = expect_json(
        app.admin(Method::POST, "/api/v1/experiments")
            .json(&json!({"name": "bad-input"}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    let run = expect_json(
        app.admin(Method::POST, "/api/v1/runs")
            .json(&json!({"experiment_id": exp["experiment_id"]}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    let run_id = run["info"]["run_id"].as_str().unwrap().to_string();
    let logged = app
        .admin(Method::POST, &format!("/api/v1/runs/{run_id}/log-batch"))
        .json(&json!({
            "metrics": [{"key": "loss", "value": 0.9, "step": 0, "timestamp": 1000}],
            "params": [{"key": "alpha", "value": "0.1"}],
            "tags": [{"key": "team", "value": "ml"}],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(logged.status(), 204);
    let stored = app
        .admin(
            Method::PUT,
            &format!("/api/v1/runs/{run_id}/artifacts/keep.txt"),
        )
        .body("keep")
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), 201);
    run_id
}

/// A POST of `body` as JSON text (sent as is, so it may be malformed).
async fn post_raw(app: &TestApp, path: &str, body: &str) -> reqwest::Response {
    app.admin(Method::POST, path)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

/// No request of this test's server was answered with a 5xx.
async fn assert_no_server_errors(app: &TestApp) {
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let errors: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("refit_http_requests_total") && l.contains("status=\"5"))
        .collect();
    assert!(errors.is_empty(), "server errors: {errors:?}");
}

/// Sends a request as raw HTTP/1.1, so that the path reaches the server exactly as written (a
/// client library would resolve `..` segments, and the URL standard treats `%2e%2e` as `..` too).
async fn raw_request(app: &TestApp, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
    let address = app.address.strip_prefix("http://").unwrap();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        app.admin_token,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8(response).unwrap();
    let status = text[9..12].parse().unwrap();
    let (_, body) = text.split_once("\r\n\r\n").unwrap();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

async fn malformed_and_mistyped_json_changes_nothing(db: Db) {
    let app = spawn_app(db).await;
    let run_id = seeded_run(&app).await;
    let batch = format!("/api/v1/runs/{run_id}/log-batch");
    let before = snapshot(&app, &run_id).await;

    let cases: &[(&str, &str)] = &[
        // Malformed JSON: cut short, trailing garbage, not JSON at all.
        (
            r#"{"metrics": [{"key": "loss", "value": 0.5"#,
            "malformed JSON",
        ),
        (r#"{"metrics": []} extra"#, "malformed JSON"),
        ("metrics=loss", "malformed JSON"),
        // A wrong type names the path of the field, down to the array index.
        (
            r#"{"metrics": [{"key": "loss", "value": 0.5}, {"key": "loss", "value": "0.4", "step": 1}]}"#,
            "at 'metrics[1].value': invalid type: string \"0.4\", expected f64",
        ),
        (
            r#"{"params": [{"key": "beta", "value": 2}]}"#,
            "at 'params[0].value': invalid type: integer `2`, expected a string",
        ),
        (
            r#"{"metrics": [{"key": "loss", "value": 0.5, "step": 1.5}]}"#,
            "at 'metrics[0].step'",
        ),
        (
            r#"{"metrics": {"key": "loss"}}"#,
            "at 'metrics': invalid type: map",
        ),
        // Missing required fields.
        (r#"{"metrics": [{"key": "loss"}]}"#, "missing field `value`"),
        (r#"{"tags": [{"value": "x"}]}"#, "missing field `key`"),
        // Unknown fields are refused rather than silently dropped.
        (
            r#"{"metrics": [], "metricz": []}"#,
            "unknown field `metricz`",
        ),
    ];
    for (body, fragment) in cases {
        let message = expect_error(
            post_raw(&app, &batch, body).await,
            400,
            "INVALID_PARAMETER_VALUE",
            fragment,
        )
        .await;
        if fragment.starts_with("malformed") {
            assert!(message.starts_with("malformed JSON"), "{message}");
        } else {
            assert!(message.starts_with("invalid request"), "{body}: {message}");
        }
    }
    // The same rules hold for every JSON body, e.g. creating things.
    expect_error(
        post_raw(&app, "/api/v1/experiments", "{}").await,
        400,
        "INVALID_PARAMETER_VALUE",
        "missing field `name`",
    )
    .await;
    expect_error(
        post_raw(
            &app,
            "/api/v1/experiments",
            r#"{"name": "x", "colour": "red"}"#,
        )
        .await,
        400,
        "INVALID_PARAMETER_VALUE",
        "unknown field `colour`",
    )
    .await;
    expect_error(
        post_raw(&app, "/api/v1/models", r#"{"name": ["m"]}"#).await,
        400,
        "INVALID_PARAMETER_VALUE",
        "at 'name': invalid type: sequence",
    )
    .await;
    expect_error(
        post_raw(&app, "/api/v1/tokens", r#"{"name": "t", "role": "root"}"#).await,
        400,
        "INVALID_PARAMETER_VALUE",
        "at 'role': unknown variant `root`",
    )
    .await;
    expect_error(
        app.admin(Method::PATCH, &format!("/api/v1/runs/{run_id}"))
            .json(&json!({"status": "DONE"}))
            .send()
            .await
            .unwrap(),
        400,
        "INVALID_PARAMETER_VALUE",
        "at 'status': unknown variant `DONE`",
    )
    .await;

    assert_eq!(snapshot(&app, &run_id).await, before);
    let experiments = expect_json(
        app.admin(Method::GET, "/api/v1/experiments")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(experiments["experiments"].as_array().unwrap().len(), 2);
    assert_no_server_errors(&app).await;
}

/// JSON has no NaN or infinity. The bare literals `NaN`, `Infinity` and `-Infinity` are not JSON,
/// so they are malformed bodies; the strings `"NaN"` or `"inf"` are strings where a number is
/// expected, so they are wrong types; and a number too large for an f64 (`1e999`) is out of range.
/// All three are 400 and none stores anything. (MLflow's own API, which accepts NaN, shares the
/// store; this native API takes finite numbers only.)
async fn non_finite_metric_values_are_refused(db: Db) {
    let app = spawn_app(db).await;
    let run_id = seeded_run(&app).await;
    let before = snapshot(&app, &run_id).await;
    for path in [
        format!("/api/v1/runs/{run_id}/metrics"),
        format!("/api/v1/runs/{run_id}/log-batch"),
    ] {
        let batch = path.ends_with("log-batch");
        let wrap = |metric: &str| {
            if batch {
                format!(r#"{{"metrics": [{metric}]}}"#)
            } else {
                metric.to_string()
            }
        };
        let at = if batch { "metrics[0].value" } else { "value" };
        for literal in ["NaN", "Infinity", "-Infinity", "nan"] {
            let body = wrap(&format!(
                r#"{{"key": "loss", "value": {literal}, "step": 3}}"#
            ));
            expect_error(
                post_raw(&app, &path, &body).await,
                400,
                "INVALID_PARAMETER_VALUE",
                "malformed JSON",
            )
            .await;
        }
        for string in ["NaN", "inf", "-Infinity", "0.5"] {
            let body = wrap(&format!(
                r#"{{"key": "loss", "value": "{string}", "step": 3}}"#
            ));
            expect_error(
                post_raw(&app, &path, &body).await,
                400,
                "INVALID_PARAMETER_VALUE",
                &format!("at '{at}': invalid type: string \"{string}\", expected f64"),
            )
            .await;
        }
        let body = wrap(r#"{"key": "loss", "value": 1e999, "step": 3}"#);
        expect_error(
            post_raw(&app, &path, &body).await,
            400,
            "INVALID_PARAMETER_VALUE",
            "number out of range",
        )
        .await;
    }
    assert_eq!(snapshot(&app, &run_id).await, before);
    // The largest finite value is a number like any other.
    let ok = app
        .admin(Method::POST, &format!("/api/v1/runs/{run_id}/metrics"))
        .json(&json!({"key": "loss", "value": f64::MAX, "step": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 204);
    let history = app.store.metric_history(&run_id, "loss").await.unwrap();
    assert_eq!(history.last().unwrap().value, f64::MAX);
    assert_no_server_errors(&app).await;
}

async fn unknown_ids_are_not_found(db: Db) {
    let app = spawn_app(db).await;
    let run_id = seeded_run(&app).await;
    let create_model = app
        .admin(Method::POST, "/api/v1/models")
        .json(&json!({"name": "m"}))
        .send()
        .await
        .unwrap();
    assert_eq!(create_model.status(), 201);
    let version = app
        .admin(Method::POST, "/api/v1/models/m/versions")
        .json(&json!({"source": "s3://bucket/m"}))
        .send()
        .await
        .unwrap();
    assert_eq!(version.status(), 201);
    let before = snapshot(&app, &run_id).await;
    let ghost = "0123456789abcdef0123456789abcdef";

    let nf = "RESOURCE_DOES_NOT_EXIST";
    let get = |path: String| app.admin(Method::GET, &path).send();
    expect_error(
        get("/api/v1/experiments/999999".into()).await.unwrap(),
        404,
        nf,
        "No Experiment with id=999999",
    )
    .await;
    expect_error(
        get("/api/v1/experiments/not-a-number".into())
            .await
            .unwrap(),
        404,
        nf,
        "No Experiment with id=not-a-number",
    )
    .await;
    expect_error(
        get("/api/v1/experiments/by-name/nobody".into())
            .await
            .unwrap(),
        404,
        nf,
        "nobody",
    )
    .await;
    expect_error(
        get(format!("/api/v1/runs/{ghost}")).await.unwrap(),
        404,
        nf,
        &format!("Run with id={ghost} not found"),
    )
    .await;
    expect_error(
        get(format!("/api/v1/runs/{ghost}/metrics/loss/history"))
            .await
            .unwrap(),
        404,
        nf,
        ghost,
    )
    .await;
    expect_error(
        get(format!("/api/v1/runs/{ghost}/artifacts"))
            .await
            .unwrap(),
        404,
        nf,
        ghost,
    )
    .await;
    expect_error(
        get(format!("/api/v1/runs/{run_id}/artifacts/nothing-here.txt"))
            .await
            .unwrap(),
        404,
        nf,
        "nothing-here.txt",
    )
    .await;
    expect_error(
        get("/api/v1/models/nope".into()).await.unwrap(),
        404,
        nf,
        "Registered Model with name=nope not found",
    )
    .await;
    expect_error(
        get("/api/v1/models/nope/versions".into()).await.unwrap(),
        404,
        nf,
        "name=nope",
    )
    .await;
    expect_error(
        get("/api/v1/models/m/versions/99".into()).await.unwrap(),
        404,
        nf,
        "Model Version (name=m, version=99) not found",
    )
    .await;
    expect_error(
        get("/api/v1/models/m/aliases/champion".into())
            .await
            .unwrap(),
        404,
        nf,
        "alias champion not found",
    )
    .await;

    // Writes naming something that does not exist create nothing.
    let writes: Vec<(Method, String, Value, &str)> = vec![
        (
            Method::POST,
            "/api/v1/runs".into(),
            json!({"experiment_id": "999999"}),
            "No Experiment with id=999999",
        ),
        (
            Method::POST,
            format!("/api/v1/runs/{ghost}/log-batch"),
            json!({"metrics": [{"key": "loss", "value": 1.0}]}),
            ghost,
        ),
        (
            Method::POST,
            format!("/api/v1/runs/{ghost}/metrics"),
            json!({"key": "loss", "value": 1.0}),
            ghost,
        ),
        (
            Method::PATCH,
            format!("/api/v1/runs/{ghost}"),
            json!({"status": "FINISHED"}),
            ghost,
        ),
        (
            Method::POST,
            "/api/v1/models/nope/versions".into(),
            json!({"source": "x"}),
            "name=nope",
        ),
        (
            Method::POST,
            "/api/v1/models/m/versions".into(),
            json!({"source": "x", "run_id": ghost}),
            ghost,
        ),
        (
            Method::PUT,
            "/api/v1/models/m/aliases/champion".into(),
            json!({"version": 99}),
            "version=99",
        ),
        (
            Method::POST,
            "/api/v1/models/m/versions/99/stage".into(),
            json!({"stage": "Production"}),
            "version=99",
        ),
        (
            Method::PUT,
            "/api/v1/models/nope/tags/k".into(),
            json!({"value": "v"}),
            "name=nope",
        ),
        (
            Method::PUT,
            "/api/v1/experiments/999999/tags/k".into(),
            json!({"value": "v"}),
            "id=999999",
        ),
    ];
    for (method, path, body, fragment) in writes {
        let response = app.admin(method, &path).json(&body).send().await.unwrap();
        expect_error(response, 404, nf, fragment).await;
    }
    for path in [
        format!("/api/v1/runs/{ghost}"),
        format!("/api/v1/runs/{run_id}/tags/no-such-tag"),
        "/api/v1/models/nope".into(),
        "/api/v1/models/m/versions/99".into(),
        "/api/v1/models/m/aliases/champion".into(),
        "/api/v1/tokens/nobody".into(),
    ] {
        let response = app.admin(Method::DELETE, &path).send().await.unwrap();
        assert_eq!(response.status(), 404, "DELETE {path}");
        expect_error(response, 404, nf, "").await;
    }
    // Uploading to a run that does not exist stages nothing.
    let upload = app
        .admin(
            Method::PUT,
            &format!("/api/v1/runs/{ghost}/artifacts/a.txt"),
        )
        .body("bytes")
        .send()
        .await
        .unwrap();
    expect_error(upload, 404, nf, ghost).await;

    assert_eq!(snapshot(&app, &run_id).await, before);
    let model = app.store.get_registered_model("m").await.unwrap();
    assert_eq!(model.latest_version, Some(1));
    assert!(model.aliases.is_empty());
    assert_eq!(
        app.store
            .get_model_version("m", 1)
            .await
            .unwrap()
            .current_stage,
        "None"
    );
    assert_no_server_errors(&app).await;
}

async fn duplicate_names_conflict(db: Db) {
    let app = spawn_app(db).await;
    let run_id = seeded_run(&app).await;
    for name in ["churn", "other"] {
        let created = app
            .admin(Method::POST, "/api/v1/models")
            .json(&json!({"name": name}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
    }
    let other = expect_json(
        app.admin(Method::POST, "/api/v1/experiments")
            .json(&json!({"name": "other"}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    let before = snapshot(&app, &run_id).await;

    let cases: Vec<(Method, String, Value, &str)> = vec![
        (
            Method::POST,
            "/api/v1/experiments".into(),
            json!({"name": "bad-input"}),
            "Experiment(name=bad-input) already exists",
        ),
        (
            Method::PATCH,
            format!(
                "/api/v1/experiments/{}",
                other["experiment_id"].as_str().unwrap()
            ),
            json!({"name": "bad-input"}),
            "bad-input",
        ),
        (
            Method::POST,
            "/api/v1/models".into(),
            json!({"name": "churn"}),
            "Registered Model (name=churn) already exists",
        ),
        (
            Method::PATCH,
            "/api/v1/models/other".into(),
            json!({"name": "churn"}),
            "Registered Model (name=churn) already exists",
        ),
        (
            Method::POST,
            "/api/v1/tokens".into(),
            json!({"name": "admin", "role": "admin"}),
            "a token named 'admin' already exists",
        ),
    ];
    for (method, path, body, fragment) in cases {
        let response = app
            .admin(method.clone(), &path)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 409, "{method} {path}");
        expect_error(response, 409, "RESOURCE_ALREADY_EXISTS", fragment).await;
    }
    assert_eq!(snapshot(&app, &run_id).await, before);
    assert_eq!(
        app.store
            .get_experiment(other["experiment_id"].as_str().unwrap())
            .await
            .unwrap()
            .name,
        "other"
    );
    assert!(app.store.get_registered_model("other").await.is_ok());
    assert_eq!(app.store.list_tokens().await.unwrap().len(), 1);
    assert_no_server_errors(&app).await;
}

async fn changing_a_param_refuses_the_whole_batch(db: Db) {
    let app = spawn_app(db).await;
    let run_id = seeded_run(&app).await;
    let batch = format!("/api/v1/runs/{run_id}/log-batch");
    let before = snapshot(&app, &run_id).await;

    let response = app
        .admin(Method::POST, &batch)
        .json(&json!({
            "metrics": [{"key": "loss", "value": 0.5, "step": 5}],
            "params": [{"key": "beta", "value": "1"}, {"key": "alpha", "value": "0.2"}],
            "tags": [{"key": "note", "value": "never stored"}],
        }))
        .send()
        .await
        .unwrap();
    expect_error(
        response,
        400,
        "INVALID_PARAMETER_VALUE",
        "Changing param values is not allowed. Param with key='alpha' was already logged with value='0.1'",
    )
    .await;
    // Two values for one key within a batch are refused the same way.
    let response = app
        .admin(Method::POST, &batch)
        .json(&json!({
            "metrics": [{"key": "loss", "value": 0.5, "step": 5}],
            "params": [{"key": "gamma", "value": "1"}, {"key": "gamma", "value": "2"}],
        }))
        .send()
        .await
        .unwrap();
    expect_error(
        response,
        400,
        "INVALID_PARAMETER_VALUE",
        "param 'gamma' appears with values '1' and '2'",
    )
    .await;
    assert_eq!(snapshot(&app, &run_id).await, before);

    // Logging the same value again is allowed, and the rest of that batch is stored.
    let response = app
        .admin(Method::POST, &batch)
        .json(&json!({
            "metrics": [{"key": "loss", "value": 0.5, "step": 5}],
            "params": [{"key": "alpha", "value": "0.1"}, {"key": "beta", "value": "1"}],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let run = app.store.get_run(&run_id).await.unwrap();
    let params: Vec<(&str, &str)> = run
        .data
        .params
        .iter()
        .map(|p| (p.key.as_str(), p.value.as_str()))
        .collect();
    assert_eq!(params, [("alpha", "0.1"), ("beta", "1")]);
    assert_eq!(
        app.store
            .metric_history(&run_id, "loss")
            .await
            .unwrap()
            .len(),
        2
    );
    assert_no_server_errors(&app).await;
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

async fn bodies_are_bounded_before_and_after_gunzip(db: Db) {
    const LIMIT: u64 = 64 << 10;
    let app = spawn_app_with(db, |config| config.max_body_size = LIMIT).await;
    let run_id = seeded_run(&app).await;
    let batch = format!("/api/v1/runs/{run_id}/log-batch");
    let before = snapshot(&app, &run_id).await;

    // 100 KiB of plain JSON.
    let big = json!({"tags": [{"key": "note", "value": "x".repeat(100 << 10)}]}).to_string();
    expect_error(
        post_raw(&app, &batch, &big).await,
        413,
        "REQUEST_TOO_LARGE",
        "larger than the limit of 65536 bytes",
    )
    .await;

    // A compression bomb: a few KiB on the wire, 10 MiB of spaces once inflated.
    let mut spaces = br#"{"metrics": []"#.to_vec();
    spaces.resize(10 << 20, b' ');
    spaces.push(b'}');
    let bomb = gzip(&spaces);
    assert!(bomb.len() < 16 << 10, "the bomb is {} bytes", bomb.len());
    let response = app
        .admin(Method::POST, &batch)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(bomb)
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

    // Encodings the server does not speak, and gzip that is not gzip.
    for encoding in ["br", "deflate", "compress"] {
        let response = app
            .admin(Method::POST, &batch)
            .header("content-type", "application/json")
            .header("content-encoding", encoding)
            .body(r#"{"metrics": [{"key": "loss", "value": 0.1, "step": 9}]}"#)
            .send()
            .await
            .unwrap();
        expect_error(
            response,
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            &format!("unsupported Content-Encoding '{encoding}'"),
        )
        .await;
    }
    let response = app
        .admin(Method::POST, &batch)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(r#"{"metrics": [{"key": "loss", "value": 0.1, "step": 9}]}"#)
        .send()
        .await
        .unwrap();
    expect_error(
        response,
        400,
        "INVALID_PARAMETER_VALUE",
        "the gzip request body is corrupt",
    )
    .await;
    assert_eq!(snapshot(&app, &run_id).await, before);

    // A valid gzip body is inflated and accepted, even when inflated it is larger than it was.
    let small = format!(
        r#"{{"metrics": [{{"key": "loss", "value": 0.25, "step": 7, "timestamp": 2000}}]{}}}"#,
        " ".repeat(40 << 10)
    );
    let response = app
        .admin(Method::POST, &batch)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gzip(small.as_bytes()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
    let history = app.store.metric_history(&run_id, "loss").await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!((history[1].step, history[1].value), (7, 0.25));

    // Artifacts are stored as sent: they refuse compressed uploads rather than store them twice
    // over.
    let response = app
        .admin(
            Method::PUT,
            &format!("/api/v1/runs/{run_id}/artifacts/z.gz"),
        )
        .header("content-encoding", "gzip")
        .body(gzip(b"data"))
        .send()
        .await
        .unwrap();
    expect_error(
        response,
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        "'gzip' is not accepted",
    )
    .await;
    let run = app.store.get_run(&run_id).await.unwrap();
    assert!(
        app.store
            .artifact_info(&format!("{}/z.gz", artifact_root(&run)))
            .await
            .unwrap()
            .is_none()
    );
    assert_no_server_errors(&app).await;
}

async fn artifact_paths_cannot_escape_the_run(db: Db) {
    let app = spawn_app(db).await;
    let run_id = seeded_run(&app).await;
    let before = snapshot(&app, &run_id).await;
    let base = format!("/api/v1/runs/{run_id}/artifacts");

    // Through a client library: encode what it would otherwise resolve or refuse.
    let encoded = [
        ("..%2Fescape.txt", "../escape.txt", "'..' segment"),
        (
            "a%2F..%2F..%2Fescape.txt",
            "a/../../escape.txt",
            "'..' segment",
        ),
        (
            "%2Fetc%2Fpasswd",
            "/etc/passwd",
            "must be relative, not absolute",
        ),
        ("a%00b.txt", "a\0b.txt", "NUL byte"),
        ("a%5C..%5Cb", "a\\..\\b", "backslash"),
        ("a%2F%2Fb", "a//b", "empty segment"),
        ("a%0Ab", "a\nb", "control character"),
    ];
    for (path, decoded, fragment) in encoded {
        for method in [Method::PUT, Method::GET] {
            let mut request = app.admin(method.clone(), &format!("{base}/{path}"));
            if method == Method::PUT {
                request = request.body("escape");
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 400, "{method} {path}");
            expect_error(response, 400, "INVALID_PARAMETER_VALUE", fragment).await;
        }
        let listing = app
            .admin(Method::GET, &base)
            .query(&[("path", decoded)])
            .send()
            .await
            .unwrap();
        assert_eq!(listing.status(), 400, "list {decoded:?}");
        expect_error(listing, 400, "INVALID_PARAMETER_VALUE", fragment).await;
    }

    // Raw on the wire, as a hostile client would send it: literal and percent-encoded dot segments.
    let raw = [
        ("../escape.txt", "'..' segment"),
        ("a/../../../escape.txt", "'..' segment"),
        ("%2e%2e/escape.txt", "'..' segment"),
        ("a/%2E%2E/%2e%2e/escape.txt", "'..' segment"),
        ("./escape.txt", "'.' or '..' segment"),
        ("%2F%2Fescape.txt", "must be relative, not absolute"),
        ("a%00.txt", "NUL byte"),
    ];
    for (path, fragment) in raw {
        let (status, body) = raw_request(&app, "PUT", &format!("{base}/{path}"), b"escape").await;
        assert_eq!(status, 400, "PUT {path}: {body}");
        assert_eq!(body["error_code"], "INVALID_PARAMETER_VALUE", "{path}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(fragment), "{path}: {message}");
    }

    assert_eq!(snapshot(&app, &run_id).await, before);
    let staging = app.dir.path().join("data").join("tmp");
    assert!(
        std::fs::read_dir(&staging).map_or(true, |mut d| d.next().is_none()),
        "refused uploads left staged files"
    );
    assert_no_server_errors(&app).await;
}

async fn artifact_uploads_are_checked_before_they_are_stored(db: Db) {
    const LIMIT: u64 = 256 << 10;
    let app = spawn_app_with(db, |config| config.max_artifact_size = LIMIT).await;
    let run_id = seeded_run(&app).await;
    let before = snapshot(&app, &run_id).await;
    let url = format!("/api/v1/runs/{run_id}/artifacts/model/weights.bin");

    let sha_of_other = hex::encode(Sha256::digest(b"other bytes"));
    let actual = hex::encode(Sha256::digest(b"these bytes"));
    let response = app
        .admin(Method::PUT, &url)
        .header("x-content-sha256", &sha_of_other)
        .body("these bytes")
        .send()
        .await
        .unwrap();
    let message = expect_error(
        response,
        400,
        "INVALID_PARAMETER_VALUE",
        "nothing was stored",
    )
    .await;
    assert!(
        message.contains(&actual) && message.contains(&sha_of_other),
        "{message}"
    );
    for bad in ["not-hex", "abc", &"g".repeat(64)] {
        let response = app
            .admin(Method::PUT, &url)
            .header("x-content-sha256", bad)
            .body("these bytes")
            .send()
            .await
            .unwrap();
        expect_error(
            response,
            400,
            "INVALID_PARAMETER_VALUE",
            "must be 64 hex digits",
        )
        .await;
    }

    let too_big = vec![7u8; LIMIT as usize + 1];
    let response = app
        .admin(Method::PUT, &url)
        .body(too_big)
        .send()
        .await
        .unwrap();
    expect_error(
        response,
        413,
        "REQUEST_TOO_LARGE",
        &format!("larger than the limit of {LIMIT} bytes"),
    )
    .await;
    assert_eq!(snapshot(&app, &run_id).await, before);
    let staging = app.dir.path().join("data").join("tmp");
    assert!(
        std::fs::read_dir(&staging).map_or(true, |mut d| d.next().is_none()),
        "refused uploads left staged files"
    );

    // Exactly at the limit, with the right digest (upper-case hex is fine), it is stored.
    let exact = vec![7u8; LIMIT as usize];
    let sha = hex::encode(Sha256::digest(&exact));
    let stored = expect_json(
        app.admin(Method::PUT, &url)
            .header("x-content-sha256", sha.to_uppercase())
            .body(exact)
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    assert_eq!(
        stored,
        json!({"path": "model/weights.bin", "sha256": sha, "size": LIMIT})
    );

    // A deleted run takes no uploads.
    let deleted = app
        .admin(Method::DELETE, &format!("/api/v1/runs/{run_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let response = app
        .admin(
            Method::PUT,
            &format!("/api/v1/runs/{run_id}/artifacts/late.txt"),
        )
        .body("late")
        .send()
        .await
        .unwrap();
    expect_error(
        response,
        400,
        "INVALID_PARAMETER_VALUE",
        "must be in the 'active' state",
    )
    .await;
    assert_no_server_errors(&app).await;
}

async fn search_input_errors_name_the_problem(db: Db) {
    let app = spawn_app(db).await;
    let run_id = seeded_run(&app).await;
    let experiment_id = app.store.get_run(&run_id).await.unwrap().info.experiment_id;
    for _ in 0..2 {
        let created = app
            .admin(Method::POST, "/api/v1/runs")
            .json(&json!({"experiment_id": experiment_id}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
    }
    let search = |body: Value| {
        app.admin(Method::POST, "/api/v1/runs/search")
            .json(&body)
            .send()
    };
    let invalid = "INVALID_PARAMETER_VALUE";

    // Filters that do not parse say where.
    let cases = [
        (
            "metrics.loss < 'x'",
            "Invalid filter 'metrics.loss < 'x''",
            "(at position 15)",
        ),
        ("params.alpha = ", "Invalid filter", "(at position 15)"),
        (
            "params.alpha = '0.1' AND",
            "'AND' must be followed by a comparison",
            "(at position 21)",
        ),
        ("colour = 'red'", "Invalid filter", "(at position 0)"),
    ];
    for (filter, first, second) in cases {
        let response = search(json!({"experiment_ids": [experiment_id], "filter": filter}))
            .await
            .unwrap();
        let message = expect_error(response, 400, invalid, first).await;
        assert!(message.contains(second), "{filter}: {message}");
    }
    let response = app
        .admin(Method::GET, "/api/v1/experiments")
        .query(&[("filter", "name LIKE")])
        .send()
        .await
        .unwrap();
    expect_error(response, 400, invalid, "(at position ").await;
    let response = app
        .admin(Method::GET, "/api/v1/models")
        .query(&[("filter", "name = 'a' OR name = 'b'")])
        .send()
        .await
        .unwrap();
    expect_error(response, 400, invalid, "(at position ").await;

    // Page tokens are only good for the query that issued them.
    let first = expect_json(
        search(json!({"experiment_ids": [experiment_id], "max_results": 1}))
            .await
            .unwrap(),
        200,
    )
    .await;
    let token = first["next_page_token"].as_str().expect("a next page");
    let forged = "MTAwOjAwMDAwMDAwMDAwMDAwMDA"; // "100:0000000000000000"
    // A forged token, one that is not a token at all, and a real one reused for another query.
    for body in [
        json!({"experiment_ids": [experiment_id], "max_results": 1, "page_token": forged}),
        json!({"experiment_ids": [experiment_id], "max_results": 1, "page_token": "%%%"}),
        json!({"experiment_ids": [experiment_id], "max_results": 1, "page_token": token,
               "filter": "params.alpha = '0.1'"}),
    ] {
        let response = search(body).await.unwrap();
        expect_error(response, 400, invalid, "Invalid page token").await;
    }
    let response = app
        .admin(Method::GET, "/api/v1/experiments")
        .query(&[("page_token", forged)])
        .send()
        .await
        .unwrap();
    expect_error(response, 400, invalid, "Invalid page token").await;

    // Order clauses, page sizes and view types are checked too.
    let response =
        search(json!({"experiment_ids": [experiment_id], "order_by": ["metrics.loss SIDEWAYS"]}))
            .await
            .unwrap();
    expect_error(
        response,
        400,
        invalid,
        "Invalid order_by clause 'metrics.loss SIDEWAYS'",
    )
    .await;
    for n in [0, -1, 50_001] {
        let response = search(json!({"experiment_ids": [experiment_id], "max_results": n}))
            .await
            .unwrap();
        expect_error(
            response,
            400,
            invalid,
            "max_results must be between 1 and 50000",
        )
        .await;
    }
    let response = search(json!({"experiment_ids": [experiment_id], "run_view_type": "SOME"}))
        .await
        .unwrap();
    expect_error(
        response,
        400,
        invalid,
        "at 'run_view_type': unknown variant `SOME`",
    )
    .await;
    let response = app
        .admin(Method::GET, "/api/v1/experiments")
        .query(&[("view_type", "SOME"), ("max_results", "2")])
        .send()
        .await
        .unwrap();
    expect_error(response, 400, invalid, "invalid query string").await;

    // Searches are bounded in size: more would fail in the database (too many bound values) or
    // take PostgreSQL minutes to plan. At the limits they work.
    let ids = |n: usize| -> Vec<String> {
        (0..n)
            .map(|i| {
                if i == 0 {
                    experiment_id.clone()
                } else {
                    (100_000 + i).to_string()
                }
            })
            .collect()
    };
    let quoted = |n: usize| -> String {
        (0..n)
            .map(|i| format!("'r{i:031x}'"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let ands = |n: usize| -> String {
        (0..n)
            .map(|i| format!("params.p{i} != 'x'"))
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    let orders =
        |n: usize| -> Vec<String> { (0..n).map(|i| format!("metrics.m{i} DESC")).collect() };
    let too_big = [
        (
            json!({"experiment_ids": ids(10_001)}),
            "at most 10000 experiment ids; got 10001",
        ),
        // Past SQLite's and PostgreSQL's limits on bound values, which used to be a 500.
        (
            json!({"experiment_ids": ids(70_000)}),
            "at most 10000 experiment ids; got 70000",
        ),
        (
            json!({"experiment_ids": [experiment_id], "filter": format!("attributes.run_id IN ({})", quoted(10_001))}),
            "it has 10001 values; the limit is 10000",
        ),
        (
            json!({"experiment_ids": [experiment_id], "filter": ands(51)}),
            "it has 51 comparisons; the limit is 50",
        ),
        (
            json!({"experiment_ids": [experiment_id], "order_by": orders(21)}),
            "21 clauses; the limit is 20",
        ),
    ];
    for (body, fragment) in too_big {
        expect_error(search(body).await.unwrap(), 400, invalid, fragment).await;
    }
    let at_limits = [
        json!({"experiment_ids": ids(10_000)}),
        json!({"experiment_ids": [experiment_id], "filter": format!("attributes.run_id IN ({})", quoted(10_000))}),
        json!({"experiment_ids": [experiment_id], "filter": ands(50)}),
        json!({"experiment_ids": [experiment_id], "order_by": orders(20)}),
    ];
    for body in at_limits {
        expect_json(search(body).await.unwrap(), 200).await;
    }

    let response = app
        .admin(Method::GET, "/api/v1/audit")
        .query(&[("limit", "ten")])
        .send()
        .await
        .unwrap();
    expect_error(response, 400, invalid, "invalid query string").await;
    assert_no_server_errors(&app).await;
}

async fn path_parameters_and_unknown_endpoints(db: Db) {
    let app = spawn_app(db).await;
    let created = app
        .admin(Method::POST, "/api/v1/models")
        .json(&json!({"name": "m"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let head = audit_head(&app).await;

    for (method, path) in [
        (Method::GET, "/api/v1/models/m/versions/abc"),
        (Method::GET, "/api/v1/models/m/versions/1.5"),
        (Method::DELETE, "/api/v1/models/m/versions/abc"),
        (
            Method::GET,
            "/api/v1/models/m/versions/99999999999999999999",
        ),
    ] {
        let response = app.admin(method.clone(), path).send().await.unwrap();
        assert_eq!(response.status(), 400, "{method} {path}");
        expect_error(
            response,
            400,
            "INVALID_PARAMETER_VALUE",
            "invalid path parameter",
        )
        .await;
    }
    let response = app
        .admin(Method::PUT, "/api/v1/models/m/versions/abc/tags/k")
        .json(&json!({"value": "v"}))
        .send()
        .await
        .unwrap();
    expect_error(
        response,
        400,
        "INVALID_PARAMETER_VALUE",
        "invalid path parameter",
    )
    .await;
    let response = app
        .admin(Method::PUT, "/api/v1/models/m/aliases/champion")
        .json(&json!({"version": "1"}))
        .send()
        .await
        .unwrap();
    expect_error(response, 400, "INVALID_PARAMETER_VALUE", "at 'version'").await;
    for reserved in ["latest", "v1"] {
        let response = app
            .admin(Method::PUT, &format!("/api/v1/models/m/aliases/{reserved}"))
            .json(&json!({"version": 1}))
            .send()
            .await
            .unwrap();
        expect_error(response, 400, "INVALID_PARAMETER_VALUE", "are reserved").await;
    }
    let response = app
        .admin(Method::POST, "/api/v1/models/m/versions/1/stage")
        .json(&json!({"stage": "Live"}))
        .send()
        .await
        .unwrap();
    // The version does not exist either; the stage is checked first.
    expect_error(
        response,
        400,
        "INVALID_PARAMETER_VALUE",
        "Invalid Model Version stage: Live",
    )
    .await;

    for path in ["/api/v1/nope", "/api/v2/runs", "/api/v1/runs/x/y/z", "/"] {
        let response = app.admin(Method::GET, path).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        expect_error(response, 404, "ENDPOINT_NOT_FOUND", "no such endpoint").await;
    }
    // Unknown endpoints answer the same with or without a token.
    let response = app
        .client
        .get(app.url("/api/v1/nope"))
        .send()
        .await
        .unwrap();
    expect_error(response, 404, "ENDPOINT_NOT_FOUND", "no such endpoint").await;
    // A known path with a method it does not have.
    for (method, path) in [
        (Method::DELETE, "/api/v1/whoami"),
        (Method::PUT, "/api/v1/runs/search"),
        (Method::POST, "/api/v1/models/m"),
    ] {
        let response = app.admin(method.clone(), path).send().await.unwrap();
        assert_eq!(response.status(), 405, "{method} {path}");
        let allow = response
            .headers()
            .get("allow")
            .map(|v| v.to_str().unwrap().to_string());
        assert!(
            allow.is_some_and(|a| !a.contains(method.as_str())),
            "{method} {path}"
        );
        expect_error(
            response,
            405,
            "METHOD_NOT_ALLOWED",
            "does not take that method",
        )
        .await;
    }

    assert_eq!(audit_head(&app).await, head);
    assert_no_server_errors(&app).await;
}

/// JSON strings may carry U+0000 (`"\u0000"`) and paths and queries may carry `%00`. PostgreSQL
/// cannot store NUL in text, so there every such value is a 400 naming the problem; SQLite stores
/// it like any other character. Either way it is the caller's input, never a 500.
async fn nul_characters_are_refused_or_kept_never_a_server_error(db: Db) {
    let app = spawn_app(db).await;
    let run_id = seeded_run(&app).await;
    let experiment_id = app.store.get_run(&run_id).await.unwrap().info.experiment_id;
    let created = app
        .admin(Method::POST, "/api/v1/models")
        .json(&json!({"name": "m"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let before = snapshot(&app, &run_id).await;

    let nul = "a\0b";
    let writes: Vec<(Method, String, Value)> = vec![
        (
            Method::POST,
            format!("/api/v1/runs/{run_id}/log-batch"),
            json!({"params": [{"key": "p", "value": nul}], "metrics": [{"key": "loss", "value": 0.1, "step": 4}]}),
        ),
        (
            Method::POST,
            format!("/api/v1/runs/{run_id}/log-batch"),
            json!({"tags": [{"key": "t", "value": nul}]}),
        ),
        (
            Method::POST,
            format!("/api/v1/runs/{run_id}/inputs"),
            json!({"datasets": [{"dataset": {"name": "d", "digest": "1", "source_type": "local", "source": nul}}]}),
        ),
        (
            Method::PUT,
            format!("/api/v1/experiments/{experiment_id}/tags/t"),
            json!({"value": nul}),
        ),
        (
            Method::PATCH,
            "/api/v1/models/m".into(),
            json!({"description": nul}),
        ),
        (
            Method::POST,
            "/api/v1/models/m/versions".into(),
            json!({"source": nul}),
        ),
        (
            Method::POST,
            "/api/v1/runs/search".into(),
            json!({"experiment_ids": [experiment_id], "filter": format!("params.alpha = '{nul}'")}),
        ),
    ];
    for (method, path, body) in writes {
        let response = app
            .admin(method.clone(), &path)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        match db {
            Db::Postgres => {
                assert_eq!(status, 400, "{method} {path}: {text}");
                let error: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(error["error_code"], "INVALID_PARAMETER_VALUE");
                assert!(error["message"].as_str().unwrap().contains("NUL"), "{text}");
            }
            Db::Sqlite => assert!(status < 300, "{method} {path}: {status} {text}"),
        }
    }
    for path in [
        "/api/v1/models/a%00b",
        "/api/v1/models/m/aliases/a%00b",
        "/api/v1/experiments/by-name/a%00b",
        "/api/v1/runs/a%00b",
        "/api/v1/audit?target=a%00b",
        "/api/v1/experiments?filter=name%20%3D%20%27a%00b%27",
    ] {
        let response = app.admin(Method::GET, path).send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let expected: &[u16] = match db {
            Db::Postgres => &[400],
            Db::Sqlite => &[200, 404],
        };
        assert!(expected.contains(&status), "GET {path}: {status} {text}");
    }
    match db {
        Db::Postgres => assert_eq!(snapshot(&app, &run_id).await, before),
        Db::Sqlite => {
            // Stored and read back exactly.
            let run = app.store.get_run(&run_id).await.unwrap();
            assert!(
                run.data
                    .params
                    .iter()
                    .any(|p| p.key == "p" && p.value == nul)
            );
        }
    }
    assert_no_server_errors(&app).await;
}
