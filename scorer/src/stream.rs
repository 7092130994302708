//! The stream pipeline: records in, scores out. [`StreamHub::submit`] validates and stores a batch
//! of records and scores exactly the newly stored ones, in one transaction, with the champion
//! (and, in shadow, the challenger) of every model bound to the dataset; then it publishes the
//! champion scores to the dataset's subscribers. HTTP, WebSocket and (later) Kafka sources all
//! call `submit`; SSE and WebSocket consumers read a [`Feed`].
//!
//! **Exactly once, across a hot swap.** The models that score a batch are resolved while the
//! batch holds the dataset's ingest lock (the dataset's row lock, taken by the transaction), and
//! one [`Served`] scores the whole batch: batches are scored in commit order, each by the version
//! its scores name, and a swap takes effect between two batches. A duplicate record is not
//! stored again, so it is not scored again.
//!
//! **Bounded buffers.** Each subscriber has its own bounded queue of score batches (one batch per
//! submit). Publishing never waits: a subscriber whose queue is full is dropped, and its feed
//! ends with [`FeedItem::Lagged`] after the batches already queued, naming the last position it
//! got so that it can resume from the stored log. Ingest and the other subscribers never wait for
//! a slow one.
//!
//! **Drift.** After the commit, each batch's champion inputs and predictions are queued, in commit
//! order, for the drift monitors ([`DriftMonitors::observe`]), which close windows, store reports
//! and fire drift triggers on a task of their own: beside the next batch, not before this one's
//! answer. The queue is short (a submit waits when it is full), and readers of drift reports wait
//! for what was queued before them ([`StreamHub::drift_settled`]). A monitoring failure is logged
//! and never fails the ingest.
//!
//! **Resume.** A [`Feed`] subscribes to the live batches *before* it reads the stored log after
//! the position asked for; once the log is read, it passes on the live batches, skipping what it
//! already sent. Scores are published only after their commit, and in position order (an
//! in-process lock per dataset is held from inside the transaction until the publish), so nothing
//! falls between the two.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use refit_registry::datasets::{Dataset, IngestReport, Readings};
use refit_registry::db::now_ms;
use refit_registry::scores::{AppendedBlock, ScoreBlock, ScoreRole, StoredScore};
use refit_registry::{Actor, Result, Store};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use utoipa::ToSchema;

use crate::frame::FeatureFrame;
use crate::model::{Predictions, Task};
use crate::monitoring::DriftMonitors;
use crate::serving::{ModelServer, ServeError, Served};

/// The alias whose scores go to consumers.
pub const CHAMPION: &str = "champion";
/// The alias scored in shadow, when set.
pub const CHALLENGER: &str = "challenger";
/// Default bound of a subscriber's queue, in score batches.
pub const DEFAULT_SUBSCRIBER_BUFFER: usize = 1024;
/// Batches at least this large are scored on the blocking pool.
const BLOCKING_ROWS: usize = 2_048;
/// Batches queued for the drift monitors before a submit waits.
const DRIFT_QUEUE: usize = 4;
/// Scores read from the log at a time while a feed catches up.
const REPLAY_PAGE: i64 = 1_000;

/// A batch of champion scores as published, in position order: the champions' blocks of one
/// ingest (scores are made from them as subscribers read them).
pub type ScoreBatch = Arc<[AppendedBlock]>;

/// What happened to a submitted batch (written as JSON by [`StreamReport::to_json`]).
#[derive(Debug, Clone, ToSchema)]
pub struct StreamReport {
    /// Records stored, duplicates, refusals.
    #[serde(flatten)]
    pub ingest: IngestReport,
    /// The model versions that scored the newly stored records.
    pub scored_by: Vec<ScoredBy>,
    /// Models bound to the dataset that did not score them, and why.
    pub not_scored: Vec<NotScored>,
    /// Why nothing was scored, when records were stored but no model scored them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The champion scores of the newly stored records, in position order (as consumers get
    /// them). Challenger scores are stored but not listed. (The very batch published to
    /// consumers, shared rather than copied.)
    #[schema(value_type = Vec<StoredScore>)]
    pub scores: ScoreBatch,
}

impl StreamReport {
    /// The report of a batch sent to `dataset`: what the ingest did, and the scores it stored
    /// (the champions' are listed).
    fn new(
        dataset: &str,
        ingest: IngestReport,
        stored: Vec<AppendedBlock>,
        scored_by: Vec<ScoredBy>,
        not_scored: Vec<NotScored>,
    ) -> StreamReport {
        let scores: ScoreBatch = stored
            .into_iter()
            .filter(|b| b.block.role == ScoreRole::Champion)
            .collect();
        let note = (ingest.accepted > 0
            && !scored_by.iter().any(|s| s.role == ScoreRole::Champion))
        .then(|| {
            if not_scored.is_empty() {
                format!(
                    "the records were stored but not scored: no enabled training spec binds a \
                     model to dataset '{dataset}'"
                )
            } else {
                "the records were stored but not scored: no model bound to the dataset has a \
                 servable champion (see not_scored)"
                    .to_string()
            }
        });
        StreamReport {
            ingest,
            scored_by,
            not_scored,
            note,
            scores,
        }
    }

    /// The report as JSON; without the scores unless `with_scores` (for a producer that leaves
    /// them to the subscribers). A batch's answer with its scores runs to megabytes: it is
    /// written into a buffer sized for them at once (grown from empty, it would be copied a dozen
    /// times), the scores straight from their blocks.
    pub fn to_json(&self, with_scores: bool) -> Vec<u8> {
        /// The report but its scores, in the order of the report's fields.
        #[derive(Serialize)]
        struct Summary<'a> {
            #[serde(flatten)]
            ingest: &'a IngestReport,
            scored_by: &'a [ScoredBy],
            not_scored: &'a [NotScored],
            #[serde(skip_serializing_if = "Option::is_none")]
            note: &'a Option<String>,
        }
        let summary = Summary {
            ingest: &self.ingest,
            scored_by: &self.scored_by,
            not_scored: &self.not_scored,
            note: &self.note,
        };
        if !with_scores {
            return serde_json::to_vec(&summary).expect("a stream report serializes");
        }
        let scores: usize = self.scores.iter().map(AppendedBlock::len).sum();
        let mut out = Vec::with_capacity(1024 + 256 * scores);
        serde_json::to_writer(&mut out, &summary).expect("a stream report serializes");
        // The summary is an object with fields: its closing brace makes way for the scores.
        debug_assert_eq!(out.last(), Some(&b'}'));
        out.pop();
        out.extend_from_slice(br#","scores":["#);
        for (i, block) in self.scores.iter().filter(|b| !b.is_empty()).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            block.write_json(&mut out);
        }
        out.extend_from_slice(b"]}");
        out
    }
}

/// A model version that scored a batch.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ScoredBy {
    /// Registered model.
    pub model: String,
    /// The version.
    pub version: i64,
    /// `champion` or `challenger`.
    pub role: ScoreRole,
    /// Records it scored.
    pub scores: usize,
}

/// A model bound to the dataset that did not score a batch.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct NotScored {
    /// Registered model.
    pub model: String,
    /// The alias that could not score (`champion` or `challenger`).
    pub alias: String,
    /// Why.
    pub reason: String,
}

/// One subscriber's end of a dataset's live scores.
struct Subscriber {
    tx: mpsc::Sender<ScoreBatch>,
    overflowed: Arc<AtomicBool>,
}

/// A dataset's live channel.
#[derive(Default)]
struct Channel {
    /// Held from inside a batch's transaction until its scores are published, so that batches
    /// are published in position order.
    order: Arc<tokio::sync::Mutex<()>>,
    subscribers: Mutex<Vec<Subscriber>>,
}

/// The stream pipeline of every dataset; cheap to share (`Arc`).
pub struct StreamHub {
    store: Store,
    models: Arc<ModelServer>,
    /// Where champion scores go for drift monitoring (none: not monitored).
    drift: Option<Arc<DriftMonitors>>,
    /// The batches on their way to `drift`; started with the first batch.
    drift_queue: OnceLock<DriftQueue>,
    /// Bound of each subscriber's queue, in batches.
    buffer: usize,
    channels: Mutex<HashMap<String, Arc<Channel>>>,
    /// Set when the server stops: feeds end, new subscriptions end at once.
    stopping: tokio::sync::watch::Sender<bool>,
}

/// Why a subscription ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// The subscriber's queue filled: it was too slow.
    Overflowed,
    /// The hub went away.
    Stopped,
}

/// A subscriber's live batches.
pub struct Subscription {
    rx: mpsc::Receiver<ScoreBatch>,
    overflowed: Arc<AtomicBool>,
}

impl Subscription {
    /// The next live batch; after an overflow, the batches queued before it, then
    /// [`Closed::Overflowed`].
    pub async fn next(&mut self) -> std::result::Result<ScoreBatch, Closed> {
        match self.rx.recv().await {
            Some(batch) => Ok(batch),
            None if self.overflowed() => Err(Closed::Overflowed),
            None => Err(Closed::Stopped),
        }
    }

    /// Whether the queue filled and the subscription was dropped by the publisher.
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Acquire)
    }
}

impl StreamHub {
    /// A hub scoring with `models`; each subscriber may fall `buffer` batches behind (at least 1).
    pub fn new(store: Store, models: Arc<ModelServer>, buffer: usize) -> StreamHub {
        StreamHub {
            store,
            models,
            drift: None,
            drift_queue: OnceLock::new(),
            buffer: buffer.max(1),
            channels: Mutex::default(),
            stopping: tokio::sync::watch::Sender::new(false),
        }
    }

    /// Sends every batch's champion inputs and predictions to `drift` after its commit.
    pub fn with_drift(mut self, drift: Arc<DriftMonitors>) -> StreamHub {
        self.drift = Some(drift);
        self
    }

    fn channel(&self, dataset: &str) -> Arc<Channel> {
        self.channels
            .lock()
            .expect("channels lock")
            .entry(dataset.to_string())
            .or_default()
            .clone()
    }

    /// Ends every subscription (their feeds end after what is queued) and refuses new ones:
    /// called when the server stops, so that open streams let it stop.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
        let channels: Vec<Arc<Channel>> = self
            .channels
            .lock()
            .expect("channels lock")
            .values()
            .cloned()
            .collect();
        for channel in channels {
            channel
                .subscribers
                .lock()
                .expect("subscribers lock")
                .clear();
        }
    }

    /// Resolves once [`StreamHub::stop`] was called.
    pub async fn stopped(&self) {
        let mut stopping = self.stopping.subscribe();
        let _ = stopping.wait_for(|&s| s).await;
    }

    /// Subscribes to the champion scores of `dataset` published from now on.
    pub fn subscribe(&self, dataset: &str) -> Subscription {
        let (tx, rx) = mpsc::channel(self.buffer);
        let overflowed = Arc::new(AtomicBool::new(false));
        if *self.stopping.borrow() {
            return Subscription { rx, overflowed };
        }
        let channel = self.channel(dataset);
        let mut subscribers = channel.subscribers.lock().expect("subscribers lock");
        subscribers.retain(|s| !s.tx.is_closed());
        subscribers.push(Subscriber {
            tx,
            overflowed: overflowed.clone(),
        });
        Subscription { rx, overflowed }
    }

    /// Number of live subscribers of `dataset`.
    pub fn subscribers(&self, dataset: &str) -> usize {
        let channel = self.channel(dataset);
        let subscribers = channel.subscribers.lock().expect("subscribers lock");
        subscribers.iter().filter(|s| !s.tx.is_closed()).count()
    }

    /// Hands `batch` to every subscriber without waiting; drops those whose queue is full.
    fn publish(&self, channel: &Channel, batch: ScoreBatch) {
        let mut subscribers = channel.subscribers.lock().expect("subscribers lock");
        subscribers.retain(|s| match s.tx.try_send(batch.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                // Set before the sender is dropped: the receiver sees the flag once it finds
                // the channel closed.
                s.overflowed.store(true, Ordering::Release);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
    }

    /// Stores a batch of records sent to `dataset` (a JSON array, or NDJSON when `ndjson`),
    /// scores the newly stored ones with the champion (and challenger) of every model bound to
    /// the dataset, stores the scores with the records, and publishes the champion scores.
    /// Returns what `answer` makes of the report, e.g. its JSON: for a large batch that runs
    /// while the batch's commit waits for the disk.
    pub async fn submit<J: Send>(
        &self,
        actor: &Actor,
        dataset: &str,
        body: String,
        ndjson: bool,
        source: &str,
        answer: impl FnOnce(&StreamReport) -> J + Send,
    ) -> Result<J> {
        let received_at = now_ms();
        let models = self.store.models_of_dataset(dataset).await?;
        // Load the models before taking the dataset's lock; inside it they are only looked up.
        for model in &models {
            for alias in [CHAMPION, CHALLENGER] {
                let _ = self.models.resolve(model, alias).await;
            }
        }
        let channel = self.channel(dataset);
        let order = channel.order.clone();
        // A place in the drift queue is taken before the batch takes the writer and the publish
        // order: a submit that waited for a full queue while holding them would wait for the
        // drift monitors, which wait for the writer to store their reports.
        let drift_slot = match &self.drift {
            Some(drift) => {
                self.drift_queue
                    .get_or_init(|| DriftQueue::start(drift.clone()))
                    .reserve()
                    .await
            }
            None => None,
        };
        let (report, answer, guard, observed) = self
            .store
            .ingest_records_scored(
                actor,
                dataset,
                body,
                ndjson,
                source,
                |ds, readings| self.prescore(ds, readings, &models, received_at),
                |ds, fresh, prescored| {
                    self.score(ds, fresh, &models, order, received_at, prescored)
                },
                |ingest, stored, (scored_by, not_scored, guard, observed)| {
                    let report = StreamReport::new(dataset, ingest, stored, scored_by, not_scored);
                    let answer = answer(&report);
                    (report, answer, guard, observed)
                },
            )
            .await?;
        if !report.scores.is_empty() {
            self.publish(&channel, report.scores.clone());
        }
        // Queued under the publish-order guard: the monitors see batches in commit order.
        if let Some(slot) = drift_slot
            && !observed.is_empty()
        {
            slot.send(dataset, observed);
        }
        drop(guard);
        Ok(answer)
    }

    /// Resolves once the drift monitors have taken every batch submitted before the call (their
    /// windows closed and reports stored): what readers of drift reports wait for.
    pub async fn drift_settled(&self) {
        if let Some(queue) = self.drift_queue.get() {
            queue.settled().await;
        }
    }

    /// Scores a batch's valid readings before it takes the writer, with the versions the
    /// champion and challenger aliases name now (those that cannot score are left out: `score`
    /// says why). Scoring there keeps it off the writer, which batches of every client share.
    async fn prescore(
        &self,
        dataset: Dataset,
        readings: Arc<Readings>,
        models: &[String],
        received_at: i64,
    ) -> Vec<Prescored> {
        let dataset = Arc::new(dataset);
        let mut out = Vec::new();
        for model in models {
            for (alias, role) in [
                (CHAMPION, ScoreRole::Champion),
                (CHALLENGER, ScoreRole::Challenger),
            ] {
                if let Ok(served) = self.models.resolve(model, alias).await
                    && let Ok(scored) =
                        score_batch(&served, &dataset, &readings, role, received_at).await
                {
                    out.push(Prescored {
                        model: model.clone(),
                        version: served.version,
                        role,
                        scored,
                    });
                }
            }
        }
        out
    }

    /// Scores the newly stored `fresh` readings; runs inside the ingest's transaction. The
    /// versions are resolved here, under the dataset's lock, so that a swap falls between two
    /// batches; a version's `prescored` scores of these very readings are taken as they are.
    async fn score(
        &self,
        dataset: Dataset,
        fresh: Arc<Readings>,
        models: &[String],
        order: Arc<tokio::sync::Mutex<()>>,
        received_at: i64,
        prescored: Option<Vec<Prescored>>,
    ) -> Result<(Vec<ScoreBlock>, ScoreOutcome)> {
        let mut prescored = prescored.unwrap_or_default();
        if fresh.is_empty() {
            return Ok((Vec::new(), (Vec::new(), Vec::new(), None, Vec::new())));
        }
        // Taken under the dataset's row lock and released after the publish: batches are
        // published in the order of their positions.
        let guard = order.lock_owned().await;
        let dataset = Arc::new(dataset);
        let mut scores = Vec::new();
        let mut scored_by = Vec::new();
        let mut not_scored = Vec::new();
        let mut observed = Vec::new();
        for model in models {
            for (alias, role) in [
                (CHAMPION, ScoreRole::Champion),
                (CHALLENGER, ScoreRole::Challenger),
            ] {
                let served = match self.models.resolve(model, alias).await {
                    Ok(served) => served,
                    // No challenger is the usual case, not a failure.
                    Err(ServeError::NotFound(_)) if role == ScoreRole::Challenger => continue,
                    Err(e) => {
                        not_scored.push(NotScored {
                            model: model.clone(),
                            alias: alias.into(),
                            reason: e.to_string(),
                        });
                        continue;
                    }
                };
                let ready = prescored
                    .iter()
                    .position(|p| (&p.model, p.version, p.role) == (model, served.version, role));
                let scored = match ready {
                    Some(i) => Ok(prescored.swap_remove(i).scored),
                    None => score_batch(&served, &dataset, &fresh, role, received_at).await,
                };
                match scored {
                    Ok((block, frame, predictions)) => {
                        // Drift is watched on what the champion saw and said.
                        if role == ScoreRole::Champion && self.drift.is_some() {
                            observed.push(Observed {
                                served: served.clone(),
                                frame,
                                predictions,
                                readings: fresh.clone(),
                            });
                        }
                        scored_by.push(ScoredBy {
                            model: model.clone(),
                            version: served.version,
                            role,
                            scores: block.records.len(),
                        });
                        scores.push(block);
                    }
                    Err(reason) => not_scored.push(NotScored {
                        model: model.clone(),
                        alias: alias.into(),
                        reason,
                    }),
                }
            }
        }
        Ok((scores, (scored_by, not_scored, Some(guard), observed)))
    }

    /// A feed of the champion scores of `dataset`: those stored after position `after` (when
    /// given), then the live ones.
    pub fn feed(self: &Arc<Self>, dataset: &str, after: Option<i64>) -> Feed {
        Feed {
            hub: self.clone(),
            dataset: dataset.to_string(),
            subscription: self.subscribe(dataset),
            last: after,
            replaying: after.is_some(),
            queue: VecDeque::new(),
            ended: false,
        }
    }
}

/// What [`StreamHub::score`] hands back: who scored, who did not, the publish-order guard, and
/// the champions' batches for drift monitoring.
type ScoreOutcome = (
    Vec<ScoredBy>,
    Vec<NotScored>,
    Option<tokio::sync::OwnedMutexGuard<()>>,
    Vec<Observed>,
);

/// A batch scored by one version before the ingest took the writer.
struct Prescored {
    model: String,
    version: i64,
    role: ScoreRole,
    scored: Scored,
}

/// One champion's view of a batch, for the drift monitors.
struct Observed {
    served: Arc<Served>,
    frame: FeatureFrame,
    predictions: Predictions,
    /// The readings scored (their machines and times are copied out by the drift task, not
    /// under the writer).
    readings: Arc<Readings>,
}

/// Batches for the drift monitors, taken in order by one task.
struct DriftQueue {
    tx: mpsc::Sender<(String, Vec<Observed>)>,
    /// Batches queued so far, and (sent by the task) batches done.
    queued: AtomicU64,
    done: Arc<watch::Sender<u64>>,
}

impl DriftQueue {
    /// Starts the task that feeds `drift`; it ends when the queue is dropped.
    fn start(drift: Arc<DriftMonitors>) -> DriftQueue {
        let (tx, mut rx) = mpsc::channel::<(String, Vec<Observed>)>(DRIFT_QUEUE);
        let done = Arc::new(watch::Sender::new(0u64));
        let finished = done.clone();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                // The batches queued meanwhile go with it: their reports share one commit,
                // which would otherwise take the writer from the ingests once per batch.
                let mut batches = vec![first];
                while let Ok(next) = rx.try_recv() {
                    batches.push(next);
                }
                let n = batches.len() as u64;
                // A task per turn: a panic in a monitor is logged and the queue goes on.
                let drift = drift.clone();
                if let Err(e) = tokio::spawn(observe(drift, batches)).await {
                    tracing::error!(error = %e, "drift monitoring failed");
                }
                finished.send_modify(|done| *done += n);
            }
        });
        DriftQueue {
            tx,
            queued: AtomicU64::new(0),
            done,
        }
    }

    /// A place for one batch; waits while the queue is full. `None` once the task is gone (the
    /// runtime is shutting down): nothing would take the batch.
    async fn reserve(&self) -> Option<DriftSlot<'_>> {
        let permit = self.tx.reserve().await.ok()?;
        Some(DriftSlot {
            permit,
            queued: &self.queued,
        })
    }

    async fn settled(&self) {
        let target = self.queued.load(Ordering::Acquire);
        let _ = self.done.subscribe().wait_for(|&n| n >= target).await;
    }
}

/// A reserved place in the drift queue.
struct DriftSlot<'a> {
    permit: mpsc::Permit<'a, (String, Vec<Observed>)>,
    queued: &'a AtomicU64,
}

impl DriftSlot<'_> {
    /// Queues a batch, at once.
    fn send(self, dataset: &str, observed: Vec<Observed>) {
        self.queued.fetch_add(1, Ordering::AcqRel);
        self.permit.send((dataset.to_string(), observed));
    }
}

/// Hands batches' champion views to the drift monitors, in order, and stores the reports of the
/// windows they closed together; failures are logged.
async fn observe(drift: Arc<DriftMonitors>, batches: Vec<(String, Vec<Observed>)>) {
    let mut closed = Vec::new();
    for (dataset, observed) in &batches {
        for o in observed {
            let machine_ids: Vec<&str> = o.readings.iter().map(|r| r.machine_id).collect();
            let ts = o.readings.times();
            match drift
                .close_windows(
                    dataset,
                    &o.served,
                    &o.frame,
                    &o.predictions,
                    &machine_ids,
                    ts,
                )
                .await
            {
                Ok(reports) => closed.extend(reports),
                Err(e) => tracing::warn!(
                    dataset,
                    model = %o.served.model,
                    version = o.served.version,
                    error = %e,
                    "drift monitoring failed"
                ),
            }
        }
    }
    if let Err(e) = drift.store_reports(&closed).await {
        tracing::warn!(reports = closed.len(), error = %e, "storing drift reports failed");
    }
}

/// A batch's scores, with the frame and predictions they came from.
type Scored = (ScoreBlock, FeatureFrame, Predictions);

/// Scores `readings` with one model version; the reason when it cannot.
async fn score_batch(
    served: &Arc<Served>,
    dataset: &Arc<Dataset>,
    readings: &Arc<Readings>,
    role: ScoreRole,
    received_at: i64,
) -> std::result::Result<Scored, String> {
    let run = {
        let (served, dataset, readings) = (served.clone(), dataset.clone(), readings.clone());
        move || score_rows(&served, &dataset, &readings, role, received_at)
    };
    if readings.len() >= BLOCKING_ROWS {
        tokio::task::spawn_blocking(run)
            .await
            .map_err(|e| format!("scoring failed: {e}"))?
    } else {
        run()
    }
}

fn score_rows(
    served: &Served,
    dataset: &Dataset,
    readings: &Arc<Readings>,
    role: ScoreRole,
    received_at: i64,
) -> std::result::Result<Scored, String> {
    let info = served.inner.info();
    let pick = info
        .features
        .iter()
        .map(|f| {
            dataset.schema.feature(f).map(|(i, _)| i).ok_or_else(|| {
                format!(
                    "version {} of '{}' takes feature '{f}', which dataset '{}' does not have",
                    served.version, served.model, dataset.name
                )
            })
        })
        .collect::<std::result::Result<Vec<usize>, String>>()?;
    let frame = FeatureFrame::from_rows(
        readings.iter().map(|r| r.features),
        &pick,
        &served.inner.numeric_inputs(),
    );
    let predictions = served.inner.predict(&frame).map_err(|e| {
        format!(
            "version {} of '{}' could not score: {e}",
            served.version, served.model
        )
    })?;
    let block = ScoreBlock {
        model: served.model.clone(),
        version: served.version,
        role,
        received_at,
        records: readings.clone(),
        classes: classes(served).map(Arc::from),
        values: predictions.values.clone(),
        // A regression's block has no classes, so no probabilities are stored for it.
        probabilities: predictions.probabilities.clone(),
    };
    Ok((block, frame, predictions))
}

/// The class labels of a classifier's predictions; `None` for regression.
fn classes(served: &Served) -> Option<&[String]> {
    let info = served.inner.info();
    (info.task != Task::Regression).then_some(&info.classes[..])
}

/// One row's prediction as JSON: the number (regression) or the class label, as the batch
/// scoring endpoints and the score log write it.
pub fn prediction_value(served: &Served, value: f64) -> Value {
    refit_registry::scores::prediction_value(classes(served), value)
}

pub use refit_registry::scores::number_value;

/// What a [`Feed`] yields.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedItem {
    /// The next score.
    Score(StoredScore),
    /// The subscriber fell behind by more than its buffer and was dropped; `last` is the last
    /// position it was given (resume after it). The feed ends here.
    Lagged {
        /// The last position delivered, if any.
        last: Option<i64>,
    },
}

/// A subscriber's scores: the stored log after a position, then live, without gap or duplicate.
pub struct Feed {
    hub: Arc<StreamHub>,
    dataset: String,
    subscription: Subscription,
    /// The last position delivered (or asked to resume after).
    last: Option<i64>,
    /// Whether the stored log is still being read.
    replaying: bool,
    queue: VecDeque<StoredScore>,
    ended: bool,
}

impl Feed {
    /// The next score, or the reason the feed ends; `None` when the hub stops.
    pub async fn next(&mut self) -> Result<Option<FeedItem>> {
        loop {
            if let Some(score) = self.queue.pop_front() {
                self.last = Some(score.position);
                return Ok(Some(FeedItem::Score(score)));
            }
            if self.ended {
                return Ok(None);
            }
            let last = self.last.unwrap_or(i64::MIN);
            if self.replaying {
                if self.subscription.overflowed() {
                    // Fell behind while still reading the log: everything it missed is stored,
                    // so subscribe afresh (before reading on) and keep reading the log.
                    self.subscription = self.hub.subscribe(&self.dataset);
                }
                let page = self
                    .hub
                    .store
                    .scores_after(&self.dataset, last, REPLAY_PAGE, Some(ScoreRole::Champion))
                    .await?;
                if page.is_empty() && !self.subscription.overflowed() {
                    self.replaying = false;
                }
                self.queue.extend(page);
                continue;
            }
            match self.subscription.next().await {
                Ok(batch) => self.queue.extend(
                    batch
                        .iter()
                        .flat_map(AppendedBlock::scores)
                        .filter(|s| s.position > last),
                ),
                Err(Closed::Overflowed) => {
                    self.ended = true;
                    return Ok(Some(FeedItem::Lagged { last: self.last }));
                }
                Err(Closed::Stopped) => {
                    self.ended = true;
                    return Ok(None);
                }
            }
        }
    }
}
