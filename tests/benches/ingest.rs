//! Ingest throughput: readings of 20 numeric features sent as NDJSON over loopback HTTP, in
//! batches of 1,000 to 10,000, by one or two clients, into SQLite and PostgreSQL; each batch is
//! answered only once stored durably. Run by `scripts/bench ingest`.

mod common;

use std::fmt::Write;
use std::path::Path;
use std::time::Instant;

use common::{RawClient, fresh_postgres, refit_binary, start};
use serde_json::{Value, json};

/// Readings sent per measurement (sustained: several seconds of ingest).
const ROWS: usize = 500_000;
const FEATURES: usize = 20;
const MACHINES: usize = 200;

fn main() {
    let bin = refit_binary();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut backends = vec![("SQLite", None)];
    match std::env::var("REFIT_BENCH_POSTGRES_URL") {
        Ok(url) => backends.push(("PostgreSQL", Some(url))),
        Err(_) => eprintln!(
            "REFIT_BENCH_POSTGRES_URL is not set: PostgreSQL skipped (scripts/bench sets it)"
        ),
    }
    let mut results = Vec::new();
    for (name, pg) in backends {
        for (batch, clients) in [(1_000, 1), (5_000, 1), (10_000, 1), (5_000, 2), (10_000, 2)] {
            let rate = rt.block_on(measure(&bin, pg.clone(), batch, clients));
            eprintln!("{name}, batches of {batch}, {clients} client(s): {rate:.0} rows/s");
            results.push((name, batch, clients, rate));
        }
    }
    println!();
    println!(
        "refit ingest benchmark: {ROWS} readings of {FEATURES} numeric features over loopback HTTP (NDJSON)"
    );
    println!(
        "{:<12} {:>8} {:>8} {:>14} {:>12}",
        "database", "batch", "clients", "rows/s", "target"
    );
    for (name, batch, clients, rate) in results {
        let target = if name == "SQLite" {
            ">= 200,000"
        } else {
            ">= 100,000"
        };
        println!("{name:<12} {batch:>8} {clients:>8} {rate:>14.0} {target:>12}");
    }
}

/// NDJSON bodies of `batch` readings each, `ROWS` in all: machines take turns, times advance.
fn bodies(batch: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut body = String::with_capacity(batch * 400);
    for i in 0..ROWS {
        let machine = i % MACHINES;
        let ts = 1_700_000_000_000i64 + (i / MACHINES) as i64 * 1000;
        write!(body, "{{\"machine_id\":\"m{machine:03}\",\"ts\":{ts}").unwrap();
        for f in 0..FEATURES {
            // Values with full precision, like real sensor readings.
            let v =
                (i as f64 * 0.618_033_988_749 + f as f64 * std::f64::consts::SQRT_2).sin() * 100.0;
            write!(body, ",\"f{f:02}\":{v}").unwrap();
        }
        body.push_str("}\n");
        if (i + 1) % batch == 0 {
            out.push(std::mem::take(&mut body).into_bytes());
        }
    }
    out
}

/// Sends every batch over `clients` concurrent connections; returns rows per second.
async fn measure(bin: &Path, pg: Option<String>, batch: usize, clients: usize) -> f64 {
    let url = match &pg {
        Some(base) => Some(fresh_postgres(base).await),
        None => None,
    };
    let server = start(bin, url);
    let features: Vec<Value> = (0..FEATURES)
        .map(|f| json!({"name": format!("f{f:02}"), "kind": "numeric"}))
        .collect();
    RawClient::connect(&server.endpoint).post(
        "/api/v1/datasets",
        &json!({"name": "bench", "features": features}),
    );
    let bodies = bodies(batch);
    let started = Instant::now();
    let accepted: usize = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..clients)
            .map(|c| {
                let (endpoint, bodies) = (&server.endpoint, &bodies);
                scope.spawn(move || {
                    let mut raw = RawClient::connect(endpoint);
                    let mut accepted = 0;
                    for body in bodies.iter().skip(c).step_by(clients) {
                        let reply = raw.post_raw(
                            "/api/v1/datasets/bench/records",
                            "application/x-ndjson",
                            body,
                        );
                        let report: Value = serde_json::from_slice(&reply).unwrap();
                        accepted += report["accepted"].as_u64().unwrap() as usize;
                    }
                    accepted
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(accepted, ROWS, "every reading is stored once");
    ROWS as f64 / seconds
}
