//! The connection to the registry's database: one store over SQLite or PostgreSQL through sqlx's
//! `Any` driver, with the same portable SQL for both.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, AnyPool, Executor};

use crate::error::Result;

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
}

impl StoreOptions {
    /// Options for `url` with the default pool size.
    pub fn new(url: impl Into<String>) -> Self {
        StoreOptions {
            url: url.into(),
            max_connections: 8,
        }
    }
}

/// The registry's storage. Cheap to clone: all clones share the pools.
///
/// On SQLite, writes go through a pool of exactly one connection, so writers queue in the pool
/// instead of failing with `SQLITE_BUSY`, while reads run on their own connections under WAL.
/// Every commit is durable (`synchronous=FULL`): a write acknowledged to a client survives a
/// crash of the process or of the machine.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) read: AnyPool,
    pub(crate) write: AnyPool,
    backend: Backend,
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
        let store = match backend {
            Backend::Sqlite => {
                let url = sqlite_url(&options.url);
                let write = sqlite_pool(1).connect(&url).await?;
                let read = sqlite_pool(options.max_connections.max(1))
                    .connect(&url)
                    .await?;
                Store {
                    read,
                    write,
                    backend,
                }
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(options.max_connections.max(2))
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(&options.url)
                    .await?;
                Store {
                    read: pool.clone(),
                    write: pool,
                    backend,
                }
            }
        };
        Ok(store)
    }

    /// Brings the schema up to the newest migration for this backend.
    #[tracing::instrument(skip_all)]
    pub async fn migrate(&self) -> Result<()> {
        match self.backend {
            Backend::Sqlite => {
                sqlx::migrate!("../migrations/sqlite")
                    .run(&self.write)
                    .await?
            }
            Backend::Postgres => {
                sqlx::migrate!("../migrations/postgres")
                    .run(&self.write)
                    .await?
            }
        }
        Ok(())
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

    /// Connection counts over all of the store's pools.
    pub fn pool_stats(&self) -> PoolStats {
        let (mut size, mut idle) = (self.read.size(), self.read.num_idle() as u32);
        if self.backend == Backend::Sqlite {
            size += self.write.size();
            idle += self.write.num_idle() as u32;
        }
        PoolStats { size, idle }
    }

    /// Waits for connections in use to be returned, then closes them all.
    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }
}

/// Pool options for SQLite: WAL so readers never block the writer, full fsync on commit, foreign
/// keys on, case-sensitive LIKE as on PostgreSQL, and a busy timeout for other processes (the CLI).
fn sqlite_pool(max_connections: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(|conn: &mut AnyConnection, _meta| {
            Box::pin(async move {
                conn.execute(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; \
                     PRAGMA case_sensitive_like = ON;",
                )
                .await?;
                Ok(())
            })
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

#[cfg(test)]
mod tests {
    use super::*;

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
