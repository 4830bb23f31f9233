//! A live PostgreSQL atom across a lost `LISTEN` connection (on a private cluster only,
//! never DATABASE_URL): after a server restart the listener connects again and listens
//! again, so later commits still reach the atom; and a commit made while the listener
//! cannot connect (one no notification announces: a change by hand) is picked up by the
//! one check every live atom makes once the listener is back.
//!
//! Waits are bounded (60 s); nothing is timed.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

mod common;

use common::pg_cluster::private_cluster;
use common::{Observer, eventually, with_application_name};
use enduro_core::Atom;
use enduro_core::conformance::recorder;
use enduro_pg::PgAtom;

const TABLE: &str = "enduro_live_restart";
const APP: &str = "enduro_live_restart";
const DB: &str = "enduro_live";

/// Swaps `+1`, trying again (a bounded number of times) while the connections the
/// restart broke are replaced.
fn swap_until_it_works(atom: &Atom<u64>) -> u64 {
    for _ in 0..600 {
        match atom.swap(|n| n + 1) {
            Ok(n) => return *n,
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    panic!("no swap succeeded within a minute of the restart");
}

#[test]
fn a_live_atom_survives_a_restart_and_catches_up_after_a_lost_listener() {
    let Some(cluster) = private_cluster() else {
        return;
    };
    // A database of its own, whose connections can be refused for a while.
    let admin = Observer::new(&cluster.url());
    admin.execute(&format!("CREATE DATABASE {DB}"));
    let url = cluster
        .url()
        .strip_suffix("/postgres")
        .map(|base| format!("{base}/{DB}"))
        .unwrap();
    let observer = &admin;
    let live_url = with_application_name(&url, APP);
    let live = PgAtom::builder(&live_url, TABLE)
        .live(true)
        .open(0u64)
        .unwrap();
    let seen = recorder(&live);
    let writer_url = with_application_name(&url, "enduro_live_restart_writer");
    let writer = PgAtom::builder(&writer_url, TABLE).open(0u64).unwrap();
    writer.reset(1).unwrap();
    eventually("the live atom follows before the restart", || {
        *live.deref() == 1
    });
    assert_eq!(observer.listening(APP), 1);

    // A restart like a crash: every connection is cut.
    cluster.stop().unwrap();
    cluster.start_server().unwrap();
    eventually("the listener is back after the restart", || {
        observer.listening(APP) == 1
    });
    // Commits after it is back reach the atom only through its new LISTEN; each waits
    // for the one before to be seen, so the one check after reconnecting cannot be what
    // shows the later ones.
    for want in 2..=4 {
        assert_eq!(swap_until_it_works(&writer), want);
        eventually("a commit after the restart reaches the live atom", || {
            *live.deref() == want
        });
    }

    // The listener loses its connection and cannot open another for a while (a
    // connection opened before, for the change by hand, stays).
    let hand = Observer::new(&url);
    admin.execute(&format!("ALTER DATABASE {DB} ALLOW_CONNECTIONS false"));
    admin.execute(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = '{APP}' AND query ~ 'LISTEN'"
    ));
    eventually("the listener is gone", || observer.listening(APP) == 0);
    // A change no notification announces, made while the listener is down.
    hand.execute(&format!(
        "UPDATE {TABLE} SET value = '42', version = version + 1 WHERE key = 'default'"
    ));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(*live.deref(), 4, "nothing can have told the atom yet");
    admin.execute(&format!("ALTER DATABASE {DB} ALLOW_CONNECTIONS true"));
    eventually("the check after reconnecting picks the change up", || {
        *live.deref() == 42
    });
    assert_eq!(observer.listening(APP), 1);
    assert_eq!(seen.lock().unwrap().last(), Some(&(4, 42)));

    // And it goes on following.
    assert_eq!(swap_until_it_works(&writer), 43);
    eventually("a later commit reaches the live atom", || {
        *live.deref() == 43
    });
    drop(live);
    eventually("the listener closes with the last live atom", || {
        observer.listening(APP) == 0
    });
}
