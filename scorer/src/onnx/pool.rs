//! A small pool of sessions for one model.
//!
//! `Session::run` takes `&mut self` (ONNX Runtime's internals are not all thread-safe), while the
//! server scores several requests at once. Each session holds its own copy of the model, so the
//! pool grows on demand, one session per concurrent caller up to a bound, and callers beyond it
//! wait for a session to come back.

use std::sync::{Condvar, Mutex, PoisonError};

use ort::session::Session;

use super::OnnxRuntime;

/// How to make another session of the same model.
pub(crate) struct SessionRecipe {
    pub runtime: OnnxRuntime,
    /// The model bytes; kept only when the pool may grow past its first session.
    pub bytes: Option<Vec<u8>>,
    pub intra_threads: usize,
}

impl SessionRecipe {
    /// Opens a session of `bytes`, with refit's thread settings: `intra_threads` inside an
    /// operator, and operators run one after another (refit parallelises across requests).
    pub(crate) fn open(&self, bytes: &[u8]) -> ort::Result<Session> {
        Session::builder(self.runtime.environment())?
            .with_intra_threads(self.intra_threads)?
            .with_inter_threads(1)?
            .with_parallel_execution(false)?
            .commit_from_memory(bytes)
    }
}

struct State {
    idle: Vec<Session>,
    open: usize,
}

pub(crate) struct SessionPool {
    recipe: SessionRecipe,
    max: usize,
    state: Mutex<State>,
    returned: Condvar,
}

impl SessionPool {
    /// A pool holding `first`, growing to at most `max` sessions.
    pub(crate) fn new(first: Session, recipe: SessionRecipe, max: usize) -> SessionPool {
        SessionPool {
            max: if recipe.bytes.is_some() {
                max.max(1)
            } else {
                1
            },
            recipe,
            state: Mutex::new(State {
                idle: vec![first],
                open: 1,
            }),
            returned: Condvar::new(),
        }
    }

    /// Runs `f` with a session of its own.
    pub(crate) fn with_session<T>(&self, f: impl FnOnce(&mut Session) -> T) -> T {
        let mut lease = Lease {
            pool: self,
            session: Some(self.acquire()),
        };
        f(lease
            .session
            .as_mut()
            .expect("a lease holds its session until dropped"))
    }

    fn acquire(&self) -> Session {
        let mut state = self.lock();
        let mut grow = true;
        loop {
            if let Some(session) = state.idle.pop() {
                return session;
            }
            if grow
                && state.open < self.max
                && let Some(bytes) = &self.recipe.bytes
            {
                state.open += 1;
                drop(state);
                // The model opened once already; should it fail now (memory), wait for one of
                // the open sessions instead.
                match self.recipe.open(bytes) {
                    Ok(session) => return session,
                    Err(_) => {
                        grow = false;
                        state = self.lock();
                        state.open -= 1;
                        continue;
                    }
                }
            }
            state = self
                .returned
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sessions open now.
    pub(crate) fn sessions(&self) -> usize {
        self.lock().open
    }
}

/// A session out of the pool; goes back when dropped, also on a panic.
struct Lease<'p> {
    pool: &'p SessionPool,
    session: Option<Session>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            self.pool.lock().idle.push(session);
            self.pool.returned.notify_one();
        }
    }
}
