//! `medsec firmware|sbom|vuln|vex|device` commands over the stored inventory.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use medsec_core::{DeviceModel, FirmwareVersion};
use medsec_inventory::{FindingView, SupportLevel, VexScope};
use medsec_vuln::{Justification, VexStatus};
use serde_json::json;
use time::Date;

use crate::cli::{FirmwareCmd, SbomCmd, VexCmd, VulnCmd};
use crate::vuln::{collect_docs, print_diff, read_bounded};
use crate::{App, out, write_or_print};

const DATE: &[time::format_description::FormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

fn date(what: &str, s: &str) -> Result<Date> {
    Date::parse(s, DATE).with_context(|| format!("{what} {s:?} is not a YYYY-MM-DD date"))
}

fn model_version(model: &str, version: &str) -> Result<(DeviceModel, FirmwareVersion)> {
    Ok((DeviceModel::parse(model)?, FirmwareVersion::parse(version)?))
}

/// A progress bar on stderr when it is a terminal; nothing otherwise (logs stay clean).
fn progress_bar(what: &'static str) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::with_draw_target(
        None,
        indicatif::ProgressDrawTarget::stderr_with_hz(10),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{prefix} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})",
    ) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_prefix(what);
    pb
}

pub async fn firmware_cmd(app: &App, c: FirmwareCmd) -> Result<ExitCode> {
    match c {
        FirmwareCmd::Add {
            model,
            version,
            released,
            support,
            end_of_support,
        } => {
            let (m, v) = model_version(&model, &version)?;
            let support: SupportLevel = support.parse()?;
            let released = released.map(|d| date("--released", &d)).transpose()?;
            let eos = end_of_support
                .map(|d| date("--end-of-support", &d))
                .transpose()?;
            let fw = app
                .inv
                .put_firmware(&app.actor, &m, &v, released, support, eos)
                .await?;
            out(app, json!(fw), || {
                format!("firmware {m}@{v}: {}", fw.support_level)
            });
        }
        FirmwareCmd::List { model } => {
            let m = model.as_deref().map(DeviceModel::parse).transpose()?;
            let list = app.inv.store().list_firmware(m.as_ref()).await?;
            out(app, json!(list), || {
                list.iter()
                    .map(|f| {
                        format!(
                            "{:<24} {:<16} released {:<10} {:<14} end of support {}",
                            f.model.as_str(),
                            f.version.as_str(),
                            f.released_on.map(|d| d.to_string()).unwrap_or("-".into()),
                            f.support_level.as_str(),
                            f.end_of_support
                                .map(|d| d.to_string())
                                .unwrap_or("-".into())
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn sbom_cmd(app: &App, c: SbomCmd) -> Result<ExitCode> {
    match c {
        SbomCmd::Import {
            model,
            version,
            file,
            addendum,
            replace,
        } => {
            let (m, v) = model_version(&model, &version)?;
            let bytes = read_bounded(&file, medsec_sbom::MAX_BYTES as u64)?;
            let addendum = match addendum {
                Some(a) => Some(
                    String::from_utf8(read_bounded(&a, 16 * 1024 * 1024)?)
                        .with_context(|| format!("addendum {} is not UTF-8", a.display()))?,
                ),
                None => None,
            };
            let rec = app
                .inv
                .import_sbom(&app.actor, &m, &v, &bytes, addendum.as_deref(), replace)
                .await
                .with_context(|| format!("SBOM {}", file.display()))?;
            out(
                app,
                json!({"model": m, "version": v, "sha256": rec.sha256,
                       "format": rec.sbom.format, "components": rec.sbom.components.len(),
                       "dependencies": rec.sbom.dependencies.len()}),
                || {
                    format!(
                        "stored SBOM for {m}@{v}: {} components ({:?} {})",
                        rec.sbom.components.len(),
                        rec.sbom.format,
                        rec.sbom.spec_version
                    )
                },
            );
        }
        SbomCmd::Export {
            model,
            version,
            out: path,
        } => {
            let (m, v) = model_version(&model, &version)?;
            let rec = app.inv.sbom(&m, &v).await?;
            let doc = medsec_inventory::export_sbom(&rec, &app.cfg.pki.organization)?;
            write_or_print(path.as_deref(), &serde_json::to_string_pretty(&doc)?)?;
        }
        SbomCmd::Diff {
            old,
            new,
            model: Some(model),
        } => {
            let m = DeviceModel::parse(&model)?;
            let a = app.inv.sbom(&m, &FirmwareVersion::parse(&old)?).await?;
            let b = app.inv.sbom(&m, &FirmwareVersion::parse(&new)?).await?;
            print_diff(&medsec_sbom::diff(&a.sbom, &b.sbom), app.json)?;
        }
        SbomCmd::Show { .. } | SbomCmd::Diff { .. } | SbomCmd::FromCargoLock { .. } => {
            bail!("offline sbom commands are handled before the data directory is opened")
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One line per finding: id, component, severity, exploitability, risk, state.
pub fn findings_table(v: &[FindingView]) -> String {
    let mut lines: Vec<String> = v
        .iter()
        .map(|f| {
            format!(
                "{:<10} {:<12} {:<20} {:<48} {:>4} {:<8} {:<6} {:<12} {}{}",
                f.finding.model.as_str(),
                f.finding.version.as_str(),
                f.finding.vuln_id,
                f.finding.component,
                f.finding
                    .cvss_score
                    .map(|s| format!("{s:.1}"))
                    .unwrap_or_else(|| "-".into()),
                format!("{:?}", f.severity).to_lowercase(),
                format!("{:?}", f.exploitability).to_lowercase(),
                f.risk
                    .map(|r| format!("{r:?}").to_lowercase())
                    .unwrap_or_else(|| "closed".into()),
                f.state,
                match (f.finding.kev, f.confidence) {
                    (true, "low") => " KEV low-confidence(cpe)",
                    (true, _) => " KEV",
                    (false, "low") => " low-confidence(cpe)",
                    _ => "",
                }
            )
        })
        .collect();
    lines.push(format!("{} finding(s)", v.len()));
    lines.join("\n")
}

fn parse_status(state: &str, justification: Option<&str>) -> Result<VexStatus> {
    let status = match state {
        "in_triage" => VexStatus::InTriage,
        "affected" | "exploitable" => VexStatus::Affected,
        "not_affected" => VexStatus::NotAffected {
            justification: justification
                .context("--state not_affected needs --justification")?
                .parse::<Justification>()?,
        },
        "fixed" => VexStatus::Fixed,
        "false_positive" => VexStatus::FalsePositive,
        other => bail!(
            "--state {other:?} is not one of in_triage, affected, not_affected, fixed, false_positive"
        ),
    };
    if justification.is_some() && !matches!(status, VexStatus::NotAffected { .. }) {
        bail!("--justification only goes with --state not_affected");
    }
    Ok(status)
}

pub async fn vuln_cmd(app: &App, c: VulnCmd) -> Result<ExitCode> {
    match c {
        VulnCmd::Import { osv, kev } => {
            if osv.is_empty() && kev.is_none() {
                bail!("nothing to import: give --osv PATH (repeatable) and/or --kev FILE");
            }
            let mut docs = Vec::new();
            for p in &osv {
                collect_docs(p, &mut docs)?;
            }
            let pb = progress_bar("storing advisories");
            let stats = app
                .inv
                .import_osv(&app.actor, docs, &|done, total| {
                    pb.set_length(total as u64);
                    pb.set_position(done as u64);
                })
                .await?;
            pb.finish_and_clear();
            let (kev_n, incidents) = match &kev {
                Some(p) => {
                    let (n, exposures) = app
                        .inv
                        .import_kev_exposures(&app.actor, &read_bounded(p, 64 * 1024 * 1024)?)
                        .await
                        .with_context(|| format!("KEV catalog {}", p.display()))?;
                    let svc = crate::postmarket::service(app).await?;
                    let touched = medsec_server::kev_listed(&svc, &exposures).await?;
                    (Some(n), touched)
                }
                None => (None, Vec::new()),
            };
            for t in &incidents {
                eprintln!(
                    "{} {} (rule {}): vulnerability newly in KEV on fielded firmware",
                    if t.opened { "opened" } else { "updated" },
                    t.incident,
                    t.rule
                );
            }
            out(
                app,
                json!({"osv": stats, "kev_entries": kev_n, "incidents": incidents}),
                || {
                    format!(
                        "advisories: {} read, {} new, {} updated, {} unchanged ({} withdrawn){}",
                        stats.read,
                        stats.new,
                        stats.updated,
                        stats.unchanged,
                        stats.withdrawn,
                        kev_n
                            .map(|n| format!("; KEV catalog: {n} entries"))
                            .unwrap_or_default()
                    )
                },
            );
        }
        VulnCmd::Match {
            model,
            version,
            cpe,
        } => {
            let scope = VexScope {
                model: model.as_deref().map(DeviceModel::parse).transpose()?,
                version: version.as_deref().map(FirmwareVersion::parse).transpose()?,
            };
            let pb = progress_bar("matching firmware versions");
            let stats = app
                .inv
                .rematch(&app.actor, &scope, cpe, &|done, total| {
                    pb.set_length(total as u64);
                    pb.set_position(done as u64);
                })
                .await?;
            pb.finish_and_clear();
            for u in &stats.unmatchable {
                eprintln!("warning: not matched: {u}");
            }
            out(app, json!(stats), || {
                format!(
                    "{} firmware version(s), {} components: {} finding(s){}",
                    stats.firmware_versions,
                    stats.components,
                    stats.findings,
                    if cpe {
                        format!(" ({} by CPE, low confidence)", stats.cpe_findings)
                    } else {
                        String::new()
                    }
                )
            });
        }
        VulnCmd::Findings {
            model,
            version,
            all,
        } => {
            let m = model.as_deref().map(DeviceModel::parse).transpose()?;
            let v = version.as_deref().map(FirmwareVersion::parse).transpose()?;
            let mut list = app.inv.findings(m.as_ref(), v.as_ref()).await?;
            if !all {
                list.retain(FindingView::is_open);
            }
            out(app, json!(list), || findings_table(&list));
        }
        VulnCmd::Triage {
            model,
            version,
            vuln,
            component,
            state,
            justification,
            reason,
            action,
        } => {
            let (m, v) = model_version(&model, &version)?;
            let status = parse_status(&state, justification.as_deref())?;
            let d = app
                .inv
                .triage(
                    &app.actor,
                    &m,
                    &v,
                    &vuln,
                    component.as_deref(),
                    status,
                    &reason,
                    action.as_deref(),
                )
                .await?;
            out(app, json!(d), || {
                format!("{} in {m}@{v}: {} ({})", d.vuln_id, d.status, d.author)
            });
        }
        VulnCmd::Affected { vuln } => {
            let list = app.inv.affected_devices(&vuln).await?;
            out(
                app,
                json!({"vulnerability": vuln, "count": list.len(), "devices": list}),
                || {
                    let mut l: Vec<String> = list
                        .iter()
                        .map(|a| format!("{} {}", a.device.urn(), a.firmware))
                        .collect();
                    l.push(format!("{} device(s) affected by {vuln}", list.len()));
                    l.join("\n")
                },
            );
        }
        VulnCmd::Scan { .. } => bail!("vuln scan is handled before the data directory is opened"),
    }
    Ok(ExitCode::SUCCESS)
}

/// The VEX publisher and its namespace URI: from `[vex]`, else the PKI organization.
pub fn publisher(cfg: &crate::config::Config) -> (String, String) {
    let publisher = cfg
        .vex
        .publisher
        .clone()
        .unwrap_or_else(|| cfg.pki.organization.clone());
    let namespace = cfg.vex.namespace.clone().unwrap_or_else(|| {
        let slug: String = publisher
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        format!("urn:medsec:publisher:{slug}")
    });
    (publisher, namespace)
}

pub async fn vex_cmd(app: &App, c: VexCmd) -> Result<ExitCode> {
    let VexCmd::Export {
        format,
        model,
        version,
        out: path,
    } = c;
    let scope = VexScope {
        model: model.as_deref().map(DeviceModel::parse).transpose()?,
        version: version.as_deref().map(FirmwareVersion::parse).transpose()?,
    };
    if scope.version.is_some() && scope.model.is_none() {
        bail!("--version needs --model");
    }
    let (publisher, namespace) = publisher(&app.cfg);
    let doc = app.inv.vex(&scope, &publisher, &namespace).await?;
    let v = match format.as_str() {
        "openvex" => doc.to_openvex(),
        "cyclonedx" => doc.to_cyclonedx(),
        "csaf" => doc.to_csaf(),
        other => bail!("unknown VEX format {other:?}"),
    };
    write_or_print(path.as_deref(), &serde_json::to_string_pretty(&v)?)?;
    if let Some(p) = path.as_deref().filter(|_| !app.json) {
        eprintln!(
            "wrote {} statement(s) as {format} to {}",
            doc.statements.len(),
            Path::new(p).display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
