//! What an adversarial review did to file atoms, replayed: damaged lock files, special
//! files at the data path, directories moved under a running atom, names that are not
//! UTF-8 or are very long, paths that name no file. Data is never lost or overwritten, and
//! every refusal says what and where.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use enduro_core::Error;
use enduro_file::{FileAtom, file_atom};

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Runs `work` on a thread; fails the test if it has not returned within 10 s (a hang).
fn without_hanging<R: Send + 'static>(what: &str, work: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(work());
    });
    rx.recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("{what}: hung"))
}

fn lock_of(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap().to_str().unwrap();
    path.with_file_name(format!(".{name}.enduro-lock"))
}

/// Every way a lock file can be damaged: the data beside it wins, byte for byte, and the
/// lock file is repaired.
#[test]
fn a_damaged_lock_file_never_costs_the_data() {
    let damages: [(&str, Vec<u8>); 6] = [
        ("the old RELEASED marker", vec![0xff; 8]),
        ("an old 8-byte counter", 7u64.to_le_bytes().to_vec()),
        ("garbage", b"not a lock file at all, just text".to_vec()),
        ("a torn header", vec![b'e'; 20]),
        ("a huge file", vec![0xab; 1 << 20]),
        ("an empty file", Vec::new()),
    ];
    for (what, damage) in damages {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        drop(file_atom(41u64, &path).unwrap().swap(|n| n + 1).unwrap());
        let before = fs::read(&path).unwrap();
        fs::write(lock_of(&path), &damage).unwrap();

        let atom = file_atom(0u64, &path).unwrap();
        assert_eq!(*atom.deref(), 42, "{what}: the stored value wins over init");
        assert_eq!(fs::read(&path).unwrap(), before, "{what}: data untouched");
        assert_eq!(*atom.swap(|n| n + 1).unwrap(), 43, "{what}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "43", "{what}");
        assert_eq!(
            fs::metadata(lock_of(&path)).unwrap().len(),
            64,
            "{what}: the lock file was repaired"
        );
        assert_eq!(*file_atom(0u64, &path).unwrap().deref(), 43, "{what}");
    }
}

/// The same damage while atoms run: they go on (nobody is told "released", nothing is
/// lost), whichever of them meets it first.
#[test]
fn a_lock_file_damaged_or_deleted_under_running_atoms_is_repaired() {
    for damage in [Some(vec![0xffu8; 8]), Some(b"junk".to_vec()), None] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        let a = file_atom(0u64, &path).unwrap();
        let b = file_atom(0u64, &path).unwrap();
        a.swap(|n| n + 1).unwrap();
        match &damage {
            Some(bytes) => fs::write(lock_of(&path), bytes).unwrap(),
            None => fs::remove_file(lock_of(&path)).unwrap(),
        }
        assert_eq!(*b.swap(|n| n + 1).unwrap(), 2, "{damage:?}");
        assert_eq!(*a.swap(|n| n + 1).unwrap(), 3, "{damage:?}");
        assert_eq!(*b.refresh().unwrap(), 3, "{damage:?}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "3", "{damage:?}");
        assert_eq!(names_in(dir.path()), [".x.json.enduro-lock", "x.json"]);
    }
}

#[test]
fn something_else_at_the_lock_path_is_reported_and_the_data_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.json");
    fs::write(&path, "5").unwrap();
    fs::create_dir(lock_of(&path)).unwrap();
    let err = file_atom(0u64, &path).unwrap_err();
    assert!(err.to_string().contains(".x.json.enduro-lock"), "{err}");
    assert_eq!(fs::read_to_string(&path).unwrap(), "5");
}

/// A FIFO or a device at the data path is refused at open, at once (reading a FIFO would
/// hang; reading /dev/zero would never end), and so is one put there after open.
#[test]
fn special_files_at_the_data_path_are_refused_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.json");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let err = without_hanging("open on a FIFO", {
        let fifo = fifo.clone();
        move || file_atom(0u64, &fifo).unwrap_err()
    });
    assert!(matches!(err, Error::InvalidPath { .. }), "{err}");
    assert!(err.to_string().contains("FIFO"), "{err}");

    let zero = dir.path().join("zero.json");
    symlink("/dev/zero", &zero).unwrap();
    let err = without_hanging("open on /dev/zero", move || {
        file_atom(0u64, &zero).unwrap_err()
    });
    assert!(err.to_string().contains("character device"), "{err}");

    // Replaced by a FIFO after open: the next operations refuse it, none hangs.
    let path = dir.path().join("later.json");
    let atom = file_atom(1u64, &path).unwrap();
    fs::remove_file(&path).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .unwrap();
    assert!(made.success());
    let (swapped, refreshed) = without_hanging("swap on a FIFO", move || {
        (
            atom.swap(|n| n + 1).unwrap_err(),
            atom.refresh().unwrap_err(),
        )
    });
    assert!(swapped.to_string().contains("FIFO"), "{swapped}");
    assert!(refreshed.to_string().contains("FIFO"), "{refreshed}");
}

/// A symlinked directory on the path is resolved at open: retargeting it later does not
/// move the atom (it keeps committing into, and fsyncing, the directory it opened).
#[test]
fn a_directory_symlink_retargeted_under_a_running_atom_does_not_move_it() {
    let dir = tempfile::tempdir().unwrap();
    let (r1, r2) = (dir.path().join("r1"), dir.path().join("r2"));
    fs::create_dir(&r1).unwrap();
    fs::create_dir(&r2).unwrap();
    let cur = dir.path().join("cur");
    symlink(&r1, &cur).unwrap();
    let atom = file_atom(1u64, cur.join("x.json")).unwrap();
    fs::remove_file(&cur).unwrap();
    symlink(&r2, &cur).unwrap();
    assert_eq!(*atom.swap(|n| n + 1).unwrap(), 2);
    assert_eq!(fs::read_to_string(r1.join("x.json")).unwrap(), "2");
    assert!(names_in(&r2).is_empty(), "nothing went to the new target");
}

/// The directory itself moved away and another made in its place: refused, nothing
/// written anywhere, the value where it was.
#[test]
fn a_directory_replaced_under_a_running_atom_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    fs::create_dir(&home).unwrap();
    let atom = file_atom(1u64, home.join("x.json")).unwrap();
    let moved = dir.path().join("moved");
    fs::rename(&home, &moved).unwrap();
    fs::create_dir(&home).unwrap();
    let err = atom.swap(|n| n + 1).unwrap_err();
    assert!(err.to_string().contains("replaced"), "{err}");
    assert_eq!(*atom.deref(), 1);
    assert!(
        names_in(&home).is_empty(),
        "nothing written into the new directory"
    );
    assert_eq!(fs::read_to_string(moved.join("x.json")).unwrap(), "1");
}

/// A symlink to the data file is followed once, at open: retargeting the link later does
/// not move the atom (documented).
#[test]
fn a_file_symlink_retargeted_after_open_keeps_its_first_target() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.json"), dir.path().join("b.json"));
    fs::write(&a, "1").unwrap();
    fs::write(&b, "100").unwrap();
    let link = dir.path().join("link.json");
    symlink(&a, &link).unwrap();
    let atom = file_atom(0u64, &link).unwrap();
    fs::remove_file(&link).unwrap();
    symlink(&b, &link).unwrap();
    assert_eq!(*atom.swap(|n| n + 1).unwrap(), 2);
    assert_eq!(fs::read_to_string(&a).unwrap(), "2");
    assert_eq!(fs::read_to_string(&b).unwrap(), "100");
}

/// Two names that differ only in bytes that are not UTF-8 have sidecars of their own:
/// releasing one never touches the other.
#[test]
fn names_that_are_not_utf8_keep_their_own_sidecars() {
    let dir = tempfile::tempdir().unwrap();
    let one = dir.path().join(OsStr::from_bytes(b"a\xff.json"));
    let two = dir.path().join(OsStr::from_bytes(b"a\xfe.json"));
    let first = file_atom(1u64, &one).unwrap();
    let second = file_atom(2u64, &two).unwrap();
    first.swap(|n| n + 1).unwrap();
    first.release().unwrap();
    assert_eq!(
        *second.swap(|n| n + 1).unwrap(),
        3,
        "not released by the other"
    );
    assert!(!second.is_released());
    assert_eq!(fs::read_to_string(&two).unwrap(), "3");
    assert!(!one.exists());
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        2,
        "its data file and lock"
    );
}

/// Every name the file system takes works, up to 255 bytes: long names get shortened,
/// hashed sidecar names, distinct for names that differ only at the end.
#[test]
fn names_up_to_255_bytes_work() {
    let dir = tempfile::tempdir().unwrap();
    for len in [200, 223, 224, 240, 250, 255] {
        let name = format!("{}.json", "n".repeat(len - 5));
        let path = dir.path().join(&name);
        let atom = file_atom(len as u64, &path).unwrap();
        assert_eq!(*atom.swap(|n| n + 1).unwrap(), len as u64 + 1, "{len}");
        drop(atom);
        let atom = file_atom(0u64, &path).unwrap();
        assert_eq!(*atom.deref(), len as u64 + 1, "{len}");
        atom.release().unwrap();
        assert!(
            names_in(dir.path()).is_empty(),
            "{len}: release removes all"
        );
    }
    let a = dir.path().join(format!("{}a", "n".repeat(254)));
    let b = dir.path().join(format!("{}b", "n".repeat(254)));
    let (atom_a, atom_b) = (file_atom(1u8, &a).unwrap(), file_atom(2u8, &b).unwrap());
    atom_a.release().unwrap();
    assert_eq!(*atom_b.swap(|n| n + 1).unwrap(), 3, "their sidecars differ");
}

/// Paths that name no file, or name one of enduro's own sidecar files, are refused
/// before anything is created.
#[test]
fn paths_that_name_no_file_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for bad in [
        "x.json/",
        "newdir/..",
        "newdir/.",
        "other/x.json/",
        ".x.json.enduro-lock",
        "y.enduro-pending",
        ".x.json.enduro-journal",
    ] {
        let err = file_atom(0u64, dir.path().join(bad)).unwrap_err();
        assert!(matches!(err, Error::InvalidPath { .. }), "{bad}: {err}");
        assert!(
            names_in(dir.path()).is_empty(),
            "{bad}: left {:?}",
            names_in(dir.path())
        );
    }
}

/// Deleting the data file by hand while atoms run counts as a release (as deleting a
/// database row does); the next open starts afresh.
#[test]
fn a_data_file_deleted_by_hand_counts_as_released() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.json");
    let atom = FileAtom::builder(&path).open(5u64).unwrap();
    fs::remove_file(&path).unwrap();
    assert!(matches!(atom.swap(|n| n + 1), Err(Error::Released)));
    assert!(!path.exists(), "a released handle recreates nothing");
    assert_eq!(*file_atom(9u64, &path).unwrap().deref(), 9);
}

/// A handle of a value that was released and created again (by another handle) reports
/// `Released`: it never takes the new value for its own.
#[test]
fn a_stale_handle_never_writes_over_a_value_created_after_a_release() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.json");
    let stale = file_atom(1u64, &path).unwrap();
    file_atom(0u64, &path).unwrap().release().unwrap();
    let fresh = file_atom(100u64, &path).unwrap();
    assert!(matches!(stale.swap(|n| n + 1), Err(Error::Released)));
    assert!(matches!(stale.reset(7), Err(Error::Released)));
    assert_eq!(*fresh.swap(|n| n + 1).unwrap(), 101);
    assert_eq!(fs::read_to_string(&path).unwrap(), "101");
}
