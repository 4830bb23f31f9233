//! The transaction protocol both drivers run, as plain state machines with no I/O of
//! their own: they take what the store answered and say what to do next.
//!
//! Swaps of one atom in one process form batches (group commit). Each swap runs its own
//! `f`, on its own thread, on top of the batch's latest (not yet durable) value, and
//! appends the result. The first swap of a batch leads it: it waits until the previous
//! batch is settled, then commits only the batch's last value, in one store commit — one
//! flush, or one UPDATE, acknowledges the whole batch. Then every transition is published
//! in order, and every swap of the batch returns. While a batch commits, the next one
//! fills up.
//!
//! Nothing is published before it is durable: pending values live only in the batches. If
//! a batch fails, each of its swaps fails (and the batch built on top of it retries); if it
//! conflicts with another process, its swaps run `f` again on the reloaded value. A value
//! that cannot be encoded fails only its own swap: the others retry, encoding each value
//! as they apply it. A batch whose commit may or may not have been stored is never run
//! again: its swaps fail with [`Error::Uncertain`](crate::Error::Uncertain), after the
//! atom took what the store holds.
//!
//! One swap at a time runs its `f` (and the validator) on the open batch's tip, with no
//! lock held: the others wait their turn, so a slow `f` delays only the swaps behind it,
//! never a batch that is settling.
//!
//! The pieces, one concern each:
//! - [`txn`]: one transaction's machine ([`Txn`]), which the drivers loop over;
//! - [`group`]: the state every swap of the atom shares, one method per protocol step;
//! - [`batch`]: what a batch holds and the results kept for its swaps;
//! - [`calls`]: a leader's store calls (commit, and the load after a conflict or an
//!   unknown outcome);
//! - [`verdict`]: what the store's answer means for the batch's swaps.

pub(crate) mod batch;
pub(crate) mod calls;
pub(crate) mod group;
pub(crate) mod txn;
mod verdict;

#[cfg(test)]
mod tests;

pub(crate) use calls::call_blocking;
#[cfg(feature = "async")]
pub(crate) use calls::{After, Answer, Call, Next, StoreCalls, Stored};
pub(crate) use group::Group;
pub(crate) use txn::{Exclusive, Input, Mode, Purpose, Step, Txn};
