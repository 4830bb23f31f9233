//! [`Blocking`]: an async store driven by a private runtime, so that blocking code gets an
//! [`Atom`](crate::Atom) over it for free.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use tokio::runtime::{Handle, Runtime};

use crate::async_atom::AsyncStore;
use crate::error::{Error, Result};
use crate::store::{Committed, Encoder, Observed, Snapshot, Store, Version};

/// Any [`AsyncStore`] as a blocking [`Store`], in the manner of the `postgres` crate over
/// `tokio-postgres`: each call runs to completion on a private tokio runtime (one worker
/// thread, which also keeps a backend's background work — pooled connections, say —
/// alive between calls).
///
/// It works from plain `main`, with no runtime of your own. Called from inside a tokio
/// runtime (where blocking on a future would panic), each call runs on a short-lived
/// helper thread instead, so it works there too; it blocks the calling task, though, so
/// async code should use [`AsyncAtom`](crate::AsyncAtom) over the async store itself.
/// Dropping it never blocks: the runtime is shut down in the background.
///
/// ```
/// use enduro::store::{AsyncStore, BoxFuture, Committed, Observed, Snapshot};
/// use enduro::{Atom, Blocking, Error, Options, Result, Version};
/// use std::sync::Mutex;
///
/// /// An async store that keeps the value in memory (a real one would talk to a server),
/// /// with the last generation it gave out, never reset: versions never repeat.
/// #[derive(Default)]
/// struct Cell(Mutex<(Option<Snapshot>, u64)>);
///
/// impl Cell {
///     fn cell(&self) -> std::sync::MutexGuard<'_, (Option<Snapshot>, u64)> {
///         self.0.lock().unwrap_or_else(|e| e.into_inner())
///     }
/// }
///
/// impl AsyncStore for Cell {
///     fn resource(&self) -> String {
///         "an async memory cell".into()
///     }
///     fn load(&self) -> BoxFuture<'_, Result<Option<Snapshot>>> {
///         Box::pin(async move { Ok(self.cell().0.clone()) })
///     }
///     fn check(&self, known: Version) -> BoxFuture<'_, Result<Observed>> {
///         Box::pin(async move {
///             Ok(match &self.cell().0 {
///                 Some(s) if s.version == known => Observed::Unchanged,
///                 Some(s) => Observed::Changed(s.clone()),
///                 None => Observed::Missing,
///             })
///         })
///     }
///     fn commit(&self, expected: Version, bytes: Vec<u8>) -> BoxFuture<'_, Result<Committed>> {
///         Box::pin(async move {
///             let mut cell = self.cell();
///             let current = cell.0.as_ref().map_or(Version::ABSENT, |s| s.version);
///             if current != expected {
///                 return Ok(Committed::Conflict);
///             }
///             cell.1 += 1;
///             let version = Version::new(cell.1, 0);
///             cell.0 = Some(Snapshot { bytes, version });
///             Ok(Committed::Done(version))
///         })
///     }
///     fn release(&self) -> BoxFuture<'_, Result<()>> {
///         Box::pin(async move {
///             self.cell().0 = None;
///             Ok(())
///         })
///     }
/// }
///
/// // From plain `main`: no runtime of your own.
/// let store = Blocking::new(Cell::default())?;
/// let atom = Atom::open(store, 1u64, Options::new())?;
/// assert_eq!(*atom.swap(|n| n + 1)?, 2);
/// assert!(matches!(atom.release(), Ok(())));
/// assert!(matches!(atom.swap(|n| n + 1), Err(Error::Released)));
/// # Ok::<(), enduro::Error>(())
/// ```
pub struct Blocking<S> {
    store: S,
    /// Always `Some` until dropped.
    runtime: Option<Driver>,
}

/// The runtime a [`Blocking`] runs its calls on.
enum Driver {
    /// Its own, shut down when it is dropped.
    Own(Runtime),
    /// Someone else's (a backend's process-wide runtime, say), left running.
    Shared(Handle),
}

impl Driver {
    fn block_on<F: Future>(&self, work: F) -> F::Output {
        match self {
            Driver::Own(runtime) => runtime.block_on(work),
            Driver::Shared(handle) => handle.block_on(work),
        }
    }
}

impl<S: AsyncStore + fmt::Debug> fmt::Debug for Blocking<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blocking")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl<S: AsyncStore> Blocking<S> {
    /// Wraps `store`, starting the private runtime (one worker thread, named
    /// `enduro-blocking`). Fails, naming the store's resource, if the runtime cannot start.
    ///
    /// ```
    /// # use enduro::testing::Inline;
    /// let store = enduro::Blocking::new(Inline(enduro::MemStore::new()))?;
    /// let atom = enduro::Atom::open(store, 0u8, enduro::Options::new())?;
    /// assert_eq!(*atom.swap(|n| n + 1)?, 1);
    /// # Ok::<(), enduro::Error>(())
    /// ```
    pub fn new(store: S) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("enduro-blocking")
            .enable_all()
            .build()
            .map_err(|e| {
                Error::backend(
                    store.resource(),
                    format!("cannot start the runtime for blocking calls: {e}"),
                    Some(Box::new(e)),
                )
            })?;
        Ok(Blocking {
            store,
            runtime: Some(Driver::Own(runtime)),
        })
    }

    /// Wraps `store`, running its calls on an existing runtime instead of a private one:
    /// for a backend that keeps one runtime for all its stores (so that a thousand stores
    /// do not start a thousand threads). The runtime must have its I/O and time drivers
    /// enabled and must outlive the store's use; dropping the store leaves it running.
    ///
    /// ```
    /// # use enduro::testing::Inline;
    /// let runtime = tokio::runtime::Builder::new_multi_thread()
    ///     .worker_threads(1)
    ///     .enable_all()
    ///     .build()
    ///     .unwrap();
    /// let a = enduro::Blocking::on(Inline(enduro::MemStore::new()), runtime.handle().clone());
    /// let b = enduro::Blocking::on(Inline(enduro::MemStore::new()), runtime.handle().clone());
    /// let (a, b) = (
    ///     enduro::Atom::open(a, 1u8, enduro::Options::new())?,
    ///     enduro::Atom::open(b, 2u8, enduro::Options::new())?,
    /// );
    /// assert_eq!(*a.swap(|n| n + 1)? + *b.swap(|n| n + 1)?, 5);
    /// # Ok::<(), enduro::Error>(())
    /// ```
    pub fn on(store: S, runtime: Handle) -> Self {
        Blocking {
            store,
            runtime: Some(Driver::Shared(runtime)),
        }
    }

    /// The async store underneath.
    ///
    /// ```
    /// # use enduro::testing::Inline;
    /// let store = enduro::Blocking::new(Inline(enduro::MemStore::new()))?;
    /// assert_eq!(enduro::AsyncStore::resource(store.inner()), "memory cell");
    /// # Ok::<(), enduro::Error>(())
    /// ```
    pub fn inner(&self) -> &S {
        &self.store
    }

    /// Runs `work` to completion on the private runtime and returns its result: for the
    /// async setup a backend needs before its store is used (creating a table, say).
    /// Inside another tokio runtime, where blocking on a future would panic, it runs it
    /// from a helper thread instead.
    ///
    /// ```
    /// # use enduro::testing::Inline;
    /// let store = enduro::Blocking::new(Inline(enduro::MemStore::new()))?;
    /// let answer = store.run(async { Ok(6 * 7) })?;
    /// assert_eq!(answer, 42);
    /// # Ok::<(), enduro::Error>(())
    /// ```
    pub fn run<R: Send>(&self, work: impl Future<Output = Result<R>> + Send) -> Result<R> {
        let Some(runtime) = self.runtime.as_ref() else {
            return Err(self.unavailable("the runtime is shut down"));
        };
        if Handle::try_current().is_err() {
            return runtime.block_on(work);
        }
        std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("enduro-blocking-call".into())
                .spawn_scoped(scope, || runtime.block_on(work))
                .map_err(|e| self.unavailable(&format!("cannot start a helper thread: {e}")))?
                .join()
                .unwrap_or_else(|_| Err(self.unavailable("the helper thread panicked")))
        })
    }

    fn unavailable(&self, why: &str) -> Error {
        Error::backend(
            self.store.resource(),
            format!("cannot run a blocking call: {why}"),
            None,
        )
    }
}

impl<S> Drop for Blocking<S> {
    fn drop(&mut self) {
        // Never blocks, so dropping the store inside an async context cannot panic.
        if let Some(Driver::Own(runtime)) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl<S: AsyncStore> Store for Blocking<S> {
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
        self.run(self.store.commit(expected, bytes))
    }

    fn release(&self) -> Result<()> {
        self.run(self.store.release())
    }

    fn commit_ops(
        &self,
        expected: Version,
        ops: &[&[u8]],
        encode: Encoder<'_>,
    ) -> Result<Committed> {
        let mut bytes = Vec::new();
        encode(&mut bytes)?;
        let ops = ops.iter().map(|op| Arc::from(*op)).collect();
        let value = crate::store::deferred_bytes(self.store.resource(), bytes);
        self.run(self.store.commit_ops(expected, ops, value))
    }

    fn load_replay(&self) -> Result<Option<crate::store::Replay>> {
        self.run(self.store.load_replay())
    }

    fn cheap_check(&self) -> bool {
        self.store.cheap_check()
    }

    fn checks_round_trip(&self) -> bool {
        self.store.checks_round_trip()
    }

    fn follow(&self, nudge: crate::store::Nudge) -> Result<crate::store::Subscription> {
        self.store.follow(nudge)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::async_atom::BoxFuture;

    /// A store whose every call needs the runtime (it sleeps on tokio's timer).
    #[derive(Debug, Default)]
    struct Sleepy(std::sync::Mutex<Option<Snapshot>>);

    impl Sleepy {
        fn cell(&self) -> std::sync::MutexGuard<'_, Option<Snapshot>> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }
        async fn nap() {
            tokio::task::yield_now().await;
        }
    }

    impl AsyncStore for Sleepy {
        fn resource(&self) -> String {
            "sleepy cell".into()
        }
        fn load(&self) -> BoxFuture<'_, Result<Option<Snapshot>>> {
            Box::pin(async move {
                Self::nap().await;
                Ok(self.cell().clone())
            })
        }
        fn check(&self, known: Version) -> BoxFuture<'_, Result<Observed>> {
            Box::pin(async move {
                Self::nap().await;
                Ok(match &*self.cell() {
                    Some(s) if s.version == known => Observed::Unchanged,
                    Some(s) => Observed::Changed(s.clone()),
                    None => Observed::Missing,
                })
            })
        }
        fn commit(&self, expected: Version, bytes: Vec<u8>) -> BoxFuture<'_, Result<Committed>> {
            Box::pin(async move {
                Self::nap().await;
                let mut cell = self.cell();
                let current = cell.as_ref().map_or(Version::ABSENT, |s| s.version);
                if current != expected {
                    return Ok(Committed::Conflict);
                }
                let version = Version::new(current.generation + 1, 0);
                *cell = Some(Snapshot { bytes, version });
                Ok(Committed::Done(version))
            })
        }
        fn release(&self) -> BoxFuture<'_, Result<()>> {
            Box::pin(async move {
                *self.cell() = None;
                Ok(())
            })
        }
        fn cheap_check(&self) -> bool {
            false
        }
    }

    #[test]
    fn works_from_plain_main() -> Result<()> {
        let store = Blocking::new(Sleepy::default())?;
        assert!(!store.cheap_check());
        let atom = crate::Atom::open(store, 1u32, crate::Options::new())?;
        assert_eq!(*atom.swap(|n| n + 1)?, 2);
        Ok(())
    }

    #[test]
    fn shares_a_runtime_from_main_and_from_inside_another() -> Result<()> {
        let shared = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| Error::backend("test", e.to_string(), None))?;
        let open = || {
            crate::Atom::open(
                Blocking::on(Sleepy::default(), shared.handle().clone()),
                1u32,
                crate::Options::new(),
            )
        };
        let atom = open()?;
        assert_eq!(*atom.swap(|n| n + 1)?, 2);
        drop(atom);
        // Dropping a store leaves the shared runtime running for the others.
        let other = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| Error::backend("test", e.to_string(), None))?;
        other.block_on(async {
            let atom = open()?;
            assert_eq!(*atom.swap(|n| n + 1)?, 2);
            Ok(())
        })
    }

    #[test]
    fn works_inside_a_runtime_and_drops_there() -> Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| Error::backend("test", e.to_string(), None))?;
        runtime.block_on(async {
            let store = Blocking::new(Sleepy::default())?;
            let atom = crate::Atom::open(store, 1u32, crate::Options::new())?;
            assert_eq!(*atom.swap(|n| n + 1)?, 2);
            drop(atom);
            Ok(())
        })
    }
}
