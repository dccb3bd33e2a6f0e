//! libFuzzer entry for `medsec_fuzz::cvd_report` (see crates/fuzz).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| medsec_fuzz::cvd_report(data));
