//! libFuzzer entry for `medsec_fuzz::sbom_spdx_tag_value` (see crates/fuzz).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| medsec_fuzz::sbom_spdx_tag_value(data));
