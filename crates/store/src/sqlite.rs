//! The SQLite store: WAL journal, one in-process writer for issuances with group commit.
//!
//! Issuance is the hot path. Each issuance is its own savepoint inside a transaction that may
//! carry several concurrent issuances, so one fsync covers a batch while each issuance still
//! commits or fails alone: a caller is answered only after the transaction holding its rows
//! is durable. Other writes are rare and use ordinary `BEGIN IMMEDIATE` transactions.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use medsec_ca::{
    CaRecord, CaRole, CaStore, CertFilter, CertRecord, CertStatus, CrlRecord, DeviceRecord,
    DeviceStatus, EnrollmentToken, Issuance, IssuanceKind, Profile, Revocation,
};
use medsec_core::{
    AuditEntry, AuditRecord, CertSerial, DeviceId, DeviceModel, DeviceSerial, KeyAlgorithm, Name,
    RevocationReason,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqliteConnection, SqlitePool};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use crate::{AuditLog, StoreError};

/// How hard SQLite works to make a commit durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// fsync at every commit: an acknowledged issuance survives power loss. The default.
    #[default]
    Full,
    /// WAL `NORMAL`: still atomic and crash-safe for the process, but the newest commits may
    /// be lost on power failure. Only for throw-away data (tests, benchmarks that say so).
    DangerNormal,
}

pub(crate) fn be(e: sqlx::Error) -> StoreError {
    if let Some(db) = e.as_database_error() {
        if db.is_unique_violation() {
            return StoreError::Conflict(format!("unique constraint: {}", db.message()));
        }
        if db.is_foreign_key_violation() {
            return StoreError::NotFound(format!("referenced row missing: {}", db.message()));
        }
    }
    StoreError::Backend(e.to_string())
}

pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

pub(crate) fn ts(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

pub(crate) fn from_ts(v: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp(v).map_err(|e| corrupt("timestamp", e))
}

fn opt_ts(v: Option<i64>) -> Result<Option<OffsetDateTime>, StoreError> {
    v.map(from_ts).transpose()
}

type Reply = oneshot::Sender<Result<(), StoreError>>;

/// The SQLite implementation of every storage trait.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    writer: mpsc::Sender<(Issuance, Reply)>,
    /// The post-market event writer: event batches are group-committed like issuances.
    pub(crate) events: crate::sqlite_postmarket::EventWriter,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

/// Most issuances one transaction carries.
/// Bounded by SQLite's 32766 bound parameters per statement: 14 per certificate row.
const MAX_BATCH: usize = 256;

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub async fn open(path: &Path, sync: Synchronous) -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match sync {
                Synchronous::Full => SqliteSynchronous::Full,
                Synchronous::DangerNormal => SqliteSynchronous::Normal,
            })
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(opts)
            .await
            .map_err(|e| StoreError::Backend(format!("open {}: {e}", path.display())))?;
        crate::migrate::run_sqlite(&pool, crate::migrate::SQLITE).await?;
        let (tx, rx) = mpsc::channel(4096);
        let conn = pool.acquire().await.map_err(be)?.detach();
        tokio::spawn(writer_loop(conn, rx));
        let events = crate::sqlite_postmarket::spawn_event_writer(&pool).await?;
        Ok(SqliteStore {
            pool,
            writer: tx,
            events,
        })
    }

    /// The pool, for tests and tools that inspect the database.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub(crate) async fn begin(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(be)
    }
}

async fn writer_loop(mut conn: SqliteConnection, mut rx: mpsc::Receiver<(Issuance, Reply)>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let results = commit_batch(&mut conn, &batch).await;
        for ((_, reply), res) in batch.into_iter().zip(results) {
            let _ = reply.send(res);
        }
    }
}

/// Commits a batch in one transaction (one fsync). If any issuance in it is refused, the whole
/// transaction is rolled back and each issuance is retried in a transaction of its own, so a
/// refusal never takes its neighbours down with it and never leaves a partial record.
async fn commit_batch(
    conn: &mut SqliteConnection,
    batch: &[(Issuance, Reply)],
) -> Vec<Result<(), StoreError>> {
    let all: Vec<&Issuance> = batch.iter().map(|(i, _)| i).collect();
    if all.len() > 1 && commit_group(conn, &all).await.is_ok() {
        return batch.iter().map(|_| Ok(())).collect();
    }
    let mut out = Vec::with_capacity(batch.len());
    for iss in all {
        out.push(commit_group(conn, &[iss]).await);
    }
    out
}

async fn commit_group(conn: &mut SqliteConnection, items: &[&Issuance]) -> Result<(), StoreError> {
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *conn)
        .await
        .map_err(be)?;
    match insert_issuances(conn, items).await {
        Ok(()) => match sqlx::query("COMMIT").execute(&mut *conn).await {
            Ok(_) => Ok(()),
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

/// `(?, ?, ...), (?, ?, ...)` for `rows` rows of `cols` parameters.
pub(crate) fn placeholders(rows: usize, cols: usize) -> String {
    let row = format!("({})", vec!["?"; cols].join(", "));
    vec![row; rows].join(", ")
}

/// Writes a group of issuances with a handful of multi-row statements: each statement costs a
/// round trip to SQLite's worker thread, and per-row statements made that the bottleneck.
async fn insert_issuances(
    conn: &mut SqliteConnection,
    items: &[&Issuance],
) -> Result<(), StoreError> {
    let mut chain = Chain::read(conn).await?;

    // Devices seen for the first time are created active; RETURNING tells which were new.
    let sql = format!(
        "INSERT INTO devices (model, serial, status, created_at) VALUES {} ON CONFLICT DO NOTHING RETURNING model, serial",
        placeholders(items.len(), 3).replace("?, ?, ?)", "?, ?, 'active', ?)")
    );
    let mut q = sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(sql));
    for iss in items {
        let c = &iss.cert;
        q = q
            .bind(c.device.model.as_str())
            .bind(c.device.serial.as_str())
            .bind(ts(c.issued_at));
    }
    let created: std::collections::HashSet<(String, String)> = q
        .fetch_all(&mut *conn)
        .await
        .map_err(be)?
        .into_iter()
        .collect();

    // Devices that existed already must still be active.
    let existing: Vec<&&Issuance> = items
        .iter()
        .filter(|i| {
            !created.contains(&(
                i.cert.device.model.to_string(),
                i.cert.device.serial.to_string(),
            ))
        })
        .collect();
    if !existing.is_empty() {
        let sql = format!(
            "SELECT model, serial FROM devices WHERE status <> 'active' AND (model, serial) IN (VALUES {})",
            placeholders(existing.len(), 2)
        );
        let mut q = sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(sql));
        for iss in &existing {
            q = q
                .bind(iss.cert.device.model.as_str())
                .bind(iss.cert.device.serial.as_str());
        }
        if let Some((m, s)) = q.fetch_optional(&mut *conn).await.map_err(be)? {
            return Err(StoreError::Refused(format!(
                "device urn:medsec:device:{m}:{s} is retired"
            )));
        }
    }

    // Certificates; a duplicate serial fails the statement and so the group.
    let sql = format!(
        "INSERT INTO certs (serial, issuer, device_model, device_serial, profile, kind, subject, key_algorithm,
            spki_sha256, not_before, not_after, issued_at, replaces, der) VALUES {}",
        placeholders(items.len(), 14)
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for iss in items {
        let c = &iss.cert;
        q = q
            .bind(c.serial.to_hex())
            .bind(c.issuer.as_str())
            .bind(c.device.model.as_str())
            .bind(c.device.serial.as_str())
            .bind(c.profile.as_str())
            .bind(c.kind.as_str())
            .bind(&c.subject)
            .bind(c.key_algorithm.as_str())
            .bind(&c.spki_sha256)
            .bind(ts(c.not_before))
            .bind(ts(c.not_after))
            .bind(ts(c.issued_at))
            .bind(c.replaces.as_ref().map(|s| s.to_hex()))
            .bind(&c.der);
    }
    q.execute(&mut *conn).await.map_err(|e| match be(e) {
        StoreError::Conflict(_) if items.len() == 1 => StoreError::Conflict(format!(
            "certificate serial {} already exists",
            items[0].cert.serial
        )),
        StoreError::Conflict(m) => StoreError::Conflict(format!("certificate serial: {m}")),
        other => other,
    })?;

    for iss in items {
        if let Some(hash) = &iss.spend_token {
            let n = sqlx::query(
                "UPDATE enrollment_tokens SET used_at = ?, used_by_cert = ?
                 WHERE secret_sha256 = ? AND used_at IS NULL AND expires_at > ?",
            )
            .bind(ts(iss.cert.issued_at))
            .bind(iss.cert.serial.to_hex())
            .bind(hash)
            .bind(ts(iss.cert.issued_at))
            .execute(&mut *conn)
            .await
            .map_err(be)?
            .rows_affected();
            if n != 1 {
                return Err(StoreError::Refused(
                    "enrollment token is unknown, expired or already used".into(),
                ));
            }
        }
        if let Some((old, at)) = &iss.supersede {
            let n = sqlx::query(
                "UPDATE certs SET revoke_after = ? WHERE serial = ? AND revoked_at IS NULL",
            )
            .bind(ts(*at))
            .bind(old.to_hex())
            .execute(&mut *conn)
            .await
            .map_err(be)?
            .rows_affected();
            if n != 1 {
                return Err(StoreError::Refused(format!(
                    "certificate {old} is revoked or missing; cannot supersede it"
                )));
            }
        }
    }

    // Audit entries, in issuance order, chained and written in one statement.
    let mut entries = Vec::with_capacity(items.len() * 2);
    let mut registered = std::collections::HashSet::new();
    for iss in items {
        let c = &iss.cert;
        let key = (c.device.model.to_string(), c.device.serial.to_string());
        if created.contains(&key) && registered.insert(key) {
            let reg = AuditRecord::new(
                &iss.audit
                    .first()
                    .map(|a| a.actor.clone())
                    .unwrap_or_else(medsec_core::Actor::system),
                medsec_core::AuditAction::DeviceRegistered,
                c.device.urn(),
                serde_json::json!({"profile": c.profile}),
            );
            entries.push(chain.next(&reg));
        }
        for a in &iss.audit {
            entries.push(chain.next(a));
        }
    }
    Chain::insert(conn, &entries).await?;
    chain.save(conn).await
}

/// The audit chain's head while a transaction appends to it. Read once per transaction, which
/// holds SQLite's write lock, so the head cannot move underneath; saved once at the end.
struct Chain {
    head: Option<(i64, String)>,
}

impl Chain {
    async fn read(conn: &mut SqliteConnection) -> Result<Chain, StoreError> {
        let head = sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_optional(&mut *conn)
            .await
            .map_err(be)?;
        Ok(Chain { head })
    }

    /// Chains the next entry (not yet written).
    fn next(&mut self, rec: &AuditRecord) -> AuditEntry {
        let e = AuditEntry::chain(
            self.head.as_ref().map(|(s, h)| (s, h.as_str())),
            OffsetDateTime::now_utc(),
            rec,
        );
        self.head = Some((e.seq, e.hash.clone()));
        e
    }

    async fn insert(conn: &mut SqliteConnection, entries: &[AuditEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "INSERT INTO audit_log (seq, at_micros, actor, action, subject, details, prev_hash, hash) VALUES {}",
            placeholders(entries.len(), 8)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for e in entries {
            q = q
                .bind(e.seq)
                .bind(e.at_micros)
                .bind(&e.actor)
                .bind(&e.action)
                .bind(&e.subject)
                .bind(&e.details)
                .bind(&e.prev_hash)
                .bind(&e.hash);
        }
        q.execute(&mut *conn).await.map_err(be)?;
        Ok(())
    }

    async fn append(
        &mut self,
        conn: &mut SqliteConnection,
        rec: &AuditRecord,
    ) -> Result<(), StoreError> {
        let e = self.next(rec);
        Chain::insert(conn, std::slice::from_ref(&e)).await
    }

    async fn save(&self, conn: &mut SqliteConnection) -> Result<(), StoreError> {
        let Some((seq, hash)) = &self.head else {
            return Ok(());
        };
        sqlx::query(
            "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?)
             ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
        )
        .bind(seq)
        .bind(hash)
        .execute(&mut *conn)
        .await
        .map_err(be)?;
        Ok(())
    }
}

/// Appends the audit entry describing a change and commits the transaction that made it.
pub(crate) async fn commit_audited(
    mut tx: sqlx::Transaction<'static, sqlx::Sqlite>,
    audit: &AuditRecord,
) -> Result<(), StoreError> {
    append_audit(&mut tx, audit).await?;
    tx.commit().await.map_err(be)
}

/// Appends one audit entry inside the caller's transaction.
pub(crate) async fn append_audit(
    conn: &mut SqliteConnection,
    rec: &AuditRecord,
) -> Result<(), StoreError> {
    let mut chain = Chain::read(conn).await?;
    chain.append(conn, rec).await?;
    chain.save(conn).await
}

fn parse<T: FromStr>(what: &str, s: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    s.parse().map_err(|e| corrupt(what, e))
}

fn revocation_from(row: &SqliteRow) -> Result<Option<Revocation>, StoreError> {
    let reason: Option<String> = row.try_get("revoked_reason").map_err(be)?;
    let Some(reason) = reason else {
        return Ok(None);
    };
    Ok(Some(Revocation {
        reason: parse::<RevocationReason>("revocation reason", &reason)?,
        revoked_at: from_ts(row.try_get("revoked_at").map_err(be)?)?,
        invalidity_date: opt_ts(row.try_get("invalidity_date").map_err(be)?)?,
    }))
}

/// `(serial, revocation)` pairs from rows selecting serial and the revocation columns.
fn serial_revocations(rows: &[SqliteRow]) -> Result<Vec<(CertSerial, Revocation)>, StoreError> {
    rows.iter()
        .map(|r| {
            let s: String = r.try_get("serial").map_err(be)?;
            let rev = revocation_from(r)?.ok_or_else(|| corrupt("revocation", "missing reason"))?;
            Ok((parse("serial", &s)?, rev))
        })
        .collect()
}

fn ca_from(row: &SqliteRow) -> Result<CaRecord, StoreError> {
    let g = |c: &str| row.try_get::<String, _>(c).map_err(be);
    let role = g("role")?;
    let parent: Option<String> = row.try_get("parent").map_err(be)?;
    Ok(CaRecord {
        name: parse("CA name", &g("name")?)?,
        role: CaRole::parse(&role).ok_or_else(|| corrupt("CA role", &role))?,
        parent: parent.map(|p| parse("CA parent", &p)).transpose()?,
        cert_der: row.try_get("cert_der").map_err(be)?,
        key_ref: row.try_get("key_ref").map_err(be)?,
        key_algorithm: parse::<KeyAlgorithm>("key algorithm", &g("key_algorithm")?)?,
        crl_url: row.try_get("crl_url").map_err(be)?,
        ocsp_url: row.try_get("ocsp_url").map_err(be)?,
        crl_shards: {
            let n: i64 = row.try_get("crl_shards").map_err(be)?;
            u32::try_from(n).map_err(|e| corrupt("CRL shard count", e))?
        },
        crl_validity_secs: row.try_get("crl_validity_secs").map_err(be)?,
        serial: parse("CA serial", &g("serial")?)?,
        not_after: from_ts(row.try_get("not_after").map_err(be)?)?,
        created_at: from_ts(row.try_get("created_at").map_err(be)?)?,
        revocation: revocation_from(row)?,
    })
}

fn cert_from(row: &SqliteRow) -> Result<CertRecord, StoreError> {
    let g = |c: &str| row.try_get::<String, _>(c).map_err(be);
    let kind = g("kind")?;
    let replaces: Option<String> = row.try_get("replaces").map_err(be)?;
    Ok(CertRecord {
        serial: parse("serial", &g("serial")?)?,
        issuer: parse("issuer", &g("issuer")?)?,
        device: DeviceId::new(
            parse::<DeviceModel>("device model", &g("device_model")?)?,
            parse::<DeviceSerial>("device serial", &g("device_serial")?)?,
        ),
        profile: parse("profile", &g("profile")?)?,
        kind: IssuanceKind::parse(&kind).ok_or_else(|| corrupt("kind", &kind))?,
        subject: g("subject")?,
        key_algorithm: parse("key algorithm", &g("key_algorithm")?)?,
        spki_sha256: g("spki_sha256")?,
        not_before: from_ts(row.try_get("not_before").map_err(be)?)?,
        not_after: from_ts(row.try_get("not_after").map_err(be)?)?,
        issued_at: from_ts(row.try_get("issued_at").map_err(be)?)?,
        replaces: replaces.map(|r| parse("replaces", &r)).transpose()?,
        revoke_after: opt_ts(row.try_get("revoke_after").map_err(be)?)?,
        status: match revocation_from(row)? {
            Some(r) => CertStatus::Revoked(r),
            None => CertStatus::Valid,
        },
        der: row.try_get("der").map_err(be)?,
    })
}

fn device_from(row: &SqliteRow) -> Result<DeviceRecord, StoreError> {
    let status: String = row.try_get("status").map_err(be)?;
    Ok(DeviceRecord {
        id: DeviceId::new(
            parse(
                "device model",
                &row.try_get::<String, _>("model").map_err(be)?,
            )?,
            parse(
                "device serial",
                &row.try_get::<String, _>("serial").map_err(be)?,
            )?,
        ),
        status: DeviceStatus::parse(&status).ok_or_else(|| corrupt("device status", &status))?,
        created_at: from_ts(row.try_get("created_at").map_err(be)?)?,
        retired_at: opt_ts(row.try_get("retired_at").map_err(be)?)?,
    })
}

fn crl_from(row: &SqliteRow) -> Result<CrlRecord, StoreError> {
    let n: i64 = row.try_get("number").map_err(be)?;
    Ok(CrlRecord {
        ca: parse("CRL CA", &row.try_get::<String, _>("ca").map_err(be)?)?,
        shard: {
            let k: i64 = row.try_get("shard").map_err(be)?;
            u32::try_from(k).map_err(|e| corrupt("CRL shard", e))?
        },
        number: u64::try_from(n).map_err(|e| corrupt("CRL number", e))?,
        this_update: from_ts(row.try_get("this_update").map_err(be)?)?,
        next_update: from_ts(row.try_get("next_update").map_err(be)?)?,
        der: row.try_get("der").map_err(be)?,
    })
}

const CERT_COLS: &str = "serial, issuer, device_model, device_serial, profile, kind, subject, key_algorithm, spki_sha256, not_before, not_after, issued_at, replaces, revoke_after, revoked_reason, revoked_at, invalidity_date, der";

#[async_trait]
impl CaStore for SqliteStore {
    async fn insert_ca(&self, ca: &CaRecord, audit: &AuditRecord) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO cas (name, role, parent, serial, cert_der, key_ref, key_algorithm, crl_url, ocsp_url,
                crl_validity_secs, not_after, created_at, crl_shards) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(ca.name.as_str())
        .bind(ca.role.as_str())
        .bind(ca.parent.as_ref().map(|p| p.as_str()))
        .bind(ca.serial.to_hex())
        .bind(&ca.cert_der)
        .bind(&ca.key_ref)
        .bind(ca.key_algorithm.as_str())
        .bind(&ca.crl_url)
        .bind(&ca.ocsp_url)
        .bind(ca.crl_validity_secs)
        .bind(ts(ca.not_after))
        .bind(ts(ca.created_at))
        .bind(i64::from(ca.crl_shards))
        .execute(&mut *tx)
        .await
        .map_err(|e| match be(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!("CA {} already exists", ca.name)),
            other => other,
        })?;
        append_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(be)
    }

    async fn get_ca(&self, name: &Name) -> Result<Option<CaRecord>, StoreError> {
        sqlx::query("SELECT * FROM cas WHERE name = ?")
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(be)?
            .map(|r| ca_from(&r))
            .transpose()
    }

    async fn list_cas(&self) -> Result<Vec<CaRecord>, StoreError> {
        sqlx::query("SELECT * FROM cas ORDER BY created_at, name")
            .fetch_all(&self.pool)
            .await
            .map_err(be)?
            .iter()
            .map(ca_from)
            .collect()
    }

    async fn put_profile(&self, profile: &Profile, audit: &AuditRecord) -> Result<(), StoreError> {
        let body =
            serde_json::to_string(profile).map_err(|e| StoreError::Backend(e.to_string()))?;
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO profiles (name, body, updated_at) VALUES (?, ?, strftime('%s','now'))
             ON CONFLICT(name) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
        )
        .bind(profile.name.as_str())
        .bind(body)
        .execute(&mut *tx)
        .await
        .map_err(be)?;
        append_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(be)
    }

    async fn get_profile(&self, name: &Name) -> Result<Option<Profile>, StoreError> {
        let body: Option<String> = sqlx::query_scalar("SELECT body FROM profiles WHERE name = ?")
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(be)?;
        body.map(|b| serde_json::from_str(&b).map_err(|e| corrupt("profile", e)))
            .transpose()
    }

    async fn list_profiles(&self) -> Result<Vec<Profile>, StoreError> {
        let bodies: Vec<String> = sqlx::query_scalar("SELECT body FROM profiles ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(be)?;
        bodies
            .iter()
            .map(|b| serde_json::from_str(b).map_err(|e| corrupt("profile", e)))
            .collect()
    }

    async fn get_device(&self, id: &DeviceId) -> Result<Option<DeviceRecord>, StoreError> {
        sqlx::query("SELECT * FROM devices WHERE model = ? AND serial = ?")
            .bind(id.model.as_str())
            .bind(id.serial.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(be)?
            .map(|r| device_from(&r))
            .transpose()
    }

    async fn list_devices(&self) -> Result<Vec<DeviceRecord>, StoreError> {
        sqlx::query("SELECT * FROM devices ORDER BY model, serial")
            .fetch_all(&self.pool)
            .await
            .map_err(be)?
            .iter()
            .map(device_from)
            .collect()
    }

    async fn commit_issuance(&self, issuance: &Issuance) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.writer
            .send((issuance.clone(), tx))
            .await
            .map_err(|_| StoreError::Backend("the store's writer has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Backend("the store's writer dropped the request".into()))?
    }

    async fn get_cert(&self, serial: &CertSerial) -> Result<Option<CertRecord>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CERT_COLS} FROM certs WHERE serial = ?"
        )))
        .bind(serial.to_hex())
        .fetch_optional(&self.pool)
        .await
        .map_err(be)?
        .map(|r| cert_from(&r))
        .transpose()
    }

    async fn list_certs(&self, f: &CertFilter) -> Result<Vec<CertRecord>, StoreError> {
        let (from, until) = match f.expiring_before {
            Some((a, b)) => (Some(ts(a)), Some(ts(b))),
            None => (None, None),
        };
        let revoked = f.revoked.map(i64::from);
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CERT_COLS} FROM certs
             WHERE (?1 IS NULL OR device_model = ?1) AND (?2 IS NULL OR device_serial = ?2)
               AND (?3 IS NULL OR issuer = ?3)
               AND (?4 IS NULL OR (not_after >= ?4 AND not_after < ?5))
               AND (?6 IS NULL OR (revoked_at IS NOT NULL) = ?6)
             ORDER BY issued_at, serial LIMIT ?7"
        )))
        .bind(f.device.as_ref().map(|d| d.model.as_str()))
        .bind(f.device.as_ref().map(|d| d.serial.as_str()))
        .bind(f.issuer.as_ref().map(|n| n.as_str()))
        .bind(from)
        .bind(until)
        .bind(revoked)
        .bind(f.limit.map(i64::from).unwrap_or(-1))
        .fetch_all(&self.pool)
        .await
        .map_err(be)?
        .iter()
        .map(cert_from)
        .collect()
    }

    async fn revoke(
        &self,
        serial: &CertSerial,
        rev: &Revocation,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let current: Option<Option<String>> =
            sqlx::query_scalar("SELECT revoked_reason FROM certs WHERE serial = ?")
                .bind(serial.to_hex())
                .fetch_optional(&mut *tx)
                .await
                .map_err(be)?;
        match current {
            None => return Err(StoreError::NotFound(format!("certificate {serial}"))),
            Some(Some(r)) => {
                // Escalating to keyCompromise keeps the original revocation time but records
                // the graver reason and invalidity date; any other change is refused.
                let escalate = rev.reason == RevocationReason::KeyCompromise
                    && r != RevocationReason::KeyCompromise.as_str();
                if !escalate {
                    return Err(StoreError::Refused(format!("already revoked ({r})")));
                }
                sqlx::query("UPDATE certs SET revoked_reason = ?, invalidity_date = COALESCE(?, invalidity_date) WHERE serial = ?")
                    .bind(rev.reason.as_str())
                    .bind(rev.invalidity_date.map(ts))
                    .bind(serial.to_hex())
                    .execute(&mut *tx)
                    .await
                    .map_err(be)?;
            }
            Some(None) => {
                sqlx::query("UPDATE certs SET revoked_reason = ?, revoked_at = ?, invalidity_date = ? WHERE serial = ? AND revoked_at IS NULL")
                    .bind(rev.reason.as_str())
                    .bind(ts(rev.revoked_at))
                    .bind(rev.invalidity_date.map(ts))
                    .bind(serial.to_hex())
                    .execute(&mut *tx)
                    .await
                    .map_err(be)?;
            }
        }
        append_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(be)
    }

    async fn retire_device(
        &self,
        id: &DeviceId,
        at: OffsetDateTime,
        reason: RevocationReason,
        audit: &AuditRecord,
    ) -> Result<Vec<CertSerial>, StoreError> {
        let mut tx = self.begin().await?;
        let n = sqlx::query("UPDATE devices SET status = 'retired', retired_at = ? WHERE model = ? AND serial = ? AND status = 'active'")
            .bind(ts(at))
            .bind(id.model.as_str())
            .bind(id.serial.as_str())
            .execute(&mut *tx)
            .await
            .map_err(be)?
            .rows_affected();
        if n != 1 {
            return Err(StoreError::Refused(format!(
                "device {id} is not an active device"
            )));
        }
        let serials: Vec<String> = sqlx::query_scalar(
            "SELECT serial FROM certs WHERE device_model = ? AND device_serial = ? AND revoked_at IS NULL ORDER BY serial",
        )
        .bind(id.model.as_str())
        .bind(id.serial.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(be)?;
        sqlx::query("UPDATE certs SET revoked_reason = ?, revoked_at = ? WHERE device_model = ? AND device_serial = ? AND revoked_at IS NULL")
            .bind(reason.as_str())
            .bind(ts(at))
            .bind(id.model.as_str())
            .bind(id.serial.as_str())
            .execute(&mut *tx)
            .await
            .map_err(be)?;
        let mut rec = audit.clone();
        rec.details["revoked"] = serde_json::json!(serials);
        append_audit(&mut tx, &rec).await?;
        tx.commit().await.map_err(be)?;
        serials.iter().map(|s| parse("serial", s)).collect()
    }

    async fn due_supersessions(&self, now: OffsetDateTime) -> Result<Vec<CertSerial>, StoreError> {
        let v: Vec<String> = sqlx::query_scalar(
            "SELECT serial FROM certs WHERE revoke_after IS NOT NULL AND revoked_at IS NULL AND revoke_after <= ? ORDER BY serial",
        )
        .bind(ts(now))
        .fetch_all(&self.pool)
        .await
        .map_err(be)?;
        v.iter().map(|s| parse("serial", s)).collect()
    }

    async fn revoked_serials(&self) -> Result<Vec<CertSerial>, StoreError> {
        let v: Vec<String> =
            sqlx::query_scalar("SELECT serial FROM certs WHERE revoked_at IS NOT NULL")
                .fetch_all(&self.pool)
                .await
                .map_err(be)?;
        v.iter().map(|s| parse("serial", s)).collect()
    }

    async fn revoked_by_issuer(
        &self,
        issuer: &Name,
    ) -> Result<Vec<(CertSerial, Revocation)>, StoreError> {
        let rows = sqlx::query(
            "SELECT serial, revoked_reason, revoked_at, invalidity_date FROM certs WHERE issuer = ? AND revoked_at IS NOT NULL",
        )
        .bind(issuer.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(be)?;
        serial_revocations(&rows)
    }

    async fn revoke_ca(
        &self,
        name: &Name,
        rev: &Revocation,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let n = sqlx::query("UPDATE cas SET revoked_reason = ?, revoked_at = ?, invalidity_date = ? WHERE name = ? AND role = 'issuing' AND revoked_at IS NULL")
            .bind(rev.reason.as_str())
            .bind(ts(rev.revoked_at))
            .bind(rev.invalidity_date.map(ts))
            .bind(name.as_str())
            .execute(&mut *tx)
            .await
            .map_err(be)?
            .rows_affected();
        if n != 1 {
            return Err(StoreError::Refused(format!(
                "CA {name} is not an unrevoked issuing CA"
            )));
        }
        append_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(be)
    }

    async fn revoked_cas(
        &self,
        parent: &Name,
    ) -> Result<Vec<(CertSerial, Revocation)>, StoreError> {
        let rows = sqlx::query("SELECT serial, revoked_reason, revoked_at, invalidity_date FROM cas WHERE parent = ? AND revoked_at IS NOT NULL")
            .bind(parent.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(be)?;
        serial_revocations(&rows)
    }

    async fn store_crl(
        &self,
        ca: &Name,
        shard: u32,
        build: &medsec_ca::CrlBuilder<'_>,
        audit: &AuditRecord,
    ) -> Result<CrlRecord, StoreError> {
        let mut tx = self.begin().await?;
        let n: Option<i64> = sqlx::query_scalar(
            "UPDATE cas SET crl_number = crl_number + 1 WHERE name = ? RETURNING crl_number",
        )
        .bind(ca.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(be)?;
        let n = n.ok_or_else(|| StoreError::NotFound(format!("CA {ca}")))?;
        let number = u64::try_from(n).map_err(|e| corrupt("CRL number", e))?;
        // Read under this transaction's write lock: every revocation committed before it is
        // listed, and none can commit until this CRL and its number are stored.
        let certs = sqlx::query(
            "SELECT serial, revoked_reason, revoked_at, invalidity_date FROM certs WHERE issuer = ? AND revoked_at IS NOT NULL",
        )
        .bind(ca.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(be)?;
        let cas = sqlx::query("SELECT serial, revoked_reason, revoked_at, invalidity_date FROM cas WHERE parent = ? AND revoked_at IS NOT NULL")
            .bind(ca.as_str())
            .fetch_all(&mut *tx)
            .await
            .map_err(be)?;
        let entries = medsec_ca::CrlEntries {
            certs: serial_revocations(&certs)?,
            cas: serial_revocations(&cas)?,
        };
        let (crl, listed) = build(number, entries).map_err(StoreError::Refused)?;
        sqlx::query(
            "INSERT INTO crls (ca, number, this_update, next_update, der, shard) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(ca.as_str())
        .bind(n)
        .bind(ts(crl.this_update))
        .bind(ts(crl.next_update))
        .bind(&crl.der)
        .bind(i64::from(shard))
        .execute(&mut *tx)
        .await
        .map_err(be)?;
        let mut rec = audit.clone();
        rec.details["entries"] = serde_json::json!(listed);
        rec.details["number"] = serde_json::json!(number);
        append_audit(&mut tx, &rec).await?;
        tx.commit().await.map_err(be)?;
        Ok(crl)
    }

    async fn latest_crl(&self, ca: &Name, shard: u32) -> Result<Option<CrlRecord>, StoreError> {
        sqlx::query("SELECT * FROM crls WHERE ca = ? AND shard = ? ORDER BY number DESC LIMIT 1")
            .bind(ca.as_str())
            .bind(i64::from(shard))
            .fetch_optional(&self.pool)
            .await
            .map_err(be)?
            .map(|r| crl_from(&r))
            .transpose()
    }

    async fn append_audit(&self, audit: &AuditRecord) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        append_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(be)
    }

    async fn insert_enrollment_token(
        &self,
        secret_sha256: &str,
        t: &EnrollmentToken,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO enrollment_tokens (secret_sha256, id, device_model, device_serial, profile, created_at, expires_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(secret_sha256)
        .bind(&t.id)
        .bind(t.device.model.as_str())
        .bind(t.device.serial.as_str())
        .bind(t.profile.as_str())
        .bind(ts(t.created_at))
        .bind(ts(t.expires_at))
        .execute(&mut *tx)
        .await
        .map_err(be)?;
        append_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(be)
    }

    async fn find_enrollment_token(
        &self,
        secret_sha256: &str,
    ) -> Result<Option<EnrollmentToken>, StoreError> {
        let row = sqlx::query("SELECT * FROM enrollment_tokens WHERE secret_sha256 = ?")
            .bind(secret_sha256)
            .fetch_optional(&self.pool)
            .await
            .map_err(be)?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(EnrollmentToken {
            id: r.try_get("id").map_err(be)?,
            device: DeviceId::new(
                parse(
                    "device model",
                    &r.try_get::<String, _>("device_model").map_err(be)?,
                )?,
                parse(
                    "device serial",
                    &r.try_get::<String, _>("device_serial").map_err(be)?,
                )?,
            ),
            profile: parse("profile", &r.try_get::<String, _>("profile").map_err(be)?)?,
            created_at: from_ts(r.try_get("created_at").map_err(be)?)?,
            expires_at: from_ts(r.try_get("expires_at").map_err(be)?)?,
            used_at: opt_ts(r.try_get("used_at").map_err(be)?)?,
        }))
    }
}

#[async_trait]
impl AuditLog for SqliteStore {
    async fn audit_page(&self, after: i64, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query("SELECT * FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?")
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(be)?;
        rows.iter().map(crate::audit_entry_from).collect()
    }

    async fn audit_head(&self) -> Result<Option<(i64, String)>, StoreError> {
        sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(be)
    }
}

#[async_trait]
impl medsec_auth::AuthStore for SqliteStore {
    async fn insert_api_token(
        &self,
        t: &medsec_auth::ApiToken,
        phc_hash: &str,
        audit: &AuditRecord,
    ) -> Result<(), medsec_auth::AuthError> {
        let err = |e: StoreError| medsec_auth::AuthError::Store(e.to_string());
        let mut tx = self.begin().await.map_err(err)?;
        sqlx::query(
            "INSERT INTO api_tokens (id, name, role, phc_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&t.id)
        .bind(&t.name)
        .bind(t.role.as_str())
        .bind(phc_hash)
        .bind(ts(t.created_at))
        .bind(t.expires_at.map(ts))
        .execute(&mut *tx)
        .await
        .map_err(|e| err(be(e)))?;
        append_audit(&mut tx, audit).await.map_err(err)?;
        tx.commit().await.map_err(|e| err(be(e)))
    }

    async fn get_api_token(
        &self,
        id: &str,
    ) -> Result<Option<(medsec_auth::ApiToken, String)>, medsec_auth::AuthError> {
        let err = |e: StoreError| medsec_auth::AuthError::Store(e.to_string());
        let row = sqlx::query("SELECT * FROM api_tokens WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| err(be(e)))?;
        row.as_ref().map(crate::api_token_from).transpose()
    }

    async fn list_api_tokens(&self) -> Result<Vec<medsec_auth::ApiToken>, medsec_auth::AuthError> {
        let err = |e: StoreError| medsec_auth::AuthError::Store(e.to_string());
        let rows = sqlx::query("SELECT * FROM api_tokens ORDER BY created_at DESC, id")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| err(be(e)))?;
        rows.iter()
            .map(|r| crate::api_token_from(r).map(|(t, _)| t))
            .collect()
    }

    async fn revoke_api_token(
        &self,
        id: &str,
        audit: &AuditRecord,
    ) -> Result<bool, medsec_auth::AuthError> {
        let err = |e: StoreError| medsec_auth::AuthError::Store(e.to_string());
        let mut tx = self.begin().await.map_err(err)?;
        let n = sqlx::query("UPDATE api_tokens SET revoked = 1 WHERE id = ? AND revoked = 0")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| err(be(e)))?
            .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        append_audit(&mut tx, audit).await.map_err(err)?;
        tx.commit().await.map_err(|e| err(be(e)))?;
        Ok(true)
    }
}
