//! The sidecar lock file: an OS lock that serializes commits across processes, and the
//! generation counter kept in it.
//!
//! The data file is replaced on every commit, so it cannot carry the lock; the lock file
//! beside it is never replaced, only deleted by `release`. It holds 8 bytes: the number of
//! commits so far (little-endian), which lets a process see cheaply that another one
//! committed, even when the file system reuses the data file's inode.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use enduro_core::{Error, Result};

/// The generation written into the lock file by `release`, just before deleting it, so a
/// process still holding the old lock file sees the atom is gone.
pub(crate) const RELEASED: u64 = u64::MAX;

pub(crate) struct LockFile {
    path: PathBuf,
    file: Mutex<File>,
    timeout: Option<Duration>,
}

/// The lock, held: unlocked on drop.
pub(crate) struct Held<'a> {
    lock: &'a LockFile,
    file: MutexGuard<'a, File>,
}

fn open(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Error::io("open the lock file", path, e))
}

fn read_generation(file: &File, path: &Path) -> Result<u64> {
    let mut buf = [0u8; 8];
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], filled as u64) {
            Ok(0) => return Ok(0), // a new lock file: no commits yet
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("read the lock file", path, e)),
        }
    }
    Ok(u64::from_le_bytes(buf))
}

impl LockFile {
    pub(crate) fn open(path: PathBuf, timeout: Option<Duration>) -> Result<Self> {
        let file = open(&path)?;
        Ok(LockFile {
            path,
            file: Mutex::new(file),
            timeout,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn handle(&self) -> MutexGuard<'_, File> {
        self.file.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The generation, read without taking the lock: a hint for a cheap "did anyone
    /// commit?" check. Commits re-read it under the lock.
    pub(crate) fn peek_generation(&self) -> Result<u64> {
        read_generation(&self.handle(), &self.path)
    }

    /// Takes the lock, waiting at most the configured timeout. If the lock file was
    /// deleted or replaced meanwhile (another process released the atom), locks the file
    /// now at the path instead, so that all processes always lock the same file.
    pub(crate) fn acquire(&self) -> Result<Held<'_>> {
        self.acquire_following(true)
    }

    /// Like [`acquire`](Self::acquire), except when the lock file we hold was retired by
    /// another process's `release`: then it stays locked on that file, whose generation
    /// ([`RELEASED`]) tells the caller the atom is gone, instead of creating a new lock
    /// file for a released atom.
    pub(crate) fn acquire_unless_released(&self) -> Result<Held<'_>> {
        self.acquire_following(false)
    }

    fn acquire_following(&self, follow_released: bool) -> Result<Held<'_>> {
        let started = Instant::now();
        let mut file = self.handle();
        loop {
            self.wait_for(&file, started)?;
            let current = fs::metadata(&self.path);
            let ours = file
                .metadata()
                .map_err(|e| Error::io("inspect the lock file", &self.path, e))?;
            match current {
                Ok(meta) if meta.dev() == ours.dev() && meta.ino() == ours.ino() => {
                    return Ok(Held { lock: self, file });
                }
                _ if !follow_released && read_generation(&file, &self.path)? == RELEASED => {
                    return Ok(Held { lock: self, file });
                }
                _ => {
                    let _ = file.unlock();
                    *file = open(&self.path)?;
                }
            }
        }
    }

    fn wait_for(&self, file: &File, started: Instant) -> Result<()> {
        let Some(timeout) = self.timeout else {
            return file
                .lock()
                .map_err(|e| Error::io("lock the lock file", &self.path, e));
        };
        let mut pause = Duration::from_millis(1);
        loop {
            match file.try_lock() {
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
    pub(crate) fn generation(&self) -> Result<u64> {
        read_generation(&self.file, &self.lock.path)
    }

    pub(crate) fn set_generation(&self, generation: u64) -> Result<()> {
        self.file
            .write_all_at(&generation.to_le_bytes(), 0)
            .map_err(|e| Error::io("write the lock file", &self.lock.path, e))
    }

    /// Marks the lock file as released and deletes it, still holding the lock.
    pub(crate) fn retire(&self) -> Result<()> {
        self.set_generation(RELEASED)?;
        match fs::remove_file(&self.lock.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove the lock file", &self.lock.path, e)),
        }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}
