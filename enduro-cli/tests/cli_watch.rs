//! `enduro watch PATH` as a child process: the current value as one compact JSON line,
//! then a line per committed change (of a program's atom, and of another `enduro set`),
//! in order, and exit 0 once the atom is released — on a plain file and a journal path.
//! `--at` shows one part; a closed stdout ends it too.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use enduro::{Atom, FileAtom};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_enduro");

/// How long the test waits for a line or an exit before it calls the watch stuck (a bound
/// on the test, not a speed requirement).
const WAIT: Duration = Duration::from_secs(30);

/// A `watch` process, killed (and reaped) when the test ends, however it ends.
struct Watch {
    child: Child,
    lines: Option<Receiver<String>>,
    /// What it printed on stderr so far, for the failure messages.
    stderr: Arc<Mutex<String>>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Watch {
    /// Starts `enduro watch ARGS`; a thread forwards its stdout lines, and stops reading
    /// (closing the pipe) after `max_lines` lines if given.
    fn start(args: &[&str], max_lines: Option<usize>) -> Watch {
        let mut child = Command::new(BIN)
            .arg("watch")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start enduro watch");
        let stdout = child.stdout.take().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let errors = child.stderr.take().unwrap();
        let kept = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(errors).lines() {
                let Ok(line) = line else { return };
                let mut kept = kept.lock().unwrap();
                kept.push_str(&line);
                kept.push('\n');
            }
        });
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let reader = std::io::BufReader::new(stdout);
            for (i, line) in reader.lines().enumerate() {
                let Ok(line) = line else { return };
                if send.send(line).is_err() || max_lines.is_some_and(|m| i + 1 >= m) {
                    return; // drops the pipe's read end
                }
            }
        });
        Watch {
            child,
            lines: Some(lines),
            stderr,
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The next line, within [`WAIT`].
    #[track_caller]
    fn next(&self, waiting_for: &str) -> String {
        let lines = self.lines.as_ref().unwrap();
        match lines.recv_timeout(WAIT) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => {
                panic!(
                    "no line from watch within {WAIT:?} (waiting for {waiting_for}); stderr: {}",
                    self.stderr()
                )
            }
            Err(RecvTimeoutError::Disconnected) => {
                panic!(
                    "watch's stdout ended (waiting for {waiting_for}); stderr: {}",
                    self.stderr()
                )
            }
        }
    }

    /// No line comes within `time` (after the expected ones).
    #[track_caller]
    fn nothing_more(&self, time: Duration) {
        let lines = self.lines.as_ref().unwrap();
        match lines.recv_timeout(time) {
            Ok(line) => panic!("an unexpected line from watch: {line}"),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
        }
    }

    /// Waits (within [`WAIT`]) for the process to end.
    #[track_caller]
    fn exit(&mut self, why: &str) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < WAIT,
                "watch did not end within {WAIT:?} after {why}; stderr: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn s(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temp path")
}

fn set_n(atom: &Atom<Value>, n: u64) {
    atom.swap(|v| {
        let mut v = v.clone();
        v["n"] = json!(n);
        v
    })
    .unwrap();
}

/// Runs `enduro set ARGS` (killed if it has not ended within [`WAIT`]); it must succeed.
fn enduro_set(args: &[&str]) {
    let mut child = Command::new(BIN)
        .arg("set")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run enduro set");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > WAIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("enduro set {args:?} did not end within {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "enduro set {args:?}: {status}");
}

fn watch_prints_each_change_and_ends_at_release(journal: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.json");
    let atom = FileAtom::builder(&path)
        .journal(journal)
        .open(json!({"n": 0, "name": "w"}))
        .unwrap();
    let mut watch = Watch::start(&[s(&path)], None);
    let mut part = Watch::start(&[s(&path), "--at", "/n"], None);
    assert_eq!(watch.next("the current value"), r#"{"n":0,"name":"w"}"#);
    assert_eq!(part.next("the current value"), "0");

    // Three commits of a program's, a moment apart (a plain file keeps only the latest
    // value, so a watcher that looks late sees only that).
    for n in 1..=3 {
        std::thread::sleep(Duration::from_millis(200));
        set_n(&atom, n);
        assert_eq!(
            watch.next(&format!("n = {n}")),
            format!(r#"{{"n":{n},"name":"w"}}"#),
            "journal: {journal}"
        );
        assert_eq!(part.next(&format!("n = {n}")), n.to_string());
    }
    // A commit of another process's: `enduro set`.
    std::thread::sleep(Duration::from_millis(200));
    enduro_set(&[s(&path), "--at", "/name", "\"v\""]);
    assert_eq!(watch.next("the set"), r#"{"n":3,"name":"v"}"#);
    if journal {
        // A journal keeps every record: three quick commits are three lines, in order.
        for n in 4..=6 {
            set_n(&atom, n);
        }
        for n in 4..=6 {
            assert_eq!(
                watch.next(&format!("n = {n}")),
                format!(r#"{{"n":{n},"name":"v"}}"#)
            );
        }
    }
    watch.nothing_more(Duration::from_millis(300));

    atom.release().unwrap();
    assert!(!path.exists(), "release deletes the data file");
    let status = watch.exit("the release");
    assert!(
        status.success(),
        "watch ended with {status}: {}",
        watch.stderr()
    );
    let status = part.exit("the release");
    assert!(
        status.success(),
        "watch --at ended with {status}: {}",
        part.stderr()
    );
}

#[test]
fn watch_on_a_plain_file_prints_each_change_and_ends_at_release() {
    watch_prints_each_change_and_ends_at_release(false);
}

#[test]
fn watch_on_a_journal_prints_each_change_and_ends_at_release() {
    watch_prints_each_change_and_ends_at_release(true);
}

#[test]
fn watch_ends_when_its_stdout_is_closed() {
    for journal in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.json");
        let atom = FileAtom::builder(&path)
            .journal(journal)
            .open(json!({"n": 0}))
            .unwrap();
        // The reader takes one line and closes the pipe.
        let mut watch = Watch::start(&[s(&path)], Some(1));
        assert_eq!(watch.next("the current value"), r#"{"n":0}"#);
        // Wait until the reader has closed its end: its thread ends, the channel closes.
        let lines = watch.lines.take().unwrap();
        let started = Instant::now();
        while lines.recv_timeout(WAIT) != Err(RecvTimeoutError::Disconnected) {
            assert!(started.elapsed() < WAIT, "the reader did not stop");
        }
        // The next change has nowhere to go: watch ends, with 0.
        let started = Instant::now();
        let mut n = 0;
        let status = loop {
            std::thread::sleep(Duration::from_millis(200));
            n += 1;
            set_n(&atom, n);
            if let Some(status) = watch.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                started.elapsed() < WAIT,
                "watch did not end after its stdout was closed (journal {journal})"
            );
        };
        assert!(
            status.success(),
            "journal {journal}: {status}; stderr: {}",
            watch.stderr()
        );
    }
}
