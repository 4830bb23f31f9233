//! Peak resident memory while swapping a value of about 100 MiB, against the memory the
//! value itself takes. Each measurement runs in a child process (this binary, started
//! again with `ENDURO_BENCH_CHILD` set), so nothing else counts.

use std::path::Path;
use std::process::Command;

use enduro_benches::memory::{MemoryReport, measure};
use enduro_benches::raw::RawFile;
use enduro_benches::report::{Measured, Row, Target, Unit};
use enduro_benches::{scratch_dir, values};

use crate::CHILD;

/// The directory a child works in.
const CHILD_DIR: &str = "ENDURO_BENCH_CHILD_DIR";
/// The value's nominal size.
const VALUE_MIB: usize = 100;
/// Swaps each child does.
const SWAPS: usize = 3;

const ID: &str = "file_memory_100mib";
const SCENARIO: &str = "file, ~100 MiB Vec<String>: peak RSS above start while swapping";
const BASELINE: &str = "the value's own resident size";

/// The memory row.
pub fn row() -> Row {
    let target = Some(Target::AtMost {
        times: 2.0,
        plus: 16.0,
    });
    let measured = (|| -> Result<(MemoryReport, MemoryReport), String> {
        let dir = scratch_dir("memory").map_err(|e| e.to_string())?;
        Ok((spawn("enduro", dir.path())?, spawn("raw", dir.path())?))
    })();
    match measured {
        Ok((enduro, raw)) => {
            let mib = |kib: u64| kib as f64 / 1024.0;
            Row::measured(
                ID,
                SCENARIO,
                BASELINE,
                Unit::MiB,
                Measured {
                    enduro: mib(enduro.peak_kib),
                    baseline: mib(enduro.value_kib),
                },
                target,
            )
            .with_note(format!(
                "Peak resident memory above the child's start (VmHWM − VmRSS before) over \
                 opening the atom and {} swaps that clone the value and change one string; the \
                 value itself took {:.0} MiB (VmRSS delta). The raw loop (clone, serde_json to a \
                 buffered temp file, fsync, rename, dir fsync) peaked at {:.0} MiB for a {:.0} \
                 MiB value.",
                enduro.swaps,
                mib(enduro.value_kib),
                mib(raw.peak_kib),
                mib(raw.value_kib),
            ))
        }
        Err(reason) => Row::not_run(ID, SCENARIO, BASELINE, Unit::MiB, target, reason),
    }
}

/// Runs the child `which` in `dir` and reads its report (the last line it prints).
fn spawn(which: &str, dir: &Path) -> Result<MemoryReport, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let output = Command::new(exe)
        .env(CHILD, which)
        .env(CHILD_DIR, dir)
        .output()
        .map_err(|e| format!("cannot start the memory child: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "the {which} memory child failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .map_err(|e| format!("bad report from the memory child ({e}): {last}"))
}

/// In the child: measures `which` and prints the report as one JSON line. The exit code.
pub fn child(which: &str) -> i32 {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        eprintln!("{CHILD_DIR} is not set");
        return 2;
    };
    let dir = Path::new(&dir);
    let build = || values::big_strings(VALUE_MIB);
    let report = match which {
        "enduro" => measure(build, |value| {
            let atom =
                enduro::file_atom(value, dir.join("big.json")).map_err(std::io::Error::other)?;
            for i in 0..SWAPS {
                atom.swap(|v| {
                    let mut v = v.clone();
                    v[i] = format!("changed {i}");
                    v
                })
                .map_err(std::io::Error::other)?;
            }
            Ok(SWAPS as u32)
        }),
        "raw" => measure(build, |mut value| {
            let raw = RawFile::new(dir, "raw-big.json")?;
            raw.replace_json(&value)?;
            for i in 0..SWAPS {
                let mut next = value.clone();
                next[i] = format!("changed {i}");
                raw.replace_json(&next)?;
                value = next;
            }
            Ok(SWAPS as u32)
        }),
        other => {
            eprintln!("unknown memory child `{other}`");
            return 2;
        }
    };
    match report {
        Ok(report) => match serde_json::to_string(&report) {
            Ok(line) => {
                println!("{line}");
                0
            }
            Err(e) => {
                eprintln!("cannot encode the report: {e}");
                1
            }
        },
        Err(e) => {
            eprintln!("the {which} memory child failed: {e}");
            1
        }
    }
}
