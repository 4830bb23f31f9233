//! `edit` of the stored text itself: RON and TOML values with dates, which JSON cannot
//! carry (`set` refuses them), are edited as their own text, checked to parse, and saved by
//! the store's compare-and-set over the version shown; `--raw` does the same for any text
//! format and refuses binary ones. (The other end-to-end cases are in `cli_files.rs`,
//! `cli_edit.rs`, `cli_processes.rs`, `cli_watch.rs` and `cli_databases.rs`.)
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use enduro::FileAtom;
use serde::{Deserialize, Serialize};

const BIN: &str = env!("CARGO_BIN_EXE_enduro");

/// How long one run of the binary may take before the test fails.
const LIMIT: Duration = Duration::from_secs(60);

fn enduro(args: &[&str]) -> Output {
    bounded(Command::new(BIN).args(args))
}

/// `command` run to its end, failing the test if it takes longer than [`LIMIT`].
fn bounded(command: &mut Command) -> Output {
    common::output_within(command, None, LIMIT)
        .expect("start enduro")
        .unwrap_or_else(|| panic!("enduro did not end within {LIMIT:?}"))
}

fn code(output: &Output) -> i32 {
    output.status.code().unwrap_or(-1)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Config {
    name: String,
    port: u16,
    tags: Vec<String>,
    mode: Mode,
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
        tags: vec!["a".into()],
        mode: Mode::Slow { delay: 5 },
    }
}

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// `edit` with a scripted editor and no terminal, `TMPDIR` in `dir`.
fn edit_with(dir: &Path, editor: &Path, args: &[&str]) -> Output {
    bounded(
        Command::new(BIN)
            .arg("edit")
            .args(args)
            .env("EDITOR", editor)
            .env("TMPDIR", dir)
            .env_remove("VISUAL"),
    )
}

#[test]
fn ron_and_toml_dates_are_edited_as_their_own_text() {
    let dir = tempfile::tempdir().unwrap();
    // RON: the editor sees RON (names and all), and the program reads the result.
    let ron = dir.path().join("c.ron");
    let atom = FileAtom::builder(&ron)
        .codec(enduro::Ron::default())
        .open(config())
        .unwrap();
    let editor = script(
        dir.path(),
        "ron.sh",
        "grep -q 'Slow(delay:5)' \"$1\" && sed -i 's/delay:5/delay:6/' \"$1\"",
    );
    let out = edit_with(dir.path(), &editor, &[arg(&ron)]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(atom.refresh().unwrap().mode, Mode::Slow { delay: 6 });
    // Text that is not RON is refused (no terminal: exit 2), nothing written.
    let before = fs::read(&ron).unwrap();
    let broken = script(dir.path(), "broken.sh", "echo '(name: ' > \"$1\"");
    let out = edit_with(dir.path(), &broken, &[arg(&ron)]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("not RON"), "{}", stderr(&out));
    assert_eq!(fs::read(&ron).unwrap(), before);
    // Someone (the program) commits while the text is edited: not saved (exit 4), their
    // value kept.
    let before = atom.refresh().unwrap();
    let conflict = script(
        dir.path(),
        "conflict.sh",
        &format!(
            "sed -i 's/port:80/port:81/' \"$1\"\ntouch {}\nwhile [ ! -e {} ]; do sleep 0.05; done",
            arg(&dir.path().join("editing")),
            arg(&dir.path().join("committed"))
        ),
    );
    let child = Command::new(BIN)
        .args(["edit", arg(&ron)])
        .env("EDITOR", &conflict)
        .env("TMPDIR", dir.path())
        .env_remove("VISUAL")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !dir.path().join("editing").exists() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the editor did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    atom.swap(|c| Config {
        name: "theirs".into(),
        ..c.clone()
    })
    .unwrap();
    fs::write(dir.path().join("committed"), b"").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    let now = atom.refresh().unwrap();
    assert_eq!((now.name.as_str(), now.port), ("theirs", before.port));

    // TOML with a date: edited as TOML; the date stays a date.
    let toml = dir.path().join("t.toml");
    fs::write(&toml, "when = 1979-05-27T07:32:00Z\nn = 1\n").unwrap();
    let editor = script(dir.path(), "toml.sh", "sed -i 's/^n = 1/n = 2/' \"$1\"");
    let out = edit_with(dir.path(), &editor, &[arg(&toml)]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        fs::read_to_string(&toml).unwrap(),
        "when = 1979-05-27T07:32:00Z\nn = 2\n"
    );
    assert_eq!(
        stdout(&enduro(&["get", arg(&toml), "--at", "/when"])),
        "\"1979-05-27T07:32:00Z\"\n"
    );

    // --raw on a binary format is refused; on JSON it edits the text as stored.
    let cbor = dir.path().join("c.cbor");
    FileAtom::builder(&cbor)
        .codec(enduro::Cbor)
        .open(config())
        .unwrap();
    assert_eq!(
        code(&edit_with(dir.path(), &editor, &[arg(&cbor), "--raw"])),
        2
    );
    let json_file = dir.path().join("j.json");
    fs::write(&json_file, "{\n  \"n\": 1\n}\n").unwrap();
    let editor = script(dir.path(), "json.sh", "sed -i 's/1/3/' \"$1\"");
    let out = edit_with(dir.path(), &editor, &[arg(&json_file), "--raw"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        fs::read_to_string(&json_file).unwrap(),
        "{\n  \"n\": 3\n}\n"
    );
}
