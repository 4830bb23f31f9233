//! The conformance kit against a private Redis server: the blocking suite, and the async
//! suite through the core's `OffThread` adapter.

mod common;

enduro_core::conformance!(redis_backend_or_skip!());
enduro_core::async_conformance!(redis_backend_or_skip!());

/// Both suites again with a binary codec (CBOR): the hash's `value` field holds any bytes.
mod cbor {
    use super::*;
    use enduro_core::conformance::WithCodec;

    enduro_core::conformance!(WithCodec(redis_backend_or_skip!(), enduro_core::Cbor));
}
