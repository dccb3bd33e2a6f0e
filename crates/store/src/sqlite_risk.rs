//! `RiskStore` for SQLite: versioned risk documents (migration 0006).

use async_trait::async_trait;
use medsec_core::{Actor, AuditRecord};
use medsec_risk::store::{DocKind, RiskStore, StoredDoc};
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::StoreError;
use crate::sqlite::{SqliteStore, append_audit, be, corrupt, from_ts, ts};

fn doc_from(r: &SqliteRow) -> Result<StoredDoc, StoreError> {
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

#[async_trait]
impl RiskStore for SqliteStore {
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
            "SELECT max(version) FROM risk_documents WHERE scope = ? AND kind = ?",
        )
        .bind(scope)
        .bind(kind.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(be)?;
        let current = current.map(|v| v as u64);
        if current != expected {
            return Err(StoreError::Conflict(format!(
                "the {} of {scope} is at version {}, not {} (someone changed it meanwhile)",
                kind.as_str(),
                current.map_or("none".into(), |v| v.to_string()),
                expected.map_or("none".into(), |v| v.to_string()),
            )));
        }
        let next = current.unwrap_or(0) + 1;
        sqlx::query(
            "INSERT INTO risk_documents (scope, kind, version, body, sha256, author, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(scope)
        .bind(kind.as_str())
        .bind(next as i64)
        .bind(body)
        .bind(hex::encode(Sha256::digest(body.as_bytes())))
        .bind(author.as_str())
        .bind(ts(time::OffsetDateTime::now_utc()))
        .execute(&mut *tx)
        .await
        .map_err(be)?;
        append_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(be)?;
        Ok(next)
    }

    async fn get_doc(&self, scope: &str, kind: DocKind) -> Result<Option<StoredDoc>, StoreError> {
        sqlx::query(
            "SELECT * FROM risk_documents WHERE scope = ? AND kind = ? ORDER BY version DESC LIMIT 1",
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
        sqlx::query("SELECT * FROM risk_documents WHERE scope = ? AND kind = ? ORDER BY version")
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
            "SELECT DISTINCT scope FROM risk_documents WHERE kind = ? ORDER BY scope",
        )
        .bind(kind.as_str())
        .fetch_all(self.pool())
        .await
        .map_err(be)
    }
}
