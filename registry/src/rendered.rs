//! Runs as a caller rendered them (MLflow's JSON of a run with its logged-model links), kept
//! between searches. On SQLite, triggers move a run's `data_version` on every write to anything the
//! rendering shows (migration 0013), and a search reads each page run's id and version in the
//! query that orders the page, in the read transaction that would load its data: an entry is used
//! only for the very run and version it was rendered from, and a run whose version moved is read
//! and rendered again. A search then costs the query that finds and orders its runs, and the
//! lookups and rendering of the runs that changed since the last search showed them.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;

/// Rendered runs by run, up to a budget of bytes (when full, it is emptied and fills again with
/// the runs searched next).
#[derive(Debug)]
pub struct RenderedRuns {
    budget: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// By the run's row id.
    runs: HashMap<i64, Entry>,
    bytes: usize,
}

#[derive(Debug)]
struct Entry {
    /// The run's id: a row id can be used again by a run created after one was deleted.
    uuid: String,
    version: i64,
    body: Bytes,
}

impl RenderedRuns {
    /// Room for about 50,000 runs of MLflow's JSON with a few params, tags and metrics each.
    pub const DEFAULT_BUDGET: usize = 32 << 20;

    pub fn new(budget: usize) -> RenderedRuns {
        RenderedRuns {
            budget,
            inner: Mutex::default(),
        }
    }

    /// The rendering of run `id` (`uuid`) at `version`, if kept.
    pub(crate) fn get(&self, id: i64, uuid: &str, version: i64) -> Option<Bytes> {
        let inner = self.inner.lock().expect("not poisoned");
        inner
            .runs
            .get(&id)
            .filter(|e| e.version == version && e.uuid == uuid)
            .map(|e| e.body.clone())
    }

    /// Keeps the rendering of run `id` (`uuid`) at `version`, replacing an older one.
    pub(crate) fn put(&self, id: i64, uuid: &str, version: i64, body: Bytes) {
        let size = body.len() + uuid.len() + 64;
        if size > self.budget {
            return;
        }
        let mut inner = self.inner.lock().expect("not poisoned");
        if let Some(old) = inner.runs.remove(&id) {
            inner.bytes -= old.body.len() + old.uuid.len() + 64;
        }
        if inner.bytes + size > self.budget {
            inner.runs.clear();
            inner.bytes = 0;
        }
        inner.bytes += size;
        inner.runs.insert(
            id,
            Entry {
                uuid: uuid.to_string(),
                version,
                body,
            },
        );
    }

    /// How many runs are kept.
    pub fn len(&self) -> usize {
        self.inner.lock().expect("not poisoned").runs.len()
    }

    /// Whether no run is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for RenderedRuns {
    fn default() -> Self {
        RenderedRuns::new(RenderedRuns::DEFAULT_BUDGET)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_serves_only_its_run_and_version() {
        let cache = RenderedRuns::new(1 << 20);
        cache.put(1, "a", 3, Bytes::from_static(b"run a v3"));
        assert_eq!(cache.get(1, "a", 3).as_deref(), Some(&b"run a v3"[..]));
        assert_eq!(cache.get(1, "a", 4), None, "a moved version");
        assert_eq!(cache.get(1, "b", 3), None, "another run on the same row id");
        assert_eq!(cache.get(2, "a", 3), None);
        cache.put(1, "a", 4, Bytes::from_static(b"run a v4"));
        assert_eq!(cache.get(1, "a", 3), None);
        assert_eq!(cache.get(1, "a", 4).as_deref(), Some(&b"run a v4"[..]));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_full_cache_starts_again() {
        // Each entry costs its body, its id and 64 bytes: three of 100 fit in 300, a fourth not.
        let cache = RenderedRuns::new(300);
        let body = Bytes::from(vec![b'x'; 100 - 1 - 64]);
        for id in 0..3 {
            cache.put(id, "r", 0, body.clone());
        }
        assert_eq!(cache.len(), 3);
        // Replacing an entry frees its room first.
        cache.put(2, "r", 1, body.clone());
        assert_eq!(cache.len(), 3);
        cache.put(3, "r", 0, body.clone());
        cache.put(4, "r", 0, body.clone());
        assert_eq!(
            cache.len(),
            2,
            "emptied when the fourth did not fit, then refilled"
        );
        assert!(cache.get(4, "r", 0).is_some() && cache.get(0, "r", 0).is_none());
        // A rendering larger than the whole budget is not kept.
        cache.put(9, "r", 0, Bytes::from(vec![b'x'; 600]));
        assert!(cache.get(9, "r", 0).is_none());
    }
}
