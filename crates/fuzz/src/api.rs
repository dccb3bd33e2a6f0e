//! The admin REST API's JSON request bodies: each body type the handlers deserialize
//! (`medsec_server::request_bodies`, and `medsec_ca::Profile` for `PUT /api/v1/profiles/{name}`),
//! followed by the checks its handler makes before calling a service. The input is tried as
//! every body type; with `deny_unknown_fields` most inputs fit at most one.
//!
//! The checks are repeated here from the handlers (they are written inline there); they call
//! the same domain parsers, so what is fuzzed is those parsers on the handlers' inputs. The
//! invariants: accepted values re-parse to themselves, and bounds the handlers promise hold.

use std::collections::BTreeSet;

use medsec_core::{
    Actor, DeviceId, DeviceModel, DeviceSerial, FirmwareVersion, Name, RevocationReason,
};
use medsec_postmarket::clock::Obligation;
use medsec_postmarket::cvd::CvdStatus;
use medsec_postmarket::incident::{IncidentId, IncidentStatus, Note, Reference, Reportability};
use medsec_server::request_bodies as rb;
use medsec_updates::{Rollout, RolloutState, StageOutcome, UpdateStatus};
use serde::de::DeserializeOwned;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

fn body<T: DeserializeOwned>(data: &[u8]) -> Option<T> {
    serde_json::from_slice(data).ok()
}

fn name(s: &str) -> Option<Name> {
    let n = Name::parse(s).ok()?;
    assert_eq!(
        Name::parse(n.as_str()).ok().as_ref(),
        Some(&n),
        "Name round trip"
    );
    Some(n)
}

fn model_version(m: &str, v: &str) -> Option<(DeviceModel, FirmwareVersion)> {
    let m = DeviceModel::parse(m).ok()?;
    let v = FirmwareVersion::parse(v).ok()?;
    assert_eq!(DeviceModel::parse(m.as_str()).ok().as_ref(), Some(&m));
    assert_eq!(FirmwareVersion::parse(v.as_str()).ok().as_ref(), Some(&v));
    Some((m, v))
}

fn rfc3339(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

fn date(s: Option<&str>) {
    let f = time::macros::format_description!("[year]-[month]-[day]");
    if let Some(d) = s {
        let _ = time::Date::parse(d, f);
    }
}

/// `/api/v1/certificates`, `/api/v1/tokens`, `/api/v1/profiles/{name}` (api.rs).
fn pki(data: &[u8]) {
    if let Some(p) = body::<medsec_ca::Profile>(data)
        && p.validate().is_ok()
    {
        for alg in [
            medsec_core::KeyAlgorithm::EcdsaP256,
            medsec_core::KeyAlgorithm::Ed25519,
        ] {
            let _ = p.allows(alg);
        }
        let _ = p.allowed_list();
    }
    if let Some(b) = body::<rb::IssueBody>(data) {
        name(&b.profile);
        let _ = DeviceSerial::parse(&b.device_serial);
        if let Ok(v) = medsec_ca::parse_and_verify_csr(b.csr_pem.as_bytes()) {
            assert_eq!(
                medsec_ca::classify_spki_der(&v.spki_der).ok(),
                Some(v.key_algorithm)
            );
        }
    }
    if let Some(b) = body::<rb::RevokeBody>(data) {
        if let Ok(r) = b
            .reason
            .as_deref()
            .unwrap_or("unspecified")
            .parse::<RevocationReason>()
        {
            assert_eq!(r.as_str().parse::<RevocationReason>().ok(), Some(r));
        }
        b.invalidity_date.as_deref().map(rfc3339);
    }
    if let Some(b) = body::<rb::TokenBody>(data) {
        let _ = time::Duration::hours(b.ttl_hours.unwrap_or(24).into());
        name(&b.profile);
        let _ = DeviceSerial::parse(&b.device_serial);
    }
}

/// `/api/v1/firmware`, `/api/v1/match`, `/api/v1/triage`, device firmware (inventory_api.rs).
fn inventory(data: &[u8]) {
    if let Some(b) = body::<rb::FirmwareBody>(data) {
        let _ = b
            .support_level
            .as_deref()
            .unwrap_or("supported")
            .parse::<medsec_inventory::SupportLevel>();
        date(b.released_on.as_deref());
        date(b.end_of_support.as_deref());
    }
    if let Some(b) = body::<rb::MatchBody>(data) {
        if let Some(m) = &b.model {
            let _ = DeviceModel::parse(m);
        }
        if let Some(v) = &b.version {
            let _ = FirmwareVersion::parse(v);
        }
    }
    if let Some(b) = body::<rb::TriageBody>(data) {
        model_version(&b.model, &b.version);
        if b.state == "not_affected"
            && let Some(j) = &b.justification
        {
            let _ = j.parse::<medsec_vuln::Justification>();
        }
    }
    if let Some(b) = body::<rb::FirmwareReport>(data) {
        let _ = FirmwareVersion::parse(&b.version);
    }
}

/// Device update status, rollouts, tags (updates_api.rs).
fn updates(data: &[u8]) {
    if let Some(b) = body::<rb::UpdateStatusBody>(data)
        && let Ok(s) = b.status.parse::<UpdateStatus>()
    {
        assert_eq!(s.as_str().parse::<UpdateStatus>().ok(), Some(s));
    }
    if let Some(b) = body::<rb::RolloutBody>(data) {
        let def = medsec_updates::RolloutPlan::default();
        let mut r = Rollout {
            id: "r-fuzz".into(),
            model: b.model,
            target: "fuzz-pump/fuzz-pump-1.0.0.bin".into(),
            length: 1,
            sha256: "00".repeat(32),
            security_version: 1,
            cohort: b.cohort,
            stages: b.stages.unwrap_or(def.stages),
            current_stage: 0,
            state: RolloutState::Active,
            promote_success_rate: b.promote_success_rate.unwrap_or(def.promote_success_rate),
            halt_failure_rate: b.halt_failure_rate.unwrap_or(def.halt_failure_rate),
            min_reports: b.min_reports.unwrap_or(def.min_reports),
            created_at: 0,
        };
        if r.validate().is_ok() {
            check_rollout(&mut r);
        }
    }
    if let Some(b) = body::<rb::TagsBody>(data)
        && let Ok(tags) = medsec_server::check_tags(&b.tags)
    {
        assert!(tags.len() <= 32);
        assert_eq!(tags.iter().collect::<BTreeSet<_>>().len(), tags.len());
    }
}

/// A valid rollout: stages only grow (a device in a stage stays in the later ones) and
/// evaluation never leaves the plan.
fn check_rollout(r: &mut Rollout) {
    assert_eq!(r.stages.last(), Some(&100));
    let devices: Vec<String> = (0..16)
        .map(|i| format!("urn:medsec:device:fuzz-pump:SN-{i:04}"))
        .collect();
    for d in &devices {
        for s in 1..r.stages.len() {
            if r.in_stage(d, s - 1) {
                assert!(r.in_stage(d, s), "{d} left the rollout at stage {s}");
            }
        }
        let _ = r.offers_to(d, &["ward-3".to_owned()]);
    }
    for n in 0..(2 * r.stages.len() as u32 + 2) {
        let o = StageOutcome {
            devices: 10 + n,
            reported: 10,
            succeeded: 10 - n % 3,
            failed: n % 3,
        };
        let _ = r.evaluate(&o);
        assert!(
            r.current_stage < r.stages.len(),
            "stage {} of {}",
            r.current_stage,
            r.stages.len()
        );
    }
}

/// Events, incidents, CVD reports (postmarket_api.rs).
fn postmarket(data: &[u8]) {
    if let Some(b) = body::<rb::PurgeBody>(data) {
        let _ = (1..=36_500).contains(&b.retention_days);
    }
    if let Some(b) = body::<rb::OpenBody>(data) {
        let _ = DeviceModel::parse(&b.model);
        let _ = Note::parse(&b.title);
    }
    if let Some(b) = body::<rb::IncidentStatusBody>(data) {
        let _ = IncidentStatus::parse(&b.status);
    }
    if let Some(b) = body::<rb::OwnerBody>(data)
        && let Ok(a) = Actor::parse(&b.owner)
    {
        assert_eq!(Actor::parse(&a.to_string()).ok(), Some(a));
    }
    if let Some(b) = body::<rb::ActionBody>(data) {
        let _ = Note::parse(&b.note);
    }
    if let Some(b) = body::<rb::LinksBody>(data) {
        for r in b.vulnerabilities.iter().chain(&b.risks) {
            let _ = Reference::parse(r);
        }
        for m in &b.models {
            let _ = DeviceModel::parse(m);
        }
    }
    if let Some(b) = body::<rb::ReportabilityBody>(data) {
        let obligations: Result<BTreeSet<_>, _> =
            b.obligations.iter().map(|o| Obligation::parse(o)).collect();
        if let (Ok(obligations), Some(aware), Ok(note)) =
            (obligations, rfc3339(&b.aware_at), Note::parse(&b.rationale))
            && let Ok(r) = Reportability::new(b.reportable, obligations.clone(), note, aware)
        {
            assert!(!b.reportable || !obligations.is_empty());
            let _ = r;
        }
    }
    if let Some(b) = body::<rb::ReportStatusBody>(data) {
        let _ = CvdStatus::parse(&b.status);
        b.note.as_deref().map(Note::parse);
    }
    if let Some(b) = body::<rb::ReportLinksBody>(data) {
        for f in &b.findings {
            let _ = Reference::parse(f);
        }
        for i in &b.incidents {
            let _ = IncidentId::parse(i);
        }
    }
    if let Some(b) = body::<rb::DisclosureBody>(data) {
        rfc3339(&b.disclose_by);
    }
}

/// Risk sign-off and advisories (risk_api.rs, advisory_api.rs).
fn risk_and_advisories(data: &[u8]) {
    if let Some(b) = body::<rb::SignOffBody>(data) {
        let _ = medsec_risk::RiskId::parse(&b.risk);
    }
    let advisory = |a: &rb::AdvisoryRequest| {
        let _ = DeviceModel::parse(&a.model);
        for v in &a.fixed_in {
            let _ = FirmwareVersion::parse(v);
        }
        let _ = medsec_server::parse_tlp(&a.tlp);
        let _ = medsec_server::parse_advisory_status(&a.status);
    };
    if let Some(a) = body::<rb::AdvisoryRequest>(data) {
        advisory(&a);
    }
    if let Some(b) = body::<rb::ReviseBody>(data) {
        b.status
            .as_deref()
            .map(medsec_server::parse_advisory_status);
        b.tlp.as_deref().map(medsec_server::parse_tlp);
        if let Some(a) = &b.refresh {
            advisory(a);
        }
    }
}

/// Any admin API body: tried as each request type, then checked as its handler checks it.
pub fn admin_api_json(data: &[u8]) {
    // Device URNs travel in paths next to these bodies; parse what the input holds as one.
    if let Ok(id) = DeviceId::parse_urn(&crate::as_text(data)) {
        assert_eq!(DeviceId::parse_urn(&id.urn()).ok(), Some(id));
    }
    pki(data);
    inventory(data);
    updates(data);
    postmarket(data);
    risk_and_advisories(data);
}
