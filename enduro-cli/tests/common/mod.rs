//! What the CLI tests share: running a command to its end, bounded in time.
#![allow(dead_code)] // each test binary uses what it needs

use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Runs `command` to its end with `input` on its stdin (none: /dev/null), collecting what
/// it prints; `Ok(None)` when it had not ended within `limit` (it is killed then).
pub fn output_within(
    command: &mut Command,
    input: Option<&[u8]>,
    limit: Duration,
) -> std::io::Result<Option<Output>> {
    let mut child = command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(input) = input {
        let mut pipe = child.stdin.take().expect("stdin");
        let input = input.to_vec();
        // A command that does not read its input must not block the test.
        thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    let stdout = drain(child.stdout.take().expect("stdout"));
    let stderr = drain(child.stderr.take().expect("stderr"));
    let Some(status) = wait_within(&mut child, limit) else {
        return Ok(None);
    };
    Ok(Some(Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }))
}

/// Waits for `child` at most `limit`; kills it (and answers `None`) after that.
pub fn wait_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("waiting for a child") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Reads `stream` to its end on a thread of its own.
fn drain(mut stream: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes);
        bytes
    })
}
