//! What every handler can reach.

use std::sync::Arc;

use refit_registry::Store;
use refit_registry::rendered::RenderedRuns;
use refit_scorer::monitoring::DriftMonitors;
use refit_scorer::serving::ModelServer;
use refit_scorer::stream::StreamHub;
use refit_trainer::scheduler::Scheduler;

use crate::config::Config;
use crate::http::metrics::HttpMetrics;

/// Shared application state; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The registry.
    pub store: Store,
    /// Resolved configuration.
    pub config: Arc<Config>,
    /// Request counters and latency histograms for `/metrics`.
    pub metrics: Arc<HttpMetrics>,
    /// The training loop: schedules, triggers and the job worker.
    pub scheduler: Scheduler,
    /// Registered models' aliases resolved to loaded models, for scoring.
    pub models: Arc<ModelServer>,
    /// Realized metrics of the champions, as labels arrive for streamed records.
    pub realized: Arc<refit_trainer::realized::RealizedMonitors>,
    /// The stream pipeline: records in, scores to subscribers.
    pub streams: Arc<StreamHub>,
    /// Drift monitors per (dataset, model, version); their reports feed the drift triggers.
    pub drift: Arc<DriftMonitors>,
    /// Runs as MLflow's `runs/search` answered them, reused while a run is unchanged.
    pub mlflow_runs: Arc<RenderedRuns>,
}
