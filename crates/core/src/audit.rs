//! The hash-chained audit log's records and the chain rule.
//!
//! Each entry commits to the previous entry's hash, so editing, removing or reordering any row
//! breaks the chain from that point on. The encoding hashed is length-prefixed, so no two
//! different entries can hash the same bytes by moving text between fields.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::Actor;

/// `prev_hash` of the first entry.
pub const GENESIS_HASH: [u8; 32] = [0u8; 32];

/// What happened. Stored as its string so old logs stay verifiable when new actions appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuditAction {
    CaCreated,
    CaImported,
    ProfileCreated,
    ProfileUpdated,
    DeviceRegistered,
    DeviceRetired,
    CertIssued,
    CertRenewed,
    CertRekeyed,
    CertRevoked,
    CrlGenerated,
    TokenCreated,
    ApiTokenCreated,
    ApiTokenRevoked,
    FirmwareRegistered,
    SbomImported,
    AdvisoriesImported,
    KevImported,
    FindingsMatched,
    VexDecided,
    DeviceFirmwareReported,
    ReleasePublished,
    RolloutChanged,
    UpdateReported,
    DeviceTagged,
    TufMetadataChanged,
    RiskDocumentChanged,
    EventsPurged,
    DetectionRulesChanged,
    IncidentOpened,
    IncidentChanged,
    CvdReportReceived,
    CvdReportChanged,
    AdvisoryChanged,
    EvidenceImported,
    UserCreated,
    UserSignedIn,
    UserSignInFailed,
    UserLocked,
    UserSignedOut,
    UserUnlocked,
    UserPasswordChanged,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::CaCreated => "ca.created",
            AuditAction::CaImported => "ca.imported",
            AuditAction::ProfileCreated => "profile.created",
            AuditAction::ProfileUpdated => "profile.updated",
            AuditAction::DeviceRegistered => "device.registered",
            AuditAction::DeviceRetired => "device.retired",
            AuditAction::CertIssued => "cert.issued",
            AuditAction::CertRenewed => "cert.renewed",
            AuditAction::CertRekeyed => "cert.rekeyed",
            AuditAction::CertRevoked => "cert.revoked",
            AuditAction::CrlGenerated => "crl.generated",
            AuditAction::TokenCreated => "token.created",
            AuditAction::ApiTokenCreated => "api-token.created",
            AuditAction::ApiTokenRevoked => "api-token.revoked",
            AuditAction::FirmwareRegistered => "firmware.registered",
            AuditAction::SbomImported => "sbom.imported",
            AuditAction::AdvisoriesImported => "advisories.imported",
            AuditAction::KevImported => "kev.imported",
            AuditAction::FindingsMatched => "findings.matched",
            AuditAction::VexDecided => "vex.decided",
            AuditAction::DeviceFirmwareReported => "device.firmware-reported",
            AuditAction::ReleasePublished => "release.published",
            AuditAction::RolloutChanged => "rollout.changed",
            AuditAction::UpdateReported => "update.reported",
            AuditAction::DeviceTagged => "device.tagged",
            AuditAction::TufMetadataChanged => "tuf.metadata-changed",
            AuditAction::RiskDocumentChanged => "risk.document-changed",
            AuditAction::EventsPurged => "events.purged",
            AuditAction::DetectionRulesChanged => "detection-rules.changed",
            AuditAction::IncidentOpened => "incident.opened",
            AuditAction::IncidentChanged => "incident.changed",
            AuditAction::CvdReportReceived => "cvd.received",
            AuditAction::CvdReportChanged => "cvd.changed",
            AuditAction::AdvisoryChanged => "advisory.changed",
            AuditAction::EvidenceImported => "evidence.imported",
            AuditAction::UserCreated => "user.created",
            AuditAction::UserSignedIn => "user.signed-in",
            AuditAction::UserSignInFailed => "user.sign-in-failed",
            AuditAction::UserLocked => "user.locked",
            AuditAction::UserSignedOut => "user.signed-out",
            AuditAction::UserUnlocked => "user.unlocked",
            AuditAction::UserPasswordChanged => "user.password-changed",
        }
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a caller asks to append: the store assigns sequence, time and hashes inside the same
/// transaction as the state change it records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub actor: Actor,
    pub action: AuditAction,
    /// The object acted on: a CA name, a certificate serial, a device URN, a profile name.
    pub subject: String,
    /// Structured detail, kept small (reason codes, profile names, serials replaced).
    pub details: serde_json::Value,
}

impl AuditRecord {
    pub fn new(
        actor: &Actor,
        action: AuditAction,
        subject: impl Into<String>,
        details: serde_json::Value,
    ) -> Self {
        AuditRecord {
            actor: actor.clone(),
            action,
            subject: subject.into(),
            details,
        }
    }
}

/// One stored audit row, as read back for verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: i64,
    /// Unix time in microseconds (UTC); an integer so that every store round-trips it exactly.
    pub at_micros: i64,
    pub actor: String,
    pub action: String,
    pub subject: String,
    /// The details JSON exactly as stored (hashing the stored text, not a re-serialization).
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditEntry {
    /// Builds the entry that follows `prev` (or the first entry when `prev` is `None`).
    pub fn chain(prev: Option<(&i64, &str)>, at: OffsetDateTime, rec: &AuditRecord) -> AuditEntry {
        let (seq, prev_hash) = match prev {
            Some((seq, hash)) => (seq + 1, hash.to_owned()),
            None => (1, hex::encode(GENESIS_HASH)),
        };
        let at_micros = (at.unix_timestamp_nanos() / 1_000) as i64;
        let details = rec.details.to_string();
        let mut e = AuditEntry {
            seq,
            at_micros,
            actor: rec.actor.as_str().to_owned(),
            action: rec.action.as_str().to_owned(),
            subject: rec.subject.clone(),
            details,
            prev_hash,
            hash: String::new(),
        };
        e.hash = e.compute_hash();
        e
    }

    /// The hash this entry should carry given its fields and `prev_hash`.
    pub fn compute_hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"medsec-audit-v1");
        for part in [
            self.seq.to_be_bytes().as_slice(),
            self.at_micros.to_be_bytes().as_slice(),
            self.actor.as_bytes(),
            self.action.as_bytes(),
            self.subject.as_bytes(),
            self.details.as_bytes(),
            self.prev_hash.as_bytes(),
        ] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        hex::encode(h.finalize())
    }

    pub fn at(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(self.at_micros as i128 * 1_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

/// Where and why a chain stops verifying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// Sequence number of the first entry that does not verify.
    pub seq: i64,
    pub reason: String,
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "audit entry #{}: {}", self.seq, self.reason)
    }
}

/// Incremental verifier: feed entries in sequence order, then `finish` with the recorded head.
#[derive(Debug, Default)]
pub struct ChainVerifier {
    last: Option<(i64, String)>,
    count: u64,
}

impl ChainVerifier {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, e: &AuditEntry) -> Result<(), ChainBreak> {
        let (want_seq, want_prev) = match &self.last {
            Some((s, h)) => (s + 1, h.clone()),
            None => (1, hex::encode(GENESIS_HASH)),
        };
        if e.seq != want_seq {
            return Err(ChainBreak {
                seq: want_seq.min(e.seq),
                reason: format!(
                    "expected entry #{want_seq} but found #{}: entries are missing or reordered",
                    e.seq
                ),
            });
        }
        if e.prev_hash != want_prev {
            return Err(ChainBreak {
                seq: e.seq,
                reason: "prev_hash does not match the previous entry's hash (an earlier entry was changed or removed)".into(),
            });
        }
        if e.compute_hash() != e.hash {
            return Err(ChainBreak {
                seq: e.seq,
                reason: "content does not match its hash: the entry was edited".into(),
            });
        }
        self.last = Some((e.seq, e.hash.clone()));
        self.count += 1;
        Ok(())
    }

    /// Checks that the chain ends where the store's head record says it ends, which catches
    /// removal of the newest entries.
    pub fn finish(self, head: Option<(i64, &str)>) -> Result<u64, ChainBreak> {
        match (&self.last, head) {
            (None, None) => Ok(0),
            (Some((s, h)), Some((hs, hh))) if *s == hs && h == hh => Ok(self.count),
            (last, head) => {
                let last_seq = last.as_ref().map(|l| l.0).unwrap_or(0);
                let head_seq = head.map(|h| h.0).unwrap_or(0);
                Err(ChainBreak {
                    // Name the first entry that should exist but does not, or the last one when
                    // the head disagrees with it.
                    seq: if last_seq < head_seq {
                        last_seq + 1
                    } else {
                        last_seq.max(1)
                    },
                    reason: format!(
                        "the log ends at entry #{last_seq} but the head record says #{head_seq}: entries were removed or the head was changed"
                    ),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize) -> Vec<AuditEntry> {
        let actor = Actor::parse("cli:test").unwrap();
        let mut out: Vec<AuditEntry> = Vec::new();
        for i in 0..n {
            let rec = AuditRecord::new(
                &actor,
                AuditAction::CertIssued,
                format!("serial-{i}"),
                serde_json::json!({"i": i}),
            );
            let prev = out.last().map(|e| (&e.seq, e.hash.as_str()));
            let e = AuditEntry::chain(prev, OffsetDateTime::UNIX_EPOCH, &rec);
            out.push(e);
        }
        out
    }

    fn verify(entries: &[AuditEntry], head: Option<(i64, &str)>) -> Result<u64, ChainBreak> {
        let mut v = ChainVerifier::new();
        for e in entries {
            v.push(e)?;
        }
        v.finish(head)
    }

    #[test]
    fn intact_chain_verifies() {
        let es = sample(5);
        let head = (es[4].seq, es[4].hash.as_str());
        assert_eq!(verify(&es, Some(head)), Ok(5));
    }

    #[test]
    fn edit_is_named() {
        let mut es = sample(5);
        let head = (es[4].seq, es[4].hash.clone());
        es[2].subject = "forged".into();
        let err = verify(&es, Some((head.0, &head.1))).unwrap_err();
        assert_eq!(err.seq, 3);
        assert!(err.reason.contains("edited"));
    }

    #[test]
    fn removal_in_middle_and_at_end_detected() {
        let es = sample(5);
        let head = (es[4].seq, es[4].hash.clone());
        let mut mid = es.clone();
        mid.remove(1);
        assert_eq!(verify(&mid, Some((head.0, &head.1))).unwrap_err().seq, 2);
        let tail = &es[..4];
        let err = verify(tail, Some((head.0, &head.1))).unwrap_err();
        assert_eq!(err.seq, 5);
    }

    #[test]
    fn rehash_after_edit_still_breaks_next_link() {
        let mut es = sample(4);
        es[1].subject = "forged".into();
        es[1].hash = es[1].compute_hash();
        let err = verify(&es, None).unwrap_err();
        assert_eq!(err.seq, 3);
    }
}
