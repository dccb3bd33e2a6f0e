//! libFuzzer entry for `medsec_fuzz::detection_rules` (see crates/fuzz).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| medsec_fuzz::detection_rules(data));
