//! Editable detection rules (JSON) and the streaming detection [`Engine`].
//!
//! JSON rather than TOML keeps the dependency set to what the crate already needs; the
//! rule file is strict (unknown fields refused) so a typo cannot silently disable a rule.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;

use medsec_core::DeviceId;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime, UtcOffset, Weekday};

use crate::PostmarketError;
use crate::event::{AttributedEvent, Event, EventId, EventType, Severity};

const DEFAULT_RULES: &str = include_str!("default_rules.json");

/// Upper bound on a threshold count: the engine keeps that many timestamps per rule+device.
pub const MAX_THRESHOLD_COUNT: u32 = 1000;
/// Upper bound on any window or cool-down, one week.
pub const MAX_WINDOW_MINUTES: u32 = 7 * 24 * 60;

/// A rule identifier: 1..=64 of `[a-z0-9-]`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RuleId(String);

impl RuleId {
    pub fn parse(s: &str) -> Result<Self, PostmarketError> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(RuleId(s.to_owned()))
        } else {
            Err(PostmarketError::Invalid {
                what: "rule id",
                message: format!("{s:?} must be 1 to 64 of a-z, 0-9 and '-'"),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RuleId {
    type Error = PostmarketError;
    fn try_from(s: String) -> Result<Self, PostmarketError> {
        RuleId::parse(&s)
    }
}

impl From<RuleId> for String {
    fn from(v: RuleId) -> String {
        v.0
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A weekly maintenance window in local time of the rule's UTC offset: `[start, end)` minutes
/// of one weekday. Windows crossing midnight are written as two windows, which keeps the
/// check trivial and the file unambiguous.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeeklyWindow {
    pub day: Weekday,
    pub start_minute: u16,
    pub end_minute: u16,
}

impl WeeklyWindow {
    fn contains(&self, local: OffsetDateTime) -> bool {
        let m = u16::from(local.hour()) * 60 + u16::from(local.minute());
        local.weekday() == self.day && self.start_minute <= m && m < self.end_minute
    }
}

/// When a rule fires.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Condition {
    /// `count` events of `event_type` from one device within `window`.
    Threshold {
        event_type: EventType,
        count: u32,
        window: Duration,
    },
    /// Any event of `event_type` whose details contain all of `details`; repeated events
    /// within `cooldown` of each other count as the same burst.
    Any {
        event_type: EventType,
        details: BTreeMap<String, String>,
        cooldown: Duration,
    },
    /// A config-changed event outside every maintenance window.
    ConfigOutsideMaintenance {
        offset: UtcOffset,
        windows: Vec<WeeklyWindow>,
        cooldown: Duration,
    },
    /// A vulnerability of firmware running on fielded devices was newly added to the CISA
    /// KEV catalog. Not an event rule: evaluated when the catalog is imported.
    KevListed,
}

impl Condition {
    /// The burst window: a gap longer than this between matching events ends the burst.
    fn window(&self) -> Duration {
        match self {
            Condition::Threshold { window, .. } => *window,
            Condition::Any { cooldown, .. }
            | Condition::ConfigOutsideMaintenance { cooldown, .. } => *cooldown,
            Condition::KevListed => Duration::ZERO,
        }
    }

    /// How many matching events must be held to decide.
    fn needed(&self) -> usize {
        match self {
            Condition::Threshold { count, .. } => *count as usize,
            _ => 1,
        }
    }

    fn matches(&self, event: &Event) -> bool {
        match self {
            Condition::Threshold { event_type, .. } => event.event_type() == *event_type,
            Condition::Any {
                event_type,
                details,
                ..
            } => {
                event.event_type() == *event_type
                    && details.iter().all(|(k, v)| event.details.get(k) == Some(v))
            }
            Condition::ConfigOutsideMaintenance {
                offset, windows, ..
            } => {
                event.event_type() == EventType::ConfigChanged && {
                    let local = event.at.to_offset(*offset);
                    !windows.iter().any(|w| w.contains(local))
                }
            }
            Condition::KevListed => false,
        }
    }
}

/// One validated detection rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub id: RuleId,
    pub title: String,
    pub severity: Severity,
    pub condition: Condition,
}

/// A validated set of rules with unique ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSet {
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRuleSet {
    rules: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: String,
    title: String,
    severity: Severity,
    condition: RawCondition,
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
enum RawCondition {
    Threshold {
        event_type: EventType,
        count: u32,
        window_minutes: u32,
    },
    Any {
        event_type: EventType,
        #[serde(default)]
        details: BTreeMap<String, String>,
        cooldown_minutes: u32,
    },
    ConfigOutsideMaintenance {
        utc_offset: String,
        windows: Vec<RawWindow>,
        cooldown_minutes: u32,
    },
    KevListed {},
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    day: String,
    start: String,
    end: String,
}

fn minutes(path: &str, m: u32) -> Result<Duration, PostmarketError> {
    if m == 0 || m > MAX_WINDOW_MINUTES {
        return Err(PostmarketError::rules(
            path,
            format!("must be 1 to {MAX_WINDOW_MINUTES} minutes"),
        ));
    }
    Ok(Duration::minutes(i64::from(m)))
}

fn parse_hhmm(path: &str, s: &str) -> Result<u16, PostmarketError> {
    let bad = || PostmarketError::rules(path, format!("{s:?} is not HH:MM (00:00 to 24:00)"));
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u16 = h.parse().map_err(|_| bad())?;
    let m: u16 = m.parse().map_err(|_| bad())?;
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

fn parse_weekday(path: &str, s: &str) -> Result<Weekday, PostmarketError> {
    Ok(match s {
        "monday" => Weekday::Monday,
        "tuesday" => Weekday::Tuesday,
        "wednesday" => Weekday::Wednesday,
        "thursday" => Weekday::Thursday,
        "friday" => Weekday::Friday,
        "saturday" => Weekday::Saturday,
        "sunday" => Weekday::Sunday,
        _ => {
            return Err(PostmarketError::rules(
                path,
                format!("{s:?} is not a lower-case English weekday"),
            ));
        }
    })
}

fn parse_offset(path: &str, s: &str) -> Result<UtcOffset, PostmarketError> {
    let bad = || PostmarketError::rules(path, format!("{s:?} is not an offset like +05:30"));
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'+') => (1i8, &s[1..]),
        Some(b'-') => (-1i8, &s[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: i8 = h.parse().map_err(|_| bad())?;
    let m: i8 = m.parse().map_err(|_| bad())?;
    if h > 23 || m > 59 {
        return Err(bad());
    }
    UtcOffset::from_hms(sign * h, sign * m, 0).map_err(|_| bad())
}

impl RuleSet {
    /// Parses a rule file. Structural errors carry the JSON line and column; value errors
    /// carry the path of the value, e.g. `rules[2].condition.count`.
    pub fn from_json(s: &str) -> Result<Self, PostmarketError> {
        let raw: RawRuleSet = serde_json::from_str(s).map_err(|e| {
            PostmarketError::rules(
                format!("line {} column {}", e.line(), e.column()),
                e.to_string(),
            )
        })?;
        let mut rules: Vec<Rule> = Vec::with_capacity(raw.rules.len());
        for (i, r) in raw.rules.into_iter().enumerate() {
            let p = format!("rules[{i}]");
            let id = RuleId::parse(&r.id)
                .map_err(|e| PostmarketError::rules(format!("{p}.id"), e.to_string()))?;
            if rules.iter().any(|x| x.id == id) {
                return Err(PostmarketError::rules(
                    format!("{p}.id"),
                    format!("duplicate rule id {id}"),
                ));
            }
            if r.title.trim().is_empty() || r.title.len() > 200 {
                return Err(PostmarketError::rules(
                    format!("{p}.title"),
                    "must be 1 to 200 characters",
                ));
            }
            let c = format!("{p}.condition");
            let condition = match r.condition {
                RawCondition::Threshold {
                    event_type,
                    count,
                    window_minutes,
                } => {
                    if count == 0 || count > MAX_THRESHOLD_COUNT {
                        return Err(PostmarketError::rules(
                            format!("{c}.count"),
                            format!("must be 1 to {MAX_THRESHOLD_COUNT}"),
                        ));
                    }
                    Condition::Threshold {
                        event_type,
                        count,
                        window: minutes(&format!("{c}.window_minutes"), window_minutes)?,
                    }
                }
                RawCondition::Any {
                    event_type,
                    details,
                    cooldown_minutes,
                } => Condition::Any {
                    event_type,
                    details,
                    cooldown: minutes(&format!("{c}.cooldown_minutes"), cooldown_minutes)?,
                },
                RawCondition::ConfigOutsideMaintenance {
                    utc_offset,
                    windows,
                    cooldown_minutes,
                } => {
                    let offset = parse_offset(&format!("{c}.utc_offset"), &utc_offset)?;
                    let mut ws = Vec::with_capacity(windows.len());
                    for (j, w) in windows.iter().enumerate() {
                        let wp = format!("{c}.windows[{j}]");
                        let start = parse_hhmm(&format!("{wp}.start"), &w.start)?;
                        let end = parse_hhmm(&format!("{wp}.end"), &w.end)?;
                        if start >= end {
                            return Err(PostmarketError::rules(
                                format!("{wp}.end"),
                                "must be after start (split windows crossing midnight in two)",
                            ));
                        }
                        ws.push(WeeklyWindow {
                            day: parse_weekday(&format!("{wp}.day"), &w.day)?,
                            start_minute: start,
                            end_minute: end,
                        });
                    }
                    Condition::ConfigOutsideMaintenance {
                        offset,
                        windows: ws,
                        cooldown: minutes(&format!("{c}.cooldown_minutes"), cooldown_minutes)?,
                    }
                }
                RawCondition::KevListed {} => {
                    if rules
                        .iter()
                        .any(|x| matches!(x.condition, Condition::KevListed))
                    {
                        return Err(PostmarketError::rules(
                            format!("{c}.kind"),
                            "only one kev-listed rule is allowed",
                        ));
                    }
                    Condition::KevListed
                }
            };
            rules.push(Rule {
                id,
                title: r.title,
                severity: r.severity,
                condition,
            });
        }
        Ok(RuleSet { rules })
    }

    /// The built-in rule set shipped with the crate.
    pub fn default_set() -> Self {
        // The default file is part of the crate and covered by a test, so a failure here is a
        // build defect; fall back to an empty set rather than panicking in production.
        RuleSet::from_json(DEFAULT_RULES).unwrap_or(RuleSet { rules: Vec::new() })
    }

    /// The built-in rule file, for operators to copy and edit.
    pub fn default_json() -> &'static str {
        DEFAULT_RULES
    }

    /// The longest burst window of any rule: how far back the engine must replay stored
    /// events after a restart to decide the same way it would have without one.
    pub fn longest_window(&self) -> Duration {
        self.rules
            .iter()
            .map(|r| r.condition.window())
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// The rule that opens incidents for newly KEV-listed vulnerabilities, when enabled.
    pub fn kev_rule(&self) -> Option<&Rule> {
        self.rules
            .iter()
            .find(|r| matches!(r.condition, Condition::KevListed))
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
}

/// A rule fired for one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Detection {
    pub rule: RuleId,
    pub title: String,
    pub severity: Severity,
    pub device: DeviceId,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The events that made the rule fire (at most the threshold count).
    pub events: Vec<EventId>,
}

struct Track {
    recent: VecDeque<(OffsetDateTime, EventId)>,
    last: OffsetDateTime,
    fired: bool,
}

/// Streaming detection with bounded state: per rule+device it holds at most the threshold
/// count of timestamps, and at most `max_tracked` rule+device pairs overall.
pub struct Engine {
    rules: RuleSet,
    tracks: HashMap<(usize, DeviceId), Track>,
    max_tracked: usize,
}

impl Engine {
    /// Default bound on tracked rule+device pairs.
    pub const DEFAULT_MAX_TRACKED: usize = 100_000;

    pub fn new(rules: RuleSet) -> Self {
        Engine::with_capacity(rules, Engine::DEFAULT_MAX_TRACKED)
    }

    /// `max_tracked` bounds memory; when full, expired pairs are dropped first, then the
    /// least recently active pair (which may let that pair fire again later: a duplicate
    /// detection is preferred over a missed one).
    pub fn with_capacity(rules: RuleSet, max_tracked: usize) -> Self {
        Engine {
            rules,
            tracks: HashMap::new(),
            max_tracked: max_tracked.max(1),
        }
    }

    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Number of rule+device pairs currently held.
    pub fn tracked(&self) -> usize {
        self.tracks.len()
    }

    pub fn observe_attributed(&mut self, ev: &AttributedEvent) -> Vec<Detection> {
        self.observe(&ev.device, &ev.event)
    }

    /// Feeds one event, in time order per device. An event older than the last one seen for a
    /// rule+device is treated as happening at that last time rather than dropped, so a late
    /// integrity failure still counts. One burst (matching events separated by gaps no longer
    /// than the rule's window) yields exactly one detection.
    pub fn observe(&mut self, device: &DeviceId, event: &Event) -> Vec<Detection> {
        let mut out = Vec::new();
        for (idx, rule) in self.rules.rules.iter().enumerate() {
            if !rule.condition.matches(event) {
                continue;
            }
            let window = rule.condition.window();
            let needed = rule.condition.needed();
            let key = (idx, device.clone());
            if !self.tracks.contains_key(&key) && self.tracks.len() >= self.max_tracked {
                evict(&mut self.tracks, &self.rules, event.at);
            }
            let track = self.tracks.entry(key).or_insert_with(|| Track {
                recent: VecDeque::new(),
                last: event.at,
                fired: false,
            });
            let t = event.at.max(track.last);
            if t - track.last > window {
                // The previous burst is over: forget it so the next one can fire.
                track.recent.clear();
                track.fired = false;
            }
            track.last = t;
            track.recent.push_back((t, event.id.clone()));
            while track.recent.len() > needed {
                track.recent.pop_front();
            }
            let within = track
                .recent
                .front()
                .is_some_and(|(first, _)| t - *first <= window);
            if !track.fired && track.recent.len() >= needed && within {
                track.fired = true;
                out.push(Detection {
                    rule: rule.id.clone(),
                    title: rule.title.clone(),
                    severity: rule.severity,
                    device: device.clone(),
                    at: t,
                    events: track.recent.iter().map(|(_, id)| id.clone()).collect(),
                });
            }
        }
        out
    }
}

fn evict(tracks: &mut HashMap<(usize, DeviceId), Track>, rules: &RuleSet, now: OffsetDateTime) {
    tracks.retain(|(idx, _), tr| {
        rules
            .rules
            .get(*idx)
            .is_some_and(|r| now - tr.last <= r.condition.window())
    });
    if tracks.is_empty() {
        return;
    }
    let oldest = tracks
        .iter()
        .min_by_key(|(_, tr)| tr.last)
        .map(|(k, _)| k.clone());
    if let Some(k) = oldest {
        tracks.remove(&k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rules_parse() {
        let set = RuleSet::from_json(RuleSet::default_json()).unwrap();
        assert_eq!(set.rules().len(), 7);
        assert!(set.kev_rule().is_some());
        assert_eq!(RuleSet::default_set(), set);
    }

    fn err_path(json: &str) -> String {
        match RuleSet::from_json(json) {
            Err(PostmarketError::InvalidRules { path, .. }) => path,
            other => panic!("expected InvalidRules, got {other:?}"),
        }
    }

    #[test]
    fn rule_errors_are_located() {
        let thr = |count: u32| {
            format!(
                r#"{{"rules":[{{"id":"a","title":"t","severity":"low","condition":{{"kind":"threshold","event_type":"tamper","count":{count},"window_minutes":5}}}}]}}"#
            )
        };
        assert!(RuleSet::from_json(&thr(3)).is_ok());
        assert_eq!(err_path(&thr(0)), "rules[0].condition.count");
        let unknown = r#"{"rules":[{"id":"a","title":"t","severity":"low","condition":{"kind":"threshold","event_type":"tamper","count":3,"window_minutes":5,"oops":1}}]}"#;
        assert!(err_path(unknown).starts_with("line 1"));
        let dup = r#"{"rules":[
            {"id":"a","title":"t","severity":"low","condition":{"kind":"any","event_type":"tamper","cooldown_minutes":5}},
            {"id":"a","title":"t","severity":"low","condition":{"kind":"any","event_type":"tamper","cooldown_minutes":5}}]}"#;
        assert_eq!(err_path(dup), "rules[1].id");
        let win = r#"{"rules":[{"id":"a","title":"t","severity":"low","condition":{"kind":"config-outside-maintenance","utc_offset":"-05:00","windows":[{"day":"sunday","start":"04:00","end":"02:00"}],"cooldown_minutes":5}}]}"#;
        assert_eq!(err_path(win), "rules[0].condition.windows[0].end");
        let off = r#"{"rules":[{"id":"a","title":"t","severity":"low","condition":{"kind":"config-outside-maintenance","utc_offset":"EST","windows":[],"cooldown_minutes":5}}]}"#;
        assert_eq!(err_path(off), "rules[0].condition.utc_offset");
    }

    #[test]
    fn parses_offsets_and_times() {
        assert_eq!(
            parse_offset("p", "-05:30").unwrap(),
            UtcOffset::from_hms(-5, -30, 0).unwrap()
        );
        assert_eq!(parse_hhmm("p", "24:00").unwrap(), 1440);
        assert!(parse_hhmm("p", "24:01").is_err());
        assert!(parse_hhmm("p", "7:00").is_err());
    }
}
