//! Bad input and hostile states: odd keys, wrong URLs and passwords, keys holding other
//! types, database numbers, release and re-creation, TLS.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::redis_server::{self, RedisServer};
use common::{assert_no_secret, unique_key};
use enduro::{Error, RedisAtom};
use redis::Commands;

fn server() -> Option<&'static RedisServer> {
    redis_server::shared()
}

fn raw(server: &RedisServer, db: u32) -> redis::Connection {
    redis::Client::open(server.url(db))
        .unwrap()
        .get_connection()
        .unwrap()
}

/// Keys with spaces, quotes, newlines, Lua-looking text and non-ASCII are used exactly as
/// given: each is its own atom, readable with plain Redis commands.
#[test]
fn keys_with_odd_characters_are_separate_atoms() {
    let Some(server) = server() else { return };
    let prefix = unique_key("odd");
    let names = [
        "with space",
        "quote\"double",
        "quote'single",
        "new\nline",
        "'); redis.call('FLUSHALL'); --",
        "ünï cödé 表",
        "*",
    ];
    let atoms: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let key = format!("{prefix}:{name}");
            let atom = enduro::redis_atom(i as u64, &server.url(0), &key).unwrap();
            atom.swap(|n| n + 100).unwrap();
            (key, atom)
        })
        .collect();
    let mut c = raw(server, 0);
    for (i, (key, atom)) in atoms.iter().enumerate() {
        assert_eq!(*atom.refresh().unwrap(), i as u64 + 100);
        let stored: String = c.hget(key, "value").unwrap();
        assert_eq!(stored, (i as u64 + 100).to_string(), "{key:?}");
    }
    let e = enduro::redis_atom(0u64, &server.url(0), "").unwrap_err();
    assert!(e.to_string().contains("must not be empty"), "{e}");
}

/// Malformed URLs, a wrong password, no password and nothing listening: each fails the
/// open with an error that says why, and never shows the password.
#[test]
fn wrong_urls_and_passwords_fail_with_errors_that_say_why() {
    let Some(server) = server() else { return };
    let key = unique_key("urls");
    for url in [
        "http://localhost",
        "redis://:s3cret@host:notaport",
        "redis://localhost/notadb",
    ] {
        let e = enduro::redis_atom(0u64, url, &key).unwrap_err();
        assert!(e.to_string().contains("invalid Redis URL"), "{url}: {e}");
        assert_no_secret(&e, "s3cret");
    }
    let wrong = format!("redis://:wrong-s3cret@127.0.0.1:{}/0", server.port());
    let e = enduro::redis_atom(0u64, &wrong, &key).unwrap_err();
    assert!(e.to_string().contains("refused the credentials"), "{e}");
    assert_no_secret(&e, "wrong-s3cret");
    let e = enduro::redis_atom(0u64, &server.url_without_password(), &key).unwrap_err();
    assert!(e.to_string().contains("credentials"), "{e}");
    let user = format!("redis://nobody:wrong-s3cret@127.0.0.1:{}/0", server.port());
    let e = enduro::redis_atom(0u64, &user, &key).unwrap_err();
    assert!(e.to_string().contains("refused the credentials"), "{e}");
    assert!(e.to_string().contains("redis://nobody@127.0.0.1"), "{e}");
    assert_no_secret(&e, "wrong-s3cret");
    // Nothing listens on a port just freed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e =
        enduro::redis_atom(0u64, &format!("redis://:s3cret@127.0.0.1:{port}"), &key).unwrap_err();
    assert!(e.to_string().contains("refused the connection"), "{e}");
    assert_no_secret(&e, "s3cret");
    // The password never shows in a builder's Debug either.
    let b = RedisAtom::<u64>::builder(&server.url(0), &key);
    assert!(!format!("{b:?}").contains(server.password()));
    // Nothing was created by any of these.
    let exists: bool = raw(server, 0).exists(&key).unwrap();
    assert!(!exists);
}

/// A key holding a string, a list or a hash of someone else's is never taken over: the
/// open fails naming what is there, and the key is left exactly as it was.
#[test]
fn keys_holding_other_data_are_refused_and_left_alone() {
    let Some(server) = server() else { return };
    let mut c = raw(server, 0);
    let string = unique_key("string");
    let _: () = c.set(&string, "hello").unwrap();
    let list = unique_key("list");
    let _: () = c.rpush(&list, "a").unwrap();
    let hash = unique_key("hash");
    let _: () = c.hset(&hash, "name", "mine").unwrap();
    for (key, words) in [
        (&string, "a Redis string"),
        (&list, "a Redis list"),
        (&hash, "without the fields"),
    ] {
        let e = enduro::redis_atom(0u64, &server.url(0), key).unwrap_err();
        assert!(e.to_string().contains(words), "{key}: {e}");
        assert!(e.to_string().contains(key.as_str()), "{key}: {e}");
    }
    let s: String = c.get(&string).unwrap();
    assert_eq!(s, "hello");
    let l: Vec<String> = c.lrange(&list, 0, -1).unwrap();
    assert_eq!(l, ["a"]);
    let h: std::collections::HashMap<String, String> = c.hgetall(&hash).unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(h["name"], "mine");

    // A key that turns into something else under a running atom: its swaps fail, and
    // the key is left alone.
    let key = unique_key("turned");
    let atom = enduro::redis_atom(1u64, &server.url(0), &key).unwrap();
    let _: () = c.del(&key).unwrap();
    let _: () = c.set(&key, "taken").unwrap();
    let e = atom.swap(|n| n + 1).unwrap_err();
    assert!(e.to_string().contains("a Redis string"), "{e}");
    let s: String = c.get(&key).unwrap();
    assert_eq!(s, "taken");
    assert_eq!(*atom.deref(), 1);
}

/// A stored value that does not decode is an error naming the key; the hash is untouched.
#[test]
fn undecodable_values_are_errors_and_left_untouched() {
    let Some(server) = server() else { return };
    let key = unique_key("undecodable");
    enduro::redis_atom("text".to_owned(), &server.url(0), &key).unwrap();
    let mut c = raw(server, 0);
    let before: std::collections::HashMap<String, Vec<u8>> = c.hgetall(&key).unwrap();
    let e = enduro::redis_atom(0u64, &server.url(0), &key).unwrap_err();
    assert!(e.to_string().contains(&key), "{e}");
    let after: std::collections::HashMap<String, Vec<u8>> = c.hgetall(&key).unwrap();
    assert_eq!(before, after);
}

/// The URL's database number is honoured: one key name in two databases is two atoms.
#[test]
fn database_numbers_keep_atoms_apart() {
    let Some(server) = server() else { return };
    let key = unique_key("db");
    let zero = enduro::redis_atom(0u64, &server.url(0), &key).unwrap();
    let five = enduro::redis_atom(500u64, &server.url(5), &key).unwrap();
    zero.swap(|n| n + 1).unwrap();
    five.swap(|n| n + 1).unwrap();
    assert_eq!(*zero.refresh().unwrap(), 1);
    assert_eq!(*five.refresh().unwrap(), 501);
    let in_five: String = raw(server, 5).hget(&key, "value").unwrap();
    assert_eq!(in_five, "501");
    let e = enduro::redis_atom(0u64, &server.url(99), &key).unwrap_err();
    assert!(e.to_string().contains("/99"), "{e}");
}

/// Release deletes the key; every clone is released; a new atom makes the key again, and
/// a handle of the old one (another process, say) can never write over it.
#[test]
fn release_and_re_creation() {
    let Some(server) = server() else { return };
    let key = unique_key("release");
    let url = server.url(0);
    let a = enduro::redis_atom(1u64, &url, &key).unwrap();
    let clone = a.clone();
    let other = enduro::redis_atom(0u64, &url, &key).unwrap();
    a.release().unwrap();
    let exists: bool = raw(server, 0).exists(&key).unwrap();
    assert!(!exists);
    assert!(matches!(clone.swap(|n| n + 1), Err(Error::Released)));
    assert!(a.is_released() && clone.is_released());
    let again = enduro::redis_atom(10u64, &url, &key).unwrap();
    assert!(matches!(other.swap(|n| n + 1), Err(Error::Released)));
    assert!(matches!(other.reset(3), Err(Error::Released)));
    assert_eq!(*again.swap(|n| n + 1).unwrap(), 11);
    let stored: String = raw(server, 0).hget(&key, "value").unwrap();
    assert_eq!(stored, "11");
}

/// A server that accepts connections and never answers fails a call after the command
/// timeout, instead of blocking it forever; a commit then says it may have been stored.
#[test]
fn a_silent_server_times_out() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(2) {
            held.push(stream);
        }
        std::thread::sleep(Duration::from_secs(3));
    });
    let start = std::time::Instant::now();
    let e = RedisAtom::builder(&format!("redis://127.0.0.1:{port}"), "k")
        .connect_timeout(Duration::from_millis(300))
        .command_timeout(Duration::from_millis(300))
        .open(0u64)
        .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(matches!(e, Error::Backend { .. }), "{e:?}");
    drop(held);
}

/// `rediss://` with a private certificate authority: the value goes over TLS; a server
/// whose certificate the atom does not trust is refused.
#[test]
fn tls_with_a_private_certificate_authority() {
    if !redis_server::available() {
        assert!(std::env::var("CI").is_err(), "CI=true needs redis-server");
        return;
    }
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let ca = |name: &str| {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
    };
    let authority = ca("enduro test CA");
    let stranger = ca("someone else");
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &authority)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, pem: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, pem).unwrap();
        path.to_string_lossy().into_owned()
    };
    let cert_file = write("server.crt", &cert.pem());
    let key_file = write("server.key", &key.serialize_pem());
    let ca_file = write("ca.crt", &authority.pem());
    let tls_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let server = RedisServer::start_with(&[
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        &cert_file,
        "--tls-key-file",
        &key_file,
        "--tls-ca-cert-file",
        &ca_file,
        "--tls-auth-clients",
        "no",
    ])
    .unwrap();
    let url = format!("rediss://:{}@127.0.0.1:{tls_port}/0", server.password());
    let atom = RedisAtom::builder(&url, "over-tls")
        .tls(Some(authority.pem().into_bytes()), None)
        .open(41u64)
        .unwrap();
    assert_eq!(*atom.swap(|n| n + 1).unwrap(), 42);
    let plain: String = raw(&server, 0).hget("over-tls", "value").unwrap();
    assert_eq!(plain, "42");
    let e = RedisAtom::builder(&url, "over-tls")
        .tls(Some(stranger.pem().into_bytes()), None)
        .open(0u64)
        .unwrap_err();
    assert!(matches!(e, Error::Backend { .. }), "{e:?}");
    assert_no_secret(&e, server.password());
    eprintln!("untrusted server: {e}");
}

/// `redis_atom_async`: an async atom shared by 16 tokio tasks, and a second one on the same
/// key, reach exact counts; outside a runtime, `open_async` says what it needs.
#[test]
fn async_atoms_from_tasks_are_exact() {
    let Some(server) = server() else { return };
    let url = server.url(0);
    let key = unique_key("async");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let a = enduro::redis_atom_async(0u64, &url, &key).await.unwrap();
        let b = RedisAtom::builder(&url, &key)
            .open_async(0u64)
            .await
            .unwrap();
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let atom = if i % 2 == 0 { a.clone() } else { b.clone() };
                tokio::spawn(async move {
                    for _ in 0..25 {
                        atom.swap(|n| n + 1).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(*a.refresh().await.unwrap(), 400);
        assert_eq!(*b.refresh().await.unwrap(), 400);
    });
    // No runtime: a tiny executor of our own polls the future.
    let future = RedisAtom::builder(&url, &key).open_async(0u64);
    let e = poll_here(future).unwrap_err();
    assert!(e.to_string().contains("tokio runtime"), "{e}");
}

/// Polls `future` to its end on this thread, with no runtime around it.
fn poll_here<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut future = std::pin::pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut context) {
            return out;
        }
        std::thread::yield_now();
    }
}
