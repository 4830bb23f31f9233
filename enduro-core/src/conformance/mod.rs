//! The conformance kit: the promises every enduro backend must keep, as generic test cases
//! that any backend — in this repository or not — runs against itself.
//!
//! Enable it as a dev-dependency feature (`conformance`, which also turns on `testing`):
//!
//! ```toml
//! [dev-dependencies]
//! enduro-core = { version = "0.1", features = ["conformance"] }          # blocking suite
//! # enduro-core = { version = "0.1", features = ["conformance", "async"] }  # and the async one
//! ```
//!
//! # How to run the kit against your backend
//!
//! Implement [`Backend`] ("give me a fresh resource, and stores on it, as another process
//! would open them") in your crate's `tests/`, and instantiate every case as a `#[test]`
//! with one macro call. For an async store, implement [`AsyncBackend`] and call
//! [`async_conformance!`](crate::async_conformance); a blocking store can run the async
//! suite too, through [`InlineBackend`] (feature `async`).
//!
//! ```
//! // tests/conformance.rs of a backend crate
//! use std::sync::Arc;
//!
//! use enduro::conformance::Backend;
//! use enduro::Result;
//! use enduro::store::Store;
//!
//! /// Each resource is one shared memory cell.
//! #[derive(Debug)]
//! struct MemBackend;
//!
//! impl Backend for MemBackend {
//!     type Resource = Arc<enduro::MemStore>;
//!     fn fresh(&self) -> Self::Resource {
//!         Arc::new(enduro::MemStore::new())
//!     }
//!     fn store(&self, resource: &Self::Resource) -> Result<Box<dyn Store>> {
//!         Ok(Box::new(Arc::clone(resource)))
//!     }
//! }
//!
//! // In a test file, this line is all it takes (each case becomes a `#[test]`):
//! // enduro::conformance!(MemBackend);
//! // A case can also be run by hand:
//! enduro::conformance::blocking::swap_and_friends_return_what_they_should(&MemBackend);
//! ```
//!
//! A known failure of a backend can be listed, with the reason in a comment, instead of
//! being left out: it then runs and must still fail, so that the list is emptied as soon as
//! the backend is fixed:
//!
//! ```text
//! enduro::conformance!(MyBackend::new(), known_failures: [some_case_name]);
//! ```
//!
//! The cases are in [`blocking`] and (feature `async`) [`nonblocking`]; each states the
//! promise it checks, and each fails when that promise is broken. The live cases
//! (`*live_atom*`) need [`Store::follow`]: a backend that cannot
//! follow its resource lists them as known failures.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

pub mod blocking;
#[cfg(feature = "async")]
pub mod nonblocking;

#[cfg(feature = "async")]
pub use nonblocking::{AsyncBackend, Gate, GatedStore, InlineBackend, OffThreadBackend};

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{Atom, Committed, Error, Options, Result, Store, Value, Version};

/// The value of the ops cases (see [`Apply`](crate::Apply)): a running total, and the
/// last note.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tally {
    /// The sum of every [`TallyOp::Add`].
    pub total: u64,
    /// The last [`TallyOp::Note`].
    pub note: Option<String>,
    /// Every [`TallyOp::Log`], in order.
    pub log: Vec<u32>,
}

/// The ops of [`Tally`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum TallyOp {
    /// Adds to the total.
    Add(u64),
    /// Keeps a note.
    Note(String),
    /// Appends an id to the log.
    Log(u32),
    /// Scales the total (a float: `NaN` does not survive JSON, so such an op is refused).
    Scale(f64),
    /// Panics when applied.
    Panic,
}

impl crate::Apply for Tally {
    type Op = TallyOp;
    fn apply(&mut self, op: &TallyOp) {
        match op {
            TallyOp::Add(n) => self.total += n,
            TallyOp::Note(note) => self.note = Some(note.clone()),
            TallyOp::Log(id) => self.log.push(*id),
            TallyOp::Scale(by) => self.total = (self.total as f64 * by) as u64,
            TallyOp::Panic => panic!("this op panics on purpose"),
        }
    }
}

/// What the blocking suite needs from a backend.
pub trait Backend: Send + Sync + 'static {
    /// Names one resource (a file path, a table and key, a memory cell).
    type Resource: Clone + Send + Sync + 'static;

    /// A new resource that holds nothing yet.
    fn fresh(&self) -> Self::Resource;

    /// A new, independent store on `resource`, as another process would open it.
    fn store(&self, resource: &Self::Resource) -> Result<Box<dyn Store>>;

    /// The stored bytes, read around enduro where the backend allows; `None` when the
    /// resource does not exist.
    fn stored(&self, resource: &Self::Resource) -> Option<Vec<u8>> {
        self.store(resource)
            .unwrap()
            .load()
            .unwrap()
            .map(|s| s.bytes)
    }

    /// Puts `bytes` in the resource around enduro's encoding (to plant bad data).
    fn plant(&self, resource: &Self::Resource, bytes: &[u8]) {
        let store = self.store(resource).unwrap();
        let version = store.load().unwrap().map_or(Version::ABSENT, |s| s.version);
        let name = store.resource();
        let done = store
            .commit(version, &mut |out| {
                out.write_all(bytes).map_err(|e| {
                    Error::backend(name.clone(), "cannot plant bad data", Some(Box::new(e)))
                })
            })
            .unwrap();
        assert!(matches!(done, Committed::Done(_)));
    }

    /// The options a case asks for, as this backend opens atoms with them: the default
    /// leaves them as they are; [`WithCodec`] sets its codec. Every case opens its atoms
    /// through this.
    fn options<T: Value>(&self, options: Options<T>) -> Options<T> {
        options
    }

    /// Opens an atom on `resource` with `options` (through [`Backend::options`]).
    fn open_with<T: Value>(
        &self,
        resource: &Self::Resource,
        init: T,
        options: Options<T>,
    ) -> Result<Atom<T>> {
        Atom::open(self.store(resource)?, init, self.options(options))
    }

    /// Opens an atom on `resource`, panicking on error.
    fn open<T: Value>(&self, resource: &Self::Resource, init: T) -> Atom<T> {
        self.open_with(resource, init, Options::new()).unwrap()
    }
}

/// Runs a backend's cases with another codec: every atom the cases open gets `codec`
/// (whatever other options the case sets), and the cases read the stored bytes with it.
/// The cases that check what JSON in particular refuses or how it nests list as known
/// failures where the codec stores what JSON cannot.
///
/// ```text
/// enduro::conformance!(WithCodec(FileBackend::new(), enduro::Cbor::default()));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct WithCodec<B, C>(pub B, pub C);

impl<B: Backend, C: crate::Codec + Clone> Backend for WithCodec<B, C> {
    type Resource = B::Resource;

    fn fresh(&self) -> Self::Resource {
        self.0.fresh()
    }

    fn store(&self, resource: &Self::Resource) -> Result<Box<dyn Store>> {
        self.0.store(resource)
    }

    fn stored(&self, resource: &Self::Resource) -> Option<Vec<u8>> {
        self.0.stored(resource)
    }

    fn plant(&self, resource: &Self::Resource, bytes: &[u8]) {
        self.0.plant(resource, bytes);
    }

    fn options<T: Value>(&self, options: Options<T>) -> Options<T> {
        self.0.options(options).codec(self.1.clone())
    }
}

/// Whether `b` opens its atoms with the JSON codec (the cases about what JSON in
/// particular refuses apply only then).
pub(crate) fn uses_json<B: Backend>(b: &B) -> bool {
    b.options(Options::<u8>::new()).codec_name() == "JSON"
}

/// `value` encoded as `b` encodes it, to plant in a resource.
pub(crate) fn encoded<B: Backend, T: Value>(b: &B, value: &T) -> Vec<u8> {
    b.options(Options::new()).encode_value(value).unwrap()
}

/// Whether `b`'s codec takes `bytes` for no value at all.
pub(crate) fn blank<B: Backend>(b: &B, bytes: &[u8]) -> bool {
    b.options(Options::<u8>::new()).takes_as_blank(bytes)
}

/// The promise behind every refusal, for a codec whose rules differ from JSON's: storing
/// `value` over `good` is either refused with [`Error::Encode`] (the atom, the stored
/// value and a new atom all keep `good`), or it is stored and a new atom reads it back as
/// itself.
pub(crate) fn refused_or_reads_back<B: Backend, T>(b: &B, r: &B::Resource, value: &T, good: &T)
where
    T: Value + Clone + PartialEq + std::fmt::Debug,
{
    let atom = b.open(r, good.clone());
    let stored = b.stored(r);
    match atom.reset(value.clone()) {
        Ok(_) => assert_eq!(
            *b.open(r, good.clone()).deref(),
            *value,
            "stored, so it must read back as itself"
        ),
        Err(err) => {
            assert!(matches!(err, Error::Encode { .. }), "{err}");
            assert_eq!(*atom.deref(), *good);
            assert_eq!(b.stored(r), stored, "nothing was written");
            assert_eq!(*b.open(r, value.clone()).deref(), *good);
        }
    }
}

/// [`refused_or_reads_back`] for an initial value: refused before anything is stored, or
/// stored and read back.
pub(crate) fn refused_or_reads_back_at_open<B: Backend, T>(b: &B, value: T)
where
    T: Value + Clone + PartialEq + std::fmt::Debug,
{
    let r = b.fresh();
    match b.open_with(&r, value.clone(), Options::new()) {
        Ok(atom) => {
            assert_eq!(*atom.deref(), value);
            drop(atom);
            assert_eq!(*b.open(&r, value.clone()).deref(), value);
        }
        Err(err) => {
            assert!(matches!(err, Error::Encode { .. }), "{err}");
            assert_eq!(b.stored(&r), None);
        }
    }
}

/// Records every `(old, new)` the watches of `atom` see (under the key `recorder`).
///
/// ```
/// let atom = enduro::mem_atom(1u8);
/// let seen = enduro::conformance::recorder(&atom);
/// atom.swap(|n| n + 1)?;
/// assert_eq!(*seen.lock().unwrap(), [(1, 2)]);
/// # Ok::<(), enduro::Error>(())
/// ```
pub fn recorder<T: Clone + Value>(atom: &Atom<T>) -> Arc<Mutex<Vec<(T, T)>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    atom.add_watch("recorder", move |old: &T, new: &T| {
        log.lock().unwrap().push((old.clone(), new.clone()));
    });
    seen
}

/// Waits until `done`, checking every millisecond, and fails the test saying `what` after
/// 60 s: for what an atom does by itself (a live atom catching up), soon but not at once.
/// A bound against hanging, never a measure of speed.
///
/// ```
/// enduro::conformance::eventually("one is one", || 1 == 1);
/// ```
pub fn eventually(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out (60 s) waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Checks that a watch log of `u64` values is one chain from `from` to `to`, each `old`
/// the previous `new`, rising at each step: what the watches of a live (or refreshing)
/// atom must see of a counter others increment. Transitions may merge (one step over
/// several commits); none may be missing, repeated or out of order.
///
/// ```
/// enduro::conformance::assert_rising_chain(&[(0, 1), (1, 4), (4, 5)], 0, 5);
/// let broken = std::panic::catch_unwind(|| {
///     enduro::conformance::assert_rising_chain(&[(0, 2), (1, 3)], 0, 3)
/// });
/// assert!(broken.is_err());
/// ```
pub fn assert_rising_chain(seen: &[(u64, u64)], from: u64, to: u64) {
    let mut at = from;
    for (old, new) in seen {
        assert_eq!(*old, at, "the watch chain breaks at {at}: {seen:?}");
        assert!(new > old, "the watch chain does not rise at {at}: {seen:?}");
        at = *new;
    }
    assert_eq!(at, to, "the watch chain ends at {at}, not {to}: {seen:?}");
}

/// Runs the case `name` through `case`. A case listed in `known_failures` must fail (its
/// panic is caught and reported); if it passes, this panics so that the list is updated.
pub fn run_case(name: &str, known_failures: &[&str], case: impl FnOnce()) {
    if !known_failures.contains(&name) {
        return case();
    }
    match catch_unwind(AssertUnwindSafe(case)) {
        Ok(()) => panic!(
            "`{name}` is listed as a known failure of this backend, but it passed: \
             take it off the list"
        ),
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(a panic without a message)");
            eprintln!("known failure of this backend, still failing as expected: {why}");
        }
    }
}

/// Runs `future` to its end on a fresh multi-thread tokio runtime (two workers, timers on),
/// as every async case needs; a panic inside it reaches the caller.
#[cfg(feature = "async")]
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let result = catch_unwind(AssertUnwindSafe(|| runtime.block_on(future)));
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    result.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Instantiates every case of [`conformance::blocking`](crate::conformance::blocking) as a
/// `#[test]` against `$backend` (an expression implementing
/// [`Backend`](crate::conformance::Backend), evaluated afresh for each test). Optionally,
/// `known_failures: [case, ...]` names cases that must (still) fail.
///
/// ```text
/// enduro::conformance!(MyBackend::new());
/// enduro::conformance!(MyBackend::new(), known_failures: [some_case]);
/// ```
#[macro_export]
macro_rules! conformance {
    ($backend:expr $(,)?) => {
        $crate::conformance!($backend, known_failures: []);
    };
    ($backend:expr, known_failures: $known:tt $(,)?) => {
        $crate::conformance!(@cases $backend; $known;
            initial_value_is_written,
            stored_value_wins_over_init,
            blank_resource_gets_init,
            value_persists_across_reopen,
            migrations_run_once_and_store_the_schema_with_the_data,
            a_failing_migration_changes_nothing,
            concurrent_opens_migrate_once,
            values_that_would_not_read_back_are_refused_when_checked,
            swap_and_friends_return_what_they_should,
            compare_and_set_compares_values,
            clones_share_everything,
            validator_rejects_invalid_init,
            values_of_other_writers_are_adopted_whatever_the_validator,
            validator_rejects_invalid_swap,
            a_validators_reason_reaches_the_error,
            try_swap_refusals_change_nothing_and_come_back_as_they_were,
            set_validator_checks_current_value,
            watches_see_each_transition_in_order,
            panicking_watch_breaks_nothing,
            panic_in_swap_function_changes_nothing,
            unencodable_values_are_refused,
            non_finite_float_is_refused,
            corrupt_data_is_an_error_and_left_untouched,
            wrong_type_is_an_error_and_left_untouched,
            release_deletes_and_stops_every_clone,
            a_stale_handle_never_writes_over_a_re_created_resource,
            versions_never_repeat_across_release_and_re_creation,
            hundred_concurrent_swaps,
            sixteen_threads_times_five_hundred,
            two_atoms_on_one_resource_stay_exact,
            refresh_picks_up_other_writers,
            the_same_bytes_under_a_new_version_are_no_transition,
            every_commit_fault_leaves_the_atom_unchanged,
            lost_acknowledgement_is_picked_up_not_overwritten,
            failed_check_changes_nothing,
            a_bad_value_in_a_crowd_fails_only_its_own_swap,
            a_refused_value_in_a_crowd_fails_only_its_own_swap,
            a_panic_in_a_crowd_fails_only_its_own_swap,
            commit_faults_in_a_crowd_lose_nothing_acknowledged,
            lost_acknowledgements_in_a_crowd_are_never_overwritten,
            compare_and_set_loops_across_threads_are_exact,
            background_mode_flush_makes_every_acknowledged_swap_durable,
            background_mode_drop_flushes,
            background_mode_refuses_bad_values_at_once,
            background_mode_reports_failed_writes_and_recovers,
            background_mode_refresh_and_release_flush_first,
            reentrant_calls_fail_fast_instead_of_deadlocking,
            a_panicking_serialize_fails_its_swap_and_never_hangs,
            a_resource_emptied_by_hand_counts_as_released,
            values_nested_deeper_than_json_reads_back_are_refused,
            the_deepest_accepted_values_read_back_after_reopening,
            some_of_null_is_refused,
            a_hundred_thousand_levels_are_refused_on_a_small_stack,
            a_deep_hand_written_value_is_a_decode_error,
            a_live_atom_follows_other_writers_without_refresh,
            a_live_atom_that_writes_too_stays_exact,
            many_live_atoms_each_follow_their_own_resource,
            a_live_atom_takes_a_blank_value_for_a_rewrite_in_progress,
            a_live_atom_tries_a_failed_catch_up_again,
            apply_is_a_swap_whose_change_is_the_op,
            ops_from_threads_and_two_atoms_are_exact_and_replay_to_the_same_value,
            an_op_that_panics_or_would_not_read_back_changes_nothing,
            other_atoms_see_applied_ops_as_a_chain_of_transitions,
        );
    };
    (@cases $backend:expr; $known:tt; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::conformance::run_case(
                    stringify!($case),
                    $crate::__conformance_names! $known,
                    || $crate::conformance::blocking::$case(&$backend),
                );
            }
        )*
    };
}

/// Instantiates every case of
/// [`conformance::nonblocking`](crate::conformance::nonblocking) as a `#[test]` against
/// `$backend` (an expression implementing
/// [`AsyncBackend`](crate::conformance::AsyncBackend), evaluated afresh for each test), each
/// on its own multi-thread tokio runtime. Optionally, `known_failures: [case, ...]` names
/// cases that must (still) fail.
///
/// ```text
/// enduro::async_conformance!(MyAsyncBackend::new());
/// enduro::async_conformance!(enduro::conformance::InlineBackend(MyBackend::new()));
/// ```
#[cfg(feature = "async")]
#[macro_export]
macro_rules! async_conformance {
    ($backend:expr $(,)?) => {
        $crate::async_conformance!($backend, known_failures: []);
    };
    ($backend:expr, known_failures: $known:tt $(,)?) => {
        $crate::async_conformance!(@cases $backend; $known;
            async_initial_value_is_written,
            async_stored_value_wins_over_init,
            async_migrations_run_once_at_open,
            async_swap_and_friends_return_what_they_should,
            async_compare_and_set_compares_with_the_latest_value,
            async_watches_see_each_transition_in_order,
            async_validator_refuses_invalid_values_and_changes_nothing,
            async_try_swap_refusals_change_nothing_and_come_back_as_they_were,
            async_panic_in_swap_function_changes_nothing,
            async_corrupt_or_mistyped_data_is_an_error_and_left_untouched,
            async_background_mode_is_refused,
            async_release_stops_every_clone_and_every_other_handle,
            async_a_stale_handle_never_writes_over_a_re_created_resource,
            async_versions_never_repeat_across_release_and_re_creation,
            async_sixteen_tasks_times_two_hundred,
            async_two_atoms_on_one_resource_stay_exact,
            async_refresh_picks_up_other_writers,
            async_a_failed_commit_leaves_the_atom_unchanged,
            async_a_lost_answer_is_picked_up_not_overwritten,
            async_commit_faults_among_tasks_lose_nothing_and_repeat_nothing,
            async_a_dropped_leader_never_makes_a_follower_apply_twice,
            async_an_orphaned_commit_is_settled_by_the_next_call,
            async_random_cancellation_never_applies_a_change_twice,
            async_a_live_atom_follows_other_writers_without_refresh,
            async_a_live_atom_that_writes_too_stays_exact,
            async_a_live_atom_tries_a_failed_catch_up_again,
            async_ops_from_tasks_are_exact_and_replay_to_the_same_value,
            async_cancelled_ops_are_never_applied_twice,
        );
    };
    (@cases $backend:expr; $known:tt; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::conformance::run_case(
                    stringify!($case),
                    $crate::__conformance_names! $known,
                    || {
                        let backend = $backend;
                        $crate::conformance::block_on(
                            $crate::conformance::nonblocking::$case(&backend),
                        )
                    },
                );
            }
        )*
    };
}

/// `[a, b]` to `&["a", "b"]`, for the conformance macros.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_names {
    ($($name:ident),* $(,)?) => {
        &[$(stringify!($name)),*]
    };
}

#[cfg(test)]
mod tests {
    use std::panic::{AssertUnwindSafe, catch_unwind};

    use super::run_case;

    #[test]
    fn a_known_failure_must_keep_failing() {
        run_case("case", &["case"], || panic!("still broken"));
        let passed = catch_unwind(AssertUnwindSafe(|| run_case("case", &["case"], || {})));
        assert!(passed.is_err(), "a known failure that passes must say so");
        let other = catch_unwind(AssertUnwindSafe(|| {
            run_case("case", &["another"], || panic!("broken"))
        }));
        assert!(other.is_err(), "a case not on the list fails as usual");
        run_case("case", &[], || {});
    }
}
