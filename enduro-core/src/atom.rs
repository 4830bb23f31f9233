//! The blocking driver: [`Atom`], the handle users hold.

use std::fmt;
use std::sync::{Arc, Mutex};

use crate::apply::Apply;
use crate::background::Background;
use crate::error::{Error, Result};
use crate::live::{CatchUp, Follower, Live};
use crate::options::{self, CommitMode, Options, Validation};
use crate::protocol::{Exclusive, Group, Input, Mode, Purpose, Step, Txn, call_blocking};
use crate::state::{Core, Digesting, Opening, Outcome, Refusal, encode, lock, validate_with};
use crate::store::{Committed, Store, Version};
use crate::value::Value;

/// A durable atom: one value of type `T`, kept in a [`Store`], changed only by pure
/// functions, and durable before any change is seen.
///
/// `Atom` is a cheap handle: clones share the value, the store, the validator and the
/// watches. It is `Send` and `Sync`. Every change goes through one retry loop: the update
/// function sees the latest committed value (the store is checked for commits by other
/// processes first), its result is validated, encoded and committed over the version it
/// came from, and only then published to [`deref`](Atom::deref), the caller and the
/// watches. A conflict with another writer reloads and runs the function again.
///
/// ```
/// use enduro::{Atom, MemStore};
///
/// let atom = Atom::open(MemStore::new(), vec![1], Default::default())?;
/// let (old, new) = atom.swap_vals(|v| [v.as_slice(), &[2]].concat())?;
/// assert_eq!(*old, [1]);
/// assert_eq!(*new, [1, 2]);
/// assert_eq!(*atom.deref(), vec![1, 2]);
/// # Ok::<(), enduro::Error>(())
/// ```
pub struct Atom<T> {
    inner: Arc<Inner<T>>,
}

struct Inner<T> {
    core: Arc<Core<T>>,
    store: Arc<dyn Store>,
    /// Batches this process's swaps into group commits.
    group: Group<T>,
    /// In [`CommitMode::Background`]: the committer, and the lock that orders changes.
    background: Option<(Background<T>, Mutex<()>)>,
    /// A live atom's merged nudges, and what keeps its store following the resource.
    live: Live,
}

impl<T> Clone for Atom<T> {
    fn clone(&self) -> Self {
        Atom {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T: Value> fmt::Debug for Atom<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Atom")
            .field("resource", &self.inner.core.resource())
            .field("released", &self.is_released())
            .finish_non_exhaustive()
    }
}

impl<T: Value> Atom<T> {
    /// Opens an atom on `store`: adopts the stored value, or validates and commits `init`
    /// when the store is empty. A stored value that does not decode is an error that
    /// names the resource, and the stored bytes are left untouched.
    ///
    /// ```
    /// use enduro::{Atom, Error, MemStore, Options};
    ///
    /// let options = Options::new().validator(|n: &i32| *n >= 0);
    /// let err = Atom::open(MemStore::new(), -1, options).unwrap_err();
    /// assert!(matches!(err, Error::Invalid { .. }));
    /// ```
    pub fn open<S: Store>(store: S, init: T, options: Options<T>) -> Result<Self> {
        let resource = store.resource();
        let options = options
            .checked_if(store.checks_round_trip())
            .resolved(&resource)?;
        // Commits the value open decided on, unless another writer committed first.
        let commit = |value: &T, expected| {
            let mut written = None;
            let encode = &mut |out: &mut dyn std::io::Write| {
                let mut digesting = Digesting::new(out);
                encode(&resource, &options, value, &mut digesting)?;
                written = Some(digesting.digest());
                Ok(())
            };
            Ok::<_, Error>(match store.commit(expected, encode)? {
                Committed::Done(version) => Some((version, written)),
                Committed::Conflict => None,
            })
        };
        let (value, version, digest) = loop {
            match Core::opening(&resource, &options, store.load_replay()?)? {
                Opening::Existing(value, version, digest) => break (value, version, digest),
                // Data of an older schema: stored migrated, once, unless someone else
                // stored something first (then what they stored is read again).
                Opening::Migrated(value, expected) => {
                    if let Some((version, digest)) = commit(&value, expected)? {
                        break (value, version, digest);
                    }
                }
                Opening::Create(expected) => {
                    validate_with(options.validator.as_ref(), &init)?;
                    // On a conflict, someone else created it at the same moment: adopt theirs.
                    if let Some((version, digest)) = commit(&init, expected)? {
                        break (init, version, digest);
                    }
                }
            }
        };
        let (mode, live) = (options.mode, options.live);
        let core = Arc::new(Core::new(
            resource,
            options,
            Arc::new(value),
            version,
            digest,
        ));
        let store: Arc<dyn Store> = Arc::new(store);
        let background = match mode {
            CommitMode::Durable => None,
            CommitMode::Background => Some((
                Background::start(Arc::clone(&core), Arc::clone(&store))?,
                Mutex::new(()),
            )),
        };
        let atom = Atom {
            inner: Arc::new(Inner {
                core,
                store,
                group: Group::new(),
                background,
                live: Live::new(),
            }),
        };
        if live {
            atom.follow()?;
        }
        Ok(atom)
    }

    /// Makes the atom live: its store nudges it when the resource changes, and the
    /// process's follower thread refreshes it. One catch-up right away covers what was
    /// committed between the load and the start of following.
    fn follow(&self) -> Result<()> {
        let inner = &self.inner;
        let follower = Follower::get(inner.core.resource())?;
        let me: std::sync::Weak<dyn CatchUp> =
            Arc::downgrade(&(Arc::clone(inner) as Arc<dyn CatchUp>));
        inner.live.start(
            |nudge| inner.store.follow(nudge),
            move || follower.schedule(me.clone()),
        )
    }

    /// The last committed value this atom knows. Never blocks on storage; see
    /// [`refresh`](Atom::refresh) to pick up commits by other processes.
    ///
    /// ```
    /// # let atom = enduro::mem_atom(5);
    /// assert_eq!(*atom.deref(), 5);
    /// ```
    #[allow(clippy::should_implement_trait)]
    pub fn deref(&self) -> Arc<T> {
        self.inner.core.value()
    }

    /// Replaces the value with `f(current)` and returns the new value once it is durable.
    ///
    /// `f` may run more than once (when another writer commits in between), so it must be
    /// pure. If it panics, the panic reaches the caller and the atom is unchanged. It runs
    /// with none of the atom's locks held; calling this atom's `swap` (or `reset`,
    /// `compare_and_set`, `refresh`, `release`) from inside it would wait for itself, so
    /// that fails at once with [`Error::Reentrant`](crate::Error::Reentrant).
    ///
    /// An error means the value is unchanged, except [`Error::Uncertain`](crate::Error::Uncertain):
    /// the commit's outcome is unknown (an answer lost), the change may be stored, and the
    /// atom shows what the store holds; do not repeat such a change blindly.
    ///
    /// ```
    /// # let atom = enduro::mem_atom(1);
    /// assert_eq!(*atom.swap(|n| n * 10)?, 10);
    /// # Ok::<(), enduro::Error>(())
    /// ```
    pub fn swap(&self, f: impl FnMut(&T) -> T) -> Result<Arc<T>> {
        self.swap_vals(f).map(|(_, new)| new)
    }

    /// Like [`swap`](Atom::swap), returning `(old, new)`.
    ///
    /// ```
    /// # let atom = enduro::mem_atom(1);
    /// let (old, new) = atom.swap_vals(|n| n + 1)?;
    /// assert_eq!((*old, *new), (1, 2));
    /// # Ok::<(), enduro::Error>(())
    /// ```
    pub fn swap_vals(&self, mut f: impl FnMut(&T) -> T) -> Result<(Arc<T>, Arc<T>)> {
        self.transact("swap", Purpose::Change, |current| {
            Some(Arc::new(f(current)))
        })
        .map(|o| (o.old, o.new))
    }

    /// Like [`swap`](Atom::swap), for an update that may refuse: `f` returns `Ok(new)`, or
    /// `Err(e)` to change nothing. Then nothing is written, no watch fires, and `e` comes
    /// back to the caller as it was. Errors of the atom itself (a failed write, a
    /// validator's refusal, ...) reach the caller through `E: From<enduro::Error>`, so one
    /// error type carries both (`anyhow::Error` and `Box<dyn Error>` do by themselves).
    ///
    /// `f` may run more than once, like any update function; `Err(e)` is returned only
    /// when `f` refused the latest stored value (a refusal of a value that another writer
    /// had replaced meanwhile runs `f` again on the new one).
    ///
    /// ```
    /// #[derive(Debug)]
    /// enum Withdraw {
    ///     Insufficient { balance: u64 },
    ///     Storage(enduro::Error),
    /// }
    /// impl From<enduro::Error> for Withdraw {
    ///     fn from(e: enduro::Error) -> Self {
    ///         Withdraw::Storage(e)
    ///     }
    /// }
    ///
    /// let account = enduro::mem_atom(100u64);
    /// let withdraw = |amount: u64| {
    ///     account.try_swap(|&balance| match balance.checked_sub(amount) {
    ///         Some(left) => Ok(left),
    ///         None => Err(Withdraw::Insufficient { balance }),
    ///     })
    /// };
    /// assert_eq!(*withdraw(30).unwrap(), 70);
    /// assert!(matches!(withdraw(500), Err(Withdraw::Insufficient { balance: 70 })));
    /// assert_eq!(*account.deref(), 70);
    /// ```
    pub fn try_swap<E: From<Error>>(
        &self,
        f: impl FnMut(&T) -> std::result::Result<T, E>,
    ) -> std::result::Result<Arc<T>, E> {
        self.try_swap_vals(f).map(|(_, new)| new)
    }

    /// Like [`try_swap`](Atom::try_swap), returning `(old, new)`.
    ///
    /// ```
    /// type BoxError = Box<dyn std::error::Error + Send + Sync>;
    ///
    /// let atom = enduro::mem_atom(1u32);
    /// let ten_times = |n: &u32| n.checked_mul(10).ok_or_else(|| BoxError::from("overflow"));
    /// let (old, new) = atom.try_swap_vals(ten_times)?;
    /// assert_eq!((*old, *new), (1, 10));
    /// # Ok::<(), BoxError>(())
    /// ```
    pub fn try_swap_vals<E: From<Error>>(
        &self,
        mut f: impl FnMut(&T) -> std::result::Result<T, E>,
    ) -> std::result::Result<(Arc<T>, Arc<T>), E> {
        let mut refusal = Refusal::new();
        let outcome = self.transact("try_swap", Purpose::Change, |current| {
            refusal.decide(f(current))
        })?;
        refusal.into_result(outcome)
    }

    /// Sets the value to `value` (validated and durable first) and returns it.
    ///
    /// ```
    /// # let atom = enduro::mem_atom(1);
    /// assert_eq!(*atom.reset(7)?, 7);
    /// # Ok::<(), enduro::Error>(())
    /// ```
    pub fn reset(&self, value: T) -> Result<Arc<T>> {
        self.reset_vals(value).map(|(_, new)| new)
    }

    /// Like [`reset`](Atom::reset), returning `(old, new)`.
    ///
    /// ```
    /// # let atom = enduro::mem_atom(1);
    /// let (old, new) = atom.reset_vals(7)?;
    /// assert_eq!((*old, *new), (1, 7));
    /// # Ok::<(), enduro::Error>(())
    /// ```
    pub fn reset_vals(&self, value: T) -> Result<(Arc<T>, Arc<T>)> {
        let value = Arc::new(value);
        self.transact("reset", Purpose::Change, |_| Some(Arc::clone(&value)))
            .map(|o| (o.old, o.new))
    }

    /// Sets the value to `value` only if the current value (after picking up other
    /// writers' commits) equals `expected`. Returns whether it did.
    ///
    /// ```
    /// # let atom = enduro::mem_atom(1);
    /// assert!(!atom.compare_and_set(&5, 9)?);
    /// assert!(atom.compare_and_set(&1, 9)?);
    /// assert_eq!(*atom.deref(), 9);
    /// # Ok::<(), enduro::Error>(())
    /// ```
    pub fn compare_and_set(&self, expected: &T, value: T) -> Result<bool>
    where
        T: PartialEq,
    {
        let value = Arc::new(value);
        let mut matched = false;
        self.transact("compare_and_set", Purpose::Change, |current| {
            matched = current == expected;
            matched.then(|| Arc::clone(&value))
        })?;
        Ok(matched)
    }

    /// Calls `watch(old, new)` after every committed transition, once each, in commit
    /// order — including transitions picked up from other writers. A watch with the same
    /// key replaces the old one. A watch that panics is skipped; the commit stands.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// # let atom = enduro::mem_atom(1);
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = Arc::clone(&seen);
    /// atom.add_watch("log", move |old: &i32, new: &i32| log.lock().unwrap().push((*old, *new)));
    /// atom.swap(|n| n + 1)?;
    /// atom.reset(10)?;
    /// assert_eq!(*seen.lock().unwrap(), [(1, 2), (2, 10)]);
    /// # Ok::<(), enduro::Error>(())
    /// ```
    pub fn add_watch(
        &self,
        key: impl Into<String>,
        watch: impl Fn(&T, &T) + Send + Sync + 'static,
    ) {
        self.inner.core.add_watch(key.into(), Arc::new(watch));
    }

    /// Removes the watch with this key; returns whether there was one.
    ///
    /// ```
    /// # let atom = enduro::mem_atom(1);
    /// atom.add_watch("w", |_: &i32, _: &i32| {});
    /// assert!(atom.remove_watch("w"));
    /// assert!(!atom.remove_watch("w"));
    /// ```
    pub fn remove_watch(&self, key: &str) -> bool {
        self.inner.core.remove_watch(key)
    }

    /// Requires every future value to pass `validator`. Fails with
    /// [`Error::Invalid`](crate::Error::Invalid) (and sets nothing) if the current value does not.
    ///
    /// ```
    /// # let atom = enduro::mem_atom(1);
    /// atom.set_validator(|n: &i32| *n < 5)?;
    /// assert!(matches!(atom.reset(9), Err(enduro::Error::Invalid { .. })));
    /// assert_eq!(*atom.deref(), 1);
    /// assert!(atom.set_validator(|n: &i32| *n > 1).is_err());
    /// # Ok::<(), enduro::Error>(())
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
    /// # let atom = enduro::mem_atom(1);
    /// atom.set_validator(|n: &i32| *n < 5)?;
    /// atom.clear_validator();
    /// assert_eq!(*atom.reset(9)?, 9);
    /// # Ok::<(), enduro::Error>(())
    /// ```
    pub fn clear_validator(&self) {
        self.inner.core.clear_validator();
    }

    /// Picks up what other processes (or other atoms on the same resource) committed and
    /// returns the current value. Swaps do this by themselves before running `f`.
    ///
    /// ```
    /// # let atom = enduro::mem_atom(1);
    /// assert_eq!(*atom.refresh()?, 1);
    /// # Ok::<(), enduro::Error>(())
    /// ```
    pub fn refresh(&self) -> Result<Arc<T>> {
        self.refresh_for(Purpose::Refresh)
    }

    /// [`refresh`](Atom::refresh), asked for by a user or by a live atom's catch-up.
    fn refresh_for(&self, purpose: Purpose) -> Result<Arc<T>> {
        let Some((committer, order)) = &self.inner.background else {
            return self.transact("refresh", purpose, |_| None).map(|o| o.new);
        };
        self.inner.core.refuse_reentry("refresh")?;
        let _ordered = lock(order);
        committer.flush()?;
        let value = self.transact("refresh", purpose, |_| None)?.new;
        committer.set_version(self.inner.core.current().1);
        Ok(value)
    }

    /// Waits until every change acknowledged so far is durable. Changes are durable when
    /// they return in the default [`CommitMode::Durable`], so this returns at once; in
    /// [`CommitMode::Background`] it waits for the committer, and returns the error of its
    /// last failed write, if the write still fails.
    ///
    /// ```
    /// use enduro::store::Store;
    /// use enduro::{Atom, CommitMode, MemStore, Options};
    ///
    /// let store = std::sync::Arc::new(MemStore::new());
    /// let options = Options::new().commit_mode(CommitMode::Background);
    /// let atom = Atom::open(store.clone(), 0u64, options)?;
    /// for _ in 0..100 {
    ///     atom.swap(|n| n + 1)?; // returns at once
    /// }
    /// atom.flush()?; // now all 100 are stored
    /// let stored = Store::load(&store)?.unwrap().bytes;
    /// assert_eq!(stored, b"100");
    /// # Ok::<(), enduro::Error>(())
    /// ```
    pub fn flush(&self) -> Result<()> {
        match &self.inner.background {
            Some((committer, _)) => committer.flush(),
            None => Ok(()),
        }
    }

    /// Deletes the backing resource. Afterwards every change through any clone fails with
    /// [`Error::Released`](crate::Error::Released); [`deref`](Atom::deref) still returns the last value. Releasing
    /// twice is not an error.
    ///
    /// ```
    /// # let atom = enduro::mem_atom(1);
    /// atom.release()?;
    /// assert!(atom.is_released());
    /// assert!(matches!(atom.swap(|n| n + 1), Err(enduro::Error::Released)));
    /// assert_eq!(*atom.deref(), 1);
    /// # Ok::<(), enduro::Error>(())
    /// ```
    pub fn release(&self) -> Result<()> {
        let Inner {
            core,
            store,
            group,
            background,
            ..
        } = &*self.inner;
        core.refuse_reentry("release")?;
        let _ordered = background.as_ref().map(|(committer, order)| {
            let ordered = lock(order);
            // What was acknowledged is written first; a failure to do so does not keep the
            // resource from being deleted.
            let _ = committer.flush();
            ordered
        });
        let exclusive = loop {
            match Exclusive::try_take(group) {
                Ok(exclusive) => break exclusive,
                Err(seen) => group.wait(seen),
            }
        };
        let result = if core.is_released() {
            Ok(())
        } else {
            store.release()
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
    /// # let atom = enduro::mem_atom(1);
    /// assert!(!atom.is_released());
    /// ```
    pub fn is_released(&self) -> bool {
        self.inner.core.is_released()
    }

    /// Names the backing resource, as errors do (``file `/path` ``, ...).
    ///
    /// ```
    /// # let atom = enduro::mem_atom(1);
    /// assert_eq!(atom.resource(), "memory cell");
    /// ```
    pub fn resource(&self) -> &str {
        self.inner.core.resource()
    }

    /// The retry loop, with group commit (see the `group` module): joins a batch, running
    /// `decide` on its latest value (`None`: keep the value); the batch's leader commits
    /// the batch's last value over the version it came from; a conflict makes every swap
    /// of the batch run again on the reloaded value. Watches are shown the transitions
    /// after the batch settles, outside any lock, so a watch may itself change the atom.
    ///
    /// `call` names the method, for the error of a call made from inside this atom's own
    /// update function or validator (which would otherwise wait for itself).
    fn transact(
        &self,
        call: &'static str,
        purpose: Purpose,
        decide: impl FnMut(&T) -> Option<Arc<T>>,
    ) -> Result<Outcome<T>> {
        self.transact_op(call, purpose, decide, None)
    }

    /// [`transact`](Atom::transact), for a change that is the op `op` (encoded) when there
    /// is one: a store that keeps ops stores it instead of the value.
    fn transact_op(
        &self,
        call: &'static str,
        purpose: Purpose,
        decide: impl FnMut(&T) -> Option<Arc<T>>,
        op: Option<Arc<[u8]>>,
    ) -> Result<Outcome<T>> {
        let Inner {
            core,
            store,
            group,
            background,
            ..
        } = &*self.inner;
        core.refuse_reentry(call)?;
        if let (Some((committer, order)), Purpose::Change) = (background, purpose) {
            return Self::transact_in_background(core, committer, order, decide);
        }
        let mode = Mode::new(purpose, store.cheap_check(), true);
        let mut txn = Txn::new(group, core, mode, decide).with_op(op);
        let mut input = Input::Go;
        loop {
            input = match txn.next(input) {
                Step::Check(known) => Input::Checked(store.check(known)),
                Step::Call(call) => Input::Answered(call_blocking(core, &**store, call)),
                Step::Wait(seen) => {
                    group.wait(seen);
                    Input::Go
                }
                Step::Gather { batch, until, size } => {
                    group.gather(batch, until, size);
                    Input::Go
                }
                Step::Done(result) => return result,
            }
        }
    }

    /// A change in [`CommitMode::Background`]: validated, checked to encode and published
    /// at once; the committer writes it later.
    fn transact_in_background(
        core: &Core<T>,
        committer: &Background<T>,
        order: &Mutex<()>,
        mut decide: impl FnMut(&T) -> Option<Arc<T>>,
    ) -> Result<Outcome<T>> {
        let outcome = {
            let _ordered = lock(order);
            core.ensure_live()?;
            committer.ensure_running()?;
            let (old, version) = core.current();
            match core.user_code(|| decide(&old)) {
                None => Outcome {
                    new: Arc::clone(&old),
                    old,
                },
                Some(new) => {
                    core.validate(&new)?;
                    core.encode(&new, &mut std::io::sink())?;
                    core.publish(Arc::clone(&new), version, None);
                    committer.acknowledge(Arc::clone(&new));
                    Outcome { old, new }
                }
            }
        };
        core.deliver();
        Ok(outcome)
    }

    /// The version of the value [`deref`](Atom::deref) returns.
    ///
    /// ```
    /// # let atom = enduro::mem_atom(1);
    /// let before = atom.version();
    /// atom.swap(|n| n + 1)?;
    /// assert_ne!(atom.version(), before);
    /// # Ok::<(), enduro::Error>(())
    /// ```
    pub fn version(&self) -> Version {
        self.inner.core.current().1
    }
}

impl<T: Value + Apply> Atom<T> {
    /// Applies `op` to the value (see [`Apply`]) and returns the new value once it is
    /// durable: a [`swap`](Atom::swap) whose change is the op, with the same guarantees
    /// (validator, watches, group commit, retries on another writer's commit; a panic in
    /// `apply` reaches the caller and changes nothing).
    ///
    /// Where the store keeps ops — a file atom in journal mode opened with `ops()` (see
    /// [`Options::ops`]) — the journal stores the op, encoded with the codec, instead of
    /// the whole value, so the commit costs what the op costs; the value is encoded only
    /// when the journal is compacted. Other stores commit the value the op makes.
    ///
    /// The op is encoded and decoded back before anything else, and the decoded op is the
    /// one applied: what a replay will apply. An op that does not read back as itself
    /// fails with [`Error::Encode`](crate::Error::Encode), and nothing changes.
    ///
    /// ```
    /// use enduro::{Apply, Atom, MemStore, Options};
    ///
    /// #[derive(Clone, serde::Serialize, serde::Deserialize)]
    /// struct Counter(u64);
    /// impl Apply for Counter {
    ///     type Op = u64;
    ///     fn apply(&mut self, add: &u64) { self.0 += add; }
    /// }
    ///
    /// let counter = Atom::open(MemStore::new(), Counter(1), Options::new().ops())?;
    /// assert_eq!(counter.apply(2)?.0, 3);
    /// # Ok::<(), enduro::Error>(())
    /// ```
    pub fn apply(&self, op: T::Op) -> Result<Arc<T>> {
        let core = &self.inner.core;
        core.refuse_reentry("apply")?;
        // The background committer writes whole values.
        let keep = core.keeps_ops() && self.inner.background.is_none();
        let (bytes, op) = crate::apply::prepare(core, op, keep)?;
        let decide = |current: &T| Some(crate::apply::next(core, current, &op));
        self.transact_op("apply", Purpose::Change, decide, bytes)
            .map(|o| o.new)
    }
}

impl<T: Value> CatchUp for Inner<T> {
    /// Refreshes when the nudges since the last catch-up ask for it. An error (a value
    /// that does not decode, a lost connection) leaves the atom as it was; the next
    /// change or refresh reports it.
    fn catch_up(self: Arc<Self>) {
        if !self
            .live
            .due(self.core.is_released(), self.core.current().1)
        {
            return;
        }
        let inner = Arc::clone(&self);
        let result = Atom { inner: self }.refresh_for(Purpose::CatchUp);
        inner.live.ended(inner.core.resource(), &result);
    }
}
