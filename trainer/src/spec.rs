//! Training specs: what to retrain, on which data, how, how often, and what a candidate must do
//! to be promoted. A spec is JSON; [`TrainingSpec::validate`] checks it once, against its
//! dataset's schema, into a [`ValidSpec`] that the trainer runs. Every refusal names the field.

use std::collections::BTreeMap;
use std::fmt;

use refit_registry::Store;
use refit_registry::datasets::{ColumnKind, Schema};
use refit_registry::training::SpecFields;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::algorithms::{Algorithm, Hyperparameters, ParamValue};
use crate::evaluate::MetricName;
use crate::gate::Gate;
use refit_scorer::Task;

/// Most grid points (fits) one training may try.
pub const MAX_GRID: usize = 64;

/// A spec as sent and stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainingSpec {
    /// Unique name; also the experiment the runs are logged in.
    pub name: String,
    /// Dataset to train on.
    pub dataset: String,
    /// Registered model the candidates become versions of; default: the spec's name.
    #[serde(default)]
    pub model: Option<String>,
    /// Feature columns, in the model's input order.
    pub features: Vec<String>,
    /// Label column to predict.
    pub target: String,
    /// `regression`, `binary` or `multiclass`.
    pub task: Task,
    /// Input preprocessing. Categorical features are always one-hot encoded.
    #[serde(default)]
    pub preprocessing: Preprocessing,
    /// Algorithm: `linear_regression`, `elastic_net`, `logistic_regression`, `gaussian_nb`,
    /// `decision_tree`, `random_forest`, `gradient_boosting`.
    pub algorithm: Algorithm,
    /// Fixed hyperparameters.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub params: BTreeMap<String, ParamValue>,
    /// Hyperparameters to search: each name with the values to try; every combination is a run.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub grid: BTreeMap<String, Vec<ParamValue>>,
    /// Data to train on: `all`, or the most recent span such as `30d`, `12h` (ending at the
    /// newest reading).
    #[serde(default = "default_window")]
    pub window: String,
    /// The most recent part of the window held out to evaluate candidate and champion.
    #[serde(default)]
    pub holdout: Holdout,
    /// How grid points are compared: the most recent `fraction` of the training part (by time)
    /// validates models fitted on the rest.
    #[serde(default)]
    pub validation: Validation,
    /// Metric that picks the best grid point; default: `rmse` for regression, `f1` for
    /// classification.
    #[serde(default)]
    pub selection_metric: Option<MetricName>,
    /// 6-field cron (seconds first, UTC), e.g. `0 0 3 * * *` for 03:00 daily.
    #[serde(default)]
    pub schedule: Option<String>,
    /// Other things that start a training.
    #[serde(default)]
    pub triggers: Triggers,
    /// What a candidate must do to be promoted.
    #[serde(default)]
    pub gate: Gate,
    /// After a promotion, watch the new champion's realized metric (labels arriving for the
    /// records it scored) and roll back to its predecessor if it does worse; default: no watch.
    #[serde(default)]
    pub watch: Option<Watch>,
    /// Seed for every random choice (sampling, bootstrap); the same seed on the same snapshots
    /// gives the same model bytes.
    #[serde(default = "default_seed")]
    pub seed: u64,
}

fn default_window() -> String {
    "all".into()
}

fn default_seed() -> u64 {
    42
}

/// The post-promotion watch: once the new champion has `windows` windows of realized metrics,
/// their mean `metric` is compared with its predecessor's over its last `windows` windows (from
/// before the promotion); worse by more than `margin` (in the metric's own units; lower is worse
/// unless the metric is an error) rolls back to the predecessor, recorded in the ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Watch {
    /// The realized metric compared.
    pub metric: MetricName,
    /// Windows of realized metrics compared on each side (1-100). Default 1.
    #[serde(default = "one")]
    pub windows: usize,
    /// How much worse the new champion may be before it is rolled back (>= 0).
    pub margin: f64,
}

fn one() -> usize {
    1
}

/// Most realized windows a watch compares.
pub const MAX_WATCH_WINDOWS: usize = 100;

/// Input preprocessing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Preprocessing {
    /// Standard-scale numeric features (training mean and standard deviation). Default: true.
    #[serde(default = "yes")]
    pub scale: bool,
}

fn yes() -> bool {
    true
}

impl Default for Preprocessing {
    fn default() -> Self {
        Preprocessing { scale: true }
    }
}

/// The held-out part of the window, always the most recent (never shuffled).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Holdout {
    /// Fraction of the window's rows, by time (0.05-0.5). Default 0.2.
    #[serde(default)]
    pub fraction: Option<f64>,
    /// Or a span at the end of the window, e.g. `3d`.
    #[serde(default)]
    pub duration: Option<String>,
}

impl Default for Holdout {
    fn default() -> Self {
        Holdout {
            fraction: Some(0.2),
            duration: None,
        }
    }
}

/// Validation for grid selection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Validation {
    /// Most recent fraction of the training part that validates (0.05-0.5). Default 0.2.
    #[serde(default = "default_validation")]
    pub fraction: f64,
}

fn default_validation() -> f64 {
    0.2
}

impl Default for Validation {
    fn default() -> Self {
        Validation { fraction: 0.2 }
    }
}

/// Triggers besides the schedule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Triggers {
    /// Train when this many new readings were stored since the last training.
    #[serde(default)]
    pub new_rows: Option<u64>,
    /// Train when the model's drift reports show dataset drift in consecutive windows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftTrigger>,
}

/// The drift trigger: `consecutive` stream drift reports of the spec's model on its dataset in a
/// row with dataset drift queue a training (trigger `drift`), at most once per `cooldown_secs`,
/// and each report counts towards one training only (see `crate::drift`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DriftTrigger {
    /// Drifting windows in a row needed (1-100). Default 3.
    #[serde(default = "default_consecutive")]
    pub consecutive: u32,
    /// Least time between two drift-triggered trainings, in seconds (at most 30 days). Default
    /// 21,600 (6 h).
    #[serde(default = "default_cooldown")]
    pub cooldown_secs: u64,
}

/// Most drifting windows in a row a drift trigger may ask for.
pub const MAX_DRIFT_CONSECUTIVE: u32 = 100;
/// Longest drift trigger cooldown, in seconds (30 days).
pub const MAX_DRIFT_COOLDOWN_SECS: u64 = 30 * 86_400;

fn default_consecutive() -> u32 {
    3
}

fn default_cooldown() -> u64 {
    21_600
}

/// Why a spec was refused: the field and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct SpecError {
    /// JSON path of the offending field, e.g. `grid.max_depth[2]`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

fn err(field: impl fmt::Display, reason: impl fmt::Display) -> SpecError {
    SpecError {
        field: field.to_string(),
        reason: reason.to_string(),
    }
}

/// A time span: `90s`, `30m`, `12h`, `7d`, `2w`, in ms.
pub fn parse_span(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: i64 = digits
        .parse()
        .map_err(|_| format!("'{text}' is not a span such as 30d, 12h, 90m"))?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => return Err(format!("'{text}': the unit must be s, m, h, d or w")),
    };
    if n <= 0 {
        return Err(format!("'{text}' must be positive"));
    }
    n.checked_mul(unit_ms)
        .ok_or_else(|| format!("'{text}' is too long"))
}

/// A spec checked against its dataset's schema.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidSpec {
    /// The spec as given.
    pub spec: TrainingSpec,
    /// Registered model name.
    pub model: String,
    /// Position of each feature in the schema's features.
    pub feature_positions: Vec<usize>,
    /// Whether each feature is numeric.
    pub numeric: Vec<bool>,
    /// Position of the target in the schema's labels.
    pub target_position: usize,
    /// Whether the target is numeric.
    pub target_numeric: bool,
    /// Window length in ms, or None for all data.
    pub window_ms: Option<i64>,
    /// The grid, expanded: fixed params merged with each combination, in a stable order.
    pub grid: Vec<Hyperparameters>,
    /// Metric used to choose among grid points.
    pub selection_metric: MetricName,
}

impl TrainingSpec {
    /// Checks the spec against `schema` (the dataset's current schema).
    pub fn validate(&self, schema: &Schema) -> Result<ValidSpec, SpecError> {
        if self.name.trim().is_empty()
            || self.name.len() > 100
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(err("name", "use 1-100 characters from A-Z a-z 0-9 _ - ."));
        }
        if self.features.is_empty() {
            return Err(err("features", "list at least one feature"));
        }
        let mut feature_positions = Vec::new();
        let mut numeric = Vec::new();
        for (i, f) in self.features.iter().enumerate() {
            let (pos, column) = schema.feature(f).ok_or_else(|| {
                let known: Vec<&str> = schema.features.iter().map(|c| c.name.as_str()).collect();
                err(
                    format!("features[{i}]"),
                    format!(
                        "'{f}' is not a feature of dataset '{}' (its features: {})",
                        self.dataset,
                        known.join(", ")
                    ),
                )
            })?;
            if feature_positions.contains(&pos) {
                return Err(err(
                    format!("features[{i}]"),
                    format!("'{f}' is listed twice"),
                ));
            }
            feature_positions.push(pos);
            numeric.push(column.kind == ColumnKind::Numeric);
        }
        let (target_position, target) = schema.label(&self.target).ok_or_else(|| {
            let hint = if schema.feature(&self.target).is_some() {
                " (it is a feature)"
            } else {
                ""
            };
            err(
                "target",
                format!(
                    "'{}' is not a label column of dataset '{}'{hint}",
                    self.target, self.dataset
                ),
            )
        })?;
        let target_numeric = target.kind == ColumnKind::Numeric;
        if self.task == Task::Regression && !target_numeric {
            return Err(err(
                "task",
                format!(
                    "regression needs a numeric target; '{}' is categorical",
                    self.target
                ),
            ));
        }
        let window_ms = match self.window.as_str() {
            "all" => None,
            span => Some(parse_span(span).map_err(|e| err("window", e))?),
        };
        match (&self.holdout.fraction, &self.holdout.duration) {
            (Some(f), None) if (0.05..=0.5).contains(f) => {}
            (Some(f), None) => {
                return Err(err("holdout.fraction", format!("{f} is outside 0.05-0.5")));
            }
            (None, Some(d)) => {
                parse_span(d).map_err(|e| err("holdout.duration", e))?;
            }
            (Some(_), Some(_)) => {
                return Err(err("holdout", "give a fraction or a duration, not both"));
            }
            (None, None) => return Err(err("holdout", "give a fraction or a duration")),
        }
        if !(0.05..=0.5).contains(&self.validation.fraction) {
            return Err(err(
                "validation.fraction",
                format!("{} is outside 0.05-0.5", self.validation.fraction),
            ));
        }
        let selection_metric = self
            .selection_metric
            .unwrap_or(if self.task == Task::Regression {
                MetricName::Rmse
            } else {
                MetricName::F1
            });
        if selection_metric.is_regression() != (self.task == Task::Regression) {
            return Err(err(
                "selection_metric",
                format!(
                    "{selection_metric} does not apply to {:?} models",
                    self.task
                ),
            ));
        }
        if !self.algorithm.supports(self.task) {
            return Err(err(
                "algorithm",
                format!("{} cannot do {:?}", self.algorithm, self.task),
            ));
        }
        let grid = self.expand_grid()?;
        if let Some(cron) = &self.schedule {
            validate_cron(cron).map_err(|e| err("schedule", e))?;
        }
        if self.triggers.new_rows == Some(0) {
            return Err(err("triggers.new_rows", "must be at least 1"));
        }
        if let Some(drift) = &self.triggers.drift {
            if !(1..=MAX_DRIFT_CONSECUTIVE).contains(&drift.consecutive) {
                return Err(err(
                    "triggers.drift.consecutive",
                    format!("{} is outside 1-{MAX_DRIFT_CONSECUTIVE}", drift.consecutive),
                ));
            }
            if drift.cooldown_secs > MAX_DRIFT_COOLDOWN_SECS {
                return Err(err(
                    "triggers.drift.cooldown_secs",
                    format!(
                        "{} is more than {MAX_DRIFT_COOLDOWN_SECS} (30 days)",
                        drift.cooldown_secs
                    ),
                ));
            }
        }
        if let Some(watch) = &self.watch {
            if watch.metric.is_regression() != (self.task == Task::Regression) {
                return Err(err(
                    "watch.metric",
                    format!("{} does not judge a {:?} model", watch.metric, self.task),
                ));
            }
            if !(1..=MAX_WATCH_WINDOWS).contains(&watch.windows) {
                return Err(err(
                    "watch.windows",
                    format!("{} is outside 1-{MAX_WATCH_WINDOWS}", watch.windows),
                ));
            }
            if !(watch.margin.is_finite() && watch.margin >= 0.0) {
                return Err(err("watch.margin", "must be a number >= 0"));
            }
        }
        self.gate
            .validate(self.task)
            .map_err(|(field, reason)| err(format!("gate.{field}"), reason))?;
        Ok(ValidSpec {
            model: self.model.clone().unwrap_or_else(|| self.name.clone()),
            spec: self.clone(),
            feature_positions,
            numeric,
            target_position,
            target_numeric,
            window_ms,
            grid,
            selection_metric,
        })
    }

    /// Every combination of the grid, each merged over the fixed params and checked.
    fn expand_grid(&self) -> Result<Vec<Hyperparameters>, SpecError> {
        for name in self.grid.keys() {
            if self.params.contains_key(name) {
                return Err(err(
                    format!("grid.{name}"),
                    "is also fixed in params; give it in one place",
                ));
            }
        }
        let mut points: Vec<BTreeMap<String, ParamValue>> = vec![self.params.clone()];
        for (name, values) in &self.grid {
            if values.is_empty() {
                return Err(err(format!("grid.{name}"), "list at least one value"));
            }
            let size = points.len() * values.len();
            if size > MAX_GRID {
                return Err(err(
                    "grid",
                    format!("{size} or more combinations; at most {MAX_GRID} are tried"),
                ));
            }
            points = points
                .into_iter()
                .flat_map(|p| {
                    values.iter().map(move |v| {
                        let mut q = p.clone();
                        q.insert(name.clone(), v.clone());
                        q
                    })
                })
                .collect();
        }
        points
            .into_iter()
            .map(|p| {
                Hyperparameters::check(self.algorithm, p).map_err(|(name, reason)| {
                    let field = if self.grid.contains_key(&name) {
                        format!("grid.{name}")
                    } else {
                        format!("params.{name}")
                    };
                    err(field, reason)
                })
            })
            .collect()
    }
}

/// Why a spec could not be checked against its stored dataset.
#[derive(Debug, thiserror::Error)]
pub enum SpecCheckError {
    /// The spec is refused; the error names the field.
    #[error(transparent)]
    Invalid(#[from] SpecError),
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] refit_registry::Error),
}

impl TrainingSpec {
    /// Validates the spec against its dataset's current schema as stored: the one check every
    /// way of storing a spec (API, CLI) goes through. An unknown dataset is a refusal of the
    /// field `dataset`.
    pub async fn check(&self, store: &Store) -> Result<ValidSpec, SpecCheckError> {
        let dataset = match store.get_dataset(&self.dataset).await {
            Ok(d) => d,
            Err(refit_registry::Error::NotFound(_)) => {
                return Err(err("dataset", format!("no dataset named '{}'", self.dataset)).into());
            }
            Err(e) => return Err(e.into()),
        };
        Ok(self.validate(&dataset.schema)?)
    }
}

impl ValidSpec {
    /// The spec as stored: its JSON.
    pub fn definition(&self) -> serde_json::Value {
        serde_json::to_value(&self.spec).expect("specs serialize")
    }

    /// What the registry stores for the spec, `definition` being [`ValidSpec::definition`].
    pub fn fields<'a>(&'a self, definition: &'a serde_json::Value) -> SpecFields<'a> {
        SpecFields {
            name: &self.spec.name,
            dataset: &self.spec.dataset,
            model_name: &self.model,
            definition,
            schedule: self.spec.schedule.as_deref(),
        }
    }
}

/// Checks a 6-field cron expression (seconds first), as the scheduler reads it.
pub fn validate_cron(expr: &str) -> Result<(), String> {
    if expr.split_whitespace().count() != 6 {
        return Err(format!(
            "'{expr}' must have 6 fields (seconds minutes hours day-of-month month day-of-week)"
        ));
    }
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .build()
        .parse(expr)
        .map(|_| ())
        .map_err(|e| format!("'{expr}' is not a valid cron expression: {e}"))
}
