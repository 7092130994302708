//! Without ONNX Runtime: errors that name what is missing, never a panic. A test binary of its
//! own, since a process that has loaded the library once keeps it.

use std::path::Path;

use refit_scorer::onnx::{OnnxError, OnnxRuntime};

#[test]
fn a_bogus_path_is_named_in_the_error() {
    let err = OnnxRuntime::init(Some(Path::new("/nowhere/libonnxruntime.so.1.31.1"))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "ONNX Runtime library not found: /nowhere/libonnxruntime.so.1.31.1 (from onnx_runtime in \
         the config) does not exist; set ORT_DYLIB_PATH or onnx_runtime in the config to \
         libonnxruntime.so from the onnxruntime wheel (pip install onnxruntime)"
    );
    assert!(OnnxRuntime::get().is_none());
}

#[test]
fn no_path_at_all_says_where_to_set_one() {
    if std::env::var_os("ORT_DYLIB_PATH").is_some() {
        return; // the environment names a library: nothing to check here
    }
    let err = OnnxRuntime::init(None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "ONNX Runtime library not found: no library path: onnx_runtime is not set in the config \
         and ORT_DYLIB_PATH is not set; set ORT_DYLIB_PATH or onnx_runtime in the config to \
         libonnxruntime.so from the onnxruntime wheel (pip install onnxruntime)"
    );
}

#[test]
fn a_file_that_is_not_the_library_is_unusable_not_a_panic() {
    let not_a_library = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let err = OnnxRuntime::init(Some(&not_a_library)).unwrap_err();
    let OnnxError::RuntimeUnusable { path, reason, .. } = &err else {
        panic!("expected RuntimeUnusable, got {err:?}");
    };
    assert_eq!(path, &not_a_library);
    assert!(reason.starts_with("failed to load from"), "{reason}");
    assert!(
        err.to_string().starts_with(&format!(
            "ONNX Runtime library {} could not be loaded: failed to load from",
            not_a_library.display()
        )),
        "{err}"
    );
    assert!(
        err.to_string().ends_with("(pip install onnxruntime)"),
        "{err}"
    );
    assert!(OnnxRuntime::get().is_none());
}
