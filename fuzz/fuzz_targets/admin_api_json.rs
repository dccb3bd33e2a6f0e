//! libFuzzer entry for `medsec_fuzz::admin_api_json` (see crates/fuzz).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| medsec_fuzz::admin_api_json(data));
