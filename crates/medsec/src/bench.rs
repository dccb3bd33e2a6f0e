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
    match cmd {
        BenchCmd::Issue {
            count,
            concurrency,
            dir,
        } => issue(*count, *concurrency, dir.clone()).await,
        BenchCmd::Est { count, concurrency } => est(*count, *concurrency).await,
        BenchCmd::Events {
            devices,
            concurrency,
            batch,
            seconds,
            events: total,
            burst_every,
        } => {
            events(
                *devices,
                *concurrency,
                *batch,
                *seconds,
                *total,
                *burst_every,
            )
            .await
        }
        BenchCmd::Match {
            sboms,
            components,
            advisories,
        } => matching(*sboms, *components, *advisories),
        BenchCmd::Import { osv, records } => import(osv.as_deref(), *records).await,
        BenchCmd::Tuf { releases, runs } => tuf(*releases, *runs).await,
        BenchCmd::Rematch {
            sboms,
            components,
            advisories,
        } => rematch(*sboms, *components, *advisories).await,
        BenchCmd::Replicas {
            replicas,
            count,
            concurrency,
        } => crate::bench_pg::replicas(*replicas, *count, *concurrency).await,
        BenchCmd::OcspPg {
            certs,
            requests,
            concurrency,
        } => crate::bench_pg::ocsp(*certs, *requests, concurrency).await,
        BenchCmd::Crl {
            certs,
            revoked,
            shards,
        } => crl(*certs, *revoked, shards),
        BenchCmd::Soak {
            paths,
            seconds,
            window,
            concurrency,
            est_rate,
            ocsp_rate,
            events_rate,
            tuf_rate,
        } => {
            use crate::bench_soak::{SoakPath, SoakSpec};
            let specs: Vec<SoakSpec> = paths
                .iter()
                .map(|p| SoakSpec {
                    seconds: *seconds,
                    window: *window,
                    concurrency: *concurrency,
                    rate: match p {
                        SoakPath::Est => *est_rate,
                        SoakPath::Ocsp => *ocsp_rate,
                        SoakPath::Events => *events_rate,
                        SoakPath::Tuf => *tuf_rate,
                    },
                })
                .collect();
            crate::bench_soak::soak(paths, &specs).await
        }
    }
}

/// One row of the CRL table: the CRLs one layout publishes.
struct CrlRow {
    layout: String,
    entries: Vec<usize>,
    secs: Vec<f64>,
    bytes: Vec<usize>,
}

fn mean_max<T: Copy + Into<f64>>(v: &[T]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let sum: f64 = v.iter().map(|x| (*x).into()).sum();
    let max = v.iter().map(|x| (*x).into()).fold(0.0, f64::max);
    (sum / n, max)
}

/// Whole versus sharded CRLs for a large fleet. Certificates are only serials here (what a CRL
/// needs); every CRL is encoded and signed with a P-256 key as the CA's would be. What a relying
/// party downloads to check one certificate is one CRL of the layout: the size column.
fn crl(certs: usize, revoked: usize, shard_counts: &[u32]) -> Result<()> {
    use medsec_ca::{CrlContent, Revocation, crl_shard_of, crl_shard_url, encode_crl};
    use medsec_core::{CertSerial, RevocationReason};
    if revoked > certs {
        bail!("--revoked cannot exceed --certs");
    }
    if let Some(n) = shard_counts
        .iter()
        .find(|n| **n < 2 || **n > medsec_ca::MAX_CRL_SHARDS)
    {
        bail!(
            "shard counts are 2 to {}; got {n}",
            medsec_ca::MAX_CRL_SHARDS
        );
    }
    let t = Instant::now();
    let serials: Vec<CertSerial> = (0..certs)
        .map(|_| medsec_ca::new_serial())
        .collect::<Result<_, _>>()?;
    let serial_secs = t.elapsed().as_secs_f64();
    // Random serials, so the first `revoked` are as good a sample as any; reasons and times
    // vary as in a real fleet (the reason code and time are in every entry).
    let now = time::OffsetDateTime::now_utc().replace_nanosecond(0)?;
    let reasons = [
        RevocationReason::KeyCompromise,
        RevocationReason::Superseded,
        RevocationReason::CessationOfOperation,
        RevocationReason::Unspecified,
    ];
    let rev: Vec<(CertSerial, Revocation)> = serials[..revoked]
        .iter()
        .enumerate()
        .map(|(i, s)| {
            (
                s.clone(),
                Revocation {
                    reason: reasons[i % reasons.len()],
                    revoked_at: now - Duration::seconds(i as i64),
                    invalidity_date: None,
                },
            )
        })
        .collect();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "medsec bench Issuing CA");
    let issuer = rcgen::Issuer::new(params, key);
    let ski = [0x42u8; 20];
    let template = "http://pki.example/crl/issuing/{shard}.crl";
    let encode =
        |entries: &[(CertSerial, Revocation)], idp: Option<&str>| -> Result<(f64, usize)> {
            let t = Instant::now();
            let der = encode_crl(
                &issuer,
                Some(&ski),
                &CrlContent {
                    number: 1,
                    this_update: now,
                    next_update: now + Duration::days(1),
                    revoked: entries,
                    idp_url: idp,
                },
            )?;
            Ok((t.elapsed().as_secs_f64(), der.len()))
        };

    let mut rows = Vec::new();
    let (secs, bytes) = encode(&rev, None)?;
    rows.push(CrlRow {
        layout: "whole (1 CRL)".into(),
        entries: vec![rev.len()],
        secs: vec![secs],
        bytes: vec![bytes],
    });
    let mut assign = Vec::new();
    for &n in shard_counts {
        // The shard of every certificate, as issuance computes it (the CRL needs only the
        // revoked ones; this is the fleet-wide cost of the assignment).
        let t = Instant::now();
        let mut per_shard = vec![0usize; n as usize + 1];
        for s in &serials {
            per_shard[crl_shard_of(s, n) as usize] += 1;
        }
        assign.push((n, t.elapsed().as_secs_f64(), per_shard));
        let mut parts: Vec<Vec<(CertSerial, Revocation)>> = vec![Vec::new(); n as usize];
        for r in &rev {
            parts[crl_shard_of(&r.0, n) as usize - 1].push(r.clone());
        }
        let mut row = CrlRow {
            layout: format!("{n} shards"),
            entries: Vec::new(),
            secs: Vec::new(),
            bytes: Vec::new(),
        };
        for (i, part) in parts.iter().enumerate() {
            let url = crl_shard_url(template, i as u32 + 1);
            let (secs, bytes) = encode(part, Some(&url))?;
            row.entries.push(part.len());
            row.secs.push(secs);
            row.bytes.push(bytes);
        }
        rows.push(row);
    }

    println!(
        "CRLs for {certs} certificates, {revoked} revoked (P-256 signatures; serials generated in {serial_secs:.2} s)\n"
    );
    println!(
        "| layout | entries per CRL (mean / max) | generation per CRL (mean / max) | generation, all CRLs | size per CRL (mean / max) | size, all CRLs |"
    );
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        let e: Vec<f64> = r.entries.iter().map(|x| *x as f64).collect();
        let b: Vec<f64> = r.bytes.iter().map(|x| *x as f64).collect();
        let (e_mean, e_max) = mean_max(&e);
        let (s_mean, s_max) = mean_max(&r.secs);
        let (b_mean, b_max) = mean_max(&b);
        println!(
            "| {} | {:.0} / {:.0} | {:.1} ms / {:.1} ms | {:.1} ms | {:.1} KiB / {:.1} KiB | {:.1} KiB |",
            r.layout,
            e_mean,
            e_max,
            s_mean * 1e3,
            s_max * 1e3,
            r.secs.iter().sum::<f64>() * 1e3,
            b_mean / 1024.0,
            b_max / 1024.0,
            r.bytes.iter().sum::<usize>() as f64 / 1024.0,
        );
    }
    println!();
    for (n, secs, per_shard) in assign {
        let counts: Vec<f64> = per_shard[1..].iter().map(|x| *x as f64).collect();
        let (mean, max) = mean_max(&counts);
        let min = counts.iter().copied().fold(f64::INFINITY, f64::min);
        println!(
            "- {n} shards: assigning all {certs} certificates took {:.0} ms; certificates per shard {min:.0} to {max:.0} (mean {mean:.0})",
            secs * 1e3
        );
    }
    if let Some(kib) = peak_rss_kib() {
        println!("- peak RSS {:.0} MiB", kib as f64 / 1024.0);
    }
    Ok(())
}

/// A zip of `n` OSV records shaped like GitHub advisories (summary, details, references,
/// SEMVER or ECOSYSTEM ranges, CVSS), at the size of real ones (about 2 KiB of JSON each).
fn synthetic_dump(n: usize) -> Result<Vec<u8>> {
    use std::io::Write;
    let ecos = ["npm", "PyPI", "Maven", "Go", "crates.io"];
    let mut rng = Rng(0x2545f4914f6cdd1d);
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let filler = "An attacker who controls the input can make the parser allocate without bound \
                  or run code in the context of the application. ";
    for i in 0..n {
        let eco = ecos[i % ecos.len()];
        let pkg = match eco {
            "Maven" => format!("org.example{}:lib{}", i % 97, rng.next(40_000)),
            "Go" => format!("github.com/example{}/mod{}", i % 97, rng.next(40_000)),
            _ => format!("pkg{}", rng.next(40_000)),
        };
        let (lo, hi) = (rng.next(5), 5 + rng.next(10));
        // OSV Go ranges carry no leading `v`.
        let v = |m: u64| format!("{m}.0.0");
        let id = format!("GHSA-bench-{i:07}");
        let rec = serde_json::json!({
            "schema_version": "1.6.0",
            "id": id, "aliases": [format!("CVE-2026-{i}")],
            "modified": "2026-10-01T12:00:00.123Z", "published": "2026-09-01T00:00:00Z",
            "summary": format!("Denial of service in {pkg}"),
            "details": filler.repeat(8),
            "affected": [{"package": {"ecosystem": eco, "name": pkg},
                "ranges": [{"type": if eco == "npm" { "SEMVER" } else { "ECOSYSTEM" },
                            "events": [{"introduced": v(lo)}, {"fixed": v(hi)}]}],
                "database_specific": {"source": "bench"}}],
            "references": [
                {"type": "ADVISORY", "url": format!("https://nvd.nist.gov/vuln/detail/CVE-2026-{i}")},
                {"type": "WEB", "url": format!("https://example.com/{pkg}/issues/{i}")},
                {"type": "PACKAGE", "url": format!("https://example.com/{pkg}")}],
            "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}],
            "database_specific": {"cwe_ids": ["CWE-400"], "severity": "HIGH", "github_reviewed": true}
        });
        z.start_file(format!("{id}.json"), opts)?;
        z.write_all(rec.to_string().as_bytes())?;
    }
    Ok(z.finish()?.into_inner())
}

/// An App on a fresh data directory inside `tmp` (no CA), for the storage benchmarks.
async fn fresh_app(tmp: &tempfile::TempDir) -> Result<(crate::App, std::path::PathBuf)> {
    let dir = tmp.path().join("data");
    std::fs::create_dir_all(&dir)?;
    let pass = tmp.path().join("passphrase");
    std::fs::write(&pass, "benchmark passphrase, not a secret")?;
    let app = crate::open_app(
        &dir,
        None,
        Some(pass),
        Some("bench"),
        false,
        Synchronous::Full,
        None,
    )
    .await?;
    Ok((app, dir))
}

/// python-tuf's side of the TUF benchmark: refresh, then resolve the newest target (which
/// loads the delegated role), timed inside the interpreter and printed in seconds.
const PY_TUF_CLIENT: &str = r#"
import sys, time
from tuf.ngclient import Updater
md, base, target = sys.argv[1:4]
t0 = time.perf_counter()
u = Updater(metadata_dir=md, metadata_base_url=base + "/metadata/", target_base_url=base + "/targets/", target_dir=md, bootstrap=None)
u.refresh()
info = u.get_targetinfo(target)
assert info is not None, target
print(time.perf_counter() - t0)
"#;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

async fn tuf(releases: usize, runs: usize) -> Result<()> {
    use medsec_updates::repo::{Image, NewRelease, RepoOptions, Repository};
    let tmp = tempfile::tempdir()?;
    let (app, _) = fresh_app(&tmp).await?;
    let model = medsec_core::DeviceModel::parse("bench-pump")?;
    let versions: Vec<medsec_core::FirmwareVersion> = (0..releases)
        .map(|i| medsec_core::FirmwareVersion::parse(&format!("1.{}.{}", i / 100, i % 100)))
        .collect::<Result<_, _>>()?;
    let images: Vec<Vec<u8>> = (0..releases)
        .map(|i| format!("firmware image {i}").into_bytes())
        .collect();
    let new = |i: usize| NewRelease {
        model: &model,
        version: &versions[i],
        security_version: i as u64 + 1,
        hardware_id: None,
        image: Image::Bytes(&images[i]),
        sbom: None,
    };
    // One by one, as `medsec release publish` does (each re-signs the model's role).
    let one_dir = tmp.path().join("one");
    let mut one = Repository::init(&one_dir, app.keys.clone(), RepoOptions::default())?;
    one.add_model(&model, 1, 1)?;
    let t0 = Instant::now();
    for i in 0..releases {
        one.publish(&new(i))?;
    }
    let t_one = t0.elapsed();
    drop(one);
    let batch_dir = tmp.path().join("batch");
    let mut batch = Repository::init(&batch_dir, app.keys.clone(), RepoOptions::default())?;
    batch.add_model(&model, 1, 1)?;
    let all: Vec<NewRelease<'_>> = (0..releases).map(new).collect();
    let t1 = Instant::now();
    batch.publish_many(&all)?;
    let t_batch = t1.elapsed();
    let root = batch.root_json(1)?;
    drop(batch);

    // Serve the batch repository over loopback.
    let serve_dir = batch_dir.clone();
    let router = axum::Router::new().route(
        "/{*path}",
        axum::routing::get(move |axum::extract::Path(p): axum::extract::Path<String>| {
            let d = serve_dir.clone();
            async move {
                match medsec_updates::repo::resolve_served_file(&d, &p) {
                    Some(f) => match tokio::fs::read(f).await {
                        Ok(b) => Ok(b),
                        Err(_) => Err(axum::http::StatusCode::NOT_FOUND),
                    },
                    None => Err(axum::http::StatusCode::NOT_FOUND),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, router).await });
    let base = format!("http://{addr}");
    let last = medsec_updates::target_name(&model, &versions[releases - 1]);

    // medsec-agent: a fresh device state per run. The refresh does not involve the director,
    // but the client wants a key to be configured.
    let dkey = {
        use medsec_keys::KeySource;
        medsec_updates::DirectorKey::of(
            &*app
                .keys
                .generate("bench-director", medsec_core::KeyAlgorithm::EcdsaP256)?,
        )
    };
    let dkeys = serde_json::to_string(&[dkey])?;
    // Nor does it use the gateway's trust root, which the client still loads.
    let unused_root = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?
        .cert
        .pem();
    let mut ours = Vec::new();
    for r in 0..runs {
        let st = tmp.path().join(format!("agent-{r}"));
        std::fs::create_dir_all(&st)?;
        std::fs::write(st.join("root.json"), &root)?;
        std::fs::write(st.join("director.json"), &dkeys)?;
        std::fs::write(st.join("none.pem"), &unused_root)?;
        let cfg = medsec_agent::AgentConfig::new(
            "127.0.0.1:1",
            "127.0.0.1:1",
            "localhost",
            st.join("none.pem"),
            st.clone(),
        );
        let client = medsec_agent::UpdateClient::new(medsec_agent::UpdateConfig::new(
            cfg,
            &base,
            st.join("root.json"),
            st.join("director.json"),
        ))?;
        let t = Instant::now();
        let s = client.refresh().await?;
        ours.push(t.elapsed().as_secs_f64());
        if s.targets != releases {
            bail!(
                "the agent verified {} targets, expected {releases}",
                s.targets
            );
        }
    }
    // python-tuf: the same repository, a fresh metadata directory per run.
    let script = tmp.path().join("py_tuf_client.py");
    std::fs::write(&script, PY_TUF_CLIENT)?;
    let mut py_in = Vec::new();
    let mut py_proc = Vec::new();
    for r in 0..runs {
        let md = tmp.path().join(format!("py-{r}"));
        std::fs::create_dir_all(&md)?;
        std::fs::write(md.join("root.json"), &root)?;
        let t = Instant::now();
        let o = std::process::Command::new("python3")
            .arg(&script)
            .arg(&md)
            .arg(&base)
            .arg(&last)
            .output()
            .context("running python3 (pip install tuf)")?;
        py_proc.push(t.elapsed().as_secs_f64());
        if !o.status.success() {
            bail!("python-tuf failed: {}", String::from_utf8_lossy(&o.stderr));
        }
        py_in.push(
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .context("python-tuf timing")?,
        );
    }
    println!("| metric | value |");
    println!("|---|---|");
    println!(
        "| publish {releases} releases one by one (`release publish` each) | {:.2} s ({:.1} ms each) |",
        t_one.as_secs_f64(),
        t_one.as_secs_f64() * 1000.0 / releases as f64
    );
    println!(
        "| publish {releases} releases as one batch | {:.2} s |",
        t_batch.as_secs_f64()
    );
    println!(
        "| medsec-agent refresh + verify, {releases} targets (median of {runs}) | {:.1} ms |",
        median(ours.clone()) * 1000.0
    );
    println!(
        "| python-tuf refresh + get_targetinfo (median of {runs}, in-process) | {:.1} ms |",
        median(py_in.clone()) * 1000.0
    );
    println!(
        "| python-tuf, whole process incl. interpreter start (median) | {:.1} ms |",
        median(py_proc) * 1000.0
    );
    println!(
        "| ratio python-tuf / medsec-agent (in-process) | {:.1}x |",
        median(py_in) / median(ours)
    );
    Ok(())
}

async fn rematch(sboms: usize, components: usize, advisories: usize) -> Result<()> {
    let (records, boms) = synthetic(sboms, components, advisories)?;
    let tmp = tempfile::tempdir()?;
    let (app, _) = fresh_app(&tmp).await?;
    eprintln!("storing {advisories} advisories and {sboms} SBOMs (not timed)...");
    let docs = records
        .iter()
        .map(|r| ("synthetic".to_owned(), r.to_string().into_bytes()))
        .collect();
    app.inv.import_osv(&app.actor, docs, &|_, _| {}).await?;
    let model = medsec_core::DeviceModel::parse("bench-pump")?;
    for (i, bom) in boms.iter().enumerate() {
        let comps: Vec<serde_json::Value> = bom
            .iter()
            .map(|p| serde_json::json!({"type": "library", "name": p.name, "version": p.version, "purl": p.to_string()}))
            .collect();
        let doc = serde_json::json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "components": comps});
        let v = medsec_core::FirmwareVersion::parse(&format!("1.0.{i}"))?;
        app.inv
            .import_sbom(
                &app.actor,
                &model,
                &v,
                doc.to_string().as_bytes(),
                None,
                false,
            )
            .await?;
    }
    let t0 = Instant::now();
    let st = app
        .inv
        .rematch(
            &app.actor,
            &medsec_inventory::VexScope::default(),
            false,
            &|_, _| {},
        )
        .await?;
    let t = t0.elapsed();
    println!("| metric | value |");
    println!("|---|---|");
    println!(
        "| stored firmware versions x components | {} x {components} = {} |",
        st.firmware_versions, st.components
    );
    println!("| stored advisories | {advisories} |");
    println!(
        "| `vuln match` (index once, read SBOMs, write findings) | {:.2} s |",
        t.as_secs_f64()
    );
    println!("| findings written | {} |", st.findings);
    if let Some(kib) = peak_rss_kib() {
        println!("| peak RSS | {:.1} MiB |", kib as f64 / 1024.0);
    }
    Ok(())
}

async fn import(osv: Option<&std::path::Path>, records: usize) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let (what, docs) = match osv {
        Some(p) => {
            let mut docs = Vec::new();
            crate::vuln::collect_docs(p, &mut docs)?;
            (format!("`{}`", p.display()), docs)
        }
        None => {
            eprintln!("generating a synthetic dump of {records} records (not timed)...");
            let zip = synthetic_dump(records)?;
            (
                format!(
                    "synthetic zip, {records} GHSA-shaped records, {:.1} MiB",
                    zip.len() as f64 / 1048576.0
                ),
                vec![("synthetic.zip".to_owned(), zip)],
            )
        }
    };
    let (app, dir) = fresh_app(&tmp).await?;
    let t0 = Instant::now();
    let first = app
        .inv
        .import_osv(&app.actor, docs.clone(), &|_, _| {})
        .await?;
    let t_first = t0.elapsed();
    let t1 = Instant::now();
    let again = app.inv.import_osv(&app.actor, docs, &|_, _| {}).await?;
    let t_again = t1.elapsed();
    if again.new + again.updated != 0 {
        bail!(
            "re-import wrote {} records; incremental import is broken",
            again.new + again.updated
        );
    }
    let t2 = Instant::now();
    let (index, _) = app.inv.load_index().await?;
    let t_index = t2.elapsed();
    let db = std::fs::metadata(dir.join("medsec.db"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!("| metric | value |");
    println!("|---|---|");
    println!("| input | {what} |");
    println!("| records read / stored | {} / {} |", first.read, first.new);
    println!(
        "| first import (parse, check, store; fsync per 2,000) | {:.2} s |",
        t_first.as_secs_f64()
    );
    println!(
        "| re-import, nothing changed | {:.2} s ({} unchanged) |",
        t_again.as_secs_f64(),
        again.unchanged
    );
    println!(
        "| matching index from the store | {:.2} s ({} advisories) |",
        t_index.as_secs_f64(),
        index.len()
    );
    println!("| database size | {:.1} MiB |", db as f64 / 1048576.0);
    if let Some(kib) = peak_rss_kib() {
        println!("| peak RSS | {:.1} MiB |", kib as f64 / 1024.0);
    }
    Ok(())
}

/// A fresh data directory with a P-256 CA and profile `bench`.
pub(crate) async fn setup(
    tmp: &tempfile::TempDir,
    dir: Option<std::path::PathBuf>,
) -> Result<(Arc<crate::App>, Profile)> {
    let dir = dir.unwrap_or_else(|| tmp.path().join("data"));
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
            None,
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
            crl_shards: 1,
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
    Ok((app, profile))
}

async fn issue(count: usize, concurrency: usize, dir: Option<std::path::PathBuf>) -> Result<()> {
    let concurrency = concurrency.max(1);
    if count == 0 {
        bail!("--count must be at least 1");
    }
    let tmp = tempfile::tempdir().context("creating a temporary directory")?;
    let (app, profile) = setup(&tmp, dir).await?;
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
            .fetch_one(app.sqlite_pool()?)
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

async fn est(count: usize, concurrency: usize) -> Result<()> {
    let concurrency = concurrency.max(1);
    if count == 0 {
        bail!("--count must be at least 1");
    }
    let tmp = tempfile::tempdir().context("creating a temporary directory")?;
    let (app, profile) = setup(&tmp, None).await?;
    eprintln!("creating {count} enrollment tokens and device keys/CSRs (not timed)...");
    let mut tokens: Vec<(DeviceSerial, String)> = Vec::with_capacity(count);
    for i in 0..count {
        let serial = DeviceSerial::parse(&format!("EST-{i:08}"))?;
        let (secret, _) = app
            .ca
            .create_enrollment_token(&profile.name, &serial, Duration::hours(1), &app.actor)
            .await?;
        tokens.push((serial, secret));
    }
    let csrs = make_csrs(count)?;
    let root = app.ca.get_ca(&Name::parse("root")?).await?;
    let root_pem = medsec_ca::pem_encode_cert(&root.cert_der);

    // The server runs in this process on its own CA handle over the same store.
    let auth: Arc<dyn medsec_auth::AuthStore> = app.store.clone();
    let server_ca = medsec_ca::Ca::new(app.store.clone(), app.keys.clone());
    let state = Arc::new(
        medsec_server::AppState::new(server_ca, Some(profile.name.clone()), auth)
            .with_rate_limit(1e9, 1e9),
    );
    let bound = medsec_server::Bound::bind(&medsec_server::Listeners {
        http: "127.0.0.1:0".parse()?,
        https: "127.0.0.1:0".parse()?,
        device: "127.0.0.1:0".parse()?,
        syslog: None,
    })
    .await?;
    let addr = bound.addrs().https.to_string();
    let identity =
        medsec_server::ServerIdentity::issue(&state, &profile.issuer, &["127.0.0.1".to_owned()])
            .await?;
    tokio::spawn(async move { medsec_server::serve(bound, state, identity).await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let client = Arc::new(medsec_agent::EstClient::new(
        &addr,
        "127.0.0.1",
        root_pem.as_bytes(),
        medsec_agent::Timeouts::default(),
    )?);

    eprintln!("enrolling {count} devices over TLS with {concurrency} concurrent clients...");
    let work = Arc::new(tokens.into_iter().zip(csrs).collect::<Vec<_>>());
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, work, next) = (client.clone(), work.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(((serial, token), csr)) = work.get(i) else {
                    return Ok::<_, anyhow::Error>(lat);
                };
                let t = Instant::now();
                let certs = client.simpleenroll(None, csr, serial, token).await?;
                if certs.len() != 1 {
                    bail!("enrollment {i} returned {} certificates", certs.len());
                }
                lat.push(t.elapsed());
            }
        }));
    }
    let mut lat = Vec::with_capacity(count);
    for t in tasks {
        lat.extend(t.await??);
    }
    let elapsed = start.elapsed();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1000.0;
    let stored: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM certs")
        .fetch_one(app.sqlite_pool()?)
        .await?;
    if stored.0 as usize != count {
        bail!("expected {count} stored certificates, found {}", stored.0);
    }
    println!("| metric | value |");
    println!("|---|---|");
    println!("| enrollments (HTTPS simpleenroll, token, new TLS connection each) | {count} |");
    println!("| concurrent clients | {concurrency} |");
    println!("| elapsed | {:.2} s |", elapsed.as_secs_f64());
    println!(
        "| throughput | {:.0} enrollments/s |",
        count as f64 / elapsed.as_secs_f64()
    );
    println!(
        "| latency p50 / p99 | {:.1} ms / {:.1} ms |",
        pct(0.5),
        pct(0.99)
    );
    if let Some(kib) = peak_rss_kib() {
        println!(
            "| peak RSS (server and clients in one process) | {:.1} MiB |",
            kib as f64 / 1024.0
        );
    }
    Ok(())
}

/// The largest batch the device gateway takes (`MAX_BATCH_EVENTS` in medsec-server).
const MAX_EVENTS_PER_BATCH: usize = 1000;

/// Simulated seconds between two events of one device: event times advance with the events
/// a device sends, so detection windows open and close the way they would in the field.
const EVENT_SPACING_SECS: i64 = 3;

/// Appends event `s` of a device to a JSON batch. The mix is deterministic: mostly
/// informational connection events and low-severity update failures, a debug-port event every
/// 1,000 and a lone authentication failure every 500 (neither trips a built-in rule); with
/// `every` > 0 also a burst of six authentication failures every `every` events, which trips
/// `auth-failure-burst` (5 within 10 minutes), and a configuration change every `2 * every`,
/// which trips `config-outside-maintenance` unless it falls on a Sunday morning. `phase`
/// staggers the pattern between devices so detections spread over the run.
pub(crate) fn push_event(
    out: &mut String,
    s: u64,
    phase: u64,
    every: u64,
    at: time::OffsetDateTime,
) -> Result<()> {
    use std::fmt::Write;
    use time::format_description::well_known::Rfc3339;
    let p = s + phase;
    let time = at.format(&Rfc3339)?;
    let burst = every > 0 && p % every < 6;
    let config = every > 0 && p % (2 * every) == every + 100;
    let (ty, sev, extra) = if config {
        ("config-changed", "info", r#","by":"local:tech""#)
    } else if burst || p % 500 == 250 {
        ("auth-failure", "medium", "")
    } else if p % 1000 == 500 {
        ("debug-port", "low", "")
    } else if p % 10 >= 7 {
        ("update-failure", "low", "")
    } else {
        ("unusual-connection", "info", "")
    };
    if !out.ends_with('[') {
        out.push(',');
    }
    write!(
        out,
        r#"{{"id":"ev-{s}","time":"{time}","type":"{ty}"{extra},"severity":"{sev}","details":"#
    )?;
    match ty {
        "update-failure" => write!(
            out,
            r#"{{"component":"pump-firmware","code":"E{}","attempt":"{}"}}}}"#,
            p % 97,
            p % 3 + 1
        )?,
        "auth-failure" => write!(out, r#"{{"user":"clinician{}","method":"pin"}}}}"#, p % 13)?,
        "debug-port" => out.push_str(r#"{"port":"uart0","state":"enabled"}}"#),
        "config-changed" => out.push_str(r#"{"setting":"max-infusion-rate"}}"#),
        _ => write!(
            out,
            r#"{{"peer":"10.{}.{}.{}","port":"{}","proto":"tcp"}}}}"#,
            p % 7,
            p % 251,
            p % 241 + 1,
            if p.is_multiple_of(4) { 8443 } else { 443 }
        )?,
    }
    Ok(())
}

/// One device of the event benchmark: its identity and its keep-alive connection.
pub(crate) struct EventDevice {
    pub(crate) index: usize,
    pub(crate) tls: Arc<tokio_rustls::rustls::ClientConfig>,
    pub(crate) sender: Option<hyper::client::conn::http1::SendRequest<axum::body::Body>>,
    /// Events sent so far (the next event id).
    pub(crate) sent: u64,
}

impl EventDevice {
    /// Opens (or reuses) the device's mTLS connection to the gateway.
    async fn connection(
        &mut self,
        addr: std::net::SocketAddr,
    ) -> Result<&mut hyper::client::conn::http1::SendRequest<axum::body::Body>> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            self.sender = Some(self.connect(addr).await?);
        }
        self.sender.as_mut().context("no connection")
    }

    /// A new mTLS connection (TCP, TLS handshake with the device certificate, HTTP/1.1).
    async fn connect(
        &self,
        addr: std::net::SocketAddr,
    ) -> Result<hyper::client::conn::http1::SendRequest<axum::body::Body>> {
        use tokio_rustls::rustls::pki_types::ServerName;
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(ServerName::IpAddress(addr.ip().into()), tcp)
            .await
            .with_context(|| format!("TLS handshake of device {}", self.index))?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            // Errors also reach the next request on this connection, which reports them.
            let _ = conn.await;
        });
        Ok(sender)
    }
}

/// What one client task saw.
#[derive(Default)]
pub(crate) struct EventTally {
    latencies: Vec<std::time::Duration>,
    batches: usize,
    events: usize,
    accepted: usize,
    duplicates: usize,
    detections: usize,
    opened: usize,
    failures: usize,
    first_failure: Option<String>,
}

/// Posts one batch and checks the answer: every event accepted, none a duplicate.
pub(crate) async fn post_batch(
    dev: &mut EventDevice,
    addr: std::net::SocketAddr,
    body: String,
    n: usize,
    tally: &mut EventTally,
) -> Result<()> {
    use axum::http::{Request, header};
    let sender = dev.connection(addr).await?;
    sender.ready().await?;
    let req = Request::post("/device/v1/events")
        .header(header::HOST, addr.to_string())
        .header(header::CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from(body))?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let bytes = axum::body::to_bytes(axum::body::Body::new(resp.into_body()), 1 << 20).await?;
    if !status.is_success() {
        bail!("HTTP {status}: {}", String::from_utf8_lossy(&bytes));
    }
    let v: serde_json::Value = serde_json::from_slice(&bytes).context("ingest response")?;
    let count = |k: &str| v.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0) as usize;
    let (accepted, duplicates) = (count("accepted"), count("duplicates"));
    tally.accepted += accepted;
    tally.duplicates += duplicates;
    if let Some(touches) = v.get("incidents").and_then(serde_json::Value::as_array) {
        tally.detections += touches.len();
        tally.opened += touches
            .iter()
            .filter(|t| t.get("opened").and_then(serde_json::Value::as_bool) == Some(true))
            .count();
    }
    if accepted != n || duplicates != 0 {
        bail!("{n} events sent, {accepted} accepted, {duplicates} duplicates");
    }
    Ok(())
}

/// A device's TLS client: trusts the root only and presents its own chain (leaf, issuing CA).
pub(crate) fn device_tls(
    root_der: &[u8],
    issuing_der: &[u8],
    leaf: Vec<u8>,
    key: Vec<u8>,
) -> Result<Arc<tokio_rustls::rustls::ClientConfig>> {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(root_der.to_vec()))?;
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![
                CertificateDer::from(leaf),
                CertificateDer::from(issuing_der.to_vec()),
            ],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
        )?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

async fn events(
    devices: usize,
    concurrency: usize,
    batch: usize,
    seconds: u64,
    total: Option<usize>,
    burst_every: u64,
) -> Result<()> {
    if devices == 0 {
        bail!("--devices must be at least 1");
    }
    if batch == 0 || batch > MAX_EVENTS_PER_BATCH {
        bail!("--batch must be 1 to {MAX_EVENTS_PER_BATCH}");
    }
    if total == Some(0) || (total.is_none() && seconds == 0) {
        bail!("--events and --seconds must be at least 1");
    }
    if burst_every != 0 && burst_every < 500 {
        bail!("--burst-every must be 0 (no detections) or at least 500 events");
    }
    // One request at a time per HTTP/1.1 connection, and one connection per device.
    let concurrency = concurrency.clamp(1, devices);
    let tmp = tempfile::tempdir().context("creating a temporary directory")?;
    let (app, profile) = setup(&tmp, None).await?;

    eprintln!("issuing {devices} device certificates (not timed)...");
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..std::thread::available_parallelism().map_or(2, |n| n.get()) * 4 {
        let (app, next, pname) = (app.clone(), next.clone(), profile.name.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= devices {
                    return Ok::<_, anyhow::Error>(out);
                }
                let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
                let csr =
                    rcgen::CertificateParams::new(Vec::<String>::new())?.serialize_request(&key)?;
                let serial = DeviceSerial::parse(&format!("EV-{i:06}"))?;
                let issued = app.ca.issue(&pname, &serial, csr.der(), &app.actor).await?;
                out.push((i, issued.record.der, key.serialize_der()));
            }
        }));
    }
    let mut identities = Vec::with_capacity(devices);
    for t in tasks {
        identities.extend(t.await??);
    }
    identities.sort_by_key(|(i, ..)| *i);
    let root_der = app.ca.get_ca(&Name::parse("root")?).await?.cert_der;
    let issuing_der = app.ca.get_ca(&profile.issuer).await?.cert_der;

    // The server: the same wiring as `medsec serve` for the device gateway, post-market on
    // with the built-in detection rules.
    let pm_store: Arc<dyn medsec_postmarket::store::PostmarketStore> = app.store.clone();
    let svc = Arc::new(
        medsec_postmarket::service::PostmarketService::open(
            pm_store,
            medsec_postmarket::cvd::CvdPolicy::default(),
            time::OffsetDateTime::now_utc(),
        )
        .await?,
    );
    let rules = svc.rules().rules().len();
    let auth: Arc<dyn medsec_auth::AuthStore> = app.store.clone();
    let server_ca = medsec_ca::Ca::new(app.store.clone(), app.keys.clone());
    let state = Arc::new(
        medsec_server::AppState::new(server_ca, Some(profile.name.clone()), auth)
            .with_postmarket(svc, medsec_server::PostmarketSettings::default()),
    );
    let bound = medsec_server::Bound::bind(&medsec_server::Listeners {
        http: "127.0.0.1:0".parse()?,
        https: "127.0.0.1:0".parse()?,
        device: "127.0.0.1:0".parse()?,
        syslog: None,
    })
    .await?;
    let addr = bound.addrs().device;
    let identity =
        medsec_server::ServerIdentity::issue(&state, &profile.issuer, &["127.0.0.1".to_owned()])
            .await?;
    tokio::spawn(async move { medsec_server::serve(bound, state, identity).await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    // Each device trusts the root only and presents its own chain (leaf, issuing CA).
    let mut groups: Vec<Vec<EventDevice>> = (0..concurrency).map(|_| Vec::new()).collect();
    for (i, leaf, key) in identities {
        let tls = device_tls(&root_der, &issuing_der, leaf, key)?;
        if let Some(g) = groups.get_mut(i % concurrency) {
            g.push(EventDevice {
                index: i,
                tls,
                sender: None,
                sent: 0,
            });
        }
    }

    // Work: a number of batches, or a deadline. Connections are opened before the clock starts
    // (devices hold theirs open); each task then cycles through its devices, one batch each.
    let total_batches = total.map(|t| t.div_ceil(batch));
    let claimed = Arc::new(AtomicUsize::new(0));
    let start_gate = Arc::new(tokio::sync::Barrier::new(concurrency + 1));
    let epoch = time::OffsetDateTime::now_utc() - Duration::days(30);
    let deadline = Arc::new(std::sync::OnceLock::<Instant>::new());
    eprintln!(
        "{devices} devices connecting; then {concurrency} concurrent clients posting batches of {batch} events {}...",
        match total {
            Some(t) => format!("until {t} events are sent"),
            None => format!("for {seconds} s"),
        }
    );
    let mut tasks = Vec::new();
    for mut group in groups {
        let (claimed, gate, deadline) = (claimed.clone(), start_gate.clone(), deadline.clone());
        tasks.push(tokio::spawn(async move {
            let mut tally = EventTally::default();
            let mut connected = Ok(());
            for d in group.iter_mut() {
                if let Err(e) = d.connection(addr).await {
                    connected = Err(e);
                    break;
                }
            }
            gate.wait().await;
            connected?;
            let mut body = String::with_capacity(batch * 200);
            for turn in 0.. {
                let n = match total_batches {
                    Some(tb) => {
                        let k = claimed.fetch_add(1, Ordering::Relaxed);
                        if k >= tb {
                            break;
                        }
                        let t = total.unwrap_or(0);
                        batch.min(t - k * batch)
                    }
                    None => {
                        if deadline.get().is_none_or(|d| Instant::now() >= *d) {
                            break;
                        }
                        batch
                    }
                };
                let len = group.len().max(1);
                let Some(dev) = group.get_mut(turn % len) else {
                    break;
                };
                body.clear();
                body.push('[');
                let phase = (dev.index as u64 * 7919) % (2 * burst_every).max(1000);
                for s in dev.sent..dev.sent + n as u64 {
                    let at = epoch + Duration::seconds(s as i64 * EVENT_SPACING_SECS);
                    push_event(&mut body, s, phase, burst_every, at)?;
                }
                body.push(']');
                dev.sent += n as u64;
                let t = Instant::now();
                let r = tokio::time::timeout(
                    std::time::Duration::from_secs(60),
                    post_batch(dev, addr, body.clone(), n, &mut tally),
                )
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within 60 s")));
                tally.latencies.push(t.elapsed());
                tally.batches += 1;
                tally.events += n;
                if let Err(e) = r {
                    tally.failures += 1;
                    tally
                        .first_failure
                        .get_or_insert_with(|| format!("device {}: {e:#}", dev.index));
                    // Start the next request on a fresh connection.
                    dev.sender = None;
                }
            }
            Ok::<_, anyhow::Error>(tally)
        }));
    }
    let start = Instant::now();
    let _ = deadline.set(start + std::time::Duration::from_secs(seconds));
    start_gate.wait().await;
    let mut all = EventTally::default();
    for t in tasks {
        let x = t.await??;
        all.latencies.extend(x.latencies);
        all.batches += x.batches;
        all.events += x.events;
        all.accepted += x.accepted;
        all.duplicates += x.duplicates;
        all.detections += x.detections;
        all.opened += x.opened;
        all.failures += x.failures;
        if all.first_failure.is_none() {
            all.first_failure = x.first_failure;
        }
    }
    let elapsed = start.elapsed();
    let (stored,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM pm_events")
        .fetch_one(app.sqlite_pool()?)
        .await?;
    let (incidents, detections_stored): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COALESCE(SUM(json_array_length(body, '$.timeline')), 0) FROM pm_incidents",
    )
    .fetch_one(app.sqlite_pool()?)
    .await?;
    all.latencies.sort();
    let pct = |p: f64| {
        all.latencies
            .get(((all.latencies.len() as f64 - 1.0) * p) as usize)
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    };
    let secs = elapsed.as_secs_f64();
    println!("| metric | value |");
    println!("|---|---|");
    println!("| devices (own P-256 certificate, own keep-alive mTLS connection) | {devices} |");
    println!("| concurrent clients (requests in flight) | {concurrency} |");
    println!("| events per batch | {batch} |");
    println!("| detection rules in force | {rules} (built-in set) |");
    if burst_every > 0 {
        println!(
            "| rule-tripping pattern per device | 6 auth failures every {burst_every} events, a config change every {} |",
            2 * burst_every
        );
    } else {
        println!("| rule-tripping pattern per device | none (no event trips a rule) |");
    }
    println!("| elapsed | {secs:.2} s |");
    println!(
        "| batches posted / failed | {} / {} |",
        all.batches, all.failures
    );
    println!(
        "| events sent / accepted / stored | {} / {} / {stored} |",
        all.events, all.accepted
    );
    println!(
        "| throughput | {:.0} events/s ({:.0} batches/s) |",
        all.accepted as f64 / secs,
        all.batches as f64 / secs
    );
    println!(
        "| request latency p50 / p99 / max | {:.1} ms / {:.1} ms / {:.1} ms |",
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    println!(
        "| detections / incidents opened | {} / {} (incidents stored: {incidents}, timeline entries: {detections_stored}) |",
        all.detections, all.opened
    );
    if let Some(kib) = peak_rss_kib() {
        println!(
            "| peak RSS (server and clients in one process) | {:.1} MiB |",
            kib as f64 / 1024.0
        );
    }
    if let Some(f) = &all.first_failure {
        bail!("{} requests failed; the first: {f}", all.failures);
    }
    if stored as usize != all.accepted || all.accepted != all.events || all.duplicates != 0 {
        bail!(
            "{} events sent, {} accepted ({} duplicates), {stored} stored",
            all.events,
            all.accepted,
            all.duplicates
        );
    }
    Ok(())
}

/// A deterministic pseudo-random sequence (xorshift), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// A synthetic feed of `advisories` OSV records over five ecosystems and `sboms` purl lists that
/// hit it, deterministic so runs compare.
type Synthetic = (Vec<serde_json::Value>, Vec<Vec<medsec_core::Purl>>);

fn synthetic(sboms: usize, components: usize, advisories: usize) -> Result<Synthetic> {
    use medsec_core::Purl;
    let ecos = [
        ("npm", "npm"),
        ("pypi", "PyPI"),
        ("maven", "Maven"),
        ("golang", "Go"),
        ("cargo", "crates.io"),
    ];
    let packages = advisories.max(1) / 2;
    let pkg_name = |eco: &str, i: usize| match eco {
        "maven" => (format!("org.example{}", i % 97), format!("lib{i}")),
        "golang" => (format!("github.com/example{}", i % 97), format!("mod{i}")),
        _ => (String::new(), format!("pkg{i}")),
    };
    let osv_name = |eco: &str, ns: &str, n: &str| match eco {
        "maven" => format!("{ns}:{n}"),
        "golang" => format!("{ns}/{n}"),
        _ => n.to_owned(),
    };
    let mut rng = Rng(0x9e3779b97f4a7c15);
    eprintln!("generating {advisories} advisories over {packages} packages (not timed)...");
    let mut advs = Vec::with_capacity(advisories);
    for a in 0..advisories {
        let (ty, osv_eco) = ecos[a % ecos.len()];
        let p = rng.next(packages as u64) as usize;
        let (ns, n) = pkg_name(ty, p);
        let (lo, hi) = (rng.next(5), 5 + rng.next(10));
        let v = |maj: u64| {
            if ty == "golang" {
                format!("v{maj}.0.0")
            } else {
                format!("{maj}.0.0")
            }
        };
        let rec = serde_json::json!({
            "id": format!("BENCH-{a}"), "aliases": [format!("CVE-2026-{a}")],
            "modified": "2026-10-01T00:00:00Z",
            "affected": [{"package": {"ecosystem": osv_eco, "name": osv_name(ty, &ns, &n)},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": v(lo)}, {"fixed": v(hi)}]}]}],
            "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}]
        });
        advs.push(rec);
    }
    eprintln!("generating {sboms} SBOMs of {components} components (not timed)...");
    let mut boms: Vec<Vec<Purl>> = Vec::with_capacity(sboms);
    for _ in 0..sboms {
        let mut v = Vec::with_capacity(components);
        for _ in 0..components {
            let e = rng.next(ecos.len() as u64) as usize;
            let (ty, _) = ecos[e];
            let (ns, n) = pkg_name(ty, rng.next(packages as u64) as usize);
            let ver = format!(
                "{}{}.{}.{}",
                if ty == "golang" { "v" } else { "" },
                rng.next(16),
                rng.next(20),
                rng.next(20)
            );
            let s = if ns.is_empty() {
                format!("pkg:{ty}/{n}@{ver}")
            } else {
                format!("pkg:{ty}/{ns}/{n}@{ver}")
            };
            v.push(Purl::parse(&s)?);
        }
        boms.push(v);
    }
    Ok((advs, boms))
}

fn matching(sboms: usize, components: usize, advisories: usize) -> Result<()> {
    use medsec_vuln::{Advisory, Index};
    let (records, boms) = synthetic(sboms, components, advisories)?;
    let t0 = Instant::now();
    let advs = records
        .iter()
        .map(|r| Advisory::from_json(r.to_string().as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    let index = Index::new(advs);
    let index_time = t0.elapsed();
    let t1 = Instant::now();
    let mut findings = 0usize;
    // Both cores: SBOMs are independent, the index is shared read-only.
    std::thread::scope(|s| -> Result<()> {
        let half = boms.len().div_ceil(2);
        let handles: Vec<_> = boms
            .chunks(half.max(1))
            .map(|chunk| {
                let index = &index;
                s.spawn(move || -> Result<usize> {
                    let mut n = 0;
                    for bom in chunk {
                        for p in bom {
                            n += index.match_purl(p)?.len();
                        }
                    }
                    Ok(n)
                })
            })
            .collect();
        for h in handles {
            findings += h
                .join()
                .map_err(|_| anyhow::anyhow!("a matching thread panicked"))??;
        }
        Ok(())
    })?;
    let match_time = t1.elapsed();
    println!("| metric | value |");
    println!("|---|---|");
    println!("| advisories indexed | {advisories} (synthetic OSV records, 5 ecosystems) |");
    println!(
        "| index build (parse + index) | {:.2} s |",
        index_time.as_secs_f64()
    );
    println!(
        "| SBOMs x components matched | {sboms} x {components} = {} purls |",
        sboms * components
    );
    println!(
        "| matching time (2 threads, one shared index) | {:.2} s |",
        match_time.as_secs_f64()
    );
    println!("| findings | {findings} |");
    if let Some(kib) = peak_rss_kib() {
        println!("| peak RSS | {:.1} MiB |", kib as f64 / 1024.0);
    }
    Ok(())
}

pub(crate) fn make_csrs(count: usize) -> Result<Vec<Vec<u8>>> {
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
