//! refit's native model format: an input encoder (imputation, standard scaling, one-hot) and an
//! estimator (linear, logistic, Gaussian naive Bayes, tree ensembles), stored as versioned JSON.
//!
//! The format is refit's own rather than a learning library's serialization, so that a stored
//! model reads the same whatever library version fitted it, and predicting is a few tight loops.
//! Serialization is deterministic: the same model always gives the same bytes.

mod encoder;
mod estimator;

pub use encoder::{Encoder, InputEncoding};
pub use estimator::{Boosting, Estimator, Loss, Node, Tree};

use serde::{Deserialize, Serialize};

use crate::frame::FeatureFrame;
use crate::model::{Model, ModelError, ModelInfo, Predictions, Task};

/// The format tag written in every native model file.
pub const FORMAT: &str = "refit-native/1";

/// A fitted native model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NativeModel {
    /// Always [`FORMAT`].
    pub format: String,
    /// Task, features, classes and kind.
    pub info: ModelInfo,
    /// How raw inputs become the estimator's numbers.
    pub encoder: Encoder,
    /// The fitted estimator.
    pub estimator: Estimator,
}

impl NativeModel {
    /// Reads a model file, checking it is consistent.
    pub fn from_json(bytes: &[u8]) -> Result<NativeModel, ModelError> {
        let model: NativeModel = serde_json::from_slice(bytes)
            .map_err(|e| ModelError::Invalid(format!("not a refit native model: {e}")))?;
        model.check()?;
        Ok(model)
    }

    /// The model file's bytes (deterministic).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("native models serialize")
    }

    /// Checks that encoder, estimator and info agree.
    pub fn check(&self) -> Result<(), ModelError> {
        if self.format != FORMAT {
            return Err(ModelError::Invalid(format!(
                "format '{}' is not '{FORMAT}'",
                self.format
            )));
        }
        if self.encoder.inputs.len() != self.info.features.len() {
            return Err(ModelError::Invalid(format!(
                "{} encoded inputs for {} features",
                self.encoder.inputs.len(),
                self.info.features.len()
            )));
        }
        let width = self.encoder.width();
        let classes = self.info.classes.len();
        self.estimator
            .check(width, self.info.task, classes)
            .map_err(ModelError::Invalid)
    }
}

impl Model for NativeModel {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn numeric_inputs(&self) -> Vec<bool> {
        self.encoder
            .inputs
            .iter()
            .map(|input| matches!(input, InputEncoding::Numeric { .. }))
            .collect()
    }

    fn predict(&self, frame: &FeatureFrame) -> Result<Predictions, ModelError> {
        let x = self.encoder.encode(frame)?;
        let width = self.encoder.width();
        let n = frame.rows;
        match self.info.task {
            Task::Regression => Ok(Predictions {
                values: self.estimator.regress(&x, n, width),
                probabilities: None,
            }),
            Task::Binary | Task::Multiclass => {
                let k = self.info.classes.len();
                let proba = self.estimator.classify(&x, n, width, k);
                let values = proba
                    .chunks_exact(k)
                    .map(|row| argmax(row) as f64)
                    .collect();
                Ok(Predictions {
                    values,
                    probabilities: Some(proba),
                })
            }
        }
    }
}

/// Index of the largest value; the first on ties, as numpy's argmax.
fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate().skip(1) {
        if v > row[best] {
            best = i;
        }
    }
    best
}
