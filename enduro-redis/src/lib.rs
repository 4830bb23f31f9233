//! Redis atoms for enduro: one atom is one key of a Redis server, shared safely by every
//! process and machine that opens it.
//!
//! ```no_run
//! let hits = enduro::redis_atom(0u64, "redis://localhost:6379/0", "hits")?;
//! hits.swap(|n| n + 1)?; // one round trip: a compare-and-set on the server
//! # Ok::<(), enduro::Error>(())
//! ```
//!
//! ```no_run
//! # async fn demo() -> enduro::Result<()> {
//! let hits = enduro::redis_atom_async(0u64, "redis://localhost:6379/0", "hits").await?;
//! hits.swap(|n| n + 1).await?;
//! # Ok(()) }
//! ```
//!
//! # What is stored
//!
//! The key holds a hash of four fields:
//!
//! | field   | holds                                                                    |
//! |---------|--------------------------------------------------------------------------|
//! | `value` | the encoded value (JSON by default; any codec, binary ones too)          |
//! | `gen`   | bumped by one on every commit                                            |
//! | `inc`   | a random number chosen when the hash is created (its incarnation)        |
//! | `tok`   | a random token of the last commit                                        |
//!
//! Every call is one Lua script, run atomically by the server: a swap is one round trip
//! (a compare-and-set on `gen` and `inc`) when nobody else wrote; otherwise it reloads,
//! re-runs the function and tries again, so processes on several machines reach exact
//! counts. A key released (`DEL`) and made again gets a new incarnation, so a handle that
//! knew the old one can never overwrite the new one. To change a value by hand, bump
//! `gen` too (`HSET hits value 41` then `HINCRBY hits gen 1`, in a `MULTI`), so that
//! running atoms notice.
//!
//! A key that holds anything but such a hash (a string, a list, a hash of your own) is
//! never touched: opening fails, naming the key's type.
//!
//! # Live atoms
//!
//! With [`RedisAtom::live`], other writers' commits reach an atom without `refresh`: every
//! commit and release also publishes on the channel `enduro:<key>`, and one subscriber
//! connection per server and process hands the messages to its live atoms.
//!
//! # Durability
//!
//! A swap returns once the server has answered the script; what survives a crash then
//! depends on the server's persistence settings:
//!
//! | server settings                          | a swap that returned `Ok` survives |
//! |------------------------------------------|-------------------------------------|
//! | `appendonly yes`, `appendfsync always`   | a crash of the server and a power loss of its machine: Redis writes and fsyncs the command to its append-only file before it answers |
//! | `appendonly yes`, `appendfsync everysec` (Redis's default for AOF) | a crash of the server process; a power loss may lose up to about the last second of swaps |
//! | `appendonly yes`, `appendfsync no`       | a crash of the server process; a power loss loses what the OS had not written |
//! | `appendonly no` (RDB snapshots only)     | only until the next snapshot: a crash loses every swap since the last one |
//! | no persistence                           | nothing: a restart empties the key (the next open stores `init` again) |
//!
//! A server that evicts keys under memory pressure (`maxmemory` with an `allkeys-*`
//! policy) may evict an atom's key, which its atoms then take for a release.
//! Replication does not change this: a swap acknowledged by a primary that fails before
//! its replicas received it is lost when a replica takes over (`WAIT` is not used).
//!
//! # Failures
//!
//! A call that surely did not run (refused connection, wrong password, wrong type at the
//! key) fails with [`Error::Backend`](enduro_core::Error::Backend), saying why. A commit
//! whose answer is lost (the connection closed or [`DEFAULT_COMMAND_TIMEOUT`] passed) is
//! sent once more on a new connection with the same token: the server then says whether
//! it was stored; if that fails too, or the atom changed meanwhile, the swap fails with
//! [`Error::Uncertain`](enduro_core::Error::Uncertain) (it may have been stored). A
//! pooled connection found closed (after a server restart) is replaced at once.
//!
//! URLs: `redis://[[user]:password@]host[:port][/db]`, `rediss://...` for TLS (rustls;
//! the platform's certificate authorities, or yours with [`RedisAtom::tls`]),
//! `redis+unix:///path/to/socket?db=N`. Passwords never appear in errors or `Debug`
//! output.
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

mod listen;
mod scripts;
mod store;
mod url;

pub use store::{
    DEFAULT_COMMAND_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_IDLE_CONNECTIONS, RedisStore,
    RedisStoreBuilder,
};

use std::fmt;
use std::time::Duration;

use enduro_core::{AsyncAtom, Atom, Options, Result, Value};

/// Opens a blocking atom at `key` on the Redis server of `url`
/// (`redis://[[user]:password@]host[:port][/db]`, or `rediss://` for TLS). If the key
/// holds an atom, its value is used and `init` is ignored; otherwise `init` is stored.
///
/// ```no_run
/// let atom = enduro::redis_atom(vec![1, 2], "redis://:secret@cache.internal/1", "lists")?;
/// assert_eq!(atom.deref().len(), 2);
/// # Ok::<(), enduro::Error>(())
/// ```
pub fn redis_atom<T: Value>(init: T, url: &str, key: &str) -> Result<Atom<T>> {
    RedisAtom::builder(url, key).open(init)
}

/// Opens an async atom at `key` on the Redis server of `url`; see [`redis_atom`]. Must
/// be called inside a tokio runtime: every call to the server runs on its blocking
/// thread pool, never on the runtime's own threads.
///
/// ```no_run
/// # async fn demo() -> enduro::Result<()> {
/// let atom = enduro::redis_atom_async(0i64, "redis://localhost", "counter").await?;
/// let shared = atom.clone();
/// tokio::spawn(async move { shared.swap(|n| n + 1).await }).await.ok();
/// # Ok(()) }
/// ```
pub async fn redis_atom_async<T: Value>(init: T, url: &str, key: &str) -> Result<AsyncAtom<T>> {
    RedisAtom::builder(url, key).open_async(init).await
}

/// Builds Redis atoms with options: timeouts, TLS certificates, the codec, a validator.
/// Every order of the setters gives the same atom.
///
/// ```no_run
/// use std::time::Duration;
///
/// let atom = enduro::RedisAtom::builder("redis://localhost", "limits")
///     .command_timeout(Duration::from_secs(5))
///     .validator(|n: &u32| *n <= 100)
///     .open(10)?;
/// assert!(atom.reset(1000).is_err());
/// # Ok::<(), enduro::Error>(())
/// ```
pub struct RedisAtom<T> {
    store: RedisStoreBuilder,
    options: Options<T>,
}

impl<T> fmt::Debug for RedisAtom<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisAtom")
            .field("store", &self.store)
            .field("options", &self.options)
            .finish()
    }
}

impl<T: Value> RedisAtom<T> {
    /// Starts a builder for the atom at `key` on the server of `url`, with JSON and no
    /// validator.
    ///
    /// ```
    /// let b = enduro::RedisAtom::<u64>::builder("redis://:hunter2@cache/0", "hits");
    /// assert!(!format!("{b:?}").contains("hunter2"));
    /// ```
    pub fn builder(url: &str, key: &str) -> Self {
        RedisAtom {
            store: RedisStore::builder(url, key),
            options: Options::new(),
        }
    }

    /// How long opening one connection may take (default [`DEFAULT_CONNECT_TIMEOUT`]).
    ///
    /// ```
    /// let b = enduro::RedisAtom::<u64>::builder("redis://cache", "k")
    ///     .connect_timeout(std::time::Duration::from_secs(2));
    /// assert!(format!("{b:?}").contains("connect_timeout: 2s"));
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.store = self.store.connect_timeout(timeout);
        self
    }

    /// How long each call may wait for the server's answer (default
    /// [`DEFAULT_COMMAND_TIMEOUT`]); see [`RedisStoreBuilder::command_timeout`].
    ///
    /// ```
    /// let b = enduro::RedisAtom::<u64>::builder("redis://cache", "k")
    ///     .command_timeout(std::time::Duration::from_secs(5));
    /// assert!(format!("{b:?}").contains("command_timeout: 5s"));
    /// ```
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.store = self.store.command_timeout(timeout);
        self
    }

    /// How many idle connections the atom keeps (default
    /// [`DEFAULT_MAX_IDLE_CONNECTIONS`]).
    ///
    /// ```
    /// let b = enduro::RedisAtom::<u64>::builder("redis://cache", "k").max_idle_connections(1);
    /// assert!(format!("{b:?}").contains("max_idle_connections: 1"));
    /// ```
    pub fn max_idle_connections(mut self, n: usize) -> Self {
        self.store = self.store.max_idle_connections(n);
        self
    }

    /// For `rediss://` URLs: the certificate authority to trust (PEM) instead of the
    /// platform's, and a client certificate and key (PEM); see [`RedisStoreBuilder::tls`].
    ///
    /// ```no_run
    /// let ca = std::fs::read("/etc/redis/ca.pem")?;
    /// let atom = enduro::RedisAtom::builder("rediss://:secret@cache.internal:6380", "hits")
    ///     .tls(Some(ca), None)
    ///     .open(0u64)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn tls(mut self, ca_pem: Option<Vec<u8>>, client: Option<(Vec<u8>, Vec<u8>)>) -> Self {
        self.store = self.store.tls(ca_pem, client);
        self
    }

    /// Makes the atom follow other writers' commits by itself (with `true`): a commit by
    /// any process or machine on the atom's key reaches [`deref`](Atom::deref), the
    /// watches and (for async atoms) [`changes`](AsyncAtom::changes) soon after, without a
    /// call to [`refresh`](Atom::refresh); so does a release (the atom is then released).
    ///
    /// Every commit and release publishes on the channel `enduro:` and the key (live atom
    /// or not: a `PUBLISH` nobody listens to costs the server next to nothing), and one
    /// subscriber connection per server and process, on a thread of its own, hands the
    /// messages to its live atoms. A commit's message names its version, so an atom that
    /// made it reads nothing. Commits in quick succession may reach the watches as one
    /// transition, never out of order. After a lost connection (a server restart), the
    /// subscriber connects again and every live atom checks its key once.
    ///
    /// ```no_run
    /// let live = enduro::RedisAtom::builder("redis://localhost", "hits").live(true).open(0u64)?;
    /// live.add_watch("log", |old, new| println!("hits: {old} -> {new}"));
    /// # Ok::<(), enduro::Error>(())
    /// ```
    pub fn live(mut self, live: bool) -> Self {
        self.options = self.options.live(live);
        self
    }

    enduro_core::option_setters!();

    /// Connects and opens a blocking atom: the stored value if the key holds one, else
    /// `init`, stored.
    ///
    /// ```no_run
    /// let atom = enduro::RedisAtom::builder("redis://localhost", "hits").open(0u64)?;
    /// # Ok::<(), enduro::Error>(())
    /// ```
    pub fn open(self, init: T) -> Result<Atom<T>> {
        let options = self.options.resolved(&self.store.resource())?;
        Atom::open(self.store.open()?, init, options)
    }

    /// Opens an async atom (inside a tokio runtime): connecting and every later call to
    /// the server run on the runtime's blocking thread pool.
    ///
    /// ```no_run
    /// # async fn demo() -> enduro::Result<()> {
    /// let atom = enduro::RedisAtom::builder("redis://localhost", "hits").open_async(0u64).await?;
    /// # Ok(()) }
    /// ```
    pub async fn open_async(self, init: T) -> Result<AsyncAtom<T>> {
        let options = self.options.resolved(&self.store.resource())?;
        let builder = self.store;
        // Opening connects (and checks the password and the key).
        let store =
            enduro_core::OffThread::open(builder.resource(), move || builder.open()).await?;
        AsyncAtom::open(store, init, options).await
    }
}
