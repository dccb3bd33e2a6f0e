//! The admin REST API (JSON; errors as problem+json), authenticated by API tokens with roles.
//!
//! Auditors read; operators run the device lifecycle; admins change configuration. A device
//! certificate is no credential here: only `Authorization: Bearer mst_...` is.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use medsec_auth::{AuthError, Principal, Role};
use medsec_ca::{CaStore, CertFilter, CertRecord, CertStatus, Profile};
use medsec_core::{CertSerial, DeviceId, DeviceSerial, Name, RevocationReason};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::problem::Problem;
use crate::state::AppState;

pub fn router<S: CaStore + 'static>() -> Router<Arc<AppState<S>>> {
    Router::new()
        .route(
            "/api/openapi.json",
            get(|| async { Json(crate::openapi::document()) }),
        )
        .route("/api/v1/profiles", get(list_profiles::<S>))
        .route(
            "/api/v1/profiles/{name}",
            put(put_profile::<S>).get(get_profile::<S>),
        )
        .route("/api/v1/devices", get(list_devices::<S>))
        .route("/api/v1/devices/{urn}", get(get_device::<S>))
        .route("/api/v1/devices/{urn}/retire", post(retire::<S>))
        .route(
            "/api/v1/certificates",
            get(list_certs::<S>).post(issue::<S>),
        )
        .route("/api/v1/certificates/expiring", get(expiring::<S>))
        .route("/api/v1/certificates/{serial}", get(get_cert::<S>))
        .route("/api/v1/certificates/{serial}/revoke", post(revoke::<S>))
        .route("/api/v1/enrollment-tokens", post(create_token::<S>))
}

/// How long a verified API token is trusted without re-running Argon2id. Short, so that a
/// revoked token stops working quickly.
const TOKEN_CACHE_TTL: Duration = Duration::from_secs(30);

impl From<AuthError> for Problem {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::InvalidToken => Problem::unauthorized(e.to_string()),
            AuthError::Forbidden { .. } => Problem::forbidden(e.to_string()),
            AuthError::Invalid { .. } => Problem::bad_request(e.to_string()),
            AuthError::Store(m) => {
                tracing::error!("auth store: {m}");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "about:blank",
                    "internal error; see the server log",
                )
            }
            _ => Problem::unauthorized("authentication failed"),
        }
    }
}

/// Authenticates the caller and checks that its role is at least `need`.
pub(crate) async fn caller<S: CaStore>(
    st: &AppState<S>,
    headers: &HeaderMap,
    need: Role,
    action: &'static str,
) -> Result<Principal, Problem> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| {
            Problem::unauthorized("the API needs `Authorization: Bearer <API token>`")
        })?;
    let key: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    let cached = st.token_cache.lock().ok().and_then(|m| {
        m.get(&key)
            .filter(|(_, at)| at.elapsed() < TOKEN_CACHE_TTL)
            .map(|(p, _)| p.clone())
    });
    let p = match cached {
        // The hash check is what the cache saves; revocation and expiry are read every time,
        // so `medsec apitoken revoke` on any replica takes effect at the next request.
        Some(p) => {
            medsec_auth::still_valid(&*st.auth, &p).await?;
            p
        }
        None => {
            let p = medsec_auth::verify_token(&*st.auth, presented).await?;
            if let Ok(mut m) = st.token_cache.lock() {
                if m.len() > 10_000 {
                    m.clear();
                }
                m.insert(key, (p.clone(), Instant::now()));
            }
            p
        }
    };
    p.role.require(need, action)?;
    Ok(p)
}

fn t(v: OffsetDateTime) -> String {
    v.format(&Rfc3339).unwrap_or_default()
}

pub(crate) fn cert_json(c: &CertRecord) -> Value {
    let (status, reason, revoked_at) = match &c.status {
        CertStatus::Valid => ("valid", None, None),
        CertStatus::Revoked(r) => ("revoked", Some(r.reason), Some(t(r.revoked_at))),
    };
    json!({
        "serial": c.serial, "issuer": c.issuer, "device": c.device.urn(), "profile": c.profile,
        "kind": c.kind, "subject": c.subject, "key_algorithm": c.key_algorithm,
        "not_before": t(c.not_before), "not_after": t(c.not_after),
        "replaces": c.replaces, "status": status, "reason": reason, "revoked_at": revoked_at,
    })
}

fn bad(e: impl std::fmt::Display) -> Problem {
    Problem::bad_request(e.to_string())
}

/// On the API the caller is its token, so a revoked certificate or a retired device is the
/// state of the object acted on: 409, not the 403 that refuses a presented credential (EST,
/// the gateway) or a role.
fn object_state(e: medsec_ca::CaError) -> Problem {
    use medsec_ca::CaError::{CertExpired, CertRevoked, DeviceRetired};
    match e {
        DeviceRetired(_) | CertRevoked { .. } | CertExpired(_) => Problem::conflict(e.to_string()),
        e => e.into(),
    }
}

async fn list_profiles<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
) -> Result<Json<Value>, Problem> {
    caller(&st, &h, Role::Auditor, "read profiles").await?;
    Ok(Json(json!(st.ca.list_profiles().await?)))
}

async fn get_profile<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<Value>, Problem> {
    caller(&st, &h, Role::Auditor, "read profiles").await?;
    Ok(Json(json!(
        st.ca.get_profile(&Name::parse(&name).map_err(bad)?).await?
    )))
}

async fn put_profile<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Path(name): Path<String>,
    body: Result<Json<Profile>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, Problem> {
    let p = caller(&st, &h, Role::Admin, "change profiles").await?;
    let Json(profile) = body.map_err(|e| bad(e.body_text()))?;
    if profile.name.as_str() != name {
        return Err(bad(format!(
            "the body names profile {}, the URL {name}",
            profile.name
        )));
    }
    st.ca.put_profile(&profile, &p.actor()).await?;
    Ok(Json(json!(profile)))
}

async fn list_devices<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
) -> Result<Json<Value>, Problem> {
    caller(&st, &h, Role::Auditor, "read devices").await?;
    let ds = st.ca.list_devices().await?;
    Ok(Json(json!(ds.iter().map(|d| json!({"device": d.id.urn(), "status": d.status, "created_at": t(d.created_at), "retired_at": d.retired_at.map(t)})).collect::<Vec<_>>())))
}

async fn get_device<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Path(urn): Path<String>,
) -> Result<Json<Value>, Problem> {
    caller(&st, &h, Role::Auditor, "read devices").await?;
    let id = DeviceId::parse_urn(&urn).map_err(bad)?;
    let d = st.ca.get_device(&id).await?;
    let certs = st
        .ca
        .list_certs(&CertFilter {
            device: Some(id),
            ..CertFilter::default()
        })
        .await?;
    Ok(Json(
        json!({"device": d.id.urn(), "status": d.status, "created_at": t(d.created_at), "retired_at": d.retired_at.map(t),
        "certificates": certs.iter().map(cert_json).collect::<Vec<_>>()}),
    ))
}

async fn retire<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Path(urn): Path<String>,
) -> Result<Json<Value>, Problem> {
    let p = caller(&st, &h, Role::Operator, "retire devices").await?;
    let id = DeviceId::parse_urn(&urn).map_err(bad)?;
    let revoked = st.retire(&id, &p.actor()).await.map_err(object_state)?;
    Ok(Json(json!({"device": id.urn(), "revoked": revoked})))
}

#[derive(Deserialize)]
struct CertQuery {
    device: Option<String>,
    issuer: Option<String>,
    revoked: Option<bool>,
    limit: Option<u32>,
}

async fn list_certs<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Query(q): Query<CertQuery>,
) -> Result<Json<Value>, Problem> {
    caller(&st, &h, Role::Auditor, "read certificates").await?;
    let f = CertFilter {
        device: q
            .device
            .as_deref()
            .map(DeviceId::parse_urn)
            .transpose()
            .map_err(bad)?,
        issuer: q
            .issuer
            .as_deref()
            .map(Name::parse)
            .transpose()
            .map_err(bad)?,
        revoked: q.revoked,
        limit: Some(q.limit.unwrap_or(1000).min(10_000)),
        ..CertFilter::default()
    };
    Ok(Json(json!(
        st.ca
            .list_certs(&f)
            .await?
            .iter()
            .map(cert_json)
            .collect::<Vec<_>>()
    )))
}

#[derive(Deserialize)]
struct Days {
    days: Option<u32>,
}

async fn expiring<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Query(q): Query<Days>,
) -> Result<Json<Value>, Problem> {
    caller(&st, &h, Role::Auditor, "read certificates").await?;
    let days = q.days.unwrap_or(30).min(3650);
    Ok(Json(json!(
        st.ca
            .expiring_within(days)
            .await?
            .iter()
            .map(cert_json)
            .collect::<Vec<_>>()
    )))
}

async fn get_cert<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Path(serial): Path<String>,
) -> Result<Json<Value>, Problem> {
    caller(&st, &h, Role::Auditor, "read certificates").await?;
    let s: CertSerial = serial.parse().map_err(bad)?;
    let c = st.ca.get_cert(&s).await?;
    let mut v = cert_json(&c);
    v["pem"] = json!(medsec_ca::pem_encode_cert(&c.der));
    Ok(Json(v))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueBody {
    pub profile: String,
    pub device_serial: String,
    pub csr_pem: String,
}

async fn issue<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    body: Result<Json<IssueBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let p = caller(&st, &h, Role::Operator, "issue certificates").await?;
    let Json(b) = body.map_err(|e| bad(e.body_text()))?;
    let profile = Name::parse(&b.profile).map_err(bad)?;
    let serial = DeviceSerial::parse(&b.device_serial).map_err(bad)?;
    let started = std::time::Instant::now();
    let issued = st
        .ca
        .issue(&profile, &serial, b.csr_pem.as_bytes(), &p.actor())
        .await
        .map_err(object_state)?;
    let kind = crate::metrics::IssueKind::Issue;
    st.metrics.issued(kind, started.elapsed());
    crate::est::log_issued(&issued.record, kind);
    let mut v = cert_json(&issued.record);
    v["pem"] = json!(issued.pem);
    v["chain_pem"] = json!(issued.chain_pem);
    Ok((StatusCode::CREATED, Json(v)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeBody {
    pub reason: Option<String>,
    pub invalidity_date: Option<String>,
}

async fn revoke<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Path(serial): Path<String>,
    body: Result<Json<RevokeBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, Problem> {
    let p = caller(&st, &h, Role::Operator, "revoke certificates").await?;
    let Json(b) = body.map_err(|e| bad(e.body_text()))?;
    let s: CertSerial = serial.parse().map_err(bad)?;
    let reason: RevocationReason = b
        .reason
        .as_deref()
        .unwrap_or("unspecified")
        .parse()
        .map_err(bad)?;
    let inv = b
        .invalidity_date
        .as_deref()
        .map(|d| {
            OffsetDateTime::parse(d, &Rfc3339)
                .map_err(|_| bad(format!("invalidity_date {d:?} is not RFC 3339")))
        })
        .transpose()?;
    let c = st
        .revoke(&s, reason, inv, &p.actor())
        .await
        .map_err(object_state)?;
    Ok(Json(cert_json(&c)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    pub profile: String,
    pub device_serial: String,
    pub ttl_hours: Option<u32>,
}

async fn create_token<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    body: Result<Json<TokenBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let p = caller(&st, &h, Role::Operator, "create enrollment tokens").await?;
    let Json(b) = body.map_err(|e| bad(e.body_text()))?;
    let ttl = time::Duration::hours(b.ttl_hours.unwrap_or(24).into());
    let (secret, tok) = st
        .ca
        .create_enrollment_token(
            &Name::parse(&b.profile).map_err(bad)?,
            &DeviceSerial::parse(&b.device_serial).map_err(bad)?,
            ttl,
            &p.actor(),
        )
        .await
        .map_err(object_state)?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"id": tok.id, "token": secret, "device": tok.device.urn(), "profile": tok.profile, "expires_at": t(tok.expires_at)}),
        ),
    ))
}
