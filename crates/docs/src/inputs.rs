//! Everything the documents are built from, gathered by the caller from the stores. Plain
//! owned values so a test (or another tool) can build them without a database.

use medsec_core::{DeviceModel, FirmwareVersion};
use medsec_risk::RiskReport;
use serde::Serialize;
use time::Date;

#[derive(Debug, Clone, Serialize)]
pub struct DocInputs {
    pub manufacturer: String,
    pub manufacturer_address: Option<String>,
    /// The device's marketed name.
    pub device_name: String,
    pub model: DeviceModel,
    pub version: FirmwareVersion,
    /// Date of the data snapshot printed on every document. A parameter (not "today") so that
    /// rebuilding unchanged data gives the same bytes.
    pub as_of: Date,
    pub firmware: Option<FirmwareFacts>,
    /// Risk management of the model: inventory, findings, threats, register, assessments and
    /// traceability. `None` when no inventory is stored yet (reported as a gap).
    pub risk: Option<RiskReport>,
    pub components: Vec<ComponentRow>,
    pub findings: Vec<VulnRow>,
    pub releases: Vec<ReleaseRow>,
    pub pki: PkiFacts,
    pub evidence: Vec<EvidenceRow>,
    pub cvd: CvdFacts,
    pub monitoring: MonitoringFacts,
    pub updates: UpdateFacts,
}

#[derive(Debug, Clone, Serialize)]
pub struct FirmwareFacts {
    pub released_on: Option<Date>,
    /// supported, security-only or unsupported.
    pub support_level: String,
    pub end_of_support: Option<Date>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ComponentRow {
    pub name: String,
    pub version: Option<String>,
    pub supplier: Option<String>,
    pub purl: Option<String>,
    pub support_level: Option<String>,
    pub end_of_support: Option<Date>,
    pub licenses: Vec<String>,
}

/// One finding with its triage state, as the unresolved-anomalies table shows it.
#[derive(Debug, Clone, Serialize)]
pub struct VulnRow {
    pub id: String,
    pub aliases: Vec<String>,
    pub component: String,
    pub summary: Option<String>,
    pub cvss_score: Option<f64>,
    /// critical, high, medium, low, none.
    pub severity: String,
    pub kev: bool,
    /// VEX state: in_triage, affected, not_affected, fixed, false_positive.
    pub state: String,
    pub justification: Option<String>,
    /// The triage decision's rationale (or action statement).
    pub rationale: Option<String>,
    /// Rated risk per the vulnerability policy; `None` when closed.
    pub risk: Option<String>,
}

impl VulnRow {
    /// Still an anomaly to disclose: not closed by not_affected, false_positive or fixed.
    pub fn is_open(&self) -> bool {
        !matches!(
            self.state.as_str(),
            "not_affected" | "false_positive" | "fixed"
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ReleaseRow {
    pub version: String,
    pub security_version: u64,
    pub published_on: Date,
    pub hardware_id: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PkiFacts {
    pub profiles: Vec<ProfileRow>,
    pub crl_urls: Vec<String>,
    pub ocsp_url: Option<String>,
    /// The EST base URL devices enroll at.
    pub est_url: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProfileRow {
    pub name: String,
    pub key_types: Vec<String>,
    pub validity_days: u32,
    /// First enrollment needs a one-time token or an IDevID.
    pub requires_bootstrap: bool,
}

/// Imported test evidence, summarised.
#[derive(Debug, Clone, Serialize)]
pub struct EvidenceRow {
    /// penetration-test, fuzzing, static-analysis, functional, other.
    pub category: String,
    pub file_name: String,
    pub sha256: String,
    pub headline: String,
    pub passed: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CvdFacts {
    /// `mailto:` / `https:` contacts from security.txt.
    pub contacts: Vec<String>,
    pub policy_urls: Vec<String>,
    /// Where researchers submit reports (the public intake endpoint).
    pub intake_url: Option<String>,
    pub security_txt_url: Option<String>,
    pub acknowledge_days: u16,
    pub disclosure_days: u16,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct MonitoringFacts {
    /// Advisory sources matched against the SBOMs (e.g. "OSV: npm, PyPI", "CISA KEV").
    pub advisory_sources: Vec<String>,
    /// Detection rules in force (id and title).
    pub detection_rules: Vec<(String, String)>,
    pub syslog_intake: bool,
    pub event_retention_days: Option<u32>,
    /// Patch timelines by risk level, e.g. ("unacceptable", "30 days").
    pub patch_timelines: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct UpdateFacts {
    /// A TUF repository is initialised for signed releases.
    pub tuf_repository: bool,
    pub root_threshold: Option<u32>,
    pub root_keys: Option<u32>,
    /// Staged rollouts through the director.
    pub director: bool,
}
