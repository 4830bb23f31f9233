//! The store calls a batch's leader makes, as a small machine without I/O: it says which
//! call to make next, takes the store's answer, and ends with what was stored.
//!
//! The blocking driver makes each call in place ([`call_blocking`]); the async driver makes
//! them inside a commit future that outlives a caller who goes away (see `async_atom`), so
//! a commit that may have reached the store is always seen through to its answer.
//!
//! A commit whose outcome is unknown ([`Error::Uncertain`]: an answer lost, an fsync that
//! failed after the rename) is followed by a load, so that the batch settles from what the
//! store actually holds instead of guessing.

use std::io;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::state::Core;
use crate::store::{Committed, Observed, Replay, Store, Version};
use crate::value::Value;

/// The store calls a closed batch needs.
pub(crate) enum Plan<T> {
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
        /// When every change of the batch is an op: the encoded ops, in order.
        ops: Option<Vec<Arc<[u8]>>>,
    },
    /// The batch was built on one that failed: all of it retries, nothing is stored.
    Abandon,
}

/// The next store call. `V` is the value a commit stores: the value itself for a blocking
/// store, which encodes it as it writes, or its bytes for an async one.
pub(crate) enum Call<V> {
    /// Is the resource still at this version?
    Check(Version),
    /// Store `value` over `expected`.
    Commit {
        expected: Version,
        value: V,
        ops: Option<Vec<Arc<[u8]>>>,
    },
    /// What does the resource hold now?
    Load,
}

impl<V> Call<V> {
    /// The same call with its value turned into another form.
    #[cfg(feature = "async")]
    pub(crate) fn map_value<W>(self, f: impl FnOnce(V) -> W) -> Call<W> {
        match self {
            Call::Check(known) => Call::Check(known),
            Call::Commit {
                expected,
                value,
                ops,
            } => Call::Commit {
                expected,
                value: f(value),
                ops,
            },
            Call::Load => Call::Load,
        }
    }
}

impl<T> Call<Arc<T>> {
    /// The same call with the value to commit encoded by `encode`.
    #[cfg(feature = "async")]
    pub(crate) fn encoded(
        self,
        encode: impl FnOnce(&T) -> Result<Vec<u8>>,
    ) -> Result<Call<Vec<u8>>> {
        Ok(match self {
            Call::Check(known) => Call::Check(known),
            Call::Commit {
                expected,
                value,
                ops,
            } => Call::Commit {
                expected,
                value: encode(&value)?,
                ops,
            },
            Call::Load => Call::Load,
        })
    }
}

/// What the store answered to a [`Call`].
pub(crate) enum Answer {
    Checked(Result<Observed>),
    Committed(Result<Committed>),
    Loaded(Result<Option<Replay>>),
}

/// What to do next: a call, or the end.
pub(crate) enum Next<V> {
    Call(Call<V>),
    Stored(Stored),
}

/// What came of a batch's store calls.
pub(crate) enum Stored {
    /// The plan needed no store call.
    Nothing,
    Committed(Version),
    /// Someone else committed first; here is what the store holds now (`None`: gone).
    Conflict(Option<Replay>),
    /// What a check found.
    Observed(Observed),
    /// Nothing was stored.
    Failed(Error),
    /// The outcome is unknown; here is what the store held right after.
    Uncertain(Error, After),
    /// The batch was abandoned: it built on a batch that failed.
    Abandoned,
}

/// What the store held right after a commit whose outcome is unknown.
pub(crate) enum After {
    Holds(Replay),
    /// The resource is gone.
    Gone,
    /// It could not be read.
    Unread,
}

/// The machine: what a load is for, once one is asked.
pub(crate) struct StoreCalls {
    after_load: AfterLoad,
}

enum AfterLoad {
    Conflict,
    Uncertain(Box<Error>),
}

impl StoreCalls {
    /// The first step of `plan`. Before a commit, the batch's earlier values are encoded
    /// (into nothing): the commit stores only the last value, but each swap's value must
    /// be one the store could hold, batched or not. This costs nothing when swaps do not
    /// overlap.
    pub(crate) fn start<T: Value>(core: &Core<T>, plan: Plan<T>) -> (Self, Next<Arc<T>>) {
        let machine = StoreCalls {
            after_load: AfterLoad::Conflict,
        };
        let next = match plan {
            Plan::Nothing => Next::Stored(Stored::Nothing),
            Plan::Abandon => Next::Stored(Stored::Abandoned),
            Plan::Check(known) => Next::Call(Call::Check(known)),
            // Ops were checked to read back when they were made, and the values they make
            // are not stored: no value is encoded for them here.
            Plan::Commit {
                expected,
                value,
                earlier,
                ops,
            } => match earlier
                .iter()
                .filter(|_| ops.is_none())
                .try_for_each(|value| core.encode(value, &mut io::sink()))
            {
                Err(e) => Next::Stored(Stored::Failed(e)),
                Ok(()) => Next::Call(Call::Commit {
                    expected,
                    value,
                    ops,
                }),
            },
        };
        (machine, next)
    }

    /// Takes the store's answer to the last call; says what to do next (never a commit:
    /// only the first call is one).
    pub(crate) fn answer<V>(&mut self, answer: Answer) -> Next<V> {
        let stored = match answer {
            Answer::Checked(Ok(observed)) => Stored::Observed(observed),
            Answer::Checked(Err(e)) => Stored::Failed(e),
            Answer::Committed(Ok(Committed::Done(version))) => Stored::Committed(version),
            Answer::Committed(Ok(Committed::Conflict)) => {
                self.after_load = AfterLoad::Conflict;
                return Next::Call(Call::Load);
            }
            Answer::Committed(Err(e)) if e.may_have_been_stored() => {
                self.after_load = AfterLoad::Uncertain(Box::new(e));
                return Next::Call(Call::Load);
            }
            Answer::Committed(Err(e)) => Stored::Failed(e),
            Answer::Loaded(found) => {
                match std::mem::replace(&mut self.after_load, AfterLoad::Conflict) {
                    AfterLoad::Conflict => match found {
                        Ok(snapshot) => Stored::Conflict(snapshot),
                        Err(e) => Stored::Failed(e),
                    },
                    AfterLoad::Uncertain(e) => Stored::Uncertain(
                        *e,
                        match found {
                            Ok(Some(snapshot)) => After::Holds(snapshot),
                            Ok(None) => After::Gone,
                            Err(_) => After::Unread,
                        },
                    ),
                }
            }
        };
        Next::Stored(stored)
    }
}

/// Makes one store call on a blocking store.
pub(crate) fn call_blocking<T: Value>(
    core: &Core<T>,
    store: &dyn Store,
    call: Call<Arc<T>>,
) -> Answer {
    match call {
        Call::Check(known) => Answer::Checked(store.check(known)),
        Call::Commit {
            expected,
            value,
            ops: None,
        } => {
            Answer::Committed(store.commit(expected, &mut |out| core.encode_committed(&value, out)))
        }
        Call::Commit {
            expected,
            value,
            ops: Some(ops),
        } => {
            core.forget_committing();
            let ops: Vec<&[u8]> = ops.iter().map(|op| &op[..]).collect();
            Answer::Committed(store.commit_ops(expected, &ops, &mut |out| {
                core.encode_committed(&value, out)
            }))
        }
        Call::Load => Answer::Loaded(store.load_replay()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lost() -> Error {
        Error::Uncertain {
            resource: "r".into(),
            message: "answer lost".into(),
            source: None,
        }
    }

    #[test]
    fn a_conflict_loads_then_ends() {
        let mut machine = StoreCalls {
            after_load: AfterLoad::Conflict,
        };
        let next: Next<u8> = machine.answer(Answer::Committed(Ok(Committed::Conflict)));
        assert!(matches!(next, Next::Call(Call::Load)));
        let next: Next<u8> = machine.answer(Answer::Loaded(Ok(None)));
        assert!(matches!(next, Next::Stored(Stored::Conflict(None))));
    }

    #[test]
    fn an_uncertain_commit_loads_and_keeps_its_error() {
        let mut machine = StoreCalls {
            after_load: AfterLoad::Conflict,
        };
        let next: Next<u8> = machine.answer(Answer::Committed(Err(lost())));
        assert!(matches!(next, Next::Call(Call::Load)));
        let found = Replay::from(crate::store::Snapshot {
            bytes: b"1".to_vec(),
            version: Version::new(2, 0),
        });
        let next: Next<u8> = machine.answer(Answer::Loaded(Ok(Some(found))));
        assert!(matches!(
            next,
            Next::Stored(Stored::Uncertain(Error::Uncertain { .. }, After::Holds(_)))
        ));
    }

    #[test]
    fn a_definite_failure_ends_at_once() {
        let mut machine = StoreCalls {
            after_load: AfterLoad::Conflict,
        };
        let next: Next<u8> = machine.answer(Answer::Committed(Err(Error::Released)));
        assert!(matches!(
            next,
            Next::Stored(Stored::Failed(Error::Released))
        ));
    }
}
