#![no_main]
//! Fuzz target: keyturn::fuzzing::key_text (see src/fuzzing.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| keyturn::fuzzing::key_text(data));
