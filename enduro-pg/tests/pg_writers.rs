//! Many writers on one PostgreSQL row: 64 tasks × 50 swaps in one process, 4 OS processes
//! (separate pools) × 250 swaps, and list appends across processes where every
//! acknowledged id must be present exactly once and in its writer's order.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashSet};
use std::process::Stdio;

mod common;

use common::pg_cluster::database_url;
use common::{unique_key, worker};
use enduro_pg::PgAtom;

/// The worker process these tests start: this test binary, run again (see
/// `common::worker`). In a normal test run it returns at once.
#[test]
fn worker() {
    common::worker::entry();
}
const TABLE: &str = "enduro_writers";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_tasks_times_fifty_swaps_is_exactly_3200() {
    let Some(url) = database_url() else { return };
    let key = unique_key("tasks");
    // 8 handles (each its own store and pool, like 8 services), 8 tasks on each: swaps
    // conflict both inside a handle and across handles.
    let mut handles = Vec::new();
    for _ in 0..8 {
        handles.push(
            PgAtom::builder(&url, TABLE)
                .key(key.as_str())
                .max_connections(4)
                .open_async(0u64)
                .await
                .unwrap(),
        );
    }
    let mut tasks = Vec::new();
    for task in 0..64 {
        let atom = handles[task % 8].clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..50 {
                seen.push(*atom.swap(|n| n + 1).await.unwrap());
            }
            seen
        }));
    }
    let mut acknowledged = HashSet::new();
    for task in tasks {
        for n in task.await.unwrap() {
            assert!(acknowledged.insert(n), "two swaps returned {n}");
        }
    }
    assert_eq!(acknowledged.len(), 3200);
    for atom in &handles {
        assert_eq!(*atom.refresh().await.unwrap(), 3200);
    }
    handles[0].release().await.unwrap();
}

#[test]
fn four_processes_times_250_swaps_is_exactly_1000() {
    let Some(url) = database_url() else { return };
    let key = unique_key("processes");
    let atom = PgAtom::builder(&url, TABLE)
        .key(key.as_str())
        .open(0u64)
        .unwrap();
    let children: Vec<_> = (0..4)
        .map(|_| {
            worker::command(&[url.as_str(), TABLE, key.as_str(), "count", "250"])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "a worker failed: {:?}", out.status);
        assert_eq!(worker::lines(&out.stdout), ["acked 250"]);
    }
    assert_eq!(*atom.refresh().unwrap(), 1000);
    atom.release().unwrap();
}

#[test]
fn list_appends_across_processes_keep_every_acknowledged_id_once_and_in_order() {
    let Some(url) = database_url() else { return };
    let key = unique_key("appends");
    let atom = PgAtom::builder(&url, TABLE)
        .key(key.as_str())
        .open(Vec::<String>::new())
        .unwrap();
    let writers = ["w0", "w1", "w2", "w3"];
    let children: Vec<_> = writers
        .iter()
        .map(|id| {
            worker::command(&[url.as_str(), TABLE, key.as_str(), "append", id, "60"])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut acknowledged = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "a worker failed: {:?}", out.status);
        for line in worker::lines(&out.stdout) {
            acknowledged.push(line.strip_prefix("ack ").unwrap().to_owned());
        }
    }
    let list = atom.refresh().unwrap();
    // Unique ids, each acknowledged one exactly once.
    let unique: HashSet<&String> = list.iter().collect();
    assert_eq!(unique.len(), list.len(), "an id appears twice");
    for id in &acknowledged {
        assert_eq!(list.iter().filter(|x| *x == id).count(), 1, "{id}");
    }
    assert_eq!(acknowledged.len(), 4 * 60);
    assert_eq!(list.len(), 4 * 60);
    // Each writer's ids in its own order.
    let mut last: BTreeMap<&str, i64> = BTreeMap::new();
    for item in list.iter() {
        let (writer, i) = item.rsplit_once('-').unwrap();
        let i: i64 = i.parse().unwrap();
        let previous = last.insert(writer, i).unwrap_or(-1);
        assert_eq!(i, previous + 1, "{writer}'s ids out of order at {item}");
    }
    atom.release().unwrap();
}

#[test]
fn concurrent_opens_of_a_new_table_and_row_agree_on_one_value() {
    let Some(url) = database_url() else { return };
    // Tables nobody made yet: every opener races to create one and to insert its init.
    // Twenty rounds, since one round of eight openers does not always hit the race.
    for round in 0..20 {
        let table = unique_key(&format!("enduro_race_{round}")).replace('-', "_");
        let barrier = std::sync::Barrier::new(8);
        let values: Vec<u64> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8u64)
                .map(|init| {
                    let (url, table, barrier) = (&url, &table, &barrier);
                    s.spawn(move || {
                        barrier.wait();
                        let atom = PgAtom::builder(url, table)
                            .open(init)
                            .unwrap_or_else(|e| panic!("round {round}, opener {init}: {e}"));
                        *atom.deref()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(
            values.iter().all(|v| *v == values[0]),
            "round {round}: {values:?}"
        );
        PgAtom::builder(&url, &table)
            .drop_table_on_release(true)
            .open(0u64)
            .unwrap()
            .release()
            .unwrap();
    }
}
