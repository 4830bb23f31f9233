//! The backends the suite runs against.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use enduro::MemStore;
use enduro::store::Store;

use crate::Backend;

/// Memory cells: a resource is one shared [`MemStore`].
#[derive(Debug, Default)]
pub struct MemBackend;

impl Backend for MemBackend {
    type Resource = Arc<MemStore>;

    fn fresh(&self) -> Arc<MemStore> {
        Arc::new(MemStore::new())
    }

    fn store(&self, resource: &Arc<MemStore>) -> enduro::Result<Box<dyn Store>> {
        Ok(Box::new(Arc::clone(resource)))
    }
}

/// Files in a private temp dir, removed when the backend drops.
#[derive(Debug)]
pub struct FileBackend {
    dir: tempfile::TempDir,
    next: AtomicUsize,
}

impl FileBackend {
    /// A backend with its own temp dir.
    pub fn new() -> Self {
        FileBackend {
            dir: tempfile::tempdir().unwrap(),
            next: AtomicUsize::new(0),
        }
    }

    /// The directory holding the resources.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Default for FileBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl Backend for FileBackend {
    type Resource = PathBuf;

    fn fresh(&self) -> PathBuf {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.dir.path().join(format!("atom-{n}.json"))
    }

    fn store(&self, path: &PathBuf) -> enduro::Result<Box<dyn Store>> {
        Ok(Box::new(enduro::FileStore::open(path)?))
    }

    fn stored(&self, path: &PathBuf) -> Option<Vec<u8>> {
        std::fs::read(path).ok()
    }

    fn plant(&self, path: &PathBuf, bytes: &[u8]) {
        std::fs::write(path, bytes).unwrap();
    }
}
