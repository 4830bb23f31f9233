//! The bookkeeping of batches: what a batch holds, each swap's place in it (its
//! [`Ticket`]), and the results kept for swaps still to collect them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::state::Outcome;
use crate::store::Version;

/// A swap's place in a batch.
pub(crate) struct Ticket<T> {
    pub(super) batch: u64,
    pub(super) index: usize,
    /// The first swap of a batch leads it.
    pub(crate) leader: bool,
    pub(super) old: Arc<T>,
    pub(super) new: Option<Arc<T>>,
}

impl<T> Ticket<T> {
    /// The batch this swap is in.
    pub(crate) fn batch_id(&self) -> u64 {
        self.batch
    }

    /// The swap's transition (`new == old` when it kept the value).
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
    /// Run `f` again; `pre_encode`: make sure the new value encodes before joining.
    Retry {
        pre_encode: bool,
    },
    Failed(Error),
}

/// One batch: the swaps that will be committed together.
pub(super) struct Batch<T> {
    pub(super) id: u64,
    /// The durable version the batch builds on; `None` while the batch it follows is
    /// still committing.
    pub(super) base: Option<Version>,
    /// The batch it follows, if that one was still committing when this one opened.
    pub(super) after: Option<u64>,
    /// The value the next swap builds on.
    pub(super) tip: Arc<T>,
    /// Each swap's new value (`None`: it kept the value), in order.
    pub(super) entries: Vec<Option<Arc<T>>>,
    /// The encoded op of each change, in order, while every change is one.
    pub(super) ops: Vec<Arc<[u8]>>,
    /// A change that is not an op joined: the batch commits its value.
    pub(super) whole: bool,
    /// Without a value to commit, the store must still be asked whether the batch's
    /// base is current.
    pub(super) verify: bool,
    /// Only live atoms' catch-ups joined: a value that looks blank, met when no swap of the
    /// batch changes the value, is a rewrite in place caught half-way, not a release.
    pub(super) following: bool,
    /// A batch before failed on a value that does not encode: each swap encodes its
    /// value before joining.
    pub(super) pre_encode: bool,
    /// The leader waits for more swaps to join (once) before it commits.
    pub(super) gathering: bool,
    pub(super) gathered: bool,
}

impl<T> Batch<T> {
    /// Whether a value that looks blank leaves the atom as it is (see `following`).
    pub(super) fn tolerates_blank(&self) -> bool {
        self.following && self.entries.iter().all(Option::is_none)
    }

    pub(super) fn new(id: u64, base: Option<Version>, after: Option<u64>, tip: Arc<T>) -> Self {
        Batch {
            id,
            base,
            after,
            tip,
            entries: Vec::new(),
            ops: Vec::new(),
            whole: false,
            verify: false,
            following: false,
            pre_encode: false,
            gathering: false,
            gathered: false,
        }
    }
}

/// Everything the group keeps under its lock.
pub(super) struct State<T> {
    pub(super) open: Option<Batch<T>>,
    /// The batch being committed, closed to new swaps.
    pub(super) committing: Option<Batch<T>>,
    /// A swap checks the store before opening a batch, or a release runs: nobody joins.
    pub(super) exclusive: bool,
    /// A swap is running its `f` on the open batch's tip (with no lock held): the others
    /// wait for its result, and the batch stays open.
    pub(super) deciding: bool,
    /// Someone waits for the swap deciding to finish.
    pub(super) decide_waiters: bool,
    pub(super) next_id: u64,
    /// Batches settled without storing their values (the ones after them retry).
    pub(super) failed: Vec<u64>,
    results: HashMap<u64, Vec<Option<Slot>>>,
    /// Swaps (batch, index) whose caller went away before their batch settled: their
    /// results are dropped when it does, rather than kept for nobody.
    forgotten: Vec<(u64, usize)>,
    pub(super) generation: u64,
    /// Threads blocked on the condvar.
    pub(super) sleepers: usize,
    /// How many swaps the last batch held, and how long its store calls took: a leader
    /// whose batch is smaller waits a little for its peers (see `Group::lead`).
    pub(super) last_size: usize,
    pub(super) last_commit: Duration,
    pub(super) commit_started: Option<Instant>,
}

impl<T> State<T> {
    pub(super) fn new() -> Self {
        State {
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
        }
    }

    /// Opens a new batch on `tip`.
    pub(super) fn open_batch(&mut self, base: Option<Version>, after: Option<u64>, tip: Arc<T>) {
        self.open = Some(Batch::new(self.next_id, base, after, tip));
        self.next_id += 1;
    }

    /// Remembers that batch `id` stored nothing, so that the batches built on it retry.
    pub(super) fn mark_failed(&mut self, id: u64) {
        self.failed.push(id);
        if self.failed.len() > 64 {
            self.failed.drain(..32);
        }
    }

    /// Takes `ticket`'s result once its batch settled (`None` before, `Some(None)` if it
    /// was taken already), dropping the batch's results once all are taken.
    pub(super) fn take_result(&mut self, ticket: &Ticket<T>) -> Option<Option<Slot>> {
        let slots = self.results.get_mut(&ticket.batch)?;
        let slot = slots[ticket.index].take();
        if slots.iter().all(Option::is_none) {
            self.results.remove(&ticket.batch);
        }
        Some(slot)
    }

    /// Keeps a settled batch's results for its swaps still to collect them.
    pub(super) fn keep_results(&mut self, batch: u64, mut slots: Vec<Option<Slot>>) {
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

    /// Drops `ticket`'s result now, or when its batch settles.
    pub(super) fn forget(&mut self, ticket: &Ticket<T>) {
        if self.take_result(ticket).is_none() {
            self.forgotten.push((ticket.batch, ticket.index));
        }
    }

    /// How many settled swaps' results nobody has collected yet.
    #[cfg(test)]
    pub(super) fn unclaimed_results(&self) -> usize {
        self.results
            .values()
            .map(|slots| slots.iter().filter(|s| s.is_some()).count())
            .sum()
    }
}
