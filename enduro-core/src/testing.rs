//! Fault injection for tests: a store wrapper that fails where you tell it to.
//!
//! In the spirit of redb's crash backend: every failure point of a commit can be
//! produced on purpose, so that the atom's promises (memory unchanged, no watch fired,
//! atom still usable, nothing lost) are checked at each of them, not only at the ones a
//! real file system happens to produce.
//!
//! Only with the `testing` feature (`enduro = { version = "0.1", features = ["testing"] }`,
//! best as a dev-dependency): it is for tests, never for production builds.

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::state::lock;
use crate::store::{Committed, Encoder, Observed, Snapshot, Store, Version};

/// Where a commit fails.
///
/// ```
/// use enduro::testing::FailPoint;
/// assert_ne!(FailPoint::BeforeWrite, FailPoint::AfterWrite);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailPoint {
    /// Before anything is written: the store is unchanged.
    BeforeWrite,
    /// While the value is being written, after part of it went out: the store is unchanged
    /// (the inner store discards the partial write).
    MidWrite,
    /// After the inner store committed: the value is stored, but the answer is lost (like
    /// a connection dropped after COMMIT): the store says [`Error::Uncertain`], as a store
    /// must when it cannot tell whether its commit happened.
    AfterWrite,
}

/// Which store calls fail next: shared between a [`FaultyStore`] and the test.
///
/// ```
/// use enduro::testing::{FailPoint, Faults};
///
/// let faults = Faults::default();
/// faults.fail_commit(2, FailPoint::AfterWrite);
/// assert_eq!(faults.commits(), 0);
/// ```
#[derive(Clone, Default)]
pub struct Faults {
    plan: Arc<Mutex<Plan>>,
}

#[derive(Default)]
struct Plan {
    commits: u64,
    commit_faults: Vec<(u64, FailPoint)>,
    fail_checks: u32,
    fail_loads: u32,
    fail_every_commit: bool,
}

impl fmt::Debug for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plan = lock(&self.plan);
        f.debug_struct("Faults")
            .field("commits", &plan.commits)
            .field("commit_faults", &plan.commit_faults)
            .finish_non_exhaustive()
    }
}

impl Faults {
    /// Makes the `n`-th commit from now (1: the next one) fail at `point`.
    pub fn fail_commit(&self, n: u64, point: FailPoint) {
        let mut plan = lock(&self.plan);
        let at = plan.commits + n;
        plan.commit_faults.push((at, point));
    }

    /// Makes every commit fail (before writing) until called again with `false`.
    pub fn fail_every_commit(&self, fail: bool) {
        lock(&self.plan).fail_every_commit = fail;
    }

    /// Makes the next `n` calls to `check` fail.
    pub fn fail_checks(&self, n: u32) {
        lock(&self.plan).fail_checks = n;
    }

    /// Makes the next `n` calls to `load` fail.
    pub fn fail_loads(&self, n: u32) {
        lock(&self.plan).fail_loads = n;
    }

    /// How many commits were attempted so far.
    pub fn commits(&self) -> u64 {
        lock(&self.plan).commits
    }

    fn next_commit(&self) -> Option<FailPoint> {
        let mut plan = lock(&self.plan);
        plan.commits += 1;
        if plan.fail_every_commit {
            return Some(FailPoint::BeforeWrite);
        }
        let now = plan.commits;
        let fault = plan.commit_faults.iter().position(|(at, _)| *at == now)?;
        Some(plan.commit_faults.swap_remove(fault).1)
    }

    fn take(counter: &mut u32) -> bool {
        let hit = *counter > 0;
        *counter = counter.saturating_sub(1);
        hit
    }
}

/// An injected failure, reported as a backend failure of the wrapped store's resource
/// (a fault injected into a store that is not a file has no path to name).
fn injected(resource: String, what: &str) -> Error {
    Error::backend(
        resource,
        format!("cannot {what}: fault injected by FaultyStore"),
        Some(Box::new(io::Error::other("injected fault"))),
    )
}

/// The answer to a commit that reached the store, lost: what a store says when it cannot
/// tell whether its commit happened.
fn lost_answer(resource: String) -> Error {
    Error::Uncertain {
        resource,
        message: "the answer to the commit was lost (fault injected by FaultyStore)".into(),
        source: None,
    }
}

/// Wraps a store and fails the calls that its [`Faults`] name.
///
/// ```
/// use enduro::{Atom, Error, MemStore};
/// use enduro::testing::{FailPoint, FaultyStore};
///
/// let store = FaultyStore::new(MemStore::new());
/// let faults = store.faults();
/// let atom = Atom::open(store, 1, Default::default())?;
/// faults.fail_commit(1, FailPoint::BeforeWrite);
/// let err = atom.swap(|n| n + 1).unwrap_err();
/// assert!(matches!(err, Error::Backend { .. }), "{err}");
/// assert!(err.to_string().contains("fault injected"), "{err}");
/// assert_eq!(*atom.deref(), 1);
/// assert_eq!(*atom.swap(|n| n + 1)?, 2);
/// # Ok::<(), enduro::Error>(())
/// ```
pub struct FaultyStore<S> {
    inner: S,
    faults: Faults,
}

impl<S: Store> fmt::Debug for FaultyStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyStore")
            .field("resource", &self.inner.resource())
            .field("faults", &self.faults)
            .finish()
    }
}

impl<S: Store> FaultyStore<S> {
    /// Wraps `inner`; nothing fails until told to.
    pub fn new(inner: S) -> Self {
        FaultyStore {
            inner,
            faults: Faults::default(),
        }
    }

    /// The handle that tells this store what to fail.
    pub fn faults(&self) -> Faults {
        self.faults.clone()
    }
}

/// A writer that fails after letting `budget` bytes through.
struct Cut<'a> {
    inner: &'a mut dyn io::Write,
    budget: usize,
}

impl io::Write for Cut<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.budget == 0 {
            return Err(io::Error::other("injected write failure"));
        }
        let n = buf.len().min(self.budget);
        self.budget -= n;
        self.inner.write(&buf[..n])
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<S: Store> Store for FaultyStore<S> {
    fn resource(&self) -> String {
        self.inner.resource()
    }

    fn load(&self) -> Result<Option<Snapshot>> {
        if Faults::take(&mut lock(&self.faults.plan).fail_loads) {
            return Err(injected(self.inner.resource(), "load"));
        }
        self.inner.load()
    }

    fn check(&self, known: Version) -> Result<Observed> {
        if Faults::take(&mut lock(&self.faults.plan).fail_checks) {
            return Err(injected(self.inner.resource(), "check"));
        }
        self.inner.check(known)
    }

    fn commit(&self, expected: Version, encode: Encoder<'_>) -> Result<Committed> {
        match self.faults.next_commit() {
            None => self.inner.commit(expected, encode),
            Some(FailPoint::BeforeWrite) => Err(injected(self.inner.resource(), "commit")),
            Some(FailPoint::MidWrite) => self.inner.commit(expected, &mut |out| {
                encode(&mut Cut {
                    inner: out,
                    budget: 1,
                })
                .map_err(|_| injected(self.inner.resource(), "write the whole value"))
            }),
            Some(FailPoint::AfterWrite) => {
                self.inner.commit(expected, encode)?;
                Err(lost_answer(self.inner.resource()))
            }
        }
    }

    fn commit_ops(
        &self,
        expected: Version,
        ops: &[&[u8]],
        encode: Encoder<'_>,
    ) -> Result<Committed> {
        match self.faults.next_commit() {
            None => self.inner.commit_ops(expected, ops, encode),
            // Ops reach the store whole or not at all: cut short, nothing is written.
            Some(FailPoint::BeforeWrite | FailPoint::MidWrite) => {
                Err(injected(self.inner.resource(), "commit"))
            }
            Some(FailPoint::AfterWrite) => {
                self.inner.commit_ops(expected, ops, encode)?;
                Err(lost_answer(self.inner.resource()))
            }
        }
    }

    fn load_replay(&self) -> Result<Option<crate::Replay>> {
        if Faults::take(&mut lock(&self.faults.plan).fail_loads) {
            return Err(injected(self.inner.resource(), "load"));
        }
        self.inner.load_replay()
    }

    fn release(&self) -> Result<()> {
        self.inner.release()
    }

    fn cheap_check(&self) -> bool {
        self.inner.cheap_check()
    }
    fn checks_round_trip(&self) -> bool {
        self.inner.checks_round_trip()
    }
    fn follow(&self, nudge: crate::Nudge) -> Result<crate::Subscription> {
        self.inner.follow(nudge)
    }
}

/// The async twin of [`FaultyStore`]: wraps an [`AsyncStore`](crate::AsyncStore) and fails
/// the commits, checks and loads its [`Faults`] name, so that the atom's promises on a failed or unknown
/// commit are checked on any async backend. The value arrives encoded, so
/// [`FailPoint::MidWrite`] fails before anything reaches the store, like
/// [`FailPoint::BeforeWrite`].
#[cfg(feature = "async")]
#[derive(Debug)]
pub struct FaultyAsyncStore<S> {
    inner: S,
    faults: Faults,
}

#[cfg(feature = "async")]
impl<S: crate::AsyncStore> FaultyAsyncStore<S> {
    /// Wraps `inner`; nothing fails until `faults` says so.
    pub fn new(inner: S, faults: Faults) -> Self {
        FaultyAsyncStore { inner, faults }
    }
}

#[cfg(feature = "async")]
impl<S: crate::AsyncStore> crate::AsyncStore for FaultyAsyncStore<S> {
    fn resource(&self) -> String {
        self.inner.resource()
    }
    fn load(&self) -> crate::BoxFuture<'_, Result<Option<Snapshot>>> {
        if Faults::take(&mut lock(&self.faults.plan).fail_loads) {
            let failed = Err(injected(self.inner.resource(), "load"));
            return Box::pin(std::future::ready(failed));
        }
        self.inner.load()
    }
    fn check(&self, known: Version) -> crate::BoxFuture<'_, Result<Observed>> {
        if Faults::take(&mut lock(&self.faults.plan).fail_checks) {
            let failed = Err(injected(self.inner.resource(), "check"));
            return Box::pin(std::future::ready(failed));
        }
        self.inner.check(known)
    }
    fn commit(&self, expected: Version, bytes: Vec<u8>) -> crate::BoxFuture<'_, Result<Committed>> {
        Box::pin(async move {
            match self.faults.next_commit() {
                None => self.inner.commit(expected, bytes).await,
                Some(FailPoint::AfterWrite) => {
                    self.inner.commit(expected, bytes).await?;
                    Err(lost_answer(self.inner.resource()))
                }
                Some(FailPoint::BeforeWrite | FailPoint::MidWrite) => {
                    Err(injected(self.inner.resource(), "commit"))
                }
            }
        })
    }
    fn commit_ops(
        &self,
        expected: Version,
        ops: Vec<std::sync::Arc<[u8]>>,
        value: crate::Deferred,
    ) -> crate::BoxFuture<'_, Result<Committed>> {
        Box::pin(async move {
            match self.faults.next_commit() {
                None => self.inner.commit_ops(expected, ops, value).await,
                Some(FailPoint::AfterWrite) => {
                    self.inner.commit_ops(expected, ops, value).await?;
                    Err(lost_answer(self.inner.resource()))
                }
                Some(FailPoint::BeforeWrite | FailPoint::MidWrite) => {
                    Err(injected(self.inner.resource(), "commit"))
                }
            }
        })
    }
    fn load_replay(&self) -> crate::BoxFuture<'_, Result<Option<crate::Replay>>> {
        if Faults::take(&mut lock(&self.faults.plan).fail_loads) {
            let failed = Err(injected(self.inner.resource(), "load"));
            return Box::pin(std::future::ready(failed));
        }
        self.inner.load_replay()
    }
    fn release(&self) -> crate::BoxFuture<'_, Result<()>> {
        self.inner.release()
    }
    fn cheap_check(&self) -> bool {
        self.inner.cheap_check()
    }
    fn checks_round_trip(&self) -> bool {
        self.inner.checks_round_trip()
    }
    fn follow(&self, nudge: crate::Nudge) -> Result<crate::Subscription> {
        self.inner.follow(nudge)
    }
}

/// Runs a blocking [`Store`] as an [`AsyncStore`](crate::AsyncStore), inline: for tests
/// and examples of async code on memory or file stores. Each call blocks the task while
/// the store works, so keep it out of production async services.
///
/// ```
/// use enduro::{AsyncAtom, MemStore};
/// use enduro::testing::Inline;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let atom = AsyncAtom::open(Inline(MemStore::new()), 1, Default::default()).await?;
/// assert_eq!(*atom.swap(|n| n + 1).await?, 2);
/// # Ok::<(), enduro::Error>(())
/// # }).unwrap();
/// ```
#[cfg(feature = "async")]
#[derive(Debug)]
pub struct Inline<S>(pub S);

#[cfg(feature = "async")]
impl<S: Store> crate::AsyncStore for Inline<S> {
    fn resource(&self) -> String {
        self.0.resource()
    }
    fn load(&self) -> crate::BoxFuture<'_, Result<Option<Snapshot>>> {
        Box::pin(async move { self.0.load() })
    }
    fn check(&self, known: Version) -> crate::BoxFuture<'_, Result<Observed>> {
        Box::pin(async move { self.0.check(known) })
    }
    fn commit(&self, expected: Version, bytes: Vec<u8>) -> crate::BoxFuture<'_, Result<Committed>> {
        Box::pin(async move { crate::store::commit_bytes(&self.0, expected, &bytes) })
    }
    fn commit_ops(
        &self,
        expected: Version,
        ops: Vec<std::sync::Arc<[u8]>>,
        value: crate::Deferred,
    ) -> crate::BoxFuture<'_, Result<Committed>> {
        Box::pin(async move { crate::store::commit_ops_deferred(&self.0, expected, &ops, value) })
    }
    fn load_replay(&self) -> crate::BoxFuture<'_, Result<Option<crate::Replay>>> {
        Box::pin(async move { self.0.load_replay() })
    }
    fn release(&self) -> crate::BoxFuture<'_, Result<()>> {
        Box::pin(async move { self.0.release() })
    }
    fn cheap_check(&self) -> bool {
        self.0.cheap_check()
    }
    fn checks_round_trip(&self) -> bool {
        self.0.checks_round_trip()
    }
    fn follow(&self, nudge: crate::Nudge) -> Result<crate::Subscription> {
        self.0.follow(nudge)
    }
}
