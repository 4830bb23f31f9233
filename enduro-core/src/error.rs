//! The one error type of enduro.

use std::path::PathBuf;
use std::time::Duration;

/// An error from a codec, boxed so that any codec can report its own error type.
pub type CodecError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result<T, enduro::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong with an atom.
///
/// Whatever the variant, a failed operation leaves the atom, every clone of it and the
/// stored value exactly as they were, and the atom stays usable.
///
/// ```
/// use enduro::Error;
///
/// fn explain(e: &Error) -> &'static str {
///     match e {
///         Error::Released => "the atom was released",
///         Error::Invalid { .. } => "the validator said no",
///         _ => "something else; its message says what and where",
///     }
/// }
/// assert_eq!(explain(&Error::Invalid { reason: None }), "the validator said no");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The atom was released (by this handle, a clone, or another process that deleted the
    /// backing resource); it can no longer change. `deref` still returns the last value.
    #[error("the atom was released: its backing resource is deleted and it can no longer change")]
    Released,

    /// The validator rejected the value; nothing was written.
    #[error(
        "the validator rejected the value{}; nothing was written and the atom is unchanged",
        because(reason)
    )]
    Invalid {
        /// Why, when the validator said (it returned `Err(reason)`; see
        /// [`Validation`](crate::Validation)).
        reason: Option<String>,
    },

    /// The new value could not be encoded (or would not read back as itself); nothing was
    /// written.
    #[error(
        "cannot store the new value in {resource} with the {codec} codec: {source}; nothing was written"
    )]
    Encode {
        /// The resource the value was meant for.
        resource: String,
        /// The codec's name.
        codec: &'static str,
        /// What the codec said.
        #[source]
        source: CodecError,
    },

    /// The stored data does not decode as the atom's type; the stored data was left
    /// untouched.
    #[error(
        "{resource} holds data that does not decode as `{type_name}` with the {codec} codec: {source}; the stored data was left untouched (fix or move it, then open again)"
    )]
    Decode {
        /// The resource holding the data.
        resource: String,
        /// The Rust type the data was decoded as.
        type_name: &'static str,
        /// The codec's name.
        codec: &'static str,
        /// What the codec said.
        #[source]
        source: CodecError,
    },

    /// A file system operation failed.
    #[error("cannot {action} `{}`: {source}", path.display())]
    Io {
        /// What enduro was doing, e.g. "rename the pending file over".
        action: String,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// The atom's path cannot hold an atom (a directory, say).
    #[error("`{}` cannot hold an atom: {reason}", path.display())]
    InvalidPath {
        /// The offending path.
        path: PathBuf,
        /// Why not.
        reason: String,
    },

    /// Waiting for another writer's lock took longer than the configured timeout.
    #[error("timed out after {waited:?} waiting for the lock `{}`, held by another writer", path.display())]
    LockTimeout {
        /// The lock file.
        path: PathBuf,
        /// How long enduro waited.
        waited: Duration,
    },

    /// A commit whose outcome is unknown: the change may or may not have been stored (an
    /// answer from the database lost with its connection, an fsync that failed after the
    /// new file was already in place). Nothing is repeated automatically: by the time this
    /// error is returned, the atom shows what the store actually holds ([`deref`] and the
    /// watches are brought up to date when the store can be read).
    ///
    /// Do not simply repeat the change: it may be stored already. A change that is safe
    /// to repeat (`reset`, or a `compare_and_set` against the value you saw) can be
    /// repeated; for any other, call `refresh` and look whether the value shows it.
    ///
    /// [`deref`]: crate::Atom::deref
    #[error(
        "{resource}: the change may or may not have been stored: {message}; do not repeat it blindly (it may be stored already): refresh and look at the value first"
    )]
    Uncertain {
        /// The resource the change was meant for.
        resource: String,
        /// What happened.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    },

    /// An operation on an atom was called from inside that same atom's update function,
    /// validator or `Serialize` implementation, where it would wait for itself forever.
    /// It fails at once instead, and changes nothing.
    #[error(
        "`{call}` on {resource} was called from inside this atom's own update function, validator or Serialize implementation, where it would wait for itself; return the new value from the function instead (or call `{call}` after the outer call returns)"
    )]
    Reentrant {
        /// The resource of the atom.
        resource: String,
        /// The method that was called, e.g. `"swap"`.
        call: &'static str,
    },

    /// The value already stored in the resource fails the atom's validator, so the atom
    /// cannot be opened with it; the stored data was left untouched.
    #[error(
        "the value stored in {resource} is rejected by the validator{}; the stored data was left untouched (fix the data, or open without this validator)",
        because(reason)
    )]
    InvalidStored {
        /// The resource holding the value.
        resource: String,
        /// Why, when the validator said.
        reason: Option<String>,
    },

    /// Stored data is damaged where enduro can tell (a journal record whose checksum
    /// fails while later records are intact, a journal header that no longer reads): the
    /// stored data was left untouched, byte for byte.
    ///
    /// ```
    /// let e = enduro::Error::Corrupt {
    ///     path: "/var/lib/app/.state.json.enduro-journal".into(),
    ///     offset: 8192,
    ///     reason: "the record's checksum does not match".into(),
    /// };
    /// assert!(e.to_string().contains("at byte 8192"));
    /// ```
    #[error(
        "`{}` is damaged at byte {offset}: {reason}; nothing was changed (keep a copy of the file before repairing anything)",
        path.display()
    )]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Where in it the damage starts.
        offset: u64,
        /// What is wrong there, and what to do.
        reason: String,
    },

    /// An op stored after the last whole value (see [`Apply`](crate::Apply)) cannot be
    /// replayed: it does not decode as the value's op type, applying it panicked, or the
    /// atom was opened without `ops()` and cannot apply ops at all. Nothing was written;
    /// the stored data is as it was.
    ///
    /// ```
    /// let e = enduro::Error::Replay {
    ///     resource: "file `/srv/book.json`".into(),
    ///     at: "the record at byte 8192 of the journal `/srv/.book.json.enduro-journal`".into(),
    ///     reason: "applying it panicked: no such entry".into(),
    /// };
    /// assert!(e.to_string().contains("at byte 8192"));
    /// ```
    #[error("cannot replay the op in {at} ({resource}): {reason}; nothing was written")]
    Replay {
        /// The resource.
        resource: String,
        /// Where the op is stored.
        at: String,
        /// What went wrong, and what to do.
        reason: String,
    },

    /// Migrating the stored data to the program's schema failed (see
    /// [`Migrations`](crate::Migrations)): step `step` (which turns schema `step` into
    /// `step + 1`) returned an error or panicked, or the data it left does not decode as
    /// the atom's type. Nothing was written; the stored data is as it was, byte for byte.
    ///
    /// ```
    /// let e = enduro::Error::Migration {
    ///     resource: "file `/srv/config.json`".into(),
    ///     step: 1,
    ///     reason: "no field `name` to rename".into(),
    /// };
    /// assert!(e.to_string().contains("migration step 1 (schema 1 to 2)"), "{e}");
    /// ```
    #[error(
        "cannot migrate the data in {resource}: migration step {step} (schema {step} to {}) failed: {reason}; nothing was written and the stored data is as it was",
        step + 1
    )]
    Migration {
        /// The resource holding the data.
        resource: String,
        /// The step that failed: the schema it starts from.
        step: u32,
        /// What went wrong.
        reason: String,
    },

    /// The stored data has a newer schema than the program knows (it was written by a
    /// program with more [`Migrations`](crate::Migrations) steps): this atom refuses it
    /// rather than overwrite data it does not understand. Nothing was written.
    ///
    /// ```
    /// let e = enduro::Error::NewerSchema { resource: "a row".into(), stored: 3, known: 2 };
    /// assert!(e.to_string().contains("schema 3"), "{e}");
    /// ```
    #[error(
        "{resource} holds data of schema {stored}, newer than this program knows (schema {known}, from its migration steps); nothing was written and the stored data is as it was: run the newer program, or add the missing migration steps"
    )]
    NewerSchema {
        /// The resource holding the data.
        resource: String,
        /// The schema the data has.
        stored: u64,
        /// The schema the program writes: the number of its migration steps.
        known: u32,
    },

    /// A store that is not a file failed (a database, a network service, an injected
    /// fault), or a backend refused how it was set up. The message never contains a
    /// password. Build it with [`Error::backend`].
    #[error("{resource}: {message}")]
    Backend {
        /// The resource, e.g. a table and row key.
        resource: String,
        /// What failed.
        message: String,
        /// The backend's own error, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    },
}

impl Error {
    /// Whether the change this error reports may have been stored nonetheless
    /// ([`Error::Uncertain`]): then it must not be repeated blindly.
    ///
    /// ```
    /// use enduro::Error;
    ///
    /// let lost = Error::Uncertain { resource: "a row".into(), message: "connection lost".into(), source: None };
    /// assert!(lost.may_have_been_stored());
    /// assert!(!Error::Released.may_have_been_stored());
    /// ```
    pub fn may_have_been_stored(&self) -> bool {
        matches!(self, Error::Uncertain { .. })
    }

    /// Builds an [`Error::Io`]: for a file-system operation that failed on `path`. A
    /// store that is not a file reports its failures with [`Error::backend`] instead.
    ///
    /// ```
    /// let e = enduro::Error::io(
    ///     "read",
    ///     "/tmp/x",
    ///     std::io::Error::from(std::io::ErrorKind::NotFound),
    /// );
    /// assert!(e.to_string().starts_with("cannot read `/tmp/x`"));
    /// ```
    pub fn io(action: impl Into<String>, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action: action.into(),
            path: path.into(),
            source,
        }
    }

    /// Builds an [`Error::Backend`]: for a store that is not a file (a database, a
    /// network service, memory) failing, or a backend refusing how it was set up.
    /// `resource` names what failed (never with a password in it), `message` says what
    /// went wrong and, where it helps, what to do.
    ///
    /// ```
    /// let e = enduro::Error::backend(
    ///     "queue `jobs` on redis://cache:6379",
    ///     "cannot reach the server",
    ///     Some(Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))),
    /// );
    /// assert_eq!(e.to_string(), "queue `jobs` on redis://cache:6379: cannot reach the server");
    /// assert!(matches!(e, enduro::Error::Backend { .. }));
    /// ```
    pub fn backend(
        resource: impl Into<String>,
        message: impl Into<String>,
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Error::Backend {
            resource: resource.into(),
            message: message.into(),
            source,
        }
    }

    /// The same error for another swap of a failed batch: same variant and message (errors
    /// from the operating system or a codec are not `Clone`, so their text is carried).
    pub(crate) fn echo(&self) -> Error {
        match self {
            Error::Released => Error::Released,
            Error::Invalid { reason } => Error::Invalid {
                reason: reason.clone(),
            },
            Error::Encode {
                resource,
                codec,
                source,
            } => Error::Encode {
                resource: resource.clone(),
                codec,
                source: source.to_string().into(),
            },
            Error::Decode {
                resource,
                type_name,
                codec,
                source,
            } => Error::Decode {
                resource: resource.clone(),
                type_name,
                codec,
                source: source.to_string().into(),
            },
            Error::Io {
                action,
                path,
                source,
            } => Error::Io {
                action: action.clone(),
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            Error::InvalidPath { path, reason } => Error::InvalidPath {
                path: path.clone(),
                reason: reason.clone(),
            },
            Error::Replay {
                resource,
                at,
                reason,
            } => Error::Replay {
                resource: resource.clone(),
                at: at.clone(),
                reason: reason.clone(),
            },
            Error::Corrupt {
                path,
                offset,
                reason,
            } => Error::Corrupt {
                path: path.clone(),
                offset: *offset,
                reason: reason.clone(),
            },
            Error::LockTimeout { path, waited } => Error::LockTimeout {
                path: path.clone(),
                waited: *waited,
            },
            Error::Backend {
                resource,
                message,
                source,
            } => Error::Backend {
                resource: resource.clone(),
                message: message.clone(),
                source: source.as_ref().map(|s| s.to_string().into()),
            },
            Error::Uncertain {
                resource,
                message,
                source,
            } => Error::Uncertain {
                resource: resource.clone(),
                message: message.clone(),
                source: source.as_ref().map(|s| s.to_string().into()),
            },
            Error::Reentrant { resource, call } => Error::Reentrant {
                resource: resource.clone(),
                call,
            },
            Error::Migration {
                resource,
                step,
                reason,
            } => Error::Migration {
                resource: resource.clone(),
                step: *step,
                reason: reason.clone(),
            },
            Error::NewerSchema {
                resource,
                stored,
                known,
            } => Error::NewerSchema {
                resource: resource.clone(),
                stored: *stored,
                known: *known,
            },
            Error::InvalidStored { resource, reason } => Error::InvalidStored {
                resource: resource.clone(),
                reason: reason.clone(),
            },
        }
    }
}

/// `": reason"`, or nothing when there is no reason.
fn because(reason: &Option<String>) -> String {
    reason
        .as_deref()
        .map(|reason| format!(": {reason}"))
        .unwrap_or_default()
}
