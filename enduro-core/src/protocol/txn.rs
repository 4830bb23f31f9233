//! One transaction (a swap, reset, compare-and-set or refresh) as a state machine: the
//! driver feeds it what the store answered and it says what to do next.
//!
//! ```text
//! driver                     Txn::next                     Group (shared)
//!   Input::Go          ->  enter: join or open a batch  ->  runs `decide` on the tip
//!   <- Step::Check(v)      (the store must be asked first)
//!   Input::Checked(..) ->  checked: adopt / released    ->  enter again
//!   <- Step::Wait(g)       (a batch ahead is settling)
//!   <- Step::Gather{..}    (a leader waits for its peers)
//!   <- Step::Call(..)      (a leader's store call)
//!   Input::Answered(..)->  the next call, or settle the batch
//!   <- Step::Done(r)       (the swap's result; watches already ran)
//! ```
//!
//! Dropping a `Txn` before it is done (a panic in store code, an async caller that goes
//! away) ends its part cleanly: a check under way lets the next swap check instead, a
//! batch not yet sent is handed back (its swaps run again), a batch whose store call was
//! under way settles as uncertain (never run again), and a result still to come is
//! dropped when it arrives.

use std::sync::Arc;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::state::{Core, Outcome};
use crate::store::{Observed, Version};
use crate::value::Value;

use super::batch::{Slot, Ticket};
use super::calls::{After, Answer, Call, Next, StoreCalls, Stored};
use super::group::{Entered, Group, Lead};

/// What the driver must do next.
pub(crate) enum Step<T> {
    /// Ask the store whether it is still at this version; answer with
    /// [`Input::Checked`].
    Check(Version),
    /// Make this store call for the batch this swap leads; answer with
    /// [`Input::Answered`] (or, async, [`Txn::detach`] the calls).
    Call(Call<Arc<T>>),
    /// Wait until the group's generation moves past this one; then [`Input::Go`].
    Wait(u64),
    /// Wait until batch `batch` holds `size` swaps or `until` passes ([`Group::gather`]);
    /// then [`Input::Go`].
    Gather {
        batch: u64,
        until: Instant,
        size: usize,
    },
    /// The transaction ended; the watches have seen its transition.
    Done(Result<Outcome<T>>),
}

/// What the driver brings back.
pub(crate) enum Input {
    /// Start, or go on after a wait.
    Go,
    /// The store's answer to [`Step::Check`].
    Checked(Result<Observed>),
    /// The store's answer to [`Step::Call`].
    Answered(Answer),
}

/// What a driver runs a transaction for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// A change (swap, reset, compare-and-set).
    Change,
    /// A refresh someone asked for.
    Refresh,
    /// A live atom catching up after its store's nudge.
    CatchUp,
}

/// How a transaction runs.
#[derive(Clone, Copy)]
pub(crate) struct Mode {
    /// Check the store before a batch that builds on durable state
    /// ([`Store::cheap_check`](crate::Store::cheap_check)).
    pub(crate) check_first: bool,
    /// A refresh: the store is always asked.
    pub(crate) refresh: bool,
    /// A live atom's catch-up: a value that looks blank is taken for a rewrite in place
    /// caught half-way (a truncated file), not for a release; the nudge at its end brings
    /// the atom up to date.
    pub(crate) following: bool,
    /// A leader whose batch is smaller than the last one waits a little for its peers.
    pub(crate) gather: bool,
}

impl Mode {
    /// How a driver runs a transaction for `purpose`: `check_first` as its store says
    /// ([`Store::cheap_check`](crate::Store::cheap_check)), `gather` as the driver can.
    pub(crate) fn new(purpose: Purpose, check_first: bool, gather: bool) -> Self {
        Mode {
            check_first,
            refresh: purpose != Purpose::Change,
            following: purpose == Purpose::CatchUp,
            gather,
        }
    }
}

/// Where a transaction is.
enum At<T> {
    /// About to join a batch (again).
    Entering,
    /// Everyone else is kept out while the driver asks the store.
    Checking,
    /// Leading a batch, not yet closed: nothing sent to the store.
    Leading(Ticket<T>),
    /// Leading a batch whose store calls are under way.
    Committing(Ticket<T>, StoreCalls),
    /// Waiting for the batch's result.
    Following(Ticket<T>),
    Finished,
}

/// One transaction of one atom; `D` decides the swap's new value (see
/// [`Decide`](super::group::Decide)).
pub(crate) struct Txn<'a, T: Value, D: FnMut(&T) -> Option<Arc<T>>> {
    group: &'a Group<T>,
    core: &'a Core<T>,
    mode: Mode,
    decide: D,
    /// The last batch failed on a value that does not encode: encode before joining.
    pre_encode: bool,
    /// The change is this op (encoded), for a store that keeps ops.
    op: Option<Arc<[u8]>>,
    at: At<T>,
}

impl<'a, T: Value, D: FnMut(&T) -> Option<Arc<T>>> Txn<'a, T, D> {
    pub(crate) fn new(group: &'a Group<T>, core: &'a Core<T>, mode: Mode, decide: D) -> Self {
        Txn {
            group,
            core,
            mode,
            decide,
            pre_encode: false,
            op: None,
            at: At::Entering,
        }
    }

    /// The change `decide` makes is the op `op` (encoded), which a store that keeps ops
    /// stores instead of the value.
    pub(crate) fn with_op(mut self, op: Option<Arc<[u8]>>) -> Self {
        self.op = op;
        self
    }

    /// Takes `input` (what the last step asked for) and runs the protocol up to the next
    /// step that needs the driver. User code (`decide`, the validator, `Serialize`) runs
    /// in here, with no lock held; a panic in it reaches the caller and leaves the atom
    /// unchanged.
    pub(crate) fn next(&mut self, input: Input) -> Step<T> {
        // Taken out while the protocol runs: if user code panics in `enter`, there is
        // nothing of this transaction to undo. Put back once, when the driver takes over.
        let at = std::mem::replace(&mut self.at, At::Finished);
        let (at, step) = self.run(at, input);
        self.at = at;
        step
    }

    /// The protocol, from `at` up to the next step for the driver, and where that leaves
    /// the transaction.
    fn run(&mut self, mut at: At<T>, input: Input) -> (At<T>, Step<T>) {
        let (group, core) = (self.group, self.core);
        // The driver's input is for the first step only.
        let mut input = Some(input);
        loop {
            at = match at {
                At::Entering => {
                    let entered = group.enter(
                        core,
                        self.mode,
                        self.pre_encode,
                        &mut self.decide,
                        self.op.as_ref(),
                    );
                    match entered {
                        Err(e) => return self.finish(Err(e)),
                        Ok(Entered::Check(known)) => return (At::Checking, Step::Check(known)),
                        Ok(Entered::Wait(seen)) => return (At::Entering, Step::Wait(seen)),
                        Ok(Entered::Again) => At::Entering,
                        Ok(Entered::Joined(ticket)) if ticket.leader => At::Leading(ticket),
                        Ok(Entered::Joined(ticket)) => At::Following(ticket),
                    }
                }
                At::Checking => match input.take() {
                    Some(Input::Checked(observed)) => {
                        match group.checked(core, observed, self.mode.following) {
                            Ok(()) => At::Entering,
                            Err(e) => return self.finish(Err(e)),
                        }
                    }
                    _ => {
                        // A driver that cannot answer: as if the check was interrupted.
                        let _ = group.checked(core, Err(interrupted(core, "check")), false);
                        return self.finish(Err(interrupted(core, "check")));
                    }
                },
                At::Leading(ticket) => match group.lead(core, &ticket, self.mode.gather) {
                    Lead::Wait(seen) => return (At::Leading(ticket), Step::Wait(seen)),
                    Lead::Gather { until, size } => {
                        let batch = ticket.batch_id();
                        return (At::Leading(ticket), Step::Gather { batch, until, size });
                    }
                    Lead::Go(plan) => match StoreCalls::start(core, plan) {
                        (_, Next::Stored(stored)) => {
                            group.settle(core, ticket.batch_id(), stored);
                            At::Following(ticket)
                        }
                        (calls, Next::Call(call)) => {
                            return (At::Committing(ticket, calls), Step::Call(call));
                        }
                    },
                },
                At::Committing(ticket, mut calls) => {
                    let stored = match input.take() {
                        Some(Input::Answered(answer)) => match calls.answer(answer) {
                            Next::Call(call) => {
                                return (At::Committing(ticket, calls), Step::Call(call));
                            }
                            Next::Stored(stored) => stored,
                        },
                        _ => uncertain(core, "the store call was not answered"),
                    };
                    group.settle(core, ticket.batch_id(), stored);
                    At::Following(ticket)
                }
                At::Following(ticket) => match group.result(&ticket) {
                    Err(seen) => return (At::Following(ticket), Step::Wait(seen)),
                    Ok(Slot::Done) => return self.finish(Ok(ticket.outcome())),
                    Ok(Slot::Retry { pre_encode }) => {
                        self.pre_encode = pre_encode;
                        At::Entering
                    }
                    Ok(Slot::Failed(e)) => return self.finish(Err(e)),
                },
                At::Finished => return self.finish(Err(interrupted(core, "swap"))),
            };
            input = None;
        }
    }

    /// For an async leader: takes the store calls under way (after [`Step::Call`]), to
    /// be driven by a commit that outlives this transaction, which now waits for the
    /// batch's result. `None` when no store call is under way.
    #[cfg(feature = "async")]
    pub(crate) fn detach(&mut self) -> Option<(u64, StoreCalls)> {
        match std::mem::replace(&mut self.at, At::Finished) {
            At::Committing(ticket, calls) => {
                let batch = ticket.batch_id();
                self.at = At::Following(ticket);
                Some((batch, calls))
            }
            at => {
                self.at = at;
                None
            }
        }
    }

    /// Ends the transaction: shows the watches what was committed (by this swap or any
    /// other), outside every lock, then hands the result over.
    fn finish(&self, result: Result<Outcome<T>>) -> (At<T>, Step<T>) {
        self.core.deliver();
        (At::Finished, Step::Done(result))
    }
}

impl<T: Value, D: FnMut(&T) -> Option<Arc<T>>> Drop for Txn<'_, T, D> {
    fn drop(&mut self) {
        let (group, core) = (self.group, self.core);
        match std::mem::replace(&mut self.at, At::Finished) {
            At::Entering | At::Finished => {}
            // Let the next swap check instead.
            At::Checking => {
                let _ = group.checked(core, Err(interrupted(core, "check before a swap")), false);
            }
            // Nothing was sent: the batch's other swaps run again.
            At::Leading(ticket) => group.abandon(&ticket),
            // The commit may have happened: the batch fails as uncertain (nothing runs
            // again). Loading now could panic again, inside a panic: the next swap's
            // version check finds out what was stored.
            At::Committing(ticket, _) => group.settle(
                core,
                ticket.batch_id(),
                uncertain(core, "the store panicked in the middle of the commit"),
            ),
            // Nobody will collect the result: drop it when it comes.
            At::Following(ticket) => group.forget(&ticket),
        }
    }
}

fn interrupted<T: Value>(core: &Core<T>, what: &str) -> Error {
    Error::Backend {
        resource: core.resource().to_owned(),
        message: format!("the {what} was interrupted"),
        source: None,
    }
}

fn uncertain<T: Value>(core: &Core<T>, why: &str) -> Stored {
    let error = Error::Uncertain {
        resource: core.resource().to_owned(),
        message: why.to_owned(),
        source: None,
    };
    Stored::Uncertain(error, After::Unread)
}

/// Keeps every other transaction out while a release runs; lets them in again when
/// dropped.
pub(crate) struct Exclusive<'a, T: Value>(&'a Group<T>);

impl<'a, T: Value> Exclusive<'a, T> {
    /// Takes the group once no batch is open or committing; `Err`: wait for that
    /// generation to pass, then try again.
    pub(crate) fn try_take(group: &'a Group<T>) -> std::result::Result<Self, u64> {
        group.exclusive().map(|()| Exclusive(group))
    }
}

impl<T: Value> Drop for Exclusive<'_, T> {
    fn drop(&mut self) {
        self.0.end_exclusive();
    }
}
