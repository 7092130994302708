//! Sorting samples, which is most of the cost of a drift statistic.
//!
//! A counting sort on a grid: each finite value gets the index of its cell in a uniform grid over
//! the sample's own `[min, max]` (a monotone map, so the cells are already in value order), the
//! values are ordered by cell with an LSD radix sort of 8-bit digits, and the few cells that hold
//! more than one value are sorted on their own. The grid has at least 16 times more cells than
//! there are values (up to a million values), so for any sample without extreme outliers almost
//! every cell holds one value at most; a sample crowded into a few cells (one outlier far from
//! the rest) costs one standard sort of the crowd. Ties inside a cell are ordered by `f64::total_cmp`, so the result is
//! exactly the sequence `sort_by(f64::total_cmp)` gives.

use std::cell::RefCell;

/// Samples smaller than this go to the standard sort.
const SMALL: usize = 64;

/// The finite values of a sample, sorted ascending (in `f64::total_cmp` order).
pub(crate) fn sorted_finite(values: &[f64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(values.len());
    sort_finite_into(values, &mut out);
    out
}

/// The finite values of `values` into `out` (cleared first), sorted ascending in
/// `f64::total_cmp` order.
pub(crate) fn sort_finite_into(values: &[f64], out: &mut Vec<f64>) {
    let (low, high, finite) = range(values);
    if !finite {
        out.clear();
        out.extend(values.iter().copied().filter(|x| x.is_finite()));
        let kept = std::mem::take(out);
        return sort_finite_into(&kept, out);
    }
    let n = values.len();
    let standard = |out: &mut Vec<f64>| {
        out.clear();
        out.extend_from_slice(values);
        out.sort_unstable_by(f64::total_cmp);
    };
    if n < SMALL || n > u32::MAX as usize || low == high {
        // Few values, too many, or one value (possibly both zeros, whose signs need ordering).
        return standard(out);
    }
    // 16 to 24 bits of cell: at least 16 cells per value up to a million values.
    let digits = if n <= 1 << 12 { 2 } else { 3 };
    let cells = (1u64 << (8 * digits)) as f64;
    let scale = (cells - 1.0) / (high - low);
    if !(scale.is_finite() && scale > 0.0) {
        // A range wider than f64 can hold.
        return standard(out);
    }
    let grid = Grid {
        low,
        scale,
        max_cell: cells as u32 - 1,
    };
    SCRATCH.with(|scratch| {
        let scratch = &mut *scratch.borrow_mut();
        if digits == 2 {
            // Cells of 16 bits, indices below 2^12.
            scratch.narrow.order::<2>(&grid, values, out);
        } else {
            scratch.wide.order::<3>(&grid, values, out);
        }
    });
}

/// The least and greatest of `values` and whether all are finite (`(inf, -inf, true)` when
/// there are none), in eight independent lanes rather than one long chain of comparisons.
/// Finiteness is summed as `x · 0`, which is zero for a finite `x` and NaN otherwise, so that
/// every lane is arithmetic the compiler vectorises.
fn range(values: &[f64]) -> (f64, f64, bool) {
    let mut low = [f64::INFINITY; 8];
    let mut high = [f64::NEG_INFINITY; 8];
    let mut not_finite = [0.0f64; 8];
    let mut chunks = values.chunks_exact(8);
    for c in &mut chunks {
        for k in 0..8 {
            low[k] = if c[k] < low[k] { c[k] } else { low[k] };
            high[k] = if c[k] > high[k] { c[k] } else { high[k] };
            not_finite[k] += c[k] * 0.0;
        }
    }
    for &x in chunks.remainder() {
        low[0] = if x < low[0] { x } else { low[0] };
        high[0] = if x > high[0] { x } else { high[0] };
        not_finite[0] += x * 0.0;
    }
    let fold = |v: [f64; 8], f: fn(f64, f64) -> f64| {
        f(
            f(f(v[0], v[1]), f(v[2], v[3])),
            f(f(v[4], v[5]), f(v[6], v[7])),
        )
    };
    (
        fold(low, f64::min),
        fold(high, f64::max),
        not_finite.iter().all(|&v| v == 0.0),
    )
}

/// A uniform grid of cells over `[low, high]`.
struct Grid {
    low: f64,
    scale: f64,
    max_cell: u32,
}

impl Grid {
    /// `x`'s cell, monotone in `x` for `low ≤ x ≤ high`: the truncation of a product that is at
    /// most `max_cell` plus rounding.
    fn cell(&self, x: f64) -> u32 {
        (((x - self.low) * self.scale) as u32).min(self.max_cell)
    }
}

/// A value's cell (high half) and index in the sample (low half), in one integer.
trait Key: Copy + Default {
    const HALF: u32;
    fn new(cell: u32, index: usize) -> Self;
    fn bits(self) -> u64;
    fn cell(self) -> u64 {
        self.bits() >> Self::HALF
    }
    fn index(self) -> usize {
        (self.bits() & ((1 << Self::HALF) - 1)) as usize
    }
}

/// Cells and indices below 2^16: half the bytes to move.
impl Key for u32 {
    const HALF: u32 = 16;
    fn new(cell: u32, index: usize) -> u32 {
        (cell << 16) | index as u32
    }
    fn bits(self) -> u64 {
        u64::from(self)
    }
}

impl Key for u64 {
    const HALF: u32 = 32;
    fn new(cell: u32, index: usize) -> u64 {
        (u64::from(cell) << 32) | index as u64
    }
    fn bits(self) -> u64 {
        self
    }
}

/// The buffers of one sort, reused by the thread.
#[derive(Default)]
struct Scratch {
    narrow: Keys<u32>,
    wide: Keys<u64>,
}

/// Each value's key, and room to reorder them.
#[derive(Default)]
struct Keys<K> {
    keys: Vec<K>,
    spare: Vec<K>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::default();
}

impl<K: Key> Keys<K> {
    /// Sorts `values` (finite, within the grid): an LSD radix sort of `D` 8-bit digits of their
    /// cells, on keys that carry each value's index, then each cell's crowd by value.
    fn order<const D: usize>(&mut self, grid: &Grid, values: &[f64], out: &mut Vec<f64>) {
        let n = values.len();
        let mut counts = [[0u32; 256]; D];
        self.keys.clear();
        self.keys.extend(values.iter().enumerate().map(|(i, &x)| {
            let cell = grid.cell(x);
            for (d, c) in counts.iter_mut().enumerate() {
                c[((cell >> (8 * d)) & 0xff) as usize] += 1;
            }
            K::new(cell, i)
        }));
        for c in counts.iter_mut() {
            let mut total = 0;
            for slot in c.iter_mut() {
                let k = *slot;
                *slot = total;
                total += k;
            }
        }
        self.spare.resize(n, K::default());
        out.clear();
        out.resize(n, 0.0);
        // The scatters below index without bounds checks: a digit's slot starts at the count of
        // keys with smaller digits and is advanced once per key with its digit, so every
        // position is below `n`, the length of `spare` and `out`; every key's index is below
        // `n`, the length of `values`.
        debug_assert!(self.keys.len() == n && self.spare.len() == n && out.len() == n);
        for (d, c) in counts.iter_mut().enumerate() {
            let shift = 8 * d as u32;
            let last = d + 1 == D;
            for &key in &self.keys {
                let at = &mut c[((key.cell() >> shift) & 0xff) as usize];
                let to = *at as usize;
                debug_assert!(to < n && key.index() < n);
                // SAFETY: `to < n` and `key.index() < n`, as argued above.
                unsafe {
                    *self.spare.get_unchecked_mut(to) = key;
                    if last {
                        // The last pass places the values as well as their keys.
                        *out.get_unchecked_mut(to) = *values.get_unchecked(key.index());
                    }
                }
                *at += 1;
            }
            std::mem::swap(&mut self.keys, &mut self.spare);
        }
        // Ordered by cell; now each crowd of one cell by value. Most neighbours differ in cell:
        // one comparison each, rarely taken.
        let (keys, sorted) = (&self.keys, out);
        let same_cell = |a: K, b: K| a.cell() == b.cell();
        let mut i = 1;
        while i < n {
            if !same_cell(keys[i - 1], keys[i]) {
                i += 1;
                continue;
            }
            let start = i - 1;
            let mut end = i + 1;
            while end < n && same_cell(keys[start], keys[end]) {
                end += 1;
            }
            sorted[start..end].sort_unstable_by(f64::total_cmp);
            i = end + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::lcg;

    fn check(values: &[f64]) {
        let sorted = sorted_finite(values);
        let mut expected: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        expected.sort_by(f64::total_cmp);
        assert_eq!(
            sorted.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            expected.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            "{} values",
            values.len()
        );
    }

    #[test]
    fn orders_like_total_cmp() {
        let mut state = 12345u64;
        let mut values: Vec<f64> = (0..5000)
            .map(|i| match i % 7 {
                0 => -0.0,
                1 => 0.0,
                2 => f64::NAN,
                3 => f64::INFINITY,
                4 => lcg(&mut state) * 1e-300,
                _ => (lcg(&mut state) - 0.5) * 1e6,
            })
            .collect();
        values.push(f64::MIN);
        values.push(f64::MAX);
        check(&values);
        assert_eq!(sorted_finite(&[2.0, -1.0, f64::NAN]), vec![-1.0, 2.0]);
    }

    #[test]
    fn orders_crowds_ties_and_every_size() {
        let mut state = 99u64;
        for n in [0, 1, 63, 64, 65, 1000, 4096, 4097, 30_000] {
            // Uniform, heavy-tailed, a few distinct values, one far outlier, signed zeros.
            let uniform: Vec<f64> = (0..n).map(|_| lcg(&mut state)).collect();
            check(&uniform);
            let tailed: Vec<f64> = (0..n)
                .map(|_| 1.0 / (lcg(&mut state) - 0.5).powi(3))
                .collect();
            check(&tailed);
            let few: Vec<f64> = (0..n).map(|_| (lcg(&mut state) * 5.0).floor()).collect();
            check(&few);
            let mut outlier: Vec<f64> = (0..n).map(|_| lcg(&mut state)).collect();
            outlier.push(1e300);
            check(&outlier);
            let zeros: Vec<f64> = (0..n)
                .map(|i| if i % 2 == 0 { 0.0 } else { -0.0 })
                .collect();
            check(&zeros);
            let mut constant = vec![3.5; n];
            constant.push(f64::NAN);
            check(&constant);
        }
    }

    #[test]
    fn a_reused_buffer_holds_only_the_new_sample() {
        let mut out = vec![9.0; 500];
        sort_finite_into(&[3.0, 1.0, f64::NEG_INFINITY, 2.0], &mut out);
        assert_eq!(out, vec![1.0, 2.0, 3.0]);
    }
}
