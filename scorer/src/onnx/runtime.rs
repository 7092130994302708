//! Finding and loading the ONNX Runtime shared library, once per process.
//!
//! refit does not link ONNX Runtime: `ort` loads `libonnxruntime` at run time (`load-dynamic`), so
//! the binary starts, and serves native models, on a machine without it. Left to itself `ort`
//! panics when the library is missing (`ort::init()` and every API call look it up lazily), so
//! nothing here calls into `ort` before [`OnnxRuntime::init`] has checked the file and loaded it
//! through `ort::init_from`, which returns an error instead.

use std::ffi::OsString;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use ort::environment::Environment;

use super::{OnnxError, panic_message};

/// The environment variable naming the ONNX Runtime library, as `ort` itself reads it.
pub const LIBRARY_ENV: &str = "ORT_DYLIB_PATH";

/// What to do when the library is missing, shown with every runtime error.
pub const RUNTIME_HINT: &str = "set ORT_DYLIB_PATH or onnx_runtime in the config to \
    libonnxruntime.so from the onnxruntime wheel (pip install onnxruntime)";

/// The process's ONNX Runtime, once loaded. A library can be loaded only once per process, so the
/// first successful [`OnnxRuntime::init`] decides which one every later call gets.
static RUNTIME: Mutex<Option<OnnxRuntime>> = Mutex::new(None);

/// A loaded ONNX Runtime: the handle every ONNX model is opened with.
///
/// Cheap to clone (the environment is reference-counted and lives for the whole process).
#[derive(Clone)]
pub struct OnnxRuntime {
    environment: Environment,
    library: PathBuf,
}

impl std::fmt::Debug for OnnxRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxRuntime")
            .field("library", &self.library)
            .finish_non_exhaustive()
    }
}

impl OnnxRuntime {
    /// Loads ONNX Runtime from `library` (the config's `onnx_runtime`) or else from the file named
    /// by `ORT_DYLIB_PATH`, once per process.
    ///
    /// The path must name the library file itself, e.g.
    /// `.venv/lib/python3.11/site-packages/onnxruntime/capi/libonnxruntime.so.1.31.1`. It is
    /// checked to exist on every call. The first successful call loads the library; later calls
    /// return that same runtime whatever path they name, since a process can hold only one.
    ///
    /// Fails with [`OnnxError::RuntimeMissing`] when no path is given or the file does not exist,
    /// and with [`OnnxError::RuntimeUnusable`] when it is not a loadable ONNX Runtime of version
    /// 1.31 or newer. Never panics.
    ///
    /// ```no_run
    /// # use refit_scorer::onnx::OnnxRuntime;
    /// let runtime = OnnxRuntime::init(None)?; // from ORT_DYLIB_PATH
    /// # Ok::<(), refit_scorer::onnx::OnnxError>(())
    /// ```
    pub fn init(library: Option<&Path>) -> Result<OnnxRuntime, OnnxError> {
        let path = locate(library, std::env::var_os(LIBRARY_ENV))?;
        let mut slot = RUNTIME.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(runtime) = slot.as_ref() {
            return Ok(runtime.clone());
        }
        let runtime = catch_unwind(|| load(&path)).unwrap_or_else(|panic| {
            Err(unusable(
                &path,
                format!("ort panicked: {}", panic_message(&*panic)),
            ))
        })?;
        *slot = Some(runtime.clone());
        Ok(runtime)
    }

    /// The runtime loaded by an earlier [`OnnxRuntime::init`], if any.
    pub fn get() -> Option<OnnxRuntime> {
        RUNTIME
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The library file this runtime was loaded from.
    pub fn library(&self) -> &Path {
        &self.library
    }

    /// ONNX Runtime's build information (version, commit), as the library reports it.
    pub fn build_info(&self) -> String {
        catch_unwind(AssertUnwindSafe(ort::info))
            .map(str::to_owned)
            .unwrap_or_default()
    }

    /// The `ort` environment, for code that uses `ort` directly (benchmarks against a bare
    /// session, for instance).
    pub fn environment(&self) -> &Environment {
        &self.environment
    }
}

/// Which library file to load: the explicit path, else `ORT_DYLIB_PATH` (`env`), checked to be an
/// existing file.
pub(crate) fn locate(explicit: Option<&Path>, env: Option<OsString>) -> Result<PathBuf, OnnxError> {
    let (path, source) = match (explicit, env) {
        (Some(path), _) => (path.to_path_buf(), "onnx_runtime in the config"),
        (None, Some(value)) if !value.is_empty() => (PathBuf::from(value), LIBRARY_ENV),
        (None, _) => {
            return Err(OnnxError::RuntimeMissing {
                looked_at: format!(
                    "no library path: onnx_runtime is not set in the config and \
                     {LIBRARY_ENV} is not set"
                ),
                hint: RUNTIME_HINT,
            });
        }
    };
    let problem = match std::fs::metadata(&path) {
        Ok(meta) if meta.is_file() => return Ok(path),
        Ok(_) => "is not a file",
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "does not exist",
        Err(_) => "cannot be read",
    };
    Err(OnnxError::RuntimeMissing {
        looked_at: format!("{} (from {source}) {problem}", path.display()),
        hint: RUNTIME_HINT,
    })
}

fn load(path: &Path) -> Result<OnnxRuntime, OnnxError> {
    let builder = ort::init_from(path).map_err(|e| unusable(path, e.to_string()))?;
    let environment = builder
        .with_name("refit")
        .with_telemetry(false)
        .build()
        .map_err(|e| unusable(path, e.to_string()))?;
    Ok(OnnxRuntime {
        environment,
        library: path.to_path_buf(),
    })
}

fn unusable(path: &Path, reason: String) -> OnnxError {
    OnnxError::RuntimeUnusable {
        path: path.to_path_buf(),
        reason,
        hint: RUNTIME_HINT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_configured_says_so() {
        let err = locate(None, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ONNX Runtime library not found: no library path: onnx_runtime is not set in the \
             config and ORT_DYLIB_PATH is not set; set ORT_DYLIB_PATH or onnx_runtime in the \
             config to libonnxruntime.so from the onnxruntime wheel (pip install onnxruntime)"
        );
        // An empty variable counts as unset.
        assert!(matches!(
            locate(None, Some(OsString::new())),
            Err(OnnxError::RuntimeMissing { .. })
        ));
    }

    #[test]
    fn a_missing_file_is_named_with_where_the_path_came_from() {
        let err = locate(None, Some("/nowhere/libonnxruntime.so".into())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ONNX Runtime library not found: /nowhere/libonnxruntime.so (from ORT_DYLIB_PATH) \
             does not exist; set ORT_DYLIB_PATH or onnx_runtime in the config to \
             libonnxruntime.so from the onnxruntime wheel (pip install onnxruntime)"
        );
        let dir = std::env::temp_dir();
        let err = locate(Some(&dir), Some("/ignored".into())).unwrap_err();
        let OnnxError::RuntimeMissing { looked_at, .. } = err else {
            panic!("expected RuntimeMissing, got {err:?}");
        };
        assert_eq!(
            looked_at,
            format!(
                "{} (from onnx_runtime in the config) is not a file",
                dir.display()
            )
        );
    }

    #[test]
    fn the_explicit_path_wins_over_the_environment() {
        let file = std::env::current_exe().unwrap();
        assert_eq!(locate(Some(&file), Some("/ignored".into())).unwrap(), file);
        assert_eq!(locate(None, Some(file.clone().into())).unwrap(), file);
    }
}
