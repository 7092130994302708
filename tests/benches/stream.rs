//! The stream end to end (the scorer issue's ingest-with-scoring and memory targets), run by
//! `scripts/bench stream`: NDJSON readings of 8 numeric features posted to
//! `/api/v1/streams/{dataset}/records` of the release binary on SQLite, each batch validated,
//! stored, scored by the champion (logistic regression) in the same transaction, its scores
//! stored and published, and fed to the drift monitor (windows of 1,000 rows); then the server's
//! peak RSS while 1,000,000 readings stream through it.

mod common;

use std::fmt::Write;
use std::time::{Duration, Instant};

use common::{RawClient, refit_binary, rss_mb, start, status_mb};
use serde_json::{Value, json};

const FEATURES: usize = 8;
const MACHINES: usize = 200;
const BATCH: usize = 10_000;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = start(&refit_binary(), None);
    let e = server.endpoint.clone();
    rt.block_on(prepare(&e));
    let pid = server.child.id();

    // Throughput: 500,000 readings with one client, with two, then with four; each client gets
    // the scores in its answers, then leaves them to the subscribers (`Prefer: return=minimal`).
    let mut results = Vec::new();
    let mut next = 0usize;
    for (clients, minimal) in [1, 2, 4]
        .map(|c| (c, false))
        .into_iter()
        .chain([1, 2, 4].map(|c| (c, true)))
    {
        // The bodies are made and dealt to the clients before the clock starts: only sending
        // them is timed.
        let mut chunks: Vec<Vec<Vec<u8>>> = vec![Vec::new(); clients];
        for b in 0..500_000 / BATCH {
            chunks[b % clients].push(body(next + b * BATCH, BATCH));
        }
        next += 500_000;
        let start = Instant::now();
        let threads: Vec<_> = chunks
            .into_iter()
            .map(|mine| {
                let e = e.clone();
                std::thread::spawn(move || {
                    let mut c = RawClient::connect(&e);
                    let extra = if minimal {
                        "Prefer: return=minimal\r\n"
                    } else {
                        ""
                    };
                    for b in mine {
                        let answer = c.post_with(
                            "/api/v1/streams/bench/records",
                            "application/x-ndjson",
                            extra,
                            &b,
                        );
                        assert!(
                            answer.starts_with(format!("{{\"accepted\":{BATCH},").as_bytes()),
                            "{}",
                            String::from_utf8_lossy(&answer[..answer.len().min(200)])
                        );
                        // A score takes ~190 bytes of the answer; the rest, a few hundred.
                        assert_eq!(
                            minimal,
                            answer.len() < 1000,
                            "scores in the answer unless minimal"
                        );
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let rate = 500_000.0 / start.elapsed().as_secs_f64();
        eprintln!("stream, {clients} client(s), minimal answers {minimal}: {rate:.0} rows/s");
        results.push((clients, minimal, rate));
    }

    // Memory: 1,000,000 more readings, RSS sampled as they go.
    let rss_before = rss_mb(pid);
    let mut peak = rss_before;
    let (mut peak_anon, mut peak_file) = (0.0f64, 0.0f64);
    let mut c = RawClient::connect(&e);
    for b in 0..1_000_000 / BATCH {
        c.post_raw(
            "/api/v1/streams/bench/records",
            "application/x-ndjson",
            &body(next + b * BATCH, BATCH),
        );
        peak = peak.max(rss_mb(pid));
        peak_anon = peak_anon.max(status_mb(pid, "RssAnon:"));
        peak_file = peak_file.max(status_mb(pid, "RssFile:"));
    }
    std::thread::sleep(Duration::from_millis(500));
    let rss_after = rss_mb(pid);

    println!();
    println!(
        "refit stream benchmark (SQLite, release build, NDJSON batches of {BATCH}, {FEATURES} features, \
         scored by a logistic regression, drift windows of 1,000 rows)"
    );
    println!("{:<52} {:>14} {:>14}", "figure", "refit", "target");
    for (clients, minimal, rate) in results {
        let answer = if minimal {
            "answer without scores"
        } else {
            "scores in the answer"
        };
        println!(
            "{:<52} {:>14.0} {:>14}",
            format!("stream, {clients} client(s), {answer}, rows/s"),
            rate,
            ">= 500,000"
        );
    }
    println!(
        "{:<52} {:>14.1} {:>14}",
        "RSS while streaming 1,000,000 readings, peak (MB)", peak, "<= 150"
    );
    println!(
        "{:<52} {:>14.1} {:>14}",
        "  of which anonymous (heap, stacks), peak (MB)", peak_anon, ""
    );
    println!(
        "{:<52} {:>14.1} {:>14}",
        "  of which mapped files (SQLite's mmap), peak (MB)", peak_file, ""
    );
    println!(
        "{:<52} {:>14.1} {:>14}",
        "RSS before / after that (MB)",
        rss_before,
        format!("{rss_after:.1}")
    );
}

/// A dataset, 20,000 labelled readings, a logistic-regression spec trained and promoted, and
/// drift windows of 1,000 rows.
async fn prepare(e: &common::Endpoint) {
    let client = reqwest::Client::new();
    let features: Vec<Value> = (0..FEATURES)
        .map(|j| json!({"name": format!("f{j}"), "kind": "numeric"}))
        .collect();
    e.call(
        &client,
        "/api/v1/datasets",
        &json!({"name": "bench", "features": features,
                "labels": [{"name": "y", "kind": "numeric"}]}),
    )
    .await;
    let mut training = String::new();
    for i in 0..20_000 {
        training.push_str(&reading(i, true).0);
    }
    let resp = client
        .post(format!(
            "http://{}/api/v1/datasets/bench/records",
            e.address
        ))
        .bearer_auth(&e.token)
        .header("content-type", "application/x-ndjson")
        .body(training)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    let names: Vec<String> = (0..FEATURES).map(|j| format!("f{j}")).collect();
    e.train_promoted(&client, &names).await;
    let resp = client
        .put(format!("http://{}/api/v1/drift/settings/bench", e.address))
        .bearer_auth(&e.token)
        .json(&json!({"window_rows": 1000}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
}

/// Reading `i` as an NDJSON line (with its label when `labelled`): machines take turns, times
/// advance, one reading per machine per second.
fn reading(i: usize, labelled: bool) -> (String, f64) {
    let machine = i % MACHINES;
    let ts = 1_700_000_000_000i64 + (i / MACHINES) as i64 * 1000;
    let mut line = format!("{{\"machine_id\":\"m{machine:03}\",\"ts\":{ts}");
    let mut z = 0.0;
    for f in 0..FEATURES {
        let v = (i as f64 * 0.618_033_988_749 + f as f64 * std::f64::consts::SQRT_2).sin() * 10.0;
        if f < 3 {
            z += v * (f as f64 - 1.0);
        }
        write!(line, ",\"f{f}\":{v}").unwrap();
    }
    let y = if z > 0.0 { 1.0 } else { 0.0 };
    if labelled {
        write!(line, ",\"y\":{y}").unwrap();
    }
    line.push_str("}\n");
    (line, y)
}

/// `n` unlabelled readings from `first` on, as one NDJSON body.
fn body(first: usize, n: usize) -> Vec<u8> {
    let mut out = String::with_capacity(n * 200);
    for i in first..first + n {
        out.push_str(&reading(20_000 + i, false).0);
    }
    out.into_bytes()
}
