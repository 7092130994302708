//! Drift reports as stored: one per closed window of a model version's live records (written by
//! the scorer's drift monitor) or per on-demand check that was asked to be kept, with the verdict
//! of every judged column, the dataset verdict and the per-machine breakdown; and each dataset's
//! drift window settings.
//!
//! The registry only stores and lists; the statistics are computed by `refit_scorer::drift`.
//! Reports are written by automation many times a minute, so they are not audited one by one (the
//! report itself is the record); changing a dataset's settings is.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use utoipa::ToSchema;

use crate::audit::{self, Actor};
use crate::db::{Store, now_ms};
use crate::error::{Error, Result};
use crate::sql::{Sql, Tx};

/// Default rows per drift window when a dataset has no settings.
pub const DEFAULT_WINDOW_ROWS: i64 = 1_000;
/// Default share of drifted features at or above which a window drifts (Evidently's).
pub const DEFAULT_DRIFT_SHARE: f64 = 0.5;
/// Default rows a machine needs in a window to be judged on its own.
pub const DEFAULT_MIN_MACHINE_ROWS: i64 = 30;
/// Most reports one list returns.
pub const MAX_LIST: i64 = 1_000;

/// Where a report comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportSource {
    /// A closed window of the stream, written by the drift monitor. Only these count for drift
    /// triggers.
    Stream,
    /// An on-demand check (`POST /api/v1/drift/check` with `"store": true`).
    Check,
}

impl ReportSource {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportSource::Stream => "stream",
            ReportSource::Check => "check",
        }
    }

    fn parse(s: &str) -> Result<ReportSource> {
        match s {
            "stream" => Ok(ReportSource::Stream),
            "check" => Ok(ReportSource::Check),
            other => Err(Error::Integrity(format!(
                "unknown drift report source '{other}'"
            ))),
        }
    }
}

/// The verdict on one column of a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ColumnDrift {
    /// The feature's name (`prediction` for the model's output).
    pub feature: String,
    /// `numeric` or `categorical`.
    pub kind: String,
    /// The test applied (`ks`, `chisquare`, `z`, `wasserstein_normed`, `jensenshannon`); none
    /// when the column could not be judged (see `note`).
    pub test: Option<String>,
    /// The statistic: a p-value for `ks`, `chisquare` and `z`, a distance otherwise.
    pub value: Option<f64>,
    /// The threshold it was compared with.
    pub threshold: Option<f64>,
    /// Whether the column drifted.
    pub drifted: bool,
    /// Why the column was not judged (e.g. no usable value in the window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// How far one machine's rows of a window are from the reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MachineDrift {
    /// The machine.
    pub machine_id: String,
    /// Its rows in the window.
    pub rows: i64,
    /// Features judged on its rows.
    pub columns: i64,
    /// Of which drifted.
    pub drifted_columns: i64,
    /// `drifted_columns / columns`.
    pub share: f64,
    /// The drifted features.
    pub drifted_features: Vec<String>,
}

/// A report to store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NewDriftReport {
    /// Dataset whose records were judged.
    pub dataset: String,
    /// Registered model.
    pub model: String,
    /// Its version (whose reference profile was the reference).
    pub version: i64,
    /// Stream window or on-demand check.
    pub source: ReportSource,
    /// Event time of the window's first row, ms since the Unix epoch.
    pub window_start: i64,
    /// Event time of its last row (inclusive).
    pub window_end: i64,
    /// Rows in the window.
    pub rows: i64,
    /// Input features judged (the prediction is not counted).
    pub columns: i64,
    /// Of which drifted.
    pub drifted_columns: i64,
    /// `drifted_columns / columns` (0 when none was judged).
    pub share: f64,
    /// The share at or above which the window drifts.
    pub drift_share: f64,
    /// Whether `share >= drift_share` (and at least one feature was judged).
    pub dataset_drift: bool,
    /// Each input feature's verdict, in the model's feature order.
    pub features: Vec<ColumnDrift>,
    /// The prediction column's verdict, when the profile has the model's holdout predictions.
    pub prediction: Option<ColumnDrift>,
    /// Machines with enough rows, most drifted first.
    pub machines: Vec<MachineDrift>,
}

/// A stored report.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DriftReport {
    /// Report id (increasing in the order reports were stored).
    pub id: i64,
    /// When it was stored, ms since the Unix epoch.
    pub created_at: i64,
    /// The report.
    #[serde(flatten)]
    pub report: NewDriftReport,
}

/// Which reports to list (newest first).
#[derive(Debug, Clone, Default)]
pub struct ReportFilter<'a> {
    /// Only this model's.
    pub model: Option<&'a str>,
    /// Only this version's (with `model`).
    pub version: Option<i64>,
    /// Only this dataset's.
    pub dataset: Option<&'a str>,
    /// Only windows ending at or after this event time.
    pub from: Option<i64>,
    /// Only windows starting before this event time.
    pub to: Option<i64>,
    /// Only this source.
    pub source: Option<ReportSource>,
    /// Only reports older than this id (paging).
    pub before: Option<i64>,
    /// Most reports (1-1000).
    pub limit: i64,
}

/// One column's statistic in one report: a point of the column over time.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ColumnPoint {
    /// The report.
    pub report_id: i64,
    /// Model version.
    pub version: i64,
    /// The report's window.
    pub window_start: i64,
    /// The report's window (inclusive).
    pub window_end: i64,
    /// The test.
    pub test: Option<String>,
    /// The statistic.
    pub value: Option<f64>,
    /// Its threshold.
    pub threshold: Option<f64>,
    /// Whether it drifted.
    pub drifted: bool,
}

/// A machine's drift over a set of reports.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MachineRank {
    /// The machine.
    pub machine_id: String,
    /// Reports in which it had enough rows to be judged.
    pub reports: i64,
    /// Of which its own share of drifted features reached the report's `drift_share`.
    pub drifted_reports: i64,
    /// Mean of its share of drifted features over those reports.
    pub mean_share: f64,
    /// The largest share.
    pub max_share: f64,
    /// Its rows in those reports.
    pub rows: i64,
    /// The newest report it appears in.
    pub last_report: i64,
}

/// How a dataset's live records are cut into drift windows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DriftSettings {
    /// The dataset.
    pub dataset: String,
    /// Close a window every this many rows (default 1,000), or
    pub window_rows: Option<i64>,
    /// close one at the end of every span of event time of this length, epoch-aligned, in ms.
    pub window_ms: Option<i64>,
    /// Share of drifted features at or above which a window drifts (0-1].
    pub drift_share: f64,
    /// Rows a machine needs in a window to be judged on its own.
    pub min_machine_rows: i64,
    /// When they were last changed (0 for the defaults).
    pub updated_at: i64,
    /// Who changed them (empty for the defaults).
    pub updated_by: String,
}

impl DriftSettings {
    /// The defaults: windows of [`DEFAULT_WINDOW_ROWS`] rows, share 0.5, 30 rows per machine.
    pub fn defaults(dataset: &str) -> DriftSettings {
        DriftSettings {
            dataset: dataset.to_string(),
            window_rows: Some(DEFAULT_WINDOW_ROWS),
            window_ms: None,
            drift_share: DEFAULT_DRIFT_SHARE,
            min_machine_rows: DEFAULT_MIN_MACHINE_ROWS,
            updated_at: 0,
            updated_by: String::new(),
        }
    }
}

const REPORT_COLUMNS: &str = "id, created_at, dataset, model_name, version, source, window_start, window_end, \
     row_count, column_count, drifted_columns, share, drift_share, dataset_drift, features, prediction, machines";

fn json_column<T: serde::de::DeserializeOwned>(row: &AnyRow, name: &str) -> Result<T> {
    let text: String = row.try_get(name)?;
    serde_json::from_str(&text)
        .map_err(|e| Error::Integrity(format!("stored drift report {name} is unreadable: {e}")))
}

fn report_from_row(row: &AnyRow) -> Result<DriftReport> {
    let prediction: Option<String> = row.try_get("prediction")?;
    Ok(DriftReport {
        id: row.try_get("id")?,
        created_at: row.try_get("created_at")?,
        report: NewDriftReport {
            dataset: row.try_get("dataset")?,
            model: row.try_get("model_name")?,
            version: row.try_get("version")?,
            source: ReportSource::parse(&row.try_get::<String, _>("source")?)?,
            window_start: row.try_get("window_start")?,
            window_end: row.try_get("window_end")?,
            rows: row.try_get("row_count")?,
            columns: row.try_get("column_count")?,
            drifted_columns: row.try_get("drifted_columns")?,
            share: row.try_get("share")?,
            drift_share: row.try_get("drift_share")?,
            dataset_drift: row.try_get::<i64, _>("dataset_drift")? != 0,
            features: json_column(row, "features")?,
            prediction: prediction
                .map(|p| serde_json::from_str(&p))
                .transpose()
                .map_err(|e| {
                    Error::Integrity(format!("stored drift report prediction is unreadable: {e}"))
                })?,
            machines: json_column(row, "machines")?,
        },
    })
}

/// A statistic as stored: non-finite values become NULL (SQLite turns NaN into NULL anyway).
fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite())
}

async fn dataset_id(conn: &mut AnyConnection, name: &str) -> Result<i64> {
    sqlx::query("SELECT id FROM datasets WHERE name = $1")
        .bind(name)
        .fetch_optional(conn)
        .await?
        .map(|r| r.try_get::<i64, _>("id"))
        .transpose()?
        .ok_or_else(|| Error::not_found(format!("No dataset named '{name}'")))
}

impl Store {
    /// Stores a drift report and its columns in one transaction; returns it with its id.
    #[tracing::instrument(skip(self, report), fields(model = report.model, version = report.version))]
    pub async fn create_drift_report(&self, report: &NewDriftReport) -> Result<DriftReport> {
        let mut stored = self
            .create_drift_reports(std::slice::from_ref(report))
            .await?;
        Ok(stored.pop().expect("one report stored"))
    }

    /// Stores drift reports (the windows a batch closed) and their columns in one transaction;
    /// returns them with their ids, in order.
    #[tracing::instrument(skip_all, fields(reports = reports.len()))]
    pub async fn create_drift_reports(
        &self,
        reports: &[NewDriftReport],
    ) -> Result<Vec<DriftReport>> {
        let now = now_ms();
        let mut conn = self.writer().await?;
        // On SQLite through the writer's direct connection, as ingests are: the stream's drift
        // task stores a batch's windows between two ingests.
        let ids = conn
            .write(async |tx| insert_reports(tx, reports, now).await)
            .await?;
        Ok(ids
            .into_iter()
            .zip(reports)
            .map(|(id, report)| DriftReport {
                id,
                created_at: now,
                report: report.clone(),
            })
            .collect())
    }
    /// One report.
    pub async fn get_drift_report(&self, id: i64) -> Result<DriftReport> {
        let mut sql = Sql::new(&format!(
            "SELECT {REPORT_COLUMNS} FROM drift_reports WHERE id = "
        ));
        sql.bind(id);
        let mut conn = self.read.acquire().await?;
        sql.fetch_all(&mut conn)
            .await?
            .first()
            .map(report_from_row)
            .transpose()?
            .ok_or_else(|| Error::not_found(format!("No drift report {id}")))
    }

    /// Reports matching `filter`, newest first.
    pub async fn list_drift_reports(&self, filter: &ReportFilter<'_>) -> Result<Vec<DriftReport>> {
        let mut sql = Sql::new(&format!(
            "SELECT {REPORT_COLUMNS} FROM drift_reports WHERE 1 = 1"
        ));
        push_filter(&mut sql, filter);
        sql.push(" ORDER BY id DESC LIMIT ")
            .bind(filter.limit.clamp(1, MAX_LIST));
        let mut conn = self.read.acquire().await?;
        sql.fetch_all(&mut conn)
            .await?
            .iter()
            .map(report_from_row)
            .collect()
    }

    /// The statistic of one column (a feature, or `prediction`) over the reports matching
    /// `filter`, oldest first (the newest `filter.limit`).
    pub async fn drift_column_series(
        &self,
        feature: &str,
        filter: &ReportFilter<'_>,
    ) -> Result<Vec<ColumnPoint>> {
        let mut sql = Sql::new(
            "SELECT r.id, r.version, r.window_start, r.window_end, c.test, c.value, c.threshold, c.drifted \
             FROM drift_columns c JOIN drift_reports r ON r.id = c.report_id WHERE c.feature = ",
        );
        sql.bind(feature);
        if let Some(model) = filter.model {
            sql.push(" AND c.model_name = ").bind(model);
        }
        // The filter's columns are the report's, qualified here.
        push_filter_qualified(&mut sql, filter);
        sql.push(" ORDER BY r.id DESC LIMIT ")
            .bind(filter.limit.clamp(1, MAX_LIST));
        let mut conn = self.read.acquire().await?;
        let mut points = sql
            .fetch_all(&mut conn)
            .await?
            .iter()
            .map(|row| {
                Ok(ColumnPoint {
                    report_id: row.try_get("id")?,
                    version: row.try_get("version")?,
                    window_start: row.try_get("window_start")?,
                    window_end: row.try_get("window_end")?,
                    test: row.try_get("test")?,
                    value: row.try_get("value")?,
                    threshold: row.try_get("threshold")?,
                    drifted: row.try_get::<i64, _>("drifted")? != 0,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        points.reverse();
        Ok(points)
    }

    /// Machines ranked by how much their own rows drifted over the reports matching `filter`:
    /// by the number of reports in which their share of drifted features reached the report's
    /// threshold, then by mean share, then by id.
    pub async fn drift_machine_ranking(
        &self,
        filter: &ReportFilter<'_>,
        limit: usize,
    ) -> Result<Vec<MachineRank>> {
        let reports = self.list_drift_reports(filter).await?;
        let mut by_machine: std::collections::HashMap<String, MachineRank> = Default::default();
        for r in &reports {
            for m in &r.report.machines {
                let rank = by_machine
                    .entry(m.machine_id.clone())
                    .or_insert_with(|| MachineRank {
                        machine_id: m.machine_id.clone(),
                        reports: 0,
                        drifted_reports: 0,
                        mean_share: 0.0,
                        max_share: 0.0,
                        rows: 0,
                        last_report: r.id,
                    });
                rank.reports += 1;
                rank.drifted_reports += i64::from(m.columns > 0 && m.share >= r.report.drift_share);
                rank.mean_share += m.share;
                rank.max_share = rank.max_share.max(m.share);
                rank.rows += m.rows;
                rank.last_report = rank.last_report.max(r.id);
            }
        }
        let mut ranks: Vec<MachineRank> = by_machine
            .into_values()
            .map(|mut r| {
                r.mean_share /= r.reports as f64;
                r
            })
            .collect();
        ranks.sort_by(|a, b| {
            b.drifted_reports
                .cmp(&a.drifted_reports)
                .then(b.mean_share.total_cmp(&a.mean_share))
                .then_with(|| a.machine_id.cmp(&b.machine_id))
        });
        ranks.truncate(limit);
        Ok(ranks)
    }

    /// The `n` newest stream reports of `model` (any version), newest first.
    pub async fn latest_stream_reports(&self, model: &str, n: i64) -> Result<Vec<DriftReport>> {
        self.list_drift_reports(&ReportFilter {
            model: Some(model),
            source: Some(ReportSource::Stream),
            limit: n,
            ..Default::default()
        })
        .await
    }

    /// A dataset's drift settings, or the defaults if none were set.
    pub async fn drift_settings(&self, dataset: &str) -> Result<DriftSettings> {
        let mut conn = self.read.acquire().await?;
        let id = dataset_id(&mut conn, dataset).await?;
        let row = sqlx::query(
            "SELECT window_rows, window_ms, drift_share, min_machine_rows, updated_at, updated_by \
             FROM drift_settings WHERE dataset_id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else {
            return Ok(DriftSettings::defaults(dataset));
        };
        Ok(DriftSettings {
            dataset: dataset.to_string(),
            window_rows: row.try_get("window_rows")?,
            window_ms: row.try_get("window_ms")?,
            drift_share: row.try_get("drift_share")?,
            min_machine_rows: row.try_get("min_machine_rows")?,
            updated_at: row.try_get("updated_at")?,
            updated_by: row.try_get("updated_by")?,
        })
    }

    /// Replaces a dataset's drift settings (checked by the caller: exactly one of `window_rows`
    /// and `window_ms`, both positive; share in (0, 1]; `min_machine_rows >= 1`).
    #[tracing::instrument(skip(self, actor))]
    pub async fn set_drift_settings(
        &self,
        actor: &Actor,
        settings: &DriftSettings,
    ) -> Result<DriftSettings> {
        if settings.window_rows.is_some() == settings.window_ms.is_some()
            || settings.window_rows.is_some_and(|n| n < 1)
            || settings.window_ms.is_some_and(|n| n < 1)
            || !(settings.drift_share > 0.0 && settings.drift_share <= 1.0)
            || settings.min_machine_rows < 1
        {
            return Err(Error::InvalidParameter(
                "drift settings: give window_rows or window_ms (positive), drift_share in (0, 1], \
                 min_machine_rows >= 1"
                    .into(),
            ));
        }
        let now = now_ms();
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        let id = dataset_id(&mut tx, &settings.dataset).await?;
        sqlx::query("DELETE FROM drift_settings WHERE dataset_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO drift_settings (dataset_id, window_rows, window_ms, drift_share, min_machine_rows, \
             updated_at, updated_by) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(settings.window_rows)
        .bind(settings.window_ms)
        .bind(settings.drift_share)
        .bind(settings.min_machine_rows)
        .bind(now)
        .bind(&actor.name)
        .execute(&mut *tx)
        .await?;
        audit::record(
            &mut tx,
            actor,
            "datasets.drift_settings",
            &format!("dataset:{}", settings.dataset),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(DriftSettings {
            updated_at: now,
            updated_by: actor.name.clone(),
            ..settings.clone()
        })
    }

    /// The newest job of a spec started by `trigger` (e.g. `drift`), if any.
    pub async fn last_job_with_trigger(
        &self,
        spec_id: i64,
        trigger: &str,
    ) -> Result<Option<crate::training::Job>> {
        let row = sqlx::query(
            "SELECT id FROM training_jobs WHERE spec_id = $1 AND trigger = $2 ORDER BY id DESC LIMIT 1",
        )
        .bind(spec_id)
        .bind(trigger)
        .fetch_optional(&self.read)
        .await?;
        match row {
            None => Ok(None),
            Some(row) => Ok(Some(self.get_job(row.try_get("id")?).await?)),
        }
    }
}

fn push_filter(sql: &mut Sql, f: &ReportFilter<'_>) {
    if let Some(model) = f.model {
        sql.push(" AND model_name = ").bind(model);
    }
    push_common(sql, f, "");
}

fn push_filter_qualified(sql: &mut Sql, f: &ReportFilter<'_>) {
    push_common(sql, f, "r.");
}

fn push_common(sql: &mut Sql, f: &ReportFilter<'_>, q: &str) {
    // `q` is one of two static prefixes, never user input.
    let col = |name: &str| format!(" AND {q}{name} ");
    if let Some(v) = f.version {
        sql.push(&col("version")).push("= ").bind(v);
    }
    if let Some(d) = f.dataset {
        sql.push(&col("dataset")).push("= ").bind(d);
    }
    if let Some(from) = f.from {
        sql.push(&col("window_end")).push(">= ").bind(from);
    }
    if let Some(to) = f.to {
        sql.push(&col("window_start")).push("< ").bind(to);
    }
    if let Some(s) = f.source {
        sql.push(&col("source")).push("= ").bind(s.as_str());
    }
    if let Some(b) = f.before {
        sql.push(&col("id")).push("< ").bind(b);
    }
}

/// Inserts a report and its columns; returns its id.
/// Stores reports and their columns; returns their ids, in order.
async fn insert_reports(tx: &mut Tx<'_>, reports: &[NewDriftReport], now: i64) -> Result<Vec<i64>> {
    let mut ids = Vec::with_capacity(reports.len());
    for report in reports {
        ids.push(insert_report(tx, report, now).await?);
    }
    Ok(ids)
}

async fn insert_report(tx: &mut Tx<'_>, report: &NewDriftReport, now: i64) -> Result<i64> {
    let features = serde_json::to_string(&report.features).expect("verdicts serialize");
    let prediction = report
        .prediction
        .as_ref()
        .map(|p| serde_json::to_string(p).expect("verdicts serialize"));
    let machines = serde_json::to_string(&report.machines).expect("machines serialize");
    let mut sql = Sql::new(
        "INSERT INTO drift_reports (created_at, dataset, model_name, version, source, window_start, \
         window_end, row_count, column_count, drifted_columns, share, drift_share, dataset_drift, features, \
         prediction, machines) VALUES (",
    );
    sql.bind(now)
        .push(", ")
        .bind(report.dataset.as_str())
        .push(", ")
        .bind(report.model.as_str())
        .push(", ")
        .bind(report.version)
        .push(", ")
        .bind(report.source.as_str())
        .push(", ")
        .bind(report.window_start)
        .push(", ")
        .bind(report.window_end)
        .push(", ")
        .bind(report.rows)
        .push(", ")
        .bind(report.columns)
        .push(", ")
        .bind(report.drifted_columns)
        .push(", ")
        .bind(if report.share.is_finite() {
            report.share
        } else {
            0.0
        })
        .push(", ")
        .bind(report.drift_share)
        .push(", ")
        .bind(i64::from(report.dataset_drift))
        .push(", ")
        .bind(features)
        .push(", ")
        .bind(prediction.as_deref())
        .push(", ")
        .bind(machines)
        .push(") RETURNING id");
    let id = tx.fetch_i64(sql).await?;
    let columns: Vec<&ColumnDrift> = report
        .features
        .iter()
        .chain(report.prediction.as_ref())
        .collect();
    if !columns.is_empty() {
        let mut sql = Sql::new(
            "INSERT INTO drift_columns (report_id, feature, model_name, test, value, threshold, drifted) VALUES ",
        );
        for (i, c) in columns.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.push("(")
                .bind(id)
                .push(", ")
                .bind(c.feature.as_str())
                .push(", ")
                .bind(report.model.as_str())
                .push(", ")
                .bind(c.test.as_deref());
            for v in [finite(c.value), finite(c.threshold)] {
                match v {
                    Some(x) => sql.push(", ").bind(x),
                    None => sql.push(", NULL"),
                };
            }
            sql.push(", ").bind(i64::from(c.drifted)).push(")");
        }
        tx.execute(sql).await?;
    }
    Ok(id)
}
