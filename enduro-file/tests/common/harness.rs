//! A small test runner for the test files whose worker must run on the main thread of its
//! process (`harness = false` in Cargo.toml): crash_torture.rs and file_faults.rs, where
//! strace kills or fails the worker at the n-th call of a syscall, and strace counts calls
//! per thread — under the standard harness the worker would run on a second thread, and
//! the harness's own calls on the main thread would meet the count first.
//!
//! It understands what `cargo test` and `cargo xtask` pass: name filters (a test runs when
//! its name contains one, or equals one with `--exact`), `--skip NAME`, `--list`,
//! `--ignored` (there are none), and it accepts and ignores the other options
//! (`--nocapture`, `--test-threads N`, ...). Tests run one after the other.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::ExitCode;
use std::time::Instant;

use super::worker;

/// One test: its name and its function.
pub type Test = (&'static str, fn());

/// Lists tests as `(name, function)` pairs for [`main`].
#[macro_export]
macro_rules! tests {
    ($($test:ident),* $(,)?) => {
        &[$((stringify!($test), $test as fn())),*]
    };
}

/// Options of the standard harness that take a value, which is not a name filter.
const WITH_VALUE: [&str; 8] = [
    "--test-threads",
    "--format",
    "--logfile",
    "--color",
    "--shuffle-seed",
    "-Z",
    "--report-time",
    "--ensure-time",
];

/// The `main` of such a test file: acts as the worker when the process was started as one
/// (see [`worker::command`]); otherwise runs the tests that the arguments select.
pub fn main(tests: &[Test]) -> ExitCode {
    worker::entry();
    let mut args = std::env::args().skip(1);
    let (mut filters, mut skips) = (Vec::new(), Vec::new());
    let (mut exact, mut list, mut ignored) = (false, false, false);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--exact" => exact = true,
            "--list" => list = true,
            "--ignored" => ignored = true,
            "--skip" => skips.extend(args.next()),
            option if WITH_VALUE.contains(&option) => {
                args.next();
            }
            option if option.starts_with('-') => {}
            _ => filters.push(arg),
        }
    }
    let matches = |name: &str, pattern: &String| {
        if exact {
            name == pattern
        } else {
            name.contains(pattern.as_str())
        }
    };
    let chosen: Vec<&Test> = tests
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| matches(name, f)))
        .filter(|(name, _)| !skips.iter().any(|s| matches(name, s)))
        .filter(|_| !ignored)
        .collect();
    if list {
        for (name, _) in &chosen {
            println!("{name}: test");
        }
        return ExitCode::SUCCESS;
    }
    println!("\nrunning {} tests", chosen.len());
    let started = Instant::now();
    let mut failed = Vec::new();
    for (name, test) in &chosen {
        let outcome = catch_unwind(AssertUnwindSafe(test));
        println!(
            "test {name} ... {}",
            if outcome.is_ok() { "ok" } else { "FAILED" }
        );
        if outcome.is_err() {
            failed.push(*name);
        }
    }
    if !failed.is_empty() {
        println!("\nfailures:");
        for name in &failed {
            println!("    {name}");
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed; {} filtered out; finished in {:.2}s\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        chosen.len() - failed.len(),
        failed.len(),
        tests.len() - chosen.len(),
        started.elapsed().as_secs_f64()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(101)
    }
}
