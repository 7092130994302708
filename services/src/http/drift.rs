//! Drift (`/api/v1/drift`): the reports the drift monitor stored per window, one feature's
//! statistic over time, machines ranked by drift, on-demand checks of stored history against a
//! model version's reference profile, and each dataset's window settings.

use axum::extract::State;
use refit_registry::datasets::record::deserialize_time_opt;
use refit_registry::drift::{
    ColumnPoint, DriftReport, DriftSettings, MachineRank, NewDriftReport, ReportFilter,
    ReportSource,
};
use refit_scorer::monitoring::{MonitoringError, check_rows, monitor_settings};
use refit_trainer::spec::parse_span;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Can, Permission, can};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Json, Path, Query};
use super::state::AppState;

/// Most rows an on-demand check reads from a time range.
pub const MAX_CHECK_ROWS: usize = 2_000_000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_reports))
        .routes(routes!(get_report))
        .routes(routes!(feature_series))
        .routes(routes!(machine_ranking))
        .routes(routes!(check))
        .routes(routes!(get_settings, put_settings))
        .routes(routes!(list_realized))
}

/// Which windows of realized metrics to read.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RealizedQuery {
    /// Only this model's.
    #[serde(default)]
    model: Option<String>,
    /// Only this dataset's.
    #[serde(default)]
    dataset: Option<String>,
    /// Most windows (1-1000, default 100).
    #[serde(default)]
    limit: Option<i64>,
}

/// Windows of realized metrics, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct RealizedList {
    realized: Vec<refit_registry::realized::Realized>,
}

#[utoipa::path(get, path = "/drift/realized", tag = "drift", params(RealizedQuery),
    responses((status = 200, description = "The champion's metrics on records whose labels arrived, per window, newest first", body = RealizedList),
              (status = 400, description = "Bad query", body = ErrorBody)))]
async fn list_realized(
    State(state): State<AppState>,
    _: Can<can::ReadDrift>,
    Query(q): Query<RealizedQuery>,
) -> ApiResult<axum::Json<RealizedList>> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit: {limit} is outside 1-1000"
        )));
    }
    Ok(axum::Json(RealizedList {
        realized: state
            .store
            .list_realized(q.model.as_deref(), q.dataset.as_deref(), limit)
            .await?,
    }))
}

/// Which reports to read.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// Only this model's.
    #[serde(default)]
    model: Option<String>,
    /// Only this version's.
    #[serde(default)]
    version: Option<i64>,
    /// Only this dataset's.
    #[serde(default)]
    dataset: Option<String>,
    /// Only windows ending at or after this event time (ms since the Unix epoch).
    #[serde(default)]
    from: Option<i64>,
    /// Only windows starting before this event time (ms).
    #[serde(default)]
    to: Option<i64>,
    /// Only `stream` (monitor windows) or `check` (stored on-demand checks).
    #[serde(default)]
    source: Option<ReportSource>,
    /// Only reports older than this id (paging).
    #[serde(default)]
    before: Option<i64>,
    /// Most reports (default 100, at most 1,000); for machines, the newest reports considered.
    #[serde(default)]
    limit: Option<i64>,
}

impl ReportQuery {
    fn filter(&self) -> ApiResult<ReportFilter<'_>> {
        let limit = self.limit.unwrap_or(100);
        if !(1..=refit_registry::drift::MAX_LIST).contains(&limit) {
            return Err(ApiError::invalid(format!(
                "limit: {limit} is outside 1-{}",
                refit_registry::drift::MAX_LIST
            )));
        }
        if let (Some(from), Some(to)) = (self.from, self.to)
            && from >= to
        {
            return Err(ApiError::invalid(format!(
                "from: {from} is not before to ({to})"
            )));
        }
        Ok(ReportFilter {
            model: self.model.as_deref(),
            version: self.version,
            dataset: self.dataset.as_deref(),
            from: self.from,
            to: self.to,
            source: self.source,
            before: self.before,
            limit,
        })
    }
}

/// Reports, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportList {
    reports: Vec<DriftReport>,
}

/// A column's statistic over time, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeatureSeries {
    /// The feature (or `prediction`).
    feature: String,
    /// One point per report.
    points: Vec<ColumnPoint>,
}

/// Machines, most drifted first.
#[derive(Debug, Serialize, ToSchema)]
pub struct MachineList {
    /// Reports considered.
    reports: usize,
    /// The ranking.
    machines: Vec<MachineRank>,
}

#[utoipa::path(get, path = "/drift/reports", tag = "drift", params(ReportQuery),
    responses((status = 200, description = "Reports, newest first", body = ReportList),
              (status = 400, description = "Bad query", body = ErrorBody)))]
async fn list_reports(
    State(state): State<AppState>,
    _: Can<can::ReadDrift>,
    Query(q): Query<ReportQuery>,
) -> ApiResult<axum::Json<ReportList>> {
    let filter = q.filter()?;
    state.streams.drift_settled().await;
    Ok(axum::Json(ReportList {
        reports: state.store.list_drift_reports(&filter).await?,
    }))
}

#[utoipa::path(get, path = "/drift/reports/{id}", tag = "drift",
    params(("id" = i64, Path, description = "Report id")),
    responses((status = 200, description = "The report", body = DriftReport),
              (status = 404, description = "No such report", body = ErrorBody)))]
async fn get_report(
    State(state): State<AppState>,
    _: Can<can::ReadDrift>,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<DriftReport>> {
    state.streams.drift_settled().await;
    Ok(axum::Json(state.store.get_drift_report(id).await?))
}

#[utoipa::path(get, path = "/drift/features/{feature}", tag = "drift", params(
        ("feature" = String, Path, description = "A feature, or `prediction`"), ReportQuery),
    responses((status = 200, description = "The feature's statistic per report, oldest first", body = FeatureSeries),
              (status = 400, description = "Bad query", body = ErrorBody)))]
async fn feature_series(
    State(state): State<AppState>,
    _: Can<can::ReadDrift>,
    Path(feature): Path<String>,
    Query(q): Query<ReportQuery>,
) -> ApiResult<axum::Json<FeatureSeries>> {
    let filter = q.filter()?;
    state.streams.drift_settled().await;
    let points = state.store.drift_column_series(&feature, &filter).await?;
    Ok(axum::Json(FeatureSeries { feature, points }))
}

#[utoipa::path(get, path = "/drift/machines", tag = "drift", params(ReportQuery),
    responses((status = 200, description = "Machines ranked by their own drift over the newest `limit` reports", body = MachineList),
              (status = 400, description = "Bad query", body = ErrorBody)))]
async fn machine_ranking(
    State(state): State<AppState>,
    _: Can<can::ReadDrift>,
    Query(q): Query<ReportQuery>,
) -> ApiResult<axum::Json<MachineList>> {
    let filter = q.filter()?;
    state.streams.drift_settled().await;
    let reports = state.store.list_drift_reports(&filter).await?.len();
    let machines = state.store.drift_machine_ranking(&filter, 100).await?;
    Ok(axum::Json(MachineList { reports, machines }))
}

/// What to check: a model version's reference profile against a snapshot, or a time range of the
/// stored history, of a dataset.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// Registered model.
    model: String,
    /// Its version; default: the champion.
    #[serde(default)]
    version: Option<i64>,
    /// Dataset whose rows are judged.
    dataset: String,
    /// A snapshot of the dataset; or
    #[serde(default)]
    snapshot: Option<i64>,
    /// the rows with event times from here (RFC 3339 or ms; default: the beginning)
    #[serde(default, deserialize_with = "deserialize_time_opt")]
    #[schema(value_type = Option<String>)]
    from: Option<i64>,
    /// to before here (default: no end), under the dataset's current schema.
    #[serde(default, deserialize_with = "deserialize_time_opt")]
    #[schema(value_type = Option<String>)]
    to: Option<i64>,
    /// Share of drifted features at or above which the data drifts; default: the dataset's
    /// setting (0.5).
    #[serde(default)]
    drift_share: Option<f64>,
    /// Rows a machine needs to be judged on its own; default: the dataset's setting (30).
    #[serde(default)]
    min_machine_rows: Option<i64>,
    /// Keep the result as a report (source `check`; needs the role to write datasets).
    #[serde(default)]
    store: bool,
}

/// The result of a check: the report (with its id when stored).
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckResult {
    /// The stored report's id, if `store` was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<i64>,
    /// The report.
    #[serde(flatten)]
    report: NewDriftReport,
}

fn monitoring_error(e: MonitoringError) -> ApiError {
    match e {
        MonitoringError::NotFound(m) => ApiError::not_found(m),
        MonitoringError::Input(m) => ApiError::invalid(m),
        MonitoringError::Registry(e) => e.into(),
    }
}

#[utoipa::path(post, path = "/drift/check", tag = "drift", request_body = CheckRequest,
    responses((status = 200, description = "Drift of the rows against the version's reference profile", body = CheckResult),
              (status = 400, description = "Bad request (the message names the field)", body = ErrorBody),
              (status = 404, description = "No such model, version, profile, dataset or snapshot", body = ErrorBody)))]
async fn check(
    State(state): State<AppState>,
    caller: Can<can::ReadData>,
    Json(req): Json<CheckRequest>,
) -> ApiResult<axum::Json<CheckResult>> {
    if req.store {
        caller.0.require(Permission::WriteData)?;
    }
    if req.snapshot.is_some() && (req.from.is_some() || req.to.is_some()) {
        return Err(ApiError::invalid(
            "snapshot: give a snapshot or a time range (from/to), not both",
        ));
    }
    if let (Some(from), Some(to)) = (req.from, req.to)
        && from >= to
    {
        return Err(ApiError::invalid(format!(
            "from: {from} is not before to ({to})"
        )));
    }
    let mut settings = state.store.drift_settings(&req.dataset).await?;
    if let Some(share) = req.drift_share {
        if !(share > 0.0 && share <= 1.0) {
            return Err(ApiError::invalid(format!(
                "drift_share: {share} is not in (0, 1]"
            )));
        }
        settings.drift_share = share;
    }
    if let Some(rows) = req.min_machine_rows {
        if rows < 1 {
            return Err(ApiError::invalid(format!(
                "min_machine_rows: {rows} must be at least 1"
            )));
        }
        settings.min_machine_rows = rows;
    }
    state.store.get_registered_model(&req.model).await?;
    let version = match req.version {
        Some(v) => {
            state.store.get_model_version(&req.model, v).await?;
            v
        }
        None => state
            .store
            .champion_version(&req.model)
            .await?
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "version: model '{}' has no champion; name a version",
                    req.model
                ))
            })?,
    };
    let (schema, rows) = match req.snapshot {
        Some(id) => {
            let (_, schema, rows) = state.store.load_snapshot(&req.dataset, id).await?;
            (schema, rows)
        }
        None => {
            let (schema, rows, more) = state
                .store
                .read_rows(
                    &req.dataset,
                    req.from.unwrap_or(i64::MIN),
                    req.to.unwrap_or(i64::MAX),
                    MAX_CHECK_ROWS,
                )
                .await?;
            if more {
                return Err(ApiError::invalid(format!(
                    "from: the range holds more than {MAX_CHECK_ROWS} rows; narrow it"
                )));
            }
            (schema, rows)
        }
    };
    let report = check_rows(
        &state.store,
        &state.models,
        &req.dataset,
        &req.model,
        version,
        &schema,
        rows,
        monitor_settings(&settings),
    )
    .await
    .map_err(monitoring_error)?;
    let id = if req.store {
        Some(state.store.create_drift_report(&report).await?.id)
    } else {
        None
    };
    Ok(axum::Json(CheckResult { id, report }))
}

/// A dataset's drift window settings as sent: `window_rows` or `window` (a span such as `1h`),
/// and optionally the share and the rows per machine.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsRequest {
    /// Close a window every this many rows (1-1,000,000); or
    #[serde(default)]
    window_rows: Option<i64>,
    /// close one per span of event time: `30m`, `1h`, `1d`...
    #[serde(default)]
    window: Option<String>,
    /// Share of drifted features at or above which a window drifts, (0, 1]; default 0.5.
    #[serde(default)]
    drift_share: Option<f64>,
    /// Rows a machine needs in a window to be judged on its own (default 30).
    #[serde(default)]
    min_machine_rows: Option<i64>,
}

#[utoipa::path(get, path = "/drift/settings/{name}", tag = "drift",
    params(("name" = String, Path, description = "Dataset")),
    responses((status = 200, description = "The dataset's drift settings (the defaults if never set)", body = DriftSettings),
              (status = 404, description = "No such dataset", body = ErrorBody)))]
async fn get_settings(
    State(state): State<AppState>,
    _: Can<can::ReadData>,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<DriftSettings>> {
    Ok(axum::Json(state.store.drift_settings(&name).await?))
}

#[utoipa::path(put, path = "/drift/settings/{name}", tag = "drift", request_body = SettingsRequest,
    params(("name" = String, Path, description = "Dataset")),
    responses((status = 200, description = "Stored; monitors apply them within 10 s", body = DriftSettings),
              (status = 400, description = "Bad settings (the message names the field)", body = ErrorBody),
              (status = 404, description = "No such dataset", body = ErrorBody)))]
async fn put_settings(
    State(state): State<AppState>,
    caller: Can<can::WriteData>,
    Path(name): Path<String>,
    Json(req): Json<SettingsRequest>,
) -> ApiResult<axum::Json<DriftSettings>> {
    let (window_rows, window_ms) = match (req.window_rows, req.window.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "window: give window_rows or window, not both",
            ));
        }
        (Some(n), None) if (1..=1_000_000).contains(&n) => (Some(n), None),
        (Some(n), None) => {
            return Err(ApiError::invalid(format!(
                "window_rows: {n} is outside 1-1000000"
            )));
        }
        (None, Some(span)) => (
            None,
            Some(parse_span(span).map_err(|e| ApiError::invalid(format!("window: {e}")))?),
        ),
        (None, None) => (Some(refit_registry::drift::DEFAULT_WINDOW_ROWS), None),
    };
    let drift_share = req
        .drift_share
        .unwrap_or(refit_registry::drift::DEFAULT_DRIFT_SHARE);
    if !(drift_share > 0.0 && drift_share <= 1.0) {
        return Err(ApiError::invalid(format!(
            "drift_share: {drift_share} is not in (0, 1]"
        )));
    }
    let min_machine_rows = req
        .min_machine_rows
        .unwrap_or(refit_registry::drift::DEFAULT_MIN_MACHINE_ROWS);
    if min_machine_rows < 1 {
        return Err(ApiError::invalid(format!(
            "min_machine_rows: {min_machine_rows} must be at least 1"
        )));
    }
    let stored = state
        .store
        .set_drift_settings(
            &caller.actor(),
            &DriftSettings {
                dataset: name.clone(),
                window_rows,
                window_ms,
                drift_share,
                min_machine_rows,
                updated_at: 0,
                updated_by: String::new(),
            },
        )
        .await?;
    state.drift.settings_changed(&name);
    Ok(axum::Json(stored))
}
