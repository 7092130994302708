//! The `refit` command line: `serve`, `migrate`, `tokens create|list|revoke`, `datasets import`,
//! `specs apply|list|show`, `train`, `jobs show`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use refit_registry::Actor;
use refit_registry::tokens::Role;

use crate::config::{Config, Overrides};
use crate::import::{self, ImportArgs};
use crate::startup::{self, Application};
use crate::training::{self, JobsCommand, SpecsCommand, TrainArgs};

/// refit: machine-learning in production on machine data — registry, scheduled retraining,
/// promotion gate, streaming scorer and drift, in one binary.
#[derive(Debug, Parser)]
#[command(name = "refit", version)]
pub struct Cli {
    /// TOML configuration file (flags and environment take precedence over it).
    #[arg(long, env = "REFIT_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub overrides: Overrides,
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the API server (migrates the database first).
    Serve,
    /// Bring the database schema up to date and exit.
    Migrate,
    /// Manage API tokens (works while the server runs).
    Tokens {
        #[command(subcommand)]
        command: TokensCommand,
    },
    /// Manage machine-data datasets (works while the server runs).
    Datasets {
        #[command(subcommand)]
        command: DatasetsCommand,
    },
    /// Manage training specs (works while the server runs).
    Specs {
        #[command(subcommand)]
        command: SpecsCommand,
    },
    /// Queue a training of a spec and print the job's id; `--wait` follows it to the decision.
    Train(TrainArgs),
    /// Look at training jobs.
    Jobs {
        #[command(subcommand)]
        command: JobsCommand,
    },
}

/// Dataset management.
#[derive(Debug, Subcommand)]
pub enum DatasetsCommand {
    /// Load a CSV file of readings into a dataset, creating the dataset if it is missing.
    ///
    /// Each row becomes a reading: --entity names the machine column, --time the event-time
    /// column, the other columns are features or labels. Rows go through the same validation as
    /// the HTTP API and are stored idempotently: a reading whose machine and time are already
    /// stored is a duplicate and changes nothing, so running the same import again is safe.
    /// Empty cells are missing values. The whole file is checked first: a line with the wrong
    /// number of fields stops the import before any row is stored.
    #[command(after_help = import::EXIT_STATUS_HELP)]
    Import(ImportArgs),
}

/// Token management.
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create a token and print its secret (shown only once).
    Create {
        /// Unique name; it is the actor in the audit log.
        #[arg(long)]
        name: String,
        /// admin, scientist, operator, consumer or ingest.
        #[arg(long)]
        role: String,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by id or name.
    Revoke {
        /// Token id or name.
        id_or_name: String,
    },
}

/// Runs the parsed command line.
pub async fn run(cli: Cli, config: Config) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve => {
            let app = Application::build(config.clone()).await?;
            if let Some(token) = &app.bootstrap_token {
                println!(
                    "Created the first admin token. It is shown only now, and saved (mode 0600) in {}:\n\n  {token}\n",
                    config.data_dir.join(startup::ADMIN_TOKEN_FILE).display()
                );
            }
            tracing::info!(
                address = %app.local_addr(),
                database = %refit_registry::db::redact_url(&config.database_url),
                "refit is serving; API docs at http://{}/api/v1/docs",
                app.local_addr()
            );
            app.run_until_stopped().await
        }
        Command::Migrate => {
            let store = startup::open_store(&config).await?;
            store.close().await;
            println!(
                "database is up to date: {}",
                refit_registry::db::redact_url(&config.database_url)
            );
            Ok(())
        }
        Command::Tokens { command } => {
            let store = startup::open_store(&config).await?;
            let actor = Actor::new(format!("cli:{}", whoami()));
            let result = tokens(&store, &actor, command).await;
            store.close().await;
            result
        }
        Command::Datasets { command } => {
            let store = startup::open_store(&config).await?;
            let actor = Actor::new(format!("cli:{}", whoami()));
            let result = match command {
                DatasetsCommand::Import(args) => import::run(&store, &actor, args).await,
            };
            store.close().await;
            result
        }
        Command::Specs { command } => {
            let store = startup::open_store(&config).await?;
            let actor = Actor::new(format!("cli:{}", whoami()));
            let result = training::specs(&store, &actor, command).await;
            store.close().await;
            result
        }
        Command::Train(args) => {
            let store = startup::open_store(&config).await?;
            let actor = Actor::new(format!("cli:{}", whoami()));
            let result = training::train(&store, &actor, &config, args).await;
            store.close().await;
            result
        }
        Command::Jobs { command } => {
            let store = startup::open_store(&config).await?;
            let result = training::jobs(&store, command).await;
            store.close().await;
            result
        }
    }
}

async fn tokens(
    store: &refit_registry::Store,
    actor: &Actor,
    command: TokensCommand,
) -> anyhow::Result<()> {
    match command {
        TokensCommand::Create { name, role } => {
            let role: Role = role.parse()?;
            let created = store.create_token(actor, &name, role).await?;
            println!("{}", created.secret);
            eprintln!(
                "created token '{}' (id {}, role {}); the secret above is shown only once",
                name, created.token.id, role
            );
        }
        TokensCommand::List => {
            println!(
                "{:>4}  {:<24} {:<10} {:<8} created_by",
                "id", "name", "role", "state"
            );
            for t in store.list_tokens().await? {
                let state = if t.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!(
                    "{:>4}  {:<24} {:<10} {:<8} {}",
                    t.id, t.name, t.role, state, t.created_by
                );
            }
        }
        TokensCommand::Revoke { id_or_name } => {
            let t = store
                .revoke_token(actor, &id_or_name)
                .await
                .context("revoking token")?;
            println!("revoked token '{}' (id {})", t.name, t.id);
        }
    }
    Ok(())
}

fn whoami() -> String {
    std::env::var("USER").unwrap_or_else(|_| "unknown".into())
}
