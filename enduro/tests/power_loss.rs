//! Power loss, simulated on real file systems (ext4, xfs, btrfs) with outagefs.
//!
//! A SIGKILL keeps the page cache; a power cut does not. For each file system and
//! scenario, this test records once every write and flush that reaches a disk image while
//! the scenario commits through file atoms (outagefs's `mount --record`: the image is a
//! FUSE file, loop-mounted), then replays the states a power cut can leave behind: for
//! each flush, every write before it kept and a subset of the writes after it (all
//! subsets when there are at most 8 such writes, otherwise 256 picked by a seeded walk,
//! as outagefs's `gen-tests` does). Each case is built as a fresh copy of the image,
//! loop-mounted, and checked by a verifier process against the oracle:
//!
//! - after each acknowledged step (creation, swap, release), the scenario writes the step's
//!   marker to the image, in an area past the end of the file system, and flushes it; a
//!   marker that survived proves every write and flush before it kept. (Not a marker
//!   file in the file system: on ext4 and xfs, its fsync would commit the file system's
//!   journal, and with it a rename that enduro forgot to make durable; the harness would
//!   then miss a missing directory fsync, as it did in a first version.)
//! - so the atom must open without error and hold a whole value of the scenario's history,
//!   no older than the last surviving marker (and no newer than the last attempted step:
//!   the history holds only attempted values);
//! - after the open, nothing is left beside the data file but its lock file and journal;
//! - and it accepts a new swap, which a fresh open then reads back.
//!
//! Scenarios: plain commits of a small value and of one larger than a page; journal
//! commits (appends and compactions) of both sizes; journal commits of ops (`apply`:
//! small op records, and compactions that encode the value the ops made); release and
//! re-creation in both modes; two processes committing to one path, in plain mode, in
//! mixed modes, and both applying ops.
//!
//! `cargo xtask powerloss` runs it (installing outagefs under `target/` first), as does
//! `cargo xtask ci`. On btrfs it replays a seeded sample of the cases unless `--full` is
//! given (the seed is printed; `ENDURO_POWERLOSS_SEED=S` replays a sample). Arguments that
//! are not options select file systems and scenarios by name (`ext4`, `journal`, ...).
//! `--drop-sync` instead replays the scenarios as a disk that ignores flushes would leave
//! them (outagefs's `mutate --drop-sync`) and reports, without asserting, what breaks.
//!
//! It needs root, `/dev/fuse`, loop devices, mkfs for each file system and outagefs
//! (`ENDURO_OUTAGEFS`, else `target/outagefs/bin/outagefs`, else `outagefs` on `PATH`).
//! Without them it says what is missing and passes, except under `CI=true`, where that is
//! a failure: CI never skips.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use enduro::{Atom, FileAtom};
use serde::{Deserialize, Serialize};

/// The role a process started by this test plays (unset: the test itself).
const ROLE_VAR: &str = "ENDURO_POWERLOSS_ROLE";
/// The scenario's name, for the roles.
const SCENARIO_VAR: &str = "ENDURO_POWERLOSS_SCENARIO";
/// The directory of the atom and the marker files, for the roles.
const DIR_VAR: &str = "ENDURO_POWERLOSS_DIR";
/// Where the recording role says how it went (outagefs does not pass on its exit code).
const STATUS_VAR: &str = "ENDURO_POWERLOSS_STATUS";
/// The file system, for the recording role's mount.
const FS_VAR: &str = "ENDURO_POWERLOSS_FS";
/// Where the recording role mounts the image.
const MOUNT_VAR: &str = "ENDURO_POWERLOSS_MOUNT";
/// The image (the FUSE file) the recording role and its writers write markers to.
const IMAGE_VAR: &str = "ENDURO_POWERLOSS_IMAGE";
/// The size of the file system in the image: where the marker area starts.
const MARKS_AT_VAR: &str = "ENDURO_POWERLOSS_MARKS_AT";
/// The last marker of each writer found in a case, for the verifier (`M0,M1,M2`).
const MARKED_VAR: &str = "ENDURO_POWERLOSS_MARKED";
/// The writer number, for the writer role of the two-process scenarios.
const WRITER_VAR: &str = "ENDURO_POWERLOSS_WRITER";

/// The data file, in the directory `atoms` at the root of each image.
const DATA: &str = "state.json";
/// The files an open may leave beside the data file: its lock file and its journal.
const SIDECARS: [&str; 2] = [".state.json.enduro-lock", ".state.json.enduro-journal"];
/// Writers (the scenario's process, and the two of the two-process scenarios).
const WRITERS: usize = 3;
/// Markers per writer, each in a 4 KiB block of its own past the file system's end.
const MARKS: usize = 64;
const MARK_BLOCK: u64 = 4096;

/// Where writer `w`'s marker `k` lies in the image.
fn mark_offset(marks_at: u64, writer: usize, k: usize) -> u64 {
    marks_at + ((writer * MARKS + k) as u64) * MARK_BLOCK
}

/// The block that marks step `k` of writer `w` as acknowledged.
fn mark_block(writer: usize, k: usize) -> Vec<u8> {
    let mut block = format!("enduro power-loss marker: writer {writer}, step {k}\n").into_bytes();
    block.resize(MARK_BLOCK as usize, b'.');
    block
}

/// The last marker of each writer found in an image (0: none).
fn marked(image: &File, marks_at: u64) -> Result<[usize; WRITERS], String> {
    let mut last = [0; WRITERS];
    let mut block = vec![0; MARK_BLOCK as usize];
    for (writer, last) in last.iter_mut().enumerate() {
        for k in 1..MARKS {
            image
                .read_exact_at(&mut block, mark_offset(marks_at, writer, k))
                .map_err(|e| format!("cannot read a marker: {e}"))?;
            if block == mark_block(writer, k) {
                *last = k;
            }
        }
    }
    Ok(last)
}

/// Per flush, all subsets of the writes after it up to this many writes (2^8 cases), and
/// 2^8 picked ones beyond: outagefs's default (`gen-tests --max-cases-log2 8`).
const MAX_CASES_LOG2: usize = 8;
/// Cases replayed per scenario on btrfs without `--full`.
const BTRFS_SAMPLE: usize = 60;
/// Replays run side by side (each its own image copy, loop device and mount).
const WORKERS: usize = 2;

fn main() -> ExitCode {
    if let Ok(role) = std::env::var(ROLE_VAR) {
        return match roles::run(&role) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    let options = Options::parse();
    if options.list {
        println!("power_loss: test");
        return ExitCode::SUCCESS;
    }
    let tools = match Tools::find() {
        Ok(tools) => tools,
        Err(missing) => {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "CI=true, so the power-loss test must run, but {missing}"
            );
            eprintln!(
                "skipped: the power-loss test cannot run here: {missing} \
                 (CI=true makes this a failure; `cargo xtask powerloss` installs outagefs)"
            );
            return ExitCode::SUCCESS;
        }
    };
    match driver::run(&tools, &options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("power_loss: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The command line: `--full`, `--drop-sync`, name filters; what `cargo test` passes
/// besides is ignored.
#[derive(Debug, Default)]
struct Options {
    full: bool,
    drop_sync: bool,
    list: bool,
    filters: Vec<String>,
}

impl Options {
    fn parse() -> Options {
        let mut options = Options::default();
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--full" => options.full = true,
                "--drop-sync" => options.drop_sync = true,
                "--list" => options.list = true,
                "--test-threads" | "--format" | "--color" | "--skip" | "--logfile" => {
                    args.next();
                }
                option if option.starts_with('-') => {}
                _ => options.filters.push(arg),
            }
        }
        options
    }

    /// Whether `fs/scenario` is selected.
    fn selects(&self, fs: &str, scenario: &str) -> bool {
        let name = format!("{fs}/{scenario}");
        self.filters.is_empty() || self.filters.iter().any(|f| name.contains(f.as_str()))
    }
}

/// A file system to test on: the smallest image mkfs allows, more or less.
#[derive(Debug, Clone, Copy)]
struct FileSystem {
    name: &'static str,
    mib: u64,
    mkfs: &'static [&'static str],
    /// Mount options: copies of one xfs image mounted side by side share a UUID.
    mount: &'static str,
}

const FILE_SYSTEMS: [FileSystem; 3] = [
    FileSystem {
        name: "ext4",
        mib: 8,
        mkfs: &["mkfs.ext4", "-q", "-F"],
        mount: "loop",
    },
    FileSystem {
        name: "xfs",
        mib: 300,
        mkfs: &["mkfs.xfs", "-q", "-f"],
        mount: "loop,nouuid",
    },
    FileSystem {
        name: "btrfs",
        mib: 128,
        mkfs: &["mkfs.btrfs", "-q", "-f"],
        mount: "loop",
    },
];

impl FileSystem {
    /// The file system's size: the image holds the marker area past it.
    fn bytes(&self) -> u64 {
        self.mib << 20
    }
}

/// What the tests need from the machine.
#[derive(Debug)]
struct Tools {
    outagefs: PathBuf,
}

impl Tools {
    fn find() -> Result<Tools, String> {
        let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
        let root = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0");
        if !root {
            return Err("it must run as root (loop mounts and FUSE)".into());
        }
        if !Path::new("/dev/fuse").exists() {
            return Err("/dev/fuse is missing".into());
        }
        for fs in FILE_SYSTEMS {
            if !on_path(fs.mkfs[0]) {
                return Err(format!("{} is not installed", fs.mkfs[0]));
            }
        }
        let outagefs = std::env::var_os("ENDURO_OUTAGEFS")
            .map(PathBuf::from)
            .or_else(|| {
                let cached = target_dir().join("outagefs/bin/outagefs");
                cached.exists().then_some(cached)
            })
            .or_else(|| on_path("outagefs").then(|| PathBuf::from("outagefs")))
            .ok_or("outagefs is not installed")?;
        Ok(Tools { outagefs })
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).exists()))
}

/// Cargo's target dir: this test binary is `target/<profile>/deps/power_loss-HASH`.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_path_buf()
}

/// The value every scenario stores: a list of `(writer, seq)` entries, padded with text
/// that differs from one value to the next at every position, so that a value made of
/// pieces of two writes never equals a value of the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct State {
    /// 0, and 1 after a release and re-creation; [`SENTINEL`] for the verifier's own.
    life: u32,
    entries: Vec<(u32, u32)>,
    pad: String,
}

/// The `life` of the value the verifier opens with: finding it means the path held none.
const SENTINEL: u32 = u32::MAX;

impl State {
    fn new(life: u32, entries: Vec<(u32, u32)>, pad: usize) -> State {
        let mut text = String::with_capacity(pad + 32);
        let mut i = 0;
        while text.len() < pad {
            write!(text, "{life}.{}.{i}|", entries.len()).unwrap();
            i += 1;
        }
        text.truncate(pad);
        State {
            life,
            entries,
            pad: text,
        }
    }

    /// This value with one more entry (and its padding made anew).
    fn with(&self, entry: (u32, u32)) -> State {
        let mut entries = self.entries.clone();
        entries.push(entry);
        State::new(self.life, entries, self.pad.len())
    }
}

/// The op of the ops scenarios: one more entry.
impl enduro::Apply for State {
    type Op = (u32, u32);
    fn apply(&mut self, entry: &(u32, u32)) {
        *self = self.with(*entry);
    }
}

/// How a scenario's atoms commit.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Plain,
    /// Journal mode with this compaction bound (`journal_limit`).
    Journal(u64),
    /// Journal mode storing ops (`ops()`, and `apply` instead of `swap`), with this
    /// compaction bound.
    JournalOps(u64),
}

impl Mode {
    fn open(self, dir: &Path, init: State) -> enduro::Result<Atom<State>> {
        let builder = FileAtom::builder(dir.join(DATA));
        match self {
            Mode::Plain => builder.open(init),
            Mode::Journal(limit) => builder.journal(true).journal_limit(limit).open(init),
            Mode::JournalOps(limit) => builder.journal(true).journal_limit(limit).ops().open(init),
        }
    }

    /// Adds `entry` to the value: an op in [`Mode::JournalOps`], else a swap.
    fn add(self, atom: &Atom<State>, entry: (u32, u32)) -> enduro::Result<Arc<State>> {
        match self {
            Mode::JournalOps(_) => atom.apply(entry),
            _ => atom.swap(|s| s.with(entry)),
        }
    }
}

/// Journal mode compacting once the records pass 8 times the value's size.
const COMPACTING: Mode = Mode::Journal(1);
/// Journal mode that does not compact within a scenario.
const APPENDING: Mode = Mode::Journal(4 << 20);

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// One process: creates the atom, then swaps `swaps` times.
    Swaps { mode: Mode, pad: usize, swaps: u32 },
    /// One process: creates, swaps `swaps` times, releases, creates again, swaps again.
    Release { mode: Mode, swaps: u32 },
    /// One process creates the atom, then two processes swap `swaps` times each, at once.
    TwoProcesses { modes: [Mode; 2], swaps: u32 },
}

#[derive(Debug, Clone, Copy)]
struct Scenario {
    name: &'static str,
    kind: Kind,
}

const SCENARIOS: [Scenario; 10] = [
    Scenario {
        name: "plain-small",
        kind: Kind::Swaps {
            mode: Mode::Plain,
            pad: 16,
            swaps: 4,
        },
    },
    Scenario {
        name: "plain-large",
        kind: Kind::Swaps {
            mode: Mode::Plain,
            pad: 6000,
            swaps: 3,
        },
    },
    // Records of 4 KiB (one block) against a bound of 8 x 1.5 KiB: compacts every 4th.
    Scenario {
        name: "journal-small",
        kind: Kind::Swaps {
            mode: COMPACTING,
            pad: 1500,
            swaps: 8,
        },
    },
    // Records of 8 KiB (two blocks) against a bound of 8 x 6 KiB: compacts at the 6th.
    Scenario {
        name: "journal-large",
        kind: Kind::Swaps {
            mode: COMPACTING,
            pad: 6000,
            swaps: 7,
        },
    },
    // Op records of one block against a bound of 8 x 1.5 KiB: compacts every 4th op,
    // encoding the value the ops made.
    Scenario {
        name: "journal-ops",
        kind: Kind::Swaps {
            mode: Mode::JournalOps(1),
            pad: 1500,
            swaps: 8,
        },
    },
    Scenario {
        name: "release-plain",
        kind: Kind::Release {
            mode: Mode::Plain,
            swaps: 2,
        },
    },
    Scenario {
        name: "release-journal",
        kind: Kind::Release {
            mode: APPENDING,
            swaps: 2,
        },
    },
    Scenario {
        name: "two-processes",
        kind: Kind::TwoProcesses {
            modes: [Mode::Plain, Mode::Plain],
            swaps: 3,
        },
    },
    Scenario {
        name: "two-processes-mixed",
        kind: Kind::TwoProcesses {
            modes: [APPENDING, Mode::Plain],
            swaps: 3,
        },
    },
    Scenario {
        name: "two-processes-ops",
        kind: Kind::TwoProcesses {
            modes: [Mode::JournalOps(4 << 20), Mode::JournalOps(4 << 20)],
            swaps: 3,
        },
    },
];

/// The padding of the small values.
const SMALL: usize = 16;

impl Scenario {
    fn named(name: &str) -> Result<Scenario, String> {
        SCENARIOS
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(|| format!("no scenario is named `{name}`"))
    }

    /// The mode the verifier opens with.
    fn mode(&self) -> Mode {
        match self.kind {
            Kind::Swaps { mode, .. } | Kind::Release { mode, .. } => mode,
            Kind::TwoProcesses { modes, .. } => modes[0],
        }
    }

    /// The values the path holds, in order, for the one-process scenarios (`None`: no
    /// value); marker `k` acknowledges `history[k]`.
    fn history(&self) -> Vec<Option<State>> {
        let lifetime = |life: u32, pad: usize, swaps: u32| {
            (0..=swaps)
                .map(move |n| Some(State::new(life, (0..n).map(|s| (life, s)).collect(), pad)))
        };
        match self.kind {
            Kind::Swaps { pad, swaps, .. } => std::iter::once(None)
                .chain(lifetime(0, pad, swaps))
                .collect(),
            Kind::Release { swaps, .. } => std::iter::once(None)
                .chain(lifetime(0, SMALL, swaps))
                .chain(std::iter::once(None))
                .chain(lifetime(1, SMALL, swaps))
                .collect(),
            Kind::TwoProcesses { .. } => Vec::new(),
        }
    }
}

/// The processes this test starts: recording a scenario, its writers, the verifier.
mod roles {
    use super::*;

    pub fn run(role: &str) -> Result<(), String> {
        let scenario = Scenario::named(&var(SCENARIO_VAR)?)?;
        match role {
            "record" => record(scenario),
            "writer" => {
                let writer: u32 = var(WRITER_VAR)?.parse().map_err(|e| format!("{e}"))?;
                write(scenario, Path::new(&var(DIR_VAR)?), writer)
            }
            "verify" => verify(scenario, Path::new(&var(DIR_VAR)?)),
            other => Err(format!("unknown role `{other}`")),
        }
    }

    fn var(name: &str) -> Result<String, String> {
        std::env::var(name).map_err(|_| format!("{name} is not set"))
    }

    /// Run by `outagefs mount --record --exec`: mounts the image (the FUSE file), plays
    /// the scenario, unmounts, and writes `ok` or the error to the status file.
    fn record(scenario: Scenario) -> Result<(), String> {
        let status = var(STATUS_VAR)?;
        let result = (|| {
            let image = var(IMAGE_VAR)?;
            let fs = var(FS_VAR)?;
            let fs = FILE_SYSTEMS
                .into_iter()
                .find(|f| f.name == fs)
                .ok_or("unknown file system")?;
            let mount = PathBuf::from(var(MOUNT_VAR)?);
            super::mount(&fs, Path::new(&image), &mount)?;
            let played = play(scenario, &mount.join("atoms"));
            let unmounted = super::umount(&mount);
            played.and(unmounted)
        })();
        let text = match &result {
            Ok(()) => "ok".to_owned(),
            Err(e) => e.clone(),
        };
        fs::write(&status, text).map_err(|e| format!("cannot write {status}: {e}"))?;
        result
    }

    /// Where one writer marks its acknowledged steps: the image itself, past the file
    /// system's end.
    struct Marker {
        image: File,
        at: u64,
        writer: usize,
    }

    impl Marker {
        fn open(writer: usize) -> Result<Marker, String> {
            let image = OpenOptions::new()
                .write(true)
                .open(var(IMAGE_VAR)?)
                .map_err(|e| format!("cannot open the image to mark it: {e}"))?;
            let at = var(MARKS_AT_VAR)?.parse().map_err(|e| format!("{e}"))?;
            Ok(Marker { image, at, writer })
        }

        /// Writes marker `k` and flushes it.
        fn mark(&self, k: usize) -> Result<(), String> {
            if k >= MARKS {
                return Err(format!("marker {k} is past the marker area"));
            }
            self.image
                .write_all_at(
                    &mark_block(self.writer, k),
                    mark_offset(self.at, self.writer, k),
                )
                .and_then(|()| self.image.sync_all())
                .map_err(|e| format!("cannot write a marker: {e}"))
        }
    }

    fn play(scenario: Scenario, dir: &Path) -> Result<(), String> {
        let err = |what: &str, e: enduro::Error| format!("{what}: {e}");
        match scenario.kind {
            Kind::Swaps { .. } | Kind::Release { .. } => {
                let mode = scenario.mode();
                let marker = Marker::open(0)?;
                let history = scenario.history();
                let mut atom: Option<Atom<State>> = None;
                for (k, step) in history.iter().enumerate().skip(1) {
                    match (step, &atom) {
                        (Some(state), None) => {
                            let opened =
                                mode.open(dir, state.clone()).map_err(|e| err("open", e))?;
                            if *opened.deref() != *state {
                                return Err(format!("opened {:?}", opened.deref()));
                            }
                            atom = Some(opened);
                        }
                        (Some(state), Some(open)) => {
                            let next = state.entries.last().copied().ok_or("no entry")?;
                            let now = mode.add(open, next).map_err(|e| err("swap", e))?;
                            if *now != *state {
                                return Err(format!("swapped to {now:?}"));
                            }
                        }
                        (None, Some(open)) => {
                            open.release().map_err(|e| err("release", e))?;
                            atom = None;
                        }
                        (None, None) => return Err("two releases in a row".into()),
                    }
                    marker.mark(k)?;
                }
                Ok(())
            }
            Kind::TwoProcesses { .. } => {
                let marker = Marker::open(0)?;
                let atom = scenario
                    .mode()
                    .open(dir, State::new(0, Vec::new(), SMALL))
                    .map_err(|e| err("open", e))?;
                marker.mark(1)?;
                drop(atom);
                let exe = std::env::current_exe().map_err(|e| e.to_string())?;
                let children: Vec<_> = (1..=2)
                    .map(|writer| {
                        Command::new(&exe)
                            .env(ROLE_VAR, "writer")
                            .env(WRITER_VAR, writer.to_string())
                            .env(DIR_VAR, dir)
                            .spawn()
                            .map_err(|e| format!("cannot start a writer: {e}"))
                    })
                    .collect::<Result<_, _>>()?;
                for mut child in children {
                    let status = child.wait().map_err(|e| e.to_string())?;
                    if !status.success() {
                        return Err(format!("a writer failed: {status}"));
                    }
                }
                Ok(())
            }
        }
    }

    /// A writer of the two-process scenarios: `swaps` swaps appending `(writer, seq)`.
    fn write(scenario: Scenario, dir: &Path, writer: u32) -> Result<(), String> {
        let Kind::TwoProcesses { modes, swaps } = scenario.kind else {
            return Err("not a two-process scenario".into());
        };
        let marker = Marker::open(writer as usize)?;
        let mode = modes[writer as usize - 1];
        let atom = mode
            .open(dir, State::new(0, Vec::new(), SMALL))
            .map_err(|e| format!("open: {e}"))?;
        for seq in 0..swaps {
            mode.add(&atom, (writer, seq))
                .map_err(|e| format!("swap: {e}"))?;
            marker.mark(seq as usize + 1)?;
        }
        Ok(())
    }

    /// The last marker of each writer found in the case, as the driver read them.
    fn last_markers() -> Result<[usize; WRITERS], String> {
        let text = var(MARKED_VAR)?;
        let mut last = [0; WRITERS];
        for (slot, n) in last.iter_mut().zip(text.split(',')) {
            *slot = n.parse().map_err(|e| format!("{MARKED_VAR}: {e}"))?;
        }
        Ok(last)
    }

    /// How an open that failed failed: `undecodable` (the data file or the journal holds
    /// bytes that are not a value: torn, or damaged), `io` (the file system failed), or
    /// `open`.
    fn open_class(e: &enduro::Error) -> &'static str {
        match e {
            enduro::Error::Decode { .. }
            | enduro::Error::Corrupt { .. }
            | enduro::Error::Replay { .. }
            | enduro::Error::InvalidStored { .. } => "undecodable",
            enduro::Error::Io { .. } => "io",
            _ => "open",
        }
    }

    /// Checks one replayed case; the first word of the error classifies it (see
    /// [`open_class`], `older`, `foreign`, `stray`, `swap`, `reopen`, `lost`).
    fn verify(scenario: Scenario, dir: &Path) -> Result<(), String> {
        let mode = scenario.mode();
        let sentinel = State::new(SENTINEL, Vec::new(), 0);
        let atom = mode
            .open(dir, sentinel.clone())
            .map_err(|e| format!("{}: the atom does not open: {e}", open_class(&e)))?;
        let found = atom.deref();
        let value = (found.life != SENTINEL).then(|| (*found).clone());
        let markers = last_markers()?;
        let marker = markers[0];
        match scenario.kind {
            Kind::Swaps { .. } | Kind::Release { .. } => {
                let history = scenario.history();
                let Some(at) = history.iter().rposition(|h| *h == value) else {
                    return Err(format!(
                        "foreign: the value is none of the history: {value:?}"
                    ));
                };
                if at < marker {
                    return Err(format!(
                        "older: step {marker} was acknowledged (its marker survived), but \
                         the atom holds the value of step {at}"
                    ));
                }
            }
            Kind::TwoProcesses { swaps, .. } => match &value {
                None if marker == 0 => {}
                None => return Err("older: the creation was acknowledged, but no value".into()),
                Some(state) => {
                    let mut seen = [0u32; 2];
                    for &(writer, seq) in &state.entries {
                        let ok = (1..=2).contains(&writer) && seq == seen[writer as usize - 1];
                        if !ok || seq >= swaps {
                            return Err(format!("foreign: entry {:?} in {state:?}", (writer, seq)));
                        }
                        seen[writer as usize - 1] += 1;
                    }
                    if *state != State::new(0, state.entries.clone(), SMALL) {
                        return Err(format!("foreign: {state:?}"));
                    }
                    for writer in 1..=2 {
                        let acknowledged = markers[writer];
                        if (seen[writer - 1] as usize) < acknowledged {
                            return Err(format!(
                                "older: writer {writer} had {acknowledged} swaps acknowledged, \
                                 the value holds {}",
                                seen[writer - 1]
                            ));
                        }
                    }
                }
            },
        }
        strays(dir)?;
        let expected = found.with((9, 9));
        let now = mode
            .add(&atom, (9, 9))
            .map_err(|e| format!("swap: a new swap fails: {e}"))?;
        if *now != expected {
            return Err(format!("swap: swapped to {now:?}"));
        }
        drop(atom);
        let again = mode.open(dir, sentinel).map_err(|e| {
            format!(
                "reopen: the atom does not open after a swap ({}): {e}",
                open_class(&e)
            )
        })?;
        if *again.deref() != expected {
            return Err(format!("reopen: reads {:?}", again.deref()));
        }
        strays(dir)
    }

    /// Fails on any file beside the data file but its sidecars.
    fn strays(dir: &Path) -> Result<(), String> {
        let entries = fs::read_dir(dir).map_err(|e| format!("lost: cannot list: {e}"))?;
        for entry in entries {
            let name = entry.map_err(|e| e.to_string())?.file_name();
            let name = name.to_string_lossy();
            if name != DATA && !SIDECARS.contains(&&*name) {
                return Err(format!("stray: `{name}` is left after an open"));
            }
        }
        Ok(())
    }
}

/// Runs `command` to its end; an error, named `what`, holds what it wrote to stderr.
fn run_command(command: &mut Command, what: &str) -> Result<(), String> {
    let out = command
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Mounts `image` on `at` (made if needed).
fn mount(fs: &FileSystem, image: &Path, at: &Path) -> Result<(), String> {
    fs::create_dir_all(at).map_err(|e| format!("cannot make {}: {e}", at.display()))?;
    run_command(
        Command::new("mount")
            .args(["-t", fs.name, "-o", fs.mount])
            .arg(image)
            .arg(at),
        "mount",
    )
    .map_err(|e| format!("mount: the {} image does not mount: {e}", fs.name))
}

/// Unmounts `at`, retrying while it is busy (a process that just exited may still hold
/// it for a moment).
fn umount(at: &Path) -> Result<(), String> {
    let mut tries = 0;
    loop {
        match run_command(Command::new("umount").arg(at), "umount") {
            Ok(()) => return Ok(()),
            Err(e) if tries == 49 => return Err(format!("cannot unmount {}: {e}", at.display())),
            Err(_) => tries += 1,
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// A write or a flush that reached the image, as outagefs records them.
#[derive(Debug, Clone)]
enum Change {
    Write { offset: u64, data: Vec<u8> },
    Sync,
}

/// Reads outagefs's `changes` file: `Vec<Change>` in varbincode (LEB128 integers).
fn decode_changes(bytes: &[u8]) -> Result<Vec<Change>, String> {
    let mut at = 0;
    let uint = |at: &mut usize| -> Result<u64, String> {
        let (mut value, mut shift) = (0u64, 0);
        loop {
            let byte = *bytes.get(*at).ok_or("the changes file is cut short")?;
            *at += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
            shift += 7;
            if shift > 63 {
                return Err("a number in the changes file is too long".into());
            }
        }
    };
    let count = uint(&mut at)?;
    let mut changes = Vec::new();
    for _ in 0..count {
        match uint(&mut at)? {
            0 => {
                let offset = uint(&mut at)?;
                let len = uint(&mut at)? as usize;
                let data = bytes
                    .get(at..at + len)
                    .ok_or("a write in the changes file is cut short")?
                    .to_vec();
                at += len;
                changes.push(Change::Write { offset, data });
            }
            1 => changes.push(Change::Sync),
            other => return Err(format!("unknown change kind {other}")),
        }
    }
    Ok(changes)
}

/// The writes between two flushes: `changes[start..end]`, `end` the flush's index.
#[derive(Debug, Clone, Copy)]
struct Gap {
    start: usize,
    end: usize,
}

/// One state a power cut can leave: every change before `gap`'s start, and of the writes
/// in the gap those whose bit is set.
#[derive(Debug, Clone)]
struct Case {
    gap: usize,
    take: Vec<bool>,
}

impl Case {
    /// As outagefs's `--filter` (`START:BITS`), to replay it by hand.
    fn filter(&self, gaps: &[Gap]) -> String {
        let bits: String = self
            .take
            .iter()
            .map(|&b| if b { '1' } else { '0' })
            .collect();
        format!("{}:{bits}", gaps[self.gap].start)
    }
}

/// SplitMix64: small, seeded, good enough to pick cases.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The gaps between flushes (a last one if writes follow the last flush).
fn gaps(changes: &[Change]) -> Vec<Gap> {
    let mut gaps = Vec::new();
    let mut start = 0;
    for (i, change) in changes.iter().enumerate() {
        if matches!(change, Change::Sync) {
            gaps.push(Gap { start, end: i });
            start = i + 1;
        }
    }
    if start < changes.len() {
        gaps.push(Gap {
            start,
            end: changes.len(),
        });
    }
    gaps
}

/// outagefs's cases: per gap of `w` writes, all `2^w` subsets if `w` is at most
/// [`MAX_CASES_LOG2`], else 256 distinct subsets met on a walk of random bit flips.
fn cases(gaps: &[Gap], rng: &mut Rng) -> Vec<Case> {
    let mut cases = Vec::new();
    for (g, gap) in gaps.iter().enumerate() {
        let width = gap.end - gap.start;
        if width == 0 {
            continue;
        }
        if width <= MAX_CASES_LOG2 {
            for bits in 0u32..1 << width {
                let take = (0..width)
                    .map(|i| bits >> (width - 1 - i) & 1 == 1)
                    .collect();
                cases.push(Case { gap: g, take });
            }
        } else {
            let wanted = 1 << MAX_CASES_LOG2;
            let mut take = vec![false; width];
            let mut seen = BTreeSet::new();
            while seen.len() < wanted {
                let flips = 1 + rng.below((width * 2 / MAX_CASES_LOG2).max(1));
                for _ in 0..flips {
                    let i = rng.below(width);
                    take[i] = !take[i];
                }
                if seen.insert(take.clone()) {
                    cases.push(Case {
                        gap: g,
                        take: take.clone(),
                    });
                }
            }
        }
    }
    cases
}

/// Drives the recordings and the replays.
mod driver {
    use super::*;

    /// What a replay of one scenario on one file system found.
    #[derive(Debug, Default)]
    struct Tally {
        writes: usize,
        flushes: usize,
        generated: usize,
        verified: usize,
        /// With `--drop-sync`: the cases by outcome (the first word of the verifier's
        /// error, or `ok`).
        outcomes: std::collections::BTreeMap<String, usize>,
        /// With `--drop-sync`: the first error of each outcome.
        examples: std::collections::BTreeMap<String, String>,
        failure: Option<String>,
        seconds: f64,
    }

    pub fn run(tools: &Tools, options: &Options) -> Result<(), String> {
        let seed = std::env::var("ENDURO_POWERLOSS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        println!(
            "power_loss: seed {seed} (ENDURO_POWERLOSS_SEED={seed} picks the same cases){}",
            if options.drop_sync {
                "; flushes dropped (outagefs mutate --drop-sync): outcomes are reported, not asserted"
            } else {
                ""
            }
        );
        let shm = Path::new("/dev/shm");
        let work = if shm.is_dir() {
            tempfile::tempdir_in(shm)
        } else {
            tempfile::tempdir()
        }
        .map_err(|e| format!("cannot make a work dir: {e}"))?;
        let mut total = 0;
        let mut failed = Vec::new();
        for fs in FILE_SYSTEMS {
            let scenarios: Vec<Scenario> = SCENARIOS
                .into_iter()
                .filter(|s| options.selects(fs.name, s.name))
                .collect();
            if scenarios.is_empty() {
                continue;
            }
            let base = prepare(&fs, work.path())?;
            for scenario in scenarios {
                let mut rng = Rng(seed ^ fnv(fs.name) ^ fnv(scenario.name));
                let started = Instant::now();
                let mut tally =
                    replay(tools, options, &fs, scenario, &base, work.path(), &mut rng)?;
                tally.seconds = started.elapsed().as_secs_f64();
                print_row(&fs, scenario, &tally, options);
                if let Some(failure) = &tally.failure {
                    failed.push(format!("{}/{}: {failure}", fs.name, scenario.name));
                }
                total += tally.verified;
            }
        }
        println!("power_loss: {total} cases verified in all");
        if failed.is_empty() {
            return Ok(());
        }
        // Kept, so that a failed case can be looked at and replayed by hand: each file
        // system's `base` image, each recording's `changes` (`outagefs mount -b BASE -c
        // CHANGES --filter F` with the filter printed) and the failed cases' images.
        let kept = work.keep();
        Err(format!(
            "{}\nthe images are kept in {} (<fs>/base, <fs>/<scenario>/changes, \
             <fs>/<scenario>/w*/failed-case-N.img)",
            failed.join("\n"),
            kept.display()
        ))
    }

    fn fnv(text: &str) -> u64 {
        text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    }

    fn print_row(fs: &FileSystem, scenario: Scenario, t: &Tally, options: &Options) {
        let mut line = format!(
            "power_loss: {:<5} {:<20} {:>5} writes {:>4} flushes  {:>5} of {:>5} cases verified  {:>6.1} s",
            fs.name, scenario.name, t.writes, t.flushes, t.verified, t.generated, t.seconds
        );
        if options.drop_sync {
            for (outcome, n) in &t.outcomes {
                write!(line, "  {outcome}: {n}").unwrap();
            }
            for example in t.examples.values() {
                write!(line, "\n    e.g. {example}").unwrap();
            }
        }
        if let Some(failure) = &t.failure {
            write!(line, "\n  FAILED: {failure}").unwrap();
        }
        println!("{line}");
    }

    /// Makes the file system's empty image, with the directory `atoms` in it, flushed,
    /// and the marker area past its end; stored sparse.
    fn prepare(fs: &FileSystem, work: &Path) -> Result<PathBuf, String> {
        let dir = work.join(fs.name);
        fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let full = dir.join("mkfs");
        File::create(&full)
            .and_then(|f| f.set_len(fs.bytes()))
            .map_err(|e| format!("cannot make the image: {e}"))?;
        run_command(
            Command::new(fs.mkfs[0]).args(&fs.mkfs[1..]).arg(&full),
            fs.mkfs[0],
        )?;
        let mnt = dir.join("prepare");
        mount(fs, &full, &mnt)?;
        let made = (|| {
            let atoms = mnt.join("atoms");
            fs::create_dir(&atoms)?;
            File::open(&atoms)?.sync_all()
        })();
        umount(&mnt)?;
        made.map_err(|e| format!("cannot prepare the image: {e}"))?;
        let marks = (WRITERS * MARKS) as u64 * MARK_BLOCK;
        OpenOptions::new()
            .write(true)
            .open(&full)
            .and_then(|f| f.set_len(fs.bytes() + marks))
            .map_err(|e| format!("cannot make the marker area: {e}"))?;
        let base = dir.join("base");
        copy_sparse(&full, &base)?;
        fs::remove_file(&full).map_err(|e| e.to_string())?;
        Ok(base)
    }

    /// Copies an image keeping (and making) holes: images are mostly zeros.
    fn copy_sparse(from: &Path, to: &Path) -> Result<(), String> {
        run_command(
            Command::new("cp").arg("--sparse=always").arg(from).arg(to),
            "cp",
        )
    }

    /// Records the scenario on the image through outagefs.
    fn record(
        tools: &Tools,
        fs: &FileSystem,
        scenario: Scenario,
        base: &Path,
        dir: &Path,
        drop_sync: bool,
    ) -> Result<Vec<Change>, String> {
        let (changes, status) = (dir.join("changes"), dir.join("status"));
        let (fuse, mnt) = (dir.join("fuse"), dir.join("mnt"));
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let quoted = format!("'{}'", exe.display().to_string().replace('\'', r"'\''"));
        let mut command = Command::new(&tools.outagefs);
        command
            .arg("mount")
            .arg("--base")
            .arg(base)
            .arg("--changes")
            .arg(&changes)
            .arg("--dest")
            .arg(&fuse)
            .arg("--record")
            .arg("--exec")
            .arg(format!("exec {quoted}"))
            .env(ROLE_VAR, "record")
            .env(SCENARIO_VAR, scenario.name)
            .env(FS_VAR, fs.name)
            .env(MOUNT_VAR, &mnt)
            .env(IMAGE_VAR, &fuse)
            .env(MARKS_AT_VAR, fs.bytes().to_string())
            .env(STATUS_VAR, &status);
        let ran = run_bounded(
            &mut command,
            &dir.join("record.log"),
            RECORD_LIMIT,
            "outagefs",
        );
        let (exit, log) = ran.inspect_err(|_| {
            // Killed: its mounts go with it, or at least out of the way.
            for mounted in [&mnt, &fuse] {
                let _ = Command::new("umount").arg("-l").arg(mounted).status();
            }
        })?;
        let said = fs::read_to_string(&status).unwrap_or_default();
        if !exit.success() || said != "ok" {
            return Err(format!(
                "recording {} on {} failed ({exit}): {said}\n{log}",
                scenario.name, fs.name,
            ));
        }
        if drop_sync {
            run_command(
                Command::new(&tools.outagefs)
                    .arg("mutate")
                    .arg("--base")
                    .arg(base)
                    .arg("--changes")
                    .arg(&changes)
                    .arg("--drop-sync"),
                "outagefs mutate",
            )?;
        }
        let bytes = fs::read(&changes).map_err(|e| format!("cannot read the changes: {e}"))?;
        decode_changes(&bytes)
    }

    fn replay(
        tools: &Tools,
        options: &Options,
        fs: &FileSystem,
        scenario: Scenario,
        base: &Path,
        work: &Path,
        rng: &mut Rng,
    ) -> Result<Tally, String> {
        let dir = work.join(fs.name).join(scenario.name);
        fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let changes = record(tools, fs, scenario, base, &dir, options.drop_sync)?;
        let gaps = gaps(&changes);
        let mut cases = cases(&gaps, rng);
        let generated = cases.len();
        if fs.name == "btrfs" && !options.full && !options.drop_sync {
            // A seeded sample, kept in order (replays move forward through the gaps).
            let mut picked: Vec<usize> = (0..cases.len()).collect();
            for i in 0..picked.len() {
                let j = i + rng.below(picked.len() - i);
                picked.swap(i, j);
            }
            picked.truncate(BTRFS_SAMPLE);
            picked.sort_unstable();
            cases = picked.into_iter().map(|i| cases[i].clone()).collect();
        }
        let writes = changes
            .iter()
            .filter(|c| matches!(c, Change::Write { .. }))
            .count();
        let mut tally = Tally {
            writes,
            flushes: changes.len() - writes,
            generated,
            ..Tally::default()
        };
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let results = Mutex::new(Vec::new());
        thread::scope(|s| {
            for w in 0..WORKERS {
                let (next, stop, results) = (&next, &stop, &results);
                let (cases, gaps, changes) = (&cases, &gaps, &changes);
                let dir = dir.join(format!("w{w}"));
                s.spawn(move || {
                    let outcome = (|| -> Result<(), String> {
                        let mut replayer = Replayer::new(
                            fs,
                            scenario,
                            base,
                            &dir,
                            changes,
                            gaps,
                            !options.drop_sync,
                        )?;
                        loop {
                            if stop.load(Ordering::Relaxed) {
                                return Ok(());
                            }
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(case) = cases.get(i) else {
                                return Ok(());
                            };
                            let verdict = replayer.check(i, case)?;
                            let failed = verdict.is_err();
                            results.lock().unwrap().push((i, verdict));
                            if failed && !options.drop_sync {
                                stop.store(true, Ordering::Relaxed);
                            }
                        }
                    })();
                    if let Err(e) = outcome {
                        stop.store(true, Ordering::Relaxed);
                        results
                            .lock()
                            .unwrap()
                            .push((usize::MAX, Err(format!("harness: {e}"))));
                    }
                });
            }
        });
        let mut results = results.into_inner().unwrap();
        results.sort_by_key(|(i, _)| *i);
        for (i, verdict) in results {
            match verdict {
                Ok(()) => {
                    tally.verified += 1;
                    *tally.outcomes.entry("ok".into()).or_default() += 1;
                }
                Err(e) => {
                    let class = e.split(':').next().unwrap_or("?").to_owned();
                    *tally.outcomes.entry(class.clone()).or_default() += 1;
                    tally.examples.entry(class).or_insert_with(|| e.clone());
                    if tally.failure.is_none() && (!options.drop_sync || i == usize::MAX) {
                        let case = cases.get(i).map_or(String::new(), |c| {
                            format!(
                                " (case {i}: outagefs filter {}, after flush {} of {})",
                                c.filter(&gaps),
                                c.gap,
                                gaps.len()
                            )
                        });
                        tally.failure = Some(format!("{e}{case}"));
                    }
                }
            }
        }
        Ok(tally)
    }

    /// One worker's images: a checkpoint (the base with every write before a gap) moved
    /// forward gap by gap, and the case built from it.
    struct Replayer<'a> {
        fs: &'a FileSystem,
        scenario: Scenario,
        dir: PathBuf,
        changes: &'a [Change],
        gaps: &'a [Gap],
        checkpoint: File,
        /// The gap the checkpoint stands before.
        at: usize,
        /// Whether a failed case's image is kept (as `failed-case-N.img`): not where
        /// failures are expected (`--drop-sync`).
        keep_failed: bool,
    }

    impl<'a> Replayer<'a> {
        fn new(
            fs: &'a FileSystem,
            scenario: Scenario,
            base: &Path,
            dir: &Path,
            changes: &'a [Change],
            gaps: &'a [Gap],
            keep_failed: bool,
        ) -> Result<Replayer<'a>, String> {
            fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            let path = dir.join("checkpoint");
            copy_sparse(base, &path)?;
            let checkpoint = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| e.to_string())?;
            Ok(Replayer {
                fs,
                scenario,
                dir: dir.to_path_buf(),
                changes,
                gaps,
                checkpoint,
                at: 0,
                keep_failed,
            })
        }

        /// Builds the case's image, mounts it, runs the verifier: `Err` holds what it
        /// found; the outer `Err` is the harness's own failure.
        fn check(&mut self, index: usize, case: &Case) -> Result<Result<(), String>, String> {
            let target = self.gaps[case.gap].start;
            let from = self.gaps.get(self.at).map_or(target, |g| g.start);
            for change in &self.changes[from..target] {
                apply(&self.checkpoint, change)?;
            }
            self.at = case.gap;
            let image = self.dir.join("case");
            copy_sparse(&self.dir.join("checkpoint"), &image)?;
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&image)
                .map_err(|e| e.to_string())?;
            let gap = self.gaps[case.gap];
            for (change, &take) in self.changes[gap.start..gap.end].iter().zip(&case.take) {
                if take {
                    apply(&file, change)?;
                }
            }
            let marked = marked(&file, self.fs.bytes())?;
            drop(file);
            let mnt = self.dir.join("mnt");
            let verdict = match mount(self.fs, &image, &mnt) {
                Ok(()) => {
                    let verdict = self.verify(&mnt.join("atoms"), marked)?;
                    umount(&mnt)?;
                    verdict
                }
                Err(e) => Err(e),
            };
            if verdict.is_err() && self.keep_failed {
                let kept = self.dir.join(format!("failed-case-{index}.img"));
                fs::rename(&image, &kept).map_err(|e| format!("cannot keep a case: {e}"))?;
            }
            Ok(verdict)
        }

        fn verify(
            &self,
            dir: &Path,
            marked: [usize; WRITERS],
        ) -> Result<Result<(), String>, String> {
            let marked = marked.map(|m| m.to_string()).join(",");
            let mut command = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
            command
                .env(ROLE_VAR, "verify")
                .env(MARKED_VAR, marked)
                .env(SCENARIO_VAR, self.scenario.name)
                .env(DIR_VAR, dir);
            let log = self.dir.join("verify.log");
            Ok(
                match run_bounded(&mut command, &log, VERIFY_LIMIT, "the verifier") {
                    Ok((exit, _)) if exit.success() => Ok(()),
                    Ok((_, said)) => Err(said.trim().to_owned()),
                    Err(hung) => Err(hung),
                },
            )
        }
    }

    /// How long a recording may take, and a verifier: guards so that the test always
    /// ends, never measures of speed.
    const RECORD_LIMIT: Duration = Duration::from_secs(600);
    const VERIFY_LIMIT: Duration = Duration::from_secs(120);

    /// Runs `command` with its stderr in the file `log` (returned with the exit status);
    /// kills it after `limit`, which is an error starting with `hang`.
    fn run_bounded(
        command: &mut Command,
        log: &Path,
        limit: Duration,
        what: &str,
    ) -> Result<(std::process::ExitStatus, String), String> {
        let file = File::create(log).map_err(|e| format!("cannot make {}: {e}", log.display()))?;
        let mut child = command
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .map_err(|e| format!("cannot start {what}: {e}"))?;
        let deadline = Instant::now() + limit;
        let exit = loop {
            if let Some(exit) = child.try_wait().map_err(|e| e.to_string())? {
                break exit;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("hang: {what} ran for {} s", limit.as_secs()));
            }
            thread::sleep(Duration::from_millis(2));
        };
        Ok((exit, fs::read_to_string(log).unwrap_or_default()))
    }

    fn apply(file: &File, change: &Change) -> Result<(), String> {
        match change {
            Change::Write { offset, data } => file
                .write_all_at(data, *offset)
                .map_err(|e| format!("cannot build a case image: {e}")),
            Change::Sync => Ok(()),
        }
    }
}
