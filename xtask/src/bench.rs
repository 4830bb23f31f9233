//! `cargo xtask bench [--no-pg] [--no-redis] [-- CRITERION ARGS]`: runs every benchmark
//! scenario of the `enduro-benches` crate in release mode (`cargo bench`), each against its
//! raw baseline in the same run. The bench prints the machine and one markdown table of
//! ratios, and writes them to `target/bench/results.md`, with a JSON copy in
//! `target/bench/results.json`.
//!
//! The file scenarios run in the system temp dir (or `ENDURO_BENCH_DIR`), which must be on
//! a disk: fsync on tmpfs is free. The PostgreSQL rows use `DATABASE_URL` when set,
//! otherwise a private throwaway cluster; `--no-pg` leaves them out. The Redis rows use
//! `REDIS_URL` when set, otherwise a private `redis-server` (the rows say why when there
//! is none); `--no-redis` leaves them out. The SQLite rows need nothing (SQLite is
//! compiled in).

use crate::{Result, cargo_command, run, target_dir};

/// Runs the benchmarks with the task's arguments (after `bench`).
pub(crate) fn bench(args: &[String]) -> Result {
    let mut pg = true;
    let mut redis = true;
    let mut passthrough: Vec<&str> = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--no-pg" => pg = false,
            "--no-redis" => redis = false,
            "--" => passthrough.extend(rest.by_ref().map(String::as_str)),
            other => return Err(format!("unknown `bench` argument `{other}`\n{USAGE}")),
        }
    }
    let out = target_dir().join("bench");
    let mut cmd = cargo_command();
    cmd.args(["bench", "-p", "enduro-benches", "--bench", "suite"]);
    let features: Vec<&str> = [("pg", pg), ("redis", redis)]
        .into_iter()
        .filter_map(|(name, on)| on.then_some(name))
        .collect();
    if !features.is_empty() {
        cmd.args(["--features", &features.join(",")]);
    }
    cmd.arg("--").args(&passthrough);
    cmd.env("ENDURO_BENCH_OUT", &out)
        .env("CRITERION_HOME", out.join("criterion"));
    run(&mut cmd)?;
    eprintln!(
        "xtask: bench results in {} and {}",
        out.join("results.md").display(),
        out.join("results.json").display()
    );
    Ok(())
}

const USAGE: &str = "usage: cargo xtask bench [--no-pg] [--no-redis] [-- CRITERION ARGS]";
