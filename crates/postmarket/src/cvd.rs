//! Coordinated vulnerability disclosure: researcher reports with tracking ids and target
//! dates, and the RFC 9116 `security.txt` that tells researchers where to send them.

use std::collections::BTreeSet;
use std::fmt;

use medsec_core::Actor;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::{Duration, OffsetDateTime, UtcOffset};

use crate::PostmarketError;
use crate::incident::{IncidentId, Note, Reference};

/// Largest accepted report body. A report is prose plus perhaps a proof of concept; anything
/// bigger belongs in an encrypted exchange arranged after acknowledgement.
pub const MAX_REPORT_BYTES: usize = 64 * 1024;
const MAX_TITLE: usize = 200;
const MAX_SHORT: usize = 500;

/// The tracking id handed to the reporter: `CVD-` and 26 base32 characters from 128 random
/// bits, so ids cannot be guessed or enumerated.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TrackingId(String);

const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

impl TrackingId {
    /// Builds an id from 16 random bytes the caller draws from a CSPRNG.
    pub fn from_random(bytes: [u8; 16]) -> TrackingId {
        let mut acc: u128 = u128::from_be_bytes(bytes);
        let mut out = [0u8; 26];
        for slot in out.iter_mut().rev() {
            *slot = B32[(acc & 31) as usize];
            acc >>= 5;
        }
        TrackingId(format!("CVD-{}", String::from_utf8_lossy(&out)))
    }

    pub fn parse(s: &str) -> Result<TrackingId, PostmarketError> {
        let ok = s
            .strip_prefix("CVD-")
            .is_some_and(|r| r.len() == 26 && r.bytes().all(|b| B32.contains(&b)));
        if ok {
            Ok(TrackingId(s.to_string()))
        } else {
            Err(PostmarketError::Invalid {
                what: "tracking id",
                message: format!("{s:?} is not CVD- followed by 26 base32 characters"),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TrackingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for TrackingId {
    type Error = PostmarketError;
    fn try_from(s: String) -> Result<Self, PostmarketError> {
        TrackingId::parse(&s)
    }
}

impl From<TrackingId> for String {
    fn from(v: TrackingId) -> String {
        v.0
    }
}

/// What a researcher submits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submission {
    pub title: String,
    pub description: String,
    /// Product and version as the reporter names them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// How to reach the reporter (e-mail address or URL); optional for anonymous reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    /// The name to credit in the advisory, if the reporter wants credit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credit: Option<String>,
}

fn text(
    v: &Value,
    field: &str,
    max: usize,
    required: bool,
) -> Result<Option<String>, PostmarketError> {
    let bad = |m: String| PostmarketError::Invalid {
        what: "vulnerability report",
        message: format!("{field}: {m}"),
    };
    match v.get(field) {
        None | Some(Value::Null) if !required => Ok(None),
        None | Some(Value::Null) => Err(bad("is required".into())),
        Some(Value::String(s)) => {
            let s = s.trim();
            if s.is_empty() {
                return if required {
                    Err(bad("must not be empty".into()))
                } else {
                    Ok(None)
                };
            }
            if s.len() > max {
                return Err(bad(format!("is {} bytes, the limit is {max}", s.len())));
            }
            // Newlines and tabs are prose; other control characters are terminal tricks.
            if s.chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
            {
                return Err(bad("contains control characters".into()));
            }
            Ok(Some(s.to_string()))
        }
        Some(_) => Err(bad("must be a string".into())),
    }
}

impl Submission {
    /// Parses a JSON report, refusing oversized bodies before parsing and unknown fields.
    pub fn parse_json(bytes: &[u8]) -> Result<Submission, PostmarketError> {
        if bytes.len() > MAX_REPORT_BYTES {
            return Err(PostmarketError::BatchTooLarge {
                size: bytes.len(),
                limit: MAX_REPORT_BYTES,
            });
        }
        let v: Value = serde_json::from_slice(bytes).map_err(|e| PostmarketError::Invalid {
            what: "vulnerability report",
            message: format!("not JSON: {e}"),
        })?;
        let Some(obj) = v.as_object() else {
            return Err(PostmarketError::Invalid {
                what: "vulnerability report",
                message: "must be a JSON object".into(),
            });
        };
        const FIELDS: [&str; 5] = ["title", "description", "product", "contact", "credit"];
        if let Some(k) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(PostmarketError::Invalid {
                what: "vulnerability report",
                message: format!("unknown field {k:?}; fields are {}", FIELDS.join(", ")),
            });
        }
        let contact = text(&v, "contact", MAX_SHORT, false)?;
        if let Some(c) = &contact
            && c.chars().any(char::is_whitespace)
        {
            return Err(PostmarketError::Invalid {
                what: "vulnerability report",
                message: "contact: one e-mail address or URL, without spaces".into(),
            });
        }
        Ok(Submission {
            title: text(&v, "title", MAX_TITLE, true)?.unwrap_or_default(),
            description: text(&v, "description", MAX_REPORT_BYTES, true)?.unwrap_or_default(),
            product: text(&v, "product", MAX_SHORT, false)?,
            contact,
            credit: text(&v, "credit", MAX_SHORT, false)?,
        })
    }
}

/// Where a report stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CvdStatus {
    Received,
    Acknowledged,
    Triaged,
    Remediated,
    Disclosed,
    /// Not a vulnerability, out of scope or a duplicate; the rationale is in the notes.
    Rejected,
}

impl CvdStatus {
    pub const ALL: [CvdStatus; 6] = [
        CvdStatus::Received,
        CvdStatus::Acknowledged,
        CvdStatus::Triaged,
        CvdStatus::Remediated,
        CvdStatus::Disclosed,
        CvdStatus::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CvdStatus::Received => "received",
            CvdStatus::Acknowledged => "acknowledged",
            CvdStatus::Triaged => "triaged",
            CvdStatus::Remediated => "remediated",
            CvdStatus::Disclosed => "disclosed",
            CvdStatus::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Result<CvdStatus, PostmarketError> {
        CvdStatus::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| PostmarketError::Invalid {
                what: "report status",
                message: format!(
                    "{s:?} is not one of {}",
                    CvdStatus::ALL.map(CvdStatus::as_str).join(", ")
                ),
            })
    }

    /// Forward only; rejection possible until disclosure.
    fn can_move_to(self, to: CvdStatus) -> bool {
        use CvdStatus::*;
        match to {
            Rejected => !matches!(self, Disclosed | Rejected),
            _ => self != Rejected && to > self,
        }
    }
}

/// Target dates for the disclosure process, from configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CvdPolicy {
    /// Days to acknowledge receipt (ISO/IEC 29147 asks for a prompt acknowledgement).
    pub acknowledge_days: u16,
    /// Days from receipt to coordinated public disclosure (90 is the common default).
    pub disclosure_days: u16,
}

impl Default for CvdPolicy {
    fn default() -> Self {
        CvdPolicy {
            acknowledge_days: 7,
            disclosure_days: 90,
        }
    }
}

/// One dated note on a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CvdNote {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub by: Actor,
    pub note: Note,
}

/// A stored report with its handling state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CvdReport {
    pub id: TrackingId,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    pub submission: Submission,
    pub status: CvdStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub acknowledge_by: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub disclose_by: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub acknowledged_at: Option<OffsetDateTime>,
    pub findings: BTreeSet<Reference>,
    pub incidents: BTreeSet<IncidentId>,
    pub notes: Vec<CvdNote>,
}

fn days(d: u16) -> Duration {
    Duration::days(i64::from(d))
}

impl CvdReport {
    pub fn receive(
        id: TrackingId,
        submission: Submission,
        now: OffsetDateTime,
        policy: CvdPolicy,
    ) -> Result<CvdReport, PostmarketError> {
        let now = now.to_offset(UtcOffset::UTC);
        let add = |d| {
            now.checked_add(days(d))
                .ok_or(PostmarketError::DateOutOfRange("a disclosure target date"))
        };
        Ok(CvdReport {
            id,
            received_at: now,
            submission,
            status: CvdStatus::Received,
            acknowledge_by: add(policy.acknowledge_days)?,
            disclose_by: add(policy.disclosure_days)?,
            acknowledged_at: None,
            findings: BTreeSet::new(),
            incidents: BTreeSet::new(),
            notes: Vec::new(),
        })
    }

    /// Moves the report forward; acknowledging records when, for the target-date record.
    pub fn set_status(
        &mut self,
        to: CvdStatus,
        note: Option<Note>,
        by: Actor,
        at: OffsetDateTime,
    ) -> Result<(), PostmarketError> {
        if !self.status.can_move_to(to) {
            return Err(PostmarketError::Invalid {
                what: "report status",
                message: format!(
                    "cannot move from {} to {}",
                    self.status.as_str(),
                    to.as_str()
                ),
            });
        }
        if self.acknowledged_at.is_none() && to != CvdStatus::Rejected {
            self.acknowledged_at = Some(at.to_offset(UtcOffset::UTC));
        }
        self.status = to;
        let note = match note {
            Some(n) => n,
            None => Note::parse(&format!("status set to {}", to.as_str()))?,
        };
        self.notes.push(CvdNote { at, by, note });
        Ok(())
    }

    /// Moves the disclosure target (an embargo agreed with the reporter).
    pub fn set_disclosure_target(
        &mut self,
        date: OffsetDateTime,
        by: Actor,
        at: OffsetDateTime,
    ) -> Result<(), PostmarketError> {
        if date < self.received_at {
            return Err(PostmarketError::Invalid {
                what: "disclosure date",
                message: "cannot be before the report was received".into(),
            });
        }
        self.disclose_by = date.to_offset(UtcOffset::UTC);
        self.notes.push(CvdNote {
            at,
            by,
            note: Note::parse(&format!("disclosure target set to {}", self.disclose_by))?,
        });
        Ok(())
    }

    pub fn link_finding(&mut self, r: Reference) {
        self.findings.insert(r);
    }

    pub fn link_incident(&mut self, id: IncidentId) {
        self.incidents.insert(id);
    }

    /// Not yet acknowledged and past the acknowledgement target.
    pub fn acknowledgement_overdue(&self, now: OffsetDateTime) -> bool {
        self.acknowledged_at.is_none()
            && self.status == CvdStatus::Received
            && now > self.acknowledge_by
    }
}

/// The fields of an RFC 9116 `security.txt`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SecurityTxt {
    /// `mailto:`, `tel:` or `https://` URIs, in order of preference (at least one).
    pub contact: Vec<String>,
    pub expires: Option<OffsetDateTime>,
    pub encryption: Vec<String>,
    pub acknowledgments: Vec<String>,
    pub preferred_languages: Vec<String>,
    pub canonical: Vec<String>,
    pub policy: Vec<String>,
}

fn check_uri(field: &str, u: &str, allow: &[&str]) -> Result<(), PostmarketError> {
    if !allow.iter().any(|p| u.starts_with(p))
        || u.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(PostmarketError::Invalid {
            what: "security.txt",
            message: format!(
                "{field} {u:?} must be a URI starting with {}",
                allow.join(" or ")
            ),
        });
    }
    Ok(())
}

impl SecurityTxt {
    /// Renders the file. RFC 9116 requires at least one Contact and exactly one Expires, and
    /// recommends Expires less than a year ahead: checked here rather than served wrong.
    pub fn render(&self, now: OffsetDateTime) -> Result<String, PostmarketError> {
        if self.contact.is_empty() {
            return Err(PostmarketError::Invalid {
                what: "security.txt",
                message: "at least one Contact is required (RFC 9116 2.5.3)".into(),
            });
        }
        let expires = self.expires.ok_or(PostmarketError::Invalid {
            what: "security.txt",
            message: "Expires is required (RFC 9116 2.5.5)".into(),
        })?;
        if expires <= now || expires - now > Duration::days(366) {
            return Err(PostmarketError::Invalid {
                what: "security.txt",
                message: "Expires must be in the future and less than a year ahead".into(),
            });
        }
        let mut out = String::new();
        let mut line = |k: &str, v: &str| {
            out.push_str(k);
            out.push_str(": ");
            out.push_str(v);
            out.push('\n');
        };
        for c in &self.contact {
            check_uri("Contact", c, &["mailto:", "tel:", "https://"])?;
            line("Contact", c);
        }
        let exp = expires
            .to_offset(UtcOffset::UTC)
            .replace_nanosecond(0)
            .map_err(|_| PostmarketError::DateOutOfRange("Expires"))?;
        let exp = exp
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|_| PostmarketError::DateOutOfRange("Expires"))?;
        line("Expires", &exp);
        for (k, vs) in [
            ("Encryption", &self.encryption),
            ("Acknowledgments", &self.acknowledgments),
            ("Canonical", &self.canonical),
            ("Policy", &self.policy),
        ] {
            for v in vs {
                check_uri(k, v, &["https://", "dns:", "openpgp4fpr:"])?;
                line(k, v);
            }
        }
        if !self.preferred_languages.is_empty() {
            line("Preferred-Languages", &self.preferred_languages.join(", "));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn who() -> Actor {
        Actor::parse("api:psirt").unwrap()
    }

    #[test]
    fn tracking_ids_round_trip_and_differ() {
        let a = TrackingId::from_random([0; 16]);
        let b = TrackingId::from_random([0xff; 16]);
        assert_ne!(a, b);
        assert_eq!(TrackingId::parse(a.as_str()).unwrap(), a);
        assert_eq!(a.as_str().len(), 30);
        assert!(TrackingId::parse("CVD-1").is_err());
        assert!(TrackingId::parse("CVD-AAAAAAAAAAAAAAAAAAAAAAAAA1").is_err());
    }

    #[test]
    fn submissions_are_bounded_and_strict() {
        let ok = br#"{"title":"Telnet open","description":"port 23 answers","contact":"mailto:r@example.org"}"#;
        let s = Submission::parse_json(ok).unwrap();
        assert_eq!(s.title, "Telnet open");
        assert!(s.credit.is_none());
        for bad in [
            &br#"{"title":"","description":"x"}"#[..],
            br#"{"description":"x"}"#,
            br#"{"title":"t","description":"x","extra":1}"#,
            br#"{"title":"t\u001b[2J","description":"x"}"#,
            br#"{"title":"t","description":"x","contact":"a b"}"#,
            br#"["title"]"#,
            b"not json",
        ] {
            assert!(
                matches!(
                    Submission::parse_json(bad),
                    Err(PostmarketError::Invalid { .. })
                ),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let huge = format!(
            r#"{{"title":"t","description":"{}"}}"#,
            "a".repeat(MAX_REPORT_BYTES)
        );
        assert!(matches!(
            Submission::parse_json(huge.as_bytes()),
            Err(PostmarketError::BatchTooLarge { .. })
        ));
    }

    #[test]
    fn target_dates_and_workflow() {
        let now = datetime!(2026-02-20 12:00 UTC);
        let sub = Submission::parse_json(br#"{"title":"t","description":"d"}"#).unwrap();
        let mut r = CvdReport::receive(
            TrackingId::from_random([7; 16]),
            sub,
            now,
            CvdPolicy::default(),
        )
        .unwrap();
        assert_eq!(r.acknowledge_by, datetime!(2026-02-27 12:00 UTC));
        assert_eq!(r.disclose_by, datetime!(2026-05-21 12:00 UTC));
        assert!(!r.acknowledgement_overdue(datetime!(2026-02-27 12:00 UTC)));
        assert!(r.acknowledgement_overdue(datetime!(2026-02-27 12:01 UTC)));
        r.set_status(
            CvdStatus::Acknowledged,
            None,
            who(),
            datetime!(2026-02-21 9:00 UTC),
        )
        .unwrap();
        assert!(!r.acknowledgement_overdue(datetime!(2026-03-27 12:01 UTC)));
        assert!(r.set_status(CvdStatus::Received, None, who(), now).is_err());
        r.set_status(CvdStatus::Disclosed, None, who(), now)
            .unwrap();
        assert!(r.set_status(CvdStatus::Rejected, None, who(), now).is_err());
        assert!(
            r.set_disclosure_target(datetime!(2026-01-01 0:00 UTC), who(), now)
                .is_err()
        );
    }

    #[test]
    fn security_txt_follows_rfc_9116() {
        let now = datetime!(2026-02-20 12:00 UTC);
        let mut t = SecurityTxt {
            contact: vec![
                "mailto:psirt@example.com".into(),
                "https://example.com/cvd".into(),
            ],
            expires: Some(datetime!(2026-08-20 12:00:00.5 UTC)),
            policy: vec!["https://example.com/cvd-policy".into()],
            preferred_languages: vec!["en".into(), "fr".into()],
            ..SecurityTxt::default()
        };
        let s = t.render(now).unwrap();
        assert_eq!(
            s,
            "Contact: mailto:psirt@example.com\nContact: https://example.com/cvd\n\
             Expires: 2026-08-20T12:00:00Z\nPolicy: https://example.com/cvd-policy\n\
             Preferred-Languages: en, fr\n"
        );
        t.contact = vec!["http://insecure.example".into()];
        assert!(t.render(now).is_err());
        t.contact = vec!["mailto:a@b".into()];
        t.expires = Some(datetime!(2028-01-01 0:00 UTC));
        assert!(t.render(now).is_err());
        t.expires = None;
        assert!(t.render(now).is_err());
    }
}
