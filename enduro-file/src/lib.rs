//! File atoms for enduro: a value kept in one file, replaced durably on every change and
//! shared safely by every process that opens the same path.
//!
//! ```
//! # let dir = std::env::temp_dir().join(format!("enduro-doc-{}-{}", std::process::id(), line!()));
//! let path = dir.join("count.json");
//! let atom = enduro::file_atom(0u64, &path)?;
//! atom.swap(|n| n + 1)?;
//! assert_eq!(std::fs::read_to_string(&path)?, "1");
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # How a commit works
//!
//! Under an OS lock on the sidecar lock file `.NAME.enduro-lock` (beside the data file):
//! check that nobody committed since this atom's version (a generation counter kept in
//! the lock file, and the data file's identity, so a file replaced by hand counts too);
//! write the encoded value through a buffer into the pending file `.NAME.enduro-pending`
//! (`.NAME.HASH.enduro-pending` in a pending dir of its own); fsync it; bump the counter; rename it over the data file; fsync the
//! directory. A crash at any point leaves the old or the new value, never a torn one;
//! a pending file left by a crash is removed by the next commit or open.
//!
//! The data file is the truth: a lock file that is missing or damaged is repaired, never
//! a reason to touch the data. The path is resolved once, at open (symlinks in its
//! directories and at its end followed), and the atom keeps committing there; anything
//! but a regular file at the data path is refused. No file descriptor is held between
//! operations, so a process may keep thousands of file atoms open.
//!
//! # Journal mode
//!
//! `FileAtom::builder(path).journal(true)` commits by appending instead: under the same
//! lock, the encoded value goes into a record of the journal `.NAME.enduro-journal` beside
//! the data file, and one `fdatasync` makes it durable. The journal's space was written
//! with zeros beforehand (it grows in steps of at least 1 MiB, flushed on their own), and
//! every record starts at a fresh 4 KiB block, so the flush carries no size or extent
//! change and a torn write can only hit the record being written. A record carries its
//! length, a CRC-32, the journal's epoch and the generation it follows.
//!
//! The data file stays the last *snapshot*, readable as ever; the value is the snapshot
//! with the journal's records replayed. Opening checks every record: a torn record at the
//! end (never acknowledged) is cut, and a damaged record *before* a good one fails the open
//! with [`Error::Corrupt`](enduro_core::Error::Corrupt), naming the journal and the offset,
//! with nothing written. Once the records take more than `journal_limit` (4 MiB by
//! default) or eight times the value's size, whichever is larger, a commit *compacts*:
//! the value becomes the new snapshot by the rename protocol, then the journal starts over
//! (a new epoch in its header; a crash in between leaves the new snapshot, which the old
//! journal no longer applies to). So opening never replays more than that bound.
//!
//! Handles of both modes share a path: a plain handle reads the journal too, and its own
//! commit first writes the value as the snapshot, removes the journal durably, then renames
//! its new value into place; a journal handle starts a journal again at its next commit.
//! Other processes follow a journal by reading only the records they have not seen, and
//! their watches see one transition per record.
//!
//! # Ops
//!
//! An atom of a type that implements [`Apply`](enduro_core::Apply), opened with
//! `FileAtom::builder(path).journal(true).ops()`, appends each
//! [`apply`](enduro_core::Atom::apply)'s op instead of the value: a record of the ops of
//! one commit (each op a generation), with one `fdatasync`. The value is encoded only
//! when a commit compacts (the records' bound is taken against the snapshot's size), and
//! opening hands the last value and the ops after it to the atom, which applies them. A
//! plain handle committing over ops appends its value as a record and compacts at once,
//! since it cannot turn the ops into bytes itself.
//!
//! A journal handle keeps two file descriptors open between commits (the lock file and
//! the journal); plain handles keep none.
//!
//! The file backend needs a Unix target (Linux, macOS, the BSDs): it relies on Unix file
//! identities, permissions and directory fsync.
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

#[cfg(not(unix))]
compile_error!(
    "enduro-file (enduro's `file` feature) needs a Unix target (Linux, macOS, a BSD): it \
     relies on Unix file identities, permissions and directory fsync for its durability \
     promises. On this target, build enduro without the `file` feature \
     (`default-features = false`) and use the `mem` or `pg` backend instead."
);

#[cfg(unix)]
mod atom;
#[cfg(unix)]
mod journal;
#[cfg(all(unix, feature = "live"))]
mod live;
#[cfg(unix)]
mod lock;
#[cfg(unix)]
mod path;
#[cfg(unix)]
mod replace;
#[cfg(unix)]
mod report;
#[cfg(unix)]
mod store;

#[cfg(all(unix, feature = "async"))]
pub use atom::file_atom_async;
#[cfg(unix)]
pub use atom::{FileAtom, file_atom};
#[cfg(unix)]
pub use report::{FileReport, JournalReport, LockState};
#[cfg(unix)]
pub use store::{FileStore, FileStoreBuilder};
