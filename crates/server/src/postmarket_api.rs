//! Post-market surveillance over HTTP: device event ingest on the mTLS gateway, the public CVD
//! intake and `security.txt`, and the API for events, detection rules, incidents, regulatory
//! clocks and CVD reports.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use medsec_auth::Role;
use medsec_ca::CaStore;
use medsec_core::{Actor, DeviceId, DeviceModel, StoreError};
use medsec_postmarket::clock::Obligation;
use medsec_postmarket::cvd::{CvdStatus, SecurityTxt, Submission, TrackingId};
use medsec_postmarket::incident::{
    Incident, IncidentId, IncidentStatus, Note, Reference, Reportability,
};
use medsec_postmarket::report::{ReportContext, ReportKind, draft};
use medsec_postmarket::service::PostmarketService;
use medsec_postmarket::store::{EventQuery, EventSource};
use medsec_postmarket::{PostmarketError, parse_batch};
use serde::Deserialize;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use crate::accept::PeerCerts;
use crate::api::caller;
use crate::metrics::EventChannel;
use crate::problem::Problem;
use crate::state::AppState;

/// A batch holds at most this many events and bytes; 1,000 events of typical size fit.
pub const MAX_BATCH_EVENTS: usize = 1000;
pub const MAX_BATCH_BYTES: usize = 512 * 1024;

/// Post-market settings the server needs beyond the service.
#[derive(Debug, Clone)]
pub struct PostmarketSettings {
    /// Fields of `/.well-known/security.txt`; `expires` is computed from `expires_days`.
    pub security_txt: SecurityTxt,
    pub security_txt_expires_days: u16,
    /// Devices (gateways) whose syslog messages may name other devices.
    pub syslog_gateways: Vec<DeviceId>,
    /// Manufacturer address for drafted reports.
    pub manufacturer_address: Option<String>,
    /// Licence numbers by model, for drafted reports.
    pub licences: Vec<(DeviceModel, String)>,
    /// Researcher reports accepted per address: refill per hour and burst.
    pub cvd_per_hour: f64,
    pub cvd_burst: f64,
    /// Events received longer ago than this many days are purged hourly (None: kept).
    pub retention_days: Option<u32>,
    /// Where the CSAF provider is reached (`https://host[:port]`); CSAF publication is off
    /// without it.
    pub csaf_base: Option<medsec_postmarket::advisory::ProviderBaseUrl>,
}

impl Default for PostmarketSettings {
    fn default() -> Self {
        PostmarketSettings {
            security_txt: SecurityTxt::default(),
            security_txt_expires_days: 180,
            syslog_gateways: Vec::new(),
            manufacturer_address: None,
            licences: Vec::new(),
            cvd_per_hour: 10.0,
            cvd_burst: 5.0,
            retention_days: Some(730),
            csaf_base: None,
        }
    }
}

impl From<PostmarketError> for Problem {
    fn from(e: PostmarketError) -> Self {
        match &e {
            PostmarketError::BatchTooLarge { .. } | PostmarketError::TooManyEvents { .. } => {
                Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "about:blank", e.to_string())
            }
            PostmarketError::UnknownIncident(_) | PostmarketError::UnknownReport(_) => {
                Problem::not_found(e.to_string())
            }
            PostmarketError::IllegalTransition { .. } | PostmarketError::Conflict(_) => {
                Problem::conflict(e.to_string())
            }
            PostmarketError::Store(StoreError::Conflict(_)) => Problem::conflict(e.to_string()),
            PostmarketError::Store(StoreError::NotFound(_)) => Problem::not_found(e.to_string()),
            PostmarketError::Store(_) => Problem::internal("post-market", &e),
            _ => Problem::bad_request(e.to_string()),
        }
    }
}

pub fn device_router<S: CaStore + 'static>() -> Router<Arc<AppState<S>>> {
    Router::new().route(
        "/device/v1/events",
        // The gateway's small default limit does not fit a batch; the handler bounds the body
        // itself so an oversized batch gets a problem+json 413.
        post(post_events::<S>).layer(DefaultBodyLimit::disable()),
    )
}

pub fn public_router<S: CaStore + 'static>() -> Router<Arc<AppState<S>>> {
    Router::new()
        .route(
            "/cvd/reports",
            post(submit_report::<S>).layer(DefaultBodyLimit::disable()),
        )
        .route("/.well-known/security.txt", get(security_txt::<S>))
}

pub fn api_router<S: CaStore + 'static>() -> Router<Arc<AppState<S>>> {
    Router::new()
        .route("/api/v1/events", get(list_events::<S>))
        .route("/api/v1/events/purge", post(purge_events::<S>))
        .route(
            "/api/v1/detection-rules",
            get(get_rules::<S>).put(put_rules::<S>),
        )
        .route(
            "/api/v1/incidents",
            get(list_incidents::<S>).post(open_incident::<S>),
        )
        .route("/api/v1/incidents/{id}", get(get_incident::<S>))
        .route("/api/v1/incidents/{id}/status", post(incident_status::<S>))
        .route("/api/v1/incidents/{id}/owner", post(incident_owner::<S>))
        .route("/api/v1/incidents/{id}/actions", post(incident_action::<S>))
        .route("/api/v1/incidents/{id}/links", post(incident_links::<S>))
        .route(
            "/api/v1/incidents/{id}/reportability",
            post(incident_reportability::<S>),
        )
        .route(
            "/api/v1/incidents/{id}/obligations/{obligation}/met",
            post(obligation_met::<S>),
        )
        .route("/api/v1/incidents/{id}/report", get(incident_report::<S>))
        .route("/api/v1/clocks", get(clocks::<S>))
        .route("/api/v1/cvd/reports", get(list_reports::<S>))
        .route("/api/v1/cvd/reports/{id}", get(get_report::<S>))
        .route("/api/v1/cvd/reports/{id}/status", post(report_status::<S>))
        .route("/api/v1/cvd/reports/{id}/links", post(report_links::<S>))
        .route(
            "/api/v1/cvd/reports/{id}/disclosure",
            post(report_disclosure::<S>),
        )
}

/// Opens or updates incidents for vulnerabilities newly listed in KEV on fielded firmware
/// (shared with the CLI's KEV import). Returns the incidents touched.
pub async fn kev_listed(
    svc: &PostmarketService,
    exposures: &[medsec_inventory::KevExposure],
) -> Result<Vec<medsec_postmarket::service::IncidentTouch>, PostmarketError> {
    let mut xs = Vec::with_capacity(exposures.len());
    for x in exposures {
        xs.push(medsec_postmarket::service::KevExposure {
            vulnerability: Reference::parse(&x.vulnerability)?,
            model: x.model.clone(),
            firmware: x.version.to_string(),
            devices: x.devices.clone(),
        });
    }
    svc.kev_listed(&xs, now()).await
}

/// Turns handshakes refused for a revoked certificate into `certificate-rejected` events of
/// the certificate's device (source `server`), so the "use of a revoked certificate" rule sees
/// what no device can report about itself. One event per certificate per minute.
pub(crate) async fn observe_revoked_use<S: CaStore>(
    st: Arc<AppState<S>>,
    mut rx: tokio::sync::mpsc::Receiver<medsec_core::CertSerial>,
) {
    while let Some(serial) = rx.recv().await {
        let Some(svc) = st.postmarket.as_deref() else {
            continue;
        };
        let cert = match st.ca.get_cert(&serial).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!("revoked serial {serial} refused but not found: {e}");
                continue;
            }
        };
        let t = now();
        let minute = t.unix_timestamp() / 60;
        let id = format!("revoked-use-{serial}-{minute}");
        let event = (|| -> Result<medsec_postmarket::Event, PostmarketError> {
            Ok(medsec_postmarket::Event {
                id: medsec_postmarket::EventId::parse(&id)?,
                at: t,
                kind: medsec_postmarket::EventKind::CertificateRejected,
                severity: medsec_postmarket::Severity::High,
                details: [
                    ("reason".to_string(), "revoked".to_string()),
                    ("serial".to_string(), serial.to_string()),
                    ("observed_by".to_string(), "device-gateway".to_string()),
                ]
                .into(),
            })
        })();
        let r = match event {
            Ok(e) => {
                svc.ingest(&cert.device, EventSource::Server, vec![e], t)
                    .await
            }
            Err(e) => Err(e),
        };
        match r {
            Ok(out) => st
                .metrics
                .events(EventChannel::Server, out.accepted, out.duplicates),
            Err(e) => tracing::warn!("recording use of revoked certificate {serial}: {e}"),
        }
    }
}

fn pm<S>(st: &AppState<S>) -> Result<&PostmarketService, Problem> {
    st.postmarket
        .as_deref()
        .ok_or_else(|| Problem::unavailable("post-market surveillance"))
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Reads at most `limit` bytes; a longer body is a 413, not a silently truncated read. The
/// rest of an oversized body is read and dropped (up to a cap and a deadline) before
/// answering, so the client receives the 413 instead of a reset connection mid-upload.
async fn bounded(body: Body, limit: usize) -> Result<Bytes, Problem> {
    use http_body_util::BodyExt;
    const DRAIN_CAP: usize = 8 * 1024 * 1024;
    let mut body = body;
    let mut buf = Vec::new();
    let mut seen = 0usize;
    let too_large = || {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "about:blank",
            format!("the body exceeds {limit} bytes"),
        )
    };
    loop {
        let frame = match body.frame().await {
            None => break,
            Some(Ok(f)) => f,
            Some(Err(e)) => return Err(Problem::bad_request(format!("reading the body: {e}"))),
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen > limit {
            let drain = async {
                while seen <= DRAIN_CAP {
                    match body.frame().await {
                        Some(Ok(f)) => {
                            seen = seen.saturating_add(f.data_ref().map_or(0, |d| d.len()))
                        }
                        _ => break,
                    }
                }
            };
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), drain).await;
            return Err(too_large());
        }
        buf.extend_from_slice(&data);
    }
    Ok(Bytes::from(buf))
}

fn json_body<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, Problem> {
    serde_json::from_slice(b).map_err(|e| Problem::bad_request(format!("invalid JSON body: {e}")))
}

/// A device posts a batch of its security events. The certificate decides the device;
/// nothing in the body can name another one.
async fn post_events<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    Extension(peer): Extension<PeerCerts>,
    body: Body,
) -> Result<Json<Value>, Problem> {
    let c = crate::gateway::device(&st, &peer).await?;
    let svc = pm(&st)?;
    let bytes = bounded(body, MAX_BATCH_BYTES).await?;
    let events = parse_batch(&bytes, MAX_BATCH_EVENTS, MAX_BATCH_BYTES)?;
    let out = svc
        .ingest(&c.device, EventSource::Device, events, now())
        .await?;
    st.metrics
        .events(EventChannel::Device, out.accepted, out.duplicates);
    Ok(Json(json!(out)))
}

#[derive(Deserialize)]
struct EventsQuery {
    device: Option<String>,
    after: Option<u64>,
    limit: Option<u32>,
    order: Option<String>,
}

async fn list_events<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> Result<Json<Value>, Problem> {
    caller(&st, &h, Role::Auditor, "read device events").await?;
    let device = q
        .device
        .as_deref()
        .map(DeviceId::parse_urn)
        .transpose()
        .map_err(|e| Problem::bad_request(e.to_string()))?;
    let newest_first = match q.order.as_deref() {
        None | Some("newest") => true,
        Some("oldest") => false,
        Some(o) => {
            return Err(Problem::bad_request(format!(
                "order {o:?} is not newest or oldest"
            )));
        }
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let events = pm(&st)?
        .events(&EventQuery {
            device,
            after_seq: q.after,
            received_since: None,
            newest_first,
            limit,
        })
        .await?;
    Ok(Json(json!({ "events": events })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeBody {
    pub retention_days: u32,
}

async fn purge_events<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, Problem> {
    let p = caller(&st, &h, Role::Admin, "purge device events").await?;
    let b: PurgeBody = json_body(&body)?;
    if b.retention_days == 0 || b.retention_days > 36_500 {
        return Err(Problem::bad_request("retention_days must be 1 to 36500"));
    }
    let n = pm(&st)?
        .purge_events(
            Duration::days(i64::from(b.retention_days)),
            &p.actor(),
            now(),
        )
        .await?;
    Ok(Json(json!({ "purged": n })))
}

async fn get_rules<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
) -> Result<Response, Problem> {
    caller(&st, &h, Role::Auditor, "read detection rules").await?;
    let svc = pm(&st)?;
    let stored = svc.store().rules().await.map_err(PostmarketError::from)?;
    let (body, version) = match stored {
        Some(r) => (r.body, r.version),
        None => (
            medsec_postmarket::rules::RuleSet::default_json().to_string(),
            0,
        ),
    };
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (header::ETAG, format!("\"{version}\"")),
        ],
        body,
    )
        .into_response())
}

/// Replaces the rules. `If-Match: "<version>"` guards against overwriting someone else's
/// edit; without it the current version is assumed.
async fn put_rules<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, Problem> {
    let p = caller(&st, &h, Role::Admin, "change detection rules").await?;
    if body.len() > 1024 * 1024 {
        return Err(Problem::bad_request("rule files are limited to 1 MiB"));
    }
    let text = std::str::from_utf8(&body).map_err(|_| Problem::bad_request("not UTF-8"))?;
    let expected = match h.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) {
        Some(v) => Some(
            v.trim_matches('"')
                .parse::<u64>()
                .map_err(|_| Problem::bad_request("If-Match must be a quoted version number"))?,
        ),
        None => None,
    };
    let (rules, version) = pm(&st)?
        .set_rules(&p.actor(), text, expected, now())
        .await?;
    Ok(Json(
        json!({ "version": version, "rules": rules.rules().len() }),
    ))
}

pub(crate) fn incident_id(s: &str) -> Result<IncidentId, Problem> {
    Ok(IncidentId::parse(s)?)
}

pub(crate) fn incident_json(i: &Incident, now: OffsetDateTime) -> Value {
    let clocks = i.clocks().unwrap_or_default();
    let mut v = json!(i);
    v["updated_at"] = json!(i.updated_at().unix_timestamp());
    v["clocks"] = json!(
        clocks
            .iter()
            .map(|c| json!({
                "obligation": c.obligation,
                "citation": c.obligation.citation(),
                "due": c.due.unix_timestamp(),
                "met_at": c.met_at.map(|m| m.unix_timestamp()),
                "overdue": c.met_at.is_none() && c.due < now,
            }))
            .collect::<Vec<_>>()
    );
    v
}

#[derive(Deserialize)]
struct Page {
    open: Option<bool>,
    limit: Option<u32>,
    offset: Option<u64>,
}

async fn list_incidents<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Query(q): Query<Page>,
) -> Result<Json<Value>, Problem> {
    caller(&st, &h, Role::Auditor, "read incidents").await?;
    let list = pm(&st)?
        .incidents(
            q.open.unwrap_or(false),
            q.limit.unwrap_or(100).clamp(1, 1000),
            q.offset.unwrap_or(0),
        )
        .await?;
    let t = now();
    Ok(Json(json!({
        "incidents": list.iter().map(|i| incident_json(i, t)).collect::<Vec<_>>()
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenBody {
    pub title: String,
    pub model: String,
}

async fn open_incident<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let p = caller(&st, &h, Role::Operator, "open incidents").await?;
    let b: OpenBody = json_body(&body)?;
    let model = DeviceModel::parse(&b.model).map_err(|e| Problem::bad_request(e.to_string()))?;
    let t = now();
    let inc = pm(&st)?.open_manual(&p.actor(), &b.title, model, t).await?;
    Ok((StatusCode::CREATED, Json(incident_json(&inc, t))))
}

async fn get_incident<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    caller(&st, &h, Role::Auditor, "read incidents").await?;
    let inc = pm(&st)?.incident(incident_id(&id)?).await?;
    Ok(Json(incident_json(&inc, now())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusBody {
    pub status: String,
}

async fn incident_status<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, Problem> {
    let p = caller(&st, &h, Role::Operator, "change incidents").await?;
    let b: StatusBody = json_body(&body)?;
    let to = IncidentStatus::parse(&b.status)?;
    let t = now();
    let inc = pm(&st)?
        .transition(incident_id(&id)?, to, &p.actor(), t)
        .await?;
    Ok(Json(incident_json(&inc, t)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerBody {
    pub owner: String,
}

async fn incident_owner<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, Problem> {
    let p = caller(&st, &h, Role::Operator, "change incidents").await?;
    let b: OwnerBody = json_body(&body)?;
    let owner = Actor::parse(&b.owner).map_err(|e| Problem::bad_request(e.to_string()))?;
    let t = now();
    let inc = pm(&st)?
        .assign(incident_id(&id)?, owner, &p.actor(), t)
        .await?;
    Ok(Json(incident_json(&inc, t)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    pub note: String,
}

async fn incident_action<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, Problem> {
    let p = caller(&st, &h, Role::Operator, "change incidents").await?;
    let b: ActionBody = json_body(&body)?;
    let note = Note::parse(&b.note)?;
    let t = now();
    let inc = pm(&st)?
        .record_action(incident_id(&id)?, note, &p.actor(), t)
        .await?;
    Ok(Json(incident_json(&inc, t)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinksBody {
    #[serde(default)]
    pub vulnerabilities: Vec<String>,
    #[serde(default)]
    pub risks: Vec<String>,
    #[serde(default)]
    pub models: Vec<String>,
}

async fn incident_links<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, Problem> {
    let p = caller(&st, &h, Role::Operator, "change incidents").await?;
    let b: LinksBody = json_body(&body)?;
    let vulns = b
        .vulnerabilities
        .iter()
        .map(|v| Reference::parse(v))
        .collect::<Result<Vec<_>, _>>()?;
    let risks = b
        .risks
        .iter()
        .map(|v| Reference::parse(v))
        .collect::<Result<Vec<_>, _>>()?;
    let models = b
        .models
        .iter()
        .map(|m| DeviceModel::parse(m))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Problem::bad_request(e.to_string()))?;
    let t = now();
    let inc = pm(&st)?
        .link(incident_id(&id)?, &vulns, &risks, &models, &p.actor(), t)
        .await?;
    Ok(Json(incident_json(&inc, t)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportabilityBody {
    pub reportable: bool,
    #[serde(default)]
    pub obligations: Vec<String>,
    pub rationale: String,
    /// RFC 3339; the time the manufacturer became aware.
    pub aware_at: String,
}

pub(crate) fn parse_time(what: &str, s: &str) -> Result<OffsetDateTime, Problem> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| Problem::bad_request(format!("{what} {s:?} is not RFC 3339: {e}")))
}

async fn incident_reportability<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, Problem> {
    let p = caller(&st, &h, Role::Operator, "decide reportability").await?;
    let b: ReportabilityBody = json_body(&body)?;
    let obligations = b
        .obligations
        .iter()
        .map(|o| Obligation::parse(o))
        .collect::<Result<BTreeSet<_>, _>>()?;
    let aware = parse_time("aware_at", &b.aware_at)?;
    let t = now();
    if aware > t + Duration::minutes(5) {
        return Err(Problem::bad_request("aware_at is in the future"));
    }
    let decision =
        Reportability::new(b.reportable, obligations, Note::parse(&b.rationale)?, aware)?;
    let inc = pm(&st)?
        .decide_reportability(incident_id(&id)?, decision, &p.actor(), t)
        .await?;
    Ok(Json(incident_json(&inc, t)))
}

async fn obligation_met<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Path((id, obligation)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, Problem> {
    let p = caller(&st, &h, Role::Operator, "record filed reports").await?;
    let b: ActionBody = json_body(&body)?;
    let t = now();
    let inc = pm(&st)?
        .mark_met(
            incident_id(&id)?,
            Obligation::parse(&obligation)?,
            Note::parse(&b.note)?,
            &p.actor(),
            t,
        )
        .await?;
    Ok(Json(incident_json(&inc, t)))
}

#[derive(Deserialize)]
struct ReportQuery {
    kind: Option<String>,
    /// Consequences for patients or users as established so far (free text).
    consequences: Option<String>,
}

/// Gathers what a drafted report needs beyond the incident (shared with the CLI).
pub async fn report_context(
    inventory: Option<&medsec_inventory::Inventory>,
    manufacturer: &str,
    settings: &PostmarketSettings,
    inc: &Incident,
) -> ReportContext {
    let mut firmware = BTreeSet::new();
    if let Some(inv) = inventory {
        // Bounded: a fleet-wide incident lists its versions from a sample, not 10^6 lookups.
        for d in inc.devices().take(1000) {
            if let Ok(Some((v, _))) = inv.store().device_firmware(d).await {
                firmware.insert(v.to_string());
            }
        }
    }
    ReportContext {
        manufacturer: manufacturer.to_string(),
        manufacturer_address: settings.manufacturer_address.clone(),
        device_name: inc.model().to_string(),
        licence_number: settings
            .licences
            .iter()
            .find(|(m, _)| m == inc.model())
            .map(|(_, l)| l.clone()),
        firmware_versions: firmware.into_iter().collect(),
        consequences: None,
        other_devices: inc
            .models()
            .iter()
            .filter(|m| *m != inc.model())
            .map(|m| m.to_string())
            .collect(),
    }
}

async fn incident_report<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<ReportQuery>,
) -> Result<Response, Problem> {
    caller(&st, &h, Role::Auditor, "read incidents").await?;
    let kind = ReportKind::parse(q.kind.as_deref().unwrap_or("preliminary"))?;
    let inc = pm(&st)?.incident(incident_id(&id)?).await?;
    let mut ctx = report_context(
        st.inventory.as_deref(),
        &st.manufacturer,
        &st.postmarket_settings,
        &inc,
    )
    .await;
    ctx.consequences = q
        .consequences
        .as_deref()
        .map(Note::parse)
        .transpose()?
        .map(|n| n.as_str().to_string());
    let md = draft(&inc, kind, &ctx, now())?;
    Ok(([(header::CONTENT_TYPE, "text/markdown; charset=utf-8")], md).into_response())
}

#[derive(Deserialize)]
struct ClockQuery {
    due_within_days: Option<u32>,
}

async fn clocks<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Query(q): Query<ClockQuery>,
) -> Result<Json<Value>, Problem> {
    caller(&st, &h, Role::Auditor, "read regulatory clocks").await?;
    let days = q.due_within_days.unwrap_or(7).min(365);
    let view = pm(&st)?
        .clocks(now(), Duration::days(i64::from(days)))
        .await?;
    Ok(Json(json!(view)))
}

/// Public: a researcher submits a report and gets only its tracking id back.
async fn submit_report<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    body: Body,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let svc = pm(&st)?;
    // The body is read (bounded) even when the answer is a refusal: HTTP/2 clients treat a
    // stream reset over an unread body as a transport error and never see the 429.
    let bytes = bounded(body, medsec_postmarket::cvd::MAX_REPORT_BYTES).await;
    if !st.cvd_limiter.allow(from.ip()) {
        return Err(Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "about:blank",
            "too many reports from this address; retry later or use the e-mail contact in /.well-known/security.txt",
        ));
    }
    let bytes = bytes?;
    let sub = Submission::parse_json(&bytes)?;
    let mut random = [0u8; 16];
    {
        use aws_lc_rs::rand::SecureRandom;
        aws_lc_rs::rand::SystemRandom::new()
            .fill(&mut random)
            .map_err(|_| Problem::internal("cvd", &"no system randomness"))?;
    }
    let r = svc.submit_report(sub, random, now()).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "tracking_id": r.id,
            "received_at": r.received_at.unix_timestamp(),
            "acknowledge_by": r.acknowledge_by.unix_timestamp(),
            "message": "Thank you. Keep the tracking id; we will contact you if you left a contact.",
        })),
    ))
}

async fn security_txt<S: CaStore>(State(st): State<Arc<AppState<S>>>) -> Result<Response, Problem> {
    let s = &st.postmarket_settings;
    let mut txt = s.security_txt.clone();
    let t = now();
    txt.expires = Some(t + Duration::days(i64::from(s.security_txt_expires_days)));
    let body = txt
        .render(t)
        .map_err(|e| Problem::new(StatusCode::NOT_FOUND, "about:blank", e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response())
}

async fn list_reports<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Query(q): Query<Page>,
) -> Result<Json<Value>, Problem> {
    caller(&st, &h, Role::Auditor, "read vulnerability reports").await?;
    let t = now();
    let list = pm(&st)?
        .reports(q.limit.unwrap_or(100).clamp(1, 1000), q.offset.unwrap_or(0))
        .await?;
    Ok(Json(json!({
        "reports": list.iter().map(|r| {
            let mut v = json!(r);
            v["acknowledgement_overdue"] = json!(r.acknowledgement_overdue(t));
            v
        }).collect::<Vec<_>>()
    })))
}

fn tracking(s: &str) -> Result<TrackingId, Problem> {
    TrackingId::parse(s).map_err(|e| Problem::bad_request(e.to_string()))
}

async fn get_report<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    caller(&st, &h, Role::Auditor, "read vulnerability reports").await?;
    Ok(Json(json!(pm(&st)?.report(&tracking(&id)?).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportStatusBody {
    pub status: String,
    pub note: Option<String>,
}

async fn report_status<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, Problem> {
    let p = caller(&st, &h, Role::Operator, "handle vulnerability reports").await?;
    let b: ReportStatusBody = json_body(&body)?;
    let note = b.note.as_deref().map(Note::parse).transpose()?;
    let r = pm(&st)?
        .set_report_status(
            &tracking(&id)?,
            CvdStatus::parse(&b.status)?,
            note,
            &p.actor(),
            now(),
        )
        .await?;
    Ok(Json(json!(r)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportLinksBody {
    #[serde(default)]
    pub findings: Vec<String>,
    #[serde(default)]
    pub incidents: Vec<String>,
}

async fn report_links<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, Problem> {
    let p = caller(&st, &h, Role::Operator, "handle vulnerability reports").await?;
    let b: ReportLinksBody = json_body(&body)?;
    let findings = b
        .findings
        .iter()
        .map(|f| Reference::parse(f))
        .collect::<Result<BTreeSet<_>, _>>()?;
    let incidents = b
        .incidents
        .iter()
        .map(|i| incident_id(i))
        .collect::<Result<BTreeSet<_>, _>>()?;
    let r = pm(&st)?
        .link_report(&tracking(&id)?, &findings, &incidents, &p.actor(), now())
        .await?;
    Ok(Json(json!(r)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisclosureBody {
    pub disclose_by: String,
}

async fn report_disclosure<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, Problem> {
    let p = caller(&st, &h, Role::Operator, "handle vulnerability reports").await?;
    let b: DisclosureBody = json_body(&body)?;
    let date = parse_time("disclose_by", &b.disclose_by)?;
    let t = now();
    let actor = p.actor();
    let r = pm(&st)?
        .modify_report(&tracking(&id)?, &actor, |r| {
            r.set_disclosure_target(date, actor.clone(), t)
        })
        .await?;
    Ok(Json(json!(r)))
}
