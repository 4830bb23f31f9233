//! Following data files for live atoms: one file-system watcher per process (the `notify`
//! crate: inotify on Linux, FSEvents on macOS), watching the directories of the followed
//! files and nudging the atoms of a file when an event names it.
//!
//! Directories are watched, not files: a commit renames a new file over the data file,
//! which a watch on the old file would not see. The watcher starts with the first live
//! atom and stops with the last; a directory is watched while one of its files is
//! followed.
//!
//! Two locks, never held together across a call into the watcher: `WATCHER` (the watcher
//! and its directories) is held while adding or removing a watch, which waits for the
//! watcher's thread; `FOLLOWED` (the nudges by file) is what that thread takes to deliver
//! an event. So the thread never waits for a lock whose holder waits for it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use enduro_core::{Error, Nudge, Result, Subscription};
use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};

/// The watcher, and how many followed files each watched directory holds.
struct Watching {
    watcher: RecommendedWatcher,
    dirs: HashMap<PathBuf, usize>,
}

static WATCHER: Mutex<Option<Watching>> = Mutex::new(None);

/// The nudges of the live atoms, by followed file.
#[derive(Default)]
struct Followed {
    next: u64,
    files: HashMap<PathBuf, Vec<(u64, Nudge)>>,
}

static FOLLOWED: Mutex<Option<Followed>> = Mutex::new(None);

fn lock<G>(m: &Mutex<G>) -> MutexGuard<'_, G> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts nudging `nudge` whenever one of `files` (the data file and its journal, all in
/// directory `dir`) may have changed, until the subscription drops.
pub(crate) fn follow(
    resource: &str,
    files: &[&Path],
    dir: &Path,
    nudge: Nudge,
) -> Result<Subscription> {
    let mut watching = lock(&WATCHER);
    let state = match &mut *watching {
        Some(state) => state,
        idle @ None => idle.insert(Watching {
            watcher: notify::recommended_watcher(deliver)
                .map_err(|e| cannot_watch(resource, dir, e))?,
            dirs: HashMap::new(),
        }),
    };
    match state.dirs.get_mut(dir) {
        Some(count) => *count += 1,
        None => {
            if let Err(e) = state.watcher.watch(dir, RecursiveMode::NonRecursive) {
                if state.dirs.is_empty() {
                    *watching = None;
                }
                return Err(cannot_watch(resource, dir, e));
            }
            state.dirs.insert(dir.to_owned(), 1);
        }
    }
    let id = {
        let mut followed = lock(&FOLLOWED);
        let followed = followed.get_or_insert_with(Followed::default);
        followed.next += 1;
        let id = followed.next;
        for file in files {
            followed
                .files
                .entry(file.to_path_buf())
                .or_default()
                .push((id, nudge.clone()));
        }
        id
    };
    Ok(Subscription::new(Unfollow {
        files: files.iter().map(|f| f.to_path_buf()).collect(),
        dir: dir.to_owned(),
        id,
    }))
}

fn cannot_watch(resource: &str, dir: &Path, e: notify::Error) -> Error {
    let hint = match &e.kind {
        notify::ErrorKind::MaxFilesWatch => {
            "; the system's limit on watches is reached (on Linux, raise \
             fs.inotify.max_user_watches or fs.inotify.max_user_instances)"
        }
        _ => "",
    };
    Error::backend(
        resource,
        format!(
            "cannot watch the directory `{}` for other processes' commits, which a live \
             atom needs: {e}{hint}",
            dir.display()
        ),
        Some(Box::new(e)),
    )
}

/// Stops following one atom's files; unwatches their directory when no followed file is
/// left there, and stops the watcher when no directory is left.
struct Unfollow {
    files: Vec<PathBuf>,
    dir: PathBuf,
    id: u64,
}

impl Drop for Unfollow {
    fn drop(&mut self) {
        if let Some(followed) = lock(&FOLLOWED).as_mut() {
            for file in &self.files {
                if let Some(nudges) = followed.files.get_mut(file) {
                    nudges.retain(|(id, _)| *id != self.id);
                    if nudges.is_empty() {
                        followed.files.remove(file);
                    }
                }
            }
        }
        let mut watching = lock(&WATCHER);
        let Some(state) = watching.as_mut() else {
            return;
        };
        if let Some(count) = state.dirs.get_mut(&self.dir) {
            *count -= 1;
            if *count == 0 {
                state.dirs.remove(&self.dir);
                // A directory removed meanwhile has lost its watch already.
                let _ = state.watcher.unwatch(&self.dir);
            }
        }
        if state.dirs.is_empty() {
            // Dropped after the lock is released: stopping waits for nothing of ours.
            let stopped = watching.take();
            drop(watching);
            drop(stopped);
        }
    }
}

/// The watcher's event handler (on its thread): nudges the atoms of the files an event
/// names, or every atom when events may have been lost.
fn deliver(event: notify::Result<Event>) {
    let nudges: Vec<Nudge> = {
        let followed = lock(&FOLLOWED);
        let Some(followed) = followed.as_ref() else {
            return;
        };
        match &event {
            Ok(event) if !event.need_rescan() => event
                .paths
                .iter()
                .filter(|path| changes(&event.kind, is_journal(path)))
                .filter_map(|path| followed.files.get(path))
                .flatten()
                .map(|(_, n)| n.clone())
                .collect(),
            // Lost events (a full queue, a rescan asked for) or a broken watch: everyone
            // checks.
            _ => followed
                .files
                .values()
                .flatten()
                .map(|(_, n)| n.clone())
                .collect(),
        }
    };
    for nudge in nudges {
        nudge.changed();
    }
}

/// Whether `path` is a journal (journal mode), not a data file.
fn is_journal(path: &Path) -> bool {
    path.as_os_str()
        .as_encoded_bytes()
        .ends_with(b".enduro-journal")
}

/// Whether an event can mean a new value is complete in the data file: a file renamed
/// over it (every commit, an editor's save), its removal or creation, or a writer closing
/// it (a rewrite in place, once written). Not a write in progress (a rewrite in place
/// truncates first: the value would look blank, that is released, for a moment), and not
/// a mere read. In a journal, a write is a record appended: its writer keeps the journal
/// open, and holds the lock until the record is flushed, so a reader woken by the write
/// waits for it and then reads it whole.
fn changes(kind: &EventKind, journal: bool) -> bool {
    match kind {
        EventKind::Access(access) => matches!(access, AccessKind::Close(AccessMode::Write)),
        EventKind::Modify(modify) => match modify {
            ModifyKind::Data(_) => journal,
            ModifyKind::Metadata(_) => false,
            _ => true,
        },
        EventKind::Create(_) | EventKind::Remove(_) | EventKind::Any | EventKind::Other => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, DataChange, ModifyKind, RenameMode};

    #[test]
    fn reads_are_not_changes() {
        for journal in [false, true] {
            let changes = |kind| changes(&kind, journal);
            assert!(!changes(EventKind::Access(AccessKind::Open(
                AccessMode::Any
            ))));
            assert!(!changes(EventKind::Access(AccessKind::Close(
                AccessMode::Read
            ))));
            assert!(changes(EventKind::Access(AccessKind::Close(
                AccessMode::Write
            ))));
            assert!(changes(EventKind::Modify(ModifyKind::Name(RenameMode::To))));
            assert!(changes(EventKind::Create(CreateKind::File)));
            assert!(changes(EventKind::Any));
        }
        let write = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        assert!(!changes(&write, false), "a data file written in place");
        assert!(changes(&write, true), "a record appended");
        assert!(is_journal(Path::new("/d/.a.json.enduro-journal")));
        assert!(!is_journal(Path::new("/d/a.json")));
    }
}
