//! libFuzzer entry for `medsec_fuzz::tuf_metadata` (see crates/fuzz).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| medsec_fuzz::tuf_metadata(data));
