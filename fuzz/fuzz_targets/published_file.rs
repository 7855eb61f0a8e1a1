#![no_main]
//! Fuzz target: keyturn::fuzzing::published_file (see src/fuzzing.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| keyturn::fuzzing::published_file(data));
