//! Which model answers: an alias of a registered model (normally `champion`) resolved to a
//! loaded model, switched without a gap when the alias moves.
//!
//! A caller asks [`ModelServer::resolve`] once per batch and scores the whole batch with the
//! [`Served`] it gets back, so every row of a batch is scored by exactly one version — the one
//! the result names. The new version is loaded before the switch; batches already holding the
//! old one finish with it. The store signals every alias change committed by this process
//! ([`Store::alias_changes`]), and changes made by another process on the same database are
//! picked up within [`REFRESH`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use refit_registry::{Error as RegistryError, Store};

use serde::{Deserialize, Serialize};

use crate::model::{Model, ModelError, Task};
use crate::native::NativeModel;
use crate::onnx::{OnnxModel, OnnxOptions, OnnxRuntime};

/// How long a resolved alias is trusted without a signal from this process.
pub const REFRESH: Duration = Duration::from_secs(1);
/// Loaded model versions kept in memory.
const CACHED_VERSIONS: usize = 32;
/// The native model file in a version's source directory.
pub const NATIVE_MODEL_FILE: &str = "model.json";
/// The binding of an uploaded ONNX model in a version's source directory.
pub const ONNX_BINDING_FILE: &str = "refit-onnx.json";

/// A loaded model version.
#[derive(Clone)]
pub struct Served {
    /// Registered model name.
    pub model: String,
    /// Its version.
    pub version: i64,
    /// The model itself.
    pub inner: Arc<dyn Model>,
}

impl std::fmt::Debug for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Served")
            .field("model", &self.model)
            .field("version", &self.version)
            .field("kind", &self.inner.info().kind)
            .finish()
    }
}

/// Why no model could be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The registry has no such model or version, or the alias points nowhere.
    #[error("{0}")]
    NotFound(String),
    /// The version has no model file refit can serve, or the file is unusable.
    #[error("{0}")]
    Unservable(String),
    /// The version is an ONNX model and ONNX Runtime is not available: why.
    #[error("{0}")]
    RuntimeMissing(String),
    /// The registry could not be read.
    #[error(transparent)]
    Registry(RegistryError),
}

impl From<RegistryError> for ServeError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::NotFound(m) => ServeError::NotFound(m),
            other => ServeError::Registry(other),
        }
    }
}

/// What one (model, alias) currently resolves to.
struct Slot {
    /// `None`: the model has no version with that alias.
    served: Option<Arc<Served>>,
    /// The store's alias-change count when this was resolved.
    epoch: u64,
    resolved_at: Instant,
}

/// Resolves aliases to loaded models; cheap to share (`Arc`).
pub struct ModelServer {
    store: Store,
    /// ONNX Runtime, or why it is not available (then only ONNX models fail to load).
    onnx: Result<OnnxRuntime, String>,
    changes: tokio::sync::watch::Receiver<u64>,
    slots: RwLock<HashMap<(String, String), Slot>>,
    /// Serialises loads so that concurrent batches do not load one version twice.
    loading: tokio::sync::Mutex<()>,
    versions: Mutex<Vec<Arc<Served>>>,
}

impl ModelServer {
    /// A server reading models from `store`, running ONNX models with `onnx` (or failing them
    /// with the reason it is missing).
    pub fn new(store: Store, onnx: Result<OnnxRuntime, String>) -> ModelServer {
        ModelServer {
            onnx,
            changes: store.alias_changes(),
            store,
            slots: RwLock::default(),
            loading: tokio::sync::Mutex::new(()),
            versions: Mutex::default(),
        }
    }

    /// The model `alias` of `model` points at, loaded.
    pub async fn resolve(&self, model: &str, alias: &str) -> Result<Arc<Served>, ServeError> {
        let key = (model.to_string(), alias.to_string());
        let absent = || {
            ServeError::NotFound(format!(
                "model '{model}' has no version with alias '{alias}'"
            ))
        };
        if let Some(known) = self.fresh(&key) {
            return known.ok_or_else(absent);
        }
        let _loading = self.loading.lock().await;
        if let Some(known) = self.fresh(&key) {
            return known.ok_or_else(absent);
        }
        // Read the epoch before the alias: a change committed after this read bumps it again.
        let epoch = *self.changes.borrow();
        // An absent alias is remembered as a found one is: each stream batch asks for the
        // challenger, which is mostly not set.
        let served = match self.store.get_model_version_by_alias(model, alias).await {
            Ok(found) => Some(self.version_loaded(model, found.version).await?),
            Err(RegistryError::NotFound(_)) => None,
            Err(other) => return Err(other.into()),
        };
        self.slots.write().expect("slots lock").insert(
            key,
            Slot {
                served: served.clone(),
                epoch,
                resolved_at: Instant::now(),
            },
        );
        served.ok_or_else(absent)
    }

    /// ONNX Runtime, or why it is not available.
    pub fn onnx(&self) -> Result<&OnnxRuntime, &str> {
        self.onnx.as_ref().map_err(String::as_str)
    }

    /// A specific version, loaded.
    pub async fn version(&self, model: &str, version: i64) -> Result<Arc<Served>, ServeError> {
        let _loading = self.loading.lock().await;
        self.version_loaded(model, version).await
    }

    /// What the slot resolved to (a model, or `None` for no such alias) if nothing may have
    /// moved its alias since; `None` if it must be resolved again.
    fn fresh(&self, key: &(String, String)) -> Option<Option<Arc<Served>>> {
        let slots = self.slots.read().expect("slots lock");
        let slot = slots.get(key)?;
        (slot.epoch == *self.changes.borrow() && slot.resolved_at.elapsed() < REFRESH)
            .then(|| slot.served.clone())
    }

    async fn version_loaded(&self, model: &str, version: i64) -> Result<Arc<Served>, ServeError> {
        if let Some(hit) = self
            .versions
            .lock()
            .expect("versions lock")
            .iter()
            .find(|s| s.model == model && s.version == version)
        {
            return Ok(hit.clone());
        }
        let inner = load_version(&self.store, model, version, self.onnx()).await?;
        let served = Arc::new(Served {
            model: model.to_string(),
            version,
            inner,
        });
        let mut versions = self.versions.lock().expect("versions lock");
        if versions.len() >= CACHED_VERSIONS {
            versions.remove(0);
        }
        versions.push(served.clone());
        Ok(served)
    }
}

/// Reads the model of `model` version `version` and opens it: refit's native `model.json`, or an
/// ONNX model described by a `refit-onnx.json` binding, in the directory the version's source
/// names (see [`Store::version_directory`]).
pub async fn load_version(
    store: &Store,
    model: &str,
    version: i64,
    onnx: Result<&OnnxRuntime, &str>,
) -> Result<Arc<dyn Model>, ServeError> {
    let unusable =
        |e: String| ServeError::Unservable(format!("version {version} of '{model}': {e}"));
    // A missing version is a 404; below, "not found" means a missing file.
    store.get_model_version(model, version).await?;
    match read_version_file(store, model, version, NATIVE_MODEL_FILE).await {
        Ok(bytes) => {
            let native = NativeModel::from_json(&bytes).map_err(|e| unusable(e.to_string()))?;
            return Ok(Arc::new(native));
        }
        Err(ServeError::NotFound(_)) => {}
        Err(e) => return Err(e),
    }
    let binding = match read_version_file(store, model, version, ONNX_BINDING_FILE).await {
        Ok(bytes) => OnnxBinding::from_json(&bytes).map_err(unusable)?,
        Err(ServeError::NotFound(_)) => {
            return Err(ServeError::Unservable(format!(
                "version {version} of '{model}' has neither {NATIVE_MODEL_FILE} nor \
                 {ONNX_BINDING_FILE} in its source directory: no model refit can serve"
            )));
        }
        Err(e) => return Err(e),
    };
    let runtime = onnx.map_err(|why| ServeError::RuntimeMissing(why.to_string()))?;
    let bytes = read_version_file(store, model, version, &binding.file).await?;
    let loaded = OnnxModel::load(
        runtime,
        &bytes,
        binding.features.clone(),
        &binding.options(),
    )
    .map_err(|e| unusable(e.to_string()))?;
    Ok(Arc::new(loaded))
}

/// What binds an uploaded ONNX model to a dataset, stored beside it as `refit-onnx.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnnxBinding {
    /// [`ONNX_BINDING_FORMAT`].
    pub format: String,
    /// The model file, relative to the version's source directory.
    pub file: String,
    /// The dataset whose records it scores.
    pub dataset: String,
    /// The dataset's features, in the order of the model's input columns.
    pub features: Vec<String>,
    /// What it predicts.
    pub task: Task,
    /// Class labels by probability column (classifiers).
    pub classes: Vec<String>,
}

/// The binding format written by this version of refit.
pub const ONNX_BINDING_FORMAT: &str = "refit-onnx/1";

impl OnnxBinding {
    /// Parses and checks a binding file.
    pub fn from_json(bytes: &[u8]) -> Result<OnnxBinding, String> {
        let binding: OnnxBinding = serde_json::from_slice(bytes)
            .map_err(|e| format!("invalid {ONNX_BINDING_FILE}: {e}"))?;
        if binding.format != ONNX_BINDING_FORMAT {
            return Err(format!(
                "{ONNX_BINDING_FILE} has format '{}', this refit reads '{ONNX_BINDING_FORMAT}'",
                binding.format
            ));
        }
        Ok(binding)
    }

    /// How to open the model it binds.
    pub fn options(&self) -> OnnxOptions {
        OnnxOptions {
            task: Some(self.task),
            classes: self.task.is_classification().then(|| self.classes.clone()),
            ..OnnxOptions::default()
        }
    }
}

/// The bytes of `file` (e.g. `model.json`) in the directory a model version's source names
/// (see [`Store::version_directory`]).
pub async fn read_version_file(
    store: &Store,
    model: &str,
    version: i64,
    file: &str,
) -> Result<Vec<u8>, ServeError> {
    let v = store.get_model_version(model, version).await?;
    let dir = store.version_directory(&v).await?.ok_or_else(|| {
        ServeError::Unservable(format!(
            "version {version} of '{model}' has source '{}', whose files are not in refit",
            v.source
        ))
    })?;
    let path = format!("{dir}/{file}");
    let (_, mut stream) = store.open_artifact(&path).await.map_err(|e| match e {
        RegistryError::NotFound(_) => {
            ServeError::NotFound(format!("version {version} of '{model}' has no {file}"))
        }
        other => other.into(),
    })?;
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk?);
    }
    Ok(bytes)
}

impl From<ModelError> for ServeError {
    fn from(e: ModelError) -> Self {
        ServeError::Unservable(e.to_string())
    }
}
