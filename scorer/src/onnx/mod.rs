//! ONNX models, run by ONNX Runtime through `ort`: models trained elsewhere (scikit-learn via
//! skl2onnx, and anything else with the same layout) served through the same [`Model`] trait as
//! refit's native models.
//!
//! ONNX Runtime is a shared library loaded at run time ([`OnnxRuntime::init`], from the config's
//! path or `ORT_DYLIB_PATH`). Without it refit runs as usual; only opening an ONNX model fails,
//! with [`OnnxError::RuntimeMissing`] naming where it looked.
//!
//! Supported layout (checked by [`OnnxModel::load`], each mismatch rejected with its reason):
//! - one input, a float32 or float64 tensor `[N, F]`, `N` dynamic, `F` the number of bound
//!   features (in their order); a missing value is fed as NaN;
//! - a regressor's one output, float `[N, 1]` or `[N]` (skl2onnx's `variable`);
//! - a classifier's two outputs, `label` (int64 or string, `[N]`) and `probabilities` (float
//!   `[N, C]`), as skl2onnx writes them with `options={'zipmap': False}`. ZipMap outputs
//!   (a sequence of maps) are rejected.
//!
//! Classes: named by [`OnnxOptions::classes`] when given; else by the class labels skl2onnx
//! stores on the classifier's nodes (`classlabels_ints`, `classlabels_int64s`,
//! `classlabels_strings`, the last list in the graph whose length is the number of probability
//! columns and whose type is the label's); else `"0"` to `"C-1"` by probability column. A
//! prediction's value is the index of the class ONNX Runtime labels the row with (found in the
//! graph's labels), or, when the graph names no labels, the column of the highest probability
//! (the first on ties).
//!
//! ```no_run
//! use refit_scorer::onnx::{OnnxModel, OnnxOptions, OnnxRuntime};
//!
//! let runtime = OnnxRuntime::init(None)?; // ORT_DYLIB_PATH
//! let bytes = std::fs::read("model.onnx").unwrap();
//! let features = vec!["air_temperature".to_owned(), "torque".to_owned()];
//! let model = OnnxModel::load(&runtime, &bytes, features, &OnnxOptions::default())?;
//! # Ok::<(), refit_scorer::onnx::OnnxError>(())
//! ```

mod labels;
mod layout;
mod pool;
mod runtime;

pub use runtime::{LIBRARY_ENV, OnnxRuntime, RUNTIME_HINT};

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use ort::session::SessionOutputs;
use ort::value::{DynValue, TensorRef};
use refit_registry::datasets::ColumnKind;

use self::labels::ClassLabels;
use self::layout::{Float, LabelType, Layout, Outputs, Port};
use self::pool::{SessionPool, SessionRecipe};
use crate::frame::{FeatureColumn, FeatureFrame};
use crate::model::{Model, ModelError, ModelInfo, Predictions, Task};

/// The [`ModelInfo::kind`] of every ONNX model.
pub const KIND: &str = "onnx";

/// Why ONNX Runtime or an ONNX model cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OnnxError {
    /// No ONNX Runtime library where refit looked (no path configured, or no file there).
    #[error("ONNX Runtime library not found: {looked_at}; {hint}")]
    RuntimeMissing {
        /// Where refit looked and what it found there.
        looked_at: String,
        /// What to do about it.
        hint: &'static str,
    },
    /// The library file exists but is not a loadable ONNX Runtime (of version 1.31 or newer).
    #[error("ONNX Runtime library {} could not be loaded: {reason}; {hint}", path.display())]
    RuntimeUnusable {
        /// The file.
        path: PathBuf,
        /// What went wrong, from the loader or ONNX Runtime.
        reason: String,
        /// What to do about it.
        hint: &'static str,
    },
    /// ONNX Runtime cannot open the bytes as a model (not ONNX, or operators it does not know).
    #[error("ONNX Runtime cannot open the model: {0}")]
    Unreadable(String),
    /// The model's inputs or outputs do not fit refit's layout, the bound features or the task.
    /// The reason names the input or output, with what was expected and what was found.
    #[error("the ONNX model does not fit: {0}")]
    Mismatch(String),
}

impl From<OnnxError> for ModelError {
    fn from(e: OnnxError) -> ModelError {
        match e {
            OnnxError::Mismatch(reason) => ModelError::Input(reason),
            other => ModelError::Invalid(other.to_string()),
        }
    }
}

/// How to open an ONNX model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnnxOptions {
    /// The task, checked against the outputs; `None` infers it (one float output: regression;
    /// label and probabilities: binary for 2 classes, else multiclass).
    pub task: Option<Task>,
    /// Class names by probability column; `None` takes the graph's class labels (see the module
    /// documentation).
    pub classes: Option<Vec<String>>,
    /// Threads ONNX Runtime uses inside one run (0 counts as 1). Default 1: the server
    /// parallelises across requests instead.
    pub intra_threads: usize,
    /// Most sessions of the model open at once, i.e. predictions running in parallel; each holds
    /// a copy of the model. Default: the machine's available parallelism.
    pub max_sessions: usize,
}

impl Default for OnnxOptions {
    fn default() -> OnnxOptions {
        OnnxOptions {
            task: None,
            classes: None,
            intra_threads: 1,
            max_sessions: std::thread::available_parallelism().map_or(1, usize::from),
        }
    }
}

/// An ONNX model, checked and ready to predict.
pub struct OnnxModel {
    info: ModelInfo,
    layout: Layout,
    /// The graph's class labels, by probability column, to turn a `label` into a class index.
    labels: Option<ClassLabels>,
    pool: SessionPool,
}

impl std::fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxModel")
            .field("info", &self.info)
            .field("layout", &self.layout)
            .field("labels", &self.labels)
            .finish_non_exhaustive()
    }
}

impl OnnxModel {
    /// Opens `bytes` with `runtime` and checks its layout against `features` (the bound feature
    /// names, in the model's input column order) and `options`.
    ///
    /// Fails with [`OnnxError::Unreadable`] when ONNX Runtime cannot open the bytes, and with
    /// [`OnnxError::Mismatch`] and the exact reason when the inputs, outputs, task or classes do
    /// not fit.
    pub fn load(
        runtime: &OnnxRuntime,
        bytes: &[u8],
        features: Vec<String>,
        options: &OnnxOptions,
    ) -> Result<OnnxModel, OnnxError> {
        let recipe = SessionRecipe {
            runtime: runtime.clone(),
            bytes: (options.max_sessions > 1).then(|| bytes.to_vec()),
            intra_threads: options.intra_threads.max(1),
        };
        let session = catch_unwind(AssertUnwindSafe(|| recipe.open(bytes)))
            .map_err(|panic| OnnxError::Unreadable(panic_message(&*panic)))?
            .map_err(|e| OnnxError::Unreadable(e.to_string()))?;
        let layout = Layout::check(
            &Port::of(session.inputs()),
            &Port::of(session.outputs()),
            features.len(),
        )
        .map_err(OnnxError::Mismatch)?;
        let (labels, classes) = classes(&layout, bytes, options.classes.as_deref())?;
        let task = layout.task(classes.len());
        match (options.task, task) {
            (None, _) => {}
            (Some(Task::Multiclass), Task::Binary) => {}
            (Some(wanted), found) if wanted == found => {}
            (Some(wanted), _) => {
                return Err(OnnxError::Mismatch(task_mismatch(
                    wanted,
                    &layout,
                    classes.len(),
                )));
            }
        }
        let info = ModelInfo {
            task: options.task.unwrap_or(task),
            features,
            classes,
            kind: KIND.to_owned(),
        };
        Ok(OnnxModel {
            info,
            layout,
            labels,
            pool: SessionPool::new(session, recipe, options.max_sessions),
        })
    }

    /// Checks the model against a dataset's columns (name and kind; the bound features or any
    /// superset, such as the whole schema): every bound feature must be there and numeric, since
    /// the input is one float tensor.
    ///
    /// ```no_run
    /// # use refit_scorer::onnx::OnnxModel;
    /// # use refit_scorer::registry::datasets::Schema;
    /// # fn check(model: &OnnxModel, schema: &Schema) -> Result<(), refit_scorer::onnx::OnnxError> {
    /// let columns: Vec<_> = schema.features.iter().map(|c| (c.name.as_str(), c.kind)).collect();
    /// model.check_features(&columns)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn check_features(&self, columns: &[(&str, ColumnKind)]) -> Result<(), OnnxError> {
        for feature in &self.info.features {
            let kind = columns
                .iter()
                .find(|(name, _)| name == feature)
                .map(|&(_, kind)| kind);
            match kind {
                Some(ColumnKind::Numeric) => {}
                Some(ColumnKind::Categorical) => {
                    return Err(OnnxError::Mismatch(format!(
                        "feature '{feature}' is categorical, but the model's input '{}' is a \
                         float tensor: it takes numeric features only",
                        self.layout.input
                    )));
                }
                None => {
                    return Err(OnnxError::Mismatch(format!(
                        "feature '{feature}' is not a column of the dataset"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Sessions open now (they grow with concurrent use up to [`OnnxOptions::max_sessions`]).
    pub fn sessions(&self) -> usize {
        self.pool.sessions()
    }

    fn run(&self, n: usize, input: &Input) -> Result<Predictions, ModelError> {
        let width = self.info.features.len();
        let shape = [n, width];
        self.pool.with_session(|session| {
            let value = match input {
                Input::F32(x) => {
                    TensorRef::from_array_view((shape, x.as_slice())).map(|t| t.into_dyn())
                }
                Input::F64(x) => {
                    TensorRef::from_array_view((shape, x.as_slice())).map(|t| t.into_dyn())
                }
            }
            .map_err(|e| ModelError::Invalid(format!("ONNX Runtime input: {e}")))?;
            let outputs = session
                .run(ort::inputs![self.layout.input.as_str() => value])
                .map_err(|e| ModelError::Invalid(format!("ONNX Runtime failed: {e}")))?;
            self.read_outputs(n, &outputs)
        })
    }

    fn read_outputs(
        &self,
        n: usize,
        outputs: &SessionOutputs<'_>,
    ) -> Result<Predictions, ModelError> {
        match &self.layout.outputs {
            Outputs::Regression { value, value_type } => Ok(Predictions {
                values: floats(output(outputs, value)?, *value_type, value, n)?,
                probabilities: None,
            }),
            Outputs::Classification {
                label,
                label_type,
                probabilities,
                probabilities_type,
                ..
            } => {
                let k = self.info.classes.len();
                let proba = floats(
                    output(outputs, probabilities)?,
                    *probabilities_type,
                    probabilities,
                    n * k,
                )?;
                let values = match &self.labels {
                    Some(labels) => {
                        class_indices(output(outputs, label)?, *label_type, labels, label, n)?
                    }
                    None => proba
                        .chunks_exact(k)
                        .map(|row| argmax(row) as f64)
                        .collect(),
                };
                Ok(Predictions {
                    values,
                    probabilities: Some(proba),
                })
            }
        }
    }
}

impl Model for OnnxModel {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn predict(&self, frame: &FeatureFrame) -> Result<Predictions, ModelError> {
        let input = Input::from_frame(frame, &self.info.features, self.layout.input_type)?;
        let n = frame.rows;
        if n == 0 {
            let probabilities = self.info.task.is_classification().then(Vec::new);
            return Ok(Predictions {
                values: Vec::new(),
                probabilities,
            });
        }
        catch_unwind(AssertUnwindSafe(|| self.run(n, &input))).unwrap_or_else(|panic| {
            Err(ModelError::Invalid(format!(
                "ONNX Runtime failed: {}",
                panic_message(&*panic)
            )))
        })
    }
}

/// The input tensor's data, row-major.
enum Input {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl Input {
    fn from_frame(
        frame: &FeatureFrame,
        features: &[String],
        ty: Float,
    ) -> Result<Input, ModelError> {
        if frame.columns.len() != features.len() {
            return Err(ModelError::Input(format!(
                "{} columns for {} features",
                frame.columns.len(),
                features.len()
            )));
        }
        let mut columns = Vec::with_capacity(features.len());
        for (column, name) in frame.columns.iter().zip(features) {
            match column {
                FeatureColumn::Numeric(values) if values.len() == frame.rows => {
                    columns.push(values.as_slice())
                }
                FeatureColumn::Numeric(values) => {
                    return Err(ModelError::Input(format!(
                        "feature '{name}' has {} values for {} rows",
                        values.len(),
                        frame.rows
                    )));
                }
                FeatureColumn::Categorical(_) => {
                    return Err(ModelError::Input(format!(
                        "feature '{name}' is categorical; an ONNX model takes numeric features only"
                    )));
                }
            }
        }
        Ok(match ty {
            Float::F32 => Input::F32(row_major(frame.rows, &columns, |x| x as f32)),
            Float::F64 => Input::F64(row_major(frame.rows, &columns, |x| x)),
        })
    }
}

fn row_major<T: Copy + Default>(
    rows: usize,
    columns: &[&[f64]],
    cast: impl Fn(f64) -> T,
) -> Vec<T> {
    let width = columns.len();
    let mut out = vec![T::default(); rows * width];
    if width == 0 {
        return out;
    }
    // Row by row, in blocks of rows, so that writes are sequential and the columns' reads stay
    // in cache; slicing each column to the block lets the compiler drop the bounds checks.
    const BLOCK: usize = 64;
    for (b, block) in out.chunks_mut(BLOCK * width).enumerate() {
        let start = b * BLOCK;
        let n = block.len() / width;
        for (j, column) in columns.iter().enumerate() {
            let column = &column[start..start + n];
            for (dst, &x) in block[j..].iter_mut().step_by(width).zip(column) {
                *dst = cast(x);
            }
        }
    }
    out
}

/// The class names and, when the graph has them, its labels; checks them against the number of
/// probability columns.
fn classes(
    layout: &Layout,
    bytes: &[u8],
    given: Option<&[String]>,
) -> Result<(Option<ClassLabels>, Vec<String>), OnnxError> {
    let Outputs::Classification {
        probabilities,
        label_type,
        classes,
        ..
    } = &layout.outputs
    else {
        return match given {
            Some(given) if !given.is_empty() => Err(OnnxError::Mismatch(format!(
                "{} classes were given, but the model is a regressor",
                given.len()
            ))),
            _ => Ok((None, Vec::new())),
        };
    };
    let graph = labels::class_labels(bytes).into_iter().rfind(|l| {
        matches!(
            (l, label_type),
            (ClassLabels::Ints(_), LabelType::Int64) | (ClassLabels::Strings(_), LabelType::String)
        ) && l.len() >= 2
            && classes.is_none_or(|c| l.len() == c)
    });
    let count = classes
        .or(graph.as_ref().map(ClassLabels::len))
        .or(given.map(<[String]>::len))
        .ok_or_else(|| {
            OnnxError::Mismatch(format!(
                "output '{probabilities}' has a dynamic number of classes and the model names no \
                 class labels; give the classes explicitly"
            ))
        })?;
    let names = match given {
        Some(given) if given.len() != count => {
            return Err(OnnxError::Mismatch(format!(
                "{} classes were given, but output '{probabilities}' has {count} columns",
                given.len()
            )));
        }
        Some(given) => given.to_vec(),
        None => match &graph {
            Some(labels) => labels.names(),
            None => (0..count).map(|i| i.to_string()).collect(),
        },
    };
    Ok((graph, names))
}

fn task_mismatch(wanted: Task, layout: &Layout, classes: usize) -> String {
    let name = match wanted {
        Task::Regression => "regression",
        Task::Binary => "binary",
        Task::Multiclass => "multiclass",
    };
    match &layout.outputs {
        Outputs::Regression { value, .. } => {
            format!("the task is {name}, but the model is a regressor (one output, '{value}')")
        }
        Outputs::Classification {
            label,
            probabilities,
            ..
        } => match wanted {
            Task::Regression => format!(
                "the task is regression, but the model is a classifier (outputs '{label}' and \
                 '{probabilities}')"
            ),
            _ => format!("the task is {name}, but output '{probabilities}' has {classes} classes"),
        },
    }
}

fn output<'o>(outputs: &'o SessionOutputs<'_>, name: &str) -> Result<&'o DynValue, ModelError> {
    outputs
        .get(name)
        .ok_or_else(|| ModelError::Invalid(format!("ONNX Runtime returned no output '{name}'")))
}

/// A float output as f64, checked to hold `expected` values.
fn floats(
    value: &DynValue,
    ty: Float,
    name: &str,
    expected: usize,
) -> Result<Vec<f64>, ModelError> {
    let values: Vec<f64> = match ty {
        Float::F32 => value
            .try_extract_tensor::<f32>()
            .map(|(_, x)| x.iter().map(|&v| f64::from(v)).collect()),
        Float::F64 => value.try_extract_tensor::<f64>().map(|(_, x)| x.to_vec()),
    }
    .map_err(|e| ModelError::Invalid(format!("output '{name}': {e}")))?;
    if values.len() != expected {
        return Err(ModelError::Invalid(format!(
            "output '{name}' has {} values; expected {expected}",
            values.len()
        )));
    }
    Ok(values)
}

/// Each row's label as the index of that class among the graph's labels.
fn class_indices(
    value: &DynValue,
    ty: LabelType,
    labels: &ClassLabels,
    name: &str,
    n: usize,
) -> Result<Vec<f64>, ModelError> {
    let unknown = |label: &dyn std::fmt::Display| {
        ModelError::Invalid(format!(
            "output '{name}' has label {label}, which is not one of the model's classes"
        ))
    };
    let bad = |e: ort::Error| ModelError::Invalid(format!("output '{name}': {e}"));
    let indices: Vec<f64> = match (ty, labels) {
        (LabelType::Int64, ClassLabels::Ints(classes)) => value
            .try_extract_tensor::<i64>()
            .map_err(bad)?
            .1
            .iter()
            .map(|l| {
                classes
                    .iter()
                    .position(|c| c == l)
                    .map(|i| i as f64)
                    .ok_or_else(|| unknown(l))
            })
            .collect::<Result<_, _>>()?,
        (LabelType::String, ClassLabels::Strings(classes)) => value
            .try_extract_strings()
            .map_err(bad)?
            .1
            .iter()
            .map(|l| {
                classes
                    .iter()
                    .position(|c| c == l)
                    .map(|i| i as f64)
                    .ok_or_else(|| unknown(l))
            })
            .collect::<Result<_, _>>()?,
        _ => unreachable!("labels are chosen to match the label output's type"),
    };
    if indices.len() != n {
        return Err(ModelError::Invalid(format!(
            "output '{name}' has {} labels for {n} rows",
            indices.len()
        )));
    }
    Ok(indices)
}

/// Index of the largest value; the first on ties, as numpy's argmax.
fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate().skip(1) {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// A caught panic's message.
fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}
