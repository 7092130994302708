//! Evidently's default choice of stat test per column, the per-column verdict and the dataset
//! verdict.
//!
//! The rule (Evidently 0.7.23, `legacy/calculations/stattests/registry.py`,
//! `_get_default_stattest`), with `n` the number of non-missing reference values and `u` the
//! number of distinct values over reference and current together:
//!
//! | reference size | column                    | test                                  | drift when      |
//! |----------------|---------------------------|---------------------------------------|-----------------|
//! | `n <= 1000`    | numeric, `u > 5`          | [`DriftTest::Ks`]                     | `p <= 0.05`     |
//! | `n <= 1000`    | otherwise, `u > 2`        | [`DriftTest::ChiSquare`]              | `p < 0.05`      |
//! | `n <= 1000`    | otherwise                 | [`DriftTest::Z`]                      | `p < 0.05`      |
//! | `n > 1000`     | numeric, `u > 5`          | [`DriftTest::WassersteinNormed`]      | `value >= 0.1`  |
//! | `n > 1000`     | otherwise                 | [`DriftTest::JensenShannon`]          | `value >= 0.1`  |
//!
//! The comparisons (`<=` for KS, `<` for chi-square and z, `>=` for the distances) are
//! Evidently's. The Jensen–Shannon distance uses Evidently's binning: one bin per value for
//! categorical columns and for numeric columns with at most 20 distinct reference values, Sturges
//! bins on the combined sample otherwise; natural logarithm. A dataset drifts when the share of
//! drifted columns is `>= 0.5`. All sizes and thresholds are parameters ([`DriftParams`]) with
//! these defaults.

use std::cell::RefCell;

use serde::{Deserialize, Serialize};

use super::categorical::{CategoryCounts, Label};
use super::divergence::{LogBase, jensenshannon};
use super::ks::{KsMode, ks_sorted};
use super::numeric::{
    MIN_NORM_STD, evidently_binned_shares, population_std_of, unique_sorted,
    unique_sorted_pair_upto, wasserstein_normed_sorted, wasserstein_normed_with_std,
};
use super::sort::sort_finite_into;
use super::wasserstein::{GapIndex, wasserstein_sorted};
use super::{DriftError, sorted_finite};
use crate::frame::FeatureColumn;

/// Whether a column holds numbers or categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnKind {
    /// Numbers.
    Numeric,
    /// Categories.
    Categorical,
}

/// A drift test, by the name used in refit's reference cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftTest {
    /// Two-sample Kolmogorov–Smirnov; the value is the p-value.
    Ks,
    /// Chi-square goodness of fit of current counts to reference shares; the value is the p-value.
    #[serde(rename = "chisquare")]
    ChiSquare,
    /// Two-proportion z-test; the value is the p-value.
    Z,
    /// Wasserstein distance over the reference standard deviation; the value is the distance.
    WassersteinNormed,
    /// Jensen–Shannon distance (natural log); the value is the distance.
    #[serde(rename = "jensenshannon")]
    JensenShannon,
}

impl DriftTest {
    /// The test's name: `ks`, `chisquare`, `z`, `wasserstein_normed` or `jensenshannon`.
    pub fn name(self) -> &'static str {
        match self {
            DriftTest::Ks => "ks",
            DriftTest::ChiSquare => "chisquare",
            DriftTest::Z => "z",
            DriftTest::WassersteinNormed => "wasserstein_normed",
            DriftTest::JensenShannon => "jensenshannon",
        }
    }

    /// Whether the value is a p-value (small means drift) rather than a distance (large means
    /// drift).
    pub fn is_pvalue(self) -> bool {
        matches!(self, DriftTest::Ks | DriftTest::ChiSquare | DriftTest::Z)
    }

    /// Whether `value` means drift at `threshold`, with Evidently's comparison for this test.
    pub fn drifted(self, value: f64, threshold: f64) -> bool {
        match self {
            DriftTest::Ks => value <= threshold,
            DriftTest::ChiSquare | DriftTest::Z => value < threshold,
            DriftTest::WassersteinNormed | DriftTest::JensenShannon => value >= threshold,
        }
    }
}

impl std::fmt::Display for DriftTest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Unchecked drift parameters; [`DriftParams::check`] turns them into [`ValidDriftParams`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DriftParams {
    /// Largest reference size that gets the small-sample tests (KS, chi-square, z): 1000.
    pub small_reference_max: usize,
    /// A numeric column needs more than this many distinct values for KS / Wasserstein: 5.
    pub numeric_min_unique: usize,
    /// Small-sample columns with at most this many distinct values get the z-test: 2.
    pub binary_max_unique: usize,
    /// KS p-value threshold (drift when `p <= threshold`): 0.05.
    pub ks_threshold: f64,
    /// Chi-square p-value threshold (drift when `p < threshold`): 0.05.
    pub chisquare_threshold: f64,
    /// z-test p-value threshold (drift when `p < threshold`): 0.05.
    pub z_threshold: f64,
    /// Normed Wasserstein threshold (drift when `value >= threshold`): 0.1.
    pub wasserstein_threshold: f64,
    /// Jensen–Shannon threshold (drift when `value >= threshold`): 0.1.
    pub jensenshannon_threshold: f64,
    /// Share of drifted columns at or above which the dataset drifts: 0.5.
    pub drift_share: f64,
}

impl Default for DriftParams {
    fn default() -> Self {
        DriftParams {
            small_reference_max: 1000,
            numeric_min_unique: 5,
            binary_max_unique: 2,
            ks_threshold: 0.05,
            chisquare_threshold: 0.05,
            z_threshold: 0.05,
            wasserstein_threshold: 0.1,
            jensenshannon_threshold: 0.1,
            drift_share: 0.5,
        }
    }
}

impl DriftParams {
    /// Validates the parameters: p-value thresholds in `[0, 1]`, distance thresholds finite and
    /// non-negative, `drift_share` in `(0, 1]`.
    pub fn check(self) -> Result<ValidDriftParams, DriftError> {
        let unit = |name: &'static str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(DriftError::InvalidParam {
                    name,
                    reason: format!("{v} is not in [0, 1]"),
                })
            }
        };
        let distance = |name: &'static str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(DriftError::InvalidParam {
                    name,
                    reason: format!("{v} is not a finite non-negative number"),
                })
            }
        };
        unit("ks_threshold", self.ks_threshold)?;
        unit("chisquare_threshold", self.chisquare_threshold)?;
        unit("z_threshold", self.z_threshold)?;
        distance("wasserstein_threshold", self.wasserstein_threshold)?;
        distance("jensenshannon_threshold", self.jensenshannon_threshold)?;
        if !(self.drift_share > 0.0 && self.drift_share <= 1.0) {
            return Err(DriftError::InvalidParam {
                name: "drift_share",
                reason: format!("{} is not in (0, 1]", self.drift_share),
            });
        }
        Ok(ValidDriftParams(self))
    }
}

/// Checked drift parameters (see [`DriftParams`]); the default is Evidently's.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct ValidDriftParams(DriftParams);

impl ValidDriftParams {
    /// The parameters.
    pub fn params(&self) -> &DriftParams {
        &self.0
    }

    /// The threshold used for `test`.
    pub fn threshold(&self, test: DriftTest) -> f64 {
        match test {
            DriftTest::Ks => self.0.ks_threshold,
            DriftTest::ChiSquare => self.0.chisquare_threshold,
            DriftTest::Z => self.0.z_threshold,
            DriftTest::WassersteinNormed => self.0.wasserstein_threshold,
            DriftTest::JensenShannon => self.0.jensenshannon_threshold,
        }
    }

    /// The share of drifted columns at or above which a dataset drifts.
    pub fn drift_share(&self) -> f64 {
        self.0.drift_share
    }

    /// Evidently's default test for a column of `kind` with `reference_len` non-missing
    /// reference values and `unique` distinct values over both samples.
    pub fn select_test(&self, kind: ColumnKind, reference_len: usize, unique: usize) -> DriftTest {
        let p = &self.0;
        let numeric_test = kind == ColumnKind::Numeric && unique > p.numeric_min_unique;
        if reference_len <= p.small_reference_max {
            if numeric_test {
                DriftTest::Ks
            } else if unique > p.binary_max_unique {
                DriftTest::ChiSquare
            } else {
                DriftTest::Z
            }
        } else if numeric_test {
            DriftTest::WassersteinNormed
        } else {
            DriftTest::JensenShannon
        }
    }

    pub(crate) fn verdict(&self, test: DriftTest, value: f64) -> ColumnVerdict {
        let threshold = self.threshold(test);
        ColumnVerdict {
            test,
            value,
            threshold,
            drifted: test.drifted(value, threshold),
        }
    }
}

/// The drift verdict for one column.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ColumnVerdict {
    /// The test applied.
    pub test: DriftTest,
    /// Its value: a p-value or a distance (see [`DriftTest::is_pvalue`]).
    pub value: f64,
    /// The threshold it was compared with.
    pub threshold: f64,
    /// Whether the column drifted.
    pub drifted: bool,
}

/// Drift of a numeric column with the default test. Non-finite values are skipped.
///
/// ```
/// use refit_scorer::drift::{numeric_column_drift, DriftTest, ValidDriftParams};
/// let reference: Vec<f64> = (0..100).map(f64::from).collect();
/// let current: Vec<f64> = (10..110).map(f64::from).collect();
/// let verdict = numeric_column_drift(&reference, &current, &ValidDriftParams::default()).unwrap();
/// assert_eq!(verdict.test, DriftTest::Ks);
/// assert!(!verdict.drifted);
/// ```
pub fn numeric_column_drift(
    reference: &[f64],
    current: &[f64],
    params: &ValidDriftParams,
) -> Result<ColumnVerdict, DriftError> {
    let r = sorted_finite(reference);
    if r.is_empty() {
        return Err(DriftError::EmptyReference);
    }
    if let Some(verdict) = wasserstein_verdict(&r, None, unique_sorted(&r), current, params) {
        return verdict;
    }
    let c = sorted_finite(current);
    if c.is_empty() {
        return Err(DriftError::EmptyCurrent);
    }
    numeric_drift_sorted(&r, None, &c, params)
}

/// How many times larger than the current sample a reference must be for [`GapIndex`]: below
/// this, sorting the current sample and walking the whole reference is cheaper.
const INDEX_MIN_RATIO: usize = 32;

/// The verdict when the reference alone settles Evidently's choice on the normed Wasserstein
/// distance (a large reference with more than a few distinct values: the combined sample has at
/// least as many); `None` when another test may apply. `prepared` is the reference's
/// [`GapIndex`] and `numpy.std`, if they were made once for many windows.
pub(crate) fn wasserstein_verdict(
    r: &[f64],
    prepared: Option<(&GapIndex, f64)>,
    reference_unique: usize,
    current: &[f64],
    params: &ValidDriftParams,
) -> Option<Result<ColumnVerdict, DriftError>> {
    if params.select_test(ColumnKind::Numeric, r.len(), reference_unique)
        != DriftTest::WassersteinNormed
    {
        return None;
    }
    let std = prepared.map_or_else(|| population_std_of(r), |(_, std)| std);
    let distance = if current.len().saturating_mul(INDEX_MIN_RATIO) <= r.len() {
        match prepared {
            Some((index, _)) => index.distance(current),
            None => GapIndex::new(r).distance(current),
        }
    } else {
        CURRENT.with(|c| {
            let c = &mut *c.borrow_mut();
            sort_finite_into(current, c);
            (!c.is_empty()).then(|| wasserstein_sorted(r, c))
        })
    };
    Some(match distance {
        Some(d) => Ok(params.verdict(DriftTest::WassersteinNormed, d / std.max(MIN_NORM_STD))),
        None => Err(DriftError::EmptyCurrent),
    })
}

thread_local! {
    /// The current sample of [`wasserstein_verdict`], sorted; reused by the thread.
    static CURRENT: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

/// [`numeric_column_drift`] over samples already cleaned and sorted (both non-empty), with the
/// reference's `numpy.std` when it is known: what a cached reference profile calls per window.
pub(crate) fn numeric_drift_sorted(
    r: &[f64],
    reference_std: Option<f64>,
    c: &[f64],
    params: &ValidDriftParams,
) -> Result<ColumnVerdict, DriftError> {
    // The choice only compares the count with these bounds: counting past them changes nothing.
    let p = params.params();
    let cap = p
        .numeric_min_unique
        .max(p.binary_max_unique)
        .saturating_add(1);
    let unique = unique_sorted_pair_upto(r, c, cap);
    let test = params.select_test(ColumnKind::Numeric, r.len(), unique);
    let value = match test {
        DriftTest::Ks => ks_sorted(r, c, KsMode::Auto).pvalue,
        DriftTest::ChiSquare => CategoryCounts::from_numbers(r, c)?.chisquare().pvalue,
        DriftTest::Z => CategoryCounts::from_numbers(r, c)?.z_test().pvalue,
        DriftTest::WassersteinNormed => match reference_std {
            Some(std) => wasserstein_normed_with_std(r, c, std),
            None => wasserstein_normed_sorted(r, c),
        },
        DriftTest::JensenShannon => {
            let (rs, cs) = evidently_binned_shares(r, c, false)?;
            jensenshannon(&rs, &cs, LogBase::Natural)
        }
    };
    Ok(params.verdict(test, value))
}

/// Drift of a categorical column with the default test. Missing labels are skipped.
pub fn categorical_column_drift<L: Label>(
    reference: &[L],
    current: &[L],
    params: &ValidDriftParams,
) -> Result<ColumnVerdict, DriftError> {
    categorical_counts_drift(CategoryCounts::from_labels(reference, current)?, params)
}

/// [`categorical_column_drift`] of samples already counted.
pub(crate) fn categorical_counts_drift(
    counts: CategoryCounts,
    params: &ValidDriftParams,
) -> Result<ColumnVerdict, DriftError> {
    let reference_len = counts.reference_total() as usize;
    let (test, value) =
        match params.select_test(ColumnKind::Categorical, reference_len, counts.len()) {
            DriftTest::ChiSquare => (DriftTest::ChiSquare, counts.chisquare().pvalue),
            DriftTest::Z => (DriftTest::Z, counts.z_test().pvalue),
            // KS and Wasserstein are only selected for numeric columns.
            _ => (
                DriftTest::JensenShannon,
                counts.jensenshannon(LogBase::Natural),
            ),
        };
    Ok(params.verdict(test, value))
}

/// Drift of one feature column of a [`crate::FeatureFrame`] with the default test.
pub fn column_drift(
    reference: &FeatureColumn,
    current: &FeatureColumn,
    params: &ValidDriftParams,
) -> Result<ColumnVerdict, DriftError> {
    match (reference, current) {
        (FeatureColumn::Numeric(r), FeatureColumn::Numeric(c)) => {
            numeric_column_drift(r, c, params)
        }
        (FeatureColumn::Categorical(r), FeatureColumn::Categorical(c)) => {
            categorical_column_drift(r, c, params)
        }
        _ => Err(DriftError::KindMismatch),
    }
}

/// The dataset verdict: how many columns drifted, and whether their share reaches the
/// threshold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DatasetVerdict {
    /// Number of columns judged.
    pub columns: usize,
    /// Number of drifted columns.
    pub drifted_columns: usize,
    /// `drifted_columns / columns`.
    pub share: f64,
    /// The threshold the share was compared with.
    pub drift_share: f64,
    /// Whether `share >= drift_share`.
    pub dataset_drift: bool,
}

/// The dataset verdict over column verdicts (Evidently's `get_dataset_drift`). An empty set of
/// columns is an error.
pub fn dataset_drift<'a>(
    columns: impl IntoIterator<Item = &'a ColumnVerdict>,
    params: &ValidDriftParams,
) -> Result<DatasetVerdict, DriftError> {
    let (mut total, mut drifted) = (0usize, 0usize);
    for c in columns {
        total += 1;
        drifted += usize::from(c.drifted);
    }
    if total == 0 {
        return Err(DriftError::NoColumns);
    }
    let share = drifted as f64 / total as f64;
    Ok(DatasetVerdict {
        columns: total,
        drifted_columns: drifted,
        share,
        drift_share: params.drift_share(),
        dataset_drift: share >= params.drift_share(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_follows_evidently() {
        let p = ValidDriftParams::default();
        use ColumnKind::*;
        assert_eq!(p.select_test(Numeric, 1000, 6), DriftTest::Ks);
        assert_eq!(p.select_test(Numeric, 1000, 5), DriftTest::ChiSquare);
        assert_eq!(p.select_test(Numeric, 1000, 3), DriftTest::ChiSquare);
        assert_eq!(p.select_test(Numeric, 1000, 2), DriftTest::Z);
        assert_eq!(p.select_test(Numeric, 1000, 1), DriftTest::Z);
        assert_eq!(p.select_test(Categorical, 1000, 50), DriftTest::ChiSquare);
        assert_eq!(p.select_test(Categorical, 10, 2), DriftTest::Z);
        assert_eq!(
            p.select_test(Numeric, 1001, 6),
            DriftTest::WassersteinNormed
        );
        assert_eq!(p.select_test(Numeric, 1001, 5), DriftTest::JensenShannon);
        assert_eq!(
            p.select_test(Categorical, 5000, 2),
            DriftTest::JensenShannon
        );
    }

    #[test]
    fn comparisons_at_the_threshold() {
        assert!(DriftTest::Ks.drifted(0.05, 0.05));
        assert!(!DriftTest::ChiSquare.drifted(0.05, 0.05));
        assert!(!DriftTest::Z.drifted(0.05, 0.05));
        assert!(DriftTest::WassersteinNormed.drifted(0.1, 0.1));
        assert!(DriftTest::JensenShannon.drifted(0.1, 0.1));
        assert!(!DriftTest::JensenShannon.drifted(0.099, 0.1));
    }

    #[test]
    fn params_are_checked() {
        assert!(DriftParams::default().check().is_ok());
        let bad = DriftParams {
            drift_share: 0.0,
            ..DriftParams::default()
        };
        assert!(matches!(
            bad.check(),
            Err(DriftError::InvalidParam {
                name: "drift_share",
                ..
            })
        ));
        let bad = DriftParams {
            ks_threshold: f64::NAN,
            ..DriftParams::default()
        };
        assert!(bad.check().is_err());
    }

    #[test]
    fn dataset_share_is_inclusive() {
        let p = ValidDriftParams::default();
        let v = |drifted| ColumnVerdict {
            test: DriftTest::Ks,
            value: 0.0,
            threshold: 0.05,
            drifted,
        };
        let half = dataset_drift(&[v(true), v(false)], &p).unwrap();
        assert_eq!(
            (half.columns, half.drifted_columns, half.share),
            (2, 1, 0.5)
        );
        assert!(half.dataset_drift);
        let third = dataset_drift(&[v(true), v(false), v(false)], &p).unwrap();
        assert!(!third.dataset_drift);
        assert_eq!(dataset_drift(&[], &p), Err(DriftError::NoColumns));
    }

    #[test]
    fn binary_categorical_column_uses_z() {
        let reference: Vec<String> = (0..100).map(|i| (i % 2).to_string()).collect();
        let current: Vec<String> = (0..100)
            .map(|i| u8::from(i % 10 == 0).to_string())
            .collect();
        let v =
            categorical_column_drift(&reference, &current, &ValidDriftParams::default()).unwrap();
        assert_eq!(v.test, DriftTest::Z);
        assert!(v.drifted);
    }

    #[test]
    fn kind_mismatch_is_an_error() {
        let r = FeatureColumn::Numeric(vec![1.0]);
        let c = FeatureColumn::Categorical(vec![Some("a".into())]);
        assert_eq!(
            column_drift(&r, &c, &ValidDriftParams::default()),
            Err(DriftError::KindMismatch)
        );
    }

    #[test]
    fn large_low_cardinality_numeric_column_uses_per_value_jensenshannon() {
        let reference: Vec<f64> = (0..2000).map(|i| f64::from(i % 3)).collect();
        let current: Vec<f64> = (0..2000).map(|i| f64::from(i % 2)).collect();
        let v = numeric_column_drift(&reference, &current, &ValidDriftParams::default()).unwrap();
        assert_eq!(v.test, DriftTest::JensenShannon);
        let counts = CategoryCounts::from_numbers(&reference, &current).unwrap();
        assert_eq!(v.value, counts.jensenshannon(LogBase::Natural));
        assert!(v.drifted);
    }
}
