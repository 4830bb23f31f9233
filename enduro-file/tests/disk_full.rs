//! A full disk loses nothing: on a small private tmpfs, a commit that hits ENOSPC returns
//! a clear error naming the pending file, the previous value stays intact on disk and in
//! memory, the pending file is removed, and swaps succeed again once space is freed.
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

use common::names;
use enduro_core::{Atom, Error};

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
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "enduro-disk-full",
            ])
            .arg(dir.path())
            .output()
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
        let unmounted = Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Something still has a file open there: detach it anyway.
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
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
