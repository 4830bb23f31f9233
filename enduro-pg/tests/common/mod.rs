//! What enduro-pg's integration tests share: a database (`DATABASE_URL`, or a private
//! throwaway cluster; see [`pg_cluster`]), the conformance kit's backends on it, the worker
//! process (this very test binary, run again; see [`worker`]), and small helpers.
#![allow(dead_code)] // each test binary uses its own part
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

pub mod pg_cluster;
pub mod worker;

use std::sync::atomic::{AtomicUsize, Ordering};

use enduro_core::conformance::{AsyncBackend, Backend};
use enduro_core::{Result, Store};
use enduro_pg::PgStore;

/// The table the conformance kit's rows live in.
pub const TABLE: &str = "enduro_conformance";

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A key no other test (in this or another process) uses.
pub fn unique_key(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A current-thread tokio runtime with timers and I/O: the runtime a test of enduro inside
/// someone else's runtime, or of plain SQL beside it, runs on.
pub fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Rows of [`TABLE`], for the blocking suite (through the blocking wrapper) and the async
/// one (natively); each fresh resource is a new key, unique to this process.
#[derive(Debug)]
pub struct PgBackend {
    url: String,
    table: String,
}

impl PgBackend {
    /// A backend on `DATABASE_URL` or the private cluster, or `None` when neither can be
    /// had (never under `CI=true`, where that panics).
    pub fn try_new() -> Option<Self> {
        Some(PgBackend {
            url: pg_cluster::database_url()?,
            table: TABLE.to_owned(),
        })
    }
}

impl Backend for PgBackend {
    type Resource = String;

    fn fresh(&self) -> String {
        unique_key("conformance")
    }

    fn store(&self, key: &String) -> Result<Box<dyn Store>> {
        let store = PgStore::builder(&self.url, &self.table)
            .key(key.as_str())
            .max_connections(4)
            .open_blocking()?;
        Ok(Box::new(store))
    }
}

impl AsyncBackend for PgBackend {
    type Resource = String;
    type Store = PgStore;

    fn fresh(&self) -> String {
        unique_key("async-conformance")
    }

    async fn store(&self, key: &String) -> Result<PgStore> {
        PgStore::builder(&self.url, &self.table)
            .key(key.as_str())
            .max_connections(4)
            .open()
            .await
    }
}

/// A [`PgBackend`], or a `return` from the enclosing function (a skipped test, saying
/// why) when no database can be had — never under `CI=true`, where that panics.
#[macro_export]
macro_rules! pg_backend_or_skip {
    () => {
        match $crate::common::PgBackend::try_new() {
            Some(backend) => backend,
            None => return,
        }
    };
}

/// The password in a `postgres://user:password@host` URL.
pub fn password_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let userinfo = rest.rsplit_once('@')?.0;
    Some(userinfo.split_once(':')?.1.to_owned())
}

/// Fails the test if `secret` shows anywhere in `e`: its message, its `Debug`, or those of
/// its sources.
pub fn assert_no_secret(e: &enduro_core::Error, secret: &str) {
    let mut text = format!("{e} {e:?}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(" {s} {s:?}"));
        source = s.source();
    }
    assert!(!text.contains(secret), "the password leaked: {text}");
}

/// Commits `text` over `expected` through a blocking store.
pub fn commit(
    store: &enduro_pg::BlockingPgStore,
    expected: enduro_core::Version,
    text: &str,
) -> Result<enduro_core::Committed> {
    store.commit(expected, &mut |w: &mut dyn std::io::Write| {
        w.write_all(text.as_bytes()).map_err(|e| {
            enduro_core::Error::backend(store.resource(), "cannot write", Some(Box::new(e)))
        })
    })
}

/// `url` (a `postgres://` URL or `key=value` pairs) with `application_name` set to
/// `name`: a pool of its own, whose connections `pg_stat_activity` tells apart.
pub fn with_application_name(url: &str, name: &str) -> String {
    if url.contains("://") {
        let separator = if url.contains('?') { '&' } else { '?' };
        format!("{url}{separator}application_name={name}")
    } else {
        format!("{url} application_name={name}")
    }
}

/// Waits until `done` (60 s at most, then fails the test saying `what`).
#[allow(unused_imports)] // each test binary uses its own part
pub use enduro_core::conformance::eventually;

/// Plain SQL next to the atoms, for looking at the server (`pg_stat_activity`) and for
/// changes made by hand.
pub struct Observer(enduro_pg::BlockingPgStore);

impl Observer {
    /// An observer on the database `url` (its own pool: application `enduro_observer`).
    pub fn new(url: &str) -> Self {
        let url = with_application_name(url, "enduro_observer");
        Observer(
            PgStore::builder(&url, "enduro_observer")
                .max_connections(1)
                .open_blocking()
                .unwrap(),
        )
    }

    /// Runs `sql` (with `param` as `$1`, and then the first column of the one row it
    /// returns is the answer; or without parameters, as a batch, answering 0), a few
    /// times over while it fails: a connection a server restart broke is replaced on the
    /// next try.
    fn run_sql(&self, sql: &str, param: Option<&str>) -> i64 {
        let store = &self.0;
        let mut last = String::new();
        for _ in 0..5 {
            let done = store.run(async {
                let fail = |e: String| enduro_core::Error::backend("observer", e, None);
                let client = store
                    .inner()
                    .pool()
                    .get()
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                match param {
                    Some(param) => {
                        let row = client
                            .query_one(sql, &[&param])
                            .await
                            .map_err(|e| fail(e.to_string()))?;
                        Ok(row.get::<_, i64>(0))
                    }
                    None => {
                        client
                            .batch_execute(sql)
                            .await
                            .map_err(|e| fail(e.to_string()))?;
                        Ok(0)
                    }
                }
            });
            match done {
                Ok(answer) => return answer,
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("the observer's statement failed: {last}");
    }

    /// The first column of the one row `sql` returns, with `param` as `$1`.
    pub fn i64(&self, sql: &str, param: &str) -> i64 {
        self.run_sql(sql, Some(param))
    }

    /// Runs `sql` (statements without parameters).
    pub fn execute(&self, sql: &str) {
        self.run_sql(sql, None);
    }

    /// How many connections of application `app` the server has.
    pub fn connections(&self, app: &str) -> i64 {
        self.i64(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            app,
        )
    }

    /// How many connections of application `app` listen for notifications (their last
    /// statement a `LISTEN` or `UNLISTEN`, which only a listener runs).
    pub fn listening(&self, app: &str) -> i64 {
        self.i64(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 \
             AND query ~ 'LISTEN'",
            app,
        )
    }
}
