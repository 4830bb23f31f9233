//! PostgreSQL hardening: per-session (temporary) tables refused, a version column at
//! i64::MAX wrapping instead of sticking, a column type altered under running atoms, and
//! a commit whose answer is lost reported as one that may have been stored.
//!
//! The tests that hold locks or terminate backends use a private cluster each.
#![cfg(feature = "pg")]
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use enduro::store::{Committed, Store};
use enduro::{BlockingPgStore, Error, PgAtom, PgStore, Version};
use enduro_tests::pg::unique_key;
use enduro_tests::pg_cluster::{database_url, private_cluster};

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

    /// Whether a backend named `name` waits for a lock.
    fn waits_for_lock(&self, name: &str) -> bool {
        self.text(&format!(
            "SELECT count(*)::text FROM pg_stat_activity \
             WHERE application_name = '{name}' AND wait_event_type = 'Lock'"
        ))
        .as_deref()
            != Some("0")
    }
}

/// `url` with one more query parameter (the private cluster's URL has none).
fn with_param(url: &str, param: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{param}")
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
    let table = "enduro_terminated";
    let name = "enduro_terminated";
    let url = with_param(&cluster.url(), &format!("application_name={name}"));
    let admin = Admin::new(&cluster.url(), 2);
    let store = Arc::new(
        PgStore::builder(&url, table)
            .max_connections(1)
            .open_blocking()
            .unwrap(),
    );
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

/// Commits `text` over `expected` through a blocking store.
fn commit(store: &BlockingPgStore, expected: Version, text: &str) -> enduro::Result<Committed> {
    store.commit(expected, &mut |w: &mut dyn std::io::Write| {
        w.write_all(text.as_bytes())
            .map_err(|e| Error::io("write", "memory", e))
    })
}
