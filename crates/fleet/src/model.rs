//! The rows and aggregates the fleet read model answers with.

use medsec_core::{CertSerial, DeviceId, DeviceModel, FirmwareVersion, Name};
use serde::Serialize;
use time::{Date, OffsetDateTime};

use crate::{CertStatus, Cursor};

/// Devices are shown by URN on the dashboard, so rows serialise them that way.
pub(crate) fn as_urn<S: serde::Serializer>(d: &DeviceId, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&d.urn())
}

/// Dates as `YYYY-MM-DD` whatever `time`'s serde features say.
fn opt_date<S: serde::Serializer>(d: &Option<Date>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&d.to_string()),
        None => s.serialize_none(),
    }
}

/// One page of a keyset-paginated listing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    pub rows: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
    /// Rows matching the query over all pages, only when counting is cheap (first page,
    /// filtered at most by model); otherwise `None` (ask [`crate::FleetStore::device_count`]).
    pub total: Option<u64>,
}

/// A fleet page.
pub type FleetPage = Page<FleetRow>;

/// A PKI page.
pub type CertPage = Page<CertRow>;

/// One device on the fleet page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetRow {
    #[serde(serialize_with = "as_urn")]
    pub device: DeviceId,
    pub retired: bool,
    /// The firmware the device last reported (or an operator set).
    pub firmware: Option<FirmwareVersion>,
    /// That firmware's end of support, when the manufacturer committed to one (`YYYY-MM-DD`).
    #[serde(serialize_with = "opt_date")]
    pub end_of_support: Option<Date>,
    /// The device's current certificate: newest unrevoked by notAfter, else newest.
    pub cert_serial: Option<CertSerial>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub cert_not_after: Option<OffsetDateTime>,
    pub cert_status: CertStatus,
    /// Open findings (vulnerability x component) in the running firmware. "Open": the newest
    /// decision filed under the finding's primary id for that firmware (firmware-wide or for the
    /// component) is not not_affected, false_positive or fixed.
    pub open_findings: u32,
    /// Of those, the ones listed in CISA KEV.
    pub kev_findings: u32,
}

/// Devices per certificate status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CertStatusCounts {
    pub valid: u64,
    pub expiring: u64,
    pub expired: u64,
    pub revoked: u64,
    pub none: u64,
}

impl CertStatusCounts {
    pub fn get(&self, s: CertStatus) -> u64 {
        match s {
            CertStatus::Valid => self.valid,
            CertStatus::Expiring => self.expiring,
            CertStatus::Expired => self.expired,
            CertStatus::Revoked => self.revoked,
            CertStatus::None => self.none,
        }
    }

    pub fn get_mut(&mut self, s: CertStatus) -> &mut u64 {
        match s {
            CertStatus::Valid => &mut self.valid,
            CertStatus::Expiring => &mut self.expiring,
            CertStatus::Expired => &mut self.expired,
            CertStatus::Revoked => &mut self.revoked,
            CertStatus::None => &mut self.none,
        }
    }

    pub fn total(&self) -> u64 {
        CertStatus::ALL.iter().map(|s| self.get(*s)).sum()
    }
}

/// The fleet overview. Every count except `retired` is over devices in the field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FleetSummary {
    /// Devices in the field (not retired).
    pub devices: u64,
    pub retired: u64,
    /// Devices per model, by model name.
    pub by_model: Vec<(DeviceModel, u64)>,
    /// Devices per running firmware, by model then version name.
    pub by_firmware: Vec<(DeviceModel, FirmwareVersion, u64)>,
    /// Devices that never reported a firmware version.
    pub firmware_unknown: u64,
    /// Devices per current-certificate status, "expiring" meaning within 30 days.
    pub cert_status: CertStatusCounts,
    /// Devices whose current certificate is unrevoked and expires within 30 / 60 / 90 days
    /// (not yet expired). Cumulative: the 60-day count includes the 30-day one.
    pub expiring_30: u64,
    pub expiring_60: u64,
    pub expiring_90: u64,
    /// Devices running firmware whose end of support is before today (UTC).
    pub past_end_of_support: u64,
    /// Devices whose current unrevoked certificate expires in each of the next 12 calendar
    /// months (UTC, `YYYY-MM`), starting with the current month from `now` on.
    pub expiry_histogram: Vec<(String, u64)>,
}

/// One certificate on the PKI page (the DER is not read for listings).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CertRow {
    pub serial: CertSerial,
    #[serde(serialize_with = "as_urn")]
    pub device: DeviceId,
    pub issuer: Name,
    pub profile: Name,
    /// issue, renew or rekey.
    pub kind: String,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    pub revoked_reason: Option<String>,
    /// This certificate's own status (never `None`), "expiring" per the query's window.
    pub status: CertStatus,
}
