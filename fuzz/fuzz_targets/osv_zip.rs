//! libFuzzer entry for `medsec_fuzz::osv_zip` (see crates/fuzz).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| medsec_fuzz::osv_zip(data));
