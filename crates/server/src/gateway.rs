//! The mTLS device gateway: the presented certificate is the only identity a device has here.

use std::sync::Arc;

use axum::extract::{Extension, State};
use axum::routing::{get, put};
use axum::{Json, Router};
use medsec_ca::{CaStore, CertRecord};
use serde_json::json;

use crate::accept::PeerCerts;
use crate::problem::Problem;
use crate::state::AppState;

pub fn router<S: CaStore + 'static>(state: Arc<AppState<S>>) -> Router {
    Router::new()
        .route("/device/v1/whoami", get(whoami::<S>))
        .route("/device/v1/firmware", put(report_firmware::<S>))
        .merge(crate::updates_api::device_router::<S>())
        .merge(crate::postmarket_api::device_router::<S>())
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024))
        .layer(axum::middleware::from_fn(crate::headers::baseline))
        .with_state(state)
}

/// The authenticated device, re-checked against the store (revoked, expired, retired) on top
/// of what the handshake verified.
pub async fn device<S: CaStore>(st: &AppState<S>, peer: &PeerCerts) -> Result<CertRecord, Problem> {
    let leaf = peer
        .leaf()
        .ok_or_else(|| Problem::unauthorized("a device certificate is required"))?;
    Ok(st.ca.authenticate_device_cert(leaf).await?)
}

async fn whoami<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    Extension(peer): Extension<PeerCerts>,
) -> Result<Json<serde_json::Value>, Problem> {
    let c = device(&st, &peer).await?;
    Ok(Json(json!({
        "device": c.device.urn(),
        "model": c.device.model,
        "serial": c.device.serial,
        "certificate": c.serial,
        "profile": c.profile,
        "not_after": c.not_after.unix_timestamp(),
    })))
}

/// The device reports the firmware it runs; only its own record can change.
async fn report_firmware<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    Extension(peer): Extension<PeerCerts>,
    body: Result<
        Json<crate::inventory_api::FirmwareReport>,
        axum::extract::rejection::JsonRejection,
    >,
) -> Result<Json<serde_json::Value>, Problem> {
    let c = device(&st, &peer).await?;
    let Json(b) = body.map_err(|e| Problem::bad_request(e.body_text()))?;
    Ok(Json(
        crate::inventory_api::report_firmware(&st, &c.device, &b).await?,
    ))
}
