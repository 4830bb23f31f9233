//! What the core's tests share: an async store over a blocking one that pauses at every
//! call, so that tasks really interleave and timeouts cut swaps at every await point of the
//! driver (waiting for a batch, leading one, checking, committing, loading); and a memory
//! store whose check counts as a round trip.
// Each test binary that includes this module uses only some of it.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use enduro_core::{
    AsyncStore, BoxFuture, Committed, Encoder, Error, Observed, Result, Snapshot, Store, Version,
};
use enduro_mem::MemStore;

/// How a [`Paced`] store pauses.
pub enum Pace {
    /// Yields to the runtime once.
    Yield,
    /// Sleeps this long.
    Sleep(Duration),
    /// Not at all, yields or sleeps 0.2–1 ms, as a sequence from this seed decides.
    Jitter(AtomicU64),
}

/// An async store over the blocking store `inner`, pausing before every call and again
/// before a commit's answer comes back (a caller may give up then, after the commit
/// landed).
pub struct Paced<S> {
    pub inner: S,
    pub pace: Pace,
    /// Whether swaps check the store first (as a file store's do) or go straight to the
    /// commit (as a database store's do).
    pub cheap_check: bool,
}

impl<S: Store> Paced<S> {
    async fn pause(&self) {
        match &self.pace {
            Pace::Yield => tokio::task::yield_now().await,
            Pace::Sleep(pause) => tokio::time::sleep(*pause).await,
            Pace::Jitter(seed) => {
                let n = seed.fetch_add(0x9e37_79b9, Ordering::Relaxed);
                match (n >> 7) % 4 {
                    0 => {}
                    1 => tokio::task::yield_now().await,
                    _ => tokio::time::sleep(Duration::from_micros(200 + (n % 800))).await,
                }
            }
        }
    }
}

impl<S: Store> AsyncStore for Paced<S> {
    fn resource(&self) -> String {
        self.inner.resource()
    }
    fn load(&self) -> BoxFuture<'_, Result<Option<Snapshot>>> {
        Box::pin(async move {
            self.pause().await;
            self.inner.load()
        })
    }
    fn check(&self, known: Version) -> BoxFuture<'_, Result<Observed>> {
        Box::pin(async move {
            self.pause().await;
            self.inner.check(known)
        })
    }
    fn commit(&self, expected: Version, bytes: Vec<u8>) -> BoxFuture<'_, Result<Committed>> {
        Box::pin(async move {
            self.pause().await;
            let done = self.inner.commit(expected, &mut |out| {
                out.write_all(&bytes).map_err(|e| {
                    Error::backend(self.inner.resource(), "cannot write", Some(Box::new(e)))
                })
            });
            self.pause().await;
            done
        })
    }
    fn release(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move { self.inner.release() })
    }
    fn cheap_check(&self) -> bool {
        self.cheap_check
    }
}

/// A memory store that says its check is expensive, like a database's.
pub struct Remote(pub Arc<MemStore>);

impl Store for Remote {
    fn resource(&self) -> String {
        self.0.resource()
    }
    fn load(&self) -> Result<Option<Snapshot>> {
        self.0.load()
    }
    fn check(&self, known: Version) -> Result<Observed> {
        self.0.check(known)
    }
    fn commit(&self, expected: Version, encode: Encoder<'_>) -> Result<Committed> {
        self.0.commit(expected, encode)
    }
    fn release(&self) -> Result<()> {
        self.0.release()
    }
    fn cheap_check(&self) -> bool {
        false
    }
}
