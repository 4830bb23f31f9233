//! [`Failure`]: why a statement did not give an answer, told apart by whether it may have
//! run anyway, and said in words a reader can act on.

use std::io;
use std::time::Duration;

use deadpool_postgres::{HookError, PoolError, TimeoutType};

use crate::conn::SslMode;
use crate::pools::Dest;
use crate::tls::Phase;
use tokio_postgres::error::{DbError, Severity, SqlState};

/// Why a statement gave no answer.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The pool gave no connection: nothing was sent. The message says why, in words
    /// (see [`no_connection`]).
    NoConnection(String, PoolError),
    /// The connection was already closed when the statement was to be sent: nothing was
    /// sent.
    Closed,
    /// Preparing the statement failed without an answer from the server (the statement
    /// itself was never sent).
    NotSent(tokio_postgres::Error),
    /// The server answered with an error (severity ERROR): the statement changed nothing,
    /// or was rolled back.
    Refused(tokio_postgres::Error),
    /// The connection failed after the statement was sent and before a definite answer:
    /// closed, an I/O error, or a FATAL error ending the session (which can come after the
    /// commit). The statement may have run.
    Lost(tokio_postgres::Error),
    /// A transaction failed before its COMMIT was sent (the server answered with an
    /// error, the connection failed, or no answer came in time and the connection was
    /// dropped): the server rolls it back, so nothing it did was written.
    Uncommitted(Box<Failure>),
    /// No answer within the timeout; a cancel request was sent and the connection
    /// dropped. With `sent`, the statement itself had been sent and may have run (or may
    /// still run: a cancel request is only a request).
    TimedOut {
        /// The timeout that expired.
        after: Duration,
        /// Whether the statement itself (not only its preparation) had been sent.
        sent: bool,
    },
}

impl Failure {
    /// The failure of a statement that was sent: a definite error from the server, or a
    /// lost answer.
    pub(crate) fn after_sending(e: tokio_postgres::Error) -> Failure {
        match e.as_db_error() {
            Some(db) if !ends_session(db) => Failure::Refused(e),
            _ => Failure::Lost(e),
        }
    }

    /// The failure of a preparation: the statement itself never ran.
    pub(crate) fn preparing(e: tokio_postgres::Error) -> Failure {
        match e.as_db_error() {
            Some(_) => Failure::Refused(e),
            None => Failure::NotSent(e),
        }
    }

    /// Whether the statement may have run (and, for a write, been committed).
    pub(crate) fn may_have_run(&self) -> bool {
        matches!(
            self,
            Failure::Lost(_) | Failure::TimedOut { sent: true, .. }
        )
    }

    /// Whether the statement surely never reached the server because of its connection
    /// (found closed, or failing while preparing): another connection may do.
    pub(crate) fn never_sent(&self) -> bool {
        matches!(self, Failure::Closed | Failure::NotSent(_))
    }

    /// The SQL state of a definite error from the server.
    pub(crate) fn code(&self) -> Option<&SqlState> {
        match self {
            Failure::Refused(e) => e.code(),
            Failure::Uncommitted(inner) => inner.code(),
            _ => None,
        }
    }

    /// Whether the server refused a cached statement because the table changed under it
    /// ("cached plan must not change result type", SQL state 0A000): preparing it again
    /// fixes that.
    pub(crate) fn is_stale_plan(&self) -> bool {
        self.code() == Some(&SqlState::FEATURE_NOT_SUPPORTED)
    }

    /// What happened and what to do, without the action (the caller says "cannot update
    /// the row: " first).
    pub(crate) fn describe(&self) -> String {
        match self {
            Failure::NoConnection(message, _) => message.clone(),
            Failure::Closed => "the connection was closed before the statement was sent (the \
                                server restarted or dropped it); the next call takes a new one"
                .to_owned(),
            Failure::NotSent(e) => format!("cannot prepare the statement: {}", chain(e)),
            Failure::Refused(e) => match e.as_db_error() {
                Some(db) => refused(db),
                None => chain(e),
            },
            Failure::Lost(e) => {
                let what = match e.as_db_error() {
                    Some(db) => format!("{} (SQL state {})", db.message(), db.code().code()),
                    None => chain(e),
                };
                format!(
                    "the connection failed while waiting for the answer: {what}; the next \
                     call takes a new connection"
                )
            }
            Failure::TimedOut { after, sent: true } => format!(
                "no answer from PostgreSQL within {after:?} (the statement timeout); the server \
                 may be overloaded or stuck, or the network down. A cancel request was sent \
                 (a server that had not read the statement yet may still run it) and the \
                 connection dropped; the next call takes a new one (raise statement_timeout if \
                 statements legitimately take this long)"
            ),
            Failure::Uncommitted(inner) => match &**inner {
                Failure::TimedOut { after, .. } => format!(
                    "no answer from PostgreSQL within {after:?} (the statement timeout) before \
                     the transaction's COMMIT was sent; the connection was dropped, so the \
                     server rolls the transaction back; the server may be overloaded or stuck, \
                     or the network down"
                ),
                other => format!(
                    "{} (before the transaction's COMMIT was sent: the server rolls it back)",
                    other.describe()
                ),
            },
            Failure::TimedOut { after, sent: false } => format!(
                "no answer from PostgreSQL within {after:?} (the statement timeout) while \
                 preparing the statement, which was therefore never sent; the server may be \
                 overloaded or stuck, or the network down. The connection was dropped; the \
                 next call takes a new one"
            ),
        }
    }

    /// The underlying error, for [`std::error::Error::source`].
    pub(crate) fn into_source(self) -> Option<Box<dyn std::error::Error + Send + Sync>> {
        match self {
            Failure::NoConnection(_, e) => Some(Box::new(e)),
            Failure::NotSent(e) | Failure::Refused(e) | Failure::Lost(e) => Some(Box::new(e)),
            Failure::Uncommitted(inner) => inner.into_source(),
            Failure::Closed | Failure::TimedOut { .. } => None,
        }
    }
}

/// Whether a server error ends the session (FATAL or PANIC): it can arrive after the
/// statement committed, so it settles nothing.
fn ends_session(db: &DbError) -> bool {
    match db.parsed_severity() {
        Some(severity) => matches!(severity, Severity::Fatal | Severity::Panic),
        None => matches!(db.severity(), "FATAL" | "PANIC"),
    }
}

/// Why the pool gave no connection, in words: the server's own (a wrong password, a
/// missing database), the TLS handshake's, or which timeout expired and where.
/// `dest` is where the store's own pool connects (`None` for a pool given by the caller),
/// `wait` how long the caller waited for a free connection (`None`: as long as the
/// caller's pool lets it).
pub(crate) fn no_connection(e: &PoolError, dest: Option<&Dest>, wait: Option<Duration>) -> String {
    match e {
        PoolError::Timeout(TimeoutType::Wait) => format!(
            "no free database connection within {}: every connection of the pool stayed \
             busy (raise max_connections on the builder, within what the server allows, or \
             look for slow statements)",
            match wait {
                Some(wait) => format!("{wait:?}"),
                None => "the pool's wait timeout".to_owned(),
            }
        ),
        PoolError::Timeout(TimeoutType::Create) => match dest {
            Some(d) => {
                let phase = match (d.phase(), d.mode) {
                    (Phase::Connecting, SslMode::Disable) => {
                        "the TCP connection was made, but start-up and authentication did not end"
                    }
                    (Phase::Connecting, _) => {
                        "the TCP connection was made, but the server did not answer the request \
                         for TLS"
                    }
                    (Phase::Handshake, _) => "the TLS handshake did not end",
                    (Phase::Startup, _) => {
                        "after the TLS handshake, start-up and authentication did not end"
                    }
                };
                format!(
                    "timed out connecting: {phase} within {:?} (the connect \
                     timeout: connect_timeout in the connection string, or the builder's \
                     connect_timeout); the server may be overloaded or stuck, or something \
                     other than PostgreSQL listens on that port",
                    d.connect_timeout
                )
            }
            None => {
                "timed out opening a new database connection (the pool's create timeout)".to_owned()
            }
        },
        PoolError::Timeout(TimeoutType::Recycle) => {
            "timed out checking a pooled connection (the pool's recycle timeout)".to_owned()
        }
        PoolError::Backend(e) => format!("cannot connect: {}", connect_error(e, dest)),
        PoolError::PostCreateHook(hook) => {
            let why = match hook {
                HookError::Message(message) => message.to_string(),
                HookError::Backend(e) => match e.as_db_error() {
                    Some(db) => refused(db),
                    None => chain(e),
                },
            };
            format!("cannot set up a new connection: {why}")
        }
        PoolError::Closed => "the connection pool is closed".to_owned(),
        PoolError::NoRuntimeSpecified => {
            "the connection pool has no runtime (build it with `.runtime(Runtime::Tokio1)`)"
                .to_owned()
        }
    }
}

/// Why a connection could not be made: the server's own words with what to do, the TLS
/// handshake's failure, or the network's.
fn connect_error(e: &tokio_postgres::Error, dest: Option<&Dest>) -> String {
    if let Some(db) = e.as_db_error() {
        return refused_connection(db);
    }
    if let Some(d) = dest
        && let Some(tls) = crate::tls::explain(e, &d.host, d.mode)
    {
        return tls;
    }
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(cause) = next {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            match io.kind() {
                io::ErrorKind::ConnectionRefused => {
                    return format!(
                        "{} (is PostgreSQL running there, and listening on that address and \
                         port? see listen_addresses and port in postgresql.conf)",
                        chain(e)
                    );
                }
                io::ErrorKind::TimedOut => {
                    let after = dest.map_or(String::new(), |d| {
                        format!(" within {:?}", d.connect_timeout)
                    });
                    return format!(
                        "{}: the TCP connection was not made{after} (the connect timeout); is \
                         the host up and reachable, or does a firewall drop the packets?",
                        chain(e)
                    );
                }
                _ => {}
            }
        }
        next = cause.source();
    }
    let said = chain(e);
    if said.contains("password missing") {
        format!("{said}: the server asks for a password; put it in the connection string")
    } else {
        said
    }
}

/// The server refused the connection: its words, with what to do.
fn refused_connection(db: &DbError) -> String {
    let what = format!("{} (SQL state {})", db.message(), db.code().code());
    let code = db.code();
    let message = db.message();
    let hint = if code == &SqlState::INVALID_PASSWORD {
        "check the user name and the password in the connection string"
    } else if code == &SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        && message.contains("no encryption")
    {
        "the server lets this user and database in only over TLS: add sslmode=require (or \
         verify-full with sslrootcert) to the connection string"
    } else if code == &SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        && message.contains("pg_hba.conf")
    {
        "the server's pg_hba.conf has no entry letting this connection in: ask its \
         administrator for one"
    } else if code == &SqlState::INVALID_AUTHORIZATION_SPECIFICATION {
        "connect as a role that exists, or create this one (CREATE ROLE ... LOGIN)"
    } else if code == &SqlState::INVALID_CATALOG_NAME {
        "create the database first (createdb), or name one that exists"
    } else if code == &SqlState::TOO_MANY_CONNECTIONS {
        "every connection slot of the server is taken: enduro's atoms in one process share \
         one pool per connection string (at most max_connections connections, see the \
         builder); lower it, close other clients, or raise the server's max_connections"
    } else if code == &SqlState::CANNOT_CONNECT_NOW {
        "the server is starting up, shutting down or recovering: try again in a moment"
    } else {
        ""
    };
    if hint.is_empty() {
        format!("PostgreSQL refused the connection: {what}")
    } else {
        format!("PostgreSQL refused the connection: {what}; {hint}")
    }
}

/// An error and its causes, each once: `error connecting to server: Connection refused
/// (os error 111)`.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let said = cause.to_string();
        if !out.ends_with(&said) {
            out.push_str(": ");
            out.push_str(&said);
        }
        next = cause.source();
    }
    out
}

/// A definite error from the server, with what it means for a statement on the row.
fn refused(db: &DbError) -> String {
    let what = format!("{} (SQL state {})", db.message(), db.code().code());
    let code = db.code();
    if code == &SqlState::LOCK_NOT_AVAILABLE {
        format!(
            "the row (or its table) is locked by another session's open transaction, which \
             did not let go within the lock timeout: {what}; find that transaction \
             (pg_stat_activity, pg_locks) and end it, then try again"
        )
    } else if code == &SqlState::QUERY_CANCELED {
        format!(
            "PostgreSQL canceled the statement: {what}; it ran past the server's \
             statement_timeout (often because another session's open transaction holds the \
             row) or an operator canceled it; try again once the server is less busy"
        )
    } else if code == &SqlState::INVALID_SCHEMA_NAME {
        format!("{what}: create the schema first, or name a table in an existing one")
    } else {
        what
    }
}
