//! The post-market story against `PostmarketStore`, run on every back end: events deduplicated
//! per device and event id (a replay adds nothing), queried and purged behind a retention
//! horizon that only moves forward; rules, incidents, CVD reports and advisories with their
//! version checks; concurrent appends that each get back exactly their own stored events; and
//! an intact audit chain. On both back ends the event log is also shown append-only to a raw
//! client; on PostgreSQL, two replicas (two pools on one database) race on every invariant.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;

use medsec_core::{
    Actor, AuditAction, AuditRecord, DeviceId, DeviceModel, DeviceSerial, StoreError,
};
use medsec_postmarket::cvd::{CvdPolicy, CvdReport, CvdStatus, Submission, TrackingId};
use medsec_postmarket::incident::{Incident, IncidentId, IncidentStatus};
use medsec_postmarket::rules::{Detection, RuleId};
use medsec_postmarket::store::{EventQuery, EventSource, PostmarketStore};
use medsec_postmarket::{AttributedEvent, Event, EventId, EventKind, Severity};
use medsec_store::{AuditLog, PgSettings, PgStore, SqliteStore, Synchronous, verify_audit};
use sqlx::Connection;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

fn device(model: &str, serial: &str) -> DeviceId {
    DeviceId::new(
        DeviceModel::parse(model).unwrap(),
        DeviceSerial::parse(serial).unwrap(),
    )
}

/// An event whose `note` detail tells copies with the same id apart.
fn ev(d: &DeviceId, id: &str, at: OffsetDateTime, note: &str) -> AttributedEvent {
    Event {
        id: EventId::parse(id).unwrap(),
        at,
        kind: EventKind::Tamper,
        severity: Severity::High,
        details: BTreeMap::from([("note".to_string(), note.to_string())]),
    }
    .attribute(d.clone())
}

fn actor() -> Actor {
    Actor::parse("user:pms-lead").unwrap()
}

fn rec(action: AuditAction, subject: &str) -> AuditRecord {
    AuditRecord::new(&actor(), action, subject, serde_json::json!({}))
}

fn keys(events: &[medsec_postmarket::store::StoredEvent]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|s| (s.device.serial.to_string(), s.event.id.to_string()))
        .collect()
}

fn pair(serial: &str, id: &str) -> (String, String) {
    (serial.to_string(), id.to_string())
}

fn all(limit: u32) -> EventQuery {
    EventQuery {
        limit,
        ..EventQuery::default()
    }
}

fn is_conflict<T: std::fmt::Debug>(r: Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::Conflict(_)))
}

fn detection(rule: &str, d: &DeviceId, at: OffsetDateTime) -> Detection {
    Detection {
        rule: RuleId::parse(rule).unwrap(),
        title: format!("{rule} on {d}"),
        severity: Severity::High,
        device: d.clone(),
        at,
        events: vec![EventId::parse("e1").unwrap()],
    }
}

async fn postmarket_story<S: PostmarketStore + AuditLog + Clone + 'static>(store: S) {
    let t0 = datetime!(2026-03-01 10:00 UTC);
    let d1 = device("pump-x2", "SN1");
    let d2 = device("pump-x2", "SN2");
    let d3 = device("vent-v1", "SN9");

    // --- Events: deduplicated per (device, event id), first wins, replays add nothing.
    let batch = vec![
        ev(&d1, "e1", t0, "first"),
        ev(&d1, "e2", t0, "x"),
        // The same id from another device is another event: ids are unique per device only.
        ev(&d2, "e1", t0, "x"),
        // Repeated within the call: skipped, and the first copy is the one kept.
        ev(&d1, "e1", t0, "second"),
    ];
    let stored = store
        .append_events(EventSource::Device, t0, &batch)
        .await
        .unwrap();
    assert_eq!(stored, vec![0, 1, 2]);
    let replay = store
        .append_events(EventSource::Device, t0, &batch)
        .await
        .unwrap();
    assert!(replay.is_empty(), "a replayed batch adds nothing");
    assert!(
        store
            .append_events(EventSource::Device, t0, &[])
            .await
            .unwrap()
            .is_empty()
    );
    let t1 = t0 + Duration::hours(1);
    let batch2 = vec![
        ev(&d1, "e2", t1, "again"),
        ev(&d3, "e1", t1, "x"),
        ev(&d1, "e3", t1, "x"),
    ];
    assert_eq!(
        store
            .append_events(EventSource::Syslog, t1, &batch2)
            .await
            .unwrap(),
        vec![1, 2]
    );
    assert_eq!(store.count_events(None).await.unwrap(), 5);
    assert_eq!(store.count_events(Some(&d1)).await.unwrap(), 3);
    assert_eq!(store.count_events(Some(&d3)).await.unwrap(), 1);
    // Events are observations, not changes of state: appending them writes no audit entry.
    assert_eq!(store.audit_head().await.unwrap(), None);

    // --- Queries: seq order, filters, cursor, limit.
    let everything = store.events(&all(100)).await.unwrap();
    assert_eq!(
        keys(&everything),
        vec![
            pair("SN1", "e1"),
            pair("SN1", "e2"),
            pair("SN2", "e1"),
            pair("SN9", "e1"),
            pair("SN1", "e3"),
        ]
    );
    assert!(everything.windows(2).all(|w| w[0].seq < w[1].seq));
    // The stored event is the first copy, exactly, with its channel and arrival time.
    assert_eq!(everything[0].event, batch[0].event);
    assert_eq!(everything[0].device, d1);
    assert_eq!(everything[0].source, EventSource::Device);
    assert_eq!(everything[0].received_at, t0);
    assert_eq!(everything[3].source, EventSource::Syslog);
    let newest = store
        .events(&EventQuery {
            newest_first: true,
            ..all(100)
        })
        .await
        .unwrap();
    let mut reversed = everything.clone();
    reversed.reverse();
    assert_eq!(newest, reversed);
    let of_d1 = store
        .events(&EventQuery {
            device: Some(d1.clone()),
            ..all(100)
        })
        .await
        .unwrap();
    assert_eq!(
        keys(&of_d1),
        vec![pair("SN1", "e1"), pair("SN1", "e2"), pair("SN1", "e3")]
    );
    let after = store
        .events(&EventQuery {
            after_seq: Some(everything[1].seq),
            ..all(100)
        })
        .await
        .unwrap();
    assert_eq!(after, everything[2..].to_vec());
    let recent = store
        .events(&EventQuery {
            received_since: Some(t1),
            ..all(100)
        })
        .await
        .unwrap();
    assert_eq!(keys(&recent), vec![pair("SN9", "e1"), pair("SN1", "e3")]);
    let page = store
        .events(&EventQuery {
            device: Some(d1.clone()),
            after_seq: Some(everything[0].seq),
            newest_first: true,
            limit: 1,
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(keys(&page), vec![pair("SN1", "e3")]);

    // --- Retention: purge deletes what arrived before the horizon; the horizon never goes back.
    let old = [
        (t0 - Duration::days(40), "old-1"),
        (t0 - Duration::days(40), "old-2"),
        (t0 - Duration::days(20), "old-3"),
    ];
    for (at, id) in old {
        store
            .append_events(EventSource::Server, at, &[ev(&d2, id, at, "x")])
            .await
            .unwrap();
    }
    assert_eq!(store.count_events(None).await.unwrap(), 8);
    let purge = rec(AuditAction::EventsPurged, "events");
    assert_eq!(
        store
            .purge_events(t0 - Duration::days(30), &purge)
            .await
            .unwrap(),
        2
    );
    assert_eq!(store.count_events(None).await.unwrap(), 6);
    // An earlier horizon than the last one deletes nothing.
    assert_eq!(
        store
            .purge_events(t0 - Duration::days(60), &purge)
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.count_events(None).await.unwrap(), 6);
    assert_eq!(
        store
            .purge_events(t0 - Duration::days(10), &purge)
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.count_events(None).await.unwrap(), 5);
    assert_eq!(store.count_events(Some(&d2)).await.unwrap(), 1);

    // --- Detection rules: versioned, a stale writer refused.
    assert_eq!(store.rules().await.unwrap(), None);
    let rules_rec = rec(AuditAction::DetectionRulesChanged, "rules");
    assert_eq!(
        store
            .put_rules("{\"v\":1}", None, &actor(), &rules_rec)
            .await
            .unwrap(),
        1
    );
    assert!(is_conflict(
        store
            .put_rules("{\"v\":2}", None, &actor(), &rules_rec)
            .await
    ));
    assert_eq!(
        store
            .put_rules("{\"v\":2}", Some(1), &actor(), &rules_rec)
            .await
            .unwrap(),
        2
    );
    assert!(is_conflict(
        store
            .put_rules("{\"v\":3}", Some(1), &actor(), &rules_rec)
            .await
    ));
    let rules = store.rules().await.unwrap().unwrap();
    assert_eq!(
        (rules.version, rules.body.as_str(), &rules.author),
        (2, "{\"v\":2}", &actor())
    );

    // --- Incidents: ids assigned by the store, one open rule-opened incident per rule+model.
    let opened = rec(AuditAction::IncidentOpened, "incident");
    let changed = rec(AuditAction::IncidentChanged, "incident");
    let rule = RuleId::parse("tamper-burst").unwrap();
    let pump = d1.model.clone();
    let first = Incident::from_detection(&detection("tamper-burst", &d1, t0));
    let inc1 = store.insert_incident(&first, &opened).await.unwrap();
    assert_eq!(inc1.incident.id(), IncidentId(1));
    assert_eq!(inc1.version, 1);
    assert_eq!(inc1.incident, first.clone().with_id(IncidentId(1)));
    // Same rule, same model, other device: refused, the caller attaches to the open one.
    let dup = Incident::from_detection(&detection("tamper-burst", &d2, t1));
    assert!(is_conflict(store.insert_incident(&dup, &opened).await));
    let open = store.open_incident(&rule, &pump).await.unwrap().unwrap();
    assert_eq!(open, inc1);
    // Another model is another incident; the refused insert used no number.
    let inc2 = store
        .insert_incident(
            &Incident::from_detection(&detection("tamper-burst", &d3, t1)),
            &opened,
        )
        .await
        .unwrap();
    assert_eq!(inc2.incident.id(), IncidentId(2));
    // Manual incidents never conflict, with each other or with the rule-opened one.
    for n in 3..=4 {
        let manual =
            Incident::open_manual("Researcher report on the pump", pump.clone(), actor(), t1)
                .unwrap();
        let m = store.insert_incident(&manual, &opened).await.unwrap();
        assert_eq!(m.incident.id(), IncidentId(n));
    }
    let manual_rule = RuleId::parse("manual").unwrap();
    assert_eq!(
        store.open_incident(&manual_rule, &pump).await.unwrap(),
        None
    );
    // Updates carry the version they started from; a stale one is refused.
    let mut inc = inc1.incident.clone();
    inc.attach(&detection("tamper-burst", &d2, t1));
    inc.transition(IncidentStatus::Triage, actor(), t1).unwrap();
    assert_eq!(store.update_incident(&inc, 1, &changed).await.unwrap(), 2);
    assert!(is_conflict(store.update_incident(&inc, 1, &changed).await));
    let unknown = inc.clone().with_id(IncidentId(999));
    assert!(matches!(
        store.update_incident(&unknown, 1, &changed).await,
        Err(StoreError::NotFound(_))
    ));
    // Closing frees the rule+model key for the next detection.
    inc.transition(IncidentStatus::Closed, actor(), t1).unwrap();
    assert_eq!(store.update_incident(&inc, 2, &changed).await.unwrap(), 3);
    assert_eq!(store.open_incident(&rule, &pump).await.unwrap(), None);
    let reopened = store
        .insert_incident(
            &Incident::from_detection(&detection("tamper-burst", &d1, t1)),
            &opened,
        )
        .await
        .unwrap();
    assert_eq!(reopened.incident.id(), IncidentId(5));
    // The body round-trips exactly.
    let back = store.incident(IncidentId(1)).await.unwrap().unwrap();
    assert_eq!(back.incident, inc);
    assert_eq!(back.version, 3);
    assert_eq!(store.incident(IncidentId(42)).await.unwrap(), None);
    let ids = |v: Vec<medsec_postmarket::store::VersionedIncident>| {
        v.iter().map(|i| i.incident.id().0).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(store.incidents(false, 10, 0).await.unwrap()),
        vec![5, 4, 3, 2, 1]
    );
    assert_eq!(
        ids(store.incidents(true, 10, 0).await.unwrap()),
        vec![5, 4, 3, 2]
    );
    assert_eq!(ids(store.incidents(false, 2, 1).await.unwrap()), vec![4, 3]);

    // --- CVD reports.
    let received = rec(AuditAction::CvdReportReceived, "cvd");
    let cvd_changed = rec(AuditAction::CvdReportChanged, "cvd");
    let submission = Submission {
        title: "Debug port open".into(),
        description: "UART gives a root shell.".into(),
        product: Some("pump-x2 2.4.1".into()),
        contact: None,
        credit: None,
    };
    let mut r1 = CvdReport::receive(
        TrackingId::from_random([1; 16]),
        submission.clone(),
        t0,
        CvdPolicy::default(),
    )
    .unwrap();
    store.insert_report(&r1, &received).await.unwrap();
    assert!(is_conflict(store.insert_report(&r1, &received).await));
    let got = store.report(&r1.id).await.unwrap().unwrap();
    assert_eq!((got.report, got.version), (r1.clone(), 1));
    r1.set_status(CvdStatus::Acknowledged, None, actor(), t1)
        .unwrap();
    assert_eq!(store.update_report(&r1, 1, &cvd_changed).await.unwrap(), 2);
    assert!(is_conflict(store.update_report(&r1, 1, &cvd_changed).await));
    let r2 = CvdReport::receive(
        TrackingId::from_random([2; 16]),
        submission,
        t0 + Duration::hours(2),
        CvdPolicy::default(),
    )
    .unwrap();
    assert!(matches!(
        store.update_report(&r2, 1, &cvd_changed).await,
        Err(StoreError::NotFound(_))
    ));
    store.insert_report(&r2, &received).await.unwrap();
    let got = store.report(&r1.id).await.unwrap().unwrap();
    assert_eq!((got.report, got.version), (r1.clone(), 2));
    let listed: Vec<TrackingId> = store
        .reports(10, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.report.id)
        .collect();
    assert_eq!(listed, vec![r2.id.clone(), r1.id.clone()]);
    assert_eq!(store.reports(1, 1).await.unwrap()[0].report.id, r1.id);
    assert_eq!(store.count_reports_since(t0).await.unwrap(), 2);
    assert_eq!(store.count_reports_since(t1).await.unwrap(), 1);
    assert_eq!(
        store
            .report(&TrackingId::from_random([3; 16]))
            .await
            .unwrap(),
        None
    );

    // --- Advisories: every version kept, a stale or duplicate first version refused.
    let adv = rec(AuditAction::AdvisoryChanged, "advisory");
    let a = "MSA-2026-001";
    assert_eq!(
        store
            .put_advisory(a, "draft", None, &actor(), &adv)
            .await
            .unwrap(),
        1
    );
    assert!(is_conflict(
        store.put_advisory(a, "again", None, &actor(), &adv).await
    ));
    assert_eq!(
        store
            .put_advisory(a, "final", Some(1), &actor(), &adv)
            .await
            .unwrap(),
        2
    );
    assert!(is_conflict(
        store.put_advisory(a, "late", Some(1), &actor(), &adv).await
    ));
    assert!(is_conflict(
        store
            .put_advisory("MSA-2026-002", "x", Some(1), &actor(), &adv)
            .await
    ));
    store
        .put_advisory("MSA-2026-002", "other", None, &actor(), &adv)
        .await
        .unwrap();
    let newest = store.advisory(a).await.unwrap().unwrap();
    assert_eq!((newest.version, newest.body.as_str()), (2, "final"));
    let heads: Vec<(String, u64)> = store
        .advisories()
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.id, a.version))
        .collect();
    assert_eq!(
        heads,
        vec![("MSA-2026-001".into(), 2), ("MSA-2026-002".into(), 1)]
    );
    let history: Vec<(u64, String)> = store
        .advisory_history(a)
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.version, a.body))
        .collect();
    assert_eq!(history, vec![(1, "draft".into()), (2, "final".into())]);
    assert_eq!(store.advisory("MSA-2026-404").await.unwrap(), None);

    // --- Audit: intact, with every kind of change recorded; refused changes left no entry.
    assert!(verify_audit(&store).await.unwrap().is_ok());
    let entries = store.audit_page(0, 1000).await.unwrap();
    let count = |action: AuditAction| {
        entries
            .iter()
            .filter(|e| e.action == action.as_str())
            .count()
    };
    assert_eq!(count(AuditAction::EventsPurged), 3);
    assert_eq!(count(AuditAction::DetectionRulesChanged), 2);
    assert_eq!(count(AuditAction::IncidentOpened), 5);
    assert_eq!(count(AuditAction::IncidentChanged), 2);
    assert_eq!(count(AuditAction::CvdReportReceived), 2);
    assert_eq!(count(AuditAction::CvdReportChanged), 1);
    assert_eq!(count(AuditAction::AdvisoryChanged), 3);
    assert_eq!(entries.len(), 18);
    // The store adds what only it knows: the incident number, what a purge deleted.
    let first_open = entries
        .iter()
        .find(|e| e.action == AuditAction::IncidentOpened.as_str())
        .unwrap();
    assert!(first_open.details.contains("INC-000001"), "{first_open:?}");
    let first_purge = entries
        .iter()
        .find(|e| e.action == AuditAction::EventsPurged.as_str())
        .unwrap();
    let details: serde_json::Value = serde_json::from_str(&first_purge.details).unwrap();
    assert_eq!(details["deleted"], 2);
}

/// Eight callers append overlapping batches at once (so the writer groups them): every
/// distinct (device, event id) is stored once, and each caller's returned positions are
/// exactly the events of its own that were stored.
async fn concurrent_appends<S: PostmarketStore + AuditLog + Clone + 'static>(store: S) {
    const TASKS: usize = 8;
    const BATCHES: usize = 25;
    const PER_BATCH: usize = 100;
    let at = datetime!(2026-03-02 09:00 UTC);
    let devices: Vec<DeviceId> = (0..4)
        .map(|i| device("pump-x2", &format!("C{i}")))
        .collect();
    let batch_of = |t: usize, b: usize| -> Vec<AttributedEvent> {
        (0..PER_BATCH)
            .map(|j| {
                // Every tenth event repeats the one before it within the batch; the rest range
                // over 4 devices x 2000 ids so that tasks collide often but not always.
                let j = if j % 10 == 9 { j - 1 } else { j };
                let k = (t * 701 + b * 97 + j * 13) % 8000;
                let note = format!("t{t}b{b}j{j}");
                ev(&devices[k % 4], &format!("k{}", k / 4), at, &note)
            })
            .collect()
    };
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let store = store.clone();
        let batches: Vec<Vec<AttributedEvent>> = (0..BATCHES).map(|b| batch_of(t, b)).collect();
        handles.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for batch in batches {
                let stored = store
                    .append_events(EventSource::Device, at, &batch)
                    .await
                    .unwrap();
                out.push((batch, stored));
            }
            out
        }));
    }
    let started = std::time::Instant::now();
    let mut claimed: HashMap<(String, String), Event> = HashMap::new();
    let mut distinct = HashSet::new();
    let mut sent = 0;
    for h in handles {
        for (batch, stored) in h.await.unwrap() {
            sent += batch.len();
            for e in &batch {
                distinct.insert((e.device.urn(), e.event.id.to_string()));
            }
            assert!(
                stored.windows(2).all(|w| w[0] < w[1]),
                "positions in input order"
            );
            for &i in &stored {
                let e = &batch[i];
                let key = (e.device.urn(), e.event.id.to_string());
                assert!(
                    claimed.insert(key.clone(), e.event.clone()).is_none(),
                    "{key:?} reported stored to two callers"
                );
            }
        }
    }
    eprintln!(
        "{sent} events from {TASKS} tasks in batches of {PER_BATCH}: {:?}",
        started.elapsed()
    );
    let total = store.count_events(None).await.unwrap();
    assert_eq!(total as usize, distinct.len());
    assert_eq!(claimed.len(), distinct.len());
    assert!(distinct.len() < sent, "the batches overlapped");
    // The event each caller was told it stored is the one in the log.
    let log = store.events(&all(u32::MAX)).await.unwrap();
    assert_eq!(log.len(), distinct.len());
    for s in &log {
        let key = (s.device.urn(), s.event.id.to_string());
        assert_eq!(claimed.get(&key), Some(&s.event), "{key:?}");
    }
    let seqs: BTreeSet<u64> = log.iter().map(|s| s.seq).collect();
    assert_eq!(seqs.len(), log.len());
    assert!(verify_audit(&store).await.unwrap().is_ok());
}

async fn open(dir: &Path) -> SqliteStore {
    SqliteStore::open(&dir.join("medsec.db"), Synchronous::Full)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_postmarket_story() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    postmarket_story(store.clone()).await;

    // The event log is append-only for any client of the file, not just for this code.
    let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(dir.path().join("medsec.db"));
    let mut raw = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
    let before = store.count_events(None).await.unwrap();
    let e = sqlx::query("UPDATE pm_events SET severity = 'info'")
        .execute(&mut raw)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
    let e = sqlx::query("DELETE FROM pm_events")
        .execute(&mut raw)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
    // Nor can the horizon be moved back or removed to make room for a delete.
    let e = sqlx::query("UPDATE pm_retention SET horizon = horizon - 1")
        .execute(&mut raw)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("only moves forward"), "{e}");
    assert!(
        sqlx::query("DELETE FROM pm_retention")
            .execute(&mut raw)
            .await
            .is_err()
    );
    assert_eq!(store.count_events(None).await.unwrap(), before);
    let horizon: i64 = sqlx::query_scalar("SELECT horizon FROM pm_retention")
        .fetch_one(&mut raw)
        .await
        .unwrap();
    assert_eq!(
        horizon,
        (datetime!(2026-03-01 10:00 UTC) - Duration::days(10)).unix_timestamp(),
        "the horizon is the latest purge's, not the earlier one asked for after it"
    );
    // What the trigger does allow is exactly retention: a row older than the horizon.
    let ancient = datetime!(2025-01-01 00:00 UTC);
    let d = device("pump-x2", "SN7");
    store
        .append_events(
            EventSource::Server,
            ancient,
            &[ev(&d, "late", ancient, "x")],
        )
        .await
        .unwrap();
    let n = sqlx::query("DELETE FROM pm_events WHERE received_at < ?")
        .bind(horizon)
        .execute(&mut raw)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(n, 1);
    raw.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_appends() {
    let dir = tempfile::tempdir().unwrap();
    concurrent_appends(open(dir.path()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_postmarket_story() {
    let store = common::pg().await;
    postmarket_story(store.clone()).await;

    // The event log is append-only for any client of the database, not just for this code.
    let mut raw = store.pool().acquire().await.unwrap();
    let before = store.count_events(None).await.unwrap();
    let e = sqlx::query("UPDATE pm_events SET severity = 'info'")
        .execute(&mut *raw)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
    let e = sqlx::query("DELETE FROM pm_events")
        .execute(&mut *raw)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
    // TRUNCATE fires no row triggers; it is refused by a statement trigger of its own.
    let e = sqlx::query("TRUNCATE pm_events")
        .execute(&mut *raw)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
    // Nor can the horizon be moved back or removed to make room for a delete.
    let e = sqlx::query("UPDATE pm_retention SET horizon = horizon - 1")
        .execute(&mut *raw)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("only moves forward"), "{e}");
    assert!(
        sqlx::query("DELETE FROM pm_retention")
            .execute(&mut *raw)
            .await
            .is_err()
    );
    assert!(
        sqlx::query("TRUNCATE pm_retention")
            .execute(&mut *raw)
            .await
            .is_err()
    );
    assert_eq!(store.count_events(None).await.unwrap(), before);
    let horizon: i64 = sqlx::query_scalar("SELECT horizon FROM pm_retention")
        .fetch_one(&mut *raw)
        .await
        .unwrap();
    assert_eq!(
        horizon,
        (datetime!(2026-03-01 10:00 UTC) - Duration::days(10)).unix_timestamp(),
        "the horizon is the latest purge's, not the earlier one asked for after it"
    );
    // What the trigger does allow is exactly retention: a row older than the horizon.
    let ancient = datetime!(2025-01-01 00:00 UTC);
    let d = device("pump-x2", "SN7");
    store
        .append_events(
            EventSource::Server,
            ancient,
            &[ev(&d, "late", ancient, "x")],
        )
        .await
        .unwrap();
    let n = sqlx::query("DELETE FROM pm_events WHERE received_at < $1")
        .bind(horizon)
        .execute(&mut *raw)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(n, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_concurrent_appends() {
    concurrent_appends(common::pg().await).await;
}

/// Two stores with pools of their own on one database: two replicas, as `medsec serve` runs
/// them behind a load balancer.
async fn replicas() -> (PgStore, PgStore) {
    let url = medsec_store::pg_cluster::Cluster::fresh_database().unwrap();
    let settings = PgSettings::default();
    let a = PgStore::connect(&url, &settings).await.unwrap();
    let b = PgStore::connect(&url, &settings).await.unwrap();
    (a, b)
}

/// Every invariant SQLite kept by holding its one write lock, held by PostgreSQL across two
/// replicas racing: 2x50 tasks ingest the same batches (each event stored once, claimed by
/// exactly one caller); open the same rule's incident (one opens it, the rest are refused and
/// no incident number is lost); update one incident version (one wins); write the next rules
/// and advisory version (one wins); and purge to different horizons (the greatest stays).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_replicas_race() {
    const TASKS: usize = 50;
    let (a, b) = replicas().await;
    let pick = |i: usize| {
        if i.is_multiple_of(2) {
            a.clone()
        } else {
            b.clone()
        }
    };
    let t0 = datetime!(2026-03-03 08:00 UTC);
    let devices: Vec<DeviceId> = (0..5)
        .map(|i| device("pump-x2", &format!("R{i}")))
        .collect();

    // --- Events: every task sends the same 60 events, in its own rotation and order, so the
    //     replicas' transactions wait on each other's keys in every pattern.
    let mut handles = Vec::new();
    for t in 0..2 * TASKS {
        let store = pick(t);
        let mut batch: Vec<AttributedEvent> = (0..60)
            .map(|k| {
                ev(
                    &devices[k % 5],
                    &format!("r{}", k / 5),
                    t0,
                    &format!("task {t}"),
                )
            })
            .collect();
        batch.rotate_left(t % 60);
        if t.is_multiple_of(3) {
            batch.reverse();
        }
        handles.push(tokio::spawn(async move {
            let stored = store
                .append_events(EventSource::Device, t0, &batch)
                .await
                .unwrap();
            (batch, stored)
        }));
    }
    let mut claimed: HashMap<(String, String), Event> = HashMap::new();
    for h in handles {
        let (batch, stored) = h.await.unwrap();
        for i in stored {
            let e = &batch[i];
            let key = (e.device.urn(), e.event.id.to_string());
            assert!(
                claimed.insert(key.clone(), e.event.clone()).is_none(),
                "{key:?} reported stored to two callers"
            );
        }
    }
    assert_eq!(claimed.len(), 60);
    assert_eq!(a.count_events(None).await.unwrap(), 60);
    for s in b.events(&all(1000)).await.unwrap() {
        let key = (s.device.urn(), s.event.id.to_string());
        assert_eq!(claimed.get(&key), Some(&s.event), "{key:?}");
    }

    // --- One open incident per rule and model, whoever detects it first.
    let opened = rec(AuditAction::IncidentOpened, "incident");
    let mut handles = Vec::new();
    for t in 0..2 * TASKS {
        let store = pick(t);
        let d = devices[t % 5].clone();
        let opened = opened.clone();
        handles.push(tokio::spawn(async move {
            let inc = Incident::from_detection(&detection("tamper-burst", &d, t0));
            store.insert_incident(&inc, &opened).await
        }));
    }
    let mut winners = Vec::new();
    for h in handles {
        match h.await.unwrap() {
            Ok(v) => winners.push(v),
            Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one replica opens the incident");
    let inc = winners.pop().unwrap();
    assert_eq!(inc.incident.id(), IncidentId(1));
    let rule = RuleId::parse("tamper-burst").unwrap();
    assert_eq!(
        b.open_incident(&rule, &devices[0].model).await.unwrap(),
        Some(inc.clone())
    );
    // The refused inserts used no number.
    let manual = Incident::open_manual("Follow-up", devices[0].model.clone(), actor(), t0).unwrap();
    let m = a.insert_incident(&manual, &opened).await.unwrap();
    assert_eq!(m.incident.id(), IncidentId(2));

    // --- Optimistic versions: of all the updates starting from version 1, one lands.
    let changed = rec(AuditAction::IncidentChanged, "incident");
    let mut handles = Vec::new();
    for t in 0..2 * TASKS {
        let store = pick(t);
        let changed = changed.clone();
        let mut next = inc.incident.clone();
        next.attach(&detection(
            "tamper-burst",
            &devices[t % 5],
            t0 + Duration::seconds(t as i64),
        ));
        handles.push(tokio::spawn(async move {
            store
                .update_incident(&next, 1, &changed)
                .await
                .map(|v| (v, next))
        }));
    }
    let mut landed = Vec::new();
    for h in handles {
        match h.await.unwrap() {
            Ok(v) => landed.push(v),
            Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(landed.len(), 1, "exactly one update from version 1 lands");
    let (version, winner) = landed.pop().unwrap();
    assert_eq!(version, 2);
    let stored = a.incident(IncidentId(1)).await.unwrap().unwrap();
    assert_eq!((stored.incident, stored.version), (winner, 2));

    // --- Versioned documents: one writer per version.
    let rules_rec = rec(AuditAction::DetectionRulesChanged, "rules");
    let adv_rec = rec(AuditAction::AdvisoryChanged, "advisory");
    let mut handles = Vec::new();
    for t in 0..2 * TASKS {
        let store = pick(t);
        let (rules_rec, adv_rec) = (rules_rec.clone(), adv_rec.clone());
        handles.push(tokio::spawn(async move {
            let body = format!("{{\"task\":{t}}}");
            let r = store.put_rules(&body, None, &actor(), &rules_rec).await;
            let adv = store
                .put_advisory("MSA-RACE", &body, None, &actor(), &adv_rec)
                .await;
            (r, adv)
        }));
    }
    let (mut rules_won, mut adv_won) = (0, 0);
    for h in handles {
        let (r, adv) = h.await.unwrap();
        match r {
            Ok(1) => rules_won += 1,
            Err(StoreError::Conflict(_)) => {}
            other => panic!("{other:?}"),
        }
        match adv {
            Ok(1) => adv_won += 1,
            Err(StoreError::Conflict(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((rules_won, adv_won), (1, 1));
    assert_eq!(b.advisory_history("MSA-RACE").await.unwrap().len(), 1);

    // --- Retention: purges racing with different horizons leave the greatest one, and
    //     delete exactly what lies behind it.
    let purge = rec(AuditAction::EventsPurged, "events");
    for (i, days) in [50, 40, 30, 20, 10].into_iter().enumerate() {
        let at = t0 - Duration::days(days);
        a.append_events(
            EventSource::Server,
            at,
            &[ev(&devices[0], &format!("old{i}"), at, "x")],
        )
        .await
        .unwrap();
    }
    let mut handles = Vec::new();
    for t in 0..2 * TASKS {
        let store = pick(t);
        let purge = purge.clone();
        let before = t0 - Duration::days(55) + Duration::days((t % 11) as i64 * 4);
        handles.push(tokio::spawn(async move {
            store.purge_events(before, &purge).await.unwrap()
        }));
    }
    let mut deleted = 0;
    for h in handles {
        deleted += h.await.unwrap();
    }
    // The greatest horizon asked for is t0 - 15 days: the four events older than it went,
    // each deleted once.
    assert_eq!(deleted, 4);
    assert_eq!(a.count_events(None).await.unwrap(), 61);
    let horizon: i64 = sqlx::query_scalar("SELECT horizon FROM pm_retention")
        .fetch_one(b.pool())
        .await
        .unwrap();
    assert_eq!(horizon, (t0 - Duration::days(15)).unix_timestamp());
    assert_eq!(
        a.purge_events(t0 - Duration::days(100), &purge)
            .await
            .unwrap(),
        0,
        "an earlier horizon deletes nothing"
    );
    let again: i64 = sqlx::query_scalar("SELECT horizon FROM pm_retention")
        .fetch_one(a.pool())
        .await
        .unwrap();
    assert_eq!(again, horizon, "the horizon never moves back");

    // Both replicas appended to one audit chain.
    assert!(verify_audit(&a).await.unwrap().is_ok());
}
