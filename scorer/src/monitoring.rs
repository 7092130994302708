//! Drift monitoring wired to the registry: one [`DriftMonitor`] per (dataset, model, version),
//! each version's reference profile loaded and prepared once, each dataset's window settings read
//! from the registry, closed windows stored as drift reports and handed to a hook (the drift
//! trigger), and on-demand checks of stored history.
//!
//! The stream pipeline calls [`DriftMonitors::observe`] once per scored batch, after the batch's
//! records and scores are committed, with the batch's features (in the model's order), the
//! predictions, each row's machine and event time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use refit_registry::datasets::{Schema, SnapshotRow};
use refit_registry::drift::{DriftReport, DriftSettings, NewDriftReport, ReportSource};
use refit_registry::{Error as RegistryError, Store};

use crate::drift::monitor::MachineRows;
use crate::drift::reference::{PreparedReference, ProfileColumn, load_profile};
use crate::drift::{DriftMonitor, DriftParams, MonitorKey, MonitorSettings, Window, judge_window};
use crate::frame::FeatureFrame;
use crate::model::Predictions;
use crate::serving::{ModelServer, ServeError, Served};

/// How long a dataset's settings are trusted before they are read again.
const SETTINGS_REFRESH: Duration = Duration::from_secs(10);
/// Batches with at least this many rows (with the open window's) are judged on the blocking pool.
const BLOCKING_ROWS: usize = 4_096;

/// Called with every stored stream report (e.g. to evaluate drift triggers).
pub type ReportHook = Arc<dyn Fn(&DriftReport) + Send + Sync>;

/// Why drift could not be monitored or checked.
#[derive(Debug, thiserror::Error)]
pub enum MonitoringError {
    /// Something named does not exist (model version, profile, dataset).
    #[error("{0}")]
    NotFound(String),
    /// The input does not fit (features, lengths, an empty range).
    #[error("{0}")]
    Input(String),
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl From<ServeError> for MonitoringError {
    fn from(e: ServeError) -> Self {
        match e {
            ServeError::NotFound(m) => MonitoringError::NotFound(m),
            ServeError::Registry(e) => MonitoringError::Registry(e),
            other => MonitoringError::Input(other.to_string()),
        }
    }
}

/// Window settings of a dataset as a monitor uses them.
pub fn monitor_settings(settings: &DriftSettings) -> MonitorSettings {
    let params = DriftParams {
        drift_share: settings.drift_share,
        ..DriftParams::default()
    }
    .check()
    .unwrap_or_default();
    MonitorSettings {
        window: match (settings.window_rows, settings.window_ms) {
            (_, Some(ms)) => Window::EventTime(ms.max(1)),
            (Some(rows), None) => Window::Rows(rows.max(1) as usize),
            (None, None) => MonitorSettings::default().window,
        },
        params,
        min_machine_rows: settings.min_machine_rows.max(1) as usize,
        ..MonitorSettings::default()
    }
}

/// (model, version) → its prepared profile, or `None` if it has none.
type References = HashMap<(String, i64), Option<Arc<PreparedReference>>>;

/// Every drift monitor of this process; cheap to share (`Arc`).
pub struct DriftMonitors {
    store: Store,
    monitors: Mutex<HashMap<MonitorKey, Arc<Mutex<DriftMonitor>>>>,
    references: tokio::sync::Mutex<References>,
    settings: Mutex<HashMap<String, (MonitorSettings, Instant)>>,
    hook: RwLock<Option<ReportHook>>,
}

impl DriftMonitors {
    /// Monitors storing their reports in `store`.
    pub fn new(store: Store) -> DriftMonitors {
        DriftMonitors {
            store,
            monitors: Mutex::default(),
            references: tokio::sync::Mutex::default(),
            settings: Mutex::default(),
            hook: RwLock::default(),
        }
    }

    /// Calls `hook` with every stream report stored from now on.
    pub fn on_report(&self, hook: ReportHook) {
        *self.hook.write().expect("hook lock") = Some(hook);
    }

    /// The prepared profile of a version, loaded once (`None` if it has none).
    pub async fn reference(
        &self,
        model: &str,
        version: i64,
    ) -> Result<Option<Arc<PreparedReference>>, MonitoringError> {
        let mut references = self.references.lock().await;
        if let Some(hit) = references.get(&(model.to_string(), version)) {
            return Ok(hit.clone());
        }
        let prepared = match load_profile(&self.store, model, version).await {
            Ok(profile) => Some(PreparedReference::new(&profile)),
            Err(ServeError::NotFound(why)) => {
                tracing::info!(model, version, %why, "no reference profile: drift is not monitored");
                None
            }
            Err(ServeError::Registry(e)) => return Err(e.into()),
            Err(e) => {
                tracing::warn!(model, version, error = %e, "unusable reference profile");
                None
            }
        };
        references.insert((model.to_string(), version), prepared.clone());
        Ok(prepared)
    }

    async fn settings(&self, dataset: &str) -> Result<MonitorSettings, MonitoringError> {
        if let Some((s, at)) = self.settings.lock().expect("settings lock").get(dataset)
            && at.elapsed() < SETTINGS_REFRESH
        {
            return Ok(*s);
        }
        let s = monitor_settings(&self.store.drift_settings(dataset).await?);
        self.settings
            .lock()
            .expect("settings lock")
            .insert(dataset.to_string(), (s, Instant::now()));
        Ok(s)
    }

    /// Forgets cached settings (after they were changed through this process).
    pub fn settings_changed(&self, dataset: &str) {
        self.settings.lock().expect("settings lock").remove(dataset);
    }

    /// Adds a batch `served` scored for `dataset` to its monitor; stores a report for every
    /// window that closed and returns them, oldest first. A version without a reference profile
    /// is not monitored (nothing is returned).
    pub async fn observe<S: AsRef<str> + Sync>(
        &self,
        dataset: &str,
        served: &Served,
        frame: &FeatureFrame,
        predictions: &Predictions,
        machine_ids: &[S],
        ts: &[i64],
    ) -> Result<Vec<DriftReport>, MonitoringError> {
        let closed = self
            .close_windows(dataset, served, frame, predictions, machine_ids, ts)
            .await?;
        self.store_reports(&closed).await
    }

    /// Adds a batch to its monitor as [`DriftMonitors::observe`] does, and returns the reports of
    /// the windows it closed, oldest first, without storing them (see
    /// [`DriftMonitors::store_reports`]).
    pub async fn close_windows<S: AsRef<str> + Sync>(
        &self,
        dataset: &str,
        served: &Served,
        frame: &FeatureFrame,
        predictions: &Predictions,
        machine_ids: &[S],
        ts: &[i64],
    ) -> Result<Vec<NewDriftReport>, MonitoringError> {
        let Some(reference) = self.reference(&served.model, served.version).await? else {
            return Ok(Vec::new());
        };
        let features = &served.inner.info().features;
        if reference.feature_names() != features.iter().map(String::as_str).collect::<Vec<_>>() {
            return Err(MonitoringError::Input(format!(
                "the reference profile of version {} of '{}' has features {:?}, the model {:?}",
                served.version,
                served.model,
                reference.feature_names(),
                features
            )));
        }
        let settings = self.settings(dataset).await?;
        let key = MonitorKey {
            dataset: dataset.to_string(),
            model: served.model.clone(),
            version: served.version,
        };
        let monitor = self
            .monitors
            .lock()
            .expect("monitors lock")
            .entry(key.clone())
            .or_insert_with(|| {
                Arc::new(Mutex::new(DriftMonitor::new(
                    key,
                    reference.clone(),
                    settings,
                )))
            })
            .clone();
        let pending = {
            let mut m = monitor.lock().expect("monitor lock");
            m.set_settings(settings);
            m.pending_rows()
        };
        let observe = || {
            monitor
                .lock()
                .expect("monitor lock")
                .observe(frame, predictions, machine_ids, ts)
        };
        // Closing windows of a large batch is CPU work: on a multi-threaded runtime it runs as
        // blocking work in place (the batch is borrowed, not copied to another thread).
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let closed = if pending + frame.rows >= BLOCKING_ROWS && multi_thread {
            tokio::task::block_in_place(|| at_low_priority(observe))
        } else {
            observe()
        }
        .map_err(|e| MonitoringError::Input(e.to_string()))?;
        Ok(closed)
    }

    /// Stores the reports of closed windows together (one commit, not one per window) and hands
    /// each to the drift hook; returns them with their ids, in order.
    pub async fn store_reports(
        &self,
        closed: &[NewDriftReport],
    ) -> Result<Vec<DriftReport>, MonitoringError> {
        if closed.is_empty() {
            return Ok(Vec::new());
        }
        let stored = self.store.create_drift_reports(closed).await?;
        let hook = self.hook.read().expect("hook lock").clone();
        if let Some(hook) = hook {
            stored.iter().for_each(|report| hook(report));
        }
        Ok(stored)
    }
}

/// Judges stored history (`rows` of a dataset with `schema`, e.g. a snapshot or a time range)
/// against the reference profile of `model` version `version`, as one window: features by name
/// from the rows, the prediction column from the version's own predictions on them (when it can
/// be loaded). Not stored.
#[allow(clippy::too_many_arguments)]
pub async fn check_rows(
    store: &Store,
    models: &ModelServer,
    dataset: &str,
    model: &str,
    version: i64,
    schema: &Schema,
    rows: Vec<SnapshotRow>,
    settings: MonitorSettings,
) -> Result<NewDriftReport, MonitoringError> {
    let profile = match load_profile(store, model, version).await {
        Ok(p) => p,
        Err(ServeError::NotFound(_)) => {
            return Err(MonitoringError::NotFound(format!(
                "version {version} of '{model}' has no reference profile (profile.json)"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    if rows.is_empty() {
        return Err(MonitoringError::Input(format!(
            "dataset '{dataset}' has no rows in the range asked for"
        )));
    }
    let mut pick = Vec::with_capacity(profile.features.len());
    let mut numeric = Vec::with_capacity(profile.features.len());
    for column in &profile.features {
        let (pos, _) = schema.feature(column.name()).ok_or_else(|| {
            MonitoringError::Input(format!(
                "feature '{}' of version {version} of '{model}' is not a feature of dataset \
                 '{dataset}'",
                column.name()
            ))
        })?;
        pick.push(pos);
        numeric.push(matches!(column, ProfileColumn::Numeric { .. }));
    }
    let served = models.version(model, version).await.ok();
    let reference = PreparedReference::new(&profile);
    let key = MonitorKey {
        dataset: dataset.to_string(),
        model: model.to_string(),
        version,
    };
    tokio::task::spawn_blocking(move || {
        let frame =
            FeatureFrame::from_rows(rows.iter().map(|r| r.features.as_slice()), &pick, &numeric);
        let predictions = served.and_then(|s| s.inner.predict(&frame).ok());
        let machines = MachineRows::from_ids(rows.iter().map(|r| r.machine_id.as_str()));
        let ts: Vec<i64> = rows.iter().map(|r| r.ts).collect();
        judge_window(
            &key,
            ReportSource::Check,
            &reference,
            &settings,
            &frame.columns,
            predictions.as_ref().map(|p| p.values.as_slice()),
            &machines,
            &ts,
        )
    })
    .await
    .map_err(|e| MonitoringError::Input(format!("the drift check failed: {e}")))
}

/// Runs `work` (a batch's drift windows) on a thread of its own at a lower CPU priority (nice
/// 10 on Linux), borrowing what it needs. The windows are judged after the batch's ingest has
/// answered, and on two cores they competed with the next batches' parsing; judged later, they
/// are judged in larger turns whose reports share a commit (four producers streamed 13-15 %
/// faster). A full drift queue still holds ingests back, so drift never falls far behind.
fn at_low_priority<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    let mut work = Some(work);
    let done = std::thread::scope(|scope| {
        let thread = std::thread::Builder::new()
            .name("refit-drift".into())
            .spawn_scoped(scope, || {
                lower_priority();
                (work.take().expect("taken once"))()
            });
        thread.ok().map(|t| {
            t.join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    });
    // Without a thread, in place.
    done.unwrap_or_else(|| (work.take().expect("not taken by a thread"))())
}

/// Lowers the calling thread's CPU priority to nice 10 unless it is that low already (on Linux
/// the nice value is a thread's own; raising it needs no privilege). Elsewhere, nothing.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // Safety: getpriority and setpriority only read their arguments; `who` 0 is the calling
    // thread on Linux. (-1 from getpriority may be an error or nice -1: below 10 either way.)
    unsafe {
        if libc::getpriority(libc::PRIO_PROCESS, 0) < 10 {
            libc::setpriority(libc::PRIO_PROCESS, 0, 10);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn low_priority_work_runs_on_its_own_thread_and_gives_back_its_result() {
        let caller = std::thread::current().id();
        let data = [1, 2, 3];
        // Borrowed input, owned output, from another thread.
        let (sum, thread, name) = at_low_priority(|| {
            let me = std::thread::current();
            (
                data.iter().sum::<i32>(),
                me.id(),
                me.name().map(str::to_string),
            )
        });
        assert_eq!(sum, 6);
        assert_ne!(thread, caller);
        assert_eq!(name.as_deref(), Some("refit-drift"));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn low_priority_work_runs_at_nice_ten_and_leaves_the_caller_as_it_was() {
        // Safety: getpriority only reads its arguments; `who` 0 is the calling thread.
        let nice = || unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let before = nice();
        let inside = at_low_priority(nice);
        assert_eq!(inside, before.max(10));
        assert_eq!(nice(), before);
    }

    #[test]
    fn a_panic_in_low_priority_work_reaches_the_caller() {
        let caught = std::panic::catch_unwind(|| at_low_priority(|| panic!("window failed")));
        let message = caught.unwrap_err();
        assert_eq!(message.downcast_ref::<&str>(), Some(&"window failed"));
    }
}
