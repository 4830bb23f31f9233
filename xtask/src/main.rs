//! Project tasks, run as `cargo xtask <task>`:
//!
//! - `ci`: everything CI checks — fmt, clippy (warnings denied), all tests, docs (warnings
//!   denied), and the slim-build check.
//! - `slim`: only the slim-build check: the file-only build pulls no async, database or
//!   network crate.
//! - `pg`: starts a private PostgreSQL cluster for manual use and prints its URL.
//! - `torture [KILLS]`: the crash torture of the file backend, for longer runs.
//! - `bench`: the benchmarks, with ratios against raw baselines.
//! - `powerloss [--full] [--drop-sync] [FILTER...]`: power loss simulated on ext4, xfs and
//!   btrfs images with outagefs (installed under `target/` first); also part of `ci`.
//! - `pi`: the file-only build on the Raspberry Pi's targets (aarch64, armv7), its example
//!   and enduro-file's tests run under qemu-user.

use std::env;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

mod bench;
mod pg;
mod pi;
mod powerloss;
mod slim;
mod torture;

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("slim") => slim::check(),
        Some("bench") => bench::bench(&args[1..]),
        Some("pg") => pg::run(),
        Some("pi") => pi::run(),
        Some("powerloss") => powerloss::run_powerloss(&args[1..]),
        Some("torture") => torture::run_torture(&args[1..]),
        Some(other) => Err(format!("unknown task `{other}`\n{USAGE}")),
        None => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage: cargo xtask <ci | slim | pg | pi | torture [KILLS] | bench | \
                     powerloss [--full] [--drop-sync] [FILTER...]>";

/// The workspace root (the parent of this crate's directory).
pub(crate) fn root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}

/// Cargo's target dir: `CARGO_TARGET_DIR`, or `target` in the workspace root.
pub(crate) fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// A `cargo` command: the cargo that runs this task.
pub(crate) fn cargo_command() -> Command {
    Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Runs `cargo` with `args` in the workspace root; fails if it fails.
pub(crate) fn cargo(args: &[&str]) -> Result {
    run(cargo_command().args(args))
}

pub(crate) fn run(cmd: &mut Command) -> Result {
    cmd.current_dir(root());
    eprintln!("xtask: running {cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed with {status}"))
    }
}

/// Runs the examples that keep state twice each on a new path, checking what the second
/// run finds: `address_book` (ops) must start from the first run's two entries (its ops
/// replayed at open); `config_migration` must migrate the old file once (the first run
/// finds `retries: 3`, the second the first run's `retries: 4`, with no step run). The
/// main example, `addresses`, runs the same way on the Pi targets (`xtask pi`).
fn examples() -> Result {
    let dir = env::temp_dir().join(format!("enduro-xtask-examples-{}", std::process::id()));
    let runs: [(&str, &str, [&str; 2]); 2] = [
        (
            "address_book",
            "book.json",
            ["(0 entries on opening)", "(2 entries on opening)"],
        ),
        (
            "config_migration",
            "config.json",
            [
                "opened: Config { name: \"pump\", retries: 3, verbose: false }",
                "retries: 4",
            ],
        ),
    ];
    let outcome = runs.iter().try_for_each(|(name, file, expected)| {
        let path = dir.join(file);
        let path = path.to_str().ok_or("the temp dir's path is not UTF-8")?;
        expected.iter().enumerate().try_for_each(|(run, expected)| {
            let mut example = cargo_command();
            example
                .args(["run", "-q", "-p", "enduro", "--example", name, "--", path])
                .current_dir(root());
            eprintln!("xtask: running {example:?}");
            let out = example
                .output()
                .map_err(|e| format!("cannot start {example:?}: {e}"))?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            if out.status.success() && stdout.contains(expected) {
                Ok(())
            } else {
                Err(format!(
                    "the {name} example's run {} failed ({}), expected it to print \
                     `{expected}`:\n{stdout}{}",
                    run + 1,
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                ))
            }
        })
    });
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

fn ci() -> Result {
    cargo(&["fmt", "--all", "--", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ])?;
    // The power-loss test (enduro/tests/power_loss.rs) runs with the others; it needs
    // outagefs, which CI builds once per clean target dir. Elsewhere a missing one makes
    // that test say so and pass.
    let mut test = cargo_command();
    test.args(["test", "--workspace", "--all-features", "--no-fail-fast"]);
    match powerloss::install() {
        Ok(outagefs) => {
            test.env(powerloss::OUTAGEFS_VAR, outagefs);
        }
        Err(e) if env::var("CI").as_deref() == Ok("true") => return Err(e),
        Err(e) => eprintln!("xtask: the power-loss test will be skipped: {e}"),
    }
    run(&mut test)?;
    examples()?;
    run(cargo_command()
        .args(["doc", "--workspace", "--all-features", "--no-deps"])
        // Broken intra-doc links are named on their own so that they stay denied even
        // if the warnings above are ever relaxed.
        .env(
            "RUSTDOCFLAGS",
            "-D warnings -D rustdoc::broken_intra_doc_links",
        ))?;
    slim::check()?;
    pi::in_ci()?;
    eprintln!("xtask: ci passed");
    Ok(())
}
