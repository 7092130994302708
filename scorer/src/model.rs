//! The [`Model`] trait: what every servable model (native or, later, ONNX) provides.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::frame::FeatureFrame;

/// What a model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// A number.
    Regression,
    /// One of two classes.
    Binary,
    /// One of several classes.
    Multiclass,
}

impl Task {
    /// Whether the model predicts classes.
    pub fn is_classification(self) -> bool {
        !matches!(self, Task::Regression)
    }
}

/// A model's interface: its task, input features and classes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelInfo {
    /// What it predicts.
    pub task: Task,
    /// Input feature names, in order.
    pub features: Vec<String>,
    /// Class labels, by class index (classification only).
    pub classes: Vec<String>,
    /// Kind of model, e.g. `logistic_regression`, `random_forest`, `onnx`.
    pub kind: String,
}

/// Predictions for a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Predictions {
    /// One per row: the predicted number (regression) or class index (classification).
    pub values: Vec<f64>,
    /// Class probabilities, row-major (rows × classes), for classifiers.
    pub probabilities: Option<Vec<f64>>,
}

/// Why a model could not predict.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The input does not fit the model.
    #[error("input does not fit the model: {0}")]
    Input(String),
    /// The model file is unusable.
    #[error("the model is unusable: {0}")]
    Invalid(String),
}

/// A model that predicts from a [`FeatureFrame`].
pub trait Model: Send + Sync {
    /// Task, features, classes, kind.
    fn info(&self) -> &ModelInfo;

    /// Predicts every row of `frame`, whose columns are in [`ModelInfo::features`] order.
    fn predict(&self, frame: &FeatureFrame) -> Result<Predictions, ModelError>;

    /// Whether each input feature, in [`ModelInfo::features`] order, is numeric (else
    /// categorical): how request values are read into a [`FeatureFrame`]. All numeric unless a
    /// model says otherwise.
    fn numeric_inputs(&self) -> Vec<bool> {
        vec![true; self.info().features.len()]
    }
}
