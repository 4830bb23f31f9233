//! File atoms for enduro: a value kept in one file, replaced durably on every change and
//! shared safely by every process that opens the same path.
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("count.json");
//! let atom = enduro_file::file_atom(0u64, &path)?;
//! atom.swap(|n| n + 1)?;
//! assert_eq!(std::fs::read_to_string(&path)?, "1");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # How a commit works
//!
//! Under an OS lock on the sidecar lock file `.NAME.enduro-lock` (beside the data file):
//! check that nobody committed since this atom's version (a generation counter kept in
//! the lock file, and the data file's identity, so a file replaced by hand counts too);
//! write the encoded value through a buffer into a pending file `.NAME.*.enduro-pending`
//! in the pending dir; fsync it; bump the counter; rename it over the data file; fsync the
//! directory. A crash at any point leaves the old or the new value, never a torn one;
//! a pending file left by a crash is removed by the next open.
#![deny(missing_docs)]

mod lock;
mod path;
mod replace;

use std::fmt;
use std::fs::{self, File, Metadata};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use enduro_core::{
    Atom, Committed, Encoder, Error, Json, Observed, Options, Result, Snapshot, Store, Value,
    Version,
};

use crate::lock::{LockFile, RELEASED};
use crate::path::{Layout, PENDING_SUFFIX, ensure_dir, fnv1a};
use crate::replace::Replace;

/// Opens a file atom at `path` holding `init` if the file is missing or blank; otherwise
/// the stored value (and `init` is ignored). Missing parent directories are created.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("nested/dirs/state.json");
/// let atom = enduro_file::file_atom(vec![1, 2], &path)?;
/// drop(atom);
/// let again = enduro_file::file_atom(Vec::<i32>::new(), &path)?;
/// assert_eq!(*again.deref(), [1, 2]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn file_atom<T: Value>(init: T, path: impl AsRef<Path>) -> Result<Atom<T>> {
    FileAtom::builder(path).open(init)
}

/// Builds file atoms with options: codec, pretty JSON, validator, pending dir, lock
/// timeout.
///
/// ```
/// use std::time::Duration;
/// use enduro_file::FileAtom;
///
/// let dir = tempfile::tempdir()?;
/// let atom = FileAtom::builder(dir.path().join("limits.json"))
///     .pretty(true)
///     .validator(|n: &u32| *n <= 100)
///     .lock_timeout(Duration::from_secs(5))
///     .open(10)?;
/// assert!(atom.reset(1000).is_err());
/// assert_eq!(std::fs::read_to_string(dir.path().join("limits.json"))?, "10\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct FileAtom<T> {
    path: PathBuf,
    pending_dir: Option<PathBuf>,
    lock_timeout: Option<Duration>,
    options: Options<T>,
}

impl<T> fmt::Debug for FileAtom<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileAtom")
            .field("path", &self.path)
            .field("pending_dir", &self.pending_dir)
            .field("lock_timeout", &self.lock_timeout)
            .field("options", &self.options)
            .finish()
    }
}

impl<T: Value> FileAtom<T> {
    /// Starts a builder for the atom at `path`: compact JSON, no validator, pending files
    /// beside the data file, no lock timeout.
    pub fn builder(path: impl AsRef<Path>) -> Self {
        FileAtom {
            path: path.as_ref().to_path_buf(),
            pending_dir: None,
            lock_timeout: None,
            options: Options::new(),
        }
    }

    enduro_core::option_setters!();

    /// Writes indented JSON (with `true`) instead of compact JSON.
    pub fn pretty(self, pretty: bool) -> Self {
        self.codec(if pretty {
            Json::pretty()
        } else {
            Json::compact()
        })
    }

    /// Writes pending files in `dir` instead of the data file's directory. It must be on
    /// the same file system, or the rename fails (with an error that says so).
    pub fn pending_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.pending_dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Gives up with [`Error::LockTimeout`] after waiting `timeout` for another process's
    /// lock. Without it, a commit waits as long as the other writer holds the lock.
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = Some(timeout);
        self
    }

    /// Opens the atom.
    pub fn open(self, init: T) -> Result<Atom<T>> {
        let store = FileStore::open(&self.path, self.pending_dir.as_deref(), self.lock_timeout)?;
        Atom::open(store, init, self.options)
    }
}

/// The file [`Store`]: durable replace, pending dir, cross-process lock.
///
/// ```
/// use enduro_core::{Atom, Options};
///
/// let dir = tempfile::tempdir()?;
/// let store = enduro_file::FileStore::open(&dir.path().join("a.json"), None, None)?;
/// let atom = Atom::open(store, "hi".to_string(), Options::new())?;
/// assert!(atom.resource().starts_with("file `"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct FileStore {
    layout: Layout,
    pending_dir: PathBuf,
    dir: File,
    lock: LockFile,
}

impl fmt::Debug for FileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStore")
            .field("path", &self.layout.target)
            .field("pending_dir", &self.pending_dir)
            .field("lock", &self.layout.lock)
            .finish()
    }
}

/// What tells one stored file from another besides the generation: a hand edit or an
/// editor's save-by-rename changes it. Never 0, so never mistaken for "absent".
fn fingerprint(meta: &Metadata) -> u64 {
    let fields = [
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime() as u64,
        meta.mtime_nsec() as u64,
        meta.ctime() as u64,
        meta.ctime_nsec() as u64,
    ];
    fnv1a(fields.iter().flat_map(|f| f.to_le_bytes())).max(1)
}

impl FileStore {
    /// Opens the store for the data file at `path` (following symlinks), creating missing
    /// parent directories, the lock file and `pending_dir`, and removing pending files a
    /// crash left behind.
    pub fn open(
        path: &Path,
        pending_dir: Option<&Path>,
        lock_timeout: Option<Duration>,
    ) -> Result<Self> {
        let layout = Layout::resolve(path)?;
        let pending_dir = match pending_dir {
            Some(dir) => {
                ensure_dir(dir)?;
                std::path::absolute(dir).map_err(|e| Error::io("make the path absolute", dir, e))?
            }
            None => layout.dir.clone(),
        };
        let dir =
            File::open(&layout.dir).map_err(|e| Error::io("open the directory", &layout.dir, e))?;
        let lock = LockFile::open(layout.lock.clone(), lock_timeout)?;
        let store = FileStore {
            layout,
            pending_dir,
            dir,
            lock,
        };
        {
            let _held = store.lock.acquire()?;
            store.remove_stale_pending_files()?;
        }
        Ok(store)
    }

    /// The data file, with symlinks followed.
    pub fn path(&self) -> &Path {
        &self.layout.target
    }

    /// The sidecar lock file.
    pub fn lock_path(&self) -> &Path {
        self.lock.path()
    }

    /// Pending files are only written under the lock, so with the lock held any that exist
    /// were left by a crash.
    fn remove_stale_pending_files(&self) -> Result<()> {
        let entries = fs::read_dir(&self.pending_dir)
            .map_err(|e| Error::io("list the pending dir", &self.pending_dir, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(&self.layout.pending_prefix) && name.ends_with(PENDING_SUFFIX) {
                fs::remove_file(entry.path())
                    .map_err(|e| Error::io("remove the stale pending file", entry.path(), e))?;
            }
        }
        Ok(())
    }

    /// The data file's metadata, `None` when it does not exist.
    fn stat(&self) -> Result<Option<Metadata>> {
        match fs::metadata(&self.layout.target) {
            Ok(meta) if meta.is_dir() => Err(Error::InvalidPath {
                path: self.layout.target.clone(),
                reason: "it is a directory".into(),
            }),
            Ok(meta) => Ok(Some(meta)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("inspect the data file", &self.layout.target, e)),
        }
    }

    fn version(generation: u64, meta: Option<&Metadata>) -> Version {
        match meta {
            Some(meta) if generation != RELEASED => Version::new(generation, fingerprint(meta)),
            _ => Version::ABSENT,
        }
    }
}

impl Store for FileStore {
    fn resource(&self) -> String {
        format!("file `{}`", self.layout.target.display())
    }

    fn load(&self) -> Result<Option<Snapshot>> {
        let generation = self.lock.peek_generation()?;
        if generation == RELEASED {
            return Ok(None);
        }
        let target = &self.layout.target;
        let mut file = match File::open(target) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("open the data file", target, e)),
        };
        // The identity of exactly what we read, taken from the open file.
        let meta = file
            .metadata()
            .map_err(|e| Error::io("inspect the data file", target, e))?;
        if meta.is_dir() {
            return Err(Error::InvalidPath {
                path: target.clone(),
                reason: "it is a directory".into(),
            });
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.read_to_end(&mut bytes)
            .map_err(|e| Error::io("read the data file", target, e))?;
        Ok(Some(Snapshot {
            bytes,
            version: Self::version(generation, Some(&meta)),
        }))
    }

    fn check(&self, known: Version) -> Result<Observed> {
        let generation = self.lock.peek_generation()?;
        let now = Self::version(generation, self.stat()?.as_ref());
        if now == known {
            Ok(Observed::Unchanged)
        } else if now == Version::ABSENT {
            Ok(Observed::Missing)
        } else {
            Ok(self.load()?.map_or(Observed::Missing, Observed::Changed))
        }
    }

    fn commit(&self, expected: Version, encode: Encoder<'_>) -> Result<Committed> {
        // Creating the value may follow a release by another process (a new lock file at
        // the path); changing it may not: then the retired lock file's generation makes
        // this a conflict, the reload finds the atom released, and no lock file is
        // recreated for it.
        let held = if expected == Version::ABSENT {
            self.lock.acquire()?
        } else {
            self.lock.acquire_unless_released()?
        };
        let generation = held.generation()?;
        let existing = self.stat()?;
        if Self::version(generation, existing.as_ref()) != expected {
            return Ok(Committed::Conflict);
        }
        let next = match generation {
            g if g >= RELEASED - 1 => 1,
            g => g + 1,
        };
        // The generation is bumped before the rename, not after: if writing it fails (a
        // full disk), the data file is still untouched and the failed commit changed
        // nothing; and a crash between the two leaves a new generation over the old
        // file, which others merely reload, never a new file under the old generation.
        // If the rename itself fails, the bump is undone (best effort: at worst, others
        // reload the unchanged value).
        Replace {
            pending_dir: &self.pending_dir,
            pending_prefix: &self.layout.pending_prefix,
            target: &self.layout.target,
            target_dir: &self.dir,
            existing: existing.as_ref(),
            before_rename: &|| held.set_generation(next),
            rename_failed: &|| {
                let _ = held.set_generation(generation);
            },
        }
        .run(encode)?;
        let meta = self.stat()?;
        Ok(Committed::Done(Self::version(next, meta.as_ref())))
    }

    fn release(&self) -> Result<()> {
        let held = self.lock.acquire()?;
        match fs::remove_file(&self.layout.target) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove the data file", &self.layout.target, e)),
        }
        self.remove_stale_pending_files()?;
        held.retire()?;
        self.dir
            .sync_all()
            .map_err(|e| Error::io("fsync the directory", &self.layout.dir, e))
    }
}
