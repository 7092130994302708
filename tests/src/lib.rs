//! Support for refit's end-to-end and store tests: fresh databases on SQLite or PostgreSQL, and
//! the real server spawned on port 0.
//!
//! PostgreSQL tests need `REFIT_TEST_POSTGRES_URL` (a superuser URL of a server they may create
//! databases on); `scripts/test` starts a private server and sets it. Without it they fail with a
//! message saying so, rather than passing without having run.

use std::path::Path;

use refit_registry::tokens::Role;
use refit_registry::{Actor, Store, StoreOptions};
use refit_services::{Application, Config};
use sqlx::Executor;
use sqlx::any::AnyPoolOptions;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    /// A SQLite file in the test's temporary directory.
    Sqlite,
    /// A fresh database on the server named by `REFIT_TEST_POSTGRES_URL`.
    Postgres,
}

/// Runs each named `async fn(Db)` once on SQLite and once on PostgreSQL, as
/// `sqlite::<name>` and `postgres::<name>` tests.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Db::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Db::Postgres).await
                }
            )*
        }
    };
}

/// A URL for a new, empty database of kind `db`; SQLite files go in `dir`.
pub async fn fresh_database_url(db: Db, dir: &Path) -> String {
    match db {
        Db::Sqlite => format!("sqlite://{}", dir.join("refit.db").display()),
        Db::Postgres => {
            let base = std::env::var("REFIT_TEST_POSTGRES_URL").expect(
                "REFIT_TEST_POSTGRES_URL is not set: run the suite with scripts/test, which starts \
                 a private PostgreSQL and sets it",
            );
            sqlx::any::install_default_drivers();
            let name = format!("refit_test_{}", refit_registry::db::new_id());
            let pool = AnyPoolOptions::new()
                .max_connections(1)
                .connect(&base)
                .await
                .expect("connecting to REFIT_TEST_POSTGRES_URL");
            pool.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .await
                .expect("creating a test database");
            pool.close().await;
            let (prefix, _) = base.rsplit_once('/').expect("URL has a database path");
            format!("{prefix}/{name}")
        }
    }
}

/// A migrated store on a fresh database, with the temporary directory that holds it.
pub async fn fresh_store(db: Db) -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = fresh_database_url(db, dir.path()).await;
    let store = Store::connect(&test_store_options(url))
        .await
        .expect("connecting");
    store.migrate().await.expect("migrating");
    (store, dir)
}

/// Store options for a test database: a 1 MiB write-ahead log written ahead instead of the
/// default ~64 MiB, which hundreds of test databases would write for nothing.
pub fn test_store_options(url: impl Into<String>) -> StoreOptions {
    StoreOptions {
        wal_preallocation: 1 << 20,
        ..StoreOptions::new(url)
    }
}

/// The real server, serving on an ephemeral port until dropped.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// The server's store, for setting up state and checking it directly.
    pub store: Store,
    /// The bootstrap admin token.
    pub admin_token: String,
    /// The database it runs on.
    pub database_url: String,
    /// An HTTP client.
    pub client: reqwest::Client,
    /// The data directory.
    pub dir: tempfile::TempDir,
    /// The server's shared state (its drift monitors, model server...), for driving components
    /// directly.
    pub state: refit_services::http::AppState,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<Result<(), String>>>,
}

/// Starts the application on port 0 with a fresh database; `adjust` may change the config.
pub async fn spawn_app_with(db: Db, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = fresh_database_url(db, dir.path()).await;
    start_app(dir, url, None, adjust).await
}

/// Starts a second application on `first`'s database (another process, as far as training leases
/// and schedules go), sharing its admin token.
pub async fn spawn_app_beside(first: &TestApp, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = first.database_url.clone();
    start_app(dir, url, Some(first.admin_token.clone()), adjust).await
}

async fn start_app(
    dir: tempfile::TempDir,
    url: String,
    admin_token: Option<String>,
    adjust: impl FnOnce(&mut Config),
) -> TestApp {
    let mut config = Config::for_tests(&dir.path().join("data"), Some(url.clone()));
    adjust(&mut config);
    let app = Application::build(config)
        .await
        .expect("building the application");
    let address = format!("http://{}", app.local_addr());
    let store = app.state().store.clone();
    let state = app.state().clone();
    let admin_token = admin_token
        .or_else(|| app.bootstrap_token.clone())
        .expect("a fresh database gets an admin token");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        app.run_until(async {
            let _ = rx.await;
        })
        .await
        .map_err(|e| format!("{e:#}"))
    });
    TestApp {
        address,
        store,
        admin_token,
        database_url: url,
        client: reqwest::Client::new(),
        dir,
        state,
        shutdown: Some(tx),
        server: Some(server),
    }
}

/// Starts the application on port 0 with a fresh database and default settings.
pub async fn spawn_app(db: Db) -> TestApp {
    spawn_app_with(db, |_| {}).await
}

impl TestApp {
    /// The full URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Creates a token with `role` directly in the store and returns its secret.
    pub async fn token(&self, name: &str, role: Role) -> String {
        self.store
            .create_token(&Actor::new("test"), name, role)
            .await
            .expect("creating a token")
            .secret
    }

    /// A request with the admin token.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.as_token(&self.admin_token, method, path)
    }

    /// A request with `token`.
    pub fn as_token(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
    }

    /// Stops the server gracefully and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("server task")
                .expect("server stopped cleanly");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Reads a JSON response body, asserting the status first (with the body in the message).
pub async fn expect_json(response: reqwest::Response, status: u16) -> serde_json::Value {
    let actual = response.status().as_u16();
    let text = response.text().await.expect("response body");
    assert_eq!(actual, status, "unexpected status; body: {text}");
    if text.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {text}"))
    }
}

/// Asserts an error response: status, `error_code`, and that the message contains `fragment`.
pub async fn expect_error(
    response: reqwest::Response,
    status: u16,
    code: &str,
    fragment: &str,
) -> String {
    let body = expect_json(response, status).await;
    assert_eq!(body["error_code"], code, "error body: {body}");
    let message = body["message"]
        .as_str()
        .expect("message is a string")
        .to_string();
    assert!(
        message.contains(fragment),
        "message {message:?} lacks {fragment:?}"
    );
    message
}

/// A stored reading as a block holds it: time, sequence number, machine id, feature encoding.
type RawReading = (i64, i64, String, Vec<u8>);

/// A block of readings as stored: (dataset_id, first_seq, readings in block order). Decoded from
/// the layout (format 2) documented in `registry/src/datasets/history.rs`, independently of the
/// store's code.
type RawBlock = (i64, i64, Vec<RawReading>);

fn varint(blob: &[u8], at: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = blob[*at];
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return v;
        }
        shift += 7;
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn decode_raw_block(blob: &[u8]) -> Vec<RawReading> {
    assert_eq!(blob[0], 2, "block format");
    let mut at = 1;
    let n = varint(blob, &mut at);
    let machines: Vec<String> = (0..varint(blob, &mut at))
        .map(|_| {
            let len = varint(blob, &mut at) as usize;
            at += len;
            String::from_utf8(blob[at - len..at].to_vec()).unwrap()
        })
        .collect();
    let int = |at: &mut usize| {
        *at += 8;
        i64::from_le_bytes(blob[*at - 8..*at].try_into().unwrap())
    };
    let mut ts = int(&mut at);
    let seq_base = int(&mut at);
    (0..n)
        .map(|_| {
            let delta = varint(blob, &mut at);
            ts += (delta >> 1) as i64 ^ -((delta & 1) as i64);
            let seq = seq_base + varint(blob, &mut at) as i64;
            let machine = machines[varint(blob, &mut at) as usize].clone();
            let len = varint(blob, &mut at) as usize;
            at += len;
            (ts, seq, machine, blob[at - len..at].to_vec())
        })
        .collect()
}

fn encode_raw_block(rows: &[RawReading]) -> Vec<u8> {
    let mut machines: Vec<&str> = Vec::new();
    for (_, _, m, _) in rows {
        if !machines.contains(&m.as_str()) {
            machines.push(m);
        }
    }
    let mut out = vec![2u8];
    put_varint(&mut out, rows.len() as u64);
    put_varint(&mut out, machines.len() as u64);
    for m in &machines {
        put_varint(&mut out, m.len() as u64);
        out.extend_from_slice(m.as_bytes());
    }
    let first_ts = rows.first().map_or(0, |r| r.0);
    let seq_base = rows.iter().map(|r| r.1).min().unwrap_or(0);
    out.extend_from_slice(&first_ts.to_le_bytes());
    out.extend_from_slice(&seq_base.to_le_bytes());
    let mut previous = first_ts;
    for (ts, seq, machine, values) in rows {
        let delta = ts - previous;
        put_varint(&mut out, ((delta << 1) ^ (delta >> 63)) as u64);
        previous = *ts;
        put_varint(&mut out, (seq - seq_base) as u64);
        put_varint(
            &mut out,
            machines.iter().position(|m| m == machine).unwrap() as u64,
        );
        put_varint(&mut out, values.len() as u64);
        out.extend_from_slice(values);
    }
    out
}

async fn raw_blocks(pool: &sqlx::AnyPool) -> Vec<RawBlock> {
    use sqlx::Row;
    let blocks = sqlx::query("SELECT dataset_id, first_seq, readings FROM record_blocks")
        .fetch_all(pool)
        .await
        .unwrap();
    blocks
        .iter()
        .map(|block| {
            let blob: Vec<u8> = block.get("readings");
            (
                block.get("dataset_id"),
                block.get("first_seq"),
                decode_raw_block(&blob),
            )
        })
        .collect()
}

/// Every stored reading's (machine_id, ts), in key order, read from the blocks directly.
pub async fn stored_readings(pool: &sqlx::AnyPool) -> Vec<(String, i64)> {
    let mut all: Vec<(String, i64)> = raw_blocks(pool)
        .await
        .into_iter()
        .flat_map(|(_, _, rows)| rows)
        .map(|(ts, _, machine, _)| (machine, ts))
        .collect();
    all.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    all
}

/// Changes one stored reading behind the store's back, as tests of verification need: the
/// reading of `machine_id` at `ts` gets the feature encoding `features`, or is deleted when
/// `None`. Returns whether the reading was found.
pub async fn tamper_reading(
    pool: &sqlx::AnyPool,
    machine_id: &str,
    ts: i64,
    features: Option<Vec<u8>>,
) -> bool {
    for (dataset_id, first_seq, mut rows) in raw_blocks(pool).await {
        let Some(i) = rows
            .iter()
            .position(|(t, _, machine, _)| machine == machine_id && *t == ts)
        else {
            continue;
        };
        match features {
            Some(f) => rows[i].3 = f,
            None => {
                rows.remove(i);
            }
        }
        let out = encode_raw_block(&rows);
        sqlx::query(
            "UPDATE record_blocks SET readings = $1, count = $2 WHERE dataset_id = $3 AND first_seq = $4",
        )
        .bind(out)
        .bind(rows.len() as i64)
        .bind(dataset_id)
        .bind(first_seq)
        .execute(pool)
        .await
        .unwrap();
        return true;
    }
    false
}
