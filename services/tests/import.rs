//! `refit datasets import` as a process: the real AI4I and C-MAPSS files, idempotent re-runs, and
//! the mistakes an operator makes (ragged rows, the wrong delimiter, missing columns, bad times,
//! empty files, a file that does not fit the dataset).

use std::path::{Path, PathBuf};
use std::process::Command;

use refit_registry::datasets::{Column, ColumnKind};
use refit_registry::{Store, StoreOptions};

const BIN: &str = env!("CARGO_BIN_EXE_refit");
const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data");

const AI4I_LABELS: &str = "Machine failure,TWF,HDF,PWF,OSF,RNF";

fn data(name: &str) -> PathBuf {
    Path::new(DATA).join(name)
}

/// What one `refit` run printed and how it ended.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// `refit datasets import FILE ARGS...` in `dir` (its data dir is `dir/refit-data`), with a clean
/// environment.
fn import(dir: &Path, file: &Path, args: &[&str]) -> Run {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir).env("REFIT_LOG", "warn");
    for (key, _) in std::env::vars() {
        if key.starts_with("REFIT_") && key != "REFIT_LOG" || key == "DATABASE_URL" {
            cmd.env_remove(key);
        }
    }
    let out = cmd
        .args(["datasets", "import"])
        .arg(file)
        .args(args)
        .output()
        .expect("running refit");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

async fn store(dir: &Path) -> Store {
    let url = format!("sqlite://{}", dir.join("refit-data/refit.db").display());
    Store::connect(&StoreOptions::new(&url)).await.unwrap()
}

fn col(name: &str, kind: ColumnKind, nullable: bool) -> Column {
    Column {
        name: name.into(),
        kind,
        nullable,
    }
}

fn numeric(name: &str) -> Column {
    col(name, ColumnKind::Numeric, false)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn ai4i(dir: &Path, file: &Path, extra: &[&str]) -> Run {
    let mut args = vec![
        "--dataset",
        "ai4i",
        "--entity",
        "Product ID",
        "--time",
        "UDI",
        "--categorical",
        "Type",
        "--labels",
        AI4I_LABELS,
    ];
    args.extend_from_slice(extra);
    import(dir, file, &args)
}

#[tokio::test]
async fn ai4i_imports_with_an_inferred_schema_and_a_rerun_stores_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let run = ai4i(dir.path(), &data("ai4i2020.csv"), &[]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout.contains(
            "into dataset 'ai4i': 10,000 rows read, 10,000 accepted, 0 duplicates, 0 rejected in "
        ),
        "{run:?}"
    );
    assert!(run.stdout.contains(" rows/s)"), "{run:?}");
    assert!(
        run.stderr.contains("created dataset 'ai4i' (schema version 1): features Type (categorical), Air temperature [K] (numeric)"),
        "{run:?}"
    );

    let store = store(dir.path()).await;
    let dataset = store.get_dataset("ai4i").await.unwrap();
    assert_eq!(
        dataset.schema.features,
        vec![
            col("Type", ColumnKind::Categorical, false),
            numeric("Air temperature [K]"),
            numeric("Process temperature [K]"),
            numeric("Rotational speed [rpm]"),
            numeric("Torque [Nm]"),
            numeric("Tool wear [min]"),
        ]
    );
    let labels: Vec<Column> = AI4I_LABELS
        .split(',')
        .map(|l| col(l, ColumnKind::Numeric, true))
        .collect();
    assert_eq!(dataset.schema.labels, labels);
    assert_eq!(
        store.dataset_counts("ai4i").await.unwrap(),
        (10_000, 10_000)
    );

    let again = ai4i(dir.path(), &data("ai4i2020.csv"), &[]);
    assert_eq!(again.code, Some(0), "{again:?}");
    assert!(
        again
            .stdout
            .contains("10,000 rows read, 0 accepted, 10,000 duplicates, 0 rejected"),
        "{again:?}"
    );
    assert!(!again.stderr.contains("created dataset"), "{again:?}");
    assert_eq!(
        store.dataset_counts("ai4i").await.unwrap(),
        (10_000, 10_000)
    );
    assert_eq!(store.get_dataset("ai4i").await.unwrap().schema_version, 1);
    store.close().await;
}

#[tokio::test]
async fn cmapss_fd001_imports_every_row_and_its_test_file_loads_unlabelled() {
    let dir = tempfile::tempdir().unwrap();
    let fd001 = [
        "--dataset",
        "fd001",
        "--entity",
        "unit",
        "--time",
        "cycle",
        "--labels",
        "rul",
    ];
    let run = import(dir.path(), &data("train_FD001.csv"), &fd001);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout
            .contains("20,631 rows read, 20,631 accepted, 0 duplicates, 0 rejected"),
        "{run:?}"
    );
    let store = store(dir.path()).await;
    let dataset = store.get_dataset("fd001").await.unwrap();
    let mut features = vec![
        numeric("setting_1"),
        numeric("setting_2"),
        numeric("setting_3"),
    ];
    features.extend((1..=21).map(|i| numeric(&format!("sensor_{i:02}"))));
    assert_eq!(dataset.schema.features, features);
    assert_eq!(
        dataset.schema.labels,
        vec![col("rul", ColumnKind::Numeric, true)]
    );
    assert_eq!(
        store.dataset_counts("fd001").await.unwrap(),
        (20_631, 20_631)
    );

    // A file without one of the dataset's features does not fit, and nothing is stored.
    let train = data("train_FD001.csv");
    let run = import(
        dir.path(),
        &train,
        &[&fd001[..], &["--exclude", "sensor_21"]].concat(),
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "dataset 'fd001' (schema version 1) has column 'sensor_21', which {} lacks (it is in the file but left out by --exclude or --features)",
            train.display()
        )),
        "{run:?}"
    );
    assert_eq!(
        store.dataset_counts("fd001").await.unwrap(),
        (20_631, 20_631)
    );

    // The test file has no rul: --labels rul names a column it lacks.
    let test_file = data("test_FD001.csv");
    let run = import(dir.path(), &test_file, &fd001);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr
            .contains("--labels names column 'rul', which is not in the header"),
        "{run:?}"
    );

    // In a dataset of its own it loads, without labels.
    let run = import(
        dir.path(),
        &test_file,
        &[
            "--dataset",
            "fd001-test",
            "--entity",
            "unit",
            "--time",
            "cycle",
        ],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout.contains("13,096 rows read, 13,096 accepted"),
        "{run:?}"
    );
    assert_eq!(
        store.dataset_counts("fd001-test").await.unwrap(),
        (13_096, 0)
    );
    store.close().await;
}

/// Not a timing assertion: prints the rate so a release run (`cargo test --release -- --nocapture`)
/// shows it.
#[test]
fn cmapss_fd002_imports_53759_rows() {
    let dir = tempfile::tempdir().unwrap();
    let run = import(
        dir.path(),
        &data("train_FD002.csv"),
        &[
            "--dataset",
            "fd002",
            "--entity",
            "unit",
            "--time",
            "cycle",
            "--labels",
            "rul",
        ],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout
            .contains("53,759 rows read, 53,759 accepted, 0 duplicates, 0 rejected"),
        "{run:?}"
    );
    eprintln!("{}", run.stdout.trim());
}

#[tokio::test]
async fn a_ragged_row_stops_the_import_before_anything_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--dataset",
        "ragged",
        "--entity",
        "machine",
        "--time",
        "time",
    ];
    let good = write(
        dir.path(),
        "good.csv",
        "machine,time,temp,speed\nm1,1,300.1,1500\nm1,2,300.2,1501\n",
    );
    let ragged = write(
        dir.path(),
        "ragged.csv",
        "machine,time,temp,speed\nm1,3,300.3,1502\nm1,4,300.4,1503\nm1,5,300.5\nm1,6,300.6,1505\n",
    );

    // A new dataset is not even created.
    let run = import(dir.path(), &ragged, &args);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "{}: line 4 has 3 fields but the header has 4; nothing was imported",
            ragged.display()
        )),
        "{run:?}"
    );
    let store = store(dir.path()).await;
    assert!(matches!(
        store.get_dataset("ragged").await,
        Err(refit_registry::Error::NotFound(_))
    ));

    // Into an existing dataset, the rows before the bad line are not stored either.
    assert_eq!(import(dir.path(), &good, &args).code, Some(0));
    let run = import(dir.path(), &ragged, &args);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("line 4 has 3 fields"), "{run:?}");
    assert_eq!(store.dataset_counts("ragged").await.unwrap(), (2, 0));
    store.close().await;
}

#[test]
fn a_semicolon_separated_file_gets_a_delimiter_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(data("ai4i2020.csv")).unwrap();
    let head: String = text
        .lines()
        .take(101)
        .map(|l| l.replace(',', ";") + "\n")
        .collect();
    let file = write(dir.path(), "ai4i-semicolons.csv", &head);

    let run = ai4i(dir.path(), &file, &[]);
    assert_eq!(run.code, Some(1), "{run:?}");
    for expected in [
        format!(
            "--entity column 'Product ID' is not in the header of {}.",
            file.display()
        ),
        "The header, split on ',', has 1 column: 'UDI;Product ID;Type;Air temperature [K];".into(),
        "The file looks ';'-separated: try --delimiter ';'".into(),
    ] {
        assert!(run.stderr.contains(&expected), "{expected}\n{run:?}");
    }

    let run = ai4i(dir.path(), &file, &["--delimiter", ";"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout.contains("100 rows read, 100 accepted"),
        "{run:?}"
    );
}

#[test]
fn a_missing_time_column_lists_the_available_columns() {
    let dir = tempfile::tempdir().unwrap();
    let file = data("train_FD001.csv");
    let run = import(
        dir.path(),
        &file,
        &["--dataset", "fd001", "--entity", "unit", "--time", "cycles"],
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "--time column 'cycles' is not in the header of {}.\nThe header, split on ',', has 27 columns: 'unit', 'cycle', 'setting_1',",
            file.display()
        )),
        "{run:?}"
    );
    assert!(!run.stderr.contains("--delimiter"), "{run:?}");

    let run = import(
        dir.path(),
        &file,
        &[
            "--dataset",
            "fd001",
            "--entity",
            "unit",
            "--time",
            "cycle",
            "--labels",
            "RUL",
        ],
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr
            .contains("--labels names column 'RUL', which is not in the header"),
        "{run:?}"
    );
}

#[tokio::test]
async fn an_unparseable_time_rejects_only_its_row() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "times.csv",
        "machine,time,temp\nm1,1,300\nm1,2,301\nm1,yesterday,302\nm1,4,303\nm1,5,304\n",
    );
    let args = [
        "--dataset",
        "times",
        "--entity",
        "machine",
        "--time",
        "time",
    ];
    let run = import(dir.path(), &file, &args);
    assert_eq!(run.code, Some(1), "a partial import fails: {run:?}");
    assert!(
        run.stderr.contains(
            "rejected 1 of 5 rows:\n  line 4, column 'time': ts \"yesterday\" is not an RFC 3339 time"
        ),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains("5 rows read, 4 accepted, 0 duplicates, 1 rejected"),
        "{run:?}"
    );
    assert!(run.stderr.contains("the import is incomplete"), "{run:?}");
    let store = store(dir.path()).await;
    assert_eq!(store.dataset_counts("times").await.unwrap(), (4, 0));

    // With an explicit unit the importer refuses the row itself, saying why.
    let run = import(
        dir.path(),
        &file,
        &[&args[..], &["--time-unit", "s"]].concat(),
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains(
            "line 4, column 'time': time \"yesterday\" is not a number of seconds (--time-unit s)"
        ),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains("5 rows read, 0 accepted, 4 duplicates, 1 rejected"),
        "{run:?}"
    );
    store.close().await;
}

#[tokio::test]
async fn rejected_rows_are_listed_by_line_up_to_twenty() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--dataset",
        "temps",
        "--entity",
        "machine",
        "--time",
        "time",
    ];
    let first = write(dir.path(), "first.csv", "machine,time,temp\nm1,1,300\n");
    assert_eq!(import(dir.path(), &first, &args).code, Some(0));
    // temp is numeric in the dataset now; 25 rows say "hot", spread over batches of 10.
    let mut text = String::from("machine,time,temp\n");
    for t in 2..=51 {
        let temp = if t % 2 == 0 {
            "hot".to_string()
        } else {
            format!("{t}.5")
        };
        text.push_str(&format!("m1,{t},{temp}\n"));
    }
    let file = write(dir.path(), "second.csv", &text);
    let run = import(
        dir.path(),
        &file,
        &[&args[..], &["--batch-size", "10"]].concat(),
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains(
            "rejected 25 of 50 rows:\n  line 2, column 'temp': expected a number, got the string \"hot\"\n  line 4, column 'temp':"
        ),
        "{run:?}"
    );
    assert!(run.stderr.contains("  line 40, column 'temp'"), "{run:?}");
    assert!(!run.stderr.contains("  line 42, column"), "{run:?}");
    assert!(run.stderr.contains("  ... and 5 more"), "{run:?}");
    assert!(
        run.stdout
            .contains("50 rows read, 25 accepted, 0 duplicates, 25 rejected"),
        "{run:?}"
    );
    let store = store(dir.path()).await;
    assert_eq!(store.dataset_counts("temps").await.unwrap(), (26, 0));
    store.close().await;
}

#[test]
fn empty_and_header_only_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--dataset",
        "empty",
        "--entity",
        "machine",
        "--time",
        "time",
    ];
    let empty = write(dir.path(), "empty.csv", "");
    let run = import(dir.path(), &empty, &args);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "{} is empty: expected a header line naming the columns",
            empty.display()
        )),
        "{run:?}"
    );
    let header_only = write(dir.path(), "header.csv", "machine,time,temp\n");
    let run = import(dir.path(), &header_only, &args);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "{} has a header line but no rows to import",
            header_only.display()
        )),
        "{run:?}"
    );
    let run = import(dir.path(), &dir.path().join("missing.csv"), &args);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "reading {}\n\nCaused by:\n    No such file or directory",
            dir.path().join("missing.csv").display()
        )),
        "{run:?}"
    );
}

#[tokio::test]
async fn options_shape_the_schema_and_an_existing_schema_must_fit() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "plant.csv",
        "\u{feff}site,machine,time,code,temp,note,failed\n\
         A,m1,2024-01-01T00:00:00Z,7,300.5,,0\n\
         A,m1,2024-01-01T00:01:00Z,8,,ok,\n\
         A,m2,2024-01-01T00:00:00Z,7,301,ok,1\n",
    );
    let base = [
        "--entity", "machine", "--time", "time", "--labels", "failed",
    ];
    let run = import(
        dir.path(),
        &file,
        &[
            &base[..],
            &[
                "--dataset",
                "plant",
                "--categorical",
                "code",
                "--exclude",
                "site",
            ],
        ]
        .concat(),
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    let store = store(dir.path()).await;
    let dataset = store.get_dataset("plant").await.unwrap();
    assert_eq!(
        dataset.schema.features,
        vec![
            col("code", ColumnKind::Categorical, false),
            col("temp", ColumnKind::Numeric, true),
            col("note", ColumnKind::Categorical, true),
        ]
    );
    assert_eq!(
        dataset.schema.labels,
        vec![col("failed", ColumnKind::Numeric, true)]
    );
    // The unlabelled row is stored without labels.
    assert_eq!(store.dataset_counts("plant").await.unwrap(), (3, 2));

    let run = import(
        dir.path(),
        &file,
        &[
            &base[..],
            &["--dataset", "plant-temp", "--features", "temp"],
        ]
        .concat(),
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    let dataset = store.get_dataset("plant-temp").await.unwrap();
    assert_eq!(
        dataset.schema.features,
        vec![col("temp", ColumnKind::Numeric, true)]
    );

    // Without --exclude site the file has a column the dataset lacks.
    let run = import(
        dir.path(),
        &file,
        &[&base[..], &["--dataset", "plant"]].concat(),
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "{} has column 'site', which dataset 'plant' (schema version 1) does not: leave it out with --exclude 'site'",
            file.display()
        )),
        "{run:?}"
    );
    // A file without the label column fits: its readings are stored unlabelled.
    let later = write(
        dir.path(),
        "later.csv",
        "machine,time,code,temp,note\nm3,2024-01-01T00:02:00Z,9,299.5,ok\n",
    );
    let run = import(
        dir.path(),
        &later,
        &[
            "--dataset",
            "plant",
            "--entity",
            "machine",
            "--time",
            "time",
        ],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "note: {} has no label column 'failed': its readings are stored without labels",
            later.display()
        )),
        "{run:?}"
    );
    assert_eq!(store.dataset_counts("plant").await.unwrap(), (4, 2));
    // --categorical cannot change an existing numeric column.
    let run = import(
        dir.path(),
        &file,
        &[
            &base[..],
            &[
                "--dataset",
                "plant",
                "--exclude",
                "site",
                "--categorical",
                "temp",
            ],
        ]
        .concat(),
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr
            .contains("--categorical names 'temp', which is numeric in dataset 'plant'"),
        "{run:?}"
    );
    assert_eq!(store.dataset_counts("plant").await.unwrap(), (4, 2));
    store.close().await;
}

#[test]
fn help_documents_the_exit_status() {
    let out = Command::new(BIN)
        .args(["datasets", "import", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for expected in [
        "Usage: refit datasets import [OPTIONS] --dataset <NAME> --entity <COL> --time <COL> <FILE>",
        "--time-unit <UNIT>",
        "A partial import is a failure for scripts",
    ] {
        assert!(help.contains(expected), "{expected}\n{help}");
    }
}
