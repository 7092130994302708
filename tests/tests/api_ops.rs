//! Operations over HTTP: health and readiness, Prometheus metrics, the OpenAPI document and its
//! docs page, and a graceful stop that lets an in-flight upload finish.

use std::time::Duration;

use refit_registry::{Store, StoreOptions};
use refit_tests::{Db, expect_json, on_both_databases, spawn_app, spawn_app_with};
use reqwest::Method;
use serde_json::json;
use sha2::{Digest, Sha256};

on_both_databases!(
    health_and_readiness_need_no_token,
    metrics_count_requests_by_route_template,
    openapi_document_describes_the_api,
    graceful_stop_finishes_an_in_flight_upload,
);

async fn health_and_readiness_need_no_token(db: Db) {
    let app = spawn_app(db).await;
    for (path, body) in [("/healthz", "ok"), ("/readyz", "ready")] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.text().await.unwrap(), body, "{path}");
    }
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
}

async fn metrics_count_requests_by_route_template(db: Db) {
    let app = spawn_app(db).await;
    let run = expect_json(
        app.admin(Method::POST, "/api/v1/runs")
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    let run_id = run["info"]["run_id"].as_str().unwrap();
    for _ in 0..2 {
        let got = expect_json(
            app.admin(Method::GET, &format!("/api/v1/runs/{run_id}"))
                .send()
                .await
                .unwrap(),
            200,
        )
        .await;
        assert_eq!(got["info"]["run_id"], run_id);
    }
    // A miss is counted under its own status, still by template rather than by raw path.
    let missing = app
        .admin(Method::GET, "/api/v1/runs/no-such-run")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let labels = r#"method="GET",route="/api/v1/runs/{run_id}",status="200""#;
    assert!(
        text.contains(&format!("refit_http_requests_total{{{labels}}} 2\n")),
        "{text}"
    );
    assert!(
        text.contains(
            r#"refit_http_requests_total{method="GET",route="/api/v1/runs/{run_id}",status="404"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"refit_http_requests_total{method="POST",route="/api/v1/runs",status="201"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "refit_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} 2\n"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "refit_http_request_duration_seconds_count{{{labels}}} 2\n"
        )),
        "{text}"
    );
    assert!(
        text.contains("# TYPE refit_http_request_duration_seconds histogram"),
        "{text}"
    );
    assert!(!text.contains("no-such-run"), "raw paths leak into labels");
    for state in ["idle", "in_use"] {
        let prefix = format!("refit_db_pool_connections{{state=\"{state}\"}} ");
        let line = text
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no {prefix} line in {text}"));
        line[prefix.len()..]
            .parse::<u64>()
            .unwrap_or_else(|e| panic!("{line}: {e}"));
    }
}

async fn openapi_document_describes_the_api(db: Db) {
    let app = spawn_app(db).await;
    // The document is public, like the docs page that loads it.
    let doc = expect_json(
        app.client
            .get(app.url("/api/v1/openapi.json"))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let version = doc["openapi"].as_str().expect("an openapi version");
    assert!(version.starts_with("3."), "{version}");
    assert_eq!(doc["info"]["title"], "refit");
    let paths = doc["paths"].as_object().expect("paths");
    for expected in [
        "/api/v1/experiments",
        "/api/v1/runs",
        "/api/v1/runs/{run_id}",
        "/api/v1/runs/search",
        "/api/v1/runs/{run_id}/artifacts",
        "/api/v1/runs/{run_id}/artifacts/{path}",
        "/api/v1/models",
        "/api/v1/models/{name}/aliases/{alias}",
        "/api/v1/tokens",
        "/api/v1/audit",
    ] {
        assert!(paths.contains_key(expected), "{expected} missing");
    }
    for path in paths.keys() {
        assert!(path.starts_with("/api/v1/"), "{path}");
        assert!(!path.contains("{*"), "axum wildcard left in {path}");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"],
        json!({"type": "http", "scheme": "bearer"})
    );
    assert_eq!(doc["security"], json!([{"bearer": []}]));
    // Every operation documents at least one response and names a tag.
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path}"
            );
            assert!(op["tags"].as_array().is_some(), "{method} {path}");
        }
    }

    let response = app
        .client
        .get(app.url("/api/v1/docs/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let html = response.text().await.unwrap();
    assert!(html.to_lowercase().contains("<html"), "{html}");
    assert!(html.contains("swagger"), "{html}");
}

/// A large upload streamed slowly from the client is still in flight when the server is told to
/// stop; the stop waits for it, it is answered 201, and the file is in the database afterwards.
async fn graceful_stop_finishes_an_in_flight_upload(db: Db) {
    let mut database_url = String::new();
    let mut app = spawn_app_with(db, |config| database_url = config.database_url.clone()).await;
    let run = expect_json(
        app.admin(Method::POST, "/api/v1/runs")
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    let run_id = run["info"]["run_id"].as_str().unwrap().to_string();
    let root = run["info"]["artifact_uri"]
        .as_str()
        .unwrap()
        .strip_prefix("mlflow-artifacts:/")
        .unwrap()
        .to_string();

    const CHUNK: usize = 64 << 10;
    const CHUNKS: usize = 48; // 3 MiB
    let chunk_of = |i: usize| vec![(i % 251) as u8; CHUNK];
    let mut hasher = Sha256::new();
    for i in 0..CHUNKS {
        hasher.update(chunk_of(i));
    }
    let sha = hex::encode(hasher.finalize());
    let body = futures_util::stream::unfold(0usize, move |i| async move {
        if i == CHUNKS {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        Some((Ok::<_, std::io::Error>(chunk_of(i)), i + 1))
    });
    let upload = app
        .admin(
            Method::PUT,
            &format!("/api/v1/runs/{run_id}/artifacts/model/slow.bin"),
        )
        .header("x-content-sha256", &sha)
        .body(reqwest::Body::wrap_stream(body))
        .send();
    let upload = tokio::spawn(upload);

    // The handler stages uploads in <data>/tmp: once a file appears there the request is in
    // flight on the server, not merely queued in the client.
    let staging = app.dir.path().join("data").join("tmp");
    let mut waited = Duration::ZERO;
    while !std::fs::read_dir(&staging).is_ok_and(|mut d| d.next().is_some()) {
        assert!(waited < Duration::from_secs(10), "the upload never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += Duration::from_millis(10);
    }
    assert!(!upload.is_finished());

    // `stop` consumes the app and with it the temporary directory that holds the SQLite file;
    // keep that directory so the database can be reopened afterwards.
    let dir = std::mem::replace(&mut app.dir, tempfile::tempdir().unwrap());
    let address = app.address.clone();
    app.stop().await;

    let response = upload.await.unwrap().expect("the upload got an answer");
    let stored = expect_json(response, 201).await;
    assert_eq!(stored["path"], "model/slow.bin");
    assert_eq!(stored["sha256"], sha.as_str());
    assert_eq!(stored["size"], (CHUNK * CHUNKS) as i64);

    // The server is gone...
    assert!(
        reqwest::get(format!("{address}/healthz")).await.is_err(),
        "the server still answers after stopping"
    );
    // ...and the upload is in the database it closed.
    let store = Store::connect(&StoreOptions::new(&database_url))
        .await
        .unwrap();
    let info = store
        .artifact_info(&format!("{root}/model/slow.bin"))
        .await
        .unwrap()
        .expect("the artifact is stored");
    assert_eq!(info.sha256, sha);
    assert_eq!(info.size, (CHUNK * CHUNKS) as i64);
    store.close().await;
    drop(dir);
}
