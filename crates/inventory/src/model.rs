//! The records vulnerability management keeps: firmware versions, stored SBOMs and advisories,
//! findings and triage decisions, and what the service reports back.

use std::fmt;
use std::str::FromStr;

use medsec_core::{Actor, DeviceId, DeviceModel, FirmwareVersion};
use medsec_sbom::Sbom;
use medsec_vuln::VexStatus;
use serde::Serialize;
use time::{Date, OffsetDateTime};

use crate::InventoryError;
use crate::rating::{Exploitability, RiskLevel, SeverityLevel};

/// The manufacturer's support commitment for a firmware version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SupportLevel {
    /// Features and security fixes.
    Supported,
    /// Security fixes only.
    SecurityOnly,
    /// No more fixes: the device should be updated or retired.
    Unsupported,
}

impl SupportLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            SupportLevel::Supported => "supported",
            SupportLevel::SecurityOnly => "security-only",
            SupportLevel::Unsupported => "unsupported",
        }
    }
}

impl fmt::Display for SupportLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SupportLevel {
    type Err = InventoryError;
    fn from_str(s: &str) -> Result<Self, InventoryError> {
        match s {
            "supported" => Ok(SupportLevel::Supported),
            "security-only" => Ok(SupportLevel::SecurityOnly),
            "unsupported" => Ok(SupportLevel::Unsupported),
            _ => Err(InventoryError::invalid(
                "support level",
                format!("{s:?} is not one of supported, security-only, unsupported"),
            )),
        }
    }
}

/// One firmware version of one device model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FirmwareRecord {
    pub model: DeviceModel,
    pub version: FirmwareVersion,
    pub released_on: Option<Date>,
    pub support_level: SupportLevel,
    pub end_of_support: Option<Date>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// An SBOM as stored for a firmware version: the parsed model plus the original bytes' digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SbomRecord {
    pub model: DeviceModel,
    pub version: FirmwareVersion,
    pub sha256: String,
    pub sbom: Sbom,
    pub imported_at: OffsetDateTime,
}

/// One advisory as stored: its raw OSV JSON, so a newer medsec can re-read what an older one
/// imported, and `modified` for incremental re-import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvisoryRow {
    pub id: String,
    pub modified: OffsetDateTime,
    pub withdrawn: bool,
    pub raw: Vec<u8>,
}

/// How a finding was matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchedBy {
    /// The component's purl against the advisory's package and ranges.
    Purl,
    /// The component's CPE product and version against advisory package names: a heuristic,
    /// lower confidence, opt-in.
    Cpe,
}

impl MatchedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchedBy::Purl => "purl",
            MatchedBy::Cpe => "cpe",
        }
    }

    pub fn confidence(self) -> &'static str {
        match self {
            MatchedBy::Purl => "high",
            MatchedBy::Cpe => "low",
        }
    }
}

impl FromStr for MatchedBy {
    type Err = InventoryError;
    fn from_str(s: &str) -> Result<Self, InventoryError> {
        match s {
            "purl" => Ok(MatchedBy::Purl),
            "cpe" => Ok(MatchedBy::Cpe),
            _ => Err(InventoryError::invalid("match kind", s)),
        }
    }
}

/// One vulnerability in one component of one firmware version, as the last match found it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FindingRecord {
    pub model: DeviceModel,
    pub version: FirmwareVersion,
    /// The primary identifier: the lowest CVE among the merged identifiers, else the lowest id.
    pub vuln_id: String,
    /// Every identifier of the merged advisories (ids and aliases), sorted.
    pub identifiers: Vec<String>,
    /// The advisories that matched, sorted.
    pub advisories: Vec<String>,
    /// The component: its canonical purl, else `name@version`.
    pub component: String,
    pub matched_by: MatchedBy,
    pub summary: Option<String>,
    /// Highest CVSS base score among the advisories (v3.x or v4.0), with its vector.
    pub cvss_score: Option<f64>,
    pub cvss_vector: Option<String>,
    /// Listed in the CISA Known Exploited Vulnerabilities catalog.
    pub kev: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
}

impl FindingRecord {
    /// Whether `id` names this finding's vulnerability.
    pub fn is_named(&self, id: &str) -> bool {
        self.vuln_id == id || self.identifiers.iter().any(|i| i == id)
    }
}

/// A triage decision. Decisions are kept apart from findings, keyed by firmware version,
/// vulnerability id and optionally component, so re-importing advisories and re-matching never
/// lose them. The history is append-only; the newest decision for a key is in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub model: DeviceModel,
    pub version: FirmwareVersion,
    pub vuln_id: String,
    /// `None`: the decision covers the vulnerability in every component of the firmware.
    pub component: Option<String>,
    pub status: VexStatus,
    pub detail: String,
    pub action: Option<String>,
    pub author: Actor,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

impl Decision {
    /// Whether this decision applies to `f`: same firmware, a name of its vulnerability, and
    /// the same component or none.
    pub fn applies_to(&self, f: &FindingRecord) -> bool {
        self.model == f.model
            && self.version == f.version
            && f.is_named(&self.vuln_id)
            && self.component.as_ref().is_none_or(|c| *c == f.component)
    }

    /// Not affected, false positive or fixed: nothing left to do for devices on this firmware.
    pub fn closes(&self) -> bool {
        matches!(
            self.status,
            VexStatus::NotAffected { .. } | VexStatus::FalsePositive | VexStatus::Fixed
        )
    }
}

/// A finding with the decision in force and its rating.
#[derive(Debug, Clone, Serialize)]
pub struct FindingView {
    #[serde(flatten)]
    pub finding: FindingRecord,
    pub confidence: &'static str,
    /// `in_triage` when nobody decided yet.
    pub state: String,
    pub decision: Option<Decision>,
    pub severity: SeverityLevel,
    pub exploitability: Exploitability,
    /// The risk per the policy; `None` when the decision closes the finding.
    pub risk: Option<RiskLevel>,
}

impl FindingView {
    pub fn is_open(&self) -> bool {
        !self.decision.as_ref().is_some_and(Decision::closes)
    }
}

/// Fielded devices running a firmware version with an open finding for a vulnerability newly
/// listed in CISA KEV.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KevExposure {
    pub vulnerability: String,
    pub model: DeviceModel,
    pub version: FirmwareVersion,
    #[serde(skip)]
    pub devices: Vec<DeviceId>,
}

/// A device in the field that runs a firmware version carrying a vulnerability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AffectedDevice {
    #[serde(serialize_with = "as_urn")]
    pub device: DeviceId,
    pub firmware: FirmwareVersion,
}

fn as_urn<S: serde::Serializer>(d: &DeviceId, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&d.urn())
}

/// What an advisory import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportStats {
    pub read: usize,
    pub new: usize,
    pub updated: usize,
    /// Stored already with the same or a newer `modified`: skipped.
    pub unchanged: usize,
    pub withdrawn: usize,
}

/// What a matching run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MatchStats {
    pub firmware_versions: usize,
    pub components: usize,
    pub findings: usize,
    pub cpe_findings: usize,
    /// Components whose version their ecosystem could not parse: reported, never a silent miss.
    pub unmatchable: Vec<String>,
}
