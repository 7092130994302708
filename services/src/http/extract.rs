//! Request extractors that answer bad input in the API's error shape: JSON bodies (optionally
//! gzip-compressed, bounded before and after decompression), query strings and path parameters.

use std::io::Read;

use axum::body::{Body, HttpBody};
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_ENCODING;
use axum::http::request::Parts;
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::state::AppState;

/// A JSON body deserialized into `T`. Refuses bodies over the configured limit (413), compression
/// bombs (413, checked while inflating), unknown encodings (415), malformed JSON and wrong types
/// (400, naming the path of the offending field).
#[derive(Debug, Clone)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let limit = AppState::from_ref(state).config.max_body_size as usize;
        let bytes = read_body(req, limit).await?;
        parse_json(&bytes).map(Json)
    }
}

/// Reads a whole body into memory, gunzipping it if it says so, never beyond `limit` bytes.
pub async fn read_body(req: Request, limit: usize) -> Result<Vec<u8>, ApiError> {
    let encoding = req
        .headers()
        .get(CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    let raw = collect_limited(req.into_body(), limit).await?;
    match encoding.as_deref() {
        None | Some("identity") | Some("") => Ok(raw),
        Some("gzip") | Some("x-gzip") => inflate(&raw, limit),
        Some(other) => Err(ApiError::new(
            axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            format!("unsupported Content-Encoding '{other}': send identity or gzip"),
        )),
    }
}

async fn collect_limited(body: Body, limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut body = body;
    // A body that says its length (Content-Length) is read into one buffer of that size (up to
    // the limit), instead of one grown, and copied, as the body's pieces come in.
    let expected = body.size_hint().upper().unwrap_or(0).min(limit as u64);
    let mut out = Vec::with_capacity(expected as usize);
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| ApiError::invalid(format!("could not read the request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                return Err(too_large(limit));
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

fn inflate(compressed: &[u8], limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut decoder = flate2::read::GzDecoder::new(compressed).take(limit as u64 + 1);
    let mut out = Vec::new();
    decoder
        .read_to_end(&mut out)
        .map_err(|e| ApiError::invalid(format!("the gzip request body is corrupt: {e}")))?;
    if out.len() > limit {
        return Err(too_large(limit));
    }
    Ok(out)
}

fn too_large(limit: usize) -> ApiError {
    ApiError::too_large(format!(
        "the request body is larger than the limit of {limit} bytes (after decompression)"
    ))
}

/// Deserializes JSON, reporting where a wrong type or missing field is.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let what = if inner.is_syntax() || inner.is_eof() {
            "malformed JSON"
        } else {
            "invalid request"
        };
        if path.is_empty() || path == "." {
            ApiError::invalid(format!("{what}: {inner}"))
        } else {
            ApiError::invalid(format!("{what}: at '{path}': {inner}"))
        }
    })?;
    // Anything but whitespace after the value makes the body malformed (`serde_json::from_slice`
    // checks this too; deserializing through a `Deserializer` does not).
    de.end()
        .map_err(|e| ApiError::invalid(format!("malformed JSON: {e}")))?;
    Ok(value)
}

/// A query string deserialized into `T`, refusing bad values with a 400 in the API's shape.
#[derive(Debug, Clone)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| ApiError::invalid(format!("invalid query string: {}", e.body_text())))
    }
}

/// Path parameters deserialized into `T`, refusing bad values with a 400 in the API's shape.
#[derive(Debug, Clone)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|e| ApiError::invalid(format!("invalid path parameter: {}", e.body_text())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Point {
        key: String,
        value: f64,
    }

    #[test]
    fn json_errors_name_the_field() {
        let err = parse_json::<Point>(br#"{"key": "a", "value": "x"}"#).unwrap_err();
        assert_eq!(err.code, "INVALID_PARAMETER_VALUE");
        assert!(err.message.contains("at 'value'"), "{}", err.message);
        let err = parse_json::<Point>(br#"{"key": "a"}"#).unwrap_err();
        assert!(
            err.message.contains("missing field `value`"),
            "{}",
            err.message
        );
        let err = parse_json::<Point>(br#"{"key": "a", "#).unwrap_err();
        assert!(err.message.starts_with("malformed JSON"), "{}", err.message);
        let err = parse_json::<Point>(br#"{"key": "a", "value": 1} {}"#).unwrap_err();
        assert!(
            err.message.contains("trailing characters"),
            "{}",
            err.message
        );
        assert!(parse_json::<Point>(b"{\"key\": \"a\", \"value\": 1}\n ").is_ok());
    }

    #[test]
    fn gzip_bombs_stop_at_the_limit() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![b' '; 10 << 20]).unwrap();
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < 64 << 10);
        let err = inflate(&bomb, 1 << 20).unwrap_err();
        assert_eq!(err.code, "REQUEST_TOO_LARGE");
        assert_eq!(inflate(&bomb, 11 << 20).unwrap().len(), 10 << 20);
        assert!(inflate(b"not gzip", 100).is_err());
    }
}
