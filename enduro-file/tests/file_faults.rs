//! File atoms against the operating system's limits and failures, in real processes: ten
//! thousand atoms under the common limit of 1,024 open files, and I/O errors injected with
//! strace at each system call of a commit, before and after its point of no return.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

mod common;

use common::{call_of, have_strace, syscall_of, tracee_of, worker};

/// Runs the tests, or acts as the worker these tests start (this test binary, run again:
/// see `common::worker`), on the main thread (see `common::harness`).
fn main() -> std::process::ExitCode {
    common::harness::main(crate::tests![
        ten_thousand_file_atoms_stay_open_under_a_limit_of_1024_files,
        a_failed_directory_fsync_after_the_rename_is_reported_as_uncertain,
        failures_before_the_rename_change_nothing,
    ])
}

/// A file atom holds no descriptor between operations: 10,000 of them stay open in one
/// process whose open-files limit is 1,024 (most distributions' default, Raspberry Pi OS
/// included), and commits still work.
fn ten_thousand_file_atoms_stay_open_under_a_limit_of_1024_files() {
    const ATOMS: usize = 10_000;
    let dir = tempfile::tempdir().unwrap();
    // Values written beforehand, so that opening commits nothing (no fsync per atom).
    for i in 0..ATOMS {
        std::fs::write(dir.path().join(format!("{i}.json")), "0").unwrap();
    }
    let mut shell = Command::new("sh");
    shell.arg("-c").arg(r#"ulimit -n 1024 && exec "$0" "$@""#);
    let atoms = ATOMS.to_string();
    let out = worker::run_under(&mut shell, &["many", dir.path().to_str().unwrap(), &atoms])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(worker::lines(&out.stdout), ["ok 10000"]);
    for i in (0..ATOMS).step_by(100) {
        let value = std::fs::read_to_string(dir.path().join(format!("{i}.json"))).unwrap();
        assert_eq!(value, "1", "atom {i}");
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join(format!("{ATOMS}.json"))).unwrap(),
        "1"
    );
}

/// A system call to fail: the `nth` call of `syscalls` (strace's names, comma-separated:
/// one of them is made) after the worker said "ready", failing with `error`.
#[derive(Debug, Clone, Copy)]
struct Fault {
    syscalls: &'static str,
    error: &'static str,
    nth: usize,
}

/// Runs the worker's `swap-twice` on `path` (a counter at 10) under strace, injecting
/// `fault`; returns its two report lines.
fn swap_twice_with(path: &Path, fault: Fault) -> Vec<String> {
    // strace counts calls from the start of the thread: learn how many come before
    // "ready" from an undisturbed run, since a process's start makes calls of its own
    // (under qemu-user, dozens of writes of the /proc/self/maps it emulates).
    let scratch = tempfile::tempdir().unwrap();
    let before = calls_until_ready(&counter_at_ten(scratch.path()), fault.syscalls);
    let inject = format!(
        "inject={}:error={}:when={}",
        fault.syscalls,
        fault.error,
        before + fault.nth
    );
    let mut strace = Command::new("strace");
    strace
        .args(["-f", "-o", "/dev/null", "-e"])
        .arg(format!("trace={}", fault.syscalls))
        .arg("-e")
        .arg(&inject);
    let out = run_swap_twice(&mut strace, path);
    assert!(
        out.status.success(),
        "{fault:?} ({inject}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = worker::lines(&out.stdout);
    assert_eq!(
        lines.first().map(String::as_str),
        Some("ready"),
        "{fault:?}"
    );
    lines[1..].to_vec()
}

/// How many calls of `syscalls` the worker's main thread makes up to its "ready" (that
/// line's own write included), in an undisturbed `swap-twice` on `path`.
fn calls_until_ready(path: &Path, syscalls: &str) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("strace.out");
    let mut strace = Command::new("strace");
    strace
        .args(["-f", "-o"])
        .arg(&trace)
        .arg("-e")
        .arg(format!("trace=write,{syscalls}"));
    let out = run_swap_twice(&mut strace, path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&trace).unwrap();
    // The first line is the main thread's.
    let main = text.lines().next().map_or("", tracee_of);
    let names: Vec<&str> = syscalls.split(',').collect();
    let mut calls = 0;
    for line in text.lines().filter(|line| tracee_of(line) == main) {
        if names.contains(&syscall_of(line)) {
            calls += 1;
        }
        if call_of(line).starts_with("write(1, \"ready\\n\"") {
            return calls;
        }
    }
    panic!("the worker never said ready:\n{text}");
}

/// Runs the worker's `swap-twice` on `path` under `strace` (with its options), telling it
/// to go at once; returns its output.
fn run_swap_twice(strace: &mut Command, path: &Path) -> std::process::Output {
    let mut child = worker::run_under(strace, &["swap-twice", path.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    child.wait_with_output().unwrap()
}

fn counter_at_ten(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("counter.json");
    drop(enduro_file::file_atom(10u64, &path).unwrap());
    path
}

/// An fsync of the directory that fails *after* the rename: the new value is in place
/// (others see it) but may not survive a power cut. The swap says its change may have been
/// stored, the atom shows what the file holds, and the next swap builds on it: a caller
/// who repeated the failed swap would have applied it twice.
fn a_failed_directory_fsync_after_the_rename_is_reported_as_uncertain() {
    if !have_strace() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = counter_at_ten(dir.path());
    // A commit fsyncs the pending file, then the directory: the second fsync fails.
    let lines = swap_twice_with(
        &path,
        Fault {
            syscalls: "fsync",
            error: "EIO",
            nth: 2,
        },
    );
    assert_eq!(lines, ["uncertain 11", "ok 12"]);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "12");
}

/// Failures *before* the rename change nothing: the swap fails with the system's error,
/// the file and the atom keep the old value, the next swap works.
fn failures_before_the_rename_change_nothing() {
    if !have_strace() {
        return;
    }
    let fault = |syscalls, error| Fault {
        syscalls,
        error,
        nth: 1,
    };
    for fault in [
        // Writing the pending file's bytes.
        fault("write", "EIO"),
        // Flushing the pending file.
        fault("fsync", "EIO"),
        // Counting the commit in the lock file (just before the rename).
        fault("pwrite64", "ENOSPC"),
        // The rename itself (a `renameat` where the C library has no `rename` call to
        // make: on aarch64, which qemu-user then makes on the host).
        fault("rename,renameat,renameat2", "EIO"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = counter_at_ten(dir.path());
        let lines = swap_twice_with(&path, fault);
        assert!(lines[0].starts_with("failed 10: "), "{fault:?}: {lines:?}");
        assert_eq!(lines[1], "ok 11", "{fault:?}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "11", "{fault:?}");
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".enduro-pending"))
            .collect();
        assert!(left.is_empty(), "{fault:?}: pending files left: {left:?}");
    }
}
