//! What a failed SQLite call means for the atom: nothing happened (a plain
//! [`Error::Backend`]), or a commit that may have been stored ([`Error::Uncertain`]).

use std::time::Duration;

use enduro_core::Error;
use rusqlite::ErrorCode;

/// What a statement was for, which decides what its failure means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Open,
    Create,
    Load,
    Check,
    Insert,
    Update,
    Delete,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Action::Open => "open the database",
            Action::Create => "create the table",
            Action::Load => "read the row",
            Action::Check => "check the row",
            Action::Insert => "insert the row",
            Action::Update => "update the row",
            Action::Delete => "delete the row",
        }
    }

    /// Whether this is a commit, whose unknown outcome is [`Error::Uncertain`].
    fn commits(self) -> bool {
        matches!(self, Action::Insert | Action::Update)
    }

    /// What a failure that surely did not run it leaves unchanged.
    fn untouched(self) -> &'static str {
        match self {
            Action::Insert | Action::Update => "nothing was written",
            Action::Delete => "nothing was deleted",
            Action::Open | Action::Create => "nothing was changed",
            Action::Load | Action::Check => "nothing was changed",
        }
    }
}

/// The SQLite error code of `e`, if it came from SQLite.
pub(crate) fn code(e: &rusqlite::Error) -> Option<ErrorCode> {
    e.sqlite_error_code()
}

/// Whether the failure of a write may have left its change in the database: an I/O error
/// (`SQLITE_IOERR_*`) may come after the new pages reached the write-ahead log, while it
/// is synced (`SQLITE_IOERR_FSYNC`) or after; the next open's WAL recovery then keeps a
/// transaction whose commit record is intact. Every other error (busy, locked, full,
/// read-only, corrupt, constraint, too big, interrupted) is raised before the commit
/// record is written, and SQLite rolls the statement back.
fn may_have_committed(e: &rusqlite::Error) -> bool {
    code(e) == Some(ErrorCode::SystemIoFailure)
}

/// Turns the failure `e` of `action` into the error to return, for `resource`;
/// `busy_timeout` is how long SQLite waited for a lock before giving up.
pub(crate) fn failed(
    resource: &str,
    action: Action,
    e: rusqlite::Error,
    busy_timeout: Duration,
) -> Error {
    let what = match code(&e) {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => format!(
            "cannot {}: the database is locked by another process (or another connection), \
             and it stayed locked for the whole busy timeout of {busy_timeout:?}; {} (try \
             again, or give a longer `busy_timeout`)",
            action.verb(),
            action.untouched()
        ),
        Some(ErrorCode::DiskFull) => format!(
            "cannot {}: the disk is full; {}",
            action.verb(),
            action.untouched()
        ),
        Some(ErrorCode::ReadOnly) => format!(
            "cannot {}: the database is read-only (check the permissions of the file, of \
             its `-wal` and `-shm` files and of its directory); {}",
            action.verb(),
            action.untouched()
        ),
        Some(ErrorCode::NotADatabase) => format!(
            "cannot {}: the file is not a SQLite database (or is encrypted); {}",
            action.verb(),
            action.untouched()
        ),
        Some(ErrorCode::DatabaseCorrupt) => format!(
            "cannot {}: SQLite says the database is damaged ({e}); {} (keep a copy of the \
             file, its `-wal` and `-shm` files before repairing anything)",
            action.verb(),
            action.untouched()
        ),
        Some(ErrorCode::TooBig) => format!(
            "cannot {}: the value is larger than SQLite's limit for one value (1 GB by \
             default); {}",
            action.verb(),
            action.untouched()
        ),
        _ if action.commits() && may_have_committed(&e) => {
            return Error::Uncertain {
                resource: resource.to_owned(),
                message: format!(
                    "SQLite failed with an I/O error while committing ({e}), which may come \
                     after the change reached the write-ahead log"
                ),
                source: Some(Box::new(e)),
            };
        }
        _ if may_have_committed(&e) && action == Action::Delete => format!(
            "cannot {}: SQLite failed with an I/O error ({e}); the row may or may not \
             have been deleted",
            action.verb()
        ),
        _ => format!("cannot {}: {e}; {}", action.verb(), action.untouched()),
    };
    Error::backend(resource, what, Some(Box::new(e)))
}
