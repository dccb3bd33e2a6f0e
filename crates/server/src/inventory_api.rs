//! The vulnerability-management REST API: firmware versions, SBOMs, advisories, matching,
//! findings, triage, affected devices and VEX; plus the device's own firmware report.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use medsec_auth::Role;
use medsec_ca::CaStore;
use medsec_core::{DeviceId, DeviceModel, FirmwareVersion};
use medsec_inventory::{FindingView, Inventory, InventoryError, SupportLevel, VexScope};
use medsec_vuln::{Justification, VexStatus};
use serde::Deserialize;
use serde_json::{Value, json};
use time::Date;

use crate::api::caller;
use crate::problem::Problem;
use crate::state::AppState;

/// SBOMs of real firmware reach tens of MiB (the SBOM crate's own ceiling is 64 MiB).
const MAX_SBOM_BODY: usize = medsec_sbom::MAX_BYTES;
/// An OSV ecosystem zip can be large; bigger imports belong to `medsec vuln import`.
const MAX_ADVISORY_BODY: usize = 256 * 1024 * 1024;

pub fn router<S: CaStore + 'static>() -> Router<Arc<AppState<S>>> {
    Router::new()
        .route("/api/v1/firmware", get(list_firmware::<S>))
        .route("/api/v1/firmware/{model}/{version}", put(put_firmware::<S>))
        .route(
            "/api/v1/firmware/{model}/{version}/sbom",
            put(put_sbom::<S>)
                .layer(DefaultBodyLimit::max(MAX_SBOM_BODY))
                .get(get_sbom::<S>),
        )
        .route(
            "/api/v1/firmware/{model}/diff/{old}/{new}",
            get(diff_sbom::<S>),
        )
        .route(
            "/api/v1/advisories/osv",
            post(import_osv::<S>).layer(DefaultBodyLimit::max(MAX_ADVISORY_BODY)),
        )
        .route(
            "/api/v1/advisories/kev",
            post(import_kev::<S>).layer(DefaultBodyLimit::max(MAX_ADVISORY_BODY)),
        )
        .route("/api/v1/match", post(rematch::<S>))
        .route("/api/v1/findings", get(findings::<S>))
        .route("/api/v1/findings/triage", post(triage::<S>))
        .route(
            "/api/v1/vulnerabilities/{id}/affected-devices",
            get(affected::<S>),
        )
        .route("/api/v1/devices/{urn}/findings", get(device_findings::<S>))
        .route(
            "/api/v1/devices/{urn}/firmware",
            put(set_device_firmware::<S>),
        )
        .route("/api/v1/vex", get(vex::<S>))
}

impl From<InventoryError> for Problem {
    fn from(e: InventoryError) -> Self {
        use medsec_core::StoreError;
        match &e {
            InventoryError::Sbom(_)
            | InventoryError::Advisory { .. }
            | InventoryError::Vuln(_)
            | InventoryError::Invalid { .. } => Problem::bad_request(e.to_string()),
            InventoryError::NotFound { .. } | InventoryError::Store(StoreError::NotFound(_)) => {
                Problem::not_found(e.to_string())
            }
            InventoryError::Store(StoreError::Conflict(_)) => Problem::conflict(e.to_string()),
            InventoryError::Store(StoreError::Refused(_)) => Problem::forbidden(e.to_string()),
            _ => Problem::internal("inventory", &e),
        }
    }
}

fn bad(e: impl std::fmt::Display) -> Problem {
    Problem::bad_request(e.to_string())
}

fn inv<S>(st: &AppState<S>) -> Result<&Inventory, Problem> {
    st.inventory
        .as_deref()
        .ok_or_else(|| Problem::unavailable("vulnerability management"))
}

fn mv(model: &str, version: &str) -> Result<(DeviceModel, FirmwareVersion), Problem> {
    Ok((
        DeviceModel::parse(model).map_err(bad)?,
        FirmwareVersion::parse(version).map_err(bad)?,
    ))
}

const DATE: &[time::format_description::FormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

fn date(field: &str, s: Option<&str>) -> Result<Option<Date>, Problem> {
    s.map(|d| {
        Date::parse(d, DATE).map_err(|_| bad(format!("{field} {d:?} is not a YYYY-MM-DD date")))
    })
    .transpose()
}

#[derive(Deserialize)]
struct ModelQuery {
    model: Option<String>,
}

async fn list_firmware<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Query(q): Query<ModelQuery>,
) -> Result<Json<Value>, Problem> {
    caller(&st, &h, Role::Auditor, "read firmware versions").await?;
    let m = q
        .model
        .as_deref()
        .map(DeviceModel::parse)
        .transpose()
        .map_err(bad)?;
    Ok(Json(json!(
        inv(&st)?
            .store()
            .list_firmware(m.as_ref())
            .await
            .map_err(InventoryError::from)?
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirmwareBody {
    pub released_on: Option<String>,
    pub support_level: Option<String>,
    pub end_of_support: Option<String>,
}

async fn put_firmware<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Path((model, version)): Path<(String, String)>,
    body: Result<Json<FirmwareBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, Problem> {
    let p = caller(&st, &h, Role::Operator, "register firmware versions").await?;
    let Json(b) = body.map_err(|e| bad(e.body_text()))?;
    let (m, v) = mv(&model, &version)?;
    let support: SupportLevel = b.support_level.as_deref().unwrap_or("supported").parse()?;
    let fw = inv(&st)?
        .put_firmware(
            &p.actor(),
            &m,
            &v,
            date("released_on", b.released_on.as_deref())?,
            support,
            date("end_of_support", b.end_of_support.as_deref())?,
        )
        .await?;
    Ok(Json(json!(fw)))
}

#[derive(Deserialize)]
struct ReplaceQuery {
    #[serde(default)]
    replace: bool,
}

async fn put_sbom<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Path((model, version)): Path<(String, String)>,
    Query(q): Query<ReplaceQuery>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let p = caller(&st, &h, Role::Operator, "import SBOMs").await?;
    let (m, v) = mv(&model, &version)?;
    let rec = inv(&st)?
        .import_sbom(&p.actor(), &m, &v, &body, None, q.replace)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"model": m, "version": v, "sha256": rec.sha256,
                    "format": rec.sbom.format, "components": rec.sbom.components.len()})),
    ))
}

async fn get_sbom<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Path((model, version)): Path<(String, String)>,
) -> Result<Response, Problem> {
    caller(&st, &h, Role::Auditor, "read SBOMs").await?;
    let (m, v) = mv(&model, &version)?;
    let rec = inv(&st)?.sbom(&m, &v).await?;
    let doc = medsec_inventory::export_sbom(&rec, &st.manufacturer).map_err(Problem::from)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/vnd.cyclonedx+json; version=1.5",
        )],
        serde_json::to_vec_pretty(&doc).unwrap_or_default(),
    )
        .into_response())
}

async fn diff_sbom<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Path((model, old, new)): Path<(String, String, String)>,
) -> Result<Json<Value>, Problem> {
    caller(&st, &h, Role::Auditor, "read SBOMs").await?;
    let (m, a) = mv(&model, &old)?;
    let b = FirmwareVersion::parse(&new).map_err(bad)?;
    let i = inv(&st)?;
    let (a, b) = (i.sbom(&m, &a).await?, i.sbom(&m, &b).await?);
    Ok(Json(json!(medsec_sbom::diff(&a.sbom, &b.sbom))))
}

async fn import_osv<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, Problem> {
    let p = caller(&st, &h, Role::Operator, "import advisories").await?;
    let stats = inv(&st)?
        .import_osv(
            &p.actor(),
            vec![("request body".into(), body.to_vec())],
            &|_, _| {},
        )
        .await?;
    Ok(Json(json!(stats)))
}

async fn import_kev<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, Problem> {
    let p = caller(&st, &h, Role::Operator, "import advisories").await?;
    let (n, exposures) = inv(&st)?.import_kev_exposures(&p.actor(), &body).await?;
    let incidents = match st.postmarket.as_deref() {
        Some(svc) => crate::postmarket_api::kev_listed(svc, &exposures).await?,
        None => Vec::new(),
    };
    Ok(Json(
        json!({"entries": n, "newly_listed_exposures": exposures, "incidents": incidents}),
    ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MatchBody {
    pub model: Option<String>,
    pub version: Option<String>,
    #[serde(default)]
    pub cpe: bool,
}

fn scope(model: Option<&str>, version: Option<&str>) -> Result<VexScope, Problem> {
    if version.is_some() && model.is_none() {
        return Err(bad("version needs model"));
    }
    Ok(VexScope {
        model: model.map(DeviceModel::parse).transpose().map_err(bad)?,
        version: version
            .map(FirmwareVersion::parse)
            .transpose()
            .map_err(bad)?,
    })
}

async fn rematch<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    body: Result<Json<MatchBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, Problem> {
    let p = caller(&st, &h, Role::Operator, "run matching").await?;
    let Json(b) = body.map_err(|e| bad(e.body_text()))?;
    let sc = scope(b.model.as_deref(), b.version.as_deref())?;
    let stats = inv(&st)?
        .rematch(&p.actor(), &sc, b.cpe, &|_, _| {})
        .await?;
    Ok(Json(json!(stats)))
}

#[derive(Deserialize)]
struct FindingsQuery {
    model: Option<String>,
    version: Option<String>,
    #[serde(default)]
    all: bool,
}

async fn findings<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Query(q): Query<FindingsQuery>,
) -> Result<Json<Value>, Problem> {
    caller(&st, &h, Role::Auditor, "read findings").await?;
    let sc = scope(q.model.as_deref(), q.version.as_deref())?;
    let mut list = inv(&st)?
        .findings(sc.model.as_ref(), sc.version.as_ref())
        .await?;
    if !q.all {
        list.retain(FindingView::is_open);
    }
    Ok(Json(json!(list)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriageBody {
    pub model: String,
    pub version: String,
    pub vulnerability: String,
    pub component: Option<String>,
    pub state: String,
    pub justification: Option<String>,
    pub detail: String,
    pub action: Option<String>,
}

async fn triage<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    body: Result<Json<TriageBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let p = caller(&st, &h, Role::Operator, "triage findings").await?;
    let Json(b) = body.map_err(|e| bad(e.body_text()))?;
    let (m, v) = mv(&b.model, &b.version)?;
    let status = match (b.state.as_str(), b.justification.as_deref()) {
        ("not_affected", Some(j)) => VexStatus::NotAffected {
            justification: j.parse::<Justification>().map_err(bad)?,
        },
        ("not_affected", None) => return Err(bad("not_affected needs a justification")),
        (_, Some(_)) => return Err(bad("justification only goes with not_affected")),
        ("in_triage", None) => VexStatus::InTriage,
        ("affected", None) => VexStatus::Affected,
        ("fixed", None) => VexStatus::Fixed,
        ("false_positive", None) => VexStatus::FalsePositive,
        (other, None) => {
            return Err(bad(format!(
                "state {other:?} is not one of in_triage, affected, not_affected, fixed, false_positive"
            )));
        }
    };
    let d = inv(&st)?
        .triage(
            &p.actor(),
            &m,
            &v,
            &b.vulnerability,
            b.component.as_deref(),
            status,
            &b.detail,
            b.action.as_deref(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(json!(d))))
}

async fn affected<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    caller(&st, &h, Role::Auditor, "read findings").await?;
    if id.len() > 128 {
        return Err(bad("vulnerability id too long"));
    }
    let list = inv(&st)?.affected_devices(&id).await?;
    Ok(Json(
        json!({"vulnerability": id, "count": list.len(), "devices": list}),
    ))
}

async fn device_findings<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Path(urn): Path<String>,
) -> Result<Json<Value>, Problem> {
    caller(&st, &h, Role::Auditor, "read findings").await?;
    let id = DeviceId::parse_urn(&urn).map_err(bad)?;
    let (fw, open) = inv(&st)?.device_findings(&id).await?;
    Ok(Json(
        json!({"device": id.urn(), "firmware": fw, "open_findings": open}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirmwareReport {
    pub version: String,
}

async fn set_device_firmware<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Path(urn): Path<String>,
    body: Result<Json<FirmwareReport>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, Problem> {
    let p = caller(&st, &h, Role::Operator, "set device firmware").await?;
    let Json(b) = body.map_err(|e| bad(e.body_text()))?;
    let id = DeviceId::parse_urn(&urn).map_err(bad)?;
    let v = FirmwareVersion::parse(&b.version).map_err(bad)?;
    inv(&st)?.set_device_firmware(&p.actor(), &id, &v).await?;
    Ok(Json(json!({"device": id.urn(), "firmware": v})))
}

/// The device reports its own firmware over the mTLS gateway: the identity is the certificate's.
pub(crate) async fn report_firmware<S: CaStore>(
    st: &AppState<S>,
    device: &DeviceId,
    report: &FirmwareReport,
) -> Result<Value, Problem> {
    let v = FirmwareVersion::parse(&report.version).map_err(bad)?;
    let actor = medsec_core::Actor::parse(&format!("device:{}", device.urn()))
        .map_err(|e| bad(e.to_string()))?;
    inv(st)?.set_device_firmware(&actor, device, &v).await?;
    Ok(json!({"device": device.urn(), "firmware": v}))
}

#[derive(Deserialize)]
struct VexQuery {
    format: Option<String>,
    model: Option<String>,
    version: Option<String>,
}

async fn vex<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Query(q): Query<VexQuery>,
) -> Result<Response, Problem> {
    caller(&st, &h, Role::Auditor, "read VEX").await?;
    let sc = scope(q.model.as_deref(), q.version.as_deref())?;
    let doc = inv(&st)?
        .vex(&sc, &st.manufacturer, &st.vex_namespace)
        .await?;
    let (v, ct) = match q.format.as_deref().unwrap_or("openvex") {
        "openvex" => (doc.to_openvex(), "application/json"),
        "cyclonedx" => (
            doc.to_cyclonedx(),
            "application/vnd.cyclonedx+json; version=1.5",
        ),
        "csaf" => (doc.to_csaf(), "application/json"),
        other => {
            return Err(bad(format!(
                "format {other:?} is not one of openvex, cyclonedx, csaf"
            )));
        }
    };
    Ok((
        [(header::CONTENT_TYPE, ct)],
        serde_json::to_vec_pretty(&v).unwrap_or_default(),
    )
        .into_response())
}
