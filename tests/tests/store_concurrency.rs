//! Store invariants under concurrent writers: on PostgreSQL transactions really overlap (on
//! SQLite they queue for the one write connection), and the rules must hold either way. Every
//! test runs on SQLite and on PostgreSQL.

#[macro_use]
mod store_support;

use refit_registry::experiments::Tag;
use refit_registry::models::NewModelVersion;
use refit_registry::runs::{Dataset, DatasetInput, Metric, NewRun, Param};
use refit_registry::training::{JobStatus, SpecFields, Triggered};
use refit_registry::{Error, Store};
use refit_tests::{Db, on_both_databases};
use sha2::{Digest, Sha256};
use store_support::{alice, fresh};

const WRITERS: usize = 8;

async fn run_in_default(store: &Store) -> String {
    store
        .create_run(
            &alice(),
            NewRun {
                experiment_id: "0".into(),
                ..NewRun::default()
            },
        )
        .await
        .unwrap()
        .info
        .run_id
}

async fn identical_uploads_at_once_are_stored_once(db: Db) {
    let t = fresh(db).await;
    let bytes: Vec<u8> = (0..(2 * refit_registry::artifacts::CHUNK_SIZE + 7))
        .map(|i| (i % 251) as u8)
        .collect();
    let digest = hex::encode(Sha256::digest(&bytes));
    let mut tasks = Vec::new();
    for i in 0..WRITERS {
        let store = t.store.clone();
        let bytes = bytes.clone();
        let digest = digest.clone();
        tasks.push(tokio::spawn(async move {
            store
                .put_artifact(
                    &alice(),
                    &format!("1/r/artifacts/copy-{i}.bin"),
                    bytes.as_slice(),
                    &digest,
                )
                .await
        }));
    }
    for task in tasks {
        let stored = task
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("upload failed: {e:?}"));
        assert_eq!(stored.sha256, digest);
        assert_eq!(stored.size, bytes.len() as i64);
    }
    assert_eq!(t.count("SELECT COUNT(*) AS n FROM blobs").await, 1);
    assert_eq!(t.count("SELECT COUNT(*) AS n FROM blob_chunks").await, 3);
    assert_eq!(
        t.count("SELECT COUNT(*) AS n FROM artifacts").await,
        WRITERS as i64
    );
    assert_eq!(
        t.count("SELECT COUNT(*) AS n FROM audit_log WHERE action = 'artifacts.put'")
            .await,
        WRITERS as i64
    );
}

async fn conflicting_params_at_once_keep_exactly_one_value(db: Db) {
    let t = fresh(db).await;
    // Several rounds, each on a fresh run, to give the writers every chance to overlap.
    for round in 0..20 {
        let run = run_in_default(&t.store).await;
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(WRITERS));
        let mut tasks = Vec::new();
        for i in 0..WRITERS {
            let store = t.store.clone();
            let run = run.clone();
            let barrier = barrier.clone();
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let result = store
                    .log_batch(
                        &alice(),
                        &run,
                        &[Metric {
                            key: format!("from-{i}"),
                            value: i as f64,
                            timestamp: 1,
                            step: 0,
                        }],
                        &[Param {
                            key: "lr".into(),
                            value: format!("0.{i}"),
                        }],
                        &[],
                    )
                    .await;
                (i, result)
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                (i, Ok(())) => winners.push(i),
                (_, Err(Error::InvalidParameter(m))) => {
                    assert!(m.contains("Changing param values is not allowed"), "{m}")
                }
                (_, Err(e)) => panic!("unexpected error: {e:?}"),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: several writers were told their value was kept: {winners:?}"
        );
        let winner = winners[0];
        let data = t.store.get_run(&run).await.unwrap().data;
        assert_eq!(
            data.params,
            vec![Param {
                key: "lr".into(),
                value: format!("0.{winner}"),
            }]
        );
        // Only the winner's batch was written, metrics included.
        assert_eq!(
            data.metrics
                .iter()
                .map(|m| m.key.clone())
                .collect::<Vec<_>>(),
            vec![format!("from-{winner}")]
        );
        assert_eq!(
            t.count(&format!(
                "SELECT COUNT(*) AS n FROM audit_log WHERE action = 'runs.log_batch' \
                 AND target = 'run:{run}'"
            ))
            .await,
            1
        );
    }
}

async fn versions_created_at_once_get_distinct_numbers(db: Db) {
    let t = fresh(db).await;
    t.store
        .create_registered_model(&alice(), "m", None, &[])
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let store = t.store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .create_model_version(
                    &alice(),
                    "m",
                    NewModelVersion {
                        source: "models:/x".into(),
                        ..NewModelVersion::default()
                    },
                )
                .await
                .unwrap()
                .version
        }));
    }
    let mut numbers = Vec::new();
    for task in tasks {
        numbers.push(task.await.unwrap());
    }
    numbers.sort();
    assert_eq!(numbers, (1..=WRITERS as i64).collect::<Vec<_>>());
}

async fn metrics_logged_at_once_are_all_kept(db: Db) {
    let t = fresh(db).await;
    let run = run_in_default(&t.store).await;
    // Each writer logs batches of 1,000 points, its first one twice: together more than three
    // times the 10,000 points at which a write moves the metric log into the history, so moves
    // run while other writers log (on PostgreSQL, in transactions side by side).
    const BATCH: i64 = 1_000;
    const BATCHES: i64 = 4;
    let mut tasks = Vec::new();
    for i in 0..WRITERS as i64 {
        let store = t.store.clone();
        let run = run.clone();
        tasks.push(tokio::spawn(async move {
            let batch = |b: i64| -> Vec<Metric> {
                (0..BATCH)
                    .map(|j| {
                        let step = (i * BATCHES + b) * BATCH + j;
                        Metric {
                            key: "loss".into(),
                            value: step as f64,
                            timestamp: 100 + j,
                            step,
                        }
                    })
                    .collect()
            };
            for b in (0..BATCHES).chain([0]) {
                store
                    .log_batch(&alice(), &run, &batch(b), &[], &[])
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let total = WRITERS as i64 * BATCHES * BATCH;
    let history = t.store.metric_history(&run, "loss").await.unwrap();
    assert_eq!(history.len() as i64, total);
    for (m, step) in history.iter().zip(0..) {
        assert_eq!((m.step, m.value), (step, step as f64));
    }
    assert!(t.count("SELECT COUNT(*) AS n FROM metrics").await >= 10_000);
    let latest = t.store.get_run(&run).await.unwrap().data.metrics;
    let top = total - 1;
    assert_eq!(latest.len(), 1);
    assert_eq!((latest[0].step, latest[0].value), (top, top as f64));
}

async fn one_dataset_logged_by_many_runs_at_once(db: Db) {
    let t = fresh(db).await;
    let mut runs = Vec::new();
    for _ in 0..WRITERS {
        runs.push(run_in_default(&t.store).await);
    }
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(WRITERS));
    let mut tasks = Vec::new();
    for run in runs.clone() {
        let store = t.store.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store
                .log_inputs(
                    &alice(),
                    &run,
                    &[DatasetInput {
                        tags: vec![Tag {
                            key: "mlflow.data.context".into(),
                            value: "training".into(),
                        }],
                        dataset: Dataset {
                            name: "shared".into(),
                            digest: "d1".into(),
                            source_type: "local".into(),
                            source: "{}".into(),
                            schema: None,
                            profile: None,
                        },
                    }],
                )
                .await
        }));
    }
    for task in tasks {
        task.await
            .unwrap()
            .unwrap_or_else(|e| panic!("log_inputs failed: {e:?}"));
    }
    assert_eq!(t.count("SELECT COUNT(*) AS n FROM input_datasets").await, 1);
    assert_eq!(
        t.count("SELECT COUNT(*) AS n FROM inputs").await,
        WRITERS as i64
    );
    for run in runs {
        let inputs = t.store.get_run(&run).await.unwrap().inputs.dataset_inputs;
        assert_eq!(inputs.len(), 1);
        assert_eq!(inputs[0].dataset.name, "shared");
        assert_eq!(inputs[0].tags.len(), 1);
    }
}

async fn one_name_claimed_by_many_at_once(db: Db) {
    let t = fresh(db).await;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(WRITERS));
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let store = t.store.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let experiment = store.create_experiment(&alice(), "race", None, &[]).await;
            let model = store
                .create_registered_model(&alice(), "race", None, &[])
                .await;
            (experiment.is_ok(), model.is_ok())
        }));
    }
    let (mut experiments, mut models) = (0, 0);
    for task in tasks {
        let (e, m) = task.await.unwrap();
        experiments += usize::from(e);
        models += usize::from(m);
    }
    assert_eq!((experiments, models), (1, 1));
    assert_err!(
        t.store.create_experiment(&alice(), "race", None, &[]).await,
        AlreadyExists,
        "race"
    );
}

/// Triggers of one spec firing at once (drift reports evaluated by the stream's hook and by the
/// scheduler's safety net, a schedule and a drift streak, several processes) queue one training:
/// each claims its own occurrence, and only the first finds the spec idle. A trigger coming
/// after that training has finished queues the next.
async fn triggers_firing_at_once_queue_one_training(db: Db) {
    let t = fresh(db).await;
    let definition = serde_json::json!({"name": "race"});
    let spec = t
        .store
        .create_spec(
            &alice(),
            SpecFields {
                name: "race",
                dataset: "d",
                model_name: "m",
                definition: &definition,
                schedule: None,
            },
        )
        .await
        .unwrap();
    for round in 0..3_i64 {
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(WRITERS));
        let mut tasks = Vec::new();
        for i in 0..WRITERS as i64 {
            let store = t.store.clone();
            let barrier = barrier.clone();
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                // Distinct occurrences, so that every caller claims one.
                let tick = 1_000 * (round + 1) + i;
                store
                    .queue_triggered_job(&alice(), spec.id, tick, "drift", Some("race"))
                    .await
                    .unwrap()
            }));
        }
        let mut queued = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                Triggered::Queued(job) => queued.push(job),
                Triggered::Claimed | Triggered::Busy => {}
            }
        }
        assert_eq!(queued.len(), 1, "round {round}: {queued:?}");
        let jobs = t.store.list_jobs(Some(spec.id), 100).await.unwrap();
        assert_eq!(jobs.len() as i64, round + 1);
        assert_eq!(
            jobs.iter()
                .filter(|j| j.status == JobStatus::Queued)
                .count(),
            1
        );
        let job = t
            .store
            .claim_job(queued[0].id, "worker", 60_000)
            .await
            .unwrap()
            .expect("the queued job");
        t.store
            .finish_job(&job, "worker", JobStatus::Succeeded, None, None)
            .await
            .unwrap();
    }
    // An occurrence already passed is not claimed again, and a busy spec queues nothing.
    assert!(matches!(
        t.store
            .queue_triggered_job(&alice(), spec.id, 1_000, "drift", None)
            .await,
        Ok(Triggered::Claimed)
    ));
    t.store
        .create_job(&alice(), spec.id, "manual", None)
        .await
        .unwrap();
    assert!(matches!(
        t.store
            .queue_triggered_job(&alice(), spec.id, 10_000, "drift", None)
            .await,
        Ok(Triggered::Busy)
    ));
    assert!(
        matches!(
            t.store
                .queue_triggered_job(&alice(), spec.id, 10_000, "drift", None)
                .await,
            Ok(Triggered::Claimed)
        ),
        "a busy spec's occurrence is spent"
    );
}

on_both_databases!(
    one_dataset_logged_by_many_runs_at_once,
    one_name_claimed_by_many_at_once,
    identical_uploads_at_once_are_stored_once,
    conflicting_params_at_once_keep_exactly_one_value,
    versions_created_at_once_get_distinct_numbers,
    metrics_logged_at_once_are_all_kept,
    triggers_firing_at_once_queue_one_training,
);
