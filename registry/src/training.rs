//! Training specs and jobs as stored: the trainer validates a spec's definition; the registry
//! keeps it, queues jobs, and leases each spec to exactly one running job across processes.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use utoipa::ToSchema;

use crate::audit::{self, Actor};
use crate::db::{Store, now_ms};
use crate::error::{Error, Result, is_unique_violation};

/// A stored training spec.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct StoredSpec {
    /// Spec id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Dataset it trains on.
    pub dataset: String,
    /// Registered model it produces versions of.
    pub model_name: String,
    /// The spec as JSON.
    #[schema(value_type = Object)]
    pub definition: serde_json::Value,
    /// 6-field cron (UTC), if scheduled.
    pub schedule: Option<String>,
    /// Whether schedules and triggers may start it.
    pub enabled: bool,
    /// ms since the Unix epoch.
    pub created_at: i64,
    /// ms since the Unix epoch.
    pub updated_at: i64,
    /// Who created it.
    pub created_by: String,
    /// Dataset sequence number at the last training.
    pub last_trained_seq: i64,
}

/// What a spec is stored with.
#[derive(Debug, Clone)]
pub struct SpecFields<'a> {
    /// Unique name.
    pub name: &'a str,
    /// Dataset.
    pub dataset: &'a str,
    /// Registered model.
    pub model_name: &'a str,
    /// The whole spec.
    pub definition: &'a serde_json::Value,
    /// Cron schedule.
    pub schedule: Option<&'a str>,
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for a trainer.
    Queued,
    /// Being trained.
    Running,
    /// Finished; its decision is in the ledger.
    Succeeded,
    /// Failed; `error` says why.
    Failed,
}

impl JobStatus {
    fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
        }
    }

    fn parse(s: &str) -> JobStatus {
        match s {
            "running" => JobStatus::Running,
            "succeeded" => JobStatus::Succeeded,
            "failed" => JobStatus::Failed,
            _ => JobStatus::Queued,
        }
    }
}

/// A training job.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Job {
    /// Job id.
    pub id: i64,
    /// Spec id.
    pub spec_id: i64,
    /// Spec name.
    pub spec: String,
    /// What started it: `manual`, `cron`, `data_volume`, `drift`.
    pub trigger: String,
    /// Detail of the trigger (e.g. the drift report).
    pub trigger_detail: Option<String>,
    /// Where it is.
    pub status: JobStatus,
    /// Current stage, e.g. `snapshot`, `fit 3/8`, `evaluate`, `gate`.
    pub stage: Option<String>,
    /// Steps done.
    pub progress_done: i64,
    /// Steps in all.
    pub progress_total: i64,
    /// ms since the Unix epoch.
    pub created_at: i64,
    /// Who asked for it.
    pub created_by: String,
    /// ms since the Unix epoch.
    pub started_at: Option<i64>,
    /// ms since the Unix epoch.
    pub finished_at: Option<i64>,
    /// The process running it.
    pub owner: Option<String>,
    /// The job's parent run (the candidate's), once created.
    pub run_id: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// Summary of the outcome (runs, candidate, decision).
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
}

const SPEC_COLUMNS: &str = "id, name, dataset, model_name, definition, schedule, enabled, created_at, \
                            updated_at, created_by, last_trained_seq";

fn spec_from_row(row: &AnyRow) -> Result<StoredSpec> {
    let definition: String = row.try_get("definition")?;
    Ok(StoredSpec {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        dataset: row.try_get("dataset")?,
        model_name: row.try_get("model_name")?,
        definition: serde_json::from_str(&definition)
            .map_err(|e| Error::Integrity(format!("stored spec is unreadable: {e}")))?,
        schedule: row.try_get("schedule")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        created_by: row.try_get("created_by")?,
        last_trained_seq: row.try_get("last_trained_seq")?,
    })
}

const JOB_SELECT: &str = "SELECT j.id, j.spec_id, s.name AS spec, j.trigger, j.trigger_detail, j.status, j.stage, \
     j.progress_done, j.progress_total, j.created_at, j.created_by, j.started_at, j.finished_at, j.owner, j.run_id, \
     j.error, j.result FROM training_jobs j JOIN training_specs s ON s.id = j.spec_id";

fn job_from_row(row: &AnyRow) -> Result<Job> {
    let result: Option<String> = row.try_get("result")?;
    Ok(Job {
        id: row.try_get("id")?,
        spec_id: row.try_get("spec_id")?,
        spec: row.try_get("spec")?,
        trigger: row.try_get("trigger")?,
        trigger_detail: row.try_get("trigger_detail")?,
        status: JobStatus::parse(&row.try_get::<String, _>("status")?),
        stage: row.try_get("stage")?,
        progress_done: row.try_get("progress_done")?,
        progress_total: row.try_get("progress_total")?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        owner: row.try_get("owner")?,
        run_id: row.try_get("run_id")?,
        error: row.try_get("error")?,
        result: result
            .map(|r| serde_json::from_str(&r))
            .transpose()
            .map_err(|e| Error::Integrity(format!("stored job result is unreadable: {e}")))?,
    })
}

async fn load_spec(conn: &mut AnyConnection, id_or_name: &str) -> Result<StoredSpec> {
    let row = sqlx::query(
        "SELECT id, name, dataset, model_name, definition, schedule, enabled, created_at, updated_at, \
         created_by, last_trained_seq FROM training_specs WHERE name = $1 OR CAST(id AS TEXT) = $1 \
         ORDER BY CASE WHEN name = $1 THEN 0 ELSE 1 END LIMIT 1",
    )
    .bind(id_or_name)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| Error::not_found(format!("No training spec with id or name '{id_or_name}'")))?;
    spec_from_row(&row)
}

/// A row if the spec (`$1`) has a job queued or running.
const BUSY_SELECT: &str =
    "SELECT 1 FROM training_jobs WHERE spec_id = $1 AND status IN ('queued', 'running') LIMIT 1";

/// What [`Store::queue_triggered_job`] did.
#[derive(Debug)]
pub enum Triggered {
    /// The training was queued.
    Queued(Box<Job>),
    /// Another caller had claimed this occurrence (or a later one) of the trigger.
    Claimed,
    /// The spec has a job queued or running.
    Busy,
}

async fn insert_job(
    tx: &mut AnyConnection,
    actor: &Actor,
    spec_id: i64,
    trigger: &str,
    detail: Option<&str>,
) -> Result<Job> {
    let id: i64 = sqlx::query(
        "INSERT INTO training_jobs (spec_id, trigger, trigger_detail, status, created_at, created_by) \
         VALUES ($1, $2, $3, 'queued', $4, $5) RETURNING id",
    )
    .bind(spec_id)
    .bind(trigger)
    .bind(detail)
    .bind(now_ms())
    .bind(&actor.name)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| {
        if e.as_database_error().is_some_and(|d| d.is_foreign_key_violation()) {
            Error::not_found(format!("No training spec {spec_id}"))
        } else {
            e.into()
        }
    })?
    .try_get("id")?;
    audit::record(
        tx,
        actor,
        "jobs.create",
        &format!("job:{id}"),
        Some(trigger),
    )
    .await?;
    load_job(tx, id).await
}

async fn load_job(conn: &mut AnyConnection, id: i64) -> Result<Job> {
    let mut sql = crate::sql::Sql::new(JOB_SELECT);
    sql.push(" WHERE j.id = ").bind(id);
    let rows = sql.fetch_all(conn).await?;
    rows.first()
        .map(job_from_row)
        .transpose()?
        .ok_or_else(|| Error::not_found(format!("No training job {id}")))
}

impl Store {
    /// Stores a new spec.
    #[tracing::instrument(skip(self, actor, fields), fields(name = fields.name))]
    pub async fn create_spec(&self, actor: &Actor, fields: SpecFields<'_>) -> Result<StoredSpec> {
        let now = now_ms();
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        sqlx::query(
            "INSERT INTO training_specs (name, dataset, model_name, definition, schedule, enabled, created_at, \
             updated_at, created_by) VALUES ($1, $2, $3, $4, $5, 1, $6, $6, $7)",
        )
        .bind(fields.name)
        .bind(fields.dataset)
        .bind(fields.model_name)
        .bind(fields.definition.to_string())
        .bind(fields.schedule)
        .bind(now)
        .bind(&actor.name)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::AlreadyExists(format!("A training spec named '{}' already exists", fields.name))
            } else {
                e.into()
            }
        })?;
        audit::record(
            &mut tx,
            actor,
            "specs.create",
            &format!("spec:{}", fields.name),
            None,
        )
        .await?;
        let spec = load_spec(&mut tx, fields.name).await?;
        tx.commit().await?;
        Ok(spec)
    }

    /// Replaces a spec's definition (its name stays).
    #[tracing::instrument(skip(self, actor, fields))]
    pub async fn update_spec(
        &self,
        actor: &Actor,
        id_or_name: &str,
        fields: SpecFields<'_>,
    ) -> Result<StoredSpec> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        let spec = load_spec(&mut tx, id_or_name).await?;
        sqlx::query(
            "UPDATE training_specs SET dataset = $1, model_name = $2, definition = $3, schedule = $4, \
             updated_at = $5 WHERE id = $6",
        )
        .bind(fields.dataset)
        .bind(fields.model_name)
        .bind(fields.definition.to_string())
        .bind(fields.schedule)
        .bind(now_ms())
        .bind(spec.id)
        .execute(&mut *tx)
        .await?;
        audit::record(
            &mut tx,
            actor,
            "specs.update",
            &format!("spec:{}", spec.name),
            None,
        )
        .await?;
        let spec = load_spec(&mut tx, &spec.name).await?;
        tx.commit().await?;
        Ok(spec)
    }

    /// Enables or disables a spec's schedule and triggers.
    pub async fn set_spec_enabled(
        &self,
        actor: &Actor,
        id_or_name: &str,
        enabled: bool,
    ) -> Result<StoredSpec> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        let spec = load_spec(&mut tx, id_or_name).await?;
        sqlx::query("UPDATE training_specs SET enabled = $1, updated_at = $2 WHERE id = $3")
            .bind(i64::from(enabled))
            .bind(now_ms())
            .bind(spec.id)
            .execute(&mut *tx)
            .await?;
        let action = if enabled {
            "specs.enable"
        } else {
            "specs.disable"
        };
        audit::record(&mut tx, actor, action, &format!("spec:{}", spec.name), None).await?;
        let spec = load_spec(&mut tx, &spec.name).await?;
        tx.commit().await?;
        Ok(spec)
    }

    /// The spec with this id or name.
    pub async fn get_spec(&self, id_or_name: &str) -> Result<StoredSpec> {
        let mut conn = self.read.acquire().await?;
        load_spec(&mut conn, id_or_name).await
    }

    /// Every spec, by name.
    pub async fn list_specs(&self) -> Result<Vec<StoredSpec>> {
        let sql = format!("SELECT {SPEC_COLUMNS} FROM training_specs ORDER BY name");
        let mut conn = self.read.acquire().await?;
        crate::sql::Sql::new(&sql)
            .fetch_all(&mut conn)
            .await?
            .iter()
            .map(spec_from_row)
            .collect()
    }

    /// Records the dataset sequence number a spec was trained at.
    pub async fn set_spec_trained_seq(&self, spec_id: i64, seq: i64) -> Result<()> {
        let mut conn = self.writer().await?;
        sqlx::query("UPDATE training_specs SET last_trained_seq = $1 WHERE id = $2 AND last_trained_seq < $1")
            .bind(seq)
            .bind(spec_id)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Queues a job for a spec.
    #[tracing::instrument(skip(self, actor))]
    pub async fn create_job(
        &self,
        actor: &Actor,
        spec_id: i64,
        trigger: &str,
        detail: Option<&str>,
    ) -> Result<Job> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        let job = insert_job(&mut tx, actor, spec_id, trigger, detail).await?;
        tx.commit().await?;
        Ok(job)
    }

    /// Queues a training of a spec started by a trigger (a schedule, drift, data volume) for its
    /// occurrence `tick` (ms since the Unix epoch), in one transaction: the tick is claimed (by
    /// exactly one caller, however many processes see the same occurrence), then the spec must
    /// have no job queued or running, then the job is stored. A claimed tick is spent even when
    /// the spec was busy.
    ///
    /// The claim locks the spec's row until the commit (PostgreSQL), so a concurrent caller's
    /// check for a queued job runs after this one's job is visible: two triggers firing at once
    /// queue one training.
    pub async fn queue_triggered_job(
        &self,
        actor: &Actor,
        spec_id: i64,
        tick: i64,
        trigger: &str,
        detail: Option<&str>,
    ) -> Result<Triggered> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        let claimed = sqlx::query(
            "UPDATE training_specs SET last_scheduled_at = $1 WHERE id = $2 \
             AND (last_scheduled_at IS NULL OR last_scheduled_at < $1)",
        )
        .bind(tick)
        .bind(spec_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed != 1 {
            return Ok(Triggered::Claimed);
        }
        let busy = sqlx::query(BUSY_SELECT)
            .bind(spec_id)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if busy {
            tx.commit().await?;
            return Ok(Triggered::Busy);
        }
        let job = insert_job(&mut tx, actor, spec_id, trigger, detail).await?;
        tx.commit().await?;
        Ok(Triggered::Queued(Box::new(job)))
    }

    /// One job.
    pub async fn get_job(&self, id: i64) -> Result<Job> {
        let mut conn = self.read.acquire().await?;
        load_job(&mut conn, id).await
    }

    /// Jobs, newest first; only a spec's when `spec_id` is given.
    pub async fn list_jobs(&self, spec_id: Option<i64>, limit: i64) -> Result<Vec<Job>> {
        let mut sql = crate::sql::Sql::new(JOB_SELECT);
        if let Some(id) = spec_id {
            sql.push(" WHERE j.spec_id = ").bind(id);
        }
        sql.push(" ORDER BY j.id DESC LIMIT ")
            .bind(limit.clamp(1, 1000));
        let mut conn = self.read.acquire().await?;
        sql.fetch_all(&mut conn)
            .await?
            .iter()
            .map(job_from_row)
            .collect()
    }

    /// Takes the lease on a spec for `owner` until `ttl_ms` from now, if no one else holds a
    /// live one. Atomic on both databases: of several processes asking at once, one gets it.
    pub async fn try_lease_spec(
        &self,
        spec_id: i64,
        owner: &str,
        job_id: Option<i64>,
        ttl_ms: i64,
    ) -> Result<bool> {
        let now = now_ms();
        let mut conn = self.writer().await?;
        let rows = sqlx::query(
            "INSERT INTO spec_leases (spec_id, owner, job_id, expires_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (spec_id) DO UPDATE SET owner = excluded.owner, job_id = excluded.job_id, \
             expires_at = excluded.expires_at \
             WHERE spec_leases.expires_at < $5 OR spec_leases.owner = excluded.owner \
             RETURNING owner",
        )
        .bind(spec_id)
        .bind(owner)
        .bind(job_id)
        .bind(now + ttl_ms)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await?;
        Ok(rows.is_some())
    }

    /// Gives up a spec's lease (only if `owner` holds it).
    pub async fn release_spec_lease(&self, spec_id: i64, owner: &str) -> Result<()> {
        let mut conn = self.writer().await?;
        sqlx::query("DELETE FROM spec_leases WHERE spec_id = $1 AND owner = $2")
            .bind(spec_id)
            .bind(owner)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Takes the oldest queued job whose spec this process can lease, and marks it running.
    pub async fn claim_next_job(&self, owner: &str, ttl_ms: i64) -> Result<Option<Job>> {
        let queued: Vec<(i64, i64)> = sqlx::query(
            "SELECT id, spec_id FROM training_jobs WHERE status = 'queued' ORDER BY id LIMIT 20",
        )
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("spec_id")?)))
        .collect::<Result<_>>()?;
        for (job_id, spec_id) in queued {
            if let Some(job) = self.claim_queued(job_id, spec_id, owner, ttl_ms).await? {
                return Ok(Some(job));
            }
        }
        Ok(None)
    }

    /// Takes job `id` if it is still queued and this process can lease its spec, and marks it
    /// running; `None` if it is not queued or another process holds the spec.
    pub async fn claim_job(&self, id: i64, owner: &str, ttl_ms: i64) -> Result<Option<Job>> {
        let job = self.get_job(id).await?;
        if job.status != JobStatus::Queued {
            return Ok(None);
        }
        self.claim_queued(job.id, job.spec_id, owner, ttl_ms).await
    }

    async fn claim_queued(
        &self,
        job_id: i64,
        spec_id: i64,
        owner: &str,
        ttl_ms: i64,
    ) -> Result<Option<Job>> {
        if !self
            .try_lease_spec(spec_id, owner, Some(job_id), ttl_ms)
            .await?
        {
            return Ok(None);
        }
        let mut conn = self.writer().await?;
        let claimed = sqlx::query(
            "UPDATE training_jobs SET status = 'running', owner = $1, started_at = $2, stage = 'starting' \
             WHERE id = $3 AND status = 'queued'",
        )
        .bind(owner)
        .bind(now_ms())
        .bind(job_id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        drop(conn);
        if claimed == 1 {
            return Ok(Some(self.get_job(job_id).await?));
        }
        self.release_spec_lease(spec_id, owner).await?;
        Ok(None)
    }

    /// Extends the lease of a running job's spec; false if this process no longer holds it.
    pub async fn renew_lease(&self, spec_id: i64, owner: &str, ttl_ms: i64) -> Result<bool> {
        let mut conn = self.writer().await?;
        let n =
            sqlx::query("UPDATE spec_leases SET expires_at = $1 WHERE spec_id = $2 AND owner = $3")
                .bind(now_ms() + ttl_ms)
                .bind(spec_id)
                .bind(owner)
                .execute(&mut *conn)
                .await?
                .rows_affected();
        Ok(n == 1)
    }

    /// Whether a spec has a job queued or running.
    pub async fn spec_busy(&self, spec_id: i64) -> Result<bool> {
        Ok(sqlx::query(BUSY_SELECT)
            .bind(spec_id)
            .fetch_optional(&self.read)
            .await?
            .is_some())
    }

    /// Records a running job's parent run, so that an interrupted job's run is failed too.
    pub async fn set_job_run(&self, job_id: i64, run_id: &str) -> Result<()> {
        let mut conn = self.writer().await?;
        sqlx::query("UPDATE training_jobs SET run_id = $1 WHERE id = $2")
            .bind(run_id)
            .bind(job_id)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Reports a running job's progress.
    pub async fn set_job_progress(
        &self,
        job_id: i64,
        stage: &str,
        done: i64,
        total: i64,
    ) -> Result<()> {
        let mut conn = self.writer().await?;
        sqlx::query("UPDATE training_jobs SET stage = $1, progress_done = $2, progress_total = $3 WHERE id = $4")
            .bind(stage)
            .bind(done)
            .bind(total)
            .bind(job_id)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Ends a running job and releases its spec's lease.
    pub async fn finish_job(
        &self,
        job: &Job,
        owner: &str,
        status: JobStatus,
        error: Option<&str>,
        result: Option<&serde_json::Value>,
    ) -> Result<()> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        sqlx::query(
            "UPDATE training_jobs SET status = $1, finished_at = $2, error = $3, result = $4, stage = $5 \
             WHERE id = $6",
        )
        .bind(status.as_str())
        .bind(now_ms())
        .bind(error)
        .bind(result.map(|r| r.to_string()))
        .bind(status.as_str())
        .bind(job.id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM spec_leases WHERE spec_id = $1 AND owner = $2")
            .bind(job.spec_id)
            .bind(owner)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Marks as failed every running job whose lease has expired (its process stopped while
    /// training), and frees their specs. Returns how many.
    pub async fn fail_interrupted_jobs(&self, owner_restarting: Option<&str>) -> Result<u64> {
        let now = now_ms();
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        // A job is interrupted when no live lease covers it, or when its own process (restarting
        // under the same owner name) says so.
        let interrupted = "status = 'running' AND (owner = $2 OR NOT EXISTS (SELECT 1 FROM spec_leases l \
             WHERE l.spec_id = training_jobs.spec_id AND l.job_id = training_jobs.id AND l.expires_at >= $1))";
        // The jobs' runs first, while the jobs still read 'running'.
        let parents: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT run_id FROM training_jobs WHERE run_id IS NOT NULL AND {interrupted}"
        )))
        .bind(now)
        .bind(owner_restarting)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get("run_id"))
        .collect::<std::result::Result<_, _>>()?;
        // Their grid runs too (tagged with the job's run as parent): one was being fitted.
        for parent in &parents {
            sqlx::query(
                "UPDATE runs SET status = 'FAILED', end_time = $1 WHERE status = 'RUNNING' AND id IN \
                 (SELECT run_id FROM tags WHERE key = 'mlflow.parentRunId' AND value = $2)",
            )
            .bind(now)
            .bind(parent)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE runs SET status = 'FAILED', end_time = $1 WHERE status = 'RUNNING' AND run_uuid IN \
             (SELECT run_id FROM training_jobs WHERE run_id IS NOT NULL AND {interrupted})"
        )))
        .bind(now)
        .bind(owner_restarting)
        .execute(&mut *tx)
        .await?;
        let n = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE training_jobs SET status = 'failed', finished_at = $1, stage = 'failed', \
             error = 'interrupted: the process stopped while training; the champion was not changed' \
             WHERE {interrupted}"
        )))
        .bind(now)
        .bind(owner_restarting)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("DELETE FROM spec_leases WHERE expires_at < $1 OR owner = $2")
            .bind(now)
            .bind(owner_restarting)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Readings of a dataset stored with a sequence number above `seq`. Sequence numbers are
    /// reserved for every record of a batch, resent duplicates and labels included, so their
    /// difference overcounts new readings; this counts the stored ones.
    pub async fn records_since(&self, dataset: &str, seq: i64) -> Result<i64> {
        let mut conn = self.read.acquire().await?;
        let id = crate::datasets::load_dataset(&mut conn, dataset).await?.id;
        crate::datasets::history::count_since(&mut conn, id, seq).await
    }

    /// The dataset's newest sequence number (for data-volume triggers).
    pub async fn dataset_seq(&self, dataset: &str) -> Result<i64> {
        Ok(
            sqlx::query("SELECT next_seq - 1 AS seq FROM datasets WHERE name = $1")
                .bind(dataset)
                .fetch_optional(&self.read)
                .await?
                .ok_or_else(|| Error::not_found(format!("No dataset named '{dataset}'")))?
                .try_get("seq")?,
        )
    }
}
