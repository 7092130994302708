//! A small builder for statements assembled at run time (searches, multi-row inserts): static SQL
//! fragments plus `$n` placeholders, with every value bound, never interpolated.

use sqlx::any::{Any, AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{AnyConnection, AssertSqlSafe};

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Bind {
    I64(i64),
    F64(f64),
    Text(String),
    NullText,
    NullI64,
    Bytes(Vec<u8>),
}

impl From<Vec<u8>> for Bind {
    fn from(v: Vec<u8>) -> Self {
        Bind::Bytes(v)
    }
}

impl From<i64> for Bind {
    fn from(v: i64) -> Self {
        Bind::I64(v)
    }
}

impl From<f64> for Bind {
    fn from(v: f64) -> Self {
        Bind::F64(v)
    }
}

impl From<&str> for Bind {
    fn from(v: &str) -> Self {
        Bind::Text(v.to_string())
    }
}

impl From<String> for Bind {
    fn from(v: String) -> Self {
        Bind::Text(v)
    }
}

impl From<Option<i64>> for Bind {
    fn from(v: Option<i64>) -> Self {
        v.map_or(Bind::NullI64, Bind::I64)
    }
}

impl From<Option<&str>> for Bind {
    fn from(v: Option<&str>) -> Self {
        v.map_or(Bind::NullText, Bind::from)
    }
}

impl rusqlite::ToSql for Bind {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Bind::I64(v) => ValueRef::Integer(*v),
            Bind::F64(v) => ValueRef::Real(*v),
            Bind::Text(v) => ValueRef::Text(v.as_bytes()),
            Bind::NullText | Bind::NullI64 => ValueRef::Null,
            Bind::Bytes(v) => ValueRef::Blob(v),
        }))
    }
}

/// SQL text being assembled and the values for its placeholders, in order.
#[derive(Debug, Default, Clone)]
pub(crate) struct Sql {
    text: String,
    binds: Vec<Bind>,
    /// Planned for each call's values rather than cached; see [`Sql::planned_per_call`].
    per_call: bool,
}

impl Sql {
    pub(crate) fn new(text: &str) -> Self {
        Sql {
            text: text.to_string(),
            binds: Vec::new(),
            per_call: false,
        }
    }

    /// Appends a static fragment.
    pub(crate) fn push(&mut self, fragment: &str) -> &mut Self {
        self.text.push_str(fragment);
        self
    }

    /// Appends a placeholder for `value`.
    pub(crate) fn bind(&mut self, value: impl Into<Bind>) -> &mut Self {
        self.binds.push(value.into());
        self.text.push('$');
        self.text.push_str(&self.binds.len().to_string());
        self
    }

    /// Appends `(v1, v2, ...)` with one placeholder per value.
    pub(crate) fn bind_list<I, B>(&mut self, values: I) -> &mut Self
    where
        I: IntoIterator<Item = B>,
        B: Into<Bind>,
    {
        self.push("(");
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind(v);
        }
        self.push(")")
    }

    /// Has PostgreSQL plan the statement for the values of each call (no effect on SQLite). A cached statement gets a
    /// generic plan after five calls when that plan looks no costlier than the ones made for the
    /// values, and for a search it can be far worse: the best plan depends on how selective the
    /// filter's values are. (Found in 2026-11: a generic plan that scanned `latest_metrics` took a
    /// run search from 10 to 17 ms.) Planning again costs well under a millisecond.
    pub(crate) fn planned_per_call(&mut self) -> &mut Self {
        self.per_call = true;
        self
    }

    /// Puts the statement between two static fragments, e.g. into a subquery. The fragments hold
    /// no placeholders, so the numbering of the statement's own stays as it is.
    pub(crate) fn enclose(&mut self, before: &str, after: &str) -> &mut Self {
        debug_assert!(!before.contains('$') && !after.contains('$'));
        self.text.insert_str(0, before);
        self.text.push_str(after);
        self
    }

    #[cfg(test)]
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// The statement for the backend of `conn`, ready to execute. On SQLite, placeholders become
    /// anonymous `?` (binds are in text order): SQLite looks a numbered parameter up by a linear
    /// scan of the statement's names, which made a 600-value multi-row insert quadratic.
    ///
    /// The statement is kept in the connection's prepared-statement cache like a static one: its
    /// text varies only with the shape of a request (how many rows, which filters), never with
    /// values, so the same shapes recur and re-preparing them would cost more than caching.
    fn build(self, conn: &AnyConnection) -> Query<'static, Any, AnyArguments> {
        let sqlite = conn.backend_name() == "SQLite";
        let text = if sqlite {
            anonymous_placeholders(&self.text)
        } else {
            self.text
        };
        // Safe: `text` holds only static fragments and placeholders; every value is in `binds`.
        // SQLite has no generic plans: its statements stay cached.
        let mut query = sqlx::query(AssertSqlSafe(text)).persistent(sqlite || !self.per_call);
        for b in self.binds {
            query = match b {
                Bind::I64(v) => query.bind(v),
                Bind::F64(v) => query.bind(v),
                Bind::Text(v) => query.bind(v),
                Bind::NullText => query.bind(None::<String>),
                Bind::NullI64 => query.bind(None::<i64>),
                Bind::Bytes(v) => query.bind(v),
            };
        }
        query
    }

    /// Runs the statement on a direct SQLite connection (the writer's, see `db.rs`), returning
    /// the number of rows it changed. Cached like [`Sql::build`]'s statements.
    pub(crate) fn execute_direct(self, conn: &rusqlite::Connection) -> rusqlite::Result<u64> {
        let mut statement = conn.prepare_cached(&anonymous_placeholders(&self.text))?;
        Ok(statement.execute(rusqlite::params_from_iter(&self.binds))? as u64)
    }

    /// Runs the query on a direct SQLite connection, handing each row to `each`.
    /// Each row of the statement's answer on a direct SQLite connection, as `row` reads it.
    pub(crate) fn rows_direct<T>(
        self,
        conn: &rusqlite::Connection,
        row: impl Fn(&rusqlite::Row<'_>) -> crate::Result<T>,
    ) -> crate::Result<Vec<T>> {
        let mut rows = Vec::new();
        let mut failed = None;
        self.query_direct(conn, |r| {
            match row(r) {
                Ok(value) => rows.push(value),
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
            Ok(())
        })?;
        failed.map_or(Ok(rows), Err)
    }

    pub(crate) fn query_direct(
        self,
        conn: &rusqlite::Connection,
        mut each: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<()>,
    ) -> rusqlite::Result<()> {
        let mut statement = conn.prepare_cached(&anonymous_placeholders(&self.text))?;
        let mut rows = statement.query(rusqlite::params_from_iter(&self.binds))?;
        while let Some(row) = rows.next()? {
            each(row)?;
        }
        Ok(())
    }

    /// Runs the statement, returning the number of rows it changed.
    pub(crate) async fn execute(self, conn: &mut AnyConnection) -> sqlx::Result<u64> {
        let query = self.build(conn);
        Ok(query.execute(conn).await?.rows_affected())
    }

    /// Runs the query, returning every row.
    pub(crate) async fn fetch_all(self, conn: &mut AnyConnection) -> sqlx::Result<Vec<AnyRow>> {
        let query = self.build(conn);
        query.fetch_all(conn).await
    }
}

/// Where a long write's statements run: a sqlx connection (inside the caller's transaction), or
/// the SQLite writer's direct connection inside a [`DirectTransaction`]. Large statements on the
/// direct connection run without sqlx's hand-off of every bound value and returned row between
/// its worker thread and the task, which for the thousands of rows of a stream batch cost more
/// than the writes themselves.
pub(crate) enum Tx<'a> {
    Any(&'a mut AnyConnection),
    Direct(&'a mut rusqlite::Connection),
}

impl Tx<'_> {
    /// Runs the statement, returning the number of rows it changed.
    pub(crate) async fn execute(&mut self, sql: Sql) -> crate::Result<u64> {
        Ok(match self {
            Tx::Any(conn) => sql.execute(conn).await?,
            Tx::Direct(conn) => blocking(sql.binds.len(), || sql.execute_direct(conn))?,
        })
    }

    /// The first column of the first row the query returns, an integer.
    pub(crate) async fn fetch_i64(&mut self, sql: Sql) -> crate::Result<i64> {
        use sqlx::Row;
        match self {
            Tx::Any(conn) => Ok(sql
                .fetch_all(conn)
                .await?
                .first()
                .ok_or(sqlx::Error::RowNotFound)?
                .try_get(0)?),
            Tx::Direct(conn) => {
                let mut value = None;
                sql.query_direct(conn, |r| {
                    value = value.or(Some(r.get(0)?));
                    Ok(())
                })?;
                Ok(value.ok_or(sqlx::Error::RowNotFound)?)
            }
        }
    }

    /// Adds `n` to the dataset's counter `column` (under its row lock until commit) and returns
    /// the counter's value before: the first of the `n` numbers reserved.
    pub(crate) async fn reserve(
        &mut self,
        column: &'static str,
        dataset_id: i64,
        n: i64,
    ) -> crate::Result<i64> {
        let mut sql = Sql::new(&format!("UPDATE datasets SET {column} = {column} + "));
        sql.bind(n)
            .push(" WHERE id = ")
            .bind(dataset_id)
            .push(&format!(" RETURNING {column} - "))
            .bind(n)
            .push(" AS first");
        self.fetch_i64(sql).await
    }

    /// Runs `f` on the direct SQLite connection, as blocking work when `binds` is large; `None`
    /// (and `f` not run) on a sqlx connection.
    pub(crate) fn with_direct<T>(
        &mut self,
        binds: usize,
        f: impl FnOnce(&rusqlite::Connection) -> T,
    ) -> Option<T> {
        match self {
            Tx::Any(_) => None,
            Tx::Direct(conn) => Some(blocking(binds, || f(conn))),
        }
    }

    /// Every row the query returns, as `T`.
    pub(crate) async fn fetch_all<T: Columns>(&mut self, sql: Sql) -> crate::Result<Vec<T>> {
        self.fetch_rows(sql, |r| Ok(T::from_any(r)?), |r| Ok(T::from_direct(r)?))
            .await
    }

    /// Every row the query returns, read by `any` from sqlx's rows or by `direct` from the direct
    /// connection's.
    pub(crate) async fn fetch_rows<T>(
        &mut self,
        sql: Sql,
        any: impl Fn(&AnyRow) -> crate::Result<T>,
        direct: impl Fn(&rusqlite::Row<'_>) -> crate::Result<T>,
    ) -> crate::Result<Vec<T>> {
        match self {
            Tx::Any(conn) => sql.fetch_all(conn).await?.iter().map(any).collect(),
            Tx::Direct(conn) => blocking(sql.binds.len(), || sql.rows_direct(conn, direct)),
        }
    }
}

/// A row's columns, read from either kind of connection: a tuple of column types both read.
pub(crate) trait Columns: Sized {
    fn from_any(row: &AnyRow) -> sqlx::Result<Self>;
    fn from_direct(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self>;
}

/// A column type both sqlx's `Any` driver and rusqlite read.
pub(crate) trait Column:
    for<'r> sqlx::Decode<'r, Any> + sqlx::Type<Any> + rusqlite::types::FromSql
{
}

impl<T> Column for T where
    T: for<'r> sqlx::Decode<'r, Any> + sqlx::Type<Any> + rusqlite::types::FromSql
{
}

impl<A: Column> Columns for (A,) {
    fn from_any(row: &AnyRow) -> sqlx::Result<Self> {
        use sqlx::Row;
        Ok((row.try_get(0)?,))
    }
    fn from_direct(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok((row.get(0)?,))
    }
}

impl<A: Column, B: Column> Columns for (A, B) {
    fn from_any(row: &AnyRow) -> sqlx::Result<Self> {
        use sqlx::Row;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }
    fn from_direct(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok((row.get(0)?, row.get(1)?))
    }
}

impl<A: Column, B: Column, C: Column> Columns for (A, B, C) {
    fn from_any(row: &AnyRow) -> sqlx::Result<Self> {
        use sqlx::Row;
        Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
    }
    fn from_direct(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
    }
}

/// A transaction on the SQLite writer's direct connection (`BEGIN IMMEDIATE`), rolled back when
/// dropped uncommitted — also when the task that holds it is cancelled half-way.
pub(crate) struct DirectTransaction<'a> {
    conn: &'a mut rusqlite::Connection,
    open: bool,
}

impl<'a> DirectTransaction<'a> {
    pub(crate) fn begin(conn: &'a mut rusqlite::Connection) -> crate::Result<Self> {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(DirectTransaction { conn, open: true })
    }

    /// Statements in the transaction.
    pub(crate) fn tx(&mut self) -> Tx<'_> {
        Tx::Direct(self.conn)
    }

    pub(crate) fn commit(mut self) -> crate::Result<()> {
        // Blocks for the commit's `fsync`, as the writer's short transactions do.
        self.conn.execute_batch("COMMIT")?;
        self.open = false;
        Ok(())
    }
}

impl Drop for DirectTransaction<'_> {
    fn drop(&mut self) {
        if self.open
            && let Err(e) = self.conn.execute_batch("ROLLBACK")
        {
            tracing::warn!(error = %e, "rolling back the SQLite writer's direct transaction");
        }
    }
}

/// Binds above which a direct statement runs as blocking work ([`tokio::task::block_in_place`])
/// rather than right on the runtime thread: a batch's insert takes milliseconds, during which the
/// runtime hands this worker's other tasks to another thread.
const BLOCKING_BINDS: usize = 4096;

fn blocking<T>(binds: usize, f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let multi_thread =
        Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread);
    if binds >= BLOCKING_BINDS && multi_thread {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

/// `$1 ... $n` → `?` (fragments are static SQL without `$`, so every `$` starts a placeholder).
fn anonymous_placeholders(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' {
            out.push('?');
            while chars.peek().is_some_and(char::is_ascii_digit) {
                chars.next();
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_direct_transaction_dropped_uncommitted_is_rolled_back() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        let count = |conn: &rusqlite::Connection| -> i64 {
            conn.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
                .unwrap()
        };
        {
            let mut transaction = DirectTransaction::begin(&mut conn).unwrap();
            let Tx::Direct(c) = transaction.tx() else {
                unreachable!()
            };
            c.execute("INSERT INTO t VALUES (1)", []).unwrap();
            // Dropped here, as when the task that holds it is cancelled.
        }
        assert_eq!(count(&conn), 0);
        // The connection is out of the transaction: a new one begins and commits.
        let mut transaction = DirectTransaction::begin(&mut conn).unwrap();
        let mut insert = Sql::new("INSERT INTO t VALUES (");
        insert.bind(7i64).push(")");
        let Tx::Direct(c) = transaction.tx() else {
            unreachable!()
        };
        assert_eq!(insert.execute_direct(c).unwrap(), 1);
        transaction.commit().unwrap();
        assert_eq!(count(&conn), 1);
    }

    #[test]
    fn placeholders_are_numbered_in_order() {
        let mut sql = Sql::new("SELECT * FROM t WHERE a = ");
        sql.bind(1i64).push(" AND b IN ").bind_list(["x", "y"]);
        assert_eq!(sql.text(), "SELECT * FROM t WHERE a = $1 AND b IN ($2, $3)");
        assert_eq!(
            anonymous_placeholders(sql.text()),
            "SELECT * FROM t WHERE a = ? AND b IN (?, ?)"
        );
        assert_eq!(
            sql.binds,
            vec![Bind::I64(1), Bind::from("x"), Bind::from("y")]
        );
    }
}
