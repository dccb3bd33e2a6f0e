//! Post-market targets: device event batches (`parse_batch` with the gateway's bounds), RFC
//! 5424 syslog messages and RFC 5425 frame streams, CVD reports from the public form, and
//! detection-rule files; accepted events and rules also run through the detection `Engine`.

use medsec_core::DeviceId;
use medsec_postmarket::cvd::{MAX_REPORT_BYTES, Submission};
use medsec_postmarket::event::{MAX_DETAIL_KEY, MAX_DETAIL_VALUE, MAX_DETAILS};
use medsec_postmarket::rules::{Engine, RuleSet};
use medsec_postmarket::syslog::{self, DEFAULT_MAX_FRAME, FrameDecoder, MAX_LEN_DIGITS};
use medsec_postmarket::{Event, EventKind, parse_batch};
use medsec_server::request_bodies::{MAX_BATCH_BYTES, MAX_BATCH_EVENTS};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

fn device() -> DeviceId {
    DeviceId::parse_urn("urn:medsec:device:fuzz-pump:SN-0001").expect("device")
}

fn check_event(e: &Event) {
    assert!(!e.id.as_str().is_empty() && e.id.as_str().len() <= 128);
    assert!(
        e.details.len() <= MAX_DETAILS,
        "{} details",
        e.details.len()
    );
    for (k, v) in &e.details {
        assert!(
            !k.is_empty() && k.len() <= MAX_DETAIL_KEY,
            "detail key {k:?}"
        );
        assert!(v.len() <= MAX_DETAIL_VALUE, "detail value of {k:?}");
    }
}

/// The wire form of an event, as a device sends it.
fn wire(e: &Event) -> Value {
    let mut o = json!({
        "id": e.id.as_str(),
        "time": e.at.format(&Rfc3339).expect("an accepted time formats"),
        "type": e.event_type().as_str(),
        "severity": e.severity.as_str(),
        "details": e.details,
    });
    if let EventKind::ConfigChanged { by } = &e.kind {
        o["by"] = json!(by.to_string());
    }
    o
}

/// Runs events through the detection engine with a small capacity, so eviction runs too.
fn detect(rules: RuleSet, events: &[Event]) {
    let mut engine = Engine::with_capacity(rules, 4);
    let dev = device();
    for e in events {
        for d in engine.observe(&dev, e) {
            assert_eq!(d.device, dev);
            assert!(!d.events.is_empty(), "a detection without events");
        }
        assert!(engine.tracked() <= 4, "engine holds {}", engine.tracked());
    }
}

/// A device's event batch as `POST /device/v1/events` parses it (1000 events, 512 KiB).
/// Accepted batches respect the bounds, survive their own wire form unchanged, and are
/// refused by a bound one smaller.
pub fn event_batch(data: &[u8]) {
    let Ok(events) = parse_batch(data, MAX_BATCH_EVENTS, MAX_BATCH_BYTES) else {
        return;
    };
    assert!(events.len() <= MAX_BATCH_EVENTS);
    events.iter().for_each(check_event);
    let again: Vec<Value> = events.iter().map(wire).collect();
    let bytes = serde_json::to_vec(&again).expect("serialize");
    let back = parse_batch(&bytes, MAX_BATCH_EVENTS, usize::MAX).expect("own wire form refused");
    assert_eq!(back, events, "wire form round trip");
    if !events.is_empty() {
        assert!(parse_batch(data, events.len() - 1, MAX_BATCH_BYTES).is_err());
    }
    assert!(
        parse_batch(data, MAX_BATCH_EVENTS, data.len().saturating_sub(1)).is_err()
            || data.is_empty()
    );
    detect(RuleSet::default_set(), &events);
}

fn check_message(frame: &[u8]) {
    let Ok(m) = syslog::parse_message(frame) else {
        return;
    };
    assert_eq!(m.raw(), frame);
    assert!(m.pri() <= 191, "PRI {}", m.pri());
    assert_eq!(m.facility(), m.pri() >> 3);
    assert_eq!(m.severity(), m.pri() & 7);
    let ev = syslog::to_event(&m);
    if let Ok((_, e)) = &ev {
        check_event(e);
        // A derived event id depends on the message only.
        assert_eq!(
            syslog::to_event(&m).ok().map(|(_, e)| e.id),
            Some(e.id.clone())
        );
        detect(RuleSet::default_set(), std::slice::from_ref(e));
    }
}

/// One SYSLOG-MSG (a frame body), parsed and turned into an event.
pub fn syslog_message(data: &[u8]) {
    check_message(data);
}

/// Decodes a stream in one push and again in pieces; both give the same frames and the same
/// error, frames and held bytes stay within the documented bounds.
fn frames(data: &[u8], max_frame: usize, piece: usize) -> (Vec<Vec<u8>>, bool) {
    let mut d = FrameDecoder::new(max_frame);
    let mut out = Vec::new();
    for chunk in data.chunks(piece.max(1)) {
        d.push(chunk);
        loop {
            match d.next_frame() {
                Ok(Some(f)) => {
                    assert!(f.len() <= max_frame, "frame of {} bytes", f.len());
                    out.push(f);
                }
                Ok(None) => break,
                Err(_) => {
                    assert!(d.next_frame().is_err(), "errors are final");
                    return (out, true);
                }
            }
        }
        assert!(
            d.pending() <= max_frame + MAX_LEN_DIGITS + 1,
            "{} bytes held",
            d.pending()
        );
    }
    (out, false)
}

/// An RFC 5425 stream of octet-counted frames as the syslog listener reads it.
pub fn syslog_stream(data: &[u8]) {
    let piece = usize::from(data.first().copied().unwrap_or(1) % 17) + 1;
    for max in [DEFAULT_MAX_FRAME, 64] {
        let whole = frames(data, max, data.len());
        let split = frames(data, max, piece);
        assert_eq!(whole, split, "chunking changed the frames");
        if max == DEFAULT_MAX_FRAME {
            for f in whole.0.iter().take(16) {
                check_message(f);
            }
        }
    }
}

/// A researcher's report to the public `POST /cvd/reports`.
pub fn cvd_report(data: &[u8]) {
    let Ok(s) = Submission::parse_json(data) else {
        return;
    };
    let ok_text = |t: &str| {
        t == t.trim()
            && !t.is_empty()
            && !t
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
    };
    assert!(ok_text(&s.title) && s.title.len() <= 200, "title");
    assert!(
        ok_text(&s.description) && s.description.len() <= MAX_REPORT_BYTES,
        "description"
    );
    for f in [&s.product, &s.contact, &s.credit].into_iter().flatten() {
        assert!(ok_text(f) && f.len() <= 500, "optional field {f:?}");
    }
    if let Some(c) = &s.contact {
        assert!(!c.chars().any(char::is_whitespace));
    }
    let bytes = serde_json::to_vec(&s).expect("serialize");
    if bytes.len() <= MAX_REPORT_BYTES {
        assert_eq!(Submission::parse_json(&bytes).ok(), Some(s), "round trip");
    }
}

/// A detection-rule file (`PUT /api/v1/detection-rules`), then a fixed event stream through
/// an engine running the accepted rules.
pub fn detection_rules(data: &[u8]) {
    let Ok(rules) = RuleSet::from_json(&crate::as_text(data)) else {
        return;
    };
    let ids: std::collections::BTreeSet<_> = rules.rules().iter().map(|r| r.id.clone()).collect();
    assert_eq!(
        ids.len(),
        rules.rules().len(),
        "duplicate rule ids accepted"
    );
    let _ = rules.longest_window();
    let start = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
    let mut events = Vec::new();
    for (i, t) in medsec_postmarket::EventType::ALL
        .iter()
        .cycle()
        .take(40)
        .enumerate()
    {
        let by = if *t == medsec_postmarket::EventType::ConfigChanged {
            r#","by":"local:tech""#
        } else {
            ""
        };
        let at = (start + time::Duration::minutes(7 * i as i64))
            .format(&Rfc3339)
            .expect("time");
        let one = format!(r#"[{{"id":"e{i}","time":"{at}","type":"{t}"{by},"severity":"high"}}]"#);
        events.extend(parse_batch(one.as_bytes(), 1, 4096).expect("synthetic event"));
    }
    detect(rules, &events);
}
