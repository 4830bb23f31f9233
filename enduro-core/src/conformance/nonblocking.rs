//! The async cases: each is generic over an [`AsyncBackend`] and checks one promise of the
//! design (DESIGN.md) on [`AsyncAtom`], in memory and in storage, with atoms shared across
//! spawned tasks. Run them all with [`async_conformance!`](crate::async_conformance!); a
//! case is an `async fn`, to run on a multi-thread tokio runtime (see
//! [`block_on`](super::block_on)):
//!
//! ```
//! # use std::sync::Arc;
//! # #[derive(Debug)]
//! # struct MemBackend;
//! # impl enduro::conformance::Backend for MemBackend {
//! #     type Resource = Arc<enduro::MemStore>;
//! #     fn fresh(&self) -> Self::Resource { Arc::new(enduro::MemStore::new()) }
//! #     fn store(&self, r: &Self::Resource) -> enduro::Result<Box<dyn enduro::store::Store>> {
//! #         Ok(Box::new(Arc::clone(r)))
//! #     }
//! # }
//! use enduro::conformance::{InlineBackend, block_on, nonblocking};
//!
//! block_on(nonblocking::async_sixteen_tasks_times_two_hundred(&InlineBackend(MemBackend)));
//! ```

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

use super::{Backend, Tally, TallyOp};
use crate::testing::{FailPoint, Faults, FaultyAsyncStore, Inline};
use crate::{
    AsyncAtom, AsyncStore, BoxFuture, Committed, Error, Observed, Options, Result, Snapshot, Store,
    Value, Version,
};

/// What the async suite needs from a backend.
pub trait AsyncBackend: Send + Sync + 'static {
    /// Names one resource (a file path, a table and key, a memory cell).
    type Resource: Clone + Send + Sync + 'static;
    /// The async store the backend opens on a resource.
    type Store: AsyncStore;

    /// A new resource that holds nothing yet.
    fn fresh(&self) -> Self::Resource;

    /// A new, independent store on `resource`, as another process would open it.
    fn store(&self, resource: &Self::Resource) -> impl Future<Output = Result<Self::Store>> + Send;

    /// The stored bytes, read around enduro where the backend allows; `None` when the
    /// resource does not exist.
    fn stored(&self, resource: &Self::Resource) -> impl Future<Output = Option<Vec<u8>>> + Send {
        async move {
            let store = self.store(resource).await.unwrap();
            store.load().await.unwrap().map(|s| s.bytes)
        }
    }

    /// Puts `bytes` in the resource around enduro's encoding (to plant bad data).
    fn plant(&self, resource: &Self::Resource, bytes: &[u8]) -> impl Future<Output = ()> + Send {
        let bytes = bytes.to_vec();
        async move {
            let store = self.store(resource).await.unwrap();
            let version = store
                .load()
                .await
                .unwrap()
                .map_or(Version::ABSENT, |s| s.version);
            let done = store.commit(version, bytes).await.unwrap();
            assert!(matches!(done, Committed::Done(_)));
        }
    }

    /// The options a case asks for, as this backend opens atoms with them; see
    /// [`Backend::options`].
    fn options<T: Value>(&self, options: Options<T>) -> Options<T> {
        options
    }

    /// Opens an atom on `resource` with `options` (through [`AsyncBackend::options`]).
    fn open_with<T: Value>(
        &self,
        resource: &Self::Resource,
        init: T,
        options: Options<T>,
    ) -> impl Future<Output = Result<AsyncAtom<T>>> + Send {
        let options = self.options(options);
        async move { AsyncAtom::open(self.store(resource).await?, init, options).await }
    }

    /// Opens an atom on `resource`, panicking on error.
    fn open<T: Value>(
        &self,
        resource: &Self::Resource,
        init: T,
    ) -> impl Future<Output = AsyncAtom<T>> + Send {
        async move {
            self.open_with(resource, init, Options::new())
                .await
                .unwrap()
        }
    }
}

/// Runs the async suite on a blocking [`Backend`]: its stores run inline, through
/// [`Inline`] (each call blocks a runtime thread while the store works, which is fine for
/// tests of memory and file stores).
///
/// ```text
/// enduro::async_conformance!(enduro::conformance::InlineBackend(FileBackend::new()));
/// ```
#[derive(Debug)]
pub struct InlineBackend<B>(pub B);

impl<B: Backend> AsyncBackend for InlineBackend<B> {
    type Resource = B::Resource;
    type Store = Inline<Box<dyn Store>>;

    fn options<T: Value>(&self, options: Options<T>) -> Options<T> {
        self.0.options(options)
    }

    fn fresh(&self) -> B::Resource {
        self.0.fresh()
    }

    fn store(&self, resource: &B::Resource) -> impl Future<Output = Result<Self::Store>> + Send {
        std::future::ready(self.0.store(resource).map(Inline))
    }

    fn stored(&self, resource: &B::Resource) -> impl Future<Output = Option<Vec<u8>>> + Send {
        std::future::ready(self.0.stored(resource))
    }

    fn plant(&self, resource: &B::Resource, bytes: &[u8]) -> impl Future<Output = ()> + Send {
        self.0.plant(resource, bytes);
        std::future::ready(())
    }
}

/// Runs the async suite on a blocking [`Backend`] the way async atoms over blocking stores
/// run in production: its stores run through [`OffThread`](crate::OffThread), each call on
/// the runtime's blocking thread pool (as async file atoms do).
///
/// ```text
/// enduro::async_conformance!(enduro::conformance::OffThreadBackend(FileBackend::new()));
/// ```
#[derive(Debug)]
pub struct OffThreadBackend<B>(pub B);

impl<B: Backend> AsyncBackend for OffThreadBackend<B> {
    type Resource = B::Resource;
    type Store = crate::OffThread<Box<dyn Store>>;

    fn options<T: Value>(&self, options: Options<T>) -> Options<T> {
        self.0.options(options)
    }

    fn fresh(&self) -> B::Resource {
        self.0.fresh()
    }

    fn store(&self, resource: &B::Resource) -> impl Future<Output = Result<Self::Store>> + Send {
        std::future::ready(self.0.store(resource).and_then(crate::OffThread::new))
    }

    fn stored(&self, resource: &B::Resource) -> impl Future<Output = Option<Vec<u8>>> + Send {
        std::future::ready(self.0.stored(resource))
    }

    fn plant(&self, resource: &B::Resource, bytes: &[u8]) -> impl Future<Output = ()> + Send {
        self.0.plant(resource, bytes);
        std::future::ready(())
    }
}

/// Decides when the commits of a [`GatedStore`] land: each commit, once it has started,
/// waits for a permit. Shared between the store and the test.
#[derive(Debug, Clone)]
pub struct Gate {
    permits: Arc<Semaphore>,
    started: Arc<AtomicU64>,
}

impl Gate {
    /// A closed gate: no commit lands until [`open`](Gate::open) lets it.
    pub fn new() -> Self {
        Gate {
            permits: Arc::new(Semaphore::new(0)),
            started: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Lets `n` more commits land.
    pub fn open(&self, n: usize) {
        self.permits.add_permits(n);
    }

    /// How many commits have started (reached the store) so far.
    pub fn started(&self) -> u64 {
        self.started.load(Ordering::SeqCst)
    }

    /// Waits (10 s at most, then panics) until `n` commits have started.
    pub async fn until_started(&self, n: u64) {
        until(|| self.started() >= n).await;
    }
}

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

/// An async store whose commits, once started, wait at a [`Gate`] before they reach the
/// inner store — like an UPDATE sent to a slow server, it lands when the gate lets it,
/// whether or not anyone still waits for the answer. For the cancellation cases.
#[derive(Debug)]
pub struct GatedStore<S> {
    inner: S,
    gate: Gate,
}

impl<S: AsyncStore> GatedStore<S> {
    /// Wraps `inner`; its commits wait at `gate`.
    pub fn new(inner: S, gate: Gate) -> Self {
        GatedStore { inner, gate }
    }
}

impl<S: AsyncStore> AsyncStore for GatedStore<S> {
    fn resource(&self) -> String {
        self.inner.resource()
    }
    fn load(&self) -> BoxFuture<'_, Result<Option<Snapshot>>> {
        self.inner.load()
    }
    fn check(&self, known: Version) -> BoxFuture<'_, Result<Observed>> {
        self.inner.check(known)
    }
    fn commit(&self, expected: Version, bytes: Vec<u8>) -> BoxFuture<'_, Result<Committed>> {
        Box::pin(async move {
            self.gate.started.fetch_add(1, Ordering::SeqCst);
            self.gate.permits.acquire().await.unwrap().forget();
            self.inner.commit(expected, bytes).await
        })
    }
    fn commit_ops(
        &self,
        expected: Version,
        ops: Vec<Arc<[u8]>>,
        value: crate::Deferred,
    ) -> BoxFuture<'_, Result<Committed>> {
        Box::pin(async move {
            self.gate.started.fetch_add(1, Ordering::SeqCst);
            self.gate.permits.acquire().await.unwrap().forget();
            self.inner.commit_ops(expected, ops, value).await
        })
    }
    fn load_replay(&self) -> BoxFuture<'_, Result<Option<crate::Replay>>> {
        self.inner.load_replay()
    }
    fn release(&self) -> BoxFuture<'_, Result<()>> {
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

/// Waits until `done` (10 s at most, then panics).
async fn until(done: impl Fn() -> bool) {
    wait_until("the test's condition", Duration::from_secs(10), done).await;
}

/// Waits until `done`, checking every millisecond, and fails the test saying `what` after
/// `bound` (a guard against hanging, never a measure of speed).
async fn wait_until(what: &str, bound: Duration, done: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(
            start.elapsed() < bound,
            "timed out ({bound:?}) waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Waits for `future`, failing the test after 30 s (a hang) instead of hanging the suite.
async fn in_time<F: Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), future)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within 30 s"))
}

/// The stored bytes decoded as JSON of type `T`.
async fn stored_as<B: AsyncBackend, T: Value>(b: &B, r: &B::Resource) -> T {
    let bytes = b.stored(r).await.expect("the resource should exist");
    b.options(Options::new())
        .decode_stored(&bytes)
        .expect("the stored bytes should decode as the type")
}

/// Records every `(old, new)` a watch sees.
fn recorder<T: Clone + Value>(atom: &AsyncAtom<T>) -> Arc<Mutex<Vec<(T, T)>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    atom.add_watch("recorder", move |old: &T, new: &T| {
        log.lock().unwrap().push((old.clone(), new.clone()));
    });
    seen
}

/// Checks a watch log is one unbroken chain of `+1` steps from `from` to `to`.
fn assert_chain(seen: &[(u64, u64)], from: u64, to: u64) {
    let mut at = from;
    for (old, new) in seen {
        assert_eq!((*old, *new), (at, at + 1), "the watch chain breaks at {at}");
        at = *new;
    }
    assert_eq!(at, to, "the watch chain ends at {at}, not {to}");
}

/// Opening an empty resource validates and stores `init`.
pub async fn async_initial_value_is_written<B: AsyncBackend>(b: &B) {
    let r = b.fresh();
    assert_eq!(b.stored(&r).await, None);
    let atom = b.open(&r, vec![1u32, 2]).await;
    assert_eq!(*atom.deref(), [1, 2]);
    assert_eq!(stored_as::<_, Vec<u32>>(b, &r).await, [1, 2]);
}

/// Opening a resource that holds a value reads it; `init` is ignored, also across reopen.
pub async fn async_stored_value_wins_over_init<B: AsyncBackend>(b: &B) {
    let r = b.fresh();
    b.open(&r, 5u64).await.swap(|n| n + 1).await.unwrap();
    let again = b.open(&r, 99u64).await;
    assert_eq!(*again.deref(), 6);
    assert_eq!(stored_as::<_, u64>(b, &r).await, 6);
}

/// `swap`, `swap_vals`, `reset`, `reset_vals` and `compare_and_set` return what they
/// should and store the new value.
pub async fn async_swap_and_friends_return_what_they_should<B: AsyncBackend>(b: &B) {
    let r = b.fresh();
    let atom = b.open(&r, 1i64).await;
    assert_eq!(*atom.swap(|n| n + 1).await.unwrap(), 2);
    let (old, new) = atom.swap_vals(|n| n * 10).await.unwrap();
    assert_eq!((*old, *new), (2, 20));
    assert_eq!(*atom.reset(-3).await.unwrap(), -3);
    let (old, new) = atom.reset_vals(4).await.unwrap();
    assert_eq!((*old, *new), (-3, 4));
    assert!(!atom.compare_and_set(&3, 9).await.unwrap());
    assert_eq!(
        stored_as::<_, i64>(b, &r).await,
        4,
        "a failed CAS stores nothing"
    );
    assert!(atom.compare_and_set(&4, 9).await.unwrap());
    assert_eq!(*atom.deref(), 9);
    assert_eq!(stored_as::<_, i64>(b, &r).await, 9);
}

/// `compare_and_set` compares with the latest committed value, also one another writer
/// stored.
pub async fn async_compare_and_set_compares_with_the_latest_value<B: AsyncBackend>(b: &B) {
    let r = b.fresh();
    let atom = b.open(&r, "a".to_string()).await;
    let other = b.open(&r, String::new()).await;
    other.reset("d".into()).await.unwrap();
    assert!(!atom.compare_and_set(&"a".into(), "e".into()).await.unwrap());
    assert_eq!(stored_as::<_, String>(b, &r).await, "d");
    assert!(atom.compare_and_set(&"d".into(), "e".into()).await.unwrap());
    assert_eq!(stored_as::<_, String>(b, &r).await, "e");
}

/// Watches see each transition once, in commit order; clones share them; a panicking watch
/// breaks nothing; removing by key works.
pub async fn async_watches_see_each_transition_in_order<B: AsyncBackend>(b: &B) {
    let r = b.fresh();
    let atom = b.open(&r, 0u32).await;
    let seen = recorder(&atom);
    atom.add_watch("a-bad-one", |_: &u32, _: &u32| {
        panic!("watch panics on purpose")
    });
    let clone = atom.clone();
    clone.swap(|n| n + 1).await.unwrap();
    atom.reset(5).await.unwrap();
    atom.compare_and_set(&5, 6).await.unwrap();
    atom.compare_and_set(&5, 7).await.unwrap(); // no transition
    assert!(clone.remove_watch("a-bad-one"));
    assert!(!atom.remove_watch("a-bad-one"));
    atom.swap(|n| n * 2).await.unwrap();
    assert_eq!(*seen.lock().unwrap(), [(0, 1), (1, 5), (5, 6), (6, 12)]);
    assert_eq!(stored_as::<_, u32>(b, &r).await, 12);
}

/// `try_swap` on an async atom: `Err(e)` writes nothing, fires no watch and comes back as
/// it was; a refusal of a value another writer replaced is judged again on the stored one;
/// `Ok` commits (see the blocking case).
pub async fn async_try_swap_refusals_change_nothing_and_come_back_as_they_were<B: AsyncBackend>(
    b: &B,
) {
    for route in [Route::Check, Route::Commit] {
        let r = b.fresh();
        let atom = open_routed(b, &r, 10, route).await;
        let seen = recorder(&atom);
        let refused = atom
            .try_swap(|&n| Err::<u64, _>(Refused(n, Box::new(7))))
            .await;
        match refused {
            Err(Refused(10, token)) => assert_eq!(*token, 7),
            other => panic!("{route:?}: expected the caller's own error, got {other:?}"),
        }
        assert_eq!(stored_as::<_, u64>(b, &r).await, 10, "{route:?}");
        assert!(seen.lock().unwrap().is_empty(), "{route:?}: no watch fired");
        b.open(&r, 0u64).await.reset(100).await.unwrap();
        let spent = atom
            .try_swap(|&n| n.checked_sub(50).ok_or(Refused(n, Box::new(0))))
            .await;
        assert!(matches!(spent.as_deref(), Ok(50)), "{route:?}: {spent:?}");
        assert_eq!(stored_as::<_, u64>(b, &r).await, 50, "{route:?}");
    }
}

/// The caller's own error for the async `try_swap` case.
#[derive(Debug)]
struct Refused(u64, Box<u64>);

impl From<Error> for Refused {
    fn from(e: Error) -> Self {
        panic!("the atom failed: {e}")
    }
}

/// A validator refuses an invalid `init` (nothing stored), invalid changes (nothing
/// changes, no watch fires, the atom stays usable), and a validator the current value
/// fails; values other writers stored are adopted whatever the validator.
pub async fn async_validator_refuses_invalid_values_and_changes_nothing<B: AsyncBackend>(b: &B) {
    let r = b.fresh();
    let err = b
        .open_with(&r, -1i32, Options::new().validator(|n| *n >= 0))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
    assert_eq!(b.stored(&r).await, None, "nothing may be written");

    let atom = b
        .open_with(&r, 1i32, Options::new().validator(|n| *n < 5))
        .await
        .unwrap();
    let seen = recorder(&atom);
    assert!(matches!(
        atom.swap(|n| n + 10).await,
        Err(Error::Invalid { .. })
    ));
    assert!(matches!(atom.reset(9).await, Err(Error::Invalid { .. })));
    assert!(matches!(
        atom.compare_and_set(&1, 9).await,
        Err(Error::Invalid { .. })
    ));
    assert_eq!(*atom.deref(), 1);
    assert_eq!(stored_as::<_, i32>(b, &r).await, 1);
    assert!(seen.lock().unwrap().is_empty());
    assert_eq!(*atom.swap(|n| n + 1).await.unwrap(), 2, "still usable");
    assert!(matches!(
        atom.set_validator(|n| *n > 5),
        Err(Error::Invalid { .. })
    ));
    atom.clear_validator();
    b.open(&r, 0i32).await.reset(50).await.unwrap();
    atom.set_validator(|n| *n < 5).unwrap();
    assert_eq!(*atom.refresh().await.unwrap(), 50, "another writer's value");
    assert!(matches!(
        atom.swap(|n| n + 1).await,
        Err(Error::Invalid { .. })
    ));
    assert_eq!(*atom.reset(3).await.unwrap(), 3);
}

/// A panic inside `f` reaches the task that awaited the swap and changes nothing; the
/// atom is neither poisoned nor wedged: other tasks' swaps go on.
pub async fn async_panic_in_swap_function_changes_nothing<B: AsyncBackend>(b: &B) {
    let r = b.fresh();
    let atom = b.open(&r, 1u32).await;
    let seen = recorder(&atom);
    let task = tokio::spawn({
        let atom = atom.clone();
        async move { atom.swap(|_| panic!("f panics on purpose")).await }
    });
    let joined = task.await;
    assert!(
        joined.as_ref().is_err_and(|e| e.is_panic()),
        "the panic reaches the task: {joined:?}"
    );
    assert_eq!(*atom.deref(), 1);
    assert_eq!(stored_as::<_, u32>(b, &r).await, 1);
    assert!(seen.lock().unwrap().is_empty());
    let swaps: Vec<_> = (0..8)
        .map(|_| {
            let atom = atom.clone();
            tokio::spawn(async move { atom.swap(|n| n + 1).await })
        })
        .collect();
    for swap in swaps {
        in_time("a swap after a panic", swap)
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(*atom.deref(), 9);
    assert_eq!(stored_as::<_, u32>(b, &r).await, 9);
}

/// Stored data that does not decode, or decodes as another type, is an `Error::Decode`
/// naming the resource (or the type), and is left byte for byte.
pub async fn async_corrupt_or_mistyped_data_is_an_error_and_left_untouched<B: AsyncBackend>(b: &B) {
    let r = b.fresh();
    let corrupt = b"{\"half\": [1, 2";
    b.plant(&r, corrupt).await;
    let err = b.open_with(&r, 0u32, Options::new()).await.unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err}");
    let resource = b.store(&r).await.unwrap().resource();
    assert!(
        err.to_string().contains(&resource),
        "names {resource}: {err}"
    );
    assert_eq!(b.stored(&r).await.as_deref(), Some(&corrupt[..]));

    let r = b.fresh();
    let mistyped = b"{\"name\": \"not a number\"}";
    b.plant(&r, mistyped).await;
    let err = b.open_with(&r, 0u32, Options::new()).await.unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err}");
    assert!(err.to_string().contains("u32"), "names the type: {err}");
    assert_eq!(b.stored(&r).await.as_deref(), Some(&mistyped[..]));
}

/// Async atoms commit durably: asking for the background mode is an error, and nothing is
/// stored.
pub async fn async_background_mode_is_refused<B: AsyncBackend>(b: &B) {
    let r = b.fresh();
    let options = Options::new().commit_mode(crate::CommitMode::Background);
    assert!(b.open_with(&r, 1u8, options).await.is_err());
    assert_eq!(b.stored(&r).await, None);
}

/// `release` deletes the resource; every clone and every other handle then gets
/// `Error::Released`, `deref` still works, and nobody brings the resource back.
pub async fn async_release_stops_every_clone_and_every_other_handle<B: AsyncBackend>(b: &B) {
    let r = b.fresh();
    let atom = b.open(&r, 1u32).await;
    let clone = atom.clone();
    let other = b.open(&r, 0u32).await;
    atom.release().await.unwrap();
    assert_eq!(b.stored(&r).await, None, "the resource is deleted");
    assert!(atom.is_released() && clone.is_released());
    assert!(matches!(clone.swap(|n| n + 1).await, Err(Error::Released)));
    assert!(matches!(clone.reset(3).await, Err(Error::Released)));
    assert!(matches!(
        atom.compare_and_set(&1, 2).await,
        Err(Error::Released)
    ));
    assert_eq!(*clone.deref(), 1, "deref still works");
    atom.release().await.unwrap();
    assert!(matches!(other.swap(|n| n + 1).await, Err(Error::Released)));
    assert!(other.is_released());
    assert_eq!(b.stored(&r).await, None, "and does not bring it back");
}

/// How the calls of a stale handle reach the store in the stale-handle cases: through the
/// check a cheap-check store runs before each swap, or straight to the commit.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Route {
    Check,
    Commit,
}

/// An async store that says its check is not cheap, so that swaps go straight to the
/// commit.
struct SkipCheck<S>(S);

impl<S: AsyncStore> AsyncStore for SkipCheck<S> {
    fn resource(&self) -> String {
        self.0.resource()
    }
    fn load(&self) -> BoxFuture<'_, Result<Option<Snapshot>>> {
        self.0.load()
    }
    fn check(&self, known: Version) -> BoxFuture<'_, Result<Observed>> {
        self.0.check(known)
    }
    fn commit(&self, expected: Version, bytes: Vec<u8>) -> BoxFuture<'_, Result<Committed>> {
        self.0.commit(expected, bytes)
    }
    fn commit_ops(
        &self,
        expected: Version,
        ops: Vec<Arc<[u8]>>,
        value: crate::Deferred,
    ) -> BoxFuture<'_, Result<Committed>> {
        self.0.commit_ops(expected, ops, value)
    }
    fn load_replay(&self) -> BoxFuture<'_, Result<Option<crate::Replay>>> {
        self.0.load_replay()
    }
    fn release(&self) -> BoxFuture<'_, Result<()>> {
        self.0.release()
    }
    fn cheap_check(&self) -> bool {
        false
    }
    fn follow(&self, nudge: crate::Nudge) -> Result<crate::Subscription> {
        self.0.follow(nudge)
    }
}

/// Opens an atom whose swaps take `route` to the store.
async fn open_routed<B: AsyncBackend>(
    b: &B,
    r: &B::Resource,
    init: u64,
    route: Route,
) -> AsyncAtom<u64> {
    match route {
        Route::Check => b.open(r, init).await,
        Route::Commit => {
            let store = SkipCheck(b.store(r).await.unwrap());
            AsyncAtom::open(store, init, b.options(Options::new()))
                .await
                .unwrap()
        }
    }
}

/// Versions never repeat for a resource, also across release and re-creation: handles that
/// knew a released resource never write over the one created again in its place, never
/// report success and never adopt its value as their own continuation, whether their swaps
/// go through the store's check or straight to its commit (see
/// [`blocking::a_stale_handle_never_writes_over_a_re_created_resource`](super::blocking::a_stale_handle_never_writes_over_a_re_created_resource)).
pub async fn async_a_stale_handle_never_writes_over_a_re_created_resource<B: AsyncBackend>(b: &B) {
    for route in [Route::Check, Route::Commit] {
        let r = b.fresh();
        let mut stale = Vec::new();
        for _ in 0..5 {
            stale.push(open_routed(b, &r, 1, route).await);
        }
        let watched: Vec<_> = stale.iter().map(recorder).collect();
        b.open(&r, 0u64).await.release().await.unwrap();
        let c = b.open(&r, 5u64).await;
        assert_eq!(*c.deref(), 5, "C created the resource again, from its init");

        let calls: [(&str, Result<String>); 5] = [
            (
                "swap",
                stale[0].swap(|n| n + 1).await.map(|v| v.to_string()),
            ),
            ("reset", stale[1].reset(7).await.map(|v| v.to_string())),
            (
                "compare_and_set with the old value",
                stale[2]
                    .compare_and_set(&1, 7)
                    .await
                    .map(|ok| ok.to_string()),
            ),
            (
                "compare_and_set with C's value",
                stale[3]
                    .compare_and_set(&5, 7)
                    .await
                    .map(|ok| ok.to_string()),
            ),
            ("refresh", stale[4].refresh().await.map(|v| v.to_string())),
        ];
        for (call, result) in calls {
            assert!(
                matches!(result, Err(Error::Released)),
                "{route:?}: a stale handle's `{call}` must fail with Released, got {result:?}"
            );
        }
        assert_eq!(
            stored_as::<_, u64>(b, &r).await,
            5,
            "{route:?}: C's value survives"
        );
        for (atom, seen) in stale.iter().zip(&watched) {
            let again = atom.swap(|n| n + 100).await;
            assert!(
                matches!(again, Err(Error::Released)),
                "{route:?}: a stale handle's next swap must fail with Released, got {again:?}"
            );
            assert!(
                atom.is_released(),
                "{route:?}: the stale handle counts as released"
            );
            assert_eq!(*atom.deref(), 1, "{route:?}");
            assert!(seen.lock().unwrap().is_empty(), "{route:?}: no watch fired");
        }
        assert_eq!(stored_as::<_, u64>(b, &r).await, 5, "{route:?}");
        assert_eq!(*c.swap(|n| n + 1).await.unwrap(), 6, "{route:?}");
        assert_eq!(stored_as::<_, u64>(b, &r).await, 6, "{route:?}");
    }
}

/// The same promise when the new resource went through as many commits as the old one:
/// for every count of commits by C up to four more than A's, A's swap — through the check
/// and straight to the commit — fails with `Error::Released` and C's value survives.
pub async fn async_versions_never_repeat_across_release_and_re_creation<B: AsyncBackend>(b: &B) {
    for route in [Route::Check, Route::Commit] {
        for commits_by_c in 0..6u64 {
            let r = b.fresh();
            let a = open_routed(b, &r, 0, route).await;
            a.swap(|n| n + 1).await.unwrap();
            a.swap(|n| n + 1).await.unwrap();
            b.open(&r, 0u64).await.release().await.unwrap();
            let c = b.open(&r, 100u64).await;
            for _ in 0..commits_by_c {
                c.swap(|n| n + 1).await.unwrap();
            }
            let expected = 100 + commits_by_c;
            let result = a.swap(|n| n + 1).await;
            assert!(
                matches!(result, Err(Error::Released)),
                "{route:?}, after {commits_by_c} commits by C: A's swap must fail with \
                 Released, got {result:?}"
            );
            assert_eq!(
                stored_as::<_, u64>(b, &r).await,
                expected,
                "{route:?}, after {commits_by_c} commits by C: C's value survives"
            );
            assert_eq!(*a.deref(), 2);
        }
    }
}

/// 16 spawned tasks × 200 swaps of `+1` on clones of one atom end at exactly 3200, and the
/// watch sees every transition, in order.
pub async fn async_sixteen_tasks_times_two_hundred<B: AsyncBackend>(b: &B) {
    let r = b.fresh();
    let atom = b.open(&r, 0u64).await;
    let seen = recorder(&atom);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let atom = atom.clone();
            tokio::spawn(async move {
                for _ in 0..200 {
                    atom.swap(|n| n + 1).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        in_time("a task of swaps", task).await.unwrap();
    }
    assert_eq!(*atom.deref(), 3200);
    assert_eq!(stored_as::<_, u64>(b, &r).await, 3200);
    assert_chain(&seen.lock().unwrap(), 0, 3200);
}

/// Two atoms on one resource (as two processes would have), four tasks each, lose no swap
/// of each other's; each watch sees one chain.
pub async fn async_two_atoms_on_one_resource_stay_exact<B: AsyncBackend>(b: &B) {
    let r = b.fresh();
    let first = b.open(&r, 0u64).await;
    let second = b.open(&r, 0u64).await;
    let seen = recorder(&first);
    let mut tasks = Vec::new();
    for atom in [&first, &second] {
        for _ in 0..4 {
            let atom = atom.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..50 {
                    atom.swap(|n| n + 1).await.unwrap();
                }
            }));
        }
    }
    for task in tasks {
        in_time("a task of swaps", task).await.unwrap();
    }
    assert_eq!(stored_as::<_, u64>(b, &r).await, 400);
    assert_eq!(*first.refresh().await.unwrap(), 400);
    assert_eq!(*second.refresh().await.unwrap(), 400);
    let seen = seen.lock().unwrap();
    for pair in seen.windows(2) {
        assert_eq!(pair[0].1, pair[1].0, "transitions out of order: {pair:?}");
    }
    assert_eq!(seen.last().map(|t| t.1), Some(400));
}

/// `refresh` reads what another writer committed; `deref` never touches storage; a swap
/// starts from the latest value.
pub async fn async_refresh_picks_up_other_writers<B: AsyncBackend>(b: &B) {
    let r = b.fresh();
    let reader = b.open(&r, 0u32).await;
    let seen = recorder(&reader);
    let writer = b.open(&r, 0u32).await;
    writer.reset(42).await.unwrap();
    assert_eq!(*reader.deref(), 0, "deref never touches storage");
    assert_eq!(*reader.refresh().await.unwrap(), 42);
    assert_eq!(*reader.deref(), 42);
    writer.reset(43).await.unwrap();
    assert_eq!(*reader.swap(|n| n + 1).await.unwrap(), 44);
    assert_eq!(*seen.lock().unwrap(), [(0, 42), (42, 43), (43, 44)]);
}

/// Opens an atom on a fresh resource through a [`FaultyAsyncStore`].
async fn faulty<B: AsyncBackend, T: Value>(b: &B, init: T) -> (B::Resource, Faults, AsyncAtom<T>) {
    let r = b.fresh();
    let faults = Faults::default();
    let store = FaultyAsyncStore::new(b.store(&r).await.unwrap(), faults.clone());
    let atom = AsyncAtom::open(store, init, b.options(Options::new()))
        .await
        .unwrap();
    (r, faults, atom)
}

/// A commit failing before it reaches the store changes nothing in memory or storage and
/// fires no watch; the atom stays usable.
pub async fn async_a_failed_commit_leaves_the_atom_unchanged<B: AsyncBackend>(b: &B) {
    let (r, faults, atom) = faulty(b, 10u32).await;
    let seen = recorder(&atom);
    faults.fail_commit(1, FailPoint::BeforeWrite);
    let err = atom.swap(|n| n + 1).await.unwrap_err();
    assert!(err.to_string().contains("injected"), "{err}");
    assert!(!err.may_have_been_stored(), "{err}");
    assert_eq!(*atom.deref(), 10);
    assert_eq!(stored_as::<_, u32>(b, &r).await, 10, "storage unchanged");
    assert!(seen.lock().unwrap().is_empty(), "no watch fired");
    assert_eq!(*atom.swap(|n| n + 1).await.unwrap(), 11, "still usable");
    assert_eq!(stored_as::<_, u32>(b, &r).await, 11);
    assert_eq!(*seen.lock().unwrap(), [(10, 11)]);
}

/// A commit whose answer is lost says the change may have been stored, and the atom
/// settles from what the store holds: deref and the watch show the stored change, and the
/// next swap builds on it instead of losing or repeating it.
pub async fn async_a_lost_answer_is_picked_up_not_overwritten<B: AsyncBackend>(b: &B) {
    let (r, faults, atom) = faulty(b, vec![0u32]).await;
    let seen = recorder(&atom);
    faults.fail_commit(1, FailPoint::AfterWrite);
    let err = atom
        .swap(|v| [v.as_slice(), &[1]].concat())
        .await
        .unwrap_err();
    assert!(err.may_have_been_stored(), "{err}");
    assert_eq!(stored_as::<_, Vec<u32>>(b, &r).await, [0, 1]);
    assert_eq!(*atom.deref(), [0, 1]);
    assert_eq!(*seen.lock().unwrap(), [(vec![0], vec![0, 1])]);
    atom.swap(|v| [v.as_slice(), &[2]].concat()).await.unwrap();
    assert_eq!(stored_as::<_, Vec<u32>>(b, &r).await, [0, 1, 2]);
    assert_eq!(
        *seen.lock().unwrap(),
        [(vec![0], vec![0, 1]), (vec![0, 1], vec![0, 1, 2])]
    );
}

/// Failed and lost commits among eight tasks of swaps: nothing acknowledged is lost, no
/// swap whose answer was lost is applied twice (stored = acknowledged + uncertain, as the
/// lost ones were stored), and memory, storage and the watch chain agree.
pub async fn async_commit_faults_among_tasks_lose_nothing_and_repeat_nothing<B: AsyncBackend>(
    b: &B,
) {
    let (r, faults, atom) = faulty(b, 0u64).await;
    let seen = recorder(&atom);
    for (n, point) in [
        (3, FailPoint::BeforeWrite),
        (7, FailPoint::AfterWrite),
        (12, FailPoint::BeforeWrite),
        (20, FailPoint::AfterWrite),
    ] {
        faults.fail_commit(n, point);
    }
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let atom = atom.clone();
            tokio::spawn(async move {
                let (mut ok, mut uncertain) = (0u64, 0u64);
                for _ in 0..25 {
                    match atom.swap(|n| n + 1).await {
                        Ok(_) => ok += 1,
                        Err(e) if e.may_have_been_stored() => uncertain += 1,
                        Err(e) => assert!(e.to_string().contains("injected"), "{e}"),
                    }
                }
                (ok, uncertain)
            })
        })
        .collect();
    let (mut ok, mut uncertain) = (0, 0);
    for task in tasks {
        let (o, u) = in_time("a task of swaps", task).await.unwrap();
        ok += o;
        uncertain += u;
    }
    assert!(faults.commits() >= 20, "every fault was met");
    assert!(uncertain >= 2, "both lost answers hit a swap");
    let stored = stored_as::<_, u64>(b, &r).await;
    assert_eq!(
        stored,
        ok + uncertain,
        "stored {stored}, acknowledged {ok}, uncertain {uncertain}"
    );
    assert_eq!(*atom.refresh().await.unwrap(), stored);
    // One unbroken chain (a batch whose answer was lost is seen as one transition when the
    // atom settles from the store), ending at the stored value.
    let seen = seen.lock().unwrap();
    for pair in seen.windows(2) {
        assert_eq!(pair[0].1, pair[1].0, "transitions out of order: {pair:?}");
    }
    assert_eq!(seen.last().map(|t| t.1), Some(stored));
}

/// Opens a gated atom on a fresh resource: its commits land when `gate` lets them (the
/// initial value's is let through).
async fn gated<B: AsyncBackend, T: Value>(b: &B, init: T) -> (B::Resource, Gate, AsyncAtom<T>) {
    let r = b.fresh();
    let gate = Gate::new();
    gate.open(1); // the initial value
    let store = GatedStore::new(b.store(&r).await.unwrap(), gate.clone());
    let atom = AsyncAtom::open(store, init, b.options(Options::new()))
        .await
        .unwrap();
    assert_eq!(gate.started(), 1, "the initial value was committed");
    (r, gate, atom)
}

/// A dropped call never makes another call's change apply twice. Swap C commits; L then F
/// join the next batch, L first so that it leads; L is dropped while its commit (which
/// carries F's value) is in flight; the commit lands anyway. F must come back with that
/// commit's outcome rather than run its change a second time: three increments started,
/// so the value ends at 3.
pub async fn async_a_dropped_leader_never_makes_a_follower_apply_twice<B: AsyncBackend>(b: &B) {
    let (r, gate, atom) = gated(b, 0u64).await;
    let swap = |atom: &AsyncAtom<u64>| {
        let atom = atom.clone();
        tokio::spawn(async move { atom.swap(|n| n + 1).await })
    };
    let c = swap(&atom);
    gate.until_started(2).await;
    let l = swap(&atom);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let f = swap(&atom);
    tokio::time::sleep(Duration::from_millis(20)).await;
    gate.open(1); // C lands
    assert_eq!(*in_time("C", c).await.unwrap().unwrap(), 1);
    // L's batch (L and F) is now on its way to the store: drop L, then let it land.
    gate.until_started(3).await;
    l.abort();
    assert!(l.await.unwrap_err().is_cancelled());
    // One permit for L's commit, one more should F (on a slow machine) have come too late
    // to join L's batch; either way three increments started, and a fourth commit (F's
    // change applied again) could land and would show.
    gate.open(2);
    let f = in_time("F, whose leader was dropped", f)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(*f, 3, "F's outcome is the commit that carried its value");
    assert_eq!(
        stored_as::<_, u64>(b, &r).await,
        3,
        "three increments started; no more may land"
    );
    assert_eq!(*atom.deref(), 3);
    gate.open(100);
    assert_eq!(*atom.swap(|n| n + 1).await.unwrap(), 4, "the atom goes on");
}

/// If every caller of a batch went away while its commit was in flight, the next call
/// settles that commit first and builds on what it stored; the watch sees both.
pub async fn async_an_orphaned_commit_is_settled_by_the_next_call<B: AsyncBackend>(b: &B) {
    let (r, gate, atom) = gated(b, 0u64).await;
    let seen = recorder(&atom);
    let lost = tokio::spawn({
        let atom = atom.clone();
        async move { atom.swap(|n| n + 10).await }
    });
    gate.until_started(2).await;
    lost.abort();
    let _ = lost.await;
    gate.open(100);
    let next = in_time("the next call", atom.swap(|n| n + 1)).await;
    assert_eq!(*next.unwrap(), 11);
    assert_eq!(stored_as::<_, u64>(b, &r).await, 11);
    assert_eq!(*seen.lock().unwrap(), [(0, 10), (10, 11)]);
}

/// Twelve tasks append their own ids; a third of the calls are cut off by timeouts at
/// various moments. No id may be stored twice (a change applied twice), every acknowledged
/// id must be stored, and the watch sees one chain ending at the stored value.
pub async fn async_random_cancellation_never_applies_a_change_twice<B: AsyncBackend>(b: &B) {
    let r = b.fresh();
    let atom = b.open(&r, Vec::<u32>::new()).await;
    let chain = Arc::new(Mutex::new(Vec::<(usize, usize)>::new()));
    let log = Arc::clone(&chain);
    atom.add_watch("chain", move |old: &Vec<u32>, new: &Vec<u32>| {
        log.lock().unwrap().push((old.len(), new.len()))
    });
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let tasks: Vec<_> = (0..12u32)
        .map(|t| {
            let atom = atom.clone();
            let acknowledged = Arc::clone(&acknowledged);
            tokio::spawn(async move {
                for i in 0..30u32 {
                    let id = t * 1000 + i;
                    let cut = (t + i) % 3 == 0;
                    let limit = if cut {
                        Duration::from_micros(50 + u64::from(i) * 97)
                    } else {
                        Duration::from_secs(60)
                    };
                    let swap = atom.swap(move |v| [v.as_slice(), &[id]].concat());
                    if let Ok(result) = tokio::time::timeout(limit, swap).await {
                        result.unwrap();
                        acknowledged.lock().unwrap().insert(id);
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        in_time("a task of swaps", task).await.unwrap();
    }
    let last = in_time("refresh", atom.refresh()).await.unwrap();
    let stored: Vec<u32> = stored_as(b, &r).await;
    assert_eq!(*last, stored);
    let unique: BTreeSet<u32> = stored.iter().copied().collect();
    assert_eq!(
        unique.len(),
        stored.len(),
        "a change was applied twice: {stored:?}"
    );
    let acknowledged = acknowledged.lock().unwrap();
    assert!(
        acknowledged.is_subset(&unique),
        "acknowledged changes are missing: {:?}",
        acknowledged.difference(&unique).collect::<Vec<_>>()
    );
    let chain = chain.lock().unwrap();
    for pair in chain.windows(2) {
        assert_eq!(pair[0].1, pair[1].0, "transitions out of order: {pair:?}");
    }
    assert_eq!(chain.last().map(|t| t.1), Some(stored.len()));
}

/// Waits until `done` (60 s at most, then fails the test saying `what`): for what a live
/// atom does by itself, soon but not at once.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    wait_until(what, Duration::from_secs(60), done).await;
}

/// A live async atom follows another writer's commits with no `refresh`: `deref`, the
/// watches (one unbroken, rising chain; bursts may merge) and the receiver of
/// [`changes`](AsyncAtom::changes) all see them; a release by the other writer releases
/// it.
pub async fn async_a_live_atom_follows_other_writers_without_refresh<B: AsyncBackend>(b: &B) {
    let r = b.fresh();
    let live = b
        .open_with(&r, 0u64, Options::new().live(true))
        .await
        .expect("a live atom opens");
    let seen = recorder(&live);
    let mut changes = live.changes();
    let writer = b.open(&r, 0u64).await;
    for _ in 0..20 {
        writer.swap(|n| n + 1).await.unwrap();
    }
    let last = in_time("the receiver of changes sees the last commit", async {
        loop {
            changes.changed().await.expect("the atom is alive");
            let now = **changes.borrow_and_update();
            if now == 20 {
                return now;
            }
        }
    })
    .await;
    assert_eq!(last, 20);
    assert_eq!(*live.deref(), 20);
    eventually("the watches saw the last commit", || {
        seen.lock().unwrap().last().map(|t| t.1) == Some(20)
    })
    .await;
    super::assert_rising_chain(&seen.lock().unwrap(), 0, 20);
    writer.release().await.unwrap();
    eventually("the live atom is released", || live.is_released()).await;
    assert!(matches!(live.swap(|n| n + 1).await, Err(Error::Released)));
}

/// A live async atom that swaps too, from many tasks, against another writer: all stay
/// exact and the live atom ends at the last value without `refresh`.
pub async fn async_a_live_atom_that_writes_too_stays_exact<B: AsyncBackend>(b: &B) {
    let r = b.fresh();
    let live = b
        .open_with(&r, 0u64, Options::new().live(true))
        .await
        .expect("a live atom opens");
    let writer = b.open(&r, 0u64).await;
    let tasks: Vec<_> = [&live, &writer]
        .into_iter()
        .flat_map(|atom| (0..4).map(move |_| atom.clone()))
        .map(|atom| {
            tokio::spawn(async move {
                for _ in 0..25 {
                    atom.swap(|n| n + 1).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    // The last of them may be the live atom's own: one more by the other writer shows
    // that it follows.
    writer.swap(|n| n + 1).await.unwrap();
    eventually("the live atom shows every commit", || *live.deref() == 201).await;
    assert_eq!(stored_as::<_, u64>(b, &r).await, 201);
}

/// A live async atom whose catch-up fails tries again a little later.
pub async fn async_a_live_atom_tries_a_failed_catch_up_again<B: AsyncBackend>(b: &B) {
    let r = b.fresh();
    let faults = Faults::default();
    let store = FaultyAsyncStore::new(b.store(&r).await.unwrap(), faults.clone());
    let live = AsyncAtom::open(store, 0u64, b.options(Options::new().live(true)))
        .await
        .expect("a live atom opens");
    faults.fail_checks(3);
    b.open(&r, 0u64).await.reset(7).await.unwrap();
    eventually(
        "the live atom shows the commit once its checks work again",
        || *live.deref() == 7,
    )
    .await;
}

/// Ops applied by tasks of two atoms on one resource lose none and apply none twice; the
/// value returned is the value the op made, and a fresh atom replays to the same total.
pub async fn async_ops_from_tasks_are_exact_and_replay_to_the_same_value<B: AsyncBackend>(b: &B) {
    let r = b.fresh();
    let ops = || Options::new().ops();
    let first = b.open_with(&r, Tally::default(), ops()).await.unwrap();
    let second = b.open_with(&r, Tally::default(), ops()).await.unwrap();
    let mut tasks = Vec::new();
    for atom in [&first, &second] {
        for _ in 0..4 {
            let atom = atom.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..25 {
                    atom.apply(TallyOp::Add(1)).await.unwrap();
                }
            }));
        }
    }
    for task in tasks {
        in_time("a task of ops", task).await.unwrap();
    }
    assert_eq!(first.refresh().await.unwrap().total, 200);
    assert_eq!(second.refresh().await.unwrap().total, 200);
    let noted = first.apply(TallyOp::Note("done".into())).await.unwrap();
    assert_eq!((noted.total, noted.note.as_deref()), (200, Some("done")));
    let fresh = b.open_with(&r, Tally::default(), ops()).await.unwrap();
    assert_eq!(*fresh.deref(), *noted);
    let err = fresh.apply(TallyOp::Scale(f64::NAN)).await.unwrap_err();
    assert!(matches!(err, Error::Encode { .. }), "{err}");
}

/// Ops whose calls are dropped at random points (timeouts of a few tens of microseconds,
/// while their batch may be committing) are applied once or not at all: every
/// acknowledged op is in the value, none twice, and the watches see one chain; a fresh
/// atom replays to the same value.
pub async fn async_cancelled_ops_are_never_applied_twice<B: AsyncBackend>(b: &B) {
    let r = b.fresh();
    let atom = b
        .open_with(&r, Tally::default(), Options::new().ops())
        .await
        .unwrap();
    let chain = Arc::new(Mutex::new(Vec::<(usize, usize)>::new()));
    let log = Arc::clone(&chain);
    atom.add_watch("chain", move |old: &Tally, new: &Tally| {
        log.lock().unwrap().push((old.log.len(), new.log.len()))
    });
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let tasks: Vec<_> = (0..8u32)
        .map(|t| {
            let atom = atom.clone();
            let acknowledged = Arc::clone(&acknowledged);
            tokio::spawn(async move {
                for i in 0..25u32 {
                    let id = t * 1000 + i;
                    let limit = if (t + i) % 3 == 0 {
                        Duration::from_micros(50 + u64::from(i) * 97)
                    } else {
                        Duration::from_secs(60)
                    };
                    let apply = atom.apply(TallyOp::Log(id));
                    if let Ok(result) = tokio::time::timeout(limit, apply).await {
                        result.unwrap();
                        acknowledged.lock().unwrap().insert(id);
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        in_time("a task of ops", task).await.unwrap();
    }
    let last = in_time("refresh", atom.refresh()).await.unwrap();
    let fresh = b
        .open_with(&r, Tally::default(), Options::new().ops())
        .await
        .unwrap();
    assert_eq!(
        *fresh.deref(),
        *last,
        "a fresh atom replays to the same value"
    );
    let unique: BTreeSet<u32> = last.log.iter().copied().collect();
    assert_eq!(
        unique.len(),
        last.log.len(),
        "an op was applied twice: {:?}",
        last.log
    );
    let acknowledged = acknowledged.lock().unwrap();
    assert!(
        acknowledged.is_subset(&unique),
        "acknowledged ops are missing: {:?}",
        acknowledged.difference(&unique).collect::<Vec<_>>()
    );
    let chain = chain.lock().unwrap();
    for pair in chain.windows(2) {
        assert_eq!(pair[0].1, pair[1].0, "transitions out of order: {pair:?}");
    }
    assert_eq!(chain.last().map(|t| t.1), Some(last.log.len()));
}

/// Async atoms opening data of an older schema at the same moment (tasks on the
/// runtime) store the migrated value once, with its schema; every atom ends with that
/// value; a failing step leaves the data byte for byte as it was.
pub async fn async_migrations_run_once_at_open<B: AsyncBackend>(b: &B) {
    use super::blocking::{ada, nobody, user_migrations};
    let r = b.fresh();
    b.open(&r, ada()).await;
    let before = b.stored(&r).await;
    let failing = crate::Migrations::new()
        .step(Ok::<_, String>)
        .step(|_| Err("no"));
    let err = b
        .open_with(&r, nobody(), Options::new().migrations(failing))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Migration { step: 1, .. }), "{err}");
    assert_eq!(b.stored(&r).await, before);

    let mut openers = Vec::new();
    for id in 1..=4u32 {
        let store = b.store(&r).await.unwrap();
        let runs = Arc::new([0.into(), 0.into()]);
        let options = b.options(Options::new().migrations(user_migrations(&runs, id)));
        openers.push(tokio::spawn(async move {
            AsyncAtom::open(store, nobody(), options)
                .await
                .unwrap()
                .deref()
                .by
        }));
    }
    let mut seen = Vec::new();
    for opener in openers {
        seen.push(opener.await.unwrap());
    }
    let stored: serde_json::Value = stored_as(b, &r).await;
    assert_eq!(stored["enduro_schema"], 2, "{stored}");
    assert_eq!(stored["value"]["email"], "ada@example.com", "{stored}");
    let by = stored["value"]["by"].as_u64().unwrap();
    assert!(
        seen.iter().all(|&id| u64::from(id) == by),
        "every atom has the one stored migration ({by}), not its own: {seen:?}"
    );
}
