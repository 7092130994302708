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
        let n = frame.rows;
        let k = self.info.classes.len();
        // A linear model over numbers sums column by column; anything else reads encoded rows.
        let sums = match self.estimator.linear_coef() {
            Some(coef) => self.encoder.linear_sums(frame, &coef)?,
            None => None,
        };
        let outputs = match sums {
            Some(sums) => self.estimator.from_linear_sums(&sums, n, k),
            None => {
                let x = self.encoder.encode(frame)?;
                let width = self.encoder.width();
                match self.info.task {
                    Task::Regression => self.estimator.regress(&x, n, width),
                    Task::Binary | Task::Multiclass => self.estimator.classify(&x, n, width, k),
                }
            }
        };
        match self.info.task {
            Task::Regression => Ok(Predictions {
                values: outputs,
                probabilities: None,
            }),
            Task::Binary | Task::Multiclass => {
                let proba = outputs;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::FeatureColumn;
    use crate::testing::lcg;

    /// What the model predicts from its encoded rows (the path every estimator has).
    fn from_rows(model: &NativeModel, frame: &FeatureFrame) -> Vec<f64> {
        let x = model.encoder.encode(frame).unwrap();
        let (n, width) = (frame.rows, model.encoder.width());
        match model.info.task {
            Task::Regression => model.estimator.regress(&x, n, width),
            _ => model
                .estimator
                .classify(&x, n, width, model.info.classes.len()),
        }
    }

    #[test]
    fn linear_models_sum_by_column_to_the_bits_of_their_rows() {
        let mut state = 3u64;
        let features = 7;
        // More rows than one block; missing values, infinities and a spread of magnitudes.
        let rows = 600;
        let columns: Vec<FeatureColumn> = (0..features)
            .map(|j| {
                FeatureColumn::Numeric(
                    (0..rows)
                        .map(|i| match (i + j) % 97 {
                            0 => f64::NAN,
                            1 if j == 2 => f64::INFINITY,
                            _ => (lcg(&mut state) - 0.3) * 10f64.powi(j as i32 - 3),
                        })
                        .collect(),
                )
            })
            .collect();
        let frame = FeatureFrame { rows, columns };
        let encoder = Encoder {
            inputs: (0..features)
                .map(|j| InputEncoding::Numeric {
                    impute: j as f64 * 0.5,
                    center: lcg(&mut state),
                    scale: 0.1 + lcg(&mut state) * 10f64.powi(j as i32 - 3),
                })
                .collect(),
        };
        let coef = |state: &mut u64| -> Vec<f64> {
            (0..features).map(|_| (lcg(state) - 0.5) * 4.0).collect()
        };
        let info = |task, classes: &[&str]| ModelInfo {
            task,
            features: (0..features).map(|j| format!("f{j}")).collect(),
            classes: classes.iter().map(|c| c.to_string()).collect(),
            kind: "test".into(),
        };
        let models = [
            (
                info(Task::Regression, &[]),
                Estimator::Linear {
                    coef: coef(&mut state),
                    intercept: 0.25,
                },
            ),
            (
                info(Task::Binary, &["a", "b"]),
                Estimator::Logistic {
                    coef: vec![coef(&mut state)],
                    intercept: vec![-0.5],
                },
            ),
            (
                info(Task::Multiclass, &["a", "b", "c"]),
                Estimator::Logistic {
                    coef: (0..3).map(|_| coef(&mut state)).collect(),
                    intercept: vec![0.1, -0.2, 0.3],
                },
            ),
        ];
        for (info, estimator) in models {
            let model = NativeModel {
                format: FORMAT.into(),
                info,
                encoder: encoder.clone(),
                estimator,
            };
            model.check().unwrap();
            let p = model.predict(&frame).unwrap();
            let got = p.probabilities.clone().unwrap_or(p.values.clone());
            let want = from_rows(&model, &frame);
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g.to_bits(), w.to_bits(), "{} vs {w}", g);
            }
            assert!(got.iter().any(|v| v.is_finite() && *v != 0.0));
        }
        // A wrong frame is refused the same way on both paths.
        let short = FeatureFrame {
            rows,
            columns: frame.columns[..features - 1].to_vec(),
        };
        let model = NativeModel {
            format: FORMAT.into(),
            info: info(Task::Regression, &[]),
            encoder,
            estimator: Estimator::Linear {
                coef: vec![1.0; features],
                intercept: 0.0,
            },
        };
        assert_eq!(
            model.predict(&short).unwrap_err().to_string(),
            model.encoder.encode(&short).unwrap_err().to_string()
        );
    }
}
