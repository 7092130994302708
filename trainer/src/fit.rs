//! Fitting: one grid point's hyperparameters, the encoded training matrix and its targets become
//! a scorer [`Estimator`], refit's own model format.
//!
//! Linear regression, the elastic net, logistic regression and Gaussian naive Bayes are fitted
//! with linfa; decision trees, random forests and gradient boosting with refit's own learners
//! ([`crate::trees`]). The fitted model is then copied into an [`Estimator`], coefficient for
//! coefficient and leaf for leaf, so that the scorer serves what the learner fitted.
//!
//! Training data is checked before any learner sees it, so that bad data gives a [`FitError`]
//! saying what is wrong rather than a learner's panic or a model full of NaNs.
//!
//! ```
//! use std::collections::BTreeMap;
//! use ndarray::array;
//! use refit_trainer::algorithms::{Algorithm, Hyperparameters};
//! use refit_trainer::fit::{fit, TrainingData};
//! use refit_trainer::scorer::Task;
//!
//! let hp = Hyperparameters::check(Algorithm::DecisionTree, BTreeMap::new()).unwrap();
//! let x = array![[0.0], [1.0], [2.0], [3.0]];
//! let data = TrainingData { x: x.view(), y: &[0.0, 0.0, 1.0, 1.0], task: Task::Binary, n_classes: 2 };
//! let estimator = fit(&hp, &data, 7).unwrap();
//! let proba = estimator.classify(&[0.5, 2.5], 2, 1, 2);
//! assert_eq!(proba, vec![1.0, 0.0, 0.0, 1.0]);
//! ```

use std::collections::BTreeMap;

use linfa::DatasetView;
use linfa::traits::Fit;
use linfa_bayes::GaussianNb;
use linfa_linear::LinearRegression;
use linfa_logistic::{LogisticRegression, MultiLogisticRegression};
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis, ShapeBuilder};
use refit_scorer::Task;
use refit_scorer::native::{Boosting, Estimator, Loss, Node, Tree};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::algorithms::{Algorithm, Hyperparameters, ParamValue};
use crate::trees::{
    BoostingParams, ClassCriterion, ForestParams, MaxFeatures, TreeError, TreeParams,
};

/// The encoded training matrix and its targets.
#[derive(Debug, Clone, Copy)]
pub struct TrainingData<'a> {
    /// One row per sample, one column per encoded input (the scorer's encoder output).
    pub x: ArrayView2<'a, f64>,
    /// Regression targets, or class indices `0..n_classes` written as `f64`.
    pub y: &'a [f64],
    /// What is learned.
    pub task: Task,
    /// Number of classes: 2 for [`Task::Binary`], at least 3 for [`Task::Multiclass`]; ignored
    /// for regression. Every class must occur in `y`.
    pub n_classes: usize,
}

/// Why a model could not be fitted.
#[derive(Debug, thiserror::Error)]
pub enum FitError {
    /// The algorithm does not learn this task (e.g. linear regression on classes).
    #[error("{algorithm} cannot learn a {} task", task_name(*.task))]
    UnsupportedTask {
        /// The algorithm.
        algorithm: Algorithm,
        /// The task asked for.
        task: Task,
    },
    /// `x` has no rows or no columns.
    #[error("the training data is empty: x is {rows} x {columns}")]
    Empty {
        /// Rows of `x`.
        rows: usize,
        /// Columns of `x`.
        columns: usize,
    },
    /// `x` and `y` disagree on the number of samples.
    #[error("x has {x_rows} rows but y has {y_len} values")]
    LengthMismatch {
        /// Rows of `x`.
        x_rows: usize,
        /// Length of `y`.
        y_len: usize,
    },
    /// Too few rows to fit anything meaningful.
    #[error("the training data has {rows} row(s); {algorithm} needs at least {needed}")]
    TooFewRows {
        /// The algorithm.
        algorithm: Algorithm,
        /// Rows given.
        rows: usize,
        /// Rows needed.
        needed: usize,
    },
    /// A NaN or infinity in `x` (the encoder imputes missing values; none may remain).
    #[error("x has a non-finite value ({value}) at row {row}, column {column}")]
    NonFiniteFeature {
        /// Row of the first offending value.
        row: usize,
        /// Column of the first offending value.
        column: usize,
        /// The value.
        value: f64,
    },
    /// A NaN or infinity in `y`.
    #[error("y has a non-finite value ({value}) at row {row}")]
    NonFiniteTarget {
        /// Row of the first offending value.
        row: usize,
        /// The value.
        value: f64,
    },
    /// `n_classes` does not fit the task.
    #[error("a {} task needs {expected} classes, but n_classes is {n_classes}", task_name(*.task))]
    ClassCount {
        /// The task.
        task: Task,
        /// What the task needs, e.g. `"exactly 2"`.
        expected: &'static str,
        /// The `n_classes` given.
        n_classes: usize,
    },
    /// A target that is not a class index.
    #[error("y[{row}] = {value} is not a class index in 0..{n_classes}")]
    InvalidLabel {
        /// Row of the first offending label.
        row: usize,
        /// The label.
        value: f64,
        /// The number of classes.
        n_classes: usize,
    },
    /// Every row has the same class.
    #[error("the training data has one class (class {class}); a classifier needs at least two")]
    OneClass {
        /// The only class present.
        class: usize,
    },
    /// A class of `0..n_classes` never occurs in `y`, so no model could predict it.
    #[error("class {class} of {n_classes} has no training rows")]
    MissingClass {
        /// The absent class.
        class: usize,
        /// The number of classes.
        n_classes: usize,
    },
    /// A hyperparameter that passed [`Hyperparameters::check`] but does not fit this task or
    /// data (e.g. `criterion = "gini"` for regression, `max_features` above the column count).
    #[error("hyperparameter '{name}': {reason}")]
    InvalidHyperparameter {
        /// Its name.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The learning library refused or failed (e.g. a singular least-squares problem).
    #[error("{algorithm} failed to fit: {reason}")]
    Learner {
        /// The algorithm.
        algorithm: Algorithm,
        /// The library's message.
        reason: String,
    },
    /// The fit finished but produced NaN or infinite parameters.
    #[error(
        "{algorithm} produced non-finite {what}; the data may be degenerate (collinear or constant columns)"
    )]
    NonFiniteModel {
        /// The algorithm.
        algorithm: Algorithm,
        /// Which parameters.
        what: &'static str,
    },
    /// The fitted model could not be copied into an [`Estimator`] (a bug, not a data problem).
    #[error("converting the fitted {algorithm} into a native estimator failed: {reason}")]
    Conversion {
        /// The algorithm.
        algorithm: Algorithm,
        /// What went wrong.
        reason: String,
    },
}

fn task_name(task: Task) -> &'static str {
    match task {
        Task::Regression => "regression",
        Task::Binary => "binary classification",
        Task::Multiclass => "multiclass classification",
    }
}

/// The fewest training rows any algorithm accepts.
const MIN_ROWS: usize = 2;

/// Fits `hp.algorithm` on `data` and returns the fitted estimator.
///
/// `seed` drives every random choice (bootstrap samples, feature draws, subsampling): the same
/// hyperparameters, data and seed give the same estimator, and so the same model bytes. The
/// linfa learners are deterministic and ignore it.
///
/// Hyperparameters and their defaults (scikit-learn's where the algorithm has an equivalent):
///
/// | algorithm | hyperparameters (default) |
/// | --- | --- |
/// | `linear_regression` | `fit_intercept` (true) |
/// | `elastic_net` | `alpha` (1.0), `l1_ratio` (0.5), `max_iterations` (1000), `tolerance` (1e-4) |
/// | `logistic_regression` | `alpha` (1.0, = 1 / scikit-learn's `C`), `max_iterations` (100), `gradient_tolerance` (1e-4, on the mean log-loss, as scikit-learn's `tol`) |
/// | `gaussian_nb` | `var_smoothing` (1e-9) |
/// | `decision_tree` | `max_depth` (null), `min_samples_split` (2), `min_samples_leaf` (1), `criterion` (gini / squared_error) |
/// | `random_forest` | `n_estimators` (100), `max_depth` (null), `min_samples_split` (2), `min_samples_leaf` (1), `max_features` (sqrt for classes, all for regression), `bootstrap` (true) |
/// | `gradient_boosting` | `n_estimators` (100), `learning_rate` (0.1), `max_depth` (3), `min_samples_split` (2), `min_samples_leaf` (1), `subsample` (1.0) |
pub fn fit(hp: &Hyperparameters, data: &TrainingData, seed: u64) -> Result<Estimator, FitError> {
    let algorithm = hp.algorithm;
    if !algorithm.supports(data.task) {
        return Err(FitError::UnsupportedTask {
            algorithm,
            task: data.task,
        });
    }
    check_data(algorithm, data)?;
    let estimator = match algorithm {
        Algorithm::LinearRegression => linear_regression(hp, data)?,
        Algorithm::ElasticNet => elastic_net(hp, data)?,
        Algorithm::LogisticRegression => logistic_regression(hp, data)?,
        Algorithm::GaussianNb => gaussian_nb(hp, data)?,
        Algorithm::DecisionTree => decision_tree(hp, data, seed)?,
        Algorithm::RandomForest => random_forest(hp, data, seed)?,
        Algorithm::GradientBoosting => gradient_boosting(hp, data, seed)?,
    };
    // The scorer refuses inconsistent models when it loads them; refusing them here instead
    // points at the fit, not at the serving side.
    let classes = if data.task.is_classification() {
        data.n_classes
    } else {
        0
    };
    estimator
        .check(data.x.ncols(), data.task, classes)
        .map_err(|reason| FitError::Conversion { algorithm, reason })?;
    Ok(estimator)
}

/// Shapes, finiteness, and for classification that `y` holds every class of `0..n_classes`.
fn check_data(algorithm: Algorithm, data: &TrainingData) -> Result<(), FitError> {
    let (rows, columns) = data.x.dim();
    if rows == 0 || columns == 0 {
        return Err(FitError::Empty { rows, columns });
    }
    if data.y.len() != rows {
        return Err(FitError::LengthMismatch {
            x_rows: rows,
            y_len: data.y.len(),
        });
    }
    if rows < MIN_ROWS {
        return Err(FitError::TooFewRows {
            algorithm,
            rows,
            needed: MIN_ROWS,
        });
    }
    for (row, values) in data.x.outer_iter().enumerate() {
        if let Some((column, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(FitError::NonFiniteFeature { row, column, value });
        }
    }
    if let Some((row, &value)) = data.y.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(FitError::NonFiniteTarget { row, value });
    }
    if !data.task.is_classification() {
        return Ok(());
    }

    let n_classes = data.n_classes;
    let expected = match data.task {
        Task::Binary if n_classes != 2 => Some("exactly 2"),
        Task::Multiclass if n_classes < 3 => Some("at least 3"),
        _ => None,
    };
    if let Some(expected) = expected {
        return Err(FitError::ClassCount {
            task: data.task,
            expected,
            n_classes,
        });
    }
    let mut counts = vec![0_usize; n_classes];
    for (row, &value) in data.y.iter().enumerate() {
        if !(value >= 0.0 && value < n_classes as f64 && value.fract() == 0.0) {
            return Err(FitError::InvalidLabel {
                row,
                value,
                n_classes,
            });
        }
        counts[value as usize] += 1;
    }
    let present: Vec<usize> = (0..n_classes).filter(|&c| counts[c] > 0).collect();
    if let [class] = present[..] {
        return Err(FitError::OneClass { class });
    }
    if let Some(class) = (0..n_classes).find(|&c| counts[c] == 0) {
        return Err(FitError::MissingClass { class, n_classes });
    }
    Ok(())
}

/// The class labels as linfa's label type.
fn class_labels(y: &[f64]) -> Array1<usize> {
    y.iter().map(|&v| v as usize).collect()
}

/// A learning library's error, with its message.
fn learner_error(algorithm: Algorithm, error: impl std::fmt::Display) -> FitError {
    FitError::Learner {
        algorithm,
        reason: error.to_string(),
    }
}

/// Fails when any of `values` is NaN or infinite.
fn ensure_finite<'v>(
    algorithm: Algorithm,
    what: &'static str,
    values: impl IntoIterator<Item = &'v f64>,
) -> Result<(), FitError> {
    if values.into_iter().all(|v| v.is_finite()) {
        Ok(())
    } else {
        Err(FitError::NonFiniteModel { algorithm, what })
    }
}

fn linear(algorithm: Algorithm, coef: Vec<f64>, intercept: f64) -> Result<Estimator, FitError> {
    ensure_finite(algorithm, "coefficients", coef.iter().chain([&intercept]))?;
    Ok(Estimator::Linear { coef, intercept })
}

/// Ordinary least squares (linfa-linear, QR).
///
/// A column that is zero in every row — what the encoder makes of a constant feature, such as a
/// sensor that never moved — makes the problem singular, and linfa's QR refuses it ("Matrix is
/// non-invertible"). scikit-learn's `LinearRegression` (a minimum-norm least-squares solution)
/// gives such a column coefficient 0 and fits the rest as if it were absent; so does this.
fn linear_regression(hp: &Hyperparameters, data: &TrainingData) -> Result<Estimator, FitError> {
    let algorithm = Algorithm::LinearRegression;
    let fit_intercept = hp.bool("fit_intercept", true);
    let used: Vec<usize> = (0..data.x.ncols())
        .filter(|&j| data.x.column(j).iter().any(|&v| v != 0.0))
        .collect();
    let mut coef = vec![0.0; data.x.ncols()];
    if used.is_empty() {
        let intercept = if fit_intercept {
            data.y.iter().sum::<f64>() / data.y.len() as f64
        } else {
            0.0
        };
        return linear(algorithm, coef, intercept);
    }
    let x = data.x.select(Axis(1), &used);
    let dataset = DatasetView::new(x.view(), ArrayView1::from(data.y));
    let model = LinearRegression::new()
        .with_intercept(fit_intercept)
        .fit(&dataset)
        .map_err(|e| learner_error(algorithm, e))?;
    for (&j, &w) in used.iter().zip(model.params()) {
        coef[j] = w;
    }
    linear(algorithm, coef, model.intercept())
}

/// scikit-learn's `ElasticNet`: minimises
/// `1 / (2 n) |y - X w - b|² + alpha l1_ratio |w|₁ + alpha (1 - l1_ratio) / 2 |w|²`
/// by cyclic coordinate descent on centred `x` and `y` (the intercept is then
/// `mean(y) - mean(x) · w`), stopping as scikit-learn's `enet_coordinate_descent` does: when the
/// largest coefficient step is below `tolerance` relative to the largest coefficient and the
/// duality gap is below `tolerance · |y - mean(y)|²`.
///
/// This is linfa-elasticnet's algorithm with each coordinate's update fused into two passes over
/// its column instead of three (`x_j · r` of the residual with `w_j` added back is
/// `x_j · r + w_j |x_j|²`), which is what makes it as fast as scikit-learn's BLAS-backed loop.
fn elastic_net(hp: &Hyperparameters, data: &TrainingData) -> Result<Estimator, FitError> {
    let algorithm = Algorithm::ElasticNet;
    let (n, d) = data.x.dim();
    let means = data
        .x
        .mean_axis(Axis(0))
        .expect("check_data guarantees rows");
    // Column-major, because coordinate descent walks one column at a time.
    let mut x = Array2::zeros(data.x.raw_dim().f());
    x.assign(&data.x);
    x -= &means;
    let y_mean = data.y.iter().sum::<f64>() / n as f64;
    let y: Vec<f64> = data.y.iter().map(|v| v - y_mean).collect();

    let alpha = hp.f64("alpha", 1.0);
    let l1_ratio = hp.f64("l1_ratio", 0.5);
    let max_iterations = hp.usize("max_iterations", 1000);
    let tolerance = hp.f64("tolerance", 1e-4);
    let l1 = alpha * l1_ratio * n as f64;
    let l2 = alpha * (1.0 - l1_ratio) * n as f64;
    let gap_tolerance = tolerance * dot(&y, &y);
    let columns: Vec<&[f64]> = (0..d)
        .map(|j| {
            x.column(j)
                .to_slice()
                .expect("a column of a column-major matrix is contiguous")
        })
        .collect();
    let norms: Vec<f64> = columns.iter().map(|c| dot(c, c)).collect();

    let mut w = vec![0.0; d];
    let mut r = y.clone();
    for iteration in 0..max_iterations {
        let (mut w_max, mut step_max) = (0.0f64, 0.0f64);
        for j in 0..d {
            if norms[j] == 0.0 {
                continue;
            }
            let (old, column) = (w[j], columns[j]);
            let rho = dot(column, &r) + old * norms[j];
            let new = rho.signum() * (rho.abs() - l1).max(0.0) / (norms[j] + l2);
            if new != old {
                let change = new - old;
                for (r, x) in r.iter_mut().zip(column) {
                    *r -= change * x;
                }
            }
            w[j] = new;
            step_max = step_max.max((new - old).abs());
            w_max = w_max.max(new.abs());
        }
        let last = iteration + 1 == max_iterations;
        if w_max == 0.0 || step_max / w_max < tolerance || last {
            // Duality gap, as scikit-learn computes it.
            let dual_norm = columns
                .iter()
                .zip(&w)
                .map(|(c, w)| (dot(c, &r) - l2 * w).abs())
                .fold(0.0f64, f64::max);
            let r_norm2 = dot(&r, &r);
            let w_norm2 = dot(&w, &w);
            let (scale, mut gap) = if dual_norm > l1 {
                let scale = l1 / dual_norm;
                (scale, 0.5 * r_norm2 * (1.0 + scale * scale))
            } else {
                (1.0, r_norm2)
            };
            let l1_norm: f64 = w.iter().map(|v| v.abs()).sum();
            gap += l1 * l1_norm - scale * dot(&r, &y) + 0.5 * l2 * (1.0 + scale * scale) * w_norm2;
            if gap < gap_tolerance {
                break;
            }
        }
    }
    let intercept = y_mean - means.iter().zip(&w).map(|(m, w)| m * w).sum::<f64>();
    linear(algorithm, w, intercept)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    // Four accumulators, so the compiler can keep the loop in vector registers.
    let mut acc = [0.0; 4];
    let (a4, a_rest) = a.split_at(a.len() / 4 * 4);
    let (b4, b_rest) = b.split_at(a4.len());
    for (x, y) in a4.chunks_exact(4).zip(b4.chunks_exact(4)) {
        for k in 0..4 {
            acc[k] += x[k] * y[k];
        }
    }
    let tail: f64 = a_rest.iter().zip(b_rest).map(|(x, y)| x * y).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// L2-penalised logistic regression, the objective of scikit-learn's `LogisticRegression`
/// (`alpha / 2 |w|² + Σ log-loss`, the intercept not penalised). Two classes are fitted by
/// Newton's method ([`binary_logistic_newton`]); more classes, or a binary problem whose
/// Hessian is singular (`alpha` 0 on collinear inputs), by linfa-logistic's L-BFGS (multinomial,
/// softmax).
fn logistic_regression(hp: &Hyperparameters, data: &TrainingData) -> Result<Estimator, FitError> {
    let algorithm = Algorithm::LogisticRegression;
    let labels = class_labels(data.y);
    let dataset = DatasetView::new(data.x.view(), labels.view());
    let alpha = hp.f64("alpha", 1.0);
    let max_iterations = hp.usize("max_iterations", 100) as u64;
    // scikit-learn's `tol` bounds the gradient of the *mean* log-loss; linfa minimises the sum,
    // whose gradient is n times larger: the same stopping point needs a tolerance n times larger.
    let tolerance = hp.f64("gradient_tolerance", 1e-4);
    let gradient_tolerance = tolerance * data.y.len() as f64;
    let fail = |e: linfa_logistic::error::Error| learner_error(algorithm, e);

    let newton = (data.n_classes == 2)
        .then(|| binary_logistic_newton(data.x, data.y, alpha, max_iterations, tolerance))
        .flatten();
    let (coef, intercept) = if let Some((coef, intercept)) = newton {
        (vec![coef], vec![intercept])
    } else if data.n_classes == 2 {
        let model = LogisticRegression::<f64>::default()
            .alpha(alpha)
            .max_iterations(max_iterations)
            .gradient_tolerance(gradient_tolerance)
            .fit(&dataset)
            .map_err(fail)?;
        // linfa models the log-odds of its "positive" class, which is the more frequent one;
        // the estimator's single row is the log-odds of class 1.
        let sign = if model.labels().pos.class == 1 {
            1.0
        } else {
            -1.0
        };
        let coef: Vec<f64> = model.params().iter().map(|w| sign * w).collect();
        (vec![coef], vec![sign * model.intercept()])
    } else {
        let model = MultiLogisticRegression::<f64>::default()
            .alpha(alpha)
            .max_iterations(max_iterations)
            .gradient_tolerance(gradient_tolerance)
            .fit(&dataset)
            .map_err(fail)?;
        if !model.classes().iter().copied().eq(0..data.n_classes) {
            return Err(FitError::Conversion {
                algorithm,
                reason: format!("linfa's classes are {:?}", model.classes()),
            });
        }
        // linfa's parameters are features × classes; the estimator keeps one row per class.
        let coef = model
            .params()
            .columns()
            .into_iter()
            .map(|c| c.to_vec())
            .collect();
        (coef, model.intercept().to_vec())
    };
    ensure_finite(
        algorithm,
        "coefficients",
        coef.iter().flatten().chain(&intercept),
    )?;
    Ok(Estimator::Logistic { coef, intercept })
}

/// Binary logistic regression by Newton's method with a backtracking line search: minimises
/// `Σ softplus(z_i) - y_i z_i + alpha / 2 |w|²` with `z = X w + b`, `y` in {0, 1}, and stops
/// when the largest gradient component of the mean objective is at most `tolerance`
/// (scikit-learn's `tol` for lbfgs) or after `max_iterations` steps.
///
/// Each step solves the (d+1)² Newton system: on tabular machine data (tens of inputs) that
/// takes a handful of passes over the rows where L-BFGS (linfa, scikit-learn) takes dozens, and
/// lands closer to the exact optimum. `None` when the Hessian is not positive definite.
fn binary_logistic_newton(
    x: ArrayView2<f64>,
    y: &[f64],
    alpha: f64,
    max_iterations: u64,
    tolerance: f64,
) -> Option<(Vec<f64>, f64)> {
    let (n, d) = x.dim();
    let m = d + 1;
    // θ = (w, b); z_i = x_i · w + b.
    let mut theta = vec![0.0; m];
    let z_of = |theta: &[f64], z: &mut Vec<f64>| {
        z.clear();
        z.extend(
            x.rows()
                .into_iter()
                .map(|row| row.iter().zip(theta).map(|(a, w)| a * w).sum::<f64>() + theta[d]),
        );
    };
    let objective = |theta: &[f64], z: &[f64]| {
        let loss: f64 = z
            .iter()
            .zip(y)
            .map(|(&z, &y)| z.max(0.0) + (-z.abs()).exp().ln_1p() - y * z)
            .sum();
        loss + 0.5 * alpha * theta[..d].iter().map(|w| w * w).sum::<f64>()
    };
    let mut z = Vec::with_capacity(n);
    z_of(&theta, &mut z);
    let mut f = objective(&theta, &z);
    let mut gradient = vec![0.0; m];
    let mut hessian = vec![0.0; m * m];
    let mut trial = vec![0.0; m];
    let mut z_trial = Vec::with_capacity(n);
    for _ in 0..max_iterations {
        gradient.fill(0.0);
        hessian.fill(0.0);
        for (row, (&z, &y)) in x.rows().into_iter().zip(z.iter().zip(y)) {
            let p = 1.0 / (1.0 + (-z).exp());
            let (r, s) = (p - y, p * (1.0 - p));
            for (j, &a) in row.iter().chain(std::iter::once(&1.0)).enumerate() {
                gradient[j] += r * a;
                let sa = s * a;
                let hj = &mut hessian[j * m..j * m + j + 1];
                for (h, &b) in hj.iter_mut().zip(row.iter().chain(std::iter::once(&1.0))) {
                    *h += sa * b;
                }
            }
        }
        for j in 0..d {
            gradient[j] += alpha * theta[j];
            hessian[j * m + j] += alpha;
        }
        if gradient.iter().fold(0.0f64, |g, v| g.max(v.abs())) / n as f64 <= tolerance {
            break;
        }
        let step = cholesky_solve(&mut hessian, m, &gradient)?;
        let slope: f64 = gradient.iter().zip(&step).map(|(g, s)| g * s).sum();
        let mut t = 1.0;
        loop {
            for ((new, old), s) in trial.iter_mut().zip(&theta).zip(&step) {
                *new = old - t * s;
            }
            z_of(&trial, &mut z_trial);
            let f_trial = objective(&trial, &z_trial);
            if f_trial <= f - 1e-4 * t * slope || t < 1e-10 {
                std::mem::swap(&mut theta, &mut trial);
                std::mem::swap(&mut z, &mut z_trial);
                f = f_trial;
                break;
            }
            t *= 0.5;
        }
    }
    theta.iter().all(|v| v.is_finite()).then(|| {
        let b = theta[d];
        theta.truncate(d);
        (theta, b)
    })
}

/// Solves `A s = g` for a symmetric positive definite `A` (`m × m`, row-major, only the lower
/// triangle read; overwritten by its Cholesky factor). `None` when `A` is not positive definite.
fn cholesky_solve(a: &mut [f64], m: usize, g: &[f64]) -> Option<Vec<f64>> {
    for j in 0..m {
        let diagonal = a[j * m + j] - (0..j).map(|k| a[j * m + k].powi(2)).sum::<f64>();
        // Not positive (or NaN): not positive definite.
        if diagonal.is_nan() || diagonal <= 1e-12 * a[j * m + j].abs().max(f64::MIN_POSITIVE) {
            return None;
        }
        let l_jj = diagonal.sqrt();
        a[j * m + j] = l_jj;
        for i in j + 1..m {
            let dot: f64 = (0..j).map(|k| a[i * m + k] * a[j * m + k]).sum();
            a[i * m + j] = (a[i * m + j] - dot) / l_jj;
        }
    }
    let mut s = g.to_vec();
    for i in 0..m {
        let dot: f64 = (0..i).map(|k| a[i * m + k] * s[k]).sum();
        s[i] = (s[i] - dot) / a[i * m + i];
    }
    for i in (0..m).rev() {
        let dot: f64 = (i + 1..m).map(|k| a[k * m + i] * s[k]).sum();
        s[i] = (s[i] - dot) / a[i * m + i];
    }
    Some(s)
}

/// linfa-bayes' `GaussianNb` as serialized (its fitted fields are private); the per-class
/// arrays in ndarray's serde form.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NbSerde {
    class_info: BTreeMap<usize, NbClassSerde>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NbClassSerde {
    class_count: usize,
    prior: f64,
    theta: ArraySerde,
    sigma: ArraySerde,
}

/// ndarray's serde form of an `Array1`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ArraySerde {
    #[allow(dead_code)]
    v: u8,
    #[allow(dead_code)]
    dim: (usize,),
    data: Vec<f64>,
}

/// Gaussian naive Bayes (linfa-bayes): per-class priors, means and variances smoothed by
/// `var_smoothing × the largest column variance`, as scikit-learn's `GaussianNB`.
fn gaussian_nb(hp: &Hyperparameters, data: &TrainingData) -> Result<Estimator, FitError> {
    let algorithm = Algorithm::GaussianNb;
    let labels = class_labels(data.y);
    let dataset = DatasetView::new(data.x.view(), labels.view());
    let model = GaussianNb::<f64, usize>::params()
        .var_smoothing(hp.f64("var_smoothing", 1e-9))
        .fit(&dataset)
        .map_err(|e| learner_error(algorithm, e))?;
    let fitted: NbSerde = reshape(algorithm, &model)?;

    let width = data.x.ncols();
    let (mut priors, mut means, mut variances) = (Vec::new(), Vec::new(), Vec::new());
    for class in 0..data.n_classes {
        let info = fitted
            .class_info
            .get(&class)
            .ok_or_else(|| FitError::Conversion {
                algorithm,
                reason: format!("linfa fitted no class {class}"),
            })?;
        if info.class_count == 0 || info.theta.data.len() != width || info.sigma.data.len() != width
        {
            return Err(FitError::Conversion {
                algorithm,
                reason: format!("linfa's class {class} has the wrong shape"),
            });
        }
        if let Some(feature) = info.sigma.data.iter().position(|&s| s.is_nan() || s <= 0.0) {
            return Err(FitError::Learner {
                algorithm,
                reason: format!(
                    "column {feature} has zero variance in class {class}; use var_smoothing > 0 \
                     with at least one non-constant column"
                ),
            });
        }
        priors.push(info.prior);
        means.push(info.theta.data.clone());
        variances.push(info.sigma.data.clone());
    }
    ensure_finite(
        algorithm,
        "parameters",
        priors
            .iter()
            .chain(means.iter().flatten())
            .chain(variances.iter().flatten()),
    )?;
    Ok(Estimator::GaussianNb {
        priors,
        means,
        variances,
    })
}

/// Moves a value between two serde shapes, through `serde_json::Value` (lossless for finite
/// floats: numbers stay `f64`, never text).
fn reshape<T: Serialize, R: DeserializeOwned>(
    algorithm: Algorithm,
    value: &T,
) -> Result<R, FitError> {
    serde_json::to_value(value)
        .and_then(serde_json::from_value)
        .map_err(|e| FitError::Conversion {
            algorithm,
            reason: e.to_string(),
        })
}

// ----- trees ---------------------------------------------------------------------------------

/// The serde form of a fitted tree of [`crate::trees`]: nodes whose `feature` is `u32::MAX` are
/// leaves, and every node owns `n_outputs` values at `values[node * n_outputs..]`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TreeSerde {
    #[allow(dead_code)]
    n_features: usize,
    n_outputs: usize,
    nodes: Vec<NodeSerde>,
    values: Vec<f64>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeSerde {
    feature: u32,
    threshold: f64,
    left: u32,
    right: u32,
    #[allow(dead_code)]
    weight: f64,
    #[allow(dead_code)]
    impurity: f64,
}

/// `DecisionTreeClassifier` and `DecisionTreeRegressor` (the latter has no `classes`).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionTreeSerde {
    #[serde(default)]
    classes: Option<Vec<f64>>,
    tree: TreeSerde,
}

/// `RandomForestClassifier` and `RandomForestRegressor`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ForestSerde {
    #[serde(default)]
    classes: Option<Vec<f64>>,
    trees: Vec<TreeSerde>,
}

/// `GradientBoostingRegressor` (one `init`) and `GradientBoostingClassifier` (one per column).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BoostingSerde {
    #[serde(default)]
    classes: Option<Vec<f64>>,
    #[allow(dead_code)]
    n_features: usize,
    init: InitSerde,
    learning_rate: f64,
    trees: Vec<TreeSerde>,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum InitSerde {
    One(f64),
    PerColumn(Vec<f64>),
}

const LEAF: u32 = u32::MAX;

/// Copies a tree into the scorer's form: nodes renumbered depth first (so children follow their
/// parent, as the scorer requires) and only the leaves' values kept, bit for bit.
fn convert_tree(raw: &TreeSerde, n_outputs: usize) -> Result<Tree, String> {
    if raw.n_outputs != n_outputs || raw.values.len() != raw.nodes.len() * n_outputs {
        return Err(format!(
            "a tree has {} outputs and {} values for {} nodes; expected {n_outputs} outputs",
            raw.n_outputs,
            raw.values.len(),
            raw.nodes.len()
        ));
    }
    let mut nodes: Vec<Node> = Vec::with_capacity(raw.nodes.len());
    let mut values = Vec::new();
    // (node in `raw`, where to link it: parent in `nodes` and whether it is the left child)
    let mut stack: Vec<(u32, Option<(usize, bool)>)> = vec![(0, None)];
    while let Some((old, parent)) = stack.pop() {
        let node = raw
            .nodes
            .get(old as usize)
            .filter(|_| nodes.len() < raw.nodes.len())
            .ok_or_else(|| format!("tree node {old} is missing or visited twice"))?;
        let new = nodes.len() as u32;
        if let Some((p, is_left)) = parent {
            if is_left {
                nodes[p].left = new;
            } else {
                nodes[p].right = new;
            }
        }
        if node.feature == LEAF {
            let at = old as usize * n_outputs;
            nodes.push(Node {
                feature: -1,
                threshold: 0.0,
                left: 0,
                right: 0,
                value: values.len() as u32,
            });
            values.extend_from_slice(&raw.values[at..at + n_outputs]);
        } else {
            let feature = i32::try_from(node.feature)
                .map_err(|_| format!("split feature {} is too large", node.feature))?;
            nodes.push(Node {
                feature,
                threshold: node.threshold,
                left: 0,
                right: 0,
                value: 0,
            });
            let me = new as usize;
            // Right pushed first so the left subtree is numbered first.
            stack.push((node.right, Some((me, false))));
            stack.push((node.left, Some((me, true))));
        }
    }
    Ok(Tree {
        nodes,
        values,
        n_outputs,
    })
}

fn convert_trees(
    algorithm: Algorithm,
    raw: &[TreeSerde],
    n_outputs: usize,
) -> Result<Vec<Tree>, FitError> {
    let trees = raw
        .iter()
        .map(|t| convert_tree(t, n_outputs))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|reason| FitError::Conversion { algorithm, reason })?;
    ensure_finite(
        algorithm,
        "tree values",
        trees
            .iter()
            .flat_map(|t| t.values.iter().chain(t.nodes.iter().map(|n| &n.threshold))),
    )?;
    Ok(trees)
}

/// Checks that a tree classifier's columns are the classes `0..n_classes` in order.
fn check_tree_classes(
    algorithm: Algorithm,
    classes: Option<&[f64]>,
    n_classes: usize,
) -> Result<(), FitError> {
    let ok = classes.is_some_and(|c| c.iter().copied().eq((0..n_classes).map(|k| k as f64)));
    if ok {
        Ok(())
    } else {
        Err(FitError::Conversion {
            algorithm,
            reason: format!("the tree learner's classes are {classes:?}, not 0..{n_classes}"),
        })
    }
}

fn tree_error(error: TreeError, algorithm: Algorithm) -> FitError {
    match error {
        TreeError::InvalidParam { field, reason } => FitError::InvalidHyperparameter {
            name: field,
            reason,
        },
        other => FitError::Learner {
            algorithm,
            reason: other.to_string(),
        },
    }
}

/// The classification criterion of `decision_tree`, refusing regression's for classes and
/// the other way round.
fn criterion(hp: &Hyperparameters, task: Task) -> Result<ClassCriterion, FitError> {
    let classification = task.is_classification();
    let name = hp.text(
        "criterion",
        if classification {
            "gini"
        } else {
            "squared_error"
        },
    );
    match (name, classification) {
        ("gini", true) => Ok(ClassCriterion::Gini),
        ("entropy", true) => Ok(ClassCriterion::Entropy),
        ("squared_error", false) => Ok(ClassCriterion::Gini), // unused by regression trees
        (other, true) => Err(FitError::InvalidHyperparameter {
            name: "criterion",
            reason: format!(
                "'{other}' is for regression; a classification tree takes gini or entropy"
            ),
        }),
        (other, false) => Err(FitError::InvalidHyperparameter {
            name: "criterion",
            reason: format!(
                "'{other}' is for classification; a regression tree takes squared_error"
            ),
        }),
    }
}

/// `max_features`: absent → `None` (the learner's default for the task), `null` → all,
/// `"sqrt"` / `"log2"`, a fraction in (0, 1] or a count.
fn max_features(hp: &Hyperparameters) -> Result<Option<MaxFeatures>, FitError> {
    Ok(match hp.get("max_features") {
        None => None,
        Some(ParamValue::Null) => Some(MaxFeatures::All),
        Some(ParamValue::Text(s)) if s == "sqrt" => Some(MaxFeatures::Sqrt),
        Some(ParamValue::Text(s)) if s == "log2" => Some(MaxFeatures::Log2),
        Some(ParamValue::Float(f)) => Some(MaxFeatures::Fraction(*f)),
        Some(ParamValue::Int(i)) if *i >= 1 => Some(MaxFeatures::Count(*i as usize)),
        Some(other) => {
            return Err(FitError::InvalidHyperparameter {
                name: "max_features",
                reason: format!("{other} is not \"sqrt\", \"log2\", null, a fraction or a count"),
            });
        }
    })
}

/// One CART tree, as a forest of one.
fn decision_tree(
    hp: &Hyperparameters,
    data: &TrainingData,
    seed: u64,
) -> Result<Estimator, FitError> {
    let algorithm = Algorithm::DecisionTree;
    let params = TreeParams::new()
        .criterion(criterion(hp, data.task)?)
        .max_depth(hp.opt_usize("max_depth", None))
        .min_samples_split(hp.usize("min_samples_split", 2))
        .min_samples_leaf(hp.usize("min_samples_leaf", 1))
        .seed(seed)
        .check()
        .map_err(|e| tree_error(e, algorithm))?;
    let y = ArrayView1::from(data.y);
    let fitted: DecisionTreeSerde = if data.task.is_classification() {
        let model = params
            .fit_classifier(data.x, y)
            .map_err(|e| tree_error(e, algorithm))?;
        reshape(algorithm, &model)?
    } else {
        let model = params
            .fit_regressor(data.x, y)
            .map_err(|e| tree_error(e, algorithm))?;
        reshape(algorithm, &model)?
    };
    let n_outputs = outputs(algorithm, data, fitted.classes.as_deref())?;
    let trees = convert_trees(algorithm, std::slice::from_ref(&fitted.tree), n_outputs)?;
    Ok(Estimator::Forest { trees })
}

/// Outputs per leaf: one per class (after checking the learner's classes), or one.
fn outputs(
    algorithm: Algorithm,
    data: &TrainingData,
    classes: Option<&[f64]>,
) -> Result<usize, FitError> {
    if data.task.is_classification() {
        check_tree_classes(algorithm, classes, data.n_classes)?;
        Ok(data.n_classes)
    } else {
        Ok(1)
    }
}

/// A random forest: bootstrap samples (by default) and random feature subsets per node.
fn random_forest(
    hp: &Hyperparameters,
    data: &TrainingData,
    seed: u64,
) -> Result<Estimator, FitError> {
    let algorithm = Algorithm::RandomForest;
    let params = ForestParams::new()
        .n_estimators(hp.usize("n_estimators", 100))
        .max_depth(hp.opt_usize("max_depth", None))
        .min_samples_split(hp.usize("min_samples_split", 2))
        .min_samples_leaf(hp.usize("min_samples_leaf", 1))
        .max_features(max_features(hp)?)
        .bootstrap(hp.bool("bootstrap", true))
        .seed(seed)
        .check()
        .map_err(|e| tree_error(e, algorithm))?;
    let y = ArrayView1::from(data.y);
    let fitted: ForestSerde = if data.task.is_classification() {
        let model = params
            .fit_classifier(data.x, y)
            .map_err(|e| tree_error(e, algorithm))?;
        reshape(algorithm, &model)?
    } else {
        let model = params
            .fit_regressor(data.x, y)
            .map_err(|e| tree_error(e, algorithm))?;
        reshape(algorithm, &model)?
    };
    let n_outputs = outputs(algorithm, data, fitted.classes.as_deref())?;
    let trees = convert_trees(algorithm, &fitted.trees, n_outputs)?;
    Ok(Estimator::Forest { trees })
}

/// Gradient boosting: squared error for regression, log-loss for two classes, multinomial
/// log-loss (one tree per class per stage, stage-major) for more.
fn gradient_boosting(
    hp: &Hyperparameters,
    data: &TrainingData,
    seed: u64,
) -> Result<Estimator, FitError> {
    let algorithm = Algorithm::GradientBoosting;
    let params = BoostingParams::new()
        .n_estimators(hp.usize("n_estimators", 100))
        .learning_rate(hp.f64("learning_rate", 0.1))
        .max_depth(hp.opt_usize("max_depth", Some(3)))
        .min_samples_split(hp.usize("min_samples_split", 2))
        .min_samples_leaf(hp.usize("min_samples_leaf", 1))
        .subsample(hp.f64("subsample", 1.0))
        .seed(seed)
        .check()
        .map_err(|e| tree_error(e, algorithm))?;
    let y = ArrayView1::from(data.y);
    let (fitted, loss): (BoostingSerde, Loss) = match data.task {
        Task::Regression => {
            let model = params
                .fit_regressor(data.x, y)
                .map_err(|e| tree_error(e, algorithm))?;
            (reshape(algorithm, &model)?, Loss::SquaredError)
        }
        Task::Binary | Task::Multiclass => {
            let model = params
                .fit_classifier(data.x, y)
                .map_err(|e| tree_error(e, algorithm))?;
            check_tree_classes(algorithm, Some(model.classes()), data.n_classes)?;
            let loss = if data.n_classes == 2 {
                Loss::BinaryLogLoss
            } else {
                Loss::MultinomialLogLoss
            };
            (reshape(algorithm, &model)?, loss)
        }
    };
    if data.task.is_classification() {
        check_tree_classes(algorithm, fitted.classes.as_deref(), data.n_classes)?;
    }
    let init = match fitted.init {
        InitSerde::One(v) => vec![v],
        InitSerde::PerColumn(v) => v,
    };
    ensure_finite(
        algorithm,
        "initial scores",
        init.iter().chain([&fitted.learning_rate]),
    )?;
    let trees = convert_trees(algorithm, &fitted.trees, 1)?;
    Ok(Estimator::Boosting(Boosting {
        loss,
        init,
        learning_rate: fitted.learning_rate,
        trees,
    }))
}

#[cfg(test)]
mod tests {
    use linfa_elasticnet::ElasticNet;
    use std::collections::BTreeMap;

    use linfa::DatasetView;
    use linfa::traits::{Fit, Predict};
    use linfa_bayes::NaiveBayes;
    use ndarray::{Array1, Array2, ArrayView1, Axis, array};
    use refit_scorer::native::{Encoder, InputEncoding};
    use refit_scorer::{FeatureColumn, FeatureFrame, Model, ModelInfo, NativeModel};

    use super::*;

    // ----- helpers ---------------------------------------------------------------------------

    fn hp(algorithm: Algorithm, pairs: &[(&str, ParamValue)]) -> Hyperparameters {
        let values: BTreeMap<String, ParamValue> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        Hyperparameters::check(algorithm, values).expect("test hyperparameters are valid")
    }

    fn int(i: i64) -> ParamValue {
        ParamValue::Int(i)
    }

    fn float(x: f64) -> ParamValue {
        ParamValue::Float(x)
    }

    fn data<'a>(
        x: &'a Array2<f64>,
        y: &'a [f64],
        task: Task,
        n_classes: usize,
    ) -> TrainingData<'a> {
        TrainingData {
            x: x.view(),
            y,
            task,
            n_classes,
        }
    }

    /// SplitMix64: a tiny seeded generator, so the test data is the same on every platform.
    struct Rng(u64);

    impl Rng {
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn uniform(&mut self) -> f64 {
            (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
        }

        fn normal(&mut self) -> f64 {
            let (u1, u2) = (1.0 - self.uniform(), self.uniform());
            (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        }
    }

    /// `y = 1.5 + x · w + noise * N(0, 1)`, with `x ~ N(0, 1)` rounded to one decimal when
    /// `coarse` (ties in every column, as tree splits meet in real data).
    fn regression_data(
        n: usize,
        p: usize,
        noise: f64,
        coarse: bool,
        seed: u64,
    ) -> (Array2<f64>, Vec<f64>) {
        let mut rng = Rng(seed);
        let w: Vec<f64> = (0..p).map(|j| [2.0, -3.0, 0.5, 1.0][j % 4]).collect();
        let x = Array2::from_shape_fn((n, p), |_| {
            let v = rng.normal();
            if coarse { (v * 10.0).round() / 10.0 } else { v }
        });
        let y = x
            .outer_iter()
            .map(|r| 1.5 + r.dot(&ArrayView1::from(&w)) + noise * rng.normal())
            .collect();
        (x, y)
    }

    /// `k` Gaussian blobs whose centres are `distance` apart on a line, row `i` in class
    /// `i % k`; labels as class indices.
    fn class_data(
        n: usize,
        p: usize,
        k: usize,
        distance: f64,
        coarse: bool,
        seed: u64,
    ) -> (Array2<f64>, Vec<f64>) {
        let mut rng = Rng(seed);
        let y: Vec<f64> = (0..n).map(|i| (i % k) as f64).collect();
        let x = Array2::from_shape_fn((n, p), |(i, j)| {
            let centre = distance * y[i] * if j % 2 == 0 { 1.0 } else { -1.0 };
            let v = centre + rng.normal();
            if coarse { (v * 10.0).round() / 10.0 } else { v }
        });
        (x, y)
    }

    fn regress(estimator: &Estimator, x: &Array2<f64>) -> Vec<f64> {
        let flat = x.as_standard_layout();
        estimator.regress(flat.as_slice().unwrap(), x.nrows(), x.ncols())
    }

    fn classify(estimator: &Estimator, x: &Array2<f64>, k: usize) -> Array2<f64> {
        let flat = x.as_standard_layout();
        let p = estimator.classify(flat.as_slice().unwrap(), x.nrows(), x.ncols(), k);
        Array2::from_shape_vec((x.nrows(), k), p).unwrap()
    }

    fn argmax(row: ArrayView1<f64>) -> usize {
        let mut best = 0;
        for (i, &v) in row.iter().enumerate() {
            if v > row[best] {
                best = i;
            }
        }
        best
    }

    fn accuracy(proba: &Array2<f64>, y: &[f64]) -> f64 {
        let right = proba
            .outer_iter()
            .zip(y)
            .filter(|(row, label)| argmax(row.view()) as f64 == **label)
            .count();
        right as f64 / y.len() as f64
    }

    fn assert_close(a: &[f64], b: &[f64], tolerance: f64) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= tolerance,
                "[{i}]: {x} vs {y} (tolerance {tolerance})"
            );
        }
    }

    fn trees_of(estimator: &Estimator) -> &[Tree] {
        match estimator {
            Estimator::Forest { trees } => trees,
            Estimator::Boosting(b) => &b.trees,
            other => panic!("not a tree model: {other:?}"),
        }
    }

    fn depth(tree: &Tree) -> usize {
        let mut deepest = 0;
        let mut stack = vec![(0usize, 0usize)];
        while let Some((i, d)) = stack.pop() {
            let node = &tree.nodes[i];
            if node.feature < 0 {
                deepest = deepest.max(d);
            } else {
                stack.push((node.left as usize, d + 1));
                stack.push((node.right as usize, d + 1));
            }
        }
        deepest
    }

    /// Rows to predict: the training rows, fresh random rows, and rows sitting exactly on split
    /// thresholds (so `x <= threshold` is exercised at equality).
    fn probe_rows(x: &Array2<f64>, trees: &[Tree], seed: u64) -> Array2<f64> {
        let mut rng = Rng(seed);
        let p = x.ncols();
        let mut rows: Vec<f64> = x.iter().copied().collect();
        for _ in 0..50 {
            rows.extend((0..p).map(|_| 3.0 * rng.normal()));
        }
        for node in trees
            .iter()
            .flat_map(|t| &t.nodes)
            .filter(|n| n.feature >= 0)
            .take(200)
        {
            let base = rng.next_u64() as usize % x.nrows();
            let mut row = x.row(base).to_vec();
            row[node.feature as usize] = node.threshold;
            rows.extend(row);
        }
        Array2::from_shape_vec((rows.len() / p, p), rows).unwrap()
    }

    // ----- linear models ---------------------------------------------------------------------

    #[test]
    fn linear_regression_recovers_the_coefficients_and_predicts_as_linfa() {
        let (x, y) = regression_data(60, 3, 0.0, false, 1);
        let estimator = fit(
            &hp(Algorithm::LinearRegression, &[]),
            &data(&x, &y, Task::Regression, 0),
            0,
        )
        .unwrap();
        let Estimator::Linear { coef, intercept } = &estimator else {
            panic!("{estimator:?}")
        };
        assert_close(coef, &[2.0, -3.0, 0.5], 1e-12);
        assert!((intercept - 1.5).abs() < 1e-12, "{intercept}");

        let (x, y) = regression_data(60, 4, 0.3, false, 2);
        let estimator = fit(
            &hp(Algorithm::LinearRegression, &[]),
            &data(&x, &y, Task::Regression, 0),
            0,
        )
        .unwrap();
        let linfa = LinearRegression::new()
            .fit(&DatasetView::new(x.view(), ArrayView1::from(&y)))
            .unwrap();
        let (probe, _) = regression_data(40, 4, 0.3, false, 3);
        assert_close(
            &regress(&estimator, &probe),
            linfa.predict(&probe).as_slice().unwrap(),
            1e-12,
        );

        let no_intercept = hp(
            Algorithm::LinearRegression,
            &[("fit_intercept", ParamValue::Bool(false))],
        );
        let Estimator::Linear { intercept, .. } =
            fit(&no_intercept, &data(&x, &y, Task::Regression, 0), 0).unwrap()
        else {
            panic!()
        };
        assert_eq!(intercept, 0.0);
    }

    #[test]
    fn linear_regression_gives_zero_columns_coefficient_zero() {
        // A constant feature encodes to a zero column (C-MAPSS FD001 has seven); the QR alone
        // refuses the singular problem.
        let (x, y) = regression_data(60, 3, 0.0, false, 1);
        let mut padded = Array2::zeros((60, 5));
        for (j, from) in [
            (0, Some(0)),
            (1, None),
            (2, Some(1)),
            (3, Some(2)),
            (4, None),
        ] {
            if let Some(from) = from {
                padded.column_mut(j).assign(&x.column(from));
            }
        }
        let estimator = fit(
            &hp(Algorithm::LinearRegression, &[]),
            &data(&padded, &y, Task::Regression, 0),
            0,
        )
        .unwrap();
        let Estimator::Linear { coef, intercept } = &estimator else {
            panic!("{estimator:?}")
        };
        assert_close(coef, &[2.0, 0.0, -3.0, 0.5, 0.0], 1e-12);
        assert_eq!((coef[1], coef[4]), (0.0, 0.0));
        assert!((intercept - 1.5).abs() < 1e-12, "{intercept}");

        let zeros = Array2::zeros((4, 2));
        let y = [1.0, 2.0, 3.0, 6.0];
        let Estimator::Linear { coef, intercept } = fit(
            &hp(Algorithm::LinearRegression, &[]),
            &data(&zeros, &y, Task::Regression, 0),
            0,
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!((coef, intercept), (vec![0.0, 0.0], 3.0));
    }

    /// The fixed data and reference of the elastic-net test (scikit-learn 1.9.1):
    /// `ElasticNet(alpha=0.1, l1_ratio=0.5, tol=1e-14, max_iter=1000000).fit(X, y)` with
    /// `y = 5 + 2 x0 - 0.1 x1 + 0.5 x2 + noise`, printed with `repr`.
    fn elastic_net_data() -> (Array2<f64>, Vec<f64>) {
        let x = array![
            [10.0, 200.0, -3.0],
            [12.0, 180.0, -1.0],
            [11.0, 210.0, -4.0],
            [15.0, 190.0, 0.0],
            [9.0, 205.0, -2.0],
            [14.0, 170.0, 1.0],
            [13.0, 195.0, -5.0],
            [8.0, 185.0, 2.0],
            [16.0, 175.0, -1.5],
            [10.5, 215.0, 0.5]
        ];
        let y = vec![3.8, 10.3, 4.1, 16.0, 1.1, 16.75, 8.9, 3.65, 18.7, 4.95];
        (x, y)
    }

    #[test]
    fn elastic_net_matches_scikit_learn_on_uncentred_data() {
        let (x, y) = elastic_net_data();
        let params = hp(
            Algorithm::ElasticNet,
            &[
                ("alpha", float(0.1)),
                ("tolerance", float(1e-14)),
                ("max_iterations", int(1_000_000)),
            ],
        );
        let estimator = fit(&params, &data(&x, &y, Task::Regression, 0), 0).unwrap();
        let Estimator::Linear { coef, intercept } = &estimator else {
            panic!("{estimator:?}")
        };
        assert_close(
            coef,
            &[1.9632504935118986, -0.10327039020258272, 0.4995608671841769],
            1e-9,
        );
        assert!((intercept - 6.089460893220606).abs() < 1e-7, "{intercept}");

        // Our predictions are linfa's on the centred matrix, which is what fit() hands linfa.
        let centred = &x - &x.mean_axis(Axis(0)).unwrap();
        let linfa = ElasticNet::<f64>::params()
            .penalty(0.1)
            .tolerance(1e-14)
            .max_iterations(1_000_000)
            .fit(&DatasetView::new(centred.view(), ArrayView1::from(&y)))
            .unwrap();
        assert_close(
            &regress(&estimator, &x),
            linfa.predict(&centred).as_slice().unwrap(),
            1e-12,
        );

        // Defaults (alpha 1, l1_ratio 0.5): shrunk but still sensible.
        let estimator = fit(
            &hp(Algorithm::ElasticNet, &[]),
            &data(&x, &y, Task::Regression, 0),
            0,
        )
        .unwrap();
        let Estimator::Linear { coef, .. } = &estimator else {
            panic!()
        };
        assert!(coef[0] > 1.0 && coef[0] < 2.0, "{coef:?}");
    }

    // ----- logistic regression ---------------------------------------------------------------

    /// The fixed classification data of the scikit-learn references below.
    fn small_class_data() -> (Array2<f64>, Vec<f64>, Array2<f64>) {
        let x = array![
            [1.0, 2.0, 0.5],
            [1.5, 1.8, 0.1],
            [0.8, 2.4, 0.3],
            [1.2, 2.1, 0.9],
            [3.0, 0.5, 1.5],
            [3.4, 0.9, 1.1],
            [2.7, 0.2, 1.9],
            [3.1, 0.7, 1.4],
            [0.2, -1.0, 3.0],
            [-0.3, -1.5, 2.6],
            [0.5, -0.8, 3.3],
            [0.0, -1.2, 2.8]
        ];
        let y = vec![0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0];
        let probe = array![
            [1.1, 2.0, 0.5],
            [2.0, 1.0, 1.0],
            [0.4, -0.5, 2.0],
            [3.0, 0.0, 2.0],
            [1.0, 0.0, 1.5],
            [2.2, 1.2, 1.2]
        ];
        (x, y, probe)
    }

    #[test]
    fn binary_logistic_regression_reaches_linfas_optimum_with_class_1_probabilities() {
        let params = hp(Algorithm::LogisticRegression, &[]);
        let tight = hp(
            Algorithm::LogisticRegression,
            &[("gradient_tolerance", float(1e-12))],
        );
        // Class 1 is the majority in one data set and the minority in the other: linfa's own
        // "positive" class (the majority) is class 1, then class 0.
        for (majority, seed) in [(1.0, 11), (0.0, 12)] {
            let (x, mut y) = class_data(90, 3, 2, 1.5, false, seed);
            for (i, v) in y.iter_mut().enumerate() {
                if i % 3 == 0 {
                    *v = majority;
                }
            }
            // Newton's method against linfa's L-BFGS, both run to the end.
            let estimator = fit(&tight, &data(&x, &y, Task::Binary, 2), 0).unwrap();
            let labels: Array1<usize> = y.iter().map(|&v| v as usize).collect();
            let linfa = LogisticRegression::<f64>::default()
                .gradient_tolerance(1e-10)
                .max_iterations(10_000)
                .fit(&DatasetView::new(x.view(), labels.view()))
                .unwrap();
            assert_eq!(linfa.labels().pos.class, majority as usize);
            let (probe, _) = class_data(50, 3, 2, 1.5, false, seed + 100);
            let ours = classify(&estimator, &probe, 2);
            let theirs = linfa.predict_probabilities(&probe);
            let p1: Vec<f64> = if majority == 1.0 {
                theirs.to_vec()
            } else {
                theirs.iter().map(|p| 1.0 - p).collect()
            };
            assert_close(&ours.column(1).to_vec(), &p1, 1e-9);
            // At the default tolerance (scikit-learn's): near the optimum, not at it.
            let default = fit(&params, &data(&x, &y, Task::Binary, 2), 0).unwrap();
            assert_close(&classify(&default, &probe, 2).column(1).to_vec(), &p1, 1e-4);
            // And the labels linfa predicts.
            let predicted: Vec<f64> = linfa.predict(&probe).iter().map(|&c| c as f64).collect();
            let ours_labels: Vec<f64> = ours.outer_iter().map(|r| argmax(r) as f64).collect();
            assert_eq!(ours_labels, predicted);
        }
    }

    #[test]
    fn unpenalised_binary_logistic_regression_on_collinear_inputs_falls_back_to_linfa() {
        // alpha 0 and a duplicated column: the Newton system is singular, L-BFGS still fits.
        let (x, y) = class_data(90, 2, 2, 1.0, false, 13);
        let twice = ndarray::concatenate![Axis(1), x, x.column(0).insert_axis(Axis(1))];
        let no_penalty = hp(Algorithm::LogisticRegression, &[("alpha", float(0.0))]);
        let estimator = fit(&no_penalty, &data(&twice, &y, Task::Binary, 2), 0).unwrap();
        let labels: Array1<usize> = y.iter().map(|&v| v as usize).collect();
        let linfa = LogisticRegression::<f64>::default()
            .alpha(0.0)
            .gradient_tolerance(1e-4 * y.len() as f64)
            .fit(&DatasetView::new(twice.view(), labels.view()))
            .unwrap();
        let ours = classify(&estimator, &twice, 2);
        let theirs = linfa.predict_probabilities(&twice);
        let p1: Vec<f64> = if linfa.labels().pos.class == 1 {
            theirs.to_vec()
        } else {
            theirs.iter().map(|p| 1.0 - p).collect()
        };
        assert_close(&ours.column(1).to_vec(), &p1, 1e-12);
    }

    #[test]
    fn logistic_regression_matches_scikit_learn() {
        // scikit-learn 1.9.1: LogisticRegression(C=1.0, tol=1e-12, max_iter=10000) (alpha = 1 / C)
        // fitted on small_class_data(), binary on (y > 0); predict_proba(probe).
        let (x, y, probe) = small_class_data();
        let tight = hp(
            Algorithm::LogisticRegression,
            &[
                ("gradient_tolerance", float(1e-12)),
                ("max_iterations", int(10_000)),
            ],
        );
        let binary: Vec<f64> = y.iter().map(|&v| if v > 0.0 { 1.0 } else { 0.0 }).collect();
        let estimator = fit(&tight, &data(&x, &binary, Task::Binary, 2), 0).unwrap();
        let sklearn_p1 = [
            0.16039139538201524,
            0.6247647181372344,
            0.8717024446628935,
            0.9587766561620227,
            0.7956540917242397,
            0.6413860524790326,
        ];
        assert_close(
            &classify(&estimator, &probe, 2).column(1).to_vec(),
            &sklearn_p1,
            1e-7,
        );

        let estimator = fit(&tight, &data(&x, &y, Task::Multiclass, 3), 0).unwrap();
        let sklearn = [
            [
                0.8972228363514846,
                0.07376050795046173,
                0.029016655698053825,
            ],
            [0.429715593155259, 0.4883832533281032, 0.0819011535166377],
            [0.1401816063663425, 0.10798546790640796, 0.7518329257272496],
            [0.03576452121738614, 0.8963975595783276, 0.0678379192042863],
            [0.2999210327808262, 0.262072836482881, 0.4380061307362928],
            [0.38136631140816457, 0.5518442126031673, 0.06678947598866805],
        ];
        let expected: Vec<f64> = sklearn.iter().flatten().copied().collect();
        assert_close(
            classify(&estimator, &probe, 3).as_slice().unwrap(),
            &expected,
            1e-7,
        );
    }

    #[test]
    fn multinomial_logistic_regression_predicts_as_linfa() {
        let (x, y) = class_data(120, 4, 4, 1.0, false, 21);
        let estimator = fit(
            &hp(Algorithm::LogisticRegression, &[("alpha", float(0.5))]),
            &data(&x, &y, Task::Multiclass, 4),
            0,
        )
        .unwrap();
        let Estimator::Logistic { coef, intercept } = &estimator else {
            panic!()
        };
        assert_eq!((coef.len(), coef[0].len(), intercept.len()), (4, 4, 4));
        let labels: Array1<usize> = y.iter().map(|&v| v as usize).collect();
        let linfa = MultiLogisticRegression::<f64>::default()
            .alpha(0.5)
            .gradient_tolerance(1e-4 * y.len() as f64)
            .fit(&DatasetView::new(x.view(), labels.view()))
            .unwrap();
        let (probe, _) = class_data(60, 4, 4, 1.0, false, 22);
        let ours = classify(&estimator, &probe, 4);
        assert_close(
            ours.as_slice().unwrap(),
            linfa.predict_probabilities(&probe).as_slice().unwrap(),
            1e-12,
        );
        let predicted: Vec<usize> = linfa.predict(&probe).to_vec();
        assert_eq!(ours.outer_iter().map(argmax).collect::<Vec<_>>(), predicted);
    }

    #[test]
    fn linear_classifiers_separate_separable_classes() {
        for (algorithm, k) in [
            (Algorithm::LogisticRegression, 2),
            (Algorithm::LogisticRegression, 3),
            (Algorithm::GaussianNb, 2),
            (Algorithm::GaussianNb, 3),
        ] {
            let task = if k == 2 {
                Task::Binary
            } else {
                Task::Multiclass
            };
            let (x, y) = class_data(90, 3, k, 8.0, false, 31);
            let estimator = fit(&hp(algorithm, &[]), &data(&x, &y, task, k), 0).unwrap();
            let (probe, truth) = class_data(60, 3, k, 8.0, false, 32);
            assert_eq!(
                accuracy(&classify(&estimator, &probe, k), &truth),
                1.0,
                "{algorithm} k={k}"
            );
        }
    }

    // ----- Gaussian naive Bayes --------------------------------------------------------------

    #[test]
    fn gaussian_nb_predicts_as_linfa() {
        let (x, y) = class_data(150, 4, 3, 0.8, false, 41);
        let estimator = fit(
            &hp(Algorithm::GaussianNb, &[]),
            &data(&x, &y, Task::Multiclass, 3),
            0,
        )
        .unwrap();
        let labels: Array1<usize> = y.iter().map(|&v| v as usize).collect();
        let linfa = GaussianNb::<f64, usize>::params()
            .fit(&DatasetView::new(x.view(), labels.view()))
            .unwrap();
        let (probe, _) = class_data(60, 4, 3, 0.8, false, 42);
        let ours = classify(&estimator, &probe, 3);
        let (theirs, classes) = linfa.predict_proba(probe.view());
        assert_eq!(classes, vec![&0, &1, &2]);
        assert_close(ours.as_slice().unwrap(), theirs.as_slice().unwrap(), 1e-12);
        let predicted: Vec<usize> = linfa.predict(&probe).to_vec();
        assert_eq!(ours.outer_iter().map(argmax).collect::<Vec<_>>(), predicted);
    }

    #[test]
    fn gaussian_nb_matches_scikit_learn() {
        // scikit-learn 1.9.1: GaussianNB().fit(X, y) on small_class_data(); theta_, var_ and
        // predict_proba(probe), printed with repr.
        let (x, y, probe) = small_class_data();
        let estimator = fit(
            &hp(Algorithm::GaussianNb, &[]),
            &data(&x, &y, Task::Multiclass, 3),
            0,
        )
        .unwrap();
        let Estimator::GaussianNb {
            priors,
            means,
            variances,
        } = &estimator
        else {
            panic!()
        };
        assert_close(priors, &[1.0 / 3.0; 3], 1e-15);
        let theta = [
            [1.125, 2.0749999999999997, 0.44999999999999996],
            [3.0500000000000003, 0.575, 1.475],
            [0.1, -1.125, 2.925],
        ];
        let var = [
            [0.0668750017690972, 0.0468750017690972, 0.08750000176909722],
            [
                0.06250000176909717,
                0.06687500176909722,
                0.08187500176909718,
            ],
            [0.08500000176909724, 0.0668750017690972, 0.06687500176909718],
        ];
        for k in 0..3 {
            assert_close(&means[k], &theta[k], 1e-15);
            assert_close(&variances[k], &var[k], 1e-15);
        }
        let sklearn = [
            [1.0, 4.573195301038032e-23, 4.0217571472657173e-54],
            [
                0.00029726523635189537,
                0.999702734763648,
                1.1889020925237543e-31,
            ],
            [9.167657229130394e-35, 2.6142121680558055e-25, 1.0],
            [3.450669718994242e-36, 1.0, 2.616946441672191e-27],
            [
                1.2889020682324518e-10,
                0.0013136183801477047,
                0.9986863814909626,
            ],
            [
                2.1485137519130952e-05,
                0.9999785148624817,
                2.990873688620928e-35,
            ],
        ];
        let expected: Vec<f64> = sklearn.iter().flatten().copied().collect();
        assert_close(
            classify(&estimator, &probe, 3).as_slice().unwrap(),
            &expected,
            1e-12,
        );
    }

    #[test]
    fn gaussian_nb_without_smoothing_refuses_a_constant_column() {
        let (mut x, y) = class_data(30, 2, 2, 3.0, false, 43);
        x.column_mut(1).fill(4.0);
        let err = fit(
            &hp(Algorithm::GaussianNb, &[("var_smoothing", float(0.0))]),
            &data(&x, &y, Task::Binary, 2),
            0,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("column 1 has zero variance"),
            "{err}"
        );
        // With the default smoothing the constant column is harmless.
        fit(
            &hp(Algorithm::GaussianNb, &[]),
            &data(&x, &y, Task::Binary, 2),
            0,
        )
        .unwrap();
    }

    // ----- trees -----------------------------------------------------------------------------

    #[test]
    fn decision_trees_predict_exactly_as_the_tree_learners() {
        let (x, y) = regression_data(200, 4, 0.5, true, 51);
        for (max_depth, leaf) in [(None, 1), (Some(4), 3)] {
            let params = hp(
                Algorithm::DecisionTree,
                &[
                    ("max_depth", max_depth.map_or(ParamValue::Null, int)),
                    ("min_samples_leaf", int(leaf)),
                ],
            );
            let estimator = fit(&params, &data(&x, &y, Task::Regression, 0), 5).unwrap();
            let learner = TreeParams::new()
                .max_depth(max_depth.map(|d| d as usize))
                .min_samples_leaf(leaf as usize)
                .seed(5)
                .check()
                .unwrap()
                .fit_regressor(x.view(), ArrayView1::from(&y))
                .unwrap();
            let trees = trees_of(&estimator);
            assert_eq!(trees.len(), 1);
            assert_eq!(depth(&trees[0]), learner.depth());
            let probe = probe_rows(&x, trees, 52);
            assert_eq!(
                regress(&estimator, &probe),
                learner.predict(probe.view()).to_vec()
            );
        }

        for (k, criterion, class) in [
            (2, "gini", ClassCriterion::Gini),
            (3, "entropy", ClassCriterion::Entropy),
        ] {
            let task = if k == 2 {
                Task::Binary
            } else {
                Task::Multiclass
            };
            let (x, y) = class_data(200, 3, k, 1.0, true, 53);
            let params = hp(
                Algorithm::DecisionTree,
                &[("criterion", ParamValue::Text(criterion.into()))],
            );
            let estimator = fit(&params, &data(&x, &y, task, k), 6).unwrap();
            let learner = TreeParams::new()
                .criterion(class)
                .seed(6)
                .check()
                .unwrap()
                .fit_classifier(x.view(), ArrayView1::from(&y))
                .unwrap();
            let probe = probe_rows(&x, trees_of(&estimator), 54);
            assert_eq!(
                classify(&estimator, &probe, k),
                learner.predict_proba(probe.view())
            );
            // A fully grown tree fits its (distinct-row) training data.
            assert!(accuracy(&classify(&estimator, &x, k), &y) > 0.99);
        }
    }

    #[test]
    fn random_forest_regression_predicts_exactly_as_the_learner() {
        let (x, y) = regression_data(150, 5, 0.3, true, 61);
        let params = hp(
            Algorithm::RandomForest,
            &[("n_estimators", int(25)), ("max_features", float(0.6))],
        );
        let estimator = fit(&params, &data(&x, &y, Task::Regression, 0), 9).unwrap();
        let learner = ForestParams::new()
            .n_estimators(25)
            .max_features(Some(MaxFeatures::Fraction(0.6)))
            .seed(9)
            .check()
            .unwrap()
            .fit_regressor(x.view(), ArrayView1::from(&y))
            .unwrap();
        let probe = probe_rows(&x, trees_of(&estimator), 62);
        assert_eq!(
            regress(&estimator, &probe),
            learner.predict(probe.view()).to_vec()
        );
        // Sensible: R² on fresh data from the same model well above zero.
        let (test, truth) = regression_data(200, 5, 0.3, true, 63);
        let predicted = regress(&estimator, &test);
        let mean = truth.iter().sum::<f64>() / truth.len() as f64;
        let ss_res: f64 = truth
            .iter()
            .zip(&predicted)
            .map(|(t, p)| (t - p).powi(2))
            .sum();
        let ss_tot: f64 = truth.iter().map(|t| (t - mean).powi(2)).sum();
        assert!(
            1.0 - ss_res / ss_tot > 0.7,
            "R² = {}",
            1.0 - ss_res / ss_tot
        );
    }

    /// The learner's arithmetic for forest probabilities (sum over trees, then divide by their
    /// number), on the converted trees.
    fn forest_proba_as_learner(trees: &[Tree], probe: &Array2<f64>, k: usize) -> Array2<f64> {
        let mut out = Array2::zeros((probe.nrows(), k));
        for tree in trees {
            for (row, mut o) in probe.outer_iter().zip(out.outer_iter_mut()) {
                o.iter_mut()
                    .zip(tree.leaf(row.as_slice().unwrap()))
                    .for_each(|(o, v)| *o += v);
            }
        }
        out /= trees.len() as f64;
        out
    }

    #[test]
    fn random_forest_classification_predicts_as_the_learner() {
        for (k, n_trees, max_features, seed) in
            [(2, 8, "sqrt", 71), (3, 10, "log2", 72), (4, 16, "sqrt", 73)]
        {
            let task = if k == 2 {
                Task::Binary
            } else {
                Task::Multiclass
            };
            let (x, y) = class_data(160, 6, k, 1.0, true, seed);
            let params = hp(
                Algorithm::RandomForest,
                &[
                    ("n_estimators", int(n_trees)),
                    ("max_features", ParamValue::Text(max_features.into())),
                ],
            );
            let estimator = fit(&params, &data(&x, &y, task, k), seed).unwrap();
            let learner = ForestParams::new()
                .n_estimators(n_trees as usize)
                .max_features(Some(if max_features == "sqrt" {
                    MaxFeatures::Sqrt
                } else {
                    MaxFeatures::Log2
                }))
                .seed(seed)
                .check()
                .unwrap()
                .fit_classifier(x.view(), ArrayView1::from(&y))
                .unwrap();
            let probe = probe_rows(&x, trees_of(&estimator), seed + 100);
            let theirs = learner.predict_proba(probe.view());
            // The converted trees are the learner's, bit for bit: its arithmetic on them
            // reproduces its probabilities exactly.
            assert_eq!(
                forest_proba_as_learner(trees_of(&estimator), &probe, k),
                theirs
            );
            // The scorer multiplies by 1/n where the learner divides by n: identical for a
            // power-of-two number of trees, within an ulp otherwise.
            let ours = classify(&estimator, &probe, k);
            if (n_trees as usize).is_power_of_two() {
                assert_eq!(ours, theirs);
            } else {
                assert_close(
                    ours.as_slice().unwrap(),
                    theirs.as_slice().unwrap(),
                    2.0 * f64::EPSILON,
                );
            }
            let labels: Vec<usize> = ours.outer_iter().map(argmax).collect();
            let learner_labels: Vec<usize> = learner
                .predict(probe.view())
                .iter()
                .map(|&c| c as usize)
                .collect();
            assert_eq!(labels, learner_labels);
        }
    }

    #[test]
    fn gradient_boosting_regression_predicts_exactly_as_the_learner() {
        let (x, y) = regression_data(150, 4, 0.3, true, 81);
        let params = hp(
            Algorithm::GradientBoosting,
            &[
                ("n_estimators", int(40)),
                ("learning_rate", float(0.2)),
                ("subsample", float(0.7)),
                ("max_depth", int(2)),
            ],
        );
        let estimator = fit(&params, &data(&x, &y, Task::Regression, 0), 3).unwrap();
        let learner = BoostingParams::new()
            .n_estimators(40)
            .learning_rate(0.2)
            .subsample(0.7)
            .max_depth(Some(2))
            .seed(3)
            .check()
            .unwrap()
            .fit_regressor(x.view(), ArrayView1::from(&y))
            .unwrap();
        let Estimator::Boosting(b) = &estimator else {
            panic!()
        };
        assert_eq!(
            (b.loss, b.trees.len(), b.learning_rate),
            (Loss::SquaredError, 40, 0.2)
        );
        assert!(b.trees.iter().all(|t| depth(t) <= 2));
        let probe = probe_rows(&x, &b.trees, 82);
        assert_eq!(
            regress(&estimator, &probe),
            learner.predict(probe.view()).to_vec()
        );
    }

    /// The learner's arithmetic for boosting scores (per column: `init + rate * sum of its
    /// trees`), then its probabilities, on the converted ensemble.
    fn boosting_proba_as_learner(b: &Boosting, probe: &Array2<f64>, k: usize) -> Array2<f64> {
        let columns = b.init.len();
        let mut out = Array2::zeros((probe.nrows(), k));
        for (row, mut p) in probe.outer_iter().zip(out.outer_iter_mut()) {
            let row = row.as_slice().unwrap();
            let scores: Array1<f64> = (0..columns)
                .map(|c| {
                    let sum: f64 = b
                        .trees
                        .iter()
                        .skip(c)
                        .step_by(columns)
                        .map(|t| t.leaf(row)[0])
                        .sum();
                    b.init[c] + b.learning_rate * sum
                })
                .collect();
            if k == 2 {
                let p1 = 1.0 / (1.0 + (-scores[0]).exp());
                p[0] = 1.0 - p1;
                p[1] = p1;
            } else {
                let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                p.iter_mut()
                    .zip(&scores)
                    .for_each(|(p, s)| *p = (s - max).exp());
                let total = p.sum();
                p /= total;
            }
        }
        out
    }

    #[test]
    fn gradient_boosting_classification_predicts_as_the_learner() {
        for (k, seed) in [(2, 91), (3, 92)] {
            let task = if k == 2 {
                Task::Binary
            } else {
                Task::Multiclass
            };
            let (x, y) = class_data(150, 4, k, 1.0, true, seed);
            let params = hp(
                Algorithm::GradientBoosting,
                &[("n_estimators", int(30)), ("subsample", float(0.8))],
            );
            let estimator = fit(&params, &data(&x, &y, task, k), seed).unwrap();
            let learner = BoostingParams::new()
                .n_estimators(30)
                .subsample(0.8)
                .seed(seed)
                .check()
                .unwrap()
                .fit_classifier(x.view(), ArrayView1::from(&y))
                .unwrap();
            let Estimator::Boosting(b) = &estimator else {
                panic!()
            };
            let per_stage = if k == 2 { 1 } else { k };
            let loss = if k == 2 {
                Loss::BinaryLogLoss
            } else {
                Loss::MultinomialLogLoss
            };
            assert_eq!(
                (b.loss, b.init.len(), b.trees.len()),
                (loss, per_stage, 30 * per_stage)
            );
            let probe = probe_rows(&x, &b.trees, seed + 100);
            let theirs = learner.predict_proba(probe.view());
            // Bit for bit under the learner's arithmetic...
            assert_eq!(boosting_proba_as_learner(b, &probe, k), theirs);
            // ...and within rounding under the scorer's (which adds the trees one at a time
            // and writes the logistic differently for negative scores).
            let ours = classify(&estimator, &probe, k);
            assert_close(
                ours.as_slice().unwrap(),
                theirs.as_slice().unwrap(),
                4.0 * f64::EPSILON,
            );
            let labels: Vec<usize> = ours.outer_iter().map(argmax).collect();
            let learner_labels: Vec<usize> = learner
                .predict(probe.view())
                .iter()
                .map(|&c| c as usize)
                .collect();
            assert_eq!(labels, learner_labels);
            assert!(accuracy(&classify(&estimator, &x, k), &y) > 0.9);
        }
    }

    #[test]
    fn tree_hyperparameters_reach_the_learners() {
        let (x, y) = class_data(200, 9, 3, 0.5, true, 101);
        let d = data(&x, &y, Task::Multiclass, 3);
        // max_depth and min_samples_leaf
        let shallow = fit(
            &hp(Algorithm::DecisionTree, &[("max_depth", int(2))]),
            &d,
            0,
        )
        .unwrap();
        assert_eq!(depth(&trees_of(&shallow)[0]), 2);
        let coarse = fit(
            &hp(Algorithm::DecisionTree, &[("min_samples_leaf", int(40))]),
            &d,
            0,
        )
        .unwrap();
        let leaves = trees_of(&coarse)[0]
            .nodes
            .iter()
            .filter(|n| n.feature < 0)
            .count();
        assert!(leaves <= 200 / 40, "{leaves} leaves");
        let unlimited = fit(
            &hp(Algorithm::DecisionTree, &[("max_depth", ParamValue::Null)]),
            &d,
            0,
        )
        .unwrap();
        assert!(depth(&trees_of(&unlimited)[0]) > 2);
        // Every max_features form fits; a count above the columns is refused by name.
        for value in [
            ParamValue::Text("sqrt".into()),
            ParamValue::Text("log2".into()),
            ParamValue::Null,
            float(0.5),
            int(3),
        ] {
            let params = hp(
                Algorithm::RandomForest,
                &[("n_estimators", int(3)), ("max_features", value.clone())],
            );
            assert_eq!(trees_of(&fit(&params, &d, 0).unwrap()).len(), 3, "{value}");
        }
        let too_many = hp(Algorithm::RandomForest, &[("max_features", int(10))]);
        let err = fit(&too_many, &d, 0).unwrap_err();
        assert!(
            matches!(
                err,
                FitError::InvalidHyperparameter {
                    name: "max_features",
                    ..
                }
            ),
            "{err}"
        );
        // bootstrap = false with all features: every tree sees the same rows and columns.
        let params = hp(
            Algorithm::RandomForest,
            &[
                ("n_estimators", int(3)),
                ("bootstrap", ParamValue::Bool(false)),
                ("max_features", ParamValue::Null),
            ],
        );
        let forest = fit(&params, &d, 0).unwrap();
        let proba = classify(&forest, &x, 3);
        let single = classify(
            &fit(&hp(Algorithm::DecisionTree, &[]), &d, 0).unwrap(),
            &x,
            3,
        );
        assert_eq!(accuracy(&proba, &y), accuracy(&single, &y));
        // Defaults: 100 forest trees; boosting 100 stages of depth <= 3 at rate 0.1.
        assert_eq!(
            trees_of(&fit(&hp(Algorithm::RandomForest, &[]), &d, 0).unwrap()).len(),
            100
        );
        let Estimator::Boosting(b) = fit(&hp(Algorithm::GradientBoosting, &[]), &d, 0).unwrap()
        else {
            panic!()
        };
        assert_eq!((b.trees.len(), b.learning_rate), (300, 0.1));
        assert!(b.trees.iter().all(|t| depth(t) <= 3));
        // A criterion of the other task is refused.
        let err = fit(
            &hp(
                Algorithm::DecisionTree,
                &[("criterion", ParamValue::Text("squared_error".into()))],
            ),
            &d,
            0,
        )
        .unwrap_err();
        assert!(err.to_string().contains("criterion"), "{err}");
        let (xr, yr) = regression_data(30, 2, 0.1, false, 102);
        let err = fit(
            &hp(
                Algorithm::DecisionTree,
                &[("criterion", ParamValue::Text("gini".into()))],
            ),
            &data(&xr, &yr, Task::Regression, 0),
            0,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "hyperparameter 'criterion': 'gini' is for classification; a regression tree takes squared_error"
        );
    }

    #[test]
    fn tree_models_learn_separable_classes() {
        for algorithm in [
            Algorithm::DecisionTree,
            Algorithm::RandomForest,
            Algorithm::GradientBoosting,
        ] {
            let (x, y) = class_data(120, 3, 3, 8.0, false, 111);
            let estimator = fit(
                &hp(
                    algorithm,
                    &[("n_estimators", int(20))]
                        .into_iter()
                        .filter(|_| algorithm != Algorithm::DecisionTree)
                        .collect::<Vec<_>>(),
                ),
                &data(&x, &y, Task::Multiclass, 3),
                1,
            )
            .unwrap();
            let (probe, truth) = class_data(90, 3, 3, 8.0, false, 112);
            assert_eq!(
                accuracy(&classify(&estimator, &probe, 3), &truth),
                1.0,
                "{algorithm}"
            );
        }
    }

    // ----- the native model, determinism, errors ---------------------------------------------

    #[test]
    fn fitted_estimators_serve_through_a_native_model() {
        let (x, y) = class_data(90, 2, 3, 3.0, false, 121);
        for algorithm in [
            Algorithm::LogisticRegression,
            Algorithm::GaussianNb,
            Algorithm::RandomForest,
            Algorithm::GradientBoosting,
        ] {
            let estimator =
                fit(&hp(algorithm, &[]), &data(&x, &y, Task::Multiclass, 3), 4).unwrap();
            let identity = InputEncoding::Numeric {
                impute: 0.0,
                center: 0.0,
                scale: 1.0,
            };
            let model = NativeModel {
                format: refit_scorer::native::FORMAT.to_string(),
                info: ModelInfo {
                    task: Task::Multiclass,
                    features: vec!["a".into(), "b".into()],
                    classes: vec!["low".into(), "mid".into(), "high".into()],
                    kind: algorithm.to_string(),
                },
                encoder: Encoder {
                    inputs: vec![identity.clone(), identity],
                },
                estimator: estimator.clone(),
            };
            let model = NativeModel::from_json(&model.to_json()).unwrap();
            assert_eq!(model.estimator, estimator);
            let frame = FeatureFrame {
                rows: x.nrows(),
                columns: x
                    .columns()
                    .into_iter()
                    .map(|c| FeatureColumn::Numeric(c.to_vec()))
                    .collect(),
            };
            let predictions = model.predict(&frame).unwrap();
            assert_eq!(
                predictions.probabilities.unwrap(),
                classify(&estimator, &x, 3).into_raw_vec_and_offset().0
            );
            let right = predictions
                .values
                .iter()
                .zip(&y)
                .filter(|(p, t)| p == t)
                .count();
            assert!(
                right as f64 / y.len() as f64 > 0.9,
                "{algorithm}: {right}/{}",
                y.len()
            );
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_model_bytes() {
        let (xr, yr) = regression_data(80, 3, 0.5, true, 131);
        let (xb, yb) = class_data(80, 3, 2, 1.0, true, 132);
        let (xm, ym) = class_data(90, 3, 3, 1.0, true, 133);
        let cases = [
            (
                Algorithm::LinearRegression,
                data(&xr, &yr, Task::Regression, 0),
            ),
            (Algorithm::ElasticNet, data(&xr, &yr, Task::Regression, 0)),
            (
                Algorithm::LogisticRegression,
                data(&xb, &yb, Task::Binary, 2),
            ),
            (
                Algorithm::LogisticRegression,
                data(&xm, &ym, Task::Multiclass, 3),
            ),
            (Algorithm::GaussianNb, data(&xm, &ym, Task::Multiclass, 3)),
            (Algorithm::DecisionTree, data(&xm, &ym, Task::Multiclass, 3)),
            (Algorithm::RandomForest, data(&xr, &yr, Task::Regression, 0)),
            (Algorithm::RandomForest, data(&xb, &yb, Task::Binary, 2)),
            (
                Algorithm::GradientBoosting,
                data(&xm, &ym, Task::Multiclass, 3),
            ),
        ];
        for (algorithm, d) in &cases {
            let params = match algorithm {
                Algorithm::RandomForest | Algorithm::GradientBoosting => hp(
                    *algorithm,
                    &[("n_estimators", int(15)), ("subsample", float(0.6))][..if *algorithm
                        == Algorithm::RandomForest
                    {
                        1
                    } else {
                        2
                    }],
                ),
                _ => hp(*algorithm, &[]),
            };
            let a = fit(&params, d, 42).unwrap();
            let b = fit(&params, d, 42).unwrap();
            assert_eq!(a, b, "{algorithm}");
            assert_eq!(
                serde_json::to_vec(&a).unwrap(),
                serde_json::to_vec(&b).unwrap(),
                "{algorithm}"
            );
        }
        // The seed matters where there is randomness.
        let params = hp(Algorithm::RandomForest, &[("n_estimators", int(15))]);
        let d = data(&xb, &yb, Task::Binary, 2);
        assert_ne!(fit(&params, &d, 1).unwrap(), fit(&params, &d, 2).unwrap());
    }

    #[test]
    fn bad_training_data_is_refused_with_a_reason() {
        let (x, y) = class_data(20, 2, 3, 2.0, false, 141);
        let any = |a| hp(a, &[]);
        let message = |r: Result<Estimator, FitError>| r.unwrap_err().to_string();

        // One class, for every classifier.
        let ones = vec![1.0; 20];
        for algorithm in [
            Algorithm::LogisticRegression,
            Algorithm::GaussianNb,
            Algorithm::DecisionTree,
            Algorithm::RandomForest,
            Algorithm::GradientBoosting,
        ] {
            assert_eq!(
                message(fit(&any(algorithm), &data(&x, &ones, Task::Binary, 2), 0)),
                "the training data has one class (class 1); a classifier needs at least two",
                "{algorithm}"
            );
        }
        // n_classes that does not fit the task or the labels.
        assert_eq!(
            message(fit(
                &any(Algorithm::LogisticRegression),
                &data(&x, &y, Task::Binary, 3),
                0
            )),
            "a binary classification task needs exactly 2 classes, but n_classes is 3"
        );
        assert_eq!(
            message(fit(
                &any(Algorithm::GaussianNb),
                &data(&x, &y, Task::Multiclass, 2),
                0
            )),
            "a multiclass classification task needs at least 3 classes, but n_classes is 2"
        );
        let two: Vec<f64> = y.iter().map(|&v| v.min(1.0)).collect();
        assert_eq!(
            message(fit(
                &any(Algorithm::DecisionTree),
                &data(&x, &two, Task::Multiclass, 3),
                0
            )),
            "class 2 of 3 has no training rows"
        );
        assert_eq!(
            message(fit(
                &any(Algorithm::DecisionTree),
                &data(&x, &y, Task::Binary, 2),
                0
            )),
            "y[2] = 2 is not a class index in 0..2"
        );
        let mut fractional = y.clone();
        fractional[4] = 0.5;
        assert!(matches!(
            fit(
                &any(Algorithm::RandomForest),
                &data(&x, &fractional, Task::Multiclass, 3),
                0
            ),
            Err(FitError::InvalidLabel { row: 4, .. })
        ));
        // Too few rows, empty data, mismatched lengths.
        let one_row = x.slice(ndarray::s![..1, ..]).to_owned();
        assert_eq!(
            message(fit(
                &any(Algorithm::LinearRegression),
                &data(&one_row, &y[..1], Task::Regression, 0),
                0
            )),
            "the training data has 1 row(s); linear_regression needs at least 2"
        );
        let empty = Array2::<f64>::zeros((0, 2));
        assert!(matches!(
            fit(
                &any(Algorithm::DecisionTree),
                &data(&empty, &[], Task::Regression, 0),
                0
            ),
            Err(FitError::Empty {
                rows: 0,
                columns: 2
            })
        ));
        assert_eq!(
            message(fit(
                &any(Algorithm::DecisionTree),
                &data(&x, &y[..5], Task::Regression, 0),
                0
            )),
            "x has 20 rows but y has 5 values"
        );
        // Non-finite values.
        let mut bad_x = x.clone();
        bad_x[[7, 1]] = f64::NAN;
        assert_eq!(
            message(fit(
                &any(Algorithm::GaussianNb),
                &data(&bad_x, &y, Task::Multiclass, 3),
                0
            )),
            "x has a non-finite value (NaN) at row 7, column 1"
        );
        let mut bad_y = y.clone();
        bad_y[3] = f64::INFINITY;
        assert_eq!(
            message(fit(
                &any(Algorithm::ElasticNet),
                &data(&x, &bad_y, Task::Regression, 0),
                0
            )),
            "y has a non-finite value (inf) at row 3"
        );
        // An algorithm asked for a task it does not learn.
        assert_eq!(
            message(fit(
                &any(Algorithm::LinearRegression),
                &data(&x, &y, Task::Multiclass, 3),
                0
            )),
            "linear_regression cannot learn a multiclass classification task"
        );
        assert_eq!(
            message(fit(
                &any(Algorithm::GaussianNb),
                &data(&x, &y, Task::Regression, 0),
                0
            )),
            "gaussian_nb cannot learn a regression task"
        );
    }
}
