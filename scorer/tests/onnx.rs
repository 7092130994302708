//! ONNX models made by scikit-learn + skl2onnx, run through refit and compared with onnxruntime's
//! own (Python) outputs for the same rows; and the exact reasons refit gives for models it rejects.
//!
//! The models come from `scorer/tests/onnx/make_models.py`, run in the project's venv
//! (`scripts/python-env`) into the target directory the first time, and again whenever the script
//! or `tests/python/requirements.txt` changes. The ONNX Runtime library is the venv's
//! (`onnxruntime` wheel), so the comparison is with the very same runtime.

#[path = "onnx/fixtures.rs"]
mod fixtures;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use fixtures::fixtures;
use refit_scorer::onnx::{OnnxError, OnnxModel, OnnxOptions, OnnxRuntime};
use refit_scorer::registry::datasets::ColumnKind;
use refit_scorer::{FeatureColumn, FeatureFrame, Model, ModelError, Task};
use serde::Deserialize;

const TOLERANCE: f64 = 1e-6;

/// A model and onnxruntime's outputs for its probe rows (`None` for NaN).
#[derive(Deserialize)]
struct Case {
    features: Vec<String>,
    #[serde(default)]
    inputs: Vec<Vec<Option<f64>>>,
    variable: Option<Vec<Option<f64>>>,
    label: Option<Vec<serde_json::Value>>,
    probabilities: Option<Vec<Vec<Option<f64>>>>,
}

fn runtime() -> OnnxRuntime {
    OnnxRuntime::init(Some(&fixtures().library)).expect("the venv's ONNX Runtime loads")
}

fn case(name: &str) -> (Vec<u8>, Case) {
    let dir = &fixtures().dir;
    let bytes = std::fs::read(dir.join(format!("{name}.onnx"))).expect("read model");
    let json = std::fs::read(dir.join(format!("{name}.json"))).expect("read case");
    (bytes, serde_json::from_slice(&json).expect("parse case"))
}

fn load(name: &str, options: &OnnxOptions) -> Result<OnnxModel, OnnxError> {
    let (bytes, case) = case(name);
    OnnxModel::load(&runtime(), &bytes, case.features, options)
}

fn frame(inputs: &[Vec<Option<f64>>]) -> FeatureFrame {
    let width = inputs[0].len();
    FeatureFrame {
        rows: inputs.len(),
        columns: (0..width)
            .map(|j| {
                FeatureColumn::Numeric(
                    inputs
                        .iter()
                        .map(|row| row[j].unwrap_or(f64::NAN))
                        .collect(),
                )
            })
            .collect(),
    }
}

fn assert_close(found: &[f64], expected: impl IntoIterator<Item = Option<f64>>, what: &str) {
    let expected: Vec<Option<f64>> = expected.into_iter().collect();
    assert_eq!(found.len(), expected.len(), "{what}: length");
    for (i, (&f, e)) in found.iter().zip(expected).enumerate() {
        match e {
            None => assert!(f.is_nan(), "{what}[{i}]: {f}, expected NaN"),
            Some(e) => assert!((f - e).abs() <= TOLERANCE, "{what}[{i}]: {f}, expected {e}"),
        }
    }
}

fn mismatch(name: &str, options: &OnnxOptions) -> String {
    match load(name, options) {
        Err(OnnxError::Mismatch(reason)) => reason,
        other => panic!("{name}: expected a mismatch, got {other:?}"),
    }
}

/// Checks a classifier against onnxruntime: the class index of each row's label, and the
/// probabilities.
fn check_classifier(name: &str, task: Task, classes: &[&str]) {
    let (_, case) = case(name);
    let model = load(name, &OnnxOptions::default()).unwrap();
    assert_eq!(model.info().task, task);
    assert_eq!(model.info().classes, classes);
    assert_eq!(model.info().kind, "onnx");
    assert_eq!(model.info().features, case.features);

    let predictions = model.predict(&frame(&case.inputs)).unwrap();
    let expected_values = case.label.unwrap().into_iter().map(|label| {
        let label = match label {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        };
        Some(
            classes
                .iter()
                .position(|c| *c == label)
                .expect("a known class") as f64,
        )
    });
    assert_close(&predictions.values, expected_values, name);
    let probabilities = case.probabilities.unwrap();
    assert!(probabilities.iter().all(|row| row.len() == classes.len()));
    assert_close(
        &predictions.probabilities.unwrap(),
        probabilities.into_iter().flatten(),
        &format!("{name} probabilities"),
    );
}

fn check_regressor(name: &str) {
    let (_, case) = case(name);
    let model = load(name, &OnnxOptions::default()).unwrap();
    assert_eq!(model.info().task, Task::Regression);
    assert!(model.info().classes.is_empty());
    let predictions = model.predict(&frame(&case.inputs)).unwrap();
    assert_eq!(predictions.probabilities, None);
    assert_close(&predictions.values, case.variable.unwrap(), name);
}

#[test]
fn scaled_logistic_regression_matches_onnxruntime() {
    check_classifier("logistic", Task::Binary, &["0", "1"]);
}

#[test]
fn random_forest_with_string_labels_matches_onnxruntime() {
    check_classifier("forest", Task::Multiclass, &["H", "L", "M"]);
}

#[test]
fn gradient_boosting_regressor_matches_onnxruntime() {
    check_regressor("boosting");
}

#[test]
fn a_float64_input_matches_onnxruntime() {
    check_regressor("linear_double");
}

#[test]
fn a_missing_value_passes_through_as_nan() {
    // Probe row 3 has no process temperature: the scaled logistic regression gives NaN, as
    // onnxruntime does; the trees route it like onnxruntime (checked in the tests above).
    let (_, case) = case("logistic");
    assert_eq!(case.inputs[3][1], None);
    let model = load("logistic", &OnnxOptions::default()).unwrap();
    let predictions = model.predict(&frame(&case.inputs[3..4])).unwrap();
    assert!(
        predictions
            .probabilities
            .unwrap()
            .iter()
            .all(|p| p.is_nan())
    );
}

#[test]
fn rows_predict_the_same_alone_as_in_a_batch() {
    let (_, case) = case("forest");
    let model = load("forest", &OnnxOptions::default()).unwrap();
    let batch = model.predict(&frame(&case.inputs)).unwrap();
    let k = model.info().classes.len();
    for (i, row) in case.inputs.iter().enumerate().take(20) {
        let one = model.predict(&frame(std::slice::from_ref(row))).unwrap();
        assert_eq!(one.values, [batch.values[i]]);
        assert_eq!(
            one.probabilities.unwrap(),
            batch.probabilities.as_ref().unwrap()[i * k..(i + 1) * k]
        );
    }
    let empty = model.predict(&FeatureFrame {
        rows: 0,
        columns: vec![FeatureColumn::Numeric(Vec::new()); 5],
    });
    assert_eq!(empty.unwrap().values, Vec::<f64>::new());
}

#[test]
fn concurrent_predictions_open_sessions_up_to_the_bound() {
    let (_, case) = case("boosting");
    let options = OnnxOptions {
        max_sessions: 3,
        ..OnnxOptions::default()
    };
    let model = Arc::new(load("boosting", &options).unwrap());
    let input = Arc::new(frame(&case.inputs));
    let expected = model.predict(&input).unwrap();
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let (model, input) = (model.clone(), input.clone());
            std::thread::spawn(move || {
                (0..30)
                    .map(|_| model.predict(&input).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for thread in threads {
        for predictions in thread.join().unwrap() {
            assert_eq!(predictions, expected);
        }
    }
    assert!(
        (1..=3).contains(&model.sessions()),
        "{} sessions",
        model.sessions()
    );
}

#[test]
fn categorical_or_misshapen_frames_are_input_errors() {
    let model = load("boosting", &OnnxOptions::default()).unwrap();
    let mut columns = vec![FeatureColumn::Numeric(vec![1.0]); 4];
    columns[2] = FeatureColumn::Categorical(vec![Some("L".to_owned())]);
    let err = model
        .predict(&FeatureFrame { rows: 1, columns })
        .unwrap_err();
    assert!(matches!(err, ModelError::Input(_)));
    assert_eq!(
        err.to_string(),
        "input does not fit the model: feature 'rotational_speed' is categorical; an ONNX model \
         takes numeric features only"
    );
    let err = model
        .predict(&FeatureFrame {
            rows: 1,
            columns: vec![FeatureColumn::Numeric(vec![1.0]); 3],
        })
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "input does not fit the model: 3 columns for 4 features"
    );
}

#[test]
fn zipmap_outputs_are_rejected_with_how_to_convert() {
    assert_eq!(
        mismatch("zipmap", &OnnxOptions::default()),
        "output 'output_probability' is a sequence of maps (sequence of map<int64, float32>, \
         skl2onnx's ZipMap); convert the classifier with options={'zipmap': False} to get a \
         probabilities tensor"
    );
}

#[test]
fn a_wrong_feature_count_is_rejected() {
    let err = load("narrow", &OnnxOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the ONNX model does not fit: input 'X' has 4 columns (shape [N, 4]), but 5 features \
         are bound to the model"
    );
}

#[test]
fn input_and_output_layouts_are_checked() {
    let options = OnnxOptions::default();
    assert_eq!(
        mismatch("int_input", &options),
        "input 'X' has element type int64; expected float32 or float64"
    );
    assert_eq!(
        mismatch("two_inputs", &options),
        "the model has 2 inputs ('a', 'b'); expected one float tensor of shape [N, 4]"
    );
    assert_eq!(
        mismatch("two_targets", &options),
        "output 'variable' has shape [N, 2]; expected one value per row, [N, 1] or [N]"
    );
}

#[test]
fn the_task_and_classes_must_fit_the_outputs() {
    let task = |task| OnnxOptions {
        task: Some(task),
        ..OnnxOptions::default()
    };
    assert_eq!(
        mismatch("logistic", &task(Task::Regression)),
        "the task is regression, but the model is a classifier (outputs 'label' and 'probabilities')"
    );
    assert_eq!(
        mismatch("forest", &task(Task::Binary)),
        "the task is binary, but output 'probabilities' has 3 classes"
    );
    assert_eq!(
        mismatch("boosting", &task(Task::Multiclass)),
        "the task is multiclass, but the model is a regressor (one output, 'variable')"
    );
    // A binary model may serve a multiclass task (two classes are several).
    let model = load("logistic", &task(Task::Multiclass)).unwrap();
    assert_eq!(model.info().task, Task::Multiclass);

    let named = OnnxOptions {
        classes: Some(vec!["ok".into(), "failure".into()]),
        ..OnnxOptions::default()
    };
    assert_eq!(
        load("logistic", &named).unwrap().info().classes,
        ["ok", "failure"]
    );
    let too_many = OnnxOptions {
        classes: Some(vec!["a".into(), "b".into(), "c".into()]),
        ..OnnxOptions::default()
    };
    assert_eq!(
        mismatch("logistic", &too_many),
        "3 classes were given, but output 'probabilities' has 2 columns"
    );
}

#[test]
fn features_are_checked_against_the_dataset_columns() {
    let model = load("logistic", &OnnxOptions::default()).unwrap();
    let mut columns = vec![
        ("type", ColumnKind::Categorical),
        ("air_temperature", ColumnKind::Numeric),
        ("process_temperature", ColumnKind::Numeric),
        ("rotational_speed", ColumnKind::Numeric),
        ("torque", ColumnKind::Numeric),
        ("tool_wear", ColumnKind::Numeric),
    ];
    model.check_features(&columns).unwrap();
    columns[4].1 = ColumnKind::Categorical;
    assert_eq!(
        model.check_features(&columns).unwrap_err().to_string(),
        "the ONNX model does not fit: feature 'torque' is categorical, but the model's input 'X' \
         is a float tensor: it takes numeric features only"
    );
    columns.remove(4);
    assert_eq!(
        model.check_features(&columns).unwrap_err().to_string(),
        "the ONNX model does not fit: feature 'torque' is not a column of the dataset"
    );
}

#[test]
fn bytes_that_are_not_onnx_are_rejected() {
    let features = vec!["x".to_owned()];
    for bytes in [&b"not an onnx model"[..], &[], &[0x08, 0x07, 0x3a, 0x7f]] {
        match OnnxModel::load(&runtime(), bytes, features.clone(), &OnnxOptions::default()) {
            Err(OnnxError::Unreadable(reason)) => assert!(!reason.is_empty()),
            other => panic!("expected Unreadable, got {other:?}"),
        }
    }
}

#[test]
fn the_runtime_is_loaded_once() {
    let first = runtime();
    assert_eq!(first.library(), fixtures().library);
    assert!(
        first.build_info().contains("ORT Build Info"),
        "{}",
        first.build_info()
    );
    // Another existing path gets the same runtime: a process holds one ONNX Runtime.
    let again = OnnxRuntime::init(Some(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("Cargo.toml")
            .as_path(),
    ))
    .unwrap();
    assert_eq!(again.library(), first.library());
    // A missing one is still reported.
    assert!(matches!(
        OnnxRuntime::init(Some(Path::new("/nowhere/libonnxruntime.so"))),
        Err(OnnxError::RuntimeMissing { .. })
    ));
}

/// Throughput of `predict` at batch 1,024 (logistic regression, one thread), beside the same
/// model in a bare `ort` session fed a ready row-major buffer, in the same run (alternating, best
/// of several trials, since other work on the machine moves single trials). A measurement, not a
/// test: `cargo test --release -p refit-scorer --test onnx -- --ignored --nocapture`.
#[test]
#[ignore]
fn throughput_at_batch_1024() {
    let (bytes, case) = case("logistic");
    let model = OnnxModel::load(
        &runtime(),
        &bytes,
        case.features.clone(),
        &OnnxOptions::default(),
    )
    .unwrap();
    let rows: Vec<Vec<Option<f64>>> = case.inputs.iter().cycle().take(1024).cloned().collect();
    let input = frame(&rows);
    let mut session = ort::session::Session::builder(runtime().environment())
        .unwrap()
        .with_intra_threads(1)
        .unwrap()
        .commit_from_memory(&bytes)
        .unwrap();
    let x: Vec<f32> = rows
        .iter()
        .flatten()
        .map(|v| v.unwrap_or(f64::NAN) as f32)
        .collect();
    let rounds = 300;
    let (mut refit, mut bare) = (f64::MAX, f64::MAX);
    for _ in 0..15 {
        let start = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(model.predict(&input).unwrap());
        }
        refit = refit.min(start.elapsed().as_secs_f64());
        let start = Instant::now();
        for _ in 0..rounds {
            let tensor =
                ort::value::TensorRef::from_array_view(([1024usize, 5], x.as_slice())).unwrap();
            let out = session.run(ort::inputs!["X" => tensor]).unwrap();
            std::hint::black_box(
                out.get("label")
                    .unwrap()
                    .try_extract_tensor::<i64>()
                    .unwrap(),
            );
            std::hint::black_box(
                out.get("probabilities")
                    .unwrap()
                    .try_extract_tensor::<f32>()
                    .unwrap(),
            );
        }
        bare = bare.min(start.elapsed().as_secs_f64());
    }
    let rows_per_s = |secs: f64| (rounds * 1024) as f64 / secs / 1e6;
    println!(
        "logistic, batch 1024, 1 thread: refit predict {:.1} M rows/s, bare ort session {:.1} M \
         rows/s, ratio {:.2}",
        rows_per_s(refit),
        rows_per_s(bare),
        bare / refit
    );
}
