//! Risk register (AAMI TIR57 / SW96): threat or vulnerability -> hazardous situation -> harm,
//! rated through the policy matrix before and after controls, with hash-bound sign-off.

use std::collections::{BTreeMap, BTreeSet};

use medsec_core::Actor;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use toml::Spanned;

use crate::RiskError;
use crate::error::{field_line, toml_error, toml_ser_error};
use crate::ids::{ControlId, LevelName, RequirementId, RiskId, TestRef, ThreatId, VulnRef};
use crate::policy::{CvssVector, Policy, Rating};
use crate::threats::ThreatStatus;

const FILE: &str = "register";

/// The FDA premarket cybersecurity guidance's eight control categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ControlCategory {
    Authentication,
    Authorization,
    Cryptography,
    Integrity,
    Confidentiality,
    EventDetectionLogging,
    ResiliencyRecovery,
    Updatability,
}

impl ControlCategory {
    pub fn as_str(self) -> &'static str {
        match self {
            ControlCategory::Authentication => "authentication",
            ControlCategory::Authorization => "authorization",
            ControlCategory::Cryptography => "cryptography",
            ControlCategory::Integrity => "integrity",
            ControlCategory::Confidentiality => "confidentiality",
            ControlCategory::EventDetectionLogging => "event-detection-logging",
            ControlCategory::ResiliencyRecovery => "resiliency-recovery",
            ControlCategory::Updatability => "updatability",
        }
    }
}

/// A security risk control, traced to the requirement it implements and the tests verifying it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Control {
    pub id: ControlId,
    pub category: ControlCategory,
    pub description: String,
    pub requirement: RequirementId,
    #[serde(default)]
    pub tests: Vec<TestRef>,
}

/// Who signed off an entry, when, and over which inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignOff {
    pub by: Actor,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// SHA-256 (hex) of the inputs signed: see [`Register::inputs_digest`].
    pub sha256: String,
}

/// Where an entry's exploitability comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExploitabilitySource<'a> {
    Level(&'a LevelName),
    Cvss { vector: &'a CvssVector, kev: bool },
}

/// One register entry. Exactly one of `exploitability` / `cvss` is set (checked on load).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskEntry {
    pub id: RiskId,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub threats: Vec<ThreatId>,
    /// CVE/GHSA ids or computed finding ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vulnerabilities: Vec<VulnRef>,
    pub hazardous_situation: String,
    pub harm: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exploitability: Option<LevelName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cvss: Option<CvssVector>,
    /// Listed in CISA's Known Exploited Vulnerabilities catalogue.
    #[serde(default, skip_serializing_if = "is_false")]
    pub kev: bool,
    pub severity: LevelName,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub controls: Vec<ControlId>,
    /// After controls; defaults to the initial value when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub residual_exploitability: Option<LevelName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub residual_severity: Option<LevelName>,
    #[serde(default)]
    pub rationale: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_off: Option<SignOff>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl RiskEntry {
    pub fn exploitability_source(&self) -> Option<ExploitabilitySource<'_>> {
        match (&self.exploitability, &self.cvss) {
            (Some(l), None) => Some(ExploitabilitySource::Level(l)),
            (None, Some(v)) => Some(ExploitabilitySource::Cvss {
                vector: v,
                kev: self.kev,
            }),
            _ => None,
        }
    }
}

/// Controls, risk entries and reviewed threat statuses of one model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Register {
    /// Review decisions on threats, by threat id; applied with `ThreatModel::apply_statuses`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub threat_status: BTreeMap<ThreatId, ThreatStatus>,
    #[serde(default, rename = "control")]
    pub controls: Vec<Control>,
    #[serde(default, rename = "risk")]
    pub risks: Vec<RiskEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegister {
    #[serde(default)]
    threat_status: BTreeMap<ThreatId, ThreatStatus>,
    #[serde(default)]
    control: Vec<Spanned<Control>>,
    #[serde(default)]
    risk: Vec<Spanned<RiskEntry>>,
}

/// Whether an entry's sign-off still covers its current inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignOffState {
    Missing,
    Valid,
    /// Signed, but an input (entry, its controls, or the policy) changed since.
    Invalidated,
}

/// The rated view of one entry under a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assessment {
    pub risk: RiskId,
    pub initial: Rating,
    pub residual: Rating,
    /// Residual risk acceptable under the policy.
    pub controlled: bool,
    pub rationale: String,
    pub sign_off: SignOffState,
}

/// What is signed: a version tag, the entry without its sign-off, the controls it cites
/// (in entry order, unknown ids skipped) and the whole policy.
#[derive(Serialize)]
struct SignedInputs<'a> {
    format: &'static str,
    entry: &'a RiskEntry,
    controls: Vec<&'a Control>,
    policy: &'a Policy,
}

impl Register {
    pub fn from_toml(src: &str) -> Result<Register, RiskError> {
        let raw: RawRegister = toml::from_str(src).map_err(|e| toml_error(FILE, src, &e))?;
        let mut control_ids = BTreeSet::new();
        for c in &raw.control {
            if !control_ids.insert(c.get_ref().id.clone()) {
                return Err(RiskError::Invalid {
                    file: FILE,
                    line: Some(field_line(src, c.span(), "id")),
                    field: "control.id".to_owned(),
                    message: format!("duplicate control id {:?}", c.get_ref().id.as_str()),
                });
            }
        }
        let mut risk_ids = BTreeSet::new();
        for r in &raw.risk {
            let e = r.get_ref();
            let invalid = |field: &str, message: String| RiskError::Invalid {
                file: FILE,
                line: Some(field_line(src, r.span(), field)),
                field: format!("risk.{field}"),
                message: format!("risk {}: {message}", e.id),
            };
            if !risk_ids.insert(e.id.clone()) {
                return Err(invalid("id", "duplicate risk id".to_owned()));
            }
            if let Some(c) = e.controls.iter().find(|c| !control_ids.contains(*c)) {
                return Err(invalid(
                    "controls",
                    format!("control {:?} is not defined", c.as_str()),
                ));
            }
            if e.exploitability_source().is_none() {
                return Err(invalid(
                    "exploitability",
                    "set exactly one of `exploitability` and `cvss`".to_owned(),
                ));
            }
            if e.threats.is_empty() && e.vulnerabilities.is_empty() {
                return Err(invalid(
                    "threats",
                    "name at least one threat or vulnerability".to_owned(),
                ));
            }
        }
        Ok(Register {
            threat_status: raw.threat_status,
            controls: raw.control.into_iter().map(Spanned::into_inner).collect(),
            risks: raw.risk.into_iter().map(Spanned::into_inner).collect(),
        })
    }

    pub fn to_toml(&self) -> Result<String, RiskError> {
        toml::to_string(self).map_err(|e| toml_ser_error(FILE, e))
    }

    pub fn control(&self, id: &ControlId) -> Option<&Control> {
        self.controls.iter().find(|c| &c.id == id)
    }

    pub fn risk(&self, id: &RiskId) -> Option<&RiskEntry> {
        self.risks.iter().find(|r| &r.id == id)
    }

    fn risk_or_err(&self, id: &RiskId) -> Result<&RiskEntry, RiskError> {
        self.risk(id).ok_or_else(|| RiskError::NotFound {
            kind: "risk",
            id: id.to_string(),
        })
    }

    /// The initial exploitability level of an entry on the policy's scale.
    pub fn exploitability(
        &self,
        entry: &RiskEntry,
        policy: &Policy,
    ) -> Result<LevelName, RiskError> {
        match entry.exploitability_source() {
            Some(ExploitabilitySource::Level(l)) => {
                policy.exploitability_index(l)?;
                // A KEV flag on a qualitative level still means "exploited in the wild".
                if entry.kev {
                    return top(policy);
                }
                Ok(l.clone())
            }
            Some(ExploitabilitySource::Cvss { vector, kev }) => policy
                .exploitability_for_rank(vector.exploitability_rank(kev))
                .cloned()
                .ok_or_else(empty_scale),
            None => Err(RiskError::Invalid {
                file: FILE,
                line: None,
                field: "risk.exploitability".to_owned(),
                message: format!(
                    "risk {}: set exactly one of `exploitability` and `cvss`",
                    entry.id
                ),
            }),
        }
    }

    /// Rates one entry. Re-rating under another policy is just calling this with it.
    pub fn assess_entry(
        &self,
        entry: &RiskEntry,
        policy: &Policy,
    ) -> Result<Assessment, RiskError> {
        let exploit = self.exploitability(entry, policy)?;
        let initial = policy.rate(&exploit, &entry.severity)?;
        let residual = policy.rate(
            entry.residual_exploitability.as_ref().unwrap_or(&exploit),
            entry.residual_severity.as_ref().unwrap_or(&entry.severity),
        )?;
        Ok(Assessment {
            risk: entry.id.clone(),
            controlled: residual.acceptable,
            initial,
            residual,
            rationale: entry.rationale.clone(),
            sign_off: self.sign_off_state(entry, policy)?,
        })
    }

    /// Rates every entry, in register order.
    pub fn assess(&self, policy: &Policy) -> Result<Vec<Assessment>, RiskError> {
        self.risks
            .iter()
            .map(|e| self.assess_entry(e, policy))
            .collect()
    }

    /// SHA-256 (hex) over the entry (without its sign-off), the controls it cites and the policy.
    pub fn inputs_digest(&self, entry: &RiskEntry, policy: &Policy) -> Result<String, RiskError> {
        let mut unsigned = entry.clone();
        unsigned.sign_off = None;
        let inputs = SignedInputs {
            format: "medsec-risk-signoff-v1",
            entry: &unsigned,
            controls: entry
                .controls
                .iter()
                .filter_map(|c| self.control(c))
                .collect(),
            policy,
        };
        // serde_json writes struct fields in declaration order and BTreeMaps sorted, so the
        // encoding is deterministic for equal values.
        let bytes = serde_json::to_vec(&inputs).map_err(|e| RiskError::Serialize {
            what: "sign-off inputs",
            message: e.to_string(),
        })?;
        Ok(hex::encode(Sha256::digest(&bytes)))
    }

    /// Records a sign-off of `risk` by `by` at `at` over the current inputs.
    pub fn sign_off(
        &mut self,
        risk: &RiskId,
        by: Actor,
        at: OffsetDateTime,
        policy: &Policy,
    ) -> Result<(), RiskError> {
        let entry = self.risk_or_err(risk)?;
        // Refuse to sign something that cannot be rated: the signature would vouch for nothing.
        self.assess_entry(entry, policy)?;
        let sha256 = self.inputs_digest(entry, policy)?;
        let Some(e) = self.risks.iter_mut().find(|r| &r.id == risk) else {
            return Err(RiskError::NotFound {
                kind: "risk",
                id: risk.to_string(),
            });
        };
        e.sign_off = Some(SignOff { by, at, sha256 });
        Ok(())
    }

    pub fn sign_off_state(
        &self,
        entry: &RiskEntry,
        policy: &Policy,
    ) -> Result<SignOffState, RiskError> {
        let Some(s) = &entry.sign_off else {
            return Ok(SignOffState::Missing);
        };
        Ok(
            if s.sha256
                .eq_ignore_ascii_case(&self.inputs_digest(entry, policy)?)
            {
                SignOffState::Valid
            } else {
                SignOffState::Invalidated
            },
        )
    }

    /// True when `risk` is signed off and nothing it covers changed since.
    pub fn is_signed_off_valid(&self, risk: &RiskId, policy: &Policy) -> Result<bool, RiskError> {
        Ok(self.sign_off_state(self.risk_or_err(risk)?, policy)? == SignOffState::Valid)
    }
}

fn top(policy: &Policy) -> Result<LevelName, RiskError> {
    policy
        .exploitability
        .last()
        .cloned()
        .ok_or_else(empty_scale)
}

fn empty_scale() -> RiskError {
    RiskError::Invalid {
        file: "policy",
        line: None,
        field: "exploitability".to_owned(),
        message: "scale must not be empty".to_owned(),
    }
}
