//! What is particular to file atoms: the durable-replace details, paths, permissions,
//! symlinks, the pending dir, and file-system failures.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

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

#[test]
fn commits_leave_only_the_data_file_and_its_lock() {
    let dir = tempfile::tempdir().unwrap();
    let atom = file_atom(0u32, dir.path().join("n.json")).unwrap();
    for _ in 0..20 {
        atom.swap(|n| n + 1).unwrap();
    }
    assert_eq!(names_in(dir.path()), [".n.json.enduro-lock", "n.json"]);
    assert_eq!(fs::read_to_string(dir.path().join("n.json")).unwrap(), "20");
}

#[test]
fn missing_parent_directories_are_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/c/state.json");
    file_atom("x".to_string(), &path).unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), "\"x\"");
}

#[test]
fn existing_permissions_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret.json");
    fs::write(&path, "1").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    let atom = file_atom(0u32, &path).unwrap();
    atom.swap(|n| n + 1).unwrap();
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o640);
    assert_eq!(fs::read_to_string(&path).unwrap(), "2");
}

#[test]
fn a_symlinked_path_updates_its_target() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real/state.json");
    fs::create_dir_all(real.parent().unwrap()).unwrap();
    fs::write(&real, "5").unwrap();
    let link = dir.path().join("link.json");
    symlink("real/state.json", &link).unwrap();
    let atom = file_atom(0u32, &link).unwrap();
    assert_eq!(*atom.deref(), 5);
    atom.swap(|n| n + 1).unwrap();
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read_to_string(&real).unwrap(), "6");
    assert!(
        atom.resource().contains("real/state.json"),
        "{}",
        atom.resource()
    );
}

#[test]
fn a_dangling_symlink_creates_its_target() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("link.json");
    symlink(dir.path().join("later/made.json"), &link).unwrap();
    file_atom(3u8, &link).unwrap();
    assert_eq!(
        fs::read_to_string(dir.path().join("later/made.json")).unwrap(),
        "3"
    );
}

#[test]
fn pretty_json_is_indented_and_ends_with_a_newline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.json");
    let atom = FileAtom::builder(&path)
        .pretty(true)
        .open(vec![1, 2])
        .unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), "[\n  1,\n  2\n]\n");
    atom.reset(vec![]).unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), "[]\n");
}

#[test]
fn a_path_that_is_a_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = file_atom(0u8, dir.path()).unwrap_err();
    assert!(matches!(err, Error::InvalidPath { .. }), "{err}");
    assert!(err.to_string().contains("is a directory"), "{err}");
}

#[test]
fn a_parent_that_is_a_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain");
    fs::write(&file, "not a dir").unwrap();
    for path in [file.join("x.json"), file.join("deeper/x.json")] {
        let err = file_atom(0u8, &path).unwrap_err();
        assert!(matches!(err, Error::InvalidPath { .. }), "{err}");
        assert!(err.to_string().contains("plain` is a file"), "{err}");
    }
    assert_eq!(fs::read_to_string(&file).unwrap(), "not a dir");
}

#[test]
fn a_pending_dir_on_the_same_file_system_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let pending = dir.path().join("pending");
    let path = dir.path().join("data/v.json");
    let atom = FileAtom::builder(&path)
        .pending_dir(&pending)
        .open(1u32)
        .unwrap();
    atom.swap(|n| n + 1).unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), "2");
    assert!(names_in(&pending).is_empty(), "no pending file left behind");
}

#[test]
fn a_pending_dir_on_another_file_system_fails_clearly() {
    // /dev/shm is a tmpfs on Linux, while temp dirs here are on the main disk.
    let Ok(shm) = tempfile::tempdir_in("/dev/shm") else {
        return assert_not_ci("no /dev/shm");
    };
    let dir = tempfile::tempdir().unwrap();
    if same_device(shm.path(), dir.path()) {
        return assert_not_ci("/dev/shm is on the same file system as the temp dir");
    }
    let path = dir.path().join("v.json");
    // Refused at open, before anything is written, rather than at every swap.
    let err = FileAtom::builder(&path)
        .pending_dir(shm.path())
        .open(1u32)
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&*shm.path().to_string_lossy()),
        "names the pending dir: {text}"
    );
    assert!(text.contains("same file system"), "says what to do: {text}");
    assert!(names_in(dir.path()).is_empty(), "nothing was created");
    assert!(names_in(shm.path()).is_empty(), "nothing was created");
}

fn same_device(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(a).unwrap().dev() == fs::metadata(b).unwrap().dev()
}

/// A test that cannot run here may return early on a developer machine, never in CI.
fn assert_not_ci(why: &str) {
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "this test cannot run: {why}"
    );
    eprintln!("skipping outside CI: {why}");
}

/// Makes a directory immutable (`chattr +i`) for as long as it lives: even root cannot
/// create, delete or rename entries in it.
struct Immutable(PathBuf);

impl Immutable {
    fn set(dir: &Path) -> Option<Immutable> {
        let ok = Command::new("chattr")
            .arg("+i")
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Immutable(dir.to_path_buf()))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

#[test]
fn a_commit_that_the_file_system_refuses_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let pending = dir.path().join("pending");
    let path = data.join("v.json");
    let atom = FileAtom::builder(&path)
        .pending_dir(&pending)
        .open(1u32)
        .unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(0));
    let count = std::sync::Arc::clone(&seen);
    atom.add_watch("count", move |_: &u32, _: &u32| *count.lock().unwrap() += 1);
    let Some(frozen) = Immutable::set(&data) else {
        return assert_not_ci("chattr +i is not permitted here");
    };

    // The rename fails: the error names the pending file, which is removed.
    let err = atom.swap(|n| n + 1).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Io { .. }), "{text}");
    assert!(text.contains("rename the pending file"), "{text}");
    assert!(
        text.contains("enduro-pending"),
        "names the pending file: {text}"
    );
    assert_eq!(*atom.deref(), 1);
    assert_eq!(fs::read_to_string(&path).unwrap(), "1");
    assert_eq!(*seen.lock().unwrap(), 0);
    assert!(names_in(&pending).is_empty(), "the pending file is removed");

    // With pending files in the frozen directory itself, creating one fails.
    let beside = file_atom(0u32, &path).unwrap();
    let err = beside.swap(|n| n + 1).unwrap_err();
    assert!(err.to_string().contains("create the pending file"), "{err}");
    assert_eq!(fs::read_to_string(&path).unwrap(), "1");

    drop(frozen);
    assert_eq!(*atom.swap(|n| n + 1).unwrap(), 2, "usable again");
    assert_eq!(fs::read_to_string(&path).unwrap(), "2");
    assert_eq!(*seen.lock().unwrap(), 1);
}

#[test]
fn a_directory_in_place_of_the_data_file_is_reported_on_swap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.json");
    let atom = file_atom(1u32, &path).unwrap();
    fs::remove_file(&path).unwrap();
    fs::create_dir(&path).unwrap();
    let err = atom.swap(|n| n + 1).unwrap_err();
    assert!(err.to_string().contains("is a directory"), "{err}");
    assert_eq!(*atom.deref(), 1);
    assert!(path.is_dir());
}
