//! refit's scorer: applies the champion model to incoming machine records, hot-swaps it on
//! promotion, and watches for drift. The `Model` trait lives here so that the trainer evaluates a
//! candidate through the same code that will serve it.
//!
//! Empty until the scorer issue lands; the crate exists now to fix the dependency direction
//! `services → trainer → scorer → registry`.

pub use refit_registry as registry;
