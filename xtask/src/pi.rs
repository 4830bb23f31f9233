//! `cargo xtask pi`: the file-only build on the Raspberry Pi's two targets, run under
//! qemu-user.
//!
//! For each target it cross-builds `enduro` with only the `file` feature, checks that build
//! pulls no async, database or network crate, runs the address-book example (twice: the
//! second run reopens what the first wrote) and runs enduro-file's tests, the file
//! conformance suite among them, multi-process and crash tests included. Then it prints,
//! per target, what ran and passed and the size of the stripped release example.
//!
//! Tests run under emulation: qemu-user runs each ARM binary as cargo's
//! `target.<triple>.runner`. The tests' worker processes (a test binary started again) go
//! through the same emulator, named in `ENDURO_TEST_RUNNER`: the kernel cannot run an ARM
//! binary unless qemu is registered with binfmt_misc, which needs a mounted binfmt_misc and
//! changes the whole machine; the runner needs neither. `QEMU_LD_PREFIX` points qemu at the
//! target's libraries, and the workers inherit it.
//!
//! It needs the two rustup targets, Debian's cross compilers and their C libraries
//! (`gcc-aarch64-linux-gnu`, `libc6-dev-arm64-cross`, `gcc-arm-linux-gnueabihf`,
//! `libc6-dev-armhf-cross`) and `qemu-user`; `.ci/run` installs them.

use std::env;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Result, cargo_command, root, slim, target_dir};

/// One Raspberry Pi target.
struct Target {
    triple: &'static str,
    /// Which Pis and which system it is for.
    what: &'static str,
    /// The prefix of Debian's cross tools (`PREFIX-gcc`, `PREFIX-strip`), which is also the
    /// directory of the target's C libraries under /usr.
    tools: &'static str,
    /// The qemu-user emulator.
    qemu: &'static str,
}

const TARGETS: [Target; 2] = [
    Target {
        triple: "aarch64-unknown-linux-gnu",
        what: "Raspberry Pi OS 64-bit: Pi 3 and later, Zero 2 W",
        tools: "aarch64-linux-gnu",
        qemu: "qemu-aarch64",
    },
    Target {
        triple: "armv7-unknown-linux-gnueabihf",
        what: "Raspberry Pi OS 32-bit on ARMv7 and later: Pi 2 and later, Zero 2 W",
        tools: "arm-linux-gnueabihf",
        qemu: "qemu-arm",
    },
];

/// What `.ci/run` installs, for the message when something is missing.
const INSTALL: &str = "rustup target add aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf; \
     apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross gcc-arm-linux-gnueabihf \
     libc6-dev-armhf-cross qemu-user";

/// `cargo xtask pi`: fails if a tool is missing.
pub(crate) fn run() -> Result {
    check_all(&missing())
}

/// The Pi step of `cargo xtask ci`: as [`run`], but where a tool is missing it says so and
/// passes, except under `CI=true`, where that is a failure (CI never skips).
pub(crate) fn in_ci() -> Result {
    let missing = missing();
    if missing.is_empty() || env::var("CI").is_ok_and(|v| v == "true") {
        return check_all(&missing);
    }
    eprintln!(
        "xtask: pi skipped: {} (install them with: {INSTALL}; CI=true makes this a failure)",
        missing.join("; ")
    );
    Ok(())
}

/// Checks both targets, given what [`missing`] found; fails if anything is missing.
fn check_all(missing: &[String]) -> Result {
    if !missing.is_empty() {
        return Err(format!(
            "cannot build for the Raspberry Pi: {}\ninstall them with: {INSTALL}",
            missing.join("; ")
        ));
    }
    let mut report = String::new();
    for target in &TARGETS {
        report.push_str(&target.check()?);
    }
    eprintln!("xtask: pi passed\n{report}");
    Ok(())
}

/// The tools that are missing, each with what needs it.
fn missing() -> Vec<String> {
    let sysroot = Command::new(env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    let mut missing = Vec::new();
    for target in &TARGETS {
        let std_lib = sysroot
            .as_ref()
            .map(|root| root.join("lib/rustlib").join(target.triple).join("lib"));
        if !std_lib.is_some_and(|lib| lib.is_dir()) {
            missing.push(format!("the rustup target {}", target.triple));
        }
        for tool in [target.gcc(), target.strip(), target.qemu.to_owned()] {
            if !on_path(&tool) {
                missing.push(format!("{tool} (for {})", target.triple));
            }
        }
        // The C library for linking (libc6-dev-*-cross), not only the runtime one.
        let libc = target.libraries().join("lib/libc.so");
        if !libc.is_file() {
            missing.push(format!(
                "{} (the C library to link for {})",
                libc.display(),
                target.triple
            ));
        }
    }
    missing
}

fn on_path(program: &str) -> bool {
    env::var_os("PATH")
        .is_some_and(|path| env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

impl Target {
    fn gcc(&self) -> String {
        format!("{}-gcc", self.tools)
    }

    fn strip(&self) -> String {
        format!("{}-strip", self.tools)
    }

    /// The target's C libraries, which qemu-user loads the binaries' libraries from.
    fn libraries(&self) -> PathBuf {
        Path::new("/usr").join(self.tools)
    }

    /// The emulator and its version, as `qemu-arm 7.2.22` (just its name if it does not
    /// say).
    fn qemu_version(&self) -> String {
        let said = Command::new(self.qemu).arg("--version").output().ok();
        let version = said.as_ref().and_then(|out| {
            let text = String::from_utf8_lossy(&out.stdout);
            let words: Vec<&str> = text.lines().next()?.split_whitespace().collect();
            let at = words.iter().position(|w| *w == "version")?;
            words.get(at + 1).map(|v| (*v).to_owned())
        });
        match version {
            Some(version) => format!("{} {version}", self.qemu),
            None => self.qemu.to_owned(),
        }
    }

    /// `cargo` set up to build for this target and to run what it builds under qemu.
    fn cargo(&self) -> Command {
        let var = self.triple.to_uppercase().replace('-', "_");
        let mut cmd = cargo_command();
        cmd.env(format!("CARGO_TARGET_{var}_LINKER"), self.gcc())
            .env(format!("CARGO_TARGET_{var}_RUNNER"), self.qemu)
            .env("QEMU_LD_PREFIX", self.libraries())
            .env("ENDURO_TEST_RUNNER", self.qemu);
        cmd
    }

    /// Builds, runs and tests the file-only build for this target; returns its report.
    fn check(&self) -> Result<String> {
        eprintln!("xtask: pi: {} ({})", self.triple, self.what);
        let slim = slim::check_target(Some(self.triple))?;
        let size = self.example()?;
        let cli = self.cli()?;
        let tests = self.tests()?;
        let mut report = format!(
            "{} ({}), under {}:\n  slim build: {} crates, none async, database or network\n  \
             example `addresses`: ran twice on one file; the second run reopened the first \
             one's 2 entries\n  stripped release example binary: {} bytes ({} KiB)\n",
            self.triple,
            self.what,
            self.qemu_version(),
            slim,
            thousands(size),
            size / 1024,
        );
        report.push_str(&format!(
            "  the files-only `enduro` command: set --create, set --at and get ran on one \
             file; stripped release binary: {} bytes ({} KiB)\n",
            thousands(cli),
            cli / 1024
        ));
        let (mut passed, mut failed) = (0, 0);
        report.push_str("  enduro-file tests (workers started through the emulator):\n");
        for run in &tests {
            passed += run.passed;
            failed += run.failed;
            let _ = writeln!(
                report,
                "    {}: {} passed, {} failed",
                run.binary, run.passed, run.failed
            );
        }
        let _ = writeln!(report, "    in all: {passed} passed, {failed} failed");
        Ok(report)
    }

    /// Builds the address-book example in release mode, strips a copy, and runs it twice
    /// under qemu on a fresh file (the second run must find the first one's entries);
    /// returns the stripped size.
    fn example(&self) -> Result<u64> {
        crate::run(self.cargo().args([
            "build",
            "--release",
            "--target",
            self.triple,
            "-p",
            "enduro",
            "--no-default-features",
            "--features",
            "file",
            "--example",
            "addresses",
        ]))?;
        let release = target_dir().join(self.triple).join("release");
        let (stripped, size) = self.stripped(&release.join("examples").join("addresses"))?;
        let dir = fresh(release.join("pi-example"))?;
        let book = dir.join("addresses.json");
        for (run, expected) in [(1, "(0 entries on opening)"), (2, "(2 entries on opening)")] {
            let out = Command::new(self.qemu)
                .env("QEMU_LD_PREFIX", self.libraries())
                .arg(&stripped)
                .arg(&book)
                .output()
                .map_err(|e| format!("cannot start {}: {e}", self.qemu))?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            if !out.status.success() || !stdout.contains(expected) {
                return Err(format!(
                    "the example's run {run} on {} failed ({}), expected it to print `{expected}`:\n{stdout}{}",
                    self.triple,
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        Ok(size)
    }

    /// A stripped copy of `binary` beside it (`NAME-stripped`), and its size.
    fn stripped(&self, binary: &Path) -> Result<(PathBuf, u64)> {
        let name = binary.file_name().map(|n| n.to_string_lossy().into_owned());
        let stripped = binary.with_file_name(format!("{}-stripped", name.unwrap_or_default()));
        crate::run(
            Command::new(self.strip())
                .arg("-o")
                .arg(&stripped)
                .arg(binary),
        )?;
        let size = std::fs::metadata(&stripped)
            .map_err(|e| format!("cannot read {}: {e}", stripped.display()))?
            .len();
        Ok((stripped, size))
    }

    /// Builds the files-only `enduro` command in release mode, strips a copy, and runs it
    /// under qemu: `set --create`, `set --at`, then `get` must print what was set; returns
    /// the stripped size.
    fn cli(&self) -> Result<u64> {
        crate::run(self.cargo().args([
            "build",
            "--release",
            "--target",
            self.triple,
            "-p",
            "enduro-cli",
            "--no-default-features",
        ]))?;
        let release = target_dir().join(self.triple).join("release");
        let (stripped, size) = self.stripped(&release.join("enduro"))?;
        let state = fresh(release.join("pi-cli"))?.join("state.json");
        let state = state.to_string_lossy();
        let runs: [&[&str]; 3] = [
            &["set", "--create", &state, "{\"n\": 1, \"on\": true}"],
            &["set", &state, "--at", "/n", "2"],
            &["get", &state, "--compact"],
        ];
        let mut last = String::new();
        for args in runs {
            let out = Command::new(self.qemu)
                .env("QEMU_LD_PREFIX", self.libraries())
                .arg(&stripped)
                .args(args)
                .output()
                .map_err(|e| format!("cannot start {}: {e}", self.qemu))?;
            last = String::from_utf8_lossy(&out.stdout).into_owned();
            if !out.status.success() {
                return Err(format!(
                    "`enduro {}` on {} failed ({}):\n{last}{}",
                    args.join(" "),
                    self.triple,
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        if last != "{\"n\":2,\"on\":true}\n" {
            return Err(format!("`enduro get` on {} printed {last:?}", self.triple));
        }
        Ok(size)
    }

    /// Runs enduro-file's unit and integration tests (not the doctests) for this target;
    /// returns each test binary's counts.
    fn tests(&self) -> Result<Vec<TestRun>> {
        let mut cmd = self.cargo();
        cmd.args([
            "test",
            "--target",
            self.triple,
            "-p",
            "enduro-file",
            "--lib",
            "--tests",
            "--no-fail-fast",
        ])
        .current_dir(root());
        eprintln!("xtask: running {cmd:?}");
        // One pipe for stdout and stderr, so that cargo's `Running BINARY` lines (stderr)
        // and the harness's `test result:` lines (stdout) keep their order.
        let (reader, writer) =
            std::io::pipe().map_err(|e| format!("cannot make a pipe for cargo test: {e}"))?;
        let writer2 = writer
            .try_clone()
            .map_err(|e| format!("cannot make a pipe for cargo test: {e}"))?;
        let mut child = cmd
            .stdout(writer)
            .stderr(writer2)
            .spawn()
            .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
        // The pipe's write ends now live only in the child, so reading ends when it exits.
        drop(cmd);
        let mut runs = Vec::new();
        let mut binary = String::new();
        for line in BufReader::new(reader).lines() {
            let line = line.map_err(|e| format!("cannot read cargo test's output: {e}"))?;
            eprintln!("{line}");
            if let Some(name) = line.trim_start().strip_prefix("Running ") {
                // `Running tests/conformance.rs (target/.../conformance-HASH)`
                binary = name.split(" (").next().unwrap_or(name).to_owned();
            } else if let Some(result) = line.strip_prefix("test result: ") {
                runs.push(TestRun {
                    binary: binary.clone(),
                    passed: count(result, "passed"),
                    failed: count(result, "failed"),
                });
            }
        }
        let status = child
            .wait()
            .map_err(|e| format!("cannot wait for cargo test: {e}"))?;
        if !status.success() {
            return Err(format!(
                "enduro-file's tests failed on {} under {}",
                self.triple, self.qemu
            ));
        }
        if runs.is_empty() {
            return Err(format!("cargo test ran no test binary for {}", self.triple));
        }
        Ok(runs)
    }
}

/// The counts of one test binary's run.
struct TestRun {
    binary: String,
    passed: u64,
    failed: u64,
}

/// The number before `what` in a `test result:` line (`ok. 71 passed; 0 failed; ...`).
fn count(result: &str, what: &str) -> u64 {
    result
        .split(';')
        .filter_map(|part| part.trim().rsplit_once(' '))
        .find(|(_, name)| *name == what)
        .and_then(|(n, _)| n.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// `dir`, emptied: nothing of an earlier run (a file, its sidecars) is found there.
fn fresh(dir: PathBuf) -> Result<PathBuf> {
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("cannot remove {}: {e}", dir.display()))
        }
        _ => Ok(dir),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_counts_of_a_test_result_line() {
        let line =
            "ok. 71 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 5.60s";
        assert_eq!(count(line, "passed"), 71);
        assert_eq!(count(line, "failed"), 2);
        // The crash tests' own runner leaves out `ignored` and `measured`.
        assert_eq!(
            count("FAILED. 0 passed; 5 failed; 0 filtered out", "failed"),
            5
        );
        assert_eq!(count("ok. 3 passed", "failed"), 0);
    }

    #[test]
    fn groups_thousands() {
        assert_eq!(thousands(725_720), "725,720");
        assert_eq!(thousands(1_002_016), "1,002,016");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(0), "0");
    }
}
