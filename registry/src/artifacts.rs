//! Artifacts: files under the artifact root (e.g. `3/<run>/artifacts/model/model.pkl`), stored in
//! the database as content-addressed blobs (sha256) in 1 MiB chunks, verified on every read.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures_util::Stream;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{AnyPool, Row};
use tokio::io::{AsyncRead, AsyncReadExt};
use utoipa::ToSchema;

use crate::audit::{self, Actor};
use crate::db::{Store, now_ms};
use crate::error::{Error, Result};
use crate::validate;

/// Size of the chunks blobs are stored in; bounds the memory a transfer needs.
pub const CHUNK_SIZE: usize = 1 << 20;

/// A stored file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct StoredArtifact {
    /// Path under the artifact root.
    pub path: String,
    /// sha256 of the content, hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: i64,
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ArtifactEntry {
    /// Path relative to the listed directory's root (as MLflow lists: relative to the run's root).
    pub path: String,
    /// Whether the entry is a directory.
    pub is_dir: bool,
    /// Size in bytes, for files.
    pub file_size: Option<i64>,
}

/// A stream of an artifact's bytes, each chunk checked against its digest before it is yielded.
pub type ArtifactStream = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;

/// Joins a validated relative path onto a root such as `3/<run>/artifacts`.
pub fn join(root: &str, relative: &str) -> Result<String> {
    let relative = validate::artifact_path(relative)?;
    Ok(format!("{}/{relative}", root.trim_end_matches('/')))
}

async fn read_full(
    source: &mut (impl AsyncRead + Unpin),
    buf: &mut [u8],
) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = source.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

impl Store {
    /// Stores the bytes of `source` at `path`, replacing what was there. The content must hash to
    /// `sha256` (hex); otherwise nothing is stored. Identical content is stored once.
    #[tracing::instrument(skip(self, actor, source))]
    pub async fn put_artifact(
        &self,
        actor: &Actor,
        path: &str,
        mut source: impl AsyncRead + Unpin + Send,
        sha256: &str,
    ) -> Result<StoredArtifact> {
        let sha256 = sha256.to_ascii_lowercase();
        let now = now_ms();
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        // Claim the digest. If its bytes are stored already, or another writer stores them first
        // (this insert waits for that writer's transaction), nothing is written but the caller's
        // bytes are still hashed: naming a stored digest must not bind `path` to its content.
        let claimed = sqlx::query(
            "INSERT INTO blobs (sha256, size, chunk_count, created_at) VALUES ($1, 0, 0, $2) \
             ON CONFLICT (sha256) DO NOTHING",
        )
        .bind(&sha256)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let mut whole = Sha256::new();
        let mut buf = vec![0u8; CHUNK_SIZE];
        let (mut size, mut seq) = (0i64, 0i64);
        loop {
            let n = read_full(&mut source, &mut buf).await?;
            if n == 0 {
                break;
            }
            let chunk = &buf[..n];
            whole.update(chunk);
            if claimed {
                sqlx::query("INSERT INTO blob_chunks (sha256, seq, chunk_sha256, data) VALUES ($1, $2, $3, $4)")
                    .bind(&sha256)
                    .bind(seq)
                    .bind(hex::encode(Sha256::digest(chunk)))
                    .bind(chunk.to_vec())
                    .execute(&mut *tx)
                    .await?;
            }
            size += n as i64;
            seq += 1;
        }
        let actual = hex::encode(whole.finalize());
        if actual != sha256 {
            return Err(Error::invalid(format!(
                "content sha256 is {actual}, not the declared {sha256}"
            )));
        }
        if claimed {
            sqlx::query("UPDATE blobs SET size = $1, chunk_count = $2 WHERE sha256 = $3")
                .bind(size)
                .bind(seq)
                .bind(&sha256)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO artifacts (path, sha256, size, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (path) DO UPDATE SET sha256 = excluded.sha256, size = excluded.size, \
             created_at = excluded.created_at",
        )
        .bind(path)
        .bind(&sha256)
        .bind(size)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        audit::record(
            &mut tx,
            actor,
            "artifacts.put",
            &format!("artifact:{path}"),
            Some(&sha256),
        )
        .await?;
        tx.commit().await?;
        Ok(StoredArtifact {
            path: path.to_string(),
            sha256,
            size,
        })
    }

    /// Stores in-memory bytes at `path` (for refit's own model files).
    pub async fn put_artifact_bytes(
        &self,
        actor: &Actor,
        path: &str,
        bytes: &[u8],
    ) -> Result<StoredArtifact> {
        let sha = hex::encode(Sha256::digest(bytes));
        self.put_artifact(actor, path, bytes, &sha).await
    }

    /// The file at `path`, if there is one.
    pub async fn artifact_info(&self, path: &str) -> Result<Option<StoredArtifact>> {
        sqlx::query("SELECT path, sha256, size FROM artifacts WHERE path = $1")
            .bind(path)
            .fetch_optional(&self.read)
            .await?
            .map(|r| {
                Ok(StoredArtifact {
                    path: r.try_get("path")?,
                    sha256: r.try_get("sha256")?,
                    size: r.try_get("size")?,
                })
            })
            .transpose()
    }

    /// The direct children of directory `dir` (files and subdirectories), by name. Paths in the
    /// result are relative to `root`, which must be a prefix of `dir` (or equal to it).
    pub async fn list_artifacts(&self, root: &str, dir: &str) -> Result<Vec<ArtifactEntry>> {
        let dir = dir.trim_end_matches('/');
        let root = root.trim_end_matches('/');
        let lower = format!("{dir}/");
        // '0' is the byte after '/': every path under `dir/` sorts in [lower, upper).
        let upper = format!("{dir}0");
        let rows = sqlx::query(
            "SELECT path, size FROM artifacts WHERE path >= $1 AND path < $2 ORDER BY path",
        )
        .bind(&lower)
        .bind(&upper)
        .fetch_all(&self.read)
        .await?;
        let mut children: BTreeMap<String, Option<i64>> = BTreeMap::new();
        for row in rows {
            let path: String = row.try_get("path")?;
            let rest = &path[lower.len()..];
            match rest.split_once('/') {
                Some((child, _)) => {
                    children.insert(child.to_string(), None);
                }
                None => {
                    children.insert(rest.to_string(), Some(row.try_get("size")?));
                }
            }
        }
        let base = dir
            .strip_prefix(root)
            .unwrap_or(dir)
            .trim_start_matches('/');
        Ok(children
            .into_iter()
            .map(|(name, size)| ArtifactEntry {
                path: if base.is_empty() {
                    name
                } else {
                    format!("{base}/{name}")
                },
                is_dir: size.is_none(),
                file_size: size,
            })
            .collect())
    }

    /// The file at `path` and a stream of its bytes. Each chunk is checked against its own
    /// sha256 before it is yielded and the whole against the file's, so corrupt storage ends the
    /// stream with an error instead of delivering wrong bytes.
    pub async fn open_artifact(&self, path: &str) -> Result<(StoredArtifact, ArtifactStream)> {
        let info = self
            .artifact_info(path)
            .await?
            .ok_or_else(|| Error::not_found(format!("No artifact at '{path}'")))?;
        let chunk_count: i64 = sqlx::query("SELECT chunk_count FROM blobs WHERE sha256 = $1")
            .bind(&info.sha256)
            .fetch_one(&self.read)
            .await?
            .try_get("chunk_count")?;
        let state = ChunkReader {
            pool: self.read.clone(),
            sha256: info.sha256.clone(),
            next: 0,
            count: chunk_count,
            whole: Sha256::new(),
        };
        let stream = futures_util::stream::try_unfold(state, |mut s| async move {
            if s.next >= s.count {
                return Ok(None);
            }
            let chunk = s.read_chunk().await?;
            s.next += 1;
            if s.next == s.count {
                let actual = hex::encode(s.whole.clone().finalize());
                if actual != s.sha256 {
                    return Err(Error::Integrity(format!(
                        "blob {} reads back as {actual}",
                        s.sha256
                    )));
                }
            }
            Ok(Some((chunk, s)))
        });
        Ok((info, Box::pin(stream)))
    }
}

struct ChunkReader {
    pool: AnyPool,
    sha256: String,
    next: i64,
    count: i64,
    whole: Sha256,
}

impl ChunkReader {
    async fn read_chunk(&mut self) -> Result<Bytes> {
        let row = sqlx::query(
            "SELECT chunk_sha256, data FROM blob_chunks WHERE sha256 = $1 AND seq = $2",
        )
        .bind(&self.sha256)
        .bind(self.next)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| {
            Error::Integrity(format!(
                "blob {} is missing chunk {}",
                self.sha256, self.next
            ))
        })?;
        let expected: String = row.try_get("chunk_sha256")?;
        let data: Vec<u8> = row.try_get("data")?;
        if hex::encode(Sha256::digest(&data)) != expected {
            return Err(Error::Integrity(format!(
                "blob {} chunk {} is corrupt",
                self.sha256, self.next
            )));
        }
        self.whole.update(&data);
        Ok(Bytes::from(data))
    }
}
