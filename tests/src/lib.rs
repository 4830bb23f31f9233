//! enduro's conformance suite: one set of generic cases, written against a [`Backend`]
//! ("give me a fresh resource, and stores on it"), run against every backend.
//!
//! A backend's test file instantiates the whole suite with one macro call:
//!
//! ```text
//! enduro_tests::conformance!(enduro_tests::backends::FileBackend::new());
//! ```
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

pub mod backends;
#[cfg(feature = "pg")]
pub mod pg;
#[cfg(feature = "pg")]
pub mod pg_cluster;
pub mod suite;
pub mod support;

use enduro::store::Store;
use enduro::{Atom, Options, Value};

/// What the suite needs from a backend.
pub trait Backend: Send + Sync + 'static {
    /// Names one resource (a file path, a table and key, a memory cell).
    type Resource: Clone + Send + Sync + 'static;

    /// A new resource that holds nothing yet.
    fn fresh(&self) -> Self::Resource;

    /// A new, independent store on `resource`, as another process would open it.
    fn store(&self, resource: &Self::Resource) -> enduro::Result<Box<dyn Store>>;

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
        let version = store
            .load()
            .unwrap()
            .map_or(enduro::Version::ABSENT, |s| s.version);
        let done = store
            .commit(version, &mut |out| {
                out.write_all(bytes).map_err(|e| {
                    enduro::Error::backend(
                        store.resource(),
                        "cannot plant the bytes",
                        Some(Box::new(e)),
                    )
                })
            })
            .unwrap();
        assert!(matches!(done, enduro::store::Committed::Done(_)));
    }

    /// Opens an atom on `resource` with `options`.
    fn open_with<T: Value>(
        &self,
        resource: &Self::Resource,
        init: T,
        options: Options<T>,
    ) -> enduro::Result<Atom<T>> {
        Atom::open(self.store(resource)?, init, options)
    }

    /// Opens an atom on `resource`, panicking on error.
    fn open<T: Value>(&self, resource: &Self::Resource, init: T) -> Atom<T> {
        self.open_with(resource, init, Options::new()).unwrap()
    }
}

/// Instantiates every case of the [`suite`] as a `#[test]` against `$backend`, an
/// expression evaluated afresh for each test.
#[macro_export]
macro_rules! conformance {
    ($backend:expr) => {
        $crate::conformance!(@cases $backend;
            initial_value_is_written,
            stored_value_wins_over_init,
            blank_resource_gets_init,
            value_persists_across_reopen,
            swap_and_friends_return_what_they_should,
            compare_and_set_compares_values,
            clones_share_everything,
            validator_rejects_invalid_init,
            values_of_other_writers_are_adopted_whatever_the_validator,
            validator_rejects_invalid_swap,
            set_validator_checks_current_value,
            watches_see_each_transition_in_order,
            panicking_watch_breaks_nothing,
            panic_in_swap_function_changes_nothing,
            unencodable_values_are_refused,
            non_finite_float_is_refused,
            corrupt_data_is_an_error_and_left_untouched,
            wrong_type_is_an_error_and_left_untouched,
            release_deletes_and_stops_every_clone,
            hundred_concurrent_swaps,
            sixteen_threads_times_five_hundred,
            two_atoms_on_one_resource_stay_exact,
            refresh_picks_up_other_writers,
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
        );
    };
    (@cases $backend:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::suite::$case(&$backend);
            }
        )*
    };
}
