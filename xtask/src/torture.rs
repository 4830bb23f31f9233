//! `cargo xtask torture [KILLS]`: the crash tortures of the file backend
//! (`enduro-file/tests/crash_torture.rs`) with more kills than the 200 of a normal test run:
//! all of them, with plain commits (rename) and in journal mode (records appended to the
//! journal, compactions, plain and journal-mode writers on one file), and the deterministic
//! crash matrices of both modes.
//!
//! It runs that very test binary with `ENDURO_TORTURE_KILLS` set, so the two never drift
//! apart. `ENDURO_TORTURE_SEED`, when set, is passed on and replays the kill moments of an
//! earlier run (every run prints its seed).

use std::process::{Command, Stdio};

use crate::{Result, cargo_command, root, run};

/// Kills when none are given: a few minutes on a small machine.
const DEFAULT_KILLS: u64 = 2000;

/// The tortures, by their test names: those of plain commits and those of journal mode.
/// The whole binary runs; they are named so that losing one (renamed, or left out of the
/// binary's list) fails the task instead of passing quietly.
const TORTURES: [&str; 11] = [
    "sigkill_at_random_moments_never_tears_the_file_nor_loses_an_acknowledged_swap",
    "sigkill_at_random_moments_of_journal_commits_never_loses_an_acknowledged_swap",
    "two_writers_killed_at_random_never_lose_nor_duplicate_an_acknowledged_swap",
    "two_journal_writers_killed_at_random_never_lose_nor_duplicate_an_acknowledged_swap",
    "mixed_mode_writers_killed_at_random_never_lose_nor_duplicate_an_acknowledged_swap",
    "a_kill_during_the_first_commit_leaves_no_value_or_a_whole_one",
    "sigkill_at_each_step_of_a_commit_and_of_a_release_leaves_a_consistent_state",
    "sigkill_at_each_step_of_a_journal_commit_leaves_a_consistent_state",
    "sigkill_at_each_step_of_retiring_or_releasing_a_journal_leaves_a_consistent_state",
    "sigkill_during_group_commits_never_loses_an_acknowledged_swap",
    "sigkill_during_journal_group_commits_never_loses_an_acknowledged_swap",
];

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
    let torture = || {
        let mut cmd = cargo_command();
        cmd.args([
            "test",
            "--package",
            "enduro-file",
            "--test",
            "crash_torture",
            "--",
        ]);
        cmd
    };
    // The binary's own list, checked first: each torture must be in it.
    let listed = list(torture().arg("--list"))?;
    let missing: Vec<&str> = TORTURES
        .iter()
        .copied()
        .filter(|name| !listed.lines().any(|l| l == format!("{name}: test")))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "crash_torture does not list these tortures (renamed? update xtask/src/torture.rs): \
             {}",
            missing.join(", ")
        ));
    }
    eprintln!(
        "xtask: {} tortures (plain and journal mode), {kills} kills each",
        TORTURES.len()
    );
    run(torture()
        .arg("--nocapture")
        .env("ENDURO_TORTURE_KILLS", kills.to_string()))
}

/// Runs `cmd` (a test binary's `--list`) in the workspace root and returns its stdout;
/// cargo's progress goes to the terminal.
fn list(cmd: &mut Command) -> Result<String> {
    cmd.current_dir(root()).stderr(Stdio::inherit());
    let out = cmd
        .output()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cmd:?} failed with {}", out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
