//! The streaming scorer end to end: records posted (HTTP) or sent (WebSocket) to a dataset's
//! stream are stored once and scored once by the champion, with the same numbers as the batch
//! scoring endpoint; the scores reach subscribers over Server-Sent Events and WebSocket, resume
//! from a position without gap or duplicate, and a subscriber that never reads is disconnected
//! with the reason while the others and ingest go on. A promotion and a rollback mid-stream switch
//! the scoring version between batches, never inside one, and never lose or repeat a record; a
//! challenger is scored in shadow and stored but never streamed.

mod ai4i_support;

use std::collections::{BTreeSet, HashSet};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use ai4i_support::{Client, Crew, FEATURES, ndjson};
use futures_util::{SinkExt, Stream, StreamExt};
use refit_registry::tokens::Role;
use refit_tests::{
    Db, TestApp, expect_error, expect_json, on_both_databases, spawn_app, spawn_app_with,
};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

on_both_databases!(
    stream_scores_equal_batch_scores_and_duplicates_are_not_rescored,
    sse_subscribers_resume_without_gap_or_duplicate,
    a_swap_mid_stream_scores_every_record_once_by_the_version_on_its_score,
    retention_prunes_the_scores_of_pruned_readings,
    many_clients_at_once_with_drift_windows_closing_all_finish,
);

/// One database is enough where the behaviour under test is in-process (buffers, protocols).
fn on_sqlite<F: std::future::Future<Output = ()>>(test: impl FnOnce(Db) -> F) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(test(Db::Sqlite));
}

#[test]
fn a_subscriber_that_never_reads_is_disconnected_with_the_reason() {
    on_sqlite(slow_subscriber);
}

#[test]
fn websockets_take_records_and_serve_scores() {
    on_sqlite(websockets);
}

#[test]
fn bad_stream_requests_get_a_4xx_naming_the_cause() {
    on_sqlite(bad_requests);
}

/// Longest a test waits for one event.
const WAIT: Duration = Duration::from_secs(60);

/// Logistic regression on `Machine failure`, promoted by any first training.
fn spec(name: &str) -> Value {
    json!({
        "name": name,
        "dataset": "ai4i",
        "task": "binary",
        "target": "Machine failure",
        "features": FEATURES,
        "algorithm": "logistic_regression",
        "holdout": {"fraction": 0.2},
    })
}

/// A trained champion of `model` on AI4I's first 3,000 readings, bound to dataset `ai4i`.
async fn trained(crew: &Crew<'_>, model: &str) {
    crew.create_dataset("ai4i").await;
    assert_eq!(crew.ingest("ai4i", 1..=3000).await, 3000);
    crew.create_spec(&spec(model)).await;
    let first = crew.train_ok(model).await;
    assert_eq!(first["decision"], "promoted", "{first}");
}

/// Posts NDJSON `lines` to the stream of `dataset`; returns the report.
async fn stream(client: &Client<'_>, dataset: &str, lines: &[String]) -> Value {
    let response = client
        .request(Method::POST, &format!("/api/v1/streams/{dataset}/records"))
        .header("content-type", "application/x-ndjson")
        .body(lines.join("\n"))
        .send()
        .await
        .unwrap();
    expect_json(response, 200).await
}

fn parse(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn positions(scores: &Value) -> Vec<i64> {
    scores
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["position"].as_i64().unwrap())
        .collect()
}

/// Every stored champion score of `dataset`, read page by page from the JSON log.
async fn log(client: &Client<'_>, dataset: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = client
            .get(&format!(
                "/api/v1/streams/{dataset}/scores?after={after}&limit=500"
            ))
            .await;
        out.extend(page["scores"].as_array().unwrap().iter().cloned());
        match page["next_after"].as_i64() {
            Some(next) => after = next,
            None => return out,
        }
    }
}

async fn stream_scores_equal_batch_scores_and_duplicates_are_not_rescored(db: Db) {
    let app = spawn_app(db).await;
    let crew = Crew::new(&app).await;
    trained(&crew, "failure").await;
    let consumer = Client::new(&app, "dashboard", Role::Consumer).await;

    let lines = ndjson(3001..=3200);
    let first = stream(&crew.gateway, "ai4i", &lines).await;
    assert_eq!(first["accepted"], 200, "{first}");
    assert_eq!(first["duplicates"], 0);
    assert_eq!(first["rejected"], json!([]));
    assert_eq!(
        first["scored_by"],
        json!([{"model": "failure", "version": 1, "role": "champion", "scores": 200}])
    );
    assert_eq!(first["not_scored"], json!([]));
    assert!(first.get("note").is_none(), "{first}");
    assert_eq!(positions(&first["scores"]), (1..=200).collect::<Vec<_>>());

    // The same rows through the batch endpoint: the same version, the same numbers.
    let records = parse(&lines);
    let batch = consumer
        .post(
            "/api/v1/models/failure/score",
            Value::Array(records.clone()),
        )
        .await;
    assert_eq!(batch["version"], 1);
    let batch = batch["scores"].as_array().unwrap();
    let scores = first["scores"].as_array().unwrap();
    let mut labels = BTreeSet::new();
    for ((score, want), record) in scores.iter().zip(batch).zip(&records) {
        assert_eq!(score["machine_id"], record["machine_id"]);
        assert_eq!(score["ts"], record["ts"]);
        assert_eq!(score["model"], "failure");
        assert_eq!(score["version"], 1);
        assert_eq!(score["prediction"], want["prediction"], "{score} vs {want}");
        assert_eq!(
            score["probabilities"], want["probabilities"],
            "{score} vs {want}"
        );
        assert!(score["received_at"].as_i64().unwrap() > 1_600_000_000_000);
        labels.insert(score["prediction"].as_str().unwrap().to_string());
    }
    assert!(!scores.is_empty() && scores[0]["probabilities"]["1"].is_f64());
    assert!(labels.contains("0"), "{labels:?}");

    // Resending overlapping records: the stored ones are duplicates and are not scored again;
    // nor is a new record sent twice in the batch (its second copy is a duplicate).
    let mut resend = ndjson(3101..=3300);
    resend.push(resend[150].clone());
    let second = stream(&crew.gateway, "ai4i", &resend).await;
    assert_eq!(second["accepted"], 100, "{second}");
    assert_eq!(second["duplicates"], 101);
    assert_eq!(
        positions(&second["scores"]),
        (201..=300).collect::<Vec<_>>()
    );
    let fresh = parse(&ndjson(3201..=3300));
    for (score, record) in second["scores"].as_array().unwrap().iter().zip(&fresh) {
        assert_eq!(score["machine_id"], record["machine_id"]);
        assert_eq!(score["ts"], record["ts"]);
    }

    // The stored log: each record once, in position order, with what the responses said.
    let stored = log(&consumer, "ai4i").await;
    assert_eq!(stored.len(), 300);
    let mut answered: Vec<Value> = scores.to_vec();
    answered.extend(second["scores"].as_array().unwrap().iter().cloned());
    for (s, a) in stored.iter().zip(&answered) {
        assert_eq!(s, &{
            let mut a = a.clone();
            a["role"] = json!("champion");
            a
        });
    }
    let keys: HashSet<(String, i64)> = stored
        .iter()
        .map(|s| {
            (
                s["machine_id"].as_str().unwrap().to_string(),
                s["ts"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(keys.len(), 300);
    // Pages.
    let page = consumer
        .get("/api/v1/streams/ai4i/scores?after=100&limit=50")
        .await;
    assert_eq!(positions(&page["scores"]), (101..=150).collect::<Vec<_>>());
    assert_eq!(page["next_after"], 150);
    // Which model scored this record?
    let (m, ts) = (&records[7]["machine_id"], &records[7]["ts"]);
    let which = consumer
        .get(&format!(
            "/api/v1/streams/ai4i/scores?machine_id={}&ts={ts}",
            m.as_str().unwrap()
        ))
        .await;
    assert_eq!(which["scores"].as_array().unwrap().len(), 1, "{which}");
    assert_eq!(which["scores"][0]["version"], 1);
    assert_eq!(which["scores"][0]["role"], "champion");
    assert_eq!(which["scores"][0]["position"], 8);
    assert_eq!(which["scores"][0]["prediction"], scores[7]["prediction"]);

    // A dataset no model is bound to: stored, and the answer says nothing scored it.
    crew.create_dataset("quiet").await;
    let quiet = stream(&crew.gateway, "quiet", &ndjson(1..=5)).await;
    assert_eq!(quiet["accepted"], 5, "{quiet}");
    assert_eq!(quiet["scores"], json!([]));
    assert_eq!(quiet["scored_by"], json!([]));
    let note = quiet["note"].as_str().unwrap();
    assert!(
        note.contains("not scored") && note.contains("quiet"),
        "{note}"
    );
    app.stop().await;
}

// ----- Server-Sent Events ----------------------------------------------------------------------

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
struct SseEvent {
    id: Option<i64>,
    event: Option<String>,
    data: String,
}

/// Parses complete events off the front of `buf` (comments, i.e. heartbeats, are skipped).
fn take_events(buf: &mut String) -> Vec<SseEvent> {
    let mut out = Vec::new();
    while let Some(end) = buf.find("\n\n") {
        let block: String = buf.drain(..end + 2).collect();
        let mut event = SseEvent {
            id: None,
            event: None,
            data: String::new(),
        };
        let mut any = false;
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("id: ") {
                event.id = Some(v.parse().unwrap());
                any = true;
            } else if let Some(v) = line.strip_prefix("event: ") {
                event.event = Some(v.to_string());
                any = true;
            } else if let Some(v) = line.strip_prefix("data: ") {
                event.data.push_str(v);
                any = true;
            }
        }
        if any {
            out.push(event);
        }
    }
    out
}

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Vec<u8>>> + Send>>;

/// A subscriber reading Server-Sent Events over reqwest.
struct Subscriber {
    body: ByteStream,
    buf: String,
    ready: std::collections::VecDeque<SseEvent>,
}

impl Subscriber {
    async fn open(client: &Client<'_>, path: &str, last_event_id: Option<i64>) -> Subscriber {
        let mut request = client
            .request(Method::GET, path)
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Subscriber {
            body: Box::pin(response.bytes_stream().map(|c| c.map(|b| b.to_vec()))),
            buf: String::new(),
            ready: Default::default(),
        }
    }

    /// The next event; None when the stream ends.
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(e) = self.ready.pop_front() {
                return Some(e);
            }
            let chunk = tokio::time::timeout(WAIT, self.body.next())
                .await
                .expect("an event within the wait")?
                .unwrap();
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
            self.ready.extend(take_events(&mut self.buf));
        }
    }

    /// The next `n` events, which must all be scores.
    async fn scores(&mut self, n: usize) -> Vec<(i64, Value)> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let e = self.next().await.expect("the stream goes on");
            assert_eq!(e.event, None, "{e:?}");
            out.push((e.id.unwrap(), serde_json::from_str(&e.data).unwrap()));
        }
        out
    }
}

async fn sse_subscribers_resume_without_gap_or_duplicate(db: Db) {
    let app = spawn_app(db).await;
    let crew = Crew::new(&app).await;
    trained(&crew, "failure").await;
    let consumer = Client::new(&app, "dashboard", Role::Consumer).await;
    let path = "/api/v1/streams/ai4i/scores";

    let a = stream(&crew.gateway, "ai4i", &ndjson(3001..=3100)).await;
    assert_eq!(positions(&a["scores"]), (1..=100).collect::<Vec<_>>());
    // Live only, and resuming after position 40.
    let mut live = Subscriber::open(&consumer, path, None).await;
    let mut resumed = Subscriber::open(&consumer, path, Some(40)).await;
    let b = stream(&crew.gateway, "ai4i", &ndjson(3101..=3200)).await;
    assert_eq!(positions(&b["scores"]), (101..=200).collect::<Vec<_>>());
    let mut all: Vec<Value> = a["scores"].as_array().unwrap().clone();
    all.extend(b["scores"].as_array().unwrap().iter().cloned());
    let with_role = |s: &Value| {
        let mut s = s.clone();
        s["role"] = json!("champion");
        s
    };

    let got = live.scores(100).await;
    for ((id, score), want) in got.iter().zip(&all[100..]) {
        assert_eq!(*id, score["position"].as_i64().unwrap());
        assert_eq!(score, &with_role(want));
    }
    let got = resumed.scores(160).await;
    assert_eq!(
        got.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        (41..=200).collect::<Vec<_>>()
    );
    for ((_, score), want) in got.iter().zip(&all[40..]) {
        assert_eq!(score, &with_role(want));
    }
    // `?after=` does the same as Last-Event-ID.
    let mut after = Subscriber::open(&consumer, &format!("{path}?after=150"), None).await;
    let got = after.scores(50).await;
    assert_eq!(
        got.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        (151..=200).collect::<Vec<_>>()
    );
    // Nothing more arrives until more is sent; then exactly that.
    let c = stream(&crew.gateway, "ai4i", &ndjson(3201..=3203)).await;
    for s in [&mut live, &mut resumed, &mut after] {
        let got = s.scores(3).await;
        assert_eq!(
            got.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            vec![201, 202, 203]
        );
        assert_eq!(got[0].1, with_role(&c["scores"][0]));
    }
    drop((live, resumed, after));
    app.stop().await;
}

/// Raw HTTP/1.1 over a socket with a small receive buffer: a subscriber that stops reading.
struct RawSubscriber {
    socket: tokio::net::TcpStream,
    /// Bytes read past the response head.
    body: Vec<u8>,
}

impl RawSubscriber {
    async fn open(app: &TestApp, token: &str, path: &str) -> RawSubscriber {
        let addr: std::net::SocketAddr = app.address.trim_start_matches("http://").parse().unwrap();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut socket = socket.connect(addr).await.unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
             Accept: text/event-stream\r\n\r\n"
        );
        socket.write_all(request.as_bytes()).await.unwrap();
        // Read the response head, then stop reading.
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            socket.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("transfer-encoding: chunked"),
            "{head}"
        );
        RawSubscriber {
            socket,
            body: Vec::new(),
        }
    }

    /// Reads the chunked body to its end; returns its text.
    async fn read_to_end(mut self) -> String {
        let mut text = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // Decode every complete chunk read so far.
            while let Some(line_end) = self.body.windows(2).position(|w| w == b"\r\n") {
                let size_text = std::str::from_utf8(&self.body[..line_end]).unwrap();
                let size = usize::from_str_radix(size_text.trim(), 16).unwrap();
                if size == 0 {
                    return String::from_utf8(text).unwrap();
                }
                let start = line_end + 2;
                if self.body.len() < start + size + 2 {
                    break;
                }
                text.extend_from_slice(&self.body[start..start + size]);
                self.body.drain(..start + size + 2);
            }
            let n = tokio::time::timeout(WAIT, self.socket.read(&mut buf))
                .await
                .expect("the body goes on")
                .unwrap();
            assert!(n > 0, "the connection closed before the body ended");
            self.body.extend_from_slice(&buf[..n]);
        }
    }
}

/// `n` synthetic records (AI4I's values under new keys) for batch `b`.
fn synthetic(b: usize, n: usize) -> Vec<String> {
    let base = ndjson(1..=1000);
    (0..n)
        .map(|i| {
            let mut r: Value = serde_json::from_str(&base[(b * n + i) % base.len()]).unwrap();
            r["machine_id"] = json!(format!("m-{}", i % 50));
            r["ts"] = json!(20_000_000_000i64 + (b * n + i) as i64);
            r.to_string()
        })
        .collect()
}

async fn slow_subscriber(db: Db) {
    const BATCHES: usize = 100;
    const ROWS: usize = 400;
    let app = spawn_app_with(db, |c| c.subscriber_buffer = 4).await;
    let crew = Crew::new(&app).await;
    trained(&crew, "failure").await;
    let consumer = Client::new(&app, "dashboard", Role::Consumer).await;
    let path = "/api/v1/streams/ai4i/scores";

    let slow = RawSubscriber::open(&app, &consumer.token, path).await;
    let mut normal = Subscriber::open(&consumer, path, None).await;
    let reader = tokio::spawn(async move {
        let got = normal.scores(BATCHES * ROWS).await;
        (normal, got)
    });
    // Ingest goes on at its pace while one subscriber reads nothing.
    for b in 0..BATCHES {
        let report = stream(&crew.gateway, "ai4i", &synthetic(b, ROWS)).await;
        assert_eq!(report["accepted"], ROWS, "{report}");
        assert_eq!(report["scores"].as_array().unwrap().len(), ROWS);
    }
    // The reading subscriber got everything, in order.
    let (normal, got) = tokio::time::timeout(WAIT, reader).await.unwrap().unwrap();
    assert_eq!(
        got.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        (1..=(BATCHES * ROWS) as i64).collect::<Vec<_>>()
    );
    drop(normal);

    // The one that never read: what it was sent, in order, then the reason, then the end.
    let text = slow.read_to_end().await;
    let mut buf = text;
    let events = take_events(&mut buf);
    let (last, scores) = events.split_last().unwrap();
    assert_eq!(last.event.as_deref(), Some("error"), "{last:?}");
    let error: Value = serde_json::from_str(&last.data).unwrap();
    assert_eq!(error["error_code"], "SUBSCRIBER_TOO_SLOW");
    let ids: Vec<i64> = scores.iter().map(|e| e.id.unwrap()).collect();
    let k = *ids.last().unwrap();
    assert_eq!(ids, (1..=k).collect::<Vec<_>>());
    assert!(
        k < (BATCHES * ROWS) as i64,
        "the slow subscriber got everything"
    );
    assert_eq!(error["last_position"], k);
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("position {k}"))
            && message.contains(&format!("Last-Event-ID: {k}")),
        "{message}"
    );
    // Resuming where it was cut off delivers exactly the rest.
    let mut resumed = Subscriber::open(&consumer, path, Some(k)).await;
    let rest = resumed.scores(BATCHES * ROWS - k as usize).await;
    assert_eq!(
        rest.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        ((k + 1)..=(BATCHES * ROWS) as i64).collect::<Vec<_>>()
    );
    drop(resumed);
    app.stop().await;
}

// ----- WebSocket -------------------------------------------------------------------------------

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_connect(
    app: &TestApp,
    token: &str,
    path: &str,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let url = app.url(path).replacen("http://", "ws://", 1);
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(ws, _)| ws)
}

/// The next text frame as JSON (pings skipped).
async fn ws_next(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame within the wait")
            .expect("the socket is open")
            .unwrap();
        match message {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

fn refused_with(result: Result<Ws, tokio_tungstenite::tungstenite::Error>, status: u16) {
    match result {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), status)
        }
        Err(other) => panic!("expected HTTP {status}, got {other}"),
        Ok(_) => panic!("expected HTTP {status}, got a WebSocket"),
    }
}

async fn websockets(db: Db) {
    let app = spawn_app(db).await;
    let crew = Crew::new(&app).await;
    trained(&crew, "failure").await;
    let consumer = Client::new(&app, "dashboard", Role::Consumer).await;

    let mut subscriber = ws_connect(&app, &consumer.token, "/api/v1/streams/ai4i/scores")
        .await
        .unwrap();
    let mut gateway = ws_connect(&app, &crew.gateway.token, "/api/v1/streams/ai4i/ws")
        .await
        .unwrap();
    // A JSON array, one object, NDJSON: each frame answered with its report.
    let lines = ndjson(3001..=3060);
    let array = format!("[{}]", lines[..50].join(","));
    gateway.send(Message::text(array)).await.unwrap();
    let one = ws_next(&mut gateway).await;
    assert_eq!(one["accepted"], 50, "{one}");
    assert_eq!(positions(&one["scores"]), (1..=50).collect::<Vec<_>>());
    gateway
        .send(Message::text(lines[50].clone()))
        .await
        .unwrap();
    let two = ws_next(&mut gateway).await;
    assert_eq!(two["accepted"], 1, "{two}");
    assert_eq!(positions(&two["scores"]), vec![51]);
    gateway
        .send(Message::text(lines[51..].join("\n")))
        .await
        .unwrap();
    let three = ws_next(&mut gateway).await;
    assert_eq!(three["accepted"], 9, "{three}");
    // Bad frames are answered, and the connection stays.
    gateway
        .send(Message::text("[{\"machine_id\": "))
        .await
        .unwrap();
    let bad = ws_next(&mut gateway).await;
    assert_eq!(bad["error_code"], "INVALID_PARAMETER_VALUE", "{bad}");
    gateway
        .send(Message::binary(vec![1u8, 2, 3]))
        .await
        .unwrap();
    let bad = ws_next(&mut gateway).await;
    assert_eq!(bad["error_code"], "INVALID_PARAMETER_VALUE", "{bad}");
    gateway.send(Message::text(lines[0].clone())).await.unwrap();
    let again = ws_next(&mut gateway).await;
    assert_eq!(again["duplicates"], 1, "{again}");
    assert_eq!(again["scores"], json!([]));

    // The subscriber got every score once, as the reports gave them.
    let mut sent: Vec<Value> = Vec::new();
    for report in [&one, &two, &three] {
        sent.extend(report["scores"].as_array().unwrap().iter().cloned());
    }
    for want in &sent {
        let got = ws_next(&mut subscriber).await;
        let mut want = want.clone();
        want["role"] = json!("champion");
        assert_eq!(got, want);
    }
    // A late subscriber replays the log from a position.
    let mut late = ws_connect(
        &app,
        &consumer.token,
        "/api/v1/streams/ai4i/scores?after=55",
    )
    .await
    .unwrap();
    for want in &sent[55..] {
        assert_eq!(ws_next(&mut late).await["position"], want["position"]);
    }

    // A producer that leaves the scores to the subscribers: `Prefer: return=minimal` answers
    // with the report but not the scores, over HTTP and for every frame of a WebSocket.
    let more = ndjson(3061..=3070);
    let response = crew
        .gateway
        .request(Method::POST, "/api/v1/streams/ai4i/records")
        .header("content-type", "application/x-ndjson")
        .header("prefer", "respond-async, RETURN=minimal")
        .body(more[..5].join("\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["preference-applied"], "return=minimal");
    let minimal = expect_json(response, 200).await;
    assert_eq!(
        minimal,
        json!({"accepted": 5, "duplicates": 0, "rejected": [],
               "scored_by": [{"model": "failure", "version": 1, "role": "champion", "scores": 5}],
               "not_scored": []})
    );
    let url = app
        .url("/api/v1/streams/ai4i/ws")
        .replacen("http://", "ws://", 1);
    let mut request = url.into_client_request().unwrap();
    let headers = request.headers_mut();
    headers.insert(
        "authorization",
        format!("Bearer {}", crew.gateway.token).parse().unwrap(),
    );
    headers.insert("prefer", "return=minimal".parse().unwrap());
    let (mut quiet, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    quiet
        .send(Message::text(more[5..].join("\n")))
        .await
        .unwrap();
    let report = ws_next(&mut quiet).await;
    assert_eq!(report["accepted"], 5, "{report}");
    assert!(report.get("scores").is_none(), "{report}");
    // The scores went to the subscribers all the same, after the ones before.
    for position in 61..=70 {
        let got = ws_next(&mut subscriber).await;
        assert_eq!(got["position"], position, "{got}");
        assert_eq!(got["version"], 1);
    }
    // Without the preference, the answer has the scores, and no Preference-Applied.
    let response = crew
        .gateway
        .request(Method::POST, "/api/v1/streams/ai4i/records")
        .header("content-type", "application/x-ndjson")
        .header("prefer", "return=representation")
        .body(ndjson(3071..=3071).join("\n"))
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("preference-applied").is_none());
    let full = expect_json(response, 200).await;
    assert_eq!(positions(&full["scores"]), vec![71]);

    // Roles and unknown datasets are refused at the handshake.
    refused_with(
        ws_connect(&app, &consumer.token, "/api/v1/streams/ai4i/ws").await,
        403,
    );
    refused_with(
        ws_connect(&app, &crew.gateway.token, "/api/v1/streams/ai4i/scores").await,
        403,
    );
    refused_with(
        ws_connect(&app, &crew.gateway.token, "/api/v1/streams/nope/ws").await,
        404,
    );
    refused_with(
        ws_connect(&app, &consumer.token, "/api/v1/streams/nope/scores").await,
        404,
    );
    // Open sockets do not keep the server from stopping.
    app.stop().await;
    drop((subscriber, gateway, late, quiet));
}

// ----- hot swap and shadow ---------------------------------------------------------------------

async fn a_swap_mid_stream_scores_every_record_once_by_the_version_on_its_score(db: Db) {
    let app = spawn_app(db).await;
    let crew = Crew::new(&app).await;
    trained(&crew, "failure").await;
    let consumer = Client::new(&app, "dashboard", Role::Consumer).await;
    assert_eq!(crew.ingest("ai4i", 3001..=5000).await, 2000);

    // A gateway streams AI4I's later readings in batches of 20 while the champion moves.
    let done = Arc::new(AtomicBool::new(false));
    let batches = Arc::new(AtomicUsize::new(0));
    let lines = ndjson(5001..=10000);
    let sender = {
        let (done, batches, lines) = (done.clone(), batches.clone(), lines.clone());
        let token = crew.gateway.token.clone();
        let url = app.url("/api/v1/streams/ai4i/records");
        let client = app.client.clone();
        tokio::spawn(async move {
            let mut reports = Vec::new();
            for chunk in lines.chunks(20) {
                if done.load(Ordering::Acquire) {
                    break;
                }
                let response = client
                    .post(&url)
                    .bearer_auth(&token)
                    .header("content-type", "application/x-ndjson")
                    .body(chunk.join("\n"))
                    .send()
                    .await
                    .unwrap();
                reports.push((chunk.to_vec(), expect_json(response, 200).await));
                batches.fetch_add(1, Ordering::AcqRel);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            reports
        })
    };
    let wait_for = |n: usize| {
        let batches = batches.clone();
        async move {
            while batches.load(Ordering::Acquire) < n {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    wait_for(5).await;
    let second = crew.train_ok("failure").await;
    assert_eq!(second["decision"], "promoted", "{second}");
    assert_eq!(second["candidate_version"], 2);
    let at = batches.load(Ordering::Acquire);
    wait_for(at + 5).await;
    let rolled = crew
        .oscar
        .post("/api/v1/models/failure/rollback", json!({}))
        .await;
    assert_eq!(rolled["decision"], "rolled_back", "{rolled}");
    let at = batches.load(Ordering::Acquire);
    wait_for(at + 5).await;
    done.store(true, Ordering::Release);
    let reports = sender.await.unwrap();
    assert!(reports.len() >= 15);

    // Each batch was scored whole by one version, every record once.
    let mut sent = 0;
    for (chunk, report) in &reports {
        assert_eq!(report["accepted"], chunk.len(), "{report}");
        let by = report["scored_by"].as_array().unwrap();
        assert_eq!(by.len(), 1, "{report}");
        let version = &by[0]["version"];
        for s in report["scores"].as_array().unwrap() {
            assert_eq!(&s["version"], version);
        }
        sent += chunk.len();
    }
    let stored = log(&consumer, "ai4i").await;
    assert_eq!(stored.len(), sent);
    let keys: HashSet<(String, i64)> = stored
        .iter()
        .map(|s| {
            (
                s["machine_id"].as_str().unwrap().to_string(),
                s["ts"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(keys.len(), sent, "a record was scored twice");
    let expected: HashSet<(String, i64)> = reports
        .iter()
        .flat_map(|(chunk, _)| parse(chunk))
        .map(|r| {
            (
                r["machine_id"].as_str().unwrap().to_string(),
                r["ts"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(keys, expected, "a record was not scored");
    // In the log, the version changes only where the champion moved: 1, then 2, then 1.
    let mut runs: Vec<i64> = Vec::new();
    for s in &stored {
        let v = s["version"].as_i64().unwrap();
        if runs.last() != Some(&v) {
            runs.push(v);
        }
    }
    assert_eq!(runs, vec![1, 2, 1]);
    // Scores of version 2 are version 2's numbers (as the batch endpoint computes them).
    let (chunk, report) = reports
        .iter()
        .find(|(_, r)| r["scored_by"][0]["version"] == 2)
        .unwrap();
    let batch = consumer
        .post(
            "/api/v1/models/failure/score?version=2",
            Value::Array(parse(chunk)),
        )
        .await;
    for (s, b) in report["scores"]
        .as_array()
        .unwrap()
        .iter()
        .zip(batch["scores"].as_array().unwrap())
    {
        assert_eq!(s["probabilities"], b["probabilities"]);
    }

    // Shadow mode: with a challenger, both score; only the champion's scores are streamed.
    let set = crew
        .alice
        .send(
            Method::PUT,
            "/api/v1/models/failure/aliases/challenger",
            json!({"version": 2}),
        )
        .await;
    assert_eq!(set.status(), 204);
    let mut live = Subscriber::open(&consumer, "/api/v1/streams/ai4i/scores", None).await;
    let shadow_lines: Vec<String> = synthetic(0, 10);
    let shadow = stream(&crew.gateway, "ai4i", &shadow_lines).await;
    assert_eq!(
        shadow["scored_by"],
        json!([
            {"model": "failure", "version": 1, "role": "champion", "scores": 10},
            {"model": "failure", "version": 2, "role": "challenger", "scores": 10},
        ]),
        "{shadow}"
    );
    let champion = shadow["scores"].as_array().unwrap();
    assert_eq!(champion.len(), 10);
    assert!(champion.iter().all(|s| s["version"] == 1));
    let streamed = live.scores(10).await;
    for ((_, got), want) in streamed.iter().zip(champion) {
        assert_eq!(got["position"], want["position"]);
        assert_eq!(got["version"], 1);
    }
    // Both are stored for the record; the log consumers read has only the champion's.
    let r: Value = serde_json::from_str(&shadow_lines[3]).unwrap();
    let which = consumer
        .get(&format!(
            "/api/v1/streams/ai4i/scores?machine_id={}&ts={}",
            r["machine_id"].as_str().unwrap(),
            r["ts"]
        ))
        .await;
    let roles: Vec<(&str, i64)> = which["scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["role"].as_str().unwrap(), s["version"].as_i64().unwrap()))
        .collect();
    assert_eq!(roles, vec![("champion", 1), ("challenger", 2)]);
    let challenger_score = &which["scores"][1];
    let batch = consumer
        .post("/api/v1/models/failure/score?version=2", json!([r.clone()]))
        .await;
    assert_eq!(
        challenger_score["probabilities"],
        batch["scores"][0]["probabilities"]
    );
    let after = log(&consumer, "ai4i").await;
    assert_eq!(after.len(), sent + 10);
    assert!(after.iter().all(|s| s["role"] == "champion"));
    drop(live);
    app.stop().await;
}

// ----- bad input -------------------------------------------------------------------------------

async fn bad_requests(db: Db) {
    let app = spawn_app(db).await;
    let crew = Crew::new(&app).await;
    trained(&crew, "failure").await;
    let consumer = Client::new(&app, "dashboard", Role::Consumer).await;
    let post = |client: &Client<'_>, path: &str, body: &str, content_type: &str| {
        client
            .request(Method::POST, path)
            .header("content-type", content_type)
            .body(body.to_string())
    };
    let records = "/api/v1/streams/ai4i/records";

    // Malformed JSON, an unknown dataset, wrong roles.
    let response = post(
        &crew.gateway,
        records,
        "[{\"machine_id\": ",
        "application/json",
    )
    .send()
    .await
    .unwrap();
    expect_error(response, 400, "INVALID_PARAMETER_VALUE", "").await;
    let response = post(
        &crew.gateway,
        "/api/v1/streams/nope/records",
        "[]",
        "application/json",
    )
    .send()
    .await
    .unwrap();
    expect_error(response, 404, "RESOURCE_DOES_NOT_EXIST", "nope").await;
    let response = post(&consumer, records, "[]", "application/json")
        .send()
        .await
        .unwrap();
    expect_error(response, 403, "PERMISSION_DENIED", "may not do this").await;
    let response = crew
        .gateway
        .send(Method::GET, "/api/v1/streams/ai4i/scores", Value::Null)
        .await;
    expect_error(response, 403, "PERMISSION_DENIED", "may not do this").await;
    let response = consumer
        .send(Method::GET, "/api/v1/streams/nope/scores", Value::Null)
        .await;
    expect_error(response, 404, "RESOURCE_DOES_NOT_EXIST", "nope").await;

    // Schema violations: the bad rows are listed, the good one is stored and scored.
    let good: Value = serde_json::from_str(&ndjson(3001..=3001)[0]).unwrap();
    let mut wrong_type = good.clone();
    wrong_type["ts"] = json!(4_000_000);
    wrong_type["Torque [Nm]"] = json!("n/a");
    let mut no_machine = good.clone();
    no_machine.as_object_mut().unwrap().remove("machine_id");
    let mut unknown = good.clone();
    unknown["ts"] = json!(4_000_001);
    unknown["Pressure"] = json!(1.0);
    let body = [
        good.to_string(),
        wrong_type.to_string(),
        no_machine.to_string(),
        "{not json".to_string(),
        unknown.to_string(),
    ]
    .join("\n");
    let report = expect_json(
        post(&crew.gateway, records, &body, "application/x-ndjson")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(report["accepted"], 1, "{report}");
    let rejected: Vec<i64> = report["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["index"].as_i64().unwrap())
        .collect();
    assert_eq!(rejected, vec![1, 2, 3, 4], "{report}");
    assert_eq!(report["rejected"][0]["field"], "Torque [Nm]");
    assert_eq!(report["scores"].as_array().unwrap().len(), 1);
    assert_eq!(report["scores"][0]["machine_id"], good["machine_id"]);
    // The refused records are dead letters of source `stream`.
    let letters = crew.alice.get("/api/v1/datasets/ai4i/dead-letters").await;
    let sources: Vec<&str> = letters["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, vec!["stream"; 4], "{letters}");

    // Malformed positions and queries.
    let path = "/api/v1/streams/ai4i/scores";
    let response = consumer
        .request(Method::GET, path)
        .header("accept", "text/event-stream")
        .header("last-event-id", "yesterday")
        .send()
        .await
        .unwrap();
    expect_error(response, 400, "INVALID_PARAMETER_VALUE", "Last-Event-ID").await;
    for query in ["?limit=0", "?machine_id=M1", "?after=x", "?colour=red"] {
        let response = consumer
            .send(Method::GET, &format!("{path}{query}"), Value::Null)
            .await;
        expect_error(response, 400, "INVALID_PARAMETER_VALUE", "").await;
    }
    app.stop().await;
}

/// The score log keeps what the history keeps: pruning a dataset's old readings deletes their
/// scores too, and the log then starts with the first score of a kept reading.
async fn retention_prunes_the_scores_of_pruned_readings(db: Db) {
    const DAY: i64 = 86_400_000;
    const T0: i64 = 1_700_000_000_000;
    let app = spawn_app(db).await;
    let crew = Crew::new(&app).await;
    crew.alice
        .call(
            Method::POST,
            "/api/v1/datasets",
            json!({"name": "press", "features": [{"name": "x", "kind": "numeric"}],
                   "labels": [{"name": "y", "kind": "numeric"}]}),
            201,
        )
        .await;
    // Twenty days of training readings (y = 2x + 1), then a model.
    let readings: Vec<Value> = (0..200)
        .map(|i| {
            json!({"machine_id": format!("m{}", i % 4), "ts": T0 + (i / 10) * DAY + i,
                        "x": i as f64, "y": 2.0 * i as f64 + 1.0})
        })
        .collect();
    crew.gateway
        .call(
            Method::POST,
            "/api/v1/datasets/press/records",
            json!(readings),
            200,
        )
        .await;
    crew.create_spec(
        &json!({"name": "press", "dataset": "press", "task": "regression",
                             "target": "y", "features": ["x"],
                             "algorithm": "linear_regression"}),
    )
    .await;
    assert_eq!(crew.train_ok("press").await["decision"], "promoted");
    // Streamed: one reading a day for days 20..40.
    let streamed: Vec<String> = (20..40)
        .map(|d| json!({"machine_id": "m9", "ts": T0 + d * DAY, "x": d as f64}).to_string())
        .collect();
    let report = stream(&crew.gateway, "press", &streamed).await;
    assert_eq!(report["scores"].as_array().unwrap().len(), 20, "{report}");

    // Keep 10 days before the newest reading (day 39): days 29..39 stay.
    crew.alice
        .call(
            Method::PATCH,
            "/api/v1/datasets/press",
            json!({"retention_days": 10}),
            200,
        )
        .await;
    let pruned = crew
        .alice
        .call(Method::POST, "/api/v1/datasets/press/prune", json!({}), 200)
        .await;
    assert_eq!(pruned["cutoff"], T0 + 29 * DAY);
    // The training readings are kept for the model's snapshots; the streamed ones of days 20..28
    // go, with their scores.
    assert_eq!(pruned["kept_for_snapshots"], 200);
    assert_eq!(pruned["deleted_records"], 9);
    assert_eq!(pruned["deleted_scores"], 9, "{pruned}");
    let kept = log(&crew.oscar, "press").await;
    let days: Vec<i64> = kept
        .iter()
        .map(|s| (s["ts"].as_i64().unwrap() - T0) / DAY)
        .collect();
    assert_eq!(days, (29..40).collect::<Vec<_>>());
    assert_eq!(kept[0]["position"], 10, "positions are not reused");
    app.stop().await;
}

/// Twelve clients stream at once while small drift windows close (their reports are written as
/// batches are stored): every request is answered, every record scored once, and the windows'
/// reports are stored. (A full drift queue once made a submit wait for the drift task while it
/// held the order in which batches are published, and the drift task wait for the writer, held
/// by a submit waiting for that order: the server stopped answering.)
async fn many_clients_at_once_with_drift_windows_closing_all_finish(db: Db) {
    const CLIENTS: usize = 12;
    const BATCHES: usize = 6;
    const ROWS: usize = 100;
    const WINDOW: usize = 20;
    let app = spawn_app(db).await;
    let crew = Crew::new(&app).await;
    trained(&crew, "failure").await;
    crew.alice
        .call(
            Method::PUT,
            "/api/v1/drift/settings/ai4i",
            json!({"window_rows": WINDOW}),
            200,
        )
        .await;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let crew = &crew;
            async move {
                let mut scored = 0;
                for b in 0..BATCHES {
                    let report =
                        stream(&crew.gateway, "ai4i", &synthetic(c * BATCHES + b, ROWS)).await;
                    assert_eq!(report["accepted"], ROWS, "{report}");
                    scored += report["scores"].as_array().unwrap().len();
                }
                scored
            }
        })
        .collect();
    let scored = tokio::time::timeout(WAIT, futures_util::future::join_all(clients))
        .await
        .expect("every client's requests are answered");
    assert_eq!(scored, vec![BATCHES * ROWS; CLIENTS]);
    let logged = log(&crew.oscar, "ai4i").await;
    let unique: HashSet<i64> = logged
        .iter()
        .map(|s| s["position"].as_i64().unwrap())
        .collect();
    assert_eq!(
        (logged.len(), unique.len()),
        (CLIENTS * BATCHES * ROWS, CLIENTS * BATCHES * ROWS)
    );
    // Every window of live rows closed and was reported.
    let reports = crew
        .alice
        .get("/api/v1/drift/reports?model=failure&source=stream&limit=1000")
        .await;
    assert_eq!(
        reports["reports"].as_array().map(Vec::len),
        Some(CLIENTS * BATCHES * ROWS / WINDOW),
        "{reports}"
    );
}
