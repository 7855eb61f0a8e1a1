#![no_main]
//! Fuzz target: keyturn::fuzzing::project_rewrite (see src/fuzzing.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| keyturn::fuzzing::project_rewrite(data));
