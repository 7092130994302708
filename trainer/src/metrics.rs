//! Evaluation metrics, computed the way scikit-learn computes them.
//!
//! Each function mirrors one scikit-learn function with its default options (named in its doc),
//! including the order of the floating-point operations: sums use numpy's pairwise summation
//! and ROC AUC integrates the same curve with the same trapezoids, so the results agree with
//! scikit-learn to the last bit, or within an ulp where numpy's `log` differs from the system's.
//! The unit tests check every value in `trainer/tests/fixtures/sklearn_metrics.json`, which
//! `gen_sklearn_metrics.py` beside it produces from the scikit-learn pinned in
//! `tests/python/requirements.txt`.
//!
//! Classes are `usize` labels `0..n_classes`; class probabilities are passed row-major, one row
//! of `n_classes` values per sample (`proba[i * n_classes + c]` is the probability of class `c`
//! for sample `i`), as `ndarray`'s `Array2::as_slice` gives them.
//!
//! Where scikit-learn returns NaN with an `UndefinedMetricWarning` (R² of a single sample, ROC
//! AUC when `y_true` holds one class) or raises, these functions return a [`MetricError`], so a
//! NaN never reaches a comparison in the promotion gate.
//!
//! ```
//! use refit_trainer::metrics::{self, Average};
//!
//! let f1 = metrics::f1(&[0, 1, 1, 0], &[0, 1, 0, 0], Average::Binary { positive: 1 })?;
//! assert!((f1 - 2.0 / 3.0).abs() < 1e-15);
//! # Ok::<(), metrics::MetricError>(())
//! ```

/// Why a metric could not be computed. Each message names the metric and the offending input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricError {
    /// No samples at all (scikit-learn raises).
    #[error("{metric}: no samples; at least one is needed")]
    Empty {
        /// The metric that was asked for.
        metric: &'static str,
    },
    /// An input's length does not match the number of samples in `y_true` (scikit-learn raises).
    #[error(
        "{metric}: {input} has {got} values but y_true has {samples} samples, so {expected} were expected"
    )]
    LengthMismatch {
        /// The metric that was asked for.
        metric: &'static str,
        /// The input whose length is wrong.
        input: &'static str,
        /// The number of samples in `y_true`.
        samples: usize,
        /// The length that input should have.
        expected: usize,
        /// The length it has.
        got: usize,
    },
    /// A NaN or an infinity in the inputs (scikit-learn raises).
    #[error("{metric}: {input}[{index}] is {value}; all values must be finite")]
    NonFinite {
        /// The metric that was asked for.
        metric: &'static str,
        /// The input holding the value.
        input: &'static str,
        /// Its position in that input.
        index: usize,
        /// The value itself.
        value: f64,
    },
    /// Fewer samples than the metric needs to be defined (scikit-learn returns NaN for R² of one
    /// sample).
    #[error("{metric}: {got} sample(s), but the metric is undefined with fewer than {needed}")]
    TooFewSamples {
        /// The metric that was asked for.
        metric: &'static str,
        /// The smallest number of samples for which it is defined.
        needed: usize,
        /// The number given.
        got: usize,
    },
    /// `n_classes` is too small for the metric.
    #[error("{metric}: n_classes is {got}, but this metric needs at least {needed}{hint}")]
    TooFewClasses {
        /// The metric that was asked for.
        metric: &'static str,
        /// The smallest number of classes it accepts.
        needed: usize,
        /// The number given.
        got: usize,
        /// What to use instead, if anything (starts with "; " when present).
        hint: &'static str,
    },
    /// A class label outside `0..n_classes` (scikit-learn raises for labels outside `labels`).
    #[error("{metric}: {input}[{index}] is class {label}, outside 0..{n_classes}")]
    LabelOutOfRange {
        /// The metric that was asked for.
        metric: &'static str,
        /// The input holding the label.
        input: &'static str,
        /// Its position in that input.
        index: usize,
        /// The label.
        label: usize,
        /// The number of classes, so valid labels are `0..n_classes`.
        n_classes: usize,
    },
    /// ROC AUC needs both positive and negative samples, for each class in one-vs-rest; with one
    /// class only, scikit-learn returns NaN with an `UndefinedMetricWarning`.
    #[error(
        "{metric}: class {class} {problem} in y_true, so its ROC curve (one class against the rest) is undefined"
    )]
    SingleClass {
        /// The metric that was asked for.
        metric: &'static str,
        /// The class that is absent, or is the only one present.
        class: usize,
        /// "never occurs" or "is the only class present".
        problem: &'static str,
    },
    /// `Average::Binary` with more than two distinct labels across `y_true` and `y_pred`
    /// (scikit-learn raises "Target is multiclass but average='binary'").
    #[error(
        "{metric}: average is Binary but y_true and y_pred hold more than two labels ({labels:?}, ...); use Average::Macro"
    )]
    NotBinary {
        /// The metric that was asked for.
        metric: &'static str,
        /// The first three distinct labels found.
        labels: [usize; 3],
    },
    /// `Average::Binary` whose positive label is not one of the two labels present
    /// (scikit-learn raises "pos_label=... is not a valid label").
    #[error("{metric}: positive label {positive} is neither of the two labels present, {labels:?}")]
    PositiveLabelAbsent {
        /// The metric that was asked for.
        metric: &'static str,
        /// The positive label asked for.
        positive: usize,
        /// The two labels present.
        labels: [usize; 2],
    },
    /// A probability below 0 or above 1 (scikit-learn's `log_loss` raises).
    #[error("{metric}: proba of class {class} for sample {sample} is {value}, outside [0, 1]")]
    ProbabilityOutOfRange {
        /// The metric that was asked for.
        metric: &'static str,
        /// The sample (row).
        sample: usize,
        /// The class (column).
        class: usize,
        /// The value.
        value: f64,
    },
    /// A row of class probabilities that does not sum to 1 within numpy's `allclose`
    /// (scikit-learn's multiclass `roc_auc_score` raises).
    #[error("{metric}: the probabilities of sample {sample} sum to {sum}, not 1")]
    RowNotNormalised {
        /// The metric that was asked for.
        metric: &'static str,
        /// The sample (row).
        sample: usize,
        /// The row's sum.
        sum: f64,
    },
}

/// How `precision`, `recall` and `f1` turn per-class counts into one number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Average {
    /// scikit-learn's `average="binary", pos_label=positive`: the score of the positive class
    /// alone. As in scikit-learn, `y_true` and `y_pred` together may hold at most two distinct
    /// labels, and when they hold two, `positive` must be one of them.
    Binary {
        /// The label of the positive class.
        positive: usize,
    },
    /// scikit-learn's `average="macro", labels=range(n_classes)`: the unweighted mean of the
    /// per-class scores over ALL classes `0..n_classes`, including classes that never occur in
    /// `y_true` or `y_pred` (each such class scores 0, as `zero_division` does by default), so a
    /// missing class lowers the mean. Labels must lie in `0..n_classes`.
    Macro {
        /// The number of classes.
        n_classes: usize,
    },
}

// --- regression -------------------------------------------------------------------------------

/// Root mean squared error: scikit-learn's `root_mean_squared_error(y_true, y_pred)`, which is
/// `sqrt(mean_squared_error(y_true, y_pred))` (no sample weights, one output).
pub fn rmse(y_true: &[f64], y_pred: &[f64]) -> Result<f64, MetricError> {
    check_regression("rmse", y_true, y_pred)?;
    let squared: Vec<f64> = y_true
        .iter()
        .zip(y_pred)
        .map(|(t, p)| (t - p) * (t - p))
        .collect();
    Ok(mean(&squared).sqrt())
}

/// Mean absolute error: scikit-learn's `mean_absolute_error(y_true, y_pred)` (no sample weights,
/// one output).
pub fn mae(y_true: &[f64], y_pred: &[f64]) -> Result<f64, MetricError> {
    check_regression("mae", y_true, y_pred)?;
    let absolute: Vec<f64> = y_true
        .iter()
        .zip(y_pred)
        .map(|(t, p)| (p - t).abs())
        .collect();
    Ok(mean(&absolute))
}

/// Coefficient of determination R²: scikit-learn's `r2_score(y_true, y_pred)` with its default
/// `force_finite=True`: `1 - SS_res / SS_tot`, except that perfect predictions (`SS_res == 0`)
/// score 1.0 and imperfect predictions of a constant `y_true` (`SS_tot == 0`) score 0.0.
///
/// "Constant" means exactly what scikit-learn computes: `SS_tot` is the sum of squared
/// deviations from numpy's float mean, and that mean is not always exactly the common value
/// (the mean of three `0.1` is `0.10000000000000002`), in which case `SS_tot` is tiny but not 0
/// and R² is a huge negative number, as in scikit-learn.
///
/// scikit-learn returns NaN (with a warning) for a single sample; this returns
/// [`MetricError::TooFewSamples`].
pub fn r2(y_true: &[f64], y_pred: &[f64]) -> Result<f64, MetricError> {
    const METRIC: &str = "r2";
    check_regression(METRIC, y_true, y_pred)?;
    if y_true.len() < 2 {
        return Err(MetricError::TooFewSamples {
            metric: METRIC,
            needed: 2,
            got: y_true.len(),
        });
    }
    let residuals: Vec<f64> = y_true
        .iter()
        .zip(y_pred)
        .map(|(t, p)| (t - p) * (t - p))
        .collect();
    let centre = mean(y_true);
    let deviations: Vec<f64> = y_true.iter().map(|t| (t - centre) * (t - centre)).collect();
    let (numerator, denominator) = (sum(&residuals), sum(&deviations));
    Ok(if numerator == 0.0 {
        1.0
    } else if denominator == 0.0 {
        0.0
    } else {
        1.0 - numerator / denominator
    })
}

// --- classification from labels ---------------------------------------------------------------

/// Fraction of samples whose predicted label equals the true one: scikit-learn's
/// `accuracy_score(y_true, y_pred)` (`normalize=True`, no sample weights).
pub fn accuracy(y_true: &[usize], y_pred: &[usize]) -> Result<f64, MetricError> {
    check_lengths("accuracy", y_true.len(), "y_pred", y_pred.len(), 1)?;
    let correct = y_true.iter().zip(y_pred).filter(|(t, p)| t == p).count();
    Ok(correct as f64 / y_true.len() as f64)
}

/// Precision `tp / (tp + fp)`: scikit-learn's `precision_score(y_true, y_pred, ...)` with
/// `average="binary", pos_label=positive` or `average="macro", labels=range(n_classes)` (see
/// [`Average`]) and the default `zero_division="warn"`: a class that is never predicted has
/// precision 0.0.
pub fn precision(y_true: &[usize], y_pred: &[usize], average: Average) -> Result<f64, MetricError> {
    let counts = class_counts("precision", y_true, y_pred, average)?;
    Ok(average_scores(
        counts.iter().map(|c| prf_divide(c.tp, c.predicted)),
    ))
}

/// Recall `tp / (tp + fn)`: scikit-learn's `recall_score(y_true, y_pred, ...)` with
/// `average="binary", pos_label=positive` or `average="macro", labels=range(n_classes)` (see
/// [`Average`]) and the default `zero_division="warn"`: a class absent from `y_true` has recall
/// 0.0.
pub fn recall(y_true: &[usize], y_pred: &[usize], average: Average) -> Result<f64, MetricError> {
    let counts = class_counts("recall", y_true, y_pred, average)?;
    Ok(average_scores(
        counts.iter().map(|c| prf_divide(c.tp, c.actual)),
    ))
}

/// F1 score `2 tp / (2 tp + fp + fn)`: scikit-learn's `f1_score(y_true, y_pred, ...)` with
/// `average="binary", pos_label=positive` or `average="macro", labels=range(n_classes)` (see
/// [`Average`]) and the default `zero_division="warn"`: a class neither present nor predicted
/// scores 0.0. Like scikit-learn, it is computed from the counts, not from precision and recall.
pub fn f1(y_true: &[usize], y_pred: &[usize], average: Average) -> Result<f64, MetricError> {
    let counts = class_counts("f1", y_true, y_pred, average)?;
    Ok(average_scores(counts.iter().map(|c| {
        // scikit-learn: (1 + beta²) tp / (beta² (tp + fn) + (tp + fp)) with beta = 1.
        let denominator = 1.0 * c.actual as f64 + c.predicted as f64;
        if denominator == 0.0 {
            0.0
        } else {
            2.0 * c.tp as f64 / denominator
        }
    })))
}

// --- classification from scores and probabilities -----------------------------------------

/// Area under the ROC curve of a binary problem: scikit-learn's
/// `roc_auc_score(y_true, score_of_positive)`. `y_true` holds 0 (negative) or 1 (positive);
/// a higher score means more likely positive.
///
/// Tied scores form one point of the curve, so a tie between a positive and a negative counts
/// half: the area equals the Mann–Whitney U statistic with average ranks, divided by
/// `positives × negatives`. It is computed as scikit-learn does: the ROC curve with collinear
/// points dropped, then the trapezoidal rule.
///
/// scikit-learn returns NaN (with a warning) when `y_true` holds only one class; this returns
/// [`MetricError::SingleClass`].
pub fn roc_auc_binary(y_true: &[usize], score_of_positive: &[f64]) -> Result<f64, MetricError> {
    const METRIC: &str = "roc_auc_binary";
    check_lengths(
        METRIC,
        y_true.len(),
        "score_of_positive",
        score_of_positive.len(),
        1,
    )?;
    check_labels(METRIC, "y_true", y_true, 2)?;
    check_finite(METRIC, "score_of_positive", score_of_positive)?;
    let positive: Vec<bool> = y_true.iter().map(|&label| label == 1).collect();
    match positive.iter().filter(|&&p| p).count() {
        0 => Err(MetricError::SingleClass {
            metric: METRIC,
            class: 1,
            problem: "never occurs",
        }),
        n if n == positive.len() => Err(MetricError::SingleClass {
            metric: METRIC,
            class: 1,
            problem: "is the only class present",
        }),
        _ => Ok(binary_roc_auc(&positive, score_of_positive)),
    }
}

/// One-vs-rest ROC AUC averaged over classes: scikit-learn's
/// `roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=range(n_classes))`.
/// `proba` is row-major, `n_classes` values per sample; each row must sum to 1 within numpy's
/// `allclose` (|1 - sum| ≤ 1e-8 + 1e-5 |sum|), as scikit-learn requires, but values are not
/// otherwise checked to lie in [0, 1].
///
/// For each class `c`, the binary ROC AUC of "is `c`" against column `c` (see
/// [`roc_auc_binary`]); the result is their unweighted mean. Every class must occur in `y_true`
/// and none may be the only one present (scikit-learn returns NaN there; this returns
/// [`MetricError::SingleClass`]). scikit-learn rejects two-column `proba`, so `n_classes` must be
/// at least 3: for two classes use [`roc_auc_binary`] with the positive class's column.
pub fn roc_auc_ovr_macro(
    y_true: &[usize],
    proba: &[f64],
    n_classes: usize,
) -> Result<f64, MetricError> {
    const METRIC: &str = "roc_auc_ovr_macro";
    if n_classes < 3 {
        return Err(MetricError::TooFewClasses {
            metric: METRIC,
            needed: 3,
            got: n_classes,
            hint: "; for two classes use roc_auc_binary with the positive class's column",
        });
    }
    check_proba(METRIC, y_true, proba, n_classes)?;
    for (sample, row) in proba.chunks_exact(n_classes).enumerate() {
        let total = sum(row);
        if (1.0 - total).abs() > 1e-8 + 1e-5 * total.abs() {
            return Err(MetricError::RowNotNormalised {
                metric: METRIC,
                sample,
                sum: total,
            });
        }
    }
    let mut occurrences = vec![0_usize; n_classes];
    for &label in y_true {
        occurrences[label] += 1;
    }
    if let Some(class) = occurrences.iter().position(|&n| n == 0) {
        return Err(MetricError::SingleClass {
            metric: METRIC,
            class,
            problem: "never occurs",
        });
    }
    if let Some(class) = occurrences.iter().position(|&n| n == y_true.len()) {
        return Err(MetricError::SingleClass {
            metric: METRIC,
            class,
            problem: "is the only class present",
        });
    }
    let per_class: Vec<f64> = (0..n_classes)
        .map(|class| {
            let is_class: Vec<bool> = y_true.iter().map(|&label| label == class).collect();
            let column: Vec<f64> = proba
                .iter()
                .skip(class)
                .step_by(n_classes)
                .copied()
                .collect();
            binary_roc_auc(&is_class, &column)
        })
        .collect();
    Ok(mean(&per_class))
}

/// Mean negative log-likelihood of the true class: scikit-learn's
/// `log_loss(y_true, proba, labels=range(n_classes))` (`normalize=True`, no sample weights).
/// `proba` is row-major, `n_classes` values per sample, each in [0, 1].
///
/// As current scikit-learn does, each probability is clipped to `[eps, 1 - eps]` with `eps` the
/// machine epsilon of f64 (`f64::EPSILON`, about 2.2e-16), so a certain, correct prediction
/// costs `-ln(1 - eps)` ≈ 2.2e-16 and a certain, wrong one `-ln(eps)` ≈ 36.04. Rows are NOT
/// renormalised: scikit-learn only warns when a row does not sum to 1, and uses it as given.
/// (Older scikit-learn clipped at a fixed 1e-15 and renormalised each row.)
pub fn log_loss(y_true: &[usize], proba: &[f64], n_classes: usize) -> Result<f64, MetricError> {
    const METRIC: &str = "log_loss";
    if n_classes < 2 {
        return Err(MetricError::TooFewClasses {
            metric: METRIC,
            needed: 2,
            got: n_classes,
            hint: "",
        });
    }
    check_proba(METRIC, y_true, proba, n_classes)?;
    if let Some(index) = proba.iter().position(|p| !(0.0..=1.0).contains(p)) {
        return Err(MetricError::ProbabilityOutOfRange {
            metric: METRIC,
            sample: index / n_classes,
            class: index % n_classes,
            value: proba[index],
        });
    }
    let losses: Vec<f64> = y_true
        .iter()
        .zip(proba.chunks_exact(n_classes))
        .map(|(&label, row)| -row[label].clamp(f64::EPSILON, 1.0 - f64::EPSILON).ln())
        .collect();
    Ok(mean(&losses))
}

// --- shared pieces ----------------------------------------------------------------------------

/// True positives, predicted positives (tp + fp) and actual positives (tp + fn) of one class.
#[derive(Debug, Clone, Copy, Default)]
struct ClassCounts {
    tp: usize,
    predicted: usize,
    actual: usize,
}

/// Per-class counts for the classes `average` scores: the positive class, or all of
/// `0..n_classes`. Validates the inputs as scikit-learn's `_check_set_wise_labels` does.
fn class_counts(
    metric: &'static str,
    y_true: &[usize],
    y_pred: &[usize],
    average: Average,
) -> Result<Vec<ClassCounts>, MetricError> {
    check_lengths(metric, y_true.len(), "y_pred", y_pred.len(), 1)?;
    let count = |class: usize| {
        let mut counts = ClassCounts::default();
        for (&t, &p) in y_true.iter().zip(y_pred) {
            counts.tp += usize::from(t == class && p == class);
            counts.predicted += usize::from(p == class);
            counts.actual += usize::from(t == class);
        }
        counts
    };
    match average {
        Average::Binary { positive } => {
            let mut present: Vec<usize> = Vec::with_capacity(3);
            for &label in y_true.iter().chain(y_pred) {
                if !present.contains(&label) {
                    present.push(label);
                    if present.len() == 3 {
                        return Err(MetricError::NotBinary {
                            metric,
                            labels: [present[0], present[1], present[2]],
                        });
                    }
                }
            }
            if present.len() == 2 && !present.contains(&positive) {
                present.sort_unstable();
                return Err(MetricError::PositiveLabelAbsent {
                    metric,
                    positive,
                    labels: [present[0], present[1]],
                });
            }
            Ok(vec![count(positive)])
        }
        Average::Macro { n_classes } => {
            if n_classes == 0 {
                return Err(MetricError::TooFewClasses {
                    metric,
                    needed: 1,
                    got: 0,
                    hint: "",
                });
            }
            check_labels(metric, "y_true", y_true, n_classes)?;
            check_labels(metric, "y_pred", y_pred, n_classes)?;
            let mut counts = vec![ClassCounts::default(); n_classes];
            for (&t, &p) in y_true.iter().zip(y_pred) {
                counts[t].actual += 1;
                counts[p].predicted += 1;
                if t == p {
                    counts[t].tp += 1;
                }
            }
            Ok(counts)
        }
    }
}

/// scikit-learn's `_prf_divide` with `zero_division="warn"`: 0.0 where the denominator is 0.
fn prf_divide(numerator: usize, denominator: usize) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}

/// The mean of per-class scores, as scikit-learn's `_nanaverage` (numpy's `nanmean`) takes it;
/// for `Average::Binary` there is one score and the mean is that score.
fn average_scores(scores: impl Iterator<Item = f64>) -> f64 {
    mean(&scores.collect::<Vec<_>>())
}

/// ROC AUC of one binary problem, step for step as scikit-learn's `roc_curve` (with its default
/// `drop_intermediate=True`) followed by `auc` (numpy's `trapezoid`). Both classes must occur.
fn binary_roc_auc(positive: &[bool], score: &[f64]) -> f64 {
    // Sort by decreasing score. Scores are finite, so partial_cmp never fails; within a tie the
    // order does not matter, since only the last index of each run of equal scores is used.
    let mut order: Vec<usize> = (0..score.len()).collect();
    order.sort_by(|&a, &b| {
        score[b]
            .partial_cmp(&score[a])
            .unwrap_or(std::cmp::Ordering::Equal)
    });

    // One threshold per distinct score: true and false positives at or above it.
    let (mut tps, mut fps) = (Vec::new(), Vec::new());
    let mut true_positives = 0.0;
    for (rank, &i) in order.iter().enumerate() {
        if positive[i] {
            true_positives += 1.0;
        }
        if order
            .get(rank + 1)
            .is_none_or(|&next| score[next] != score[i])
        {
            tps.push(true_positives);
            fps.push(1.0 + rank as f64 - true_positives);
        }
    }

    // Drop the points that lie on a straight line between their neighbours (zero second
    // difference in both counts), then start the curve at (0, 0).
    let keep = |j: usize| {
        j == 0
            || j + 1 == tps.len()
            || (fps[j + 1] - fps[j]) - (fps[j] - fps[j - 1]) != 0.0
            || (tps[j + 1] - tps[j]) - (tps[j] - tps[j - 1]) != 0.0
    };
    let kept: Vec<usize> = if tps.len() > 2 {
        (0..tps.len()).filter(|&j| keep(j)).collect()
    } else {
        (0..tps.len()).collect()
    };
    let (total_tp, total_fp) = (tps[tps.len() - 1], fps[fps.len() - 1]);
    let tpr: Vec<f64> = std::iter::once(0.0)
        .chain(kept.iter().map(|&j| tps[j] / total_tp))
        .collect();
    let fpr: Vec<f64> = std::iter::once(0.0)
        .chain(kept.iter().map(|&j| fps[j] / total_fp))
        .collect();

    // numpy's trapezoid: sum of (x[i+1] - x[i]) * (y[i+1] + y[i]) / 2.
    let areas: Vec<f64> = (0..fpr.len() - 1)
        .map(|i| (fpr[i + 1] - fpr[i]) * (tpr[i + 1] + tpr[i]) / 2.0)
        .collect();
    sum(&areas)
}

fn check_regression(
    metric: &'static str,
    y_true: &[f64],
    y_pred: &[f64],
) -> Result<(), MetricError> {
    check_lengths(metric, y_true.len(), "y_pred", y_pred.len(), 1)?;
    check_finite(metric, "y_true", y_true)?;
    check_finite(metric, "y_pred", y_pred)
}

/// Inputs of the probability metrics: lengths, finite values, labels in range.
fn check_proba(
    metric: &'static str,
    y_true: &[usize],
    proba: &[f64],
    n_classes: usize,
) -> Result<(), MetricError> {
    check_lengths(metric, y_true.len(), "proba", proba.len(), n_classes)?;
    check_finite(metric, "proba", proba)?;
    check_labels(metric, "y_true", y_true, n_classes)
}

/// `input` must hold `per_sample` values for each of the `samples`, and there must be samples.
fn check_lengths(
    metric: &'static str,
    samples: usize,
    input: &'static str,
    got: usize,
    per_sample: usize,
) -> Result<(), MetricError> {
    let expected = samples * per_sample;
    if got != expected {
        return Err(MetricError::LengthMismatch {
            metric,
            input,
            samples,
            expected,
            got,
        });
    }
    if samples == 0 {
        return Err(MetricError::Empty { metric });
    }
    Ok(())
}

fn check_finite(
    metric: &'static str,
    input: &'static str,
    values: &[f64],
) -> Result<(), MetricError> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(MetricError::NonFinite {
            metric,
            input,
            index,
            value: values[index],
        }),
        None => Ok(()),
    }
}

fn check_labels(
    metric: &'static str,
    input: &'static str,
    labels: &[usize],
    n_classes: usize,
) -> Result<(), MetricError> {
    match labels.iter().position(|&label| label >= n_classes) {
        Some(index) => Err(MetricError::LabelOutOfRange {
            metric,
            input,
            index,
            label: labels[index],
            n_classes,
        }),
        None => Ok(()),
    }
}

/// numpy's `mean` of a 1-D float64 array: its pairwise sum divided by the count.
fn mean(values: &[f64]) -> f64 {
    sum(values) / values.len() as f64
}

/// numpy's `sum` of a contiguous float64 array, bit for bit: pairwise summation
/// (`pairwise_sum_DOUBLE` in numpy's `loops_utils.h.src`), which sums runs of up to 128 values
/// in eight interleaved accumulators and splits longer runs in two. A plain left-to-right sum
/// differs in the last bits, and that matters where scikit-learn compares a sum with 0
/// (`r2`'s constant-target rule).
fn sum(values: &[f64]) -> f64 {
    const BLOCK: usize = 128;
    let n = values.len();
    if n < 8 {
        values.iter().fold(0.0, |acc, v| acc + v)
    } else if n <= BLOCK {
        let mut r = [0.0; 8];
        r.copy_from_slice(&values[..8]);
        let whole = n - n % 8;
        for chunk in values[8..whole].chunks_exact(8) {
            for (acc, v) in r.iter_mut().zip(chunk) {
                *acc += v;
            }
        }
        let mut total = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for v in &values[whole..] {
            total += v;
        }
        total
    } else {
        let half = n / 2;
        let half = half - half % 8;
        sum(&values[..half]) + sum(&values[half..])
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    // --- against scikit-learn -----------------------------------------------------------------

    /// trainer/tests/fixtures/sklearn_metrics.json, written by gen_sklearn_metrics.py beside it.
    #[derive(Deserialize)]
    struct Fixture {
        sklearn_version: String,
        cases: Vec<Case>,
    }

    #[derive(Deserialize)]
    struct Case {
        name: String,
        #[serde(flatten)]
        input: Input,
        /// Metric name → scikit-learn's value; `None` where scikit-learn gives no number.
        expected: BTreeMap<String, Option<f64>>,
    }

    #[derive(Deserialize)]
    #[serde(tag = "kind", rename_all = "snake_case")]
    enum Input {
        Regression {
            y_true: Vec<f64>,
            y_pred: Vec<f64>,
        },
        Labels {
            y_true: Vec<usize>,
            y_pred: Vec<usize>,
            average: FixtureAverage,
        },
        BinaryScores {
            y_true: Vec<usize>,
            score: Vec<f64>,
        },
        Proba {
            y_true: Vec<usize>,
            n_classes: usize,
            proba: Vec<f64>,
        },
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum FixtureAverage {
        Binary { positive: usize },
        Macro { n_classes: usize },
    }

    impl From<&FixtureAverage> for Average {
        fn from(average: &FixtureAverage) -> Self {
            match *average {
                FixtureAverage::Binary { positive } => Average::Binary { positive },
                FixtureAverage::Macro { n_classes } => Average::Macro { n_classes },
            }
        }
    }

    fn fixture() -> Fixture {
        serde_json::from_str(include_str!("../tests/fixtures/sklearn_metrics.json"))
            .expect("fixture parses")
    }

    fn evaluate(input: &Input, metric: &str) -> Result<f64, MetricError> {
        match (input, metric) {
            (Input::Regression { y_true, y_pred }, "rmse") => rmse(y_true, y_pred),
            (Input::Regression { y_true, y_pred }, "mae") => mae(y_true, y_pred),
            (Input::Regression { y_true, y_pred }, "r2") => r2(y_true, y_pred),
            (Input::Labels { y_true, y_pred, .. }, "accuracy") => accuracy(y_true, y_pred),
            (
                Input::Labels {
                    y_true,
                    y_pred,
                    average,
                },
                "precision",
            ) => precision(y_true, y_pred, average.into()),
            (
                Input::Labels {
                    y_true,
                    y_pred,
                    average,
                },
                "recall",
            ) => recall(y_true, y_pred, average.into()),
            (
                Input::Labels {
                    y_true,
                    y_pred,
                    average,
                },
                "f1",
            ) => f1(y_true, y_pred, average.into()),
            (Input::BinaryScores { y_true, score }, "roc_auc_binary") => {
                roc_auc_binary(y_true, score)
            }
            (
                Input::Proba {
                    y_true,
                    n_classes,
                    proba,
                },
                "roc_auc_ovr_macro",
            ) => roc_auc_ovr_macro(y_true, proba, *n_classes),
            (
                Input::Proba {
                    y_true,
                    n_classes,
                    proba,
                },
                "log_loss",
            ) => log_loss(y_true, proba, *n_classes),
            _ => panic!("the fixture asks for {metric} on an input this test cannot give it"),
        }
    }

    /// Checks every expected value of the cases of one kind; returns how many it checked.
    /// Integer-like values (0, 1, ...) must match exactly, others to 1e-12 relative; where
    /// scikit-learn gives no number, the function must return an error.
    fn check_cases(kind: fn(&Input) -> bool) -> usize {
        let mut failures = Vec::new();
        let mut checked = 0;
        for case in fixture().cases.iter().filter(|case| kind(&case.input)) {
            for (metric, expected) in &case.expected {
                checked += 1;
                let got = evaluate(&case.input, metric);
                let ok = match (expected, &got) {
                    (Some(want), Ok(got)) if want.fract() == 0.0 => got == want,
                    (Some(want), Ok(got)) => (got - want).abs() <= 1e-12 * want.abs(),
                    (None, Err(_)) => true,
                    _ => false,
                };
                if !ok {
                    failures.push(format!(
                        "{} / {metric}: sklearn {expected:?}, refit {got:?}",
                        case.name
                    ));
                }
            }
        }
        assert!(
            failures.is_empty(),
            "{} mismatches:\n{}",
            failures.len(),
            failures.join("\n")
        );
        checked
    }

    #[test]
    fn fixture_is_from_scikit_learn_and_large_enough() {
        let fixture = fixture();
        assert!(
            fixture.sklearn_version.starts_with("1."),
            "sklearn {}",
            fixture.sklearn_version
        );
        assert!(fixture.cases.len() >= 25, "{} cases", fixture.cases.len());
        let values: usize = fixture.cases.iter().map(|case| case.expected.len()).sum();
        assert!(values >= 100, "{values} expected values");
    }

    #[test]
    fn regression_matches_scikit_learn() {
        assert!(check_cases(|input| matches!(input, Input::Regression { .. })) >= 30);
    }

    #[test]
    fn label_metrics_match_scikit_learn() {
        assert!(check_cases(|input| matches!(input, Input::Labels { .. })) >= 60);
    }

    #[test]
    fn binary_roc_auc_matches_scikit_learn() {
        assert!(check_cases(|input| matches!(input, Input::BinaryScores { .. })) >= 8);
    }

    #[test]
    fn probability_metrics_match_scikit_learn() {
        assert!(check_cases(|input| matches!(input, Input::Proba { .. })) >= 18);
    }

    // --- by hand ------------------------------------------------------------------------------

    fn close(got: f64, want: f64) {
        assert!(
            (got - want).abs() <= 1e-15 * want.abs().max(1.0),
            "got {got}, want {want}"
        );
    }

    #[test]
    fn sum_and_mean_follow_numpy_pairwise_summation() {
        // Left to right, ten 0.1 add up to 0.9999999999999999; numpy's eight accumulators give 1.0.
        assert_eq!(sum(&[0.1; 10]), 1.0);
        assert_eq!([0.1; 10].iter().sum::<f64>(), 0.9999999999999999);
        assert_eq!(mean(&[0.1; 3]), 0.10000000000000002);
        assert_eq!(sum(&[]), 0.0);
        let long: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert_eq!(sum(&long), 500_500.0);
    }

    #[test]
    fn regression_by_hand() {
        // scikit-learn's docstring example.
        let (y_true, y_pred) = ([3.0, -0.5, 2.0, 7.0], [2.5, 0.0, 2.0, 8.0]);
        close(rmse(&y_true, &y_pred).unwrap(), 0.375_f64.sqrt());
        close(mae(&y_true, &y_pred).unwrap(), 0.5);
        // SS_res = 1.5, mean 2.875, SS_tot = 29.1875.
        close(r2(&y_true, &y_pred).unwrap(), 1.0 - 1.5 / 29.1875);
        assert_eq!(r2(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]).unwrap(), -3.0);
    }

    #[test]
    fn r2_conventions_for_constant_targets() {
        assert_eq!(r2(&[4.0; 5], &[4.0; 5]).unwrap(), 1.0);
        assert_eq!(r2(&[4.0; 5], &[4.0, 4.0, 4.5, 4.0, 4.0]).unwrap(), 0.0);
        assert_eq!(r2(&[1.0, 2.0], &[1.0, 2.0]).unwrap(), 1.0);
        // numpy's mean of three 0.1 is not 0.1, so SS_tot is ~1e-33 rather than 0.
        assert!(r2(&[0.1; 3], &[0.11, 0.09, 0.1]).unwrap() < -1e28);
    }

    #[test]
    fn regression_rejects_bad_input() {
        assert_eq!(
            r2(&[1.5], &[1.0]),
            Err(MetricError::TooFewSamples {
                metric: "r2",
                needed: 2,
                got: 1
            })
        );
        assert_eq!(rmse(&[], &[]), Err(MetricError::Empty { metric: "rmse" }));
        assert_eq!(
            mae(&[1.0, 2.0], &[1.0]),
            Err(MetricError::LengthMismatch {
                metric: "mae",
                input: "y_pred",
                samples: 2,
                expected: 2,
                got: 1
            })
        );
        match rmse(&[1.0, 2.0, 3.0], &[1.0, f64::NAN, 3.0]) {
            Err(MetricError::NonFinite {
                metric: "rmse",
                input: "y_pred",
                index: 1,
                value,
            }) => assert!(value.is_nan()),
            other => panic!("expected NonFinite, got {other:?}"),
        }
        assert!(matches!(
            r2(&[1.0, f64::INFINITY], &[1.0, 2.0]),
            Err(MetricError::NonFinite {
                input: "y_true",
                index: 1,
                ..
            })
        ));
        assert_eq!(
            rmse(&[1.0, 2.0], &[f64::NAN, 2.0]).unwrap_err().to_string(),
            "rmse: y_pred[0] is NaN; all values must be finite"
        );
    }

    #[test]
    fn accuracy_by_hand() {
        assert_eq!(accuracy(&[0, 1, 2, 2], &[0, 2, 2, 2]).unwrap(), 0.75);
        assert_eq!(accuracy(&[3], &[3]).unwrap(), 1.0);
        assert_eq!(
            accuracy(&[], &[]),
            Err(MetricError::Empty { metric: "accuracy" })
        );
    }

    #[test]
    fn binary_precision_recall_f1_by_hand() {
        // tp = 3, fp = 2, fn = 1.
        let (y_true, y_pred) = ([1, 1, 1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 1, 1, 0, 0]);
        let positive = Average::Binary { positive: 1 };
        assert_eq!(precision(&y_true, &y_pred, positive).unwrap(), 0.6);
        assert_eq!(recall(&y_true, &y_pred, positive).unwrap(), 0.75);
        close(f1(&y_true, &y_pred, positive).unwrap(), 2.0 / 3.0);
        // With 0 as the positive class: tp = 2, fp = 1, fn = 2.
        let negative = Average::Binary { positive: 0 };
        close(precision(&y_true, &y_pred, negative).unwrap(), 2.0 / 3.0);
        assert_eq!(recall(&y_true, &y_pred, negative).unwrap(), 0.5);
        close(f1(&y_true, &y_pred, negative).unwrap(), 4.0 / 7.0);
    }

    #[test]
    fn zero_division_scores_zero() {
        let positive = Average::Binary { positive: 1 };
        // Never predicted: precision 0/0.
        assert_eq!(precision(&[1, 0, 1], &[0, 0, 0], positive).unwrap(), 0.0);
        // Never present: recall 0/0.
        assert_eq!(recall(&[0, 0, 0], &[1, 0, 0], positive).unwrap(), 0.0);
        // Neither: f1 0/0; the label set {0} is still "binary".
        assert_eq!(f1(&[0, 0], &[0, 0], positive).unwrap(), 0.0);
    }

    #[test]
    fn macro_average_counts_every_class() {
        // Class 0: p 1/2, r 1/2, f 1/2. Class 1: p 2/3, r 1, f 4/5. Class 2: never predicted, 0.
        // Class 3: absent everywhere, 0. Means are over all four classes.
        let (y_true, y_pred) = ([0, 0, 1, 1, 2], [0, 1, 1, 1, 0]);
        let four = Average::Macro { n_classes: 4 };
        close(
            precision(&y_true, &y_pred, four).unwrap(),
            (0.5 + 2.0 / 3.0) / 4.0,
        );
        assert_eq!(recall(&y_true, &y_pred, four).unwrap(), 0.375);
        close(f1(&y_true, &y_pred, four).unwrap(), 0.325);
        let three = Average::Macro { n_classes: 3 };
        close(f1(&y_true, &y_pred, three).unwrap(), 1.3 / 3.0);
    }

    #[test]
    fn label_metrics_reject_bad_input() {
        assert_eq!(
            precision(&[0, 1, 2], &[0, 1, 1], Average::Binary { positive: 1 }),
            Err(MetricError::NotBinary {
                metric: "precision",
                labels: [0, 1, 2]
            })
        );
        assert_eq!(
            recall(&[0, 2], &[2, 0], Average::Binary { positive: 1 }),
            Err(MetricError::PositiveLabelAbsent {
                metric: "recall",
                positive: 1,
                labels: [0, 2]
            })
        );
        assert_eq!(
            f1(&[0, 1], &[0, 3], Average::Macro { n_classes: 3 }),
            Err(MetricError::LabelOutOfRange {
                metric: "f1",
                input: "y_pred",
                index: 1,
                label: 3,
                n_classes: 3
            })
        );
        assert_eq!(
            f1(&[0], &[0], Average::Macro { n_classes: 0 }),
            Err(MetricError::TooFewClasses {
                metric: "f1",
                needed: 1,
                got: 0,
                hint: ""
            })
        );
        assert_eq!(
            precision(&[], &[], Average::Macro { n_classes: 2 }),
            Err(MetricError::Empty {
                metric: "precision"
            })
        );
        assert_eq!(
            f1(&[0, 1, 2], &[0, 1, 1], Average::Binary { positive: 1 })
                .unwrap_err()
                .to_string(),
            "f1: average is Binary but y_true and y_pred hold more than two labels ([0, 1, 2], ...); use Average::Macro"
        );
    }

    /// Mann–Whitney U with average ranks for ties, divided by positives × negatives.
    fn mann_whitney_auc(y_true: &[usize], score: &[f64]) -> f64 {
        let mut order: Vec<usize> = (0..score.len()).collect();
        order.sort_by(|&a, &b| score[a].total_cmp(&score[b]));
        let mut ranks = vec![0.0; score.len()];
        let mut start = 0;
        while start < order.len() {
            let mut end = start;
            while end + 1 < order.len() && score[order[end + 1]] == score[order[start]] {
                end += 1;
            }
            let average_rank = (start + end) as f64 / 2.0 + 1.0;
            for &i in &order[start..=end] {
                ranks[i] = average_rank;
            }
            start = end + 1;
        }
        let positives = y_true.iter().filter(|&&y| y == 1).count() as f64;
        let negatives = y_true.len() as f64 - positives;
        let rank_sum: f64 = y_true
            .iter()
            .zip(&ranks)
            .filter(|(y, _)| **y == 1)
            .map(|(_, r)| r)
            .sum();
        (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
    }

    #[test]
    fn roc_auc_binary_by_hand() {
        // scikit-learn's docstring example.
        assert_eq!(
            roc_auc_binary(&[0, 0, 1, 1], &[0.1, 0.4, 0.35, 0.8]).unwrap(),
            0.75
        );
        // A tie between a positive and a negative counts half.
        assert_eq!(roc_auc_binary(&[0, 1], &[0.5, 0.5]).unwrap(), 0.5);
        assert_eq!(roc_auc_binary(&[1, 0, 1], &[0.5, 0.5, 0.9]).unwrap(), 0.75);
        assert_eq!(
            roc_auc_binary(&[1, 1, 0, 0], &[0.9, 0.8, 0.1, 0.2]).unwrap(),
            1.0
        );
        assert_eq!(
            roc_auc_binary(&[1, 1, 0, 0], &[0.1, 0.2, 0.9, 0.8]).unwrap(),
            0.0
        );
        // -0.0 and 0.0 are one tied score.
        assert_eq!(roc_auc_binary(&[0, 1], &[-0.0, 0.0]).unwrap(), 0.5);
    }

    #[test]
    fn roc_auc_binary_equals_mann_whitney_with_average_ranks() {
        // A small deterministic generator, so the test needs no dependency.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..20 {
            let n = 5 + round * 37;
            let y_true: Vec<usize> = (0..n)
                .map(|i| if i < 2 { i } else { (next() % 2) as usize })
                .collect();
            // Scores on a coarse grid so there are many ties, shifted up for positives.
            let score: Vec<f64> = y_true
                .iter()
                .map(|&y| (next() % 20) as f64 / 10.0 + y as f64 * 0.3)
                .collect();
            let got = roc_auc_binary(&y_true, &score).unwrap();
            let want = mann_whitney_auc(&y_true, &score);
            assert!(
                (got - want).abs() <= 1e-12,
                "n = {n}: trapezoid {got}, Mann–Whitney {want}"
            );
        }
    }

    #[test]
    fn roc_auc_binary_rejects_bad_input() {
        assert!(matches!(
            roc_auc_binary(&[1, 1, 1], &[0.1, 0.2, 0.3]),
            Err(MetricError::SingleClass {
                class: 1,
                problem: "is the only class present",
                ..
            })
        ));
        assert!(matches!(
            roc_auc_binary(&[0, 0], &[0.1, 0.2]),
            Err(MetricError::SingleClass {
                class: 1,
                problem: "never occurs",
                ..
            })
        ));
        assert!(matches!(
            roc_auc_binary(&[0, 2], &[0.1, 0.2]),
            Err(MetricError::LabelOutOfRange {
                label: 2,
                n_classes: 2,
                ..
            })
        ));
        assert!(matches!(
            roc_auc_binary(&[0, 1], &[0.1, f64::NAN]),
            Err(MetricError::NonFinite {
                input: "score_of_positive",
                index: 1,
                ..
            })
        ));
        assert_eq!(
            roc_auc_binary(&[1, 1], &[0.1, 0.2])
                .unwrap_err()
                .to_string(),
            "roc_auc_binary: class 1 is the only class present in y_true, so its ROC curve (one class against the rest) is undefined"
        );
    }

    #[test]
    fn roc_auc_ovr_macro_by_hand() {
        let y_true = [0, 1, 2, 1];
        let proba = [
            0.8, 0.1, 0.1, //
            0.1, 0.5, 0.4, //
            0.1, 0.2, 0.7, //
            0.3, 0.05, 0.65,
        ];
        // Class 0: 0.8 above 0.1, 0.1, 0.3 → 1. Class 1: positives 0.5, 0.05 vs negatives
        // 0.1, 0.2 → (2 + 0) / 4 = 0.5. Class 2: positive 0.7 vs 0.1, 0.4, 0.65 → 1.
        close(roc_auc_ovr_macro(&y_true, &proba, 3).unwrap(), 2.5 / 3.0);
    }

    #[test]
    fn roc_auc_ovr_macro_rejects_bad_input() {
        let proba = [0.5, 0.5, 0.5, 0.5];
        assert!(matches!(
            roc_auc_ovr_macro(&[0, 1], &proba, 2),
            Err(MetricError::TooFewClasses {
                needed: 3,
                got: 2,
                ..
            })
        ));
        let rows = [0.2, 0.2, 0.2, 0.3, 0.3, 0.4, 0.1, 0.1, 0.8];
        assert!(matches!(
            roc_auc_ovr_macro(&[0, 1, 2], &rows, 3),
            Err(MetricError::RowNotNormalised { sample: 0, .. })
        ));
        let rows = [0.6, 0.2, 0.2, 0.3, 0.3, 0.4, 0.5, 0.1, 0.4];
        assert!(matches!(
            roc_auc_ovr_macro(&[0, 1, 1], &rows, 3),
            Err(MetricError::SingleClass {
                class: 2,
                problem: "never occurs",
                ..
            })
        ));
        assert!(matches!(
            roc_auc_ovr_macro(&[0, 1], &rows, 3),
            Err(MetricError::LengthMismatch {
                input: "proba",
                expected: 6,
                got: 9,
                ..
            })
        ));
    }

    #[test]
    fn log_loss_by_hand() {
        let loss = log_loss(&[0, 1], &[0.9, 0.1, 0.2, 0.8], 2).unwrap();
        close(loss, -(0.9_f64.ln() + 0.8_f64.ln()) / 2.0);
        // Certain and wrong: clipped to eps; certain and right: clipped to 1 - eps.
        close(log_loss(&[1], &[1.0, 0.0], 2).unwrap(), -f64::EPSILON.ln());
        close(
            log_loss(&[0], &[1.0, 0.0], 2).unwrap(),
            -(1.0 - f64::EPSILON).ln(),
        );
        // Rows are used as given, not renormalised: only the true class's entry counts.
        close(log_loss(&[2], &[0.2, 0.2, 0.2], 3).unwrap(), -0.2_f64.ln());
    }

    #[test]
    fn log_loss_rejects_bad_input() {
        assert_eq!(
            log_loss(&[0, 1], &[0.5, 0.5, 1.5, -0.5], 2),
            Err(MetricError::ProbabilityOutOfRange {
                metric: "log_loss",
                sample: 1,
                class: 0,
                value: 1.5
            })
        );
        assert!(matches!(
            log_loss(&[0], &[1.0], 1),
            Err(MetricError::TooFewClasses {
                needed: 2,
                got: 1,
                ..
            })
        ));
        assert!(matches!(
            log_loss(&[0, 2], &[0.5, 0.5, 0.5, 0.5], 2),
            Err(MetricError::LabelOutOfRange {
                input: "y_true",
                index: 1,
                label: 2,
                ..
            })
        ));
        assert!(matches!(
            log_loss(&[0, 1], &[0.5, f64::NAN, 0.5, 0.5], 2),
            Err(MetricError::NonFinite {
                input: "proba",
                index: 1,
                ..
            })
        ));
        assert_eq!(
            log_loss(&[], &[], 2),
            Err(MetricError::Empty { metric: "log_loss" })
        );
    }
}
