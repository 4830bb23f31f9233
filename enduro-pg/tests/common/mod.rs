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
