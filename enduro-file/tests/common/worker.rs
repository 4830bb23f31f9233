//! The worker process of enduro-file's cross-process and crash tests. It is no binary of
//! its own (a library crate should not install a test helper): a test binary runs itself
//! again, through [`command`] or [`run_under`], with its arguments in [`ARGS_VAR`], and its
//! `#[test] fn worker()` then calls [`entry`], which acts as the worker and exits.
//!
//! Each mode opens a file atom (or its lock file) on the path it is given and reports on
//! stdout, one line per event, flushed at once, so that the parent can follow it through a
//! pipe.
//!
//! ```text
//! worker count PATH N          "ready", waits for a line on stdin, swaps +1
//!                              N times, then prints "done"
//! worker append PATH WRITER N  "ready", waits for a line on stdin, appends
//!                              [WRITER, SEQ] for SEQ in 0..N to a list,
//!                              printing "ack WRITER SEQ" after each swap
//! worker apply PATH WRITER N   as `append`, with ops: the atom (a [`Log`],
//!                              opened with `ops()`) applies (WRITER, SEQ)
//! worker append-threads PATH WRITER THREADS N
//!                              the same from THREADS threads sharing one
//!                              atom (so their swaps share group commits):
//!                              thread T appends [WRITER * 1000 + T, SEQ]
//! worker torture PATH          "ready V" (the value found), then swaps +1 in
//!                              a tight loop printing each acknowledged value
//! worker until-released PATH N "ready", then swaps +1 until the atom is
//!                              released by someone else (prints "released")
//!                              or N swaps are done (prints "done")
//! worker release PATH          opens the atom, releases it, prints "released"
//! worker hold-lock PATH SECS   takes the atom's lock file with
//!                              `File::lock`, prints "locked", sleeps SECS
//! worker stall-commit PATH SECS  starts a swap +1 and, inside the commit
//!                              (lock held, pending file written to), prints
//!                              "stalled" and sleeps SECS
//! worker many DIR N            opens N atoms on the files DIR/I.json and
//!                              keeps them all open; swaps +1 on every 100th,
//!                              opens one more and swaps it; prints "ok N"
//! worker migrate PATH ID      says "ready", waits for a line on stdin, opens
//!                              PATH (a bare count at schema 0) with two
//!                              migration steps (to `{"count":N}`, then with
//!                              `"by":ID` added), swaps +1 on the count and
//!                              prints `by B count C` (the value it then has)
//! worker swap-twice PATH       opens PATH (a counter), says "ready", waits
//!                              for a line on stdin, swaps +1 twice, printing
//!                              after each `ok V`, `uncertain V` (what the
//!                              atom shows then) or `failed V: ERROR`
//! ```
//!
//! With [`JOURNAL_VAR`] set (see [`journal`]), every mode's atoms commit in journal mode;
//! [`JOURNAL_LIMIT_VAR`] (see [`journal_limit`]) sets their compaction bound.
//!
//! Every mode stops by itself: the loops are bounded and a closed pipe ends the torture.
//! The exit code is 0 on success, 1 with a message on stderr otherwise.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufRead, Write};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use enduro_file::{FileAtom, FileStore};
use serde::{Deserialize, Serialize, Serializer};

/// The environment variable that makes the worker's atoms commit in journal mode (any
/// value but `0`); see [`journal`].
pub const JOURNAL_VAR: &str = "ENDURO_FILE_WORKER_JOURNAL";

/// Makes the worker that `command` starts open its atoms in journal mode.
pub fn journal(command: &mut Command) -> &mut Command {
    command.env(JOURNAL_VAR, "1")
}

/// The environment variable that sets the compaction bound of the worker's journal-mode
/// atoms (`journal_limit`, in bytes); see [`journal_limit`].
pub const JOURNAL_LIMIT_VAR: &str = "ENDURO_FILE_WORKER_JOURNAL_LIMIT";

/// Makes the worker that `command` starts open its atoms in journal mode with a
/// compaction bound of `bytes` (0: compact once the records pass 8 times the value's
/// size, which for a small counter is at every commit).
pub fn journal_limit(command: &mut Command, bytes: u64) -> &mut Command {
    journal(command).env(JOURNAL_LIMIT_VAR, bytes.to_string())
}

/// Whether this worker's atoms commit in journal mode.
fn journal_mode() -> bool {
    std::env::var(JOURNAL_VAR).is_ok_and(|v| v != "0")
}

/// The builder of the worker's atom at `path`: in journal mode when asked, with the
/// compaction bound asked for, if any.
fn builder<T: enduro_core::Value>(path: impl AsRef<std::path::Path>) -> FileAtom<T> {
    let builder = FileAtom::builder(path).journal(journal_mode());
    match std::env::var(JOURNAL_LIMIT_VAR)
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(limit) => builder.journal_limit(limit),
        None => builder,
    }
}

/// Opens the worker's atom at `path`, in journal mode when asked.
fn open_atom<T: enduro_core::Value>(
    init: T,
    path: impl AsRef<std::path::Path>,
) -> enduro_core::Result<enduro_core::Atom<T>> {
    builder(path).open(init)
}

/// The torture loop gives up after this long even if nobody kills it.
const TORTURE_DEADLINE: Duration = Duration::from_secs(300);

type Result<T = ()> = std::result::Result<T, String>;

/// The environment variable that makes the `worker` test of a test binary act as the
/// worker; it holds the worker's arguments, one per line.
pub const ARGS_VAR: &str = "ENDURO_FILE_WORKER_ARGS";

/// The arguments that make the test harness run only the `worker` test, without
/// capturing its output (it prints one blank line and `running 1 test`
/// first, which [`is_harness_line`] recognises).
pub const HARNESS_ARGS: [&str; 5] = [
    "worker",
    "--exact",
    "--nocapture",
    "--quiet",
    "--test-threads=1",
];

/// Runs the worker, with `args`, when this test binary was started as one (see
/// [`command`]), and exits the process with its exit code: 0 on success, 1 with a message
/// on stderr otherwise. Returns at once in a normal test run.
pub fn entry() {
    let Ok(args) = std::env::var(ARGS_VAR) else {
        return;
    };
    let args: Vec<String> = args.lines().map(str::to_owned).collect();
    let code = match run(&args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("enduro-file worker {}: {e}", args.join(" "));
            1
        }
    };
    let _ = io::stdout().flush();
    std::process::exit(code);
}

/// The path of this test binary, which runs the worker when asked to (see [`command`]).
pub fn exe() -> std::path::PathBuf {
    std::env::current_exe().expect("the test binary's own path")
}

/// The environment variable that names the program, with its options separated by
/// spaces, that runs this test binary when the binary cannot run by itself: an emulator,
/// as cargo's `target.<triple>.runner` (`cargo xtask pi` sets both to `qemu-aarch64` or
/// `qemu-arm`). Workers are then started through it, since the kernel cannot run the
/// binary directly. Unset or empty: the binary runs directly.
pub const RUNNER_VAR: &str = "ENDURO_TEST_RUNNER";

/// What starts the worker: the runner from [`RUNNER_VAR`] (split on whitespace), if
/// there is one, then this test binary and the arguments that select its `worker` test.
fn invocation() -> Vec<OsString> {
    let runner = std::env::var(RUNNER_VAR).unwrap_or_default();
    runner
        .split_whitespace()
        .map(OsString::from)
        .chain([exe().into_os_string()])
        .chain(HARNESS_ARGS.iter().map(OsString::from))
        .collect()
}

/// Makes `command` (a bare program, or `strace` with its options) run the worker with
/// `args`: appends the runner (see [`RUNNER_VAR`]), this test binary and the arguments
/// that select its `worker` test, and passes `args` in [`ARGS_VAR`]. Each test file that
/// uses it has `#[test] fn worker() { common::worker::entry() }`.
pub fn run_under<'a>(command: &'a mut Command, args: &[&str]) -> &'a mut Command {
    command.args(invocation()).env(ARGS_VAR, args.join("\n"))
}

/// A command that runs the worker with `args` (through the runner, if there is one).
pub fn command(args: &[&str]) -> Command {
    let invocation = invocation();
    let (program, rest) = invocation
        .split_first()
        .expect("an invocation names at least the test binary");
    let mut command = Command::new(program);
    command.args(rest).env(ARGS_VAR, args.join("\n"));
    command
}

/// Whether `line` is one the test harness printed before the worker started.
pub fn is_harness_line(line: &str) -> bool {
    line.is_empty() || line == "running 1 test"
}

/// The worker's own lines in its captured stdout.
pub fn lines(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !is_harness_line(l))
        .map(str::to_owned)
        .collect()
}

fn run(args: &[String]) -> Result {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["count", path, n] => count(path, number(n)?),
        ["append", path, writer, n] => append(path, number(writer)?, number(n)?),
        ["apply", path, writer, n] => apply(path, number(writer)?, number(n)?),
        ["append-threads", path, writer, threads, n] => {
            append_threads(path, number(writer)?, number(threads)?, number(n)?)
        }
        ["torture", path] => torture(path),
        ["torture-threads", path, threads] => torture_threads(path, number(threads)?),
        ["until-released", path, n] => until_released(path, number(n)?),
        ["release", path] => release(path),
        ["hold-lock", path, secs] => hold_lock(path, number(secs)?),
        ["stall-commit", path, secs] => stall_commit(path, number(secs)?),
        ["many", dir, n] => many(dir, number(n)?),
        ["swap-twice", path] => swap_twice(path),
        ["migrate", path, id] => migrate(path, number(id)?),
        _ => Err(format!(
            "unknown arguments {args:?}; see the source for the modes"
        )),
    }
}

fn number(s: &str) -> Result<u64> {
    s.parse().map_err(|e| format!("`{s}` is not a number: {e}"))
}

/// Prints one line and flushes it, so the parent sees it at once; fails when the parent
/// has gone (the pipe is closed).
fn say(line: &str) -> Result {
    let mut out = io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write to stdout: {e}"))
}

/// Says "ready" and waits for the parent's go (any line, or the end of stdin).
fn ready_then_wait() -> Result {
    say("ready")?;
    let mut line = String::new();
    io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read stdin: {e}"))?;
    Ok(())
}

fn count(path: &str, n: u64) -> Result {
    let atom = open_atom(0u64, path).map_err(|e| e.to_string())?;
    ready_then_wait()?;
    for _ in 0..n {
        atom.swap(|v| v + 1).map_err(|e| e.to_string())?;
    }
    say("done")
}

fn append(path: &str, writer: u64, n: u64) -> Result {
    let atom = open_atom(Vec::<(u64, u64)>::new(), path).map_err(|e| e.to_string())?;
    ready_then_wait()?;
    for seq in 0..n {
        atom.swap(|list| {
            let mut list = list.clone();
            list.push((writer, seq));
            list
        })
        .map_err(|e| e.to_string())?;
        say(&format!("ack {writer} {seq}"))?;
    }
    say("done")
}

/// A list that grows by ops: each op appends one `(writer, seq)` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Log(pub Vec<(u64, u64)>);

impl enduro_core::Apply for Log {
    type Op = (u64, u64);
    fn apply(&mut self, entry: &(u64, u64)) {
        self.0.push(*entry);
    }
}

fn apply(path: &str, writer: u64, n: u64) -> Result {
    let atom = builder(path)
        .ops()
        .open(Log::default())
        .map_err(|e| e.to_string())?;
    ready_then_wait()?;
    for seq in 0..n {
        atom.apply((writer, seq)).map_err(|e| e.to_string())?;
        say(&format!("ack {writer} {seq}"))?;
    }
    say("done")
}

fn append_threads(path: &str, writer: u64, threads: u64, n: u64) -> Result {
    let atom = open_atom(Vec::<(u64, u64)>::new(), path).map_err(|e| e.to_string())?;
    ready_then_wait()?;
    thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let atom = atom.clone();
                let id = writer * 1000 + t;
                scope.spawn(move || -> Result {
                    for seq in 0..n {
                        atom.swap(|list| {
                            let mut list = list.clone();
                            list.push((id, seq));
                            list
                        })
                        .map_err(|e| e.to_string())?;
                        say(&format!("ack {id} {seq}"))?;
                    }
                    Ok(())
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().map_err(|_| "a thread panicked".to_string())?)
    })?;
    say("done")
}

fn torture(path: &str) -> Result {
    let atom = open_atom(0u64, path).map_err(|e| e.to_string())?;
    say(&format!("ready {}", atom.deref()))?;
    let started = Instant::now();
    while started.elapsed() < TORTURE_DEADLINE {
        let value = atom.swap(|v| v + 1).map_err(|e| e.to_string())?;
        say(&value.to_string())?;
    }
    Err(format!("nobody killed me in {TORTURE_DEADLINE:?}"))
}

/// `threads` threads swap one atom in tight loops, so that their swaps share group
/// commits; each acknowledged value is printed as `ack VALUE`.
fn torture_threads(path: &str, threads: u64) -> Result {
    let atom = open_atom(0u64, path).map_err(|e| e.to_string())?;
    say(&format!("ready {}", atom.deref()))?;
    let started = Instant::now();
    thread::scope(|s| {
        for _ in 0..threads {
            let atom = atom.clone();
            s.spawn(move || -> Result {
                while started.elapsed() < TORTURE_DEADLINE {
                    let value = atom.swap(|v| v + 1).map_err(|e| e.to_string())?;
                    say(&format!("ack {value}"))?;
                }
                Ok(())
            });
        }
    });
    Err(format!("nobody killed me in {TORTURE_DEADLINE:?}"))
}

fn until_released(path: &str, n: u64) -> Result {
    let atom = open_atom(0u64, path).map_err(|e| e.to_string())?;
    say("ready")?;
    for _ in 0..n {
        match atom.swap(|v| v + 1) {
            Ok(_) => {}
            Err(enduro_core::Error::Released) if atom.is_released() => return say("released"),
            Err(e) => return Err(e.to_string()),
        }
    }
    say("done")
}

fn many(dir: &str, n: u64) -> Result {
    let open = |i: u64| {
        open_atom(0u64, format!("{dir}/{i}.json")).map_err(|e| format!("atom {i} of {n}: {e}"))
    };
    let atoms = (0..n).map(open).collect::<Result<Vec<_>>>()?;
    for (i, atom) in atoms.iter().enumerate().step_by(100) {
        atom.swap(|v| v + 1).map_err(|e| format!("atom {i}: {e}"))?;
    }
    // While all of them stay open, new atoms and commits still work.
    let extra = open(n)?;
    extra.swap(|v| v + 1).map_err(|e| e.to_string())?;
    say(&format!("ok {}", atoms.len()))
}

fn swap_twice(path: &str) -> Result {
    let atom = open_atom(0u64, path).map_err(|e| e.to_string())?;
    ready_then_wait()?;
    for _ in 0..2 {
        match atom.swap(|v| v + 1) {
            Ok(v) => say(&format!("ok {v}"))?,
            Err(e) if e.may_have_been_stored() => say(&format!("uncertain {}", atom.deref()))?,
            Err(e) => say(&format!("failed {}: {e}", atom.deref()))?,
        }
    }
    Ok(())
}

fn release(path: &str) -> Result {
    let atom = open_atom(0u64, path).map_err(|e| e.to_string())?;
    atom.release().map_err(|e| e.to_string())?;
    say("released")
}

fn hold_lock(path: &str, secs: u64) -> Result {
    // Opening the store creates the lock file if needed and tells us where it is.
    let store = FileStore::open(path).map_err(|e| e.to_string())?;
    let lock_path = store.lock_path().to_path_buf();
    drop(store);
    let lock = File::options()
        .read(true)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("cannot open {}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
    say("locked")?;
    thread::sleep(Duration::from_secs(secs));
    Ok(())
}

/// Set when the next encoding should stall: by then the commit holds the lock and has
/// created its pending file.
static STALL: AtomicBool = AtomicBool::new(false);
static STALL_SECS: AtomicU64 = AtomicU64::new(0);

/// A counter whose encoding can be made to stall, to hold a commit open at its most
/// delicate point.
#[derive(Deserialize)]
#[serde(transparent)]
struct Stalling(u64);

impl Serialize for Stalling {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        if STALL.swap(false, Ordering::SeqCst) {
            // Announce, then hang; the parent kills us here. Errors go nowhere: the
            // parent sees a missing line.
            let _ = say("stalled");
            thread::sleep(Duration::from_secs(STALL_SECS.load(Ordering::SeqCst)));
        }
        s.serialize_u64(self.0)
    }
}

fn stall_commit(path: &str, secs: u64) -> Result {
    let atom = builder(path).open(Stalling(0)).map_err(|e| e.to_string())?;
    STALL_SECS.store(secs, Ordering::SeqCst);
    STALL.store(true, Ordering::SeqCst);
    atom.swap(|v| Stalling(v.0 + 1))
        .map_err(|e| e.to_string())?;
    say("done")
}

/// A counter at schema 2 (see the `migrate` mode): schema 0 was a bare count.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Migrated {
    pub count: u64,
    /// The id of the worker whose migration was stored.
    pub by: u64,
}

/// The steps from a bare count (schema 0) to a [`Migrated`] (schema 2) that says `id`
/// migrated it.
pub fn counter_migrations(id: u64) -> enduro_core::Migrations {
    enduro_core::Migrations::new()
        .step(|count| Ok::<_, String>(serde_json::json!({ "count": count })))
        .step(move |mut counter| {
            counter["by"] = id.into();
            Ok::<_, String>(counter)
        })
}

fn migrate(path: &str, id: u64) -> Result {
    ready_then_wait()?;
    let atom = builder(path)
        .migrations(counter_migrations(id))
        .open(Migrated { count: 0, by: 0 })
        .map_err(|e| e.to_string())?;
    let after = atom
        .swap(|c| Migrated {
            count: c.count + 1,
            by: c.by,
        })
        .map_err(|e| e.to_string())?;
    say(&format!("by {} count {}", after.by, after.count))
}
