//! `JobLeases` on both back ends: a run is claimed by inserting its `(job, period)` key, so the
//! database's uniqueness picks the one runner among replicas.

use async_trait::async_trait;
use medsec_core::{JobLeases, JobRun};
use sqlx::Row;

use crate::{PgStore, SqliteStore, StoreError};

fn run_from_sqlite(r: &sqlx::sqlite::SqliteRow) -> Result<JobRun, StoreError> {
    let be = crate::sqlite::be;
    Ok(JobRun {
        job: r.try_get("job").map_err(be)?,
        period: r.try_get("period").map_err(be)?,
        holder: r.try_get("holder").map_err(be)?,
        started_at: r.try_get("started_at").map_err(be)?,
        finished_at: r.try_get("finished_at").map_err(be)?,
        ok: r
            .try_get::<Option<i64>, _>("ok")
            .map_err(be)?
            .map(|v| v != 0),
    })
}

#[async_trait]
impl JobLeases for SqliteStore {
    async fn claim_run(
        &self,
        job: &str,
        period: i64,
        holder: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "INSERT INTO job_runs (job, period, holder, started_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (job, period) DO NOTHING",
        )
        .bind(job)
        .bind(period)
        .bind(holder)
        .bind(now)
        .execute(self.pool())
        .await
        .map_err(crate::sqlite::be)?;
        Ok(r.rows_affected() == 1)
    }

    async fn finish_run(
        &self,
        job: &str,
        period: i64,
        ok: bool,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE job_runs SET finished_at = ?, ok = ? WHERE job = ? AND period = ?")
            .bind(now)
            .bind(i64::from(ok))
            .bind(job)
            .bind(period)
            .execute(self.pool())
            .await
            .map_err(crate::sqlite::be)?;
        Ok(())
    }

    async fn job_runs(&self, job: &str, limit: u32) -> Result<Vec<JobRun>, StoreError> {
        sqlx::query(
            "SELECT * FROM job_runs WHERE job = ? ORDER BY started_at DESC, period DESC LIMIT ?",
        )
        .bind(job)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(crate::sqlite::be)?
        .iter()
        .map(run_from_sqlite)
        .collect()
    }

    async fn prune_runs(&self, before: i64) -> Result<u64, StoreError> {
        let r = sqlx::query("DELETE FROM job_runs WHERE started_at < ?")
            .bind(before)
            .execute(self.pool())
            .await
            .map_err(crate::sqlite::be)?;
        Ok(r.rows_affected())
    }
}

#[async_trait]
impl JobLeases for PgStore {
    async fn claim_run(
        &self,
        job: &str,
        period: i64,
        holder: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "INSERT INTO job_runs (job, period, holder, started_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (job, period) DO NOTHING",
        )
        .bind(job)
        .bind(period)
        .bind(holder)
        .bind(now)
        .execute(self.pool())
        .await
        .map_err(crate::pg::be)?;
        Ok(r.rows_affected() == 1)
    }

    async fn finish_run(
        &self,
        job: &str,
        period: i64,
        ok: bool,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE job_runs SET finished_at = $1, ok = $2 WHERE job = $3 AND period = $4")
            .bind(now)
            .bind(ok)
            .bind(job)
            .bind(period)
            .execute(self.pool())
            .await
            .map_err(crate::pg::be)?;
        Ok(())
    }

    async fn job_runs(&self, job: &str, limit: u32) -> Result<Vec<JobRun>, StoreError> {
        let be = crate::pg::be;
        sqlx::query(
            "SELECT * FROM job_runs WHERE job = $1 ORDER BY started_at DESC, period DESC LIMIT $2",
        )
        .bind(job)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(be)?
        .iter()
        .map(|r| {
            Ok(JobRun {
                job: r.try_get("job").map_err(be)?,
                period: r.try_get("period").map_err(be)?,
                holder: r.try_get("holder").map_err(be)?,
                started_at: r.try_get("started_at").map_err(be)?,
                finished_at: r.try_get("finished_at").map_err(be)?,
                ok: r.try_get("ok").map_err(be)?,
            })
        })
        .collect()
    }

    async fn prune_runs(&self, before: i64) -> Result<u64, StoreError> {
        let r = sqlx::query("DELETE FROM job_runs WHERE started_at < $1")
            .bind(before)
            .execute(self.pool())
            .await
            .map_err(crate::pg::be)?;
        Ok(r.rows_affected())
    }
}
