//! Running as one of several replicas on a shared database: each periodic job runs on one
//! replica per period, claimed through the store (`medsec_core::JobLeases`).
//!
//! Without a lease store (SQLite, one process) every job simply runs. With one, a replica
//! claims `(job, period)` before running; the store's uniqueness picks exactly one claimant, and
//! a replica that dies holding a claim only loses that period: the next is claimed by a
//! survivor.

use std::future::Future;

use time::OffsetDateTime;

use crate::AppState;

/// A name for this process among the replicas: host, PID and a random suffix (PIDs repeat
/// across containers).
pub fn replica_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "medsec".into());
    let mut r = [0u8; 4];
    // A failed RNG only makes the suffix zero: the PID still tells processes apart on a host.
    let _ = aws_lc_rs::rand::fill(&mut r);
    format!("{host}-{}-{}", std::process::id(), hex::encode(r))
}

/// Runs `job` for `period` unless another replica claimed it first. `None`: not run here.
pub(crate) async fn once<S, F, Fut>(
    state: &AppState<S>,
    job: &str,
    period: i64,
    run: F,
) -> Option<bool>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = bool>,
{
    let Some(leases) = state.leases.as_deref() else {
        return Some(run().await);
    };
    let now = OffsetDateTime::now_utc().unix_timestamp();
    match leases.claim_run(job, period, &state.replica, now).await {
        Ok(true) => {}
        Ok(false) => return None,
        Err(e) => {
            // Not running is the safe side: another replica, or the next period, will.
            tracing::warn!("claiming job {job} for period {period} failed: {e}");
            return None;
        }
    }
    let ok = run().await;
    let done = OffsetDateTime::now_utc().unix_timestamp();
    if let Err(e) = leases.finish_run(job, period, ok, done).await {
        tracing::warn!("recording job {job} for period {period} failed: {e}");
    }
    Some(ok)
}
