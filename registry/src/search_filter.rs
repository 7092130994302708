//! Tokenizer and parser for MLflow-compatible search `filter_string`s and `order_by` clauses.
//!
//! The MLflow Python client forwards `filter_string` and `order_by` verbatim, and the MLflow
//! server parses them with `sqlparse` in `mlflow/utils/search_utils.py` (`SearchUtils` for runs,
//! `SearchExperimentsUtils`, `SearchModelUtils`, `SearchModelVersionUtils`) before its SQLAlchemy
//! stores reject comparators they cannot translate (`mlflow/store/tracking/sqlalchemy_store.py`,
//! `mlflow/store/model_registry/sqlalchemy_store.py`). Clients written against MLflow rely on
//! exactly which filters are accepted, so this module reproduces that behaviour rather than a
//! generic SQL `WHERE` grammar: the lexical rules are sqlparse's (`sqlparse/keywords.py`), the
//! per-endpoint rules are MLflow's, and error messages keep MLflow's wording (with a byte
//! position added) because users and tests match on them.
//!
//! Parsing is done in two passes, as MLflow does: first the whole input must form
//! `comparison (AND comparison)*` (MLflow reports *any* token that is not part of a grouped
//! comparison as "Invalid clause(s) in filter string" before looking at identifiers), then each
//! comparison's identifier, value and comparator are checked, in MLflow's order.
//!
//! The output is an AST only; translating it to SQL (for instance `attributes.run_name` versus
//! `tags."mlflow.runName"`, or `timestamp` versus `last_updated_timestamp`) is left to the store.

use std::cell::OnceCell;
use std::fmt;

// ------------------------------------------------------------------------------------------------
// Public API
// ------------------------------------------------------------------------------------------------

/// The MLflow search endpoint a filter or `order_by` clause is written for.
///
/// Each endpoint has its own entities, attribute keys and comparators in MLflow, so the same text
/// can be valid for one and an error for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// `search_runs` (MLflow `SearchUtils`): metrics, params, tags, run attributes, datasets.
    Runs,
    /// `search_experiments` (MLflow `SearchExperimentsUtils`): attributes and tags.
    Experiments,
    /// `search_registered_models` (MLflow `SearchModelUtils`): `name` and tags.
    RegisteredModels,
    /// `search_model_versions` (MLflow `SearchModelVersionUtils`): version attributes and tags.
    ModelVersions,
}

/// What an identifier refers to, after MLflow's alternate spellings are folded together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Entity {
    /// `metric.` / `metrics.` (runs only).
    Metric,
    /// `parameter.` / `parameters.` / `param.` / `params.` (runs only).
    Param,
    /// `tag.` / `tags.`.
    Tag,
    /// A built-in column: `attribute.` / `attr.` / `attributes.` / `run.` for runs, `attribute.`
    /// elsewhere, or a bare identifier without any prefix.
    Attribute,
    /// `dataset.` / `datasets.` with key `name`, `digest` or `context` (runs only).
    Dataset,
}

/// A comparator, normalised to one spelling (MLflow accepts `LIKE`, `IN`, ... in any case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `LIKE` (case-sensitive pattern match, `%` and `_` wildcards).
    Like,
    /// `ILIKE` (case-insensitive pattern match).
    ILike,
    /// `IN (...)`; the value is always a [`Value::List`].
    In,
    /// `NOT IN (...)`; the value is always a [`Value::List`].
    NotIn,
    /// `IS NULL`: the tag or param is absent. Runs (tags and params) and experiments (tags) only,
    /// as in MLflow since it added existence filters; the value is an empty [`Value::String`].
    IsNull,
    /// `IS NOT NULL`: the tag or param is present. Same availability and value as [`Op::IsNull`].
    IsNotNull,
}

impl Op {
    /// The canonical upper-case spelling, the form MLflow's stores compare against.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Like => "LIKE",
            Op::ILike => "ILIKE",
            Op::In => "IN",
            Op::NotIn => "NOT IN",
            Op::IsNull => "IS NULL",
            Op::IsNotNull => "IS NOT NULL",
        }
    }

    fn from_canonical(s: &str) -> Option<Op> {
        Some(match s {
            "=" => Op::Eq,
            "!=" => Op::Ne,
            "<" => Op::Lt,
            "<=" => Op::Le,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "LIKE" => Op::Like,
            "ILIKE" => Op::ILike,
            "IN" => Op::In,
            "NOT IN" => Op::NotIn,
            "IS NULL" => Op::IsNull,
            "IS NOT NULL" => Op::IsNotNull,
            _ => return None,
        })
    }
}

/// The right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A numeric literal (`3`, `-2`, `0.5`, `.5`, `5.`, `1e-3`), for metrics and numeric
    /// attributes.
    Number(f64),
    /// The text between the quotes of a `'...'` or `"..."` literal, *not* unescaped: MLflow only
    /// trims the outer quotes, so `'it''s'` compares against `it''s`. Empty for `IS [NOT] NULL`.
    String(String),
    /// The strings of an `IN` / `NOT IN` list, decoded like Python literals (MLflow uses
    /// `ast.literal_eval`). As in MLflow, entries that are not entirely lower case (Python
    /// `str.islower()`) are dropped, because run ids are lower-case hex and MySQL compares `IN`
    /// case-insensitively; MLflow applies this to dataset lists too. The list may therefore be
    /// empty, and the SQL layer must treat an empty `IN` as false (and `NOT IN` as true).
    List(Vec<String>),
}

/// One `identifier comparator value` term of a filter (terms are always AND-ed).
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// What the identifier refers to.
    pub entity: Entity,
    /// The key with its quotes removed, exactly as written otherwise (aliases such as
    /// `created` or `Run Name` are kept; resolving them is the SQL layer's job).
    pub key: String,
    /// The comparator.
    pub op: Op,
    /// The value, already checked against the entity's expected type.
    pub value: Value,
    /// Byte offset of the comparison's identifier in the input.
    pub position: usize,
}

/// A rejected filter or `order_by` clause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset of the offending token in the input (the input length if the input ended
    /// too early).
    pub position: usize,
    /// What is wrong, worded like MLflow's own message where MLflow has one.
    pub message: String,
}

impl ParseError {
    fn new(position: usize, message: impl Into<String>) -> Self {
        ParseError {
            position,
            message: message.into(),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at position {})", self.message, self.position)
    }
}

impl std::error::Error for ParseError {}

/// One parsed `order_by` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderBy {
    /// What is sorted on.
    pub entity: Entity,
    /// The key with its quotes removed (aliases such as `created` or `timestamp` are kept).
    pub key: String,
    /// `true` unless `DESC` was given.
    pub ascending: bool,
}

/// Parses a search filter such as `metrics.acc > 0.9 AND tags."my tag" LIKE 'x%'`.
///
/// An empty or all-whitespace filter means "no filter" and yields an empty list, as in MLflow.
pub fn parse_filter(dialect: Dialect, input: &str) -> Result<Vec<Comparison>, ParseError> {
    if input.trim().is_empty() {
        return Ok(Vec::new());
    }
    let src = Src::new(input);
    check_single_statement(&src)?;
    let raws = scan_filter(&src)?;
    raws.iter()
        .map(|raw| resolve_comparison(dialect, raw))
        .collect()
}

/// Parses one `order_by` entry: an identifier optionally followed by `ASC` or `DESC` (any case).
pub fn parse_order_by(dialect: Dialect, clause: &str) -> Result<OrderBy, ParseError> {
    let src = Src::new(clause);
    let unparsable = |pos: usize| {
        ParseError::new(
            pos,
            format!("Invalid order_by clause '{clause}'. Could not be parsed."),
        )
    };
    // MLflow requires the whole clause to be one sqlparse identifier, so empty input and
    // leading or trailing whitespace are rejected rather than trimmed.
    let first = src.at(0).ok_or_else(|| unparsable(0))?;
    if !(first == '`' || first == '"' || is_word_char(first)) {
        return Err(unparsable(0));
    }
    if first.is_ascii_digit() && src.number_at(0).is_some() {
        return Err(unparsable(0));
    }
    let ident_end = src
        .ident_chain_end(0)
        .map_err(|e| unparsable(e.position()))?;
    let ident = &clause[..ident_end];

    let mut ascending = true;
    if ident_end < clause.len() {
        let dir_pos = src.skip_ws(ident_end);
        if dir_pos == ident_end || dir_pos == clause.len() {
            return Err(unparsable(ident_end));
        }
        let dir_end = src.word_end(dir_pos);
        if dir_end == dir_pos {
            return Err(unparsable(dir_pos));
        }
        if dir_end < clause.len() {
            return Err(unparsable(dir_end));
        }
        let dir = &clause[dir_pos..dir_end];
        if dir.eq_ignore_ascii_case("asc") {
            ascending = true;
        } else if dir.eq_ignore_ascii_case("desc") {
            ascending = false;
        } else if ident == "timestamp" {
            // sqlparse lexes `timestamp` as a builtin type, not an identifier, so MLflow only
            // accepts it followed by a real ASC/DESC keyword and otherwise cannot parse at all.
            return Err(unparsable(dir_pos));
        } else {
            return Err(ParseError::new(
                dir_pos,
                format!("Invalid ordering key in order_by clause '{clause}'."),
            ));
        }
    }

    if dialect == Dialect::RegisteredModels {
        // The SQL registry store uses the base `SearchUtils.parse_order_by_for_search_registered_
        // models`, which takes a bare key only (no `attribute.` prefix).
        let key = trim_backticks(strip_quotes(ident));
        if ident.contains('.') || !REGISTERED_MODEL_ORDER_KEYS.contains(&key) {
            return Err(ParseError::new(
                0,
                format!(
                    "Invalid order by key '{}' specified. Valid keys are '{}'",
                    if ident.contains('.') { ident } else { key },
                    py_set(&["name", "timestamp"])
                ),
            ));
        }
        return Ok(OrderBy {
            entity: Entity::Attribute,
            key: key.to_string(),
            ascending,
        });
    }

    let target = resolve_identifier(dialect, ident, 0, Purpose::OrderBy)?;
    match (dialect, target.entity) {
        (Dialect::Runs, Entity::Dataset) => {
            return Err(ParseError::new(0, "Invalid identifier type 'dataset'"));
        }
        (Dialect::Experiments, Entity::Tag) => {
            return Err(ParseError::new(0, "Invalid order_by entity: tag"));
        }
        (Dialect::ModelVersions, Entity::Tag) => {
            return Err(ParseError::new(
                target.key_pos,
                format!(
                    "Invalid order by key '{}' specified. Valid keys are {}",
                    target.key,
                    py_set(MODEL_VERSION_ORDER_KEYS)
                ),
            ));
        }
        _ => {}
    }
    Ok(OrderBy {
        entity: target.entity,
        key: target.key,
        ascending,
    })
}

// ------------------------------------------------------------------------------------------------
// MLflow's per-endpoint tables
// ------------------------------------------------------------------------------------------------

const NUMERIC_COMPARATORS: &[&str] = &["=", "!=", "<", "<=", ">", ">="];
const STRING_COMPARATORS: &[&str] = &["=", "!=", "LIKE", "ILIKE"];
const NULLABLE_STRING_COMPARATORS: &[&str] =
    &["=", "!=", "LIKE", "ILIKE", "IS NULL", "IS NOT NULL"];
const LIST_STRING_COMPARATORS: &[&str] = &["=", "!=", "LIKE", "ILIKE", "IN", "NOT IN"];
// `SearchModelVersionUtils.VALID_STRING_ATTRIBUTE_COMPARATORS` has no `NOT IN`.
const MODEL_VERSION_STRING_COMPARATORS: &[&str] = &["=", "!=", "LIKE", "ILIKE", "IN"];

const RUN_ENTITY_TYPES: &str = "['metric', 'parameter', 'tag', 'attribute', 'dataset']";
const REGISTRY_ENTITY_TYPES: &str = "('attribute', 'tag', 'tags')";
const DATASET_KEYS: &[&str] = &["name", "digest", "context"];

// `RunInfo.get_searchable_attributes()` plus MLflow's aliases `created`/`Created` (start_time)
// and `run name`/`Run name`/`Run Name` (run_name). `lifecycle_stage` and `experiment_id` are
// deliberately absent in MLflow: they are covered by the API's own parameters.
const RUN_SEARCH_KEYS: &[&str] = &[
    "run_id",
    "run_name",
    "user_id",
    "status",
    "start_time",
    "end_time",
    "artifact_uri",
    "created",
    "Created",
    "run name",
    "Run name",
    "Run Name",
];
// `RunInfo.get_orderable_attributes()` plus `created`/`Created`; the `run name` aliases are not
// orderable in MLflow.
const RUN_ORDER_KEYS: &[&str] = &[
    "run_id",
    "run_name",
    "user_id",
    "status",
    "start_time",
    "end_time",
    "artifact_uri",
    "created",
    "Created",
];
const RUN_NUMERIC_KEYS: &[&str] = &["start_time", "end_time", "created", "Created"];

const EXPERIMENT_SEARCH_KEYS: &[&str] = &["name", "creation_time", "last_update_time"];
const EXPERIMENT_ORDER_KEYS: &[&str] =
    &["name", "experiment_id", "creation_time", "last_update_time"];
const EXPERIMENT_NUMERIC_KEYS: &[&str] = &["creation_time", "last_update_time"];

const REGISTERED_MODEL_SEARCH_KEYS: &[&str] = &["name"];
// `SearchUtils.VALID_ORDER_BY_KEYS_REGISTERED_MODELS`; `timestamp` is an alias of
// `last_updated_timestamp`.
const REGISTERED_MODEL_ORDER_KEYS: &[&str] = &["name", "timestamp", "last_updated_timestamp"];
const REGISTERED_MODEL_NUMERIC_KEYS: &[&str] = &["creation_timestamp", "last_updated_timestamp"];

const MODEL_VERSION_SEARCH_KEYS: &[&str] = &["name", "version_number", "run_id", "source_path"];
const MODEL_VERSION_ORDER_KEYS: &[&str] = &[
    "name",
    "version_number",
    "creation_timestamp",
    "last_updated_timestamp",
];
const MODEL_VERSION_NUMERIC_KEYS: &[&str] = &[
    "version_number",
    "creation_timestamp",
    "last_updated_timestamp",
];

impl Dialect {
    fn search_keys(self) -> &'static [&'static str] {
        match self {
            Dialect::Runs => RUN_SEARCH_KEYS,
            Dialect::Experiments => EXPERIMENT_SEARCH_KEYS,
            Dialect::RegisteredModels => REGISTERED_MODEL_SEARCH_KEYS,
            Dialect::ModelVersions => MODEL_VERSION_SEARCH_KEYS,
        }
    }

    fn order_keys(self) -> &'static [&'static str] {
        match self {
            Dialect::Runs => RUN_ORDER_KEYS,
            Dialect::Experiments => EXPERIMENT_ORDER_KEYS,
            Dialect::RegisteredModels => REGISTERED_MODEL_ORDER_KEYS,
            Dialect::ModelVersions => MODEL_VERSION_ORDER_KEYS,
        }
    }

    fn numeric_keys(self) -> &'static [&'static str] {
        match self {
            Dialect::Runs => RUN_NUMERIC_KEYS,
            Dialect::Experiments => EXPERIMENT_NUMERIC_KEYS,
            Dialect::RegisteredModels => REGISTERED_MODEL_NUMERIC_KEYS,
            Dialect::ModelVersions => MODEL_VERSION_NUMERIC_KEYS,
        }
    }
}

fn run_entity(name: &str) -> Option<Entity> {
    Some(match name {
        "metric" | "metrics" => Entity::Metric,
        "parameter" | "parameters" | "param" | "params" => Entity::Param,
        "tag" | "tags" => Entity::Tag,
        "attribute" | "attributes" | "attr" | "run" => Entity::Attribute,
        "dataset" | "datasets" => Entity::Dataset,
        _ => return None,
    })
}

/// Formats names like a Python `set` repr (sorted, since Python's order is arbitrary anyway).
fn py_set(items: &[&str]) -> String {
    let mut sorted = items.to_vec();
    sorted.sort_unstable();
    let inner: Vec<String> = sorted.iter().map(|s| format!("'{s}'")).collect();
    format!("{{{}}}", inner.join(", "))
}

// ------------------------------------------------------------------------------------------------
// Lexical layer (sqlparse's rules)
// ------------------------------------------------------------------------------------------------

/// The input plus lazily built tables for quoted-token extents.
struct Src<'a> {
    text: &'a str,
    /// One table per quote kind (`'`, `"`, `` ` ``), see [`quote_table`].
    quote_tables: [OnceCell<Vec<Option<usize>>>; 3],
}

/// Why an identifier chain could not be scanned.
enum ChainError {
    /// A quote at this position is never closed.
    Unterminated(usize),
    /// Nothing usable follows the `.` that ends just before this position.
    MissingKey(usize),
}

impl ChainError {
    fn position(&self) -> usize {
        match self {
            ChainError::Unterminated(p) | ChainError::MissingKey(p) => *p,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum NumKind {
    Hex,
    Float,
    Integer,
}

/// sqlparse's `\w`: Unicode letters and digits plus `_`.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The class `[_A-ZÀ-Ü]` (case-insensitive) used by sqlparse's integer look-ahead.
fn is_name_letter(c: char) -> bool {
    c == '_'
        || c.is_ascii_alphabetic()
        || ('\u{C0}'..='\u{DC}').contains(&c)
        || ('\u{E0}'..='\u{FC}').contains(&c)
}

fn strip_quotes(s: &str) -> &str {
    // MLflow `_strip_quotes`: one layer of matching single or double quotes.
    if s.len() >= 2
        && ((s.starts_with('\'') && s.ends_with('\'')) || (s.starts_with('"') && s.ends_with('"')))
    {
        &s[1..s.len() - 1]
    } else {
        s
    }
}

fn trim_backticks(s: &str) -> &str {
    // MLflow `_trim_backticks`.
    if s.len() >= 2 && s.starts_with('`') && s.ends_with('`') {
        &s[1..s.len() - 1]
    } else {
        s
    }
}

/// For every body start `p`, where the sqlparse string regex `q(qq|\\\\|\\q|[^q])*q` (no
/// backslash alternatives for backticks) ends if its body starts at `p`, or `None`.
///
/// Python's regex engine backtracks (a trailing `\` before the closing quote is a plain
/// character if the quote is needed to close the string), so the extent is not a simple
/// left-to-right scan; the table replays the engine's alternative order from the right end,
/// which keeps it linear in the input length.
fn quote_table(b: &[u8], q: u8) -> Vec<Option<usize>> {
    let backslash = q != b'`';
    let n = b.len();
    let mut m: Vec<Option<usize>> = vec![None; n + 2];
    for p in (0..n).rev() {
        let c0 = b[p];
        let c1 = b.get(p + 1).copied();
        let mut r = None;
        if c0 == q && c1 == Some(q) {
            r = m[p + 2];
        }
        if r.is_none() && backslash && c0 == b'\\' && (c1 == Some(b'\\') || c1 == Some(q)) {
            r = m[p + 2];
        }
        if r.is_none() && c0 != q {
            r = m[p + 1];
        }
        if r.is_none() && c0 == q {
            r = Some(p + 1);
        }
        m[p] = r;
    }
    m
}

impl<'a> Src<'a> {
    fn new(text: &'a str) -> Self {
        Src {
            text,
            quote_tables: [OnceCell::new(), OnceCell::new(), OnceCell::new()],
        }
    }

    fn len(&self) -> usize {
        self.text.len()
    }

    fn at(&self, i: usize) -> Option<char> {
        self.text.get(i..)?.chars().next()
    }

    fn skip_ws(&self, mut i: usize) -> usize {
        while let Some(c) = self.at(i) {
            if !c.is_whitespace() {
                break;
            }
            i += c.len_utf8();
        }
        i
    }

    /// End of the `\w+` run starting at `i` (`i` itself if there is none).
    fn word_end(&self, mut i: usize) -> usize {
        while let Some(c) = self.at(i) {
            if !is_word_char(c) {
                break;
            }
            i += c.len_utf8();
        }
        i
    }

    /// End (exclusive) of the quoted token whose opening quote is at `start`.
    fn quoted_end(&self, start: usize) -> Option<usize> {
        let q = *self.text.as_bytes().get(start)?;
        let idx = match q {
            b'\'' => 0,
            b'"' => 1,
            b'`' => 2,
            _ => return None,
        };
        let table = self.quote_tables[idx].get_or_init(|| quote_table(self.text.as_bytes(), q));
        table.get(start + 1).copied().flatten()
    }

    /// sqlparse's number rules, tried in its order: hexadecimal, float with exponent, float,
    /// integer. Unlike sqlparse, an exponent form needs a mantissa digit (sqlparse would lex a
    /// bare `e5` as a float that MLflow then fails on at query time).
    fn number_at(&self, i: usize) -> Option<(usize, NumKind)> {
        let b = self.text.as_bytes();
        let digits = |mut k: usize| {
            while k < b.len() && b[k].is_ascii_digit() {
                k += 1;
            }
            k
        };
        let mut p = i;
        if b.get(p) == Some(&b'-') {
            p += 1;
        }
        if b.get(p) == Some(&b'0') && matches!(b.get(p + 1), Some(b'x' | b'X')) {
            let mut k = p + 2;
            while k < b.len() && b[k].is_ascii_hexdigit() {
                k += 1;
            }
            if k > p + 2 {
                return Some((k, NumKind::Hex));
            }
        }
        let int_end = digits(p);
        let mut mantissa_end = int_end;
        if b.get(int_end) == Some(&b'.') {
            let frac_end = digits(int_end + 1);
            if frac_end > int_end + 1 {
                mantissa_end = frac_end;
            }
        }
        if mantissa_end > p && matches!(b.get(mantissa_end), Some(b'e' | b'E')) {
            let mut k = mantissa_end + 1;
            if b.get(k) == Some(&b'-') {
                k += 1;
            }
            let exp_end = digits(k);
            if exp_end > k {
                return Some((exp_end, NumKind::Float));
            }
        }
        if int_end > p && b.get(int_end) == Some(&b'.') {
            return Some((digits(int_end + 1), NumKind::Float));
        }
        if int_end == p && b.get(p) == Some(&b'.') {
            let frac_end = digits(p + 1);
            if frac_end > p + 1 {
                return Some((frac_end, NumKind::Float));
            }
        }
        if int_end > p {
            // `-?\d+(?![_A-ZÀ-Ü])`: when a letter follows, the regex engine backtracks and
            // gives up the last digit, so `12abc` lexes as `1` followed by `2abc`.
            if !self.at(int_end).is_some_and(is_name_letter) {
                return Some((int_end, NumKind::Integer));
            }
            if int_end - p >= 2 {
                return Some((int_end - 1, NumKind::Integer));
            }
        }
        None
    }

    /// End of a dotted identifier chain such as `metrics."a b".c` starting at `start`.
    ///
    /// Parts are bare words, backtick- or double-quoted names, and (after a dot only)
    /// single-quoted strings, matching what sqlparse groups into one `Identifier`. Whitespace is
    /// not allowed around the dots (MLflow would keep it inside the entity or key).
    fn ident_chain_end(&self, start: usize) -> Result<usize, ChainError> {
        let mut end = self.ident_part_end(start, true)?;
        while self.at(end) == Some('.') {
            end = self.ident_part_end(end + 1, false)?;
        }
        Ok(end)
    }

    fn ident_part_end(&self, p: usize, first: bool) -> Result<usize, ChainError> {
        match self.at(p) {
            Some('`' | '"') => self.quoted_end(p).ok_or(ChainError::Unterminated(p)),
            Some('\'') if !first => self.quoted_end(p).ok_or(ChainError::Unterminated(p)),
            Some(c) if is_word_char(c) => Ok(self.word_end(p)),
            _ => Err(ChainError::MissingKey(p)),
        }
    }

    /// End of the parenthesised group opening at `start`, skipping quoted strings.
    fn paren_end(&self, start: usize) -> Option<usize> {
        let b = self.text.as_bytes();
        let mut depth = 0usize;
        let mut i = start;
        while i < b.len() {
            match b[i] {
                b'(' => depth += 1,
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(i + 1);
                    }
                }
                b'\'' | b'"' | b'`' => {
                    if let Some(end) = self.quoted_end(i) {
                        i = end;
                        continue;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        None
    }

    /// A short rendering of the token at `p`, for error messages.
    fn describe(&self, p: usize) -> &'a str {
        let Some(c) = self.at(p) else { return "" };
        let end = if is_word_char(c) {
            self.word_end(p)
        } else if matches!(c, '\'' | '"' | '`') {
            self.quoted_end(p).unwrap_or(p + 1)
        } else {
            p + c.len_utf8()
        };
        &self.text[p..end]
    }
}

fn invalid_clause(position: usize, detail: impl fmt::Display) -> ParseError {
    ParseError::new(
        position,
        format!("Invalid clause(s) in filter string: {detail}"),
    )
}

fn chain_error(src: &Src<'_>, e: ChainError) -> ParseError {
    match e {
        ChainError::Unterminated(p) => invalid_clause(
            p,
            format_args!(
                "unterminated quoted name starting with {}",
                src.at(p).unwrap_or('"')
            ),
        ),
        ChainError::MissingKey(p) => invalid_clause(p, "expected a key after '.'"),
    }
}

// ------------------------------------------------------------------------------------------------
// Pass 1: structure (what sqlparse grouping + MLflow's "invalid clause" check accept)
// ------------------------------------------------------------------------------------------------

/// A comparison as written, before MLflow's semantic checks.
struct RawComparison<'a> {
    start: usize,
    ident: &'a str,
    /// Upper-cased comparator with single spaces (`NOT IN`), or the raw operator run (`==`).
    op: String,
    op_pos: usize,
    /// `None` for `IS [NOT] NULL`.
    value: Option<RawValue<'a>>,
}

struct RawValue<'a> {
    pos: usize,
    raw: &'a str,
    kind: RawKind<'a>,
}

enum RawKind<'a> {
    /// A single- or double-quoted string; the text between the quotes.
    Quoted(&'a str),
    /// An unquoted or backtick-quoted name, which MLflow rejects as an unquoted string value.
    Bare,
    /// An integer or float literal.
    Number(f64),
    /// A literal that is neither a string nor a number MLflow accepts (hexadecimal).
    OtherLiteral,
    /// A parenthesised list; the text between the parentheses.
    List(&'a str),
}

const RESERVED_WORDS: &[&str] = &[
    "AND", "OR", "NOT", "IN", "IS", "NULL", "LIKE", "ILIKE", "RLIKE",
];

fn is_reserved(word: &str) -> bool {
    RESERVED_WORDS.iter().any(|r| r.eq_ignore_ascii_case(word))
}

/// sqlparse splits the input into statements at `;` (outside quotes) and MLflow rejects more
/// than one statement before anything else is checked.
fn check_single_statement(src: &Src<'_>) -> Result<(), ParseError> {
    let b = src.text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' | b'`' => i = src.quoted_end(i).unwrap_or(i + 1),
            b';' => {
                if src.text[i + 1..].trim().is_empty() {
                    // A lone trailing `;` stays in the single statement; pass 1 reports it.
                    return Ok(());
                }
                return Err(ParseError::new(
                    i,
                    format!(
                        "Search filter contained multiple expression '{}'. \
                         Provide AND-ed expression list.",
                        src.text
                    ),
                ));
            }
            _ => i += 1,
        }
    }
    Ok(())
}

fn scan_filter<'a>(src: &Src<'a>) -> Result<Vec<RawComparison<'a>>, ParseError> {
    let mut out = Vec::new();
    let mut p = src.skip_ws(0);
    loop {
        let (raw, end) = scan_comparison(src, p)?;
        out.push(raw);
        p = src.skip_ws(end);
        if p >= src.len() {
            return Ok(out);
        }
        let word = &src.text[p..src.word_end(p)];
        if word.eq_ignore_ascii_case("and") {
            let and_pos = p;
            p = src.skip_ws(p + word.len());
            if p >= src.len() {
                return Err(invalid_clause(
                    and_pos,
                    "'AND' must be followed by a comparison",
                ));
            }
        } else if word.eq_ignore_ascii_case("or") {
            return Err(invalid_clause(
                p,
                "'OR'. Only comparisons joined with AND are supported",
            ));
        } else {
            return Err(invalid_clause(
                p,
                format_args!(
                    "'{}'. Expected AND or the end of the filter",
                    src.describe(p)
                ),
            ));
        }
    }
}

fn scan_comparison<'a>(
    src: &Src<'a>,
    start: usize,
) -> Result<(RawComparison<'a>, usize), ParseError> {
    let ident_end = scan_filter_identifier(src, start)?;
    let ident = &src.text[start..ident_end];
    let after = src.skip_ws(ident_end);
    if after > ident_end && src.at(after) == Some('.') {
        return Err(invalid_clause(
            after,
            "whitespace is not allowed around '.' in an identifier",
        ));
    }
    let (op, op_pos, op_end) = scan_comparator(src, after, ident)?;
    if op == "IS NULL" || op == "IS NOT NULL" {
        let raw = RawComparison {
            start,
            ident,
            op,
            op_pos,
            value: None,
        };
        return Ok((raw, op_end));
    }
    let value_pos = src.skip_ws(op_end);
    let (value, value_end) = scan_value(src, value_pos, &op)?;
    let raw = RawComparison {
        start,
        ident,
        op,
        op_pos,
        value: Some(value),
    };
    Ok((raw, value_end))
}

fn scan_filter_identifier(src: &Src<'_>, start: usize) -> Result<usize, ParseError> {
    let Some(c) = src.at(start) else {
        return Err(invalid_clause(start, "expected a comparison"));
    };
    // MLflow's `_validate_comparison` wording when a literal stands where the identifier goes.
    let not_identifier = |end: usize| {
        ParseError::new(
            start,
            format!(
                "Invalid comparison clause. Expected 'Identifier' found '{}'",
                &src.text[start..end]
            ),
        )
    };
    if c == '\'' {
        let end = src
            .quoted_end(start)
            .ok_or_else(|| invalid_clause(start, "unterminated quoted string starting with '"))?;
        return Err(not_identifier(end));
    }
    if (c.is_ascii_digit() || c == '.' || c == '-')
        && let Some((end, _)) = src.number_at(start)
    {
        return Err(not_identifier(end));
    }
    if c == '(' {
        return Err(invalid_clause(
            start,
            "'('. Parenthesized expressions are not supported",
        ));
    }
    if !(c == '`' || c == '"' || is_word_char(c)) {
        return Err(invalid_clause(
            start,
            format_args!("'{}'", src.describe(start)),
        ));
    }
    let end = src
        .ident_chain_end(start)
        .map_err(|e| chain_error(src, e))?;
    let ident = &src.text[start..end];
    if is_reserved(ident) {
        return Err(invalid_clause(start, format_args!("'{ident}'")));
    }
    Ok(end)
}

/// Scans a comparator: an operator run such as `>=` (sqlparse lexes `[<>=~!]+` as one token, so
/// `==` or `<>` arrive here whole and are rejected later), `[NOT] LIKE|ILIKE|RLIKE`, `[NOT] IN`,
/// or `IS [NOT] NULL`, keywords in any case.
fn scan_comparator(
    src: &Src<'_>,
    p: usize,
    ident: &str,
) -> Result<(String, usize, usize), ParseError> {
    const OP_CHARS: &str = "<>=~!";
    let Some(c) = src.at(p) else {
        return Err(invalid_clause(
            p,
            format_args!("'{ident}' must be followed by a comparison operator"),
        ));
    };
    if OP_CHARS.contains(c) {
        let mut end = p;
        while src.at(end).is_some_and(|c| OP_CHARS.contains(c)) {
            end += 1;
        }
        return Ok((src.text[p..end].to_string(), p, end));
    }
    let word_end = src.word_end(p);
    let word = src.text[p..word_end].to_ascii_uppercase();
    let next_word = |from: usize| {
        let q = src.skip_ws(from);
        let e = src.word_end(q);
        (q, e, src.text[q..e].to_ascii_uppercase())
    };
    match word.as_str() {
        "LIKE" | "ILIKE" | "RLIKE" | "IN" => Ok((word, p, word_end)),
        "NOT" => {
            let (q, e, w2) = next_word(word_end);
            match w2.as_str() {
                "LIKE" | "ILIKE" | "RLIKE" | "IN" => Ok((format!("NOT {w2}"), p, e)),
                _ => Err(invalid_clause(q, "expected LIKE, ILIKE or IN after 'NOT'")),
            }
        }
        "IS" => {
            let (q, e, w2) = next_word(word_end);
            match w2.as_str() {
                "NULL" => Ok(("IS NULL".to_string(), p, e)),
                "NOT" => {
                    let (r, e2, w3) = next_word(e);
                    if w3 == "NULL" {
                        Ok(("IS NOT NULL".to_string(), p, e2))
                    } else {
                        Err(invalid_clause(r, "expected NULL after 'IS NOT'"))
                    }
                }
                _ => Err(invalid_clause(q, "expected NULL or NOT NULL after 'IS'")),
            }
        }
        _ => Err(invalid_clause(
            p,
            format_args!(
                "expected a comparison operator after '{ident}', found '{}'",
                src.describe(p)
            ),
        )),
    }
}

fn scan_value<'a>(src: &Src<'a>, p: usize, op: &str) -> Result<(RawValue<'a>, usize), ParseError> {
    let missing = || invalid_clause(p, format_args!("missing value after '{op}'"));
    let Some(c) = src.at(p) else {
        return Err(missing());
    };
    if (op == "IN" || op == "NOT IN") && c != '(' {
        // sqlparse only joins `identifier IN (...)`; anything else is an invalid clause.
        return Err(invalid_clause(
            p,
            format_args!("'{op}' must be followed by a parenthesized list such as ('a', 'b')"),
        ));
    }
    let value = |end: usize, kind: RawKind<'a>| {
        Ok((
            RawValue {
                pos: p,
                raw: &src.text[p..end],
                kind,
            },
            end,
        ))
    };
    match c {
        '\'' => {
            let end = src
                .quoted_end(p)
                .ok_or_else(|| invalid_clause(p, "unterminated quoted string starting with '"))?;
            value(end, RawKind::Quoted(&src.text[p + 1..end - 1]))
        }
        '(' => {
            let end = src
                .paren_end(p)
                .ok_or_else(|| invalid_clause(p, "unterminated '('"))?;
            value(end, RawKind::List(&src.text[p + 1..end - 1]))
        }
        _ if c.is_ascii_digit() || c == '.' || c == '-' => match src.number_at(p) {
            Some((end, NumKind::Hex)) => value(end, RawKind::OtherLiteral),
            Some((end, _)) => {
                let number: f64 = src.text[p..end]
                    .parse()
                    .map_err(|_| invalid_clause(p, "malformed number"))?;
                value(end, RawKind::Number(number))
            }
            // sqlparse's generic name rule also starts with a digit (`1abc`).
            None if c.is_ascii_digit() => scan_bare_value(src, p, op),
            None => Err(invalid_clause(
                p,
                format_args!("expected a value after '{op}', found '{}'", src.describe(p)),
            )),
        },
        _ if c == '"' || c == '`' || is_word_char(c) => scan_bare_value(src, p, op),
        _ => Err(invalid_clause(
            p,
            format_args!("expected a value after '{op}', found '{}'", src.describe(p)),
        )),
    }
}

/// A name chain in value position. A lone double-quoted part is a string value (sqlparse makes
/// it an `Identifier` and MLflow strips its quotes); anything else is an unquoted name.
fn scan_bare_value<'a>(
    src: &Src<'a>,
    p: usize,
    op: &str,
) -> Result<(RawValue<'a>, usize), ParseError> {
    let end = src.ident_chain_end(p).map_err(|e| chain_error(src, e))?;
    let raw = &src.text[p..end];
    if raw.eq_ignore_ascii_case("and") || raw.eq_ignore_ascii_case("or") {
        return Err(invalid_clause(
            p,
            format_args!("missing value after '{op}'"),
        ));
    }
    let kind = if src.at(p) == Some('"') && src.quoted_end(p) == Some(end) {
        RawKind::Quoted(&src.text[p + 1..end - 1])
    } else {
        RawKind::Bare
    };
    Ok((RawValue { pos: p, raw, kind }, end))
}

// ------------------------------------------------------------------------------------------------
// Pass 2: MLflow's identifier, value and comparator rules
// ------------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Purpose {
    Filter,
    OrderBy,
}

struct Target {
    entity: Entity,
    key: String,
    key_pos: usize,
}

/// MLflow's `_get_identifier` family: split the raw identifier at its *first* dot (even one
/// inside quotes, as MLflow does with `identifier.split(".", 1)`), map the entity, unquote the
/// key and check attribute and dataset keys.
fn resolve_identifier(
    dialect: Dialect,
    ident: &str,
    start: usize,
    purpose: Purpose,
) -> Result<Target, ParseError> {
    let valid_keys = match purpose {
        Purpose::Filter => dialect.search_keys(),
        Purpose::OrderBy => dialect.order_keys(),
    };
    let (entity_raw, key_raw, key_pos) = match ident.find('.') {
        None => (None, ident, start),
        Some(i) => (Some(&ident[..i]), &ident[i + 1..], start + i + 1),
    };
    let entity = match (entity_raw, dialect) {
        (None, _) => Entity::Attribute,
        (Some(raw), Dialect::Runs) => {
            // `_valid_entity_type` trims backticks, so `` `metrics`.a `` is accepted.
            let name = trim_backticks(raw);
            run_entity(name).ok_or_else(|| {
                ParseError::new(
                    start,
                    format!("Invalid entity type '{name}'. Valid values are {RUN_ENTITY_TYPES}"),
                )
            })?
        }
        // The other endpoints compare the entity literally against this tuple.
        (Some("attribute"), _) => Entity::Attribute,
        (Some("tag" | "tags"), _) => Entity::Tag,
        (Some(raw), _) => {
            return Err(ParseError::new(
                start,
                format!(
                    "Invalid entity type '{raw}'. Valid entity types are {REGISTRY_ENTITY_TYPES}"
                ),
            ));
        }
    };
    let key = trim_backticks(strip_quotes(key_raw));
    match entity {
        Entity::Attribute => {
            // The registry filters (`_get_model_search_identifier`,
            // `_get_model_version_search_identifier`) check the key before unquoting it.
            let checked = match (purpose, dialect) {
                (Purpose::Filter, Dialect::RegisteredModels | Dialect::ModelVersions) => key_raw,
                _ => key,
            };
            if !valid_keys.contains(&checked) {
                return Err(ParseError::new(
                    key_pos,
                    format!(
                        "Invalid attribute key '{checked}' specified. Valid keys are '{}'",
                        py_set(valid_keys)
                    ),
                ));
            }
        }
        Entity::Dataset if !DATASET_KEYS.contains(&key) => {
            return Err(ParseError::new(
                key_pos,
                format!(
                    "Invalid dataset key '{key}' specified. Valid keys are '{}'",
                    py_set(DATASET_KEYS)
                ),
            ));
        }
        _ => {}
    }
    Ok(Target {
        entity,
        key: key.to_string(),
        key_pos,
    })
}

fn resolve_comparison(dialect: Dialect, raw: &RawComparison<'_>) -> Result<Comparison, ParseError> {
    let target = resolve_identifier(dialect, raw.ident, raw.start, Purpose::Filter)?;
    let numeric =
        target.entity == Entity::Attribute && dialect.numeric_keys().contains(&target.key.as_str());

    let Some(raw_value) = &raw.value else {
        // `IS [NOT] NULL`: MLflow checks the entity right after the identifier.
        let only_for = match (dialect, target.entity) {
            (Dialect::Runs, Entity::Tag | Entity::Param) => None,
            (Dialect::Runs, _) => Some("tags and params"),
            (Dialect::Experiments, Entity::Tag) => None,
            (Dialect::Experiments, _) => Some("tags"),
            _ => None,
        };
        if let Some(only_for) = only_for {
            return Err(ParseError::new(
                raw.op_pos,
                format!(
                    "IS NULL / IS NOT NULL is only supported for {only_for}, not for {} '{}'",
                    entity_name(target.entity),
                    target.key
                ),
            ));
        }
        let op = check_comparator(dialect, target.entity, numeric, &raw.op, raw.op_pos)?;
        return Ok(Comparison {
            entity: target.entity,
            key: target.key,
            op,
            value: Value::String(String::new()),
            position: raw.start,
        });
    };

    let value = check_value(dialect, &target, numeric, raw_value)?;
    let op = check_comparator(dialect, target.entity, numeric, &raw.op, raw.op_pos)?;
    let is_list = matches!(value, Value::List(_));
    if is_list != matches!(op, Op::In | Op::NotIn) {
        // MLflow would hand a list to `=` (or a scalar to IN) straight to SQLAlchemy; reject it
        // here instead of producing a meaningless query.
        return Err(ParseError::new(
            raw.op_pos,
            format!(
                "Invalid comparator '{}' for {}: lists can only be compared with IN or NOT IN",
                raw.op,
                if is_list {
                    "a list value"
                } else {
                    "a single value"
                }
            ),
        ));
    }
    Ok(Comparison {
        entity: target.entity,
        key: target.key,
        op,
        value,
        position: raw.start,
    })
}

fn entity_name(entity: Entity) -> &'static str {
    // MLflow's internal identifier names, which it uses in messages.
    match entity {
        Entity::Metric => "metric",
        Entity::Param => "parameter",
        Entity::Tag => "tag",
        Entity::Attribute => "attribute",
        Entity::Dataset => "dataset",
    }
}

/// MLflow's `_get_value` for the dialect: the value's token type must suit the entity.
fn check_value(
    dialect: Dialect,
    target: &Target,
    numeric: bool,
    v: &RawValue<'_>,
) -> Result<Value, ParseError> {
    let fail = |message: String| Err(ParseError::new(v.pos, message));
    let unquoted = || {
        fail(format!(
            "Parameter value is either not quoted or unidentified quote types used for string \
             value {}. Use either single or double quotes.",
            v.raw
        ))
    };
    let run_id_only = || {
        fail(
            "Only the 'run_id' attribute supports comparison with a list of quoted string values."
                .to_string(),
        )
    };
    let key = target.key.as_str();
    match target.entity {
        Entity::Metric => match v.kind {
            RawKind::Number(n) => Ok(Value::Number(n)),
            _ => fail(format!(
                "Expected numeric value type for metric. Found {}",
                v.raw
            )),
        },
        Entity::Param | Entity::Tag => match v.kind {
            RawKind::Quoted(s) => Ok(Value::String(s.to_string())),
            RawKind::Bare => unquoted(),
            _ => fail(format!(
                "Expected a quoted string value for {} (e.g. 'my-value'). Got value {}",
                entity_name(target.entity),
                v.raw
            )),
        },
        Entity::Dataset => match v.kind {
            RawKind::Quoted(s) => Ok(Value::String(s.to_string())),
            RawKind::Bare => unquoted(),
            RawKind::List(inner) => parse_list(v, inner),
            _ => fail(format!(
                "Expected a quoted string value for dataset attributes. Got value {}",
                v.raw
            )),
        },
        Entity::Attribute => match dialect {
            // `SearchUtils._get_value`, shared by runs and experiments.
            Dialect::Runs | Dialect::Experiments => {
                if numeric {
                    return match v.kind {
                        RawKind::Number(n) => Ok(Value::Number(n)),
                        _ => fail(format!(
                            "Expected numeric value type for numeric attribute: {key}. Found {}",
                            v.raw
                        )),
                    };
                }
                match v.kind {
                    RawKind::Quoted(s) => Ok(Value::String(s.to_string())),
                    RawKind::Bare => unquoted(),
                    RawKind::List(_) if key != "run_id" => run_id_only(),
                    RawKind::List(inner) => parse_list(v, inner),
                    _ => fail(format!(
                        "Expected a quoted string value for attributes. Got value {}",
                        v.raw
                    )),
                }
            }
            // `SearchModelUtils._get_value` / `SearchModelVersionUtils._get_value`: strings are
            // accepted for every key (even `version_number = '3'`), numbers only for numeric keys.
            Dialect::RegisteredModels | Dialect::ModelVersions => match v.kind {
                RawKind::Quoted(s) => Ok(Value::String(s.to_string())),
                RawKind::Bare => unquoted(),
                RawKind::List(_) if key != "run_id" => run_id_only(),
                RawKind::List(inner) => parse_list(v, inner),
                RawKind::Number(n) if dialect == Dialect::ModelVersions => {
                    if numeric {
                        Ok(Value::Number(n))
                    } else {
                        fail(format!(
                            "Only the '{}' attributes support comparison with numeric values.",
                            py_set(MODEL_VERSION_NUMERIC_KEYS)
                        ))
                    }
                }
                _ => fail(format!(
                    "Expected a quoted string value or a list of quoted string values for \
                     attributes. Got value {}",
                    v.raw
                )),
            },
        },
    }
}

/// The comparators each endpoint accepts, from `SearchUtils.is_*` and the SQL stores.
fn check_comparator(
    dialect: Dialect,
    entity: Entity,
    numeric: bool,
    op: &str,
    pos: usize,
) -> Result<Op, ParseError> {
    let allowed: &[&str] = match (dialect, entity) {
        (_, Entity::Metric) => NUMERIC_COMPARATORS,
        (_, Entity::Attribute) if numeric => NUMERIC_COMPARATORS,
        (Dialect::Runs, Entity::Param | Entity::Tag) => NULLABLE_STRING_COMPARATORS,
        (Dialect::Runs, Entity::Attribute | Entity::Dataset) => LIST_STRING_COMPARATORS,
        (Dialect::Experiments, Entity::Tag) => NULLABLE_STRING_COMPARATORS,
        (Dialect::ModelVersions, Entity::Attribute) => MODEL_VERSION_STRING_COMPARATORS,
        _ => STRING_COMPARATORS,
    };
    match Op::from_canonical(op) {
        Some(parsed) if allowed.contains(&op) => Ok(parsed),
        _ => Err(ParseError::new(
            pos,
            format!("Invalid comparator '{op}' not one of '{}'", py_set(allowed)),
        )),
    }
}

// ------------------------------------------------------------------------------------------------
// IN lists: MLflow evaluates them with Python's `ast.literal_eval`
// ------------------------------------------------------------------------------------------------

enum ListError {
    Empty,
    IllFormed,
    NotAllStrings,
}

/// `_parse_list_from_sql_token` + `_check_valid_identifier_list` + `_parse_run_ids`.
fn parse_list(v: &RawValue<'_>, inner: &str) -> Result<Value, ParseError> {
    match parse_python_string_tuple(inner) {
        Ok(items) => Ok(Value::List(
            items.into_iter().filter(|s| python_islower(s)).collect(),
        )),
        Err(ListError::Empty) => Err(ParseError::new(
            v.pos,
            "While parsing a list in the query, expected a non-empty list of string values, \
             but got empty list",
        )),
        Err(ListError::IllFormed) => Err(ParseError::new(
            v.pos,
            "While parsing a list in the query, expected a non-empty list of string values, \
             but got ill-formed list.",
        )),
        Err(ListError::NotAllStrings) => Err(ParseError::new(
            v.pos,
            format!(
                "While parsing a list in the query, expected string value, punctuation, or \
                 whitespace, but got different type in list: {}",
                v.raw
            ),
        )),
    }
}

/// Python `str.islower()`: no upper- or titlecase character and at least one lowercase one.
fn python_islower(s: &str) -> bool {
    let mut cased = false;
    for c in s.chars() {
        if c.is_uppercase() || is_titlecase(c) {
            return false;
        }
        if c.is_lowercase() {
            cased = true;
        }
    }
    cased
}

fn is_titlecase(c: char) -> bool {
    // The Unicode general category Lt, which Python also treats as "not lower case".
    matches!(
        c,
        '\u{01C5}'
            | '\u{01C8}'
            | '\u{01CB}'
            | '\u{01F2}'
            | '\u{1F88}'..='\u{1F8F}'
            | '\u{1F98}'..='\u{1F9F}'
            | '\u{1FA8}'..='\u{1FAF}'
            | '\u{1FBC}'
            | '\u{1FCC}'
            | '\u{1FFC}'
    )
}

/// Evaluates the inside of `( ... )` like `ast.literal_eval`, for the subset that can yield
/// strings: comma-separated string literals (adjacent literals concatenate, a trailing comma is
/// allowed, `('a')` is one string), with Python's prefixes and escapes.
fn parse_python_string_tuple(src: &str) -> Result<Vec<String>, ListError> {
    let s = Src::new(src);
    let mut items = Vec::new();
    let mut all_strings = true;
    let mut p = s.skip_ws(0);
    if p >= src.len() {
        return Err(ListError::Empty);
    }
    loop {
        let (item, end) = parse_python_item(src, p)?;
        match item {
            Some(text) => items.push(text),
            None => all_strings = false,
        }
        p = s.skip_ws(end);
        if p >= src.len() {
            break;
        }
        if src.as_bytes()[p] != b',' {
            return Err(ListError::IllFormed);
        }
        p = s.skip_ws(p + 1);
        if p >= src.len() {
            break;
        }
    }
    if all_strings {
        Ok(items)
    } else {
        Err(ListError::NotAllStrings)
    }
}

/// One tuple element: `Some(text)` for a `str`, `None` for another literal (bytes, numbers,
/// `True`, nested containers, ...), which MLflow rejects as "different type".
fn parse_python_item(src: &str, p: usize) -> Result<(Option<String>, usize), ListError> {
    let s = Src::new(src);
    if python_string_start(src, p).is_some() {
        let mut text = String::new();
        let mut kind_bytes = None;
        let mut q = p;
        loop {
            let (part, is_bytes, end) = parse_python_string(src, q)?;
            if kind_bytes.is_some_and(|b| b != is_bytes) {
                return Err(ListError::IllFormed);
            }
            kind_bytes = Some(is_bytes);
            text.push_str(&part);
            let next = s.skip_ws(end);
            if python_string_start(src, next).is_some() {
                q = next;
            } else {
                return Ok(((!is_bytes).then_some(text), end));
            }
        }
    }
    // Not a string: find the end of the element and see whether Python would accept it at all.
    let b = src.as_bytes();
    let mut depth = 0usize;
    let mut i = p;
    while i < b.len() {
        match b[i] {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            b',' if depth == 0 => break,
            b'\'' | b'"' => {
                if let Ok((_, _, end)) = parse_python_string(src, i) {
                    i = end;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    let element = src[p..i].trim();
    if is_python_non_string_literal(element) {
        Ok((None, i))
    } else {
        Err(ListError::IllFormed)
    }
}

fn is_python_non_string_literal(element: &str) -> bool {
    if matches!(element, "True" | "False" | "None") {
        return true;
    }
    if element.starts_with(['(', '[', '{']) {
        return true;
    }
    let unsigned = element.trim_start_matches(['+', '-']).replace('_', "");
    let body = unsigned.strip_suffix(['j', 'J']).unwrap_or(&unsigned);
    if body.parse::<f64>().is_ok() && !body.contains(['i', 'I', 'n', 'N']) {
        return true;
    }
    let lower = body.to_ascii_lowercase();
    [("0x", 16), ("0o", 8), ("0b", 2)]
        .iter()
        .any(|(prefix, radix)| {
            lower
                .strip_prefix(prefix)
                .is_some_and(|digits| u128::from_str_radix(digits, *radix).is_ok())
        })
}

/// If a Python string literal (with an optional `r`/`u`/`b`/`f` prefix) starts at `p`, the
/// position of its opening quote.
fn python_string_start(src: &str, p: usize) -> Option<usize> {
    let b = src.as_bytes();
    let mut q = p;
    while q < b.len() && q - p < 2 && b[q].is_ascii_alphabetic() {
        q += 1;
    }
    if !matches!(b.get(q), Some(b'\'' | b'"')) {
        return None;
    }
    let prefix = src[p..q].to_ascii_lowercase();
    matches!(
        prefix.as_str(),
        "" | "r" | "u" | "b" | "f" | "br" | "rb" | "fr" | "rf"
    )
    .then_some(q)
}

/// Parses one Python string literal at `p`: `(text, is_bytes, end)`.
fn parse_python_string(src: &str, p: usize) -> Result<(String, bool, usize), ListError> {
    let quote_pos = python_string_start(src, p).ok_or(ListError::IllFormed)?;
    let prefix = src[p..quote_pos].to_ascii_lowercase();
    if prefix.contains('f') {
        // `literal_eval` refuses f-strings.
        return Err(ListError::IllFormed);
    }
    let raw = prefix.contains('r');
    let is_bytes = prefix.contains('b');
    let s = Src::new(src);
    let quote = src.as_bytes()[quote_pos] as char;
    let triple: String = std::iter::repeat_n(quote, 3).collect();
    let is_triple = src[quote_pos..].starts_with(&triple);
    let mut i = quote_pos + if is_triple { 3 } else { 1 };
    let mut out = String::new();
    loop {
        let Some(c) = s.at(i) else {
            return Err(ListError::IllFormed);
        };
        if is_triple && src[i..].starts_with(&triple) {
            return Ok((out, is_bytes, i + 3));
        }
        if !is_triple && c == quote {
            return Ok((out, is_bytes, i + 1));
        }
        if !is_triple && (c == '\n' || c == '\r') {
            return Err(ListError::IllFormed);
        }
        i += c.len_utf8();
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(e) = s.at(i) else {
            return Err(ListError::IllFormed);
        };
        i += e.len_utf8();
        if raw {
            out.push('\\');
            out.push(e);
            continue;
        }
        match e {
            '\n' => {}
            '\r' => {
                if s.at(i) == Some('\n') {
                    i += 1;
                }
            }
            '\\' | '\'' | '"' => out.push(e),
            'a' => out.push('\u{07}'),
            'b' => out.push('\u{08}'),
            'f' => out.push('\u{0C}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\u{0B}'),
            '0'..='7' => {
                let mut value = e.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match s.at(i).and_then(|d| d.to_digit(8)) {
                        Some(d) => {
                            value = value * 8 + d;
                            i += 1;
                        }
                        None => break,
                    }
                }
                out.push(char::from_u32(value).ok_or(ListError::IllFormed)?);
            }
            'x' | 'u' | 'U' => {
                if e != 'x' && is_bytes {
                    out.push('\\');
                    out.push(e);
                    continue;
                }
                let width = match e {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let digits = src.get(i..i + width).ok_or(ListError::IllFormed)?;
                if !digits.bytes().all(|d| d.is_ascii_hexdigit()) {
                    return Err(ListError::IllFormed);
                }
                let value = u32::from_str_radix(digits, 16).map_err(|_| ListError::IllFormed)?;
                out.push(char::from_u32(value).ok_or(ListError::IllFormed)?);
                i += width;
            }
            // `\N{NAME}` would need the Unicode name table.
            'N' if !is_bytes => return Err(ListError::IllFormed),
            other => {
                out.push('\\');
                out.push(other);
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Tests
// ------------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    use Dialect::{Experiments, ModelVersions, RegisteredModels, Runs};

    fn parse(d: Dialect, s: &str) -> Vec<Comparison> {
        parse_filter(d, s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    fn one(d: Dialect, s: &str) -> Comparison {
        let mut all = parse(d, s);
        assert_eq!(all.len(), 1, "{s:?}");
        all.remove(0)
    }

    fn cmp(entity: Entity, key: &str, op: Op, value: Value, position: usize) -> Comparison {
        Comparison {
            entity,
            key: key.to_string(),
            op,
            value,
            position,
        }
    }

    fn s(v: &str) -> Value {
        Value::String(v.to_string())
    }

    fn n(v: f64) -> Value {
        Value::Number(v)
    }

    fn list(items: &[&str]) -> Value {
        Value::List(items.iter().map(|i| i.to_string()).collect())
    }

    /// Asserts the error position and that the message starts with `prefix`.
    fn fails(d: Dialect, input: &str, position: usize, prefix: &str) -> ParseError {
        let err = parse_filter(d, input).expect_err(input);
        assert!(
            err.message.starts_with(prefix),
            "{input:?}: message {:?} does not start with {prefix:?}",
            err.message
        );
        assert_eq!(err.position, position, "{input:?}: {err}");
        err
    }

    fn order(d: Dialect, s: &str) -> OrderBy {
        parse_order_by(d, s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    fn order_fails(d: Dialect, input: &str, position: usize, prefix: &str) {
        let err = parse_order_by(d, input).expect_err(input);
        assert!(
            err.message.starts_with(prefix),
            "{input:?}: message {:?} does not start with {prefix:?}",
            err.message
        );
        assert_eq!(err.position, position, "{input:?}: {err}");
    }

    #[test]
    fn empty_and_whitespace_filters_mean_no_filter() {
        assert_eq!(parse(Runs, ""), vec![]);
        assert_eq!(parse(Runs, "   \t\n"), vec![]);
        assert_eq!(parse(Experiments, " "), vec![]);
    }

    #[test]
    fn metric_comparators() {
        for (text, op) in [
            ("=", Op::Eq),
            ("!=", Op::Ne),
            ("<", Op::Lt),
            ("<=", Op::Le),
            (">", Op::Gt),
            (">=", Op::Ge),
        ] {
            let input = format!("metrics.acc {text} 0.94");
            assert_eq!(
                one(Runs, &input),
                cmp(Entity::Metric, "acc", op, n(0.94), 0)
            );
        }
        // No whitespace at all, and the singular spelling.
        assert_eq!(
            one(Runs, "metric.acc>=100"),
            cmp(Entity::Metric, "acc", Op::Ge, n(100.0), 0)
        );
    }

    #[test]
    fn numbers_follow_sqlparse() {
        for (text, value) in [
            ("1e-3", 1e-3),
            ("-2", -2.0),
            (".5", 0.5),
            ("-.5", -0.5),
            ("5.", 5.0),
            ("1.5E3", 1500.0),
            ("-2.5e-2", -0.025),
            ("0", 0.0),
        ] {
            let input = format!("metrics.m = {text}");
            assert_eq!(one(Runs, &input).value, n(value), "{input}");
        }
        // sqlparse has no `+` in exponents or before numbers.
        fails(
            Runs,
            "metrics.m = 1e+3",
            14,
            "Invalid clause(s) in filter string",
        );
        fails(
            Runs,
            "metrics.m = +3",
            12,
            "Invalid clause(s) in filter string",
        );
        // A hexadecimal literal is not one of MLflow's numeric token types.
        fails(
            Runs,
            "metrics.m = 0x1F",
            12,
            "Expected numeric value type for metric. Found 0x1F",
        );
    }

    #[test]
    fn param_and_tag_comparators_and_quoting() {
        for (text, op) in [
            ("=", Op::Eq),
            ("!=", Op::Ne),
            ("LIKE", Op::Like),
            ("like", Op::Like),
            ("ILIKE", Op::ILike),
            ("iLike", Op::ILike),
        ] {
            let input = format!("params.model {text} 'LR%'");
            assert_eq!(
                one(Runs, &input),
                cmp(Entity::Param, "model", op, s("LR%"), 0)
            );
            let input = format!("tags.model {text} \"LR%\"");
            assert_eq!(
                one(Runs, &input),
                cmp(Entity::Tag, "model", op, s("LR%"), 0)
            );
        }
        for prefix in ["param", "params", "parameter", "parameters", "`params`"] {
            let input = format!("{prefix}.m = 'x'");
            assert_eq!(one(Runs, &input).entity, Entity::Param, "{input}");
        }
        assert_eq!(one(Runs, "tag.t = 'x'").entity, Entity::Tag);
        assert_eq!(one(Runs, "`metric`.a >= 0.1").entity, Entity::Metric);
    }

    #[test]
    fn is_null_for_tags_and_params() {
        assert_eq!(
            one(Runs, "tags.version IS NULL"),
            cmp(Entity::Tag, "version", Op::IsNull, s(""), 0)
        );
        assert_eq!(
            one(Runs, "params.lr is not   null"),
            cmp(Entity::Param, "lr", Op::IsNotNull, s(""), 0)
        );
        assert_eq!(
            one(Experiments, "tag.key1 IS NOT NULL"),
            cmp(Entity::Tag, "key1", Op::IsNotNull, s(""), 0)
        );
        assert_eq!(
            parse(Runs, "tags.a IS NULL AND params.b = 'val'"),
            vec![
                cmp(Entity::Tag, "a", Op::IsNull, s(""), 0),
                cmp(Entity::Param, "b", Op::Eq, s("val"), 19),
            ]
        );
    }

    #[test]
    fn string_escapes_are_kept_raw_like_mlflow() {
        // MLflow only trims the outer quotes of values.
        assert_eq!(one(Runs, "params.m = 'it''s'").value, s("it''s"));
        assert_eq!(one(Runs, r"params.m = 'a\'b'").value, s(r"a\'b"));
        assert_eq!(one(Runs, "params.m = \"L'Hosp\"").value, s("L'Hosp"));
        assert_eq!(one(Runs, "params.m = 'a \"b\" c'").value, s("a \"b\" c"));
        // The regex backtracks: a trailing backslash before the closing quote is a plain char.
        assert_eq!(one(Runs, r"params.p = 'C:\dir\'").value, s(r"C:\dir\"));
        assert_eq!(one(Runs, "params.m = ''").value, s(""));
    }

    #[test]
    fn keys_with_spaces_dots_and_quotes() {
        assert_eq!(
            one(Runs, "metrics.\"legit name\" >= 0.243"),
            cmp(Entity::Metric, "legit name", Op::Ge, n(0.243), 0)
        );
        assert_eq!(one(Runs, "metrics.`spacey name` > 5").key, "spacey name");
        assert_eq!(
            one(Runs, "metrics.\"accuracy.2.0\" > 5").key,
            "accuracy.2.0"
        );
        assert_eq!(one(Runs, "params.'p.a.r.a.m' != 'a'").key, "p.a.r.a.m");
        assert_eq!(one(Runs, "metrics.\"X//Y#$$@&Z\" = 3").key, "X//Y#$$@&Z");
        assert_eq!(
            one(Runs, "tags.\"mlflow.runName\" = 'x'"),
            cmp(Entity::Tag, "mlflow.runName", Op::Eq, s("x"), 0)
        );
        // MLflow splits at the first dot only, so later unquoted dots belong to the key.
        assert_eq!(one(Runs, "metrics.a.b > 1").key, "a.b");
        assert_eq!(one(Runs, "tags.`a``b` = 'x'").key, "a``b");
        assert_eq!(one(Runs, "tags.ключ = 'x'").key, "ключ");
    }

    #[test]
    fn run_attributes() {
        for prefix in ["attribute", "attributes", "attr", "run"] {
            let input = format!("{prefix}.status = 'RUNNING'");
            assert_eq!(
                one(Runs, &input),
                cmp(Entity::Attribute, "status", Op::Eq, s("RUNNING"), 0)
            );
        }
        // Bare identifiers are attributes; aliases are preserved for the SQL layer.
        assert_eq!(
            one(Runs, "run_name LIKE 'exp%'"),
            cmp(Entity::Attribute, "run_name", Op::Like, s("exp%"), 0)
        );
        assert_eq!(one(Runs, "`Run Name` = 'a'").key, "Run Name");
        assert_eq!(one(Runs, "\"run name\" = 'a'").key, "run name");
        for (text, op) in [
            ("=", Op::Eq),
            ("!=", Op::Ne),
            ("<", Op::Lt),
            ("<=", Op::Le),
            (">", Op::Gt),
            (">=", Op::Ge),
        ] {
            let input = format!("attributes.start_time {text} 1234");
            assert_eq!(
                one(Runs, &input),
                cmp(Entity::Attribute, "start_time", op, n(1234.0), 0)
            );
        }
        assert_eq!(one(Runs, "created > 5").key, "created");
        assert_eq!(one(Runs, "attr.end_time <= -1").value, n(-1.0));
        for (text, op) in [
            ("=", Op::Eq),
            ("!=", Op::Ne),
            ("LIKE", Op::Like),
            ("ILIKE", Op::ILike),
        ] {
            let input = format!("attributes.user_id {text} 'bob'");
            assert_eq!(
                one(Runs, &input),
                cmp(Entity::Attribute, "user_id", op, s("bob"), 0)
            );
        }
        assert_eq!(one(Runs, "artifact_uri = '1/23/4'").value, s("1/23/4"));
    }

    #[test]
    fn in_lists() {
        assert_eq!(
            one(Runs, "attributes.run_id IN ('abc', \"def\")"),
            cmp(
                Entity::Attribute,
                "run_id",
                Op::In,
                list(&["abc", "def"]),
                0
            )
        );
        assert_eq!(
            one(Runs, "run_id not in ('a1',)").op,
            Op::NotIn,
            "trailing comma and lower-case keywords"
        );
        assert_eq!(one(Runs, "run_id IN('a1')").value, list(&["a1"]));
        // Like MLflow's `_parse_run_ids`, entries that are not lower case are dropped...
        assert_eq!(
            one(Runs, "run_id IN ('ABC', 'abc', '123', 'a1')").value,
            list(&["abc", "a1"])
        );
        // ...and Python's literal rules apply (adjacent literals join, escapes decode).
        assert_eq!(
            one(Runs, r"run_id IN ('ab' 'cd', 'x\ty', 'it''s')").value,
            list(&["abcd", "x\ty", "its"])
        );
        for (text, op) in [("IN", Op::In), ("NOT IN", Op::NotIn)] {
            for key in ["name", "digest", "context"] {
                let input = format!("datasets.{key} {text} ('train', 'eval')");
                assert_eq!(
                    one(Runs, &input),
                    cmp(Entity::Dataset, key, op, list(&["train", "eval"]), 0)
                );
            }
        }
        assert_eq!(
            one(ModelVersions, "run_id IN ('r1', 'r2')"),
            cmp(Entity::Attribute, "run_id", Op::In, list(&["r1", "r2"]), 0)
        );
    }

    #[test]
    fn dataset_comparators() {
        for (text, op) in [
            ("=", Op::Eq),
            ("!=", Op::Ne),
            ("LIKE", Op::Like),
            ("ILIKE", Op::ILike),
        ] {
            let input = format!("dataset.name {text} 'my_dataset'");
            assert_eq!(
                one(Runs, &input),
                cmp(Entity::Dataset, "name", op, s("my_dataset"), 0)
            );
        }
    }

    #[test]
    fn conjunctions_whitespace_and_positions() {
        assert_eq!(
            parse(
                Runs,
                "metrics.rmse < 1 and params.model_class = 'LR' AND tags.t != 'x'"
            ),
            vec![
                cmp(Entity::Metric, "rmse", Op::Lt, n(1.0), 0),
                cmp(Entity::Param, "model_class", Op::Eq, s("LR"), 21),
                cmp(Entity::Tag, "t", Op::Ne, s("x"), 51),
            ]
        );
        assert_eq!(
            parse(Runs, "\n  metrics.a>1\tAnD\n\ttags.b='c'  "),
            vec![
                cmp(Entity::Metric, "a", Op::Gt, n(1.0), 3),
                cmp(Entity::Tag, "b", Op::Eq, s("c"), 20),
            ]
        );
        // sqlparse needs no whitespace between a string and AND.
        assert_eq!(parse(Runs, "tags.a='x'AND tags.b='y'").len(), 2);
    }

    #[test]
    fn experiments_dialect() {
        assert_eq!(
            one(Experiments, "name ILIKE 'exp%'"),
            cmp(Entity::Attribute, "name", Op::ILike, s("exp%"), 0)
        );
        assert_eq!(
            one(Experiments, "attribute.creation_time > 1700000000000"),
            cmp(Entity::Attribute, "creation_time", Op::Gt, n(1.7e12), 0)
        );
        assert_eq!(one(Experiments, "last_update_time <= 5").op, Op::Le);
        assert_eq!(
            parse(Experiments, "name LIKE 'a%' AND tags.team = 'ml'"),
            vec![
                cmp(Entity::Attribute, "name", Op::Like, s("a%"), 0),
                cmp(Entity::Tag, "team", Op::Eq, s("ml"), 19),
            ]
        );
        assert_eq!(one(Experiments, "tag.`a b` LIKE '%x'").key, "a b");
    }

    #[test]
    fn registry_dialects() {
        assert_eq!(
            one(RegisteredModels, "name = 'a_model_name'"),
            cmp(Entity::Attribute, "name", Op::Eq, s("a_model_name"), 0)
        );
        assert_eq!(
            parse(RegisteredModels, "name LIKE 'm%' and tag.key = 'value1'"),
            vec![
                cmp(Entity::Attribute, "name", Op::Like, s("m%"), 0),
                cmp(Entity::Tag, "key", Op::Eq, s("value1"), 19),
            ]
        );
        assert_eq!(
            one(RegisteredModels, "tags.`mlflow.prompt.is_prompt` != 'true'").key,
            "mlflow.prompt.is_prompt"
        );
        assert_eq!(
            one(ModelVersions, "version_number >= 3"),
            cmp(Entity::Attribute, "version_number", Op::Ge, n(3.0), 0)
        );
        // MLflow's model-version `_get_value` takes strings for every attribute.
        assert_eq!(one(ModelVersions, "version_number = '3'").value, s("3"));
        assert_eq!(
            one(ModelVersions, "source_path ILIKE 's3://%'").op,
            Op::ILike
        );
        assert_eq!(one(ModelVersions, "attribute.run_id = 'abc'").key, "run_id");
        assert_eq!(
            one(ModelVersions, "tags.stage LIKE 'prod%'").entity,
            Entity::Tag
        );
    }

    #[test]
    fn structural_errors() {
        fails(
            Runs,
            "metrics.A > 0.1 OR params.B = 'LR'",
            16,
            "Invalid clause(s) in filter string: 'OR'",
        );
        fails(
            Runs,
            "metrics.A > 0.1 NAND params.B = 'LR'",
            16,
            "Invalid clause(s) in filter string: 'NAND'",
        );
        fails(
            Runs,
            "metrics.A > 0.1 AND (params.B = 'LR')",
            20,
            "Invalid clause(s) in filter string: '('",
        );
        fails(
            Runs,
            "params.acc = 'LR",
            13,
            "Invalid clause(s) in filter string: unterminated quoted string",
        );
        fails(
            Runs,
            "params.acc = \"LR'",
            13,
            "Invalid clause(s) in filter string: unterminated quoted name",
        );
        fails(
            Runs,
            "`metrics.A > 0.1",
            0,
            "Invalid clause(s) in filter string: unterminated quoted name",
        );
        fails(
            Runs,
            "param`.A > 0.1",
            5,
            "Invalid clause(s) in filter string: expected a comparison operator after 'param'",
        );
        fails(
            Runs,
            "metric.acc !=",
            13,
            "Invalid clause(s) in filter string: missing value after '!='",
        );
        fails(
            Runs,
            "params.acc LR !=",
            11,
            "Invalid clause(s) in filter string: expected a comparison operator after \
             'params.acc', found 'LR'",
        );
        fails(
            Runs,
            "tags.acc = = 'LR'",
            11,
            "Invalid clause(s) in filter string: expected a value after '=', found '='",
        );
        fails(
            Runs,
            "attribute.status IS 'RUNNING'",
            20,
            "Invalid clause(s) in filter string: expected NULL or NOT NULL after 'IS'",
        );
        fails(
            Runs,
            "metrics.a > 1 metrics.b < 2",
            14,
            "Invalid clause(s) in filter string: 'metrics'. Expected AND",
        );
        fails(
            Runs,
            "metrics.a > 1 AND ",
            14,
            "Invalid clause(s) in filter string: 'AND' must be followed by a comparison",
        );
        fails(
            Runs,
            "metrics.a > 1 AND AND metrics.b > 2",
            18,
            "Invalid clause(s) in filter string: 'AND'",
        );
        fails(
            Runs,
            "metrics . acc > 1",
            8,
            "Invalid clause(s) in filter string: whitespace is not allowed around '.'",
        );
        fails(
            Runs,
            "metrics. acc > 1",
            8,
            "Invalid clause(s) in filter string: expected a key after '.'",
        );
        fails(
            Runs,
            "metric.acc >= 0.94; metrics.rmse < 1",
            18,
            "Search filter contained multiple expression",
        );
        fails(
            Runs,
            "metrics.a > 1;",
            13,
            "Invalid clause(s) in filter string: ';'",
        );
        fails(
            Runs,
            "1=1",
            0,
            "Invalid comparison clause. Expected 'Identifier' found '1'",
        );
        fails(
            Runs,
            "'x' = tags.a",
            0,
            "Invalid comparison clause. Expected 'Identifier' found ''x''",
        );
        fails(
            Runs,
            "run_id IN 'abc'",
            10,
            "Invalid clause(s) in filter string: 'IN' must be followed by a parenthesized list",
        );
        fails(
            Runs,
            "run_id IN ('a', 'b'",
            10,
            "Invalid clause(s) in filter string: unterminated '('",
        );
    }

    #[test]
    fn identifier_errors() {
        fails(
            Runs,
            "m.acc >= 0.94",
            0,
            "Invalid entity type 'm'. Valid values are ['metric', 'parameter', 'tag', \
             'attribute', 'dataset']",
        );
        fails(
            Runs,
            "\"metrics\".a > 1",
            0,
            "Invalid entity type '\"metrics\"'",
        );
        fails(Runs, "Metrics.a > 1", 0, "Invalid entity type 'Metrics'");
        fails(
            Runs,
            "acc >= 0.94",
            0,
            "Invalid attribute key 'acc' specified. Valid keys are '{'Created', 'Run Name', \
             'Run name', 'artifact_uri', 'created', 'end_time', 'run name', 'run_id', \
             'run_name', 'start_time', 'status', 'user_id'}'",
        );
        fails(
            Runs,
            "attribute.lifecycle_stage = 'ACTIVE'",
            10,
            "Invalid attribute key 'lifecycle_stage'",
        );
        fails(
            Runs,
            "attribute.experiment_id != 1",
            10,
            "Invalid attribute key 'experiment_id'",
        );
        fails(
            Runs,
            "dataset.profile = 'num_rows: 10'",
            8,
            "Invalid dataset key 'profile' specified. Valid keys are '{'context', 'digest', \
             'name'}'",
        );
        fails(Runs, "foo is null", 0, "Invalid attribute key 'foo'");
        fails(
            Experiments,
            "metrics.a > 1",
            0,
            "Invalid entity type 'metrics'. Valid entity types are ('attribute', 'tag', 'tags')",
        );
        fails(
            Experiments,
            "`tag`.a = 'x'",
            0,
            "Invalid entity type '`tag`'",
        );
        fails(
            Experiments,
            "experiment_id = '1'",
            0,
            "Invalid attribute key 'experiment_id' specified. Valid keys are \
             '{'creation_time', 'last_update_time', 'name'}'",
        );
        fails(
            RegisteredModels,
            "run_id = 'x'",
            0,
            "Invalid attribute key 'run_id' specified. Valid keys are '{'name'}'",
        );
        // The registry checks the key before unquoting it, as MLflow does.
        fails(
            RegisteredModels,
            "`name` = 'x'",
            0,
            "Invalid attribute key '`name`'",
        );
        fails(
            ModelVersions,
            "params.a = 'x'",
            0,
            "Invalid entity type 'params'",
        );
        fails(
            ModelVersions,
            "attribute.stage = 'x'",
            10,
            "Invalid attribute key 'stage'",
        );
    }

    #[test]
    fn value_errors() {
        fails(
            Runs,
            "metric.model = 'LR'",
            15,
            "Expected numeric value type for metric. Found 'LR'",
        );
        fails(
            Runs,
            "metrics.acc != metrics.acc",
            15,
            "Expected numeric value type for metric. Found metrics.acc",
        );
        fails(
            Runs,
            "params.acc = 5",
            13,
            "Expected a quoted string value for parameter (e.g. 'my-value'). Got value 5",
        );
        fails(
            Runs,
            "tags.acc = 5",
            11,
            "Expected a quoted string value for tag (e.g. 'my-value'). Got value 5",
        );
        fails(
            Runs,
            "params.acc = LR",
            13,
            "Parameter value is either not quoted or unidentified quote types used for string \
             value LR. Use either single or double quotes.",
        );
        fails(
            Runs,
            "params.acc = `LR`",
            13,
            "Parameter value is either not quoted",
        );
        fails(
            Runs,
            "attribute.status = 1",
            19,
            "Expected a quoted string value for attributes. Got value 1",
        );
        fails(
            Runs,
            "attributes.start_time = 'now'",
            24,
            "Expected numeric value type for numeric attribute: start_time. Found 'now'",
        );
        fails(
            Runs,
            "attributes.run_name IN ('foo','bar')",
            23,
            "Only the 'run_id' attribute supports comparison with a list of quoted string values.",
        );
        fails(
            Runs,
            "tags.a IN ('x')",
            10,
            "Expected a quoted string value for tag (e.g. 'my-value'). Got value ('x')",
        );
        fails(
            Runs,
            "datasets.name = 40",
            16,
            "Expected a quoted string value for dataset attributes. Got value 40",
        );
        fails(
            Runs,
            "run_id IN ()",
            10,
            "While parsing a list in the query, expected a non-empty list of string values, \
             but got empty list",
        );
        fails(
            Runs,
            "run_id IN ('a', 1)",
            10,
            "While parsing a list in the query, expected string value, punctuation, or \
             whitespace, but got different type in list: ('a', 1)",
        );
        fails(
            Runs,
            "run_id IN ('a' 'b' c)",
            10,
            "While parsing a list in the query, expected a non-empty list of string values, \
             but got ill-formed list.",
        );
        fails(
            Experiments,
            "creation_time > 'yesterday'",
            16,
            "Expected numeric value type for numeric attribute: creation_time",
        );
        fails(
            Experiments,
            "name IN ('a')",
            8,
            "Only the 'run_id' attribute supports comparison with a list",
        );
        fails(
            RegisteredModels,
            "name = 5",
            7,
            "Expected a quoted string value or a list of quoted string values for attributes. \
             Got value 5",
        );
        fails(
            ModelVersions,
            "name = 5",
            7,
            "Only the '{'creation_timestamp', 'last_updated_timestamp', 'version_number'}' \
             attributes support comparison with numeric values.",
        );
        fails(
            ModelVersions,
            "name IN ('a')",
            8,
            "Only the 'run_id' attribute supports comparison with a list",
        );
    }

    #[test]
    fn comparator_errors() {
        fails(
            Runs,
            "metrics.abc ~ 1.0",
            12,
            "Invalid comparator '~' not one of '{'!=', '<', '<=', '=', '>', '>='}'",
        );
        fails(Runs, "metrics.abc == 1", 12, "Invalid comparator '=='");
        fails(Runs, "metrics.abc <> 1", 12, "Invalid comparator '<>'");
        fails(Runs, "metrics.abc LIKE 1", 12, "Invalid comparator 'LIKE'");
        fails(
            Runs,
            "params.abc > 'x'",
            11,
            "Invalid comparator '>' not one of '{'!=', '=', 'ILIKE', 'IS NOT NULL', \
             'IS NULL', 'LIKE'}'",
        );
        fails(Runs, "tags.abc <= 'x'", 9, "Invalid comparator '<='");
        fails(
            Runs,
            "tags.abc NOT LIKE 'x'",
            9,
            "Invalid comparator 'NOT LIKE'",
        );
        fails(Runs, "tags.abc RLIKE 'x'", 9, "Invalid comparator 'RLIKE'");
        fails(
            Runs,
            "attributes.status >= 'x'",
            18,
            "Invalid comparator '>=' not one of '{'!=', '=', 'ILIKE', 'IN', 'LIKE', 'NOT IN'}'",
        );
        fails(
            Runs,
            "attributes.start_time LIKE 1234",
            22,
            "Invalid comparator 'LIKE'",
        );
        fails(Runs, "datasets.name > 'x'", 14, "Invalid comparator '>'");
        fails(
            Runs,
            "metrics.acc IS NULL",
            12,
            "IS NULL / IS NOT NULL is only supported for tags and params",
        );
        fails(
            Runs,
            "attribute.status IS NOT NULL",
            17,
            "IS NULL / IS NOT NULL is only supported for tags and params",
        );
        fails(
            Experiments,
            "name IS NULL",
            5,
            "IS NULL / IS NOT NULL is only supported for tags",
        );
        fails(
            RegisteredModels,
            "tags.a IS NULL",
            7,
            "Invalid comparator 'IS NULL' not one of '{'!=', '=', 'ILIKE', 'LIKE'}'",
        );
        fails(Experiments, "name > 'a'", 5, "Invalid comparator '>'");
        fails(
            Experiments,
            "creation_time LIKE 5",
            14,
            "Invalid comparator 'LIKE'",
        );
        fails(
            ModelVersions,
            "run_id NOT IN ('a')",
            7,
            "Invalid comparator 'NOT IN' not one of '{'!=', '=', 'ILIKE', 'IN', 'LIKE'}'",
        );
        fails(
            ModelVersions,
            "version_number LIKE '1%'",
            15,
            "Invalid comparator 'LIKE'",
        );
        fails(ModelVersions, "tags.a > 'x'", 7, "Invalid comparator '>'");
        // A list may only be compared with IN / NOT IN.
        fails(
            Runs,
            "run_id = ('abc')",
            7,
            "Invalid comparator '=' for a list value",
        );
    }

    #[test]
    fn errors_render_with_position() {
        let err = parse_filter(Runs, "metrics.a > 'x'").unwrap_err();
        assert_eq!(
            err.to_string(),
            "Expected numeric value type for metric. Found 'x' (at position 12)"
        );
        let boxed: Box<dyn std::error::Error> = Box::new(err);
        assert!(boxed.to_string().ends_with("(at position 12)"));
    }

    #[test]
    fn semantic_errors_come_after_structural_ones() {
        // MLflow rejects stray tokens anywhere before looking at the first comparison's key.
        fails(
            Runs,
            "acc > 1 AND metrics.a > 1 OR x = 'y'",
            26,
            "Invalid clause(s) in filter string: 'OR'",
        );
    }

    #[test]
    fn order_by_runs() {
        assert_eq!(
            order(Runs, "metrics.`Mean Square Error`"),
            OrderBy {
                entity: Entity::Metric,
                key: "Mean Square Error".into(),
                ascending: true
            }
        );
        assert!(order(Runs, "metrics.`Mean Square Error` ASC").ascending);
        assert!(!order(Runs, "metrics.`Mean Square Error` DESC").ascending);
        assert_eq!(
            order(Runs, "metrics.\"key1\"  desc"),
            OrderBy {
                entity: Entity::Metric,
                key: "key1".into(),
                ascending: false
            }
        );
        assert_eq!(
            order(Runs, "params.my_param aSc"),
            OrderBy {
                entity: Entity::Param,
                key: "my_param".into(),
                ascending: true
            }
        );
        assert_eq!(order(Runs, "tags.tag1    DESC").entity, Entity::Tag);
        assert_eq!(
            order(Runs, "attributes.start_time"),
            OrderBy {
                entity: Entity::Attribute,
                key: "start_time".into(),
                ascending: true
            }
        );
        assert_eq!(order(Runs, "created DESC").key, "created");
        assert_eq!(order(Runs, "run_name").key, "run_name");

        order_fails(Runs, "m.acc", 0, "Invalid entity type 'm'");
        order_fails(Runs, "acc", 0, "Invalid attribute key 'acc'");
        order_fails(
            Runs,
            "`metrics.A",
            0,
            "Invalid order_by clause '`metrics.A'. Could not",
        );
        order_fails(Runs, "`metrics.A`", 0, "Invalid entity type '`metrics'");
        order_fails(Runs, "attribute.experiment_id", 10, "Invalid attribute key");
        order_fails(
            Runs,
            "attributes.`run name`",
            11,
            "Invalid attribute key 'run name'",
        );
        order_fails(Runs, "metrics.A != 1", 10, "Invalid order_by clause");
        order_fails(Runs, "params.my_param ", 15, "Invalid order_by clause");
        order_fails(Runs, " params.my_param", 0, "Invalid order_by clause");
        order_fails(
            Runs,
            "",
            0,
            "Invalid order_by clause ''. Could not be parsed.",
        );
        order_fails(
            Runs,
            "attribute.run_id ACS",
            17,
            "Invalid ordering key in order_by clause 'attribute.run_id ACS'.",
        );
        order_fails(Runs, "attribute.run_id decs", 17, "Invalid ordering key");
        order_fails(Runs, "metrics.a DESC x", 14, "Invalid order_by clause");
        order_fails(
            Runs,
            "datasets.name",
            0,
            "Invalid identifier type 'dataset'",
        );
    }

    #[test]
    fn order_by_other_dialects() {
        assert_eq!(
            order(Experiments, "last_update_time DESC"),
            OrderBy {
                entity: Entity::Attribute,
                key: "last_update_time".into(),
                ascending: false
            }
        );
        assert_eq!(
            order(Experiments, "attribute.experiment_id").key,
            "experiment_id"
        );
        order_fails(Experiments, "tags.a", 0, "Invalid order_by entity: tag");
        order_fails(Experiments, "metrics.a", 0, "Invalid entity type 'metrics'");
        order_fails(Experiments, "lifecycle_stage", 0, "Invalid attribute key");

        assert_eq!(
            order(RegisteredModels, "name DESC"),
            OrderBy {
                entity: Entity::Attribute,
                key: "name".into(),
                ascending: false
            }
        );
        assert_eq!(order(RegisteredModels, "timestamp").key, "timestamp");
        assert_eq!(
            order(RegisteredModels, "last_updated_timestamp ASC").key,
            "last_updated_timestamp"
        );
        order_fails(
            RegisteredModels,
            "creation_timestamp DESC",
            0,
            "Invalid order by key 'creation_timestamp' specified. Valid keys are \
             '{'name', 'timestamp'}'",
        );
        order_fails(
            RegisteredModels,
            "attribute.name",
            0,
            "Invalid order by key 'attribute.name'",
        );
        order_fails(
            RegisteredModels,
            "last_updated_timestamp DESC blah",
            27,
            "Invalid order_by clause",
        );
        order_fails(
            RegisteredModels,
            "timestamp ACS",
            10,
            "Invalid order_by clause",
        );
        order_fails(RegisteredModels, "name aCs", 5, "Invalid ordering key");

        assert_eq!(
            order(ModelVersions, "version_number DESC"),
            OrderBy {
                entity: Entity::Attribute,
                key: "version_number".into(),
                ascending: false
            }
        );
        assert_eq!(
            order(ModelVersions, "creation_timestamp").key,
            "creation_timestamp"
        );
        order_fails(ModelVersions, "run_id", 0, "Invalid attribute key 'run_id'");
        order_fails(
            ModelVersions,
            "tags.a",
            5,
            "Invalid order by key 'a' specified.",
        );
    }

    #[test]
    fn python_list_literals() {
        assert_eq!(
            one(
                Runs,
                "run_id IN ('a', \"b\", u'c', r'd\\e', '\\x66\\u00e9', '''g''')"
            )
            .value,
            list(&["a", "b", "c", "d\\e", "f\u{e9}", "g"])
        );
        fails(
            Runs,
            "run_id IN (b'a')",
            10,
            "While parsing a list in the query, expected string value",
        );
        fails(
            Runs,
            "run_id IN ((\"a\",),)",
            10,
            "While parsing a list in the query, expected string value",
        );
        fails(
            Runs,
            "run_id IN (f'a')",
            10,
            "While parsing a list in the query, expected a non-empty list of string values, \
             but got ill-formed list.",
        );
        // Everything filtered out is still a (now empty) list.
        assert_eq!(one(Runs, "run_id IN ('ABC')").value, list(&[]));
        assert!(python_islower("abc1-ß"));
        assert!(!python_islower("123"));
        assert!(!python_islower("a\u{01C5}"));
    }
}
