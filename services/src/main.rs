//! The `refit` binary.

use std::io::IsTerminal;

use clap::Parser;
use refit_services::Config;
use refit_services::cli::{self, Cli};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

fn main() -> anyhow::Result<()> {
    limit_malloc_arenas();
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

/// glibc gives threads that allocate concurrently arenas of their own, up to eight per core, and
/// memory freed in an arena stays with it: streaming 10,000-row batches held ~40 MB more with the
/// default than with two arenas, at the same throughput (BENCHMARKS.md, the stream). An explicit
/// `MALLOC_ARENA_MAX` in the environment still wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // Safe: called first thing in `main`, before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}
