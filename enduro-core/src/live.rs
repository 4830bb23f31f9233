//! Live atoms: what turns a store's [`Nudge`]s into catch-ups (refreshes) of the atom,
//! merged, off the nudging thread. Blocking atoms catch up on one follower thread per
//! process, which ends when the last live atom is gone; async atoms on their runtime.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::state::lock;
use crate::store::{Nudge, Subscription, Version};

/// What the nudges since the last catch-up asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wanted {
    /// Nothing: no catch-up is scheduled.
    Idle,
    /// A check of the store.
    Check,
    /// The store said it is at this version now (the latest such word).
    At(Version),
}

/// One live atom's merged nudges (a burst of nudges schedules one catch-up), and how
/// many catch-ups in a row failed.
#[derive(Debug)]
pub(crate) struct Pending(Mutex<Wanted>, Mutex<u32>);

/// The first wait before a failed catch-up is tried again; it doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(50);
/// The longest wait between two tries of a catch-up that keeps failing.
const MAX_RETRY: Duration = Duration::from_secs(5);

impl Pending {
    fn new() -> Arc<Self> {
        Arc::new(Pending(Mutex::new(Wanted::Idle), Mutex::new(0)))
    }

    /// Records how a catch-up ended; after a failure, returns how long to wait before
    /// trying again (doubling with each failure in a row).
    fn ended(&self, ok: bool) -> Option<Duration> {
        let mut failures = lock(&self.1);
        if ok {
            *failures = 0;
            return None;
        }
        *failures = failures.saturating_add(1);
        let doubled = FIRST_RETRY.saturating_mul(1 << (*failures - 1).min(16));
        Some(doubled.min(MAX_RETRY))
    }

    /// Records a nudge; returns whether a catch-up must be scheduled (none was).
    fn want(&self, version: Option<Version>) -> bool {
        let mut wanted = lock(&self.0);
        let first = *wanted == Wanted::Idle;
        *wanted = match (*wanted, version) {
            // A check is owed already: a version word cannot cancel it.
            (Wanted::Check, _) | (_, None) => Wanted::Check,
            (_, Some(version)) => Wanted::At(version),
        };
        first
    }

    /// For the catch-up: whether the atom, now at `current`, must refresh. Clears the
    /// record first, so a nudge that comes during the refresh schedules another.
    fn take(&self, current: Version) -> bool {
        let wanted = std::mem::replace(&mut *lock(&self.0), Wanted::Idle);
        match wanted {
            Wanted::Idle => false,
            Wanted::Check => true,
            Wanted::At(version) => version != current,
        }
    }
}

/// Makes the nudge for one live atom: it records the nudge in `pending` and, when no
/// catch-up is scheduled yet, calls `schedule`.
fn nudge(pending: Arc<Pending>, schedule: impl Fn() + Send + Sync + 'static) -> Nudge {
    Nudge::new(move |version| {
        if pending.want(version) {
            schedule();
        }
    })
}

/// A live atom's side of following, the same for both drivers: its merged nudges, and
/// (once started) what keeps its store following the resource and its own nudge, for
/// trying a failed catch-up again.
pub(crate) struct Live {
    pending: Arc<Pending>,
    following: OnceLock<(Subscription, Nudge)>,
}

impl Live {
    pub(crate) fn new() -> Self {
        Live {
            pending: Pending::new(),
            following: OnceLock::new(),
        }
    }

    /// Starts following: makes the atom's nudge (which calls `schedule` when a catch-up is
    /// due), hands it to the store through `follow`, and nudges once, which covers what
    /// was committed between the atom's load and now.
    pub(crate) fn start(
        &self,
        follow: impl FnOnce(Nudge) -> Result<Subscription>,
        schedule: impl Fn() + Send + Sync + 'static,
    ) -> Result<()> {
        let nudge = nudge(Arc::clone(&self.pending), schedule);
        let subscription = follow(nudge.clone())?;
        let _ = self.following.set((subscription, nudge.clone()));
        nudge.changed();
        Ok(())
    }

    /// For a catch-up: whether the atom, released or not and now at `current`, must
    /// refresh (see [`Pending::take`]).
    pub(crate) fn due(&self, released: bool, current: Version) -> bool {
        !released && self.pending.take(current)
    }

    /// After a catch-up: on failure (a lost connection, a file caught mid-change), nudges
    /// the atom again after a wait that doubles from [`FIRST_RETRY`] to [`MAX_RETRY`]
    /// while failures go on, so one failed catch-up never leaves a live atom behind until
    /// the next commit; the follower thread keeps the time. A released atom is done for
    /// good, and stored data that does not decode stays so until someone writes again
    /// (which nudges): nothing to try again for either.
    pub(crate) fn ended<T>(&self, resource: &str, result: &Result<T>) {
        let ok = match result {
            Ok(_) | Err(Error::Released | Error::Decode { .. }) => true,
            Err(_) => false,
        };
        let (Some(delay), Some((_, nudge))) = (self.pending.ended(ok), self.following.get()) else {
            return;
        };
        // Without a thread to wait on, the next nudge will have to do.
        if let Ok(follower) = Follower::get(resource) {
            follower.later(delay, nudge.clone());
        }
    }
}

/// A blocking atom that can catch up on the follower thread.
pub(crate) trait CatchUp: Send + Sync {
    /// Refreshes the atom if its nudges ask for it; errors are the next call's to see.
    fn catch_up(self: Arc<Self>);
}

/// The process's follower thread for blocking live atoms, as long as one of them holds it
/// (their nudges do); dropping the last handle lets the thread end.
pub(crate) struct Follower {
    queue: Arc<Queue>,
}

/// The catch-ups waiting for the follower thread. A mutex and a condition variable,
/// rather than a channel: a file-only build (a Raspberry Pi's) stays small.
struct Queue {
    jobs: Mutex<Jobs>,
    ready: Condvar,
}

#[derive(Default)]
struct Jobs {
    waiting: VecDeque<Weak<dyn CatchUp>>,
    /// Nudges to give at a later time (retries), each keeping the follower running.
    later: Vec<(Instant, Nudge, Arc<Follower>)>,
    /// No live atom is left: the thread ends.
    closed: bool,
}

/// The running follower, if any live blocking atom holds it.
static FOLLOWER: Mutex<Weak<Follower>> = Mutex::new(Weak::new());

impl Follower {
    /// The running follower thread, started if none runs. It ends when the last
    /// [`Follower`] handle (held by the live atoms' nudges) is dropped.
    pub(crate) fn get(resource: &str) -> Result<Arc<Follower>> {
        let mut slot = lock(&FOLLOWER);
        if let Some(follower) = slot.upgrade() {
            return Ok(follower);
        }
        let queue = Arc::new(Queue {
            jobs: Mutex::new(Jobs::default()),
            ready: Condvar::new(),
        });
        let serving = Arc::clone(&queue);
        std::thread::Builder::new()
            .name("enduro-follower".into())
            .spawn(move || serving.serve())
            .map_err(|e| {
                Error::backend(
                    resource,
                    format!("cannot start the thread that follows live atoms: {e}"),
                    Some(Box::new(e)),
                )
            })?;
        let follower = Arc::new(Follower { queue });
        *slot = Arc::downgrade(&follower);
        Ok(follower)
    }

    /// Queues a catch-up of `atom`.
    pub(crate) fn schedule(&self, atom: Weak<dyn CatchUp>) {
        lock(&self.queue.jobs).waiting.push_back(atom);
        self.queue.ready.notify_one();
    }

    /// Gives `nudge` in `delay`.
    fn later(self: &Arc<Self>, delay: Duration, nudge: Nudge) {
        let due = Instant::now() + delay;
        lock(&self.queue.jobs)
            .later
            .push((due, nudge, Arc::clone(self)));
        self.queue.ready.notify_one();
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        lock(&self.queue.jobs).closed = true;
        self.queue.ready.notify_one();
    }
}

/// What the follower thread does next.
enum Work {
    /// A catch-up of this atom (if it is still alive).
    CatchUp(Weak<dyn CatchUp>),
    /// A retry that is due: give the nudge, then let go of the follower it kept.
    Retry(Nudge, Arc<Follower>),
    /// No live atom is left.
    Stop,
}

impl Queue {
    /// The follower thread: runs the catch-ups and retries as they come, until no live
    /// atom is left.
    fn serve(&self) {
        loop {
            match self.next() {
                Work::CatchUp(atom) => {
                    if let Some(atom) = atom.upgrade() {
                        // A panic (in a value's Deserialize, say) fails that catch-up
                        // only; the other live atoms go on being followed.
                        let _ = catch_unwind(AssertUnwindSafe(|| atom.catch_up()));
                    }
                }
                Work::Retry(nudge, follower) => {
                    nudge.changed();
                    // Maybe the last handle: dropped with the queue's lock released.
                    drop(follower);
                }
                Work::Stop => return,
            }
        }
    }

    /// Waits for the next piece of work: a queued catch-up first, then a retry that is
    /// due; otherwise sleeps until the earliest retry or a new job.
    fn next(&self) -> Work {
        let mut jobs = lock(&self.jobs);
        loop {
            if let Some(atom) = jobs.waiting.pop_front() {
                return Work::CatchUp(atom);
            }
            let now = Instant::now();
            if let Some(at) = jobs.later.iter().position(|(due, ..)| *due <= now) {
                let (_, nudge, follower) = jobs.later.swap_remove(at);
                return Work::Retry(nudge, follower);
            }
            // A retry keeps the follower alive, so a closed queue has none left.
            if jobs.closed {
                return Work::Stop;
            }
            jobs = match jobs.later.iter().map(|(due, ..)| *due).min() {
                Some(due) => {
                    let wait = due.saturating_duration_since(now);
                    self.ready
                        .wait_timeout(jobs, wait)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
                None => self.ready.wait(jobs).unwrap_or_else(|e| e.into_inner()),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nudges_merge_until_the_catch_up_takes_them() {
        let pending = Pending::new();
        let at = Version::new(4, 9);
        assert!(pending.want(Some(at)));
        assert!(!pending.want(Some(at)));
        // Already at the version the store named: nothing to do.
        assert!(!pending.take(at));
        assert!(pending.want(Some(at)));
        assert!(!pending.want(None));
        assert!(
            !pending.want(Some(at)),
            "a version word cannot cancel a check"
        );
        assert!(pending.take(at));
        assert!(!pending.take(at), "taken: nothing is owed");
        assert!(pending.want(Some(Version::new(5, 9))));
        assert!(pending.take(at));
    }
}
