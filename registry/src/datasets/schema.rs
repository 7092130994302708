//! A dataset's schema: its feature and label columns, versioned. Every record also carries an
//! entity key (`machine_id`) and an event time (`ts`), which are not columns of the schema.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Error, Result};

/// Names a record's entity key and event time are sent under.
pub const ENTITY_KEY: &str = "machine_id";
/// See [`ENTITY_KEY`].
pub const TIME_KEY: &str = "ts";

/// Most feature plus label columns in a schema.
pub const MAX_COLUMNS: usize = 1000;

/// What kind of values a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ColumnKind {
    /// Finite 64-bit floating-point numbers.
    Numeric,
    /// Strings naming a category (e.g. AI4I's product `Type`: L, M, H).
    Categorical,
}

/// A feature or label column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Column {
    /// Column name, as sent in records.
    pub name: String,
    /// Kind of values.
    pub kind: ColumnKind,
    /// Whether the value may be missing (JSON `null` or absent). Default: no.
    #[serde(default)]
    pub nullable: bool,
}

/// The columns of a dataset. Changing them makes a new schema version; rows keep theirs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    /// Feature columns, in order.
    pub features: Vec<Column>,
    /// Label columns (targets), which may arrive later than the readings. Labels are always
    /// nullable: a record without them is a record whose labels are not known yet.
    #[serde(default)]
    pub labels: Vec<Column>,
}

impl Schema {
    /// Checks names and counts: unique, non-empty, not `machine_id` or `ts`.
    pub fn validate(&self) -> Result<()> {
        if self.features.is_empty() {
            return Err(Error::invalid("a schema needs at least one feature column"));
        }
        let total = self.features.len() + self.labels.len();
        if total > MAX_COLUMNS {
            return Err(Error::invalid(format!(
                "a schema may have at most {MAX_COLUMNS} columns, got {total}"
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for (part, columns) in [("features", &self.features), ("labels", &self.labels)] {
            for (i, c) in columns.iter().enumerate() {
                let at = format!("{part}[{i}]");
                if c.name.trim().is_empty()
                    || c.name.len() > 200
                    || c.name.chars().any(char::is_control)
                {
                    return Err(Error::invalid(format!(
                        "{at}: column names must be 1-200 characters without control characters"
                    )));
                }
                if c.name == ENTITY_KEY || c.name == TIME_KEY {
                    return Err(Error::invalid(format!(
                        "{at}: '{}' is the record's {} and cannot be a column",
                        c.name,
                        if c.name == ENTITY_KEY {
                            "entity key"
                        } else {
                            "event time"
                        }
                    )));
                }
                if !seen.insert(c.name.as_str()) {
                    return Err(Error::invalid(format!(
                        "{at}: column '{}' appears twice",
                        c.name
                    )));
                }
            }
        }
        Ok(())
    }

    /// The feature column named `name` and its position.
    pub fn feature(&self, name: &str) -> Option<(usize, &Column)> {
        self.features
            .iter()
            .enumerate()
            .find(|(_, c)| c.name == name)
    }

    /// The label column named `name` and its position.
    pub fn label(&self, name: &str) -> Option<(usize, &Column)> {
        self.labels.iter().enumerate().find(|(_, c)| c.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, kind: ColumnKind) -> Column {
        Column {
            name: name.into(),
            kind,
            nullable: false,
        }
    }

    #[test]
    fn schemas_refuse_duplicates_and_reserved_names() {
        let ok = Schema {
            features: vec![col("a", ColumnKind::Numeric)],
            labels: vec![col("y", ColumnKind::Numeric)],
        };
        assert!(ok.validate().is_ok());
        let dup = Schema {
            features: vec![col("a", ColumnKind::Numeric)],
            labels: vec![col("a", ColumnKind::Numeric)],
        };
        assert!(
            dup.validate()
                .unwrap_err()
                .to_string()
                .contains("labels[0]: column 'a' appears twice")
        );
        let reserved = Schema {
            features: vec![col("ts", ColumnKind::Numeric)],
            labels: vec![],
        };
        assert!(
            reserved
                .validate()
                .unwrap_err()
                .to_string()
                .contains("event time")
        );
        let empty = Schema {
            features: vec![],
            labels: vec![],
        };
        assert!(empty.validate().is_err());
    }
}
