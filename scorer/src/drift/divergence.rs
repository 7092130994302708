//! Divergences between two discrete distributions given as shares per bin (or per category):
//! the population stability index and the Jensen–Shannon distance.

use serde::{Deserialize, Serialize};

use super::numpy::pairwise_sum;

/// Evidently's replacement for an empty share (`feel_zeroes` in `get_binned_data`).
pub const EMPTY_SHARE: f64 = 0.0001;

/// Replaces the empty (zero) shares of one distribution as Evidently 0.7.23 does before a PSI:
/// by `0.0001`, or — when the smallest non-empty share is itself `<= 0.0001`, i.e. samples of
/// 10 000 values or more — by that smallest share divided by `10^6`. A distribution with no
/// non-empty share is left as it is.
pub fn fill_empty_shares(shares: &mut [f64]) {
    let smallest = shares
        .iter()
        .copied()
        .filter(|&s| s != 0.0)
        .fold(f64::INFINITY, f64::min);
    if !smallest.is_finite() {
        return;
    }
    let fill = if smallest <= EMPTY_SHARE {
        smallest / 1e6
    } else {
        EMPTY_SHARE
    };
    for s in shares.iter_mut().filter(|s| **s == 0.0) {
        *s = fill;
    }
}

/// The population stability index of two share vectors of equal length,
/// `PSI = Σ (ref − cur) · ln(ref / cur)` (Evidently's `psi` stat test), after
/// [`fill_empty_shares`] on copies of both. Extra entries of the longer vector are ignored.
pub fn population_stability_index(reference: &[f64], current: &[f64]) -> f64 {
    let mut r = reference.to_vec();
    let mut c = current.to_vec();
    fill_empty_shares(&mut r);
    fill_empty_shares(&mut c);
    let terms: Vec<f64> = r
        .iter()
        .zip(&c)
        .map(|(&r, &c)| (r - c) * (r / c).ln())
        .collect();
    pairwise_sum(&terms)
}

/// The logarithm base of a Jensen–Shannon distance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogBase {
    /// Natural logarithm (SciPy's default and Evidently's choice); the distance lies in
    /// `[0, sqrt(ln 2)]`.
    #[default]
    Natural,
    /// Base 2; the distance lies in `[0, 1]`.
    Two,
}

/// `scipy.special.rel_entr(x, y)`: `x ln(x/y)`, `0` at `x = 0`, `+inf` where undefined.
fn rel_entr(x: f64, y: f64) -> f64 {
    if x.is_nan() || y.is_nan() {
        f64::NAN
    } else if x > 0.0 && y > 0.0 {
        x * (x / y).ln()
    } else if x == 0.0 && y >= 0.0 {
        0.0
    } else {
        f64::INFINITY
    }
}

/// The Jensen–Shannon distance between two weight vectors of equal length,
/// `scipy.spatial.distance.jensenshannon(p, q, base)`: both are first normalised to sum to 1, then
/// `sqrt((KL(p ‖ m) + KL(q ‖ m)) / 2)` with `m = (p + q) / 2`. Empty shares are kept as zeros
/// (Evidently does not fill them for this distance). Extra entries of the longer vector are
/// ignored.
pub fn jensenshannon(p: &[f64], q: &[f64], base: LogBase) -> f64 {
    let len = p.len().min(q.len());
    let (p, q) = (&p[..len], &q[..len]);
    let p_sum = pairwise_sum(p);
    let q_sum = pairwise_sum(q);
    let p: Vec<f64> = p.iter().map(|&x| x / p_sum).collect();
    let q: Vec<f64> = q.iter().map(|&x| x / q_sum).collect();
    let m: Vec<f64> = p.iter().zip(&q).map(|(&a, &b)| (a + b) / 2.0).collect();
    let left: Vec<f64> = p.iter().zip(&m).map(|(&a, &b)| rel_entr(a, b)).collect();
    let right: Vec<f64> = q.iter().zip(&m).map(|(&a, &b)| rel_entr(a, b)).collect();
    let mut js = pairwise_sum(&left) + pairwise_sum(&right);
    if base == LogBase::Two {
        js /= std::f64::consts::LN_2;
    }
    (js / 2.0).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_uses_evidently_rule() {
        let mut s = [0.5, 0.0, 0.5];
        fill_empty_shares(&mut s);
        assert_eq!(s, [0.5, 0.0001, 0.5]);
        let mut s = [0.99995, 0.00005, 0.0];
        fill_empty_shares(&mut s);
        assert_eq!(s[2], 0.00005 / 1e6);
        let mut s = [0.0, 0.0];
        fill_empty_shares(&mut s);
        assert_eq!(s, [0.0, 0.0]);
    }

    #[test]
    fn psi_of_identical_shares_is_zero() {
        assert_eq!(
            population_stability_index(&[0.2, 0.3, 0.5], &[0.2, 0.3, 0.5]),
            0.0
        );
    }

    #[test]
    fn jensenshannon_known_values() {
        // scipy.spatial.distance.jensenshannon([1, 0], [0, 1], 2) == 1 and
        // jensenshannon([1.0, 0.0], [0.5, 0.5]) == 0.46450140402245893.
        assert!((jensenshannon(&[1.0, 0.0], &[0.0, 1.0], LogBase::Two) - 1.0).abs() < 1e-15);
        let v = jensenshannon(&[1.0, 0.0], &[0.5, 0.5], LogBase::Natural);
        assert!((v - 0.464_501_404_022_458_93).abs() < 1e-15);
        assert_eq!(
            jensenshannon(&[2.0, 6.0], &[1.0, 3.0], LogBase::Natural),
            0.0
        );
    }
}
