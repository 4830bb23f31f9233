//! The process-wide runtime that drives every PostgreSQL connection enduro opens: one
//! small thread pool (threads named `enduro-pg`), whatever runtimes the callers use.
//!
//! A connection's task must outlive the runtime of the caller that happened to open it:
//! a pool is shared by atoms used from several runtimes (a `#[tokio::test]` each, say, or
//! blocking atoms), and a connection driven by a runtime that ends would fail under
//! whichever caller holds it then. Blocking stores run their calls on it too, so a
//! thousand blocking atoms share these threads instead of starting a runtime each. Cancel
//! requests and the closing of idle connections run here as well.

use std::sync::OnceLock;

use tokio::runtime::{Builder, Handle, Runtime};

/// At most this many worker threads (fewer on a one-core machine): they only move bytes
/// between sockets and callers, and run TLS.
const MAX_THREADS: usize = 2;

/// The runtime's handle, starting it on first use.
pub(crate) fn handle() -> Result<Handle, String> {
    static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let threads = std::thread::available_parallelism()
                .map_or(1, usize::from)
                .min(MAX_THREADS);
            Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name("enduro-pg")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the runtime for PostgreSQL connections: {e}"))
        })
        .as_ref()
        .map(|runtime| runtime.handle().clone())
        .map_err(Clone::clone)
}
