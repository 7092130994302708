//! The `refit` service: configuration, the HTTP API, authentication, the CLI and the wiring of
//! registry, trainer and scorer into one binary.

pub mod cli;
pub mod config;
pub mod http;
pub mod import;
pub mod startup;
pub mod training;

pub use config::Config;
pub use startup::Application;
