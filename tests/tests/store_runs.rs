//! The store's runs: creation and generated names, updates, delete/restore, `log_batch` (metric
//! history, latest metrics, immutable params, limits, key rules, NaN and infinities) and dataset
//! inputs, with the audit entry each write leaves. Every test runs on SQLite and on PostgreSQL.

#[macro_use]
mod store_support;

use refit_registry::experiments::{LifecycleStage, Tag};
use refit_registry::runs::{Metric, NewRun, Param, RUN_NAME_TAG, Run, RunStatus, RunUpdate};
use refit_registry::search::RunSearch;
use refit_registry::{Actor, Store};
use refit_tests::{Db, on_both_databases};
use store_support::{TestStore, alice, dataset_input, fresh};

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

fn metric(key: &str, value: f64, step: i64, timestamp: i64) -> Metric {
    Metric {
        key: key.into(),
        value,
        timestamp,
        step,
    }
}

/// Distinct metric points stored, in the history and in the log of new points.
const POINTS: &str = "SELECT COUNT(*) AS n FROM (\
    SELECT run_id, key, step, timestamp, value, is_nan FROM metrics \
    UNION SELECT run_id, key, step, timestamp, value, is_nan FROM metric_log) AS points";

async fn experiment(store: &Store) -> String {
    store
        .create_experiment(&alice(), "runs", None, &[])
        .await
        .unwrap()
        .experiment_id
}

async fn new_run(store: &Store, experiment_id: &str) -> Run {
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
}

fn tag_value<'a>(run: &'a Run, key: &str) -> Option<&'a str> {
    run.data
        .tags
        .iter()
        .find(|t| t.key == key)
        .map(|t| t.value.as_str())
}

/// `(step, timestamp, value)` of each point, for compact comparisons.
fn points(history: &[Metric]) -> Vec<(i64, i64, f64)> {
    history
        .iter()
        .map(|m| (m.step, m.timestamp, m.value))
        .collect()
}

fn latest<'a>(run: &'a Run, key: &str) -> Option<&'a Metric> {
    run.data.metrics.iter().find(|m| m.key == key)
}

async fn create_run_with_generated_name(db: Db) {
    let t = fresh(db).await;
    let exp = experiment(&t.store).await;
    let mut audit = t.audit().await;
    let before = refit_registry::db::now_ms();
    let run = t
        .store
        .create_run(
            &Actor::new("bob"),
            NewRun {
                experiment_id: exp.clone(),
                tags: vec![tag("team", "ml")],
                ..NewRun::default()
            },
        )
        .await
        .unwrap();
    let info = &run.info;
    assert_eq!(info.run_id.len(), 32);
    assert!(
        info.run_id
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    assert_eq!(info.run_uuid, info.run_id);
    assert_eq!(info.experiment_id, exp);
    assert_eq!(info.user_id, "bob");
    assert_eq!(info.status, RunStatus::Running);
    assert_eq!(info.lifecycle_stage, LifecycleStage::Active);
    assert_eq!(info.end_time, None);
    assert!(info.start_time >= before);
    assert_eq!(
        info.artifact_uri,
        format!("mlflow-artifacts:/{exp}/{}/artifacts", info.run_id)
    );

    // adjective-noun-number, all lower case, number below 1000.
    let parts: Vec<&str> = info.run_name.split('-').collect();
    assert_eq!(parts.len(), 3, "{}", info.run_name);
    assert!(
        parts[..2]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase())),
        "{}",
        info.run_name
    );
    assert!(parts[2].parse::<u16>().unwrap() < 1000, "{}", info.run_name);

    assert_eq!(
        run.data.tags,
        vec![tag(RUN_NAME_TAG, &info.run_name), tag("team", "ml")]
    );
    assert!(run.data.metrics.is_empty() && run.data.params.is_empty());
    let entry = audit
        .one_by("bob", "runs.create", &format!("run:{}", info.run_id))
        .await;
    assert_eq!(entry.detail.as_deref(), Some(info.run_name.as_str()));

    assert_eq!(t.store.get_run(&info.run_id).await.unwrap(), run);

    // Names are generated afresh for each run.
    let names: std::collections::HashSet<String> = {
        let mut names = std::collections::HashSet::new();
        for _ in 0..5 {
            names.insert(new_run(&t.store, &exp).await.info.run_name);
        }
        names
    };
    assert!(names.len() > 1, "{names:?}");
}

async fn create_run_with_given_name_user_and_start_time(db: Db) {
    let t = fresh(db).await;
    let exp = experiment(&t.store).await;
    let run = t
        .store
        .create_run(
            &alice(),
            NewRun {
                experiment_id: exp.clone(),
                run_name: Some("baseline".into()),
                start_time: Some(1_700_000_000_123),
                user_id: Some("carol".into()),
                // The explicit name wins over a conflicting tag.
                tags: vec![tag(RUN_NAME_TAG, "ignored")],
            },
        )
        .await
        .unwrap();
    assert_eq!(run.info.run_name, "baseline");
    assert_eq!(run.info.start_time, 1_700_000_000_123);
    assert_eq!(run.info.user_id, "carol");
    assert_eq!(run.data.tags, vec![tag(RUN_NAME_TAG, "baseline")]);

    // Without a name, the mlflow.runName tag names the run.
    let run = t
        .store
        .create_run(
            &alice(),
            NewRun {
                experiment_id: exp.clone(),
                tags: vec![tag(RUN_NAME_TAG, "from-tag")],
                ..NewRun::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(run.info.run_name, "from-tag");
    assert_eq!(tag_value(&run, RUN_NAME_TAG), Some("from-tag"));

    let mut audit = t.audit().await;
    for id in ["999", "abc"] {
        assert_err!(
            t.store
                .create_run(
                    &alice(),
                    NewRun {
                        experiment_id: id.into(),
                        ..NewRun::default()
                    },
                )
                .await,
            NotFound,
            &format!("No Experiment with id={id} exists")
        );
    }
    assert_err!(
        t.store
            .create_run(
                &alice(),
                NewRun {
                    experiment_id: exp.clone(),
                    tags: vec![tag("bad key!", "v")],
                    ..NewRun::default()
                },
            )
            .await,
        InvalidParameter,
        "bad key!"
    );
    audit.none().await;
    assert_err!(
        t.store.get_run(&"0".repeat(32)).await,
        NotFound,
        "not found"
    );
    assert_eq!(t.count("SELECT COUNT(*) AS n FROM runs").await, 2);
}

async fn update_status_end_time_and_name(db: Db) {
    let t = fresh(db).await;
    let exp = experiment(&t.store).await;
    let run = new_run(&t.store, &exp).await;
    let id = run.info.run_id.clone();
    let target = format!("run:{id}");
    let mut audit = t.audit().await;

    let info = t
        .store
        .update_run(
            &alice(),
            &id,
            RunUpdate {
                status: Some(RunStatus::Finished),
                end_time: Some(run.info.start_time + 5_000),
                run_name: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(info.status, RunStatus::Finished);
    assert_eq!(info.end_time, Some(run.info.start_time + 5_000));
    assert_eq!(info.run_name, run.info.run_name);
    let e = audit.one("runs.update", &target).await;
    assert_eq!(e.detail.as_deref(), Some("FINISHED"));

    // Renaming keeps status and end time and moves the mlflow.runName tag along.
    let info = t
        .store
        .update_run(
            &alice(),
            &id,
            RunUpdate {
                run_name: Some("renamed".into()),
                ..RunUpdate::default()
            },
        )
        .await
        .unwrap();
    audit.one("runs.update", &target).await;
    assert_eq!(info.run_name, "renamed");
    assert_eq!(info.status, RunStatus::Finished);
    assert_eq!(info.end_time, Some(run.info.start_time + 5_000));
    let got = t.store.get_run(&id).await.unwrap();
    assert_eq!(got.info, info);
    assert_eq!(tag_value(&got, RUN_NAME_TAG), Some("renamed"));

    // Setting the tag renames the run.
    t.store
        .log_batch(&alice(), &id, &[], &[], &[tag(RUN_NAME_TAG, "by-tag")])
        .await
        .unwrap();
    audit.one("runs.log_batch", &target).await;
    let got = t.store.get_run(&id).await.unwrap();
    assert_eq!(got.info.run_name, "by-tag");
    assert_eq!(tag_value(&got, RUN_NAME_TAG), Some("by-tag"));

    assert_err!(
        t.store
            .update_run(
                &alice(),
                &id,
                RunUpdate {
                    run_name: Some(String::new()),
                    ..RunUpdate::default()
                },
            )
            .await,
        InvalidParameter,
        "must not be empty"
    );
    assert_err!(
        t.store
            .update_run(&alice(), "nope", RunUpdate::default())
            .await,
        NotFound,
        "Run with id=nope not found"
    );
    audit.none().await;
}

async fn delete_restore_and_writes_to_deleted_runs(db: Db) {
    let t = fresh(db).await;
    let exp = experiment(&t.store).await;
    let id = new_run(&t.store, &exp).await.info.run_id;
    let target = format!("run:{id}");
    t.store
        .log_batch(&alice(), &id, &[], &[], &[tag("keep", "me")])
        .await
        .unwrap();
    let mut audit = t.audit().await;

    t.store.delete_run(&alice(), &id).await.unwrap();
    audit.one("runs.delete", &target).await;
    let run = t.store.get_run(&id).await.unwrap();
    assert_eq!(run.info.lifecycle_stage, LifecycleStage::Deleted);
    assert_eq!(tag_value(&run, "keep"), Some("me"));

    let refused = "must be in the 'active' state";
    assert_err!(
        t.store
            .log_batch(&alice(), &id, &[metric("m", 1.0, 0, 1)], &[], &[])
            .await,
        InvalidParameter,
        refused
    );
    assert_err!(
        t.store
            .log_batch(&alice(), &id, &[], &[param("p", "1")], &[])
            .await,
        InvalidParameter,
        refused
    );
    assert_err!(
        t.store
            .update_run(
                &alice(),
                &id,
                RunUpdate {
                    status: Some(RunStatus::Failed),
                    ..RunUpdate::default()
                }
            )
            .await,
        InvalidParameter,
        refused
    );
    assert_err!(
        t.store.delete_run_tag(&alice(), &id, "keep").await,
        InvalidParameter,
        refused
    );
    assert_err!(
        t.store
            .log_inputs(&alice(), &id, &[dataset_input("d", "x", "training")])
            .await,
        InvalidParameter,
        refused
    );
    audit.none().await;
    assert_eq!(t.count(POINTS).await, 0);
    assert_eq!(t.count("SELECT COUNT(*) AS n FROM params").await, 0);
    assert_eq!(t.count("SELECT COUNT(*) AS n FROM input_datasets").await, 0);

    t.store.restore_run(&alice(), &id).await.unwrap();
    audit.one("runs.restore", &target).await;
    let run = t.store.get_run(&id).await.unwrap();
    assert_eq!(run.info.lifecycle_stage, LifecycleStage::Active);
    t.store
        .log_batch(&alice(), &id, &[metric("m", 1.0, 0, 1)], &[], &[])
        .await
        .unwrap();
    audit.one("runs.log_batch", &target).await;
    assert_eq!(
        points(&t.store.metric_history(&id, "m").await.unwrap()),
        vec![(0, 1, 1.0)]
    );

    for missing in [
        t.store.delete_run(&alice(), "nope").await,
        t.store.restore_run(&alice(), "nope").await,
    ] {
        assert_err!(missing, NotFound, "Run with id=nope not found");
    }
    audit.none().await;
}

async fn metric_history_is_kept_in_full(db: Db) {
    let t = fresh(db).await;
    let exp = experiment(&t.store).await;
    let id = new_run(&t.store, &exp).await.info.run_id;
    let mut audit = t.audit().await;

    t.store
        .log_batch(
            &alice(),
            &id,
            &[
                metric("loss", 0.5, 2, 100),
                metric("loss", 1.0, 0, 300),
                metric("loss", 0.8, 1, 200),
                metric("loss", 0.9, 1, 150),
                // The very same point twice in one batch is stored once.
                metric("loss", 0.8, 1, 200),
                metric("acc", 0.1, 0, 100),
            ],
            &[],
            &[],
        )
        .await
        .unwrap();
    let e = audit.one("runs.log_batch", &format!("run:{id}")).await;
    assert_eq!(e.detail.as_deref(), Some("6 metrics, 0 params, 0 tags"));
    // Again across batches; and a different value at the same step and time is a new point.
    t.store
        .log_batch(
            &alice(),
            &id,
            &[metric("loss", 0.8, 1, 200), metric("loss", 0.7, 1, 200)],
            &[],
            &[],
        )
        .await
        .unwrap();
    audit.one("runs.log_batch", &format!("run:{id}")).await;

    let history = t.store.metric_history(&id, "loss").await.unwrap();
    assert!(history.iter().all(|m| m.key == "loss"));
    assert_eq!(
        points(&history),
        vec![
            (0, 300, 1.0),
            (1, 150, 0.9),
            (1, 200, 0.7),
            (1, 200, 0.8),
            (2, 100, 0.5)
        ]
    );
    assert_eq!(
        points(&t.store.metric_history(&id, "acc").await.unwrap()),
        vec![(0, 100, 0.1)]
    );
    assert!(
        t.store
            .metric_history(&id, "never")
            .await
            .unwrap()
            .is_empty()
    );
    assert_err!(
        t.store.metric_history("nope", "loss").await,
        NotFound,
        "nope"
    );
    assert_eq!(t.count(POINTS).await, 6);
}

async fn the_metric_log_moves_into_the_history(db: Db) {
    let t = fresh(db).await;
    let exp = experiment(&t.store).await;
    let id = new_run(&t.store, &exp).await.info.run_id;
    // Batches of 1,000 points: ten keys, 100 steps each; the tenth batch takes the log to
    // 10,000 points, and its write moves them into the history.
    let batch = |b: i64| -> Vec<Metric> {
        (0..10)
            .flat_map(|k| {
                (b * 100..b * 100 + 100).map(move |step| {
                    metric(
                        &format!("k{k}"),
                        (k * 10_000 + step) as f64 / 7.0,
                        step,
                        1_000 + step,
                    )
                })
            })
            .collect()
    };
    let log = async |points: &[Metric]| {
        t.store
            .log_batch(&alice(), &id, points, &[], &[])
            .await
            .unwrap()
    };
    for b in 0..9 {
        log(&batch(b)).await;
    }
    assert_eq!(t.count("SELECT COUNT(*) AS n FROM metric_log").await, 9_000);
    assert_eq!(t.count("SELECT COUNT(*) AS n FROM metrics").await, 0);
    // Points already in the log, logged again before the move: stored once.
    log(&batch(3)[..50]).await;
    log(&batch(9)).await;
    assert_eq!(t.count("SELECT COUNT(*) AS n FROM metric_log").await, 0);
    assert_eq!(t.count("SELECT COUNT(*) AS n FROM metrics").await, 10_000);
    // After the move: new points, and points the history holds logged again.
    log(&batch(10)).await;
    log(&batch(0)).await;
    assert_eq!(t.count("SELECT COUNT(*) AS n FROM metric_log").await, 2_000);
    assert_eq!(t.count(POINTS).await, 11_000);

    for k in [0, 3, 9] {
        let history = t.store.metric_history(&id, &format!("k{k}")).await.unwrap();
        let want: Vec<(i64, i64, f64)> = (0..1_100)
            .map(|step| (step, 1_000 + step, (k * 10_000 + step) as f64 / 7.0))
            .collect();
        assert_eq!(points(&history), want, "k{k}");
    }
    let run = t.store.get_run(&id).await.unwrap();
    assert_eq!(run.data.metrics.len(), 10);
    for m in &run.data.metrics {
        let k: i64 = m.key[1..].parse().unwrap();
        assert_eq!(
            (m.step, m.value),
            (1_099, (k * 10_000 + 1_099) as f64 / 7.0)
        );
    }
}

async fn latest_metric_is_max_by_step_timestamp_value(db: Db) {
    let t = fresh(db).await;
    let exp = experiment(&t.store).await;
    let id = new_run(&t.store, &exp).await.info.run_id;
    let log = |m: Vec<Metric>| {
        let store = t.store.clone();
        let id = id.clone();
        async move { store.log_batch(&alice(), &id, &m, &[], &[]).await.unwrap() }
    };
    let latest_point = || {
        let store = t.store.clone();
        let id = id.clone();
        async move {
            let run = store.get_run(&id).await.unwrap();
            let m = latest(&run, "m").expect("metric m").clone();
            (m.step, m.timestamp, m.value)
        }
    };

    // Within one batch, the latest is the max, wherever it appears.
    log(vec![
        metric("m", 1.0, 5, 10),
        metric("m", 9.0, 4, 99),
        metric("m", 0.5, 5, 9),
    ])
    .await;
    assert_eq!(latest_point().await, (5, 10, 1.0));
    // An earlier step does not replace it, whatever its timestamp.
    log(vec![metric("m", 2.0, 3, 1_000)]).await;
    assert_eq!(latest_point().await, (5, 10, 1.0));
    // Same step and timestamp: the larger value wins; a smaller one does not.
    log(vec![metric("m", 3.0, 5, 10)]).await;
    assert_eq!(latest_point().await, (5, 10, 3.0));
    log(vec![metric("m", 2.5, 5, 10)]).await;
    assert_eq!(latest_point().await, (5, 10, 3.0));
    // A later timestamp at the same step wins even with a smaller value.
    log(vec![metric("m", 0.1, 5, 11)]).await;
    assert_eq!(latest_point().await, (5, 11, 0.1));
    // A later step always wins.
    log(vec![metric("m", -7.0, 6, 0)]).await;
    assert_eq!(latest_point().await, (6, 0, -7.0));

    assert_eq!(t.count("SELECT COUNT(*) AS n FROM latest_metrics").await, 1);
    assert_eq!(t.store.metric_history(&id, "m").await.unwrap().len(), 8);
}

async fn nan_and_infinities_round_trip(db: Db) {
    let t = fresh(db).await;
    let exp = experiment(&t.store).await;
    let id = new_run(&t.store, &exp).await.info.run_id;
    t.store
        .log_batch(
            &alice(),
            &id,
            &[
                metric("nan", f64::NAN, 0, 1),
                metric("pinf", f64::INFINITY, 0, 1),
                metric("ninf", f64::NEG_INFINITY, 0, 1),
                metric("mixed", 1.5, 0, 1),
                metric("mixed", f64::NAN, 1, 1),
                metric("mixed", f64::INFINITY, 2, 1),
                metric("mixed", f64::NEG_INFINITY, 3, 1),
                // Values whose every digit matters, read back through each way a run is read.
                metric("sum", 0.1 + 0.2, 0, 1),
                metric("tiny", 5e-324, 0, 1),
                metric("huge", f64::MAX, 0, 1),
                metric("third", -1.0 / 3.0, 0, 1),
            ],
            &[],
            &[],
        )
        .await
        .unwrap();
    let exact = [
        ("sum", 0.1 + 0.2),
        ("tiny", 5e-324),
        ("huge", f64::MAX),
        ("third", -1.0 / 3.0),
    ];
    let searched = t
        .store
        .search_runs(&RunSearch {
            experiment_ids: vec![exp.clone()],
            max_results: 10,
            ..RunSearch::default()
        })
        .await
        .unwrap()
        .items
        .remove(0);
    for run in [t.store.get_run(&id).await.unwrap(), searched] {
        for (key, value) in exact {
            assert_eq!(
                latest(&run, key).unwrap().value.to_bits(),
                value.to_bits(),
                "{key}"
            );
        }
        assert_eq!(latest(&run, "pinf").unwrap().value, f64::INFINITY);
        assert_eq!(latest(&run, "ninf").unwrap().value, f64::NEG_INFINITY);
    }
    // Logging NaN again is the same point: still stored once.
    t.store
        .log_batch(&alice(), &id, &[metric("nan", f64::NAN, 0, 1)], &[], &[])
        .await
        .unwrap();

    let nan = t.store.metric_history(&id, "nan").await.unwrap();
    assert_eq!(nan.len(), 1);
    assert!(nan[0].value.is_nan(), "{nan:?}");
    let pinf = t.store.metric_history(&id, "pinf").await.unwrap();
    assert_eq!(points(&pinf), vec![(0, 1, f64::INFINITY)]);
    let ninf = t.store.metric_history(&id, "ninf").await.unwrap();
    assert_eq!(points(&ninf), vec![(0, 1, f64::NEG_INFINITY)]);

    let mixed = t.store.metric_history(&id, "mixed").await.unwrap();
    assert_eq!(mixed.len(), 4);
    assert_eq!((mixed[0].step, mixed[0].value), (0, 1.5));
    assert_eq!(mixed[1].step, 1);
    assert!(mixed[1].value.is_nan());
    assert_eq!((mixed[2].step, mixed[2].value), (2, f64::INFINITY));
    assert_eq!((mixed[3].step, mixed[3].value), (3, f64::NEG_INFINITY));

    let run = t.store.get_run(&id).await.unwrap();
    assert!(latest(&run, "nan").unwrap().value.is_nan());
    assert_eq!(latest(&run, "pinf").unwrap().value, f64::INFINITY);
    assert_eq!(latest(&run, "ninf").unwrap().value, f64::NEG_INFINITY);
    assert_eq!(latest(&run, "mixed").unwrap().value, f64::NEG_INFINITY);
    assert_eq!(latest(&run, "mixed").unwrap().step, 3);
}

async fn params_are_immutable(db: Db) {
    let t = fresh(db).await;
    let exp = experiment(&t.store).await;
    let id = new_run(&t.store, &exp).await.info.run_id;
    let target = format!("run:{id}");
    let mut audit = t.audit().await;

    t.store
        .log_batch(
            &alice(),
            &id,
            &[],
            &[param("lr", "0.1"), param("depth", "3")],
            &[],
        )
        .await
        .unwrap();
    audit.one("runs.log_batch", &target).await;
    // The same value again, even twice in one batch, is accepted and changes nothing.
    t.store
        .log_batch(
            &alice(),
            &id,
            &[],
            &[param("lr", "0.1"), param("lr", "0.1"), param("seed", "7")],
            &[],
        )
        .await
        .unwrap();
    audit.one("runs.log_batch", &target).await;
    assert_eq!(
        t.store.get_run(&id).await.unwrap().data.params,
        vec![param("depth", "3"), param("lr", "0.1"), param("seed", "7")]
    );

    // A different value refuses the whole batch: no metric, tag or new param is written.
    let message = assert_err!(
        t.store
            .log_batch(
                &alice(),
                &id,
                &[metric("loss", 0.3, 0, 1)],
                &[param("fresh", "yes"), param("lr", "0.2")],
                &[tag("note", "should not exist")],
            )
            .await,
        InvalidParameter,
        "Changing param values is not allowed"
    );
    for fragment in ["key='lr'", "value='0.1'", "new value '0.2'", id.as_str()] {
        assert!(message.contains(fragment), "{message:?} lacks {fragment:?}");
    }
    audit.none().await;
    let run = t.store.get_run(&id).await.unwrap();
    assert_eq!(
        run.data.params,
        vec![param("depth", "3"), param("lr", "0.1"), param("seed", "7")]
    );
    assert!(run.data.metrics.is_empty(), "{:?}", run.data.metrics);
    assert_eq!(tag_value(&run, "note"), None);
    assert!(
        t.store
            .metric_history(&id, "loss")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(t.count(POINTS).await, 0);
    assert_eq!(t.count("SELECT COUNT(*) AS n FROM latest_metrics").await, 0);

    // Two values for one key within a batch are refused the same way.
    let message = assert_err!(
        t.store
            .log_batch(
                &alice(),
                &id,
                &[metric("loss", 0.3, 0, 1)],
                &[param("k", "a"), param("k", "b")],
                &[],
            )
            .await,
        InvalidParameter,
        "Duplicate parameter keys"
    );
    assert!(
        message.contains("'a'") && message.contains("'b'"),
        "{message}"
    );
    audit.none().await;
    assert_eq!(t.count(POINTS).await, 0);

    assert_err!(
        t.store
            .log_batch(&alice(), &id, &[], &[param("long", &"v".repeat(6001))], &[])
            .await,
        InvalidParameter,
        "6001"
    );
    t.store
        .log_batch(&alice(), &id, &[], &[param("long", &"v".repeat(6000))], &[])
        .await
        .unwrap();
}

async fn batch_limits(db: Db) {
    let t = fresh(db).await;
    let exp = experiment(&t.store).await;
    let id = new_run(&t.store, &exp).await.info.run_id;
    let metrics = |n: usize| -> Vec<Metric> {
        (0..n)
            .map(|i| metric(&format!("m{}", i % 10), i as f64, i as i64, 1))
            .collect()
    };
    let params = |n: usize| -> Vec<Param> {
        (0..n)
            .map(|i| param(&format!("p{i}"), &i.to_string()))
            .collect()
    };
    let tags = |n: usize| -> Vec<Tag> { (0..n).map(|i| tag(&format!("t{i}"), "v")).collect() };
    let mut audit = t.audit().await;

    assert_err!(
        t.store
            .log_batch(&alice(), &id, &metrics(1001), &[], &[])
            .await,
        InvalidParameter,
        "A batch logging request can contain at most 1000 metrics. Got 1001 metrics. \
         Please split up metrics across multiple requests and try again."
    );
    assert_err!(
        t.store
            .log_batch(&alice(), &id, &[], &params(101), &[])
            .await,
        InvalidParameter,
        "A batch logging request can contain at most 100 params. Got 101 params."
    );
    assert_err!(
        t.store.log_batch(&alice(), &id, &[], &[], &tags(101)).await,
        InvalidParameter,
        "A batch logging request can contain at most 100 tags. Got 101 tags."
    );
    assert_err!(
        t.store
            .log_batch(&alice(), &id, &metrics(900), &params(100), &tags(1))
            .await,
        InvalidParameter,
        "A batch logging request can contain at most 1000 total metrics, params and tags. Got 1001."
    );
    audit.none().await;
    assert_eq!(t.count(POINTS).await, 0);

    // Exactly at the limits is fine.
    t.store
        .log_batch(&alice(), &id, &metrics(1000), &[], &[])
        .await
        .unwrap();
    t.store
        .log_batch(&alice(), &id, &metrics(800), &params(100), &tags(100))
        .await
        .unwrap();
    assert_eq!(audit.take().await.len(), 2);
    assert_eq!(t.count(POINTS).await, 1000);
    assert_eq!(t.count("SELECT COUNT(*) AS n FROM params").await, 100);
    let run = t.store.get_run(&id).await.unwrap();
    assert_eq!(run.data.params.len(), 100);
    assert_eq!(run.data.tags.len(), 101, "100 tags and mlflow.runName");
    assert_eq!(run.data.metrics.len(), 10);
    let m9 = latest(&run, "m9").unwrap();
    assert_eq!((m9.step, m9.value), (999, 999.0));
}

async fn invalid_keys_are_refused(db: Db) {
    let t = fresh(db).await;
    let exp = experiment(&t.store).await;
    let id = new_run(&t.store, &exp).await.info.run_id;
    let mut audit = t.audit().await;
    let long = "k".repeat(251);
    let bad: [(&str, &str); 7] = [
        ("a;b", "Invalid"),
        ("quote'", "Invalid"),
        ("a\nb", "Invalid"),
        (&long, "at most 250 characters"),
        ("..", "would resolve to '..'"),
        ("a/../b", "would resolve to 'b'"),
        ("/abs", "would resolve to '/abs'"),
    ];
    for (key, fragment) in bad {
        for (kind, result) in [
            (
                "metric",
                t.store
                    .log_batch(&alice(), &id, &[metric(key, 1.0, 0, 1)], &[], &[])
                    .await,
            ),
            (
                "param",
                t.store
                    .log_batch(&alice(), &id, &[], &[param(key, "v")], &[])
                    .await,
            ),
            (
                "tag",
                t.store
                    .log_batch(&alice(), &id, &[], &[], &[tag(key, "v")])
                    .await,
            ),
        ] {
            let message = assert_err!(result, InvalidParameter, fragment);
            assert!(message.contains(kind), "{message:?} should name the {kind}");
        }
    }
    assert_err!(
        t.store
            .log_batch(&alice(), &id, &[metric("", 1.0, 0, 1)], &[], &[])
            .await,
        InvalidParameter,
        "must not be empty"
    );
    audit.none().await;

    let fine = "k".repeat(250);
    let ok = [fine.as_str(), "val/loss", "a b", "x-1.2_y", "größe", "a..b"];
    t.store
        .log_batch(
            &alice(),
            &id,
            &ok.iter().map(|k| metric(k, 1.0, 0, 1)).collect::<Vec<_>>(),
            &ok.iter().map(|k| param(k, "v")).collect::<Vec<_>>(),
            &ok.iter().map(|k| tag(k, "v")).collect::<Vec<_>>(),
        )
        .await
        .unwrap();
    let run = t.store.get_run(&id).await.unwrap();
    assert_eq!(run.data.metrics.len(), ok.len());
    assert_eq!(run.data.params.len(), ok.len());
    assert_eq!(run.data.tags.len(), ok.len() + 1);
}

async fn tags_set_replace_and_delete(db: Db) {
    let t = fresh(db).await;
    let exp = experiment(&t.store).await;
    let id = new_run(&t.store, &exp).await.info.run_id;
    let target = format!("run:{id}");
    let mut audit = t.audit().await;

    t.store
        .log_batch(
            &alice(),
            &id,
            &[],
            &[],
            &[tag("k", "1"), tag("other", "x"), tag("k", "2")],
        )
        .await
        .unwrap();
    audit.one("runs.log_batch", &target).await;
    let run = t.store.get_run(&id).await.unwrap();
    assert_eq!(
        tag_value(&run, "k"),
        Some("2"),
        "last value in a batch wins"
    );
    t.store
        .log_batch(&alice(), &id, &[], &[], &[tag("k", "3")])
        .await
        .unwrap();
    audit.one("runs.log_batch", &target).await;
    assert_eq!(
        tag_value(&t.store.get_run(&id).await.unwrap(), "k"),
        Some("3")
    );

    t.store.delete_run_tag(&alice(), &id, "k").await.unwrap();
    let e = audit.one("runs.delete_tag", &target).await;
    assert_eq!(e.detail.as_deref(), Some("k"));
    let run = t.store.get_run(&id).await.unwrap();
    assert_eq!(tag_value(&run, "k"), None);
    assert_eq!(tag_value(&run, "other"), Some("x"));
    assert_err!(
        t.store.delete_run_tag(&alice(), &id, "k").await,
        NotFound,
        "No tag with name: k"
    );
    audit.none().await;
}

async fn log_inputs_is_idempotent(db: Db) {
    let t = fresh(db).await;
    let exp = experiment(&t.store).await;
    let id = new_run(&t.store, &exp).await.info.run_id;
    let other = new_run(&t.store, &exp).await.info.run_id;
    let target = format!("run:{id}");
    let mut audit = t.audit().await;

    let train = dataset_input("churn-2024", "abc123", "training");
    t.store
        .log_inputs(&alice(), &id, std::slice::from_ref(&train))
        .await
        .unwrap();
    let e = audit.one("runs.log_inputs", &target).await;
    assert_eq!(e.detail.as_deref(), Some("1 datasets"));
    let run = t.store.get_run(&id).await.unwrap();
    assert_eq!(run.inputs.dataset_inputs, vec![train.clone()]);

    // Logging the same dataset again changes nothing, even with another context.
    t.store
        .log_inputs(
            &alice(),
            &id,
            &[train.clone(), dataset_input("churn-2024", "abc123", "eval")],
        )
        .await
        .unwrap();
    audit.one("runs.log_inputs", &target).await;
    let eval = dataset_input("churn-2024", "def456", "evaluation");
    t.store
        .log_inputs(&alice(), &id, std::slice::from_ref(&eval))
        .await
        .unwrap();
    audit.one("runs.log_inputs", &target).await;
    let run = t.store.get_run(&id).await.unwrap();
    assert_eq!(run.inputs.dataset_inputs, vec![train.clone(), eval.clone()]);
    assert_eq!(t.count("SELECT COUNT(*) AS n FROM inputs").await, 2);
    assert_eq!(t.count("SELECT COUNT(*) AS n FROM input_tags").await, 2);

    // Another run of the same experiment shares the dataset row.
    t.store
        .log_inputs(&alice(), &other, std::slice::from_ref(&train))
        .await
        .unwrap();
    assert_eq!(t.count("SELECT COUNT(*) AS n FROM input_datasets").await, 2);
    assert_eq!(t.count("SELECT COUNT(*) AS n FROM inputs").await, 3);
    assert_eq!(
        t.store.get_run(&other).await.unwrap().inputs.dataset_inputs,
        vec![train.clone()]
    );
    audit.take().await;

    let mut no_digest = dataset_input("x", "", "training");
    no_digest.dataset.digest.clear();
    assert_err!(
        t.store.log_inputs(&alice(), &id, &[no_digest]).await,
        InvalidParameter,
        "digest"
    );
    assert_err!(
        t.store
            .log_inputs(&alice(), "nope", std::slice::from_ref(&train))
            .await,
        NotFound,
        "nope"
    );
    audit.none().await;
}

async fn writes_by_automation_are_attributed(db: Db) {
    let t: TestStore = fresh(db).await;
    let exp = experiment(&t.store).await;
    let mut audit = t.audit().await;
    let scheduler = Actor::automation("scheduler");
    let run = t
        .store
        .create_run(
            &scheduler,
            NewRun {
                experiment_id: exp,
                ..NewRun::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(run.info.user_id, "automation:scheduler");
    audit
        .one_by(
            "automation:scheduler",
            "runs.create",
            &format!("run:{}", run.info.run_id),
        )
        .await;
}

on_both_databases!(
    create_run_with_generated_name,
    create_run_with_given_name_user_and_start_time,
    update_status_end_time_and_name,
    delete_restore_and_writes_to_deleted_runs,
    metric_history_is_kept_in_full,
    the_metric_log_moves_into_the_history,
    latest_metric_is_max_by_step_timestamp_value,
    nan_and_infinities_round_trip,
    params_are_immutable,
    batch_limits,
    invalid_keys_are_refused,
    tags_set_replace_and_delete,
    log_inputs_is_idempotent,
    writes_by_automation_are_attributed,
);
