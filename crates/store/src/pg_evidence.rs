//! `EvidenceStore` for PostgreSQL: imported test evidence and its files (migration 0008), safe
//! with several replicas importing at once.
//!
//! "This file is already evidence for this firmware" is decided by the unique key
//! (model, version, sha256), not by a read before the insert, so two replicas importing the same
//! file store it once; the other gets the same `Conflict`, naming the stored record.

use async_trait::async_trait;
use medsec_core::{Actor, AuditRecord, DeviceModel, FirmwareVersion};
use medsec_docs::evidence::{EvidenceStore, NewEvidence, StoredEvidence, check_new_evidence};
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::StoreError;
use crate::pg::{PgStore, be, commit_audited};
use crate::sqlite::{corrupt, from_ts, ts};

fn evidence_from(r: &PgRow) -> Result<StoredEvidence, StoreError> {
    let category: String = r.try_get("category").map_err(be)?;
    let kind: String = r.try_get("kind").map_err(be)?;
    let summary: String = r.try_get("summary").map_err(be)?;
    Ok(StoredEvidence {
        id: u64::try_from(r.try_get::<i64, _>("id").map_err(be)?)
            .map_err(|e| corrupt("evidence id", e))?,
        model: DeviceModel::parse(&r.try_get::<String, _>("model").map_err(be)?)
            .map_err(|e| corrupt("evidence model", e))?,
        version: FirmwareVersion::parse(&r.try_get::<String, _>("version").map_err(be)?)
            .map_err(|e| corrupt("evidence firmware version", e))?,
        category: category
            .parse()
            .map_err(|e| corrupt("evidence category", e))?,
        kind: kind.parse().map_err(|e| corrupt("evidence kind", e))?,
        file_name: r.try_get("file_name").map_err(be)?,
        sha256: r.try_get("sha256").map_err(be)?,
        size: u64::try_from(r.try_get::<i64, _>("size").map_err(be)?)
            .map_err(|e| corrupt("evidence size", e))?,
        summary: serde_json::from_str(&summary).map_err(|e| corrupt("evidence summary", e))?,
        imported_at: from_ts(r.try_get("imported_at").map_err(be)?)?,
        author: Actor::parse(&r.try_get::<String, _>("author").map_err(be)?)
            .map_err(|e| corrupt("author", e))?,
    })
}

#[async_trait]
impl EvidenceStore for PgStore {
    async fn add_evidence(&self, e: &NewEvidence, audit: &AuditRecord) -> Result<u64, StoreError> {
        check_new_evidence(e)?;
        let summary = serde_json::to_string(&e.summary)
            .map_err(|err| StoreError::Backend(format!("evidence summary to JSON: {err}")))?;
        let size = i64::try_from(e.bytes.len())
            .map_err(|_| StoreError::Refused("evidence file too large".into()))?;
        let mut tx = self.begin().await?;
        // ON CONFLICT waits for a racing import of the same file to commit or roll back, so
        // "nothing inserted" means the file is stored, and visible to the next statement.
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO evidence (model, version, category, kind, file_name, sha256, size, summary, imported_at, author)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (model, version, sha256) DO NOTHING RETURNING id",
        )
        .bind(e.model.as_str())
        .bind(e.version.as_str())
        .bind(e.category.as_str())
        .bind(e.kind.as_str())
        .bind(&e.file_name)
        .bind(&e.sha256)
        .bind(size)
        .bind(&summary)
        .bind(ts(e.imported_at))
        .bind(e.author.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(be)?;
        let Some(id) = id else {
            let row = sqlx::query(
                "SELECT id, file_name FROM evidence WHERE model = $1 AND version = $2 AND sha256 = $3",
            )
            .bind(e.model.as_str())
            .bind(e.version.as_str())
            .bind(&e.sha256)
            .fetch_one(&mut *tx)
            .await
            .map_err(be)?;
            let id: i64 = row.try_get("id").map_err(be)?;
            let name: String = row.try_get("file_name").map_err(be)?;
            return Err(StoreError::Conflict(format!(
                "this file (SHA-256 {}) is already evidence #{id} ({name}) for {}@{}",
                e.sha256, e.model, e.version
            )));
        };
        sqlx::query("INSERT INTO evidence_files (evidence_id, bytes) VALUES ($1, $2)")
            .bind(id)
            .bind(e.bytes.as_slice())
            .execute(&mut *tx)
            .await
            .map_err(be)?;
        commit_audited(tx, audit).await?;
        u64::try_from(id).map_err(|err| corrupt("evidence id", err))
    }

    async fn list_evidence(
        &self,
        model: &DeviceModel,
        version: &FirmwareVersion,
    ) -> Result<Vec<StoredEvidence>, StoreError> {
        sqlx::query(
            "SELECT id, model, version, category, kind, file_name, sha256, size, summary, imported_at, author
             FROM evidence WHERE model = $1 AND version = $2 ORDER BY id",
        )
        .bind(model.as_str())
        .bind(version.as_str())
        .fetch_all(self.pool())
        .await
        .map_err(be)?
        .iter()
        .map(evidence_from)
        .collect()
    }

    async fn evidence_file(&self, id: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let Ok(id) = i64::try_from(id) else {
            return Ok(None);
        };
        sqlx::query_scalar("SELECT bytes FROM evidence_files WHERE evidence_id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(be)
    }
}
