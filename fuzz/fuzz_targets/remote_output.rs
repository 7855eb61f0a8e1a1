#![no_main]
//! Fuzz target: keyturn::fuzzing::remote_output (see src/fuzzing.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| keyturn::fuzzing::remote_output(data));
