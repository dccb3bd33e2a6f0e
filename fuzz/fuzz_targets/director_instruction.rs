//! libFuzzer entry for `medsec_fuzz::director_instruction` (see crates/fuzz).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| medsec_fuzz::director_instruction(data));
