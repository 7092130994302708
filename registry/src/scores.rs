//! The score log: every score the stream scorer made, per dataset in increasing positions. A
//! record's scores are appended in the transaction that stores the record (see
//! [`Store::ingest_records_scored`]), so "which model scored this record?" always has an answer,
//! and a subscriber can resume from a position.
//!
//! The log is stored in blocks (`score_blocks`, migration 0010): one row per model version per
//! ingest, its scores in a blob (`encode_block` has the layout). A record's scores are found
//! through its sequence number, which the blocks of the ingest that stored it cover; retention
//! rewrites a block that keeps only some of its scores.

use std::collections::HashSet;
use std::sync::Arc;

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Connection, Row};
use utoipa::ToSchema;

use crate::datasets::{Reading, Readings};
use crate::db::{Backend, Store, table_exists};
use crate::error::{Error, Result};
use crate::sql::{Sql, Tx};

/// Most scores read in one page.
pub const MAX_PAGE: i64 = 10_000;

/// Which alias made a score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ScoreRole {
    /// The champion: its scores go to the stream's consumers.
    Champion,
    /// The challenger (shadow mode): stored, never sent to consumers.
    Challenger,
}

impl ScoreRole {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ScoreRole::Champion => "champion",
            ScoreRole::Challenger => "challenger",
        }
    }

    fn parse(s: &str) -> Result<ScoreRole> {
        match s {
            "champion" => Ok(ScoreRole::Champion),
            "challenger" => Ok(ScoreRole::Challenger),
            other => Err(Error::Integrity(format!("unknown score role '{other}'"))),
        }
    }
}

/// One model version's scores of the records an ingest stored, appended to the log as one
/// block: the records' keys are shared by every block of the ingest, the predictions are the
/// model's raw outputs (a number, or a class index into `classes`).
#[derive(Debug, Clone)]
pub struct ScoreBlock {
    /// Registered model.
    pub model: String,
    /// The version that scored.
    pub version: i64,
    /// Champion or challenger.
    pub role: ScoreRole,
    /// When the records were received, ms since the Unix epoch.
    pub received_at: i64,
    /// The records scored, in order.
    pub records: Arc<Readings>,
    /// Class labels (classifiers): `values` are indices into them, and each record has one
    /// probability per class in `probabilities`. `None` for regression.
    pub classes: Option<Arc<[String]>>,
    /// One value per record: the predicted number, or the predicted class's index.
    pub values: Vec<f64>,
    /// Classifiers: `classes.len()` probabilities per record, record after record.
    pub probabilities: Option<Vec<f64>>,
}

impl ScoreBlock {
    /// Probabilities per score: one per class when there are any.
    fn k(&self) -> usize {
        match (&self.classes, &self.probabilities) {
            (Some(c), Some(_)) => c.len(),
            _ => 0,
        }
    }

    /// The block's scores as stored, the first at `first_position`.
    fn stored(&self, first_position: i64) -> impl Iterator<Item = StoredScore> + '_ {
        let k = self.k();
        let shared = Shared {
            model: &self.model,
            version: self.version,
            role: self.role,
            received_at: self.received_at,
            classes: self.classes.as_deref(),
        };
        self.records.iter().enumerate().map(move |(i, r)| {
            let probabilities = (k > 0)
                .then(|| self.probabilities.as_ref().map(|p| &p[i * k..(i + 1) * k]))
                .flatten();
            shared.score(
                first_position + i as i64,
                r.machine_id,
                r.ts,
                self.values[i],
                probabilities,
            )
        })
    }
}

/// What the scores of a block share, borrowed from a block being appended or one read back.
#[derive(Clone, Copy)]
struct Shared<'a> {
    model: &'a str,
    version: i64,
    role: ScoreRole,
    received_at: i64,
    classes: Option<&'a [String]>,
}

impl Shared<'_> {
    /// A score of the block: its prediction and probabilities as JSON from the raw values.
    fn score(
        &self,
        position: i64,
        machine_id: &str,
        ts: i64,
        value: f64,
        probabilities: Option<&[f64]>,
    ) -> StoredScore {
        StoredScore {
            position,
            machine_id: machine_id.to_string(),
            ts,
            model: self.model.to_string(),
            version: self.version,
            role: self.role,
            prediction: prediction_value(self.classes, value),
            probabilities: probabilities_value(self.classes, probabilities),
            received_at: self.received_at,
        }
    }
}

/// A block as appended to the log: its scores start at `first_position`. Scores are made from it
/// when they are read ([`AppendedBlock::scores`]) or written as JSON ([`AppendedBlock::views`]),
/// not for every score appended.
#[derive(Debug, Clone)]
pub struct AppendedBlock {
    /// The position of the block's first score.
    pub first_position: i64,
    /// The scores.
    pub block: ScoreBlock,
    /// The classes' indices in label order: the order of a score's probabilities in JSON.
    label_order: Vec<usize>,
}

impl AppendedBlock {
    fn new(first_position: i64, block: ScoreBlock) -> AppendedBlock {
        // As a JSON object (a map by label) has them: sorted, the last of equal labels kept.
        let by_label: std::collections::BTreeMap<&str, usize> = block
            .classes
            .iter()
            .flat_map(|c| c.iter().enumerate().map(|(i, c)| (c.as_str(), i)))
            .collect();
        let label_order = by_label.into_values().collect();
        AppendedBlock {
            first_position,
            block,
            label_order,
        }
    }

    /// Scores in the block.
    pub fn len(&self) -> usize {
        self.block.records.len()
    }

    /// Whether the block holds no scores.
    pub fn is_empty(&self) -> bool {
        self.block.records.is_empty()
    }

    /// The block's scores.
    pub fn scores(&self) -> impl Iterator<Item = StoredScore> + '_ {
        self.block.stored(self.first_position)
    }

    /// Writes the block's scores as JSON objects separated by commas, each exactly as its
    /// [`StoredScore`] serializes. Written straight into `out`: a batch's answer holds
    /// thousands of scores, and the parts the block's scores share (model, version, role, time
    /// received) are written out once.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let b = &self.block;
        let k = b.k();
        let classes = b.classes.as_deref();
        let mut shared = br#","model":"#.to_vec();
        write_str(&mut shared, &b.model);
        shared.extend_from_slice(br#","version":"#);
        write_i64(&mut shared, b.version);
        shared.extend_from_slice(br#","role":""#);
        shared.extend_from_slice(b.role.as_str().as_bytes());
        shared.extend_from_slice(br#"","prediction":"#);
        let mut received = br#","received_at":"#.to_vec();
        write_i64(&mut received, b.received_at);
        received.push(b'}');
        let probabilities = b.probabilities.as_deref().filter(|_| k > 0);
        // Each class label as JSON, escaped once for the block instead of once per score.
        let labels: Vec<Vec<u8>> = classes
            .unwrap_or_default()
            .iter()
            .map(|label| {
                let mut json = Vec::with_capacity(label.len() + 2);
                write_str(&mut json, label);
                json
            })
            .collect();
        for (i, r) in b.records.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(br#"{"position":"#);
            write_i64(out, self.first_position + i as i64);
            out.extend_from_slice(br#","machine_id":"#);
            write_str(out, r.machine_id);
            out.extend_from_slice(br#","ts":"#);
            write_i64(out, r.ts);
            out.extend_from_slice(&shared);
            match classes {
                None => write_number(out, b.values[i]),
                Some(classes) => match class_index(classes, b.values[i]) {
                    Some(c) => out.extend_from_slice(&labels[c]),
                    None => out.extend_from_slice(b"null"),
                },
            }
            if let Some(p) = probabilities {
                let row = &p[i * k..(i + 1) * k];
                out.extend_from_slice(br#","probabilities":{"#);
                for (n, &c) in self.label_order.iter().enumerate() {
                    if n > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(&labels[c]);
                    out.push(b':');
                    write_number(out, row[c]);
                }
                out.push(b'}');
            }
            out.extend_from_slice(&received);
        }
    }
}

/// A string as JSON, escaped as serde_json escapes it.
fn write_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(out, s).expect("writing to a Vec cannot fail");
}

fn write_i64(out: &mut Vec<u8>, n: i64) {
    serde_json::to_writer(out, &n).expect("writing to a Vec cannot fail");
}

/// A number as [`number_value`] writes it: NaN and infinities as `null`.
fn write_number(out: &mut Vec<u8>, x: f64) {
    if x.is_finite() {
        serde_json::to_writer(out, &x).expect("writing to a Vec cannot fail");
    } else {
        out.extend_from_slice(b"null");
    }
}

/// The label of class `value`, if it is one.
fn class_of(classes: &[String], value: f64) -> Option<&str> {
    class_index(classes, value).map(|c| classes[c].as_str())
}

/// The index of class `value` in `classes`, if it is one.
fn class_index(classes: &[String], value: f64) -> Option<usize> {
    (value >= 0.0 && (value as usize) < classes.len()).then_some(value as usize)
}

/// A prediction as JSON: the number (regression), or the label of class `value` (classifiers);
/// `null` for what has no JSON form (NaN, infinities, no such class).
pub fn prediction_value(classes: Option<&[String]>, value: f64) -> serde_json::Value {
    match classes {
        None => number_value(value),
        Some(classes) => class_of(classes, value).map_or(serde_json::Value::Null, |c| {
            serde_json::Value::String(c.to_string())
        }),
    }
}

/// Class probabilities as a JSON object by class label.
fn probabilities_value(
    classes: Option<&[String]>,
    row: Option<&[f64]>,
) -> Option<serde_json::Map<String, serde_json::Value>> {
    Some(
        classes?
            .iter()
            .zip(row?)
            .map(|(c, &p)| (c.clone(), number_value(p)))
            .collect(),
    )
}

/// A number as JSON; NaN and infinities (not representable) as `null`.
pub fn number_value(x: f64) -> serde_json::Value {
    serde_json::Number::from_f64(x).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// A score as stored in the log.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct StoredScore {
    /// Position in the dataset's score log (increasing in commit order; not contiguous for
    /// consumers, as challenger scores take positions too).
    pub position: i64,
    /// The record's machine.
    pub machine_id: String,
    /// The record's event time, ms since the Unix epoch.
    pub ts: i64,
    /// Registered model.
    pub model: String,
    /// The version that scored.
    pub version: i64,
    /// `champion` or `challenger`.
    pub role: ScoreRole,
    /// The predicted number (regression) or class label.
    #[schema(value_type = Object)]
    pub prediction: serde_json::Value,
    /// Class probabilities by label (classifiers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub probabilities: Option<serde_json::Map<String, serde_json::Value>>,
    /// When the record was received, ms since the Unix epoch.
    pub received_at: i64,
}

/// The columns of a stored block that [`decode_block`] reads.
const BLOCK_COLUMNS: &str = "first_position, model, version, role, received_at, classes, scores";

/// Format of the `scores` blob written by [`encode_block`].
const FORMAT: u8 = 1;

/// A block's scores in the log's blob (little-endian): the format byte, the number `k` of
/// probabilities per score (u32; 0 for regression), then per score its position's offset from
/// the block's first (u32), the record's time (i64), its machine id (u32 length, UTF-8 bytes),
/// the value (f64: the number, or the class index) and its `k` probabilities (f64 each).
/// Offsets are kept, not implied, so that retention can drop some of a block's scores.
fn encode_block(block: &ScoreBlock) -> Vec<u8> {
    let k = block.k();
    let mut out = Vec::with_capacity(5 + block.records.len() * (32 + 8 * k));
    out.push(FORMAT);
    out.extend_from_slice(&(k as u32).to_le_bytes());
    for (i, r) in block.records.iter().enumerate() {
        out.extend_from_slice(&(i as u32).to_le_bytes());
        out.extend_from_slice(&r.ts.to_le_bytes());
        out.extend_from_slice(&(r.machine_id.len() as u32).to_le_bytes());
        out.extend_from_slice(r.machine_id.as_bytes());
        out.extend_from_slice(&block.values[i].to_le_bytes());
        if let Some(p) = block.probabilities.as_ref().filter(|_| k > 0) {
            for x in &p[i * k..(i + 1) * k] {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
    }
    out
}

/// What a stored block's scores share.
struct BlockHead {
    first_position: i64,
    model: String,
    version: i64,
    role: ScoreRole,
    received_at: i64,
    classes: Option<Vec<String>>,
}

/// One score in a block's blob.
struct Entry<'a> {
    /// The entry's bytes, as [`encode_block`] wrote them.
    bytes: &'a [u8],
    offset: u32,
    ts: i64,
    machine_id: &'a str,
    value: f64,
    /// `k` little-endian f64.
    probabilities: &'a [u8],
}

/// The number of probabilities per score and the scores in a block's blob, in order; checks
/// the layout as it goes. Probabilities are one per class (of `classes`) or none.
fn entries<'a>(blob: &'a [u8], classes: Option<&[String]>) -> Result<(usize, Vec<Entry<'a>>)> {
    let corrupt = || Error::Integrity("a stored score block is corrupt".into());
    let u32_of = |b: &[u8]| u32::from_le_bytes(b.try_into().expect("4 bytes"));
    let k = match (blob.first(), blob.get(1..5).map(u32_of)) {
        (Some(&FORMAT), Some(k)) => k as usize,
        _ => return Err(corrupt()),
    };
    if k > 0 && classes.map_or(0, <[String]>::len) != k {
        return Err(corrupt());
    }
    let mut out = Vec::new();
    let mut at = 5;
    while at < blob.len() {
        let start = at;
        let mut take = |n: usize| -> Result<&[u8]> {
            let bytes = blob.get(at..at + n).ok_or_else(corrupt)?;
            at += n;
            Ok(bytes)
        };
        let offset = u32_of(take(4)?);
        let ts = i64::from_le_bytes(take(8)?.try_into().expect("8 bytes"));
        let len = u32_of(take(4)?) as usize;
        let machine_id = std::str::from_utf8(take(len)?).map_err(|_| corrupt())?;
        let value = f64::from_le_bytes(take(8)?.try_into().expect("8 bytes"));
        let probabilities = take(8 * k)?;
        out.push(Entry {
            bytes: &blob[start..at],
            offset,
            ts,
            machine_id,
            value,
            probabilities,
        });
    }
    Ok((k, out))
}

/// Reads a block's blob back into scores (the inverse of [`encode_block`]).
fn decode_block(head: &BlockHead, blob: &[u8]) -> Result<Vec<StoredScore>> {
    let classes = head.classes.as_deref();
    let (k, entries) = entries(blob, classes)?;
    let shared = Shared {
        model: &head.model,
        version: head.version,
        role: head.role,
        received_at: head.received_at,
        classes,
    };
    let mut row = vec![0.0; k];
    Ok(entries
        .into_iter()
        .map(|e| {
            for (p, b) in row.iter_mut().zip(e.probabilities.chunks_exact(8)) {
                *p = f64::from_le_bytes(b.try_into().expect("8 bytes"));
            }
            shared.score(
                head.first_position + i64::from(e.offset),
                e.machine_id,
                e.ts,
                e.value,
                (k > 0).then_some(&row[..]),
            )
        })
        .collect())
}

fn block_from_row(row: &AnyRow) -> Result<Vec<StoredScore>> {
    decode_block(&head_from_row(row)?, &row.try_get::<Vec<u8>, _>("scores")?)
}

fn head_from_row(row: &AnyRow) -> Result<BlockHead> {
    let classes: Option<String> = row.try_get("classes")?;
    Ok(BlockHead {
        first_position: row.try_get("first_position")?,
        model: row.try_get("model")?,
        version: row.try_get("version")?,
        role: ScoreRole::parse(&row.try_get::<String, _>("role")?)?,
        received_at: row.try_get("received_at")?,
        classes: classes
            .map(|c| serde_json::from_str(&c))
            .transpose()
            .map_err(|e| Error::Integrity(format!("stored score classes: {e}")))?,
    })
}

/// Appends the blocks an ingest made of the records it stored, in order, inside the caller's
/// transaction (which holds the dataset's row lock, so positions are taken in commit order).
/// `seqs` are the sequence numbers the ingest reserved for its records: a record's scores are
/// found through its sequence number. Returns the blocks with their positions.
pub(crate) async fn append_scores(
    tx: &mut crate::sql::Tx<'_>,
    dataset_id: i64,
    seqs: (i64, i64),
    blocks: Vec<ScoreBlock>,
) -> Result<Vec<AppendedBlock>> {
    let n: usize = blocks.iter().map(|b| b.records.len()).sum();
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut position = tx
        .reserve("next_score_position", dataset_id, n as i64)
        .await?;
    let mut appended = Vec::with_capacity(blocks.len());
    for block in blocks.into_iter().filter(|b| !b.records.is_empty()) {
        insert_block(tx, dataset_id, position, seqs, &block).await?;
        let count = block.records.len() as i64;
        appended.push(AppendedBlock::new(position, block));
        position += count;
    }
    Ok(appended)
}

/// A row of `score_blocks`.
struct BlockRow<'a> {
    dataset_id: i64,
    first_position: i64,
    last_position: i64,
    count: usize,
    /// The sequence numbers reserved by the ingest that stored the records scored.
    seqs: (i64, i64),
    /// The least and greatest event time of the records scored.
    ts: (i64, i64),
    model: &'a str,
    version: i64,
    role: ScoreRole,
    received_at: i64,
    classes: Option<String>,
    scores: Vec<u8>,
}

impl BlockRow<'_> {
    fn insert(self) -> Sql {
        let mut sql = Sql::new(
            "INSERT INTO score_blocks (dataset_id, last_position, first_position, count, \
             first_seq, last_seq, ts_min, ts_max, model, version, role, received_at, classes, \
             scores) VALUES (",
        );
        sql.bind(self.dataset_id);
        for v in [
            self.last_position,
            self.first_position,
            self.count as i64,
            self.seqs.0,
            self.seqs.1,
            self.ts.0,
            self.ts.1,
        ] {
            sql.push(", ").bind(v);
        }
        sql.push(", ")
            .bind(self.model)
            .push(", ")
            .bind(self.version)
            .push(", ")
            .bind(self.role.as_str())
            .push(", ")
            .bind(self.received_at)
            .push(", ")
            .bind(self.classes.as_deref())
            .push(", ")
            .bind(self.scores)
            .push(")");
        sql
    }
}

/// Stores one block, its first score at `position`.
async fn insert_block(
    tx: &mut crate::sql::Tx<'_>,
    dataset_id: i64,
    position: i64,
    seqs: (i64, i64),
    block: &ScoreBlock,
) -> Result<()> {
    let count = block.records.len();
    let times = block.records.times().iter().copied();
    let row = BlockRow {
        dataset_id,
        first_position: position,
        last_position: position + count as i64 - 1,
        count,
        seqs,
        ts: (times.clone().min().unwrap_or(0), times.max().unwrap_or(0)),
        model: &block.model,
        version: block.version,
        role: block.role,
        received_at: block.received_at,
        classes: block
            .classes
            .as_ref()
            .map(|c| serde_json::to_string(c).expect("labels serialize")),
        scores: encode_block(block),
    };
    tx.execute(row.insert()).await?;
    Ok(())
}

/// Old scores converted per statement by [`convert_legacy_log`].
const LEGACY_PAGE: i64 = 5000;

/// Carries the rows of the score log's first form (`scores`, a row per score; migrations
/// 0005 and 0009) over to blocks of one score each, positions unchanged, and drops the table;
/// nothing to do once it is gone. A score's sequence number is its record's (-1 when retention
/// deleted the record: it can no longer be looked up by record, but stays in the log).
pub(crate) async fn convert_legacy_log(conn: &mut AnyConnection, backend: Backend) -> Result<()> {
    if !table_exists(conn, backend, "scores").await? {
        return Ok(());
    }
    let mut tx = conn.begin().await?;
    let mut after = (i64::MIN, i64::MIN);
    loop {
        let rows = sqlx::query(
            "SELECT s.dataset_id, s.position, s.machine_id, s.ts, s.model, s.version, s.role, \
             s.prediction, s.probabilities, s.received_at, COALESCE(r.seq, -1) AS seq \
             FROM scores s LEFT JOIN records r \
             ON r.dataset_id = s.dataset_id AND r.ts = s.ts AND r.machine_id = s.machine_id \
             WHERE (s.dataset_id, s.position) > ($1, $2) \
             ORDER BY s.dataset_id, s.position LIMIT $3",
        )
        .bind(after.0)
        .bind(after.1)
        .bind(LEGACY_PAGE)
        .fetch_all(&mut *tx)
        .await?;
        for row in &rows {
            let unreadable = |e: serde_json::Error| Error::Integrity(format!("stored score: {e}"));
            let prediction: serde_json::Value =
                serde_json::from_str(&row.try_get::<String, _>("prediction")?)
                    .map_err(unreadable)?;
            let probabilities: Option<serde_json::Map<String, serde_json::Value>> = row
                .try_get::<Option<String>, _>("probabilities")?
                .map(|p| serde_json::from_str(&p))
                .transpose()
                .map_err(unreadable)?;
            let classes: Option<Arc<[String]>> =
                probabilities.as_ref().map(|p| p.keys().cloned().collect());
            // A class label becomes its index; what is not a class, or not a number, no value.
            let value = match (&classes, &prediction) {
                (Some(c), serde_json::Value::String(label)) => c
                    .iter()
                    .position(|x| x == label)
                    .map_or(f64::INFINITY, |i| i as f64),
                (_, serde_json::Value::Number(x)) => x.as_f64().unwrap_or(f64::NAN),
                _ => f64::NAN,
            };
            let block = ScoreBlock {
                model: row.try_get("model")?,
                version: row.try_get("version")?,
                role: ScoreRole::parse(&row.try_get::<String, _>("role")?)?,
                received_at: row.try_get("received_at")?,
                records: Arc::new(Readings::from_iter([Reading {
                    machine_id: row.try_get("machine_id")?,
                    ts: row.try_get("ts")?,
                    features: Vec::new(),
                    labels: None,
                }])),
                classes,
                values: vec![value],
                probabilities: probabilities
                    .map(|p| p.values().map(|v| v.as_f64().unwrap_or(f64::NAN)).collect()),
            };
            let seq: i64 = row.try_get("seq")?;
            after = (row.try_get("dataset_id")?, row.try_get("position")?);
            insert_block(&mut Tx::Any(&mut tx), after.0, after.1, (seq, seq), &block).await?;
        }
        if (rows.len() as i64) < LEGACY_PAGE {
            break;
        }
    }
    sqlx::query("DROP TABLE scores").execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

/// Deletes the scores of dataset `dataset_id`'s records older than `cutoff`, except those
/// `keep` names (by machine and time): blocks left empty go, the others are written again with
/// the scores they keep (positions unchanged). Returns how many scores were deleted.
pub(crate) async fn prune_scores(
    conn: &mut AnyConnection,
    dataset_id: i64,
    cutoff: i64,
    keep: impl Fn(&str, i64) -> bool,
) -> Result<u64> {
    // The blocks are read one at a time: a long backlog's scores need not fit in memory.
    let mut sql = Sql::new("SELECT last_position FROM score_blocks WHERE dataset_id = ");
    sql.bind(dataset_id).push(" AND ts_min < ").bind(cutoff);
    let candidates = sql
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| r.try_get::<i64, _>("last_position"))
        .collect::<std::result::Result<Vec<i64>, _>>()?;
    let mut deleted = 0;
    for last_position in candidates {
        let mut sql = Sql::new(&format!(
            "SELECT first_seq, last_seq, {BLOCK_COLUMNS} FROM score_blocks WHERE dataset_id = "
        ));
        sql.bind(dataset_id)
            .push(" AND last_position = ")
            .bind(last_position);
        let rows = sql.fetch_all(&mut *conn).await?;
        let Some(row) = rows.first() else {
            continue;
        };
        let head = head_from_row(row)?;
        let blob: Vec<u8> = row.try_get("scores")?;
        let (_, all) = entries(&blob, head.classes.as_deref())?;
        let kept: Vec<&Entry> = all
            .iter()
            .filter(|e| e.ts >= cutoff || keep(e.machine_id, e.ts))
            .collect();
        if kept.len() == all.len() {
            continue;
        }
        deleted += (all.len() - kept.len()) as u64;
        let mut sql = Sql::new("DELETE FROM score_blocks WHERE dataset_id = ");
        sql.bind(dataset_id)
            .push(" AND last_position = ")
            .bind(last_position);
        sql.execute(&mut *conn).await?;
        let Some(last) = kept.last() else {
            continue;
        };
        // The block keeps its first position (offsets count from it); its key moves to the last
        // position it keeps.
        let mut scores = blob[..5].to_vec();
        kept.iter().for_each(|e| scores.extend_from_slice(e.bytes));
        let times = kept.iter().map(|e| e.ts);
        let kept_row = BlockRow {
            dataset_id,
            first_position: head.first_position,
            last_position: head.first_position + i64::from(last.offset),
            count: kept.len(),
            seqs: (row.try_get("first_seq")?, row.try_get("last_seq")?),
            ts: (times.clone().min().unwrap_or(0), times.max().unwrap_or(0)),
            model: &head.model,
            version: head.version,
            role: head.role,
            received_at: head.received_at,
            classes: row.try_get("classes")?,
            scores,
        };
        kept_row.insert().execute(&mut *conn).await?;
    }
    Ok(deleted)
}

/// Blocks read per query while a page of scores is gathered.
const BLOCKS_PER_READ: i64 = 8;

impl Store {
    /// Up to `limit` scores of the dataset named `dataset` after position `after`, in position
    /// order; only those of `role` when given.
    #[tracing::instrument(skip(self))]
    pub async fn scores_after(
        &self,
        dataset: &str,
        after: i64,
        limit: i64,
        role: Option<ScoreRole>,
    ) -> Result<Vec<StoredScore>> {
        let limit = limit.clamp(1, MAX_PAGE) as usize;
        let mut conn = self.read.acquire().await?;
        let id = dataset_id(&mut conn, dataset).await?;
        let mut out = Vec::new();
        let mut from = after;
        while out.len() < limit {
            let mut sql = Sql::new(&format!(
                "SELECT last_position, {BLOCK_COLUMNS} FROM score_blocks WHERE dataset_id = "
            ));
            sql.bind(id).push(" AND last_position > ").bind(from);
            if let Some(role) = role {
                sql.push(" AND role = ").bind(role.as_str());
            }
            sql.push(" ORDER BY last_position LIMIT ")
                .bind(BLOCKS_PER_READ);
            let rows = sql.fetch_all(&mut conn).await?;
            for row in &rows {
                from = row.try_get("last_position")?;
                out.extend(
                    block_from_row(row)?
                        .into_iter()
                        .filter(|s| s.position > after),
                );
            }
            if (rows.len() as i64) < BLOCKS_PER_READ {
                break;
            }
        }
        out.truncate(limit);
        Ok(out)
    }

    /// Every score of the record (machine_id, ts) of the dataset named `dataset`, champion and
    /// challenger, in position order: which model versions scored it.
    #[tracing::instrument(skip(self))]
    pub async fn scores_of_record(
        &self,
        dataset: &str,
        machine_id: &str,
        ts: i64,
    ) -> Result<Vec<StoredScore>> {
        let key = [(machine_id.to_string(), ts)];
        self.scores_of(dataset, &key, None).await
    }

    /// The champion scores of the records with these (machine_id, ts) keys in `dataset`, by
    /// position (records never scored have none).
    pub async fn champion_scores_of(
        &self,
        dataset: &str,
        keys: &[(String, i64)],
    ) -> Result<Vec<StoredScore>> {
        self.scores_of(dataset, keys, Some(ScoreRole::Champion))
            .await
    }

    /// The scores (of `role`, when given) of the stored records with these keys, by position.
    /// A record's scores are in the blocks of the ingest that stored it, which cover its
    /// sequence number.
    async fn scores_of(
        &self,
        dataset: &str,
        keys: &[(String, i64)],
        role: Option<ScoreRole>,
    ) -> Result<Vec<StoredScore>> {
        let mut conn = self.read.acquire().await?;
        let id = dataset_id(&mut conn, dataset).await?;
        let keyed: Vec<(&str, i64)> = keys.iter().map(|(m, t)| (m.as_str(), *t)).collect();
        let seqs: Vec<i64> = crate::datasets::history::find(&mut Tx::Any(&mut conn), id, &keyed)
            .await?
            .into_values()
            .map(|(seq, _)| seq)
            .collect();
        let (Some(&lowest), Some(&highest)) = (seqs.iter().min(), seqs.iter().max()) else {
            return Ok(Vec::new());
        };
        // The blocks of the ingests from the one that stored the lowest sequence number on.
        let mut sql = Sql::new(&format!(
            "SELECT {BLOCK_COLUMNS} FROM score_blocks WHERE dataset_id = "
        ));
        sql.bind(id)
            .push(" AND first_seq >= COALESCE((SELECT MAX(first_seq) FROM score_blocks WHERE dataset_id = ")
            .bind(id)
            .push(" AND first_seq <= ")
            .bind(lowest)
            .push("), ")
            .bind(lowest)
            .push(") AND first_seq <= ")
            .bind(highest)
            .push(" AND last_seq >= ")
            .bind(lowest);
        if let Some(role) = role {
            sql.push(" AND role = ").bind(role.as_str());
        }
        let wanted: HashSet<(&str, i64)> = keys.iter().map(|(m, t)| (m.as_str(), *t)).collect();
        let mut out = Vec::new();
        for row in sql.fetch_all(&mut conn).await? {
            out.extend(
                block_from_row(&row)?
                    .into_iter()
                    .filter(|s| wanted.contains(&(s.machine_id.as_str(), s.ts))),
            );
        }
        out.sort_by_key(|s| s.position);
        Ok(out)
    }

    /// The registered models whose champions score the stream of the dataset named `dataset`:
    /// those of its enabled training specs, by name.
    #[tracing::instrument(skip(self))]
    pub async fn models_of_dataset(&self, dataset: &str) -> Result<Vec<String>> {
        let mut conn = self.read.acquire().await?;
        let rows = sqlx::query(
            "SELECT DISTINCT model_name FROM training_specs WHERE dataset = $1 AND enabled <> 0 \
             ORDER BY model_name",
        )
        .bind(dataset)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>("model_name")?))
            .collect()
    }
}

async fn dataset_id(conn: &mut AnyConnection, name: &str) -> Result<i64> {
    Ok(sqlx::query("SELECT id FROM datasets WHERE name = $1")
        .bind(name)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| Error::not_found(format!("No dataset named '{name}'")))?
        .try_get("id")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(machine_id: &str, ts: i64) -> Reading {
        Reading {
            machine_id: machine_id.into(),
            ts,
            features: Vec::new(),
            labels: None,
        }
    }

    fn head(block: &ScoreBlock, first_position: i64) -> BlockHead {
        BlockHead {
            first_position,
            model: block.model.clone(),
            version: block.version,
            role: block.role,
            received_at: block.received_at,
            classes: block.classes.as_ref().map(|c| c.to_vec()),
        }
    }

    fn classifier() -> ScoreBlock {
        ScoreBlock {
            model: "clf".into(),
            version: 3,
            role: ScoreRole::Challenger,
            received_at: 42,
            records: Arc::new(Readings::from_iter([
                reading("m1", 10),
                reading("m-ü", -5),
                reading("m3", 7),
            ])),
            classes: Some(Arc::from(vec!["no".to_string(), "yes".to_string()])),
            values: vec![1.0, 0.0, f64::NAN],
            probabilities: Some(vec![0.25, 0.75, 0.5, 0.5, f64::NAN, 1.0]),
        }
    }

    #[test]
    fn a_block_reads_back_as_the_scores_it_stored() {
        for block in [
            classifier(),
            ScoreBlock {
                classes: None,
                values: vec![1.5, f64::INFINITY, -0.0],
                probabilities: None,
                ..classifier()
            },
            // A classifier without probabilities.
            ScoreBlock {
                probabilities: None,
                ..classifier()
            },
        ] {
            let blob = encode_block(&block);
            let read = decode_block(&head(&block, 100), &blob).unwrap();
            assert_eq!(read, block.stored(100).collect::<Vec<_>>());
        }
        let read = decode_block(&head(&classifier(), 100), &encode_block(&classifier())).unwrap();
        assert_eq!(read[0].position, 100);
        assert_eq!(read[1].machine_id, "m-ü");
        assert_eq!(read[1].ts, -5);
        assert_eq!(read[0].prediction, serde_json::json!("yes"));
        assert_eq!(
            read[2].prediction,
            serde_json::Value::Null,
            "NaN is no class"
        );
        assert_eq!(
            read[2].probabilities.as_ref().unwrap()["no"],
            serde_json::Value::Null
        );
        assert_eq!(read[2].probabilities.as_ref().unwrap()["yes"], 1.0);
    }

    #[test]
    fn a_block_writes_its_scores_as_json_as_the_stored_scores_would() {
        let unsorted = ScoreBlock {
            classes: Some(Arc::from(vec![
                "yes".to_string(),
                "no".to_string(),
                "maybe".to_string(),
            ])),
            values: vec![2.0, -1.0, 7.0],
            probabilities: Some(vec![
                0.1,
                0.2,
                0.7,
                f64::INFINITY,
                0.5,
                0.5,
                1.0 / 3.0,
                1e-300,
                2.0,
            ]),
            ..classifier()
        };
        let regression = ScoreBlock {
            classes: None,
            values: vec![1.0, f64::NAN, -2.5e-7],
            probabilities: None,
            ..classifier()
        };
        // Names that need escaping, a champion, and a class no score names.
        let escaped = ScoreBlock {
            model: "m\"odel\\\u{1}é".into(),
            role: ScoreRole::Champion,
            received_at: -1,
            records: Arc::new(Readings::from_iter([
                reading("a\"b", i64::MIN),
                reading("\n\t", i64::MAX),
            ])),
            classes: Some(Arc::from(vec!["q\"".to_string(), "\u{7f}".to_string()])),
            values: vec![1.0, 5.0],
            probabilities: Some(vec![1e-7, 0.9999999, -0.0, 1e300]),
            version: i64::MAX,
        };
        let no_probabilities = ScoreBlock {
            probabilities: None,
            ..classifier()
        };
        for block in [
            classifier(),
            unsorted,
            regression,
            escaped,
            no_probabilities,
        ] {
            let appended = AppendedBlock::new(7, block);
            let mut written = b"[".to_vec();
            appended.write_json(&mut written);
            written.push(b']');
            let scores: Vec<StoredScore> = appended.scores().collect();
            assert_eq!(
                String::from_utf8(written).unwrap(),
                serde_json::to_string(&scores).unwrap()
            );
        }
        let mut written = Vec::new();
        AppendedBlock::new(7, classifier()).write_json(&mut written);
        let json: Vec<serde_json::Value> =
            serde_json::from_slice(&[b"[", &written[..], b"]"].concat()).unwrap();
        assert_eq!(json.len(), 3);
        assert_eq!(json[0]["position"], 7);
        assert_eq!(json[2]["position"], 9);
        assert_eq!(json[1]["machine_id"], "m-ü");
        assert_eq!(json[0]["role"], "challenger");
        assert_eq!(json[0]["prediction"], "yes");
        assert_eq!(json[2]["prediction"], serde_json::Value::Null);
        assert_eq!(
            json[0]["probabilities"],
            serde_json::json!({"no": 0.25, "yes": 0.75})
        );
        assert_eq!(
            json[2]["probabilities"],
            serde_json::json!({"no": null, "yes": 1.0})
        );
    }

    #[test]
    fn a_corrupt_block_is_an_integrity_error_not_a_panic() {
        let block = classifier();
        let blob = encode_block(&block);
        let h = head(&block, 1);
        // Cut inside the header, inside the first score, and inside the last.
        for cut in [0, 1, 4, 9, blob.len() - 1] {
            assert!(
                matches!(decode_block(&h, &blob[..cut]), Err(Error::Integrity(_))),
                "cut at {cut}"
            );
        }
        assert_eq!(
            decode_block(&h, &blob[..5]).unwrap(),
            [],
            "a header alone holds none"
        );
        let mut other_format = blob.clone();
        other_format[0] = 9;
        assert!(decode_block(&h, &other_format).is_err());
        let three_classes = BlockHead {
            classes: Some(vec!["a".into(), "b".into(), "c".into()]),
            ..head(&block, 1)
        };
        assert!(
            decode_block(&three_classes, &blob).is_err(),
            "probabilities per score must match the classes"
        );
    }
}
