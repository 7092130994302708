//! Realized metrics: the champion's metrics on streamed records whose labels arrived later, one
//! row per window of labelled scores, listed beside the drift reports.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;
use utoipa::ToSchema;

use crate::db::{Store, now_ms};
use crate::error::{Error, Result};
use crate::sql::Sql;

/// A window of realized metrics to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRealized {
    /// Dataset the records belong to.
    pub dataset: String,
    /// Registered model.
    pub model: String,
    /// The version that scored the records.
    pub version: i64,
    /// Event time of the earliest labelled record, ms.
    pub window_start: i64,
    /// Event time of the latest, ms (inclusive).
    pub window_end: i64,
    /// Labelled scores in the window.
    pub rows: i64,
    /// Metric values by name.
    pub metrics: serde_json::Map<String, serde_json::Value>,
}

/// A stored window of realized metrics.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Realized {
    /// Id, increasing.
    pub id: i64,
    /// When it was stored, ms since the Unix epoch.
    pub created_at: i64,
    /// Dataset.
    pub dataset: String,
    /// Registered model.
    pub model: String,
    /// The version that scored the records.
    pub version: i64,
    /// Event time of the earliest labelled record, ms.
    pub window_start: i64,
    /// Event time of the latest, ms (inclusive).
    pub window_end: i64,
    /// Labelled scores in the window.
    pub rows: i64,
    /// Metric values by name (as the trainer computes them on a holdout).
    #[schema(value_type = Object)]
    pub metrics: serde_json::Map<String, serde_json::Value>,
}

const COLUMNS: &str =
    "id, created_at, dataset, model_name, version, window_start, window_end, row_count, metrics";

fn realized_from_row(row: &AnyRow) -> Result<Realized> {
    let metrics: String = row.try_get("metrics")?;
    Ok(Realized {
        id: row.try_get("id")?,
        created_at: row.try_get("created_at")?,
        dataset: row.try_get("dataset")?,
        model: row.try_get("model_name")?,
        version: row.try_get("version")?,
        window_start: row.try_get("window_start")?,
        window_end: row.try_get("window_end")?,
        rows: row.try_get("row_count")?,
        metrics: serde_json::from_str(&metrics)
            .map_err(|e| Error::Integrity(format!("stored realized metrics: {e}")))?,
    })
}

impl Store {
    /// Stores a window of realized metrics; returns it with its id.
    pub async fn create_realized(&self, r: &NewRealized) -> Result<Realized> {
        let now = now_ms();
        let metrics = serde_json::to_string(&r.metrics).expect("metrics serialize");
        let mut conn = self.writer().await?;
        let id: i64 = sqlx::query(
            "INSERT INTO realized_metrics (created_at, dataset, model_name, version, window_start, \
             window_end, row_count, metrics) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(now)
        .bind(&r.dataset)
        .bind(&r.model)
        .bind(r.version)
        .bind(r.window_start)
        .bind(r.window_end)
        .bind(r.rows)
        .bind(metrics)
        .fetch_one(&mut *conn)
        .await?
        .try_get("id")?;
        Ok(Realized {
            id,
            created_at: now,
            dataset: r.dataset.clone(),
            model: r.model.clone(),
            version: r.version,
            window_start: r.window_start,
            window_end: r.window_end,
            rows: r.rows,
            metrics: r.metrics.clone(),
        })
    }

    /// Windows of realized metrics, newest first, of one model and/or dataset.
    pub async fn list_realized(
        &self,
        model: Option<&str>,
        dataset: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Realized>> {
        let mut sql = Sql::new(&format!(
            "SELECT {COLUMNS} FROM realized_metrics WHERE 1 = 1"
        ));
        if let Some(m) = model {
            sql.push(" AND model_name = ").bind(m);
        }
        if let Some(d) = dataset {
            sql.push(" AND dataset = ").bind(d);
        }
        sql.push(" ORDER BY id DESC LIMIT ").bind(limit);
        let mut conn = self.read.acquire().await?;
        sql.fetch_all(&mut conn)
            .await?
            .iter()
            .map(realized_from_row)
            .collect()
    }
}
