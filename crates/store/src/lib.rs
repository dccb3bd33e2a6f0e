//! Storage back ends for the traits the domain crates define (`medsec_ca::CaStore`, ...).
//!
//! SQLite is the default, embedded store; PostgreSQL follows with the same traits. Each back
//! end owns its migrations, which are embedded in the binary and checked by hash: a migration
//! that has landed is never edited, only followed by a new one.

mod migrate;
mod pg;
mod pg_ca;
pub mod pg_cluster;
mod pg_evidence;
mod pg_fleet;
mod pg_inventory;
mod pg_postmarket;
mod pg_risk;
mod pg_updates;
mod pg_users;
mod sqlite;
mod sqlite_evidence;
mod sqlite_fleet;
mod sqlite_inventory;
mod sqlite_postmarket;
mod sqlite_risk;
mod sqlite_updates;
mod sqlite_users;

use async_trait::async_trait;
pub use medsec_ca::StoreError;
use medsec_core::AuditEntry;
pub use pg::{PgSettings, PgStore};
pub use sqlite::{SqliteStore, Synchronous};

/// Reading the audit log back, for verification and display.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Entries with `seq > after`, oldest first, at most `limit`.
    async fn audit_page(&self, after: i64, limit: u32) -> Result<Vec<AuditEntry>, StoreError>;
    /// The recorded head: sequence and hash of the newest entry.
    async fn audit_head(&self) -> Result<Option<(i64, String)>, StoreError>;
}

/// Verifies the whole audit chain page by page. Returns the number of entries on success, or
/// the first break.
pub async fn verify_audit(
    log: &dyn AuditLog,
) -> Result<Result<u64, medsec_core::ChainBreak>, StoreError> {
    let mut v = medsec_core::ChainVerifier::new();
    let mut after = 0;
    loop {
        let page = log.audit_page(after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in &page {
            if let Err(b) = v.push(e) {
                return Ok(Err(b));
            }
        }
    }
    let head = log.audit_head().await?;
    Ok(v.finish(head.as_ref().map(|(s, h)| (*s, h.as_str()))))
}
