#![no_main]
//! Fuzz target: keyturn::fuzzing::config_edit (see src/fuzzing.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| keyturn::fuzzing::config_edit(data));
