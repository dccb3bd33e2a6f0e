//! Device security events and the bounded, strict batch parser.
//!
//! An [`Event`] carries no device identity on purpose: the identity comes from the client
//! certificate, never from the body, so a compromised or buggy device cannot report on behalf
//! of another. Only [`Event::attribute`] pairs an event with a [`DeviceId`], and detection only
//! accepts that pairing.

use std::collections::BTreeMap;
use std::fmt;

use medsec_core::{Actor, DeviceId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::PostmarketError;

/// Maximum detail entries per event: details are for humans, not bulk data.
pub const MAX_DETAILS: usize = 32;
/// Maximum length of a detail key.
pub const MAX_DETAIL_KEY: usize = 64;
/// Maximum length of a detail value.
pub const MAX_DETAIL_VALUE: usize = 1024;

/// An event id chosen by the device: 1..=128 printable ASCII characters without spaces, so it
/// can be logged and echoed back verbatim. Unique per device only, not globally.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventId(String);

impl EventId {
    pub fn parse(s: &str) -> Result<Self, PostmarketError> {
        if s.is_empty() || s.len() > 128 {
            return Err(PostmarketError::Invalid {
                what: "event id",
                message: "must be 1 to 128 characters".into(),
            });
        }
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(PostmarketError::Invalid {
                what: "event id",
                message: "only printable ASCII without spaces is allowed".into(),
            });
        }
        Ok(EventId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EventId {
    type Error = PostmarketError;
    fn try_from(s: String) -> Result<Self, PostmarketError> {
        EventId::parse(&s)
    }
}

impl From<EventId> for String {
    fn from(v: EventId) -> String {
        v.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Severity as reported by the device (or assigned by a rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "info" => Severity::Info,
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => return None,
        })
    }
}

/// The type of an event without its payload: what rules match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventType {
    AuthFailure,
    CertificateRejected,
    ConfigChanged,
    FirmwareIntegrityFailure,
    UpdateFailure,
    Tamper,
    DebugPort,
    UnusualConnection,
}

impl EventType {
    pub const ALL: [EventType; 8] = [
        EventType::AuthFailure,
        EventType::CertificateRejected,
        EventType::ConfigChanged,
        EventType::FirmwareIntegrityFailure,
        EventType::UpdateFailure,
        EventType::Tamper,
        EventType::DebugPort,
        EventType::UnusualConnection,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::AuthFailure => "auth-failure",
            EventType::CertificateRejected => "certificate-rejected",
            EventType::ConfigChanged => "config-changed",
            EventType::FirmwareIntegrityFailure => "firmware-integrity-failure",
            EventType::UpdateFailure => "update-failure",
            EventType::Tamper => "tamper",
            EventType::DebugPort => "debug-port",
            EventType::UnusualConnection => "unusual-connection",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened, with the payload specific to the type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum EventKind {
    AuthFailure,
    CertificateRejected,
    /// Configuration changed; `by` is who the device says made the change (local user, service).
    ConfigChanged {
        by: Actor,
    },
    FirmwareIntegrityFailure,
    UpdateFailure,
    Tamper,
    DebugPort,
    UnusualConnection,
}

impl EventKind {
    /// The kind for a type that carries no payload; `None` for types that need one, so a
    /// new payload-carrying type cannot be built without its payload by accident.
    pub fn without_payload(t: EventType) -> Option<EventKind> {
        Some(match t {
            EventType::AuthFailure => EventKind::AuthFailure,
            EventType::CertificateRejected => EventKind::CertificateRejected,
            EventType::ConfigChanged => return None,
            EventType::FirmwareIntegrityFailure => EventKind::FirmwareIntegrityFailure,
            EventType::UpdateFailure => EventKind::UpdateFailure,
            EventType::Tamper => EventKind::Tamper,
            EventType::DebugPort => EventKind::DebugPort,
            EventType::UnusualConnection => EventKind::UnusualConnection,
        })
    }

    pub fn event_type(&self) -> EventType {
        match self {
            EventKind::AuthFailure => EventType::AuthFailure,
            EventKind::CertificateRejected => EventType::CertificateRejected,
            EventKind::ConfigChanged { .. } => EventType::ConfigChanged,
            EventKind::FirmwareIntegrityFailure => EventType::FirmwareIntegrityFailure,
            EventKind::UpdateFailure => EventType::UpdateFailure,
            EventKind::Tamper => EventType::Tamper,
            EventKind::DebugPort => EventType::DebugPort,
            EventKind::UnusualConnection => EventType::UnusualConnection,
        }
    }
}

/// One security event as reported by a device, not yet attributed to a device. It
/// deserializes without the wire checks because only the store, which wrote it, reads it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub id: EventId,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub kind: EventKind,
    pub severity: Severity,
    /// Free-form string details, bounded by [`MAX_DETAILS`] and friends at parse time.
    pub details: BTreeMap<String, String>,
}

impl Event {
    pub fn event_type(&self) -> EventType {
        self.kind.event_type()
    }

    /// Pairs the event with the device that sent it. Call this only with the identity taken
    /// from the authenticated channel (the client certificate).
    pub fn attribute(self, device: DeviceId) -> AttributedEvent {
        AttributedEvent {
            device,
            event: self,
        }
    }
}

/// An event together with the authenticated identity of the device that sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttributedEvent {
    pub device: DeviceId,
    pub event: Event,
}

const FIELDS: [&str; 6] = ["id", "time", "type", "by", "severity", "details"];

/// Parses a JSON array of events, refusing bodies over `max_bytes` and arrays over
/// `max_events`. The byte bound is checked before any parsing so a huge body costs nothing.
///
/// Wire form of one event:
/// `{"id":"e-1","time":"2026-03-01T10:00:00Z","type":"config-changed","by":"local:tech",
///   "severity":"medium","details":{"key":"value"}}`; `by` is required for `config-changed`
/// and refused for every other type; `details` is optional. Unknown fields are refused.
pub fn parse_batch(
    bytes: &[u8],
    max_events: usize,
    max_bytes: usize,
) -> Result<Vec<Event>, PostmarketError> {
    if bytes.len() > max_bytes {
        return Err(PostmarketError::BatchTooLarge {
            size: bytes.len(),
            limit: max_bytes,
        });
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        PostmarketError::batch(
            "$",
            format!("not JSON (line {}, column {}): {e}", e.line(), e.column()),
        )
    })?;
    let Value::Array(items) = value else {
        return Err(PostmarketError::batch("$", "expected an array of events"));
    };
    if items.len() > max_events {
        return Err(PostmarketError::TooManyEvents {
            count: items.len(),
            limit: max_events,
        });
    }
    items
        .iter()
        .enumerate()
        .map(|(i, v)| parse_event(&format!("[{i}]"), v))
        .collect()
}

fn parse_event(path: &str, v: &Value) -> Result<Event, PostmarketError> {
    let Value::Object(obj) = v else {
        return Err(PostmarketError::batch(path, "expected an object"));
    };
    for key in obj.keys() {
        if !FIELDS.contains(&key.as_str()) {
            let why = if matches!(key.as_str(), "device" | "device_id" | "deviceId" | "serial") {
                "the device identity comes from the client certificate, not the event".to_owned()
            } else {
                format!("unknown field, expected one of {}", FIELDS.join(", "))
            };
            return Err(PostmarketError::batch(format!("{path}.{key}"), why));
        }
    }
    let id_s = req_str(path, obj, "id")?;
    let id = EventId::parse(id_s)
        .map_err(|e| PostmarketError::batch(format!("{path}.id"), e.to_string()))?;
    let time_s = req_str(path, obj, "time")?;
    let at = OffsetDateTime::parse(time_s, &Rfc3339).map_err(|e| {
        PostmarketError::batch(format!("{path}.time"), format!("not an RFC 3339 time: {e}"))
    })?;
    let type_s = req_str(path, obj, "type")?;
    let ty = EventType::parse(type_s).ok_or_else(|| {
        PostmarketError::batch(
            format!("{path}.type"),
            format!("unknown event type {type_s:?}"),
        )
    })?;
    let kind = match EventKind::without_payload(ty) {
        Some(kind) => {
            if obj.contains_key("by") {
                return Err(PostmarketError::batch(
                    format!("{path}.by"),
                    "only allowed for config-changed events",
                ));
            }
            kind
        }
        None => {
            let by_s = req_str(path, obj, "by")?;
            let by = Actor::parse(by_s)
                .map_err(|e| PostmarketError::batch(format!("{path}.by"), e.to_string()))?;
            EventKind::ConfigChanged { by }
        }
    };
    let sev_s = req_str(path, obj, "severity")?;
    let severity = Severity::parse(sev_s).ok_or_else(|| {
        PostmarketError::batch(
            format!("{path}.severity"),
            "expected info, low, medium, high or critical",
        )
    })?;
    let details = match obj.get("details") {
        None => BTreeMap::new(),
        Some(d) => parse_details(&format!("{path}.details"), d)?,
    };
    Ok(Event {
        id,
        at,
        kind,
        severity,
        details,
    })
}

fn req_str<'a>(
    path: &str,
    obj: &'a Map<String, Value>,
    key: &str,
) -> Result<&'a str, PostmarketError> {
    match obj.get(key) {
        None => Err(PostmarketError::batch(
            format!("{path}.{key}"),
            "missing field",
        )),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(PostmarketError::batch(
            format!("{path}.{key}"),
            "expected a string",
        )),
    }
}

fn parse_details(path: &str, v: &Value) -> Result<BTreeMap<String, String>, PostmarketError> {
    let Value::Object(obj) = v else {
        return Err(PostmarketError::batch(
            path,
            "expected an object of strings",
        ));
    };
    if obj.len() > MAX_DETAILS {
        return Err(PostmarketError::batch(
            path,
            format!("more than {MAX_DETAILS} entries"),
        ));
    }
    let mut out = BTreeMap::new();
    for (k, val) in obj {
        let here = format!("{path}.{k}");
        if k.is_empty() || k.len() > MAX_DETAIL_KEY || k.chars().any(char::is_control) {
            return Err(PostmarketError::batch(
                here,
                format!("key must be 1 to {MAX_DETAIL_KEY} characters without control characters"),
            ));
        }
        let Value::String(s) = val else {
            return Err(PostmarketError::batch(here, "expected a string"));
        };
        if s.len() > MAX_DETAIL_VALUE {
            return Err(PostmarketError::batch(
                here,
                format!("longer than {MAX_DETAIL_VALUE} bytes"),
            ));
        }
        out.insert(k.clone(), s.clone());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(json: &str) -> Result<Vec<Event>, PostmarketError> {
        parse_batch(json.as_bytes(), 10, 10_000)
    }

    #[test]
    fn parses_all_types() {
        let mut items = Vec::new();
        for (i, t) in EventType::ALL.iter().enumerate() {
            let by = if *t == EventType::ConfigChanged {
                r#","by":"local:tech""#
            } else {
                ""
            };
            items.push(format!(
                r#"{{"id":"e{i}","time":"2026-03-01T10:00:00+01:00","type":"{t}"{by},"severity":"low"}}"#
            ));
        }
        let json = format!("[{}]", items.join(","));
        let evs = one(&json).unwrap();
        assert_eq!(evs.len(), 8);
        for (e, t) in evs.iter().zip(EventType::ALL) {
            assert_eq!(e.event_type(), t);
        }
        assert_eq!(
            evs[2].kind,
            EventKind::ConfigChanged {
                by: Actor::parse("local:tech").unwrap()
            }
        );
    }

    #[test]
    fn size_limits_are_distinct() {
        let big = vec![b' '; 101];
        assert!(matches!(
            parse_batch(&big, 10, 100),
            Err(PostmarketError::BatchTooLarge {
                size: 101,
                limit: 100
            })
        ));
        let ev = r#"{"id":"a","time":"2026-03-01T10:00:00Z","type":"tamper","severity":"high"}"#;
        let json = format!("[{ev},{ev},{ev}]");
        assert!(matches!(
            parse_batch(json.as_bytes(), 2, 10_000),
            Err(PostmarketError::TooManyEvents { count: 3, limit: 2 })
        ));
        assert_eq!(parse_batch(json.as_bytes(), 3, 10_000).unwrap().len(), 3);
    }

    fn path_of(r: Result<Vec<Event>, PostmarketError>) -> String {
        match r {
            Err(PostmarketError::InvalidBatch { path, .. }) => path,
            other => panic!("expected InvalidBatch, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_field() {
        let ok = r#"{"id":"a","time":"2026-03-01T10:00:00Z","type":"tamper","severity":"high"}"#;
        assert_eq!(
            path_of(one(&format!(
                r#"[{ok},{{"id":"b","time":"yesterday","type":"tamper","severity":"high"}}]"#
            ))),
            "[1].time"
        );
        assert_eq!(
            path_of(one(
                r#"[{"id":"a","time":"2026-03-01T10:00:00Z","type":"tamper","severity":"high","device":"x"}]"#
            )),
            "[0].device"
        );
        assert_eq!(
            path_of(one(
                r#"[{"id":"a","time":"2026-03-01T10:00:00Z","type":"tamper","severity":"high","extra":1}]"#
            )),
            "[0].extra"
        );
        assert_eq!(
            path_of(one(
                r#"[{"id":"a","time":"2026-03-01T10:00:00Z","type":"config-changed","severity":"high"}]"#
            )),
            "[0].by"
        );
        assert_eq!(
            path_of(one(
                r#"[{"id":"a","time":"2026-03-01T10:00:00Z","type":"tamper","by":"x","severity":"high"}]"#
            )),
            "[0].by"
        );
        assert_eq!(
            path_of(one(
                r#"[{"id":"a","time":"2026-03-01T10:00:00Z","type":"meteor","severity":"high"}]"#
            )),
            "[0].type"
        );
        assert_eq!(
            path_of(one(
                r#"[{"id":"a","time":"2026-03-01T10:00:00Z","type":"tamper","severity":"huge"}]"#
            )),
            "[0].severity"
        );
        assert_eq!(
            path_of(one(
                r#"[{"id":"","time":"2026-03-01T10:00:00Z","type":"tamper","severity":"high"}]"#
            )),
            "[0].id"
        );
        assert_eq!(
            path_of(one(
                r#"[{"id":"a","time":"2026-03-01T10:00:00Z","type":"tamper","severity":"high","details":{"k":1}}]"#
            )),
            "[0].details.k"
        );
        assert_eq!(path_of(one(r#"{"id":"a"}"#)), "$");
        assert_eq!(path_of(one("[1,")), "$");
    }
}
