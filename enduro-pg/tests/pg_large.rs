//! Large values (8 MiB and more): they round-trip through every statement (insert, update,
//! load, check), the connection that carried one is closed instead of going back to the
//! pool (the driver would keep buffers that large for as long as it lives), and a
//! statement PostgreSQL refuses without running it, which would need the value sent a
//! second time, fails with a definite error instead: a large value is handed to the driver
//! once only (see `enduro-pg/src/text.rs`).
#![allow(clippy::unwrap_used)]

mod common;

use common::pg_cluster::database_url;
use common::unique_key;
use enduro_core::{Atom, Committed, Error, Options, Store, Version};
use enduro_pg::{BlockingPgStore, PgAtom, PgStore};

/// Comfortably above the size from which a value counts as large (8 MiB).
const BIG: usize = 9 << 20;

/// Runs `sql` (no parameters) on a connection of its own.
fn admin(url: &str, sql: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        let driver = tokio::spawn(connection);
        client
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        drop(client);
        let _ = driver.await;
    });
}

fn commit(
    store: &BlockingPgStore,
    expected: Version,
    text: &str,
) -> enduro_core::Result<Committed> {
    store.commit(expected, &mut |w: &mut dyn std::io::Write| {
        w.write_all(text.as_bytes())
            .map_err(|e| Error::backend(store.resource(), "cannot write", Some(Box::new(e))))
    })
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
fn a_large_value_is_not_sent_twice_when_a_cached_statement_went_stale() {
    let Some(url) = database_url() else { return };
    let table = format!("enduro_large_stale_{}", std::process::id());
    let domain = format!("{table}_version");
    // One connection, so that the statements cached by a small commit are the ones the
    // large commit after it uses.
    let store = PgStore::builder(&url, &table)
        .max_connections(1)
        .open_blocking()
        .unwrap();
    let big = format!("\"{}\"", "y".repeat(BIG));

    // The table dropped under a cached INSERT: PostgreSQL refuses the statement once it
    // has read the value, so the insert cannot be tried again once the table is back.
    done(commit(&store, Version::ABSENT, "1"));
    admin(&url, &format!("DROP TABLE \"{table}\""));
    let e = commit(&store, Version::ABSENT, &big).unwrap_err();
    assert!(matches!(e, Error::Backend { .. }), "{e:?}");
    let message = e.to_string();
    assert!(message.contains("cannot insert the row"), "{message}");
    assert!(message.contains("not sent again"), "{message}");
    assert!(message.contains("nothing was written"), "{message}");
    assert_eq!(store.load().unwrap(), None, "nothing was written");
    // The next try works.
    let version = done(commit(&store, Version::ABSENT, &big));
    assert_eq!(store.load().unwrap().unwrap().bytes, big.as_bytes());

    // A cached UPDATE whose result type changed: the runner prepares it again and asks
    // for the value a second time.
    let version = done(commit(&store, version, "2"));
    admin(
        &url,
        &format!(
            "CREATE DOMAIN \"{domain}\" AS bigint; \
             ALTER TABLE \"{table}\" ALTER COLUMN version TYPE \"{domain}\""
        ),
    );
    let e = commit(&store, version, &big).unwrap_err();
    assert!(matches!(e, Error::Backend { .. }), "{e:?}");
    let message = e.to_string();
    assert!(message.contains("cannot update the row"), "{message}");
    assert!(message.contains("not sent again"), "{message}");
    let stored = store.load().unwrap().unwrap();
    assert_eq!(stored.bytes, b"2", "nothing was written");
    assert_eq!(stored.version, version);
    done(commit(&store, version, &big));
    assert_eq!(store.load().unwrap().unwrap().bytes, big.as_bytes());

    admin(
        &url,
        &format!("DROP TABLE \"{table}\"; DROP DOMAIN \"{domain}\""),
    );
}
