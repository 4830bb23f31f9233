//! The async driver: [`AsyncAtom`] over an [`AsyncStore`], for tokio services.

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use tokio::runtime::Handle;
use tokio::sync::{Notify, watch};

use crate::apply::Apply;
use crate::error::{Error, Result};
use crate::live::Live;
use crate::options::{self, Options, Validation};
use crate::protocol::{
    After, Answer, Call, Exclusive, Group, Input, Mode, Next, Purpose, Step, StoreCalls, Stored,
    Txn,
};
use crate::state::{
    Core, Opening, Outcome, Refusal, digest, encode, lock, panic_message, validate_with,
};
use crate::store::{
    Committed, Nudge, Observed, Replay, Snapshot, Subscription, Version, cannot_follow,
};
use crate::value::Value;

/// A boxed future that is `Send`, as [`AsyncStore`] methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An async backend: the same duties as [`Store`](crate::Store), with futures, under the
/// same [contract](crate::Store#contract). The value arrives already encoded, since an
/// async store sends it over the network anyway.
///
/// One more rule: the atom may drop a future before it completes (when the atom itself
/// goes away mid-commit); the resource must then hold the old value or the new one, never
/// a mix. A commit whose future is dropped after the request was sent counts as an
/// unknown outcome, which the atom's next version check resolves.
///
/// ```
/// use enduro::store::{AsyncStore, BoxFuture, Committed, Observed, Snapshot, Store};
/// use enduro::{AsyncAtom, Error, MemStore, Result, Version};
///
/// /// An async store that forwards to a blocking one.
/// struct Forward(MemStore);
///
/// impl AsyncStore for Forward {
///     fn resource(&self) -> String {
///         Store::resource(&self.0)
///     }
///     fn load(&self) -> BoxFuture<'_, Result<Option<Snapshot>>> {
///         Box::pin(async move { Store::load(&self.0) })
///     }
///     fn check(&self, known: Version) -> BoxFuture<'_, Result<Observed>> {
///         Box::pin(async move { Store::check(&self.0, known) })
///     }
///     fn commit(&self, expected: Version, bytes: Vec<u8>) -> BoxFuture<'_, Result<Committed>> {
///         Box::pin(async move {
///             Store::commit(&self.0, expected, &mut |out| {
///                 // Memory is not a file: a failure here is the backend's, with no path.
///                 out.write_all(&bytes).map_err(|e| {
///                     let message = format!("cannot write the value: {e}");
///                     Error::backend(Store::resource(&self.0), message, Some(Box::new(e)))
///                 })
///             })
///         })
///     }
///     fn release(&self) -> BoxFuture<'_, Result<()>> {
///         Box::pin(async move { Store::release(&self.0) })
///     }
/// }
/// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// # rt.block_on(async {
/// let atom = AsyncAtom::open(Forward(MemStore::new()), 1, Default::default()).await?;
/// assert_eq!(*atom.swap(|n| n + 1).await?, 2);
/// # Ok::<(), enduro::Error>(())
/// # }).unwrap();
/// ```
pub trait AsyncStore: Send + Sync + 'static {
    /// Names the resource for error messages. Never includes a password.
    fn resource(&self) -> String;
    /// Reads the stored bytes and their version; `None` when the resource does not exist.
    fn load(&self) -> BoxFuture<'_, Result<Option<Snapshot>>>;
    /// Tells whether the resource is still at version `known`, cheaply when it is.
    fn check(&self, known: Version) -> BoxFuture<'_, Result<Observed>>;
    /// Durably stores `bytes` if and only if the resource is at version `expected`.
    fn commit(&self, expected: Version, bytes: Vec<u8>) -> BoxFuture<'_, Result<Committed>>;
    /// Deletes the resource.
    fn release(&self) -> BoxFuture<'_, Result<()>>;
    /// Like [`commit`](AsyncStore::commit), for a change made of ops; see
    /// [`Store::commit_ops`](crate::Store::commit_ops). The whole value is encoded only if
    /// `value` is called. The default encodes it and commits it.
    fn commit_ops(
        &self,
        expected: Version,
        ops: Vec<Arc<[u8]>>,
        value: Deferred,
    ) -> BoxFuture<'_, Result<Committed>> {
        let _ = ops;
        Box::pin(async move {
            let mut bytes = Vec::new();
            value(&mut bytes)?;
            self.commit(expected, bytes).await
        })
    }
    /// The stored value and the ops after it; see
    /// [`Store::load_replay`](crate::Store::load_replay). The default is `load`'s value.
    fn load_replay(&self) -> BoxFuture<'_, Result<Option<Replay>>> {
        Box::pin(async move { Ok(self.load().await?.map(Replay::from)) })
    }
    /// Whether `check` is cheap enough to run before every swap; see
    /// [`Store::cheap_check`](crate::Store::cheap_check). `false` unless overridden, as a
    /// store behind a network should answer: a swap is then one round trip when nobody
    /// else wrote.
    fn cheap_check(&self) -> bool {
        false
    }
    /// Whether atoms on this store check that every value reads back; see
    /// [`Store::checks_round_trip`](crate::Store::checks_round_trip). `false` unless
    /// overridden.
    fn checks_round_trip(&self) -> bool {
        false
    }
    /// Starts calling `nudge` whenever the resource may have changed; see
    /// [`Store::follow`](crate::Store::follow). The default fails: this store's atoms
    /// cannot be live.
    fn follow(&self, nudge: Nudge) -> Result<Subscription> {
        let _ = nudge;
        Err(cannot_follow(self.resource()))
    }
}

/// Writes the whole value of a change made of ops, if the store asks for it (see
/// [`AsyncStore::commit_ops`]); it fails with [`Error::Encode`] when the value does not
/// encode.
pub type Deferred = Box<dyn FnOnce(&mut dyn std::io::Write) -> Result<()> + Send + 'static>;

/// The async twin of [`Atom`](crate::Atom): same semantics, same method names; the ones
/// that touch storage are `async`. Clone, `Send` and `Sync`, with `Send` futures, so it
/// can be shared across spawned tasks. It never blocks the runtime while waiting for
/// storage.
///
/// Dropping a call's future (a timeout, a cancelled task) never makes another call's
/// change apply twice: swaps that share a commit hand it to whichever of them still
/// waits — or to the next call, if none does — which drives it to the store's answer.
/// The dropped call's own change may or may not be stored, as with any interrupted write.
///
/// ```
/// # use enduro::{AsyncAtom, AsyncStore};
/// # fn demo<S: AsyncStore>(store: S) -> impl std::future::Future<Output = enduro::Result<()>> + Send {
/// # async move {
/// let atom = AsyncAtom::open(store, 0u64, Default::default()).await?;
/// let task = {
///     let atom = atom.clone();
///     async move { atom.swap(|n| n + 1).await }
/// };
/// task.await?;
/// assert_eq!(*atom.deref(), 1);
/// # Ok(()) } }
/// ```
pub struct AsyncAtom<T> {
    inner: Arc<Inner<T>>,
}

struct Inner<T> {
    core: Core<T>,
    store: Arc<dyn AsyncStore>,
    group: Group<T>,
    /// The store calls of the batch being committed, owned here rather than by the swap
    /// that leads it: a commit that may have reached the store is driven to its answer by
    /// whoever waits (the leader, its followers, or the next call if all went away), so a
    /// dropped caller never leaves its batch's outcome unknown to the others.
    flight: Mutex<Option<Flight>>,
    /// Wakes every waiter when the flight can make progress.
    wake_all: Arc<WakeAll>,
    /// A live atom's merged nudges, and what keeps its store following the resource.
    live: Live,
}

/// A batch's store calls in progress.
struct Flight {
    batch: u64,
    calls: BoxFuture<'static, Stored>,
}

/// A waker that wakes every task waiting on the atom, not only the last one that polled
/// the flight: any of them may be the one to drive it on.
struct WakeAll(Arc<Notify>);

impl Wake for WakeAll {
    fn wake(self: Arc<Self>) {
        self.0.notify_waiters();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.notify_waiters();
    }
}

impl<T> Clone for AsyncAtom<T> {
    fn clone(&self) -> Self {
        AsyncAtom {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T: Value> fmt::Debug for AsyncAtom<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncAtom")
            .field("resource", &self.inner.core.resource())
            .field("released", &self.is_released())
            .finish_non_exhaustive()
    }
}

impl<T: Value> AsyncAtom<T> {
    /// Opens an atom on `store`, as [`Atom::open`](crate::Atom::open) does.
    /// [`CommitMode::Background`](crate::CommitMode::Background) is only offered by
    /// [`Atom`](crate::Atom); asking for it here is an error.
    pub async fn open<S: AsyncStore>(store: S, init: T, options: Options<T>) -> Result<Self> {
        let resource = store.resource();
        let options = options
            .checked_if(store.checks_round_trip())
            .resolved(&resource)?;
        if options.mode != crate::CommitMode::Durable {
            return Err(Error::Backend {
                resource,
                message: "the background commit mode is offered by blocking atoms only; async atoms commit durably".into(),
                source: None,
            });
        }
        let (value, version, digest) = loop {
            // Data of an older schema is stored migrated, once; `init` where there is no
            // data. On a conflict, another writer stored first: read what they stored.
            let (migrated, expected) =
                match Core::opening(&resource, &options, store.load_replay().await?)? {
                    Opening::Existing(value, version, digest) => break (value, version, digest),
                    Opening::Migrated(value, expected) => (Some(value), expected),
                    Opening::Create(expected) => {
                        validate_with(options.validator.as_ref(), &init)?;
                        (None, expected)
                    }
                };
            let mut bytes = Vec::new();
            encode(
                &resource,
                &options,
                migrated.as_ref().unwrap_or(&init),
                &mut bytes,
            )?;
            let digest = digest(&bytes);
            if let Committed::Done(version) = store.commit(expected, bytes).await? {
                break (migrated.unwrap_or(init), version, Some(digest));
            }
        };
        let live = options.live;
        let group = Group::new();
        let wake_all = Arc::new(WakeAll(Arc::clone(group.notifier())));
        let atom = AsyncAtom {
            inner: Arc::new(Inner {
                core: Core::new(resource, options, Arc::new(value), version, digest),
                store: Arc::new(store),
                group,
                flight: Mutex::new(None),
                wake_all,
                live: Live::new(),
            }),
        };
        if live {
            atom.follow()?;
        }
        Ok(atom)
    }

    /// Makes the atom live: its store nudges it when the resource changes, and a task on
    /// the runtime that opened it refreshes it. One catch-up right away covers what was
    /// committed between the load and the start of following.
    fn follow(&self) -> Result<()> {
        let inner = &self.inner;
        let runtime = Handle::try_current().map_err(|_| {
            Error::backend(
                inner.core.resource(),
                "a live async atom must be opened inside a tokio runtime, which its \
                 catch-ups run on",
                None,
            )
        })?;
        let me = Arc::downgrade(inner);
        let schedule = move || {
            let me = me.clone();
            runtime.spawn(async move {
                let Some(inner) = me.upgrade() else { return };
                if !inner
                    .live
                    .due(inner.core.is_released(), inner.core.current().1)
                {
                    return;
                }
                // An error leaves the atom as it was (the next change or refresh reports
                // it); the catch-up is tried again a little later.
                let atom = AsyncAtom { inner };
                let result = atom.refresh_for(Purpose::CatchUp).await;
                atom.inner.live.ended(atom.inner.core.resource(), &result);
            });
        };
        inner
            .live
            .start(|nudge| inner.store.follow(nudge), schedule)
    }

    /// A receiver of the atom's value, to await its changes: it holds the current value
    /// and is marked changed after each committed transition (this atom's, and for a
    /// [live](crate::Options::live) atom, other writers'), once its watches have seen it.
    /// A receiver that falls behind sees the latest value, not every one in between;
    /// use a watch ([`add_watch`](AsyncAtom::add_watch)) to see each transition.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// # let atom = enduro::AsyncAtom::open(enduro::testing::Inline(enduro::MemStore::new()), 1i32, Default::default()).await?;
    /// let mut changes = atom.changes();
    /// let waiter = async move {
    ///     changes.changed().await.expect("the atom is alive");
    ///     **changes.borrow_and_update()
    /// };
    /// atom.swap(|n| n + 1).await?;
    /// assert_eq!(waiter.await, 2);
    /// # Ok::<(), enduro::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn changes(&self) -> watch::Receiver<Arc<T>> {
        self.inner.core.changes()
    }

    /// The last committed value this atom knows.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// # let atom = enduro::AsyncAtom::open(enduro::testing::Inline(enduro::MemStore::new()), 1i32, Default::default()).await?;
    /// assert_eq!(*atom.deref(), 1);
    /// # Ok::<(), enduro::Error>(())
    /// # }).unwrap();
    /// ```
    #[allow(clippy::should_implement_trait)]
    pub fn deref(&self) -> Arc<T> {
        self.inner.core.value()
    }

    /// Replaces the value with `f(current)`; see [`Atom::swap`](crate::Atom::swap).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// # let atom = enduro::AsyncAtom::open(enduro::testing::Inline(enduro::MemStore::new()), 1i32, Default::default()).await?;
    /// assert_eq!(*atom.swap(|n| n * 10).await?, 10);
    /// # Ok::<(), enduro::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn swap(&self, f: impl FnMut(&T) -> T + Send) -> Result<Arc<T>> {
        self.swap_vals(f).await.map(|(_, new)| new)
    }

    /// Like [`swap`](AsyncAtom::swap), returning `(old, new)`.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// # let atom = enduro::AsyncAtom::open(enduro::testing::Inline(enduro::MemStore::new()), 1i32, Default::default()).await?;
    /// let (old, new) = atom.swap_vals(|n| n + 1).await?;
    /// assert_eq!((*old, *new), (1, 2));
    /// # Ok::<(), enduro::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn swap_vals(&self, mut f: impl FnMut(&T) -> T + Send) -> Result<(Arc<T>, Arc<T>)> {
        self.transact("swap", Purpose::Change, move |current| {
            Some(Arc::new(f(current)))
        })
        .await
        .map(|o| (o.old, o.new))
    }

    /// Like [`swap`](AsyncAtom::swap), for an update that may refuse; see
    /// [`Atom::try_swap`](crate::Atom::try_swap).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// # let atom = enduro::AsyncAtom::open(enduro::testing::Inline(enduro::MemStore::new()), 1u32, Default::default()).await?;
    /// let refused = atom.try_swap(|_| Err::<u32, _>(enduro::Error::Invalid { reason: None })).await;
    /// assert!(refused.is_err());
    /// assert_eq!(*atom.try_swap(|n| Ok::<_, enduro::Error>(n + 1)).await?, 2);
    /// # Ok::<(), enduro::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn try_swap<E: From<Error> + Send>(
        &self,
        f: impl FnMut(&T) -> std::result::Result<T, E> + Send,
    ) -> std::result::Result<Arc<T>, E> {
        self.try_swap_vals(f).await.map(|(_, new)| new)
    }

    /// Like [`try_swap`](AsyncAtom::try_swap), returning `(old, new)`.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// # let atom = enduro::AsyncAtom::open(enduro::testing::Inline(enduro::MemStore::new()), 1u32, Default::default()).await?;
    /// let (old, new) = atom.try_swap_vals(|n| Ok::<_, enduro::Error>(n * 10)).await?;
    /// assert_eq!((*old, *new), (1, 10));
    /// # Ok::<(), enduro::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn try_swap_vals<E: From<Error> + Send>(
        &self,
        mut f: impl FnMut(&T) -> std::result::Result<T, E> + Send,
    ) -> std::result::Result<(Arc<T>, Arc<T>), E> {
        let mut refusal = Refusal::new();
        let outcome = self
            .transact("try_swap", Purpose::Change, |current| {
                refusal.decide(f(current))
            })
            .await?;
        refusal.into_result(outcome)
    }

    /// Sets the value; see [`Atom::reset`](crate::Atom::reset).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// # let atom = enduro::AsyncAtom::open(enduro::testing::Inline(enduro::MemStore::new()), 1i32, Default::default()).await?;
    /// assert_eq!(*atom.reset(7).await?, 7);
    /// # Ok::<(), enduro::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn reset(&self, value: T) -> Result<Arc<T>> {
        self.reset_vals(value).await.map(|(_, new)| new)
    }

    /// Like [`reset`](AsyncAtom::reset), returning `(old, new)`.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// # let atom = enduro::AsyncAtom::open(enduro::testing::Inline(enduro::MemStore::new()), 1i32, Default::default()).await?;
    /// let (old, new) = atom.reset_vals(7).await?;
    /// assert_eq!((*old, *new), (1, 7));
    /// # Ok::<(), enduro::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn reset_vals(&self, value: T) -> Result<(Arc<T>, Arc<T>)> {
        let value = Arc::new(value);
        self.transact("reset", Purpose::Change, move |_| Some(Arc::clone(&value)))
            .await
            .map(|o| (o.old, o.new))
    }

    /// Sets the value only if it equals `expected`; see
    /// [`Atom::compare_and_set`](crate::Atom::compare_and_set).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// # let atom = enduro::AsyncAtom::open(enduro::testing::Inline(enduro::MemStore::new()), 1i32, Default::default()).await?;
    /// assert!(!atom.compare_and_set(&5, 9).await?);
    /// assert!(atom.compare_and_set(&1, 9).await?);
    /// # Ok::<(), enduro::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn compare_and_set(&self, expected: &T, value: T) -> Result<bool>
    where
        T: PartialEq,
    {
        let value = Arc::new(value);
        let mut matched = false;
        self.transact("compare_and_set", Purpose::Change, |current| {
            matched = current == expected;
            matched.then(|| Arc::clone(&value))
        })
        .await?;
        Ok(matched)
    }

    /// Adds or replaces a watch; see [`Atom::add_watch`](crate::Atom::add_watch).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// # let atom = enduro::AsyncAtom::open(enduro::testing::Inline(enduro::MemStore::new()), 1i32, Default::default()).await?;
    /// atom.add_watch("print", |old: &i32, new: &i32| println!("{old} -> {new}"));
    /// atom.swap(|n| n + 1).await?;
    /// # Ok::<(), enduro::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn add_watch(
        &self,
        key: impl Into<String>,
        watch: impl Fn(&T, &T) + Send + Sync + 'static,
    ) {
        self.inner.core.add_watch(key.into(), Arc::new(watch));
    }

    /// Removes a watch; returns whether there was one.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// # let atom = enduro::AsyncAtom::open(enduro::testing::Inline(enduro::MemStore::new()), 1i32, Default::default()).await?;
    /// atom.add_watch("w", |_: &i32, _: &i32| {});
    /// assert!(atom.remove_watch("w"));
    /// assert!(!atom.remove_watch("w"));
    /// # Ok::<(), enduro::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn remove_watch(&self, key: &str) -> bool {
        self.inner.core.remove_watch(key)
    }

    /// Sets the validator; fails with [`Error::Invalid`](crate::Error::Invalid) if the current value fails it.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// # let atom = enduro::AsyncAtom::open(enduro::testing::Inline(enduro::MemStore::new()), 1i32, Default::default()).await?;
    /// atom.set_validator(|n: &i32| *n < 5)?;
    /// assert!(matches!(atom.reset(9).await, Err(enduro::Error::Invalid { .. })));
    /// # Ok::<(), enduro::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn set_validator<V: Validation>(
        &self,
        validator: impl Fn(&T) -> V + Send + Sync + 'static,
    ) -> Result<()> {
        self.inner.core.set_validator(options::validator(validator))
    }

    /// Removes the validator.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// # let atom = enduro::AsyncAtom::open(enduro::testing::Inline(enduro::MemStore::new()), 1i32, Default::default()).await?;
    /// atom.set_validator(|n: &i32| *n < 5)?;
    /// atom.clear_validator();
    /// assert_eq!(*atom.reset(9).await?, 9);
    /// # Ok::<(), enduro::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn clear_validator(&self) {
        self.inner.core.clear_validator();
    }

    /// Picks up other writers' commits; see [`Atom::refresh`](crate::Atom::refresh).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// # let atom = enduro::AsyncAtom::open(enduro::testing::Inline(enduro::MemStore::new()), 1i32, Default::default()).await?;
    /// assert_eq!(*atom.refresh().await?, 1);
    /// # Ok::<(), enduro::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn refresh(&self) -> Result<Arc<T>> {
        self.refresh_for(Purpose::Refresh).await
    }

    /// [`refresh`](AsyncAtom::refresh), asked for by a user or by a live atom's catch-up.
    async fn refresh_for(&self, purpose: Purpose) -> Result<Arc<T>> {
        self.transact("refresh", purpose, |_| None)
            .await
            .map(|o| o.new)
    }

    /// Deletes the backing resource; see [`Atom::release`](crate::Atom::release).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// # let atom = enduro::AsyncAtom::open(enduro::testing::Inline(enduro::MemStore::new()), 1i32, Default::default()).await?;
    /// atom.release().await?;
    /// assert!(matches!(atom.swap(|n| n + 1).await, Err(enduro::Error::Released)));
    /// # Ok::<(), enduro::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn release(&self) -> Result<()> {
        let inner = &*self.inner;
        let Inner {
            core, store, group, ..
        } = inner;
        core.refuse_reentry("release")?;
        let exclusive = loop {
            match Exclusive::try_take(group) {
                Ok(exclusive) => break exclusive,
                Err(seen) => inner.drive_or_wait(seen).await,
            }
        };
        let result = if core.is_released() {
            Ok(())
        } else {
            store.release().await
        };
        if result.is_ok() {
            core.mark_released();
        }
        drop(exclusive);
        result
    }

    /// Whether the atom was released.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// # let atom = enduro::AsyncAtom::open(enduro::testing::Inline(enduro::MemStore::new()), 1i32, Default::default()).await?;
    /// assert!(!atom.is_released());
    /// # Ok::<(), enduro::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn is_released(&self) -> bool {
        self.inner.core.is_released()
    }

    /// Names the backing resource.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// # let atom = enduro::AsyncAtom::open(enduro::testing::Inline(enduro::MemStore::new()), 1i32, Default::default()).await?;
    /// assert_eq!(atom.resource(), "memory cell");
    /// # Ok::<(), enduro::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn resource(&self) -> &str {
        self.inner.core.resource()
    }

    /// The version of the value [`deref`](AsyncAtom::deref) returns.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// # let atom = enduro::AsyncAtom::open(enduro::testing::Inline(enduro::MemStore::new()), 1i32, Default::default()).await?;
    /// let before = atom.version();
    /// atom.swap(|n| n + 1).await?;
    /// assert_ne!(atom.version(), before);
    /// # Ok::<(), enduro::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn version(&self) -> Version {
        self.inner.core.current().1
    }

    /// The retry loop of [`Atom`](crate::Atom) (group commit included), with awaits. If
    /// the future is dropped mid-way, guards hand the batch back so other swaps go on.
    async fn transact(
        &self,
        call: &'static str,
        purpose: Purpose,
        decide: impl FnMut(&T) -> Option<Arc<T>> + Send,
    ) -> Result<Outcome<T>> {
        self.transact_op(call, purpose, decide, None).await
    }

    /// [`transact`](AsyncAtom::transact), for a change that is the op `op` (encoded) when
    /// there is one.
    async fn transact_op(
        &self,
        call: &'static str,
        purpose: Purpose,
        decide: impl FnMut(&T) -> Option<Arc<T>> + Send,
        op: Option<Arc<[u8]>>,
    ) -> Result<Outcome<T>> {
        let inner = &*self.inner;
        let Inner {
            core, store, group, ..
        } = inner;
        core.refuse_reentry(call)?;
        // No gathering here: waiting with a timeout needs a timer, and an async store's
        // round trips overlap on the runtime anyway.
        let mode = Mode::new(purpose, store.cheap_check(), false);
        let mut txn = Txn::new(group, core, mode, decide).with_op(op);
        let mut input = Input::Go;
        loop {
            input = match txn.next(input) {
                Step::Check(known) => Input::Checked(store.check(known).await),
                // The leader's store calls go to a flight that outlives this call; it waits
                // for the batch's result like the others.
                Step::Call(first) => {
                    if let Some((batch, calls)) = txn.detach() {
                        inner.launch(batch, calls, first);
                    }
                    Input::Go
                }
                Step::Wait(seen) => {
                    inner.drive_or_wait(seen).await;
                    Input::Go
                }
                // Never asked for (no gathering): go on at once.
                Step::Gather { .. } => Input::Go,
                Step::Done(result) => return result,
            }
        }
    }
}

impl<T: Value + Apply> AsyncAtom<T>
where
    T::Op: Send,
{
    /// Applies `op` to the value once it is durable, as
    /// [`Atom::apply`](crate::Atom::apply) does: a swap whose change is the op; a file
    /// atom in journal mode opened with `ops()` stores the op, not the value.
    ///
    /// ```
    /// use enduro::{Apply, AsyncAtom, MemStore, OffThread, Options};
    ///
    /// #[derive(Clone, serde::Serialize, serde::Deserialize)]
    /// struct Counter(u64);
    /// impl Apply for Counter {
    ///     type Op = u64;
    ///     fn apply(&mut self, add: &u64) { self.0 += add; }
    /// }
    /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// # rt.block_on(async {
    /// let store = OffThread::new(MemStore::new())?;
    /// let counter = AsyncAtom::open(store, Counter(1), Options::new().ops()).await?;
    /// assert_eq!(counter.apply(2).await?.0, 3);
    /// # Ok::<(), enduro::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn apply(&self, op: T::Op) -> Result<Arc<T>> {
        let core = &self.inner.core;
        core.refuse_reentry("apply")?;
        let (bytes, op) = crate::apply::prepare(core, op, core.keeps_ops())?;
        let decide = move |current: &T| Some(crate::apply::next(core, current, &op));
        self.transact_op("apply", Purpose::Change, decide, bytes)
            .await
            .map(|o| o.new)
    }
}

/// What an async commit carries: the value's bytes, or the means to write them.
enum Payload {
    Bytes(Vec<u8>),
    Later(Deferred),
}

impl<T: Value> Inner<T> {
    /// For the leader: starts the batch's store calls (`first`, then what `machine`
    /// asks for) as a [`Flight`] that any waiter drives. Never awaits, so the leader
    /// cannot be dropped half-way through.
    fn launch(&self, batch: u64, mut machine: StoreCalls, first: Call<Arc<T>>) {
        // The value is encoded here, with the atom at hand; the flight only moves bytes.
        // A change made of ops leaves it to the store, which may not need it at all.
        let first = match first {
            Call::Commit {
                expected,
                value,
                ops: Some(ops),
            } => {
                self.core.forget_committing();
                Call::Commit {
                    expected,
                    value: Payload::Later(self.core.deferred(value)),
                    ops: Some(ops),
                }
            }
            first => match first.encoded(|value| self.core.encode_to_vec(value)) {
                Ok(call) => call.map_value(Payload::Bytes),
                Err(e) => return self.group.settle(&self.core, batch, Stored::Failed(e)),
            },
        };
        let store = Arc::clone(&self.store);
        let calls = Box::pin(async move {
            let mut call = first;
            loop {
                let answer = match call {
                    Call::Check(known) => Answer::Checked(store.check(known).await),
                    Call::Commit {
                        expected,
                        value: Payload::Bytes(bytes),
                        ops: None,
                    } => Answer::Committed(store.commit(expected, bytes).await),
                    Call::Commit {
                        expected,
                        value,
                        ops,
                    } => {
                        let value = match value {
                            Payload::Later(later) => later,
                            Payload::Bytes(bytes) => {
                                crate::store::deferred_bytes(store.resource(), bytes)
                            }
                        };
                        let ops = ops.unwrap_or_default();
                        Answer::Committed(store.commit_ops(expected, ops, value).await)
                    }
                    Call::Load => Answer::Loaded(store.load_replay().await),
                };
                match machine.answer(answer) {
                    Next::Call(next) => call = next,
                    Next::Stored(stored) => return stored,
                }
            }
        });
        *lock(&self.flight) = Some(Flight { batch, calls });
    }

    /// Waits, without blocking the runtime, until the generation moves past `seen`,
    /// driving the batch's store calls meanwhile if a flight is under way.
    async fn drive_or_wait(&self, seen: u64) {
        let notified = self.group.notifier().notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.group.generation() != seen || self.poll_flight() {
            return;
        }
        notified.await;
    }

    /// Polls the flight once, unless another task is polling it right now (it wakes
    /// everyone when it gets further). Settles the batch when the calls are done; returns
    /// whether it did.
    fn poll_flight(&self) -> bool {
        let Ok(mut slot) = self.flight.try_lock() else {
            return false;
        };
        let Some(flight) = slot.as_mut() else {
            return false;
        };
        let waker = Waker::from(Arc::clone(&self.wake_all));
        let mut cx = Context::from_waker(&waker);
        let stored = match catch_unwind(AssertUnwindSafe(|| flight.calls.as_mut().poll(&mut cx))) {
            Ok(Poll::Pending) => return false,
            Ok(Poll::Ready(stored)) => stored,
            // A store that panics mid-call: whether its commit happened is unknown.
            Err(panic) => Stored::Uncertain(
                Error::Uncertain {
                    resource: self.core.resource().to_owned(),
                    message: format!(
                        "the store panicked in the middle of the commit: {}",
                        panic_message(&*panic)
                    ),
                    source: None,
                },
                After::Unread,
            ),
        };
        let batch = flight.batch;
        *slot = None;
        drop(slot);
        self.group.settle(&self.core, batch, stored);
        true
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    /// A store in memory whose every call sleeps a little, so that swaps overlap and
    /// some futures are dropped while they wait for their batch.
    #[derive(Default)]
    struct Slow(Mutex<Option<Snapshot>>);

    impl Slow {
        fn current(&self) -> Option<Snapshot> {
            self.0.lock().unwrap().clone()
        }
    }

    impl AsyncStore for Slow {
        fn resource(&self) -> String {
            "slow memory".into()
        }
        fn load(&self) -> BoxFuture<'_, Result<Option<Snapshot>>> {
            Box::pin(async move { Ok(self.current()) })
        }
        fn check(&self, known: Version) -> BoxFuture<'_, Result<Observed>> {
            Box::pin(async move {
                Ok(match self.current() {
                    None => Observed::Missing,
                    Some(s) if s.version == known => Observed::Unchanged,
                    Some(s) => Observed::Changed(s),
                })
            })
        }
        fn commit(&self, expected: Version, bytes: Vec<u8>) -> BoxFuture<'_, Result<Committed>> {
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(2)).await;
                let mut stored = self.0.lock().unwrap();
                let at = stored.as_ref().map_or(Version::ABSENT, |s| s.version);
                if at != expected {
                    return Ok(Committed::Conflict);
                }
                let version = Version::new(at.generation + 1, 1);
                *stored = Some(Snapshot { bytes, version });
                Ok(Committed::Done(version))
            })
        }
        fn release(&self) -> BoxFuture<'_, Result<()>> {
            Box::pin(async move {
                *self.0.lock().unwrap() = None;
                Ok(())
            })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropped_swaps_leave_no_result_behind() {
        let atom = AsyncAtom::open(Slow::default(), 0u64, Options::new())
            .await
            .unwrap();
        let tasks: Vec<_> = (0..16u64)
            .map(|i| {
                let atom = atom.clone();
                tokio::spawn(async move {
                    for j in 0..20u64 {
                        // Every third swap gives up before its batch settles.
                        let limit =
                            Duration::from_millis(if (i + j) % 3 == 0 { 1 } else { 60_000 });
                        let _ = tokio::time::timeout(limit, atom.swap(|n| n + 1)).await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        atom.swap(|n| n + 1).await.unwrap();
        let group = &atom.inner.group;
        assert_eq!(
            group.unclaimed_results(),
            0,
            "results of dropped swaps were kept"
        );
    }
}
