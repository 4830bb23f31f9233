//! The raw baselines: the least code that gives the guarantee an enduro atom gives, with
//! nothing else — no lock file, no version check, no random temp name, no permission copy.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

/// Durable replace by hand: write a temp file through a buffer, fsync it, rename it over
/// the target, fsync the directory. After [`replace`](RawFile::replace) returns, the new
/// content survives a crash or power loss; a crash before leaves the old one.
#[derive(Debug)]
pub struct RawFile {
    dir: File,
    temp: PathBuf,
    target: PathBuf,
}

impl RawFile {
    /// Replaces `dir/name` (through the temp file `dir/.name.tmp`).
    pub fn new(dir: &Path, name: &str) -> io::Result<Self> {
        Ok(RawFile {
            dir: File::open(dir)?,
            temp: dir.join(format!(".{name}.tmp")),
            target: dir.join(name),
        })
    }

    /// The file being replaced.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Durably replaces the target with what `write` writes.
    pub fn replace(&self, write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
        let file = File::create(&self.temp)?;
        {
            let mut out = BufWriter::with_capacity(64 * 1024, &file);
            write(&mut out)?;
            out.flush()?;
        }
        file.sync_all()?;
        fs::rename(&self.temp, &self.target)?;
        self.dir.sync_all()
    }

    /// Durably replaces the target with `value` as compact JSON, encoded straight into
    /// the temp file's buffer.
    pub fn replace_json<T: Serialize>(&self, value: &T) -> io::Result<()> {
        self.replace(|out| serde_json::to_writer(out, value).map_err(io::Error::other))
    }
}

/// A durable counter by hand: the value in memory, [`RawFile::replace`] on every change.
#[derive(Debug)]
pub struct RawCounter {
    file: RawFile,
    value: u64,
}

impl RawCounter {
    /// A counter at 0 in `dir/name`, written once.
    pub fn new(dir: &Path, name: &str) -> io::Result<Self> {
        let file = RawFile::new(dir, name)?;
        file.replace_json(&0u64)?;
        Ok(RawCounter { file, value: 0 })
    }

    /// Adds one and returns once the new value is durable.
    pub fn increment(&mut self) -> io::Result<u64> {
        let next = self.value + 1;
        self.file.replace_json(&next)?;
        self.value = next;
        Ok(next)
    }
}

/// The raw in-memory baseline: encode the new value with serde_json (as every enduro
/// backend does) and store value and bytes under a mutex.
#[derive(Debug, Default)]
pub struct RawMemCell {
    cell: Mutex<(u64, Vec<u8>)>,
}

impl RawMemCell {
    /// Adds one, keeping the encoded bytes beside the value.
    pub fn increment(&self) -> u64 {
        let mut cell = self.cell.lock().unwrap_or_else(|e| e.into_inner());
        let next = cell.0 + 1;
        let bytes = serde_json::to_vec(&next).unwrap_or_default();
        *cell = (next, bytes);
        next
    }
}

/// The raw floor of a journal commit: a pre-zeroed file, one 64-byte record written with
/// `pwrite` at each successive 4 KiB boundary, then `fdatasync`. The file is allocated
/// and filled with zeros (and fsynced, with its directory) beforehand, so a write never
/// grows it and `fdatasync` has no size change to flush; at the end of the zeroed region
/// the loop wraps around to offset 0. This is the least a durable append can cost: no
/// encoding, no header check, no lock, no compaction.
#[derive(Debug)]
pub struct RawJournal {
    file: File,
    slots: u64,
    next: u64,
    seq: u64,
}

impl RawJournal {
    /// Bytes between records: each one starts at a fresh page.
    pub const SLOT: u64 = 4096;
    /// Bytes per record.
    pub const RECORD: usize = 64;

    /// Creates `dir/name` with `bytes` of zeros (rounded up to whole slots, at least one).
    pub fn new(dir: &Path, name: &str, bytes: u64) -> io::Result<Self> {
        let slots = bytes.div_ceil(Self::SLOT).max(1);
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.join(name))?;
        {
            // Real zeros on disk, not a sparse hole: the journal is pre-zeroed the same way.
            let zeros = vec![0u8; 1024 * 1024];
            let mut out = BufWriter::with_capacity(zeros.len(), &file);
            let mut left = slots * Self::SLOT;
            while left > 0 {
                let n = left.min(zeros.len() as u64);
                out.write_all(&zeros[..n as usize])?;
                left -= n;
            }
            out.flush()?;
        }
        file.sync_all()?;
        File::open(dir)?.sync_all()?;
        Ok(RawJournal {
            file,
            slots,
            next: 0,
            seq: 0,
        })
    }

    /// Writes the next record (a sequence number and `value`, zero-padded to
    /// [`RECORD`](Self::RECORD) bytes) and returns once it is durable.
    pub fn append(&mut self, value: u64) -> io::Result<()> {
        let mut record = [0u8; Self::RECORD];
        record[..8].copy_from_slice(&(self.seq + 1).to_le_bytes());
        record[8..16].copy_from_slice(&value.to_le_bytes());
        self.append_bytes(&record)
    }

    /// Writes `record` (at most [`SLOT`](Self::SLOT) bytes, as it is: no header) at the
    /// next slot and returns once it is durable.
    pub fn append_bytes(&mut self, record: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        if record.len() as u64 > Self::SLOT {
            return Err(io::Error::other(format!(
                "a raw journal record takes at most {} bytes, not {}",
                Self::SLOT,
                record.len()
            )));
        }
        self.seq += 1;
        self.file.write_all_at(record, self.next * Self::SLOT)?;
        self.file.sync_data()?;
        self.next = (self.next + 1) % self.slots;
        Ok(())
    }
}
