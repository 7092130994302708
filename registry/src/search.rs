//! Searches over experiments, runs, registered models and model versions: MLflow's filter and
//! `order_by` grammar (parsed in [`crate::search_filter`]) compiled to portable SQL, with every
//! value bound, and paged with [`crate::page`] tokens.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use sqlx::Row;

use crate::db::Store;
use crate::error::{Error, Result};
use crate::experiments::{Experiment, Tag, ViewType, experiment_from_row};
use crate::logged_models::RunModels;
use crate::models::{
    ModelAlias, ModelVersion, RegisteredModel, attach_version_details, model_from_row,
    version_from_row,
};
use crate::page;
use crate::rendered::RenderedRuns;
use crate::runs::Run;
use crate::search_filter::{self as filter, Comparison, Dialect, Entity, Op, Value};
use crate::sql::Sql;

/// One page of results.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchPage<T> {
    /// The results on this page.
    pub items: Vec<T>,
    /// Token for the next page; absent on the last page.
    pub next_page_token: Option<String>,
}

/// A run search: scope, filter, order and page.
#[derive(Debug, Clone, Default)]
pub struct RunSearch {
    /// Experiments to search in (at least one).
    pub experiment_ids: Vec<String>,
    /// MLflow filter string; empty matches everything.
    pub filter: String,
    /// Order clauses such as `metrics.rmse ASC`; ties fall back to start time (newest first),
    /// then run id.
    pub order_by: Vec<String>,
    /// Page size.
    pub max_results: i64,
    /// Token from the previous page.
    pub page_token: Option<String>,
    /// Lifecycle stages to include.
    pub view: ViewType,
}

/// An experiment search.
#[derive(Debug, Clone, Default)]
pub struct ExperimentSearch {
    /// MLflow filter string.
    pub filter: String,
    /// Order clauses; default newest first.
    pub order_by: Vec<String>,
    /// Page size.
    pub max_results: i64,
    /// Token from the previous page.
    pub page_token: Option<String>,
    /// Lifecycle stages to include.
    pub view: ViewType,
}

/// A registered-model or model-version search.
#[derive(Debug, Clone, Default)]
pub struct ModelSearch {
    /// For version searches: only versions of this model.
    pub model_name: Option<String>,
    /// MLflow filter string.
    pub filter: String,
    /// Order clauses.
    pub order_by: Vec<String>,
    /// Page size.
    pub max_results: i64,
    /// Token from the previous page.
    pub page_token: Option<String>,
}

/// Most comparisons one filter may have. Each is a subquery, and PostgreSQL's planning time grows
/// steeply with their number (150 take seconds, 300 minutes); real filters have a handful.
pub const MAX_FILTER_COMPARISONS: usize = 50;
/// Most `order_by` clauses one search may have; each metric, param or tag clause is a join.
pub const MAX_ORDER_CLAUSES: usize = 20;
/// Most values one search may bind, as experiment ids or in `IN` lists: SQLite takes at most
/// 32,766 per statement and PostgreSQL 65,535, and past them the search would fail as a whole.
pub const MAX_SEARCH_VALUES: usize = 10_000;

/// Refuses a filter of more than [`MAX_FILTER_COMPARISONS`] comparisons or
/// [`MAX_SEARCH_VALUES`] values in all.
pub(crate) fn check_filter_size(comparisons: usize, values: usize) -> Result<()> {
    if comparisons > MAX_FILTER_COMPARISONS {
        return Err(Error::invalid(format!(
            "Invalid filter: it has {comparisons} comparisons; the limit is {MAX_FILTER_COMPARISONS}"
        )));
    }
    if values > MAX_SEARCH_VALUES {
        return Err(Error::invalid(format!(
            "Invalid filter: it has {values} values; the limit is {MAX_SEARCH_VALUES}"
        )));
    }
    Ok(())
}

fn parse(dialect: Dialect, text: &str) -> Result<Vec<Comparison>> {
    let comparisons = filter::parse_filter(dialect, text)
        .map_err(|e| Error::invalid(format!("Invalid filter '{text}': {e}")))?;
    let values: usize = comparisons
        .iter()
        .map(|c| match &c.value {
            Value::List(items) => items.len(),
            _ => 1,
        })
        .sum();
    check_filter_size(comparisons.len(), values)?;
    Ok(comparisons)
}

fn parse_order(dialect: Dialect, clauses: &[String]) -> Result<Vec<filter::OrderBy>> {
    if clauses.len() > MAX_ORDER_CLAUSES {
        return Err(Error::invalid(format!(
            "Invalid order_by: {} clauses; the limit is {MAX_ORDER_CLAUSES}",
            clauses.len()
        )));
    }
    clauses
        .iter()
        .map(|c| {
            filter::parse_order_by(dialect, c)
                .map_err(|e| Error::invalid(format!("Invalid order_by clause '{c}': {e}")))
        })
        .collect()
}

fn fingerprint(parts: &[&str]) -> String {
    parts.join("\u{0}")
}

/// Appends `<column> <op> <value>` for a string- or number-valued column.
fn push_comparison(sql: &mut Sql, column: &str, op: Op, value: &Value) -> Result<()> {
    match (op, value) {
        (Op::Like, Value::String(v)) => {
            sql.push(column)
                .push(" LIKE ")
                .bind(v.as_str())
                .push(" ESCAPE '\\'");
        }
        (Op::ILike, Value::String(v)) => {
            sql.push("LOWER(")
                .push(column)
                .push(") LIKE LOWER(")
                .bind(v.as_str())
                .push(") ESCAPE '\\'");
        }
        (Op::In | Op::NotIn, Value::List(items)) => {
            if items.is_empty() {
                // `x IN ()` is not valid SQL; an empty list matches nothing (NOT IN: everything).
                sql.push(if op == Op::In { "1 = 0" } else { "1 = 1" });
            } else {
                sql.push(column)
                    .push(if op == Op::In { " IN " } else { " NOT IN " });
                sql.bind_list(items.iter().map(String::as_str));
            }
        }
        (Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge, Value::Number(n)) => {
            sql.push(column)
                .push(" ")
                .push(sql_op(op))
                .push(" ")
                .bind(*n);
        }
        (Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge, Value::String(s)) => {
            sql.push(column)
                .push(" ")
                .push(sql_op(op))
                .push(" ")
                .bind(s.as_str());
        }
        (op, value) => {
            return Err(Error::invalid(format!(
                "Invalid comparison: '{}' cannot be used with {value:?}",
                op.as_str()
            )));
        }
    }
    Ok(())
}

fn sql_op(op: Op) -> &'static str {
    match op {
        Op::Eq => "=",
        Op::Ne => "<>",
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Gt => ">",
        Op::Ge => ">=",
        _ => unreachable!("only plain comparators have an SQL operator"),
    }
}

/// Appends an `EXISTS` over a key/value table, e.g. the run's params with key `k` and a value
/// matching `c`; `IS NULL` becomes `NOT EXISTS`. Correlated on the owner, so each probe is a
/// primary-key lookup whatever the planner believes about table sizes.
fn push_key_value(
    sql: &mut Sql,
    table: &str,
    owner_column: &str,
    owner: &str,
    c: &Comparison,
) -> Result<()> {
    sql.push(if c.op == Op::IsNull {
        "NOT EXISTS (SELECT 1 FROM "
    } else {
        "EXISTS (SELECT 1 FROM "
    });
    sql.push(table)
        .push(" kv WHERE kv.")
        .push(owner_column)
        .push(" = ")
        .push(owner);
    sql.push(" AND kv.key = ").bind(c.key.as_str());
    if !matches!(c.op, Op::IsNull | Op::IsNotNull) {
        sql.push(" AND ");
        push_comparison(sql, "kv.value", c.op, &c.value)?;
    }
    sql.push(")");
    Ok(())
}

fn run_attribute_column(key: &str) -> Result<&'static str> {
    Ok(match key {
        "run_id" => "r.run_uuid",
        "run_name" | "run name" | "Run name" | "Run Name" => "r.name",
        "user_id" => "r.user_id",
        "status" => "r.status",
        "start_time" | "created" | "Created" => "r.start_time",
        "end_time" => "r.end_time",
        "artifact_uri" => "r.artifact_uri",
        other => {
            return Err(Error::invalid(format!(
                "Invalid attribute key '{other}' specified."
            )));
        }
    })
}

/// `ORDER BY` terms for a nullable expression: present values first in either direction, as MLflow.
fn push_order(terms: &mut Vec<String>, expr: &str, ascending: bool) {
    terms.push(format!("CASE WHEN {expr} IS NULL THEN 1 ELSE 0 END"));
    terms.push(format!("{expr} {}", if ascending { "ASC" } else { "DESC" }));
}

/// A run search's statement but for its SELECT list (put in front by the caller): its joins,
/// conditions and order, and the page it is for.
struct RunPageQuery {
    /// From ` FROM runs r` to the end of the WHERE clause.
    sql: Sql,
    /// The ORDER BY terms.
    terms: String,
    page: page::Page,
    /// The search's fingerprint, which its page tokens carry.
    print: String,
}

impl RunPageQuery {
    /// The whole statement: `select` in front, then the order and the page's bounds.
    fn finish(&mut self, select: &str) {
        self.sql
            .enclose(select, &format!(" ORDER BY {}", self.terms));
        self.sql
            .push(" LIMIT ")
            .bind(self.page.limit)
            .push(" OFFSET ")
            .bind(self.page.offset);
    }
}

fn run_page_query(search: &RunSearch) -> Result<RunPageQuery> {
    if search.experiment_ids.is_empty() {
        return Err(Error::invalid(
            "search_runs needs at least one experiment id",
        ));
    }
    if search.experiment_ids.len() > MAX_SEARCH_VALUES {
        return Err(Error::invalid(format!(
            "search_runs takes at most {MAX_SEARCH_VALUES} experiment ids; got {}",
            search.experiment_ids.len()
        )));
    }
    let mut ids = Vec::with_capacity(search.experiment_ids.len());
    for id in &search.experiment_ids {
        ids.push(id.parse::<i64>().map_err(|_| {
            Error::invalid(format!(
                "Invalid experiment id '{id}': experiment ids are integers"
            ))
        })?);
    }
    let comparisons = parse(Dialect::Runs, &search.filter)?;
    let order = parse_order(Dialect::Runs, &search.order_by)?;
    let scope = format!("{:?}{:?}", ids, search.view);
    let print = fingerprint(&[&scope, &search.filter, &search.order_by.join("\u{1}")]);
    let page = page::start(search.page_token.as_deref(), search.max_results, &print)?;

    // On PostgreSQL, two passes in one statement: the ids of the page's runs, found and
    // ordered through the runs index and primary-key probes alone, then the page's rows. On
    // SQLite the page's run rows come with the order (its sorter keeps only the page's rows),
    // then their params, tags and metrics. The SELECT list, which names the order, is put in
    // front last.
    let mut sql = Sql::new(" FROM runs r");
    // Order terms need joins, which must come before WHERE; placeholders are numbered in
    // text order, so the joins are written first.
    let mut terms = Vec::new();
    let mut ordered_by_start = false;
    let mut ordered_by_id = false;
    // Metrics already joined for the order, by key: a filter on the same metric reads the
    // joined row instead of probing `latest_metrics` a second time for every candidate.
    let mut joined_metrics: HashMap<&str, String> = HashMap::new();
    for (i, o) in order.iter().enumerate() {
        let alias = format!("o{i}");
        match o.entity {
            Entity::Metric => {
                joined_metrics
                    .entry(o.key.as_str())
                    .or_insert_with(|| alias.clone());
                sql.push(&format!(
                    " LEFT JOIN latest_metrics {alias} ON {alias}.run_id = r.id AND {alias}.key = "
                ))
                .bind(o.key.as_str());
                // Present values first, then NaN, then runs without the metric (MLflow's order).
                terms.push(format!(
                        "CASE WHEN {alias}.run_id IS NULL THEN 2 WHEN {alias}.is_nan = 1 THEN 1 ELSE 0 END"
                    ));
                terms.push(format!(
                    "{alias}.value {}",
                    if o.ascending { "ASC" } else { "DESC" }
                ));
            }
            Entity::Param | Entity::Tag => {
                let table = if o.entity == Entity::Param {
                    "params"
                } else {
                    "tags"
                };
                sql.push(&format!(
                    " LEFT JOIN {table} {alias} ON {alias}.run_id = r.id AND {alias}.key = "
                ))
                .bind(o.key.as_str());
                push_order(&mut terms, &format!("{alias}.value"), o.ascending);
            }
            Entity::Attribute => {
                let column = run_attribute_column(&o.key)?;
                ordered_by_start |= column == "r.start_time";
                ordered_by_id |= column == "r.run_uuid";
                push_order(&mut terms, column, o.ascending);
            }
            Entity::Dataset => {
                return Err(Error::invalid("runs cannot be ordered by datasets"));
            }
        }
    }
    sql.push(" WHERE r.experiment_id IN ")
        .bind_list(ids.iter().copied());
    sql.push(" AND r.lifecycle_stage IN ")
        .bind_list(search.view.stages().iter().copied());
    for c in &comparisons {
        sql.push(" AND ");
        match c.entity {
            Entity::Metric => match joined_metrics.get(c.key.as_str()) {
                // (run_id, key) is the key of `latest_metrics`: the joined row is the only
                // one EXISTS could find.
                Some(alias) => {
                    sql.push(&format!(
                        "({alias}.run_id IS NOT NULL AND {alias}.is_nan = 0 AND "
                    ));
                    push_comparison(&mut sql, &format!("{alias}.value"), c.op, &c.value)?;
                    sql.push(")");
                }
                None => {
                    sql.push(
                            "EXISTS (SELECT 1 FROM latest_metrics kv WHERE kv.run_id = r.id AND kv.key = ",
                        )
                        .bind(c.key.as_str())
                        .push(" AND kv.is_nan = 0 AND ");
                    push_comparison(&mut sql, "kv.value", c.op, &c.value)?;
                    sql.push(")");
                }
            },
            Entity::Param => push_key_value(&mut sql, "params", "run_id", "r.id", c)?,
            Entity::Tag => push_key_value(&mut sql, "tags", "run_id", "r.id", c)?,
            Entity::Attribute => {
                push_comparison(&mut sql, run_attribute_column(&c.key)?, c.op, &c.value)?
            }
            Entity::Dataset => {
                sql.push(
                        "EXISTS (SELECT 1 FROM inputs i JOIN input_datasets d ON d.dataset_uuid = i.source_id \
                         LEFT JOIN input_tags it ON it.input_uuid = i.input_uuid AND it.name = 'mlflow.data.context' \
                         WHERE i.source_type = 'DATASET' AND i.destination_type = 'RUN' \
                         AND i.destination_id = r.run_uuid AND ",
                    );
                let column = match c.key.as_str() {
                    "name" => "d.name",
                    "digest" => "d.digest",
                    "context" => "it.value",
                    other => {
                        return Err(Error::invalid(format!("Invalid dataset key '{other}'")));
                    }
                };
                push_comparison(&mut sql, column, c.op, &c.value)?;
                sql.push(")");
            }
        }
    }
    if !ordered_by_start {
        terms.push("r.start_time DESC".into());
    }
    if !ordered_by_id {
        terms.push("r.run_uuid ASC".into());
    }
    let terms = terms.join(", ");
    Ok(RunPageQuery {
        sql,
        terms,
        page,
        print,
    })
}

impl Store {
    /// Runs in the given experiments matching the filter, in the requested order.
    #[tracing::instrument(skip(self))]
    pub async fn search_runs(&self, search: &RunSearch) -> Result<SearchPage<Run>> {
        let mut q = run_page_query(search)?;
        let Some(readers) = self.direct_readers() else {
            // PostgreSQL reads both passes in one statement: the ids, numbered in the order.
            q.finish(&format!(
                "SELECT r.id, row_number() OVER (ORDER BY {}) AS ord",
                q.terms
            ));
            q.sql.planned_per_call();
            let mut conn = self.read.acquire().await?;
            let items = crate::runs::load_page_postgres(&mut conn, q.sql).await?;
            return Ok(SearchPage {
                next_page_token: page::next(q.page, items.len(), &q.print),
                items,
            });
        };
        // SQLite: the whole page in one blocking call on a direct connection.
        q.finish(&format!("SELECT {}", crate::runs::RUN_COLUMNS));
        let sql = q.sql;
        let (fetched, items) = readers
            .run(move |conn| {
                let stored = sql.rows_direct(conn, crate::runs::stored_run_direct)?;
                Ok((stored.len(), crate::runs::attach_data_direct(conn, stored)?))
            })
            .await?;
        Ok(SearchPage {
            items,
            next_page_token: page::next(q.page, fetched, &q.print),
        })
    }

    /// [`Store::search_runs`], each run of the page rendered by `render` (given the run and its
    /// logged-model links). On SQLite, a run whose rendering `kept` holds at the run's current
    /// version is not read or rendered again, and new renderings are kept (see
    /// [`RenderedRuns`]).
    pub async fn search_runs_rendered<F>(
        &self,
        search: &RunSearch,
        kept: &Arc<RenderedRuns>,
        render: F,
    ) -> Result<SearchPage<Bytes>>
    where
        F: Fn(&Run, &RunModels) -> Bytes + Send + 'static,
    {
        let none = RunModels::default();
        let Some(readers) = self.direct_readers() else {
            let page = self.search_runs(search).await?;
            let ids: Vec<String> = page.items.iter().map(|r| r.info.run_id.clone()).collect();
            let models = self.run_models(&ids).await?;
            return Ok(SearchPage {
                items: page
                    .items
                    .iter()
                    .map(|r| render(r, models.get(&r.info.run_id).unwrap_or(&none)))
                    .collect(),
                next_page_token: page.next_page_token,
            });
        };
        // The page's order and each run's version only: the rows of runs whose rendering is kept
        // at that version are not read (nor carried through the sorter).
        let mut q = run_page_query(search)?;
        q.finish("SELECT r.id, r.run_uuid, r.data_version");
        let sql = q.sql;
        let kept = kept.clone();
        let (fetched, items) = readers
            .run(move |conn| {
                let mut page: Vec<(i64, String, i64)> = Vec::new();
                sql.query_direct(conn, |r| {
                    page.push((r.get(0)?, r.get(1)?, r.get(2)?));
                    Ok(())
                })?;
                let fetched = page.len();
                let mut items: Vec<Option<Bytes>> = Vec::with_capacity(fetched);
                // (place on the page, row id, version) of runs to render
                let mut places = Vec::new();
                for (id, uuid, version) in page {
                    let body = kept.get(id, &uuid, version);
                    if body.is_none() {
                        places.push((items.len(), id, version));
                    }
                    items.push(body);
                }
                if !places.is_empty() {
                    let ids: Vec<i64> = places.iter().map(|&(_, id, _)| id).collect();
                    let stale = crate::runs::stored_runs_direct(conn, &ids)?;
                    let runs = crate::runs::attach_data_direct(conn, stale)?;
                    let uuids: Vec<String> = runs.iter().map(|r| r.info.run_id.clone()).collect();
                    let models = crate::logged_models::run_models_direct(conn, &uuids)?;
                    for ((place, id, version), run) in places.into_iter().zip(runs) {
                        let body = render(&run, models.get(&run.info.run_id).unwrap_or(&none));
                        kept.put(id, &run.info.run_uuid, version, body.clone());
                        items[place] = Some(body);
                    }
                }
                Ok((fetched, items.into_iter().flatten().collect::<Vec<_>>()))
            })
            .await?;
        Ok(SearchPage {
            items,
            next_page_token: page::next(q.page, fetched, &q.print),
        })
    }

    /// Experiments matching the filter; default order newest first.
    #[tracing::instrument(skip(self))]
    pub async fn search_experiments(
        &self,
        search: &ExperimentSearch,
    ) -> Result<SearchPage<Experiment>> {
        let comparisons = parse(Dialect::Experiments, &search.filter)?;
        let order = parse_order(Dialect::Experiments, &search.order_by)?;
        let view = format!("{:?}", search.view);
        let print = fingerprint(&[&view, &search.filter, &search.order_by.join("\u{1}")]);
        let page = page::start(search.page_token.as_deref(), search.max_results, &print)?;

        let mut sql = Sql::new(
            "SELECT e.experiment_id, e.name, e.artifact_location, e.lifecycle_stage, e.creation_time, \
             e.last_update_time FROM experiments e WHERE e.lifecycle_stage IN ",
        );
        sql.planned_per_call();
        sql.bind_list(search.view.stages().iter().copied());
        for c in &comparisons {
            sql.push(" AND ");
            match c.entity {
                Entity::Tag => push_key_value(
                    &mut sql,
                    "experiment_tags",
                    "experiment_id",
                    "e.experiment_id",
                    c,
                )?,
                Entity::Attribute => {
                    let column = match c.key.as_str() {
                        "name" => "e.name",
                        "creation_time" => "e.creation_time",
                        "last_update_time" => "e.last_update_time",
                        other => {
                            return Err(Error::invalid(format!(
                                "Invalid attribute key '{other}' specified."
                            )));
                        }
                    };
                    push_comparison(&mut sql, column, c.op, &c.value)?;
                }
                other => {
                    return Err(Error::invalid(format!(
                        "Invalid entity type '{other:?}' for experiments"
                    )));
                }
            }
        }
        let mut terms = Vec::new();
        let mut ordered_by_id = false;
        for o in &order {
            let column = match o.key.as_str() {
                "name" => "e.name",
                "experiment_id" => "e.experiment_id",
                "creation_time" => "e.creation_time",
                "last_update_time" => "e.last_update_time",
                other => return Err(Error::invalid(format!("Invalid order_by key '{other}'"))),
            };
            ordered_by_id |= column == "e.experiment_id";
            terms.push(format!(
                "{column} {}",
                if o.ascending { "ASC" } else { "DESC" }
            ));
        }
        if terms.is_empty() {
            terms.push("e.creation_time DESC".into());
        }
        if !ordered_by_id {
            terms.push("e.experiment_id ASC".into());
        }
        sql.push(" ORDER BY ").push(&terms.join(", "));
        sql.push(" LIMIT ")
            .bind(page.limit)
            .push(" OFFSET ")
            .bind(page.offset);

        let mut conn = self.read.acquire().await?;
        let rows = sql.fetch_all(&mut conn).await?;
        let ids: Vec<i64> = rows
            .iter()
            .map(|r| r.try_get("experiment_id"))
            .collect::<Result<_, _>>()?;
        let mut tags: HashMap<i64, Vec<Tag>> = HashMap::new();
        for chunk in ids.chunks(1000) {
            let mut q = Sql::new(
                "SELECT experiment_id, key, value FROM experiment_tags WHERE experiment_id IN ",
            );
            q.bind_list(chunk.iter().copied()).push(" ORDER BY key");
            for r in q.fetch_all(&mut conn).await? {
                tags.entry(r.try_get("experiment_id")?)
                    .or_default()
                    .push(Tag {
                        key: r.try_get("key")?,
                        value: r.try_get("value")?,
                    });
            }
        }
        let items = rows
            .iter()
            .zip(&ids)
            .map(|(row, id)| experiment_from_row(row, tags.remove(id).unwrap_or_default()))
            .collect::<Result<Vec<_>>>()?;
        let next_page_token = page::next(page, items.len(), &print);
        Ok(SearchPage {
            items,
            next_page_token,
        })
    }

    /// Registered models matching the filter; default order by name.
    #[tracing::instrument(skip(self))]
    pub async fn search_registered_models(
        &self,
        search: &ModelSearch,
    ) -> Result<SearchPage<RegisteredModel>> {
        let comparisons = parse(Dialect::RegisteredModels, &search.filter)?;
        let order = parse_order(Dialect::RegisteredModels, &search.order_by)?;
        let print = fingerprint(&["models", &search.filter, &search.order_by.join("\u{1}")]);
        let page = page::start(search.page_token.as_deref(), search.max_results, &print)?;

        let mut sql = Sql::new(
            "SELECT m.name, m.creation_time, m.last_updated_time, m.description, \
             (SELECT MAX(version) FROM model_versions v WHERE v.name = m.name) AS latest_version \
             FROM registered_models m WHERE 1 = 1",
        );
        sql.planned_per_call();
        for c in &comparisons {
            sql.push(" AND ");
            match c.entity {
                Entity::Tag => {
                    push_key_value(&mut sql, "registered_model_tags", "name", "m.name", c)?
                }
                Entity::Attribute if c.key == "name" => {
                    push_comparison(&mut sql, "m.name", c.op, &c.value)?
                }
                _ => {
                    return Err(Error::invalid(format!(
                        "Invalid filter key '{}' for registered models",
                        c.key
                    )));
                }
            }
        }
        let mut terms = Vec::new();
        let mut ordered_by_name = false;
        for o in &order {
            let column = match o.key.as_str() {
                "name" => "m.name",
                "timestamp" | "last_updated_timestamp" => "m.last_updated_time",
                other => return Err(Error::invalid(format!("Invalid order_by key '{other}'"))),
            };
            ordered_by_name |= column == "m.name";
            terms.push(format!(
                "{column} {}",
                if o.ascending { "ASC" } else { "DESC" }
            ));
        }
        if !ordered_by_name {
            terms.push("m.name ASC".into());
        }
        sql.push(" ORDER BY ").push(&terms.join(", "));
        sql.push(" LIMIT ")
            .bind(page.limit)
            .push(" OFFSET ")
            .bind(page.offset);

        let mut conn = self.read.acquire().await?;
        let rows = sql.fetch_all(&mut conn).await?;
        let names: Vec<String> = rows
            .iter()
            .map(|r| r.try_get("name"))
            .collect::<Result<_, _>>()?;
        let mut tags: HashMap<String, Vec<Tag>> = HashMap::new();
        let mut aliases: HashMap<String, Vec<ModelAlias>> = HashMap::new();
        for chunk in names.chunks(1000) {
            let mut q =
                Sql::new("SELECT name, key, value FROM registered_model_tags WHERE name IN ");
            q.bind_list(chunk.iter().map(String::as_str))
                .push(" ORDER BY key");
            for r in q.fetch_all(&mut conn).await? {
                tags.entry(r.try_get("name")?).or_default().push(Tag {
                    key: r.try_get("key")?,
                    value: r.try_get("value")?,
                });
            }
            let mut q = Sql::new(
                "SELECT name, alias, version FROM registered_model_aliases WHERE name IN ",
            );
            q.bind_list(chunk.iter().map(String::as_str))
                .push(" ORDER BY alias");
            for r in q.fetch_all(&mut conn).await? {
                aliases
                    .entry(r.try_get("name")?)
                    .or_default()
                    .push(ModelAlias {
                        alias: r.try_get("alias")?,
                        version: r.try_get("version")?,
                    });
            }
        }
        let items = rows
            .iter()
            .zip(&names)
            .map(|(row, name)| {
                model_from_row(
                    row,
                    tags.remove(name).unwrap_or_default(),
                    aliases.remove(name).unwrap_or_default(),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let next_page_token = page::next(page, items.len(), &print);
        Ok(SearchPage {
            items,
            next_page_token,
        })
    }

    /// Model versions matching the filter (e.g. `name = 'x' AND run_id = '...'`); default order
    /// by model name, newest version first.
    #[tracing::instrument(skip(self))]
    pub async fn search_model_versions(
        &self,
        search: &ModelSearch,
    ) -> Result<SearchPage<ModelVersion>> {
        let comparisons = parse(Dialect::ModelVersions, &search.filter)?;
        let order = parse_order(Dialect::ModelVersions, &search.order_by)?;
        let scope = search.model_name.as_deref().unwrap_or("\u{2}");
        let print = fingerprint(&[
            "versions",
            scope,
            &search.filter,
            &search.order_by.join("\u{1}"),
        ]);
        let page = page::start(search.page_token.as_deref(), search.max_results, &print)?;

        let mut sql = Sql::new(
            "SELECT v.name, v.version, v.creation_time, v.last_updated_time, v.description, v.user_id, \
             v.current_stage, v.source, v.run_id, v.run_link, v.status, v.status_message \
             FROM model_versions v WHERE 1 = 1",
        );
        sql.planned_per_call();
        if let Some(name) = &search.model_name {
            sql.push(" AND v.name = ").bind(name.as_str());
        }
        for c in &comparisons {
            sql.push(" AND ");
            match c.entity {
                Entity::Tag => {
                    let negate = c.op == Op::IsNull;
                    sql.push(if negate { "NOT EXISTS" } else { "EXISTS" });
                    sql.push(" (SELECT 1 FROM model_version_tags kv WHERE kv.name = v.name AND kv.version = v.version AND kv.key = ")
                        .bind(c.key.as_str());
                    if !matches!(c.op, Op::IsNull | Op::IsNotNull) {
                        sql.push(" AND ");
                        push_comparison(&mut sql, "kv.value", c.op, &c.value)?;
                    }
                    sql.push(")");
                }
                Entity::Attribute => {
                    let column = match c.key.as_str() {
                        "name" => "v.name",
                        "version_number" => "v.version",
                        "run_id" => "v.run_id",
                        "source_path" => "v.source",
                        other => {
                            return Err(Error::invalid(format!(
                                "Invalid attribute key '{other}' specified."
                            )));
                        }
                    };
                    // MLflow accepts version_number = '3' as well as = 3.
                    let value = match (&c.value, column) {
                        (Value::String(s), "v.version") => {
                            Value::Number(s.parse().map_err(|_| {
                                Error::invalid(format!(
                                    "version_number must be a number, got '{s}'"
                                ))
                            })?)
                        }
                        (v, _) => v.clone(),
                    };
                    push_comparison(&mut sql, column, c.op, &value)?;
                }
                _ => {
                    return Err(Error::invalid(format!(
                        "Invalid filter key '{}' for model versions",
                        c.key
                    )));
                }
            }
        }
        let mut terms = Vec::new();
        for o in &order {
            let column = match o.key.as_str() {
                "name" => "v.name",
                "version_number" => "v.version",
                "creation_timestamp" => "v.creation_time",
                "last_updated_timestamp" => "v.last_updated_time",
                other => return Err(Error::invalid(format!("Invalid order_by key '{other}'"))),
            };
            terms.push(format!(
                "{column} {}",
                if o.ascending { "ASC" } else { "DESC" }
            ));
        }
        terms.push("v.name ASC".into());
        terms.push("v.version DESC".into());
        sql.push(" ORDER BY ").push(&terms.join(", "));
        sql.push(" LIMIT ")
            .bind(page.limit)
            .push(" OFFSET ")
            .bind(page.offset);

        let mut conn = self.read.acquire().await?;
        let rows = sql.fetch_all(&mut conn).await?;
        let mut items = rows
            .iter()
            .map(version_from_row)
            .collect::<Result<Vec<_>>>()?;
        attach_version_details(&mut conn, &mut items).await?;
        let next_page_token = page::next(page, items.len(), &print);
        Ok(SearchPage {
            items,
            next_page_token,
        })
    }
}
