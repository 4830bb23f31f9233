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
