//! Real processes on one Redis key: exact counts, and nothing acknowledged lost when the
//! server is killed (SIGKILL) and restarted under load, with `appendfsync always`.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::redis_server::{self, RedisServer};
use common::{unique_key, worker};

/// The worker processes' entry point (a normal test run returns at once).
#[test]
fn worker() {
    worker::entry();
}

/// Four processes × 250 swaps of `+1` on one key end at exactly 1000.
#[test]
fn four_processes_times_250_swaps_are_exact() {
    let Some(server) = redis_server::shared() else {
        return;
    };
    let url = server.url(0);
    let key = unique_key("processes");
    let children: Vec<_> = (0..4)
        .map(|_| {
            worker::command(&[&url, &key, "count", "250"])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "a worker failed: {out:?}");
        assert_eq!(worker::lines(&out.stdout), ["acked 250"]);
    }
    let atom = enduro::redis_atom(0u64, &url, &key).unwrap();
    assert_eq!(*atom.deref(), 1000);
}

/// Three processes append under load while the server is killed with SIGKILL and started
/// again, three times, each time once the workers have had more swaps acknowledged: every
/// item a worker saw acknowledged is stored, exactly once, and each worker's items are in
/// its order. (`appendfsync always`: Redis answers only after the append-only file is
/// fsynced.)
#[test]
fn a_server_killed_and_restarted_under_load_loses_nothing_acknowledged() {
    if !redis_server::available() {
        assert!(std::env::var("CI").is_err(), "CI=true needs redis-server");
        return;
    }
    let server = RedisServer::start().unwrap();
    let url = server.url(0);
    let key = unique_key("restart");
    let per_worker = 300;
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut children = Vec::new();
    let mut readers = Vec::new();
    for id in 0..3 {
        let mut child = worker::command(&[
            &url,
            &key,
            "append",
            &format!("w{id}"),
            &per_worker.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::clone(&lines);
        readers.push(std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let line = line.unwrap();
                if !worker::is_harness_line(&line) {
                    lines.lock().unwrap().push(line);
                }
            }
        }));
        children.push(child);
    }
    let acks = || {
        lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with("ack "))
            .count()
    };
    let mut acked_at_kills = Vec::new();
    for round in 1..=3 {
        let start = Instant::now();
        while acks() < round * 100 {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "the workers are stuck"
            );
            for child in &mut children {
                if let Some(status) = child.try_wait().unwrap() {
                    assert!(
                        status.success(),
                        "a worker failed: {:?}",
                        lines
                            .lock()
                            .unwrap()
                            .iter()
                            .rev()
                            .take(3)
                            .collect::<Vec<_>>()
                    );
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        acked_at_kills.push(acks());
        server.kill();
        std::thread::sleep(Duration::from_millis(200));
        server.start_server().unwrap();
    }
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "a worker failed: {out:?}");
    }
    for reader in readers {
        reader.join().unwrap();
    }
    let lines = lines.lock().unwrap();
    let acked: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("ack "))
        .collect();
    assert_eq!(acked.len(), 3 * per_worker, "every worker finished");
    assert!(
        *acked_at_kills.last().unwrap() < acked.len(),
        "the last kill came after the load"
    );
    // Once more after the load: what was acknowledged is on disk.
    server.restart().unwrap();
    let atom = enduro::redis_atom(Vec::<String>::new(), &url, &key).unwrap();
    let stored = atom.deref();
    let set: HashSet<&String> = stored.iter().collect();
    assert_eq!(set.len(), stored.len(), "an item is stored twice");
    for item in &acked {
        assert!(
            set.contains(&item.to_string()),
            "acknowledged {item} is lost"
        );
    }
    let mut last: HashMap<&str, usize> = HashMap::new();
    for item in stored.iter() {
        let (id, n) = item.split_once('-').unwrap();
        let n: usize = n.parse().unwrap();
        if let Some(before) = last.insert(id, n) {
            assert!(n > before, "{id}'s items out of order: {before} then {n}");
        }
    }
    let retries = lines.iter().filter(|l| *l == "retry").count();
    let uncertain = lines.iter().filter(|l| l.starts_with("uncertain ")).count();
    eprintln!(
        "{} items acknowledged and stored; killed at {acked_at_kills:?} acks; {retries} failed \
         swaps retried, {uncertain} uncertain",
        acked.len()
    );
}

/// A live atom follows another process's swaps without `refresh`, also after the server
/// was killed and started again (its subscriber connects again and checks once).
#[test]
fn a_live_atom_follows_other_processes_across_a_server_restart() {
    if !redis_server::available() {
        assert!(std::env::var("CI").is_err(), "CI=true needs redis-server");
        return;
    }
    let server = RedisServer::start().unwrap();
    let url = server.url(0);
    let key = unique_key("live");
    let live = enduro::RedisAtom::builder(&url, &key)
        .live(true)
        .open(0u64)
        .unwrap();
    let wait_for = |n: u64| {
        let start = Instant::now();
        while *live.deref() != n {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the live atom is stuck at {} (waiting for {n})",
                live.deref()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let run = |n: &str| {
        let out = worker::command(&[&url, &key, "count", n])
            .stdout(Stdio::piped())
            .output()
            .unwrap();
        assert!(out.status.success(), "a worker failed: {out:?}");
    };
    run("50");
    wait_for(50);
    server.restart().unwrap();
    run("25");
    wait_for(75);
}
