//! Live atoms: one watcher thread per database file and process asks SQLite every
//! [`POLL`] whether anyone committed (`PRAGMA data_version`, on a connection of its own,
//! changes with every commit made by another connection, in this process or another), and
//! nudges the live atoms of that file when so. Each atom then checks its own row, as
//! `refresh` would (a commit to another row costs it that one read).
//!
//! The thread starts with the first live atom of a file and ends with the last. A new
//! live atom is nudged once when it joins, for a commit made while it was being set up; a
//! watcher that could not read (the file replaced, say) nudges every atom once it can
//! again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use enduro_core::{Nudge, Subscription};
use rusqlite::{Connection, OpenFlags};

/// How often a watcher asks whether the database changed.
pub(crate) const POLL: Duration = Duration::from_millis(25);

/// The live atoms of one database file.
#[derive(Default)]
struct Watched {
    atoms: Mutex<Vec<(u64, Nudge)>>,
}

/// The watchers of this process, by database file.
fn watchers() -> &'static Mutex<HashMap<PathBuf, Arc<Watched>>> {
    static WATCHERS: OnceLock<Mutex<HashMap<PathBuf, Arc<Watched>>>> = OnceLock::new();
    WATCHERS.get_or_init(Default::default)
}

/// Keeps one live atom's following; dropping it stops the nudges (and the watcher, when
/// it was the file's last).
struct Following {
    watched: Arc<Watched>,
    id: u64,
}

impl Drop for Following {
    fn drop(&mut self) {
        let mut atoms = self.watched.atoms.lock().unwrap_or_else(|e| e.into_inner());
        atoms.retain(|(id, _)| *id != self.id);
    }
}

/// Starts nudging `nudge` whenever the database at `path` may have changed, until the
/// returned subscription drops. Fails only when no thread can be started.
pub(crate) fn follow(path: &Path, nudge: Nudge) -> std::io::Result<Subscription> {
    static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut all = watchers().lock().unwrap_or_else(|e| e.into_inner());
    let watched = match all.get(path) {
        Some(watched) => Arc::clone(watched),
        None => {
            let watched = Arc::new(Watched::default());
            let (file, thread) = (path.to_path_buf(), Arc::clone(&watched));
            std::thread::Builder::new()
                .name("enduro-sqlite-watch".into())
                .spawn(move || watch(&file, &thread))?;
            all.insert(path.to_path_buf(), Arc::clone(&watched));
            watched
        }
    };
    watched
        .atoms
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((id, nudge.clone()));
    drop(all);
    // A commit made while this atom was being set up is picked up now.
    nudge.changed();
    Ok(Subscription::new(Following { watched, id }))
}

fn nudge_all(watched: &Watched) {
    for (_, nudge) in watched
        .atoms
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        nudge.changed();
    }
}

/// The watcher's thread: polls the file's data version and nudges on a change; ends when
/// the file has no live atom left.
fn watch(path: &Path, watched: &Arc<Watched>) {
    let mut connection: Option<Connection> = None;
    let mut last: Option<i64> = None;
    loop {
        std::thread::sleep(POLL);
        {
            // Ends under the registry's lock, so that no atom joins a watcher that is
            // ending.
            let mut all = watchers().lock().unwrap_or_else(|e| e.into_inner());
            if watched
                .atoms
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_empty()
            {
                all.remove(path);
                return;
            }
        }
        if connection.is_none() {
            connection = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .ok();
            last = None;
        }
        let version = connection.as_ref().and_then(|c| {
            c.query_row("PRAGMA data_version", [], |row| row.get::<_, i64>(0))
                .ok()
        });
        match version {
            Some(version) => {
                // A first reading (the watcher started, or read again after a failure)
                // has nothing to compare with: a commit may have come just before it.
                let changed = last.is_none_or(|before| before != version);
                if changed {
                    nudge_all(watched);
                }
                last = Some(version);
            }
            None => {
                // Read again on a new connection next time (its first reading nudges).
                connection = None;
            }
        }
    }
}
