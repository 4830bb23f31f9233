//! What enduro-file's integration tests share: the conformance kit's [`FileBackend`], the
//! worker process (this very test binary, run again; see [`worker`]), and helpers for
//! child processes, directory listings and strace.
#![allow(dead_code)] // each test binary uses its own part
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

pub mod harness;
pub mod worker;

use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::thread::{self, JoinHandle};

use enduro_core::conformance::Backend;
use enduro_core::{Atom, Result, Store, Value};
use enduro_file::{FileAtom, FileStore};

/// Files in a private temp dir, removed when the backend drops.
#[derive(Debug)]
pub struct FileBackend {
    dir: tempfile::TempDir,
    next: AtomicUsize,
    /// Stores commit in journal mode.
    journal: bool,
}

impl FileBackend {
    /// A backend with its own temp dir.
    pub fn new() -> Self {
        FileBackend {
            dir: tempfile::tempdir().unwrap(),
            next: AtomicUsize::new(0),
            journal: false,
        }
    }

    /// A backend whose stores commit in journal mode.
    pub fn journal() -> Self {
        FileBackend {
            journal: true,
            ..FileBackend::new()
        }
    }
}

impl Backend for FileBackend {
    type Resource = PathBuf;

    fn fresh(&self) -> PathBuf {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.dir.path().join(format!("atom-{n}.json"))
    }

    fn store(&self, path: &PathBuf) -> Result<Box<dyn Store>> {
        Ok(Box::new(
            FileStore::builder(path).journal(self.journal).open()?,
        ))
    }

    /// The data file, read around enduro; with a journal beside it, the value as a new
    /// store replays it.
    fn stored(&self, path: &PathBuf) -> Option<Vec<u8>> {
        let store = FileStore::open(path).unwrap();
        if store.journal_path().exists() {
            return store.load().unwrap().map(|s| s.bytes);
        }
        std::fs::read(path).ok()
    }

    fn plant(&self, path: &PathBuf, bytes: &[u8]) {
        std::fs::write(path, bytes).unwrap();
    }
}

/// The journal beside the data file at `path`.
pub fn journal_path(path: &Path) -> PathBuf {
    FileStore::open(path).unwrap().journal_path().to_path_buf()
}

/// Every file in `dir`, by name, with its bytes.
pub fn contents(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect()
}

/// A file atom in journal mode at `path`.
pub fn journal_atom<T: Value>(path: &Path, init: T) -> Atom<T> {
    FileAtom::builder(path).journal(true).open(init).unwrap()
}

/// The value a fresh open finds at `path` (with `init` if there is none), checked to be
/// the same whether it opens in journal mode or plain.
pub fn fresh<T: Value + Clone + PartialEq + std::fmt::Debug>(path: &Path, init: T) -> T {
    let journaled = journal_atom(path, init.clone()).deref().as_ref().clone();
    let plain = enduro_file::file_atom(init, path)
        .unwrap()
        .deref()
        .as_ref()
        .clone();
    assert_eq!(journaled, plain, "journal and plain opens agree");
    plain
}

/// A child process whose stdout arrives on a channel, one whole line at a time (the
/// workers write each line with one `write(2)`, so a line arrives whole or not at all),
/// and whose stderr is collected for error messages.
#[derive(Debug)]
pub struct Piped {
    /// The process (stdin is piped and left in place; stdout and stderr are taken).
    pub child: Child,
    /// Its stdout, line by line; disconnected once it closes.
    pub lines: Receiver<String>,
    /// The thread reading stdout; ends when stdout closes.
    pub reader: JoinHandle<()>,
    /// Everything the process wrote on stderr, once it closes.
    pub stderr: JoinHandle<String>,
}

/// Starts `command` (a [`worker::command`]) with piped stdin, stdout and stderr. The test
/// harness's own lines are left out of [`Piped::lines`].
pub fn spawn_piped(command: &mut Command) -> io::Result<Piped> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let (Some(stdout), Some(mut errors)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(io::Error::other("the child's stdout or stderr is missing"));
    };
    let (tx, lines) = mpsc::channel();
    let reader = thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if worker::is_harness_line(&line) {
                continue;
            }
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let stderr = thread::spawn(move || {
        let mut text = String::new();
        let _ = errors.read_to_string(&mut text);
        text
    });
    Ok(Piped {
        child,
        lines,
        reader,
        stderr,
    })
}

/// The names of the entries of `dir`, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The lines of `strace -f -o FILE` output with each call that strace split in two (`TID
/// name(args <unfinished ...>`, then, after other threads' lines, `TID <... name
/// resumed>rest`) joined into one line at the place where it started. Under qemu-user the
/// emulator's own threads split calls often, and a call killed by an injected signal may
/// show up only as such a pair.
pub fn unsplit(trace: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut open: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for line in trace.lines() {
        let tracee = tracee_of(line);
        let call = call_of(line);
        if let Some(start) = line.strip_suffix(" <unfinished ...>") {
            open.insert(tracee.to_owned(), lines.len());
            lines.push(start.to_owned());
        } else if let Some(rest) = call.strip_prefix("<... ") {
            let rest = rest.split_once(" resumed>").map_or(rest, |(_, rest)| rest);
            match open.remove(tracee) {
                Some(at) => lines[at].push_str(rest),
                None => lines.push(line.to_owned()),
            }
        } else {
            lines.push(line.to_owned());
        }
    }
    lines
}

/// The tracee (thread id) of a line of `strace -f -o FILE`: `TID name(args) = ret`.
pub fn tracee_of(line: &str) -> &str {
    line.split_once(' ').map_or("", |(tid, _)| tid)
}

/// What follows the tracee in such a line: the call (`name(args) = ret`), or one of
/// strace's own `--- SIGNAL ---`, `+++ exited +++` and `<... name resumed>`.
pub fn call_of(line: &str) -> &str {
    line.split_once(' ')
        .map_or(line, |(_, rest)| rest.trim_start())
}

/// The syscall's name in such a line.
pub fn syscall_of(line: &str) -> &str {
    call_of(line).split('(').next().unwrap_or("")
}

/// Whether strace can be run. Without it, the tests that need it say why and pass, except
/// under `CI=true`, where that is a failure: CI never skips.
pub fn have_strace() -> bool {
    let found = std::process::Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI=true, so this test must run, but strace is not installed"
        );
        eprintln!("skipped: strace is not installed (CI=true makes this a failure)");
    }
    found
}

/// The README's migrations, counting the runs of the first step: schema 0
/// `{"name", "tries", …}` to 1 (rename `tries` to `retries`) to 2 (add `verbose`, false).
pub fn config_migrations(runs: &std::sync::Arc<AtomicUsize>) -> enduro_core::Migrations {
    use serde_json::Value;
    let runs = std::sync::Arc::clone(runs);
    enduro_core::Migrations::new()
        .step(move |mut config: Value| {
            runs.fetch_add(1, Ordering::SeqCst);
            let config = config.as_object_mut().ok_or("not an object")?;
            let tries = config.remove("tries").ok_or("no field `tries` to rename")?;
            config.insert("retries".into(), tries);
            Ok::<_, &str>(Value::Object(std::mem::take(config)))
        })
        .step(|mut config: Value| {
            config["verbose"] = false.into();
            Ok::<_, &str>(config)
        })
}
