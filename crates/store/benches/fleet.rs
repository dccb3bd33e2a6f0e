//! Fleet read-model benchmark: 100,000 devices and 1,000,000 certificates in a SQLite file,
//! then p50/p99 server-side latency of the dashboard's queries (`FleetStore` on `SqliteStore`).
//!
//! Run: `cargo bench -p medsec-store --bench fleet`. Set `FLEET_BENCH_DB=/path/file.db` to keep
//! the seeded database (and reuse it on the next run) for EXPLAIN QUERY PLAN sessions.
//!
//! Seeding bypasses the CA and the other services on purpose: issuing a million certificates
//! through `medsec_ca::Ca` would measure ECDSA signing for minutes (bench/RESULTS.md has that
//! number). Rows go in with batched multi-row INSERTs inside large transactions; the
//! certificate rows carry a 480-byte placeholder DER (the size of a real P-256 device
//! certificate) so that pages of the certificate table are as full as in production. The
//! migration-0010 triggers run during seeding exactly as they do on issuance, so the
//! current-certificate table is built the way production builds it.
//!
//! Data shape (deterministic, from a fixed seed):
//! - 20 models x 5,000 devices; 1% retired (all their certificates revoked);
//! - 10 certificates per device, a yearly renewal chain: nine expired predecessors (20% of them
//!   revoked as superseded) and a current one expiring 0..400 days from now; 3% of devices hold
//!   only expired certificates, 1% only revoked ones; 10% of certificates from a second issuer;
//! - 8 firmware versions per model (the oldest three past end of support), 95% of devices
//!   reporting one, skewed to newer versions; an SBOM and a release (security_version 1..8)
//!   per version, an active rollout of the newest release for half the models;
//! - findings per version: older versions carry more (5 to 40 open vulnerabilities on 1 to 12
//!   components), 1 in 12 KEV-listed and 1 in 10 critical, each fixed from some later version
//!   on; 10% of findings closed by a not_affected decision.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use medsec_core::DeviceModel;
use medsec_fleet::{CertQuery, CertStatus, Cursor, FleetQuery, FleetStore};
use medsec_store::{SqliteStore, Synchronous};

#[path = "common/seed.rs"]
mod seed;
use seed::*;
use sqlx::{QueryBuilder, Sqlite};
use time::OffsetDateTime;

const RUNS: usize = 200;

/// What migration 0010 costs writers: certificate inserts as issuance writes them (multi-row,
/// 256 a transaction, for existing devices; after a warm-up round), with everything, without
/// the certificate trigger, and without the two certificate indexes too. Returns microseconds
/// per certificate for each. Changes the schema: only for a throw-away database.
async fn write_overhead(store: &SqliteStore, now: i64) -> [f64; 3] {
    let devices: Vec<(String, String)> = sqlx::query_as(
        "SELECT model, serial FROM devices WHERE status = 'active' ORDER BY serial LIMIT 10000",
    )
    .fetch_all(store.pool())
    .await
    .expect("devices");
    let mut conn = store.pool().acquire().await.expect("connection");
    let conn = &mut *conn;
    let rows: Vec<(usize, &(String, String))> =
        devices.iter().flat_map(|d| [d, d]).enumerate().collect();
    let mut per_cert = [0.0; 3];
    for (round, tag) in ['a', 'b', 'c', 'd'].into_iter().enumerate() {
        let drop = match round {
            2 => "DROP TRIGGER fleet_devices_cert_insert",
            3 => "DROP INDEX certs_issuer_serial; DROP INDEX certs_unrevoked_expiry",
            _ => "",
        };
        sqlx::raw_sql(drop).execute(&mut *conn).await.expect("drop");
        let started = Instant::now();
        for batch in rows.chunks(256) {
            sqlx::raw_sql("BEGIN IMMEDIATE")
                .execute(&mut *conn)
                .await
                .expect("begin");
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO certs (serial, issuer, device_model, device_serial, profile, kind, subject,
                    key_algorithm, spki_sha256, not_before, not_after, issued_at, der) ",
            );
            q.push_values(batch, |mut b, (i, (m, sn))| {
                b.push_bind(format!("f{tag}{i:08x}"))
                    .push("'issuing-a'")
                    .push_bind(m.clone())
                    .push_bind(sn.clone())
                    .push("'device'")
                    .push("'renew'")
                    .push("'CN=x'")
                    .push("'ecdsa-p256'")
                    .push("'00'")
                    .push_bind(now)
                    .push_bind(now + 365 * DAY)
                    .push_bind(now)
                    .push("zeroblob(480)");
            });
            q.build().execute(&mut *conn).await.expect("insert");
            sqlx::raw_sql("COMMIT")
                .execute(&mut *conn)
                .await
                .expect("commit");
        }
        if round > 0 {
            per_cert[round - 1] = started.elapsed().as_secs_f64() * 1e6 / rows.len() as f64;
        }
    }
    per_cert
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)].as_secs_f64() * 1e3
}

async fn measure<F, Fut>(name: &str, mut f: F) -> (String, f64, f64, f64)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    // One warm-up call: the first call after seeding pays for reading pages into the cache.
    let rows = f(0).await;
    let mut t = Vec::with_capacity(RUNS);
    for i in 0..RUNS {
        let s = Instant::now();
        std::hint::black_box(f(i + 1).await);
        t.push(s.elapsed());
    }
    t.sort();
    let (p50, p99, max) = (pct(&t, 0.5), pct(&t, 0.99), pct(&t, 1.0));
    println!("{name:<52} {rows:>6} {p50:>9.2} {p99:>9.2} {max:>9.2}");
    (name.to_owned(), p50, p99, max)
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
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
        seed(&store, now.unix_timestamp()).await;
    }
    let (devices, certs): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM devices), (SELECT count(*) FROM certs)")
            .fetch_one(store.pool())
            .await
            .expect("counts");
    let findings: i64 = sqlx::query_scalar("SELECT count(*) FROM findings")
        .fetch_one(store.pool())
        .await
        .expect("findings");
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "database: {devices} devices, {certs} certificates, {findings} findings, {:.0} MiB",
        size as f64 / 1_048_576.0
    );
    println!(
        "{:<52} {:>6} {:>9} {:>9} {:>9}",
        "query (200 calls each)", "rows", "p50 ms", "p99 ms", "max ms"
    );

    let m3 = DeviceModel::parse(&model(3)).expect("model");
    let store = &store;
    let mut results = Vec::new();

    results.push(
        measure("fleet_page: first page (50)", |_| async move {
            let p = store
                .fleet_page(&FleetQuery::default(), now)
                .await
                .expect("page");
            p.rows.len()
        })
        .await,
    );
    let m3c = m3.clone();
    results.push(
        measure("fleet_page: model + cert_status=expiring", |_| {
            let q = FleetQuery {
                model: Some(m3c.clone()),
                cert_status: Some(CertStatus::Expiring),
                ..FleetQuery::default()
            };
            async move { store.fleet_page(&q, now).await.expect("page").rows.len() }
        })
        .await,
    );
    let m3c = m3.clone();
    results.push(
        measure("fleet_page: model + cert_status=revoked", |_| {
            let q = FleetQuery {
                model: Some(m3c.clone()),
                cert_status: Some(CertStatus::Revoked),
                ..FleetQuery::default()
            };
            async move { store.fleet_page(&q, now).await.expect("page").rows.len() }
        })
        .await,
    );
    results.push(
        measure("fleet_page: firmware + past end of support", |_| {
            let q = FleetQuery {
                firmware: Some(medsec_core::FirmwareVersion::parse("1.1").expect("v")),
                past_end_of_support: true,
                ..FleetQuery::default()
            };
            async move { store.fleet_page(&q, now).await.expect("page").rows.len() }
        })
        .await,
    );
    // Four hex digits: a handful of matches among 100,000 serials, so the whole device index
    // is searched (the worst case for a substring).
    let mut hits = 0;
    results.push(
        measure("fleet_page: serial search (4 chars, rotating)", |i| {
            let term = format!("{:04x}", (mix32(i as u32 + 7) & 0xffff));
            let q = FleetQuery {
                search: Some(term),
                ..FleetQuery::default()
            };
            async move { store.fleet_page(&q, now).await.expect("page").rows.len() }
        })
        .await,
    );
    for i in 0..20 {
        let q = FleetQuery {
            search: Some(format!("{:04x}", (mix32(i + 7) & 0xffff))),
            ..FleetQuery::default()
        };
        hits += store.fleet_page(&q, now).await.expect("page").rows.len();
    }
    eprintln!("(serial search: {hits} rows over 20 terms)");

    // Page 50 of the unfiltered fleet: walk 49 pages once for the cursor, then time page 50.
    let mut q = FleetQuery::default();
    let walk = Instant::now();
    for _ in 0..49 {
        let p = store.fleet_page(&q, now).await.expect("page");
        q.after = p.next;
    }
    let walked = walk.elapsed();
    let cursor: Option<Cursor> = q.after.clone();
    results.push(
        measure("fleet_page: page 50 via cursor", |_| {
            let q = FleetQuery {
                after: cursor.clone(),
                ..FleetQuery::default()
            };
            async move { store.fleet_page(&q, now).await.expect("page").rows.len() }
        })
        .await,
    );
    eprintln!(
        "(walking pages 1..49: {:.1} ms in total)",
        walked.as_secs_f64() * 1e3
    );
    results.push(
        measure("fleet_summary", |_| async move {
            let s = store.fleet_summary(now).await.expect("summary");
            assert_eq!(
                s.cert_status.total(),
                s.devices,
                "every device in the field has one status"
            );
            s.by_firmware.len()
        })
        .await,
    );
    results.push(
        measure("cert_page: first page (50)", |_| async move {
            store
                .cert_page(&CertQuery::default(), now)
                .await
                .expect("certs")
                .rows
                .len()
        })
        .await,
    );
    results.push(
        measure("cert_page: issuer + expiring 30 d", |_| async move {
            let q = CertQuery {
                issuer: medsec_core::Name::parse("issuing-b").ok(),
                expiring_within_days: Some(30),
                ..CertQuery::default()
            };
            store.cert_page(&q, now).await.expect("certs").rows.len()
        })
        .await,
    );
    results.push(
        measure("cert_page: revoked", |_| async move {
            let q = CertQuery {
                revoked: Some(true),
                ..CertQuery::default()
            };
            store.cert_page(&q, now).await.expect("certs").rows.len()
        })
        .await,
    );
    results.push(
        measure("cert_page: device search (4 chars, rotating)", |i| {
            let q = CertQuery {
                search: Some(format!("{:04x}", (mix32(i as u32 + 7) & 0xffff))),
                ..CertQuery::default()
            };
            async move { store.cert_page(&q, now).await.expect("certs").rows.len() }
        })
        .await,
    );
    results.push(
        measure("cert_page: device search (1 char, broad)", |i| {
            let q = CertQuery {
                search: Some(format!("{:x}", i % 16)),
                ..CertQuery::default()
            };
            async move { store.cert_page(&q, now).await.expect("certs").rows.len() }
        })
        .await,
    );
    results.push(
        measure("fleet_risk (30 d, top 50)", |_| async move {
            store.fleet_risk(now, 30, 50).await.expect("risk").len()
        })
        .await,
    );
    results.push(
        measure("device_count", |_| async move {
            store.device_count().await.expect("count") as usize
        })
        .await,
    );
    let worst = results.iter().map(|r| r.2).fold(0.0_f64, f64::max);
    println!(
        "worst p99: {worst:.2} ms; peak RSS: {:.1} MiB",
        peak_rss_mib()
    );
    if kept.is_none() {
        let [all, no_trigger, neither] = write_overhead(store, now.unix_timestamp()).await;
        println!(
            "certificate insert, 256 a transaction (us/cert): {all:.1} with migration 0010, \
             {no_trigger:.1} without its certificate trigger, {neither:.1} without its two \
             certificate indexes too"
        );
    }
}
