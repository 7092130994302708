//! Which metrics a task is judged by, their direction, and computing all of them at once for a
//! model's predictions on a holdout.

use std::collections::BTreeMap;
use std::fmt;

use refit_scorer::{Predictions, Task};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::metrics::{self, Average};

/// A metric name as written in specs and gates.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum MetricName {
    /// Root mean squared error (regression; lower is better).
    Rmse,
    /// Mean absolute error (regression; lower is better).
    Mae,
    /// Coefficient of determination (regression; higher is better).
    R2,
    /// Share of correct classes.
    Accuracy,
    /// Precision (binary: of the positive class; multiclass: macro average).
    Precision,
    /// Recall (binary: of the positive class; multiclass: macro average).
    Recall,
    /// F1 (binary: of the positive class; multiclass: macro average).
    F1,
    /// Area under the ROC curve (multiclass: one-vs-rest, macro).
    RocAuc,
    /// Cross-entropy of the predicted probabilities (lower is better).
    LogLoss,
}

impl MetricName {
    /// Every metric.
    pub const ALL: [MetricName; 9] = [
        MetricName::Rmse,
        MetricName::Mae,
        MetricName::R2,
        MetricName::Accuracy,
        MetricName::Precision,
        MetricName::Recall,
        MetricName::F1,
        MetricName::RocAuc,
        MetricName::LogLoss,
    ];

    /// The name as written.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricName::Rmse => "rmse",
            MetricName::Mae => "mae",
            MetricName::R2 => "r2",
            MetricName::Accuracy => "accuracy",
            MetricName::Precision => "precision",
            MetricName::Recall => "recall",
            MetricName::F1 => "f1",
            MetricName::RocAuc => "roc_auc",
            MetricName::LogLoss => "log_loss",
        }
    }

    /// Whether it judges regression (else classification).
    pub fn is_regression(self) -> bool {
        matches!(self, MetricName::Rmse | MetricName::Mae | MetricName::R2)
    }

    /// Whether a larger value is better.
    pub fn higher_is_better(self) -> bool {
        !matches!(
            self,
            MetricName::Rmse | MetricName::Mae | MetricName::LogLoss
        )
    }
}

impl fmt::Display for MetricName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Metric values by name. A metric that cannot be computed on this data (e.g. ROC AUC when the
/// holdout has one class) is absent.
pub type MetricValues = BTreeMap<MetricName, f64>;

/// Every metric of `task` for `predictions` against the true values (regression) or true class
/// indices (classification, as f64).
pub fn evaluate(
    task: Task,
    classes: usize,
    truth: &[f64],
    predictions: &Predictions,
) -> MetricValues {
    let mut out = MetricValues::new();
    let mut put = |name: MetricName, value: Result<f64, metrics::MetricError>| {
        if let Ok(v) = value
            && v.is_finite()
        {
            out.insert(name, v);
        }
    };
    match task {
        Task::Regression => {
            put(MetricName::Rmse, metrics::rmse(truth, &predictions.values));
            put(MetricName::Mae, metrics::mae(truth, &predictions.values));
            put(MetricName::R2, metrics::r2(truth, &predictions.values));
        }
        Task::Binary | Task::Multiclass => {
            let y: Vec<usize> = truth.iter().map(|v| *v as usize).collect();
            let pred: Vec<usize> = predictions.values.iter().map(|v| *v as usize).collect();
            let average = if task == Task::Binary {
                Average::Binary { positive: 1 }
            } else {
                Average::Macro { n_classes: classes }
            };
            put(MetricName::Accuracy, metrics::accuracy(&y, &pred));
            put(
                MetricName::Precision,
                metrics::precision(&y, &pred, average),
            );
            put(MetricName::Recall, metrics::recall(&y, &pred, average));
            put(MetricName::F1, metrics::f1(&y, &pred, average));
            if let Some(proba) = &predictions.probabilities {
                if task == Task::Binary {
                    let positive: Vec<f64> = proba.chunks_exact(2).map(|r| r[1]).collect();
                    put(MetricName::RocAuc, metrics::roc_auc_binary(&y, &positive));
                } else {
                    put(
                        MetricName::RocAuc,
                        metrics::roc_auc_ovr_macro(&y, proba, classes),
                    );
                }
                put(MetricName::LogLoss, metrics::log_loss(&y, proba, classes));
            }
        }
    }
    out
}

/// Metric values as a JSON object keyed by name.
pub fn to_json(values: &MetricValues) -> serde_json::Value {
    serde_json::Value::Object(
        values
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), serde_json::json!(v)))
            .collect(),
    )
}
