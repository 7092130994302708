//! The score log and the history in the store: a log written in its first form (a row per
//! score, before migration 0010) is carried over to score blocks when the store migrates —
//! positions, predictions, probabilities and the lookup by record unchanged — and so is a
//! history of a row per reading (before migration 0012), to blocks of readings. Runs on SQLite
//! and on PostgreSQL.

use refit_registry::Store;
use refit_registry::datasets::{Column, ColumnKind, Schema, Value};
use refit_registry::scores::{ScoreRole, StoredScore};
use refit_tests::{Db, fresh_database_url, on_both_databases, test_store_options};
use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyPoolOptions;

on_both_databases!(a_score_log_of_the_first_form_is_carried_over_to_blocks);

const T0: i64 = 1_700_000_000_000;

/// A directory holding the migrations of `db` before the score blocks (0001-0009).
fn migrations_before_blocks(db: Db) -> tempfile::TempDir {
    let kind = match db {
        Db::Sqlite => "sqlite",
        Db::Postgres => "postgres",
    };
    let all = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../migrations")
        .join(kind);
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(all).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if name.as_str() < "0010" {
            std::fs::copy(entry.path(), dir.path().join(&name)).unwrap();
        }
    }
    dir
}

fn score(
    position: i64,
    machine_id: &str,
    model: &str,
    version: i64,
    role: ScoreRole,
    prediction: serde_json::Value,
    probabilities: Option<serde_json::Value>,
) -> StoredScore {
    StoredScore {
        position,
        machine_id: machine_id.into(),
        ts: T0,
        model: model.into(),
        version,
        role,
        prediction,
        probabilities: probabilities.map(|p| p.as_object().unwrap().clone()),
        received_at: T0 + 5,
    }
}

async fn a_score_log_of_the_first_form_is_carried_over_to_blocks(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(db, dir.path()).await;
    // The schema as it was, with a dataset and two readings stored by the store of the time
    // (ingest without scoring does not touch the score log).
    sqlx::any::install_default_drivers();
    let create = match db {
        Db::Sqlite => format!("{url}?mode=rwc"),
        Db::Postgres => url.clone(),
    };
    let raw = AnyPoolOptions::new()
        .max_connections(1)
        .connect(&create)
        .await
        .unwrap();
    let old = migrations_before_blocks(db);
    sqlx::migrate::Migrator::new(old.path())
        .await
        .unwrap()
        .run(&raw)
        .await
        .unwrap();
    let store = Store::connect(&test_store_options(url.clone()))
        .await
        .unwrap();
    let schema = Schema {
        features: vec![Column {
            name: "temp".into(),
            kind: ColumnKind::Numeric,
            nullable: false,
        }],
        labels: vec![],
    };
    let actor = refit_registry::Actor::new("alice");
    store
        .create_dataset(&actor, "press", &schema, None)
        .await
        .unwrap();
    let id: i64 = sqlx::query("SELECT id FROM datasets WHERE name = 'press'")
        .fetch_one(&raw)
        .await
        .unwrap()
        .try_get("id")
        .unwrap();
    // Readings in the history's first form, a row each (m2 stored first).
    for (seq, machine, temp) in [(0i64, "m2", 2.0f64), (1, "m1", 1.0)] {
        let mut features = vec![1u8];
        features.extend_from_slice(&temp.to_le_bytes());
        sqlx::query(
            "INSERT INTO records (dataset_id, machine_id, ts, seq, schema_version, features) \
             VALUES ($1, $2, $3, $4, 1, $5)",
        )
        .bind(id)
        .bind(machine)
        .bind(T0)
        .bind(seq)
        .bind(features)
        .execute(&raw)
        .await
        .unwrap();
    }
    sqlx::query("UPDATE datasets SET next_seq = 2")
        .execute(&raw)
        .await
        .unwrap();
    // Four scores: m1's by a classifier's champion and challenger, m2's by a regression, and
    // one of a reading retention has since deleted (its NaN prediction stored as null).
    let rows = [
        (
            1,
            "m1",
            "clf",
            1,
            "champion",
            r#""yes""#,
            Some(r#"{"no":0.25,"yes":0.75}"#),
        ),
        (
            2,
            "m1",
            "clf",
            2,
            "challenger",
            r#""no""#,
            Some(r#"{"no":0.5,"yes":0.5}"#),
        ),
        (3, "m2", "reg", 1, "champion", "3.5", None),
        (4, "m9", "reg", 1, "champion", "null", None),
    ];
    for (position, machine, model, version, role, prediction, probabilities) in rows {
        sqlx::query(
            "INSERT INTO scores (dataset_id, position, machine_id, ts, model, version, role, \
             prediction, probabilities, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(id)
        .bind(position as i64)
        .bind(machine)
        .bind(T0)
        .bind(model)
        .bind(version as i64)
        .bind(role)
        .bind(prediction)
        .bind(probabilities)
        .bind(T0 + 5)
        .execute(&raw)
        .await
        .unwrap();
    }
    sqlx::query("UPDATE datasets SET next_score_position = 5")
        .execute(&raw)
        .await
        .unwrap();

    // Migrating carries the log over and drops the old table; migrating again changes nothing.
    for _ in 0..2 {
        store.migrate().await.unwrap();
        let all = store.scores_after("press", 0, 100, None).await.unwrap();
        let yes_no = |no: f64, yes: f64| Some(json!({"no": no, "yes": yes}));
        assert_eq!(
            all,
            vec![
                score(
                    1,
                    "m1",
                    "clf",
                    1,
                    ScoreRole::Champion,
                    json!("yes"),
                    yes_no(0.25, 0.75)
                ),
                score(
                    2,
                    "m1",
                    "clf",
                    2,
                    ScoreRole::Challenger,
                    json!("no"),
                    yes_no(0.5, 0.5)
                ),
                score(3, "m2", "reg", 1, ScoreRole::Champion, json!(3.5), None),
                score(4, "m9", "reg", 1, ScoreRole::Champion, json!(null), None),
            ]
        );
        let champions = store
            .scores_after("press", 1, 100, Some(ScoreRole::Champion))
            .await
            .unwrap();
        assert_eq!(
            champions.iter().map(|s| s.position).collect::<Vec<_>>(),
            [3, 4]
        );
        let of_m1 = store.scores_of_record("press", "m1", T0).await.unwrap();
        assert_eq!(of_m1.iter().map(|s| s.position).collect::<Vec<_>>(), [1, 2]);
        let of_m2 = store
            .champion_scores_of("press", &[("m2".into(), T0), ("m1".into(), T0)])
            .await
            .unwrap();
        assert_eq!(of_m2.iter().map(|s| s.position).collect::<Vec<_>>(), [1, 3]);
        assert!(
            store
                .scores_of_record("press", "m9", T0)
                .await
                .unwrap()
                .is_empty(),
            "its reading is gone"
        );
        let old_table = match db {
            Db::Sqlite => "SELECT COUNT(*) AS n FROM sqlite_master WHERE name = 'scores'",
            Db::Postgres => {
                "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_name = 'scores' \
                 AND table_schema = current_schema()"
            }
        };
        let n: i64 = sqlx::query(old_table)
            .fetch_one(&raw)
            .await
            .unwrap()
            .try_get("n")
            .unwrap();
        assert_eq!(n, 0, "the old table is dropped");

        // The readings are carried over to blocks, in key order, with their sequence numbers.
        assert_eq!(store.dataset_counts("press").await.unwrap(), (2, 0));
        let (_, rows, more) = store.read_rows("press", 0, i64::MAX, 10).await.unwrap();
        assert!(!more);
        let read: Vec<(&str, i64, Vec<Value>)> = rows
            .iter()
            .map(|r| (r.machine_id.as_str(), r.ts, r.features.clone()))
            .collect();
        assert_eq!(
            read,
            [
                ("m1", T0, vec![Value::Number(1.0)]),
                ("m2", T0, vec![Value::Number(2.0)])
            ]
        );
        assert_eq!(
            store.records_since("press", 0).await.unwrap(),
            1,
            "m1's seq is 1"
        );
    }
    // A reading sent again is a duplicate (its machine's mark came over too); a new one is stored.
    let report = store
        .ingest_records(
            &actor,
            "press",
            json!([{"machine_id": "m1", "ts": T0, "temp": 5.0},
                   {"machine_id": "m1", "ts": T0 + 1, "temp": 6.0}])
            .to_string(),
            false,
            "api",
        )
        .await
        .unwrap();
    assert_eq!((report.accepted, report.duplicates), (1, 1));
    assert_eq!(store.dataset_counts("press").await.unwrap(), (3, 0));
}
