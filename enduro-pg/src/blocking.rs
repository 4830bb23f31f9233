//! [`BlockingPgStore`]: the async store driven by a private runtime, for blocking code.

use std::fmt;
use std::future::Future;

use enduro_core::{
    AsyncStore, Committed, Encoder, Error, Observed, Result, Snapshot, Store, Version,
};
use tokio::runtime::{Handle, Runtime};

use crate::store::PgStore;

/// The PostgreSQL [`Store`] for blocking code (`Atom`), in the manner of the `postgres`
/// crate over `tokio-postgres`: a [`PgStore`] whose queries run on a private tokio runtime
/// (one worker thread that keeps the pooled connections alive).
///
/// It works from plain `main`, with no runtime of your own. Called from inside a tokio
/// runtime (where blocking on a future would panic), each call runs on a short-lived
/// helper thread instead, so it works there too — it blocks the calling task, though, so
/// async code should prefer `AsyncAtom` over [`PgStore`].
///
/// ```no_run
/// use enduro_core::{Atom, Options};
///
/// let store = enduro_pg::PgStore::builder("postgres://app@localhost/app", "atoms")
///     .key("settings")
///     .open_blocking()?;
/// let atom = Atom::open(store, vec!["dark-mode".to_string()], Options::new())?;
/// atom.swap(|v| [v.clone(), vec!["beta".into()]].concat())?;
/// # Ok::<(), enduro_core::Error>(())
/// ```
pub struct BlockingPgStore {
    store: PgStore,
    /// Always `Some` until dropped.
    runtime: Option<Runtime>,
}

impl fmt::Debug for BlockingPgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingPgStore")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl BlockingPgStore {
    /// Starts the private runtime and creates the table if it is missing.
    pub(crate) fn open(store: PgStore) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("enduro-pg")
            .enable_all()
            .build()
            .map_err(|e| Error::Backend {
                resource: store.resource(),
                message: format!("cannot start the runtime for blocking PostgreSQL calls: {e}"),
                source: Some(Box::new(e)),
            })?;
        let blocking = BlockingPgStore {
            store,
            runtime: Some(runtime),
        };
        blocking.run(blocking.store.ensure_table())?;
        Ok(blocking)
    }

    /// The async store underneath (its key, table and pool).
    ///
    /// ```no_run
    /// let store = enduro_pg::PgStore::builder("postgres://localhost/app", "t").open_blocking()?;
    /// assert_eq!(store.store().table(), r#""t""#);
    /// # Ok::<(), enduro_core::Error>(())
    /// ```
    pub fn store(&self) -> &PgStore {
        &self.store
    }

    /// Runs `work` to completion on the private runtime. Inside another runtime, where
    /// `block_on` panics, it does so from a helper thread.
    fn run<R: Send>(&self, work: impl Future<Output = Result<R>> + Send) -> Result<R> {
        let Some(runtime) = self.runtime.as_ref() else {
            return Err(self.unavailable("the runtime is shut down"));
        };
        if Handle::try_current().is_err() {
            return runtime.block_on(work);
        }
        std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("enduro-pg-blocking".into())
                .spawn_scoped(scope, || runtime.block_on(work))
                .map_err(|e| self.unavailable(&format!("cannot start a helper thread: {e}")))?
                .join()
                .unwrap_or_else(|_| Err(self.unavailable("the helper thread panicked")))
        })
    }

    fn unavailable(&self, why: &str) -> Error {
        Error::Backend {
            resource: self.store.resource(),
            message: format!("cannot run a blocking PostgreSQL call: {why}"),
            source: None,
        }
    }
}

impl Drop for BlockingPgStore {
    fn drop(&mut self) {
        // Never blocks, so dropping the store inside an async context cannot panic.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Store for BlockingPgStore {
    fn resource(&self) -> String {
        self.store.resource()
    }

    fn load(&self) -> Result<Option<Snapshot>> {
        self.run(self.store.load())
    }

    fn check(&self, known: Version) -> Result<Observed> {
        self.run(self.store.check(known))
    }

    fn commit(&self, expected: Version, encode: Encoder<'_>) -> Result<Committed> {
        let mut bytes = Vec::new();
        encode(&mut bytes)?;
        self.run(self.store.commit_bytes(expected, bytes))
    }

    fn release(&self) -> Result<()> {
        self.run(self.store.release())
    }

    fn cheap_check(&self) -> bool {
        self.store.cheap_check()
    }
}
