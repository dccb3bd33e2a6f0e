//! Fuzz targets for every parser that takes outside input, one `pub fn <target>(&[u8])` each.
//!
//! Each target hands the bytes to the real parser (the same function the server, the CLI or
//! the agent calls) and, when the input is accepted, checks what the code promises about the
//! result: bounds, round trips through the crate's own writer, the CertIDs of an OCSP request
//! coming back in its response, and so on. A panic or a failed assertion is a bug.
//!
//! The same functions run in three places: the bounded property tests of this crate
//! (`tests/bounded.rs`, part of `cargo test`), the cargo-fuzz project in `/fuzz` (one
//! libFuzzer binary per target) and `scripts/fuzz-campaign.sh`. [`TARGETS`] lists them all;
//! a test checks that every entry has a seed corpus under `corpus/<target>/` and a cargo-fuzz
//! binary, so a new parser cannot be left out of either.

mod api;
mod pki;
mod postmarket;
mod risk;
mod sbom;
mod updates;
mod vuln;

pub use api::admin_api_json;
pub use pki::{csr, est_csr_body, ocsp_request};
pub use postmarket::{cvd_report, detection_rules, event_batch, syslog_message, syslog_stream};
pub use risk::{risk_inventory, risk_policy, risk_register, risk_rules, threat_dragon};
pub use sbom::{sbom_cyclonedx_json, sbom_cyclonedx_xml, sbom_spdx_json, sbom_spdx_tag_value};
pub use updates::{director_instruction, tuf_metadata};
pub use vuln::{kev_catalog, osv_record, osv_zip};

/// A fuzz target: takes any bytes, panics only on a bug.
pub type Target = fn(&[u8]);

/// Every target by name; the name is also its corpus directory (`corpus/<name>/`), its
/// regression directory (`regressions/<name>/`) and its cargo-fuzz binary (`fuzz_targets/<name>.rs`).
pub const TARGETS: &[(&str, Target)] = &[
    ("csr", csr),
    ("est_csr_body", est_csr_body),
    ("ocsp_request", ocsp_request),
    ("sbom_cyclonedx_json", sbom_cyclonedx_json),
    ("sbom_cyclonedx_xml", sbom_cyclonedx_xml),
    ("sbom_spdx_json", sbom_spdx_json),
    ("sbom_spdx_tag_value", sbom_spdx_tag_value),
    ("osv_record", osv_record),
    ("osv_zip", osv_zip),
    ("kev_catalog", kev_catalog),
    ("tuf_metadata", tuf_metadata),
    ("director_instruction", director_instruction),
    ("event_batch", event_batch),
    ("syslog_message", syslog_message),
    ("syslog_stream", syslog_stream),
    ("cvd_report", cvd_report),
    ("detection_rules", detection_rules),
    ("risk_inventory", risk_inventory),
    ("risk_register", risk_register),
    ("risk_policy", risk_policy),
    ("risk_rules", risk_rules),
    ("threat_dragon", threat_dragon),
    ("admin_api_json", admin_api_json),
];

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// The text an API taking `&str` is given: the input itself when it is UTF-8, else its lossy
/// decoding (so mutated inputs with a stray invalid byte still reach the parser).
pub(crate) fn as_text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// Whether `needle` occurs in `haystack`.
pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}
