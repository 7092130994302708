//! Drift statistics: how far a window of live data has moved from a model version's reference
//! profile, per feature, with exactly the semantics of the tools people already trust.
//!
//! Every statistic is defined by a SciPy 1.17.1 or Evidently 0.7.23 (legacy stat tests)
//! function and reproduces it to `1e-9` relative error or better; `scorer/tests/data/` holds the
//! reference values and the script that generated the extra ones.
//!
//! | statistic | function here | mirrors |
//! |-----------|---------------|---------|
//! | KS statistic and p-value (exact or asymptotic, as SciPy chooses) | [`ks_2samp`] | `scipy.stats.ks_2samp(ref, cur)` (`method="auto"`, two-sided) |
//! | Wasserstein distance | [`wasserstein_distance`] | `scipy.stats.wasserstein_distance(ref, cur)` |
//! | normed Wasserstein | [`wasserstein_normed`] | Evidently `wasserstein`: distance / `max(std(ref), 0.001)` |
//! | PSI, Sturges bins | [`psi_sturges`] | Evidently `psi` on `numpy.histogram_bin_edges(concat, "sturges")` |
//! | PSI, reference deciles | [`psi_reference_deciles`], [`DecileBins`] | `numpy.quantile` deciles, outer edges `±inf` |
//! | Jensen–Shannon distance | [`jensenshannon_sturges`], [`CategoryCounts::jensenshannon`] | `scipy.spatial.distance.jensenshannon` (natural log or base 2) |
//! | chi-square | [`CategoryCounts::chisquare`] | Evidently `chisquare` = `scipy.stats.chisquare` |
//! | z-test | [`CategoryCounts::z_test`] | Evidently `z` (pooled two-proportion test) |
//! | default test and verdicts | [`numeric_column_drift`], [`categorical_column_drift`], [`dataset_drift`] | Evidently `_get_default_stattest`, `get_dataset_drift` |
//! | reference profile | [`ProfileSampler`], [`ReferenceProfile`] | — (seeded uniform sample above a bound) |
//!
//! [`monitor`] cuts live rows into windows and judges each against a model version's
//! [`ReferenceProfile`] (features, prediction, dataset verdict, per-machine breakdown).
//!
//! **Missing values.** Non-finite numbers (`NaN`, `±inf`) and `None` labels are *skipped* in both
//! samples, as Evidently drops them before any test; sizes, shares and unique counts are over the
//! remaining values. If nothing remains on a side, the functions return
//! [`DriftError::EmptyReference`] or [`DriftError::EmptyCurrent`]; they never panic on input data.
//! Samples of a single value are valid.
//!
//! **Empty bins.** Before a PSI, empty shares are filled as Evidently 0.7.23 does: `0.0001`, or
//! the smallest non-empty share divided by `10^6` when that share is itself `<= 0.0001` (samples
//! of 10 000 or more). The reference definitions state only the `0.0001` part, which is all that
//! applies to smaller samples. The same filling is applied to the reference-decile PSI, whose
//! definition has no filling, so that a decile missing from a window gives a large finite PSI
//! rather than `inf`. The Jensen–Shannon distance keeps empty bins as zeros.
//!
//! The special functions (normal CDF, incomplete gamma, the Kolmogorov distributions) are
//! implemented in [`special`] and [`ks`]; see those modules for their provenance and accuracy.

mod categorical;
mod divergence;
pub mod ks;
pub mod monitor;
mod numeric;
mod numpy;
mod profile;
pub mod reference;
mod sort;
pub mod special;
mod verdict;
mod wasserstein;

use sort::sorted_finite;

pub use categorical::{Category, CategoryCounts, ChiSquare, Label, ZTest};
pub use divergence::{
    EMPTY_SHARE, LogBase, fill_empty_shares, jensenshannon, population_stability_index,
};
pub use ks::{KS_MAX_AUTO_N, Ks, KsMethod, KsMode, ks_2samp, ks_2samp_with, kstwo_sf};
pub use monitor::{DriftMonitor, MonitorError, MonitorKey, MonitorSettings, Window, judge_window};
pub use numeric::{
    DecileBins, MIN_NORM_STD, histogram_shares, jensenshannon_sturges, psi_reference_deciles,
    psi_sturges, reference_std, sturges_bin_edges, wasserstein_distance, wasserstein_normed,
};
pub use profile::{DEFAULT_PROFILE_BOUND, ProfileSampler};
pub use reference::{
    PREDICTION_COLUMN, PROFILE_FILE, PreparedReference, ProfileColumn, ReferenceProfile,
    load_profile, prediction_column,
};
pub use verdict::{
    ColumnKind, ColumnVerdict, DatasetVerdict, DriftParams, DriftTest, ValidDriftParams,
    categorical_column_drift, column_drift, dataset_drift, numeric_column_drift,
};

/// Why a drift statistic could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DriftError {
    /// The reference sample has no usable (finite, non-missing) value.
    #[error("the reference sample has no usable value")]
    EmptyReference,
    /// The current sample has no usable (finite, non-missing) value.
    #[error("the current sample has no usable value")]
    EmptyCurrent,
    /// The combined range is too narrow (or too wide) for distinct Sturges bin edges.
    #[error("cannot build distinct finite bin edges over the data range")]
    DegenerateBins,
    /// A reference column and a current column of different kinds.
    #[error("the reference and current columns are of different kinds")]
    KindMismatch,
    /// A dataset verdict over no columns.
    #[error("no columns to judge")]
    NoColumns,
    /// A parameter out of its range.
    #[error("invalid drift parameter {name}: {reason}")]
    InvalidParam {
        /// The parameter.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}
