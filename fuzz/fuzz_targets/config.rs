#![no_main]
//! Fuzz target: keyturn::fuzzing::config (see src/fuzzing.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| keyturn::fuzzing::config(data));
