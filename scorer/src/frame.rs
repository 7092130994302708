//! Model inputs: a batch of rows as columns, in the model's feature order, before any encoding.

use refit_registry::datasets::Value;

/// One input column.
#[derive(Debug, Clone, PartialEq)]
pub enum FeatureColumn {
    /// Numbers; `NaN` marks a missing value.
    Numeric(Vec<f64>),
    /// Categories; `None` marks a missing value.
    Categorical(Vec<Option<String>>),
}

impl FeatureColumn {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            FeatureColumn::Numeric(v) => v.len(),
            FeatureColumn::Categorical(v) => v.len(),
        }
    }

    /// Whether the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A batch of rows, column by column.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FeatureFrame {
    /// Number of rows.
    pub rows: usize,
    /// Columns in the model's feature order.
    pub columns: Vec<FeatureColumn>,
}

impl FeatureFrame {
    /// Builds a frame from rows of values: `pick[j]` is the position in each row of the model's
    /// `j`-th feature, and `numeric[j]` whether that feature is numeric.
    pub fn from_rows<'a>(
        rows: impl ExactSizeIterator<Item = &'a [Value]>,
        pick: &[usize],
        numeric: &[bool],
    ) -> FeatureFrame {
        let n = rows.len();
        let mut columns: Vec<FeatureColumn> = numeric
            .iter()
            .map(|&num| {
                if num {
                    FeatureColumn::Numeric(Vec::with_capacity(n))
                } else {
                    FeatureColumn::Categorical(Vec::with_capacity(n))
                }
            })
            .collect();
        for row in rows {
            for (column, &at) in columns.iter_mut().zip(pick) {
                match (column, &row[at]) {
                    (FeatureColumn::Numeric(v), Value::Number(x)) => v.push(*x),
                    (FeatureColumn::Numeric(v), _) => v.push(f64::NAN),
                    (FeatureColumn::Categorical(v), Value::Text(s)) => v.push(Some(s.clone())),
                    (FeatureColumn::Categorical(v), Value::Number(x)) => {
                        v.push(Some(x.to_string()))
                    }
                    (FeatureColumn::Categorical(v), Value::Missing) => v.push(None),
                }
            }
        }
        FeatureFrame { rows: n, columns }
    }
}
