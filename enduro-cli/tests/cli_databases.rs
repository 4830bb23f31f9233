//! End-to-end tests of the `enduro` command on the database backends, as
//! `/work/notes/cli-spec.md` specifies them: `--pg URL --table T [--key K]`,
//! `--redis URL --key K` and `--sqlite DB --table T [--key K]`.
//!
//! Each case is one function over a [`Db`], run once per backend (the `backend_tests!`
//! macro makes `CASE::pg`, `CASE::redis` and `CASE::sqlite`). Values are written and read
//! back by typed atoms of the library in this process, while the tool runs as a child
//! process (`CARGO_BIN_EXE_enduro`), as a user's shell would run it.
//!
//! Servers: PostgreSQL is `DATABASE_URL`, or one private throwaway cluster for this test
//! binary; Redis one private `redis-server` for this test binary (both through the
//! harnesses of enduro-pg and enduro-redis, which stop them when this process ends).
//! Without a server the PostgreSQL and Redis tests say why and skip, except under
//! `CI=true`, where they fail. SQLite needs nothing: each test has its own temp dir.
//!
//! Every command's stdout and stderr are checked not to show the server's password (nor
//! the wrong password of the error tests). Every child process is bounded in time and
//! killed if it overstays.

// Both harnesses allow dead code themselves (`#![allow(dead_code)]`): a second allow on
// the `mod` line would be a duplicated attribute for clippy.
#[path = "../../enduro-pg/tests/common/pg_cluster.rs"]
mod pg_cluster;
#[allow(clippy::unwrap_used)] // the harness's own `lock().unwrap()`s
#[path = "../../enduro-redis/tests/common/redis_server.rs"]
mod redis_server;

mod common;

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use enduro::{Atom, Codec};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// How long one command may run before the test kills it and fails.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);
/// How long `watch` may take to print a line it owes.
const LINE_TIMEOUT: Duration = Duration::from_secs(30);
/// The table of the PostgreSQL atoms (keys are unique per test).
const PG_TABLE: &str = "enduro_cli_atoms";
/// The table of the SQLite atoms (each test has its own database file).
const SQLITE_TABLE: &str = "atoms";
/// A password that must never show in the tool's output either (the error tests use it).
const WRONG_PASSWORD: &str = "Wr0ng-Pa55word-7f3e9a";

// ---------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Limits {
    low: i64,
    high: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Pump {
    name: String,
    count: u64,
    tags: Vec<String>,
    limits: Limits,
}

fn pump() -> Pump {
    Pump {
        name: "pump \"one\" — ünï".into(),
        count: 3,
        tags: vec!["a".into(), "b".into()],
        limits: Limits { low: -5, high: 10 },
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Counter {
    count: u64,
}

fn as_json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("the value as JSON")
}

// ---------------------------------------------------------------------------------------
// The backends
// ---------------------------------------------------------------------------------------

enum Backend {
    Pg { url: String },
    Redis { url: String, port: u16 },
    Sqlite { db: PathBuf },
}

/// One backend to run a case on: where atoms are, the password that must never show, and
/// (for SQLite) the temp dir holding the database, removed on drop.
struct Db {
    backend: Backend,
    secret: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A name no other test (of this or another process) uses.
fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The password in a `scheme://user:password@host` URL.
fn password_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let userinfo = rest.rsplit_once('@')?.0;
    Some(userinfo.split_once(':')?.1.to_owned()).filter(|p| !p.is_empty())
}

/// `url` (a `scheme://` URL) with its password replaced.
fn with_password(url: &str, password: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let (userinfo, host) = rest.rsplit_once('@').unwrap_or(("postgres", rest));
    let user = userinfo.split(':').next()?;
    Some(format!("{scheme}://{user}:{password}@{host}"))
}

/// A port of 127.0.0.1 nothing listens on (it was free a moment ago).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Db {
    /// PostgreSQL: `DATABASE_URL` or the private cluster; `None` to skip (never under CI).
    fn pg() -> Option<Db> {
        let url = pg_cluster::database_url()?;
        Some(Db {
            secret: password_of(&url),
            backend: Backend::Pg { url },
            _dir: None,
        })
    }

    /// Redis: the private server; `None` to skip (never under CI).
    fn redis() -> Option<Db> {
        let server = redis_server::shared()?;
        Some(Db {
            secret: Some(server.password().to_owned()),
            backend: Backend::Redis {
                url: server.url(0),
                port: server.port(),
            },
            _dir: None,
        })
    }

    /// SQLite: a database file in a temp dir of its own.
    fn sqlite() -> Option<Db> {
        let dir = tempfile::tempdir().expect("a temp dir");
        Some(Db {
            secret: None,
            backend: Backend::Sqlite {
                db: dir.path().join("state.db"),
            },
            _dir: Some(dir),
        })
    }

    fn name(&self) -> &'static str {
        match self.backend {
            Backend::Pg { .. } => "pg",
            Backend::Redis { .. } => "redis",
            Backend::Sqlite { .. } => "sqlite",
        }
    }

    /// A key no other test uses.
    fn fresh_key(&self, what: &str) -> String {
        match self.backend {
            Backend::Redis { .. } => unique(&format!("enduro-cli:{what}")),
            _ => unique(what),
        }
    }

    /// The options that name the atom of `key`.
    fn target(&self, key: &str) -> Vec<OsString> {
        let words: Vec<OsString> = match &self.backend {
            Backend::Pg { url } => vec![
                "--pg".into(),
                url.into(),
                "--table".into(),
                PG_TABLE.into(),
                "--key".into(),
                key.into(),
            ],
            Backend::Redis { url, .. } => {
                vec!["--redis".into(), url.into(), "--key".into(), key.into()]
            }
            Backend::Sqlite { db } => vec![
                "--sqlite".into(),
                db.into(),
                "--table".into(),
                SQLITE_TABLE.into(),
                "--key".into(),
                key.into(),
            ],
        };
        words
    }

    /// What `info` must name for the atom of `key`.
    fn resource_words(&self, key: &str) -> Vec<String> {
        match &self.backend {
            Backend::Pg { .. } => vec![PG_TABLE.into(), key.into()],
            Backend::Redis { .. } => vec![key.into()],
            Backend::Sqlite { db } => {
                vec![db.display().to_string(), SQLITE_TABLE.into(), key.into()]
            }
        }
    }

    /// A typed atom of the library on `key`, with JSON, released (its row or key deleted)
    /// when the test ends.
    fn open<T: enduro::Value>(&self, key: &str, init: T) -> Held<T> {
        Held(self.open_atom(key, init))
    }

    /// A typed atom of the library on `key`, with JSON.
    fn open_atom<T: enduro::Value>(&self, key: &str, init: T) -> Atom<T> {
        let opened = match &self.backend {
            Backend::Pg { url } => enduro::PgAtom::builder(url, PG_TABLE).key(key).open(init),
            Backend::Redis { url, .. } => enduro::RedisAtom::builder(url, key).open(init),
            Backend::Sqlite { db } => enduro::SqliteAtom::builder(db, SQLITE_TABLE)
                .key(key)
                .open(init),
        };
        match opened {
            Ok(atom) => atom,
            Err(e) => panic!("cannot open the typed {} atom `{key}`: {e}", self.name()),
        }
    }

    /// The passwords that must not show in output.
    fn secrets(&self) -> Vec<String> {
        self.secret.iter().cloned().collect()
    }

    /// Runs `enduro SUBCOMMAND <target of key> ARGS...`, checking that no password shows.
    fn run(&self, sub: &str, key: &str, args: &[&str]) -> Run {
        self.run_stdin(sub, key, args, None)
    }

    /// The same, with `stdin` as the command's standard input.
    fn run_stdin(&self, sub: &str, key: &str, args: &[&str], stdin: Option<&str>) -> Run {
        let mut words: Vec<OsString> = vec![sub.into()];
        words.extend(self.target(key));
        words.extend(args.iter().map(OsString::from));
        run(
            cli().args(&words),
            stdin.map(str::as_bytes),
            &self.secrets(),
        )
    }
}

/// A typed atom whose resource is deleted when the test ends (passed or not), so that
/// a shared `DATABASE_URL` keeps no rows of these tests.
struct Held<T: enduro::Value>(Atom<T>);

impl<T: enduro::Value> std::ops::Deref for Held<T> {
    type Target = Atom<T>;

    fn deref(&self) -> &Atom<T> {
        &self.0
    }
}

impl<T: enduro::Value> Drop for Held<T> {
    fn drop(&mut self) {
        if !self.0.is_released() {
            let _ = self.0.release();
        }
    }
}

/// The case `$case` (a `fn(&Db)`) as three tests, `$case::pg`, `$case::redis` and
/// `$case::sqlite` (or the backends listed).
macro_rules! backend_tests {
    ($case:ident) => {
        backend_tests!($case: pg, redis, sqlite);
    };
    ($case:ident: $($backend:ident),+) => {
        mod $case {
            $(
                #[test]
                fn $backend() {
                    if let Some(db) = super::Db::$backend() {
                        super::$case(&db);
                    }
                }
            )+
        }
    };
}

// ---------------------------------------------------------------------------------------
// Running the tool
// ---------------------------------------------------------------------------------------

/// The tool, with no URL inherited from the environment.
fn cli() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_enduro"));
    cmd.env_remove("ENDURO_PG_URL")
        .env_remove("ENDURO_REDIS_URL")
        .env_remove("VISUAL")
        .env_remove("EDITOR");
    cmd
}

/// What a finished command did.
#[derive(Debug)]
struct Run {
    what: String,
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    fn stdout(&self) -> String {
        String::from_utf8(self.stdout.clone())
            .unwrap_or_else(|e| panic!("{}: stdout is not UTF-8: {e}", self.what))
    }

    /// Fails the test unless the command exited with `code`.
    #[track_caller]
    fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "`{}` exited with {:?}, expected {code}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.what,
            self.code,
            String::from_utf8_lossy(&self.stdout),
            self.stderr
        );
        self
    }

    /// Exit 0.
    #[track_caller]
    fn ok(&self) -> &Self {
        self.expect_code(0)
    }

    /// Fails unless the command failed with `code`, printed nothing on stdout, and said
    /// why on stderr as `enduro: error: ...`.
    #[track_caller]
    fn fails(&self, code: i32) -> &Self {
        self.expect_code(code);
        assert!(
            self.stdout.is_empty(),
            "`{}` failed but printed on stdout: {:?}",
            self.what,
            String::from_utf8_lossy(&self.stdout)
        );
        assert!(
            self.stderr.contains("enduro: error:"),
            "`{}` failed without `enduro: error: ...` on stderr: {:?}",
            self.what,
            self.stderr
        );
        self
    }

    /// The stdout, parsed as JSON.
    #[track_caller]
    fn json(&self) -> Value {
        let text = self.stdout();
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("`{}` printed no JSON ({e}): {text:?}", self.what))
    }

    /// The stdout, which must be the pretty JSON of a value (2-space indent, a trailing
    /// newline): the value.
    #[track_caller]
    fn pretty_json(&self) -> Value {
        let text = self.stdout();
        let value = self.json();
        // Compared by length and shape, not text: the key order is not specified.
        let pretty = serde_json::to_string_pretty(&value).expect("pretty JSON");
        let shaped = text.ends_with('\n')
            && !text.ends_with("\n\n")
            && text.len() == pretty.len() + 1
            && text.lines().count() == pretty.lines().count()
            && text
                .lines()
                .zip(pretty.lines())
                .all(|(a, b)| indent(a) == indent(b));
        assert!(
            shaped,
            "`{}` did not print pretty JSON (2-space indent, trailing newline): {text:?}",
            self.what
        );
        value
    }
}

/// How many spaces a line starts with.
fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// `args` with passwords replaced, for messages of this test (never a password either).
fn describe(cmd: &Command, secrets: &[String]) -> String {
    let mut text = String::from("enduro");
    for arg in cmd.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    hide(&text, secrets)
}

fn hide(text: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .fold(text.to_owned(), |t, s| t.replace(s.as_str(), "********"))
}

/// Fails the test if one of `secrets` shows in `text`.
#[track_caller]
fn assert_no_secret(what: &str, text: &str, secrets: &[String]) {
    for secret in secrets {
        assert!(
            !text.contains(secret.as_str()),
            "`{what}` showed the password in its output: {}",
            hide(text, secrets)
        );
    }
}

/// Runs `cmd` to its end (killed and failing the test after [`COMMAND_TIMEOUT`]), with
/// `stdin` as its input (or none), and checks that no password of `secrets` shows in
/// what it printed.
#[track_caller]
fn run(cmd: &mut Command, stdin: Option<&[u8]>, secrets: &[String]) -> Run {
    let what = describe(cmd, secrets);
    let output = common::output_within(cmd, stdin, COMMAND_TIMEOUT)
        .unwrap_or_else(|e| panic!("cannot run `{what}`: {e}"))
        .unwrap_or_else(|| panic!("`{what}` did not end within {COMMAND_TIMEOUT:?}"));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_no_secret(&what, &String::from_utf8_lossy(&output.stdout), secrets);
    assert_no_secret(&what, &stderr, secrets);
    Run {
        what,
        code: output.status.code(),
        stdout: output.stdout,
        stderr,
    }
}

/// Waits until `done` (60 s at most, then fails the test saying `what`).
#[track_caller]
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

/// `enduro watch` running as a child: its stdout lines come through a channel; dropping
/// it kills the process.
struct Watch {
    what: String,
    child: Child,
    lines: Receiver<String>,
    stderr: Arc<Mutex<Vec<u8>>>,
    secrets: Vec<String>,
}

impl Watch {
    fn start(db: &Db, key: &str, args: &[&str]) -> Watch {
        let mut words: Vec<OsString> = vec!["watch".into()];
        words.extend(db.target(key));
        words.extend(args.iter().map(OsString::from));
        let mut cmd = cli();
        cmd.args(&words);
        Self::spawn(cmd, db.secrets())
    }

    fn spawn(mut cmd: Command, secrets: Vec<String>) -> Watch {
        let what = describe(&cmd, &secrets);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `{what}`: {e}"));
        let (send, lines) = mpsc::channel();
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        thread::spawn(move || {
            for line in stdout.lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut pipe = child.stderr.take().expect("stderr");
        let sink = Arc::clone(&stderr);
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink
                        .lock()
                        .expect("stderr buffer")
                        .extend_from_slice(&buf[..n]),
                }
            }
        });
        Watch {
            what,
            child,
            lines,
            stderr,
            secrets,
        }
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().expect("stderr buffer")).into_owned()
    }

    /// The next line (failing the test after [`LINE_TIMEOUT`]), checked for passwords.
    #[track_caller]
    fn next_line(&self, waiting_for: &str) -> String {
        match self.lines.recv_timeout(LINE_TIMEOUT) {
            Ok(line) => {
                assert_no_secret(&self.what, &line, &self.secrets);
                line
            }
            Err(RecvTimeoutError::Timeout) => panic!(
                "`{}` printed no line within {LINE_TIMEOUT:?} (waiting for {waiting_for}); stderr: {}",
                self.what,
                hide(&self.stderr(), &self.secrets)
            ),
            Err(RecvTimeoutError::Disconnected) => panic!(
                "`{}` closed its stdout (waiting for {waiting_for}); stderr: {}",
                self.what,
                hide(&self.stderr(), &self.secrets)
            ),
        }
    }

    /// The next line, which must be `expected` as one compact JSON line.
    #[track_caller]
    fn expect_value(&self, expected: &Value) {
        let line = self.next_line(&expected.to_string());
        let got: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            panic!(
                "`{}` printed a line that is not JSON ({e}): {line:?}",
                self.what
            )
        });
        assert_eq!(&got, expected, "`{}` printed {line:?}", self.what);
        // Compact: as long as serde_json's compact form (the key order is not specified).
        assert_eq!(
            line.len(),
            serde_json::to_string(&got).expect("compact JSON").len(),
            "`{}` printed a value that is not compact JSON: {line:?}",
            self.what
        );
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The line `name: value` of `info`'s output for people, as the spec writes them.
fn info_line<'t>(text: &'t str, name: &str) -> Option<&'t str> {
    text.lines().find_map(|line| {
        let (field, value) = line.split_once(':')?;
        (field.trim() == name).then(|| value.trim())
    })
}

// ---------------------------------------------------------------------------------------
// The cases
// ---------------------------------------------------------------------------------------

/// `get` prints a typed atom's value as pretty JSON; `--at` one part of it, `--compact`
/// one line.
fn get_prints_pretty_json(db: &Db) {
    let key = db.fresh_key("get");
    let atom = db.open(&key, pump());
    assert_eq!(*atom.deref(), pump());
    let got = db.run("get", &key, &[]).ok().pretty_json();
    assert_eq!(got, as_json(&pump()));
    let part = db.run("get", &key, &["--at", "/limits"]).ok().pretty_json();
    assert_eq!(part, json!({"low": -5, "high": 10}));
    let part = db.run("get", &key, &["--at", "/tags/1"]).ok().pretty_json();
    assert_eq!(part, json!("b"));
    let compact = db.run("get", &key, &["--compact"]);
    compact.ok();
    let text = compact.stdout();
    assert_eq!(text.lines().count(), 1, "not one line: {text:?}");
    assert_eq!(compact.json(), as_json(&pump()));
    // Reading changes nothing.
    let before = atom.version();
    assert_eq!(*atom.refresh().expect("refresh"), pump());
    assert_eq!(atom.version(), before, "`get` committed something");
}
backend_tests!(get_prints_pretty_json);

/// `set` replaces the value (from the argument or from stdin with `-`), prints nothing,
/// and the typed atom's `refresh` sees the new value.
fn set_is_seen_by_the_typed_atom(db: &Db) {
    let key = db.fresh_key("set");
    let atom = db.open(&key, pump());
    let before = atom.version();
    let mut new = pump();
    new.name = "pump two".into();
    new.count = 41;
    new.tags = vec![];
    new.limits.high = 1_000;
    let text = serde_json::to_string(&new).expect("JSON");
    let set = db.run("set", &key, &[&text]);
    set.ok();
    assert!(set.stdout.is_empty(), "set printed {:?}", set.stdout());
    assert_eq!(*atom.refresh().expect("refresh"), new);
    assert_ne!(atom.version(), before, "the version did not change");
    assert_eq!(db.run("get", &key, &[]).ok().pretty_json(), as_json(&new));
    // From stdin, pretty JSON over several lines.
    new.count = 42;
    let text = serde_json::to_string_pretty(&new).expect("JSON");
    db.run_stdin("set", &key, &["-"], Some(&text)).ok();
    assert_eq!(*atom.refresh().expect("refresh"), new);
    // The typed atom keeps working on top of it.
    atom.swap(|p| Pump {
        count: p.count + 1,
        ..p.clone()
    })
    .expect("swap after set");
    assert_eq!(
        db.run("get", &key, &["--at", "/count"]).ok().json(),
        json!(43)
    );
}
backend_tests!(set_is_seen_by_the_typed_atom);

/// `set --at POINTER` changes only that part, on the latest value: what the typed atom
/// committed just before is kept. A pointer to nothing: exit 2, nothing written.
fn set_at_changes_one_part(db: &Db) {
    let key = db.fresh_key("set-at");
    let atom = db.open(&key, pump());
    // Another writer's change, just before: `set --at` must keep it.
    atom.swap(|p| Pump {
        tags: vec!["x".into()],
        ..p.clone()
    })
    .expect("swap");
    db.run("set", &key, &["--at", "/count", "42"]).ok();
    let mut expected = pump();
    expected.tags = vec!["x".into()];
    expected.count = 42;
    assert_eq!(*atom.refresh().expect("refresh"), expected);
    db.run("set", &key, &["--at", "/limits/high", "99"]).ok();
    db.run("set", &key, &["--at", "/name", "\"renamed\""]).ok();
    db.run("set", &key, &["--at", "/tags/0", "\"y\""]).ok();
    expected.limits.high = 99;
    expected.name = "renamed".into();
    expected.tags = vec!["y".into()];
    assert_eq!(*atom.refresh().expect("refresh"), expected);
    assert_eq!(
        db.run("get", &key, &[]).ok().pretty_json(),
        as_json(&expected)
    );
    // A pointer that does not exist: exit 2, nothing written.
    let before = atom.version();
    for pointer in ["/nothing/deeper", "/limits/high/deeper", "/tags/7"] {
        db.run("set", &key, &["--at", pointer, "1"]).fails(2);
    }
    assert_eq!(*atom.refresh().expect("refresh"), expected);
    assert_eq!(
        atom.version(),
        before,
        "a refused `set --at` wrote something"
    );
}
backend_tests!(set_at_changes_one_part);

/// `set` of text that is not JSON: exit 2, a message on stderr, the row unchanged.
fn set_invalid_json_changes_nothing(db: &Db) {
    let key = db.fresh_key("invalid");
    let atom = db.open(&key, pump());
    let before = atom.version();
    for text in [
        "{\"name\": ",
        "{name: 1}",
        "[1, 2",
        "nope",
        "{\"a\": 1} trailing",
        "",
    ] {
        let run = db.run("set", &key, &[text]);
        run.fails(2);
    }
    db.run("set", &key, &["--at", "/count", "{oops"]).fails(2);
    db.run_stdin("set", &key, &["-"], Some("{\"count\": 1,"))
        .fails(2);
    assert_eq!(*atom.refresh().expect("refresh"), pump());
    assert_eq!(atom.version(), before, "invalid JSON wrote something");
    assert_eq!(
        db.run("get", &key, &[]).ok().pretty_json(),
        as_json(&pump())
    );
}
backend_tests!(set_invalid_json_changes_nothing);

/// A key with nothing stored: `get`, `set` and `info` exit 3 and create nothing; `set
/// --create` makes it, and a typed atom opened then finds that value.
fn missing_key_exits_3_unless_create(db: &Db) {
    let key = db.fresh_key("missing");
    // Something else stored in the same table (PostgreSQL, SQLite) or server (Redis).
    let neighbour = db.fresh_key("neighbour");
    let _other = db.open(&neighbour, Counter { count: 1 });
    db.run("get", &key, &[]).fails(3);
    db.run("set", &key, &["{\"count\": 5}"]).fails(3);
    db.run("set", &key, &["--at", "/count", "5"]).fails(3);
    db.run("info", &key, &[]).fails(3);
    // Still nothing there.
    db.run("get", &key, &[]).fails(3);
    // A table that does not exist (PostgreSQL, SQLite): no atom there either.
    let table = unique("enduro_cli_no_table").replace('-', "_");
    let place: Option<Vec<OsString>> = match &db.backend {
        Backend::Pg { url } => Some(vec!["--pg".into(), url.into(), "--table".into()]),
        Backend::Sqlite { db } => Some(vec!["--sqlite".into(), db.into(), "--table".into()]),
        Backend::Redis { .. } => None,
    };
    if let Some(place) = place {
        for (sub, extra) in [
            ("get", &[][..]),
            ("set", &["{\"count\": 5}"][..]),
            ("info", &[][..]),
        ] {
            let mut cmd = cli();
            cmd.arg(sub)
                .args(&place)
                .args([table.as_str(), "--key", key.as_str()])
                .args(extra);
            run(&mut cmd, None, &db.secrets()).fails(3);
        }
    }
    // --create makes it.
    let created = db.run("set", &key, &["--create", "{\"count\": 5}"]);
    created.ok();
    assert!(
        created.stdout.is_empty(),
        "set printed {:?}",
        created.stdout()
    );
    assert_eq!(
        db.run("get", &key, &[]).ok().pretty_json(),
        json!({"count": 5})
    );
    let atom = db.open(&key, Counter { count: 0 });
    assert_eq!(
        *atom.deref(),
        Counter { count: 5 },
        "the typed atom used its init"
    );
    // --create on an existing atom just sets it.
    db.run("set", &key, &["--create", "{\"count\": 6}"]).ok();
    assert_eq!(*atom.refresh().expect("refresh"), Counter { count: 6 });
    // The neighbour was never touched.
    assert_eq!(
        db.run("get", &neighbour, &[]).ok().pretty_json(),
        json!({"count": 1})
    );
}
backend_tests!(missing_key_exits_3_unless_create);

/// `info` names the resource and shows the generation the typed atom knows; after a
/// `set`, the new one.
fn info_names_the_resource_and_the_generation(db: &Db) {
    let key = db.fresh_key("info");
    let atom = db.open(&key, pump());
    atom.swap(|p| Pump {
        count: p.count + 1,
        ..p.clone()
    })
    .expect("swap");
    let generation = atom.version().generation;
    let info = db.run("info", &key, &[]);
    info.ok();
    let text = info.stdout();
    for word in db.resource_words(&key) {
        assert!(text.contains(&word), "info does not name {word:?}:\n{text}");
    }
    assert!(
        text.contains(&generation.to_string()),
        "info does not show the generation {generation}:\n{text}"
    );
    assert!(
        text.to_lowercase().contains("json"),
        "info does not show the format:\n{text}"
    );
    // --json: one object, with the generation as a number (what the field is called is
    // checked by `info_fields_are_named_as_in_the_spec`).
    let object = db.run("info", &key, &["--json"]).ok().json();
    assert!(object.is_object(), "info --json printed {object}");
    assert!(
        has_number(&object, generation),
        "info --json does not show the generation {generation}: {object}"
    );
    let all = object.to_string();
    for word in db.resource_words(&key) {
        let word = serde_json::to_string(&word).expect("JSON string");
        let word = word.trim_matches('"');
        assert!(
            all.contains(word),
            "info --json does not name {word:?}: {all}"
        );
    }
    // After a set: the new generation.
    db.run("set", &key, &["--at", "/count", "100"]).ok();
    atom.refresh().expect("refresh");
    let after = atom.version().generation;
    assert_ne!(after, generation, "the generation did not change");
    let object = db.run("info", &key, &["--json"]).ok().json();
    assert!(
        has_number(&object, after),
        "info --json after a set does not show the generation {after}: {object}"
    );
    assert!(
        db.run("info", &key, &[])
            .ok()
            .stdout()
            .contains(&after.to_string())
    );
}
backend_tests!(info_names_the_resource_and_the_generation);

/// Whether one of the top-level fields of `object` is the number `n`.
fn has_number(object: &Value, n: u64) -> bool {
    object
        .as_object()
        .is_some_and(|fields| fields.values().any(|v| v.as_u64() == Some(n)))
}

/// The fields of `info` as the spec names them: for people, `name: value` lines, with
/// `format: json` and `generation: N` among them; with `--json`, an object with
/// `"generation": N`.
fn info_fields_are_named_as_in_the_spec(db: &Db) {
    let key = db.fresh_key("info-lines");
    let atom = db.open(&key, Counter { count: 1 });
    let generation = atom.version().generation;
    let info = db.run("info", &key, &[]);
    info.ok();
    let text = info.stdout();
    assert_eq!(
        info_line(&text, "format").map(str::to_lowercase).as_deref(),
        Some("json"),
        "no `format: json` line:\n{text}"
    );
    assert_eq!(
        info_line(&text, "generation"),
        Some(generation.to_string().as_str()),
        "no `generation: {generation}` line:\n{text}"
    );
    let object = db.run("info", &key, &["--json"]).ok().json();
    assert_eq!(
        object.get("generation").and_then(Value::as_u64),
        Some(generation),
        "info --json has no \"generation\": {generation}: {object}"
    );
}
backend_tests!(info_fields_are_named_as_in_the_spec);

/// `compact` on a database atom: exit 2 (nothing to compact), nothing changed.
fn compact_exits_2(db: &Db) {
    let key = db.fresh_key("compact");
    let atom = db.open(&key, Counter { count: 7 });
    let before = atom.version();
    let run = db.run("compact", &key, &[]);
    run.expect_code(2);
    assert!(
        run.stderr.contains("enduro: error:"),
        "no message: {:?}",
        run.stderr
    );
    assert_eq!(*atom.refresh().expect("refresh"), Counter { count: 7 });
    assert_eq!(atom.version(), before);
}
backend_tests!(compact_exits_2);

/// `watch` prints the current value as one compact line, then one line per change the
/// typed atom commits, and ends with exit 0 when the atom is released.
fn watch_prints_each_change(db: &Db) {
    let key = db.fresh_key("watch");
    let atom = db.open(&key, pump());
    let mut watch = Watch::start(db, &key, &[]);
    watch.expect_value(&as_json(&pump()));
    for count in [10, 11, 12] {
        thread::sleep(Duration::from_millis(200));
        let new = atom.swap(|p| Pump { count, ..p.clone() }).expect("swap");
        watch.expect_value(&as_json(&*new));
    }
    thread::sleep(Duration::from_millis(200));
    let new = atom
        .swap(|p| Pump {
            tags: vec!["done".into()],
            ..p.clone()
        })
        .expect("swap");
    watch.expect_value(&as_json(&*new));
    // Released: the watch ends, with exit 0.
    atom.release().expect("release");
    let status = common::wait_within(&mut watch.child, Duration::from_secs(30));
    let stderr = watch.stderr();
    assert_no_secret(&watch.what, &stderr, &watch.secrets);
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "`{}` did not end with 0 after the release (stderr: {stderr})",
        watch.what
    );
    // Nothing more was printed (the reader ends at the end of the stream).
    if let Ok(extra) = watch.lines.recv_timeout(Duration::from_secs(10)) {
        panic!("`{}` printed an extra line: {extra:?}", watch.what);
    }
}
backend_tests!(watch_prints_each_change);

/// A `set` while a typed atom in another thread swaps `+1` 200 times loses nothing: the
/// final count is 1,000,000 plus the increments made on top of it.
fn set_during_swaps_loses_none(db: &Db) {
    const BIG: u64 = 1_000_000;
    let key = db.fresh_key("race");
    let atom = db.open(&key, Counter { count: 0 });
    let progress = Arc::new(AtomicUsize::new(0));
    let set_done = Arc::new(AtomicBool::new(false));
    let worker = {
        let atom = atom.clone();
        let progress = Arc::clone(&progress);
        let set_done = Arc::clone(&set_done);
        thread::spawn(move || {
            let mut on_top = 0u64;
            for i in 0..200 {
                if i == 190 {
                    // So that the set surely lands between the 100th and the 190th swap.
                    let deadline = Instant::now() + COMMAND_TIMEOUT;
                    while !set_done.load(Ordering::SeqCst) {
                        assert!(Instant::now() < deadline, "the set never ended");
                        thread::sleep(Duration::from_millis(5));
                    }
                }
                let (old, new) = atom
                    .swap_vals(|c| Counter { count: c.count + 1 })
                    .expect("swap");
                assert_eq!(new.count, old.count + 1);
                if old.count >= BIG {
                    on_top += 1;
                }
                progress.store(i + 1, Ordering::SeqCst);
                if (100..190).contains(&i) {
                    // Slower while the set runs, so that its commit likely races with
                    // swaps (its process needs a moment to start and connect).
                    thread::sleep(Duration::from_millis(2));
                }
            }
            on_top
        })
    };
    eventually("100 swaps", || {
        progress.load(Ordering::SeqCst) >= 100 || worker.is_finished()
    });
    let set = db.run("set", &key, &[&format!("{{\"count\": {BIG}}}")]);
    set_done.store(true, Ordering::SeqCst);
    let on_top = worker.join().expect("the swapping thread");
    set.ok();
    eprintln!(
        "{}: {on_top} of the 200 swaps came after the set",
        db.name()
    );
    assert!(
        (10..=100).contains(&on_top),
        "{on_top} swaps after the set: it did not land mid-way"
    );
    let expected = BIG + on_top;
    assert_eq!(atom.refresh().expect("refresh").count, expected);
    let fresh = db.open_atom(&key, Counter { count: 0 });
    assert_eq!(fresh.deref().count, expected);
    assert_eq!(
        db.run("get", &key, &["--at", "/count"]).ok().json(),
        json!(expected)
    );
}
backend_tests!(set_during_swaps_loses_none);

/// Usage errors exit 2 and never show the password: `--pg` without `--table`, `--redis`
/// without `--key`, two backends at once, `--format postcard`.
fn usage_errors_exit_2(db: &Db) {
    let key = db.fresh_key("usage");
    let atom = db.open(&key, Counter { count: 1 });
    let pg_url = format!("postgres://app:{WRONG_PASSWORD}@127.0.0.1:1/app");
    let redis_url = format!("redis://:{WRONG_PASSWORD}@127.0.0.1:1/0");
    let mut secrets = db.secrets();
    secrets.push(WRONG_PASSWORD.to_owned());
    let usage = |args: &[OsString]| {
        let run = run(cli().args(args), None, &secrets);
        run.expect_code(2);
        assert!(
            run.stdout.is_empty(),
            "{}: printed {:?}",
            run.what,
            run.stdout()
        );
        assert!(!run.stderr.is_empty(), "{}: no message", run.what);
    };
    let os = |words: &[&str]| words.iter().map(OsString::from).collect::<Vec<_>>();
    usage(&os(&["get", "--pg", &pg_url]));
    usage(&os(&["get", "--pg", &pg_url, "--key", "k"]));
    usage(&os(&["get", "--redis", &redis_url]));
    usage(&os(&["get", "--sqlite", "/nonexistent/x.db"]));
    usage(&os(&[
        "get", "--pg", &pg_url, "--table", "t", "--redis", &redis_url, "--key", "k",
    ]));
    // Two places: this backend's atom and another.
    let mut both: Vec<OsString> = vec!["get".into()];
    both.extend(db.target(&key));
    match db.backend {
        Backend::Sqlite { .. } => both.extend(os(&["--redis", &redis_url])),
        _ => both.extend(os(&["--sqlite", "/nonexistent/x.db"])),
    }
    usage(&both);
    // postcard is refused: not self-describing.
    let mut postcard: Vec<OsString> = vec!["get".into()];
    postcard.extend(db.target(&key));
    postcard.extend(os(&["--format", "postcard"]));
    usage(&postcard);
    let mut postcard: Vec<OsString> = vec!["set".into()];
    postcard.extend(db.target(&key));
    postcard.extend(os(&["--format", "postcard", "{\"count\": 2}"]));
    usage(&postcard);
    // Nothing of this touched the atom.
    let before = atom.version();
    assert_eq!(*atom.refresh().expect("refresh"), Counter { count: 1 });
    assert_eq!(atom.version(), before);
}
backend_tests!(usage_errors_exit_2);

/// A wrong password and a server nobody listens on: every command exits 1 (compact 2)
/// with a clear message, which never shows the password.
fn wrong_password_and_unreachable_server_exit_1(db: &Db) {
    let key = db.fresh_key("wrong");
    let atom = db.open(&key, Counter { count: 1 });
    let (wrong_url, unreachable_url) = match &db.backend {
        Backend::Pg { url } => {
            let Some(wrong) = with_password(url, WRONG_PASSWORD) else {
                eprintln!("skipping: DATABASE_URL is not a URL whose password can be changed");
                return;
            };
            let port = closed_port();
            (
                wrong,
                format!("postgres://postgres:{WRONG_PASSWORD}@127.0.0.1:{port}/postgres"),
            )
        }
        Backend::Redis { port, .. } => (
            format!("redis://:{WRONG_PASSWORD}@127.0.0.1:{port}/0"),
            format!("redis://:{WRONG_PASSWORD}@127.0.0.1:{}/0", closed_port()),
        ),
        Backend::Sqlite { .. } => unreachable!("no passwords in SQLite"),
    };
    let option = match db.backend {
        Backend::Pg { .. } => ["--pg", "--table", PG_TABLE],
        _ => ["--redis", "", ""],
    };
    let mut secrets = db.secrets();
    secrets.push(WRONG_PASSWORD.to_owned());
    for (url, why) in [
        (&wrong_url, &["password", "auth", "credential"][..]),
        (&unreachable_url, &["connect", "refused", "reach"][..]),
    ] {
        for (sub, extra) in [
            ("get", &[][..]),
            ("set", &["{\"count\": 2}"][..]),
            ("set", &["--create", "{\"count\": 2}"][..]),
            ("set", &["--at", "/count", "2"][..]),
            ("info", &[][..]),
            ("info", &["--json"][..]),
            ("watch", &[][..]),
            ("compact", &[][..]),
        ] {
            let mut cmd = cli();
            cmd.arg(sub).args([option[0], url.as_str()]);
            if !option[1].is_empty() {
                cmd.args([option[1], option[2]]);
            }
            cmd.args(["--key", key.as_str()]).args(extra);
            let run = run(&mut cmd, None, &secrets);
            if sub == "compact" {
                run.expect_code(2);
                continue;
            }
            run.fails(1);
            let message = run.stderr.to_lowercase();
            assert!(
                why.iter().any(|w| message.contains(w)),
                "`{}`: the message does not say why (one of {why:?}): {}",
                run.what,
                run.stderr
            );
            assert!(
                message.contains("127.0.0.1") || message.contains(&key.to_lowercase()),
                "`{}`: the message does not say where: {}",
                run.what,
                run.stderr
            );
        }
    }
    // The same, with the URL from the environment.
    let env = match db.backend {
        Backend::Pg { .. } => "ENDURO_PG_URL",
        _ => "ENDURO_REDIS_URL",
    };
    let mut cmd = cli();
    cmd.env(env, &wrong_url).arg("get");
    if !option[1].is_empty() {
        cmd.args([option[1], option[2]]);
    }
    cmd.args(["--key", key.as_str()]);
    run(&mut cmd, None, &secrets).fails(1);
    // Nothing changed.
    let before = atom.version();
    assert_eq!(*atom.refresh().expect("refresh"), Counter { count: 1 });
    assert_eq!(atom.version(), before);
}
backend_tests!(wrong_password_and_unreachable_server_exit_1: pg, redis);

/// `ENDURO_PG_URL` / `ENDURO_REDIS_URL` in place of `--pg` / `--redis`.
fn url_from_the_environment(db: &Db) {
    let key = db.fresh_key("env");
    let atom = db.open(&key, pump());
    let (env, url, rest): (&str, &str, Vec<&str>) = match &db.backend {
        Backend::Pg { url } => (
            "ENDURO_PG_URL",
            url,
            vec!["--table", PG_TABLE, "--key", &key],
        ),
        Backend::Redis { url, .. } => ("ENDURO_REDIS_URL", url, vec!["--key", &key]),
        Backend::Sqlite { .. } => unreachable!("SQLite has no URL"),
    };
    let secrets = db.secrets();
    let with_env = |sub: &str, extra: &[&str], stdin: Option<&str>| {
        let mut cmd = cli();
        cmd.env(env, url).arg(sub).args(&rest).args(extra);
        run(&mut cmd, stdin.map(str::as_bytes), &secrets)
    };
    assert_eq!(
        with_env("get", &[], None).ok().pretty_json(),
        as_json(&pump())
    );
    with_env("set", &["--at", "/count", "77"], None).ok();
    assert_eq!(atom.refresh().expect("refresh").count, 77);
    let mut new = pump();
    new.name = "from the environment".into();
    let text = serde_json::to_string(&new).expect("JSON");
    with_env("set", &["-"], Some(&text)).ok();
    assert_eq!(*atom.refresh().expect("refresh"), new);
    let info = with_env("info", &[], None);
    info.ok();
    assert!(info.stdout().contains(&key), "{}", info.stdout());
    // A watch too.
    let mut cmd = cli();
    cmd.env(env, url).arg("watch").args(&rest);
    let watch = Watch::spawn(cmd, secrets.clone());
    watch.expect_value(&as_json(&new));
    thread::sleep(Duration::from_millis(200));
    let newer = atom
        .swap(|p| Pump {
            count: 78,
            ..p.clone()
        })
        .expect("swap");
    watch.expect_value(&as_json(&*newer));
    drop(watch);
    // A missing key through the environment: exit 3 as with the option.
    let mut cmd = cli();
    let missing = db.fresh_key("env-missing");
    cmd.env(env, url).arg("get");
    match db.backend {
        Backend::Pg { .. } => cmd.args(["--table", PG_TABLE, "--key", &missing]),
        _ => cmd.args(["--key", &missing]),
    };
    run(&mut cmd, None, &secrets).fails(3);
}
backend_tests!(url_from_the_environment: pg, redis);

/// Without `--key`, PostgreSQL and SQLite atoms are the row `default`, as the library's.
fn key_defaults_to_default(db: &Db) {
    let table = unique("enduro_cli_default").replace('-', "_");
    let (atom, target): (Atom<Counter>, Vec<OsString>) = match &db.backend {
        Backend::Pg { url } => (
            enduro::PgAtom::builder(url, &table)
                .drop_table_on_release(true)
                .open(Counter { count: 9 })
                .expect("a PostgreSQL atom"),
            vec![
                "--pg".into(),
                url.into(),
                "--table".into(),
                table.clone().into(),
            ],
        ),
        Backend::Sqlite { db } => (
            enduro::SqliteAtom::builder(db, &table)
                .open(Counter { count: 9 })
                .expect("a SQLite atom"),
            vec![
                "--sqlite".into(),
                db.into(),
                "--table".into(),
                table.clone().into(),
            ],
        ),
        Backend::Redis { .. } => unreachable!("Redis needs --key"),
    };
    let atom = Held(atom);
    let secrets = db.secrets();
    let got = run(cli().arg("get").args(&target), None, &secrets);
    assert_eq!(got.ok().pretty_json(), json!({"count": 9}));
    run(
        cli().arg("set").args(&target).arg("{\"count\": 10}"),
        None,
        &secrets,
    )
    .ok();
    assert_eq!(*atom.refresh().expect("refresh"), Counter { count: 10 });
    let with_key = run(
        cli().arg("get").args(&target).args(["--key", "default"]),
        None,
        &secrets,
    );
    assert_eq!(with_key.ok().pretty_json(), json!({"count": 10}));
}
backend_tests!(key_defaults_to_default: pg, sqlite);

// ---------------------------------------------------------------------------------------
// SQLite only
// ---------------------------------------------------------------------------------------

fn sqlite_db(db: &Db) -> &Path {
    match &db.backend {
        Backend::Sqlite { db } => db,
        _ => unreachable!("a SQLite case"),
    }
}

/// A row stored in CBOR by a typed atom: `--format cbor` reads it as JSON, `--raw` gives
/// the CBOR bytes, `set --format cbor` writes CBOR the typed atom reads; read as JSON (the
/// default), it is undecodable: exit 1, nothing changed.
#[test]
fn sqlite_cbor_row() {
    let db = Db::sqlite().expect("SQLite");
    let path = sqlite_db(&db);
    let key = db.fresh_key("cbor");
    let atom = enduro::SqliteAtom::builder(path, SQLITE_TABLE)
        .key(key.as_str())
        .codec(enduro::Cbor)
        .open(pump())
        .expect("a CBOR atom");
    let atom = Held(atom);
    let cbor = ["--format", "cbor"];
    assert_eq!(
        db.run("get", &key, &cbor).ok().pretty_json(),
        as_json(&pump())
    );
    // The stored bytes, as stored.
    let raw = db.run("get", &key, &["--format", "cbor", "--raw"]);
    raw.ok();
    let decoded: Pump = enduro::Cbor
        .decode(&raw.stdout)
        .expect("--raw printed CBOR");
    assert_eq!(decoded, pump());
    // Read as JSON: it does not decode.
    let before = atom.version();
    db.run("get", &key, &[]).fails(1);
    db.run("set", &key, &["--at", "/count", "1"]).fails(1);
    assert_eq!(*atom.refresh().expect("refresh"), pump());
    assert_eq!(
        atom.version(),
        before,
        "an undecodable row was written over"
    );
    // Set in CBOR.
    let mut new = pump();
    new.name = "cbor two".into();
    new.tags = vec!["c".into()];
    let text = serde_json::to_string(&new).expect("JSON");
    db.run("set", &key, &["--format", "cbor", &text]).ok();
    assert_eq!(*atom.refresh().expect("refresh"), new);
    db.run("set", &key, &["--format", "cbor", "--at", "/count", "8"])
        .ok();
    new.count = 8;
    assert_eq!(*atom.refresh().expect("refresh"), new);
    assert_eq!(db.run("get", &key, &cbor).ok().pretty_json(), as_json(&new));
    // Invalid JSON: exit 2, unchanged.
    let before = atom.version();
    db.run("set", &key, &["--format", "cbor", "{oops"]).fails(2);
    assert_eq!(atom.version(), before);
    // A watch of a CBOR row prints JSON lines.
    let watch = Watch::start(&db, &key, &cbor);
    watch.expect_value(&as_json(&new));
    thread::sleep(Duration::from_millis(200));
    let newer = atom
        .swap(|p| Pump {
            count: 9,
            ..p.clone()
        })
        .expect("swap");
    watch.expect_value(&as_json(&*newer));
    drop(watch);
    // info names the format.
    let info = db.run("info", &key, &cbor);
    info.ok();
    assert!(
        info.stdout().to_lowercase().contains("cbor"),
        "{}",
        info.stdout()
    );
}

/// A database file that does not exist: exit 3, and no file is created.
#[test]
fn sqlite_missing_database_file_exits_3_and_creates_nothing() {
    let db = Db::sqlite().expect("SQLite");
    let path = sqlite_db(&db);
    let key = db.fresh_key("no-db");
    db.run("get", &key, &[]).fails(3);
    db.run("set", &key, &["{\"count\": 1}"]).fails(3);
    db.run("info", &key, &[]).fails(3);
    let parent = path.parent().expect("a parent");
    let left: Vec<_> = std::fs::read_dir(parent)
        .expect("the temp dir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "files were created: {left:?}");
    // --create makes it.
    db.run("set", &key, &["--create", "{\"count\": 1}"]).ok();
    let atom = db.open(&key, Counter { count: 0 });
    assert_eq!(*atom.deref(), Counter { count: 1 });
}

/// A file that is not a SQLite database: exit 1 with a message, the file left byte for
/// byte as it was.
#[test]
fn sqlite_not_a_database_exits_1_and_is_left_alone() {
    let db = Db::sqlite().expect("SQLite");
    let path = sqlite_db(&db);
    let content = b"this is not a SQLite database, just some text\n".repeat(100);
    std::fs::write(path, &content).expect("write");
    let key = db.fresh_key("not-db");
    db.run("get", &key, &[]).fails(1);
    db.run("set", &key, &["{\"count\": 1}"]).fails(1);
    db.run("set", &key, &["--create", "{\"count\": 1}"])
        .fails(1);
    db.run("info", &key, &[]).fails(1);
    assert_eq!(std::fs::read(path).expect("read"), content);
}
