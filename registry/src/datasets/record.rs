//! Records as sent (JSON objects keyed by column name, plus `machine_id` and `ts`), their
//! validation against a schema, and the canonical binary encoding they are stored and hashed in.
//!
//! Canonical encoding of a row's values, in schema order, one after another:
//! - missing: byte `0x00`
//! - number:  byte `0x01`, then the IEEE-754 f64 in little-endian order (8 bytes)
//! - text:    byte `0x02`, then the UTF-8 length as u32 little-endian, then the bytes
//!
//! Equal values always encode to equal bytes, so a digest over encodings identifies content.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::decimal;
use super::schema::{ColumnKind, ENTITY_KEY, Schema, TIME_KEY};

/// A value of one column.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// No value (JSON `null` or absent).
    Missing,
    /// A finite number.
    Number(f64),
    /// A category.
    Text(String),
}

/// One validated reading, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// The machine (entity key).
    pub machine_id: String,
    /// Event time, ms since the Unix epoch.
    pub ts: i64,
    /// Feature values in schema order.
    pub features: Vec<Value>,
    /// Label values in schema order, if the record carried any label.
    pub labels: Option<Vec<Value>>,
}

/// One reading of a [`Readings`] batch, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReadingRef<'a> {
    /// The machine (entity key).
    pub machine_id: &'a str,
    /// Event time, ms since the Unix epoch.
    pub ts: i64,
    /// Feature values in schema order.
    pub features: &'a [Value],
    /// Label values in schema order, if the record carried any label.
    pub labels: Option<&'a [Value]>,
}

impl ReadingRef<'_> {
    /// The reading as an owned value.
    pub fn to_owned(&self) -> Reading {
        Reading {
            machine_id: self.machine_id.to_string(),
            ts: self.ts,
            features: self.features.to_vec(),
            labels: self.labels.map(<[Value]>::to_vec),
        }
    }
}

impl Reading {
    /// The reading, borrowed as a batch's readings are.
    pub fn as_ref(&self) -> ReadingRef<'_> {
        ReadingRef {
            machine_id: &self.machine_id,
            ts: self.ts,
            features: &self.features,
            labels: self.labels.as_deref(),
        }
    }
}

/// A batch of validated readings, stored flat: the machine ids in one string and the values in
/// one vector, row after row. A batch takes a handful of allocations however many readings it
/// holds; two per reading (its id and its values) cost the stream more than parsing the numbers,
/// and as much again to free.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Readings {
    /// The machine ids, one after another.
    ids: String,
    /// Where each reading's machine id ends in `ids`.
    id_ends: Vec<usize>,
    ts: Vec<i64>,
    /// Features per reading.
    width: usize,
    /// `width` values per reading.
    features: Vec<Value>,
    /// Labels per reading.
    label_width: usize,
    /// `label_width` values per reading (missing ones for a reading without labels).
    labels: Vec<Value>,
    /// Whether each reading carried labels.
    labelled: Vec<bool>,
}

impl Readings {
    /// An empty batch of readings with `width` features and `label_width` labels each.
    pub fn new(width: usize, label_width: usize) -> Readings {
        Readings {
            width,
            label_width,
            ..Readings::default()
        }
    }

    fn with_capacity(width: usize, label_width: usize, n: usize) -> Readings {
        Readings {
            // Machine ids are mostly short; a longer one grows the string as usual.
            ids: String::with_capacity(n * 8),
            id_ends: Vec::with_capacity(n),
            ts: Vec::with_capacity(n),
            width,
            features: Vec::with_capacity(n * width),
            label_width,
            labels: Vec::with_capacity(n * label_width),
            labelled: Vec::with_capacity(n),
        }
    }

    /// How many readings there are.
    #[inline]
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    /// Whether there are none.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// Reading `i`.
    ///
    /// # Panics
    /// If `i` is out of bounds.
    #[inline]
    pub fn get(&self, i: usize) -> ReadingRef<'_> {
        let start = if i == 0 { 0 } else { self.id_ends[i - 1] };
        ReadingRef {
            machine_id: &self.ids[start..self.id_ends[i]],
            ts: self.ts[i],
            features: &self.features[i * self.width..(i + 1) * self.width],
            labels: self.labelled[i]
                .then(|| &self.labels[i * self.label_width..(i + 1) * self.label_width]),
        }
    }

    /// The readings in order.
    #[inline]
    pub fn iter(&self) -> impl ExactSizeIterator<Item = ReadingRef<'_>> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// The readings' event times, in order.
    pub fn times(&self) -> &[i64] {
        &self.ts
    }

    /// Whether any reading carried labels.
    pub fn any_labelled(&self) -> bool {
        self.labelled.contains(&true)
    }

    /// Appends a copy of `reading`, which has this batch's widths.
    pub fn push(&mut self, reading: ReadingRef<'_>) {
        assert_eq!(reading.features.len(), self.width, "features per reading");
        self.features.extend_from_slice(reading.features);
        match reading.labels {
            Some(labels) => {
                assert_eq!(labels.len(), self.label_width, "labels per reading");
                self.labels.extend_from_slice(labels);
            }
            None => self
                .labels
                .extend((0..self.label_width).map(|_| Value::Missing)),
        }
        self.labelled.push(reading.labels.is_some());
        self.push_key(reading.machine_id, reading.ts);
    }

    /// Ends a reading whose values were pushed: its key, last.
    fn push_key(&mut self, machine_id: &str, ts: i64) {
        self.ids.push_str(machine_id);
        self.id_ends.push(self.ids.len());
        self.ts.push(ts);
    }

    /// Moves `other`'s readings (of the same widths) to the end of these.
    fn append(&mut self, mut other: Readings) {
        let offset = self.ids.len();
        self.ids.push_str(&other.ids);
        self.id_ends
            .extend(other.id_ends.iter().map(|end| end + offset));
        self.ts.append(&mut other.ts);
        self.features.append(&mut other.features);
        self.labels.append(&mut other.labels);
        self.labelled.append(&mut other.labelled);
    }

    /// The readings at positions `keep` (in the order given), copied.
    pub fn select(&self, keep: impl Iterator<Item = usize>) -> Readings {
        let mut out = Readings::new(self.width, self.label_width);
        for i in keep {
            out.push(self.get(i));
        }
        out
    }
}

impl FromIterator<Reading> for Readings {
    /// Readings of equal widths (the first reading's features; the first labelled one's labels).
    fn from_iter<I: IntoIterator<Item = Reading>>(readings: I) -> Readings {
        let readings: Vec<Reading> = readings.into_iter().collect();
        let width = readings.first().map_or(0, |r| r.features.len());
        let label_width = readings
            .iter()
            .find_map(|r| r.labels.as_ref())
            .map_or(0, Vec::len);
        let mut out = Readings::new(width, label_width);
        for r in &readings {
            out.push(r.as_ref());
        }
        out
    }
}

/// Why a record was refused: which field, and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Rejection {
    /// Position of the record in the request (0-based; the line number minus one for NDJSON).
    pub index: usize,
    /// The offending field, when one is to blame.
    pub field: Option<String>,
    /// What was wrong.
    pub reason: String,
}

/// Parsed records: the raw text of each refused record (for its dead letter), the valid readings
/// with their positions in the request, and the refusals. The readings are `R`: owned while
/// parsing, shared ([`ParsedRecords::shared`]) once the batch is handed on.
#[derive(Debug, Default)]
pub struct ParsedRecords<R = Readings> {
    /// The raw text of each refused record, in the order of `rejected`.
    pub raws: Vec<String>,
    /// Each valid reading's position in the request.
    pub positions: Vec<usize>,
    /// The valid readings.
    pub readings: R,
    /// Why each refused record was refused.
    pub rejected: Vec<Rejection>,
}

impl ParsedRecords {
    /// The same records, with the readings behind an `Arc` to be shared.
    pub fn shared(self) -> ParsedRecords<Arc<Readings>> {
        ParsedRecords {
            raws: self.raws,
            positions: self.positions,
            readings: Arc::new(self.readings),
            rejected: self.rejected,
        }
    }

    /// Moves the records parsed from a later part of the same request after these.
    pub fn append(&mut self, other: ParsedRecords) {
        self.raws.extend(other.raws);
        self.positions.extend(other.positions);
        self.readings.append(other.readings);
        self.rejected.extend(other.rejected);
    }
}

/// Longest accepted `machine_id`.
pub const MAX_MACHINE_ID: usize = 256;
/// Longest accepted categorical value.
pub const MAX_TEXT: usize = 1024;

/// Which column a record field fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Machine,
    Time,
    Feature(usize),
    Label(usize),
}

/// Parses and validates records against one schema version.
pub struct RecordParser<'s> {
    schema: &'s Schema,
    slots: HashMap<&'s str, Slot>,
    /// Every field in the usual order (`machine_id`, `ts`, features, labels): senders mostly keep
    /// it, so the next field is checked first and the hash map is the fallback.
    order: Vec<(&'s str, Slot)>,
    /// Whether each of `order`'s names is [`is_plain`]: its quoted bytes can be compared whole.
    plain: Vec<bool>,
    /// Latest accepted event time, ms since the Unix epoch.
    max_ts: i64,
    /// Whether labels must be present (the labels endpoint) or are optional (readings).
    labels_only: bool,
    /// Whether records sent in the usual order can be read straight into readings (see
    /// [`RecordParser::scan_usual`]): readings of numeric columns whose names are all plain.
    usual: bool,
}

/// A JSON value of any type, classified while parsing so that a wrong type is reported per field
/// instead of failing the whole request. Strings borrow from the record's text where they can
/// (when they have no escapes to undo).
#[derive(Debug)]
enum Raw<'a> {
    Null,
    Bool,
    Number(f64),
    Integer(i64),
    Text(Cow<'a, str>),
    Nested,
}

impl<'de> Deserialize<'de> for Raw<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Raw<'de>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Raw<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E>(self) -> Result<Raw<'de>, E> {
                Ok(Raw::Null)
            }
            fn visit_none<E>(self) -> Result<Raw<'de>, E> {
                Ok(Raw::Null)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Raw<'de>, E> {
                Ok(Raw::Bool)
            }
            fn visit_i64<E>(self, v: i64) -> Result<Raw<'de>, E> {
                Ok(Raw::Integer(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Raw<'de>, E> {
                Ok(i64::try_from(v)
                    .map(Raw::Integer)
                    .unwrap_or(Raw::Number(v as f64)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Raw<'de>, E> {
                Ok(Raw::Number(v))
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Raw<'de>, E> {
                Ok(Raw::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Raw<'de>, E> {
                Ok(Raw::Text(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Raw<'de>, E> {
                Ok(Raw::Text(Cow::Owned(v)))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<Raw<'de>, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Raw::Nested)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Raw<'de>, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Raw::Nested)
            }
        }
        d.deserialize_any(V)
    }
}

/// The fields of one record, by slot, as parsed.
struct Fields<'a> {
    machine: Option<Raw<'a>>,
    time: Option<Raw<'a>>,
    features: Vec<Option<Raw<'a>>>,
    labels: Vec<Option<Raw<'a>>>,
    unknown: Option<String>,
    repeated: Option<String>,
}

impl<'a> Fields<'a> {
    fn new(schema: &Schema) -> Fields<'a> {
        Fields {
            machine: None,
            time: None,
            features: (0..schema.features.len()).map(|_| None).collect(),
            labels: (0..schema.labels.len()).map(|_| None).collect(),
            unknown: None,
            repeated: None,
        }
    }

    /// Empties every slot, keeping the allocations for the next record.
    fn clear(&mut self) {
        self.machine = None;
        self.time = None;
        self.features.iter_mut().for_each(|f| *f = None);
        self.labels.iter_mut().for_each(|l| *l = None);
        self.unknown = None;
        self.repeated = None;
    }

    /// Fills field `key`'s slot (noting a field sent twice), or notes `key` as unknown.
    fn put(&mut self, key: &str, slot: Option<Slot>, value: impl FnOnce() -> Raw<'a>) {
        let target = match slot {
            Some(Slot::Machine) => &mut self.machine,
            Some(Slot::Time) => &mut self.time,
            Some(Slot::Feature(i)) => &mut self.features[i],
            Some(Slot::Label(i)) => &mut self.labels[i],
            None => {
                self.unknown.get_or_insert_with(|| key.to_string());
                return;
            }
        };
        if target.replace(value()).is_some() {
            self.repeated.get_or_insert_with(|| key.to_string());
        }
    }
}

struct RecordSeed<'p, 's>(&'p RecordParser<'s>);

impl<'de> DeserializeSeed<'de> for RecordSeed<'_, '_> {
    type Value = Fields<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Fields<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_, '_> {
    type Value = Fields<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
        let mut fields = Fields::new(self.0.schema);
        let mut next = 0;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let slot = self.0.slot(&key, &mut next);
            // An unknown field's value is skipped, whatever it is.
            let value = match slot {
                Some(_) => map.next_value::<Raw>()?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                    Raw::Null
                }
            };
            fields.put(&key, slot, || value);
        }
        Ok(fields)
    }
}

impl<'s> RecordParser<'s> {
    /// The slot of field `key`, if it is a column; the field after the previous one (`next`) is
    /// checked first.
    fn slot(&self, key: &str, next: &mut usize) -> Option<Slot> {
        let slot = match self.order.get(*next) {
            Some((name, slot)) if *name == key => Some(*slot),
            _ => self.slots.get(key).copied(),
        };
        if let Some(slot) = slot {
            *next = self.position(slot) + 1;
        }
        slot
    }

    /// Reads a record written the usual way — one flat JSON object whose keys and strings have
    /// no escapes or control characters and whose numbers have no exponent and, for integers, at
    /// most 18 digits — into the fields serde's path would make of it, without serde's dispatch
    /// per field. `None` for anything else, which serde's path reads (and reports) instead.
    fn scan<'a>(&self, json: &'a str, fields: &mut Fields<'a>) -> Option<()> {
        let mut at = Scanner {
            text: json,
            bytes: json.as_bytes(),
            at: 0,
        };
        at.whitespace();
        at.eat(b'{')?;
        fields.clear();
        let mut next = 0;
        at.whitespace();
        if at.eat(b'}').is_none() {
            loop {
                at.whitespace();
                // The field the sender usually sends next is compared whole; any other key is
                // read and looked up.
                let (key, slot) = match self.order.get(next) {
                    Some(&(name, slot)) if self.plain[next] && at.quoted(name) => {
                        next = self.position(slot) + 1;
                        (name, Some(slot))
                    }
                    _ => {
                        let key = at.plain_string()?;
                        (key, self.slot(key, &mut next))
                    }
                };
                at.colon()?;
                let value = at.plain_value()?;
                fields.put(key, slot, || value);
                at.whitespace();
                match at.bytes.get(at.at)? {
                    b',' => at.at += 1,
                    b'}' => {
                        at.at += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        at.whitespace();
        (at.at == at.bytes.len()).then_some(())
    }

    /// Reads a valid reading sent the usual way — its fields in the schema's order (`machine_id`
    /// as a string, `ts` in either of its forms, every feature, then every label or none), every value a
    /// number, written as [`RecordParser::scan`] reads them — straight into `out`, without the
    /// per-field slots, their checks and conversions. `None`, with `out` as it was, for any
    /// other record: the general path reads, validates and reports it as before.
    fn scan_usual(&self, json: &str, out: &mut Readings) -> Option<()> {
        let (features, labels) = (out.features.len(), out.labels.len());
        let read = self.scan_usual_into(json, out);
        if read.is_none() {
            out.features.truncate(features);
            out.labels.truncate(labels);
        }
        read
    }

    fn scan_usual_into(&self, json: &str, out: &mut Readings) -> Option<()> {
        let mut at = Scanner {
            text: json,
            bytes: json.as_bytes(),
            at: 0,
        };
        let mut names = self.order.iter().map(|&(name, _)| name);
        at.whitespace();
        at.eat(b'{')?;
        at.field(names.next()?)?;
        let machine_id = at.plain_string().filter(|s| is_machine_id(s))?;
        at.next_field(names.next()?)?;
        let ts = parse_time(&at.plain_value()?)
            .ok()
            .filter(|&ts| ts <= self.max_ts)?;
        for name in names.by_ref().take(self.schema.features.len()) {
            at.next_field(name)?;
            out.features.push(at.number()?);
        }
        at.whitespace();
        let labelled = at.eat(b'}').is_none();
        if labelled {
            for name in names {
                at.next_field(name)?;
                out.labels.push(at.number()?);
            }
            at.whitespace();
            at.eat(b'}')?;
        } else {
            out.labels
                .extend((0..self.schema.labels.len()).map(|_| Value::Missing));
        }
        at.whitespace();
        (at.at == at.bytes.len()).then_some(())?;
        out.labelled.push(labelled);
        out.push_key(machine_id, ts);
        Some(())
    }

    /// Reads a record through serde (what [`RecordParser::scan`] does not read).
    fn deserialize<'a>(&self, json: &'a str) -> Result<Fields<'a>, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(json);
        RecordSeed(self)
            .deserialize(&mut de)
            .and_then(|f| de.end().map(|()| f))
    }

    /// Where `slot` is in the usual field order.
    fn position(&self, slot: Slot) -> usize {
        let features = if self.labels_only {
            0
        } else {
            self.schema.features.len()
        };
        match slot {
            Slot::Machine => 0,
            Slot::Time => 1,
            Slot::Feature(i) => 2 + i,
            Slot::Label(i) => 2 + features + i,
        }
    }

    /// A parser for records of `schema` whose event time may be at most `max_ts`. With
    /// `labels_only`, records carry labels (and no features) for readings already stored.
    pub fn new(schema: &'s Schema, max_ts: i64, labels_only: bool) -> Self {
        let mut slots = HashMap::with_capacity(schema.features.len() + schema.labels.len() + 2);
        slots.insert(ENTITY_KEY, Slot::Machine);
        slots.insert(TIME_KEY, Slot::Time);
        if !labels_only {
            for (i, c) in schema.features.iter().enumerate() {
                slots.insert(c.name.as_str(), Slot::Feature(i));
            }
        }
        for (i, c) in schema.labels.iter().enumerate() {
            slots.insert(c.name.as_str(), Slot::Label(i));
        }
        let mut order: Vec<(&str, Slot)> =
            vec![(ENTITY_KEY, Slot::Machine), (TIME_KEY, Slot::Time)];
        if !labels_only {
            order.extend(
                schema
                    .features
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.name.as_str(), Slot::Feature(i))),
            );
        }
        order.extend(
            schema
                .labels
                .iter()
                .enumerate()
                .map(|(i, c)| (c.name.as_str(), Slot::Label(i))),
        );
        let plain: Vec<bool> = order.iter().map(|(name, _)| is_plain(name)).collect();
        let usual = !labels_only
            && plain.iter().all(|&p| p)
            && (schema.features.iter().chain(&schema.labels))
                .all(|c| c.kind == ColumnKind::Numeric);
        RecordParser {
            schema,
            slots,
            order,
            plain,
            max_ts,
            labels_only,
            usual,
        }
    }

    /// Parses and validates one record's JSON text.
    pub fn parse(&self, index: usize, json: &str) -> Result<Reading, Rejection> {
        let mut one = self.readings(1);
        self.parse_with(&mut Fields::new(self.schema), index, json, &mut one)?;
        Ok(one.get(0).to_owned())
    }

    /// An empty batch for `n` readings of this parser's schema.
    fn readings(&self, n: usize) -> Readings {
        let width = if self.labels_only {
            0
        } else {
            self.schema.features.len()
        };
        Readings::with_capacity(width, self.schema.labels.len(), n)
    }

    /// Parses and validates records (each with its position in the request): the raw text of
    /// each refused record (for its dead letter), the valid readings with their positions, and
    /// the refusals.
    pub fn parse_all(&self, parts: &[(usize, &str)]) -> ParsedRecords {
        self.parse_leaving_room(parts, 0)
    }

    /// [`RecordParser::parse_all`], with room for `more` readings to be appended.
    pub(crate) fn parse_leaving_room(&self, parts: &[(usize, &str)], more: usize) -> ParsedRecords {
        let mut parsed = ParsedRecords {
            positions: Vec::with_capacity(parts.len() + more),
            readings: self.readings(parts.len() + more),
            ..ParsedRecords::default()
        };
        // One set of slots serves every record.
        let mut fields = Fields::new(self.schema);
        for &(i, part) in parts {
            match self.parse_with(&mut fields, i, part, &mut parsed.readings) {
                Ok(()) => parsed.positions.push(i),
                Err(e) => {
                    parsed
                        .raws
                        .push(part.chars().take(4096).collect::<String>());
                    parsed.rejected.push(e);
                }
            }
        }
        parsed
    }

    /// Parses and validates one record into `out`.
    fn parse_with<'a>(
        &self,
        fields: &mut Fields<'a>,
        index: usize,
        json: &'a str,
        out: &mut Readings,
    ) -> Result<(), Rejection> {
        if self.usual && self.scan_usual(json, out).is_some() {
            return Ok(());
        }
        if self.scan(json, fields).is_none() {
            *fields = self.deserialize(json).map_err(|e| Rejection {
                index,
                field: None,
                reason: format!("not a JSON object: {e}"),
            })?;
        }
        let (features, labels) = (out.features.len(), out.labels.len());
        let valid = self.validate(index, fields, out);
        if valid.is_err() {
            out.features.truncate(features);
            out.labels.truncate(labels);
        }
        valid
    }

    /// Checks a record's fields against the schema, pushing its values to `out` (which the
    /// caller truncates again if it is refused).
    fn validate(
        &self,
        index: usize,
        fields: &mut Fields,
        out: &mut Readings,
    ) -> Result<(), Rejection> {
        let reject = |field: Option<&str>, reason: String| Rejection {
            index,
            field: field.map(str::to_string),
            reason,
        };
        if let Some(key) = fields.unknown.take() {
            let what = if self.labels_only && self.schema.feature(&key).is_some() {
                "is a feature; send readings to the records endpoint"
            } else {
                "is not a column of the dataset's schema"
            };
            return Err(reject(Some(&key), format!("unknown field: '{key}' {what}")));
        }
        if let Some(key) = fields.repeated.take() {
            return Err(reject(Some(&key), format!("field '{key}' appears twice")));
        }
        let machine_id = match fields.machine.take() {
            Some(Raw::Text(s)) if is_machine_id(&s) => s,
            Some(Raw::Integer(n)) => Cow::Owned(n.to_string()),
            Some(Raw::Text(_)) => {
                return Err(reject(
                    Some(ENTITY_KEY),
                    format!(
                        "machine_id must be 1-{MAX_MACHINE_ID} characters without control characters"
                    ),
                ));
            }
            None | Some(Raw::Null) => {
                return Err(reject(Some(ENTITY_KEY), "missing machine_id".into()));
            }
            Some(_) => {
                return Err(reject(
                    Some(ENTITY_KEY),
                    "machine_id must be a string".into(),
                ));
            }
        };
        let ts = match fields.time.take() {
            None | Some(Raw::Null) => return Err(reject(Some(TIME_KEY), "missing ts".into())),
            Some(raw) => parse_time(&raw).map_err(|reason| reject(Some(TIME_KEY), reason))?,
        };
        if ts > self.max_ts {
            return Err(reject(
                Some(TIME_KEY),
                format!("ts {} is too far in the future", format_time(ts)),
            ));
        }
        if !self.labels_only {
            for (raw, column) in fields.features.iter_mut().zip(&self.schema.features) {
                let value = convert(raw.take(), column.kind)
                    .map_err(|reason| reject(Some(&column.name), reason))?;
                if value == Value::Missing && !column.nullable {
                    return Err(reject(
                        Some(&column.name),
                        format!(
                            "missing value for '{}', which does not accept missing values (NaN counts as missing)",
                            column.name
                        ),
                    ));
                }
                out.features.push(value);
            }
        }
        let has_labels = fields
            .labels
            .iter()
            .any(|l| l.as_ref().is_some_and(|r| !matches!(r, Raw::Null)));
        if has_labels {
            for (raw, column) in fields.labels.iter_mut().zip(&self.schema.labels) {
                out.labels.push(
                    convert(raw.take(), column.kind)
                        .map_err(|reason| reject(Some(&column.name), reason))?,
                );
            }
        } else if self.labels_only {
            return Err(reject(None, "the record carries no label value".into()));
        } else {
            out.labels
                .extend((0..self.schema.labels.len()).map(|_| Value::Missing));
        }
        out.labelled.push(has_labels);
        out.push_key(&machine_id, ts);
        Ok(())
    }
}

/// Whether `s` is an acceptable machine id: 1 to [`MAX_MACHINE_ID`] bytes, no control characters.
fn is_machine_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_MACHINE_ID && !s.chars().any(char::is_control)
}

/// Whether `s` is written in JSON as it is, between quotes: no quote, backslash or control
/// character to escape.
fn is_plain(s: &str) -> bool {
    !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20)
}

/// A cursor over a record's JSON text, for [`RecordParser::scan`].
struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    // The loops below step a local position and store it once: stepping `self.at` in place
    // kept it in memory, a store for every byte of every number.
    fn whitespace(&mut self) {
        let mut at = self.at;
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(at) {
            at += 1;
        }
        self.at = at;
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.bytes.get(self.at) == Some(&byte)).then(|| self.at += 1)
    }

    /// Whether `name`, quoted, comes next (`name` being [`is_plain`]); steps over it if so.
    fn quoted(&mut self, name: &str) -> bool {
        let (at, n) = (self.at, name.len());
        // Compared a byte at a time: names are short, and a call to `memcmp` cost more.
        let found = self.bytes.get(at..at + n + 2).is_some_and(|b| {
            b[0] == b'"'
                && b[n + 1] == b'"'
                && b[1..n + 1].iter().zip(name.as_bytes()).all(|(x, y)| x == y)
        });
        if found {
            self.at = at + n + 2;
        }
        found
    }

    /// A string without escapes or control characters.
    fn plain_string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        let mut at = start;
        loop {
            match *self.bytes.get(at)? {
                b'"' => break,
                b'\\' | 0..0x20 => return None,
                _ => at += 1,
            }
        }
        self.at = at + 1;
        Some(&self.text[start..at])
    }

    /// Whitespace, then `name` quoted (a plain name), a colon and whitespace.
    fn field(&mut self, name: &str) -> Option<()> {
        self.whitespace();
        self.quoted(name).then_some(())?;
        self.colon()
    }

    /// The colon between a key and its value, with the whitespace around it.
    fn colon(&mut self) -> Option<()> {
        self.whitespace();
        self.eat(b':')?;
        self.whitespace();
        Some(())
    }

    /// The comma after a value, then [`Scanner::field`].
    fn next_field(&mut self, name: &str) -> Option<()> {
        self.whitespace();
        self.eat(b',')?;
        self.field(name)
    }

    /// A value that a numeric column takes as a number (not as a missing value), as [`convert`]
    /// takes it; matched here, as a call to `convert` per value cost the usual path a fifth.
    fn number(&mut self) -> Option<Value> {
        match self.plain_value()? {
            Raw::Integer(n) => Some(Value::Number(n as f64)),
            Raw::Number(x) if x.is_finite() => Some(Value::Number(x)),
            _ => None,
        }
    }

    fn digits(&mut self) -> decimal::Digits {
        let found = decimal::digits(self.bytes, self.at);
        self.at += found.len;
        found
    }

    /// A string, a number without exponent, `true`, `false` or `null`: as serde reads them.
    fn plain_value(&mut self) -> Option<Raw<'a>> {
        let literal = |at: &mut Self, literal: &[u8], raw: Raw<'a>| {
            at.bytes[at.at..].starts_with(literal).then(|| {
                at.at += literal.len();
                raw
            })
        };
        match self.bytes.get(self.at)? {
            b'"' => return self.plain_string().map(|s| Raw::Text(Cow::Borrowed(s))),
            b't' => return literal(self, b"true", Raw::Bool),
            b'f' => return literal(self, b"false", Raw::Bool),
            b'n' => return literal(self, b"null", Raw::Null),
            _ => {}
        }
        let start = self.at;
        let negative = self.eat(b'-').is_some();
        let whole = self.digits();
        // JSON allows no leading zeros.
        if whole.len == 0 || (whole.len > 1 && self.bytes[self.at - whole.len] == b'0') {
            return None;
        }
        let part = match self.eat(b'.') {
            Some(()) => Some(self.digits()).filter(|d| d.len > 0)?,
            None => decimal::Digits { len: 0, value: 0 },
        };
        if matches!(self.bytes.get(self.at), Some(b'e' | b'E')) {
            return None;
        }
        if part.len > 0 {
            // Correctly rounded, as serde_json's `float_roundtrip` parsing is; from the digits
            // as found when there are not too many of them.
            decimal::fraction(negative, whole, part)
                .or_else(|| self.text[start..self.at].parse().ok())
                .map(Raw::Number)
        } else {
            // serde_json reads `-0` as the float -0.0, keeping its sign.
            match decimal::integer(negative, whole)? {
                0 if negative => Some(Raw::Number(-0.0)),
                n => Some(Raw::Integer(n)),
            }
        }
    }
}

fn convert(raw: Option<Raw>, kind: ColumnKind) -> Result<Value, String> {
    match (raw, kind) {
        (None | Some(Raw::Null), _) => Ok(Value::Missing),
        (Some(Raw::Integer(n)), ColumnKind::Numeric) => Ok(Value::Number(n as f64)),
        (Some(Raw::Number(x)), ColumnKind::Numeric) if x.is_finite() => Ok(Value::Number(x)),
        (Some(Raw::Number(_)), ColumnKind::Numeric) => Err("numbers must be finite".into()),
        // NaN is how many sources write "no reading": it counts as a missing value (accepted only
        // where the column allows them); infinities are refused.
        (Some(Raw::Text(s)), ColumnKind::Numeric) if s.eq_ignore_ascii_case("nan") => {
            Ok(Value::Missing)
        }
        (Some(Raw::Text(s)), ColumnKind::Numeric)
            if matches!(
                s.to_ascii_lowercase().trim_start_matches(['+', '-']),
                "inf" | "infinity"
            ) =>
        {
            Err(format!("{s} is not allowed: numbers must be finite"))
        }
        (Some(Raw::Text(s)), ColumnKind::Numeric) => Err(format!(
            "expected a number, got the string {:?}",
            s.chars().take(40).collect::<String>()
        )),
        (Some(Raw::Text(s)), ColumnKind::Categorical) if s.len() <= MAX_TEXT => {
            Ok(Value::Text(s.into_owned()))
        }
        (Some(Raw::Text(_)), ColumnKind::Categorical) => {
            Err(format!("categories are at most {MAX_TEXT} bytes"))
        }
        (Some(Raw::Integer(n)), ColumnKind::Categorical) => Ok(Value::Text(n.to_string())),
        (Some(Raw::Number(_)), ColumnKind::Categorical) => {
            Err("expected a string category, got a number".into())
        }
        (Some(Raw::Bool), _) => Err("expected a number or string, got a boolean".into()),
        (Some(Raw::Nested), _) => Err("expected a number or string, got an array or object".into()),
    }
}

/// Event times: an integer (ms since the Unix epoch) or an RFC 3339 string.
fn parse_time(raw: &Raw) -> Result<i64, String> {
    match raw {
        Raw::Integer(ms) if *ms >= 0 => Ok(*ms),
        Raw::Integer(_) => Err("ts must not be before 1970-01-01".into()),
        Raw::Text(s) => parse_rfc3339(s),
        _ => Err(
            "ts must be an RFC 3339 string or an integer number of milliseconds since 1970-01-01"
                .into(),
        ),
    }
}

/// Parses an RFC 3339 time (e.g. `2024-05-01T12:00:00Z`) to ms since the Unix epoch.
pub fn parse_rfc3339(s: &str) -> Result<i64, String> {
    let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|e| {
        format!(
            "ts {:?} is not an RFC 3339 time ({e})",
            s.chars().take(40).collect::<String>()
        )
    })?;
    let ms = t.unix_timestamp_nanos() / 1_000_000;
    if ms < 0 {
        return Err("ts must not be before 1970-01-01".into());
    }
    i64::try_from(ms).map_err(|_| "ts is out of range".to_string())
}

/// Deserializes an optional time given as ms since the Unix epoch or an RFC 3339 string.
pub fn deserialize_time_opt<'de, D: de::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Option::<Raw>::deserialize(d)? {
        None | Some(Raw::Null) => Ok(None),
        Some(raw) => parse_time(&raw).map(Some).map_err(de::Error::custom),
    }
}

/// Formats ms since the Unix epoch as RFC 3339 (UTC, milliseconds).
pub fn format_time(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// Appends the canonical encoding of `values` to `out`.
pub fn encode(values: &[Value], out: &mut Vec<u8>) {
    for v in values {
        match v {
            Value::Missing => out.push(0),
            Value::Number(x) => {
                out.push(1);
                out.extend_from_slice(&x.to_le_bytes());
            }
            Value::Text(s) => {
                out.push(2);
                out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
        }
    }
}

/// Decodes `n` values from a canonical encoding.
pub fn decode(mut bytes: &[u8], n: usize) -> Result<Vec<Value>, String> {
    let mut values = Vec::with_capacity(n);
    for _ in 0..n {
        let (&tag, rest) = bytes.split_first().ok_or("encoding ends early")?;
        bytes = rest;
        values.push(match tag {
            0 => Value::Missing,
            1 => {
                let (num, rest) = bytes
                    .split_at_checked(8)
                    .ok_or("encoding ends inside a number")?;
                bytes = rest;
                Value::Number(f64::from_le_bytes(num.try_into().expect("8 bytes")))
            }
            2 => {
                let (len, rest) = bytes
                    .split_at_checked(4)
                    .ok_or("encoding ends inside a length")?;
                let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
                let (text, rest) = rest
                    .split_at_checked(len)
                    .ok_or("encoding ends inside a text")?;
                bytes = rest;
                Value::Text(String::from_utf8(text.to_vec()).map_err(|_| "text is not UTF-8")?)
            }
            other => return Err(format!("unknown value tag {other}")),
        });
    }
    if !bytes.is_empty() {
        return Err("encoding has trailing bytes".into());
    }
    Ok(values)
}

/// Splits a request body into records: a JSON array of objects, or newline-delimited JSON (one
/// object per line; blank lines are skipped). Returns each record's position (see
/// [`Rejection::index`]: blank lines count) and JSON text; a malformed array is an error for the
/// whole body, a malformed NDJSON line only for its record.
pub fn split_body(body: &str, ndjson: bool) -> Result<Vec<(usize, &str)>, String> {
    if ndjson {
        return Ok(lines(body)
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .collect());
    }
    let items: Vec<&RawValue> = serde_json::from_str(body)
        .map_err(|e| format!("the body is not a JSON array of records: {e}"))?;
    Ok(items.into_iter().map(RawValue::get).enumerate().collect())
}

/// The lines of `text` as [`str::lines`] gives them (a line ends at `\n` or `\r\n`; the last
/// may have no end), their ends found with SIMD: for a large body, many times faster than the
/// search per line.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', text.as_bytes()).map(Some);
    ends.chain(std::iter::once(None)).filter_map(move |end| {
        let line = match end {
            Some(end) => {
                let line = &text[start..end];
                start = end + 1;
                line.strip_suffix('\r').unwrap_or(line)
            }
            None if start < text.len() => &text[start..],
            None => return None,
        };
        Some(line)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::schema::Column;

    fn schema() -> Schema {
        Schema {
            features: vec![
                Column {
                    name: "temp".into(),
                    kind: ColumnKind::Numeric,
                    nullable: false,
                },
                Column {
                    name: "Type".into(),
                    kind: ColumnKind::Categorical,
                    nullable: false,
                },
                Column {
                    name: "wear".into(),
                    kind: ColumnKind::Numeric,
                    nullable: true,
                },
            ],
            labels: vec![Column {
                name: "failure".into(),
                kind: ColumnKind::Numeric,
                nullable: true,
            }],
        }
    }

    const FUTURE: i64 = 4_000_000_000_000;

    /// A seeded xorshift generator: each call gives a number below its argument.
    fn random_below(seed: u64) -> impl FnMut(u64) -> u64 {
        let mut state = seed;
        move |n| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        }
    }

    /// What serde's path alone makes of a record (the reference for the scanner).
    fn through_serde(parser: &RecordParser, json: &str) -> Result<Reading, Rejection> {
        match parser.deserialize(json) {
            Ok(mut fields) => {
                let mut one = parser.readings(1);
                parser
                    .validate(0, &mut fields, &mut one)
                    .map(|()| one.get(0).to_owned())
            }
            Err(e) => Err(Rejection {
                index: 0,
                field: None,
                reason: format!("not a JSON object: {e}"),
            }),
        }
    }

    #[test]
    fn the_scanner_reads_usual_records_as_serde_does() {
        let s = schema();
        let parser = RecordParser::new(&s, FUTURE, false);
        for json in [
            r#"{"machine_id":"M1","ts":5,"temp":300.5,"Type":"L","wear":7,"failure":0}"#,
            r#" { "ts" : 1700000000000 , "machine_id" : "m-ü" , "Type" : "H", "temp": -0.0 } "#,
            "{\"machine_id\":\"m\",\"ts\":1,\"temp\":1.25,\"Type\":\"L\",\"wear\":null}\n",
            r#"{"machine_id":"m","ts":1,"temp":12345678901234.5678,"Type":"M","extra":1}"#,
            r#"{"machine_id":"m","ts":1,"temp":1,"temp":2,"Type":"L"}"#,
            r#"{"machine_id":7,"ts":"2024-01-01T00:00:00Z","temp":"NaN","Type":3,"wear":"NaN"}"#,
            r#"{"machine_id":"m","ts":-5,"temp":true,"Type":"L"}"#,
            r#"{}"#,
        ] {
            assert!(
                parser.scan(json, &mut Fields::new(&s)).is_some(),
                "scanned: {json}"
            );
            assert_eq!(
                parser.parse(0, json),
                through_serde(&parser, json),
                "{json}"
            );
        }
    }

    #[test]
    fn column_names_that_json_escapes_are_read_escaped_only() {
        let s = Schema {
            features: ["q\"x", "b\\s", "t\tab", "plain"]
                .map(|name| Column {
                    name: name.into(),
                    kind: ColumnKind::Numeric,
                    nullable: false,
                })
                .to_vec(),
            labels: vec![],
        };
        let parser = RecordParser::new(&s, FUTURE, false);
        let escaped = r#"{"machine_id":"m","ts":1,"q\"x":1.5,"b\\s":2,"t\tab":3,"plain":4}"#;
        let read = parser.parse(0, escaped).unwrap();
        assert_eq!(read, through_serde(&parser, escaped).unwrap());
        assert_eq!(
            read.features,
            [1.5, 2.0, 3.0, 4.0].map(Value::Number).to_vec()
        );
        // The names' bytes unescaped are not JSON: refused, not read as the columns.
        for raw in [
            r#"{"machine_id":"m","ts":1,"q"x":1.5,"b\\s":2,"t\tab":3,"plain":4}"#,
            "{\"machine_id\":\"m\",\"ts\":1,\"q\\\"x\":1.5,\"b\\\\s\":2,\"t\tab\":3,\"plain\":4}",
        ] {
            let refused = parser.parse(0, raw).unwrap_err();
            assert!(
                refused.reason.starts_with("not a JSON object"),
                "{raw}: {refused:?}"
            );
        }
    }

    #[test]
    fn the_scanner_leaves_the_rest_to_serde() {
        let s = schema();
        let parser = RecordParser::new(&s, FUTURE, false);
        for json in [
            r#"{"machine_id":"M\u0031","ts":5,"temp":1,"Type":"L"}"#,
            r#"{"machine_id":"M1","ts":5,"temp":1e3,"Type":"L"}"#,
            r#"{"machine_id":"M1","ts":5,"temp":01,"Type":"L"}"#,
            r#"{"machine_id":"M1","ts":5,"temp":1.,"Type":"L"}"#,
            r#"{"machine_id":"M1","ts":5,"temp":.5,"Type":"L"}"#,
            r#"{"machine_id":"M1","ts":5,"temp":-,"Type":"L"}"#,
            r#"{"machine_id":"M1","ts":12345678901234567890,"temp":1,"Type":"L"}"#,
            r#"{"machine_id":"M1","ts":5,"temp":[1],"Type":"L"}"#,
            r#"{"machine_id":"M1","ts":5,"temp":1,"Type":"L","x":{"a":1}}"#,
            r#"{"machine_id":"M1","ts":5,"temp":1,"Type":"L",}"#,
            r#"{"machine_id":"M1","ts":5,"temp":1,"Type":"L"} x"#,
            r#"{"machine_id":"M1","ts":5,"temp":truex,"Type":"L"}"#,
            "{\"machine_id\":\"a\u{1}b\",\"ts\":5}",
            r#"{"machine_id":"M1","ts":5"#,
            r#"[1, 2]"#,
            "",
        ] {
            assert!(
                parser.scan(json, &mut Fields::new(&s)).is_none(),
                "left to serde: {json}"
            );
            assert_eq!(
                parser.parse(0, json),
                through_serde(&parser, json),
                "{json}"
            );
        }
    }

    /// Records made of random pieces, usual and not: whichever path reads them, the result is
    /// serde's.
    #[test]
    fn the_scanner_and_serde_agree_on_random_records() {
        let s = schema();
        let parser = RecordParser::new(&s, FUTURE, false);
        let mut next = random_below(0x9e37_79b9_7f4a_7c15u64);
        let keys = [
            "machine_id",
            "ts",
            "temp",
            "Type",
            "wear",
            "failure",
            "other",
            "te\\u006dp",
        ];
        let (mut scanned, mut total) = (0, 0);
        let mut records = Vec::new();
        for _ in 0..20_000 {
            let mut json = String::from(if next(8) == 0 { " {" } else { "{" });
            for f in 0..next(7) {
                if f > 0 {
                    json.push_str([",", " , ", ",\n"][next(3) as usize]);
                }
                let x = f64::from_bits(next(u64::MAX));
                let value = match next(16) {
                    0 => format!("{}", next(1 << 62) as i64 - (1 << 61)),
                    1 => format!("-{}", next(100)),
                    2 => format!("{x}"),
                    3 => format!("{x:e}"),
                    4 => format!("{}", (next(2_000_000) as f64 - 1e6) / 997.0),
                    5 => format!("{}.{:0>5}", next(1000), next(100_000)),
                    6 => ["0", "-0", "-0.0", "00", "1.", ".5", "1e5", "1E-3", "-"]
                        [next(9) as usize]
                        .into(),
                    7 => format!("\"m{}\"", next(50)),
                    8 => "\"NaN\"".into(),
                    9 => "\"2024-05-01T12:00:00Z\"".into(),
                    10 => ["true", "false", "null", "nul", "[1]", "{}"][next(6) as usize].into(),
                    11 => "\"a\\\"b\"".into(),
                    12 => format!("{}", next(u64::MAX)),
                    13 => format!("{}", 1_700_000_000_000 + next(1000)),
                    _ => format!("{}.{}", next(10), next(10)),
                };
                json.push_str(&format!(
                    "\"{}\":{value}",
                    keys[next(keys.len() as u64) as usize]
                ));
            }
            json.push_str(["}", "} ", "}\n", "", "}}"][next(5) as usize % 5].max("}"));
            if next(10) == 0 {
                json.truncate(next(json.len() as u64 + 1) as usize);
            }
            total += 1;
            scanned += usize::from(parser.scan(&json, &mut Fields::new(&s)).is_some());
            assert_eq!(
                parser.parse(0, &json),
                through_serde(&parser, &json),
                "{json}"
            );
            records.push(json);
        }
        // Parsed as a batch (one set of slots reused from record to record), each record gives
        // what it gives alone.
        let parts: Vec<(usize, &str)> = records.iter().map(String::as_str).enumerate().collect();
        let parsed = parser.parse_all(&parts);
        let (rejected_all, raws_all) = (parsed.rejected.clone(), parsed.raws.clone());
        let mut readings = parsed.positions.iter().copied().zip(parsed.readings.iter());
        let (mut rejected, mut raws) = (
            rejected_all.clone().into_iter(),
            raws_all.clone().into_iter(),
        );
        for &(i, json) in &parts {
            match parser.parse(i, json) {
                Ok(reading) => assert_eq!(readings.next(), Some((i, reading.as_ref()))),
                Err(refusal) => {
                    assert_eq!(rejected.next(), Some(refusal));
                    assert_eq!(raws.next().as_deref(), Some(json));
                }
            }
        }
        assert_eq!((readings.len(), rejected.len(), raws.len()), (0, 0, 0));
        // Parsed in two parts (as large batches are, on two threads) and appended, the records
        // give what they give parsed at once.
        for cut in [0, 1, 777, parts.len() / 2, parts.len() - 1, parts.len()] {
            let mut halves = parser.parse_all(&parts[..cut]);
            halves.append(parser.parse_all(&parts[cut..]));
            assert_eq!(halves.positions, parsed.positions, "cut at {cut}");
            assert_eq!(halves.readings, parsed.readings, "cut at {cut}");
            assert_eq!(halves.rejected, rejected_all, "cut at {cut}");
            assert_eq!(halves.raws, raws_all, "cut at {cut}");
        }
        // Both paths are exercised.
        assert!(
            scanned * 10 > total && (total - scanned) * 10 > total,
            "{scanned} of {total} scanned"
        );
    }

    /// Records of a schema of numeric columns, most sent in the usual order with numbers and the
    /// rest bent in one way or another: whether or not [`RecordParser::scan_usual`] reads them,
    /// each gives what serde's path gives, alone and in a batch.
    #[test]
    fn records_in_the_usual_order_are_read_as_serde_reads_them() {
        let numeric = |name: &str, nullable| Column {
            name: name.into(),
            kind: ColumnKind::Numeric,
            nullable,
        };
        let s = Schema {
            features: vec![
                numeric("temp", false),
                numeric("wear", true),
                numeric("speed", false),
            ],
            labels: vec![numeric("failure", true), numeric("rul", true)],
        };
        let parser = RecordParser::new(&s, FUTURE, false);
        assert!(parser.usual);
        let mut next = random_below(0x2545_f491_4f6c_dd1du64);
        let mut records = Vec::new();
        let mut usual = 0;
        for _ in 0..30_000 {
            let bent = next(3) == 0;
            // One of `odd`, now and then, in a record that is bent.
            let bend = |next: &mut dyn FnMut(u64) -> u64, n, usual: String, odd: &[&str]| {
                if bent && next(n) == 0 {
                    odd[next(odd.len() as u64) as usize].to_string()
                } else {
                    usual
                }
            };
            let machine = format!("\"m{}\"", next(300));
            let machine = bend(
                &mut next,
                6,
                machine,
                &[
                    "17",
                    "\"\"",
                    "\"a\u{7f}b\"",
                    "\"a\u{85}b\"",
                    "\"ü\"",
                    "null",
                    "\"x\\\"y\"",
                    &format!("\"{}\"", "k".repeat(MAX_MACHINE_ID)),
                    &format!("\"{}\"", "k".repeat(MAX_MACHINE_ID + 1)),
                ],
            );
            let ts = format!("{}", 1_700_000_000_000 + next(1000));
            let ts = bend(
                &mut next,
                6,
                ts,
                &[
                    "-5",
                    "0",
                    "-0",
                    "1.5",
                    "\"2024-05-01T12:00:00Z\"",
                    "4000000000000",
                    "4000000000001",
                    "12345678901234567890",
                ],
            );
            let mut fields = vec![("machine_id", machine), ("ts", ts)];
            for name in ["temp", "wear", "speed", "failure", "rul"] {
                let x = f64::from_bits(next(u64::MAX));
                let number = match next(4) {
                    0 => format!("{}", next(1 << 40) as i64 - (1 << 39)),
                    1 => format!("{}.{:0>4}", next(1000), next(10_000)),
                    2 if x.abs() < 1e15 => format!("{x}"),
                    _ => format!("-{}.{}", next(100), next(100)),
                };
                let value = bend(
                    &mut next,
                    8,
                    number,
                    &[
                        "null", "\"NaN\"", "\"inf\"", "true", "1e3", "01", "-", "1.", "[1]",
                        "\"7\"",
                    ],
                );
                fields.push((name, value));
            }
            // Labels: both (as above), none, or only one.
            match next(3) {
                0 => {
                    fields.truncate(5);
                }
                1 if bent => {
                    fields.remove(5 + next(2) as usize);
                }
                _ => {}
            }
            if bent {
                match next(6) {
                    0 => {
                        let (a, b) = (next(fields.len() as u64), next(fields.len() as u64));
                        fields.swap(a as usize, b as usize);
                    }
                    1 => {
                        fields.remove(next(fields.len() as u64) as usize);
                    }
                    2 => {
                        let at = next(fields.len() as u64 + 1) as usize;
                        fields.insert(at, ("extra", "1".into()));
                    }
                    3 => {
                        let again = fields[next(fields.len() as u64) as usize].clone();
                        fields.push(again);
                    }
                    _ => {}
                }
            }
            let mut json = String::from(if next(6) == 0 { " { " } else { "{" });
            for (i, (name, value)) in fields.iter().enumerate() {
                if i > 0 {
                    json.push_str([",", " , ", ",\n"][next(3) as usize]);
                }
                json.push_str(&format!(
                    "\"{name}\"{}{value}",
                    [":", " : "][next(2) as usize]
                ));
            }
            json.push_str(
                ["}", "} ", "}\n", "}}", "},"][next(5) as usize % if bent { 5 } else { 3 }],
            );
            if bent && next(8) == 0 {
                json.truncate(next(json.len() as u64 + 1) as usize);
            }
            let mut one = parser.readings(1);
            usual += usize::from(parser.scan_usual(&json, &mut one).is_some());
            assert_eq!(
                parser.parse(0, &json),
                through_serde(&parser, &json),
                "{json}"
            );
            records.push(json);
        }
        assert!(
            usual * 2 > records.len() && (records.len() - usual) * 5 > records.len(),
            "{usual} of {} read the usual way",
            records.len()
        );
        // In a batch (where a record refused midway must leave nothing behind), as alone.
        let parts: Vec<(usize, &str)> = records.iter().map(String::as_str).enumerate().collect();
        let parsed = parser.parse_all(&parts);
        let mut readings = parsed.positions.iter().copied().zip(parsed.readings.iter());
        let mut rejected = parsed.rejected.iter();
        for &(i, json) in &parts {
            match parser.parse(i, json) {
                Ok(reading) => assert_eq!(readings.next(), Some((i, reading.as_ref()))),
                Err(refusal) => assert_eq!(rejected.next(), Some(&refusal)),
            }
        }
        assert_eq!((readings.len(), rejected.len()), (0, 0));
    }

    #[test]
    fn a_batch_keeps_each_readings_key_values_and_labels() {
        let reading = |m: &str, ts: i64, x: f64, label: Option<f64>| Reading {
            machine_id: m.into(),
            ts,
            features: vec![
                Value::Number(x),
                Value::Text(format!("t{ts}")),
                Value::Missing,
            ],
            labels: label.map(|y| vec![Value::Number(y)]),
        };
        let all = [
            reading("m-ü", 3, 1.5, None),
            reading("", 1, -2.0, Some(1.0)),
            reading("machine 7", 2, 0.0, Some(0.0)),
            reading("m-ü", 9, 4.0, None),
        ];
        let batch = Readings::from_iter(all.clone());
        assert_eq!(batch.len(), 4);
        assert!(batch.any_labelled());
        assert_eq!(batch.times(), [3, 1, 2, 9]);
        let back: Vec<Reading> = batch.iter().map(|r| r.to_owned()).collect();
        assert_eq!(back, all);
        // A selection copies the readings asked for, in the order asked.
        let picked = batch.select([3, 1].into_iter());
        assert_eq!(
            picked.iter().map(|r| r.to_owned()).collect::<Vec<_>>(),
            [all[3].clone(), all[1].clone()]
        );
        assert!(!batch.select([0, 3].into_iter()).any_labelled());
        assert!(Readings::new(3, 1).is_empty());
    }

    #[test]
    fn a_record_refused_midway_leaves_nothing_in_the_batch() {
        let mut s = schema();
        s.labels.push(Column {
            name: "rul".into(),
            kind: ColumnKind::Numeric,
            nullable: true,
        });
        let parser = RecordParser::new(&s, FUTURE, false);
        let records = [
            r#"{"machine_id":"a","ts":1,"temp":1.5,"Type":"L","failure":1}"#,
            // Refused at its second feature, and at its second label: values were taken before.
            r#"{"machine_id":"b","ts":2,"temp":2.5,"Type":2.5}"#,
            r#"{"machine_id":"c","ts":3,"temp":3.5,"Type":"M","wear":4,"failure":0,"rul":"x"}"#,
            r#"{"machine_id":"d","ts":4,"temp":4.5,"Type":"H","wear":5}"#,
        ];
        let parts: Vec<(usize, &str)> = records.into_iter().enumerate().collect();
        let parsed = parser.parse_all(&parts);
        assert_eq!(parsed.positions, [0, 3]);
        assert_eq!(
            parsed
                .rejected
                .iter()
                .map(|r| r.field.as_deref())
                .collect::<Vec<_>>(),
            [Some("Type"), Some("rul")]
        );
        let want: Readings = [records[0], records[3]]
            .map(|json| parser.parse(0, json).unwrap())
            .into_iter()
            .collect();
        assert_eq!(parsed.readings, want);
        assert_eq!(parsed.readings.get(1).features[0], Value::Number(4.5));
    }

    #[test]
    fn valid_records_parse_with_either_time_form() {
        let s = schema();
        let p = RecordParser::new(&s, FUTURE, false);
        let r = p
            .parse(
                0,
                r#"{"machine_id":"M1","ts":"2024-01-01T00:00:01Z","temp":300.5,"Type":"L"}"#,
            )
            .unwrap();
        assert_eq!(r.machine_id, "M1");
        assert_eq!(r.ts, 1_704_067_201_000);
        assert_eq!(
            r.features,
            vec![
                Value::Number(300.5),
                Value::Text("L".into()),
                Value::Missing
            ]
        );
        assert_eq!(r.labels, None);
        let r = p
            .parse(
                1,
                r#"{"machine_id":"M1","ts":5,"temp":1,"Type":"H","wear":"NaN","failure":1}"#,
            )
            .unwrap();
        assert_eq!(r.ts, 5);
        assert_eq!(
            r.features[2],
            Value::Missing,
            "NaN in a nullable column is a missing value"
        );
        assert_eq!(r.labels, Some(vec![Value::Number(1.0)]));
    }

    #[test]
    fn each_bad_input_names_its_field() {
        let s = schema();
        let p = RecordParser::new(&s, FUTURE, false);
        let cases = [
            (
                r#"{"ts":1,"temp":1,"Type":"L"}"#,
                Some("machine_id"),
                "missing machine_id",
            ),
            (
                r#"{"machine_id":"m","temp":1,"Type":"L"}"#,
                Some("ts"),
                "missing ts",
            ),
            (
                r#"{"machine_id":"m","ts":"yesterday","temp":1,"Type":"L"}"#,
                Some("ts"),
                "not an RFC 3339 time",
            ),
            (
                r#"{"machine_id":"m","ts":1.5,"temp":1,"Type":"L"}"#,
                Some("ts"),
                "RFC 3339 string or an integer",
            ),
            (
                r#"{"machine_id":"m","ts":4000000000001,"temp":1,"Type":"L"}"#,
                Some("ts"),
                "too far in the future",
            ),
            (
                r#"{"machine_id":"m","ts":1,"temp":"hot","Type":"L"}"#,
                Some("temp"),
                "expected a number",
            ),
            (
                r#"{"machine_id":"m","ts":1,"temp":"NaN","Type":"L"}"#,
                Some("temp"),
                "does not accept missing values (NaN counts as missing)",
            ),
            (
                r#"{"machine_id":"m","ts":1,"temp":"-Infinity","Type":"L"}"#,
                Some("temp"),
                "-Infinity is not allowed",
            ),
            (
                r#"{"machine_id":"m","ts":1,"Type":"L"}"#,
                Some("temp"),
                "missing value for 'temp'",
            ),
            (
                r#"{"machine_id":"m","ts":1,"temp":1,"Type":2.5}"#,
                Some("Type"),
                "expected a string category",
            ),
            (
                r#"{"machine_id":"m","ts":1,"temp":1,"Type":"L","speed":3}"#,
                Some("speed"),
                "unknown field",
            ),
            (
                r#"{"machine_id":"m","ts":1,"temp":1,"temp":2,"Type":"L"}"#,
                Some("temp"),
                "appears twice",
            ),
            (
                r#"{"machine_id":"m","ts":1,"temp":[1],"Type":"L"}"#,
                Some("temp"),
                "array or object",
            ),
            (r#"[1,2]"#, None, "not a JSON object"),
            (
                r#"{"machine_id":"m","ts":1,"temp":1,"Type":"L"} x"#,
                None,
                "not a JSON object",
            ),
        ];
        for (json, field, reason) in cases {
            let err = p.parse(7, json).unwrap_err();
            assert_eq!(err.index, 7);
            assert_eq!(err.field.as_deref(), field, "{json}: {err:?}");
            assert!(err.reason.contains(reason), "{json}: {err:?}");
        }
    }

    #[test]
    fn labels_endpoint_takes_labels_only() {
        let s = schema();
        let p = RecordParser::new(&s, FUTURE, true);
        let r = p
            .parse(0, r#"{"machine_id":"m","ts":1,"failure":0}"#)
            .unwrap();
        assert_eq!(r.labels, Some(vec![Value::Number(0.0)]));
        let err = p
            .parse(0, r#"{"machine_id":"m","ts":1,"temp":3}"#)
            .unwrap_err();
        assert!(err.reason.contains("is a feature"), "{err:?}");
        let err = p.parse(0, r#"{"machine_id":"m","ts":1}"#).unwrap_err();
        assert!(err.reason.contains("no label value"), "{err:?}");
    }

    #[test]
    fn encoding_round_trips_and_is_canonical() {
        let values = vec![
            Value::Number(-0.5),
            Value::Missing,
            Value::Text("héllo".into()),
            Value::Number(1e300),
        ];
        let mut a = Vec::new();
        encode(&values, &mut a);
        assert_eq!(decode(&a, 4).unwrap(), values);
        let mut b = Vec::new();
        encode(&values.clone(), &mut b);
        assert_eq!(a, b);
        assert!(decode(&a, 5).is_err());
        assert!(decode(&a[..a.len() - 1], 4).is_err());
    }

    #[test]
    fn lines_are_found_as_str_lines_finds_them() {
        let pieces = ["a", "{}", "\n", "\r\n", "\r", " ", "\n\n", "ü", "\r\r\n"];
        let mut next = random_below(0x1234_5678_9abc_def1);
        for _ in 0..20_000 {
            let text: String = (0..next(12))
                .map(|_| pieces[next(pieces.len() as u64) as usize])
                .collect();
            assert_eq!(
                lines(&text).collect::<Vec<_>>(),
                text.lines().collect::<Vec<_>>(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn bodies_split_as_array_or_ndjson() {
        assert_eq!(
            split_body(r#"[{"a":1}, {"b":2}]"#, false).unwrap(),
            vec![(0, r#"{"a":1}"#), (1, r#"{"b":2}"#)]
        );
        assert!(split_body(r#"[{"a":1}"#, false).is_err());
        assert_eq!(
            split_body("{\"a\":1}\n\n{bad\n", true).unwrap(),
            vec![(0, "{\"a\":1}"), (2, "{bad")]
        );
        assert_eq!(format_time(1_704_067_201_000), "2024-01-01T00:00:01Z");
        assert_eq!(
            parse_rfc3339("2024-01-01T01:00:01+01:00").unwrap(),
            1_704_067_201_000
        );
    }
}
