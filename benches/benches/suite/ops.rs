//! The per-operation scenarios, measured with Criterion: each group holds enduro and its
//! raw baseline, measured in alternating passes (`enduro_1`, `raw_1`, `enduro_2`, ...) so
//! that a slow patch of a shared disk or CPU hits both alike. A figure is the mean over
//! the passes of Criterion's median time per operation (robust to the odd stall), turned
//! into operations per second.

use std::collections::HashMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};
use enduro_benches::raw::{RawCounter, RawFile, RawMemCell};
use enduro_benches::report::{Measured, Row, Target, Unit};
use enduro_benches::{scratch_dir, values};
use rustbreak::PathDatabase;
use rustbreak::deser::Bincode;

/// Criterion group names: the scenario's directory under Criterion's output.
pub const FILE_SMALL: &str = "file_small";
/// The 1 MiB JSON map.
pub const FILE_1MIB: &str = "file_1mib";
/// enduro against rustbreak.
pub const RUSTBREAK: &str = "file_small_rustbreak";
/// Memory atoms.
pub const MEM_SMALL: &str = "mem_small";

/// Encoded size of the large value.
const ONE_MIB: usize = 1024 * 1024;

/// Where Criterion left its estimates, and which groups could not even be set up.
#[derive(Debug)]
pub struct Results {
    home: PathBuf,
    skipped: HashMap<&'static str, String>,
}

impl Results {
    /// Reads from `home` (Criterion's output directory), after deleting what an earlier
    /// run left there for our groups, so that a figure is never stale.
    pub fn new(home: &Path) -> Results {
        #[cfg(feature = "pg")]
        let groups = [
            FILE_SMALL,
            FILE_1MIB,
            RUSTBREAK,
            MEM_SMALL,
            crate::pg::PG_1TASK,
        ];
        #[cfg(not(feature = "pg"))]
        let groups = [FILE_SMALL, FILE_1MIB, RUSTBREAK, MEM_SMALL];
        for group in groups
            .into_iter()
            .chain(crate::journal::GROUPS)
            .chain(crate::apply::GROUPS)
            .chain([crate::redis_rows::REDIS_1T, crate::sqlite_rows::SQLITE_1T])
        {
            let _ = std::fs::remove_dir_all(home.join(group));
        }
        Results {
            home: home.to_path_buf(),
            skipped: HashMap::new(),
        }
    }

    /// Notes that `group` was not run, and why.
    pub fn skip(&mut self, group: &'static str, reason: impl std::fmt::Display) {
        eprintln!("enduro-benches: skipping {group}: {reason}");
        self.skipped.insert(group, reason.to_string());
    }

    /// Operations per second of benchmark `id` in `group`: 1 s / the mean over its passes
    /// (`id_1`, `id_2`, ..., or just `id`) of Criterion's median.
    pub fn ops_per_sec(&self, group: &str, id: &str) -> Result<f64, String> {
        if let Some(reason) = self.skipped.get(group) {
            return Err(reason.clone());
        }
        let mut medians = Vec::new();
        for pass in 1.. {
            let pass_id = format!("{id}_{pass}");
            if !self.home.join(group).join(&pass_id).exists() {
                break;
            }
            medians.push(self.median_ns(group, &pass_id)?);
        }
        if medians.is_empty() {
            medians.push(self.median_ns(group, id)?);
        }
        Ok(1e9 * medians.len() as f64 / medians.iter().sum::<f64>())
    }

    /// Criterion's median time per iteration of one benchmark, in ns.
    fn median_ns(&self, group: &str, id: &str) -> Result<f64, String> {
        let path = self
            .home
            .join(group)
            .join(id)
            .join("new")
            .join("estimates.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("no Criterion estimate at {} ({e})", path.display()))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format!("unreadable Criterion estimate {}: {e}", path.display()))?;
        json["median"]["point_estimate"]
            .as_f64()
            .filter(|ns| *ns > 0.0)
            .ok_or_else(|| format!("no median in {}", path.display()))
    }

    /// enduro's and the baseline's figures of one group.
    pub fn pair(&self, group: &str, baseline: &str) -> Result<Measured, String> {
        Ok(Measured {
            enduro: self.ops_per_sec(group, "enduro")?,
            baseline: self.ops_per_sec(group, baseline)?,
        })
    }

    /// A row from one group, or a not-run row with the reason.
    #[allow(clippy::too_many_arguments)]
    pub fn row(
        &self,
        group: &str,
        baseline_id: &str,
        id: &str,
        scenario: &str,
        baseline: &str,
        target: Option<Target>,
    ) -> Row {
        match self.pair(group, baseline_id) {
            Ok(measured) => {
                Row::measured(id, scenario, baseline, Unit::OpsPerSec, measured, target)
            }
            Err(reason) => Row::not_run(id, scenario, baseline, Unit::OpsPerSec, target, reason),
        }
    }

    /// The file row with one thread and a small value.
    pub fn file_rows(&self) -> Vec<Row> {
        vec![self.row(
            FILE_SMALL,
            "raw",
            "file_small_1t",
            "file, u64 counter, 1 thread: swap",
            "raw write temp + fsync + rename + dir fsync",
            Some(Target::RatioAtLeast(0.9)),
        )]
    }

    /// The large-value and rustbreak rows.
    pub fn other_file_rows(&self) -> Vec<Row> {
        let mut large = self.row(
            FILE_1MIB,
            "raw",
            "file_1mib_1t",
            "file, 1 MiB JSON map of strings, 1 thread: swap (clones the map)",
            "raw serde_json → buffered temp file + fsync + rename + dir fsync (in place)",
            Some(Target::RatioAtLeast(0.85)),
        );
        let vs_clone = self.row(
            FILE_1MIB,
            "raw_clone",
            "file_1mib_1t_vs_raw_clone",
            "file, 1 MiB JSON map of strings, 1 thread: swap (clones the map)",
            "the same raw loop, cloning the map first as a pure update function must",
            None,
        );
        if let (Ok(raw), Ok(clone)) = (
            self.pair(FILE_1MIB, "raw"),
            self.ops_per_sec(FILE_1MIB, "raw_clone"),
        ) {
            large = large.with_note(format!(
                "Per operation (same run): enduro's swap {:.2} ms; the raw loop changing the \
                 map in place {:.2} ms; the raw loop that clones the map first, as enduro's pure \
                 update function does, {:.2} ms (next row). The gap to the in-place loop is the \
                 clone and the drop of the old map, not enduro's I/O path.",
                1e3 / raw.enduro,
                1e3 / raw.baseline,
                1e3 / clone,
            ));
        }
        let mut rustbreak = self.row(
            RUSTBREAK,
            "rustbreak",
            "file_small_rustbreak",
            "file, u64 counter, 1 thread: swap",
            "rustbreak 2 PathDatabase<u64, Bincode> write + save (no dir fsync)",
            Some(Target::RatioAtLeast(1.0)),
        );
        if let Ok(raw) = self.ops_per_sec(FILE_SMALL, "raw") {
            rustbreak = rustbreak.with_note(format!(
                "rustbreak fsyncs its temp file but not the directory, so its rename is not \
                 yet durable when `save` returns. For scale: the raw loop, which does fsync the \
                 directory, ran at {raw:.0} ops/s in this run (first row)."
            ));
        }
        vec![large, vs_clone, rustbreak]
    }

    /// The memory-atom row.
    pub fn mem_rows(&self) -> Vec<Row> {
        vec![self.row(
            MEM_SMALL,
            "raw",
            "mem_small_1t",
            "mem, u64 counter, 1 thread: swap",
            "raw serde_json encode + Mutex update",
            None,
        )]
    }
}

/// Runs every per-operation group that does not need PostgreSQL, each in `passes`
/// alternating passes.
pub fn run(c: &mut Criterion, results: &mut Results, passes: usize) {
    if let Err(e) = file_small(c, passes) {
        results.skip(FILE_SMALL, e);
    }
    if let Err(e) = file_1mib(c, passes) {
        results.skip(FILE_1MIB, e);
    }
    if let Err(e) = rustbreak(c, passes) {
        results.skip(RUSTBREAK, e);
    }
    mem_small(c, passes);
}

/// Benchmarks `enduro` and `baseline` in `passes` alternating passes, as `enduro_1`,
/// `{baseline_id}_1`, `enduro_2`, ...
pub fn alternate<O1, O2>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    passes: usize,
    baseline_id: &str,
    mut enduro: impl FnMut() -> O1,
    mut baseline: impl FnMut() -> O2,
) {
    alternate_all(
        group,
        passes,
        &mut [
            ("enduro", &mut || drop(enduro())),
            (baseline_id, &mut || drop(baseline())),
        ],
    );
}

/// Benchmarks several contenders in `passes` passes, each pass measuring each contender
/// in turn, as `{id}_{pass}`.
pub fn alternate_all(
    group: &mut BenchmarkGroup<'_, WallTime>,
    passes: usize,
    contenders: &mut [(&str, &mut dyn FnMut())],
) {
    for pass in 1..=passes {
        for (id, op) in contenders.iter_mut() {
            group.bench_function(format!("{id}_{pass}"), |b| b.iter(&mut **op));
        }
    }
}

type Setup = Result<(), Box<dyn std::error::Error>>;

fn file_small(c: &mut Criterion, passes: usize) -> Setup {
    let dir = scratch_dir(FILE_SMALL)?;
    let atom = enduro::file_atom(0u64, dir.path().join("counter.json"))?;
    let mut raw = RawCounter::new(dir.path(), "raw-counter.json")?;
    let mut group = c.benchmark_group(FILE_SMALL);
    alternate(
        &mut group,
        passes,
        "raw",
        || atom.swap(|n| n + 1).expect("enduro swap"),
        || raw.increment().expect("raw durable replace"),
    );
    group.finish();
    Ok(())
}

fn file_1mib(c: &mut Criterion, passes: usize) -> Setup {
    one_mib(c, passes, FILE_1MIB, false)
}

/// The 1 MiB map of strings, one key touched per swap, through a file atom (in journal
/// mode with `journal`) against the raw rename loop changing the map in place (`raw`) and
/// cloning it first as a pure update function does (`raw_clone`), in Criterion group
/// `name`.
pub fn one_mib(c: &mut Criterion, passes: usize, name: &str, journal: bool) -> Setup {
    let dir = scratch_dir(name)?;
    let mut map = values::map_of_strings(ONE_MIB);
    let atom = enduro::FileAtom::builder(dir.path().join("map.json"))
        .journal(journal)
        .open(map.clone())?;
    let raw = RawFile::new(dir.path(), "raw-map.json")?;
    raw.replace_json(&map)?;
    let mut group = c.benchmark_group(name);
    let (mut i, mut j, mut k) = (0, 0, 0);
    let mut cloned = map.clone();
    alternate_all(
        &mut group,
        passes,
        &mut [
            ("enduro", &mut || {
                i += 1;
                atom.swap(|m| {
                    let mut m = m.clone();
                    values::touch(&mut m, i);
                    m
                })
                .expect("enduro swap");
            }),
            ("raw", &mut || {
                j += 1;
                values::touch(&mut map, j);
                raw.replace_json(&map).expect("raw durable replace");
            }),
            ("raw_clone", &mut || {
                k += 1;
                let mut next = cloned.clone();
                values::touch(&mut next, k);
                raw.replace_json(&next).expect("raw durable replace");
                cloned = next;
            }),
        ],
    );
    group.finish();
    Ok(())
}

/// rustbreak's counter: a `PathDatabase<u64, Bincode>` at `dir/rustbreak.bin`, at 0.
pub fn rustbreak_db(dir: &Path) -> rustbreak::Result<PathDatabase<u64, Bincode>> {
    PathDatabase::<u64, Bincode>::create_at_path(dir.join("rustbreak.bin"), 0)
}

/// One rustbreak operation: write + save.
pub fn rustbreak_increment(db: &PathDatabase<u64, Bincode>) {
    db.write(|n| *n += 1).expect("rustbreak write");
    db.save().expect("rustbreak save");
}

fn rustbreak(c: &mut Criterion, passes: usize) -> Setup {
    let dir = scratch_dir(RUSTBREAK)?;
    let atom = enduro::file_atom(0u64, dir.path().join("counter.json"))?;
    let db = rustbreak_db(dir.path())?;
    let mut group = c.benchmark_group(RUSTBREAK);
    alternate(
        &mut group,
        passes,
        "rustbreak",
        || atom.swap(|n| n + 1).expect("enduro swap"),
        || rustbreak_increment(&db),
    );
    group.finish();
    Ok(())
}

fn mem_small(c: &mut Criterion, passes: usize) {
    let atom = enduro::mem_atom(0u64);
    let raw = RawMemCell::default();
    let mut group = c.benchmark_group(MEM_SMALL);
    alternate(
        &mut group,
        passes,
        "raw",
        || atom.swap(|n| black_box(n + 1)).expect("enduro swap"),
        || raw.increment(),
    );
    group.finish();
}
