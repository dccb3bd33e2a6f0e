//! `medsec risk`: the trust-relationship inventory, threat model and risk register of a model.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use medsec_core::DeviceModel;
use medsec_risk::service::RiskService;
use medsec_risk::store::{DocKind, GLOBAL};
use medsec_risk::{FindingInputs, RiskId};
use serde_json::json;
use time::OffsetDateTime;

use crate::cli::RiskCmd;
use crate::{App, out, write_or_print};

fn text(p: &Path) -> Result<String> {
    String::from_utf8(crate::vuln::read_bounded(p, 1024 * 1024)?)
        .with_context(|| format!("{} is not UTF-8", p.display()))
}

async fn inputs(app: &App, model: &DeviceModel, days: u32) -> Result<FindingInputs> {
    medsec_server::risk_inputs(
        &app.ca,
        Some(&app.inv),
        model,
        days,
        OffsetDateTime::now_utc(),
    )
    .await
    .map_err(|p| anyhow::anyhow!("{}", p.detail))
}

pub async fn risk_cmd(app: &App, c: RiskCmd) -> Result<ExitCode> {
    let svc = RiskService::new(app.store.clone());
    let m = |s: &str| DeviceModel::parse(s);
    match c {
        RiskCmd::SetInventory { model, file } => {
            let mm = m(&model)?;
            let (inv, v) = svc
                .put_inventory(&app.actor, &mm, &text(&file)?)
                .await
                .with_context(|| format!("inventory {}", file.display()))?;
            out(
                app,
                json!({"model": mm, "version": v, "endpoints": inv.endpoints.len(), "links": inv.links.len()}),
                || {
                    format!(
                        "stored inventory of {mm} (version {v}): {} endpoints, {} links",
                        inv.endpoints.len(),
                        inv.links.len()
                    )
                },
            );
        }
        RiskCmd::SetRegister { model, file } => {
            let mm = m(&model)?;
            let (reg, v) = svc
                .put_register(&app.actor, &mm, &text(&file)?)
                .await
                .with_context(|| format!("register {}", file.display()))?;
            out(
                app,
                json!({"model": mm, "version": v, "risks": reg.risks.len()}),
                || {
                    format!(
                        "stored register of {mm} (version {v}): {} risks",
                        reg.risks.len()
                    )
                },
            );
        }
        RiskCmd::SetPolicy { file } => {
            let (_, v) = svc
                .put_policy(&app.actor, &text(&file)?)
                .await
                .with_context(|| format!("policy {}", file.display()))?;
            out(app, json!({"version": v}), || {
                format!("stored policy version {v}; registers are re-rated against it")
            });
        }
        RiskCmd::SetRules { file } => {
            let (_, v) = svc
                .put_rules(&app.actor, &text(&file)?)
                .await
                .with_context(|| format!("rules {}", file.display()))?;
            out(app, json!({"version": v}), || {
                format!("stored rule set version {v}")
            });
        }
        RiskCmd::Get {
            doc,
            model,
            out: path,
        } => {
            let body = match (doc.as_str(), model) {
                ("inventory", Some(mm)) => svc.inventory(&m(&mm)?).await?.1.body,
                ("register", Some(mm)) => svc.register(&m(&mm)?).await?.to_toml()?,
                ("inventory" | "register", None) => bail!("{doc} is per model: give --model"),
                ("policy", _) => match svc.store().get_doc(GLOBAL, DocKind::Policy).await? {
                    Some(d) => d.body,
                    None => medsec_risk::Policy::default_policy_toml().to_owned(),
                },
                ("rules", _) => match svc.store().get_doc(GLOBAL, DocKind::Rules).await? {
                    Some(d) => d.body,
                    None => medsec_risk::RuleSet::default_rules_toml().to_owned(),
                },
                (other, _) => {
                    bail!("unknown document {other:?}: inventory, register, policy or rules")
                }
            };
            write_or_print(path.as_deref(), &body)?;
        }
        RiskCmd::Findings { model, expiry_days } => {
            let mm = m(&model)?;
            let f = svc
                .findings(&mm, &inputs(app, &mm, expiry_days).await?)
                .await?;
            out(app, json!(f), || {
                let mut l: Vec<String> = f
                    .iter()
                    .map(|x| {
                        format!(
                            "{:<48} {:<8} {}",
                            x.id.as_str(),
                            x.severity.as_str(),
                            x.explanation
                        )
                    })
                    .collect();
                l.push(format!("{} finding(s)", f.len()));
                l.join("\n")
            });
        }
        RiskCmd::Threats { model } => {
            let tm = svc.threats(&m(&model)?).await?;
            out(app, json!(tm), || {
                let mut l: Vec<String> = tm
                    .threats
                    .iter()
                    .map(|t| {
                        format!(
                            "{:<48} {:?} {:?} {}",
                            t.id.as_str(),
                            t.category,
                            t.status,
                            t.title
                        )
                    })
                    .collect();
                l.push(format!("{} threat(s)", tm.threats.len()));
                l.join("\n")
            });
        }
        RiskCmd::Assess { model } => {
            let policy = svc.policy().await?;
            let a = svc.register(&m(&model)?).await?.assess(&policy)?;
            out(app, json!(a), || {
                serde_json::to_string_pretty(&a).unwrap_or_default()
            });
        }
        RiskCmd::Signoff { model, risk } => {
            let mm = m(&model)?;
            let id = RiskId::parse(&risk).map_err(|e| anyhow::anyhow!("--risk: {e}"))?;
            let v = svc
                .sign_off(&app.actor, &mm, &id, OffsetDateTime::now_utc())
                .await?;
            out(
                app,
                json!({"model": mm, "risk": id, "by": app.actor, "register_version": v}),
                || format!("{id} signed off by {} (register version {v})", app.actor),
            );
        }
        RiskCmd::Trace { model, expiry_days } => {
            let mm = m(&model)?;
            let t = svc
                .trace(&mm, &inputs(app, &mm, expiry_days).await?)
                .await?;
            out(app, json!(t), || {
                serde_json::to_string_pretty(&t).unwrap_or_default()
            });
        }
        RiskCmd::Report {
            model,
            format,
            out: path,
            expiry_days,
        } => {
            let mm = m(&model)?;
            let r = svc
                .report(
                    &mm,
                    &format!("Cybersecurity risk management report: {mm}"),
                    &inputs(app, &mm, expiry_days).await?,
                )
                .await?;
            let body = match format.as_str() {
                "html" => r.to_html(),
                "json" => r.to_json()?,
                "text" => r.to_text(),
                _ => r.to_markdown(),
            };
            write_or_print(path.as_deref(), &body)?;
        }
        RiskCmd::ImportThreatDragon {
            model,
            file,
            store,
            out: path,
        } => {
            let mm = m(&model)?;
            let imp = medsec_risk::threat_dragon::import(&text(&file)?, mm.clone())
                .with_context(|| format!("Threat Dragon model {}", file.display()))?;
            for w in &imp.warnings {
                eprintln!("note: {w}");
            }
            let toml = imp.inventory.to_toml()?;
            if store {
                svc.put_inventory(&app.actor, &mm, &toml).await?;
            }
            write_or_print(path.as_deref(), &toml)?;
            eprintln!(
                "{}: {} endpoints, {} links, {} threats",
                imp.title,
                imp.inventory.endpoints.len(),
                imp.inventory.links.len(),
                imp.threats.len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
