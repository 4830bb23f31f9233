//! [`FileReport`]: what a file atom's path holds, read without changing anything (for
//! tools such as `enduro info`).

use std::fs::TryLockError;
use std::fs::{self, File};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use enduro_core::{Error, Result};

use crate::journal::{self, Cursor, Journal};
use crate::lock::{Header, read_only_header};
use crate::path::Layout;

/// What a file atom's path holds, read without writing, creating or repairing anything
/// and without waiting for the lock: the data file, the lock file, the journal and any
/// pending file a crash left. A snapshot for people and tools (`enduro info`); atoms
/// never need it.
///
/// ```
/// use enduro::{FileAtom, FileReport};
///
/// # let dir = std::env::temp_dir().join(format!("enduro-doc-{}-{}", std::process::id(), line!()));
/// let path = dir.join("a.json");
/// let atom = FileAtom::builder(&path).journal(true).open(0u64)?;
/// atom.swap(|n| n + 1)?;
/// let report = FileReport::read(&path)?;
/// assert_eq!(report.data_len, Some(1));
/// assert_eq!(report.generation, 2);
/// let journal = report.journal.expect("a journal");
/// assert_eq!((journal.values, journal.ops), (1, 0));
/// assert!(journal.applies);
/// assert_eq!(report.value.as_deref(), Some(&b"1"[..]));
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileReport {
    /// The data file, symlinks followed.
    pub path: PathBuf,
    /// The data file's size in bytes; `None` when there is no data file.
    pub data_len: Option<u64>,
    /// How many commits the value has seen: the last journal record's generation when a
    /// journal applies, else the lock file's (0 when it has none).
    pub generation: u64,
    /// The lock file.
    pub lock: LockState,
    /// The journal, when there is one.
    pub journal: Option<JournalReport>,
    /// Pending files beside the data file: left by a crash mid-commit (the next open or
    /// commit removes them), or being written right now.
    pub pending: Vec<PathBuf>,
    /// The value's bytes as stored: the last value record when a journal applies, else
    /// the data file. `None` without a data file, or when ops follow the last value (only
    /// an atom of the program's type can apply them).
    pub value: Option<Vec<u8>>,
}

/// The lock file's state, in a [`FileReport`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LockState {
    /// There is no lock file (the value was released, or never written by an atom).
    Missing,
    /// Nobody holds the lock.
    Free,
    /// Another process holds the lock: it is committing now (or stuck while committing).
    Held,
    /// The lock file's header does not read; the next open or commit repairs it from the
    /// data file.
    Damaged,
    /// The lock file could not be read (most often: it belongs to another user, who
    /// made it readable to nobody else): whether it is held is unknown, and so is the
    /// generation of a value without a journal (reported as 0).
    Unreadable,
}

/// The journal beside a data file (journal mode), in a [`FileReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JournalReport {
    /// The journal file.
    pub path: PathBuf,
    /// Its size on disk (records go into space written with zeros in advance).
    pub file_len: u64,
    /// Bytes its records take.
    pub used: u64,
    /// Whether its records apply to the data file (its header names the data file as its
    /// snapshot). A journal that does not apply is a leftover the next commit replaces.
    pub applies: bool,
    /// Records holding a whole value.
    pub values: u64,
    /// Ops (see `Atom::apply`), however many records hold them.
    pub ops: u64,
    /// Whether ops follow the last value: reading the value needs the program's `apply`.
    pub ends_in_ops: bool,
}

impl FileReport {
    /// Reads what the path holds; see [`FileReport`]. Fails when the path cannot hold a
    /// file atom (a directory, a special file, a parent that is a file), when its
    /// directory does not exist, or when a file cannot be read.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("enduro-doc-{}-{}", std::process::id(), line!()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let report = enduro::FileReport::read(dir.join("nothing.json"))?;
    /// assert_eq!(report.data_len, None);
    /// assert_eq!(report.lock, enduro::LockState::Missing);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read(path: impl AsRef<Path>) -> Result<FileReport> {
        let path = path.as_ref();
        // Resolving creates a missing directory: look first.
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && let Err(e) = fs::metadata(parent)
        {
            return Err(Error::io("inspect the directory", parent, e));
        }
        let layout = Layout::resolve(path)?;
        let data = match fs::metadata(&layout.target) {
            Ok(meta) => {
                crate::path::check_regular(&layout.target, &meta)?;
                Some(meta.len())
            }
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io("inspect the data file", &layout.target, e)),
        };
        // A lock file this user may not open (another user's atom, looked at by someone
        // who may read its data) does not stop the look: its state is unknown.
        let header = read_only_header(&layout.lock);
        let lock = match &header {
            Err(_) => LockState::Unreadable,
            Ok(None) => LockState::Missing,
            Ok(Some(Header::Damaged)) => LockState::Damaged,
            Ok(Some(Header::Valid { .. } | Header::Empty)) => lock_state(&layout.lock)?,
        };
        let header = header.ok().flatten();
        let (journal, value) = match data {
            Some(_) => {
                let bytes = fs::read(&layout.target)
                    .map_err(|e| Error::io("read the data file", &layout.target, e))?;
                match journal_report(&layout, &bytes)? {
                    Some((report, Some(replayed))) => {
                        (Some((report, Some(replayed.0))), replayed.1)
                    }
                    Some((report, None)) => (Some((report, None)), Some(bytes)),
                    None => (None, Some(bytes)),
                }
            }
            None => (None, None),
        };
        let generation = match (&journal, header) {
            (Some((_, Some(generation))), _) => *generation,
            (_, Some(Header::Valid { generation, .. })) => generation,
            _ => 0,
        };
        let mut pending = Vec::new();
        let beside = layout.dir.join(&layout.pending_name);
        if fs::symlink_metadata(&beside).is_ok() {
            pending.push(beside);
        }
        Ok(FileReport {
            path: layout.target,
            data_len: data,
            generation,
            lock,
            journal: journal.map(|(report, _)| report),
            pending,
            value,
        })
    }
}

/// Whether a writer holds the lock of the lock file at `path`, tried without waiting.
fn lock_state(path: &Path) -> Result<LockState> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(LockState::Missing),
        Err(e) => return Err(Error::io("open the lock file", path, e)),
    };
    match file.try_lock_shared() {
        Ok(()) => Ok(LockState::Free),
        Err(TryLockError::WouldBlock) => Ok(LockState::Held),
        Err(TryLockError::Error(e)) => Err(Error::io("try the lock of", path, e)),
    }
}

/// The journal beside the data file holding `data`, if any, and when it applies, the
/// generation its records reach and the value they make (`None` when ops follow it).
fn journal_report(layout: &Layout, data: &[u8]) -> Result<Option<(JournalReport, Replayed)>> {
    let Some(journal) = Journal::open(&layout.journal, false)? else {
        return Ok(None);
    };
    let file_len = fs::metadata(&layout.journal)
        .map_err(|e| Error::io("inspect the journal", &layout.journal, e))?
        .len();
    let mut report = JournalReport {
        path: layout.journal.clone(),
        file_len,
        used: 0,
        applies: false,
        values: 0,
        ops: 0,
        ends_in_ops: false,
    };
    let journal::Header::Valid(base) = journal.header()? else {
        return Ok(Some((report, None)));
    };
    if !base.matches(data) {
        return Ok(Some((report, None)));
    }
    // Checked as an open checks it: a damaged record with good ones after it is an error.
    let mut scan = journal.scan(&base, Cursor::start(&base), true, false)?;
    report.applies = true;
    report.used = scan.cursor.tail - journal::FIRST;
    report.values = scan.values;
    report.ops = scan.ops;
    report.ends_in_ops = scan.cursor.ops;
    let value = match (scan.cursor.ops, scan.items.pop()) {
        (true, _) => None,
        (false, Some(last)) => Some(last.bytes),
        (false, None) => Some(data.to_vec()),
    };
    Ok(Some((report, Some((scan.cursor.generation, value)))))
}

/// What an applying journal replays to: its generation, and its value unless ops follow.
type Replayed = Option<(u64, Option<Vec<u8>>)>;
