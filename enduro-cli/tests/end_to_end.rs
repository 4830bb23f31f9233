//! The `enduro` binary, end to end, on file atoms written by real atoms: get and set on a
//! plain file and a journal path, the formats, invalid input refused with nothing changed,
//! migration envelopes kept, info and compact, a `set` while two processes swap (nothing
//! lost), and `edit` in a real terminal (tmux) with a scripted editor.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use enduro::{FileAtom, Migrations};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_enduro");

fn enduro(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
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

/// Every file in `dir` and its bytes.
fn contents(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut all: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let bytes = fs::read(e.path()).unwrap_or_default();
            (e.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    all.sort();
    all
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

#[test]
fn get_and_set_on_a_plain_file_and_a_journal_written_by_atoms() {
    let dir = tempfile::tempdir().unwrap();
    for journal in [false, true] {
        let path = dir.path().join(format!("c-{journal}.json"));
        let atom = FileAtom::builder(&path)
            .journal(journal)
            .open(config())
            .unwrap();
        for port in 81..=85 {
            atom.swap(|c| Config { port, ..c.clone() }).unwrap();
        }
        let got = enduro(&["get", arg(&path)]);
        assert_eq!(code(&got), 0, "{}", stderr(&got));
        let shown: Value = serde_json::from_str(&stdout(&got)).unwrap();
        assert_eq!(
            shown,
            serde_json::to_value(Config {
                port: 85,
                ..config()
            })
            .unwrap()
        );
        assert_eq!(
            stdout(&enduro(&["get", arg(&path), "--at", "/mode/Slow/delay"])),
            "5\n"
        );

        let set = enduro(&["set", arg(&path), "--at", "/port", "8080"]);
        assert_eq!(code(&set), 0, "{}", stderr(&set));
        assert_eq!(atom.refresh().unwrap().port, 8080);
        let whole = json!({"name": "x", "port": 1, "tags": [], "mode": "Fast"}).to_string();
        assert_eq!(code(&enduro(&["set", arg(&path), &whole])), 0);
        let now = atom.refresh().unwrap();
        assert_eq!((now.name.as_str(), now.mode.clone()), ("x", Mode::Fast));
        // The program's own atom goes on from there.
        assert_eq!(
            atom.swap(|c| Config {
                port: 2,
                ..c.clone()
            })
            .unwrap()
            .port,
            2
        );
        let info = stdout(&enduro(&["info", arg(&path), "--json"]));
        let info: Value = serde_json::from_str(&info).unwrap();
        assert_eq!(info["generation"], 9);
        assert_eq!(info["journal"].is_null(), !journal, "{info}");
    }
}

#[test]
fn invalid_input_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.json");
    FileAtom::builder(&path).open(config()).unwrap();
    let toml = dir.path().join("c.toml");
    FileAtom::builder(&toml)
        .codec(enduro::Toml::default())
        .open(config())
        .unwrap();
    let before = contents(dir.path());
    let cases: Vec<Vec<&str>> = vec![
        vec!["set", arg(&path), "{not json"],
        vec!["set", arg(&path), "--at", "/nothing/here", "1"],
        vec!["set", arg(&path), "--at", "port", "1"],
        vec!["set", arg(&path), "--at", "/tags/5", "1"],
        vec!["set", arg(&toml), "null"],
        vec!["set", arg(&toml), "[1, 2]"],
        vec!["set", arg(&toml), "--at", "/tags/0", "null"],
        vec!["get", arg(&path), "--format", "postcard"],
        vec!["get"],
        vec!["get", arg(&path), "--sqlite", "x.db", "--table", "t"],
    ];
    for case in cases {
        let out = enduro(&case);
        assert_eq!(code(&out), 2, "{case:?}: {}", stderr(&out));
        assert!(
            stderr(&out).starts_with("enduro: error: "),
            "{case:?}: {}",
            stderr(&out)
        );
        assert_eq!(contents(dir.path()), before, "{case:?} changed something");
    }
    // Nothing stored: exit 3, and nothing created (no file, no lock file, no directory).
    let missing = dir.path().join("sub/none.json");
    for case in [
        vec!["get", arg(&missing)],
        vec!["set", arg(&missing), "1"],
        vec!["info", arg(&missing)],
        vec!["edit", arg(&missing)],
        vec!["watch", arg(&missing)],
    ] {
        let out = enduro(&case);
        assert_eq!(code(&out), 3, "{case:?}: {}", stderr(&out));
        assert_eq!(contents(dir.path()), before, "{case:?} created something");
    }
    // Stored data that does not decode: exit 1, named, byte for byte as it was.
    let bad = dir.path().join("bad.json");
    fs::write(&bad, b"{\"half\": ").unwrap();
    for case in [vec!["get", arg(&bad)], vec!["set", arg(&bad), "1"]] {
        let out = enduro(&case);
        assert_eq!(code(&out), 1, "{case:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("bad.json"), "{}", stderr(&out));
        assert_eq!(fs::read(&bad).unwrap(), b"{\"half\": ");
    }
    // --create makes one; `-` reads stdin.
    let made = dir.path().join("made.json");
    let mut child = Command::new(BIN)
        .args(["set", "--create", arg(&made), "-"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"n\": [1]}")
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(fs::read_to_string(&made).unwrap(), "{\"n\":[1]}");
}

#[test]
fn formats_are_shown_as_json_and_written_back_in_their_own_format() {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("c.toml");
    let cbor = dir.path().join("c.cbor");
    let msgpack = dir.path().join("c.msgpack");
    let ron = dir.path().join("c.ron");
    let a = FileAtom::builder(&toml)
        .codec(enduro::Toml::default())
        .open(config())
        .unwrap();
    let b = FileAtom::builder(&cbor)
        .codec(enduro::Cbor)
        .open(config())
        .unwrap();
    let c = FileAtom::builder(&msgpack)
        .codec(enduro::MessagePack)
        .open(config())
        .unwrap();
    let expected = serde_json::to_value(config()).unwrap();
    for path in [&toml, &cbor, &msgpack] {
        let got: Value = serde_json::from_str(&stdout(&enduro(&["get", arg(path)]))).unwrap();
        assert_eq!(got, expected, "{}", path.display());
        let out = enduro(&["set", arg(path), "--at", "/tags/-", "\"b\""]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    for atom in [&a, &b, &c] {
        assert_eq!(atom.refresh().unwrap().tags, ["a", "b"]);
    }
    assert!(
        fs::read_to_string(&toml)
            .unwrap()
            .contains("tags = [\"a\", \"b\"]")
    );
    assert_eq!(
        enduro(&["get", arg(&cbor), "--raw"]).stdout,
        fs::read(&cbor).unwrap()
    );

    // RON: shown, but never written back (its names do not survive JSON).
    let d = FileAtom::builder(&ron)
        .codec(enduro::Ron::default())
        .open(config())
        .unwrap();
    assert_eq!(code(&enduro(&["get", arg(&ron)])), 0);
    let before = fs::read(&ron).unwrap();
    let out = enduro(&["set", arg(&ron), "--at", "/port", "1"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("RON"), "{}", stderr(&out));
    assert_eq!(fs::read(&ron).unwrap(), before);
    assert_eq!(*d.refresh().unwrap(), config());
}

#[test]
fn migration_envelopes_are_hidden_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.json");
    fs::write(&path, br#"{"tries": 3}"#).unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let migrations = || {
        let runs = Arc::clone(&runs);
        Migrations::new().step(move |mut v: Value| {
            runs.fetch_add(1, Ordering::SeqCst);
            let tries = v["tries"].take();
            Ok::<_, String>(json!({"retries": tries}))
        })
    };
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct V1 {
        retries: u32,
    }
    let atom = FileAtom::builder(&path)
        .migrations(migrations())
        .open(V1 { retries: 0 })
        .unwrap();
    assert_eq!(atom.deref().retries, 3);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(
        stdout(&enduro(&["get", arg(&path), "--compact"])),
        "{\"retries\":3}\n"
    );
    assert_eq!(code(&enduro(&["set", arg(&path), "{\"retries\": 7}"])), 0);
    let stored: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    assert_eq!(stored, json!({"enduro_schema": 1, "value": {"retries": 7}}));
    let reopened = FileAtom::builder(&path)
        .migrations(migrations())
        .open(V1 { retries: 0 })
        .unwrap();
    assert_eq!(reopened.deref().retries, 7);
    assert_eq!(runs.load(Ordering::SeqCst), 1, "no step ran again");
    let info: Value =
        serde_json::from_str(&stdout(&enduro(&["info", arg(&path), "--json"]))).unwrap();
    assert_eq!(info["schema"], 1);
}

#[test]
fn info_and_compact_on_a_journal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.json");
    let atom = FileAtom::builder(&path).journal(true).open(0u64).unwrap();
    for _ in 0..7 {
        atom.swap(|n| n + 1).unwrap();
    }
    let info: Value =
        serde_json::from_str(&stdout(&enduro(&["info", arg(&path), "--json"]))).unwrap();
    assert_eq!(
        (
            info["generation"].as_u64(),
            info["journal"]["values"].as_u64()
        ),
        (Some(8), Some(7))
    );
    assert_eq!(info["lock"], "free");
    let out = enduro(&["compact", arg(&path)]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(fs::read_to_string(&path).unwrap(), "7");
    let info: Value =
        serde_json::from_str(&stdout(&enduro(&["info", arg(&path), "--json"]))).unwrap();
    assert_eq!(
        (
            info["generation"].as_u64(),
            info["journal"]["values"].as_u64()
        ),
        (Some(8), Some(0))
    );
    assert_eq!(*atom.swap(|n| n + 1).unwrap(), 8);
    assert_eq!(stdout(&enduro(&["get", arg(&path)])), "8\n");
    let out = enduro(&["compact", "--sqlite", "x.db", "--table", "t"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
}

/// The worker of `a_set_while_two_processes_swap_loses_none_of_their_swaps`: `swaps`
/// increments of `/count`, printing how many found the value set by the tool.
#[test]
fn worker() {
    let Ok(path) = std::env::var("ENDURO_CLI_WORKER") else {
        return;
    };
    let journal = std::env::var("ENDURO_CLI_JOURNAL").is_ok();
    let swaps: usize = std::env::var("ENDURO_CLI_SWAPS").unwrap().parse().unwrap();
    let atom = FileAtom::builder(&path)
        .journal(journal)
        .open(json!({"count": 0}))
        .unwrap();
    let mut after = 0;
    for _ in 0..swaps {
        let (old, _) = atom
            .swap_vals(|v| json!({"count": v["count"].as_u64().unwrap() + 1}))
            .unwrap();
        if old["count"].as_u64().unwrap() >= 1_000_000 {
            after += 1;
        }
    }
    println!("AFTER {after}");
}

#[test]
fn a_set_while_two_processes_swap_loses_none_of_their_swaps() {
    let swaps = 300;
    for journal in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("count.json");
        let atom = FileAtom::builder(&path)
            .journal(journal)
            .open(json!({"count": 0}))
            .unwrap();
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let mut command = Command::new(std::env::current_exe().unwrap());
                command
                    .args(["--exact", "worker", "--nocapture", "--test-threads", "1"])
                    .env("ENDURO_CLI_WORKER", &path)
                    .env("ENDURO_CLI_SWAPS", swaps.to_string())
                    .stdout(Stdio::piped());
                if journal {
                    command.env("ENDURO_CLI_JOURNAL", "1");
                }
                command.spawn().unwrap()
            })
            .collect();
        // Once some swaps landed, the tool sets the whole value, once.
        let started = Instant::now();
        while atom.refresh().unwrap()["count"].as_u64().unwrap() < 50 {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the workers do not swap"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        let out = enduro(&["set", arg(&path), "{\"count\": 1000000}"]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let mut after = 0;
        for worker in workers {
            let output = worker.wait_with_output().unwrap();
            assert!(output.status.success(), "a worker failed");
            let text = stdout(&output);
            // (The harness may print its own words on the same line.)
            let said = text.split("AFTER ").nth(1).unwrap();
            let number: String = said.chars().take_while(char::is_ascii_digit).collect();
            after += number.parse::<u64>().unwrap();
        }
        assert!(
            after < 2 * swaps as u64,
            "the set landed before the workers' last swaps"
        );
        let count = atom.refresh().unwrap()["count"].as_u64().unwrap();
        assert_eq!(count, 1_000_000 + after, "journal: {journal}");
    }
}

/// A tmux server of its own, killed when the test ends.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(command: &str) -> Option<Tmux> {
        if Command::new("tmux").arg("-V").output().is_err() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "tmux is missing (CI installs it)"
            );
            eprintln!("skipped: tmux is not installed");
            return None;
        }
        let socket = format!("enduro-test-{}-{}", std::process::id(), command.len());
        let started = Command::new("tmux")
            .args([
                "-L",
                &socket,
                "new-session",
                "-d",
                "-x",
                "160",
                "-y",
                "50",
                command,
            ])
            .status()
            .unwrap();
        assert!(started.success());
        Some(Tmux { socket })
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-J"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn wait_for(&self, text: &str) -> String {
        let started = Instant::now();
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no `{text}` on:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn keys(&self, keys: &[&str]) {
        let status = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys"])
            .args(keys)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // The socket file stays behind a killed server: remove it too.
        let socket = Command::new("tmux")
            .args([
                "-L",
                &self.socket,
                "display-message",
                "-p",
                "#{socket_path}",
            ])
            .output();
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
        if let Ok(out) = socket {
            let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if !path.is_empty() {
                let _ = fs::remove_file(path);
            }
        }
    }
}

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn wait_for_file(path: &Path) -> String {
    let started = Instant::now();
    loop {
        if let Ok(text) = fs::read_to_string(path)
            && text.ends_with('\n')
        {
            return text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn edit_in_a_terminal_saves_and_offers_to_edit_again_after_a_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.json");
    let atom = FileAtom::builder(&path)
        .open(json!({"n": 1, "who": "me"}))
        .unwrap();
    // First run: edits n, and meanwhile "someone else" commits. Second run: edits again,
    // on the value it is shown then.
    let runs = dir.path().join("runs");
    let editor = script(
        dir.path(),
        "editor.sh",
        &format!(
            "echo x >> {runs}\nif [ $(wc -l < {runs}) -eq 1 ]; then\n  sed -i 's/\"n\": 1/\"n\": 2/' \"$1\"\n  {bin} set {path} --at /who '\"other\"'\nelse\n  sed -i 's/\"n\": 1/\"n\": 3/' \"$1\"\nfi",
            runs = arg(&runs),
            bin = BIN,
            path = arg(&path),
        ),
    );
    let status = dir.path().join("status");
    let command = format!(
        "TMPDIR={} VISUAL= EDITOR={} {BIN} edit {}; echo $? > {}; sleep 60",
        arg(dir.path()),
        arg(&editor),
        arg(&path),
        arg(&status)
    );
    let Some(tmux) = Tmux::start(&command) else {
        return;
    };
    let screen = tmux.wait_for("Edit again");
    assert!(
        screen.contains("changed while you were editing"),
        "{screen}"
    );
    tmux.keys(&["y", "Enter"]);
    assert_eq!(wait_for_file(&status), "0\n", "{}", tmux.screen());
    assert_eq!(*atom.refresh().unwrap(), json!({"n": 3, "who": "other"}));
    drop(tmux);

    // Text that is not JSON: said, and `n` leaves everything as it was (exit 2).
    let bad = script(dir.path(), "bad.sh", "echo '{oops' > \"$1\"");
    let before = fs::read(&path).unwrap();
    let status = dir.path().join("status2");
    let command = format!(
        "TMPDIR={} VISUAL= EDITOR={} {BIN} edit {}; echo $? > {}; sleep 60",
        arg(dir.path()),
        arg(&bad),
        arg(&path),
        arg(&status)
    );
    let tmux = Tmux::start(&command).unwrap();
    let screen = tmux.wait_for("Edit again? [Y/n]");
    assert!(screen.contains("not JSON"), "{screen}");
    tmux.keys(&["n", "Enter"]);
    assert_eq!(wait_for_file(&status), "2\n");
    assert_eq!(fs::read(&path).unwrap(), before);
}

#[test]
fn edit_without_a_terminal_never_overwrites_a_commit_made_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.json");
    let atom = FileAtom::builder(&path).open(json!({"n": 1})).unwrap();
    let editor = script(
        dir.path(),
        "editor.sh",
        &format!(
            "sed -i 's/1/2/' \"$1\"\n{BIN} set {} '{{\"n\": 9}}'",
            arg(&path)
        ),
    );
    let out = Command::new(BIN)
        .args(["edit", arg(&path)])
        .env("EDITOR", &editor)
        .env("TMPDIR", dir.path())
        .env_remove("VISUAL")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("changed while you were editing"),
        "{}",
        stderr(&out)
    );
    assert_eq!(*atom.refresh().unwrap(), json!({"n": 9}));
    let changed = script(dir.path(), "ok.sh", "sed -i 's/9/10/' \"$1\"");
    let out = Command::new(BIN)
        .args(["edit", arg(&path)])
        .env("EDITOR", &changed)
        .env("TMPDIR", dir.path())
        .env_remove("VISUAL")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(*atom.refresh().unwrap(), json!({"n": 10}));
}

/// A child process killed when the test ends, whatever happens.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The lines a child prints, as they come.
fn lines_of(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let out = child.0.stdout.take().unwrap();
    let (send, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            if send.send(line).is_err() {
                return;
            }
        }
    });
    lines
}

fn next(lines: &std::sync::mpsc::Receiver<String>) -> String {
    lines.recv_timeout(Duration::from_secs(30)).unwrap()
}

#[test]
fn watch_prints_each_change_of_a_file_and_a_sqlite_atom_and_ends_at_release() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.json");
    let db = dir.path().join("app.db");
    let file = FileAtom::builder(&path)
        .journal(true)
        .open(json!({"n": 0}))
        .unwrap();
    let row = enduro::SqliteAtom::builder(&db, "atoms")
        .key("w")
        .open(json!({"n": 0}))
        .unwrap();
    let targets: [(Vec<&str>, &enduro::Atom<Value>); 2] = [
        (vec![arg(&path)], &file),
        (
            vec!["--sqlite", arg(&db), "--table", "atoms", "--key", "w"],
            &row,
        ),
    ];
    for (target, atom) in targets {
        let mut child = Child(
            Command::new(BIN)
                .arg("watch")
                .args(&target)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let lines = lines_of(&mut child);
        assert_eq!(next(&lines), "{\"n\":0}");
        for n in 1..=3 {
            atom.swap(|_| json!({ "n": n })).unwrap();
            assert_eq!(next(&lines), format!("{{\"n\":{n}}}"));
        }
        // `set` from another process reaches it too.
        let mut set = vec!["set"];
        set.extend(&target);
        set.extend(["--at", "/n", "4"]);
        assert_eq!(code(&enduro(&set)), 0);
        assert_eq!(next(&lines), "{\"n\":4}");
        atom.release().unwrap();
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.0.try_wait().unwrap() {
                break status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "watch did not end"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success());
    }
}

#[test]
fn sqlite_atoms_get_set_info_and_refuse_compact() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let target = ["--sqlite", arg(&db), "--table", "atoms"];
    let with = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(target);
        enduro(&all)
    };
    // Nothing there: nothing made (no database file).
    assert_eq!(code(&with(&["get"])), 3);
    assert!(!db.exists());
    let atom = enduro::SqliteAtom::builder(&db, "atoms")
        .open(config())
        .unwrap();
    let got: Value = serde_json::from_str(&stdout(&with(&["get"]))).unwrap();
    assert_eq!(got, serde_json::to_value(config()).unwrap());
    assert_eq!(code(&with(&["set", "--at", "/port", "443"])), 0);
    assert_eq!(atom.refresh().unwrap().port, 443);
    assert_eq!(code(&with(&["set", "{oops"])), 2);
    assert_eq!(atom.refresh().unwrap().port, 443);
    let info = stdout(&with(&["info"]));
    assert!(
        info.contains("SQLite") && info.contains("generation: "),
        "{info}"
    );
    assert_eq!(code(&with(&["compact"])), 2);
}

/// `edit` with a scripted editor and no terminal, `TMPDIR` in `dir`.
fn edit_with(dir: &Path, editor: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("edit")
        .args(args)
        .env("EDITOR", editor)
        .env("TMPDIR", dir)
        .env_remove("VISUAL")
        .stdin(Stdio::null())
        .output()
        .unwrap()
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
