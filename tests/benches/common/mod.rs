//! What the benchmarks share: the release binary spawned on a fresh database, a minimal HTTP/1.1
//! client for timed requests, and small measuring helpers.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

pub fn refit_binary() -> PathBuf {
    if let Ok(p) = std::env::var("REFIT_BIN") {
        return PathBuf::from(p);
    }
    // target/release/deps/registry-<hash> → target/release/refit
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("refit");
    assert!(
        bin.exists(),
        "{} not found: build it with `cargo build --release --bin refit` (scripts/bench does)",
        bin.display()
    );
    bin
}

/// Where to send requests, and with which token.
#[derive(Clone)]
pub struct Endpoint {
    pub address: String,
    pub token: String,
}

impl Endpoint {
    /// Applies a logistic-regression spec `bench` on dataset `bench` (target `y`) and trains it,
    /// returning once the job succeeded with a promotion.
    pub async fn train_promoted(&self, client: &reqwest::Client, features: &[String]) {
        self.call(
            client,
            "/api/v1/specs",
            &serde_json::json!({"name": "bench", "dataset": "bench", "task": "binary",
                                "target": "y", "features": features,
                                "algorithm": "logistic_regression"}),
        )
        .await;
        let job = self
            .call(client, "/api/v1/specs/bench/train", &Value::Null)
            .await;
        let id = job["id"].as_i64().unwrap();
        loop {
            let job: Value = client
                .get(format!("http://{}/api/v1/jobs/{id}", self.address))
                .bearer_auth(&self.token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            match job["status"].as_str().unwrap() {
                "succeeded" => {
                    assert_eq!(job["result"]["decision"], "promoted", "{job}");
                    return;
                }
                "failed" => panic!("training failed: {job}"),
                _ => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        }
    }

    pub async fn call(&self, client: &reqwest::Client, path: &str, body: &Value) -> Value {
        let resp = client
            .post(format!("http://{}{path}", self.address))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {text}");
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        }
    }
}

/// A minimal HTTP/1.1 client on one kept-alive connection, for the timed requests: the figures
/// should be the server's, and a general-purpose client (reqwest) adds ~100 µs per request here.
pub struct RawClient {
    stream: std::net::TcpStream,
    host: String,
    token: String,
    buf: Vec<u8>,
}

impl RawClient {
    pub fn connect(e: &Endpoint) -> RawClient {
        let stream = std::net::TcpStream::connect(&e.address).unwrap();
        stream.set_nodelay(true).unwrap();
        RawClient {
            stream,
            host: e.address.clone(),
            token: e.token.clone(),
            buf: vec![0; 1 << 16],
        }
    }

    /// POSTs `body` as JSON to `path` and returns the response body, asserting a 2xx status.
    pub fn post(&mut self, path: &str, body: &Value) -> Vec<u8> {
        self.post_raw(path, "application/json", &serde_json::to_vec(body).unwrap())
    }

    /// POSTs `body` with `content_type` to `path` and returns the response body, asserting a 2xx
    /// status.
    pub fn post_raw(&mut self, path: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
        self.post_with(path, content_type, "", body)
    }

    /// [`RawClient::post_raw`] with more header lines (`extra`, each ending in `\r\n`).
    pub fn post_with(
        &mut self,
        path: &str,
        content_type: &str,
        extra: &str,
        body: &[u8],
    ) -> Vec<u8> {
        use std::io::{Read, Write};
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: {content_type}\r\n{extra}Content-Length: {}\r\n\r\n",
            self.host,
            self.token,
            body.len()
        );
        // Head and body in one write each time, the body not copied behind the head.
        let mut parts = [
            std::io::IoSlice::new(head.as_bytes()),
            std::io::IoSlice::new(body),
        ];
        let mut parts = &mut parts[..];
        while !parts.is_empty() {
            let n = self.stream.write_vectored(parts).unwrap();
            assert!(n > 0, "connection closed");
            std::io::IoSlice::advance_slices(&mut parts, n);
        }
        // The head is looked for only in what each read adds (a large answer takes many reads).
        let mut got = 0;
        let mut answer = None;
        loop {
            if got == self.buf.len() {
                self.buf.resize(got * 2, 0);
            }
            let n = self.stream.read(&mut self.buf[got..]).unwrap();
            assert!(n > 0, "connection closed");
            let searched = got.saturating_sub(3);
            got += n;
            if answer.is_none()
                && let Some(at) = self.buf[searched..got]
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
            {
                let end = searched + at;
                let head = std::str::from_utf8(&self.buf[..end]).unwrap();
                assert!(head.starts_with("HTTP/1.1 2"), "{path}: {head}");
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                answer = Some(end + 4..end + 4 + length);
            }
            if let Some(body) = answer.as_ref().filter(|b| got >= b.end) {
                return self.buf[body.clone()].to_vec();
            }
        }
    }
}

pub struct Server {
    pub child: Child,
    pub endpoint: Endpoint,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

pub async fn fresh_postgres(base: &str) -> String {
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(base)
        .await
        .unwrap();
    let name = format!("refit_bench_{}", refit_registry::db::new_id());
    sqlx::Executor::execute(
        &pool,
        sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
    )
    .await
    .unwrap();
    pool.close().await;
    format!("{}/{name}", base.rsplit_once('/').unwrap().0)
}

pub fn start(bin: &Path, database_url: Option<String>) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(bin);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("REFIT_LOG", "info")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(url) = database_url {
        cmd.args(["--database-url", &url]);
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let address = loop {
        let line = lines.next().expect("refit exited early").unwrap();
        if let Some(rest) = line.split("address=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    // The server's warnings and errors are passed on: a benchmark that fails says why.
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if line.contains(" WARN ") || line.contains(" ERROR ") {
                eprintln!("refit: {line}");
            }
        }
    });
    let token = std::fs::read_to_string(dir.path().join("data/admin-token"))
        .unwrap()
        .trim()
        .to_string();
    Server {
        child,
        endpoint: Endpoint { address, token },
        _dir: dir,
    }
}

pub fn rss_mb(pid: u32) -> f64 {
    status_mb(pid, "VmRSS:")
}

/// A memory line of `/proc/PID/status` in MB, e.g. `RssAnon:` (heap and stacks) or `RssFile:`
/// (mapped file pages, such as SQLite's memory-mapped database).
pub fn status_mb(pid: u32, key: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024.0
}

pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx].as_secs_f64() * 1000.0
}
