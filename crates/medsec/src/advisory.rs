//! `medsec advisory`: CSAF security advisories authored from findings and releases, revised,
//! and published as a CSAF provider directory.

use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use medsec_postmarket::advisory::Advisory;
use medsec_server::{AdvisoryRequest, Problem};
use serde_json::json;
use time::OffsetDateTime;

use crate::cli::AdvisoryCmd;
use crate::{App, out, write_or_print};

fn p(e: Problem) -> anyhow::Error {
    anyhow!("{}", e.detail)
}

fn line(a: &Advisory) -> String {
    format!(
        "{}  v{:<3} {:<8} TLP:{:<6} {}",
        a.id(),
        a.version(),
        a.status().as_str(),
        a.tlp().label(),
        a.content().title
    )
}

pub async fn advisory_cmd(app: &App, c: AdvisoryCmd) -> Result<ExitCode> {
    let svc = crate::postmarket::service(app).await?;
    let store = svc.store();
    let port = app.cfg.server.https_addr.port();
    let base = crate::postmarket::csaf_base(&app.cfg, port)?;
    let (name, namespace) = crate::inventory::publisher(&app.cfg);
    let publisher = medsec_server::csaf_publisher(
        &name,
        &namespace,
        &base,
        &app.cfg.postmarket.security_txt.contact,
    )
    .map_err(p)?;
    // Release history only: reading it must not create the director's key as a side effect.
    let releases: &dyn medsec_updates::UpdateStore = &*app.store;
    let now = OffsetDateTime::now_utc();
    let gen_version = env!("CARGO_PKG_VERSION");
    match c {
        AdvisoryCmd::Create {
            id,
            title,
            model,
            vulns,
            fixed_in,
            summary,
            tlp,
            status,
        } => {
            let req = AdvisoryRequest {
                id,
                title,
                model,
                vulnerabilities: vulns,
                fixed_in,
                summary,
                tlp,
                status: status.clone(),
            };
            let content = medsec_server::author_advisory(&app.inv, Some(releases), publisher, &req)
                .await
                .map_err(p)?;
            let a = medsec_server::create_advisory(
                store,
                &app.actor,
                content,
                medsec_server::parse_advisory_status(&status).map_err(p)?,
                now,
            )
            .await
            .map_err(p)?;
            out(app, a.to_csaf_at(gen_version, &base), || line(&a));
        }
        AdvisoryCmd::Revise {
            id,
            summary,
            status,
            tlp,
            refresh,
        } => {
            let (cur, _) = medsec_server::load_advisory(store, &id).await.map_err(p)?;
            let content = if refresh {
                let c = cur.content();
                let model = c
                    .products
                    .first()
                    .map(|p| p.model.to_string())
                    .context("the advisory names no product")?;
                let req = AdvisoryRequest {
                    id: id.clone(),
                    title: c.title.to_string(),
                    model,
                    vulnerabilities: c
                        .vulnerabilities
                        .iter()
                        .filter_map(|v| {
                            v.cve
                                .as_ref()
                                .map(|c| c.to_string())
                                .or_else(|| v.ids.first().map(|i| i.text.to_string()))
                        })
                        .collect(),
                    fixed_in: Vec::new(),
                    summary: Some(c.summary.to_string()),
                    tlp: c.tlp.label().to_string(),
                    status: cur.status().as_str().to_string(),
                };
                Some(
                    medsec_server::author_advisory(&app.inv, Some(releases), publisher, &req)
                        .await
                        .map_err(p)?,
                )
            } else {
                None
            };
            let a = medsec_server::revise_advisory(
                store,
                &app.actor,
                &id,
                &summary,
                status
                    .as_deref()
                    .map(medsec_server::parse_advisory_status)
                    .transpose()
                    .map_err(p)?,
                tlp.as_deref()
                    .map(medsec_server::parse_tlp)
                    .transpose()
                    .map_err(p)?,
                content,
                now,
            )
            .await
            .map_err(p)?;
            out(app, a.to_csaf_at(gen_version, &base), || line(&a));
        }
        AdvisoryCmd::List => {
            let mut all = Vec::new();
            for s in store.advisories().await? {
                let a: Advisory = serde_json::from_str(&s.body)
                    .with_context(|| format!("stored advisory {}", s.id))?;
                all.push(a);
            }
            out(
                app,
                json!(all.iter().map(|a| json!({"id": a.id(), "version": a.version(),
                    "status": a.status().as_str(), "tlp": a.tlp().label(), "title": a.content().title}))
                    .collect::<Vec<_>>()),
                || all.iter().map(line).collect::<Vec<_>>().join("\n"),
            );
        }
        AdvisoryCmd::Show { id, out: path } => {
            let (a, _) = medsec_server::load_advisory(store, &id).await.map_err(p)?;
            let doc = serde_json::to_string_pretty(&a.to_csaf_at(gen_version, &base))?;
            write_or_print(path.as_deref(), &(doc + "\n"))?;
        }
        AdvisoryCmd::Publish { out: dir } => {
            let (meta, files) =
                medsec_server::provider_files(store, &publisher_for(app, &base)?, &base)
                    .await
                    .map_err(p)?;
            let root = dir.join(".well-known/csaf");
            std::fs::create_dir_all(root.join("white"))
                .with_context(|| format!("creating {}", root.display()))?;
            std::fs::write(
                root.join("provider-metadata.json"),
                serde_json::to_vec_pretty(&meta)?,
            )?;
            for (rel, bytes) in &files {
                let f = root.join("white").join(rel);
                if let Some(parent) = f.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(&f, bytes).with_context(|| format!("writing {}", f.display()))?;
            }
            out(app, json!({"files": files.len() + 1, "dir": root}), || {
                format!(
                    "wrote provider-metadata.json and {} files under {}",
                    files.len(),
                    root.join("white").display()
                )
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn publisher_for(
    app: &App,
    base: &medsec_postmarket::advisory::ProviderBaseUrl,
) -> Result<medsec_postmarket::advisory::Publisher> {
    let (name, namespace) = crate::inventory::publisher(&app.cfg);
    medsec_server::csaf_publisher(
        &name,
        &namespace,
        base,
        &app.cfg.postmarket.security_txt.contact,
    )
    .map_err(p)
}
