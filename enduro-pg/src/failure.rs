//! [`Failure`]: why a statement did not give an answer, told apart by whether it may have
//! run anyway, and said in words a reader can act on.

use std::time::Duration;

use deadpool_postgres::{PoolError, TimeoutType};
use tokio_postgres::error::{DbError, Severity, SqlState};

/// Why a statement gave no answer.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The pool gave no connection: nothing was sent.
    NoConnection(PoolError),
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
            Failure::NoConnection(e) => no_connection(e),
            Failure::Closed => "the connection was closed before the statement was sent (the \
                                server restarted or dropped it); the next call takes a new one"
                .to_owned(),
            Failure::NotSent(e) => format!("cannot prepare the statement: {e}"),
            Failure::Refused(e) => match e.as_db_error() {
                Some(db) => refused(db),
                None => e.to_string(),
            },
            Failure::Lost(e) => {
                let what = match e.as_db_error() {
                    Some(db) => format!("{} (SQL state {})", db.message(), db.code().code()),
                    None => e.to_string(),
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
            Failure::NoConnection(e) => Some(Box::new(e)),
            Failure::NotSent(e) | Failure::Refused(e) | Failure::Lost(e) => Some(Box::new(e)),
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

fn no_connection(e: &PoolError) -> String {
    match e {
        PoolError::Timeout(TimeoutType::Wait) => format!(
            "no free database connection: {e} (every connection of the pool stayed busy; \
             raise max_connections, or look for slow statements)"
        ),
        _ => format!(
            "cannot get a database connection: {e} (is PostgreSQL running and reachable, \
             and are the user, password and database right?)"
        ),
    }
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
