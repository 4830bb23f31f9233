//! File atoms against the operating system's limits and failures, in real processes: ten
//! thousand atoms under the common limit of 1,024 open files, and I/O errors injected with
//! strace at each system call of a commit, before and after its point of no return.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

mod common;

use common::{call_of, have_strace, syscall_of, tracee_of, worker};
use enduro_file::FileAtom;

/// Runs the tests, or acts as the worker these tests start (this test binary, run again:
/// see `common::worker`), on the main thread (see `common::harness`).
fn main() -> std::process::ExitCode {
    common::harness::main(crate::tests![
        ten_thousand_file_atoms_stay_open_under_a_limit_of_1024_files,
        a_failed_directory_fsync_after_the_rename_is_reported_as_uncertain,
        failures_before_the_rename_change_nothing,
        journal_append_failures_change_nothing,
        a_journal_record_that_cannot_be_taken_back_is_reported_as_uncertain,
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

/// How the worker's atom commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A pending file renamed over the data file.
    Replace,
    /// A record appended to the journal (see `common::worker::journal`).
    Journal,
}

/// A system call to fail: the `nth` call of `syscalls` (strace's names, comma-separated:
/// one of them is made) after the worker said "ready", among those on a file whose path
/// contains `on` (any call when empty), failing with `error`; and the `times - 1` calls of
/// `syscalls` that follow it too, whatever their file.
#[derive(Debug, Clone, Copy)]
struct Fault {
    syscalls: &'static str,
    error: &'static str,
    nth: usize,
    on: &'static str,
    times: usize,
}

impl Fault {
    /// The `nth` call of `syscalls` after "ready" fails with `error`.
    const fn nth(syscalls: &'static str, error: &'static str, nth: usize) -> Fault {
        Fault {
            syscalls,
            error,
            nth,
            on: "",
            times: 1,
        }
    }
}

/// The journal's name ends so.
const JOURNAL: &str = ".enduro-journal";

/// Runs the worker's `swap-twice` on `path` (a counter at 10, see [`counter_at_ten`]) in
/// `mode` under strace, injecting `fault`; returns its two report lines.
fn swap_twice_with(path: &Path, mode: Mode, fault: Fault) -> Vec<String> {
    // strace counts calls from the start of the thread: learn which call to fail from an
    // undisturbed run, since a process's start makes calls of its own (under qemu-user,
    // dozens of writes of the /proc/self/maps it emulates).
    let scratch = tempfile::tempdir().unwrap();
    let first = call_number(&counter_at_ten(scratch.path(), mode), mode, fault);
    let when = match fault.times {
        1 => first.to_string(),
        n => format!("{first}..{}", first + n - 1),
    };
    let inject = format!(
        "inject={}:error={}:when={when}",
        fault.syscalls, fault.error
    );
    let mut strace = Command::new("strace");
    strace
        .args(["-f", "-o", "/dev/null", "-e"])
        .arg(format!("trace={}", fault.syscalls))
        .arg("-e")
        .arg(&inject);
    let out = run_swap_twice(&mut strace, path, mode);
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

/// Which call of `fault.syscalls`, counted in the worker's main thread from its start, is
/// the one `fault` is for, in an undisturbed `swap-twice` on `path` in `mode`. With
/// `fault.on`, strace shows each descriptor's path (`-y`) to tell the files apart.
fn call_number(path: &Path, mode: Mode, fault: Fault) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("strace.out");
    let mut strace = Command::new("strace");
    strace.args(["-f", "-o"]).arg(&trace);
    if !fault.on.is_empty() {
        strace.arg("-y");
    }
    strace
        .arg("-e")
        .arg(format!("trace=write,{}", fault.syscalls));
    let out = run_swap_twice(&mut strace, path, mode);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&trace).unwrap();
    // The first line is the main thread's.
    let main = text.lines().next().map_or("", tracee_of);
    let names: Vec<&str> = fault.syscalls.split(',').collect();
    let (mut calls, mut picked, mut ready) = (0, 0, false);
    for line in text.lines().filter(|line| tracee_of(line) == main) {
        let call = call_of(line);
        if names.contains(&syscall_of(line)) {
            calls += 1;
            if ready && call.contains(fault.on) {
                picked += 1;
                if picked == fault.nth {
                    return calls;
                }
            }
        }
        // `write(1, "ready\n", 6)`, or with `-y` `write(1<pipe:[...]>, "ready\n", 6)`.
        if call.starts_with("write(1") && call.contains(", \"ready\\n\"") {
            ready = true;
        }
    }
    panic!("{fault:?}: no such call after the worker's ready:\n{text}");
}

/// Runs the worker's `swap-twice` on `path` in `mode` under `strace` (with its options),
/// telling it to go at once; returns its output.
fn run_swap_twice(strace: &mut Command, path: &Path, mode: Mode) -> std::process::Output {
    if mode == Mode::Journal {
        worker::journal(strace);
    }
    let mut child = worker::run_under(strace, &["swap-twice", path.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    child.wait_with_output().unwrap()
}

/// A counter at 10 in `dir`: in `Mode::Journal`, with a journal holding that value in a
/// record (the data file holds 9), so that the worker's commits only append.
fn counter_at_ten(dir: &Path, mode: Mode) -> std::path::PathBuf {
    let path = dir.join("counter.json");
    match mode {
        Mode::Replace => drop(enduro_file::file_atom(10u64, &path).unwrap()),
        Mode::Journal => {
            let atom = FileAtom::builder(&path).journal(true).open(9u64).unwrap();
            assert_eq!(*atom.swap(|n| n + 1).unwrap(), 10);
        }
    }
    path
}

/// The value as a fresh open sees it (replaying the journal, if any).
fn stored(path: &Path) -> u64 {
    *enduro_file::file_atom(0u64, path).unwrap().deref()
}

/// The pending files left in `dir`.
fn pending_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".enduro-pending"))
        .collect()
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
    let path = counter_at_ten(dir.path(), Mode::Replace);
    // A commit fsyncs the pending file, then the directory: the second fsync fails.
    let lines = swap_twice_with(&path, Mode::Replace, Fault::nth("fsync", "EIO", 2));
    assert_eq!(lines, ["uncertain 11", "ok 12"]);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "12");
}

/// Failures *before* the rename change nothing: the swap fails with the system's error,
/// the file and the atom keep the old value, the next swap works.
fn failures_before_the_rename_change_nothing() {
    if !have_strace() {
        return;
    }
    let fault = |syscalls, error| Fault::nth(syscalls, error, 1);
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
        let path = counter_at_ten(dir.path(), Mode::Replace);
        let lines = swap_twice_with(&path, Mode::Replace, fault);
        assert!(lines[0].starts_with("failed 10: "), "{fault:?}: {lines:?}");
        assert_eq!(lines[1], "ok 11", "{fault:?}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "11", "{fault:?}");
        let left = pending_files(dir.path());
        assert!(left.is_empty(), "{fault:?}: pending files left: {left:?}");
    }
}

/// In journal mode a commit writes one record into the journal and flushes it once. If
/// either fails, the record is taken back out (zeros written over it, flushed): the swap
/// fails with the system's error, naming the journal, and changed nothing; the next swap
/// works.
fn journal_append_failures_change_nothing() {
    if !have_strace() {
        return;
    }
    let on_journal = |syscalls| Fault {
        on: JOURNAL,
        ..Fault::nth(syscalls, "EIO", 1)
    };
    // Writing the record, then flushing it.
    for fault in [on_journal("pwrite64"), on_journal("fdatasync")] {
        let dir = tempfile::tempdir().unwrap();
        let path = counter_at_ten(dir.path(), Mode::Journal);
        let lines = swap_twice_with(&path, Mode::Journal, fault);
        assert!(lines[0].starts_with("failed 10: "), "{fault:?}: {lines:?}");
        assert!(
            lines[0].contains(".counter.json.enduro-journal"),
            "{fault:?}: the error names the journal: {lines:?}"
        );
        // Had the failed record stayed, the second swap would have made 12.
        assert_eq!(lines[1], "ok 11", "{fault:?}");
        assert_eq!(stored(&path), 11, "{fault:?}");
        let left = pending_files(dir.path());
        assert!(left.is_empty(), "{fault:?}: pending files left: {left:?}");
    }
}

/// The record's flush fails, and so does the flush of the zeros written over it: the
/// record may be in the journal or not, so the swap reports `uncertain` and the atom
/// shows what the store holds. Here the zeros were written (only their flush failed), so
/// it holds the old value, and the next swap builds on it.
fn a_journal_record_that_cannot_be_taken_back_is_reported_as_uncertain() {
    if !have_strace() {
        return;
    }
    let fault = Fault {
        on: JOURNAL,
        times: 2,
        ..Fault::nth("fdatasync", "EIO", 1)
    };
    let dir = tempfile::tempdir().unwrap();
    let path = counter_at_ten(dir.path(), Mode::Journal);
    let lines = swap_twice_with(&path, Mode::Journal, fault);
    assert_eq!(lines, ["uncertain 10", "ok 11"]);
    assert_eq!(stored(&path), 11);
}
