//! Cancelled async swaps on a real PostgreSQL, as a client that disconnects from an axum
//! handler cancels them: a dropped call never makes another call's change apply twice.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

mod common;

use common::pg_cluster::database_url;
use common::unique_key;
use enduro_pg::{PgAtom, PgStore};

/// The adversarial review's finding, replayed: with every UPDATE slowed to 200 ms by a
/// trigger, swap C commits; L then F join the next batch and L leads it; L is dropped by
/// a 300 ms timeout while its UPDATE, which carries F's value, is on the server. Before
/// the fix: C -> 1, F -> Ok(4), final 4 — three increments started, four landed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_leader_never_makes_its_follower_apply_twice() {
    let Some(url) = database_url() else { return };
    let table = unique_key("cancel").replace('-', "_");
    let atom = PgAtom::builder(&url, &table)
        .open_async(0u64)
        .await
        .unwrap();
    let admin = PgStore::builder(&url, &table).open().await.unwrap();
    let client = admin.pool().get().await.unwrap();
    client
        .batch_execute(&format!(
            "CREATE FUNCTION {table}_slow() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN PERFORM pg_sleep(0.2); RETURN NEW; END $$; \
             CREATE TRIGGER slow BEFORE UPDATE ON {table} \
             FOR EACH ROW EXECUTE FUNCTION {table}_slow();"
        ))
        .await
        .unwrap();

    let swap = |atom: &enduro_core::AsyncAtom<u64>| {
        let atom = atom.clone();
        async move { atom.swap(|n| n + 1).await }
    };
    let c = tokio::spawn(swap(&atom));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let l = tokio::spawn(tokio::time::timeout(
        Duration::from_millis(300),
        swap(&atom),
    ));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let f = tokio::spawn(swap(&atom));

    assert_eq!(*c.await.unwrap().unwrap(), 1);
    assert!(
        l.await.unwrap().is_err(),
        "L's timeout cut it off mid-commit"
    );
    let f = f.await.unwrap().unwrap();
    let stored: i64 = client
        .query_one(&format!("SELECT value::bigint FROM {table}"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(*f, 3, "F's result is the commit that carried its value");
    assert_eq!(stored, 3, "three increments started: no more may land");
    assert_eq!(*atom.refresh().await.unwrap(), 3);

    client
        .batch_execute(&format!(
            "DROP TABLE {table}; DROP FUNCTION {table}_slow();"
        ))
        .await
        .unwrap();
}
