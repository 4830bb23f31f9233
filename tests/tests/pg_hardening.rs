//! PostgreSQL hardening: per-session (temporary) tables are refused, and a version column
//! at i64::MAX wraps instead of sticking.
#![cfg(feature = "pg")]
#![allow(clippy::unwrap_used)]

use enduro::{PgAtom, PgStore};
use enduro_tests::pg::unique_key;
use enduro_tests::pg_cluster::database_url;

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
}

/// `url` with one more query parameter (the private cluster's URL has none).
fn with_param(url: &str, param: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{param}")
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
