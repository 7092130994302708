//! Building and running the service: open the store, migrate, make sure an admin token exists,
//! bind, serve until SIGINT/SIGTERM, then let in-flight requests finish and close the database.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::serve::ListenerExt;
use refit_registry::tokens::Role;
use refit_registry::{Actor, Store, StoreOptions};
use refit_scorer::monitoring::DriftMonitors;
use refit_scorer::onnx::OnnxRuntime;
use refit_scorer::serving::ModelServer;
use refit_scorer::stream::StreamHub;
use refit_trainer::scheduler::Scheduler;
use refit_trainer::trainer::Trainer;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::http::{self, AppState};

/// Name of the file in the data dir holding the first admin token.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// A built application, bound to its address, not yet serving.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    /// The admin token created on this start, if the database had none.
    pub bootstrap_token: Option<String>,
}

/// ONNX Runtime from the configured library (or `ORT_DYLIB_PATH`), or why it is unavailable:
/// then refit serves native models and says what is missing when an ONNX model is used.
fn onnx_runtime(config: &Config) -> Result<OnnxRuntime, String> {
    match OnnxRuntime::init(config.onnx_runtime.as_deref()) {
        Ok(runtime) => {
            tracing::info!(library = %runtime.library().display(), "ONNX Runtime loaded");
            Ok(runtime)
        }
        Err(e) => {
            tracing::warn!("ONNX models cannot be served: {e}");
            Err(e.to_string())
        }
    }
}

impl Application {
    /// Opens (and migrates) the database, creates the first admin token if there is none, and
    /// binds the listener.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let store = open_store(&config).await?;
        let bootstrap_token = ensure_admin_token(&store, &config.data_dir).await?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let trainer = Trainer::new(store.clone(), process_name())
            .with_lease_ttl(Duration::from_secs(config.training_lease_secs));
        let retention_every = (config.retention_interval_secs > 0)
            .then(|| Duration::from_secs(config.retention_interval_secs));
        let scheduler = Scheduler::start(trainer, retention_every)
            .await
            .context("starting the training scheduler")?;
        let models = Arc::new(ModelServer::new(store.clone(), onnx_runtime(&config)));
        let drift = drift_monitors(&store, &scheduler);
        let streams = Arc::new(
            StreamHub::new(store.clone(), models.clone(), config.subscriber_buffer)
                .with_drift(drift.clone()),
        );
        let state = AppState {
            realized: Arc::new(refit_trainer::realized::RealizedMonitors::new(
                store.clone(),
                models.clone(),
            )),
            drift,
            models,
            streams,
            store,
            config: Arc::new(config),
            metrics: Default::default(),
            scheduler,
            mlflow_runs: Default::default(),
        };
        Ok(Application {
            listener,
            state,
            bootstrap_token,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The application's shared state (tests use its store directly).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then drains in-flight requests and closes the store.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let store = self.state.store.clone();
        let scheduler = self.state.scheduler.clone();
        // Open score streams end when the server stops, or they would hold it open.
        let streams = self.state.streams.clone();
        let shutdown = async move {
            shutdown.await;
            streams.stop();
        };
        // Without TCP_NODELAY, the last segment of a large answer waits for the client's delayed
        // acknowledgement of the one before.
        let listener = self.listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "TCP_NODELAY could not be set");
            }
        });
        axum::serve(listener, http::app(self.state))
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving HTTP")?;
        // A training still running is abandoned: its job is marked failed when its lease expires
        // (or at the next start), and the champion is untouched until a training completes.
        scheduler.shutdown().await;
        store.close().await;
        tracing::info!("stopped; database closed");
        Ok(())
    }

    /// Serves until SIGINT or SIGTERM.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }
}

/// The drift monitors, each stored stream report evaluated against the specs' drift triggers
/// (a queued training wakes the scheduler's worker).
fn drift_monitors(store: &Store, scheduler: &Scheduler) -> Arc<DriftMonitors> {
    let monitors = Arc::new(DriftMonitors::new(store.clone()));
    let (store, scheduler) = (store.clone(), scheduler.clone());
    monitors.on_report(Arc::new(move |report| {
        let (store, scheduler, report) = (store.clone(), scheduler.clone(), report.clone());
        tokio::spawn(async move {
            match refit_trainer::drift::on_drift_report(&store, &report).await {
                Ok(jobs) if !jobs.is_empty() => scheduler.notify(),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, report = report.id, "drift trigger failed"),
            }
        });
    }));
    monitors
}

/// Opens the store named by the configuration and brings its schema up to date.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    create_private_dir(&config.data_dir)?;
    let mut options = StoreOptions::new(&config.database_url);
    options.max_connections = config.db_max_connections;
    options.wal_preallocation = config.sqlite_wal_preallocate;
    let store = Store::connect(&options).await.with_context(|| {
        format!(
            "opening database {}",
            refit_registry::db::redact_url(&config.database_url)
        )
    })?;
    store.migrate().await.context("migrating the database")?;
    Ok(store)
}

/// On an empty token table, creates the `admin` token and writes it to a file only its owner can
/// read. Returns the secret so the caller can show it once.
pub async fn ensure_admin_token(store: &Store, data_dir: &Path) -> anyhow::Result<Option<String>> {
    if store.has_tokens().await? {
        return Ok(None);
    }
    let created = store
        .create_token(&Actor::automation("bootstrap"), "admin", Role::Admin)
        .await
        .context("creating the first admin token")?;
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    write_private_file(&path, format!("{}\n", created.secret).as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(Some(created.secret))
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating data dir {}", dir.display()))?;
    }
    Ok(())
}

fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // An existing file keeps its old mode on open; tighten it.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// A name for this process in training leases: host, process id and a random suffix.
pub(crate) fn process_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!(
        "{host}:{}:{}",
        std::process::id(),
        &refit_registry::db::new_id()[..8]
    )
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}
