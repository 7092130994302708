//! refit's scorer: the [`Model`] trait and refit's native model format. The trainer evaluates a
//! candidate through this same code, so what was measured at training is what will serve.
//!
//! The streaming pipeline, champion hot swap, ONNX models and drift arrive with the scorer issue.

pub mod frame;
pub mod model;
pub mod native;

pub use frame::{FeatureColumn, FeatureFrame};
pub use model::{Model, ModelError, ModelInfo, Predictions, Task};
pub use native::NativeModel;
pub use refit_registry as registry;
