//! The conformance suite, blocking and async, with every format beside JSON, on memory
//! atoms and on file atoms (plain and journal mode): each case opens its atoms with the
//! format's codec and reads what it stored with it (`WithCodec`).
//!
//! TOML needs a table at the top of a document, and most cases store bare numbers and
//! lists: it runs with the value as the one entry of a table (`InTable`), so every value
//! the cases store goes through TOML's writer and reader.
//!
//! The known failures are cases about what JSON in particular refuses or how deep it
//! nests, where the format stores what JSON cannot (a NaN, say) or reads no deeper
//! (RON); each is named with the reason. A known failure still runs and must still fail.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use enduro::conformance::{Backend, InlineBackend, WithCodec};
use enduro::store::Store;
use enduro::{
    Cbor, Codec, CodecError, FileStore, MemStore, MessagePack, Postcard, Result, Ron, Toml,
};

/// Memory cells, one shared store per resource.
#[derive(Debug, Default)]
struct Mem;

impl Backend for Mem {
    type Resource = Arc<MemStore>;
    fn fresh(&self) -> Arc<MemStore> {
        Arc::new(MemStore::new())
    }
    fn store(&self, resource: &Arc<MemStore>) -> Result<Box<dyn Store>> {
        Ok(Box::new(Arc::clone(resource)))
    }
}

/// Files in a private temp dir, plain or in journal mode.
#[derive(Debug)]
struct Files {
    dir: tempfile::TempDir,
    next: AtomicUsize,
    journal: bool,
}

impl Files {
    fn new(journal: bool) -> Self {
        Files {
            dir: tempfile::tempdir().unwrap(),
            next: AtomicUsize::new(0),
            journal,
        }
    }
}

impl Backend for Files {
    type Resource = PathBuf;
    fn fresh(&self) -> PathBuf {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.dir.path().join(format!("atom-{n}"))
    }
    fn store(&self, path: &PathBuf) -> Result<Box<dyn Store>> {
        Ok(Box::new(
            FileStore::builder(path).journal(self.journal).open()?,
        ))
    }
    fn stored(&self, path: &PathBuf) -> Option<Vec<u8>> {
        let store = FileStore::open(path).unwrap();
        if store.journal_path().exists() {
            return store.load().unwrap().map(|s| s.bytes);
        }
        std::fs::read(path).ok()
    }
    fn plant(&self, path: &PathBuf, bytes: &[u8]) {
        std::fs::write(path, bytes).unwrap();
    }
}

/// TOML with the value as the entry `v` of a table, so that bare numbers and lists can be
/// documents.
#[derive(Debug, Clone, Default)]
struct InTable(Toml);

#[derive(serde::Serialize)]
struct Wrap<'a, T: ?Sized> {
    v: &'a T,
}

#[derive(serde::Deserialize)]
struct Unwrap<T> {
    v: T,
}

impl Codec for InTable {
    fn name(&self) -> &'static str {
        "TOML"
    }
    fn encode<T: serde::Serialize + ?Sized>(
        &self,
        value: &T,
        out: &mut dyn std::io::Write,
    ) -> std::result::Result<(), CodecError> {
        self.0.encode(&Wrap { v: value }, out)
    }
    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        bytes: &[u8],
    ) -> std::result::Result<T, CodecError> {
        Ok(self.0.decode::<Unwrap<T>>(bytes)?.v)
    }
    fn is_blank(&self, bytes: &[u8]) -> bool {
        self.0.is_blank(bytes)
    }
    fn styled(&self, pretty: bool) -> Option<Self> {
        self.0.styled(pretty).map(InTable)
    }
}

/// One format on memory, plain files and journal files, blocking and async.
macro_rules! suites {
    ($codec:expr, known_failures: $known:tt) => {
        mod mem {
            use super::*;
            enduro::conformance!(WithCodec(Mem, $codec), known_failures: $known);
            enduro::async_conformance!(InlineBackend(WithCodec(Mem, $codec)), known_failures: $known);
        }
        mod file {
            use super::*;
            enduro::conformance!(WithCodec(Files::new(false), $codec), known_failures: $known);
            enduro::async_conformance!(
                InlineBackend(WithCodec(Files::new(false), $codec)),
                known_failures: $known
            );
        }
        mod journal {
            use super::*;
            enduro::conformance!(WithCodec(Files::new(true), $codec), known_failures: $known);
            enduro::async_conformance!(
                InlineBackend(WithCodec(Files::new(true), $codec)),
                known_failures: $known
            );
        }
    };
}

mod toml {
    use super::*;
    // some_of_null_is_refused: its values that must be stored (`vec![None]`, a map with a
    // `None` value) have a null inside a sequence or map, which TOML cannot hold: refused.
    suites!(InTable::default(), known_failures: [some_of_null_is_refused]);
}

mod ron {
    use super::*;
    suites!(Ron::default(), known_failures: []);
}

mod cbor {
    use super::*;
    suites!(Cbor, known_failures: []);
}

mod msgpack {
    use super::*;
    suites!(MessagePack, known_failures: []);
}

mod postcard {
    use super::*;
    // postcard does not describe itself, so:
    // - atoms with ops or migrations refuse to open (both travel through
    //   `serde_json::Value`): every ops and migrations case;
    // - it can never read `serde_json::Value` nor `IgnoredAny` (no `deserialize_any`), so
    //   every value is read back before it is written, and the cases whose values are made
    //   of those (the deep cases, the `Some(Value::Null)` case) are refused at their first
    //   `open`.
    suites!(
        Postcard,
        known_failures: [
            apply_is_a_swap_whose_change_is_the_op,
            an_op_that_panics_or_would_not_read_back_changes_nothing,
            ops_from_threads_and_two_atoms_are_exact_and_replay_to_the_same_value,
            other_atoms_see_applied_ops_as_a_chain_of_transitions,
            async_ops_from_tasks_are_exact_and_replay_to_the_same_value,
            async_cancelled_ops_are_never_applied_twice,
            migrations_run_once_and_store_the_schema_with_the_data,
            a_failing_migration_changes_nothing,
            concurrent_opens_migrate_once,
            async_migrations_run_once_at_open,
            a_bad_value_in_a_crowd_fails_only_its_own_swap,
            a_hundred_thousand_levels_are_refused_on_a_small_stack,
            values_nested_deeper_than_json_reads_back_are_refused,
            the_deepest_accepted_values_read_back_after_reopening,
            some_of_null_is_refused,
        ]
    );
}
