//! Durable replace: write a pending file, fsync it, rename it over the target, fsync the
//! directory. A crash at any point leaves the old or the new file, never a torn one.

use std::fs::{File, Metadata, Permissions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt, fchown};
use std::path::Path;

use enduro_core::{Encoder, Error, Result};

use crate::path::PENDING_SUFFIX;

/// The buffer between the codec and the pending file: large values stream through it.
const BUFFER: usize = 64 * 1024;

/// Where the pending file goes and what it replaces.
pub(crate) struct Replace<'a> {
    pub(crate) pending_dir: &'a Path,
    pub(crate) pending_prefix: &'a str,
    pub(crate) target: &'a Path,
    /// The open directory of the target, fsynced after the rename.
    pub(crate) target_dir: &'a File,
    /// The file being replaced, if any: its permissions and owner are kept.
    pub(crate) existing: Option<&'a Metadata>,
    /// Runs once the pending file is complete and fsynced, just before the rename; if it
    /// fails, the target is left untouched.
    pub(crate) before_rename: &'a dyn Fn() -> Result<()>,
    /// Runs if the rename then fails (the target is untouched): undoes `before_rename`.
    pub(crate) rename_failed: &'a dyn Fn(),
}

/// Remembers the first I/O error the file reported, so that it is not mistaken for an
/// encoding error when it surfaces through the codec.
struct Recorder<W> {
    inner: W,
    error: Option<io::Error>,
}

impl<W: Write> Write for Recorder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf).inspect_err(|e| self.note(e))
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf).inspect_err(|e| self.note(e))
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().inspect_err(|e| self.note(e))
    }
}

impl<W> Recorder<W> {
    fn note(&mut self, e: &io::Error) {
        if self.error.is_none() {
            self.error = Some(io::Error::new(e.kind(), e.to_string()));
        }
    }
}

impl Replace<'_> {
    pub(crate) fn run(&self, encode: Encoder<'_>) -> Result<()> {
        let pending = tempfile::Builder::new()
            .prefix(self.pending_prefix)
            .suffix(PENDING_SUFFIX)
            .permissions(Permissions::from_mode(0o666))
            .tempfile_in(self.pending_dir)
            .map_err(|e| Error::io("create a pending file in", self.pending_dir, e))?;
        let at = pending.path().to_path_buf();
        if let Some(existing) = self.existing {
            keep_owner_and_mode(pending.as_file(), existing)
                .map_err(|e| Error::io("copy the permissions of the data file to", &at, e))?;
        }

        let mut out = Recorder {
            inner: BufWriter::with_capacity(BUFFER, pending.as_file()),
            error: None,
        };
        let written = encode(&mut out).and_then(|()| {
            out.flush()
                .map_err(|e| Error::io("write the pending file", &at, e))
        });
        if let Err(e) = written {
            // The pending file is removed when `pending` drops.
            return Err(match out.error.take() {
                Some(io) => Error::io("write the pending file", &at, io),
                None => e,
            });
        }
        drop(out);
        pending
            .as_file()
            .sync_all()
            .map_err(|e| Error::io("fsync the pending file", &at, e))?;
        (self.before_rename)()?;
        pending.persist(self.target).map_err(|e| {
            (self.rename_failed)();
            let hint = if e.error.kind() == io::ErrorKind::CrossesDevices {
                " (the pending dir must be on the same file system as the data file)"
            } else {
                ""
            };
            Error::io(
                format!("rename the pending file `{}`{hint} over", at.display()),
                self.target,
                e.error,
            )
        })?;
        let dir = self.target.parent().unwrap_or(self.target);
        self.target_dir
            .sync_all()
            .map_err(|e| Error::io("fsync the directory", dir, e))
    }
}

/// Gives the pending file the data file's mode, and its owner where we may.
fn keep_owner_and_mode(file: &File, existing: &Metadata) -> io::Result<()> {
    let ours = file.metadata()?;
    if (ours.uid(), ours.gid()) != (existing.uid(), existing.gid()) {
        // Only a privileged process may give a file away; others keep their own ownership.
        match fchown(file, Some(existing.uid()), Some(existing.gid())) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {}
            Err(e) => return Err(e),
        }
    }
    file.set_permissions(Permissions::from_mode(existing.mode() & 0o7777))
}
