//! PostgreSQL hardening: per-session (temporary) tables are refused.
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
