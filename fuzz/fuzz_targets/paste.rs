#![no_main]
//! Fuzz target: keyturn::fuzzing::paste (see src/fuzzing.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| keyturn::fuzzing::paste(data));
