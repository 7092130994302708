//! Input rules shared by the registry's operations, with MLflow's limits so that a client written
//! against MLflow sees the same refusals here.

use crate::error::{Error, Result};

/// Longest metric, param or tag key MLflow accepts.
pub const MAX_KEY_LENGTH: usize = 250;
/// Longest param value (MLflow 2.x and 3.x).
pub const MAX_PARAM_VALUE_LENGTH: usize = 6000;
/// Longest run tag value.
pub const MAX_TAG_VALUE_LENGTH: usize = 8000;
/// Longest experiment tag value (MLflow 3).
pub const MAX_EXPERIMENT_TAG_VALUE_LENGTH: usize = 20_000;
/// Longest tag value of a registered model or model version (MLflow 3).
pub const MAX_REGISTRY_TAG_VALUE_LENGTH: usize = 100_000;
/// Most entries of each kind, and in all, in one logged batch.
pub const MAX_BATCH_METRICS: usize = 1000;
/// See [`MAX_BATCH_METRICS`].
pub const MAX_BATCH_PARAMS: usize = 100;
/// See [`MAX_BATCH_METRICS`].
pub const MAX_BATCH_TAGS: usize = 100;
/// See [`MAX_BATCH_METRICS`].
pub const MAX_BATCH_TOTAL: usize = 1000;
/// Longest experiment, run or model name.
pub const MAX_NAME_LENGTH: usize = 500;

/// A metric, param or tag key: 1-250 characters of letters, digits, `_ - . / :` and space, that
/// names the same thing when read as a relative file path, as MLflow requires.
pub fn key(kind: &str, key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::invalid(format!("{kind} key must not be empty")));
    }
    match key_problem(key) {
        None => Ok(()),
        Some(problem) => Err(Error::invalid(format!(
            "Invalid {kind} name: '{key}'. {problem}"
        ))),
    }
}

/// What is wrong with a non-empty key under MLflow's rules, in MLflow's words; `None` if nothing.
pub fn key_problem(key: &str) -> Option<String> {
    let length = key.chars().count();
    if length > MAX_KEY_LENGTH {
        return Some(format!(
            "Names may be at most {MAX_KEY_LENGTH} characters long; this one has {length}."
        ));
    }
    if !key
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ' ' | '/' | ':'))
    {
        return Some(
            "Names may only contain alphanumerics, underscores (_), dashes (-), periods (.), \
             spaces ( ), colon(:) and slashes (/)."
                .to_string(),
        );
    }
    // Keys become file names in places: `a//b`, `a/./b`, `a/`, `../x` or `/x` would name
    // another file than they spell.
    let segments: Vec<&str> = key.split('/').collect();
    if key.starts_with("..")
        || segments
            .iter()
            .any(|s| s.is_empty() || *s == "." || *s == "..")
    {
        let mut resolved: Vec<&str> = Vec::new();
        for s in &segments {
            match *s {
                "" | "." => {}
                ".." if resolved.last().is_some_and(|l| *l != "..") => {
                    resolved.pop();
                }
                other => resolved.push(other),
            }
        }
        let resolved = if key.starts_with('/') {
            format!("/{}", resolved.join("/"))
        } else if resolved.is_empty() {
            ".".to_string()
        } else {
            resolved.join("/")
        };
        return Some(format!(
            "Names may be treated as files in certain cases, and must not resolve to other \
             names when treated as such. This name would resolve to '{resolved}'"
        ));
    }
    None
}

/// A value no longer than `max` characters.
pub fn value_length(kind: &str, key: &str, value: &str, max: usize) -> Result<()> {
    let len = value.chars().count();
    if len > max {
        return Err(Error::invalid(format!(
            "{kind} '{key}' has a value of {len} characters; the limit is {max}"
        )));
    }
    Ok(())
}

/// A non-empty name of bounded length, free of control characters.
pub fn name(kind: &str, name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(Error::invalid(format!("{kind} name must not be empty")));
    }
    if name.chars().count() > MAX_NAME_LENGTH {
        return Err(Error::invalid(format!(
            "{kind} name is longer than {MAX_NAME_LENGTH} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "{kind} name must not contain control characters"
        )));
    }
    Ok(())
}

/// A relative artifact path: no empty, `.` or `..` segments, not absolute, no NUL, no backslash,
/// no control characters. Returns the path without a trailing slash.
pub fn artifact_path(path: &str) -> Result<&str> {
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    let refuse = |why: &str| {
        Err(Error::invalid(format!(
            "invalid artifact path {path:?}: {why}"
        )))
    };
    if trimmed.is_empty() {
        return refuse("it is empty");
    }
    if trimmed.starts_with('/') {
        return refuse("it must be relative, not absolute");
    }
    if trimmed.contains('\0') {
        return refuse("it contains a NUL byte");
    }
    if trimmed.contains('\\') {
        return refuse("it contains a backslash");
    }
    if trimmed.chars().any(char::is_control) {
        return refuse("it contains a control character");
    }
    if trimmed.len() > 1024 {
        return refuse("it is longer than 1024 bytes");
    }
    for seg in trimmed.split('/') {
        match seg {
            "" => return refuse("it has an empty segment ('//')"),
            "." | ".." => return refuse("it has a '.' or '..' segment"),
            _ => {}
        }
    }
    Ok(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_mlflow_rules() {
        for ok in [
            "loss", "val/loss", "a b", "x-1.2_y", "größe", "ns:loss", "a..b",
        ] {
            assert!(key("metric", ok).is_ok(), "{ok}");
        }
        assert!(key("metric", "").is_err());
        assert!(
            key("metric", "a;b")
                .unwrap_err()
                .to_string()
                .contains("Names may only contain")
        );
        for (bad, resolved) in [
            ("../x", "'../x'"),
            ("/abs", "'/abs'"),
            ("a//b", "'a/b'"),
            ("a/./b", "'a/b'"),
            ("a/", "'a'"),
            ("a/../b", "'b'"),
            (".", "'.'"),
            ("..x", "'..x'"),
        ] {
            let err = key("param", bad).unwrap_err().to_string();
            assert!(
                err.contains(&format!("would resolve to {resolved}")),
                "{bad}: {err}"
            );
        }
        assert!(
            key("tag", &"k".repeat(251))
                .unwrap_err()
                .to_string()
                .contains("250")
        );
        assert!(key("tag", &"k".repeat(250)).is_ok());
    }

    #[test]
    fn artifact_paths_never_escape() {
        assert_eq!(artifact_path("model/model.pkl").unwrap(), "model/model.pkl");
        assert_eq!(artifact_path("dir/").unwrap(), "dir");
        for (bad, why) in [
            ("../etc/passwd", "'..'"),
            ("a/../../b", "'..'"),
            ("/etc/passwd", "absolute"),
            ("a\0b", "NUL"),
            ("a\\..\\b", "backslash"),
            ("a//b", "empty segment"),
            ("./a", "'.'"),
            ("", "empty"),
        ] {
            let err = artifact_path(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn values_are_bounded() {
        assert!(value_length("param", "k", &"v".repeat(6000), MAX_PARAM_VALUE_LENGTH).is_ok());
        assert!(value_length("param", "k", &"v".repeat(6001), MAX_PARAM_VALUE_LENGTH).is_err());
    }
}
