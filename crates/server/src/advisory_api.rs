//! CSAF security advisories: authored from a model's findings, triage decisions and published
//! releases; kept with every revision; published as a CSAF provider (`/.well-known/csaf/`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use medsec_auth::Role;
use medsec_ca::CaStore;
use medsec_core::{Actor, AuditAction, AuditRecord, DeviceModel, FirmwareVersion, StoreError};
use medsec_inventory::Inventory;
use medsec_postmarket::PostmarketError;
use medsec_postmarket::advisory::{
    Advisory, AdvisoryContent, AdvisoryStatus, ProviderBaseUrl, ProviderRole, PublishedAdvisory,
    Publisher, Tlp, directory_files, provider_metadata,
};
use medsec_postmarket::store::PostmarketStore;
use medsec_vuln::VexStatus;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::api::caller;
use crate::problem::Problem;
use crate::state::AppState;

/// What an author asks for; the rest comes from the data held.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdvisoryRequest {
    pub id: String,
    pub title: String,
    pub model: String,
    pub vulnerabilities: Vec<String>,
    #[serde(default)]
    pub fixed_in: Vec<String>,
    pub summary: Option<String>,
    #[serde(default = "default_tlp")]
    pub tlp: String,
    #[serde(default = "default_status")]
    pub status: String,
}

fn default_tlp() -> String {
    "amber".into()
}

fn default_status() -> String {
    "draft".into()
}

fn bad(e: impl std::fmt::Display) -> Problem {
    Problem::bad_request(e.to_string())
}

pub fn parse_tlp(s: &str) -> Result<Tlp, Problem> {
    s.to_ascii_uppercase().parse::<Tlp>().map_err(bad)
}

pub fn parse_status(s: &str) -> Result<AdvisoryStatus, Problem> {
    s.parse::<AdvisoryStatus>().map_err(bad)
}

/// The publisher as CSAF needs it: a name and an https namespace.
pub fn publisher(
    name: &str,
    namespace: &str,
    base: &ProviderBaseUrl,
    contact: &[String],
) -> Result<Publisher, Problem> {
    // A `urn:` namespace (fine for VEX) is not an https URL; the provider's own base is.
    let ns = if namespace.starts_with("https://") {
        namespace.to_string()
    } else {
        base.as_str().to_string()
    };
    let mut p = json!({ "name": name, "namespace": ns });
    if !contact.is_empty() {
        p["contact_details"] = json!(contact.join(", "));
    }
    serde_json::from_value(p).map_err(|e| bad(format!("publisher: {e}")))
}

fn system_name(id: &str) -> &'static str {
    if id.starts_with("GHSA-") {
        "GitHub Security Advisory"
    } else {
        "OSV"
    }
}

/// Builds the advisory content for `req` from the model's findings (affected, not affected and
/// fixed by triage), the CVSS and KEV facts of the findings, and the releases that fix them:
/// given explicitly, or the published releases newer (by TUF security version) than every
/// affected release and with no open finding for the vulnerability.
pub async fn author(
    inv: &Inventory,
    releases: Option<&dyn medsec_updates::UpdateStore>,
    publisher: Publisher,
    req: &AdvisoryRequest,
) -> Result<AdvisoryContent, Problem> {
    let model = DeviceModel::parse(&req.model).map_err(bad)?;
    if req.vulnerabilities.is_empty() {
        return Err(bad("name at least one vulnerability"));
    }
    let views = inv.findings(Some(&model), None).await?;
    let releases = match releases {
        Some(d) => d
            .list_releases(Some(model.as_str()))
            .await
            .map_err(|e| Problem::internal("advisory releases", &e))?,
        None => Vec::new(),
    };
    let secver: BTreeMap<&str, u64> = releases
        .iter()
        .map(|r| (r.version.as_str(), r.security_version))
        .collect();
    let explicit: Vec<FirmwareVersion> = req
        .fixed_in
        .iter()
        .map(|v| FirmwareVersion::parse(v).map_err(bad))
        .collect::<Result<_, _>>()?;
    let mut all_versions: BTreeSet<String> = BTreeSet::new();
    let mut vulns = Vec::new();
    for id in &req.vulnerabilities {
        let named: Vec<_> = views.iter().filter(|v| v.finding.is_named(id)).collect();
        if named.is_empty() {
            return Err(Problem::not_found(format!(
                "no finding of {model} names {id}: import the SBOM and advisories and run `vuln match` first"
            )));
        }
        let (mut affected, mut not_affected, mut fixed) =
            (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        for v in &named {
            let ver = v.finding.version.to_string();
            match v.decision.as_ref().map(|d| &d.status) {
                Some(VexStatus::NotAffected { .. }) | Some(VexStatus::FalsePositive) => {
                    not_affected.insert(ver);
                }
                Some(VexStatus::Fixed) => {
                    fixed.insert(ver);
                }
                _ => {
                    affected.insert(ver);
                }
            }
        }
        // A version with one open finding is affected, whatever another component's decision.
        not_affected.retain(|v| !affected.contains(v));
        fixed.retain(|v| !affected.contains(v));
        let fixed_in: BTreeSet<String> = if !explicit.is_empty() {
            for v in &explicit {
                if affected.contains(v.as_str()) {
                    return Err(bad(format!("{v} still has an open finding for {id}")));
                }
            }
            explicit.iter().map(|v| v.to_string()).collect()
        } else {
            let floor = affected
                .iter()
                .filter_map(|v| secver.get(v.as_str()))
                .max()
                .copied();
            releases
                .iter()
                .filter(|r| !affected.contains(&r.version))
                .filter(|r| floor.is_none_or(|f| r.security_version > f))
                .filter(|r| !not_affected.contains(&r.version))
                .map(|r| r.version.clone())
                .collect()
        };
        for v in &fixed_in {
            fixed.insert(v.clone());
            not_affected.remove(v);
        }
        let first = named[0];
        let f = &first.finding;
        let cve = std::iter::once(&f.vuln_id)
            .chain(f.identifiers.iter())
            .find(|i| i.starts_with("CVE-"))
            .cloned();
        let ids: Vec<Value> = f
            .identifiers
            .iter()
            .chain(std::iter::once(&f.vuln_id))
            .filter(|i| Some(*i) != cve.as_ref())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|i| json!({"system_name": system_name(i), "text": i}))
            .collect();
        let components: BTreeSet<&str> =
            named.iter().map(|v| v.finding.component.as_str()).collect();
        let title = f
            .summary
            .clone()
            .unwrap_or_else(|| format!("Vulnerability {id}"));
        let description = format!(
            "{} Affected component(s): {}.",
            f.summary
                .clone()
                .unwrap_or_else(|| format!("{id} affects a component of the firmware.")),
            components.into_iter().collect::<Vec<_>>().join(", ")
        );
        let cvss = named
            .iter()
            .filter_map(|v| v.finding.cvss_vector.as_deref())
            .find(|c| c.starts_with("CVSS:3."));
        let kev = named.iter().any(|v| v.finding.kev);
        let pr = |set: &BTreeSet<String>| {
            set.iter()
                .map(|v| json!({"model": model, "version": v}))
                .collect::<Vec<_>>()
        };
        let mut status = serde_json::Map::new();
        for (k, set) in [
            ("known_affected", &affected),
            ("fixed", &fixed),
            ("known_not_affected", &not_affected),
        ] {
            if !set.is_empty() {
                status.insert(k.into(), json!(pr(set)));
            }
        }
        let mut vuln = json!({
            "title": title,
            "description": description,
            "known_exploited": kev,
            "product_status": status,
        });
        if let Some(c) = &cve {
            vuln["cve"] = json!(c);
        }
        if !ids.is_empty() {
            vuln["ids"] = json!(ids);
        }
        if let Some(c) = cvss {
            vuln["cvss_v3"] = json!(c);
        }
        if !affected.is_empty() {
            let text = if fixed_in.is_empty() {
                "No fixed firmware is available yet. Apply the mitigations in this advisory and watch for its next revision.".to_string()
            } else {
                format!(
                    "Update to firmware {} through the manufacturer's signed update service (devices verify the update before installing it).",
                    fixed_in.iter().cloned().collect::<Vec<_>>().join(" or ")
                )
            };
            vuln["remediation"] = json!({"vendor_fix": text, "fixed_in": pr(&fixed_in)});
        }
        all_versions.extend(affected);
        all_versions.extend(fixed);
        all_versions.extend(not_affected);
        vulns.push(vuln);
    }
    let summary = req.summary.clone().unwrap_or_else(|| {
        format!(
            "{} vulnerabilit{} affect{} {model} firmware: {}.",
            req.vulnerabilities.len(),
            if req.vulnerabilities.len() == 1 {
                "y"
            } else {
                "ies"
            },
            if req.vulnerabilities.len() == 1 {
                "s"
            } else {
                ""
            },
            req.vulnerabilities.join(", ")
        )
    });
    let content = json!({
        "id": req.id,
        "title": req.title,
        "tlp": parse_tlp(&req.tlp)?,
        "publisher": publisher,
        "summary": summary,
        "products": [{"model": model, "firmware_versions": all_versions}],
        "vulnerabilities": vulns,
    });
    serde_json::from_value(content).map_err(|e| bad(format!("advisory: {e}")))
}

fn from_pm(e: PostmarketError) -> Problem {
    e.into()
}

/// Stores the first revision; refused (409) if the id exists.
pub async fn create(
    store: &dyn PostmarketStore,
    actor: &Actor,
    content: AdvisoryContent,
    status: AdvisoryStatus,
    now: OffsetDateTime,
) -> Result<Advisory, Problem> {
    let a = Advisory::new(content, "Initial version.", now, status).map_err(from_pm)?;
    save(store, actor, &a, None).await?;
    Ok(a)
}

async fn save(
    store: &dyn PostmarketStore,
    actor: &Actor,
    a: &Advisory,
    expected: Option<u64>,
) -> Result<u64, Problem> {
    let body = serde_json::to_string(a).map_err(|e| Problem::internal("advisory", &e))?;
    let rec = AuditRecord::new(
        actor,
        AuditAction::AdvisoryChanged,
        a.id().as_str(),
        json!({"version": a.version(), "status": a.status().as_str(), "tlp": a.tlp().label()}),
    );
    store
        .put_advisory(a.id().as_str(), &body, expected, actor, &rec)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => Problem::conflict(format!(
                "advisory {} already exists or changed meanwhile; revise it instead",
                a.id()
            )),
            e => Problem::internal("advisory store", &e),
        })
}

/// The newest revision of a stored advisory and its store version.
pub async fn load(store: &dyn PostmarketStore, id: &str) -> Result<(Advisory, u64), Problem> {
    let s = store
        .advisory(id)
        .await
        .map_err(|e| Problem::internal("advisory store", &e))?
        .ok_or_else(|| Problem::not_found(format!("no advisory {id}")))?;
    let a: Advisory =
        serde_json::from_str(&s.body).map_err(|e| Problem::internal("stored advisory", &e))?;
    Ok((a, s.version))
}

/// Adds a revision (status/TLP change, or new content) and stores it.
#[allow(clippy::too_many_arguments)]
pub async fn revise(
    store: &dyn PostmarketStore,
    actor: &Actor,
    id: &str,
    summary: &str,
    status: Option<AdvisoryStatus>,
    tlp: Option<Tlp>,
    content: Option<AdvisoryContent>,
    now: OffsetDateTime,
) -> Result<Advisory, Problem> {
    let (mut a, version) = load(store, id).await?;
    let status = status.unwrap_or(a.status());
    let mut c = content.unwrap_or_else(|| a.content().clone());
    if let Some(t) = tlp {
        c.tlp = t;
    }
    if c == *a.content() {
        a.revise(summary, now, status).map_err(from_pm)?;
    } else {
        a.revise_with(c, summary, now, status).map_err(from_pm)?;
    }
    save(store, actor, &a, Some(version)).await?;
    Ok(a)
}

/// Every stored advisory's newest revision, published under `base`.
pub async fn published(
    store: &dyn PostmarketStore,
    base: &ProviderBaseUrl,
) -> Result<Vec<PublishedAdvisory>, Problem> {
    let mut out = Vec::new();
    for s in store
        .advisories()
        .await
        .map_err(|e| Problem::internal("advisory store", &e))?
    {
        let a: Advisory =
            serde_json::from_str(&s.body).map_err(|e| Problem::internal("stored advisory", &e))?;
        out.push(a.publish(env!("CARGO_PKG_VERSION"), base));
    }
    Ok(out)
}

/// The provider directory: `provider-metadata.json` and the files under `white/`.
pub async fn provider_files(
    store: &dyn PostmarketStore,
    publisher: &Publisher,
    base: &ProviderBaseUrl,
) -> Result<(Value, Vec<(String, Vec<u8>)>), Problem> {
    let docs = published(store, base).await?;
    let files = directory_files(&docs).map_err(from_pm)?;
    let last = docs
        .iter()
        .filter(|d| d.tlp().is_public() && d.status().is_released())
        .map(|d| d.current_release_date())
        .max()
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let meta =
        provider_metadata(publisher, base, last, ProviderRole::CsafProvider).map_err(from_pm)?;
    Ok((meta, files))
}

pub fn public_router<S: CaStore + 'static>() -> Router<Arc<AppState<S>>> {
    Router::new()
        .route(
            "/.well-known/csaf/provider-metadata.json",
            get(provider_metadata_route::<S>),
        )
        .route("/.well-known/csaf/white/{*path}", get(white_file::<S>))
}

pub fn api_router<S: CaStore + 'static>() -> Router<Arc<AppState<S>>> {
    Router::new()
        .route("/api/v1/advisories", get(list::<S>).post(create_route::<S>))
        .route("/api/v1/advisories/{id}", get(show::<S>))
        .route("/api/v1/advisories/{id}/revise", post(revise_route::<S>))
}

struct Ctx<'a> {
    store: &'a dyn PostmarketStore,
    base: ProviderBaseUrl,
    publisher: Publisher,
}

fn ctx<S>(st: &AppState<S>) -> Result<Ctx<'_>, Problem> {
    let svc = st
        .postmarket
        .as_deref()
        .ok_or_else(|| Problem::unavailable("post-market surveillance"))?;
    let base =
        st.postmarket_settings.csaf_base.clone().ok_or_else(|| {
            Problem::unavailable("CSAF publication (set postmarket.csaf_base_url)")
        })?;
    let publisher = publisher(
        &st.manufacturer,
        &st.vex_namespace,
        &base,
        &st.postmarket_settings.security_txt.contact,
    )?;
    Ok(Ctx {
        store: svc.store(),
        base,
        publisher,
    })
}

async fn provider_metadata_route<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
) -> Result<Json<Value>, Problem> {
    let c = ctx(&st)?;
    Ok(Json(
        provider_files(c.store, &c.publisher, &c.base).await?.0,
    ))
}

async fn white_file<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    Path(path): Path<String>,
) -> Result<Response, Problem> {
    let c = ctx(&st)?;
    let (_, files) = provider_files(c.store, &c.publisher, &c.base).await?;
    // Served only by exact name from the generated set: no file system, no traversal.
    let (name, bytes) = files
        .into_iter()
        .find(|(p, _)| *p == path)
        .ok_or_else(|| Problem::not_found(format!("no public CSAF file {path}")))?;
    let ctype = if name.ends_with(".json") {
        "application/json"
    } else if name.ends_with(".csv") {
        "text/csv; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    Ok(([(header::CONTENT_TYPE, ctype)], bytes).into_response())
}

async fn list<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
) -> Result<Json<Value>, Problem> {
    caller(&st, &h, Role::Auditor, "read advisories").await?;
    let c = ctx(&st)?;
    let mut out = Vec::new();
    for s in c
        .store
        .advisories()
        .await
        .map_err(|e| Problem::internal("advisory store", &e))?
    {
        let a: Advisory =
            serde_json::from_str(&s.body).map_err(|e| Problem::internal("stored advisory", &e))?;
        out.push(json!({
            "id": a.id(), "title": a.content().title, "tlp": a.tlp().label(),
            "status": a.status().as_str(), "version": a.version(),
            "current_release_date": a.current_release_date().unix_timestamp(),
        }));
    }
    Ok(Json(json!({ "advisories": out })))
}

async fn show<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    caller(&st, &h, Role::Auditor, "read advisories").await?;
    let c = ctx(&st)?;
    let (a, _) = load(c.store, &id).await?;
    Ok(Json(a.to_csaf_at(env!("CARGO_PKG_VERSION"), &c.base)))
}

async fn create_route<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let p = caller(&st, &h, Role::Operator, "author advisories").await?;
    let req: AdvisoryRequest =
        serde_json::from_slice(&body).map_err(|e| bad(format!("invalid JSON body: {e}")))?;
    let c = ctx(&st)?;
    let inv = st
        .inventory
        .as_deref()
        .ok_or_else(|| Problem::unavailable("vulnerability management"))?;
    let content = author(
        inv,
        st.director.as_deref().map(|d| d.store()),
        c.publisher.clone(),
        &req,
    )
    .await?;
    let a = create(
        c.store,
        &p.actor(),
        content,
        parse_status(&req.status)?,
        OffsetDateTime::now_utc(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(a.to_csaf_at(env!("CARGO_PKG_VERSION"), &c.base)),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviseBody {
    pub summary: String,
    pub status: Option<String>,
    pub tlp: Option<String>,
    /// Re-derive the content from the data held now, with these request fields.
    pub refresh: Option<AdvisoryRequest>,
}

async fn revise_route<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, Problem> {
    let p = caller(&st, &h, Role::Operator, "revise advisories").await?;
    let b: ReviseBody =
        serde_json::from_slice(&body).map_err(|e| bad(format!("invalid JSON body: {e}")))?;
    let c = ctx(&st)?;
    let content = match &b.refresh {
        Some(req) => {
            if req.id != id {
                return Err(bad("refresh.id must be the advisory's id"));
            }
            let inv = st
                .inventory
                .as_deref()
                .ok_or_else(|| Problem::unavailable("vulnerability management"))?;
            Some(
                author(
                    inv,
                    st.director.as_deref().map(|d| d.store()),
                    c.publisher.clone(),
                    req,
                )
                .await?,
            )
        }
        None => None,
    };
    let a = revise(
        c.store,
        &p.actor(),
        &id,
        &b.summary,
        b.status.as_deref().map(parse_status).transpose()?,
        b.tlp.as_deref().map(parse_tlp).transpose()?,
        content,
        OffsetDateTime::now_utc(),
    )
    .await?;
    Ok(Json(a.to_csaf_at(env!("CARGO_PKG_VERSION"), &c.base)))
}
