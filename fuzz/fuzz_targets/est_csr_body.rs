//! libFuzzer entry for `medsec_fuzz::est_csr_body` (see crates/fuzz).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| medsec_fuzz::est_csr_body(data));
