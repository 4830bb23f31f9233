//! Crash torture of the file backend: a child process (the `enduro-file-worker` binary in
//! `torture` mode) swaps `+1` in a tight loop and prints every acknowledged value on a
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
//! 200 kills by default; `ENDURO_TORTURE_KILLS=N` for more (or `cargo xtask torture N`),
//! `ENDURO_TORTURE_SEED=S` to replay the kill moments of a run (the seed is printed).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use enduro::{Atom, FileAtom};

const WORKER: &str = env!("CARGO_BIN_EXE_enduro-file-worker");

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

/// What one kill found.
#[derive(Default)]
struct Tally {
    kills: u64,
    before_ready: u64,
    in_flight_committed: u64,
    pending_left: u64,
    acknowledged: u64,
}

#[test]
fn sigkill_at_random_moments_never_tears_the_file_nor_loses_an_acknowledged_swap() {
    let kills = env_number("ENDURO_TORTURE_KILLS").unwrap_or(200);
    let seed = env_number("ENDURO_TORTURE_SEED").unwrap_or_else(|| {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        now.as_nanos() as u64 ^ u64::from(std::process::id()) << 32
    });
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
    let mut child = Command::new(WORKER)
        .args(["torture", path.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the worker: {e}"))?;
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel();
    let reader = thread::spawn(move || {
        // Only whole lines: a line is written with one write(2) of a few bytes, so it
        // arrives whole or not at all.
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let errors = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });

    // Pick the moment: now and then right away (during start-up and open, maybe while it
    // cleans up pending files); mostly after a few acknowledged swaps plus a random pause,
    // which lands anywhere in a commit.
    let mut seen = Vec::new();
    if rng.below(10) == 0 {
        thread::sleep(Duration::from_micros(rng.below(5_000)));
    } else {
        let wanted = 1 + rng.below(6) as usize; // "ready" and up to 5 acknowledgements
        while seen.len() < wanted {
            match lines.recv_timeout(HANG) {
                Ok(line) => seen.push(line),
                Err(RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("the worker printed nothing for {HANG:?}: hung"));
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        thread::sleep(Duration::from_micros(rng.below(3_000)));
    }
    child
        .kill()
        .map_err(|e| format!("cannot kill the worker: {e}"))?;
    let status = child.wait().unwrap();
    reader.join().unwrap();
    seen.extend(lines.try_iter());
    let stderr = errors.join().unwrap();
    if status.signal() != Some(9) {
        return Err(format!(
            "the worker ended by itself ({status}), not by SIGKILL: {stderr}"
        ));
    }
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
    let bytes = std::fs::read(&path).map_err(|e| format!("cannot read the data file: {e}"))?;
    let on_disk: u64 = serde_json::from_slice(&bytes).map_err(|e| {
        format!(
            "torn or corrupt data file ({e}): {:?}",
            String::from_utf8_lossy(&bytes)
        )
    })?;
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
    if pending > 0 {
        tally.pending_left += 1;
    }

    // The lock is not stuck, and both a long-lived atom and a fresh open see the value.
    // They take turns at the swap that follows.
    let fresh_turn = round.is_multiple_of(2);
    let swapped = if fresh_turn {
        let fresh = FileAtom::builder(&path)
            .lock_timeout(HANG)
            .open(u64::MAX)
            .map_err(|e| format!("cannot reopen after the kill: {e}"))?;
        if *fresh.deref() != on_disk {
            return Err(format!("reopened at {}, not {on_disk}", fresh.deref()));
        }
        let left = names(dir);
        if left != [LOCK, DATA] {
            return Err(format!("the reopen left {left:?}"));
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
        FileAtom::builder(&path)
            .lock_timeout(HANG)
            .open(u64::MAX)
            .map_err(|e| format!("cannot reopen after the kill: {e}"))?;
        let left = names(dir);
        if left != [LOCK, DATA] {
            return Err(format!("the reopen left {left:?}"));
        }
    }
    Ok(on_disk + 1)
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
