//! The job-lease story on both back ends: one claim per (job, period), recorded with its
//! outcome; on PostgreSQL, replicas racing for the same period get exactly one winner.

mod common;

use medsec_core::JobLeases;
use medsec_store::{SqliteStore, Synchronous};

async fn lease_story<S: JobLeases>(s: &S) {
    assert!(
        s.claim_run("crl-refresh", 120, "replica-a", 121)
            .await
            .unwrap()
    );
    assert!(
        !s.claim_run("crl-refresh", 120, "replica-b", 122)
            .await
            .unwrap(),
        "a period is claimed once"
    );
    assert!(
        s.claim_run("purge-events", 120, "replica-b", 122)
            .await
            .unwrap(),
        "jobs are independent"
    );
    s.finish_run("crl-refresh", 120, true, 125).await.unwrap();
    assert!(
        s.claim_run("crl-refresh", 150, "replica-b", 151)
            .await
            .unwrap()
    );
    let runs = s.job_runs("crl-refresh", 10).await.unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(
        (runs[0].period, runs[0].holder.as_str()),
        (150, "replica-b")
    );
    assert_eq!(runs[0].ok, None, "still running (or its replica died)");
    assert_eq!((runs[1].finished_at, runs[1].ok), (Some(125), Some(true)));
    assert_eq!(
        s.prune_runs(150).await.unwrap(),
        2,
        "both runs of period 120"
    );
    assert_eq!(s.job_runs("crl-refresh", 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn sqlite_lease_story() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("medsec.db"), Synchronous::Full)
        .await
        .unwrap();
    lease_story(&s).await;
}

#[tokio::test]
async fn pg_lease_story() {
    lease_story(&common::pg().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_replicas_claim_each_period_once() {
    let url = medsec_store::pg_cluster::Cluster::fresh_database().unwrap();
    let a = medsec_store::PgStore::connect(&url, &Default::default())
        .await
        .unwrap();
    let b = medsec_store::PgStore::connect(&url, &Default::default())
        .await
        .unwrap();
    for period in [0_i64, 30, 60] {
        let mut tasks = Vec::new();
        for i in 0..40 {
            let s = if i % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(async move {
                s.claim_run("crl-refresh", period, &format!("replica-{i}"), period + 1)
                    .await
                    .unwrap()
            }));
        }
        let mut won = 0;
        for t in tasks {
            won += usize::from(t.await.unwrap());
        }
        assert_eq!(won, 1, "period {period}");
    }
    assert_eq!(a.job_runs("crl-refresh", 10).await.unwrap().len(), 3);
}
