//! Scripted event streams through parser, engine and incident book: thresholds, windows,
//! dedup, and exactly one incident per burst.

use medsec_core::{DeviceId, DeviceModel, DeviceSerial};
use medsec_postmarket::incident::{IncidentBook, IncidentStatus, Recorded};
use medsec_postmarket::rules::{Detection, Engine, RuleSet};
use medsec_postmarket::{Event, parse_batch};

fn dev(model: &str, serial: &str) -> DeviceId {
    DeviceId::new(
        DeviceModel::parse(model).unwrap(),
        DeviceSerial::parse(serial).unwrap(),
    )
}

/// `(minute offset from 2026-03-01T10:00Z, type, extra json)` -> events via the real parser.
fn script(items: &[(i64, &str, &str)]) -> Vec<Event> {
    let base = time::macros::datetime!(2026-03-01 10:00 UTC);
    let fmt = time::format_description::well_known::Rfc3339;
    let body: Vec<String> = items
        .iter()
        .enumerate()
        .map(|(i, (m, t, extra))| {
            let at = (base + time::Duration::minutes(*m)).format(&fmt).unwrap();
            format!(r#"{{"id":"e{i}","time":"{at}","type":"{t}","severity":"medium"{extra}}}"#)
        })
        .collect();
    let json = format!("[{}]", body.join(","));
    parse_batch(json.as_bytes(), 1000, 1 << 20).unwrap()
}

fn run(engine: &mut Engine, device: &DeviceId, events: &[Event]) -> Vec<Detection> {
    events
        .iter()
        .flat_map(|e| engine.observe(device, e))
        .collect()
}

fn rule_ids(ds: &[Detection]) -> Vec<&str> {
    ds.iter().map(|d| d.rule.as_str()).collect()
}

#[test]
fn threshold_fires_once_per_burst() {
    let mut engine = Engine::new(RuleSet::default_set());
    let d = dev("pump", "A1");
    // 12 auth failures one minute apart: one burst (default: 5 within 10 minutes).
    let burst: Vec<(i64, &str, &str)> = (0..12).map(|m| (m, "auth-failure", "")).collect();
    let ds = run(&mut engine, &d, &script(&burst));
    assert_eq!(rule_ids(&ds), ["auth-failure-burst"]);
    assert_eq!(ds[0].events.len(), 5);
    assert_eq!(ds[0].events[0].as_str(), "e0");
    assert_eq!(ds[0].events[4].as_str(), "e4");
}

#[test]
fn threshold_not_reached_when_spread_out() {
    let mut engine = Engine::new(RuleSet::default_set());
    let d = dev("pump", "A1");
    // 5 failures but spread over 12 minutes: never 5 within 10.
    let evs = script(&[
        (0, "auth-failure", ""),
        (3, "auth-failure", ""),
        (6, "auth-failure", ""),
        (9, "auth-failure", ""),
        (12, "auth-failure", ""),
    ]);
    assert!(run(&mut engine, &d, &evs).is_empty());
}

#[test]
fn window_boundary_is_inclusive() {
    let mut engine = Engine::new(RuleSet::default_set());
    let d = dev("pump", "A1");
    // 5 failures whose first and last are exactly 10 minutes apart.
    let evs = script(&[
        (0, "auth-failure", ""),
        (1, "auth-failure", ""),
        (2, "auth-failure", ""),
        (3, "auth-failure", ""),
        (10, "auth-failure", ""),
    ]);
    assert_eq!(
        rule_ids(&run(&mut engine, &d, &evs)),
        ["auth-failure-burst"]
    );
}

#[test]
fn new_burst_after_window_clears_fires_again() {
    let mut engine = Engine::new(RuleSet::default_set());
    let d = dev("pump", "A1");
    let mut items: Vec<(i64, &str, &str)> = (0..6).map(|m| (m, "auth-failure", "")).collect();
    // Quiet for more than the 10-minute window, then a second burst.
    items.extend((30..36).map(|m| (m, "auth-failure", "")));
    let ds = run(&mut engine, &d, &script(&items));
    assert_eq!(ds.len(), 2);
    assert_eq!(ds[1].events[0].as_str(), "e6");
}

#[test]
fn devices_are_counted_separately() {
    let mut engine = Engine::new(RuleSet::default_set());
    let (a, b) = (dev("pump", "A1"), dev("pump", "B2"));
    let evs = script(&(0..4).map(|m| (m, "auth-failure", "")).collect::<Vec<_>>());
    // 4 on each device: 8 in total, but never 5 from one device.
    for e in &evs {
        assert!(engine.observe(&a, e).is_empty());
        assert!(engine.observe(&b, e).is_empty());
    }
}

#[test]
fn any_rules_with_details_and_cooldown() {
    let mut engine = Engine::new(RuleSet::default_set());
    let d = dev("pump", "A1");
    let evs = script(&[
        (
            0,
            "certificate-rejected",
            r#","details":{"reason":"expired"}"#,
        ),
        (
            1,
            "certificate-rejected",
            r#","details":{"reason":"revoked"}"#,
        ),
        (
            2,
            "certificate-rejected",
            r#","details":{"reason":"revoked"}"#,
        ),
        (3, "firmware-integrity-failure", ""),
        (20, "firmware-integrity-failure", ""),
        (200, "firmware-integrity-failure", ""),
    ]);
    let ds = run(&mut engine, &d, &evs);
    assert_eq!(
        rule_ids(&ds),
        [
            "revoked-certificate-use",
            // The third rejection also completes the 3-in-60-minutes threshold.
            "certificate-rejected-burst",
            "firmware-integrity-failure",
            // 197 minutes later: past the 60-minute cool-down, a new burst.
            "firmware-integrity-failure",
        ]
    );
}

#[test]
fn config_change_outside_maintenance_window() {
    // Window Sundays 02:00-04:00 at UTC-05:00, i.e. 07:00-09:00 UTC.
    let rules = RuleSet::from_json(
        r#"{"rules":[{"id":"cfg","title":"config outside window","severity":"medium",
        "condition":{"kind":"config-outside-maintenance","utc_offset":"-05:00",
        "windows":[{"day":"sunday","start":"02:00","end":"04:00"}],"cooldown_minutes":30}}]}"#,
    )
    .unwrap();
    let mut engine = Engine::new(rules);
    let d = dev("pump", "A1");
    let ev = |id: &str, at: &str| {
        parse_batch(
            format!(r#"[{{"id":"{id}","time":"{at}","type":"config-changed","by":"local:tech","severity":"low"}}]"#)
                .as_bytes(),
            1,
            10_000,
        )
        .unwrap()
        .remove(0)
    };
    // 2026-03-01 is a Sunday. 08:30Z = 03:30 local: inside.
    assert!(
        engine
            .observe(&d, &ev("in", "2026-03-01T08:30:00Z"))
            .is_empty()
    );
    // 04:00 local is the exclusive end: outside.
    assert_eq!(
        engine.observe(&d, &ev("end", "2026-03-01T09:00:00Z")).len(),
        1
    );
    // Within the 30-minute cool-down: same burst.
    assert!(
        engine
            .observe(&d, &ev("again", "2026-03-01T09:20:00Z"))
            .is_empty()
    );
    // Same local time on Monday: outside, new burst.
    assert_eq!(
        engine.observe(&d, &ev("mon", "2026-03-02T08:30:00Z")).len(),
        1
    );
    // Other event types never match this rule.
    let tamper = parse_batch(
        br#"[{"id":"t","time":"2026-03-03T08:30:00Z","type":"tamper","severity":"low"}]"#,
        1,
        10_000,
    )
    .unwrap();
    assert!(engine.observe(&d, &tamper[0]).is_empty());
}

#[test]
fn out_of_order_events_are_clamped_not_dropped() {
    let mut engine = Engine::new(RuleSet::default_set());
    let d = dev("pump", "A1");
    let evs = script(&[
        (10, "auth-failure", ""),
        (11, "auth-failure", ""),
        (5, "auth-failure", ""),
        (12, "auth-failure", ""),
        (2, "auth-failure", ""),
    ]);
    assert_eq!(
        rule_ids(&run(&mut engine, &d, &evs)),
        ["auth-failure-burst"]
    );
}

#[test]
fn state_stays_bounded() {
    let mut engine = Engine::with_capacity(RuleSet::default_set(), 10);
    let evs = script(&[(0, "auth-failure", "")]);
    for i in 0..100 {
        engine.observe(&dev("pump", &format!("S{i}")), &evs[0]);
        assert!(engine.tracked() <= 10);
    }
}

#[test]
fn one_incident_per_burst_across_a_fleet() {
    let mut engine = Engine::new(RuleSet::default_set());
    let mut book = IncidentBook::new();
    let devices = [dev("pump", "A1"), dev("pump", "B2"), dev("monitor", "C3")];
    let burst: Vec<(i64, &str, &str)> = (0..20).map(|m| (m, "auth-failure", "")).collect();
    let evs = script(&burst);
    let mut opened = 0;
    let mut updated = 0;
    for e in &evs {
        for d in &devices {
            for det in engine.observe(d, e) {
                match book.record(&det) {
                    Recorded::Opened(_) => opened += 1,
                    Recorded::Updated(_) => updated += 1,
                }
            }
        }
    }
    // One incident per model (pump, monitor); the second pump joins the pump incident.
    assert_eq!((opened, updated), (2, 1));
    let pump = book
        .incidents()
        .find(|i| i.model().as_str() == "pump")
        .unwrap();
    assert_eq!(pump.devices().count(), 2);
    assert_eq!(pump.status(), IncidentStatus::New);
}
