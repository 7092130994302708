//! Helpers shared by the `store_*` test files: a fresh store plus a raw pool on the same database
//! (for counting rows and corrupting bytes behind the store's back), an audit-log cursor, and an
//! assertion on error variants.

#![allow(dead_code, unused_macros)]

use refit_registry::experiments::Tag;
use refit_registry::runs::{Dataset, DatasetInput};
use refit_registry::{Actor, AuditEntry, Store};
use refit_tests::{Db, fresh_database_url, test_store_options};
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Row};

/// A use of the snapshot dataset `name` (`digest`) in `context`.
pub fn dataset_input(name: &str, digest: &str, context: &str) -> DatasetInput {
    DatasetInput {
        tags: vec![Tag {
            key: "mlflow.data.context".into(),
            value: context.into(),
        }],
        dataset: Dataset {
            name: name.into(),
            digest: digest.into(),
            source_type: "refit-snapshot".into(),
            source: format!("{{\"snapshot\":\"{name}\"}}"),
            schema: Some("{\"cols\":3}".into()),
            profile: None,
        },
    }
}

/// The actor every test acts as, unless it says otherwise.
pub const ACTOR: &str = "alice";

/// `Actor::new(ACTOR)`.
pub fn alice() -> Actor {
    Actor::new(ACTOR)
}

/// A migrated store on a fresh database, and a separate pool on the same database.
pub struct TestStore {
    pub store: Store,
    pub raw: AnyPool,
    _dir: tempfile::TempDir,
}

/// Like `refit_tests::fresh_store`, with a raw pool beside the store.
pub async fn fresh(db: Db) -> TestStore {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = fresh_database_url(db, dir.path()).await;
    let store = Store::connect(&test_store_options(url.clone()))
        .await
        .expect("connecting");
    store.migrate().await.expect("migrating");
    let raw = AnyPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .expect("connecting the raw pool");
    TestStore {
        store,
        raw,
        _dir: dir,
    }
}

impl TestStore {
    /// The single integer `sql` selects (as column `n`).
    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_one(&self.raw)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .try_get("n")
            .expect("column n")
    }

    /// A cursor positioned after the newest audit entry.
    pub async fn audit(&self) -> AuditCursor {
        AuditCursor::new(&self.store).await
    }
}

/// Follows the audit log: each check looks only at entries written since the previous one.
pub struct AuditCursor {
    store: Store,
    last: i64,
}

impl AuditCursor {
    pub async fn new(store: &Store) -> Self {
        let last = store
            .audit_log(1, None, None)
            .await
            .expect("reading the audit log")
            .first()
            .map_or(0, |e| e.id);
        AuditCursor {
            store: store.clone(),
            last,
        }
    }

    /// Entries written since the last check, oldest first; moves the cursor past them.
    pub async fn take(&mut self) -> Vec<AuditEntry> {
        let mut entries: Vec<AuditEntry> = self
            .store
            .audit_log(1000, None, None)
            .await
            .expect("reading the audit log")
            .into_iter()
            .filter(|e| e.id > self.last)
            .collect();
        entries.reverse();
        if let Some(e) = entries.last() {
            self.last = e.id;
        }
        entries
    }

    /// Exactly one entry was written since the last check, by `actor`, with this action and
    /// target; returns it.
    #[track_caller]
    pub fn one_by<'a>(
        &'a mut self,
        actor: &'a str,
        action: &'a str,
        target: &'a str,
    ) -> impl Future<Output = AuditEntry> + 'a {
        let caller = std::panic::Location::caller();
        async move {
            let entries = self.take().await;
            assert_eq!(
                entries.len(),
                1,
                "expected exactly one audit entry ({action} on {target}) at {caller}, got {entries:#?}"
            );
            let e = entries.into_iter().next().expect("one entry");
            assert_eq!(
                (e.actor.as_str(), e.action.as_str(), e.target.as_str()),
                (actor, action, target),
                "audit entry at {caller}"
            );
            e
        }
    }

    /// [`AuditCursor::one_by`] with [`ACTOR`].
    #[track_caller]
    pub fn one<'a>(
        &'a mut self,
        action: &'a str,
        target: &'a str,
    ) -> impl Future<Output = AuditEntry> + 'a {
        self.one_by(ACTOR, action, target)
    }

    /// Nothing was written since the last check.
    #[track_caller]
    pub fn none(&mut self) -> impl Future<Output = ()> + '_ {
        let caller = std::panic::Location::caller();
        async move {
            let entries = self.take().await;
            assert!(
                entries.is_empty(),
                "expected no audit entry at {caller}, got {entries:#?}"
            );
        }
    }
}

/// Asserts that `$result` is `Err(Error::$variant(message))` with `message` containing
/// `$fragment`, and evaluates to the message.
macro_rules! assert_err {
    ($result:expr, $variant:ident, $fragment:expr $(,)?) => {{
        let fragment: &str = $fragment;
        match $result {
            Err(refit_registry::Error::$variant(message)) => {
                assert!(
                    message.contains(fragment),
                    "message {message:?} lacks {fragment:?}"
                );
                message
            }
            other => panic!(
                "expected Error::{}(..{fragment:?}..), got {other:?}",
                stringify!($variant)
            ),
        }
    }};
}

/// Version 1 of model `press` as champion, scoring each reading `score` of its first feature
/// (NaN when that is not a number): the block a `score` closure of a scored ingest returns.
pub fn first_feature_block(
    fresh: std::sync::Arc<refit_registry::datasets::Readings>,
    score: impl Fn(f64) -> f64,
) -> refit_registry::scores::ScoreBlock {
    use refit_registry::datasets::Value;
    use refit_registry::scores::{ScoreBlock, ScoreRole};
    let values = fresh
        .iter()
        .map(|r| match r.features[0] {
            Value::Number(x) => score(x),
            _ => f64::NAN,
        })
        .collect();
    ScoreBlock {
        model: "press".into(),
        version: 1,
        role: ScoreRole::Champion,
        received_at: 1,
        records: fresh,
        classes: None,
        values,
        probabilities: None,
    }
}
