//! `cargo xtask powerloss [--full] [--drop-sync] [FILTER...]`: power loss simulated on
//! ext4, xfs and btrfs images (`enduro/tests/power_loss.rs`, which says what it checks).
//!
//! It installs outagefs (pinned, under `target/outagefs`, so later runs reuse it), then
//! runs that very test binary with the arguments given: `--full` replays every case on
//! btrfs too (without it, a seeded sample there), `--drop-sync` replays the scenarios as a
//! disk that ignores flushes leaves them and reports what breaks, and names select file
//! systems and scenarios (`ext4`, `xfs/journal`, ...). `ENDURO_POWERLOSS_SEED` picks the
//! cases of an earlier run (every run prints its seed).

use std::path::PathBuf;

use crate::{Result, cargo_command, run, target_dir};

/// The outagefs release the harness is written against (its `changes` file format, its
/// `mount --record` and `mutate --drop-sync`).
const OUTAGEFS_VERSION: &str = "0.1.0";

/// Where the test finds the binary (it also looks there by itself).
pub(crate) const OUTAGEFS_VAR: &str = "ENDURO_OUTAGEFS";

pub(crate) fn run_powerloss(args: &[String]) -> Result {
    let outagefs = install()?;
    run(cargo_command()
        .args(["test", "-p", "enduro", "--test", "power_loss", "--"])
        .args(args)
        .env(OUTAGEFS_VAR, outagefs))
}

/// The outagefs binary, installed under `target/outagefs` unless it already is. Building
/// it needs libfuse 2's headers (Debian's `libfuse-dev`) and `pkg-config`.
pub(crate) fn install() -> Result<PathBuf> {
    let root = target_dir().join("outagefs");
    let binary = root.join("bin").join("outagefs");
    if binary.exists() {
        return Ok(binary);
    }
    run(cargo_command()
        .args(["install", "outagefs", "--locked", "--version"])
        .arg(format!("={OUTAGEFS_VERSION}"))
        .arg("--root")
        .arg(&root))
    .map_err(|e| {
        format!("{e}\nxtask: outagefs needs libfuse 2's headers and pkg-config (Debian: libfuse-dev pkg-config)")
    })?;
    Ok(binary)
}
