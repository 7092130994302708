//! The registry's performance figures, against the real release binary over loopback HTTP:
//! sequential `log-metric` requests/s, `log-batch` of 100 metrics latency, filtered and ordered
//! run search over 10,000 runs, and idle RSS. Run by `scripts/bench` (which builds the binary and
//! starts a private PostgreSQL); the MLflow 3.17 figures quoted for comparison were measured on the
//! same kind of 2-core machine with SQLite (see BENCHMARKS.md).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{RawClient, fresh_postgres, percentile, refit_binary, rss_mb, start};
use serde_json::{Value, json};

const SEQUENTIAL_METRICS: usize = 5_000;
const BATCHES: usize = 500;
const SEARCH_RUNS: usize = 10_000;
const SEARCHES: usize = 300;

fn backends_pg_url() -> Option<String> {
    std::env::var("REFIT_BENCH_POSTGRES_URL").ok()
}

/// `CHECKPOINT` on the benchmark's PostgreSQL, then a moment for the disk to settle.
async fn quiesce_postgres(url: &str) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url)
        .await
        .expect("connecting to REFIT_BENCH_POSTGRES_URL");
    sqlx::query("CHECKPOINT")
        .execute(&mut conn)
        .await
        .expect("CHECKPOINT");
    conn.close().await.ok();
    tokio::time::sleep(Duration::from_millis(500)).await;
}

fn main() {
    let bin = refit_binary();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut backends = vec![("SQLite", None)];
    match backends_pg_url() {
        Some(url) => backends.push(("PostgreSQL", Some(url))),
        None => eprintln!(
            "REFIT_BENCH_POSTGRES_URL is not set: PostgreSQL skipped (scripts/bench sets it)"
        ),
    }
    let mut reports = Vec::new();
    for (name, pg) in backends {
        if let Some(url) = backends_pg_url() {
            // The private PostgreSQL has just been created: flush its dirty pages now, so that its
            // own background writes do not land in the middle of this backend's measurement.
            rt.block_on(quiesce_postgres(&url));
        }
        eprintln!("== {name}");
        reports.push((name, rt.block_on(measure(&bin, pg))));
    }
    println!();
    println!(
        "refit registry benchmark (release build, loopback HTTP/1.1, one kept-alive client connection)"
    );
    println!(
        "{:<44} {:>14} {:>14} {:>18} {:>16}",
        "figure", "SQLite", "PostgreSQL", "target", "MLflow 3.17 *"
    );
    let get = |i: usize, f: Figure| {
        reports
            .get(i)
            .map(|(_, r)| f(r))
            .unwrap_or_else(|| "-".into())
    };
    let rows: Vec<(&str, Figure, &str, &str)> = vec![
        (
            "sequential log-metric (requests/s)",
            (|r: &Report| format!("{:.0}", r.log_metric_rps)),
            ">= 3000 / 1000",
            "~41",
        ),
        (
            "  log-metric p50 (ms)",
            (|r: &Report| format!("{:.3}", r.log_metric_p50_ms)),
            "",
            "~24",
        ),
        (
            "log-batch of 100 metrics p50 (ms)",
            (|r: &Report| format!("{:.3}", r.batch_p50_ms)),
            "",
            "~40",
        ),
        (
            "log-batch of 100 metrics p95 (ms)",
            (|r: &Report| format!("{:.3}", r.batch_p95_ms)),
            "<= 5",
            "",
        ),
        (
            "search 10,000 runs, filter+order p50 (ms)",
            (|r: &Report| format!("{:.3}", r.search_p50_ms)),
            "",
            "~72 (1,000 runs)",
        ),
        (
            "search 10,000 runs, filter+order p95 (ms)",
            (|r: &Report| format!("{:.3}", r.search_p95_ms)),
            "<= 20",
            "",
        ),
        (
            "  matching runs per search (of 10,000)",
            (|r: &Report| format!("{}", r.search_matches)),
            "",
            "",
        ),
        (
            "idle RSS after start (MB)",
            (|r: &Report| format!("{:.1}", r.rss_start_mb)),
            "<= 30",
            "",
        ),
        (
            "idle RSS after the benchmark (MB)",
            (|r: &Report| format!("{:.1}", r.rss_after_mb)),
            "",
            "",
        ),
    ];
    for (label, f, target, mlflow) in &rows {
        println!(
            "{:<44} {:>14} {:>14} {:>18} {:>16}",
            label,
            get(0, *f),
            get(1, *f),
            target,
            mlflow
        );
    }
    if let (Some((_, s)), true) = (reports.first(), true) {
        println!(
            "\nratio to MLflow's quoted figures (SQLite): log-metric x{:.0}, log-batch p50 x{:.0}",
            s.log_metric_rps / 41.0,
            40.0 / s.batch_p50_ms
        );
    }
    println!(
        "* MLflow 3.17 tracking server with SQLite on the same kind of 2-core machine, as quoted in the foundation issue."
    );
}

/// How to print one figure of a report.
type Figure = fn(&Report) -> String;

struct Report {
    log_metric_rps: f64,
    log_metric_p50_ms: f64,
    batch_p50_ms: f64,
    batch_p95_ms: f64,
    search_p50_ms: f64,
    search_p95_ms: f64,
    search_matches: usize,
    rss_start_mb: f64,
    rss_after_mb: f64,
}

async fn measure(bin: &Path, pg: Option<String>) -> Report {
    let url = match &pg {
        Some(base) => Some(fresh_postgres(base).await),
        None => None,
    };
    let server = start(bin, url);
    let pid = server.child.id();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(16)
        .build()
        .unwrap();
    let api = server.endpoint.clone();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_start_mb = rss_mb(pid);

    let exp = api
        .call(&client, "/api/v1/experiments", &json!({"name": "bench"}))
        .await;
    let exp_id = exp["experiment_id"].as_str().unwrap().to_string();
    let run = api
        .call(&client, "/api/v1/runs", &json!({"experiment_id": exp_id}))
        .await;
    let run_id = run["info"]["run_id"].as_str().unwrap().to_string();

    // Sequential log-metric: one request at a time, each acknowledged only after its commit.
    let mut raw = RawClient::connect(&api);
    let path = format!("/api/v1/runs/{run_id}/metrics");
    let mut lat = Vec::with_capacity(SEQUENTIAL_METRICS);
    let started = Instant::now();
    for step in 0..SEQUENTIAL_METRICS {
        let t = Instant::now();
        raw.post(
            &path,
            &json!({"key": "loss", "value": 1.0 / (step as f64 + 1.0), "step": step}),
        );
        lat.push(t.elapsed());
    }
    let log_metric_rps = SEQUENTIAL_METRICS as f64 / started.elapsed().as_secs_f64();
    lat.sort();
    let log_metric_p50_ms = percentile(&lat, 0.5);
    eprintln!("log-metric: {log_metric_rps:.0} req/s");

    // log-batch of 100 metrics.
    let path = format!("/api/v1/runs/{run_id}/log-batch");
    let mut lat = Vec::with_capacity(BATCHES);
    for b in 0..BATCHES {
        let metrics: Vec<Value> = (0..100)
            .map(|i| json!({"key": format!("m{i}"), "value": (b * i) as f64, "step": b}))
            .collect();
        let body = json!({"metrics": metrics});
        let t = Instant::now();
        raw.post(&path, &body);
        lat.push(t.elapsed());
    }
    lat.sort();
    let (batch_p50_ms, batch_p95_ms) = (percentile(&lat, 0.5), percentile(&lat, 0.95));
    eprintln!("log-batch: p50 {batch_p50_ms:.2} ms, p95 {batch_p95_ms:.2} ms");

    // 10,000 runs with a model param and an rmse metric, created 8 at a time.
    let exp = api
        .call(&client, "/api/v1/experiments", &json!({"name": "search"}))
        .await;
    let search_exp = exp["experiment_id"].as_str().unwrap().to_string();
    let populate = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let client = client.clone();
        let (s, exp) = (api.clone(), search_exp.clone());
        tasks.push(tokio::spawn(async move {
            for i in (worker..SEARCH_RUNS).step_by(8) {
                let run = s.call(&client, "/api/v1/runs", &json!({"experiment_id": exp})).await;
                let id = run["info"]["run_id"].as_str().unwrap().to_string();
                let model = ["rf", "gbm", "linear", "tree"][i % 4];
                let rmse = ((i * 7919) % 1000) as f64 / 1000.0;
                let body = json!({
                    "metrics": [{"key": "rmse", "value": rmse}, {"key": "mae", "value": rmse / 2.0}],
                    "params": [{"key": "model", "value": model}, {"key": "depth", "value": (i % 12).to_string()}],
                    "tags": [{"key": "team", "value": if i % 3 == 0 { "a" } else { "b" }}]
                });
                s.call(&client, &format!("/api/v1/runs/{id}/log-batch"), &body).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    eprintln!(
        "populated {SEARCH_RUNS} runs in {:.1} s",
        populate.elapsed().as_secs_f64()
    );

    let body = json!({
        "experiment_ids": [search_exp],
        "filter": "metrics.rmse < 0.5 AND params.model = 'rf'",
        "order_by": ["metrics.rmse ASC"],
        "max_results": 100,
    });
    let mut lat = Vec::with_capacity(SEARCHES);
    let mut search_matches = 0;
    let mut raw = RawClient::connect(&api);
    for _ in 0..SEARCHES {
        let t = Instant::now();
        let page = raw.post("/api/v1/runs/search", &body);
        lat.push(t.elapsed());
        let page: Value = serde_json::from_slice(&page).unwrap();
        search_matches = page["runs"].as_array().unwrap().len();
    }
    // Count every match once, paging, to report how selective the filter is.
    let mut total = 0;
    let mut token: Option<String> = None;
    loop {
        let mut b = body.clone();
        b["max_results"] = json!(1000);
        if let Some(t) = &token {
            b["page_token"] = json!(t);
        }
        let page = api.call(&client, "/api/v1/runs/search", &b).await;
        total += page["runs"].as_array().unwrap().len();
        match page["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert!(search_matches == 100 && total > 100);
    lat.sort();
    let (search_p50_ms, search_p95_ms) = (percentile(&lat, 0.5), percentile(&lat, 0.95));
    eprintln!("search: p50 {search_p50_ms:.2} ms, p95 {search_p95_ms:.2} ms ({total} matches)");

    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after_mb = rss_mb(pid);
    Report {
        log_metric_rps,
        log_metric_p50_ms,
        batch_p50_ms,
        batch_p95_ms,
        search_p50_ms,
        search_p95_ms,
        search_matches: total,
        rss_start_mb,
        rss_after_mb,
    }
}
