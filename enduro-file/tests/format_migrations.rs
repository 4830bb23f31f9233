//! Migrations with every self-describing format: the steps see the data as
//! `serde_json::Value` whatever the codec (transcoded), and the file stays in its format,
//! envelope included; postcard, which does not describe itself, refuses migrations before
//! touching the file.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use enduro::{Cbor, Codec, MessagePack, Postcard, Ron, Toml};
use enduro_core::Error;
use enduro_file::FileAtom;
use serde::{Deserialize, Serialize};

mod common;

use common::config_migrations;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Old {
    name: String,
    tries: u32,
    tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct New {
    name: String,
    retries: u32,
    tags: Vec<String>,
    verbose: bool,
}

fn old() -> Old {
    Old {
        name: "pump ⛽".into(),
        tries: 3,
        tags: vec!["a".into(), "b".into()],
    }
}

fn new() -> New {
    New {
        name: "pump ⛽".into(),
        retries: 3,
        tags: vec!["a".into(), "b".into()],
        verbose: false,
    }
}

fn init() -> New {
    New {
        name: String::new(),
        retries: 0,
        tags: Vec::new(),
        verbose: true,
    }
}

/// Old data in `codec`'s format migrates through two steps once, the file stays in that
/// format (it decodes with the codec as the envelope), and later opens run none.
fn migrates_in<C: Codec + Clone>(codec: C, journal: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let builder = || {
        FileAtom::builder(&path)
            .journal(journal)
            .codec(codec.clone())
    };
    drop(
        FileAtom::builder(&path)
            .journal(journal)
            .codec(codec.clone())
            .open(old())
            .unwrap(),
    );
    let runs = Arc::new(AtomicUsize::new(0));
    let atom = builder()
        .migrations(config_migrations(&runs))
        .open(init())
        .unwrap();
    assert_eq!(*atom.deref(), new(), "{}", codec.name());
    drop(atom);
    let again = builder()
        .migrations(config_migrations(&runs))
        .open(init())
        .unwrap();
    assert_eq!(*again.deref(), new());
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "{}: later opens run no step",
        codec.name()
    );
    again
        .swap(|n| New {
            retries: 4,
            ..n.clone()
        })
        .unwrap();
    drop(again);
    if !journal {
        #[derive(Deserialize)]
        struct Envelope {
            enduro_schema: u32,
            value: New,
        }
        let file: Envelope = codec.decode(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(file.enduro_schema, 2, "{}", codec.name());
        assert_eq!(file.value.retries, 4, "{}", codec.name());
    }
    // A program without the steps refuses the newer data; nothing changes.
    let before = std::fs::read(&path).unwrap();
    let err = FileAtom::builder(&path)
        .journal(journal)
        .codec(codec.clone())
        .open(old())
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::NewerSchema {
                stored: 2,
                known: 0,
                ..
            }
        ),
        "{}: {err}",
        codec.name()
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn toml_data_migrates() {
    migrates_in(Toml::default(), false);
    migrates_in(Toml::default(), true);
    // And the envelope is a TOML file anyone can read.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    drop(
        FileAtom::builder(&path)
            .codec(Toml::default())
            .open(old())
            .unwrap(),
    );
    let runs = Arc::new(AtomicUsize::new(0));
    FileAtom::builder(&path)
        .codec(Toml::default())
        .pretty(true)
        .migrations(config_migrations(&runs))
        .open(init())
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("enduro_schema = 2\n"), "{text}");
    assert!(text.contains("[value]"), "{text}");
}

#[test]
fn ron_data_migrates() {
    migrates_in(Ron::default(), false);
    migrates_in(Ron::default(), true);
}

#[test]
fn cbor_data_migrates() {
    migrates_in(Cbor, false);
    migrates_in(Cbor, true);
}

#[test]
fn msgpack_data_migrates() {
    migrates_in(MessagePack, false);
    migrates_in(MessagePack, true);
}

/// postcard does not describe itself: migrations (and ops) are refused at open, before
/// the file is read or written.
#[test]
fn postcard_refuses_migrations_and_ops() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.bin");
    drop(
        FileAtom::builder(&path)
            .codec(Postcard)
            .open(old())
            .unwrap(),
    );
    let before = std::fs::read(&path).unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let err = FileAtom::builder(&path)
        .codec(Postcard)
        .migrations(config_migrations(&runs))
        .open(init())
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("migrations") && message.contains("postcard"),
        "{message}"
    );
    assert!(message.contains("does not describe itself"), "{message}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(runs.load(Ordering::SeqCst), 0);

    #[derive(Clone, Serialize, Deserialize)]
    struct Total(u64);
    impl enduro::Apply for Total {
        type Op = u64;
        fn apply(&mut self, n: &u64) {
            self.0 += n;
        }
    }
    let err = FileAtom::builder(dir.path().join("total.bin"))
        .journal(true)
        .codec(Postcard)
        .ops()
        .open(Total(0))
        .unwrap_err();
    assert!(err.to_string().contains("ops()"), "{err}");
    assert!(!dir.path().join("total.bin").exists());
}

/// `pretty(true)` with a format that has no pretty form fails at open and writes nothing;
/// with TOML and RON it picks their pretty form, in either order.
#[test]
fn pretty_never_replaces_the_codec() {
    let dir = tempfile::tempdir().unwrap();
    for (name, result) in [
        (
            "CBOR",
            FileAtom::builder(dir.path().join("a"))
                .codec(Cbor)
                .pretty(true)
                .open(1u8),
        ),
        (
            "MessagePack",
            FileAtom::builder(dir.path().join("b"))
                .pretty(true)
                .codec(MessagePack)
                .open(1u8),
        ),
        (
            "postcard",
            FileAtom::builder(dir.path().join("c"))
                .codec(Postcard)
                .pretty(true)
                .open(1u8),
        ),
    ] {
        let err = result.unwrap_err();
        assert!(
            err.to_string().contains(name) && err.to_string().contains("pretty(true)"),
            "{err}"
        );
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing was written"
    );
    // pretty(false) leaves such a codec as it is.
    FileAtom::builder(dir.path().join("d"))
        .codec(Cbor)
        .pretty(false)
        .open(1u8)
        .unwrap();

    let value = new();
    let write = |name: &str, builder: FileAtom<New>| {
        builder.open(value.clone()).unwrap();
        std::fs::read_to_string(dir.path().join(name)).unwrap()
    };
    let toml_pretty = write(
        "t1",
        FileAtom::builder(dir.path().join("t1"))
            .pretty(true)
            .codec(Toml::default()),
    );
    let toml_pretty2 = write(
        "t2",
        FileAtom::builder(dir.path().join("t2"))
            .codec(Toml::default())
            .pretty(true),
    );
    let toml_compact = write(
        "t3",
        FileAtom::builder(dir.path().join("t3"))
            .codec(Toml::default())
            .pretty(false),
    );
    assert_eq!(toml_pretty, toml_pretty2);
    assert_ne!(toml_pretty, toml_compact, "TOML's pretty form differs");
    let ron_pretty = write(
        "r1",
        FileAtom::builder(dir.path().join("r1"))
            .pretty(true)
            .codec(Ron::default()),
    );
    let ron_compact = write(
        "r2",
        FileAtom::builder(dir.path().join("r2")).codec(Ron::default()),
    );
    assert!(
        ron_pretty.lines().count() > 1 && ron_compact.lines().count() == 1,
        "{ron_pretty}\n{ron_compact}"
    );
    assert!(
        !ron_pretty.trim_start().starts_with('{'),
        "RON, not JSON: {ron_pretty}"
    );
}
