//! VEX: per-vulnerability, per-product triage decisions, and their export as OpenVEX 0.2,
//! CycloneDX 1.5 VEX and CSAF 2.0 (VEX profile) documents.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use medsec_core::Purl;
use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::VulnError;

/// Why a product is not affected (the CISA/OpenVEX justification vocabulary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Justification {
    ComponentNotPresent,
    VulnerableCodeNotPresent,
    VulnerableCodeNotInExecutePath,
    VulnerableCodeCannotBeControlledByAdversary,
    InlineMitigationsAlreadyExist,
}

impl Justification {
    pub const ALL: [Justification; 5] = [
        Justification::ComponentNotPresent,
        Justification::VulnerableCodeNotPresent,
        Justification::VulnerableCodeNotInExecutePath,
        Justification::VulnerableCodeCannotBeControlledByAdversary,
        Justification::InlineMitigationsAlreadyExist,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Justification::ComponentNotPresent => "component_not_present",
            Justification::VulnerableCodeNotPresent => "vulnerable_code_not_present",
            Justification::VulnerableCodeNotInExecutePath => "vulnerable_code_not_in_execute_path",
            Justification::VulnerableCodeCannotBeControlledByAdversary => {
                "vulnerable_code_cannot_be_controlled_by_adversary"
            }
            Justification::InlineMitigationsAlreadyExist => "inline_mitigations_already_exist",
        }
    }

    /// The CycloneDX `analysis.justification` value.
    fn cyclonedx(self) -> &'static str {
        match self {
            Justification::ComponentNotPresent => "code_not_present",
            Justification::VulnerableCodeNotPresent => "code_not_present",
            Justification::VulnerableCodeNotInExecutePath => "code_not_reachable",
            Justification::VulnerableCodeCannotBeControlledByAdversary => {
                "protected_by_mitigating_control"
            }
            Justification::InlineMitigationsAlreadyExist => "protected_by_mitigating_control",
        }
    }
}

impl FromStr for Justification {
    type Err = VulnError;
    fn from_str(s: &str) -> Result<Self, VulnError> {
        Self::ALL
            .into_iter()
            .find(|j| j.as_str() == s)
            .ok_or_else(|| {
                VulnError::BadFeed(format!(
                    "justification {s:?} is not one of the CISA VEX justifications"
                ))
            })
    }
}

/// A triage state. `not_affected` always carries its justification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum VexStatus {
    InTriage,
    Affected,
    NotAffected { justification: Justification },
    Fixed,
    FalsePositive,
}

impl fmt::Display for VexStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VexStatus::InTriage => "in_triage",
            VexStatus::Affected => "affected",
            VexStatus::NotAffected { .. } => "not_affected",
            VexStatus::Fixed => "fixed",
            VexStatus::FalsePositive => "false_positive",
        })
    }
}

/// The product a statement is about: one firmware version of one device model, and the
/// component in it that carries the vulnerability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VexProduct {
    pub model: String,
    pub firmware_version: String,
    pub component: Option<Purl>,
}

impl VexProduct {
    /// A stable product identifier, as a purl (`pkg:generic/<model>@<version>`) so that it is
    /// an IRI as OpenVEX requires and tools that key products by purl can match it.
    fn id(&self) -> String {
        format!(
            "pkg:generic/{}@{}",
            enc(&self.model),
            enc(&self.firmware_version)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VexStatement {
    /// Primary identifier (a CVE when there is one).
    pub vulnerability: String,
    pub aliases: Vec<String>,
    pub product: VexProduct,
    pub status: VexStatus,
    /// Why (impact statement for not_affected, description otherwise).
    pub detail: String,
    /// What the user should do (required by CSAF for affected products).
    pub action: Option<String>,
    pub author: String,
    pub timestamp: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct VexDocument {
    /// Unique, stable document id (URN or URL).
    pub id: String,
    pub publisher: String,
    /// Publisher namespace URL (CSAF requires one).
    pub publisher_namespace: String,
    pub title: String,
    /// Every published revision, oldest first: (date, summary). The document version is the
    /// number of revisions; CSAF requires the whole history, starting at 1.
    pub revisions: Vec<(OffsetDateTime, String)>,
    pub statements: Vec<VexStatement>,
}

/// How pressing a status is when one product's components disagree.
fn urgency(s: &VexStatus) -> u8 {
    match s {
        VexStatus::Affected => 4,
        VexStatus::InTriage => 3,
        VexStatus::Fixed => 2,
        VexStatus::NotAffected { .. } | VexStatus::FalsePositive => 1,
    }
}

/// Percent-encodes everything but the purl-safe characters.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn ts(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_default()
}

impl VexDocument {
    fn version(&self) -> usize {
        self.revisions.len().max(1)
    }

    /// The newest revision's date (the document's timestamp).
    fn timestamp(&self) -> OffsetDateTime {
        self.revisions
            .last()
            .map(|r| r.0)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// OpenVEX 0.2.
    pub fn to_openvex(&self) -> Value {
        let statements: Vec<Value> = self
            .statements
            .iter()
            .map(|s| {
                let mut product = json!({"@id": s.product.id()});
                if let Some(p) = &s.product.component {
                    product["subcomponents"] = json!([{"@id": p.to_string()}]);
                }
                let status = match &s.status {
                    VexStatus::InTriage => "under_investigation",
                    VexStatus::Affected => "affected",
                    VexStatus::NotAffected { .. } | VexStatus::FalsePositive => "not_affected",
                    VexStatus::Fixed => "fixed",
                };
                let mut st = json!({
                    "vulnerability": {"name": s.vulnerability, "aliases": s.aliases},
                    "products": [product],
                    "status": status,
                    "timestamp": ts(s.timestamp),
                });
                match &s.status {
                    VexStatus::NotAffected { justification } => {
                        st["justification"] = json!(justification.as_str());
                        st["impact_statement"] = json!(s.detail);
                    }
                    // OpenVEX has no false-positive state: the component does not carry the
                    // vulnerable code the advisory describes.
                    VexStatus::FalsePositive => {
                        st["justification"] =
                            json!(Justification::VulnerableCodeNotPresent.as_str());
                        st["impact_statement"] = json!(format!("false positive: {}", s.detail));
                    }
                    VexStatus::Affected => {
                        st["action_statement"] = json!(s.action.clone().unwrap_or_else(|| {
                            "No remediation available yet; see the advisory.".into()
                        }));
                    }
                    _ => st["status_notes"] = json!(s.detail),
                }
                st
            })
            .collect();
        json!({
            "@context": "https://openvex.dev/ns/v0.2.0",
            "@id": self.id,
            "author": self.publisher,
            "timestamp": ts(self.timestamp()),
            "version": self.version(),
            "statements": statements,
        })
    }

    /// CycloneDX 1.5 VEX: the affected components and a vulnerability entry per statement.
    pub fn to_cyclonedx(&self) -> Value {
        let mut components: BTreeMap<String, Value> = BTreeMap::new();
        let vulns: Vec<Value> = self
            .statements
            .iter()
            .map(|s| {
                let bom_ref = s.product.component.as_ref().map(|p| p.to_string()).unwrap_or_else(|| s.product.id());
                components.entry(bom_ref.clone()).or_insert_with(|| match &s.product.component {
                    Some(p) => json!({"type": "library", "bom-ref": bom_ref, "name": p.name, "version": p.version, "purl": p.to_string()}),
                    None => json!({"type": "firmware", "bom-ref": bom_ref, "name": s.product.model, "version": s.product.firmware_version}),
                });
                let (state, justification, response) = match &s.status {
                    VexStatus::InTriage => ("in_triage", None, None),
                    VexStatus::Affected => ("exploitable", None, Some(if s.action.is_some() { "update" } else { "will_not_fix" })),
                    VexStatus::NotAffected { justification } => ("not_affected", Some(justification.cyclonedx()), None),
                    VexStatus::Fixed => ("resolved", None, None),
                    VexStatus::FalsePositive => ("false_positive", None, None),
                };
                let mut analysis = json!({"state": state, "detail": s.detail, "lastUpdated": ts(s.timestamp)});
                if let Some(j) = justification {
                    analysis["justification"] = json!(j);
                }
                if let Some(r) = response {
                    analysis["response"] = json!([r]);
                }
                let mut v = json!({
                    "id": s.vulnerability,
                    "analysis": analysis,
                    "affects": [{"ref": bom_ref}],
                });
                if !s.aliases.is_empty() {
                    v["references"] = json!(s.aliases.iter().map(|a| json!({"id": a, "source": {"name": source_of(a)}})).collect::<Vec<_>>());
                }
                if let Some(a) = &s.action {
                    v["recommendation"] = json!(a);
                }
                v
            })
            .collect();
        json!({
            "bomFormat": "CycloneDX",
            "specVersion": "1.5",
            "serialNumber": uuid_urn(&self.id),
            "version": self.version(),
            "metadata": {"timestamp": ts(self.timestamp()), "supplier": {"name": self.publisher}},
            "components": components.into_values().collect::<Vec<_>>(),
            "vulnerabilities": vulns,
        })
    }

    /// CSAF 2.0, category `csaf_vex`.
    pub fn to_csaf(&self) -> Value {
        // Product tree: vendor -> model -> firmware version.
        let mut models: BTreeMap<&str, BTreeMap<&str, String>> = BTreeMap::new();
        for s in &self.statements {
            models
                .entry(&s.product.model)
                .or_default()
                .insert(&s.product.firmware_version, s.product.id());
        }
        let branches: Vec<Value> = models
            .iter()
            .map(|(model, versions)| {
                json!({"category": "product_name", "name": model, "branches": versions.iter().map(|(v, id)| json!({
                    "category": "product_version", "name": v,
                    "product": {"product_id": id, "name": format!("{} {model} {v}", self.publisher)}
                })).collect::<Vec<_>>()})
            })
            .collect();
        // One CSAF vulnerability per identifier, with each product under its status.
        let mut by_vuln: BTreeMap<&str, Vec<&VexStatement>> = BTreeMap::new();
        for s in &self.statements {
            by_vuln.entry(&s.vulnerability).or_default().push(s);
        }
        let vulns: Vec<Value> = by_vuln
            .iter()
            .map(|(id, sts)| {
                let mut status: BTreeMap<&str, Vec<String>> = BTreeMap::new();
                let mut threats = Vec::new();
                let mut flags = Vec::new();
                let mut remediations = Vec::new();
                // CSAF speaks of the firmware, not its components: one status per product, the
                // most pressing of its components' (a product both affected and not affected
                // would contradict itself, CSAF test 6.1.6).
                let mut chosen: BTreeMap<String, &VexStatement> = BTreeMap::new();
                for s in sts {
                    let pid = s.product.id();
                    if chosen.get(&pid).is_none_or(|old| urgency(&s.status) > urgency(&old.status)) {
                        chosen.insert(pid, s);
                    }
                }
                for (pid, s) in chosen {
                    let key = match &s.status {
                        VexStatus::InTriage => "under_investigation",
                        VexStatus::Affected => "known_affected",
                        VexStatus::NotAffected { .. } | VexStatus::FalsePositive => "known_not_affected",
                        VexStatus::Fixed => "fixed",
                    };
                    status.entry(key).or_default().push(pid.clone());
                    match &s.status {
                        VexStatus::NotAffected { justification } => {
                            threats.push(json!({"category": "impact", "details": s.detail, "product_ids": [pid]}));
                            flags.push(json!({"label": justification.as_str(), "product_ids": [pid]}));
                        }
                        VexStatus::FalsePositive => {
                            threats.push(json!({"category": "impact", "details": format!("false positive: {}", s.detail), "product_ids": [pid]}));
                        }
                        VexStatus::Affected => remediations.push(match &s.action {
                            Some(a) => json!({"category": "vendor_fix", "details": a, "product_ids": [pid]}),
                            None => json!({"category": "none_available", "details": "No remediation is available yet.", "product_ids": [pid]}),
                        }),
                        _ => {}
                    }
                }
                let mut v = json!({
                    "product_status": status,
                    "notes": [{"category": "description", "title": "medsec triage", "text": sts.iter().map(|s| format!("{}: {} ({})", s.product.id(), s.status, s.detail)).collect::<Vec<_>>().join("\n")}],
                });
                if id.starts_with("CVE-") {
                    v["cve"] = json!(id);
                } else {
                    v["ids"] = json!([{"system_name": source_of(id), "text": id}]);
                }
                if !threats.is_empty() {
                    v["threats"] = json!(threats);
                }
                if !flags.is_empty() {
                    v["flags"] = json!(flags);
                }
                if !remediations.is_empty() {
                    v["remediations"] = json!(remediations);
                }
                v
            })
            .collect();
        let first = ts(self
            .revisions
            .first()
            .map(|r| r.0)
            .unwrap_or_else(|| self.timestamp()));
        let current = ts(self.timestamp());
        let history: Vec<Value> = if self.revisions.is_empty() {
            vec![json!({"date": current, "number": "1", "summary": "Initial version."})]
        } else {
            self.revisions
                .iter()
                .enumerate()
                .map(|(i, (d, summary))| json!({"date": ts(*d), "number": (i + 1).to_string(), "summary": summary}))
                .collect()
        };
        json!({
            "document": {
                "category": "csaf_vex",
                "csaf_version": "2.0",
                "title": self.title,
                "publisher": {"category": "vendor", "name": self.publisher, "namespace": self.publisher_namespace},
                "notes": [{"category": "summary", "title": "About this document", "text": "Exploitability of known vulnerabilities in the listed firmware versions, from the manufacturer's triage."}],
                "tracking": {
                    "id": self.id, "status": "final", "version": self.version().to_string(),
                    "initial_release_date": first, "current_release_date": current,
                    "revision_history": history
                }
            },
            "product_tree": {"branches": [{"category": "vendor", "name": self.publisher, "branches": branches}]},
            "vulnerabilities": vulns,
        })
    }
}

fn source_of(id: &str) -> &'static str {
    if id.starts_with("CVE-") {
        "NVD"
    } else if id.starts_with("GHSA-") {
        "GitHub Advisory Database"
    } else {
        "OSV"
    }
}

/// A UUID URN derived from the document id (CycloneDX wants urn:uuid:), version 8 layout, so
/// the same document always gets the same serial.
fn uuid_urn(seed: &str) -> String {
    // FNV-1a 128-bit over the seed: deterministic, no dependency; not a security boundary.
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    for b in seed.bytes() {
        h ^= b as u128;
        h = h.wrapping_mul(0x0000000001000000000000000000013B);
    }
    let mut b = h.to_be_bytes();
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = b.iter().map(|v| format!("{v:02x}")).collect::<String>();
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &x[0..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}
