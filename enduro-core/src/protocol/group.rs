//! The state all swaps of one atom share: the open batch, the one committing, and the
//! results of settled batches, behind one lock. Each method is one step of the protocol
//! (see the module above); none does I/O.

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::state::{Core, lock};
use crate::store::{Observed, Version};
use crate::value::Value;

use super::batch::{Slot, State, Ticket};
use super::calls::{Plan, Stored};
use super::txn::Mode;
use super::verdict::Verdict;

/// The longest a leader waits for its peers to join its batch.
pub(crate) const MAX_GATHER: Duration = Duration::from_millis(2);

/// What one swap asks of its batch, given the batch's latest value: a new value, or none
/// (keep the value: a compare-and-set that did not match, a refresh, a fallible update
/// that failed).
pub(crate) type Decide<'a, T> = &'a mut dyn FnMut(&T) -> Option<Arc<T>>;

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

/// What [`Group::lead`] says to do.
pub(crate) enum Lead<T> {
    /// Wait for the generation to move past this one, then call [`Group::lead`] again.
    Wait(u64),
    /// Call [`Group::gather`] with these, then [`Group::lead`] again.
    Gather { until: Instant, size: usize },
    /// The batch is closed: make the store calls of this plan, then settle it.
    Go(Plan<T>),
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
            state: Mutex::new(State::new()),
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
    /// value and appends the result. `mode.check_first`: bring the atom up to date with
    /// the store before a batch that builds on durable state (a refresh always does).
    /// `pre_encode`: refuse a value that does not encode before it joins (after a batch
    /// failed on one).
    pub(crate) fn enter(
        &self,
        core: &Core<T>,
        mode: Mode,
        pre_encode: bool,
        decide: Decide<'_, T>,
        op: Option<&Arc<[u8]>>,
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
                    let (after, tip) = (committing.id, Arc::clone(&committing.tip));
                    state.open_batch(None, Some(after), tip);
                }
                None if mode.check_first || mode.refresh => {
                    state.exclusive = true;
                    return Ok(Entered::Check(core.current().1));
                }
                None => {
                    let (value, version) = core.current();
                    state.open_batch(Some(version), None, value);
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
                if pre_encode {
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
            match op {
                Some(op) => batch.ops.push(Arc::clone(op)),
                None => batch.whole = true,
            }
        }
        // A swap that kept the value decided on what it saw; unless the commit of a later
        // value proves that was current, the store must be asked (a refresh, or a
        // compare-and-set that did not match).
        batch.verify |= mode.refresh || new.is_none();
        // Only a batch of catch-ups alone takes a blank value for a rewrite in progress: a
        // refresh (or any call) of the user that joins one must see a release as one.
        batch.following = mode.following && (batch.entries.is_empty() || batch.following);
        batch.pre_encode |= pre_encode;
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
    /// the atom released. On error, lets the next swap try again. `following` (a live
    /// atom's catch-up) keeps the current value over one that looks blank.
    pub(crate) fn checked(
        &self,
        core: &Core<T>,
        observed: Result<Observed>,
        following: bool,
    ) -> Result<()> {
        let mut state = self.state();
        state.exclusive = false;
        self.wake(&mut state);
        let observed = observed?;
        let (value, version) = match observed {
            Observed::Unchanged => core.current(),
            Observed::Changed(snapshot) if following && core.is_blank(&snapshot.bytes) => {
                core.current()
            }
            Observed::Changed(snapshot) => core.adopt(snapshot)?,
            Observed::Steps(steps) => core.adopt_steps(steps)?,
            Observed::Replay(replay) => core.adopt_replay(replay)?,
            Observed::Missing => return Err(core.mark_released()),
        };
        state.open_batch(Some(version), None, value);
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
    pub(crate) fn lead(&self, core: &Core<T>, ticket: &Ticket<T>, gather: bool) -> Lead<T> {
        let mut state = self.state();
        if state.committing.is_some() {
            return Lead::Wait(state.generation);
        }
        if state.deciding && state.open.as_ref().is_some_and(|b| b.id == ticket.batch) {
            // A swap is deciding on this batch: its value belongs in it.
            state.decide_waiters = true;
            return Lead::Wait(state.generation);
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
            return Lead::Gather {
                until: Instant::now() + pause,
                size: last_size,
            };
        }
        let Some(mut batch) = state.open.take_if(|b| b.id == ticket.batch) else {
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
                ops: (!batch.whole).then(|| std::mem::take(&mut batch.ops)),
            }
        } else if batch.verify {
            Plan::Check(expected)
        } else {
            Plan::Nothing
        };
        state.commit_started = Some(Instant::now());
        state.committing = Some(batch);
        Lead::Go(plan)
    }

    /// Blocks until the leader's batch holds `size` swaps or `until` passes.
    pub(crate) fn gather(&self, batch: u64, until: Instant, size: usize) {
        let mut state = self.state();
        loop {
            let Some(batch) = state.open.as_mut().filter(|b| b.id == batch) else {
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
        state.last_size = batch.entries.len();
        if let Some(started) = state.commit_started.take() {
            state.last_commit = started.elapsed();
        }
        let verdict = Verdict::of(core, &batch, stored);
        if !matches!(verdict, Verdict::Done) {
            // Batches built on this one's values notice when they lead.
            state.mark_failed(batch.id);
        }
        let slots = verdict.slots(batch.entries.len());
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
                    pre_encode: batch.pre_encode,
                })
            })
            .collect();
        state.keep_results(batch.id, slots);
        state.mark_failed(batch.id);
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
        self.state().forget(ticket);
    }

    /// Makes leaders wait for batches of `size` swaps, as if the last batch held that many
    /// (for tests, which interleave swaps by hand).
    #[cfg(test)]
    pub(crate) fn expect_batches_of(&self, size: usize) {
        self.state().last_size = size;
    }

    /// How many settled swaps' results nobody has collected yet (for tests).
    #[cfg(test)]
    pub(crate) fn unclaimed_results(&self) -> usize {
        self.state().unclaimed_results()
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
