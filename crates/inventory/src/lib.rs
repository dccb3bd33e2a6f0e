//! Vulnerability management over stored data: device models' firmware versions and their SBOMs,
//! imported advisories (OSV, CISA KEV), findings, VEX triage, risk rating and affected devices.
//!
//! `Inventory<S>` is the service; `InventoryStore` is the storage it needs, implemented by the
//! back ends in `medsec-store`. Matching itself is `medsec-vuln`'s pure index, built once per
//! run from every stored advisory and used for every firmware version.

mod model;
mod rating;
mod service;
mod store;
mod trend;

pub use model::{
    AdvisoryRow, AffectedDevice, Decision, FindingRecord, FindingView, FirmwareRecord, ImportStats,
    KevExposure, MatchStats, MatchedBy, SbomRecord, SupportLevel,
};
pub use rating::{Exploitability, RiskLevel, RiskPolicy, SeverityLevel, rate};
pub use service::{Inventory, VexScope, export_sbom};
pub use store::InventoryStore;
pub use trend::{TrendPoint, trend, weekly};

pub use medsec_core::StoreError;

/// What can go wrong in vulnerability management.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InventoryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("SBOM refused: {0}")]
    Sbom(#[from] medsec_sbom::SbomError),
    /// The reason is part of the message (not a `source`), so that the HTTP problem detail
    /// carries it and error chains do not print it twice.
    #[error("advisory {id}: {reason}")]
    Advisory {
        id: String,
        reason: medsec_vuln::VulnError,
    },
    #[error("{0}")]
    Vuln(#[from] medsec_vuln::VulnError),
    #[error("{what} not found: {key}")]
    NotFound { what: &'static str, key: String },
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
}

impl InventoryError {
    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        InventoryError::Invalid {
            what,
            reason: reason.into(),
        }
    }
}
