//! Journal mode, from outside: what lies on disk, plain and journal handles on one path,
//! recovery (a torn tail cut, a damaged record or header reported with its offset and
//! nothing written), compaction, permissions, release and re-creation, hand edits, live
//! atoms following appends, and group commit sharing flushes.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::fs;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};

use enduro_core::Error;
use enduro_core::conformance::{assert_rising_chain, eventually, recorder};
use enduro_file::{FileAtom, FileStore};

mod common;

use common::{contents, fresh, journal_atom, journal_path};

const BLOCK: u64 = 4096;

/// A journal of three records (values 1, 2, 3 over a snapshot of 0) at `dir/n.json`.
fn three_records(dir: &Path) -> (PathBuf, PathBuf) {
    let path = dir.join("n.json");
    let atom = journal_atom(&path, 0u64);
    for _ in 0..3 {
        atom.swap(|n| n + 1).unwrap();
    }
    (path.clone(), journal_path(&path))
}

#[test]
fn commits_append_records_at_block_boundaries_and_the_data_file_stays_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (path, journal) = three_records(dir.path());
    assert_eq!(fs::read_to_string(&path).unwrap(), "0", "the snapshot");
    let bytes = fs::read(&journal).unwrap();
    assert!(
        bytes.len() >= 1 << 20,
        "grown ahead of need in a large step"
    );
    assert_eq!(&bytes[..8], b"enduroJ1");
    for (i, value) in [b'1', b'2', b'3'].into_iter().enumerate() {
        let at = (BLOCK as usize) * (i + 1);
        assert_eq!(&bytes[at..at + 4], b"EJR1", "record {i} starts a block");
        assert_eq!(bytes[at + 48], value, "record {i} holds the value");
        assert!(
            bytes[at + 49..at + BLOCK as usize].iter().all(|b| *b == 0),
            "the rest of record {i}'s block is zeros"
        );
    }
    assert!(
        bytes[4 * BLOCK as usize..].iter().all(|b| *b == 0),
        "the space after the last record is zeros, written ahead"
    );
    // Every handle sees the value, whatever its mode.
    assert_eq!(fresh(&path, 0u64), 3);
    // One commit per record: the generation counts them.
    assert_eq!(FileStore::open(&path).unwrap().generation().unwrap(), 4);
}

#[test]
fn plain_and_journal_handles_on_one_path_always_agree() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.json");
    let journal = journal_atom(&path, 0u64);
    let plain = enduro_file::file_atom(0u64, &path).unwrap();
    let seen = recorder(&journal);
    let mut expected = 0;
    for round in 0..40u64 {
        // Runs of different lengths from each side.
        for _ in 0..round % 3 + 1 {
            expected += 1;
            assert_eq!(*journal.swap(|n| n + 1).unwrap(), expected);
        }
        assert!(journal_path(&path).exists(), "a journal commit keeps one");
        assert_eq!(*plain.refresh().unwrap(), expected, "round {round}");
        for _ in 0..round % 2 + 1 {
            expected += 1;
            assert_eq!(*plain.swap(|n| n + 1).unwrap(), expected);
        }
        // A plain commit leaves a plain file: the value in the data file, no journal.
        assert!(!journal_path(&path).exists(), "round {round}");
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            expected.to_string(),
            "round {round}"
        );
        assert_eq!(*journal.refresh().unwrap(), expected, "round {round}");
    }
    assert_rising_chain(&seen.lock().unwrap(), 0, expected);
}

#[test]
fn a_torn_tail_is_cut_at_open_and_the_next_record_goes_there() {
    let dir = tempfile::tempdir().unwrap();
    let (path, journal) = three_records(dir.path());
    let tail = 4 * BLOCK;
    // A record cut short by a crash: its head, then nothing.
    let torn = fs::OpenOptions::new().write(true).open(&journal).unwrap();
    torn.write_all_at(b"EJR1\x01\x02\x03\x04half a record", tail)
        .unwrap();
    drop(torn);
    let atom = journal_atom(&path, 0u64);
    assert_eq!(*atom.deref(), 3, "the torn record was never acknowledged");
    let bytes = fs::read(&journal).unwrap();
    assert!(
        bytes[tail as usize..(tail + BLOCK) as usize]
            .iter()
            .all(|b| *b == 0),
        "the torn tail is zeroed at open"
    );
    assert_eq!(*atom.swap(|n| n + 1).unwrap(), 4);
    let bytes = fs::read(&journal).unwrap();
    assert_eq!(&bytes[tail as usize..tail as usize + 4], b"EJR1");
    assert_eq!(fresh(&path, 0u64), 4);
}

#[test]
fn a_damaged_record_before_the_tail_is_corruption_named_by_offset_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (path, journal) = three_records(dir.path());
    // Damage to the second record's value, with the third intact after it.
    let file = fs::OpenOptions::new().write(true).open(&journal).unwrap();
    file.write_all_at(b"9", 2 * BLOCK + 48).unwrap();
    drop(file);
    let before = contents(dir.path());
    for journal_mode in [true, false] {
        let err = FileAtom::builder(&path)
            .journal(journal_mode)
            .open(0u64)
            .unwrap_err();
        match &err {
            Error::Corrupt {
                path: at, offset, ..
            } => {
                assert_eq!(at, &journal);
                assert_eq!(*offset, 2 * BLOCK);
            }
            other => panic!("not corruption: {other}"),
        }
        let message = err.to_string();
        assert!(
            message.contains(&journal.display().to_string()) && message.contains("8192"),
            "{message}"
        );
        assert_eq!(contents(dir.path()), before, "nothing was written");
    }
}

#[test]
fn a_damaged_header_over_records_is_corruption_and_a_blank_journal_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let (path, journal) = three_records(dir.path());
    let file = fs::OpenOptions::new().write(true).open(&journal).unwrap();
    file.write_all_at(&[0xff; 16], 0).unwrap();
    file.write_all_at(&[0xff; 16], 2048).unwrap();
    drop(file);
    let before = contents(dir.path());
    let err = FileAtom::builder(&path)
        .journal(true)
        .open(0u64)
        .unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { path: at, offset: 0, .. } if at == &journal),
        "{err}"
    );
    assert_eq!(contents(dir.path()), before, "nothing was written");

    // A journal a crash left blank (made, never headed) holds nothing: the data wins.
    fs::write(&journal, vec![0u8; 3 * BLOCK as usize]).unwrap();
    let atom = journal_atom(&path, 7u64);
    assert_eq!(*atom.deref(), 0, "the snapshot");
    assert_eq!(*atom.swap(|n| n + 1).unwrap(), 1);
    assert_eq!(fresh(&path, 0u64), 1);
}

#[test]
fn compaction_bounds_the_journal_and_every_value_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("list.json");
    let journal = journal_path(&path);
    // 2 KiB values with the smallest bound: compaction once the records pass 16 KiB.
    let atom = FileAtom::builder(&path)
        .journal(true)
        .journal_limit(0)
        .open(Vec::<String>::new())
        .unwrap();
    let seen = recorder(&atom);
    let mut snapshots = std::collections::BTreeSet::new();
    for i in 0..100 {
        atom.swap(|v| {
            let mut v = v.clone();
            v.push(format!("{i:0>200}"));
            if v.len() > 10 {
                v.remove(0);
            }
            v
        })
        .unwrap();
        snapshots.insert(fs::read(&path).unwrap());
        let reopened: Vec<String> = (*FileAtom::builder(&path)
            .journal(true)
            .open(Vec::new())
            .unwrap()
            .deref())
        .clone();
        assert_eq!(reopened, *atom.deref(), "after swap {i}");
        assert!(
            fs::metadata(&journal).unwrap().len() < 4 << 20,
            "the journal stays bounded"
        );
    }
    assert!(
        snapshots.len() > 10,
        "the data file took new snapshots: {}",
        snapshots.len()
    );
    assert_eq!(seen.lock().unwrap().len(), 100, "one transition per swap");
    assert_eq!(fresh(&path, Vec::<String>::new()), *atom.deref());
}

#[test]
fn the_journal_is_made_with_the_data_files_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret.json");
    drop(enduro_file::file_atom(0u64, &path).unwrap());
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    let atom = journal_atom(&path, 0u64);
    atom.swap(|n| n + 1).unwrap();
    let mode = fs::metadata(journal_path(&path))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "no wider than the data file");
}

#[test]
fn release_removes_the_journal_and_a_new_value_never_takes_up_old_records() {
    let dir = tempfile::tempdir().unwrap();
    let (path, journal) = three_records(dir.path());
    let kept = fs::read(&journal).unwrap();
    let atom = journal_atom(&path, 0u64);
    atom.release().unwrap();
    assert!(!journal.exists() && !path.exists());
    // Created again with the very bytes of the old snapshot: the value is the new one.
    let again = journal_atom(&path, 0u64);
    assert_eq!(*again.deref(), 0);
    assert_eq!(*again.swap(|n| n + 10).unwrap(), 10);
    drop(again);
    assert_eq!(fresh(&path, 0u64), 10);

    // A release cut short after the data file went: the journal is left alone beside no
    // data. Creating the value again must not take its records up either.
    let path2 = dir.path().join("m.json");
    drop(journal_atom(&path2, 0u64));
    fs::remove_file(&path2).unwrap();
    fs::write(journal_path(&path2), &kept).unwrap();
    let created = journal_atom(&path2, 0u64);
    assert_eq!(*created.deref(), 0);
    assert_eq!(*created.swap(|n| n + 1).unwrap(), 1);
    assert_eq!(fresh(&path2, 0u64), 1);
}

#[test]
fn a_data_file_replaced_by_hand_wins_over_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _journal) = three_records(dir.path());
    let atom = journal_atom(&path, 0u64);
    fs::write(&path, "42").unwrap();
    assert_eq!(*atom.refresh().unwrap(), 42);
    assert_eq!(*atom.swap(|n| n + 1).unwrap(), 43);
    assert_eq!(fresh(&path, 0u64), 43);
}

#[test]
fn a_live_atom_follows_another_handles_appends() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.json");
    let writer = journal_atom(&path, 0u64);
    let live = FileAtom::builder(&path).live(true).open(0u64).unwrap();
    let seen = recorder(&live);
    for n in 1..=20u64 {
        writer.swap(|v| v + 1).unwrap();
        eventually(&format!("the live atom at {n}"), || *live.deref() == n);
    }
    eventually("the live atom's watch at 20", || {
        seen.lock().unwrap().len() == 20
    });
    assert_rising_chain(&seen.lock().unwrap(), 0, 20);
}

#[test]
fn concurrent_swaps_share_flushes() {
    const THREADS: usize = 8;
    const EACH: u64 = 200;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.json");
    let atom = journal_atom(&path, 0u64);
    let start = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (atom, start) = (atom.clone(), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                for _ in 0..EACH {
                    atom.swap(|n| n + 1).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let swaps = THREADS as u64 * EACH;
    assert_eq!(*atom.deref(), swaps);
    assert_eq!(fresh(&path, 0u64), swaps);
    // Commits (one record, one flush each) = generation - 1 (the first is the creation).
    let commits = FileStore::open(&path).unwrap().generation().unwrap() - 1;
    assert!(
        commits < swaps,
        "{swaps} swaps from {THREADS} threads took {commits} commits: none shared a flush"
    );
}

#[test]
fn watches_of_a_refreshing_or_live_handle_see_one_transition_per_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.json");
    let writer = journal_atom(&path, 0u64);
    let reader = enduro_file::file_atom(0u64, &path).unwrap();
    let live = FileAtom::builder(&path).live(true).open(0u64).unwrap();
    let (read, followed) = (recorder(&reader), recorder(&live));
    for _ in 0..3 {
        // A burst of commits between two looks: each is a transition of its own.
        for _ in 0..7 {
            writer.swap(|n| n + 1).unwrap();
        }
        reader.refresh().unwrap();
    }
    eventually("the live atom's watch at 21", || {
        followed.lock().unwrap().last() == Some(&(20, 21))
    });
    for (who, seen) in [("refresh", read), ("live", followed)] {
        let seen = seen.lock().unwrap().clone();
        let steps: Vec<(u64, u64)> = (0..21).map(|n| (n, n + 1)).collect();
        assert_eq!(seen, steps, "{who}: one transition per record, in order");
    }
}

/// Bytes this thread has read through system calls so far (Linux's
/// `/proc/thread-self/io`; per thread, so that tests running beside it do not count).
fn bytes_read() -> Option<u64> {
    let io = fs::read_to_string("/proc/thread-self/io").ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .and_then(|n| n.trim().parse().ok())
}

#[test]
fn a_follower_reads_only_the_records_it_has_not_seen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.json");
    let writer = FileAtom::builder(&path)
        .journal(true)
        .journal_limit(u64::MAX)
        .open(0u64)
        .unwrap();
    for _ in 0..1000 {
        writer.swap(|n| n + 1).unwrap();
    }
    let reader = enduro_file::file_atom(0u64, &path).unwrap();
    assert_eq!(*reader.deref(), 1000);
    let journal_size = fs::metadata(journal_path(&path)).unwrap().len();
    for new in [1u64, 5] {
        for _ in 0..new {
            writer.swap(|n| n + 1).unwrap();
        }
        let Some(before) = bytes_read() else {
            return; // no /proc/thread-self/io here
        };
        reader.refresh().unwrap();
        let read = bytes_read().unwrap() - before;
        // The header block's copies, the lock file's header, and one block per new record,
        // not the 1,000 records before them (4 MiB).
        assert!(
            read <= 3 * BLOCK + new * BLOCK,
            "refreshing after {new} new records read {read} bytes of a {journal_size}-byte journal"
        );
    }
    assert_eq!(*reader.deref(), 1006);
}

#[test]
fn a_fifo_or_a_symlink_at_the_journal_path_is_refused_without_hanging_or_writing_through() {
    let dir = tempfile::tempdir().unwrap();
    let (path, journal) = three_records(dir.path());
    let elsewhere = dir.path().join("elsewhere");
    fs::write(&elsewhere, b"not a journal").unwrap();
    fs::remove_file(&journal).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &journal).unwrap();
    for journal_mode in [true, false] {
        let err = FileAtom::builder(&path)
            .journal(journal_mode)
            .open(0u64)
            .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidPath { path: at, .. } if at == &journal),
            "{err}"
        );
    }
    assert_eq!(fs::read(&elsewhere).unwrap(), b"not a journal");

    fs::remove_file(&journal).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&journal)
        .status()
        .unwrap();
    assert!(made.success());
    let err = FileAtom::builder(&path)
        .journal(true)
        .open(0u64)
        .unwrap_err();
    assert!(matches!(&err, Error::InvalidPath { .. }), "{err}");
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "0",
        "the snapshot untouched"
    );
}
