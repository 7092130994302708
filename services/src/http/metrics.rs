//! Prometheus metrics: request counts and latency histograms by method, route and status, and the
//! database pool's connection gauges. Rendered in the text exposition format at `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use refit_registry::PoolStats;

use super::state::AppState;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct SeriesKey {
    method: String,
    route: String,
    status: u16,
}

#[derive(Debug, Default, Clone)]
struct Series {
    /// Non-cumulative counts per bucket; the last slot counts observations above every bound.
    buckets: [u64; BUCKETS.len() + 1],
    count: u64,
    sum: f64,
}

/// Request metrics, shared by all requests.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    series: Mutex<BTreeMap<SeriesKey, Series>>,
}

impl HttpMetrics {
    /// Records one finished request.
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let key = SeriesKey {
            method: method.to_string(),
            route: route.to_string(),
            status,
        };
        let mut series = self.series.lock().expect("metrics lock is never poisoned");
        let s = series.entry(key).or_default();
        let slot = BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(BUCKETS.len());
        s.buckets[slot] += 1;
        s.count += 1;
        s.sum += seconds;
    }

    /// The exposition text, with the pool gauges appended.
    pub fn render(&self, pool: PoolStats) -> String {
        let series = self
            .series
            .lock()
            .expect("metrics lock is never poisoned")
            .clone();
        let mut out = String::with_capacity(4096);
        out.push_str(
            "# HELP refit_http_requests_total HTTP requests by method, route and status.\n",
        );
        out.push_str("# TYPE refit_http_requests_total counter\n");
        for (k, s) in &series {
            let _ = writeln!(
                out,
                "refit_http_requests_total{{{}}} {}",
                labels(k),
                s.count
            );
        }
        out.push_str(
            "# HELP refit_http_request_duration_seconds Time from request to response headers.\n",
        );
        out.push_str("# TYPE refit_http_request_duration_seconds histogram\n");
        for (k, s) in &series {
            let l = labels(k);
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(s.buckets.iter()) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "refit_http_request_duration_seconds_bucket{{{l},le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "refit_http_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "refit_http_request_duration_seconds_sum{{{l}}} {}",
                s.sum
            );
            let _ = writeln!(
                out,
                "refit_http_request_duration_seconds_count{{{l}}} {}",
                s.count
            );
        }
        out.push_str("# HELP refit_db_pool_connections Open database connections by state.\n");
        out.push_str("# TYPE refit_db_pool_connections gauge\n");
        let _ = writeln!(
            out,
            "refit_db_pool_connections{{state=\"idle\"}} {}",
            pool.idle
        );
        let _ = writeln!(
            out,
            "refit_db_pool_connections{{state=\"in_use\"}} {}",
            pool.size.saturating_sub(pool.idle)
        );
        out
    }
}

fn labels(k: &SeriesKey) -> String {
    format!(
        "method=\"{}\",route=\"{}\",status=\"{}\"",
        escape(&k.method),
        escape(&k.route),
        k.status
    )
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Middleware recording every request under its route template (not its raw path, which would
/// make one series per run id).
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let response = next.run(req).await;
    state.metrics.observe(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// `GET /metrics`.
pub async fn render(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render(state.store.pool_stats()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_labelled() {
        let m = HttpMetrics::default();
        m.observe("GET", "/api/v1/runs/{run_id}", 200, 0.0004);
        m.observe("GET", "/api/v1/runs/{run_id}", 200, 0.003);
        m.observe("GET", "/api/v1/runs/{run_id}", 200, 20.0);
        let text = m.render(PoolStats { size: 3, idle: 2 });
        let l = r#"method="GET",route="/api/v1/runs/{run_id}",status="200""#;
        assert!(
            text.contains(&format!("refit_http_requests_total{{{l}}} 3")),
            "{text}"
        );
        assert!(text.contains(&format!(
            "refit_http_request_duration_seconds_bucket{{{l},le=\"0.0005\"}} 1"
        )));
        assert!(text.contains(&format!(
            "refit_http_request_duration_seconds_bucket{{{l},le=\"0.005\"}} 2"
        )));
        assert!(text.contains(&format!(
            "refit_http_request_duration_seconds_bucket{{{l},le=\"10\"}} 2"
        )));
        assert!(text.contains(&format!(
            "refit_http_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} 3"
        )));
        assert!(text.contains("refit_db_pool_connections{state=\"in_use\"} 1"));
        assert_eq!(escape("a\"b\\c"), "a\\\"b\\\\c");
    }
}
