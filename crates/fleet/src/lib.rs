//! The fleet read model: what the dashboard's fleet, PKI and risk pages ask of the store.
//!
//! Pure crate: query and row types, certificate-status derivation, opaque keyset cursors, and
//! the fleet-risk rules (which release fixes what, how devices are ranked). The storage trait
//! [`FleetStore`] is implemented by the back ends in `medsec-store`; they supply candidate rows
//! with a few indexed queries and leave every rule that can be tested without a database here.
//!
//! Every page is keyset-paginated ([`Cursor`]): a page costs the same whether it is the first or
//! the five-hundredth of a 100,000-device fleet.

mod cursor;
mod model;
mod query;
mod risk;
mod status;

use async_trait::async_trait;
pub use cursor::Cursor;
pub use medsec_core::StoreError;
pub use model::{CertPage, CertRow, CertStatusCounts, FleetPage, FleetRow, FleetSummary, Page};
pub use query::{
    CertQuery, DEFAULT_EXPIRING_DAYS, DEFAULT_LIMIT, FleetQuery, MAX_EXPIRING_DAYS, MAX_LIMIT,
    MAX_SEARCH_LEN,
};
pub use risk::{
    CRITICAL_CVSS, FirmwareFacts, FirmwareRisk, FixingRelease, FleetRiskRow, ReleaseInfo,
    RiskCandidate, RiskReason, RiskScore, RiskTier, UrgentFinding, is_urgent, plan_fixes,
    rank_risk, validate_risk,
};
pub use status::{CertFacts, CertStatus, current_cert};
use time::OffsetDateTime;

/// What can go wrong answering a fleet query.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    /// A query parameter is out of bounds (limit, search length, window).
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
    /// The cursor is not one this crate produced, or is for another listing.
    #[error("invalid cursor: {0}")]
    BadCursor(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl FleetError {
    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        FleetError::Invalid {
            what,
            reason: reason.into(),
        }
    }
}

/// The storage the fleet read model needs. `now` is passed in (never read from a clock here) so
/// that statuses are reproducible and one request sees one instant.
#[async_trait]
pub trait FleetStore: Send + Sync {
    /// One page of devices in URN order (model, then serial), filtered by `q`.
    async fn fleet_page(
        &self,
        q: &FleetQuery,
        now: OffsetDateTime,
    ) -> Result<Page<FleetRow>, FleetError>;

    /// Fleet-wide counts for the dashboard's overview. Everything except `retired` counts
    /// devices in the field (not retired); "expiring" means within [`DEFAULT_EXPIRING_DAYS`].
    async fn fleet_summary(&self, now: OffsetDateTime) -> Result<FleetSummary, FleetError>;

    /// One page of certificates in serial order, filtered by `q`, for the PKI page.
    async fn cert_page(
        &self,
        q: &CertQuery,
        now: OffsetDateTime,
    ) -> Result<Page<CertRow>, FleetError>;

    /// Devices that at once run firmware with an open KEV-listed or critical finding, hold a
    /// certificate expiring within `expiring_within_days` (or expired), and have not taken a
    /// published release that fixes it; ranked by [`RiskScore`], at most `limit` rows.
    async fn fleet_risk(
        &self,
        now: OffsetDateTime,
        expiring_within_days: u32,
        limit: u32,
    ) -> Result<Vec<FleetRiskRow>, FleetError>;

    /// Devices in the field (not retired).
    async fn device_count(&self) -> Result<u64, FleetError>;
}
