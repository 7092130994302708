//! The one error type of the tree learners.

/// Why a tree learner refused its hyperparameters or its training data.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TreeError {
    /// A hyperparameter is out of range; `field` is its name as in the params builder.
    #[error("invalid hyperparameter `{field}`: {reason}")]
    InvalidParam {
        /// The builder method / field that holds the bad value, e.g. `"min_samples_leaf"`.
        field: &'static str,
        /// What is wrong with it, including the value.
        reason: String,
    },
    /// `x` has no rows or no columns.
    #[error("training data is empty: x is {rows} x {columns}")]
    EmptyData {
        /// Rows of `x`.
        rows: usize,
        /// Columns of `x`.
        columns: usize,
    },
    /// `x` and `y` disagree on the number of samples.
    #[error("x has {x_rows} rows but y has {y_len} values")]
    LengthMismatch {
        /// Rows of `x`.
        x_rows: usize,
        /// Length of `y`.
        y_len: usize,
    },
    /// `x` holds a NaN or an infinity (the learners do not handle missing values).
    #[error("x has a non-finite value at row {row}, column {column}")]
    NonFiniteFeature {
        /// Row of the first offending value.
        row: usize,
        /// Column of the first offending value.
        column: usize,
    },
    /// `y` holds a NaN or an infinity.
    #[error("y has a non-finite value at row {row}")]
    NonFiniteTarget {
        /// Row of the first offending value.
        row: usize,
    },
    /// A classifier that needs several classes saw fewer.
    #[error("classification needs at least {needed} classes, y has {found}")]
    TooFewClasses {
        /// Classes the learner needs.
        needed: usize,
        /// Distinct labels in `y`.
        found: usize,
    },
    /// More rows than the learners index (`u32::MAX`).
    #[error("x has {rows} rows, more than the supported {max}")]
    TooManyRows {
        /// Rows of `x`.
        rows: usize,
        /// The largest supported number of rows.
        max: usize,
    },
}

impl TreeError {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidParam {
            field,
            reason: reason.into(),
        }
    }
}
