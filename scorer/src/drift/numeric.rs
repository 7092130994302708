//! Statistics of a numeric column: Wasserstein distance (plain and normed), the binnings (Sturges
//! bins on the combined sample, reference deciles) and the PSI / Jensen–Shannon distance on them.
//!
//! Every public function skips non-finite values (`NaN`, `±inf`) of both samples first, as
//! Evidently drops them before any stat test, and returns [`DriftError::EmptyReference`] or
//! [`DriftError::EmptyCurrent`] when nothing is left.

use serde::{Deserialize, Serialize};

use super::divergence::{LogBase, fill_empty_shares, jensenshannon, population_stability_index};
use super::numpy::{histogram_counts, linspace, pairwise_sum, quantile_linear_sorted};
use super::wasserstein::wasserstein_sorted;
use super::{DriftError, sorted_finite};

/// Floor of the reference standard deviation in [`wasserstein_normed`] (Evidently's `0.001`).
pub const MIN_NORM_STD: f64 = 0.001;

/// Both samples, cleaned and sorted, or the error for the first empty one.
pub(crate) fn sorted_pair(
    reference: &[f64],
    current: &[f64],
) -> Result<(Vec<f64>, Vec<f64>), DriftError> {
    let r = sorted_finite(reference);
    if r.is_empty() {
        return Err(DriftError::EmptyReference);
    }
    let c = sorted_finite(current);
    if c.is_empty() {
        return Err(DriftError::EmptyCurrent);
    }
    Ok((r, c))
}

/// The first Wasserstein distance between the two empirical distributions,
/// `∫ |F_ref(x) − F_cur(x)| dx` (`scipy.stats.wasserstein_distance(reference, current)`).
///
/// ```
/// use refit_scorer::drift::wasserstein_distance;
/// assert_eq!(wasserstein_distance(&[0.0, 1.0, 3.0], &[5.0, 6.0, 8.0]).unwrap(), 5.0);
/// ```
pub fn wasserstein_distance(reference: &[f64], current: &[f64]) -> Result<f64, DriftError> {
    let (r, c) = sorted_pair(reference, current)?;
    Ok(wasserstein_sorted(&r, &c))
}

/// The population standard deviation (`numpy.std(reference)`, `ddof = 0`).
pub fn reference_std(reference: &[f64]) -> Result<f64, DriftError> {
    let r: Vec<f64> = reference
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .collect();
    if r.is_empty() {
        return Err(DriftError::EmptyReference);
    }
    Ok(population_std(&r))
}

/// NumPy's `_var` then `sqrt`: mean by pairwise sum, then the pairwise sum of squared deviations.
fn population_std(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let mean = pairwise_sum(values) / n;
    let squares: Vec<f64> = values
        .iter()
        .map(|&x| {
            let d = x - mean;
            d * d
        })
        .collect();
    (pairwise_sum(&squares) / n).sqrt()
}

/// The Wasserstein distance divided by `max(std(reference), 0.001)` (Evidently's `wasserstein`
/// stat test, "Wasserstein distance (normed)"; drift when `>= 0.1` by default).
pub fn wasserstein_normed(reference: &[f64], current: &[f64]) -> Result<f64, DriftError> {
    let (r, c) = sorted_pair(reference, current)?;
    Ok(wasserstein_normed_sorted(&r, &c))
}

pub(crate) fn wasserstein_normed_sorted(r: &[f64], c: &[f64]) -> f64 {
    wasserstein_sorted(r, c) / population_std(r).max(MIN_NORM_STD)
}

/// [`wasserstein_normed`] with the reference's standard deviation already known (as
/// `numpy.std` of the sorted reference gives it).
pub(crate) fn wasserstein_normed_with_std(r: &[f64], c: &[f64], std: f64) -> f64 {
    wasserstein_sorted(r, c) / std.max(MIN_NORM_STD)
}

/// `numpy.std` of a sorted, cleaned sample (the order matters to the last bit: the pairwise sums
/// follow it).
pub(crate) fn population_std_of(values: &[f64]) -> f64 {
    population_std(values)
}

/// The edges of `numpy.histogram_bin_edges(concat(reference, current), bins="sturges")`:
/// `ceil(range / (range / (log2(n) + 1)))` equal bins over `[min, max]` of the combined sample
/// (`[v − 0.5, v + 0.5]` when all values equal `v`), edges by `numpy.linspace`.
///
/// The samples are treated as `float64` data; NumPy's widening of bins to 1 for integer arrays
/// does not apply.
pub fn sturges_bin_edges(reference: &[f64], current: &[f64]) -> Result<Vec<f64>, DriftError> {
    let (r, c) = sorted_pair(reference, current)?;
    sturges_edges_sorted(&r, &c)
}

pub(crate) fn sturges_edges_sorted(r: &[f64], c: &[f64]) -> Result<Vec<f64>, DriftError> {
    // Both are sorted and non-empty.
    let min = r[0].min(c[0]);
    let max = r[r.len() - 1].max(c[c.len() - 1]);
    let n = (r.len() + c.len()) as f64;
    let (first, last) = if min == max {
        (min - 0.5, max + 0.5)
    } else {
        (min, max)
    };
    let width = (max - min) / (n.log2() + 1.0);
    let bins = if width != 0.0 {
        let bins = ((last - first) / width).ceil();
        if !bins.is_finite() || bins > 1e8 {
            return Err(DriftError::DegenerateBins);
        }
        bins as usize
    } else {
        1
    };
    let edges = linspace(first, last, bins + 1);
    if edges.windows(2).any(|w| w[0] >= w[1]) {
        // NumPy: "Too many bins for data range. Cannot create N finite-sized bins."
        return Err(DriftError::DegenerateBins);
    }
    Ok(edges)
}

/// Shares of a sample in the bins of `edges`, as `numpy.histogram(values, edges)[0] / len(values)`
/// (bins `[e_i, e_{i+1})`, the last one closed). Non-finite values are skipped; an empty sample
/// gives all-zero shares.
pub fn histogram_shares(values: &[f64], edges: &[f64]) -> Vec<f64> {
    let sorted = sorted_finite(values);
    shares_sorted(&sorted, edges)
}

fn shares_sorted(sorted: &[f64], edges: &[f64]) -> Vec<f64> {
    let n = sorted.len() as f64;
    histogram_counts(sorted, edges)
        .into_iter()
        .map(|count| if n > 0.0 { count as f64 / n } else { 0.0 })
        .collect()
}

/// Reference and current shares on the Sturges bins of the combined sample.
fn sturges_shares(r: &[f64], c: &[f64]) -> Result<(Vec<f64>, Vec<f64>), DriftError> {
    let edges = sturges_edges_sorted(r, c)?;
    Ok((shares_sorted(r, &edges), shares_sorted(c, &edges)))
}

/// PSI on the Sturges bins of the combined sample with Evidently's filling of empty shares
/// (`psi_evidently_sturges_combined_bins` in the reference cases; Evidently's `psi` stat test
/// for numeric columns with more than 20 unique reference values — with fewer, Evidently bins
/// per value, which is [`CategoryCounts::from_numbers`](super::CategoryCounts::from_numbers)
/// followed by [`psi`](super::CategoryCounts::psi)).
pub fn psi_sturges(reference: &[f64], current: &[f64]) -> Result<f64, DriftError> {
    let (r, c) = sorted_pair(reference, current)?;
    let (rs, cs) = sturges_shares(&r, &c)?;
    Ok(population_stability_index(&rs, &cs))
}

/// The Jensen–Shannon distance on the Sturges bins of the combined sample, empty bins kept
/// (Evidently's `jensenshannon` stat test for numeric columns with more than 20 unique reference
/// values).
pub fn jensenshannon_sturges(
    reference: &[f64],
    current: &[f64],
    base: LogBase,
) -> Result<f64, DriftError> {
    let (r, c) = sorted_pair(reference, current)?;
    let (rs, cs) = sturges_shares(&r, &c)?;
    Ok(jensenshannon(&rs, &cs, base))
}

/// Ten bins between the reference deciles, for a PSI that is stable across streaming windows:
/// the bins belong to the reference profile, not to the window.
///
/// The inner edges are `numpy.quantile(reference, [0.1, …, 0.9])` (linear interpolation); the
/// outer edges are `−inf` and `+inf`, so every current value falls in a bin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecileBins {
    edges: Vec<f64>,
    reference_shares: Vec<f64>,
}

impl DecileBins {
    /// Builds the bins and the reference shares from the reference sample.
    pub fn from_reference(reference: &[f64]) -> Result<DecileBins, DriftError> {
        let r = sorted_finite(reference);
        if r.is_empty() {
            return Err(DriftError::EmptyReference);
        }
        let q = linspace(0.0, 1.0, 11);
        let mut edges: Vec<f64> = q.iter().map(|&q| quantile_linear_sorted(&r, q)).collect();
        edges[0] = f64::NEG_INFINITY;
        edges[10] = f64::INFINITY;
        let reference_shares = shares_sorted(&r, &edges);
        Ok(DecileBins {
            edges,
            reference_shares,
        })
    }

    /// The eleven bin edges (first `−inf`, last `+inf`).
    pub fn edges(&self) -> &[f64] {
        &self.edges
    }

    /// The share of the reference in each of the ten bins (about 0.1 each unless the reference
    /// has ties at a decile).
    pub fn reference_shares(&self) -> &[f64] {
        &self.reference_shares
    }

    /// Shares of a current sample in these bins (non-finite values skipped).
    pub fn current_shares(&self, current: &[f64]) -> Result<Vec<f64>, DriftError> {
        let c = sorted_finite(current);
        if c.is_empty() {
            return Err(DriftError::EmptyCurrent);
        }
        Ok(shares_sorted(&c, &self.edges))
    }

    /// `PSI = Σ (ref − cur) · ln(ref / cur)` over the ten bins. Empty shares are filled as in
    /// [`fill_empty_shares`] so that a bin the current window misses gives a large but finite
    /// PSI.
    pub fn psi(&self, current: &[f64]) -> Result<f64, DriftError> {
        let cs = self.current_shares(current)?;
        Ok(population_stability_index(&self.reference_shares, &cs))
    }
}

/// PSI on ten bins between the reference deciles (see [`DecileBins`]).
pub fn psi_reference_deciles(reference: &[f64], current: &[f64]) -> Result<f64, DriftError> {
    DecileBins::from_reference(reference)?.psi(current)
}

/// Evidently's `get_binned_data` for a numeric column: Sturges bins on the combined sample when
/// the reference has more than 20 unique values, one bin per value otherwise. Returns the
/// reference and current shares; with `fill_empty`, empty shares are filled as for a PSI.
pub(crate) fn evidently_binned_shares(
    r: &[f64],
    c: &[f64],
    fill_empty: bool,
) -> Result<(Vec<f64>, Vec<f64>), DriftError> {
    let (mut rs, mut cs) = if unique_sorted(r) > 20 {
        sturges_shares(r, c)?
    } else {
        let counts = super::categorical::CategoryCounts::from_numbers(r, c)?;
        (counts.reference_shares(), counts.current_shares())
    };
    if fill_empty {
        fill_empty_shares(&mut rs);
        fill_empty_shares(&mut cs);
    }
    Ok((rs, cs))
}

/// Number of distinct values of a sorted slice (`-0.0` equals `0.0`).
pub(crate) fn unique_sorted(sorted: &[f64]) -> usize {
    if sorted.is_empty() {
        return 0;
    }
    1 + sorted.windows(2).filter(|w| w[0] != w[1]).count()
}

/// Number of distinct values across two sorted slices (`pandas.concat(...).nunique()`).
#[cfg(test)]
pub(crate) fn unique_sorted_pair(a: &[f64], b: &[f64]) -> usize {
    unique_sorted_pair_upto(a, b, usize::MAX)
}

/// [`unique_sorted_pair`], counting no further than `cap` (the test choice only asks whether the
/// count exceeds a small number, and counting every value of two large samples costs a pass).
pub(crate) fn unique_sorted_pair_upto(a: &[f64], b: &[f64], cap: usize) -> usize {
    let (mut i, mut j, mut count) = (0, 0, 0);
    let mut last: Option<f64> = None;
    while i < a.len() || j < b.len() {
        let v = match (a.get(i), b.get(j)) {
            (Some(&x), Some(&y)) if x <= y => {
                i += 1;
                x
            }
            (_, Some(&y)) => {
                j += 1;
                y
            }
            (Some(&x), None) => {
                i += 1;
                x
            }
            (None, None) => break,
        };
        if last != Some(v) {
            count += 1;
            last = Some(v);
            if count >= cap {
                break;
            }
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wasserstein_examples_from_scipy_docs() {
        assert_eq!(
            wasserstein_distance(&[0.0, 1.0, 3.0], &[5.0, 6.0, 8.0]),
            Ok(5.0)
        );
        assert_eq!(wasserstein_distance(&[1.0], &[1.0]), Ok(0.0));
        assert_eq!(wasserstein_distance(&[0.0], &[2.5]), Ok(2.5));
    }

    #[test]
    fn constant_reference_uses_the_std_floor() {
        // std = 0 -> divide by 0.001.
        let v = wasserstein_normed(&[2.0; 10], &[2.0, 2.0, 2.0, 3.0]).unwrap();
        assert!((v - 0.25 / 0.001).abs() < 1e-9);
    }

    #[test]
    fn sturges_edges_for_a_constant_sample() {
        assert_eq!(sturges_bin_edges(&[3.0, 3.0], &[3.0]), Ok(vec![2.5, 3.5]));
    }

    #[test]
    fn sturges_edges_for_a_small_range() {
        // numpy.histogram_bin_edges([0, 1, 2, 3], bins="sturges") -> 3 bins over [0, 3].
        assert_eq!(
            sturges_bin_edges(&[0.0, 1.0], &[2.0, 3.0]),
            Ok(vec![0.0, 1.0, 2.0, 3.0])
        );
    }

    #[test]
    fn decile_bins_split_the_reference_evenly() {
        let r: Vec<f64> = (0..1000).map(f64::from).collect();
        let bins = DecileBins::from_reference(&r).unwrap();
        assert_eq!(bins.edges().len(), 11);
        assert!(
            bins.reference_shares()
                .iter()
                .all(|&s| (s - 0.1).abs() < 1e-12)
        );
        assert_eq!(bins.psi(&r), Ok(0.0));
        // A window entirely above the reference: nine empty bins filled with 0.0001.
        let psi = bins.psi(&[5000.0, 6000.0]).unwrap();
        let expected = 9.0 * (0.1 - 0.0001) * (0.1f64 / 0.0001).ln() + (0.1 - 1.0) * 0.1f64.ln();
        assert!((psi - expected).abs() < 1e-12 * expected);
    }

    #[test]
    fn unique_counts_merge_both_samples() {
        assert_eq!(unique_sorted_pair(&[1.0, 1.0, 2.0], &[2.0, 3.0]), 3);
        assert_eq!(unique_sorted_pair(&[-0.0], &[0.0]), 1);
        assert_eq!(unique_sorted(&[1.0, 1.0, 2.0]), 2);
    }

    #[test]
    fn non_finite_values_are_skipped() {
        assert_eq!(
            wasserstein_distance(&[0.0, f64::NAN, 1.0], &[f64::NEG_INFINITY, 1.0, 2.0]),
            wasserstein_distance(&[0.0, 1.0], &[1.0, 2.0])
        );
        assert_eq!(
            wasserstein_distance(&[f64::NAN], &[1.0]),
            Err(DriftError::EmptyReference)
        );
    }
}
