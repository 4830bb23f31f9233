//! `enduro get`, `set`, `info` and `compact` on file atoms written by real atoms, as the
//! spec (`enduro --help`, the README's "The `enduro` command") promises them: plain and
//! journal paths, every self-describing format written back in its own format and read
//! back by the program's typed atom, postcard refused, invalid input refused with nothing
//! written, nothing created where no atom is (unless `--create`), `--at`, `--raw`, stdin,
//! a migration envelope kept without running a step again, `info`, `compact`, corrupt data,
//! and the usage errors.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::BTreeMap;
use std::fs;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use enduro::{FileAtom, Migrations};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_enduro");

/// How long one run of the binary may take before the test calls it hung (a bound on the
/// test, not a speed requirement).
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// What one run of `enduro` did.
#[derive(Debug)]
struct Out {
    args: Vec<String>,
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

impl Out {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Panics (with everything the run printed) unless it exited with `code`.
    #[track_caller]
    fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            code,
            "enduro {:?}: expected exit {code}, got {}\nstdout: {}\nstderr: {}",
            self.args,
            self.code,
            self.text(),
            self.stderr
        );
        self
    }

    #[track_caller]
    fn ok(&self) -> &Self {
        self.expect_code(0)
    }

    /// The output parsed as JSON.
    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_slice(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "enduro {:?} printed no JSON ({e}):\n{}",
                self.args,
                self.text()
            )
        })
    }
}

/// Runs `enduro ARGS` in `cwd` with `input` on stdin (none: stdin is /dev/null), killed if
/// it has not ended within [`RUN_LIMIT`].
fn run_with(cwd: &Path, args: &[&str], input: Option<&[u8]>) -> Out {
    let output = common::output_within(
        Command::new(BIN)
            .args(args)
            .current_dir(cwd)
            .env_remove("ENDURO_PG_URL")
            .env_remove("ENDURO_REDIS_URL")
            .env("EDITOR", "false")
            .env_remove("VISUAL"),
        input,
        RUN_LIMIT,
    )
    .expect("start the enduro binary")
    .unwrap_or_else(|| panic!("enduro {args:?} did not end within {RUN_LIMIT:?}: killed"));
    Out {
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        code: output.status.code().unwrap_or(-1),
        stdout: output.stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn run(cwd: &Path, args: &[&str]) -> Out {
    run_with(cwd, args, None)
}

fn s(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temp path")
}

/// Every file in `dir` (hidden ones too: lock, journal, pending files) with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let bytes = if entry.file_type().unwrap().is_file() {
                fs::read(entry.path()).unwrap()
            } else {
                b"<directory>".to_vec()
            };
            (entry.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect()
}

fn names(dir: &Path) -> Vec<String> {
    snapshot(dir).into_keys().collect()
}

fn journal_of(path: &Path) -> std::path::PathBuf {
    let name = path.file_name().unwrap().to_str().unwrap();
    path.with_file_name(format!(".{name}.enduro-journal"))
}

/// Checks `text` is `value` as pretty JSON: 2-space indent, one trailing newline.
#[track_caller]
fn assert_pretty(text: &str, value: &Value) {
    let parsed: Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"));
    assert_eq!(&parsed, value, "the value shown");
    let pretty = format!("{}\n", serde_json::to_string_pretty(&parsed).unwrap());
    assert_eq!(
        text, pretty,
        "pretty JSON with a 2-space indent and a newline"
    );
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Config {
    name: String,
    port: u16,
    tags: Vec<String>,
    limits: Limits,
    mode: Mode,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Limits {
    max: u32,
    ratio: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Mode {
    Fast,
    Slow { delay: u32 },
}

fn config() -> Config {
    Config {
        name: "svc".into(),
        port: 80,
        tags: vec!["a".into(), "b".into()],
        limits: Limits {
            max: 10,
            ratio: 0.5,
        },
        mode: Mode::Slow { delay: 5 },
    }
}

fn other_config() -> Config {
    Config {
        name: "edited by hand".into(),
        port: 9000,
        tags: vec!["x".into()],
        limits: Limits {
            max: 3,
            ratio: 0.25,
        },
        mode: Mode::Fast,
    }
}

fn to_json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap()
}

#[test]
fn get_prints_the_last_value_of_a_plain_file_and_of_a_journal() {
    for journal in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let atom = FileAtom::builder(&path)
            .journal(journal)
            .open(config())
            .unwrap();
        for port in 81..=86 {
            atom.swap(|c| Config { port, ..c.clone() }).unwrap();
        }
        let last = atom.deref();
        assert_eq!(last.port, 86);
        if journal {
            assert!(journal_of(&path).exists(), "journal mode keeps a journal");
            // The snapshot lags: the value is only in the journal, which `get` replays.
            let snapshot: Config = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
            assert_ne!(
                snapshot, *last,
                "the data file should lag behind the journal"
            );
        }
        let out = run(dir.path(), &["get", s(&path)]);
        out.ok();
        assert_pretty(&out.text(), &to_json(&*last));

        let out = run(dir.path(), &["get", s(&path), "--compact"]);
        out.ok();
        let text = out.text();
        assert!(
            text.ends_with('\n') && text.trim_end().lines().count() == 1,
            "--compact prints one line: {text:?}"
        );
        assert_eq!(out.json(), to_json(&*last));
        // Another commit of the program's: shown at once by the next `get`.
        atom.swap(|c| Config {
            name: "later".into(),
            ..c.clone()
        })
        .unwrap();
        let shown = run(dir.path(), &["get", s(&path)]).ok().json();
        assert_eq!(shown["name"], "later", "journal: {journal}");
    }
}

#[test]
fn set_is_seen_by_the_program_reopening_its_typed_atom() {
    for journal in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let atom = FileAtom::builder(&path)
            .journal(journal)
            .open(config())
            .unwrap();
        for port in 81..=83 {
            atom.swap(|c| Config { port, ..c.clone() }).unwrap();
        }
        let new = other_config();
        let new_text = serde_json::to_string(&new).unwrap();
        let out = run(dir.path(), &["set", s(&path), &new_text]);
        out.ok();
        assert!(out.stdout.is_empty(), "set prints nothing: {}", out.text());
        assert!(out.stderr.is_empty(), "set prints nothing: {}", out.stderr);

        // The running program sees it...
        assert_eq!(*atom.refresh().unwrap(), new, "journal: {journal}");
        // ...and so does the program started again.
        drop(atom);
        let reopened = FileAtom::builder(&path)
            .journal(journal)
            .open(config())
            .unwrap();
        assert_eq!(*reopened.deref(), new, "journal: {journal}");
        // The program goes on from there, and the tool sees its commits.
        reopened
            .swap(|c| Config {
                port: c.port + 1,
                ..c.clone()
            })
            .unwrap();
        let shown = run(dir.path(), &["get", s(&path)]).ok().json();
        assert_eq!(shown["port"], 9001);
        // A second set over the program's commit.
        run(
            dir.path(),
            &["set", s(&path), &serde_json::to_string(&config()).unwrap()],
        )
        .ok();
        assert_eq!(*reopened.refresh().unwrap(), config());
    }
}

/// One format: shown as JSON, `set --at` and a whole `set` written back in that format,
/// read back by the program's typed atom (a new one, and the one that was open).
fn format_round_trip<T, C>(
    dir: &Path,
    path: &Path,
    codec: C,
    init: T,
    new: T,
    extra: &[&str],
    in_format: &dyn Fn(&[u8]) -> bool,
) where
    T: enduro::Value + Clone + PartialEq + std::fmt::Debug,
    C: enduro::Codec + Clone,
{
    let what = path.display().to_string();
    let atom = FileAtom::builder(path)
        .codec(codec.clone())
        .open(init.clone())
        .unwrap();
    let stored = fs::read(path).unwrap();
    assert!(in_format(&stored), "{what}: the atom wrote its format");
    let with = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(extra);
        run(dir, &all)
    };

    let out = with(&["get", s(path)]);
    out.ok();
    assert_pretty(&out.text(), &to_json(&init));

    with(&["set", s(path), "--at", "/port", "8081"]).ok();
    let bytes = fs::read(path).unwrap();
    assert!(
        in_format(&bytes),
        "{what}: set --at wrote another format: {}",
        String::from_utf8_lossy(&bytes)
    );
    let mut expected = to_json(&init);
    expected["port"] = json!(8081);
    let expected: T = serde_json::from_value(expected).unwrap();
    assert_eq!(*atom.refresh().unwrap(), expected, "{what}: the open atom");

    let new_text = serde_json::to_string(&new).unwrap();
    with(&["set", s(path), &new_text]).ok();
    let bytes = fs::read(path).unwrap();
    assert!(
        in_format(&bytes),
        "{what}: set wrote another format: {}",
        String::from_utf8_lossy(&bytes)
    );
    assert_eq!(*atom.refresh().unwrap(), new, "{what}: the open atom");
    let reopened = FileAtom::builder(path)
        .codec(codec)
        .open(init.clone())
        .unwrap();
    assert_eq!(*reopened.deref(), new, "{what}: the program started again");
    let shown = with(&["get", s(path)]).ok().json();
    assert_eq!(shown, to_json(&new), "{what}");
}

fn is_json(bytes: &[u8]) -> bool {
    serde_json::from_slice::<Value>(bytes).is_ok()
}

fn is_toml(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    !is_json(bytes) && text.lines().any(|l| l.starts_with("port = "))
}

/// A CBOR map (major type 5) at the top.
fn is_cbor(bytes: &[u8]) -> bool {
    !is_json(bytes) && bytes.first().is_some_and(|b| b >> 5 == 5)
}

/// A MessagePack map at the top: fixmap, map 16 or map 32.
fn is_msgpack(bytes: &[u8]) -> bool {
    !is_json(bytes)
        && bytes
            .first()
            .is_some_and(|&b| b & 0xf0 == 0x80 || b == 0xde || b == 0xdf)
}

#[test]
fn toml_cbor_and_messagepack_are_shown_as_json_and_written_back_in_their_format() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    format_round_trip(
        d,
        &d.join("c.toml"),
        enduro::Toml::default(),
        config(),
        other_config(),
        &[],
        &is_toml,
    );
    format_round_trip(
        d,
        &d.join("c.cbor"),
        enduro::Cbor,
        config(),
        other_config(),
        &[],
        &is_cbor,
    );
    format_round_trip(
        d,
        &d.join("c.msgpack"),
        enduro::MessagePack,
        config(),
        other_config(),
        &[],
        &is_msgpack,
    );
    format_round_trip(
        d,
        &d.join("c.mpk"),
        enduro::MessagePack,
        config(),
        other_config(),
        &[],
        &is_msgpack,
    );
    // An extension that says nothing: --format says it.
    format_round_trip(
        d,
        &d.join("settings.conf"),
        enduro::Toml::default(),
        config(),
        other_config(),
        &["--format", "toml"],
        &is_toml,
    );
    format_round_trip(
        d,
        &d.join("blob.bin"),
        enduro::Cbor,
        config(),
        other_config(),
        &["--format", "cbor"],
        &is_cbor,
    );
    let toml = fs::read_to_string(d.join("c.toml")).unwrap();
    assert!(toml.contains("port = 9000"), "{toml}");
    assert!(toml.contains("name = \"edited by hand\""), "{toml}");
}

/// A program's RON config: structs, no enums.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RonConfig {
    name: String,
    port: u16,
    tags: Vec<String>,
    limits: Limits,
}

/// RON is shown as JSON, but `set` refuses it: even a program of structs only writes
/// `(name: "svc", ...)`, and the JSON form written back (`{"name": "svc", ...}`) would no
/// longer read as its type. `edit` edits the RON text itself instead.
#[test]
fn ron_is_shown_as_json_but_only_edited_as_ron_text() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = d.join("c.ron");
    let init = RonConfig {
        name: "svc".into(),
        port: 80,
        tags: vec!["a".into()],
        limits: Limits {
            max: 10,
            ratio: 0.5,
        },
    };
    let atom = FileAtom::builder(&path)
        .codec(enduro::Ron::default())
        .open(init.clone())
        .unwrap();
    let shown: Value =
        serde_json::from_str(&run(d, &["get", s(&path)]).expect_code(0).text()).unwrap();
    assert_eq!(shown, to_json(&init));
    let before = snapshot(d);
    let refused = run(d, &["set", s(&path), "--at", "/port", "8081"]);
    refused.expect_code(2);
    assert!(refused.stderr.contains("RON"), "{}", refused.stderr);
    assert_eq!(snapshot(d), before, "a refused set wrote something");
    // `edit` opens the RON text; the program reads the result.
    let editor = d.join("editor.sh");
    fs::write(&editor, "#!/bin/sh\nsed -i 's/port:80/port:8081/' \"$1\"\n").unwrap();
    let status = Command::new(BIN)
        .args(["edit", s(&path)])
        .env("EDITOR", format!("sh {}", s(&editor)))
        .env_remove("VISUAL")
        .env("TMPDIR", d)
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(atom.refresh().unwrap().port, 8081);
}

#[test]
fn postcard_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.bin");
    FileAtom::builder(&path)
        .codec(enduro::Postcard)
        .open(config())
        .unwrap();
    let before = snapshot(dir.path());
    let new = serde_json::to_string(&other_config()).unwrap();
    for args in [
        vec!["get", s(&path), "--format", "postcard"],
        vec!["set", s(&path), "--format", "postcard", &new],
        vec![
            "set",
            s(&path),
            "--format",
            "postcard",
            "--at",
            "/port",
            "1",
        ],
        vec!["info", s(&path), "--format", "postcard"],
    ] {
        let out = run(dir.path(), &args);
        out.expect_code(2);
        assert!(!out.stderr.is_empty(), "{args:?}: says why");
        assert_eq!(snapshot(dir.path()), before, "{args:?} wrote something");
    }
}

#[test]
fn invalid_input_exits_2_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let plain = d.join("state.json");
    let journal = d.join("journal.json");
    let toml = d.join("c.toml");
    FileAtom::builder(&plain).open(config()).unwrap();
    let j = FileAtom::builder(&journal)
        .journal(true)
        .open(config())
        .unwrap();
    j.swap(|c| Config {
        port: 81,
        ..c.clone()
    })
    .unwrap();
    FileAtom::builder(&toml)
        .codec(enduro::Toml::default())
        .open(config())
        .unwrap();
    let before = snapshot(d);
    let cases: Vec<(Vec<&str>, Option<&[u8]>)> = vec![
        (vec!["set", s(&plain), "{not json"], None),
        (vec!["set", s(&plain), ""], None),
        (vec!["set", s(&plain), "{\"a\": 1} trailing"], None),
        (vec!["set", s(&plain), "-"], Some(b"{\"half\": ")),
        (vec!["set", s(&plain), "--at", "/port", "eighty"], None),
        (
            vec!["set", s(&plain), "--at", "/limits/nope/deeper", "1"],
            None,
        ),
        (vec!["set", s(&plain), "--at", "/nothing/here", "1"], None),
        (vec!["set", s(&plain), "--at", "port", "1"], None),
        (vec!["set", s(&plain), "--at", "/tags/7", "\"x\""], None),
        (vec!["set", s(&plain), "--at", "/tags/x", "\"x\""], None),
        (vec!["set", s(&plain), "--at", "/port/inside", "1"], None),
        (vec!["get", s(&plain), "--at", "/nothing"], None),
        (vec!["get", s(&plain), "--at", "port"], None),
        (vec!["set", s(&journal), "{not json"], None),
        (vec!["set", s(&journal), "--at", "/nothing/here", "1"], None),
        (vec!["set", s(&toml), "null"], None),
        (vec!["set", s(&toml), "[1, 2]"], None),
        (vec!["set", s(&toml), "42"], None),
        (vec!["set", s(&toml), "--at", "/port", "null"], None),
        (vec!["set", s(&toml), "--at", "/tags/0", "null"], None),
        (vec!["set", s(&toml), "--at", "/nothing/here", "1"], None),
    ];
    for (args, input) in cases {
        let out = run_with(d, &args, input);
        out.expect_code(2);
        assert!(
            out.stderr.starts_with("enduro: error: "),
            "{args:?}: the message on stderr: {}",
            out.stderr
        );
        assert_eq!(snapshot(d), before, "{args:?} changed a file");
    }
    // The program's atoms still read what they wrote.
    assert_eq!(j.refresh().unwrap().port, 81);
}

#[test]
fn set_on_a_missing_path_exits_3_and_creates_nothing_unless_create() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let missing = d.join("none.json");
    let deeper = d.join("sub").join("none.json");
    for path in [&missing, &deeper] {
        for args in [
            vec!["set", s(path), "{\"a\": 1}"],
            vec!["set", s(path), "--at", "/a", "1"],
            vec!["get", s(path)],
            vec!["info", s(path)],
            vec!["compact", s(path)],
        ] {
            let out = run(d, &args);
            out.expect_code(3);
            assert!(!out.stderr.is_empty(), "{args:?}: says so");
            assert_eq!(names(d), Vec::<String>::new(), "{args:?} created something");
        }
    }

    // --create makes it, in the format of the extension.
    run(d, &["set", "--create", s(&missing), "{\"a\": [1, 2]}"]).ok();
    let atom = FileAtom::builder(&missing).open(json!(null)).unwrap();
    assert_eq!(*atom.deref(), json!({"a": [1, 2]}));
    let shown = run(d, &["get", s(&missing)]).ok().json();
    assert_eq!(shown, json!({"a": [1, 2]}));

    let toml = d.join("new.toml");
    run(d, &["set", s(&toml), "--create", "{\"port\": 8080}"]).ok();
    assert!(
        fs::read_to_string(&toml).unwrap().contains("port = 8080"),
        "written as TOML"
    );
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Server {
        port: u16,
    }
    let server = FileAtom::builder(&toml)
        .codec(enduro::Toml::default())
        .open(Server { port: 1 })
        .unwrap();
    assert_eq!(*server.deref(), Server { port: 8080 });

    // On an atom that exists, --create is a set.
    run(d, &["set", "--create", s(&missing), "{\"a\": 3}"]).ok();
    assert_eq!(*atom.refresh().unwrap(), json!({"a": 3}));

    // In journal mode too: the program keeps the journal.
    let jpath = d.join("j.json");
    let j = FileAtom::builder(&jpath)
        .journal(true)
        .open(json!({"a": 0}))
        .unwrap();
    j.swap(|_| json!({"a": 1})).unwrap();
    run(d, &["set", "--create", s(&jpath), "{\"a\": 2}"]).ok();
    assert_eq!(*j.refresh().unwrap(), json!({"a": 2}));
}

#[test]
fn at_reads_and_changes_one_part() {
    for journal in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let path = d.join("state.json");
        let atom = FileAtom::builder(&path)
            .journal(journal)
            .open(config())
            .unwrap();
        atom.swap(|c| Config {
            port: 81,
            ..c.clone()
        })
        .unwrap();
        let get = |pointer: &str| run(d, &["get", s(&path), "--at", pointer]);
        assert_eq!(get("/tags/1").ok().text(), "\"b\"\n");
        assert_eq!(get("/port").ok().text(), "81\n");
        assert_eq!(get("/mode/Slow/delay").ok().text(), "5\n");
        let limits = get("/limits");
        limits.ok();
        assert_pretty(&limits.text(), &json!({"max": 10, "ratio": 0.5}));
        let out = run(d, &["get", s(&path), "--at", "/limits", "--compact"]);
        assert_eq!(out.ok().json(), json!({"max": 10, "ratio": 0.5}));
        assert_eq!(out.text().lines().count(), 1);

        run(d, &["set", s(&path), "--at", "/port", "8081"]).ok();
        run(d, &["set", s(&path), "--at", "/limits/max", "11"]).ok();
        run(d, &["set", s(&path), "--at", "/tags/-", "\"c\""]).ok();
        run(d, &["set", s(&path), "--at", "/tags/0", "\"A\""]).ok();
        run(d, &["set", s(&path), "--at", "/mode", "\"Fast\""]).ok();
        let expected = Config {
            port: 8081,
            tags: vec!["A".into(), "b".into(), "c".into()],
            limits: Limits {
                max: 11,
                ratio: 0.5,
            },
            mode: Mode::Fast,
            ..config()
        };
        assert_eq!(*atom.refresh().unwrap(), expected, "journal: {journal}");

        // A part set over the program's latest commit keeps that commit.
        atom.swap(|c| Config {
            name: "mine".into(),
            ..c.clone()
        })
        .unwrap();
        run(d, &["set", s(&path), "--at", "/limits/ratio", "0.75"]).ok();
        let now = atom.refresh().unwrap();
        assert_eq!(
            (now.name.as_str(), now.limits.ratio, now.port),
            ("mine", 0.75, 8081)
        );
    }

    // Keys that need escaping (RFC 6901: `~1` is `/`, `~0` is `~`).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    let atom = FileAtom::builder(&path)
        .open(json!({"a/b": 1, "m~n": {"x": 2}}))
        .unwrap();
    let out = run(dir.path(), &["get", s(&path), "--at", "/a~1b"]);
    assert_eq!(out.ok().text(), "1\n");
    run(dir.path(), &["set", s(&path), "--at", "/m~0n/x", "5"]).ok();
    assert_eq!(*atom.refresh().unwrap(), json!({"a/b": 1, "m~n": {"x": 5}}));
}

#[test]
fn raw_prints_the_stored_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let json_path = d.join("pretty.json");
    FileAtom::builder(&json_path)
        .pretty(true)
        .open(config())
        .unwrap();
    let compact_path = d.join("compact.json");
    FileAtom::builder(&compact_path).open(config()).unwrap();
    let toml = d.join("c.toml");
    FileAtom::builder(&toml)
        .codec(enduro::Toml::default())
        .open(config())
        .unwrap();
    let cbor = d.join("c.cbor");
    FileAtom::builder(&cbor)
        .codec(enduro::Cbor)
        .open(config())
        .unwrap();
    let msgpack = d.join("c.msgpack");
    FileAtom::builder(&msgpack)
        .codec(enduro::MessagePack)
        .open(config())
        .unwrap();
    let ron_path = d.join("c.ron");
    FileAtom::builder(&ron_path)
        .codec(enduro::Ron::default())
        .open(config())
        .unwrap();
    for path in [&json_path, &compact_path, &toml, &cbor, &msgpack, &ron_path] {
        let out = run(d, &["get", s(path), "--raw"]);
        out.ok();
        assert_eq!(
            out.stdout,
            fs::read(path).unwrap(),
            "{}: --raw prints the stored bytes",
            path.display()
        );
    }
}

#[test]
fn set_dash_reads_the_value_from_stdin() {
    for journal in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let path = d.join("state.json");
        let atom = FileAtom::builder(&path)
            .journal(journal)
            .open(config())
            .unwrap();
        let new = serde_json::to_string_pretty(&other_config()).unwrap();
        let out = run_with(d, &["set", s(&path), "-"], Some(new.as_bytes()));
        out.ok();
        assert!(out.stdout.is_empty());
        assert_eq!(*atom.refresh().unwrap(), other_config());
        run_with(d, &["set", s(&path), "--at", "/port", "-"], Some(b"8082\n")).ok();
        assert_eq!(atom.refresh().unwrap().port, 8082);
        // A value that starts with `-` is still a value (a negative number) when quoted as
        // JSON: only `-` alone means stdin.
        let counter = d.join("counter.json");
        let n = FileAtom::builder(&counter).open(0i64).unwrap();
        run(d, &["set", s(&counter), "--", "-5"]).ok();
        assert_eq!(*n.refresh().unwrap(), -5);
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Settings {
    name: String,
    retries: u32,
}

/// One step, schema 0 to 1: `tries` is now called `retries`; counts its runs.
fn migrations(runs: &Arc<AtomicUsize>) -> Migrations {
    let runs = Arc::clone(runs);
    Migrations::new().step(move |mut value: Value| {
        runs.fetch_add(1, Ordering::SeqCst);
        let map = value.as_object_mut().ok_or("not an object")?;
        let tries = map.remove("tries").ok_or("no field `tries`")?;
        map.insert("retries".into(), tries);
        Ok::<_, &str>(value)
    })
}

#[test]
fn a_migration_envelope_is_hidden_by_get_and_kept_by_set() {
    for journal in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let path = d.join("settings.json");
        fs::write(&path, br#"{"name": "pump", "tries": 3}"#).unwrap();
        let runs = Arc::new(AtomicUsize::new(0));
        let init = Settings {
            name: "init".into(),
            retries: 0,
        };
        let atom = FileAtom::builder(&path)
            .journal(journal)
            .migrations(migrations(&runs))
            .open(init.clone())
            .unwrap();
        assert_eq!(atom.deref().retries, 3);
        assert_eq!(runs.load(Ordering::SeqCst), 1, "the step ran once");
        if !journal {
            let stored: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
            assert_eq!(
                stored,
                json!({"enduro_schema": 1, "value": {"name": "pump", "retries": 3}})
            );
        }

        let out = run(d, &["get", s(&path)]);
        out.ok();
        assert_pretty(&out.text(), &json!({"name": "pump", "retries": 3}));
        assert_eq!(
            run(d, &["get", s(&path), "--at", "/retries"]).ok().text(),
            "3\n"
        );

        run(d, &["set", s(&path), r#"{"name": "pump", "retries": 7}"#]).ok();
        if !journal {
            let stored: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
            assert_eq!(
                stored,
                json!({"enduro_schema": 1, "value": {"name": "pump", "retries": 7}}),
                "set keeps the envelope and its schema"
            );
        }
        assert_eq!(atom.refresh().unwrap().retries, 7, "journal: {journal}");
        run(d, &["set", s(&path), "--at", "/retries", "8"]).ok();
        assert_eq!(atom.refresh().unwrap().retries, 8, "journal: {journal}");
        drop(atom);

        let reopened = FileAtom::builder(&path)
            .journal(journal)
            .migrations(migrations(&runs))
            .open(init.clone())
            .unwrap();
        assert_eq!(
            *reopened.deref(),
            Settings {
                name: "pump".into(),
                retries: 8
            },
            "journal: {journal}"
        );
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "no step ran again (journal: {journal})"
        );
        let info = run(d, &["info", s(&path), "--json"]).ok().json();
        assert_eq!(info["schema"], 1, "{info}");
        let human = run(d, &["info", s(&path)]).ok().text();
        let fields = fields(&human);
        assert!(
            fields.get("schema").is_some_and(|v| v.starts_with('1')),
            "{human}"
        );
    }
}

/// `name: value` lines, by name.
fn fields(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect()
}

#[test]
fn info_shows_format_size_generation_schema_journal_and_lock() {
    // Every deviation, not just the first.
    let mut problems: Vec<String> = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            problems.push(what);
        }
    };
    for journal in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let path = d.join("state.json");
        let atom = FileAtom::builder(&path)
            .journal(journal)
            .open(config())
            .unwrap();
        for port in 81..=85 {
            atom.swap(|c| Config { port, ..c.clone() }).unwrap();
        }
        let size = fs::metadata(&path).unwrap().len();
        let report = enduro::FileReport::read(&path).unwrap();
        let generation = report.generation;
        assert_eq!(generation, atom.version().generation);
        let before = snapshot(d);

        let info = run(d, &["info", s(&path), "--json"]).ok().json();
        let what = format!("info --json (journal {journal}) gave {info}");
        check(
            info["path"]
                .as_str()
                .is_some_and(|p| p.contains(s(&path)) || p.ends_with("state.json")),
            format!("a `path` field with the data file's path: {what}"),
        );
        check(
            info["format"]
                .as_str()
                .is_some_and(|f| f.eq_ignore_ascii_case("json")),
            format!("`format` json: {what}"),
        );
        check(
            info["size"].as_u64() == Some(size),
            format!("`size` {size}: {what}"),
        );
        check(
            info["generation"].as_u64() == Some(generation),
            format!("`generation` {generation}: {what}"),
        );
        check(
            info["schema"].as_u64() == Some(0),
            format!("`schema` 0: {what}"),
        );
        if journal {
            check(
                info["journal"]["records"].as_u64() == Some(5)
                    && info["journal"]["ops"].as_u64() == Some(0),
                format!("`journal` with 5 records, 0 ops: {what}"),
            );
        } else {
            check(
                info.get("journal").is_none_or(Value::is_null),
                format!("no `journal`: {what}"),
            );
        }
        let pending = &info["pending"];
        check(
            pending.as_array().is_some_and(Vec::is_empty) || pending.as_u64() == Some(0),
            format!("no `pending` files: {what}"),
        );
        check(info["lock"] == "free", format!("`lock` free: {what}"));

        let human = run(d, &["info", s(&path)]).ok().text();
        let f = fields(&human);
        let what = format!("info (journal {journal}) gave:\n{human}");
        let field = |name: &str| f.get(name).cloned().unwrap_or_default();
        for name in [
            "path",
            "format",
            "size",
            "generation",
            "schema",
            "journal",
            "pending",
            "lock",
        ] {
            check(f.contains_key(name), format!("a `{name}:` line: {what}"));
        }
        check(
            field("path").contains("state.json"),
            format!("`path:` the data file: {what}"),
        );
        check(
            field("format").to_ascii_lowercase().contains("json"),
            format!("`format:` json: {what}"),
        );
        check(
            field("size").starts_with(&size.to_string()),
            format!("`size:` {size}: {what}"),
        );
        check(
            field("generation").starts_with(&generation.to_string()),
            format!("`generation:` {generation}: {what}"),
        );
        check(
            field("schema").starts_with('0'),
            format!("`schema:` 0: {what}"),
        );
        if journal {
            check(
                field("journal").contains("5 record"),
                format!("`journal:` 5 records: {what}"),
            );
        }
        check(
            field("lock").starts_with("free"),
            format!("`lock:` free: {what}"),
        );
        // Looking changes nothing.
        check(
            snapshot(d) == before,
            format!("info changed no file (journal {journal})"),
        );
    }

    // A file written by hand (no lock file yet): looking at it writes nothing, and says
    // the same each time.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = d.join("by-hand.json");
    fs::write(&path, b"{\"a\": 1}\n").unwrap();
    let before = snapshot(d);
    let first = run(d, &["info", s(&path), "--json"]).ok().json();
    check(
        snapshot(d) == before,
        format!(
            "info on a file written by hand wrote nothing: files now {:?}",
            names(d)
        ),
    );
    let second = run(d, &["info", s(&path), "--json"]).ok().json();
    check(
        first == second,
        format!("info says the same twice: first {first}, then {second}"),
    );
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn compact_on_a_journal_keeps_the_value_and_empties_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = d.join("state.json");
    let atom = FileAtom::builder(&path)
        .journal(true)
        .open(json!({"n": 0, "log": []}))
        .unwrap();
    for n in 1..=6 {
        atom.swap(|v| {
            let mut v = v.clone();
            v["n"] = json!(n);
            v["log"].as_array_mut().unwrap().push(json!(n));
            v
        })
        .unwrap();
    }
    let value = json!({"n": 6, "log": [1, 2, 3, 4, 5, 6]});
    assert_eq!(*atom.deref(), value);
    let info = run(d, &["info", s(&path), "--json"]).ok().json();
    assert_eq!(info["journal"]["records"].as_u64(), Some(6), "{info:#}");
    let shown_before = run(d, &["get", s(&path)]).ok().text();

    run(d, &["compact", s(&path)]).ok();
    assert_eq!(run(d, &["get", s(&path)]).ok().text(), shown_before);
    let snapshot_value: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    assert_eq!(snapshot_value, value, "the data file is the value now");
    let info = run(d, &["info", s(&path), "--json"]).ok().json();
    assert_eq!(info["journal"]["records"].as_u64(), Some(0), "{info:#}");
    assert_eq!(info["lock"], "free", "{info:#}");

    // The program's atom goes on, and reopening reads the same.
    assert_eq!(*atom.refresh().unwrap(), value);
    atom.swap(|v| {
        let mut v = v.clone();
        v["n"] = json!(7);
        v
    })
    .unwrap();
    assert_eq!(run(d, &["get", s(&path), "--at", "/n"]).ok().text(), "7\n");
    drop(atom);
    let reopened = FileAtom::builder(&path)
        .journal(true)
        .open(json!(null))
        .unwrap();
    assert_eq!(reopened.deref()["n"], 7);

    // A plain file: nothing to compact, said, exit 0, nothing changed.
    let plain = d.join("plain.json");
    FileAtom::builder(&plain).open(json!({"n": 1})).unwrap();
    let before = fs::read(&plain).unwrap();
    let out = run(d, &["compact", s(&plain)]);
    out.ok();
    assert!(
        !(out.text() + &out.stderr).trim().is_empty(),
        "compact on a plain file says there is nothing to compact"
    );
    assert_eq!(fs::read(&plain).unwrap(), before);
    assert!(!journal_of(&plain).exists());
}

#[test]
fn corrupt_data_exits_1_naming_the_file_and_leaves_it_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bad = d.join("bad.json");
    let garbage: &[u8] = b"{\"half\": ";
    fs::write(&bad, garbage).unwrap();
    let toml = d.join("bad.toml");
    fs::write(&toml, b"port = = 1\n").unwrap();
    for (path, bytes) in [(&bad, garbage), (&toml, b"port = = 1\n".as_slice())] {
        for args in [
            vec!["get", s(path)],
            vec!["set", s(path), "{\"a\": 1}"],
            vec!["set", s(path), "--at", "/a", "1"],
        ] {
            let out = run(d, &args);
            out.expect_code(1);
            assert!(
                out.stderr.contains(s(path)),
                "{args:?}: names the path: {}",
                out.stderr
            );
            assert!(out.stderr.starts_with("enduro: error: "), "{}", out.stderr);
            assert_eq!(fs::read(path).unwrap(), bytes, "{args:?} changed the file");
        }
    }
}

#[test]
fn help_works() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["--help"]);
    out.ok();
    let text = out.text();
    for command in ["get", "set", "edit", "watch", "info", "compact"] {
        assert!(text.contains(command), "--help lists `{command}`:\n{text}");
    }
    for (command, options) in [
        ("get", &["--at", "--raw", "--compact", "--format"][..]),
        ("set", &["--at", "--create", "--lock-timeout"][..]),
        ("info", &["--json"][..]),
        ("watch", &["--at"][..]),
    ] {
        let out = run(dir.path(), &[command, "--help"]);
        out.ok();
        for option in options {
            assert!(out.text().contains(option), "{command} --help: {option}");
        }
    }
    assert_eq!(names(dir.path()), Vec::<String>::new());
}

#[test]
fn no_target_or_two_targets_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = d.join("state.json");
    for args in [
        vec!["get"],
        vec!["info"],
        vec!["compact"],
        vec!["watch"],
        vec!["edit"],
        vec!["set", "{\"a\": 1}"],
        vec!["set"],
        vec!["get", s(&path), "--sqlite", "x.db", "--table", "t"],
        vec![
            "get",
            "--sqlite",
            "x.db",
            "--table",
            "t",
            "--redis",
            "redis://127.0.0.1:1",
            "--key",
            "k",
        ],
        vec!["frobnicate", s(&path)],
        vec![],
    ] {
        let out = run(d, &args);
        out.expect_code(2);
        assert!(!out.stderr.is_empty(), "{args:?}: says what is wrong");
        assert_eq!(names(d), Vec::<String>::new(), "{args:?} created something");
    }
}
