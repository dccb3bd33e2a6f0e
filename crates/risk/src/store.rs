//! The storage risk management needs: versioned documents (the human-editable inventory,
//! register, policy and rule files), each change kept, implemented by the back ends in
//! `medsec-store`.

use async_trait::async_trait;
use medsec_core::{Actor, AuditRecord, StoreError};
use serde::Serialize;
use time::OffsetDateTime;

/// Which document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DocKind {
    /// A model's trust-relationship inventory (TOML).
    Inventory,
    /// A model's risk register (TOML).
    Register,
    /// The acceptability policy (TOML, scope `global`).
    Policy,
    /// The threat rule set (TOML, scope `global`).
    Rules,
}

impl DocKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DocKind::Inventory => "inventory",
            DocKind::Register => "register",
            DocKind::Policy => "policy",
            DocKind::Rules => "rules",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "inventory" => DocKind::Inventory,
            "register" => DocKind::Register,
            "policy" => DocKind::Policy,
            "rules" => DocKind::Rules,
            _ => return None,
        })
    }
}

/// One stored version of a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredDoc {
    pub scope: String,
    pub kind: DocKind,
    pub version: u64,
    pub body: String,
    pub sha256: String,
    pub author: Actor,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// Scope of the global documents (policy, rules).
pub const GLOBAL: &str = "global";

#[async_trait]
pub trait RiskStore: Send + Sync {
    /// Stores a new version (the previous ones stay). `expected` guards against lost updates:
    /// the call is refused (`Conflict`) unless the current version equals it (`None`: no
    /// document yet). Returns the new version.
    async fn put_doc(
        &self,
        scope: &str,
        kind: DocKind,
        body: &str,
        expected: Option<u64>,
        author: &Actor,
        audit: &AuditRecord,
    ) -> Result<u64, StoreError>;
    /// The newest version.
    async fn get_doc(&self, scope: &str, kind: DocKind) -> Result<Option<StoredDoc>, StoreError>;
    /// Every version of one document, oldest first.
    async fn doc_history(&self, scope: &str, kind: DocKind) -> Result<Vec<StoredDoc>, StoreError>;
    /// Scopes holding a document of `kind`.
    async fn scopes(&self, kind: DocKind) -> Result<Vec<String>, StoreError>;
}
