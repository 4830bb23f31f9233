//! The conformance kit against memory atoms: the blocking suite on shared [`MemStore`]s,
//! and the async suite on the same stores run inline.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;

use enduro_core::conformance::{Backend, InlineBackend};
use enduro_core::{Result, Store};
use enduro_mem::MemStore;

/// Memory cells: a resource is one shared [`MemStore`], and every store on it a handle
/// to that one cell (as two processes would share a file).
#[derive(Debug, Default)]
pub struct MemBackend;

impl Backend for MemBackend {
    type Resource = Arc<MemStore>;

    fn fresh(&self) -> Arc<MemStore> {
        Arc::new(MemStore::new())
    }

    fn store(&self, resource: &Arc<MemStore>) -> Result<Box<dyn Store>> {
        Ok(Box::new(Arc::clone(resource)))
    }
}

enduro_core::conformance!(MemBackend);
enduro_core::async_conformance!(InlineBackend(MemBackend));
