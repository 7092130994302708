//! The history of readings, stored in blocks: one row of `record_blocks` per ingest and schema
//! version, holding the readings it stored in (ts, machine_id) order. A row per reading cost a
//! B-tree insert and a key check each, most of a stream batch's time under the writer; a block is
//! one insert.
//!
//! A reading's key (machine_id, ts) is stored once per dataset, first write winning: a reading
//! newer than its machine's newest stored one (`machine_marks`) is new; an older one is looked
//! up in the blocks that overlap its time. Blocks of one dataset may overlap in time (late or
//! replayed data), so readers merge them: [`Cursor`] gives a slice's readings in key order, the
//! order snapshots are hashed in.
//!
//! A block's `readings` blob, format 2 (integers little-endian; "varint" is LEB128, unsigned):
//! - the format byte (2), the number of readings (varint);
//! - the machines (varint count, then each id as varint length and UTF-8 bytes), in order of
//!   first appearance;
//! - the first reading's time (i64) and the block's lowest sequence number (i64);
//! - per reading: its time's difference from the previous reading's (the first's from the time
//!   above; zigzag varint), its sequence number's from the lowest (varint), its machine's index
//!   (varint) and the canonical encoding of its features (varint length, bytes; see
//!   [`record::encode`]).
//!
//! Against format 1 (still read: per reading its time and sequence number as i64, then machine
//! id and features each with a u32 length), a reading of a usual batch takes ~6 bytes besides its
//! features instead of ~28, a fifth of the block: fewer bytes to commit to the log and to keep.

use std::collections::{HashMap, HashSet};

use sqlx::{AnyConnection, Connection, Row};

use super::record::{self, Value};
use crate::db::{Backend, table_exists};
use crate::error::{Error, Result};
use crate::sql::{Sql, Tx};

/// Format of the `readings` blob written (format 1 is still read).
const FORMAT: u8 = 2;
/// Most blocks read per query.
const BLOCKS_PER_QUERY: usize = 64;
/// Most rows per marks statement (3 values each).
const MARKS_PER_STATEMENT: usize = 1000;

/// A map keyed by machine ids, hashed with foldhash: a batch's ingest looks up its 10,000 ids in
/// a few such maps while it holds the writer, where SipHash took 2.5 % of the stream's CPU.
/// (Seeded per process, as std's maps are, so senders cannot aim at collisions offline.)
type MachineMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// A reading on its way into the history: machine, time, sequence number, feature values.
pub(crate) type KeyedRow<'a> = (&'a str, i64, i64, &'a [Value]);

/// A stored reading.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HistoryRow {
    pub machine_id: String,
    pub ts: i64,
    pub seq: i64,
    /// The canonical encoding of its features.
    pub features: Vec<u8>,
}

/// A stored reading borrowed from its block's blob.
#[derive(Debug, Clone, Copy)]
struct RowRef<'a> {
    ts: i64,
    seq: i64,
    machine_id: &'a str,
    features: &'a [u8],
}

impl RowRef<'_> {
    fn to_owned(self) -> HistoryRow {
        HistoryRow {
            machine_id: self.machine_id.to_string(),
            ts: self.ts,
            seq: self.seq,
            features: self.features.to_vec(),
        }
    }
}

/// A reading as a block holds it.
trait BlockRow {
    /// (ts, seq, machine_id).
    fn key(&self) -> (i64, i64, &str);
    /// Appends the canonical encoding of its features.
    fn write_features(&self, out: &mut Vec<u8>);
}

impl BlockRow for KeyedRow<'_> {
    fn key(&self) -> (i64, i64, &str) {
        (self.1, self.2, self.0)
    }
    fn write_features(&self, out: &mut Vec<u8>) {
        record::encode(self.3, out);
    }
}

impl BlockRow for RowRef<'_> {
    fn key(&self) -> (i64, i64, &str) {
        (self.ts, self.seq, self.machine_id)
    }
    fn write_features(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.features);
    }
}

impl BlockRow for &HistoryRow {
    fn key(&self) -> (i64, i64, &str) {
        (self.ts, self.seq, &self.machine_id)
    }
    fn write_features(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.features);
    }
}

/// A block's blob for `rows` (in key order).
#[cfg(test)]
fn encode_block<R: BlockRow>(rows: &[R]) -> Vec<u8> {
    encode_indexed(rows, &MachineIndex::of(rows))
}

/// The machines of some rows in order of first appearance (by the row each first appears in),
/// and each row's machine by its place in that order: found with one hash lookup per row, then
/// used by place.
struct MachineIndex {
    firsts: Vec<usize>,
    of_row: Vec<u32>,
}

impl MachineIndex {
    fn of<R: BlockRow>(rows: &[R]) -> MachineIndex {
        let mut index: MachineMap<&str, u32> = MachineMap::default();
        let mut firsts = Vec::new();
        let of_row = rows
            .iter()
            .enumerate()
            .map(|(i, row)| {
                *index.entry(row.key().2).or_insert_with(|| {
                    firsts.push(i);
                    firsts.len() as u32 - 1
                })
            })
            .collect();
        MachineIndex { firsts, of_row }
    }

    /// The machines in order of first appearance in `rows` (those the index was made of).
    fn machines<'r, R: BlockRow>(&self, rows: &'r [R]) -> impl Iterator<Item = &'r str> {
        self.firsts.iter().map(|&i| rows[i].key().2)
    }

    /// Each machine's newest time among `rows` (those the index was made of).
    fn newest<R: BlockRow>(&self, rows: &[R]) -> Vec<i64> {
        let mut newest = vec![i64::MIN; self.firsts.len()];
        for (row, &m) in rows.iter().zip(&self.of_row) {
            let t = &mut newest[m as usize];
            *t = (*t).max(row.key().0);
        }
        newest
    }
}

/// A block's blob for `rows` (in key order) and their machine index.
fn encode_indexed<R: BlockRow>(rows: &[R], index: &MachineIndex) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + rows.len() * 80);
    out.push(FORMAT);
    put_varint(&mut out, rows.len() as u64);
    put_varint(&mut out, index.firsts.len() as u64);
    for m in index.machines(rows) {
        put_varint(&mut out, m.len() as u64);
        out.extend_from_slice(m.as_bytes());
    }
    let first_ts = rows.first().map_or(0, |r| r.key().0);
    let seq_base = rows.iter().map(|r| r.key().1).min().unwrap_or(0);
    out.extend_from_slice(&first_ts.to_le_bytes());
    out.extend_from_slice(&seq_base.to_le_bytes());
    let mut previous = first_ts;
    for (row, &machine) in rows.iter().zip(&index.of_row) {
        let (ts, seq, _) = row.key();
        put_varint(&mut out, zigzag(ts.wrapping_sub(previous)));
        previous = ts;
        put_varint(&mut out, seq.wrapping_sub(seq_base) as u64);
        put_varint(&mut out, u64::from(machine));
        // The features are encoded in place behind a byte kept for their length, which is
        // written once known: one byte for up to 127 (14 numbers), else moved up to make room.
        let at = out.len();
        out.push(0);
        row.write_features(&mut out);
        let len = out.len() - at - 1;
        match u8::try_from(len) {
            Ok(short) if short < 0x80 => out[at] = short,
            _ => {
                let mut prefix = Vec::with_capacity(10);
                put_varint(&mut prefix, len as u64);
                out.splice(at..at + 1, prefix);
            }
        }
    }
    out
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    (v >> 1) as i64 ^ -((v & 1) as i64)
}

/// The readings of a block's blob.
fn decode_block(blob: &[u8]) -> Result<Vec<RowRef<'_>>> {
    type Decoded<T> = std::result::Result<T, String>;
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Decoded<&'a [u8]> {
        let (head, rest) = bytes.split_at_checked(n).ok_or("the block ends early")?;
        *bytes = rest;
        Ok(head)
    }
    fn int(bytes: &mut &[u8]) -> Decoded<i64> {
        Ok(i64::from_le_bytes(
            take(bytes, 8)?.try_into().expect("8 bytes"),
        ))
    }
    fn len(bytes: &mut &[u8]) -> Decoded<usize> {
        Ok(u32::from_le_bytes(take(bytes, 4)?.try_into().expect("4 bytes")) as usize)
    }
    fn varint(bytes: &mut &[u8]) -> Decoded<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = take(bytes, 1)?[0];
            // The tenth byte holds u64's last bit: anything more is too long or too large.
            if shift == 63 && b > 1 {
                return Err("a number overflows".into());
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        // The tenth byte was at most 1, so it ended the number.
        unreachable!("a varint ends by its tenth byte")
    }
    fn size(bytes: &mut &[u8]) -> Decoded<usize> {
        usize::try_from(varint(bytes)?).map_err(|_| "a length overflows".into())
    }
    fn text<'a>(bytes: &mut &'a [u8], n: usize) -> Decoded<&'a str> {
        std::str::from_utf8(take(bytes, n)?).map_err(|_| "a machine id is not UTF-8".into())
    }
    fn format_1<'a>(bytes: &mut &'a [u8]) -> Decoded<Vec<RowRef<'a>>> {
        let n = len(bytes)?;
        let mut rows = Vec::with_capacity(n.min(bytes.len() / 24));
        for _ in 0..n {
            let ts = int(bytes)?;
            let seq = int(bytes)?;
            let m = len(bytes)?;
            let machine_id = text(bytes, m)?;
            let f = len(bytes)?;
            let features = take(bytes, f)?;
            rows.push(RowRef {
                ts,
                seq,
                machine_id,
                features,
            });
        }
        Ok(rows)
    }
    fn format_2<'a>(bytes: &mut &'a [u8]) -> Decoded<Vec<RowRef<'a>>> {
        let n = size(bytes)?;
        let machines = size(bytes)?;
        let mut ids = Vec::with_capacity(machines.min(bytes.len()));
        for _ in 0..machines {
            let m = size(bytes)?;
            ids.push(text(bytes, m)?);
        }
        let mut ts = int(bytes)?;
        let seq_base = int(bytes)?;
        let mut rows = Vec::with_capacity(n.min(bytes.len() / 4));
        for _ in 0..n {
            ts = ts
                .checked_add(unzigzag(varint(bytes)?))
                .ok_or("a time overflows")?;
            let seq = i64::try_from(varint(bytes)?)
                .ok()
                .and_then(|d| seq_base.checked_add(d))
                .ok_or("a sequence number overflows")?;
            let machine_id = *ids
                .get(size(bytes)?)
                .ok_or("a reading names a machine the block does not list")?;
            let f = size(bytes)?;
            let features = take(bytes, f)?;
            rows.push(RowRef {
                ts,
                seq,
                machine_id,
                features,
            });
        }
        Ok(rows)
    }
    fn decode(mut bytes: &[u8]) -> Decoded<Vec<RowRef<'_>>> {
        let rows = match take(&mut bytes, 1)?[0] {
            1 => format_1(&mut bytes)?,
            2 => format_2(&mut bytes)?,
            format => return Err(format!("unknown block format {format}")),
        };
        if !bytes.is_empty() {
            return Err("the block has trailing bytes".into());
        }
        Ok(rows)
    }
    decode(blob)
        .map_err(|e| Error::Integrity(format!("a stored block of readings is unreadable: {e}")))
}

/// A block's row, described.
struct NewBlock {
    dataset_id: i64,
    schema_version: i64,
    first_seq: i64,
    last_seq: i64,
    ts_min: i64,
    ts_max: i64,
    count: usize,
    readings: Vec<u8>,
}

impl NewBlock {
    /// The block of `rows` (in key order, at least one).
    fn of<R: BlockRow>(dataset_id: i64, schema_version: i64, rows: &[R]) -> NewBlock {
        NewBlock::indexed(dataset_id, schema_version, rows, &MachineIndex::of(rows))
    }

    /// The block of `rows` (in key order, at least one) with their machine index.
    fn indexed<R: BlockRow>(
        dataset_id: i64,
        schema_version: i64,
        rows: &[R],
        index: &MachineIndex,
    ) -> NewBlock {
        let seqs = rows.iter().map(|r| r.key().1);
        NewBlock {
            dataset_id,
            schema_version,
            first_seq: seqs.clone().min().expect("a block has rows"),
            last_seq: seqs.max().expect("a block has rows"),
            ts_min: rows[0].key().0,
            ts_max: rows[rows.len() - 1].key().0,
            count: rows.len(),
            readings: encode_indexed(rows, index),
        }
    }

    fn insert(self) -> Sql {
        let mut sql = Sql::new(
            "INSERT INTO record_blocks (dataset_id, first_seq, last_seq, schema_version, ts_min, \
             ts_max, count, readings) VALUES (",
        );
        sql.bind(self.dataset_id)
            .push(", ")
            .bind(self.first_seq)
            .push(", ")
            .bind(self.last_seq)
            .push(", ")
            .bind(self.schema_version)
            .push(", ")
            .bind(self.ts_min)
            .push(", ")
            .bind(self.ts_max)
            .push(", ")
            .bind(self.count as i64)
            .push(", ")
            .bind(self.readings)
            .push(")");
        sql
    }
}

/// Stores `rows` (sorted by (ts, machine_id), one per key) under the dataset's `schema_version`,
/// except those whose key is already stored. Returns the sequence numbers of the rows stored.
/// The caller holds the dataset's row lock, so no other ingest stores a key meanwhile.
pub(crate) async fn append(
    tx: &mut Tx<'_>,
    dataset_id: i64,
    schema_version: i64,
    rows: Vec<KeyedRow<'_>>,
) -> Result<Vec<i64>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    // Each row's machine is looked up once; the batch's newest time of each machine and each
    // one's newest stored time are then kept by the machine's place (this runs while the writer
    // is held).
    let index = MachineIndex::of(&rows);
    let mut machines: Vec<&str> = index.machines(&rows).collect();
    machines.sort_unstable();
    let mut stored_marks: MachineMap<String, i64> =
        MachineMap::with_capacity_and_hasher(machines.len(), Default::default());
    for chunk in machines.chunks(MARKS_PER_STATEMENT) {
        let mut sql = Sql::new("SELECT machine_id, last_ts FROM machine_marks WHERE dataset_id = ");
        sql.bind(dataset_id)
            .push(" AND machine_id IN ")
            .bind_list(chunk.iter().copied());
        stored_marks.extend(tx.fetch_all::<(String, i64)>(sql).await?);
    }
    // Each machine's stored mark, by its place in `index`.
    let marks_of = |rows: &[KeyedRow], index: &MachineIndex| -> Vec<Option<i64>> {
        let mark = |m| stored_marks.get(m).copied();
        index.machines(rows).map(mark).collect()
    };
    let marks = marks_of(&rows, &index);
    // Rows at or before their machine's mark may be stored already: look them up in the blocks
    // that overlap their times.
    let suspects: HashSet<(i64, &str)> = rows
        .iter()
        .zip(&index.of_row)
        .filter(|(r, m)| marks[**m as usize].is_some_and(|mark| r.1 <= mark))
        .map(|(r, _)| (r.1, r.0))
        .collect();
    let mut stored_keys: HashSet<(i64, String)> = HashSet::new();
    if !suspects.is_empty() {
        let times: Vec<i64> = suspects.iter().map(|k| k.0).collect();
        overlapping(tx, dataset_id, times, |_, r| {
            if suspects.contains(&(r.ts, r.machine_id)) {
                stored_keys.insert((r.ts, r.machine_id.to_string()));
            }
        })
        .await?;
    }
    let (new, index, marks) = if stored_keys.is_empty() {
        (rows, index, marks)
    } else {
        let new: Vec<KeyedRow<'_>> = rows
            .into_iter()
            .filter(|r| !stored_keys.contains(&(r.1, r.0.to_string())))
            .collect();
        let index = MachineIndex::of(&new);
        let marks = marks_of(&new, &index);
        (new, index, marks)
    };
    if new.is_empty() {
        return Ok(Vec::new());
    }
    let block = NewBlock::indexed(dataset_id, schema_version, &new, &index);
    tx.execute(block.insert()).await?;
    // Machines whose newest stored time moved.
    let moved: Vec<(&str, i64)> = index
        .newest(&new)
        .into_iter()
        .zip(index.machines(&new))
        .zip(&marks)
        .filter(|((t, _), mark)| mark.is_none_or(|mark| *t > mark))
        .map(|((t, m), _)| (m, t))
        .collect();
    for chunk in moved.chunks(MARKS_PER_STATEMENT) {
        let mut sql =
            Sql::new("INSERT INTO machine_marks (dataset_id, machine_id, last_ts) VALUES ");
        for (i, (machine, ts)) in chunk.iter().enumerate() {
            sql.push(if i == 0 { "(" } else { ", (" })
                .bind(dataset_id)
                .push(", ")
                .bind(*machine)
                .push(", ")
                .bind(*ts)
                .push(")");
        }
        sql.push(" ON CONFLICT (dataset_id, machine_id) DO UPDATE SET last_ts = excluded.last_ts");
        tx.execute(sql).await?;
    }
    Ok(new.iter().map(|r| r.2).collect())
}

/// Which stored readings to read: those of a dataset under one schema version, in a time range,
/// of some machines or all, stored by a sequence number.
#[derive(Debug, Clone)]
pub(crate) struct Slice {
    pub dataset_id: i64,
    pub schema_version: i64,
    /// First event time included.
    pub ts_from: i64,
    /// Event time the slice ends before.
    pub ts_to: i64,
    /// Only these machines, sorted.
    pub machines: Option<Vec<String>>,
    /// Readings stored after this sequence number are not part of it.
    pub max_seq: i64,
}

impl Slice {
    /// The part of the slice before `ts` (exclusive).
    pub(crate) fn before(mut self, ts: i64) -> Slice {
        self.ts_to = self.ts_to.min(ts);
        self
    }

    fn holds(&self, r: &RowRef<'_>) -> bool {
        r.ts >= self.ts_from
            && r.ts < self.ts_to
            && r.seq <= self.max_seq
            && self
                .machines
                .as_ref()
                .is_none_or(|m| m.binary_search_by(|x| x.as_str().cmp(r.machine_id)).is_ok())
    }
}

/// A block that may hold readings of a slice.
#[derive(Debug, Clone, Copy)]
struct Header {
    first_seq: i64,
    last_seq: i64,
    ts_min: i64,
    ts_max: i64,
    count: i64,
}

/// The blocks that may hold readings of `slice`, by their first time.
async fn headers(conn: &mut AnyConnection, slice: &Slice) -> Result<Vec<Header>> {
    let mut sql = Sql::new(
        "SELECT first_seq, last_seq, ts_min, ts_max, count FROM record_blocks WHERE dataset_id = ",
    );
    sql.bind(slice.dataset_id)
        .push(" AND schema_version = ")
        .bind(slice.schema_version)
        .push(" AND ts_max >= ")
        .bind(slice.ts_from)
        .push(" AND ts_min < ")
        .bind(slice.ts_to)
        .push(" AND first_seq <= ")
        .bind(slice.max_seq);
    let mut headers = sql
        .fetch_all(conn)
        .await?
        .iter()
        .map(|r| {
            Ok(Header {
                first_seq: r.try_get("first_seq")?,
                last_seq: r.try_get("last_seq")?,
                ts_min: r.try_get("ts_min")?,
                ts_max: r.try_get("ts_max")?,
                count: r.try_get("count")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    headers.sort_unstable_by_key(|h| (h.ts_min, h.first_seq));
    Ok(headers)
}

/// The schema versions and blobs of a dataset's blocks that start at these sequence numbers (a
/// block pruned away meanwhile is missing).
async fn blobs(
    tx: &mut Tx<'_>,
    dataset_id: i64,
    first_seqs: &[i64],
) -> Result<Vec<(i64, Vec<u8>)>> {
    let mut sql =
        Sql::new("SELECT schema_version, readings FROM record_blocks WHERE dataset_id = ");
    sql.bind(dataset_id)
        .push(" AND first_seq IN ")
        .bind_list(first_seqs.iter().copied());
    tx.fetch_all::<(i64, Vec<u8>)>(sql).await
}

/// Reads a slice's readings in key order, a chunk at a time, merging blocks that overlap.
pub(crate) struct Cursor {
    slice: Slice,
    headers: Vec<Header>,
    /// The first block not read yet.
    next: usize,
    /// Readings read and not handed out, in key order.
    pending: Vec<HistoryRow>,
}

impl Cursor {
    pub(crate) async fn open(conn: &mut AnyConnection, slice: Slice) -> Result<Cursor> {
        let headers = headers(conn, &slice).await?;
        Ok(Cursor {
            slice,
            headers,
            next: 0,
            pending: Vec::new(),
        })
    }

    /// The next `limit` readings (fewer only at the end), in (ts, machine_id) order.
    pub(crate) async fn next_chunk(
        &mut self,
        conn: &mut AnyConnection,
        limit: usize,
    ) -> Result<Vec<HistoryRow>> {
        loop {
            // What is pending before the next block's first time is final: no block left holds
            // an earlier key.
            let ready = match self.headers.get(self.next) {
                None => self.pending.len(),
                Some(h) => self.pending.partition_point(|r| r.ts < h.ts_min),
            };
            if ready >= limit || self.next == self.headers.len() {
                return Ok(self.pending.drain(..ready.min(limit)).collect());
            }
            let mut first_seqs = Vec::new();
            let mut rows = 0;
            while let Some(h) = self.headers.get(self.next) {
                first_seqs.push(h.first_seq);
                rows += h.count as usize;
                self.next += 1;
                if rows >= limit || first_seqs.len() == BLOCKS_PER_QUERY {
                    break;
                }
            }
            for (_, blob) in blobs(&mut Tx::Any(conn), self.slice.dataset_id, &first_seqs).await? {
                let block = decode_block(&blob)?;
                self.pending.extend(
                    block
                        .into_iter()
                        .filter(|r| self.slice.holds(r))
                        .map(RowRef::to_owned),
                );
            }
            // Runs already in order: the sort merges them.
            self.pending
                .sort_by(|a, b| (a.ts, a.machine_id.as_str()).cmp(&(b.ts, b.machine_id.as_str())));
        }
    }
}

/// Calls `f` with every reading of `slice`, in no particular order.
async fn for_each(
    conn: &mut AnyConnection,
    slice: &Slice,
    headers: &[Header],
    mut f: impl FnMut(&RowRef<'_>),
) -> Result<()> {
    for chunk in headers.chunks(BLOCKS_PER_QUERY) {
        let first_seqs: Vec<i64> = chunk.iter().map(|h| h.first_seq).collect();
        for (_, blob) in blobs(&mut Tx::Any(conn), slice.dataset_id, &first_seqs).await? {
            decode_block(&blob)?
                .iter()
                .filter(|r| slice.holds(r))
                .for_each(&mut f);
        }
    }
    Ok(())
}

/// How many readings `slice` holds.
pub(crate) async fn count(conn: &mut AnyConnection, slice: &Slice) -> Result<i64> {
    let headers = headers(conn, slice).await?;
    // Blocks wholly inside the slice count without reading them.
    let (whole, partial): (Vec<Header>, Vec<Header>) = headers.into_iter().partition(|h| {
        slice.machines.is_none()
            && h.ts_min >= slice.ts_from
            && h.ts_max < slice.ts_to
            && h.last_seq <= slice.max_seq
    });
    let mut n: i64 = whole.iter().map(|h| h.count).sum();
    for_each(conn, slice, &partial, |_| n += 1).await?;
    Ok(n)
}

/// The event times of the readings of `slice`, ascending.
pub(crate) async fn times(conn: &mut AnyConnection, slice: &Slice) -> Result<Vec<i64>> {
    let headers = headers(conn, slice).await?;
    let mut times = Vec::new();
    for_each(conn, slice, &headers, |r| times.push(r.ts)).await?;
    times.sort_unstable();
    Ok(times)
}

/// Calls `f` with the schema version and each reading of the dataset's blocks that span any of
/// `times`, a few blocks at a time: a late reading and a recent one do not read every block in
/// between.
async fn overlapping(
    tx: &mut Tx<'_>,
    dataset_id: i64,
    mut times: Vec<i64>,
    mut f: impl FnMut(i64, &RowRef<'_>),
) -> Result<()> {
    times.sort_unstable();
    times.dedup();
    let (Some(&lo), Some(&hi)) = (times.first(), times.last()) else {
        return Ok(());
    };
    let mut sql =
        Sql::new("SELECT first_seq, ts_min, ts_max FROM record_blocks WHERE dataset_id = ");
    sql.bind(dataset_id)
        .push(" AND ts_max >= ")
        .bind(lo)
        .push(" AND ts_min <= ")
        .bind(hi);
    let first_seqs: Vec<i64> = tx
        .fetch_all::<(i64, i64, i64)>(sql)
        .await?
        .into_iter()
        .filter(|&(_, ts_min, ts_max)| {
            let i = times.partition_point(|&t| t < ts_min);
            i < times.len() && times[i] <= ts_max
        })
        .map(|(first_seq, _, _)| first_seq)
        .collect();
    for chunk in first_seqs.chunks(BLOCKS_PER_QUERY) {
        for (version, blob) in blobs(tx, dataset_id, chunk).await? {
            for r in decode_block(&blob)? {
                f(version, &r);
            }
        }
    }
    Ok(())
}

/// The stored readings with these keys (machine_id, ts), of any schema version: key →
/// (sequence number, schema version).
pub(crate) async fn find(
    tx: &mut Tx<'_>,
    dataset_id: i64,
    keys: &[(&str, i64)],
) -> Result<HashMap<(String, i64), (i64, i64)>> {
    let mut found = HashMap::new();
    let wanted: HashSet<(&str, i64)> = keys.iter().copied().collect();
    let times = keys.iter().map(|k| k.1).collect();
    overlapping(tx, dataset_id, times, |version, r| {
        if wanted.contains(&(r.machine_id, r.ts)) {
            found.insert((r.machine_id.to_string(), r.ts), (r.seq, version));
        }
    })
    .await?;
    Ok(found)
}

/// How many readings of a dataset are stored, in all.
pub(crate) async fn total(conn: &mut AnyConnection, dataset_id: i64) -> Result<i64> {
    Ok(
        sqlx::query("SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) AS n FROM record_blocks WHERE dataset_id = $1")
            .bind(dataset_id)
            .fetch_one(conn)
            .await?
            .try_get("n")?,
    )
}

/// How many readings of a dataset were stored with a sequence number above `seq`.
pub(crate) async fn count_since(
    conn: &mut AnyConnection,
    dataset_id: i64,
    seq: i64,
) -> Result<i64> {
    let whole: i64 = sqlx::query(
        "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) AS n FROM record_blocks WHERE dataset_id = $1 AND first_seq > $2",
    )
    .bind(dataset_id)
    .bind(seq)
    .fetch_one(&mut *conn)
    .await?
    .try_get("n")?;
    let straddling = sqlx::query(
        "SELECT readings FROM record_blocks WHERE dataset_id = $1 AND first_seq <= $2 AND last_seq > $2",
    )
    .bind(dataset_id)
    .bind(seq)
    .fetch_all(&mut *conn)
    .await?;
    let mut n = whole;
    for row in straddling {
        let blob: Vec<u8> = row.try_get("readings")?;
        n += decode_block(&blob)?.iter().filter(|r| r.seq > seq).count() as i64;
    }
    Ok(n)
}

/// The newest event time stored in a dataset.
pub(crate) async fn newest(conn: &mut AnyConnection, dataset_id: i64) -> Result<Option<i64>> {
    Ok(
        sqlx::query("SELECT MAX(ts_max) AS newest FROM record_blocks WHERE dataset_id = $1")
            .bind(dataset_id)
            .fetch_one(conn)
            .await?
            .try_get("newest")?,
    )
}

/// Deletes a dataset's readings before `cutoff` except those `keep` names (by machine and time):
/// blocks left empty go, the others are written again with the readings they keep. Returns how
/// many readings were deleted and how many of those before the cutoff were kept.
pub(crate) async fn prune(
    conn: &mut AnyConnection,
    dataset_id: i64,
    cutoff: i64,
    keep: impl Fn(&str, i64) -> bool,
) -> Result<(u64, u64)> {
    // The blocks are read one at a time: a long history need not fit in memory.
    let first_seqs: Vec<i64> =
        sqlx::query("SELECT first_seq FROM record_blocks WHERE dataset_id = $1 AND ts_min < $2")
            .bind(dataset_id)
            .bind(cutoff)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| r.try_get("first_seq"))
            .collect::<sqlx::Result<_>>()?;
    let (mut deleted, mut kept) = (0u64, 0u64);
    for first_seq in first_seqs {
        let row = sqlx::query(
            "SELECT schema_version, readings FROM record_blocks WHERE dataset_id = $1 AND first_seq = $2",
        )
        .bind(dataset_id)
        .bind(first_seq)
        .fetch_one(&mut *conn)
        .await?;
        let version: i64 = row.try_get("schema_version")?;
        let blob: Vec<u8> = row.try_get("readings")?;
        let block = decode_block(&blob)?;
        let remaining: Vec<RowRef<'_>> = block
            .iter()
            .copied()
            .filter(|r| r.ts >= cutoff || keep(r.machine_id, r.ts))
            .collect();
        kept += remaining.iter().filter(|r| r.ts < cutoff).count() as u64;
        if remaining.len() == block.len() {
            continue;
        }
        deleted += (block.len() - remaining.len()) as u64;
        sqlx::query("DELETE FROM record_blocks WHERE dataset_id = $1 AND first_seq = $2")
            .bind(dataset_id)
            .bind(first_seq)
            .execute(&mut *conn)
            .await?;
        if !remaining.is_empty() {
            let block = NewBlock::of(dataset_id, version, &remaining);
            block.insert().execute(&mut *conn).await?;
        }
    }
    Ok((deleted, kept))
}

/// Readings converted per statement by [`convert_legacy_records`].
const LEGACY_PAGE: i64 = 10_000;

/// Carries the rows of the history's first form (`records`, a row per reading; migrations 0002
/// and 0004) over to blocks, in key order, with their sequence numbers, and the newest time of
/// each machine to `machine_marks`; then drops the table. Nothing to do once it is gone.
pub(crate) async fn convert_legacy_records(
    conn: &mut AnyConnection,
    backend: Backend,
) -> Result<()> {
    if !table_exists(conn, backend, "records").await? {
        return Ok(());
    }
    let mut tx = conn.begin().await?;
    let mut after = (i64::MIN, i64::MIN, String::new());
    loop {
        let rows = sqlx::query(
            "SELECT dataset_id, schema_version, machine_id, ts, seq, features FROM records \
             WHERE (dataset_id, ts, machine_id) > ($1, $2, $3) \
             ORDER BY dataset_id, ts, machine_id LIMIT $4",
        )
        .bind(after.0)
        .bind(after.1)
        .bind(after.2.as_str())
        .bind(LEGACY_PAGE)
        .fetch_all(&mut *tx)
        .await?;
        // (dataset_id, schema_version, reading) in key order.
        let page = rows
            .iter()
            .map(|r| {
                Ok((
                    r.try_get::<i64, _>("dataset_id")?,
                    r.try_get::<i64, _>("schema_version")?,
                    HistoryRow {
                        machine_id: r.try_get("machine_id")?,
                        ts: r.try_get("ts")?,
                        seq: r.try_get("seq")?,
                        features: r.try_get("features")?,
                    },
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        // A block for each run of one dataset and schema version.
        for run in page.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
            let rows: Vec<&HistoryRow> = run.iter().map(|r| &r.2).collect();
            let block = NewBlock::of(run[0].0, run[0].1, &rows);
            block.insert().execute(&mut tx).await?;
        }
        match page.last() {
            Some((dataset_id, _, r)) if page.len() as i64 == LEGACY_PAGE => {
                after = (*dataset_id, r.ts, r.machine_id.clone())
            }
            _ => break,
        }
    }
    sqlx::query(
        "INSERT INTO machine_marks (dataset_id, machine_id, last_ts) \
         SELECT dataset_id, machine_id, MAX(ts) FROM records GROUP BY dataset_id, machine_id",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query("DROP TABLE records").execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_round_trip() {
        let values = [
            vec![Value::Number(1.5), Value::Missing],
            vec![Value::Text("é".into()), Value::Number(-0.0)],
        ];
        let rows: Vec<KeyedRow<'_>> = vec![("m1", 10, 7, &values[0]), ("ü2", 10, 3, &values[1])];
        let blob = encode_block(&rows);
        let decoded = decode_block(&blob).unwrap();
        assert_eq!(decoded.len(), 2);
        for (d, r) in decoded.iter().zip(&rows) {
            assert_eq!((d.machine_id, d.ts, d.seq), (r.0, r.1, r.2));
            assert_eq!(record::decode(d.features, 2).unwrap(), r.3.to_vec());
        }
        for cut in 0..blob.len() {
            assert!(decode_block(&blob[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = blob.clone();
        longer.push(0);
        assert!(decode_block(&longer).is_err());
        let mut other = blob;
        other[0] = 9;
        let e = decode_block(&other).unwrap_err().to_string();
        assert!(e.contains("unknown block format 9"), "{e}");
    }

    #[test]
    fn features_of_any_encoded_length_round_trip() {
        // Encodings of 0 to 40 numbers (up to 360 bytes: lengths of one varint byte and of two,
        // either side of 127) and a long text, each beside a short one.
        let short = vec![Value::Number(2.5)];
        let long: Vec<Vec<Value>> = (0..=40)
            .map(|n| (0..n).map(|j| Value::Number(f64::from(j) - 0.5)).collect())
            .chain([vec![Value::Text("x".repeat(300)), Value::Missing]])
            .collect();
        for values in &long {
            let rows: Vec<KeyedRow<'_>> = vec![
                ("a", 1, 1, values),
                ("b", 2, 2, &short),
                ("a", 3, 3, values),
            ];
            let blob = encode_block(&rows);
            let decoded = decode_block(&blob).unwrap();
            assert_eq!(decoded.len(), 3);
            for (d, r) in decoded.iter().zip(&rows) {
                assert_eq!((d.machine_id, d.ts, d.seq), (r.0, r.1, r.2));
                assert_eq!(record::decode(d.features, r.3.len()).unwrap(), r.3.to_vec());
                let mut encoded = Vec::new();
                record::encode(r.3, &mut encoded);
                assert_eq!(d.features, &encoded[..]);
            }
        }
    }

    #[test]
    fn blocks_of_a_usual_batch_round_trip_in_a_fifth_less_than_format_1() {
        // 200 machines reporting each second, sequence numbers in request order (not key order),
        // one late reading an hour back and a time far from the others.
        let values: Vec<Vec<Value>> = (0..8)
            .map(|i| {
                (0..8)
                    .map(|j| Value::Number(f64::from(i * 8 + j) / 7.0))
                    .collect()
            })
            .collect();
        let machines: Vec<String> = (0..200).map(|m| format!("m{m:03}")).collect();
        let base = 1_700_000_000_000_i64;
        let mut rows: Vec<KeyedRow<'_>> = (0..10_000)
            .map(|i| {
                let ts = base + (i / 200) as i64 * 1000;
                (
                    machines[i % 200].as_str(),
                    ts,
                    1_000_000_007 + ((i * 7919) % 10_000) as i64,
                    &values[i % 8][..],
                )
            })
            .collect();
        rows.push(("late", base - 3_600_000, 999_999_999, &values[0]));
        rows.push(("far", i64::MAX / 2, 1_000_020_000, &values[1]));
        let rows = crate::datasets::ingest::in_key_order(rows);
        let blob = encode_block(&rows);
        let decoded = decode_block(&blob).unwrap();
        assert_eq!(decoded.len(), rows.len());
        for (d, r) in decoded.iter().zip(&rows) {
            assert_eq!((d.machine_id, d.ts, d.seq), (r.0, r.1, r.2));
            assert_eq!(record::decode(d.features, 8).unwrap(), r.3.to_vec());
        }
        // Format 1 of the same rows, as earlier versions wrote it, still reads the same.
        let mut old = vec![1u8];
        old.extend_from_slice(&(rows.len() as u32).to_le_bytes());
        for (machine, ts, seq, features) in &rows {
            let mut f = Vec::new();
            record::encode(features, &mut f);
            old.extend_from_slice(&ts.to_le_bytes());
            old.extend_from_slice(&seq.to_le_bytes());
            old.extend_from_slice(&(machine.len() as u32).to_le_bytes());
            old.extend_from_slice(machine.as_bytes());
            old.extend_from_slice(&(f.len() as u32).to_le_bytes());
            old.extend_from_slice(&f);
        }
        let read_old = decode_block(&old).unwrap();
        assert_eq!(read_old.len(), decoded.len());
        for (a, b) in read_old.iter().zip(&decoded) {
            assert_eq!(
                (a.machine_id, a.ts, a.seq, a.features),
                (b.machine_id, b.ts, b.seq, b.features)
            );
        }
        assert!(
            blob.len() * 5 < old.len() * 4,
            "format 2 {} bytes, format 1 {}",
            blob.len(),
            old.len()
        );
    }

    #[test]
    fn a_block_with_an_overlong_or_overflowing_number_is_unreadable() {
        let values = [Value::Number(1.0)];
        let rows: Vec<KeyedRow<'_>> = vec![("m1", 10, 7, &values)];
        let blob = encode_block(&rows);
        // The reading's time difference (after format, count, machines and the two i64) is
        // replaced by an eleven-byte number, by a ten-byte one above u64, and by one that takes
        // the time (set to i64::MAX) past i64.
        let at = 1 + 1 + 1 + 1 + 2 + 8 + 8;
        for (number, reason) in [
            (
                vec![0x80; 10].into_iter().chain([0]).collect::<Vec<u8>>(),
                "a number overflows",
            ),
            ([vec![0xff; 9], vec![0x02]].concat(), "a number overflows"),
            ([vec![0xfe; 9], vec![0x01]].concat(), "a time overflows"),
        ] {
            let mut bad = blob[..at].to_vec();
            bad[at - 16..at - 8].copy_from_slice(&i64::MAX.to_le_bytes());
            bad.extend_from_slice(&number);
            bad.extend_from_slice(&blob[at + 1..]);
            let e = decode_block(&bad).unwrap_err().to_string();
            assert!(e.contains(reason), "{e}");
        }
    }

    #[test]
    fn a_block_naming_a_machine_it_does_not_list_is_unreadable() {
        let values = [Value::Number(1.0)];
        let rows: Vec<KeyedRow<'_>> = vec![("m1", 10, 7, &values)];
        let mut blob = encode_block(&rows);
        // format, count, 1 machine "m1", time, base; then the reading: 0 (time), 0 (seq), index.
        let index = 1 + 1 + 1 + 1 + 2 + 8 + 8 + 2;
        assert_eq!(blob[index], 0);
        blob[index] = 1;
        let e = decode_block(&blob).unwrap_err().to_string();
        assert!(e.contains("names a machine the block does not list"), "{e}");
    }
}
