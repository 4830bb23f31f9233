//! The ops rows: a file atom in journal mode whose journal stores *ops*
//! (`FileAtom::builder(path).journal(true).ops()`), so that `apply(op)` appends one small
//! record of the encoded op and flushes it once, instead of writing the whole value.
//!
//! The value is a map of about 10 MiB of compact JSON: [`ENTRIES`] entries, keys
//! `key-000123` and values of 40 pseudo-random letters and digits
//! ([`values::random_ish_entries`]), kept as an `imbl::OrdMap` (a persistent map: a clone
//! is O(1) and shares its nodes) and as a `std::collections::BTreeMap` (whose clone copies
//! every entry: what a swap's update function pays, and an `apply` wherever the atom has to
//! copy the value). Every operation sets ONE key to a new 40-byte value; the
//! keys are visited in steps of [`STRIDE`] (a prime not dividing [`ENTRIES`], so every key
//! comes round once per cycle and consecutive operations touch distant keys, in the atom
//! and in the databases alike).
//!
//! - [`IMBL`]: `apply(Set)` on the imbl map against the same change as a full-rewrite
//!   `swap` of a plain-mode file atom, the raw one-flush append loop ([`RawJournal`]),
//!   redb and SQLite holding the same entries as a table, all in one Criterion group, in
//!   alternating passes.
//! - [`BTREE`]: the same on the `BTreeMap`, against the full rewrite only (and, for scale,
//!   one clone of the map).
//! - [`OPEN`]: opening (replaying) an atom whose journal holds [`OPEN_OPS`] ops after its
//!   10 MiB snapshot, against decoding the snapshot alone.
//! - [`memory_rows`]: peak (and final) resident memory of a child process (this binary,
//!   started again with `ENDURO_BENCH_CHILD=apply-…`) that opens the ops atom and applies
//!   ops, against the map's own size, and of one that does the same by hand.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use criterion::{Criterion, SamplingMode};
use enduro::{Apply, FileAtom};
use enduro_benches::memory::{MemoryReport, measure_held};
use enduro_benches::raw::{RawFile, RawJournal};
use enduro_benches::report::{Measured, Outcome, Row, Target, Unit};
use enduro_benches::{scratch_dir, values};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::Timing;
use crate::embedded::{RedbMap, SqliteMap};
use crate::ops::{Results, alternate_all};

/// The imbl map against every baseline.
pub const IMBL: &str = "file_10mib_ops_imbl";
/// The BTreeMap against the full rewrite.
pub const BTREE: &str = "file_10mib_ops_btree";
/// Opening an atom whose journal holds ops.
pub const OPEN: &str = "file_10mib_ops_open";
/// Every Criterion group of this module.
pub const GROUPS: [&str; 3] = [IMBL, BTREE, OPEN];

/// Entries of the map: about 10 MiB of compact JSON.
pub const ENTRIES: usize = 190_000;
/// The step between the keys of consecutive operations: a prime that does not divide
/// [`ENTRIES`], so the walk visits every key once per cycle.
pub const STRIDE: usize = 7_919;
/// The raw append loop's pre-zeroed region (as in the journal rows: the default limit).
const RAW_JOURNAL_BYTES: u64 = 4 << 20;
/// Ops in the journal that [`OPEN`] opens; fewer in the quick mode.
const OPEN_OPS: u32 = 10_000;
const OPEN_OPS_QUICK: u32 = 1_000;
/// Every this many ops of [`OPEN`]'s journal, one is a `Remove` (so that the replay goes
/// through both kinds); the others are `Set`.
const OPEN_REMOVE_EVERY: u32 = 100;
/// The journal limit of [`OPEN`]'s atom: high enough that building it never compacts.
const OPEN_LIMIT: u64 = 1 << 30;
/// Ops each memory child applies (imbl, BTreeMap), and in the quick mode.
const MEMORY_OPS: (u32, u32) = (2_000, 200);
const MEMORY_OPS_QUICK: (u32, u32) = (500, 50);

const SCENARIO_IMBL: &str = "file journal + ops, ~10 MiB imbl::OrdMap (190,000 entries), 1 thread: \
                             apply(Set) of one key";
const SCENARIO_BTREE: &str = "file journal + ops, ~10 MiB BTreeMap (190,000 entries), 1 thread: \
                              apply(Set) of one key";
const REWRITE: &str = "plain-mode file atom: swap making the same one-key change (a full \
                       rewrite: temp file + fsync + rename + dir fsync)";
const RAW_JOURNAL: &str = "raw pwrite of a 64-byte record at the next 4 KiB offset of a \
                           pre-zeroed file + fdatasync";
const REDB: &str = "redb 4, the same 190,000 entries in one table: one write transaction \
                    (Durability::Immediate) inserting one key per operation";

type Setup = Result<(), Box<dyn std::error::Error>>;

/// The encoded size of the value (its data file), for the notes.
static VALUE_BYTES: OnceLock<u64> = OnceLock::new();
/// The sizes of the data file and the journal that [`OPEN`] opened, and its ops.
static OPEN_SIZES: OnceLock<(u64, u64, u32)> = OnceLock::new();
/// How many ops [`IMBL`]'s atom applied, and whether its journal compacted meanwhile (the
/// data file was replaced).
static IMBL_OPS: OnceLock<(u32, bool)> = OnceLock::new();

/// The imbl map, as the atom holds it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ImblMap(pub imbl::OrdMap<String, String>);

/// The std map, as the atom holds it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StdMap(pub BTreeMap<String, String>);

/// A change of one key of either map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MapOp {
    /// Sets `key` to `value`.
    Set {
        /// The key.
        key: String,
        /// Its new value.
        value: String,
    },
    /// Removes `key`.
    Remove {
        /// The key.
        key: String,
    },
}

impl Apply for ImblMap {
    type Op = MapOp;

    fn apply(&mut self, op: &MapOp) {
        match op {
            MapOp::Set { key, value } => {
                self.0.insert(key.clone(), value.clone());
            }
            MapOp::Remove { key } => {
                self.0.remove(key);
            }
        }
    }
}

impl Apply for StdMap {
    type Op = MapOp;

    fn apply(&mut self, op: &MapOp) {
        match op {
            MapOp::Set { key, value } => {
                self.0.insert(key.clone(), value.clone());
            }
            MapOp::Remove { key } => {
                self.0.remove(key);
            }
        }
    }
}

/// What the scenarios need of either map.
pub trait BenchMap:
    Apply<Op = MapOp> + Serialize + DeserializeOwned + PartialEq + Default + Send + Sync + 'static
{
    /// [`ENTRIES`] entries of [`values::random_ish_entries`].
    fn build() -> Self;
}

impl BenchMap for ImblMap {
    fn build() -> Self {
        ImblMap(values::random_ish_entries(ENTRIES).collect())
    }
}

impl BenchMap for StdMap {
    fn build() -> Self {
        // One insert at a time: `collect` would gather the entries in a Vec and sort it
        // first, a passing peak that the memory rows would count.
        let mut map = BTreeMap::new();
        for (key, value) in values::random_ish_entries(ENTRIES) {
            map.insert(key, value);
        }
        StdMap(map)
    }
}

/// The key that operation `i` changes.
fn op_key(i: u32) -> String {
    values::key(i as usize * STRIDE % ENTRIES)
}

/// The new value that operation `i` writes (never one the map was built with).
fn op_value(i: u32) -> String {
    values::random_ish((1 << 40) | u64::from(i))
}

/// Operation `i`: sets [`op_key`] to [`op_value`].
fn set_op(i: u32) -> MapOp {
    MapOp::Set {
        key: op_key(i),
        value: op_value(i),
    }
}

/// Opens the journal + ops atom at `data`, with journal limit `limit` (or the default).
fn open_ops<T: BenchMap>(
    data: &Path,
    init: T,
    limit: Option<u64>,
) -> enduro::Result<enduro::Atom<T>> {
    let builder = FileAtom::builder(data).journal(true);
    let builder = match limit {
        Some(limit) => builder.journal_limit(limit),
        None => builder,
    };
    builder.ops().open(init)
}

/// The full-rewrite counterpart of `apply(op)`: a swap computing the same value.
fn rewrite<T: BenchMap>(atom: &enduro::Atom<T>, op: &MapOp) -> enduro::Result<()> {
    atom.swap(|m| {
        let mut m = m.clone();
        m.apply(op);
        m
    })
    .map(drop)
}

/// Runs this module's Criterion groups, each in `timing.passes` alternating passes.
pub fn run(c: &mut Criterion, results: &mut Results, timing: Timing) {
    if let Err(e) = imbl(c, timing.passes) {
        results.skip(IMBL, e);
    }
    if let Err(e) = btree(c, timing.passes) {
        results.skip(BTREE, e);
    }
    if let Err(e) = open(c, timing) {
        results.skip(OPEN, e);
    }
}

fn imbl(c: &mut Criterion, passes: usize) -> Setup {
    let dir = scratch_dir(IMBL)?;
    let started = Instant::now();
    let data = dir.path().join("map.json");
    // Each atom gets a map of its own: clones of one imbl map would share their nodes, and
    // an op would copy the path to its key where it need not.
    let atom = open_ops(&data, ImblMap::build(), None)?;
    let snapshot = std::fs::metadata(&data)?;
    let bytes = snapshot.len();
    let _ = VALUE_BYTES.set(bytes);
    let plain = FileAtom::builder(dir.path().join("plain.json")).open(ImblMap::build())?;
    let mut raw_journal = RawJournal::new(dir.path(), "raw.journal", RAW_JOURNAL_BYTES)?;
    let (redb, sqlite) = {
        let entries: Vec<(String, String)> = values::random_ish_entries(ENTRIES).collect();
        let entries = || entries.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        (
            RedbMap::create(&dir.path().join("map.redb"), entries())?,
            SqliteMap::create(&dir.path().join("map.sqlite"), entries())?,
        )
    };
    let mut set = sqlite.setter()?;
    eprintln!(
        "enduro-benches: {IMBL}: {ENTRIES} entries, {bytes} bytes of JSON ({:.2} MiB); \
         atoms, redb and SQLite set up in {:.1} s (untimed)",
        bytes as f64 / f64::from(1 << 20),
        started.elapsed().as_secs_f64()
    );
    let (mut i, mut j, mut k, mut r, mut s) = (0u32, 0u32, 0u64, 0u32, 0u32);
    let mut group = c.benchmark_group(IMBL);
    // The full rewrite takes tens of milliseconds: one iteration per sample at least, not
    // Criterion's linear ramp of up to 55 iterations.
    group.sampling_mode(SamplingMode::Flat);
    alternate_all(
        &mut group,
        passes,
        &mut [
            ("enduro", &mut || {
                i += 1;
                atom.apply(set_op(i)).expect("enduro apply");
            }),
            ("rewrite", &mut || {
                j += 1;
                rewrite(&plain, &set_op(j)).expect("enduro plain-mode swap");
            }),
            ("raw_journal", &mut || {
                k += 1;
                raw_journal.append(k).expect("raw journal append");
            }),
            ("redb", &mut || {
                r += 1;
                redb.set(&op_key(r), &op_value(r))
                    .expect("redb write transaction");
            }),
            ("sqlite", &mut || {
                s += 1;
                set.run(&op_key(s), &op_value(s)).expect("SQLite UPDATE");
            }),
        ],
    );
    group.finish();

    // Every contender did what it was timed for: the atom reopened from its files holds
    // what the one that applied the ops held, and so on.
    let held = atom.deref();
    drop(atom);
    let reopened = open_ops(&data, ImblMap::default(), None)?.deref();
    if *reopened != *held {
        return Err(
            "the ops atom reopened from its journal differs from the one that \
                    applied the ops"
                .into(),
        );
    }
    if i > 0 && held.0.get(&op_key(i)) != Some(&op_value(i)) {
        return Err(format!("the ops atom misses op {i}").into());
    }
    if j > 0 && plain.deref().0.get(&op_key(j)) != Some(&op_value(j)) {
        return Err(format!("the plain atom misses swap {j}").into());
    }
    if r > 0 && redb.get(&op_key(r))? != Some(op_value(r)) {
        return Err(format!("redb misses write {r}").into());
    }
    if s > 0 && sqlite.get(&op_key(s))? != Some(op_value(s)) {
        return Err(format!("SQLite misses update {s}").into());
    }
    let compacted = std::fs::metadata(&data)?.ino() != snapshot.ino();
    let _ = IMBL_OPS.set((i, compacted));
    eprintln!(
        "enduro-benches: {IMBL}: {i} ops applied (journal compacted: {compacted}), {j} \
         rewrites; the reopened atom matches"
    );
    Ok(())
}

fn btree(c: &mut Criterion, passes: usize) -> Setup {
    let dir = scratch_dir(BTREE)?;
    let map = StdMap::build();
    let data = dir.path().join("map.json");
    let atom = open_ops(&data, map.clone(), None)?;
    let plain = FileAtom::builder(dir.path().join("plain.json")).open(map.clone())?;
    let (mut i, mut j) = (0u32, 0u32);
    let mut group = c.benchmark_group(BTREE);
    group.sampling_mode(SamplingMode::Flat);
    alternate_all(
        &mut group,
        passes,
        &mut [
            ("enduro", &mut || {
                i += 1;
                atom.apply(set_op(i)).expect("enduro apply");
            }),
            ("rewrite", &mut || {
                j += 1;
                rewrite(&plain, &set_op(j)).expect("enduro plain-mode swap");
            }),
            // For scale: what one copy of the map costs (clone, then drop).
            ("clone", &mut || drop(black_box(map.clone()))),
        ],
    );
    group.finish();
    let held = atom.deref();
    drop(atom);
    if *open_ops(&data, StdMap::default(), None)?.deref() != *held {
        return Err(
            "the ops atom reopened from its journal differs from the one that \
                    applied the ops"
                .into(),
        );
    }
    Ok(())
}

/// How many ops the journal of [`OPEN`] holds.
fn open_ops_count(timing: Timing) -> u32 {
    if timing.quick {
        OPEN_OPS_QUICK
    } else {
        OPEN_OPS
    }
}

/// Op `i` of [`OPEN`]'s journal.
fn open_op(i: u32) -> MapOp {
    if i.is_multiple_of(OPEN_REMOVE_EVERY) {
        MapOp::Remove { key: op_key(i) }
    } else {
        set_op(i)
    }
}

fn open(c: &mut Criterion, timing: Timing) -> Setup {
    let ops = open_ops_count(timing);
    let dir = scratch_dir(OPEN)?;
    let data = dir.path().join("map.json");
    let journal = crate::journal::journal_path(&data);
    let mut expected = ImblMap::build();
    {
        let atom = open_ops(&data, ImblMap::build(), Some(OPEN_LIMIT))?;
        eprintln!("enduro-benches: {OPEN}: applying {ops} ops to the 10 MiB map (untimed)");
        let started = Instant::now();
        for i in 1..=ops {
            let op = open_op(i);
            expected.apply(&op);
            atom.apply(op)?;
        }
        eprintln!(
            "enduro-benches: {OPEN}: {ops} ops in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    if !journal.exists() {
        return Err(format!("ops mode left no journal at {}", journal.display()).into());
    }
    let journal_len = std::fs::metadata(&journal)?.len();
    let opened = open_ops(&data, ImblMap::default(), Some(OPEN_LIMIT))?.deref();
    if *opened != expected {
        return Err("the reopened atom does not hold the map the ops made".into());
    }
    drop(opened);
    let reopened_len = std::fs::metadata(&journal)?.len();
    if reopened_len != journal_len {
        eprintln!(
            "enduro-benches: {OPEN}: opening the journal changed its size \
             ({journal_len} → {reopened_len} bytes)"
        );
    }
    let _ = OPEN_SIZES.set((std::fs::metadata(&data)?.len(), reopened_len, ops));
    let mut group = c.benchmark_group(OPEN);
    group.sampling_mode(SamplingMode::Flat);
    alternate_all(
        &mut group,
        timing.passes,
        &mut [
            ("enduro", &mut || {
                black_box(
                    open_ops(&data, ImblMap::default(), Some(OPEN_LIMIT))
                        .expect("open the ops atom"),
                );
            }),
            ("decode", &mut || {
                let bytes = std::fs::read(&data).expect("read the data file");
                let map: ImblMap = serde_json::from_slice(&bytes).expect("decode the snapshot");
                black_box(map);
            }),
        ],
    );
    group.finish();
    Ok(())
}

/// Milliseconds per operation of `ops_per_sec`.
fn ms(ops_per_sec: f64) -> f64 {
    1e3 / ops_per_sec
}

/// The encoded value's size, for the notes.
fn value_size() -> String {
    VALUE_BYTES.get().map_or_else(String::new, |bytes| {
        format!(
            "The value encodes to {bytes} bytes of compact JSON ({:.2} MiB). ",
            *bytes as f64 / f64::from(1 << 20)
        )
    })
}

/// The rows of [`IMBL`], [`BTREE`] and [`OPEN`].
pub fn rows(results: &Results, timing: Timing) -> Vec<Row> {
    let sqlite = format!(
        "SQLite {} (bundled), WAL, synchronous = FULL, the same 190,000 entries as rows: \
         prepared UPDATE of one row, autocommit",
        rusqlite::version()
    );
    let mut vs_rewrite = results.row(
        IMBL,
        "rewrite",
        "file_10mib_ops_imbl_vs_rewrite",
        SCENARIO_IMBL,
        REWRITE,
        Some(Target::RatioAtLeast(30.0)),
    );
    if let Ok(m) = results.pair(IMBL, "rewrite") {
        let compaction = match IMBL_OPS.get() {
            Some((ops, true)) => format!(
                " The atom applied {ops} ops in this group and its journal compacted (wrote \
                 the value as a new snapshot) at least once meanwhile; the figure includes it."
            ),
            Some((ops, false)) => {
                format!(" The atom applied {ops} ops in this group without reaching a compaction.")
            }
            None => String::new(),
        };
        vs_rewrite = vs_rewrite.with_note(format!(
            "{}Per operation (same run): apply {:.3} ms, the full rewrite {:.1} ms. Each \
             operation sets one key (keys visited in steps of {STRIDE}) to a new 40-byte \
             value; apply appends one record (a 48-byte head and the op's JSON, about 130 \
             bytes) at a fresh 4 KiB boundary of the journal, which compacts once the records \
             pass 8× the value (about 80 MiB, some 20,000 ops).{compaction}",
            value_size(),
            ms(m.enduro),
            ms(m.baseline),
        ));
    }
    let mut vs_raw = results.row(
        IMBL,
        "raw_journal",
        "file_10mib_ops_imbl_vs_raw_journal",
        SCENARIO_IMBL,
        RAW_JOURNAL,
        Some(Target::RatioAtLeast(0.7)),
    );
    if let Ok(m) = results.pair(IMBL, "raw_journal") {
        vs_raw = vs_raw.with_note(format!(
            "Per operation: apply {:.3} ms, the raw loop {:.3} ms. Both flush once (one \
             fdatasync). The raw loop writes 64 bytes and keeps no value; apply encodes the op \
             and decodes it back, applies it to the map, takes the lock file's lock and reads \
             its counter and the journal's end (to see other processes' commits) before it \
             appends.",
            ms(m.enduro),
            ms(m.baseline),
        ));
    }
    let mut vs_redb = results.row(
        IMBL,
        "redb",
        "file_10mib_ops_imbl_vs_redb",
        SCENARIO_IMBL,
        REDB,
        Some(Target::RatioAtLeast(0.8)),
    );
    if let Ok(m) = results.pair(IMBL, "redb") {
        vs_redb = vs_redb.with_note(format!(
            "Per operation: apply {:.3} ms, redb {:.3} ms (the same keys and values).",
            ms(m.enduro),
            ms(m.baseline),
        ));
    }
    let mut vs_sqlite = results.row(
        IMBL,
        "sqlite",
        "file_10mib_ops_imbl_vs_sqlite",
        SCENARIO_IMBL,
        &sqlite,
        Some(Target::RatioAtLeast(1.0)),
    );
    if let Ok(m) = results.pair(IMBL, "sqlite") {
        vs_sqlite = vs_sqlite.with_note(format!(
            "Per operation: apply {:.3} ms, SQLite {:.3} ms (table `map (key TEXT PRIMARY \
             KEY, value TEXT NOT NULL)`; its figure includes its automatic WAL checkpoints).",
            ms(m.enduro),
            ms(m.baseline),
        ));
    }
    let mut btree = results.row(
        BTREE,
        "rewrite",
        "file_10mib_ops_btree_vs_rewrite",
        SCENARIO_BTREE,
        REWRITE,
        None,
    );
    if let (Ok(m), Ok(clone)) = (
        results.pair(BTREE, "rewrite"),
        results.ops_per_sec(BTREE, "clone"),
    ) {
        btree = btree.with_note(format!(
            "Per operation: apply {:.3} ms, the full rewrite {:.1} ms (which clones the map \
             in its update function, as a swap must). For scale, one clone of the \
             BTreeMap and its drop take {:.2} ms (same run): an apply that had to copy the \
             value would pay that on top.",
            ms(m.enduro),
            ms(m.baseline),
            ms(clone),
        ));
    }
    vec![
        vs_rewrite,
        vs_raw,
        vs_redb,
        vs_sqlite,
        btree,
        open_row(results, timing),
    ]
}

/// The row of [`OPEN`]: the open time, in ms, against decoding the snapshot.
fn open_row(results: &Results, timing: Timing) -> Row {
    let ops = OPEN_SIZES
        .get()
        .map_or_else(|| open_ops_count(timing), |s| s.2);
    let scenario = format!(
        "file journal + ops: open a ~10 MiB imbl::OrdMap whose journal holds {ops} one-key \
         ops after the snapshot (replay)"
    );
    let baseline = "std::fs::read + serde_json::from_slice of the snapshot (data file) into \
                    the map";
    let id = "file_10mib_ops_open";
    let row = match results.pair(OPEN, "decode") {
        Ok(m) => Row::measured(
            id,
            &scenario,
            baseline,
            Unit::Millis,
            Measured {
                enduro: ms(m.enduro),
                baseline: ms(m.baseline),
            },
            None,
        ),
        Err(reason) => Row::not_run(id, &scenario, baseline, Unit::Millis, None, reason),
    };
    if !matches!(row.outcome, Outcome::Measured(_)) {
        return row;
    }
    let quick = if timing.quick {
        format!(" (quick mode; a full run uses {OPEN_OPS})")
    } else {
        String::new()
    };
    let sizes = OPEN_SIZES
        .get()
        .map_or_else(String::new, |(data, journal, _)| {
            format!(
                " (data file {data} bytes, journal {:.1} MiB)",
                *journal as f64 / f64::from(1 << 20)
            )
        });
    row.with_note(format!(
        "Time per open, in ms (lower is better; the ratio is how many times the decode's \
         time the open takes). The journal was written once, untimed, by {ops} apply calls \
         with a journal limit of 1 GiB (no compaction){quick}: one key each, every \
         {OPEN_REMOVE_EVERY}th a Remove, the rest Set{sizes}. Both read through the page \
         cache; both times include dropping the map."
    ))
}

// --- memory ------------------------------------------------------------------------

const MEMORY_BASELINE: &str = "the map's own resident size (VmRSS delta of building it)";

/// The two memory rows: peak RSS while applying ops to the imbl map and to the BTreeMap,
/// each in its own child process, against the map's own size.
pub fn memory_rows(timing: Timing) -> Vec<Row> {
    let ops = memory_ops(timing);
    [
        (
            "imbl",
            ops.0,
            "file_10mib_ops_imbl_memory",
            "file journal + ops, ~10 MiB imbl::OrdMap: peak RSS above start while applying",
        ),
        (
            "btree",
            ops.1,
            "file_10mib_ops_btree_memory",
            "file journal + ops, ~10 MiB BTreeMap: peak RSS above start while applying",
        ),
    ]
    .into_iter()
    .map(|(kind, ops, id, scenario)| match memory_pair(kind) {
        Ok((enduro, raw)) => Row::measured(
            id,
            scenario,
            MEMORY_BASELINE,
            Unit::MiB,
            Measured {
                enduro: mib(enduro.peak_kib),
                baseline: mib(enduro.value_kib),
            },
            None,
        )
        .with_note(format!(
            "Peak resident memory above the child's start (VmHWM − VmRSS before) over \
             building the map, opening the journal + ops atom (which writes the 10 MiB \
             snapshot) and {} apply(Set) calls; the map itself took {:.1} MiB, and {:.1} MiB \
             stayed resident at the end with the atom still open. {}The raw loop by hand \
             (the same map changed in place, each op's JSON written at the next 4 KiB offset \
             of a pre-zeroed file + fdatasync) peaked at {:.1} MiB, {:.1} MiB at the end, for \
             a {:.1} MiB map.",
            enduro.swaps,
            mib(enduro.value_kib),
            mib(enduro.end_kib),
            value_size(),
            mib(raw.peak_kib),
            mib(raw.end_kib),
            mib(raw.value_kib),
        )),
        Err(reason) => Row::not_run(
            id,
            &format!("{scenario} ({ops} ops)"),
            MEMORY_BASELINE,
            Unit::MiB,
            None,
            reason,
        ),
    })
    .collect()
}

/// KiB as MiB.
fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Ops each memory child applies: (imbl, BTreeMap).
fn memory_ops(timing: Timing) -> (u32, u32) {
    if timing.quick {
        MEMORY_OPS_QUICK
    } else {
        MEMORY_OPS
    }
}

/// enduro's and the raw loop's children for `kind` (`imbl`, `btree`), each in its own
/// scratch directory.
fn memory_pair(kind: &str) -> Result<(MemoryReport, MemoryReport), String> {
    let run = |which: String| {
        let dir = scratch_dir("apply-memory").map_err(|e| e.to_string())?;
        crate::memory::spawn(
            &which,
            &[(crate::memory::CHILD_DIR, dir.path().as_os_str())],
        )
    };
    Ok((
        run(format!("apply-{kind}"))?,
        run(format!("apply-raw-{kind}"))?,
    ))
}

/// In a memory child (`apply-imbl`, `apply-btree`, `apply-raw-imbl`, `apply-raw-btree`):
/// measures and returns the report.
pub fn memory_child(which: &str) -> Result<MemoryReport, String> {
    let dir = std::env::var_os(crate::memory::CHILD_DIR)
        .map(PathBuf::from)
        .ok_or(format!("{} is not set", crate::memory::CHILD_DIR))?;
    let (imbl_ops, btree_ops) = memory_ops(Timing::from_env());
    match which {
        "apply-imbl" => enduro_child::<ImblMap>(&dir, imbl_ops),
        "apply-btree" => enduro_child::<StdMap>(&dir, btree_ops),
        "apply-raw-imbl" => raw_child::<ImblMap>(&dir, imbl_ops),
        "apply-raw-btree" => raw_child::<StdMap>(&dir, btree_ops),
        other => return Err(format!("unknown memory child `{other}`")),
    }
    .map_err(|e| e.to_string())
}

/// Builds the map, opens the journal + ops atom on it and applies `ops` ops.
fn enduro_child<T: BenchMap>(dir: &Path, ops: u32) -> io::Result<MemoryReport> {
    measure_held(T::build, |map| {
        let atom = open_ops(&dir.join("map.json"), map, None).map_err(io::Error::other)?;
        for i in 1..=ops {
            atom.apply(set_op(i)).map_err(io::Error::other)?;
        }
        Ok((ops, atom))
    })
}

/// The same by hand: the snapshot written once, then each op changes the map in place and
/// its JSON goes to the next slot of a pre-zeroed file, flushed.
fn raw_child<T: BenchMap>(dir: &Path, ops: u32) -> io::Result<MemoryReport> {
    measure_held(T::build, |mut map| {
        RawFile::new(dir, "raw-map.json")?.replace_json(&map)?;
        let mut journal = RawJournal::new(dir, "raw.journal", RAW_JOURNAL_BYTES)?;
        for i in 1..=ops {
            let op = set_op(i);
            journal.append_bytes(&serde_json::to_vec(&op).map_err(io::Error::other)?)?;
            map.apply(&op);
        }
        Ok((ops, map))
    })
}
