//! Plain-HTTP revocation services: CRL distribution points and the OCSP responder.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use medsec_ca::CaStore;
use medsec_core::Name;
use time::OffsetDateTime;

use crate::problem::Problem;
use crate::state::AppState;

/// OCSP requests are small; CRL GETs have no body.
const MAX_BODY: usize = 16 * 1024;

pub fn router<S: CaStore + 'static>(state: Arc<AppState<S>>) -> Router {
    Router::new()
        .route("/crl/{file}", get(crl::<S>))
        .route("/ocsp", post(ocsp_post::<S>))
        .route("/ocsp/{*req}", get(ocsp_get::<S>))
        .route("/healthz", get(|| async { "ok" }))
        .merge(crate::updates_api::tuf_router::<S>())
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// `GET /crl/<ca>.crl`: the newest CRL, regenerated first when missing or near nextUpdate.
async fn crl<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    Path(file): Path<String>,
) -> Result<Response, Problem> {
    let name = file.strip_suffix(".crl").ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "about:blank",
            "CRLs are served as /crl/<ca>.crl",
        )
    })?;
    let name = Name::parse(name)
        .map_err(|e| Problem::new(StatusCode::NOT_FOUND, "about:blank", e.to_string()))?;
    let crl = current_crl(&st, &name).await?;
    let mut r = crl.der.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/pkix-crl"),
    );
    Ok(r)
}

/// The newest CRL of `name`, reissued first once three quarters of its validity have passed,
/// so relying parties that cache until nextUpdate always find a fresh one before it lapses.
async fn current_crl<S: CaStore>(
    st: &AppState<S>,
    name: &Name,
) -> Result<medsec_ca::CrlRecord, medsec_ca::CaError> {
    let now = OffsetDateTime::now_utc();
    match st.ca.latest_crl(name).await? {
        Some(c) if now < c.next_update - (c.next_update - c.this_update) / 4 => Ok(c),
        _ => st.ca.generate_crl(name, &st.actor).await,
    }
}

pub(crate) async fn refresh_due_crls<S: CaStore>(st: &AppState<S>) {
    let Ok(cas) = st.ca.list_cas().await else {
        return;
    };
    for c in cas.iter().filter(|c| c.key_ref.is_some()) {
        if let Err(e) = current_crl(st, &c.name).await {
            tracing::warn!("CRL refresh for {} failed: {e}", c.name);
        }
    }
}

async fn answer<S: CaStore>(st: &AppState<S>, req: Vec<u8>) -> Response {
    let resp = match st.ocsp_cache.get(&req) {
        Some(r) => r,
        None => {
            let r = st.ca.ocsp_respond(&req).await;
            st.ocsp_cache.put(req, r.clone());
            r
        }
    };
    let mut r = resp.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/ocsp-response"),
    );
    r
}

/// `POST /ocsp` with `application/ocsp-request` (RFC 6960 A.1).
async fn ocsp_post<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/ocsp-request") {
        return Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "about:blank",
            "expected Content-Type: application/ocsp-request",
        )
        .into_response();
    }
    answer(&st, body.to_vec()).await
}

/// `GET /ocsp/<url-encoded base64 of the DER request>` (RFC 6960 A.1).
async fn ocsp_get<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    Path(b64): Path<String>,
) -> Response {
    // Path extraction has percent-decoded the segment already; '+', '/' and '=' are base64.
    let cleaned: String = b64.chars().filter(|c| !c.is_whitespace()).collect();
    match base64::engine::general_purpose::STANDARD.decode(cleaned.trim_start_matches('/')) {
        Ok(req) if req.len() <= MAX_BODY => answer(&st, req).await,
        _ => medsec_ca::ocsp_error_response(medsec_ca::OcspErrorStatus::MalformedRequest)
            .into_response(),
    }
}
