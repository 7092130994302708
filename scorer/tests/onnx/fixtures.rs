//! The ONNX test models, shared by `scorer/tests/onnx.rs` and the end-to-end tests (included with
//! `#[path]`): `make_models.py` run in the project's venv (`scripts/python-env`) into the target
//! directory the first time, and again whenever the script or `tests/python/requirements.txt`
//! changes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde::Deserialize;

/// The generated models and the library they were checked with.
pub struct Fixtures {
    /// Where the models and their cases are.
    pub dir: PathBuf,
    /// The venv's ONNX Runtime library.
    pub library: PathBuf,
}

#[derive(Deserialize)]
struct Manifest {
    library: Option<PathBuf>,
}

/// The fixtures, made if missing or stale.
pub fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        // CARGO_TARGET_TMPDIR is the same for every crate of the workspace: one copy serves all.
        let script = root.join("scorer/tests/onnx/make_models.py");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("onnx-fixtures");
        // What the fixtures were made from: regenerate when it changes.
        let mut stamp = std::fs::read(&script).expect("read make_models.py");
        stamp.extend(
            std::fs::read(root.join("tests/python/requirements.txt"))
                .expect("read requirements.txt"),
        );
        let fresh = std::fs::read(dir.join("stamp")).is_ok_and(|s| s == stamp)
            && read_manifest(&dir).is_some_and(|library| library.is_file());
        if !fresh {
            generate(&root, &script, &dir, &stamp);
        }
        let library = read_manifest(&dir).expect("manifest.json names the onnxruntime library");
        Fixtures { dir, library }
    })
}

fn read_manifest(dir: &Path) -> Option<PathBuf> {
    let bytes = std::fs::read(dir.join("manifest.json")).ok()?;
    serde_json::from_slice::<Manifest>(&bytes).ok()?.library
}

fn generate(root: &Path, script: &Path, dir: &Path, stamp: &[u8]) {
    let env = Command::new(root.join("scripts/python-env"))
        .output()
        .expect("run scripts/python-env");
    assert!(
        env.status.success(),
        "scripts/python-env failed:\n{}",
        String::from_utf8_lossy(&env.stderr)
    );
    let python = String::from_utf8(env.stdout)
        .expect("python path")
        .trim()
        .to_owned();
    let staging = dir.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let made = Command::new(&python)
        .arg(script)
        .arg(&staging)
        .output()
        .expect("run make_models.py");
    assert!(
        made.status.success(),
        "make_models.py failed:\n{}",
        String::from_utf8_lossy(&made.stderr)
    );
    std::fs::write(staging.join("stamp"), stamp).expect("write stamp");
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(&staging, dir).expect("move the fixtures into place");
}
