//! Tree models for tabular machine data, in pure Rust: CART decision trees, random forests and
//! gradient boosting, each for classification and regression.
//!
//! They follow scikit-learn's estimators of the same names closely enough that the same
//! hyperparameters give the same kind of model (same split rules, defaults, leaf values and
//! probability averaging); the random streams differ, so individual trees do not match
//! scikit-learn's bit for bit.
//!
//! Every learner goes params → [`check`](TreeParams::check) → valid params → `fit_*` → model:
//! hyperparameters are validated once, with the offending field named in
//! [`TreeError::InvalidParam`]. Models are `serde`-serializable (same fit, same bytes) and
//! predict with `predict(x)`; classifiers also give `predict_proba(x)`, with columns in the
//! order of `classes()`. Class labels are `f64` values such as `0.0` / `1.0`.
//!
//! Missing values are not supported: fitting rejects NaN and infinities, and at prediction a
//! NaN fails every `x <= threshold` test and goes right. Fitting is CPU-bound and blocking
//! (forests use up to [`ForestParams::n_threads`] scoped threads): call it from a blocking
//! thread, not from an async runtime's worker.
//!
//! ```
//! use ndarray::{Array1, Array2, array};
//! use refit_trainer::trees::{ForestParams, TreeError};
//!
//! # fn main() -> Result<(), TreeError> {
//! // Failure (1.0) above 10 on the first feature; the second is noise.
//! let x = Array2::from_shape_fn((20, 2), |(i, j)| if j == 0 { i as f64 } else { (i % 3) as f64 });
//! let y = Array1::from_shape_fn(20, |i| if i < 10 { 0.0 } else { 1.0 });
//! let forest = ForestParams::new().n_estimators(10).seed(7).check()?.fit_classifier(x.view(), y.view())?;
//! let new = array![[2.0, 0.0], [17.0, 1.0]];
//! assert_eq!(forest.predict(new.view()), array![0.0, 1.0]);
//! assert_eq!(forest.predict_proba(new.view()).ncols(), 2); // columns: forest.classes()
//! # Ok(())
//! # }
//! ```

mod boosting;
mod cart;
mod criterion;
mod data;
mod error;
mod forest;
mod grow;
mod rng;
mod tree;

use serde::{Deserialize, Serialize};

pub use boosting::{
    BoostingParams, GradientBoostingClassifier, GradientBoostingRegressor, ValidBoostingParams,
};
pub use cart::{DecisionTreeClassifier, DecisionTreeRegressor, TreeParams, ValidTreeParams};
pub use error::TreeError;
pub use forest::{ForestParams, RandomForestClassifier, RandomForestRegressor, ValidForestParams};

/// How many features a node considers when it looks for a split (scikit-learn's
/// `max_features`). The features are drawn at random per node.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum MaxFeatures {
    /// Every feature (scikit-learn's `None` / `1.0`).
    All,
    /// `max(1, floor(sqrt(n_features)))`.
    Sqrt,
    /// `max(1, floor(log2(n_features)))`.
    Log2,
    /// `max(1, floor(fraction * n_features))`, with the fraction in `(0, 1]`.
    Fraction(f64),
    /// A fixed count in `1..=n_features`.
    Count(usize),
}

impl MaxFeatures {
    /// Checks what can be checked without the data.
    fn check(self, field: &'static str) -> Result<(), TreeError> {
        match self {
            Self::Fraction(f) if !(f > 0.0 && f <= 1.0) => Err(TreeError::invalid(
                field,
                format!("fraction must be in (0, 1], got {f}"),
            )),
            Self::Count(0) => Err(TreeError::invalid(field, "count must be at least 1")),
            _ => Ok(()),
        }
    }

    /// The number of features per node for data with `n_features` columns.
    fn resolve(self, field: &'static str, n_features: usize) -> Result<usize, TreeError> {
        let n = n_features as f64;
        let count = match self {
            Self::All => n_features,
            Self::Sqrt => n.sqrt() as usize,
            Self::Log2 => n.log2() as usize,
            Self::Fraction(f) => (f * n) as usize,
            Self::Count(c) if c > n_features => {
                return Err(TreeError::invalid(
                    field,
                    format!("count {c} exceeds the {n_features} features of x"),
                ));
            }
            Self::Count(c) => c,
        };
        Ok(count.clamp(1, n_features))
    }
}

/// The impurity a classification tree minimises (scikit-learn's `criterion`). Regression trees
/// always use the squared error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ClassCriterion {
    /// Gini impurity, `1 - sum p_k^2` (the default).
    #[default]
    Gini,
    /// Shannon entropy in bits, `-sum p_k log2 p_k`.
    Entropy,
}

#[cfg(test)]
mod tests;
