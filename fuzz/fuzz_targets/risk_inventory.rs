//! libFuzzer entry for `medsec_fuzz::risk_inventory` (see crates/fuzz).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| medsec_fuzz::risk_inventory(data));
