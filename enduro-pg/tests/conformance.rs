//! The conformance kit against PostgreSQL (`DATABASE_URL`, or a private cluster started for
//! this test binary): the blocking suite through the blocking wrapper, and the async suite
//! natively.

mod common;

enduro_core::conformance!(pg_backend_or_skip!());
enduro_core::async_conformance!(pg_backend_or_skip!());
