//! PostgreSQL as production runs it: TLS in every `sslmode` against a private cluster that
//! accepts only TLS (certificates made here by a private CA), client certificates, the
//! server's own words in errors (never the password), connect timeouts that hold against
//! a server that accepts and never answers, pooled connections that scale with processes
//! rather than atoms, and idle connections that close.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::pg_cluster::{PgCluster, ServerTls, Setup, private_cluster};
use enduro::{Error, PgAtom, PgStore};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

/// Certificates made for the tests, and where they are on disk.
struct Pki {
    dir: PathBuf,
    /// The CA that signed the server's and the client's certificates.
    ca: PathBuf,
    /// Another CA, which signed nothing the server shows.
    stranger: PathBuf,
    server_cert: String,
    server_key: String,
    ca_pem: String,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// A certificate for `names` with common name `cn`, signed by `ca`: (cert, key), PEM.
fn leaf(names: &[&str], cn: &str, ca: &CertifiedIssuer<'static, KeyPair>) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    let cert = params.signed_by(&key, ca).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("enduro-pki-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let authority = ca("enduro test CA");
        let stranger = ca("someone else's CA");
        // The server is `localhost` only: connecting to 127.0.0.1 by address is a name
        // mismatch for verify-full.
        let (server_cert, server_key) = leaf(&["localhost"], "localhost", &authority);
        let (client_cert, client_key) = leaf(&[], "certuser", &authority);
        let write = |name: &str, content: &str| {
            let path = dir.join(name);
            std::fs::write(&path, content).unwrap();
            path
        };
        Pki {
            ca: write("ca.pem", &authority.pem()),
            stranger: write("stranger.pem", &stranger.pem()),
            client_cert: write("client.pem", &client_cert),
            client_key: write("client.key", &client_key),
            ca_pem: authority.pem(),
            server_cert,
            server_key,
            dir,
        }
    })
}

/// The cluster that takes TCP connections over TLS only (by password, or for `certuser`
/// by client certificate), and trusts its Unix socket.
fn tls_cluster() -> Option<&'static PgCluster> {
    static CLUSTER: OnceLock<Option<PgCluster>> = OnceLock::new();
    CLUSTER
        .get_or_init(|| {
            let pki = pki();
            let setup = Setup {
                tls: Some(ServerTls {
                    cert_pem: pki.server_cert.clone(),
                    key_pem: pki.server_key.clone(),
                    client_ca_pem: Some(pki.ca_pem.clone()),
                }),
                hba: Some(
                    "local all all trust\n\
                     hostssl all certuser 127.0.0.1/32 cert\n\
                     hostssl all all 127.0.0.1/32 scram-sha-256\n"
                        .into(),
                ),
                ..Setup::default()
            };
            let cluster = match PgCluster::start_with(setup) {
                Ok(cluster) => cluster,
                Err(e) => return common::pg_cluster::skip_or_panic(&e.to_string()),
            };
            sql(
                &cluster,
                "CREATE ROLE certuser LOGIN; GRANT ALL ON SCHEMA public TO certuser",
            );
            Some(cluster)
        })
        .as_ref()
}

/// Runs `work` with a client of the superuser over the cluster's Unix socket.
fn as_superuser<R>(cluster: &PgCluster, work: impl AsyncFnOnce(&tokio_postgres::Client) -> R) -> R {
    let runtime = common::current_thread();
    runtime.block_on(async {
        let (client, connection) =
            tokio_postgres::connect(&cluster.socket_url(), tokio_postgres::NoTls)
                .await
                .unwrap();
        tokio::spawn(connection);
        work(&client).await
    })
}

/// Runs `batch` as the superuser.
fn sql(cluster: &PgCluster, batch: &str) {
    as_superuser(cluster, async |client| {
        client.batch_execute(batch).await.unwrap()
    });
}

/// The number of connections to `cluster` named `application_name`.
fn connections(cluster: &PgCluster, application_name: &str) -> i64 {
    as_superuser(cluster, async |client| {
        client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                &[&application_name],
            )
            .await
            .unwrap()
            .get(0)
    })
}

/// A URL for the superuser by password over TCP to `host`, with `params`.
fn url(cluster: &PgCluster, host: &str, params: &str) -> String {
    format!(
        "postgres://postgres:{}@{host}:{}/postgres?{params}",
        cluster.password(),
        cluster.port()
    )
}

/// The error's text, after checking that neither it nor its `Debug` shows `secret`.
fn said(e: &Error, secret: &str) -> String {
    let text = e.to_string();
    assert!(!text.contains(secret), "the password leaked: {text}");
    assert!(
        !format!("{e:?}").contains(secret),
        "the password leaked: {e:?}"
    );
    text
}

fn counter(db: &str, key: &str) -> Result<enduro::Atom<u64>, Error> {
    PgAtom::builder(db, "tls_hits").key(key).open(0)
}

/// Whether the store's own connection is encrypted, asked of the server.
fn encrypted(db: &str) -> bool {
    let store = PgStore::builder(db, "tls_hits").open_blocking().unwrap();
    store
        .run(async {
            let client = store.inner().pool().get().await.unwrap();
            let row = client
                .query_one(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                    &[],
                )
                .await
                .unwrap();
            Ok(row.get::<_, bool>(0))
        })
        .unwrap()
}

#[test]
fn require_and_prefer_encrypt_and_a_plain_connection_hears_why_not() {
    let Some(cluster) = tls_cluster() else { return };
    let require = url(cluster, "127.0.0.1", "sslmode=require");
    let hits = counter(&require, "require").unwrap();
    assert_eq!(*hits.swap(|n| n + 1).unwrap(), 1);
    assert!(encrypted(&require));
    // libpq's default, prefer, takes TLS when the server offers it.
    assert!(encrypted(&url(
        cluster,
        "127.0.0.1",
        "application_name=prefer"
    )));

    let e = counter(&url(cluster, "127.0.0.1", "sslmode=disable"), "plain").unwrap_err();
    let text = said(&e, cluster.password());
    assert!(matches!(e, Error::Backend { .. }), "{e:?}");
    assert!(
        text.contains("no pg_hba.conf entry") && text.contains("no encryption"),
        "the server's words: {text}"
    );
    assert!(text.contains("sslmode=require"), "what to do: {text}");
}

#[test]
fn verify_full_checks_the_host_name_and_verify_ca_the_signer() {
    let Some(cluster) = tls_cluster() else { return };
    let pki = pki();
    let ca = pki.ca.display();
    let full = url(
        cluster,
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    assert_eq!(*counter(&full, "full").unwrap().swap(|n| n + 1).unwrap(), 1);

    let by_address = url(
        cluster,
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    let e = counter(&by_address, "full-wrong-name").unwrap_err();
    let text = said(&e, cluster.password());
    assert!(
        text.contains("TLS handshake failed")
            && text.contains("not valid for the host name `127.0.0.1`"),
        "{text}"
    );

    let ca_only = url(
        cluster,
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={ca}"),
    );
    assert_eq!(
        *counter(&ca_only, "ca").unwrap().swap(|n| n + 1).unwrap(),
        1
    );

    let stranger = url(
        cluster,
        "localhost",
        &format!("sslmode=verify-ca&sslrootcert={}", pki.stranger.display()),
    );
    let text = said(
        &counter(&stranger, "stranger").unwrap_err(),
        cluster.password(),
    );
    assert!(
        text.contains("not signed by a CA this client trusts"),
        "{text}"
    );
    // And without sslrootcert, the platform's roots do not know a private CA either.
    let platform = url(cluster, "localhost", "sslmode=verify-full");
    let text = said(
        &counter(&platform, "platform").unwrap_err(),
        cluster.password(),
    );
    assert!(
        text.contains("not signed by a CA") || text.contains("no trusted CA certificates"),
        "{text}"
    );
}

/// A live atom's listener connects as the pool does: here only TLS with a verified
/// certificate gets in, and the notifications still arrive.
#[test]
fn a_live_atom_listens_over_tls_too() {
    let Some(cluster) = tls_cluster() else { return };
    let ca = pki().ca.display();
    let app = "enduro_tls_live";
    let db = url(
        cluster,
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca}&application_name={app}"),
    );
    let live = PgAtom::builder(&db, "tls_hits")
        .key("live")
        .live(true)
        .open(0u64)
        .unwrap();
    let listening_over_tls = || {
        as_superuser(cluster, async |client| {
            client
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
                     WHERE a.application_name = $1 AND a.query ~ 'LISTEN' AND s.ssl",
                    &[&app],
                )
                .await
                .unwrap()
                .get::<_, i64>(0)
        })
    };
    let start = std::time::Instant::now();
    while listening_over_tls() != 1 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no listener over TLS"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let writer = counter(&db, "live").unwrap();
    for _ in 0..5 {
        writer.swap(|n| n + 1).unwrap();
    }
    let start = std::time::Instant::now();
    while *live.deref() != 5 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the live atom did not follow"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    writer.release().unwrap();
}

#[test]
fn a_client_certificate_logs_in() {
    let Some(cluster) = tls_cluster() else { return };
    let pki = pki();
    let db = format!(
        "host=localhost port={} user=certuser dbname=postgres sslmode=verify-full \
         sslrootcert={} sslcert={} sslkey={}",
        cluster.port(),
        pki.ca.display(),
        pki.client_cert.display(),
        pki.client_key.display()
    );
    let hits = PgAtom::builder(&db, "cert_hits").open(0u64).unwrap();
    assert_eq!(*hits.swap(|n| n + 1).unwrap(), 1);
    // Without the certificate, certuser is refused, in the server's words.
    let without = format!(
        "host=localhost port={} user=certuser dbname=postgres sslmode=require",
        cluster.port()
    );
    let e = PgAtom::builder(&without, "cert_hits")
        .open(0u64)
        .unwrap_err();
    assert!(e.to_string().contains("certuser"), "{e}");
}

#[test]
fn the_servers_words_name_what_is_wrong_and_never_the_password() {
    let Some(cluster) = tls_cluster() else { return };
    let wrong = format!(
        "postgres://postgres:not-the-password-4711@127.0.0.1:{}/postgres?sslmode=require",
        cluster.port()
    );
    let text = said(&counter(&wrong, "x").unwrap_err(), "not-the-password-4711");
    assert!(
        text.contains(r#"password authentication failed for user "postgres""#),
        "{text}"
    );

    let text = said(
        &counter(
            &url(cluster, "127.0.0.1", "sslmode=require").replace("/postgres?", "/nope_db?"),
            "x",
        )
        .unwrap_err(),
        cluster.password(),
    );
    assert!(
        text.contains(r#"database "nope_db" does not exist"#),
        "{text}"
    );

    // As with libpq, sslmode does not apply to the Unix socket.
    let socket = cluster
        .socket_url()
        .replace("sslmode=disable", "sslmode=require");
    assert_eq!(
        *counter(&socket, "socket").unwrap().swap(|n| n + 1).unwrap(),
        1
    );

    let nobody = cluster.socket_url().replace("user=postgres", "user=nobody");
    let text = counter(&nobody, "x").unwrap_err().to_string();
    assert!(text.contains(r#"role "nobody" does not exist"#), "{text}");
}

#[test]
fn require_against_a_server_without_tls_says_so() {
    let Some(plain) = private_cluster() else {
        return;
    };
    let db = format!("{}?sslmode=require", plain.url());
    let e = counter(&db, "x").unwrap_err();
    let text = said(&e, plain.password());
    assert!(text.contains("does not accept TLS"), "{text}");
}

/// A listener on 127.0.0.1 that accepts connections and never answers, or (with
/// `answer_tls`) answers the TLS request with yes and then goes silent. Its sockets stay
/// open until the process ends.
fn silent_listener(answer_tls: bool) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held: Vec<TcpStream> = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            if answer_tls {
                let mut request = [0u8; 8];
                if stream.read_exact(&mut request).is_ok() {
                    let _ = stream.write_all(b"S");
                }
            }
            held.push(stream);
        }
    });
    port
}

fn timed_open(db: &str, timeout: Duration) -> (Duration, String) {
    let started = Instant::now();
    let e = PgAtom::builder(db, "t")
        .connect_timeout(timeout)
        .open(0u64)
        .unwrap_err();
    (started.elapsed(), e.to_string())
}

#[test]
fn a_server_that_never_answers_fails_the_open_within_the_connect_timeout() {
    let port = silent_listener(false);
    let timeout = Duration::from_millis(800);
    for (params, phase) in [
        ("", "did not answer the request for TLS"),
        ("sslmode=disable", "start-up and authentication did not end"),
    ] {
        let db = format!("postgres://app:hunter2@127.0.0.1:{port}/app?{params}");
        let (took, text) = timed_open(&db, timeout);
        assert!(took >= timeout, "gave up early: {took:?}");
        assert!(took < timeout + Duration::from_secs(3), "took {took:?}");
        assert!(
            text.contains("timed out connecting")
                && text.contains(&format!("at app@127.0.0.1:{port}/app"))
                && text.contains(phase)
                && text.contains("800ms"),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
    }
    // The connection string's connect_timeout (in seconds) holds too.
    let db = format!("postgres://app@127.0.0.1:{port}/app?connect_timeout=1");
    let started = Instant::now();
    let e = PgAtom::builder(&db, "t").open(0u64).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(e.to_string().contains("within 1s"), "{e}");
}

#[test]
fn a_server_silent_after_saying_yes_to_tls_times_out_in_the_handshake() {
    let port = silent_listener(true);
    let db = format!("postgres://app@127.0.0.1:{port}/app?sslmode=require");
    let (took, text) = timed_open(&db, Duration::from_millis(600));
    assert!(took < Duration::from_secs(4), "took {took:?}");
    assert!(text.contains("the TLS handshake did not end"), "{text}");
}

#[tokio::test(flavor = "current_thread")]
async fn an_async_open_times_out_without_blocking_its_runtime() {
    let port = silent_listener(false);
    let db = format!("postgres://app@127.0.0.1:{port}/app");
    let ticks = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let ticker = {
        let ticks = ticks.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        })
    };
    let started = Instant::now();
    let e = PgAtom::builder(&db, "t")
        .connect_timeout(Duration::from_millis(700))
        .open_async(0u64)
        .await
        .unwrap_err();
    ticker.abort();
    assert!(started.elapsed() < Duration::from_secs(4));
    assert!(e.to_string().contains("timed out connecting"), "{e}");
    // The runtime's one thread kept running other tasks while the open waited.
    assert!(ticks.load(std::sync::atomic::Ordering::Relaxed) >= 5);
}

#[test]
fn waiting_for_a_busy_pool_is_bounded_too() {
    let Some(db) = common::pg_cluster::database_url() else {
        return;
    };
    let db = format!(
        "{db}{}application_name=enduro-busy",
        if db.contains('?') { "&" } else { "?" }
    );
    let store = PgStore::builder(&db, "busy")
        .max_connections(1)
        .statement_timeout(Duration::from_millis(700))
        .open_blocking()
        .unwrap();
    let atom = enduro::Atom::open(store, 0u64, enduro::Options::new()).unwrap();
    let other = PgStore::builder(&db, "busy")
        .max_connections(1)
        .statement_timeout(Duration::from_millis(700))
        .open_blocking()
        .unwrap();
    // The one connection, held.
    let held = other.run(async { Ok(other.inner().pool().get().await.unwrap()) });
    let started = Instant::now();
    let e = atom.swap(|n| n + 1).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        e.to_string()
            .contains("no free database connection within 700ms"),
        "{e}"
    );
    assert_eq!(*atom.deref(), 0);
    drop(held);
    assert_eq!(*atom.swap(|n| n + 1).unwrap(), 1);
}

/// A pool of the caller's own, without a wait timeout: waiting for its one busy connection
/// is bounded by the statement timeout all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_a_busy_pool_of_ones_own_is_bounded_too() {
    use enduro::deadpool_postgres::{Manager, Pool};

    let Some(db) = common::pg_cluster::database_url() else {
        return;
    };
    let config: enduro::tokio_postgres::Config = db.parse().unwrap();
    let pool = Pool::builder(Manager::new(config, enduro::tokio_postgres::NoTls))
        .max_size(1)
        .build()
        .unwrap();
    let atom = PgAtom::with_pool(pool.clone(), "busy_own")
        .key(common::unique_key("own"))
        .statement_timeout(Duration::from_millis(700))
        .open_async(0u64)
        .await
        .unwrap();
    let held = pool.get().await.unwrap();
    let started = Instant::now();
    let swap = tokio::time::timeout(Duration::from_secs(10), atom.swap(|n| n + 1)).await;
    let e = swap
        .expect("the swap waited for the busy pool past 10 s")
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(e.to_string().contains("no free database connection"), "{e}");
    assert_eq!(*atom.deref(), 0);
    drop(held);
    assert_eq!(*atom.swap(|n| n + 1).await.unwrap(), 1);
}

/// 1,000 atoms of one table in one process, against a server that takes 20 connections:
/// they share one pool, so the server never sees more than its size.
#[test]
fn a_thousand_atoms_share_a_small_pool() {
    let Some(cluster) = private_cluster_with(Setup {
        max_connections: Some(20),
        ..Setup::default()
    }) else {
        return;
    };
    let db = format!("{}?application_name=enduro-many", cluster.url());
    let threads_before = threads();
    let atoms: Vec<_> = (0..1000)
        .map(|i| {
            PgAtom::builder(&db, "many")
                .key(format!("k{i}"))
                .open(i as u64)
                .unwrap()
        })
        .collect();
    for (i, atom) in atoms.iter().enumerate() {
        assert_eq!(*atom.swap(|n| n + 1).unwrap(), i as u64 + 1);
    }
    let open = connections(&cluster, "enduro-many");
    assert!(
        (1..=enduro::DEFAULT_MAX_CONNECTIONS as i64).contains(&open),
        "{open} connections for 1,000 atoms"
    );
    // Blocking atoms start no thread of their own.
    assert!(threads() < threads_before + 10, "{} threads", threads());

    // The same from async code, all at once: they wait their turn for the pool.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..1000u64 {
            let db = db.clone();
            tasks.spawn(async move {
                let atom = PgAtom::builder(&db, "many")
                    .key(format!("k{i}"))
                    .open_async(0u64)
                    .await
                    .unwrap();
                assert_eq!(*atom.swap(|n| n + 1).await.unwrap(), i + 2);
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
    });
    let open = connections(&cluster, "enduro-many");
    assert!(open <= enduro::DEFAULT_MAX_CONNECTIONS as i64, "{open}");
    drop(atoms);
}

#[test]
fn idle_connections_close() {
    let Some(cluster) = private_cluster() else {
        return;
    };
    let db = format!("{}?application_name=enduro-idle", cluster.url());
    let atom = PgAtom::builder(&db, "idle")
        .idle_timeout(Duration::from_millis(500))
        .open(0u64)
        .unwrap();
    atom.swap(|n| n + 1).unwrap();
    assert!(connections(&cluster, "enduro-idle") >= 1);
    let started = Instant::now();
    while connections(&cluster, "enduro-idle") > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "idle connections stayed open"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The atom takes a new connection when it needs one.
    assert_eq!(*atom.swap(|n| n + 1).unwrap(), 2);
}

fn private_cluster_with(setup: Setup) -> Option<PgCluster> {
    match PgCluster::start_with(setup) {
        Ok(cluster) => Some(cluster),
        Err(e) => common::pg_cluster::skip_or_panic(&e.to_string()),
    }
}

/// This process's thread count.
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn certificate_files_are_read_at_open() {
    let dir = &pki().dir;
    let db = format!(
        "postgres://app:hunter2@127.0.0.1:1/app?sslmode=verify-full&sslrootcert={}",
        dir.join("missing.pem").display()
    );
    let e = counter(&db, "x").unwrap_err();
    let text = said(&e, "hunter2");
    assert!(text.contains("cannot read sslrootcert"), "{text}");
}

/// An async atom outlives the runtime that opened it, whichever its flavour: its pool's
/// connections run on enduro's own runtime. And a connection that one runtime opened
/// keeps working for another runtime's task that holds it when the first one ends.
#[test]
fn an_atom_outlives_the_runtime_that_opened_it() {
    let Some(db) = common::pg_cluster::database_url() else {
        return;
    };
    let multi_thread = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    };
    type Make = fn() -> tokio::runtime::Runtime;
    let kinds: [(Make, Make); 2] = [
        (common::current_thread, common::current_thread),
        (multi_thread, multi_thread),
    ];
    for (first, second) in kinds {
        let key = common::unique_key("outlives");
        let first = first();
        let atom = first.block_on(async {
            let atom = PgAtom::builder(&db, "outlives")
                .key(key.as_str())
                .max_connections(1)
                .open_async(0u64)
                .await
                .unwrap();
            atom.swap(|n| n + 1).await.unwrap();
            atom
        });
        drop(first);
        let second = second();
        second.block_on(async {
            assert_eq!(*atom.swap(|n| n + 1).await.unwrap(), 2);
            assert_eq!(*atom.swap(|n| n + 1).await.unwrap(), 3);
        });
    }

    // One pool, one connection: opened under `first`, held by a task of `second` while
    // `first` ends.
    let db = format!(
        "{db}{}application_name=enduro-held",
        if db.contains('?') { "&" } else { "?" }
    );
    let first = multi_thread();
    let pool = first.block_on(async {
        let store = PgStore::builder(&db, "outlives")
            .max_connections(1)
            .open()
            .await
            .unwrap();
        store.pool().clone()
    });
    let second = multi_thread();
    let held = second.block_on(async { pool.get().await.unwrap() });
    drop(first);
    second.block_on(async {
        let row = held.query_one("SELECT 41 + 1", &[]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), 42);
    });
}
