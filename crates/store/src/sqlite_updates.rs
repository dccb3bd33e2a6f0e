//! `UpdateStore` for SQLite: releases, rollouts, device tags, director counters and update
//! reports (migration 0005).

use async_trait::async_trait;
use medsec_core::{AuditRecord, DeviceId};
use medsec_updates::{DeviceReport, ReleaseRecord, Rollout, UpdateStore};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::StoreError;
use crate::sqlite::{SqliteStore, be, commit_audited, corrupt};

fn release_from(r: &SqliteRow) -> Result<ReleaseRecord, StoreError> {
    Ok(ReleaseRecord {
        model: r.try_get("model").map_err(be)?,
        version: r.try_get("version").map_err(be)?,
        target: r.try_get("target").map_err(be)?,
        length: u64::try_from(r.try_get::<i64, _>("length").map_err(be)?)
            .map_err(|e| corrupt("release length", e))?,
        sha256: r.try_get("sha256").map_err(be)?,
        security_version: u64::try_from(r.try_get::<i64, _>("security_version").map_err(be)?)
            .map_err(|e| corrupt("security version", e))?,
        hardware_id: r.try_get("hardware_id").map_err(be)?,
        published_at: r.try_get("published_at").map_err(be)?,
    })
}

fn report_from(r: &SqliteRow) -> Result<DeviceReport, StoreError> {
    Ok(DeviceReport {
        device: r.try_get("device").map_err(be)?,
        status: r
            .try_get::<String, _>("status")
            .map_err(be)?
            .parse()
            .map_err(|e| corrupt("update status", e))?,
        detail: r.try_get("detail").map_err(be)?,
        at: r.try_get("at").map_err(be)?,
    })
}

fn rollout_from(body: &str) -> Result<Rollout, StoreError> {
    serde_json::from_str(body).map_err(|e| corrupt("rollout", e))
}

fn to_i64(what: &str, v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|e| StoreError::Refused(format!("{what} too large: {e}")))
}

#[async_trait]
impl UpdateStore for SqliteStore {
    async fn put_release(&self, r: &ReleaseRecord, audit: &AuditRecord) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO releases (model, version, target, length, sha256, security_version, hardware_id, published_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&r.model)
        .bind(&r.version)
        .bind(&r.target)
        .bind(to_i64("length", r.length)?)
        .bind(&r.sha256)
        .bind(to_i64("security version", r.security_version)?)
        .bind(&r.hardware_id)
        .bind(r.published_at)
        .execute(&mut *tx)
        .await
        .map_err(be)?;
        commit_audited(tx, audit).await
    }

    async fn get_release(
        &self,
        model: &str,
        version: &str,
    ) -> Result<Option<ReleaseRecord>, StoreError> {
        sqlx::query("SELECT * FROM releases WHERE model = ? AND version = ?")
            .bind(model)
            .bind(version)
            .fetch_optional(self.pool())
            .await
            .map_err(be)?
            .map(|r| release_from(&r))
            .transpose()
    }

    async fn list_releases(&self, model: Option<&str>) -> Result<Vec<ReleaseRecord>, StoreError> {
        sqlx::query(
            "SELECT * FROM releases WHERE ?1 IS NULL OR model = ?1 ORDER BY model, security_version, published_at",
        )
        .bind(model)
        .fetch_all(self.pool())
        .await
        .map_err(be)?
        .iter()
        .map(release_from)
        .collect()
    }

    async fn insert_rollout(&self, r: &Rollout, audit: &AuditRecord) -> Result<(), StoreError> {
        let body = serde_json::to_string(r).map_err(|e| corrupt("rollout", e))?;
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO rollouts (id, model, target, state, body, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&r.id)
        .bind(&r.model)
        .bind(&r.target)
        .bind(r.state.as_str())
        .bind(body)
        .bind(r.created_at)
        .execute(&mut *tx)
        .await
        .map_err(be)?;
        commit_audited(tx, audit).await
    }

    async fn update_rollout(&self, r: &Rollout, audit: &AuditRecord) -> Result<(), StoreError> {
        let body = serde_json::to_string(r).map_err(|e| corrupt("rollout", e))?;
        let mut tx = self.begin().await?;
        // An abort is final even against a concurrent automatic promotion.
        let done = sqlx::query(
            "UPDATE rollouts SET state = ?, body = ? WHERE id = ? AND state != 'aborted'",
        )
        .bind(r.state.as_str())
        .bind(body)
        .bind(&r.id)
        .execute(&mut *tx)
        .await
        .map_err(be)?;
        if done.rows_affected() != 1 {
            return Err(StoreError::Refused(format!(
                "rollout {} is aborted or unknown",
                r.id
            )));
        }
        commit_audited(tx, audit).await
    }

    async fn get_rollout(&self, id: &str) -> Result<Option<Rollout>, StoreError> {
        let body: Option<String> = sqlx::query_scalar("SELECT body FROM rollouts WHERE id = ?")
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(be)?;
        body.as_deref().map(rollout_from).transpose()
    }

    async fn list_rollouts(&self, model: Option<&str>) -> Result<Vec<Rollout>, StoreError> {
        let bodies: Vec<String> = sqlx::query_scalar(
            "SELECT body FROM rollouts WHERE ?1 IS NULL OR model = ?1 ORDER BY created_at, id",
        )
        .bind(model)
        .fetch_all(self.pool())
        .await
        .map_err(be)?;
        bodies.iter().map(|b| rollout_from(b)).collect()
    }

    async fn fleet(&self, model: &str) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT d.serial, group_concat(t.tag, char(10)) AS tags FROM devices d
             LEFT JOIN device_tags t ON t.model = d.model AND t.serial = d.serial
             WHERE d.model = ? AND d.status = 'active' GROUP BY d.serial ORDER BY d.serial",
        )
        .bind(model)
        .fetch_all(self.pool())
        .await
        .map_err(be)?;
        rows.iter()
            .map(|r| {
                let serial: String = r.try_get("serial").map_err(be)?;
                let tags: Option<String> = r.try_get("tags").map_err(be)?;
                Ok((
                    format!("urn:medsec:device:{model}:{serial}"),
                    tags.map(|t| t.split('\n').map(str::to_owned).collect())
                        .unwrap_or_default(),
                ))
            })
            .collect()
    }

    async fn set_device_tags(
        &self,
        device: &DeviceId,
        tags: &[String],
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM device_tags WHERE model = ? AND serial = ?")
            .bind(device.model.as_str())
            .bind(device.serial.as_str())
            .execute(&mut *tx)
            .await
            .map_err(be)?;
        for t in tags {
            sqlx::query("INSERT INTO device_tags (model, serial, tag) VALUES (?, ?, ?)")
                .bind(device.model.as_str())
                .bind(device.serial.as_str())
                .bind(t)
                .execute(&mut *tx)
                .await
                .map_err(be)?;
        }
        commit_audited(tx, audit).await
    }

    async fn device_tags(&self, device: &DeviceId) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(
            "SELECT tag FROM device_tags WHERE model = ? AND serial = ? ORDER BY tag",
        )
        .bind(device.model.as_str())
        .bind(device.serial.as_str())
        .fetch_all(self.pool())
        .await
        .map_err(be)
    }

    async fn next_counter(&self, device: &DeviceId) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let v: i64 = sqlx::query_scalar(
            "INSERT INTO director_counters (model, serial, counter) VALUES (?, ?, 1)
             ON CONFLICT (model, serial) DO UPDATE SET counter = counter + 1 RETURNING counter",
        )
        .bind(device.model.as_str())
        .bind(device.serial.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(be)?;
        tx.commit().await.map_err(be)?;
        u64::try_from(v).map_err(|e| corrupt("director counter", e))
    }

    async fn add_report(
        &self,
        rollout: &str,
        rep: &DeviceReport,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO update_reports (rollout, device, status, detail, at) VALUES (?, ?, ?, ?, ?)")
            .bind(rollout)
            .bind(&rep.device)
            .bind(rep.status.as_str())
            .bind(&rep.detail)
            .bind(rep.at)
            .execute(&mut *tx)
            .await
            .map_err(be)?;
        commit_audited(tx, audit).await
    }

    async fn latest_reports(&self, rollout: &str) -> Result<Vec<DeviceReport>, StoreError> {
        let rows = sqlx::query(
            "SELECT device, status, detail, at FROM update_reports r
             WHERE rollout = ?1 AND id = (SELECT max(id) FROM update_reports WHERE rollout = ?1 AND device = r.device)
             ORDER BY device",
        )
        .bind(rollout)
        .fetch_all(self.pool())
        .await
        .map_err(be)?;
        rows.iter().map(report_from).collect()
    }
    async fn device_report(
        &self,
        rollout: &str,
        device: &str,
    ) -> Result<Option<DeviceReport>, StoreError> {
        sqlx::query(
            "SELECT device, status, detail, at FROM update_reports WHERE rollout = ? AND device = ?
             ORDER BY id DESC LIMIT 1",
        )
        .bind(rollout)
        .bind(device)
        .fetch_optional(self.pool())
        .await
        .map_err(be)?
        .map(|r| report_from(&r))
        .transpose()
    }
}
