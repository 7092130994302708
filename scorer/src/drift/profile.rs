//! The reference-profile sampler: which training values a model version keeps per feature for
//! later drift checks.
//!
//! Up to a bound (default [`DEFAULT_PROFILE_BOUND`]) every value is kept, in order. Above it, a
//! uniform random sample of exactly `bound` positions is drawn *without replacement* and the
//! values at those positions are kept in their original order. The draw is a partial
//! Fisher–Yates shuffle of the positions `0..len`, driven by SplitMix64 seeded with the caller's
//! seed and with Lemire's unbiased bounded integers, so:
//!
//! * it is deterministic: the same `(len, bound, seed)` always selects the same positions, on
//!   every platform and in every release (the generator is implemented here, not borrowed from a
//!   crate whose stream could change; changing it would change stored profiles and is a breaking
//!   change, pinned by a test);
//! * columns of the same length sampled with the same seed keep the same rows, so a multi-feature
//!   profile stays row-aligned;
//! * missing values are sampled like any other value (the drift statistics skip them later).
//!
//! **The approximation.** Drift statistics computed against the sample estimate those against the
//! full training column. For KS-type quantities the sample ECDF is within `ε` of the full ECDF
//! with probability at least `1 − 2·exp(−2·bound·ε²)` (Dvoretzky–Kiefer–Wolfowitz; sampling
//! without replacement only tightens it): with 10 000 values, `ε ≈ 0.0136` at 95 %. Tests whose
//! choice depends on the reference size (Evidently switches at 1000 values) see the sample size,
//! not the training size.

use super::DriftError;

/// Default number of values kept per feature.
pub const DEFAULT_PROFILE_BOUND: usize = 10_000;

/// Draws reference profiles: keeps at most `bound` values per feature, deterministically for a
/// seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileSampler {
    bound: usize,
    seed: u64,
}

impl ProfileSampler {
    /// A sampler keeping at most `bound` values (`bound >= 1`).
    pub fn new(bound: usize, seed: u64) -> Result<ProfileSampler, DriftError> {
        if bound == 0 {
            return Err(DriftError::InvalidParam {
                name: "bound",
                reason: "a profile must keep at least one value".to_owned(),
            });
        }
        Ok(ProfileSampler { bound, seed })
    }

    /// A sampler with [`DEFAULT_PROFILE_BOUND`].
    pub fn with_seed(seed: u64) -> ProfileSampler {
        ProfileSampler {
            bound: DEFAULT_PROFILE_BOUND,
            seed,
        }
    }

    /// The bound.
    pub fn bound(&self) -> usize {
        self.bound
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The positions kept out of `len`, ascending: all of them when `len <= bound`.
    pub fn positions(&self, len: usize) -> Vec<usize> {
        if len <= self.bound {
            return (0..len).collect();
        }
        let mut rng = SplitMix64::new(self.seed);
        let mut idx: Vec<usize> = (0..len).collect();
        for i in 0..self.bound {
            let j = i + rng.below((len - i) as u64) as usize;
            idx.swap(i, j);
        }
        idx.truncate(self.bound);
        idx.sort_unstable();
        idx
    }

    /// The kept values, in their original order.
    ///
    /// ```
    /// use refit_scorer::drift::ProfileSampler;
    /// let sampler = ProfileSampler::new(3, 42).unwrap();
    /// let small = [1.0, 2.0];
    /// assert_eq!(sampler.sample(&small), vec![1.0, 2.0]);
    /// let big: Vec<f64> = (0..10).map(f64::from).collect();
    /// let kept = sampler.sample(&big);
    /// assert_eq!(kept.len(), 3);
    /// assert_eq!(kept, sampler.sample(&big));
    /// ```
    pub fn sample<T: Clone>(&self, values: &[T]) -> Vec<T> {
        self.positions(values.len())
            .into_iter()
            .map(|i| values[i].clone())
            .collect()
    }
}

/// SplitMix64 (Steele, Lea & Flood 2014; Vigna's reference constants).
struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform integer in `0..n` (`n >= 1`), by Lemire's multiply-and-reject method.
    fn below(&mut self, n: u64) -> u64 {
        let mut m = u128::from(self.next_u64()) * u128::from(n);
        let mut low = m as u64;
        if low < n {
            let threshold = n.wrapping_neg() % n;
            while low < threshold {
                m = u128::from(self.next_u64()) * u128::from(n);
                low = m as u64;
            }
        }
        (m >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_reference_stream() {
        // First outputs of Vigna's splitmix64.c seeded with 1234567.
        let mut rng = SplitMix64::new(1_234_567);
        assert_eq!(rng.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(rng.next_u64(), 3_203_168_211_198_807_973);
        assert_eq!(rng.next_u64(), 9_817_491_932_198_370_423);
    }

    #[test]
    fn keeps_everything_up_to_the_bound() {
        let s = ProfileSampler::new(5, 7).unwrap();
        assert_eq!(s.positions(5), vec![0, 1, 2, 3, 4]);
        assert_eq!(s.positions(0), Vec::<usize>::new());
        let labels = vec!["a".to_owned(), "b".to_owned()];
        assert_eq!(s.sample(&labels), labels);
    }

    #[test]
    fn sample_is_deterministic_distinct_and_ordered() {
        let s = ProfileSampler::new(100, 99).unwrap();
        let p = s.positions(1000);
        assert_eq!(p.len(), 100);
        assert!(p.windows(2).all(|w| w[0] < w[1]));
        assert!(p.iter().all(|&i| i < 1000));
        assert_eq!(p, s.positions(1000));
        assert_ne!(p, ProfileSampler::new(100, 100).unwrap().positions(1000));
    }

    #[test]
    fn pinned_positions_for_a_seed() {
        // Changing these numbers changes every stored profile: treat it as a breaking change.
        let s = ProfileSampler::new(5, 2024).unwrap();
        assert_eq!(s.positions(20), PINNED_2024);
    }

    const PINNED_2024: [usize; 5] = [2, 4, 7, 12, 17];

    #[test]
    fn sample_is_roughly_uniform() {
        // Each of 10 positions should be kept about half the time over many seeds.
        let mut hits = [0u32; 10];
        for seed in 0..4000 {
            for i in ProfileSampler::new(5, seed).unwrap().positions(10) {
                hits[i] += 1;
            }
        }
        for h in hits {
            assert!((1850..=2150).contains(&h), "{hits:?}");
        }
    }

    #[test]
    fn zero_bound_is_rejected() {
        assert!(ProfileSampler::new(0, 1).is_err());
    }
}
