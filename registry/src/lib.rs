//! refit's registry: the domain types of experiments, runs, models and their artifacts, and their
//! persistence on SQLite (the default) or PostgreSQL through one store with portable SQL.
//!
//! The data model follows MLflow's, so that the MLflow REST API can be served from the same
//! tables; refit adds content-addressed artifacts, API tokens and an audit log.
//!
//! Every state-changing operation takes an [`Actor`] and writes an audit entry in the same
//! transaction as the change.

pub mod artifacts;
pub mod audit;
pub mod datasets;
pub mod db;
pub mod drift;
pub mod error;
pub mod experiments;
pub mod ledger;
pub mod logged_models;
pub mod models;
pub mod page;
pub mod realized;
pub mod rendered;
mod run_names;
pub mod runs;
pub mod scores;
pub mod search;
pub mod search_filter;
mod sql;
pub mod tokens;
pub mod training;
pub mod validate;
mod wal_writes;

pub use audit::{Actor, AuditEntry};
pub use db::{Backend, PoolStats, Store, StoreOptions};
pub use error::{Error, Result};
