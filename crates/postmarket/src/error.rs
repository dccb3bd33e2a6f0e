//! The crate's single error type.

use crate::incident::IncidentStatus;

/// Everything that can go wrong in this crate. Batch-size errors are separate variants so an
/// HTTP layer can answer 413 for them and 400 for malformed content.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostmarketError {
    /// The batch body is larger than the configured byte limit (HTTP 413).
    #[error("event batch is {size} bytes, the limit is {limit}")]
    BatchTooLarge { size: usize, limit: usize },
    /// The batch holds more events than the configured limit (HTTP 413).
    #[error("event batch holds {count} events, the limit is {limit}")]
    TooManyEvents { count: usize, limit: usize },
    /// The batch is malformed; `path` locates the offending value, e.g. `[3].time` (HTTP 400).
    #[error("invalid event batch at {path}: {message}")]
    InvalidBatch { path: String, message: String },
    /// A rule set is malformed; `path` locates the offending value, e.g. `rules[1].count`.
    #[error("invalid rules at {path}: {message}")]
    InvalidRules { path: String, message: String },
    /// A single value failed its newtype check.
    #[error("invalid {what}: {message}")]
    Invalid { what: &'static str, message: String },
    /// The incident workflow does not allow this status change.
    #[error("illegal incident transition from {from} to {to}")]
    IllegalTransition {
        from: IncidentStatus,
        to: IncidentStatus,
    },
    /// No incident with this id.
    #[error("unknown incident {0}")]
    UnknownIncident(String),
    /// No CVD report with this tracking id.
    #[error("unknown vulnerability report {0}")]
    UnknownReport(String),
    /// Someone else changed the same record first; re-read and retry.
    #[error("changed concurrently: {0}")]
    Conflict(String),
    /// The store failed or refused the change.
    #[error("store: {0}")]
    Store(#[from] medsec_core::StoreError),
    /// A computed date fell outside the representable range.
    #[error("date out of range while computing {0}")]
    DateOutOfRange(&'static str),
}

impl PostmarketError {
    pub(crate) fn batch(path: impl Into<String>, message: impl Into<String>) -> Self {
        PostmarketError::InvalidBatch {
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn rules(path: impl Into<String>, message: impl Into<String>) -> Self {
        PostmarketError::InvalidRules {
            path: path.into(),
            message: message.into(),
        }
    }
}
