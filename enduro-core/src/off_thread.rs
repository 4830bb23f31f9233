//! [`OffThread`]: a blocking store as an async one, each call on tokio's blocking pool.

use std::fmt;
use std::sync::Arc;

use tokio::runtime::Handle;

use crate::async_atom::{AsyncStore, BoxFuture, Deferred};
use crate::error::{Error, Result};
use crate::state::panic_message;
use crate::store::{
    Committed, Nudge, Observed, Replay, Snapshot, Store, Subscription, Version, commit_bytes,
    commit_ops_deferred,
};

/// Any blocking [`Store`] as an [`AsyncStore`]: each call runs on the blocking thread pool
/// of the tokio runtime it was made in (`spawn_blocking`), so waiting for a disk or for
/// another process's lock never holds up the runtime's own threads — a current-thread
/// runtime keeps serving meanwhile. This is how async file atoms are made
/// (`FileAtom::builder(path).open_async(init)`).
///
/// Cancel-safe: a call whose future is dropped runs to its end on its pool thread all the
/// same, so a commit is never left half done and a lock it took is released; its result
/// is dropped. (The [`AsyncAtom`](crate::AsyncAtom) on top hands an unfinished commit to
/// its next caller, so no other swap is ever applied twice.)
///
/// ```
/// use enduro::store::OffThread;
/// use enduro::{AsyncAtom, MemStore, Options};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = OffThread::new(MemStore::new())?;
/// let atom = AsyncAtom::open(store, 1u32, Options::new()).await?;
/// assert_eq!(*atom.swap(|n| n + 1).await?, 2);
/// # Ok::<(), enduro::Error>(())
/// # }).unwrap();
/// ```
pub struct OffThread<S> {
    store: Arc<S>,
    runtime: Handle,
}

impl<S: fmt::Debug> fmt::Debug for OffThread<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OffThread")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl<S: Store> OffThread<S> {
    /// Wraps `store`, running its calls on the blocking pool of the current tokio
    /// runtime. Fails, naming the store's resource, outside a runtime.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = enduro::store::OffThread::new(enduro::MemStore::new())?;
    /// # Ok::<(), enduro::Error>(())
    /// # }).unwrap();
    /// assert!(enduro::store::OffThread::new(enduro::MemStore::new()).is_err());
    /// ```
    pub fn new(store: S) -> Result<Self> {
        match Handle::try_current() {
            Ok(runtime) => Ok(Self::with_runtime(store, runtime)),
            Err(_) => Err(Error::backend(
                store.resource(),
                "an async atom over a blocking store must be opened inside a tokio runtime, \
                 whose blocking thread pool runs the store's calls",
                None,
            )),
        }
    }

    /// Wraps `store`, running its calls on the blocking pool of `runtime`.
    ///
    /// ```
    /// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    /// let store = enduro::store::OffThread::with_runtime(enduro::MemStore::new(), runtime.handle().clone());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_runtime(store: S, runtime: Handle) -> Self {
        OffThread {
            store: Arc::new(store),
            runtime,
        }
    }

    /// Opens a store with `open` on the blocking pool of the current tokio runtime (opening
    /// may create files, connect, or wait for another process's lock) and wraps it: how a
    /// backend's `open_async` gets its store. Fails, naming `resource`, outside a runtime
    /// or when `open` does.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// use enduro::{AsyncAtom, MemStore, Options};
    ///
    /// let store = enduro::store::OffThread::open("memory cell", || Ok(MemStore::new())).await?;
    /// let atom = AsyncAtom::open(store, 1u8, Options::new()).await?;
    /// # Ok::<(), enduro::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn open(
        resource: impl Into<String>,
        open: impl FnOnce() -> Result<S> + Send + 'static,
    ) -> Result<Self> {
        let resource = resource.into();
        let runtime = Handle::try_current().map_err(|_| {
            Error::backend(
                resource.clone(),
                "an async atom over a blocking store must be opened inside a tokio runtime, \
                 whose blocking thread pool runs the store's calls",
                None,
            )
        })?;
        match runtime.spawn_blocking(open).await {
            Ok(opened) => Ok(Self::with_runtime(opened?, runtime)),
            Err(e) => Err(Error::backend(
                resource,
                not_finished("opening the store", e),
                None,
            )),
        }
    }

    /// The wrapped store.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = enduro::store::OffThread::new(enduro::MemStore::new())?;
    /// assert_eq!(enduro::store::Store::resource(store.get_ref()), "memory cell");
    /// # Ok::<(), enduro::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.store
    }

    /// Runs `call` on the blocking pool. A call that panics there is an error for the
    /// caller (`lost` makes it, from the panic's message), not a panic on the runtime.
    fn run<R: Send + 'static>(
        &self,
        call: impl FnOnce(&S) -> Result<R> + Send + 'static,
        lost: fn(String, String) -> Error,
    ) -> BoxFuture<'static, Result<R>> {
        let store = Arc::clone(&self.store);
        let task = self.runtime.spawn_blocking(move || call(&store));
        let resource = self.store.resource();
        Box::pin(async move {
            match task.await {
                Ok(result) => result,
                Err(e) => Err(lost(resource, not_finished("the store's call", e))),
            }
        })
    }
}

/// Why a call on the blocking pool did not finish: it panicked, or the runtime is going.
fn not_finished(what: &str, e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(panic) => format!("{what} panicked: {}", panic_message(&*panic)),
        Err(e) => format!("{what} did not finish: {e}"),
    }
}

/// A read or a release that did not finish: nothing is known to have changed.
fn failed(resource: String, why: String) -> Error {
    Error::backend(resource, why, None)
}

/// A commit that did not finish: it may have been stored.
fn uncertain(resource: String, why: String) -> Error {
    Error::Uncertain {
        resource,
        message: format!("{why}, in the middle of the commit"),
        source: None,
    }
}

impl<S: Store> AsyncStore for OffThread<S> {
    fn resource(&self) -> String {
        self.store.resource()
    }

    fn load(&self) -> BoxFuture<'_, Result<Option<Snapshot>>> {
        self.run(|store| store.load(), failed)
    }

    fn check(&self, known: Version) -> BoxFuture<'_, Result<Observed>> {
        self.run(move |store| store.check(known), failed)
    }

    fn commit(&self, expected: Version, bytes: Vec<u8>) -> BoxFuture<'_, Result<Committed>> {
        self.run(
            move |store| commit_bytes(store, expected, &bytes),
            uncertain,
        )
    }

    fn release(&self) -> BoxFuture<'_, Result<()>> {
        self.run(|store| store.release(), failed)
    }

    fn commit_ops(
        &self,
        expected: Version,
        ops: Vec<Arc<[u8]>>,
        value: Deferred,
    ) -> BoxFuture<'_, Result<Committed>> {
        self.run(
            move |store| commit_ops_deferred(store, expected, &ops, value),
            uncertain,
        )
    }

    fn load_replay(&self) -> BoxFuture<'_, Result<Option<Replay>>> {
        self.run(|store| store.load_replay(), failed)
    }

    fn cheap_check(&self) -> bool {
        self.store.cheap_check()
    }

    fn checks_round_trip(&self) -> bool {
        self.store.checks_round_trip()
    }

    fn follow(&self, nudge: Nudge) -> Result<Subscription> {
        self.store.follow(nudge)
    }
}
