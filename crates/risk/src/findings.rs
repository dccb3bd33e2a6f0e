//! Findings computed from the inventory (never typed by hand), plus certificate and support dates.

use medsec_core::{DeviceId, FirmwareVersion};
use serde::{Deserialize, Serialize};
use time::{Date, Duration, OffsetDateTime};

use crate::ids::{FindingId, LinkId};
use crate::inventory::{
    AuthMethod, CredentialScope, DataClass, Encryption, EndpointKind, Inventory, Link,
};

/// What is wrong with a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum FindingKind {
    /// A shared secret, or a password used across units.
    SharedCredential,
    /// No transport encryption.
    PlaintextLink,
    /// No authentication at all.
    Unauthenticated,
    /// Only one end is authenticated.
    OneWayAuthentication,
    /// TLS 1.0 or 1.1.
    WeakTls,
    /// Therapy commands accepted without mutual authentication.
    TherapyWithoutMutualAuth,
    /// Our-PKI link while devices of the model hold certificates expiring within the window.
    CertificateExpiring,
    /// Firmware of the model past end of support while the device is still connected.
    EndOfSupport,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::SharedCredential => "shared-credential",
            FindingKind::PlaintextLink => "plaintext-link",
            FindingKind::Unauthenticated => "unauthenticated",
            FindingKind::OneWayAuthentication => "one-way-authentication",
            FindingKind::WeakTls => "weak-tls",
            FindingKind::TherapyWithoutMutualAuth => "therapy-without-mutual-auth",
            FindingKind::CertificateExpiring => "certificate-expiring",
            FindingKind::EndOfSupport => "end-of-support",
        }
    }
}

/// A hint for triage, not a risk rating: rating is the register's job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SeverityHint {
    Low,
    Medium,
    High,
    Critical,
}

impl SeverityHint {
    pub fn as_str(self) -> &'static str {
        match self {
            SeverityHint::Low => "low",
            SeverityHint::Medium => "medium",
            SeverityHint::High => "high",
            SeverityHint::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// `F-<kind>-<link>`: stable across runs so the register can reference it.
    pub id: FindingId,
    pub kind: FindingKind,
    pub link: LinkId,
    pub severity: SeverityHint,
    pub explanation: String,
}

/// One certificate held by one device unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceCertificate {
    pub device: DeviceId,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
}

time::serde::format_description!(iso_date, Date, "[year]-[month]-[day]");

/// End of support of one firmware version of the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirmwareSupport {
    pub version: FirmwareVersion,
    #[serde(with = "iso_date")]
    pub end_of_support: Date,
}

/// Facts from outside the inventory. `now` is a parameter so results are reproducible.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingInputs {
    #[serde(with = "time::serde::rfc3339")]
    pub now: OffsetDateTime,
    /// Certificates of devices (any model; other models are ignored).
    pub certificates: Vec<DeviceCertificate>,
    /// Warn when a certificate expires within this many days (already expired counts too).
    pub expiry_window_days: u32,
    pub firmware_support: Vec<FirmwareSupport>,
}

impl FindingInputs {
    /// Only the inventory-derived findings; no certificate or support data.
    pub fn at(now: OffsetDateTime) -> Self {
        FindingInputs {
            now,
            certificates: Vec::new(),
            expiry_window_days: 30,
            firmware_support: Vec::new(),
        }
    }
}

fn finding(kind: FindingKind, link: &Link, severity: SeverityHint, explanation: String) -> Finding {
    Finding {
        id: FindingId::derived(&["F", kind.as_str(), link.id.as_str()]),
        kind,
        link: link.id.clone(),
        severity,
        explanation,
    }
}

fn sensitive(link: &Link) -> bool {
    link.carries(DataClass::Phi) || link.carries(DataClass::TherapyCommands)
}

/// Computes all findings, ordered by link (file order) then kind.
pub fn compute_findings(inv: &Inventory, inputs: &FindingInputs) -> Vec<Finding> {
    let mut out = Vec::new();
    let horizon = inputs.now + Duration::days(i64::from(inputs.expiry_window_days));
    let expiring: Vec<&DeviceCertificate> = inputs
        .certificates
        .iter()
        .filter(|c| c.device.model == inv.model && c.not_after <= horizon)
        .collect();
    let past_eos: Vec<&FirmwareSupport> = inputs
        .firmware_support
        .iter()
        .filter(|f| f.end_of_support < inputs.now.date())
        .collect();
    let is_device = |e| {
        inv.endpoint(e)
            .is_some_and(|x| x.kind == EndpointKind::Device)
    };

    for l in &inv.links {
        let mut here = Vec::new();
        if l.auth == AuthMethod::SharedSecret || l.credential == CredentialScope::Shared {
            here.push(finding(
                FindingKind::SharedCredential,
                l,
                SeverityHint::High,
                format!(
                    "{} uses a credential shared across units ({}): extracting it from one unit compromises every unit",
                    l.id,
                    auth_str(l.auth)
                ),
            ));
        }
        if l.encryption == Encryption::None {
            let sev = if sensitive(l) {
                SeverityHint::High
            } else {
                SeverityHint::Medium
            };
            here.push(finding(
                FindingKind::PlaintextLink,
                l,
                sev,
                format!(
                    "{} ({}) carries {} without encryption",
                    l.id,
                    l.protocol,
                    data_str(l)
                ),
            ));
        }
        if l.auth == AuthMethod::None {
            let sev = if l.carries(DataClass::TherapyCommands) {
                SeverityHint::Critical
            } else {
                SeverityHint::High
            };
            here.push(finding(
                FindingKind::Unauthenticated,
                l,
                sev,
                format!(
                    "neither {} nor {} is authenticated on {}",
                    l.from, l.to, l.id
                ),
            ));
        } else if !l.is_mutual() {
            here.push(finding(
                FindingKind::OneWayAuthentication,
                l,
                SeverityHint::Medium,
                format!(
                    "{} authenticates only one end ({}); the other end can be impersonated",
                    l.id,
                    auth_str(l.auth)
                ),
            ));
        }
        if l.encryption.is_weak_tls() {
            here.push(finding(
                FindingKind::WeakTls,
                l,
                SeverityHint::Medium,
                format!(
                    "{} negotiates {}, below the TLS 1.2 minimum",
                    l.id,
                    enc_str(l.encryption)
                ),
            ));
        }
        if l.carries(DataClass::TherapyCommands) && !l.is_mutual() {
            here.push(finding(
                FindingKind::TherapyWithoutMutualAuth,
                l,
                SeverityHint::Critical,
                format!(
                    "{} carries therapy commands but the ends are not mutually authenticated",
                    l.id
                ),
            ));
        }
        if l.auth == AuthMethod::MtlsOurPki && !expiring.is_empty() {
            let expired = expiring
                .iter()
                .filter(|c| c.not_after <= inputs.now)
                .count();
            let earliest = expiring.iter().map(|c| c.not_after).min();
            let sev = if expired > 0 {
                SeverityHint::High
            } else {
                SeverityHint::Medium
            };
            here.push(finding(
                FindingKind::CertificateExpiring,
                l,
                sev,
                format!(
                    "{} relies on our PKI; {} device certificate(s) of {} expire within {} days ({} already expired; earliest {})",
                    l.id,
                    expiring.len(),
                    inv.model,
                    inputs.expiry_window_days,
                    expired,
                    earliest.map_or_else(String::new, |t| t.date().to_string())
                ),
            ));
        }
        if !past_eos.is_empty() && (is_device(&l.from) || is_device(&l.to)) {
            let versions: Vec<String> = past_eos
                .iter()
                .map(|f| format!("{} (ended {})", f.version, f.end_of_support))
                .collect();
            here.push(finding(
                FindingKind::EndOfSupport,
                l,
                SeverityHint::High,
                format!(
                    "{} firmware past end of support is still connected via {}: {}",
                    inv.model,
                    l.id,
                    versions.join(", ")
                ),
            ));
        }
        here.sort_by_key(|f| f.kind);
        out.extend(here);
    }
    out
}

pub(crate) fn auth_str(a: AuthMethod) -> &'static str {
    match a {
        AuthMethod::MtlsOurPki => "mtls-our-pki",
        AuthMethod::OtherCertificate => "other-certificate",
        AuthMethod::SharedSecret => "shared-secret",
        AuthMethod::Password => "password",
        AuthMethod::None => "none",
    }
}

pub(crate) fn enc_str(e: Encryption) -> &'static str {
    match e {
        Encryption::Tls13 => "tls-1.3",
        Encryption::Tls12 => "tls-1.2",
        Encryption::Tls11 => "tls-1.1",
        Encryption::Tls10 => "tls-1.0",
        Encryption::None => "none",
    }
}

pub(crate) fn data_class_str(d: DataClass) -> &'static str {
    match d {
        DataClass::Phi => "phi",
        DataClass::TherapyCommands => "therapy-commands",
        DataClass::Configuration => "configuration",
        DataClass::Logs => "logs",
        DataClass::Firmware => "firmware",
    }
}

fn data_str(l: &Link) -> String {
    if l.data.is_empty() {
        return "unclassified data".to_owned();
    }
    l.data
        .iter()
        .map(|d| data_class_str(*d))
        .collect::<Vec<_>>()
        .join(", ")
}
