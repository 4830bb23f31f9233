//! A full disk loses nothing: on a small private tmpfs, a commit that hits ENOSPC returns
//! a clear error naming the pending file, the previous value stays intact on disk and in
//! memory, the pending file is removed, and swaps succeed again once space is freed.
//! In journal mode, commits go on while the journal's room lasts, a commit that needs more
//! fails as a whole naming the journal, and a compaction that cannot run fails no commit.
//!
//! Mounting needs root (CI runs as root). Without it the tests say why and pass — unless
//! `CI=true`, where they fail: CI never skips.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::fs::File;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

mod common;

use common::{fresh, journal_atom, names};
use enduro_core::{Atom, Error};
use enduro_file::FileAtom;

/// A tmpfs of a given size mounted on a fresh temp dir; unmounted on drop, also when the
/// test fails.
struct SmallFs {
    dir: tempfile::TempDir,
    /// The tests of this file run one at a time: a `mount` or `umount` another test forks
    /// while this one holds its filler file open would inherit that descriptor until it
    /// execs, keeping the space "in use" after the filler is deleted.
    _alone: std::sync::MutexGuard<'static, ()>,
}

static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl SmallFs {
    fn mount(size: &str) -> Result<SmallFs, String> {
        let alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().map_err(|e| format!("cannot make a temp dir: {e}"))?;
        let out = run_patiently(|| {
            let mut mount = Command::new("mount");
            mount
                .args([
                    "-t",
                    "tmpfs",
                    "-o",
                    &format!("size={size}"),
                    "enduro-disk-full",
                ])
                .arg(dir.path());
            mount
        })
        .map_err(|e| format!("cannot run `mount`: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "`mount -t tmpfs` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(SmallFs { dir, _alone: alone })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let umount = |lazy: bool| {
            run_patiently(|| {
                let mut umount = Command::new("umount");
                if lazy {
                    umount.arg("-l");
                }
                umount.arg(self.dir.path());
                umount
            })
        };
        if !umount(false).is_ok_and(|out| out.status.success()) {
            // Something still has a file open there: detach it anyway.
            let _ = umount(true);
        }
    }
}

/// Runs the command `make` builds to its end and returns its output; one that neither
/// ends nor writes anything for 20 s is killed and run again (up to 3 times). Under
/// qemu-user, a process forked while another thread of the emulator is busy can hang
/// before it execs (CI saw `mount` hang so on armv7); `mount` and `umount` of a fresh
/// tmpfs are quick, so a slow one is that, not real work.
fn run_patiently(make: impl Fn() -> Command) -> std::io::Result<std::process::Output> {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let mut tries = 0;
    loop {
        tries += 1;
        let mut child = make()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let started = Instant::now();
        while child.try_wait()?.is_none() && started.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(10));
        }
        if child.try_wait()?.is_some() || tries == 3 {
            return child.wait_with_output();
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A small file system, or `None` (after saying why) where mounting is not permitted and
/// we are not in CI.
fn small_fs(size: &str) -> Option<SmallFs> {
    match SmallFs::mount(size) {
        Ok(fs) => Some(fs),
        Err(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true, so the disk-full test must run, but it cannot mount a tmpfs: {why}")
        }
        Err(why) => {
            eprintln!(
                "disk_full: skipped: cannot mount a small tmpfs ({why}); run as root to \
                 include it (with CI=true this is a failure)"
            );
            None
        }
    }
}

/// Fills the file system holding `dir` with `dir/filler` until ENOSPC.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = File::create(&path).unwrap();
    let chunk = vec![0xa5u8; 4096];
    loop {
        match file.write_all(&chunk) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::StorageFull => break,
            Err(e) => panic!("cannot fill the file system: {e}"),
        }
    }
    // Whatever is left, smaller than a chunk.
    while file.write(&[0xa5]).is_ok_and(|n| n == 1) {}
    path
}

fn recorder<T: enduro_core::Value + Clone>(atom: &Atom<T>) -> Arc<Mutex<Vec<(T, T)>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    atom.add_watch("recorder", move |old: &T, new: &T| {
        log.lock().unwrap().push((old.clone(), new.clone()));
    });
    seen
}

/// Checks that `err` is a clear ENOSPC error about a pending file of `name` in `dir`.
fn assert_clear_enospc(err: &Error, dir: &Path, name: &str) {
    let message = err.to_string();
    println!("disk full, as reported: {message}");
    let Error::Io { path, source, .. } = err else {
        panic!("expected an I/O error, got: {message}");
    };
    assert_eq!(source.kind(), ErrorKind::StorageFull, "{message}");
    assert_eq!(path.parent(), Some(dir), "{message}");
    let file = path.file_name().unwrap().to_string_lossy();
    assert!(
        file.starts_with(&format!(".{name}.")) && file.ends_with(".enduro-pending"),
        "the error names the pending file: {message}"
    );
    assert!(message.contains("pending file"), "{message}");
    assert!(message.contains(&*path.to_string_lossy()), "{message}");
    assert!(message.contains("No space left on device"), "{message}");
}

#[test]
fn a_commit_that_hits_enospc_fails_clearly_and_loses_nothing() {
    let Some(fs) = small_fs("256k") else { return };
    let dir = fs.path();
    let path = dir.join("notes.json");
    let atom = enduro_file::file_atom(vec!["first".to_string()], &path).unwrap();
    atom.swap(|v| [v.as_slice(), &["second".to_string()]].concat())
        .unwrap();
    let seen = recorder(&atom);
    let before = std::fs::read(&path).unwrap();
    let value_before = atom.deref();

    let filler = fill(dir);
    let err = atom
        .swap(|v| [v.as_slice(), &["third".to_string()]].concat())
        .unwrap_err();
    assert_clear_enospc(&err, dir, "notes.json");
    assert_eq!(atom.deref(), value_before, "memory unchanged");
    assert_eq!(std::fs::read(&path).unwrap(), before, "file unchanged");
    assert!(seen.lock().unwrap().is_empty(), "no watch fired");
    assert_eq!(
        names(dir),
        [".notes.json.enduro-lock", "filler", "notes.json"],
        "the pending file is removed"
    );
    // Still readable, by this atom and a fresh open, with the disk full.
    assert_eq!(atom.refresh().unwrap(), value_before);
    let reader = enduro_file::file_atom(Vec::<String>::new(), &path).unwrap();
    assert_eq!(reader.deref(), value_before);

    std::fs::remove_file(&filler).unwrap();
    let after = atom
        .swap(|v| [v.as_slice(), &["third".to_string()]].concat())
        .unwrap();
    assert_eq!(*after, ["first", "second", "third"]);
    assert_eq!(
        *seen.lock().unwrap(),
        [(value_before.to_vec(), after.to_vec())]
    );
    assert_eq!(*reader.refresh().unwrap(), *after);
    assert_eq!(names(dir), [".notes.json.enduro-lock", "notes.json"]);
}

#[test]
fn a_large_value_hitting_enospc_mid_encoding_is_an_io_error_and_loses_nothing() {
    // Larger than the 64 KiB write buffer: the disk fills while the codec is still
    // writing, so the error surfaces through the codec. It must still be reported as the
    // I/O error it is, naming the pending file.
    let Some(fs) = small_fs("1m") else { return };
    let dir = fs.path();
    let path = dir.join("big.json");
    let atom = enduro_file::file_atom(String::from("small"), &path).unwrap();

    // Leave about 128 KiB free.
    let spare = dir.join("spare");
    std::fs::write(&spare, vec![0u8; 128 * 1024]).unwrap();
    let filler = fill(dir);
    std::fs::remove_file(&spare).unwrap();

    let big = "x".repeat(400 * 1024);
    let err = atom.reset(big.clone()).unwrap_err();
    assert_clear_enospc(&err, dir, "big.json");
    assert_eq!(*atom.deref(), "small");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "\"small\"");
    assert_eq!(names(dir), [".big.json.enduro-lock", "big.json", "filler"]);

    std::fs::remove_file(&filler).unwrap();
    assert_eq!(atom.reset(big.clone()).unwrap().len(), big.len());
    let fresh = enduro_file::file_atom(String::new(), &path).unwrap();
    assert_eq!(*fresh.deref(), big);
    assert_eq!(names(dir), [".big.json.enduro-lock", "big.json"]);
}

#[test]
fn the_lock_file_takes_its_space_at_open_so_a_commit_never_fails_half_way() {
    // A data file written by hand, so there is no lock file yet: opening writes its header
    // (a page), so that no commit ever needs space for it between writing the pending file
    // and renaming it. Then leave exactly one free page — the pending file takes it — and
    // keep the old data file open, so that the rename frees nothing: the commit succeeds.
    // With no page free at all, it fails as a whole, before the rename: a swap that reports
    // an error must not have replaced the value (a caller would retry it and apply it
    // twice).
    let Some(fs) = small_fs("64k") else { return };
    let dir = fs.path();
    let path = dir.join("counter.json");
    std::fs::write(&path, "5").unwrap();
    let atom = enduro_file::file_atom(0u64, &path).unwrap();
    assert_eq!(*atom.deref(), 5);
    let _old_data_kept_open = File::open(&path).unwrap();

    let spare = dir.join("spare");
    std::fs::write(&spare, vec![0u8; 4096]).unwrap();
    let filler = fill(dir);
    std::fs::remove_file(&spare).unwrap();
    assert_eq!(*atom.swap(|n| n + 1).unwrap(), 6);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "6");

    let _new_data_kept_open = File::open(&path).unwrap();
    let err = atom.swap(|n| n + 1).unwrap_err();
    println!("disk full, as reported: {err}");
    assert!(
        matches!(&err, Error::Io { source, .. } if source.kind() == ErrorKind::StorageFull),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "6",
        "the swap failed, so the file must not change"
    );
    assert_eq!(*atom.deref(), 6, "memory unchanged");
    assert_eq!(*atom.refresh().unwrap(), 6, "and nothing to pick up either");
    assert_eq!(
        names(dir),
        [".counter.json.enduro-lock", "counter.json", "filler"]
    );

    std::fs::remove_file(&filler).unwrap();
    assert_eq!(*atom.swap(|n| n + 1).unwrap(), 7);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "7");
}

// Journal mode. A journal commit appends a record into space the journal wrote with zeros
// before (it grows in steps of at least 1 MiB): on a full disk, commits go on while that
// room lasts, and the one that needs the journal to grow fails as a whole. A compaction
// (the value written as a new data file) that meets a full disk does not fail the commit,
// which the journal already holds.

/// The journal beside the data file `NAME` in `dir`.
fn journal_of(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(".{name}.enduro-journal"))
}

/// `list` with `n` appended.
fn pushed(list: &[u32], n: u32) -> Vec<u32> {
    let mut list = list.to_vec();
    list.push(n);
    list
}

/// Checks that `err` is a clear ENOSPC error about the journal `journal`.
fn assert_clear_journal_enospc(err: &Error, journal: &Path) {
    let message = err.to_string();
    println!("disk full, as reported: {message}");
    let Error::Io { path, source, .. } = err else {
        panic!("expected an I/O error, got: {message}");
    };
    assert_eq!(source.kind(), ErrorKind::StorageFull, "{message}");
    assert_eq!(path, journal, "the error names the journal: {message}");
    assert!(message.contains("journal"), "{message}");
    assert!(message.contains(&*journal.to_string_lossy()), "{message}");
    assert!(message.contains("No space left on device"), "{message}");
}

/// Swaps `atom` (a list) with the next number appended, until a swap fails: checks each
/// acknowledged value against `acked` and keeps it there; returns the error.
fn append_until_error(atom: &Atom<Vec<u32>>, acked: &mut Vec<u32>) -> Error {
    loop {
        let n = acked.len() as u32;
        match atom.swap(|v| pushed(v, n)) {
            Ok(new) => {
                assert_eq!(*new, pushed(acked, n));
                *acked = new.to_vec();
            }
            Err(e) => return e,
        }
        assert!(n < 100_000, "the journal never ran out of room");
    }
}

/// After a failed swap of `atom`, whose acknowledged value is `acked`: memory, watches
/// (`seen`, one per acknowledged swap after the first) and the store are unchanged.
fn assert_unchanged(
    atom: &Atom<Vec<u32>>,
    path: &Path,
    acked: &[u32],
    seen: &Mutex<Vec<(Vec<u32>, Vec<u32>)>>,
) {
    assert_eq!(*atom.deref(), acked, "memory unchanged");
    {
        let seen = seen.lock().unwrap();
        assert_eq!(
            seen.len(),
            acked.len() - 1,
            "one watch per acknowledged swap"
        );
        if let Some((_, new)) = seen.last() {
            assert_eq!(new, acked, "no watch fired for the failed swap");
        }
    }
    // Still readable, by this atom and fresh opens, with the disk full.
    assert_eq!(*atom.refresh().unwrap(), acked);
    assert_eq!(
        fresh(path, Vec::<u32>::new()),
        acked,
        "the store is unchanged"
    );
}

#[test]
fn a_journal_append_that_needs_the_journal_to_grow_on_a_full_disk_fails_clearly_and_loses_nothing()
{
    let Some(fs) = small_fs("4m") else { return };
    let dir = fs.path();
    let path = dir.join("log.json");
    let journal = journal_of(dir, "log.json");
    let atom = journal_atom(&path, Vec::<u32>::new());
    // The first swap starts the journal, with room for more records.
    atom.swap(|v| pushed(v, 0)).unwrap();
    let room = std::fs::metadata(&journal).unwrap().len();
    let seen = recorder(&atom);

    // 40 KiB kept aside, to be freed later: less than the journal grows by.
    let spare = dir.join("spare");
    std::fs::write(&spare, vec![0u8; 40 * 1024]).unwrap();
    let filler = fill(dir);
    let mut acked = atom.deref().to_vec();
    let err = append_until_error(&atom, &mut acked);
    let records = acked.len() as u64;
    println!("{records} records in a journal of {room} bytes");
    // One 4 KiB block each (the values are small), after the header's block: the swaps
    // went on until the journal's room was (nearly) used up.
    assert!(records > 1, "no swap succeeded on the full disk");
    assert!(
        (records + 1) * 4096 <= room,
        "{records} records in {room} bytes"
    );
    assert!(
        room - (records + 1) * 4096 <= 2 * 4096,
        "{records} records left most of the {room} bytes unused"
    );
    assert_eq!(std::fs::metadata(&journal).unwrap().len(), room);
    assert_clear_journal_enospc(&err, &journal);
    assert_unchanged(&atom, &path, &acked, &seen);
    assert_eq!(
        names(dir),
        [
            ".log.json.enduro-journal",
            ".log.json.enduro-lock",
            "filler",
            "log.json",
            "spare"
        ]
    );

    // Room for part of a growth: it fails as a whole too, and the zeros it could write are
    // cut off again (unflushed zeros must not take records: their flush would carry the
    // size change), so every swap fails until a whole growth fits.
    std::fs::remove_file(&spare).unwrap();
    for _ in 0..3 {
        let err = append_until_error(&atom, &mut acked);
        assert_clear_journal_enospc(&err, &journal);
        assert_eq!(
            acked.len() as u64,
            records,
            "no record without a flushed growth"
        );
        assert_unchanged(&atom, &path, &acked, &seen);
        assert_eq!(
            std::fs::metadata(&journal).unwrap().len(),
            room,
            "the partial growth is cut off"
        );
    }
    let grown = room;

    std::fs::remove_file(&filler).unwrap();
    let n = acked.len() as u32;
    let after = atom.swap(|v| pushed(v, n)).unwrap();
    assert_eq!(*after, pushed(&acked, n));
    assert!(
        std::fs::metadata(&journal).unwrap().len() > grown,
        "the journal grew"
    );
    assert_eq!(seen.lock().unwrap().len(), n as usize);
    // Every acknowledged swap, in order, and nothing else.
    assert_eq!(
        fresh(&path, Vec::<u32>::new()),
        (0..=n).collect::<Vec<u32>>()
    );
    assert_eq!(
        names(dir),
        [
            ".log.json.enduro-journal",
            ".log.json.enduro-lock",
            "log.json"
        ]
    );
}

#[test]
fn a_journal_that_cannot_start_on_a_full_disk_fails_the_commit_and_changes_nothing() {
    // The first journal commit makes the journal (its header, then zeros): on a full disk
    // it cannot, and the commit fails as a whole.
    let Some(fs) = small_fs("4m") else { return };
    let dir = fs.path();
    let path = dir.join("first.json");
    let journal = journal_of(dir, "first.json");
    let atom = journal_atom(&path, vec![0u32]);
    let seen = recorder(&atom);
    let data = std::fs::read(&path).unwrap();

    let filler = fill(dir);
    let err = atom.swap(|v| pushed(v, 1)).unwrap_err();
    assert_clear_journal_enospc(&err, &journal);
    let acked = [0];
    assert_unchanged(&atom, &path, &acked, &seen);
    assert_eq!(std::fs::read(&path).unwrap(), data, "data file unchanged");
    // The journal file was made before its header failed: it may be left, empty (as a
    // crash right after making it would leave it). Fresh opens ignored it, above.
    let left = std::fs::metadata(&journal).map(|m| m.len()).ok();
    assert!(
        matches!(left, None | Some(0)),
        "journal left: {left:?} bytes"
    );

    // The next commits start the journal over in that file, and must not lose a record.
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(*atom.swap(|v| pushed(v, 1)).unwrap(), [0, 1]);
    assert_eq!(*atom.swap(|v| pushed(v, 2)).unwrap(), [0, 1, 2]);
    assert_eq!(seen.lock().unwrap().len(), 2);
    let header = std::fs::read(&journal).unwrap();
    assert!(
        header.len() >= 4096 && header[..4096].iter().any(|b| *b != 0),
        "the journal's header is there (not written over with zeros)"
    );
    assert_eq!(
        fresh(&path, Vec::<u32>::new()),
        [0, 1, 2],
        "both acknowledged swaps survive a fresh open"
    );
    assert_eq!(
        names(dir),
        [
            ".first.json.enduro-journal",
            ".first.json.enduro-lock",
            "first.json"
        ]
    );
}

#[test]
fn a_compaction_that_meets_a_full_disk_fails_quietly_and_every_commit_stays_in_the_journal() {
    // A value of about 10 KB and the smallest limit: compaction is due once the records
    // take more than eight times the value (three blocks each), so after a few commits.
    let Some(fs) = small_fs("4m") else { return };
    let dir = fs.path();
    let path = dir.join("big.json");
    let pad = "x".repeat(10_000);
    let atom = FileAtom::builder(&path)
        .journal(true)
        .journal_limit(1)
        .open((0u32, pad.clone()))
        .unwrap();
    atom.swap(|(n, p)| (n + 1, p.clone())).unwrap();
    let journal = journal_of(dir, "big.json");
    let room = std::fs::metadata(&journal).unwrap().len();
    let snapshot = std::fs::read(&path).unwrap();

    let filler = fill(dir);
    // Three times as many commits as the bound allows: compaction is tried at each of the
    // last ones, and fails (its pending file cannot be written).
    let commits = 3 * (8 * snapshot.len() / (3 * 4096) + 1) as u32;
    for _ in 0..commits {
        let before = atom.deref().0;
        let after = atom.swap(|(n, p)| (n + 1, p.clone())).unwrap();
        assert_eq!(*after, (before + 1, pad.clone()));
    }
    let latest = (commits + 1, pad.clone());
    assert_eq!(*atom.deref(), latest);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        snapshot,
        "no compaction could run: the data file is the first snapshot"
    );
    assert_eq!(std::fs::metadata(&journal).unwrap().len(), room);
    assert_eq!(
        names(dir),
        [
            ".big.json.enduro-journal",
            ".big.json.enduro-lock",
            "big.json",
            "filler"
        ],
        "no pending file left behind"
    );
    assert_eq!(*atom.refresh().unwrap(), latest);
    assert_eq!(
        fresh(&path, (0, String::new())),
        latest,
        "durable in the journal"
    );

    std::fs::remove_file(&filler).unwrap();
    let after = atom.swap(|(n, p)| (n + 1, p.clone())).unwrap();
    let latest = (commits + 2, pad.clone());
    assert_eq!(*after, latest);
    let data: (u32, String) = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(
        data, latest,
        "the next commit compacted: the data file is the value"
    );
    assert_eq!(fresh(&path, (0, String::new())), latest);
    // And commits go on over the new snapshot.
    let after = atom.swap(|(n, p)| (n + 1, p.clone())).unwrap();
    assert_eq!(*after, (commits + 3, pad.clone()));
    assert_eq!(fresh(&path, (0, String::new())), *after);
    assert_eq!(
        names(dir),
        [
            ".big.json.enduro-journal",
            ".big.json.enduro-lock",
            "big.json"
        ]
    );
}

#[test]
fn a_plain_commit_over_a_journal_on_a_full_disk_fails_clearly_and_keeps_the_records() {
    // A plain handle's commit first writes the journal's value as a snapshot (by rename),
    // then removes the journal: on a full disk the snapshot cannot be written, and the
    // journal must stay whole.
    let Some(fs) = small_fs("4m") else { return };
    let dir = fs.path();
    let path = dir.join("mixed.json");
    let journal = journal_of(dir, "mixed.json");
    let journaled = journal_atom(&path, Vec::<u32>::new());
    for n in 0..5 {
        journaled.swap(|v| pushed(v, n)).unwrap();
    }
    let latest = journaled.deref().to_vec();
    let plain = enduro_file::file_atom(Vec::<u32>::new(), &path).unwrap();
    assert_eq!(*plain.deref(), latest);
    let seen = recorder(&plain);
    let data = std::fs::read(&path).unwrap();
    let records = std::fs::read(&journal).unwrap();

    let filler = fill(dir);
    let err = plain.swap(|v| pushed(v, 5)).unwrap_err();
    assert_clear_enospc(&err, dir, "mixed.json");
    assert_eq!(*plain.deref(), latest, "memory unchanged");
    assert!(seen.lock().unwrap().is_empty(), "no watch fired");
    assert_eq!(std::fs::read(&path).unwrap(), data, "data file unchanged");
    assert_eq!(
        std::fs::read(&journal).unwrap(),
        records,
        "journal unchanged"
    );
    assert_eq!(
        names(dir),
        [
            ".mixed.json.enduro-journal",
            ".mixed.json.enduro-lock",
            "filler",
            "mixed.json"
        ]
    );
    assert_eq!(*plain.refresh().unwrap(), latest);
    assert_eq!(*journaled.refresh().unwrap(), latest);
    assert_eq!(
        fresh(&path, Vec::<u32>::new()),
        latest,
        "the records are all there"
    );

    std::fs::remove_file(&filler).unwrap();
    let after = plain.swap(|v| pushed(v, 5)).unwrap();
    assert_eq!(*after, pushed(&latest, 5));
    assert_eq!(*seen.lock().unwrap(), [(latest.clone(), after.to_vec())]);
    assert_eq!(names(dir), [".mixed.json.enduro-lock", "mixed.json"]);
    let on_disk: Vec<u32> = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(on_disk, *after);
    // The journal handle builds on it.
    assert_eq!(
        *journaled.swap(|v| pushed(v, 6)).unwrap(),
        (0..=6).collect::<Vec<u32>>()
    );
    assert_eq!(
        fresh(&path, Vec::<u32>::new()),
        (0..=6).collect::<Vec<u32>>()
    );
}
