//! The plumbing of the multi-process tests of enduro-pg, enduro-redis and enduro-sqlite
//! (included by each crate's `tests/common/worker.rs` with `#[path]`): a worker is no
//! binary of its own (a library crate should not install a test helper); a test binary
//! runs itself again, through [`command`], with the worker's arguments in [`ARGS_VAR`],
//! and its `#[test] fn worker()` then calls [`entry`], which runs the crate's own tasks
//! and exits.

use std::io::Write;
use std::process::Command;

/// The environment variable that makes the `worker` test of a test binary act as the
/// worker; it holds the worker's arguments, one per line.
pub const ARGS_VAR: &str = "ENDURO_TEST_WORKER_ARGS";

/// The arguments that make the test harness run only the `worker` test, without
/// capturing its output (it prints one blank line and `running 1 test` first, which
/// [`lines`] leaves out).
pub const HARNESS_ARGS: [&str; 5] = [
    "worker",
    "--exact",
    "--nocapture",
    "--quiet",
    "--test-threads=1",
];

/// A command that runs the worker with `args` (this test binary, run again).
pub fn command(args: &[&str]) -> Command {
    let exe = std::env::current_exe().expect("the test binary's own path");
    let mut command = Command::new(exe);
    command.args(HARNESS_ARGS).env(ARGS_VAR, args.join("\n"));
    command
}

/// The worker's own lines in its captured stdout (without the test harness's).
pub fn lines(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !is_harness_line(l))
        .map(str::to_owned)
        .collect()
}

/// Whether `line` is one the test harness printed before the worker started.
pub fn is_harness_line(line: &str) -> bool {
    line.is_empty() || line == "running 1 test"
}

/// Runs the worker's tasks, `run`, with its arguments when this test binary was started
/// as one (see [`command`]), then exits the process; returns at once in a normal test
/// run.
pub fn entry(run: impl FnOnce(&[String])) {
    let Ok(args) = std::env::var(ARGS_VAR) else {
        return;
    };
    let args: Vec<String> = args.lines().map(str::to_owned).collect();
    run(&args);
    let _ = std::io::stdout().flush();
    std::process::exit(0);
}
