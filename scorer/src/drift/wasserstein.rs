//! The Wasserstein distance, `scipy.stats.wasserstein_distance(u, v)`, between sorted samples
//! and from a window to a fixed reference.
//!
//! **Between two sorted samples** ([`wasserstein_sorted`]): SciPy integrates `|F_u − F_v|` over
//! `x`; the same area is `∫₀¹ |F_u⁻¹(t) − F_v⁻¹(t)| dt` over the quantile functions, which are
//! steps at `t = i/n` and `j/m`. In units of `1/(n·m)`, `u_i` holds `[i·m, (i+1)·m)` and `v_j`
//! holds `[j·n, (j+1)·n)`; walking the shorter sample, each of its values meets a contiguous run
//! of the longer one, and the distance is `Σ overlap · |u_i − v_j| / (n·m)`. Every term is a
//! non-negative product of an exact integer and one rounded difference, so the sum is accurate to
//! a few ulps relative — a distance of zero comes out exactly zero — and the inner runs are plain
//! sums of absolute differences, without the merge's unpredictable branches.
//!
//! **From a small window to a large reference** ([`GapIndex`]): when the reference is many times
//! larger than the window (a machine's few rows against 10,000 reference values), walking the
//! whole reference per window costs more than the window itself; here the reference is prepared
//! once and a window costs `O(n)` expected:
//!
//! * **Prefix integrals.** With the reference sorted, `r_0 ≤ … ≤ r_{m−1}`, its CDF is the step
//!   function `F(x) = #{r_i ≤ x} / m`, and `Q_i = ∫_{r_0}^{r_i} F` is kept for every `i` (as an
//!   unevaluated sum of two doubles, so that differences of nearby `Q`s keep full precision).
//!   Between two consecutive window values `a < b` the window's CDF is a constant `k / n`, and
//!   `∫_a^b |k/n − F|` is `O(1)`: `F` reaches `k / n` at `r_j`, `j = ⌈k·m / n⌉ − 1`, and the
//!   integral splits there into two differences of prefix integrals.
//! * **A grid.** The window's values are located in the reference (their gap `#{r_i ≤ x}`)
//!   through a uniform grid over the reference's range: each cell knows the first reference index
//!   in it, so a lookup compares `x` with the cell's few values only. The window itself is
//!   ordered by the drift statistics' one sort (`sort.rs`), linear in the window.
//!
//! The terms are the areas SciPy's `_cdf_distance(1, u, v)` sums, grouped by window value
//! instead of by every point of both samples. Where both values lie in one gap the term is the
//! same product SciPy forms (with `|k/n − g/m|` from integers, exactly 0 where the CDFs agree);
//! elsewhere each term is accurate to a few ulps of itself, so the sum agrees with SciPy to
//! rounding: far inside the 1e-9 relative agreement the drift tests require, and within about
//! `1e-15` of the samples' range for a distance that is zero.

use std::cell::RefCell;

use super::sort::sort_finite_into;

/// Cells of the grid per reference value.
const CELLS_PER_VALUE: usize = 2;
/// Cells with more reference values than this are searched by bisection, not scanned.
const SCAN_MAX: usize = 8;

/// `x − y` for two `(high, low)` sums: the highs first, whose difference is exact or nearly so
/// when they are close.
fn difference(x: (f64, f64), y: (f64, f64)) -> f64 {
    (x.0 - y.0) + (x.1 - y.1)
}

/// `scipy.stats.wasserstein_distance(u, v)` for sorted, finite, non-empty samples (see the
/// module's notes).
pub(crate) fn wasserstein_sorted(u: &[f64], v: &[f64]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, as just checked.
            return unsafe { quantile_walk_avx512(u, v) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, as just checked.
            return unsafe { quantile_walk_avx2(u, v) };
        }
    }
    quantile_walk::<Portable>(u, v)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn quantile_walk_avx512(u: &[f64], v: &[f64]) -> f64 {
    quantile_walk::<simd::Avx512>(u, v)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn quantile_walk_avx2(u: &[f64], v: &[f64]) -> f64 {
    quantile_walk::<simd::Avx2>(u, v)
}

/// The sums of whole steps, `Σ |x − y|` over a run of the longer sample, kept in 16 lanes: the
/// run's `l`-th value goes to lane `l mod 16`. Every implementation adds the same terms to the
/// same lanes in the same order, so all give the same result to the bit; they differ in how many
/// lanes one instruction holds.
trait Lanes {
    type Sums: Copy;
    fn zero() -> Self::Sums;
    /// Adds `|x − y|` for every `y` of `run`.
    fn add_run(sums: Self::Sums, x: f64, run: &[f64]) -> Self::Sums;
    fn lanes(sums: Self::Sums) -> [f64; 16];
}

/// [`Lanes`] one value at a time.
struct Portable;

impl Lanes for Portable {
    type Sums = [f64; 16];

    #[inline(always)]
    fn zero() -> [f64; 16] {
        [0.0; 16]
    }

    #[inline(always)]
    fn add_run(mut sums: [f64; 16], x: f64, run: &[f64]) -> [f64; 16] {
        for (l, &y) in run.iter().enumerate() {
            sums[l % 16] += (x - y).abs();
        }
        sums
    }

    fn lanes(sums: [f64; 16]) -> [f64; 16] {
        sums
    }
}

#[cfg(target_arch = "x86_64")]
mod simd {
    //! [`Lanes`] in AVX-512 (two registers of eight) and AVX2 (four of four). A run's last,
    //! partial group of lanes leaves the lanes past its end as they were: AVX-512 by a masked
    //! addition, AVX2 by subtracting `x` from itself there, which adds `+0.0` to a sum that is
    //! `+0.0` or positive, so unchanged.

    use std::arch::x86_64::*;

    use super::Lanes;

    pub(super) struct Avx512;

    impl Lanes for Avx512 {
        type Sums = (__m512d, __m512d);

        #[inline(always)]
        fn zero() -> Self::Sums {
            // SAFETY: only called from functions compiled for AVX-512F.
            unsafe { (_mm512_setzero_pd(), _mm512_setzero_pd()) }
        }

        #[inline(always)]
        fn add_run(sums: Self::Sums, x: f64, run: &[f64]) -> Self::Sums {
            // SAFETY: only called from functions compiled for AVX-512F; every load reads
            // `run`'s own values (the masked ones only those below its length).
            unsafe {
                let (mut low, mut high) = sums;
                let x = _mm512_set1_pd(x);
                let term = |y: __m512d| _mm512_abs_pd(_mm512_sub_pd(x, y));
                let mut rest = run;
                while rest.len() >= 16 {
                    low = _mm512_add_pd(low, term(_mm512_loadu_pd(rest.as_ptr())));
                    high = _mm512_add_pd(high, term(_mm512_loadu_pd(rest.as_ptr().add(8))));
                    rest = &rest[16..];
                }
                let mask = |len: usize| ((1u32 << len) - 1) as __mmask8;
                if rest.len() >= 8 {
                    low = _mm512_add_pd(low, term(_mm512_loadu_pd(rest.as_ptr())));
                    let rest = &rest[8..];
                    if !rest.is_empty() {
                        let k = mask(rest.len());
                        let y = _mm512_maskz_loadu_pd(k, rest.as_ptr());
                        high = _mm512_mask_add_pd(high, k, high, term(y));
                    }
                } else if !rest.is_empty() {
                    let k = mask(rest.len());
                    let y = _mm512_maskz_loadu_pd(k, rest.as_ptr());
                    low = _mm512_mask_add_pd(low, k, low, term(y));
                }
                (low, high)
            }
        }

        fn lanes(sums: Self::Sums) -> [f64; 16] {
            let mut out = [0.0; 16];
            // SAFETY: only called from functions compiled for AVX-512F; 16 values fit.
            unsafe {
                _mm512_storeu_pd(out.as_mut_ptr(), sums.0);
                _mm512_storeu_pd(out.as_mut_ptr().add(8), sums.1);
            }
            out
        }
    }

    pub(super) struct Avx2;

    impl Lanes for Avx2 {
        type Sums = [__m256d; 4];

        #[inline(always)]
        fn zero() -> Self::Sums {
            // SAFETY: only called from functions compiled for AVX2.
            unsafe { [_mm256_setzero_pd(); 4] }
        }

        #[inline(always)]
        fn add_run(mut sums: Self::Sums, x: f64, run: &[f64]) -> Self::Sums {
            // SAFETY: only called from functions compiled for AVX2; every load reads `run`'s
            // own values (the masked ones only those below its length).
            unsafe {
                let x = _mm256_set1_pd(x);
                let sign = _mm256_set1_pd(-0.0);
                let term = |y: __m256d| _mm256_andnot_pd(sign, _mm256_sub_pd(x, y));
                let mut chunks = run.chunks_exact(4);
                let mut group = 0;
                for c in &mut chunks {
                    sums[group] = _mm256_add_pd(sums[group], term(_mm256_loadu_pd(c.as_ptr())));
                    group = (group + 1) % 4;
                }
                let rest = chunks.remainder();
                if !rest.is_empty() {
                    let lane = _mm256_set_epi64x(3, 2, 1, 0);
                    let inside = _mm256_cmpgt_epi64(_mm256_set1_epi64x(rest.len() as i64), lane);
                    let y = _mm256_maskload_pd(rest.as_ptr(), inside);
                    let y = _mm256_blendv_pd(x, y, _mm256_castsi256_pd(inside));
                    sums[group] = _mm256_add_pd(sums[group], term(y));
                }
                sums
            }
        }

        fn lanes(sums: Self::Sums) -> [f64; 16] {
            let mut out = [0.0; 16];
            // SAFETY: only called from functions compiled for AVX2; 16 values fit.
            unsafe {
                for (k, s) in sums.iter().enumerate() {
                    _mm256_storeu_pd(out.as_mut_ptr().add(4 * k), *s);
                }
            }
            out
        }
    }
}

#[inline(always)]
fn quantile_walk<L: Lanes>(u: &[f64], v: &[f64]) -> f64 {
    debug_assert!(!u.is_empty() && !v.is_empty());
    // The distance is symmetric: walk the shorter sample over the longer.
    let (a, b) = if u.len() <= v.len() { (u, v) } else { (v, u) };
    if b.len() % a.len() == 0 {
        even_walk::<L>(a, b)
    } else {
        walk::<L>(a, b)
    }
}

/// The walk of `a` (n values) over `b` (m ≥ n values).
#[inline(always)]
fn walk<L: Lanes>(a: &[f64], b: &[f64]) -> f64 {
    let (n, m) = (a.len() as i64, b.len() as i64);
    // A block holds `m / n` whole steps when its head is at most `m % n`, one fewer otherwise.
    let (steps, spill) = (m / n, m % n);
    // Separate sums, so that no chain of additions waits on another: the heads' and tails'
    // weighted terms of even and odd blocks, and the whole steps' differences (all of weight n)
    // in 16 lanes.
    let mut ends = [0.0f64; 4];
    let mut whole = L::zero();
    // `b[j]`'s step has `head` units left where the block starts.
    let (mut j, mut head) = (0usize, n);
    for (i, &x) in a.iter().enumerate() {
        ends[i % 2] += head as f64 * (x - b[j]).abs();
        j += 1;
        let full = steps - i64::from(head > spill);
        let tail = m - head - full * n;
        whole = L::add_run(whole, x, &b[j..j + full as usize]);
        j += full as usize;
        if tail > 0 {
            // The start of b[j]'s step; the next block has the rest.
            ends[2 + i % 2] += tail as f64 * (x - b[j]).abs();
            head = n - tail;
        } else {
            head = n;
        }
    }
    finish::<L>(ends, whole, n, m)
}

/// [`walk`] where `n` divides `m` (a window that divides the reference, as the default windows
/// do a full reference): every block is `m / n` whole steps, its first one in the heads' sums,
/// the others in the lanes. The same terms in the same sums, without the bookkeeping.
#[inline(always)]
fn even_walk<L: Lanes>(a: &[f64], b: &[f64]) -> f64 {
    let (n, m) = (a.len() as i64, b.len() as i64);
    let mut ends = [0.0f64; 4];
    let mut whole = L::zero();
    for (i, (&x, block)) in a.iter().zip(b.chunks_exact(b.len() / a.len())).enumerate() {
        ends[i % 2] += n as f64 * (x - block[0]).abs();
        whole = L::add_run(whole, x, &block[1..]);
    }
    finish::<L>(ends, whole, n, m)
}

/// The distance from the walk's sums.
#[inline(always)]
fn finish<L: Lanes>(ends: [f64; 4], whole: L::Sums, n: i64, m: i64) -> f64 {
    let l = L::lanes(whole);
    let eight = |s: &[f64]| ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    let whole = eight(&l[..8]) + eight(&l[8..]);
    let ends = (ends[0] + ends[1]) + (ends[2] + ends[3]);
    (ends + n as f64 * whole) / (n as f64 * m as f64)
}

/// `⌈k·m / n⌉ − 1` for `1 ≤ k ≤ n` and `m ≥ 1`: the first reference index at which `F` reaches
/// the level `k / n`. Estimated in floating point and corrected in integers (an integer division
/// would cost more than the rest of a step); both counts are below 2^31 here, so the products
/// are exact and the estimate is off by at most one or two.
fn crossing(k: usize, m: usize, n: usize, inv_n: f64) -> usize {
    let (k, m, n) = (k as i64, m as i64, n as i64);
    let target = k * m;
    // Truncation, not `ceil`: without SSE4.1 `ceil` is a library call.
    let mut ceiling = (target as f64 * inv_n) as i64;
    while ceiling * n < target {
        ceiling += 1;
    }
    while ceiling > 0 && (ceiling - 1) * n >= target {
        ceiling -= 1;
    }
    ceiling as usize - 1
}

/// A sorted, finite, non-empty reference prepared for [`GapIndex::distance`].
#[derive(Debug, Clone)]
pub(crate) struct GapIndex {
    /// The reference's values with their prefix integrals, side by side so that a lookup and
    /// the integral it needs share cache lines.
    points: Vec<Point>,
    /// `r_0` and the grid's cells per unit (`0` when the grid has one cell).
    low: f64,
    scale: f64,
    /// `cells[k]` = reference values whose cell is below `k`; `cells.len()` = cells + 1.
    cells: Vec<u32>,
}

/// A reference value `r_i` and `Q_i = ∫_{r_0}^{r_i} F(x) dx`, as `high + low`.
#[derive(Debug, Clone, Copy)]
struct Point {
    value: f64,
    high: f64,
    low: f64,
}

/// The buffers of one call, reused by the thread: the current values sorted, then with their
/// gaps.
#[derive(Default)]
struct Scratch {
    sorted: Vec<f64>,
    located: Vec<(f64, u32)>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::default();
}

impl GapIndex {
    /// Prepares `sorted` (finite, ascending, non-empty).
    pub(crate) fn new(sorted: &[f64]) -> GapIndex {
        let m = sorted.len();
        debug_assert!(m > 0 && sorted.windows(2).all(|w| w[0] <= w[1]));
        // Neumaier's compensated sum, kept as (sum, compensation) normalised to (high, low).
        let mut points = Vec::with_capacity(m);
        let (mut sum, mut compensation) = (0.0f64, 0.0f64);
        for (i, &value) in sorted.iter().enumerate() {
            if i > 0 {
                let term = (i as f64 / m as f64) * (value - sorted[i - 1]);
                let t = sum + term;
                compensation += if sum.abs() >= term.abs() {
                    (sum - t) + term
                } else {
                    (term - t) + sum
                };
                sum = t;
            }
            let high = sum + compensation;
            points.push(Point {
                value,
                high,
                low: (sum - high) + compensation,
            });
        }
        let (low, high) = (sorted[0], sorted[m - 1]);
        let wanted = (m * CELLS_PER_VALUE).max(1);
        let scale = wanted as f64 / (high - low);
        let (cell_count, scale) = if scale.is_finite() && scale > 0.0 {
            (wanted, scale)
        } else {
            (1, 0.0)
        };
        let mut index = GapIndex {
            points,
            low,
            scale,
            cells: vec![0; cell_count + 1],
        };
        for &r in sorted {
            let k = index.cell(r);
            index.cells[k + 1] += 1;
        }
        for k in 1..index.cells.len() {
            index.cells[k] += index.cells[k - 1];
        }
        index
    }

    fn cell(&self, x: f64) -> usize {
        (((x - self.low) * self.scale) as usize).min(self.cells.len() - 2)
    }

    /// `#{r_i ≤ x}` for a finite `x` in cell `k`.
    fn gap(&self, k: usize, x: f64) -> usize {
        let p = &self.points;
        if x < p[0].value {
            return 0;
        }
        if x >= p[p.len() - 1].value {
            return p.len();
        }
        // The cell function is monotone, so values in lower cells are < x and values in higher
        // cells are > x: only the cell's own values need comparing.
        let (start, end) = (self.cells[k] as usize, self.cells[k + 1] as usize);
        let within = &p[start..end];
        start
            + if within.len() <= SCAN_MAX {
                within.iter().filter(|r| r.value <= x).count()
            } else {
                within.partition_point(|r| r.value <= x)
            }
    }

    /// `∫_{−∞}^{x} F` for `x` in gap `g` (`g = #{r_i ≤ x}`), as `(high, low)`.
    fn integral_to(&self, g: usize, x: f64, inv_m: f64) -> (f64, f64) {
        if g == 0 {
            (0.0, 0.0)
        } else {
            let p = self.points[g - 1];
            (p.high, p.low + g as f64 * inv_m * (x - p.value))
        }
    }

    /// `scipy.stats.wasserstein_distance(reference, current)` for the reference this index was
    /// made from; non-finite current values are skipped. `None` when none is left.
    pub(crate) fn distance(&self, current: &[f64]) -> Option<f64> {
        SCRATCH.with(|scratch| {
            let s = &mut *scratch.borrow_mut();
            sort_finite_into(current, &mut s.sorted);
            if s.sorted.is_empty() {
                return None;
            }
            // All lookups first: independent of each other, their cache misses overlap.
            s.located.clear();
            s.located.extend(
                s.sorted
                    .iter()
                    .map(|&x| (x, self.gap(self.cell(x), x) as u32)),
            );
            Some(self.walk(&s.located))
        })
    }

    /// The distance from the ascending values `c` (with their gaps) to the reference: the area
    /// between the two CDFs, piece by piece between consecutive values of `c`.
    fn walk(&self, c: &[(f64, u32)]) -> f64 {
        let p = &self.points;
        let (m, n) = (p.len(), c.len());
        let (inv_m, inv_n) = (1.0 / m as f64, 1.0 / n as f64);
        let inv_nm = 1.0 / (n as f64 * m as f64);
        let (mut a, ga) = c[0];
        let mut ga = ga as usize;
        let mut integral_a = self.integral_to(ga, a, inv_m);
        // Below the first value the window's CDF is 0.
        let mut sum = integral_a.0 + integral_a.1;
        for (k, &(b, gb)) in c.iter().enumerate().skip(1) {
            let gb = gb as usize;
            let integral_b = self.integral_to(gb, b, inv_m);
            // The window's CDF is k / n on [a, b); F is g / m in gap g.
            sum += if ga == gb {
                // F is constant on [a, b]: |k/n − g/m| from integers (exactly 0 where the CDFs
                // agree).
                (k as i64 * m as i64 - ga as i64 * n as i64).abs() as f64 * inv_nm * (b - a)
            } else {
                // F reaches the level at r_j: below it the window's CDF is above F, from it on
                // below. s is r_j clamped to [a, b].
                let level = k as f64 * inv_n;
                let j = crossing(k, m, n, inv_n);
                let t = p[j].value;
                let (s, integral_s) = if t <= a {
                    (a, integral_a)
                } else if t >= b {
                    (b, integral_b)
                } else {
                    (t, (p[j].high, p[j].low))
                };
                (level * (s - a) - difference(integral_s, integral_a)).max(0.0)
                    + (difference(integral_b, integral_s) - level * (b - s)).max(0.0)
            };
            (a, ga, integral_a) = (b, gb, integral_b);
        }
        // Above the last value the window's CDF is 1.
        let last = p[m - 1];
        if a < last.value {
            sum += ((last.value - a) - difference((last.high, last.low), integral_a)).max(0.0);
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::sorted_finite;
    use crate::testing::lcg;

    /// SciPy's `_cdf_distance(1, u, v)` over sorted samples.
    ///
    /// SciPy sorts the concatenation and finds each value's CDF in both samples by binary search;
    /// here one merge of the two sorted samples walks the same sorted values, and two cursors give
    /// the same counts, so the terms are identical, in `O(n + m)` (summed in order rather than
    /// pairwise: the difference is far below the 1e-9 relative agreement the tests check).
    fn scipy_merge(u: &[f64], v: &[f64]) -> f64 {
        let (nu, nv) = (u.len() as f64, v.len() as f64);
        let first = match (u.first(), v.first()) {
            (Some(&a), Some(&b)) => a.min(b),
            (Some(&a), None) => a,
            (None, Some(&b)) => b,
            (None, None) => return 0.0,
        };
        // Between consecutive distinct values p < x of the merged samples, each CDF is the share of
        // its sample `<= p`; the distance is the sum of |CDF_u - CDF_v| * (x - p). One pass, summed
        // as it goes: plain summation keeps far within the 1e-9 relative agreement with SciPy.
        let (mut i, mut j) = (0usize, 0usize);
        let mut p = first;
        let mut sum = 0.0;
        loop {
            while i < u.len() && u[i] <= p {
                i += 1;
            }
            while j < v.len() && v[j] <= p {
                j += 1;
            }
            let x = match (u.get(i), v.get(j)) {
                (Some(&a), Some(&b)) => a.min(b),
                (Some(&a), None) => a,
                (None, Some(&b)) => b,
                (None, None) => break,
            };
            sum += (i as f64 / nu - j as f64 / nv).abs() * (x - p);
            p = x;
        }
        sum
    }

    /// Within 1e-12 relative, or 1e-15 of the samples' range for a distance of (nearly) zero.
    fn close(a: f64, b: f64, range: f64) -> bool {
        (a - b).abs() <= 1e-12 * a.abs().max(b.abs()) + 1e-15 * range
    }

    fn check(reference: &[f64], current: &[f64]) {
        let r = sorted_finite(reference);
        let c = sorted_finite(current);
        let index = GapIndex::new(&r);
        let got = index.distance(current).unwrap();
        let want = scipy_merge(&r, &c);
        let range = r[r.len() - 1].max(c[c.len() - 1]) - r[0].min(c[0]);
        assert!(
            close(got, want, range),
            "{got} != {want} (m = {}, n = {})",
            r.len(),
            c.len()
        );
        // The quantile walk, both ways round.
        for walked in [wasserstein_sorted(&r, &c), wasserstein_sorted(&c, &r)] {
            assert!(
                close(walked, want, range),
                "walk {walked} != {want} (m = {}, n = {})",
                r.len(),
                c.len()
            );
            if want == 0.0 {
                assert_eq!(walked, 0.0);
            }
        }
        // Every implementation this CPU has agrees with the portable walk to the bit, and the
        // walk of a window that divides the reference with the general walk.
        let portable = quantile_walk::<Portable>(&r, &c).to_bits();
        let (a, b) = if r.len() <= c.len() {
            (&r, &c)
        } else {
            (&c, &r)
        };
        assert_eq!(walk::<Portable>(a, b).to_bits(), portable);
        assert_eq!(wasserstein_sorted(&r, &c).to_bits(), portable);
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2, as just checked.
                assert_eq!(unsafe { quantile_walk_avx2(&r, &c) }.to_bits(), portable);
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F, as just checked.
                assert_eq!(unsafe { quantile_walk_avx512(&r, &c) }.to_bits(), portable);
            }
        }
    }

    #[test]
    fn matches_the_merge_on_small_cases() {
        check(&[0.0, 1.0, 3.0], &[5.0, 6.0, 8.0]);
        check(&[5.0, 6.0, 8.0], &[0.0, 1.0, 3.0]);
        check(&[1.0], &[1.0]);
        check(&[0.0], &[2.5]);
        check(&[2.0; 10], &[2.0, 2.0, 2.0, 3.0]);
        check(&[1.0, 2.0, 3.0], &[2.0, 2.0, f64::NAN, 1.5, 3.0, 3.0]);
        check(
            &[1.0, 1.0, 2.0, 2.0, 2.0, 5.0],
            &[1.0, 2.0, 5.0, 5.0, 0.5, 7.0],
        );
        check(&[-1e300, 0.0, 1e300], &[-5e299, 3.0, 7e299]);
        assert_eq!(
            GapIndex::new(&[1.0]).distance(&[f64::NAN, f64::INFINITY]),
            None
        );
    }

    #[test]
    fn matches_the_merge_on_random_samples_with_ties_shifts_and_offsets() {
        let mut state = 7u64;
        for case in 0..300 {
            let m = 1 + (lcg(&mut state) * 3000.0) as usize;
            let n = 1 + (lcg(&mut state) * [50.0, 1000.0, 20000.0][case % 3]) as usize;
            // Some references a multiple of the window.
            let m = if case % 6 == 1 {
                n * (1 + case % 12)
            } else {
                m
            };
            let offset = [0.0, 1500.0, -9065.0, 1e-6][case % 4];
            let spread = [1.0, 0.01, 100.0][case % 3];
            let shift = lcg(&mut state) - 0.5;
            let ties = case % 5 == 0;
            let draw = |state: &mut u64, shift: f64| {
                let u = lcg(state) + shift;
                offset + spread * if ties { (u * 8.0).round() } else { u * u * u }
            };
            let reference: Vec<f64> = (0..m).map(|_| draw(&mut state, 0.0)).collect();
            let current: Vec<f64> = (0..n).map(|_| draw(&mut state, shift)).collect();
            check(&reference, &current);
            // The reference itself, and a subset of it, as the current sample.
            check(&reference, &reference);
            check(&reference, &reference[..m.div_ceil(3)]);
        }
    }

    #[test]
    fn crossing_is_the_integer_ceiling() {
        for (m, n) in [
            (1, 1),
            (3, 7),
            (10_000, 1_000),
            (1_000, 10_000),
            (4_294_967_295, 3),
        ] {
            for k in (1..=n).step_by((n / 500).max(1)).chain([n]) {
                let want = (k as u64 * m as u64).div_ceil(n as u64) as usize - 1;
                assert_eq!(crossing(k, m, n, 1.0 / n as f64), want, "k {k} m {m} n {n}");
            }
        }
    }

    #[test]
    fn scratch_is_clean_between_references_of_different_sizes() {
        let big: Vec<f64> = (0..5000).map(f64::from).collect();
        let small = [10.0, 20.0];
        check(&big, &[3.0, 4000.5, 4999.0]);
        check(&small, &[15.0, 25.0]);
        check(&big, &[0.5, 1.5, 2.5]);
    }
}
