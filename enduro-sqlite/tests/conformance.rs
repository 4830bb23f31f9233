//! The conformance kit against SQLite atoms: the blocking suite, and the async suite
//! through `OffThread`, as `SqliteAtom::open_async` runs its stores (each call on the
//! runtime's blocking pool).

mod common;

use common::SqliteBackend;
use enduro_core::conformance::OffThreadBackend;

enduro_core::conformance!(SqliteBackend::new());

/// The async suite as async SQLite atoms run.
mod off_thread {
    use super::*;

    enduro_core::async_conformance!(OffThreadBackend(SqliteBackend::new()));
}

/// Both suites again with a binary codec (CBOR), which the `BLOB` column stores as it is.
mod cbor {
    use super::*;
    use enduro_core::conformance::WithCodec;

    enduro_core::conformance!(WithCodec(SqliteBackend::new(), enduro_core::Cbor));

    mod off_thread {
        use super::*;

        enduro_core::async_conformance!(OffThreadBackend(WithCodec(
            SqliteBackend::new(),
            enduro_core::Cbor
        )));
    }
}
