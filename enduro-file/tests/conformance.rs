//! The conformance kit against file atoms: the blocking suite, and the async suite on the
//! same stores run inline.

mod common;

use common::FileBackend;
use enduro_core::conformance::InlineBackend;

enduro_core::conformance!(FileBackend::new());
enduro_core::async_conformance!(InlineBackend(FileBackend::new()));
