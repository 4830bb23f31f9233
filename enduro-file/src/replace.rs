//! Durable replace: write a pending file, fsync it, rename it over the target, fsync the
//! directory. A crash at any point leaves the old or the new file, never a torn one.

use std::fs::{self, File, Metadata, OpenOptions, Permissions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt, fchown};
use std::path::Path;

use enduro_core::{Encoder, Error, Result};

/// The buffer between the codec and the pending file: large values stream through it.
const BUFFER: usize = 64 * 1024;

/// Where the pending file goes and what it replaces.
pub(crate) struct Replace<'a> {
    /// Names the atom in an [`Error::Uncertain`].
    pub(crate) resource: &'a str,
    /// The pending file: one name per atom, since the lock lets one commit at a time
    /// write it; any file there when a commit starts was left by a crash.
    pub(crate) pending: &'a Path,
    pub(crate) target: &'a Path,
    /// The directory of the target, opened before the rename and fsynced after it.
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
        let at = self.pending;
        let file = create_pending(at)?;
        // Removes the pending file unless the rename consumed it.
        let pending = Pending(at);
        if let Some(existing) = self.existing {
            keep_owner_and_mode(&file, existing)
                .map_err(|e| Error::io("copy the permissions of the data file to", at, e))?;
        }

        let mut out = Recorder {
            inner: BufWriter::with_capacity(BUFFER, &file),
            error: None,
        };
        let written = encode(&mut out).and_then(|()| {
            out.flush()
                .map_err(|e| Error::io("write the pending file", at, e))
        });
        if let Err(e) = written {
            return Err(match out.error.take() {
                Some(io) => Error::io("write the pending file", at, io),
                None => e,
            });
        }
        drop(out);
        file.sync_all()
            .map_err(|e| Error::io("fsync the pending file", at, e))?;
        drop(file);
        (self.before_rename)()?;
        fs::rename(at, self.target).map_err(|e| {
            (self.rename_failed)();
            let hint = if e.kind() == io::ErrorKind::CrossesDevices {
                " (the pending dir must be on the same file system as the data file)"
            } else {
                ""
            };
            Error::io(
                format!("rename the pending file `{}`{hint} over", at.display()),
                self.target,
                e,
            )
        })?;
        std::mem::forget(pending);
        // The new value is in place: from here on, a failure does not undo it. Others see
        // it already; whether it survives a power cut is what is unknown.
        let dir = self.target.parent().unwrap_or(self.target);
        self.target_dir.sync_all().map_err(|e| Error::Uncertain {
            resource: self.resource.to_owned(),
            message: format!(
                "the new value is in place, but fsyncing its directory `{}` failed ({e}), so \
                 it may not survive a power cut (the disk may be failing)",
                dir.display()
            ),
            source: Some(Box::new(e)),
        })
    }
}

/// Creates the pending file afresh with `O_EXCL`, so that nothing planted at that path (a
/// symlink, say) is ever written through; one a crash left there is removed first.
fn create_pending(at: &Path) -> Result<File> {
    let create = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o666)
            .open(at)
    };
    match create() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            remove_stale(at)?;
            create()
        }
        created => created,
    }
    .map_err(|e| Error::io("create the pending file", at, e))
}

/// Removes the pending file at `at` if there is one (only ever called with the atom's
/// lock held, so it is a crash's leftover).
pub(crate) fn remove_stale(at: &Path) -> Result<()> {
    match fs::remove_file(at) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove the stale pending file", at, e)),
    }
}

/// The pending file, removed when this drops (after a failure).
struct Pending<'a>(&'a Path);

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        let _ = fs::remove_file(self.0);
    }
}

/// Gives the pending file the data file's mode, and its owner where we may.
pub(crate) fn keep_owner_and_mode(file: &File, existing: &Metadata) -> io::Result<()> {
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
