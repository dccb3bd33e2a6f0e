//! Dashboard handler benchmark: the fleet, fleet-risk and certificate pages served from 100,000
//! devices and 1,000,000 certificates, timed from request to the last byte of rendered HTML.
//!
//! Run: `cargo bench -p medsec-server --bench fleet_pages` (set `FLEET_BENCH_DB=/path/file.db`
//! to reuse the database the store-level `fleet` benchmark seeded). The requests go through
//! the HTTPS listener's real application (`https_app`: routing, session lookup, security
//! headers, the handler, maud rendering) with tower's `oneshot`, so what is measured is server
//! time without TLS and socket IO, as the issue asks ("server time p50/p99").

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::body::Body;
use http_body_util::BodyExt;
use medsec_auth::Role;
use medsec_auth::users::{self, SessionPolicy};
use medsec_ca::Ca;
use medsec_core::Actor;
use medsec_keys::{EncryptedFileKeySource, KdfParams, Passphrase};
use medsec_server::{AppState, AuditRow, AuditView, https_app};
use medsec_store::{SqliteStore, Synchronous};
use time::OffsetDateTime;
use tower::ServiceExt;

#[path = "../../store/benches/common/seed.rs"]
mod seed;

const RUNS: usize = 200;

/// The pages measured here never read the audit log.
struct NoAudit;

#[async_trait]
impl AuditView for NoAudit {
    async fn verify(&self) -> Result<u64, String> {
        Ok(0)
    }
    async fn page(&self, _after: i64, _limit: u32) -> Result<Vec<AuditRow>, String> {
        Ok(Vec::new())
    }
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run());
}

async fn run() {
    let kept = std::env::var_os("FLEET_BENCH_DB").map(PathBuf::from);
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = kept.clone().unwrap_or_else(|| tmp.path().join("fleet.db"));
    let reuse = kept.is_some() && path.exists();
    let store = SqliteStore::open(&path, Synchronous::DangerNormal)
        .await
        .expect("open");
    let now = OffsetDateTime::now_utc();
    if !reuse {
        seed::seed(&store, now.unix_timestamp()).await;
    }
    let pass = Passphrase::new(b"fleet pages benchmark".to_vec()).expect("passphrase");
    let keys = EncryptedFileKeySource::new(tmp.path().join("keys"), pass)
        .with_kdf(KdfParams {
            m_kib: 19 * 1024,
            t: 2,
            p: 1,
        })
        .expect("keys");
    let ca = Ca::new(store.clone(), Arc::new(keys));
    let actor = Actor::parse("bench:fleet-pages").expect("actor");
    let policy = SessionPolicy::default();
    let name = format!("bench{}", now.unix_timestamp());
    users::create_user(
        &store,
        &name,
        "benchmark password 1",
        Role::Auditor,
        &actor,
        now,
    )
    .await
    .expect("user");
    let session = users::sign_in(&store, &name, "benchmark password 1", now, &policy)
        .await
        .expect("sign in");
    let auth: Arc<dyn medsec_auth::AuthStore> = Arc::new(store.clone());
    let state = Arc::new(AppState::new(ca, None, auth).with_dashboard(
        Arc::new(store.clone()),
        Arc::new(store.clone()),
        Arc::new(NoAudit),
    ));
    let app = https_app(state);
    let cookie = format!("__Host-medsec-session={}", session.cookie_value);

    println!(
        "{:<58} {:>9} {:>9} {:>9} {:>9}",
        "page (200 requests each)", "KiB", "p50 ms", "p99 ms", "max ms"
    );
    let pages = [
        (
            "/ui/ (fleet: summary, charts, first page)",
            "/ui/".to_string(),
        ),
        (
            "/ui/?model=model-03&status=expiring",
            "/ui/?model=model-03&status=expiring".to_string(),
        ),
        ("/ui/?q=SN1A (serial search)", "/ui/?q=SN1A".to_string()),
        (
            "/ui/fleet-risk (ranked, top 200)",
            "/ui/fleet-risk".to_string(),
        ),
        (
            "/ui/pki (CAs, profiles, certificates page)",
            "/ui/pki".to_string(),
        ),
        ("/ui/pki?expiring=30", "/ui/pki?expiring=30".to_string()),
    ];
    for (label, uri) in pages {
        let mut times = Vec::with_capacity(RUNS);
        let mut size = 0;
        for _ in 0..RUNS {
            let req = axum::http::Request::get(&uri)
                .header("cookie", &cookie)
                .body(Body::empty())
                .expect("request");
            let t = Instant::now();
            let res = app.clone().oneshot(req).await.expect("response");
            let status = res.status();
            let body = res.into_body().collect().await.expect("body").to_bytes();
            times.push(t.elapsed());
            assert!(
                status.is_success(),
                "{uri}: {status}: {}",
                String::from_utf8_lossy(&body)
            );
            size = body.len();
        }
        times.sort();
        println!(
            "{:<58} {:>9.1} {:>9.2} {:>9.2} {:>9.2}",
            label,
            size as f64 / 1024.0,
            pct(&times, 0.5),
            pct(&times, 0.99),
            times
                .last()
                .map(|d| d.as_secs_f64() * 1000.0)
                .unwrap_or(0.0)
        );
    }
}
