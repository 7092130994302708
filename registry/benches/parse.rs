//! Parsing and validating a batch of records on one thread (`cargo bench -p refit-registry
//! --bench parse`): 10,000 NDJSON readings as the stream benchmark sends them (a machine id, a
//! time and eight 17-digit features), best of 200 runs. The stream's parse step runs this on
//! two threads, one half each.

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
    let mut body = String::new();
    for i in 20_000..20_000 + RECORDS {
        let ts = 1_700_000_000_000i64 + (i / 200) as i64 * 1000;
        write!(body, "{{\"machine_id\":\"m{:03}\",\"ts\":{ts}", i % 200).unwrap();
        for f in 0..8 {
            let v =
                (i as f64 * 0.618_033_988_749 + f as f64 * std::f64::consts::SQRT_2).sin() * 10.0;
            write!(body, ",\"f{f}\":{v}").unwrap();
        }
        body.push_str("}\n");
    }
    let parser = RecordParser::new(&schema, i64::MAX, false);
    let parts = split_body(&body, true).unwrap();
    let (mut best, mut best_free) = (f64::MAX, f64::MAX);
    for _ in 0..200 {
        let start = Instant::now();
        let parsed = parser.parse_all(&parts);
        best = best.min(start.elapsed().as_secs_f64());
        assert_eq!((parsed.readings.len(), parsed.rejected.len()), (RECORDS, 0));
        // Freeing the batch is work too (the stream's drift task does it).
        let start = Instant::now();
        drop(parsed);
        best_free = best_free.min(start.elapsed().as_secs_f64());
    }
    println!(
        "parse {RECORDS} records ({:.1} MB), one thread, best of 200: {:.2} ms, {:.0} ns/record, {:.0} MB/s; freeing them: {:.3} ms",
        body.len() as f64 / 1e6,
        best * 1e3,
        best * 1e9 / RECORDS as f64,
        body.len() as f64 / best / 1e6,
        best_free * 1e3
    );
}
