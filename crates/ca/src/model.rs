//! Records the CA keeps: CAs, devices, certificates, CRLs, and the unit of one issuance.

use medsec_core::{AuditRecord, CertSerial, DeviceId, KeyAlgorithm, Name, RevocationReason};
use serde::Serialize;
use time::OffsetDateTime;

/// Where a CA sits in the hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CaRole {
    Root,
    Issuing,
}

impl CaRole {
    pub fn as_str(self) -> &'static str {
        match self {
            CaRole::Root => "root",
            CaRole::Issuing => "issuing",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "root" => Some(CaRole::Root),
            "issuing" => Some(CaRole::Issuing),
            _ => None,
        }
    }
}

/// A certificate authority medsec operates or trusts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaRecord {
    pub name: Name,
    pub role: CaRole,
    /// The CA that signed this one; `None` for a root.
    pub parent: Option<Name>,
    #[serde(skip)]
    pub cert_der: Vec<u8>,
    /// Where the private key lives (`file:..` / `pkcs11:..`); `None` for a certificate-only import.
    pub key_ref: Option<String>,
    pub key_algorithm: KeyAlgorithm,
    /// CRL distribution point written into certificates this CA issues. For a sharded CA it
    /// keeps the `{shard}` placeholder; see [`CaRecord::crl_url_for`].
    pub crl_url: Option<String>,
    /// How many CRLs this CA's revocations are partitioned into: 1 is one whole CRL (shard
    /// 0); N > 1 are shards 1..=N, each certificate in the one [`crate::crl_shard_of`] picks.
    /// Fixed at creation: a certificate's distribution point cannot change after issuance.
    pub crl_shards: u32,
    /// OCSP responder URL written into the AIA of certificates this CA issues.
    pub ocsp_url: Option<String>,
    pub crl_validity_secs: i64,
    pub serial: CertSerial,
    pub not_after: OffsetDateTime,
    pub created_at: OffsetDateTime,
    /// Set when this (subordinate) CA has been revoked by its parent.
    pub revocation: Option<Revocation>,
}

impl CaRecord {
    pub fn is_sharded(&self) -> bool {
        self.crl_shards > 1
    }

    /// The shard whose CRL lists `serial` when revoked (0 for an unsharded CA).
    pub fn crl_shard_of(&self, serial: &CertSerial) -> u32 {
        crate::crl::crl_shard_of(serial, self.crl_shards)
    }

    /// The CRL URL written into a certificate with `serial`: the shard's URL for a sharded CA.
    pub fn crl_url_for(&self, serial: &CertSerial) -> Option<String> {
        self.crl_url
            .as_deref()
            .map(|u| crate::crl::crl_shard_url(u, self.crl_shard_of(serial)))
    }

    /// The CRLs this CA publishes: `[0]` (the whole CA) or its shards `1..=N`.
    pub fn published_crl_shards(&self) -> std::ops::RangeInclusive<u32> {
        if self.is_sharded() {
            1..=self.crl_shards
        } else {
            0..=0
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceStatus {
    Active,
    Retired,
}

impl DeviceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Active => "active",
            DeviceStatus::Retired => "retired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(DeviceStatus::Active),
            "retired" => Some(DeviceStatus::Retired),
            _ => None,
        }
    }
}

/// One device in the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceRecord {
    pub id: DeviceId,
    pub status: DeviceStatus,
    pub created_at: OffsetDateTime,
    pub retired_at: Option<OffsetDateTime>,
}

/// How a revoked certificate was revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Revocation {
    pub reason: RevocationReason,
    pub revoked_at: OffsetDateTime,
    /// When the key is believed to have become unsafe (RFC 5280 invalidityDate).
    pub invalidity_date: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum CertStatus {
    Valid,
    Revoked(Revocation),
}

/// Why a certificate exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IssuanceKind {
    /// First certificate for a key from a CSR.
    Issue,
    /// Same key, new validity.
    Renew,
    /// New key replacing an older certificate.
    Rekey,
}

impl IssuanceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IssuanceKind::Issue => "issue",
            IssuanceKind::Renew => "renew",
            IssuanceKind::Rekey => "rekey",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "issue" => Some(IssuanceKind::Issue),
            "renew" => Some(IssuanceKind::Renew),
            "rekey" => Some(IssuanceKind::Rekey),
            _ => None,
        }
    }
}

/// A device certificate as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertRecord {
    pub serial: CertSerial,
    pub issuer: Name,
    pub device: DeviceId,
    pub profile: Name,
    pub kind: IssuanceKind,
    pub subject: String,
    pub key_algorithm: KeyAlgorithm,
    /// SHA-256 of the SubjectPublicKeyInfo, hex: tells renewals (same key) from rekeys.
    pub spki_sha256: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub issued_at: OffsetDateTime,
    /// The certificate this one replaces (renew / rekey).
    pub replaces: Option<CertSerial>,
    /// For a rekeyed-away certificate: when it is due to be revoked as superseded.
    pub revoke_after: Option<OffsetDateTime>,
    pub status: CertStatus,
    #[serde(skip)]
    pub der: Vec<u8>,
}

impl CertRecord {
    pub fn is_revoked(&self) -> bool {
        matches!(self.status, CertStatus::Revoked(_))
    }
}

/// Everything one issuance writes, committed by the store as one transaction: the device row
/// (created if new; the store refuses a retired device), the certificate, an optional
/// scheduled supersession of the certificate it replaces, and the audit entries.
#[derive(Debug, Clone)]
pub struct Issuance {
    pub cert: CertRecord,
    /// For a rekey: the replaced certificate and when it is to be revoked as superseded
    /// (immediately when the overlap is zero).
    pub supersede: Option<(CertSerial, OffsetDateTime)>,
    /// A one-time enrollment token this issuance spends (its SHA-256, hex). The store marks it
    /// used in the same transaction, refusing if it is already used or expired, so a token can
    /// never yield two certificates and a failed issuance never burns it.
    pub spend_token: Option<String>,
    pub audit: Vec<AuditRecord>,
}

/// A one-time bootstrap credential an administrator creates for one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnrollmentToken {
    /// Public identifier (not secret), for listing and audit.
    pub id: String,
    pub device: DeviceId,
    pub profile: Name,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub used_at: Option<OffsetDateTime>,
}

/// A generated CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlRecord {
    pub ca: Name,
    /// 0: the whole CA's CRL; 1..=N: one shard of a sharded CA.
    pub shard: u32,
    pub number: u64,
    pub this_update: OffsetDateTime,
    pub next_update: OffsetDateTime,
    pub der: Vec<u8>,
}
