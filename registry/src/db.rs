//! The connection to the registry's database: one store over SQLite or PostgreSQL through sqlx's
//! `Any` driver, with the same portable SQL for both.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::{Any, AnyPoolOptions};
use sqlx::pool::PoolConnection;
use sqlx::{AnyConnection, AnyPool, Connection, Executor, Row};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::error::Result;
use crate::sql::{DirectTransaction, Sql, Tx};

/// Which database a [`Store`] runs on. SQL is shared; only a few statements differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file (the default).
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl Backend {
    /// The backend a database URL names, if it is one refit supports.
    pub fn of_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }
}

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// `sqlite://path/to/file.db` or `postgres://user@host:port/db`.
    pub url: String,
    /// Upper bound on pooled connections used for reads (and, on PostgreSQL, for writes).
    pub max_connections: u32,
    /// SQLite: bytes of write-ahead log written out ahead of need when the store opens (see
    /// [`DEFAULT_WAL_PREALLOCATION`]); `0` leaves the log to grow as it is written.
    pub wal_preallocation: u64,
}

impl StoreOptions {
    /// Options for `url` with the default pool size.
    pub fn new(url: impl Into<String>) -> Self {
        StoreOptions {
            url: url.into(),
            max_connections: 8,
            wal_preallocation: DEFAULT_WAL_PREALLOCATION,
        }
    }
}

/// The registry's storage. Cheap to clone: all clones share the connections.
///
/// On SQLite, every write goes through one connection held by the store (not a pool: a pool pings
/// a connection each time it is returned, a thread round trip per call), so writers queue for it
/// instead of failing with `SQLITE_BUSY`; reads run on a pool of their own under WAL. Every commit
/// is durable (`synchronous=FULL`): a write acknowledged to a client survives a crash of the
/// process or of the machine. WAL checkpoints run in the background, off the commit path.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) read: AnyPool,
    writer: Writer,
    backend: Backend,
    pub(crate) tokens: std::sync::Arc<crate::tokens::TokenCache>,
    /// Counts committed changes to model aliases in this process (see [`Store::alias_changes`]).
    aliases: Arc<tokio::sync::watch::Sender<u64>>,
    /// SQLite: direct connections for reads of many rows (see [`DirectReaders`]).
    direct_read: Option<Arc<DirectReaders>>,
}

/// Direct connections to the SQLite file for reads that return many rows (a page of runs with
/// their params, tags and metrics): each read runs in one blocking call, where sqlx would hand
/// every row from its worker thread to the async task separately. Opened on demand, kept idle
/// for reuse, at most [`DirectReaders::KEEP`] of them.
#[derive(Debug)]
pub(crate) struct DirectReaders {
    path: std::path::PathBuf,
    idle: std::sync::Mutex<Vec<rusqlite::Connection>>,
}

impl DirectReaders {
    const KEEP: usize = 4;

    /// Runs `read` on an idle connection (or a new one) on the blocking pool.
    pub(crate) async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        read: impl FnOnce(&rusqlite::Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let idle = this.idle.lock().expect("not poisoned").pop();
            let conn = match idle {
                Some(conn) => conn,
                None => {
                    let conn = rusqlite::Connection::open_with_flags(
                        &this.path,
                        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
                            | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    )?;
                    conn.execute_batch(
                        "PRAGMA query_only = ON; PRAGMA busy_timeout = 10000; \
                         PRAGMA case_sensitive_like = ON; PRAGMA mmap_size = 1073741824; \
                         PRAGMA cache_size = -4096;",
                    )?;
                    // Plans never depend on bound values (nothing here is ANALYZEd), so a rebound
                    // statement need not be prepared again: without this, SQLite re-prepares a
                    // search's statement on every run because of its bound LIMIT.
                    conn.set_db_config(
                        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
                        true,
                    )?;
                    conn
                }
            };
            // One read transaction: every query of `read` sees the same snapshot.
            let out = conn
                .unchecked_transaction()
                .map_err(crate::Error::from)
                .and_then(|tx| {
                    let out = read(&tx);
                    tx.finish()?;
                    out
                });
            let mut idle = this.idle.lock().expect("not poisoned");
            if idle.len() < Self::KEEP {
                idle.push(conn);
            }
            out
        })
        .await
        .map_err(|e| crate::Error::Integrity(format!("a direct read panicked: {e}")))?
    }
}

/// Where writes go: PostgreSQL's pool (many writers), or SQLite's one held connection.
#[derive(Clone, Debug)]
enum Writer {
    Pool(AnyPool),
    Held(Arc<Mutex<HeldWriter>>),
}

/// SQLite's writer (`None` once closed): sqlx's connection for everything, and a direct
/// connection to the same file for the short transactions of [`WriteConnection::transaction`].
/// Both are used only under the writer's lock, so they never wait for each other.
#[derive(Debug)]
pub(crate) struct HeldWriter {
    conn: Option<AnyConnection>,
    direct: Option<rusqlite::Connection>,
}

/// A connection to write on, held until dropped. Start a transaction with
/// [`WriteConnection::begin`], or run a short one with [`WriteConnection::transaction`].
pub(crate) enum WriteConnection {
    Pooled(PoolConnection<Any>),
    Held(OwnedMutexGuard<HeldWriter>),
}

impl Deref for WriteConnection {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        match self {
            WriteConnection::Pooled(c) => c,
            WriteConnection::Held(g) => g.conn.as_ref().expect("checked open when locked"),
        }
    }
}

impl DerefMut for WriteConnection {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match self {
            WriteConnection::Pooled(c) => c,
            WriteConnection::Held(g) => g.conn.as_mut().expect("checked open when locked"),
        }
    }
}

impl WriteConnection {
    /// Starts a transaction. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`),
    /// waiting up to the busy timeout: a deferred transaction that reads and then writes fails
    /// at once with "database is locked" if another process (a CLI command beside the server)
    /// committed in between.
    pub(crate) async fn begin(&mut self) -> Result<sqlx::Transaction<'_, Any>> {
        Ok(match self {
            WriteConnection::Pooled(conn) => conn.begin().await?,
            WriteConnection::Held(_) => (**self).begin_with("BEGIN IMMEDIATE").await?,
        })
    }

    /// SQLite's direct writer connection (see [`HeldWriter`]); `None` on PostgreSQL.
    pub(crate) fn direct(&mut self) -> Option<&mut rusqlite::Connection> {
        match self {
            WriteConnection::Pooled(_) => None,
            WriteConnection::Held(held) => held.direct.as_mut(),
        }
    }

    /// Runs `write` in one transaction, committed when it returns `Ok`, rolled back otherwise.
    /// On SQLite it runs on the direct connection (see [`WriteConnection::transaction`]): each of
    /// its statements then runs right here, without a hand-off to sqlx's worker thread and back.
    pub(crate) async fn write<T>(
        &mut self,
        write: impl AsyncFnOnce(&mut Tx<'_>) -> Result<T>,
    ) -> Result<T> {
        match self.direct() {
            Some(direct) => {
                let mut transaction = DirectTransaction::begin(direct)?;
                let out = write(&mut transaction.tx()).await?;
                transaction.commit()?;
                Ok(out)
            }
            None => {
                let mut tx = self.begin().await?;
                let out = write(&mut Tx::Any(&mut tx)).await?;
                tx.commit().await?;
                Ok(out)
            }
        }
    }

    /// Runs `statements` as one transaction, all or nothing, and returns how many rows each
    /// changed.
    ///
    /// On SQLite the transaction runs right here, on the calling thread, through the direct
    /// connection: sqlx would hand each command to its worker thread and each result back, and
    /// for the small durable writes of a training loop those hand-offs cost more than the writes.
    /// It blocks this runtime thread for one commit (its `fsync`, about 0.1 ms here), under the
    /// writer's lock, so at most one runtime thread waits on a commit at a time; being
    /// synchronous, it cannot be abandoned half-way either. On PostgreSQL the statements run in an
    /// ordinary transaction.
    pub(crate) async fn transaction(&mut self, statements: Vec<Sql>) -> Result<Vec<u64>> {
        match self {
            WriteConnection::Pooled(conn) => {
                let mut tx = conn.begin().await?;
                let mut changed = Vec::with_capacity(statements.len());
                for statement in statements {
                    changed.push(statement.execute(&mut tx).await?);
                }
                tx.commit().await?;
                Ok(changed)
            }
            WriteConnection::Held(held) => {
                let conn = held.direct.as_mut().expect("checked open when locked");
                let tx =
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let mut changed = Vec::with_capacity(statements.len());
                for statement in statements {
                    changed.push(statement.execute_direct(&tx)?);
                }
                tx.commit()?;
                Ok(changed)
            }
        }
    }
}

/// Connection counts of the store's pools, for the `/metrics` gauges.
#[derive(Debug, Clone, Copy)]
pub struct PoolStats {
    /// Open connections, idle or in use.
    pub size: u32,
    /// Open connections not in use.
    pub idle: u32,
}

impl Store {
    /// Connects to the database named by `options.url`. Does not run migrations.
    #[tracing::instrument(skip_all, fields(backend))]
    pub async fn connect(options: &StoreOptions) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(&options.url).ok_or_else(|| {
            crate::Error::invalid(format!(
                "unsupported database URL '{}': use sqlite://FILE or postgres://...",
                redact_url(&options.url)
            ))
        })?;
        tracing::Span::current().record("backend", tracing::field::debug(backend));
        let tokens = Default::default();
        let aliases = Arc::new(tokio::sync::watch::Sender::new(0));
        let store = match backend {
            Backend::Sqlite => {
                let url = sqlite_url(&options.url);
                let mut writer = AnyConnection::connect(&url).await?;
                configure_sqlite(&mut writer, WRITER_CACHE_KIB).await?;
                // The writer checkpoints only as a safety net (64 MiB of WAL); normally the
                // background checkpointer keeps the WAL short without delaying commits.
                writer.execute(WAL_AUTOCHECKPOINT).await?;
                let direct = open_direct(&url)?;
                preallocate_wal(&direct, options.wal_preallocation)?;
                let file: sqlx::sqlite::SqliteConnectOptions = url.parse()?;
                let direct_read = Some(Arc::new(DirectReaders {
                    path: file.get_filename().to_path_buf(),
                    idle: std::sync::Mutex::new(Vec::new()),
                }));
                let read = sqlite_pool(options.max_connections.max(1))
                    .connect(&url)
                    .await?;
                spawn_checkpointer(read.clone());
                Store {
                    read,
                    writer: Writer::Held(Arc::new(Mutex::new(HeldWriter {
                        conn: Some(writer),
                        direct: Some(direct),
                    }))),
                    backend,
                    tokens,
                    aliases: aliases.clone(),
                    direct_read,
                }
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(options.max_connections.max(2))
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(&options.url)
                    .await?;
                spawn_analyzer(pool.clone());
                Store {
                    read: pool.clone(),
                    writer: Writer::Pool(pool),
                    backend,
                    tokens,
                    aliases: aliases.clone(),
                    direct_read: None,
                }
            }
        };
        Ok(store)
    }

    /// The connection writes go through, waiting for it if another write holds it.
    pub(crate) async fn writer(&self) -> Result<WriteConnection> {
        match &self.writer {
            Writer::Pool(pool) => Ok(WriteConnection::Pooled(pool.acquire().await?)),
            Writer::Held(held) => {
                let guard = held.clone().lock_owned().await;
                if guard.conn.is_none() {
                    return Err(sqlx::Error::PoolClosed.into());
                }
                Ok(WriteConnection::Held(guard))
            }
        }
    }

    /// Brings the schema up to the newest migration for this backend.
    #[tracing::instrument(skip_all)]
    pub async fn migrate(&self) -> Result<()> {
        let mut conn = self.writer().await?;
        match self.backend {
            Backend::Sqlite => {
                sqlx::migrate!("../migrations/sqlite")
                    .run(&mut *conn)
                    .await?
            }
            Backend::Postgres => {
                sqlx::migrate!("../migrations/postgres")
                    .run(&mut *conn)
                    .await?
            }
        }
        // The score log's conversion looks up its records' sequence numbers in `records`: it
        // goes first.
        crate::scores::convert_legacy_log(&mut conn, self.backend).await?;
        crate::datasets::history::convert_legacy_records(&mut conn, self.backend).await
    }

    /// A receiver that sees a new value after every committed change to a model alias made
    /// through this process's store (set, delete, promotion, rollback, a model renamed or
    /// deleted). Servers re-resolve `champion` when it changes; changes made by another process
    /// on the same database are not seen here, so they also re-resolve periodically.
    pub fn alias_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.aliases.subscribe()
    }

    /// Called after a transaction that changed an alias has committed.
    pub(crate) fn aliases_changed(&self) {
        self.aliases.send_modify(|n| *n += 1);
    }

    /// SQLite's direct readers, if this store has them.
    pub(crate) fn direct_readers(&self) -> Option<&Arc<DirectReaders>> {
        self.direct_read.as_ref()
    }

    /// The database this store runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    /// Connection counts over the store's pool (and SQLite's held writer, counted as in use
    /// while a write holds it).
    pub fn pool_stats(&self) -> PoolStats {
        let (mut size, mut idle) = (self.read.size(), self.read.num_idle() as u32);
        if let Writer::Held(conn) = &self.writer {
            size += 1;
            idle += u32::from(conn.try_lock().is_ok());
        }
        PoolStats { size, idle }
    }

    /// Waits for operations in progress to finish, then closes every connection.
    pub async fn close(&self) {
        if let Writer::Held(held) = &self.writer {
            let mut held = held.lock().await;
            if let Some(Err((_, e))) = held.direct.take().map(rusqlite::Connection::close) {
                tracing::warn!(error = %e, "closing the SQLite writer's direct connection");
            }
            if let Some(conn) = held.conn.take()
                && let Err(e) = conn.close().await
            {
                tracing::warn!(error = %e, "closing the SQLite writer");
            }
        }
        self.read.close().await;
        if let Writer::Pool(pool) = &self.writer {
            pool.close().await;
        }
    }
}

/// Runs a passive WAL checkpoint every second until the pool closes. Passive checkpoints copy
/// committed pages into the database file without blocking writers, so commits never pay for a
/// checkpoint; the WAL file is then reused from its start. Each checkpoint also syncs the
/// database file, on the same disk as the commits' syncs of the log: once a second rather than
/// five times (the interval until 2026-11) took sequential one-metric commits from 2,580–3,170
/// to 3,345–3,465 per second here, and the log is written out ahead to its working size anyway
/// (see [`preallocate_wal`]).
fn spawn_checkpointer(pool: AnyPool) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(1000));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if pool.is_closed() {
                break;
            }
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&pool)
                .await
            {
                if pool.is_closed() {
                    break;
                }
                tracing::warn!(error = %e, "background WAL checkpoint failed");
            }
        }
    });
}

/// Tables whose statistics the search plans depend on.
const ANALYZED_TABLES: [&str; 6] = [
    "runs",
    "params",
    "tags",
    "latest_metrics",
    "experiments",
    "model_versions",
];

/// Every 10 s, refreshes PostgreSQL's statistics of the tables searches read once a tenth of their
/// rows changed (autovacuum does the same, but only once a minute): a table that just grew from
/// empty still looks empty to the planner, which then picks plans that are fine for ten rows and
/// slow for ten thousand.
fn spawn_analyzer(pool: AnyPool) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if pool.is_closed() {
                break;
            }
            let stale = sqlx::query(
                "SELECT CAST(relname AS TEXT) AS relname FROM pg_stat_user_tables \
                 WHERE n_mod_since_analyze > 50 + n_live_tup / 10 \
                 AND relname IN ('runs', 'params', 'tags', 'latest_metrics', 'experiments', 'model_versions')",
            )
            .fetch_all(&pool)
            .await;
            let tables: Vec<String> = match stale {
                Ok(rows) => rows
                    .iter()
                    .filter_map(|r| sqlx::Row::try_get(r, "relname").ok())
                    .collect(),
                Err(e) => {
                    if !pool.is_closed() {
                        tracing::warn!(error = %e, "reading table statistics failed");
                    }
                    continue;
                }
            };
            for table in tables
                .iter()
                .filter(|t| ANALYZED_TABLES.contains(&t.as_str()))
            {
                // The name comes from the fixed list above, never from input.
                let statement = format!("ANALYZE {table}");
                if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(statement))
                    .execute(&pool)
                    .await
                {
                    tracing::warn!(error = %e, table, "ANALYZE failed");
                }
            }
        }
    });
}

/// WAL so readers never block the writer, full fsync on commit, foreign keys on, case-sensitive
/// LIKE as on PostgreSQL, and a busy timeout for other processes (the CLI). The writer keeps a
/// 32 MiB page cache for the pages its transactions change; readers read through the memory map
/// and keep 4 MiB each, so that a full pool does not hold hundreds of MiB of copies.
async fn configure_sqlite(conn: &mut AnyConnection, cache_kib: u32) -> sqlx::Result<()> {
    let pragmas = format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
         PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; \
         PRAGMA case_sensitive_like = ON; PRAGMA cache_size = -{cache_kib}; \
         PRAGMA mmap_size = 1073741824; PRAGMA temp_store = MEMORY;"
    );
    // Safe: the text is fixed but for an integer.
    conn.execute(sqlx::AssertSqlSafe(pragmas)).await?;
    Ok(())
}

/// Page cache of the writer connection, KiB.
const WRITER_CACHE_KIB: u32 = 32 * 1024;
/// Page cache of each pooled reader, KiB.
const READER_CACHE_KIB: u32 = 4 * 1024;

/// The writer's direct connection to the database file of `url` (see [`HeldWriter`]), with the
/// settings of [`configure_sqlite`] that matter for writing.
/// Its write-ahead log goes through [`crate::wal_writes`], which needs `synchronous = FULL` and
/// `cache_spill = OFF`: both are checked after they are set.
pub(crate) fn open_direct(url: &str) -> Result<rusqlite::Connection> {
    let options: sqlx::sqlite::SqliteConnectOptions = url.parse()?;
    crate::wal_writes::register().map_err(crate::Error::Integrity)?;
    let conn = rusqlite::Connection::open_with_flags_and_vfs(
        options.get_filename(),
        rusqlite::OpenFlags::default(),
        crate::wal_writes::NAME,
    )?;
    // Statement journals in memory, as on the pooled connections: on disk, a multi-row insert
    // in a larger transaction (a drift report's columns) spilled its journal to a temporary
    // file, a quarter of the time spent storing drift reports.
    conn.execute_batch(
        "PRAGMA synchronous = FULL; PRAGMA cache_spill = OFF; PRAGMA foreign_keys = ON; \
         PRAGMA busy_timeout = 10000; PRAGMA case_sensitive_like = ON; \
         PRAGMA temp_store = MEMORY;",
    )?;
    conn.execute_batch(WAL_AUTOCHECKPOINT)?;
    let synchronous: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
    let cache_spill: i64 = conn.query_row("PRAGMA cache_spill", [], |r| r.get(0))?;
    if (synchronous, cache_spill) != (2, 0) {
        return Err(crate::Error::Integrity(format!(
            "the SQLite writer connection has synchronous = {synchronous} and cache_spill = \
             {cache_spill}; its write-ahead log needs 2 (FULL) and 0"
        )));
    }
    Ok(conn)
}

/// Pages of write-ahead log after which the writer checkpoints (a safety net: the background
/// checkpointer normally keeps up).
const WAL_AUTOCHECKPOINT_PAGES: u64 = 16_384;
/// The pragma that sets it (a static string: sqlx keeps the query for the statement's lifetime).
const WAL_AUTOCHECKPOINT: &str = "PRAGMA wal_autocheckpoint = 16384";

/// The write-ahead log written out ahead of need by default: its size when the writer's automatic
/// checkpoint lets it restart (pages of 4 KiB plus a 24-byte header each, and the log's own
/// 32-byte header), about 64.4 MiB. Under sustained writes the log cycles within this size, so
/// no commit waits for the file system to allocate blocks (see `Store::connect`).
pub const DEFAULT_WAL_PREALLOCATION: u64 = WAL_AUTOCHECKPOINT_PAGES * (4096 + 24) + 32;

/// Extends the write-ahead log to `bytes` with zeros, written and synced, unless it is that long
/// already. A commit appends frames to the log and syncs it; while the log grows into blocks the
/// file never had, each sync must also commit the file system's allocation of them, which on
/// this kind of machine costs a third more per small commit (sequential one-metric commits:
/// 2,502 per second without this, 2,740 with 16 MiB written ahead, 3,577 with the default). The
/// log restarts from its beginning after a complete checkpoint, so
/// once written out to the size it cycles within, every commit is a data-only sync (PostgreSQL
/// zero-fills its WAL segments for the same reason). Zeros past the last frame are not frames: SQLite's recovery stops at
/// the first frame whose checksum fails. The write lock is held meanwhile, so no frame is
/// written concurrently, and only bytes past the file's end are touched.
fn preallocate_wal(conn: &rusqlite::Connection, bytes: u64) -> Result<()> {
    use std::io::Write;
    let Some(path) = conn.path().filter(|p| !p.is_empty()) else {
        return Ok(());
    };
    let wal = std::path::PathBuf::from(format!("{path}-wal"));
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let written = (|| -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&wal)?;
        let len = file.metadata()?.len();
        if len >= bytes {
            return Ok(());
        }
        let chunk = vec![0u8; 1 << 20];
        let mut left = bytes - len;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            file.write_all(&chunk[..n])?;
            left -= n as u64;
        }
        file.sync_all()
    })();
    conn.execute_batch("COMMIT")?;
    written.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!(
                "could not preallocate the write-ahead log {}: {e}",
                wal.display()
            ),
        )
        .into()
    })
}

/// Pool options for SQLite readers, configured like the writer.
fn sqlite_pool(max_connections: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(|conn: &mut AnyConnection, _meta| {
            Box::pin(configure_sqlite(conn, READER_CACHE_KIB))
        })
}

/// Adds `mode=rwc` so that a missing database file is created.
fn sqlite_url(url: &str) -> String {
    if url.contains("mode=") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

/// `url` with any password replaced, safe to print.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Milliseconds since the Unix epoch, the registry's unit of time.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A random 128-bit identifier as 32 lowercase hex digits (the shape of MLflow's run ids).
pub fn new_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    hex::encode(bytes)
}

/// Whether the table `name` exists (in the current schema, on PostgreSQL).
pub(crate) async fn table_exists(
    conn: &mut AnyConnection,
    backend: Backend,
    name: &str,
) -> Result<bool> {
    let sql = match backend {
        Backend::Sqlite => {
            "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = $1"
        }
        Backend::Postgres => {
            "SELECT COUNT(*) AS n FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = $1"
        }
    };
    let n: i64 = sqlx::query(sql)
        .bind(name)
        .fetch_one(conn)
        .await?
        .try_get("n")?;
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_autocheckpoint_pragma_names_its_page_count() {
        assert_eq!(
            WAL_AUTOCHECKPOINT,
            format!("PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
        );
    }

    #[test]
    fn the_direct_writer_keeps_its_temporary_files_in_memory() {
        let path = std::env::temp_dir().join(format!("refit-temp-store-{}.db", std::process::id()));
        let conn = open_direct(&format!("sqlite://{}", path.display())).unwrap();
        let temp_store: i64 = conn
            .query_row("PRAGMA temp_store", [], |r| r.get(0))
            .unwrap();
        drop(conn);
        let _ = std::fs::remove_file(&path);
        assert_eq!(temp_store, 2, "2 is MEMORY");
    }

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://a.db"), "sqlite://a.db");
    }

    #[test]
    fn sqlite_urls_create_missing_files() {
        assert_eq!(sqlite_url("sqlite://a.db"), "sqlite://a.db?mode=rwc");
        assert_eq!(
            sqlite_url("sqlite://a.db?x=1"),
            "sqlite://a.db?x=1&mode=rwc"
        );
        assert_eq!(sqlite_url("sqlite://a.db?mode=ro"), "sqlite://a.db?mode=ro");
    }

    #[test]
    fn ids_are_32_hex_digits_and_differ() {
        let (a, b) = (new_id(), new_id());
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
