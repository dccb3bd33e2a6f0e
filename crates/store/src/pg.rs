//! The PostgreSQL store: the scale-out back end that several `medsec serve` replicas share.
//!
//! Every storage trait SQLite implements is implemented here too (one `pg_*` module per domain,
//! beside its `sqlite_*` twin), and the story tests in `tests/` run unchanged against both.
//! Unlike SQLite there is no in-process writer: PostgreSQL serialises concurrent writers itself,
//! and several processes write at once, so uniqueness (serials, single-use tokens) is enforced by
//! constraints and row locks in the database, never by memory.

use std::time::Duration;

use async_trait::async_trait;
use medsec_core::{AuditEntry, AuditRecord};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use time::OffsetDateTime;

use crate::{AuditLog, StoreError};

pub(crate) fn be(e: sqlx::Error) -> StoreError {
    crate::sqlite::be(e)
}

/// The PostgreSQL implementation of every storage trait.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// The issuance writer: concurrent issuances of this process share one transaction (one
    /// WAL flush), as SQLite's writer does; see `pg_ca::issuance_writer`.
    pub(crate) issuances: crate::pg_ca::IssuanceWriter,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

/// How a replica connects.
#[derive(Debug, Clone)]
pub struct PgSettings {
    /// Connections this process holds at most.
    pub max_connections: u32,
    /// How long a request waits for a free connection before it fails.
    pub acquire_timeout: Duration,
}

impl Default for PgSettings {
    fn default() -> Self {
        PgSettings {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host:port/db?sslmode=...`) and applies pending
    /// migrations under an advisory lock, so replicas starting together migrate once.
    pub async fn connect(url: &str, settings: &PgSettings) -> Result<Self, StoreError> {
        let opts: PgConnectOptions = url
            .parse()
            .map_err(|e| StoreError::Refused(format!("database URL: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(opts)
            .await
            .map_err(|e| StoreError::Backend(format!("connect to PostgreSQL: {e}")))?;
        crate::migrate::run_postgres(&pool, crate::migrate::POSTGRES).await?;
        let issuances = crate::pg_ca::issuance_writer(pool.clone());
        Ok(PgStore { pool, issuances })
    }

    /// The pool, for tests and tools that inspect the database.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// The advisory lock that serialises audit appends across every replica ("audit" in ASCII).
/// Transaction-scoped, so it is held from the append to the commit and the chain cannot fork.
pub(crate) const AUDIT_LOCK: i64 = 0x61_7564_6974;

/// Appends the audit entries describing a change inside the caller's transaction. Call it as
/// the last statement before commit: the lock it takes is held until then.
pub(crate) async fn append_audits(
    conn: &mut PgConnection,
    recs: &[&AuditRecord],
) -> Result<(), StoreError> {
    if recs.is_empty() {
        return Ok(());
    }
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(AUDIT_LOCK)
        .execute(&mut *conn)
        .await
        .map_err(be)?;
    let mut head: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_optional(&mut *conn)
            .await
            .map_err(be)?;
    for rec in recs {
        let e = AuditEntry::chain(
            head.as_ref().map(|(s, h)| (s, h.as_str())),
            OffsetDateTime::now_utc(),
            rec,
        );
        sqlx::query(
            "INSERT INTO audit_log (seq, at_micros, actor, action, subject, details, prev_hash, hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(e.seq)
        .bind(e.at_micros)
        .bind(&e.actor)
        .bind(&e.action)
        .bind(&e.subject)
        .bind(&e.details)
        .bind(&e.prev_hash)
        .bind(&e.hash)
        .execute(&mut *conn)
        .await
        .map_err(be)?;
        head = Some((e.seq, e.hash));
    }
    if let Some((seq, hash)) = head {
        sqlx::query(
            "INSERT INTO audit_head (id, seq, hash) VALUES (1, $1, $2)
             ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
        )
        .bind(seq)
        .bind(hash)
        .execute(&mut *conn)
        .await
        .map_err(be)?;
    }
    Ok(())
}

/// Appends one audit entry inside the caller's transaction (see [`append_audits`]).
pub(crate) async fn append_audit(
    conn: &mut PgConnection,
    rec: &AuditRecord,
) -> Result<(), StoreError> {
    append_audits(conn, &[rec]).await
}

/// Appends the audit entry describing a change and commits the transaction that made it.
pub(crate) async fn commit_audited(
    mut tx: Transaction<'static, Postgres>,
    rec: &AuditRecord,
) -> Result<(), StoreError> {
    append_audit(&mut tx, rec).await?;
    tx.commit().await.map_err(be)
}

impl PgStore {
    pub(crate) async fn begin(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.pool.begin().await.map_err(be)
    }
}

#[async_trait]
impl AuditLog for PgStore {
    async fn audit_page(&self, after: i64, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query("SELECT * FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2")
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(be)?;
        rows.iter().map(crate::audit_entry_from).collect()
    }

    async fn audit_head(&self) -> Result<Option<(i64, String)>, StoreError> {
        sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(be)
    }
}
