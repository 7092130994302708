//! Snapshots: a named, exactly reproducible slice of a dataset's history, with a digest over every
//! row, verifiable by re-reading the rows.
//!
//! The digest is sha256 over:
//! - the header `refit-snapshot-v1\n`, the schema as JSON, and `\n`;
//! - then every row in (ts, machine_id) order (machine_id bytewise), the storage order of the
//!   history (time first, so that a fleet's readings are appended, not scattered): the
//!   machine_id's UTF-8 length as u32 little-endian and its bytes, ts as i64 little-endian (ms since the Unix epoch), the length of
//!   the features' canonical encoding as u32 little-endian and the encoding, then `0x00` for a row
//!   without labels or `0x01`, the labels encoding's length (u32 LE) and the encoding.
//!
//! Two snapshots with the same digest hold the same data under the same schema.

use std::collections::HashMap;
use std::pin::Pin;

use futures_util::Stream;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Row};
use utoipa::ToSchema;

pub(super) use super::history::Slice;
use super::history::{self, Cursor};
use super::record::{self, Value};
use super::{Dataset, Schema, load_dataset, load_schema};
use crate::audit::{self, Actor};
use crate::db::{Store, now_ms};
use crate::error::{Error, Result};
use crate::sql::Sql;

/// Which slice of a dataset to snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotRequest {
    /// Earliest event time included (RFC 3339, or ms since the Unix epoch); default: the beginning.
    #[serde(default, deserialize_with = "record::deserialize_time_opt")]
    #[schema(value_type = Option<String>)]
    pub from: Option<i64>,
    /// Event time the slice ends before (exclusive; RFC 3339 or ms); default: no end.
    #[serde(default, deserialize_with = "record::deserialize_time_opt")]
    #[schema(value_type = Option<String>)]
    pub to: Option<i64>,
    /// Only these machines; default: all.
    #[serde(default)]
    pub machines: Option<Vec<String>>,
    /// Schema version whose rows to include; default: the current one.
    #[serde(default)]
    pub schema_version: Option<i64>,
    /// Content as of this sequence number (what was stored by then); default: everything stored
    /// now. Two snapshots with the same value split one consistent state, e.g. train and holdout.
    #[serde(default)]
    pub as_of_seq: Option<i64>,
}

/// A snapshot's identity and content summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Snapshot {
    /// Snapshot id.
    pub id: i64,
    /// Dataset name.
    pub dataset: String,
    /// Schema version of every row.
    pub schema_version: i64,
    /// First event time included, ms since the Unix epoch.
    pub ts_from: i64,
    /// Event time the slice ends before (exclusive); `i64::MAX` for none.
    pub ts_to: i64,
    /// Only these machines, when restricted.
    pub machines: Option<Vec<String>>,
    /// Rows and labels stored after this sequence number are not part of the snapshot.
    pub max_seq: i64,
    /// Number of rows.
    pub row_count: i64,
    /// sha256 over the canonical encoding of every row (see the module documentation), hex.
    pub digest: String,
    /// ms since the Unix epoch.
    pub created_at: i64,
    /// Who made it.
    pub created_by: String,
    /// Whether retention must keep its rows.
    pub kept: bool,
}

/// One row of a snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotRow {
    /// The machine.
    pub machine_id: String,
    /// Event time, ms since the Unix epoch.
    pub ts: i64,
    /// Feature values in schema order.
    pub features: Vec<Value>,
    /// Label values in schema order, if known when the snapshot was made.
    pub labels: Option<Vec<Value>>,
}

/// The result of re-reading a snapshot's rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SnapshotVerification {
    /// The snapshot.
    pub snapshot_id: i64,
    /// Whether the rows still hash to the recorded digest.
    pub ok: bool,
    /// The recorded digest.
    pub expected_digest: String,
    /// The digest of the rows read now.
    pub actual_digest: String,
    /// The recorded row count.
    pub expected_rows: i64,
    /// The rows read now.
    pub actual_rows: i64,
}

/// Rows read per query while scanning a snapshot.
const SCAN_CHUNK: usize = 5000;

/// A stored row before decoding: (machine_id, ts, features, labels).
type RawRow = (String, i64, Vec<u8>, Option<Vec<u8>>);

/// How many stored readings `slice` holds now.
pub(super) async fn count_slice(conn: &mut AnyConnection, slice: &Slice) -> Result<i64> {
    history::count(conn, slice).await
}

/// Whether `slice` holds any stored reading now.
pub(super) async fn slice_has_rows(conn: &mut AnyConnection, slice: &Slice) -> Result<bool> {
    Ok(count_slice(conn, slice).await? > 0)
}

/// The next `SCAN_CHUNK` rows of `slice` (fewer only at its end) from `cursor`, in (ts,
/// machine_id) order, each with its labels if stored by the slice's sequence number.
async fn scan_chunk(
    conn: &mut AnyConnection,
    slice: &Slice,
    cursor: &mut Cursor,
) -> Result<Vec<RawRow>> {
    let rows = cursor.next_chunk(conn, SCAN_CHUNK).await?;
    let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
        return Ok(Vec::new());
    };
    let mut sql = Sql::new("SELECT machine_id, ts, labels FROM record_labels WHERE dataset_id = ");
    sql.bind(slice.dataset_id)
        .push(" AND ts >= ")
        .bind(first.ts)
        .push(" AND ts <= ")
        .bind(last.ts)
        .push(" AND seq <= ")
        .bind(slice.max_seq);
    let mut labels: HashMap<(String, i64), Vec<u8>> = HashMap::new();
    for r in sql.fetch_all(conn).await? {
        labels.insert(
            (r.try_get("machine_id")?, r.try_get("ts")?),
            r.try_get("labels")?,
        );
    }
    Ok(rows
        .into_iter()
        .map(|r| {
            let l = if labels.is_empty() {
                None
            } else {
                labels.remove(&(r.machine_id.clone(), r.ts))
            };
            (r.machine_id, r.ts, r.features, l)
        })
        .collect())
}

/// The digest of a slice, built row by row.
struct DigestBuilder {
    hash: Sha256,
    rows: i64,
}

impl DigestBuilder {
    fn new(schema: &Schema) -> Self {
        let mut hash = Sha256::new();
        hash.update(b"refit-snapshot-v1\n");
        hash.update(serde_json::to_vec(schema).expect("schemas serialize"));
        hash.update(b"\n");
        DigestBuilder { hash, rows: 0 }
    }

    fn add(&mut self, (machine, ts, features, labels): &RawRow) {
        self.hash.update((machine.len() as u32).to_le_bytes());
        self.hash.update(machine.as_bytes());
        self.hash.update(ts.to_le_bytes());
        self.hash.update((features.len() as u32).to_le_bytes());
        self.hash.update(features);
        match labels {
            None => self.hash.update([0u8]),
            Some(l) => {
                self.hash.update([1u8]);
                self.hash.update((l.len() as u32).to_le_bytes());
                self.hash.update(l);
            }
        }
        self.rows += 1;
    }

    fn finish(self) -> (String, i64) {
        (hex::encode(self.hash.finalize()), self.rows)
    }
}

/// Hashes every row of `slice`.
async fn digest_slice(
    conn: &mut AnyConnection,
    slice: &Slice,
    schema: &Schema,
) -> Result<(String, i64)> {
    let mut digest = DigestBuilder::new(schema);
    let mut cursor = Cursor::open(conn, slice.clone()).await?;
    loop {
        let rows = scan_chunk(conn, slice, &mut cursor).await?;
        for row in &rows {
            digest.add(row);
        }
        if rows.len() < SCAN_CHUNK {
            return Ok(digest.finish());
        }
    }
}

fn decode_row(schema: &Schema, (machine_id, ts, features, labels): RawRow) -> Result<SnapshotRow> {
    let corrupt = |e: String| {
        Error::Integrity(format!(
            "stored row ({machine_id}, {ts}) is unreadable: {e}"
        ))
    };
    let features = record::decode(&features, schema.features.len()).map_err(corrupt)?;
    let labels = labels
        .map(|l| record::decode(&l, schema.labels.len()))
        .transpose()
        .map_err(corrupt)?;
    Ok(SnapshotRow {
        machine_id,
        ts,
        features,
        labels,
    })
}

pub(super) fn snapshot_from_row(row: &AnyRow, dataset: &str) -> Result<Snapshot> {
    let machines: Option<String> = row.try_get("machines")?;
    Ok(Snapshot {
        id: row.try_get("id")?,
        dataset: dataset.to_string(),
        schema_version: row.try_get("schema_version")?,
        ts_from: row.try_get("ts_from")?,
        ts_to: row.try_get("ts_to")?,
        machines: machines
            .map(|m| serde_json::from_str(&m))
            .transpose()
            .map_err(|e| Error::Integrity(format!("stored machine list is unreadable: {e}")))?,
        max_seq: row.try_get("max_seq")?,
        row_count: row.try_get("row_count")?,
        digest: row.try_get("digest")?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
        kept: row.try_get::<i64, _>("kept")? != 0,
    })
}

impl Snapshot {
    pub(super) fn slice(&self, dataset_id: i64) -> Slice {
        Slice {
            dataset_id,
            schema_version: self.schema_version,
            ts_from: self.ts_from,
            ts_to: self.ts_to,
            machines: self.machines.clone(),
            max_seq: self.max_seq,
        }
    }
}

/// A stream of a snapshot's rows.
pub type SnapshotRows = Pin<Box<dyn Stream<Item = Result<SnapshotRow>> + Send>>;

async fn load_snapshot(conn: &mut AnyConnection, dataset: &Dataset, id: i64) -> Result<Snapshot> {
    let row = sqlx::query(
        "SELECT id, schema_version, ts_from, ts_to, machines, max_seq, row_count, digest, created_at, \
         created_by, kept FROM snapshots WHERE dataset_id = $1 AND id = $2",
    )
    .bind(dataset.id)
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| Error::not_found(format!("No snapshot {id} of dataset '{}'", dataset.name)))?;
    snapshot_from_row(&row, &dataset.name)
}

impl Store {
    /// Snapshots a slice of a dataset: the rows it holds now, and no row stored later, hashed.
    #[tracing::instrument(skip(self, actor))]
    pub async fn create_snapshot(
        &self,
        actor: &Actor,
        name: &str,
        request: &SnapshotRequest,
    ) -> Result<Snapshot> {
        let ts_from = request.from.unwrap_or(0);
        let ts_to = request.to.unwrap_or(i64::MAX);
        if ts_from >= ts_to {
            return Err(Error::invalid(format!(
                "the time range is empty: 'from' ({ts_from}) must be before 'to' ({ts_to})"
            )));
        }
        if let Some(machines) = &request.machines
            && (machines.is_empty() || machines.len() > 10_000)
        {
            return Err(Error::invalid("'machines' must list 1 to 10,000 machines"));
        }
        // Read the rows on a reader: the snapshot's bounds (max_seq) make the content exact
        // whatever is written meanwhile, so the writer is not held while hashing.
        let mut conn = self.read.acquire().await?;
        let dataset = load_dataset(&mut conn, name).await?;
        let schema_version = request.schema_version.unwrap_or(dataset.schema_version);
        let schema = load_schema(&mut conn, dataset.id, schema_version).await?;
        let newest: i64 = sqlx::query("SELECT next_seq - 1 AS max_seq FROM datasets WHERE id = $1")
            .bind(dataset.id)
            .fetch_one(&mut *conn)
            .await?
            .try_get("max_seq")?;
        let max_seq = match request.as_of_seq {
            Some(seq) if seq < 0 || seq > newest => {
                return Err(Error::invalid(format!(
                    "as_of_seq {seq} is outside 0-{newest}, the sequence numbers stored so far"
                )));
            }
            Some(seq) => seq,
            None => newest,
        };
        let mut machines = request.machines.clone();
        if let Some(m) = &mut machines {
            m.sort();
            m.dedup();
        }
        let slice = Slice {
            dataset_id: dataset.id,
            schema_version,
            ts_from,
            ts_to,
            machines,
            max_seq,
        };
        let (digest, row_count) = digest_slice(&mut conn, &slice, &schema).await?;
        drop(conn);
        let now = now_ms();
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        // Retention may have pruned rows of the slice while they were read. Pruning locks the
        // dataset's row too, so it either finished before this (and shows in the count) or waits
        // and then finds this snapshot kept.
        let retention: Option<i64> = sqlx::query(
            "UPDATE datasets SET next_seq = next_seq WHERE id = $1 RETURNING retention_days",
        )
        .bind(dataset.id)
        .fetch_one(&mut *tx)
        .await?
        .try_get("retention_days")?;
        if retention.is_some() && count_slice(&mut tx, &slice).await? != row_count {
            return Err(Error::InvalidState(
                "retention pruned rows of this slice while it was being read; take the snapshot again"
                    .into(),
            ));
        }
        let id: i64 = sqlx::query(
            "INSERT INTO snapshots (dataset_id, schema_version, ts_from, ts_to, machines, max_seq, row_count, \
             digest, created_at, created_by, kept) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 1) RETURNING id",
        )
        .bind(dataset.id)
        .bind(schema_version)
        .bind(ts_from)
        .bind(ts_to)
        .bind(slice.machines.as_ref().map(|m| serde_json::to_string(m).expect("strings serialize")))
        .bind(max_seq)
        .bind(row_count)
        .bind(&digest)
        .bind(now)
        .bind(&actor.name)
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        audit::record(
            &mut tx,
            actor,
            "datasets.snapshot",
            &format!("dataset:{name}"),
            Some(&format!("snapshot {id}: {row_count} rows, {digest}")),
        )
        .await?;
        let snapshot = load_snapshot(&mut tx, &dataset, id).await?;
        tx.commit().await?;
        Ok(snapshot)
    }

    /// One snapshot of a dataset.
    pub async fn get_snapshot(&self, name: &str, id: i64) -> Result<Snapshot> {
        let mut conn = self.read.acquire().await?;
        let dataset = load_dataset(&mut conn, name).await?;
        load_snapshot(&mut conn, &dataset, id).await
    }

    /// A dataset's snapshots, newest first.
    pub async fn list_snapshots(&self, name: &str, limit: i64) -> Result<Vec<Snapshot>> {
        let mut conn = self.read.acquire().await?;
        let dataset = load_dataset(&mut conn, name).await?;
        let rows = sqlx::query(
            "SELECT id, schema_version, ts_from, ts_to, machines, max_seq, row_count, digest, created_at, \
             created_by, kept FROM snapshots WHERE dataset_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(dataset.id)
        .bind(limit.clamp(1, 1000))
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(|r| snapshot_from_row(r, name)).collect()
    }

    /// Re-reads a snapshot's rows and recomputes its digest.
    pub async fn verify_snapshot(&self, name: &str, id: i64) -> Result<SnapshotVerification> {
        let mut conn = self.read.acquire().await?;
        let dataset = load_dataset(&mut conn, name).await?;
        let snapshot = load_snapshot(&mut conn, &dataset, id).await?;
        let schema = load_schema(&mut conn, dataset.id, snapshot.schema_version).await?;
        let (actual, rows) = digest_slice(&mut conn, &snapshot.slice(dataset.id), &schema).await?;
        Ok(SnapshotVerification {
            snapshot_id: id,
            ok: actual == snapshot.digest && rows == snapshot.row_count,
            expected_digest: snapshot.digest,
            actual_digest: actual,
            expected_rows: snapshot.row_count,
            actual_rows: rows,
        })
    }

    /// A snapshot, its schema, and a stream of its rows in (ts, machine_id) order, read in chunks
    /// so that any size streams in bounded memory.
    pub async fn snapshot_rows(
        &self,
        name: &str,
        id: i64,
    ) -> Result<(Snapshot, Schema, SnapshotRows)> {
        let mut conn = self.read.acquire().await?;
        let dataset = load_dataset(&mut conn, name).await?;
        let snapshot = load_snapshot(&mut conn, &dataset, id).await?;
        let schema = load_schema(&mut conn, dataset.id, snapshot.schema_version).await?;
        let slice = snapshot.slice(dataset.id);
        let cursor = Cursor::open(&mut conn, slice.clone()).await?;
        drop(conn);
        let state = Scan {
            pool: self.read.clone(),
            slice,
            cursor,
            schema: schema.clone(),
            buffered: Vec::new().into_iter(),
            done: false,
        };
        let stream = futures_util::stream::try_unfold(state, |mut s| async move {
            loop {
                if let Some(row) = s.buffered.next() {
                    return Ok(Some((decode_row(&s.schema, row)?, s)));
                }
                if s.done {
                    return Ok(None);
                }
                let mut conn = s.pool.acquire().await?;
                let rows = scan_chunk(&mut conn, &s.slice, &mut s.cursor).await?;
                s.done = rows.len() < SCAN_CHUNK;
                s.buffered = rows.into_iter();
            }
        });
        Ok((snapshot, schema, Box::pin(stream)))
    }

    /// The event times of a dataset's rows of `schema_version` in `[from, to)` stored by
    /// `max_seq`, ascending (to split a window by time before snapshotting its parts).
    pub async fn record_times(
        &self,
        name: &str,
        schema_version: i64,
        from: i64,
        to: i64,
        max_seq: i64,
    ) -> Result<Vec<i64>> {
        let mut conn = self.read.acquire().await?;
        let dataset = load_dataset(&mut conn, name).await?;
        let slice = Slice {
            dataset_id: dataset.id,
            schema_version,
            ts_from: from,
            ts_to: to,
            machines: None,
            max_seq,
        };
        history::times(&mut conn, &slice).await
    }

    /// The rows of `name` under its current schema with event times in `[from, to)`, in
    /// (ts, machine_id) order, at most `max_rows` (read-only: no snapshot is taken). Returns the
    /// schema, the rows, and whether more rows were left out.
    pub async fn read_rows(
        &self,
        name: &str,
        from: i64,
        to: i64,
        max_rows: usize,
    ) -> Result<(Schema, Vec<SnapshotRow>, bool)> {
        let mut conn = self.read.acquire().await?;
        let dataset = load_dataset(&mut conn, name).await?;
        let schema = load_schema(&mut conn, dataset.id, dataset.schema_version).await?;
        let slice = Slice {
            dataset_id: dataset.id,
            schema_version: dataset.schema_version,
            ts_from: from,
            ts_to: to,
            machines: None,
            max_seq: i64::MAX,
        };
        let mut rows = Vec::new();
        let mut cursor = Cursor::open(&mut conn, slice.clone()).await?;
        loop {
            let chunk = scan_chunk(&mut conn, &slice, &mut cursor).await?;
            let done = chunk.len() < SCAN_CHUNK;
            for raw in chunk {
                if rows.len() == max_rows {
                    return Ok((schema, rows, true));
                }
                rows.push(decode_row(&schema, raw)?);
            }
            if done {
                return Ok((schema, rows, false));
            }
        }
    }

    /// A snapshot with all its rows in memory (for training).
    pub async fn load_snapshot(
        &self,
        name: &str,
        id: i64,
    ) -> Result<(Snapshot, Schema, Vec<SnapshotRow>)> {
        use futures_util::TryStreamExt;
        let (snapshot, schema, rows) = self.snapshot_rows(name, id).await?;
        let rows: Vec<SnapshotRow> = rows.try_collect().await?;
        Ok((snapshot, schema, rows))
    }
}

struct Scan {
    pool: AnyPool,
    slice: Slice,
    cursor: Cursor,
    schema: Schema,
    buffered: std::vec::IntoIter<RawRow>,
    done: bool,
}
