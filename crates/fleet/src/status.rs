//! A device's certificate status: which of its certificates counts, and what state it is in.
//!
//! The SQLite store keeps each device's current certificate in a summary table maintained by
//! triggers (migration 0010) because deriving it from a million certificates per request is too
//! slow; the triggers implement [`current_cert`] in SQL, and the store derives the status with
//! [`CertStatus::of_cert`], so these functions are the specification both follow.

use std::fmt;
use std::str::FromStr;

use medsec_core::CertSerial;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::FleetError;

/// The state of a device's current certificate, or of one certificate on the PKI page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertStatus {
    /// Unrevoked and valid for longer than the expiring window.
    Valid,
    /// Unrevoked and expiring within the window (N days from now).
    Expiring,
    /// Unrevoked but past its notAfter.
    Expired,
    /// Revoked (for a device: it holds no unrevoked certificate at all).
    Revoked,
    /// The device has no certificate.
    None,
}

impl CertStatus {
    pub const ALL: [CertStatus; 5] = [
        CertStatus::Valid,
        CertStatus::Expiring,
        CertStatus::Expired,
        CertStatus::Revoked,
        CertStatus::None,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CertStatus::Valid => "valid",
            CertStatus::Expiring => "expiring",
            CertStatus::Expired => "expired",
            CertStatus::Revoked => "revoked",
            CertStatus::None => "none",
        }
    }

    /// The status of one certificate at `now`. A certificate is valid through its notAfter
    /// second (RFC 5280: the bound is inclusive), expired after it, and expiring while fewer
    /// than `expiring_within_days` days remain.
    pub fn of_cert(
        revoked: bool,
        not_after: OffsetDateTime,
        now: OffsetDateTime,
        expiring_within_days: u32,
    ) -> CertStatus {
        if revoked {
            CertStatus::Revoked
        } else if not_after < now {
            CertStatus::Expired
        } else if not_after < now + Duration::days(i64::from(expiring_within_days)) {
            CertStatus::Expiring
        } else {
            CertStatus::Valid
        }
    }

    /// The status of a device whose current certificate (see [`current_cert`]) is `current`.
    pub fn of_device(
        current: Option<&CertFacts>,
        now: OffsetDateTime,
        expiring_within_days: u32,
    ) -> CertStatus {
        match current {
            None => CertStatus::None,
            Some(c) => CertStatus::of_cert(c.revoked, c.not_after, now, expiring_within_days),
        }
    }
}

impl fmt::Display for CertStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CertStatus {
    type Err = FleetError;
    fn from_str(s: &str) -> Result<Self, FleetError> {
        CertStatus::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                FleetError::invalid(
                    "certificate status",
                    "expected valid, expiring, expired, revoked or none",
                )
            })
    }
}

/// What status derivation needs to know about one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    pub serial: CertSerial,
    pub not_after: OffsetDateTime,
    pub revoked: bool,
}

/// A device's current certificate: its newest unrevoked certificate by notAfter, else its
/// newest certificate. Ties on notAfter go to the greater serial in lowercase hex, the order
/// the SQL triggers use, so both always agree.
pub fn current_cert(certs: &[CertFacts]) -> Option<&CertFacts> {
    certs.iter().max_by(|a, b| {
        (!a.revoked, a.not_after, a.serial.to_hex()).cmp(&(
            !b.revoked,
            b.not_after,
            b.serial.to_hex(),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(secs).unwrap()
    }

    fn cert(serial: &str, not_after: i64, revoked: bool) -> CertFacts {
        CertFacts {
            serial: serial.parse().unwrap(),
            not_after: at(not_after),
            revoked,
        }
    }

    const DAY: i64 = 86_400;

    #[test]
    fn status_boundaries() {
        let now = at(1_000 * DAY);
        let s = |na: i64| CertStatus::of_cert(false, at(na), now, 30);
        assert_eq!(s(1_000 * DAY - 1), CertStatus::Expired);
        // Valid through the notAfter second itself.
        assert_eq!(s(1_000 * DAY), CertStatus::Expiring);
        assert_eq!(s(1_030 * DAY - 1), CertStatus::Expiring);
        assert_eq!(s(1_030 * DAY), CertStatus::Valid);
        assert_eq!(
            CertStatus::of_cert(true, at(2_000 * DAY), now, 30),
            CertStatus::Revoked
        );
        // A zero-day window: nothing is "expiring", only valid or expired.
        assert_eq!(
            CertStatus::of_cert(false, at(1_000 * DAY), now, 0),
            CertStatus::Valid
        );
        assert_eq!(CertStatus::of_device(None, now, 30), CertStatus::None);
    }

    #[test]
    fn current_prefers_unrevoked_then_newest() {
        // The newest certificate is revoked (say, a compromised rekey): the older unrevoked one
        // counts, even though it is expired.
        let certs = vec![
            cert("01", 100, false),
            cert("02", 300, true),
            cert("03", 200, false),
        ];
        assert_eq!(current_cert(&certs).unwrap().serial.to_hex(), "03");
        // Everything revoked: the newest one counts, and the device is Revoked.
        let all_revoked = vec![cert("01", 100, true), cert("02", 300, true)];
        let c = current_cert(&all_revoked).unwrap();
        assert_eq!(c.serial.to_hex(), "02");
        assert_eq!(
            CertStatus::of_device(Some(c), at(0), 30),
            CertStatus::Revoked
        );
        assert!(current_cert(&[]).is_none());
        // Equal notAfter: the greater hex serial, like the SQL ORDER BY.
        let tie = vec![cert("0a", 100, false), cert("09", 100, false)];
        assert_eq!(current_cert(&tie).unwrap().serial.to_hex(), "0a");
    }

    #[test]
    fn parses_and_prints() {
        for s in CertStatus::ALL {
            assert_eq!(s.as_str().parse::<CertStatus>().unwrap(), s);
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        assert!("Valid".parse::<CertStatus>().is_err());
    }
}
