//! Turning a [`FeatureFrame`] into the estimator's dense row-major matrix.

use serde::{Deserialize, Serialize};

use crate::frame::{FeatureColumn, FeatureFrame};
use crate::model::ModelError;

/// How one input feature is encoded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum InputEncoding {
    /// A number: missing values become `impute`; then `(x - center) / scale` (scale 1 and center
    /// 0 without scaling).
    Numeric {
        /// Value used for a missing number (the training mean).
        impute: f64,
        /// Subtracted (the training mean when scaling).
        center: f64,
        /// Divided by (the training standard deviation when scaling; 1 if it was 0).
        scale: f64,
    },
    /// A category, one-hot: one output per known category; unknown or missing → all zeros.
    OneHot {
        /// Known categories, in output order.
        categories: Vec<String>,
    },
}

impl InputEncoding {
    fn width(&self) -> usize {
        match self {
            InputEncoding::Numeric { .. } => 1,
            InputEncoding::OneHot { categories } => categories.len(),
        }
    }
}

/// The encoding of every input feature, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Encoder {
    /// One per input feature.
    pub inputs: Vec<InputEncoding>,
}

impl Encoder {
    /// Number of encoded columns.
    pub fn width(&self) -> usize {
        self.inputs.iter().map(InputEncoding::width).sum()
    }

    /// Encodes `frame` into a row-major `rows × width()` matrix.
    pub fn encode(&self, frame: &FeatureFrame) -> Result<Vec<f64>, ModelError> {
        if frame.columns.len() != self.inputs.len() {
            return Err(ModelError::Input(format!(
                "expected {} feature columns, got {}",
                self.inputs.len(),
                frame.columns.len()
            )));
        }
        let width = self.width();
        let n = frame.rows;
        let mut x = vec![0.0; n * width];
        let mut offset = 0;
        for (j, (enc, column)) in self.inputs.iter().zip(&frame.columns).enumerate() {
            if column.len() != n {
                return Err(ModelError::Input(format!(
                    "feature column {j} has {} rows, the frame {n}",
                    column.len()
                )));
            }
            match (enc, column) {
                (
                    InputEncoding::Numeric {
                        impute,
                        center,
                        scale,
                    },
                    FeatureColumn::Numeric(values),
                ) => {
                    for (i, &v) in values.iter().enumerate() {
                        let v = if v.is_nan() { *impute } else { v };
                        x[i * width + offset] = (v - center) / scale;
                    }
                }
                (InputEncoding::OneHot { categories }, FeatureColumn::Categorical(values)) => {
                    for (i, v) in values.iter().enumerate() {
                        if let Some(pos) = v
                            .as_ref()
                            .and_then(|v| categories.iter().position(|c| c == v))
                        {
                            x[i * width + offset + pos] = 1.0;
                        }
                    }
                }
                (InputEncoding::Numeric { .. }, FeatureColumn::Categorical(_)) => {
                    return Err(ModelError::Input(format!(
                        "feature column {j} must be numeric"
                    )));
                }
                (InputEncoding::OneHot { .. }, FeatureColumn::Numeric(_)) => {
                    return Err(ModelError::Input(format!(
                        "feature column {j} must be categorical"
                    )));
                }
            }
            offset += enc.width();
        }
        Ok(x)
    }
}
