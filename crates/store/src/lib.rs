//! Storage back ends for the traits the domain crates define (`medsec_ca::CaStore`, ...).
//!
//! SQLite is the default, embedded store; PostgreSQL follows with the same traits. Each back
//! end owns its migrations, which are embedded in the binary and checked by hash: a migration
//! that has landed is never edited, only followed by a new one.

mod fleet_common;
mod jobs;
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
pub mod transfer;

use async_trait::async_trait;
pub use medsec_ca::StoreError;
use medsec_core::AuditEntry;
pub use pg::{PgSettings, PgStore};
pub use sqlite::{SqliteStore, Synchronous};

/// Every storage trait at once: what the binary holds as `Arc<dyn Backend>` once it has chosen
/// SQLite or PostgreSQL at start, and upcasts to the one trait each service needs.
pub trait Backend:
    medsec_ca::CaStore
    + medsec_auth::AuthStore
    + medsec_auth::users::UserStore
    + medsec_inventory::InventoryStore
    + medsec_updates::UpdateStore
    + medsec_risk::store::RiskStore
    + medsec_postmarket::store::PostmarketStore
    + medsec_docs::evidence::EvidenceStore
    + medsec_fleet::FleetStore
    + medsec_core::JobLeases
    + AuditLog
    + PoolGauges
    + Send
    + Sync
    + 'static
{
}

impl<T> Backend for T where
    T: medsec_ca::CaStore
        + medsec_auth::AuthStore
        + medsec_auth::users::UserStore
        + medsec_inventory::InventoryStore
        + medsec_updates::UpdateStore
        + medsec_risk::store::RiskStore
        + medsec_postmarket::store::PostmarketStore
        + medsec_docs::evidence::EvidenceStore
        + medsec_fleet::FleetStore
        + medsec_core::JobLeases
        + AuditLog
        + PoolGauges
        + Send
        + Sync
        + 'static
{
}

/// Reading the audit log back, for verification and display.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Entries with `seq > after`, oldest first, at most `limit`.
    async fn audit_page(&self, after: i64, limit: u32) -> Result<Vec<AuditEntry>, StoreError>;
    /// The recorded head: sequence and hash of the newest entry.
    async fn audit_head(&self) -> Result<Option<(i64, String)>, StoreError>;
}

/// The connection pool's figures for the `/metrics` gauges: (open, idle, maximum).
pub trait PoolGauges {
    fn pool_gauges(&self) -> (u32, u32, u32);
}

impl PoolGauges for SqliteStore {
    fn pool_gauges(&self) -> (u32, u32, u32) {
        let p = self.pool();
        (
            p.size(),
            u32::try_from(p.num_idle()).unwrap_or(u32::MAX),
            p.options().get_max_connections(),
        )
    }
}

impl PoolGauges for PgStore {
    fn pool_gauges(&self) -> (u32, u32, u32) {
        let p = self.pool();
        (
            p.size(),
            u32::try_from(p.num_idle()).unwrap_or(u32::MAX),
            p.options().get_max_connections(),
        )
    }
}

/// An `api_tokens` row and its PHC hash, whichever back end read it (both keep `revoked` as a
/// 0/1 integer and times as Unix seconds).
pub(crate) fn api_token_from<'r, R>(
    r: &'r R,
) -> Result<(medsec_auth::ApiToken, String), medsec_auth::AuthError>
where
    R: sqlx::Row,
    &'r str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let err = |e: StoreError| medsec_auth::AuthError::Store(e.to_string());
    let be = |e| err(sqlite::be(e));
    let s = |c: &'r str| r.try_get::<String, _>(c).map_err(be);
    let role: String = s("role")?;
    let expires: Option<i64> = r.try_get("expires_at").map_err(be)?;
    let t = medsec_auth::ApiToken {
        id: s("id")?,
        name: s("name")?,
        role: role.parse()?,
        created_at: sqlite::from_ts(r.try_get("created_at").map_err(be)?).map_err(err)?,
        expires_at: expires.map(sqlite::from_ts).transpose().map_err(err)?,
        revoked: r.try_get::<i64, _>("revoked").map_err(be)? != 0,
    };
    Ok((t, s("phc_hash")?))
}

/// An audit entry from a row of `audit_log`, whichever back end read it.
pub(crate) fn audit_entry_from<'r, R>(r: &'r R) -> Result<AuditEntry, StoreError>
where
    R: sqlx::Row,
    &'r str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let be = sqlite::be;
    Ok(AuditEntry {
        seq: r.try_get("seq").map_err(be)?,
        at_micros: r.try_get("at_micros").map_err(be)?,
        actor: r.try_get("actor").map_err(be)?,
        action: r.try_get("action").map_err(be)?,
        subject: r.try_get("subject").map_err(be)?,
        details: r.try_get("details").map_err(be)?,
        prev_hash: r.try_get("prev_hash").map_err(be)?,
        hash: r.try_get("hash").map_err(be)?,
    })
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
