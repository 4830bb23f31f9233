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
//! write the encoded value through a buffer into the pending file `.NAME.HASH.enduro-pending`
//! in the pending dir; fsync it; bump the counter; rename it over the data file; fsync the
//! directory. A crash at any point leaves the old or the new value, never a torn one;
//! a pending file left by a crash is removed by the next commit or open.
//!
//! The data file is the truth: a lock file that is missing or damaged is repaired, never
//! a reason to touch the data. The path is resolved once, at open (symlinks in its
//! directories and at its end followed), and the atom keeps committing there; anything
//! but a regular file at the data path is refused. No file descriptor is held between
//! operations, so a process may keep thousands of file atoms open.
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
#[cfg(all(unix, feature = "live"))]
mod live;
#[cfg(unix)]
mod lock;
#[cfg(unix)]
mod path;
#[cfg(unix)]
mod replace;
#[cfg(unix)]
mod store;

#[cfg(all(unix, feature = "async"))]
pub use atom::file_atom_async;
#[cfg(unix)]
pub use atom::{FileAtom, file_atom};
#[cfg(unix)]
pub use store::{FileStore, FileStoreBuilder};
