//! Schema migrations on files: real processes opening old data at the same moment store
//! the migration once; a failing step or a newer schema leaves the directory byte for
//! byte as it was; the file stays a plain file of its format; ops and migrations.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

mod common;

use common::{config_migrations, contents, worker};
use enduro_core::{Apply, Error, Migrations};
use enduro_file::FileAtom;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The worker process these tests start: this test binary, run again.
#[test]
fn worker() {
    worker::entry();
}

/// Starts `n` `migrate` workers on `path`, waits until all are ready, lets them go at
/// once, and returns what each one printed (`by B count C`).
fn migrate_at_once(path: &Path, n: u64, journal: bool) -> Vec<String> {
    let path = path.to_str().unwrap();
    let mut workers: Vec<(Child, BufReader<_>)> = (1..=n)
        .map(|id| {
            let mut command = worker::command(&["migrate", path, &id.to_string()]);
            if journal {
                worker::journal(&mut command);
            }
            let mut child = command
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let out = BufReader::new(child.stdout.take().unwrap());
            (child, out)
        })
        .collect();
    let next_line = |out: &mut BufReader<_>| loop {
        let mut line = String::new();
        assert_ne!(
            out.read_line(&mut line).unwrap(),
            0,
            "a worker stopped early"
        );
        let line = line.trim().to_owned();
        if !worker::is_harness_line(&line) {
            return line;
        }
    };
    for (_, out) in &mut workers {
        assert_eq!(next_line(out), "ready");
    }
    for (child, _) in &mut workers {
        child.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    }
    workers
        .iter_mut()
        .map(|(child, out)| {
            let line = next_line(out);
            drop(child.stdin.take());
            assert!(child.wait().unwrap().success(), "{line}");
            line
        })
        .collect()
}

/// Four processes open a bare count (schema 0) at the same moment: one migration is
/// stored, every process ends up with that one (the others' commits conflicted and read
/// it), and each one's swap after opening counts. Several rounds, plain and journal.
#[test]
fn processes_opening_old_data_at_once_store_one_migration() {
    for journal in [false, true] {
        for round in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("count.json");
            std::fs::write(&path, "41").unwrap();
            let seen = migrate_at_once(&path, 4, journal);
            let stored = FileAtom::builder(&path)
                .journal(journal)
                .migrations(worker::counter_migrations(99))
                .open(worker::Migrated { count: 0, by: 0 })
                .unwrap();
            let by = stored.deref().by;
            assert_eq!(stored.deref().count, 45, "every swap counted: {seen:?}");
            assert!(
                seen.iter().all(|l| l.starts_with(&format!("by {by} "))),
                "round {round} (journal: {journal}): each process has the one stored \
                 migration ({by}): {seen:?}"
            );
            if !journal {
                let file: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                assert_eq!(
                    file,
                    json!({"enduro_schema": 2, "value": {"count": 45, "by": by}})
                );
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Config {
    name: String,
    retries: u32,
    verbose: bool,
}

fn init() -> Config {
    Config {
        name: "new".into(),
        retries: 1,
        verbose: true,
    }
}

/// The README's example, on a real file: two steps run once, the file is the envelope
/// (pretty when asked, and still JSON), later opens run nothing, and a file without the
/// old field fails the step with the directory unchanged.
#[test]
fn a_file_migrates_through_two_steps_once() {
    for journal in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"name":"pump","tries":3}"#).unwrap();
        let runs = Arc::new(AtomicUsize::new(0));
        let open = || {
            FileAtom::builder(&path)
                .journal(journal)
                .pretty(true)
                .migrations(config_migrations(&runs))
                .open(init())
        };
        let config = open().unwrap();
        let migrated = Config {
            name: "pump".into(),
            retries: 3,
            verbose: false,
        };
        assert_eq!(*config.deref(), migrated);
        drop(config);
        assert_eq!(open().unwrap().deref().retries, 3);
        assert_eq!(runs.load(Ordering::SeqCst), 1, "later opens run no step");
        if !journal {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                text.starts_with("{\n  \"enduro_schema\": 2,\n  \"value\": {"),
                "{text}"
            );
        }

        // Data the first step cannot handle: an error naming the step and the file;
        // nothing in the directory changes, byte for byte.
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, r#"{"name":"pump"}"#).unwrap();
        let before = contents(dir.path());
        let fail = || {
            let err = FileAtom::builder(&bad)
                .journal(journal)
                .migrations(config_migrations(&runs))
                .open(init())
                .unwrap_err();
            assert!(matches!(err, Error::Migration { step: 0, .. }), "{err}");
            let message = err.to_string();
            assert!(message.contains("no field `tries` to rename"), "{message}");
            assert!(message.contains("bad.json"), "{message}");
        };
        fail();
        // The first open made the lock file (as any open does); nothing else changed.
        let mut after = contents(dir.path());
        assert!(after.remove(".bad.json.enduro-lock").is_some());
        assert_eq!(after, before);
        let before = contents(dir.path());
        fail();
        assert_eq!(
            contents(dir.path()),
            before,
            "byte for byte, lock file included"
        );
    }
}

/// A program that knows fewer steps (or none) refuses the newer data and leaves the
/// directory as it was, journal included.
#[test]
fn older_programs_refuse_newer_data_and_change_nothing() {
    for journal in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"name":"pump","tries":3}"#).unwrap();
        let runs = Arc::new(AtomicUsize::new(0));
        let builder = || FileAtom::builder(&path).journal(journal);
        let atom = builder()
            .migrations(config_migrations(&runs))
            .open(init())
            .unwrap();
        atom.swap(|c| Config {
            retries: 5,
            ..c.clone()
        })
        .unwrap();
        let before = contents(dir.path());
        let one_step = Migrations::new().step(Ok::<_, String>);
        let err = builder().migrations(one_step).open(init()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::NewerSchema {
                    stored: 2,
                    known: 1,
                    ..
                }
            ),
            "{err}"
        );
        let err = builder().open(init()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::NewerSchema {
                    stored: 2,
                    known: 0,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("config.json"), "{err}");
        assert_eq!(contents(dir.path()), before);
    }
}

/// A list that grows by ops.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Names(Vec<String>);

impl Apply for Names {
    type Op = String;
    fn apply(&mut self, name: &String) {
        self.0.push(name.clone());
    }
}

/// Ops and migrations: a journal of ops after a value of the program's schema replays;
/// ops after a value of an older schema (the old program's ops) cannot be migrated, so
/// opening fails, naming the journal, and changes nothing.
#[test]
fn ops_after_a_value_of_an_older_schema_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("names.json");
    let wrap = || Migrations::new().step(Ok::<_, String>);
    // The current schema: ops replay.
    let builder = || FileAtom::builder(&path).journal(true).ops();
    let names = builder().migrations(wrap()).open(Names::default()).unwrap();
    names.apply("ada".into()).unwrap();
    drop(names);
    let names = builder().migrations(wrap()).open(Names::default()).unwrap();
    assert_eq!(names.deref().0, ["ada"]);
    drop(names);

    // The old program's ops, after its value of schema 0.
    let old = dir.path().join("old.json");
    let names = FileAtom::builder(&old)
        .journal(true)
        .ops()
        .open(Names::default())
        .unwrap();
    names.apply("bob".into()).unwrap();
    drop(names);
    let before = contents(dir.path());
    let err = FileAtom::builder(&old)
        .journal(true)
        .ops()
        .migrations(wrap())
        .open(Names::default())
        .unwrap_err();
    assert!(matches!(err, Error::Migration { step: 0, .. }), "{err}");
    assert!(err.to_string().contains("ops are not migrated"), "{err}");
    assert_eq!(contents(dir.path()), before);
}

/// Data of schema 1 (stored by a program that knew the first step) runs only the second
/// step when a program of schema 2 opens it.
#[test]
fn data_of_a_middle_schema_runs_only_the_missing_steps() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, r#"{"name":"pump","tries":3}"#).unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let first_only = {
        let runs = Arc::clone(&runs);
        Migrations::new().step(move |mut config: Value| {
            runs.fetch_add(1, Ordering::SeqCst);
            let tries = config["tries"].take();
            config["retries"] = tries;
            config.as_object_mut().unwrap().remove("tries");
            Ok::<_, String>(config)
        })
    };
    #[derive(Clone, Serialize, Deserialize)]
    struct ConfigV1 {
        name: String,
        retries: u32,
    }
    let v1 = FileAtom::builder(&path)
        .migrations(first_only)
        .open(ConfigV1 {
            name: "new".into(),
            retries: 0,
        })
        .unwrap();
    assert_eq!(v1.deref().retries, 3);
    drop(v1);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        r#"{"enduro_schema":1,"value":{"name":"pump","retries":3}}"#
    );
    let second_runs = Arc::new(AtomicUsize::new(0));
    let config = FileAtom::builder(&path)
        .migrations(config_migrations(&second_runs))
        .open(init())
        .unwrap();
    assert!(!config.deref().verbose);
    assert_eq!(
        second_runs.load(Ordering::SeqCst),
        0,
        "step 0 did not run again"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}
