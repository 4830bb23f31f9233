//! Crash torture of the file backend: a child process (this test binary run again as the
//! worker, in `torture` mode; see `common::worker`) swaps `+1` in a tight loop and prints every acknowledged value on a
//! pipe; we SIGKILL it at a random moment, then check that
//!
//! - the data file decodes (never torn) and holds the last acknowledged value or the one
//!   in flight (acknowledged + 1) — an acknowledged swap is never lost;
//! - nothing is left beside it but the lock file and pending files of the pattern the next
//!   open removes, and the next open does remove them;
//! - the lock is not stuck: a fresh open and a swap succeed (the child was most likely
//!   killed inside a commit, holding the lock), and so does a swap through an atom that
//!   was open all along (which must notice the child's commits first).
//!
//! Two more tortures: two children swapping on one file at once, killed one at a time at
//! random (no acknowledged value lost or acknowledged twice), and children killed while
//! their open creates the file (no value, or a whole one). And a deterministic matrix:
//! strace SIGKILLs a child on entering each syscall of a commit and of a release in turn
//! (create, write, fsync, bump the generation, rename, fsync the directory, unlock;
//! delete the data file, mark released, delete the lock file), and each leaves a state
//! that other atoms and the next open handle correctly.
//!
//! 200 kills by default (50 for the creation torture); `ENDURO_TORTURE_KILLS=N` for more (or `cargo xtask torture N`),
//! `ENDURO_TORTURE_SEED=S` to replay the kill moments of a run (the seed is printed).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod common;

use common::{
    Piped, call_of, have_strace, names, spawn_piped, syscall_of, tracee_of, unsplit, worker,
};
use enduro_core::Atom;
use enduro_file::FileAtom;

/// Runs the tests, or acts as the worker these tests start (this test binary, run again:
/// see `common::worker`), on the main thread (see `common::harness`).
fn main() -> std::process::ExitCode {
    common::harness::main(crate::tests![
        sigkill_at_random_moments_never_tears_the_file_nor_loses_an_acknowledged_swap,
        two_writers_killed_at_random_never_lose_nor_duplicate_an_acknowledged_swap,
        a_kill_during_the_first_commit_leaves_no_value_or_a_whole_one,
        sigkill_at_each_step_of_a_commit_and_of_a_release_leaves_a_consistent_state,
        sigkill_during_group_commits_never_loses_an_acknowledged_swap,
        calls_that_strace_split_between_threads_are_joined,
    ])
}

/// How long the child may stay silent before we call it hung (a stuck lock, say) and fail.
/// A guard so that the test stops by itself, never a measure of speed.
const HANG: Duration = Duration::from_secs(120);

const DATA: &str = "counter.json";
const LOCK: &str = ".counter.json.enduro-lock";

/// xorshift64*: small, deterministic, good enough to pick kill moments.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{name}={value:?} is not a number: {e}")),
    )
}

/// `ENDURO_TORTURE_SEED`, or a new seed from the clock and the process id.
fn seed() -> u64 {
    env_number("ENDURO_TORTURE_SEED").unwrap_or_else(|| {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        now.as_nanos() as u64 ^ (u64::from(std::process::id()) << 32)
    })
}

/// What one kill found.
#[derive(Default)]
struct Tally {
    kills: u64,
    before_ready: u64,
    in_flight_committed: u64,
    pending_left: u64,
    acknowledged: u64,
}

fn sigkill_at_random_moments_never_tears_the_file_nor_loses_an_acknowledged_swap() {
    let kills = env_number("ENDURO_TORTURE_KILLS").unwrap_or(200);
    let seed = seed();
    println!("crash torture: {kills} kills, seed {seed} (replay: ENDURO_TORTURE_SEED={seed})");
    let mut rng = Rng::new(seed);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DATA);
    let resident: Atom<u64> = FileAtom::builder(&path).lock_timeout(HANG).open(0).unwrap();
    let mut start = 0u64;
    let mut tally = Tally::default();
    let began = Instant::now();

    for round in 0..kills {
        let context = format!("kill {round} of {kills} (seed {seed})");
        start = torture_once(&mut rng, dir.path(), start, &resident, round, &mut tally)
            .unwrap_or_else(|e| panic!("{context}: {e}"));
    }

    println!(
        "crash torture: {} kills in {:.1?}: {} acknowledged swaps, {} kills before the \
         child was ready, {} with the in-flight swap on disk, {} leaving a pending file \
         (removed by the next open); final value {start}",
        tally.kills,
        began.elapsed(),
        tally.acknowledged,
        tally.before_ready,
        tally.in_flight_committed,
        tally.pending_left,
    );
    assert_eq!(*resident.refresh().unwrap(), start);
}

/// A torture worker: its stdout lines arrive on a channel, its stderr is kept for the
/// error message. Killed on drop, so a failing test leaves no process behind.
struct Victim {
    child: Child,
    lines: Receiver<String>,
    reader: Option<JoinHandle<()>>,
    errors: Option<JoinHandle<String>>,
    /// Lines received so far and not yet taken.
    seen: Vec<String>,
}

impl Victim {
    fn spawn(path: &Path) -> Result<Victim, String> {
        Self::spawn_with(&["torture", path.to_str().unwrap()])
    }

    fn spawn_with(args: &[&str]) -> Result<Victim, String> {
        let Piped {
            child,
            lines,
            reader,
            stderr: errors,
        } = spawn_piped(&mut worker::command(args))
            .map_err(|e| format!("cannot start the worker: {e}"))?;
        Ok(Victim {
            child,
            lines,
            reader: Some(reader),
            errors: Some(errors),
            seen: Vec::new(),
        })
    }

    /// Waits until the worker has printed `n` lines in all (or has died).
    fn wait_for_lines(&mut self, n: usize) -> Result<(), String> {
        while self.seen.len() < n {
            match self.lines.recv_timeout(HANG) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!("the worker printed nothing for {HANG:?}: hung"));
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        Ok(())
    }

    /// SIGKILLs the worker, reaps it, and returns every line it printed.
    fn kill(mut self) -> Result<Vec<String>, String> {
        self.child
            .kill()
            .map_err(|e| format!("cannot kill the worker: {e}"))?;
        let status = self.child.wait().unwrap();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        let stderr = self.errors.take().map(|h| h.join().unwrap());
        if status.signal() != Some(9) {
            return Err(format!(
                "the worker ended by itself ({status}), not by SIGKILL: {}",
                stderr.unwrap_or_default()
            ));
        }
        let mut seen = std::mem::take(&mut self.seen);
        seen.extend(self.lines.try_iter());
        Ok(seen)
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Checks that `dir` holds nothing but the data file, its lock file and pending files of
/// the pattern an open removes; returns how many pending files there are.
fn pending_or_unexplained(dir: &Path) -> Result<usize, String> {
    let pending_prefix = format!(".{DATA}.");
    let mut pending = 0;
    for name in names(dir) {
        if name == DATA || name == LOCK {
            continue;
        }
        if name.starts_with(&pending_prefix) && name.ends_with(".enduro-pending") {
            pending += 1;
        } else {
            return Err(format!("unexplained file `{name}` left behind"));
        }
    }
    Ok(pending)
}

/// The data file's value; an error if it does not decode (a torn write).
fn on_disk(path: &Path) -> Result<u64, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read the data file: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        format!(
            "torn or corrupt data file ({e}): {:?}",
            String::from_utf8_lossy(&bytes)
        )
    })
}

/// Opens the atom afresh (which removes pending files left by crashes) and checks that
/// only the data file and its lock file remain.
fn reopen(path: &Path) -> Result<Atom<u64>, String> {
    let atom = FileAtom::builder(path)
        .lock_timeout(HANG)
        .open(u64::MAX)
        .map_err(|e| format!("cannot reopen after the kill: {e}"))?;
    let left = names(path.parent().unwrap());
    if left != [LOCK, DATA] {
        return Err(format!("the reopen left {left:?}"));
    }
    Ok(atom)
}

/// One child, one kill, the checks. Returns the value the next child starts from.
fn torture_once(
    rng: &mut Rng,
    dir: &Path,
    start: u64,
    resident: &Atom<u64>,
    round: u64,
    tally: &mut Tally,
) -> Result<u64, String> {
    let path = dir.join(DATA);
    let mut victim = Victim::spawn(&path)?;

    // Pick the moment: now and then right away (during start-up and open, maybe while it
    // cleans up pending files); mostly after a few acknowledged swaps plus a random pause,
    // which lands anywhere in a commit.
    if rng.below(10) == 0 {
        thread::sleep(Duration::from_micros(rng.below(2_000)));
    } else {
        // "ready" and up to 5 acknowledgements
        victim.wait_for_lines(1 + rng.below(6) as usize)?;
        thread::sleep(Duration::from_micros(rng.below(3_000)));
    }
    let seen = victim.kill()?;
    tally.kills += 1;

    // What the child acknowledged: "ready START", then START+1, START+2, ...
    let mut acknowledged = start;
    let ready = !seen.is_empty();
    if let Some((first, acks)) = seen.split_first() {
        if *first != format!("ready {start}") {
            return Err(format!("expected `ready {start}`, got `{first}`"));
        }
        for ack in acks {
            let value: u64 = ack
                .parse()
                .map_err(|e| format!("bad line `{ack}` from the worker: {e}"))?;
            if value != acknowledged + 1 {
                return Err(format!(
                    "acknowledged {value} after {acknowledged}: the worker skipped or repeated"
                ));
            }
            acknowledged = value;
        }
    } else {
        tally.before_ready += 1;
    }
    tally.acknowledged += acknowledged - start;

    // The file decodes, and holds the last acknowledged value or the one in flight.
    let on_disk = on_disk(&path)?;
    if on_disk == acknowledged + 1 && ready {
        tally.in_flight_committed += 1;
    } else if on_disk != acknowledged {
        return Err(format!(
            "the file holds {on_disk}, but the last acknowledged value is {acknowledged} \
             (in flight: {})",
            if ready { "+1 allowed" } else { "none" }
        ));
    }

    // Nothing beside the data file but the lock file and pending files of our pattern.
    let pending = pending_or_unexplained(dir)?;
    if pending > 0 {
        tally.pending_left += 1;
    }

    // The lock is not stuck, and both a long-lived atom and a fresh open see the value.
    // They take turns at the swap that follows.
    let fresh_turn = round.is_multiple_of(2);
    let swapped = if fresh_turn {
        let fresh = reopen(&path)?;
        if *fresh.deref() != on_disk {
            return Err(format!("reopened at {}, not {on_disk}", fresh.deref()));
        }
        fresh.swap(|n| n + 1)
    } else {
        let mut from = None;
        let swapped = resident.swap(|n| {
            from.get_or_insert(*n);
            n + 1
        });
        if from != Some(on_disk) {
            return Err(format!(
                "the long-lived atom's swap started from {from:?}, not {on_disk}"
            ));
        }
        swapped
    }
    .map_err(|e| format!("cannot swap after the kill: {e}"))?;
    if *swapped != on_disk + 1 {
        return Err(format!("swapped to {swapped}, not {}", on_disk + 1));
    }
    if *resident.refresh().map_err(|e| e.to_string())? != on_disk + 1 {
        return Err("the long-lived atom does not see the swap".into());
    }
    if !fresh_turn && pending > 0 {
        // Only an open cleans up: do one, and check that it does.
        reopen(&path)?;
    }
    Ok(on_disk + 1)
}

fn two_writers_killed_at_random_never_lose_nor_duplicate_an_acknowledged_swap() {
    // Two children swap on one file at once; we kill one or the other at random moments
    // (often while it holds the lock, with the other waiting for it) and start a new one.
    // Every acknowledged value must be unique (two writers acknowledging the same value
    // would be a lost update), and the file must always decode and never fall behind an
    // acknowledgement.
    let kills = env_number("ENDURO_TORTURE_KILLS").unwrap_or(200);
    let seed = seed();
    println!("two-writer torture: {kills} kills, seed {seed} (replay: ENDURO_TORTURE_SEED={seed})");
    let mut rng = Rng::new(seed ^ 0x5eed);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DATA);
    drop(enduro_file::file_atom(0u64, &path).unwrap());
    let began = Instant::now();

    let fail = |kill: u64, e: String| -> ! { panic!("kill {kill} of {kills} (seed {seed}): {e}") };
    let mut acknowledged = BTreeSet::new();
    let mut victims = [Victim::spawn(&path).unwrap(), Victim::spawn(&path).unwrap()];
    for kill in 0..kills {
        let i = rng.below(2) as usize;
        let target = victims[i].seen.len() + 1 + rng.below(4) as usize;
        victims[i]
            .wait_for_lines(target)
            .unwrap_or_else(|e| fail(kill, e));
        thread::sleep(Duration::from_micros(rng.below(3_000)));
        let replacement = Victim::spawn(&path).unwrap_or_else(|e| fail(kill, e));
        let killed = std::mem::replace(&mut victims[i], replacement);
        let lines = killed.kill().unwrap_or_else(|e| fail(kill, e));
        record(&mut acknowledged, &lines).unwrap_or_else(|e| fail(kill, e));
        let value = on_disk(&path).unwrap_or_else(|e| fail(kill, e));
        let highest = acknowledged.last().copied().unwrap_or(0);
        if value < highest {
            fail(
                kill,
                format!("the file holds {value}, below the acknowledged {highest}"),
            );
        }
        pending_or_unexplained(dir.path()).unwrap_or_else(|e| fail(kill, e));
    }
    for victim in victims {
        let lines = victim.kill().unwrap_or_else(|e| fail(kills, e));
        record(&mut acknowledged, &lines).unwrap_or_else(|e| fail(kills, e));
    }

    let value = on_disk(&path).unwrap_or_else(|e| fail(kills, e));
    let highest = acknowledged.last().copied().unwrap_or(0);
    // Every value in 1..=value was committed by some swap; those not acknowledged were in
    // flight in a killed worker, at most one per kill.
    let unacknowledged = value - acknowledged.len() as u64;
    println!(
        "two-writer torture: {} kills in {:.1?}: {} acknowledged swaps, {unacknowledged} \
         committed in flight; final value {value}",
        kills + 2,
        began.elapsed(),
        acknowledged.len(),
    );
    assert!(
        value >= highest,
        "the file holds {value}, below the acknowledged {highest}"
    );
    assert!(
        unacknowledged <= kills + 2,
        "{unacknowledged} values were committed without acknowledgement, after {} kills",
        kills + 2
    );
    let atom = reopen(&path).unwrap();
    assert_eq!(*atom.deref(), value);
    assert_eq!(*atom.swap(|n| n + 1).unwrap(), value + 1);
}

/// Adds a killed two-writer worker's acknowledged values ("ready V" first, then one
/// value per line) to `acknowledged`; fails on a value acknowledged twice or out of order.
fn record(acknowledged: &mut BTreeSet<u64>, lines: &[String]) -> Result<(), String> {
    let mut last = None;
    for line in lines.iter().skip(1) {
        let value: u64 = line
            .parse()
            .map_err(|e| format!("bad line `{line}` from a worker: {e}"))?;
        if last.is_some_and(|last| value <= last) {
            return Err(format!("a worker acknowledged {value} after {last:?}"));
        }
        if !acknowledged.insert(value) {
            return Err(format!("{value} acknowledged twice: a lost update"));
        }
        last = Some(value);
    }
    Ok(())
}

fn a_kill_during_the_first_commit_leaves_no_value_or_a_whole_one() {
    // The worker opens a path that holds nothing yet, so its open commits `init` (0):
    // kill it somewhere in there.
    let rounds = env_number("ENDURO_TORTURE_KILLS")
        .unwrap_or(200)
        .div_ceil(4);
    let seed = seed();
    println!(
        "first-commit torture: {rounds} kills, seed {seed} (replay: ENDURO_TORTURE_SEED={seed})"
    );
    let mut rng = Rng::new(seed ^ 0xf1f1);
    let (mut missing, mut created) = (0, 0);
    for round in 0..rounds {
        let fail = |e: String| -> ! { panic!("kill {round} of {rounds} (seed {seed}): {e}") };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DATA);
        let victim = Victim::spawn(&path).unwrap_or_else(|e| fail(e));
        thread::sleep(Duration::from_micros(rng.below(4_000)));
        let seen = victim.kill().unwrap_or_else(|e| fail(e));
        if path.exists() {
            created += 1;
            on_disk(&path).unwrap_or_else(|e| fail(e));
        } else {
            missing += 1;
            if !seen.is_empty() {
                fail(format!("no data file, but the worker said {seen:?}"));
            }
        }
        pending_or_unexplained(dir.path()).unwrap_or_else(|e| fail(e));
        let atom = FileAtom::builder(&path)
            .lock_timeout(HANG)
            .open(0u64)
            .unwrap_or_else(|e| fail(format!("cannot open after the kill: {e}")));
        let value = *atom.deref();
        assert_eq!(*atom.swap(|n| n + 1).unwrap(), value + 1);
        assert_eq!(names(dir.path()), [LOCK, DATA]);
    }
    println!(
        "first-commit torture: {rounds} kills: {missing} before the file existed, {created} after"
    );
}

/// Where a deterministic crash lands: the `nth` call (1-based) of `syscall`, counted from
/// the first call that `starts` (a line of the trace), whose trace line passes `pick`.
struct CrashPoint {
    name: &'static str,
    syscall: &'static [&'static str],
    starts: fn(&str) -> bool,
    pick: fn(&str) -> bool,
    nth: usize,
}

/// Whether strace is there; if not, says so (and fails when CI=true).
const TRACED: &str = "trace=openat,write,fsync,fdatasync,rename,renameat,renameat2,pwrite64,\
                      flock,unlink,unlinkat";

/// Runs the worker with `args` under strace; with `kill_at = Some((syscall, n))`, strace
/// SIGKILLs it on entering the n-th call of that syscall (before the call does
/// anything). Returns the trace.
fn traced_worker(dir: &Path, args: &[&str], kill_at: Option<(&str, usize)>) -> String {
    let trace = dir.join("strace.out");
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-e", TRACED, "-o"]).arg(&trace);
    if let Some((syscall, n)) = kill_at {
        cmd.args(["-e", &format!("inject={syscall}:signal=KILL:when={n}")]);
    }
    let mut child = worker::run_under(&mut cmd, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(b"go\n");
    let out = child.wait_with_output().unwrap();
    let text = unsplit(&std::fs::read_to_string(&trace).unwrap()).join("\n");
    std::fs::remove_file(&trace).unwrap();
    match kill_at {
        None => assert!(
            out.status.success(),
            "worker {args:?} failed under strace: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Some(_) => assert!(
            text.contains("+++ killed by SIGKILL +++"),
            "worker {args:?} was not killed at {kill_at:?}: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
    text
}

/// Under qemu-user, a call killed by the injected signal showed up in CI only as a split
/// pair with another thread's line between its halves.
fn calls_that_strace_split_between_threads_are_joined() {
    let trace = "2003  fsync(3 <unfinished ...>\n\
                 2005  futex(0x1, FUTEX_WAIT, 0, NULL <unfinished ...>\n\
                 2003  <... fsync resumed>) = ?\n\
                 2005  <... futex resumed>) = ?\n\
                 2003  +++ killed by SIGKILL +++";
    assert_eq!(
        unsplit(trace),
        [
            "2003  fsync(3) = ?",
            "2005  futex(0x1, FUTEX_WAIT, 0, NULL) = ?",
            "2003  +++ killed by SIGKILL +++",
        ]
    );
}

/// The calls of a trace (whose split calls [`traced_worker`] joined): not strace's own
/// `--- SIGNAL ---` and `+++ exited +++` lines. Matched at the start of the call, since a
/// call's arguments may hold anything (under qemu-user, the emulated /proc/self/maps that
/// it writes, `---p` included).
fn calls(trace: &str) -> Vec<&str> {
    trace
        .lines()
        .filter(|l| {
            let call = call_of(l);
            !call.starts_with("+++") && !call.starts_with("---")
        })
        .collect()
}

/// Finds in a trace which call of which syscall `point` is: `(syscall, n, line)`, for
/// strace's `inject=syscall:when=n` (n counted in the calling thread), and its place among
/// the trace's calls.
fn locate(trace: &str, point: &CrashPoint) -> (String, usize, usize) {
    let calls = calls(trace);
    let start = calls
        .iter()
        .position(|l| (point.starts)(l))
        .unwrap_or_else(|| panic!("{}: no start in the trace:\n{trace}", point.name));
    let at = calls[start..]
        .iter()
        .enumerate()
        .filter(|(_, l)| point.syscall.contains(&syscall_of(l)) && (point.pick)(l))
        .nth(point.nth - 1)
        .map(|(i, _)| start + i)
        .unwrap_or_else(|| panic!("{}: not found in the trace:\n{trace}", point.name));
    // strace counts `when=n` per tracee (per thread): count the calls of the thread that
    // makes this one (the worker runs on a thread of the test harness).
    let syscall = syscall_of(calls[at]);
    let n = calls[..=at]
        .iter()
        .filter(|l| tracee_of(l) == tracee_of(calls[at]) && syscall_of(l) == syscall)
        .count();
    (syscall.to_owned(), n, at)
}

/// What a crash point must leave behind.
#[derive(Debug, Clone, Copy, PartialEq)]
enum After {
    /// For a commit: the old value if the crash comes before the rename (or at it: the
    /// rename never runs), the new one if after; read from the trace's order.
    ByRename,
    /// The old value (the crash came before the rename).
    Old,
    /// The new value (the crash came after it).
    New,
    /// For release: nothing was deleted yet; the atom lives on.
    Alive,
    /// For release: the data file is gone; other atoms see the atom released.
    Released,
}

fn sigkill_at_each_step_of_a_commit_and_of_a_release_leaves_a_consistent_state() {
    // Deterministic crash points, with real SIGKILLs: strace kills the worker on entering
    // a chosen syscall of its commit (or release), so the syscall never runs.
    if !have_strace() {
        return;
    }
    fn pending(l: &str) -> bool {
        l.contains(".enduro-pending")
    }
    fn any(_: &str) -> bool {
        true
    }
    fn data(l: &str) -> bool {
        l.contains(&format!("/{DATA}\""))
    }
    fn lock(l: &str) -> bool {
        l.contains(LOCK)
    }
    fn unlock(l: &str) -> bool {
        l.contains("LOCK_UN")
    }
    fn not_stdout(l: &str) -> bool {
        !l.contains("write(1,")
    }
    fn creates_pending(l: &str) -> bool {
        syscall_of(l) == "openat" && pending(l)
    }
    fn go(l: &str) -> bool {
        syscall_of(l) == "write" && l.contains("\"ready\\n\"")
    }
    fn releasing(l: &str) -> bool {
        syscall_of(l).starts_with("unlink") && data(l)
    }
    const UNLINK: &[&str] = &["unlink", "unlinkat"];
    const RENAME: &[&str] = &["rename", "renameat", "renameat2"];
    #[rustfmt::skip]
    let commit: [(CrashPoint, After); 7] = [
        (CrashPoint { name: "create the pending file", syscall: &["openat"], starts: go, pick: pending, nth: 1 }, After::ByRename),
        (CrashPoint { name: "write the pending file", syscall: &["write"], starts: creates_pending, pick: not_stdout, nth: 1 }, After::ByRename),
        (CrashPoint { name: "fsync the pending file", syscall: &["fsync", "fdatasync"], starts: creates_pending, pick: any, nth: 1 }, After::ByRename),
        (CrashPoint { name: "bump the generation", syscall: &["pwrite64"], starts: creates_pending, pick: any, nth: 1 }, After::ByRename),
        (CrashPoint { name: "rename over the data file", syscall: RENAME, starts: creates_pending, pick: pending, nth: 1 }, After::ByRename),
        (CrashPoint { name: "fsync the directory", syscall: &["fsync", "fdatasync"], starts: creates_pending, pick: any, nth: 2 }, After::ByRename),
        (CrashPoint { name: "unlock", syscall: &["flock"], starts: creates_pending, pick: unlock, nth: 1 }, After::ByRename),
    ];
    #[rustfmt::skip]
    let release: [(CrashPoint, After); 3] = [
        (CrashPoint { name: "delete the data file", syscall: UNLINK, starts: any, pick: data, nth: 1 }, After::Alive),
        (CrashPoint { name: "delete the lock file", syscall: UNLINK, starts: releasing, pick: lock, nth: 1 }, After::Released),
        (CrashPoint { name: "fsync the directory", syscall: &["fsync", "fdatasync"], starts: releasing, pick: any, nth: 1 }, After::Released),
    ];

    for (is_release, points) in [(false, &commit[..]), (true, &release[..])] {
        // Learn where each point is from one undisturbed run in the same situation: an
        // existing atom at 10.
        let scratch = tempfile::tempdir().unwrap();
        let scratch_path = scratch.path().join(DATA);
        drop(enduro_file::file_atom(10u64, &scratch_path).unwrap());
        let args = |path: &Path| -> Vec<String> {
            let path = path.to_str().unwrap().to_owned();
            if is_release {
                vec!["release".into(), path]
            } else {
                vec!["count".into(), path, "1".into()]
            }
        };
        let scratch_args = args(&scratch_path);
        let scratch_args: Vec<&str> = scratch_args.iter().map(String::as_str).collect();
        let trace = traced_worker(scratch.path(), &scratch_args, None);

        for (point, after) in points {
            let what = format!(
                "SIGKILL before `{}` of a {}",
                point.name,
                if is_release { "release" } else { "commit" }
            );
            let (syscall, n, at) = locate(&trace, point);
            let after = match after {
                After::ByRename => {
                    let rename = CrashPoint {
                        name: "rename",
                        syscall: RENAME,
                        starts: creates_pending,
                        pick: pending,
                        nth: 1,
                    };
                    let (_, _, renamed_at) = locate(&trace, &rename);
                    if at <= renamed_at {
                        After::Old
                    } else {
                        After::New
                    }
                }
                other => *other,
            };
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(DATA);
            let resident = FileAtom::builder(&path)
                .lock_timeout(HANG)
                .open(10u64)
                .unwrap();
            let worker_args = args(&path);
            let worker_args: Vec<&str> = worker_args.iter().map(String::as_str).collect();
            let killed = traced_worker(dir.path(), &worker_args, Some((&syscall, n)));
            // The call the signal cut short ends in `= ?`, as do the calls other threads
            // (qemu-user's own) were blocked in; it must be the last call of its thread.
            let calls = calls(&killed);
            let hit = calls.iter().enumerate().any(|(i, l)| {
                syscall_of(l) == syscall
                    && (point.pick)(l)
                    && l.ends_with("= ?")
                    && !calls[i + 1..].iter().any(|m| tracee_of(m) == tracee_of(l))
            });
            assert!(hit, "{what}: killed elsewhere:\n{killed}");
            pending_or_unexplained(dir.path()).unwrap_or_else(|e| panic!("{what}: {e}"));

            match after {
                After::Old | After::New | After::Alive | After::ByRename => {
                    let want = if after == After::New { 11 } else { 10 };
                    let value = on_disk(&path).unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert_eq!(value, want, "{what}: on disk");
                    assert_eq!(*resident.refresh().unwrap(), want, "{what}: refresh");
                    assert_eq!(*resident.swap(|n| n + 1).unwrap(), want + 1, "{what}");
                }
                After::Released => {
                    assert!(!path.exists(), "{what}: the data file is gone");
                    let err = resident.swap(|n| n + 1).unwrap_err();
                    assert!(matches!(err, enduro_core::Error::Released), "{what}: {err}");
                    assert!(resident.is_released(), "{what}");
                }
            }
            // The path opens (afresh, at `init`, after a release), cleans up, and works.
            let fresh = FileAtom::builder(&path)
                .lock_timeout(HANG)
                .open(7u64)
                .unwrap_or_else(|e| panic!("{what}: cannot open: {e}"));
            let value = *fresh.deref();
            if after == After::Released {
                assert_eq!(value, 7, "{what}: a released atom opens afresh");
            } else {
                assert_eq!(value, *resident.deref(), "{what}: the reopen sees the swap");
            }
            assert_eq!(*fresh.swap(|n| n + 1).unwrap(), value + 1, "{what}");
            assert_eq!(names(dir.path()), [LOCK, DATA], "{what}");
            println!("{what}: ok ({after:?}; killed at {syscall} #{n})");
        }
    }
}

/// Group commit under fire: a child whose 8 threads swap one atom at once (their swaps
/// share commits) is SIGKILLed at random moments. Every acknowledged value must be on
/// disk, and at most one unreported swap per thread may be there beyond them.
fn sigkill_during_group_commits_never_loses_an_acknowledged_swap() {
    const THREADS: u64 = 8;
    let kills = env_number("ENDURO_TORTURE_KILLS").map_or(100, |k| k.div_ceil(2));
    let seed = seed() ^ 0x9e37_79b9;
    println!("group-commit torture: {kills} kills, seed {seed}");
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DATA);
    let mut start = 0u64;
    let (mut acknowledged_total, mut beyond) = (0u64, 0u64);
    for round in 0..kills {
        let context = format!("kill {round} of {kills} (seed {seed})");
        let threads = THREADS.to_string();
        let mut victim = Victim::spawn_with(&["torture-threads", path.to_str().unwrap(), &threads])
            .unwrap_or_else(|e| panic!("{context}: {e}"));
        victim
            .wait_for_lines(1 + rng.below(40) as usize)
            .unwrap_or_else(|e| panic!("{context}: {e}"));
        thread::sleep(Duration::from_micros(rng.below(3_000)));
        let seen = victim.kill().unwrap_or_else(|e| panic!("{context}: {e}"));

        let (first, acks) = seen.split_first().expect("the worker said ready");
        assert_eq!(*first, format!("ready {start}"), "{context}");
        let values: BTreeSet<u64> = acks
            .iter()
            .map(|line| {
                line.strip_prefix("ack ")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("{context}: bad line `{line}`"))
            })
            .collect();
        assert_eq!(
            values.len(),
            acks.len(),
            "{context}: a value was acknowledged twice"
        );
        let reported = values.len() as u64;
        let on_disk = on_disk(&path).unwrap_or_else(|e| panic!("{context}: {e}"));
        let highest = values.last().copied().unwrap_or(start);
        assert!(
            on_disk >= highest && on_disk >= start + reported,
            "{context}: the file holds {on_disk}, but {reported} swaps up to {highest} were acknowledged from {start}"
        );
        assert!(
            on_disk <= start + reported + THREADS,
            "{context}: the file holds {on_disk}: more than one unreported swap per thread beyond {reported} acknowledged from {start}"
        );
        assert!(
            values.iter().all(|v| *v > start && *v <= on_disk),
            "{context}: {values:?}"
        );
        pending_or_unexplained(dir.path()).unwrap_or_else(|e| panic!("{context}: {e}"));
        acknowledged_total += reported;
        beyond += on_disk - start - reported;
        start = on_disk;
    }
    println!(
        "group-commit torture: {kills} kills, {acknowledged_total} acknowledged swaps, \
         {beyond} durable but unreported when killed; final value {start}"
    );
    // The lock is free and the value whole: a fresh open swaps from it.
    assert_eq!(*reopen(&path).unwrap().swap(|n| n + 1).unwrap(), start + 1);
}
