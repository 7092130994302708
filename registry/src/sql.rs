//! A small builder for statements assembled at run time (searches, multi-row inserts): static SQL
//! fragments plus `$n` placeholders, with every value bound, never interpolated.

use sqlx::AssertSqlSafe;
use sqlx::any::{Any, AnyArguments};
use sqlx::query::Query;

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Bind {
    I64(i64),
    F64(f64),
    Text(String),
    NullText,
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

impl From<Option<&str>> for Bind {
    fn from(v: Option<&str>) -> Self {
        v.map_or(Bind::NullText, Bind::from)
    }
}

/// SQL text being assembled and the values for its placeholders, in order.
#[derive(Debug, Default, Clone)]
pub(crate) struct Sql {
    text: String,
    binds: Vec<Bind>,
}

impl Sql {
    pub(crate) fn new(text: &str) -> Self {
        Sql {
            text: text.to_string(),
            binds: Vec::new(),
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

    #[cfg(test)]
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// The statement, ready to execute. It is kept in the connection's prepared-statement cache
    /// like a static one: its text varies only with the shape of a request (how many rows, which
    /// filters), never with values, so the same shapes recur and re-preparing them would cost
    /// more than caching.
    pub(crate) fn build(self) -> Query<'static, Any, AnyArguments> {
        // Safe: `text` holds only static fragments and placeholders; every value is in `binds`.
        let mut query = sqlx::query(AssertSqlSafe(self.text));
        for b in self.binds {
            query = match b {
                Bind::I64(v) => query.bind(v),
                Bind::F64(v) => query.bind(v),
                Bind::Text(v) => query.bind(v),
                Bind::NullText => query.bind(None::<String>),
            };
        }
        query
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_order() {
        let mut sql = Sql::new("SELECT * FROM t WHERE a = ");
        sql.bind(1i64).push(" AND b IN ").bind_list(["x", "y"]);
        assert_eq!(sql.text(), "SELECT * FROM t WHERE a = $1 AND b IN ($2, $3)");
        assert_eq!(
            sql.binds,
            vec![Bind::I64(1), Bind::from("x"), Bind::from("y")]
        );
    }
}
