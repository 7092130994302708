//! What starts training: cron schedules (tokio-cron-scheduler, read from the database so they
//! survive restarts), the data-volume trigger, and queued jobs (manual or otherwise), worked off
//! one at a time per process. Exactly one process acts on each schedule tick and runs each job.
//! The trigger loop also applies datasets' retention (hourly by default).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use refit_registry::Actor;
use refit_registry::training::{StoredSpec, Triggered};
use tokio::sync::{Mutex, Notify};
use tokio_cron_scheduler::{Job as CronJob, JobScheduler};

use crate::spec::TrainingSpec;
use crate::trainer::{Trainer, trainer_actor};

/// Runs the training loop of one process.
#[derive(Clone)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

struct Inner {
    trainer: Trainer,
    cron: JobScheduler,
    /// Spec id → (cron job, its schedule).
    scheduled: Mutex<HashMap<i64, (uuid::Uuid, String)>>,
    wake: Notify,
    /// Set on shutdown; the loops check it.
    stopped: AtomicBool,
    /// How often each dataset with `retention_days` is pruned, if automatically.
    retention_every: Option<Duration>,
}

/// Why the scheduler could not start or load a schedule.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SchedulerError(String);

impl From<refit_registry::Error> for SchedulerError {
    fn from(e: refit_registry::Error) -> Self {
        SchedulerError(e.to_string())
    }
}

/// How often the worker looks for queued jobs when nothing wakes it.
const POLL: Duration = Duration::from_secs(1);
/// How often data-volume triggers and expired leases are checked.
const CHECK: Duration = Duration::from_secs(5);

impl Scheduler {
    /// Fails jobs a crashed process left running (their leases expired), loads every spec's
    /// schedule, and starts the worker and trigger loops. With `retention_every`, the trigger
    /// loop prunes each dataset that has `retention_days` as soon as it sees it and then at that
    /// interval (each process does; pruning again soon after finds little to do).
    pub async fn start(
        trainer: Trainer,
        retention_every: Option<Duration>,
    ) -> Result<Scheduler, SchedulerError> {
        let failed = trainer.store().fail_interrupted_jobs(None).await?;
        if failed > 0 {
            tracing::warn!(failed, "marked interrupted training jobs as failed");
        }
        let cron = JobScheduler::new()
            .await
            .map_err(|e| SchedulerError(format!("starting the cron scheduler: {e}")))?;
        cron.start()
            .await
            .map_err(|e| SchedulerError(format!("starting the cron scheduler: {e}")))?;
        let scheduler = Scheduler {
            inner: Arc::new(Inner {
                trainer,
                cron,
                scheduled: Mutex::new(HashMap::new()),
                wake: Notify::new(),
                stopped: AtomicBool::new(false),
                retention_every,
            }),
        };
        scheduler.sync().await?;
        tokio::spawn(scheduler.clone().work());
        tokio::spawn(scheduler.clone().check_triggers());
        Ok(scheduler)
    }

    /// The trainer jobs run on.
    pub fn trainer(&self) -> &Trainer {
        &self.inner.trainer
    }

    /// Wakes the worker (a job was queued).
    pub fn notify(&self) {
        self.inner.wake.notify_one();
    }

    /// Brings the cron jobs in line with the specs in the database (after a spec was created,
    /// changed, enabled or disabled).
    pub async fn sync(&self) -> Result<(), SchedulerError> {
        let specs = self.inner.trainer.store().list_specs().await?;
        let mut scheduled = self.inner.scheduled.lock().await;
        let wanted: HashMap<i64, String> = specs
            .iter()
            .filter(|s| s.enabled)
            .filter_map(|s| s.schedule.clone().map(|c| (s.id, c)))
            .collect();
        let stale: Vec<i64> = scheduled
            .iter()
            .filter(|(id, (_, cron))| wanted.get(id) != Some(cron))
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            if let Some((uuid, _)) = scheduled.remove(&id)
                && let Err(e) = self.inner.cron.remove(&uuid).await
            {
                tracing::warn!(error = %e, spec = id, "removing a schedule failed");
            }
        }
        for (id, cron) in wanted {
            if scheduled.contains_key(&id) {
                continue;
            }
            let this = self.clone();
            let schedule = cron.clone();
            let job = CronJob::new_async(cron.as_str(), move |_uuid, _lock| {
                let this = this.clone();
                let schedule = schedule.clone();
                Box::pin(async move { this.fire(id, &schedule).await })
            })
            .map_err(|e| SchedulerError(format!("schedule '{cron}' of spec {id}: {e}")))?;
            let uuid = self
                .inner
                .cron
                .add(job)
                .await
                .map_err(|e| SchedulerError(format!("adding schedule of spec {id}: {e}")))?;
            scheduled.insert(id, (uuid, cron));
        }
        Ok(())
    }

    /// A cron tick of a spec: queue a job, unless another process claimed this tick or the spec
    /// already has a job queued or running.
    async fn fire(&self, spec_id: i64, schedule: &str) {
        let store = self.inner.trainer.store();
        // Another process may have disabled the spec or changed its schedule since this one
        // loaded it: the database decides (the trigger loop's sync drops the stale schedule).
        match store.get_spec(&spec_id.to_string()).await {
            Ok(spec) if spec.enabled && spec.schedule.as_deref() == Some(schedule) => {}
            Ok(_) | Err(refit_registry::Error::NotFound(_)) => return,
            Err(e) => {
                tracing::warn!(error = %e, spec = spec_id, "reading a scheduled spec failed");
                return;
            }
        }
        let Some(tick) = latest_occurrence(schedule) else {
            return;
        };
        let detail = refit_registry::datasets::record::format_time(tick);
        match store
            .queue_triggered_job(&trainer_actor(), spec_id, tick, "cron", Some(&detail))
            .await
        {
            Ok(Triggered::Queued(job)) => {
                tracing::info!(job = job.id, spec = spec_id, "schedule queued a training");
                self.notify();
            }
            Ok(Triggered::Claimed) => {}
            Ok(Triggered::Busy) => tracing::info!(
                spec = spec_id,
                "schedule fired while a training of the spec is queued or running; skipped"
            ),
            Err(e) => tracing::warn!(error = %e, "queueing a scheduled training failed"),
        }
    }

    /// The worker: runs queued jobs one at a time.
    async fn work(self) {
        while !self.inner.stopped.load(Ordering::SeqCst) {
            match self.inner.trainer.run_next().await {
                Ok(Some(job)) => {
                    tracing::info!(job = job.id, status = ?job.status, "training finished");
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "the training worker failed to take a job"),
            }
            let _ = tokio::time::timeout(POLL, self.inner.wake.notified()).await;
        }
    }

    /// Data-volume triggers, jobs of crashed processes whose leases expired, and retention.
    async fn check_triggers(self) {
        // Dataset name → when this process last pruned it.
        let mut pruned: HashMap<String, Instant> = HashMap::new();
        let mut tick = tokio::time::interval(CHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !self.inner.stopped.load(Ordering::SeqCst) {
            tick.tick().await;
            let store = self.inner.trainer.store();
            // Specs created or changed through another process.
            if let Err(e) = self.sync().await {
                tracing::warn!(error = %e, "reloading schedules failed");
            }
            if let Err(e) = store.fail_interrupted_jobs(None).await {
                tracing::warn!(error = %e, "checking for interrupted trainings failed");
            }
            let specs = match store.list_specs().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "reading specs for triggers failed");
                    continue;
                }
            };
            for spec in specs.iter().filter(|s| s.enabled) {
                if let Err(e) = self.check_volume(spec).await {
                    tracing::warn!(error = %e, spec = spec.name, "data-volume trigger failed");
                }
            }
            // Drift triggers are evaluated as reports are stored; this catches any missed.
            match crate::drift::check_drift_triggers(store).await {
                Ok(jobs) if !jobs.is_empty() => self.notify(),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "drift trigger check failed"),
            }
            if let Some(every) = self.inner.retention_every {
                self.apply_retention(every, &mut pruned).await;
            }
        }
    }

    /// Prunes every dataset with `retention_days` this process has not pruned for `every`
    /// (never forced: kept snapshots keep their rows).
    async fn apply_retention(&self, every: Duration, pruned: &mut HashMap<String, Instant>) {
        let store = self.inner.trainer.store();
        let datasets = match store.list_datasets().await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "reading datasets for retention failed");
                return;
            }
        };
        let actor = Actor::automation("retention");
        for dataset in datasets.iter().filter(|d| d.retention_days.is_some()) {
            if pruned
                .get(&dataset.name)
                .is_some_and(|at| at.elapsed() < every)
            {
                continue;
            }
            pruned.insert(dataset.name.clone(), Instant::now());
            match store.prune_dataset(&actor, &dataset.name, false).await {
                Ok(r) if r.deleted_records > 0 => tracing::info!(
                    dataset = dataset.name,
                    retention_days = dataset.retention_days,
                    cutoff = r.cutoff,
                    deleted_records = r.deleted_records,
                    deleted_labels = r.deleted_labels,
                    kept_for_snapshots = r.kept_for_snapshots,
                    "retention pruned old readings"
                ),
                Ok(_) => tracing::debug!(dataset = dataset.name, "retention: nothing to prune"),
                Err(e) => tracing::warn!(error = %e, dataset = dataset.name, "retention failed"),
            }
        }
    }

    async fn check_volume(&self, stored: &StoredSpec) -> Result<(), refit_registry::Error> {
        let Ok(spec) = serde_json::from_value::<TrainingSpec>(stored.definition.clone()) else {
            return Ok(());
        };
        let Some(threshold) = spec.triggers.new_rows else {
            return Ok(());
        };
        let store = self.inner.trainer.store();
        // The sequence numbers bound the new readings from above (cheap); only then count them
        // (resent duplicates and labels take sequence numbers too).
        let seq = store.dataset_seq(&stored.dataset).await?;
        if seq - stored.last_trained_seq < threshold as i64 {
            return Ok(());
        }
        let new_rows = store
            .records_since(&stored.dataset, stored.last_trained_seq)
            .await?;
        if new_rows < threshold as i64 || store.spec_busy(stored.id).await? {
            return Ok(());
        }
        let detail = format!("{new_rows} new rows (threshold {threshold})");
        let tick = refit_registry::db::now_ms();
        let trigger = "data_volume";
        let Triggered::Queued(job) = store
            .queue_triggered_job(&trainer_actor(), stored.id, tick, trigger, Some(&detail))
            .await?
        else {
            return Ok(());
        };
        tracing::info!(
            job = job.id,
            spec = stored.name,
            "data volume queued a training"
        );
        self.notify();
        Ok(())
    }

    /// Stops the schedules and loops; a training in progress runs to its end.
    pub async fn shutdown(&self) {
        self.inner.stopped.store(true, Ordering::SeqCst);
        self.inner.wake.notify_waiters();
        let mut cron = self.inner.cron.clone();
        if let Err(e) = cron.shutdown().await {
            tracing::warn!(error = %e, "stopping the cron scheduler failed");
        }
    }
}

/// The schedule's most recent occurrence at or before now (the tick that just fired), in ms.
fn latest_occurrence(schedule: &str) -> Option<i64> {
    let cron = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .build()
        .parse(schedule)
        .ok()?;
    let now = chrono::Utc::now();
    let from = now - chrono::Duration::seconds(3);
    let next = cron.find_next_occurrence(&from, true).ok()?;
    (next <= now + chrono::Duration::milliseconds(500)).then(|| next.timestamp_millis())
}
