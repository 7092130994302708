//! The few NumPy primitives the drift statistics are defined through, reproduced operation by
//! operation so that results agree with NumPy's to the last bit or close to it: pairwise summation,
//! `linspace`, `quantile(method="linear")`, `round` and the counting of `histogram` with explicit
//! edges.

/// NumPy's `PW_BLOCKSIZE`: below it a block is summed with eight accumulators.
const PW_BLOCKSIZE: usize = 128;

/// `numpy.sum` of a contiguous `float64` array: NumPy's pairwise summation (`pairwise_sum` in
/// `loops_utils.h.src`), which reduces rounding error to `O(log n)` and fixes the order of the
/// additions.
pub(crate) fn pairwise_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        // NumPy starts from -0.0 so that a sum of negative zeros stays -0.0.
        let mut res = -0.0;
        for &x in a {
            res += x;
        }
        res
    } else if n <= PW_BLOCKSIZE {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - (n % 8) {
            for (j, acc) in r.iter_mut().enumerate() {
                *acc += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            res += a[i];
            i += 1;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise_sum(&a[..n2]) + pairwise_sum(&a[n2..])
    }
}

/// `numpy.round` (and Python's `round`) of a float to an integer-valued float: halves go to the
/// even neighbour.
pub(crate) fn round_half_even(x: f64) -> f64 {
    let r = x.round();
    if (r - x).abs() == 0.5 {
        2.0 * (x / 2.0).round()
    } else {
        r
    }
}

/// `numpy.linspace(start, stop, num, endpoint=True)` for `num >= 2`: `i * step + start`, with the
/// last point set to `stop` exactly.
pub(crate) fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    debug_assert!(num >= 2);
    let div = (num - 1) as f64;
    let delta = stop - start;
    let step = delta / div;
    let mut y: Vec<f64> = if step == 0.0 {
        // NumPy's branch for denormal steps (gh-5437).
        (0..num).map(|i| (i as f64 / div) * delta + start).collect()
    } else {
        (0..num).map(|i| i as f64 * step + start).collect()
    };
    if let Some(last) = y.last_mut() {
        *last = stop;
    }
    y
}

/// `numpy.quantile(sorted, q, method="linear")` for one `q` in `[0, 1]`, over values already
/// sorted ascending (not empty).
pub(crate) fn quantile_linear_sorted(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    debug_assert!(n > 0);
    let virtual_index = (n as f64 - 1.0) * q;
    if virtual_index >= n as f64 - 1.0 {
        return sorted[n - 1];
    }
    if virtual_index < 0.0 {
        return sorted[0];
    }
    let previous = virtual_index.floor();
    let gamma = virtual_index - previous;
    let i = previous as usize;
    let a = sorted[i];
    let b = sorted[i + 1];
    // NumPy's `_lerp`: interpolate from the nearer end, so that gamma = 1 gives `b` exactly.
    let diff_b_a = b - a;
    if gamma >= 0.5 {
        b - diff_b_a * (1.0 - gamma)
    } else {
        a + diff_b_a * gamma
    }
}

/// Number of values `< x` (`side="left"`) in an ascending slice.
pub(crate) fn count_below(sorted: &[f64], x: f64) -> usize {
    sorted.partition_point(|&v| v < x)
}

/// Number of values `<= x` (`side="right"`) in an ascending slice.
pub(crate) fn count_at_or_below(sorted: &[f64], x: f64) -> usize {
    sorted.partition_point(|&v| v <= x)
}

/// The counts of `numpy.histogram(values, bins=edges)` for explicit, non-decreasing edges: bins
/// are half-open `[e_i, e_{i+1})` except the last, which also holds its right edge; values outside
/// `[e_0, e_last]` are not counted. `sorted` must be ascending.
pub(crate) fn histogram_counts(sorted: &[f64], edges: &[f64]) -> Vec<usize> {
    if edges.len() < 2 {
        return Vec::new();
    }
    // NumPy's `_search_sorted_inclusive`: left search for every edge but the last, right search
    // for the last.
    let last = edges.len() - 1;
    let cumulative: Vec<usize> = edges
        .iter()
        .enumerate()
        .map(|(i, &e)| {
            if i == last {
                count_at_or_below(sorted, e)
            } else {
                count_below(sorted, e)
            }
        })
        .collect();
    cumulative.windows(2).map(|w| w[1] - w[0]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_sum_of_small_and_large_arrays() {
        assert_eq!(pairwise_sum(&[]), -0.0);
        assert_eq!(pairwise_sum(&[1.0, 2.0, 3.0]), 6.0);
        let v: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert_eq!(pairwise_sum(&v), 500_500.0);
        // 0.1 * 10 accumulates rounding differently from a naive loop; NumPy gives exactly 1.0
        // for ten 0.1s summed with eight accumulators.
        assert_eq!(pairwise_sum(&[0.1; 10]), 1.0);
    }

    #[test]
    fn round_half_even_matches_numpy() {
        assert_eq!(round_half_even(0.5), 0.0);
        assert_eq!(round_half_even(1.5), 2.0);
        assert_eq!(round_half_even(2.5), 2.0);
        assert_eq!(round_half_even(-2.5), -2.0);
        assert_eq!(round_half_even(2.4999), 2.0);
        assert_eq!(round_half_even(2.6), 3.0);
    }

    #[test]
    fn linspace_ends_exactly() {
        let y = linspace(0.0, 109.0, 10);
        assert_eq!(y.len(), 10);
        assert_eq!(y[0], 0.0);
        assert_eq!(y[9], 109.0);
        assert_eq!(y[3], 3.0 * (109.0 / 9.0));
    }

    #[test]
    fn quantile_interpolates_like_numpy() {
        let v = [1.0, 2.0, 4.0, 8.0];
        assert_eq!(quantile_linear_sorted(&v, 0.0), 1.0);
        assert_eq!(quantile_linear_sorted(&v, 1.0), 8.0);
        assert_eq!(quantile_linear_sorted(&v, 0.5), 3.0);
        assert_eq!(quantile_linear_sorted(&[7.0], 0.3), 7.0);
    }

    #[test]
    fn histogram_closes_the_last_bin() {
        let v = [0.0, 1.0, 1.0, 2.0, 3.0, 5.0];
        assert_eq!(histogram_counts(&v, &[0.0, 1.0, 2.0, 3.0]), vec![1, 2, 2]);
        assert_eq!(histogram_counts(&v, &[1.0, 1.0, 4.0]), vec![0, 4]);
    }
}
