//! [`FileStore`]: durable replace, pending dir, cross-process lock.

use std::fmt;
use std::fs::{self, File, Metadata};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use enduro_core::{
    Committed, Encoder, Error, Nudge, Observed, Result, Snapshot, Store, Subscription, Version,
};

use crate::lock::{Header, Held, LockFile, new_incarnation};
use crate::path::{Layout, check_regular, fnv1a};
use crate::replace::Replace;

/// The file [`Store`]: durable replace, pending dir, cross-process lock.
///
/// It holds no file descriptor between operations: the lock file and the directory are
/// opened for each commit and closed after it, so a process can keep thousands of file
/// atoms open under a low open-files limit.
///
/// ```
/// use enduro::{Atom, FileStore, Options};
///
/// # let dir = std::env::temp_dir().join(format!("enduro-doc-{}-{}", std::process::id(), line!()));
/// let store = FileStore::open(dir.join("a.json"))?;
/// let atom = Atom::open(store, "hi".to_string(), Options::new())?;
/// assert!(atom.resource().starts_with("file `"));
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct FileStore {
    layout: Layout,
    pending_dir: PathBuf,
    /// The pending file, in the pending dir.
    pending: PathBuf,
    lock: LockFile,
    resource: String,
    /// The incarnation of the value this handle knows (see the `lock` module): a value of
    /// another incarnation is one created after this one was released.
    incarnation: Mutex<u64>,
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

/// What tells one stored file from another besides the generation: the incarnation, and
/// the file's identity (a hand edit or an editor's save-by-rename changes it). Never 0,
/// so never mistaken for "absent".
fn fingerprint(incarnation: u64, meta: &Metadata) -> u64 {
    let fields = [
        incarnation,
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

fn version(incarnation: u64, generation: u64, meta: &Metadata) -> Version {
    Version::new(generation, fingerprint(incarnation, meta))
}

/// What the store holds, as this handle sees it.
enum Seen {
    /// Nothing, or a value created after the one this handle knew was released.
    Gone,
    At(Version),
}

/// Builds a [`FileStore`] with options: where pending files are written, how long to wait
/// for another process's lock. Every order of the setters gives the same store.
///
/// ```
/// use std::time::Duration;
/// use enduro::FileStore;
///
/// # let dir = std::env::temp_dir().join(format!("enduro-doc-{}-{}", std::process::id(), line!()));
/// let store = FileStore::builder(dir.join("a.json"))
///     .pending_dir(dir.join("pending"))
///     .lock_timeout(Duration::from_secs(5))
///     .open()?;
/// assert!(store.path().ends_with("a.json"));
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct FileStoreBuilder {
    path: PathBuf,
    pending_dir: Option<PathBuf>,
    lock_timeout: Option<Duration>,
}

impl FileStoreBuilder {
    /// Names the store in errors raised before it is open.
    pub(crate) fn resource(&self) -> String {
        format!("file `{}`", self.path.display())
    }

    /// Writes pending files in `dir` instead of the data file's directory (created if
    /// missing). It must be on the same file system, or opening fails with an error that
    /// says so.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("enduro-doc-{}-{}", std::process::id(), line!()));
    /// let store = enduro::FileStore::builder(dir.join("a.json"))
    ///     .pending_dir(dir.join("pending"))
    ///     .open()?;
    /// assert!(dir.join("pending").is_dir());
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pending_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.pending_dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Gives up with [`Error::LockTimeout`] after waiting `timeout` for another process's
    /// lock. Without it, a commit waits as long as the other writer holds the lock.
    ///
    /// It bounds the wait for *other processes* only. Inside one process, swaps queue
    /// behind each other (they share commits) and behind the update function of the swap
    /// ahead of them, however long that takes: keep update functions quick.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// # let dir = std::env::temp_dir().join(format!("enduro-doc-{}-{}", std::process::id(), line!()));
    /// let store = enduro::FileStore::builder(dir.join("a.json"))
    ///     .lock_timeout(Duration::from_millis(500))
    ///     .open()?;
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = Some(timeout);
        self
    }

    /// Opens the store; see [`FileStore::open`].
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("enduro-doc-{}-{}", std::process::id(), line!()));
    /// let store = enduro::FileStore::builder(dir.join("a.json")).open()?;
    /// assert!(store.lock_path().ends_with(".a.json.enduro-lock"));
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(self) -> Result<FileStore> {
        FileStore::open_with(&self.path, self.pending_dir.as_deref(), self.lock_timeout)
    }
}

impl FileStore {
    /// Opens the store for the data file at `path` (following symlinks, in its directory
    /// and at its end: they are resolved once, here), creating missing parent directories
    /// and the lock file, repairing a damaged lock file, and removing pending files a
    /// crash left behind. Pending files are written beside the data file, and a commit
    /// waits as long as another process holds the lock; [`FileStore::builder`] changes
    /// both.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("enduro-doc-{}-{}", std::process::id(), line!()));
    /// let store = enduro::FileStore::open(dir.join("a.json"))?;
    /// assert_eq!(store.path(), dir.canonicalize()?.join("a.json"));
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        FileStore::builder(path).open()
    }

    /// Starts a builder for the store at `path`, to choose a pending dir or a lock
    /// timeout; see [`FileStoreBuilder`].
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// # let dir = std::env::temp_dir().join(format!("enduro-doc-{}-{}", std::process::id(), line!()));
    /// let store = enduro::FileStore::builder(dir.join("a.json"))
    ///     .lock_timeout(Duration::from_secs(1))
    ///     .open()?;
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder(path: impl AsRef<Path>) -> FileStoreBuilder {
        FileStoreBuilder {
            path: path.as_ref().to_path_buf(),
            pending_dir: None,
            lock_timeout: None,
        }
    }

    fn open_with(
        path: &Path,
        pending_dir: Option<&Path>,
        lock_timeout: Option<Duration>,
    ) -> Result<Self> {
        let layout = Layout::resolve(path)?;
        let pending_dir = match pending_dir {
            Some(dir) => crate::path::pending_dir(dir, &layout.dir)?,
            None => layout.dir.clone(),
        };
        let lock = LockFile::new(layout.lock.clone(), lock_timeout);
        let store = FileStore {
            resource: format!("file `{}`", layout.target.display()),
            pending: pending_dir.join(&layout.pending_name),
            layout,
            pending_dir,
            lock,
            incarnation: Mutex::new(0),
        };
        {
            let held = store.acquire(true)?;
            let incarnation = match held.header()? {
                Header::Valid { incarnation, .. } => incarnation,
                Header::Empty | Header::Damaged => {
                    let incarnation = new_incarnation();
                    held.repair(incarnation, 1)?;
                    incarnation
                }
            };
            store.set_incarnation(incarnation);
            store.remove_stale_pending_file()?;
        }
        Ok(store)
    }

    /// The data file, with symlinks followed.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("enduro-doc-{}-{}", std::process::id(), line!()));
    /// let store = enduro::FileStore::open(dir.join("a.json"))?;
    /// assert!(store.path().ends_with("a.json"));
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn path(&self) -> &Path {
        &self.layout.target
    }

    /// The sidecar lock file.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("enduro-doc-{}-{}", std::process::id(), line!()));
    /// let store = enduro::FileStore::open(dir.join("a.json"))?;
    /// assert!(store.lock_path().ends_with(".a.json.enduro-lock"));
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lock_path(&self) -> &Path {
        self.lock.path()
    }

    /// How many commits the value has seen since it was created (the generation kept in
    /// the lock file; 0 when there is none to read).
    ///
    /// ```
    /// use enduro::{Atom, FileStore, Options};
    ///
    /// # let dir = std::env::temp_dir().join(format!("enduro-doc-{}-{}", std::process::id(), line!()));
    /// let path = dir.join("a.json");
    /// let atom = Atom::open(FileStore::open(&path)?, 0, Options::new())?;
    /// atom.swap(|n| n + 1)?;
    /// assert_eq!(FileStore::open(&path)?.generation()?, 2);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn generation(&self) -> Result<u64> {
        Ok(match self.lock.peek()? {
            Some(Header::Valid { generation, .. }) => generation,
            _ => 0,
        })
    }

    fn incarnation(&self) -> u64 {
        *self.incarnation.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_incarnation(&self, incarnation: u64) {
        *self.incarnation.lock().unwrap_or_else(|e| e.into_inner()) = incarnation;
    }

    /// Takes the lock, creating the lock file (`create` is only false where a missing lock
    /// file has been handled by the caller).
    fn acquire(&self, create: bool) -> Result<Held<'_>> {
        self.lock.acquire(create)?.ok_or_else(|| {
            Error::io(
                "open the lock file",
                self.lock.path(),
                std::io::Error::from(ErrorKind::NotFound),
            )
        })
    }

    /// The pending file is only written under the lock, so with the lock held one that
    /// exists was left by a crash.
    fn remove_stale_pending_file(&self) -> Result<()> {
        crate::replace::remove_stale(&self.pending)
    }

    /// The data file's metadata, `None` when it does not exist; anything but a regular
    /// file is refused.
    fn stat(&self) -> Result<Option<Metadata>> {
        match fs::metadata(&self.layout.target) {
            Ok(meta) => check_regular(&self.layout.target, &meta).map(|()| Some(meta)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("inspect the data file", &self.layout.target, e)),
        }
    }

    /// Which version of the value the data file `meta` is, for this handle, given the lock
    /// file's header. `known`: the version this handle last saw, if any. Takes the lock
    /// (to repair the lock file) only when the header is not valid: never call it so with
    /// the lock held.
    fn observe(
        &self,
        header: Option<Header>,
        meta: &Metadata,
        known: Option<Version>,
    ) -> Result<Seen> {
        match header {
            Some(Header::Valid {
                incarnation,
                generation,
            }) => {
                let mine = self.incarnation();
                if incarnation == mine {
                    return Ok(Seen::At(version(incarnation, generation, meta)));
                }
                // Another incarnation. If the data file is still the one this handle knows,
                // only the lock file was repaired or replaced: go on with it. Otherwise the
                // value was released and created again: not this handle's any more.
                if known.is_some_and(|k| k.fingerprint == fingerprint(mine, meta)) {
                    self.set_incarnation(incarnation);
                    return Ok(Seen::At(version(incarnation, generation, meta)));
                }
                Ok(Seen::Gone)
            }
            // No lock file, or a damaged one, beside a data file: repair it. The data wins.
            _ => {
                let held = self.acquire(true)?;
                match held.header()? {
                    header @ Header::Valid { .. } => self.observe(Some(header), meta, known),
                    _ => self.repair(&held, meta, known).map(Seen::At),
                }
            }
        }
    }

    /// Writes a fresh header into a missing, empty or damaged lock file (held), beside the
    /// data file `meta`: the data file is the truth. A handle that knows the data file
    /// keeps its version. Any open handle keeps its incarnation (which every handle of the
    /// value shares), so that handles elsewhere go on after a reload; only a handle that
    /// has none yet (one being opened) starts a new one.
    fn repair(&self, held: &Held<'_>, meta: &Metadata, known: Option<Version>) -> Result<Version> {
        let mine = self.incarnation();
        if let Some(known) = known.filter(|k| k.fingerprint == fingerprint(mine, meta)) {
            held.repair(mine, known.generation)?;
            return Ok(known);
        }
        let incarnation = if mine == 0 { new_incarnation() } else { mine };
        held.repair(incarnation, 1)?;
        self.set_incarnation(incarnation);
        Ok(version(incarnation, 1, meta))
    }

    /// Opens the data file's directory for the fsync after a rename, making sure it is
    /// still the directory resolved at open (not one put in its place since).
    fn open_dir(&self) -> Result<File> {
        let dir = &self.layout.dir;
        let file = File::open(dir).map_err(|e| Error::io("open the directory", dir, e))?;
        let meta = file
            .metadata()
            .map_err(|e| Error::io("inspect the directory", dir, e))?;
        self.same_dir(&meta)?;
        Ok(file)
    }

    fn same_dir(&self, meta: &Metadata) -> Result<()> {
        if (meta.dev(), meta.ino()) == self.layout.dir_id {
            return Ok(());
        }
        Err(Error::InvalidPath {
            path: self.layout.dir.clone(),
            reason: "this directory was replaced (moved away, or deleted and made again) \
                     since the atom was opened; nothing was written: open the atom again to \
                     use the new directory"
                .into(),
        })
    }

    /// The data file is not there: deleted (the atom counts as released), unless its
    /// whole directory was swapped for another, which is reported as such.
    fn missing(&self) -> Result<()> {
        match fs::metadata(&self.layout.dir) {
            Ok(meta) => self.same_dir(&meta),
            Err(_) => Ok(()),
        }
    }
}

impl Store for FileStore {
    fn resource(&self) -> String {
        self.resource.clone()
    }

    fn load(&self) -> Result<Option<Snapshot>> {
        let header = self.lock.peek()?;
        let target = &self.layout.target;
        // Checked before opening: opening a FIFO would hang.
        if self.stat()?.is_none() {
            self.missing()?;
            return Ok(None);
        }
        let mut file = match File::open(target) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("open the data file", target, e)),
        };
        // The identity of exactly what we read, taken from the open file.
        let meta = file
            .metadata()
            .map_err(|e| Error::io("inspect the data file", target, e))?;
        check_regular(target, &meta)?;
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.read_to_end(&mut bytes)
            .map_err(|e| Error::io("read the data file", target, e))?;
        Ok(match self.observe(header, &meta, None)? {
            Seen::Gone => None,
            Seen::At(version) => Some(Snapshot { bytes, version }),
        })
    }

    fn check(&self, known: Version) -> Result<Observed> {
        let header = self.lock.peek()?;
        let Some(meta) = self.stat()? else {
            self.missing()?;
            return Ok(Observed::Missing);
        };
        match self.observe(header, &meta, Some(known))? {
            Seen::Gone => Ok(Observed::Missing),
            Seen::At(now) if now == known => Ok(Observed::Unchanged),
            Seen::At(_) => Ok(self.load()?.map_or(Observed::Missing, Observed::Changed)),
        }
    }

    fn commit(&self, expected: Version, encode: Encoder<'_>) -> Result<Committed> {
        // Creating the value may follow a release by another process (a new lock file at
        // the path); changing it may not: a handle of a released value recreates nothing.
        let creating = expected == Version::ABSENT;
        let held = match self.lock.acquire(creating)? {
            Some(held) => held,
            // No lock file: released (the reload finds the data gone too), or deleted by
            // hand beside the data file (recreate it and go on).
            None if self.stat()?.is_none() => return Ok(Committed::Conflict),
            None => self.acquire(true)?,
        };
        let header = held.header()?;
        let existing = self.stat()?;
        let (incarnation, generation) = match (&existing, header.valid()) {
            // A new value starts a new incarnation, so that handles of a value released
            // before can never take it for theirs.
            (None, _) if creating => (new_incarnation(), 0),
            (None, _) => return Ok(Committed::Conflict),
            // Someone created the value first: go on with theirs (a creating handle has no
            // version of its own to protect).
            (Some(meta), valid) if creating => {
                match valid {
                    Some((incarnation, _)) => self.set_incarnation(incarnation),
                    None => {
                        self.repair(&held, meta, None)?;
                    }
                }
                return Ok(Committed::Conflict);
            }
            (Some(meta), Some(valid)) => match self.observe(Some(header), meta, Some(expected))? {
                Seen::At(now) if now == expected => valid,
                Seen::At(_) | Seen::Gone => return Ok(Committed::Conflict),
            },
            (Some(meta), None) => {
                if self.repair(&held, meta, Some(expected))? != expected {
                    return Ok(Committed::Conflict);
                }
                (self.incarnation(), expected.generation)
            }
        };
        // What the lock file says until the rename: restored if the rename fails.
        let previous = if creating {
            header.valid()
        } else {
            Some((incarnation, generation))
        };
        let next = generation.checked_add(1).unwrap_or(1);
        let dir = self.open_dir()?;
        // The generation is bumped before the rename, not after: if writing it fails (a
        // full disk), the data file is still untouched and the failed commit changed
        // nothing; and a crash between the two leaves a new generation over the old
        // file, which others merely reload, never a new file under the old generation.
        // If the rename itself fails, the bump is undone (best effort: at worst, others
        // reload the unchanged value).
        let known_before = self.incarnation();
        self.set_incarnation(incarnation);
        let replaced = Replace {
            resource: &self.resource,
            pending: &self.pending,
            target: &self.layout.target,
            target_dir: &dir,
            existing: existing.as_ref(),
            before_rename: &|| held.write(incarnation, next),
            rename_failed: &|| {
                if let Some((incarnation, generation)) = previous {
                    let _ = held.write(incarnation, generation);
                }
            },
        }
        .run(encode);
        match replaced {
            Ok(()) => {}
            // In place, but not known to be durable: the value is the store's now.
            Err(e) if e.may_have_been_stored() => return Err(e),
            Err(e) => {
                self.set_incarnation(known_before);
                return Err(e);
            }
        }
        // The new file is in place: a failure to inspect it leaves the outcome unknown to
        // the caller, not undone.
        let inspected = self.stat().and_then(|meta| {
            meta.ok_or_else(|| {
                Error::io(
                    "find the data file",
                    &self.layout.target,
                    std::io::Error::from(ErrorKind::NotFound),
                )
            })
        });
        match inspected {
            Ok(meta) => Ok(Committed::Done(version(incarnation, next, &meta))),
            Err(e) => Err(Error::Uncertain {
                resource: self.resource.clone(),
                message: format!(
                    "the new value was put in place, but inspecting it right after failed: {e}"
                ),
                source: Some(Box::new(e)),
            }),
        }
    }

    fn release(&self) -> Result<()> {
        let held = self.lock.acquire(self.stat()?.is_some())?;
        match fs::remove_file(&self.layout.target) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove the data file", &self.layout.target, e)),
        }
        self.remove_stale_pending_file()?;
        if let Some(held) = held {
            held.retire()?;
        }
        File::open(&self.layout.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| Error::io("fsync the directory", &self.layout.dir, e))
    }

    /// A check reads the lock file's header and the data file's metadata: cheap.
    fn cheap_check(&self) -> bool {
        true
    }

    /// Watches the data file's directory (one watcher per process, shared by every live
    /// atom): a commit renaming a new file over the data file, a write to it in place, or
    /// its removal nudges the atom. Needs the `live` feature.
    fn follow(&self, nudge: Nudge) -> Result<Subscription> {
        #[cfg(feature = "live")]
        {
            crate::live::follow(&self.resource, &self.layout.target, &self.layout.dir, nudge)
        }
        #[cfg(not(feature = "live"))]
        {
            let _ = nudge;
            Err(Error::backend(
                self.resource.clone(),
                "a live file atom needs enduro's `live` feature (enduro-file's `live`), \
                 which watches the data file's directory; turn it on, or open the atom \
                 without `live(true)` and call `refresh()`",
                None,
            ))
        }
    }
}
