//! `Store::search_runs` over a fixture of 30 runs (plus 3 in a second experiment) with varied
//! metrics, params, tags, statuses, names, start times and dataset inputs. Each query's result is
//! compared, ids and order, with what a plain-Rust model of the fixture says it must be.
//! Every test runs on SQLite and on PostgreSQL.

#[macro_use]
mod store_support;

use std::cmp::Ordering;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{self, AtomicUsize};

use bytes::Bytes;
use refit_registry::Store;
use refit_registry::logged_models::{ModelOutput, NewLoggedModel, RunModels};
use refit_registry::rendered::RenderedRuns;
use refit_registry::runs::Run;

use refit_registry::experiments::{Tag, ViewType};
use refit_registry::runs::{Metric, NewRun, Param, RunStatus, RunUpdate};
use refit_registry::search::{ExperimentSearch, RunSearch};
use refit_tests::{Db, on_both_databases};
use store_support::{TestStore, alice, dataset_input, fresh};

const BASE: i64 = 1_700_000_000_000;
const N: usize = 30;
const DELETED: [usize; 2] = [3, 17];

/// What the fixture put into one run, to compute expected results from.
#[derive(Debug, Clone)]
struct Fx {
    i: usize,
    id: String,
    name: String,
    start: i64,
    status: &'static str,
    acc: Option<f64>,
    loss: Option<f64>,
    lr: Option<&'static str>,
    optimizer: &'static str,
    team: Option<&'static str>,
    tier: Option<&'static str>,
    note: Option<&'static str>,
    /// (name, digest, context)
    dataset: Option<(&'static str, &'static str, &'static str)>,
    deleted: bool,
}

fn fixture_run(i: usize) -> Fx {
    Fx {
        i,
        id: String::new(),
        name: match i % 3 {
            0 => format!("Alpha-{i:02}"),
            1 => format!("alpha-{i:02}"),
            _ => format!("beta-{i:02}"),
        },
        // Each start time is shared by exactly two runs, so ties fall back to the run id.
        start: BASE + ((i as i64 * 7) % 15) * 1000,
        status: match i % 4 {
            0 => "FINISHED",
            1 => "FAILED",
            _ => "RUNNING",
        },
        acc: match i {
            _ if i % 5 == 4 => None,
            13 => Some(f64::NAN),
            _ => Some(i as f64 / 100.0),
        },
        loss: (i % 3 != 2).then(|| ((30 - i) % 7) as f64),
        lr: match i % 3 {
            0 => Some("0.1"),
            1 => Some("0.01"),
            _ => None,
        },
        optimizer: if i.is_multiple_of(2) { "Adam" } else { "adam" },
        team: match i % 4 {
            0 => Some("Vision"),
            1 => Some("vision"),
            2 => Some("nlp"),
            _ => None,
        },
        tier: (!i.is_multiple_of(5)).then(|| ["gold", "silver", "bronze"][i % 3]),
        note: match i {
            5 => Some("100%_done"),
            6 => Some("100x_done"),
            7 => Some("100%Xdone"),
            _ => None,
        },
        dataset: match i % 3 {
            0 => Some(("train-a", "d1", "training")),
            1 => Some(("train-b", "d2", "eval")),
            _ => None,
        },
        deleted: DELETED.contains(&i),
    }
}

fn tag(key: &str, value: &str) -> Tag {
    Tag {
        key: key.into(),
        value: value.into(),
    }
}

fn metric(key: &str, value: f64, step: i64) -> Metric {
    Metric {
        key: key.into(),
        value,
        timestamp: BASE + step,
        step,
    }
}

struct Fixture {
    t: TestStore,
    exp: String,
    other_exp: String,
    runs: Vec<Fx>,
    other_runs: Vec<String>,
}

async fn fixture(db: Db) -> Fixture {
    let t = fresh(db).await;
    let s = &t.store;
    let exp = s
        .create_experiment(&alice(), "search", None, &[])
        .await
        .unwrap()
        .experiment_id;
    let other_exp = s
        .create_experiment(&alice(), "other", None, &[])
        .await
        .unwrap()
        .experiment_id;
    let mut runs = Vec::new();
    for i in 0..N {
        let mut fx = fixture_run(i);
        let mut tags = Vec::new();
        for (key, value) in [("team", fx.team), ("tier", fx.tier), ("note", fx.note)] {
            if let Some(value) = value {
                tags.push(tag(key, value));
            }
        }
        let run = s
            .create_run(
                &alice(),
                NewRun {
                    experiment_id: exp.clone(),
                    run_name: Some(fx.name.clone()),
                    start_time: Some(fx.start),
                    tags,
                    user_id: None,
                },
            )
            .await
            .unwrap();
        fx.id = run.info.run_id;
        let status = match fx.status {
            "FINISHED" => RunStatus::Finished,
            "FAILED" => RunStatus::Failed,
            _ => RunStatus::Running,
        };
        if status != RunStatus::Running {
            s.update_run(
                &alice(),
                &fx.id,
                RunUpdate {
                    status: Some(status),
                    end_time: Some(fx.start + 60_000),
                    run_name: None,
                },
            )
            .await
            .unwrap();
        }
        let mut metrics = Vec::new();
        if let Some(acc) = fx.acc {
            // An earlier point with another value: searches must use the latest one.
            metrics.push(metric("acc", 1.0 - acc, 0));
            metrics.push(metric("acc", acc, 1));
        }
        if let Some(loss) = fx.loss {
            metrics.push(metric("loss", loss, 0));
        }
        let mut params = vec![Param {
            key: "optimizer".into(),
            value: fx.optimizer.into(),
        }];
        if let Some(lr) = fx.lr {
            params.push(Param {
                key: "lr".into(),
                value: lr.into(),
            });
        }
        s.log_batch(&alice(), &fx.id, &metrics, &params, &[])
            .await
            .unwrap();
        if let Some((name, digest, context)) = fx.dataset {
            s.log_inputs(&alice(), &fx.id, &[dataset_input(name, digest, context)])
                .await
                .unwrap();
        }
        if fx.deleted {
            s.delete_run(&alice(), &fx.id).await.unwrap();
        }
        runs.push(fx);
    }
    let mut other_runs = Vec::new();
    for i in 0..3 {
        let run = s
            .create_run(
                &alice(),
                NewRun {
                    experiment_id: other_exp.clone(),
                    run_name: Some(format!("other-{i}")),
                    start_time: Some(BASE + 500 + i),
                    ..NewRun::default()
                },
            )
            .await
            .unwrap();
        s.log_batch(
            &alice(),
            &run.info.run_id,
            &[metric("acc", 0.5, 0)],
            &[],
            &[],
        )
        .await
        .unwrap();
        other_runs.push(run.info.run_id);
    }
    Fixture {
        t,
        exp,
        other_exp,
        runs,
        other_runs,
    }
}

/// What a run can be ordered on, in the model.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Key {
    Acc,
    Loss,
    Lr,
    Tier,
    Start,
    Name,
    Status,
    RunId,
}

fn metric_group(v: Option<f64>) -> u8 {
    match v {
        Some(v) if !v.is_nan() => 0,
        Some(_) => 1,
        None => 2,
    }
}

fn nulls_last<T: Ord>(a: Option<T>, b: Option<T>, asc: bool) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(a), Some(b)) if asc => a.cmp(&b),
        (Some(a), Some(b)) => b.cmp(&a),
    }
}

fn compare(a: &Fx, b: &Fx, key: Key, asc: bool) -> Ordering {
    let metric = |x: Option<f64>, y: Option<f64>| {
        metric_group(x).cmp(&metric_group(y)).then_with(|| {
            if metric_group(x) != 0 {
                return Ordering::Equal;
            }
            let o = x.unwrap().partial_cmp(&y.unwrap()).unwrap();
            if asc { o } else { o.reverse() }
        })
    };
    match key {
        Key::Acc => metric(a.acc, b.acc),
        Key::Loss => metric(a.loss, b.loss),
        Key::Lr => nulls_last(a.lr, b.lr, asc),
        Key::Tier => nulls_last(a.tier, b.tier, asc),
        Key::Name => nulls_last(Some(&a.name), Some(&b.name), asc),
        Key::Status => nulls_last(Some(a.status), Some(b.status), asc),
        Key::RunId => nulls_last(Some(&a.id), Some(&b.id), asc),
        Key::Start if asc => a.start.cmp(&b.start),
        Key::Start => b.start.cmp(&a.start),
    }
}

impl Fixture {
    /// Ids of the fixture's runs in `view` that satisfy `keep`, in the order `order` plus the
    /// store's fallbacks (start time newest first, then run id).
    fn expect(
        &self,
        view: ViewType,
        keep: impl Fn(&Fx) -> bool,
        order: &[(Key, bool)],
    ) -> Vec<String> {
        let mut runs: Vec<&Fx> = self
            .runs
            .iter()
            .filter(|r| match view {
                ViewType::ActiveOnly => !r.deleted,
                ViewType::DeletedOnly => r.deleted,
                ViewType::All => true,
            })
            .filter(|r| keep(r))
            .collect();
        let mut order = order.to_vec();
        if !order.iter().any(|(k, _)| *k == Key::Start) {
            order.push((Key::Start, false));
        }
        if !order.iter().any(|(k, _)| *k == Key::RunId) {
            order.push((Key::RunId, true));
        }
        runs.sort_by(|a, b| {
            order
                .iter()
                .map(|(k, asc)| compare(a, b, *k, *asc))
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        });
        runs.into_iter().map(|r| r.id.clone()).collect()
    }

    fn active(&self, keep: impl Fn(&Fx) -> bool) -> Vec<String> {
        self.expect(ViewType::ActiveOnly, keep, &[])
    }

    fn ids(&self, indices: &[usize]) -> Vec<String> {
        indices.iter().map(|&i| self.runs[i].id.clone()).collect()
    }

    fn search(&self, filter: &str, order_by: &[&str], view: ViewType) -> RunSearch {
        RunSearch {
            experiment_ids: vec![self.exp.clone()],
            filter: filter.into(),
            order_by: order_by.iter().map(|s| s.to_string()).collect(),
            max_results: 1000,
            page_token: None,
            view,
        }
    }

    /// Ids of one unpaged search.
    async fn run(&self, search: &RunSearch) -> Vec<String> {
        let page = self
            .t
            .store
            .search_runs(search)
            .await
            .unwrap_or_else(|e| panic!("{search:?}: {e}"));
        assert_eq!(page.next_page_token, None, "{search:?}");
        page.items.into_iter().map(|r| r.info.run_id).collect()
    }

    async fn filter(&self, filter: &str) -> Vec<String> {
        self.run(&self.search(filter, &[], ViewType::ActiveOnly))
            .await
    }

    async fn ordered(&self, filter: &str, order_by: &[&str]) -> Vec<String> {
        self.run(&self.search(filter, order_by, ViewType::ActiveOnly))
            .await
    }

    /// Indices (fixture numbers) of `ids`, for readable failure messages.
    fn names(&self, ids: &[String]) -> Vec<usize> {
        ids.iter()
            .map(|id| {
                self.runs
                    .iter()
                    .find(|r| &r.id == id)
                    .map_or(usize::MAX, |r| r.i)
            })
            .collect()
    }

    #[track_caller]
    fn same(&self, what: &str, got: Vec<String>, want: Vec<String>) {
        assert_eq!(
            self.names(&got),
            self.names(&want),
            "{what}: fixture numbers differ"
        );
        assert_eq!(got, want, "{what}");
    }
}

/// A filter and the model's predicate for it.
type Case = (&'static str, fn(&Fx) -> bool);
/// A comparator and what it means.
type Holds = fn(f64, f64) -> bool;
/// `order_by` in the model: keys and whether each is ascending.
type Order<'a> = &'a [(Key, bool)];

fn acc(r: &Fx) -> Option<f64> {
    r.acc.filter(|v| !v.is_nan())
}

async fn metric_and_start_time_comparisons(db: Db) {
    let f = fixture(db).await;

    // Hand-checked anchors, so the model itself is checked too.
    f.same(
        "metrics.acc > 0.12",
        f.filter("metrics.acc > 0.12").await,
        f.active(|r| acc(r).is_some_and(|v| v > 0.12)),
    );
    let mut anchor: Vec<usize> = f.names(&f.filter("metrics.acc > 0.12").await);
    anchor.sort();
    assert_eq!(anchor, vec![15, 16, 18, 20, 21, 22, 23, 25, 26, 27, 28]);
    assert_eq!(f.filter("metrics.acc = 0.12").await, f.ids(&[12]));
    // The earlier point (1 - acc = 0.88) is history, not the latest value.
    assert!(f.filter("metrics.acc = 0.88").await.is_empty());

    let x = 0.12;
    let cases: [(&str, Holds); 6] = [
        ("=", |a, b| a == b),
        ("!=", |a, b| a != b),
        ("<", |a, b| a < b),
        ("<=", |a, b| a <= b),
        (">", |a, b| a > b),
        (">=", |a, b| a >= b),
    ];
    for (op, holds) in cases {
        let filter = format!("metrics.acc {op} {x}");
        f.same(
            &filter,
            f.filter(&filter).await,
            f.active(|r| acc(r).is_some_and(|v| holds(v, x))),
        );
        let filter = format!("metrics.loss {op} 3");
        f.same(
            &filter,
            f.filter(&filter).await,
            f.active(|r| r.loss.is_some_and(|v| holds(v, 3.0))),
        );
        let at = BASE + 7000;
        for key in [
            "attributes.start_time",
            "start_time",
            "created",
            "run.start_time",
        ] {
            let filter = format!("{key} {op} {at}");
            f.same(
                &filter,
                f.filter(&filter).await,
                f.active(|r| holds(r.start as f64, at as f64)),
            );
        }
    }
    // A NaN latest value matches no comparison; an absent metric matches none either.
    for filter in [
        "metrics.acc != 0.5",
        "metrics.acc < 100",
        "metrics.acc > -100",
    ] {
        let got = f.names(&f.filter(filter).await);
        assert!(!got.contains(&13), "{filter}: {got:?}");
        assert!(!got.contains(&4), "{filter}: {got:?}");
    }
    assert!(f.filter("metrics.unknown > 0").await.is_empty());
    f.same(
        "metrics.acc >= 0.5",
        f.filter("metrics.acc >= 0.5").await,
        vec![],
    );
    f.same(
        "scientific notation",
        f.filter("metrics.acc <= 5e-2").await,
        f.active(|r| acc(r).is_some_and(|v| v <= 0.05)),
    );
}

async fn string_comparisons_and_case(db: Db) {
    let f = fixture(db).await;
    let cases: &[Case] = &[
        ("params.lr = '0.1'", |r| r.lr == Some("0.1")),
        ("params.lr != '0.1'", |r| r.lr.is_some_and(|v| v != "0.1")),
        ("params.lr LIKE '0.0%'", |r| r.lr == Some("0.01")),
        ("params.lr LIKE '0._'", |r| r.lr == Some("0.1")),
        ("param.optimizer = 'adam'", |r| r.optimizer == "adam"),
        ("params.optimizer LIKE 'Ad%'", |r| r.optimizer == "Adam"),
        ("params.optimizer LIKE 'ad%'", |r| r.optimizer == "adam"),
        ("params.optimizer ILIKE 'AD%'", |_| true),
        ("params.optimizer ILIKE 'adam'", |_| true),
        ("params.optimizer LIKE 'ADAM'", |_| false),
        ("tags.team = 'vision'", |r| r.team == Some("vision")),
        ("tags.team != 'vision'", |r| {
            r.team.is_some_and(|v| v != "vision")
        }),
        ("tags.team LIKE 'V%'", |r| r.team == Some("Vision")),
        ("tags.team LIKE '%is%'", |r| {
            r.team.is_some_and(|v| v.contains("is"))
        }),
        ("tags.team ILIKE 'v%'", |r| {
            r.team.is_some_and(|v| v.eq_ignore_ascii_case("vision"))
        }),
        ("tags.team ILIKE 'NLP'", |r| r.team == Some("nlp")),
        ("tag.\"team\" = 'nlp'", |r| r.team == Some("nlp")),
        ("attributes.run_name LIKE 'alpha%'", |r| {
            r.name.starts_with("alpha")
        }),
        ("attributes.run_name ILIKE 'alpha%'", |r| {
            r.name.to_lowercase().starts_with("alpha")
        }),
        ("attributes.run_name LIKE 'ALPHA%'", |_| false),
        ("attributes.run_name ILIKE 'ALPHA-1_'", |r| {
            r.name.to_lowercase().starts_with("alpha-1")
        }),
        ("attributes.run_name = 'beta-05'", |r| r.name == "beta-05"),
        ("run_name != 'beta-05'", |r| r.name != "beta-05"),
        ("`Run name` = 'alpha-01'", |r| r.name == "alpha-01"),
        ("attributes.status = 'FINISHED'", |r| r.status == "FINISHED"),
        ("attributes.status != 'RUNNING'", |r| r.status != "RUNNING"),
        ("attributes.status LIKE 'F%'", |r| r.status.starts_with('F')),
        // '%' and '_' are wildcards unless escaped with a backslash.
        (r"tags.note LIKE '100\%\_%'", |r| {
            r.note == Some("100%_done")
        }),
        ("tags.note LIKE '100%'", |r| r.note.is_some()),
        (r"tags.note LIKE '100\%%'", |r| {
            r.note.is_some_and(|n| n.starts_with("100%"))
        }),
        ("tags.note = '100%_done'", |r| r.note == Some("100%_done")),
    ];
    for (filter, keep) in cases {
        f.same(filter, f.filter(filter).await, f.active(*keep));
    }
    // Anchors for case sensitivity on both databases.
    assert_eq!(
        f.filter("params.optimizer LIKE 'Ad%'").await.len(),
        15,
        "the 15 even runs (both deleted runs are odd)"
    );
    assert_eq!(f.filter("params.optimizer ILIKE 'ad%'").await.len(), 28);
    assert_eq!(f.filter(r"tags.note LIKE '100\%\_%'").await, f.ids(&[5]));
}

async fn lists_nulls_datasets_and_conjunctions(db: Db) {
    let f = fixture(db).await;
    let picked = [0usize, 5, 17, 22];
    let list = format!(
        "('{}', '{}', '{}', '{}', '{}')",
        f.runs[0].id,
        f.runs[5].id,
        f.runs[17].id,
        f.runs[22].id,
        "0123456789abcdef0123456789abcdef"
    );
    f.same(
        "run_id IN",
        f.filter(&format!("attributes.run_id IN {list}")).await,
        f.active(|r| picked.contains(&r.i)),
    );
    f.same(
        "run_id NOT IN",
        f.filter(&format!("attributes.run_id NOT IN {list}")).await,
        f.active(|r| !picked.contains(&r.i)),
    );
    f.same(
        "run_id =",
        f.filter(&format!("attributes.run_id = '{}'", f.runs[9].id))
            .await,
        f.ids(&[9]),
    );

    let cases: &[Case] = &[
        ("tags.team IS NULL", |r| r.team.is_none()),
        ("tags.team IS NOT NULL", |r| r.team.is_some()),
        ("tags.nonexistent IS NULL", |_| true),
        ("tags.nonexistent is not null", |_| false),
        ("params.lr IS NULL", |r| r.lr.is_none()),
        ("params.lr IS NOT NULL", |r| r.lr.is_some()),
        ("datasets.name = 'train-a'", |r| {
            r.dataset.is_some_and(|d| d.0 == "train-a")
        }),
        ("dataset.name != 'train-a'", |r| {
            r.dataset.is_some_and(|d| d.0 != "train-a")
        }),
        ("dataset.name LIKE 'train-%'", |r| r.dataset.is_some()),
        ("datasets.name IN ('train-a', 'train-b')", |r| {
            r.dataset.is_some()
        }),
        ("datasets.name IN ('train-b', 'nope')", |r| {
            r.dataset.is_some_and(|d| d.0 == "train-b")
        }),
        ("dataset.digest = 'd2'", |r| {
            r.dataset.is_some_and(|d| d.1 == "d2")
        }),
        ("dataset.context = 'training'", |r| {
            r.dataset.is_some_and(|d| d.2 == "training")
        }),
        ("dataset.context ILIKE 'EVAL'", |r| {
            r.dataset.is_some_and(|d| d.2 == "eval")
        }),
        (
            "metrics.acc >= 0.05 AND params.lr = '0.1' AND tags.team ILIKE 'VISION' AND attributes.status != 'FAILED'",
            |r| {
                acc(r).is_some_and(|v| v >= 0.05)
                    && r.lr == Some("0.1")
                    && r.team.is_some_and(|t| t.eq_ignore_ascii_case("vision"))
                    && r.status != "FAILED"
            },
        ),
        (
            "tags.tier = 'gold' and metrics.loss < 5 AND attributes.start_time >= 1700000003000",
            |r| r.tier == Some("gold") && r.loss.is_some_and(|v| v < 5.0) && r.start >= BASE + 3000,
        ),
        (
            "params.lr IS NOT NULL AND tags.team IS NULL AND dataset.context = 'eval'",
            |r| r.lr.is_some() && r.team.is_none() && r.dataset.is_some_and(|d| d.2 == "eval"),
        ),
        ("metrics.acc > 0.1 AND metrics.acc < 0.1", |_| false),
    ];
    for (filter, keep) in cases {
        f.same(filter, f.filter(filter).await, f.active(*keep));
    }
    // An anchor for the big conjunction: lr 0.1 means i % 3 == 0, vision but not FAILED means
    // i % 4 == 0, so i is 0 (acc too low), 12 or 24 (no acc).
    let mut got = f.names(
        &f.filter(
            "metrics.acc >= 0.05 AND params.lr = '0.1' AND tags.team ILIKE 'VISION' \
             AND attributes.status != 'FAILED'",
        )
        .await,
    );
    got.sort();
    assert_eq!(got, vec![12]);
}

async fn ordering(db: Db) {
    let f = fixture(db).await;
    use Key::*;
    let cases: &[(&[&str], Order)] = &[
        (&[], &[]),
        (&["metrics.acc ASC"], &[(Acc, true)]),
        (&["metrics.acc DESC"], &[(Acc, false)]),
        (&["metrics.acc"], &[(Acc, true)]),
        (&["metrics.loss desc"], &[(Loss, false)]),
        (&["params.lr ASC"], &[(Lr, true)]),
        (&["params.lr DESC"], &[(Lr, false)]),
        (&["tags.tier ASC"], &[(Tier, true)]),
        (&["tags.tier DESC"], &[(Tier, false)]),
        (&["attributes.start_time ASC"], &[(Start, true)]),
        (&["attributes.start_time DESC"], &[(Start, false)]),
        (&["attributes.run_name DESC"], &[(Name, false)]),
        (&["run_name ASC"], &[(Name, true)]),
        (&["attributes.status ASC"], &[(Status, true)]),
        (&["attributes.run_id DESC"], &[(RunId, false)]),
        (
            &["params.lr DESC", "metrics.loss ASC"],
            &[(Lr, false), (Loss, true)],
        ),
        (
            &["tags.tier ASC", "metrics.acc DESC"],
            &[(Tier, true), (Acc, false)],
        ),
        (
            &["attributes.status DESC", "attributes.start_time ASC"],
            &[(Status, false), (Start, true)],
        ),
    ];
    for (order_by, model) in cases {
        f.same(
            &format!("order by {order_by:?}"),
            f.ordered("", order_by).await,
            f.expect(ViewType::ActiveOnly, |_| true, model),
        );
    }

    // Anchors: runs missing the metric come last in both directions, after the NaN one.
    let missing = [4usize, 9, 14, 19, 24, 29];
    for order in ["metrics.acc ASC", "metrics.acc DESC"] {
        let got = f.names(&f.ordered("", &[order]).await);
        let (head, tail) = got.split_at(got.len() - missing.len());
        let mut tail = tail.to_vec();
        tail.sort();
        assert_eq!(tail, missing, "{order}: {got:?}");
        assert_eq!(
            head.last(),
            Some(&13),
            "NaN before the missing ({order}): {got:?}"
        );
    }
    let asc = f.names(&f.ordered("", &["metrics.acc ASC"]).await);
    assert_eq!(&asc[..3], &[0, 1, 2]);
    let desc = f.names(&f.ordered("", &["metrics.acc DESC"]).await);
    assert_eq!(&desc[..3], &[28, 27, 26]);
    // Default order: newest start first, ties by run id.
    let default = f.ordered("", &[]).await;
    let starts: Vec<i64> = default
        .iter()
        .map(|id| f.runs.iter().find(|r| &r.id == id).unwrap().start)
        .collect();
    assert!(starts.windows(2).all(|w| w[0] >= w[1]), "{starts:?}");
    for pair in default.windows(2) {
        let (a, b) = (
            f.runs.iter().find(|r| r.id == pair[0]).unwrap(),
            f.runs.iter().find(|r| r.id == pair[1]).unwrap(),
        );
        if a.start == b.start {
            assert!(a.id < b.id, "tie not broken by run id: {} {}", a.i, b.i);
        }
    }
    // A filter on the metric the order joins (read from the joined row): the model's runs,
    // without the NaN or missing ones, in both directions.
    type Keep = fn(&Fx) -> bool;
    let same_metric: [(&str, Keep); 4] = [
        ("metrics.acc > 0.12", |r| acc(r).is_some_and(|v| v > 0.12)),
        ("metrics.acc != 0.5", |r| acc(r).is_some_and(|v| v != 0.5)),
        ("metrics.acc <= 0.3 AND metrics.acc >= 0.1", |r| {
            acc(r).is_some_and(|v| (0.1..=0.3).contains(&v))
        }),
        ("metrics.acc < 0.3 AND metrics.loss > 2", |r| {
            acc(r).is_some_and(|v| v < 0.3) && r.loss.is_some_and(|v| !v.is_nan() && v > 2.0)
        }),
    ];
    for (filter, keep) in same_metric {
        for (order, ascending) in [("metrics.acc ASC", true), ("metrics.acc DESC", false)] {
            let got = f.ordered(filter, &[order]).await;
            assert!(!got.is_empty(), "{filter}");
            f.same(
                &format!("{filter}, {order}"),
                got,
                f.expect(ViewType::ActiveOnly, keep, &[(Acc, ascending)]),
            );
        }
    }
    // Filters and order together.
    f.same(
        "filtered and ordered",
        f.ordered("params.lr = '0.01'", &["metrics.acc DESC"]).await,
        f.expect(
            ViewType::ActiveOnly,
            |r| r.lr == Some("0.01"),
            &[(Acc, false)],
        ),
    );
}

async fn view_types_and_experiment_scope(db: Db) {
    let f = fixture(db).await;
    for view in [ViewType::ActiveOnly, ViewType::DeletedOnly, ViewType::All] {
        f.same(
            &format!("{view:?}"),
            f.run(&f.search("", &[], view)).await,
            f.expect(view, |_| true, &[]),
        );
        f.same(
            &format!("{view:?} with a filter"),
            f.run(&f.search("params.lr = '0.01'", &["metrics.acc ASC"], view))
                .await,
            f.expect(view, |r| r.lr == Some("0.01"), &[(Key::Acc, true)]),
        );
    }
    assert_eq!(
        f.run(&f.search("", &[], ViewType::ActiveOnly)).await.len(),
        28
    );
    let mut deleted = f.names(&f.run(&f.search("", &[], ViewType::DeletedOnly)).await);
    deleted.sort();
    assert_eq!(deleted, DELETED);
    assert_eq!(f.run(&f.search("", &[], ViewType::All)).await.len(), 30);

    // Experiment scope.
    let mut only_other = f.search("", &[], ViewType::ActiveOnly);
    only_other.experiment_ids = vec![f.other_exp.clone()];
    let mut other_desc = f.other_runs.clone();
    other_desc.reverse();
    assert_eq!(f.run(&only_other).await, other_desc);
    let mut both = f.search(
        "metrics.acc >= 0.25",
        &["metrics.acc DESC"],
        ViewType::ActiveOnly,
    );
    both.experiment_ids = vec![f.exp.clone(), f.other_exp.clone()];
    let got = f.run(&both).await;
    let mut want = other_desc.clone();
    want.extend(f.expect(
        ViewType::ActiveOnly,
        |r| acc(r).is_some_and(|v| v >= 0.25),
        &[(Key::Acc, false)],
    ));
    assert_eq!(got, want);
    let mut unknown = f.search("", &[], ViewType::All);
    unknown.experiment_ids = vec!["424242".into()];
    assert!(f.run(&unknown).await.is_empty());
}

/// All pages of `search` at `size` per page: asserts that every page but the last is full and
/// only the last lacks a token; returns the ids in order.
async fn all_pages(f: &Fixture, search: &RunSearch, size: i64) -> Vec<String> {
    let mut search = search.clone();
    search.max_results = size;
    search.page_token = None;
    let mut ids = Vec::new();
    for _ in 0..100 {
        let page = f.t.store.search_runs(&search).await.unwrap();
        assert!(page.items.len() as i64 <= size);
        ids.extend(page.items.iter().map(|r| r.info.run_id.clone()));
        match page.next_page_token {
            Some(token) => {
                assert_eq!(page.items.len() as i64, size, "a short page with a token");
                search.page_token = Some(token);
            }
            None => return ids,
        }
    }
    panic!("paging did not end");
}

async fn paging(db: Db) {
    let f = fixture(db).await;
    for (filter, order_by) in [
        ("", vec![]),
        ("", vec!["metrics.acc DESC"]),
        (
            "params.lr IS NOT NULL",
            vec!["params.lr ASC", "metrics.loss DESC"],
        ),
        ("tags.team ILIKE 'vision'", vec!["attributes.run_name ASC"]),
    ] {
        let search = f.search(filter, &order_by, ViewType::ActiveOnly);
        let whole = f.run(&search).await;
        assert!(!whole.is_empty());
        for size in [1, 3, 7, whole.len() as i64, 50] {
            let paged = all_pages(&f, &search, size).await;
            let distinct: HashSet<&String> = paged.iter().collect();
            assert_eq!(distinct.len(), paged.len(), "duplicates at size {size}");
            assert_eq!(paged, whole, "{filter:?} {order_by:?} at size {size}");
        }
    }
    // 28 active runs in pages of 7: four full pages, then an empty last one.
    let search = f.search("", &[], ViewType::ActiveOnly);
    let mut s = search.clone();
    s.max_results = 7;
    let mut sizes = Vec::new();
    loop {
        let page = f.t.store.search_runs(&s).await.unwrap();
        sizes.push(page.items.len());
        match page.next_page_token {
            Some(token) => s.page_token = Some(token),
            None => break,
        }
    }
    assert_eq!(sizes.iter().sum::<usize>(), 28);
    assert!(sizes[..4].iter().all(|n| *n == 7), "{sizes:?}");
}

async fn page_tokens_are_bound_to_their_query(db: Db) {
    let f = fixture(db).await;
    let mut search = f.search(
        "metrics.acc > 0.1",
        &["metrics.acc DESC"],
        ViewType::ActiveOnly,
    );
    search.max_results = 5;
    let token =
        f.t.store
            .search_runs(&search)
            .await
            .unwrap()
            .next_page_token
            .expect("more than one page");

    // The same query takes it (also with another page size).
    let mut next = search.clone();
    next.page_token = Some(token.clone());
    next.max_results = 3;
    let page = f.t.store.search_runs(&next).await.unwrap();
    let whole = f
        .run(&f.search(
            "metrics.acc > 0.1",
            &["metrics.acc DESC"],
            ViewType::ActiveOnly,
        ))
        .await;
    let got: Vec<String> = page.items.into_iter().map(|r| r.info.run_id).collect();
    assert_eq!(got, whole[5..8]);

    let mut other_filter = next.clone();
    other_filter.filter = "metrics.acc > 0.2".into();
    let mut other_order = next.clone();
    other_order.order_by = vec!["metrics.acc ASC".into()];
    let mut other_view = next.clone();
    other_view.view = ViewType::All;
    let mut other_scope = next.clone();
    other_scope.experiment_ids = vec![f.exp.clone(), f.other_exp.clone()];
    for (what, s) in [
        ("filter", other_filter),
        ("order", other_order),
        ("view", other_view),
        ("experiments", other_scope),
    ] {
        assert_err!(
            f.t.store.search_runs(&s).await,
            InvalidParameter,
            "Invalid page token"
        );
        let _ = what;
    }
    // A token from an experiment search is not a run-search token.
    let exp_token =
        f.t.store
            .search_experiments(&ExperimentSearch {
                max_results: 1,
                ..ExperimentSearch::default()
            })
            .await
            .unwrap()
            .next_page_token
            .expect("three experiments");
    for bad in [
        exp_token.as_str(),
        "garbage!!",
        "AAAA",
        "MTA6MDAwMDAwMDAwMDAwMDAwMA",
    ] {
        let mut s = search.clone();
        s.page_token = Some(bad.into());
        assert_err!(
            f.t.store.search_runs(&s).await,
            InvalidParameter,
            "Invalid page token"
        );
    }
    // An empty token means the first page.
    let mut s = search.clone();
    s.page_token = Some(String::new());
    let first: Vec<String> =
        f.t.store
            .search_runs(&s)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|r| r.info.run_id)
            .collect();
    assert_eq!(first, whole[..5]);
    for size in [0, -1, 50_001] {
        let mut s = search.clone();
        s.max_results = size;
        assert_err!(
            f.t.store.search_runs(&s).await,
            InvalidParameter,
            "max_results"
        );
    }
}

async fn invalid_filters_and_orders(db: Db) {
    let f = fixture(db).await;
    for (filter, fragment) in [
        ("metrics.acc > 0.5 OR params.lr = '0.1'", "(at position 18)"),
        ("metrics.acc >", "(at position 13)"),
        ("params.lr = 0.1", "(at position 12)"),
        ("foo.bar = 'x'", "(at position 0)"),
        ("metrics.acc = 'high'", "(at position 14)"),
        ("tags.team == 'x'", "(at position 10)"),
        ("attributes.start_time IS NULL", "(at position 22)"),
        ("(metrics.acc > 1)", "(at position 0)"),
        ("metrics.acc > 1 AND", "(at position 16)"),
    ] {
        let message = assert_err!(
            f.t.store
                .search_runs(&f.search(filter, &[], ViewType::ActiveOnly))
                .await,
            InvalidParameter,
            fragment
        );
        assert!(message.contains(filter), "{message}");
    }
    for order in [
        "metrics.acc SIDEWAYS",
        "",
        "dataset.name ASC",
        "attributes.bogus",
    ] {
        assert_err!(
            f.t.store
                .search_runs(&f.search("", &[order], ViewType::ActiveOnly))
                .await,
            InvalidParameter,
            "(at position"
        );
    }
    let mut none = f.search("", &[], ViewType::ActiveOnly);
    none.experiment_ids.clear();
    assert_err!(
        f.t.store.search_runs(&none).await,
        InvalidParameter,
        "at least one experiment"
    );
    let mut bad = f.search("", &[], ViewType::ActiveOnly);
    bad.experiment_ids = vec!["abc".into()];
    assert_err!(
        f.t.store.search_runs(&bad).await,
        InvalidParameter,
        "Invalid experiment id 'abc'"
    );
}

async fn results_carry_run_data(db: Db) {
    let f = fixture(db).await;
    let got =
        f.t.store
            .search_runs(&f.search(
                &format!("attributes.run_id = '{}'", f.runs[12].id),
                &[],
                ViewType::ActiveOnly,
            ))
            .await
            .unwrap()
            .items;
    assert_eq!(got.len(), 1);
    let run = &got[0];
    assert_eq!(run, &f.t.store.get_run(&f.runs[12].id).await.unwrap());
    assert_eq!(run.info.run_name, "Alpha-12");
    assert_eq!(run.info.status, RunStatus::Finished);
    let acc = run.data.metrics.iter().find(|m| m.key == "acc").unwrap();
    assert_eq!((acc.step, acc.value), (1, 0.12));
    assert_eq!(run.inputs.dataset_inputs.len(), 1);
    assert_eq!(run.inputs.dataset_inputs[0].dataset.name, "train-a");
    assert_eq!(
        run.data.params,
        vec![
            Param {
                key: "lr".into(),
                value: "0.1".into()
            },
            Param {
                key: "optimizer".into(),
                value: "Adam".into()
            }
        ]
    );
}

/// A run as the rendered searches below render it: every field the registry returns.
fn render(run: &Run, models: &RunModels) -> Bytes {
    Bytes::from(format!("{run:?} {models:?}"))
}

/// The rendered search's answer, and how many runs it rendered for it.
async fn rendered(s: &Store, search: &RunSearch, kept: &Arc<RenderedRuns>) -> (Vec<Bytes>, usize) {
    let renders = Arc::new(AtomicUsize::new(0));
    let counter = renders.clone();
    let page = s
        .search_runs_rendered(search, kept, move |run, models| {
            counter.fetch_add(1, atomic::Ordering::SeqCst);
            render(run, models)
        })
        .await
        .unwrap();
    assert_eq!(page.next_page_token, None);
    (page.items, renders.load(atomic::Ordering::SeqCst))
}

/// What a search without kept renderings answers.
async fn fresh_render(s: &Store, search: &RunSearch) -> Vec<Bytes> {
    let page = s.search_runs(search).await.unwrap();
    let ids: Vec<String> = page.items.iter().map(|r| r.info.run_id.clone()).collect();
    let models = s.run_models(&ids).await.unwrap();
    page.items
        .iter()
        .map(|r| render(r, &models.get(&r.info.run_id).cloned().unwrap_or_default()))
        .collect()
}

/// After every kind of write to what a run's answer shows, the rendered search answers as a fresh
/// one does; on SQLite it renders again exactly the run written to (none when a write changed
/// nothing shown), on PostgreSQL every run.
async fn rendered_search_follows_every_write(db: Db) {
    let f = fixture(db).await;
    let s = &f.t.store;
    let kept = Arc::new(RenderedRuns::default());
    let search = f.search("", &["metrics.acc DESC"], ViewType::All);
    let (first, n) = rendered(s, &search, &kept).await;
    assert_eq!(first.len(), N);
    assert_eq!(n, N, "nothing kept yet");
    assert_eq!(first, fresh_render(s, &search).await);
    let check = async |what: &str, changed: usize| {
        let (items, n) = rendered(s, &search, &kept).await;
        let want = fresh_render(s, &search).await;
        assert_eq!(items.len(), want.len(), "after {what}");
        if let Some(i) = (0..want.len()).find(|&i| items[i] != want[i]) {
            panic!(
                "after {what}, the page's run {i} is\n{:?}\nbut is now\n{:?}",
                items[i], want[i]
            );
        }
        let want = if db == Db::Sqlite { changed } else { N };
        assert_eq!(n, want, "runs rendered after {what}");
    };
    check("no write", 0).await;

    let run = |i: usize| f.runs[i].id.as_str();
    let param = |key: &str, value: &str| Param {
        key: key.into(),
        value: value.into(),
    };
    s.log_batch(&alice(), run(0), &[], &[param("extra", "1")], &[])
        .await
        .unwrap();
    check("a new param", 1).await;
    s.log_batch(&alice(), run(1), &[], &[], &[tag("stage", "a")])
        .await
        .unwrap();
    check("a new tag", 1).await;
    s.log_batch(&alice(), run(1), &[], &[], &[tag("stage", "b")])
        .await
        .unwrap();
    check("a changed tag", 1).await;
    s.delete_run_tag(&alice(), run(1), "stage").await.unwrap();
    check("a deleted tag", 1).await;
    s.log_batch(&alice(), run(2), &[metric("acc", 0.99, 50)], &[], &[])
        .await
        .unwrap();
    check("a newer metric point", 1).await;
    s.log_batch(&alice(), run(2), &[metric("acc", 0.5, 0)], &[], &[])
        .await
        .unwrap();
    // A batch of points moves its run's version whether or not one is the newest.
    check("an older metric point, not the latest", 1).await;
    s.log_batch(&alice(), run(4), &[metric("new", 1.0, 0)], &[], &[])
        .await
        .unwrap();
    check("a new metric", 1).await;
    s.log_inputs(&alice(), run(5), &[dataset_input("eval-b", "d3", "eval")])
        .await
        .unwrap();
    check("a dataset input", 1).await;
    let model = s
        .create_logged_model(
            &alice(),
            NewLoggedModel {
                experiment_id: f.exp.clone(),
                name: Some("m".into()),
                ..NewLoggedModel::default()
            },
        )
        .await
        .unwrap();
    check("a logged model", 0).await;
    s.log_run_model_outputs(
        &alice(),
        run(6),
        &[ModelOutput {
            model_id: model.model_id.clone(),
            step: 2,
        }],
    )
    .await
    .unwrap();
    check("a model output", 1).await;
    s.log_run_model_inputs(&alice(), run(7), std::slice::from_ref(&model.model_id))
        .await
        .unwrap();
    check("a model input", 1).await;
    s.update_run(
        &alice(),
        run(8),
        RunUpdate {
            status: Some(RunStatus::Killed),
            end_time: Some(BASE + 99),
            run_name: None,
        },
    )
    .await
    .unwrap();
    check("an ended run", 1).await;
    s.update_run(
        &alice(),
        run(9),
        RunUpdate {
            run_name: Some("renamed".into()),
            ..RunUpdate::default()
        },
    )
    .await
    .unwrap();
    check("a renamed run", 1).await;
    s.delete_run(&alice(), run(10)).await.unwrap();
    check("a deleted run", 1).await;
    s.restore_run(&alice(), run(10)).await.unwrap();
    check("a restored run", 1).await;
}

on_both_databases!(
    metric_and_start_time_comparisons,
    string_comparisons_and_case,
    lists_nulls_datasets_and_conjunctions,
    ordering,
    view_types_and_experiment_scope,
    paging,
    page_tokens_are_bound_to_their_query,
    invalid_filters_and_orders,
    results_carry_run_data,
    rendered_search_follows_every_write,
);
