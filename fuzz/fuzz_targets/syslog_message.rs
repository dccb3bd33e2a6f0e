//! libFuzzer entry for `medsec_fuzz::syslog_message` (see crates/fuzz).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| medsec_fuzz::syslog_message(data));
