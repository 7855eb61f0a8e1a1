#![no_main]
//! Fuzz target: keyturn::fuzzing::token (see src/fuzzing.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| keyturn::fuzzing::token(data));
