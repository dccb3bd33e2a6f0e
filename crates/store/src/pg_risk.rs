//! `RiskStore` for PostgreSQL: versioned risk documents (migration 0006), safe with several
//! replicas writing at once.
//!
//! An edit names the version it was made against. Two replicas may both read that version as
//! current; the primary key (scope, kind, version) then admits only one of their new versions,
//! and the other gets the same `Conflict` a sequential stale edit gets.

use async_trait::async_trait;
use medsec_core::{Actor, AuditRecord};
use medsec_risk::store::{DocKind, RiskStore, StoredDoc};
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::StoreError;
use crate::pg::{PgStore, append_audit, be};
use crate::sqlite::{corrupt, from_ts, ts};

fn doc_from(r: &PgRow) -> Result<StoredDoc, StoreError> {
    let kind: String = r.try_get("kind").map_err(be)?;
    Ok(StoredDoc {
        scope: r.try_get("scope").map_err(be)?,
        kind: DocKind::parse(&kind).ok_or_else(|| corrupt("document kind", &kind))?,
        version: u64::try_from(r.try_get::<i64, _>("version").map_err(be)?)
            .map_err(|e| corrupt("document version", e))?,
        body: r.try_get("body").map_err(be)?,
        sha256: r.try_get("sha256").map_err(be)?,
        author: Actor::parse(&r.try_get::<String, _>("author").map_err(be)?)
            .map_err(|e| corrupt("author", e))?,
        at: from_ts(r.try_get("at").map_err(be)?)?,
    })
}

fn stale(scope: &str, kind: DocKind, current: Option<u64>, expected: Option<u64>) -> StoreError {
    StoreError::Conflict(format!(
        "the {} of {scope} is at version {}, not {} (someone changed it meanwhile)",
        kind.as_str(),
        current.map_or("none".into(), |v| v.to_string()),
        expected.map_or("none".into(), |v| v.to_string()),
    ))
}

#[async_trait]
impl RiskStore for PgStore {
    async fn put_doc(
        &self,
        scope: &str,
        kind: DocKind,
        body: &str,
        expected: Option<u64>,
        author: &Actor,
        audit: &AuditRecord,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let current: Option<i64> = sqlx::query_scalar(
            "SELECT max(version) FROM risk_documents WHERE scope = $1 AND kind = $2",
        )
        .bind(scope)
        .bind(kind.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(be)?;
        let current = current
            .map(|v| u64::try_from(v).map_err(|e| corrupt("document version", e)))
            .transpose()?;
        if current != expected {
            return Err(stale(scope, kind, current, expected));
        }
        let next = current.unwrap_or(0) + 1;
        let next_i64 = i64::try_from(next).map_err(|e| corrupt("document version", e))?;
        // ON CONFLICT waits for a racing insert of the same version and yields nothing if it
        // committed: that replica's edit won, this one was made against a stale version.
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO risk_documents (scope, kind, version, body, sha256, author, at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING version",
        )
        .bind(scope)
        .bind(kind.as_str())
        .bind(next_i64)
        .bind(body)
        .bind(hex::encode(Sha256::digest(body.as_bytes())))
        .bind(author.as_str())
        .bind(ts(time::OffsetDateTime::now_utc()))
        .fetch_optional(&mut *tx)
        .await
        .map_err(be)?;
        if inserted.is_none() {
            return Err(stale(scope, kind, Some(next), expected));
        }
        append_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(be)?;
        Ok(next)
    }

    async fn get_doc(&self, scope: &str, kind: DocKind) -> Result<Option<StoredDoc>, StoreError> {
        sqlx::query(
            "SELECT * FROM risk_documents WHERE scope = $1 AND kind = $2 ORDER BY version DESC LIMIT 1",
        )
        .bind(scope)
        .bind(kind.as_str())
        .fetch_optional(self.pool())
        .await
        .map_err(be)?
        .map(|r| doc_from(&r))
        .transpose()
    }

    async fn doc_history(&self, scope: &str, kind: DocKind) -> Result<Vec<StoredDoc>, StoreError> {
        sqlx::query("SELECT * FROM risk_documents WHERE scope = $1 AND kind = $2 ORDER BY version")
            .bind(scope)
            .bind(kind.as_str())
            .fetch_all(self.pool())
            .await
            .map_err(be)?
            .iter()
            .map(doc_from)
            .collect()
    }

    async fn scopes(&self, kind: DocKind) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(
            "SELECT DISTINCT scope COLLATE \"C\" AS scope FROM risk_documents WHERE kind = $1
             ORDER BY scope COLLATE \"C\"",
        )
        .bind(kind.as_str())
        .fetch_all(self.pool())
        .await
        .map_err(be)
    }
}
