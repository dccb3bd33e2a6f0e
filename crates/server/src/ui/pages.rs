//! The dashboard's pages and the forms behind their actions. Read-only pages need the auditor
//! role; actions need the same role as the matching API call and a valid CSRF token.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use medsec_auth::Role;
use medsec_ca::{CaStore, CertFilter};
use medsec_core::{CertSerial, DeviceId, DeviceModel, FirmwareVersion, RevocationReason};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{UiError, UiResult, UiSession, acting, charts, csrf, page, raw, session};
use crate::state::AppState;

type St<S> = State<Arc<AppState<S>>>;

fn ts(t: OffsetDateTime) -> String {
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

fn notice(q: &Done) -> Markup {
    html! {
        @if let Some(d) = &q.done {
            p.notice role="status" { (d) }
        }
    }
}

#[derive(Deserialize, Default)]
pub struct Done {
    done: Option<String>,
}

fn back(to: &str, done: &str) -> Response {
    let sep = if to.contains('?') { '&' } else { '?' };
    Redirect::to(&format!(
        "{to}{sep}{}",
        encode_params(&[("done", done.to_string())])
    ))
    .into_response()
}

/// A form's validation error, carried back to the form's page (post/redirect/get) so that the
/// page lists it at the top, linked to the field, and shows it next to the field, which it marks
/// invalid for assistive technology.
#[derive(Deserialize, Default, Clone)]
pub struct FieldErr {
    /// `<form id>.<field name>`.
    invalid: Option<String>,
    why: Option<String>,
}

impl FieldErr {
    fn on(&self, form: &str, field: &str) -> Option<&str> {
        let (f, n) = self.invalid.as_deref()?.split_once('.')?;
        (f == form && n == field).then_some(self.why.as_deref().unwrap_or("invalid value"))
    }

    /// The error summary for the top of the page: the message and a link to the field, so the
    /// error is seen even when the form is further down or on another page of the list.
    fn summary(&self) -> Markup {
        html! {
            @if let (Some(inv), Some(why)) = (&self.invalid, &self.why) {
                @if let Some((form, field)) = inv.split_once('.') {
                    div.error role="alert" {
                        p { strong { "There is a problem: " } (why) }
                        p { a href=(format!("#{}", field_id(form, field))) { "Go to the field" } }
                    }
                }
            }
        }
    }

    /// `aria-invalid` for the field's input.
    fn invalid_attr(&self, form: &str, field: &str) -> Option<&'static str> {
        self.on(form, field).map(|_| "true")
    }

    /// `aria-describedby` for the field's input: its error message.
    fn described_by(&self, form: &str, field: &str) -> Option<String> {
        self.on(form, field)
            .map(|_| format!("{}-error", field_id(form, field)))
    }

    /// The message beside the field.
    fn beside(&self, form: &str, field: &str) -> Markup {
        html! {
            @if let Some(why) = self.on(form, field) {
                span.field-error id=(format!("{}-error", field_id(form, field))) { (why) }
            }
        }
    }
}

/// The element id of a form's field.
fn field_id(form: &str, field: &str) -> String {
    format!("{form}-{field}")
}

/// An id-safe key for a per-row form (letters, digits and dashes).
fn form_key(parts: &[&str]) -> String {
    parts
        .join("-")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// Back to the form's page with the error for `form.field`; `params` keep the page's view.
fn invalid(
    to: &str,
    params: &[(&str, String)],
    form: &str,
    field: &str,
    why: impl std::fmt::Display,
) -> Response {
    let mut ps: Vec<(&str, String)> = params.to_vec();
    ps.push(("invalid", format!("{form}.{field}")));
    ps.push(("why", why.to_string()));
    Redirect::to(&format!(
        "{to}?{}#{}",
        encode_params(&ps),
        field_id(form, field)
    ))
    .into_response()
}

macro_rules! signed_in {
    ($st:expr, $h:expr) => {
        match session(&$st, &$h).await {
            Ok(s) => s,
            Err(r) => return Ok(r),
        }
    };
}

macro_rules! acting_as {
    ($st:expr, $h:expr, $csrf:expr, $role:expr) => {
        match acting(&$st, &$h, $csrf, $role).await {
            Ok(s) => s,
            Err(r) => return Ok(r),
        }
    };
}

pub fn router<S: CaStore + 'static>() -> Router<Arc<AppState<S>>> {
    Router::new()
        .route("/ui/", get(fleet::<S>))
        .route("/ui/fleet-risk", get(fleet_risk::<S>))
        .route("/ui/devices/{urn}", get(device::<S>))
        .route("/ui/devices/{urn}/retire", post(retire::<S>))
        .route("/ui/pki", get(pki::<S>))
        .route("/ui/pki/certs/{serial}/revoke", post(revoke::<S>))
        .route("/ui/pki/tokens", post(create_token::<S>))
        .route("/ui/vulns", get(vulns::<S>))
        .route("/ui/vulns/triage", post(triage::<S>))
        .route("/ui/updates", get(updates::<S>))
        .route("/ui/rollouts", post(create_rollout::<S>))
        .route("/ui/rollouts/{id}/{action}", post(rollout_action::<S>))
        .route("/ui/risk", get(risk::<S>))
        .route("/ui/incidents", get(incidents::<S>))
        .route("/ui/cvd", get(cvd::<S>))
        .route("/ui/audit", get(audit::<S>))
        .route("/ui/docs", get(docs::<S>))
        .route("/ui/docs/{model}/{version}/{file}", get(doc_file::<S>))
}

// ---------------------------------------------------------------------------------------------
// Fleet
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
pub struct FleetParams {
    model: Option<String>,
    firmware: Option<String>,
    status: Option<String>,
    q: Option<String>,
    eos: Option<String>,
    after: Option<String>,
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

async fn fleet<S: CaStore>(
    State(st): St<S>,
    h: HeaderMap,
    Query(p): Query<FleetParams>,
) -> UiResult {
    let s = signed_in!(st, h);
    let fleet = st
        .fleet
        .as_deref()
        .ok_or_else(|| UiError::new(StatusCode::SERVICE_UNAVAILABLE, "fleet view unavailable"))?;
    let now = OffsetDateTime::now_utc();
    let mut q = medsec_fleet::FleetQuery {
        limit: 50,
        ..medsec_fleet::FleetQuery::default()
    };
    if let Some(m) = nonempty(&p.model) {
        q.model = Some(DeviceModel::parse(m).map_err(|e| UiError::bad(e.to_string()))?);
    }
    if let Some(v) = nonempty(&p.firmware) {
        q.firmware = Some(FirmwareVersion::parse(v).map_err(|e| UiError::bad(e.to_string()))?);
    }
    if let Some(c) = nonempty(&p.status) {
        q.cert_status = Some(
            c.parse::<medsec_fleet::CertStatus>()
                .map_err(|e| UiError::bad(e.to_string()))?,
        );
    }
    q.search = nonempty(&p.q).map(str::to_string);
    q.past_end_of_support = p.eos.as_deref() == Some("1");
    if let Some(a) = nonempty(&p.after) {
        q.after = Some(medsec_fleet::Cursor::decode(a).map_err(|e| UiError::bad(e.to_string()))?);
    }
    let summary = fleet
        .fleet_summary(now)
        .await
        .map_err(|e| UiError::internal("fleet summary", &e))?;
    let page_rows = fleet
        .fleet_page(&q, now)
        .await
        .map_err(|e| UiError::internal("fleet page", &e))?;
    let by_fw: Vec<(String, u64)> = summary
        .by_firmware
        .iter()
        .map(|(m, v, n)| (format!("{m} {v}"), *n))
        .collect();
    let mut keep = url_params(&p);
    keep.retain(|(k, _)| *k != "after");
    let next = page_rows.next.as_ref().map(|c| {
        let mut ps = keep.clone();
        ps.push(("after", c.encode()));
        format!("/ui/?{}", encode_params(&ps))
    });
    Ok(page(
        &s,
        "fleet",
        "Fleet",
        html! {
            div.cards {
                div.card { span.n { (summary.devices) } "devices" }
                div.card { span.n.warn { (summary.expiring_30) } "certificates expiring within 30 days" }
                div.card { span.n { (summary.expiring_60) } "within 60 days" }
                div.card { span.n { (summary.expiring_90) } "within 90 days" }
                div.card { span.n.bad { (summary.past_end_of_support) } "devices past end of support" }
            }
            (raw(charts::bars("Devices by firmware version", &by_fw)))
            (raw(charts::columns("Certificate expiry by month", &summary.expiry_histogram)))
            h2 { "Devices" }
            form.filters method="get" action="/ui/" {
                label { "Serial contains" input type="search" name="q" value=(p.q.clone().unwrap_or_default()); }
                label { "Model" input type="text" name="model" value=(p.model.clone().unwrap_or_default()); }
                label { "Firmware" input type="text" name="firmware" value=(p.firmware.clone().unwrap_or_default()); }
                label { "Certificate"
                    select name="status" {
                        option value="" { "any" }
                        @for (v, l) in [("valid", "valid"), ("expiring", "expiring within 30 days"), ("expired", "expired"), ("revoked", "revoked"), ("none", "no certificate")] {
                            @if p.status.as_deref() == Some(v) { option value=(v) selected { (l) } } @else { option value=(v) { (l) } }
                        }
                    }
                }
                label { "Past end of support"
                    select name="eos" {
                        option value="" { "either" }
                        @if p.eos.as_deref() == Some("1") { option value="1" selected { "yes" } } @else { option value="1" { "yes" } }
                    }
                }
                button type="submit" { "Filter" }
            }
            div.table-wrap {
                table {
                    caption { "Devices, 50 per page" }
                    thead { tr { th scope="col" { "Device" } th scope="col" { "Firmware" } th scope="col" { "End of support" } th scope="col" { "Certificate" } th scope="col" { "Expires" } th scope="col" { "Open findings" } th scope="col" { "KEV" } } }
                    tbody {
                        @for r in &page_rows.rows {
                            tr {
                                td { a href=(format!("/ui/devices/{}", r.device.urn())) { (r.device.urn()) } @if r.retired { " (retired)" } }
                                td { (r.firmware.as_ref().map(|f| f.to_string()).unwrap_or_else(|| "-".into())) }
                                td { (r.end_of_support.map(|d| d.to_string()).unwrap_or_else(|| "-".into())) }
                                td { (r.cert_status.as_str()) }
                                td { (r.cert_not_after.map(ts).unwrap_or_default()) }
                                td { (r.open_findings) }
                                td { @if r.kev_findings > 0 { span.bad { (r.kev_findings) } } @else { "0" } }
                            }
                        }
                    }
                }
            }
            nav.pager aria-label="Pages" {
                @if nonempty(&p.after).is_some() { a href=(format!("/ui/?{}", encode_params(&keep))) { "First page" } }
                @if let Some(n) = next { a href=(n) rel="next" { "Next page" } }
            }
        },
    ))
}

fn url_params(p: &FleetParams) -> Vec<(&'static str, String)> {
    let mut v = Vec::new();
    for (k, val) in [
        ("model", &p.model),
        ("firmware", &p.firmware),
        ("status", &p.status),
        ("q", &p.q),
        ("eos", &p.eos),
        ("after", &p.after),
    ] {
        if let Some(x) = nonempty(val) {
            v.push((k, x.to_string()));
        }
    }
    v
}

fn encode_params(ps: &[(&str, String)]) -> String {
    ps.iter()
        .map(|(k, v)| {
            let enc: String = v
                .bytes()
                .map(|b| match b {
                    b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect();
            format!("{k}={enc}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

async fn fleet_risk<S: CaStore>(
    State(st): St<S>,
    h: HeaderMap,
    Query(fe): Query<FieldErr>,
) -> UiResult {
    let s = signed_in!(st, h);
    let fleet = st
        .fleet
        .as_deref()
        .ok_or_else(|| UiError::new(StatusCode::SERVICE_UNAVAILABLE, "fleet view unavailable"))?;
    let rows = fleet
        .fleet_risk(OffsetDateTime::now_utc(), 90, 200)
        .await
        .map_err(|e| UiError::internal("fleet risk", &e))?;
    Ok(page(
        &s,
        "fleet-risk",
        "Fleet risk",
        html! {
            (fe.summary())
            p { "Devices that at once run a KEV-listed or critical vulnerability, hold a certificate expiring within 90 days (or expired), and have not taken the release that fixes it. Most urgent first." }
            div.table-wrap {
                table {
                    thead { tr { th scope="col" { "Rank" } th scope="col" { "Device" } th scope="col" { "Firmware" } th scope="col" { "Why" } th scope="col" { "Certificate expires" } th scope="col" { "Fixing release" } th scope="col" { "Rollout" } } }
                    tbody {
                        @for (i, r) in rows.iter().enumerate() {
                            tr {
                                td { (i + 1) }
                                td { a href=(format!("/ui/devices/{}", r.device.urn())) { (r.device.urn()) } }
                                td { (r.firmware.to_string()) }
                                td { ul { @for reason in &r.reasons { li { (reason_text(reason)) } } } }
                                td { (ts(r.cert_not_after)) " (" (r.cert_status.as_str()) ")" }
                                td { (r.fix.version.to_string()) " (security version " (r.fix.security_version) ")" }
                                td {
                                    @if let Some(id) = &r.fix.active_rollout { a href=(format!("/ui/updates#rollout-{id}")) { "rollout " (id) } }
                                    @else if s.can(Role::Operator) {
                                        @let form = form_key(&["rollout", &i.to_string()]);
                                        form.inline id=(form) method="post" action="/ui/rollouts" {
                                            (csrf(&s))
                                            input type="hidden" name="model" value=(r.device.model.to_string());
                                            input type="hidden" name="version" value=(r.fix.version.to_string());
                                            input type="hidden" name="form" value=(form);
                                            // Named for its release so that a row's button says what it starts.
                                            button id=(field_id(&form, "version")) type="submit" aria-describedby=[fe.described_by(&form, "version")] { "Roll out " (r.fix.version.to_string()) }
                                            (fe.beside(&form, "version"))
                                        }
                                    }
                                    @else { "none" }
                                }
                            }
                        }
                    }
                }
            }
            @if rows.is_empty() { p { "No device is in that position." } }
        },
    ))
}

fn reason_text(r: &medsec_fleet::RiskReason) -> String {
    use medsec_fleet::RiskReason::*;
    match r {
        KevFinding {
            vuln_id, component, ..
        } => format!("{vuln_id} (CISA KEV) in {component}"),
        CriticalFinding {
            vuln_id,
            component,
            cvss_score,
        } => format!(
            "{vuln_id} (CVSS {}) in {component}",
            cvss_score
                .map(|s| format!("{s:.1}"))
                .unwrap_or_else(|| "-".into())
        ),
        CertExpiring { days_left, .. } => format!("certificate expires in {days_left} days"),
        CertExpired { .. } => "certificate expired".into(),
        FixNotTaken { release, .. } => format!("fix {release} not taken"),
        #[allow(unreachable_patterns)]
        _ => "other".into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Device
// ---------------------------------------------------------------------------------------------

fn parse_urn(urn: &str) -> Result<DeviceId, UiError> {
    DeviceId::parse_urn(urn).map_err(|e| UiError::bad(e.to_string()))
}

async fn device<S: CaStore>(
    State(st): St<S>,
    h: HeaderMap,
    Path(urn): Path<String>,
    Query(d): Query<Done>,
) -> UiResult {
    let s = signed_in!(st, h);
    let id = parse_urn(&urn)?;
    let rec = st
        .ca
        .get_device(&id)
        .await
        .map_err(|e| UiError::new(StatusCode::NOT_FOUND, e.to_string()))?;
    let certs = st
        .ca
        .list_certs(&CertFilter {
            device: Some(id.clone()),
            limit: Some(100),
            ..CertFilter::default()
        })
        .await
        .map_err(|e| UiError::internal("device certs", &e))?;
    let (firmware, findings) = match st.inventory.as_deref() {
        Some(inv) => inv
            .device_findings(&id)
            .await
            .map_err(|e| UiError::internal("device findings", &e))?,
        None => (None, Vec::new()),
    };
    let (events, incidents) = match st.postmarket.as_deref() {
        Some(pm) => {
            let ev = pm
                .events(&medsec_postmarket::store::EventQuery {
                    device: Some(id.clone()),
                    newest_first: true,
                    limit: 50,
                    ..Default::default()
                })
                .await
                .map_err(|e| UiError::internal("device events", &e))?;
            let inc: Vec<_> = pm
                .incidents(false, 500, 0)
                .await
                .map_err(|e| UiError::internal("device incidents", &e))?
                .into_iter()
                .filter(|i| i.devices().any(|d| d == &id))
                .collect();
            (ev, inc)
        }
        None => (Vec::new(), Vec::new()),
    };
    Ok(page(
        &s,
        "fleet",
        &format!("Device {}", id.urn()),
        html! {
            (notice(&d))
            dl {
                dt { "Model" } dd { (id.model.to_string()) }
                dt { "Serial" } dd { (id.serial.to_string()) }
                dt { "Status" } dd { @if rec.retired_at.is_some() { span.bad { "retired" } } @else { "active" } }
                dt { "Firmware" } dd { (firmware.map(|f| f.to_string()).unwrap_or_else(|| "not reported".into())) }
            }
            @if s.can(Role::Operator) && rec.retired_at.is_none() {
                form.inline method="post" action=(format!("/ui/devices/{}/retire", id.urn())) {
                    (csrf(&s))
                    button.danger type="submit" { "Retire device (revokes all its certificates)" }
                }
            }
            h2 { "Certificates" }
            (cert_table(&s, &certs))
            h2 { "Open findings" }
            table {
                thead { tr { th scope="col" { "Vulnerability" } th scope="col" { "Component" } th scope="col" { "Severity" } th scope="col" { "KEV" } th scope="col" { "State" } } }
                tbody { @for f in &findings { tr { td { (f.finding.vuln_id) } td { (f.finding.component) } td { (format!("{:?}", f.severity).to_lowercase()) } td { @if f.finding.kev { span.bad { "yes" } } @else { "no" } } td { (f.state) } } } }
            }
            h2 { "Security events" }
            table {
                thead { tr { th scope="col" { "Time" } th scope="col" { "Type" } th scope="col" { "Severity" } th scope="col" { "Source" } th scope="col" { "Id" } } }
                tbody { @for e in &events { tr { td { (ts(e.event.at)) } td { (e.event.event_type().as_str()) } td { (e.event.severity.as_str()) } td { (e.source.as_str()) } td { (e.event.id.as_str()) } } } }
            }
            h2 { "Incidents" }
            ul { @for i in &incidents { li { a href="/ui/incidents" { (i.id().to_string()) } " " (i.title()) " (" (i.status().as_str()) ")" } } }
        },
    ))
}

fn cert_table(s: &UiSession, certs: &[medsec_ca::CertRecord]) -> Markup {
    html! {
        div.table-wrap {
            table {
                thead { tr { th scope="col" { "Serial" } th scope="col" { "Device" } th scope="col" { "Profile" } th scope="col" { "Not after" } th scope="col" { "Status" } @if s.can(Role::Operator) { th scope="col" { "Action" } } } }
                tbody {
                    @for c in certs {
                        tr {
                            td { code { (c.serial.to_string()) } }
                            td { a href=(format!("/ui/devices/{}", c.device.urn())) { (c.device.urn()) } }
                            td { (c.profile.to_string()) }
                            td { (ts(c.not_after)) }
                            td { @if let medsec_ca::CertStatus::Revoked(r) = &c.status { span.bad { "revoked (" (r.reason.to_string()) ")" } } @else { "valid" } }
                            @if s.can(Role::Operator) {
                                td {
                                    @if matches!(c.status, medsec_ca::CertStatus::Valid) {
                                        (revoke_form(s, &FieldErr::default(), &c.serial.to_string()))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn retire<S: CaStore>(
    State(st): St<S>,
    h: HeaderMap,
    Path(urn): Path<String>,
    Form(f): Form<CsrfForm>,
) -> UiResult {
    let s = acting_as!(st, h, &f.csrf, Role::Operator);
    let id = parse_urn(&urn)?;
    let revoked = st
        .retire(&id, &s.actor())
        .await
        .map_err(|e| UiError::bad(e.to_string()))?;
    Ok(back(
        &format!("/ui/devices/{}", id.urn()),
        &format!("retired; {} certificate(s) revoked", revoked.len()),
    ))
}

// ---------------------------------------------------------------------------------------------
// PKI
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
pub struct PkiParams {
    done: Option<String>,
    q: Option<String>,
    revoked: Option<String>,
    expiring: Option<u32>,
    after: Option<String>,
}

async fn pki<S: CaStore>(
    State(st): St<S>,
    h: HeaderMap,
    Query(p): Query<PkiParams>,
    Query(fe): Query<FieldErr>,
) -> UiResult {
    let s = signed_in!(st, h);
    let fleet = st
        .fleet
        .as_deref()
        .ok_or_else(|| UiError::new(StatusCode::SERVICE_UNAVAILABLE, "fleet view unavailable"))?;
    let cas = st
        .ca
        .list_cas()
        .await
        .map_err(|e| UiError::internal("cas", &e))?;
    let profiles = st
        .ca
        .list_profiles()
        .await
        .map_err(|e| UiError::internal("profiles", &e))?;
    let mut q = medsec_fleet::CertQuery {
        limit: 50,
        search: nonempty(&p.q).map(str::to_string),
        expiring_within_days: p.expiring,
        revoked: match p.revoked.as_deref() {
            Some("yes") => Some(true),
            Some("no") => Some(false),
            _ => None,
        },
        ..medsec_fleet::CertQuery::default()
    };
    if let Some(a) = nonempty(&p.after) {
        q.after = Some(medsec_fleet::Cursor::decode(a).map_err(|e| UiError::bad(e.to_string()))?);
    }
    let certs = fleet
        .cert_page(&q, OffsetDateTime::now_utc())
        .await
        .map_err(|e| UiError::internal("certificates", &e))?;
    let mut keep: Vec<(&str, String)> = Vec::new();
    if let Some(x) = nonempty(&p.q) {
        keep.push(("q", x.to_string()));
    }
    if let Some(x) = nonempty(&p.revoked) {
        keep.push(("revoked", x.to_string()));
    }
    if let Some(x) = p.expiring {
        keep.push(("expiring", x.to_string()));
    }
    let next = certs.next.as_ref().map(|c| {
        let mut ps = keep.clone();
        ps.push(("after", c.encode()));
        format!("/ui/pki?{}", encode_params(&ps))
    });
    let d = Done {
        done: p.done.clone(),
    };
    Ok(page(
        &s,
        "pki",
        "PKI",
        html! {
            (notice(&d))
            (fe.summary())
            h2 { "Certificate authorities" }
            table {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Role" } th scope="col" { "Key" } th scope="col" { "Not after" } th scope="col" { "CRL" } th scope="col" { "OCSP" } th scope="col" { "Status" } } }
                tbody { @for c in &cas { tr { td { (c.name.to_string()) } td { (format!("{:?}", c.role).to_lowercase()) } td { (c.key_algorithm.to_string()) } td { (ts(c.not_after)) } td { (c.crl_url.clone().unwrap_or_default()) } td { (c.ocsp_url.clone().unwrap_or_default()) } td { @if c.revocation.is_some() { span.bad { "revoked" } } @else { "active" } } } } }
            }
            h2 { "Profiles" }
            table {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Model" } th scope="col" { "Issuer" } th scope="col" { "Key types" } th scope="col" { "Validity (days)" } } }
                tbody { @for p in &profiles { tr { td { (p.name.to_string()) } td { (p.model.to_string()) } td { (p.issuer.to_string()) } td { (p.key_types.iter().map(|k| k.to_string()).collect::<Vec<_>>().join(", ")) } td { (p.validity_days) } } } }
            }
            @if s.can(Role::Operator) {
                h2 { "Enrollment token" }
                form.filters #token method="post" action="/ui/pki/tokens" {
                    (csrf(&s))
                    label { "Profile" select id=(field_id("token", "profile")) name="profile" aria-invalid=[fe.invalid_attr("token", "profile")] aria-describedby=[fe.described_by("token", "profile")] { @for p in &profiles { option value=(p.name.to_string()) { (p.name.to_string()) } } } }
                    (fe.beside("token", "profile"))
                    label { "Device serial" input id=(field_id("token", "serial")) type="text" name="serial" required aria-invalid=[fe.invalid_attr("token", "serial")] aria-describedby=[fe.described_by("token", "serial")]; }
                    (fe.beside("token", "serial"))
                    button type="submit" { "Create one-time token" }
                }
            }
            h2 { "Certificates" }
            form.filters method="get" action="/ui/pki" {
                label { "Device serial contains" input type="search" name="q" value=(p.q.clone().unwrap_or_default()); }
                label { "Revoked" select name="revoked" { option value="" { "either" } option value="yes" { "revoked" } option value="no" { "not revoked" } } }
                label { "Expiring within days" input type="number" min="1" max="3650" name="expiring" value=(p.expiring.map(|x| x.to_string()).unwrap_or_default()); }
                button type="submit" { "Search" }
            }
            div.table-wrap {
                table {
                    caption { "Certificates, 50 per page" }
                    thead { tr { th scope="col" { "Serial" } th scope="col" { "Device" } th scope="col" { "Profile" } th scope="col" { "Not after" } th scope="col" { "Status" } @if s.can(Role::Operator) { th scope="col" { "Action" } } } }
                    tbody {
                        @for c in &certs.rows {
                            tr {
                                td { code { (c.serial.to_string()) } }
                                td { a href=(format!("/ui/devices/{}", c.device.urn())) { (c.device.urn()) } }
                                td { (c.profile.to_string()) }
                                td { (ts(c.not_after)) }
                                td { @if let Some(r) = &c.revoked_reason { span.bad { "revoked (" (r) ")" } } @else { (c.status.as_str()) } }
                                @if s.can(Role::Operator) {
                                    td { @if c.revoked_at.is_none() { (revoke_form(&s, &fe, &c.serial.to_string())) } }
                                }
                            }
                        }
                    }
                }
            }
            nav.pager aria-label="Pages" {
                @if nonempty(&p.after).is_some() { a href=(format!("/ui/pki?{}", encode_params(&keep))) { "First page" } }
                @if let Some(n) = next { a href=(n) rel="next" { "Next page" } }
            }
        },
    ))
}

fn revoke_form(s: &UiSession, fe: &FieldErr, serial: &str) -> Markup {
    let form = form_key(&["revoke", serial]);
    html! {
        form.inline id=(form) method="post" action=(format!("/ui/pki/certs/{serial}/revoke")) {
            (csrf(s))
            label for=(field_id(&form, "reason")) { "Reason" }
            select id=(field_id(&form, "reason")) name="reason" aria-invalid=[fe.invalid_attr(&form, "reason")] aria-describedby=[fe.described_by(&form, "reason")] {
                @for r in ["keyCompromise", "superseded", "cessationOfOperation", "affiliationChanged", "unspecified"] { option value=(r) { (r) } }
            }
            (fe.beside(&form, "reason"))
            button.danger type="submit" { "Revoke" }
        }
    }
}

#[derive(Deserialize)]
pub struct RevokeForm {
    #[serde(default)]
    csrf: String,
    reason: String,
}

async fn revoke<S: CaStore>(
    State(st): St<S>,
    h: HeaderMap,
    Path(serial): Path<String>,
    Form(f): Form<RevokeForm>,
) -> UiResult {
    let s = acting_as!(st, h, &f.csrf, Role::Operator);
    let form = form_key(&["revoke", &serial]);
    let serial: CertSerial = serial
        .parse()
        .map_err(|e: medsec_core::CoreError| UiError::bad(e.to_string()))?;
    let reason = f.reason.parse::<RevocationReason>();
    let outcome = match reason {
        Ok(r) => st.revoke(&serial, r, None, &s.actor()).await.map(|_| r),
        Err(e) => Err(e.into()),
    };
    let reason = match outcome {
        Ok(r) => r,
        Err(e) => {
            // Back to the certificate's row: the search for its device lists it.
            let keep: Vec<(&str, String)> = match st.ca.get_cert(&serial).await {
                Ok(c) => vec![("q", c.device.serial.to_string())],
                Err(_) => Vec::new(),
            };
            return Ok(invalid("/ui/pki", &keep, &form, "reason", e));
        }
    };
    Ok(back(
        "/ui/pki",
        &format!("certificate {serial} revoked ({reason})"),
    ))
}

#[derive(Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    csrf: String,
    profile: String,
    serial: String,
}

async fn create_token<S: CaStore>(
    State(st): St<S>,
    h: HeaderMap,
    Form(f): Form<TokenForm>,
) -> UiResult {
    let s = acting_as!(st, h, &f.csrf, Role::Operator);
    let profile = match medsec_core::Name::parse(&f.profile) {
        Ok(p) => p,
        Err(e) => return Ok(invalid("/ui/pki", &[], "token", "profile", e)),
    };
    let serial = match medsec_core::DeviceSerial::parse(f.serial.trim()) {
        Ok(p) => p,
        Err(e) => {
            return Ok(invalid(
                "/ui/pki",
                &[],
                "token",
                "serial",
                format!("device serial: {e}"),
            ));
        }
    };
    let (secret, _) = match st
        .ca
        .create_enrollment_token(&profile, &serial, time::Duration::hours(24), &s.actor())
        .await
    {
        Ok(t) => t,
        Err(e @ medsec_ca::CaError::ProfileNotFound(_)) => {
            return Ok(invalid("/ui/pki", &[], "token", "profile", e));
        }
        Err(e) => return Ok(invalid("/ui/pki", &[], "token", "serial", e)),
    };
    Ok(page(
        &s,
        "pki",
        "Enrollment token",
        html! {
            p { "One-time token for device " code { (serial.to_string()) } " (valid 24 hours, shown once):" }
            p { code { (secret) } }
            p { a href="/ui/pki" { "Back to PKI" } }
        },
    ))
}

// ---------------------------------------------------------------------------------------------
// Vulnerabilities
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
pub struct VulnParams {
    model: Option<String>,
    done: Option<String>,
    page: Option<usize>,
    diff_model: Option<String>,
    old: Option<String>,
    new: Option<String>,
}

async fn vulns<S: CaStore>(
    State(st): St<S>,
    h: HeaderMap,
    Query(p): Query<VulnParams>,
    Query(fe): Query<FieldErr>,
) -> UiResult {
    let s = signed_in!(st, h);
    let inv = st.inventory.as_deref().ok_or_else(|| {
        UiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "vulnerability management unavailable",
        )
    })?;
    let model = nonempty(&p.model)
        .map(DeviceModel::parse)
        .transpose()
        .map_err(|e| UiError::bad(e.to_string()))?;
    let mut views = inv
        .findings(model.as_ref(), None)
        .await
        .map_err(|e| UiError::internal("findings", &e))?;
    views.retain(|v| v.is_open());
    views.sort_by(|a, b| {
        (
            b.finding.kev,
            b.finding.cvss_score.map(|x| (x * 10.0) as i64),
        )
            .cmp(&(
                a.finding.kev,
                a.finding.cvss_score.map(|x| (x * 10.0) as i64),
            ))
    });
    let mut by_sev: BTreeMap<String, u64> = BTreeMap::new();
    for v in &views {
        *by_sev
            .entry(format!("{:?}", v.severity).to_lowercase())
            .or_default() += 1;
    }
    let per = 50;
    let pg = p.page.unwrap_or(0);
    let shown: Vec<_> = views.iter().skip(pg * per).take(per).collect();
    let diff = match (nonempty(&p.diff_model), nonempty(&p.old), nonempty(&p.new)) {
        (Some(m), Some(a), Some(b)) => {
            let m = DeviceModel::parse(m).map_err(|e| UiError::bad(e.to_string()))?;
            let a = FirmwareVersion::parse(a).map_err(|e| UiError::bad(e.to_string()))?;
            let b = FirmwareVersion::parse(b).map_err(|e| UiError::bad(e.to_string()))?;
            let (sa, sb) = (
                inv.sbom(&m, &a)
                    .await
                    .map_err(|e| UiError::bad(e.to_string()))?,
                inv.sbom(&m, &b)
                    .await
                    .map_err(|e| UiError::bad(e.to_string()))?,
            );
            Some(medsec_sbom::diff(&sa.sbom, &sb.sbom))
        }
        _ => None,
    };
    let sev_rows: Vec<(String, u64)> = by_sev.into_iter().collect();
    let trend = inv
        .findings_trend(
            model.as_ref(),
            &medsec_inventory::weekly(OffsetDateTime::now_utc(), 12),
        )
        .await
        .map_err(|e| UiError::internal("findings trend", &e))?;
    let trend_cols: Vec<(String, u64)> = trend
        .iter()
        .map(|p| {
            (
                format!("{:02}-{:02}", u8::from(p.at.month()), p.at.day()),
                p.open,
            )
        })
        .collect();
    let kev_cols: Vec<(String, u64)> = trend
        .iter()
        .map(|p| {
            (
                format!("{:02}-{:02}", u8::from(p.at.month()), p.at.day()),
                p.kev,
            )
        })
        .collect();
    Ok(page(
        &s,
        "vulns",
        "Vulnerabilities",
        html! {
            @if let Some(dn) = &p.done { p.notice role="status" { (dn) } }
            (fe.summary())
            (raw(charts::bars("Open findings by severity", &sev_rows)))
            div.charts {
                (raw(charts::columns("Open findings over time (weekly, last 12 weeks)", &trend_cols)))
                (raw(charts::columns("Of which in CISA KEV (weekly)", &kev_cols)))
            }
            p { (views.len()) " open findings; " (views.iter().filter(|v| v.finding.kev).count()) " listed in CISA KEV." }
            form.filters method="get" action="/ui/vulns" {
                label { "Model" input type="text" name="model" value=(p.model.clone().unwrap_or_default()); }
                button type="submit" { "Filter" }
            }
            div.table-wrap {
                table {
                    thead { tr { th scope="col" { "Vulnerability" } th scope="col" { "Firmware" } th scope="col" { "Component" } th scope="col" { "CVSS" } th scope="col" { "KEV" } th scope="col" { "State" } @if s.can(Role::Operator) { th scope="col" { "Triage" } } } }
                    tbody {
                        @for v in shown.iter() {
                            // The component too: one vulnerability can be found in several.
                            @let form = form_key(&["triage", v.finding.model.as_str(), v.finding.version.as_str(), &v.finding.vuln_id, &v.finding.component]);
                            tr {
                                td { (v.finding.vuln_id) }
                                td { (v.finding.model.to_string()) " " (v.finding.version.to_string()) }
                                td { (v.finding.component) }
                                td { (v.finding.cvss_score.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into())) }
                                td { @if v.finding.kev { span.bad { "yes" } } @else { "no" } }
                                td { (v.state) }
                                @if s.can(Role::Operator) {
                                    td {
                                        form.inline id=(form) method="post" action="/ui/vulns/triage" {
                                            (csrf(&s))
                                            input type="hidden" name="model" value=(v.finding.model.to_string());
                                            input type="hidden" name="version" value=(v.finding.version.to_string());
                                            input type="hidden" name="vuln" value=(v.finding.vuln_id);
                                            input type="hidden" name="page" value=(pg);
                                            input type="hidden" name="form" value=(form);
                                            input type="hidden" name="filter_model" value=(p.model.clone().unwrap_or_default());
                                            label for=(field_id(&form, "state")) { "State" }
                                            select id=(field_id(&form, "state")) name="state" aria-invalid=[fe.invalid_attr(&form, "state")] aria-describedby=[fe.described_by(&form, "state")] {
                                                @for st2 in ["not_affected", "affected", "fixed", "false_positive", "in_triage"] { option value=(st2) { (st2) } }
                                            }
                                            (fe.beside(&form, "state"))
                                            label for=(field_id(&form, "justification")) { "Justification" }
                                            select id=(field_id(&form, "justification")) name="justification" aria-invalid=[fe.invalid_attr(&form, "justification")] aria-describedby=[fe.described_by(&form, "justification")] {
                                                option value="" { "-" }
                                                @for j in medsec_vuln::Justification::ALL { option value=(j.as_str()) { (j.as_str()) } }
                                            }
                                            (fe.beside(&form, "justification"))
                                            label for=(field_id(&form, "reason")) { "Reason" }
                                            input id=(field_id(&form, "reason")) type="text" name="reason" required aria-invalid=[fe.invalid_attr(&form, "reason")] aria-describedby=[fe.described_by(&form, "reason")];
                                            (fe.beside(&form, "reason"))
                                            button type="submit" { "Record" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            nav.pager aria-label="Pages" {
                @if pg > 0 { a href=(format!("/ui/vulns?page={}", pg - 1)) { "Previous page" } }
                @if (pg + 1) * per < views.len() { a href=(format!("/ui/vulns?page={}", pg + 1)) rel="next" { "Next page" } }
            }
            h2 { "SBOM diff" }
            form.filters method="get" action="/ui/vulns" {
                label { "Model" input type="text" name="diff_model" value=(p.diff_model.clone().unwrap_or_default()) required; }
                label { "Old version" input type="text" name="old" value=(p.old.clone().unwrap_or_default()) required; }
                label { "New version" input type="text" name="new" value=(p.new.clone().unwrap_or_default()) required; }
                button type="submit" { "Compare" }
            }
            @if let Some(d) = diff {
                table {
                    thead { tr { th scope="col" { "Change" } th scope="col" { "Component" } } }
                    tbody {
                        @for c in &d.added { tr { td.ok { "added" } td { (c.component) " " (c.to.clone().unwrap_or_default()) } } }
                        @for c in &d.removed { tr { td.bad { "removed" } td { (c.component) " " (c.from.clone().unwrap_or_default()) } } }
                        @for c in &d.changed { tr { td.warn { "changed" } td { (c.component) " " (c.from.clone().unwrap_or_default()) " → " (c.to.clone().unwrap_or_default()) } } }
                    }
                }
            }
        },
    ))
}

#[derive(Deserialize)]
pub struct TriageForm {
    #[serde(default)]
    csrf: String,
    model: String,
    version: String,
    vuln: String,
    state: String,
    #[serde(default)]
    justification: String,
    reason: String,
    /// The list page and filter the form was on, to come back to with an error.
    #[serde(default)]
    page: Option<usize>,
    #[serde(default)]
    filter_model: String,
    /// The row's form id, to show an error beside its fields.
    #[serde(default)]
    form: String,
}

async fn triage<S: CaStore>(State(st): St<S>, h: HeaderMap, Form(f): Form<TriageForm>) -> UiResult {
    use medsec_vuln::{Justification, VexStatus};
    let s = acting_as!(st, h, &f.csrf, Role::Operator);
    let inv = st.inventory.as_deref().ok_or_else(|| {
        UiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "vulnerability management unavailable",
        )
    })?;
    let form = if f.form.is_empty() {
        form_key(&["triage", &f.model, &f.version, &f.vuln])
    } else {
        form_key(&[&f.form])
    };
    let mut keep: Vec<(&str, String)> = Vec::new();
    if !f.filter_model.trim().is_empty() {
        keep.push(("model", f.filter_model.trim().to_string()));
    }
    if let Some(pg) = f.page.filter(|p| *p > 0) {
        keep.push(("page", pg.to_string()));
    }
    let bad = |field: &str, why: String| Ok(invalid("/ui/vulns", &keep, &form, field, why));
    let status = match (f.state.as_str(), f.justification.trim()) {
        ("not_affected", j) if !j.is_empty() => match j.parse::<Justification>() {
            Ok(justification) => VexStatus::NotAffected { justification },
            Err(e) => return bad("justification", e.to_string()),
        },
        ("not_affected", _) => {
            return bad(
                "justification",
                "not_affected needs a justification: say why the product is not affected".into(),
            );
        }
        ("affected", _) => VexStatus::Affected,
        ("fixed", _) => VexStatus::Fixed,
        ("false_positive", _) => VexStatus::FalsePositive,
        ("in_triage", _) => VexStatus::InTriage,
        (other, _) => return bad("state", format!("unknown state {other:?}")),
    };
    if f.reason.trim().is_empty() {
        return bad(
            "reason",
            "a reason is required: it is published in the VEX statement".into(),
        );
    }
    let model = DeviceModel::parse(&f.model).map_err(|e| UiError::bad(e.to_string()))?;
    let version = FirmwareVersion::parse(&f.version).map_err(|e| UiError::bad(e.to_string()))?;
    if let Err(e) = inv
        .triage(
            &s.actor(),
            &model,
            &version,
            &f.vuln,
            None,
            status,
            &f.reason,
            None,
        )
        .await
    {
        return bad("state", e.to_string());
    }
    Ok(back(
        "/ui/vulns",
        &format!("{} recorded for {}", f.state, f.vuln),
    ))
}

// ---------------------------------------------------------------------------------------------
// Updates
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
pub struct UpdatesParams {
    /// Page of the releases table.
    rp: Option<usize>,
    /// Page of the rollouts.
    op: Option<usize>,
}

async fn updates<S: CaStore>(
    State(st): St<S>,
    h: HeaderMap,
    Query(d): Query<Done>,
    Query(up): Query<UpdatesParams>,
) -> UiResult {
    let s = signed_in!(st, h);
    let dir = st.director.as_deref().ok_or_else(|| {
        UiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "secure updates unavailable",
        )
    })?;
    let releases = dir
        .store()
        .list_releases(None)
        .await
        .map_err(|e| UiError::internal("releases", &e))?;
    let mut rollouts = dir
        .store()
        .list_rollouts(None)
        .await
        .map_err(|e| UiError::internal("rollouts", &e))?;
    // Running ones first (they may need a hand on pause/abort), then newest first.
    rollouts.sort_by_key(|r| {
        (
            !matches!(
                r.state,
                medsec_updates::RolloutState::Active | medsec_updates::RolloutState::Paused
            ),
            std::cmp::Reverse(r.created_at),
        )
    });
    const RELEASES_PER: usize = 50;
    const ROLLOUTS_PER: usize = 10;
    let (rp, op) = (up.rp.unwrap_or(0), up.op.unwrap_or(0));
    let release_count = releases.len();
    let mut releases = releases;
    // Per model, newest first.
    releases.sort_by(|a, b| {
        (a.model.as_str(), std::cmp::Reverse(a.security_version))
            .cmp(&(b.model.as_str(), std::cmp::Reverse(b.security_version)))
    });
    let releases: Vec<_> = releases
        .into_iter()
        .skip(rp * RELEASES_PER)
        .take(RELEASES_PER)
        .collect();
    let rollout_count = rollouts.len();
    let mut views = Vec::new();
    // Only the shown page's views: each costs the cohort's device reports.
    for r in rollouts.iter().skip(op * ROLLOUTS_PER).take(ROLLOUTS_PER) {
        views.push(
            dir.view(&r.id)
                .await
                .map_err(|e| UiError::internal("rollout view", &e))?,
        );
    }
    Ok(page(
        &s,
        "updates",
        "Updates",
        html! {
            (notice(&d))
            h2 { "Releases" }
            table {
                thead { tr { th scope="col" { "Model" } th scope="col" { "Version" } th scope="col" { "Security version" } th scope="col" { "Hardware" } th scope="col" { "Length" } } }
                tbody { @for r in &releases { tr { td { (r.model) } td { (r.version) } td { (r.security_version) } td { (r.hardware_id) } td { (r.length) } } } }
            }
            nav.pager aria-label="Release pages" {
                @if rp > 0 { a href=(format!("/ui/updates?rp={}&op={op}", rp - 1)) { "Previous releases" } }
                @if (rp + 1) * RELEASES_PER < release_count { a href=(format!("/ui/updates?rp={}&op={op}", rp + 1)) { "Next releases" } }
            }
            h2 { "Rollouts" }
            @for v in &views {
                section id=(format!("rollout-{}", v.rollout.id)) {
                    h2 { "Rollout " (v.rollout.id) ": " (v.rollout.model) " → " (v.rollout.target) }
                    p { "State: " strong { (v.rollout.state.as_str()) } "; cohort " (v.cohort_size) " devices; stage " (v.rollout.current_stage + 1) " of " (v.rollout.stages.len()) }
                    @let rows: Vec<(String, u64)> = v.stages.iter().map(|sv| (format!("{} % stage: updated", sv.share), sv.by_status.get("confirmed").copied().unwrap_or(0) as u64)).collect();
                    (raw(charts::bars("Devices confirmed per stage", &rows)))
                    @if s.can(Role::Operator) {
                        @for action in ["pause", "resume", "abort"] {
                            form.inline method="post" action=(format!("/ui/rollouts/{}/{action}", v.rollout.id)) {
                                (csrf(&s))
                                @if action == "abort" { button.danger type="submit" { "Abort" } }
                                @else if action == "pause" { button type="submit" { "Pause" } }
                                @else { button type="submit" { "Resume" } }
                            }
                        }
                    }
                }
            }
            @if views.is_empty() { p { "No rollouts yet." } }
            nav.pager aria-label="Rollout pages" {
                @if op > 0 { a href=(format!("/ui/updates?rp={rp}&op={}", op - 1)) { "Previous rollouts" } }
                @if (op + 1) * ROLLOUTS_PER < rollout_count { a href=(format!("/ui/updates?rp={rp}&op={}", op + 1)) { "More rollouts" } }
            }
        },
    ))
}

#[derive(Deserialize)]
pub struct NewRolloutForm {
    #[serde(default)]
    csrf: String,
    model: String,
    version: String,
    /// The form it came from, to show an error beside it.
    #[serde(default)]
    form: String,
}

/// The fleet-risk view's one click: a staged rollout (5 %, 25 %, 100 % of the model's fleet,
/// promoted and halted on device reports as the API's default plan) of the fixing release.
async fn create_rollout<S: CaStore>(
    State(st): St<S>,
    h: HeaderMap,
    Form(f): Form<NewRolloutForm>,
) -> UiResult {
    let s = acting_as!(st, h, &f.csrf, Role::Operator);
    let dir = st.director.as_deref().ok_or_else(|| {
        UiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "secure updates unavailable",
        )
    })?;
    let form = form_key(&[if f.form.is_empty() {
        "rollout"
    } else {
        &f.form
    }]);
    match dir
        .create_rollout(
            &s.actor(),
            f.model.trim(),
            f.version.trim(),
            medsec_updates::RolloutPlan::default(),
        )
        .await
    {
        Ok(r) => Ok(Redirect::to(&format!(
            "/ui/updates?{}#rollout-{}",
            encode_params(&[(
                "done",
                format!(
                    "rollout {} of {} {} started (stages 5/25/100 %)",
                    r.id, f.model, f.version
                )
            )]),
            r.id
        ))
        .into_response()),
        Err(e) => Ok(invalid("/ui/fleet-risk", &[], &form, "version", e)),
    }
}

async fn rollout_action<S: CaStore>(
    State(st): St<S>,
    h: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    Form(f): Form<CsrfForm>,
) -> UiResult {
    use medsec_updates::RolloutState;
    let s = acting_as!(st, h, &f.csrf, Role::Operator);
    let dir = st.director.as_deref().ok_or_else(|| {
        UiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "secure updates unavailable",
        )
    })?;
    let to = match action.as_str() {
        "pause" => RolloutState::Paused,
        "resume" => RolloutState::Active,
        "abort" => RolloutState::Aborted,
        _ => return Err(UiError::bad(format!("unknown action {action:?}"))),
    };
    dir.control(&s.actor(), &id, to)
        .await
        .map_err(|e| UiError::bad(e.to_string()))?;
    Ok(back("/ui/updates", &format!("rollout {id}: {action}d")))
}

// ---------------------------------------------------------------------------------------------
// Risk, incidents, CVD, audit, docs
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
pub struct ModelParam {
    model: Option<String>,
}

async fn risk<S: CaStore>(State(st): St<S>, h: HeaderMap, Query(p): Query<ModelParam>) -> UiResult {
    let s = signed_in!(st, h);
    let svc = st.risk.as_deref().ok_or_else(|| {
        UiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "risk management unavailable",
        )
    })?;
    let policy = svc
        .policy()
        .await
        .map_err(|e| UiError::internal("policy", &e))?;
    let models = svc
        .store()
        .scopes(medsec_risk::store::DocKind::Inventory)
        .await
        .map_err(|e| UiError::internal("risk models", &e))?;
    let chosen = nonempty(&p.model)
        .map(str::to_string)
        .or_else(|| models.first().cloned());
    let report = match &chosen {
        Some(m) => {
            let m = DeviceModel::parse(m).map_err(|e| UiError::bad(e.to_string()))?;
            let inputs = crate::risk_inputs(
                &st.ca,
                st.inventory.as_deref(),
                &m,
                30,
                OffsetDateTime::now_utc(),
            )
            .await?;
            Some(
                svc.report(&m, &format!("Risk: {m}"), &inputs)
                    .await
                    .map_err(|e| UiError::bad(e.to_string()))?,
            )
        }
        None => None,
    };
    let acceptable: BTreeMap<String, bool> = policy
        .levels
        .iter()
        .map(|l| (l.name.to_string(), l.acceptable))
        .collect();
    Ok(page(
        &s,
        "risk",
        "Risk",
        html! {
            form.filters method="get" action="/ui/risk" {
                label { "Model" select name="model" { @for m in &models { @if Some(m) == chosen.as_ref() { option value=(m) selected { (m) } } @else { option value=(m) { (m) } } } } }
                button type="submit" { "Show" }
            }
            h2 { "Acceptability matrix" }
            table.heat {
                caption { "Exploitability (rows) by severity (columns)" }
                thead { tr { th scope="col" { "" } @for sv in &policy.severity { th scope="col" { (sv.to_string()) } } } }
                tbody {
                    @for (ei, e) in policy.exploitability.iter().enumerate().rev() {
                        tr {
                            th scope="row" { (e.to_string()) }
                            @for si in 0..policy.severity.len() {
                                @let lvl = policy.matrix.get(ei).and_then(|r| r.get(si)).map(|l| l.to_string()).unwrap_or_default();
                                @let class = if acceptable.get(&lvl).copied().unwrap_or(false) { "acceptable" } else { "unacceptable" };
                                td class=(class) { (lvl) }
                            }
                        }
                    }
                }
            }
            @if let Some(r) = &report {
                h2 { "Threats (" (r.threats.threats.len()) ")" }
                table {
                    thead { tr { th scope="col" { "Id" } th scope="col" { "Title" } th scope="col" { "STRIDE" } th scope="col" { "Status" } } }
                    tbody { @for t in &r.threats.threats { tr { td { (t.id.to_string()) } td { (t.title) } td { (t.category.as_str()) } td { (t.status.as_str()) } } } }
                }
                h2 { "Controls" }
                table {
                    thead { tr { th scope="col" { "Id" } th scope="col" { "Category" } th scope="col" { "Description" } th scope="col" { "Tests" } } }
                    tbody { @for c in &r.register.controls { tr { td { (c.id.to_string()) } td { (c.category.as_str()) } td { (c.description) } td { (c.tests.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ")) } } } }
                }
                h2 { "Traceability gaps" }
                ul {
                    @for t in &r.traceability.threats_without_controls { li.warn { "Threat " (t.to_string()) " has no control" } }
                    @for c in &r.traceability.controls_without_tests { li.warn { "Control " (c.to_string()) " has no test" } }
                }
            } @else {
                p { "No trust-relationship inventory is stored yet." }
            }
        },
    ))
}

async fn incidents<S: CaStore>(
    State(st): St<S>,
    h: HeaderMap,
    Query(p): Query<OffsetParam>,
) -> UiResult {
    use medsec_postmarket::incident::IncidentStatus;
    let s = signed_in!(st, h);
    let pm = st.postmarket.as_deref().ok_or_else(|| {
        UiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "post-market surveillance unavailable",
        )
    })?;
    let now = OffsetDateTime::now_utc();
    const PER: u32 = 100;
    let offset = p.offset.unwrap_or(0);
    // One more than a page tells whether there is a next page.
    let mut list = pm
        .incidents(false, PER + 1, offset)
        .await
        .map_err(|e| UiError::internal("incidents", &e))?;
    let more = list.len() > PER as usize;
    list.truncate(PER as usize);
    let clocks = pm
        .clocks(now, time::Duration::days(7))
        .await
        .map_err(|e| UiError::internal("clocks", &e))?;
    Ok(page(
        &s,
        "incidents",
        "Incidents",
        html! {
            h2 { "Regulatory clocks" }
            table {
                thead { tr { th scope="col" { "Incident" } th scope="col" { "Obligation" } th scope="col" { "Due (UTC)" } th scope="col" { "State" } } }
                tbody {
                    @for c in &clocks.overdue { tr { td { (c.incident.to_string()) } td { (c.obligation.citation()) } td.overdue { (ts(c.due)) } td.overdue { "OVERDUE" } } }
                    @for c in &clocks.due_soon { tr { td { (c.incident.to_string()) } td { (c.obligation.citation()) } td.warn { (ts(c.due)) } td.warn { "due within 7 days" } } }
                    @for c in &clocks.running { tr { td { (c.incident.to_string()) } td { (c.obligation.citation()) } td { (ts(c.due)) } td { "running" } } }
                }
            }
            h2 { "Status board" }
            div.board {
                @for status in IncidentStatus::ALL {
                    section aria-label=(status.as_str()) {
                        h2 { (status.as_str()) }
                        ul { @for i in list.iter().filter(|i| i.status() == status) { li { strong { (i.id().to_string()) } " " (i.title()) " — " (i.model().to_string()) ", " (i.devices().count()) " device(s)" } } }
                    }
                }
            }
            @if !list.is_empty() { p { "Incidents " (offset + 1) "–" (offset + list.len() as u64) ", newest first, " (PER) " per page." } }
            nav.pager aria-label="Pages" {
                @if offset > 0 { a href=(format!("/ui/incidents?offset={}", offset.saturating_sub(u64::from(PER)))) { "Previous page" } }
                @if more { a href=(format!("/ui/incidents?offset={}", offset + u64::from(PER))) rel="next" { "Next page" } }
            }
        },
    ))
}

#[derive(Deserialize, Default)]
pub struct OffsetParam {
    offset: Option<u64>,
}

async fn cvd<S: CaStore>(State(st): St<S>, h: HeaderMap, Query(p): Query<OffsetParam>) -> UiResult {
    let s = signed_in!(st, h);
    let pm = st.postmarket.as_deref().ok_or_else(|| {
        UiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "post-market surveillance unavailable",
        )
    })?;
    let now = OffsetDateTime::now_utc();
    const PER: u32 = 50;
    let offset = p.offset.unwrap_or(0);
    let reports = pm
        .reports(PER, offset)
        .await
        .map_err(|e| UiError::internal("cvd", &e))?;
    Ok(page(
        &s,
        "cvd",
        "CVD inbox",
        html! {
            table {
                thead { tr { th scope="col" { "Tracking id" } th scope="col" { "Title" } th scope="col" { "Status" } th scope="col" { "Acknowledge by" } th scope="col" { "Disclose by" } } }
                tbody {
                    @for r in &reports {
                        tr {
                            td { code { (r.id.as_str()) } }
                            td { (r.submission.title) }
                            td { (r.status.as_str()) }
                            @if r.acknowledgement_overdue(now) { td.overdue { (ts(r.acknowledge_by)) " (overdue)" } } @else { td { (ts(r.acknowledge_by)) } }
                            td { (ts(r.disclose_by)) }
                        }
                    }
                }
            }
            nav.pager aria-label="Pages" {
                @if offset > 0 { a href=(format!("/ui/cvd?offset={}", offset.saturating_sub(u64::from(PER)))) { "Previous page" } }
                @if reports.len() == PER as usize { a href=(format!("/ui/cvd?offset={}", offset + u64::from(PER))) rel="next" { "Next page" } }
            }
        },
    ))
}

#[derive(Deserialize, Default)]
pub struct AuditParams {
    after: Option<i64>,
}

async fn audit<S: CaStore>(
    State(st): St<S>,
    h: HeaderMap,
    Query(p): Query<AuditParams>,
) -> UiResult {
    let s = signed_in!(st, h);
    let log = st
        .audit
        .as_deref()
        .ok_or_else(|| UiError::new(StatusCode::SERVICE_UNAVAILABLE, "audit log unavailable"))?;
    let verdict = log.verify().await;
    let after = p.after.unwrap_or(0).max(0);
    let entries = log
        .page(after, 100)
        .await
        .map_err(|e| UiError::internal("audit", &e))?;
    Ok(page(
        &s,
        "audit",
        "Audit log",
        html! {
            @match &verdict {
                Ok(n) => p.notice role="status" { "Hash chain verified: " (n) " entries intact." },
                Err(e) => p.error role="alert" { "Hash chain broken: " (e) },
            }
            table {
                thead { tr { th scope="col" { "#" } th scope="col" { "Time" } th scope="col" { "Actor" } th scope="col" { "Action" } th scope="col" { "Subject" } } }
                tbody { @for e in &entries { tr { td { (e.seq) } td { (e.time) } td { (e.actor) } td { (e.action) } td { (e.subject) } } } }
            }
            nav.pager aria-label="Pages" {
                @if after > 0 { a href="/ui/audit" { "First page" } }
                @if let Some(last) = entries.last() { @if entries.len() == 100 { a href=(format!("/ui/audit?after={}", last.seq)) rel="next" { "Next page" } } }
            }
        },
    ))
}

async fn docs<S: CaStore>(State(st): St<S>, h: HeaderMap) -> UiResult {
    let s = signed_in!(st, h);
    let inv = st.inventory.as_deref().ok_or_else(|| {
        UiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "vulnerability management unavailable",
        )
    })?;
    let fws = inv
        .store()
        .list_firmware(None)
        .await
        .map_err(|e| UiError::internal("firmware", &e))?;
    Ok(page(
        &s,
        "docs",
        "Documentation",
        html! {
            p { "Built on request from the data held now." }
            table {
                thead { tr { th scope="col" { "Model" } th scope="col" { "Firmware" } th scope="col" { "Downloads" } } }
                tbody {
                    @for f in &fws {
                        tr {
                            td { (f.model.to_string()) }
                            td { (f.version.to_string()) }
                            td {
                                @for (file, label) in [("premarket-cybersecurity.pdf", "Premarket file (PDF)"), ("premarket-cybersecurity.html", "Premarket file (HTML)"), ("labelling-cybersecurity.pdf", "Labelling (PDF)"), ("mds2.xlsx", "MDS2 (XLSX)"), ("gaps.html", "Gaps report")] {
                                    a href=(format!("/ui/docs/{}/{}/{file}", f.model, f.version)) { (label) } " "
                                }
                            }
                        }
                    }
                }
            }
        },
    ))
}

async fn doc_file<S: CaStore>(
    State(st): St<S>,
    h: HeaderMap,
    Path((model, version, file)): Path<(String, String, String)>,
) -> UiResult {
    signed_in!(st, h);
    let f = crate::docs_api::build_one(&st, &model, &version, &file).await?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                crate::docs_api::content_type(&f.name).to_string(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", f.name),
            ),
        ],
        f.bytes,
    )
        .into_response())
}
