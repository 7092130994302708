//! refit's trainer: snapshots of machine-data history, fitting, evaluation, the promotion gate,
//! and schedules.
//!
//! Empty until the trainer issue lands; the crate exists now to fix the dependency direction
//! `services → trainer → scorer → registry`.

pub use refit_scorer as scorer;
