//! Page tokens: opaque to clients, and only accepted for the query they were issued for.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Largest page any listing returns.
pub const MAX_PAGE_SIZE: i64 = 50_000;

/// A window into an ordered result: where it starts and how much of it to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Rows to skip.
    pub offset: i64,
    /// Rows to return.
    pub limit: i64,
}

/// Reads `token` (absent means the first page) for a query described by `fingerprint`: any
/// string that differs whenever the filter, order or scope of the query differs.
pub fn start(token: Option<&str>, max_results: i64, fingerprint: &str) -> Result<Page> {
    if !(1..=MAX_PAGE_SIZE).contains(&max_results) {
        return Err(Error::invalid(format!(
            "max_results must be between 1 and {MAX_PAGE_SIZE}, got {max_results}"
        )));
    }
    let offset = match token.filter(|t| !t.is_empty()) {
        None => 0,
        Some(token) => decode(token, fingerprint)?,
    };
    Ok(Page {
        offset,
        limit: max_results,
    })
}

/// The token for the page after `page`, if the current page was full (`fetched` rows).
pub fn next(page: Page, fetched: usize, fingerprint: &str) -> Option<String> {
    (fetched as i64 >= page.limit).then(|| encode(page.offset + page.limit, fingerprint))
}

fn tag(offset: i64, fingerprint: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"refit-page-token\0")
        .chain_update(offset.to_le_bytes())
        .chain_update(fingerprint.as_bytes())
        .finalize();
    hex::encode(&digest[..8])
}

fn encode(offset: i64, fingerprint: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{offset}:{}", tag(offset, fingerprint)))
}

fn decode(token: &str, fingerprint: &str) -> Result<i64> {
    let refuse = || {
        Error::invalid(format!(
            "Invalid page token '{token}': it was not issued by this server for this query"
        ))
    };
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| refuse())?;
    let text = std::str::from_utf8(&bytes).map_err(|_| refuse())?;
    let (offset, check) = text.split_once(':').ok_or_else(refuse)?;
    let offset: i64 = offset.parse().map_err(|_| refuse())?;
    if offset < 0 || check != tag(offset, fingerprint) {
        return Err(refuse());
    }
    Ok(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_for_the_same_query_only() {
        let page = start(None, 10, "q1").unwrap();
        assert_eq!(
            page,
            Page {
                offset: 0,
                limit: 10
            }
        );
        assert_eq!(next(page, 9, "q1"), None);
        let token = next(page, 10, "q1").unwrap();
        assert_eq!(start(Some(&token), 10, "q1").unwrap().offset, 10);
        assert!(start(Some(&token), 10, "q2").is_err());
    }

    #[test]
    fn foreign_tokens_are_refused() {
        for bad in [
            "garbage!",
            "eyJvZmZzZXQiOiAxMDB9",
            &URL_SAFE_NO_PAD.encode("5:0000000000000000"),
        ] {
            let err = start(Some(bad), 10, "q").unwrap_err().to_string();
            assert!(err.contains("Invalid page token"), "{err}");
        }
        assert!(start(None, 0, "q").is_err());
        assert!(start(None, MAX_PAGE_SIZE + 1, "q").is_err());
    }
}
