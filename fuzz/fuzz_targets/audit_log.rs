#![no_main]
//! Fuzz target: keyturn::fuzzing::audit_log (see src/fuzzing.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| keyturn::fuzzing::audit_log(data));
