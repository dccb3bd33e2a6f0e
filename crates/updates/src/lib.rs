//! Secure updates, split the way Uptane does: the image repository (TUF, offline-capable keys)
//! says which releases exist and are genuine; the director (an online key) says which device
//! should install which release. A device installs only what both agree on.
//!
//! Pure: no network IO. The server serves the repository's files and the director's signed
//! instructions; the agent verifies both.

pub mod director;
pub mod model;
pub mod repo;
pub mod rollout;
pub mod service;

pub use director::{DirectorKey, Instruction, SignedInstruction, verify_instruction};
pub use model::{ReleaseCustom, target_name};
pub use repo::{Expiries, Image, NewRelease, PublishedRelease, RepoOptions, Repository, RoleRef};
pub use rollout::{Cohort, Rollout, RolloutState, Stage, StageOutcome, UpdateStatus, in_cohort};
pub use service::{
    DeviceReport, Director, ReleaseRecord, RolloutPlan, RolloutView, StageView, UpdateStore,
};

/// What can go wrong in the update domain.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpdatesError {
    #[error(transparent)]
    Store(#[from] medsec_core::StoreError),
    #[error("key: {0}")]
    Key(#[from] medsec_keys::KeyError),
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
    #[error("{what} not found: {key}")]
    NotFound { what: &'static str, key: String },
    #[error("signature: {0}")]
    Signature(String),
    #[error("refused: {0}")]
    Refused(String),
}

impl UpdatesError {
    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        UpdatesError::Invalid {
            what,
            reason: reason.into(),
        }
    }
}
