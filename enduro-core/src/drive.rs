//! The retry loop both drivers run, and the guards that end a step the driver does not
//! finish (a panic, or an async caller that goes away).

use crate::calls::{After, Stored};
use crate::error::Error;
use crate::group::{Group, Ticket};
use crate::state::Core;
use crate::value::Value;

/// Undoes a step if the driver does not finish it: a panic in store or user code, or an
/// async driver dropped while awaiting. Disarmed by [`Guard::done`].
pub(crate) struct Guard<'a, T: Value> {
    group: &'a Group<T>,
    core: &'a Core<T>,
    step: Step<'a, T>,
}

enum Step<'a, T> {
    /// Checking the store before a batch: let the next swap check instead.
    Check,
    /// Waiting to lead a batch (nothing sent yet): its swaps run again.
    Lead(&'a Ticket<T>),
    /// A blocking leader's store calls: the commit may have happened, so the batch fails
    /// as uncertain (nothing is run again).
    Committing(u64),
    /// Waiting for the batch's result: drop it when it comes.
    Follow(&'a Ticket<T>),
    /// Releasing: let the others in again.
    Exclusive,
    Done,
}

impl<'a, T: Value> Guard<'a, T> {
    fn new(group: &'a Group<T>, core: &'a Core<T>, step: Step<'a, T>) -> Self {
        Guard { group, core, step }
    }
    pub(crate) fn check(group: &'a Group<T>, core: &'a Core<T>) -> Self {
        Self::new(group, core, Step::Check)
    }
    pub(crate) fn lead(group: &'a Group<T>, core: &'a Core<T>, ticket: &'a Ticket<T>) -> Self {
        Self::new(group, core, Step::Lead(ticket))
    }
    pub(crate) fn committing(group: &'a Group<T>, core: &'a Core<T>, batch: u64) -> Self {
        Self::new(group, core, Step::Committing(batch))
    }
    pub(crate) fn follow(group: &'a Group<T>, core: &'a Core<T>, ticket: &'a Ticket<T>) -> Self {
        Self::new(group, core, Step::Follow(ticket))
    }
    pub(crate) fn exclusive(group: &'a Group<T>, core: &'a Core<T>) -> Self {
        Self::new(group, core, Step::Exclusive)
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
            Step::Committing(batch) => {
                let unknown = Error::Uncertain {
                    resource: self.core.resource().to_owned(),
                    message: "the store panicked in the middle of the commit".into(),
                    source: None,
                };
                // Loading now could panic again, inside a panic: the next swap's version
                // check finds out what was stored.
                self.group
                    .settle(self.core, batch, Stored::Uncertain(unknown, After::Unread));
            }
            Step::Follow(ticket) => self.group.forget(ticket),
            Step::Exclusive => self.group.end_exclusive(),
            Step::Done => {}
        }
    }
}

/// The retry loop both drivers run, written once. The driver supplies its own waiting,
/// its check of the store, and how its leader runs a batch's store calls (`run`: the
/// blocking driver makes them in place and settles; the async driver hands them to a
/// commit future that survives its caller) — blocking, or with `.await`. Everything else
/// (joining, leading, gathering, retrying, guarding against panics and dropped futures,
/// delivering to the watches) is here.
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
        run($ticket:ident, $plan:ident) => $run:expr $(,)?
    ) => {{
        use $crate::drive::Guard;
        use $crate::group::{Entered, Plan, Slot};
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
                Ok(Entered::Again) => continue,
                Ok(Entered::Joined(ticket)) => ticket,
            };
            if ticket.leader {
                let guard = Guard::lead(group, core, &ticket);
                let plan = loop {
                    match group.lead(core, &ticket, $gather) {
                        Plan::Wait($seen) => $wait,
                        Plan::Gather { until, size } => group.gather(&ticket, until, size),
                        plan => break plan,
                    }
                };
                let ($ticket, $plan) = (&ticket, plan);
                $run;
                guard.done();
            }
            let guard = Guard::follow(group, core, &ticket);
            let slot = loop {
                match group.result(&ticket) {
                    Ok(slot) => break slot,
                    Err($seen) => $wait,
                }
            };
            guard.done();
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
