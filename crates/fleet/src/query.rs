//! The dashboard's queries: what a fleet page and a PKI page may ask for, and their bounds.
//!
//! Bounds are checked here, before any store sees a query, so every back end gets the same
//! guarantees: at most [`MAX_LIMIT`] rows a page, a bounded search string, a bounded window.

use medsec_core::{DeviceModel, FirmwareVersion, Name};
use serde::{Deserialize, Serialize};

use crate::{CertStatus, Cursor, FleetError};

/// Most rows one page returns.
pub const MAX_LIMIT: u32 = 200;
/// Rows a page returns when the caller does not say.
pub const DEFAULT_LIMIT: u32 = 50;
/// The "expiring" window when the caller does not say.
pub const DEFAULT_EXPIRING_DAYS: u32 = 30;
/// Longest expiring window accepted: ten years covers any certificate validity a profile
/// allows.
pub const MAX_EXPIRING_DAYS: u32 = 3650;
/// Longest serial search accepted: device serials are at most 64 characters, so a longer
/// substring cannot match anything.
pub const MAX_SEARCH_LEN: usize = 64;

fn default_limit() -> u32 {
    DEFAULT_LIMIT
}

fn default_expiring() -> u32 {
    DEFAULT_EXPIRING_DAYS
}

pub(crate) fn check_limit(limit: u32) -> Result<(), FleetError> {
    if limit == 0 || limit > MAX_LIMIT {
        return Err(FleetError::invalid(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ));
    }
    Ok(())
}

pub(crate) fn check_days(days: u32) -> Result<(), FleetError> {
    if days > MAX_EXPIRING_DAYS {
        return Err(FleetError::invalid(
            "expiring window",
            format!("at most {MAX_EXPIRING_DAYS} days"),
        ));
    }
    Ok(())
}

/// The trimmed search string, `None` when blank; refused when longer than
/// [`MAX_SEARCH_LEN`] or carrying control characters.
fn check_search(search: Option<&str>) -> Result<Option<&str>, FleetError> {
    let Some(s) = search.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if s.chars().count() > MAX_SEARCH_LEN {
        return Err(FleetError::invalid(
            "search",
            format!("at most {MAX_SEARCH_LEN} characters"),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(FleetError::invalid("search", "control characters"));
    }
    Ok(Some(s))
}

/// One fleet page: devices in URN order (model, then serial) matching every filter given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FleetQuery {
    pub model: Option<DeviceModel>,
    /// The firmware version the device reports running (with `model`, of that model; without,
    /// of any model that has a version of this name).
    pub firmware: Option<FirmwareVersion>,
    /// The device's certificate status, with "expiring" meaning within
    /// `expiring_within_days`.
    pub cert_status: Option<CertStatus>,
    pub expiring_within_days: u32,
    /// Case-insensitive substring of the device serial.
    pub search: Option<String>,
    /// Only devices whose firmware's end of support is before today (UTC).
    pub past_end_of_support: bool,
    /// Retired devices are out of the field and hidden unless asked for.
    pub include_retired: bool,
    pub limit: u32,
    /// Start after this device (the `next` of the previous page).
    pub after: Option<Cursor>,
}

impl Default for FleetQuery {
    fn default() -> Self {
        FleetQuery {
            model: None,
            firmware: None,
            cert_status: None,
            expiring_within_days: default_expiring(),
            search: None,
            past_end_of_support: false,
            include_retired: false,
            limit: default_limit(),
            after: None,
        }
    }
}

impl FleetQuery {
    /// Checks the bounds and that the cursor belongs to the fleet listing.
    pub fn validate(&self) -> Result<(), FleetError> {
        check_limit(self.limit)?;
        check_days(self.expiring_within_days)?;
        check_search(self.search.as_deref())?;
        if let Some(c) = &self.after {
            c.device()?;
        }
        Ok(())
    }

    /// The search string as matched: trimmed, `None` when blank.
    pub fn search_term(&self) -> Option<&str> {
        self.search
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    /// Whether only model and retirement restrict the page, so that the total is a cheap
    /// index count.
    pub fn is_unfiltered(&self) -> bool {
        self.firmware.is_none()
            && self.cert_status.is_none()
            && self.search_term().is_none()
            && !self.past_end_of_support
    }
}

/// One page of the PKI view: certificates in serial order matching every filter given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CertQuery {
    pub issuer: Option<Name>,
    /// `Some(true)`: revoked only; `Some(false)`: unrevoked only.
    pub revoked: Option<bool>,
    /// Unrevoked certificates whose notAfter is within this many days from now (not yet
    /// expired): the renewals to plan.
    pub expiring_within_days: Option<u32>,
    /// Case-insensitive substring of the device serial.
    pub search: Option<String>,
    pub limit: u32,
    /// Start after this certificate (the `next` of the previous page).
    pub after: Option<Cursor>,
}

impl Default for CertQuery {
    fn default() -> Self {
        CertQuery {
            issuer: None,
            revoked: None,
            expiring_within_days: None,
            search: None,
            limit: default_limit(),
            after: None,
        }
    }
}

impl CertQuery {
    /// Checks the bounds and that the cursor belongs to the certificate listing.
    pub fn validate(&self) -> Result<(), FleetError> {
        check_limit(self.limit)?;
        if let Some(d) = self.expiring_within_days {
            check_days(d)?;
        }
        check_search(self.search.as_deref())?;
        if let Some(c) = &self.after {
            c.cert()?;
        }
        Ok(())
    }

    /// The search string as matched: trimmed, `None` when blank.
    pub fn search_term(&self) -> Option<&str> {
        self.search
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    /// The window the page's statuses use: the filter's, else the default.
    pub fn status_window_days(&self) -> u32 {
        self.expiring_within_days.unwrap_or(DEFAULT_EXPIRING_DAYS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use medsec_core::DeviceId;

    #[test]
    fn bounds() {
        assert!(FleetQuery::default().validate().is_ok());
        for limit in [0, MAX_LIMIT + 1] {
            let q = FleetQuery {
                limit,
                ..FleetQuery::default()
            };
            assert!(matches!(q.validate(), Err(FleetError::Invalid { .. })));
        }
        let q = FleetQuery {
            limit: MAX_LIMIT,
            search: Some("x".repeat(MAX_SEARCH_LEN)),
            ..FleetQuery::default()
        };
        assert!(q.validate().is_ok());
        let q = FleetQuery {
            search: Some("x".repeat(MAX_SEARCH_LEN + 1)),
            ..FleetQuery::default()
        };
        assert!(q.validate().is_err());
        let q = FleetQuery {
            search: Some("a\u{0}b".into()),
            ..FleetQuery::default()
        };
        assert!(q.validate().is_err());
        let q = FleetQuery {
            expiring_within_days: MAX_EXPIRING_DAYS + 1,
            ..FleetQuery::default()
        };
        assert!(q.validate().is_err());
        let q = CertQuery {
            expiring_within_days: Some(MAX_EXPIRING_DAYS + 1),
            ..CertQuery::default()
        };
        assert!(q.validate().is_err());
    }

    #[test]
    fn blank_search_is_no_search() {
        let q = FleetQuery {
            search: Some("   ".into()),
            ..FleetQuery::default()
        };
        assert!(q.validate().is_ok());
        assert_eq!(q.search_term(), None);
        assert!(q.is_unfiltered());
        let q = FleetQuery {
            search: Some(" sn-1 ".into()),
            ..FleetQuery::default()
        };
        assert_eq!(q.search_term(), Some("sn-1"));
        assert!(!q.is_unfiltered());
    }

    #[test]
    fn cursors_must_match_the_listing() {
        let dev = DeviceId::parse_urn("urn:medsec:device:m:s").unwrap();
        let cert = Cursor::after_cert(&"01".parse().unwrap());
        let q = FleetQuery {
            after: Some(cert.clone()),
            ..FleetQuery::default()
        };
        assert!(matches!(q.validate(), Err(FleetError::BadCursor(_))));
        let q = CertQuery {
            after: Some(Cursor::after_device(&dev)),
            ..CertQuery::default()
        };
        assert!(matches!(q.validate(), Err(FleetError::BadCursor(_))));
        let q = CertQuery {
            after: Some(cert),
            ..CertQuery::default()
        };
        assert!(q.validate().is_ok());
    }

    #[test]
    fn deserialises_with_defaults() {
        let q: FleetQuery =
            serde_json::from_str(r#"{"model": "pump-x2", "cert_status": "expiring"}"#).unwrap();
        assert_eq!(q.limit, DEFAULT_LIMIT);
        assert_eq!(q.expiring_within_days, DEFAULT_EXPIRING_DAYS);
        assert_eq!(q.cert_status, Some(CertStatus::Expiring));
        assert!(serde_json::from_str::<FleetQuery>(r#"{"after": "junk"}"#).is_err());
        assert!(serde_json::from_str::<FleetQuery>(r#"{"offset": 5}"#).is_err());
    }
}
