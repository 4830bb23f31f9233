//! A worker process for enduro's cross-process and crash tests. Each mode opens a file
//! atom (or its lock file) on the path it is given and reports on stdout, one line per
//! event, flushed at once, so that the parent can follow it through a pipe.
//!
//! ```text
//! enduro-file-worker count PATH N          "ready", waits for a line on stdin, swaps +1
//!                                          N times, then prints "done"
//! enduro-file-worker append PATH WRITER N  "ready", waits for a line on stdin, appends
//!                                          [WRITER, SEQ] for SEQ in 0..N to a list,
//!                                          printing "ack WRITER SEQ" after each swap
//! enduro-file-worker append-threads PATH WRITER THREADS N
//!                                          the same from THREADS threads sharing one
//!                                          atom (so their swaps share group commits):
//!                                          thread T appends [WRITER * 1000 + T, SEQ]
//! enduro-file-worker torture PATH          "ready V" (the value found), then swaps +1 in
//!                                          a tight loop printing each acknowledged value
//! enduro-file-worker until-released PATH N  "ready", then swaps +1 until the atom is
//!                                          released by someone else (prints "released")
//!                                          or N swaps are done (prints "done")
//! enduro-file-worker release PATH         opens the atom, releases it, prints "released"
//! enduro-file-worker hold-lock PATH SECS   takes the atom's lock file with
//!                                          `File::lock`, prints "locked", sleeps SECS
//! enduro-file-worker stall-commit PATH SECS  starts a swap +1 and, inside the commit
//!                                          (lock held, pending file written to), prints
//!                                          "stalled" and sleeps SECS
//! enduro-file-worker many DIR N            opens N atoms on the files DIR/I.json and
//!                                          keeps them all open; swaps +1 on every 100th,
//!                                          opens one more and swaps it; prints "ok N"
//! enduro-file-worker swap-twice PATH       opens PATH (a counter), says "ready", waits
//!                                          for a line on stdin, swaps +1 twice, printing
//!                                          after each `ok V`, `uncertain V` (what the
//!                                          atom shows then) or `failed V: ERROR`
//! ```
//!
//! Every mode stops by itself: the loops are bounded and a closed pipe ends the torture.
//! The exit code is 0 on success, 1 with a message on stderr otherwise.

use std::fs::File;
use std::io::{self, BufRead, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use enduro::{FileAtom, FileStore};
use serde::{Deserialize, Serialize, Serializer};

/// The torture loop gives up after this long even if nobody kills it.
const TORTURE_DEADLINE: Duration = Duration::from_secs(300);

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("enduro-file-worker {}: {e}", args.join(" "));
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["count", path, n] => count(path, number(n)?),
        ["append", path, writer, n] => append(path, number(writer)?, number(n)?),
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
    let atom = enduro::file_atom(0u64, path).map_err(|e| e.to_string())?;
    ready_then_wait()?;
    for _ in 0..n {
        atom.swap(|v| v + 1).map_err(|e| e.to_string())?;
    }
    say("done")
}

fn append(path: &str, writer: u64, n: u64) -> Result {
    let atom = enduro::file_atom(Vec::<(u64, u64)>::new(), path).map_err(|e| e.to_string())?;
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

fn append_threads(path: &str, writer: u64, threads: u64, n: u64) -> Result {
    let atom = enduro::file_atom(Vec::<(u64, u64)>::new(), path).map_err(|e| e.to_string())?;
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
    let atom = enduro::file_atom(0u64, path).map_err(|e| e.to_string())?;
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
    let atom = enduro::file_atom(0u64, path).map_err(|e| e.to_string())?;
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
    let atom = enduro::file_atom(0u64, path).map_err(|e| e.to_string())?;
    say("ready")?;
    for _ in 0..n {
        match atom.swap(|v| v + 1) {
            Ok(_) => {}
            Err(enduro::Error::Released) if atom.is_released() => return say("released"),
            Err(e) => return Err(e.to_string()),
        }
    }
    say("done")
}

fn many(dir: &str, n: u64) -> Result {
    let open = |i: u64| {
        enduro::file_atom(0u64, format!("{dir}/{i}.json"))
            .map_err(|e| format!("atom {i} of {n}: {e}"))
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
    let atom = enduro::file_atom(0u64, path).map_err(|e| e.to_string())?;
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
    let atom = enduro::file_atom(0u64, path).map_err(|e| e.to_string())?;
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
    let atom = FileAtom::builder(path)
        .open(Stalling(0))
        .map_err(|e| e.to_string())?;
    STALL_SECS.store(secs, Ordering::SeqCst);
    STALL.store(true, Ordering::SeqCst);
    atom.swap(|v| Stalling(v.0 + 1))
        .map_err(|e| e.to_string())?;
    say("done")
}
