//! Training data as the learners consume it: features ranked once per fit, labels encoded.

use ndarray::{ArrayView1, ArrayView2};

use super::TreeError;

/// The training features, sorted once: every value is replaced by its dense rank among the
/// distinct values of its column.
///
/// Split search then works on `u32` ranks (cheap to sort, usable as histogram bins) and never
/// touches floats except to place a threshold; a forest or a boosting run shares one of these
/// across all of its trees.
#[derive(Debug)]
pub(crate) struct RankedFeatures {
    n_rows: usize,
    /// Column-major: `ranks[f * n_rows + i]` is the rank of `x[i, f]`.
    ranks: Vec<u32>,
    /// Per feature, its distinct values in increasing order: `values[f][rank]`.
    values: Vec<Vec<f64>>,
}

impl RankedFeatures {
    /// Ranks `x`, rejecting empty or non-finite input.
    pub(crate) fn new(x: ArrayView2<f64>) -> Result<Self, TreeError> {
        let (n_rows, n_features) = x.dim();
        if n_rows == 0 || n_features == 0 {
            return Err(TreeError::EmptyData {
                rows: n_rows,
                columns: n_features,
            });
        }
        if n_rows > u32::MAX as usize {
            return Err(TreeError::TooManyRows {
                rows: n_rows,
                max: u32::MAX as usize,
            });
        }
        let mut ranks = vec![0u32; n_rows * n_features];
        let mut values = Vec::with_capacity(n_features);
        let mut order: Vec<(u64, u32)> = Vec::with_capacity(n_rows);
        for (f, column) in x.columns().into_iter().enumerate() {
            order.clear();
            for (i, &v) in column.iter().enumerate() {
                if !v.is_finite() {
                    return Err(TreeError::NonFiniteFeature { row: i, column: f });
                }
                order.push((sortable_bits(v), i as u32));
            }
            order.sort_unstable_by_key(|&(key, _)| key);
            let column_ranks = &mut ranks[f * n_rows..(f + 1) * n_rows];
            let mut distinct: Vec<f64> = Vec::new();
            let mut last_key = None;
            for &(key, i) in &order {
                if last_key != Some(key) {
                    last_key = Some(key);
                    distinct.push(column[i as usize]);
                }
                column_ranks[i as usize] = (distinct.len() - 1) as u32;
            }
            distinct.shrink_to_fit();
            values.push(distinct);
        }
        Ok(Self {
            n_rows,
            ranks,
            values,
        })
    }

    pub(crate) fn n_rows(&self) -> usize {
        self.n_rows
    }

    pub(crate) fn n_features(&self) -> usize {
        self.values.len()
    }

    /// Ranks of feature `f`, one per row.
    pub(crate) fn ranks(&self, f: usize) -> &[u32] {
        &self.ranks[f * self.n_rows..(f + 1) * self.n_rows]
    }

    /// Distinct values of feature `f`, increasing; indexed by rank.
    pub(crate) fn values(&self, f: usize) -> &[f64] {
        &self.values[f]
    }

    /// The largest number of distinct values of any feature.
    pub(crate) fn max_distinct(&self) -> usize {
        self.values.iter().map(Vec::len).max().unwrap_or(0)
    }
}

/// Maps a finite `f64` to a `u64` with the same order (and `-0.0` to the key of `0.0`).
fn sortable_bits(v: f64) -> u64 {
    let v = if v == 0.0 { 0.0 } else { v };
    let bits = v.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

/// Checks that `y` matches `x` in length and is finite.
pub(crate) fn check_targets(x_rows: usize, y: ArrayView1<f64>) -> Result<(), TreeError> {
    if y.len() != x_rows {
        return Err(TreeError::LengthMismatch {
            x_rows,
            y_len: y.len(),
        });
    }
    if let Some(row) = y.iter().position(|v| !v.is_finite()) {
        return Err(TreeError::NonFiniteTarget { row });
    }
    Ok(())
}

/// Class labels, sorted and distinct (sklearn's `classes_`), and each row's index into them.
pub(crate) struct EncodedClasses {
    pub(crate) classes: Vec<f64>,
    pub(crate) codes: Vec<u32>,
}

/// Encodes class labels given as `f64` (e.g. `0.0` / `1.0`).
pub(crate) fn encode_classes(
    x_rows: usize,
    y: ArrayView1<f64>,
) -> Result<EncodedClasses, TreeError> {
    check_targets(x_rows, y)?;
    let mut classes: Vec<f64> = y.iter().map(|&v| if v == 0.0 { 0.0 } else { v }).collect();
    classes.sort_unstable_by(f64::total_cmp);
    classes.dedup();
    let codes = y
        .iter()
        .map(|&v| {
            let v = if v == 0.0 { 0.0 } else { v };
            classes.partition_point(|&c| c < v) as u32
        })
        .collect();
    Ok(EncodedClasses { classes, codes })
}

/// Calls `visit(i, row)` for each row of `x` with the row as a contiguous slice.
///
/// # Panics
/// If `x` does not have `n_features` columns: a model applied to data of another shape is a
/// programming error, as in `ndarray`'s own shape checks.
pub(crate) fn for_each_row(
    x: ArrayView2<f64>,
    n_features: usize,
    mut visit: impl FnMut(usize, &[f64]),
) {
    assert_eq!(
        x.ncols(),
        n_features,
        "the model was fit on {n_features} features, x has {}",
        x.ncols()
    );
    let mut buffer = vec![0.0; n_features];
    for (i, row) in x.outer_iter().enumerate() {
        match row.as_slice() {
            Some(slice) => visit(i, slice),
            None => {
                buffer.iter_mut().zip(row.iter()).for_each(|(b, &v)| *b = v);
                visit(i, &buffer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use ndarray::array;

    use super::*;

    #[test]
    fn ranks_are_dense_and_values_sorted() {
        let x = array![[3.0, -1.0], [1.0, 0.0], [3.0, -0.0], [-2.0, 5.0]];
        let ranked = RankedFeatures::new(x.view()).unwrap();
        assert_eq!(ranked.ranks(0), &[2, 1, 2, 0]);
        assert_eq!(ranked.values(0), &[-2.0, 1.0, 3.0]);
        // -0.0 and 0.0 are one value.
        assert_eq!(ranked.ranks(1), &[0, 1, 1, 2]);
        assert_eq!(ranked.max_distinct(), 3);
    }

    #[test]
    fn non_finite_and_empty_input_rejected() {
        let x = array![[1.0, f64::NAN]];
        assert_eq!(
            RankedFeatures::new(x.view()).unwrap_err(),
            TreeError::NonFiniteFeature { row: 0, column: 1 }
        );
        let empty = ndarray::Array2::<f64>::zeros((0, 3));
        assert!(matches!(
            RankedFeatures::new(empty.view()),
            Err(TreeError::EmptyData {
                rows: 0,
                columns: 3
            })
        ));
    }

    #[test]
    fn classes_encoded_in_sorted_order() {
        let y = array![2.0, 0.0, 2.0, 7.0];
        let enc = encode_classes(4, y.view()).unwrap();
        assert_eq!(enc.classes, vec![0.0, 2.0, 7.0]);
        assert_eq!(enc.codes, vec![1, 0, 1, 2]);
        assert_eq!(
            encode_classes(3, y.view()).err(),
            Some(TreeError::LengthMismatch {
                x_rows: 3,
                y_len: 4
            })
        );
    }
}
