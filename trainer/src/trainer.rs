//! The trainer: runs a training job from a spec — snapshot the window, split it by time, fit every
//! grid point (each a run), refit the best as the candidate, evaluate candidate and champion on the
//! same holdout through the scorer's [`Model`] trait, apply the gate, record the decision in the
//! ledger and promote in one transaction.

use std::sync::Arc;
use std::time::Duration;

use refit_registry::datasets::{Dataset, Schema, SnapshotRequest, SnapshotRow};
use refit_registry::experiments::Tag;
use refit_registry::ledger::{Decision, LedgerEntry, NewDecision};
use refit_registry::models::NewModelVersion;
use refit_registry::runs::{
    Dataset as InputDataset, DatasetInput, Metric, NewRun, Param, RunStatus, RunUpdate,
};
use refit_registry::training::{Job, JobStatus};
use refit_registry::{Actor, Store};
use refit_scorer::drift::{PROFILE_FILE, ProfileSampler, ReferenceProfile};
use refit_scorer::native::{FORMAT, NativeModel};
use refit_scorer::onnx::OnnxRuntime;
use refit_scorer::{Model, ModelInfo, Task};
use serde::Serialize;
use serde_json::json;

use crate::algorithms::Hyperparameters;
use crate::evaluate::{self, MetricName, MetricValues};
use crate::fit::{self, TrainingData};
use crate::gate::GateMode;
use crate::prepare::{self, Labeled};
use crate::spec::{SpecError, TrainingSpec, ValidSpec, parse_span};

/// Why a training job failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The spec no longer fits its dataset.
    #[error("invalid spec: {0}")]
    Spec(#[from] SpecError),
    /// The data cannot train this spec (empty window, one class...).
    #[error("{0}")]
    Data(String),
    /// A fit failed.
    #[error("fitting failed: {0}")]
    Fit(#[from] fit::FitError),
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] refit_registry::Error),
}

/// What a finished job produced (stored as the job's result).
#[derive(Debug, Clone, Serialize)]
pub struct JobSummary {
    /// The training part's snapshot.
    pub train_snapshot: i64,
    /// The holdout's snapshot.
    pub holdout_snapshot: i64,
    /// Labelled training rows.
    pub train_rows: usize,
    /// Labelled holdout rows.
    pub holdout_rows: usize,
    /// The job's parent run (the candidate's).
    pub run_id: String,
    /// One child run per grid point with its validation score.
    pub grid: Vec<GridPoint>,
    /// Registered model.
    pub model: String,
    /// The candidate's version.
    pub candidate_version: i64,
    /// Candidate metrics on the holdout.
    pub candidate_metrics: serde_json::Value,
    /// The champion it was compared with.
    pub champion_version: Option<i64>,
    /// Champion metrics on the same holdout.
    pub champion_metrics: Option<serde_json::Value>,
    /// The decision.
    pub decision: Decision,
    /// Its ledger entry.
    pub ledger_entry: i64,
}

/// One grid point's run and score.
#[derive(Debug, Clone, Serialize)]
pub struct GridPoint {
    /// Its run.
    pub run_id: String,
    /// Its hyperparameters.
    pub params: Vec<(String, String)>,
    /// The selection metric on the validation part, if it could be computed.
    pub score: Option<f64>,
}

/// Runs training jobs against one store. Cheap to clone.
#[derive(Clone)]
pub struct Trainer {
    store: Store,
    owner: Arc<str>,
    lease_ttl_ms: i64,
}

/// What automation records as its actor.
pub fn trainer_actor() -> Actor {
    Actor::automation("trainer")
}

impl Trainer {
    /// A trainer whose leases name `owner` (unique per process, e.g. `host:pid`), held for 60 s
    /// and renewed while training.
    pub fn new(store: Store, owner: impl Into<String>) -> Trainer {
        Trainer {
            store,
            owner: Arc::from(owner.into()),
            lease_ttl_ms: 60_000,
        }
    }

    /// The same trainer with leases of `ttl`: a crashed process's job is failed, and its spec
    /// freed, once its lease is this old.
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Trainer {
        self.lease_ttl_ms = (ttl.as_millis() as i64).max(100);
        self
    }

    /// How long leases last.
    pub fn lease_ttl(&self) -> Duration {
        Duration::from_millis(self.lease_ttl_ms as u64)
    }

    /// The name this trainer's leases carry.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs the oldest queued job this process can lease, if any, to its end.
    pub async fn run_next(&self) -> Result<Option<Job>, refit_registry::Error> {
        match self
            .store
            .claim_next_job(&self.owner, self.lease_ttl_ms)
            .await?
        {
            None => Ok(None),
            Some(job) => Ok(Some(self.run_claimed(job).await?)),
        }
    }

    /// Runs a job this process has claimed; the job ends `succeeded` or `failed` (with the
    /// reason), never left running.
    pub async fn run_claimed(&self, job: Job) -> Result<Job, refit_registry::Error> {
        let heartbeat = {
            let (store, owner, spec_id, ttl) = (
                self.store.clone(),
                self.owner.clone(),
                job.spec_id,
                self.lease_ttl_ms,
            );
            tokio::spawn(async move {
                let mut tick =
                    tokio::time::interval(Duration::from_millis((ttl / 3).max(1) as u64));
                tick.tick().await;
                loop {
                    tick.tick().await;
                    match store.renew_lease(spec_id, &owner, ttl).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(spec_id, "lost the lease of a running training")
                        }
                        Err(e) => tracing::warn!(error = %e, "renewing a training lease failed"),
                    }
                }
            })
        };
        let outcome = self.train(&job).await;
        heartbeat.abort();
        match outcome {
            Ok(summary) => {
                let result = serde_json::to_value(&summary).expect("summaries serialize");
                self.store
                    .finish_job(&job, &self.owner, JobStatus::Succeeded, None, Some(&result))
                    .await?;
            }
            Err(e) => {
                tracing::warn!(job = job.id, error = %e, "training failed");
                self.store
                    .finish_job(
                        &job,
                        &self.owner,
                        JobStatus::Failed,
                        Some(&e.to_string()),
                        None,
                    )
                    .await?;
            }
        }
        self.store.get_job(job.id).await
    }

    async fn progress(&self, job: &Job, stage: &str, done: usize, total: usize) {
        if let Err(e) = self
            .store
            .set_job_progress(job.id, stage, done as i64, total as i64)
            .await
        {
            tracing::warn!(error = %e, "recording job progress failed");
        }
    }

    /// Takes a snapshot; again (twice at most) if retention pruned some of its rows while they
    /// were read. Once taken, the snapshot is kept, so pruning leaves its rows alone.
    async fn snapshot(
        &self,
        dataset: &str,
        request: &SnapshotRequest,
    ) -> Result<refit_registry::datasets::Snapshot, refit_registry::Error> {
        let mut retries = 0;
        loop {
            match self
                .store
                .create_snapshot(&trainer_actor(), dataset, request)
                .await
            {
                Err(refit_registry::Error::InvalidState(why)) if retries < 2 => {
                    retries += 1;
                    tracing::info!(dataset, reason = %why, "snapshotting again");
                }
                other => return other,
            }
        }
    }

    async fn train(&self, job: &Job) -> Result<JobSummary, TrainError> {
        let stored = self.store.get_spec(&job.spec_id.to_string()).await?;
        let spec: TrainingSpec = serde_json::from_value(stored.definition.clone())
            .map_err(|e| TrainError::Data(format!("the stored spec is unreadable: {e}")))?;
        let dataset = self.store.get_dataset(&spec.dataset).await?;
        let valid = spec.validate(&dataset.schema)?;
        let actor = trainer_actor();

        // 1. The window and its split, as two snapshots of one consistent state.
        self.progress(job, "snapshot", 0, 1).await;
        let max_seq = self.store.dataset_seq(&dataset.name).await?;
        let split = split_window(&self.store, &dataset, &valid, max_seq).await?;
        let train_snap = self
            .snapshot(
                &dataset.name,
                &SnapshotRequest {
                    from: Some(split.from),
                    to: Some(split.split),
                    as_of_seq: Some(max_seq),
                    ..Default::default()
                },
            )
            .await?;
        let holdout_snap = self
            .snapshot(
                &dataset.name,
                &SnapshotRequest {
                    from: Some(split.split),
                    to: Some(split.to),
                    as_of_seq: Some(max_seq),
                    ..Default::default()
                },
            )
            .await?;
        let (_, schema, train_rows) = self
            .store
            .load_snapshot(&dataset.name, train_snap.id)
            .await?;
        let (_, _, holdout_rows) = self
            .store
            .load_snapshot(&dataset.name, holdout_snap.id)
            .await?;
        let classes = if spec.task.is_classification() {
            let classes = prepare::classes_of(&train_rows, valid.target_position);
            let needed = if spec.task == Task::Binary { 2 } else { 3 };
            if classes.len() < 2 || (spec.task == Task::Binary && classes.len() != 2) {
                return Err(TrainError::Data(format!(
                    "the target '{}' has {} class(es) in the training data ({}); a {:?} model needs {}",
                    spec.target,
                    classes.len(),
                    classes.join(", "),
                    spec.task,
                    if spec.task == Task::Binary {
                        "exactly 2".to_string()
                    } else {
                        format!("at least {needed}")
                    }
                )));
            }
            classes
        } else {
            Vec::new()
        };
        let (train, _) = prepare::labeled(
            &train_rows,
            &schema,
            &spec.features,
            valid.target_position,
            spec.task,
            &classes,
        )
        .map_err(TrainError::Data)?;
        let (holdout, holdout_skipped) = prepare::labeled(
            &holdout_rows,
            &schema,
            &spec.features,
            valid.target_position,
            spec.task,
            &classes,
        )
        .map_err(TrainError::Data)?;
        if train.len() < 2 {
            return Err(TrainError::Data(format!(
                "the training part holds {} labelled row(s); at least 2 are needed",
                train.len()
            )));
        }

        // 2. The runs: a parent for the job, a child per grid point.
        let experiment = match self.store.get_experiment_by_name(&spec.name).await {
            Ok(e) => e,
            Err(refit_registry::Error::NotFound(_)) => {
                self.store
                    .create_experiment(&actor, &spec.name, None, &[])
                    .await?
            }
            Err(e) => return Err(e.into()),
        };
        let parent = self
            .store
            .create_run(
                &actor,
                NewRun {
                    experiment_id: experiment.experiment_id.clone(),
                    run_name: Some(format!("job-{}", job.id)),
                    tags: vec![
                        tag("refit.job", job.id.to_string()),
                        tag("refit.spec", spec.name.clone()),
                        tag("refit.trigger", job.trigger.clone()),
                        tag("refit.role", "candidate".into()),
                    ],
                    ..Default::default()
                },
            )
            .await?;
        let parent_id = parent.info.run_id.clone();
        self.store.set_job_run(job.id, &parent_id).await?;
        let result = self
            .train_in_run(
                job,
                &spec,
                &valid,
                &dataset,
                &schema,
                &classes,
                &train,
                &holdout,
                &holdout_rows,
                holdout_skipped,
                (&train_snap, &holdout_snap),
                &experiment.experiment_id,
                &parent_id,
                max_seq,
            )
            .await;
        let status = if result.is_ok() {
            RunStatus::Finished
        } else {
            RunStatus::Failed
        };
        self.store
            .update_run(
                &actor,
                &parent_id,
                RunUpdate {
                    status: Some(status),
                    end_time: Some(refit_registry::db::now_ms()),
                    run_name: None,
                },
            )
            .await?;
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn train_in_run(
        &self,
        job: &Job,
        spec: &TrainingSpec,
        valid: &ValidSpec,
        dataset: &Dataset,
        schema: &Schema,
        classes: &[String],
        train: &Labeled,
        holdout: &Labeled,
        holdout_rows: &[SnapshotRow],
        holdout_skipped: prepare::Skipped,
        (train_snap, holdout_snap): (
            &refit_registry::datasets::Snapshot,
            &refit_registry::datasets::Snapshot,
        ),
        experiment_id: &str,
        parent_id: &str,
        max_seq: i64,
    ) -> Result<JobSummary, TrainError> {
        let actor = trainer_actor();
        let inputs = [
            snapshot_input(dataset, schema, train_snap, "training", train.len()),
            snapshot_input(dataset, schema, holdout_snap, "evaluation", holdout.len()),
        ];
        self.store.log_inputs(&actor, parent_id, &inputs).await?;

        let total = valid.grid.len() + 2;
        let model_name = valid.model.clone();
        let (version, candidate_metrics, grid) = match uploaded_candidate(job) {
            // An uploaded version: evaluated on the holdout as it is, no fitting.
            Some(v) => {
                self.evaluate_upload(
                    job,
                    spec,
                    valid,
                    schema,
                    classes,
                    holdout_rows,
                    parent_id,
                    &model_name,
                    v,
                )
                .await?
            }
            None => {
                self.fit_candidate(
                    job,
                    spec,
                    valid,
                    classes,
                    train,
                    holdout,
                    holdout_skipped,
                    (train_snap, holdout_snap),
                    experiment_id,
                    parent_id,
                    &model_name,
                    total,
                )
                .await?
            }
        };

        // 5. The champion on the same holdout.
        self.progress(job, "champion", valid.grid.len() + 1, total)
            .await;
        let champion_version = self.store.champion_version(&model_name).await?;
        let (champion_metrics, champion_note) = match champion_version {
            None => (None, Some("the model has no champion yet".to_string())),
            Some(v) => match load_champion(&self.store, &model_name, v).await {
                Ok(champion) => match evaluate_champion(
                    champion.as_ref(),
                    holdout_rows,
                    schema,
                    spec,
                    valid.target_position,
                    classes,
                ) {
                    Ok(m) => (Some(m), None),
                    Err(note) => (
                        None,
                        Some(format!(
                            "champion version {v} could not be evaluated: {note}"
                        )),
                    ),
                },
                Err(note) => (
                    None,
                    Some(format!("champion version {v} could not be loaded: {note}")),
                ),
            },
        };

        // 6. The gate and the decision.
        self.progress(job, "gate", valid.grid.len() + 2, total)
            .await;
        let verdict = spec.gate.judge(
            &candidate_metrics,
            champion_metrics.as_ref(),
            champion_note.as_deref(),
            holdout.len() as u64,
        );
        let pinned = self.store.model_pin(&model_name).await?;
        let mut decision = NewDecision {
            model_name: model_name.clone(),
            trigger: job.trigger.clone(),
            spec_id: Some(job.spec_id),
            job_id: Some(job.id),
            candidate_version: Some(version),
            champion_version,
            candidate_metrics: Some(evaluate::to_json(&candidate_metrics)),
            champion_metrics: champion_metrics.as_ref().map(evaluate::to_json),
            checks: verdict.checks.clone(),
            reason: champion_note.clone(),
            cause: crate::drift::ledger_cause(&job.trigger, job.trigger_detail.as_deref()),
        };
        let entry: LedgerEntry = if !verdict.passed {
            decision.reason = Some(failed_checks(&verdict.checks));
            self.store
                .record_decision(&actor, Decision::Rejected, &decision)
                .await?
        } else if spec.gate.mode == GateMode::Manual || pinned.is_some() {
            decision.reason = Some(match &pinned {
                Some(p) => format!(
                    "passed the gate; the model is pinned by {} ({})",
                    p.pinned_by,
                    p.reason.clone().unwrap_or_default()
                ),
                None => "passed the gate; manual mode waits for an operator".to_string(),
            });
            self.store
                .record_decision(&actor, Decision::PendingApproval, &decision)
                .await?
        } else {
            match self.store.promote(&actor, &decision).await {
                Ok(entry) => entry,
                Err(refit_registry::Error::InvalidState(why)) => {
                    decision.reason = Some(why);
                    self.store
                        .record_decision(&actor, Decision::Rejected, &decision)
                        .await?
                }
                Err(e) => return Err(e.into()),
            }
        };
        self.store
            .set_model_version_tag(
                &actor,
                &model_name,
                version,
                "refit.decision",
                decision_name(entry.decision),
            )
            .await?;
        self.store
            .set_model_version_tag(
                &actor,
                &model_name,
                version,
                "refit.ledger_entry",
                &entry.id.to_string(),
            )
            .await?;
        self.store
            .set_spec_trained_seq(job.spec_id, max_seq)
            .await?;
        Ok(JobSummary {
            train_snapshot: train_snap.id,
            holdout_snapshot: holdout_snap.id,
            train_rows: train.len(),
            holdout_rows: holdout.len(),
            run_id: parent_id.to_string(),
            grid,
            model: model_name,
            candidate_version: version,
            candidate_metrics: evaluate::to_json(&candidate_metrics),
            champion_version,
            champion_metrics: champion_metrics.as_ref().map(evaluate::to_json),
            decision: entry.decision,
            ledger_entry: entry.id,
        })
    }

    /// Steps 3 and 4 of a training: the grid search, the candidate refitted on the whole training
    /// part, its holdout metrics, its files and its model version.
    #[allow(clippy::too_many_arguments)]
    async fn fit_candidate(
        &self,
        job: &Job,
        spec: &TrainingSpec,
        valid: &ValidSpec,
        classes: &[String],
        train: &Labeled,
        holdout: &Labeled,
        holdout_skipped: prepare::Skipped,
        (train_snap, holdout_snap): (
            &refit_registry::datasets::Snapshot,
            &refit_registry::datasets::Snapshot,
        ),
        experiment_id: &str,
        parent_id: &str,
        model_name: &str,
        total: usize,
    ) -> Result<(i64, evaluate::MetricValues, Vec<GridPoint>), TrainError> {
        let actor = trainer_actor();
        let model_name = model_name.to_string();
        // 3. Grid search on a time split of the training part.
        let n_val = ((train.len() as f64) * spec.validation.fraction).ceil() as usize;
        let n_fit = train.len().saturating_sub(n_val.max(1));
        if n_fit < 2 {
            return Err(TrainError::Data(format!(
                "{} labelled training rows are too few to hold out a validation part",
                train.len()
            )));
        }
        let fit_part = train.slice(0..n_fit);
        let val_part = train.slice(n_fit..train.len());
        let metric = valid.selection_metric;
        let mut grid = Vec::with_capacity(valid.grid.len());
        for (i, hp) in valid.grid.iter().enumerate() {
            self.progress(
                job,
                &format!("fit {}/{}", i + 1, valid.grid.len()),
                i,
                total,
            )
            .await;
            let child = self
                .store
                .create_run(
                    &actor,
                    NewRun {
                        experiment_id: experiment_id.to_string(),
                        run_name: Some(format!("job-{}-grid-{}", job.id, i + 1)),
                        tags: vec![
                            tag("mlflow.parentRunId", parent_id.to_string()),
                            tag("refit.job", job.id.to_string()),
                            tag("refit.role", "grid".into()),
                        ],
                        ..Default::default()
                    },
                )
                .await?;
            let scored = async {
                let (model, _) = fit_model(spec, hp.clone(), classes, fit_part.clone()).await?;
                let predictions = model
                    .predict(&val_part.frame)
                    .map_err(|e| TrainError::Data(e.to_string()))?;
                Ok::<_, TrainError>(evaluate::evaluate(
                    spec.task,
                    classes.len(),
                    &val_part.y,
                    &predictions,
                ))
            }
            .await;
            let scores = match scored {
                Ok(scores) => scores,
                Err(e) => {
                    // The grid point's run ends failed, not left running, before the job fails.
                    if let Err(update) = self
                        .store
                        .update_run(
                            &actor,
                            &child.info.run_id,
                            RunUpdate {
                                status: Some(RunStatus::Failed),
                                end_time: Some(refit_registry::db::now_ms()),
                                run_name: None,
                            },
                        )
                        .await
                    {
                        tracing::warn!(error = %update, "marking a failed grid run failed");
                    }
                    return Err(e);
                }
            };
            let mut params = run_params(spec, hp);
            params.push(Param {
                key: "validation_rows".into(),
                value: val_part.len().to_string(),
            });
            let metrics: Vec<Metric> = scores
                .iter()
                .map(|(k, v)| Metric {
                    key: format!("validation_{k}"),
                    value: *v,
                    timestamp: refit_registry::db::now_ms(),
                    step: 0,
                })
                .collect();
            self.store
                .log_batch(&actor, &child.info.run_id, &metrics, &params, &[])
                .await?;
            self.store
                .update_run(
                    &actor,
                    &child.info.run_id,
                    RunUpdate {
                        status: Some(RunStatus::Finished),
                        end_time: Some(refit_registry::db::now_ms()),
                        run_name: None,
                    },
                )
                .await?;
            grid.push(GridPoint {
                run_id: child.info.run_id,
                params: hp.as_params(),
                score: scores.get(&metric).copied(),
            });
        }
        let best = best_point(&grid, metric).ok_or_else(|| {
            TrainError::Data(format!(
                "no grid point produced a {metric} on the validation part"
            ))
        })?;

        // 4. The candidate: the best grid point refitted on the whole training part.
        self.progress(job, "candidate", valid.grid.len(), total)
            .await;
        let hp = valid.grid[best].clone();
        let (candidate, bytes) = fit_model(spec, hp.clone(), classes, train.clone()).await?;
        let predictions = candidate
            .predict(&holdout.frame)
            .map_err(|e| TrainError::Data(e.to_string()))?;
        let candidate_metrics =
            evaluate::evaluate(spec.task, classes.len(), &holdout.y, &predictions);
        let mut params = run_params(spec, &hp);
        params.extend([
            Param {
                key: "train_rows".into(),
                value: train.len().to_string(),
            },
            Param {
                key: "holdout_rows".into(),
                value: holdout.len().to_string(),
            },
            Param {
                key: "holdout_rows_unknown_class".into(),
                value: holdout_skipped.unknown_class.to_string(),
            },
            Param {
                key: "train_snapshot_digest".into(),
                value: train_snap.digest.clone(),
            },
            Param {
                key: "holdout_snapshot_digest".into(),
                value: holdout_snap.digest.clone(),
            },
        ]);
        let metrics: Vec<Metric> = candidate_metrics
            .iter()
            .map(|(k, v)| Metric {
                key: k.as_str().to_string(),
                value: *v,
                timestamp: refit_registry::db::now_ms(),
                step: 0,
            })
            .collect();
        self.store
            .log_batch(
                &actor,
                parent_id,
                &metrics,
                &params,
                &[tag("refit.best_grid_run", grid[best].run_id.clone())],
            )
            .await?;
        let run = self.store.get_run(parent_id).await?;
        let root = run.info.artifact_root().ok_or_else(|| {
            TrainError::Data("the run's artifacts are not stored by refit".into())
        })?;
        let artifact = self
            .store
            .put_artifact_bytes(&actor, &format!("{root}/model/model.json"), &bytes)
            .await?;
        // The reference profile drift is measured against (see refit_scorer::drift::reference):
        // the training part's features, sampled by the spec's seed, and the holdout predictions.
        let profile = ReferenceProfile::build(
            candidate.info(),
            &train.frame,
            Some(&predictions),
            ProfileSampler::with_seed(spec.seed),
        );
        self.store
            .put_artifact_bytes(
                &actor,
                &format!("{root}/model/{PROFILE_FILE}"),
                &profile.to_json(),
            )
            .await?;

        match self.store.get_registered_model(&model_name).await {
            Ok(_) => {}
            Err(refit_registry::Error::NotFound(_)) => {
                self.store
                    .create_registered_model(
                        &actor,
                        &model_name,
                        Some(&format!("Trained by refit from spec '{}'", spec.name)),
                        &[],
                    )
                    .await?;
            }
            Err(e) => return Err(e.into()),
        }
        let version = self
            .store
            .create_model_version(
                &actor,
                &model_name,
                NewModelVersion {
                    source: format!("runs:/{parent_id}/model"),
                    run_id: Some(parent_id.to_string()),
                    run_link: None,
                    description: Some(format!(
                        "{} on {} rows; holdout {:?}",
                        spec.algorithm,
                        train.len(),
                        evaluate::to_json(&candidate_metrics)
                    )),
                    tags: vec![
                        tag("refit.spec", spec.name.clone()),
                        tag("refit.job", job.id.to_string()),
                        tag("refit.algorithm", spec.algorithm.to_string()),
                        tag("refit.model_sha256", artifact.sha256.clone()),
                        tag("refit.train_snapshot", train_snap.id.to_string()),
                        tag("refit.holdout_snapshot", holdout_snap.id.to_string()),
                    ],
                },
            )
            .await?;

        Ok((version.version, candidate_metrics, grid))
    }

    /// An uploaded version as the candidate (trigger `upload`): its metrics on the holdout,
    /// computed as a champion's are, logged to the job's run; nothing is fitted.
    #[allow(clippy::too_many_arguments)]
    async fn evaluate_upload(
        &self,
        job: &Job,
        spec: &TrainingSpec,
        valid: &ValidSpec,
        schema: &Schema,
        classes: &[String],
        holdout_rows: &[SnapshotRow],
        parent_id: &str,
        model_name: &str,
        version: i64,
    ) -> Result<(i64, evaluate::MetricValues, Vec<GridPoint>), TrainError> {
        self.progress(job, "candidate", 1, 2).await;
        let model = load_champion(&self.store, model_name, version)
            .await
            .map_err(|e| {
                TrainError::Data(format!(
                    "uploaded version {version} could not be loaded: {e}"
                ))
            })?;
        let metrics = evaluate_champion(
            model.as_ref(),
            holdout_rows,
            schema,
            spec,
            valid.target_position,
            classes,
        )
        .map_err(|e| {
            TrainError::Data(format!(
                "uploaded version {version} could not be evaluated: {e}"
            ))
        })?;
        let logged: Vec<Metric> = metrics
            .iter()
            .map(|(k, v)| Metric {
                key: k.as_str().to_string(),
                value: *v,
                timestamp: refit_registry::db::now_ms(),
                step: 0,
            })
            .collect();
        self.store
            .log_batch(
                &trainer_actor(),
                parent_id,
                &logged,
                &[],
                &[tag("refit.candidate_version", version.to_string())],
            )
            .await?;
        Ok((version, metrics, Vec::new()))
    }
}

fn tag(key: &str, value: String) -> Tag {
    Tag {
        key: key.to_string(),
        value,
    }
}

fn decision_name(d: Decision) -> &'static str {
    match d {
        Decision::Promoted => "promoted",
        Decision::Rejected => "rejected",
        Decision::PendingApproval => "pending_approval",
        Decision::Approved => "approved",
        Decision::RejectedByOperator => "rejected_by_operator",
        Decision::RolledBack => "rolled_back",
    }
}

fn failed_checks(checks: &[refit_registry::ledger::GateCheck]) -> String {
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| format!("{} ({})", c.check, c.detail))
        .collect();
    format!("failed: {}", failed.join("; "))
}

/// The grid point with the best score (first on ties); None if none scored.
fn best_point(grid: &[GridPoint], metric: MetricName) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, p) in grid.iter().enumerate() {
        let Some(s) = p.score else { continue };
        let better = match best {
            None => true,
            Some((_, b)) => {
                if metric.higher_is_better() {
                    s > b
                } else {
                    s < b
                }
            }
        };
        if better {
            best = Some((i, s));
        }
    }
    best.map(|(i, _)| i)
}

fn run_params(spec: &TrainingSpec, hp: &Hyperparameters) -> Vec<Param> {
    let mut params = vec![
        Param {
            key: "algorithm".into(),
            value: spec.algorithm.to_string(),
        },
        Param {
            key: "task".into(),
            value: format!("{:?}", spec.task).to_lowercase(),
        },
        Param {
            key: "dataset".into(),
            value: spec.dataset.clone(),
        },
        Param {
            key: "target".into(),
            value: spec.target.clone(),
        },
        Param {
            key: "features".into(),
            value: spec.features.join(","),
        },
        Param {
            key: "scale".into(),
            value: spec.preprocessing.scale.to_string(),
        },
        Param {
            key: "window".into(),
            value: spec.window.clone(),
        },
        Param {
            key: "seed".into(),
            value: spec.seed.to_string(),
        },
        Param {
            key: "refit_version".into(),
            value: env!("CARGO_PKG_VERSION").to_string(),
        },
    ];
    for (k, v) in hp.as_params() {
        params.push(Param {
            key: format!("param.{k}"),
            value: v,
        });
    }
    params
}

fn snapshot_input(
    dataset: &Dataset,
    schema: &Schema,
    snap: &refit_registry::datasets::Snapshot,
    context: &str,
    labelled: usize,
) -> DatasetInput {
    DatasetInput {
        tags: vec![Tag { key: "mlflow.data.context".into(), value: context.into() }],
        dataset: InputDataset {
            name: dataset.name.clone(),
            digest: snap.digest.clone(),
            source_type: "refit-snapshot".into(),
            source: json!({ "dataset": dataset.name, "snapshot_id": snap.id, "ts_from": snap.ts_from, "ts_to": snap.ts_to, "max_seq": snap.max_seq }).to_string(),
            schema: Some(serde_json::to_string(schema).expect("schemas serialize")),
            profile: Some(json!({ "num_rows": snap.row_count, "labelled_rows": labelled }).to_string()),
        },
    }
}

/// Fits encoder and estimator off the async runtime; returns the model and its file bytes.
async fn fit_model(
    spec: &TrainingSpec,
    hp: Hyperparameters,
    classes: &[String],
    data: Labeled,
) -> Result<(NativeModel, Vec<u8>), TrainError> {
    let (task, scale, seed) = (spec.task, spec.preprocessing.scale, spec.seed);
    let info = ModelInfo {
        task,
        features: spec.features.clone(),
        classes: classes.to_vec(),
        kind: spec.algorithm.to_string(),
    };
    tokio::task::spawn_blocking(move || {
        let encoder = prepare::fit_encoder(&data.frame, scale);
        let x = encoder
            .encode(&data.frame)
            .map_err(|e| TrainError::Data(e.to_string()))?;
        let width = encoder.width();
        let matrix = ndarray::ArrayView2::from_shape((data.len(), width), &x)
            .map_err(|e| TrainError::Data(e.to_string()))?;
        let estimator = fit::fit(
            &hp,
            &TrainingData {
                x: matrix,
                y: &data.y,
                task,
                n_classes: info.classes.len(),
            },
            seed,
        )?;
        let model = NativeModel {
            format: FORMAT.to_string(),
            info,
            encoder,
            estimator,
        };
        model.check().map_err(|e| TrainError::Data(e.to_string()))?;
        let bytes = model.to_json();
        Ok((model, bytes))
    })
    .await
    .map_err(|e| TrainError::Data(format!("the fit was aborted: {e}")))?
}

/// The champion of `model`, native or ONNX, loaded through the scorer as the server serves it.
async fn load_champion(
    store: &Store,
    model: &str,
    version: i64,
) -> Result<std::sync::Arc<dyn Model>, String> {
    let onnx = OnnxRuntime::get();
    let onnx = onnx
        .as_ref()
        .ok_or("ONNX Runtime is not loaded (set onnx_runtime in the config or ORT_DYLIB_PATH)");
    refit_scorer::serving::load_version(store, model, version, onnx)
        .await
        .map_err(|e| e.to_string())
}

/// Metrics of the champion on the holdout rows, its own features taken by name. Refused (with
/// the reason) when its task or classes differ from the data's, or a feature is gone.
fn evaluate_champion(
    champion: &dyn Model,
    rows: &[SnapshotRow],
    schema: &Schema,
    spec: &TrainingSpec,
    target: usize,
    classes: &[String],
) -> Result<MetricValues, String> {
    let info = champion.info();
    if info.task != spec.task {
        return Err(format!("it is a {:?} model", info.task));
    }
    if spec.task.is_classification() && info.classes != classes {
        return Err(format!(
            "its classes ({}) differ from the data's ({})",
            info.classes.join(", "),
            classes.join(", ")
        ));
    }
    let (data, _) = prepare::labeled(rows, schema, &info.features, target, spec.task, classes)?;
    let predictions = champion.predict(&data.frame).map_err(|e| e.to_string())?;
    Ok(evaluate::evaluate(
        spec.task,
        classes.len(),
        &data.y,
        &predictions,
    ))
}

/// Splits the window at the time that leaves the holdout (a fraction of the rows, or a span) at
/// its end.
struct WindowSplit {
    from: i64,
    split: i64,
    to: i64,
}

async fn split_window(
    store: &Store,
    dataset: &Dataset,
    valid: &ValidSpec,
    max_seq: i64,
) -> Result<WindowSplit, TrainError> {
    let times = store
        .record_times(&dataset.name, dataset.schema_version, 0, i64::MAX, max_seq)
        .await?;
    let Some(&newest) = times.last() else {
        return Err(TrainError::Data(format!(
            "dataset '{}' holds no rows under its current schema",
            dataset.name
        )));
    };
    let from = match valid.window_ms {
        Some(w) => (newest - w + 1).max(0),
        None => 0,
    };
    let first = times.partition_point(|&t| t < from);
    let window = &times[first..];
    if window.is_empty() {
        return Err(TrainError::Data("the window holds no rows".into()));
    }
    let split = match (&valid.spec.holdout.fraction, &valid.spec.holdout.duration) {
        (Some(f), _) => {
            let k = ((window.len() as f64) * f).ceil().max(1.0) as usize;
            window[window.len() - k.min(window.len())]
        }
        (None, Some(d)) => newest - parse_span(d).map_err(TrainError::Data)? + 1,
        (None, None) => unreachable!("validated specs have a holdout"),
    };
    if split <= from || window.iter().all(|&t| t >= split) {
        return Err(TrainError::Data(format!(
            "the holdout would take the whole window ({} rows from {} to {}): nothing is left to train on",
            window.len(),
            refit_registry::datasets::record::format_time(from),
            refit_registry::datasets::record::format_time(newest)
        )));
    }
    Ok(WindowSplit {
        from,
        split,
        to: newest + 1,
    })
}

/// The version a job of trigger `upload` evaluates: `{"candidate_version": N}` in its detail.
pub fn uploaded_candidate(job: &Job) -> Option<i64> {
    if job.trigger != UPLOAD_TRIGGER {
        return None;
    }
    let detail: serde_json::Value = serde_json::from_str(job.trigger_detail.as_deref()?).ok()?;
    detail["candidate_version"].as_i64()
}

/// The trigger of a job that puts an uploaded version through its spec's gate.
pub const UPLOAD_TRIGGER: &str = "upload";
