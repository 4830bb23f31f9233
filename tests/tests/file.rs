//! The conformance suite against file atoms.
enduro_tests::conformance!(enduro_tests::backends::FileBackend::new());
