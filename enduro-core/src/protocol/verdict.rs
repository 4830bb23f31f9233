//! What a batch's store calls mean for its swaps: done, run again, or fail.

use crate::error::Error;
use crate::state::Core;
use crate::store::Observed;
use crate::value::Value;

use super::batch::{Batch, Slot};
use super::calls::{After, Stored};

/// How a settled batch ended, for all its swaps.
pub(super) enum Verdict {
    Done,
    /// Every swap runs again (encoding its value before it joins if `true`).
    Retry(bool),
    Fail(Error),
}

impl Verdict {
    /// Judges what came of `batch`'s store calls, bringing the atom up to date with the
    /// store on the way: publishes the batch's values if they were stored, adopts another
    /// writer's value, or marks the atom released.
    pub(super) fn of<T: Value>(core: &Core<T>, batch: &Batch<T>, stored: Stored) -> Verdict {
        let retry = Verdict::Retry(batch.pre_encode);
        match stored {
            Stored::Nothing | Stored::Observed(Observed::Unchanged) => Verdict::Done,
            Stored::Committed(version) => {
                core.publish_all(batch.entries.iter().flatten(), version);
                Verdict::Done
            }
            // A live atom's catch-up met a rewrite in place half-way: the nudge at its end
            // brings the atom up to date.
            Stored::Observed(Observed::Changed(snapshot))
                if batch.tolerates_blank() && core.is_blank(&snapshot.bytes) =>
            {
                Verdict::Done
            }
            // Another writer's value: the swaps decided on an old one, so they decide again.
            Stored::Observed(Observed::Changed(snapshot)) => match core.adopt(snapshot) {
                Ok(_) => retry,
                Err(e) => Verdict::Fail(e),
            },
            Stored::Observed(Observed::Replay(replay)) | Stored::Conflict(Some(replay)) => {
                match core.adopt_replay(replay) {
                    Ok(_) => retry,
                    Err(e) => Verdict::Fail(e),
                }
            }
            Stored::Observed(Observed::Steps(steps)) => match core.adopt_steps(steps) {
                Ok(_) => retry,
                Err(e) => Verdict::Fail(e),
            },
            Stored::Observed(Observed::Missing) | Stored::Conflict(None) => {
                Verdict::Fail(core.mark_released())
            }
            Stored::Abandoned => retry,
            // The store says the value the batch built on was released (and maybe made
            // again since): this atom's resource is gone, for every clone.
            Stored::Failed(Error::Released) => Verdict::Fail(core.mark_released()),
            // One of the values does not encode: each swap retries, encoding its own first.
            Stored::Failed(Error::Encode { .. }) if batch.entries.len() > 1 => Verdict::Retry(true),
            Stored::Failed(error) => Verdict::Fail(error),
            // The batch's value may be in the store: never run its swaps again (that could
            // apply them twice). Show what the store holds, and say so.
            Stored::Uncertain(error, found) => {
                match found {
                    After::Holds(replay) if replay.version() != core.current().1 => {
                        // Data that does not decode stays in the store for the next swap
                        // to report; this swap reports the unknown outcome.
                        let _ = core.adopt_replay(replay);
                    }
                    After::Gone => {
                        core.mark_released();
                    }
                    After::Holds(_) | After::Unread => {}
                }
                Verdict::Fail(error)
            }
        }
    }

    /// Each swap's slot, for a batch of `count` swaps: the leader (the batch's first
    /// swap) gets a failure itself, the others its echo.
    pub(super) fn slots(self, count: usize) -> Vec<Option<Slot>> {
        match self {
            Verdict::Done => (0..count).map(|_| Some(Slot::Done)).collect(),
            Verdict::Retry(pre_encode) => (0..count)
                .map(|_| Some(Slot::Retry { pre_encode }))
                .collect(),
            Verdict::Fail(error) => {
                let mut slots: Vec<Option<Slot>> = Vec::with_capacity(count);
                slots.extend((1..count).map(|_| Some(Slot::Failed(error.echo()))));
                slots.insert(0, Some(Slot::Failed(error)));
                slots
            }
        }
    }
}
