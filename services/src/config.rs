//! Configuration: command-line flags, then environment (`REFIT_…`, `DATABASE_URL`), then an
//! optional TOML file, then defaults — in that order of precedence. Unknown file keys are errors.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use refit_registry::db::DEFAULT_WAL_PREALLOCATION;
use serde::Deserialize;

/// Settings given on the command line or in the environment (clap fills both); absent ones fall
/// back to the file, then to defaults.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Overrides {
    /// Directory for the SQLite database, the first admin token and temporary files.
    #[arg(long, env = "REFIT_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Database URL: sqlite://FILE or postgres://USER@HOST:PORT/DB. Default: SQLite in the data dir.
    #[arg(long, env = "DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Address the API listens on.
    #[arg(long, env = "REFIT_LISTEN", global = true)]
    pub listen: Option<SocketAddr>,
    /// Largest JSON request body, compressed or decompressed (e.g. 16MiB).
    #[arg(long, env = "REFIT_MAX_BODY_SIZE", global = true, value_parser = parse_size)]
    pub max_body_size: Option<u64>,
    /// Largest artifact upload (e.g. 2GiB).
    #[arg(long, env = "REFIT_MAX_ARTIFACT_SIZE", global = true, value_parser = parse_size)]
    pub max_artifact_size: Option<u64>,
    /// Most pooled database connections.
    #[arg(long, env = "REFIT_DB_MAX_CONNECTIONS", global = true)]
    pub db_max_connections: Option<u32>,
    /// SQLite: write-ahead log written out when the store opens (e.g. 64MiB; 0: none).
    #[arg(long, env = "REFIT_SQLITE_WAL_PREALLOCATE", global = true, value_parser = parse_size)]
    pub sqlite_wal_preallocate: Option<u64>,
    /// Log filter, e.g. `info` or `info,refit_registry=debug`.
    #[arg(long, env = "REFIT_LOG", global = true)]
    pub log: Option<String>,
    /// Seconds a training's lease lasts without renewal: how soon a crashed process's training
    /// is marked failed and its spec freed.
    #[arg(long, env = "REFIT_TRAINING_LEASE_SECS", global = true)]
    pub training_lease_secs: Option<u64>,
    /// Seconds between automatic prunes of each dataset with retention_days (0: only on request).
    #[arg(long, env = "REFIT_RETENTION_INTERVAL_SECS", global = true)]
    pub retention_interval_secs: Option<u64>,
    /// Score batches a stream subscriber may fall behind before it is disconnected.
    #[arg(long, env = "REFIT_SUBSCRIBER_BUFFER", global = true)]
    pub subscriber_buffer: Option<usize>,
    /// ONNX Runtime's shared library (libonnxruntime.so from the onnxruntime wheel); default:
    /// ORT_DYLIB_PATH. Without it refit serves native models only.
    #[arg(long, env = "REFIT_ONNX_RUNTIME", global = true)]
    pub onnx_runtime: Option<PathBuf>,
}

/// The optional TOML file. Every key is optional; unknown keys are refused.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    listen: Option<SocketAddr>,
    max_body_size: Option<Size>,
    max_artifact_size: Option<Size>,
    db_max_connections: Option<u32>,
    sqlite_wal_preallocate: Option<Size>,
    log: Option<String>,
    training_lease_secs: Option<u64>,
    retention_interval_secs: Option<u64>,
    subscriber_buffer: Option<usize>,
    onnx_runtime: Option<PathBuf>,
}

/// A size in bytes, written as an integer or a string such as `"16MiB"`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
enum Size {
    Bytes(u64),
    Text(#[serde(deserialize_with = "size_from_str")] u64),
}

impl Size {
    fn bytes(self) -> u64 {
        match self {
            Size::Bytes(n) | Size::Text(n) => n,
        }
    }
}

fn size_from_str<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let s = String::deserialize(d)?;
    parse_size(&s).map_err(serde::de::Error::custom)
}

/// Parses `1048576`, `512KiB`, `16MiB`, `2GiB`, `10MB` (decimal units are powers of 1000).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{text}' is not a size such as 1048576, 512KiB or 16MiB"))?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" => 1_000,
        "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit '{other}' in '{text}': use B, KB, KiB, MB, MiB, GB or GiB"
            ));
        }
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("size '{text}' is too large"))
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the API listens (default `127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// Data directory (default `./refit-data`).
    pub data_dir: PathBuf,
    /// Database URL (default `sqlite://<data_dir>/refit.db`).
    pub database_url: String,
    /// Largest JSON body, compressed and decompressed (default 16 MiB).
    pub max_body_size: u64,
    /// Largest artifact upload (default 1 GiB).
    pub max_artifact_size: u64,
    /// Most pooled database connections (default 8).
    pub db_max_connections: u32,
    /// SQLite: bytes of write-ahead log written out when the store opens (default
    /// [`DEFAULT_WAL_PREALLOCATION`], about 64 MiB).
    pub sqlite_wal_preallocate: u64,
    /// Log filter (default `info`).
    pub log: String,
    /// Seconds a training lease lasts without renewal (default 60).
    pub training_lease_secs: u64,
    /// Seconds between automatic prunes of each dataset with retention (default 3600; 0: never).
    pub retention_interval_secs: u64,
    /// Score batches a stream subscriber may fall behind before it is disconnected (default 1024).
    pub subscriber_buffer: usize,
    /// ONNX Runtime's shared library; `None`: `ORT_DYLIB_PATH`, if set.
    pub onnx_runtime: Option<PathBuf>,
}

impl Config {
    /// Defaults for everything, for tests: data in `data_dir`, listening on an ephemeral port.
    pub fn for_tests(data_dir: &Path, database_url: Option<String>) -> Config {
        Config {
            listen: "127.0.0.1:0".parse().expect("valid address"),
            data_dir: data_dir.to_path_buf(),
            database_url: database_url
                .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("refit.db").display())),
            max_body_size: DEFAULT_MAX_BODY,
            max_artifact_size: DEFAULT_MAX_ARTIFACT,
            db_max_connections: 8,
            // Hundreds of test databases: a small log keeps the suite's disk traffic down.
            sqlite_wal_preallocate: 1 << 20,
            log: "warn".into(),
            training_lease_secs: 60,
            retention_interval_secs: 3600,
            subscriber_buffer: 1024,
            onnx_runtime: None,
        }
    }

    /// Resolves flags/environment over the file named by `file` (if any) over defaults.
    pub fn load(file: Option<&Path>, over: &Overrides) -> anyhow::Result<Config> {
        let from_file = match file {
            None => FileConfig::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .with_context(|| format!("invalid config file {}", path.display()))?
            }
        };
        let data_dir = over
            .data_dir
            .clone()
            .or(from_file.data_dir)
            .unwrap_or_else(|| PathBuf::from("refit-data"));
        let database_url = over
            .database_url
            .clone()
            .or(from_file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("refit.db").display()));
        let config = Config {
            listen: over
                .listen
                .or(from_file.listen)
                .unwrap_or_else(|| "127.0.0.1:8080".parse().expect("valid address")),
            database_url,
            max_body_size: over
                .max_body_size
                .or(from_file.max_body_size.map(Size::bytes))
                .unwrap_or(DEFAULT_MAX_BODY),
            max_artifact_size: over
                .max_artifact_size
                .or(from_file.max_artifact_size.map(Size::bytes))
                .unwrap_or(DEFAULT_MAX_ARTIFACT),
            db_max_connections: over
                .db_max_connections
                .or(from_file.db_max_connections)
                .unwrap_or(8),
            sqlite_wal_preallocate: over
                .sqlite_wal_preallocate
                .or(from_file.sqlite_wal_preallocate.map(Size::bytes))
                .unwrap_or(DEFAULT_WAL_PREALLOCATION),
            log: over
                .log
                .clone()
                .or(from_file.log)
                .unwrap_or_else(|| "info".into()),
            training_lease_secs: over
                .training_lease_secs
                .or(from_file.training_lease_secs)
                .unwrap_or(60),
            retention_interval_secs: over
                .retention_interval_secs
                .or(from_file.retention_interval_secs)
                .unwrap_or(3600),
            subscriber_buffer: over
                .subscriber_buffer
                .or(from_file.subscriber_buffer)
                .unwrap_or(1024),
            onnx_runtime: over.onnx_runtime.clone().or(from_file.onnx_runtime),
            data_dir,
        };
        if config.max_body_size < 1024 {
            bail!("max_body_size must be at least 1KiB");
        }
        if config.subscriber_buffer == 0 {
            bail!("subscriber_buffer must be at least 1");
        }
        if config.training_lease_secs == 0 {
            bail!("training_lease_secs must be at least 1");
        }
        if config.db_max_connections == 0 {
            bail!("db_max_connections must be at least 1");
        }
        Ok(config)
    }
}

const DEFAULT_MAX_BODY: u64 = 16 << 20;
const DEFAULT_MAX_ARTIFACT: u64 = 1 << 30;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("5PB").unwrap_err().contains("unknown size unit"));
    }

    /// Writes a config file unique to this process and test.
    fn write(name: &str, text: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("refit-config-{}-{name}.toml", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn flags_beat_file_beats_defaults() {
        let file = write(
            "precedence",
            "listen = \"127.0.0.1:9000\"\nmax_body_size = \"1MiB\"\ndata_dir = \"/tmp/from-file\"\n",
        );
        let over = Overrides {
            listen: Some("127.0.0.1:9100".parse().unwrap()),
            ..Default::default()
        };
        let c = Config::load(Some(&file), &over).unwrap();
        std::fs::remove_file(&file).unwrap();
        assert_eq!(c.listen.port(), 9100);
        assert_eq!(c.max_body_size, 1 << 20);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/from-file"));
        assert_eq!(c.database_url, "sqlite:///tmp/from-file/refit.db");
        assert_eq!(c.max_artifact_size, DEFAULT_MAX_ARTIFACT);

        let c = Config::load(None, &Overrides::default()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.retention_interval_secs, 3600);
        assert_eq!(c.data_dir, PathBuf::from("refit-data"));
    }

    #[test]
    fn the_sqlite_log_write_out_defaults_to_its_working_size_and_can_be_set_or_turned_off() {
        let c = Config::load(None, &Overrides::default()).unwrap();
        assert_eq!(c.sqlite_wal_preallocate, DEFAULT_WAL_PREALLOCATION);
        let file = write("wal", "sqlite_wal_preallocate = \"8MiB\"\n");
        let c = Config::load(Some(&file), &Overrides::default()).unwrap();
        assert_eq!(c.sqlite_wal_preallocate, 8 << 20);
        let off = Overrides {
            sqlite_wal_preallocate: Some(0),
            ..Default::default()
        };
        let c = Config::load(Some(&file), &off).unwrap();
        std::fs::remove_file(&file).unwrap();
        assert_eq!(c.sqlite_wal_preallocate, 0);
        let bad = write("wal-bad", "sqlite_wal_preallocate = \"lots\"\n");
        let err = format!(
            "{:#}",
            Config::load(Some(&bad), &Overrides::default()).unwrap_err()
        );
        std::fs::remove_file(&bad).unwrap();
        assert!(err.contains("sqlite_wal_preallocate"), "{err}");
        assert!(err.contains("lots"), "{err}");
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let file = write("unknown", "listen = \"127.0.0.1:9000\"\nlisten_port = 9\n");
        let err = format!(
            "{:#}",
            Config::load(Some(&file), &Overrides::default()).unwrap_err()
        );
        std::fs::remove_file(&file).unwrap();
        assert!(err.contains("unknown field `listen_port`"), "{err}");
    }
}
