//! MLflow's wire format, as its Python client speaks it: protobuf's JSON mapping read leniently
//! (int64 as number or string, doubles as number or `"NaN"`/`"Infinity"`, unknown fields
//! ignored; bodies through [`crate::http::extract::Json`]), query strings with repeated keys,
//! responses with unset fields and empty lists left out, and MLflow's error codes with
//! the statuses its client branches on.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use refit_registry::experiments::Tag;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value, json};

use crate::http::error::ApiError;
use crate::http::extract::Query;

/// An error in MLflow's shape. `RESOURCE_ALREADY_EXISTS` is a 400 here (MLflow's status), and
/// nothing a caller can fix is ever a 5xx: MLflow's client retries those for minutes and hides
/// the message.
#[derive(Debug)]
pub struct MlflowError(pub ApiError);

/// Result of an MLflow handler.
pub type MlflowResult<T> = Result<T, MlflowError>;

impl MlflowError {
    /// 400 `INVALID_PARAMETER_VALUE`.
    pub fn invalid(message: impl Into<String>) -> Self {
        MlflowError(ApiError::invalid(message))
    }

    /// 404 `RESOURCE_DOES_NOT_EXIST`.
    pub fn not_found(message: impl Into<String>) -> Self {
        MlflowError(ApiError::not_found(message))
    }

    /// MLflow's message for a required field that is missing or empty.
    pub fn missing(field: &str) -> Self {
        Self::invalid(format!(
            "Missing value for required parameter '{field}'. See the API docs for more \
             information about request parameters."
        ))
    }
}

impl From<ApiError> for MlflowError {
    fn from(e: ApiError) -> Self {
        MlflowError(e)
    }
}

impl From<refit_registry::Error> for MlflowError {
    fn from(err: refit_registry::Error) -> Self {
        use refit_registry::Error as E;
        match err {
            E::AlreadyExists(m) => MlflowError(ApiError::new(
                StatusCode::BAD_REQUEST,
                "RESOURCE_ALREADY_EXISTS",
                m,
            )),
            // Writing to a deleted run or experiment: MLflow answers INVALID_PARAMETER_VALUE.
            E::InvalidState(m) => MlflowError::invalid(m),
            other => MlflowError(other.into()),
        }
    }
}

impl IntoResponse for MlflowError {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}

/// A required field: present and not empty, as MLflow checks it.
pub fn required<'a>(value: &'a Option<String>, field: &str) -> MlflowResult<&'a str> {
    value
        .as_deref()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| MlflowError::missing(field))
}

/// Query parameters in order, repeated keys kept (MLflow's GET form of repeated fields).
pub struct Params(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = MlflowError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, MlflowError> {
        let Query(pairs) = Query::from_request_parts(parts, state).await?;
        Ok(Params(pairs))
    }
}

impl Params {
    /// The first value of `key`, if any.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The first non-empty value of `key`, or MLflow's "missing" error.
    pub fn required(&self, key: &str) -> MlflowResult<&str> {
        self.get(key)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| MlflowError::missing(key))
    }

    /// Every value of `key`, in order.
    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// An integer parameter, if given.
    pub fn int(&self, key: &str) -> MlflowResult<Option<i64>> {
        self.get(key)
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.trim().parse().map_err(|_| {
                    MlflowError::invalid(format!(
                        "Invalid value \"{v}\" for parameter '{key}' supplied:  Hint: Value was \
                         of type 'str'. See the API docs for more information about request \
                         parameters."
                    ))
                })
            })
            .transpose()
    }
}

/// An int64 field: protobuf's JSON mapping allows a number or a decimal string.
pub fn lenient_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Int {
        Number(i64),
        Float(f64),
        Text(String),
    }
    match Option::<Int>::deserialize(d)? {
        None => Ok(None),
        Some(Int::Number(n)) => Ok(Some(n)),
        Some(Int::Float(f)) if f.fract() == 0.0 && f.abs() < 9.2e18 => Ok(Some(f as i64)),
        Some(Int::Float(f)) => Err(D::Error::custom(format!("{f} is not an integer"))),
        Some(Int::Text(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| D::Error::custom(format!("'{s}' is not an integer"))),
    }
}

/// A double field: a number, or one of protobuf's `"NaN"`, `"Infinity"`, `"-Infinity"`, or a
/// numeric string.
pub fn lenient_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Double {
        Number(f64),
        Text(String),
    }
    match Option::<Double>::deserialize(d)? {
        None => Ok(None),
        Some(Double::Number(n)) => Ok(Some(n)),
        Some(Double::Text(s)) => match s.as_str() {
            "NaN" => Ok(Some(f64::NAN)),
            "Infinity" => Ok(Some(f64::INFINITY)),
            "-Infinity" => Ok(Some(f64::NEG_INFINITY)),
            other => other
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| D::Error::custom(format!("'{s}' is not a number"))),
        },
    }
}

/// A string field that may also arrive as a number (`"version": 1`).
pub fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Str(String),
        Int(i64),
        Float(f64),
        Bool(bool),
    }
    Ok(Option::<Scalar>::deserialize(d)?.map(|t| match t {
        Scalar::Str(s) => s,
        Scalar::Int(n) => n.to_string(),
        Scalar::Float(f) => f.to_string(),
        Scalar::Bool(b) => b.to_string(),
    }))
}

/// How MLflow's tracking store keeps a metric value: NaN as NaN, ±∞ as ±`f64::MAX` (it never
/// stores infinities).
pub fn stored_metric_value(v: f64) -> f64 {
    if v.is_infinite() {
        f64::MAX.copysign(v)
    } else {
        v
    }
}

/// A metric value as MLflow writes it: NaN as the string `"NaN"`, ±∞ as `"Infinity"` /
/// `"-Infinity"`, anything else as a number.
pub fn metric_value(v: f64) -> Value {
    if v.is_nan() {
        json!("NaN")
    } else if v.is_infinite() {
        json!(if v > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        json!(v)
    }
}

/// [`metric_value`] for `#[serde(serialize_with)]`.
pub fn serialize_metric_value<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    metric_value(*v).serialize(s)
}

/// The JSON response for a message: `200` with the value.
pub fn json<T: Serialize>(value: T) -> Response {
    axum::Json(value).into_response()
}

/// A response of JSON already written.
pub fn json_bytes(body: Vec<u8>) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// MLflow's response for an RPC with an empty response message.
pub fn empty() -> Response {
    axum::Json(serde_json::json!({})).into_response()
}

/// Puts `value` under `key` unless it is an empty list, as protobuf leaves empty repeated fields
/// out.
pub fn put_list(object: &mut Map<String, Value>, key: &str, value: Value) {
    if value.as_array().is_some_and(|a| !a.is_empty()) {
        object.insert(key.to_string(), value);
    }
}

/// Tags as MLflow writes them: `[{"key": ..., "value": ...}]`.
pub fn tags_json(tags: &[Tag]) -> Value {
    Value::Array(
        tags.iter()
            .map(|t| json!({"key": t.key, "value": t.value}))
            .collect(),
    )
}

/// A `{"key", "value"}` pair as the client sends it (value may be absent or not a string).
#[derive(Debug, Deserialize)]
pub struct KeyValue {
    #[serde(default)]
    key: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    value: Option<String>,
}

/// Pairs with a key each (MLflow names a missing one, e.g. `tags[2].key`); an absent value is
/// the empty string.
pub fn tags_from(list: Vec<KeyValue>, field: &str) -> MlflowResult<Vec<Tag>> {
    list.into_iter()
        .enumerate()
        .map(|(i, kv)| {
            Ok(Tag {
                key: required(&kv.key, &format!("{field}[{i}].key"))?.to_string(),
                value: kv.value.unwrap_or_default(),
            })
        })
        .collect()
}

/// An experiment id must be an integer (MLflow 3 answers others with a 400).
pub fn check_experiment_id(id: &str) -> MlflowResult<()> {
    if id.trim().parse::<i64>().is_err() {
        return Err(MlflowError::invalid(format!(
            "Invalid experiment ID '{id}'. Experiment ID must be a valid integer."
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Probe {
        #[serde(default, deserialize_with = "lenient_i64")]
        n: Option<i64>,
        #[serde(default, deserialize_with = "lenient_f64")]
        x: Option<f64>,
        #[serde(default, deserialize_with = "lenient_string")]
        s: Option<String>,
    }

    fn probe(json: &str) -> Result<Probe, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn int64_and_double_fields_take_protobufs_json_forms() {
        let p = probe(r#"{"n": "1700000000000", "x": "NaN", "s": 3}"#).unwrap();
        assert_eq!(p.n, Some(1_700_000_000_000));
        assert!(p.x.unwrap().is_nan());
        assert_eq!(p.s.as_deref(), Some("3"));
        let p = probe(r#"{"n": 5.0, "x": "-Infinity", "unknown": [1]}"#).unwrap();
        assert_eq!(p.n, Some(5));
        assert_eq!(p.x, Some(f64::NEG_INFINITY));
        assert_eq!(p.s, None);
        assert_eq!(probe(r#"{"x": "0.25"}"#).unwrap().x, Some(0.25));
        assert!(probe(r#"{"n": "ten"}"#).is_err());
        assert!(probe(r#"{"n": 1.5}"#).is_err());
        assert!(probe(r#"{"x": "abc"}"#).is_err());
    }

    #[test]
    fn metric_values_are_stored_and_written_as_mlflow_does() {
        assert_eq!(stored_metric_value(f64::INFINITY), f64::MAX);
        assert_eq!(stored_metric_value(f64::NEG_INFINITY), -f64::MAX);
        assert!(stored_metric_value(f64::NAN).is_nan());
        #[derive(Serialize)]
        struct V(#[serde(serialize_with = "serialize_metric_value")] f64);
        assert_eq!(serde_json::to_string(&V(f64::NAN)).unwrap(), r#""NaN""#);
        assert_eq!(serde_json::to_string(&V(0.5)).unwrap(), "0.5");
        assert_eq!(
            serde_json::to_string(&V(f64::MAX)).unwrap(),
            "1.7976931348623157e+308"
        );
    }
}
