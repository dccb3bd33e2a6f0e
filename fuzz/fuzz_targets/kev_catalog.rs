//! libFuzzer entry for `medsec_fuzz::kev_catalog` (see crates/fuzz).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| medsec_fuzz::kev_catalog(data));
