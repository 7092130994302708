//! Seeded, portable random numbers for the tree learners.
//!
//! Only the raw `u64` stream comes from `rand_xoshiro`; bounded integers are drawn here, so a
//! seed keeps meaning the same trees even if `rand`'s distribution code changes.

use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// xoshiro256++ seeded through SplitMix64: one seed, one stream, on every platform.
#[derive(Debug, Clone)]
pub(crate) struct TreeRng(Xoshiro256PlusPlus);

impl TreeRng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(Xoshiro256PlusPlus::seed_from_u64(seed))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        Rng::next_u64(&mut self.0)
    }

    /// A uniform integer in `0..n` (Lemire's multiply-shift with rejection: no modulo bias).
    ///
    /// `n` must be positive.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        debug_assert!(n > 0);
        let n = n as u64;
        let mut m = u128::from(self.next_u64()) * u128::from(n);
        if (m as u64) < n {
            let threshold = n.wrapping_neg() % n;
            while (m as u64) < threshold {
                m = u128::from(self.next_u64()) * u128::from(n);
            }
        }
        (m >> 64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::TreeRng;

    #[test]
    fn same_seed_same_stream_and_bounded() {
        let mut a = TreeRng::new(42);
        let mut b = TreeRng::new(42);
        let xs: Vec<usize> = (0..1000).map(|_| a.below(7)).collect();
        let ys: Vec<usize> = (0..1000).map(|_| b.below(7)).collect();
        assert_eq!(xs, ys);
        assert!(xs.iter().all(|&x| x < 7));
        // Every value of a small range shows up.
        for v in 0..7 {
            assert!(xs.contains(&v), "{v} never drawn");
        }
        assert_ne!(TreeRng::new(1).next_u64(), TreeRng::new(2).next_u64());
    }
}
