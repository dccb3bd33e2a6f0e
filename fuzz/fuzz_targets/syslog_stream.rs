//! libFuzzer entry for `medsec_fuzz::syslog_stream` (see crates/fuzz).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| medsec_fuzz::syslog_stream(data));
