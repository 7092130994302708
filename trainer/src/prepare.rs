//! From snapshot rows to what a learner takes: feature frames in the spec's feature order,
//! targets (values, or class indices), time order, and the fitted input encoder.

use std::collections::BTreeSet;

use refit_registry::datasets::{Schema, SnapshotRow, Value};
use refit_scorer::native::{Encoder, InputEncoding};
use refit_scorer::{FeatureColumn, FeatureFrame, Task};

/// Rows with a known target, in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct Labeled {
    /// Features in the model's order.
    pub frame: FeatureFrame,
    /// Target values (regression) or class indices (classification).
    pub y: Vec<f64>,
    /// Event times, ascending.
    pub ts: Vec<i64>,
}

impl Labeled {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Rows `range` as a new set.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Labeled {
        let columns = self
            .frame
            .columns
            .iter()
            .map(|c| match c {
                FeatureColumn::Numeric(v) => FeatureColumn::Numeric(v[range.clone()].to_vec()),
                FeatureColumn::Categorical(v) => {
                    FeatureColumn::Categorical(v[range.clone()].to_vec())
                }
            })
            .collect();
        Labeled {
            frame: FeatureFrame {
                rows: range.len(),
                columns,
            },
            y: self.y[range.clone()].to_vec(),
            ts: self.ts[range].to_vec(),
        }
    }
}

/// The text of a class value: integers without a fraction (`1`, not `1.0`), categories as is.
pub fn class_key(value: &Value) -> Option<String> {
    match value {
        Value::Missing => None,
        Value::Number(x) if x.fract() == 0.0 && x.abs() < 1e15 => Some(format!("{}", *x as i64)),
        Value::Number(x) => Some(x.to_string()),
        Value::Text(s) => Some(s.clone()),
    }
}

/// The classes present among `rows`' targets, ordered numerically when all are numbers, else
/// lexicographically.
pub fn classes_of(rows: &[SnapshotRow], target: usize) -> Vec<String> {
    let keys: BTreeSet<String> = rows
        .iter()
        .filter_map(|r| r.labels.as_ref().and_then(|l| class_key(&l[target])))
        .collect();
    let mut classes: Vec<String> = keys.into_iter().collect();
    if classes.iter().all(|c| c.parse::<f64>().is_ok()) {
        classes.sort_by(|a, b| {
            a.parse::<f64>()
                .unwrap()
                .total_cmp(&b.parse::<f64>().unwrap())
        });
    }
    classes
}

/// How many rows a conversion left out, and why.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Rows without the target label (yet).
    pub unlabeled: usize,
    /// Rows whose class did not occur in training.
    pub unknown_class: usize,
}

/// Rows with a target, in time order: features picked by name from `schema`, target from label
/// `target`. For classification, targets become indices into `classes`.
pub fn labeled(
    rows: &[SnapshotRow],
    schema: &Schema,
    features: &[String],
    target: usize,
    task: Task,
    classes: &[String],
) -> Result<(Labeled, Skipped), String> {
    let mut pick = Vec::with_capacity(features.len());
    let mut numeric = Vec::with_capacity(features.len());
    for f in features {
        let (pos, column) = schema
            .feature(f)
            .ok_or_else(|| format!("feature '{f}' is not in the data's schema"))?;
        pick.push(pos);
        numeric.push(column.kind == refit_registry::datasets::ColumnKind::Numeric);
    }
    let mut skipped = Skipped::default();
    let mut kept: Vec<(i64, &str, &[Value], f64)> = Vec::with_capacity(rows.len());
    for r in rows {
        let Some(value) = r.labels.as_ref().map(|l| &l[target]) else {
            skipped.unlabeled += 1;
            continue;
        };
        let y = match task {
            Task::Regression => match value {
                Value::Number(x) => *x,
                _ => {
                    skipped.unlabeled += 1;
                    continue;
                }
            },
            Task::Binary | Task::Multiclass => match class_key(value) {
                None => {
                    skipped.unlabeled += 1;
                    continue;
                }
                Some(key) => match classes.iter().position(|c| *c == key) {
                    Some(i) => i as f64,
                    None => {
                        skipped.unknown_class += 1;
                        continue;
                    }
                },
            },
        };
        kept.push((r.ts, r.machine_id.as_str(), &r.features, y));
    }
    // Time order, machines breaking ties, so splits by time are reproducible.
    kept.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    let frame = FeatureFrame::from_rows(kept.iter().map(|k| k.2), &pick, &numeric);
    Ok((
        Labeled {
            frame,
            y: kept.iter().map(|k| k.3).collect(),
            ts: kept.iter().map(|k| k.0).collect(),
        },
        skipped,
    ))
}

/// Fits the input encoder on training rows: numeric features are imputed with their mean and,
/// with `scale`, standardised by mean and standard deviation (population, as scikit-learn's
/// StandardScaler; a constant feature keeps scale 1 and encodes to 0); categorical features are
/// one-hot over the categories seen, in sorted order.
pub fn fit_encoder(frame: &FeatureFrame, scale: bool) -> Encoder {
    let inputs = frame
        .columns
        .iter()
        .map(|c| match c {
            FeatureColumn::Numeric(values) => {
                let present: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
                let n = present.len() as f64;
                // A constant column's summed mean can miss its value by rounding (20,631 times
                // 518.67 averages to 518.6699999999346); the spread around that mean would then
                // be the rounding error, and dividing by it would encode the column as ±1
                // instead of 0. Its mean is its value.
                let constant = present
                    .first()
                    .filter(|&&v| present.iter().all(|&x| x == v));
                let mean = match constant {
                    None if present.is_empty() => 0.0,
                    None => present.iter().sum::<f64>() / n,
                    Some(&v) => v,
                };
                let std = if present.is_empty() {
                    0.0
                } else {
                    (present.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n).sqrt()
                };
                if scale {
                    InputEncoding::Numeric {
                        impute: mean,
                        center: mean,
                        scale: if std > 0.0 { std } else { 1.0 },
                    }
                } else {
                    InputEncoding::Numeric {
                        impute: mean,
                        center: 0.0,
                        scale: 1.0,
                    }
                }
            }
            FeatureColumn::Categorical(values) => {
                let categories: BTreeSet<&String> = values.iter().flatten().collect();
                InputEncoding::OneHot {
                    categories: categories.into_iter().cloned().collect(),
                }
            }
        })
        .collect();
    Encoder { inputs }
}

#[cfg(test)]
mod tests {
    use super::*;
    use refit_registry::datasets::{Column, ColumnKind};

    fn schema() -> Schema {
        Schema {
            features: vec![
                Column {
                    name: "t".into(),
                    kind: ColumnKind::Numeric,
                    nullable: true,
                },
                Column {
                    name: "kind".into(),
                    kind: ColumnKind::Categorical,
                    nullable: false,
                },
            ],
            labels: vec![Column {
                name: "y".into(),
                kind: ColumnKind::Numeric,
                nullable: true,
            }],
        }
    }

    fn row(machine: &str, ts: i64, t: f64, kind: &str, y: Option<f64>) -> SnapshotRow {
        SnapshotRow {
            machine_id: machine.into(),
            ts,
            features: vec![
                if t.is_nan() {
                    Value::Missing
                } else {
                    Value::Number(t)
                },
                Value::Text(kind.into()),
            ],
            labels: y.map(|y| vec![Value::Number(y)]),
        }
    }

    #[test]
    fn rows_are_labelled_ordered_by_time_and_encoded() {
        let rows = vec![
            row("b", 3, 3.0, "H", Some(1.0)),
            row("a", 2, f64::NAN, "L", Some(0.0)),
            row("a", 1, 1.0, "L", None),
            row("c", 2, 5.0, "M", Some(1.0)),
        ];
        let classes = classes_of(&rows, 0);
        assert_eq!(classes, vec!["0", "1"]);
        let feats = vec!["t".to_string(), "kind".to_string()];
        let (data, skipped) = labeled(&rows, &schema(), &feats, 0, Task::Binary, &classes).unwrap();
        assert_eq!(
            skipped,
            Skipped {
                unlabeled: 1,
                unknown_class: 0
            }
        );
        assert_eq!(data.ts, vec![2, 2, 3]);
        assert_eq!(data.y, vec![0.0, 1.0, 1.0]);
        let enc = fit_encoder(&data.frame, true);
        match &enc.inputs[0] {
            InputEncoding::Numeric {
                impute,
                center,
                scale,
            } => {
                assert_eq!(*impute, 4.0);
                assert_eq!(*center, 4.0);
                assert_eq!(*scale, 1.0);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            enc.inputs[1],
            InputEncoding::OneHot {
                categories: vec!["H".into(), "L".into(), "M".into()]
            }
        );
        let x = enc.encode(&data.frame).unwrap();
        assert_eq!(x.len(), 3 * 4);
        assert_eq!(
            &x[0..4],
            &[0.0, 0.0, 1.0, 0.0],
            "missing t imputed to the mean, then centred"
        );
        assert!(
            labeled(
                &rows,
                &schema(),
                &["nope".to_string()],
                0,
                Task::Binary,
                &classes
            )
            .is_err()
        );
    }

    #[test]
    fn a_constant_column_encodes_to_zero_even_when_its_summed_mean_is_inexact() {
        // C-MAPSS FD001's sensor_01: 518.67 in all 20,631 training rows, whose naive mean is
        // 518.6699999999346; scaled by that rounding error the column became all ones.
        let n = 20_631;
        let values = vec![518.67; n];
        assert_ne!(values.iter().sum::<f64>() / n as f64, 518.67);
        let frame = FeatureFrame {
            rows: n,
            columns: vec![FeatureColumn::Numeric(values)],
        };
        let enc = fit_encoder(&frame, true);
        assert_eq!(
            enc.inputs[0],
            InputEncoding::Numeric {
                impute: 518.67,
                center: 518.67,
                scale: 1.0
            }
        );
        assert!(enc.encode(&frame).unwrap().iter().all(|&x| x == 0.0));
    }

    #[test]
    fn class_keys_drop_needless_fractions() {
        assert_eq!(class_key(&Value::Number(1.0)).unwrap(), "1");
        assert_eq!(class_key(&Value::Number(1.5)).unwrap(), "1.5");
        assert_eq!(class_key(&Value::Text("H".into())).unwrap(), "H");
        assert_eq!(class_key(&Value::Missing), None);
    }
}
