//! The promotion gate: absolute bounds on holdout metrics, a change threshold against the
//! champion measured on the same holdout, a minimum holdout size, and the mode (promote on pass,
//! or wait for an operator).

use refit_registry::ledger::GateCheck;
use refit_scorer::Task;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::evaluate::{MetricName, MetricValues};

/// Promote on pass, or wait for an operator's approval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GateMode {
    /// A passing candidate becomes champion.
    #[default]
    Auto,
    /// A passing candidate waits for approval.
    Manual,
}

/// Which way a metric improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Larger is better.
    Higher,
    /// Smaller is better.
    Lower,
}

/// An absolute bound on a holdout metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Bound {
    /// The metric.
    pub metric: MetricName,
    /// Lowest acceptable value.
    #[serde(default)]
    pub min: Option<f64>,
    /// Highest acceptable value.
    #[serde(default)]
    pub max: Option<f64>,
}

/// How much better than the champion, on the same holdout, a candidate must be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VersusChampion {
    /// The metric compared.
    pub metric: MetricName,
    /// Which way is better; default: the metric's own (higher for f1, lower for rmse...).
    #[serde(default)]
    pub direction: Option<Direction>,
    /// Least improvement required: 0 means "not worse"; negative tolerates a small loss.
    #[serde(default)]
    pub min_change: f64,
    /// Read `min_change` as a fraction of the champion's value instead of an absolute amount.
    #[serde(default)]
    pub relative: bool,
}

/// A spec's gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    /// `auto` (default) or `manual`.
    #[serde(default)]
    pub mode: GateMode,
    /// Fewest holdout rows a decision may rest on (default 30).
    #[serde(default = "default_min_rows")]
    pub min_holdout_rows: u64,
    /// Absolute bounds.
    #[serde(default)]
    pub bounds: Vec<Bound>,
    /// Threshold against the champion.
    #[serde(default)]
    pub versus_champion: Option<VersusChampion>,
}

fn default_min_rows() -> u64 {
    30
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            mode: GateMode::Auto,
            min_holdout_rows: 30,
            bounds: Vec::new(),
            versus_champion: None,
        }
    }
}

/// The gate's verdict on a candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Every check, in order.
    pub checks: Vec<GateCheck>,
    /// Whether all passed.
    pub passed: bool,
}

impl Gate {
    /// Checks the gate fits the task; on error, the field (relative to the gate) and reason.
    pub fn validate(&self, task: Task) -> Result<(), (String, String)> {
        let fits = |m: MetricName| m.is_regression() == (task == Task::Regression);
        for (i, b) in self.bounds.iter().enumerate() {
            if !fits(b.metric) {
                return Err((
                    format!("bounds[{i}].metric"),
                    format!("{} does not apply to {task:?} models", b.metric),
                ));
            }
            if b.min.is_none() && b.max.is_none() {
                return Err((format!("bounds[{i}]"), "give min, max or both".into()));
            }
            if let (Some(lo), Some(hi)) = (b.min, b.max)
                && lo > hi
            {
                return Err((
                    format!("bounds[{i}]"),
                    format!("min {lo} is above max {hi}"),
                ));
            }
        }
        if let Some(v) = &self.versus_champion {
            if !fits(v.metric) {
                return Err((
                    "versus_champion.metric".into(),
                    format!("{} does not apply to {task:?} models", v.metric),
                ));
            }
            if !v.min_change.is_finite() {
                return Err((
                    "versus_champion.min_change".into(),
                    "must be a finite number".into(),
                ));
            }
        }
        Ok(())
    }

    /// Judges a candidate from its holdout metrics, the champion's on the same holdout (None
    /// without a champion, or when it could not be evaluated — `champion_note` says why), and
    /// the holdout size.
    pub fn judge(
        &self,
        candidate: &MetricValues,
        champion: Option<&MetricValues>,
        champion_note: Option<&str>,
        holdout_rows: u64,
    ) -> Verdict {
        let mut checks = vec![GateCheck {
            check: format!("holdout rows >= {}", self.min_holdout_rows),
            passed: holdout_rows >= self.min_holdout_rows,
            detail: format!("{holdout_rows} rows"),
        }];
        for b in &self.bounds {
            let value = candidate.get(&b.metric).copied();
            let (text, passed) = match (b.min, b.max) {
                (Some(lo), Some(hi)) => (
                    format!("{lo} <= {} <= {hi}", b.metric),
                    value.is_some_and(|v| v >= lo && v <= hi),
                ),
                (Some(lo), None) => (
                    format!("{} >= {lo}", b.metric),
                    value.is_some_and(|v| v >= lo),
                ),
                (None, Some(hi)) => (
                    format!("{} <= {hi}", b.metric),
                    value.is_some_and(|v| v <= hi),
                ),
                (None, None) => (format!("{} bounded", b.metric), true),
            };
            checks.push(GateCheck {
                check: text,
                passed,
                detail: match value {
                    Some(v) => format!("{} = {v}", b.metric),
                    None => format!("{} could not be computed on this holdout", b.metric),
                },
            });
        }
        if let Some(v) = &self.versus_champion {
            let direction = v.direction.unwrap_or(if v.metric.higher_is_better() {
                Direction::Higher
            } else {
                Direction::Lower
            });
            let threshold = if v.relative {
                format!("{:+}%", v.min_change * 100.0)
            } else {
                format!("{:+}", v.min_change)
            };
            let check = format!(
                "{} vs champion ({} is better, change >= {threshold})",
                v.metric,
                if direction == Direction::Higher {
                    "higher"
                } else {
                    "lower"
                }
            );
            let (passed, detail) = match (
                candidate.get(&v.metric),
                champion.and_then(|c| c.get(&v.metric)),
            ) {
                (None, _) => (
                    false,
                    format!("{} could not be computed for the candidate", v.metric),
                ),
                (Some(_), None) => (
                    true,
                    format!(
                        "no champion to compare with{}",
                        champion_note.map(|n| format!(" ({n})")).unwrap_or_default()
                    ),
                ),
                (Some(&cand), Some(&champ)) => {
                    let change = if direction == Direction::Higher {
                        cand - champ
                    } else {
                        champ - cand
                    };
                    let measured = if v.relative {
                        if champ == 0.0 {
                            if change > 0.0 { f64::INFINITY } else { 0.0 }
                        } else {
                            change / champ.abs()
                        }
                    } else {
                        change
                    };
                    (
                        measured >= v.min_change,
                        format!("candidate {cand}, champion {champ}, change {measured:+.6}"),
                    )
                }
            };
            checks.push(GateCheck {
                check,
                passed,
                detail,
            });
        }
        let passed = checks.iter().all(|c| c.passed);
        Verdict { checks, passed }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(pairs: &[(MetricName, f64)]) -> MetricValues {
        pairs.iter().cloned().collect()
    }

    #[test]
    fn bounds_and_champion_threshold_decide() {
        let gate = Gate {
            mode: GateMode::Auto,
            min_holdout_rows: 10,
            bounds: vec![Bound {
                metric: MetricName::F1,
                min: Some(0.5),
                max: None,
            }],
            versus_champion: Some(VersusChampion {
                metric: MetricName::F1,
                direction: None,
                min_change: 0.01,
                relative: false,
            }),
        };
        let cand = metrics(&[(MetricName::F1, 0.70)]);
        let champ = metrics(&[(MetricName::F1, 0.65)]);
        let v = gate.judge(&cand, Some(&champ), None, 100);
        assert!(v.passed, "{v:?}");
        assert_eq!(v.checks.len(), 3);
        assert!(
            v.checks[2].detail.contains("change +0.050000"),
            "{:?}",
            v.checks[2]
        );

        let champ = metrics(&[(MetricName::F1, 0.695)]);
        let v = gate.judge(&cand, Some(&champ), None, 100);
        assert!(!v.passed);
        assert!(!v.checks[2].passed);

        let v = gate.judge(&metrics(&[(MetricName::F1, 0.4)]), None, None, 100);
        assert!(!v.passed);
        assert!(
            !v.checks[1].passed && v.checks[2].passed,
            "first model: bounds alone decide"
        );

        let v = gate.judge(&cand, None, None, 5);
        assert!(!v.checks[0].passed);
    }

    #[test]
    fn lower_is_better_and_relative_changes() {
        let gate = Gate {
            versus_champion: Some(VersusChampion {
                metric: MetricName::Rmse,
                direction: None,
                min_change: 0.05,
                relative: true,
            }),
            ..Gate::default()
        };
        let v = gate.judge(
            &metrics(&[(MetricName::Rmse, 9.0)]),
            Some(&metrics(&[(MetricName::Rmse, 10.0)])),
            None,
            100,
        );
        assert!(v.passed, "10% better beats 5%: {v:?}");
        let v = gate.judge(
            &metrics(&[(MetricName::Rmse, 9.8)]),
            Some(&metrics(&[(MetricName::Rmse, 10.0)])),
            None,
            100,
        );
        assert!(!v.passed, "2% better misses 5%");
        assert!(gate.validate(Task::Binary).is_err());
        assert!(gate.validate(Task::Regression).is_ok());
    }
}
