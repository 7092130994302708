//! The drift monitor of one (dataset, model, version): accumulates the live rows that version
//! scored into windows and, when a window closes, judges it against the version's reference
//! profile.
//!
//! **Windows.** By count ([`Window::Rows`], default 1,000 rows): a window closes as soon as it
//! holds that many rows, and a batch is split across windows as needed. By event time
//! ([`Window::EventTime`]): spans of that length aligned on the Unix epoch (`floor(ts / span)`);
//! rows are taken in arrival order, and a row whose span differs from the open window's closes
//! it and opens the next (so late rows start a window of their own rather than reopening an old
//! one). A window that never closes is not reported; [`DriftMonitor::flush`] closes it on demand.
//!
//! **A closed window** is judged with Evidently's default test per column (see
//! [`super::verdict`]), exactly as [`column_drift`](super::column_drift) on the profile column and
//! the window's values:
//! * every input feature, and the dataset verdict over the input features (drifted share `>=`
//!   `drift_share`, 0.5 by default; the prediction is reported but not counted, so that the
//!   verdict is about the data, not the model);
//! * the prediction column (numbers for a regression, class labels for a classifier) against
//!   the model's holdout predictions, when the profile has them;
//! * **per machine**: every machine with at least `min_machine_rows` rows in the window (30 by
//!   default) is judged on its own rows alone, feature by feature, against the same reference
//!   with the same tests; its measure is its share of drifted features. Machines are ranked by
//!   that share, then by drifted features, then by rows (descending), then by id; at most
//!   `max_machines` are kept (50).
//!
//! A column without a usable value in the window (all missing) is reported with a note and not
//! judged; it counts neither way.
//!
//! **Cost.** The reference is prepared once per version ([`PreparedReference`]: sorted numeric
//! columns, their standard deviation, an index for the Wasserstein distance, label counts).
//! Appending a batch copies its columns and predictions and records each row's machine as an
//! index. Closing a window costs, per numeric feature, one sort of the window (a counting sort on
//! a grid, see `sort.rs`) and one walk over the reference (the normed Wasserstein distance, the
//! test of a reference over 1,000 values, by quantiles) or a merge with it (the other tests);
//! `O(n)` through the reference's index when the reference is many times the window's size. The
//! prediction of a classifier is counted per class. Per machine the same is done on the machine's rows. A window of 100,000
//! values or more (a check of stored history, say) has its columns judged on every core.

use std::collections::HashMap;
use std::sync::Arc;

use refit_registry::drift::{ColumnDrift, MachineDrift, NewDriftReport, ReportSource};

use super::DriftError;
use super::reference::{PreparedReference, ReferenceColumn};
use super::verdict::{ColumnKind, ColumnVerdict, ValidDriftParams};
use crate::frame::{FeatureColumn, FeatureFrame};
use crate::model::Predictions;

/// How live rows are cut into windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// A window every this many rows (at least 1).
    Rows(usize),
    /// A window per epoch-aligned span of event time of this many ms (at least 1).
    EventTime(i64),
}

/// What a monitor needs besides the reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MonitorSettings {
    /// How windows are cut.
    pub window: Window,
    /// Tests, thresholds and the dataset's drift share.
    pub params: ValidDriftParams,
    /// Rows a machine needs in a window to be judged on its own.
    pub min_machine_rows: usize,
    /// Most machines kept per report.
    pub max_machines: usize,
}

impl Default for MonitorSettings {
    fn default() -> Self {
        MonitorSettings {
            window: Window::Rows(1_000),
            params: ValidDriftParams::default(),
            min_machine_rows: 30,
            max_machines: 50,
        }
    }
}

/// Why a batch could not be observed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MonitorError {
    /// The batch's parts disagree, or its columns do not fit the reference.
    #[error("{0}")]
    Input(String),
}

/// Who a report is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MonitorKey {
    /// Dataset.
    pub dataset: String,
    /// Registered model.
    pub model: String,
    /// Version.
    pub version: i64,
}

/// The machine of every row of a window: each row's index into the window's distinct machine
/// ids (a row costs one hash lookup, and no copy of its id once the machine is known).
#[derive(Debug, Default, Clone)]
pub struct MachineRows {
    names: Vec<String>,
    index: HashMap<String, u32, foldhash::fast::FixedState>,
    rows: Vec<u32>,
}

impl MachineRows {
    /// The machines of rows given in order.
    pub fn from_ids<'a>(ids: impl IntoIterator<Item = &'a str>) -> MachineRows {
        let mut machines = MachineRows::default();
        for id in ids {
            machines.push(id);
        }
        machines
    }

    /// Adds a row of machine `id`.
    pub fn push(&mut self, id: &str) {
        let m = match self.index.get(id) {
            Some(&m) => m,
            None => {
                let m = self.names.len() as u32;
                self.names.push(id.to_string());
                self.index.insert(id.to_string(), m);
                m
            }
        };
        self.rows.push(m);
    }

    /// Forgets every row and machine, keeping the buffers.
    fn clear(&mut self) {
        self.names.clear();
        self.index.clear();
        self.rows.clear();
    }

    /// Rows added.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no row was added.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// The window accumulator and judge of one (dataset, model, version).
#[derive(Debug)]
pub struct DriftMonitor {
    key: MonitorKey,
    reference: Arc<PreparedReference>,
    settings: MonitorSettings,
    open: OpenWindow,
}

/// The rows of the open window.
#[derive(Debug, Default)]
struct OpenWindow {
    features: Vec<FeatureColumn>,
    /// The model's raw predictions (class indices for a classifier).
    predictions: Vec<f64>,
    machines: MachineRows,
    ts: Vec<i64>,
    /// The event-time span the window is in (time windows).
    span: Option<i64>,
}

impl OpenWindow {
    fn len(&self) -> usize {
        self.ts.len()
    }
}

fn empty_like(column: &ReferenceColumn) -> FeatureColumn {
    match column.kind() {
        ColumnKind::Numeric => FeatureColumn::Numeric(Vec::new()),
        ColumnKind::Categorical => FeatureColumn::Categorical(Vec::new()),
    }
}

fn extend(into: &mut FeatureColumn, from: &FeatureColumn, range: std::ops::Range<usize>) {
    match (into, from) {
        (FeatureColumn::Numeric(a), FeatureColumn::Numeric(b)) => a.extend_from_slice(&b[range]),
        (FeatureColumn::Categorical(a), FeatureColumn::Categorical(b)) => {
            a.extend_from_slice(&b[range])
        }
        // Kinds are checked when the batch comes in.
        _ => unreachable!("column kinds were checked"),
    }
}

fn subset(column: &FeatureColumn, rows: &[usize]) -> FeatureColumn {
    match column {
        FeatureColumn::Numeric(v) => FeatureColumn::Numeric(rows.iter().map(|&i| v[i]).collect()),
        FeatureColumn::Categorical(v) => {
            FeatureColumn::Categorical(rows.iter().map(|&i| v[i].clone()).collect())
        }
    }
}

fn kind_of(column: &FeatureColumn) -> ColumnKind {
    match column {
        FeatureColumn::Numeric(_) => ColumnKind::Numeric,
        FeatureColumn::Categorical(_) => ColumnKind::Categorical,
    }
}

fn kind_name(kind: ColumnKind) -> &'static str {
    match kind {
        ColumnKind::Numeric => "numeric",
        ColumnKind::Categorical => "categorical",
    }
}

/// The verdict on one column, as reported.
pub fn judge_column(
    reference: &ReferenceColumn,
    current: &FeatureColumn,
    params: &ValidDriftParams,
) -> ColumnDrift {
    report_verdict(reference, reference.verdict(current, params))
}

/// Windows of at least this many values (all columns together) are judged on every core.
const PARALLEL_VALUES: usize = 100_000;

/// [`judge_column`] for every column, in order; a large window's columns are shared out between
/// the machine's cores (a check over stored history, say), a small one's are judged here.
fn judge_columns(
    reference: &[ReferenceColumn],
    current: &[FeatureColumn],
    params: &ValidDriftParams,
) -> Vec<ColumnDrift> {
    let values: usize = current.iter().map(FeatureColumn::len).sum();
    let threads = if values >= PARALLEL_VALUES {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(reference.len())
    } else {
        1
    };
    if threads <= 1 {
        return reference
            .iter()
            .zip(current)
            .map(|(r, c)| judge_column(r, c, params))
            .collect();
    }
    let mut judged: Vec<(usize, ColumnDrift)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|first| {
                scope.spawn(move || {
                    (first..reference.len().min(current.len()))
                        .step_by(threads)
                        .map(|i| (i, judge_column(&reference[i], &current[i], params)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a drift worker panicked"))
            .collect()
    });
    judged.sort_by_key(|(i, _)| *i);
    judged.into_iter().map(|(_, v)| v).collect()
}

/// A column's verdict (or why it has none) as a report line.
fn report_verdict(
    reference: &ReferenceColumn,
    verdict: Result<ColumnVerdict, DriftError>,
) -> ColumnDrift {
    let kind = kind_name(reference.kind()).to_string();
    match verdict {
        Ok(v) => ColumnDrift {
            feature: reference.name().to_string(),
            kind,
            test: Some(v.test.name().to_string()),
            value: Some(v.value),
            threshold: Some(v.threshold),
            drifted: v.drifted,
            note: None,
        },
        Err(e) => ColumnDrift {
            feature: reference.name().to_string(),
            kind,
            test: None,
            value: None,
            threshold: None,
            drifted: false,
            note: Some(e.to_string()),
        },
    }
}

/// Judges a whole window (or a snapshot, or a time range of the history) against a reference:
/// features, prediction, dataset verdict and machines. `features` are in the reference's order;
/// `predictions` are the model's raw predictions (numbers, or class indices for a classifier),
/// if the model scored them.
#[allow(clippy::too_many_arguments)]
pub fn judge_window(
    key: &MonitorKey,
    source: ReportSource,
    reference: &PreparedReference,
    settings: &MonitorSettings,
    features: &[FeatureColumn],
    predictions: Option<&[f64]>,
    machines: &MachineRows,
    ts: &[i64],
) -> NewDriftReport {
    let params = &settings.params;
    let verdicts = judge_columns(&reference.features, features, params);
    let prediction = match (&reference.prediction, predictions) {
        (Some(r), Some(p)) => Some(report_verdict(
            r,
            r.prediction_verdict(&reference.classes, p, params),
        )),
        _ => None,
    };
    let judged = verdicts.iter().filter(|v| v.test.is_some()).count();
    let drifted = verdicts.iter().filter(|v| v.drifted).count();
    let share = if judged == 0 {
        0.0
    } else {
        drifted as f64 / judged as f64
    };
    let drift_share = params.drift_share();
    NewDriftReport {
        dataset: key.dataset.clone(),
        model: key.model.clone(),
        version: key.version,
        source,
        window_start: ts.iter().copied().min().unwrap_or(0),
        window_end: ts.iter().copied().max().unwrap_or(0),
        rows: ts.len() as i64,
        columns: judged as i64,
        drifted_columns: drifted as i64,
        share,
        drift_share,
        dataset_drift: judged > 0 && share >= drift_share,
        features: verdicts,
        prediction,
        machines: judge_machines(reference, settings, features, machines),
    }
}

fn judge_machines(
    reference: &PreparedReference,
    settings: &MonitorSettings,
    features: &[FeatureColumn],
    machines: &MachineRows,
) -> Vec<MachineDrift> {
    let mut rows_of: Vec<Vec<usize>> = vec![Vec::new(); machines.names.len()];
    for (row, &m) in machines.rows.iter().enumerate() {
        rows_of[m as usize].push(row);
    }
    let rows_of = machines.names.iter().map(String::as_str).zip(rows_of);
    let min_rows = settings.min_machine_rows.max(1);
    let mut machines: Vec<MachineDrift> = rows_of
        .into_iter()
        .filter(|(_, rows)| rows.len() >= min_rows)
        .map(|(machine, rows)| {
            let mut judged = 0i64;
            let mut drifted_features = Vec::new();
            for (r, c) in reference.features.iter().zip(features) {
                if let Ok(v) = r.verdict(&subset(c, &rows), &settings.params) {
                    judged += 1;
                    if v.drifted {
                        drifted_features.push(r.name().to_string());
                    }
                }
            }
            let drifted = drifted_features.len() as i64;
            MachineDrift {
                machine_id: machine.to_string(),
                rows: rows.len() as i64,
                columns: judged,
                drifted_columns: drifted,
                share: if judged == 0 {
                    0.0
                } else {
                    drifted as f64 / judged as f64
                },
                drifted_features,
            }
        })
        .collect();
    machines.sort_by(|a, b| {
        b.share
            .total_cmp(&a.share)
            .then(b.drifted_columns.cmp(&a.drifted_columns))
            .then(b.rows.cmp(&a.rows))
            .then_with(|| a.machine_id.cmp(&b.machine_id))
    });
    machines.truncate(settings.max_machines);
    machines
}

impl DriftMonitor {
    /// A monitor of `key` against `reference`.
    pub fn new(
        key: MonitorKey,
        reference: Arc<PreparedReference>,
        settings: MonitorSettings,
    ) -> DriftMonitor {
        let open = OpenWindow::default();
        let mut monitor = DriftMonitor {
            key,
            reference,
            settings,
            open,
        };
        monitor.reset();
        monitor
    }

    /// Who it monitors.
    pub fn key(&self) -> &MonitorKey {
        &self.key
    }

    /// Its settings.
    pub fn settings(&self) -> &MonitorSettings {
        &self.settings
    }

    /// Changes the settings; the open window keeps its rows (a smaller count closes it at the
    /// next batch).
    pub fn set_settings(&mut self, settings: MonitorSettings) {
        self.settings = settings;
    }

    /// Rows in the open window.
    pub fn pending_rows(&self) -> usize {
        self.open.len()
    }

    /// Empties the open window, keeping its buffers for the next one.
    fn reset(&mut self) {
        let open = &mut self.open;
        if open.features.len() == self.reference.features.len() {
            for column in &mut open.features {
                match column {
                    FeatureColumn::Numeric(v) => v.clear(),
                    FeatureColumn::Categorical(v) => v.clear(),
                }
            }
        } else {
            open.features = self.reference.features.iter().map(empty_like).collect();
        }
        open.predictions.clear();
        open.machines.clear();
        open.ts.clear();
        open.span = None;
    }

    /// Adds a scored batch (its features in the model's order, its predictions, each row's
    /// machine and event time) and returns a report for every window it closed, oldest first.
    pub fn observe<S: AsRef<str>>(
        &mut self,
        frame: &FeatureFrame,
        predictions: &Predictions,
        machine_ids: &[S],
        ts: &[i64],
    ) -> Result<Vec<NewDriftReport>, MonitorError> {
        let n = frame.rows;
        if predictions.values.len() != n || machine_ids.len() != n || ts.len() != n {
            return Err(MonitorError::Input(format!(
                "a batch of {n} rows came with {} predictions, {} machine ids and {} times",
                predictions.values.len(),
                machine_ids.len(),
                ts.len()
            )));
        }
        if frame.columns.len() != self.reference.features.len() {
            return Err(MonitorError::Input(format!(
                "a batch of {} columns for a reference of {} features",
                frame.columns.len(),
                self.reference.features.len()
            )));
        }
        for (c, r) in frame.columns.iter().zip(&self.reference.features) {
            if c.len() != n || kind_of(c) != r.kind() {
                return Err(MonitorError::Input(format!(
                    "column '{}' is not a {} column of {n} rows",
                    r.name(),
                    kind_name(r.kind())
                )));
            }
        }
        let mut reports = Vec::new();
        let mut start = 0;
        while start < n {
            // The longest run of rows from `start` that goes into the open window.
            let end = match self.settings.window {
                Window::Rows(size) => {
                    let room = size.max(1).saturating_sub(self.open.len()).max(1);
                    (start + room).min(n)
                }
                Window::EventTime(span) => {
                    let span = span.max(1);
                    let key = ts[start].div_euclid(span);
                    if self.open.span.is_some_and(|open| open != key) {
                        reports.push(self.close());
                    }
                    self.open.span = Some(key);
                    let mut end = start + 1;
                    while end < n && ts[end].div_euclid(span) == key {
                        end += 1;
                    }
                    end
                }
            };
            for (into, from) in self.open.features.iter_mut().zip(&frame.columns) {
                extend(into, from, start..end);
            }
            self.open
                .predictions
                .extend_from_slice(&predictions.values[start..end]);
            for id in &machine_ids[start..end] {
                self.open.machines.push(id.as_ref());
            }
            self.open.ts.extend_from_slice(&ts[start..end]);
            if let Window::Rows(size) = self.settings.window
                && self.open.len() >= size.max(1)
            {
                reports.push(self.close());
            }
            start = end;
        }
        Ok(reports)
    }

    /// Closes the open window now, if it has rows.
    pub fn flush(&mut self) -> Option<NewDriftReport> {
        (self.open.len() > 0).then(|| self.close())
    }

    fn close(&mut self) -> NewDriftReport {
        let report = judge_window(
            &self.key,
            ReportSource::Stream,
            &self.reference,
            &self.settings,
            &self.open.features,
            self.reference
                .prediction
                .is_some()
                .then_some(self.open.predictions.as_slice()),
            &self.open.machines,
            &self.open.ts,
        );
        self.reset();
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::reference::{PREDICTION_COLUMN, ReferenceProfile};
    use crate::drift::{ProfileSampler, column_drift};
    use crate::model::{ModelInfo, Task};

    fn reference() -> (ReferenceProfile, Arc<PreparedReference>) {
        let info = ModelInfo {
            task: Task::Regression,
            features: vec!["a".into(), "b".into()],
            classes: vec![],
            kind: "test".into(),
        };
        let n = 2000;
        let frame = FeatureFrame {
            rows: n,
            columns: vec![
                FeatureColumn::Numeric((0..n).map(|i| (i % 100) as f64).collect()),
                FeatureColumn::Categorical(
                    (0..n)
                        .map(|i| Some(["x", "y", "z"][i % 3].into()))
                        .collect(),
                ),
            ],
        };
        let preds = Predictions {
            values: (0..500).map(|i| (i % 50) as f64).collect(),
            probabilities: None,
        };
        let p = ReferenceProfile::build(&info, &frame, Some(&preds), ProfileSampler::with_seed(3));
        let prepared = PreparedReference::new(&p);
        (p, prepared)
    }

    fn key() -> MonitorKey {
        MonitorKey {
            dataset: "d".into(),
            model: "m".into(),
            version: 1,
        }
    }

    /// `n` rows from `offset`: `a` shifted by `shift`, machines m0..m3 in turn.
    fn batch(
        offset: usize,
        n: usize,
        shift: f64,
    ) -> (FeatureFrame, Predictions, Vec<String>, Vec<i64>) {
        let rows: Vec<usize> = (offset..offset + n).collect();
        (
            FeatureFrame {
                rows: n,
                columns: vec![
                    FeatureColumn::Numeric(
                        rows.iter().map(|&i| (i % 100) as f64 + shift).collect(),
                    ),
                    FeatureColumn::Categorical(
                        rows.iter()
                            .map(|&i| Some(["x", "y", "z"][i % 3].into()))
                            .collect(),
                    ),
                ],
            },
            Predictions {
                values: rows.iter().map(|&i| (i % 50) as f64).collect(),
                probabilities: None,
            },
            rows.iter().map(|&i| format!("m{}", i % 4)).collect(),
            rows.iter().map(|&i| i as i64 * 1000).collect(),
        )
    }

    #[test]
    fn count_windows_split_batches_and_match_column_drift() {
        let (profile, prepared) = reference();
        let settings = MonitorSettings {
            window: Window::Rows(300),
            ..MonitorSettings::default()
        };
        let mut monitor = DriftMonitor::new(key(), prepared, settings);
        let (f, p, m, t) = batch(0, 250, 0.0);
        assert!(monitor.observe(&f, &p, &m, &t).unwrap().is_empty());
        assert_eq!(monitor.pending_rows(), 250);
        let (f, p, m, t) = batch(250, 400, 40.0);
        let reports = monitor.observe(&f, &p, &m, &t).unwrap();
        assert_eq!(reports.len(), 2);
        assert_eq!(monitor.pending_rows(), 50);
        let second = &reports[1];
        assert_eq!(
            (second.rows, second.window_start, second.window_end),
            (300, 300_000, 599_000)
        );
        // The second window's values, rebuilt here: rows 300..600, all shifted.
        let (f2, _, _, _) = batch(300, 300, 40.0);
        let params = ValidDriftParams::default();
        for (i, v) in second.features.iter().enumerate() {
            let expected = column_drift(
                &profile.features[i].to_feature_column(),
                &f2.columns[i],
                &params,
            )
            .unwrap();
            assert_eq!(v.test.as_deref(), Some(expected.test.name()));
            assert_eq!(v.value, Some(expected.value));
            assert_eq!(v.drifted, expected.drifted);
        }
        assert!(second.features[0].drifted);
        assert!(!second.features[1].drifted);
        assert_eq!((second.columns, second.drifted_columns), (2, 1));
        assert!(second.dataset_drift, "a share of 0.5 drifts");
        let prediction = second.prediction.as_ref().unwrap();
        assert_eq!(prediction.feature, PREDICTION_COLUMN);
        assert!(!prediction.drifted);
        // Four machines with 75 rows each, all with `a` drifted.
        assert_eq!(second.machines.len(), 4);
        assert!(
            second
                .machines
                .iter()
                .all(|m| m.rows == 75 && m.share == 0.5)
        );
        assert_eq!(second.machines[0].machine_id, "m0");
    }

    #[test]
    fn time_windows_close_when_the_span_changes() {
        let (_, prepared) = reference();
        let settings = MonitorSettings {
            window: Window::EventTime(100_000),
            min_machine_rows: 1000,
            ..MonitorSettings::default()
        };
        let mut monitor = DriftMonitor::new(key(), prepared, settings);
        // Rows at 0..249 s: spans [0,100), [100,200) close; [200,250) stays open.
        let (f, p, m, t) = batch(0, 250, 0.0);
        let reports = monitor.observe(&f, &p, &m, &t).unwrap();
        assert_eq!(reports.len(), 2);
        assert_eq!(
            (reports[0].window_start, reports[0].window_end),
            (0, 99_000)
        );
        assert_eq!(reports[1].rows, 100);
        assert!(reports[1].machines.is_empty());
        assert_eq!(monitor.pending_rows(), 50);
        assert_eq!(monitor.flush().unwrap().rows, 50);
        assert!(monitor.flush().is_none());
    }

    #[test]
    fn large_windows_are_judged_on_several_threads_with_the_same_verdicts() {
        let (_, prepared) = reference();
        // Enough values for the parallel path: 2 columns of 60,000 rows.
        let (frame, predictions, machines, ts) = batch(0, 60_000, 7.5);
        assert!(frame.rows * frame.columns.len() >= PARALLEL_VALUES);
        let report = judge_window(
            &key(),
            ReportSource::Check,
            &prepared,
            &MonitorSettings::default(),
            &frame.columns,
            Some(&predictions.values),
            &MachineRows::from_ids(machines.iter().map(String::as_str)),
            &ts,
        );
        let one_by_one: Vec<ColumnDrift> = prepared
            .features
            .iter()
            .zip(&frame.columns)
            .map(|(r, c)| judge_column(r, c, &ValidDriftParams::default()))
            .collect();
        assert_eq!(report.features, one_by_one);
        assert_eq!(
            report
                .features
                .iter()
                .map(|f| f.feature.as_str())
                .collect::<Vec<_>>(),
            vec!["a", "b"]
        );
        assert!(report.features[0].drifted);
        assert_eq!(report.machines.len(), 4);
        assert_eq!(report.machines[0].rows, 15_000);
    }

    #[test]
    fn mismatched_batches_are_refused() {
        let (_, prepared) = reference();
        let mut monitor = DriftMonitor::new(key(), prepared, MonitorSettings::default());
        let (f, p, m, t) = batch(0, 10, 0.0);
        let err = monitor.observe(&f, &p, &m[..9], &t).unwrap_err();
        assert!(err.to_string().contains("9 machine ids"), "{err}");
        let mut swapped = f.clone();
        swapped.columns.swap(0, 1);
        let err = monitor.observe(&swapped, &p, &m, &t).unwrap_err();
        assert!(
            err.to_string().contains("'a' is not a numeric column"),
            "{err}"
        );
    }
}
