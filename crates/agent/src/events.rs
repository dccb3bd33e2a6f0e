//! Security events the device reports to the server (`POST /device/v1/events` on the mTLS
//! device gateway), through a durable spool so that no outage, crash or reboot loses one.
//!
//! * [`EventReporter::record`] checks an event with the server's own parser
//!   ([`medsec_postmarket::parse_batch`]), gives it a random 128-bit id and appends it to the
//!   spool, fsynced, before it returns: an event `record` accepted survives a crash.
//! * [`EventReporter::flush`] posts the spool in batches (at most [`MAX_BATCH_EVENTS`] events
//!   and [`MAX_BATCH_BYTES`]) and removes exactly the events of each batch the server answered
//!   200 for. The server ignores an event id it already holds for the device, so a batch whose
//!   answer was lost is simply sent again: at least once on the wire, exactly once in the
//!   server's store. A network error, a timeout or a 5xx keeps everything for the next flush;
//!   a 400 or 413 splits the batch until the offending event is alone, and that one moves to
//!   the `rejected` file with the server's explanation, so one bad event cannot block the queue.
//!
//! Files in `<state dir>/events/` (directory 0700, files 0600: events say things about the
//! device's security that an attacker would like to read):
//!
//! * `spool.jsonl`: a header line (`{"spool":1,"dropped_pending":n,"dropped_total":n}`), then
//!   one event per line in the wire form. A new event is appended and fsynced; every other
//!   change (acknowledged events removed, eviction, repair) rewrites the file through a
//!   temporary file, fsync and rename. So a crash leaves at most a torn last line, which no
//!   `record` reported as stored and which the next writer cuts off; a line that cannot be
//!   read at all is moved to `rejected.jsonl` rather than blocking the spool.
//! * `rejected.jsonl`: events the server refused (or spool lines that could not be read), with
//!   the status and the server's detail; bounded, oldest lines go first.
//! * `last-flush.json`: when the last flush ran and how it went.
//! * `lock`: an advisory lock serializing every process that touches the spool (the CLI and a
//!   long-running agent may both); held for file operations only, never across the network.
//! * `flush.lock`: held for a whole flush, so two flushes do not post the same batches.
//!
//! Bounds ([`SpoolLimits`]): when a new event does not fit, spooled info and low events are
//! dropped first, oldest first, then medium ones; high and critical events never, and never an
//! event more severe than the one being recorded (a burst of low events must not push out a
//! medium one). Eviction goes down to three quarters of the limits, so that a flood of events
//! while the server is unreachable costs one spool rewrite per quarter of the spool rather
//! than one per event (flash wear). An event that still does not fit is refused with
//! [`AgentError::SpoolFull`]. How many events were dropped travels to the server as detail
//! [`DROPPED_DETAIL`] on the next event recorded, so the gap is visible there.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use medsec_postmarket::{PostmarketError, parse_batch};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub use medsec_postmarket::{EventType, Severity};

use crate::AgentError;
use crate::config::AgentConfig;
use crate::state::write_atomic;
use crate::transport::Reply;
use crate::update::gateway::{Gateway, problem_detail, refused_by_server};

/// Events per batch. The server takes up to 1,000; smaller batches keep a retried or split
/// batch cheap on a slow link.
pub const MAX_BATCH_EVENTS: usize = 100;
/// Bytes per batch body: the server's limit (`MAX_BATCH_BYTES` of the post-market API).
pub const MAX_BATCH_BYTES: usize = 512 * 1024;
/// The detail that tells the server how many events the spool dropped before this one.
pub const DROPPED_DETAIL: &str = "agent.events_dropped";

const EVENTS_PATH: &str = "/device/v1/events";
const OP: &str = "sending security events";
const SPOOL_FORMAT: u32 = 1;
const DIR: &str = "events";
const SPOOL: &str = "spool.jsonl";
const REJECTED: &str = "rejected.jsonl";
const LAST_FLUSH: &str = "last-flush.json";
const LOCK: &str = "lock";
const FLUSH_LOCK: &str = "flush.lock";
/// The rejected file is kept below this; older entries go first.
const MAX_REJECTED_BYTES: u64 = 1024 * 1024;
/// A spool line that cannot be read is kept in the rejected file up to this length.
const MAX_RAW_LINE: usize = 64 * 1024;
/// No file of ours gets near this (the spool is bounded far below): a larger one is refused
/// unread instead of exhausting the device's memory.
const MAX_FILE_READ: u64 = 64 * 1024 * 1024;
/// The largest events file `spool_batch` takes in one go.
pub const MAX_SEND_FILE: u64 = 16 * 1024 * 1024;

/// How much the spool may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SpoolLimits {
    pub max_events: usize,
    /// Size of `spool.jsonl`, header included.
    pub max_bytes: u64,
}

impl Default for SpoolLimits {
    /// 5,000 events or 1 MiB: weeks of a busy device's events, a fraction of its storage.
    fn default() -> Self {
        SpoolLimits {
            max_events: 5_000,
            max_bytes: 1024 * 1024,
        }
    }
}

/// An event to record; the id is assigned by [`EventReporter::record`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NewEvent {
    pub event_type: EventType,
    pub severity: Severity,
    /// Who made the change: required for `config-changed`, refused for every other type.
    pub by: Option<String>,
    pub details: BTreeMap<String, String>,
    /// When it happened; `None` for the moment it is recorded.
    pub time: Option<OffsetDateTime>,
}

impl NewEvent {
    pub fn new(event_type: EventType, severity: Severity) -> Self {
        NewEvent {
            event_type,
            severity,
            by: None,
            details: BTreeMap::new(),
            time: None,
        }
    }

    pub fn by(mut self, actor: impl Into<String>) -> Self {
        self.by = Some(actor.into());
        self
    }

    pub fn detail(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.details.insert(key.into(), value.into());
        self
    }

    pub fn at(mut self, time: OffsetDateTime) -> Self {
        self.time = Some(time);
        self
    }

    /// Checks the event against the server's rules without recording it (the id is a
    /// placeholder of the form the reporter assigns).
    pub fn validate(&self) -> Result<(), AgentError> {
        self.to_wire("0".repeat(32)).and_then(|w| validate_one(&w))
    }

    fn to_wire(&self, id: String) -> Result<WireEvent, AgentError> {
        let time = self
            .time
            .unwrap_or_else(OffsetDateTime::now_utc)
            .format(&Rfc3339)
            .map_err(|e| AgentError::InvalidEvent(format!("time: not representable: {e}")))?;
        Ok(WireEvent {
            id,
            time,
            event_type: self.event_type.as_str().to_owned(),
            by: self.by.clone(),
            severity: self.severity.as_str().to_owned(),
            details: self.details.clone(),
        })
    }
}

/// One event as the server takes it and the spool stores it. `parse_batch` decides what is
/// valid; this only carries the fields, so what is sent is what was checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireEvent {
    id: String,
    time: String,
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    by: Option<String>,
    severity: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    details: BTreeMap<String, String>,
}

/// What [`EventReporter::record`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Recorded {
    /// The event's id (32 hex digits), unique for this device for good.
    pub id: String,
    /// Older events dropped to make room for this one.
    pub dropped: u64,
}

/// What [`EventReporter::spool_batch`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Spooled {
    /// Ids of the events added to the spool.
    pub spooled: Vec<String>,
    /// Events whose id was already in the spool (sending the same file twice).
    pub already_spooled: usize,
    /// Older events dropped to make room.
    pub dropped: u64,
}

/// An incident the server opened or updated because of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IncidentTouch {
    pub incident: String,
    pub rule: String,
    pub opened: bool,
}

/// What a flush did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FlushReport {
    /// Requests posted (a split batch counts each part).
    pub batches: usize,
    /// Events the server acknowledged (stored now or before) and so left the spool.
    pub delivered: usize,
    /// Of those, stored by this flush, as the server counted.
    pub accepted: u64,
    /// Of those, already stored (a retry after a lost answer), as the server counted.
    pub duplicates: u64,
    /// Events the server refused, moved to the rejected file.
    pub rejected: usize,
    /// Events still spooled afterwards.
    pub remaining: usize,
    pub incidents: Vec<IncidentTouch>,
}

/// The outcome of the last flush, as `last-flush.json` keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LastFlush {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Why the flush stopped early; `None` when it went through the whole spool.
    pub error: Option<String>,
    #[serde(flatten)]
    pub report: FlushReport,
}

/// The spool's state, without asking the server.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct EventStatus {
    pub dir: PathBuf,
    pub spooled: usize,
    pub spool_bytes: u64,
    /// Spooled events by severity name.
    pub by_severity: BTreeMap<String, usize>,
    /// Entries in the rejected file.
    pub rejected: usize,
    /// Events the spool has dropped for room, ever.
    pub dropped_total: u64,
    /// Dropped events not yet reported on a recorded event.
    pub dropped_pending: u64,
    pub limits: SpoolLimits,
    pub last_flush: Option<LastFlush>,
}

/// Records security events durably and delivers them over the device gateway.
#[derive(Debug, Clone)]
pub struct EventReporter {
    cfg: AgentConfig,
    dir: PathBuf,
    limits: SpoolLimits,
}

impl EventReporter {
    /// A reporter for the agent's state directory; nothing is touched until an operation runs.
    pub fn new(cfg: AgentConfig) -> Self {
        EventReporter {
            dir: cfg.state_dir.join(DIR),
            cfg,
            limits: SpoolLimits::default(),
        }
    }

    pub fn with_limits(mut self, limits: SpoolLimits) -> Self {
        self.limits = limits;
        self
    }

    /// `<state dir>/events`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file refused events are moved to.
    pub fn rejected_path(&self) -> PathBuf {
        self.dir.join(REJECTED)
    }

    /// Validates `event`, gives it a fresh id and appends it to the spool (fsynced).
    pub fn record(&self, event: NewEvent) -> Result<Recorded, AgentError> {
        let wire = event.to_wire(new_id()?)?;
        validate_one(&wire)?;
        let id = wire.id.clone();
        let out = self.spool(vec![wire])?;
        Ok(Recorded {
            id,
            dropped: out.dropped,
        })
    }

    /// Validates a JSON array of events in the wire form (ids included: they are what makes
    /// sending the same file again harmless) and spools them, all or none.
    pub fn spool_batch(&self, json: &[u8]) -> Result<Spooled, AgentError> {
        parse_batch(json, usize::MAX, json.len()).map_err(|e| match e {
            PostmarketError::InvalidBatch { path, message } => {
                AgentError::InvalidEvent(format!("at {path}: {message}"))
            }
            other => AgentError::InvalidEvent(other.to_string()),
        })?;
        let events: Vec<WireEvent> = serde_json::from_slice(json)
            .map_err(|e| AgentError::InvalidEvent(format!("not an array of events: {e}")))?;
        for (i, e) in events.iter().enumerate() {
            line_of(e).map_err(|e| match e {
                AgentError::InvalidEvent(m) => AgentError::InvalidEvent(format!("at [{i}]: {m}")),
                other => other,
            })?;
        }
        self.spool(events)
    }

    /// Sends the spooled events. Each batch the server acknowledged leaves the spool at once,
    /// so an error part-way (returned as the error) loses nothing and repeats nothing but the
    /// batch in flight. Refused events are moved to the rejected file and counted in
    /// [`FlushReport::rejected`].
    pub async fn flush(&self) -> Result<FlushReport, AgentError> {
        self.flush_to(|| self.gateway()).await
    }

    /// The device gateway, authenticated with the current certificate.
    fn gateway(&self) -> Result<Gateway, AgentError> {
        let pem = fs::read(&self.cfg.trust_root_pem)
            .map_err(|e| AgentError::io("reading trust root", &self.cfg.trust_root_pem, e))?;
        let roots =
            crate::transport::roots_from_pem(&pem, &self.cfg.trust_root_pem.display().to_string())?;
        Gateway::open(&self.cfg, Arc::new(roots))
    }

    /// A flush to the sink `open` returns, opened only when there is something to send (so
    /// an empty spool needs neither enrollment nor network).
    async fn flush_to<S: Sink>(
        &self,
        open: impl FnOnce() -> Result<S, AgentError>,
    ) -> Result<FlushReport, AgentError> {
        // Nothing was ever recorded; and a mistyped state directory is not created.
        if !self.dir.exists() {
            return Ok(FlushReport::default());
        }
        let _busy = self.flush_lock()?;
        let mut report = FlushReport::default();
        let result = async {
            let pending = self.snapshot()?;
            if pending.is_empty() {
                return Ok(());
            }
            let sink = open()?;
            self.send(&sink, pending, &mut report).await
        }
        .await;
        self.finish_flush(report, result)
    }

    /// The spool's state.
    pub fn status(&self) -> Result<EventStatus, AgentError> {
        let (spool, rejected) = if self.dir.exists() {
            let _lock = self.lock(false)?;
            let spool = self.load()?;
            let rejected = match read_capped(&self.dir.join(REJECTED))? {
                Some(b) => b.split(|c| *c == b'\n').filter(|l| !l.is_empty()).count(),
                None => 0,
            };
            (spool, rejected)
        } else {
            (Spool::default(), 0)
        };
        let mut by_severity = BTreeMap::new();
        for e in &spool.entries {
            *by_severity
                .entry(e.severity.as_str().to_owned())
                .or_insert(0) += 1;
        }
        let last_flush = match read_capped(&self.dir.join(LAST_FLUSH))? {
            // Informational only: a damaged file is shown as no flush rather than an error.
            Some(b) => serde_json::from_slice(&b).ok(),
            None => None,
        };
        Ok(EventStatus {
            dir: self.dir.clone(),
            spooled: spool.entries.len(),
            spool_bytes: spool.bytes(),
            by_severity,
            rejected,
            dropped_total: spool.header.dropped_total,
            dropped_pending: spool.header.dropped_pending,
            limits: self.limits,
            last_flush,
        })
    }

    // ---- spooling ----

    /// Adds events to the spool, all or none: makes room, attaches the pending dropped
    /// count, appends (or rewrites when anything else changed).
    fn spool(&self, events: Vec<WireEvent>) -> Result<Spooled, AgentError> {
        let _lock = self.lock(true)?;
        let mut sp = self.load()?;
        // The repair is committed on its own, so that a refusal below cannot leave lines
        // already copied to the rejected file in the spool (to be copied again next time).
        if self.quarantine_unreadable(&mut sp)? {
            self.write_spool(&sp)?;
            sp.exists = true;
        }
        let mut rewrite = false;
        let mut ids: HashSet<String> = sp.entries.iter().map(|e| e.id.clone()).collect();
        let mut out = Spooled::default();
        // Entries before this index were spooled earlier; eviction only ever takes from them.
        let mut old = sp.entries.len();
        let mut header = sp.header.clone();
        for mut ev in events {
            if !ids.insert(ev.id.clone()) {
                out.already_spooled += 1;
                continue;
            }
            let severity = severity_of(&ev.severity).ok_or_else(|| {
                AgentError::InvalidEvent(format!("severity {:?} is unknown", ev.severity))
            })?;
            // Room for the event as it will be written: the dropped-count detail it may get
            // (`,"details":{"agent.events_dropped":"<u64>"}` at most) and the header's
            // counters growing by a digit or two.
            let reserve = 128;
            let header_len = header_len(&header);
            let evicted = make_room(
                &mut sp.entries,
                old,
                line_of(&ev)?.len() + 1 + reserve,
                severity,
                header_len,
                self.limits,
            )?;
            for gone in &evicted {
                header.dropped_total += 1;
                // A dropped event that carried a count passes it on, so the total survives.
                header.dropped_pending += 1 + carried_count(&gone.line);
                out.dropped += 1;
            }
            if !evicted.is_empty() {
                old -= evicted.len();
                rewrite = true;
            }
            if header.dropped_pending > 0
                && ev.details.len() < medsec_postmarket::event::MAX_DETAILS
                && !ev.details.contains_key(DROPPED_DETAIL)
            {
                ev.details.insert(
                    DROPPED_DETAIL.to_owned(),
                    header.dropped_pending.to_string(),
                );
                header.dropped_pending = 0;
            }
            let line = line_of(&ev)?;
            out.spooled.push(ev.id.clone());
            sp.entries.push(Entry {
                id: ev.id,
                severity,
                line,
            });
        }
        if header != sp.header {
            rewrite = true;
            sp.header = header;
        }
        if rewrite || !sp.exists {
            self.write_spool(&sp)?;
        } else if sp.entries.len() > old {
            self.append(&sp.entries[old..])?;
        }
        Ok(out)
    }

    /// Moves lines that could not be read into the rejected file; whether the spool must be
    /// rewritten (to cut them, a torn tail, or a missing header).
    fn quarantine_unreadable(&self, sp: &mut Spool) -> Result<bool, AgentError> {
        let dirty = sp.dirty || !sp.header_ok || !sp.unreadable.is_empty();
        if !sp.unreadable.is_empty() {
            let at = now_text();
            let records: Vec<RejectedRecord> = std::mem::take(&mut sp.unreadable)
                .into_iter()
                .map(|raw| RejectedRecord {
                    at: at.clone(),
                    status: None,
                    detail: "unreadable spool entry".into(),
                    event: serde_json::from_str(&raw).ok(),
                    raw: Some(raw.chars().take(MAX_RAW_LINE).collect()),
                })
                .collect();
            self.append_rejected(&records)?;
        }
        Ok(dirty)
    }

    fn append(&self, entries: &[Entry]) -> Result<(), AgentError> {
        let path = self.dir.join(SPOOL);
        let mut data = String::new();
        for e in entries {
            data.push_str(&e.line);
            data.push('\n');
        }
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| AgentError::io("opening", &path, e))?;
        f.write_all(data.as_bytes())
            .and_then(|()| f.sync_data())
            .map_err(|e| AgentError::io("appending to", &path, e))
    }

    fn write_spool(&self, sp: &Spool) -> Result<(), AgentError> {
        write_atomic(&self.dir.join(SPOOL), sp.render()?.as_bytes(), 0o600)
    }

    /// Reads the spool as it is on disk (under the lock). Missing file: empty spool.
    fn load(&self) -> Result<Spool, AgentError> {
        let Some(data) = read_capped(&self.dir.join(SPOOL))? else {
            return Ok(Spool::default());
        };
        Ok(Spool::parse(&data))
    }

    // ---- flushing ----

    /// The events to send, after cutting anything unreadable out of the spool.
    fn snapshot(&self) -> Result<Vec<Entry>, AgentError> {
        if !self.dir.join(SPOOL).exists() {
            return Ok(Vec::new());
        }
        let _lock = self.lock(true)?;
        let mut sp = self.load()?;
        if self.quarantine_unreadable(&mut sp)? {
            self.write_spool(&sp)?;
        }
        Ok(sp.entries)
    }

    async fn send<S: Sink>(
        &self,
        sink: &S,
        pending: Vec<Entry>,
        report: &mut FlushReport,
    ) -> Result<(), AgentError> {
        let mut queue = batches(pending);
        while let Some(batch) = queue.pop_front() {
            report.batches += 1;
            let reply = sink.post(body(&batch)).await?;
            match reply.status {
                200 => {
                    // 200 means every event of the batch is stored, now or before; the counts
                    // are only for the report, so an unexpected body does not keep the events.
                    if let Ok(r) = serde_json::from_slice::<IngestReply>(&reply.body) {
                        report.accepted += r.accepted;
                        report.duplicates += r.duplicates;
                        report.incidents.extend(r.incidents);
                    }
                    report.delivered += batch.len();
                    self.remove(&batch, None)?;
                }
                400 | 413 if batch.len() > 1 => {
                    // Something in the batch is refused, or it is too large for this server:
                    // halve it until the offending event is alone.
                    let mut first = batch;
                    let second = first.split_off(first.len() / 2);
                    queue.push_front(second);
                    queue.push_front(first);
                }
                400 | 413 => {
                    self.remove(&batch, Some((reply.status, problem_detail(&reply.body))))?;
                    report.rejected += 1;
                }
                status => return Err(refused_by_server(OP, status, &reply.body)),
            }
        }
        Ok(())
    }

    /// Takes the events of `batch` out of the spool (by id: events recorded meanwhile stay);
    /// with `refusal`, first into the rejected file.
    fn remove(&self, batch: &[Entry], refusal: Option<(u16, String)>) -> Result<(), AgentError> {
        let _lock = self.lock(true)?;
        if let Some((status, detail)) = refusal {
            let at = now_text();
            let records: Vec<RejectedRecord> = batch
                .iter()
                .map(|e| RejectedRecord {
                    at: at.clone(),
                    status: Some(status),
                    detail: detail.clone(),
                    event: serde_json::from_str(&e.line).ok(),
                    raw: None,
                })
                .collect();
            self.append_rejected(&records)?;
        }
        let gone: HashSet<&str> = batch.iter().map(|e| e.id.as_str()).collect();
        let mut sp = self.load()?;
        self.quarantine_unreadable(&mut sp)?;
        sp.entries.retain(|e| !gone.contains(e.id.as_str()));
        self.write_spool(&sp)
    }

    fn finish_flush(
        &self,
        mut report: FlushReport,
        result: Result<(), AgentError>,
    ) -> Result<FlushReport, AgentError> {
        // Best effort from here: the flush's own outcome is what the caller must see.
        report.remaining = self.status().map(|s| s.spooled).unwrap_or(0);
        let last = LastFlush {
            at: OffsetDateTime::now_utc(),
            error: result.as_ref().err().map(|e| e.to_string()),
            report: report.clone(),
        };
        if self.dir.exists()
            && let Ok(json) = serde_json::to_vec_pretty(&last)
        {
            let _ = write_atomic(&self.dir.join(LAST_FLUSH), &json, 0o600);
        }
        result.map(|()| report)
    }

    // ---- files and locks ----

    fn create_dir(&self) -> Result<(), AgentError> {
        let mut b = fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(&self.dir)
            .map_err(|e| AgentError::io("creating", &self.dir, e))
    }

    fn open_lock_file(&self, name: &str) -> Result<fs::File, AgentError> {
        self.create_dir()?;
        let path = self.dir.join(name);
        let mut opts = fs::OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        opts.open(&path)
            .map_err(|e| AgentError::io("opening", &path, e))
    }

    /// The spool lock, released when the returned file is dropped.
    fn lock(&self, exclusive: bool) -> Result<fs::File, AgentError> {
        let f = self.open_lock_file(LOCK)?;
        let r = if exclusive { f.lock() } else { f.lock_shared() };
        r.map_err(|e| AgentError::io("locking", &self.dir.join(LOCK), e))?;
        Ok(f)
    }

    fn flush_lock(&self) -> Result<fs::File, AgentError> {
        let f = self.open_lock_file(FLUSH_LOCK)?;
        match f.try_lock() {
            Ok(()) => Ok(f),
            Err(fs::TryLockError::WouldBlock) => Err(AgentError::State {
                dir: self.dir.clone(),
                reason: "another flush of the event spool is running".into(),
            }),
            Err(fs::TryLockError::Error(e)) => {
                Err(AgentError::io("locking", &self.dir.join(FLUSH_LOCK), e))
            }
        }
    }

    /// Appends to the rejected file (fsynced), first cutting its oldest entries if it would
    /// outgrow its bound.
    fn append_rejected(&self, records: &[RejectedRecord]) -> Result<(), AgentError> {
        let path = self.dir.join(REJECTED);
        let mut data = String::new();
        for r in records {
            let line = serde_json::to_string(r)
                .map_err(|e| AgentError::Config(format!("rejected event record: {e}")))?;
            data.push_str(&line);
            data.push('\n');
        }
        let old_len = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if old_len + data.len() as u64 > MAX_REJECTED_BYTES {
            // Keep the newest half that fits with the new entries.
            let old = read_capped(&path)?.unwrap_or_default();
            let text = String::from_utf8_lossy(&old);
            let budget = (MAX_REJECTED_BYTES / 2).saturating_sub(data.len() as u64);
            let mut kept: Vec<&str> = Vec::new();
            let mut size = 0u64;
            for line in text.lines().rev().filter(|l| !l.is_empty()) {
                size += line.len() as u64 + 1;
                if size > budget {
                    break;
                }
                kept.push(line);
            }
            let mut all: String = kept.iter().rev().map(|l| format!("{l}\n")).collect();
            all.push_str(&data);
            return write_atomic(&path, all.as_bytes(), 0o600);
        }
        let mut opts = fs::OpenOptions::new();
        opts.append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts
            .open(&path)
            .map_err(|e| AgentError::io("opening", &path, e))?;
        f.write_all(data.as_bytes())
            .and_then(|()| f.sync_data())
            .map_err(|e| AgentError::io("appending to", &path, e))
    }
}

/// Where batches go: the device gateway, or a fake in the tests.
pub(crate) trait Sink {
    async fn post(&self, body: Vec<u8>) -> Result<Reply, AgentError>;
}

impl Sink for Gateway {
    async fn post(&self, body: Vec<u8>) -> Result<Reply, AgentError> {
        self.post_json(EVENTS_PATH, body).await
    }
}

#[derive(Deserialize)]
struct IngestReply {
    accepted: u64,
    duplicates: u64,
    #[serde(default)]
    incidents: Vec<IncidentTouch>,
}

#[derive(Debug, Serialize, Deserialize)]
struct RejectedRecord {
    at: String,
    /// The server's status; `None` for a spool line the agent itself could not read.
    status: Option<u16>,
    detail: String,
    event: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    raw: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    spool: u32,
    dropped_pending: u64,
    dropped_total: u64,
}

impl Default for Header {
    fn default() -> Self {
        Header {
            spool: SPOOL_FORMAT,
            dropped_pending: 0,
            dropped_total: 0,
        }
    }
}

/// One spooled event: the line as stored (without its newline), and what the spool needs.
#[derive(Debug, Clone)]
struct Entry {
    id: String,
    severity: Severity,
    line: String,
}

/// The spool file, read.
#[derive(Debug, Default)]
struct Spool {
    header: Header,
    entries: Vec<Entry>,
    /// Complete lines that are not events (to be quarantined).
    unreadable: Vec<String>,
    /// A torn last line (the file did not end in a newline) or blank lines: rewrite to clean.
    dirty: bool,
    /// The first line is a valid header; without one the next write rewrites the file.
    header_ok: bool,
    exists: bool,
}

impl Spool {
    fn parse(data: &[u8]) -> Spool {
        let mut sp = Spool {
            exists: true,
            ..Spool::default()
        };
        let mut lines: Vec<&[u8]> = data.split(|c| *c == b'\n').collect();
        // `split` yields an empty last piece after a final newline; anything else there is the
        // part of an append a crash interrupted, never reported as stored.
        if let Some(last) = lines.pop() {
            sp.dirty = !last.is_empty();
        }
        for (i, raw) in lines.into_iter().enumerate() {
            if i == 0
                && let Ok(h) = serde_json::from_slice::<Header>(raw)
                && h.spool == SPOOL_FORMAT
            {
                sp.header = h;
                sp.header_ok = true;
                continue;
            }
            if raw.is_empty() {
                // Nothing lost; the rewrite this forces drops it.
                sp.dirty = true;
                continue;
            }
            match Entry::parse(raw) {
                Some(e) => sp.entries.push(e),
                None => sp
                    .unreadable
                    .push(String::from_utf8_lossy(raw).into_owned()),
            }
        }
        sp
    }

    fn bytes(&self) -> u64 {
        if !self.exists && self.entries.is_empty() {
            return 0;
        }
        (header_len(&self.header) + self.entries.iter().map(|e| e.line.len() + 1).sum::<usize>())
            as u64
    }

    fn render(&self) -> Result<String, AgentError> {
        let mut s = serde_json::to_string(&self.header)
            .map_err(|e| AgentError::Config(format!("spool header: {e}")))?;
        s.push('\n');
        for e in &self.entries {
            s.push_str(&e.line);
            s.push('\n');
        }
        Ok(s)
    }
}

impl Entry {
    fn parse(raw: &[u8]) -> Option<Entry> {
        let line = std::str::from_utf8(raw).ok()?;
        let w: WireEvent = serde_json::from_str(line).ok()?;
        Some(Entry {
            severity: severity_of(&w.severity)?,
            id: w.id,
            line: line.to_owned(),
        })
    }
}

/// The header line's length, newline included.
fn header_len(h: &Header) -> usize {
    serde_json::to_string(h).map_or(80, |h| h.len() + 1)
}

/// Drops spooled events (never those from `protect_from` on: the ones being added now) until
/// an event of `new_len` bytes and `severity` fits, going down to three quarters of the limits
/// when it has to drop at all. Returns the dropped events; refuses when the event cannot fit
/// without dropping what the policy protects (then nothing is dropped).
fn make_room(
    entries: &mut Vec<Entry>,
    protect_from: usize,
    new_len: usize,
    severity: Severity,
    header_len: usize,
    limits: SpoolLimits,
) -> Result<Vec<Entry>, AgentError> {
    let size = |es: &[Entry]| -> u64 {
        (header_len + new_len + es.iter().map(|e| e.line.len() + 1).sum::<usize>()) as u64
    };
    let fits = |count: usize, bytes: u64| count < limits.max_events && bytes <= limits.max_bytes;
    let mut bytes = size(entries);
    if fits(entries.len(), bytes) {
        return Ok(Vec::new());
    }
    let target_events = limits.max_events - limits.max_events / 4;
    let target_bytes = limits.max_bytes - limits.max_bytes / 4;
    let allowed = tier(severity).min(1);
    // Oldest first within the lowest tier, then the next tier.
    let mut candidates: Vec<usize> = (0..protect_from.min(entries.len()))
        .filter(|&i| tier(entries[i].severity) <= allowed)
        .collect();
    candidates.sort_by_key(|&i| (tier(entries[i].severity), i));
    let mut drop = vec![false; entries.len()];
    let mut count = entries.len();
    for i in candidates {
        if count < target_events && bytes <= target_bytes {
            break;
        }
        drop[i] = true;
        count -= 1;
        bytes -= entries[i].line.len() as u64 + 1;
    }
    if !fits(count, bytes) {
        return Err(AgentError::SpoolFull(format!(
            "{} events ({} bytes) are spooled, the limit is {} events or {} bytes, and none of them may be dropped for a {} event (high and critical events are never dropped, nor anything more severe than the new event); flush to make room",
            entries.len(),
            size(entries) - new_len as u64,
            limits.max_events,
            limits.max_bytes,
            severity.as_str()
        )));
    }
    let mut gone = Vec::new();
    let mut kept = Vec::with_capacity(count);
    for (e, d) in std::mem::take(entries).into_iter().zip(drop) {
        if d { gone.push(e) } else { kept.push(e) }
    }
    *entries = kept;
    Ok(gone)
}

/// Eviction tiers: info and low go first, medium next, high and critical never.
fn tier(s: Severity) -> u8 {
    match s {
        Severity::Info | Severity::Low => 0,
        Severity::Medium => 1,
        Severity::High | Severity::Critical => 2,
    }
}

fn severity_of(s: &str) -> Option<Severity> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
}

/// The dropped count an event carries in [`DROPPED_DETAIL`], if any.
fn carried_count(line: &str) -> u64 {
    serde_json::from_str::<WireEvent>(line)
        .ok()
        .and_then(|w| w.details.get(DROPPED_DETAIL)?.parse().ok())
        .unwrap_or(0)
}

/// Checks one event with the server's parser; the message names the field.
fn validate_one(w: &WireEvent) -> Result<(), AgentError> {
    let line = line_of(w)?;
    let body = format!("[{line}]");
    parse_batch(body.as_bytes(), 1, MAX_BATCH_BYTES)
        .map(|_| ())
        .map_err(|e| match e {
            PostmarketError::InvalidBatch { path, message } => {
                let field = path.trim_start_matches("[0]").trim_start_matches('.');
                AgentError::InvalidEvent(if field.is_empty() {
                    message
                } else {
                    format!("{field}: {message}")
                })
            }
            other => AgentError::InvalidEvent(other.to_string()),
        })
}

/// The spool line of an event. Every event must fit a batch on its own (the field limits keep
/// even a worst case far below), or it could never be delivered.
fn line_of(w: &WireEvent) -> Result<String, AgentError> {
    let line = serde_json::to_string(w)
        .map_err(|e| AgentError::InvalidEvent(format!("cannot encode: {e}")))?;
    if line.len() + 2 > MAX_BATCH_BYTES {
        return Err(AgentError::InvalidEvent(format!(
            "{} bytes encoded, more than a batch may hold ({MAX_BATCH_BYTES})",
            line.len()
        )));
    }
    Ok(line)
}

/// Splits events into batches of at most [`MAX_BATCH_EVENTS`] events and [`MAX_BATCH_BYTES`]
/// bytes of body, in spool order.
fn batches(entries: Vec<Entry>) -> VecDeque<Vec<Entry>> {
    let mut out = VecDeque::new();
    let mut cur: Vec<Entry> = Vec::new();
    let mut bytes = 2; // the brackets
    for e in entries {
        let add = e.line.len() + usize::from(!cur.is_empty());
        if !cur.is_empty() && (cur.len() == MAX_BATCH_EVENTS || bytes + add > MAX_BATCH_BYTES) {
            out.push_back(std::mem::take(&mut cur));
            bytes = 2;
        }
        bytes += e.line.len() + usize::from(!cur.is_empty());
        cur.push(e);
    }
    if !cur.is_empty() {
        out.push_back(cur);
    }
    out
}

fn body(batch: &[Entry]) -> Vec<u8> {
    let mut b = Vec::with_capacity(2 + batch.iter().map(|e| e.line.len() + 1).sum::<usize>());
    b.push(b'[');
    for (i, e) in batch.iter().enumerate() {
        if i > 0 {
            b.push(b',');
        }
        b.extend_from_slice(e.line.as_bytes());
    }
    b.push(b']');
    b
}

/// 128 random bits in hex: unique without any state to persist, so no restart, restored
/// backup or cloned state directory can make an id repeat.
fn new_id() -> Result<String, AgentError> {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b)
        .map_err(|_| AgentError::Config("the system random number generator failed".into()))?;
    Ok(hex::encode(b))
}

fn now_text() -> String {
    let t = OffsetDateTime::now_utc();
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// A whole file, `None` if it does not exist; refuses one beyond [`MAX_FILE_READ`].
fn read_capped(p: &Path) -> Result<Option<Vec<u8>>, AgentError> {
    let f = match fs::File::open(p) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(AgentError::io("opening", p, e)),
    };
    let mut data = Vec::new();
    f.take(MAX_FILE_READ + 1)
        .read_to_end(&mut data)
        .map_err(|e| AgentError::io("reading", p, e))?;
    if data.len() as u64 > MAX_FILE_READ {
        return Err(AgentError::State {
            dir: p.parent().map(Path::to_path_buf).unwrap_or_default(),
            reason: format!(
                "{} is larger than {MAX_FILE_READ} bytes; it is not a file the agent wrote",
                p.display()
            ),
        });
    }
    Ok(Some(data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn reporter(t: &tempfile::TempDir) -> EventReporter {
        EventReporter::new(AgentConfig::new(
            "127.0.0.1:1",
            "127.0.0.1:1",
            "localhost",
            t.path().join("root.pem"),
            t.path().join("state"),
        ))
    }

    fn limited(t: &tempfile::TempDir, max_events: usize, max_bytes: u64) -> EventReporter {
        reporter(t).with_limits(SpoolLimits {
            max_events,
            max_bytes,
        })
    }

    fn ev(sev: Severity) -> NewEvent {
        NewEvent::new(EventType::AuthFailure, sev)
    }

    fn spool_text(r: &EventReporter) -> String {
        fs::read_to_string(r.dir().join(SPOOL)).unwrap()
    }

    /// The events in the spool, in order, as (id, severity, details).
    fn spooled(r: &EventReporter) -> Vec<(String, Severity, BTreeMap<String, String>)> {
        let sp = r.load().unwrap();
        sp.entries
            .iter()
            .map(|e| {
                let w: WireEvent = serde_json::from_str(&e.line).unwrap();
                (e.id.clone(), e.severity, w.details)
            })
            .collect()
    }

    fn invalid(r: Result<Recorded, AgentError>) -> String {
        match r {
            Err(AgentError::InvalidEvent(m)) => m,
            other => panic!("expected InvalidEvent, got {other:?}"),
        }
    }

    #[test]
    fn events_are_checked_with_the_server_rules_before_spooling() {
        let t = tempfile::tempdir().unwrap();
        let r = reporter(&t);
        let cfg = |by: Option<&str>| {
            let e = NewEvent::new(EventType::ConfigChanged, Severity::Medium);
            match by {
                Some(b) => e.by(b),
                None => e,
            }
        };
        assert!(invalid(r.record(cfg(None))).starts_with("by: missing field"));
        assert!(invalid(r.record(cfg(Some("")))).starts_with("by: "));
        assert!(invalid(r.record(cfg(Some(&"x".repeat(201))))).starts_with("by: "));
        assert!(invalid(r.record(cfg(Some("tech\nroot")))).contains("control"));
        let m = invalid(r.record(ev(Severity::High).by("local:tech")));
        assert!(m.contains("only allowed for config-changed"), "{m}");
        let mut many = ev(Severity::Low);
        for i in 0..=medsec_postmarket::event::MAX_DETAILS {
            many = many.detail(format!("k{i}"), "v");
        }
        assert!(invalid(r.record(many)).contains("more than 32"));
        let m = invalid(r.record(ev(Severity::Low).detail("k".repeat(65), "v")));
        assert!(m.starts_with("details."), "{m}");
        let m = invalid(r.record(ev(Severity::Low).detail("", "v")));
        assert!(m.contains("key must be"), "{m}");
        let m = invalid(r.record(ev(Severity::Low).detail("k", "v".repeat(1025))));
        assert!(m.contains("longer than 1024"), "{m}");
        // Nothing refused reached the disk.
        assert!(!r.dir().join(SPOOL).exists());

        // The limits themselves are fine, and so is a non-UTC offset.
        let mut full = NewEvent::new(EventType::ConfigChanged, Severity::Critical)
            .by("x".repeat(200))
            .at(OffsetDateTime::parse("2026-03-01T10:00:00+01:00", &Rfc3339).unwrap());
        for i in 0..medsec_postmarket::event::MAX_DETAILS {
            full = full.detail(format!("{i:0>64}"), "\u{1}".repeat(1024));
        }
        full.validate().unwrap();
        let rec = r.record(full).unwrap();
        let line = &r.load().unwrap().entries[0].line;
        assert!(line.contains(&rec.id) && line.contains("+01:00"));
        // Every event, even this worst case (escaped control characters), fits a batch.
        assert!(line.len() + 2 <= MAX_BATCH_BYTES);
    }

    #[test]
    fn files_are_checked_whole_and_spooled_all_or_nothing() {
        let t = tempfile::tempdir().unwrap();
        let r = reporter(&t);
        let good =
            r#"{"id":"f-1","time":"2026-03-01T10:00:00Z","type":"tamper","severity":"high"}"#;
        let err = |json: &str| match r.spool_batch(json.as_bytes()) {
            Err(AgentError::InvalidEvent(m)) => m,
            other => panic!("expected InvalidEvent, got {other:?}"),
        };
        let m = err(&format!(
            r#"[{good},{{"id":"f-2","time":"2026-03-01T10:00:00Z","type":"tamper","severity":"huge"}}]"#
        ));
        assert!(m.contains("[1].severity"), "{m}");
        let m = err(
            r#"[{"id":"f-3","time":"2026-03-01T10:00:00Z","type":"tamper","severity":"high","device":"urn:medsec:device:m:S"}]"#,
        );
        assert!(m.contains("client certificate"), "{m}");
        let m = err(r#"[{"time":"2026-03-01T10:00:00Z","type":"tamper","severity":"high"}]"#);
        assert!(m.contains("[0].id"), "{m}");
        let m = err(
            r#"[{"id":"has space","time":"2026-03-01T10:00:00Z","type":"tamper","severity":"high"}]"#,
        );
        assert!(m.contains("[0].id"), "{m}");
        let m = err(r#"[{"id":"f-4","time":"yesterday","type":"tamper","severity":"high"}]"#);
        assert!(m.contains("[0].time"), "{m}");
        assert!(err(r#"{"id":"x"}"#).contains("array"));
        assert!(err("[1,").contains("not JSON"));
        assert!(!r.dir().join(SPOOL).exists(), "nothing spooled");

        let json = format!(
            r#"[{good},{{"id":"f-5","time":"2026-03-01T10:00:00Z","type":"config-changed","by":"local:tech","severity":"low","details":{{"k":"v"}}}}]"#
        );
        let s = r.spool_batch(json.as_bytes()).unwrap();
        assert_eq!(s.spooled, ["f-1", "f-5"]);
        // The same file again: the ids are already spooled.
        let s = r.spool_batch(json.as_bytes()).unwrap();
        assert_eq!((s.spooled.len(), s.already_spooled), (0, 2));
        assert_eq!(r.status().unwrap().spooled, 2);
        assert_eq!(r.spool_batch(b"[]").unwrap(), Spooled::default());
    }

    #[test]
    fn ids_never_repeat_across_reopening() {
        let t = tempfile::tempdir().unwrap();
        let mut ids = HashSet::new();
        for _ in 0..5 {
            // A new reporter each round, as after a restart.
            let r = reporter(&t);
            for _ in 0..50 {
                let id = r.record(ev(Severity::Low)).unwrap().id;
                assert_eq!(id.len(), 32);
                assert!(
                    id.bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
                );
                assert!(ids.insert(id), "an id repeated");
            }
        }
        let on_disk: HashSet<String> = spooled(&reporter(&t)).into_iter().map(|e| e.0).collect();
        assert_eq!(on_disk, ids);
    }

    #[cfg(unix)]
    #[test]
    fn spool_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let r = reporter(&t);
        r.record(ev(Severity::High)).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(r.dir()), 0o700);
        assert_eq!(mode(&r.dir().join(SPOOL)), 0o600);
        assert_eq!(mode(&r.dir().join(LOCK)), 0o600);
        // The rejected file, created by a quarantine.
        fs::write(r.dir().join(SPOOL), format!("{}garbage\n", spool_text(&r))).unwrap();
        r.record(ev(Severity::High)).unwrap();
        assert_eq!(mode(&r.rejected_path()), 0o600);
        assert_eq!(mode(&r.dir().join(SPOOL)), 0o600);
    }

    #[test]
    fn a_torn_append_is_cut_and_nothing_recorded_is_lost() {
        let t = tempfile::tempdir().unwrap();
        let r = reporter(&t);
        let a = r.record(ev(Severity::Low)).unwrap().id;
        let b = r.record(ev(Severity::High)).unwrap().id;
        // A crash in the middle of the next append: part of a line, no newline.
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(r.dir().join(SPOOL))
            .unwrap();
        f.write_all(br#"{"id":"c0ffee","time":"2026-03-"#).unwrap();
        drop(f);
        assert_eq!(r.status().unwrap().spooled, 2, "the torn line is no event");
        let c = r.record(ev(Severity::Medium)).unwrap().id;
        let text = spool_text(&r);
        assert!(text.ends_with('\n') && !text.contains("c0ffee"), "{text}");
        let ids: Vec<String> = spooled(&r).into_iter().map(|e| e.0).collect();
        assert_eq!(ids, [a, b, c]);
        // Every line is whole: the header, then events.
        let mut lines = text.lines();
        serde_json::from_str::<Header>(lines.next().unwrap()).unwrap();
        for l in lines {
            serde_json::from_str::<WireEvent>(l).unwrap();
        }
        assert!(
            !r.rejected_path().exists(),
            "a torn append is not a rejection"
        );
    }

    #[test]
    fn an_unreadable_line_is_quarantined_not_blocking() {
        let t = tempfile::tempdir().unwrap();
        let r = reporter(&t);
        let a = r.record(ev(Severity::Low)).unwrap().id;
        let text = spool_text(&r);
        fs::write(
            r.dir().join(SPOOL),
            format!("{text}{{\"not\":\"an event\"}}\n\u{0}\u{0}garbage\n"),
        )
        .unwrap();
        let b = r.record(ev(Severity::Low)).unwrap().id;
        let ids: Vec<String> = spooled(&r).into_iter().map(|e| e.0).collect();
        assert_eq!(ids, [a, b]);
        let rejected = fs::read_to_string(r.rejected_path()).unwrap();
        let recs: Vec<RejectedRecord> = rejected
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(recs.len(), 2);
        assert!(
            recs.iter()
                .all(|r| r.status.is_none() && r.detail == "unreadable spool entry")
        );
        assert!(recs[0].event.is_some() && recs[1].raw.as_deref().unwrap().contains("garbage"));
        assert_eq!(r.status().unwrap().rejected, 2);
    }

    #[test]
    fn a_crash_during_a_rewrite_leaves_the_old_spool() {
        let t = tempfile::tempdir().unwrap();
        let r = reporter(&t);
        let a = r.record(ev(Severity::Low)).unwrap().id;
        // A rewrite died after creating its temporary file: the spool is untouched, and the
        // leftover does not stop the next rewrite.
        fs::write(r.dir().join("spool.jsonl.tmp"), b"{\"spool\":1,\"dropp").unwrap();
        assert_eq!(spooled(&r)[0].0, a);
        // A spool without header (older format, or a header-less copy) is read and repaired.
        let events_only: String = spool_text(&r)
            .lines()
            .skip(1)
            .map(|l| format!("{l}\n"))
            .collect();
        fs::write(r.dir().join(SPOOL), events_only).unwrap();
        let b = r.record(ev(Severity::Low)).unwrap().id;
        let text = spool_text(&r);
        assert!(text.starts_with("{\"spool\":1,"), "{text}");
        let ids: Vec<String> = spooled(&r).into_iter().map(|e| e.0).collect();
        assert_eq!(ids, [a, b]);
        assert!(!r.dir().join("spool.jsonl.tmp").exists());
    }

    #[test]
    fn low_and_info_events_go_first_oldest_first_and_the_count_is_reported() {
        let t = tempfile::tempdir().unwrap();
        let r = limited(&t, 8, 1 << 20);
        use Severity::*;
        let order = [Low, High, Info, Medium, Low, Critical, Low, Medium];
        let ids: Vec<String> = order.iter().map(|s| r.record(ev(*s)).unwrap().id).collect();
        // The ninth does not fit: down to three quarters (6 with the new one), dropping the
        // three oldest info/low events and nothing else.
        let rec = r.record(ev(Low)).unwrap();
        assert_eq!(rec.dropped, 3);
        let now = spooled(&r);
        let kept: Vec<&str> = now.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            kept,
            [&ids[1], &ids[3], &ids[5], &ids[6], &ids[7], &rec.id].map(String::as_str)
        );
        // The new event tells the server how many went missing before it.
        assert_eq!(now[5].2.get(DROPPED_DETAIL).map(String::as_str), Some("3"));
        let st = r.status().unwrap();
        assert_eq!((st.dropped_total, st.dropped_pending), (3, 0));
        assert!(st.spooled <= 8);
    }

    #[test]
    fn high_and_critical_are_never_dropped_nor_anything_above_the_new_event() {
        let t = tempfile::tempdir().unwrap();
        let r = limited(&t, 4, 1 << 20);
        use Severity::*;
        let hm: Vec<String> = [High, Medium, Critical, Medium]
            .iter()
            .map(|s| r.record(ev(*s)).unwrap().id)
            .collect();
        // A low event may not push out a medium one.
        assert!(matches!(r.record(ev(Low)), Err(AgentError::SpoolFull(_))));
        assert!(matches!(r.record(ev(Info)), Err(AgentError::SpoolFull(_))));
        assert_eq!(spooled(&r).len(), 4, "a refusal changes nothing");
        // A high one may: the mediums go, oldest first, down to three quarters.
        let h = r.record(ev(High)).unwrap();
        assert_eq!(h.dropped, 2);
        let kept: Vec<String> = spooled(&r).into_iter().map(|e| e.0).collect();
        assert_eq!(kept, [hm[0].clone(), hm[2].clone(), h.id.clone()]);
        // Only high and critical left: full means full, nothing high is ever dropped.
        r.record(ev(Critical)).unwrap();
        let e = r.record(ev(Critical)).unwrap_err();
        assert!(matches!(e, AgentError::SpoolFull(_)));
        assert!(e.to_string().contains("flush"), "{e}");
        assert!(spooled(&r).iter().all(|e| e.1 >= High));
        assert_eq!(spooled(&r).len(), 4);
    }

    #[test]
    fn dropped_counts_survive_the_events_that_carry_them_being_dropped() {
        let t = tempfile::tempdir().unwrap();
        let r = limited(&t, 4, 1 << 20);
        let carried = |r: &EventReporter| -> u64 {
            spooled(r)
                .iter()
                .filter_map(|e| e.2.get(DROPPED_DETAIL)?.parse::<u64>().ok())
                .sum()
        };
        for _ in 0..40 {
            r.record(ev(Severity::Low)).unwrap();
            let st = r.status().unwrap();
            assert!(st.spooled <= 4);
            // Every dropped event is accounted for: on a spooled event or still pending.
            assert_eq!(carried(&r) + st.dropped_pending, st.dropped_total);
        }
        assert!(r.status().unwrap().dropped_total >= 30);

        // An event without room for one more detail leaves the count for the next one.
        let t = tempfile::tempdir().unwrap();
        let r = limited(&t, 2, 1 << 20);
        r.record(ev(Severity::Low)).unwrap();
        r.record(ev(Severity::Low)).unwrap();
        let mut full = ev(Severity::High);
        for i in 0..medsec_postmarket::event::MAX_DETAILS {
            full = full.detail(format!("k{i}"), "v");
        }
        // (With room for two, three quarters is still two: one low event goes.)
        assert_eq!(r.record(full).unwrap().dropped, 1);
        assert_eq!(r.status().unwrap().dropped_pending, 1);
        // This one pushes out the last low event: the one pending plus the new drop.
        assert_eq!(r.record(ev(Severity::High)).unwrap().dropped, 1);
        let last = spooled(&r).pop().unwrap();
        assert_eq!(last.2.get(DROPPED_DETAIL).map(String::as_str), Some("2"));
        assert_eq!(r.status().unwrap().dropped_pending, 0);
    }

    #[test]
    fn the_byte_bound_holds_too() {
        let t = tempfile::tempdir().unwrap();
        let max = 8 * 1024;
        let r = limited(&t, 10_000, max);
        for i in 0..200 {
            let sev = if i % 10 == 0 {
                Severity::Medium
            } else {
                Severity::Info
            };
            r.record(ev(sev).detail("blob", "x".repeat(300))).unwrap();
            let len = fs::metadata(r.dir().join(SPOOL)).unwrap().len();
            assert!(len <= max, "spool is {len} bytes after {i} events");
            assert_eq!(r.status().unwrap().spool_bytes, len);
        }
        // An event larger than the whole spool may be is refused, not spooled over the bound.
        let e = r
            .record(
                ev(Severity::Critical)
                    .detail("blob", "x".repeat(1000))
                    .detail("b2", "y".repeat(1000)),
            )
            .map(|_| ());
        assert!(e.is_ok(), "{e:?}");
        let r = limited(&t, 10_000, 512);
        assert!(matches!(
            r.record(ev(Severity::Critical).detail("blob", "x".repeat(1000))),
            Err(AgentError::SpoolFull(_))
        ));
    }

    // ---- flushing, against a fake gateway with the server's parser ----

    #[derive(Clone, Copy, Debug)]
    enum Fault {
        /// No connection.
        Network,
        /// Stores the batch, then the answer is lost.
        StoreThenLose,
        Status(u16),
    }

    #[derive(Default)]
    struct Fake {
        /// What the server holds: id to details, in arrival order.
        stored: Mutex<Vec<(String, BTreeMap<String, String>)>>,
        faults: Mutex<VecDeque<Fault>>,
        /// Events per request, in order.
        posts: Mutex<Vec<usize>>,
        /// Recorded through this reporter during the first post (a record racing a flush).
        during: Mutex<Option<EventReporter>>,
    }

    impl Fake {
        fn failing(faults: &[Fault]) -> Fake {
            let f = Fake::default();
            f.faults.lock().unwrap().extend(faults.iter().copied());
            f
        }

        fn stored_ids(&self) -> Vec<String> {
            self.stored
                .lock()
                .unwrap()
                .iter()
                .map(|e| e.0.clone())
                .collect()
        }

        fn reply(status: u16, body: serde_json::Value) -> Result<Reply, AgentError> {
            Ok(Reply {
                status,
                content_type: "application/json".into(),
                body: serde_json::to_vec(&body).unwrap(),
            })
        }

        fn store(&self, body: &[u8]) -> Result<serde_json::Value, (u16, String)> {
            if body.len() > MAX_BATCH_BYTES {
                return Err((413, format!("the body exceeds {MAX_BATCH_BYTES} bytes")));
            }
            let events =
                parse_batch(body, 1000, MAX_BATCH_BYTES).map_err(|e| (400, e.to_string()))?;
            let mut stored = self.stored.lock().unwrap();
            let (mut accepted, mut duplicates) = (0, 0);
            for e in events {
                if stored.iter().any(|s| s.0 == e.id.as_str()) {
                    duplicates += 1;
                } else {
                    accepted += 1;
                    stored.push((e.id.as_str().to_owned(), e.details));
                }
            }
            Ok(serde_json::json!({"accepted": accepted, "duplicates": duplicates, "incidents": []}))
        }
    }

    impl Sink for &Fake {
        async fn post(&self, body: Vec<u8>) -> Result<Reply, AgentError> {
            let n = serde_json::from_slice::<Vec<serde_json::Value>>(&body).map_or(0, |v| v.len());
            self.posts.lock().unwrap().push(n);
            if let Some(r) = self.during.lock().unwrap().take() {
                r.record(ev(Severity::High)).unwrap();
            }
            let fault = self.faults.lock().unwrap().pop_front();
            match fault {
                Some(Fault::Network) => Err(AgentError::Connect {
                    addr: "gateway".into(),
                    source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
                }),
                Some(Fault::StoreThenLose) => {
                    let _ = self.store(&body);
                    Err(AgentError::Timeout {
                        step: "request",
                        addr: "gateway".into(),
                        secs: 10,
                    })
                }
                Some(Fault::Status(s)) => {
                    Fake::reply(s, serde_json::json!({"detail": format!("status {s}")}))
                }
                None => match self.store(&body) {
                    Ok(v) => Fake::reply(200, v),
                    Err((s, detail)) => Fake::reply(s, serde_json::json!({"detail": detail})),
                },
            }
        }
    }

    async fn flush(r: &EventReporter, fake: &Fake) -> Result<FlushReport, AgentError> {
        r.flush_to(|| Ok(fake)).await
    }

    fn record_n(r: &EventReporter, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| r.record(ev(Severity::Medium)).unwrap().id)
            .collect()
    }

    #[tokio::test]
    async fn batches_of_at_most_100_each_removed_once_acknowledged() {
        let t = tempfile::tempdir().unwrap();
        let r = reporter(&t);
        let ids = record_n(&r, 250);
        let fake = Fake::default();
        let rep = flush(&r, &fake).await.unwrap();
        assert_eq!(*fake.posts.lock().unwrap(), [100, 100, 50]);
        assert_eq!(
            (
                rep.batches,
                rep.delivered,
                rep.accepted,
                rep.duplicates,
                rep.rejected,
                rep.remaining
            ),
            (3, 250, 250, 0, 0, 0)
        );
        assert_eq!(fake.stored_ids(), ids, "in recording order");
        assert_eq!(r.status().unwrap().spooled, 0);
        // Nothing left: the next flush sends nothing, and needs no gateway at all.
        let rep = r
            .flush_to(|| -> Result<&Fake, AgentError> { panic!("opened the gateway") })
            .await
            .unwrap();
        assert_eq!(rep, FlushReport::default());
        let last = r.status().unwrap().last_flush.unwrap();
        assert_eq!((last.error, last.report.batches), (None, 0));
    }

    #[tokio::test]
    async fn an_outage_keeps_the_rest_and_a_later_flush_delivers_it_exactly_once() {
        let t = tempfile::tempdir().unwrap();
        let r = reporter(&t);
        let ids = record_n(&r, 250);
        // The second batch finds no server.
        let fake = Fake::failing(&[Fault::Status(200), Fault::Network]);
        // (A 200 from the fault list carries no counts: still acknowledged.)
        let e = flush(&r, &fake).await.unwrap_err();
        assert!(matches!(e, AgentError::Connect { .. }), "{e}");
        let st = r.status().unwrap();
        assert_eq!(st.spooled, 150);
        let last = st.last_flush.unwrap();
        assert!(last.error.unwrap().contains("cannot connect"));
        assert_eq!((last.report.delivered, last.report.remaining), (100, 150));
        assert!(
            fake.stored_ids().is_empty(),
            "the fake's 200 stored nothing"
        );

        // A 5xx and a 429 are "later" too.
        for s in [503, 500, 429] {
            let fake = Fake::failing(&[Fault::Status(s)]);
            match flush(&r, &fake).await {
                Err(AgentError::Refused { status, .. }) => assert_eq!(status, s),
                other => panic!("{other:?}"),
            }
            assert_eq!(r.status().unwrap().spooled, 150);
        }
        // A batch stored but whose answer was lost is sent again and counted as duplicates.
        let fake = Fake::failing(&[Fault::StoreThenLose]);
        assert!(flush(&r, &fake).await.is_err());
        assert_eq!(r.status().unwrap().spooled, 150);
        let rep = flush(&r, &fake).await.unwrap();
        assert_eq!((rep.accepted, rep.duplicates, rep.remaining), (50, 100, 0));
        assert_eq!(
            fake.stored_ids(),
            ids[100..],
            "each event stored exactly once"
        );
    }

    #[tokio::test]
    async fn a_refused_event_is_quarantined_and_the_rest_delivered() {
        let t = tempfile::tempdir().unwrap();
        let r = reporter(&t);
        let mut ids = record_n(&r, 6);
        // An event the server refuses (written by an older agent, say), in the middle.
        let bad =
            r#"{"id":"bad id","time":"2026-03-01T10:00:00Z","type":"tamper","severity":"high"}"#;
        let text = spool_text(&r);
        fs::write(r.dir().join(SPOOL), format!("{text}{bad}\n")).unwrap();
        ids.extend(record_n(&r, 5));
        let fake = Fake::default();
        let rep = flush(&r, &fake).await.unwrap();
        assert_eq!((rep.delivered, rep.rejected, rep.remaining), (11, 1, 0));
        // Split in halves until the bad one was alone: a handful of requests, not one each.
        assert!(rep.batches <= 8, "{:?}", fake.posts.lock().unwrap());
        let mut stored = fake.stored_ids();
        stored.sort();
        ids.sort();
        assert_eq!(stored, ids);
        let rejected: Vec<RejectedRecord> = fs::read_to_string(r.rejected_path())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].status, Some(400));
        assert!(
            rejected[0].detail.contains("[0].id"),
            "{}",
            rejected[0].detail
        );
        assert_eq!(rejected[0].event.as_ref().unwrap()["id"], "bad id");
        assert_eq!(r.status().unwrap().rejected, 1);
    }

    #[tokio::test]
    async fn large_events_make_smaller_batches_and_413_splits() {
        let t = tempfile::tempdir().unwrap();
        let r = limited(&t, 5_000, 4 << 20);
        // About 33 KB each: 100 would be 3 MB, far over the server's 512 KiB.
        let mut big = ev(Severity::High);
        for i in 0..32 {
            big = big.detail(format!("k{i}"), "x".repeat(1000));
        }
        for _ in 0..40 {
            r.record(big.clone()).unwrap();
        }
        let fake = Fake::default();
        let rep = flush(&r, &fake).await.unwrap();
        assert_eq!((rep.delivered, rep.rejected), (40, 0));
        // The fake answers 413 above 512 KiB like the server: none was needed.
        let posts = fake.posts.lock().unwrap().clone();
        assert_eq!(posts, [16, 16, 8]);
        // A server with a smaller limit answers 413: the batch is split, not given up on.
        record_n(&r, 4);
        let fake = Fake::failing(&[Fault::Status(413)]);
        let rep = flush(&r, &fake).await.unwrap();
        assert_eq!(*fake.posts.lock().unwrap(), [4, 2, 2]);
        assert_eq!((rep.delivered, rep.rejected), (4, 0));
    }

    #[tokio::test]
    async fn other_refusals_keep_everything_and_records_during_a_flush_stay() {
        let t = tempfile::tempdir().unwrap();
        let r = reporter(&t);
        record_n(&r, 3);
        for s in [401, 403, 404] {
            let fake = Fake::failing(&[Fault::Status(s)]);
            assert!(matches!(
                flush(&r, &fake).await,
                Err(AgentError::Refused { status, .. }) if status == s
            ));
            assert_eq!(r.status().unwrap().spooled, 3);
        }
        // An event recorded while its batch is in flight is not removed with it.
        let fake = Fake::default();
        *fake.during.lock().unwrap() = Some(r.clone());
        let rep = flush(&r, &fake).await.unwrap();
        assert_eq!((rep.delivered, rep.remaining), (3, 1));
        assert_eq!(r.status().unwrap().spooled, 1);
        // The dropped count, once delivered, reaches the server as a detail.
        let t2 = tempfile::tempdir().unwrap();
        let r2 = limited(&t2, 2, 1 << 20);
        record_n(&r2, 2);
        r2.record(ev(Severity::Medium)).unwrap();
        let fake = Fake::default();
        flush(&r2, &fake).await.unwrap();
        let stored = fake.stored.lock().unwrap();
        assert_eq!(stored.len(), 2);
        assert_eq!(
            stored[1].1.get(DROPPED_DETAIL).map(String::as_str),
            Some("1")
        );
    }

    #[test]
    fn a_flush_can_run_on_any_runtime_thread() {
        // `tokio::spawn` in a multi-threaded agent needs a Send future.
        fn send<T: Send>(_: &T) {}
        let t = tempfile::tempdir().unwrap();
        let r = reporter(&t);
        send(&r.flush());
        send(&r);
    }

    #[test]
    fn a_refused_record_does_not_quarantine_twice() {
        let t = tempfile::tempdir().unwrap();
        let r = limited(&t, 1, 1 << 20);
        r.record(ev(Severity::High)).unwrap();
        let text = spool_text(&r);
        fs::write(r.dir().join(SPOOL), format!("{text}garbage\n")).unwrap();
        assert!(matches!(
            r.record(ev(Severity::High)),
            Err(AgentError::SpoolFull(_))
        ));
        assert!(matches!(
            r.record(ev(Severity::High)),
            Err(AgentError::SpoolFull(_))
        ));
        assert_eq!(r.status().unwrap().rejected, 1);
        assert!(!spool_text(&r).contains("garbage"));
    }

    #[tokio::test]
    async fn one_flush_at_a_time_and_none_without_a_spool() {
        let t = tempfile::tempdir().unwrap();
        let r = reporter(&t);
        // Never recorded: no directory is created.
        assert_eq!(
            flush(&r, &Fake::default()).await.unwrap(),
            FlushReport::default()
        );
        assert!(!t.path().join("state").exists());
        record_n(&r, 1);
        let held = r.flush_lock().unwrap();
        let e = flush(&r, &Fake::default()).await.unwrap_err();
        assert!(e.to_string().contains("another flush"), "{e}");
        drop(held);
        assert_eq!(flush(&r, &Fake::default()).await.unwrap().delivered, 1);
    }
}
