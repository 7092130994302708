//! Single CART decision trees (scikit-learn's `DecisionTreeClassifier` and
//! `DecisionTreeRegressor`) and the growth hyperparameters every learner shares.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};
use serde::{Deserialize, Serialize};

use super::criterion::{Classification, Regression};
use super::data::{RankedFeatures, check_targets, encode_classes, for_each_row};
use super::grow::{Grower, Limits};
use super::rng::TreeRng;
use super::tree::{Tree, normalized};
use super::{ClassCriterion, MaxFeatures, TreeError};

/// How far each tree may grow: the hyperparameters shared by all three learners.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct Growth {
    pub(crate) max_depth: Option<usize>,
    pub(crate) min_samples_split: usize,
    pub(crate) min_samples_leaf: usize,
    pub(crate) max_features: MaxFeatures,
    pub(crate) min_impurity_decrease: f64,
}

impl Growth {
    /// scikit-learn's defaults for a fully grown tree on every feature.
    pub(crate) const FULL: Self = Self {
        max_depth: None,
        min_samples_split: 2,
        min_samples_leaf: 1,
        max_features: MaxFeatures::All,
        min_impurity_decrease: 0.0,
    };

    pub(crate) fn check(&self) -> Result<(), TreeError> {
        if self.max_depth == Some(0) {
            return Err(TreeError::invalid(
                "max_depth",
                "must be at least 1 (or None)",
            ));
        }
        if self.min_samples_split < 2 {
            return Err(TreeError::invalid(
                "min_samples_split",
                format!("must be at least 2, got {}", self.min_samples_split),
            ));
        }
        if self.min_samples_leaf < 1 {
            return Err(TreeError::invalid(
                "min_samples_leaf",
                "must be at least 1, got 0",
            ));
        }
        self.max_features.check("max_features")?;
        if !(self.min_impurity_decrease >= 0.0 && self.min_impurity_decrease.is_finite()) {
            return Err(TreeError::invalid(
                "min_impurity_decrease",
                format!(
                    "must be finite and >= 0, got {}",
                    self.min_impurity_decrease
                ),
            ));
        }
        Ok(())
    }

    /// The limits for data with `n_features` columns.
    pub(crate) fn limits(&self, n_features: usize) -> Result<Limits, TreeError> {
        Ok(Limits {
            max_depth: self.max_depth.unwrap_or(usize::MAX),
            // As scikit-learn: a node too small for two leaves is not split.
            min_samples_split: self.min_samples_split.max(2 * self.min_samples_leaf),
            min_samples_leaf: self.min_samples_leaf,
            max_features: self.max_features.resolve("max_features", n_features)?,
            min_impurity_decrease: self.min_impurity_decrease,
        })
    }
}

/// Hyperparameters of a single decision tree; defaults are scikit-learn's (fully grown, every
/// feature considered at each node, Gini).
///
/// ```
/// use ndarray::array;
/// use refit_trainer::trees::TreeParams;
///
/// let x = array![[1.0], [2.0], [3.0], [4.0]];
/// let y = array![1.0, 1.0, 5.0, 5.0];
/// let tree = TreeParams::new().max_depth(Some(3)).check().unwrap().fit_regressor(x.view(), y.view()).unwrap();
/// assert_eq!(tree.predict(array![[2.4], [2.6]].view()), array![1.0, 5.0]);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeParams {
    growth: Growth,
    criterion: ClassCriterion,
    seed: u64,
}

impl Default for TreeParams {
    fn default() -> Self {
        Self {
            growth: Growth::FULL,
            criterion: ClassCriterion::Gini,
            seed: 0,
        }
    }
}

impl TreeParams {
    /// scikit-learn's defaults with seed 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Impurity for classification (default Gini); regression always uses squared error.
    pub fn criterion(mut self, criterion: ClassCriterion) -> Self {
        self.criterion = criterion;
        self
    }

    /// Maximum depth; `None` (default) grows until leaves are pure or too small.
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

    /// A split must decrease the weighted impurity by at least this much (default 0); the
    /// decrease is scikit-learn's `N_t / N * (impurity - N_tR / N_t * right - N_tL / N_t * left)`.
    pub fn min_impurity_decrease(mut self, decrease: f64) -> Self {
        self.growth.min_impurity_decrease = decrease;
        self
    }

    /// Seed of the feature draws (which matter when `max_features` is below all features, and
    /// for tie-breaking between equally good splits).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Validates the hyperparameters.
    pub fn check(&self) -> Result<ValidTreeParams, TreeError> {
        self.growth.check()?;
        Ok(ValidTreeParams(self.clone()))
    }
}

/// Decision-tree hyperparameters that passed [`TreeParams::check`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidTreeParams(TreeParams);

impl ValidTreeParams {
    /// The validated hyperparameters.
    pub fn params(&self) -> &TreeParams {
        &self.0
    }

    /// Fits a classification tree on `x` (rows are samples) and labels `y`.
    pub fn fit_classifier(
        &self,
        x: ArrayView2<f64>,
        y: ArrayView1<f64>,
    ) -> Result<DecisionTreeClassifier, TreeError> {
        let encoded = encode_classes(x.nrows(), y)?;
        let data = RankedFeatures::new(x)?;
        let limits = self.0.growth.limits(data.n_features())?;
        let criterion = Classification {
            codes: &encoded.codes,
            n_classes: encoded.classes.len(),
            kind: self.0.criterion,
        };
        let weights = vec![1.0; data.n_rows()];
        let mut rng = TreeRng::new(self.0.seed);
        let tree = Grower::new().grow(&data, &criterion, &weights, &limits, &mut rng);
        Ok(DecisionTreeClassifier {
            classes: encoded.classes,
            tree,
        })
    }

    /// Fits a regression tree (squared error) on `x` and targets `y`.
    pub fn fit_regressor(
        &self,
        x: ArrayView2<f64>,
        y: ArrayView1<f64>,
    ) -> Result<DecisionTreeRegressor, TreeError> {
        check_targets(x.nrows(), y)?;
        let data = RankedFeatures::new(x)?;
        let limits = self.0.growth.limits(data.n_features())?;
        let targets = y.to_vec();
        let criterion = Regression { y: &targets };
        let weights = vec![1.0; data.n_rows()];
        let mut rng = TreeRng::new(self.0.seed);
        let tree = Grower::new().grow(&data, &criterion, &weights, &limits, &mut rng);
        Ok(DecisionTreeRegressor { tree })
    }
}

/// A fitted classification tree; leaves hold class probabilities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionTreeClassifier {
    classes: Vec<f64>,
    tree: Tree,
}

impl DecisionTreeClassifier {
    /// The class labels seen in training, increasing: the columns of [`Self::predict_proba`].
    pub fn classes(&self) -> &[f64] {
        &self.classes
    }

    /// Columns the model expects in `x`.
    pub fn n_features(&self) -> usize {
        self.tree.n_features
    }

    /// Class probabilities, one row per sample: the class fractions of the leaf it reaches.
    ///
    /// # Panics
    /// If `x` does not have [`Self::n_features`] columns.
    pub fn predict_proba(&self, x: ArrayView2<f64>) -> Array2<f64> {
        let mut proba = Array2::zeros((x.nrows(), self.classes.len()));
        for_each_row(x, self.n_features(), |i, row| {
            proba
                .row_mut(i)
                .iter_mut()
                .zip(self.tree.predict_row(row))
                .for_each(|(p, &v)| *p = v);
        });
        proba
    }

    /// The most probable class label per sample (the first one on ties).
    ///
    /// # Panics
    /// If `x` does not have [`Self::n_features`] columns.
    pub fn predict(&self, x: ArrayView2<f64>) -> Array1<f64> {
        most_probable(&self.predict_proba(x), &self.classes)
    }

    /// Impurity-based feature importances, summing to one (scikit-learn's
    /// `feature_importances_`).
    pub fn feature_importances(&self) -> Array1<f64> {
        Array1::from(normalized(self.tree.raw_importances()))
    }

    /// Depth of the deepest leaf.
    pub fn depth(&self) -> usize {
        self.tree.depth()
    }

    /// Number of leaves.
    pub fn n_leaves(&self) -> usize {
        self.tree.n_leaves()
    }
}

/// A fitted regression tree; leaves hold the mean target of their training samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionTreeRegressor {
    tree: Tree,
}

impl DecisionTreeRegressor {
    /// Columns the model expects in `x`.
    pub fn n_features(&self) -> usize {
        self.tree.n_features
    }

    /// The mean training target of the leaf each sample reaches.
    ///
    /// # Panics
    /// If `x` does not have [`Self::n_features`] columns.
    pub fn predict(&self, x: ArrayView2<f64>) -> Array1<f64> {
        let mut out = Array1::zeros(x.nrows());
        for_each_row(x, self.n_features(), |i, row| {
            out[i] = self.tree.predict_row(row)[0];
        });
        out
    }

    /// Impurity-based feature importances, summing to one.
    pub fn feature_importances(&self) -> Array1<f64> {
        Array1::from(normalized(self.tree.raw_importances()))
    }

    /// Depth of the deepest leaf.
    pub fn depth(&self) -> usize {
        self.tree.depth()
    }

    /// Number of leaves.
    pub fn n_leaves(&self) -> usize {
        self.tree.n_leaves()
    }
}

/// Per row of `proba`, the label of the most probable class (first on ties, as `argmax`).
pub(crate) fn most_probable(proba: &Array2<f64>, classes: &[f64]) -> Array1<f64> {
    proba
        .outer_iter()
        .map(|row| {
            let mut best = 0;
            for (k, &p) in row.iter().enumerate() {
                if p > row[best] {
                    best = k;
                }
            }
            classes[best]
        })
        .collect()
}
