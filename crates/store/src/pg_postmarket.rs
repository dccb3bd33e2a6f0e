//! `PostmarketStore` for PostgreSQL: the append-only event log, detection rules, incidents, CVD
//! reports and advisories (postgres migration 0007), shared by every replica.
//!
//! Unlike SQLite there is no event writer task: PostgreSQL commits concurrent transactions
//! together by itself, so each `append_events` call is one transaction with one multi-row
//! insert. Everything that SQLite made safe by holding the only write lock is made safe here
//! by the database across processes: `ON CONFLICT DO NOTHING` for event dedup, primary keys for
//! rule and advisory versions, the partial unique index for one open incident per rule and
//! model, a locked counter row for incident numbers, conditional updates for versions, and a
//! `greatest()` update of the retention row.

use std::collections::HashSet;

use async_trait::async_trait;
use medsec_core::{Actor, AuditRecord, DeviceId, DeviceModel};
use medsec_postmarket::cvd::{CvdReport, TrackingId};
use medsec_postmarket::event::AttributedEvent;
use medsec_postmarket::incident::{Incident, IncidentId};
use medsec_postmarket::rules::RuleId;
use medsec_postmarket::store::{
    EventQuery, EventSource, PostmarketStore, StoredAdvisory, StoredEvent, StoredRules,
    VersionedIncident, VersionedReport,
};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};
use time::OffsetDateTime;

use crate::StoreError;
use crate::pg::{PgStore, append_audit, be, commit_audited};
use crate::sqlite::{corrupt, from_ts, ts};

/// Times a batch is retried after PostgreSQL broke a deadlock by aborting it. Rows are inserted
/// in key order, so two batches cannot wait on each other's keys; this only covers what that
/// argument does not (e.g. a lock taken by an administrator's ad-hoc statement).
const DEADLOCK_RETRIES: usize = 3;

/// One event ready to insert.
struct EventRow {
    /// Position in the caller's slice: what the caller gets back if this row is stored.
    index: usize,
    device: String,
    model: String,
    event_id: String,
    event_type: &'static str,
    severity: &'static str,
    at: i64,
    body: String,
}

fn is_deadlock(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "40P01")
}

/// Inserts one call's events (already deduplicated within the call, in the caller's order) in
/// one transaction and returns the callers' positions of the ones stored.
///
/// Two replicas inserting overlapping batches wait on each other's uncommitted keys; inserted
/// in the callers' orders, A waiting for B's key x while B waits for A's key y would be a
/// deadlock. So rows are inserted in (device, event id) order, which every caller shares,
/// while their `seq` numbers, drawn first, follow the caller's order as SQLite's do.
///
/// No audit entry is written: events are observations reported by devices, not changes of
/// state made by someone, and the log itself is append-only. What events cause (incidents,
/// purges) is audited where it happens.
/// The advisory lock that orders event appends across replicas ("events" in ASCII).
const EVENT_APPEND_LOCK: i64 = 0x6576_656e_7473;

async fn insert_events(
    store: &PgStore,
    source: EventSource,
    received_at: i64,
    rows: &[EventRow],
) -> Result<Vec<usize>, sqlx::Error> {
    let mut tx = store.pool().begin().await?;
    // Sequence numbers must become visible in order: a consumer paging the log by `seq > n`
    // would otherwise skip an event whose transaction drew a lower number but committed after
    // a later one. Serialising appends across replicas from drawing to commit guarantees it;
    // batches keep the cost to one commit per batch.
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(EVENT_APPEND_LOCK)
        .execute(&mut *tx)
        .await?;
    let n = i64::try_from(rows.len()).unwrap_or(i64::MAX);
    let mut seqs: Vec<i64> =
        sqlx::query_scalar("SELECT nextval('pm_events_seq') FROM generate_series(1, $1)")
            .bind(n)
            .fetch_all(&mut *tx)
            .await?;
    if seqs.len() != rows.len() {
        return Err(sqlx::Error::Protocol(format!(
            "asked for {} event numbers, got {}",
            rows.len(),
            seqs.len()
        )));
    }
    // One statement's numbers are increasing in row order; sorting makes that not matter.
    seqs.sort_unstable();
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by(|&a, &b| {
        (rows[a].device.as_str(), rows[a].event_id.as_str())
            .cmp(&(rows[b].device.as_str(), rows[b].event_id.as_str()))
    });
    let mut seq = Vec::with_capacity(rows.len());
    let mut device = Vec::with_capacity(rows.len());
    let mut model = Vec::with_capacity(rows.len());
    let mut event_id = Vec::with_capacity(rows.len());
    let mut event_type = Vec::with_capacity(rows.len());
    let mut severity = Vec::with_capacity(rows.len());
    let mut at = Vec::with_capacity(rows.len());
    let mut body = Vec::with_capacity(rows.len());
    for &i in &order {
        let r = &rows[i];
        seq.push(seqs[i]);
        device.push(r.device.as_str());
        model.push(r.model.as_str());
        event_id.push(r.event_id.as_str());
        event_type.push(r.event_type);
        severity.push(r.severity);
        at.push(r.at);
        body.push(r.body.as_str());
    }
    // Arrays rather than one placeholder per value: one statement whatever the batch size,
    // and `ORDER BY ord` keeps the key order the deadlock argument above needs.
    let stored: Vec<(String, String)> = sqlx::query_as(
        "INSERT INTO pm_events (seq, device, model, event_id, event_type, severity, at, received_at, source, body)
         SELECT u.seq, u.device, u.model, u.event_id, u.event_type, u.severity, u.at, $9, $10, u.body
         FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::bigint[], $8::text[])
              WITH ORDINALITY AS u(seq, device, model, event_id, event_type, severity, at, body, ord)
         ORDER BY u.ord
         ON CONFLICT (device, event_id) DO NOTHING
         RETURNING device, event_id",
    )
    .bind(&seq)
    .bind(&device)
    .bind(&model)
    .bind(&event_id)
    .bind(&event_type)
    .bind(&severity)
    .bind(&at)
    .bind(&body)
    .bind(received_at)
    .bind(source.as_str())
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let stored: HashSet<(String, String)> = stored.into_iter().collect();
    Ok(rows
        .iter()
        .filter(|r| stored.contains(&(r.device.clone(), r.event_id.clone())))
        .map(|r| r.index)
        .collect())
}

fn to_i64(what: &str, v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|e| StoreError::Refused(format!("{what} too large: {e}")))
}

fn version_of(r: &PgRow, what: &str) -> Result<u64, StoreError> {
    u64::try_from(r.try_get::<i64, _>("version").map_err(be)?)
        .map_err(|e| corrupt(&format!("{what} version"), e))
}

fn actor_of(r: &PgRow, what: &str) -> Result<Actor, StoreError> {
    Actor::parse(&r.try_get::<String, _>("author").map_err(be)?)
        .map_err(|e| corrupt(&format!("{what} author"), e))
}

/// "none" or the number, for conflict messages about versions.
fn shown(v: Option<u64>) -> String {
    v.map_or("none".into(), |v| v.to_string())
}

/// Adds a fact only the store knows (an assigned id, a count) to the caller's audit record.
/// Details that are not an object are left alone rather than replaced.
fn with_detail(audit: &AuditRecord, key: &str, value: serde_json::Value) -> AuditRecord {
    let mut rec = audit.clone();
    if rec.details.is_null() {
        rec.details = serde_json::json!({});
    }
    if let Some(obj) = rec.details.as_object_mut() {
        obj.insert(key.to_owned(), value);
    }
    rec
}

/// Replaces the generic message of a unique violation with one about the domain.
fn on_conflict(e: sqlx::Error, msg: impl FnOnce() -> String) -> StoreError {
    match be(e) {
        StoreError::Conflict(_) => StoreError::Conflict(msg()),
        other => other,
    }
}

fn event_from(r: &PgRow) -> Result<StoredEvent, StoreError> {
    let seq: i64 = r.try_get("seq").map_err(be)?;
    let device: String = r.try_get("device").map_err(be)?;
    let source: String = r.try_get("source").map_err(be)?;
    let body: String = r.try_get("body").map_err(be)?;
    Ok(StoredEvent {
        seq: u64::try_from(seq).map_err(|e| corrupt("event seq", e))?,
        device: DeviceId::parse_urn(&device)
            .map_err(|e| corrupt(&format!("event {seq} device"), e))?,
        source: EventSource::parse(&source)
            .ok_or_else(|| corrupt(&format!("event {seq} source"), &source))?,
        received_at: from_ts(r.try_get("received_at").map_err(be)?)?,
        event: serde_json::from_str(&body).map_err(|e| corrupt(&format!("event {seq}"), e))?,
    })
}

fn incident_from(r: &PgRow) -> Result<VersionedIncident, StoreError> {
    let id: i64 = r.try_get("id").map_err(be)?;
    let body: String = r.try_get("body").map_err(be)?;
    let incident: Incident =
        serde_json::from_str(&body).map_err(|e| corrupt(&format!("incident {id}"), e))?;
    if i64::try_from(incident.id().0).ok() != Some(id) {
        return Err(corrupt(
            &format!("incident {id}"),
            format_args!("the body is numbered {}", incident.id()),
        ));
    }
    Ok(VersionedIncident {
        incident,
        version: version_of(r, "incident")?,
    })
}

fn report_from(r: &PgRow) -> Result<VersionedReport, StoreError> {
    let id: String = r.try_get("id").map_err(be)?;
    let body: String = r.try_get("body").map_err(be)?;
    let report: CvdReport =
        serde_json::from_str(&body).map_err(|e| corrupt(&format!("CVD report {id}"), e))?;
    if report.id.as_str() != id {
        return Err(corrupt(
            &format!("CVD report {id}"),
            format_args!("the body is for {}", report.id),
        ));
    }
    Ok(VersionedReport {
        report,
        version: version_of(r, "CVD report")?,
    })
}

fn rules_from(r: &PgRow) -> Result<StoredRules, StoreError> {
    Ok(StoredRules {
        version: version_of(r, "detection rules")?,
        body: r.try_get("body").map_err(be)?,
        author: actor_of(r, "detection rules")?,
        at: from_ts(r.try_get("at").map_err(be)?)?,
    })
}

fn advisory_from(r: &PgRow) -> Result<StoredAdvisory, StoreError> {
    Ok(StoredAdvisory {
        id: r.try_get("id").map_err(be)?,
        version: version_of(r, "advisory")?,
        body: r.try_get("body").map_err(be)?,
        author: actor_of(r, "advisory")?,
        at: from_ts(r.try_get("at").map_err(be)?)?,
    })
}

/// Why an update matched no row, given the row's current version (`None`: no such row).
fn missed_update(current: Option<i64>, what: String, expected: u64) -> StoreError {
    match current {
        None => StoreError::NotFound(what),
        Some(v) => StoreError::Conflict(format!(
            "{what} is at version {v}, not {expected} (someone changed it meanwhile)"
        )),
    }
}

#[async_trait]
impl PostmarketStore for PgStore {
    async fn append_events(
        &self,
        source: EventSource,
        received_at: OffsetDateTime,
        events: &[AttributedEvent],
    ) -> Result<Vec<usize>, StoreError> {
        // Only the first copy of each (device, event id) in the call goes to the database:
        // a repeat is then plainly a duplicate, and each key RETURNING gives back belongs to
        // exactly one row.
        let mut first = HashSet::new();
        let mut rows = Vec::with_capacity(events.len());
        for (index, ae) in events.iter().enumerate() {
            let e = &ae.event;
            let device = ae.device.urn();
            if !first.insert((device.clone(), e.id.as_str().to_owned())) {
                continue;
            }
            rows.push(EventRow {
                index,
                device,
                model: ae.device.model.as_str().to_owned(),
                event_id: e.id.as_str().to_owned(),
                event_type: e.event_type().as_str(),
                severity: e.severity.as_str(),
                at: ts(e.at),
                body: serde_json::to_string(e).map_err(|e| corrupt("event", e))?,
            });
        }
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let received_at = ts(received_at);
        let mut attempt = 0;
        loop {
            match insert_events(self, source, received_at, &rows).await {
                Ok(stored) => return Ok(stored),
                Err(e) if is_deadlock(&e) && attempt < DEADLOCK_RETRIES => attempt += 1,
                Err(e) => return Err(be(e)),
            }
        }
    }

    async fn events(&self, q: &EventQuery) -> Result<Vec<StoredEvent>, StoreError> {
        // Only the filters asked for go into the statement: `($1 IS NULL OR col = $1)` would
        // keep the planner from using the device index on a log that grows by the million.
        let mut sql = QueryBuilder::<Postgres>::new(
            "SELECT seq, device, source, received_at, body FROM pm_events WHERE TRUE",
        );
        if let Some(d) = &q.device {
            sql.push(" AND device = ").push_bind(d.urn());
        }
        if let Some(s) = q.after_seq {
            sql.push(" AND seq > ")
                .push_bind(to_i64("sequence cursor", s)?);
        }
        if let Some(t) = q.received_since {
            sql.push(" AND received_at >= ").push_bind(ts(t));
        }
        sql.push(if q.newest_first {
            " ORDER BY seq DESC LIMIT "
        } else {
            " ORDER BY seq ASC LIMIT "
        })
        .push_bind(i64::from(q.limit));
        sql.build()
            .fetch_all(self.pool())
            .await
            .map_err(be)?
            .iter()
            .map(event_from)
            .collect()
    }

    async fn count_events(&self, device: Option<&DeviceId>) -> Result<u64, StoreError> {
        let n: i64 = match device {
            Some(d) => sqlx::query_scalar("SELECT count(*) FROM pm_events WHERE device = $1")
                .bind(d.urn())
                .fetch_one(self.pool())
                .await
                .map_err(be)?,
            None => sqlx::query_scalar("SELECT count(*) FROM pm_events")
                .fetch_one(self.pool())
                .await
                .map_err(be)?,
        };
        u64::try_from(n).map_err(|e| corrupt("event count", e))
    }

    async fn purge_events(
        &self,
        before: OffsetDateTime,
        audit: &AuditRecord,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        // Raised in one statement under the row's lock: two replicas purging at once each
        // leave the greater horizon, and neither can lower the other's. The database refuses a
        // lower horizon and deletes of newer rows anyway; raising it first is what makes the
        // delete below allowed.
        let horizon: Option<i64> = sqlx::query_scalar(
            "UPDATE pm_retention SET horizon = greatest(horizon, $1) WHERE id = 1 RETURNING horizon",
        )
        .bind(ts(before))
        .fetch_optional(&mut *tx)
        .await
        .map_err(be)?;
        let horizon =
            horizon.ok_or_else(|| corrupt("event retention horizon", "the row is missing"))?;
        let n = sqlx::query("DELETE FROM pm_events WHERE received_at < $1")
            .bind(horizon)
            .execute(&mut *tx)
            .await
            .map_err(be)?
            .rows_affected();
        let rec = with_detail(audit, "deleted", serde_json::json!(n));
        let rec = with_detail(&rec, "horizon", serde_json::json!(horizon));
        commit_audited(tx, &rec).await?;
        Ok(n)
    }

    async fn put_rules(
        &self,
        body: &str,
        expected: Option<u64>,
        author: &Actor,
        audit: &AuditRecord,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let current: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM pm_rules")
            .fetch_one(&mut *tx)
            .await
            .map_err(be)?;
        let current = current
            .map(|v| u64::try_from(v).map_err(|e| corrupt("detection rules version", e)))
            .transpose()?;
        let stale = |current: Option<u64>| {
            format!(
                "the detection rules are at version {}, not {} (someone changed them meanwhile)",
                shown(current),
                shown(expected),
            )
        };
        if current != expected {
            return Err(StoreError::Conflict(stale(current)));
        }
        let next = current.unwrap_or(0) + 1;
        // Another replica that read the same version and wrote first owns `next`: the primary
        // key refuses this one.
        sqlx::query("INSERT INTO pm_rules (version, body, author, at) VALUES ($1, $2, $3, $4)")
            .bind(to_i64("detection rules version", next)?)
            .bind(body)
            .bind(author.as_str())
            .bind(ts(OffsetDateTime::now_utc()))
            .execute(&mut *tx)
            .await
            .map_err(|e| on_conflict(e, || stale(Some(next))))?;
        commit_audited(tx, audit).await?;
        Ok(next)
    }

    async fn rules(&self) -> Result<Option<StoredRules>, StoreError> {
        sqlx::query("SELECT * FROM pm_rules ORDER BY version DESC LIMIT 1")
            .fetch_optional(self.pool())
            .await
            .map_err(be)?
            .map(|r| rules_from(&r))
            .transpose()
    }

    async fn insert_incident(
        &self,
        incident: &Incident,
        audit: &AuditRecord,
    ) -> Result<VersionedIncident, StoreError> {
        let mut tx = self.begin().await?;
        // The id is taken before the insert because the body carries it. The counter row stays
        // locked until this transaction ends, so no replica takes the same number meanwhile,
        // and a refused insert rolls the counter back with it.
        let id: Option<i64> = sqlx::query_scalar(
            "UPDATE pm_incident_ids SET last = last + 1 WHERE id = 1 RETURNING last",
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(be)?;
        let id = id.ok_or_else(|| corrupt("incident counter", "the row is missing"))?;
        let id = IncidentId(u64::try_from(id).map_err(|e| corrupt("incident id", e))?);
        let incident = incident.clone().with_id(id);
        let body = serde_json::to_string(&incident).map_err(|e| corrupt("incident", e))?;
        sqlx::query(
            "INSERT INTO pm_incidents (id, rule, model, status, opened_at, updated_at, version, body)
             VALUES ($1, $2, $3, $4, $5, $6, 1, $7)",
        )
        .bind(to_i64("incident id", id.0)?)
        .bind(incident.rule().as_str())
        .bind(incident.model().as_str())
        .bind(incident.status().as_str())
        .bind(ts(incident.opened_at()))
        .bind(ts(incident.updated_at()))
        .bind(body)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            on_conflict(e, || {
                format!(
                    "an incident for rule {} on model {} is already open",
                    incident.rule().as_str(),
                    incident.model()
                )
            })
        })?;
        // The caller could not know the number when it wrote the audit record.
        let rec = with_detail(audit, "incident", serde_json::json!(id.to_string()));
        append_audit(&mut tx, &rec).await?;
        tx.commit().await.map_err(be)?;
        Ok(VersionedIncident {
            incident,
            version: 1,
        })
    }

    async fn update_incident(
        &self,
        incident: &Incident,
        expected: u64,
        audit: &AuditRecord,
    ) -> Result<u64, StoreError> {
        let id = to_i64("incident id", incident.id().0)?;
        let body = serde_json::to_string(incident).map_err(|e| corrupt("incident", e))?;
        let mut tx = self.begin().await?;
        // A concurrent update of the same row makes this one wait, then re-check the version
        // against the committed row: of two replicas starting from one version, one matches.
        let n = sqlx::query(
            "UPDATE pm_incidents SET rule = $1, model = $2, status = $3, opened_at = $4,
                updated_at = $5, version = version + 1, body = $6
             WHERE id = $7 AND version = $8",
        )
        .bind(incident.rule().as_str())
        .bind(incident.model().as_str())
        .bind(incident.status().as_str())
        .bind(ts(incident.opened_at()))
        .bind(ts(incident.updated_at()))
        .bind(body)
        .bind(id)
        .bind(to_i64("incident version", expected)?)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            on_conflict(e, || {
                format!(
                    "another incident for rule {} on model {} is open",
                    incident.rule().as_str(),
                    incident.model()
                )
            })
        })?
        .rows_affected();
        if n != 1 {
            let current = sqlx::query_scalar("SELECT version FROM pm_incidents WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(be)?;
            let what = format!("incident {}", incident.id());
            return Err(missed_update(current, what, expected));
        }
        commit_audited(tx, audit).await?;
        Ok(expected + 1)
    }

    async fn incident(&self, id: IncidentId) -> Result<Option<VersionedIncident>, StoreError> {
        let Ok(id) = i64::try_from(id.0) else {
            // Larger than any id the store hands out.
            return Ok(None);
        };
        sqlx::query("SELECT * FROM pm_incidents WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(be)?
            .map(|r| incident_from(&r))
            .transpose()
    }

    async fn open_incident(
        &self,
        rule: &RuleId,
        model: &DeviceModel,
    ) -> Result<Option<VersionedIncident>, StoreError> {
        // The same predicate as the partial unique index, so it can answer from it.
        sqlx::query(
            "SELECT * FROM pm_incidents
             WHERE rule = $1 AND model = $2 AND status <> 'closed' AND rule <> 'manual'",
        )
        .bind(rule.as_str())
        .bind(model.as_str())
        .fetch_optional(self.pool())
        .await
        .map_err(be)?
        .map(|r| incident_from(&r))
        .transpose()
    }

    async fn incidents(
        &self,
        open_only: bool,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<VersionedIncident>, StoreError> {
        // Newest first by id: ids follow creation order, which `opened_at` (the detection
        // time, possibly from a device clock) need not.
        sqlx::query(if open_only {
            "SELECT * FROM pm_incidents WHERE status <> 'closed' ORDER BY id DESC LIMIT $1 OFFSET $2"
        } else {
            "SELECT * FROM pm_incidents ORDER BY id DESC LIMIT $1 OFFSET $2"
        })
        .bind(i64::from(limit))
        .bind(to_i64("offset", offset)?)
        .fetch_all(self.pool())
        .await
        .map_err(be)?
        .iter()
        .map(incident_from)
        .collect()
    }

    async fn insert_report(
        &self,
        report: &CvdReport,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let body = serde_json::to_string(report).map_err(|e| corrupt("CVD report", e))?;
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO pm_cvd_reports (id, received_at, status, version, body)
             VALUES ($1, $2, $3, 1, $4)",
        )
        .bind(report.id.as_str())
        .bind(ts(report.received_at))
        .bind(report.status.as_str())
        .bind(body)
        .execute(&mut *tx)
        .await
        .map_err(|e| on_conflict(e, || format!("CVD report {} already exists", report.id)))?;
        commit_audited(tx, audit).await
    }

    async fn update_report(
        &self,
        report: &CvdReport,
        expected: u64,
        audit: &AuditRecord,
    ) -> Result<u64, StoreError> {
        let body = serde_json::to_string(report).map_err(|e| corrupt("CVD report", e))?;
        let mut tx = self.begin().await?;
        // `received_at` is left as inserted: it is when the report arrived, not editable.
        let n = sqlx::query(
            "UPDATE pm_cvd_reports SET status = $1, version = version + 1, body = $2
             WHERE id = $3 AND version = $4",
        )
        .bind(report.status.as_str())
        .bind(body)
        .bind(report.id.as_str())
        .bind(to_i64("CVD report version", expected)?)
        .execute(&mut *tx)
        .await
        .map_err(be)?
        .rows_affected();
        if n != 1 {
            let current = sqlx::query_scalar("SELECT version FROM pm_cvd_reports WHERE id = $1")
                .bind(report.id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(be)?;
            let what = format!("CVD report {}", report.id);
            return Err(missed_update(current, what, expected));
        }
        commit_audited(tx, audit).await?;
        Ok(expected + 1)
    }

    async fn report(&self, id: &TrackingId) -> Result<Option<VersionedReport>, StoreError> {
        sqlx::query("SELECT * FROM pm_cvd_reports WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(self.pool())
            .await
            .map_err(be)?
            .map(|r| report_from(&r))
            .transpose()
    }

    async fn reports(&self, limit: u32, offset: u64) -> Result<Vec<VersionedReport>, StoreError> {
        // Tracking ids are random; `arrival` breaks ties within a second in arrival order.
        sqlx::query(
            "SELECT * FROM pm_cvd_reports ORDER BY received_at DESC, arrival DESC
             LIMIT $1 OFFSET $2",
        )
        .bind(i64::from(limit))
        .bind(to_i64("offset", offset)?)
        .fetch_all(self.pool())
        .await
        .map_err(be)?
        .iter()
        .map(report_from)
        .collect()
    }

    async fn count_reports_since(&self, since: OffsetDateTime) -> Result<u64, StoreError> {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pm_cvd_reports WHERE received_at >= $1")
                .bind(ts(since))
                .fetch_one(self.pool())
                .await
                .map_err(be)?;
        u64::try_from(n).map_err(|e| corrupt("CVD report count", e))
    }

    async fn put_advisory(
        &self,
        id: &str,
        body: &str,
        expected: Option<u64>,
        author: &Actor,
        audit: &AuditRecord,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let current: Option<i64> =
            sqlx::query_scalar("SELECT max(version) FROM pm_advisories WHERE id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .map_err(be)?;
        let current = current
            .map(|v| u64::try_from(v).map_err(|e| corrupt("advisory version", e)))
            .transpose()?;
        let stale = |current: Option<u64>| {
            format!(
                "advisory {id} is at version {}, not {} (someone changed it meanwhile)",
                shown(current),
                shown(expected),
            )
        };
        if current != expected {
            return Err(StoreError::Conflict(stale(current)));
        }
        let next = current.unwrap_or(0) + 1;
        // A replica that read the same version and wrote first owns (id, next).
        sqlx::query(
            "INSERT INTO pm_advisories (id, version, body, author, at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(to_i64("advisory version", next)?)
        .bind(body)
        .bind(author.as_str())
        .bind(ts(OffsetDateTime::now_utc()))
        .execute(&mut *tx)
        .await
        .map_err(|e| on_conflict(e, || stale(Some(next))))?;
        commit_audited(tx, audit).await?;
        Ok(next)
    }

    async fn advisory(&self, id: &str) -> Result<Option<StoredAdvisory>, StoreError> {
        sqlx::query("SELECT * FROM pm_advisories WHERE id = $1 ORDER BY version DESC LIMIT 1")
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(be)?
            .map(|r| advisory_from(&r))
            .transpose()
    }

    async fn advisories(&self) -> Result<Vec<StoredAdvisory>, StoreError> {
        // Ordered by the bytes of the id, as SQLite does, whatever the database's collation.
        sqlx::query(
            "SELECT DISTINCT ON (id COLLATE \"C\") * FROM pm_advisories
             ORDER BY id COLLATE \"C\", version DESC",
        )
        .fetch_all(self.pool())
        .await
        .map_err(be)?
        .iter()
        .map(advisory_from)
        .collect()
    }

    async fn advisory_history(&self, id: &str) -> Result<Vec<StoredAdvisory>, StoreError> {
        sqlx::query("SELECT * FROM pm_advisories WHERE id = $1 ORDER BY version")
            .bind(id)
            .fetch_all(self.pool())
            .await
            .map_err(be)?
            .iter()
            .map(advisory_from)
            .collect()
    }
}
