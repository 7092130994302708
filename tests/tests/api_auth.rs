//! Authentication and the role matrix over HTTP, for every operation the OpenAPI document lists.
//!
//! The matrix below is written out by hand on purpose: it is a second statement of
//! `Permission::allows`, so loosening (or tightening) a handler's permission fails this test
//! until the table is changed too.

use std::collections::BTreeSet;

use refit_registry::tokens::Role::{self, Admin, Consumer, Ingest, Operator, Scientist};
use refit_tests::{Db, TestApp, expect_error, expect_json, on_both_databases, spawn_app};
use reqwest::Method;
use serde_json::json;

on_both_databases!(
    every_route_obeys_the_role_matrix,
    every_route_refuses_callers_without_a_valid_token,
    whoami_names_the_token,
    health_metrics_and_docs_need_no_token,
);

/// What a call sends.
enum Body {
    None,
    Json(&'static str),
    Bytes(&'static [u8]),
}

/// One operation of the API and the roles that may call it.
struct Operation {
    method: Method,
    /// The path as the OpenAPI document writes it.
    path: &'static str,
    allowed: &'static [Role],
    body: Body,
}

// The role sets of the matrix, spelled out.
const READ_RUNS: &[Role] = &[Admin, Scientist, Operator];
const WRITE: &[Role] = &[Admin, Scientist];
const READ_MODELS: &[Role] = &[Admin, Scientist, Operator, Consumer];
const AUDIT: &[Role] = &[Admin, Operator];
const ADMIN: &[Role] = &[Admin];
const READ_DATA: &[Role] = &[Admin, Scientist, Operator];
const INGEST: &[Role] = &[Admin, Ingest];
const OPERATE: &[Role] = &[Admin, Operator];
const SCORE: &[Role] = &[Admin, Scientist, Operator, Consumer];
const READ_SCORES: &[Role] = &[Admin, Scientist, Operator, Consumer];
const READ_DRIFT: &[Role] = &[Admin, Scientist, Operator, Consumer];
const EVERYONE: &[Role] = &[Admin, Scientist, Operator, Consumer, Ingest];

/// The role matrix, one row per operation. Reads come before writes, and deletions last, so that
/// each call finds the resources it names (see `every_route_obeys_the_role_matrix`). Bodies name
/// path parameters as `{...}` too; they are filled in like paths.
#[rustfmt::skip]
fn matrix() -> Vec<Operation> {
    use Body::{Bytes, Json, None};
    let rows: [(&str, &str, &[Role], Body); 93] = [
        ("GET",    "/api/v1/experiments",                                  READ_RUNS,   None),
        ("GET",    "/api/v1/experiments/{experiment_id}",                  READ_RUNS,   None),
        ("GET",    "/api/v1/experiments/by-name/{name}",                   READ_RUNS,   None),
        ("POST",   "/api/v1/runs/search",                                  READ_RUNS,   Json(r#"{"experiment_ids": ["{experiment_id}"]}"#)),
        ("GET",    "/api/v1/runs/{run_id}",                                READ_RUNS,   None),
        ("GET",    "/api/v1/runs/{run_id}/metrics/{key}/history",          READ_RUNS,   None),
        ("GET",    "/api/v1/runs/{run_id}/artifacts",                      READ_RUNS,   None),
        ("GET",    "/api/v1/runs/{run_id}/artifacts/{path}",               READ_RUNS,   None),
        ("GET",    "/api/v1/models",                                       READ_MODELS, None),
        ("GET",    "/api/v1/models/{name}",                                READ_MODELS, None),
        ("GET",    "/api/v1/models/{name}/versions",                       READ_MODELS, None),
        ("GET",    "/api/v1/models/{name}/versions/{version}",             READ_MODELS, None),
        ("GET",    "/api/v1/models/{name}/aliases/{alias}",                READ_MODELS, None),
        ("GET",    "/api/v1/model-versions",                               READ_MODELS, None),
        ("GET",    "/api/v1/audit",                                        AUDIT,       None),
        ("GET",    "/api/v1/tokens",                                       ADMIN,       None),
        ("GET",    "/api/v1/whoami",                                       EVERYONE,    None),
        ("GET",    "/api/v1/datasets",                                     READ_DATA,   None),
        ("GET",    "/api/v1/datasets/{name}",                              READ_DATA,   None),
        ("GET",    "/api/v1/datasets/{name}/schema",                       READ_DATA,   None),
        ("GET",    "/api/v1/datasets/{name}/dead-letters",                 READ_DATA,   None),
        ("GET",    "/api/v1/datasets/{name}/snapshots",                    READ_DATA,   None),
        ("GET",    "/api/v1/datasets/{name}/snapshots/{id}",               READ_DATA,   None),
        ("GET",    "/api/v1/datasets/{name}/snapshots/{id}/verify",        READ_DATA,   None),
        ("GET",    "/api/v1/datasets/{name}/snapshots/{id}/rows",          READ_DATA,   None),
        ("POST",   "/api/v1/datasets",                                     WRITE,       Json(r#"{"name": "another", "features": [{"name": "x", "kind": "numeric"}]}"#)),
        ("PATCH",  "/api/v1/datasets/{name}",                              WRITE,       Json(r#"{"retention_days": 30}"#)),
        ("POST",   "/api/v1/datasets/{name}/prune",                        WRITE,       Json(r#"{"force": false}"#)),
        ("PUT",    "/api/v1/datasets/{name}/schema",                       WRITE,       Json(r#"{"features": [{"name": "x", "kind": "numeric"}], "labels": [{"name": "y", "kind": "numeric"}]}"#)),
        ("POST",   "/api/v1/datasets/{name}/snapshots",                    WRITE,       Json("{}")),
        ("POST",   "/api/v1/datasets/{name}/records",                      INGEST,      Json(r#"[{"machine_id": "m2", "ts": 2000, "x": 1}]"#)),
        ("POST",   "/api/v1/datasets/{name}/labels",                       INGEST,      Json(r#"[{"machine_id": "m1", "ts": 1000, "y": 1}]"#)),
        ("POST",   "/api/v1/streams/{name}/records",                       INGEST,      Json(r#"[{"machine_id": "m3", "ts": 3000, "x": 1}]"#)),
        ("GET",    "/api/v1/streams/{name}/scores",                        READ_SCORES, None),
        ("GET",    "/api/v1/drift/reports",                                READ_DRIFT,  None),
        ("GET",    "/api/v1/drift/reports/{id}",                           READ_DRIFT,  None),
        ("GET",    "/api/v1/drift/features/{feature}",                     READ_DRIFT,  None),
        ("GET",    "/api/v1/drift/machines",                               READ_DRIFT,  None),
        ("GET",    "/api/v1/drift/realized",                               READ_DRIFT,  None),
        ("GET",    "/api/v1/drift/settings/{name}",                        READ_DATA,   None),
        ("POST",   "/api/v1/drift/check",                                  READ_DATA,   Json(r#"{"model": "matrix", "dataset": "matrix", "version": 1}"#)),
        ("PUT",    "/api/v1/drift/settings/{name}",                        WRITE,       Json(r#"{"window_rows": 100}"#)),
        ("GET",    "/api/v1/specs",                                        READ_DATA,   None),
        ("GET",    "/api/v1/specs/{spec}",                                 READ_DATA,   None),
        ("GET",    "/api/v1/jobs",                                         READ_DATA,   None),
        ("GET",    "/api/v1/jobs/{id}",                                    READ_DATA,   None),
        ("GET",    "/api/v1/ledger",                                       READ_DATA,   None),
        ("GET",    "/api/v1/ledger/{id}",                                  READ_DATA,   None),
        ("GET",    "/api/v1/promotions/pending",                           READ_DATA,   None),
        ("POST",   "/api/v1/specs",                                        WRITE,       Json(r#"{"name": "other", "dataset": "matrix", "features": ["x"], "target": "y", "task": "regression", "algorithm": "linear_regression"}"#)),
        ("PUT",    "/api/v1/specs/{spec}",                                 WRITE,       Json(r#"{"name": "matrix", "dataset": "matrix", "features": ["x"], "target": "y", "task": "regression", "algorithm": "linear_regression"}"#)),
        ("POST",   "/api/v1/specs/{spec}/disable",                         WRITE,       None),
        ("POST",   "/api/v1/specs/{spec}/enable",                          WRITE,       None),
        ("POST",   "/api/v1/specs/{spec}/train",                           WRITE,       None),
        ("PUT",    "/api/v1/models/{name}/pin",                            OPERATE,     Json("{}")),
        ("DELETE", "/api/v1/models/{name}/pin",                            OPERATE,     None),
        ("POST",   "/api/v1/promotions/{id}/approve",                      OPERATE,     Json("{}")),
        ("POST",   "/api/v1/promotions/{id}/reject",                       OPERATE,     Json(r#"{"reason": "not now"}"#)),
        ("POST",   "/api/v1/models/{name}/rollback",                       OPERATE,     Json(r#"{"version": 1}"#)),
        ("POST",   "/api/v1/models/{name}/score",                          SCORE,       Json(r#"[{"x": 1}]"#)),
        ("POST",   "/api/v1/models/{name}/invocations",                    SCORE,       Json(r#"{"instances": [[1]]}"#)),
        ("POST",   "/api/v1/experiments",                                  WRITE,       Json(r#"{"name": "another"}"#)),
        ("PATCH",  "/api/v1/experiments/{experiment_id}",                  WRITE,       Json(r#"{"name": "matrix"}"#)),
        ("PUT",    "/api/v1/experiments/{experiment_id}/tags/{key}",       WRITE,       Json(r#"{"value": "v"}"#)),
        ("POST",   "/api/v1/runs",                                         WRITE,       Json(r#"{"experiment_id": "{experiment_id}"}"#)),
        ("PATCH",  "/api/v1/runs/{run_id}",                                WRITE,       Json("{}")),
        ("POST",   "/api/v1/runs/{run_id}/log-batch",                      WRITE,       Json(r#"{"metrics": [{"key": "k", "value": 2.0, "step": 1}]}"#)),
        ("POST",   "/api/v1/runs/{run_id}/metrics",                        WRITE,       Json(r#"{"key": "k", "value": 3.0, "step": 2}"#)),
        ("POST",   "/api/v1/runs/{run_id}/inputs",                         WRITE,       Json(r#"{"datasets": []}"#)),
        ("PUT",    "/api/v1/runs/{run_id}/artifacts/{path}",               WRITE,       Bytes(b"new bytes")),
        ("POST",   "/api/v1/models",                                       WRITE,       Json(r#"{"name": "another"}"#)),
        ("PATCH",  "/api/v1/models/{name}",                                WRITE,       Json(r#"{"description": "d"}"#)),
        ("PUT",    "/api/v1/models/{name}/tags/{key}",                     WRITE,       Json(r#"{"value": "v"}"#)),
        ("POST",   "/api/v1/models/{name}/versions",                       WRITE,       Json(r#"{"source": "runs:/{run_id}/model"}"#)),
        ("PATCH",  "/api/v1/models/{name}/versions/{version}",             WRITE,       Json(r#"{"description": "d"}"#)),
        ("PUT",    "/api/v1/models/{name}/versions/{version}/tags/{key}",  WRITE,       Json(r#"{"value": "v"}"#)),
        ("POST",   "/api/v1/models/{name}/versions/{version}/stage",       WRITE,       Json(r#"{"stage": "Staging"}"#)),
        ("PUT",    "/api/v1/models/{name}/aliases/{alias}",                WRITE,       Json(r#"{"version": 1}"#)),
        ("POST",   "/api/v1/models/{name}/onnx",                           WRITE,       Json(r#"{"run_id": "{run_id}", "dataset": "matrix", "features": ["x"]}"#)),
        ("POST",   "/api/v1/models/{name}/versions/{version}/onnx",        WRITE,       Json(r#"{"dataset": "matrix", "features": ["x"]}"#)),
        ("POST",   "/api/v1/tokens",                                       ADMIN,       Json(r#"{"name": "fresh", "role": "consumer"}"#)),
        ("DELETE", "/api/v1/tokens/{id_or_name}",                          ADMIN,       None),
        ("DELETE", "/api/v1/models/{name}/aliases/{alias}",                WRITE,       None),
        ("DELETE", "/api/v1/models/{name}/versions/{version}/tags/{key}",  WRITE,       None),
        ("DELETE", "/api/v1/models/{name}/tags/{key}",                     WRITE,       None),
        ("DELETE", "/api/v1/models/{name}/versions/{version}",             WRITE,       None),
        ("DELETE", "/api/v1/models/{name}",                                WRITE,       None),
        ("DELETE", "/api/v1/runs/{run_id}/tags/{key}",                     WRITE,       None),
        ("DELETE", "/api/v1/runs/{run_id}",                                WRITE,       None),
        ("POST",   "/api/v1/runs/{run_id}/restore",                        WRITE,       None),
        ("DELETE", "/api/v1/experiments/{experiment_id}/tags/{key}",       WRITE,       None),
        ("DELETE", "/api/v1/experiments/{experiment_id}",                  WRITE,       None),
        ("POST",   "/api/v1/experiments/{experiment_id}/restore",          WRITE,       None),
    ];
    rows.into_iter()
        .map(|(method, path, allowed, body)| Operation {
            method: method.parse().expect("an HTTP method"),
            path,
            allowed,
            body,
        })
        .collect()
}

/// Real resources for every path parameter: an experiment and a model both named `matrix`, a run
/// with a tag and metric `k` and a file `dir/file.txt`, version 1 with alias `champion`, and a
/// token `victim` to revoke.
struct Fixture {
    experiment_id: String,
    run_id: String,
    /// Each role's token.
    tokens: Vec<(Role, String)>,
}

impl Fixture {
    async fn new(app: &TestApp) -> Fixture {
        let exp = expect_json(
            app.admin(Method::POST, "/api/v1/experiments")
                .json(&json!({"name": "matrix", "tags": [{"key": "k", "value": "v"}]}))
                .send()
                .await
                .unwrap(),
            201,
        )
        .await;
        let experiment_id = exp["experiment_id"].as_str().unwrap().to_string();
        let run = expect_json(
            app.admin(Method::POST, "/api/v1/runs")
                .json(
                    &json!({"experiment_id": experiment_id, "tags": [{"key": "k", "value": "v"}]}),
                )
                .send()
                .await
                .unwrap(),
            201,
        )
        .await;
        let run_id = run["info"]["run_id"].as_str().unwrap().to_string();
        let metric = app
            .admin(Method::POST, &format!("/api/v1/runs/{run_id}/metrics"))
            .json(&json!({"key": "k", "value": 1.0}))
            .send()
            .await
            .unwrap();
        assert_eq!(metric.status(), 204);
        let upload = app
            .admin(
                Method::PUT,
                &format!("/api/v1/runs/{run_id}/artifacts/dir/file.txt"),
            )
            .body("hello")
            .send()
            .await
            .unwrap();
        assert_eq!(upload.status(), 201);
        expect_json(
            app.admin(Method::POST, "/api/v1/models")
                .json(&json!({"name": "matrix", "tags": [{"key": "k", "value": "v"}]}))
                .send()
                .await
                .unwrap(),
            201,
        )
        .await;
        expect_json(
            app.admin(Method::POST, "/api/v1/models/matrix/versions")
                .json(
                    &json!({"source": format!("runs:/{run_id}/model"), "run_id": run_id,
                              "tags": [{"key": "k", "value": "v"}]}),
                )
                .send()
                .await
                .unwrap(),
            201,
        )
        .await;
        let alias = app
            .admin(Method::PUT, "/api/v1/models/matrix/aliases/champion")
            .json(&json!({"version": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(alias.status(), 204);
        app.token("victim", Scientist).await;
        expect_json(
            app.admin(Method::POST, "/api/v1/datasets")
                .json(
                    &json!({"name": "matrix", "features": [{"name": "x", "kind": "numeric"}],
                              "labels": [{"name": "y", "kind": "numeric"}]}),
                )
                .send()
                .await
                .unwrap(),
            201,
        )
        .await;
        let ingested = expect_json(
            app.admin(Method::POST, "/api/v1/datasets/matrix/records")
                .json(&json!([{"machine_id": "m1", "ts": 1000, "x": 0.5}]))
                .send()
                .await
                .unwrap(),
            200,
        )
        .await;
        assert_eq!(ingested["accepted"], 1);
        let snapshot = expect_json(
            app.admin(Method::POST, "/api/v1/datasets/matrix/snapshots")
                .json(&json!({}))
                .send()
                .await
                .unwrap(),
            201,
        )
        .await;
        assert_eq!(snapshot["id"], 1);
        expect_json(
            app.admin(Method::POST, "/api/v1/specs")
                .json(
                    &json!({"name": "matrix", "dataset": "matrix", "features": ["x"], "target": "y",
                              "task": "regression", "algorithm": "linear_regression"}),
                )
                .send()
                .await
                .unwrap(),
            201,
        )
        .await;
        // A job (1), and a pending promotion (ledger entry 1) for the operator's routes.
        app.store
            .create_job(&refit_registry::Actor::new("test"), 1, "manual", None)
            .await
            .unwrap();
        app.store
            .record_decision(
                &refit_registry::Actor::new("test"),
                refit_registry::ledger::Decision::PendingApproval,
                &refit_registry::ledger::NewDecision {
                    model_name: "matrix".into(),
                    trigger: "manual".into(),
                    candidate_version: Some(1),
                    ..Default::default()
                },
            )
            .await
            .unwrap();

        // A drift report (1) for the drift routes.
        app.store
            .create_drift_report(&refit_registry::drift::NewDriftReport {
                dataset: "matrix".into(),
                model: "matrix".into(),
                version: 1,
                source: refit_registry::drift::ReportSource::Stream,
                window_start: 1000,
                window_end: 1000,
                rows: 1,
                columns: 0,
                drifted_columns: 0,
                share: 0.0,
                drift_share: 0.5,
                dataset_drift: false,
                features: vec![],
                prediction: None,
                machines: vec![],
            })
            .await
            .unwrap();

        let mut tokens = vec![(Admin, app.admin_token.clone())];
        for role in [Scientist, Operator, Consumer, Ingest] {
            tokens.push((role, app.token(&format!("as-{role}"), role).await));
        }
        Fixture {
            experiment_id,
            run_id,
            tokens,
        }
    }

    /// `text` with every path parameter replaced by the fixture's resources.
    fn fill(&self, text: &str) -> String {
        text.replace("{experiment_id}", &self.experiment_id)
            .replace("{run_id}", &self.run_id)
            .replace("{name}", "matrix")
            .replace("{key}", "k")
            .replace("{version}", "1")
            .replace("{alias}", "champion")
            .replace("{id_or_name}", "victim")
            .replace("{path}", "dir/file.txt")
            .replace("{id}", "1")
            .replace("{spec}", "matrix")
            .replace("{feature}", "x")
    }

    fn request(
        &self,
        app: &TestApp,
        op: &Operation,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let url = app.url(&self.fill(op.path));
        let mut request = app.client.request(op.method.clone(), url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        match &op.body {
            Body::None => request,
            Body::Json(text) => request
                .header("content-type", "application/json")
                .body(self.fill(text)),
            Body::Bytes(bytes) => request.body(*bytes),
        }
    }
}

/// The `(method, path)` of every operation in the server's OpenAPI document.
async fn documented_operations(app: &TestApp) -> BTreeSet<(String, String)> {
    let doc = expect_json(
        app.client
            .get(app.url("/api/v1/openapi.json"))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if matches!(
                method.as_str(),
                "get" | "put" | "post" | "delete" | "patch" | "head" | "options" | "trace"
            ) {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

async fn every_route_obeys_the_role_matrix(db: Db) {
    let app = spawn_app(db).await;
    let fixture = Fixture::new(&app).await;
    let matrix = matrix();

    let tabled: BTreeSet<(String, String)> = matrix
        .iter()
        .map(|op| (op.method.to_string(), op.path.to_string()))
        .collect();
    assert_eq!(tabled.len(), matrix.len(), "an operation is tabled twice");
    let documented = documented_operations(&app).await;
    assert_eq!(
        documented.difference(&tabled).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "documented operations missing from the role matrix"
    );
    assert_eq!(
        tabled.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "tabled operations the OpenAPI document does not list"
    );

    for op in &matrix {
        for (role, token) in &fixture.tokens {
            let what = format!("{} {} as {role}", op.method, op.path);
            let response = fixture.request(&app, op, Some(token)).send().await.unwrap();
            if op.allowed.contains(role) {
                let status = response.status().as_u16();
                let text = response.text().await.unwrap();
                if op.method == Method::GET {
                    // Reads run first, against intact resources: they must succeed.
                    assert_eq!(status, 200, "{what}: {text}");
                } else {
                    // Writes may meet what an earlier role's call changed (409, 404...), but
                    // never an authentication or authorization refusal, nor a server error.
                    assert!(
                        !matches!(status, 401 | 403) && status < 500,
                        "{what}: {status} {text}"
                    );
                }
            } else {
                assert_eq!(response.status(), 403, "{what} should be refused");
                let message =
                    expect_error(response, 403, "PERMISSION_DENIED", "may not do this").await;
                assert!(
                    message.contains(&format!("role '{role}'")),
                    "{what}: {message}"
                );
            }
        }
    }

    // The refusals changed nothing: every audit entry of a limited role is one of that role's own
    // actions (ingest sends data; operators decide promotions and pins); consumers wrote nothing.
    let audit = app.store.audit_log(1000, None, None).await.unwrap();
    for entry in &audit {
        match entry.actor.as_str() {
            "as-consumer" => panic!("{entry:?}"),
            "as-ingest" => assert!(entry.action.starts_with("datasets.ingest"), "{entry:?}"),
            "as-operator" => assert!(
                entry.action.starts_with("ledger.")
                    || entry.action.starts_with("models.pin")
                    || entry.action == "models.unpin",
                "{entry:?}"
            ),
            _ => {}
        }
    }
    assert!(audit.iter().any(|e| e.actor == "as-scientist"));
    assert!(audit.iter().any(|e| e.actor == "as-ingest"));
}

async fn every_route_refuses_callers_without_a_valid_token(db: Db) {
    let app = spawn_app(db).await;
    let fixture = Fixture::new(&app).await;

    // A token that worked, then was revoked over the API.
    let revoked = app.token("soon-revoked", Admin).await;
    let whoami = app
        .as_token(&revoked, Method::GET, "/api/v1/whoami")
        .send()
        .await
        .unwrap();
    assert_eq!(whoami.status(), 200);
    let token = expect_json(
        app.admin(Method::DELETE, "/api/v1/tokens/soon-revoked")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(token["name"], "soon-revoked");
    assert!(token["revoked_at"].is_i64(), "{token}");
    let audit_before = app.store.audit_log(1, None, None).await.unwrap()[0].id;

    for op in &matrix() {
        let what = format!("{} {}", op.method, op.path);
        let missing = fixture.request(&app, op, None).send().await.unwrap();
        assert_eq!(missing.status(), 401, "{what} without a token");
        expect_error(missing, 401, "UNAUTHENTICATED", "missing 'Authorization").await;
        // Basic auth carries the token as its password (MLflow's client sends it so): a password
        // that is no token is an unknown token.
        let basic = fixture
            .request(&app, op, None)
            .header("authorization", "Basic YWRtaW46YWRtaW4=")
            .send()
            .await
            .unwrap();
        expect_error(basic, 401, "UNAUTHENTICATED", "invalid or revoked token").await;
        for header in ["Basic !!!", "Bearer", "Bearer    ", "Token abc"] {
            let malformed = fixture
                .request(&app, op, None)
                .header("authorization", header)
                .send()
                .await
                .unwrap();
            assert_eq!(malformed.status(), 401, "{what} with {header:?}");
            expect_error(malformed, 401, "UNAUTHENTICATED", "'Bearer <token>'").await;
        }
        for secret in [
            "refit_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "not-even-a-refit-token",
            revoked.as_str(),
        ] {
            let unknown = fixture
                .request(&app, op, Some(secret))
                .send()
                .await
                .unwrap();
            assert_eq!(unknown.status(), 401, "{what} with {secret}");
            assert_eq!(
                unknown
                    .headers()
                    .get("www-authenticate")
                    .map(|v| v.to_str().unwrap()),
                Some("Bearer"),
                "{what}: a 401 must say how to authenticate"
            );
            expect_error(unknown, 401, "UNAUTHENTICATED", "invalid or revoked token").await;
        }
    }

    // Nothing was done on behalf of any of those callers.
    let audit_after = app.store.audit_log(1, None, None).await.unwrap()[0].id;
    assert_eq!(audit_after, audit_before);
    let run = app.store.get_run(&fixture.run_id).await.unwrap();
    assert_eq!(run.data.metrics.len(), 1);
    assert_eq!(run.data.metrics[0].value, 1.0);
}

async fn whoami_names_the_token(db: Db) {
    let app = spawn_app(db).await;
    let me = expect_json(
        app.admin(Method::GET, "/api/v1/whoami")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(me, json!({"name": "admin", "role": "admin"}));
    for role in [Scientist, Operator, Consumer, Ingest] {
        let name = format!("someone-{role}");
        let token = app.token(&name, role).await;
        let me = expect_json(
            app.as_token(&token, Method::GET, "/api/v1/whoami")
                .send()
                .await
                .unwrap(),
            200,
        )
        .await;
        assert_eq!(me, json!({"name": name, "role": role.as_str()}));
    }
    // Tokens created over the API work at once; the secret is shown once and never listed.
    let created = expect_json(
        app.admin(Method::POST, "/api/v1/tokens")
            .json(&json!({"name": "ci-bot", "role": "ingest"}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.starts_with("refit_"), "{created}");
    let me = expect_json(
        app.as_token(secret, Method::GET, "/api/v1/whoami")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(me, json!({"name": "ci-bot", "role": "ingest"}));
    let listed = expect_json(
        app.admin(Method::GET, "/api/v1/tokens")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let text = listed.to_string();
    assert!(!text.contains(secret), "a secret is listed: {text}");
    assert!(!text.contains("secret"), "{text}");
    let names: Vec<&str> = listed["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"ci-bot") && names.contains(&"admin"),
        "{names:?}"
    );
}

async fn health_metrics_and_docs_need_no_token(db: Db) {
    let app = spawn_app(db).await;
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/v1/openapi.json",
        "/api/v1/docs/",
    ] {
        let bare = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(bare.status(), 200, "{path}");
        // A bad token does not turn a public endpoint into a refusal.
        let with_junk = app
            .client
            .get(app.url(path))
            .bearer_auth("junk")
            .send()
            .await
            .unwrap();
        assert_eq!(with_junk.status(), 200, "{path}");
    }
}
