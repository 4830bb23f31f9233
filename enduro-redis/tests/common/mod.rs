//! What enduro-redis's integration tests share: a private Redis server (see
//! [`redis_server`]), the conformance kit's backends on it, the worker process (this very
//! test binary, run again; see [`worker`]), and small helpers.
#![allow(dead_code)] // each test binary uses its own part
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

pub mod redis_server;
pub mod worker;

use std::sync::atomic::{AtomicUsize, Ordering};

use enduro_core::conformance::{AsyncBackend, Backend};
use enduro_core::{OffThread, Result, Store};
use enduro_redis::RedisStore;

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A key no other test (in this or another process) uses.
pub fn unique_key(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Keys of the shared private server: each fresh resource is a new key.
#[derive(Debug)]
pub struct RedisBackend {
    pub url: String,
}

impl RedisBackend {
    /// A backend on the shared private server, or `None` when `redis-server` cannot be
    /// run (never under `CI=true`, where that panics).
    pub fn try_new() -> Option<Self> {
        Some(RedisBackend {
            url: redis_server::shared()?.url(0),
        })
    }
}

impl Backend for RedisBackend {
    type Resource = String;

    fn fresh(&self) -> String {
        unique_key("conformance")
    }

    fn store(&self, key: &String) -> Result<Box<dyn Store>> {
        Ok(Box::new(RedisStore::builder(&self.url, key).open()?))
    }
}

impl AsyncBackend for RedisBackend {
    type Resource = String;
    type Store = OffThread<RedisStore>;

    fn fresh(&self) -> String {
        unique_key("async-conformance")
    }

    async fn store(&self, key: &String) -> Result<OffThread<RedisStore>> {
        let builder = RedisStore::builder(&self.url, key);
        let store = tokio::task::spawn_blocking(move || builder.open())
            .await
            .unwrap()?;
        OffThread::new(store)
    }
}

/// A [`RedisBackend`], or a `return` from the enclosing function (a skipped test, saying
/// why) when no server can be had — never under `CI=true`, where that panics.
#[macro_export]
macro_rules! redis_backend_or_skip {
    () => {
        match $crate::common::RedisBackend::try_new() {
            Some(backend) => backend,
            None => return,
        }
    };
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
