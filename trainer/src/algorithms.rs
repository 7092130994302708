//! The algorithms a spec may use and their hyperparameters: names, types, ranges and defaults,
//! checked once when the spec is validated.

use std::collections::BTreeMap;
use std::fmt;

use refit_scorer::Task;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A learning algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// Ordinary least squares (linfa-linear).
    LinearRegression,
    /// Linear regression with L1 and L2 penalties (linfa-elasticnet).
    ElasticNet,
    /// Logistic regression, binary or multinomial, L2-penalised (linfa-logistic).
    LogisticRegression,
    /// Gaussian naive Bayes (linfa-bayes).
    GaussianNb,
    /// One CART tree, classification or regression (refit's trees).
    DecisionTree,
    /// A random forest of CART trees (refit's trees).
    RandomForest,
    /// Gradient-boosted trees (refit's trees).
    GradientBoosting,
}

impl Algorithm {
    /// The name as written in specs.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::LinearRegression => "linear_regression",
            Algorithm::ElasticNet => "elastic_net",
            Algorithm::LogisticRegression => "logistic_regression",
            Algorithm::GaussianNb => "gaussian_nb",
            Algorithm::DecisionTree => "decision_tree",
            Algorithm::RandomForest => "random_forest",
            Algorithm::GradientBoosting => "gradient_boosting",
        }
    }

    /// Whether the algorithm can learn `task`.
    pub fn supports(self, task: Task) -> bool {
        match self {
            Algorithm::LinearRegression | Algorithm::ElasticNet => task == Task::Regression,
            Algorithm::LogisticRegression | Algorithm::GaussianNb => task != Task::Regression,
            Algorithm::DecisionTree | Algorithm::RandomForest | Algorithm::GradientBoosting => true,
        }
    }

    /// The hyperparameters it takes.
    pub fn params(self) -> &'static [ParamSpec] {
        match self {
            Algorithm::LinearRegression => LINEAR_PARAMS,
            Algorithm::ElasticNet => ELASTIC_NET_PARAMS,
            Algorithm::LogisticRegression => LOGISTIC_PARAMS,
            Algorithm::GaussianNb => NB_PARAMS,
            Algorithm::DecisionTree => TREE_PARAMS,
            Algorithm::RandomForest => FOREST_PARAMS,
            Algorithm::GradientBoosting => BOOSTING_PARAMS,
        }
    }
}

const fn p(name: &'static str, kind: ParamKind) -> ParamSpec {
    ParamSpec { name, kind }
}

const ANY_ALPHA: ParamKind = ParamKind::Float {
    min: 0.0,
    max: f64::MAX,
};
const ITERATIONS: ParamKind = ParamKind::Int {
    min: 1,
    max: 1_000_000,
};
const TOLERANCE: ParamKind = ParamKind::Float {
    min: 1e-15,
    max: 1.0,
};
const DEPTH: ParamKind = ParamKind::OptionalInt { min: 1, max: 1000 };
const SPLIT: ParamKind = ParamKind::Int {
    min: 2,
    max: 1_000_000,
};
const LEAF: ParamKind = ParamKind::Int {
    min: 1,
    max: 1_000_000,
};
const ESTIMATORS: ParamKind = ParamKind::Int { min: 1, max: 5000 };

const LINEAR_PARAMS: &[ParamSpec] = &[p("fit_intercept", ParamKind::Bool)];
const ELASTIC_NET_PARAMS: &[ParamSpec] = &[
    p("alpha", ANY_ALPHA),
    p("l1_ratio", ParamKind::Float { min: 0.0, max: 1.0 }),
    p("max_iterations", ITERATIONS),
    p("tolerance", TOLERANCE),
];
const LOGISTIC_PARAMS: &[ParamSpec] = &[
    p("alpha", ANY_ALPHA),
    p("max_iterations", ITERATIONS),
    p("gradient_tolerance", TOLERANCE),
];
const NB_PARAMS: &[ParamSpec] = &[p("var_smoothing", ParamKind::Float { min: 0.0, max: 1.0 })];
const TREE_PARAMS: &[ParamSpec] = &[
    p("max_depth", DEPTH),
    p("min_samples_split", SPLIT),
    p("min_samples_leaf", LEAF),
    p(
        "criterion",
        ParamKind::Choice(&["gini", "entropy", "squared_error"]),
    ),
];
const FOREST_PARAMS: &[ParamSpec] = &[
    p("n_estimators", ESTIMATORS),
    p("max_depth", DEPTH),
    p("min_samples_split", SPLIT),
    p("min_samples_leaf", LEAF),
    p("max_features", ParamKind::MaxFeatures),
    p("bootstrap", ParamKind::Bool),
];
const BOOSTING_PARAMS: &[ParamSpec] = &[
    p("n_estimators", ESTIMATORS),
    p(
        "learning_rate",
        ParamKind::Float {
            min: 1e-6,
            max: 10.0,
        },
    ),
    p("max_depth", DEPTH),
    p("min_samples_split", SPLIT),
    p("min_samples_leaf", LEAF),
    p(
        "subsample",
        ParamKind::Float {
            min: 1e-6,
            max: 1.0,
        },
    ),
];

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A hyperparameter value as written in JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A number with a fraction.
    Float(f64),
    /// A word, e.g. `"sqrt"`.
    Text(String),
    /// `null` (e.g. no depth limit).
    Null,
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Bool(b) => write!(f, "{b}"),
            ParamValue::Int(i) => write!(f, "{i}"),
            ParamValue::Float(x) => write!(f, "{x}"),
            ParamValue::Text(s) => f.write_str(s),
            ParamValue::Null => f.write_str("null"),
        }
    }
}

/// The type and range of a hyperparameter.
#[derive(Debug, Clone, Copy)]
pub enum ParamKind {
    /// `true` or `false`.
    Bool,
    /// An integer in `[min, max]`.
    Int {
        /// Smallest allowed.
        min: i64,
        /// Largest allowed.
        max: i64,
    },
    /// An integer in `[min, max]`, or `null` for "no limit".
    OptionalInt {
        /// Smallest allowed.
        min: i64,
        /// Largest allowed.
        max: i64,
    },
    /// A number in `[min, max]`.
    Float {
        /// Smallest allowed.
        min: f64,
        /// Largest allowed.
        max: f64,
    },
    /// One of these words.
    Choice(&'static [&'static str]),
    /// `"sqrt"`, `"log2"`, `null` (all), a fraction in (0, 1], or a count ≥ 1.
    MaxFeatures,
}

/// A hyperparameter's name and kind.
#[derive(Debug, Clone, Copy)]
pub struct ParamSpec {
    /// Name as written in `params` and `grid`.
    pub name: &'static str,
    /// Type and range.
    pub kind: ParamKind,
}

impl ParamSpec {
    fn check(&self, value: &ParamValue) -> Result<(), String> {
        let bad = || format!("{value} is not {}", self.describe());
        match (self.kind, value) {
            (ParamKind::Bool, ParamValue::Bool(_)) => Ok(()),
            (
                ParamKind::Int { min, max } | ParamKind::OptionalInt { min, max },
                ParamValue::Int(i),
            ) => {
                if (min..=max).contains(i) {
                    Ok(())
                } else {
                    Err(bad())
                }
            }
            (ParamKind::OptionalInt { .. }, ParamValue::Null) => Ok(()),
            (ParamKind::Float { min, max }, ParamValue::Float(x)) => {
                if x.is_finite() && *x >= min && *x <= max {
                    Ok(())
                } else {
                    Err(bad())
                }
            }
            (ParamKind::Float { min, max }, ParamValue::Int(i)) => {
                let x = *i as f64;
                if x >= min && x <= max {
                    Ok(())
                } else {
                    Err(bad())
                }
            }
            (ParamKind::Choice(words), ParamValue::Text(s)) if words.contains(&s.as_str()) => {
                Ok(())
            }
            (ParamKind::MaxFeatures, ParamValue::Text(s)) if s == "sqrt" || s == "log2" => Ok(()),
            (ParamKind::MaxFeatures, ParamValue::Null) => Ok(()),
            (ParamKind::MaxFeatures, ParamValue::Float(x)) if *x > 0.0 && *x <= 1.0 => Ok(()),
            (ParamKind::MaxFeatures, ParamValue::Int(i)) if *i >= 1 => Ok(()),
            _ => Err(bad()),
        }
    }

    fn describe(&self) -> String {
        match self.kind {
            ParamKind::Bool => "true or false".into(),
            ParamKind::Int { min, max } => format!("an integer from {min} to {max}"),
            ParamKind::OptionalInt { min, max } => {
                format!("null or an integer from {min} to {max}")
            }
            ParamKind::Float { min, max } if max == f64::MAX => format!("a number >= {min}"),
            ParamKind::Float { min, max } => format!("a number from {min} to {max}"),
            ParamKind::Choice(words) => format!("one of {}", words.join(", ")),
            ParamKind::MaxFeatures => {
                "\"sqrt\", \"log2\", null, a fraction in (0, 1] or a count".into()
            }
        }
    }
}

/// Checked hyperparameters of one fit (one grid point).
#[derive(Debug, Clone, PartialEq)]
pub struct Hyperparameters {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// The values given; absent names take the algorithm's defaults.
    pub values: BTreeMap<String, ParamValue>,
}

impl Hyperparameters {
    /// Checks names, types and ranges. On error: the parameter's name and the reason.
    pub fn check(
        algorithm: Algorithm,
        values: BTreeMap<String, ParamValue>,
    ) -> Result<Self, (String, String)> {
        let specs = algorithm.params();
        for (name, value) in &values {
            let spec = specs.iter().find(|s| s.name == name).ok_or_else(|| {
                let known: Vec<&str> = specs.iter().map(|s| s.name).collect();
                (
                    name.clone(),
                    format!(
                        "{algorithm} has no hyperparameter '{name}' (it takes: {})",
                        known.join(", ")
                    ),
                )
            })?;
            spec.check(value).map_err(|reason| (name.clone(), reason))?;
        }
        Ok(Hyperparameters { algorithm, values })
    }

    /// A number, or `default` when absent.
    pub fn f64(&self, name: &str, default: f64) -> f64 {
        match self.values.get(name) {
            Some(ParamValue::Float(x)) => *x,
            Some(ParamValue::Int(i)) => *i as f64,
            _ => default,
        }
    }

    /// An integer, or `default` when absent.
    pub fn usize(&self, name: &str, default: usize) -> usize {
        match self.values.get(name) {
            Some(ParamValue::Int(i)) => *i as usize,
            _ => default,
        }
    }

    /// An optional integer: `Some(n)`, `None` for `null`, `default` when absent.
    pub fn opt_usize(&self, name: &str, default: Option<usize>) -> Option<usize> {
        match self.values.get(name) {
            Some(ParamValue::Int(i)) => Some(*i as usize),
            Some(ParamValue::Null) => None,
            _ => default,
        }
    }

    /// A flag, or `default` when absent.
    pub fn bool(&self, name: &str, default: bool) -> bool {
        match self.values.get(name) {
            Some(ParamValue::Bool(b)) => *b,
            _ => default,
        }
    }

    /// A word, or `default` when absent.
    pub fn text<'a>(&'a self, name: &str, default: &'a str) -> &'a str {
        match self.values.get(name) {
            Some(ParamValue::Text(s)) => s,
            _ => default,
        }
    }

    /// The raw value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&ParamValue> {
        self.values.get(name)
    }

    /// `name=value` pairs, for run params.
    pub fn as_params(&self) -> Vec<(String, String)> {
        self.values
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(pairs: &[(&str, ParamValue)]) -> BTreeMap<String, ParamValue> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn hyperparameters_are_checked_by_name_type_and_range() {
        let ok = Hyperparameters::check(
            Algorithm::RandomForest,
            hp(&[
                ("n_estimators", ParamValue::Int(50)),
                ("max_features", ParamValue::Text("sqrt".into())),
            ]),
        )
        .unwrap();
        assert_eq!(ok.usize("n_estimators", 100), 50);
        assert_eq!(ok.opt_usize("max_depth", None), None);
        let (name, reason) = Hyperparameters::check(
            Algorithm::RandomForest,
            hp(&[("n_trees", ParamValue::Int(5))]),
        )
        .unwrap_err();
        assert_eq!(name, "n_trees");
        assert!(reason.contains("it takes: n_estimators"), "{reason}");
        let (_, reason) = Hyperparameters::check(
            Algorithm::RandomForest,
            hp(&[("n_estimators", ParamValue::Int(0))]),
        )
        .unwrap_err();
        assert!(reason.contains("from 1 to 5000"), "{reason}");
        let (_, reason) = Hyperparameters::check(
            Algorithm::DecisionTree,
            hp(&[("criterion", ParamValue::Text("mse".into()))]),
        )
        .unwrap_err();
        assert!(reason.contains("one of gini"), "{reason}");
        assert!(
            Hyperparameters::check(
                Algorithm::ElasticNet,
                hp(&[("l1_ratio", ParamValue::Float(1.5))])
            )
            .is_err()
        );
        assert!(
            Hyperparameters::check(
                Algorithm::DecisionTree,
                hp(&[("max_depth", ParamValue::Null)])
            )
            .is_ok()
        );
    }

    #[test]
    fn algorithms_know_their_tasks() {
        assert!(Algorithm::LinearRegression.supports(Task::Regression));
        assert!(!Algorithm::LinearRegression.supports(Task::Binary));
        assert!(Algorithm::RandomForest.supports(Task::Multiclass));
        assert!(!Algorithm::GaussianNb.supports(Task::Regression));
    }
}
