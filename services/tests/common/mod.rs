//! What the process tests share: the `refit` binary run with a clean environment, and a running
//! `refit serve` read from its log.

#![allow(dead_code)] // each test file uses some of it

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_refit");
pub const AI4I: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/ai4i2020.csv");

/// `refit` in `dir` (data dir `dir/refit-data`, SQLite unless told) with a clean environment:
/// no `REFIT_*` or `DATABASE_URL` from the caller; logs at info.
pub fn refit(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir).env("REFIT_LOG", "info");
    for (key, _) in std::env::vars() {
        if key.starts_with("REFIT_") && key != "REFIT_LOG" || key == "DATABASE_URL" {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Reads `pipe` line by line on a thread, so the process never blocks on a full pipe.
fn lines(pipe: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A running `refit serve`, with what it printed so far.
pub struct Server {
    pub child: Child,
    pub address: String,
    /// Standard output: only the bootstrap message, printed before the address is logged.
    pub stdout: String,
    stderr: mpsc::Receiver<String>,
}

impl Server {
    /// Starts `cmd` (a `serve` command) and waits for it to log its address.
    pub fn start(mut cmd: Command) -> Server {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning refit");
        let stderr = lines(child.stderr.take().unwrap());
        let address = loop {
            let line = stderr
                .recv_timeout(Duration::from_secs(30))
                .expect("refit reports that it is serving within 30 s");
            if let Some(rest) = line.split("address=").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        let out = lines(child.stdout.take().unwrap());
        std::thread::sleep(Duration::from_millis(100));
        let stdout = out.try_iter().collect::<Vec<_>>().join("\n");
        Server {
            child,
            address,
            stdout,
            stderr,
        }
    }

    /// `refit serve` in `dir` on a free port, with `args` added.
    pub fn serve(dir: &Path, args: &[&str]) -> Server {
        let mut cmd = refit(dir);
        cmd.args(["serve", "--listen", "127.0.0.1:0"]).args(args);
        Server::start(cmd)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Sends SIGTERM and returns the exit status and the rest of the log.
    pub fn terminate(mut self) -> (ExitStatus, String) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        let rest: Vec<String> = self.stderr.try_iter().collect();
        (exit, rest.join("\n"))
    }

    /// SIGTERM, and a clean exit.
    pub fn stop(self) {
        let (status, log) = self.terminate();
        assert!(status.success(), "refit exited with {status}: {log}");
    }

    /// SIGKILL: no shutdown, no cleanup.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}
