//! Live PostgreSQL atoms (`PgAtom::builder(..).live(true)`): other processes' commits reach
//! `deref` and the watches without `refresh`, over one `LISTEN` connection per pool that
//! closes with the last live atom; every commit path (insert, update, a large value
//! streamed through a temporary table, a long key, a release, a dropped table) tells them.
//!
//! Connections are told apart by `application_name` (a pool of its own per test), as
//! `pg_stat_activity` shows them. Waits are bounded (60 s); nothing is timed.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::Stdio;

mod common;

use common::pg_cluster::database_url;
use common::{Observer, eventually, unique_key, with_application_name, worker};
use enduro_core::conformance::{assert_rising_chain, recorder};
use enduro_core::{Atom, Error};
use enduro_pg::PgAtom;

/// The worker process these tests start: this test binary, run again (see
/// `common::worker`). In a normal test run it returns at once.
#[test]
fn worker() {
    common::worker::entry();
}

const TABLE: &str = "enduro_live";

#[test]
fn a_live_atom_follows_a_writer_in_another_process() {
    let Some(url) = database_url() else { return };
    let observer = Observer::new(&url);
    let app = format!("enduro_live_parent_{}", std::process::id());
    let key = unique_key("other-process");
    let live = PgAtom::builder(&with_application_name(&url, &app), TABLE)
        .key(key.as_str())
        .live(true)
        .open(0u64)
        .unwrap();
    let seen = recorder(&live);
    // Once the LISTEN is in force, only notifications can bring the child's swaps (the one
    // check that follows it may come a little later, but not after 200 swaps of another
    // process that has yet to start).
    eventually("the listener is up", || observer.listening(&app) == 1);
    let out = worker::command(&[url.as_str(), TABLE, key.as_str(), "count", "200"])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(out.status.success(), "the worker failed: {:?}", out.status);
    assert_eq!(worker::lines(&out.stdout), ["acked 200"]);
    // No refresh anywhere: only the notifications (and the catch-ups they cause) move it.
    eventually("the live atom shows the other process's last swap", || {
        *live.deref() == 200
    });
    eventually("the watches saw the last swap", || {
        seen.lock().unwrap().last().map(|t| t.1) == Some(200)
    });
    assert_rising_chain(&seen.lock().unwrap(), 0, 200);
    live.release().unwrap();
}

#[test]
fn a_live_atom_in_another_process_follows_this_one() {
    let Some(url) = database_url() else { return };
    let observer = Observer::new(&url);
    let app = format!("enduro_live_child_{}", std::process::id());
    let child_url = with_application_name(&url, &app);
    let key = unique_key("followed-by-child");
    let writer = PgAtom::builder(&url, TABLE)
        .key(key.as_str())
        .open(0u64)
        .unwrap();
    let mut child = worker::command(&[child_url.as_str(), TABLE, key.as_str(), "follow", "100"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(Result::unwrap)
        .filter(|l| !worker::is_harness_line(l));
    assert_eq!(lines.next().as_deref(), Some("ready"));
    eventually("the child's listener is up", || {
        observer.listening(&app) == 1
    });
    for _ in 0..100 {
        writer.swap(|n| n + 1).unwrap();
    }
    let saw = lines.next().unwrap_or_default();
    assert!(child.wait().unwrap().success());
    let parts: Vec<&str> = saw.split(' ').collect();
    assert!(
        matches!(parts[..], ["saw", "100", _]),
        "the child's live atom did not follow: {saw:?}"
    );
    let transitions: u64 = parts[2].parse().unwrap();
    assert!(
        (1..=100).contains(&transitions),
        "{transitions} transitions"
    );
    writer.release().unwrap();
}

#[test]
fn a_thousand_live_atoms_share_one_listen_connection() {
    let Some(url) = database_url() else { return };
    let observer = Observer::new(&url);
    let app = format!("enduro_live_many_{}", std::process::id());
    let live_url = with_application_name(&url, &app);
    let writer_url = with_application_name(&url, &format!("{app}_writer"));
    let keys: Vec<String> = (0..1000).map(|_| unique_key("many")).collect();
    let live: Vec<Atom<u64>> = keys
        .iter()
        .map(|key| {
            PgAtom::builder(&live_url, TABLE)
                .key(key.as_str())
                .live(true)
                .open(0u64)
                .unwrap()
        })
        .collect();
    let writers: Vec<Atom<u64>> = keys
        .iter()
        .map(|key| {
            PgAtom::builder(&writer_url, TABLE)
                .key(key.as_str())
                .open(0u64)
                .unwrap()
        })
        .collect();
    for (i, writer) in writers.iter().enumerate() {
        writer.reset(i as u64 + 1).unwrap();
    }
    for (i, atom) in live.iter().enumerate() {
        eventually("every live atom shows its own row's value", || {
            *atom.deref() == i as u64 + 1
        });
    }
    // One more round, each row to another value: each atom follows its own row only.
    for (i, writer) in writers.iter().enumerate() {
        writer.swap(|n| n + 1000 * (i as u64 % 7 + 1)).unwrap();
    }
    for (i, atom) in live.iter().enumerate() {
        let want = i as u64 + 1 + 1000 * (i as u64 % 7 + 1);
        eventually("every live atom shows its own row's new value", || {
            *atom.deref() == want
        });
    }
    assert_eq!(
        observer.listening(&app),
        1,
        "a thousand live atoms of one pool must share one LISTEN connection"
    );
    let connections = observer.connections(&app);
    assert!(
        connections <= enduro_pg::DEFAULT_MAX_CONNECTIONS as i64 + 1,
        "{connections} connections for one pool and its listener"
    );
    assert_eq!(observer.listening(&format!("{app}_writer")), 0);
    drop(live);
    eventually("the listener closes with the last live atom", || {
        observer.listening(&app) == 0
    });
    for writer in &writers {
        writer.release().unwrap();
    }
}

#[test]
fn dropping_the_last_live_atom_closes_the_listen_connection() {
    let Some(url) = database_url() else { return };
    let observer = Observer::new(&url);
    let app = format!("enduro_live_drop_{}", std::process::id());
    let live_url = with_application_name(&url, &app);
    let open = |key: &str| {
        PgAtom::builder(&live_url, TABLE)
            .key(key)
            .live(true)
            .open(0u64)
            .unwrap()
    };
    let (a, b) = (unique_key("drop-a"), unique_key("drop-b"));
    let first = open(&a);
    let second = open(&b);
    let clone = first.clone();
    eventually("the listener is up", || observer.listening(&app) == 1);
    // Its atoms are live: another handle's commit reaches them.
    let writer = PgAtom::builder(&url, TABLE)
        .key(a.as_str())
        .open(0u64)
        .unwrap();
    writer.reset(5).unwrap();
    eventually("the live atom follows", || *clone.deref() == 5);

    drop(first);
    drop(second);
    // A clone keeps its atom live, and so the listener open.
    writer.reset(6).unwrap();
    eventually("the clone still follows", || *clone.deref() == 6);
    assert_eq!(observer.listening(&app), 1);

    drop(clone);
    eventually("the listener closes with the last live atom", || {
        observer.listening(&app) == 0
    });
    // And starts again with the next one.
    let again = open(&a);
    eventually("the listener is up again", || observer.listening(&app) == 1);
    writer.reset(7).unwrap();
    eventually("the new live atom follows", || *again.deref() == 7);
    drop(again);
    eventually("the listener closes again", || {
        observer.listening(&app) == 0
    });
    writer.release().unwrap();
}

#[test]
fn every_commit_path_reaches_live_atoms() {
    let Some(url) = database_url() else { return };
    // A key too long for the payload travels as a hash.
    for key in [
        unique_key("paths"),
        format!("{}{}", unique_key("long"), "k".repeat(5000)),
    ] {
        let live = PgAtom::builder(&url, TABLE)
            .key(key.as_str())
            .live(true)
            .open(String::new())
            .unwrap();
        let writer = PgAtom::builder(&url, TABLE)
            .key(key.as_str())
            .open(String::new())
            .unwrap();
        // An update with the value as a parameter.
        writer.reset("small".to_owned()).unwrap();
        eventually("an update reaches the live atom", || {
            *live.deref() == "small"
        });
        // A value of 8 MiB or more goes through a temporary table and COPY.
        let large = "x".repeat(9 << 20);
        writer.reset(large.clone()).unwrap();
        eventually("a streamed value reaches the live atom", || {
            live.deref().len() == large.len()
        });
        // A release deletes the row: the live atom is released.
        writer.release().unwrap();
        eventually("a release reaches the live atom", || live.is_released());
        assert!(matches!(live.reset("late".into()), Err(Error::Released)));
    }

    // The row made again by an insert, in a table of its own that is then dropped.
    let table = format!("enduro_live_drop_{}", std::process::id());
    let key = unique_key("insert");
    let live = PgAtom::builder(&url, &table)
        .key(key.as_str())
        .live(true)
        .open(1u64)
        .unwrap();
    let dropper = PgAtom::builder(&url, &table)
        .key(key.as_str())
        .drop_table_on_release(true)
        .open(0u64)
        .unwrap();
    assert_eq!(*dropper.deref(), 1);
    dropper.swap(|n| n + 1).unwrap();
    eventually("the live atom follows", || *live.deref() == 2);
    dropper.release().unwrap();
    eventually("a dropped table reaches the live atom", || {
        live.is_released()
    });
}

#[test]
fn a_live_atom_on_a_given_pool_is_refused_when_opened() {
    let Some(url) = database_url() else { return };
    let runtime = common::current_thread();
    runtime.block_on(async {
        let config: enduro_pg::tokio_postgres::Config = url.parse().unwrap();
        let pool = enduro_pg::Pool::builder(enduro_pg::deadpool_postgres::Manager::new(
            config,
            enduro_pg::tokio_postgres::NoTls,
        ))
        .build()
        .unwrap();
        let key = unique_key("given-pool");
        let e = PgAtom::with_pool(pool.clone(), TABLE)
            .key(key.as_str())
            .live(true)
            .open_async(0u64)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("with_pool"), "{e}");
        if let Some(password) = common::password_of(&url) {
            common::assert_no_secret(&e, &password);
        }
        // Refused before anything was written.
        let store = enduro_pg::PgStore::builder_with_pool(pool.clone(), TABLE)
            .key(key.as_str())
            .open()
            .await
            .unwrap();
        assert_eq!(enduro_core::AsyncStore::load(&store).await.unwrap(), None);
        // A store on such a pool, opened by hand, refuses to follow too.
        let e = enduro_core::AsyncAtom::open(store, 0u64, enduro_core::Options::new().live(true))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("with_pool"), "{e}");
        // Without `live` it works, and its commits still reach live atoms elsewhere.
        let atom = PgAtom::with_pool(pool, TABLE)
            .key(key.as_str())
            .open_async(0u64)
            .await
            .unwrap();
        let app = format!("enduro_live_given_{}", std::process::id());
        let follower = PgAtom::builder(&with_application_name(&url, &app), TABLE)
            .key(key.as_str())
            .live(true)
            .open_async(0u64)
            .await
            .unwrap();
        let observer = Observer::new(&url);
        eventually("the listener is up", || observer.listening(&app) == 1);
        atom.reset(3).await.unwrap();
        let start = std::time::Instant::now();
        while *follower.deref() != 3 {
            assert!(
                start.elapsed().as_secs() < 60,
                "the live atom did not follow"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        atom.release().await.unwrap();
    });
}

/// A store built with `notify(false)` commits and releases without a `NOTIFY`; the
/// others send one per commit, in commit order, on the table's channel.
#[test]
fn a_store_that_does_not_notify_sends_nothing_and_the_others_do() {
    let Some(url) = database_url() else { return };
    let runtime = common::current_thread();
    runtime.block_on(async {
        use enduro_core::{AsyncStore, Committed, Version};
        let key = unique_key("quiet");
        let store = |notify| {
            enduro_pg::PgStore::builder(&url, TABLE)
                .key(&key)
                .notify(notify)
                .open()
        };
        let (quiet, loud) = (store(false).await.unwrap(), store(true).await.unwrap());
        let channel = loud.notify_channel();
        assert_eq!(quiet.notify_channel(), channel);
        // A plain connection of our own, listening.
        let (client, mut connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        let (notes, mut heard) = tokio::sync::mpsc::unbounded_channel();
        // The channel is the table's: other tests' rows notify on it too, so keep only
        // this row's payloads (they end with ` k` and the key).
        let ours = format!(" k{key}");
        tokio::spawn(async move {
            while let Some(Ok(message)) =
                std::future::poll_fn(|cx| connection.poll_message(cx)).await
            {
                if let tokio_postgres::AsyncMessage::Notification(n) = message
                    && n.payload().ends_with(&ours)
                {
                    let _ = notes.send(n.payload().to_owned());
                }
            }
        });
        client
            .batch_execute(&format!("LISTEN \"{channel}\""))
            .await
            .unwrap();
        let done = |c: Committed| match c {
            Committed::Done(v) => v,
            Committed::Conflict => panic!("no one else writes this row"),
        };
        let v1 = done(quiet.commit(Version::ABSENT, b"1".to_vec()).await.unwrap());
        let v2 = done(quiet.commit(v1, b"2".to_vec()).await.unwrap());
        quiet.release().await.unwrap();
        let v3 = done(loud.commit(Version::ABSENT, b"3".to_vec()).await.unwrap());
        let v4 = done(loud.commit(v3, b"4".to_vec()).await.unwrap());
        async fn next(heard: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> String {
            tokio::time::timeout(std::time::Duration::from_secs(60), heard.recv())
                .await
                .expect("a notification within 60 s")
                .expect("the listening connection is open")
        }
        // Notifications come in commit order: the first is the loud store's first commit.
        let first = next(&mut heard).await;
        assert!(
            first.starts_with(&format!("{} ", v3.generation)),
            "{first} (the quiet commits {v1:?} and {v2:?} notified)"
        );
        let second = next(&mut heard).await;
        assert!(
            second.starts_with(&format!("{} ", v4.generation)),
            "{second}"
        );
        loud.release().await.unwrap();
        assert!(
            next(&mut heard).await.starts_with("- - "),
            "a release notifies"
        );
    });
}
