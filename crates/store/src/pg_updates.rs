//! `UpdateStore` for PostgreSQL: releases, rollouts, device tags, director counters and update
//! reports (migration 0005), safe with several replicas writing at once.
//!
//! The director reads a rollout, decides (an operator's pause, an automatic promotion) and
//! writes the whole rollout back. With replicas racing, the write is checked under the row's
//! lock against what is stored now: it must be one legal step from there, so a decision taken
//! on a stale read is refused instead of silently undoing another (a pause erasing a
//! promotion, a promotion resuming a paused rollout), and a step another replica already took
//! is not taken (or audited) twice.

use async_trait::async_trait;
use medsec_core::{AuditRecord, DeviceId};
use medsec_updates::{DeviceReport, ReleaseRecord, Rollout, RolloutState, UpdateStore};
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::StoreError;
use crate::pg::{PgStore, be, commit_audited};
use crate::sqlite::corrupt;

fn release_from(r: &PgRow) -> Result<ReleaseRecord, StoreError> {
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

fn report_from(r: &PgRow) -> Result<DeviceReport, StoreError> {
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

/// Whether `a` and `b` are the same rollout apart from state and stage, which alone change
/// after creation. Rates are compared with a little slack: they went through JSON text.
fn same_rollout(a: &Rollout, b: &Rollout) -> bool {
    // Destructured without `..`, so a field added to `Rollout` must be considered here.
    let Rollout {
        id,
        model,
        target,
        length,
        sha256,
        security_version,
        cohort,
        stages,
        current_stage: _,
        state: _,
        promote_success_rate,
        halt_failure_rate,
        min_reports,
        created_at,
    } = a;
    let close = |x: f64, y: f64| (x - y).abs() <= 1e-12;
    *id == b.id
        && *model == b.model
        && *target == b.target
        && *length == b.length
        && *sha256 == b.sha256
        && *security_version == b.security_version
        && *cohort == b.cohort
        && *stages == b.stages
        && close(*promote_success_rate, b.promote_success_rate)
        && close(*halt_failure_rate, b.halt_failure_rate)
        && *min_reports == b.min_reports
        && *created_at == b.created_at
}

/// Whether `new` is one step the director may take from `cur`: an operator control (same
/// stage, the moves `Rollout::control` allows), or an automatic promotion, halt or completion
/// of an active rollout (`Rollout::evaluate`).
fn one_step(cur: &Rollout, new: &Rollout) -> bool {
    use RolloutState::*;
    let stage = new.current_stage;
    let control = stage == cur.current_stage
        && matches!(
            (cur.state, new.state),
            (Active, Paused) | (Paused | Halted, Active) | (Active | Paused | Halted, Aborted)
        );
    let automatic = cur.state == Active
        && ((new.state == Active && stage == cur.current_stage + 1 && stage < cur.stages.len())
            || (matches!(new.state, Halted | Completed) && stage == cur.current_stage));
    control || automatic
}

#[async_trait]
impl UpdateStore for PgStore {
    async fn put_release(&self, r: &ReleaseRecord, audit: &AuditRecord) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO releases (model, version, target, length, sha256, security_version, hardware_id, published_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
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
        sqlx::query("SELECT * FROM releases WHERE model = $1 AND version = $2")
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
            "SELECT * FROM releases WHERE $1::text IS NULL OR model = $1
             ORDER BY model COLLATE \"C\", security_version, published_at",
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
            "INSERT INTO rollouts (id, model, target, state, body, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
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
        let stored: Option<String> =
            sqlx::query_scalar("SELECT body FROM rollouts WHERE id = $1 FOR UPDATE")
                .bind(&r.id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(be)?;
        // An abort is final even against a concurrent automatic promotion, and a repeated
        // abort is refused as on SQLite.
        let cur = stored
            .as_deref()
            .map(rollout_from)
            .transpose()?
            .filter(|c| c.state != RolloutState::Aborted);
        let Some(cur) = cur else {
            return Err(StoreError::Refused(format!(
                "rollout {} is aborted or unknown",
                r.id
            )));
        };
        if !same_rollout(&cur, r) {
            return Err(StoreError::Refused(format!(
                "rollout {}: only its state and stage can change",
                r.id
            )));
        }
        if (cur.state, cur.current_stage) == (r.state, r.current_stage) {
            // Another replica took this very step from the same read: it is done, once.
            return Ok(());
        }
        if !one_step(&cur, r) {
            return Err(StoreError::Refused(format!(
                "rollout {} changed meanwhile: it is now {} at stage {}, and {} at stage {} does not follow from that",
                r.id, cur.state, cur.current_stage, r.state, r.current_stage
            )));
        }
        sqlx::query("UPDATE rollouts SET state = $1, body = $2 WHERE id = $3")
            .bind(r.state.as_str())
            .bind(body)
            .bind(&r.id)
            .execute(&mut *tx)
            .await
            .map_err(be)?;
        commit_audited(tx, audit).await
    }

    async fn get_rollout(&self, id: &str) -> Result<Option<Rollout>, StoreError> {
        let body: Option<String> = sqlx::query_scalar("SELECT body FROM rollouts WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(be)?;
        body.as_deref().map(rollout_from).transpose()
    }

    async fn list_rollouts(&self, model: Option<&str>) -> Result<Vec<Rollout>, StoreError> {
        let bodies: Vec<String> = sqlx::query_scalar(
            "SELECT body FROM rollouts WHERE $1::text IS NULL OR model = $1
             ORDER BY created_at, id COLLATE \"C\"",
        )
        .bind(model)
        .fetch_all(self.pool())
        .await
        .map_err(be)?;
        bodies.iter().map(|b| rollout_from(b)).collect()
    }

    async fn fleet(&self, model: &str) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT d.serial, string_agg(t.tag, E'\\n' ORDER BY t.tag COLLATE \"C\") AS tags FROM devices d
             LEFT JOIN device_tags t ON t.model = d.model AND t.serial = d.serial
             WHERE d.model = $1 AND d.status = 'active' GROUP BY d.serial ORDER BY d.serial COLLATE \"C\"",
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
        // Two replicas replacing one device's tags would otherwise each delete only the rows
        // they saw and end with the union (or a duplicate-key error): the device row's lock
        // makes the second replacement start from the first's result. NO KEY UPDATE leaves
        // rows referencing the device insertable meanwhile.
        sqlx::query("SELECT 1 FROM devices WHERE model = $1 AND serial = $2 FOR NO KEY UPDATE")
            .bind(device.model.as_str())
            .bind(device.serial.as_str())
            .execute(&mut *tx)
            .await
            .map_err(be)?;
        sqlx::query("DELETE FROM device_tags WHERE model = $1 AND serial = $2")
            .bind(device.model.as_str())
            .bind(device.serial.as_str())
            .execute(&mut *tx)
            .await
            .map_err(be)?;
        if !tags.is_empty() {
            // A tag given twice is refused by the primary key (Conflict), as on SQLite.
            sqlx::query(
                "INSERT INTO device_tags (model, serial, tag)
                 SELECT $1, $2, t FROM unnest($3::text[]) AS t",
            )
            .bind(device.model.as_str())
            .bind(device.serial.as_str())
            .bind(tags)
            .execute(&mut *tx)
            .await
            .map_err(be)?;
        }
        commit_audited(tx, audit).await
    }

    async fn device_tags(&self, device: &DeviceId) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(
            "SELECT tag FROM device_tags WHERE model = $1 AND serial = $2 ORDER BY tag COLLATE \"C\"",
        )
        .bind(device.model.as_str())
        .bind(device.serial.as_str())
        .fetch_all(self.pool())
        .await
        .map_err(be)
    }

    async fn next_counter(&self, device: &DeviceId) -> Result<u64, StoreError> {
        // One statement: the upsert takes the row lock, so replicas never hand out one value twice.
        let v: i64 = sqlx::query_scalar(
            "INSERT INTO director_counters (model, serial, counter) VALUES ($1, $2, 1)
             ON CONFLICT (model, serial) DO UPDATE SET counter = director_counters.counter + 1
             RETURNING counter",
        )
        .bind(device.model.as_str())
        .bind(device.serial.as_str())
        .fetch_one(self.pool())
        .await
        .map_err(be)?;
        u64::try_from(v).map_err(|e| corrupt("director counter", e))
    }

    async fn add_report(
        &self,
        rollout: &str,
        rep: &DeviceReport,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO update_reports (rollout, device, status, detail, at) VALUES ($1, $2, $3, $4, $5)",
        )
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
            "SELECT DISTINCT ON (device COLLATE \"C\") device, status, detail, at FROM update_reports
             WHERE rollout = $1 ORDER BY device COLLATE \"C\", id DESC",
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
            "SELECT device, status, detail, at FROM update_reports WHERE rollout = $1 AND device = $2
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
