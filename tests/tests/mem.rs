//! The conformance suite against memory atoms.
enduro_tests::conformance!(enduro_tests::backends::MemBackend);
