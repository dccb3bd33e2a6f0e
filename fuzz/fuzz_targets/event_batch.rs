//! libFuzzer entry for `medsec_fuzz::event_batch` (see crates/fuzz).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| medsec_fuzz::event_batch(data));
