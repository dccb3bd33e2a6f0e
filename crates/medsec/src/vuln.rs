//! `medsec vuln scan`: an SBOM against offline OSV feeds, without touching the store.

use std::path::Path;

use anyhow::{Context, Result, bail};
use medsec_vuln::{Advisory, Index, Kev};
use serde_json::json;

use crate::cli::{SbomCmd, VulnCmd};

/// Largest advisory file or dump read (a full OSV ecosystem dump is a few hundred MiB).
const MAX_FEED: u64 = 1024 * 1024 * 1024;

pub(crate) fn read_bounded(p: &Path, max: u64) -> Result<Vec<u8>> {
    let len = std::fs::metadata(p)
        .with_context(|| format!("reading {}", p.display()))?
        .len();
    if len > max {
        bail!("{} is larger than {max} bytes", p.display());
    }
    std::fs::read(p).with_context(|| format!("reading {}", p.display()))
}

/// Advisory inputs as (origin, bytes): JSON files and zip dumps, directories searched
/// recursively in name order.
pub(crate) fn collect_docs(path: &Path, out: &mut Vec<(String, Vec<u8>)>) -> Result<()> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)?.collect::<std::io::Result<_>>()?;
        entries.sort_by_key(|e| e.path());
        for e in entries {
            let p = e.path();
            if p.is_dir() || p.extension().is_some_and(|x| x == "json" || x == "zip") {
                collect_docs(&p, out)?;
            }
        }
        return Ok(());
    }
    out.push((path.display().to_string(), read_bounded(path, MAX_FEED)?));
    Ok(())
}

fn load(path: &Path, out: &mut Vec<Advisory>) -> Result<()> {
    let mut docs = Vec::new();
    collect_docs(path, &mut docs)?;
    for (origin, bytes) in docs {
        if bytes.starts_with(b"PK\x03\x04") {
            out.extend(Advisory::from_zip(&bytes).with_context(|| format!("importing {origin}"))?);
        } else {
            out.push(Advisory::from_json(&bytes).with_context(|| format!("importing {origin}"))?);
        }
    }
    Ok(())
}

pub(crate) fn read_sbom(p: &Path) -> Result<medsec_sbom::Sbom> {
    let bytes = read_bounded(p, medsec_sbom::MAX_BYTES as u64)?;
    medsec_sbom::parse(&bytes).with_context(|| format!("SBOM {}", p.display()))
}

/// The offline SBOM commands (files only, no data directory).
pub fn run_sbom(cmd: &SbomCmd, as_json: bool) -> Result<()> {
    match cmd {
        SbomCmd::Show { file, addendum } => {
            let mut s = read_sbom(file)?;
            if let Some(a) = addendum {
                let text = String::from_utf8(read_bounded(a, 16 * 1024 * 1024)?)
                    .context("addendum is not UTF-8")?;
                medsec_sbom::apply_support_csv(&mut s, &text)
                    .with_context(|| format!("addendum {}", a.display()))?;
            }
            if as_json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                for c in &s.components {
                    println!(
                        "{:<40} {:<20} {:<60} {}",
                        c.name,
                        c.version.as_deref().unwrap_or("-"),
                        c.purl
                            .as_ref()
                            .map(|p| p.to_string())
                            .unwrap_or_else(|| "-".into()),
                        c.support_level.as_deref().unwrap_or("")
                    );
                }
                eprintln!(
                    "{:?} {}: {} components, {} dependencies",
                    s.format,
                    s.spec_version,
                    s.components.len(),
                    s.dependencies.len()
                );
            }
        }
        SbomCmd::Diff { old, new, .. } => {
            let d = medsec_sbom::diff(&read_sbom(Path::new(old))?, &read_sbom(Path::new(new))?);
            print_diff(&d, as_json)?;
        }
        SbomCmd::FromCargoLock {
            lockfile,
            out,
            product,
            product_version,
            manufacturer,
            timestamp,
        } => {
            let bom = sbom_from_cargo_lock(
                lockfile,
                product,
                product_version.as_deref(),
                manufacturer,
                timestamp.as_deref(),
            )?;
            let text = serde_json::to_string_pretty(&bom)? + "\n";
            crate::write_or_print(out.as_deref(), &text)?;
        }
        _ => bail!("this sbom command needs the data directory"),
    }
    Ok(())
}

/// `medsec sbom from-cargo-lock`: the CycloneDX SBOM of a Rust workspace (medsec's own supply
/// chain, docs/supply-chain.md).
fn sbom_from_cargo_lock(
    lockfile: &Path,
    product: &str,
    product_version: Option<&str>,
    manufacturer: &str,
    timestamp: Option<&str>,
) -> Result<serde_json::Value> {
    let bytes = read_bounded(lockfile, medsec_sbom::MAX_BYTES as u64)?;
    let text = std::str::from_utf8(&bytes)
        .with_context(|| format!("{} is not UTF-8", lockfile.display()))?;
    let lock = medsec_sbom::parse_cargo_lock(text)
        .with_context(|| format!("Cargo.lock {}", lockfile.display()))?;
    let version = match product_version {
        Some(v) => v.to_owned(),
        None => lock
            .packages
            .iter()
            .find(|p| p.name == product && p.source == medsec_sbom::LockSource::Workspace)
            .map(|p| p.version.clone())
            .with_context(|| {
                format!(
                    "{} has no workspace package {product:?}; give --product-version",
                    lockfile.display()
                )
            })?,
    };
    let timestamp = match timestamp {
        Some(t) => t.to_owned(),
        None => sbom_time()?,
    };
    // Same inputs, same serial: the SBOM of one lock is reproducible and diffable. A v4-style
    // layout (version and variant bits set) keeps it a well-formed UUID.
    let mut h = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for part in [&bytes[..], product.as_bytes(), version.as_bytes()] {
        h.update(&(part.len() as u64).to_be_bytes());
        h.update(part);
    }
    let d = h.finish();
    let mut u = [0u8; 16];
    u.copy_from_slice(&d.as_ref()[..16]);
    u[6] = (u[6] & 0x0f) | 0x40;
    u[8] = (u[8] & 0x3f) | 0x80;
    let x = hex::encode(u);
    let serial = format!(
        "{}-{}-{}-{}-{}",
        &x[..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..]
    );
    let meta = medsec_sbom::ExportMeta {
        product: product.to_owned(),
        firmware_version: version,
        manufacturer: manufacturer.to_owned(),
        timestamp: medsec_sbom::Timestamp::parse(&timestamp).context("--timestamp")?,
        serial_number: medsec_sbom::SerialNumber::parse(&serial)?,
    };
    Ok(lock.to_cyclonedx_json(&meta))
}

/// The SBOM's time: SOURCE_DATE_EPOCH (reproducible builds' convention) when set, else now.
fn sbom_time() -> Result<String> {
    let t = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) => {
            let secs: i64 = s
                .trim()
                .parse()
                .with_context(|| format!("SOURCE_DATE_EPOCH {s:?} is not a number of seconds"))?;
            time::OffsetDateTime::from_unix_timestamp(secs)
                .with_context(|| format!("SOURCE_DATE_EPOCH {s:?} is out of range"))?
        }
        Err(_) => time::OffsetDateTime::now_utc().replace_nanosecond(0)?,
    };
    Ok(t.format(&time::format_description::well_known::Rfc3339)?)
}

pub(crate) fn print_diff(d: &medsec_sbom::Diff, as_json: bool) -> Result<()> {
    if as_json {
        println!("{}", serde_json::to_string_pretty(d)?);
    } else {
        for c in &d.added {
            println!("+ {} {}", c.component, c.to.as_deref().unwrap_or(""));
        }
        for c in &d.removed {
            println!("- {} {}", c.component, c.from.as_deref().unwrap_or(""));
        }
        for c in &d.changed {
            println!(
                "~ {} {} -> {}",
                c.component,
                c.from.as_deref().unwrap_or(""),
                c.to.as_deref().unwrap_or("")
            );
        }
    }
    Ok(())
}

/// `medsec vuln scan`: offline, nothing stored.
pub fn run(cmd: &VulnCmd, as_json: bool) -> Result<()> {
    let VulnCmd::Scan { sbom, osv, kev } = cmd else {
        bail!("this vuln command needs the data directory");
    };
    let sbom_bytes = read_bounded(sbom, medsec_sbom::MAX_BYTES as u64)?;
    let parsed =
        medsec_sbom::parse(&sbom_bytes).with_context(|| format!("SBOM {}", sbom.display()))?;
    let mut advisories = Vec::new();
    for p in osv {
        load(p, &mut advisories)?;
    }
    let kev = match kev {
        Some(p) => Some(
            Kev::from_json(&read_bounded(p, 64 * 1024 * 1024)?)
                .with_context(|| format!("KEV catalog {}", p.display()))?,
        ),
        None => None,
    };
    let index = Index::new(advisories);
    let mut rows = Vec::new();
    let mut unmatchable = Vec::new();
    for c in &parsed.components {
        let Some(purl) = &c.purl else { continue };
        match index.match_purl(purl) {
            Ok(findings) => {
                for f in findings {
                    let cvss = f
                        .advisories
                        .iter()
                        .filter_map(|id| index.advisory(id)?.cvss_base())
                        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
                    let kev_entry = kev.as_ref().and_then(|k| k.lookup(&f.identifiers));
                    rows.push(json!({
                        "purl": purl.to_string(), "component": c.name, "version": c.version,
                        "advisories": f.advisories, "identifiers": f.identifiers,
                        "cvss_base": cvss, "kev": kev_entry.map(|k| json!({"cve": k.cve, "date_added": k.date_added})),
                    }));
                }
            }
            // Never a silent miss: a version that cannot be read is reported as such.
            Err(e) => unmatchable.push(json!({"purl": purl.to_string(), "reason": e.to_string()})),
        }
    }
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"advisories_loaded": index.len(), "components": parsed.components.len(), "findings": rows, "unmatchable": unmatchable})
            )?
        );
    } else {
        for r in &rows {
            let ids: Vec<&str> = r["advisories"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str())
                .collect();
            println!(
                "{:<60} {:<40} {:>5} {}",
                r["purl"].as_str().unwrap_or(""),
                ids.join(","),
                r["cvss_base"]
                    .as_f64()
                    .map(|s| format!("{s:.1}"))
                    .unwrap_or_else(|| "-".into()),
                if r["kev"].is_null() { "" } else { "KEV" }
            );
        }
        for u in &unmatchable {
            eprintln!(
                "warning: {} not matched: {}",
                u["purl"].as_str().unwrap_or(""),
                u["reason"].as_str().unwrap_or("")
            );
        }
        eprintln!(
            "{} finding(s) in {} components against {} advisories",
            rows.len(),
            parsed.components.len(),
            index.len()
        );
    }
    Ok(())
}
