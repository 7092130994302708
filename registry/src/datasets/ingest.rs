//! Storing readings and labels: validation, idempotency on (dataset, machine_id, ts) with first
//! write winning, and dead letters for what is refused — all of a request in one transaction.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;
use sqlx::Row;
use utoipa::ToSchema;

use super::history::{self, KeyedRow};
use super::record::{self, ParsedRecords, ReadingRef, Readings, RecordParser, Rejection, Value};
use super::schema::{ENTITY_KEY, Schema, TIME_KEY};
use super::{Dataset, load_dataset};
use crate::audit::{self, Actor};
use crate::db::{Backend, Store, now_ms};
use crate::error::{Error, Result};
use crate::scores::{AppendedBlock, ScoreBlock, append_scores};
use crate::sql::{DirectTransaction, Sql, Tx};

/// Most records in one ingest request.
pub const MAX_BATCH: usize = 100_000;
/// How far in the future an event time may be (clock skew allowance): one day.
pub const MAX_FUTURE_MS: i64 = 24 * 3600 * 1000;
/// Rows per INSERT statement: 4 values each stays under SQLite's 32,766 bound values.
const ROWS_PER_STATEMENT: usize = 8000;
/// Batches at least this large are parsed on two threads.
const PARALLEL_PARSE: usize = 500;

/// A stored reading's schema version and the canonical encoding of its labels, if any.
type StoredReading = (i64, Option<Vec<u8>>);

/// What happened to a batch of records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct IngestReport {
    /// Newly stored records (or labels).
    pub accepted: usize,
    /// Records for a (machine_id, ts) already stored; the stored row is unchanged.
    pub duplicates: usize,
    /// Records refused, with the field and reason; also kept in the dead-letter table.
    pub rejected: Vec<Rejection>,
}

/// A request's records, parsed, with the valid readings shared with the scorer.
type Records = ParsedRecords<Arc<Readings>>;

/// A parsed batch and what was prepared from its readings for scoring.
struct Parsed<Pre> {
    records: Records,
    prepared: Option<Pre>,
}

/// A parsed batch of records on its way into the history.
struct Batch<'a> {
    actor: &'a Actor,
    name: &'a str,
    source: &'a str,
    dataset: &'a Dataset,
    /// One past the highest record position in the request.
    span: usize,
    /// Whether the new readings go to `score`.
    collect: bool,
}

/// Parses a batch on blocking threads (validation of large batches is CPU work); returns one
/// past the highest record position in the request (its record count, plus any blank NDJSON
/// lines) and the parsed records.
async fn parse_batch(
    dataset: &Dataset,
    body: String,
    ndjson: bool,
    labels_only: bool,
) -> Result<(usize, Records)> {
    let schema = dataset.schema.clone();
    let max_ts = now_ms() + MAX_FUTURE_MS;
    tokio::task::spawn_blocking(move || {
        let parts = record::split_body(&body, ndjson).map_err(Error::invalid)?;
        if parts.len() > MAX_BATCH {
            return Err(Error::invalid(format!(
                "a batch may hold at most {MAX_BATCH} records, got {}",
                parts.len()
            )));
        }
        let span = parts.last().map_or(0, |&(i, _)| i + 1);
        let parser = RecordParser::new(&schema, max_ts, labels_only);
        // Large batches are parsed on two threads: parsing is much of an ingest's CPU work.
        let parsed = if parts.len() < PARALLEL_PARSE {
            parser.parse_all(&parts)
        } else {
            let (first, second) = parts.split_at(parts.len() / 2);
            std::thread::scope(|scope| {
                let other = scope.spawn(|| parser.parse_all(second));
                // The first half's batch has room for the second's readings.
                let mut parsed = parser.parse_leaving_room(first, second.len());
                parsed.append(other.join().expect("the parser thread does not panic"));
                parsed
            })
        };
        Ok((span, parsed.shared()))
    })
    .await
    .map_err(|e| Error::Integrity(format!("record parser failed: {e}")))?
}

/// Reserves `n` sequence numbers of a dataset; returns the first.
async fn reserve_seq(tx: &mut Tx<'_>, dataset_id: i64, n: usize) -> Result<i64> {
    tx.reserve("next_seq", dataset_id, n as i64).await
}

async fn store_dead_letters(
    tx: &mut Tx<'_>,
    dataset_id: i64,
    source: &str,
    rejected: &[Rejection],
    raws: &[String],
) -> Result<()> {
    let now = now_ms();
    for (chunk, raw_chunk) in rejected.chunks(1000).zip(raws.chunks(1000)) {
        let mut sql = Sql::new(
            "INSERT INTO dead_letters (dataset_id, received_at, source, record_index, field, reason, raw) VALUES ",
        );
        for (i, (r, raw)) in chunk.iter().zip(raw_chunk).enumerate() {
            sql.push(if i == 0 { "(" } else { ", (" });
            sql.bind(dataset_id)
                .push(", ")
                .bind(now)
                .push(", ")
                .bind(source)
                .push(", ")
                .bind(r.index as i64)
                .push(", ")
                .bind(r.field.as_deref())
                .push(", ")
                .bind(r.reason.as_str())
                .push(", ")
                .bind(raw.as_str())
                .push(")");
        }
        tx.execute(sql).await?;
    }
    Ok(())
}

impl Store {
    /// Stores a batch of readings (a JSON array, or NDJSON when `ndjson`) for the dataset named
    /// `name`: valid records are stored unless their (machine_id, ts) is already stored (then they
    /// count as duplicates and change nothing), invalid ones go to the dead-letter table and are
    /// listed in the report. Labels sent with a new reading are stored with it.
    #[tracing::instrument(skip(self, actor, body), fields(bytes = body.len()))]
    pub async fn ingest_records(
        &self,
        actor: &Actor,
        name: &str,
        body: String,
        ndjson: bool,
        source: &str,
    ) -> Result<IngestReport> {
        self.ingest(
            actor,
            name,
            body,
            ndjson,
            source,
            false,
            |_, _| async {},
            |_, _, _: Option<()>| async { Ok((Vec::new(), ())) },
            |report, _, ()| report,
        )
        .await
    }

    /// Stores a batch of readings as [`Store::ingest_records`] does, and scores exactly the newly
    /// stored ones in the same transaction: `score` gets the dataset and the accepted readings (in
    /// request order; duplicates and refused records are not among them) and returns their scores
    /// and a value handed back to the caller. The scores are appended to the dataset's score log
    /// under the dataset's row lock, so that a record is stored if and only if its scores are, and
    /// positions follow commit order. `score` runs while ingest into the dataset is held: it
    /// should do nothing slow besides scoring.
    ///
    /// So that it need not even score there, `prepare` gets every valid reading of the batch (in
    /// request order) before the writer is taken; what it returns is handed to `score` when those
    /// readings were all stored (they are then exactly `score`'s), and `None` otherwise.
    ///
    /// `finish` makes what the call returns of the report, the stored scores and `score`'s
    /// value. For a large batch on SQLite it runs on a thread of its own while the commit waits
    /// for its `fsync` (serializing a batch's answer takes milliseconds too); what it makes must
    /// not be used as committed before the call returns.
    #[tracing::instrument(skip(self, actor, body, prepare, score, finish), fields(bytes = body.len()))]
    #[allow(clippy::too_many_arguments)]
    pub async fn ingest_records_scored<T, P, PFut, Pre, F, Fut, C, R>(
        &self,
        actor: &Actor,
        name: &str,
        body: String,
        ndjson: bool,
        source: &str,
        prepare: P,
        score: F,
        finish: C,
    ) -> Result<R>
    where
        P: FnOnce(Dataset, Arc<Readings>) -> PFut,
        PFut: Future<Output = Pre>,
        F: FnOnce(Dataset, Arc<Readings>, Option<Pre>) -> Fut,
        Fut: Future<Output = Result<(Vec<ScoreBlock>, T)>>,
        T: Send,
        C: FnOnce(IngestReport, Vec<AppendedBlock>, T) -> R + Send,
        R: Send,
    {
        self.ingest(
            actor, name, body, ndjson, source, true, prepare, score, finish,
        )
        .await
    }

    /// Ingest, with `prepare` run on the valid readings before the writer is taken and `score`
    /// on the accepted ones inside the transaction (neither given any unless `collect`), and
    /// `finish` during or after the commit.
    #[allow(clippy::too_many_arguments)]
    async fn ingest<T, P, PFut, Pre, F, Fut, C, R>(
        &self,
        actor: &Actor,
        name: &str,
        body: String,
        ndjson: bool,
        source: &str,
        collect: bool,
        prepare: P,
        score: F,
        finish: C,
    ) -> Result<R>
    where
        P: FnOnce(Dataset, Arc<Readings>) -> PFut,
        PFut: Future<Output = Pre>,
        F: FnOnce(Dataset, Arc<Readings>, Option<Pre>) -> Fut,
        Fut: Future<Output = Result<(Vec<ScoreBlock>, T)>>,
        T: Send,
        C: FnOnce(IngestReport, Vec<AppendedBlock>, T) -> R + Send,
        R: Send,
    {
        let dataset = self.get_dataset(name).await?;
        let (span, records) = parse_batch(&dataset, body, ndjson, false).await?;
        let readings = &records.readings;
        let large = readings.len() >= PARALLEL_PARSE;
        let prepared = if collect && !readings.is_empty() {
            Some(prepare(dataset.clone(), readings.clone()).await)
        } else {
            None
        };
        let parsed = Parsed { records, prepared };
        let mut conn = self.writer().await?;
        let batch = Batch {
            actor,
            name,
            source,
            dataset: &dataset,
            span,
            collect,
        };
        // On SQLite the batch is written through the writer's direct connection.
        match conn.direct() {
            Some(direct) => {
                let mut transaction = DirectTransaction::begin(direct)?;
                let (report, scores, extra) = self
                    .write_batch(&mut transaction.tx(), batch, parsed, score)
                    .await?;
                if !large {
                    transaction.commit()?;
                    return Ok(finish(report, scores, extra));
                }
                // The commit blocks for its `fsync`, during which `finish` has a core to itself
                // (or, if no thread can be started, runs after it).
                let mut work = Some((finish, report, scores, extra));
                let (committed, finished) = std::thread::scope(|scope| {
                    let finishing = std::thread::Builder::new()
                        .name("refit-finish".into())
                        .spawn_scoped(scope, || {
                            let (finish, report, scores, extra) = work.take().expect("taken once");
                            finish(report, scores, extra)
                        })
                        .ok();
                    (transaction.commit(), finishing.map(|t| t.join()))
                });
                committed?;
                Ok(match (finished, work) {
                    (Some(joined), _) => {
                        joined.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                    }
                    (None, Some((finish, report, scores, extra))) => finish(report, scores, extra),
                    (None, None) => unreachable!("the work is taken only by its thread"),
                })
            }
            None => {
                let mut tx = conn.begin().await?;
                let (report, scores, extra) = self
                    .write_batch(&mut Tx::Any(&mut tx), batch, parsed, score)
                    .await?;
                tx.commit().await?;
                Ok(finish(report, scores, extra))
            }
        }
    }

    /// Writes a parsed batch in the caller's transaction: its new records (and labels), dead
    /// letters, the scores `score` makes of the new records, and the audit entry. Returns the
    /// report, the stored scores and what `score` handed back.
    async fn write_batch<T, Pre, F, Fut>(
        &self,
        tx: &mut Tx<'_>,
        batch: Batch<'_>,
        parsed: Parsed<Pre>,
        score: F,
    ) -> Result<(IngestReport, Vec<AppendedBlock>, T)>
    where
        F: FnOnce(Dataset, Arc<Readings>, Option<Pre>) -> Fut,
        Fut: Future<Output = Result<(Vec<ScoreBlock>, T)>>,
    {
        let Parsed {
            records:
                Records {
                    raws,
                    positions,
                    readings,
                    rejected,
                },
            prepared,
        } = parsed;
        let Batch {
            actor,
            name,
            source,
            dataset,
            span,
            collect,
        } = batch;
        // A record's sequence number is the batch's first plus its position in the request.
        // Reserving them also locks the dataset's row until commit: ingests into one dataset take
        // turns, so the check for stored keys below cannot race with another ingest's insert.
        let first_seq = reserve_seq(tx, dataset.id, span).await?;
        let seq_of = |i: usize| first_seq + positions[i] as i64;
        let rows: Vec<KeyedRow> = readings
            .iter()
            .enumerate()
            .map(|(i, r)| (r.machine_id, r.ts, seq_of(i), r.features))
            .collect();
        // A key sent twice is stored from its first record; the later ones are duplicates like
        // any other.
        let stored =
            history::append(tx, dataset.id, dataset.schema_version, in_key_order(rows)).await?;
        let accepted = stored.len();
        let valid = readings.len();
        // Which readings this batch stored (by index into `readings`).
        let all_stored = accepted == valid;
        let stored: HashSet<i64> = if all_stored {
            HashSet::new()
        } else {
            stored.into_iter().collect()
        };
        let is_fresh = |i: &usize| all_stored || stored.contains(&seq_of(*i));
        if readings.any_labelled() {
            let labelled: Vec<KeyedRow> = (0..valid)
                .filter(is_fresh)
                .filter_map(|i| {
                    let r = readings.get(i);
                    Some((r.machine_id, r.ts, seq_of(i), r.labels?))
                })
                .collect();
            insert_labels(tx, self.backend(), dataset, labelled).await?;
        }
        store_dead_letters(tx, dataset.id, source, &rejected, &raws).await?;
        let fresh: Arc<Readings> = if !collect {
            Arc::default()
        } else if all_stored {
            readings
        } else {
            Arc::new(readings.select((0..valid).filter(is_fresh)))
        };
        // What was prepared is for every valid reading: it holds only if all were stored.
        let prepared = prepared.filter(|_| all_stored);
        let (new_scores, extra) = score(dataset.clone(), fresh, prepared).await?;
        let seqs = (first_seq, first_seq + span as i64 - 1);
        let scores = append_scores(tx, dataset.id, seqs, new_scores).await?;
        let duplicates = valid - accepted;
        let scored = if collect {
            format!(
                ", {} scores",
                scores.iter().map(AppendedBlock::len).sum::<usize>()
            )
        } else {
            String::new()
        };
        tx.execute(audit::entry(
            actor,
            "datasets.ingest",
            &format!("dataset:{name}"),
            Some(&format!(
                "{accepted} accepted, {duplicates} duplicates, {} rejected{scored}",
                rejected.len()
            )),
        ))
        .await?;
        let report = IngestReport {
            accepted,
            duplicates,
            rejected,
        };
        Ok((report, scores, extra))
    }

    /// Stores labels for readings already stored, keyed by (machine_id, ts). A label equal to the
    /// stored one counts as a duplicate; a different one, or one for a reading that does not
    /// exist, is refused (dead letter).
    #[tracing::instrument(skip(self, actor, body), fields(bytes = body.len()))]
    pub async fn ingest_labels(
        &self,
        actor: &Actor,
        name: &str,
        body: String,
        ndjson: bool,
    ) -> Result<IngestReport> {
        Ok(self
            .ingest_labels_returning(actor, name, body, ndjson)
            .await?
            .0)
    }

    /// [`Store::ingest_labels`], also returning the labels it stored: (machine_id, ts, label
    /// values in the schema's label order), for realized metrics.
    pub async fn ingest_labels_returning(
        &self,
        actor: &Actor,
        name: &str,
        body: String,
        ndjson: bool,
    ) -> Result<(IngestReport, Vec<StoredLabels>)> {
        let dataset = self.get_dataset(name).await?;
        let (
            _,
            Records {
                mut raws,
                positions,
                readings,
                mut rejected,
            },
        ) = parse_batch(&dataset, body, ndjson, true).await?;
        let readings: Vec<(usize, ReadingRef)> =
            positions.into_iter().zip(readings.iter()).collect();
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        let dataset = load_dataset(&mut tx, name).await?;
        // Lock the dataset's row first: what is read below stays true until commit.
        reserve_seq(&mut Tx::Any(&mut tx), dataset.id, 0).await?;
        // What is stored for these keys: the reading's schema version and any labels.
        let keys: Vec<(&str, i64)> = readings.iter().map(|(_, r)| (r.machine_id, r.ts)).collect();
        let found = history::find(&mut Tx::Any(&mut tx), dataset.id, &keys).await?;
        let mut existing: HashMap<(String, i64), StoredReading> = found
            .into_iter()
            .map(|(key, (_, version))| (key, (version, None)))
            .collect();
        for chunk in keys.chunks(2000) {
            let mut sql =
                Sql::new("SELECT machine_id, ts, labels FROM record_labels WHERE dataset_id = ");
            sql.bind(dataset.id)
                .push(" AND (ts, machine_id) IN (VALUES ");
            for (i, (machine_id, ts)) in chunk.iter().enumerate() {
                sql.push(if i == 0 { "(" } else { ", (" });
                sql.bind(*ts).push(", ").bind(*machine_id).push(")");
            }
            sql.push(")");
            for row in sql.fetch_all(&mut tx).await? {
                let key = (row.try_get("machine_id")?, row.try_get("ts")?);
                if let Some(stored) = existing.get_mut(&key) {
                    stored.1 = Some(row.try_get("labels")?);
                }
            }
        }
        let mut new = Vec::new();
        let mut duplicates = 0;
        // Labels taken from this batch so far, by key: a later one for the same reading is a
        // duplicate if equal and refused if not, as if the first had been stored already.
        let mut taken: HashMap<(String, i64), Vec<u8>> = HashMap::new();
        let mut buf = Vec::new();
        for (index, reading) in &readings {
            let labels = reading.labels.expect("the labels parser requires labels");
            let key = (reading.machine_id.to_string(), reading.ts);
            let refuse = |reason: String| Rejection {
                index: *index,
                field: None,
                reason,
            };
            let refusal = match existing.get(&key) {
                None => Some(refuse(format!(
                    "no reading for machine_id '{}' at {}",
                    reading.machine_id,
                    record::format_time(reading.ts)
                ))),
                Some((version, _)) if *version != dataset.schema_version => Some(refuse(format!(
                    "the reading was stored under schema version {version}; labels follow version {}",
                    dataset.schema_version
                ))),
                Some((_, stored)) => {
                    buf.clear();
                    record::encode(labels, &mut buf);
                    match stored.as_ref().or_else(|| taken.get(&key)) {
                        Some(earlier) if *earlier == buf => {
                            duplicates += 1;
                            None
                        }
                        Some(_) => Some(refuse(
                            "labels for this reading are already stored with other values".into(),
                        )),
                        None => {
                            taken.insert(key, buf.clone());
                            new.push(reading);
                            None
                        }
                    }
                }
            };
            if let Some(r) = refusal {
                raws.push(labels_json(*reading, &dataset.schema));
                rejected.push(r);
            }
        }
        let first_seq = reserve_seq(&mut Tx::Any(&mut tx), dataset.id, new.len()).await?;
        let numbered: Vec<KeyedRow> = new
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let labels = r.labels.expect("the labels parser requires labels");
                (r.machine_id, r.ts, first_seq + i as i64, labels)
            })
            .collect();
        insert_labels(&mut Tx::Any(&mut tx), self.backend(), &dataset, numbered).await?;
        // Keep the rejections in request order.
        let mut order: Vec<usize> = (0..rejected.len()).collect();
        order.sort_by_key(|&i| rejected[i].index);
        let rejected: Vec<Rejection> = order.iter().map(|&i| rejected[i].clone()).collect();
        let raws: Vec<String> = order.iter().map(|&i| raws[i].clone()).collect();
        store_dead_letters(
            &mut Tx::Any(&mut tx),
            dataset.id,
            "labels",
            &rejected,
            &raws,
        )
        .await?;
        audit::record(
            &mut tx,
            actor,
            "datasets.ingest_labels",
            &format!("dataset:{name}"),
            Some(&format!(
                "{} accepted, {duplicates} duplicates, {} rejected",
                new.len(),
                rejected.len()
            )),
        )
        .await?;
        tx.commit().await?;
        let stored = new
            .iter()
            .map(|r| {
                (
                    r.machine_id.to_string(),
                    r.ts,
                    r.labels
                        .expect("the labels parser requires labels")
                        .to_vec(),
                )
            })
            .collect();
        Ok((
            IngestReport {
                accepted: new.len(),
                duplicates,
                rejected,
            },
            stored,
        ))
    }
}

/// Labels as stored: (machine_id, ts, values in the schema's label order).
pub type StoredLabels = (String, i64, Vec<Value>);

/// A parsed labels record as JSON, for its dead letter: the key and every label value refused.
fn labels_json(reading: ReadingRef, schema: &Schema) -> String {
    let mut object = serde_json::Map::new();
    object.insert(ENTITY_KEY.into(), reading.machine_id.into());
    object.insert(TIME_KEY.into(), reading.ts.into());
    let labels = reading.labels.unwrap_or(&[]);
    for (column, value) in schema.labels.iter().zip(labels) {
        let value = match value {
            Value::Missing => serde_json::Value::Null,
            Value::Number(x) => (*x).into(),
            Value::Text(t) => t.clone().into(),
        };
        object.insert(column.name.clone(), value);
    }
    serde_json::Value::Object(object).to_string()
}

/// Sorts rows by key, (ts, machine_id), keeping of rows with the same key the one with the
/// lowest sequence number: in key order each insert lands next to the one before.
pub(crate) fn in_key_order(mut rows: Vec<KeyedRow<'_>>) -> Vec<KeyedRow<'_>> {
    rows.sort_unstable_by_key(|&(machine_id, ts, seq, _)| (ts, machine_id, seq));
    rows.dedup_by_key(|&mut (machine_id, ts, _, _)| (ts, machine_id));
    rows
}

/// Inserts labels (numbered by their reserved sequence numbers) under the dataset's current
/// schema version, skipping keys already labelled; of labels with the same key, the one with
/// the lowest sequence number is stored. Returns how many were stored. The caller holds the
/// dataset's row lock (taken by [`reserve_seq`]), so no other ingest can store a key between the
/// check and the insert.
async fn insert_labels(
    tx: &mut Tx<'_>,
    backend: Backend,
    dataset: &Dataset,
    rows: Vec<KeyedRow<'_>>,
) -> Result<usize> {
    let rows = in_key_order(rows);
    match tx.with_direct(rows.len() * 4, |conn| insert_prepared(conn, dataset, &rows)) {
        Some(count) => Ok(count?),
        None => insert_statements(tx, backend, dataset, &rows).await,
    }
}

/// Inserts rows on SQLite's direct connection: one prepared single-row statement for every row,
/// bound straight from the rows (a statement of thousands of rows costs more to build and compile
/// than to run). Returns how many were stored.
fn insert_prepared(
    conn: &rusqlite::Connection,
    dataset: &Dataset,
    rows: &[KeyedRow<'_>],
) -> rusqlite::Result<usize> {
    let mut statement = conn.prepare_cached(
        "INSERT INTO record_labels (dataset_id, machine_id, ts, seq, schema_version, labels) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (dataset_id, ts, machine_id) DO NOTHING",
    )?;
    let mut encoded = Vec::new();
    let mut stored = 0;
    for (machine_id, ts, seq, values) in rows {
        encoded.clear();
        record::encode(values, &mut encoded);
        stored += statement.execute(rusqlite::params![
            dataset.id,
            machine_id,
            ts,
            seq,
            dataset.schema_version,
            &encoded
        ])?;
    }
    Ok(stored)
}

/// Inserts rows through multi-row statements (sqlx's connections); returns how many were stored.
async fn insert_statements(
    tx: &mut Tx<'_>,
    backend: Backend,
    dataset: &Dataset,
    rows: &[KeyedRow<'_>],
) -> Result<usize> {
    let mut count = 0;
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut sql = Sql::new(
            "INSERT INTO record_labels (dataset_id, machine_id, ts, seq, schema_version, labels) SELECT ",
        );
        // The dataset and schema version are bound once per statement, not per row.
        sql.bind(dataset.id).push(", ");
        match backend {
            // SQLite: four placeholders per row, and the key checked as each row is inserted
            // (SQLite needs a WHERE before ON CONFLICT in an INSERT ... SELECT).
            Backend::Sqlite => {
                sql.push("column1, column2, column3, ")
                    .bind(dataset.schema_version)
                    .push(", column4 FROM (VALUES ");
                for (i, (machine_id, ts, seq, values)) in chunk.iter().enumerate() {
                    let mut encoded = Vec::with_capacity(values.len() * 9);
                    record::encode(values, &mut encoded);
                    sql.push(if i == 0 { "(" } else { ", (" })
                        .bind(*machine_id)
                        .push(", ")
                        .bind(*ts)
                        .push(", ")
                        .bind(*seq)
                        .push(", ")
                        .bind(encoded)
                        .push(")");
                }
                sql.push(") AS v WHERE true ON CONFLICT (dataset_id, ts, machine_id) DO NOTHING");
            }
            // PostgreSQL: a fixed statement of eight placeholders whatever the row count (a
            // VALUES list of thousands of rows costs more to plan than to insert), the columns
            // packed as text lists and the encodings as one blob, and an anti-join rather than
            // ON CONFLICT's speculative insertion.
            Backend::Postgres => {
                let packed = Packed::of(chunk);
                sql.push("v.m, v.t, v.s, ")
                    .bind(dataset.schema_version)
                    .push(", substring(")
                    .bind(packed.blob)
                    .push(" from v.o for v.l) FROM unnest(string_to_array(")
                    .bind(packed.machine_ids)
                    .push(", E'\\x1f'), string_to_array(")
                    .bind(packed.times)
                    .push(", ',')::int8[], string_to_array(")
                    .bind(packed.seqs)
                    .push(", ',')::int8[], string_to_array(")
                    .bind(packed.offsets)
                    .push(", ',')::int4[], string_to_array(")
                    .bind(packed.lengths)
                    .push(", ',')::int4[]) AS v (m, t, s, o, l) WHERE NOT EXISTS (SELECT 1 FROM record_labels x WHERE x.dataset_id = ")
                    .bind(dataset.id)
                    .push(" AND x.machine_id = v.m AND x.ts = v.t)");
            }
        }
        count += tx.execute(sql).await? as usize;
    }
    Ok(count)
}

/// Rows packed into five lists and one blob, for PostgreSQL's `unnest`.
struct Packed {
    /// Machine ids joined by the unit separator, which a machine id cannot contain.
    machine_ids: String,
    times: String,
    seqs: String,
    /// 1-based offsets and lengths of each row's encoding in `blob`.
    offsets: String,
    lengths: String,
    blob: Vec<u8>,
}

impl Packed {
    fn of(rows: &[KeyedRow<'_>]) -> Packed {
        use std::fmt::Write;
        let mut p = Packed {
            machine_ids: String::with_capacity(rows.len() * 8),
            times: String::with_capacity(rows.len() * 14),
            seqs: String::with_capacity(rows.len() * 8),
            offsets: String::with_capacity(rows.len() * 8),
            lengths: String::with_capacity(rows.len() * 4),
            blob: Vec::with_capacity(rows.len() * 64),
        };
        for (i, (machine_id, ts, seq, values)) in rows.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            if i > 0 {
                p.machine_ids.push('\u{1f}');
            }
            p.machine_ids.push_str(machine_id);
            let start = p.blob.len();
            record::encode(values, &mut p.blob);
            // Writing to a String cannot fail.
            let _ = write!(p.times, "{sep}{ts}");
            let _ = write!(p.seqs, "{sep}{seq}");
            let _ = write!(p.offsets, "{sep}{}", start + 1);
            let _ = write!(p.lengths, "{sep}{}", p.blob.len() - start);
        }
        p
    }
}
