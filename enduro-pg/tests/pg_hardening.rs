//! PostgreSQL hardening: per-session (temporary) tables refused, a version column at
//! i64::MAX wrapping instead of sticking, a column type altered under running atoms, a
//! commit whose answer is lost reported as one that may have been stored, and timeouts (a
//! row locked by another session, a backend stopped with SIGSTOP) ending swaps with the
//! right error instead of blocking them forever.
//!
//! The tests that hold locks, stop or terminate backends use a private cluster each.
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

mod common;

use common::pg_cluster::{database_url, private_cluster};
use common::{assert_no_secret, commit, password_of, unique_key};
use enduro_core::{Committed, Error, Store, Version};
use enduro_pg::{BlockingPgStore, PgAtom, PgStore};

/// Plain SQL beside enduro, on a pool of its own whose runtime keeps the connections
/// alive between calls. With `max_connections(1)` it is one session, so a transaction
/// begun by one call is still open for the next.
struct Admin {
    runtime: tokio::runtime::Runtime,
    store: PgStore,
}

impl Admin {
    fn new(url: &str, connections: usize) -> Admin {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let store = runtime
            .block_on(
                PgStore::builder(url, "enduro_hardening_admin")
                    .max_connections(connections)
                    .open(),
            )
            .unwrap();
        Admin { runtime, store }
    }

    /// Runs `sql` (one or more statements, no parameters).
    fn execute(&self, sql: &str) {
        self.runtime.block_on(async {
            let client = self.store.pool().get().await.unwrap();
            client
                .batch_execute(sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        })
    }

    /// The first column of the first row of `sql`, as text (NULL: `None`).
    fn text(&self, sql: &str) -> Option<String> {
        self.runtime.block_on(async {
            let client = self.store.pool().get().await.unwrap();
            let rows = client
                .query(sql, &[])
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
            rows.first().and_then(|row| row.get::<_, Option<String>>(0))
        })
    }

    /// The process ids of the server backends whose application_name is `name`.
    fn pids(&self, name: &str) -> Vec<i32> {
        self.runtime.block_on(async {
            let client = self.store.pool().get().await.unwrap();
            client
                .query(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
                    &[&name],
                )
                .await
                .unwrap()
                .iter()
                .map(|row| row.get(0))
                .collect()
        })
    }

    /// Whether a backend named `name` waits for a lock.
    fn waits_for_lock(&self, name: &str) -> bool {
        self.text(&format!(
            "SELECT count(*)::text FROM pg_stat_activity \
             WHERE application_name = '{name}' AND wait_event_type = 'Lock'"
        ))
        .as_deref()
            != Some("0")
    }

    fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }
}

/// A blocking store on `table` over one connection whose `application_name` is the table's
/// name (so tests can find its server backend), with `timeout` as its statement timeout
/// (the default if `None`); and the URL it connects with.
fn one_session(
    cluster_url: &str,
    table: &str,
    timeout: Option<Duration>,
) -> (String, Arc<BlockingPgStore>) {
    let url = with_param(cluster_url, &format!("application_name={table}"));
    let mut builder = PgStore::builder(&url, table).max_connections(1);
    if let Some(timeout) = timeout {
        builder = builder.statement_timeout(timeout);
    }
    let store = Arc::new(builder.open_blocking().unwrap());
    (url, store)
}

/// `url` with one more query parameter (the private cluster's URL has none).
fn with_param(url: &str, param: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{param}")
}

/// A server backend stopped with SIGSTOP, continued (SIGCONT) when dropped, whatever
/// happens to the test, so that the cluster can always shut down.
struct Stopped(i32);

impl Stopped {
    fn new(pid: i32) -> Stopped {
        signal("-STOP", pid);
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        signal("-CONT", self.0);
    }
}

fn signal(which: &str, pid: i32) {
    let status = Command::new("kill")
        .args([which, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {which} {pid}");
}

/// Runs `f` on a thread of its own and waits at most `bound` for it; `None` if it did not
/// return in time (the thread is left to finish once the test unblocks it).
fn within<R: Send + 'static>(bound: Duration, f: impl FnOnce() -> R + Send + 'static) -> Option<R> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(bound).ok()
}

/// `n` swaps of `+1`, each on a thread of its own, and their results, if they all end
/// within `bound`.
fn swaps_within(
    atom: &enduro::Atom<u64>,
    n: usize,
    bound: Duration,
) -> Option<Vec<enduro::Result<Arc<u64>>>> {
    let swaps: Vec<_> = (0..n)
        .map(|_| {
            let atom = atom.clone();
            thread::spawn(move || atom.swap(|n| n + 1))
        })
        .collect();
    within(bound, move || {
        swaps.into_iter().map(|swap| swap.join().unwrap()).collect()
    })
}

/// Polls `done` until it holds or `bound` passes; whether it held.
fn eventually(bound: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < bound {
        if done() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    done()
}

fn bytes(text: &str) -> Vec<u8> {
    text.as_bytes().to_vec()
}

// ---------------------------------------------------------------------------------------
// Per-session tables.

#[test]
fn temporary_schemas_are_refused_by_name() {
    let Some(url) = database_url() else { return };
    for name in [
        "pg_temp.enduro_t",
        "pg_temp_3.enduro_t",
        "PG_TEMP.enduro_t",
        "Pg_Temp_12.enduro_t",
        "pg_toast_temp_1.enduro_t",
    ] {
        let e = PgAtom::builder(&url, name).open(0u64).unwrap_err();
        assert!(
            e.to_string().contains("temporary table"),
            "{name:?} was not refused as a temporary table: {e}"
        );
    }
    // A table merely named like one is fine.
    let atom = PgAtom::builder(&url, "public.pg_temp")
        .key(unique_key("temp-name"))
        .open(1u64)
        .unwrap();
    atom.release().unwrap();
}

#[test]
fn a_name_shadowed_by_a_temporary_table_is_refused() {
    let Some(url) = database_url() else { return };
    // A pool of one connection that has its own temporary table of that name.
    let name = format!("enduro_shadowed_{}", std::process::id());
    let session = Admin::new(&url, 1);
    session.execute(&format!(
        "CREATE TEMP TABLE {name} (key text PRIMARY KEY, value text NOT NULL, \
         version bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())"
    ));
    let pool = session.store.pool().clone();
    let e = PgAtom::with_pool(pool, &name).open(0u64).unwrap_err();
    assert!(e.to_string().contains("temporary table"), "{e}");
}

#[test]
fn a_search_path_with_pg_temp_first_is_refused() {
    let Some(url) = database_url() else { return };
    // With pg_temp first in search_path, CREATE TABLE of an unqualified name creates a
    // temporary table, one per connection.
    let name = format!("enduro_temp_path_{}", std::process::id());
    let url = with_param(&url, "options=-c%20search_path%3Dpg_temp%2Cpublic");
    let e = PgAtom::builder(&url, &name).open(0u64).unwrap_err();
    assert!(e.to_string().contains("temporary table"), "{e}");
}

// ---------------------------------------------------------------------------------------
// Versions.

#[test]
fn a_version_at_i64_max_wraps_instead_of_sticking() {
    let Some(url) = database_url() else { return };
    let table = "enduro_version_wrap";
    let key = unique_key("wrap");
    let atom = PgAtom::builder(&url, table)
        .key(key.as_str())
        .open(1u64)
        .unwrap();
    let admin = Admin::new(&url, 1);
    admin.execute(&format!(
        "UPDATE {table} SET value = '10', version = 9223372036854775807 WHERE key = '{key}'"
    ));
    // A conflict, a reload at i64::MAX, then the commit that must wrap.
    assert_eq!(*atom.swap(|n| n + 1).unwrap(), 11);
    let version = |admin: &Admin| {
        admin
            .text(&format!(
                "SELECT version::text FROM {table} WHERE key = '{key}'"
            ))
            .unwrap()
    };
    assert_eq!(version(&admin), i64::MIN.to_string());
    assert_eq!(atom.version().generation, i64::MIN as u64);
    // The wrapped version checks as unchanged, and commits go on from there.
    assert_eq!(*atom.refresh().unwrap(), 11);
    assert_eq!(*atom.swap(|n| n + 1).unwrap(), 12);
    assert_eq!(version(&admin), (i64::MIN + 1).to_string());
    // Another handle reads and writes the same row.
    let other = PgAtom::builder(&url, table)
        .key(key.as_str())
        .open(0u64)
        .unwrap();
    assert_eq!(*other.deref(), 12);
    assert_eq!(*other.swap(|n| n + 1).unwrap(), 13);
    assert_eq!(*atom.refresh().unwrap(), 13);
    atom.release().unwrap();
}

// ---------------------------------------------------------------------------------------
// A column type changed under running atoms.

#[test]
fn an_altered_value_column_type_is_recovered() {
    let Some(url) = database_url() else { return };
    let table = format!("enduro_altered_{}", std::process::id());
    let key = "a";
    // One connection, so every statement below runs on the one that cached the plans.
    let atom = PgAtom::builder(&url, &table)
        .key(key)
        .max_connections(1)
        .open(1u64)
        .unwrap();
    assert_eq!(*atom.swap(|n| n + 1).unwrap(), 2);
    assert_eq!(*atom.refresh().unwrap(), 2);
    let admin = Admin::new(&url, 1);
    admin.execute(&format!(
        "ALTER TABLE {table} ALTER COLUMN value TYPE varchar"
    ));
    // The check (refresh) and the load (after a conflict) have stale cached plans.
    assert_eq!(*atom.refresh().unwrap(), 2);
    admin.execute(&format!(
        "UPDATE {table} SET value = '5', version = version + 1 WHERE key = '{key}'"
    ));
    assert_eq!(*atom.swap(|n| n + 1).unwrap(), 6);
    // A bigger change of the result type, in the other direction.
    admin.execute(&format!("ALTER TABLE {table} ALTER COLUMN value TYPE text"));
    admin.execute(&format!(
        "UPDATE {table} SET value = '9', version = version + 1 WHERE key = '{key}'"
    ));
    assert_eq!(*atom.refresh().unwrap(), 9);
    assert_eq!(*atom.swap(|n| n + 1).unwrap(), 10);
    let reopened = PgAtom::builder(&url, &table).key(key).open(0u64).unwrap();
    assert_eq!(*reopened.deref(), 10);
    admin.execute(&format!("DROP TABLE {table}"));
}

// ---------------------------------------------------------------------------------------
// Error kinds.

#[test]
fn a_commit_whose_backend_is_terminated_may_have_been_stored() {
    let Some(cluster) = private_cluster() else {
        return;
    };
    let (table, name) = ("enduro_terminated", "enduro_terminated");
    let (_, store) = one_session(&cluster.url(), name, None);
    let admin = Admin::new(&cluster.url(), 2);
    let Committed::Done(version) = commit(&store, Version::ABSENT, "1").unwrap() else {
        panic!("the first insert conflicted");
    };
    // Another session holds the row, so the UPDATE waits; then its backend is terminated
    // (FATAL, SQL state 57P01), which the server may also do after a commit.
    let locker = Admin::new(&cluster.url(), 1);
    locker.execute(&format!(
        "BEGIN; SELECT 1 FROM {table} WHERE key = 'default' FOR UPDATE"
    ));
    let waiting = {
        let store = Arc::clone(&store);
        thread::spawn(move || commit(&store, version, "2"))
    };
    assert!(
        eventually(Duration::from_secs(20), || admin.waits_for_lock(name)),
        "the commit never waited for the row lock"
    );
    admin.execute(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{name}'"
    ));
    let result = within(Duration::from_secs(20), move || waiting.join().unwrap());
    locker.execute("COMMIT");
    let e = result.expect("the commit did not return").unwrap_err();
    assert!(e.may_have_been_stored(), "{e}");
    assert!(e.to_string().contains("update the row"), "{e}");
    // The next call takes a new connection, and the row is as it was.
    let stored = store.load().unwrap().unwrap();
    assert_eq!(stored.bytes, bytes("1"));
    assert_eq!(stored.version, version);
}

// ---------------------------------------------------------------------------------------
// Timeouts.

/// The statement timeout of the timeout tests.
const TIMEOUT: Duration = Duration::from_secs(2);

#[test]
fn a_locked_row_ends_the_swap_with_a_clear_error_instead_of_hanging() {
    let Some(cluster) = private_cluster() else {
        return;
    };
    let url = cluster.url();
    let table = "enduro_locked";
    let atom = PgAtom::builder(&url, table)
        .statement_timeout(TIMEOUT)
        .open(1u64)
        .unwrap();
    // Another session's open transaction holds the row.
    let locker = Admin::new(&url, 1);
    locker.execute(&format!(
        "BEGIN; SELECT 1 FROM {table} WHERE key = 'default' FOR UPDATE"
    ));
    // A swap, and swaps queued behind it.
    let results = swaps_within(&atom, 3, TIMEOUT * 3 * 3);
    locker.execute("COMMIT");
    let results = results.expect("swaps still waited for the locked row after 9 timeouts");
    for result in results {
        let e = result.unwrap_err();
        // The server's lock_timeout ended it: a definite error, nothing written.
        assert!(matches!(e, Error::Backend { .. }), "{e:?}");
        let text = e.to_string();
        assert!(
            text.contains("locked by another session's open transaction"),
            "{text}"
        );
        assert!(text.contains("55P03"), "{text}");
        assert!(text.contains("nothing was written"), "{text}");
        assert_no_secret(&e, &password_of(&url).unwrap());
    }
    assert_eq!(*atom.deref(), 1);
    // The lock gone, the atom goes on.
    assert_eq!(*atom.swap(|n| n + 1).unwrap(), 2);
    assert_eq!(*atom.refresh().unwrap(), 2);
}

#[test]
fn without_server_limits_the_client_timeout_cancels_the_statement() {
    let Some(cluster) = private_cluster() else {
        return;
    };
    let (table, name) = ("enduro_cancelled", "enduro_cancelled");
    let (_, store) = one_session(&cluster.url(), name, Some(TIMEOUT));
    let admin = Admin::new(&cluster.url(), 2);
    // As on a pool of the caller's own: no server-side limits on the one connection.
    admin.block_on(async {
        let client = store.inner().pool().get().await.unwrap();
        client
            .batch_execute("SET statement_timeout = 0; SET lock_timeout = 0")
            .await
            .unwrap();
    });
    let Committed::Done(version) = commit(&store, Version::ABSENT, "1").unwrap() else {
        panic!("the first insert conflicted");
    };
    let locker = Admin::new(&cluster.url(), 1);
    locker.execute(&format!(
        "BEGIN; SELECT 1 FROM {table} WHERE key = 'default' FOR UPDATE"
    ));
    let started = Instant::now();
    let result = {
        let store = Arc::clone(&store);
        within(TIMEOUT * 3, move || commit(&store, version, "2"))
    };
    let Some(result) = result else {
        locker.execute("COMMIT");
        panic!("the commit still waited for the locked row after 3 timeouts");
    };
    let e = result.unwrap_err();
    assert!(started.elapsed() >= TIMEOUT, "returned before the timeout");
    assert!(e.may_have_been_stored(), "{e}");
    assert!(
        e.to_string()
            .contains("no answer from PostgreSQL within 2s"),
        "{e}"
    );
    // The cancel request reached the server: no backend of ours waits for the lock,
    // although the other session still holds it.
    assert!(
        eventually(Duration::from_secs(20), || !admin.waits_for_lock(name)),
        "the timed-out UPDATE still waits for the lock: no cancel request reached it"
    );
    locker.execute("COMMIT");
    // It was cancelled, so nothing was written; the dropped connection is replaced.
    let stored = store.load().unwrap().unwrap();
    assert_eq!(stored.bytes, bytes("1"));
    assert!(matches!(
        commit(&store, version, "3").unwrap(),
        Committed::Done(_)
    ));
}

#[test]
fn a_commit_to_a_stopped_backend_times_out_as_uncertain() {
    let Some(cluster) = private_cluster() else {
        return;
    };
    let name = "enduro_stopped";
    let (url, store) = one_session(&cluster.url(), name, Some(TIMEOUT));
    let admin = Admin::new(&cluster.url(), 2);
    let Committed::Done(v1) = commit(&store, Version::ABSENT, "1").unwrap() else {
        panic!("the first insert conflicted");
    };
    let commit_within = |expected: Version, text: &'static str| {
        let store = Arc::clone(&store);
        within(TIMEOUT * 3, move || commit(&store, expected, text))
            .expect("the commit still waited for the stopped backend after 3 timeouts")
    };

    // The UPDATE is not prepared on this connection yet: preparing it gets no answer, so
    // it was never sent, and nothing was written.
    let first = admin.pids(name);
    assert_eq!(first.len(), 1, "{first:?}");
    let stopped = Stopped::new(first[0]);
    let e = commit_within(v1, "2").unwrap_err();
    assert!(matches!(e, Error::Backend { .. }), "{e:?}");
    assert!(e.to_string().contains("never sent"), "{e}");
    assert!(e.to_string().contains("nothing was written"), "{e}");

    // The stuck connection was dropped: the next call gets a new one, which prepares the
    // UPDATE and commits.
    let Committed::Done(v2) = commit_within(v1, "2").unwrap() else {
        panic!("the commit on a new connection conflicted");
    };
    // Now the prepared UPDATE itself is sent to a stopped backend: no answer, and it may
    // have been stored.
    let second: Vec<i32> = admin
        .pids(name)
        .into_iter()
        .filter(|pid| *pid != first[0])
        .collect();
    assert_eq!(second.len(), 1, "{second:?}");
    let stopped_too = Stopped::new(second[0]);
    let started = Instant::now();
    let e = commit_within(v2, "3").unwrap_err();
    assert!(started.elapsed() >= TIMEOUT, "returned before the timeout");
    assert!(e.may_have_been_stored(), "{e}");
    assert!(
        e.to_string()
            .contains("no answer from PostgreSQL within 2s"),
        "{e}"
    );
    assert_no_secret(&e, &password_of(&url).unwrap());
    let store2 = Arc::clone(&store);
    let loaded = within(TIMEOUT * 3, move || store2.load())
        .expect("a load after the timeout still waited")
        .unwrap()
        .unwrap();
    assert_eq!(
        loaded.bytes,
        bytes("2"),
        "the stopped backend ran nothing yet"
    );

    // Once continued, the backends find their clients gone and end. The UPDATE the second
    // had been sent may or may not have run by then: either value is right.
    drop(stopped);
    drop(stopped_too);
    assert!(
        eventually(Duration::from_secs(20), || {
            let now = admin.pids(name);
            !now.contains(&first[0]) && !now.contains(&second[0])
        }),
        "the continued backends did not end"
    );
    let last = store.load().unwrap().unwrap();
    assert!(
        last.bytes == bytes("2") || last.bytes == bytes("3"),
        "{:?}",
        String::from_utf8_lossy(&last.bytes)
    );
    eprintln!(
        "after SIGCONT, the timed-out UPDATE {} applied",
        if last.bytes == bytes("3") {
            "was"
        } else {
            "was not"
        }
    );
}

#[test]
fn swaps_queued_behind_a_stopped_backend_return() {
    let Some(cluster) = private_cluster() else {
        return;
    };
    let name = "enduro_stopped_queue";
    let url = with_param(&cluster.url(), &format!("application_name={name}"));
    let admin = Admin::new(&cluster.url(), 2);
    let atom = PgAtom::builder(&url, "enduro_stopped_queue")
        .statement_timeout(TIMEOUT)
        .max_connections(1)
        .open(0u64)
        .unwrap();
    let pids = admin.pids(name);
    assert_eq!(pids.len(), 1, "{pids:?}");
    let stopped = Stopped::new(pids[0]);
    let results = swaps_within(&atom, 4, TIMEOUT * 3 * 4)
        .expect("swaps still waited for the stopped backend after 12 timeouts");
    let acknowledged = results.iter().filter(|r| r.is_ok()).count() as u64;
    for result in &results {
        if let Err(e) = result {
            assert!(
                matches!(e, Error::Uncertain { .. } | Error::Backend { .. }),
                "{e:?}"
            );
        }
    }
    drop(stopped);
    assert!(
        eventually(Duration::from_secs(20), || !admin
            .pids(name)
            .contains(&pids[0])),
        "the continued backend did not end"
    );
    // The atom goes on, and holds every acknowledged swap (and perhaps lost ones).
    let now = *atom.refresh().unwrap();
    assert!(
        (acknowledged..=4).contains(&now),
        "{now} after {acknowledged} acknowledged swaps"
    );
    assert_eq!(*atom.swap(|n| n + 1).unwrap(), now + 1);
}
