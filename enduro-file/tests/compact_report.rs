//! `FileStore::compact` (a journal compacted on demand, as `enduro compact` does) and
//! `FileReport` (what a path holds, read without changing anything, as `enduro info`
//! shows it): running atoms lose nothing, ops are refused, and reading a report creates,
//! repairs and removes nothing.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::fs::{self, File};

use enduro_core::{Apply, Atom};
use enduro_file::{FileAtom, FileReport, FileStore, LockState};
use serde::{Deserialize, Serialize};

mod common;

use common::contents;

#[test]
fn compaction_on_demand_keeps_the_value_the_generation_and_running_atoms() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.json");
    let a = FileAtom::builder(&path).journal(true).open(0u64).unwrap();
    let b = FileAtom::builder(&path).journal(true).open(0u64).unwrap();
    for _ in 0..10 {
        a.swap(|n| n + 1).unwrap();
        b.swap(|n| n + 1).unwrap();
    }
    let before = FileReport::read(&path).unwrap();
    let journal = before.journal.clone().unwrap();
    assert_eq!(
        (journal.values, journal.ops, journal.applies),
        (20, 0, true)
    );
    assert_eq!(before.generation, 21);
    assert_eq!(
        before.value.as_deref(),
        Some(&b"20"[..]),
        "the last record's value"
    );

    let store = FileStore::open(&path).unwrap();
    assert!(store.compact().unwrap());
    assert_eq!(fs::read_to_string(&path).unwrap(), "20");
    let after = FileReport::read(&path).unwrap();
    assert_eq!(after.generation, 21, "compaction is no commit");
    let journal = after.journal.unwrap();
    assert_eq!((journal.values, journal.used), (0, 0));
    assert!(!store.compact().unwrap(), "nothing left to compact");

    // Both atoms go on from the compacted value, in either order.
    assert_eq!(*b.swap(|n| n + 1).unwrap(), 21);
    assert_eq!(*a.swap(|n| n + 1).unwrap(), 22);
    let reopened = FileAtom::builder(&path).journal(true).open(0u64).unwrap();
    assert_eq!(*reopened.deref(), 22);
}

#[test]
fn compaction_of_a_plain_file_has_nothing_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.json");
    let atom = FileAtom::builder(&path).open(1u64).unwrap();
    atom.swap(|n| n + 1).unwrap();
    let before = contents(dir.path());
    assert!(!FileStore::open(&path).unwrap().compact().unwrap());
    assert_eq!(contents(dir.path()), before);
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Total(u64);

impl Apply for Total {
    type Op = u64;
    fn apply(&mut self, add: &u64) {
        self.0 += add;
    }
}

#[test]
fn a_journal_ending_in_ops_is_not_compacted_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("total.json");
    let atom: Atom<Total> = FileAtom::builder(&path)
        .journal(true)
        .ops()
        .open(Total(0))
        .unwrap();
    atom.swap(|t| Total(t.0 + 1)).unwrap();
    for add in [2, 3, 4] {
        atom.apply(add).unwrap();
    }
    let report = FileReport::read(&path).unwrap();
    let journal = report.journal.unwrap();
    assert_eq!(
        (journal.values, journal.ops, journal.ends_in_ops),
        (1, 3, true)
    );
    assert_eq!(report.generation, 5);
    assert_eq!(report.value, None, "ops follow the last value");

    let before = contents(dir.path());
    let err = FileStore::open(&path).unwrap().compact().unwrap_err();
    assert!(err.to_string().contains("ends in ops"), "{err}");
    assert_eq!(contents(dir.path()), before);
    assert_eq!(atom.apply(1).unwrap().0, 11);
}

#[test]
fn a_report_changes_nothing_and_tells_the_lock_and_pending_files() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing there: nothing made, not even a directory.
    let nowhere = dir.path().join("no/such/dir/a.json");
    assert!(FileReport::read(&nowhere).is_err());
    assert!(!dir.path().join("no").exists());
    let missing = FileReport::read(dir.path().join("a.json")).unwrap();
    assert_eq!((missing.data_len, missing.lock), (None, LockState::Missing));
    assert!(contents(dir.path()).is_empty());

    let path = dir.path().join("a.json");
    let atom = FileAtom::builder(&path).open(7u64).unwrap();
    atom.swap(|n| n + 1).unwrap();
    // A pending file left by a crash, and the lock held by another "process".
    let pending = dir.path().join(".a.json.enduro-pending");
    fs::write(&pending, b"half a val").unwrap();
    let lock = File::open(dir.path().join(".a.json.enduro-lock")).unwrap();
    lock.lock().unwrap();
    let before = contents(dir.path());
    let report = FileReport::read(&path).unwrap();
    assert_eq!(report.lock, LockState::Held);
    assert_eq!(report.pending, vec![pending.canonicalize().unwrap()]);
    assert_eq!(report.data_len, Some(1));
    assert_eq!(report.generation, 2);
    assert!(report.journal.is_none());
    assert_eq!(contents(dir.path()), before, "a report writes nothing");
    lock.unlock().unwrap();
    assert_eq!(FileReport::read(&path).unwrap().lock, LockState::Free);
}

#[test]
fn a_report_never_opens_a_special_file_at_the_lock_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.json");
    fs::write(&path, b"1").unwrap();
    // A FIFO would block an open forever: it reads as a damaged lock file.
    let fifo = dir.path().join(".a.json.enduro-lock");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let report = FileReport::read(&path).unwrap();
    assert_eq!(report.lock, LockState::Damaged);
    assert_eq!(report.value.as_deref(), Some(&b"1"[..]));
}
