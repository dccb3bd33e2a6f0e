//! Domain types shared by every medsec crate: identifiers, key algorithms, revocation reasons, audit records.
//!
//! Everything here is pure data with parsing and formatting; no IO, no clocks, no randomness.
//! Values that arrive from a user, a file or the network are turned into these newtypes at the edge
//! ("parse, don't validate"), so the rest of the code never sees an unchecked string.

mod audit;
mod ids;
mod jobs;
mod keyalg;
mod purl;
mod revocation;

pub use audit::{AuditAction, AuditEntry, AuditRecord, ChainBreak, ChainVerifier, GENESIS_HASH};
pub use ids::{Actor, CertSerial, DeviceId, DeviceModel, DeviceSerial, FirmwareVersion, Name};
pub use jobs::{JobLeases, JobRun, period_start};
pub use keyalg::KeyAlgorithm;
pub use purl::Purl;
pub use revocation::RevocationReason;

/// Storage failures, shared by every storage trait (the CA's, the inventory's, ...): kept coarse,
/// callers decide on the variant, the message carries detail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A uniqueness rule would be broken (duplicate serial, existing name).
    #[error("already exists: {0}")]
    Conflict(String),
    /// A referenced row is missing.
    #[error("not found: {0}")]
    NotFound(String),
    /// The change is refused by a state rule checked inside the transaction.
    #[error("{0}")]
    Refused(String),
    /// Stored data does not parse back into domain types.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("database: {0}")]
    Backend(String),
}

/// Errors raised while parsing domain values.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CoreError {
    /// A value failed its syntax rules; `what` names the kind of value.
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
}

impl CoreError {
    pub(crate) fn invalid(what: &'static str, value: &str, reason: &'static str) -> Self {
        // Cap what we echo back: the value may be attacker-sized.
        let mut value = value.to_owned();
        if value.len() > 80 {
            let mut cut = 80;
            while !value.is_char_boundary(cut) {
                cut -= 1;
            }
            value.truncate(cut);
            value.push('…');
        }
        CoreError::Invalid {
            what,
            value,
            reason,
        }
    }
}
