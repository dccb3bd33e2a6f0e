//! `medsec docs` and `medsec evidence`: regulatory documentation from the data held, and the
//! test evidence it summarises.

use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use medsec_core::{DeviceModel, FirmwareVersion};
use medsec_docs::evidence::{EvidenceKind, NewEvidence, TestCategory};
use medsec_docs::set::{Format, build_documents};
use medsec_risk::service::RiskService;
use medsec_server::{DocSources, Problem, docs_inputs};
use serde_json::json;
use time::OffsetDateTime;

use crate::cli::{DocsCmd, EvidenceCmd};
use crate::{App, out};

fn p(e: Problem) -> anyhow::Error {
    anyhow!("{}", e.detail)
}

pub async fn evidence_cmd(app: &App, c: EvidenceCmd) -> Result<ExitCode> {
    match c {
        EvidenceCmd::Import {
            model,
            version,
            category,
            kind,
            file,
        } => {
            let category: TestCategory = category.parse()?;
            let kind: Option<EvidenceKind> = kind.as_deref().map(str::parse).transpose()?;
            let bytes =
                crate::vuln::read_bounded(&file, medsec_docs::evidence::MAX_EVIDENCE_BYTES as u64)?;
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "evidence".into());
            let e = NewEvidence::new(
                DeviceModel::parse(&model)?,
                FirmwareVersion::parse(&version)?,
                category,
                &name,
                bytes,
                kind,
                app.actor.clone(),
                OffsetDateTime::now_utc(),
            )
            .with_context(|| format!("{}", file.display()))?;
            let id = app.store.add_evidence(&e, &e.audit_record()).await?;
            out(
                app,
                json!({"id": id, "sha256": e.sha256, "summary": e.summary}),
                || format!("imported evidence {id}: {}", e.summary.headline()),
            );
        }
        EvidenceCmd::List { model, version } => {
            let list = app
                .store
                .list_evidence(
                    &DeviceModel::parse(&model)?,
                    &FirmwareVersion::parse(&version)?,
                )
                .await?;
            out(app, json!(list), || {
                list.iter()
                    .map(|e| {
                        format!(
                            "{:>4} {:<17} {:<40} {}",
                            e.id,
                            e.category.as_str(),
                            e.file_name,
                            e.summary.headline()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn inputs(
    app: &App,
    model: &str,
    version: &str,
) -> Result<(medsec_docs::inputs::DocInputs, OffsetDateTime)> {
    let model = DeviceModel::parse(model)?;
    let version = FirmwareVersion::parse(version)?;
    let risk = RiskService::new(app.store.clone());
    let pm = crate::postmarket::service(app).await?;
    let settings = crate::postmarket::settings(&app.cfg, app.cfg.server.https_addr.port())?;
    let (publisher, _) = crate::inventory::publisher(&app.cfg);
    let cvd = pm.cvd_policy();
    let tuf = app.data_dir.join("tuf");
    let src = DocSources {
        ca: &app.ca,
        inventory: &app.inv,
        risk: &risk,
        postmarket: Some(&pm),
        releases: Some(&*app.store),
        evidence: Some(&*app.store),
        tuf_dir: Some(&tuf),
        manufacturer: &publisher,
        settings: &settings,
        cvd_acknowledge_days: cvd.acknowledge_days,
        cvd_disclosure_days: cvd.disclosure_days,
    };
    let now = OffsetDateTime::now_utc();
    Ok((
        docs_inputs(&src, &model, &version, now).await.map_err(p)?,
        now,
    ))
}

pub async fn docs_cmd(app: &App, c: DocsCmd) -> Result<ExitCode> {
    match c {
        DocsCmd::Build {
            model,
            version,
            out: dir,
            format,
            mds2_answers,
        } => {
            let formats = Format::parse_list(&format)?;
            let answers = match &mds2_answers {
                Some(f) => Some(
                    String::from_utf8(crate::vuln::read_bounded(f, 1024 * 1024)?)
                        .with_context(|| format!("{} is not UTF-8", f.display()))?,
                ),
                None => None,
            };
            let (inputs, now) = inputs(app, &model, &version).await?;
            let files =
                build_documents(&inputs, &formats, answers.as_deref(), now).with_context(|| {
                    match &mds2_answers {
                        Some(f) => format!("building the documentation (answers {})", f.display()),
                        None => "building the documentation".into(),
                    }
                })?;
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for f in &files {
                let path = dir.join(&f.name);
                std::fs::write(&path, &f.bytes)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            let gaps = medsec_docs::gaps::gaps(&inputs).len();
            out(
                app,
                json!({"dir": dir, "files": files.iter().map(|f| &f.name).collect::<Vec<_>>(), "gaps": gaps}),
                || {
                    format!(
                        "wrote {} files to {} ({gaps} gaps: see gaps.md or gaps.html)",
                        files.len(),
                        dir.display()
                    )
                },
            );
        }
        DocsCmd::Gaps { model, version } => {
            let (inputs, _) = inputs(app, &model, &version).await?;
            let gaps = medsec_docs::gaps::gaps(&inputs);
            out(app, json!(gaps), || {
                gaps.iter()
                    .map(|g| format!("{:<40} {:<45} {}", g.kind.title(), g.item, g.fix))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}
