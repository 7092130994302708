//! Retention: dropping a dataset's history older than its `retention_days`, counted back from its
//! newest reading, without touching the rows a kept snapshot may need unless forced.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use super::history;
use super::load_dataset;
use super::record::format_time;
use super::snapshots::{slice_has_rows, snapshot_from_row};
use crate::audit::{self, Actor};
use crate::db::Store;
use crate::error::{Error, Result};
use crate::scores::prune_scores;
use crate::sql::Sql;

/// One day in ms.
const DAY_MS: i64 = 86_400_000;
/// Most values the kept snapshots' ranges may bind in one statement; beyond it the ranges are
/// widened (which keeps more rows, never fewer).
const MAX_PROTECTION_BINDS: usize = 10_000;
/// Snapshot ids per `UPDATE ... IN (...)`.
const IDS_PER_STATEMENT: usize = 1000;

/// What a prune did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PruneReport {
    /// Readings with an event time before this (ms since the Unix epoch) were pruned:
    /// `retention_days` before the dataset's newest reading. `null` when it holds no readings.
    pub cutoff: Option<i64>,
    /// Readings deleted.
    pub deleted_records: u64,
    /// Labels deleted (always with their readings).
    pub deleted_labels: u64,
    /// Stream scores deleted (always with their readings): the score log keeps what the
    /// history keeps, so a subscriber resuming from an older position gets the scores still held.
    pub deleted_scores: u64,
    /// Readings older than the cutoff kept because a kept snapshot's range covers them.
    pub kept_for_snapshots: u64,
    /// Snapshots a forced prune took rows from; they are no longer kept, and their verification
    /// now fails.
    pub released_snapshots: Vec<i64>,
}

/// The time ranges whose readings retention keeps, for every machine or only for some.
#[derive(Debug, Default)]
struct Protection {
    /// `[from, to)` ranges by the machines they are restricted to (`None`: every machine).
    ranges: BTreeMap<Option<Vec<String>>, Vec<(i64, i64)>>,
}

impl Protection {
    fn add(&mut self, machines: Option<Vec<String>>, from: i64, to: i64) {
        if from < to {
            self.ranges.entry(machines).or_default().push((from, to));
        }
    }

    fn binds(&self) -> usize {
        self.ranges
            .iter()
            .map(|(m, r)| m.as_ref().map_or(0, Vec::len) + 2 * r.len())
            .sum()
    }

    /// Merges overlapping ranges; if they would still bind too many values, forgets the machine
    /// restrictions, and at last keeps one range from the earliest start to the latest end.
    fn finish(mut self) -> Protection {
        self.ranges.values_mut().for_each(merge);
        if self.binds() <= MAX_PROTECTION_BINDS {
            return self;
        }
        let mut all: Vec<(i64, i64)> = self.ranges.into_values().flatten().collect();
        merge(&mut all);
        if 2 * all.len() > MAX_PROTECTION_BINDS {
            let from = all.iter().map(|r| r.0).min().expect("ranges exist");
            let to = all.iter().map(|r| r.1).max().expect("ranges exist");
            all = vec![(from, to)];
        }
        Protection {
            ranges: BTreeMap::from([(None, all)]),
        }
    }

    /// Whether the reading of `machine` at `ts` is in a protected range: what
    /// [`Protection::push_condition`] says of it in SQL.
    fn covers(&self, machine: &str, ts: i64) -> bool {
        self.ranges.iter().any(|(machines, ranges)| {
            machines
                .as_ref()
                .is_none_or(|m| m.iter().any(|x| x == machine))
                && ranges.iter().any(|&(from, to)| from <= ts && ts < to)
        })
    }

    /// Appends `(...)`, true for a row (columns `machine_id`, `ts`) in a protected range.
    fn push_condition(&self, sql: &mut Sql) {
        sql.push("(");
        for (g, (machines, ranges)) in self.ranges.iter().enumerate() {
            if g > 0 {
                sql.push(" OR ");
            }
            sql.push("(");
            if let Some(m) = machines {
                sql.push("machine_id IN ")
                    .bind_list(m.iter().map(String::as_str))
                    .push(" AND ");
            }
            sql.push("(");
            for (i, (from, to)) in ranges.iter().enumerate() {
                sql.push(if i == 0 { "(ts >= " } else { " OR (ts >= " })
                    .bind(*from)
                    .push(" AND ts < ")
                    .bind(*to)
                    .push(")");
            }
            sql.push("))");
        }
        sql.push(")");
    }
}

/// Sorts ranges and merges those that overlap or touch.
fn merge(ranges: &mut Vec<(i64, i64)>) {
    ranges.sort_unstable();
    let mut merged: Vec<(i64, i64)> = Vec::with_capacity(ranges.len());
    for &(from, to) in ranges.iter() {
        match merged.last_mut() {
            Some(last) if from <= last.1 => last.1 = last.1.max(to),
            _ => merged.push((from, to)),
        }
    }
    *ranges = merged;
}

impl Store {
    /// Drops the dataset's readings (and their labels) older than `retention_days` before its
    /// newest reading — the same reference training windows end at, so a window of at most
    /// `retention_days` never loses rows to pruning — in one transaction with its audit entry.
    ///
    /// Readings inside a kept snapshot's `[ts_from, ts_to)` range (and its machines, if it names
    /// any) are kept, whatever their schema version: the snapshot stays verifiable. With `force`
    /// they are deleted too, and every kept snapshot that loses rows is no longer kept: its
    /// verification fails from then on, which is what forcing means.
    ///
    /// A dataset without `retention_days` is refused (`InvalidParameter`).
    #[tracing::instrument(skip(self, actor))]
    pub async fn prune_dataset(
        &self,
        actor: &Actor,
        name: &str,
        force: bool,
    ) -> Result<PruneReport> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        // Lock the dataset's row: a snapshot being taken meanwhile either committed before (and
        // is found kept here) or waits and checks its rows (see `create_snapshot`).
        sqlx::query("UPDATE datasets SET next_seq = next_seq WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let dataset = load_dataset(&mut tx, name).await?;
        let Some(days) = dataset.retention_days else {
            return Err(Error::invalid(format!(
                "dataset '{name}' has no retention_days, so there is nothing to prune; set it \
                 first (PATCH /api/v1/datasets/{name} with {{\"retention_days\": N}})"
            )));
        };
        let newest = history::newest(&mut tx, dataset.id).await?;
        let mut report = PruneReport {
            cutoff: None,
            deleted_records: 0,
            deleted_labels: 0,
            deleted_scores: 0,
            kept_for_snapshots: 0,
            released_snapshots: Vec::new(),
        };
        if let Some(newest) = newest {
            let cutoff = newest.saturating_sub(days.saturating_mul(DAY_MS));
            report.cutoff = Some(cutoff);
            // Only snapshots reaching back before the cutoff can cover a row it prunes.
            let snapshots = sqlx::query(
                "SELECT id, schema_version, ts_from, ts_to, machines, max_seq, row_count, digest, \
                 created_at, created_by, kept FROM snapshots \
                 WHERE dataset_id = $1 AND kept = 1 AND ts_from < $2 ORDER BY id",
            )
            .bind(dataset.id)
            .bind(cutoff)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| snapshot_from_row(r, name))
            .collect::<Result<Vec<_>>>()?;
            let mut protection = Protection::default();
            for s in snapshots {
                if force {
                    // Released only if rows of its own slice go.
                    if slice_has_rows(&mut tx, &s.slice(dataset.id).before(cutoff)).await? {
                        report.released_snapshots.push(s.id);
                    }
                } else {
                    protection.add(s.machines, s.ts_from, s.ts_to.min(cutoff));
                }
            }
            let protection = protection.finish();
            let kept = !protection.ranges.is_empty();
            let keep = |machine: &str, ts: i64| kept && protection.covers(machine, ts);
            // Labels and scores first: they go with their readings, which share their keys.
            report.deleted_scores = prune_scores(&mut tx, dataset.id, cutoff, keep).await?;
            let mut sql = Sql::new("DELETE FROM record_labels WHERE dataset_id = ");
            sql.bind(dataset.id).push(" AND ts < ").bind(cutoff);
            if kept {
                sql.push(" AND NOT ");
                protection.push_condition(&mut sql);
            }
            report.deleted_labels = sql.execute(&mut tx).await?;
            (report.deleted_records, report.kept_for_snapshots) =
                history::prune(&mut tx, dataset.id, cutoff, keep).await?;
            for ids in report.released_snapshots.chunks(IDS_PER_STATEMENT) {
                let mut sql = Sql::new("UPDATE snapshots SET kept = 0 WHERE id IN ");
                sql.bind_list(ids.iter().copied());
                sql.execute(&mut tx).await?;
            }
        }
        let detail = match report.cutoff {
            None => "no readings".to_string(),
            Some(cutoff) => format!(
                "before {}: {} readings, {} labels and {} scores deleted, {} kept for snapshots{}",
                format_time(cutoff),
                report.deleted_records,
                report.deleted_labels,
                report.deleted_scores,
                report.kept_for_snapshots,
                if force {
                    format!(
                        "; forced, snapshots released: {:?}",
                        report.released_snapshots
                    )
                } else {
                    String::new()
                }
            ),
        };
        audit::record(
            &mut tx,
            actor,
            "datasets.prune",
            &format!("dataset:{name}"),
            Some(&detail),
        )
        .await?;
        tx.commit().await?;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_agrees_with_the_ranges() {
        let mut p = Protection::default();
        p.add(Some(vec!["a".into(), "b".into()]), 10, 20);
        p.add(None, 100, 200);
        let p = p.finish();
        for (machine, ts, covered) in [
            ("a", 10, true),
            ("b", 19, true),
            ("a", 20, false),
            ("c", 15, false),
            ("c", 100, true),
            ("a", 199, true),
            ("a", 200, false),
            ("a", 9, false),
        ] {
            assert_eq!(p.covers(machine, ts), covered, "{machine} at {ts}");
        }
    }

    #[test]
    fn ranges_merge_when_they_overlap_or_touch() {
        let mut r = vec![(10, 20), (0, 5), (5, 8), (15, 30), (40, 50)];
        merge(&mut r);
        assert_eq!(r, vec![(0, 8), (10, 30), (40, 50)]);
    }

    #[test]
    fn too_many_ranges_widen_to_keep_more() {
        let mut p = Protection::default();
        for i in 0..(MAX_PROTECTION_BINDS as i64) {
            p.add(Some(vec![format!("m{i}")]), i * 10, i * 10 + 5);
        }
        p.add(None, 3, 4);
        let p = p.finish();
        assert_eq!(p.ranges.len(), 1);
        let all = &p.ranges[&None];
        assert_eq!(all.len(), 1, "still too many once merged: one range");
        assert_eq!(
            all[0],
            (0, (MAX_PROTECTION_BINDS as i64 - 1) * 10 + 5),
            "covers every range given"
        );

        let mut p = Protection::default();
        p.add(Some(vec!["a".into()]), 0, 10);
        p.add(Some(vec!["a".into()]), 5, 20);
        p.add(None, 100, 100); // empty: ignored
        let p = p.finish();
        assert_eq!(
            p.ranges,
            BTreeMap::from([(Some(vec!["a".to_string()]), vec![(0, 20)])])
        );
    }
}
