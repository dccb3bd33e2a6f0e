//! `medsec bench`: throughput measurements on a fresh store, printed as Markdown for bench/RESULTS.md.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use medsec_ca::{CaInitSpec, CaUrls, Profile};
use medsec_core::{DeviceModel, DeviceSerial, KeyAlgorithm, Name};
use medsec_store::Synchronous;
use time::Duration;

use crate::cli::BenchCmd;

/// Peak resident set size of this process, from /proc (Linux).
fn peak_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

pub async fn run(cmd: &BenchCmd) -> Result<()> {
    let BenchCmd::Issue {
        count,
        concurrency,
        dir,
    } = cmd;
    let (count, concurrency) = (*count, (*concurrency).max(1));
    if count == 0 {
        bail!("--count must be at least 1");
    }
    let tmp = tempfile::tempdir().context("creating a temporary directory")?;
    let dir = dir.clone().unwrap_or_else(|| tmp.path().join("data"));
    if dir.join("medsec.db").exists() {
        bail!(
            "{} already holds a database; the benchmark needs a fresh one",
            dir.display()
        );
    }
    std::fs::create_dir_all(&dir)?;
    let pass = tmp.path().join("passphrase");
    std::fs::write(&pass, "benchmark passphrase, not a secret")?;
    let app = Arc::new(
        crate::open_app(
            &dir,
            None,
            Some(pass),
            Some("bench"),
            false,
            Synchronous::Full,
        )
        .await?,
    );
    let spec = CaInitSpec {
        root_name: Name::parse("root")?,
        root_common_name: "Bench Root CA".into(),
        issuing_name: Name::parse("issuing")?,
        issuing_common_name: "Bench Issuing CA".into(),
        organization: "medsec bench".into(),
        country: None,
        key_algorithm: KeyAlgorithm::EcdsaP256,
        root_validity_days: 3650,
        issuing_validity_days: 1825,
        root_crl_validity: Duration::days(30),
        issuing_crl_validity: Duration::days(1),
        urls: CaUrls {
            crl_url_template: Some("http://127.0.0.1:8080/crl/{ca}.crl".into()),
            ocsp_url: Some("http://127.0.0.1:8080/ocsp".into()),
        },
    };
    app.ca.init(&spec, &app.actor).await?;
    let profile = Profile {
        name: Name::parse("bench")?,
        model: DeviceModel::parse("bench-pump")?,
        issuer: Name::parse("issuing")?,
        key_types: vec![KeyAlgorithm::EcdsaP256],
        validity_days: 365,
        server_auth: false,
        organization: "medsec bench".into(),
        cn_template: "{model}-{serial}".into(),
        requires_bootstrap: true,
        rekey_overlap_days: 7,
    };
    app.ca.put_profile(&profile, &app.actor).await?;

    eprintln!("generating {count} device keys and CSRs (not timed)...");
    let csrs = Arc::new(make_csrs(count)?);

    eprintln!("issuing {count} certificates with {concurrency} concurrent tasks...");
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (app, csrs, next) = (app.clone(), csrs.clone(), next.clone());
        let pname = profile.name.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= csrs.len() {
                    return Ok::<(), anyhow::Error>(());
                }
                let serial = DeviceSerial::parse(&format!("BENCH-{i:08}"))?;
                app.ca.issue(&pname, &serial, &csrs[i], &app.actor).await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let elapsed = start.elapsed();
    let (rows, distinct): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), COUNT(DISTINCT serial) FROM certs")
            .fetch_one(app.store.pool())
            .await?;
    if rows as usize != count || distinct != rows {
        bail!(
            "expected {count} stored certificates with distinct serials, found {rows} rows / {distinct} distinct"
        );
    }
    let rate = count as f64 / elapsed.as_secs_f64();
    println!("| metric | value |");
    println!("|---|---|");
    println!("| certificates issued (CSR verify + sign + durable commit) | {count} |");
    println!("| concurrency | {concurrency} |");
    println!("| elapsed | {:.2} s |", elapsed.as_secs_f64());
    println!("| throughput | {rate:.0} certs/s |");
    println!("| stored rows / distinct serials | {rows} / {distinct} |");
    if let Some(kib) = peak_rss_kib() {
        println!(
            "| peak RSS (whole process, incl. pre-generated CSRs) | {:.1} MiB |",
            kib as f64 / 1024.0
        );
    }
    println!("| SQLite synchronous | FULL (WAL), group commit |");
    Ok(())
}

fn make_csrs(count: usize) -> Result<Vec<Vec<u8>>> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let per = count.div_ceil(threads);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let n = per.min(count.saturating_sub(t * per));
            std::thread::spawn(move || -> Result<Vec<Vec<u8>>> {
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
                    let params = rcgen::CertificateParams::new(Vec::<String>::new())?;
                    v.push(params.serialize_request(&key)?.der().to_vec());
                }
                Ok(v)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(count);
    for h in handles {
        match h.join() {
            Ok(r) => all.extend(r?),
            Err(_) => bail!("a CSR generator thread panicked"),
        }
    }
    Ok(all)
}
