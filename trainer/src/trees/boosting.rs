//! Gradient boosting (scikit-learn's `GradientBoostingRegressor` and
//! `GradientBoostingClassifier`): shallow regression trees fit to the loss's negative gradient,
//! stage after stage.
//!
//! * Regression: squared error, initial prediction the mean target; a leaf keeps the mean
//!   residual of its samples.
//! * Binary classification: log-loss on the log-odds of `classes()[1]`, initialised at the
//!   training log-odds; each leaf takes one Newton step, `sum(y - p) / sum(p (1 - p))`.
//! * Multiclass: softmax (multinomial log-loss), one tree per class per stage, initialised at
//!   the log class priors; Newton steps scaled by `(K - 1) / K`.
//!
//! Trees use squared error to choose splits; scikit-learn's `friedman_mse` orders splits the
//! same way (it differs from the squared-error proxy by a per-node constant and factor).

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};
use serde::{Deserialize, Serialize};

use super::cart::{Growth, most_probable};
use super::criterion::Regression;
use super::data::{RankedFeatures, check_targets, encode_classes, for_each_row};
use super::grow::{Grower, Limits};
use super::rng::TreeRng;
use super::tree::{Tree, normalized};
use super::{MaxFeatures, TreeError};

/// Hyperparameters of gradient boosting; defaults are scikit-learn's (100 stages, learning rate
/// 0.1, depth-3 trees on all features, no subsampling).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoostingParams {
    n_estimators: usize,
    learning_rate: f64,
    subsample: f64,
    growth: Growth,
    seed: u64,
}

impl Default for BoostingParams {
    fn default() -> Self {
        Self {
            n_estimators: 100,
            learning_rate: 0.1,
            subsample: 1.0,
            growth: Growth {
                max_depth: Some(3),
                ..Growth::FULL
            },
            seed: 0,
        }
    }
}

impl BoostingParams {
    /// scikit-learn's defaults with seed 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of boosting stages (default 100).
    pub fn n_estimators(mut self, n: usize) -> Self {
        self.n_estimators = n;
        self
    }

    /// Shrinkage of each stage's contribution (default 0.1).
    pub fn learning_rate(mut self, rate: f64) -> Self {
        self.learning_rate = rate;
        self
    }

    /// Fraction of the rows, drawn without replacement per stage, that each stage's trees are
    /// fit on (default 1.0: all rows, plain gradient boosting).
    pub fn subsample(mut self, fraction: f64) -> Self {
        self.subsample = fraction;
        self
    }

    /// Maximum depth of each tree (default `Some(3)`).
    pub fn max_depth(mut self, max_depth: Option<usize>) -> Self {
        self.growth.max_depth = max_depth;
        self
    }

    /// Fewest samples a node needs to be split (default 2).
    pub fn min_samples_split(mut self, n: usize) -> Self {
        self.growth.min_samples_split = n;
        self
    }

    /// Fewest samples each child of a split must keep (default 1).
    pub fn min_samples_leaf(mut self, n: usize) -> Self {
        self.growth.min_samples_leaf = n;
        self
    }

    /// Features drawn per node (default [`MaxFeatures::All`]).
    pub fn max_features(mut self, max_features: MaxFeatures) -> Self {
        self.growth.max_features = max_features;
        self
    }

    /// Minimum weighted impurity decrease of a split (default 0).
    pub fn min_impurity_decrease(mut self, decrease: f64) -> Self {
        self.growth.min_impurity_decrease = decrease;
        self
    }

    /// Seed of the subsampling and the feature draws (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Validates the hyperparameters.
    pub fn check(&self) -> Result<ValidBoostingParams, TreeError> {
        if self.n_estimators == 0 {
            return Err(TreeError::invalid(
                "n_estimators",
                "must be at least 1, got 0",
            ));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return Err(TreeError::invalid(
                "learning_rate",
                format!("must be positive and finite, got {}", self.learning_rate),
            ));
        }
        if !(self.subsample > 0.0 && self.subsample <= 1.0) {
            return Err(TreeError::invalid(
                "subsample",
                format!("must be in (0, 1], got {}", self.subsample),
            ));
        }
        self.growth.check()?;
        Ok(ValidBoostingParams(self.clone()))
    }
}

/// Boosting hyperparameters that passed [`BoostingParams::check`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidBoostingParams(BoostingParams);

/// What one fit needs besides the loss: ranked features, rows for prediction, buffers.
struct Stages<'p, 'x> {
    params: &'p BoostingParams,
    data: RankedFeatures,
    limits: Limits,
    /// The training rows, to apply each new tree to.
    x: ArrayView2<'x, f64>,
    grower: Grower,
    rng: TreeRng,
    weights: Vec<f64>,
}

impl<'p, 'x> Stages<'p, 'x> {
    fn new(params: &'p BoostingParams, x: ArrayView2<'x, f64>) -> Result<Self, TreeError> {
        let data = RankedFeatures::new(x)?;
        let limits = params.growth.limits(data.n_features())?;
        let n = data.n_rows();
        Ok(Self {
            params,
            data,
            limits,
            x,
            grower: Grower::new(),
            rng: TreeRng::new(params.seed),
            weights: vec![1.0; n],
        })
    }

    /// Draws this stage's subsample (exactly `max(1, floor(subsample * n))` rows, by selection
    /// sampling as scikit-learn's `_random_sample_mask`) into `weights` as a 0/1 mask.
    fn draw_subsample(&mut self) {
        if self.params.subsample >= 1.0 {
            return;
        }
        let n = self.weights.len();
        let in_bag = ((self.params.subsample * n as f64) as usize).max(1);
        let mut taken = 0;
        for (i, w) in self.weights.iter_mut().enumerate() {
            let u = (self.rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
            if u * ((n - i) as f64) < (in_bag - taken) as f64 {
                *w = 1.0;
                taken += 1;
            } else {
                *w = 0.0;
            }
        }
    }

    /// Fits one tree to `residual` on the current subsample.
    fn grow(&mut self, residual: &[f64]) -> Tree {
        let criterion = Regression { y: residual };
        self.grower.grow(
            &self.data,
            &criterion,
            &self.weights,
            &self.limits,
            &mut self.rng,
        )
    }

    /// Replaces each leaf's value with `scale * sum(w r) / sum(w p (1 - p))` over its
    /// training samples, where `r = y - p` is the residual (a Newton step on log-loss).
    fn newton_leaves(&self, tree: &mut Tree, residual: &[f64], prob: &[f64], scale: f64) {
        let samples = self.grower.samples();
        for leaf in self.grower.leaves() {
            let (mut numerator, mut denominator) = (0.0, 0.0);
            for &s in &samples[leaf.start..leaf.end] {
                let s = s as usize;
                let w = self.weights[s];
                numerator += w * residual[s];
                denominator += w * prob[s] * (1.0 - prob[s]);
            }
            tree.set_value(leaf.node, safe_divide(scale * numerator, denominator));
        }
    }

    /// Adds `learning_rate * tree(x_i)` to `raw[i * stride + offset]` for every training row.
    fn apply(&self, tree: &Tree, raw: &mut [f64], stride: usize, offset: usize) {
        let rate = self.params.learning_rate;
        for_each_row(self.x, tree.n_features, |i, row| {
            raw[i * stride + offset] += rate * tree.predict_row(row)[0];
        });
    }
}

impl ValidBoostingParams {
    /// The validated hyperparameters.
    pub fn params(&self) -> &BoostingParams {
        &self.0
    }

    /// Fits a regressor (squared error) on `x` (rows are samples) and targets `y`.
    pub fn fit_regressor(
        &self,
        x: ArrayView2<f64>,
        y: ArrayView1<f64>,
    ) -> Result<GradientBoostingRegressor, TreeError> {
        check_targets(x.nrows(), y)?;
        let mut stages = Stages::new(&self.0, x)?;
        let y = y.to_vec();
        let init = y.iter().sum::<f64>() / y.len() as f64;
        let mut raw = vec![init; y.len()];
        let mut residual = vec![0.0; y.len()];
        let mut trees = Vec::with_capacity(self.0.n_estimators);
        for _ in 0..self.0.n_estimators {
            for ((r, &t), &f) in residual.iter_mut().zip(&y).zip(&raw) {
                *r = t - f;
            }
            stages.draw_subsample();
            let tree = stages.grow(&residual);
            stages.apply(&tree, &mut raw, 1, 0);
            trees.push(tree);
        }
        Ok(GradientBoostingRegressor {
            n_features: stages.data.n_features(),
            init,
            learning_rate: self.0.learning_rate,
            trees,
        })
    }

    /// Fits a classifier on `x` and labels `y` (at least two classes): log-loss for two
    /// classes, softmax with one tree per class per stage for more.
    pub fn fit_classifier(
        &self,
        x: ArrayView2<f64>,
        y: ArrayView1<f64>,
    ) -> Result<GradientBoostingClassifier, TreeError> {
        let encoded = encode_classes(x.nrows(), y)?;
        let k = encoded.classes.len();
        if k < 2 {
            return Err(TreeError::TooFewClasses {
                needed: 2,
                found: k,
            });
        }
        let mut stages = Stages::new(&self.0, x)?;
        let n = encoded.codes.len();
        // One-hot targets, class-major: onehot[c * n + i].
        let mut onehot = vec![0.0; k * n];
        for (i, &c) in encoded.codes.iter().enumerate() {
            onehot[c as usize * n + i] = 1.0;
        }
        let priors: Vec<f64> = (0..k)
            .map(|c| {
                let p = onehot[c * n..(c + 1) * n].iter().sum::<f64>() / n as f64;
                p.clamp(f64::EPSILON, 1.0 - f64::EPSILON)
            })
            .collect();

        let columns = if k == 2 { 1 } else { k };
        let init: Vec<f64> = if k == 2 {
            vec![(priors[1] / (1.0 - priors[1])).ln()]
        } else {
            let logs: Vec<f64> = priors.iter().map(|p| p.ln()).collect();
            let mean = logs.iter().sum::<f64>() / k as f64;
            logs.iter().map(|l| l - mean).collect()
        };
        // Raw scores, row-major: raw[i * columns + c].
        let mut raw: Vec<f64> = (0..n).flat_map(|_| init.iter().copied()).collect();
        let mut prob = vec![0.0; columns * n];
        let mut residual = vec![0.0; columns * n];
        let scale = if k == 2 {
            1.0
        } else {
            (k - 1) as f64 / k as f64
        };
        let mut trees = Vec::with_capacity(self.0.n_estimators * columns);
        for _ in 0..self.0.n_estimators {
            // Gradients of the whole stage come from the scores at its start.
            for i in 0..n {
                let scores = &raw[i * columns..(i + 1) * columns];
                if k == 2 {
                    prob[i] = expit(scores[0]);
                } else {
                    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let total: f64 = scores.iter().map(|s| (s - max).exp()).sum();
                    for (c, s) in scores.iter().enumerate() {
                        prob[c * n + i] = (s - max).exp() / total;
                    }
                }
            }
            let target = |c: usize| {
                if k == 2 {
                    &onehot[n..]
                } else {
                    &onehot[c * n..(c + 1) * n]
                }
            };
            for c in 0..columns {
                let range = c * n..(c + 1) * n;
                for ((r, &t), &p) in residual[range.clone()]
                    .iter_mut()
                    .zip(target(c))
                    .zip(&prob[range.clone()])
                {
                    *r = t - p;
                }
            }
            stages.draw_subsample();
            for c in 0..columns {
                let range = c * n..(c + 1) * n;
                let mut tree = stages.grow(&residual[range.clone()]);
                stages.newton_leaves(&mut tree, &residual[range.clone()], &prob[range], scale);
                stages.apply(&tree, &mut raw, columns, c);
                trees.push(tree);
            }
        }
        Ok(GradientBoostingClassifier {
            classes: encoded.classes,
            n_features: stages.data.n_features(),
            init,
            learning_rate: self.0.learning_rate,
            trees,
        })
    }
}

/// `numerator / denominator`, or 0 where the step is undefined or overflows (scikit-learn's
/// `_safe_divide`: a leaf whose probabilities are all 0 or 1 is left unchanged).
fn safe_divide(numerator: f64, denominator: f64) -> f64 {
    let value = numerator / denominator;
    if denominator == 0.0 || !value.is_finite() {
        0.0
    } else {
        value
    }
}

fn expit(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// A fitted gradient-boosting regressor: `init + learning_rate * sum of trees`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GradientBoostingRegressor {
    n_features: usize,
    init: f64,
    learning_rate: f64,
    trees: Vec<Tree>,
}

impl GradientBoostingRegressor {
    /// Columns the model expects in `x`.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Number of stages (one tree each).
    pub fn n_stages(&self) -> usize {
        self.trees.len()
    }

    /// Predicted targets.
    ///
    /// # Panics
    /// If `x` does not have [`Self::n_features`] columns.
    pub fn predict(&self, x: ArrayView2<f64>) -> Array1<f64> {
        let mut out = Array1::zeros(x.nrows());
        for_each_row(x, self.n_features, |i, row| {
            let sum: f64 = self.trees.iter().map(|t| t.predict_row(row)[0]).sum();
            out[i] = self.init + self.learning_rate * sum;
        });
        out
    }

    /// Impurity-based feature importances, summing to one (averaged over the trees, as
    /// scikit-learn's `feature_importances_`).
    pub fn feature_importances(&self) -> Array1<f64> {
        boosting_importances(self.n_features, &self.trees)
    }
}

/// A fitted gradient-boosting classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GradientBoostingClassifier {
    classes: Vec<f64>,
    n_features: usize,
    /// Initial raw scores: one log-odds for two classes, else one per class.
    init: Vec<f64>,
    learning_rate: f64,
    /// Stage-major: stage `m`, class column `c` is `trees[m * init.len() + c]`.
    trees: Vec<Tree>,
}

impl GradientBoostingClassifier {
    /// The class labels seen in training, increasing: the columns of [`Self::predict_proba`].
    pub fn classes(&self) -> &[f64] {
        &self.classes
    }

    /// Columns the model expects in `x`.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Number of stages (one tree per stage for two classes, one per class otherwise).
    pub fn n_stages(&self) -> usize {
        self.trees.len() / self.init.len()
    }

    /// Raw scores (scikit-learn's `decision_function`): per sample, the log-odds of
    /// `classes()[1]` for two classes (one column), else one score per class.
    ///
    /// # Panics
    /// If `x` does not have [`Self::n_features`] columns.
    pub fn decision_function(&self, x: ArrayView2<f64>) -> Array2<f64> {
        let columns = self.init.len();
        let mut raw = Array2::zeros((x.nrows(), columns));
        for_each_row(x, self.n_features, |i, row| {
            for (c, out) in raw.row_mut(i).iter_mut().enumerate() {
                let sum: f64 = self
                    .trees
                    .iter()
                    .skip(c)
                    .step_by(columns)
                    .map(|t| t.predict_row(row)[0])
                    .sum();
                *out = self.init[c] + self.learning_rate * sum;
            }
        });
        raw
    }

    /// Class probabilities, one row per sample: the logistic of the log-odds for two classes,
    /// the softmax of the scores otherwise.
    ///
    /// # Panics
    /// If `x` does not have [`Self::n_features`] columns.
    pub fn predict_proba(&self, x: ArrayView2<f64>) -> Array2<f64> {
        let raw = self.decision_function(x);
        let mut proba = Array2::zeros((x.nrows(), self.classes.len()));
        for (scores, mut p) in raw.outer_iter().zip(proba.outer_iter_mut()) {
            if self.classes.len() == 2 {
                let p1 = expit(scores[0]);
                p[0] = 1.0 - p1;
                p[1] = p1;
            } else {
                let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                p.iter_mut()
                    .zip(scores)
                    .for_each(|(p, s)| *p = (s - max).exp());
                let total = p.sum();
                p /= total;
            }
        }
        proba
    }

    /// The most probable class label per sample (the first one on ties).
    ///
    /// # Panics
    /// If `x` does not have [`Self::n_features`] columns.
    pub fn predict(&self, x: ArrayView2<f64>) -> Array1<f64> {
        most_probable(&self.predict_proba(x), &self.classes)
    }

    /// Impurity-based feature importances, summing to one (averaged over all trees).
    pub fn feature_importances(&self) -> Array1<f64> {
        boosting_importances(self.n_features, &self.trees)
    }
}

/// scikit-learn's boosting importances: the trees' unnormalized importances averaged over the
/// trees that split at least once, then normalized.
fn boosting_importances(n_features: usize, trees: &[Tree]) -> Array1<f64> {
    let mut sum = vec![0.0; n_features];
    for tree in trees.iter().filter(|t| t.nodes.len() > 1) {
        for (s, v) in sum.iter_mut().zip(tree.raw_importances()) {
            *s += v;
        }
    }
    Array1::from(normalized(sum))
}
