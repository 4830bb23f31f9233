//! `cargo xtask torture [KILLS]`: the crash torture of the file backend
//! (`enduro-file/tests/crash_torture.rs`) with more kills than the 200 of a normal test run.
//!
//! It runs that very test with `ENDURO_TORTURE_KILLS` set, so the two never drift apart.
//! `ENDURO_TORTURE_SEED`, when set, is passed on and replays the kill moments of an
//! earlier run (every run prints its seed).

use crate::{Result, cargo_command, run};

/// Kills when none are given: a few minutes on a small machine.
const DEFAULT_KILLS: u64 = 2000;

pub(crate) fn run_torture(args: &[String]) -> Result {
    let kills = match args {
        [] => DEFAULT_KILLS,
        [kills] => kills
            .parse()
            .map_err(|e| format!("KILLS must be a number, not `{kills}`: {e}"))?,
        _ => return Err("usage: cargo xtask torture [KILLS]".into()),
    };
    if kills == 0 {
        return Err("KILLS must be at least 1".into());
    }
    run(cargo_command()
        .args([
            "test",
            "--package",
            "enduro-file",
            "--test",
            "crash_torture",
            "--",
            "--nocapture",
        ])
        .env("ENDURO_TORTURE_KILLS", kills.to_string()))
}
