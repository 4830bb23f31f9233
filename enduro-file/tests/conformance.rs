//! The conformance kit against file atoms: the blocking suite, and the async suite twice:
//! on stores run inline, and through `OffThread` as async file atoms run them (each call
//! on the runtime's blocking pool); and all three again in journal mode.

mod common;

use common::FileBackend;
use enduro_core::conformance::{InlineBackend, OffThreadBackend};

enduro_core::conformance!(FileBackend::new());
enduro_core::async_conformance!(InlineBackend(FileBackend::new()));

/// The async suite as async file atoms run (`FileAtom::open_async`).
mod off_thread {
    use super::*;

    enduro_core::async_conformance!(OffThreadBackend(FileBackend::new()));
}

/// Every suite again with journal-mode stores: commits append to the journal.
mod journal {
    use super::*;

    enduro_core::conformance!(FileBackend::journal());
    enduro_core::async_conformance!(InlineBackend(FileBackend::journal()));

    mod off_thread {
        use super::*;

        enduro_core::async_conformance!(OffThreadBackend(FileBackend::journal()));
    }
}
