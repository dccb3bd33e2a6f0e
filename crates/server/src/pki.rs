//! Plain-HTTP revocation services: CRL distribution points and the OCSP responder.

use std::sync::Arc;
use std::time::{Duration, Instant};

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

use crate::metrics::{OcspResult, classify_ocsp};
use crate::problem::Problem;
use crate::state::AppState;

/// OCSP requests are small; CRL GETs have no body.
const MAX_BODY: usize = 16 * 1024;

pub fn router<S: CaStore + 'static>(state: Arc<AppState<S>>) -> Router {
    let mut r = Router::new()
        .route("/crl/{file}", get(crl::<S>))
        .route("/crl/{ca}/{file}", get(crl_shard::<S>))
        .route("/ocsp", post(ocsp_post::<S>))
        .route("/ocsp/{*req}", get(ocsp_get::<S>))
        .merge(crate::health::probes::<S>())
        .merge(crate::updates_api::tuf_router::<S>());
    // Plain HTTP like CRLs and OCSP, because scrapers rarely carry client credentials and the
    // exposition holds counts and latencies only; operators who still want it private turn
    // it off (`server.metrics = false`) or firewall the port.
    if state.metrics_enabled {
        r = r.merge(crate::health::metrics::<S>());
    }
    r.layer(DefaultBodyLimit::max(MAX_BODY)).with_state(state)
}

/// `GET /crl/<ca>.crl`, counted by status code.
async fn crl<S: CaStore>(st: State<Arc<AppState<S>>>, file: Path<String>) -> Response {
    let r = crl_file(&st, file).await.into_response();
    st.metrics.crl_fetch(r.status().as_u16());
    r
}

/// The newest CRL, regenerated first when missing or near nextUpdate.
async fn crl_file<S: CaStore>(
    st: &AppState<S>,
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
    let shards = st.ca.crl_shard_count(&name).await?;
    if shards > 1 {
        // Its certificates name their shards; a whole CRL here would not be reissued on
        // revocation (only the affected shard is) and so would go stale.
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "about:blank",
            format!("CA {name} publishes its CRL in {shards} shards: /crl/{name}/<1-{shards}>.crl"),
        ));
    }
    serve_crl(st, &name, 0).await
}

/// `GET /crl/<ca>/<shard>.crl`, counted like whole CRLs.
async fn crl_shard<S: CaStore>(
    st: State<Arc<AppState<S>>>,
    path: Path<(String, String)>,
) -> Response {
    let r = crl_shard_file(&st, path).await.into_response();
    st.metrics.crl_fetch(r.status().as_u16());
    r
}

/// One shard of a sharded CA (1..=N), or for an unsharded CA shard 0, its one CRL (a URL
/// template with `{shard}` gives unsharded CAs such as the root that URL).
async fn crl_shard_file<S: CaStore>(
    st: &AppState<S>,
    Path((ca, file)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let not_found = |m: String| Problem::new(StatusCode::NOT_FOUND, "about:blank", m);
    let name = Name::parse(&ca).map_err(|e| not_found(e.to_string()))?;
    let shard: u32 = file
        .strip_suffix(".crl")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| not_found("CRL shards are served as /crl/<ca>/<shard>.crl".into()))?;
    let shards = st.ca.crl_shard_count(&name).await?;
    let exists = if shards > 1 {
        (1..=shards).contains(&shard)
    } else {
        shard == 0
    };
    if !exists {
        return Err(not_found(format!("CA {name} has no CRL shard {shard}")));
    }
    serve_crl(st, &name, shard).await
}

async fn serve_crl<S: CaStore>(
    st: &AppState<S>,
    name: &Name,
    shard: u32,
) -> Result<Response, Problem> {
    let crl = current_crl(st, name, shard).await?;
    let mut r = crl.der.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/pkix-crl"),
    );
    Ok(r)
}

/// The newest CRL of `name`'s `shard` (0: the whole CA), reissued first once three quarters
/// of its validity have passed, so relying parties that cache until nextUpdate always find a
/// fresh one before it lapses.
async fn current_crl<S: CaStore>(
    st: &AppState<S>,
    name: &Name,
    shard: u32,
) -> Result<medsec_ca::CrlRecord, medsec_ca::CaError> {
    let now = OffsetDateTime::now_utc();
    match st.ca.latest_crl_shard(name, shard).await? {
        Some(c) if now < c.next_update - (c.next_update - c.this_update) / 4 => Ok(c),
        _ => st.ca.generate_crl_shard(name, shard, &st.actor).await,
    }
}

/// Reissues every CRL that is due; false when the CA list or any CRL failed.
pub(crate) async fn refresh_due_crls<S: CaStore>(st: &AppState<S>) -> bool {
    let cas = match st.ca.list_cas().await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("CRL refresh: listing CAs failed: {e}");
            return false;
        }
    };
    let mut ok = true;
    for c in cas.iter().filter(|c| c.key_ref.is_some()) {
        // Every published CRL: the one of an unsharded CA, each shard of a sharded one.
        for shard in c.published_crl_shards() {
            if let Err(e) = current_crl(st, &c.name, shard).await {
                tracing::warn!("CRL refresh for {} shard {shard} failed: {e}", c.name);
                ok = false;
            }
        }
    }
    ok
}

async fn answer<S: CaStore>(st: &AppState<S>, req: Vec<u8>) -> Response {
    let started = Instant::now();
    let (resp, hit) = match st.ocsp_cache.get(&req) {
        Some(r) => (r, true),
        None => {
            let r = st.ca.ocsp_respond(&req).await;
            st.ocsp_cache.put(req, r.clone());
            (r, false)
        }
    };
    st.metrics
        .ocsp_request(classify_ocsp(&resp), hit, started.elapsed());
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
        st.metrics
            .ocsp_request(OcspResult::Malformed, false, Duration::ZERO);
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
        _ => {
            st.metrics
                .ocsp_request(OcspResult::Malformed, false, Duration::ZERO);
            medsec_ca::ocsp_error_response(medsec_ca::OcspErrorStatus::MalformedRequest)
                .into_response()
        }
    }
}
