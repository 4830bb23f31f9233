//! Crash torture of the file backend: a child process (this test binary run again as the
//! worker, in `torture` mode; see `common::worker`) swaps `+1` in a tight loop and prints
//! every acknowledged value on a pipe; we SIGKILL it at a random moment, then check that
//!
//! - the data file decodes (never torn), and holds the value unless a journal is beside it;
//! - the value, as an open reads it (journal replayed), is the last acknowledged one or the
//!   one in flight (acknowledged + 1) — an acknowledged swap is never lost;
//! - nothing is left beside it but the lock file, the journal (in journal mode) and pending
//!   files of the pattern the next open removes, and the next open does remove them;
//! - the lock is not stuck: a fresh open and a swap succeed (the child was most likely
//!   killed inside a commit, holding the lock), and so does a swap through an atom that
//!   was open all along (which must notice the child's commits first).
//!
//! The tortures run with plain commits (a pending file renamed over the data file) and
//! again in journal mode (a record appended to `.NAME.enduro-journal`), where the worker
//! compacts at every commit, every third or seldom (picked at random per worker), and
//! plain handles meet the journal too: one worker at a time; two workers on one file at
//! once, killed one at a time at random (no acknowledged value lost or acknowledged twice;
//! in journal mode also one journal and one plain writer); workers whose threads share
//! group commits. One more kills children while their open creates the file (no value, or
//! a whole one; in either mode, a creation is a rename). And deterministic matrices:
//! strace SIGKILLs a child on entering each syscall of a plain commit, a release, a
//! journal commit (making the journal, appending, starting a stale journal over,
//! compacting), and a plain commit or a release meeting a journal, in turn; each state it
//! leaves is met first by an atom open all along (plain or journal mode) or by a fresh
//! open, in three runs, and must be handled correctly by all of them.
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
        sigkill_at_random_moments_of_journal_commits_never_loses_an_acknowledged_swap,
        two_writers_killed_at_random_never_lose_nor_duplicate_an_acknowledged_swap,
        two_journal_writers_killed_at_random_never_lose_nor_duplicate_an_acknowledged_swap,
        mixed_mode_writers_killed_at_random_never_lose_nor_duplicate_an_acknowledged_swap,
        a_kill_during_the_first_commit_leaves_no_value_or_a_whole_one,
        sigkill_at_each_step_of_a_commit_and_of_a_release_leaves_a_consistent_state,
        sigkill_at_each_step_of_a_journal_commit_leaves_a_consistent_state,
        sigkill_at_each_step_of_retiring_or_releasing_a_journal_leaves_a_consistent_state,
        sigkill_during_group_commits_never_loses_an_acknowledged_swap,
        sigkill_during_journal_group_commits_never_loses_an_acknowledged_swap,
        calls_that_strace_split_between_threads_are_joined,
    ])
}

/// How long the child may stay silent before we call it hung (a stuck lock, say) and fail.
/// A guard so that the test stops by itself, never a measure of speed.
const HANG: Duration = Duration::from_secs(120);

const DATA: &str = "counter.json";
const LOCK: &str = ".counter.json.enduro-lock";
const JOURNAL: &str = ".counter.json.enduro-journal";

/// How a worker, or an atom of the test, commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// By renaming a pending file over the data file (the default).
    Plain,
    /// By appending a record to the journal, compacting once the records pass `Some(bytes)`
    /// (`Some(0)`: at every commit of the counter; `None`: the default bound).
    Journal(Option<u64>),
}

/// The compaction bounds a journal-mode worker of the random tortures picks from: 0
/// compacts at every commit (a record takes a 4 KiB block, more than 8 times the
/// counter's size), 8 KiB at every third, the default (4 MiB) seldom.
const LIMITS: [Option<u64>; 3] = [Some(0), Some(8 << 10), None];

impl Mode {
    fn is_journal(self) -> bool {
        matches!(self, Mode::Journal(_))
    }

    /// A journal-mode worker's, with a compaction bound picked at random from [`LIMITS`].
    fn journal_at_random(rng: &mut Rng) -> Mode {
        Mode::Journal(LIMITS[rng.below(LIMITS.len() as u64) as usize])
    }

    /// Makes the worker that `command` starts commit this way.
    fn apply(self, command: &mut Command) -> &mut Command {
        match self {
            Mode::Plain => command,
            Mode::Journal(None) => worker::journal(command),
            Mode::Journal(Some(limit)) => worker::journal_limit(command, limit),
        }
    }

    /// Opens the counter at `path` as a new process does (replaying a journal, if one
    /// applies), committing this way.
    fn open(self, path: &Path, init: u64) -> Result<Atom<u64>, String> {
        let builder = FileAtom::builder(path)
            .lock_timeout(HANG)
            .journal(self.is_journal());
        let builder = match self {
            Mode::Journal(Some(limit)) => builder.journal_limit(limit),
            _ => builder,
        };
        builder
            .open(init)
            .map_err(|e| format!("cannot open the atom ({self:?}): {e}"))
    }
}

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
    /// Kills after which the value was in the journal only (the data file an older
    /// snapshot).
    journal_ahead: u64,
}

fn sigkill_at_random_moments_never_tears_the_file_nor_loses_an_acknowledged_swap() {
    torture(false);
}

fn sigkill_at_random_moments_of_journal_commits_never_loses_an_acknowledged_swap() {
    torture(true);
}

/// One worker at a time, killed at random moments; in journal mode (`journal`), workers
/// and the long-lived atom commit in journal mode, and every other fresh open is a plain
/// one, whose commit retires the journal (so that the next worker starts one afresh).
fn torture(journal: bool) {
    let name = if journal {
        "journal crash torture"
    } else {
        "crash torture"
    };
    let kills = env_number("ENDURO_TORTURE_KILLS").unwrap_or(200);
    let seed = seed();
    println!("{name}: {kills} kills, seed {seed} (replay: ENDURO_TORTURE_SEED={seed})");
    let mut rng = Rng::new(if journal { seed ^ 0x10a1 } else { seed });

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DATA);
    let resident_mode = if journal {
        Mode::Journal(None)
    } else {
        Mode::Plain
    };
    let resident = resident_mode.open(&path, 0).unwrap();
    let mut start = 0u64;
    let mut tally = Tally::default();
    let began = Instant::now();

    for round in 0..kills {
        let context = format!("kill {round} of {kills} (seed {seed})");
        start = torture_once(
            &mut rng,
            dir.path(),
            start,
            &resident,
            round,
            journal,
            &mut tally,
        )
        .unwrap_or_else(|e| panic!("{context}: {e}"));
    }

    println!(
        "{name}: {} kills in {:.1?}: {} acknowledged swaps, {} kills before the child was \
         ready, {} with the in-flight swap committed, {} leaving a pending file (removed by \
         the next open), {} with the value in the journal only; final value {start}",
        tally.kills,
        began.elapsed(),
        tally.acknowledged,
        tally.before_ready,
        tally.in_flight_committed,
        tally.pending_left,
        tally.journal_ahead,
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
    fn spawn(path: &Path, mode: Mode) -> Result<Victim, String> {
        Self::spawn_with(&["torture", path.to_str().unwrap()], mode)
    }

    fn spawn_with(args: &[&str], mode: Mode) -> Result<Victim, String> {
        let mut command = worker::command(args);
        let Piped {
            child,
            lines,
            reader,
            stderr: errors,
        } = spawn_piped(mode.apply(&mut command))
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

/// Checks that `dir` holds nothing but the data file, its lock file, its journal (where
/// `journal` allows one) and pending files of the pattern an open removes; returns how
/// many pending files there are.
fn pending_or_unexplained(dir: &Path, journal: bool) -> Result<usize, String> {
    let pending_prefix = format!(".{DATA}.");
    let mut pending = 0;
    for name in names(dir) {
        if name == DATA || name == LOCK || (journal && name == JOURNAL) {
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

/// Checks that `dir` holds the data file and its lock file, and nothing else but a
/// journal, where `journal` allows one.
fn settled(dir: &Path, journal: bool) -> Result<(), String> {
    let left = names(dir);
    if left == [LOCK, DATA] || (journal && left == [JOURNAL, LOCK, DATA]) {
        Ok(())
    } else {
        Err(format!("left {left:?}"))
    }
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

/// The value at `path`. The data file must decode (it is never torn); without a
/// `journal`, its value is the answer; with one, the answer is the value a new process
/// opens (journal replayed, under the lock: right while others write, too).
///
/// The open waits for the lock without a timeout: a timeout makes it poll (`try_lock`
/// with pauses of up to 50 ms), and journal-mode workers swapping in a tight loop hold
/// the lock so nearly all the time that polls missed it for seconds. Waiting blocked in
/// the kernel, it gets its turn; it cannot wait forever, as workers stop by themselves.
fn value_of(path: &Path, journal: bool) -> Result<u64, String> {
    let snapshot = on_disk(path)?;
    if !journal {
        return Ok(snapshot);
    }
    let atom = FileAtom::builder(path)
        .open(u64::MAX)
        .map_err(|e| format!("cannot open the atom: {e}"))?;
    Ok(*atom.deref())
}

/// The files in `dir`, with their sizes, and whether the journal's header reads.
fn describe(dir: &Path) -> String {
    let files: Vec<String> = names(dir)
        .into_iter()
        .map(|name| {
            let bytes = std::fs::read(dir.join(&name)).unwrap_or_default();
            let header = if name != JOURNAL {
                ""
            } else if [0, 2048]
                .iter()
                .any(|&at| bytes.get(at..).is_some_and(|b| b.starts_with(b"enduroJ1")))
            {
                ", header written"
            } else if bytes.iter().take(4096).all(|b| *b == 0) {
                ", header blank"
            } else {
                ", header damaged"
            };
            format!("{name} ({} bytes{header})", bytes.len())
        })
        .collect();
    files.join(", ")
}

/// Opens the atom afresh in `mode` (which removes pending files left by crashes) and
/// checks that only the data file, its lock file and (if `journal` allows) the journal
/// remain.
fn reopen(path: &Path, mode: Mode, journal: bool) -> Result<Atom<u64>, String> {
    let atom = mode
        .open(path, u64::MAX)
        .map_err(|e| format!("after the kill: {e}"))?;
    settled(path.parent().unwrap(), journal).map_err(|e| format!("the reopen {e}"))?;
    Ok(atom)
}

/// One child, one kill, the checks. Returns the value the next child starts from.
fn torture_once(
    rng: &mut Rng,
    dir: &Path,
    start: u64,
    resident: &Atom<u64>,
    round: u64,
    journal: bool,
    tally: &mut Tally,
) -> Result<u64, String> {
    let path = dir.join(DATA);
    let mode = if journal {
        Mode::journal_at_random(rng)
    } else {
        Mode::Plain
    };
    let mut victim = Victim::spawn(&path, mode)?;

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

    // Nothing beside the data file but the lock file, the journal and pending files of our
    // pattern; the data file decodes.
    let pending = pending_or_unexplained(dir, journal)?;
    if pending > 0 {
        tally.pending_left += 1;
    }
    let snapshot = on_disk(&path)?;
    let journal_there = dir.join(JOURNAL).exists();
    let left = describe(dir);

    // The lock is not stuck, and both a long-lived atom and a fresh open find the last
    // acknowledged value or the one in flight. They take turns at the swap that follows
    // (in journal mode, every other fresh open is a plain one).
    let fresh_turn = round.is_multiple_of(2);
    let (value, swapped) = if fresh_turn {
        let mode = if journal && round % 4 == 2 {
            Mode::Journal(None)
        } else {
            Mode::Plain
        };
        let fresh = reopen(&path, mode, journal)?;
        let value = *fresh.deref();
        let swapped = fresh
            .swap(|n| n + 1)
            .map_err(|e| format!("cannot swap after the kill: {e}"))?;
        (value, *swapped)
    } else {
        // Its update function may first see its own stale value (a journal-mode atom does
        // not check before a swap): `old` is the value the committed update started from.
        let (old, new) = resident
            .swap_vals(|n| n + 1)
            .map_err(|e| format!("cannot swap after the kill: {e}"))?;
        (*old, *new)
    };
    let who = if fresh_turn {
        "a fresh open"
    } else {
        "the long-lived atom's swap"
    };
    if value == acknowledged + 1 && ready {
        tally.in_flight_committed += 1;
    } else if value != acknowledged {
        return Err(format!(
            "{who} found {value}, but the last acknowledged value is {acknowledged} (in \
             flight: {})",
            if ready { "+1 allowed" } else { "none" }
        ));
    }
    if snapshot != value {
        if !journal_there {
            return Err(format!(
                "the data file holds {snapshot} and no journal is beside it, but {who} \
                 found {value}"
            ));
        }
        tally.journal_ahead += 1;
    }
    if swapped != value + 1 {
        return Err(format!("swapped to {swapped}, not {}", value + 1));
    }
    if *resident.refresh().map_err(|e| e.to_string())? != value + 1 {
        return Err("the long-lived atom does not see the swap".into());
    }
    // And neither is lost for a new process.
    let read = value_of(&path, journal)?;
    if read != value + 1 {
        return Err(format!(
            "{who} swapped {value} to {} (acknowledged), but an open then finds {read}; \
             the kill ({mode:?} worker, {acknowledged} acknowledged) had left {left}, and \
             the swap left {}",
            value + 1,
            describe(dir)
        ));
    }
    if !fresh_turn && pending > 0 {
        // Only an open cleans up: do one, and check that it does.
        reopen(&path, Mode::Plain, journal)?;
    }
    Ok(value + 1)
}

fn two_writers_killed_at_random_never_lose_nor_duplicate_an_acknowledged_swap() {
    two_writers("two-writer torture", [Mode::Plain; 2], 0x5eed);
}

fn two_journal_writers_killed_at_random_never_lose_nor_duplicate_an_acknowledged_swap() {
    // One compacts at every commit, the other seldom: compactions land between the
    // other's appends.
    two_writers(
        "two-journal-writer torture",
        [Mode::Journal(Some(0)), Mode::Journal(None)],
        0x5eed_1001,
    );
}

fn mixed_mode_writers_killed_at_random_never_lose_nor_duplicate_an_acknowledged_swap() {
    // The plain writer's commits retire the journal, the journal writer's start it again:
    // the two modes must agree on the value at every turn.
    two_writers(
        "mixed-writer torture",
        [Mode::Journal(Some(8 << 10)), Mode::Plain],
        0x5eed_2002,
    );
}

/// Two children (committing in `modes`) swap on one file at once; we kill one or the
/// other at random moments (often while it holds the lock, with the other waiting for it)
/// and start a new one in its mode. Every acknowledged value must be unique (two writers
/// acknowledging the same value would be a lost update), the data file must always decode,
/// and the value never fall behind an acknowledgement.
fn two_writers(name: &str, modes: [Mode; 2], salt: u64) {
    let kills = env_number("ENDURO_TORTURE_KILLS").unwrap_or(200);
    let seed = seed();
    println!("{name}: {kills} kills, seed {seed} (replay: ENDURO_TORTURE_SEED={seed})");
    let mut rng = Rng::new(seed ^ salt);
    let journal = modes.iter().any(|m| m.is_journal());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DATA);
    drop(enduro_file::file_atom(0u64, &path).unwrap());
    let began = Instant::now();

    let fail = |kill: u64, e: String| -> ! { panic!("kill {kill} of {kills} (seed {seed}): {e}") };
    let mut acknowledged = BTreeSet::new();
    let mut victims = modes.map(|mode| Victim::spawn(&path, mode).unwrap());
    for kill in 0..kills {
        let i = rng.below(2) as usize;
        let target = victims[i].seen.len() + 1 + rng.below(4) as usize;
        victims[i]
            .wait_for_lines(target)
            .unwrap_or_else(|e| fail(kill, e));
        thread::sleep(Duration::from_micros(rng.below(3_000)));
        let replacement = Victim::spawn(&path, modes[i]).unwrap_or_else(|e| fail(kill, e));
        let killed = std::mem::replace(&mut victims[i], replacement);
        let lines = killed.kill().unwrap_or_else(|e| fail(kill, e));
        record(&mut acknowledged, &lines).unwrap_or_else(|e| fail(kill, e));
        pending_or_unexplained(dir.path(), journal).unwrap_or_else(|e| fail(kill, e));
        let value = value_of(&path, journal).unwrap_or_else(|e| fail(kill, e));
        let highest = acknowledged.last().copied().unwrap_or(0);
        if value < highest {
            fail(
                kill,
                format!("the value is {value}, below the acknowledged {highest}"),
            );
        }
    }
    for victim in victims {
        let lines = victim.kill().unwrap_or_else(|e| fail(kills, e));
        record(&mut acknowledged, &lines).unwrap_or_else(|e| fail(kills, e));
    }

    let value = value_of(&path, journal).unwrap_or_else(|e| fail(kills, e));
    let highest = acknowledged.last().copied().unwrap_or(0);
    // Every value in 1..=value was committed by some swap; those not acknowledged were in
    // flight in a killed worker, at most one per kill.
    let unacknowledged = value - acknowledged.len() as u64;
    println!(
        "{name}: {} kills in {:.1?}: {} acknowledged swaps, {unacknowledged} committed in \
         flight; final value {value}",
        kills + 2,
        began.elapsed(),
        acknowledged.len(),
    );
    assert!(
        value >= highest,
        "the value is {value}, below the acknowledged {highest}"
    );
    assert!(
        unacknowledged <= kills + 2,
        "{unacknowledged} values were committed without acknowledgement, after {} kills",
        kills + 2
    );
    let atom = reopen(&path, modes[0], journal).unwrap();
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
        let victim = Victim::spawn(&path, Mode::Plain).unwrap_or_else(|e| fail(e));
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
        pending_or_unexplained(dir.path(), false).unwrap_or_else(|e| fail(e));
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
/// the first call that `starts` (a line of the trace), whose trace line passes `pick`;
/// and what a kill there must leave. strace shows the path of each descriptor (`-y`), so
/// `pick` can tell files apart.
#[derive(Clone, Copy)]
struct CrashPoint {
    name: &'static str,
    syscall: &'static [&'static str],
    starts: fn(&str) -> bool,
    pick: fn(&str) -> bool,
    nth: usize,
    after: After,
}

/// The first call of `syscall` that passes `pick` after the worker's go (see [`go`]),
/// leaving the old or the new value by the trace's order; the methods below change that.
fn at(name: &'static str, syscall: &'static [&'static str], pick: fn(&str) -> bool) -> CrashPoint {
    CrashPoint {
        name,
        syscall,
        starts: go,
        pick,
        nth: 1,
        after: After::ByOrder,
    }
}

impl CrashPoint {
    /// The `nth` such call.
    fn nth(self, nth: usize) -> Self {
        CrashPoint { nth, ..self }
    }

    /// Counted from the first call that `starts`.
    fn counted_from(self, starts: fn(&str) -> bool) -> Self {
        CrashPoint { starts, ..self }
    }

    /// Leaving `after`.
    fn leaves(self, after: After) -> Self {
        CrashPoint { after, ..self }
    }
}

const TRACED: &str = "trace=openat,write,fsync,fdatasync,rename,renameat,renameat2,pwrite64,\
                      flock,unlink,unlinkat";

/// Runs the worker with `args`, committing in `mode`, under strace; with `kill_at =
/// Some((syscall, n))`, strace SIGKILLs it on entering the n-th call of that syscall
/// (before the call does anything). Returns the trace.
fn traced_worker(dir: &Path, mode: Mode, args: &[&str], kill_at: Option<(&str, usize)>) -> String {
    let trace = dir.join("strace.out");
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-y", "-e", TRACED, "-o"]).arg(&trace);
    if let Some((syscall, n)) = kill_at {
        cmd.args(["-e", &format!("inject={syscall}:signal=KILL:when={n}")]);
    }
    let mut child = mode
        .apply(worker::run_under(&mut cmd, args))
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
            "worker {args:?} ({mode:?}) failed under strace: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Some(_) => assert!(
            text.contains("+++ killed by SIGKILL +++"),
            "worker {args:?} ({mode:?}) was not killed at {kill_at:?}: {}\n{text}",
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
    /// For a commit: the old value if the crash comes before the matrix's decisive call (or
    /// at it: the call never runs), the new one if after; read from the trace's order.
    ByOrder,
    /// The old value (the crash came before the decisive call).
    Old,
    /// The new value (the crash came after it).
    New,
    /// For release: nothing was deleted yet; the atom lives on.
    Alive,
    /// For release: the data file is gone; other atoms see the atom released.
    Released,
}

/// A deterministic crash matrix: a situation (a counter at 10), a worker run in it, and
/// the calls to kill it at, each in a run of its own.
struct Matrix {
    /// What the worker does, for messages: "a plain commit".
    what: &'static str,
    /// Brings a fresh path to the situation.
    setup: fn(&Path),
    /// How the worker commits.
    mode: Mode,
    /// The worker releases the atom (else it swaps +1 once).
    release: bool,
    /// Whether a journal may be beside the data file after a kill.
    journal: bool,
    /// The call that puts the new value where readers find it (see [`After::ByOrder`]).
    decisive: CrashPoint,
    points: Vec<CrashPoint>,
}

/// Who meets the state that a kill left first, and writes to it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum First {
    /// An atom of the parent, open all along, committing by rename (no refresh first).
    PlainResident,
    /// One committing in journal mode (no refresh first).
    JournalResident,
    /// A fresh open, as a new process opens the path (in journal mode after a journal-mode
    /// worker, else plain).
    Fresh,
}

/// The atoms of the parent open on the path all along: one committing by rename, one in
/// journal mode.
fn open_residents(path: &Path) -> [Atom<u64>; 2] {
    [Mode::Plain, Mode::Journal(None)].map(|mode| mode.open(path, 10).unwrap())
}

/// A counter at 10, committed by rename: no journal.
fn plain_at_ten(path: &Path) {
    drop(Mode::Plain.open(path, 10).unwrap());
}

/// A counter at 10 held by the journal: the data file holds its snapshot, 8, and two
/// records follow.
fn journal_at_ten(path: &Path) {
    let atom = Mode::Journal(None).open(path, 8).unwrap();
    atom.swap(|n| n + 1).unwrap();
    atom.swap(|n| n + 1).unwrap();
    assert_eq!(on_disk(path).unwrap(), 8);
}

/// A counter at 10 just compacted: the data file holds 10, and the journal, started over
/// on it, no record.
fn compacted_at_ten(path: &Path) {
    let atom = Mode::Journal(Some(0)).open(path, 9).unwrap();
    atom.swap(|n| n + 1).unwrap();
    assert_eq!(on_disk(path).unwrap(), 10);
    assert!(path.with_file_name(JOURNAL).exists());
}

/// A counter at 10 with a stale journal beside it: one whose snapshot (8) is not the data
/// file, as a crash between a compaction's rename and the journal's new start leaves it.
fn stale_journal_at_ten(path: &Path) {
    let journal = path.with_file_name(JOURNAL);
    let atom = Mode::Journal(None).open(path, 8).unwrap();
    atom.swap(|n| n + 1).unwrap();
    let stale = std::fs::read(&journal).unwrap();
    drop(atom);
    // A plain commit retires the journal (and writes 9 as the snapshot first).
    assert_eq!(
        *Mode::Plain.open(path, 0).unwrap().swap(|n| n + 1).unwrap(),
        10
    );
    assert!(!journal.exists());
    std::fs::write(&journal, stale).unwrap();
}

const UNLINK: &[&str] = &["unlink", "unlinkat"];
const RENAME: &[&str] = &["rename", "renameat", "renameat2"];
const FSYNC: &[&str] = &["fsync", "fdatasync"];

// What a trace line is about. A call's descriptors show their paths (`-y`).
fn any(_: &str) -> bool {
    true
}
fn pending(l: &str) -> bool {
    l.contains(".enduro-pending")
}
fn data(l: &str) -> bool {
    l.contains(&format!("/{DATA}\""))
}
fn lock(l: &str) -> bool {
    l.contains(LOCK)
}
fn journal(l: &str) -> bool {
    l.contains(JOURNAL)
}
/// A call on the directory: one that names none of the atom's files.
fn dir(l: &str) -> bool {
    !l.contains(DATA)
}
fn unlock(l: &str) -> bool {
    l.contains("LOCK_UN")
}
/// The worker says "ready" and is told to go: its commit starts.
fn go(l: &str) -> bool {
    syscall_of(l) == "write" && l.contains("\"ready\\n\"")
}
fn creates(l: &str) -> bool {
    syscall_of(l) == "openat" && l.contains("O_CREAT")
}
fn creates_pending(l: &str) -> bool {
    creates(l) && pending(l)
}
fn creates_journal(l: &str) -> bool {
    creates(l) && journal(l)
}
/// A release starts: the data file goes.
fn releasing(l: &str) -> bool {
    syscall_of(l).starts_with("unlink") && data(l)
}
/// The journal's header, both copies, written as a new journal is made.
fn header(l: &str) -> bool {
    l.contains("\"enduroJ1") && l.contains(", 4096, 0)")
}
/// The header's copy A (at 0) or B (at 2048), written as the journal starts over.
fn header_a(l: &str) -> bool {
    l.contains("\"enduroJ1") && l.contains(", 64, 0)")
}
fn header_b(l: &str) -> bool {
    l.contains("\"enduroJ1") && l.contains(", 64, 2048)")
}
/// Zeros written into the journal: the room for records.
fn zeros(l: &str) -> bool {
    journal(l) && l.contains(r#", "\0\0\0\0"#)
}
/// A record written into the journal.
fn journal_record(l: &str) -> bool {
    journal(l) && l.contains("\"EJR1")
}

const OPENAT: &[&str] = &["openat"];
const WRITE: &[&str] = &["write"];
const PWRITE: &[&str] = &["pwrite64"];
const FLOCK: &[&str] = &["flock"];

/// A plain commit's calls (after the snapshot of a journal, if any): create and write the
/// pending file, flush it, bump the generation, rename it over the data file (the `nth`
/// pending file and rename since the commit started), flush the directory (its
/// `dir_sync`-th flush since), unlock.
#[rustfmt::skip]
fn plain_commit(nth: usize, dir_sync: usize) -> Vec<CrashPoint> {
    vec![
        at("create the pending file", OPENAT, creates_pending).nth(nth),
        at("write the pending file", WRITE, pending).nth(nth),
        at("fsync the pending file", FSYNC, pending).nth(nth),
        at("bump the generation", PWRITE, lock),
        at("rename over the data file", RENAME, pending).nth(nth),
        at("fsync the directory", FSYNC, dir).nth(dir_sync),
        at("unlock", FLOCK, unlock),
    ]
}

/// The decisive call of a plain commit: its `nth` rename since it started.
fn renames(nth: usize) -> CrashPoint {
    at("rename", RENAME, pending).nth(nth)
}

/// A journal commit's append: write the record (the decisive call), flush it once.
#[rustfmt::skip]
fn append() -> Vec<CrashPoint> {
    vec![
        writes_the_record(),
        at("fdatasync the record", FSYNC, journal).counted_from(journal_record),
    ]
}

/// A journal just made or started over moves the lock file's generation before its first
/// record (appends to a journal that runs leave the lock file alone).
fn bumps_the_generation() -> CrashPoint {
    at("bump the generation", PWRITE, lock)
}

fn writes_the_record() -> CrashPoint {
    at("write the record", PWRITE, journal_record)
}

/// Starting the journal over: the header's copy A, flushed, then copy B, flushed.
#[rustfmt::skip]
fn restart() -> Vec<CrashPoint> {
    vec![
        at("write the header's copy A", PWRITE, header_a),
        at("fdatasync copy A", FSYNC, journal).counted_from(header_a),
        at("write the header's copy B", PWRITE, header_b),
        at("fdatasync copy B", FSYNC, journal).counted_from(header_b),
    ]
}

/// Writing the value as a snapshot (for a compaction, or before a plain commit retires the
/// journal): the rename protocol.
#[rustfmt::skip]
fn snapshot() -> Vec<CrashPoint> {
    vec![
        at("create the snapshot's pending file", OPENAT, creates_pending),
        at("write the snapshot", WRITE, pending),
        at("fsync the snapshot", FSYNC, pending),
        at("rename the snapshot over the data file", RENAME, pending),
        at("fsync the directory after the snapshot", FSYNC, dir),
    ]
}

fn unlocks() -> CrashPoint {
    at("unlock", FLOCK, unlock)
}

/// The release: delete the data file (the decisive call), then the journal, a pending
/// file, the lock file, then flush the directory.
fn deletes_the_data_file() -> CrashPoint {
    at("delete the data file", UNLINK, data)
        .counted_from(any)
        .leaves(After::Alive)
}

/// A release's steps: delete the data file (the decisive call), then the journal (with
/// `with_journal`), the pending file and the lock file, then fsync the directory.
fn release_points(with_journal: bool) -> Vec<CrashPoint> {
    let released = |name, syscall, pick| {
        at(name, syscall, pick)
            .counted_from(releasing)
            .leaves(After::Released)
    };
    let mut points = vec![deletes_the_data_file()];
    if with_journal {
        points.push(released("delete the journal", UNLINK, journal));
    }
    points.extend([
        released("delete the pending file", UNLINK, pending),
        released("delete the lock file", UNLINK, lock),
        released("fsync the directory", FSYNC, dir),
    ]);
    points
}

fn sigkill_at_each_step_of_a_commit_and_of_a_release_leaves_a_consistent_state() {
    // Deterministic crash points, with real SIGKILLs: strace kills the worker on entering
    // a chosen syscall of its commit (or release), so the syscall never runs.
    crash_matrices(vec![
        Matrix {
            what: "a plain commit",
            setup: plain_at_ten,
            mode: Mode::Plain,
            release: false,
            journal: false,
            decisive: renames(1),
            points: plain_commit(1, 1),
        },
        Matrix {
            what: "a release",
            setup: plain_at_ten,
            mode: Mode::Plain,
            release: true,
            journal: false,
            decisive: deletes_the_data_file(),
            points: release_points(false),
        },
    ]);
}

fn sigkill_at_each_step_of_a_journal_commit_leaves_a_consistent_state() {
    #[rustfmt::skip]
    let creating = vec![
        at("create the journal", OPENAT, creates_journal),
        at("write the journal's header", PWRITE, header),
        at("fill the journal with zeros", PWRITE, zeros),
        at("fsync the zeros", FSYNC, journal),
        at("fsync the new journal", FSYNC, journal).nth(2),
        at("fsync the directory", FSYNC, dir),
        bumps_the_generation(),
    ];
    let journal_commit = |what: &'static str,
                          setup: fn(&Path),
                          limit: Option<u64>,
                          before: Vec<CrashPoint>,
                          after: Vec<CrashPoint>| {
        Matrix {
            what,
            setup,
            mode: Mode::Journal(limit),
            release: false,
            journal: true,
            decisive: writes_the_record(),
            points: [before, append(), after, vec![unlocks()]].concat(),
        }
    };
    crash_matrices(vec![
        journal_commit(
            "a journal commit making the journal",
            plain_at_ten,
            None,
            creating,
            vec![],
        ),
        journal_commit(
            "a journal commit appending",
            journal_at_ten,
            None,
            vec![],
            vec![],
        ),
        journal_commit(
            "a journal commit starting a stale journal over",
            stale_journal_at_ten,
            None,
            [restart(), vec![bumps_the_generation()]].concat(),
            vec![],
        ),
        journal_commit(
            "a journal commit compacting",
            journal_at_ten,
            Some(0),
            vec![],
            [snapshot(), restart()].concat(),
        ),
    ]);
}

fn sigkill_at_each_step_of_retiring_or_releasing_a_journal_leaves_a_consistent_state() {
    // A plain commit on a path with a journal writes the value as the snapshot first (the
    // rename protocol; even when no record holds it), then deletes the journal, durably,
    // then commits.
    let delete_the_journal = |dir_sync| {
        vec![
            at("delete the journal", UNLINK, journal),
            at("fsync the directory after deleting the journal", FSYNC, dir).nth(dir_sync),
        ]
    };
    crash_matrices(vec![
        Matrix {
            what: "a plain commit meeting a journal",
            setup: journal_at_ten,
            mode: Mode::Plain,
            release: false,
            journal: true,
            decisive: renames(2),
            points: [snapshot(), delete_the_journal(2), plain_commit(2, 3)].concat(),
        },
        Matrix {
            what: "a plain commit meeting a journal without records",
            setup: compacted_at_ten,
            mode: Mode::Plain,
            release: false,
            journal: true,
            // The snapshot is written all the same: a new data file is what tells the
            // handles that keep the journal open that it is gone.
            decisive: renames(2),
            points: [snapshot(), delete_the_journal(2), plain_commit(2, 3)].concat(),
        },
        Matrix {
            what: "a release of a journal's value",
            setup: journal_at_ten,
            mode: Mode::Journal(None),
            release: true,
            journal: true,
            decisive: deletes_the_data_file(),
            points: release_points(true),
        },
    ]);
}

/// Runs each matrix: learns where each of its points is from one undisturbed traced run
/// in the same situation, then, for each point and each of the three who may meet the
/// state first ([`First`]), sets the situation up afresh, kills the worker there and
/// checks what it left.
fn crash_matrices(matrices: Vec<Matrix>) {
    if !have_strace() {
        return;
    }
    let (mut kills, mut failed) = (0, Vec::new());
    let began = Instant::now();
    for m in &matrices {
        let args = |path: &Path| -> Vec<String> {
            let path = path.to_str().unwrap().to_owned();
            if m.release {
                vec!["release".into(), path]
            } else {
                vec!["count".into(), path, "1".into()]
            }
        };
        let scratch = tempfile::tempdir().unwrap();
        let scratch_path = scratch.path().join(DATA);
        (m.setup)(&scratch_path);
        let others = open_residents(&scratch_path);
        let scratch_args = args(&scratch_path);
        let scratch_args: Vec<&str> = scratch_args.iter().map(String::as_str).collect();
        let trace = traced_worker(scratch.path(), m.mode, &scratch_args, None);
        drop(others);
        let (_, _, decided_at) = locate(&trace, &m.decisive);

        for point in &m.points {
            let what = format!("SIGKILL before `{}` of {}", point.name, m.what);
            let (syscall, n, at) = locate(&trace, point);
            let after = match point.after {
                After::ByOrder if at <= decided_at => After::Old,
                After::ByOrder => After::New,
                other => other,
            };
            for first in [First::PlainResident, First::JournalResident, First::Fresh] {
                let what = format!("{what} ({first:?} first)");
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join(DATA);
                (m.setup)(&path);
                let residents = open_residents(&path);
                let worker_args = args(&path);
                let worker_args: Vec<&str> = worker_args.iter().map(String::as_str).collect();
                let killed = traced_worker(dir.path(), m.mode, &worker_args, Some((&syscall, n)));
                // The call the signal cut short ends in `= ?`, as do the calls other
                // threads (qemu-user's own) were blocked in; it must be the last call of
                // its thread.
                let calls = calls(&killed);
                let hit = calls.iter().enumerate().any(|(i, l)| {
                    syscall_of(l) == syscall
                        && (point.pick)(l)
                        && l.ends_with("= ?")
                        && !calls[i + 1..].iter().any(|m| tracee_of(m) == tracee_of(l))
                });
                assert!(hit, "{what}: killed elsewhere:\n{killed}");
                pending_or_unexplained(dir.path(), m.journal)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                let fresh = if m.mode.is_journal() {
                    Mode::Journal(None)
                } else {
                    Mode::Plain
                };
                kills += 1;
                // Every point is tried, failed or not, and the failures listed at the end.
                if let Err(e) = after_kill(dir.path(), after, first, fresh, &residents, m.journal) {
                    println!("FAILED: {what}: {e}");
                    failed.push(format!("{what}: {e}"));
                }
            }
            println!("{what}: done ({after:?}; killed at {syscall} #{n})");
        }
    }
    println!(
        "{kills} kills at {} crash points in {:.1?}",
        kills / 3,
        began.elapsed()
    );
    assert!(
        failed.is_empty(),
        "{} of {kills} kills left a state that was not handled:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

/// Checks the state a kill left in `dir`, as `after` says, met first by `first`: the atoms
/// open all along (`residents`: plain, journal) and a fresh open (in `fresh` mode) find
/// the value, swap from it in turn, and see each other's swaps.
fn after_kill(
    dir: &Path,
    after: After,
    first: First,
    fresh: Mode,
    residents: &[Atom<u64>; 2],
    journal: bool,
) -> Result<(), String> {
    let path = dir.join(DATA);
    let [plain, in_journal] = residents;
    if after == After::Released {
        if path.exists() {
            return Err("the data file is still there".into());
        }
        let reopened = |fresh: Mode| -> Result<(), String> {
            // A released atom opens afresh, at `init`.
            let atom = fresh.open(&path, 7)?;
            if *atom.deref() != 7 {
                return Err(format!("reopened at {}, not 7", atom.deref()));
            }
            match atom.swap(|n| n + 1) {
                Ok(n) if *n == 8 => Ok(()),
                other => Err(format!("the reopened atom swapped to {other:?}")),
            }
        };
        if first == First::Fresh {
            reopened(fresh)?;
        }
        for atom in residents {
            match atom.swap(|n| n + 1) {
                Err(enduro_core::Error::Released) if atom.is_released() => {}
                other => return Err(format!("a resident's swap gave {other:?}, not Released")),
            }
        }
        if first != First::Fresh {
            reopened(fresh)?;
        }
        return settled(dir, journal);
    }

    let want = if after == After::New { 11 } else { 10 };
    // The data file is whole; without a journal beside it, it holds the value.
    let snapshot = on_disk(&path)?;
    if !dir.join(JOURNAL).exists() && snapshot != want {
        return Err(format!(
            "the data file holds {snapshot} without a journal, not {want}"
        ));
    }
    let refresh = |atom: &Atom<u64>, value: u64, who: &str| -> Result<(), String> {
        match atom.refresh() {
            Ok(n) if *n == value => Ok(()),
            other => Err(format!("{who}'s refresh gave {other:?}, not {value}")),
        }
    };
    // Swaps +1 through `atom` (with no refresh before: it finds the value by itself).
    let swap = |atom: &Atom<u64>, value: &mut u64, who: &str| -> Result<(), String> {
        match atom.swap_vals(|n| n + 1) {
            Ok((old, new)) if (*old, *new) == (*value, *value + 1) => {
                *value += 1;
                Ok(())
            }
            Ok((old, new)) => Err(format!(
                "{who}'s swap went from {old} to {new}, but the value was {value}"
            )),
            Err(e) => Err(format!("{who}'s swap from {value} failed: {e}")),
        }
    };
    let mut value = want;
    match first {
        First::PlainResident => {
            refresh(in_journal, value, "the journal resident")?;
            swap(plain, &mut value, "the plain resident")?;
            swap(in_journal, &mut value, "the journal resident")?;
        }
        First::JournalResident => {
            refresh(plain, value, "the plain resident")?;
            swap(in_journal, &mut value, "the journal resident")?;
            swap(plain, &mut value, "the plain resident")?;
        }
        First::Fresh => {
            refresh(plain, value, "the plain resident")?;
            refresh(in_journal, value, "the journal resident")?;
        }
    }
    // The path opens (cleaning up pending files), at the value, and works.
    let atom = fresh.open(&path, 7)?;
    if *atom.deref() != value {
        return Err(format!(
            "the fresh open found {}, not {value}",
            atom.deref()
        ));
    }
    swap(&atom, &mut value, "the fresh atom")?;
    if first == First::Fresh {
        swap(in_journal, &mut value, "the journal resident")?;
        swap(plain, &mut value, "the plain resident")?;
    }
    refresh(&atom, value, "the fresh atom")?;
    refresh(plain, value, "the plain resident")?;
    refresh(in_journal, value, "the journal resident")?;
    settled(dir, journal)
}

/// Group commit under fire: a child whose 8 threads swap one atom at once (their swaps
/// share commits) is SIGKILLed at random moments. Every acknowledged value must be on
/// disk, and at most one unreported swap per thread may be there beyond them.
fn sigkill_during_group_commits_never_loses_an_acknowledged_swap() {
    group_commits("group-commit torture", false);
}

/// The same in journal mode: a record per group (a compaction at every third).
fn sigkill_during_journal_group_commits_never_loses_an_acknowledged_swap() {
    group_commits("journal group-commit torture", true);
}

fn group_commits(name: &str, journal: bool) {
    const THREADS: u64 = 8;
    let kills = env_number("ENDURO_TORTURE_KILLS").map_or(100, |k| k.div_ceil(2));
    let seed = seed() ^ if journal { 0x6a09_e667 } else { 0x9e37_79b9 };
    println!("{name}: {kills} kills, seed {seed}");
    let mut rng = Rng::new(seed);
    let mode = if journal {
        Mode::Journal(Some(8 << 10))
    } else {
        Mode::Plain
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DATA);
    let mut start = 0u64;
    let (mut acknowledged_total, mut beyond) = (0u64, 0u64);
    for round in 0..kills {
        let context = format!("kill {round} of {kills} (seed {seed})");
        let threads = THREADS.to_string();
        let mut victim =
            Victim::spawn_with(&["torture-threads", path.to_str().unwrap(), &threads], mode)
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
        pending_or_unexplained(dir.path(), journal).unwrap_or_else(|e| panic!("{context}: {e}"));
        let value = value_of(&path, journal).unwrap_or_else(|e| panic!("{context}: {e}"));
        let highest = values.last().copied().unwrap_or(start);
        assert!(
            value >= highest && value >= start + reported,
            "{context}: the value is {value}, but {reported} swaps up to {highest} were acknowledged from {start}"
        );
        assert!(
            value <= start + reported + THREADS,
            "{context}: the value is {value}: more than one unreported swap per thread beyond {reported} acknowledged from {start}"
        );
        assert!(
            values.iter().all(|v| *v > start && *v <= value),
            "{context}: {values:?}"
        );
        acknowledged_total += reported;
        beyond += value - start - reported;
        start = value;
    }
    println!(
        "{name}: {kills} kills, {acknowledged_total} acknowledged swaps, {beyond} durable but \
         unreported when killed; final value {start}"
    );
    // The lock is free and the value whole: a fresh open swaps from it.
    let atom = reopen(&path, mode, journal).unwrap();
    assert_eq!(*atom.swap(|n| n + 1).unwrap(), start + 1);
}
