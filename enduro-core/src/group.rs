//! Group commit: the transaction protocol both drivers run, without any I/O of its own.
//!
//! Swaps of one atom in one process form batches. Each swap runs its own `f`, on its own
//! thread, on top of the batch's latest (not yet durable) value, and appends the result.
//! The first swap of a batch leads it: it waits until the previous batch is settled, then
//! commits only the batch's last value, in one store commit — one flush, or one UPDATE,
//! acknowledges the whole batch. Then every transition is published in order, and every
//! swap of the batch returns. While a batch commits, the next one fills up.
//!
//! Nothing is published before it is durable: pending values live only in the batches. If
//! a batch fails, each of its swaps fails (and the batch built on top of it retries); if it
//! conflicts with another process, its swaps run `f` again on the reloaded value. A value
//! that cannot be encoded fails only its own swap: the others retry, checking each value's
//! encoding as they apply it.
//!
//! The drivers call [`Group::enter`] until they join a batch, [`Group::lead`] if they lead
//! it, do the store call the returned [`Plan`] asks for, hand the result to
//! [`Group::settle`], and collect their [`Slot`] with [`Group::result`]. Whenever a step
//! answers "wait", the driver waits for [`Group::generation`] to change.

use std::collections::HashMap;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::state::{Core, Outcome, lock};
use crate::store::{Observed, Snapshot, Version};
use crate::value::Value;

/// The longest a leader waits for its peers to join its batch.
pub(crate) const MAX_GATHER: Duration = Duration::from_millis(2);

/// What one swap asks of its batch: a new value, or none (a compare-and-set that did not
/// match, a refresh).
pub(crate) type Decide<'a, T> = &'a mut dyn FnMut(&T) -> Option<Arc<T>>;

/// A swap's place in a batch.
pub(crate) struct Ticket<T> {
    batch: u64,
    index: usize,
    pub(crate) leader: bool,
    old: Arc<T>,
    new: Option<Arc<T>>,
}

impl<T> Ticket<T> {
    pub(crate) fn outcome(&self) -> Outcome<T> {
        Outcome {
            old: Arc::clone(&self.old),
            new: self.new.clone().unwrap_or_else(|| Arc::clone(&self.old)),
        }
    }
}

/// How a swap's batch ended, for that swap.
pub(crate) enum Slot {
    Done,
    /// Run `f` again; `check_encoding`: make sure the new value encodes before joining.
    Retry {
        check_encoding: bool,
    },
    Failed(Error),
}

/// What [`Group::enter`] says to do.
pub(crate) enum Entered<T> {
    /// Ask the store whether the atom's version is still current, then call
    /// [`Group::checked`] and enter again.
    Check(Version),
    /// Wait for the generation to move past this one, then enter again.
    Wait(u64),
    Joined(Ticket<T>),
}

/// What the leader must do with the store.
pub(crate) enum Plan<T> {
    /// Wait for the generation to move past this one, then call [`Group::lead`] again.
    Wait(u64),
    /// Call [`Group::gather`] with these, then [`Group::lead`] again.
    Gather { until: Instant, size: usize },
    /// Nothing to store: every swap of the batch kept the value.
    Nothing,
    /// Nothing to store, but a swap decided to keep the value: check that the value it
    /// saw is still the stored one.
    Check(Version),
    /// Commit `value` over `expected`, after making sure the batch's earlier values would
    /// encode too (see [`Group::check_encoding`]): each swap's value must be one the
    /// store could hold, batched or not.
    Commit {
        expected: Version,
        value: Arc<T>,
        earlier: Vec<Arc<T>>,
    },
    /// The batch was built on one that failed: all of it retries, nothing is stored.
    Abandon,
}

/// What came of the leader's store call.
pub(crate) enum Stored {
    /// The plan needed no store call, or the check found nothing new.
    Nothing,
    Committed(Version),
    /// Someone else committed first; here is what the store holds now (`None`: gone).
    Conflict(Option<Snapshot>),
    /// A check found another writer's value.
    Observed(Observed),
    Failed(Error),
    /// The batch was abandoned: it built on a batch that failed.
    Abandoned,
}

enum Verdict {
    Done,
    /// Every swap runs again (checking its value's encoding if `true`).
    Retry(bool),
    Fail(Error),
}

struct Batch<T> {
    id: u64,
    /// The durable version the batch builds on; `None` while the batch it follows is
    /// still committing.
    base: Option<Version>,
    after: Option<u64>,
    /// The value the next swap builds on.
    tip: Arc<T>,
    entries: Vec<Option<Arc<T>>>,
    /// Without a value to commit, the store must still be asked whether the batch's
    /// base is current.
    verify: bool,
    encode_failed: bool,
    /// The leader waits for more swaps to join (once) before it commits.
    gathering: bool,
    gathered: bool,
}

struct State<T> {
    open: Option<Batch<T>>,
    /// The batch being committed, closed to new swaps.
    committing: Option<Batch<T>>,
    /// A swap checks the store before opening a batch, or a release runs: nobody joins.
    exclusive: bool,
    next_id: u64,
    /// Batches settled without storing their values (the ones after them retry).
    failed: Vec<u64>,
    results: HashMap<u64, Vec<Option<Slot>>>,
    /// Swaps (batch, index) whose async caller went away before their batch settled:
    /// their results are dropped when it does, rather than kept for nobody.
    forgotten: Vec<(u64, usize)>,
    generation: u64,
    /// Threads blocked on the condvar.
    sleepers: usize,
    /// How many swaps the last batch held, and how long its store call took: a leader
    /// whose batch is smaller waits a little for its peers (see [`Group::lead`]).
    last_size: usize,
    last_commit: Duration,
    commit_started: Option<Instant>,
}

pub(crate) struct Group<T> {
    state: Mutex<State<T>>,
    changed: Condvar,
    #[cfg(feature = "async")]
    changed_async: tokio::sync::Notify,
}

impl<T: Value> Group<T> {
    pub(crate) fn new() -> Self {
        Group {
            state: Mutex::new(State {
                open: None,
                committing: None,
                exclusive: false,
                next_id: 1,
                failed: Vec::new(),
                results: HashMap::new(),
                forgotten: Vec::new(),
                generation: 0,
                sleepers: 0,
                last_size: 1,
                last_commit: Duration::ZERO,
                commit_started: None,
            }),
            changed: Condvar::new(),
            #[cfg(feature = "async")]
            changed_async: tokio::sync::Notify::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State<T>> {
        lock(&self.state)
    }

    fn wake(&self, state: &mut State<T>) {
        state.generation += 1;
        // Notifying a condvar is a system call even when nobody waits: skip it then (both
        // sides hold the state lock, so no wake-up is lost).
        if state.sleepers > 0 {
            self.changed.notify_all();
        }
        #[cfg(feature = "async")]
        self.changed_async.notify_waiters();
    }

    #[cfg(feature = "async")]
    pub(crate) fn generation(&self) -> u64 {
        self.state().generation
    }

    /// Blocks until the generation moves past `seen`.
    pub(crate) fn wait(&self, seen: u64) {
        let mut state = self.state();
        while state.generation == seen {
            state.sleepers += 1;
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
            state.sleepers -= 1;
        }
    }

    /// Waits, without blocking the runtime, until the generation moves past `seen`.
    #[cfg(feature = "async")]
    pub(crate) async fn wait_async(&self, seen: u64) {
        loop {
            let notified = self.changed_async.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.generation() != seen {
                return;
            }
            notified.await;
        }
    }

    /// Joins the open batch (opening one if needed): runs `decide` on the batch's latest
    /// value and appends the result. `check_first`: bring the atom up to date with the
    /// store before a batch that builds on durable state. `check_encoding`: refuse a value
    /// that does not encode before it joins (after a batch failed on one).
    pub(crate) fn enter(
        &self,
        core: &Core<T>,
        check_first: bool,
        refresh: bool,
        check_encoding: bool,
        decide: Decide<'_, T>,
    ) -> Result<Entered<T>> {
        let mut state = self.state();
        core.ensure_live()?;
        if state.open.is_none() {
            if state.exclusive {
                return Ok(Entered::Wait(state.generation));
            }
            match &state.committing {
                Some(committing) => {
                    let tip = Arc::clone(&committing.tip);
                    let batch = Batch::new(state.next_id, None, Some(committing.id), tip);
                    state.open = Some(batch);
                    state.next_id += 1;
                }
                None if check_first || refresh => {
                    state.exclusive = true;
                    return Ok(Entered::Check(core.current().1));
                }
                None => {
                    let (value, version) = core.current();
                    state.open = Some(Batch::new(state.next_id, Some(version), None, value));
                    state.next_id += 1;
                }
            }
        }
        let Some(batch) = state.open.as_mut() else {
            unreachable!("a batch was just opened");
        };
        let old = Arc::clone(&batch.tip);
        // `decide`, the validator and the encoding check are user code: a panic in them
        // must not leave the group half-changed.
        let decided = catch_unwind(AssertUnwindSafe(|| {
            let new = decide(&old);
            if let Some(value) = &new {
                core.validate(value)?;
                if check_encoding {
                    core.encode(value, &mut io::sink())?;
                }
            }
            Ok(new)
        }));
        let new = match decided {
            Ok(Ok(new)) => new,
            failed => {
                // This swap stays out; a batch it opened must not linger, stale, unchecked.
                if batch.entries.is_empty() {
                    state.open = None;
                }
                drop(state);
                return match failed {
                    Err(panic) => resume_unwind(panic),
                    Ok(result) => result.map(|_| unreachable!("only failures get here")),
                };
            }
        };
        if let Some(value) = &new {
            batch.tip = Arc::clone(value);
        }
        // A swap that kept the value decided on what it saw; unless the commit of a later
        // value proves that was current, the store must be asked (a refresh, or a
        // compare-and-set that did not match).
        batch.verify |= refresh || new.is_none();
        batch.encode_failed |= check_encoding;
        batch.entries.push(new.clone());
        let ticket = Ticket {
            batch: batch.id,
            index: batch.entries.len() - 1,
            leader: batch.entries.len() == 1,
            old,
            new,
        };
        if batch.gathering {
            self.wake(&mut state); // the leader is waiting for its peers
        }
        Ok(Entered::Joined(ticket))
    }

    /// Takes what the check before a batch found: adopts another writer's value, or marks
    /// the atom released. On error, lets the next swap try again.
    pub(crate) fn checked(&self, core: &Core<T>, observed: Result<Observed>) -> Result<()> {
        let mut state = self.state();
        state.exclusive = false;
        self.wake(&mut state);
        let observed = observed?;
        let (value, version) = match observed {
            Observed::Unchanged => core.current(),
            Observed::Changed(snapshot) => core.adopt(snapshot)?,
            Observed::Missing => return Err(core.mark_released()),
        };
        state.open = Some(Batch::new(state.next_id, Some(version), None, value));
        state.next_id += 1;
        Ok(())
    }

    /// For the leader: once the batch before has settled, closes this batch and says what
    /// to store.
    ///
    /// With `gather`, a leader whose batch holds fewer swaps than the last one first waits
    /// a little (half the last store call, at most [`MAX_GATHER`]) for the swaps that just
    /// returned from the last batch to come back and join: otherwise threads in a tight
    /// loop split into two alternating half-size batches. Like PostgreSQL's
    /// `commit_delay`, it only ever happens when swaps overlap.
    pub(crate) fn lead(&self, core: &Core<T>, ticket: &Ticket<T>, gather: bool) -> Plan<T> {
        let mut state = self.state();
        if state.committing.is_some() {
            return Plan::Wait(state.generation);
        }
        let last_size = state.last_size;
        let pause = (state.last_commit / 2).min(MAX_GATHER);
        if let Some(batch) = state.open.as_mut().filter(|b| b.id == ticket.batch)
            && gather
            && !batch.gathered
            && batch.entries.len() < last_size
        {
            batch.gathered = true;
            batch.gathering = true;
            return Plan::Gather {
                until: Instant::now() + pause,
                size: last_size,
            };
        }
        let Some(batch) = state.open.take_if(|b| b.id == ticket.batch) else {
            unreachable!("the leader's batch stays open until it leads it");
        };
        let follows_failure = batch.after.is_some_and(|id| state.failed.contains(&id));
        let expected = batch.base.unwrap_or_else(|| core.current().1);
        let plan = if follows_failure {
            Plan::Abandon
        } else if batch.entries.iter().any(Option::is_some) {
            let mut earlier: Vec<Arc<T>> = batch.entries.iter().flatten().cloned().collect();
            earlier.pop();
            Plan::Commit {
                expected,
                value: Arc::clone(&batch.tip),
                earlier,
            }
        } else if batch.verify {
            Plan::Check(expected)
        } else {
            Plan::Nothing
        };
        state.commit_started = Some(Instant::now());
        state.committing = Some(batch);
        plan
    }

    /// Blocks until the leader's batch holds `size` swaps or `until` passes.
    pub(crate) fn gather(&self, ticket: &Ticket<T>, until: Instant, size: usize) {
        let mut state = self.state();
        loop {
            let Some(batch) = state.open.as_mut().filter(|b| b.id == ticket.batch) else {
                return;
            };
            let now = Instant::now();
            if batch.entries.len() >= size || now >= until {
                batch.gathering = false;
                return;
            }
            state.sleepers += 1;
            state = self
                .changed
                .wait_timeout(state, until - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            state.sleepers -= 1;
        }
    }

    /// Encodes (into nothing) the batch's values before the last, which the commit does
    /// not store: a value the store could not hold fails its swap even when a later swap
    /// of the same batch replaced it. Costs nothing when swaps do not overlap.
    pub(crate) fn check_encoding(core: &Core<T>, earlier: &[Arc<T>]) -> Result<()> {
        earlier
            .iter()
            .try_for_each(|value| core.encode(value, &mut io::sink()))
    }

    /// For the leader: records what came of the batch — publishes its transitions if it
    /// was stored — and hands each swap its slot. Returns the leader's own slot.
    pub(crate) fn settle(&self, core: &Core<T>, ticket: &Ticket<T>, stored: Stored) -> Slot {
        let mut state = self.state();
        let Some(batch) = state.committing.take_if(|b| b.id == ticket.batch) else {
            unreachable!("the leader settles its own batch");
        };
        let count = batch.entries.len();
        state.last_size = count;
        if let Some(started) = state.commit_started.take() {
            state.last_commit = started.elapsed();
        }
        let verdict = match stored {
            Stored::Nothing | Stored::Observed(Observed::Unchanged) => Verdict::Done,
            Stored::Committed(version) => {
                core.publish_all(batch.entries.iter().flatten(), version);
                Verdict::Done
            }
            // Another writer's value: the swaps decided on an old one, so they decide again.
            Stored::Observed(Observed::Changed(snapshot)) => match core.adopt(snapshot) {
                Ok(_) => Verdict::Retry(batch.encode_failed),
                Err(e) => Verdict::Fail(e),
            },
            Stored::Observed(Observed::Missing) | Stored::Conflict(None) => {
                Verdict::Fail(core.mark_released())
            }
            Stored::Conflict(Some(snapshot)) => match core.adopt(snapshot) {
                Ok(_) => Verdict::Retry(batch.encode_failed),
                Err(e) => Verdict::Fail(e),
            },
            Stored::Abandoned => Verdict::Retry(batch.encode_failed),
            // One of the values does not encode: each swap retries, checking its own.
            Stored::Failed(Error::Encode { .. }) if count > 1 => Verdict::Retry(true),
            Stored::Failed(error) => Verdict::Fail(error),
        };
        let mut slots: Vec<Option<Slot>> = match verdict {
            Verdict::Done => (0..count).map(|_| Some(Slot::Done)).collect(),
            Verdict::Retry(check_encoding) => (0..count)
                .map(|_| Some(Slot::Retry { check_encoding }))
                .collect(),
            Verdict::Fail(error) => {
                let mut slots: Vec<Option<Slot>> = (1..count)
                    .map(|_| Some(Slot::Failed(echo(&error))))
                    .collect();
                slots.insert(ticket.index, Some(Slot::Failed(error)));
                slots
            }
        };
        if !matches!(slots.first(), Some(Some(Slot::Done))) {
            // Batches built on this one's values notice when they lead.
            state.failed.push(batch.id);
            if state.failed.len() > 64 {
                state.failed.drain(..32);
            }
        }
        let mine = slots[ticket.index].take().unwrap_or(Slot::Done);
        state.keep_results(batch.id, slots);
        self.wake(&mut state);
        mine
    }

    /// For a leader that will not finish (a panic in user code during the commit, or an
    /// async leader dropped mid-way): ends its batch so that the other swaps run again.
    /// Whether its value was stored is unknown; the next commit's version check sorts it
    /// out.
    pub(crate) fn abandon(&self, ticket: &Ticket<T>) {
        let mut state = self.state();
        let batch = match state.open.take_if(|b| b.id == ticket.batch) {
            Some(batch) => batch,
            None => match state.committing.take_if(|b| b.id == ticket.batch) {
                Some(batch) => batch,
                None => return,
            },
        };
        let slots = (0..batch.entries.len())
            .map(|i| {
                (i != ticket.index).then_some(Slot::Retry {
                    check_encoding: batch.encode_failed,
                })
            })
            .collect();
        state.keep_results(batch.id, slots);
        state.failed.push(batch.id);
        self.wake(&mut state);
    }

    /// Waits for no batch to be open or committing, then keeps everyone out until
    /// [`Group::end_exclusive`] (for `release`). `Err`: wait for that generation to pass.
    pub(crate) fn exclusive(&self) -> std::result::Result<(), u64> {
        let mut state = self.state();
        if state.exclusive || state.open.is_some() || state.committing.is_some() {
            return Err(state.generation);
        }
        state.exclusive = true;
        Ok(())
    }

    pub(crate) fn end_exclusive(&self) {
        let mut state = self.state();
        state.exclusive = false;
        self.wake(&mut state);
    }

    /// For a swap that does not lead and will not collect its result (an async caller
    /// dropped while waiting): its result is dropped now, or when its batch settles. Its
    /// value stays in the batch: like any interrupted write, it may or may not be stored.
    pub(crate) fn forget(&self, ticket: &Ticket<T>) {
        let mut state = self.state();
        if state.take_result(ticket).is_none() {
            state.forgotten.push((ticket.batch, ticket.index));
        }
    }

    /// How many settled swaps' results nobody has collected yet (for tests).
    #[cfg(test)]
    pub(crate) fn unclaimed_results(&self) -> usize {
        let state = self.state();
        state
            .results
            .values()
            .map(|slots| slots.iter().filter(|s| s.is_some()).count())
            .sum()
    }

    /// For a swap that does not lead: its slot, once its batch settled.
    pub(crate) fn result(&self, ticket: &Ticket<T>) -> std::result::Result<Slot, u64> {
        let mut state = self.state();
        match state.take_result(ticket) {
            Some(slot) => Ok(slot.unwrap_or(Slot::Done)),
            None => Err(state.generation),
        }
    }
}

impl<T> State<T> {
    /// Takes `ticket`'s result once its batch settled (`None` before, `Some(None)` if it
    /// was taken already), dropping the batch's results once all are taken.
    fn take_result(&mut self, ticket: &Ticket<T>) -> Option<Option<Slot>> {
        let slots = self.results.get_mut(&ticket.batch)?;
        let slot = slots[ticket.index].take();
        if slots.iter().all(Option::is_none) {
            self.results.remove(&ticket.batch);
        }
        Some(slot)
    }

    /// Keeps a settled batch's results for its swaps still to collect them.
    fn keep_results(&mut self, batch: u64, mut slots: Vec<Option<Slot>>) {
        self.forgotten.retain(|&(b, index)| {
            if b == batch {
                slots[index] = None;
            }
            b != batch
        });
        if slots.iter().any(Option::is_some) {
            self.results.insert(batch, slots);
        }
    }
}

impl<T> Batch<T> {
    fn new(id: u64, base: Option<Version>, after: Option<u64>, tip: Arc<T>) -> Self {
        Batch {
            id,
            base,
            after,
            tip,
            entries: Vec::new(),
            verify: false,
            encode_failed: false,
            gathering: false,
            gathered: false,
        }
    }
}

/// The same error for another swap of a failed batch: same variant and message (errors
/// from the operating system or a codec are not `Clone`, so their text is carried).
pub(crate) fn echo(error: &Error) -> Error {
    match error {
        Error::Released => Error::Released,
        Error::Invalid => Error::Invalid,
        Error::Encode {
            resource,
            codec,
            source,
        } => Error::Encode {
            resource: resource.clone(),
            codec,
            source: source.to_string().into(),
        },
        Error::Decode {
            resource,
            type_name,
            codec,
            source,
        } => Error::Decode {
            resource: resource.clone(),
            type_name,
            codec,
            source: source.to_string().into(),
        },
        Error::Io {
            action,
            path,
            source,
        } => Error::Io {
            action: action.clone(),
            path: path.clone(),
            source: io::Error::new(source.kind(), source.to_string()),
        },
        Error::InvalidPath { path, reason } => Error::InvalidPath {
            path: path.clone(),
            reason: reason.clone(),
        },
        Error::LockTimeout { path, waited } => Error::LockTimeout {
            path: path.clone(),
            waited: *waited,
        },
        Error::Backend {
            resource,
            message,
            source,
        } => Error::Backend {
            resource: resource.clone(),
            message: message.clone(),
            source: source.as_ref().map(|s| s.to_string().into()),
        },
        Error::Uncertain {
            resource,
            message,
            source,
        } => Error::Uncertain {
            resource: resource.clone(),
            message: message.clone(),
            source: source.as_ref().map(|s| s.to_string().into()),
        },
        Error::Reentrant { resource, call } => Error::Reentrant {
            resource: resource.clone(),
            call,
        },
        Error::InvalidStored { resource } => Error::InvalidStored {
            resource: resource.clone(),
        },
    }
}

/// Undoes a step if the driver does not finish it: a panic in store or user code, or an
/// async driver dropped while awaiting the store. Disarmed by [`Guard::done`].
pub(crate) struct Guard<'a, T: Value> {
    group: &'a Group<T>,
    core: &'a Core<T>,
    step: Step<'a, T>,
}

enum Step<'a, T> {
    Check,
    Lead(&'a Ticket<T>),
    Follow(&'a Ticket<T>),
    Exclusive,
    Done,
}

impl<'a, T: Value> Guard<'a, T> {
    pub(crate) fn check(group: &'a Group<T>, core: &'a Core<T>) -> Self {
        Guard {
            group,
            core,
            step: Step::Check,
        }
    }
    pub(crate) fn lead(group: &'a Group<T>, core: &'a Core<T>, ticket: &'a Ticket<T>) -> Self {
        Guard {
            group,
            core,
            step: Step::Lead(ticket),
        }
    }
    pub(crate) fn follow(group: &'a Group<T>, core: &'a Core<T>, ticket: &'a Ticket<T>) -> Self {
        Guard {
            group,
            core,
            step: Step::Follow(ticket),
        }
    }
    pub(crate) fn exclusive(group: &'a Group<T>, core: &'a Core<T>) -> Self {
        Guard {
            group,
            core,
            step: Step::Exclusive,
        }
    }
    pub(crate) fn done(mut self) {
        self.step = Step::Done;
    }
}

impl<T: Value> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        match self.step {
            Step::Check => {
                let interrupted = Error::Backend {
                    resource: self.core.resource().to_owned(),
                    message: "the check before a swap was interrupted".into(),
                    source: None,
                };
                let _ = self.group.checked(self.core, Err(interrupted));
            }
            Step::Lead(ticket) => self.group.abandon(ticket),
            Step::Follow(ticket) => self.group.forget(ticket),
            Step::Exclusive => self.group.end_exclusive(),
            Step::Done => {}
        }
    }
}

/// The retry loop both drivers run, written once. The driver supplies its own waiting
/// and store calls — blocking, or with `.await` in the async driver — which are pasted in
/// place; everything else (joining, leading, gathering, settling, retrying, guarding
/// against panics and dropped futures, delivering to the watches) is here.
macro_rules! drive {
    (
        core: $core:expr,
        group: $group:expr,
        cheap_check: $cheap:expr,
        refresh: $refresh:expr,
        decide: $decide:expr,
        gather: $gather:expr,
        wait($seen:ident) => $wait:expr,
        check($known:ident) => $check:expr,
        commit($expected:ident, $value:ident) => $commit:expr,
        load => $load:expr $(,)?
    ) => {{
        use $crate::group::{Entered, Group, Guard, Plan, Slot, Stored};
        use $crate::store::Committed;
        let (core, group) = ($core, $group);
        let mut check_encoding = false;
        let result = loop {
            let ticket = match group.enter(core, $cheap, $refresh, check_encoding, $decide) {
                Err(e) => break Err(e),
                Ok(Entered::Check(version)) => {
                    let guard = Guard::check(group, core);
                    let $known = version;
                    let observed = $check;
                    guard.done();
                    match group.checked(core, observed) {
                        Ok(()) => continue,
                        Err(e) => break Err(e),
                    }
                }
                Ok(Entered::Wait($seen)) => {
                    $wait;
                    continue;
                }
                Ok(Entered::Joined(ticket)) => ticket,
            };
            let slot = if ticket.leader {
                let guard = Guard::lead(group, core, &ticket);
                let plan = loop {
                    match group.lead(core, &ticket, $gather) {
                        Plan::Wait($seen) => $wait,
                        Plan::Gather { until, size } => group.gather(&ticket, until, size),
                        plan => break plan,
                    }
                };
                let stored = match plan {
                    Plan::Wait(_) | Plan::Gather { .. } | Plan::Nothing => Stored::Nothing,
                    Plan::Abandon => Stored::Abandoned,
                    Plan::Check($known) => match $check {
                        Ok(observed) => Stored::Observed(observed),
                        Err(e) => Stored::Failed(e),
                    },
                    Plan::Commit {
                        expected: $expected,
                        value: $value,
                        earlier,
                    } => match Group::check_encoding(core, &earlier) {
                        Err(e) => Stored::Failed(e),
                        Ok(()) => match $commit {
                            Ok(Committed::Done(version)) => Stored::Committed(version),
                            Ok(Committed::Conflict) => match $load {
                                Ok(snapshot) => Stored::Conflict(snapshot),
                                Err(e) => Stored::Failed(e),
                            },
                            Err(e) => Stored::Failed(e),
                        },
                    },
                };
                guard.done();
                group.settle(core, &ticket, stored)
            } else {
                let guard = Guard::follow(group, core, &ticket);
                let slot = loop {
                    match group.result(&ticket) {
                        Ok(slot) => break slot,
                        Err($seen) => $wait,
                    }
                };
                guard.done();
                slot
            };
            match slot {
                Slot::Done => break Ok(ticket.outcome()),
                Slot::Retry {
                    check_encoding: check,
                } => check_encoding = check,
                Slot::Failed(e) => break Err(e),
            }
        };
        core.deliver();
        result
    }};
}
pub(crate) use drive;
