//! [`FileStore`]: durable replace, pending dir, cross-process lock.

use std::fmt;
use std::fs::{self, File, Metadata};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use enduro_core::{
    Committed, Encoder, Error, Nudge, Observed, OpRecord, Replay, Result, Snapshot, Step, Store,
    Subscription, Version,
};

use crate::journal::{self, Base, Cursor, Item, Journal, Kind};
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
    /// Whether commits append to the journal (journal mode) or replace the data file.
    journal: bool,
    /// The compaction bound's floor (see [`journal::bound`]).
    journal_limit: u64,
    /// Where this handle last found the journal's end: commits append there without
    /// reading the journal, and a catch-up reads only the records after it.
    known: Mutex<Option<Known>>,
    /// Journal mode: the journal, kept open between commits.
    kept_journal: Mutex<Option<Journal>>,
    /// Journal mode: the size of the last record, to size the next one's buffer.
    last_record: AtomicUsize,
}

/// What a handle knows of an active journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Known {
    base: Base,
    cursor: Cursor,
    /// The fingerprint of the data file the base was checked against.
    data: u64,
}

/// The journal that applies to the data file, read under the lock.
struct Active {
    journal: Journal,
    base: Base,
    cursor: Cursor,
}

/// What the path holds, read under the lock.
struct Current {
    /// The true version: the journal's generation when one applies.
    version: Version,
    active: Option<Active>,
    /// A journal file that does not apply to the data file (or is blank), opened as
    /// [`Reading::write`] asked: a journal commit starts it over.
    stale: Option<Journal>,
    /// The data file's bytes, when they were read on the way.
    bytes: Option<Vec<u8>>,
    /// The values and ops the records read hold (see [`journal::read::Scan`]).
    items: Vec<Item>,
    /// Whether `items` are every commit since [`Reading::since`].
    steps: bool,
}

/// What a read under the lock found.
enum Found {
    /// Each commit since the version asked for ([`Reading::since`]), oldest first; none
    /// when nothing changed.
    Steps(Vec<Step>),
    /// What the path holds.
    State(Replay),
}

/// A commit's change, as a journal may store it.
enum Change<'a, 'b> {
    /// A whole value.
    Value(Encoder<'a>),
    /// Ops, and the value they make (for a compaction, or a rename).
    Ops(&'b [&'b [u8]], Encoder<'a>),
}

impl<'a> Change<'a, '_> {
    /// What writes the whole value.
    fn value(self) -> Encoder<'a> {
        match self {
            Change::Value(encode) | Change::Ops(_, encode) => encode,
        }
    }
}

/// How [`FileStore::current`] reads the path.
#[derive(Debug, Clone, Copy, Default)]
struct Reading {
    /// Opens the journal for writing (a commit).
    write: bool,
    /// Recovery at open: every record checked, a torn tail cut.
    recover: bool,
    /// Keeps each record after this version (the atom's), when the handle's place in the
    /// journal is that version: for [`Observed::Steps`].
    since: Option<Version>,
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
    journal: bool,
    journal_limit: u64,
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
    /// Atoms of several directories may share one pending dir: a pending file there is
    /// named `.NAME.HASH.enduro-pending`, the hash of the data file's path. A pending file
    /// that a crash leaves there is removed by the next open or commit through the same
    /// path; after the files are reached by another path (the disk mounted elsewhere),
    /// it stays, harmless but unused. Beside the data file (the default) the name,
    /// `.NAME.enduro-pending`, does not depend on the path.
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

    /// Commits by appending a record to a journal beside the data file and flushing it
    /// once (with `true`), instead of replacing the data file; see the crate's docs on
    /// journal mode. Handles of both modes may share a path.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("enduro-doc-{}-{}", std::process::id(), line!()));
    /// let store = enduro::FileStore::builder(dir.join("a.json")).journal(true).open()?;
    /// assert!(store.journal_path().ends_with(".a.json.enduro-journal"));
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn journal(mut self, journal: bool) -> Self {
        self.journal = journal;
        self
    }

    /// Compacts the journal (writes the value as the new snapshot, with the rename
    /// protocol, and starts the journal over) once its records take more than `bytes`, or
    /// more than eight times the value's size if that is larger. The default is 4 MiB.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("enduro-doc-{}-{}", std::process::id(), line!()));
    /// let store = enduro::FileStore::builder(dir.join("a.json"))
    ///     .journal(true)
    ///     .journal_limit(64 << 20)
    ///     .open()?;
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn journal_limit(mut self, bytes: u64) -> Self {
        self.journal_limit = bytes;
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
        FileStore::open_with(&self)
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
            journal: false,
            journal_limit: crate::journal::DEFAULT_LIMIT,
        }
    }

    fn open_with(builder: &FileStoreBuilder) -> Result<Self> {
        let layout = Layout::resolve(&builder.path)?;
        let pending_dir = match &builder.pending_dir {
            Some(dir) => crate::path::pending_dir(dir, &layout.dir)?,
            None => layout.dir.clone(),
        };
        let pending_name = if pending_dir == layout.dir {
            &layout.pending_name
        } else {
            &layout.shared_pending_name
        };
        let mut lock = LockFile::new(layout.lock.clone(), builder.lock_timeout);
        if builder.journal {
            lock = lock.keep_open();
        }
        let store = FileStore {
            resource: format!("file `{}`", layout.target.display()),
            pending: pending_dir.join(pending_name),
            layout,
            pending_dir,
            lock,
            incarnation: Mutex::new(0),
            journal: builder.journal,
            journal_limit: builder.journal_limit,
            known: Mutex::new(None),
            kept_journal: Mutex::new(None),
            last_record: AtomicUsize::new(0),
        };
        {
            let held = store.acquire(true)?;
            let (incarnation, generation) = match held.header()? {
                Header::Valid {
                    incarnation,
                    generation,
                } => (incarnation, generation),
                Header::Empty | Header::Damaged => {
                    let incarnation = new_incarnation();
                    held.repair(incarnation, 1)?;
                    (incarnation, 1)
                }
            };
            store.set_incarnation(incarnation);
            store.remove_stale_pending_file()?;
            store.recover(incarnation, generation)?;
        }
        Ok(store)
    }

    /// Recovery at open, with the lock held: reads the whole journal, if one applies,
    /// checking every record (a damaged one before the tail fails the open, naming the
    /// offset, and nothing is written), and cuts a torn tail.
    fn recover(&self, incarnation: u64, generation: u64) -> Result<()> {
        let Some(meta) = self.stat()? else {
            return Ok(());
        };
        let now = version(incarnation, generation, &meta);
        let current = self.current(
            now,
            Reading {
                write: true,
                recover: true,
                since: None,
            },
        )?;
        self.keep_active(current);
        Ok(())
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

    /// The journal beside the data file (it exists once a journal-mode handle committed,
    /// until a plain handle's commit or a release removes it).
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("enduro-doc-{}-{}", std::process::id(), line!()));
    /// let store = enduro::FileStore::open(dir.join("a.json"))?;
    /// assert!(store.journal_path().ends_with(".a.json.enduro-journal"));
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn journal_path(&self) -> &Path {
        &self.layout.journal
    }

    /// How many commits the value has seen since it was created: the generation of the
    /// last journal record when a journal applies, else the one kept in the lock file (0
    /// when there is none to read).
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
        if self.has_journal()? {
            return Ok(self.load_replay()?.map_or(0, |s| s.version().generation));
        }
        Ok(match self.lock.peek()? {
            Some(Header::Valid { generation, .. }) => generation,
            _ => 0,
        })
    }

    /// Compacts the journal now, whatever its size: the value (the last record) becomes
    /// the data file, by the rename protocol, and the journal starts over, empty. It takes
    /// the lock like a commit, so running atoms lose nothing, and the value and its
    /// generation stay as they were (other handles reload the same value). Returns whether
    /// there was anything to compact: `false` without a journal, or with an empty one.
    ///
    /// A journal whose records end in ops (see `Atom::apply`) is not compacted: only an
    /// atom of the program's type can apply them, which it does at its own compactions.
    /// That is an error saying so; nothing is written.
    ///
    /// ```
    /// use enduro::{FileAtom, FileStore};
    ///
    /// # let dir = std::env::temp_dir().join(format!("enduro-doc-{}-{}", std::process::id(), line!()));
    /// let path = dir.join("a.json");
    /// let atom = FileAtom::builder(&path).journal(true).open(0u64)?;
    /// atom.swap(|n| n + 1)?;
    /// let store = FileStore::open(&path)?;
    /// assert!(store.compact()?);
    /// assert_eq!(std::fs::read_to_string(&path)?, "1");
    /// assert!(!store.compact()?); // nothing left to compact
    /// assert_eq!(*atom.swap(|n| n + 1)?, 2);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn compact(&self) -> Result<bool> {
        let Some(held) = self.lock.acquire(false)? else {
            return Ok(false);
        };
        let Some(meta) = self.stat()? else {
            return Ok(false);
        };
        let now = match self.seen_locked(&held, held.header()?, &meta, None)? {
            Seen::At(now) => now,
            Seen::Gone => {
                return Err(Error::backend(
                    &self.resource,
                    "the value was released and created again since this store was opened; \
                     open it again to compact the new one",
                    None,
                ));
            }
        };
        let reading = Reading {
            write: true,
            ..Reading::default()
        };
        let mut current = self.current(now, reading)?;
        let cursor = match &current.active {
            Some(active) if active.cursor.tail > journal::FIRST => active.cursor,
            _ => {
                self.keep_active(current);
                return Ok(false);
            }
        };
        if cursor.ops {
            self.keep_active(current);
            return Err(Error::backend(
                &self.resource,
                format!(
                    "the journal `{}` ends in ops (written by `apply`), which only the \
                     program that defines them can apply: it compacts them itself once the \
                     journal is large enough; nothing was written",
                    self.layout.journal.display()
                ),
                None,
            ));
        }
        let state = self.state(&mut current)?;
        let Some(mut active) = current.active.take() else {
            return Ok(false);
        };
        let compacted = self.try_compact(
            &mut active.journal,
            &meta,
            &state.base.bytes,
            cursor.generation,
        );
        self.keep_journal(active.journal);
        compacted.map(|_| true)
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

    /// What the data file `meta` is for this handle, with the lock held exclusively and
    /// its `header` read: as the header says, or, when the header is not valid, as the
    /// repair writes it (the data file is the truth).
    fn seen_locked(
        &self,
        held: &Held<'_>,
        header: Header,
        meta: &Metadata,
        known: Option<Version>,
    ) -> Result<Seen> {
        match header.valid() {
            Some(_) => self.observe(Some(header), meta, known),
            None => self.repair(held, meta, known).map(Seen::At),
        }
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

    fn known(&self) -> Option<Known> {
        *self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remember(&self, known: Option<Known>) {
        *self.known.lock().unwrap_or_else(|e| e.into_inner()) = known;
    }

    /// The data file's bytes.
    fn read_data(&self) -> Result<Vec<u8>> {
        let target = &self.layout.target;
        fs::read(target).map_err(|e| Error::io("read the data file", target, e))
    }

    /// What the path holds, given the data file's version `now` (without the journal):
    /// the journal's version and records if one applies to the data file. Call it with the
    /// lock held (shared at least); see [`Reading`] for how.
    ///
    /// A handle that knows the journal over this data file reads it through the file it
    /// keeps open, without looking the path up: two small reads (the header's epoch, and
    /// the head at its known end) tell whether a record was added, and only records after
    /// that end are read. A journal is never removed nor replaced without a new data file.
    fn current(&self, now: Version, reading: Reading) -> Result<Current> {
        // (A kept journal whose header changed under the same data file, by hand, is
        // dropped here: the journal is read afresh below.)
        if !reading.recover
            && let Some((mut journal, known)) = self.kept_for(now.fingerprint, reading.write)
            && journal.epoch()? == Some(known.base.epoch)
        {
            // No record at its end: nobody appended (nor grew the journal for a record), so
            // the size it knows holds too.
            if !journal.probe(known.base.epoch, known.cursor)? {
                let version = Version::new(known.cursor.generation, now.fingerprint);
                return Ok(Current {
                    version,
                    active: Some(Active {
                        journal,
                        base: known.base,
                        cursor: known.cursor,
                    }),
                    stale: None,
                    bytes: None,
                    items: Vec::new(),
                    // Nothing since the version asked for, if it is this one.
                    steps: reading.since == Some(version),
                });
            }
            // Another process appended, and may have grown the journal.
            journal.refresh_len()?;
            return self.scan(journal, known.base, known.cursor, None, now, reading);
        }
        let plain = |stale, bytes| {
            Ok(Current {
                version: now,
                active: None,
                stale,
                bytes,
                items: Vec::new(),
                steps: false,
            })
        };
        let Some(journal) = self.journal_at_path(reading.write)? else {
            return plain(None, None);
        };
        let base = match journal.header()? {
            journal::Header::Valid(base) => base,
            journal::Header::Blank | journal::Header::Damaged => {
                journal.no_good_record()?;
                return plain(Some(journal), None);
            }
        };
        let known = self
            .known()
            .filter(|k| k.base == base && k.data == now.fingerprint && !reading.recover);
        match known {
            Some(known) => self.scan(journal, base, known.cursor, None, now, reading),
            None => {
                let bytes = self.read_data()?;
                if !base.matches(&bytes) {
                    return plain(Some(journal), Some(bytes));
                }
                let start = Cursor::start(&base);
                self.scan(journal, base, start, Some(bytes), now, reading)
            }
        }
    }

    /// Reads the records of the journal of `base` after `from` (see
    /// [`current`](FileStore::current)); `snapshot`: the data file's bytes, when read.
    fn scan(
        &self,
        journal: Journal,
        base: Base,
        from: Cursor,
        snapshot: Option<Vec<u8>>,
        now: Version,
        reading: Reading,
    ) -> Result<Current> {
        // Each record since the atom's version, if this handle is where the atom is.
        let steps = reading.since == Some(Version::new(from.generation, now.fingerprint));
        let scan = journal.scan(&base, from, reading.recover, steps)?;
        if reading.recover
            && let Some((at, span)) = scan.torn
        {
            journal.cut(at, span)?;
        }
        let cursor = scan.cursor;
        self.remember(Some(Known {
            base,
            cursor,
            data: now.fingerprint,
        }));
        Ok(Current {
            version: Version::new(cursor.generation, now.fingerprint),
            active: Some(Active {
                journal,
                base,
                cursor,
            }),
            stale: None,
            bytes: snapshot,
            items: scan.items,
            steps: scan.steps,
        })
    }

    /// The journal kept open, if it serves this access without a look at the path: the
    /// handle knows the journal over the data file `fingerprint`, and it was opened for
    /// writing if `write` asks.
    fn kept_for(&self, fingerprint: u64, write: bool) -> Option<(Journal, Known)> {
        let known = self.known().filter(|k| k.data == fingerprint)?;
        let journal = self.take_kept().filter(|j| j.writable() || !write)?;
        Some((journal, known))
    }

    /// The journal at the path, `None` when there is none: the one kept open if it is
    /// still that file (and writable if `write` asks), else opened.
    fn journal_at_path(&self, write: bool) -> Result<Option<Journal>> {
        let kept = self.take_kept();
        let path = &self.layout.journal;
        match fs::symlink_metadata(path) {
            Ok(meta) => {
                if let Some(mut journal) = kept
                    && (journal.writable() || !write)
                    && journal.is_at_path(&meta)
                {
                    return Ok(Some(journal));
                }
            }
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("inspect the journal", path, e)),
        }
        Journal::open(path, write)
    }

    fn take_kept(&self) -> Option<Journal> {
        self.kept_journal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Keeps `journal` open for the next operation.
    fn keep_journal(&self, journal: Journal) {
        *self.kept_journal.lock().unwrap_or_else(|e| e.into_inner()) = Some(journal);
    }

    /// Keeps the journal of `current`, if any, open for the next operation.
    fn keep_active(&self, current: Current) {
        if let Some(active) = current.active {
            self.keep_journal(active.journal);
        }
    }

    /// Whether nothing was committed since `known`, as far as the journal this handle
    /// knows over the data file at `now` tells, without taking the lock: `false` when it
    /// cannot tell.
    fn quiet(&self, now: Version, known: Version) -> Result<bool> {
        let Some((journal, k)) = self.kept_for(now.fingerprint, false) else {
            return Ok(false);
        };
        // A hint (commits look again under the lock): the end is enough.
        let quiet = known == Version::new(k.cursor.generation, now.fingerprint)
            && !journal.probe(k.base.epoch, k.cursor)?;
        self.keep_journal(journal);
        Ok(quiet)
    }

    /// Whether this handle knows a journal over the data file at `now`.
    fn known_over(&self, now: Version) -> bool {
        self.known().is_some_and(|k| k.data == now.fingerprint)
    }

    /// What changed since `known` on a path with a journal: read under the lock, one step
    /// per record since `known` when this handle was there.
    fn changes_since(&self, known: Version) -> Result<Observed> {
        Ok(match self.read_locked(Some(known))? {
            None => Observed::Missing,
            Some(Found::Steps(steps)) if steps.is_empty() => Observed::Unchanged,
            Some(Found::Steps(steps)) => Observed::Steps(steps),
            Some(Found::State(state)) if state.version() == known => Observed::Unchanged,
            Some(Found::State(state)) if state.ops.is_empty() => Observed::Changed(state.base),
            Some(Found::State(state)) => Observed::Replay(state),
        })
    }

    /// Whether a journal lies beside the data file.
    fn has_journal(&self) -> Result<bool> {
        match fs::symlink_metadata(&self.layout.journal) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("inspect the journal", &self.layout.journal, e)),
        }
    }

    /// What the path holds, from `current` (what it read is taken out of it): the last
    /// value — a record, or the data file — and the ops after it. Reads what the scan
    /// behind `current` did not: the last value, and, when ops follow a value it did
    /// not read, the records from that value on.
    fn state(&self, current: &mut Current) -> Result<Replay> {
        let fingerprint = current.version.fingerprint;
        let mut items = std::mem::take(&mut current.items);
        if let Some(active) = &current.active
            && !items.iter().any(|item| item.op.is_none())
        {
            // The last value was not read on the way: read it, and the ops after it
            // (without a value record, the snapshot is the last value: read below).
            let (journal, base) = (&active.journal, &active.base);
            match (active.cursor.last, active.cursor.ops) {
                (Some(at), false) => {
                    let (generation, bytes) = journal.payload(base, at)?;
                    return Ok(Replay::from(Snapshot {
                        bytes,
                        version: Version::new(generation, fingerprint),
                    }));
                }
                (None, false) => {}
                (Some(at), true) => {
                    let from = journal.cursor_at(base, at)?;
                    items = journal.scan(base, from, false, false)?.items;
                }
                (None, true) => {
                    items = journal.scan(base, Cursor::start(base), false, false)?.items;
                }
            }
        }
        let (base, ops) = match items.iter().rposition(|item| item.op.is_none()) {
            Some(last) => {
                let ops = items.split_off(last + 1);
                let value = items.pop().map(|item| Snapshot {
                    bytes: item.bytes,
                    version: Version::new(item.generation, fingerprint),
                });
                (value, ops)
            }
            None => (None, items),
        };
        let base = match base {
            Some(base) => base,
            // The data file: the journal's snapshot, or the value when no journal applies.
            None => Snapshot {
                version: current.active.as_ref().map_or(current.version, |a| {
                    Version::new(a.base.generation, fingerprint)
                }),
                bytes: self.snapshot_of(current)?,
            },
        };
        let ops = ops
            .into_iter()
            .map(|item| self.op_record(item, fingerprint))
            .collect();
        Ok(Replay { base, ops })
    }

    /// The data file's bytes: read on the way, or now.
    fn snapshot_of(&self, current: &mut Current) -> Result<Vec<u8>> {
        match current.bytes.take() {
            Some(bytes) => Ok(bytes),
            None => self.read_data(),
        }
    }

    /// An op read from the journal, as the atom takes it.
    fn op_record(&self, item: Item, fingerprint: u64) -> OpRecord {
        let (index, count) = item.op.unwrap_or((0, 1));
        OpRecord {
            bytes: item.bytes,
            version: Version::new(item.generation, fingerprint),
            at: format!(
                "the record at byte {} of the journal `{}` (op {} of {count})",
                item.at,
                self.layout.journal.display(),
                index + 1
            ),
        }
    }

    /// The records read since the version asked for, one step per value or op.
    fn steps_of(&self, items: Vec<Item>, fingerprint: u64) -> Vec<Step> {
        items
            .into_iter()
            .map(|item| match item.op {
                None => Step::Value(Snapshot {
                    bytes: item.bytes,
                    version: Version::new(item.generation, fingerprint),
                }),
                Some(_) => Step::Op(self.op_record(item, fingerprint)),
            })
            .collect()
    }

    /// Reads the value under the lock (shared; exclusive when the lock file needs a
    /// repair), journal replayed: what `load` and `check` do when a journal is there.
    /// With `since` (the atom's version), also each state between it and the value.
    fn read_locked(&self, since: Option<Version>) -> Result<Option<Found>> {
        let Some(held) = self.lock.acquire_shared()? else {
            // No lock file: released (or deleted by hand: the plain read repairs it).
            return Ok(self.load_plain()?.map(|s| Found::State(s.into())));
        };
        let header = held.header()?;
        if header.valid().is_none() {
            // Repairing writes the lock file: that takes the lock exclusively.
            drop(held);
            let held = self.acquire(true)?;
            let header = held.header()?;
            return self.read_with(header, Some(&held), since);
        }
        self.read_with(header, None, since)
    }

    /// [`read_locked`](FileStore::read_locked) with the lock held: `exclusive` is the lock
    /// when it is held exclusively (then a damaged lock file is repaired).
    fn read_with(
        &self,
        header: Header,
        exclusive: Option<&Held<'_>>,
        since: Option<Version>,
    ) -> Result<Option<Found>> {
        let Some(meta) = self.stat()? else {
            self.missing()?;
            return Ok(None);
        };
        let now = match (header, exclusive) {
            (Header::Valid { .. }, _) => match self.observe(Some(header), &meta, None)? {
                Seen::Gone => return Ok(None),
                Seen::At(now) => now,
            },
            (_, Some(held)) => self.repair(held, &meta, None)?,
            // Damaged since the shared lock was let go: read it as it is.
            (_, None) => return Ok(self.load_plain()?.map(|s| Found::State(s.into()))),
        };
        let reading = Reading {
            since,
            ..Reading::default()
        };
        let mut current = self.current(now, reading)?;
        let found = if since.is_some() && current.steps {
            let items = std::mem::take(&mut current.items);
            Found::Steps(self.steps_of(items, current.version.fingerprint))
        } else {
            Found::State(self.state(&mut current)?)
        };
        self.keep_active(current);
        Ok(Some(found))
    }

    /// `load` of a path without a journal: no lock needed, the data file is replaced
    /// whole.
    fn load_plain(&self) -> Result<Option<Snapshot>> {
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

    /// Removes the journal file, if any, and flushes the directory, so that a value
    /// written next by rename can never be taken for the snapshot of the journal's
    /// records (it could hold the same bytes). Lock held.
    fn remove_journal(&self, dir: &File) -> Result<()> {
        match fs::remove_file(&self.layout.journal) {
            Ok(()) => dir
                .sync_all()
                .map_err(|e| Error::io("fsync the directory", &self.layout.dir, e)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove the journal", &self.layout.journal, e)),
        }
    }

    /// Writes `bytes` as the data file by the rename protocol, keeping the mode and owner
    /// of the file `existing`. Lock held.
    fn write_snapshot(&self, dir: &File, existing: &Metadata, bytes: &[u8]) -> Result<()> {
        Replace {
            resource: &self.resource,
            pending: &self.pending,
            target: &self.layout.target,
            target_dir: dir,
            existing: Some(existing),
            before_rename: &|| Ok(()),
            rename_failed: &|| {},
        }
        .run(&mut |out| {
            out.write_all(bytes)
                .map_err(|e| Error::io("write the pending file", &self.pending, e))
        })
    }

    /// A plain commit on a path with a journal: the value so far becomes the snapshot
    /// (when records hold it) and the journal goes, durably, before the new value is
    /// renamed into place. Lock held.
    fn retire_journal(&self, dir: &File, meta: &Metadata, mut current: Current) -> Result<()> {
        if current.active.is_some() {
            // Even with no record: a new data file is what tells the handles that keep
            // the journal open that it is gone.
            // (A journal whose records end in ops is not retired: see `commit_change`.)
            let state = self.state(&mut current)?;
            self.write_snapshot(dir, meta, &state.base.bytes)?;
        }
        self.remember(None);
        drop(self.take_kept());
        self.remove_journal(dir)
    }

    /// A journal-mode commit: appends the value `encode` writes as one record and flushes
    /// once, starting the journal (over) first when none applies, then compacts past the
    /// bound. Lock held; `current` is at `expected`.
    fn append(
        &self,
        held: &Held<'_>,
        incarnation: u64,
        meta: &Metadata,
        current: Current,
        change: Change<'_, '_>,
        force_compaction: bool,
    ) -> Result<Committed> {
        let generation = current.version.generation;
        let (mut record, kind, mut encode) = match change {
            Change::Value(encode) => {
                // Sized like the last record (and a little more), so that a large value
                // is not copied again and again as the buffer grows.
                let hint = self.last_record.load(Ordering::Relaxed);
                let mut record = Vec::with_capacity(hint + hint / 16 + journal::HEAD);
                record.resize(journal::HEAD, 0);
                encode(&mut record)?;
                self.last_record.store(record.len(), Ordering::Relaxed);
                (record, Kind::Value, None)
            }
            Change::Ops(ops, encode) => {
                let len: usize = ops.iter().map(|op| 4 + op.len()).sum();
                let mut record = Vec::with_capacity(journal::HEAD + len);
                record.resize(journal::HEAD, 0);
                journal::put_ops(&mut record, ops);
                let count = u32::try_from(ops.len()).map_err(|_| {
                    Error::backend(&self.resource, "too many ops in one commit", None)
                })?;
                (record, Kind::Ops(count), Some(encode))
            }
        };
        let started = current.active.is_none();
        let (mut journal, base, cursor) = match current.active {
            Some(Active {
                journal,
                base,
                cursor,
            }) => (journal, base, cursor),
            None => {
                let snapshot = match current.bytes {
                    Some(bytes) => bytes,
                    None => self.read_data()?,
                };
                let base = Base::new(&snapshot, generation);
                let journal = match current.stale {
                    Some(mut stale) => {
                        stale.restart(&base)?;
                        stale
                    }
                    None => self.create_journal(&base, meta, record.len() as u64)?,
                };
                (journal, base, Cursor::start(&base))
            }
        };
        let next = generation + 1;
        // A journal just started moves the lock file's generation, as a rename does, so
        // that handles that do not know of it yet look. Appends leave the lock file alone:
        // handles that know the journal look at its end (writing the lock file on every
        // commit, while others `stat` it, costs each flush about a third more on Linux
        // 6.13 and later, whose fine-grained timestamps then write the inode too).
        if started {
            held.write(incarnation, next)?;
        }
        let appended = journal.append(&self.resource, &base, cursor, &mut record, kind);
        let cursor = match appended {
            Ok(cursor) => cursor,
            Err(e) => {
                if started && !e.may_have_been_stored() {
                    let _ = held.write(incarnation, generation);
                }
                // Taken back out (or not known to be there: the next look at the
                // journal's end finds it), so what this handle knows still holds.
                if !started {
                    self.keep_journal(journal);
                } else {
                    self.remember(None);
                }
                return Err(e);
            }
        };

        let fingerprint = fingerprint(incarnation, meta);
        self.remember(Some(Known {
            base,
            cursor,
            data: fingerprint,
        }));
        let made = cursor.generation;
        let mut done = Version::new(made, fingerprint);
        // The value's size: the record's, or, for ops, the snapshot's (the value is not
        // encoded unless a compaction needs it).
        let value_len = match kind {
            Kind::Value => (record.len() - journal::HEAD) as u64,
            Kind::Ops(_) => base.len,
        };
        let due = cursor.tail - journal::FIRST > journal::bound(self.journal_limit, value_len);
        if due || force_compaction {
            let value = match encode.as_mut() {
                None => Some(record.split_off(journal::HEAD)),
                // A value that does not encode is not compacted: its ops stay, and the
                // next commit tries again.
                Some(encode) => {
                    let mut bytes = Vec::new();
                    encode(&mut bytes).ok().map(|()| bytes)
                }
            };
            if let Some(value) = value
                && let Some(meta) = self.compact_journal(&mut journal, meta, &value, made)
            {
                done = version(incarnation, made, &meta);
            }
        }
        self.keep_journal(journal);
        Ok(Committed::Done(done))
    }

    /// Makes a new journal for `base` with room for a record of `len` bytes, with the data
    /// file's mode and owner, and flushes its directory entry.
    fn create_journal(&self, base: &Base, meta: &Metadata, len: u64) -> Result<Journal> {
        let path = &self.layout.journal;
        // A blank leftover of a crash while making one.
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove the blank journal", path, e)),
        }
        let journal = match Journal::create(path, base, 2 * journal::span(len), 0o600) {
            Ok(journal) => journal,
            Err(e) => {
                let _ = fs::remove_file(path);
                return Err(e);
            }
        };
        let made = crate::replace::keep_owner_and_mode(journal.file(), meta)
            .map_err(|e| Error::io("copy the permissions of the data file to", path, e))
            .and_then(|()| {
                journal
                    .file()
                    .sync_all()
                    .map_err(|e| Error::io("fsync the journal", path, e))
            })
            .and_then(|()| {
                self.open_dir()?
                    .sync_all()
                    .map_err(|e| Error::io("fsync the directory", &self.layout.dir, e))
            });
        if let Err(e) = made {
            let _ = fs::remove_file(path);
            return Err(e);
        }
        Ok(journal)
    }

    /// Compaction: writes `value` (generation `generation`) as the new snapshot by the
    /// rename protocol, then starts the journal over on it. Its failures are not the
    /// commit's (it is durable already): at every point the path opens to `value`, and
    /// the next commit tries again. The new data file's metadata once it is in place.
    fn compact_journal(
        &self,
        journal: &mut Journal,
        meta: &Metadata,
        value: &[u8],
        generation: u64,
    ) -> Option<Metadata> {
        match self.try_compact(journal, meta, value, generation) {
            Ok(meta) => Some(meta),
            Err(_) => self.stat().ok().flatten(),
        }
    }

    /// [`compact_journal`](FileStore::compact_journal), failing with what went wrong: the new data file's
    /// metadata once it is in place and the journal started over.
    fn try_compact(
        &self,
        journal: &mut Journal,
        meta: &Metadata,
        value: &[u8],
        generation: u64,
    ) -> Result<Metadata> {
        let dir = self.open_dir()?;
        if let Err(e) = self.write_snapshot(&dir, meta, value) {
            // Not renamed (the journal still applies), or renamed without the directory
            // flushed: the journal must stay as it is until a rename is known durable.
            self.remember(None);
            return Err(e);
        }
        let base = Base::new(value, generation);
        let restarted = journal.restart(&base);
        let meta = self.stat()?.ok_or_else(|| {
            let missing = std::io::Error::from(ErrorKind::NotFound);
            Error::io("find the data file", &self.layout.target, missing)
        })?;
        self.remember(restarted.as_ref().ok().map(|()| Known {
            base,
            cursor: Cursor::start(&base),
            data: fingerprint(self.incarnation(), &meta),
        }));
        restarted.map(|()| meta)
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

impl FileStore {
    /// A commit of `change` over `expected` (see [`Store::commit`]).
    fn commit_change(&self, expected: Version, change: Change<'_, '_>) -> Result<Committed> {
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
        // Opened only for a rename: an append has no use for it.
        let mut dir = None;
        let (incarnation, generation) = match &existing {
            // A new value starts a new incarnation, so that handles of a value released
            // before can never take it for theirs; a journal left beside no data file
            // (a release cut short) goes first.
            None if creating => {
                self.remember(None);
                self.remove_journal(dir.insert(self.open_dir()?))?;
                (new_incarnation(), 0)
            }
            None => return Ok(Committed::Conflict),
            // Someone created the value first: go on with theirs (a creating handle has no
            // version of its own to protect).
            Some(meta) if creating => {
                match header.valid() {
                    Some((incarnation, _)) => self.set_incarnation(incarnation),
                    None => {
                        self.repair(&held, meta, None)?;
                    }
                }
                return Ok(Committed::Conflict);
            }
            Some(meta) => {
                let now = match self.seen_locked(&held, header, meta, Some(expected))? {
                    Seen::At(now) => now,
                    Seen::Gone => return Ok(Committed::Conflict),
                };
                // Written to only by a journal commit (a plain one reads it, and removes it).
                let current = self.current(
                    now,
                    Reading {
                        write: self.journal,
                        ..Reading::default()
                    },
                )?;
                if current.version != expected {
                    self.keep_active(current);
                    return Ok(Committed::Conflict);
                }
                let incarnation = self.incarnation();
                if self.journal {
                    return self.append(&held, incarnation, meta, current, change, false);
                }
                if current.active.as_ref().is_some_and(|a| a.cursor.ops) {
                    // The journal ends in ops, and only an atom can apply them: the new
                    // value goes in as a record, then becomes the snapshot (a compaction),
                    // which leaves an empty journal over it.
                    let current = if current
                        .active
                        .as_ref()
                        .is_some_and(|a| a.journal.writable())
                    {
                        current
                    } else {
                        self.keep_active(current);
                        let reading = Reading {
                            write: true,
                            ..Reading::default()
                        };
                        let current = self.current(now, reading)?;
                        if current.version != expected {
                            self.keep_active(current);
                            return Ok(Committed::Conflict);
                        }
                        current
                    };
                    let value = Change::Value(change.value());
                    return self.append(&held, incarnation, meta, current, value, true);
                }
                let dir = dir.insert(self.open_dir()?);
                if current.active.is_some() || current.stale.is_some() {
                    self.retire_journal(dir, meta, current)?;
                }
                (incarnation, expected.generation)
            }
        };
        // What the lock file says until the rename: restored if the rename fails.
        let previous = if creating {
            header.valid()
        } else {
            Some((incarnation, generation))
        };
        let next = generation.checked_add(1).unwrap_or(1);
        // The generation is bumped before the rename, not after: if writing it fails (a
        // full disk), the data file is still untouched and the failed commit changed
        // nothing; and a crash between the two leaves a new generation over the old
        // file, which others merely reload, never a new file under the old generation.
        // If the rename itself fails, the bump is undone (best effort: at worst, others
        // reload the unchanged value).
        let dir = match dir {
            Some(dir) => dir,
            None => self.open_dir()?,
        };
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
        .run(change.value());
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
}

impl Store for FileStore {
    fn resource(&self) -> String {
        self.resource.clone()
    }

    fn load(&self) -> Result<Option<Snapshot>> {
        if self.known().is_some() || self.has_journal()? {
            // A journal may hold newer values than the data file: read both under the lock.
            return match self.read_locked(None)? {
                Some(Found::State(state)) if !state.ops.is_empty() => Err(Error::Replay {
                    resource: self.resource.clone(),
                    at: state.ops[0].at.clone(),
                    reason: "the value is stored as ops after its last snapshot, which only \
                             an atom of the value's type can apply: use `Store::load_replay`, \
                             or open the atom with `ops()`"
                        .into(),
                }),
                Some(Found::State(state)) => Ok(Some(state.base)),
                Some(Found::Steps(_)) | None => Ok(None),
            };
        }
        self.load_plain()
    }

    fn check(&self, known: Version) -> Result<Observed> {
        let header = self.lock.peek()?;
        let Some(meta) = self.stat()? else {
            self.missing()?;
            return Ok(Observed::Missing);
        };
        // A rename, or a journal started, moves the lock file's generation first: the same
        // generation over the same data file means nothing changed, or, with a journal
        // this handle knows, nothing after the end it knows.
        match self.observe(header, &meta, Some(known))? {
            Seen::Gone => Ok(Observed::Missing),
            // Over a journal this handle knows, only the journal's end tells (appends leave
            // the lock file alone).
            Seen::At(now) if self.known_over(now) => {
                if self.quiet(now, known)? {
                    return Ok(Observed::Unchanged);
                }
                self.changes_since(known)
            }
            Seen::At(now) if now == known => Ok(Observed::Unchanged),
            Seen::At(_) if self.has_journal()? => self.changes_since(known),
            Seen::At(_) => Ok(match self.load_plain()? {
                None => Observed::Missing,
                Some(snapshot) if snapshot.version == known => Observed::Unchanged,
                Some(snapshot) => Observed::Changed(snapshot),
            }),
        }
    }

    fn commit(&self, expected: Version, encode: Encoder<'_>) -> Result<Committed> {
        self.commit_change(expected, Change::Value(encode))
    }

    /// In journal mode, appends the ops as one record (one flush); in plain mode, writes
    /// the value they make, as `commit` does.
    fn commit_ops(
        &self,
        expected: Version,
        ops: &[&[u8]],
        encode: Encoder<'_>,
    ) -> Result<Committed> {
        if ops.is_empty() {
            return self.commit(expected, encode);
        }
        self.commit_change(expected, Change::Ops(ops, encode))
    }

    fn load_replay(&self) -> Result<Option<Replay>> {
        if self.known().is_some() || self.has_journal()? {
            return Ok(match self.read_locked(None)? {
                Some(Found::State(state)) => Some(state),
                Some(Found::Steps(_)) | None => None,
            });
        }
        Ok(self.load_plain()?.map(Replay::from))
    }

    fn release(&self) -> Result<()> {
        let held = self.lock.acquire(self.stat()?.is_some())?;
        // The data file first: a release cut short leaves no value, never an older one.
        for (file, what) in [
            (&self.layout.target, "remove the data file"),
            (&self.layout.journal, "remove the journal"),
        ] {
            match fs::remove_file(file) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(what, file, e)),
            }
        }
        self.remember(None);
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
    /// atom): a commit renaming a new file over the data file, a write to it in place, a
    /// journal record appended (a write to the journal, which its writer keeps open), or a
    /// removal nudges the atom. Needs the `live` feature.
    fn follow(&self, nudge: Nudge) -> Result<Subscription> {
        #[cfg(feature = "live")]
        {
            let files = [self.layout.target.as_path(), self.layout.journal.as_path()];
            crate::live::follow(&self.resource, &files, &self.layout.dir, nudge)
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
