//! `refit specs apply|list|show`, `refit train` and `refit jobs show`: training specs and jobs
//! from the command line, straight on the database (like `refit tokens`), so they work with or
//! without a server running. A spec goes through the same validation as one sent to the API.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use refit_registry::training::{Job, JobStatus, StoredSpec};
use refit_registry::{Actor, Store};
use refit_trainer::spec::{SpecCheckError, TrainingSpec};
use refit_trainer::trainer::Trainer;
use serde_json::Value;

use crate::config::Config;
use crate::http::extract::parse_json;

/// How long `refit train --wait` leaves a queued job to a running server (whose worker looks for
/// jobs every second) before training it itself.
pub const SERVER_GRACE: Duration = Duration::from_secs(3);
/// How often `refit train --wait` looks at its job.
const POLL: Duration = Duration::from_millis(500);

/// Training spec commands.
#[derive(Debug, clap::Subcommand)]
pub enum SpecsCommand {
    /// Store the spec in a JSON file: create it, or replace the spec of that name.
    ///
    /// The file holds one spec as the API takes it (see the README's table of fields); it is
    /// validated against its dataset exactly as the API does, and a refusal names the field. A
    /// running server picks up a new or changed schedule within seconds.
    Apply {
        /// The spec, as JSON.
        file: PathBuf,
    },
    /// List the specs: name, dataset, model, algorithm, schedule, enabled.
    List,
    /// Print a stored spec as JSON.
    Show {
        /// Spec name or id.
        name: String,
    },
}

/// Training job commands.
#[derive(Debug, clap::Subcommand)]
pub enum JobsCommand {
    /// Print a job as JSON: status, stage, progress, run, result or error.
    Show {
        /// Job id.
        id: i64,
    },
}

/// Options of `refit train`.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    /// Spec name or id.
    pub spec: String,
    /// Follow the job to its end and print the decision and the candidate's holdout metrics.
    /// A running server's worker trains it; if none takes it within a few seconds, it is trained
    /// in this process (under a lease, like a server's). Fails if the job fails.
    #[arg(long)]
    pub wait: bool,
}

/// Runs a `refit specs` command.
pub async fn specs(store: &Store, actor: &Actor, command: SpecsCommand) -> anyhow::Result<()> {
    match command {
        SpecsCommand::Apply { file } => {
            let (spec, created) = apply(store, actor, &file).await?;
            println!(
                "{} spec '{}' (id {}): {} on dataset '{}', model '{}', schedule {}",
                if created { "created" } else { "replaced" },
                spec.name,
                spec.id,
                spec.definition["algorithm"].as_str().unwrap_or("?"),
                spec.dataset,
                spec.model_name,
                spec.schedule.as_deref().unwrap_or("none"),
            );
        }
        SpecsCommand::List => print!("{}", spec_table(&store.list_specs().await?)),
        SpecsCommand::Show { name } => {
            let spec = store.get_spec(&name).await?;
            println!("{}", serde_json::to_string_pretty(&spec)?);
        }
    }
    Ok(())
}

/// Validates the spec in `file` and stores it: a new spec, or the new definition of the spec of
/// that name. Returns it and whether it was created.
pub async fn apply(
    store: &Store,
    actor: &Actor,
    file: &Path,
) -> anyhow::Result<(StoredSpec, bool)> {
    let shown = file.display();
    let bytes = std::fs::read(file).with_context(|| format!("reading {shown}"))?;
    let spec: TrainingSpec =
        parse_json(&bytes).map_err(|e| anyhow!("{shown} is not a training spec: {}", e.message))?;
    let valid = spec.check(store).await.map_err(|e| match e {
        SpecCheckError::Invalid(e) => anyhow!("{shown} is refused: {e}"),
        SpecCheckError::Registry(e) => anyhow!(e).context("validating the spec"),
    })?;
    let json = valid.definition();
    // `get_spec` also matches ids: only a spec of this very name is replaced.
    let existing = match store.get_spec(&spec.name).await {
        Ok(s) if s.name == spec.name => true,
        Ok(_) | Err(refit_registry::Error::NotFound(_)) => false,
        Err(e) => return Err(e.into()),
    };
    if !existing {
        match store.create_spec(actor, valid.fields(&json)).await {
            Ok(stored) => return Ok((stored, true)),
            // Created by someone else meanwhile: replace it, as if it had been there.
            Err(refit_registry::Error::AlreadyExists(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let stored = store
        .update_spec(actor, &spec.name, valid.fields(&json))
        .await?;
    Ok((stored, false))
}

/// The specs as a table with a header line.
fn spec_table(specs: &[StoredSpec]) -> String {
    let mut rows = vec![[
        "name".to_string(),
        "dataset".into(),
        "model".into(),
        "algorithm".into(),
        "schedule".into(),
        "enabled".into(),
    ]];
    for s in specs {
        rows.push([
            s.name.clone(),
            s.dataset.clone(),
            s.model_name.clone(),
            s.definition["algorithm"]
                .as_str()
                .unwrap_or("?")
                .to_string(),
            s.schedule.clone().unwrap_or_else(|| "-".into()),
            if s.enabled { "yes" } else { "no" }.into(),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Runs `refit jobs show`.
pub async fn jobs(store: &Store, command: JobsCommand) -> anyhow::Result<()> {
    match command {
        JobsCommand::Show { id } => {
            let job = store.get_job(id).await?;
            println!("{}", serde_json::to_string_pretty(&job)?);
        }
    }
    Ok(())
}

/// Runs `refit train`: queues a manual job and prints its id; with `--wait`, follows it (training
/// it here if no server takes it) and prints the outcome.
pub async fn train(
    store: &Store,
    actor: &Actor,
    config: &Config,
    args: TrainArgs,
) -> anyhow::Result<()> {
    let spec = store.get_spec(&args.spec).await?;
    let job = store.create_job(actor, spec.id, "manual", None).await?;
    println!("{}", job.id);
    if !args.wait {
        eprintln!(
            "queued job {} of spec '{}'; a running server trains it (follow it with `refit jobs show {}`)",
            job.id, spec.name, job.id
        );
        return Ok(());
    }
    eprintln!("queued job {} of spec '{}'", job.id, spec.name);
    let trainer = Trainer::new(
        store.clone(),
        format!("cli:{}", crate::startup::process_name()),
    )
    .with_lease_ttl(Duration::from_secs(config.training_lease_secs));
    let job = follow(&trainer, job.id).await?;
    print!("{}", outcome(&job));
    match job.status {
        JobStatus::Succeeded => Ok(()),
        _ => Err(anyhow!(
            "job {} failed: {}",
            job.id,
            job.error.as_deref().unwrap_or("no reason recorded")
        )),
    }
}

/// Waits for job `id` to end, training it in this process if it is still queued after
/// [`SERVER_GRACE`].
async fn follow(trainer: &Trainer, id: i64) -> anyhow::Result<Job> {
    let store = trainer.store();
    let queued = Instant::now();
    let mut announced = false;
    loop {
        let job = store.get_job(id).await?;
        match job.status {
            JobStatus::Succeeded | JobStatus::Failed => return Ok(job),
            JobStatus::Queued if queued.elapsed() >= SERVER_GRACE => {
                // Claimed through the store like a server's worker does: under the spec's lease,
                // so no other process runs it (or another job of the spec) meanwhile.
                let ttl_ms = trainer.lease_ttl().as_millis() as i64;
                if let Some(claimed) = store.claim_job(id, trainer.owner(), ttl_ms).await? {
                    eprintln!("no server took job {id}; training it here");
                    return Ok(trainer.run_claimed(claimed).await?);
                }
            }
            JobStatus::Running if !announced => {
                eprintln!(
                    "job {id} is running in {}",
                    job.owner.as_deref().unwrap_or("another process")
                );
                announced = true;
            }
            _ => {}
        }
        // A server that stopped while training leaves its job running until its lease expires;
        // then it is failed (as a server's trigger loop would), and this wait ends.
        if job.status == JobStatus::Running
            && let Err(e) = store.fail_interrupted_jobs(None).await
        {
            tracing::debug!(error = %e, "checking for interrupted trainings failed");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The decision and the holdout metrics of a finished job, as printed by `refit train --wait`.
fn outcome(job: &Job) -> String {
    let Some(result) = job
        .result
        .as_ref()
        .filter(|_| job.status == JobStatus::Succeeded)
    else {
        return format!("job {}: {:?}\n", job.id, job.status).to_lowercase();
    };
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
    let mut out = format!(
        "job {}: {}\ncandidate: {} version {} (run {}), {} training and {} holdout rows\n",
        job.id,
        text(&result["decision"]),
        text(&result["model"]),
        result["candidate_version"],
        text(&result["run_id"]),
        result["train_rows"],
        result["holdout_rows"],
    );
    let champion = &result["champion_metrics"];
    match result["champion_version"].as_i64() {
        Some(v) if champion.is_object() => out.push_str(&format!(
            "champion: version {v}, evaluated on the same holdout\n"
        )),
        Some(v) => out.push_str(&format!("champion: version {v}, not evaluated\n")),
        None => out.push_str("champion: none yet\n"),
    }
    if let Some(metrics) = result["candidate_metrics"].as_object() {
        out.push_str(&format!(
            "{:<12} {:>10}{}\n",
            "holdout",
            "candidate",
            if champion.is_object() {
                format!(" {:>10}", "champion")
            } else {
                String::new()
            }
        ));
        for (name, value) in metrics {
            let number = |v: &Value| v.as_f64().map_or("-".to_string(), |x| format!("{x:.4}"));
            out.push_str(&format!("{name:<12} {:>10}", number(value)));
            if champion.is_object() {
                out.push_str(&format!(" {:>10}", number(&champion[name])));
            }
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_are_tabled_in_aligned_columns() {
        let spec = |name: &str, schedule: Option<&str>, enabled| StoredSpec {
            id: 1,
            name: name.into(),
            dataset: "ai4i".into(),
            model_name: name.into(),
            definition: serde_json::json!({"algorithm": "gaussian_nb"}),
            schedule: schedule.map(str::to_string),
            enabled,
            created_at: 0,
            updated_at: 0,
            created_by: "cli:ada".into(),
            last_trained_seq: 0,
        };
        let table = spec_table(&[
            spec("ai4i-failure", Some("0 0 3 * * *"), true),
            spec("x", None, false),
        ]);
        assert_eq!(
            table,
            "name          dataset  model         algorithm    schedule     enabled\n\
             ai4i-failure  ai4i     ai4i-failure  gaussian_nb  0 0 3 * * *  yes\n\
             x             ai4i     x             gaussian_nb  -            no\n"
        );
    }
}
