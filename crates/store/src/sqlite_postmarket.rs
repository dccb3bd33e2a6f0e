//! `PostmarketStore` for SQLite: the append-only event log, detection rules, incidents, CVD
//! reports and advisories (migration 0007).
//!
//! Event batches are the hot path (tens of thousands of events a second, in batches of about a
//! hundred, from many connections at once). With `synchronous=FULL` every commit costs an
//! fsync, so, as for issuances, one writer task drains whatever batches are waiting and commits
//! them in one transaction; each caller is answered with its own result once that transaction
//! is durable. Everything else is rare and uses ordinary `BEGIN IMMEDIATE` transactions.

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
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection, SqlitePool};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use crate::StoreError;
use crate::sqlite::{
    SqliteStore, append_audit, be, commit_audited, corrupt, from_ts, placeholders, ts,
};

/// Most event rows one group transaction carries: bounds the time a caller at the back of a
/// group waits for the ones in front of it.
const MAX_GROUP_ROWS: usize = 8192;

/// Rows per `INSERT` statement: 9 parameters a row keeps a statement well under SQLite's
/// 32766 bound parameters.
const ROWS_PER_STATEMENT: usize = 1000;

/// One event ready to insert. Columns and the JSON body are computed by the caller, on its own
/// task, so the single writer only talks to SQLite.
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

/// One caller's `append_events`, as queued for the writer.
pub(crate) struct EventBatch {
    source: EventSource,
    received_at: i64,
    rows: Vec<EventRow>,
}

type EventReply = oneshot::Sender<Result<Vec<usize>, StoreError>>;

/// The queue to the event writer task; held by `SqliteStore`.
pub(crate) type EventWriter = mpsc::Sender<(EventBatch, EventReply)>;

/// Starts the event writer on a connection of its own (detached from the pool, like the
/// issuance writer, so it never waits for a pooled connection).
pub(crate) async fn spawn_event_writer(pool: &SqlitePool) -> Result<EventWriter, StoreError> {
    let conn = pool.acquire().await.map_err(be)?.detach();
    let (tx, rx) = mpsc::channel(4096);
    tokio::spawn(event_writer_loop(conn, rx));
    Ok(tx)
}

/// Takes whatever batches are waiting (up to [`MAX_GROUP_ROWS`]) and commits them together.
/// Batches pile up while a commit's fsync runs, so under load groups grow by themselves and
/// an idle store still commits a lone batch at once.
async fn event_writer_loop(
    mut conn: SqliteConnection,
    mut rx: mpsc::Receiver<(EventBatch, EventReply)>,
) {
    while let Some(first) = rx.recv().await {
        let mut rows = first.0.rows.len();
        let mut group = vec![first];
        while rows < MAX_GROUP_ROWS {
            match rx.try_recv() {
                Ok(item) => {
                    rows += item.0.rows.len();
                    group.push(item);
                }
                Err(_) => break,
            }
        }
        let batches: Vec<&EventBatch> = group.iter().map(|(b, _)| b).collect();
        let results = commit_events(&mut conn, &batches).await;
        for ((_, reply), res) in group.into_iter().zip(results) {
            // A caller that gave up waiting has nothing to be told; its events are stored.
            let _ = reply.send(res);
        }
    }
}

/// Commits a group in one transaction. If that fails, each batch is retried in a transaction
/// of its own, so one caller's failure never becomes its neighbours'.
async fn commit_events(
    conn: &mut SqliteConnection,
    batches: &[&EventBatch],
) -> Vec<Result<Vec<usize>, StoreError>> {
    if batches.len() > 1
        && let Ok(stored) = commit_event_group(conn, batches).await
    {
        return stored.into_iter().map(Ok).collect();
    }
    let mut out = Vec::with_capacity(batches.len());
    for b in batches {
        out.push(
            commit_event_group(conn, std::slice::from_ref(b))
                .await
                .map(|mut v| v.pop().unwrap_or_default()),
        );
    }
    out
}

async fn commit_event_group(
    conn: &mut SqliteConnection,
    batches: &[&EventBatch],
) -> Result<Vec<Vec<usize>>, StoreError> {
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *conn)
        .await
        .map_err(be)?;
    match insert_events(conn, batches).await {
        Ok(stored) => match sqlx::query("COMMIT").execute(&mut *conn).await {
            Ok(_) => Ok(stored),
            Err(e) => {
                let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                Err(be(e))
            }
        },
        Err(e) => {
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            Err(e)
        }
    }
}

/// Inserts a group's events and returns, per batch, the positions of the ones stored.
///
/// No audit entry is written: events are observations reported by devices, not changes of
/// state made by someone, and the log itself is append-only. What events cause (incidents,
/// purges) is audited where it happens.
async fn insert_events(
    conn: &mut SqliteConnection,
    batches: &[&EventBatch],
) -> Result<Vec<Vec<usize>>, StoreError> {
    // Only the first row of each (device, event id) in group order goes to SQLite. A repeat
    // later in the same call, or in a batch queued behind, is then plainly a duplicate, and
    // each key that comes back from RETURNING belongs to exactly one row.
    let mut first = HashSet::new();
    let mut unique: Vec<(usize, &EventBatch, &EventRow)> = Vec::new();
    for (i, b) in batches.iter().enumerate() {
        for r in &b.rows {
            if first.insert((r.device.as_str(), r.event_id.as_str())) {
                unique.push((i, b, r));
            }
        }
    }
    let mut stored: HashSet<(String, String)> = HashSet::with_capacity(unique.len());
    for chunk in unique.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO pm_events (device, model, event_id, event_type, severity, at, received_at, source, body)
             VALUES {} ON CONFLICT (device, event_id) DO NOTHING RETURNING device, event_id",
            placeholders(chunk.len(), 9)
        );
        let mut q = sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(sql));
        for (_, b, r) in chunk {
            q = q
                .bind(&r.device)
                .bind(&r.model)
                .bind(&r.event_id)
                .bind(r.event_type)
                .bind(r.severity)
                .bind(r.at)
                .bind(b.received_at)
                .bind(b.source.as_str())
                .bind(&r.body);
        }
        stored.extend(q.fetch_all(&mut *conn).await.map_err(be)?);
    }
    let mut out = vec![Vec::new(); batches.len()];
    for (i, _, r) in unique {
        if stored.contains(&(r.device.clone(), r.event_id.clone())) {
            out[i].push(r.index);
        }
    }
    Ok(out)
}

fn to_i64(what: &str, v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|e| StoreError::Refused(format!("{what} too large: {e}")))
}

fn version_of(r: &SqliteRow, what: &str) -> Result<u64, StoreError> {
    u64::try_from(r.try_get::<i64, _>("version").map_err(be)?)
        .map_err(|e| corrupt(&format!("{what} version"), e))
}

fn actor_of(r: &SqliteRow, what: &str) -> Result<Actor, StoreError> {
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

fn event_from(r: &SqliteRow) -> Result<StoredEvent, StoreError> {
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

fn incident_from(r: &SqliteRow) -> Result<VersionedIncident, StoreError> {
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

fn report_from(r: &SqliteRow) -> Result<VersionedReport, StoreError> {
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

fn rules_from(r: &SqliteRow) -> Result<StoredRules, StoreError> {
    Ok(StoredRules {
        version: version_of(r, "detection rules")?,
        body: r.try_get("body").map_err(be)?,
        author: actor_of(r, "detection rules")?,
        at: from_ts(r.try_get("at").map_err(be)?)?,
    })
}

fn advisory_from(r: &SqliteRow) -> Result<StoredAdvisory, StoreError> {
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
impl PostmarketStore for SqliteStore {
    async fn append_events(
        &self,
        source: EventSource,
        received_at: OffsetDateTime,
        events: &[AttributedEvent],
    ) -> Result<Vec<usize>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let rows = events
            .iter()
            .enumerate()
            .map(|(index, ae)| {
                let e = &ae.event;
                Ok(EventRow {
                    index,
                    device: ae.device.urn(),
                    model: ae.device.model.as_str().to_owned(),
                    event_id: e.id.as_str().to_owned(),
                    event_type: e.event_type().as_str(),
                    severity: e.severity.as_str(),
                    at: ts(e.at),
                    body: serde_json::to_string(e).map_err(|e| corrupt("event", e))?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let batch = EventBatch {
            source,
            received_at: ts(received_at),
            rows,
        };
        let (tx, rx) = oneshot::channel();
        self.events
            .send((batch, tx))
            .await
            .map_err(|_| StoreError::Backend("the store's event writer has stopped".into()))?;
        rx.await.map_err(|_| {
            StoreError::Backend("the store's event writer dropped the request".into())
        })?
    }

    async fn events(&self, q: &EventQuery) -> Result<Vec<StoredEvent>, StoreError> {
        // Only the filters asked for go into the statement: `(? IS NULL OR col = ?)` would keep
        // SQLite from using the device index on a log that grows by the million.
        let mut conds: Vec<&str> = Vec::new();
        if q.device.is_some() {
            conds.push("device = ?");
        }
        if q.after_seq.is_some() {
            conds.push("seq > ?");
        }
        if q.received_since.is_some() {
            conds.push("received_at >= ?");
        }
        let sql = format!(
            "SELECT seq, device, source, received_at, body FROM pm_events {} ORDER BY seq {} LIMIT ?",
            if conds.is_empty() {
                String::new()
            } else {
                format!("WHERE {}", conds.join(" AND "))
            },
            if q.newest_first { "DESC" } else { "ASC" },
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(d) = &q.device {
            query = query.bind(d.urn());
        }
        if let Some(s) = q.after_seq {
            query = query.bind(to_i64("sequence cursor", s)?);
        }
        if let Some(t) = q.received_since {
            query = query.bind(ts(t));
        }
        query
            .bind(i64::from(q.limit))
            .fetch_all(self.pool())
            .await
            .map_err(be)?
            .iter()
            .map(event_from)
            .collect()
    }

    async fn count_events(&self, device: Option<&DeviceId>) -> Result<u64, StoreError> {
        let n: i64 = match device {
            Some(d) => sqlx::query_scalar("SELECT count(*) FROM pm_events WHERE device = ?")
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
        let horizon: Option<i64> =
            sqlx::query_scalar("SELECT horizon FROM pm_retention WHERE id = 1")
                .fetch_optional(&mut *tx)
                .await
                .map_err(be)?;
        let horizon = horizon
            .ok_or_else(|| corrupt("event retention horizon", "the row is missing"))?
            .max(ts(before));
        // The database refuses a lower horizon and deletes of newer rows anyway; raising it
        // first is what makes the delete below allowed.
        sqlx::query("UPDATE pm_retention SET horizon = ? WHERE id = 1")
            .bind(horizon)
            .execute(&mut *tx)
            .await
            .map_err(be)?;
        let n = sqlx::query("DELETE FROM pm_events WHERE received_at < ?")
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
        if current != expected {
            return Err(StoreError::Conflict(format!(
                "the detection rules are at version {}, not {} (someone changed them meanwhile)",
                shown(current),
                shown(expected),
            )));
        }
        let next = current.unwrap_or(0) + 1;
        sqlx::query("INSERT INTO pm_rules (version, body, author, at) VALUES (?, ?, ?, ?)")
            .bind(to_i64("detection rules version", next)?)
            .bind(body)
            .bind(author.as_str())
            .bind(ts(OffsetDateTime::now_utc()))
            .execute(&mut *tx)
            .await
            .map_err(be)?;
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
        // The id is taken before the insert because the body carries it. `sqlite_sequence`
        // holds the highest id AUTOINCREMENT ever gave out, and BEGIN IMMEDIATE holds the
        // write lock, so no one else can take the same number meanwhile.
        let id: i64 = sqlx::query_scalar(
            "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'pm_incidents'), 0) + 1",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(be)?;
        let id = IncidentId(u64::try_from(id).map_err(|e| corrupt("incident id", e))?);
        let incident = incident.clone().with_id(id);
        let body = serde_json::to_string(&incident).map_err(|e| corrupt("incident", e))?;
        sqlx::query(
            "INSERT INTO pm_incidents (id, rule, model, status, opened_at, updated_at, version, body)
             VALUES (?, ?, ?, ?, ?, ?, 1, ?)",
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
        .map_err(|e| match be(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!(
                "an incident for rule {} on model {} is already open",
                incident.rule().as_str(),
                incident.model()
            )),
            other => other,
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
        let n = sqlx::query(
            "UPDATE pm_incidents SET rule = ?, model = ?, status = ?, opened_at = ?, updated_at = ?,
                version = version + 1, body = ?
             WHERE id = ? AND version = ?",
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
        .map_err(|e| match be(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!(
                "another incident for rule {} on model {} is open",
                incident.rule().as_str(),
                incident.model()
            )),
            other => other,
        })?
        .rows_affected();
        if n != 1 {
            let current = sqlx::query_scalar("SELECT version FROM pm_incidents WHERE id = ?")
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
        sqlx::query("SELECT * FROM pm_incidents WHERE id = ?")
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
        // The same predicate as the partial unique index, so SQLite can answer from it.
        sqlx::query(
            "SELECT * FROM pm_incidents
             WHERE rule = ? AND model = ? AND status != 'closed' AND rule != 'manual'",
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
            "SELECT * FROM pm_incidents WHERE status != 'closed' ORDER BY id DESC LIMIT ? OFFSET ?"
        } else {
            "SELECT * FROM pm_incidents ORDER BY id DESC LIMIT ? OFFSET ?"
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
            "INSERT INTO pm_cvd_reports (id, received_at, status, version, body) VALUES (?, ?, ?, 1, ?)",
        )
        .bind(report.id.as_str())
        .bind(ts(report.received_at))
        .bind(report.status.as_str())
        .bind(body)
        .execute(&mut *tx)
        .await
        .map_err(|e| match be(e) {
            StoreError::Conflict(_) => {
                StoreError::Conflict(format!("CVD report {} already exists", report.id))
            }
            other => other,
        })?;
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
            "UPDATE pm_cvd_reports SET status = ?, version = version + 1, body = ?
             WHERE id = ? AND version = ?",
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
            let current = sqlx::query_scalar("SELECT version FROM pm_cvd_reports WHERE id = ?")
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
        sqlx::query("SELECT * FROM pm_cvd_reports WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(self.pool())
            .await
            .map_err(be)?
            .map(|r| report_from(&r))
            .transpose()
    }

    async fn reports(&self, limit: u32, offset: u64) -> Result<Vec<VersionedReport>, StoreError> {
        // Tracking ids are random; rowid breaks ties within a second in arrival order.
        sqlx::query(
            "SELECT * FROM pm_cvd_reports ORDER BY received_at DESC, rowid DESC LIMIT ? OFFSET ?",
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
            sqlx::query_scalar("SELECT count(*) FROM pm_cvd_reports WHERE received_at >= ?")
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
            sqlx::query_scalar("SELECT max(version) FROM pm_advisories WHERE id = ?")
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .map_err(be)?;
        let current = current
            .map(|v| u64::try_from(v).map_err(|e| corrupt("advisory version", e)))
            .transpose()?;
        if current != expected {
            return Err(StoreError::Conflict(format!(
                "advisory {id} is at version {}, not {} (someone changed it meanwhile)",
                shown(current),
                shown(expected),
            )));
        }
        let next = current.unwrap_or(0) + 1;
        sqlx::query(
            "INSERT INTO pm_advisories (id, version, body, author, at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(to_i64("advisory version", next)?)
        .bind(body)
        .bind(author.as_str())
        .bind(ts(OffsetDateTime::now_utc()))
        .execute(&mut *tx)
        .await
        .map_err(be)?;
        commit_audited(tx, audit).await?;
        Ok(next)
    }

    async fn advisory(&self, id: &str) -> Result<Option<StoredAdvisory>, StoreError> {
        sqlx::query("SELECT * FROM pm_advisories WHERE id = ? ORDER BY version DESC LIMIT 1")
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(be)?
            .map(|r| advisory_from(&r))
            .transpose()
    }

    async fn advisories(&self) -> Result<Vec<StoredAdvisory>, StoreError> {
        sqlx::query(
            "SELECT a.* FROM pm_advisories a
             WHERE a.version = (SELECT max(version) FROM pm_advisories WHERE id = a.id)
             ORDER BY a.id",
        )
        .fetch_all(self.pool())
        .await
        .map_err(be)?
        .iter()
        .map(advisory_from)
        .collect()
    }

    async fn advisory_history(&self, id: &str) -> Result<Vec<StoredAdvisory>, StoreError> {
        sqlx::query("SELECT * FROM pm_advisories WHERE id = ? ORDER BY version")
            .bind(id)
            .fetch_all(self.pool())
            .await
            .map_err(be)?
            .iter()
            .map(advisory_from)
            .collect()
    }
}
