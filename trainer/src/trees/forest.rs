//! Random forests (scikit-learn's `RandomForestClassifier` and `RandomForestRegressor`):
//! fully grown trees on bootstrap samples, predictions averaged.

use std::sync::atomic::{AtomicUsize, Ordering};

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};
use serde::{Deserialize, Serialize};

use super::cart::{Growth, most_probable};
use super::criterion::{Classification, Criterion, Regression};
use super::data::{RankedFeatures, check_targets, encode_classes, for_each_row};
use super::grow::{Grower, Limits};
use super::rng::TreeRng;
use super::tree::{Tree, normalized};
use super::{ClassCriterion, MaxFeatures, TreeError};

/// Hyperparameters of a random forest; defaults are scikit-learn's (100 fully grown trees on
/// bootstrap samples; `max_features` √n for classification and all features for regression).
///
/// Tree `i` is grown from its own seed, drawn in order from [`ForestParams::seed`], so the
/// forest is the same whatever [`ForestParams::n_threads`] is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForestParams {
    n_estimators: usize,
    growth: Growth,
    max_features: Option<MaxFeatures>,
    criterion: ClassCriterion,
    bootstrap: bool,
    max_samples: Option<f64>,
    seed: u64,
    n_threads: usize,
}

impl Default for ForestParams {
    fn default() -> Self {
        Self {
            n_estimators: 100,
            growth: Growth::FULL,
            max_features: None,
            criterion: ClassCriterion::Gini,
            bootstrap: true,
            max_samples: None,
            seed: 0,
            n_threads: 2,
        }
    }
}

impl ForestParams {
    /// scikit-learn's defaults with seed 0, grown on 2 threads.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of trees (default 100).
    pub fn n_estimators(mut self, n: usize) -> Self {
        self.n_estimators = n;
        self
    }

    /// Impurity for classification (default Gini); regression always uses squared error.
    pub fn criterion(mut self, criterion: ClassCriterion) -> Self {
        self.criterion = criterion;
        self
    }

    /// Maximum depth of each tree; `None` (default) grows them fully.
    pub fn max_depth(mut self, max_depth: Option<usize>) -> Self {
        self.growth.max_depth = max_depth;
        self
    }

    /// Fewest samples a node needs to be split (default 2); bootstrap duplicates count once.
    pub fn min_samples_split(mut self, n: usize) -> Self {
        self.growth.min_samples_split = n;
        self
    }

    /// Fewest samples each child of a split must keep (default 1).
    pub fn min_samples_leaf(mut self, n: usize) -> Self {
        self.growth.min_samples_leaf = n;
        self
    }

    /// Features drawn per node; `None` (default) is scikit-learn's default for the task:
    /// [`MaxFeatures::Sqrt`] for classification, [`MaxFeatures::All`] for regression.
    pub fn max_features(mut self, max_features: Option<MaxFeatures>) -> Self {
        self.max_features = max_features;
        self
    }

    /// Minimum weighted impurity decrease of a split (default 0).
    pub fn min_impurity_decrease(mut self, decrease: f64) -> Self {
        self.growth.min_impurity_decrease = decrease;
        self
    }

    /// Whether each tree sees a bootstrap sample (default) or the whole training set.
    pub fn bootstrap(mut self, bootstrap: bool) -> Self {
        self.bootstrap = bootstrap;
        self
    }

    /// Bootstrap sample size as a fraction of the rows, in `(0, 1]`; `None` (default) draws
    /// as many as there are rows.
    pub fn max_samples(mut self, fraction: Option<f64>) -> Self {
        self.max_samples = fraction;
        self
    }

    /// Seed of the whole forest (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Threads that grow trees (default 2); does not change the result.
    pub fn n_threads(mut self, n: usize) -> Self {
        self.n_threads = n;
        self
    }

    /// Validates the hyperparameters.
    pub fn check(&self) -> Result<ValidForestParams, TreeError> {
        if self.n_estimators == 0 {
            return Err(TreeError::invalid(
                "n_estimators",
                "must be at least 1, got 0",
            ));
        }
        self.growth.check()?;
        if let Some(max_features) = self.max_features {
            max_features.check("max_features")?;
        }
        if let Some(f) = self.max_samples
            && !(f > 0.0 && f <= 1.0)
        {
            return Err(TreeError::invalid(
                "max_samples",
                format!("fraction must be in (0, 1], got {f}"),
            ));
        }
        if self.n_threads == 0 {
            return Err(TreeError::invalid("n_threads", "must be at least 1, got 0"));
        }
        Ok(ValidForestParams(self.clone()))
    }
}

/// Forest hyperparameters that passed [`ForestParams::check`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidForestParams(ForestParams);

impl ValidForestParams {
    /// The validated hyperparameters.
    pub fn params(&self) -> &ForestParams {
        &self.0
    }

    /// Fits a classification forest on `x` (rows are samples) and labels `y`.
    pub fn fit_classifier(
        &self,
        x: ArrayView2<f64>,
        y: ArrayView1<f64>,
    ) -> Result<RandomForestClassifier, TreeError> {
        let encoded = encode_classes(x.nrows(), y)?;
        let data = RankedFeatures::new(x)?;
        let limits = self.limits(MaxFeatures::Sqrt, data.n_features())?;
        let criterion = Classification {
            codes: &encoded.codes,
            n_classes: encoded.classes.len(),
            kind: self.0.criterion,
        };
        Ok(RandomForestClassifier {
            classes: encoded.classes,
            trees: self.grow_trees(&data, &criterion, &limits),
        })
    }

    /// Fits a regression forest (squared error) on `x` and targets `y`.
    pub fn fit_regressor(
        &self,
        x: ArrayView2<f64>,
        y: ArrayView1<f64>,
    ) -> Result<RandomForestRegressor, TreeError> {
        check_targets(x.nrows(), y)?;
        let data = RankedFeatures::new(x)?;
        let limits = self.limits(MaxFeatures::All, data.n_features())?;
        let targets = y.to_vec();
        let criterion = Regression { y: &targets };
        Ok(RandomForestRegressor {
            trees: self.grow_trees(&data, &criterion, &limits),
        })
    }

    fn limits(&self, default: MaxFeatures, n_features: usize) -> Result<Limits, TreeError> {
        Growth {
            max_features: self.0.max_features.unwrap_or(default),
            ..self.0.growth
        }
        .limits(n_features)
    }

    /// Grows every tree, on up to `n_threads` threads; tree `i` depends only on seed `i`.
    fn grow_trees<C: Criterion>(
        &self,
        data: &RankedFeatures,
        criterion: &C,
        limits: &Limits,
    ) -> Vec<Tree> {
        let params = &self.0;
        let mut master = TreeRng::new(params.seed);
        let seeds: Vec<u64> = (0..params.n_estimators)
            .map(|_| master.next_u64())
            .collect();
        let n = data.n_rows();
        let n_drawn = params
            .max_samples
            .map_or(n, |f| ((f * n as f64).round_ties_even() as usize).max(1));

        let grow_one = |grower: &mut Grower, weights: &mut Vec<f64>, seed: u64| {
            let mut rng = TreeRng::new(seed);
            weights.clear();
            if params.bootstrap {
                weights.resize(n, 0.0);
                for _ in 0..n_drawn {
                    weights[rng.below(n)] += 1.0;
                }
            } else {
                weights.resize(n, 1.0);
            }
            grower.grow(data, criterion, weights, limits, &mut rng)
        };

        let threads = params.n_threads.min(params.n_estimators);
        if threads == 1 {
            let (mut grower, mut weights) = (Grower::new(), Vec::new());
            return seeds
                .iter()
                .map(|&seed| grow_one(&mut grower, &mut weights, seed))
                .collect();
        }
        let next = AtomicUsize::new(0);
        let grown: Vec<Vec<(usize, Tree)>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        let (mut grower, mut weights) = (Grower::new(), Vec::new());
                        let mut mine = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if i >= seeds.len() {
                                return mine;
                            }
                            mine.push((i, grow_one(&mut grower, &mut weights, seeds[i])));
                        }
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| {
                    w.join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        });
        let mut trees: Vec<Option<Tree>> = vec![None; params.n_estimators];
        for (i, tree) in grown.into_iter().flatten() {
            trees[i] = Some(tree);
        }
        trees
            .into_iter()
            .map(|t| t.expect("every tree index is grown once"))
            .collect()
    }
}

/// A fitted classification forest: class probabilities are the trees' averaged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RandomForestClassifier {
    classes: Vec<f64>,
    trees: Vec<Tree>,
}

impl RandomForestClassifier {
    /// The class labels seen in training, increasing: the columns of [`Self::predict_proba`].
    pub fn classes(&self) -> &[f64] {
        &self.classes
    }

    /// Columns the model expects in `x`.
    pub fn n_features(&self) -> usize {
        self.trees[0].n_features
    }

    /// Number of trees.
    pub fn n_trees(&self) -> usize {
        self.trees.len()
    }

    /// Class probabilities per sample: the mean of the trees' leaf class fractions.
    ///
    /// # Panics
    /// If `x` does not have [`Self::n_features`] columns.
    pub fn predict_proba(&self, x: ArrayView2<f64>) -> Array2<f64> {
        let mut proba = Array2::zeros((x.nrows(), self.classes.len()));
        for tree in &self.trees {
            for_each_row(x, self.n_features(), |i, row| {
                proba
                    .row_mut(i)
                    .iter_mut()
                    .zip(tree.predict_row(row))
                    .for_each(|(p, &v)| *p += v);
            });
        }
        proba /= self.trees.len() as f64;
        proba
    }

    /// The most probable class label per sample (the first one on ties).
    ///
    /// # Panics
    /// If `x` does not have [`Self::n_features`] columns.
    pub fn predict(&self, x: ArrayView2<f64>) -> Array1<f64> {
        most_probable(&self.predict_proba(x), &self.classes)
    }

    /// Impurity-based feature importances (the trees' normalized importances averaged, then
    /// normalized), as scikit-learn's `feature_importances_`.
    pub fn feature_importances(&self) -> Array1<f64> {
        forest_importances(&self.trees)
    }
}

/// A fitted regression forest: predictions are the trees' mean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RandomForestRegressor {
    trees: Vec<Tree>,
}

impl RandomForestRegressor {
    /// Columns the model expects in `x`.
    pub fn n_features(&self) -> usize {
        self.trees[0].n_features
    }

    /// Number of trees.
    pub fn n_trees(&self) -> usize {
        self.trees.len()
    }

    /// The mean of the trees' predictions per sample.
    ///
    /// # Panics
    /// If `x` does not have [`Self::n_features`] columns.
    pub fn predict(&self, x: ArrayView2<f64>) -> Array1<f64> {
        let mut out = Array1::zeros(x.nrows());
        for tree in &self.trees {
            for_each_row(x, self.n_features(), |i, row| {
                out[i] += tree.predict_row(row)[0]
            });
        }
        out /= self.trees.len() as f64;
        out
    }

    /// Impurity-based feature importances, as [`RandomForestClassifier::feature_importances`].
    pub fn feature_importances(&self) -> Array1<f64> {
        forest_importances(&self.trees)
    }
}

fn forest_importances(trees: &[Tree]) -> Array1<f64> {
    let mut sum = vec![0.0; trees[0].n_features];
    let grown: Vec<&Tree> = trees.iter().filter(|t| t.nodes.len() > 1).collect();
    for tree in &grown {
        for (s, v) in sum.iter_mut().zip(normalized(tree.raw_importances())) {
            *s += v;
        }
    }
    Array1::from(normalized(sum))
}
