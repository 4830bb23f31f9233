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
//! encoding as they apply it. A batch whose commit may or may not have been stored is
//! never run again: its swaps fail with [`Error::Uncertain`], after the atom took what the
//! store holds.
//!
//! One swap at a time runs its `f` (and the validator) on the open batch's tip, with no
//! lock held: the others wait their turn, so a slow `f` delays only the swaps behind it,
//! never a batch that is settling.
//!
//! The drivers call [`Group::enter`] until they join a batch, [`Group::lead`] if they lead
//! it, make the store calls the returned [`Plan`] asks for (see `calls`), hand what was
//! stored to [`Group::settle`], and collect their [`Slot`] with [`Group::result`].
//! Whenever a step answers "wait", the driver waits for the generation to change.

use std::collections::HashMap;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::calls::{After, Stored};
use crate::error::{Error, Result};
use crate::state::{Core, Outcome, lock};
use crate::store::{Observed, Version};
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
    /// The batch this swap is in, for settling it.
    pub(crate) fn batch_id(&self) -> u64 {
        self.batch
    }

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
    /// Enter again at once (the batch this swap decided on went away meanwhile).
    Again,
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
    /// encode too: each swap's value must be one the store could hold, batched or not.
    Commit {
        expected: Version,
        value: Arc<T>,
        earlier: Vec<Arc<T>>,
    },
    /// The batch was built on one that failed: all of it retries, nothing is stored.
    Abandon,
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
    /// A swap is running its `f` on the open batch's tip (with no lock held): the others
    /// wait for its result, and the batch stays open.
    deciding: bool,
    /// Someone waits for the swap deciding to finish.
    decide_waiters: bool,
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
    changed_async: Arc<tokio::sync::Notify>,
}

impl<T: Value> Group<T> {
    pub(crate) fn new() -> Self {
        Group {
            state: Mutex::new(State {
                open: None,
                committing: None,
                exclusive: false,
                deciding: false,
                decide_waiters: false,
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
            changed_async: Arc::new(tokio::sync::Notify::new()),
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

    /// What async waiters wait on: notified whenever the generation moves.
    #[cfg(feature = "async")]
    pub(crate) fn notifier(&self) -> &Arc<tokio::sync::Notify> {
        &self.changed_async
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
        if state.deciding {
            // The swap deciding appends next; this one builds on its result.
            state.decide_waiters = true;
            return Ok(Entered::Wait(state.generation));
        }
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
        let Some(batch) = state.open.as_ref() else {
            unreachable!("a batch was just opened");
        };
        let (batch_id, old) = (batch.id, Arc::clone(&batch.tip));
        state.deciding = true;
        drop(state);
        // `decide`, the validator and the encoding check are user code: they run with no
        // lock held, and a panic in them must not leave the group half-changed.
        let decided = catch_unwind(AssertUnwindSafe(|| {
            let new = core.user_code(|| decide(&old));
            if let Some(value) = &new {
                core.validate(value)?;
                if check_encoding {
                    core.encode(value, &mut io::sink())?;
                }
            }
            Ok(new)
        }));
        let mut state = self.state();
        state.deciding = false;
        let waiters = std::mem::take(&mut state.decide_waiters);
        // Only a leader dropped while it waited to lead takes a batch someone decides on.
        let Some(batch) = state.open.as_mut().filter(|b| b.id == batch_id) else {
            self.wake(&mut state);
            drop(state);
            return match decided {
                Err(panic) => resume_unwind(panic),
                Ok(Err(e)) => Err(e),
                Ok(Ok(_)) => Ok(Entered::Again),
            };
        };
        let new = match decided {
            Ok(Ok(new)) => new,
            Err(panic) => {
                self.leave_unjoined(&mut state);
                drop(state);
                resume_unwind(panic)
            }
            Ok(Err(e)) => {
                self.leave_unjoined(&mut state);
                return Err(e);
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
        if batch.gathering || waiters {
            self.wake(&mut state); // the leader or the next swap waits for this one
        }
        Ok(Entered::Joined(ticket))
    }

    /// A swap whose `f` or validator failed stays out of the batch; a batch it opened must
    /// not linger, stale and unchecked.
    fn leave_unjoined(&self, state: &mut State<T>) {
        if state.open.as_ref().is_some_and(|b| b.entries.is_empty()) {
            state.open = None;
        }
        self.wake(state);
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
        if state.deciding && state.open.as_ref().is_some_and(|b| b.id == ticket.batch) {
            // A swap is deciding on this batch: its value belongs in it.
            state.decide_waiters = true;
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

    /// Records what came of the batch `id`, being committed — publishes its transitions
    /// if it was stored — and keeps each swap's slot for [`Group::result`]. Called by the
    /// leader, or (async) by whoever drove the batch's commit to its end.
    pub(crate) fn settle(&self, core: &Core<T>, id: u64, stored: Stored) {
        let mut state = self.state();
        let Some(batch) = state.committing.take_if(|b| b.id == id) else {
            return; // settled already
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
            // The batch's value may be in the store: never run its swaps again (that could
            // apply them twice). Show what the store holds, and say so.
            Stored::Uncertain(error, found) => {
                match found {
                    After::Holds(snapshot) if snapshot.version != core.current().1 => {
                        // Data that does not decode stays in the store for the next
                        // swap to report; this swap reports the unknown outcome.
                        let _ = core.adopt(snapshot);
                    }
                    After::Gone => {
                        core.mark_released();
                    }
                    After::Holds(_) | After::Unread => {}
                }
                Verdict::Fail(error)
            }
        };
        let slots: Vec<Option<Slot>> = match verdict {
            Verdict::Done => (0..count).map(|_| Some(Slot::Done)).collect(),
            Verdict::Retry(check_encoding) => (0..count)
                .map(|_| Some(Slot::Retry { check_encoding }))
                .collect(),
            // The leader (the batch's first swap) gets the error itself, the others its echo.
            Verdict::Fail(error) => {
                let mut slots: Vec<Option<Slot>> = (1..count)
                    .map(|_| Some(Slot::Failed(error.echo())))
                    .collect();
                slots.insert(0, Some(Slot::Failed(error)));
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
        state.keep_results(batch.id, slots);
        self.wake(&mut state);
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
    #[cfg(all(test, feature = "async"))]
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
