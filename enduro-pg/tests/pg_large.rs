//! Large values (8 MiB and more): they round-trip through every statement (insert, update,
//! load, check), streamed with COPY through a temporary table (or, for a role that may not
//! make one, as a parameter), the connection that carried one is closed instead of going
//! back to the pool (the driver would keep buffers that large for as long as it lives), and
//! the commits that PostgreSQL refuses without running them are tried again as for small
//! values (see `enduro-pg/src/text.rs`).
#![allow(clippy::unwrap_used)]

mod common;

use common::pg_cluster::database_url;
use common::{commit, unique_key};
use enduro_core::{Atom, Committed, Options, Store, Version};
use enduro_pg::{PgAtom, PgStore};

/// Comfortably above the size from which a value counts as large (8 MiB).
const BIG: usize = 9 << 20;

/// Runs `sql` (no parameters) on a connection of its own.
fn admin(url: &str, sql: &str) {
    try_sql(url, sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Runs `sql` (no parameters) on a connection of its own, or says why it failed.
fn try_sql(url: &str, sql: &str) -> Result<(), String> {
    let runtime = common::current_thread();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        let driver = tokio::spawn(connection);
        let result = client
            .batch_execute(sql)
            .await
            .map_err(|e| format!("{e:?}"));
        drop(client);
        let _ = driver.await;
        result
    })
}

/// `url` named so that it gets a pool of its own: stores of one process share the pool of
/// a connection string, and these tests count the connections in theirs.
fn own_pool(url: &str, name: &str) -> String {
    let glue = if url.contains('?') { '&' } else { '?' };
    format!("{url}{glue}application_name={name}")
}

fn done(committed: enduro_core::Result<Committed>) -> Version {
    match committed {
        Ok(Committed::Done(version)) => version,
        other => panic!("expected a commit, got {other:?}"),
    }
}

#[test]
fn a_large_value_round_trips_and_its_connections_are_closed() {
    let Some(url) = database_url() else { return };
    let table = format!("enduro_large_{}", std::process::id());
    let key = unique_key("large");
    // Escapes and non-ASCII text too, so that the text is checked, not only its length.
    let big = format!("é\"\\\n\u{1F600}{}", "x".repeat(BIG));
    let url = own_pool(&url, "enduro-large");
    let store = PgStore::builder(&url, &table)
        .key(key.as_str())
        .max_connections(4)
        .open_blocking()
        .unwrap();
    let pool = store.inner().pool().clone();
    let atom = Atom::open(store, big.clone(), Options::new()).unwrap();
    assert_eq!(*atom.deref(), big);
    assert_eq!(
        pool.status().size,
        0,
        "the connection that inserted the large value was closed"
    );
    let after = atom.swap(|v| format!("{v}!")).unwrap();
    assert_eq!(pool.status().size, 0, "and so was the one that updated it");

    // Another handle loads it, and changes it.
    let other = PgAtom::builder(&url, &table)
        .key(key.as_str())
        .open(String::new())
        .unwrap();
    assert_eq!(*other.deref(), *after);
    other.swap(|v| format!("{v}?")).unwrap();
    // The first handle's update conflicts; it loads the large value and tries again.
    let mine = atom.swap(|v| format!("{v}+")).unwrap();
    assert!(mine.starts_with("é\"\\\n\u{1F600}xxx"));
    assert!(mine.ends_with("x!?+"), "{:?}", &mine[mine.len() - 8..]);
    assert_eq!(mine.len(), big.len() + 3);
    assert_eq!(pool.status().size, 0);
    // A check that finds a new large value brings it along.
    assert_eq!(*other.refresh().unwrap(), *mine);

    // A small value keeps its connection in the pool.
    atom.reset("small".to_owned()).unwrap();
    assert_eq!(pool.status().size, 1);
    assert_eq!(*other.refresh().unwrap(), "small");
    atom.release().unwrap();
    admin(&url, &format!("DROP TABLE \"{table}\""));
}

#[test]
fn a_large_commit_refused_without_running_is_tried_again() {
    let Some(url) = database_url() else { return };
    let table = format!("enduro_large_stale_{}", std::process::id());
    let domain = format!("{table}_version");
    // One connection, so that the statements cached by a small commit are the ones the
    // large commit after it would use.
    let store = PgStore::builder(&url, &table)
        .max_connections(1)
        .open_blocking()
        .unwrap();
    let big = format!("\"{}\"", "y".repeat(BIG));

    // The table dropped under a cached INSERT: the insert makes it again and succeeds.
    done(commit(&store, Version::ABSENT, "1"));
    admin(&url, &format!("DROP TABLE \"{table}\""));
    let version = done(commit(&store, Version::ABSENT, &big));
    assert_eq!(store.load().unwrap().unwrap().bytes, big.as_bytes());

    // A cached UPDATE whose result type changed: the large commit does not depend on it.
    let version = done(commit(&store, version, "2"));
    admin(
        &url,
        &format!(
            "CREATE DOMAIN \"{domain}\" AS bigint; \
             ALTER TABLE \"{table}\" ALTER COLUMN version TYPE \"{domain}\""
        ),
    );
    done(commit(&store, version, &big));
    assert_eq!(store.load().unwrap().unwrap().bytes, big.as_bytes());
    // And a stale expected version is a conflict, with nothing written.
    assert!(matches!(
        commit(&store, version, "3"),
        Ok(Committed::Conflict)
    ));
    assert!(matches!(
        commit(&store, version, &big),
        Ok(Committed::Conflict)
    ));

    admin(
        &url,
        &format!("DROP TABLE \"{table}\"; DROP DOMAIN \"{domain}\""),
    );
}

/// A role that may not make temporary tables (`REVOKE TEMPORARY ... FROM PUBLIC`) still
/// stores large values: as a parameter, with the same guarantees.
#[test]
fn a_role_without_temporary_tables_sends_large_values_as_parameters() {
    let Some(url) = database_url() else { return };
    let config: tokio_postgres::Config = url.parse().unwrap();
    let id = std::process::id();
    let (db, role) = (format!("enduro_notemp_{id}"), format!("enduro_notemp_{id}"));
    admin(&url, &format!("CREATE DATABASE {db}"));
    admin(
        &url,
        &format!(
            "REVOKE TEMPORARY ON DATABASE {db} FROM PUBLIC; \
             CREATE ROLE {role} LOGIN PASSWORD 'notemp-{id}'"
        ),
    );
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(host) => host.clone(),
        tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let superuser_here = format!(
        "host={host} port={port} user={} password={} dbname={db}",
        config.get_user().unwrap_or("postgres"),
        String::from_utf8_lossy(config.get_password().unwrap_or_default())
    );
    admin(
        &superuser_here,
        &format!("GRANT CREATE, USAGE ON SCHEMA public TO {role}"),
    );
    let mine = format!("host={host} port={port} user={role} password=notemp-{id} dbname={db}");

    let denied = try_sql(&mine, "CREATE TEMPORARY TABLE t (a int)").unwrap_err();
    assert!(
        denied.contains("42501"),
        "the role may not make temporary tables: {denied}"
    );

    let big = "z".repeat(BIG);
    let store = PgStore::builder(&mine, "large").open_blocking().unwrap();
    let pool = store.inner().pool().clone();
    let atom = Atom::open(store, big.clone(), Options::new()).unwrap();
    let changed = atom.swap(|v| format!("{v}!")).unwrap();
    assert_eq!(changed.len(), BIG + 1);
    assert_eq!(pool.status().size, 0, "its connections were closed");
    let other = PgAtom::builder(&mine, "large").open(String::new()).unwrap();
    assert_eq!(*other.deref(), *changed);
    drop((atom, other, pool));
    admin(&url, &format!("DROP DATABASE {db} WITH (FORCE)"));
    admin(&url, &format!("DROP ROLE {role}"));
}

/// A large async swap dropped at any point of its streamed commit (before, during or after
/// the COPY) leaves the row with the old value or the new one, never a transaction under
/// way on a pooled connection, and the atom working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_swap_dropped_half_way_leaves_old_or_new() {
    let Some(url) = database_url() else { return };
    let url = own_pool(&url, "enduro-large-dropped");
    let key = unique_key("dropped");
    let atom = PgAtom::builder(&url, "enduro_large_dropped")
        .key(key.as_str())
        .open_async("a".repeat(BIG))
        .await
        .unwrap();
    let pool = atom_pool(&url).await;
    for (round, delay_ms) in [0u64, 1, 3, 10, 30, 100, 300].into_iter().enumerate() {
        let before = atom.refresh().await.unwrap();
        let next = format!("{}{round}", &before[..BIG]);
        let dropped = tokio::time::timeout(
            std::time::Duration::from_millis(delay_ms),
            atom.swap(|_| next.clone()),
        )
        .await;
        // Whatever happened, the row holds one of the two values.
        let now = atom.refresh().await.unwrap();
        assert!(
            *now == *before || *now == next,
            "round {round} ({delay_ms} ms, {}): the row holds neither value",
            if dropped.is_ok() {
                "finished"
            } else {
                "dropped"
            }
        );
        // No transaction was left under way: a small query on every pooled connection
        // works, and the next swap does too.
        let client = pool.get().await.unwrap();
        client.simple_query("SELECT 1").await.unwrap();
        drop(client);
        let after = atom
            .swap(|v| format!("{}-{round}", &v[..BIG]))
            .await
            .unwrap();
        assert!(after.ends_with(&format!("-{round}")));
    }
    atom.release().await.unwrap();

    // The store's own commit future, dropped at each point too (the atom may drive a
    // dropped swap's commit on in the background; a store call is simply dropped).
    use enduro_core::AsyncStore;
    let store = PgStore::builder(&url, "enduro_large_dropped")
        .key(unique_key("dropped-store"))
        .open()
        .await
        .unwrap();
    let first = format!("\"{}\"", "b".repeat(BIG));
    assert!(matches!(
        store
            .commit(Version::ABSENT, first.clone().into_bytes())
            .await,
        Ok(Committed::Done(_))
    ));
    for (round, delay_ms) in [0u64, 1, 3, 10, 30, 100, 300].into_iter().enumerate() {
        let before = store.load().await.unwrap().unwrap();
        let next = format!("\"{}{round}\"", "c".repeat(BIG));
        let _ = tokio::time::timeout(
            std::time::Duration::from_millis(delay_ms),
            store.commit(before.version, next.clone().into_bytes()),
        )
        .await;
        let now = store.load().await.unwrap().unwrap();
        assert!(
            now.bytes == before.bytes || now.bytes == next.as_bytes(),
            "round {round} ({delay_ms} ms): the row holds neither value"
        );
        let client = pool.get().await.unwrap();
        client.simple_query("SELECT 1").await.unwrap();
    }
    store.release().await.unwrap();
}

/// The pool the stores of `url` share in this process (a store of its own opens it).
async fn atom_pool(url: &str) -> enduro_pg::Pool {
    PgStore::builder(url, "enduro_large_dropped")
        .open()
        .await
        .unwrap()
        .pool()
        .clone()
}
