//! The fleet benchmarks' data set: 100,000 devices and 1,000,000 certificates seeded into a
//! SQLite store by batched SQL (see `fleet.rs` for its shape). Shared by the store-level
//! benchmark here and the dashboard-handler benchmark in `medsec-server`.

#![allow(dead_code)]

use std::time::Instant;

use medsec_store::SqliteStore;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};
use time::OffsetDateTime;

pub const MODELS: usize = 20;
pub const DEVICES_PER_MODEL: usize = 5_000;
pub const CERTS_PER_DEVICE: usize = 10;
pub const VERSIONS: usize = 8;
pub const DAY: i64 = 86_400;

/// SplitMix64: deterministic, dependency-free.
pub struct Rng(u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A bijection on u32, so device serials look random but never collide.
pub fn mix32(mut x: u32) -> u32 {
    x = (x ^ (x >> 16)).wrapping_mul(0x7feb_352d);
    x = (x ^ (x >> 15)).wrapping_mul(0x846c_a68b);
    x ^ (x >> 16)
}

pub fn model(m: usize) -> String {
    format!("model-{m:02}")
}

pub fn serial(i: usize) -> String {
    format!("SN{:08X}", mix32(i as u32))
}

pub fn version(v: usize) -> String {
    format!("1.{v}")
}

/// Runs a multi-row INSERT of `rows` in chunks that stay under SQLite's parameter limit.
pub async fn insert_rows<T>(
    conn: &mut SqliteConnection,
    head: &str,
    rows: &[T],
    cols: usize,
    push: impl Fn(sqlx::query_builder::Separated<'_, Sqlite, &'static str>, &T),
) {
    let per = 32_000 / cols;
    for chunk in rows.chunks(per) {
        let mut q = QueryBuilder::<Sqlite>::new(head);
        q.push_values(chunk, &push);
        q.build().execute(&mut *conn).await.expect("insert");
    }
}

pub struct Cert {
    pub serial: String,
    pub issuer: &'static str,
    pub model: String,
    pub device: String,
    pub not_before: i64,
    pub not_after: i64,
    pub revoked_at: Option<i64>,
}

pub async fn seed(store: &SqliteStore, now: i64) {
    let started = Instant::now();
    let mut conn = store.pool().acquire().await.expect("connection");
    let conn = &mut *conn;
    let exec = |sql: &'static str| sqlx::raw_sql(sql);
    let mut rng = Rng(0x5eed_f1ee7);

    exec("BEGIN").execute(&mut *conn).await.expect("begin");
    exec(
        "INSERT INTO cas (name, role, parent, serial, cert_der, key_algorithm, crl_validity_secs, not_after, created_at) VALUES
           ('root', 'root', NULL, '01', zeroblob(600), 'ecdsa-p256', 2592000, 4102444800, 0),
           ('issuing-a', 'issuing', 'root', '02', zeroblob(600), 'ecdsa-p256', 86400, 4102444800, 0),
           ('issuing-b', 'issuing', 'root', '03', zeroblob(600), 'ecdsa-p256', 86400, 4102444800, 0)",
    )
    .execute(&mut *conn)
    .await
    .expect("cas");

    // Firmware, SBOM records, releases and rollouts per model.
    let mut fw_rows = Vec::new();
    let mut releases = Vec::new();
    for m in 0..MODELS {
        for v in 0..VERSIONS {
            let released = now - (VERSIONS - v) as i64 * 120 * DAY;
            let eos = (v < 3).then(|| now - (3 - v) as i64 * 30 * DAY);
            fw_rows.push((model(m), version(v), released, eos));
            releases.push((model(m), version(v), v as i64 + 1, released));
        }
    }
    let date = |t: i64| {
        OffsetDateTime::from_unix_timestamp(t)
            .expect("time")
            .date()
            .to_string()
    };
    insert_rows(
        conn,
        "INSERT INTO firmware_versions (model, version, released_on, support_level, end_of_support, created_at) ",
        &fw_rows,
        6,
        |mut b, (m, v, rel, eos)| {
            b.push_bind(m.clone())
                .push_bind(v.clone())
                .push_bind(date(*rel))
                .push_bind(if eos.is_some() { "unsupported" } else { "supported" })
                .push_bind(eos.map(date))
                .push_bind(*rel);
        },
    )
    .await;
    insert_rows(
        conn,
        "INSERT INTO sboms (model, version, format, spec_version, sha256, imported_at) ",
        &fw_rows,
        4,
        |mut b, (m, v, rel, _)| {
            b.push_bind(m.clone())
                .push_bind(v.clone())
                .push("'cyclonedx-json'")
                .push("'1.5'")
                .push_bind("00".repeat(32))
                .push_bind(*rel);
        },
    )
    .await;
    insert_rows(
        conn,
        "INSERT INTO releases (model, version, target, length, sha256, security_version, hardware_id, published_at) ",
        &releases,
        7,
        |mut b, (m, v, sv, at)| {
            b.push_bind(m.clone())
                .push_bind(v.clone())
                .push_bind(format!("{m}/{m}-{v}.bin"))
                .push("1000000")
                .push_bind("ab".repeat(32))
                .push_bind(*sv)
                .push_bind(m.clone())
                .push_bind(*at);
        },
    )
    .await;
    let rollouts: Vec<(String, String)> = (0..MODELS)
        .filter(|m| m % 2 == 0)
        .map(|m| {
            let (mm, v) = (model(m), version(VERSIONS - 1));
            (format!("ro-{m:02}"), format!("{mm}/{mm}-{v}.bin"))
        })
        .collect();
    insert_rows(
        conn,
        "INSERT INTO rollouts (id, model, target, state, body, created_at) ",
        &rollouts,
        4,
        |mut b, (id, target)| {
            let m = target.split('/').next().unwrap_or_default().to_owned();
            b.push_bind(id.clone())
                .push_bind(m)
                .push_bind(target.clone())
                .push("'active'")
                .push("'{}'")
                .push_bind(now - DAY);
        },
    )
    .await;

    // Findings: vulnerability k of a model is introduced at version 0 and fixed from version
    // fixed(k) on, so older versions carry more.
    let mut findings = Vec::new();
    let mut decisions = Vec::new();
    for m in 0..MODELS {
        let vulns: Vec<(usize, bool, f64, usize)> = (0..40)
            .map(|k| {
                let kev = k % 12 == 0;
                let cvss = if k % 10 == 3 {
                    9.8
                } else {
                    4.0 + (k % 5) as f64
                };
                // Fixed in 1..=VERSIONS (VERSIONS: never fixed).
                let fixed = 1 + (k * 7 + m) % VERSIONS;
                (k, kev, cvss, fixed)
            })
            .collect();
        for v in 0..VERSIONS {
            for &(k, kev, cvss, fixed) in &vulns {
                if v >= fixed {
                    continue;
                }
                let comp = format!("pkg:generic/comp-{}@{}", k % 12, v);
                findings.push((
                    m,
                    v,
                    format!("CVE-2025-{m:02}{k:03}"),
                    comp.clone(),
                    kev,
                    cvss,
                ));
                if rng.chance(10) {
                    decisions.push((m, v, format!("CVE-2025-{m:02}{k:03}")));
                }
            }
        }
    }
    insert_rows(
        conn,
        "INSERT INTO findings (model, version, vuln_id, component, identifiers, advisories, matched_by, summary, cvss_score, cvss_vector, kev, first_seen, last_seen) ",
        &findings,
        10,
        |mut b, (m, v, id, comp, kev, cvss)| {
            b.push_bind(model(*m))
                .push_bind(version(*v))
                .push_bind(id.clone())
                .push_bind(comp.clone())
                .push_bind(format!("[\"{id}\"]"))
                .push_bind(format!("[\"GHSA-{id}\"]"))
                .push("'purl'")
                .push("NULL")
                .push_bind(*cvss)
                .push("NULL")
                .push_bind(i64::from(*kev))
                .push_bind(now - 30 * DAY)
                .push_bind(now - DAY);
        },
    )
    .await;
    insert_rows(
        conn,
        "INSERT INTO vex_decisions (model, version, vuln_id, component, state, justification, detail, action, author, at) ",
        &decisions,
        4,
        |mut b, (m, v, id)| {
            b.push_bind(model(*m))
                .push_bind(version(*v))
                .push_bind(id.clone())
                .push("NULL")
                .push("'not_affected'")
                .push("'vulnerable_code_not_in_execute_path'")
                .push("'bench'")
                .push("NULL")
                .push("'user:bench'")
                .push_bind(now - 2 * DAY);
        },
    )
    .await;
    exec("COMMIT").execute(&mut *conn).await.expect("commit");

    // Devices, their firmware and certificates, a model at a time (one transaction each).
    let mut cert_no: u64 = 0x1000_0000;
    for m in 0..MODELS {
        let mut devices = Vec::with_capacity(DEVICES_PER_MODEL);
        let mut dfw = Vec::new();
        let mut certs = Vec::with_capacity(DEVICES_PER_MODEL * CERTS_PER_DEVICE);
        for d in 0..DEVICES_PER_MODEL {
            let i = m * DEVICES_PER_MODEL + d;
            let sn = serial(i);
            let retired = rng.chance(1);
            devices.push((sn.clone(), retired));
            if rng.chance(95) {
                // Skewed to newer versions: the max of two draws.
                let v = rng.below(VERSIONS as u64).max(rng.below(VERSIONS as u64)) as usize;
                dfw.push((sn.clone(), version(v)));
            }
            let kind = rng.below(100);
            let current_after = if kind < 3 {
                now - (1 + rng.below(200) as i64) * DAY
            } else {
                now + rng.below(400 * DAY as u64) as i64
            };
            let all_revoked = retired || kind == 3;
            for k in 0..CERTS_PER_DEVICE {
                let not_after = current_after - (CERTS_PER_DEVICE - 1 - k) as i64 * 365 * DAY;
                let revoked = if all_revoked {
                    Some(now - DAY)
                } else if k + 1 < CERTS_PER_DEVICE && rng.chance(20) {
                    Some(not_after - 300 * DAY)
                } else {
                    None
                };
                cert_no += 1 + rng.below(1 << 20);
                certs.push(Cert {
                    serial: format!("{cert_no:x}{:08x}", rng.next() as u32),
                    issuer: if rng.chance(10) {
                        "issuing-b"
                    } else {
                        "issuing-a"
                    },
                    model: model(m),
                    device: sn.clone(),
                    not_before: not_after - 365 * DAY,
                    not_after,
                    revoked_at: revoked,
                });
            }
        }
        exec("BEGIN").execute(&mut *conn).await.expect("begin");
        insert_rows(
            conn,
            "INSERT INTO devices (model, serial, status, created_at, retired_at) ",
            &devices,
            5,
            |mut b, (sn, retired)| {
                b.push_bind(model(m))
                    .push_bind(sn.clone())
                    .push_bind(if *retired { "retired" } else { "active" })
                    .push_bind(now - 3650 * DAY)
                    .push_bind(retired.then_some(now - DAY));
            },
        )
        .await;
        insert_rows(
            conn,
            "INSERT INTO device_firmware (model, serial, version, reported_at) ",
            &dfw,
            4,
            |mut b, (sn, v)| {
                b.push_bind(model(m))
                    .push_bind(sn.clone())
                    .push_bind(v.clone())
                    .push_bind(now - DAY);
            },
        )
        .await;
        insert_rows(
            conn,
            "INSERT INTO certs (serial, issuer, device_model, device_serial, profile, kind, subject, key_algorithm,
                spki_sha256, not_before, not_after, issued_at, revoked_reason, revoked_at, der) ",
            &certs,
            10,
            |mut b, c| {
                b.push_bind(c.serial.clone())
                    .push_bind(c.issuer)
                    .push_bind(c.model.clone())
                    .push_bind(c.device.clone())
                    .push("'device'")
                    .push("'renew'")
                    .push_bind(format!("CN={}-{}", c.model, c.device))
                    .push("'ecdsa-p256'")
                    .push("'0000000000000000000000000000000000000000000000000000000000000000'")
                    .push_bind(c.not_before)
                    .push_bind(c.not_after)
                    .push_bind(c.not_before)
                    .push_bind(c.revoked_at.map(|_| "superseded"))
                    .push_bind(c.revoked_at)
                    .push("zeroblob(480)");
            },
        )
        .await;
        exec("COMMIT").execute(&mut *conn).await.expect("commit");
        eprint!("\rseeded model {}/{MODELS}", m + 1);
    }
    exec("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut *conn)
        .await
        .expect("checkpoint");
    eprintln!("\rseeded in {:.1} s", started.elapsed().as_secs_f64());
}
