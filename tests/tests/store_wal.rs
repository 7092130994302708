//! SQLite's write-ahead log written out ahead of need (`StoreOptions::wal_preallocation`): the
//! default size is written when a store opens, it is not written twice, and the files a crash
//! leaves behind (the database and a log whose frames are followed by zeros) recover every
//! committed write.

use std::path::Path;

use refit_registry::db::DEFAULT_WAL_PREALLOCATION;
use refit_registry::runs::{Metric, NewRun};
use refit_registry::{Actor, Store, StoreOptions};

fn wal_len(db: &Path) -> u64 {
    std::fs::metadata(format!("{}-wal", db.display()))
        .map(|m| m.len())
        .unwrap_or(0)
}

/// A run whose metric `loss` has `points` points (1 / (step + 1) at steps 0, 1, ...), logged
/// one commit per point as a training loop logs them; returns its id.
async fn run_with_points(store: &Store, actor: &Actor, points: i32) -> String {
    let experiment = store
        .create_experiment(actor, "wal", None, &[])
        .await
        .unwrap()
        .experiment_id;
    let run = store
        .create_run(
            actor,
            NewRun {
                experiment_id: experiment,
                ..NewRun::default()
            },
        )
        .await
        .unwrap();
    for step in 0..points {
        let point = Metric {
            key: "loss".into(),
            value: 1.0 / f64::from(step + 1),
            timestamp: 1_700_000_000_000 + i64::from(step),
            step: i64::from(step),
        };
        store
            .log_batch(actor, &run.info.run_id, &[point], &[], &[])
            .await
            .unwrap();
    }
    run.info.run_id
}

async fn open(db: &Path, wal_preallocation: u64) -> Store {
    let store = Store::connect(&StoreOptions {
        wal_preallocation,
        ..StoreOptions::new(format!("sqlite://{}", db.display()))
    })
    .await
    .expect("connecting");
    store.migrate().await.expect("migrating");
    store
}

#[tokio::test]
async fn the_log_is_written_out_once_and_a_crash_image_recovers_every_commit() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("refit.db");
    let store = open(&db, DEFAULT_WAL_PREALLOCATION).await;
    assert!(
        wal_len(&db) >= DEFAULT_WAL_PREALLOCATION,
        "log of {} bytes",
        wal_len(&db)
    );
    const { assert!(DEFAULT_WAL_PREALLOCATION > 64 << 20) };

    let alice = Actor::new("alice");
    let run = run_with_points(&store, &alice, 300).await;
    // The files as a crash would leave them: taken while the store is open, without a clean
    // close or a final checkpoint.
    let crashed = tempfile::tempdir().unwrap();
    let image = crashed.path().join("refit.db");
    std::fs::copy(&db, &image).unwrap();
    std::fs::copy(
        format!("{}-wal", db.display()),
        format!("{}-wal", image.display()),
    )
    .unwrap();
    let (copied_wal, live_wal) = (wal_len(&image), wal_len(&db));
    assert_eq!(copied_wal, live_wal);
    assert!(live_wal >= DEFAULT_WAL_PREALLOCATION);

    let recovered = open(&image, 0).await;
    let history = recovered.metric_history(&run, "loss").await.unwrap();
    assert_eq!(history.len(), 300);
    assert_eq!(
        history.iter().map(|m| m.step).collect::<Vec<_>>(),
        (0..300).collect::<Vec<i64>>()
    );
    assert_eq!(history[299].value, 1.0 / 300.0);
    // It is writable, and a reopened store does not write its log out again.
    recovered
        .log_batch(
            &alice,
            &run,
            &[Metric {
                key: "loss".into(),
                value: 0.0,
                timestamp: 1_800_000_000_000,
                step: 300,
            }],
            &[],
            &[],
        )
        .await
        .unwrap();
    drop(store);
    let before = wal_len(&db);
    let reopened = open(&db, DEFAULT_WAL_PREALLOCATION).await;
    assert_eq!(wal_len(&db), before.max(DEFAULT_WAL_PREALLOCATION));
    assert_eq!(
        reopened.metric_history(&run, "loss").await.unwrap().len(),
        300
    );
}

#[tokio::test]
async fn no_preallocation_leaves_the_log_to_grow() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("refit.db");
    let _store = open(&db, 0).await;
    assert!(wal_len(&db) < 1 << 20, "log of {} bytes", wal_len(&db));
}

/// The background checkpointer copies committed pages into the database file: a copy of the
/// file alone, without its log, soon holds every commit.
#[tokio::test]
async fn commits_reach_the_database_file_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("refit.db");
    let store = open(&db, DEFAULT_WAL_PREALLOCATION).await;
    let run = run_with_points(&store, &Actor::new("alice"), 50).await;
    // Checkpoints run every second; a copy taken mid-checkpoint may not open, so look again.
    let mut found = 0;
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let copy = tempfile::tempdir().unwrap();
        let image = copy.path().join("refit.db");
        std::fs::copy(&db, &image).unwrap();
        let Ok(opened) = Store::connect(&StoreOptions {
            wal_preallocation: 0,
            ..StoreOptions::new(format!("sqlite://{}", image.display()))
        })
        .await
        else {
            continue;
        };
        found = opened
            .metric_history(&run, "loss")
            .await
            .map_or(0, |h| h.len());
        if found == 50 {
            break;
        }
    }
    assert_eq!(found, 50, "points in the database file without its log");
}
