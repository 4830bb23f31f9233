//! The conformance suite against PostgreSQL (`DATABASE_URL`, or a private cluster started
//! for this test binary).
#![cfg(feature = "pg")]

enduro_tests::conformance!(enduro_tests::pg_backend_or_skip!());
