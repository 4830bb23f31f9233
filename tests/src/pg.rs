//! The PostgreSQL backend of the conformance suite: a resource is one row key of a shared
//! table, in `DATABASE_URL` or the test binary's private cluster.

use std::sync::atomic::{AtomicUsize, Ordering};

use enduro::store::Store;

use crate::Backend;
use crate::pg_cluster;

/// The table the suite's rows live in.
pub const TABLE: &str = "enduro_conformance";

/// Rows of [`TABLE`]; each fresh resource is a new key, unique to this process.
#[derive(Debug)]
pub struct PgBackend {
    url: String,
    table: String,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A key no other test (in this or another process) uses.
pub fn unique_key(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
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

    /// The connection URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Backend for PgBackend {
    type Resource = String;

    fn fresh(&self) -> String {
        unique_key("conformance")
    }

    fn store(&self, key: &String) -> enduro::Result<Box<dyn Store>> {
        let store = enduro::PgStore::builder(&self.url, &self.table)
            .key(key.as_str())
            .max_connections(4)
            .open_blocking()?;
        Ok(Box::new(store))
    }
}

/// Instantiates the conformance suite against PostgreSQL, skipping (outside CI) when no
/// database can be had.
#[macro_export]
macro_rules! pg_backend_or_skip {
    () => {
        match $crate::pg::PgBackend::try_new() {
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
pub fn assert_no_secret(e: &enduro::Error, secret: &str) {
    let mut text = format!("{e} {e:?}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(" {s} {s:?}"));
        source = s.source();
    }
    assert!(!text.contains(secret), "the password leaked: {text}");
}
