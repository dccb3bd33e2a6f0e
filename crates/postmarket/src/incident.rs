//! Incidents: status workflow, timeline, affected devices and models, links to vulnerabilities
//! and risks, and the [`IncidentBook`] that turns detections into incidents.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use medsec_core::{Actor, DeviceId, DeviceModel};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::PostmarketError;
use crate::clock::{Obligation, RegulatoryClock};
use crate::event::EventId;
use crate::rules::{Detection, RuleId};

/// Incident number, unique within one store; rendered (and serialized) `INC-000042`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IncidentId(pub u64);

impl IncidentId {
    /// `INC-000042` or `42`.
    pub fn parse(s: &str) -> Result<IncidentId, PostmarketError> {
        s.strip_prefix("INC-")
            .unwrap_or(s)
            .parse::<u64>()
            .ok()
            .filter(|&n| n > 0)
            .map(IncidentId)
            .ok_or_else(|| PostmarketError::Invalid {
                what: "incident id",
                message: format!("{s:?} is not an incident id (INC-000001 or 1)"),
            })
    }
}

impl Serialize for IncidentId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IncidentId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            // Stored bodies written before ids were strings, and id 0 before the store
            // assigns one, are numbers.
            Raw::Num(n) => Ok(IncidentId(n)),
            Raw::Text(t) => IncidentId::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

impl fmt::Display for IncidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "INC-{:06}", self.0)
    }
}

/// Incident response phases (NIST SP 800-61 style), strictly in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IncidentStatus {
    New,
    Triage,
    Contained,
    Eradicated,
    Recovered,
    Closed,
}

impl IncidentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentStatus::New => "new",
            IncidentStatus::Triage => "triage",
            IncidentStatus::Contained => "contained",
            IncidentStatus::Eradicated => "eradicated",
            IncidentStatus::Recovered => "recovered",
            IncidentStatus::Closed => "closed",
        }
    }

    pub const ALL: [IncidentStatus; 6] = [
        IncidentStatus::New,
        IncidentStatus::Triage,
        IncidentStatus::Contained,
        IncidentStatus::Eradicated,
        IncidentStatus::Recovered,
        IncidentStatus::Closed,
    ];

    pub fn parse(s: &str) -> Result<Self, PostmarketError> {
        IncidentStatus::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| PostmarketError::Invalid {
                what: "incident status",
                message: format!(
                    "{s:?} is not one of new, triage, contained, eradicated, recovered, closed"
                ),
            })
    }

    /// Allowed moves: one step forward, or triage -> closed to dismiss a false positive
    /// without pretending it was contained and eradicated.
    pub fn can_move_to(self, to: IncidentStatus) -> bool {
        use IncidentStatus::*;
        matches!(
            (self, to),
            (New, Triage)
                | (Triage, Contained)
                | (Triage, Closed)
                | (Contained, Eradicated)
                | (Eradicated, Recovered)
                | (Recovered, Closed)
        )
    }
}

impl fmt::Display for IncidentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reference to a record kept elsewhere (a vulnerability id such as `CVE-2026-1234`, a risk
/// register id): 1..=64 of `[A-Za-z0-9._:-]`, so it can be shown and linked without escaping.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Reference(String);

impl Reference {
    pub fn parse(s: &str) -> Result<Self, PostmarketError> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        if ok {
            Ok(Reference(s.to_owned()))
        } else {
            Err(PostmarketError::Invalid {
                what: "reference",
                message: format!("{s:?} must be 1 to 64 of A-Z, a-z, 0-9, '.', '_', ':', '-'"),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Reference {
    type Error = PostmarketError;
    fn try_from(s: String) -> Result<Self, PostmarketError> {
        Reference::parse(&s)
    }
}

impl From<Reference> for String {
    fn from(v: Reference) -> String {
        v.0
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A human note on the timeline: 1..=4000 characters, no control characters except newlines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Note(String);

impl Note {
    pub fn parse(s: &str) -> Result<Self, PostmarketError> {
        if s.trim().is_empty() || s.len() > 4000 || s.chars().any(|c| c.is_control() && c != '\n') {
            return Err(PostmarketError::Invalid {
                what: "note",
                message: "must be 1 to 4000 characters without control characters".into(),
            });
        }
        Ok(Note(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Note {
    type Error = PostmarketError;
    fn try_from(s: String) -> Result<Self, PostmarketError> {
        Note::parse(&s)
    }
}

impl From<Note> for String {
    fn from(v: Note) -> String {
        v.0
    }
}

/// What a timeline entry records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum TimelineKind {
    /// A detection was attached (it opened or updated the incident).
    Detection {
        rule: RuleId,
        device: DeviceId,
        events: Vec<EventId>,
    },
    StatusChanged {
        from: IncidentStatus,
        to: IncidentStatus,
    },
    OwnerAssigned {
        owner: Actor,
    },
    VulnerabilityLinked {
        vulnerability: Reference,
    },
    RiskLinked {
        risk: Reference,
    },
    /// A response action taken or a finding, in words.
    Action {
        note: Note,
    },
    /// The reportability decision (each revision is kept here; the newest stands).
    ReportabilityDecided {
        decision: Reportability,
    },
    /// A reporting obligation was met (report filed, customers told, fix validated).
    ObligationMet {
        obligation: Obligation,
        note: Note,
    },
}

/// Whether an incident must be reported, under which obligations, and why. The clocks run
/// from `aware_at`, the time the manufacturer first became aware.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reportability {
    pub reportable: bool,
    pub obligations: BTreeSet<Obligation>,
    pub rationale: Note,
    #[serde(with = "time::serde::rfc3339")]
    pub aware_at: OffsetDateTime,
}

impl Reportability {
    /// A decision that holds together: a reportable incident names at least one obligation,
    /// a non-reportable one names none.
    pub fn new(
        reportable: bool,
        obligations: BTreeSet<Obligation>,
        rationale: Note,
        aware_at: OffsetDateTime,
    ) -> Result<Self, PostmarketError> {
        if reportable && obligations.is_empty() {
            return Err(PostmarketError::Invalid {
                what: "reportability decision",
                message: "a reportable incident needs at least one obligation".into(),
            });
        }
        if !reportable && !obligations.is_empty() {
            return Err(PostmarketError::Invalid {
                what: "reportability decision",
                message: "a non-reportable incident starts no clock; drop the obligations".into(),
            });
        }
        Ok(Reportability {
            reportable,
            obligations,
            rationale,
            aware_at: aware_at.to_offset(time::UtcOffset::UTC),
        })
    }
}

/// When an obligation was met.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObligationMet {
    pub obligation: Obligation,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// One dated, attributed timeline entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub by: Actor,
    pub what: TimelineKind,
}

/// One incident. Fields are read-only from outside so the timeline always records changes.
/// It deserializes without checks because only the store, which wrote it, reads it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    id: IncidentId,
    title: String,
    rule: RuleId,
    model: DeviceModel,
    status: IncidentStatus,
    owner: Option<Actor>,
    #[serde(with = "time::serde::rfc3339")]
    opened_at: OffsetDateTime,
    /// Keyed by URN because `DeviceId` has no order; the URN gives a stable listing order.
    devices: BTreeMap<String, DeviceId>,
    models: BTreeSet<DeviceModel>,
    vulnerabilities: BTreeSet<Reference>,
    risks: BTreeSet<Reference>,
    timeline: Vec<TimelineEntry>,
    #[serde(default)]
    reportability: Option<Reportability>,
    #[serde(default)]
    met: Vec<ObligationMet>,
}

/// Rule id of incidents opened by a person rather than by a detection rule.
pub const MANUAL_RULE: &str = "manual";

impl Incident {
    fn blank(title: String, rule: RuleId, model: DeviceModel, at: OffsetDateTime) -> Incident {
        Incident {
            id: IncidentId(0),
            title,
            rule,
            model,
            status: IncidentStatus::New,
            owner: None,
            opened_at: at,
            devices: BTreeMap::new(),
            models: BTreeSet::new(),
            vulnerabilities: BTreeSet::new(),
            risks: BTreeSet::new(),
            timeline: Vec::new(),
            reportability: None,
            met: Vec::new(),
        }
    }

    /// A new incident for a detection, numbered 0 until the store assigns its id.
    pub fn from_detection(d: &Detection) -> Incident {
        let mut inc = Incident::blank(
            d.title.clone(),
            d.rule.clone(),
            d.device.model.clone(),
            d.at,
        );
        inc.attach(d);
        inc
    }

    /// An incident opened by a person (from a CVD report, a finding, a complaint), numbered 0
    /// until the store assigns its id.
    pub fn open_manual(
        title: &str,
        model: DeviceModel,
        by: Actor,
        at: OffsetDateTime,
    ) -> Result<Incident, PostmarketError> {
        let title = title.trim();
        if title.is_empty() || title.len() > 200 || title.chars().any(char::is_control) {
            return Err(PostmarketError::Invalid {
                what: "incident title",
                message: "1-200 characters without control characters".into(),
            });
        }
        let rule = RuleId::parse(MANUAL_RULE)?;
        let mut inc = Incident::blank(title.to_string(), rule, model.clone(), at);
        inc.models.insert(model);
        inc.push(
            at,
            by,
            TimelineKind::Action {
                note: Note::parse("incident opened")?,
            },
        );
        Ok(inc)
    }

    /// The same incident under the id the store assigned.
    pub fn with_id(mut self, id: IncidentId) -> Incident {
        self.id = id;
        self
    }

    pub fn is_manual(&self) -> bool {
        self.rule.as_str() == MANUAL_RULE
    }

    pub fn id(&self) -> IncidentId {
        self.id
    }
    pub fn title(&self) -> &str {
        &self.title
    }
    pub fn rule(&self) -> &RuleId {
        &self.rule
    }
    pub fn model(&self) -> &DeviceModel {
        &self.model
    }
    pub fn status(&self) -> IncidentStatus {
        self.status
    }
    pub fn owner(&self) -> Option<&Actor> {
        self.owner.as_ref()
    }
    pub fn opened_at(&self) -> OffsetDateTime {
        self.opened_at
    }
    /// Affected devices, in URN order.
    pub fn devices(&self) -> impl Iterator<Item = &DeviceId> {
        self.devices.values()
    }
    pub fn models(&self) -> &BTreeSet<DeviceModel> {
        &self.models
    }
    pub fn vulnerabilities(&self) -> &BTreeSet<Reference> {
        &self.vulnerabilities
    }
    pub fn risks(&self) -> &BTreeSet<Reference> {
        &self.risks
    }
    pub fn timeline(&self) -> &[TimelineEntry] {
        &self.timeline
    }
    pub fn is_open(&self) -> bool {
        self.status != IncidentStatus::Closed
    }
    pub fn reportability(&self) -> Option<&Reportability> {
        self.reportability.as_ref()
    }
    /// The last timeline time: what "updated" means for listings.
    pub fn updated_at(&self) -> OffsetDateTime {
        self.timeline
            .iter()
            .map(|e| e.at)
            .max()
            .unwrap_or(self.opened_at)
    }

    /// Records the reportability decision. A revision may move the awareness time earlier,
    /// never later: the law counts from first awareness, so a later time would hide a lapse.
    pub fn decide_reportability(
        &mut self,
        decision: Reportability,
        by: Actor,
        at: OffsetDateTime,
    ) -> Result<(), PostmarketError> {
        if let Some(prev) = &self.reportability
            && decision.aware_at > prev.aware_at
        {
            return Err(PostmarketError::Invalid {
                what: "awareness time",
                message: format!(
                    "it was already recorded as {}; it can move earlier, not later",
                    prev.aware_at
                ),
            });
        }
        self.reportability = Some(decision.clone());
        self.push(at, by, TimelineKind::ReportabilityDecided { decision });
        Ok(())
    }

    /// Records that an obligation of the standing decision was met.
    pub fn mark_met(
        &mut self,
        obligation: Obligation,
        note: Note,
        by: Actor,
        at: OffsetDateTime,
    ) -> Result<(), PostmarketError> {
        let owed = self
            .reportability
            .as_ref()
            .is_some_and(|r| r.obligations.contains(&obligation));
        if !owed {
            return Err(PostmarketError::Invalid {
                what: "obligation",
                message: format!(
                    "{} is not an obligation of this incident's reportability decision",
                    obligation.as_str()
                ),
            });
        }
        if self.met.iter().any(|m| m.obligation == obligation) {
            return Err(PostmarketError::Invalid {
                what: "obligation",
                message: format!("{} is already recorded as met", obligation.as_str()),
            });
        }
        self.met.push(ObligationMet { obligation, at });
        self.push(at, by, TimelineKind::ObligationMet { obligation, note });
        Ok(())
    }

    /// The running and met clocks of the standing decision.
    pub fn clocks(&self) -> Result<Vec<RegulatoryClock>, PostmarketError> {
        let Some(r) = self.reportability.as_ref().filter(|r| r.reportable) else {
            return Ok(Vec::new());
        };
        r.obligations
            .iter()
            .map(|&obligation| {
                Ok(RegulatoryClock {
                    incident: self.id,
                    obligation,
                    aware_at: r.aware_at,
                    due: obligation.due(r.aware_at)?,
                    met_at: self
                        .met
                        .iter()
                        .find(|m| m.obligation == obligation)
                        .map(|m| m.at),
                })
            })
            .collect()
    }

    fn push(&mut self, at: OffsetDateTime, by: Actor, what: TimelineKind) {
        self.timeline.push(TimelineEntry { at, by, what });
    }

    /// Moves the incident along the workflow, refusing illegal transitions.
    pub fn transition(
        &mut self,
        to: IncidentStatus,
        by: Actor,
        at: OffsetDateTime,
    ) -> Result<(), PostmarketError> {
        if !self.status.can_move_to(to) {
            return Err(PostmarketError::IllegalTransition {
                from: self.status,
                to,
            });
        }
        let from = self.status;
        self.status = to;
        self.push(at, by, TimelineKind::StatusChanged { from, to });
        Ok(())
    }

    pub fn assign(&mut self, owner: Actor, by: Actor, at: OffsetDateTime) {
        self.owner = Some(owner.clone());
        self.push(at, by, TimelineKind::OwnerAssigned { owner });
    }

    /// Links a vulnerability; linking the same one twice adds nothing.
    pub fn link_vulnerability(&mut self, v: Reference, by: Actor, at: OffsetDateTime) {
        if self.vulnerabilities.insert(v.clone()) {
            self.push(
                at,
                by,
                TimelineKind::VulnerabilityLinked { vulnerability: v },
            );
        }
    }

    /// Links a risk register entry; linking the same one twice adds nothing.
    pub fn link_risk(&mut self, r: Reference, by: Actor, at: OffsetDateTime) {
        if self.risks.insert(r.clone()) {
            self.push(at, by, TimelineKind::RiskLinked { risk: r });
        }
    }

    /// Records a response action or finding.
    pub fn record_action(&mut self, note: Note, by: Actor, at: OffsetDateTime) {
        self.push(at, by, TimelineKind::Action { note });
    }

    /// Adds affected devices found outside a detection (e.g. every device running firmware
    /// with a KEV-listed vulnerability) without one timeline entry per device.
    pub fn add_devices(&mut self, devices: impl IntoIterator<Item = DeviceId>) {
        for d in devices {
            self.models.insert(d.model.clone());
            self.devices.insert(d.urn(), d);
        }
    }

    /// Marks another model affected (e.g. after triage shows shared firmware).
    pub fn add_model(&mut self, model: DeviceModel) {
        self.models.insert(model);
    }

    /// Adds a detection (its device, model and events) to the timeline.
    pub fn attach(&mut self, d: &Detection) {
        self.devices.insert(d.device.urn(), d.device.clone());
        self.models.insert(d.device.model.clone());
        self.push(
            d.at,
            Actor::system(),
            TimelineKind::Detection {
                rule: d.rule.clone(),
                device: d.device.clone(),
                events: d.events.clone(),
            },
        );
    }
}

/// Whether [`IncidentBook::record`] opened a new incident or updated an open one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    Opened(IncidentId),
    Updated(IncidentId),
}

impl Recorded {
    pub fn id(self) -> IncidentId {
        match self {
            Recorded::Opened(id) | Recorded::Updated(id) => id,
        }
    }
}

/// All incidents, with the index that groups detections: one open incident per rule+model.
#[derive(Debug, Clone, Default)]
pub struct IncidentBook {
    incidents: BTreeMap<IncidentId, Incident>,
    open: BTreeMap<(RuleId, DeviceModel), IncidentId>,
    next: u64,
}

impl IncidentBook {
    pub fn new() -> Self {
        IncidentBook::default()
    }

    /// Attaches a detection to the open incident for its rule and device model, or opens one.
    /// Grouping by model (not device) because a fleet-wide attack is one incident to manage.
    pub fn record(&mut self, d: &Detection) -> Recorded {
        let key = (d.rule.clone(), d.device.model.clone());
        if let Some(id) = self.open.get(&key).copied()
            && let Some(inc) = self.incidents.get_mut(&id)
            && inc.is_open()
        {
            inc.attach(d);
            return Recorded::Updated(id);
        }
        self.next += 1;
        let id = IncidentId(self.next);
        let inc = Incident::from_detection(d).with_id(id);
        self.incidents.insert(id, inc);
        self.open.insert(key, id);
        Recorded::Opened(id)
    }

    pub fn get(&self, id: IncidentId) -> Option<&Incident> {
        self.incidents.get(&id)
    }

    pub fn get_mut(&mut self, id: IncidentId) -> Option<&mut Incident> {
        self.incidents.get_mut(&id)
    }

    /// Changes status through the book so the open-incident index stays right on close.
    pub fn transition(
        &mut self,
        id: IncidentId,
        to: IncidentStatus,
        by: Actor,
        at: OffsetDateTime,
    ) -> Result<(), PostmarketError> {
        let inc = self
            .incidents
            .get_mut(&id)
            .ok_or_else(|| PostmarketError::UnknownIncident(id.to_string()))?;
        inc.transition(to, by, at)?;
        if !inc.is_open() {
            self.open.retain(|_, v| *v != id);
        }
        Ok(())
    }

    pub fn incidents(&self) -> impl Iterator<Item = &Incident> {
        self.incidents.values()
    }

    pub fn open_incidents(&self) -> impl Iterator<Item = &Incident> {
        self.incidents.values().filter(|i| i.is_open())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Severity;
    use medsec_core::DeviceSerial;
    use time::macros::datetime;

    fn det(model: &str, serial: &str, rule: &str) -> Detection {
        Detection {
            rule: RuleId::parse(rule).unwrap(),
            title: "t".into(),
            severity: Severity::High,
            device: DeviceId::new(
                DeviceModel::parse(model).unwrap(),
                DeviceSerial::parse(serial).unwrap(),
            ),
            at: datetime!(2026-03-01 10:00 UTC),
            events: vec![EventId::parse("e1").unwrap()],
        }
    }

    #[test]
    fn workflow_is_enforced() {
        let mut book = IncidentBook::new();
        let id = book.record(&det("pump", "1", "tamper")).id();
        let who = Actor::parse("api:alice").unwrap();
        let at = datetime!(2026-03-01 11:00 UTC);
        let err = book
            .transition(id, IncidentStatus::Contained, who.clone(), at)
            .unwrap_err();
        assert!(matches!(
            err,
            PostmarketError::IllegalTransition {
                from: IncidentStatus::New,
                to: IncidentStatus::Contained
            }
        ));
        for s in [
            IncidentStatus::Triage,
            IncidentStatus::Contained,
            IncidentStatus::Eradicated,
            IncidentStatus::Recovered,
            IncidentStatus::Closed,
        ] {
            book.transition(id, s, who.clone(), at).unwrap();
        }
        assert!(book.transition(id, IncidentStatus::New, who, at).is_err());
        assert_eq!(book.open_incidents().count(), 0);
    }

    #[test]
    fn groups_by_rule_and_model_and_reopens_after_close() {
        let mut book = IncidentBook::new();
        let a = book.record(&det("pump", "1", "tamper"));
        let b = book.record(&det("pump", "2", "tamper"));
        let c = book.record(&det("monitor", "1", "tamper"));
        let d = book.record(&det("pump", "1", "other"));
        assert!(matches!(a, Recorded::Opened(_)));
        assert_eq!(b, Recorded::Updated(a.id()));
        assert!(matches!(c, Recorded::Opened(_)));
        assert!(matches!(d, Recorded::Opened(_)));
        let inc = book.get(a.id()).unwrap();
        assert_eq!(inc.devices().count(), 2);
        assert_eq!(inc.timeline().len(), 2);
        assert_eq!(a.id().to_string(), "INC-000001");

        let who = Actor::parse("api:alice").unwrap();
        let at = datetime!(2026-03-02 10:00 UTC);
        book.transition(a.id(), IncidentStatus::Triage, who.clone(), at)
            .unwrap();
        book.transition(a.id(), IncidentStatus::Closed, who, at)
            .unwrap();
        let e = book.record(&det("pump", "1", "tamper"));
        assert!(matches!(e, Recorded::Opened(id) if id != a.id()));
    }

    #[test]
    fn links_and_actions_go_on_the_timeline() {
        let mut book = IncidentBook::new();
        let id = book.record(&det("pump", "1", "tamper")).id();
        let who = Actor::parse("api:bob").unwrap();
        let at = datetime!(2026-03-02 10:00 UTC);
        let inc = book.get_mut(id).unwrap();
        inc.assign(who.clone(), who.clone(), at);
        let cve = Reference::parse("CVE-2026-12345").unwrap();
        inc.link_vulnerability(cve.clone(), who.clone(), at);
        inc.link_vulnerability(cve, who.clone(), at);
        inc.link_risk(Reference::parse("R-7").unwrap(), who.clone(), at);
        inc.record_action(Note::parse("isolated VLAN").unwrap(), who.clone(), at);
        assert_eq!(inc.owner(), Some(&who));
        assert_eq!(inc.vulnerabilities().len(), 1);
        assert_eq!(inc.timeline().len(), 5);
        assert!(Reference::parse("bad ref").is_err());
        assert!(Note::parse("  ").is_err());
    }
}
