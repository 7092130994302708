//! A data scientist's walk through the registry over HTTP — experiment, runs, logging, search,
//! lineage, model versions, aliases and stages — then an operator who can read all of it and
//! change none of it, and the audit log naming who did what.

use refit_registry::tokens::Role;
use refit_tests::{Db, TestApp, expect_error, expect_json, on_both_databases, spawn_app};
use reqwest::Method;
use serde_json::{Value, json};

on_both_databases!(a_scientist_walk_that_an_operator_can_read_but_not_change);

/// Calls the API as one token holder.
struct Client<'a> {
    app: &'a TestApp,
    token: String,
}

impl Client<'_> {
    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.app.as_token(&self.token, method, path)
    }

    /// Sends `body` (unless null) and expects `status`, returning the JSON body.
    async fn call(&self, method: Method, path: &str, body: Value, status: u16) -> Value {
        let mut request = self.request(method.clone(), path);
        if !body.is_null() {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status, "{method} {path}");
        expect_json(response, status).await
    }

    async fn get(&self, path: &str) -> Value {
        self.call(Method::GET, path, Value::Null, 200).await
    }

    /// Expects a 403 and checks it names this caller's role.
    async fn refused(&self, method: Method, path: &str, body: Value) {
        let mut request = self.request(method.clone(), path);
        if !body.is_null() {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 403, "{method} {path}");
        expect_error(
            response,
            403,
            "PERMISSION_DENIED",
            "role 'operator' may not do this",
        )
        .await;
    }
}

const ALPHAS: [&str; 5] = ["0.1", "0.2", "0.3", "0.4", "0.5"];
const FINAL_RMSE: [f64; 5] = [0.40, 0.30, 0.20, 0.45, 0.60];
const T0: i64 = 1_700_000_000_000;

async fn a_scientist_walk_that_an_operator_can_read_but_not_change(db: Db) {
    let app = spawn_app(db).await;
    let alice = Client {
        app: &app,
        token: app.token("alice", Role::Scientist).await,
    };
    let olga = Client {
        app: &app,
        token: app.token("olga", Role::Operator).await,
    };

    // An experiment, found by id and by name, with a tag set later.
    let exp = alice
        .call(
            Method::POST,
            "/api/v1/experiments",
            json!({"name": "churn-prediction", "tags": [{"key": "team", "value": "retention"}]}),
            201,
        )
        .await;
    let exp_id = exp["experiment_id"].as_str().unwrap().to_string();
    assert_eq!(exp["name"], "churn-prediction");
    assert_eq!(exp["lifecycle_stage"], "active");
    assert_eq!(
        exp["artifact_location"],
        format!("mlflow-artifacts:/{exp_id}")
    );
    assert_eq!(
        alice
            .get("/api/v1/experiments/by-name/churn-prediction")
            .await["experiment_id"],
        exp_id.as_str()
    );
    alice
        .call(
            Method::PUT,
            &format!("/api/v1/experiments/{exp_id}/tags/owner"),
            json!({"value": "alice"}),
            204,
        )
        .await;
    let got = alice.get(&format!("/api/v1/experiments/{exp_id}")).await;
    assert_eq!(
        got["tags"],
        json!([{"key": "owner", "value": "alice"}, {"key": "team", "value": "retention"}])
    );
    let found = alice
        .app
        .as_token(&alice.token, Method::GET, "/api/v1/experiments")
        .query(&[("filter", "name LIKE 'churn%'")])
        .send()
        .await
        .unwrap();
    let found = expect_json(found, 200).await;
    assert_eq!(found["experiments"].as_array().unwrap().len(), 1);
    assert_eq!(found["experiments"][0]["experiment_id"], exp_id.as_str());

    // Five runs, one per alpha, each logging a falling rmse curve in one batch.
    let mut runs = Vec::new();
    for (i, alpha) in ALPHAS.iter().enumerate() {
        let run = alice
            .call(
                Method::POST,
                "/api/v1/runs",
                json!({"experiment_id": exp_id, "run_name": format!("alpha-{alpha}"),
                       "start_time": T0 + i as i64}),
                201,
            )
            .await;
        assert_eq!(run["info"]["status"], "RUNNING");
        assert_eq!(run["info"]["user_id"], "alice");
        assert_eq!(run["info"]["run_name"], format!("alpha-{alpha}"));
        assert_eq!(run["info"]["experiment_id"], exp_id.as_str());
        let run_id = run["info"]["run_id"].as_str().unwrap().to_string();
        let rmse = FINAL_RMSE[i];
        alice
            .call(
                Method::POST,
                &format!("/api/v1/runs/{run_id}/log-batch"),
                json!({
                    "metrics": [
                        {"key": "rmse", "value": rmse + 0.2, "step": 0, "timestamp": T0 + 10},
                        {"key": "rmse", "value": rmse + 0.1, "step": 1, "timestamp": T0 + 20},
                        {"key": "rmse", "value": rmse, "step": 2, "timestamp": T0 + 30},
                    ],
                    "params": [{"key": "alpha", "value": alpha}, {"key": "solver", "value": "lbfgs"}],
                    "tags": [{"key": "model_type", "value": "logreg"}],
                }),
                204,
            )
            .await;
        runs.push(run_id);
    }
    let run0 = runs[0].clone();

    // One more metric on its own, then the run as a whole and one metric's history.
    alice
        .call(
            Method::POST,
            &format!("/api/v1/runs/{run0}/metrics"),
            json!({"key": "accuracy", "value": 0.91, "step": 2, "timestamp": T0 + 40}),
            204,
        )
        .await;
    let run = alice.get(&format!("/api/v1/runs/{run0}")).await;
    assert_eq!(
        run["data"]["params"],
        json!([{"key": "alpha", "value": "0.1"}, {"key": "solver", "value": "lbfgs"}])
    );
    assert_eq!(
        run["data"]["metrics"],
        json!([
            {"key": "accuracy", "value": 0.91, "timestamp": T0 + 40, "step": 2},
            {"key": "rmse", "value": 0.40, "timestamp": T0 + 30, "step": 2},
        ])
    );
    assert_eq!(
        run["data"]["tags"],
        json!([{"key": "mlflow.runName", "value": "alpha-0.1"},
               {"key": "model_type", "value": "logreg"}])
    );
    let history = alice
        .get(&format!("/api/v1/runs/{run0}/metrics/rmse/history"))
        .await;
    let points: Vec<(i64, f64)> = history["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["step"].as_i64().unwrap(), m["value"].as_f64().unwrap()))
        .collect();
    assert_eq!(points.len(), 3);
    for ((step, value), (want_step, want_value)) in
        points.iter().zip([(0, 0.60), (1, 0.50), (2, 0.40)])
    {
        assert_eq!(*step, want_step);
        assert!((value - want_value).abs() < 1e-9, "{points:?}");
    }

    // Search: a filter on a metric and a param, ordered by the metric, two per page.
    let search = json!({
        "experiment_ids": [exp_id],
        "filter": "metrics.rmse < 0.5 AND params.alpha != '0.3'",
        "order_by": ["metrics.rmse ASC"],
        "max_results": 2,
    });
    let page1 = alice
        .call(Method::POST, "/api/v1/runs/search", search.clone(), 200)
        .await;
    let names = |page: &Value| -> Vec<String> {
        page["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["info"]["run_name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&page1), ["alpha-0.2", "alpha-0.1"]);
    let token = page1["next_page_token"].as_str().expect("a second page");
    let mut next = search.clone();
    next["page_token"] = json!(token);
    let page2 = alice
        .call(Method::POST, "/api/v1/runs/search", next, 200)
        .await;
    assert_eq!(names(&page2), ["alpha-0.4"]);
    assert!(page2["next_page_token"].is_null(), "{page2}");
    // Runs found by search carry their data too.
    assert_eq!(page2["runs"][0]["data"]["params"][0]["value"], "0.4");

    // The run ends; its inputs are recorded; a tag is removed.
    let end_time = T0 + 60_000;
    let info = alice
        .call(
            Method::PATCH,
            &format!("/api/v1/runs/{run0}"),
            json!({"status": "FINISHED", "end_time": end_time}),
            200,
        )
        .await;
    assert_eq!(info["status"], "FINISHED");
    assert_eq!(info["end_time"], end_time);
    assert_eq!(info["run_name"], "alpha-0.1");
    let dataset = json!({
        "name": "churn-train",
        "digest": "3f2a9c",
        "source_type": "refit-snapshot",
        "source": "{\"snapshot\": 7}",
    });
    alice
        .call(
            Method::POST,
            &format!("/api/v1/runs/{run0}/inputs"),
            json!({"datasets": [{"tags": [{"key": "mlflow.data.context", "value": "training"}],
                                 "dataset": dataset}]}),
            204,
        )
        .await;
    alice
        .call(
            Method::DELETE,
            &format!("/api/v1/runs/{run0}/tags/model_type"),
            Value::Null,
            204,
        )
        .await;
    let run = alice.get(&format!("/api/v1/runs/{run0}")).await;
    assert_eq!(run["info"]["status"], "FINISHED");
    assert_eq!(run["info"]["end_time"], end_time);
    assert_eq!(
        run["inputs"]["dataset_inputs"],
        json!([{
            "tags": [{"key": "mlflow.data.context", "value": "training"}],
            "dataset": {"name": "churn-train", "digest": "3f2a9c", "source_type": "refit-snapshot",
                        "source": "{\"snapshot\": 7}", "schema": null, "profile": null},
        }])
    );
    assert_eq!(
        run["data"]["tags"],
        json!([{"key": "mlflow.runName", "value": "alpha-0.1"}])
    );
    let finished = alice
        .call(
            Method::POST,
            "/api/v1/runs/search",
            json!({"experiment_ids": [exp_id], "filter": "attributes.status = 'FINISHED'"}),
            200,
        )
        .await;
    assert_eq!(names(&finished), ["alpha-0.1"]);

    // A registered model with two versions from the best runs.
    let model = alice
        .call(
            Method::POST,
            "/api/v1/models",
            json!({"name": "churn", "description": "Churn classifier",
                   "tags": [{"key": "domain", "value": "retention"}]}),
            201,
        )
        .await;
    assert_eq!(model["latest_version"], Value::Null);
    for (i, run_id) in [&runs[0], &runs[1]].into_iter().enumerate() {
        let v = alice
            .call(
                Method::POST,
                "/api/v1/models/churn/versions",
                json!({"source": format!("runs:/{run_id}/model"), "run_id": run_id}),
                201,
            )
            .await;
        assert_eq!(v["version"], i as i64 + 1);
        assert_eq!(v["current_stage"], "None");
        assert_eq!(v["status"], "READY");
        assert_eq!(v["user_id"], "alice");
        assert_eq!(v["run_id"], run_id.as_str());
    }
    alice
        .call(
            Method::PATCH,
            "/api/v1/models/churn/versions/1",
            json!({"description": "first cut"}),
            200,
        )
        .await;
    alice
        .call(
            Method::PUT,
            "/api/v1/models/churn/versions/2/tags/validated",
            json!({"value": "yes"}),
            204,
        )
        .await;
    let versions = alice.get("/api/v1/models/churn/versions").await;
    let numbers: Vec<i64> = versions["model_versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [2, 1]);
    let by_run = alice
        .app
        .as_token(&alice.token, Method::GET, "/api/v1/model-versions")
        .query(&[("filter", format!("run_id = '{run0}'"))])
        .send()
        .await
        .unwrap();
    let by_run = expect_json(by_run, 200).await;
    assert_eq!(by_run["model_versions"].as_array().unwrap().len(), 1);
    assert_eq!(by_run["model_versions"][0]["version"], 1);
    assert_eq!(by_run["model_versions"][0]["description"], "first cut");

    // Aliases: set, read, move, add another, delete.
    let alias = |name: &str| format!("/api/v1/models/churn/aliases/{name}");
    alice
        .call(Method::PUT, &alias("champion"), json!({"version": 1}), 204)
        .await;
    let champion = alice.get(&alias("champion")).await;
    assert_eq!(champion["version"], 1);
    assert_eq!(champion["aliases"], json!(["champion"]));
    alice
        .call(Method::PUT, &alias("champion"), json!({"version": 2}), 204)
        .await;
    let champion = alice.get(&alias("champion")).await;
    assert_eq!(champion["version"], 2);
    assert_eq!(
        champion["tags"],
        json!([{"key": "validated", "value": "yes"}])
    );
    assert_eq!(
        alice.get("/api/v1/models/churn/versions/1").await["aliases"],
        json!([])
    );
    alice
        .call(
            Method::PUT,
            &alias("challenger"),
            json!({"version": 1}),
            204,
        )
        .await;
    assert_eq!(
        alice.get("/api/v1/models/churn").await["aliases"],
        json!([{"alias": "challenger", "version": 1}, {"alias": "champion", "version": 2}])
    );
    alice
        .call(Method::DELETE, &alias("challenger"), Value::Null, 204)
        .await;
    let gone = alice
        .request(Method::GET, &alias("challenger"))
        .send()
        .await
        .unwrap();
    expect_error(
        gone,
        404,
        "RESOURCE_DOES_NOT_EXIST",
        "alias challenger not found",
    )
    .await;

    // Stages: version 1 to Production, then version 2 replaces it, archiving version 1.
    let v1 = alice
        .call(
            Method::POST,
            "/api/v1/models/churn/versions/1/stage",
            json!({"stage": "Production"}),
            200,
        )
        .await;
    assert_eq!(v1["current_stage"], "Production");
    let v2 = alice
        .call(
            Method::POST,
            "/api/v1/models/churn/versions/2/stage",
            json!({"stage": "production", "archive_existing_versions": true}),
            200,
        )
        .await;
    assert_eq!(v2["current_stage"], "Production");
    assert_eq!(
        alice.get("/api/v1/models/churn/versions/1").await["current_stage"],
        "Archived"
    );
    let model = alice.get("/api/v1/models/churn").await;
    assert_eq!(model["latest_version"], 2);
    assert_eq!(model["description"], "Churn classifier");
    assert_eq!(
        model["tags"],
        json!([{"key": "domain", "value": "retention"}])
    );

    // The operator reads everything the scientist sees, value for value...
    let audit_before = app.store.audit_log(1, None, None).await.unwrap()[0].id;
    let paths = [
        format!("/api/v1/experiments/{exp_id}"),
        "/api/v1/experiments/by-name/churn-prediction".to_string(),
        format!("/api/v1/runs/{run0}"),
        format!("/api/v1/runs/{run0}/metrics/rmse/history"),
        format!("/api/v1/runs/{run0}/artifacts"),
        "/api/v1/models/churn".to_string(),
        "/api/v1/models/churn/versions".to_string(),
        "/api/v1/models/churn/versions/1".to_string(),
        "/api/v1/models/churn/aliases/champion".to_string(),
        "/api/v1/model-versions".to_string(),
    ];
    let mut seen = Vec::new();
    for path in &paths {
        let as_olga = olga.get(path).await;
        assert_eq!(as_olga, alice.get(path).await, "{path}");
        seen.push(as_olga);
    }
    let searched = olga
        .call(Method::POST, "/api/v1/runs/search", search.clone(), 200)
        .await;
    assert_eq!(names(&searched), ["alpha-0.2", "alpha-0.1"]);

    // ...and changes none of it.
    let run1 = &runs[1];
    olga.refused(Method::POST, "/api/v1/experiments", json!({"name": "mine"}))
        .await;
    olga.refused(
        Method::PUT,
        &format!("/api/v1/experiments/{exp_id}/tags/owner"),
        json!({"value": "olga"}),
    )
    .await;
    olga.refused(
        Method::POST,
        "/api/v1/runs",
        json!({"experiment_id": exp_id}),
    )
    .await;
    olga.refused(
        Method::POST,
        &format!("/api/v1/runs/{run1}/log-batch"),
        json!({"metrics": [{"key": "rmse", "value": 0.01, "step": 9}]}),
    )
    .await;
    olga.refused(
        Method::POST,
        &format!("/api/v1/runs/{run1}/metrics"),
        json!({"key": "rmse", "value": 0.01, "step": 9}),
    )
    .await;
    olga.refused(
        Method::PATCH,
        &format!("/api/v1/runs/{run1}"),
        json!({"status": "KILLED"}),
    )
    .await;
    olga.refused(Method::DELETE, &format!("/api/v1/runs/{run0}"), Value::Null)
        .await;
    olga.refused(Method::POST, "/api/v1/models", json!({"name": "mine"}))
        .await;
    olga.refused(
        Method::POST,
        "/api/v1/models/churn/versions",
        json!({"source": "s3://elsewhere"}),
    )
    .await;
    olga.refused(Method::PUT, &alias("champion"), json!({"version": 1}))
        .await;
    olga.refused(Method::DELETE, &alias("champion"), Value::Null)
        .await;
    olga.refused(
        Method::POST,
        "/api/v1/models/churn/versions/1/stage",
        json!({"stage": "Production"}),
    )
    .await;
    olga.refused(Method::DELETE, "/api/v1/models/churn", Value::Null)
        .await;
    let upload = olga
        .request(
            Method::PUT,
            &format!("/api/v1/runs/{run0}/artifacts/model.bin"),
        )
        .body("x")
        .send()
        .await
        .unwrap();
    expect_error(upload, 403, "PERMISSION_DENIED", "role 'operator'").await;
    for (path, before) in paths.iter().zip(&seen) {
        assert_eq!(&alice.get(path).await, before, "{path} changed");
    }
    assert_eq!(
        app.store.audit_log(1, None, None).await.unwrap()[0].id,
        audit_before
    );

    // The audit log, as the operator reads it: every change, newest first, under the names of
    // the tokens that made them.
    let audit = olga.get("/api/v1/audit?limit=1000").await;
    let entries = audit["entries"].as_array().unwrap();
    let ids: Vec<i64> = entries.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
    let by = |actor: &str| -> Vec<&str> {
        entries
            .iter()
            .filter(|e| e["actor"] == actor)
            .map(|e| e["action"].as_str().unwrap())
            .rev()
            .collect()
    };
    assert!(by("olga").is_empty(), "{audit}");
    let mut expected = vec!["experiments.create", "experiments.set_tag"];
    for _ in 0..5 {
        expected.extend(["runs.create", "runs.log_batch"]);
    }
    expected.extend([
        "runs.log_batch", // the single metric
        "runs.update",
        "runs.log_inputs",
        "runs.delete_tag",
        "models.create",
        "models.create_version",
        "models.create_version",
        "models.update_version",
        "models.set_version_tag",
        "models.set_alias",
        "models.set_alias",
        "models.set_alias",
        "models.delete_alias",
        "models.transition_stage",
        "models.transition_stage",
    ]);
    assert_eq!(by("alice"), expected);
    // The tokens themselves were made by the test harness.
    assert_eq!(by("test"), ["tokens.create", "tokens.create"]);

    // One run's story, by target, and paging backwards with `before`.
    let story = olga.get(&format!("/api/v1/audit?target=run:{run0}")).await;
    let actions: Vec<&str> = story["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["actor"], "alice");
            assert_eq!(e["target"], format!("run:{run0}"));
            e["action"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        actions,
        [
            "runs.delete_tag",
            "runs.log_inputs",
            "runs.update",
            "runs.log_batch",
            "runs.log_batch",
            "runs.create"
        ]
    );
    let newest = olga.get("/api/v1/audit?limit=2").await;
    assert_eq!(newest["entries"].as_array().unwrap().len(), 2);
    let oldest_shown = newest["entries"][1]["id"].as_i64().unwrap();
    let older = olga
        .get(&format!("/api/v1/audit?limit=2&before={oldest_shown}"))
        .await;
    assert_eq!(older["entries"][0]["id"], oldest_shown - 1);

    // A consumer sees the model it would serve, and nothing of how it was made.
    let carl = app.token("carl", Role::Consumer).await;
    let champion = expect_json(
        app.as_token(&carl, Method::GET, &alias("champion"))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(champion["version"], 2);
    for path in [format!("/api/v1/runs/{run0}"), "/api/v1/audit".to_string()] {
        let response = app
            .as_token(&carl, Method::GET, &path)
            .send()
            .await
            .unwrap();
        expect_error(response, 403, "PERMISSION_DENIED", "role 'consumer'").await;
    }
}
