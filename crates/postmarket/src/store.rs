//! The storage post-market surveillance needs, implemented by the back ends in `medsec-store`:
//! append-only device events deduplicated by device and event id, incidents with optimistic
//! versions, detection rules as versioned documents, CVD reports and advisories.

use async_trait::async_trait;
use medsec_core::{Actor, AuditRecord, DeviceId, DeviceModel, StoreError};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::cvd::{CvdReport, TrackingId};
use crate::event::{AttributedEvent, Event};
use crate::incident::{Incident, IncidentId};
use crate::rules::RuleId;

/// Which channel delivered an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventSource {
    /// A batch posted by the device itself over the mTLS gateway.
    Device,
    /// Syslog over TLS from a gateway speaking for the device.
    Syslog,
    /// Observed by the server itself (e.g. a revoked certificate in a handshake).
    Server,
}

impl EventSource {
    pub fn as_str(self) -> &'static str {
        match self {
            EventSource::Device => "device",
            EventSource::Syslog => "syslog",
            EventSource::Server => "server",
        }
    }

    pub fn parse(s: &str) -> Option<EventSource> {
        Some(match s {
            "device" => EventSource::Device,
            "syslog" => EventSource::Syslog,
            "server" => EventSource::Server,
            _ => return None,
        })
    }
}

/// An event as stored: attributed, numbered and stamped with its arrival.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Position in the append-only log, strictly increasing.
    pub seq: u64,
    pub device: DeviceId,
    pub source: EventSource,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    pub event: Event,
}

/// Which events to list; results are in `seq` order (newest first when `newest_first`).
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub device: Option<DeviceId>,
    /// Only events with `seq` greater than this (a cursor for paging forward).
    pub after_seq: Option<u64>,
    /// Only events received at or after this instant.
    pub received_since: Option<OffsetDateTime>,
    pub newest_first: bool,
    pub limit: u32,
}

/// One stored version of the detection rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredRules {
    pub version: u64,
    pub body: String,
    pub author: Actor,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// An incident with its optimistic-concurrency version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionedIncident {
    pub incident: Incident,
    pub version: u64,
}

/// A CVD report with its optimistic-concurrency version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionedReport {
    pub report: CvdReport,
    pub version: u64,
}

/// One stored version of an advisory's authoring state (JSON of `advisory::Advisory`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredAdvisory {
    pub id: String,
    pub version: u64,
    pub body: String,
    pub author: Actor,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

#[async_trait]
pub trait PostmarketStore: Send + Sync {
    /// Appends events in one transaction. An event whose (device, event id) is already stored,
    /// or repeats earlier in the same call, is skipped. Returns the positions in `events` of
    /// the ones stored, in order; the rules engine sees only those, so a replay adds nothing.
    async fn append_events(
        &self,
        source: EventSource,
        received_at: OffsetDateTime,
        events: &[AttributedEvent],
    ) -> Result<Vec<usize>, StoreError>;
    async fn events(&self, q: &EventQuery) -> Result<Vec<StoredEvent>, StoreError>;
    async fn count_events(&self, device: Option<&DeviceId>) -> Result<u64, StoreError>;
    /// Deletes events received before `before` (the retention horizon only moves forward;
    /// an earlier `before` than a previous purge deletes nothing). Returns how many went.
    async fn purge_events(
        &self,
        before: OffsetDateTime,
        audit: &AuditRecord,
    ) -> Result<u64, StoreError>;

    /// Stores a new version of the detection rules unless the current version differs from
    /// `expected` (`Conflict`). Returns the new version.
    async fn put_rules(
        &self,
        body: &str,
        expected: Option<u64>,
        author: &Actor,
        audit: &AuditRecord,
    ) -> Result<u64, StoreError>;
    async fn rules(&self) -> Result<Option<StoredRules>, StoreError>;

    /// Stores a new incident under a fresh id and returns it with that id. Refused
    /// (`Conflict`) when a rule-opened incident for the same rule and model is still open:
    /// the caller then attaches to that one. Manual incidents never conflict.
    async fn insert_incident(
        &self,
        incident: &Incident,
        audit: &AuditRecord,
    ) -> Result<VersionedIncident, StoreError>;
    /// Replaces an incident if its stored version is still `expected` (`Conflict` otherwise).
    /// Returns the new version.
    async fn update_incident(
        &self,
        incident: &Incident,
        expected: u64,
        audit: &AuditRecord,
    ) -> Result<u64, StoreError>;
    async fn incident(&self, id: IncidentId) -> Result<Option<VersionedIncident>, StoreError>;
    /// The open rule-opened incident for a rule and model, if any.
    async fn open_incident(
        &self,
        rule: &RuleId,
        model: &DeviceModel,
    ) -> Result<Option<VersionedIncident>, StoreError>;
    /// Incidents, newest first.
    async fn incidents(
        &self,
        open_only: bool,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<VersionedIncident>, StoreError>;

    async fn insert_report(
        &self,
        report: &CvdReport,
        audit: &AuditRecord,
    ) -> Result<(), StoreError>;
    async fn update_report(
        &self,
        report: &CvdReport,
        expected: u64,
        audit: &AuditRecord,
    ) -> Result<u64, StoreError>;
    async fn report(&self, id: &TrackingId) -> Result<Option<VersionedReport>, StoreError>;
    /// Reports, newest first.
    async fn reports(&self, limit: u32, offset: u64) -> Result<Vec<VersionedReport>, StoreError>;
    /// Reports received at or after `since` (the intake flood check across restarts).
    async fn count_reports_since(&self, since: OffsetDateTime) -> Result<u64, StoreError>;

    /// Stores a new version of an advisory unless its current version differs from
    /// `expected` (`None`: must not exist yet). Every version is kept.
    async fn put_advisory(
        &self,
        id: &str,
        body: &str,
        expected: Option<u64>,
        author: &Actor,
        audit: &AuditRecord,
    ) -> Result<u64, StoreError>;
    async fn advisory(&self, id: &str) -> Result<Option<StoredAdvisory>, StoreError>;
    /// The newest version of every advisory, by id.
    async fn advisories(&self) -> Result<Vec<StoredAdvisory>, StoreError>;
    /// Every version of one advisory, oldest first.
    async fn advisory_history(&self, id: &str) -> Result<Vec<StoredAdvisory>, StoreError>;
}
