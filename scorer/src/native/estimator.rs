//! Fitted estimators over the encoded matrix, and their prediction loops.

use serde::{Deserialize, Serialize};

use crate::model::Task;

/// A node of a decision tree. Internal nodes send a row left when `x[feature] <= threshold`
/// (scikit-learn's convention); leaves have `feature = -1` and their output at `values[value..]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Encoded column tested, or -1 for a leaf.
    pub feature: i32,
    /// Split threshold.
    pub threshold: f64,
    /// Index of the left child.
    pub left: u32,
    /// Index of the right child.
    pub right: u32,
    /// Offset of the leaf's output in [`Tree::values`].
    pub value: u32,
}

/// A decision tree: nodes (root first) and the leaves' outputs, `n_outputs` numbers each (one
/// for regression and boosting, one probability per class for classification).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tree {
    /// Nodes; index 0 is the root.
    pub nodes: Vec<Node>,
    /// Leaf outputs.
    pub values: Vec<f64>,
    /// Numbers per leaf.
    pub n_outputs: usize,
}

impl Tree {
    /// The output of the leaf `row` falls in.
    #[inline]
    pub fn leaf(&self, row: &[f64]) -> &[f64] {
        let mut node = &self.nodes[0];
        while node.feature >= 0 {
            let next = if row[node.feature as usize] <= node.threshold {
                node.left
            } else {
                node.right
            };
            node = &self.nodes[next as usize];
        }
        let at = node.value as usize;
        &self.values[at..at + self.n_outputs]
    }

    fn check(&self, width: usize) -> Result<(), String> {
        if self.nodes.is_empty() || self.n_outputs == 0 {
            return Err("a tree needs nodes and outputs".into());
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if n.feature >= 0 {
                let ok = (n.feature as usize) < width
                    && (n.left as usize) < self.nodes.len()
                    && (n.right as usize) < self.nodes.len()
                    && n.left as usize > i
                    && n.right as usize > i;
                if !ok {
                    return Err(format!("tree node {i} is malformed"));
                }
            } else if n.value as usize + self.n_outputs > self.values.len() {
                return Err(format!("tree leaf {i} points outside the values"));
            }
        }
        Ok(())
    }
}

/// The loss a gradient-boosting ensemble was fitted for, which fixes how its raw sum is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// Regression: the prediction is the raw sum.
    SquaredError,
    /// Two classes: the raw sum is the log-odds of class 1.
    BinaryLogLoss,
    /// Several classes: one raw sum per class, through softmax.
    MultinomialLogLoss,
}

/// A gradient-boosting ensemble: `init + learning_rate * Σ trees`, with `classes` trees per stage
/// for the multinomial loss (stage-major), one otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Boosting {
    /// The loss.
    pub loss: Loss,
    /// Initial raw prediction, one per raw output.
    pub init: Vec<f64>,
    /// Shrinkage.
    pub learning_rate: f64,
    /// Trees, stage-major.
    pub trees: Vec<Tree>,
}

/// A fitted estimator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Estimator {
    /// `y = x · coef + intercept` (linear regression, elastic net).
    Linear {
        /// One per encoded column.
        coef: Vec<f64>,
        /// Intercept.
        intercept: f64,
    },
    /// Logistic regression: binary (one row: log-odds of class 1) or multinomial (one row per
    /// class, through softmax).
    Logistic {
        /// Rows of coefficients, one per encoded column each.
        coef: Vec<Vec<f64>>,
        /// One intercept per row.
        intercept: Vec<f64>,
    },
    /// Gaussian naive Bayes, as scikit-learn's GaussianNB predicts.
    GaussianNb {
        /// Class priors.
        priors: Vec<f64>,
        /// Per class, the mean of each encoded column.
        means: Vec<Vec<f64>>,
        /// Per class, the (smoothed) variance of each encoded column.
        variances: Vec<Vec<f64>>,
    },
    /// Trees whose outputs are averaged: a decision tree (one tree) or a random forest.
    Forest {
        /// The trees.
        trees: Vec<Tree>,
    },
    /// Gradient boosting.
    Boosting(Boosting),
}

#[inline]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The logistic function, written as the learners compute it so that served probabilities are
/// bit-identical to the fitted model's (for very negative z, `exp` overflows to infinity and the
/// result is 0, not NaN).
#[inline]
fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// A logistic model's class probabilities of one row into `o`, from the row's sum of products
/// with each coefficient row, `sum(k)`: the sigmoid of the log-odds for two classes, the softmax
/// otherwise.
#[inline]
fn logistic_probabilities(sum: impl Fn(usize) -> f64, intercept: &[f64], o: &mut [f64]) {
    if o.len() == 2 {
        let p = sigmoid(sum(0) + intercept[0]);
        o[0] = 1.0 - p;
        o[1] = p;
    } else {
        for (k, v) in o.iter_mut().enumerate() {
            *v = sum(k) + intercept[k];
        }
        softmax(o);
    }
}

/// Softmax in place, shifted by the maximum for stability.
#[inline]
fn softmax(row: &mut [f64]) {
    let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in row.iter_mut() {
        *v /= sum;
    }
}

impl Estimator {
    /// Checks sizes against the encoded width, the task and the number of classes.
    pub fn check(&self, width: usize, task: Task, classes: usize) -> Result<(), String> {
        let classification = task.is_classification();
        if classification && classes < 2 {
            return Err("a classifier needs at least two classes".into());
        }
        match self {
            Estimator::Linear { coef, .. } => {
                if classification {
                    return Err("a linear regression cannot classify".into());
                }
                if coef.len() != width {
                    return Err(format!("{} coefficients for {width} inputs", coef.len()));
                }
            }
            Estimator::Logistic { coef, intercept } => {
                let rows = if classes == 2 { 1 } else { classes };
                if !classification || coef.len() != rows || intercept.len() != rows {
                    return Err(format!(
                        "a logistic regression over {classes} classes needs {rows} coefficient rows"
                    ));
                }
                if coef.iter().any(|r| r.len() != width) {
                    return Err(format!("logistic coefficients must have {width} columns"));
                }
            }
            Estimator::GaussianNb {
                priors,
                means,
                variances,
            } => {
                if !classification
                    || priors.len() != classes
                    || means.len() != classes
                    || variances.len() != classes
                {
                    return Err("naive Bayes needs a prior, means and variances per class".into());
                }
                if means.iter().chain(variances).any(|r| r.len() != width) {
                    return Err(format!("naive Bayes rows must have {width} columns"));
                }
                if variances.iter().flatten().any(|v| *v <= 0.0) {
                    return Err("naive Bayes variances must be positive".into());
                }
            }
            Estimator::Forest { trees } => {
                let outputs = if classification { classes } else { 1 };
                if trees.is_empty() {
                    return Err("a forest needs trees".into());
                }
                for t in trees {
                    if t.n_outputs != outputs {
                        return Err(format!("forest trees must have {outputs} outputs"));
                    }
                    t.check(width)?;
                }
            }
            Estimator::Boosting(b) => {
                let per_stage = match (b.loss, task) {
                    (Loss::SquaredError, Task::Regression) => 1,
                    (Loss::BinaryLogLoss, Task::Binary) => 1,
                    (Loss::MultinomialLogLoss, Task::Multiclass) => classes,
                    _ => return Err(format!("loss {:?} does not fit task {task:?}", b.loss)),
                };
                if b.init.len() != per_stage || b.trees.len() % per_stage != 0 {
                    return Err("boosting stages are incomplete".into());
                }
                for t in &b.trees {
                    if t.n_outputs != 1 {
                        return Err("boosting trees have one output".into());
                    }
                    t.check(width)?;
                }
            }
        }
        Ok(())
    }

    /// The coefficient rows of a linear or logistic model, for [`Encoder::linear_sums`];
    /// `None` for other estimators.
    ///
    /// [`Encoder::linear_sums`]: super::Encoder::linear_sums
    pub fn linear_coef(&self) -> Option<Vec<&[f64]>> {
        match self {
            Estimator::Linear { coef, .. } => Some(vec![coef]),
            Estimator::Logistic { coef, .. } => Some(coef.iter().map(Vec::as_slice).collect()),
            _ => None,
        }
    }

    /// What [`Estimator::regress`] or [`Estimator::classify`] gives, from the sums
    /// [`Encoder::linear_sums`] made with [`Estimator::linear_coef`]'s rows (the same bits).
    ///
    /// [`Encoder::linear_sums`]: super::Encoder::linear_sums
    pub fn from_linear_sums(&self, sums: &[Vec<f64>], n: usize, classes: usize) -> Vec<f64> {
        match self {
            Estimator::Linear { intercept, .. } => sums[0].iter().map(|s| s + intercept).collect(),
            Estimator::Logistic { intercept, .. } => {
                let mut out = vec![0.0; n * classes];
                for (i, o) in out.chunks_exact_mut(classes).enumerate() {
                    logistic_probabilities(|k| sums[k][i], intercept, o);
                }
                out
            }
            _ => unreachable!("sums of a linear or logistic model"),
        }
    }

    /// Regression predictions for the row-major `n × width` matrix `x`.
    pub fn regress(&self, x: &[f64], n: usize, width: usize) -> Vec<f64> {
        let rows = x.chunks_exact(width.max(1)).take(n);
        match self {
            Estimator::Linear { coef, intercept } => {
                rows.map(|r| dot(r, coef) + intercept).collect()
            }
            Estimator::Forest { trees } => rows
                .map(|r| trees.iter().map(|t| t.leaf(r)[0]).sum::<f64>() / trees.len() as f64)
                .collect(),
            Estimator::Boosting(b) => rows
                .map(|r| {
                    b.init[0] + b.learning_rate * b.trees.iter().map(|t| t.leaf(r)[0]).sum::<f64>()
                })
                .collect(),
            _ => vec![f64::NAN; n],
        }
    }

    /// Class probabilities, row-major `n × classes`.
    pub fn classify(&self, x: &[f64], n: usize, width: usize, classes: usize) -> Vec<f64> {
        let mut out = vec![0.0; n * classes];
        let rows = x.chunks_exact(width.max(1)).take(n);
        match self {
            Estimator::Logistic { coef, intercept } => {
                for (r, o) in rows.zip(out.chunks_exact_mut(classes)) {
                    logistic_probabilities(|k| dot(r, &coef[k]), intercept, o);
                }
            }
            Estimator::GaussianNb {
                priors,
                means,
                variances,
            } => {
                // Joint log-likelihood per class, then normalised with log-sum-exp (= softmax).
                let log_norm: Vec<f64> = variances
                    .iter()
                    .map(|v| {
                        -0.5 * v
                            .iter()
                            .map(|s| (2.0 * std::f64::consts::PI * s).ln())
                            .sum::<f64>()
                    })
                    .collect();
                for (r, o) in rows.zip(out.chunks_exact_mut(classes)) {
                    for k in 0..classes {
                        let quad: f64 = r
                            .iter()
                            .zip(&means[k])
                            .zip(&variances[k])
                            .map(|((x, m), s)| (x - m) * (x - m) / s)
                            .sum();
                        o[k] = priors[k].ln() + log_norm[k] - 0.5 * quad;
                    }
                    softmax(o);
                }
            }
            Estimator::Forest { trees } => {
                // Divide (not multiply by 1/n): the learners average this way.
                let n = trees.len() as f64;
                for (r, o) in rows.zip(out.chunks_exact_mut(classes)) {
                    for t in trees {
                        for (v, p) in o.iter_mut().zip(t.leaf(r)) {
                            *v += p;
                        }
                    }
                    for v in o.iter_mut() {
                        *v /= n;
                    }
                }
            }
            Estimator::Boosting(b) => {
                for (r, o) in rows.zip(out.chunks_exact_mut(classes)) {
                    if b.loss == Loss::BinaryLogLoss {
                        let raw = b.init[0]
                            + b.learning_rate * b.trees.iter().map(|t| t.leaf(r)[0]).sum::<f64>();
                        let p = sigmoid(raw);
                        o[0] = 1.0 - p;
                        o[1] = p;
                    } else {
                        // init + rate * (sum of the class's trees), in the learner's order.
                        for (c, v) in o.iter_mut().enumerate() {
                            let sum: f64 = b
                                .trees
                                .iter()
                                .skip(c)
                                .step_by(classes)
                                .map(|t| t.leaf(r)[0])
                                .sum();
                            *v = b.init[c] + b.learning_rate * sum;
                        }
                        softmax(o);
                    }
                }
            }
            Estimator::Linear { .. } => out.fill(f64::NAN),
        }
        out
    }
}
