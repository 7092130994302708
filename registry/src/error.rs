//! The registry's error type. The HTTP layer maps each variant to a status and an MLflow error code.

/// Everything a registry operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The named resource does not exist (MLflow: `RESOURCE_DOES_NOT_EXIST`).
    #[error("{0}")]
    NotFound(String),
    /// A resource with that identity already exists (MLflow: `RESOURCE_ALREADY_EXISTS`).
    #[error("{0}")]
    AlreadyExists(String),
    /// The caller sent a value the registry refuses (MLflow: `INVALID_PARAMETER_VALUE`).
    #[error("{0}")]
    InvalidParameter(String),
    /// The operation is not allowed in the resource's current state, e.g. revoking a revoked token
    /// (MLflow: `INVALID_STATE`).
    #[error("{0}")]
    InvalidState(String),
    /// Stored bytes no longer match their recorded digest.
    #[error("integrity check failed: {0}")]
    Integrity(String),
    /// Reading the bytes to store failed.
    #[error("reading input: {0}")]
    Io(#[from] std::io::Error),
    /// The database failed; details are logged, never shown to clients.
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// The SQLite writer's direct connection failed; details are logged, never shown to clients.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Applying the schema migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Shorthand for results of registry operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// True when the database is overloaded or shutting down: worth retrying, not the caller's fault.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Database(e) => matches!(
                e,
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)
            ),
            Error::Sqlite(e) => matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            _ => false,
        }
    }

    pub(crate) fn not_found(what: impl std::fmt::Display) -> Self {
        Error::NotFound(what.to_string())
    }

    pub(crate) fn invalid(what: impl std::fmt::Display) -> Self {
        Error::InvalidParameter(what.to_string())
    }
}

/// PostgreSQL's SQLSTATE for text it cannot hold: `character_not_in_repertoire`.
const PG_CHARACTER_NOT_IN_REPERTOIRE: &str = "22021";

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        // PostgreSQL refuses NUL in text wherever it is bound, in writes and lookups alike; that
        // is the caller's input, not a failure of the server. (SQLite stores it.)
        let code = err.as_database_error().and_then(|e| e.code());
        if code.as_deref() == Some(PG_CHARACTER_NOT_IN_REPERTOIRE) {
            return Error::invalid("text values must not contain NUL (\\u0000) characters");
        }
        Error::Database(err)
    }
}

/// True when the database refused a write because of a unique or primary-key constraint.
pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|e| e.is_unique_violation())
}
