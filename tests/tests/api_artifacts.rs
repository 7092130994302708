//! Artifacts over HTTP: uploads of empty, small and multi-chunk files into nested directories,
//! listings of direct children, and downloads whose bytes, digest header and ETag match.

use refit_tests::{Db, TestApp, expect_error, expect_json, on_both_databases, spawn_app};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

on_both_databases!(
    uploads_list_and_download_byte_for_byte,
    overwrites_replace_and_runs_are_isolated,
);

/// Deterministic bytes that do not compress to nothing and differ from chunk to chunk.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as u8
        })
        .collect()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

async fn new_run(app: &TestApp) -> (String, String) {
    let run = expect_json(
        app.admin(Method::POST, "/api/v1/runs")
            .json(&json!({"run_name": "artifacts"}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    (
        run["info"]["run_id"].as_str().unwrap().to_string(),
        run["info"]["artifact_uri"].as_str().unwrap().to_string(),
    )
}

async fn upload(app: &TestApp, run_id: &str, path: &str, bytes: &[u8]) -> Value {
    expect_json(
        app.admin(
            Method::PUT,
            &format!("/api/v1/runs/{run_id}/artifacts/{path}"),
        )
        .header("content-type", "application/octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap(),
        201,
    )
    .await
}

async fn list(app: &TestApp, token: &str, run_id: &str, dir: Option<&str>) -> Value {
    let mut request = app.as_token(
        token,
        Method::GET,
        &format!("/api/v1/runs/{run_id}/artifacts"),
    );
    if let Some(dir) = dir {
        request = request.query(&[("path", dir)]);
    }
    expect_json(request.send().await.unwrap(), 200).await
}

/// Downloads `path` and checks its bytes and headers against `expected`.
async fn assert_download(app: &TestApp, token: &str, run_id: &str, path: &str, expected: &[u8]) {
    let response = app
        .as_token(
            token,
            Method::GET,
            &format!("/api/v1/runs/{run_id}/artifacts/{path}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    let sha = sha256(expected);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .unwrap_or_else(|| panic!("{path}: no {name} header"))
            .to_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(header("x-content-sha256"), sha, "{path}");
    assert_eq!(header("etag"), format!("\"{sha}\""), "{path}");
    assert_eq!(
        header("content-length"),
        expected.len().to_string(),
        "{path}"
    );
    assert_eq!(header("content-type"), "application/octet-stream", "{path}");
    let body = response.bytes().await.unwrap();
    assert_eq!(body.len(), expected.len(), "{path}");
    assert!(body == expected, "{path}: the downloaded bytes differ");
}

async fn uploads_list_and_download_byte_for_byte(db: Db) {
    let app = spawn_app(db).await;
    let (run_id, artifact_uri) = new_run(&app).await;
    let reader = app
        .token("reader", refit_registry::tokens::Role::Operator)
        .await;

    // 3 MiB and a bit: four storage chunks, the last one partial.
    let big = pattern((3 << 20) + 12_345, 1);
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("empty.txt", Vec::new()),
        (
            "notes/readme.md",
            b"# churn model\n\ntrained on 2024-06\n".to_vec(),
        ),
        ("model/config.json", br#"{"alpha": 0.1}"#.to_vec()),
        ("model/weights/big.bin", big.clone()),
        ("model/weights/small.bin", pattern(1000, 2)),
        // Names that share a prefix with `model` but are not inside it.
        ("model-v2/other.txt", b"other".to_vec()),
        ("model2.txt", b"sibling".to_vec()),
        ("deep/a/b/c/d/e.txt", b"deep".to_vec()),
        ("with space/and-ünïcode.txt", b"names".to_vec()),
    ];
    for (path, bytes) in &files {
        let stored = upload(&app, &run_id, path, bytes).await;
        assert_eq!(
            stored,
            json!({"path": path, "sha256": sha256(bytes), "size": bytes.len()}),
            "{path}"
        );
    }

    let root = list(&app, &reader, &run_id, None).await;
    assert_eq!(root["root_uri"], artifact_uri.as_str());
    assert_eq!(
        root["files"],
        json!([
            {"path": "deep", "is_dir": true, "file_size": null},
            {"path": "empty.txt", "is_dir": false, "file_size": 0},
            {"path": "model", "is_dir": true, "file_size": null},
            {"path": "model-v2", "is_dir": true, "file_size": null},
            {"path": "model2.txt", "is_dir": false, "file_size": 7},
            {"path": "notes", "is_dir": true, "file_size": null},
            {"path": "with space", "is_dir": true, "file_size": null},
        ])
    );
    let model = json!([
        {"path": "model/config.json", "is_dir": false, "file_size": 14},
        {"path": "model/weights", "is_dir": true, "file_size": null},
    ]);
    assert_eq!(
        list(&app, &reader, &run_id, Some("model")).await["files"],
        model
    );
    assert_eq!(
        list(&app, &reader, &run_id, Some("model/")).await["files"],
        model
    );
    assert_eq!(
        list(&app, &reader, &run_id, Some("model/weights")).await["files"],
        json!([
            {"path": "model/weights/big.bin", "is_dir": false, "file_size": big.len()},
            {"path": "model/weights/small.bin", "is_dir": false, "file_size": 1000},
        ])
    );
    assert_eq!(
        list(&app, &reader, &run_id, Some("deep/a/b")).await["files"],
        json!([{"path": "deep/a/b/c", "is_dir": true, "file_size": null}])
    );
    // A directory with nothing in it lists as empty; so does a file's own path.
    assert_eq!(
        list(&app, &reader, &run_id, Some("nothing")).await["files"],
        json!([])
    );
    assert_eq!(
        list(&app, &reader, &run_id, Some("model2.txt")).await["files"],
        json!([])
    );

    for (path, bytes) in &files {
        let encoded = path.replace(' ', "%20");
        assert_download(&app, &reader, &run_id, &encoded, bytes).await;
    }
    // A directory is not a file.
    let response = app
        .admin(
            Method::GET,
            &format!("/api/v1/runs/{run_id}/artifacts/model"),
        )
        .send()
        .await
        .unwrap();
    expect_error(response, 404, "RESOURCE_DOES_NOT_EXIST", "No artifact at").await;

    // The uploads are in the audit log under the uploader's name.
    let entries = app.store.audit_log(100, None, None).await.unwrap();
    let puts: Vec<_> = entries
        .iter()
        .filter(|e| e.action == "artifacts.put")
        .collect();
    assert_eq!(puts.len(), files.len());
    assert!(puts.iter().all(|e| e.actor == "admin"));
    assert!(
        puts.iter()
            .any(|e| e.target.ends_with("/artifacts/model/weights/big.bin")
                && e.detail.as_deref() == Some(sha256(&big).as_str()))
    );
}

async fn overwrites_replace_and_runs_are_isolated(db: Db) {
    let app = spawn_app(db).await;
    let (run_a, _) = new_run(&app).await;
    let (run_b, _) = new_run(&app).await;
    let admin = app.admin_token.clone();

    let first = pattern(2 << 20, 3);
    upload(&app, &run_a, "model/model.bin", &first).await;
    // The same bytes under another run and path: each run sees only its own file.
    upload(&app, &run_b, "copy/model.bin", &first).await;
    assert_download(&app, &admin, &run_a, "model/model.bin", &first).await;
    assert_download(&app, &admin, &run_b, "copy/model.bin", &first).await;
    assert_eq!(
        list(&app, &admin, &run_b, None).await["files"],
        json!([{"path": "copy", "is_dir": true, "file_size": null}])
    );
    let response = app
        .admin(
            Method::GET,
            &format!("/api/v1/runs/{run_b}/artifacts/model/model.bin"),
        )
        .send()
        .await
        .unwrap();
    expect_error(response, 404, "RESOURCE_DOES_NOT_EXIST", "No artifact at").await;

    // Uploading to the same path again replaces the file; the other run's copy is untouched.
    let second = b"smaller now".to_vec();
    let sha = sha256(&second);
    let stored = expect_json(
        app.admin(
            Method::PUT,
            &format!("/api/v1/runs/{run_a}/artifacts/model/model.bin"),
        )
        .header("x-content-sha256", &sha)
        .body(second.clone())
        .send()
        .await
        .unwrap(),
        201,
    )
    .await;
    assert_eq!(stored["sha256"], sha.as_str());
    assert_download(&app, &admin, &run_a, "model/model.bin", &second).await;
    assert_download(&app, &admin, &run_b, "copy/model.bin", &first).await;
    assert_eq!(
        list(&app, &admin, &run_a, Some("model")).await["files"],
        json!([{"path": "model/model.bin", "is_dir": false, "file_size": second.len()}])
    );
}
