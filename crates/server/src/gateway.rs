//! The mTLS device gateway: the presented certificate is the only identity a device has here.

use std::sync::Arc;

use axum::extract::{Extension, State};
use axum::routing::get;
use axum::{Json, Router};
use medsec_ca::{CaStore, CertRecord};
use serde_json::json;

use crate::accept::PeerCerts;
use crate::problem::Problem;
use crate::state::AppState;

pub fn router<S: CaStore + 'static>(state: Arc<AppState<S>>) -> Router {
    Router::new()
        .route("/device/v1/whoami", get(whoami::<S>))
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
