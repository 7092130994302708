//! refit's trainer: retrains models from training specs on snapshots of machine-data history —
//! time-ordered splits, grid search, evaluation exactly as scikit-learn defines its metrics, the
//! promotion gate and its ledger — and schedules it.

pub use refit_scorer as scorer;

pub mod algorithms;
pub mod drift;
pub mod evaluate;
pub mod fit;
pub mod gate;
pub mod metrics;
pub mod prepare;
pub mod realized;
pub mod scheduler;
pub mod spec;
pub mod trainer;
pub mod trees;
