//! The risk-management API: a model's trust-relationship inventory and risk register (TOML, as
//! people edit them), the global policy and threat rules, and what is computed from them:
//! findings, threats, ratings, traceability, sign-off and the report.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use medsec_auth::Role;
use medsec_ca::{Ca, CaStore, CertFilter};
use medsec_core::DeviceModel;
use medsec_risk::service::RiskService;
use medsec_risk::{DeviceCertificate, FindingInputs, FirmwareSupport, RiskError, RiskId};
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::api::caller;
use crate::problem::Problem;
use crate::state::AppState;

/// Inventory, register and policy files are small; anything larger is not one.
const MAX_DOC: usize = 1024 * 1024;

impl From<RiskError> for Problem {
    fn from(e: RiskError) -> Self {
        use medsec_core::StoreError;
        match &e {
            RiskError::NotFound { .. } => Problem::not_found(e.to_string()),
            RiskError::Store(StoreError::Conflict(_)) => Problem::conflict(e.to_string()),
            RiskError::Store(_) | RiskError::Serialize { .. } => Problem::internal("risk", &e),
            _ => Problem::bad_request(e.to_string()),
        }
    }
}

/// The inputs findings need beyond the inventory: the model's unrevoked device certificates and
/// its firmware versions' end of support.
pub async fn risk_inputs<S: CaStore>(
    ca: &Ca<S>,
    inventory: Option<&medsec_inventory::Inventory>,
    model: &DeviceModel,
    expiry_window_days: u32,
    now: OffsetDateTime,
) -> Result<FindingInputs, Problem> {
    let certs = ca
        .list_certs(&CertFilter {
            revoked: Some(false),
            ..CertFilter::default()
        })
        .await?
        .into_iter()
        .filter(|c| &c.device.model == model)
        .map(|c| DeviceCertificate {
            device: c.device,
            not_after: c.not_after,
        })
        .collect();
    let firmware_support = match inventory {
        Some(inv) => inv
            .store()
            .list_firmware(Some(model))
            .await
            .map_err(|e| Problem::internal("risk inputs", &e))?
            .into_iter()
            .filter_map(|f| {
                f.end_of_support.map(|d| FirmwareSupport {
                    version: f.version,
                    end_of_support: d,
                })
            })
            .collect(),
        None => Vec::new(),
    };
    Ok(FindingInputs {
        now,
        certificates: certs,
        expiry_window_days,
        firmware_support,
    })
}

pub fn router<S: CaStore + 'static>() -> Router<Arc<AppState<S>>> {
    Router::new()
        .route(
            "/api/v1/models/{model}/risk/{doc}",
            get(get_doc::<S>).put(put_doc::<S>),
        )
        .route("/api/v1/models/{model}/risk/signoff", post(sign_off::<S>))
        .route("/api/v1/models/{model}/risk/report", get(report::<S>))
        .route(
            "/api/v1/risk/{doc}",
            get(get_global::<S>).put(put_global::<S>),
        )
}

fn risk<S>(st: &AppState<S>) -> Result<&RiskService, Problem> {
    st.risk
        .as_deref()
        .ok_or_else(|| Problem::unavailable("risk management"))
}

fn model(m: &str) -> Result<DeviceModel, Problem> {
    DeviceModel::parse(m).map_err(|e| Problem::bad_request(e.to_string()))
}

fn toml_body(body: &axum::body::Bytes) -> Result<&str, Problem> {
    if body.len() > MAX_DOC {
        return Err(Problem::bad_request("documents are limited to 1 MiB"));
    }
    std::str::from_utf8(body).map_err(|_| Problem::bad_request("the document is not UTF-8"))
}

fn toml_response(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/toml")], body).into_response()
}

#[derive(Deserialize)]
struct Window {
    expiry_days: Option<u32>,
    format: Option<String>,
}

/// `inventory` and `register` read back as stored (TOML); `findings`, `threats`,
/// `assessment` and `trace` are computed (JSON).
async fn get_doc<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Path((m, doc)): Path<(String, String)>,
    Query(q): Query<Window>,
) -> Result<Response, Problem> {
    caller(&st, &h, Role::Auditor, "read risk management").await?;
    let m = model(&m)?;
    let svc = risk(&st)?;
    let inputs = || async {
        risk_inputs(
            &st.ca,
            st.inventory.as_deref(),
            &m,
            q.expiry_days.unwrap_or(30),
            OffsetDateTime::now_utc(),
        )
        .await
    };
    Ok(match doc.as_str() {
        "inventory" => toml_response(svc.inventory(&m).await?.1.body),
        "register" => toml_response(svc.register(&m).await?.to_toml()?),
        "findings" => Json(json!(svc.findings(&m, &inputs().await?).await?)).into_response(),
        "threats" => Json(json!(svc.threats(&m).await?)).into_response(),
        "assessment" => {
            let policy = svc.policy().await?;
            Json(json!(svc.register(&m).await?.assess(&policy)?)).into_response()
        }
        "trace" => Json(json!(svc.trace(&m, &inputs().await?).await?)).into_response(),
        other => {
            return Err(Problem::not_found(format!(
                "no risk document {other:?}: inventory, register, findings, threats, assessment, trace, report"
            )));
        }
    })
}

async fn put_doc<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Path((m, doc)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, Problem> {
    let p = caller(&st, &h, Role::Operator, "edit risk documents").await?;
    let m = model(&m)?;
    let text = toml_body(&body)?;
    let svc = risk(&st)?;
    let version = match doc.as_str() {
        "inventory" => svc.put_inventory(&p.actor(), &m, text).await?.1,
        "register" => svc.put_register(&p.actor(), &m, text).await?.1,
        other => {
            return Err(Problem::not_found(format!(
                "only inventory and register are stored per model, not {other:?}"
            )));
        }
    };
    Ok(Json(
        json!({"model": m, "document": doc, "version": version}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignOffBody {
    pub risk: String,
}

async fn sign_off<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Path(m): Path<String>,
    body: Result<Json<SignOffBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), Problem> {
    // Accepting residual risk is a management decision: admins only.
    let p = caller(&st, &h, Role::Admin, "sign off risks").await?;
    let Json(b) = body.map_err(|e| Problem::bad_request(e.body_text()))?;
    let m = model(&m)?;
    let id = RiskId::parse(&b.risk).map_err(|e| Problem::bad_request(e.to_string()))?;
    let v = risk(&st)?
        .sign_off(&p.actor(), &m, &id, OffsetDateTime::now_utc())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"model": m, "risk": id, "signed_by": p.actor(), "register_version": v})),
    ))
}

async fn report<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Path(m): Path<String>,
    Query(q): Query<Window>,
) -> Result<Response, Problem> {
    caller(&st, &h, Role::Auditor, "read risk management").await?;
    let m = model(&m)?;
    let inputs = risk_inputs(
        &st.ca,
        st.inventory.as_deref(),
        &m,
        q.expiry_days.unwrap_or(30),
        OffsetDateTime::now_utc(),
    )
    .await?;
    let r = risk(&st)?
        .report(
            &m,
            &format!("Cybersecurity risk management report: {m}"),
            &inputs,
        )
        .await?;
    Ok(match q.format.as_deref().unwrap_or("html") {
        "html" => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            r.to_html(),
        )
            .into_response(),
        "markdown" | "md" => (
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            r.to_markdown(),
        )
            .into_response(),
        "json" => ([(header::CONTENT_TYPE, "application/json")], r.to_json()?).into_response(),
        other => {
            return Err(Problem::bad_request(format!(
                "format {other:?} is not one of html, markdown, json"
            )));
        }
    })
}

async fn get_global<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Path(doc): Path<String>,
) -> Result<Response, Problem> {
    caller(&st, &h, Role::Auditor, "read risk management").await?;
    let svc = risk(&st)?;
    Ok(match doc.as_str() {
        "policy" => toml_response(svc.policy().await?.to_toml()?),
        "rules" => toml_response(svc.rules().await?.to_toml()?),
        other => {
            return Err(Problem::not_found(format!(
                "no global risk document {other:?}"
            )));
        }
    })
}

async fn put_global<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Path(doc): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, Problem> {
    // The acceptability policy and the rules shape every rating: configuration, admins only.
    let p = caller(&st, &h, Role::Admin, "change the risk policy").await?;
    let text = toml_body(&body)?;
    let svc = risk(&st)?;
    let v = match doc.as_str() {
        "policy" => svc.put_policy(&p.actor(), text).await?.1,
        "rules" => svc.put_rules(&p.actor(), text).await?.1,
        other => {
            return Err(Problem::not_found(format!(
                "no global risk document {other:?}"
            )));
        }
    };
    Ok(Json(json!({"document": doc, "version": v})))
}
