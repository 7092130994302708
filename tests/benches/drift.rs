//! Drift over C-MAPSS: FD001's training set (one operating condition, 20,631 rows) as the
//! reference, FD002's (six conditions, 53,759 rows) as the current data, on the 14 sensors that
//! vary in FD001 — refit's drift statistics against Evidently 0.7's `DataDriftTable` on the same
//! columns, in the same run, with the same per-column tests, values and verdicts. Run by
//! `scripts/bench drift`, which makes the Evidently venv (`target/evidently-venv`, pinned by
//! `tests/benches/drift/requirements.txt`); `REFIT_EVIDENTLY_PYTHON` names another interpreter.
//!
//! refit is timed three ways, each the best of 20 runs from the columns in memory (Evidently's
//! figure is the best of 3 runs from its DataFrames in memory):
//! * cold: `numeric_column_drift` per column, sorting both samples, on one thread;
//! * prepared: against a reference prepared once ([`ReferenceColumn`]: sorted, with its
//!   standard deviation and index), one column after the other on one thread;
//! * the drift check: `judge_window` with the prepared reference, as refit judges a window or
//!   checks stored history — a window this large has its columns shared between the cores.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use refit_registry::drift::ReportSource;
use refit_scorer::drift::monitor::MachineRows;
use refit_scorer::drift::reference::ReferenceColumn;
use refit_scorer::drift::{
    ColumnVerdict, MonitorKey, MonitorSettings, PreparedReference, ProfileColumn, ValidDriftParams,
    judge_window, numeric_column_drift,
};
use refit_scorer::{FeatureColumn, Task, drift::DriftTest};
use serde_json::Value;

const SENSORS: [&str; 14] = [
    "sensor_02",
    "sensor_03",
    "sensor_04",
    "sensor_07",
    "sensor_08",
    "sensor_09",
    "sensor_11",
    "sensor_12",
    "sensor_13",
    "sensor_14",
    "sensor_15",
    "sensor_17",
    "sensor_20",
    "sensor_21",
];
const RUNS: usize = 20;
const EVIDENTLY_RUNS: usize = 3;

fn data(file: &str) -> String {
    format!("{}/data/{file}", env!("CARGO_MANIFEST_DIR"))
}

/// The sensor columns of a C-MAPSS CSV.
fn columns(path: &str) -> Vec<Vec<f64>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let at: Vec<usize> = SENSORS
        .iter()
        .map(|s| header.iter().position(|h| h == s).unwrap())
        .collect();
    let mut out = vec![Vec::new(); SENSORS.len()];
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        for (column, &i) in out.iter_mut().zip(&at) {
            column.push(fields[i].parse().unwrap());
        }
    }
    out
}

fn best(runs: usize, mut f: impl FnMut()) -> Duration {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .min()
        .unwrap()
}

fn evidently_name(test: DriftTest) -> &'static str {
    match test {
        DriftTest::Ks => "K-S p_value",
        DriftTest::ChiSquare => "chi-square p_value",
        DriftTest::Z => "Z-test p_value",
        DriftTest::WassersteinNormed => "Wasserstein distance (normed)",
        DriftTest::JensenShannon => "Jensen-Shannon distance",
    }
}

fn run_evidently(reference: &str, current: &str) -> Option<Value> {
    let python = std::env::var("REFIT_EVIDENTLY_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/../target/evidently-venv/bin/python",
            env!("CARGO_MANIFEST_DIR")
        )
    });
    if !Path::new(&python).exists() {
        eprintln!("{python} not found: Evidently skipped (scripts/bench drift makes its venv)");
        return None;
    }
    let script = format!(
        "{}/benches/drift/evidently_drift.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = Command::new(&python)
        .args([
            &script,
            reference,
            current,
            &SENSORS.join(","),
            &EVIDENTLY_RUNS.to_string(),
        ])
        .output()
        .expect("running Evidently");
    assert!(
        out.status.success(),
        "Evidently failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).expect("Evidently's JSON"))
}

fn main() {
    let (reference_path, current_path) = (data("train_FD001.csv"), data("train_FD002.csv"));
    let reference = columns(&reference_path);
    let current = columns(&current_path);
    let params = ValidDriftParams::default();

    let verdicts: Vec<ColumnVerdict> = reference
        .iter()
        .zip(&current)
        .map(|(r, c)| numeric_column_drift(r, c, &params).unwrap())
        .collect();
    let cold = best(RUNS, || {
        for (r, c) in reference.iter().zip(&current) {
            std::hint::black_box(numeric_column_drift(r, c, &params).unwrap());
        }
    });
    let prepared: Vec<ReferenceColumn> = reference
        .iter()
        .zip(SENSORS)
        .map(|(r, name)| {
            ReferenceColumn::new(&ProfileColumn::Numeric {
                name: name.to_string(),
                values: r.iter().map(|&x| Some(x)).collect(),
            })
        })
        .collect();
    let current_columns: Vec<FeatureColumn> = current
        .iter()
        .map(|c| FeatureColumn::Numeric(c.clone()))
        .collect();
    for ((p, c), v) in prepared.iter().zip(&current_columns).zip(&verdicts) {
        assert_eq!(&p.verdict(c, &params).unwrap(), v, "prepared = cold");
    }
    let warm = best(RUNS, || {
        for (p, c) in prepared.iter().zip(&current_columns) {
            std::hint::black_box(p.verdict(c, &params).unwrap());
        }
    });
    let whole = PreparedReference {
        task: Task::Regression,
        classes: Vec::new(),
        features: prepared.clone(),
        prediction: None,
    };
    let key = MonitorKey {
        dataset: "fd002".into(),
        model: "fd001".into(),
        version: 1,
    };
    let (settings, machines) = (MonitorSettings::default(), MachineRows::default());
    let check = || {
        judge_window(
            &key,
            ReportSource::Check,
            &whole,
            &settings,
            &current_columns,
            None,
            &machines,
            &[],
        )
    };
    for (reported, v) in check().features.iter().zip(&verdicts) {
        assert_eq!(
            (reported.value, reported.drifted),
            (Some(v.value), v.drifted),
            "check = cold"
        );
    }
    let threaded = best(RUNS, || {
        std::hint::black_box(check());
    });

    println!();
    println!(
        "refit drift benchmark: C-MAPSS FD001 train ({} rows, reference) vs FD002 train ({} rows, \
         current), {} sensors",
        reference[0].len(),
        current[0].len(),
        SENSORS.len()
    );
    let evidently = run_evidently(&reference_path, &current_path);
    println!(
        "{:<10} {:<30} {:>22} {:>8} {:>22} {:>8}",
        "column", "test", "refit value", "drift", "Evidently value", "drift"
    );
    let mut same = true;
    for (i, v) in verdicts.iter().enumerate() {
        let theirs = evidently.as_ref().map(|e| &e["columns"][SENSORS[i]]);
        let (value, drifted) = theirs.map_or((String::from("-"), String::from("-")), |t| {
            (
                format!("{:.15e}", t["value"].as_f64().unwrap()),
                t["drifted"].to_string(),
            )
        });
        if let Some(t) = theirs {
            let expected = t["value"].as_f64().unwrap();
            let agrees = t["test"] == evidently_name(v.test)
                && t["drifted"] == v.drifted
                && (v.value - expected).abs() <= 1e-9 * expected.abs().max(1e-300);
            same &= agrees;
        }
        println!(
            "{:<10} {:<30} {:>22} {:>8} {:>22} {:>8}",
            SENSORS[i],
            evidently_name(v.test),
            format!("{:.15e}", v.value),
            v.drifted,
            value,
            drifted
        );
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!();
    println!("{:<44} {:>12}", "run (best of several)", "time");
    println!(
        "{:<44} {:>9.2} ms",
        "refit, cold (sorts both samples)",
        ms(cold)
    );
    println!(
        "{:<44} {:>9.2} ms",
        "refit, prepared reference (the monitor)",
        ms(warm)
    );
    println!(
        "{:<44} {:>9.2} ms",
        "refit, drift check (all cores)",
        ms(threaded)
    );
    if let Some(e) = &evidently {
        let secs = e["seconds"].as_f64().unwrap();
        println!(
            "{:<44} {:>9.2} ms",
            "Evidently 0.7 DataDriftTable",
            secs * 1e3
        );
        println!();
        println!(
            "same tests, values (1e-9 relative) and verdicts on every column: {}",
            if same { "yes" } else { "NO" }
        );
        println!(
            "refit faster than Evidently: cold {:.0}x, prepared {:.0}x, drift check {:.0}x \
             (target >= 50x)",
            secs / cold.as_secs_f64(),
            secs / warm.as_secs_f64(),
            secs / threaded.as_secs_f64()
        );
        assert!(same, "refit and Evidently disagree");
    }
}
