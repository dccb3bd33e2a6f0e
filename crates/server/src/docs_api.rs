//! Regulatory documentation: gathers what `medsec-docs` needs from every store (shared with
//! the CLI) and serves the generated files for download under the API.

use std::collections::BTreeSet;
use std::path::Path;

use medsec_ca::{Ca, CaStore};
use medsec_core::{DeviceModel, FirmwareVersion};
use medsec_docs::inputs::{
    ComponentRow, CvdFacts, DocInputs, EvidenceRow, FirmwareFacts, MonitoringFacts, PkiFacts,
    ProfileRow, ReleaseRow, UpdateFacts, VulnRow,
};
use medsec_inventory::Inventory;
use medsec_postmarket::service::PostmarketService;
use medsec_risk::service::RiskService;
use medsec_vuln::VexStatus;
use time::{Date, OffsetDateTime};

use crate::postmarket_api::PostmarketSettings;
use crate::problem::Problem;

/// Where the documentation's data lives; the CLI and the server fill it from what they hold.
pub struct DocSources<'a, S> {
    pub ca: &'a Ca<S>,
    pub inventory: &'a Inventory,
    pub risk: &'a RiskService,
    pub postmarket: Option<&'a PostmarketService>,
    pub releases: Option<&'a dyn medsec_updates::UpdateStore>,
    pub evidence: Option<&'a dyn medsec_docs::evidence::EvidenceStore>,
    pub tuf_dir: Option<&'a Path>,
    pub manufacturer: &'a str,
    pub settings: &'a PostmarketSettings,
    pub cvd_acknowledge_days: u16,
    pub cvd_disclosure_days: u16,
}

fn parse_date(s: &str) -> Option<Date> {
    Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).ok()
}

/// The root threshold and key count of the newest root metadata in a TUF repository.
fn tuf_root(dir: &Path) -> Option<(u32, u32)> {
    let meta = dir.join("metadata");
    let newest = std::fs::read_dir(&meta)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.strip_suffix(".root.json")?.parse::<u64>().ok()
        })
        .max()?;
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(meta.join(format!("{newest}.root.json"))).ok()?)
            .ok()?;
    let root = &v["signed"]["roles"]["root"];
    Some((
        u32::try_from(root["threshold"].as_u64()?).ok()?,
        u32::try_from(root["keyids"].as_array()?.len()).ok()?,
    ))
}

/// Everything one documentation set of `model` `version` is built from. Unknown model or
/// version is a 404 naming what exists. The data-as-of date is the newest change among the
/// inputs, so unchanged data gives the same documents on any day.
pub async fn docs_inputs<S: CaStore>(
    src: &DocSources<'_, S>,
    model: &DeviceModel,
    version: &FirmwareVersion,
    now: OffsetDateTime,
) -> Result<DocInputs, Problem> {
    let inv = src.inventory;
    let fw = inv
        .store()
        .get_firmware(model, version)
        .await
        .map_err(|e| Problem::internal("docs", &e))?;
    let Some(fw) = fw else {
        let known: Vec<String> = inv
            .store()
            .list_firmware(Some(model))
            .await
            .map_err(|e| Problem::internal("docs", &e))?
            .into_iter()
            .map(|f| f.version.to_string())
            .collect();
        return Err(Problem::not_found(if known.is_empty() {
            format!("no firmware of model {model} is registered (medsec firmware add)")
        } else {
            format!(
                "model {model} has no firmware {version}; known: {}",
                known.join(", ")
            )
        }));
    };
    let mut changed: Vec<OffsetDateTime> = vec![fw.created_at];
    let components: Vec<ComponentRow> = match inv.store().get_sbom(model, version).await {
        Ok(Some(s)) => {
            changed.push(s.imported_at);
            let mut rows: Vec<ComponentRow> = s
                .sbom
                .components
                .iter()
                .map(|c| ComponentRow {
                    name: c.name.clone(),
                    version: c.version.clone(),
                    supplier: c.supplier.clone(),
                    purl: c.purl.as_ref().map(|p| p.to_string()),
                    support_level: c.support_level.clone(),
                    end_of_support: c.end_of_support.as_deref().and_then(parse_date),
                    licenses: c.licenses.clone(),
                })
                .collect();
            rows.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
            rows
        }
        Ok(None) => Vec::new(),
        Err(e) => return Err(Problem::internal("docs", &e)),
    };
    let views = inv.findings(Some(model), Some(version)).await?;
    let mut findings: Vec<VulnRow> = views
        .iter()
        .map(|v| {
            changed.push(v.finding.last_seen);
            if let Some(d) = &v.decision {
                changed.push(d.at);
            }
            VulnRow {
                id: v.finding.vuln_id.clone(),
                aliases: v.finding.identifiers.clone(),
                component: v.finding.component.clone(),
                summary: v.finding.summary.clone(),
                cvss_score: v.finding.cvss_score,
                severity: format!("{:?}", v.severity).to_lowercase(),
                kev: v.finding.kev,
                state: v.state.clone(),
                justification: v.decision.as_ref().and_then(|d| match &d.status {
                    VexStatus::NotAffected { justification } => {
                        Some(justification.as_str().to_string())
                    }
                    _ => None,
                }),
                rationale: v.decision.as_ref().map(|d| d.detail.clone()),
                risk: v.risk.map(|r| format!("{r:?}").to_lowercase()),
            }
        })
        .collect();
    findings.sort_by(|a, b| (&a.id, &a.component).cmp(&(&b.id, &b.component)));
    let risk = match src.risk.inventory(model).await {
        Ok((_, doc)) => {
            changed.push(doc.at);
            let inputs = crate::risk_inputs(src.ca, Some(inv), model, 30, now).await?;
            let report = src
                .risk
                .report(model, &format!("Risk management: {model}"), &inputs)
                .await?;
            if let Ok(Some(r)) = src
                .risk
                .store()
                .get_doc(model.as_str(), medsec_risk::store::DocKind::Register)
                .await
            {
                changed.push(r.at);
            }
            Some(report)
        }
        Err(medsec_risk::RiskError::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let releases: Vec<ReleaseRow> = match src.releases {
        Some(r) => r
            .list_releases(Some(model.as_str()))
            .await
            .map_err(|e| Problem::internal("docs", &e))?
            .into_iter()
            .filter_map(|r| {
                let t = OffsetDateTime::from_unix_timestamp(r.published_at).ok()?;
                changed.push(t);
                Some(ReleaseRow {
                    version: r.version,
                    security_version: r.security_version,
                    published_on: t.date(),
                    hardware_id: r.hardware_id,
                })
            })
            .collect(),
        None => Vec::new(),
    };
    let mut profiles: Vec<ProfileRow> = src
        .ca
        .list_profiles()
        .await?
        .into_iter()
        .filter(|p| &p.model == model)
        .map(|p| ProfileRow {
            name: p.name.to_string(),
            key_types: p.key_types.iter().map(|k| k.to_string()).collect(),
            validity_days: p.validity_days,
            requires_bootstrap: p.requires_bootstrap,
        })
        .collect();
    profiles.sort_by(|a, b| a.name.cmp(&b.name));
    let cas = src.ca.list_cas().await?;
    let crl_urls: BTreeSet<String> = cas.iter().filter_map(|c| c.crl_url.clone()).collect();
    let ocsp_url = cas.iter().find_map(|c| c.ocsp_url.clone());
    let evidence = match src.evidence {
        Some(e) => {
            let mut rows = Vec::new();
            for x in e
                .list_evidence(model, version)
                .await
                .map_err(|e| Problem::internal("docs", &e))?
            {
                changed.push(x.imported_at);
                rows.push(EvidenceRow {
                    category: x.category.as_str().to_string(),
                    file_name: x.file_name.clone(),
                    sha256: x.sha256.clone(),
                    headline: x.summary.headline(),
                    passed: x.summary.passed(),
                });
            }
            rows
        }
        None => Vec::new(),
    };
    let s = src.settings;
    let base = s
        .csaf_base
        .as_ref()
        .map(|b| b.as_str().trim_end_matches('/').to_string());
    let cvd = CvdFacts {
        contacts: s.security_txt.contact.clone(),
        policy_urls: s.security_txt.policy.clone(),
        intake_url: base.as_ref().map(|b| format!("{b}/cvd/reports")),
        security_txt_url: base
            .as_ref()
            .filter(|_| !s.security_txt.contact.is_empty())
            .map(|b| format!("{b}/.well-known/security.txt")),
        acknowledge_days: src.cvd_acknowledge_days,
        disclosure_days: src.cvd_disclosure_days,
    };
    let rules = src
        .postmarket
        .map(|p| {
            p.rules()
                .rules()
                .iter()
                .map(|r| (r.id.to_string(), r.title.clone()))
                .collect()
        })
        .unwrap_or_default();
    let levels = match &risk {
        Some(r) => r.policy.levels.clone(),
        None => src.risk.policy().await?.levels,
    };
    let monitoring = MonitoringFacts {
        advisory_sources: vec![
            "OSV advisories imported offline, matched by purl and ecosystem version ranges".into(),
            "CISA Known Exploited Vulnerabilities catalog".into(),
        ],
        detection_rules: rules,
        syslog_intake: !s.syslog_gateways.is_empty(),
        event_retention_days: s.retention_days,
        patch_timelines: levels
            .iter()
            .map(|l| {
                (
                    l.name.to_string(),
                    if l.acceptable {
                        "next planned release".to_string()
                    } else {
                        "customers informed within 30 days; fix validated and distributed within 60 days".to_string()
                    },
                )
            })
            .collect(),
    };
    let root = src.tuf_dir.and_then(tuf_root);
    let updates = UpdateFacts {
        tuf_repository: root.is_some(),
        root_threshold: root.map(|r| r.0),
        root_keys: root.map(|r| r.1),
        director: src.releases.is_some() && root.is_some(),
    };
    let as_of = changed.into_iter().max().unwrap_or(fw.created_at).date();
    Ok(DocInputs {
        manufacturer: src.manufacturer.to_string(),
        manufacturer_address: s.manufacturer_address.clone(),
        device_name: model.to_string(),
        model: model.clone(),
        version: version.clone(),
        as_of,
        firmware: Some(FirmwareFacts {
            released_on: fw.released_on,
            support_level: fw.support_level.to_string(),
            end_of_support: fw.end_of_support,
        }),
        risk,
        components,
        findings,
        releases,
        pki: PkiFacts {
            profiles,
            crl_urls: crl_urls.into_iter().collect(),
            ocsp_url,
            est_url: base.map(|b| format!("{b}/.well-known/est")),
        },
        evidence,
        cvd,
        monitoring,
        updates,
    })
}

/// The sources the server holds.
fn sources<S: CaStore>(st: &crate::state::AppState<S>) -> Result<DocSources<'_, S>, Problem> {
    let inventory = st
        .inventory
        .as_deref()
        .ok_or_else(|| Problem::unavailable("vulnerability management"))?;
    let risk = st
        .risk
        .as_deref()
        .ok_or_else(|| Problem::unavailable("risk management"))?;
    let (ack, disc) = st
        .postmarket
        .as_deref()
        .map(|p| {
            let c = p.cvd_policy();
            (c.acknowledge_days, c.disclosure_days)
        })
        .unwrap_or((7, 90));
    Ok(DocSources {
        ca: &st.ca,
        inventory,
        risk,
        postmarket: st.postmarket.as_deref(),
        releases: st.director.as_deref().map(|d| d.store()),
        evidence: st.evidence.as_deref(),
        tuf_dir: st.tuf_dir.as_deref(),
        manufacturer: &st.manufacturer,
        settings: &st.postmarket_settings,
        cvd_acknowledge_days: ack,
        cvd_disclosure_days: disc,
    })
}

pub fn api_router<S: CaStore + 'static>() -> axum::Router<std::sync::Arc<crate::state::AppState<S>>>
{
    axum::Router::new()
        .route(
            "/api/v1/models/{model}/firmware/{version}/docs",
            axum::routing::get(list_docs::<S>),
        )
        .route(
            "/api/v1/models/{model}/firmware/{version}/docs/{file}",
            axum::routing::get(get_doc::<S>),
        )
}

#[derive(serde::Deserialize)]
struct DocQuery {
    format: Option<String>,
}

async fn build<S: CaStore>(
    st: &crate::state::AppState<S>,
    model: &str,
    version: &str,
    formats: &str,
) -> Result<Vec<medsec_docs::set::OutputFile>, Problem> {
    let model = DeviceModel::parse(model).map_err(|e| Problem::bad_request(e.to_string()))?;
    let version =
        FirmwareVersion::parse(version).map_err(|e| Problem::bad_request(e.to_string()))?;
    let formats = medsec_docs::set::Format::parse_list(formats)
        .map_err(|e| Problem::bad_request(e.to_string()))?;
    let now = OffsetDateTime::now_utc();
    let inputs = docs_inputs(&sources(st)?, &model, &version, now).await?;
    // Building is CPU work (PDF layout, XLSX zip): keep it off the async workers.
    tokio::task::spawn_blocking(move || {
        medsec_docs::set::build_documents(&inputs, &formats, None, now)
    })
    .await
    .map_err(|e| Problem::internal("docs build", &e))?
    .map_err(|e| Problem::internal("docs build", &e))
}

async fn list_docs<S: CaStore>(
    axum::extract::State(st): axum::extract::State<std::sync::Arc<crate::state::AppState<S>>>,
    h: axum::http::HeaderMap,
    axum::extract::Path((model, version)): axum::extract::Path<(String, String)>,
    axum::extract::Query(q): axum::extract::Query<DocQuery>,
) -> Result<axum::Json<serde_json::Value>, Problem> {
    crate::api::caller(&st, &h, medsec_auth::Role::Auditor, "read documentation").await?;
    let files = build(
        &st,
        &model,
        &version,
        q.format.as_deref().unwrap_or("html,md,pdf"),
    )
    .await?;
    Ok(axum::Json(serde_json::json!({
        "files": files.iter().map(|f| serde_json::json!({"name": f.name, "size": f.bytes.len()})).collect::<Vec<_>>()
    })))
}

pub(crate) fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("md") => "text/markdown; charset=utf-8",
        Some("pdf") => "application/pdf",
        Some("svg") => "image/svg+xml",
        Some("json") => "application/json",
        Some("xlsx") => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        _ => "application/octet-stream",
    }
}

/// Builds the set in the format `file` needs and returns that file.
pub(crate) async fn build_one<S: CaStore>(
    st: &crate::state::AppState<S>,
    model: &str,
    version: &str,
    file: &str,
) -> Result<medsec_docs::set::OutputFile, Problem> {
    let format = match file.rsplit('.').next().unwrap_or("") {
        "pdf" => "pdf",
        "md" => "md",
        _ => "html",
    };
    build(st, model, version, format)
        .await?
        .into_iter()
        .find(|f| f.name == file)
        .ok_or_else(|| Problem::not_found(format!("no documentation file {file}")))
}

async fn get_doc<S: CaStore>(
    axum::extract::State(st): axum::extract::State<std::sync::Arc<crate::state::AppState<S>>>,
    h: axum::http::HeaderMap,
    axum::extract::Path((model, version, file)): axum::extract::Path<(String, String, String)>,
) -> Result<axum::response::Response, Problem> {
    use axum::response::IntoResponse;
    crate::api::caller(&st, &h, medsec_auth::Role::Auditor, "read documentation").await?;
    let f = build_one(&st, &model, &version, &file).await?;
    let disposition = format!("attachment; filename=\"{}\"", f.name);
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                content_type(&f.name).to_string(),
            ),
            (axum::http::header::CONTENT_DISPOSITION, disposition),
        ],
        f.bytes,
    )
        .into_response())
}
