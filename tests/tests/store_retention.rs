//! Retention in the store: pruning drops readings (with their labels) older than
//! `retention_days` before the newest reading, keeps what kept snapshots cover unless forced, and
//! a forced prune releases the snapshots it took rows from. Every test runs on SQLite and on
//! PostgreSQL.

#[macro_use]
mod store_support;

use refit_registry::datasets::{Column, ColumnKind, PruneReport, Schema, SnapshotRequest};
use refit_tests::{Db, on_both_databases};
use serde_json::json;
use sqlx::Row;
use store_support::{TestStore, alice, first_feature_block, fresh};

on_both_databases!(
    pruning_keeps_what_kept_snapshots_cover_and_drops_the_rest,
    pruning_takes_the_scores_of_the_readings_it_deletes,
    forced_pruning_releases_the_snapshots_it_takes_rows_from,
    pruning_needs_retention_and_an_existing_dataset,
);

/// 2023-11-14T22:13:20Z.
const T0: i64 = 1_700_000_000_000;
const DAY: i64 = 86_400_000;

fn numeric(name: &str) -> Column {
    Column {
        name: name.into(),
        kind: ColumnKind::Numeric,
        nullable: false,
    }
}

/// Creates dataset `press` (feature temp, label failure) keeping 10 days; returns its readings,
/// a labelled one of machines m1 and m2 at T0 + d days for d in 0..30, as a JSON array.
async fn press_dataset(t: &TestStore) -> String {
    let schema = Schema {
        features: vec![numeric("temp")],
        labels: vec![numeric("failure")],
    };
    t.store
        .create_dataset(&alice(), "press", &schema, Some(10))
        .await
        .unwrap();
    let records: Vec<_> = (0..30)
        .flat_map(|d| {
            ["m1", "m2"].map(|m| {
                json!({"machine_id": m, "ts": T0 + d * DAY, "temp": d as f64, "failure": d % 2})
            })
        })
        .collect();
    json!(records).to_string()
}

/// Dataset `press` (feature temp, label failure) keeping 10 days, with a labelled reading of
/// machines m1 and m2 at T0 + d days for d in 0..30: the newest is day 29, so the cutoff is
/// day 19 and days 0-18 (38 readings) are older.
async fn press(t: &TestStore) {
    let records = press_dataset(t).await;
    let report = t
        .store
        .ingest_records(&alice(), "press", records, false, "api")
        .await
        .unwrap();
    assert_eq!(report.accepted, 60);
    assert_eq!(t.store.dataset_counts("press").await.unwrap(), (60, 60));
}

/// Snapshots: 1 = every machine, days 2-4; 2 = m1, days 6-7; 3 = every machine, days 20-24
/// (after the cutoff).
async fn snapshots(t: &TestStore) {
    for (from, to, machines) in [
        (2, 5, None),
        (6, 8, Some(vec!["m1".to_string()])),
        (20, 25, None),
    ] {
        t.store
            .create_snapshot(
                &alice(),
                "press",
                &SnapshotRequest {
                    from: Some(T0 + from * DAY),
                    to: Some(T0 + to * DAY),
                    machines,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
}

/// The stored (machine, day) of readings older than day 19, or of their labels.
async fn old_rows(t: &TestStore, table: &str) -> Vec<(String, i64)> {
    if table == "records" {
        return refit_tests::stored_readings(&t.raw)
            .await
            .into_iter()
            .filter(|(_, ts)| *ts < T0 + 19 * DAY)
            .map(|(m, ts)| (m, (ts - T0) / DAY))
            .collect();
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT machine_id, ts FROM {table} WHERE ts < {} ORDER BY ts, machine_id",
        T0 + 19 * DAY
    )))
    .fetch_all(&t.raw)
    .await
    .unwrap()
    .iter()
    .map(|r| {
        (
            r.get::<String, _>("machine_id"),
            (r.get::<i64, _>("ts") - T0) / DAY,
        )
    })
    .collect()
}

/// Dataset `press` as [`press`] makes it, its readings stored by one scored ingest: one block of
/// 60 scores (the reading's temp), positions 1-60 in request order.
async fn scored_press(t: &TestStore) {
    let records = press_dataset(t).await;
    let (report, blocks, ()) = t
        .store
        .ingest_records_scored(
            &alice(),
            "press",
            records,
            false,
            "api",
            |_, _| async {},
            |_, fresh, _| async move { Ok((vec![first_feature_block(fresh, |x| x)], ())) },
            |report, blocks, ()| (report, blocks, ()),
        )
        .await
        .unwrap();
    assert_eq!(report.accepted, 60);
    assert_eq!(blocks.len(), 1);
}

/// Pruning deletes the scores of the readings it deletes — from the middle of a block, which is
/// written again with the rest — and keeps those of readings kept for snapshots, positions
/// unchanged.
async fn pruning_takes_the_scores_of_the_readings_it_deletes(db: Db) {
    let t = fresh(db).await;
    scored_press(&t).await;
    snapshots(&t).await;
    let report = t
        .store
        .prune_dataset(&alice(), "press", false)
        .await
        .unwrap();
    assert_eq!(report.deleted_records, 30);
    assert_eq!(report.deleted_scores, 30, "{report:?}");
    let scores = t.store.scores_after("press", 0, 1000, None).await.unwrap();
    let kept: Vec<(String, i64, i64)> = scores
        .iter()
        .map(|s| (s.machine_id.clone(), (s.ts - T0) / DAY, s.position))
        .collect();
    let mut want = Vec::new();
    for d in 0..30i64 {
        for (i, m) in ["m1", "m2"].iter().enumerate() {
            let snapshot = (2..5).contains(&d) || (*m == "m1" && (6..8).contains(&d));
            if d >= 19 || snapshot {
                want.push((m.to_string(), d, 1 + 2 * d + i as i64));
            }
        }
    }
    assert_eq!(kept, want);
    for s in &scores {
        let day = ((s.ts - T0) / DAY) as f64;
        assert_eq!(
            s.prediction,
            json!(day),
            "each kept score is its own reading's"
        );
    }
    // A kept reading still names the model that scored it; a deleted one has none.
    let of_kept = t
        .store
        .scores_of_record("press", "m1", T0 + 6 * DAY)
        .await
        .unwrap();
    assert_eq!(of_kept.len(), 1);
    assert_eq!(of_kept[0].position, 13);
    let of_deleted = t
        .store
        .scores_of_record("press", "m2", T0 + 6 * DAY)
        .await
        .unwrap();
    assert!(of_deleted.is_empty());
    // Pruning again deletes nothing more.
    let again = t
        .store
        .prune_dataset(&alice(), "press", false)
        .await
        .unwrap();
    assert_eq!((again.deleted_records, again.deleted_scores), (0, 0));
}

async fn verified(t: &TestStore, id: i64) -> (bool, i64) {
    let v = t.store.verify_snapshot("press", id).await.unwrap();
    (v.ok, v.actual_rows)
}

async fn pruning_keeps_what_kept_snapshots_cover_and_drops_the_rest(db: Db) {
    let t = fresh(db).await;
    press(&t).await;
    snapshots(&t).await;
    let mut audit = t.audit().await;

    let report = t
        .store
        .prune_dataset(&alice(), "press", false)
        .await
        .unwrap();
    assert_eq!(
        report,
        PruneReport {
            cutoff: Some(T0 + 19 * DAY),
            deleted_records: 30,
            deleted_labels: 30,
            deleted_scores: 0,
            kept_for_snapshots: 8,
            released_snapshots: vec![],
        }
    );
    let kept: Vec<(String, i64)> = [
        ("m1", 2),
        ("m2", 2),
        ("m1", 3),
        ("m2", 3),
        ("m1", 4),
        ("m2", 4),
        ("m1", 6),
        ("m1", 7),
    ]
    .map(|(m, d)| (m.to_string(), d))
    .to_vec();
    assert_eq!(old_rows(&t, "records").await, kept);
    assert_eq!(
        old_rows(&t, "record_labels").await,
        kept,
        "labels stay with kept readings"
    );
    // Day 19 on is untouched: 11 days of both machines.
    assert_eq!(t.store.dataset_counts("press").await.unwrap(), (30, 30));
    for id in [1, 2, 3] {
        assert!(verified(&t, id).await.0, "snapshot {id} still verifies");
        assert!(t.store.get_snapshot("press", id).await.unwrap().kept);
    }
    let entry = audit.one("datasets.prune", "dataset:press").await;
    assert_eq!(
        entry.detail.as_deref(),
        Some(
            "before 2023-12-03T22:13:20Z: 30 readings, 30 labels and 0 scores deleted, 8 kept for snapshots"
        )
    );

    // Pruning again finds nothing more to delete.
    let again = t
        .store
        .prune_dataset(&alice(), "press", false)
        .await
        .unwrap();
    assert_eq!((again.deleted_records, again.deleted_labels), (0, 0));
    assert_eq!(again.kept_for_snapshots, 8);

    // A new reading moves the cutoff: days 19 and 20 age out, except day 20 (snapshot 3).
    t.store
        .ingest_records(
            &alice(),
            "press",
            json!([{"machine_id": "m1", "ts": T0 + 31 * DAY, "temp": 1.0}]).to_string(),
            false,
            "api",
        )
        .await
        .unwrap();
    let later = t
        .store
        .prune_dataset(&alice(), "press", false)
        .await
        .unwrap();
    assert_eq!(later.cutoff, Some(T0 + 21 * DAY));
    assert_eq!((later.deleted_records, later.deleted_labels), (2, 2));
    assert_eq!(later.kept_for_snapshots, 10);
    assert_eq!(verified(&t, 3).await, (true, 10));
}

async fn forced_pruning_releases_the_snapshots_it_takes_rows_from(db: Db) {
    let t = fresh(db).await;
    press(&t).await;
    snapshots(&t).await;
    let mut audit = t.audit().await;

    let report = t
        .store
        .prune_dataset(&alice(), "press", true)
        .await
        .unwrap();
    assert_eq!(
        report,
        PruneReport {
            cutoff: Some(T0 + 19 * DAY),
            deleted_records: 38,
            deleted_labels: 38,
            deleted_scores: 0,
            kept_for_snapshots: 0,
            released_snapshots: vec![1, 2],
        }
    );
    assert_eq!(old_rows(&t, "records").await, vec![]);
    assert_eq!(old_rows(&t, "record_labels").await, vec![]);
    assert_eq!(t.store.dataset_counts("press").await.unwrap(), (22, 22));
    // The released snapshots no longer verify; the one after the cutoff still does, and is kept.
    for id in [1, 2] {
        assert_eq!(verified(&t, id).await, (false, 0), "snapshot {id}");
        assert!(!t.store.get_snapshot("press", id).await.unwrap().kept);
    }
    assert_eq!(verified(&t, 3).await, (true, 10));
    assert!(t.store.get_snapshot("press", 3).await.unwrap().kept);
    let entry = audit.one("datasets.prune", "dataset:press").await;
    assert!(
        entry
            .detail
            .as_deref()
            .unwrap()
            .ends_with("; forced, snapshots released: [1, 2]"),
        "{entry:?}"
    );

    // Released snapshots protect nothing any more, even unforced.
    let again = t
        .store
        .prune_dataset(&alice(), "press", false)
        .await
        .unwrap();
    assert_eq!(again.kept_for_snapshots, 0);
    assert_eq!(again.deleted_records, 0);
}

async fn pruning_needs_retention_and_an_existing_dataset(db: Db) {
    let t = fresh(db).await;
    let schema = Schema {
        features: vec![numeric("temp")],
        labels: vec![],
    };
    t.store
        .create_dataset(&alice(), "lathe", &schema, None)
        .await
        .unwrap();
    let mut audit = t.audit().await;
    let message = assert_err!(
        t.store.prune_dataset(&alice(), "lathe", false).await,
        InvalidParameter,
        "dataset 'lathe' has no retention_days"
    );
    assert!(
        message.contains("PATCH /api/v1/datasets/lathe"),
        "{message}"
    );
    assert_err!(
        t.store.prune_dataset(&alice(), "mill", true).await,
        NotFound,
        "No dataset named 'mill'"
    );
    audit.none().await;

    // With retention but no readings: nothing to do, and said so.
    t.store
        .set_dataset_retention(&alice(), "lathe", Some(7))
        .await
        .unwrap();
    audit.take().await;
    let report = t
        .store
        .prune_dataset(&alice(), "lathe", false)
        .await
        .unwrap();
    assert_eq!(
        report,
        PruneReport {
            cutoff: None,
            deleted_records: 0,
            deleted_labels: 0,
            deleted_scores: 0,
            kept_for_snapshots: 0,
            released_snapshots: vec![],
        }
    );
    let entry = audit.one("datasets.prune", "dataset:lathe").await;
    assert_eq!(entry.detail.as_deref(), Some("no readings"));
}
