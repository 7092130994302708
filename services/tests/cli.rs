//! The `refit` binary as a process: first start, configuration precedence, token commands,
//! migrations, and shutdown on SIGTERM.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

mod common;

use common::{Server, refit};

fn serve_cmd(dir: &Path) -> Command {
    let mut cmd = refit(dir);
    cmd.args(["serve", "--listen", "127.0.0.1:0"]);
    cmd
}

async fn whoami(server: &Server, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(server.url("/api/v1/whoami"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn first_start_creates_one_private_admin_token_and_sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(serve_cmd(dir.path()));
    let token_file = dir.path().join("refit-data/admin-token");
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_string();
    assert!(token.starts_with("refit_"), "{token}");
    assert!(
        server.stdout.contains(&token),
        "the token is printed once: {}",
        server.stdout
    );
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = std::fs::metadata(dir.path().join("refit-data"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);

    let me: serde_json::Value = whoami(&server, &token).await.json().await.unwrap();
    assert_eq!(me["name"], "admin");
    assert_eq!(me["role"], "admin");

    let (exit, log) = server.terminate();
    assert!(exit.success(), "exit status {exit:?}; log: {log}");
    assert!(log.contains("database closed"), "{log}");

    // A second start finds the token and neither prints nor replaces it.
    let server = Server::start(serve_cmd(dir.path()));
    assert!(!server.stdout.contains("refit_"), "{}", server.stdout);
    assert_eq!(std::fs::read_to_string(&token_file).unwrap().trim(), token);
    assert_eq!(whoami(&server, &token).await.status(), 200);
    server.terminate();
}

#[tokio::test]
async fn flags_beat_environment_beats_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("refit.toml"),
        "data_dir = \"from-file\"\nlisten = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    // The file's listen address (port 1) would fail; the environment overrides it, the flag
    // overrides the environment's data dir.
    let mut cmd = refit(dir.path());
    cmd.args(["--config", "refit.toml", "serve", "--data-dir", "from-flag"])
        .env("REFIT_LISTEN", "127.0.0.1:0")
        .env("REFIT_DATA_DIR", "from-env");
    let server = Server::start(cmd);
    assert!(dir.path().join("from-flag/admin-token").exists());
    assert!(!dir.path().join("from-env").exists());
    assert!(!dir.path().join("from-file").exists());
    assert_ne!(server.address, "127.0.0.1:1");
    server.terminate();

    // Without the flag, the environment's data dir wins over the file's.
    let mut cmd = refit(dir.path());
    cmd.args(["--config", "refit.toml", "serve"])
        .env("REFIT_LISTEN", "127.0.0.1:0")
        .env("REFIT_DATA_DIR", "from-env");
    let server = Server::start(cmd);
    assert!(dir.path().join("from-env/admin-token").exists());
    server.terminate();
}

#[test]
fn unknown_config_keys_and_bad_values_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "listen = \"127.0.0.1:0\"\ndatabse_url = \"x\"\n",
    )
    .unwrap();
    let out = refit(dir.path())
        .args(["--config", "bad.toml", "migrate"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown field `databse_url`"), "{err}");

    let out = refit(dir.path())
        .args(["migrate", "--database-url", "mysql://x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported database URL"));

    let out = refit(dir.path())
        .args(["serve", "--max-body-size", "lots"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "clap rejects the value before starting"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a size"));
}

#[tokio::test]
async fn token_commands_work_beside_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let out = refit(dir.path()).arg("migrate").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("up to date"));

    let server = Server::start(serve_cmd(dir.path()));
    let out = refit(dir.path())
        .args(["tokens", "create", "--name", "alice", "--role", "scientist"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secret = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(secret.starts_with("refit_"));
    let me: serde_json::Value = whoami(&server, &secret).await.json().await.unwrap();
    assert_eq!(me["role"], "scientist");

    let out = refit(dir.path()).args(["tokens", "list"]).output().unwrap();
    let listing = String::from_utf8(out.stdout).unwrap();
    assert!(
        listing.contains("alice") && listing.contains("scientist") && listing.contains("active"),
        "{listing}"
    );
    assert!(!listing.contains(&secret), "secrets are never listed");

    let out = refit(dir.path())
        .args(["tokens", "create", "--name", "bob", "--role", "root"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown role 'root'"));

    let out = refit(dir.path())
        .args(["tokens", "revoke", "alice"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The server trusts a validated token for TOKEN_CACHE_TTL; a revocation by another process
    // takes effect within it.
    let revoked = std::time::Instant::now();
    let limit = refit_registry::tokens::TOKEN_CACHE_TTL + Duration::from_secs(1);
    while whoami(&server, &secret).await.status() != 401 {
        assert!(
            revoked.elapsed() < limit,
            "the revoked token still works after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = refit(dir.path())
        .args(["tokens", "revoke", "alice"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already revoked"));
    server.terminate();
}
