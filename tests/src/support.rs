//! Helpers shared by the reliability tests: child processes read line by line, directory
//! listings, and whether strace is there.

use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread::{self, JoinHandle};

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

/// Starts `command` with piped stdin, stdout and stderr.
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
