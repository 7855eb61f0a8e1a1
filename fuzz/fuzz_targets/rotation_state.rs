#![no_main]
//! Fuzz target: keyturn::fuzzing::rotation_state (see src/fuzzing.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| keyturn::fuzzing::rotation_state(data));
