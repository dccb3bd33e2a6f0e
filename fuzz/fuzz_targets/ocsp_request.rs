//! libFuzzer entry for `medsec_fuzz::ocsp_request` (see crates/fuzz).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| medsec_fuzz::ocsp_request(data));
