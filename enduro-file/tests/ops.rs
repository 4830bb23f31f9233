//! Ops in journal mode, from outside: what lies on disk (small op records, the data file
//! left as the snapshot), replay at open, other handles applying ops they have not seen
//! (one transition per op), plain handles committing over ops, compaction, and bad data:
//! an op that does not decode or panics during replay is an error naming the record, and
//! nothing is written.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use enduro_core::Store;
use enduro_core::conformance::eventually;
use enduro_core::{Apply, Atom, Error, Value};
use enduro_file::{FileAtom, FileStore};
use serde::{Deserialize, Serialize};

mod common;

use common::{contents, journal_path};

const BLOCK: usize = 4096;

/// A map changed one key at a time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Map(BTreeMap<String, String>);

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Edit {
    Set(String, String),
    Remove(String),
}

impl Apply for Map {
    type Op = Edit;
    fn apply(&mut self, op: &Edit) {
        match op {
            Edit::Set(k, v) => {
                self.0.insert(k.clone(), v.clone());
            }
            Edit::Remove(k) => {
                self.0.remove(k);
            }
        }
    }
}

fn big_map(entries: usize) -> Map {
    Map((0..entries)
        .map(|i| {
            (
                format!("key-{i:06}"),
                format!("value number {i} of the map"),
            )
        })
        .collect())
}

fn ops_atom<T: Value + Apply>(path: &Path, init: T) -> Atom<T> {
    FileAtom::builder(path)
        .journal(true)
        .ops()
        .open(init)
        .unwrap()
}

/// The (kind, count) of each record of the journal at `journal`, in order.
fn records(journal: &Path) -> Vec<(u32, u32)> {
    let bytes = fs::read(journal).unwrap();
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let mut found = Vec::new();
    let mut at = BLOCK;
    while at + 48 <= bytes.len() && &bytes[at..at + 4] == b"EJR1" {
        found.push((word(at + 24), word(at + 28)));
        let len = u64::from_le_bytes(bytes[at + 32..at + 40].try_into().unwrap()) as usize;
        at += (48 + len).div_ceil(BLOCK) * BLOCK;
    }
    found
}

#[test]
fn ops_are_appended_as_small_records_and_replayed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("map.json");
    let atom = ops_atom(&path, big_map(3000));
    let snapshot = fs::read(&path).unwrap();
    assert!(
        snapshot.len() > 100_000,
        "a value of {} bytes",
        snapshot.len()
    );
    for i in 0..20 {
        atom.apply(Edit::Set(format!("key-{i:06}"), format!("changed {i}")))
            .unwrap();
    }
    atom.apply(Edit::Remove("key-002999".into())).unwrap();
    assert_eq!(
        fs::read(&path).unwrap(),
        snapshot,
        "the data file is the snapshot"
    );
    // One op record (kind 1, one op) per apply, each in one block: not the value.
    let journal = journal_path(&path);
    assert_eq!(records(&journal), vec![(1, 1); 21]);
    let again = ops_atom(&path, Map::default());
    assert_eq!(*again.deref(), *atom.deref(), "replayed at open");
    assert_eq!(again.deref().0["key-000007"], "changed 7");
    assert!(!again.deref().0.contains_key("key-002999"));
    // `load` has no whole value to give; `load_replay` gives the snapshot and the ops.
    let store = FileStore::open(&path).unwrap();
    let err = store.load().unwrap_err();
    assert!(matches!(err, Error::Replay { .. }), "{err}");
    let replay = store.load_replay().unwrap().unwrap();
    assert_eq!(replay.base.bytes, snapshot);
    assert_eq!(replay.ops.len(), 21);
    assert_eq!(replay.version(), atom.version());
}

#[test]
fn other_handles_see_one_transition_per_op_by_refresh_and_live() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("map.json");
    let writer = ops_atom(&path, Map::default());
    let reader = ops_atom(&path, Map::default());
    let live = FileAtom::builder(&path)
        .journal(true)
        .ops()
        .live(true)
        .open(Map::default())
        .unwrap();
    let sizes = |atom: &Atom<Map>| {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        atom.add_watch("sizes", move |old: &Map, new: &Map| {
            log.lock().unwrap().push((old.0.len(), new.0.len()));
        });
        seen
    };
    let (read, followed) = (sizes(&reader), sizes(&live));
    for burst in 0..3 {
        for i in 0..5 {
            let key = format!("k{burst}-{i}");
            writer.apply(Edit::Set(key, "v".into())).unwrap();
        }
        reader.refresh().unwrap();
    }
    eventually("the live atom at 15 entries", || live.deref().0.len() == 15);
    eventually("the live atom's watch at 15", || {
        followed.lock().unwrap().last() == Some(&(14, 15))
    });
    let steps: Vec<(usize, usize)> = (0..15).map(|n| (n, n + 1)).collect();
    assert_eq!(
        *read.lock().unwrap(),
        steps,
        "refresh: one transition per op"
    );
    assert_eq!(
        *followed.lock().unwrap(),
        steps,
        "live: one transition per op"
    );
    assert_eq!(*reader.deref(), *writer.deref());
}

/// A value whose op is a number, for the bad-data cases: `Strict` panics on 13 and takes
/// ops of another shape than `Loose` writes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Strict(u64);

impl Apply for Strict {
    type Op = u64;
    fn apply(&mut self, n: &u64) {
        assert_ne!(*n, 13, "13 is refused");
        self.0 += n;
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Loose(u64);

impl Apply for Loose {
    type Op = serde_json::Value;
    fn apply(&mut self, op: &serde_json::Value) {
        self.0 += op.as_u64().unwrap_or(0);
    }
}

/// Writes `ops` to a new journal at `dir/n.json` through a `Loose` atom.
fn loose_journal(dir: &Path, ops: &[serde_json::Value]) -> PathBuf {
    let path = dir.join("n.json");
    let atom = ops_atom(&path, Loose(1));
    for op in ops {
        atom.apply(op.clone()).unwrap();
    }
    path
}

#[test]
fn an_op_that_does_not_decode_is_an_error_naming_the_record_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = loose_journal(dir.path(), &[2.into(), "two".into(), 3.into()]);
    let before = contents(dir.path());
    for attempt in 0..2 {
        let err = FileAtom::builder(&path)
            .journal(true)
            .ops()
            .open(Strict(0))
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::Replay { .. }), "{text}");
        assert!(
            text.contains(&format!("byte {}", 2 * BLOCK)) && text.contains("enduro-journal"),
            "names the second record: {text}"
        );
        assert!(text.contains("Strict"), "names the type: {text}");
        assert_eq!(
            contents(dir.path()),
            before,
            "attempt {attempt}: nothing written"
        );
    }
    // A plain handle refuses it too, and writes nothing.
    let err = FileAtom::builder(&path).ops().open(Strict(0)).unwrap_err();
    assert!(matches!(err, Error::Replay { .. }), "{err}");
    assert_eq!(contents(dir.path()), before);
}

#[test]
fn an_op_that_panics_during_replay_is_an_error_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = loose_journal(dir.path(), &[2.into(), 13.into(), 3.into()]);
    let before = contents(dir.path());
    let err = FileAtom::builder(&path)
        .journal(true)
        .ops()
        .open(Strict(0))
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Replay { .. }), "{text}");
    assert!(
        text.contains("panicked") && text.contains("13 is refused"),
        "{text}"
    );
    assert!(text.contains(&format!("byte {}", 2 * BLOCK)), "{text}");
    assert_eq!(contents(dir.path()), before);
    // The atom that wrote them, and a fresh one of its type, read on.
    assert_eq!(ops_atom(&path, Loose(0)).deref().0, 19);
}

#[test]
fn an_atom_opened_without_ops_refuses_a_journal_of_ops_and_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let path = loose_journal(dir.path(), &[2.into()]);
    let before = contents(dir.path());
    for err in [
        FileAtom::builder(&path)
            .journal(true)
            .open(Loose(0))
            .unwrap_err(),
        enduro_file::file_atom(Loose(0), &path).unwrap_err(),
    ] {
        let text = err.to_string();
        assert!(matches!(err, Error::Replay { .. }), "{text}");
        assert!(text.contains("ops()"), "{text}");
    }
    assert_eq!(contents(dir.path()), before);
}

#[test]
fn a_plain_handle_commits_over_ops_and_loses_none() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("map.json");
    let journaled = ops_atom(&path, big_map(100));
    for i in 0..5 {
        journaled
            .apply(Edit::Set(format!("new-{i}"), "x".into()))
            .unwrap();
    }
    let plain = FileAtom::builder(&path).ops().open(Map::default()).unwrap();
    assert_eq!(
        plain.deref().0.len(),
        105,
        "the plain handle replays the ops"
    );
    plain.apply(Edit::Remove("new-0".into())).unwrap();
    plain
        .swap(|m| {
            let mut m = m.clone();
            m.0.insert("swapped".into(), "y".into());
            m
        })
        .unwrap();
    assert_eq!(journaled.refresh().unwrap().0.len(), 105);
    assert!(journaled.deref().0.contains_key("swapped"));
    journaled.apply(Edit::Remove("new-1".into())).unwrap();
    let expected = journaled.deref().0.clone();
    assert_eq!(plain.refresh().unwrap().0, expected);
    assert_eq!(ops_atom(&path, Map::default()).deref().0, expected);
    let whole = FileAtom::builder(&path).ops().open(Map::default()).unwrap();
    assert_eq!(whole.deref().0, expected);
}

#[test]
fn compaction_writes_the_value_when_ops_pile_up_so_replay_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("map.json");
    let limit = 16 * BLOCK as u64;
    let open = || {
        FileAtom::builder(&path)
            .journal(true)
            .journal_limit(limit)
            .ops()
            .open(Map::default())
            .unwrap()
    };
    let atom = open();
    for i in 0..100 {
        atom.apply(Edit::Set(format!("k{i:03}"), "v".into()))
            .unwrap();
        let records = records(&journal_path(&path)).len() as u64;
        assert!(
            records * BLOCK as u64 <= limit + BLOCK as u64,
            "after op {i}: {records} records of 4 KiB pile up past the bound of {limit} bytes"
        );
    }
    let snapshot: Map = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    assert!(
        snapshot.0.len() >= 100 - 17,
        "the data file holds a compacted value of {} entries",
        snapshot.0.len()
    );
    assert_eq!(open().deref().0.len(), 100);
}

/// Counts its clones (a static per test: only this test uses the type).
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct Counted(Vec<u64>);

static CLONES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Clone for Counted {
    fn clone(&self) -> Self {
        CLONES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Counted(self.0.clone())
    }
}

impl Apply for Counted {
    type Op = u64;
    fn apply(&mut self, n: &u64) {
        self.0.push(*n);
    }
}

#[test]
fn ops_copy_the_value_only_while_someone_else_holds_the_old_one() {
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.json");
    let atom = ops_atom(&path, Counted::default());
    let clones = || CLONES.load(Ordering::SeqCst);
    let before = clones();
    for n in 0..50 {
        atom.apply(n).unwrap();
    }
    assert!(
        clones() - before <= 1,
        "50 ops made {} copies of the value (only the first should)",
        clones() - before
    );
    // A value held elsewhere is never taken: the op that would take it copies instead.
    // (`held` is the current value: the next op takes the one before it, which nobody
    // holds; the op after that would take `held`, and copies.)
    let held = atom.deref();
    let before = clones();
    atom.apply(50).unwrap();
    assert_eq!(clones() - before, 0);
    let kept = atom.deref();
    atom.apply(51).unwrap();
    assert_eq!(clones() - before, 1, "a held value is copied, not taken");
    assert_eq!(held.0.len(), 50, "a value someone holds never changes");
    assert_eq!(kept.0.len(), 51);
    drop((held, kept));
    let before = clones();
    for n in 52..60 {
        atom.apply(n).unwrap();
    }
    assert!(clones() - before <= 1);
    // Swaps, and other writers, in between: still the right value.
    atom.swap(|c| Counted(c.0.iter().map(|n| n + 1000).collect()))
        .unwrap();
    atom.apply(7).unwrap();
    let other = ops_atom(&path, Counted::default());
    other.apply(8).unwrap();
    atom.apply(9).unwrap();
    let expected: Vec<u64> = (1000..1060).chain([7, 8, 9]).collect();
    assert_eq!(atom.deref().0, expected);
    assert_eq!(ops_atom(&path, Counted::default()).deref().0, expected);
}

#[test]
fn async_ops_compact_through_the_value_encoded_off_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("map.json");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let open = || {
        FileAtom::builder(&path)
            .journal(true)
            .journal_limit(8 * BLOCK as u64)
            .ops()
            .open_async(Map::default())
    };
    runtime.block_on(async {
        let atom = open().await.unwrap();
        let tasks: Vec<_> = (0..4)
            .map(|t| {
                let atom = atom.clone();
                tokio::spawn(async move {
                    for i in 0..25 {
                        let key = format!("t{t}-{i:02}");
                        atom.apply(Edit::Set(key, "v".into())).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(atom.deref().0.len(), 100);
        // Compactions ran (the records stay within the bound) and wrote a value the ops
        // made (the snapshot was empty): how far it lags depends on how many ops shared
        // each record.
        let records = records(&journal_path(&path)).len();
        assert!(records <= 9, "{records} records");
        let snapshot: Map = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert!(!snapshot.0.is_empty(), "no compaction wrote the value");
        assert!(snapshot.0.keys().all(|k| atom.deref().0.contains_key(k)));
        assert_eq!(open().await.unwrap().deref().0.len(), 100);
    });
}

#[test]
fn a_handle_that_read_part_of_the_ops_loads_the_last_value_and_every_op_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("map.json");
    let writer = ops_atom(&path, Map::default());
    writer.apply(Edit::Set("a".into(), "1".into())).unwrap();
    // A swap stores a whole value (a record), then ops follow it.
    writer
        .swap(|m| {
            let mut m = m.clone();
            m.0.insert("swapped".into(), "2".into());
            m
        })
        .unwrap();
    writer.apply(Edit::Set("b".into(), "3".into())).unwrap();
    let store = FileStore::open(&path).unwrap();
    let first = store.load_replay().unwrap().unwrap();
    assert_eq!(first.ops.len(), 1);
    // The store now knows the journal's end; more ops come after it.
    writer.apply(Edit::Set("c".into(), "4".into())).unwrap();
    writer.apply(Edit::Remove("a".into())).unwrap();
    let second = store.load_replay().unwrap().unwrap();
    assert_eq!(second.base, first.base, "the same last value, read again");
    assert_eq!(
        second.ops.len(),
        3,
        "every op after it, not only the new ones"
    );
    assert_eq!(second.version(), writer.version());
    let reader = ops_atom(&path, Map::default());
    assert_eq!(*reader.deref(), *writer.deref());
}

/// A codec other than JSON (JSON behind a mark), for the path ops take through
/// `serde_json::Value` with any codec.
struct Marked;

impl enduro_core::Codec for Marked {
    fn name(&self) -> &'static str {
        "marked JSON"
    }
    fn encode<T: Serialize + ?Sized>(
        &self,
        value: &T,
        out: &mut dyn std::io::Write,
    ) -> Result<(), enduro_core::CodecError> {
        out.write_all(b"#")?;
        serde_json::to_writer(out, value)?;
        Ok(())
    }
    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        bytes: &[u8],
    ) -> Result<T, enduro_core::CodecError> {
        let json = bytes.strip_prefix(b"#").ok_or("no mark")?;
        Ok(serde_json::from_slice(json)?)
    }
}

#[test]
fn ops_are_encoded_with_the_atoms_codec_whatever_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("map.bin");
    let open = || {
        FileAtom::builder(&path)
            .codec(Marked)
            .journal(true)
            .ops()
            .open(Map::default())
            .unwrap()
    };
    let atom = open();
    atom.apply(Edit::Set("k".into(), "v".into())).unwrap();
    atom.apply(Edit::Set("x".into(), "y".into())).unwrap();
    open().apply(Edit::Remove("k".into())).unwrap();
    // The first record's first op (after its 4-byte length) is as the codec writes it.
    let journal = fs::read(journal_path(&path)).unwrap();
    let op = &journal[BLOCK + 48 + 4..];
    assert!(op.starts_with(b"#{\"Set\":"), "{:?}", &op[..16]);
    let again = open();
    assert_eq!(again.deref().0.len(), 1);
    assert_eq!(again.deref().0["x"], "y");
    assert_eq!(*atom.refresh().unwrap(), *again.deref());
}

/// A value whose op is an `Option<Option<u32>>`: `Some(None)` would be written as `null`
/// and read back as `None`, another op.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Seen(Vec<Option<Option<u32>>>);

impl Apply for Seen {
    type Op = Option<Option<u32>>;
    fn apply(&mut self, op: &Option<Option<u32>>) {
        self.0.push(*op);
    }
}

#[test]
fn an_op_that_json_would_read_back_as_another_is_refused_with_every_codec() {
    let dir = tempfile::tempdir().unwrap();
    for (name, marked) in [("json.json", false), ("marked.bin", true)] {
        let path = dir.path().join(name);
        let builder = FileAtom::builder(&path).journal(true).ops();
        let atom = if marked {
            builder.codec(Marked).open(Seen::default())
        } else {
            builder.open(Seen::default())
        }
        .unwrap();
        atom.apply(Some(Some(1))).unwrap();
        atom.apply(None).unwrap();
        let err = atom.apply(Some(None)).expect_err(name);
        assert!(matches!(err, Error::Encode { .. }), "{name}: {err}");
        assert_eq!(atom.deref().0, [Some(Some(1)), None], "{name}");
        let again = FileAtom::builder(&path).journal(true).ops();
        let again = if marked {
            again.codec(Marked).open(Seen::default())
        } else {
            again.open(Seen::default())
        }
        .unwrap();
        assert_eq!(again.deref().0, [Some(Some(1)), None], "{name}: replayed");
    }
}

/// An op nested deeper than JSON reads back.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Depth(usize);

impl Apply for Depth {
    type Op = serde_json::Value;
    fn apply(&mut self, op: &serde_json::Value) {
        let mut level = 0;
        let mut at = op;
        while let Some(inner) = at.get(0) {
            level += 1;
            at = inner;
        }
        self.0 = level;
    }
}

#[test]
fn an_op_nested_deeper_than_json_reads_back_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("depth.json");
    let atom = ops_atom(&path, Depth(0));
    let nested = |levels: usize| {
        (0..levels).fold(serde_json::json!(0), |inner, _| serde_json::json!([inner]))
    };
    assert_eq!(atom.apply(nested(100)).unwrap().0, 100);
    let err = atom.apply(nested(200)).unwrap_err();
    assert!(matches!(err, Error::Encode { .. }), "{err}");
    assert_eq!(atom.deref().0, 100);
    assert_eq!(ops_atom(&path, Depth(0)).deref().0, 100);
}

/// A counter whose op calls back into the atom it is applied by.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Reenter(u32);

static REENTERED: Mutex<Vec<String>> = Mutex::new(Vec::new());
static SELF_ATOM: std::sync::OnceLock<Atom<Reenter>> = std::sync::OnceLock::new();

impl Apply for Reenter {
    type Op = bool;
    fn apply(&mut self, call_back: &bool) {
        if *call_back && let Some(atom) = SELF_ATOM.get() {
            let outcome = match atom.apply(false) {
                Ok(_) => "ok".to_string(),
                Err(e) => format!("{e:?}"),
            };
            REENTERED.lock().unwrap().push(outcome);
        }
        self.0 += 1;
    }
}

#[test]
fn calls_back_into_the_atom_from_apply_or_a_validator_fail_fast_and_a_watch_may_apply() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("re.json");
    let atom = SELF_ATOM.get_or_init(|| ops_atom(&path, Reenter(0)));
    // From inside `apply`: the inner call fails at once, the outer one commits.
    assert_eq!(atom.apply(true).unwrap().0, 1);
    let seen = REENTERED.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].starts_with("Reentrant"), "{seen:?}");
    // From a validator: the same.
    let inner = Arc::new(Mutex::new(None));
    let slot = Arc::clone(&inner);
    atom.set_validator(move |_: &Reenter| {
        if let Some(atom) = SELF_ATOM.get() {
            let refused = matches!(atom.apply(false), Err(Error::Reentrant { .. }));
            *slot.lock().unwrap() = Some(refused);
        }
        true
    })
    .unwrap();
    assert_eq!(atom.apply(false).unwrap().0, 2);
    assert_eq!(*inner.lock().unwrap(), Some(true));
    atom.clear_validator();
    // From a watch (after the commit, outside every lock): it may apply.
    let once = Arc::new(std::sync::atomic::AtomicBool::new(false));
    atom.add_watch("again", move |_: &Reenter, _: &Reenter| {
        if !once.swap(true, std::sync::atomic::Ordering::SeqCst) {
            SELF_ATOM.get().unwrap().apply(false).unwrap();
        }
    });
    atom.apply(false).unwrap();
    assert_eq!(atom.deref().0, 4);
    assert_eq!(ops_atom(&path, Reenter(0)).deref().0, 4);
}
