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

    /// Checks that `frame` has one column of the right kind and length per input.
    fn check(&self, frame: &FeatureFrame) -> Result<(), ModelError> {
        if frame.columns.len() != self.inputs.len() {
            return Err(ModelError::Input(format!(
                "expected {} feature columns, got {}",
                self.inputs.len(),
                frame.columns.len()
            )));
        }
        let n = frame.rows;
        for (j, (enc, column)) in self.inputs.iter().zip(&frame.columns).enumerate() {
            if column.len() != n {
                return Err(ModelError::Input(format!(
                    "feature column {j} has {} rows, the frame {n}",
                    column.len()
                )));
            }
            match (enc, column) {
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
                _ => {}
            }
        }
        Ok(())
    }

    /// Encodes `frame` into a row-major `rows × width()` matrix.
    pub fn encode(&self, frame: &FeatureFrame) -> Result<Vec<f64>, ModelError> {
        self.check(frame)?;
        let width = self.width();
        let mut x = vec![0.0; frame.rows * width];
        let mut offset = 0;
        for (enc, column) in self.inputs.iter().zip(&frame.columns) {
            match (enc, column) {
                (numeric @ InputEncoding::Numeric { .. }, FeatureColumn::Numeric(values)) => {
                    let mut rows = x.chunks_exact_mut(width);
                    standardised(numeric, values, |block| {
                        // The block first: a zip asks its first iterator first.
                        for (&v, row) in block.iter().zip(&mut rows) {
                            row[offset] = v;
                        }
                    });
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
                _ => unreachable!("checked above"),
            }
            offset += enc.width();
        }
        Ok(x)
    }

    /// For each row of coefficients, every row's `Σ_j x_j · coef[j]` over its encoded values
    /// `x`, without building the encoded matrix: a block of rows at a time, column by column,
    /// which vectorises across rows. The products are added in the order a row's dot product
    /// adds them, from `-0.0` as `f64`'s `Sum` starts, so the sums are the same to the bit.
    /// `None` when an input is one-hot (use [`Encoder::encode`]).
    pub fn linear_sums(
        &self,
        frame: &FeatureFrame,
        coef: &[&[f64]],
    ) -> Result<Option<Vec<Vec<f64>>>, ModelError> {
        self.check(frame)?;
        if self
            .inputs
            .iter()
            .any(|enc| matches!(enc, InputEncoding::OneHot { .. }))
        {
            return Ok(None);
        }
        let mut sums = vec![vec![-0.0; frame.rows]; coef.len()];
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, as just checked.
            unsafe { add_products_avx512(&self.inputs, &frame.columns, coef, &mut sums) };
            return Ok(Some(sums));
        }
        add_products(&self.inputs, &frame.columns, coef, &mut sums);
        Ok(Some(sums))
    }
}

/// [`add_products`] in registers of eight: the same operations on each value (IEEE division,
/// product and sum, without fusing), so the same bits, with a quarter of the divisions' time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn add_products_avx512(
    inputs: &[InputEncoding],
    columns: &[FeatureColumn],
    coef: &[&[f64]],
    sums: &mut [Vec<f64>],
) {
    add_products(inputs, columns, coef, sums)
}

/// Adds every numeric column's products with its coefficients to the rows' sums, in column order.
#[inline(always)]
fn add_products(
    inputs: &[InputEncoding],
    columns: &[FeatureColumn],
    coef: &[&[f64]],
    sums: &mut [Vec<f64>],
) {
    for (j, (enc, column)) in inputs.iter().zip(columns).enumerate() {
        let FeatureColumn::Numeric(values) = column else {
            unreachable!("numeric columns")
        };
        let mut start = 0;
        standardised(enc, values, |block| {
            for (sum, c) in sums.iter_mut().zip(coef) {
                let c = c[j];
                for (s, &x) in sum[start..start + block.len()].iter_mut().zip(block) {
                    *s += x * c;
                }
            }
            start += block.len();
        });
    }
}

/// A numeric input's encoded values, handed to `take` a block at a time: standardised into a
/// contiguous buffer, where the divisions run several to an instruction, and a missing value's
/// place then given the imputed value's.
#[inline(always)]
fn standardised(enc: &InputEncoding, values: &[f64], mut take: impl FnMut(&[f64])) {
    let &InputEncoding::Numeric {
        impute,
        center,
        scale,
    } = enc
    else {
        unreachable!("a numeric input")
    };
    let imputed = (impute - center) / scale;
    let mut block = [0.0; 256];
    for chunk in values.chunks(256) {
        let block = &mut block[..chunk.len()];
        for (out, &v) in block.iter_mut().zip(chunk) {
            *out = (v - center) / scale;
        }
        for (out, raw) in block.iter_mut().zip(chunk) {
            if raw.is_nan() {
                *out = imputed;
            }
        }
        take(block);
    }
}
