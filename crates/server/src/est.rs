//! EST (RFC 7030) on the HTTPS listener: cacerts, simpleenroll, simplereenroll, csrattrs.
//!
//! `/.well-known/est/[<label>/]<operation>`; the label names the certificate profile (the
//! configured default profile serves requests without one). First enrollment needs a one-time
//! token as the HTTP Basic password (or a Bearer token); re-enrollment needs the current device
//! certificate in the TLS handshake.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Extension, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use medsec_ca::{CaStore, Profile};
use medsec_core::{KeyAlgorithm, Name};

use crate::accept::PeerCerts;
use crate::metrics::{EstOp, IssueKind, Label};
use crate::problem::Problem;
use crate::state::AppState;

/// A base64 CSR is at most a few KiB; anything much larger is not one.
const MAX_BODY: usize = 32 * 1024;

pub fn router<S: CaStore + 'static>(state: Arc<AppState<S>>) -> Router {
    Router::new()
        .route(
            "/.well-known/est/{op}",
            get(est_get::<S>).post(est_post::<S>),
        )
        .route(
            "/.well-known/est/{label}/{op}",
            get(est_get_label::<S>).post(est_post_label::<S>),
        )
        .merge(crate::health::probes::<S>())
        .merge(crate::api::router::<S>())
        .merge(crate::inventory_api::router::<S>())
        .merge(crate::updates_api::api_router::<S>())
        .merge(crate::risk_api::router::<S>())
        .merge(crate::postmarket_api::api_router::<S>())
        .merge(crate::postmarket_api::public_router::<S>())
        .merge(crate::advisory_api::api_router::<S>())
        .merge(crate::docs_api::api_router::<S>())
        .merge(crate::ui::router::<S>())
        .merge(crate::advisory_api::public_router::<S>())
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(crate::limit::deadline))
        .layer(axum::middleware::from_fn(crate::headers::baseline))
        .with_state(state)
}

async fn profile_for<S: CaStore>(
    st: &AppState<S>,
    label: Option<&str>,
) -> Result<Profile, Problem> {
    let name = match label {
        Some(l) => Name::parse(l).map_err(|_| not_found(format!("no EST label {l:?}")))?,
        None => st.default_profile.clone().ok_or_else(|| {
            not_found("this server has no default EST profile; use /.well-known/est/<profile>/...")
        })?,
    };
    st.ca
        .get_profile(&name)
        .await
        .map_err(|_| not_found(format!("no EST label {name:?}")))
}

fn not_found(m: impl Into<String>) -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "about:blank", m)
}

/// Counts an EST answer by operation and status code.
fn counted<S>(st: &AppState<S>, op: &str, r: Result<Response, Problem>) -> Response {
    let r = r.into_response();
    st.metrics
        .est_request(EstOp::from_path(op), r.status().as_u16());
    r
}

async fn est_get<S: CaStore>(st: State<Arc<AppState<S>>>, Path(op): Path<String>) -> Response {
    counted(&st, &op, get_op(&st, None, &op).await)
}

async fn est_get_label<S: CaStore>(
    st: State<Arc<AppState<S>>>,
    Path((label, op)): Path<(String, String)>,
) -> Response {
    counted(&st, &op, get_op(&st, Some(&label), &op).await)
}

async fn est_post<S: CaStore>(
    st: State<Arc<AppState<S>>>,
    Path(op): Path<String>,
    Extension(peer): Extension<PeerCerts>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let r = match limit(&st, from) {
        Ok(()) => post_op(&st, None, &op, &peer, &headers, &body).await,
        Err(p) => Err(p),
    };
    counted(&st, &op, r)
}

fn limit<S>(st: &AppState<S>, from: SocketAddr) -> Result<(), Problem> {
    if st.limiter.allow(from.ip()) {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "about:blank",
            "too many enrollment requests from this address; retry later",
        ))
    }
}

async fn est_post_label<S: CaStore>(
    st: State<Arc<AppState<S>>>,
    Path((label, op)): Path<(String, String)>,
    Extension(peer): Extension<PeerCerts>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let r = match limit(&st, from) {
        Ok(()) => post_op(&st, Some(&label), &op, &peer, &headers, &body).await,
        Err(p) => Err(p),
    };
    counted(&st, &op, r)
}

fn base64_response(der: &[u8], content_type: &'static str) -> Response {
    // RFC 7030 bodies are base64 with line breaks; LF keeps `base64 -d` and openssl happy.
    let b = B64.encode(der);
    let mut body = String::with_capacity(b.len() + b.len() / 64 + 2);
    for chunk in b.as_bytes().chunks(64) {
        body.push_str(std::str::from_utf8(chunk).unwrap_or(""));
        body.push('\n');
    }
    let mut r = body.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut().insert(
        "content-transfer-encoding",
        HeaderValue::from_static("base64"),
    );
    r
}

async fn get_op<S: CaStore>(
    st: &AppState<S>,
    label: Option<&str>,
    op: &str,
) -> Result<Response, Problem> {
    let profile = profile_for(st, label).await?;
    match op {
        "cacerts" => {
            let issuing = st.ca.get_ca(&profile.issuer).await?;
            let mut certs = vec![issuing.cert_der.clone()];
            let mut parent = issuing.parent.clone();
            while let Some(p) = parent {
                let rec = st.ca.get_ca(&p).await?;
                parent = rec.parent.clone();
                certs.push(rec.cert_der);
                if certs.len() > 8 {
                    break;
                }
            }
            let refs: Vec<&[u8]> = certs.iter().map(|c| c.as_slice()).collect();
            let p7 = medsec_ca::pkcs7::certs_only(&refs)?;
            Ok(base64_response(&p7, "application/pkcs7-mime"))
        }
        "csrattrs" => Ok(base64_response(
            &csr_attrs(&profile),
            "application/csrattrs",
        )),
        "simpleenroll" | "simplereenroll" => Err(Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "about:blank",
            format!("{op} takes POST with a base64 PKCS#10 body"),
        )),
        _ => Err(not_found(format!("unknown EST operation {op:?}"))),
    }
}

/// CsrAttrs (RFC 7030 4.5.2): the signature algorithm OIDs matching the profile's key types,
/// telling a client which keys it may use.
fn csr_attrs(profile: &Profile) -> Vec<u8> {
    let oids: Vec<&[u8]> = profile
        .key_types
        .iter()
        .filter_map(|k| match k {
            // ecdsa-with-SHA256, ecdsa-with-SHA384, id-Ed25519, sha256WithRSAEncryption
            KeyAlgorithm::EcdsaP256 => {
                Some(&[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02][..])
            }
            KeyAlgorithm::EcdsaP384 => {
                Some(&[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03][..])
            }
            KeyAlgorithm::Ed25519 => Some(&[0x06, 0x03, 0x2b, 0x65, 0x70][..]),
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => Some(
                &[
                    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b,
                ][..],
            ),
            _ => None,
        })
        .collect();
    let mut content: Vec<u8> = Vec::new();
    for o in oids {
        if !content.windows(o.len()).any(|w| w == o) {
            content.extend_from_slice(o);
        }
    }
    // SEQUENCE, short-form length: a handful of OIDs stays far below 128 bytes.
    let mut out = vec![0x30, content.len() as u8];
    out.extend_from_slice(&content);
    out
}

/// The enrollment secret from `Authorization: Basic <user:token>` or `Bearer <token>`.
fn token_from(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let v = v
        .to_str()
        .map_err(|_| Problem::unauthorized("malformed Authorization header"))?;
    if let Some(b) = v.strip_prefix("Bearer ") {
        return Ok(Some(b.trim().to_owned()));
    }
    if let Some(b) = v.strip_prefix("Basic ") {
        let raw = B64
            .decode(b.trim())
            .map_err(|_| Problem::unauthorized("malformed Basic credentials"))?;
        let s = String::from_utf8(raw)
            .map_err(|_| Problem::unauthorized("malformed Basic credentials"))?;
        let (_, pass) = s
            .split_once(':')
            .ok_or_else(|| Problem::unauthorized("Basic credentials need user:password"))?;
        return Ok(Some(pass.to_owned()));
    }
    Err(Problem::unauthorized(
        "unsupported Authorization scheme; use Basic or Bearer",
    ))
}

fn csr_from_body(headers: &HeaderMap, body: &[u8]) -> Result<Vec<u8>, Problem> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/pkcs10") {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "about:blank",
            "expected Content-Type: application/pkcs10 with a base64 DER CSR",
        ));
    }
    decode_csr_body(body)
}

/// The DER CSR of an RFC 7030 request body: base64 with its line breaks (any ASCII
/// whitespace) ignored. Public for the fuzz targets (`medsec-fuzz`); the DER goes on to
/// `medsec_ca::parse_and_verify_csr`.
pub fn decode_csr_body(body: &[u8]) -> Result<Vec<u8>, Problem> {
    let cleaned: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    B64.decode(&cleaned).map_err(|_| {
        Problem::bad_request("the body is not base64 (RFC 7030 sends the DER CSR base64-encoded)")
    })
}

async fn post_op<S: CaStore>(
    st: &AppState<S>,
    label: Option<&str>,
    op: &str,
    peer: &PeerCerts,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, Problem> {
    let profile = profile_for(st, label).await?;
    let started = std::time::Instant::now();
    let issued = match op {
        "simpleenroll" => match (token_from(headers)?, peer.leaf()) {
            (Some(token), _) => {
                let csr = csr_from_body(headers, body)?;
                st.ca
                    .enroll_with_token(&profile.name, &token, &csr, &st.actor)
                    .await?
            }
            (None, Some(leaf)) if !st.idevid_cas.is_empty() => {
                let (serial, evidence) = medsec_ca::bootstrap::verify_idevid(leaf, &st.idevid_cas)
                    .map_err(|e| Problem::unauthorized(e.to_string()))?;
                let csr = csr_from_body(headers, body)?;
                st.ca
                    .enroll_bootstrapped(&profile.name, &serial, &evidence, &csr, &st.actor)
                    .await?
            }
            _ if !profile.requires_bootstrap => {
                let csr = csr_from_body(headers, body)?;
                st.ca
                    .enroll_unauthenticated(&profile.name, &csr, &st.actor)
                    .await?
            }
            _ => {
                return Err(Problem::unauthorized(
                    "first enrollment needs a bootstrap credential: a one-time enrollment token or a manufacturer IDevID certificate",
                ));
            }
        },
        "simplereenroll" => {
            let leaf = peer.leaf().ok_or_else(|| {
                Problem::unauthorized(
                    "re-enrollment needs the current device certificate in the TLS handshake",
                )
            })?;
            let csr = csr_from_body(headers, body)?;
            let issued = st.ca.reenroll(leaf, &csr, &st.actor).await?;
            if issued.record.profile != profile.name {
                tracing::info!(
                    "re-enrollment via label {} kept profile {}",
                    profile.name,
                    issued.record.profile
                );
            }
            // A rekey may have revoked the old certificate at once.
            st.revocation_changed().await;
            issued
        }
        "cacerts" | "csrattrs" => {
            return Err(Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "about:blank",
                format!("{op} takes GET"),
            ));
        }
        _ => return Err(not_found(format!("unknown EST operation {op:?}"))),
    };
    let kind = if op == "simplereenroll" {
        IssueKind::Reenroll
    } else {
        IssueKind::Enroll
    };
    st.metrics.issued(kind, started.elapsed());
    log_issued(&issued.record, kind);
    let p7 = medsec_ca::pkcs7::certs_only(&[&issued.record.der])?;
    let mut r = base64_response(&p7, "application/pkcs7-mime; smime-type=certs-only");
    *r.status_mut() = StatusCode::OK;
    Ok(r)
}

/// One structured line per issued certificate: what log collectors index. Identifiers only;
/// never the credential that authorized it.
pub(crate) fn log_issued(c: &medsec_ca::CertRecord, kind: IssueKind) {
    tracing::info!(
        serial = %c.serial,
        device = %c.device.urn(),
        profile = %c.profile,
        issuer = %c.issuer,
        kind = kind.as_str(),
        "certificate issued"
    );
}
