//! Parsing and validating a batch of records on one thread (`cargo bench -p refit-registry
//! --bench parse`): 10,000 NDJSON readings as the stream benchmark sends them (a machine id, a
//! time and eight 17-digit features), 200 runs over 20 different batches in turn. The stream's
//! parse step runs this on two threads, one half each.
//!
//! Best of the runs is the figure to compare builds by. The median is printed beside it: on a
//! shared machine the same work takes up to twice as long for stretches of a tenth of a second
//! or more, as it does under a server's sustained load.

use std::fmt::Write;
use std::time::Instant;

use refit_registry::datasets::record::{RecordParser, split_body};
use refit_registry::datasets::schema::{Column, ColumnKind, Schema};

const RECORDS: usize = 10_000;

fn main() {
    let column = |name: String, nullable| Column {
        name,
        kind: ColumnKind::Numeric,
        nullable,
    };
    let schema = Schema {
        features: (0..8).map(|f| column(format!("f{f}"), false)).collect(),
        labels: vec![column("y".into(), true)],
    };
    let bodies: Vec<String> = (0..20).map(|b| body(20_000 + b * RECORDS)).collect();
    let parser = RecordParser::new(&schema, i64::MAX, false);
    let batches: Vec<_> = bodies
        .iter()
        .map(|b| split_body(b, true).unwrap())
        .collect();
    let (mut times, mut frees) = (Vec::new(), Vec::new());
    for parts in batches.iter().cycle().take(200) {
        let start = Instant::now();
        let parsed = parser.parse_all(parts);
        times.push(start.elapsed().as_secs_f64());
        assert_eq!((parsed.readings.len(), parsed.rejected.len()), (RECORDS, 0));
        // Freeing the batch is work too (the stream's drift task does it).
        let start = Instant::now();
        drop(parsed);
        frees.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    frees.sort_by(f64::total_cmp);
    let (median, best) = (times[times.len() / 2], times[0]);
    println!(
        "parse {RECORDS} records ({:.1} MB), one thread, best of 200: {:.2} ms, {:.0} ns/record, {:.0} MB/s (median {:.2} ms); freeing them: {:.3} ms (median {:.3} ms)",
        bodies[0].len() as f64 / 1e6,
        best * 1e3,
        best * 1e9 / RECORDS as f64,
        bodies[0].len() as f64 / best / 1e6,
        median * 1e3,
        frees[0] * 1e3,
        frees[frees.len() / 2] * 1e3
    );
}

/// A batch of readings numbered from `first`.
fn body(first: usize) -> String {
    let mut body = String::new();
    for i in first..first + RECORDS {
        let ts = 1_700_000_000_000i64 + (i / 200) as i64 * 1000;
        write!(body, "{{\"machine_id\":\"m{:03}\",\"ts\":{ts}", i % 200).unwrap();
        for f in 0..8 {
            let v =
                (i as f64 * 0.618_033_988_749 + f as f64 * std::f64::consts::SQRT_2).sin() * 10.0;
            write!(body, ",\"f{f}\":{v}").unwrap();
        }
        body.push_str("}\n");
    }
    body
}
