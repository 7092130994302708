//! A model version's reference profile: what its live inputs and outputs are compared with.
//!
//! The trainer writes it as `profile.json` beside `model.json` in the candidate's run (so it is
//! found through the version's source like the model file, by [`load_profile`]): per input
//! feature, the values of the training part, and the model's predictions on the holdout (the
//! reference of the prediction column).
//!
//! **Sampling.** Up to [`DEFAULT_PROFILE_BOUND`](super::DEFAULT_PROFILE_BOUND) rows every value is
//! kept; above it a uniform sample of exactly that many rows, drawn by
//! [`ProfileSampler`](super::ProfileSampler) seeded with the training spec's `seed` (the same
//! rows for every feature, so the profile stays row-aligned; the holdout predictions are sampled
//! with the same seed). The same spec on the same snapshots gives the same profile bytes. Drift
//! against a sample estimates drift against the whole training column (see the sampler's docs for
//! the bound on the error); Evidently's choice of test sees the profile's size.
//!
//! [`PreparedReference`] is the profile made ready for many windows: numeric columns sorted and
//! cleaned once, with their standard deviation and an index for the Wasserstein distance. When
//! the normed Wasserstein distance is the test, a window of `n` values costs one sort of the
//! window and one walk of the reference's quantiles, or `O(n)` through the index (see
//! [`GapIndex`]) when the reference is many times larger than the window (a machine's few rows);
//! for the other tests, one sort of the window and one merge.

use std::collections::BTreeMap;
use std::sync::Arc;

use refit_registry::Store;
use serde::{Deserialize, Serialize};

use super::categorical::{CategoryCounts, count_labels, label_counts};
use super::numeric::{population_std_of, unique_sorted};
use super::verdict::categorical_counts_drift;
use super::verdict::{
    ColumnKind, ColumnVerdict, ValidDriftParams, numeric_drift_sorted, wasserstein_verdict,
};
use super::wasserstein::GapIndex;
use super::{DriftError, ProfileSampler, sorted_finite};
use crate::frame::{FeatureColumn, FeatureFrame};
use crate::model::{ModelInfo, Predictions, Task};
use crate::serving::{ServeError, read_version_file};

/// The profile file in a version's source directory.
pub const PROFILE_FILE: &str = "profile.json";
/// The profile format written by this version of refit.
pub const PROFILE_FORMAT: &str = "refit-profile/1";
/// The name of the prediction column in reports.
pub const PREDICTION_COLUMN: &str = "prediction";

/// The stored reference profile of a model version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceProfile {
    /// [`PROFILE_FORMAT`].
    pub format: String,
    /// Most values kept per column.
    pub bound: usize,
    /// The sampler's seed (the training spec's `seed`).
    pub seed: u64,
    /// Training rows before sampling.
    pub training_rows: usize,
    /// Holdout rows whose predictions were sampled.
    pub holdout_rows: usize,
    /// What the model predicts: a regression's predictions are numbers, a classifier's are its
    /// class labels.
    pub task: Task,
    /// Class labels by class index (classifiers).
    pub classes: Vec<String>,
    /// One column per input feature, in the model's feature order.
    pub features: Vec<ProfileColumn>,
    /// The model's predictions on the holdout, if there was one.
    pub prediction: Option<ProfileColumn>,
}

/// A column of a profile. Missing values are `null`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ProfileColumn {
    /// Numbers.
    Numeric {
        /// The feature.
        name: String,
        /// Its kept values.
        values: Vec<Option<f64>>,
    },
    /// Categories.
    Categorical {
        /// The feature.
        name: String,
        /// Its kept values.
        values: Vec<Option<String>>,
    },
}

impl ProfileColumn {
    /// The column's name.
    pub fn name(&self) -> &str {
        match self {
            ProfileColumn::Numeric { name, .. } | ProfileColumn::Categorical { name, .. } => name,
        }
    }

    /// The values as a frame column (`NaN` for a missing number).
    pub fn to_feature_column(&self) -> FeatureColumn {
        match self {
            ProfileColumn::Numeric { values, .. } => {
                FeatureColumn::Numeric(values.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
            }
            ProfileColumn::Categorical { values, .. } => FeatureColumn::Categorical(values.clone()),
        }
    }

    fn sampled(name: &str, column: &FeatureColumn, positions: &[usize]) -> ProfileColumn {
        match column {
            FeatureColumn::Numeric(v) => ProfileColumn::Numeric {
                name: name.to_string(),
                values: positions
                    .iter()
                    .map(|&i| Some(v[i]).filter(|x| x.is_finite()))
                    .collect(),
            },
            FeatureColumn::Categorical(v) => ProfileColumn::Categorical {
                name: name.to_string(),
                values: positions.iter().map(|&i| v[i].clone()).collect(),
            },
        }
    }
}

/// The prediction column of a batch: numbers for a regression, class labels for a classifier
/// (an index outside the classes is missing).
pub fn prediction_column(
    task: Task,
    classes: &[String],
    predictions: &Predictions,
) -> FeatureColumn {
    if task.is_classification() {
        FeatureColumn::Categorical(
            predictions
                .values
                .iter()
                .map(|&v| {
                    (v >= 0.0 && v.fract() == 0.0)
                        .then(|| classes.get(v as usize).cloned())
                        .flatten()
                })
                .collect(),
        )
    } else {
        FeatureColumn::Numeric(predictions.values.clone())
    }
}

impl ReferenceProfile {
    /// The profile of a model fitted on `training` (its features in `info.features` order),
    /// with its predictions on the holdout.
    pub fn build(
        info: &ModelInfo,
        training: &FeatureFrame,
        holdout_predictions: Option<&Predictions>,
        sampler: ProfileSampler,
    ) -> ReferenceProfile {
        let positions = sampler.positions(training.rows);
        let features = info
            .features
            .iter()
            .zip(&training.columns)
            .map(|(name, column)| ProfileColumn::sampled(name, column, &positions))
            .collect();
        let prediction = holdout_predictions
            .filter(|p| !p.values.is_empty())
            .map(|p| {
                let column = prediction_column(info.task, &info.classes, p);
                ProfileColumn::sampled(
                    PREDICTION_COLUMN,
                    &column,
                    &sampler.positions(p.values.len()),
                )
            });
        ReferenceProfile {
            format: PROFILE_FORMAT.to_string(),
            bound: sampler.bound(),
            seed: sampler.seed(),
            training_rows: training.rows,
            holdout_rows: holdout_predictions.map_or(0, |p| p.values.len()),
            task: info.task,
            classes: info.classes.clone(),
            features,
            prediction,
        }
    }

    /// The profile as compact JSON.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("profiles serialize")
    }

    /// Parses and checks a profile file.
    pub fn from_json(bytes: &[u8]) -> Result<ReferenceProfile, String> {
        let profile: ReferenceProfile =
            serde_json::from_slice(bytes).map_err(|e| format!("invalid {PROFILE_FILE}: {e}"))?;
        if profile.format != PROFILE_FORMAT {
            return Err(format!(
                "{PROFILE_FILE} has format '{}', this refit reads '{PROFILE_FORMAT}'",
                profile.format
            ));
        }
        Ok(profile)
    }

    /// The input features' names, in order.
    pub fn feature_names(&self) -> Vec<&str> {
        self.features.iter().map(ProfileColumn::name).collect()
    }
}

/// The reference profile of `model` version `version` (the `profile.json` in the directory its
/// source names). [`ServeError::NotFound`] when the version has none (e.g. a model uploaded
/// without one, or trained before profiles existed).
pub async fn load_profile(
    store: &Store,
    model: &str,
    version: i64,
) -> Result<ReferenceProfile, ServeError> {
    let bytes = read_version_file(store, model, version, PROFILE_FILE).await?;
    ReferenceProfile::from_json(&bytes)
        .map_err(|e| ServeError::Unservable(format!("version {version} of '{model}': {e}")))
}

/// One reference column, ready for many windows.
#[derive(Debug, Clone)]
pub struct ReferenceColumn {
    name: String,
    data: Prepared,
}

#[derive(Debug, Clone)]
enum Prepared {
    /// Finite values, sorted, with their `numpy.std`, their number of distinct values and, for
    /// a non-empty reference, its index for Wasserstein distances in time linear in a window.
    Numeric {
        sorted: Vec<f64>,
        std: f64,
        unique: usize,
        index: Option<GapIndex>,
    },
    /// Each label's count, sorted by label.
    Categorical { counts: Vec<(String, u64)> },
}

impl ReferenceColumn {
    /// Prepares a profile column.
    pub fn new(column: &ProfileColumn) -> ReferenceColumn {
        let data = match column.to_feature_column() {
            FeatureColumn::Numeric(values) => {
                let sorted = sorted_finite(&values);
                let (std, index) = if sorted.is_empty() {
                    (0.0, None)
                } else {
                    (population_std_of(&sorted), Some(GapIndex::new(&sorted)))
                };
                Prepared::Numeric {
                    unique: unique_sorted(&sorted),
                    sorted,
                    std,
                    index,
                }
            }
            FeatureColumn::Categorical(labels) => Prepared::Categorical {
                counts: label_counts(&labels),
            },
        };
        ReferenceColumn {
            name: column.name().to_string(),
            data,
        }
    }

    /// The column's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Numeric or categorical.
    pub fn kind(&self) -> ColumnKind {
        match self.data {
            Prepared::Numeric { .. } => ColumnKind::Numeric,
            Prepared::Categorical { .. } => ColumnKind::Categorical,
        }
    }

    /// The drift verdict of `current` against this reference: exactly
    /// [`column_drift`](super::column_drift) of the profile column and `current`.
    pub fn verdict(
        &self,
        current: &FeatureColumn,
        params: &ValidDriftParams,
    ) -> Result<ColumnVerdict, DriftError> {
        match (&self.data, current) {
            (Prepared::Numeric { .. }, FeatureColumn::Numeric(values)) => {
                self.numeric_verdict(values, params)
            }
            (Prepared::Categorical { counts }, FeatureColumn::Categorical(values)) => {
                let counts = CategoryCounts::from_label_counts(counts, &count_labels(values))?;
                categorical_counts_drift(counts, params)
            }
            _ => Err(DriftError::KindMismatch),
        }
    }

    fn numeric_verdict(
        &self,
        values: &[f64],
        params: &ValidDriftParams,
    ) -> Result<ColumnVerdict, DriftError> {
        let Prepared::Numeric {
            sorted,
            std,
            unique,
            index,
        } = &self.data
        else {
            return Err(DriftError::KindMismatch);
        };
        let Some(index) = index else {
            return Err(DriftError::EmptyReference);
        };
        if let Some(v) = wasserstein_verdict(sorted, Some((index, *std)), *unique, values, params) {
            return v;
        }
        let c = sorted_finite(values);
        if c.is_empty() {
            return Err(DriftError::EmptyCurrent);
        }
        numeric_drift_sorted(sorted, Some(*std), &c, params)
    }

    /// The verdict on a model's raw predictions against this prediction column: numbers for a
    /// regression, class indices into `classes` for a classifier (an index outside them is
    /// missing) — what [`prediction_column`] would make of them, without making it.
    pub fn prediction_verdict(
        &self,
        classes: &[String],
        predictions: &[f64],
        params: &ValidDriftParams,
    ) -> Result<ColumnVerdict, DriftError> {
        match &self.data {
            Prepared::Numeric { .. } => self.numeric_verdict(predictions, params),
            Prepared::Categorical { counts } => {
                let mut per_class = vec![0u64; classes.len()];
                for &v in predictions {
                    if v >= 0.0 && v.fract() == 0.0 && (v as usize) < classes.len() {
                        per_class[v as usize] += 1;
                    }
                }
                let mut current = BTreeMap::new();
                for (label, n) in classes.iter().zip(per_class).filter(|(_, n)| *n > 0) {
                    *current.entry(label.as_str()).or_default() += n;
                }
                categorical_counts_drift(
                    CategoryCounts::from_label_counts(counts, &current)?,
                    params,
                )
            }
        }
    }

    /// The number of usable reference values.
    pub fn len(&self) -> usize {
        match &self.data {
            Prepared::Numeric { sorted, .. } => sorted.len(),
            Prepared::Categorical { counts } => counts.iter().map(|(_, n)| *n as usize).sum(),
        }
    }

    /// Whether the reference has no usable value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A profile made ready for many windows; share it (`Arc`) between the monitors of a version.
#[derive(Debug, Clone)]
pub struct PreparedReference {
    /// The model's task.
    pub task: Task,
    /// Its classes.
    pub classes: Vec<String>,
    /// One per input feature, in the model's order.
    pub features: Vec<ReferenceColumn>,
    /// The holdout predictions, if the profile has them.
    pub prediction: Option<ReferenceColumn>,
}

impl PreparedReference {
    /// Prepares `profile` (sorts every numeric column once).
    pub fn new(profile: &ReferenceProfile) -> Arc<PreparedReference> {
        Arc::new(PreparedReference {
            task: profile.task,
            classes: profile.classes.clone(),
            features: profile.features.iter().map(ReferenceColumn::new).collect(),
            prediction: profile.prediction.as_ref().map(ReferenceColumn::new),
        })
    }

    /// The input features' names, in order.
    pub fn feature_names(&self) -> Vec<&str> {
        self.features.iter().map(ReferenceColumn::name).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::column_drift;

    fn info() -> ModelInfo {
        ModelInfo {
            task: Task::Binary,
            features: vec!["x".into(), "kind".into()],
            classes: vec!["no".into(), "yes".into()],
            kind: "test".into(),
        }
    }

    fn frame(n: usize) -> FeatureFrame {
        FeatureFrame {
            rows: n,
            columns: vec![
                FeatureColumn::Numeric(
                    (0..n)
                        .map(|i| if i == 3 { f64::NAN } else { i as f64 })
                        .collect(),
                ),
                FeatureColumn::Categorical(
                    (0..n)
                        .map(|i| (i % 5 != 0).then(|| ["a", "b"][i % 2].to_string()))
                        .collect(),
                ),
            ],
        }
    }

    #[test]
    fn small_training_data_is_kept_whole_and_round_trips() {
        let predictions = Predictions {
            values: vec![0.0, 1.0, 1.0, 7.0],
            probabilities: None,
        };
        let p = ReferenceProfile::build(
            &info(),
            &frame(20),
            Some(&predictions),
            ProfileSampler::with_seed(42),
        );
        assert_eq!(p.training_rows, 20);
        assert_eq!(p.feature_names(), vec!["x", "kind"]);
        let ProfileColumn::Numeric { values, .. } = &p.features[0] else {
            panic!("numeric")
        };
        assert_eq!(values.len(), 20);
        assert_eq!(values[3], None);
        assert_eq!(values[19], Some(19.0));
        assert_eq!(
            p.prediction.as_ref().unwrap().to_feature_column(),
            FeatureColumn::Categorical(vec![
                Some("no".into()),
                Some("yes".into()),
                Some("yes".into()),
                None
            ])
        );
        let back = ReferenceProfile::from_json(&p.to_json()).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn large_training_data_is_sampled_row_aligned_and_deterministic() {
        let sampler = ProfileSampler::new(100, 7).unwrap();
        let a = ReferenceProfile::build(&info(), &frame(1000), None, sampler);
        let b = ReferenceProfile::build(&info(), &frame(1000), None, sampler);
        assert_eq!(a.to_json(), b.to_json());
        let kept = sampler.positions(1000);
        let ProfileColumn::Numeric { values, .. } = &a.features[0] else {
            panic!("numeric")
        };
        let expected: Vec<Option<f64>> =
            kept.iter().map(|&i| (i != 3).then_some(i as f64)).collect();
        assert_eq!(values, &expected);
        assert_eq!(a.prediction, None);
    }

    #[test]
    fn prepared_verdicts_equal_column_drift() {
        let p = ReferenceProfile::build(&info(), &frame(3000), None, ProfileSampler::with_seed(1));
        let prepared = PreparedReference::new(&p);
        let params = ValidDriftParams::default();
        for (i, current) in frame(500).columns.iter().enumerate() {
            let shifted = match current {
                FeatureColumn::Numeric(v) => {
                    FeatureColumn::Numeric(v.iter().map(|x| x * 1.5 + 10.0).collect())
                }
                other => other.clone(),
            };
            for c in [current, &shifted] {
                assert_eq!(
                    prepared.features[i].verdict(c, &params).unwrap(),
                    column_drift(&p.features[i].to_feature_column(), c, &params).unwrap()
                );
            }
        }
    }

    #[test]
    fn prediction_verdicts_equal_the_prediction_columns_drift() {
        let holdout = Predictions {
            values: (0..2000).map(|i| f64::from(i % 3 == 0)).collect(),
            probabilities: None,
        };
        let p = ReferenceProfile::build(
            &info(),
            &frame(3000),
            Some(&holdout),
            ProfileSampler::with_seed(3),
        );
        let prepared = PreparedReference::new(&p);
        let reference = p.prediction.as_ref().unwrap().to_feature_column();
        let params = ValidDriftParams::default();
        // Balanced, then all "yes", then with indices outside the classes (missing).
        for window in [
            (0..500).map(|i| f64::from(i % 2)).collect::<Vec<_>>(),
            vec![1.0; 300],
            vec![0.0, 1.0, 7.0, -1.0, 0.5, 1.0],
        ] {
            let labels = prediction_column(
                Task::Binary,
                &p.classes,
                &Predictions {
                    values: window.clone(),
                    probabilities: None,
                },
            );
            let got = prepared
                .prediction
                .as_ref()
                .unwrap()
                .prediction_verdict(&p.classes, &window, &params);
            assert_eq!(got, column_drift(&reference, &labels, &params));
        }
        // A window whose every prediction is missing.
        assert_eq!(
            prepared
                .prediction
                .as_ref()
                .unwrap()
                .prediction_verdict(&p.classes, &[9.0], &params),
            Err(DriftError::EmptyCurrent)
        );
    }

    #[test]
    fn bad_profiles_are_refused() {
        assert!(ReferenceProfile::from_json(b"{}").is_err());
        let mut p = ReferenceProfile::build(&info(), &frame(3), None, ProfileSampler::with_seed(1));
        p.format = "refit-profile/9".into();
        let err = ReferenceProfile::from_json(&p.to_json()).unwrap_err();
        assert!(err.contains("refit-profile/9"), "{err}");
    }
}
