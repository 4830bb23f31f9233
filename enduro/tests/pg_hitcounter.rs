//! The hit counter example (enduro/examples/hitcounter.rs), three instances on loopback
//! against one database (`DATABASE_URL`, or a private cluster started for this test):
//! concurrent requests spread across them end at an exact count, and instances that get
//! no hit follow the others' hits live (server-sent events, and `/count` from `deref`).
#![cfg(feature = "pg")]
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use enduro::PgAtom;
use pg_cluster::database_url;

/// The private throwaway PostgreSQL cluster of enduro-pg's tests (or `DATABASE_URL`).
#[path = "../../enduro-pg/tests/common/pg_cluster.rs"]
mod pg_cluster;

/// A table name no other test (in this or another process) uses.
fn unique_key(prefix: &str) -> String {
    format!("{prefix}-{}", std::process::id())
}

const INSTANCES: usize = 3;
const CLIENTS: usize = 12;
const REQUESTS_PER_CLIENT: usize = 25;

/// The example binary: built by `cargo test --workspace --all-features` with the other
/// examples; built here when missing (a narrower `cargo test`).
fn hitcounter_binary() -> PathBuf {
    // target/debug/deps/pg_hitcounter-* -> target/debug/examples/hitcounter
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let binary = profile_dir.join("examples").join("hitcounter");
    if binary.is_file() {
        return binary;
    }
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "-p",
            "enduro",
            "--example",
            "hitcounter",
            "--features",
            "pg",
        ])
        .current_dir(&workspace)
        .status()
        .unwrap();
    assert!(status.success(), "cannot build the hitcounter example");
    assert!(
        binary.is_file(),
        "no hitcounter binary at {}",
        binary.display()
    );
    binary
}

/// The running instances and their ports; kills them however the test ends.
struct Instances {
    children: Vec<Child>,
    ports: Vec<u16>,
}

impl Instances {
    /// Starts [`INSTANCES`] instances counting in `table`; returns once all listen.
    fn start(url: &str, table: &str) -> Self {
        let binary = hitcounter_binary();
        let mut instances = Instances {
            children: Vec::new(),
            ports: Vec::new(),
        };
        for _ in 0..INSTANCES {
            let port = start(&binary, url, table, &mut instances.children);
            instances.ports.push(port);
        }
        instances
    }
}

impl Drop for Instances {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts one instance on a free port (kept in `children`); returns once it listens.
fn start(binary: &PathBuf, url: &str, table: &str, children: &mut Vec<Child>) -> u16 {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(binary)
        .env("DATABASE_URL", url)
        .env("PORT", port.to_string())
        .env("HOST", "127.0.0.1")
        .env("HITS_TABLE", table)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    children.push(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    assert!(
        line.contains("listening"),
        "the instance did not start: {line:?}"
    );
    port
}

/// Sends `GET path` over plain HTTP/1.1 on a new connection.
fn request(port: u16, path: &str) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream
}

/// `GET /` (counts a hit); returns N from `Hits: N`.
fn get(port: u16) -> u64 {
    get_path(port, "/")
}

/// `GET path`; returns N from `Hits: N`.
fn get_path(port: u16, path: &str) -> u64 {
    let mut stream = request(port, path);
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let body = response.split("\r\n\r\n").nth(1).unwrap();
    body.trim().strip_prefix("Hits: ").unwrap().parse().unwrap()
}

#[test]
fn three_instances_count_every_request_exactly() {
    let Some(url) = database_url() else { return };
    let table = unique_key("hits").replace('-', "_");
    let instances = Instances::start(&url, &table);
    let ports = &instances.ports;

    let answers = Mutex::new(Vec::new());
    thread::scope(|s| {
        for client in 0..CLIENTS {
            let (ports, answers) = (&ports, &answers);
            s.spawn(move || {
                for i in 0..REQUESTS_PER_CLIENT {
                    let n = get(ports[(client + i) % INSTANCES]);
                    answers.lock().unwrap().push(n);
                }
            });
        }
    });

    let total = (CLIENTS * REQUESTS_PER_CLIENT) as u64;
    let answers = answers.into_inner().unwrap();
    let distinct: HashSet<u64> = answers.iter().copied().collect();
    assert_eq!(
        distinct,
        (1..=total).collect(),
        "each request got its own count"
    );
    let atom = PgAtom::builder(&url, &table).open(0u64).unwrap();
    assert_eq!(*atom.deref(), total);
    drop(instances);
    atom.release().unwrap();
}

#[test]
fn instances_that_get_no_hit_follow_the_others_live() {
    let Some(url) = database_url() else { return };
    let table = unique_key("live_hits").replace('-', "_");
    let instances = Instances::start(&url, &table);
    let ports = &instances.ports;
    // Each quiet instance's event stream, read on a thread until it shows `total`.
    let total = 40u64;
    let streams: Vec<_> = ports[1..]
        .iter()
        .map(|&port| {
            let stream = request(port, "/events");
            let (counts, seen) = std::sync::mpsc::channel();
            thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { return };
                    if let Some(n) = line.strip_prefix("data: ") {
                        let n: u64 = n.trim().parse().unwrap();
                        if counts.send(n).is_err() || n == total {
                            return;
                        }
                    }
                }
            });
            seen
        })
        .collect();
    let next = |seen: &std::sync::mpsc::Receiver<u64>| {
        seen.recv_timeout(Duration::from_secs(120))
            .expect("an event within 120 s")
    };
    for seen in &streams {
        assert_eq!(next(seen), 0, "a stream starts with the count");
    }
    // All the hits go to the first instance.
    for i in 1..=total {
        assert_eq!(get(ports[0]), i);
    }
    for seen in &streams {
        let mut last = 0;
        while last != total {
            let n = next(seen);
            assert!(n > last, "the counts rise: {n} after {last}");
            last = n;
        }
    }
    // `/count` reads the live atom: up to date without a hit, and counts nothing.
    for &port in &ports[1..] {
        assert_eq!(get_path(port, "/count"), total);
    }
    assert_eq!(get(ports[2]), total + 1);
    drop(instances);
    let atom = PgAtom::builder(&url, &table).open(0u64).unwrap();
    atom.release().unwrap();
}
