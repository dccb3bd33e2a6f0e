//! The post-market service on a real store: scripted streams open exactly one incident per
//! burst, replays add nothing, a restart in the middle of a burst neither forgets it nor fires
//! twice, newly KEV-listed exposures open one incident per model, rules changes are validated,
//! regulatory clocks list what is overdue, and CVD reports link to incidents.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use medsec_core::{Actor, DeviceId, DeviceModel, DeviceSerial};
use medsec_postmarket::clock::Obligation;
use medsec_postmarket::cvd::{CvdPolicy, CvdStatus, Submission};
use medsec_postmarket::incident::{IncidentStatus, Note, Reference, Reportability, TimelineKind};
use medsec_postmarket::service::{KevExposure, PostmarketService};
use medsec_postmarket::store::{EventSource, PostmarketStore};
use medsec_postmarket::{Event, PostmarketError, parse_batch};
use medsec_store::{AuditLog, SqliteStore, Synchronous, verify_audit};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

fn dev(serial: &str) -> DeviceId {
    DeviceId::new(
        DeviceModel::parse("pump-x").unwrap(),
        DeviceSerial::parse(serial).unwrap(),
    )
}

const T0: OffsetDateTime = datetime!(2026-03-01 10:00 UTC);

/// `(id, minute offset from T0, type)` through the real wire parser.
fn events(items: &[(&str, i64, &str)]) -> Vec<Event> {
    let fmt = time::format_description::well_known::Rfc3339;
    let body: Vec<String> = items
        .iter()
        .map(|(id, m, t)| {
            let at = (T0 + Duration::minutes(*m)).format(&fmt).unwrap();
            format!(r#"{{"id":"{id}","time":"{at}","type":"{t}","severity":"medium"}}"#)
        })
        .collect();
    parse_batch(format!("[{}]", body.join(",")).as_bytes(), 1000, 1 << 20).unwrap()
}

async fn open<S: PostmarketStore + Clone + 'static>(
    store: &S,
    now: OffsetDateTime,
) -> PostmarketService {
    PostmarketService::open(Arc::new(store.clone()), CvdPolicy::default(), now)
        .await
        .unwrap()
}

async fn story<S: PostmarketStore + AuditLog + Clone + 'static>(store: S) {
    let who = Actor::parse("user:psirt").unwrap();
    let svc = open(&store, T0).await;
    let (a, b) = (dev("A1"), dev("B2"));

    // Three failures, then a restart, then two more within ten minutes: the burst is one.
    let first = events(&[
        ("f1", 0, "auth-failure"),
        ("f2", 1, "auth-failure"),
        ("f3", 2, "auth-failure"),
    ]);
    let out = svc
        .ingest(
            &a,
            EventSource::Device,
            first.clone(),
            T0 + Duration::minutes(2),
        )
        .await
        .unwrap();
    assert_eq!((out.accepted, out.incidents.len()), (3, 0));
    drop(svc);
    let svc = open(&store, T0 + Duration::minutes(3)).await;
    let rest = events(&[
        ("f4", 3, "auth-failure"),
        ("f5", 4, "auth-failure"),
        ("f6", 5, "auth-failure"),
    ]);
    let out = svc
        .ingest(
            &a,
            EventSource::Device,
            rest.clone(),
            T0 + Duration::minutes(5),
        )
        .await
        .unwrap();
    assert_eq!(out.accepted, 3);
    assert_eq!(
        out.incidents.len(),
        1,
        "the fifth failure fires, the sixth does not"
    );
    assert!(out.incidents[0].opened);
    let id = out.incidents[0].incident;

    // A replay of everything adds nothing, and a restart after the burst does not re-fire.
    drop(svc);
    let svc = open(&store, T0 + Duration::minutes(6)).await;
    let mut all = first.clone();
    all.extend(rest);
    let out = svc
        .ingest(&a, EventSource::Device, all, T0 + Duration::minutes(6))
        .await
        .unwrap();
    assert_eq!(
        (out.accepted, out.duplicates, out.incidents.len()),
        (0, 6, 0)
    );
    let late = events(&[("f7", 7, "auth-failure")]);
    let out = svc
        .ingest(&a, EventSource::Device, late, T0 + Duration::minutes(7))
        .await
        .unwrap();
    assert!(
        out.incidents.is_empty(),
        "still the same burst after the restart"
    );

    // Another device of the model bursts: the open incident grows, no second one.
    let bb: Vec<(String, i64)> = (0..5).map(|i| (format!("b{i}"), 20 + i)).collect();
    let items: Vec<(&str, i64, &str)> = bb
        .iter()
        .map(|(i, m)| (i.as_str(), *m, "auth-failure"))
        .collect();
    let out = svc
        .ingest(
            &b,
            EventSource::Device,
            events(&items),
            T0 + Duration::minutes(25),
        )
        .await
        .unwrap();
    assert_eq!(out.incidents.len(), 1);
    assert!(!out.incidents[0].opened);
    assert_eq!(out.incidents[0].incident, id);
    let inc = svc.incident(id).await.unwrap();
    assert_eq!(inc.devices().count(), 2);
    let detections = inc
        .timeline()
        .iter()
        .filter(|e| matches!(e.what, TimelineKind::Detection { .. }))
        .count();
    assert_eq!(detections, 2);
    assert_eq!(svc.incidents(false, 100, 0).await.unwrap().len(), 1);

    // Closing frees the rule: the next burst opens a new incident.
    for s in ["triage", "closed"] {
        svc.transition(
            id,
            IncidentStatus::parse(s).unwrap(),
            &who,
            T0 + Duration::hours(1),
        )
        .await
        .unwrap();
    }
    let cc: Vec<(String, i64)> = (0..5).map(|i| (format!("c{i}"), 120 + i)).collect();
    let items: Vec<(&str, i64, &str)> = cc
        .iter()
        .map(|(i, m)| (i.as_str(), *m, "auth-failure"))
        .collect();
    let out = svc
        .ingest(
            &a,
            EventSource::Device,
            events(&items),
            T0 + Duration::hours(2),
        )
        .await
        .unwrap();
    assert!(out.incidents[0].opened);
    assert_ne!(out.incidents[0].incident, id);

    // Newly KEV-listed vulnerability on fielded firmware: one incident, linked, all devices.
    let x = KevExposure {
        vulnerability: Reference::parse("CVE-2024-3094").unwrap(),
        model: DeviceModel::parse("pump-x").unwrap(),
        firmware: "2.1.0".into(),
        devices: vec![a.clone(), b.clone(), dev("C3")],
    };
    let touched = svc
        .kev_listed(std::slice::from_ref(&x), T0 + Duration::hours(3))
        .await
        .unwrap();
    assert_eq!(touched.len(), 1);
    assert!(touched[0].opened);
    let kev = svc.incident(touched[0].incident).await.unwrap();
    assert_eq!(kev.rule().as_str(), "kev-listed-fielded");
    assert_eq!(kev.devices().count(), 3);
    assert!(kev.vulnerabilities().contains(&x.vulnerability));
    let again = svc.kev_listed(&[x], T0 + Duration::hours(4)).await.unwrap();
    assert_eq!(again[0].incident, touched[0].incident);
    assert!(!again[0].opened);

    // Reportability and clocks: 30 days from awareness; overdue after that, met when filed.
    let d = Reportability::new(
        true,
        BTreeSet::from([
            Obligation::MdrCouldLeadIfRecurred,
            Obligation::ForeignRiskNotice,
        ]),
        Note::parse("could lead to serious deterioration if it recurred").unwrap(),
        T0,
    )
    .unwrap();
    svc.decide_reportability(kev.id(), d, &who, T0 + Duration::hours(5))
        .await
        .unwrap();
    let view = svc
        .clocks(T0 + Duration::days(4), Duration::days(7))
        .await
        .unwrap();
    assert_eq!(view.overdue.len(), 1, "72 hours passed");
    assert_eq!(view.overdue[0].obligation, Obligation::ForeignRiskNotice);
    assert_eq!(view.running.len(), 1);
    assert_eq!(view.running[0].due, datetime!(2026-03-31 10:00 UTC));
    svc.mark_met(
        kev.id(),
        Obligation::ForeignRiskNotice,
        Note::parse("notice filed").unwrap(),
        &who,
        T0 + Duration::days(4),
    )
    .await
    .unwrap();
    let view = svc
        .clocks(T0 + Duration::days(29), Duration::days(7))
        .await
        .unwrap();
    assert!(view.overdue.is_empty());
    assert_eq!(view.due_soon.len(), 1);
    assert_eq!(view.met.len(), 1);
    assert!(
        view.met[0].met_late(),
        "met after 72 hours is recorded as late"
    );
    // Awareness cannot move later once recorded.
    let later = Reportability::new(
        true,
        BTreeSet::from([Obligation::MdrCouldLeadIfRecurred]),
        Note::parse("re-decided").unwrap(),
        T0 + Duration::days(1),
    )
    .unwrap();
    assert!(matches!(
        svc.decide_reportability(kev.id(), later, &who, T0 + Duration::days(5))
            .await,
        Err(PostmarketError::Invalid { .. })
    ));

    // A broken rule file changes nothing; a good one takes effect at once.
    let before = svc.store().rules().await.unwrap();
    assert!(
        svc.set_rules(&who, r#"{"rules":[{"id":"x"}]}"#, None, T0)
            .await
            .is_err()
    );
    assert_eq!(svc.store().rules().await.unwrap(), before);
    let strict = r#"{"rules":[{"id":"any-tamper","title":"Tamper","severity":"critical",
        "condition":{"kind":"any","event_type":"tamper","cooldown_minutes":5}}]}"#;
    let (_, v) = svc
        .set_rules(&who, strict, None, T0 + Duration::hours(6))
        .await
        .unwrap();
    assert_eq!(v, 1);
    let out = svc
        .ingest(
            &b,
            EventSource::Device,
            events(&[("t1", 400, "tamper")]),
            T0 + Duration::hours(7),
        )
        .await
        .unwrap();
    assert_eq!(out.incidents[0].rule, "any-tamper");
    assert!(svc.rules().kev_rule().is_none());
    let reopened = open(&store, T0 + Duration::hours(7)).await;
    assert_eq!(
        reopened.rules().rules().len(),
        1,
        "stored rules survive a restart"
    );

    // CVD: a report links to an incident, and the incident shows it.
    let sub = Submission::parse_json(br#"{"title":"Debug port","description":"UART root shell"}"#)
        .unwrap();
    let r = svc.submit_report(sub, [9; 16], T0).await.unwrap();
    svc.set_report_status(
        &r.id,
        CvdStatus::Acknowledged,
        None,
        &who,
        T0 + Duration::days(1),
    )
    .await
    .unwrap();
    svc.link_report(
        &r.id,
        &BTreeSet::from([Reference::parse("CVE-2026-0001").unwrap()]),
        &BTreeSet::from([kev.id()]),
        &who,
        T0 + Duration::days(1),
    )
    .await
    .unwrap();
    let inc = svc.incident(kev.id()).await.unwrap();
    assert!(
        inc.vulnerabilities()
            .contains(&Reference::parse(r.id.as_str()).unwrap())
    );
    assert!(matches!(
        svc.link_report(
            &r.id,
            &BTreeSet::new(),
            &BTreeSet::from([medsec_postmarket::incident::IncidentId(999)]),
            &who,
            T0
        )
        .await,
        Err(PostmarketError::UnknownIncident(_))
    ));

    let n = verify_audit(&store).await.unwrap().unwrap();
    assert!(n > 10, "{n} audit entries");
}

#[tokio::test]
async fn sqlite_postmarket_service() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("pm.db"), Synchronous::Full)
        .await
        .unwrap();
    story(store).await;
}

#[tokio::test]
async fn pg_postmarket_service() {
    story(common::pg().await).await;
}
