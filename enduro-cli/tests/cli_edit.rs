//! `enduro edit` with a scripted `$EDITOR`: in a real terminal (a tmux server of the test's
//! own) a change is saved; a commit made while the editor runs is said, the terminal asks
//! `Edit again? [Y/n]`, and `y` reopens the editor on the new value; text that is not JSON
//! is said with its line and column, and `n` leaves everything as it was (exit 2). Without
//! a terminal, a conflict is exit 4 with nothing written; and the other outcomes (no
//! change, the editor failing, `$VISUAL` first, journal paths, migration envelopes).
//!
//! tmux missing: under `CI=true` the terminal tests fail; elsewhere they are skipped, saying
//! so.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use enduro::FileAtom;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_enduro");

/// How long the test waits for the terminal or a file to show something (a bound on the
/// test, not a speed requirement).
const WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Config {
    name: String,
    port: u16,
    tags: Vec<String>,
}

fn config() -> Config {
    Config {
        name: "svc".into(),
        port: 80,
        tags: vec!["a".into()],
    }
}

fn s(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temp path")
}

/// `text` in single quotes for `sh`.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Writes an executable `sh` script `name` into `dir`.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Whether tmux runs here; under `CI=true` its absence fails the test.
fn have_tmux() -> bool {
    let ok = Command::new("tmux")
        .arg("-V")
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "tmux is not installed, and under CI=true the terminal tests must run: install tmux"
        );
        eprintln!("skipped: tmux is not installed (the terminal tests need it)");
    }
    ok
}

static SERVERS: AtomicUsize = AtomicUsize::new(0);

/// A tmux server of the test's own (its own socket), killed with everything in it when the
/// test ends, however it ends.
struct Tmux {
    socket: String,
    /// The socket file, removed too (tmux leaves it behind).
    socket_path: Option<PathBuf>,
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Some(path) = &self.socket_path {
            use std::os::unix::fs::FileTypeExt;
            if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
                let _ = fs::remove_file(path);
            }
        }
    }
}

impl Tmux {
    /// A 120×40 terminal running `sh SCRIPT`.
    fn start(script: &Path) -> Tmux {
        let socket = format!(
            "enduro-cli-edit-{}-{}",
            std::process::id(),
            SERVERS.fetch_add(1, Ordering::SeqCst)
        );
        let mut tmux = Tmux {
            socket,
            socket_path: None,
        };
        let status = Command::new("tmux")
            .args(["-L", &tmux.socket, "-f", "/dev/null", "new-session", "-d"])
            .args(["-x", "120", "-y", "40"])
            .arg(format!("sh {}", quote(s(script))))
            .env_remove("TMUX")
            .stdin(Stdio::null())
            .status()
            .expect("run tmux");
        assert!(status.success(), "tmux new-session: {status}");
        let path = Command::new("tmux")
            .args([
                "-L",
                &tmux.socket,
                "display-message",
                "-p",
                "#{socket_path}",
            ])
            .stdin(Stdio::null())
            .output()
            .expect("tmux display-message");
        let path = String::from_utf8_lossy(&path.stdout).trim().to_owned();
        if path.ends_with(&tmux.socket) {
            tmux.socket_path = Some(PathBuf::from(path));
        }
        tmux
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-J"])
            .stdin(Stdio::null())
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
    }

    /// The screen once it shows `text` (within [`WAIT`]).
    #[track_caller]
    fn wait_for(&self, text: &str) -> String {
        let started = Instant::now();
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                started.elapsed() < WAIT,
                "the terminal does not show `{text}` within {WAIT:?}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn keys(&self, keys: &[&str]) {
        let status = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys"])
            .args(keys)
            .stdin(Stdio::null())
            .status()
            .expect("tmux send-keys");
        assert!(status.success(), "tmux send-keys {keys:?}");
    }
}

/// A terminal session: `enduro edit PATH` with `editor` as `$EDITOR`, its exit status
/// written to `status` when it ends (then the pane stays, to be looked at).
struct Session {
    tmux: Tmux,
    status: PathBuf,
}

impl Session {
    fn start(dir: &Path, path: &Path, editor: &Path) -> Session {
        let status = dir.join("status");
        let temp = dir.join("tmp");
        fs::create_dir_all(&temp).unwrap();
        let run = script(
            dir,
            "run.sh",
            &format!(
                "unset VISUAL TMUX\nexport EDITOR={editor}\nexport ENDURO_BIN={bin}\n\
                 export TMPDIR={temp}\n{bin} edit {path}\necho $? > {status}.part\n\
                 mv {status}.part {status}\nexec sleep 3600",
                editor = quote(s(editor)),
                bin = quote(BIN),
                temp = quote(s(&temp)),
                path = quote(s(path)),
                status = quote(s(&status)),
            ),
        );
        Session {
            tmux: Tmux::start(&run),
            status,
        }
    }

    /// The exit status of `enduro edit`, once it ended (within [`WAIT`]).
    #[track_caller]
    fn exit_status(&self) -> String {
        let started = Instant::now();
        loop {
            if let Ok(text) = fs::read_to_string(&self.status) {
                return text.trim().to_owned();
            }
            assert!(
                started.elapsed() < WAIT,
                "enduro edit did not end within {WAIT:?}:\n{}",
                self.tmux.screen()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Files named on `screen` (words starting with `/`, quotes and backticks taken off) whose
/// text contains `needle`.
fn files_named_holding(screen: &str, needle: &str) -> Vec<PathBuf> {
    screen
        .split(|c: char| c.is_whitespace() || c == '`' || c == '\'' || c == '"')
        .map(|word| word.trim_end_matches(['.', ',', ';', ':', ')']))
        .filter(|word| word.starts_with('/'))
        .map(PathBuf::from)
        .filter(|path| fs::read_to_string(path).is_ok_and(|t| t.contains(needle)))
        .collect()
}

/// How many times the editor script ran (it appends a line to `runs` each time).
fn runs(dir: &Path) -> usize {
    fs::read_to_string(dir.join("runs"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// The start of every editor script: counts its runs, keeps what it was shown.
fn editor_prelude(dir: &Path) -> String {
    let runs = quote(s(&dir.join("runs")));
    let seen = s(dir);
    format!(
        "echo run >> {runs}\nn=$(wc -l < {runs} | tr -d ' ')\ncp \"$1\" {}/seen-$n.json",
        quote(seen)
    )
}

#[test]
fn edit_in_a_terminal_saves_the_change() {
    if !have_tmux() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = d.join("state.json");
    let atom = FileAtom::builder(&path).open(config()).unwrap();
    let editor = script(
        d,
        "editor.sh",
        &format!(
            "{}\nsed -i 's/\"port\": 80/\"port\": 8080/' \"$1\"",
            editor_prelude(d)
        ),
    );
    let session = Session::start(d, &path, &editor);
    let status = session.exit_status();
    let screen = session.tmux.screen();
    assert_eq!(status, "0", "{screen}");
    assert!(screen.contains("enduro: saved"), "{screen}");
    assert_eq!(runs(d), 1, "{screen}");
    let seen: Value = serde_json::from_str(&fs::read_to_string(d.join("seen-1.json")).unwrap())
        .expect("the editor was shown JSON");
    assert_eq!(seen, serde_json::to_value(config()).unwrap());
    assert_eq!(
        *atom.refresh().unwrap(),
        Config {
            port: 8080,
            ..config()
        }
    );
}

#[test]
fn edit_in_a_terminal_after_a_conflict_offers_to_edit_the_new_value() {
    if !have_tmux() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = d.join("state.json");
    let atom = FileAtom::builder(&path).open(config()).unwrap();
    // Run 1: changes the port, and meanwhile someone else commits a new name. Run 2:
    // changes the port again, on what it is shown then.
    let editor = script(
        d,
        "editor.sh",
        &format!(
            "{prelude}\nif [ \"$n\" -eq 1 ]; then\n  sed -i 's/\"port\": 80/\"port\": 8080/' \"$1\"\n  \
             \"$ENDURO_BIN\" set {path} --at /name '\"other\"' || exit 9\nelse\n  \
             sed -i 's/\"port\": 80/\"port\": 9090/' \"$1\"\nfi",
            prelude = editor_prelude(d),
            path = quote(s(&path)),
        ),
    );
    let session = Session::start(d, &path, &editor);
    let tmux = &session.tmux;
    // Every deviation from the spec, so that the run goes on past the first.
    let mut problems = Vec::new();
    let screen = tmux.wait_for("[Y/n]");
    if !screen.contains("changed while you were editing") {
        problems.push(format!(
            "no `changed while you were editing` on the terminal:\n{screen}"
        ));
    }
    if !screen.contains("Edit again? [Y/n]") {
        problems.push(format!("no `Edit again? [Y/n]` prompt:\n{screen}"));
    }
    // The text of the first run is kept, in a file whose path is shown.
    if files_named_holding(&screen, "8080").is_empty() {
        problems.push(format!(
            "no path of a file keeping the edited text (port 8080) on the terminal:\n{screen}"
        ));
    }
    // Nothing of the first run was saved.
    assert_eq!(
        *atom.refresh().unwrap(),
        Config {
            name: "other".into(),
            ..config()
        }
    );
    tmux.keys(&["y", "Enter"]);
    let status = session.exit_status();
    let screen = tmux.screen();
    assert_eq!(status, "0", "{screen}");
    assert_eq!(runs(d), 2, "the editor ran again:\n{screen}");
    let second: Value =
        serde_json::from_str(&fs::read_to_string(d.join("seen-2.json")).unwrap()).unwrap();
    assert_eq!(
        second,
        json!({"name": "other", "port": 80, "tags": ["a"]}),
        "the second run is shown the new value"
    );
    assert_eq!(
        *atom.refresh().unwrap(),
        Config {
            name: "other".into(),
            port: 9090,
            ..config()
        },
        "the second edit, on the other value:\n{screen}"
    );
    if !screen.contains("enduro: saved") {
        problems.push(format!("no `enduro: saved`:\n{screen}"));
    }
    assert!(
        problems.is_empty(),
        "{} deviation(s):\n{}",
        problems.len(),
        problems.join("\n---\n")
    );
}

#[test]
fn edit_in_a_terminal_of_text_that_is_not_json_says_where_and_n_changes_nothing() {
    if !have_tmux() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = d.join("state.json");
    let atom = FileAtom::builder(&path).open(config()).unwrap();
    let before = fs::read(&path).unwrap();
    let editor = script(
        d,
        "editor.sh",
        &format!(
            "{}\nprintf '{{\\n  \"name\": oops\\n}}\\n' > \"$1\"",
            editor_prelude(d)
        ),
    );
    let session = Session::start(d, &path, &editor);
    let tmux = &session.tmux;
    let mut problems = Vec::new();
    let screen = tmux.wait_for("[Y/n]");
    if !screen.contains("Edit again? [Y/n]") {
        problems.push(format!("no `Edit again? [Y/n]` prompt:\n{screen}"));
    }
    // serde_json: "expected value at line 2 column 11".
    if !(screen.contains("line 2") && screen.contains("column")) {
        problems.push(format!(
            "the error does not say where (line 2, column):\n{screen}"
        ));
    }
    tmux.keys(&["n", "Enter"]);
    let status = session.exit_status();
    let screen = tmux.screen();
    assert_eq!(status, "2", "{screen}");
    assert_eq!(runs(d), 1, "{screen}");
    assert_eq!(fs::read(&path).unwrap(), before, "nothing written");
    assert_eq!(*atom.refresh().unwrap(), config());
    assert!(
        problems.is_empty(),
        "{} deviation(s):\n{}",
        problems.len(),
        problems.join("\n---\n")
    );
}

/// Runs `enduro edit ARGS` without a terminal (stdin /dev/null) with `env`, killed if it
/// has not ended within [`WAIT`].
fn edit_without_terminal(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let temp = dir.join("tmp");
    fs::create_dir_all(&temp).unwrap();
    let mut command = Command::new(BIN);
    command
        .arg("edit")
        .args(args)
        .env_remove("VISUAL")
        .env_remove("EDITOR")
        .env("ENDURO_BIN", BIN)
        .env("TMPDIR", &temp);
    for (name, value) in env {
        command.env(name, value);
    }
    common::output_within(&mut command, None, WAIT)
        .expect("start enduro edit")
        .unwrap_or_else(|| panic!("enduro edit {args:?} did not end within {WAIT:?}"))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn edit_without_a_terminal_never_overwrites_a_commit_made_meanwhile() {
    for journal in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let path = d.join("state.json");
        let atom = FileAtom::builder(&path)
            .journal(journal)
            .open(config())
            .unwrap();
        let editor = script(
            d,
            "editor.sh",
            &format!(
                "{}\nsed -i 's/\"port\": 80/\"port\": 8080/' \"$1\"\n\
                 \"$ENDURO_BIN\" set {} --at /name '\"other\"' || exit 9",
                editor_prelude(d),
                quote(s(&path))
            ),
        );
        let out = edit_without_terminal(d, &[s(&path)], &[("EDITOR", s(&editor))]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(4), "journal {journal}: {err}");
        assert!(
            err.contains("changed while you were editing"),
            "journal {journal}: {err}"
        );
        assert_eq!(runs(d), 1, "no terminal: the editor is not run again");
        assert_eq!(
            *atom.refresh().unwrap(),
            Config {
                name: "other".into(),
                ..config()
            },
            "the other commit stays, the edit is not saved (journal {journal})"
        );
        assert!(
            !files_named_holding(&err, "8080").is_empty(),
            "the edited text is kept in a file that is named: {err}"
        );
    }
}

#[test]
fn edit_without_a_terminal_saves_refuses_and_fails_as_the_spec_says() {
    for journal in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let path = d.join("state.json");
        let atom = FileAtom::builder(&path)
            .journal(journal)
            .open(config())
            .unwrap();
        let snapshot = || {
            let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap())
                .filter(|e| e.file_type().unwrap().is_file())
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        fs::read(e.path()).unwrap(),
                    )
                })
                .filter(|(name, _)| {
                    name.starts_with("state.json") || name.starts_with(".state.json")
                })
                .collect();
            files.sort();
            files
        };
        let what = format!("journal {journal}");

        // Unchanged: said, exit 0, nothing written.
        let before = snapshot();
        let out = edit_without_terminal(d, &[s(&path)], &[("EDITOR", "true")]);
        assert_eq!(out.status.code(), Some(0), "{what}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("enduro: no change"),
            "{what}: {}",
            stderr(&out)
        );
        assert_eq!(snapshot(), before, "{what}: no change, nothing written");

        // The editor fails: exit 1, nothing written.
        let failing = script(d, "failing.sh", "sed -i 's/80/81/' \"$1\"\nexit 3");
        let out = edit_without_terminal(d, &[s(&path)], &[("EDITOR", s(&failing))]);
        assert_eq!(out.status.code(), Some(1), "{what}: {}", stderr(&out));
        assert_eq!(
            snapshot(),
            before,
            "{what}: the editor failed, nothing written"
        );

        // Not JSON, no terminal to ask on: exit 2, nothing written.
        let bad = script(d, "bad.sh", "echo '{oops' > \"$1\"");
        let out = edit_without_terminal(d, &[s(&path)], &[("EDITOR", s(&bad))]);
        assert_eq!(out.status.code(), Some(2), "{what}: {}", stderr(&out));
        assert_eq!(snapshot(), before, "{what}: not JSON, nothing written");

        // Saved; $VISUAL before $EDITOR; an editor command with arguments (run by sh).
        let edit = script(
            d,
            "edit.sh",
            "sed -i 's/\"port\": 80/\"port\": 8080/' \"$1\"",
        );
        let command = format!("sh {}", quote(s(&edit)));
        let out =
            edit_without_terminal(d, &[s(&path)], &[("VISUAL", &command), ("EDITOR", "false")]);
        assert_eq!(out.status.code(), Some(0), "{what}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("enduro: saved"),
            "{what}: {}",
            stderr(&out)
        );
        assert_eq!(atom.refresh().unwrap().port, 8080, "{what}");
    }

    // A migration envelope: edited without it, kept around the new value.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = d.join("m.json");
    fs::write(&path, br#"{"enduro_schema": 1, "value": {"n": 1}}"#).unwrap();
    let editor = script(
        d,
        "editor.sh",
        &format!("{}\nsed -i 's/1/2/' \"$1\"", editor_prelude(d)),
    );
    let out = edit_without_terminal(d, &[s(&path)], &[("EDITOR", s(&editor))]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let seen: Value =
        serde_json::from_str(&fs::read_to_string(d.join("seen-1.json")).unwrap()).unwrap();
    assert_eq!(seen, json!({"n": 1}), "the editor is shown the value only");
    let stored: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    assert_eq!(stored, json!({"enduro_schema": 1, "value": {"n": 2}}));
}
