//! refit's scorer: the [`Model`] trait and refit's native model format. The trainer evaluates a
//! candidate through this same code, so what was measured at training is what will serve.
//!
//! [`drift`] holds the drift statistics. The streaming pipeline, champion hot swap and ONNX models
//! arrive with the scorer issue.

pub mod drift;
pub mod frame;
pub mod model;
pub mod monitoring;
pub mod native;
pub mod onnx;
pub mod serving;
pub mod stream;

pub use frame::{FeatureColumn, FeatureFrame};
pub use model::{Model, ModelError, ModelInfo, Predictions, Task};
pub use native::NativeModel;
pub use refit_registry as registry;
