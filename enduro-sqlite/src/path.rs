//! The database path: checked before SQLite opens it, so that nothing SQLite would do to a
//! path that holds no database (a directory, a file of something else) ever happens.

use std::fs;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use enduro_core::{Error, Result};

/// The first 16 bytes of every SQLite database file.
const HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Resolves `path` for SQLite: missing parent directories are created (as file atoms do),
/// and the result is absolute, with the symlinks of its directories resolved, so that a
/// later change of the working directory does not move the atom. Refuses, before SQLite
/// touches anything, a path that is a directory or a special file, and a file that is
/// not empty and does not begin with SQLite's header (left byte for byte as it was).
pub(crate) fn resolve(path: &Path) -> Result<PathBuf> {
    if path.as_os_str().is_empty() {
        return Err(Error::InvalidPath {
            path: path.to_path_buf(),
            reason: "the path is empty; give the path of a database file".into(),
        });
    }
    let name = match path.file_name() {
        Some(name) => name.to_owned(),
        None => {
            return Err(Error::InvalidPath {
                path: path.to_path_buf(),
                reason: "the path names no file (it ends in `..` or `/`); give the path of \
                         a database file"
                    .into(),
            });
        }
    };
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // The path itself first: a directory there is refused before any directory is made.
    check_existing(path)?;
    let dir = canonical_dir(parent)?;
    let resolved = dir.join(name);
    check_existing(&resolved)?;
    Ok(resolved)
}

/// Refuses whatever is at `path` if it cannot be a SQLite database; a missing file is fine
/// (SQLite creates it).
fn check_existing(path: &Path) -> Result<()> {
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        // A parent that is a file: reported by `canonical_dir`, with a clearer message.
        Err(e) if e.kind() == ErrorKind::NotADirectory => return Ok(()),
        Err(e) => return Err(Error::io("inspect the database file", path, e)),
    };
    let kind = meta.file_type();
    let what = if kind.is_file() {
        return check_header(path, meta.len());
    } else if kind.is_dir() {
        "a directory; give the path of a database file inside it"
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
        reason: format!("it is {what}; a SQLite database is a regular file"),
    })
}

/// Refuses a file that holds something other than a SQLite database. An empty file is a
/// new database to SQLite.
fn check_header(path: &Path, len: u64) -> Result<()> {
    if len == 0 {
        return Ok(());
    }
    let mut head = Vec::with_capacity(HEADER.len());
    fs::File::open(path)
        .and_then(|f| f.take(HEADER.len() as u64).read_to_end(&mut head))
        .map_err(|e| Error::io("read the header of the database file", path, e))?;
    if head == HEADER {
        return Ok(());
    }
    Err(Error::InvalidPath {
        path: path.to_path_buf(),
        reason: format!(
            "it is not a SQLite database (a {len}-byte file that does not begin with \
             SQLite's header `SQLite format 3`); it was left untouched: give the path of a \
             SQLite database, or of a file that does not exist yet"
        ),
    })
}

/// The directory `dir`, created if missing, with every symlink in it resolved.
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

fn parent_is_file(dir: &Path) -> Error {
    let file = dir.ancestors().find(|a| a.is_file()).unwrap_or(dir);
    Error::InvalidPath {
        path: dir.to_path_buf(),
        reason: format!("`{}` is a file, not a directory", file.display()),
    }
}
