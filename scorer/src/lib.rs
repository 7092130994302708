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

#[cfg(test)]
mod testing {
    /// The next value in [0, 1) of a 64-bit linear congruential generator: seeded test data
    /// that is the same on every machine.
    pub(crate) fn lcg(state: &mut u64) -> f64 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*state >> 11) as f64 / (1u64 << 53) as f64
    }
}
