//! MLflow 3 logged models in the store: create, get, finalize, tags, params, soft delete, metric
//! points logged by runs, run↔model links, and the search with MLflow's logged-model grammar,
//! datasets, orders and page tokens, with the audit entry each write leaves. Every test runs on
//! SQLite and on PostgreSQL.

#[macro_use]
mod store_support;

use std::collections::HashMap;

use refit_registry::Store;
use refit_registry::experiments::{LifecycleStage, Tag};
use refit_registry::logged_models::{
    DatasetFilter, LoggedModel, LoggedModelMetric, LoggedModelOrder, LoggedModelSearch,
    LoggedModelStatus, ModelMetric, ModelOutput, NewLoggedModel, RunModels,
};
use refit_registry::runs::{NewRun, Param};
use refit_tests::{Db, on_both_databases};
use store_support::{TestStore, alice, fresh};

fn tag(key: &str, value: &str) -> Tag {
    Tag {
        key: key.into(),
        value: value.into(),
    }
}

fn param(key: &str, value: &str) -> Param {
    Param {
        key: key.into(),
        value: value.into(),
    }
}

async fn experiment(store: &Store, name: &str) -> String {
    store
        .create_experiment(&alice(), name, None, &[])
        .await
        .unwrap()
        .experiment_id
}

async fn run_in(store: &Store, experiment_id: &str) -> String {
    store
        .create_run(
            &alice(),
            NewRun {
                experiment_id: experiment_id.into(),
                ..NewRun::default()
            },
        )
        .await
        .unwrap()
        .info
        .run_id
}

async fn model(store: &Store, experiment_id: &str, name: &str) -> LoggedModel {
    store
        .create_logged_model(
            &alice(),
            NewLoggedModel {
                experiment_id: experiment_id.into(),
                name: Some(name.into()),
                ..NewLoggedModel::default()
            },
        )
        .await
        .unwrap()
}

fn point(model_id: &str, key: &str, value: f64, timestamp: i64, step: i64) -> ModelMetric {
    ModelMetric {
        model_id: model_id.into(),
        key: key.into(),
        value,
        timestamp,
        step,
        dataset_name: None,
        dataset_digest: None,
    }
}

async fn create_get_finalize_and_delete(db: Db) {
    let t = fresh(db).await;
    let s = &t.store;
    let exp = experiment(s, "lm").await;
    let run = run_in(s, &exp).await;
    let mut audit = t.audit().await;
    let before = refit_registry::db::now_ms();

    let m = s
        .create_logged_model(
            &alice(),
            NewLoggedModel {
                experiment_id: exp.clone(),
                name: Some("model".into()),
                model_type: Some("agent".into()),
                source_run_id: Some(run.clone()),
                params: vec![param("lr", "0.1"), param("bs", "32")],
                tags: vec![
                    tag("mlflow.user", "root"),
                    tag("mlflow.source.type", "LOCAL"),
                ],
            },
        )
        .await
        .unwrap();
    let target = format!("logged_model:{}", m.model_id);
    let e = audit.one("logged_models.create", &target).await;
    assert_eq!(e.detail.as_deref(), Some("model"));
    let hex = m.model_id.strip_prefix("m-").expect("m- prefix");
    assert_eq!(hex.len(), 32);
    assert!(
        hex.chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    assert_eq!(m.experiment_id, exp);
    assert_eq!(m.name, "model");
    assert_eq!(
        m.artifact_uri,
        format!("mlflow-artifacts:/{exp}/models/{}/artifacts", m.model_id)
    );
    assert_eq!(
        m.artifact_root(),
        Some(format!("{exp}/models/{}/artifacts", m.model_id))
    );
    assert_eq!(m.status, LoggedModelStatus::Pending);
    assert_eq!(m.lifecycle_stage, LifecycleStage::Active);
    assert_eq!(m.model_type.as_deref(), Some("agent"));
    assert_eq!(m.source_run_id.as_deref(), Some(run.as_str()));
    assert_eq!(m.status_message, None);
    assert!(m.creation_timestamp_ms >= before);
    assert_eq!(m.creation_timestamp_ms, m.last_updated_timestamp_ms);
    // Tags and params come back sorted by key.
    assert_eq!(
        m.tags,
        vec![
            tag("mlflow.source.type", "LOCAL"),
            tag("mlflow.user", "root")
        ]
    );
    assert_eq!(m.params, vec![param("bs", "32"), param("lr", "0.1")]);
    assert!(m.metrics.is_empty());
    assert_eq!(s.get_logged_model(&m.model_id, false).await.unwrap(), m);

    // Without a name, one is generated; an empty name counts as none.
    for name in [None, Some(String::new())] {
        let generated = s
            .create_logged_model(
                &alice(),
                NewLoggedModel {
                    experiment_id: exp.clone(),
                    name,
                    ..NewLoggedModel::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(generated.name.split('-').count(), 3, "{}", generated.name);
        assert_eq!(generated.model_type, None);
        assert_eq!(generated.source_run_id, None);
        assert!(generated.tags.is_empty() && generated.params.is_empty());
        assert_ne!(generated.model_id, m.model_id);
        audit
            .one(
                "logged_models.create",
                &format!("logged_model:{}", generated.model_id),
            )
            .await;
    }

    // Refusals write nothing.
    let named = |name: &str| NewLoggedModel {
        experiment_id: exp.clone(),
        name: Some(name.into()),
        ..NewLoggedModel::default()
    };
    for bad in ["a/b", "a.b", "a:b", "50%", "it's"] {
        assert_err!(
            s.create_logged_model(&alice(), named(bad)).await,
            InvalidParameter,
            "cannot contain"
        );
    }
    assert_err!(
        s.create_logged_model(
            &alice(),
            NewLoggedModel {
                experiment_id: "999".into(),
                ..NewLoggedModel::default()
            }
        )
        .await,
        NotFound,
        "No Experiment with id=999 exists"
    );
    assert_err!(
        s.create_logged_model(
            &alice(),
            NewLoggedModel {
                tags: vec![tag("a;b", "v")],
                ..named("x")
            }
        )
        .await,
        InvalidParameter,
        "a;b"
    );
    assert_err!(
        s.create_logged_model(
            &alice(),
            NewLoggedModel {
                params: vec![param("k", "1"), param("k", "2")],
                ..named("x")
            }
        )
        .await,
        InvalidParameter,
        "Duplicate parameter keys"
    );
    let gone = experiment(s, "gone").await;
    s.delete_experiment(&alice(), &gone).await.unwrap();
    audit.take().await;
    assert_err!(
        s.create_logged_model(
            &alice(),
            NewLoggedModel {
                experiment_id: gone.clone(),
                ..NewLoggedModel::default()
            }
        )
        .await,
        InvalidParameter,
        "must be in the 'active' state"
    );
    let missing = "m-00000000000000000000000000000000";
    assert_err!(
        s.get_logged_model(missing, true).await,
        NotFound,
        "Logged model with ID 'm-00000000000000000000000000000000' not found."
    );
    audit.none().await;
    assert_eq!(
        t.count("SELECT COUNT(*) AS n FROM logged_models").await,
        3,
        "only the three good models exist"
    );

    // Finalize.
    let ready = s
        .finalize_logged_model(&alice(), &m.model_id, LoggedModelStatus::Ready)
        .await
        .unwrap();
    let e = audit.one("logged_models.finalize", &target).await;
    assert_eq!(e.detail.as_deref(), Some("LOGGED_MODEL_READY"));
    assert_eq!(ready.status, LoggedModelStatus::Ready);
    assert!(ready.last_updated_timestamp_ms >= m.last_updated_timestamp_ms);
    assert_eq!(ready.creation_timestamp_ms, m.creation_timestamp_ms);
    assert_eq!(ready.params, m.params);
    assert_eq!(
        s.get_logged_model(&m.model_id, false).await.unwrap().status,
        LoggedModelStatus::Ready
    );
    let failed = s
        .finalize_logged_model(&alice(), &m.model_id, LoggedModelStatus::UploadFailed)
        .await
        .unwrap();
    audit.one("logged_models.finalize", &target).await;
    assert_eq!(failed.status, LoggedModelStatus::UploadFailed);
    assert_err!(
        s.finalize_logged_model(&alice(), missing, LoggedModelStatus::Ready)
            .await,
        NotFound,
        missing
    );

    // Soft delete: not found any more, except with allow_deleted; no more writes.
    s.delete_logged_model(&alice(), &m.model_id).await.unwrap();
    audit.one("logged_models.delete", &target).await;
    assert_err!(
        s.get_logged_model(&m.model_id, false).await,
        NotFound,
        "not found"
    );
    let deleted = s.get_logged_model(&m.model_id, true).await.unwrap();
    assert_eq!(deleted.lifecycle_stage, LifecycleStage::Deleted);
    assert_eq!(deleted.status, LoggedModelStatus::UploadFailed);
    assert!(deleted.last_updated_timestamp_ms >= failed.last_updated_timestamp_ms);
    assert_eq!(deleted.tags, m.tags);
    assert_err!(
        s.finalize_logged_model(&alice(), &m.model_id, LoggedModelStatus::Ready)
            .await,
        NotFound,
        "not found"
    );
    assert_err!(
        s.set_logged_model_tags(&alice(), &m.model_id, &[tag("k", "v")])
            .await,
        NotFound,
        "not found"
    );
    // Deleting again changes nothing and records nothing; an unknown id is not found.
    s.delete_logged_model(&alice(), &m.model_id).await.unwrap();
    assert_err!(
        s.delete_logged_model(&alice(), missing).await,
        NotFound,
        missing
    );
    audit.none().await;
}

async fn tags_params_and_registrations(db: Db) {
    let t = fresh(db).await;
    let s = &t.store;
    let m = model(s, "0", "model").await;
    let target = format!("logged_model:{}", m.model_id);
    let mut audit = t.audit().await;

    s.set_logged_model_tags(
        &alice(),
        &m.model_id,
        &[tag("b", "1"), tag("a", "1"), tag("b", "2")],
    )
    .await
    .unwrap();
    let e = audit.one("logged_models.set_tags", &target).await;
    assert_eq!(e.detail.as_deref(), Some("a, b"));
    s.set_logged_model_tags(&alice(), &m.model_id, &[tag("a", "changed")])
        .await
        .unwrap();
    audit.one("logged_models.set_tags", &target).await;
    assert_eq!(
        s.get_logged_model(&m.model_id, false).await.unwrap().tags,
        vec![tag("a", "changed"), tag("b", "2")]
    );
    s.delete_logged_model_tag(&alice(), &m.model_id, "a")
        .await
        .unwrap();
    let e = audit.one("logged_models.delete_tag", &target).await;
    assert_eq!(e.detail.as_deref(), Some("a"));
    assert_eq!(
        s.get_logged_model(&m.model_id, false).await.unwrap().tags,
        vec![tag("b", "2")]
    );
    assert_err!(
        s.delete_logged_model_tag(&alice(), &m.model_id, "a").await,
        NotFound,
        &format!(
            "No tag with key 'a' found for model with ID '{}'.",
            m.model_id
        )
    );
    assert_err!(
        s.set_logged_model_tags(&alice(), &m.model_id, &[tag("../x", "v")])
            .await,
        InvalidParameter,
        "../x"
    );
    audit.none().await;

    s.log_logged_model_params(&alice(), &m.model_id, &[param("lr", "0.1")])
        .await
        .unwrap();
    let e = audit.one("logged_models.log_params", &target).await;
    assert_eq!(e.detail.as_deref(), Some("1 params"));
    // The same value again is a no-op; a new key beside it is added.
    s.log_logged_model_params(
        &alice(),
        &m.model_id,
        &[param("lr", "0.1"), param("bs", "32")],
    )
    .await
    .unwrap();
    audit.one("logged_models.log_params", &target).await;
    assert_err!(
        s.log_logged_model_params(
            &alice(),
            &m.model_id,
            &[param("epochs", "3"), param("lr", "0.2")]
        )
        .await,
        InvalidParameter,
        "Changing param values is not allowed. Param with key='lr' was already logged with value='0.1'"
    );
    audit.none().await;
    // The refused call wrote nothing, not even its other param.
    assert_eq!(
        s.get_logged_model(&m.model_id, false).await.unwrap().params,
        vec![param("bs", "32"), param("lr", "0.1")]
    );

    // Registrations append to the mlflow.modelVersions tag, whatever was there.
    s.record_logged_model_version(&alice(), &m.model_id, "churn", 1)
        .await
        .unwrap();
    let e = audit.one("logged_models.set_tags", &target).await;
    assert_eq!(e.detail.as_deref(), Some("mlflow.modelVersions"));
    s.record_logged_model_version(&alice(), &m.model_id, "churn", 2)
        .await
        .unwrap();
    audit.one("logged_models.set_tags", &target).await;
    let tags = s.get_logged_model(&m.model_id, false).await.unwrap().tags;
    let versions = tags
        .iter()
        .find(|t| t.key == "mlflow.modelVersions")
        .expect("the tag");
    let list: serde_json::Value = serde_json::from_str(&versions.value).unwrap();
    assert_eq!(
        list,
        serde_json::json!([{"name": "churn", "version": 1}, {"name": "churn", "version": 2}])
    );
    s.set_logged_model_tags(
        &alice(),
        &m.model_id,
        &[tag("mlflow.modelVersions", "not json")],
    )
    .await
    .unwrap();
    s.record_logged_model_version(&alice(), &m.model_id, "other", 7)
        .await
        .unwrap();
    let tags = s.get_logged_model(&m.model_id, false).await.unwrap().tags;
    assert!(tags.contains(&tag(
        "mlflow.modelVersions",
        r#"[{"name":"other","version":7}]"#
    )));
}

async fn metrics_from_runs(db: Db) {
    let t = fresh(db).await;
    let s = &t.store;
    let exp = experiment(s, "lm").await;
    let run = run_in(s, &exp).await;
    let a = model(s, &exp, "a").await;
    let b = model(s, &exp, "b").await;
    let mut audit = t.audit().await;

    let on_train = |mut p: ModelMetric| {
        p.dataset_name = Some("train".into());
        p.dataset_digest = Some("d1".into());
        p
    };
    s.log_logged_model_metrics(
        &alice(),
        &run,
        &[
            on_train(point(&a.model_id, "acc", 0.9, 1000, 1)),
            point(&a.model_id, "acc", 0.8, 500, 0),
            point(&a.model_id, "nan", f64::NAN, 1000, 0),
            point(&a.model_id, "big", f64::INFINITY, 1000, 0),
            point(&a.model_id, "small", f64::NEG_INFINITY, 1000, 0),
            point(&b.model_id, "acc", 0.5, 1000, 0),
        ],
    )
    .await
    .unwrap();
    let mut entries = audit.take().await;
    entries.sort_by(|x, y| x.target.cmp(&y.target));
    let mut expected = vec![
        (
            format!("logged_model:{}", a.model_id),
            format!("5 metrics from run {run}"),
        ),
        (
            format!("logged_model:{}", b.model_id),
            format!("1 metrics from run {run}"),
        ),
    ];
    expected.sort();
    assert_eq!(
        entries
            .iter()
            .map(|e| (
                e.action.as_str(),
                e.target.clone(),
                e.detail.clone().unwrap()
            ))
            .collect::<Vec<_>>(),
        expected
            .into_iter()
            .map(|(target, detail)| ("logged_models.log_metrics", target, detail))
            .collect::<Vec<_>>()
    );
    // The very same point again is stored once.
    s.log_logged_model_metrics(
        &alice(),
        &run,
        &[on_train(point(&a.model_id, "acc", 0.9, 1000, 1))],
    )
    .await
    .unwrap();
    audit.take().await;

    let got = s.get_logged_model(&a.model_id, false).await.unwrap();
    let m = |key: &str, value: f64, timestamp: i64, step: i64, train: bool| LoggedModelMetric {
        model_id: a.model_id.clone(),
        run_id: run.clone(),
        key: key.into(),
        value,
        timestamp,
        step,
        dataset_name: train.then(|| "train".into()),
        dataset_digest: train.then(|| "d1".into()),
    };
    // NaN never equals itself: compare it apart.
    let (nan, rest): (Vec<_>, Vec<_>) = got.metrics.into_iter().partition(|x| x.key == "nan");
    assert_eq!(nan.len(), 1);
    assert!(nan[0].value.is_nan());
    assert_eq!((nan[0].timestamp, nan[0].step), (1000, 0));
    // By key, then time, then step; ±∞ stored as ±f64::MAX.
    assert_eq!(
        rest,
        vec![
            m("acc", 0.8, 500, 0, false),
            m("acc", 0.9, 1000, 1, true),
            m("big", f64::MAX, 1000, 0, false),
            m("small", -f64::MAX, 1000, 0, false),
        ]
    );
    assert_eq!(
        s.get_logged_model(&b.model_id, false)
            .await
            .unwrap()
            .metrics,
        vec![LoggedModelMetric {
            model_id: b.model_id.clone(),
            run_id: run.clone(),
            key: "acc".into(),
            value: 0.5,
            timestamp: 1000,
            step: 0,
            dataset_name: None,
            dataset_digest: None,
        }]
    );

    // Refusals: an unknown or deleted model, a deleted run, a bad key or timestamp. Nothing is
    // written by a refused batch, not even its good points.
    let missing = "m-00000000000000000000000000000000";
    assert_err!(
        s.log_logged_model_metrics(
            &alice(),
            &run,
            &[
                point(&b.model_id, "loss", 1.0, 1, 0),
                point(missing, "acc", 1.0, 1, 0)
            ]
        )
        .await,
        NotFound,
        missing
    );
    assert_err!(
        s.log_logged_model_metrics(&alice(), &run, &[point(&b.model_id, "a;b", 1.0, 1, 0)])
            .await,
        InvalidParameter,
        "a;b"
    );
    assert_err!(
        s.log_logged_model_metrics(&alice(), &run, &[point(&b.model_id, "x", 1.0, -5, 0)])
            .await,
        InvalidParameter,
        "Timestamp must be a nonnegative"
    );
    assert_err!(
        s.log_logged_model_metrics(
            &alice(),
            "00000000000000000000000000000000",
            &[point(&b.model_id, "x", 1.0, 1, 0)]
        )
        .await,
        NotFound,
        "Run with id=00000000000000000000000000000000 not found"
    );
    let other_run = run_in(s, &exp).await;
    s.delete_run(&alice(), &other_run).await.unwrap();
    s.delete_logged_model(&alice(), &a.model_id).await.unwrap();
    audit.take().await;
    assert_err!(
        s.log_logged_model_metrics(&alice(), &run, &[point(&a.model_id, "x", 1.0, 1, 0)])
            .await,
        NotFound,
        &a.model_id
    );
    assert_err!(
        s.log_logged_model_metrics(&alice(), &other_run, &[point(&b.model_id, "x", 1.0, 1, 0)])
            .await,
        InvalidParameter,
        "must be in the 'active' state"
    );
    audit.none().await;
    assert_eq!(
        t.count("SELECT COUNT(*) AS n FROM logged_model_metrics")
            .await,
        6
    );
    // Nothing to log is not an error and not an audit entry.
    s.log_logged_model_metrics(&alice(), &run, &[])
        .await
        .unwrap();
    audit.none().await;
}

async fn run_model_links(db: Db) {
    let t = fresh(db).await;
    let s = &t.store;
    let exp = experiment(s, "lm").await;
    let (r1, r2, r3) = (
        run_in(s, &exp).await,
        run_in(s, &exp).await,
        run_in(s, &exp).await,
    );
    let a = model(s, &exp, "a").await.model_id;
    let b = model(s, &exp, "b").await.model_id;
    let c = model(s, &exp, "c").await.model_id;
    let mut audit = t.audit().await;

    s.log_run_model_outputs(
        &alice(),
        &r1,
        &[
            ModelOutput {
                model_id: b.clone(),
                step: 5,
            },
            ModelOutput {
                model_id: a.clone(),
                step: 0,
            },
        ],
    )
    .await
    .unwrap();
    let e = audit
        .one("runs.log_model_outputs", &format!("run:{r1}"))
        .await;
    let mut ab = [a.clone(), b.clone()];
    ab.sort();
    assert_eq!(e.detail, Some(ab.join(", ")));
    s.log_run_model_inputs(&alice(), &r2, std::slice::from_ref(&a))
        .await
        .unwrap();
    audit
        .one("runs.log_model_inputs", &format!("run:{r2}"))
        .await;
    // Linking again is a no-op (an output keeps its first step); a run may both use and produce.
    s.log_run_model_inputs(&alice(), &r2, &[a.clone(), a.clone()])
        .await
        .unwrap();
    s.log_run_model_outputs(
        &alice(),
        &r2,
        &[ModelOutput {
            model_id: c.clone(),
            step: 3,
        }],
    )
    .await
    .unwrap();
    s.log_run_model_outputs(
        &alice(),
        &r1,
        &[ModelOutput {
            model_id: a.clone(),
            step: 9,
        }],
    )
    .await
    .unwrap();
    assert_eq!(audit.take().await.len(), 3);

    let links = s
        .run_models(&[r1.clone(), r2.clone(), r3.clone()])
        .await
        .unwrap();
    let expected: HashMap<String, RunModels> = [
        (
            r1.clone(),
            RunModels {
                inputs: vec![],
                outputs: vec![
                    ModelOutput {
                        model_id: a.clone(),
                        step: 0,
                    },
                    ModelOutput {
                        model_id: b.clone(),
                        step: 5,
                    },
                ],
            },
        ),
        (
            r2.clone(),
            RunModels {
                inputs: vec![a.clone()],
                outputs: vec![ModelOutput {
                    model_id: c.clone(),
                    step: 3,
                }],
            },
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(links, expected, "r3 has no links and no entry");
    assert!(s.run_models(&[]).await.unwrap().is_empty());
    assert!(
        s.run_models(&["nope".to_string()])
            .await
            .unwrap()
            .is_empty()
    );
    // Dataset inputs of a run are not model links.
    assert_eq!(
        t.count("SELECT COUNT(*) AS n FROM inputs").await,
        4,
        "two outputs of r1, one input and one output of r2"
    );

    // Refusals write nothing.
    let missing = "m-00000000000000000000000000000000".to_string();
    assert_err!(
        s.log_run_model_inputs(&alice(), &r3, &[b.clone(), missing.clone()])
            .await,
        NotFound,
        &missing
    );
    s.delete_run(&alice(), &r3).await.unwrap();
    audit.take().await;
    assert_err!(
        s.log_run_model_outputs(
            &alice(),
            &r3,
            &[ModelOutput {
                model_id: b.clone(),
                step: 0
            }]
        )
        .await,
        InvalidParameter,
        "must be in the 'active' state"
    );
    audit.none().await;
    assert!(s.run_models(&[r3]).await.unwrap().is_empty());
}

/// The search fixture: six models in experiment A (one deleted) and one in B, with creation
/// times set by hand so that the expected orders are known.
struct SearchFixture {
    t: TestStore,
    exp_a: String,
    exp_b: String,
    /// Model ids of A by fixture index.
    ids: Vec<String>,
    b_model: String,
}

/// One model of the search fixture: its name and type, its `acc` on the train and test
/// datasets, its `lr` param, its `team` tag, and whether it is finalized READY.
struct Spec {
    name: &'static str,
    model_type: Option<&'static str>,
    train: Option<f64>,
    test: Option<f64>,
    lr: &'static str,
    team: &'static str,
    ready: bool,
}

impl Spec {
    fn new(
        name: &'static str,
        train: Option<f64>,
        test: Option<f64>,
        lr: &'static str,
        team: &'static str,
        ready: bool,
    ) -> Self {
        Spec {
            name,
            model_type: None,
            train,
            test,
            lr,
            team,
            ready,
        }
    }
}

async fn search_fixture(db: Db) -> SearchFixture {
    let t = fresh(db).await;
    let s = &t.store;
    let exp_a = experiment(s, "a").await;
    let exp_b = experiment(s, "b").await;
    let run = run_in(s, &exp_a).await;
    let spec = [
        Spec::new("model", Some(0.7), Some(0.6), "0.1", "risk", true),
        Spec {
            model_type: Some("agent"),
            ..Spec::new("model", Some(0.9), None, "0.01", "growth", false)
        },
        Spec::new("other", None, Some(0.95), "0.1", "Risk", true),
        Spec::new("model", Some(f64::NAN), None, "0.2", "risk", true),
        Spec::new("zeta", None, None, "0.1", "ops", false),
        Spec::new("model", Some(0.99), None, "0.1", "risk", true),
    ];
    let mut ids = Vec::new();
    for (i, spec) in spec.iter().enumerate() {
        let Spec {
            name,
            model_type,
            train,
            test,
            lr,
            team,
            ready,
        } = spec;
        let m = s
            .create_logged_model(
                &alice(),
                NewLoggedModel {
                    experiment_id: exp_a.clone(),
                    name: Some(name.to_string()),
                    model_type: model_type.map(String::from),
                    source_run_id: Some(run.clone()),
                    params: vec![param("lr", lr)],
                    tags: vec![tag("team", team)],
                },
            )
            .await
            .unwrap();
        if *ready {
            s.finalize_logged_model(&alice(), &m.model_id, LoggedModelStatus::Ready)
                .await
                .unwrap();
        }
        let mut points = Vec::new();
        for (value, dataset, step) in [(train, "train", 1), (test, "test", 2)] {
            if let Some(v) = value {
                points.push(ModelMetric {
                    dataset_name: Some(dataset.into()),
                    dataset_digest: Some(format!("{dataset}-digest")),
                    ..point(&m.model_id, "acc", *v, 1000, step)
                });
            }
        }
        s.log_logged_model_metrics(&alice(), &run, &points)
            .await
            .unwrap();
        // Creation times 10, 20, ... except that 4 and 5 share one (ties go by model id).
        let created = if i == 5 { 50 } else { 10 * (i as i64 + 1) };
        sqlx::query("UPDATE logged_models SET creation_time = $1 WHERE model_id = $2")
            .bind(created)
            .bind(&m.model_id)
            .execute(&t.raw)
            .await
            .unwrap();
        ids.push(m.model_id);
    }
    // A deleted model in A is never found.
    let deleted = model(s, &exp_a, "model").await;
    s.delete_logged_model(&alice(), &deleted.model_id)
        .await
        .unwrap();
    let b_model = model(s, &exp_b, "model").await.model_id;
    SearchFixture {
        t,
        exp_a,
        exp_b,
        ids,
        b_model,
    }
}

impl SearchFixture {
    async fn search(&self, search: LoggedModelSearch) -> Vec<String> {
        let page = self.t.store.search_logged_models(&search).await.unwrap();
        assert_eq!(page.next_page_token, None, "one page expected");
        page.items.into_iter().map(|m| m.model_id).collect()
    }

    fn in_a(&self, filter: &str) -> LoggedModelSearch {
        LoggedModelSearch {
            experiment_ids: vec![self.exp_a.clone()],
            filter: filter.into(),
            ..LoggedModelSearch::default()
        }
    }

    async fn filter(&self, filter: &str) -> Vec<String> {
        self.search(self.in_a(filter)).await
    }

    /// Fixture indexes as ids.
    fn ids(&self, indexes: &[usize]) -> Vec<String> {
        indexes.iter().map(|i| self.ids[*i].clone()).collect()
    }

    /// Fixture indexes in the default order: creation time descending, then model id.
    fn newest_first(&self, indexes: &[usize]) -> Vec<String> {
        let created = |i: usize| if i == 5 { 50 } else { 10 * (i as i64 + 1) };
        let mut sorted = indexes.to_vec();
        sorted.sort_by(|x, y| {
            created(*y)
                .cmp(&created(*x))
                .then(self.ids[*x].cmp(&self.ids[*y]))
        });
        self.ids(&sorted)
    }
}

async fn search_filters(db: Db) {
    let f = search_fixture(db).await;
    let all = f.newest_first(&[0, 1, 2, 3, 4, 5]);
    assert_eq!(f.filter("").await, all);
    // Both experiments: B's model has the newest creation time.
    let both = f
        .search(LoggedModelSearch {
            experiment_ids: vec![f.exp_a.clone(), f.exp_b.clone()],
            ..LoggedModelSearch::default()
        })
        .await;
    assert_eq!(both[0], f.b_model);
    assert_eq!(&both[1..], &all[..]);

    for (filter, expected) in [
        ("name = 'model'", vec![0, 1, 3, 5]),
        ("attributes.name != 'model'", vec![2, 4]),
        ("name LIKE 'mo%'", vec![0, 1, 3, 5]),
        ("name LIKE 'MO%'", vec![]),
        ("name ILIKE 'MO%'", vec![0, 1, 3, 5]),
        ("name IN ('other', 'zeta')", vec![2, 4]),
        ("name NOT IN ('model')", vec![2, 4]),
        ("model_type = 'agent'", vec![1]),
        ("status = 'LOGGED_MODEL_PENDING'", vec![1, 4]),
        ("status = 'READY'", vec![0, 2, 3, 5]),
        ("status != 'LOGGED_MODEL_READY'", vec![1, 4]),
        (
            "creation_time > 20 AND creation_timestamp <= 50",
            vec![2, 3, 4, 5],
        ),
        ("last_updated_timestamp > 0", vec![0, 1, 2, 3, 4, 5]),
        // Metric comparisons match any recorded point; NaN matches nothing.
        ("metrics.acc > 0.8", vec![1, 2, 5]),
        ("metrics.acc < 0.65", vec![0]),
        ("metrics.acc != 0.5", vec![0, 1, 2, 5]),
        ("metrics.missing > 0", vec![]),
        ("params.lr = '0.1'", vec![0, 2, 4, 5]),
        ("params.lr = 0.1", vec![0, 2, 4, 5]),
        ("params.lr != '0.1' AND params.lr LIKE '0.%'", vec![1, 3]),
        ("tags.team = 'risk'", vec![0, 3, 5]),
        ("tags.`team` ILIKE 'risk'", vec![0, 2, 3, 5]),
        ("tags.team IN ('ops', 'growth')", vec![1, 4]),
        ("tags.nope = 'x'", vec![]),
        (
            "name = 'model' AND metrics.acc >= 0.7 AND tags.team = 'risk' and",
            vec![0, 5],
        ),
    ] {
        assert_eq!(
            f.filter(filter).await,
            f.newest_first(&expected),
            "{filter}"
        );
    }
    let source =
        f.t.store
            .get_logged_model(&f.ids[0], false)
            .await
            .unwrap()
            .source_run_id
            .unwrap();
    assert_eq!(
        f.filter(&format!(
            "source_run_id = '{source}' AND model_id = '{}'",
            f.ids[2]
        ))
        .await,
        f.ids(&[2])
    );

    // Datasets: metric comparisons only see points on them; without one, models need a point
    // on one of them.
    let datasets = |names: &[(&str, Option<&str>)]| {
        names
            .iter()
            .map(|(n, d)| DatasetFilter {
                dataset_name: n.to_string(),
                dataset_digest: d.map(String::from),
            })
            .collect::<Vec<_>>()
    };
    for (filter, sets, expected) in [
        ("", datasets(&[("test", None)]), vec![0, 2]),
        ("", datasets(&[("test", Some("nope"))]), vec![]),
        (
            "",
            datasets(&[("test", Some("test-digest")), ("train", None)]),
            vec![0, 1, 2, 3, 5],
        ),
        (
            "metrics.acc > 0.8",
            datasets(&[("train", None)]),
            vec![1, 5],
        ),
        ("metrics.acc > 0.8", datasets(&[("test", None)]), vec![2]),
        ("metrics.acc < 0.65", datasets(&[("train", None)]), vec![]),
    ] {
        assert_eq!(
            f.search(LoggedModelSearch {
                datasets: sets.clone(),
                ..f.in_a(filter)
            })
            .await,
            f.newest_first(&expected),
            "{filter} on {sets:?}"
        );
    }

    // Nothing to search in finds nothing; refusals name the problem.
    assert_eq!(
        f.search(LoggedModelSearch::default()).await,
        Vec::<String>::new()
    );
    let s = &f.t.store;
    for (search, fragment) in [
        (f.in_a("foo.x = 'a'"), "Invalid entity type: 'foo'"),
        (f.in_a("name = 'a' OR name = 'b'"), "Expected 'AND'"),
        (f.in_a("metrics.acc = 'x'"), "compares with a number"),
        (
            LoggedModelSearch {
                experiment_ids: vec!["abc".into()],
                ..LoggedModelSearch::default()
            },
            "Invalid experiment ID 'abc'",
        ),
        (
            LoggedModelSearch {
                datasets: datasets(&[("", None)]),
                ..f.in_a("")
            },
            "`dataset_name` in the `datasets` clause must be specified.",
        ),
        (
            LoggedModelSearch {
                max_results: Some(-1),
                ..f.in_a("")
            },
            "max_results",
        ),
    ] {
        assert_err!(
            s.search_logged_models(&search).await,
            InvalidParameter,
            fragment
        );
    }
}

async fn search_orders_and_pages(db: Db) {
    let f = search_fixture(db).await;
    let order = |field: &str, ascending: bool| LoggedModelOrder {
        field_name: field.into(),
        ascending,
        dataset_name: None,
        dataset_digest: None,
    };
    let ordered = |orders: Vec<LoggedModelOrder>| LoggedModelSearch {
        order_by: orders,
        ..f.in_a("")
    };
    // Creation time ascending: 10, 20, 30, 40, then 50 twice by model id.
    let mut last_two = [f.ids[4].clone(), f.ids[5].clone()];
    last_two.sort();
    let mut expected = f.ids(&[0, 1, 2, 3]);
    expected.extend(last_two);
    assert_eq!(
        f.search(ordered(vec![order("creation_time", true)])).await,
        expected
    );
    // By name, then (tie-break) newest first.
    let mut by_name = f.newest_first(&[0, 1, 3, 5]);
    by_name.extend(f.ids(&[2, 4]));
    assert_eq!(f.search(ordered(vec![order("name", true)])).await, by_name);
    // model_type: set values first in either direction, then the models without one.
    assert_eq!(
        f.search(ordered(vec![order("model_type", false)])).await[0],
        f.ids[1]
    );
    assert_eq!(
        f.search(ordered(vec![order("model_type", true)])).await[0],
        f.ids[1]
    );

    // Metrics sort on the newest point (by time, then step) on the dataset if given: values
    // first, then NaN, then models without the metric (newest first among themselves).
    // Newest acc point: 0 → test 0.6 (step 2), 1 → 0.9, 2 → 0.95, 3 → NaN, 5 → 0.99.
    let mut expected = f.ids(&[0, 1, 2, 5, 3]);
    expected.extend(f.newest_first(&[4]));
    assert_eq!(
        f.search(ordered(vec![order("metrics.acc", true)])).await,
        expected
    );
    let mut expected = f.ids(&[5, 2, 1, 0, 3]);
    expected.extend(f.newest_first(&[4]));
    assert_eq!(
        f.search(ordered(vec![order("metrics.acc", false)])).await,
        expected
    );
    let on_train = LoggedModelOrder {
        dataset_name: Some("train".into()),
        dataset_digest: Some("train-digest".into()),
        ..order("metrics.acc", false)
    };
    // On train: 5 → 0.99, 1 → 0.9, 0 → 0.7, 3 → NaN, then 2 and 4 (no train point), newest first.
    let mut expected = f.ids(&[5, 1, 0, 3]);
    expected.extend(f.newest_first(&[2, 4]));
    assert_eq!(f.search(ordered(vec![on_train])).await, expected);

    let s = &f.t.store;
    for (o, fragment) in [
        (order("params.lr", true), "Only metrics are supported"),
        (order("bogus", true), "Invalid order by field name: bogus"),
    ] {
        assert_err!(
            s.search_logged_models(&ordered(vec![o])).await,
            InvalidParameter,
            fragment
        );
    }

    // Pages of two: every model once, in order; the last page has no token.
    let all = f.newest_first(&[0, 1, 2, 3, 4, 5]);
    let mut seen = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let page = s
            .search_logged_models(&LoggedModelSearch {
                max_results: Some(2),
                page_token: token.clone(),
                ..f.in_a("")
            })
            .await
            .unwrap();
        pages += 1;
        assert_eq!(page.items.len(), 2);
        seen.extend(page.items.into_iter().map(|m| m.model_id));
        match page.next_page_token {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3, "exactly three pages, no empty fourth one");
    assert_eq!(seen, all);
    // A token only serves the search it was issued for.
    let first = s
        .search_logged_models(&LoggedModelSearch {
            max_results: Some(2),
            ..f.in_a("")
        })
        .await
        .unwrap();
    let token = first.next_page_token.expect("more pages");
    for other in [
        f.in_a("name = 'model'"),
        LoggedModelSearch {
            experiment_ids: vec![f.exp_a.clone(), f.exp_b.clone()],
            ..LoggedModelSearch::default()
        },
        ordered(vec![order("name", true)]),
        LoggedModelSearch {
            datasets: vec![DatasetFilter {
                dataset_name: "train".into(),
                dataset_digest: None,
            }],
            ..f.in_a("")
        },
    ] {
        assert_err!(
            s.search_logged_models(&LoggedModelSearch {
                max_results: Some(2),
                page_token: Some(token.clone()),
                ..other
            })
            .await,
            InvalidParameter,
            "Invalid page token"
        );
    }
    assert_err!(
        s.search_logged_models(&LoggedModelSearch {
            page_token: Some("garbage".into()),
            ..f.in_a("")
        })
        .await,
        InvalidParameter,
        "Invalid page token"
    );
    // The default page size is 50.
    for _ in 0..50 {
        model(s, &f.exp_b, "many").await;
    }
    let page = s
        .search_logged_models(&LoggedModelSearch {
            experiment_ids: vec![f.exp_b.clone()],
            ..LoggedModelSearch::default()
        })
        .await
        .unwrap();
    assert_eq!(page.items.len(), 50);
    assert!(page.next_page_token.is_some());
}

on_both_databases!(
    create_get_finalize_and_delete,
    tags_params_and_registrations,
    metrics_from_runs,
    run_model_links,
    search_filters,
    search_orders_and_pages,
);
