//! Growing one CART tree, depth first, with an exact best-split search.
//!
//! The search follows scikit-learn's `BestSplitter`: at each node features are drawn without
//! replacement until `max_features` non-constant ones have been scanned, each candidate
//! threshold lies midway between two consecutive distinct values, and the best proxy wins
//! (first found on ties). Two ways to scan one feature give the same splits:
//!
//! * **bins**: when the node's samples span few distinct values of the feature, accumulate the
//!   statistics per rank (an exact histogram) and sweep the ranks: O(n + distinct values);
//! * **sort**: otherwise sort `(rank, sample)` keys packed into `u64`s and sweep them:
//!   O(n log n).
//!
//! All buffers live in the [`Grower`] and are reused from node to node and tree to tree.

use super::criterion::Criterion;
use super::data::RankedFeatures;
use super::rng::TreeRng;
use super::tree::Tree;

/// scikit-learn's `EPSILON`: impurities and improvements closer than this count as equal.
const EPSILON: f64 = f64::EPSILON;
/// scikit-learn's `FEATURE_THRESHOLD`: values closer than this are not split apart.
const FEATURE_THRESHOLD: f64 = 1e-7;
/// The bins scan is used when the node's rank range is at most this many times its size.
const BINS_PER_SAMPLE: usize = 4;

/// How far one tree may grow; already validated and resolved against the data.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_depth: usize,
    pub(crate) min_samples_split: usize,
    pub(crate) min_samples_leaf: usize,
    /// Features to scan per node, in `1..=n_features`.
    pub(crate) max_features: usize,
    pub(crate) min_impurity_decrease: f64,
}

/// A leaf of the last grown tree and the range of [`Grower::samples`] that reached it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LeafRange {
    pub(crate) node: usize,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// A node waiting to be grown: its samples are `samples[start..end]`.
#[derive(Debug)]
struct Pending {
    start: usize,
    end: usize,
    depth: usize,
    /// The parent node and whether this is its left child.
    parent: Option<(usize, bool)>,
}

/// What stays fixed while one tree grows.
struct Fit<'a, C> {
    data: &'a RankedFeatures,
    criterion: &'a C,
    weights: &'a [f64],
    limits: &'a Limits,
}

#[derive(Debug, Clone, Copy)]
struct Split {
    feature: usize,
    /// The largest rank that goes left.
    rank: u32,
    threshold: f64,
    proxy: f64,
}

enum Scan {
    /// The feature takes one value over the node's samples.
    Constant,
    /// The best split on the feature, if any satisfies `min_samples_leaf`.
    Scanned(Option<Split>),
}

/// Grows trees; owns every buffer the growth needs so that a forest or a boosting run
/// allocates them once per thread.
#[derive(Debug)]
pub(crate) struct Grower {
    /// Scan by bins when a node's rank range is at most this many times its sample count.
    bins_per_sample: usize,
    samples: Vec<u32>,
    keys: Vec<u64>,
    features: Vec<usize>,
    bin_count: Vec<u32>,
    bin_weight: Vec<f64>,
    bin_stats: Vec<f64>,
    total: Vec<f64>,
    left: Vec<f64>,
    scratch: Vec<f64>,
    value: Vec<f64>,
    /// Weight of the node being split (its statistics are in `total`).
    node_weight: f64,
    stack: Vec<Pending>,
    leaves: Vec<LeafRange>,
}

impl Grower {
    pub(crate) fn new() -> Self {
        Self::with_bins_per_sample(BINS_PER_SAMPLE)
    }

    fn with_bins_per_sample(bins_per_sample: usize) -> Self {
        Self {
            bins_per_sample,
            samples: Vec::new(),
            keys: Vec::new(),
            features: Vec::new(),
            bin_count: Vec::new(),
            bin_weight: Vec::new(),
            bin_stats: Vec::new(),
            total: Vec::new(),
            left: Vec::new(),
            scratch: Vec::new(),
            value: Vec::new(),
            node_weight: 0.0,
            stack: Vec::new(),
            leaves: Vec::new(),
        }
    }

    /// Sample indices of the last grown tree, grouped by leaf (see [`Grower::leaves`]).
    pub(crate) fn samples(&self) -> &[u32] {
        &self.samples
    }

    /// The leaves of the last grown tree with their sample ranges.
    pub(crate) fn leaves(&self) -> &[LeafRange] {
        &self.leaves
    }

    /// Grows one tree on the rows with a positive weight.
    ///
    /// Weights are integer bootstrap counts in a forest and 0/1 subsample masks in boosting;
    /// like scikit-learn, `min_samples_*` count distinct rows and impurities use the weights.
    pub(crate) fn grow<C: Criterion>(
        &mut self,
        data: &RankedFeatures,
        criterion: &C,
        weights: &[f64],
        limits: &Limits,
        rng: &mut TreeRng,
    ) -> Tree {
        debug_assert_eq!(weights.len(), data.n_rows());
        let width = criterion.width();
        self.samples.clear();
        self.samples
            .extend((0..data.n_rows() as u32).filter(|&i| weights[i as usize] > 0.0));
        self.features.clear();
        self.features.extend(0..data.n_features());
        let max_bins = data.max_distinct();
        self.bin_count.resize(max_bins, 0);
        self.bin_weight.resize(max_bins, 0.0);
        self.bin_stats.resize(max_bins * width, 0.0);
        self.total.resize(width, 0.0);
        self.left.resize(width, 0.0);
        self.scratch.resize(width, 0.0);
        self.value.resize(criterion.n_outputs(), 0.0);
        self.leaves.clear();
        self.stack.clear();

        let mut tree = Tree::new(data.n_features(), criterion.n_outputs());
        let mut root_weight = 0.0;
        self.stack.push(Pending {
            start: 0,
            end: self.samples.len(),
            depth: 0,
            parent: None,
        });
        while let Some(node) = self.stack.pop() {
            let Pending {
                start,
                end,
                depth,
                parent,
            } = node;
            let n = end - start;
            let (weight, impurity) =
                criterion.summarize(&self.samples[start..end], weights, &mut self.total);
            criterion.node_value(&self.total, weight, &mut self.value);
            let id = tree.push_leaf(weight, impurity, &self.value);
            match parent {
                Some((parent, is_left)) => tree.link(parent, is_left, id),
                None => root_weight = weight,
            }

            self.node_weight = weight;
            let mut split = None;
            if n > 0
                && depth < limits.max_depth
                && n >= limits.min_samples_split
                && n >= 2 * limits.min_samples_leaf
                && impurity > EPSILON
            {
                let fit = Fit {
                    data,
                    criterion,
                    weights,
                    limits,
                };
                split = self.best_split(&fit, start, end, rng);
            }
            let mut mid = start;
            if let Some(best) = split {
                mid = partition(
                    &mut self.samples[start..end],
                    data.ranks(best.feature),
                    best.rank,
                ) + start;
                if limits.min_impurity_decrease > 0.0 {
                    let (wl, il) =
                        criterion.summarize(&self.samples[start..mid], weights, &mut self.scratch);
                    let (wr, ir) =
                        criterion.summarize(&self.samples[mid..end], weights, &mut self.scratch);
                    let improvement =
                        (weight / root_weight) * (impurity - wr / weight * ir - wl / weight * il);
                    if improvement + EPSILON < limits.min_impurity_decrease {
                        split = None;
                    }
                }
            }
            match split {
                Some(best) => {
                    tree.set_split(id, best.feature, best.threshold);
                    // Right pushed first so that the left subtree is grown first, as in
                    // scikit-learn's depth-first builder (this fixes the RNG's use).
                    self.stack.push(Pending {
                        start: mid,
                        end,
                        depth: depth + 1,
                        parent: Some((id, false)),
                    });
                    self.stack.push(Pending {
                        start,
                        end: mid,
                        depth: depth + 1,
                        parent: Some((id, true)),
                    });
                }
                None => self.leaves.push(LeafRange {
                    node: id,
                    start,
                    end,
                }),
            }
        }
        tree
    }

    /// The best split of `samples[start..end]`, drawing features as scikit-learn does.
    fn best_split<C: Criterion>(
        &mut self,
        fit: &Fit<C>,
        start: usize,
        end: usize,
        rng: &mut TreeRng,
    ) -> Option<Split> {
        let mut best: Option<Split> = None;
        let mut remaining = self.features.len();
        let mut constants = 0;
        let mut visited = 0;
        // Keep drawing past `max_features` while every feature seen so far was constant.
        while remaining > constants && (visited < fit.limits.max_features || visited <= constants) {
            visited += 1;
            let j = constants + rng.below(remaining - constants);
            let feature = self.features[j];
            match self.scan_feature(fit, start, end, feature) {
                Scan::Constant => {
                    self.features.swap(j, constants);
                    constants += 1;
                }
                Scan::Scanned(found) => {
                    remaining -= 1;
                    self.features.swap(remaining, j);
                    if let Some(found) = found
                        && best.is_none_or(|b| found.proxy > b.proxy)
                    {
                        best = Some(found);
                    }
                }
            }
        }
        best
    }

    /// The best split of `samples[start..end]` on one feature.
    fn scan_feature<C: Criterion>(
        &mut self,
        fit: &Fit<C>,
        start: usize,
        end: usize,
        feature: usize,
    ) -> Scan {
        let ranks = fit.data.ranks(feature);
        let values = fit.data.values(feature);
        if values.len() == 1 {
            return Scan::Constant;
        }
        let samples = &self.samples[start..end];
        let n = samples.len();
        self.keys.clear();
        let (mut lo, mut hi) = (u32::MAX, 0);
        self.keys.extend(samples.iter().map(|&s| {
            let r = ranks[s as usize];
            lo = lo.min(r);
            hi = hi.max(r);
            (u64::from(r) << 32) | u64::from(s)
        }));
        if lo == hi {
            return Scan::Constant;
        }
        let found = if ((hi - lo) as usize) < self.bins_per_sample * n {
            self.scan_bins(fit, values, lo, hi)
        } else {
            self.keys.sort_unstable();
            self.scan_sorted(fit, values)
        };
        Scan::Scanned(found.map(|mut split| {
            split.feature = feature;
            split
        }))
    }

    /// Sweeps a per-rank histogram of `keys` over ranks `lo..=hi`.
    fn scan_bins<C: Criterion>(
        &mut self,
        fit: &Fit<C>,
        values: &[f64],
        lo: u32,
        hi: u32,
    ) -> Option<Split> {
        let Fit {
            criterion,
            weights,
            limits,
            ..
        } = *fit;
        let width = criterion.width();
        let bins = (hi - lo) as usize + 1;
        self.bin_count[..bins].fill(0);
        self.bin_weight[..bins].fill(0.0);
        self.bin_stats[..bins * width].fill(0.0);
        for &key in &self.keys {
            let b = ((key >> 32) as u32 - lo) as usize;
            let s = key as u32 as usize;
            let w = weights[s];
            self.bin_count[b] += 1;
            self.bin_weight[b] += w;
            criterion.add(&mut self.bin_stats[b * width..(b + 1) * width], s, w);
        }

        let n = self.keys.len();
        let node_weight = self.node_weight;
        self.left.fill(0.0);
        let (mut n_left, mut w_left) = (0usize, 0.0);
        let mut best: Option<Split> = None;
        // The last non-empty bin already added to the left side.
        let mut previous = None;
        for b in 0..bins {
            let count = self.bin_count[b] as usize;
            if count == 0 {
                continue;
            }
            if let Some(p) = previous {
                if n - n_left < limits.min_samples_leaf {
                    break;
                }
                let (v_left, v_right) = (values[lo as usize + p], values[lo as usize + b]);
                if n_left >= limits.min_samples_leaf && v_right > v_left + FEATURE_THRESHOLD {
                    let proxy =
                        criterion.proxy(&self.left, &self.total, w_left, node_weight - w_left);
                    if best.is_none_or(|s| proxy > s.proxy) {
                        best = Some(Split {
                            feature: 0,
                            rank: lo + p as u32,
                            threshold: midpoint(v_left, v_right),
                            proxy,
                        });
                    }
                }
            }
            n_left += count;
            w_left += self.bin_weight[b];
            for (l, &s) in self
                .left
                .iter_mut()
                .zip(&self.bin_stats[b * width..(b + 1) * width])
            {
                *l += s;
            }
            previous = Some(b);
        }
        best
    }

    /// Sweeps `keys`, sorted by rank.
    fn scan_sorted<C: Criterion>(&mut self, fit: &Fit<C>, values: &[f64]) -> Option<Split> {
        let Fit {
            criterion,
            weights,
            limits,
            ..
        } = *fit;
        let n = self.keys.len();
        let node_weight = self.node_weight;
        self.left.fill(0.0);
        let mut w_left = 0.0;
        let mut best: Option<Split> = None;
        let last = n - limits.min_samples_leaf;
        for p in 0..last {
            let key = self.keys[p];
            let s = key as u32 as usize;
            let w = weights[s];
            w_left += w;
            criterion.add(&mut self.left, s, w);
            // Candidate split between positions p and p + 1: p + 1 samples go left.
            if p + 1 < limits.min_samples_leaf {
                continue;
            }
            let (r, r_next) = ((key >> 32) as usize, (self.keys[p + 1] >> 32) as usize);
            if r == r_next || values[r_next] <= values[r] + FEATURE_THRESHOLD {
                continue;
            }
            let proxy = criterion.proxy(&self.left, &self.total, w_left, node_weight - w_left);
            if best.is_none_or(|b| proxy > b.proxy) {
                best = Some(Split {
                    feature: 0,
                    rank: r as u32,
                    threshold: midpoint(values[r], values[r_next]),
                    proxy,
                });
            }
        }
        best
    }
}

/// scikit-learn's threshold: the midpoint, or the left value if rounding reaches the right one.
fn midpoint(left: f64, right: f64) -> f64 {
    let threshold = left / 2.0 + right / 2.0;
    if threshold == right || threshold.is_infinite() {
        left
    } else {
        threshold
    }
}

/// Moves the samples whose rank is at most `rank` to the front; returns how many there are.
fn partition(samples: &mut [u32], ranks: &[u32], rank: u32) -> usize {
    let (mut i, mut j) = (0, samples.len());
    while i < j {
        if ranks[samples[i] as usize] <= rank {
            i += 1;
        } else {
            j -= 1;
            samples.swap(i, j);
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use ndarray::Array2;

    use super::*;
    use crate::trees::ClassCriterion;
    use crate::trees::criterion::{Classification, Regression};

    fn noisy_data(n: usize, seed: u64) -> (Array2<f64>, Vec<f64>, Vec<u32>) {
        let mut rng = TreeRng::new(seed);
        // Few distinct values in column 0, many in column 1, a constant column 2.
        let x = Array2::from_shape_fn((n, 3), |(_, j)| match j {
            0 => rng.below(7) as f64,
            1 => rng.below(10_000) as f64 / 100.0,
            _ => 1.5,
        });
        let y: Vec<f64> = x
            .outer_iter()
            .map(|r| r[0] * 2.0 + (r[1] / 10.0).sin() + rng.below(100) as f64 / 100.0)
            .collect();
        let codes = y
            .iter()
            .map(|&v| u32::from(v > 6.5) + u32::from(v > 10.0))
            .collect();
        (x, y, codes)
    }

    #[test]
    fn bins_and_sort_scans_grow_the_same_tree() {
        let (x, y, codes) = noisy_data(500, 3);
        let data = RankedFeatures::new(x.view()).unwrap();
        let mut rng = TreeRng::new(9);
        let weights: Vec<f64> = (0..500).map(|_| rng.below(3) as f64).collect();
        let limits = Limits {
            max_depth: usize::MAX,
            min_samples_split: 2,
            min_samples_leaf: 2,
            max_features: 2,
            min_impurity_decrease: 0.0,
        };
        let regression = Regression { y: &y };
        let classification = Classification {
            codes: &codes,
            n_classes: 3,
            kind: ClassCriterion::Entropy,
        };
        let mut always_sort = Grower::with_bins_per_sample(0);
        let mut always_bins = Grower::with_bins_per_sample(usize::MAX / 1_000_000);
        for seed in 0..3 {
            let sorted = always_sort.grow(
                &data,
                &regression,
                &weights,
                &limits,
                &mut TreeRng::new(seed),
            );
            let binned = always_bins.grow(
                &data,
                &regression,
                &weights,
                &limits,
                &mut TreeRng::new(seed),
            );
            assert_eq!(sorted.nodes.len(), binned.nodes.len());
            for (a, b) in sorted.nodes.iter().zip(&binned.nodes) {
                assert_eq!(
                    (a.feature, a.threshold, a.left, a.right),
                    (b.feature, b.threshold, b.left, b.right)
                );
            }
            let sorted = always_sort.grow(
                &data,
                &classification,
                &weights,
                &limits,
                &mut TreeRng::new(seed),
            );
            let binned = always_bins.grow(
                &data,
                &classification,
                &weights,
                &limits,
                &mut TreeRng::new(seed),
            );
            assert_eq!(sorted.nodes.len(), binned.nodes.len());
            for (a, b) in sorted.nodes.iter().zip(&binned.nodes) {
                assert_eq!(
                    (a.feature, a.threshold, a.left, a.right),
                    (b.feature, b.threshold, b.left, b.right)
                );
            }
        }
    }

    #[test]
    fn leaves_respect_min_samples_leaf_and_hold_their_samples() {
        let (x, y, _) = noisy_data(300, 5);
        let data = RankedFeatures::new(x.view()).unwrap();
        let weights = vec![1.0; 300];
        let limits = Limits {
            max_depth: usize::MAX,
            min_samples_split: 2,
            min_samples_leaf: 7,
            max_features: 3,
            min_impurity_decrease: 0.0,
        };
        let mut grower = Grower::new();
        let tree = grower.grow(
            &data,
            &Regression { y: &y },
            &weights,
            &limits,
            &mut TreeRng::new(1),
        );
        assert_eq!(grower.leaves().len(), tree.n_leaves());
        let mut seen = 0;
        for leaf in grower.leaves() {
            assert!(leaf.end - leaf.start >= 7);
            seen += leaf.end - leaf.start;
            let samples = &grower.samples()[leaf.start..leaf.end];
            let mean = samples.iter().map(|&s| y[s as usize]).sum::<f64>() / samples.len() as f64;
            assert!((tree.value(leaf.node)[0] - mean).abs() < 1e-9);
            // Each sample, routed by its feature values, reaches the leaf that holds it.
            for &s in samples {
                let row = x.row(s as usize).to_vec();
                assert_eq!(tree.leaf(&row), leaf.node);
            }
        }
        assert_eq!(seen, 300);
        // The constant column is never used.
        assert!(tree.nodes.iter().all(|n| n.feature != 2));
    }
}
