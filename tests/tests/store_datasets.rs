//! The store's machine-data history: datasets and their schema versions, ingest of readings and
//! labels (idempotent on machine and time, first write wins, every refusal dead-lettered with its
//! reason), and snapshots (time range, machines, late data excluded, digests equal across
//! databases and computed as documented, verification). Every test runs on SQLite and on
//! PostgreSQL; one compares the two databases' digests directly.

#[macro_use]
mod store_support;

use refit_registry::datasets::{
    Column, ColumnKind, IngestReport, Schema, Snapshot, SnapshotRequest, SnapshotRow, Value,
};
use refit_registry::db::now_ms;
use refit_registry::{Actor, Store};
use refit_tests::{Db, on_both_databases};
use serde_json::json;
use sha2::{Digest, Sha256};
use store_support::{TestStore, alice, first_feature_block, fresh};

/// 2023-11-14T22:13:20Z.
const T0: i64 = 1_700_000_000_000;
const T0_TEXT: &str = "2023-11-14T22:13:20Z";

fn column(name: &str, kind: ColumnKind, nullable: bool) -> Column {
    Column {
        name: name.into(),
        kind,
        nullable,
    }
}

fn numeric(name: &str) -> Column {
    column(name, ColumnKind::Numeric, false)
}

/// temp (numeric), Type (categorical), wear (numeric, nullable); label failure (numeric).
fn press_schema() -> Schema {
    Schema {
        features: vec![
            numeric("temp"),
            column("Type", ColumnKind::Categorical, false),
            column("wear", ColumnKind::Numeric, true),
        ],
        labels: vec![numeric("failure")],
    }
}

async fn press(t: &TestStore) {
    t.store
        .create_dataset(&alice(), "press", &press_schema(), None)
        .await
        .unwrap();
}

fn n(x: f64) -> Value {
    Value::Number(x)
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

fn row(machine_id: &str, ts: i64, features: Vec<Value>, labels: Option<Vec<Value>>) -> SnapshotRow {
    SnapshotRow {
        machine_id: machine_id.into(),
        ts,
        features,
        labels,
    }
}

/// Sends `records` (a JSON array) to dataset `name`.
async fn ingest(store: &Store, name: &str, records: serde_json::Value) -> IngestReport {
    store
        .ingest_records(&alice(), name, records.to_string(), false, "api")
        .await
        .unwrap()
}

/// Sends `body` as NDJSON to dataset `name`.
async fn ingest_ndjson(store: &Store, name: &str, body: &str) -> IngestReport {
    store
        .ingest_records(&alice(), name, body.to_string(), true, "api")
        .await
        .unwrap()
}

/// Sends `labels` (a JSON array) to dataset `name`.
async fn label(store: &Store, name: &str, labels: serde_json::Value) -> IngestReport {
    store
        .ingest_labels(&alice(), name, labels.to_string(), false)
        .await
        .unwrap()
}

async fn snapshot(store: &Store, name: &str, request: serde_json::Value) -> Snapshot {
    let request: SnapshotRequest = serde_json::from_value(request).unwrap();
    store
        .create_snapshot(&alice(), name, &request)
        .await
        .unwrap()
}

async fn rows_of(store: &Store, name: &str, id: i64) -> Vec<SnapshotRow> {
    store.load_snapshot(name, id).await.unwrap().2
}

/// Asserts the counts and, per rejection, its index, field and (a fragment of its) reason.
#[track_caller]
fn assert_report(
    report: &IngestReport,
    accepted: usize,
    duplicates: usize,
    rejected: &[(usize, Option<&str>, &str)],
) {
    assert_eq!(
        (report.accepted, report.duplicates, report.rejected.len()),
        (accepted, duplicates, rejected.len()),
        "{report:#?}"
    );
    for (got, (index, field, reason)) in report.rejected.iter().zip(rejected) {
        assert_eq!(
            (got.index, got.field.as_deref()),
            (*index, *field),
            "{got:?}"
        );
        assert!(
            got.reason.contains(reason),
            "reason {:?} lacks {reason:?}",
            got.reason
        );
    }
}

/// The canonical encoding of values, written from the documentation in
/// registry/src/datasets/record.rs rather than by calling it.
fn encode(values: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        match v {
            Value::Missing => out.push(0),
            Value::Number(x) => {
                out.push(1);
                out.extend_from_slice(&x.to_le_bytes());
            }
            Value::Text(s) => {
                out.push(2);
                out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
        }
    }
    out
}

/// `rows` in a snapshot's documented order: by time, then machine_id bytewise.
fn in_key_order(mut rows: Vec<SnapshotRow>) -> Vec<SnapshotRow> {
    rows.sort_by(|a, b| (a.ts, a.machine_id.as_bytes()).cmp(&(b.ts, b.machine_id.as_bytes())));
    rows
}

/// The digest of a snapshot holding `rows`, as documented in registry/src/datasets/snapshots.rs:
/// computed here independently of the store, in (ts, machine_id bytewise) order.
fn expected_digest(schema: &Schema, rows: &[SnapshotRow]) -> String {
    let rows = in_key_order(rows.to_vec());
    let mut hash = Sha256::new();
    hash.update(b"refit-snapshot-v1\n");
    hash.update(serde_json::to_vec(schema).unwrap());
    hash.update(b"\n");
    for r in &rows {
        hash.update((r.machine_id.len() as u32).to_le_bytes());
        hash.update(r.machine_id.as_bytes());
        hash.update(r.ts.to_le_bytes());
        let features = encode(&r.features);
        hash.update((features.len() as u32).to_le_bytes());
        hash.update(&features);
        match &r.labels {
            None => hash.update([0u8]),
            Some(labels) => {
                let labels = encode(labels);
                hash.update([1u8]);
                hash.update((labels.len() as u32).to_le_bytes());
                hash.update(&labels);
            }
        }
    }
    hex::encode(hash.finalize())
}

// ---------------------------------------------------------------------------------------------
// Datasets

async fn create_validates_names_and_schemas(db: Db) {
    let t = fresh(db).await;
    let mut audit = t.audit().await;
    let before = now_ms();
    let created = t
        .store
        .create_dataset(&alice(), "press-1.a_B", &press_schema(), Some(30))
        .await
        .unwrap();
    assert_eq!(created.name, "press-1.a_B");
    assert_eq!(created.schema_version, 1);
    assert_eq!(created.schema, press_schema());
    assert_eq!(created.retention_days, Some(30));
    assert!((before..=now_ms()).contains(&created.created_at));
    audit.one("datasets.create", "dataset:press-1.a_B").await;
    assert_eq!(t.store.get_dataset("press-1.a_B").await.unwrap(), created);

    assert_err!(
        t.store
            .create_dataset(&alice(), "press-1.a_B", &press_schema(), None)
            .await,
        AlreadyExists,
        "A dataset named 'press-1.a_B' already exists"
    );

    let with = |features: Vec<Column>, labels: Vec<Column>| Schema { features, labels };
    let bad_schemas = [
        (
            with(vec![numeric("temp"), numeric("temp")], vec![]),
            "features[1]: column 'temp' appears twice",
        ),
        (
            with(vec![numeric("temp")], vec![numeric("temp")]),
            "labels[0]: column 'temp' appears twice",
        ),
        (
            with(vec![numeric("temp"), numeric("machine_id")], vec![]),
            "features[1]: 'machine_id' is the record's entity key and cannot be a column",
        ),
        (
            with(vec![numeric("temp")], vec![numeric("ts")]),
            "labels[0]: 'ts' is the record's event time and cannot be a column",
        ),
        (
            with(vec![], vec![numeric("failure")]),
            "a schema needs at least one feature column",
        ),
        (
            with(vec![numeric(" ")], vec![]),
            "features[0]: column names must be 1-200 characters",
        ),
        (
            with(vec![numeric("a\nb")], vec![]),
            "without control characters",
        ),
        (
            with(vec![numeric(&"x".repeat(201))], vec![]),
            "column names must be 1-200 characters",
        ),
        (
            with(
                (0..1001).map(|i| numeric(&format!("f{i}"))).collect(),
                vec![],
            ),
            "a schema may have at most 1000 columns, got 1001",
        ),
    ];
    for (schema, fragment) in bad_schemas {
        assert_err!(
            t.store
                .create_dataset(&alice(), "other", &schema, None)
                .await,
            InvalidParameter,
            fragment
        );
    }
    let too_long = "n".repeat(101);
    for name in ["", "has space", "a/b", "ä", "x;y", too_long.as_str()] {
        let message = assert_err!(
            t.store
                .create_dataset(&alice(), name, &press_schema(), None)
                .await,
            InvalidParameter,
            "use 1-100 characters from A-Z a-z 0-9 _ - ."
        );
        assert!(message.contains(&format!("'{name}'")), "{message}");
    }
    for days in [0, -1] {
        assert_err!(
            t.store
                .create_dataset(&alice(), "other", &press_schema(), Some(days))
                .await,
            InvalidParameter,
            "retention_days must be at least 1"
        );
    }
    audit.none().await;
    let names: Vec<String> = t
        .store
        .list_datasets()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["press-1.a_B"]);
    assert_eq!(
        t.count("SELECT COUNT(*) AS n FROM dataset_schemas").await,
        1
    );

    // The longest name and the largest schema allowed.
    let longest = "n".repeat(100);
    let wide = with(
        (0..999).map(|i| numeric(&format!("f{i}"))).collect(),
        vec![numeric("y")],
    );
    let d = t
        .store
        .create_dataset(&alice(), &longest, &wide, None)
        .await
        .unwrap();
    assert_eq!(d.schema.features.len(), 999);
    assert_eq!(d.retention_days, None);
}

async fn get_list_and_counts(db: Db) {
    let t = fresh(db).await;
    assert_err!(
        t.store.get_dataset("press").await,
        NotFound,
        "No dataset named 'press'"
    );
    assert_err!(t.store.dataset_counts("press").await, NotFound, "press");
    assert_eq!(t.store.list_datasets().await.unwrap(), []);

    let narrow = Schema {
        features: vec![numeric("x")],
        labels: vec![],
    };
    let b = t
        .store
        .create_dataset(&alice(), "b-press", &press_schema(), Some(7))
        .await
        .unwrap();
    let a = t
        .store
        .create_dataset(&alice(), "a-lathe", &narrow, None)
        .await
        .unwrap();
    let upper = t
        .store
        .create_dataset(&alice(), "Z-mill", &narrow, None)
        .await
        .unwrap();
    // By name, bytewise on both databases.
    assert_eq!(
        t.store.list_datasets().await.unwrap(),
        [upper, a, b.clone()]
    );
    assert_eq!(t.store.get_dataset("b-press").await.unwrap(), b);
    assert_eq!(t.store.dataset_counts("b-press").await.unwrap(), (0, 0));

    let report = ingest(
        &t.store,
        "b-press",
        json!([
            {"machine_id": "M1", "ts": T0, "temp": 300.1, "Type": "L"},
            {"machine_id": "M1", "ts": T0 + 1000, "temp": 300.2, "Type": "L", "failure": 1},
            {"machine_id": "M2", "ts": T0, "temp": 301.0, "Type": "H", "wear": 5},
        ]),
    )
    .await;
    assert_report(&report, 3, 0, &[]);
    assert_eq!(t.store.dataset_counts("b-press").await.unwrap(), (3, 1));
    label(
        &t.store,
        "b-press",
        json!([{"machine_id": "M2", "ts": T0, "failure": 0}]),
    )
    .await;
    assert_eq!(t.store.dataset_counts("b-press").await.unwrap(), (3, 2));
    assert_eq!(t.store.dataset_counts("a-lathe").await.unwrap(), (0, 0));
}

async fn schema_updates_make_versions_and_rows_keep_theirs(db: Db) {
    let t = fresh(db).await;
    press(&t).await;
    let mut audit = t.audit().await;

    // The same schema: no new version, nothing written.
    let same = t
        .store
        .update_dataset_schema(&alice(), "press", &press_schema())
        .await
        .unwrap();
    assert_eq!(same.schema_version, 1);
    audit.none().await;
    assert_eq!(t.store.schema_versions("press").await.unwrap().len(), 1);

    assert_report(
        &ingest(
            &t.store,
            "press",
            json!([
                {"machine_id": "M1", "ts": T0, "temp": 300.0, "Type": "L", "failure": 0},
                {"machine_id": "M2", "ts": T0, "temp": 301.0, "Type": "M", "wear": 2},
            ]),
        )
        .await,
        2,
        0,
        &[],
    );
    let v1 = snapshot(&t.store, "press", json!({})).await;
    audit.take().await;

    // A new feature column: version 2, and new records are stored under it.
    let mut v2_schema = press_schema();
    v2_schema
        .features
        .push(column("rpm", ColumnKind::Numeric, true));
    let before = now_ms();
    let updated = t
        .store
        .update_dataset_schema(&alice(), "press", &v2_schema)
        .await
        .unwrap();
    assert_eq!(updated.schema_version, 2);
    assert_eq!(updated.schema, v2_schema);
    let entry = audit.one("datasets.update_schema", "dataset:press").await;
    assert_eq!(entry.detail.as_deref(), Some("version 2"));
    // Sending it again changes nothing.
    let again = t
        .store
        .update_dataset_schema(&alice(), "press", &v2_schema)
        .await
        .unwrap();
    assert_eq!(again, updated);
    audit.none().await;
    // A column only changing nullability is a different schema too.
    let mut v3_schema = v2_schema.clone();
    v3_schema.features[3].nullable = false;
    assert_eq!(
        t.store
            .update_dataset_schema(&alice(), "press", &v3_schema)
            .await
            .unwrap()
            .schema_version,
        3
    );
    assert_eq!(
        t.store
            .update_dataset_schema(&alice(), "press", &v2_schema)
            .await
            .unwrap()
            .schema_version,
        4
    );
    let versions = t.store.schema_versions("press").await.unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert_eq!(versions[0].schema, press_schema());
    assert_eq!(versions[1].schema, v2_schema);
    assert_eq!(versions[2].schema, v3_schema);
    assert_eq!(versions[3].schema, v2_schema);
    assert!(versions[1].created_at >= before);

    // An invalid schema is refused and makes no version.
    let mut bad = v2_schema.clone();
    bad.labels.push(numeric("temp"));
    assert_err!(
        t.store.update_dataset_schema(&alice(), "press", &bad).await,
        InvalidParameter,
        "labels[1]: column 'temp' appears twice"
    );
    assert_err!(
        t.store
            .update_dataset_schema(&alice(), "nope", &v2_schema)
            .await,
        NotFound,
        "No dataset named 'nope'"
    );
    assert_eq!(
        t.store.get_dataset("press").await.unwrap().schema_version,
        4
    );

    assert_report(
        &ingest(
            &t.store,
            "press",
            json!([
                {"machine_id": "M1", "ts": T0 + 1000, "temp": 302.0, "Type": "H", "rpm": 1500},
                // Already stored under version 1: a duplicate, however it is sent now.
                {"machine_id": "M2", "ts": T0, "temp": 999.0, "Type": "H", "rpm": 1},
            ]),
        )
        .await,
        1,
        1,
        &[],
    );
    assert_eq!(
        t.count(
            "SELECT CAST(SUM(count) AS BIGINT) AS n FROM record_blocks WHERE schema_version = 1"
        )
        .await,
        2
    );
    assert_eq!(
        t.count(
            "SELECT CAST(SUM(count) AS BIGINT) AS n FROM record_blocks WHERE schema_version = 4"
        )
        .await,
        1
    );

    // A snapshot of the current version holds only the row stored under it...
    let current = snapshot(&t.store, "press", json!({})).await;
    assert_eq!((current.schema_version, current.row_count), (4, 1));
    let (_, schema, rows) = t.store.load_snapshot("press", current.id).await.unwrap();
    assert_eq!(schema, v2_schema);
    assert_eq!(
        rows,
        [row(
            "M1",
            T0 + 1000,
            vec![n(302.0), text("H"), Value::Missing, n(1500.0)],
            None
        )]
    );
    // ...and one of version 1 still reads the old rows with their three columns.
    let old = snapshot(&t.store, "press", json!({"schema_version": 1})).await;
    assert_eq!((old.schema_version, old.row_count), (1, 2));
    assert_eq!(old.digest, v1.digest);
    let (_, schema, rows) = t.store.load_snapshot("press", old.id).await.unwrap();
    assert_eq!(schema, press_schema());
    let expected = [
        row(
            "M1",
            T0,
            vec![n(300.0), text("L"), Value::Missing],
            Some(vec![n(0.0)]),
        ),
        row("M2", T0, vec![n(301.0), text("M"), n(2.0)], None),
    ];
    assert_eq!(rows, expected);
    assert_eq!(old.digest, expected_digest(&press_schema(), &expected));
    assert!(t.store.verify_snapshot("press", v1.id).await.unwrap().ok);
    assert_err!(
        t.store
            .create_snapshot(
                &alice(),
                "press",
                &SnapshotRequest {
                    schema_version: Some(9),
                    ..SnapshotRequest::default()
                }
            )
            .await,
        NotFound,
        "No schema version 9"
    );
}

async fn retention_is_validated(db: Db) {
    let t = fresh(db).await;
    press(&t).await;
    let mut audit = t.audit().await;
    assert_eq!(
        t.store.get_dataset("press").await.unwrap().retention_days,
        None
    );
    let set = t
        .store
        .set_dataset_retention(&alice(), "press", Some(90))
        .await
        .unwrap();
    assert_eq!(set.retention_days, Some(90));
    audit.one("datasets.set_retention", "dataset:press").await;
    for days in [0, -5, i64::MIN] {
        assert_err!(
            t.store
                .set_dataset_retention(&alice(), "press", Some(days))
                .await,
            InvalidParameter,
            "retention_days must be at least 1"
        );
    }
    audit.none().await;
    assert_eq!(
        t.store.get_dataset("press").await.unwrap().retention_days,
        Some(90)
    );
    assert_eq!(
        t.store
            .set_dataset_retention(&alice(), "press", Some(1))
            .await
            .unwrap()
            .retention_days,
        Some(1)
    );
    let cleared = t
        .store
        .set_dataset_retention(&alice(), "press", None)
        .await
        .unwrap();
    assert_eq!(cleared.retention_days, None);
    assert_eq!(t.store.get_dataset("press").await.unwrap(), cleared);
    assert_err!(
        t.store
            .set_dataset_retention(&alice(), "nope", Some(3))
            .await,
        NotFound,
        "No dataset named 'nope'"
    );
}

// ---------------------------------------------------------------------------------------------
// Ingest

async fn ingest_counts_and_first_write_wins(db: Db) {
    let t = fresh(db).await;
    press(&t).await;
    let mut audit = t.audit().await;
    let first = json!([
        {"machine_id": "M1", "ts": T0, "temp": 300.5, "Type": "L", "wear": 0},
        {"machine_id": "M1", "ts": T0 + 1000, "temp": 300.7, "Type": "L", "wear": 1},
        {"machine_id": "M2", "ts": T0_TEXT, "temp": 310, "Type": "H"},
    ]);
    assert_report(&ingest(&t.store, "press", first.clone()).await, 3, 0, &[]);
    let entry = audit.one("datasets.ingest", "dataset:press").await;
    assert_eq!(
        entry.detail.as_deref(),
        Some("3 accepted, 0 duplicates, 0 rejected")
    );

    // The same batch again: all duplicates, nothing changes.
    assert_report(&ingest(&t.store, "press", first).await, 0, 3, &[]);
    let entry = audit.one("datasets.ingest", "dataset:press").await;
    assert_eq!(
        entry.detail.as_deref(),
        Some("0 accepted, 3 duplicates, 0 rejected")
    );
    // Different values for stored keys (the time written another way) are duplicates too, and the
    // stored rows keep their first values; the one new key is stored.
    let report = ingest(
        &t.store,
        "press",
        json!([
            {"machine_id": "M1", "ts": "2023-11-14T23:13:21+01:00", "temp": 999.0, "Type": "H", "wear": 99},
            {"machine_id": "M2", "ts": T0, "temp": 1.0, "Type": "M", "wear": null, "failure": 1},
            {"machine_id": "M3", "ts": T0, "temp": 305.0, "Type": "M", "failure": 0},
        ]),
    )
    .await;
    assert_report(&report, 1, 2, &[]);
    let entry = audit.one("datasets.ingest", "dataset:press").await;
    assert_eq!(
        entry.detail.as_deref(),
        Some("1 accepted, 2 duplicates, 0 rejected")
    );
    assert_eq!(t.store.dataset_counts("press").await.unwrap(), (4, 1));

    let snap = snapshot(&t.store, "press", json!({})).await;
    assert_eq!(snap.row_count, 4);
    let expected = [
        row("M1", T0, vec![n(300.5), text("L"), n(0.0)], None),
        row("M1", T0 + 1000, vec![n(300.7), text("L"), n(1.0)], None),
        row("M2", T0, vec![n(310.0), text("H"), Value::Missing], None),
        row(
            "M3",
            T0,
            vec![n(305.0), text("M"), Value::Missing],
            Some(vec![n(0.0)]),
        ),
    ];
    assert_eq!(
        rows_of(&t.store, "press", snap.id).await,
        in_key_order(expected.to_vec())
    );
    assert_eq!(snap.digest, expected_digest(&press_schema(), &expected));
    assert_eq!(t.store.dead_letters("press", 100, None).await.unwrap(), []);

    // An empty batch is a no-op that still answers.
    assert_report(&ingest(&t.store, "press", json!([])).await, 0, 0, &[]);
    assert_report(&ingest_ndjson(&t.store, "press", "\n\n").await, 0, 0, &[]);
    assert_err!(
        t.store
            .ingest_records(&alice(), "nope", "[]".into(), false, "api")
            .await,
        NotFound,
        "No dataset named 'nope'"
    );
}

async fn within_a_batch_the_first_record_wins(db: Db) {
    let t = fresh(db).await;
    press(&t).await;
    let report = ingest(
        &t.store,
        "press",
        json!([
            {"machine_id": "M1", "ts": T0, "temp": 1.0, "Type": "L"},
            {"machine_id": "M1", "ts": T0, "temp": 2.0, "Type": "H", "failure": 1},
            {"machine_id": "M2", "ts": T0, "temp": 3.0, "Type": "L", "failure": 0},
            {"machine_id": "M2", "ts": T0, "temp": 4.0, "Type": "H", "failure": 1},
            {"machine_id": "M1", "ts": T0, "temp": 5.0, "Type": "M", "failure": 1},
        ]),
    )
    .await;
    assert_report(&report, 2, 3, &[]);
    // A duplicate changes nothing: not the features, and not the labels either (M1's first
    // record had none, so M1 has none).
    assert_eq!(t.store.dataset_counts("press").await.unwrap(), (2, 1));
    let snap = snapshot(&t.store, "press", json!({})).await;
    assert_eq!(
        rows_of(&t.store, "press", snap.id).await,
        [
            row("M1", T0, vec![n(1.0), text("L"), Value::Missing], None),
            row(
                "M2",
                T0,
                vec![n(3.0), text("L"), Value::Missing],
                Some(vec![n(0.0)])
            ),
        ]
    );
}

async fn bad_records_are_rejected_one_by_one(db: Db) {
    let t = fresh(db).await;
    press(&t).await;
    let future = now_ms() + 2 * 24 * 3600 * 1000;
    let soon = now_ms() + 3600 * 1000;
    // Raw JSON text, so the dead letters can be compared with exactly what was sent.
    let records = [
        r#"{"machine_id": "ok1", "ts": 1700000000000, "temp": 1, "Type": "L"}"#.to_string(),
        r#"{"machine_id": "M", "ts": 1700000000000, "Type": "L"}"#.to_string(),
        r#"{"machine_id": "M", "ts": 1700000000000, "temp": 1, "Type": "L", "speed": 3}"#
            .to_string(),
        r#"{"machine_id": "M", "ts": 1700000000000, "temp": true, "Type": "L"}"#.to_string(),
        r#"{"machine_id": "M", "ts": 1700000000000, "temp": "NaN", "Type": "L"}"#.to_string(),
        r#"{"machine_id": "M", "ts": "last tuesday", "temp": 1, "Type": "L"}"#.to_string(),
        format!(r#"{{"machine_id": "M", "ts": {future}, "temp": 1, "Type": "L"}}"#),
        r#"{"ts": 1700000000000, "temp": 1, "Type": "L"}"#.to_string(),
        r#"{"machine_id": "M", "ts": 1700000000000, "temp": 1, "Type": 2.5}"#.to_string(),
        r#"{"machine_id": "M", "ts": 1700000000000, "temp": null, "Type": "L"}"#.to_string(),
        r#"{"machine_id": "M", "ts": 1700000000000, "temp": 1, "Type": "L", "failure": "yes"}"#
            .to_string(),
        r#"{"machine_id": "", "ts": 1700000000000, "temp": 1, "Type": "L"}"#.to_string(),
        r#"{"machine_id": "M", "ts": -1, "temp": 1, "Type": "L"}"#.to_string(),
        r#"[1, 2]"#.to_string(),
        format!(r#"{{"machine_id": "ok2", "ts": {soon}, "temp": 2, "Type": "H", "wear": 0.5}}"#),
    ];
    let body = format!("[{}]", records.join(",\n "));
    let report = t
        .store
        .ingest_records(&alice(), "press", body, false, "api")
        .await
        .unwrap();
    let expected: [(usize, Option<&str>, &str); 13] = [
        (1, Some("temp"), "missing value for 'temp'"),
        (
            2,
            Some("speed"),
            "unknown field: 'speed' is not a column of the dataset's schema",
        ),
        (
            3,
            Some("temp"),
            "expected a number or string, got a boolean",
        ),
        (
            4,
            Some("temp"),
            "which does not accept missing values (NaN counts as missing)",
        ),
        (5, Some("ts"), "ts \"last tuesday\" is not an RFC 3339 time"),
        (6, Some("ts"), "is too far in the future"),
        (7, Some("machine_id"), "missing machine_id"),
        (8, Some("Type"), "expected a string category, got a number"),
        (9, Some("temp"), "missing value for 'temp'"),
        (
            10,
            Some("failure"),
            "expected a number, got the string \"yes\"",
        ),
        (
            11,
            Some("machine_id"),
            "machine_id must be 1-256 characters",
        ),
        (12, Some("ts"), "ts must not be before 1970-01-01"),
        (13, None, "not a JSON object"),
    ];
    assert_report(&report, 2, 0, &expected);

    // Each refusal is a dead letter with what was sent; the valid rest is stored.
    let mut letters = t.store.dead_letters("press", 100, None).await.unwrap();
    letters.reverse();
    assert_eq!(letters.len(), 13);
    for (letter, (index, field, reason)) in letters.iter().zip(&expected) {
        assert_eq!(letter.record_index, *index as i64);
        assert_eq!(letter.field.as_deref(), *field);
        assert_eq!(
            letter.reason,
            report.rejected[letter.record_index as usize - 1].reason
        );
        assert!(letter.reason.contains(reason), "{letter:?}");
        assert_eq!(letter.source, "api");
        assert_eq!(letter.raw, records[*index]);
        assert!(letter.received_at <= now_ms());
    }
    let snap = snapshot(&t.store, "press", json!({})).await;
    assert_eq!(
        rows_of(&t.store, "press", snap.id).await,
        [
            row("ok1", T0, vec![n(1.0), text("L"), Value::Missing], None),
            row("ok2", soon, vec![n(2.0), text("H"), n(0.5)], None),
        ]
    );

    // Paging newest first.
    let newest = t.store.dead_letters("press", 2, None).await.unwrap();
    assert_eq!(
        newest.iter().map(|l| l.record_index).collect::<Vec<_>>(),
        [13, 12]
    );
    let older = t
        .store
        .dead_letters("press", 3, Some(newest[1].id))
        .await
        .unwrap();
    assert_eq!(
        older.iter().map(|l| l.record_index).collect::<Vec<_>>(),
        [11, 10, 9]
    );
}

async fn ndjson_lines_are_records(db: Db) {
    let t = fresh(db).await;
    press(&t).await;
    let body = concat!(
        "{\"machine_id\": \"M1\", \"ts\": 1700000000000, \"temp\": 1, \"Type\": \"L\"}\n",
        "{\"machine_id\": \"M1\", \"ts\": 1700000001000, \"temp\": 2, \"Type\": \"L\", \"failure\": 1}\r\n",
        "{\"machine_id\": \"M2\", \"ts\": 17000\n",
        "not json at all\n",
        "\n",
        "{\"machine_id\": \"M2\", \"ts\": \"2023-11-14T22:13:20.250Z\", \"temp\": 3, \"Type\": \"M\"}\n",
        "{\"machine_id\": \"M3\", \"ts\": 1700000000000, \"temp\": 4, \"Type\": \"M\"} {}\n",
        "{\"machine_id\": \"M1\", \"ts\": 1700000000000, \"temp\": 9, \"Type\": \"H\"}",
    );
    let report = ingest_ndjson(&t.store, "press", body).await;
    // Indexes are line numbers minus one (the blank line counts).
    assert_report(
        &report,
        3,
        1,
        &[
            (2, None, "not a JSON object"),
            (3, None, "not a JSON object"),
            (6, None, "not a JSON object"),
        ],
    );
    let letters = t.store.dead_letters("press", 10, None).await.unwrap();
    assert_eq!(
        letters
            .iter()
            .map(|l| (l.record_index, l.raw.as_str()))
            .collect::<Vec<_>>(),
        [
            (
                6,
                "{\"machine_id\": \"M3\", \"ts\": 1700000000000, \"temp\": 4, \"Type\": \"M\"} {}"
            ),
            (3, "not json at all"),
            (2, "{\"machine_id\": \"M2\", \"ts\": 17000"),
        ]
    );
    let snap = snapshot(&t.store, "press", json!({})).await;
    assert_eq!(
        rows_of(&t.store, "press", snap.id).await,
        [
            row("M1", T0, vec![n(1.0), text("L"), Value::Missing], None),
            row(
                "M2",
                T0 + 250,
                vec![n(3.0), text("M"), Value::Missing],
                None
            ),
            row(
                "M1",
                T0 + 1000,
                vec![n(2.0), text("L"), Value::Missing],
                Some(vec![n(1.0)])
            ),
        ]
    );
}

async fn a_body_that_is_not_an_array_stores_nothing(db: Db) {
    let t = fresh(db).await;
    press(&t).await;
    let mut audit = t.audit().await;
    let one = r#"{"machine_id": "M1", "ts": 1700000000000, "temp": 1, "Type": "L"}"#;
    for body in [
        one.to_string(),
        format!("[{one}, {one}"),
        format!("[{one}] trailing"),
        "".to_string(),
        "null".to_string(),
    ] {
        assert_err!(
            t.store
                .ingest_records(&alice(), "press", body, false, "api")
                .await,
            InvalidParameter,
            "the body is not a JSON array of records"
        );
    }
    audit.none().await;
    assert_eq!(t.store.dataset_counts("press").await.unwrap(), (0, 0));
    assert_eq!(t.store.dead_letters("press", 10, None).await.unwrap(), []);
    assert_eq!(t.count("SELECT next_seq - 1 AS n FROM datasets").await, 0);
}

async fn nullable_features_accept_null(db: Db) {
    let t = fresh(db).await;
    let schema = Schema {
        features: vec![
            numeric("temp"),
            column("wear", ColumnKind::Numeric, true),
            column("shift", ColumnKind::Categorical, true),
        ],
        labels: vec![
            numeric("failure"),
            column("mode", ColumnKind::Categorical, false),
        ],
    };
    t.store
        .create_dataset(&alice(), "press", &schema, None)
        .await
        .unwrap();
    let report = ingest(
        &t.store,
        "press",
        json!([
            {"machine_id": "M1", "ts": T0, "temp": 1, "wear": null, "shift": null},
            {"machine_id": "M1", "ts": T0 + 1, "temp": 2},
            {"machine_id": "M1", "ts": T0 + 2, "temp": 3, "wear": -0.5, "shift": "night"},
            {"machine_id": "M1", "ts": T0 + 3, "temp": null, "wear": 1},
            // Labels are always nullable: one of two is enough to store them.
            {"machine_id": "M1", "ts": T0 + 4, "temp": 5, "failure": null, "mode": "TWF"},
            {"machine_id": "M1", "ts": T0 + 5, "temp": 6, "failure": null, "mode": null},
            // Integers are accepted as categories, as their decimal text.
            {"machine_id": 42, "ts": T0, "temp": 7, "shift": 3},
        ]),
    )
    .await;
    assert_report(
        &report,
        6,
        0,
        &[(3, Some("temp"), "missing value for 'temp'")],
    );
    let snap = snapshot(&t.store, "press", json!({})).await;
    let expected = [
        row("42", T0, vec![n(7.0), Value::Missing, text("3")], None),
        row("M1", T0, vec![n(1.0), Value::Missing, Value::Missing], None),
        row(
            "M1",
            T0 + 1,
            vec![n(2.0), Value::Missing, Value::Missing],
            None,
        ),
        row("M1", T0 + 2, vec![n(3.0), n(-0.5), text("night")], None),
        row(
            "M1",
            T0 + 4,
            vec![n(5.0), Value::Missing, Value::Missing],
            Some(vec![Value::Missing, text("TWF")]),
        ),
        row(
            "M1",
            T0 + 5,
            vec![n(6.0), Value::Missing, Value::Missing],
            None,
        ),
    ];
    assert_eq!(rows_of(&t.store, "press", snap.id).await, expected);
    assert_eq!(snap.digest, expected_digest(&schema, &expected));
}

async fn labels_inline_and_late(db: Db) {
    let t = fresh(db).await;
    press(&t).await;
    assert_report(
        &ingest(
            &t.store,
            "press",
            json!([
                {"machine_id": "M1", "ts": T0, "temp": 1, "Type": "L", "failure": 1},
                {"machine_id": "M1", "ts": T0 + 1000, "temp": 2, "Type": "L"},
                {"machine_id": "M2", "ts": T0, "temp": 3, "Type": "H"},
                {"machine_id": "M3", "ts": T0, "temp": 4, "Type": "H"},
            ]),
        )
        .await,
        4,
        0,
        &[],
    );
    assert_eq!(t.store.dataset_counts("press").await.unwrap(), (4, 1));
    let mut audit = t.audit().await;

    let report = label(
        &t.store,
        "press",
        json!([
            // A reading that does not exist.
            {"machine_id": "M9", "ts": T0, "failure": 1},
            // The same label as stored inline: a duplicate.
            {"machine_id": "M1", "ts": "2023-11-14T22:13:20Z", "failure": 1},
            // A different one: refused.
            {"machine_id": "M1", "ts": T0, "failure": 0},
            // New labels.
            {"machine_id": "M1", "ts": T0 + 1000, "failure": 0},
            {"machine_id": "M2", "ts": T0, "failure": 1},
            // The same new label twice in one batch: once stored, once a duplicate.
            {"machine_id": "M2", "ts": T0, "failure": 1},
            // Features belong to the records endpoint.
            {"machine_id": "M3", "ts": T0, "temp": 5, "failure": 1},
            // A label needs a value.
            {"machine_id": "M3", "ts": T0},
            {"machine_id": "M3", "ts": T0, "failure": "broken"},
        ]),
    )
    .await;
    assert_report(
        &report,
        2,
        2,
        &[
            (
                0,
                None,
                "no reading for machine_id 'M9' at 2023-11-14T22:13:20Z",
            ),
            (
                2,
                None,
                "labels for this reading are already stored with other values",
            ),
            (
                6,
                Some("temp"),
                "unknown field: 'temp' is a feature; send readings to the records endpoint",
            ),
            (7, None, "the record carries no label value"),
            (
                8,
                Some("failure"),
                "expected a number, got the string \"broken\"",
            ),
        ],
    );
    let entry = audit.one("datasets.ingest_labels", "dataset:press").await;
    assert_eq!(
        entry.detail.as_deref(),
        Some("2 accepted, 2 duplicates, 5 rejected")
    );
    let mut letters = t.store.dead_letters("press", 10, None).await.unwrap();
    letters.reverse();
    assert_eq!(
        letters
            .iter()
            .map(|l| (l.source.as_str(), l.record_index, l.field.as_deref()))
            .collect::<Vec<_>>(),
        [
            ("labels", 0, None),
            ("labels", 2, None),
            ("labels", 6, Some("temp")),
            ("labels", 7, None),
            ("labels", 8, Some("failure")),
        ]
    );
    // Refused after parsing: the key and the labels refused, as JSON.
    let raw = |i: usize| serde_json::from_str::<serde_json::Value>(&letters[i].raw).unwrap();
    assert_eq!(
        raw(0),
        json!({"machine_id": "M9", "ts": T0, "failure": 1.0})
    );
    assert_eq!(
        raw(1),
        json!({"machine_id": "M1", "ts": T0, "failure": 0.0})
    );
    assert_eq!(
        letters[2].raw,
        json!({"machine_id": "M3", "ts": T0, "temp": 5, "failure": 1}).to_string()
    );

    // Two different labels for one unlabelled reading in one batch: the first is stored, the
    // second refused, like a different label sent later.
    let report = label(
        &t.store,
        "press",
        json!([
            {"machine_id": "M3", "ts": T0, "failure": 1},
            {"machine_id": "M3", "ts": T0, "failure": 0},
        ]),
    )
    .await;
    assert_report(
        &report,
        1,
        0,
        &[(
            1,
            None,
            "labels for this reading are already stored with other values",
        )],
    );
    assert_eq!(t.store.dataset_counts("press").await.unwrap(), (4, 4));

    let snap = snapshot(&t.store, "press", json!({})).await;
    assert_eq!(
        rows_of(&t.store, "press", snap.id).await,
        [
            row(
                "M1",
                T0,
                vec![n(1.0), text("L"), Value::Missing],
                Some(vec![n(1.0)])
            ),
            row(
                "M2",
                T0,
                vec![n(3.0), text("H"), Value::Missing],
                Some(vec![n(1.0)])
            ),
            row(
                "M3",
                T0,
                vec![n(4.0), text("H"), Value::Missing],
                Some(vec![n(1.0)])
            ),
            row(
                "M1",
                T0 + 1000,
                vec![n(2.0), text("L"), Value::Missing],
                Some(vec![n(0.0)])
            ),
        ]
    );

    // NDJSON works for labels too.
    assert_report(
        &t.store
            .ingest_labels(
                &alice(),
                "press",
                "{\"machine_id\": \"M2\", \"ts\": 1700000000000, \"failure\": 1}\nnope\n".into(),
                true,
            )
            .await
            .unwrap(),
        0,
        1,
        &[(1, None, "not a JSON object")],
    );
}

async fn labels_for_rows_of_an_older_schema_are_refused(db: Db) {
    let t = fresh(db).await;
    press(&t).await;
    ingest(
        &t.store,
        "press",
        json!([{"machine_id": "M1", "ts": T0, "temp": 1, "Type": "L"}]),
    )
    .await;
    let mut v2 = press_schema();
    v2.labels
        .push(column("mode", ColumnKind::Categorical, true));
    t.store
        .update_dataset_schema(&alice(), "press", &v2)
        .await
        .unwrap();
    ingest(
        &t.store,
        "press",
        json!([{"machine_id": "M1", "ts": T0 + 1000, "temp": 2, "Type": "L"}]),
    )
    .await;
    let report = label(
        &t.store,
        "press",
        json!([
            {"machine_id": "M1", "ts": T0, "failure": 1},
            {"machine_id": "M1", "ts": T0 + 1000, "failure": 1, "mode": "HDF"},
        ]),
    )
    .await;
    assert_report(
        &report,
        1,
        0,
        &[(
            0,
            None,
            "the reading was stored under schema version 1; labels follow version 2",
        )],
    );
    assert_eq!(t.store.dataset_counts("press").await.unwrap(), (2, 1));
    let old = snapshot(&t.store, "press", json!({"schema_version": 1})).await;
    assert_eq!(
        rows_of(&t.store, "press", old.id).await,
        [row("M1", T0, vec![n(1.0), text("L"), Value::Missing], None)]
    );
    let new = snapshot(&t.store, "press", json!({})).await;
    assert_eq!(
        rows_of(&t.store, "press", new.id).await,
        [row(
            "M1",
            T0 + 1000,
            vec![n(2.0), text("L"), Value::Missing],
            Some(vec![n(1.0), text("HDF")])
        )]
    );
}

// ---------------------------------------------------------------------------------------------
// Snapshots

/// Machines whose bytewise order differs from most locales' collation order.
const MACHINES: [&str; 8] = ["m1", "M2", "M10", "Z", "M_1", "a", "M-1", "Ä1"];

/// The same content, sent in an order and batches unlike the stored order: every machine of
/// [`MACHINES`] at three times, some labelled inline, some labelled later, one categorical value
/// with non-ASCII text, and a missing nullable value.
async fn ingest_mixed_history(store: &Store) -> (Schema, Vec<SnapshotRow>) {
    let schema = Schema {
        features: vec![
            numeric("temp"),
            column("Type", ColumnKind::Categorical, false),
            column("wear", ColumnKind::Numeric, true),
        ],
        labels: vec![
            numeric("failure"),
            column("mode", ColumnKind::Categorical, true),
        ],
    };
    store
        .create_dataset(&Actor::new("alice"), "mixed", &schema, None)
        .await
        .unwrap();
    let mut expected = Vec::new();
    let mut lines = Vec::new();
    let mut late = Vec::new();
    for (m, machine) in MACHINES.iter().enumerate() {
        for k in (0..3i64).rev() {
            let ts = T0 + k * 60_000;
            let temp = 290.0 + m as f64 * 1.25 + k as f64 / 8.0;
            let kind = ["L", "M", "Hé"][(m + k as usize) % 3];
            let wear = (k != 1).then_some(m as f64 * 10.0 + k as f64);
            let mut record = json!({"machine_id": machine, "ts": ts, "temp": temp, "Type": kind});
            if let Some(w) = wear {
                record["wear"] = json!(w);
            }
            let labels = match (m + k as usize) % 3 {
                0 => {
                    record["failure"] = json!(1);
                    record["mode"] = json!("TWF");
                    Some(vec![n(1.0), text("TWF")])
                }
                1 => {
                    late.push(json!({"machine_id": machine, "ts": ts, "failure": 0}));
                    Some(vec![n(0.0), Value::Missing])
                }
                _ => None,
            };
            lines.push(record.to_string());
            expected.push(row(
                machine,
                ts,
                vec![n(temp), text(kind), wear.map_or(Value::Missing, n)],
                labels,
            ));
        }
    }
    let (a, b) = lines.split_at(lines.len() / 2);
    assert_report(
        &ingest_ndjson(store, "mixed", &b.join("\n")).await,
        b.len(),
        0,
        &[],
    );
    assert_report(
        &ingest_ndjson(store, "mixed", &a.join("\n")).await,
        a.len(),
        0,
        &[],
    );
    let report = label(store, "mixed", serde_json::Value::Array(late.clone())).await;
    assert_report(&report, late.len(), 0, &[]);
    (schema, in_key_order(expected))
}

/// The key property: the same content makes the same digest on SQLite and on PostgreSQL, and
/// it is the digest the documentation describes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digests_are_identical_on_sqlite_and_postgres() {
    let mut results = Vec::new();
    for db in [Db::Sqlite, Db::Postgres] {
        let t = fresh(db).await;
        let (schema, expected) = ingest_mixed_history(&t.store).await;
        let all = snapshot(&t.store, "mixed", json!({})).await;
        let (_, _, rows) = t.store.load_snapshot("mixed", all.id).await.unwrap();
        assert_eq!(rows, expected, "{db:?}");
        assert_eq!(all.row_count, 24);
        assert_eq!(all.digest, expected_digest(&schema, &expected), "{db:?}");
        let part = snapshot(
            &t.store,
            "mixed",
            json!({"from": T0 + 60_000, "machines": ["M_1", "M10", "Ä1", "M-1"]}),
        )
        .await;
        assert_eq!(part.row_count, 8);
        let part_rows = rows_of(&t.store, "mixed", part.id).await;
        assert_eq!(
            part_rows
                .iter()
                .map(|r| r.machine_id.as_str())
                .collect::<Vec<_>>(),
            ["M-1", "M10", "M_1", "Ä1", "M-1", "M10", "M_1", "Ä1"]
        );
        results.push((all.digest, all.row_count, part.digest, part.row_count, rows));
    }
    assert_eq!(results[0], results[1]);
}

async fn identical_content_has_one_digest_and_one_value_changes_it(db: Db) {
    let t = fresh(db).await;
    for name in ["a", "b", "c"] {
        t.store
            .create_dataset(&alice(), name, &press_schema(), None)
            .await
            .unwrap();
    }
    let records = json!([
        {"machine_id": "M1", "ts": T0, "temp": 300.1, "Type": "L", "failure": 0},
        {"machine_id": "M1", "ts": T0 + 1000, "temp": 300.2, "Type": "L"},
        {"machine_id": "M2", "ts": T0, "temp": 301.0, "Type": "H", "wear": 3},
    ]);
    ingest(&t.store, "a", records.clone()).await;
    // The same content in another order, one record at a time, the label sent later.
    let mut reversed = records.as_array().unwrap().clone();
    reversed.reverse();
    for mut r in reversed {
        r.as_object_mut().unwrap().remove("failure");
        ingest(&t.store, "b", json!([r])).await;
    }
    label(
        &t.store,
        "b",
        json!([{"machine_id": "M1", "ts": T0, "failure": 0}]),
    )
    .await;
    // One value differs in the last bit.
    let mut changed = records.clone();
    changed[2]["temp"] = json!(f64::from_bits(301.0f64.to_bits() + 1));
    ingest(&t.store, "c", changed).await;

    let a = snapshot(&t.store, "a", json!({})).await;
    let b = snapshot(&t.store, "b", json!({})).await;
    let c = snapshot(&t.store, "c", json!({})).await;
    assert_eq!(a.row_count, 3);
    assert_eq!(a.digest, b.digest);
    assert_eq!(
        a.digest,
        expected_digest(
            &press_schema(),
            &[
                row(
                    "M1",
                    T0,
                    vec![n(300.1), text("L"), Value::Missing],
                    Some(vec![n(0.0)])
                ),
                row(
                    "M1",
                    T0 + 1000,
                    vec![n(300.2), text("L"), Value::Missing],
                    None
                ),
                row("M2", T0, vec![n(301.0), text("H"), n(3.0)], None),
            ]
        )
    );
    assert_eq!(c.row_count, 3);
    assert_ne!(c.digest, a.digest);
    // A second snapshot of unchanged content has the same digest.
    assert_eq!(snapshot(&t.store, "a", json!({})).await.digest, a.digest);

    // Labels are content: without its label the same readings hash differently; once the label
    // arrives, the digest is the one above.
    t.store
        .create_dataset(&alice(), "d", &press_schema(), None)
        .await
        .unwrap();
    let mut unlabelled = records.clone();
    unlabelled[0].as_object_mut().unwrap().remove("failure");
    ingest(&t.store, "d", unlabelled).await;
    let d = snapshot(&t.store, "d", json!({})).await;
    assert_eq!(d.row_count, 3);
    assert_ne!(d.digest, a.digest);
    label(
        &t.store,
        "d",
        json!([{"machine_id": "M1", "ts": T0, "failure": 0}]),
    )
    .await;
    assert_eq!(snapshot(&t.store, "d", json!({})).await.digest, a.digest);
    // The range and machines are not part of the content: a narrower request selecting the
    // same rows has the same digest.
    let same_rows = snapshot(
        &t.store,
        "a",
        json!({"from": T0, "to": T0 + 1001, "machines": ["M2", "M1"]}),
    )
    .await;
    assert_eq!(same_rows.digest, a.digest);
}

async fn time_range_and_machines_select_rows(db: Db) {
    let t = fresh(db).await;
    press(&t).await;
    let mut records = Vec::new();
    for machine in ["M1", "M2", "M3"] {
        for k in 0..4 {
            records
                .push(json!({"machine_id": machine, "ts": T0 + k * 1000, "temp": k, "Type": "L"}));
        }
    }
    ingest(&t.store, "press", serde_json::Value::Array(records)).await;
    let mut audit = t.audit().await;

    let keys = |rows: Vec<SnapshotRow>| {
        rows.into_iter()
            .map(|r| (r.machine_id, r.ts - T0))
            .collect::<Vec<_>>()
    };
    // [from, to): `from` included, `to` excluded; RFC 3339 (any offset) and ms both accepted.
    for request in [
        json!({"from": T0 + 1000, "to": T0 + 3000}),
        json!({"from": "2023-11-14T22:13:21Z", "to": "2023-11-14T22:13:23Z"}),
        json!({"from": "2023-11-14T23:13:21+01:00", "to": T0 + 3000}),
        json!({"from": "2023-11-14T22:13:20.001Z", "to": "2023-11-14T22:13:22.001Z"}),
    ] {
        let s = snapshot(&t.store, "press", request.clone()).await;
        assert_eq!(s.row_count, 6, "{request}");
        assert_eq!(
            keys(rows_of(&t.store, "press", s.id).await),
            [
                ("M1".to_string(), 1000),
                ("M2".to_string(), 1000),
                ("M3".to_string(), 1000),
                ("M1".to_string(), 2000),
                ("M2".to_string(), 2000),
                ("M3".to_string(), 2000),
            ],
            "{request}"
        );
    }
    let s = snapshot(
        &t.store,
        "press",
        json!({"from": T0 + 1000, "to": T0 + 3000}),
    )
    .await;
    assert_eq!((s.ts_from, s.ts_to), (T0 + 1000, T0 + 3000));
    assert_eq!(s.dataset, "press");
    assert_eq!(s.created_by, "alice");
    assert!(s.kept);
    assert_eq!(s.max_seq, 12);
    let entry = audit.take().await;
    assert_eq!(entry.len(), 5);
    assert_eq!(entry[4].action, "datasets.snapshot");
    assert_eq!(
        entry[4].detail.as_deref(),
        Some(format!("snapshot {}: 6 rows, {}", s.id, s.digest).as_str())
    );

    // Defaults: all of time, every machine.
    let all = snapshot(&t.store, "press", json!({})).await;
    assert_eq!((all.ts_from, all.ts_to, all.row_count), (0, i64::MAX, 12));
    assert_eq!(all.machines, None);
    let open_end = snapshot(&t.store, "press", json!({"from": T0 + 3000})).await;
    assert_eq!(
        keys(rows_of(&t.store, "press", open_end.id).await),
        [
            ("M1".into(), 3000),
            ("M2".into(), 3000),
            ("M3".into(), 3000)
        ]
    );

    // Machines: listed ones only, stored sorted and without repeats; unknown ones match nothing.
    let some = snapshot(
        &t.store,
        "press",
        json!({"machines": ["M3", "M1", "M3", "M404"], "to": T0 + 2000}),
    )
    .await;
    assert_eq!(
        some.machines,
        Some(vec!["M1".to_string(), "M3".into(), "M404".into()])
    );
    assert_eq!(
        keys(rows_of(&t.store, "press", some.id).await),
        [
            ("M1".into(), 0),
            ("M3".into(), 0),
            ("M1".into(), 1000),
            ("M3".into(), 1000)
        ]
    );
    assert_eq!(t.store.get_snapshot("press", some.id).await.unwrap(), some);
    let none = snapshot(&t.store, "press", json!({"machines": ["M404"]})).await;
    assert_eq!(none.row_count, 0);
    assert_eq!(none.digest, expected_digest(&press_schema(), &[]));
    assert!(t.store.verify_snapshot("press", none.id).await.unwrap().ok);

    // Newest first.
    let listed = t.store.list_snapshots("press", 100).await.unwrap();
    assert_eq!(listed.len(), 9);
    assert_eq!(listed[0], none);
    assert_eq!(listed[1], some);
    assert_eq!(t.store.list_snapshots("press", 2).await.unwrap().len(), 2);
}

async fn snapshot_requests_are_validated(db: Db) {
    let t = fresh(db).await;
    press(&t).await;
    let mut audit = t.audit().await;
    let request =
        |from: Option<i64>, to: Option<i64>, machines: Option<Vec<String>>| SnapshotRequest {
            from,
            to,
            machines,
            ..SnapshotRequest::default()
        };
    for (from, to) in [
        (Some(T0), Some(T0)),
        (Some(T0 + 1), Some(T0)),
        (None, Some(0)),
    ] {
        assert_err!(
            t.store
                .create_snapshot(&alice(), "press", &request(from, to, None))
                .await,
            InvalidParameter,
            "the time range is empty"
        );
    }
    assert_err!(
        t.store
            .create_snapshot(&alice(), "press", &request(None, None, Some(vec![])))
            .await,
        InvalidParameter,
        "'machines' must list 1 to 10,000 machines"
    );
    let many = (0..10_001).map(|i| format!("M{i}")).collect();
    assert_err!(
        t.store
            .create_snapshot(&alice(), "press", &request(None, None, Some(many)))
            .await,
        InvalidParameter,
        "'machines' must list 1 to 10,000 machines"
    );
    assert_err!(
        t.store
            .create_snapshot(&alice(), "nope", &SnapshotRequest::default())
            .await,
        NotFound,
        "No dataset named 'nope'"
    );
    audit.none().await;
    assert_eq!(t.count("SELECT COUNT(*) AS n FROM snapshots").await, 0);

    // Request bodies: unknown fields and unreadable times are refused when parsed.
    for (body, fragment) in [
        (json!({"form": T0}), "unknown field `form`"),
        (json!({"from": "yesterday"}), "is not an RFC 3339 time"),
        (json!({"to": 1.5}), "RFC 3339 string or an integer"),
        (json!({"from": -1}), "must not be before 1970-01-01"),
    ] {
        let err = serde_json::from_value::<SnapshotRequest>(body.clone()).unwrap_err();
        assert!(err.to_string().contains(fragment), "{body}: {err}");
    }
    let parsed: SnapshotRequest =
        serde_json::from_value(json!({"from": T0_TEXT, "to": null, "schema_version": 1})).unwrap();
    assert_eq!(
        parsed,
        SnapshotRequest {
            from: Some(T0),
            to: None,
            machines: None,
            schema_version: Some(1),
            ..SnapshotRequest::default()
        }
    );

    let s = snapshot(&t.store, "press", json!({})).await;
    assert_err!(
        t.store.get_snapshot("press", s.id + 1).await,
        NotFound,
        &format!("No snapshot {} of dataset 'press'", s.id + 1)
    );
    assert_err!(
        t.store.verify_snapshot("press", s.id + 1).await,
        NotFound,
        "No snapshot"
    );
    match t.store.snapshot_rows("press", s.id + 1).await {
        Err(refit_registry::Error::NotFound(m)) => assert!(m.contains("No snapshot"), "{m}"),
        Err(e) => panic!("expected NotFound, got {e:?}"),
        Ok(_) => panic!("rows of a snapshot that does not exist"),
    }
    // A snapshot belongs to its dataset.
    t.store
        .create_dataset(&alice(), "other", &press_schema(), None)
        .await
        .unwrap();
    assert_err!(
        t.store.get_snapshot("other", s.id).await,
        NotFound,
        &format!("No snapshot {} of dataset 'other'", s.id)
    );
}

async fn late_records_and_labels_do_not_change_a_snapshot(db: Db) {
    let t = fresh(db).await;
    press(&t).await;
    ingest(
        &t.store,
        "press",
        json!([
            {"machine_id": "M1", "ts": T0, "temp": 1, "Type": "L"},
            {"machine_id": "M1", "ts": T0 + 2000, "temp": 2, "Type": "L"},
            {"machine_id": "M2", "ts": T0 + 1000, "temp": 3, "Type": "H", "failure": 1},
        ]),
    )
    .await;
    let range = json!({"from": T0, "to": T0 + 10_000});
    let before = snapshot(&t.store, "press", range.clone()).await;
    let rows_before = rows_of(&t.store, "press", before.id).await;
    assert_eq!(before.row_count, 3);
    assert_eq!(before.max_seq, 3);

    // A reading with a time inside the range arrives late, and labels for rows in it.
    assert_report(
        &ingest(
            &t.store,
            "press",
            json!([
                {"machine_id": "M1", "ts": T0 + 1000, "temp": 9, "Type": "M", "failure": 0},
                {"machine_id": "M0", "ts": T0 + 500, "temp": 8, "Type": "M"},
            ]),
        )
        .await,
        2,
        0,
        &[],
    );
    assert_report(
        &label(
            &t.store,
            "press",
            json!([
                {"machine_id": "M1", "ts": T0, "failure": 1},
                {"machine_id": "M1", "ts": T0 + 2000, "failure": 0},
            ]),
        )
        .await,
        2,
        0,
        &[],
    );

    let verified = t.store.verify_snapshot("press", before.id).await.unwrap();
    assert!(verified.ok, "{verified:?}");
    assert_eq!(verified.snapshot_id, before.id);
    assert_eq!(verified.actual_digest, before.digest);
    assert_eq!(verified.expected_digest, before.digest);
    assert_eq!((verified.expected_rows, verified.actual_rows), (3, 3));
    assert_eq!(rows_of(&t.store, "press", before.id).await, rows_before);
    assert_eq!(
        rows_before,
        [
            row("M1", T0, vec![n(1.0), text("L"), Value::Missing], None),
            row(
                "M2",
                T0 + 1000,
                vec![n(3.0), text("H"), Value::Missing],
                Some(vec![n(1.0)])
            ),
            row(
                "M1",
                T0 + 2000,
                vec![n(2.0), text("L"), Value::Missing],
                None
            ),
        ]
    );

    // A new snapshot of the same range sees all of it.
    let after = snapshot(&t.store, "press", range).await;
    assert_eq!(after.row_count, 5);
    assert_eq!(after.max_seq, 7);
    assert_ne!(after.digest, before.digest);
    assert_eq!(
        rows_of(&t.store, "press", after.id).await,
        [
            row(
                "M1",
                T0,
                vec![n(1.0), text("L"), Value::Missing],
                Some(vec![n(1.0)])
            ),
            row(
                "M0",
                T0 + 500,
                vec![n(8.0), text("M"), Value::Missing],
                None
            ),
            row(
                "M1",
                T0 + 1000,
                vec![n(9.0), text("M"), Value::Missing],
                Some(vec![n(0.0)])
            ),
            row(
                "M2",
                T0 + 1000,
                vec![n(3.0), text("H"), Value::Missing],
                Some(vec![n(1.0)])
            ),
            row(
                "M1",
                T0 + 2000,
                vec![n(2.0), text("L"), Value::Missing],
                Some(vec![n(0.0)])
            ),
        ]
    );
    assert!(t.store.verify_snapshot("press", after.id).await.unwrap().ok);
}

async fn verify_detects_changed_rows(db: Db) {
    let t = fresh(db).await;
    press(&t).await;
    ingest(
        &t.store,
        "press",
        json!([
            {"machine_id": "M1", "ts": T0, "temp": 1, "Type": "L", "failure": 1},
            {"machine_id": "M1", "ts": T0 + 1000, "temp": 2, "Type": "L"},
            {"machine_id": "M2", "ts": T0, "temp": 3, "Type": "H"},
        ]),
    )
    .await;
    let s = snapshot(&t.store, "press", json!({})).await;
    let ok = t.store.verify_snapshot("press", s.id).await.unwrap();
    assert!(ok.ok);

    // A value rewritten behind the store's back: same rows, another digest.
    let mut other = Vec::new();
    other.extend(encode(&[n(2.5), text("L"), Value::Missing]));
    assert!(refit_tests::tamper_reading(&t.raw, "M1", T0 + 1000, Some(other)).await);
    let v = t.store.verify_snapshot("press", s.id).await.unwrap();
    assert!(!v.ok);
    assert_eq!((v.expected_rows, v.actual_rows), (3, 3));
    assert_eq!(v.expected_digest, s.digest);
    assert_ne!(v.actual_digest, s.digest);

    // A row deleted: one row fewer.
    assert!(refit_tests::tamper_reading(&t.raw, "M2", T0, None).await);
    let v = t.store.verify_snapshot("press", s.id).await.unwrap();
    assert!(!v.ok);
    assert_eq!((v.expected_rows, v.actual_rows), (3, 2));
    assert_eq!(
        v.actual_digest,
        expected_digest(
            &press_schema(),
            &[
                row(
                    "M1",
                    T0,
                    vec![n(1.0), text("L"), Value::Missing],
                    Some(vec![n(1.0)])
                ),
                row(
                    "M1",
                    T0 + 1000,
                    vec![n(2.5), text("L"), Value::Missing],
                    None
                ),
            ]
        )
    );

    // A label deleted: same rows, another digest again.
    let before = v.actual_digest;
    sqlx::query("DELETE FROM record_labels")
        .execute(&t.raw)
        .await
        .unwrap();
    let v = t.store.verify_snapshot("press", s.id).await.unwrap();
    assert_eq!((v.ok, v.actual_rows), (false, 2));
    assert_ne!(v.actual_digest, before);

    // Bytes that do not decode are an integrity error when read.
    assert!(refit_tests::tamper_reading(&t.raw, "M1", T0, Some(vec![7u8, 1, 2])).await);
    assert_err!(
        t.store.load_snapshot("press", s.id).await,
        Integrity,
        "is unreadable: unknown value tag 7"
    );
    assert!(!t.store.verify_snapshot("press", s.id).await.unwrap().ok);

    // A block that does not decode is an integrity error too.
    sqlx::query("UPDATE record_blocks SET readings = $1")
        .bind(vec![1u8, 9, 0, 0, 0])
        .execute(&t.raw)
        .await
        .unwrap();
    assert_err!(
        t.store.load_snapshot("press", s.id).await,
        Integrity,
        "a stored block of readings is unreadable: the block ends early"
    );
}

/// Ties in time are broken by machine_id compared bytewise, on both databases.
async fn rows_are_in_time_then_bytewise_machine_order(db: Db) {
    let t = fresh(db).await;
    press(&t).await;
    let records: Vec<_> = MACHINES
        .iter()
        .enumerate()
        .flat_map(|(i, m)| {
            [1000, 0].map(|dt| json!({"machine_id": m, "ts": T0 + dt, "temp": i, "Type": "L"}))
        })
        .collect();
    ingest(&t.store, "press", serde_json::Value::Array(records)).await;
    let s = snapshot(&t.store, "press", json!({})).await;
    let order: Vec<(String, i64)> = rows_of(&t.store, "press", s.id)
        .await
        .into_iter()
        .map(|r| (r.machine_id, r.ts - T0))
        .collect();
    let mut expected: Vec<(String, i64)> = Vec::new();
    for dt in [0, 1000] {
        for m in ["M-1", "M10", "M2", "M_1", "Z", "a", "m1", "Ä1"] {
            expected.push((m.into(), dt));
        }
    }
    assert_eq!(order, expected);
}

/// Numbers are stored as the exact f64 their decimal text denotes (what `str::parse` gives), so
/// a snapshot holds what the machine sent and its digest can be recomputed from the source data.
async fn numbers_are_stored_exactly_as_sent(db: Db) {
    let t = fresh(db).await;
    let schema = Schema {
        features: vec![numeric("x")],
        labels: vec![],
    };
    t.store
        .create_dataset(&alice(), "exact", &schema, None)
        .await
        .unwrap();
    let texts = [
        "90.33333333333333",
        "0.1",
        "298.1",
        "-0.5",
        "1e300",
        "5e-324",
        "1.7976931348623157e308",
        "3",
        "0.30000000000000004",
        "1333.3333333333333",
    ];
    let body: String = texts
        .iter()
        .enumerate()
        .map(|(i, x)| format!("{{\"machine_id\":\"M\",\"ts\":{i},\"x\":{x}}}\n"))
        .collect();
    assert_report(
        &ingest_ndjson(&t.store, "exact", &body).await,
        texts.len(),
        0,
        &[],
    );
    let s = snapshot(&t.store, "exact", json!({})).await;
    let stored: Vec<(&str, Value)> = rows_of(&t.store, "exact", s.id)
        .await
        .into_iter()
        .zip(texts)
        .map(|(r, x)| (x, r.features[0].clone()))
        .collect();
    let sent: Vec<(&str, Value)> = texts
        .iter()
        .map(|x| (*x, n(x.parse::<f64>().unwrap())))
        .collect();
    assert_eq!(
        stored, sent,
        "numbers changed on the way in (serde_json parses floats exactly only with its \
         `float_roundtrip` feature)"
    );
}

/// More rows than one read of the scan (5,000), with machines spanning the chunk boundaries, so
/// that the snapshot is read in several chunks that must join exactly.
async fn large_snapshots_are_read_in_chunks(db: Db) {
    let t = fresh(db).await;
    let schema = Schema {
        features: vec![numeric("x")],
        labels: vec![],
    };
    t.store
        .create_dataset(&alice(), "big", &schema, None)
        .await
        .unwrap();
    let mut body = String::new();
    let mut expected = Vec::new();
    for m in ["A", "B", "C"] {
        for k in 0..4_000i64 {
            body.push_str(&format!(
                "{{\"machine_id\":\"{m}\",\"ts\":{},\"x\":{}}}\n",
                T0 + k,
                k as f64 / 4.0
            ));
            expected.push(row(m, T0 + k, vec![n(k as f64 / 4.0)], None));
        }
    }
    assert_report(&ingest_ndjson(&t.store, "big", &body).await, 12_000, 0, &[]);
    let s = snapshot(&t.store, "big", json!({})).await;
    assert_eq!(s.row_count, 12_000);
    assert_eq!(s.digest, expected_digest(&schema, &expected));
    assert_eq!(rows_of(&t.store, "big", s.id).await, in_key_order(expected));
    let v = t.store.verify_snapshot("big", s.id).await.unwrap();
    assert!(v.ok && v.actual_rows == 12_000, "{v:?}");
    assert_report(&ingest_ndjson(&t.store, "big", &body).await, 0, 12_000, &[]);
}

/// Batches larger than one INSERT statement, with inline and late labels, keys repeated within
/// the batch (after the first statement's rows) and keys already stored.
async fn large_labelled_batches_span_statements(db: Db) {
    let t = fresh(db).await;
    let schema = Schema {
        features: vec![numeric("x")],
        labels: vec![numeric("y")],
    };
    t.store
        .create_dataset(&alice(), "big", &schema, None)
        .await
        .unwrap();
    let line = |m: &str, k: i64, x: f64, y: Option<f64>| match y {
        Some(y) => format!(
            "{{\"machine_id\":\"{m}\",\"ts\":{},\"x\":{x},\"y\":{y}}}\n",
            T0 + k
        ),
        None => format!("{{\"machine_id\":\"{m}\",\"ts\":{},\"x\":{x}}}\n", T0 + k),
    };
    // Machine A stored first, unlabelled: 0..3000.
    let mut first = String::new();
    for k in 0..3_000 {
        first.push_str(&line("A", k, k as f64, None));
    }
    assert_report(&ingest_ndjson(&t.store, "big", &first).await, 3_000, 0, &[]);
    // 12,000 labelled records: A 2000..5000 (1000 already stored) and B 0..9000, then B 8500
    // again with other values (a duplicate in the batch: the first record wins).
    let mut body = String::new();
    let mut expected = Vec::new();
    for k in 0..3_000 {
        expected.push(row("A", T0 + k, vec![n(k as f64)], None));
    }
    for k in 2_000..5_000 {
        body.push_str(&line("A", k, -(k as f64), Some(1.0)));
        if k >= 3_000 {
            expected.push(row("A", T0 + k, vec![n(-(k as f64))], Some(vec![n(1.0)])));
        }
    }
    for k in 0..9_000 {
        body.push_str(&line("B", k, k as f64 / 2.0, Some(k as f64)));
        expected.push(row(
            "B",
            T0 + k,
            vec![n(k as f64 / 2.0)],
            Some(vec![n(k as f64)]),
        ));
    }
    body.push_str(&line("B", 8_500, 0.0, Some(0.0)));
    assert_report(
        &ingest_ndjson(&t.store, "big", &body).await,
        11_000,
        1_001,
        &[],
    );
    // Late labels for every stored A reading without one.
    let mut late = String::new();
    for k in 0..3_000 {
        late.push_str(&format!(
            "{{\"machine_id\":\"A\",\"ts\":{},\"y\":{}}}\n",
            T0 + k,
            k % 2
        ));
        expected[k as usize].labels = Some(vec![n((k % 2) as f64)]);
    }
    let report = t
        .store
        .ingest_labels(&alice(), "big", late.clone(), true)
        .await
        .unwrap();
    assert_report(&report, 3_000, 0, &[]);
    let report = t
        .store
        .ingest_labels(&alice(), "big", late, true)
        .await
        .unwrap();
    assert_report(&report, 0, 3_000, &[]);
    let s = snapshot(&t.store, "big", json!({})).await;
    assert_eq!(s.row_count, 14_000);
    assert_eq!(rows_of(&t.store, "big", s.id).await, in_key_order(expected));
}

/// A scored batch of a thousand readings: `finish` makes the answer while the commit syncs (on
/// SQLite, on a thread of its own), from the same report and scores the call returns, and what
/// it made is returned only once the batch is committed.
async fn a_large_scored_batch_is_finished_beside_its_commit(db: Db) {
    let sqlite = matches!(db, Db::Sqlite);
    let t = fresh(db).await;
    press(&t).await;
    let body: String = (0..1000)
        .map(|i| {
            format!(
                "{{\"machine_id\":\"m{}\",\"ts\":{},\"temp\":{i}.5,\"Type\":\"L\",\"wear\":null}}\n",
                i % 7,
                T0 + i * 1000
            )
        })
        .collect();
    let caller = std::thread::current().id();
    let (accepted, scores, positions, finished_on) = t
        .store
        .ingest_records_scored(
            &alice(),
            "press",
            body,
            true,
            "api",
            |_, _| async {},
            |_, fresh, _| async move { Ok((vec![first_feature_block(fresh, |x| 2.0 * x)], 42)) },
            |report, blocks, extra: i32| {
                assert_eq!(extra, 42);
                let scores: Vec<f64> = blocks
                    .iter()
                    .flat_map(|b| b.scores())
                    .map(|s| s.prediction.as_f64().unwrap())
                    .collect();
                let positions: Vec<i64> = blocks
                    .iter()
                    .flat_map(|b| b.scores())
                    .map(|s| s.position)
                    .collect();
                (
                    report.accepted,
                    scores,
                    positions,
                    std::thread::current().id(),
                )
            },
        )
        .await
        .unwrap();
    assert_eq!(accepted, 1000);
    assert_eq!(
        scores,
        (0..1000)
            .map(|i| 2.0 * (f64::from(i) + 0.5))
            .collect::<Vec<_>>()
    );
    assert_eq!(positions, (1..=1000).collect::<Vec<i64>>());
    assert_eq!(
        finished_on != caller,
        sqlite,
        "finished beside the commit on SQLite only"
    );
    assert_eq!(t.store.dataset_counts("press").await.unwrap(), (1000, 0));
}

on_both_databases!(
    large_labelled_batches_span_statements,
    a_large_scored_batch_is_finished_beside_its_commit,
    create_validates_names_and_schemas,
    get_list_and_counts,
    schema_updates_make_versions_and_rows_keep_theirs,
    retention_is_validated,
    ingest_counts_and_first_write_wins,
    within_a_batch_the_first_record_wins,
    bad_records_are_rejected_one_by_one,
    ndjson_lines_are_records,
    a_body_that_is_not_an_array_stores_nothing,
    nullable_features_accept_null,
    labels_inline_and_late,
    labels_for_rows_of_an_older_schema_are_refused,
    identical_content_has_one_digest_and_one_value_changes_it,
    time_range_and_machines_select_rows,
    snapshot_requests_are_validated,
    late_records_and_labels_do_not_change_a_snapshot,
    verify_detects_changed_rows,
    rows_are_in_time_then_bytewise_machine_order,
    large_snapshots_are_read_in_chunks,
    numbers_are_stored_exactly_as_sent,
    overlapping_late_and_replayed_batches_read_as_one_history,
);

/// Batches of random size at random times — late, overlapping each other in time, resending
/// stored readings and repeating keys within a batch — store exactly the first reading of each
/// key, and read back (in chunks, across many overlapping blocks) in key order: the same rows,
/// and the same digest, as one batch of the survivors sent to a fresh dataset.
async fn overlapping_late_and_replayed_batches_read_as_one_history(db: Db) {
    let t = fresh(db).await;
    let schema = Schema {
        features: vec![numeric("temp")],
        labels: vec![],
    };
    for name in ["mixed", "whole"] {
        t.store
            .create_dataset(&alice(), name, &schema, None)
            .await
            .unwrap();
    }
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    // The first value sent for each key: what must be stored.
    let mut first: std::collections::BTreeMap<(i64, String), f64> = Default::default();
    let mut sent = 0;
    for batch in 0..40 {
        let size = 1 + next(700);
        // Most batches move forward in time; some reach back over everything sent so far.
        let (from, span) = if batch % 3 == 0 {
            (0, 200 + batch * 50)
        } else {
            (batch * 50, 120)
        };
        let mut records = Vec::new();
        let mut new = 0;
        for _ in 0..size {
            let ts = T0 + (from + next(span)) as i64 * 1000;
            let machine = format!("m{}", next(12));
            sent += 1;
            let temp = sent as f64 + 0.5;
            if let std::collections::btree_map::Entry::Vacant(e) =
                first.entry((ts, machine.clone()))
            {
                e.insert(temp);
                new += 1;
            }
            records.push(json!({"machine_id": machine, "ts": ts, "temp": temp}));
        }
        let report = ingest(&t.store, "mixed", json!(records)).await;
        assert_eq!(
            (report.accepted, report.duplicates),
            (new, size as usize - new),
            "batch {batch}"
        );
    }
    let expected: Vec<SnapshotRow> = first
        .iter()
        .map(|((ts, m), temp)| row(m, *ts, vec![n(*temp)], None))
        .collect();
    assert!(
        expected.len() > 10_000,
        "more than two chunks of {}",
        expected.len()
    );
    let (_, read, more) = t
        .store
        .read_rows("mixed", 0, i64::MAX, 1_000_000)
        .await
        .unwrap();
    assert!(!more);
    assert_eq!(read.len(), expected.len());
    if let Some(i) = (0..read.len()).find(|&i| read[i] != expected[i]) {
        panic!(
            "row {i} of {}: read {:?}, expected {:?}",
            read.len(),
            &read[i.saturating_sub(1)..(i + 2).min(read.len())],
            &expected[i.saturating_sub(1)..(i + 2).min(read.len())]
        );
    }
    assert_eq!(
        t.store.dataset_counts("mixed").await.unwrap(),
        (expected.len() as i64, 0)
    );

    let whole: Vec<serde_json::Value> = expected
        .iter()
        .map(|r| {
            let Value::Number(temp) = r.features[0] else {
                unreachable!()
            };
            json!({"machine_id": r.machine_id, "ts": r.ts, "temp": temp})
        })
        .collect();
    assert_eq!(
        ingest(&t.store, "whole", json!(whole)).await.accepted,
        expected.len()
    );
    let a = snapshot(&t.store, "mixed", json!({})).await;
    let b = snapshot(&t.store, "whole", json!({})).await;
    assert_eq!(a.row_count, expected.len() as i64);
    assert_eq!(a.digest, b.digest);
    assert!(rows_of(&t.store, "mixed", a.id).await == expected);

    // A time range and machines cut through blocks: the same rows as filtering the model.
    let (from, to) = (T0 + 300 * 1000, T0 + 900 * 1000);
    let part = snapshot(
        &t.store,
        "mixed",
        json!({"from": from, "to": to, "machines": ["m3", "m7"]}),
    )
    .await;
    let wanted: Vec<SnapshotRow> = expected
        .iter()
        .filter(|r| r.ts >= from && r.ts < to && (r.machine_id == "m3" || r.machine_id == "m7"))
        .cloned()
        .collect();
    assert_eq!(part.row_count, wanted.len() as i64);
    assert!(rows_of(&t.store, "mixed", part.id).await == wanted);
    assert!(t.store.verify_snapshot("mixed", part.id).await.unwrap().ok);
}
