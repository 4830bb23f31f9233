//! Where an atom's files live: the data file (symlinks followed), its directory, and the
//! names of the lock and pending files beside it.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use enduro_core::{Error, Result};

/// How many symlinks in a row we follow before calling it a loop (as Linux does).
const MAX_LINKS: usize = 40;

/// Ending of pending files: a later open cleans up any left by a crash.
pub(crate) const PENDING_SUFFIX: &str = ".enduro-pending";

pub(crate) struct Layout {
    /// The data file, absolute, with symlinks followed.
    pub(crate) target: PathBuf,
    /// Its directory.
    pub(crate) dir: PathBuf,
    /// The lock file beside it.
    pub(crate) lock: PathBuf,
    /// What every pending file of this atom starts with.
    pub(crate) pending_prefix: String,
}

impl Layout {
    /// Resolves `path` and checks that it can hold an atom, creating missing parent
    /// directories.
    pub(crate) fn resolve(path: &Path) -> Result<Layout> {
        let mut target =
            std::path::absolute(path).map_err(|e| Error::io("make the path absolute", path, e))?;
        for _ in 0..MAX_LINKS {
            match fs::symlink_metadata(&target) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    let link = fs::read_link(&target)
                        .map_err(|e| Error::io("read the symlink", &target, e))?;
                    let base = target.parent().map(Path::to_path_buf).unwrap_or_default();
                    target = base.join(link);
                }
                Ok(meta) if meta.is_dir() => {
                    return Err(Error::InvalidPath {
                        path: target,
                        reason: "it is a directory; give the path of a file inside it".into(),
                    });
                }
                Ok(_) => return Self::beside(target),
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    create_parent(&target)?;
                    return Self::beside(target);
                }
                // ENOTDIR: some ancestor is a file.
                Err(e) if e.kind() == ErrorKind::NotADirectory => {
                    return Err(parent_is_file(&target));
                }
                Err(e) => return Err(Error::io("inspect", &target, e)),
            }
        }
        Err(Error::InvalidPath {
            path: path.to_path_buf(),
            reason: format!("more than {MAX_LINKS} symlinks in a row (a symlink loop?)"),
        })
    }

    fn beside(target: PathBuf) -> Result<Layout> {
        let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
            return Err(Error::InvalidPath {
                path: target,
                reason: "it names no file".into(),
            });
        };
        let name = name.to_string_lossy();
        let tag = fnv1a(target.as_os_str().as_encoded_bytes().iter().copied());
        Ok(Layout {
            dir: dir.to_path_buf(),
            lock: dir.join(format!(".{name}.enduro-lock")),
            pending_prefix: format!(".{name}.{:08x}.", tag as u32),
            target,
        })
    }
}

fn parent_is_file(target: &Path) -> Error {
    let file = target
        .ancestors()
        .skip(1)
        .find(|a| a.is_file())
        .unwrap_or(target);
    Error::InvalidPath {
        path: target.to_path_buf(),
        reason: format!("`{}` is a file, not a directory", file.display()),
    }
}

fn create_parent(target: &Path) -> Result<()> {
    let Some(dir) = target.parent() else {
        return Ok(());
    };
    match fs::create_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::NotADirectory | ErrorKind::AlreadyExists
            ) =>
        {
            Err(parent_is_file(target))
        }
        Err(e) => Err(Error::io("create the directory", dir, e)),
    }
}

/// Creates the pending dir if needed.
pub(crate) fn ensure_dir(dir: &Path) -> Result<()> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(Error::InvalidPath {
            path: dir.to_path_buf(),
            reason: "the pending dir is a file, not a directory".into(),
        }),
        Err(_) => fs::create_dir_all(dir).map_err(|e| Error::io("create the pending dir", dir, e)),
    }
}

/// FNV-1a: a hash that is the same in every process and every Rust release, so that
/// names derived from it (pending files) are recognised by any later open.
pub(crate) fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn fnv1a_is_the_published_function() {
        assert_eq!(super::fnv1a(*b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(super::fnv1a(*b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
