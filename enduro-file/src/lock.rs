//! The sidecar lock file: an OS lock that serializes commits across processes, and a small
//! header that counts them.
//!
//! The data file is replaced on every commit, so it cannot carry the lock; the lock file
//! beside it is never replaced, only deleted by `release`. It is opened for each operation
//! and closed after it, so that an atom holds no file descriptor between operations (a
//! process may keep thousands of atoms open under a low open-files limit).
//!
//! Its header holds a magic number, the *incarnation* (a random number chosen when the
//! value is created, so that a handle on a value that was released and created again can
//! tell), the *generation* (commits since then: a cheap "did anyone commit?", even when
//! the file system reuses the data file's inode) and a checksum; twice, so that damage to
//! one copy is survived. The header is never trusted over the data: a missing or damaged
//! one is repaired, never a reason to touch the data file.

use std::cell::Cell;
use std::fs::{self, File, Metadata, OpenOptions, TryLockError};
use std::io::ErrorKind;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use enduro_core::{Error, Result};

use crate::path::fnv1a;

const MAGIC: [u8; 8] = *b"enduroL1";
/// One copy of the header.
const RECORD: usize = 32;
/// The whole header: two copies.
const HEADER: usize = 2 * RECORD;

/// What the lock file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Header {
    /// A valid header.
    Valid { incarnation: u64, generation: u64 },
    /// No header yet (a new, empty lock file).
    Empty,
    /// Anything else: a torn write, a file from an older enduro, damage. Repaired at the
    /// next commit or open; the data file is never touched because of it.
    Damaged,
}

impl Header {
    /// The incarnation and generation of a valid header.
    pub(crate) fn valid(self) -> Option<(u64, u64)> {
        match self {
            Header::Valid {
                incarnation,
                generation,
            } => Some((incarnation, generation)),
            Header::Empty | Header::Damaged => None,
        }
    }

    /// Reads the header from the lock file's bytes: the first valid copy wins.
    fn parse(bytes: &[u8]) -> Header {
        if bytes.is_empty() {
            return Header::Empty;
        }
        if bytes.len() != HEADER {
            return Header::Damaged;
        }
        bytes
            .chunks_exact(RECORD)
            .find_map(Self::parse_record)
            .unwrap_or(Header::Damaged)
    }

    fn parse_record(record: &[u8]) -> Option<Header> {
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&record[i * 8..i * 8 + 8]);
            u64::from_le_bytes(w)
        };
        let intact = record[..8] == MAGIC && word(3) == fnv1a(record[..24].iter().copied());
        intact.then(|| Header::Valid {
            incarnation: word(1),
            generation: word(2),
        })
    }

    fn encode(incarnation: u64, generation: u64) -> [u8; HEADER] {
        let mut record = [0u8; RECORD];
        record[..8].copy_from_slice(&MAGIC);
        record[8..16].copy_from_slice(&incarnation.to_le_bytes());
        record[16..24].copy_from_slice(&generation.to_le_bytes());
        let check = fnv1a(record[..24].iter().copied());
        record[24..].copy_from_slice(&check.to_le_bytes());
        let mut out = [0u8; HEADER];
        out[..RECORD].copy_from_slice(&record);
        out[RECORD..].copy_from_slice(&record);
        out
    }
}

pub(crate) struct LockFile {
    path: PathBuf,
    timeout: Option<Duration>,
    /// With [`LockFile::keep_open`]: the lock file, kept open between exclusive takes.
    kept: Option<Mutex<Option<Kept>>>,
}

/// A lock file kept open, and its identity (device, inode).
type Kept = (File, (u64, u64));

/// The lock file of a [`Held`] lock: opened for it, or the one kept open.
enum Handle<'a> {
    Own(File),
    Kept(MutexGuard<'a, Option<Kept>>),
}

/// The lock, held: unlocked (and the file closed, unless kept open) on drop.
pub(crate) struct Held<'a> {
    lock: &'a LockFile,
    handle: Handle<'a>,
    /// The lock file's size: only lock holders write it, so it holds while we do.
    len: Cell<u64>,
}

fn open(path: &Path, create: bool) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .open(path)
}

/// The header of the lock file at `path`, read through a read-only handle, for a report by
/// someone who may read but not write it; `None` when there is none. Anything but a
/// regular file there reads as damaged (and is never opened: a FIFO would block).
pub(crate) fn read_only_header(path: &Path) -> Result<Option<Header>> {
    match fs::symlink_metadata(path) {
        Ok(meta) if !meta.is_file() => return Ok(Some(Header::Damaged)),
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("inspect the lock file", path, e)),
    }
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("open the lock file", path, e)),
    };
    let len = file
        .metadata()
        .map_err(|e| Error::io("inspect the lock file", path, e))?
        .len();
    read_header(&file, path, len).map(Some)
}

/// Reads the header of a lock file `len` bytes long (known from its metadata): one read,
/// and none for a file whose size already says it is empty or damaged.
fn read_header(file: &File, path: &Path, len: u64) -> Result<Header> {
    if len != HEADER as u64 {
        return Ok(if len == 0 {
            Header::Empty
        } else {
            Header::Damaged
        });
    }
    let mut buf = [0u8; HEADER];
    match file.read_exact_at(&mut buf, 0) {
        Ok(()) => Ok(Header::parse(&buf)),
        // Cut short by a writer that does not take the lock: damaged.
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(Header::Damaged),
        Err(e) => Err(Error::io("read the lock file", path, e)),
    }
}

impl LockFile {
    pub(crate) fn new(path: PathBuf, timeout: Option<Duration>) -> Self {
        LockFile {
            path,
            timeout,
            kept: None,
        }
    }

    /// Keeps the lock file open between exclusive takes (one file descriptor), saving its
    /// opening and closing on every commit: for journal mode, where they are a good part
    /// of a commit's cost.
    pub(crate) fn keep_open(mut self) -> Self {
        self.kept = Some(Mutex::new(None));
        self
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The header, read without taking the lock: a hint for a cheap "did anyone commit?"
    /// check (commits read it again under the lock). `None`: there is no lock file.
    pub(crate) fn peek(&self) -> Result<Option<Header>> {
        // Through the file kept open, when it is still the one at the path.
        if let Some(kept) = &self.kept
            && let Ok(slot) = kept.try_lock()
            && let Some((file, id)) = slot.as_ref()
            && let Ok(now) = fs::metadata(&self.path)
            && (now.dev(), now.ino()) == *id
            && now.is_file()
        {
            return read_header(file, &self.path, now.len()).map(Some);
        }
        match open(&self.path, false) {
            Ok(file) => {
                let meta = self.regular(&file)?;
                read_header(&file, &self.path, meta.len()).map(Some)
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("open the lock file", &self.path, e)),
        }
    }

    /// Takes the lock, waiting at most the configured timeout. With `create`, makes the
    /// lock file if it is missing; without, returns `None` when there is none (the atom
    /// was released), so that a released atom's handles recreate nothing. If the lock
    /// file was deleted or replaced while we waited for it (a release), takes the one now
    /// at the path, so that all processes always lock the same file.
    pub(crate) fn acquire(&self, create: bool) -> Result<Option<Held<'_>>> {
        self.take(create, false)
    }

    /// Takes the lock shared, as a reader: other readers may hold it too, writers wait.
    /// `None` when there is no lock file. A reader never writes the header.
    pub(crate) fn acquire_shared(&self) -> Result<Option<Held<'_>>> {
        self.take(false, true)
    }

    fn take(&self, create: bool, shared: bool) -> Result<Option<Held<'_>>> {
        let started = Instant::now();
        // The kept file serves one exclusive take at a time (flock locks belong to the
        // open file, so two takes through one file would not exclude each other).
        if let (Some(kept), false) = (&self.kept, shared)
            && let Ok(mut slot) = kept.try_lock()
        {
            if let Some((file, id)) = slot.take() {
                self.wait_for(&file, started, false)?;
                match fs::metadata(&self.path) {
                    Ok(now) if (now.dev(), now.ino()) == id && now.is_file() => {
                        let len = Cell::new(now.len());
                        *slot = Some((file, id));
                        return Ok(Some(Held {
                            lock: self,
                            handle: Handle::Kept(slot),
                            len,
                        }));
                    }
                    // Deleted or replaced since: open the one at the path.
                    _ => drop(file),
                }
            }
            let Some((file, meta)) = self.take_opened(create, false, started)? else {
                return Ok(None);
            };
            *slot = Some((file, (meta.dev(), meta.ino())));
            return Ok(Some(Held {
                lock: self,
                handle: Handle::Kept(slot),
                len: Cell::new(meta.len()),
            }));
        }
        Ok(self
            .take_opened(create, shared, started)?
            .map(|(file, meta)| Held {
                lock: self,
                handle: Handle::Own(file),
                len: Cell::new(meta.len()),
            }))
    }

    /// Opens the lock file and locks it; the file, locked, and its metadata.
    fn take_opened(
        &self,
        create: bool,
        shared: bool,
        started: Instant,
    ) -> Result<Option<(File, Metadata)>> {
        loop {
            let file = match open(&self.path, create) {
                Ok(file) => file,
                Err(e) if e.kind() == ErrorKind::NotFound && !create => return Ok(None),
                Err(e) => return Err(Error::io("open the lock file", &self.path, e)),
            };
            self.wait_for(&file, started, shared)?;
            let ours = self.regular(&file)?;
            match fs::metadata(&self.path) {
                Ok(now) if now.dev() == ours.dev() && now.ino() == ours.ino() => {
                    return Ok(Some((file, ours)));
                }
                // Deleted (or replaced) while we waited: try the file at the path now.
                _ => continue,
            }
        }
    }

    /// The open lock file's metadata, if it is a regular file.
    fn regular(&self, file: &File) -> Result<Metadata> {
        let meta = file
            .metadata()
            .map_err(|e| Error::io("inspect the lock file", &self.path, e))?;
        if meta.is_file() {
            Ok(meta)
        } else {
            Err(Error::InvalidPath {
                path: self.path.clone(),
                reason: "enduro's lock file is not a regular file here; move what is at \
                         that path away (enduro recreates its lock file)"
                    .into(),
            })
        }
    }

    fn wait_for(&self, file: &File, started: Instant, shared: bool) -> Result<()> {
        let Some(timeout) = self.timeout else {
            let locked = if shared {
                file.lock_shared()
            } else {
                file.lock()
            };
            return locked.map_err(|e| Error::io("lock the lock file", &self.path, e));
        };
        let mut pause = Duration::from_millis(1);
        loop {
            let attempt = if shared {
                file.try_lock_shared()
            } else {
                file.try_lock()
            };
            match attempt {
                Ok(()) => return Ok(()),
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(e)) => {
                    return Err(Error::io("lock the lock file", &self.path, e));
                }
            }
            let waited = started.elapsed();
            if waited >= timeout {
                return Err(Error::LockTimeout {
                    path: self.path.clone(),
                    waited,
                });
            }
            thread::sleep(pause.min(timeout - waited));
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
}

impl Held<'_> {
    fn file(&self) -> &File {
        match &self.handle {
            Handle::Own(file) => file,
            Handle::Kept(slot) => match slot.as_ref() {
                Some((file, _)) => file,
                None => unreachable!("a kept handle holds its file while held"),
            },
        }
    }

    pub(crate) fn header(&self) -> Result<Header> {
        read_header(self.file(), &self.lock.path, self.len.get())
    }

    pub(crate) fn write(&self, incarnation: u64, generation: u64) -> Result<()> {
        self.file()
            .write_all_at(&Header::encode(incarnation, generation), 0)
            .map_err(|e| Error::io("write the lock file", &self.lock.path, e))?;
        self.len.set(self.len.get().max(HEADER as u64));
        Ok(())
    }

    /// Writes a fresh header over a missing or damaged one, cutting off anything after it.
    pub(crate) fn repair(&self, incarnation: u64, generation: u64) -> Result<()> {
        self.write(incarnation, generation)?;
        self.file()
            .set_len(HEADER as u64)
            .map_err(|e| Error::io("repair the lock file", &self.lock.path, e))?;
        self.len.set(HEADER as u64);
        Ok(())
    }

    /// Deletes the lock file, still holding the lock: whoever waits for it then finds it
    /// gone.
    pub(crate) fn retire(&self) -> Result<()> {
        match fs::remove_file(&self.lock.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove the lock file", &self.lock.path, e)),
        }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let _ = self.file().unlock();
    }
}

pub(crate) use enduro_core::new_incarnation;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_damage_is_recognised() {
        let bytes = Header::encode(7, 42);
        let valid = Header::Valid {
            incarnation: 7,
            generation: 42,
        };
        assert_eq!(Header::parse(&bytes), valid);
        assert_eq!(Header::parse(&[]), Header::Empty);
        for at in 0..HEADER {
            let mut broken = bytes;
            broken[at] ^= 0xff;
            assert_eq!(
                Header::parse(&broken),
                valid,
                "one copy survives damage at {at}"
            );
            broken[(at + RECORD) % HEADER] ^= 0xff;
            assert_eq!(
                Header::parse(&broken),
                Header::Damaged,
                "both copies at {at}"
            );
        }
        let mut start = bytes;
        start[..8].copy_from_slice(&[0xff; 8]);
        assert_eq!(
            Header::parse(&start),
            valid,
            "the old RELEASED marker over it"
        );
        assert_eq!(
            Header::parse(&[0xff; 8]),
            Header::Damaged,
            "an old 8-byte file"
        );
        assert_eq!(Header::parse(&bytes[..40]), Header::Damaged, "a torn write");
    }

    #[test]
    fn incarnations_differ() {
        let a = new_incarnation();
        let b = new_incarnation();
        assert_ne!(a, b);
        assert_ne!(a, 0);
    }
}
