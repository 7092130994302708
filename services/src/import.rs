//! `refit datasets import`: loads a CSV file of machine readings into a dataset.
//!
//! The file is read twice. The first pass checks its shape (UTF-8, every row as many fields as
//! the header), counts the rows and infers each column's kind; a malformed file is refused before
//! anything is created or stored, so it never leaves a half-loaded dataset behind. The second pass
//! turns each row into a JSON record (`machine_id`, `ts` in ms, typed values, empty cells as
//! `null`) and hands batches to [`Store::ingest_records`], so an imported row is validated,
//! deduplicated on (machine_id, ts) and dead-lettered exactly like one sent to the HTTP API. A
//! reader thread converts rows while the store writes, through a short bounded queue.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use csv::StringRecord;
use refit_registry::datasets::schema::{ENTITY_KEY, TIME_KEY};
use refit_registry::datasets::{Column, ColumnKind, Dataset, IngestReport, Rejection, Schema};
use refit_registry::{Actor, Store};
use tokio::sync::mpsc;

/// Largest `--batch-size`: the store's limit for one ingest call.
pub const MAX_BATCH_SIZE: u32 = 100_000;
/// How many rejected rows are listed; the rest are counted.
const SHOWN_REJECTIONS: usize = 20;
/// Converted batches waiting for the store. Two keep the writer busy while the reader works on
/// the next one, without holding the file in memory.
const QUEUE_DEPTH: usize = 2;
/// Shortest interval between two redraws of the progress bar.
const REDRAW_EVERY: Duration = Duration::from_millis(100);

/// Help text on exit status, shown by `refit datasets import --help`.
pub const EXIT_STATUS_HELP: &str = "\
Exit status:
  0  every row of the file is stored (newly, or already by an earlier run: duplicates)
  1  the import is incomplete or did not start. Either some rows were rejected (each is listed
     with its CSV line number, the header being line 1; the other rows are stored), or it
     stopped on an error (a missing column, a malformed line, a schema that does not match,
     the database). A partial import is a failure for scripts: fix the file and run the same
     command again; rows already stored are skipped as duplicates.
  2  the command line itself is wrong";

/// Options of `refit datasets import`.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Import options")]
pub struct ImportArgs {
    /// CSV file with a header line naming the columns.
    #[arg(help_heading = "Arguments")]
    pub file: PathBuf,
    /// Dataset to load into; created if missing, with a schema inferred from the file.
    ///
    /// Inferred schema: a column whose every non-empty value is a finite number is numeric, any
    /// other categorical; a column with an empty cell is nullable; labels are always nullable.
    /// An existing dataset's current schema must fit the file: each imported column is in it, and
    /// each of its features is in the file (its labels may be missing: they can be sent later).
    #[arg(long, value_name = "NAME")]
    pub dataset: String,
    /// Column naming the machine (stored as machine_id).
    #[arg(long, value_name = "COL")]
    pub entity: String,
    /// Column holding the event time (stored as ts).
    #[arg(long, value_name = "COL")]
    pub time: String,
    /// Unit of the time column [default: a number is seconds since 1970-01-01, text is RFC 3339]
    #[arg(long, value_enum, value_name = "UNIT")]
    pub time_unit: Option<TimeUnit>,
    /// Field separator: one ASCII character, or `tab`.
    #[arg(long, value_name = "C", default_value = ",", value_parser = parse_delimiter)]
    pub delimiter: u8,
    /// Label (target) columns.
    #[arg(long, value_name = "COL,...", value_delimiter = ',')]
    pub labels: Vec<String>,
    /// Columns that are categorical even though their values look numeric.
    #[arg(long, value_name = "COL,...", value_delimiter = ',')]
    pub categorical: Vec<String>,
    /// Feature columns [default: every column that is not the entity, the time, a label or
    /// excluded]
    #[arg(long, value_name = "COL,...", value_delimiter = ',')]
    pub features: Option<Vec<String>>,
    /// Columns to leave out (e.g. a row number).
    #[arg(long, value_name = "COL,...", value_delimiter = ',')]
    pub exclude: Vec<String>,
    /// Rows per store transaction (1-100000).
    #[arg(long, value_name = "N", default_value_t = 5000,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_BATCH_SIZE)))]
    pub batch_size: u32,
}

/// How the time column is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TimeUnit {
    /// Seconds since 1970-01-01 (decimals allowed).
    #[value(name = "s")]
    Seconds,
    /// Whole milliseconds since 1970-01-01.
    #[value(name = "ms")]
    Millis,
    /// RFC 3339 text, e.g. 2024-05-01T12:00:00Z.
    #[value(name = "rfc3339")]
    Rfc3339,
}

fn parse_delimiter(text: &str) -> Result<u8, String> {
    match text {
        "tab" | "\\t" | "\t" => Ok(b'\t'),
        _ => match text.as_bytes() {
            [b] if b.is_ascii() && !matches!(b, b'"' | b'\n' | b'\r') => Ok(*b),
            _ => Err(format!(
                "'{text}' is not a delimiter: give one ASCII character such as ';' or '|', or `tab`"
            )),
        },
    }
}

/// Why an import was refused or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be opened or read.
    #[error("reading {file}")]
    Read {
        /// The file.
        file: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The file has no header line.
    #[error(
        "{file} is empty: expected a header line naming the columns, then one line per reading"
    )]
    Empty {
        /// The file.
        file: String,
    },
    /// The file has a header but no rows.
    #[error("{file} has a header line but no rows to import")]
    NoRows {
        /// The file.
        file: String,
    },
    /// A line is not well-formed CSV for this header.
    #[error("{file}: line {line} {problem}; {}", stored_note(*.stored))]
    Malformed {
        /// The file.
        file: String,
        /// Line number, the header being line 1.
        line: u64,
        /// What is wrong with the line.
        problem: String,
        /// Rows stored before the import stopped, if it had started.
        stored: Option<u64>,
    },
    /// The options name columns the file lacks, or contradict each other.
    #[error("{0}")]
    Columns(String),
    /// The dataset exists and its schema does not fit the file.
    #[error("{0}")]
    SchemaMismatch(String),
    /// The store refused or failed.
    #[error("{context}")]
    Store {
        /// What was being done.
        context: String,
        /// The store's error.
        source: refit_registry::Error,
    },
}

fn stored_note(stored: Option<u64>) -> String {
    match stored {
        None => "nothing was imported (the whole file is checked before any row is stored)".into(),
        Some(n) => format!(
            "the import stopped there; the {} before it are stored, and a re-run skips them as duplicates",
            rows(n)
        ),
    }
}

/// A row the import did not store, by its line in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowRejection {
    /// Line number, the header being line 1.
    pub line: u64,
    /// The CSV column to blame, when one is.
    pub column: Option<String>,
    /// Why.
    pub reason: String,
}

impl std::fmt::Display for RowRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match &self.column {
            Some(c) => write!(f, "line {}, column '{c}': {}", self.line, self.reason),
            None => write!(f, "line {}: {}", self.line, self.reason),
        }
    }
}

/// What an import did.
#[derive(Debug, Clone)]
pub struct ImportOutcome {
    /// The file, as named on the command line.
    pub file: String,
    /// The dataset loaded into.
    pub dataset: Dataset,
    /// Whether this import created the dataset.
    pub created: bool,
    /// Data rows in the file.
    pub rows: u64,
    /// Rows newly stored.
    pub accepted: u64,
    /// Rows whose (machine_id, ts) was already stored.
    pub duplicates: u64,
    /// Rows refused.
    pub rejected: u64,
    /// The first refused rows, in file order.
    pub first_rejections: Vec<RowRejection>,
    /// Wall time, from opening the file to the last commit.
    pub elapsed: Duration,
}

impl ImportOutcome {
    /// Rows handled per second of wall time.
    pub fn rows_per_second(&self) -> f64 {
        self.rows as f64 / self.elapsed.as_secs_f64().max(1e-6)
    }

    /// The one-line summary printed at the end.
    pub fn summary(&self) -> String {
        format!(
            "imported {} into dataset '{}': {} read, {} accepted, {} duplicates, {} rejected in {:.2} s ({} rows/s)",
            self.file,
            self.dataset.name,
            rows(self.rows),
            group(self.accepted),
            group(self.duplicates),
            group(self.rejected),
            self.elapsed.as_secs_f64(),
            group(self.rows_per_second().round() as u64),
        )
    }
}

/// What the import reports while it runs.
#[derive(Debug)]
pub enum ImportEvent<'a> {
    /// The dataset did not exist and was created with this schema.
    Created(&'a Dataset),
    /// The dataset's label columns the file does not have: its readings are stored unlabelled,
    /// and their labels can be sent later.
    Unlabelled(&'a [String]),
    /// `done` of `total` rows are handled (stored, duplicates or rejected).
    Progress {
        /// Rows handled so far.
        done: u64,
        /// Data rows in the file.
        total: u64,
    },
}

/// Runs `refit datasets import`: imports, draws progress on a terminal, lists rejected rows and
/// prints the summary. Fails when any row was rejected (see [`EXIT_STATUS_HELP`]).
pub async fn run(store: &Store, actor: &Actor, args: ImportArgs) -> anyhow::Result<()> {
    let mut bar = ProgressBar::new(std::io::stderr().is_terminal());
    let result = import(store, actor, &args, |event| match event {
        ImportEvent::Created(dataset) => {
            bar.clear();
            eprintln!("{}", describe_new_dataset(dataset));
        }
        ImportEvent::Unlabelled(labels) => {
            bar.clear();
            eprintln!(
                "note: {} has no {} {}: its readings are stored without labels, which can be sent later",
                args.file.display(),
                if labels.len() == 1 { "label column" } else { "label columns" },
                quoted_list(labels)
            );
        }
        ImportEvent::Progress { done, total } => bar.update(done, total),
    })
    .await;
    bar.clear();
    let outcome = result?;
    if outcome.rejected > 0 {
        eprintln!(
            "rejected {} of {}:",
            group(outcome.rejected),
            rows(outcome.rows)
        );
        for r in &outcome.first_rejections {
            eprintln!("  {r}");
        }
        let unlisted = outcome.rejected - outcome.first_rejections.len() as u64;
        if unlisted > 0 {
            eprintln!("  ... and {} more", group(unlisted));
        }
    }
    println!("{}", outcome.summary());
    if outcome.rejected > 0 {
        anyhow::bail!(
            "the import is incomplete: {} of {} rejected (listed above); the other rows are \
             stored. Fix those lines and run the same command again: stored rows count as duplicates",
            group(outcome.rejected),
            rows(outcome.rows)
        );
    }
    Ok(())
}

/// Imports `args.file` into `args.dataset`, creating the dataset if it is missing. Rows refused by
/// validation are counted and listed in the outcome; structural problems with the file or its
/// columns, and store failures, are errors.
pub async fn import(
    store: &Store,
    actor: &Actor,
    args: &ImportArgs,
    mut on_event: impl FnMut(ImportEvent<'_>),
) -> Result<ImportOutcome, ImportError> {
    let started = Instant::now();
    let file = args.file.display().to_string();
    let scan = {
        let path = args.file.clone();
        let delimiter = args.delimiter;
        tokio::task::spawn_blocking(move || scan(&path, delimiter))
            .await
            .expect("the file scan does not panic")?
    };
    let uses = select_columns(args, &scan.header, &file)?;
    let (dataset, created) = match store.get_dataset(&args.dataset).await {
        Ok(dataset) => (dataset, false),
        Err(refit_registry::Error::NotFound(_)) => {
            let schema = infer_schema(args, &scan, &uses)?;
            match store
                .create_dataset(actor, &args.dataset, &schema, None)
                .await
            {
                Ok(dataset) => (dataset, true),
                // Someone created it meanwhile: it is an existing dataset after all.
                Err(refit_registry::Error::AlreadyExists(_)) => {
                    (get_dataset(store, &args.dataset).await?, false)
                }
                Err(source) => {
                    return Err(ImportError::Store {
                        context: format!("creating dataset '{}'", args.dataset),
                        source,
                    });
                }
            }
        }
        Err(source) => {
            return Err(ImportError::Store {
                context: format!("loading dataset '{}'", args.dataset),
                source,
            });
        }
    };
    let (kinds, unlabelled) = if created {
        (kinds_of(&dataset.schema), Vec::new())
    } else {
        check_schema(args, &scan.header, &uses, &dataset, &file)?
    };
    if created {
        on_event(ImportEvent::Created(&dataset));
    }
    if !unlabelled.is_empty() {
        on_event(ImportEvent::Unlabelled(&unlabelled));
    }
    let encoder = RowEncoder::new(args, &scan.header, &uses, &kinds);
    let total = scan.rows;
    on_event(ImportEvent::Progress { done: 0, total });

    let (tx, mut rx) = mpsc::channel(QUEUE_DEPTH);
    let reader = {
        let path = args.file.clone();
        let delimiter = args.delimiter;
        let batch_size = args.batch_size as usize;
        let width = scan.header.len();
        tokio::task::spawn_blocking(move || {
            read_batches(&path, delimiter, width, &encoder, batch_size, &tx)
        })
    };
    let mut outcome = ImportOutcome {
        file: file.clone(),
        dataset,
        created,
        rows: 0,
        accepted: 0,
        duplicates: 0,
        rejected: 0,
        first_rejections: Vec::new(),
        elapsed: Duration::ZERO,
    };
    let field_names = [
        (
            refit_registry::datasets::schema::ENTITY_KEY,
            args.entity.trim(),
        ),
        (refit_registry::datasets::schema::TIME_KEY, args.time.trim()),
    ];
    while let Some(message) = rx.recv().await {
        let batch = message.map_err(|(line, problem)| match problem {
            ReadProblem::Io(source) => ImportError::Read {
                file: file.clone(),
                source,
            },
            ReadProblem::Line(problem) => ImportError::Malformed {
                file: file.clone(),
                line,
                problem,
                stored: Some(outcome.accepted + outcome.duplicates),
            },
        })?;
        let report = if batch.lines.is_empty() {
            IngestReport {
                accepted: 0,
                duplicates: 0,
                rejected: Vec::new(),
            }
        } else {
            store
                .ingest_records(actor, &args.dataset, batch.body, true, "import")
                .await
                .map_err(|source| ImportError::Store {
                    context: format!(
                        "storing lines {}-{} (the {} before them are stored; a re-run skips them)",
                        batch.lines[0],
                        batch.lines[batch.lines.len() - 1],
                        rows(outcome.accepted + outcome.duplicates)
                    ),
                    source,
                })?
        };
        outcome.rows += batch.rows;
        outcome.accepted += report.accepted as u64;
        outcome.duplicates += report.duplicates as u64;
        outcome.rejected += (batch.refused.len() + report.rejected.len()) as u64;
        if outcome.first_rejections.len() < SHOWN_REJECTIONS {
            let mut rejections = batch.refused;
            rejections.extend(report.rejected.into_iter().map(|r: Rejection| {
                let column = r.field.map(|f| {
                    field_names
                        .iter()
                        .find(|(key, _)| *key == f)
                        .map_or(f, |(_, column)| column.to_string())
                });
                RowRejection {
                    line: batch.lines[r.index],
                    column,
                    reason: r.reason,
                }
            }));
            rejections.sort_by_key(|r| r.line);
            let room = SHOWN_REJECTIONS - outcome.first_rejections.len();
            outcome
                .first_rejections
                .extend(rejections.into_iter().take(room));
        }
        on_event(ImportEvent::Progress {
            done: outcome.rows,
            total,
        });
    }
    reader.await.expect("the CSV reader does not panic");
    outcome.elapsed = started.elapsed();
    Ok(outcome)
}

async fn get_dataset(store: &Store, name: &str) -> Result<Dataset, ImportError> {
    store
        .get_dataset(name)
        .await
        .map_err(|source| ImportError::Store {
            context: format!("loading dataset '{name}'"),
            source,
        })
}

/// "created dataset 'x' (schema version 1): features a (numeric), ...; labels y (numeric)"
fn describe_new_dataset(dataset: &Dataset) -> String {
    let list = |columns: &[Column]| {
        if columns.is_empty() {
            return "none".to_string();
        }
        columns
            .iter()
            .map(|c| {
                let kind = match c.kind {
                    ColumnKind::Numeric => "numeric",
                    ColumnKind::Categorical => "categorical",
                };
                let nullable = if c.nullable { ", nullable" } else { "" };
                format!("{} ({kind}{nullable})", c.name)
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "created dataset '{}' (schema version {}): features {}; labels {}",
        dataset.name,
        dataset.schema_version,
        list(&dataset.schema.features),
        list(&dataset.schema.labels)
    )
}

// ---------------------------------------------------------------------------------------------
// The first pass: shape, row count, kinds.

/// What the first pass learned about the file.
#[derive(Debug)]
struct FileScan {
    header: Vec<String>,
    rows: u64,
    /// Per column: every non-empty value is a finite number.
    numeric: Vec<bool>,
    /// Per column: some value is empty.
    has_empty: Vec<bool>,
}

fn csv_reader(path: &Path, delimiter: u8) -> Result<csv::Reader<std::fs::File>, ImportError> {
    let file = std::fs::File::open(path).map_err(|source| ImportError::Read {
        file: path.display().to_string(),
        source,
    })?;
    Ok(csv::ReaderBuilder::new()
        .delimiter(delimiter)
        // Ragged rows are reported by line here rather than as the crate's generic error.
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(file))
}

/// The problem a CSV error is, and the line it is on.
fn classify(err: csv::Error, file: &str) -> (u64, ReadProblem) {
    let line = err.position().map_or(0, csv::Position::line);
    match err.into_kind() {
        csv::ErrorKind::Io(e) => (line, ReadProblem::Io(e)),
        csv::ErrorKind::Utf8 { .. } => (
            line,
            ReadProblem::Line(format!(
                "is not valid UTF-8: convert {file} to UTF-8 (e.g. with iconv)"
            )),
        ),
        other => (
            line,
            ReadProblem::Line(format!("cannot be read: {other:?}")),
        ),
    }
}

fn scan(path: &Path, delimiter: u8) -> Result<FileScan, ImportError> {
    let file = path.display().to_string();
    let fail = |(line, problem): (u64, ReadProblem)| match problem {
        ReadProblem::Io(source) => ImportError::Read {
            file: file.clone(),
            source,
        },
        ReadProblem::Line(problem) => ImportError::Malformed {
            file: file.clone(),
            line,
            problem,
            stored: None,
        },
    };
    let mut reader = csv_reader(path, delimiter)?;
    let mut header: Vec<String> = reader
        .headers()
        .map_err(|e| fail(classify(e, &file)))?
        .iter()
        .map(str::to_string)
        .collect();
    if header.is_empty() || header.len() == 1 && header[0].is_empty() {
        return Err(ImportError::Empty { file });
    }
    // Spreadsheet exports often start with a byte-order mark, which the csv crate keeps.
    if let Some(first) = header[0].strip_prefix('\u{feff}') {
        header[0] = first.trim().to_string();
    }
    let width = header.len();
    let mut numeric = vec![true; width];
    let mut has_empty = vec![false; width];
    let mut rows = 0u64;
    let mut record = StringRecord::new();
    while reader
        .read_record(&mut record)
        .map_err(|e| fail(classify(e, &file)))?
    {
        let line = record.position().map_or(0, csv::Position::line);
        check_width(&record, width).map_err(|problem| fail((line, ReadProblem::Line(problem))))?;
        rows += 1;
        for (i, value) in record.iter().enumerate() {
            if value.is_empty() {
                has_empty[i] = true;
            } else if numeric[i] && parse_number(value).is_none() {
                numeric[i] = false;
            }
        }
    }
    if rows == 0 {
        return Err(ImportError::NoRows { file });
    }
    Ok(FileScan {
        header,
        rows,
        numeric,
        has_empty,
    })
}

fn check_width(record: &StringRecord, width: usize) -> Result<(), String> {
    if record.len() == width {
        Ok(())
    } else {
        Err(format!(
            "has {} field{} but the header has {width}",
            record.len(),
            if record.len() == 1 { "" } else { "s" }
        ))
    }
}

/// A finite number, as CSV files write them (`3`, `-0.5`, `1e-3`).
fn parse_number(text: &str) -> Option<f64> {
    text.parse::<f64>().ok().filter(|x| x.is_finite())
}

// ---------------------------------------------------------------------------------------------
// Columns: what each CSV column becomes, and the schema.

/// What a CSV column is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    Entity,
    Time,
    Feature,
    Label,
    Skip,
}

fn quoted_list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Separators a file may use instead of the one given.
const LIKELY_DELIMITERS: [(u8, &str); 4] = [(b',', ","), (b';', ";"), (b'\t', "tab"), (b'|', "|")];

/// The error for a `--entity`/`--time` column the header lacks: the header as parsed, and a hint
/// when the file looks split on another character.
fn missing_key_column(
    option: &str,
    name: &str,
    header: &[String],
    delimiter: u8,
    file: &str,
) -> ImportError {
    let shown = if delimiter == b'\t' {
        "tab".to_string()
    } else {
        (delimiter as char).to_string()
    };
    let mut message = format!(
        "{option} column '{name}' is not in the header of {file}.\nThe header, split on '{shown}', has {} column{}: {}",
        header.len(),
        if header.len() == 1 { "" } else { "s" },
        quoted_list(header)
    );
    let line = header.join(&(delimiter as char).to_string());
    let guess = LIKELY_DELIMITERS.iter().find(|(d, _)| {
        *d != delimiter
            && line
                .split(*d as char)
                .any(|field| field.trim().trim_matches('"').trim() == name)
    });
    if let Some((_, label)) = guess {
        let _ = write!(
            message,
            "\nThe file looks '{label}'-separated: try --delimiter '{label}'"
        );
    } else if header.len() == 1 {
        let _ = write!(
            message,
            "\nOnly one column was found: if the file is not '{shown}'-separated, give its separator with --delimiter"
        );
    }
    ImportError::Columns(message)
}

/// Decides each column's use from the options, checking that every name exists and that the
/// options do not contradict each other.
fn select_columns(
    args: &ImportArgs,
    header: &[String],
    file: &str,
) -> Result<Vec<Use>, ImportError> {
    let position = |name: &str| header.iter().position(|h| h == name.trim());
    let entity = position(&args.entity).ok_or_else(|| {
        missing_key_column("--entity", &args.entity, header, args.delimiter, file)
    })?;
    let time = position(&args.time)
        .ok_or_else(|| missing_key_column("--time", &args.time, header, args.delimiter, file))?;
    if entity == time {
        return Err(ImportError::Columns(format!(
            "--entity and --time both name column '{}': the machine and the event time must be different columns",
            header[entity]
        )));
    }
    let lookup = |option: &str, names: &[String]| -> Result<Vec<usize>, ImportError> {
        names
            .iter()
            .map(|n| {
                position(n).ok_or_else(|| {
                    ImportError::Columns(format!(
                        "{option} names column '{}', which is not in the header of {file}. Its columns: {}",
                        n.trim(),
                        quoted_list(header)
                    ))
                })
            })
            .collect()
    };
    let labels = lookup("--labels", &args.labels)?;
    let categorical = lookup("--categorical", &args.categorical)?;
    let exclude = lookup("--exclude", &args.exclude)?;
    let features = args
        .features
        .as_deref()
        .map(|f| lookup("--features", f))
        .transpose()?;
    let key_role = |i: usize| {
        if i == entity {
            Some("--entity")
        } else if i == time {
            Some("--time")
        } else {
            None
        }
    };
    for (option, list) in [("--labels", &labels), ("--exclude", &exclude)]
        .into_iter()
        .chain(features.as_ref().map(|f| ("--features", f)))
    {
        if let Some(&i) = list.iter().find(|&&i| key_role(i).is_some()) {
            return Err(ImportError::Columns(format!(
                "{option} names '{}', which is the {} column",
                header[i],
                key_role(i).expect("checked")
            )));
        }
    }
    let conflict = |a: (&str, &[usize]), b: (&str, &[usize])| {
        a.1.iter().find(|i| b.1.contains(i)).map(|&i| {
            ImportError::Columns(format!(
                "column '{}' is in both {} and {}",
                header[i], a.0, b.0
            ))
        })
    };
    let feature_list = features.as_deref().unwrap_or(&[]);
    for (a, b) in [
        (("--labels", &labels[..]), ("--exclude", &exclude[..])),
        (("--features", feature_list), ("--labels", &labels[..])),
        (("--features", feature_list), ("--exclude", &exclude[..])),
    ] {
        if let Some(err) = conflict(a, b) {
            return Err(err);
        }
    }
    let uses: Vec<Use> = (0..header.len())
        .map(|i| {
            if i == entity {
                Use::Entity
            } else if i == time {
                Use::Time
            } else if labels.contains(&i) {
                Use::Label
            } else if exclude.contains(&i) {
                Use::Skip
            } else if features.as_ref().is_none_or(|f| f.contains(&i)) {
                Use::Feature
            } else {
                Use::Skip
            }
        })
        .collect();
    if let Some(&i) = categorical
        .iter()
        .find(|&&i| !matches!(uses[i], Use::Feature | Use::Label))
    {
        let why = match key_role(i) {
            Some(option) => format!("it is the {option} column"),
            None => "it is not imported".to_string(),
        };
        return Err(ImportError::Columns(format!(
            "--categorical names '{}', but {why}",
            header[i]
        )));
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, name) in header.iter().enumerate() {
        if uses[i] == Use::Skip {
            continue;
        }
        let reserved = match name.as_str() {
            ENTITY_KEY => Some("machine, set from --entity"),
            TIME_KEY => Some("event time, set from --time"),
            _ => None,
        };
        if let Some(what) = reserved
            && matches!(uses[i], Use::Feature | Use::Label)
        {
            return Err(ImportError::Columns(format!(
                "column '{name}' of {file} cannot be imported: '{name}' is the record's {what}. \
                 Leave it out with --exclude '{name}'"
            )));
        }
        if name.is_empty() {
            return Err(ImportError::Columns(format!(
                "column {} of {file} has no name in the header: name it, or leave it out with --exclude ''",
                i + 1
            )));
        }
        if let Some(first) = seen.insert(name, i) {
            return Err(ImportError::Columns(format!(
                "the header of {file} names column '{name}' twice (columns {} and {}): rename one, or leave the name out with --exclude",
                first + 1,
                i + 1
            )));
        }
    }
    if !uses.contains(&Use::Feature) {
        return Err(ImportError::Columns(format!(
            "no feature column is left to import from {file}: a dataset needs at least one"
        )));
    }
    Ok(uses)
}

/// The schema of a new dataset, in the file's column order.
fn infer_schema(args: &ImportArgs, scan: &FileScan, uses: &[Use]) -> Result<Schema, ImportError> {
    let column = |i: usize, nullable: bool| Column {
        name: scan.header[i].clone(),
        kind: if scan.numeric[i] && !args.categorical.iter().any(|c| c.trim() == scan.header[i]) {
            ColumnKind::Numeric
        } else {
            ColumnKind::Categorical
        },
        nullable,
    };
    let schema = Schema {
        features: (0..uses.len())
            .filter(|&i| uses[i] == Use::Feature)
            .map(|i| column(i, scan.has_empty[i]))
            .collect(),
        // Labels may always be missing: a reading whose outcome is not known yet.
        labels: (0..uses.len())
            .filter(|&i| uses[i] == Use::Label)
            .map(|i| column(i, true))
            .collect(),
    };
    schema.validate().map_err(|source| ImportError::Store {
        context: format!("the schema inferred for dataset '{}'", args.dataset),
        source,
    })?;
    Ok(schema)
}

fn kinds_of(schema: &Schema) -> HashMap<String, ColumnKind> {
    schema
        .features
        .iter()
        .chain(&schema.labels)
        .map(|c| (c.name.clone(), c.kind))
        .collect()
}

/// Checks that the columns imported from the file are an existing dataset's current schema —
/// every feature, no column it lacks, and any of its labels — and that the options agree with it.
/// Returns the kinds to convert values to, and the labels the file does not have.
fn check_schema(
    args: &ImportArgs,
    header: &[String],
    uses: &[Use],
    dataset: &Dataset,
    file: &str,
) -> Result<(HashMap<String, ColumnKind>, Vec<String>), ImportError> {
    let schema = &dataset.schema;
    let imported: HashSet<&str> = header
        .iter()
        .zip(uses)
        .filter(|(_, u)| matches!(u, Use::Feature | Use::Label))
        .map(|(h, _)| h.as_str())
        .collect();
    let of_dataset = format!(
        "dataset '{}' (schema version {})",
        dataset.name, dataset.schema_version
    );
    let mut problems = Vec::new();
    for c in &schema.features {
        if !imported.contains(c.name.as_str()) {
            let hint = if header.contains(&c.name) {
                " (it is in the file but left out by --exclude or --features)"
            } else {
                ""
            };
            problems.push(format!(
                "{of_dataset} has column '{}', which {file} lacks{hint}",
                c.name
            ));
        }
    }
    for (name, _) in header
        .iter()
        .zip(uses)
        .filter(|(_, u)| matches!(u, Use::Feature | Use::Label))
    {
        if schema.feature(name).is_none() && schema.label(name).is_none() {
            problems.push(format!(
                "{file} has column '{name}', which {of_dataset} does not: leave it out with --exclude '{name}'"
            ));
        }
    }
    for name in &args.labels {
        if schema.feature(name.trim()).is_some() {
            problems.push(format!(
                "--labels names '{}', which is a feature of {of_dataset}, not a label",
                name.trim()
            ));
        }
    }
    for name in &args.categorical {
        let column = schema
            .feature(name.trim())
            .or_else(|| schema.label(name.trim()));
        if let Some((_, c)) = column
            && c.kind == ColumnKind::Numeric
        {
            problems.push(format!(
                "--categorical names '{}', which is numeric in {of_dataset}",
                c.name
            ));
        }
    }
    if problems.is_empty() {
        // Labels may arrive later than readings (the labels API), so a file without them fits.
        let unlabelled = schema
            .labels
            .iter()
            .filter(|c| !imported.contains(c.name.as_str()))
            .map(|c| c.name.clone())
            .collect();
        Ok((kinds_of(schema), unlabelled))
    } else {
        Err(ImportError::SchemaMismatch(format!(
            "{file} does not fit {of_dataset}:\n  {}\nThe file's columns (less --entity, --time and --exclude) must be the schema's features, and any of its labels",
            problems.join("\n  ")
        )))
    }
}

// ---------------------------------------------------------------------------------------------
// The second pass: rows to JSON records, in batches.

/// What a CSV value is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Entity,
    Time,
    Value(ColumnKind),
}

/// Turns a CSV row into one line of NDJSON, the record the store validates.
#[derive(Debug)]
struct RowEncoder {
    /// Per CSV column: the JSON key (`"name":`) and how to write the value, or nothing.
    columns: Vec<Option<(Vec<u8>, Slot)>>,
    time_unit: Option<TimeUnit>,
    time_column: String,
}

impl RowEncoder {
    fn new(
        args: &ImportArgs,
        header: &[String],
        uses: &[Use],
        kinds: &HashMap<String, ColumnKind>,
    ) -> RowEncoder {
        let key = |name: &str| {
            let mut k = serde_json::to_vec(name).expect("strings serialize");
            k.push(b':');
            k
        };
        let columns = header
            .iter()
            .zip(uses)
            .map(|(name, u)| match u {
                Use::Entity => Some((key(ENTITY_KEY), Slot::Entity)),
                Use::Time => Some((key(TIME_KEY), Slot::Time)),
                Use::Feature | Use::Label => Some((
                    key(name),
                    Slot::Value(kinds.get(name).copied().unwrap_or(ColumnKind::Categorical)),
                )),
                Use::Skip => None,
            })
            .collect();
        RowEncoder {
            columns,
            time_unit: args.time_unit,
            time_column: args.time.trim().to_string(),
        }
    }

    /// Appends the row's record and a newline to `out`, or refuses the row (writing nothing).
    fn encode(&self, record: &StringRecord, out: &mut Vec<u8>) -> Result<(), (String, String)> {
        let start = out.len();
        out.push(b'{');
        let mut first = true;
        for (value, column) in record.iter().zip(&self.columns) {
            let Some((key, slot)) = column else { continue };
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(key);
            if value.is_empty() {
                out.extend_from_slice(b"null");
                continue;
            }
            match slot {
                Slot::Entity | Slot::Value(ColumnKind::Categorical) => write_string(out, value),
                Slot::Value(ColumnKind::Numeric) => write_number(out, value),
                Slot::Time => match time_to_json(value, self.time_unit) {
                    Ok(Timestamp::Millis(ms)) => {
                        let _ = write!(out, "{ms}");
                    }
                    Ok(Timestamp::Text) => write_string(out, value),
                    Err(reason) => {
                        out.truncate(start);
                        return Err((self.time_column.clone(), reason));
                    }
                },
            }
        }
        out.extend_from_slice(b"}\n");
        Ok(())
    }
}

fn write_string(out: &mut Vec<u8>, text: &str) {
    serde_json::to_writer(&mut *out, text).expect("writing to a Vec does not fail");
}

/// A finite number is written as a JSON number (its own digits when they are valid JSON, so the
/// store reads the same text an HTTP client would send); anything else as a string, which the
/// store refuses for a numeric column with its usual reason.
fn write_number(out: &mut Vec<u8>, text: &str) {
    match parse_number(text) {
        Some(_) if is_json_number(text) => out.extend_from_slice(text.as_bytes()),
        Some(x) => serde_json::to_writer(&mut *out, &x).expect("finite numbers serialize"),
        None => write_string(out, text),
    }
}

/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
fn is_json_number(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    let int_start = i;
    match digits(&mut i) {
        0 => return false,
        n if n > 1 && b[int_start] == b'0' => return false,
        _ => {}
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if i < b.len() && matches!(b[i], b'e' | b'E') {
        i += 1;
        if i < b.len() && matches!(b[i], b'+' | b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// How an event time is sent to the store.
#[derive(Debug, PartialEq, Eq)]
enum Timestamp {
    /// ms since the Unix epoch.
    Millis(i64),
    /// The text itself, which the store reads as RFC 3339 (and refuses with its reason if it is
    /// not).
    Text,
}

fn time_to_json(text: &str, unit: Option<TimeUnit>) -> Result<Timestamp, String> {
    let seconds = |text: &str| -> Option<Result<Timestamp, String>> {
        let out_of_range = || format!("time {text:?} is out of range");
        if let Ok(s) = text.parse::<i64>() {
            return Some(
                s.checked_mul(1000)
                    .map(Timestamp::Millis)
                    .ok_or_else(out_of_range),
            );
        }
        let x = parse_number(text)?;
        let ms = (x * 1000.0).round();
        Some(if ms.abs() < 9.0e15 {
            Ok(Timestamp::Millis(ms as i64))
        } else {
            Err(out_of_range())
        })
    };
    let shown = || text.chars().take(40).collect::<String>();
    match unit {
        None => seconds(text).unwrap_or(Ok(Timestamp::Text)),
        Some(TimeUnit::Seconds) => seconds(text).unwrap_or_else(|| {
            Err(format!(
                "time {:?} is not a number of seconds (--time-unit s)",
                shown()
            ))
        }),
        Some(TimeUnit::Millis) => text.parse::<i64>().map(Timestamp::Millis).map_err(|_| {
            format!(
                "time {:?} is not a whole number of milliseconds (--time-unit ms)",
                shown()
            )
        }),
        Some(TimeUnit::Rfc3339) => Ok(Timestamp::Text),
    }
}

/// Converted rows on their way to the store.
#[derive(Debug)]
struct Batch {
    /// NDJSON, one record per accepted-for-sending row.
    body: String,
    /// The CSV line of each record in `body`.
    lines: Vec<u64>,
    /// Rows refused before reaching the store.
    refused: Vec<RowRejection>,
    /// Rows read, sent or refused.
    rows: u64,
}

/// Why the second pass could not go on.
#[derive(Debug)]
enum ReadProblem {
    Io(std::io::Error),
    Line(String),
}

type BatchMessage = Result<Batch, (u64, ReadProblem)>;

/// Reads the file and sends it in batches of `batch_size` rows, stopping at the first problem
/// (after sending the rows before it) or when the receiver is gone.
fn read_batches(
    path: &Path,
    delimiter: u8,
    width: usize,
    encoder: &RowEncoder,
    batch_size: usize,
    tx: &mpsc::Sender<BatchMessage>,
) {
    let file = path.display().to_string();
    let new_batch = || Batch {
        body: String::new(),
        lines: Vec::with_capacity(batch_size),
        refused: Vec::new(),
        rows: 0,
    };
    let mut reader = match csv_reader(path, delimiter) {
        Ok(r) => r,
        Err(ImportError::Read { source, .. }) => {
            let _ = tx.blocking_send(Err((0, ReadProblem::Io(source))));
            return;
        }
        Err(_) => unreachable!("opening a reader fails only on I/O"),
    };
    let mut record = StringRecord::new();
    let mut batch = new_batch();
    let mut body = Vec::with_capacity(batch_size * 256);
    let finish = |batch: &mut Batch, body: &mut Vec<u8>| {
        batch.body = String::from_utf8(std::mem::take(body))
            .expect("records are built from UTF-8 text and JSON syntax");
        std::mem::replace(batch, new_batch())
    };
    // The header was checked by the first pass.
    if let Err(e) = reader.headers() {
        let _ = tx.blocking_send(Err(classify(e, &file)));
        return;
    }
    loop {
        let problem = match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map_or(0, csv::Position::line);
                check_width(&record, width)
                    .err()
                    .map(|p| (line, ReadProblem::Line(p)))
            }
            Err(e) => Some(classify(e, &file)),
        };
        if let Some(problem) = problem {
            if batch.rows > 0 {
                let full = finish(&mut batch, &mut body);
                if tx.blocking_send(Ok(full)).is_err() {
                    return;
                }
            }
            let _ = tx.blocking_send(Err(problem));
            return;
        }
        let line = record.position().map_or(0, csv::Position::line);
        batch.rows += 1;
        match encoder.encode(&record, &mut body) {
            Ok(()) => batch.lines.push(line),
            Err((column, reason)) => batch.refused.push(RowRejection {
                line,
                column: Some(column),
                reason,
            }),
        }
        if batch.rows as usize >= batch_size {
            let full = finish(&mut batch, &mut body);
            body = Vec::with_capacity(full.body.len() + full.body.len() / 8);
            if tx.blocking_send(Ok(full)).is_err() {
                return;
            }
        }
    }
    if batch.rows > 0 {
        let _ = tx.blocking_send(Ok(finish(&mut batch, &mut body)));
    }
}

// ---------------------------------------------------------------------------------------------
// Progress.

/// `1234567` → `1,234,567`.
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1 row`, `2 rows`, `1,000 rows`.
fn rows(n: u64) -> String {
    format!("{} row{}", group(n), if n == 1 { "" } else { "s" })
}

/// `[=====>     ]  45%  4,500/10,000 rows  12,345 rows/s`
fn render_progress(done: u64, total: u64, elapsed: Duration) -> String {
    const WIDTH: usize = 30;
    let fraction = if total == 0 {
        1.0
    } else {
        (done as f64 / total as f64).min(1.0)
    };
    let filled = (fraction * WIDTH as f64).floor() as usize;
    let bar = if filled >= WIDTH {
        "=".repeat(WIDTH)
    } else {
        format!("{}>{}", "=".repeat(filled), " ".repeat(WIDTH - filled - 1))
    };
    let rate = done as f64 / elapsed.as_secs_f64().max(1e-3);
    format!(
        "[{bar}] {:>3}%  {}/{} rows  {} rows/s",
        (fraction * 100.0).floor() as u64,
        group(done),
        group(total),
        group(rate.round() as u64)
    )
}

/// A progress bar on stderr, drawn only when stderr is a terminal.
struct ProgressBar {
    enabled: bool,
    started: Instant,
    drawn: Option<Instant>,
}

impl ProgressBar {
    fn new(enabled: bool) -> ProgressBar {
        ProgressBar {
            enabled,
            started: Instant::now(),
            drawn: None,
        }
    }

    fn update(&mut self, done: u64, total: u64) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if self.drawn.is_some_and(|t| now - t < REDRAW_EVERY) && done < total {
            return;
        }
        self.drawn = Some(now);
        let mut err = std::io::stderr().lock();
        // `\x1b[K` clears what a longer previous line left behind.
        let _ = write!(
            err,
            "\r{}\x1b[K",
            render_progress(done, total, now - self.started)
        );
        let _ = err.flush();
    }

    fn clear(&mut self) {
        if self.enabled && self.drawn.take().is_some() {
            eprint!("\r\x1b[K");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        args: ImportArgs,
    }

    fn args(extra: &[&str]) -> ImportArgs {
        let base = [
            "import",
            "f.csv",
            "--dataset",
            "d",
            "--entity",
            "m",
            "--time",
            "t",
        ];
        Cmd::try_parse_from(base.iter().chain(extra)).unwrap().args
    }

    fn header(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_parse_and_are_checked() {
        let a = args(&[
            "--labels",
            "y, z",
            "--delimiter",
            "tab",
            "--time-unit",
            "ms",
        ]);
        assert_eq!(a.labels, vec!["y", " z"]);
        assert_eq!(a.delimiter, b'\t');
        assert_eq!(a.time_unit, Some(TimeUnit::Millis));
        assert_eq!(a.batch_size, 5000);
        assert_eq!(args(&["--delimiter", ";"]).delimiter, b';');
        for bad in [
            &["--batch-size", "0"][..],
            &["--batch-size", "100001"],
            &["--delimiter", ";;"],
            &["--time-unit", "minutes"],
        ] {
            let base = [
                "import",
                "f.csv",
                "--dataset",
                "d",
                "--entity",
                "m",
                "--time",
                "t",
            ];
            assert!(
                Cmd::try_parse_from(base.iter().chain(bad)).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn columns_get_their_uses() {
        let h = header(&["m", "t", "a", "b", "c", "y"]);
        let uses = select_columns(&args(&["--labels", "y", "--exclude", "c"]), &h, "f").unwrap();
        assert_eq!(
            uses,
            [
                Use::Entity,
                Use::Time,
                Use::Feature,
                Use::Feature,
                Use::Skip,
                Use::Label
            ]
        );
        let uses = select_columns(&args(&["--features", "b", "--labels", "y"]), &h, "f").unwrap();
        assert_eq!(
            uses,
            [
                Use::Entity,
                Use::Time,
                Use::Skip,
                Use::Feature,
                Use::Skip,
                Use::Label
            ]
        );
        let err = |extra: &[&str]| {
            select_columns(&args(extra), &h, "f")
                .unwrap_err()
                .to_string()
        };
        assert!(err(&["--labels", "q"]).contains("--labels names column 'q'"));
        assert!(err(&["--exclude", "t"]).contains("is the --time column"));
        assert!(
            err(&["--labels", "y", "--exclude", "y"]).contains("in both --labels and --exclude")
        );
        assert!(err(&["--categorical", "m"]).contains("it is the --entity column"));
        assert!(err(&["--features", "a", "--categorical", "b"]).contains("not imported"));
        let reserved = header(&["m", "t", "ts"]);
        assert!(
            select_columns(&args(&[]), &reserved, "f")
                .unwrap_err()
                .to_string()
                .contains("'ts' is the record's event time, set from --time. Leave it out with --exclude 'ts'")
        );
        assert!(
            select_columns(
                &args(&["--exclude", "ts", "--features", "m"]),
                &reserved,
                "f"
            )
            .is_err()
        );
        let dup = header(&["m", "t", "a", "a"]);
        assert!(
            select_columns(&args(&[]), &dup, "f")
                .unwrap_err()
                .to_string()
                .contains("names column 'a' twice (columns 3 and 4)")
        );
    }

    #[test]
    fn a_missing_key_column_suggests_the_delimiter() {
        let h = header(&["m;t;a"]);
        let msg = select_columns(&args(&[]), &h, "f.csv")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("--entity column 'm' is not in the header of f.csv"),
            "{msg}"
        );
        assert!(msg.contains("has 1 column: 'm;t;a'"), "{msg}");
        assert!(msg.contains("try --delimiter ';'"), "{msg}");
        let h = header(&["m", "x"]);
        let msg = select_columns(&args(&[]), &h, "f.csv")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("has 2 columns: 'm', 'x'"), "{msg}");
        assert!(!msg.contains("--delimiter"), "{msg}");
    }

    #[test]
    fn times_convert_by_unit() {
        assert_eq!(time_to_json("12", None), Ok(Timestamp::Millis(12_000)));
        assert_eq!(time_to_json("1.5", None), Ok(Timestamp::Millis(1_500)));
        assert_eq!(
            time_to_json("2024-01-01T00:00:00Z", None),
            Ok(Timestamp::Text)
        );
        assert_eq!(
            time_to_json("12", Some(TimeUnit::Millis)),
            Ok(Timestamp::Millis(12))
        );
        assert!(
            time_to_json("1.5", Some(TimeUnit::Millis))
                .unwrap_err()
                .contains("whole number of milliseconds")
        );
        assert!(
            time_to_json("noon", Some(TimeUnit::Seconds))
                .unwrap_err()
                .contains("not a number of seconds")
        );
        assert!(
            time_to_json("9223372036854775807", None)
                .unwrap_err()
                .contains("out of range")
        );
        assert_eq!(
            time_to_json("12", Some(TimeUnit::Rfc3339)),
            Ok(Timestamp::Text)
        );
    }

    #[test]
    fn rows_become_json_records() {
        let h = header(&["m", "t", "kind", "temp", "skip"]);
        let a = args(&["--exclude", "skip"]);
        let uses = select_columns(&a, &h, "f").unwrap();
        let kinds = HashMap::from([
            ("kind".to_string(), ColumnKind::Categorical),
            ("temp".to_string(), ColumnKind::Numeric),
        ]);
        let enc = RowEncoder::new(&a, &h, &uses, &kinds);
        let mut out = Vec::new();
        enc.encode(
            &StringRecord::from(vec!["M\"1", "3", "L", "298.1", "x"]),
            &mut out,
        )
        .unwrap();
        enc.encode(
            &StringRecord::from(vec!["M2", "4", "", ".5", "x"]),
            &mut out,
        )
        .unwrap();
        enc.encode(
            &StringRecord::from(vec!["M3", "5", "H", "hot", "x"]),
            &mut out,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"machine_id\":\"M\\\"1\",\"ts\":3000,\"kind\":\"L\",\"temp\":298.1}\n\
             {\"machine_id\":\"M2\",\"ts\":4000,\"kind\":null,\"temp\":0.5}\n\
             {\"machine_id\":\"M3\",\"ts\":5000,\"kind\":\"H\",\"temp\":\"hot\"}\n"
        );
        let a = args(&["--exclude", "skip", "--time-unit", "s"]);
        let enc = RowEncoder::new(&a, &h, &uses, &kinds);
        let mut out = b"kept".to_vec();
        let err = enc
            .encode(
                &StringRecord::from(vec!["M", "noon", "L", "1", "x"]),
                &mut out,
            )
            .unwrap_err();
        assert_eq!(err.0, "t");
        assert_eq!(out, b"kept");
    }

    #[test]
    fn json_numbers_are_recognised() {
        for ok in ["0", "-1", "3.25", "1e5", "1E-5", "-0.5e+3"] {
            assert!(is_json_number(ok), "{ok}");
        }
        for bad in ["", "-", "01", ".5", "5.", "+1", "1e", "inf", "1,5"] {
            assert!(!is_json_number(bad), "{bad}");
        }
    }

    #[test]
    fn progress_renders() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1_000), "1,000");
        assert_eq!(group(1_234_567), "1,234,567");
        assert_eq!(
            render_progress(4_500, 10_000, Duration::from_millis(500)),
            "[=============>                ]  45%  4,500/10,000 rows  9,000 rows/s"
        );
        assert!(
            render_progress(10, 10, Duration::from_secs(1))
                .starts_with(&format!("[{}] 100%", "=".repeat(30)))
        );
    }
}
