//! Where an atom's files live: the data file and its directory, both resolved once at open
//! (every symlink followed), and the names of the lock and pending files beside it.
//!
//! Names are handled as bytes, never through a lossy UTF-8 conversion, so two data files
//! never share a sidecar; and every name the file system accepts for a data file has
//! sidecars that fit in a file name too (long names get a shortened, hashed stem).

use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::io::ErrorKind;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use enduro_core::{Error, Result};

/// How many symlinks in a row we follow before calling it a loop (as Linux does).
const MAX_LINKS: usize = 40;

/// Ending of pending files: a later open cleans up any left by a crash.
const PENDING_SUFFIX: &str = ".enduro-pending";

/// Ending of the lock file.
const LOCK_SUFFIX: &str = ".enduro-lock";

/// Ending of the journal (journal mode).
const JOURNAL_SUFFIX: &str = ".enduro-journal";

/// The longest file name Linux file systems take (ext4, xfs, btrfs, tmpfs: `NAME_MAX`).
const NAME_MAX: usize = 255;

/// The longest sidecar name is a pending file's in a pending dir of its own: `.` STEM `.`
/// 16 hex and the suffix. The hex is a hash of the data file's whole path, so that atoms
/// of the same name in different directories never share a pending file in a common
/// pending dir.
const PENDING_EXTRA: usize = 1 + 1 + 16 + PENDING_SUFFIX.len();

/// The longest data file name whose sidecars use it whole.
pub(crate) const LONGEST_PLAIN_NAME: usize = NAME_MAX - PENDING_EXTRA;

pub(crate) struct Layout {
    /// The data file: absolute, in a canonical directory, with symlinks followed.
    pub(crate) target: PathBuf,
    /// Its directory, canonical.
    pub(crate) dir: PathBuf,
    /// The identity (device, inode) of that directory at open, so that a directory
    /// replaced later is noticed instead of written into blindly.
    pub(crate) dir_id: (u64, u64),
    /// The lock file beside it.
    pub(crate) lock: PathBuf,
    /// The journal beside it (journal mode).
    pub(crate) journal: PathBuf,
    /// The name of this atom's pending file beside the data file: one name, since the lock
    /// lets one commit at a time write it. It does not depend on the path the directory is
    /// reached by, so that a crash's pending file is removed by the next open even when
    /// the disk is then mounted elsewhere or the directory moved.
    pub(crate) pending_name: OsString,
    /// Its name in a pending dir of its own (`pending_dir`), which atoms of other
    /// directories may share: with a hash of the data file's whole path.
    pub(crate) shared_pending_name: OsString,
}

impl Layout {
    /// Resolves `path` and checks that it can hold an atom, creating missing parent
    /// directories only once the path is known to name a file.
    pub(crate) fn resolve(path: &Path) -> Result<Layout> {
        check_names_a_file(path)?;
        let mut at =
            std::path::absolute(path).map_err(|e| Error::io("make the path absolute", path, e))?;
        for _ in 0..MAX_LINKS {
            check_names_a_file(&at)?;
            let (Some(parent), Some(name)) = (at.parent(), at.file_name()) else {
                return Err(names_no_file(path));
            };
            let dir = canonical_dir(parent)?;
            let target = dir.join(name);
            match fs::symlink_metadata(&target) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    let link = fs::read_link(&target)
                        .map_err(|e| Error::io("read the symlink", &target, e))?;
                    at = dir.join(link);
                }
                Ok(meta) => {
                    check_regular(&target, &meta)?;
                    check_not_a_sidecar(&target)?;
                    return Self::beside(dir, target);
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    check_not_a_sidecar(&target)?;
                    return Self::beside(dir, target);
                }
                Err(e) => return Err(Error::io("inspect", &target, e)),
            }
        }
        Err(Error::InvalidPath {
            path: path.to_path_buf(),
            reason: format!("more than {MAX_LINKS} symlinks in a row (a symlink loop?)"),
        })
    }

    fn beside(dir: PathBuf, target: PathBuf) -> Result<Layout> {
        let Some(name) = target.file_name() else {
            return Err(names_no_file(&target));
        };
        let meta = fs::metadata(&dir).map_err(|e| Error::io("inspect the directory", &dir, e))?;
        let stem = sidecar_stem(name.as_bytes());
        let tag = fnv1a(target.as_os_str().as_bytes().iter().copied());
        let lock = dir.join(OsString::from_vec(
            [b".", stem.as_slice(), LOCK_SUFFIX.as_bytes()].concat(),
        ));
        let journal = dir.join(OsString::from_vec(
            [b".", stem.as_slice(), JOURNAL_SUFFIX.as_bytes()].concat(),
        ));
        let pending_name =
            OsString::from_vec([b".", stem.as_slice(), PENDING_SUFFIX.as_bytes()].concat());
        let shared_pending_name = OsString::from_vec(
            [
                b".",
                stem.as_slice(),
                format!(".{tag:016x}").as_bytes(),
                PENDING_SUFFIX.as_bytes(),
            ]
            .concat(),
        );
        Ok(Layout {
            dir_id: (meta.dev(), meta.ino()),
            dir,
            lock,
            journal,
            pending_name,
            shared_pending_name,
            target,
        })
    }
}

/// The part of a sidecar's name that stands for the data file: its whole name when the
/// longest sidecar name still fits in a file name, otherwise a prefix of it and a hash of
/// all of it (`.{prefix}~{16 hex}`), so that every name the file system accepts works.
fn sidecar_stem(name: &[u8]) -> Vec<u8> {
    if name.len() <= LONGEST_PLAIN_NAME {
        return name.to_vec();
    }
    let hash = format!("~{:016x}", fnv1a(name.iter().copied()));
    let mut keep = LONGEST_PLAIN_NAME - hash.len();
    // Cut a UTF-8 name at a character boundary, so the sidecar's name stays readable.
    if let Ok(text) = std::str::from_utf8(name) {
        while !text.is_char_boundary(keep) {
            keep -= 1;
        }
    }
    [&name[..keep], hash.as_bytes()].concat()
}

/// Refuses, before anything is created, a path that cannot name a file: empty, ending in
/// a slash, `.` or `..`, or the root.
fn check_names_a_file(path: &Path) -> Result<()> {
    let bytes = path.as_os_str().as_bytes();
    if bytes.is_empty() {
        return Err(Error::InvalidPath {
            path: path.to_path_buf(),
            reason: "it is empty".into(),
        });
    }
    if bytes.ends_with(b"/") {
        return Err(Error::InvalidPath {
            path: path.to_path_buf(),
            reason: "it ends with a slash, so it names a directory; give the path of a file".into(),
        });
    }
    // `components` drops a trailing `.`: look at the bytes for it.
    let dot = bytes == b"." || bytes.ends_with(b"/.");
    match path.components().next_back() {
        Some(Component::Normal(_)) if !dot => Ok(()),
        _ => Err(names_no_file(path)),
    }
}

fn names_no_file(path: &Path) -> Error {
    Error::InvalidPath {
        path: path.to_path_buf(),
        reason: "it names no file (it ends in `.`, `..` or is the root); give the path of a file"
            .into(),
    }
}

/// Refuses a data file named like enduro's own sidecars: writing a value there would
/// clobber another atom's lock or pending file.
fn check_not_a_sidecar(target: &Path) -> Result<()> {
    let name = target.as_os_str().as_bytes();
    for suffix in [LOCK_SUFFIX, PENDING_SUFFIX, JOURNAL_SUFFIX] {
        if name.ends_with(suffix.as_bytes()) {
            return Err(Error::InvalidPath {
                path: target.to_path_buf(),
                reason: format!(
                    "names ending in `{suffix}` are enduro's own sidecar files; choose another name"
                ),
            });
        }
    }
    Ok(())
}

/// Refuses anything at the data path that is not a regular file: reading a FIFO would
/// hang, reading a device might never end.
pub(crate) fn check_regular(path: &Path, meta: &Metadata) -> Result<()> {
    let kind = meta.file_type();
    let what = if kind.is_file() {
        return Ok(());
    } else if kind.is_dir() {
        "a directory; give the path of a file inside it"
    } else if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    };
    Err(Error::InvalidPath {
        path: path.to_path_buf(),
        reason: format!("it is {what}; enduro keeps its value in a regular file"),
    })
}

/// The directory `dir`, created if missing, with every symlink in it resolved: later
/// changes to those symlinks do not move the atom.
fn canonical_dir(dir: &Path) -> Result<PathBuf> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(parent_is_file(dir)),
        Err(e) if e.kind() == ErrorKind::NotFound => create_dir(dir)?,
        Err(e) if e.kind() == ErrorKind::NotADirectory => return Err(parent_is_file(dir)),
        Err(e) => return Err(Error::io("inspect the directory", dir, e)),
    }
    fs::canonicalize(dir).map_err(|e| Error::io("resolve the directory", dir, e))
}

fn parent_is_file(dir: &Path) -> Error {
    let file = dir.ancestors().find(|a| a.is_file()).unwrap_or(dir);
    Error::InvalidPath {
        path: dir.to_path_buf(),
        reason: format!("`{}` is a file, not a directory", file.display()),
    }
}

fn create_dir(dir: &Path) -> Result<()> {
    match fs::create_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::NotADirectory | ErrorKind::AlreadyExists
            ) =>
        {
            Err(parent_is_file(dir))
        }
        Err(e) => Err(Error::io("create the directory", dir, e)),
    }
}

/// The pending dir, created if needed and resolved; it must be on the data file's file
/// system, or no rename from it could ever succeed.
pub(crate) fn pending_dir(dir: &Path, data_dir: &Path) -> Result<PathBuf> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(Error::InvalidPath {
                path: dir.to_path_buf(),
                reason: "the pending dir is a file, not a directory".into(),
            });
        }
        Err(_) => {
            fs::create_dir_all(dir).map_err(|e| Error::io("create the pending dir", dir, e))?
        }
    }
    let dir = fs::canonicalize(dir).map_err(|e| Error::io("resolve the pending dir", dir, e))?;
    let device = |d: &Path| {
        fs::metadata(d)
            .map(|m| m.dev())
            .map_err(|e| Error::io("inspect the directory", d, e))
    };
    if device(&dir)? != device(data_dir)? {
        return Err(Error::InvalidPath {
            path: dir,
            reason: format!(
                "the pending dir is on another file system than the data file's directory \
                 `{}`, but a pending file is renamed over the data file, which only works \
                 within one file system: choose a pending dir on the same file system",
                data_dir.display()
            ),
        });
    }
    Ok(dir)
}

/// FNV-1a: a hash that is the same in every process and every Rust release, so that
/// names derived from it (pending files, long names' sidecars) are recognised by any
/// later open.
pub(crate) fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_is_the_published_function() {
        assert_eq!(fnv1a(*b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(*b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn short_names_are_kept_and_long_ones_fit() {
        assert_eq!(sidecar_stem(b"state.json"), b"state.json");
        let long = vec![b'x'; NAME_MAX];
        let stem = sidecar_stem(&long);
        assert_eq!(stem.len(), LONGEST_PLAIN_NAME);
        assert!(stem.len() + PENDING_EXTRA <= NAME_MAX);
        let mut other = long.clone();
        other[NAME_MAX - 1] = b'y';
        assert_ne!(
            sidecar_stem(&other),
            stem,
            "names differing at the end differ"
        );
        // A multi-byte character is never cut in half.
        let accents = "é".repeat(120);
        assert!(std::str::from_utf8(&sidecar_stem(accents.as_bytes())).is_ok());
    }

    #[test]
    fn paths_that_name_no_file_are_refused_before_anything_is_created() {
        for bad in ["", "x.json/", "dir/..", "dir/.", "/"] {
            assert!(
                check_names_a_file(Path::new(bad)).is_err(),
                "{bad:?} was accepted"
            );
        }
        assert!(check_names_a_file(Path::new("dir/x.json")).is_ok());
    }
}
