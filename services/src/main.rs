//! The `refit` binary.

use std::io::IsTerminal;

use clap::Parser;
use refit_services::Config;
use refit_services::cli::{self, Cli};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref(), &cli.overrides)?;
    let filter: Targets = config
        .log
        .parse()
        .map_err(|e| anyhow::anyhow!("invalid log filter '{}': {e}", config.log))?;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal()),
        )
        .with(filter)
        .init();
    // Two worker threads match the machines refit targets; fitting and scoring use their own
    // blocking pools.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()?;
    runtime.block_on(cli::run(cli, config))
}
