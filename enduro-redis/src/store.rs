//! [`RedisStore`]: one atom is one hash at one key, read and written by Lua scripts.

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use enduro_core::{
    Committed, Encoder, Error, Nudge, Observed, Result, Snapshot, Store, Subscription, Version,
    new_incarnation,
};
use redis::{Client, Connection, RedisError, Value as Reply};

use crate::scripts::Scripts;
use crate::url::{Target, redacted};

/// How long opening one connection (TCP, TLS, `AUTH`, `SELECT`) may take, unless
/// [`RedisStoreBuilder::connect_timeout`] says otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a command may wait for its answer, unless
/// [`RedisStoreBuilder::command_timeout`] says otherwise: a server that stops answering
/// then fails the call instead of blocking it forever.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// How many idle connections a store keeps for its next calls, unless
/// [`RedisStoreBuilder::max_idle_connections`] says otherwise.
pub const DEFAULT_MAX_IDLE_CONNECTIONS: usize = 4;

/// Builds a [`RedisStore`]: the server, the key, timeouts and TLS certificates.
///
/// ```
/// use std::time::Duration;
///
/// let builder = enduro_redis::RedisStore::builder("redis://:hunter2@localhost:6379/2", "hits")
///     .command_timeout(Duration::from_secs(5));
/// assert!(!format!("{builder:?}").contains("hunter2"));
/// ```
#[derive(Clone)]
pub struct RedisStoreBuilder {
    url: String,
    key: String,
    connect_timeout: Duration,
    command_timeout: Duration,
    max_idle: usize,
    tls: Option<redis::TlsCertificates>,
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("url", &redacted(&self.url))
            .field("key", &self.key)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("max_idle_connections", &self.max_idle)
            .field("tls_certificates", &self.tls.is_some())
            .finish()
    }
}

impl RedisStoreBuilder {
    /// How long opening one connection may take (default [`DEFAULT_CONNECT_TIMEOUT`]).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let b = enduro_redis::RedisStore::builder("redis://localhost", "k")
    ///     .connect_timeout(Duration::from_secs(2));
    /// assert!(format!("{b:?}").contains("connect_timeout: 2s"));
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long each command may wait for its answer (default
    /// [`DEFAULT_COMMAND_TIMEOUT`]). A commit whose answer did not come in time fails
    /// with [`Error::Uncertain`]: it may have been stored.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let b = enduro_redis::RedisStore::builder("redis://localhost", "k")
    ///     .command_timeout(Duration::from_secs(5));
    /// assert!(format!("{b:?}").contains("command_timeout: 5s"));
    /// ```
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// How many idle connections the store keeps for its next calls (default
    /// [`DEFAULT_MAX_IDLE_CONNECTIONS`]); calls from more threads at once open more,
    /// and close them afterwards.
    ///
    /// ```
    /// let b = enduro_redis::RedisStore::builder("redis://localhost", "k").max_idle_connections(1);
    /// assert!(format!("{b:?}").contains("max_idle_connections: 1"));
    /// ```
    pub fn max_idle_connections(mut self, n: usize) -> Self {
        self.max_idle = n;
        self
    }

    /// For `rediss://` URLs: trusts the certificate authority in `ca_pem` (PEM) instead of
    /// the platform's, and presents a client certificate if `client` gives one (its
    /// certificate and private key, PEM).
    ///
    /// ```
    /// let ca = b"-----BEGIN CERTIFICATE-----\n...".to_vec();
    /// let b = enduro_redis::RedisStore::builder("rediss://cache.internal", "k").tls(Some(ca), None);
    /// assert!(format!("{b:?}").contains("tls_certificates: true"));
    /// ```
    pub fn tls(mut self, ca_pem: Option<Vec<u8>>, client: Option<(Vec<u8>, Vec<u8>)>) -> Self {
        self.tls = Some(redis::TlsCertificates {
            client_tls: client.map(|(client_cert, client_key)| redis::ClientTlsConfig {
                client_cert,
                client_key,
            }),
            root_cert: ca_pem,
        });
        self
    }

    /// The atom's name in errors, without the password.
    pub(crate) fn resource(&self) -> String {
        match Target::parse(&self.url, &self.key) {
            Ok(target) => target.resource(),
            Err(_) => format!("Redis key `{}` at {}", self.key, redacted(&self.url)),
        }
    }

    /// Connects (once, to check the URL, the password and the key) and gives the store.
    ///
    /// Fails, saying why, when the URL is malformed, the server cannot be reached or
    /// refuses the password, or the key holds something that is not an atom's hash. The
    /// password never appears in the error.
    ///
    /// ```no_run
    /// let store = enduro_redis::RedisStore::builder("redis://localhost:6379/0", "hits").open()?;
    /// # Ok::<(), enduro::Error>(())
    /// ```
    pub fn open(self) -> Result<RedisStore> {
        let target = Target::parse(&self.url, &self.key)?;
        let resource = target.resource();
        let tls_given = self.tls.is_some();
        let client = match self.tls {
            Some(tls) => Client::build_with_tls(target.info.clone(), tls),
            None => Client::open(target.info.clone()),
        }
        .map_err(|e| {
            Error::backend(
                resource.clone(),
                format!("cannot use these TLS settings: {e}"),
                None,
            )
        })?;
        let store = RedisStore {
            client,
            key: self.key,
            resource,
            scripts: Scripts::new(),
            idle: Mutex::new(Vec::new()),
            connect_timeout: self.connect_timeout,
            command_timeout: self.command_timeout,
            max_idle: self.max_idle,
            known: Mutex::new(None),
            server: format!("{} {}", self.url, tls_given),
        };
        // Connect now, so that a wrong URL, password or key type fails the open.
        store.load()?;
        Ok(store)
    }
}

/// The Redis [`Store`]: one atom is the hash at one key (fields `value`, `gen`, `inc`,
/// `tok`; see the crate docs), read and changed only by Lua scripts, so that each call is
/// one round trip and atomic on the server:
///
/// - load: the value, its generation and incarnation;
/// - check: the generation and incarnation, and the value only if they changed;
/// - commit: compare-and-set on generation and incarnation; a new hash gets a random
///   incarnation, so that versions never repeat after a release;
/// - release: `DEL`.
///
/// A commit sent again on a new connection after its answer was lost carries the same
/// token, so the server tells "already stored" from "not stored".
///
/// ```no_run
/// use enduro::{Atom, Options};
///
/// let store = enduro_redis::RedisStore::builder("redis://localhost", "hits").open()?;
/// let atom = Atom::open(store, 0u64, Options::new())?;
/// atom.swap(|n| n + 1)?;
/// # Ok::<(), enduro::Error>(())
/// ```
pub struct RedisStore {
    client: Client,
    key: String,
    resource: String,
    scripts: Scripts,
    /// Connections kept for the next calls; a call takes one (or opens one) and gives
    /// it back unless it failed.
    idle: Mutex<Vec<Connection>>,
    connect_timeout: Duration,
    command_timeout: Duration,
    max_idle: usize,
    /// The incarnation of the hash this handle works on, once it has seen one: a hash of
    /// another incarnation (the key released and made again since) is not this handle's,
    /// and counts as missing, so that its atom is released instead of writing over it.
    known: Mutex<Option<u64>>,
    /// Which of this process's subscribers serves this store's live atoms: the URL as
    /// given (never shown), and whether TLS certificates were given.
    server: String,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("resource", &self.resource)
            .finish_non_exhaustive()
    }
}

/// How one call on one connection went.
enum Attempt {
    /// The server answered.
    Answered(Reply),
    /// No connection could be had: nothing was sent.
    NotSent(RedisError),
    /// The server answered with an error: the call did not run (a script fails before
    /// it writes, see `scripts.rs`).
    Refused(RedisError),
    /// The connection failed after the call was sent, or no answer came in time: it may
    /// or may not have run.
    Lost(RedisError, Origin),
}

/// Where a connection came from: one that waited in the pool may have been closed by
/// the server meanwhile (a restart, an idle timeout), so a failure on it is tried once
/// more on a new connection.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    Pooled,
    Fresh,
}

impl RedisStore {
    /// Starts a builder for the atom at `key` on the server of `url`:
    /// `redis://[[user]:password@]host[:port][/db]`, `rediss://...` for TLS, or
    /// `redis+unix:///path/to/socket[?db=N&pass=...]`.
    ///
    /// ```
    /// let b = enduro_redis::RedisStore::builder("redis://localhost/3", "hits");
    /// assert!(format!("{b:?}").contains("\"hits\""));
    /// ```
    pub fn builder(url: &str, key: &str) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.to_owned(),
            key: key.to_owned(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            max_idle: DEFAULT_MAX_IDLE_CONNECTIONS,
            tls: None,
        }
    }

    /// The key this store's atom lives at.
    ///
    /// ```no_run
    /// let store = enduro_redis::RedisStore::builder("redis://localhost", "hits").open()?;
    /// assert_eq!(store.key(), "hits");
    /// # Ok::<(), enduro::Error>(())
    /// ```
    pub fn key(&self) -> &str {
        &self.key
    }

    fn connection(&self) -> std::result::Result<(Connection, Origin), RedisError> {
        let pooled = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        if let Some(connection) = pooled {
            return Ok((connection, Origin::Pooled));
        }
        Ok((self.fresh_connection()?, Origin::Fresh))
    }

    /// A new connection, with the store's timeouts.
    fn fresh_connection(&self) -> std::result::Result<Connection, RedisError> {
        let connection = self
            .client
            .get_connection_with_timeout(self.connect_timeout)?;
        connection.set_read_timeout(Some(self.command_timeout))?;
        connection.set_write_timeout(Some(self.command_timeout))?;
        Ok(connection)
    }

    fn give_back(&self, connection: Connection) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < self.max_idle
        {
            idle.push(connection);
        }
    }

    /// Runs `call` on a connection; a connection that failed is dropped, not given back.
    fn on_connection(
        &self,
        call: &mut dyn FnMut(&mut Connection) -> std::result::Result<Reply, RedisError>,
    ) -> Attempt {
        let (mut connection, origin) = match self.connection() {
            Ok(got) => got,
            Err(e) => return Attempt::NotSent(e),
        };
        match call(&mut connection) {
            Ok(reply) => {
                self.give_back(connection);
                Attempt::Answered(reply)
            }
            Err(e) if lost_connection(&e) => Attempt::Lost(e, origin),
            Err(e) => {
                self.give_back(connection);
                Attempt::Refused(e)
            }
        }
    }

    /// Runs a call that changes nothing, once more on a new connection if a pooled one
    /// turned out to be closed.
    fn read(
        &self,
        what: &str,
        call: &mut dyn FnMut(&mut Connection) -> std::result::Result<Reply, RedisError>,
    ) -> Result<Reply> {
        loop {
            match self.on_connection(call) {
                Attempt::Answered(reply) => return Ok(reply),
                Attempt::Lost(_, Origin::Pooled) => continue,
                Attempt::Lost(e, Origin::Fresh) | Attempt::NotSent(e) | Attempt::Refused(e) => {
                    return Err(self.error(what, &e));
                }
            }
        }
    }

    fn error(&self, what: &str, e: &RedisError) -> Error {
        Error::backend(self.resource.clone(), explain(what, e), None)
    }

    fn uncertain(&self, message: String) -> Error {
        Error::Uncertain {
            resource: self.resource.clone(),
            message,
            source: None,
        }
    }

    fn malformed(&self, what: &str, reply: &Reply) -> Error {
        Error::backend(
            self.resource.clone(),
            format!("unexpected answer from the server to {what}: {reply:?}"),
            None,
        )
    }

    /// The version in `gen` and `inc` of a script's answer.
    fn version(&self, what: &str, generation: &Reply, incarnation: &Reply) -> Result<Version> {
        match (number(generation), number(incarnation)) {
            (Some(generation), Some(incarnation)) if generation > 0 && incarnation > 0 => {
                Ok(Version::new(generation, incarnation))
            }
            _ => Err(Error::backend(
                self.resource.clone(),
                format!(
                    "the hash's fields `gen` and `inc` must be positive integers, found \
                     {generation:?} and {incarnation:?} (changed by hand?), reading {what}"
                ),
                None,
            )),
        }
    }

    /// Whether a hash of `version`'s incarnation is the one this handle works on (a
    /// handle that has seen none yet takes it as its own).
    fn is_mine(&self, version: Version) -> bool {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        *known.get_or_insert(version.fingerprint) == version.fingerprint
    }

    /// One commit attempt's answer: `Ok(None)` on a conflict. A hash this commit created
    /// is this handle's from now on.
    fn committed(&self, reply: &Reply) -> Result<Option<Version>> {
        match as_list(reply) {
            Some([flag, generation, incarnation]) if number(flag) == Some(1) => {
                let version = self.version("a commit", generation, incarnation)?;
                *self.known.lock().unwrap_or_else(|e| e.into_inner()) = Some(version.fingerprint);
                Ok(Some(version))
            }
            Some([flag]) if number(flag) == Some(0) => Ok(None),
            _ => Err(self.malformed("a commit", reply)),
        }
    }
}

impl Store for RedisStore {
    fn resource(&self) -> String {
        self.resource.clone()
    }

    fn load(&self) -> Result<Option<Snapshot>> {
        let reply = self.read("read the atom", &mut |c| {
            self.scripts.load.key(&self.key).invoke(c)
        })?;
        match as_list(&reply) {
            Some([]) => Ok(None),
            Some([value, generation, incarnation]) => {
                let version = self.version("the atom", generation, incarnation)?;
                if !self.is_mine(version) {
                    // Released and made again since this handle knew it.
                    return Ok(None);
                }
                Ok(Some(Snapshot {
                    bytes: bytes(value).ok_or_else(|| self.malformed("a read", &reply))?,
                    version,
                }))
            }
            _ => Err(self.malformed("a read", &reply)),
        }
    }

    fn check(&self, known: Version) -> Result<Observed> {
        let reply = self.read("check the atom", &mut |c| {
            self.scripts
                .check
                .key(&self.key)
                .arg(known.generation)
                .arg(known.fingerprint)
                .invoke(c)
        })?;
        match as_list(&reply) {
            Some([]) => Ok(Observed::Missing),
            Some([generation, incarnation, rest @ ..]) => {
                let version = self.version("the atom", generation, incarnation)?;
                if !self.is_mine(version) {
                    return Ok(Observed::Missing);
                }
                match rest {
                    [] => Ok(Observed::Unchanged),
                    [value] => Ok(Observed::Changed(Snapshot {
                        bytes: bytes(value).ok_or_else(|| self.malformed("a check", &reply))?,
                        version,
                    })),
                    _ => Err(self.malformed("a check", &reply)),
                }
            }
            _ => Err(self.malformed("a check", &reply)),
        }
    }

    fn commit(&self, expected: Version, encode: Encoder<'_>) -> Result<Committed> {
        let mut value = Vec::new();
        encode(&mut value)?;
        let token = new_incarnation();
        let incarnation = new_incarnation();
        let mut call = |c: &mut Connection| -> std::result::Result<Reply, RedisError> {
            self.scripts
                .commit
                .key(&self.key)
                .arg(expected.generation)
                .arg(expected.fingerprint)
                .arg(&value[..])
                .arg(incarnation)
                .arg(token)
                .invoke(c)
        };
        let first = match self.on_connection(&mut call) {
            Attempt::Answered(reply) => {
                return Ok(self
                    .committed(&reply)?
                    .map_or(Committed::Conflict, Committed::Done));
            }
            // No connection, or the server refused the script: nothing was stored.
            Attempt::NotSent(e) | Attempt::Refused(e) => return Err(self.error("commit", &e)),
            Attempt::Lost(e, _) => e,
        };
        // The answer was lost with the connection: the commit may or may not have run.
        // Send it again on a new connection. Its token makes it harmless: if the first
        // one was stored and is still the last commit, the server says so instead of
        // storing it twice.
        let fresh = self.fresh_connection().and_then(|mut c| {
            let reply = call(&mut c)?;
            self.give_back(c);
            Ok(reply)
        });
        match fresh {
            Ok(reply) => match self.committed(&reply)? {
                Some(version) => Ok(Committed::Done(version)),
                // Someone else committed since: the first attempt may be stored under
                // their commit, or not at all.
                None => Err(self.uncertain(format!(
                    "the connection was lost while committing ({}), and when the commit \
                     was sent again the atom had changed",
                    explain_short(&first)
                ))),
            },
            Err(second) => Err(self.uncertain(format!(
                "the connection was lost while committing ({}), and sending it again \
                 failed too: {}",
                explain_short(&first),
                explain("commit", &second)
            ))),
        }
    }

    fn follow(&self, nudge: Nudge) -> Result<Subscription> {
        crate::listen::follow(
            self.server.clone(),
            &self.client,
            self.connect_timeout,
            &self.key,
            nudge,
        )
        .map_err(|e| {
            Error::backend(
                self.resource.clone(),
                format!("cannot start the thread that listens for live atoms: {e}"),
                None,
            )
        })
    }

    fn release(&self) -> Result<()> {
        // Deleting is idempotent, so a lost answer is simply asked again.
        self.read("release the atom", &mut |c| {
            self.scripts.release.key(&self.key).invoke(c)
        })?;
        Ok(())
    }
}

/// Whether `e` means the connection is gone (or its answer never came): the command may
/// or may not have run, and the connection is not to be used again.
fn lost_connection(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_timeout() || e.is_unrecoverable_error()
}

/// `e` in a few words, for an error about an earlier attempt.
fn explain_short(e: &RedisError) -> String {
    if e.is_timeout() {
        "no answer in time".to_owned()
    } else {
        e.to_string()
    }
}

/// What went wrong, in words that say what to do.
fn explain(what: &str, e: &RedisError) -> String {
    let detail = e.detail().unwrap_or_default();
    match e.code() {
        Some("ENDURO_WRONGTYPE") => {
            return format!(
                "cannot {what}: the key holds a Redis {detail}, not an enduro atom's hash; \
                 choose another key, or delete the key if its value is not needed"
            );
        }
        Some("ENDURO_NOTATOM") => {
            return format!(
                "cannot {what}: the key holds a hash without the fields `gen` and `inc`, \
                 which is not an enduro atom's; choose another key, or delete the key if \
                 its value is not needed"
            );
        }
        Some("WRONGPASS") | Some("NOAUTH") => {
            return format!(
                "cannot {what}: the server refused the credentials ({e}); check the user \
                 and password in the URL"
            );
        }
        Some("NOPERM") => {
            return format!(
                "cannot {what}: the user may not run this ({e}); the user needs EVALSHA, \
                 EVAL, HMGET, HGET, HSET, HINCRBY, DEL and TYPE on the key, \
                 and PUBLISH on the channel `enduro:` and the key"
            );
        }
        _ => {}
    }
    if e.kind() == redis::ErrorKind::AuthenticationFailed {
        return format!(
            "cannot {what}: the server refused the credentials ({e}); check the user and \
             password in the URL"
        );
    }
    if e.is_connection_refusal() {
        return format!(
            "cannot {what}: the server refused the connection ({e}); is redis-server \
             running at this address?"
        );
    }
    if e.is_timeout() {
        return format!("cannot {what}: no answer from the server in time ({e})");
    }
    format!("cannot {what}: {e}")
}

fn as_list(reply: &Reply) -> Option<&[Reply]> {
    match reply {
        Reply::Array(items) => Some(items),
        Reply::Nil => Some(&[]),
        _ => None,
    }
}

fn number(reply: &Reply) -> Option<u64> {
    match reply {
        Reply::Int(n) => u64::try_from(*n).ok(),
        Reply::BulkString(text) => std::str::from_utf8(text).ok()?.parse().ok(),
        Reply::SimpleString(text) => text.parse().ok(),
        _ => None,
    }
}

fn bytes(reply: &Reply) -> Option<Vec<u8>> {
    match reply {
        Reply::BulkString(bytes) => Some(bytes.clone()),
        _ => None,
    }
}
