//! The opt-in background commit mode: swaps return once the new value is in memory, and a
//! committer thread writes the latest value; `flush` waits for what was acknowledged.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::state::{Core, lock};
use crate::store::{Committed, Store, Version};
use crate::value::Value;

struct State<T> {
    /// The latest value not yet handed to the committer.
    pending: Option<Arc<T>>,
    /// How many changes were acknowledged, and how many of them are durable.
    acknowledged: u64,
    durable: u64,
    /// The store version the committer writes over.
    version: Version,
    /// The last write failure, until a write succeeds.
    error: Option<Error>,
    /// Why the committer stopped for good before it was asked to (it panicked).
    dead: Option<Error>,
    shutdown: bool,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    changed: Condvar,
}

/// The committer of one atom in background mode.
pub(crate) struct Background<T> {
    shared: Arc<Shared<T>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// How long the committer waits before retrying a failed write.
const RETRY_AFTER: Duration = Duration::from_millis(50);

impl<T: Value> Background<T> {
    pub(crate) fn start(core: Arc<Core<T>>, store: Arc<dyn Store>) -> Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                pending: None,
                acknowledged: 0,
                durable: 0,
                version: core.current().1,
                error: None,
                dead: None,
                shutdown: false,
            }),
            changed: Condvar::new(),
        });
        let committer = Arc::clone(&shared);
        let resource = core.resource().to_owned();
        let thread = thread::Builder::new()
            .name("enduro-committer".into())
            .spawn(move || {
                let _watch = Lifeline(&committer, &core);
                committer.run(&core, &*store)
            })
            .map_err(|e| Error::Backend {
                resource,
                message: "cannot start the background committer thread".into(),
                source: Some(Box::new(e)),
            })?;
        Ok(Background {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Hands a new value (already published) to the committer.
    pub(crate) fn acknowledge(&self, value: Arc<T>) {
        let mut state = self.shared.lock();
        state.pending = Some(value);
        state.acknowledged += 1;
        self.shared.changed.notify_all();
    }

    /// Waits until every change acknowledged before the call is durable, or a write
    /// failed (the committer keeps retrying; the error is returned here).
    pub(crate) fn flush(&self) -> Result<()> {
        let mut state = self.shared.lock();
        let target = state.acknowledged;
        loop {
            if state.durable >= target {
                return Ok(());
            }
            if let Some(error) = state.dead.as_ref().or(state.error.as_ref()) {
                return Err(error.echo());
            }
            if state.shutdown {
                return Err(Error::Released);
            }
            state = self.shared.wait(state);
        }
    }

    /// Fails if the committer stopped for good (it panicked): a change acknowledged now
    /// would never be written.
    pub(crate) fn ensure_running(&self) -> Result<()> {
        match &self.shared.lock().dead {
            Some(error) => Err(error.echo()),
            None => Ok(()),
        }
    }

    /// Takes the store version a refresh found, so the next write goes over it.
    pub(crate) fn set_version(&self, version: Version) {
        self.shared.lock().version = version;
    }
}

impl<T> Drop for Background<T> {
    /// Dropping the last handle flushes: the committer writes what is pending, then stops.
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.changed.notify_all();
        if let Some(thread) = lock(&self.thread).take() {
            let _ = thread.join();
        }
    }
}

/// Watches the committer thread: if it ends by a panic (in the store; encoding failures,
/// panics in `Serialize` included, are errors), `flush` and every later change report it
/// instead of waiting forever for writes that will never happen.
struct Lifeline<'a, T: Value>(&'a Shared<T>, &'a Core<T>);

impl<T: Value> Drop for Lifeline<'_, T> {
    fn drop(&mut self) {
        if thread::panicking() {
            let mut state = self.0.lock();
            state.dead = Some(Error::Backend {
                resource: self.1.resource().to_owned(),
                message: "the background committer stopped: it panicked while writing; \
                          changes since the last successful flush were not written"
                    .into(),
                source: None,
            });
            self.0.changed.notify_all();
        }
    }
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        lock(&self.state)
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, State<T>>) -> MutexGuard<'a, State<T>> {
        self.changed.wait(guard).unwrap_or_else(|e| e.into_inner())
    }
}

impl<T: Value> Shared<T> {
    fn run(&self, core: &Core<T>, store: &dyn Store) {
        loop {
            let mut state = self.lock();
            while state.pending.is_none() && !state.shutdown {
                state = self.wait(state);
            }
            let Some(value) = state.pending.take() else {
                return; // shut down with nothing left to write
            };
            let (seq, version, last_try) = (state.acknowledged, state.version, state.shutdown);
            drop(state);

            let written = write(core, store, version, &value);
            let mut state = self.lock();
            match written {
                Ok(version) => {
                    core.set_version(version);
                    state.version = version;
                    state.durable = seq;
                    state.error = None;
                }
                Err(error) => {
                    if last_try {
                        eprintln!(
                            "enduro: the last value of {} could not be written before the atom was dropped: {error}",
                            core.resource()
                        );
                        state.error = Some(error);
                        self.changed.notify_all();
                        return;
                    }
                    // Keep the value (unless a newer one came) and try again shortly.
                    state.pending.get_or_insert(value);
                    state.error = Some(error);
                    self.changed.notify_all();
                    drop(state);
                    thread::sleep(RETRY_AFTER);
                    continue;
                }
            }
            self.changed.notify_all();
        }
    }
}

/// Writes `value` over `version`; another writer's commit is overwritten (last writer
/// wins), a deleted resource stops the committer with `Released`.
fn write<T: Value>(
    core: &Core<T>,
    store: &dyn Store,
    mut version: Version,
    value: &T,
) -> Result<Version> {
    loop {
        match store.commit(version, &mut |out| core.encode(value, out))? {
            Committed::Done(version) => return Ok(version),
            Committed::Conflict => match store.load()? {
                Some(snapshot) => version = snapshot.version,
                None => return Err(core.mark_released()),
            },
        }
    }
}
