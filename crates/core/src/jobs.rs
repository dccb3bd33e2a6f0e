//! Periodic jobs shared by server replicas: the storage trait through which N replicas on one
//! database agree that each job runs once per period.
//!
//! A run is claimed by inserting its `(job, period)` key: the database's uniqueness decides the
//! one replica that runs it, whatever the clocks or the timing. A replica that dies mid-run
//! loses that period's run (it is recorded as started and never finished); the next period is
//! claimed by a survivor. Claims are records, so operators and tests see who ran what.

use crate::StoreError;

/// One claimed run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRun {
    pub job: String,
    /// The period's key: its start in unix seconds for clocked jobs, or another value every
    /// replica derives alike (e.g. a digest of the state that triggered the run).
    pub period: i64,
    /// Which replica ran it.
    pub holder: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub ok: Option<bool>,
}

/// The start of the period of length `period_secs` that contains `now` (both unix seconds).
pub fn period_start(now: i64, period_secs: i64) -> i64 {
    let p = period_secs.max(1);
    now - now.rem_euclid(p)
}

/// Claims and records job runs. Implemented by every store back end.
#[async_trait::async_trait]
pub trait JobLeases: Send + Sync {
    /// Claims `(job, period)` for `holder`. True for exactly one caller across every replica
    /// sharing the store; false when another replica (or this one) already has.
    async fn claim_run(
        &self,
        job: &str,
        period: i64,
        holder: &str,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Records how a claimed run ended.
    async fn finish_run(
        &self,
        job: &str,
        period: i64,
        ok: bool,
        now: i64,
    ) -> Result<(), StoreError>;
    /// The newest runs of `job`, newest first.
    async fn job_runs(&self, job: &str, limit: u32) -> Result<Vec<JobRun>, StoreError>;
    /// Forgets runs started before `before` (the history is for operators, not an archive).
    async fn prune_runs(&self, before: i64) -> Result<u64, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_align_and_tolerate_nonsense() {
        assert_eq!(period_start(125, 30), 120);
        assert_eq!(period_start(120, 30), 120);
        assert_eq!(period_start(-5, 30), -30);
        assert_eq!(period_start(7, 0), 7, "a zero period is one second");
    }
}
