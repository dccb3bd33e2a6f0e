//! `CaStore` and `AuthStore` for PostgreSQL: CAs, profiles, devices, certificates, CRLs,
//! enrollment tokens and API tokens (migrations 0001-0003).
//!
//! SQLite funnels issuances through one in-process writer; here several replicas issue at
//! once, so every issuance is its own transaction and each invariant is held by the database:
//! the `certs` primary key makes serials unique, a conditional UPDATE spends a token at most
//! once, and the device row's lock orders an issuance against a concurrent retirement.

use std::str::FromStr;

use async_trait::async_trait;
use medsec_ca::{
    CaRecord, CaRole, CaStore, CertFilter, CertRecord, CertStatus, CrlRecord, DeviceRecord,
    DeviceStatus, EnrollmentToken, Issuance, IssuanceKind, Profile, Revocation,
};
use medsec_core::{AuditRecord, CertSerial, DeviceId, Name, RevocationReason};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use time::OffsetDateTime;

use crate::StoreError;
use crate::pg::{PgStore, append_audits, be, commit_audited};
use crate::sqlite::{corrupt, from_ts, ts};

fn opt_ts(v: Option<i64>) -> Result<Option<OffsetDateTime>, StoreError> {
    v.map(from_ts).transpose()
}

fn parse<T: FromStr>(what: &str, s: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    s.parse().map_err(|e| corrupt(what, e))
}

fn text(row: &PgRow, col: &str) -> Result<String, StoreError> {
    row.try_get(col).map_err(be)
}

fn revocation_from(row: &PgRow) -> Result<Option<Revocation>, StoreError> {
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
fn serial_revocations(rows: &[PgRow]) -> Result<Vec<(CertSerial, Revocation)>, StoreError> {
    rows.iter()
        .map(|r| {
            let rev = revocation_from(r)?.ok_or_else(|| corrupt("revocation", "missing reason"))?;
            Ok((parse("serial", &text(r, "serial")?)?, rev))
        })
        .collect()
}

fn ca_from(row: &PgRow) -> Result<CaRecord, StoreError> {
    let role = text(row, "role")?;
    let parent: Option<String> = row.try_get("parent").map_err(be)?;
    Ok(CaRecord {
        name: parse("CA name", &text(row, "name")?)?,
        role: CaRole::parse(&role).ok_or_else(|| corrupt("CA role", &role))?,
        parent: parent.map(|p| parse("CA parent", &p)).transpose()?,
        cert_der: row.try_get("cert_der").map_err(be)?,
        key_ref: row.try_get("key_ref").map_err(be)?,
        key_algorithm: parse("key algorithm", &text(row, "key_algorithm")?)?,
        crl_url: row.try_get("crl_url").map_err(be)?,
        ocsp_url: row.try_get("ocsp_url").map_err(be)?,
        crl_shards: {
            let n: i64 = row.try_get("crl_shards").map_err(be)?;
            u32::try_from(n).map_err(|e| corrupt("CRL shard count", e))?
        },
        crl_validity_secs: row.try_get("crl_validity_secs").map_err(be)?,
        serial: parse("CA serial", &text(row, "serial")?)?,
        not_after: from_ts(row.try_get("not_after").map_err(be)?)?,
        created_at: from_ts(row.try_get("created_at").map_err(be)?)?,
        revocation: revocation_from(row)?,
    })
}

fn cert_from(row: &PgRow) -> Result<CertRecord, StoreError> {
    let kind = text(row, "kind")?;
    let replaces: Option<String> = row.try_get("replaces").map_err(be)?;
    Ok(CertRecord {
        serial: parse("serial", &text(row, "serial")?)?,
        issuer: parse("issuer", &text(row, "issuer")?)?,
        device: DeviceId::new(
            parse("device model", &text(row, "device_model")?)?,
            parse("device serial", &text(row, "device_serial")?)?,
        ),
        profile: parse("profile", &text(row, "profile")?)?,
        kind: IssuanceKind::parse(&kind).ok_or_else(|| corrupt("kind", &kind))?,
        subject: text(row, "subject")?,
        key_algorithm: parse("key algorithm", &text(row, "key_algorithm")?)?,
        spki_sha256: text(row, "spki_sha256")?,
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

fn device_from(row: &PgRow) -> Result<DeviceRecord, StoreError> {
    let status = text(row, "status")?;
    Ok(DeviceRecord {
        id: DeviceId::new(
            parse("device model", &text(row, "model")?)?,
            parse("device serial", &text(row, "serial")?)?,
        ),
        status: DeviceStatus::parse(&status).ok_or_else(|| corrupt("device status", &status))?,
        created_at: from_ts(row.try_get("created_at").map_err(be)?)?,
        retired_at: opt_ts(row.try_get("retired_at").map_err(be)?)?,
    })
}

fn crl_from(row: &PgRow) -> Result<CrlRecord, StoreError> {
    let n: i64 = row.try_get("number").map_err(be)?;
    Ok(CrlRecord {
        ca: parse("CRL CA", &text(row, "ca")?)?,
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

/// Writes one issuance inside `conn`'s transaction, audit entries last. Any error leaves the
/// transaction to be rolled back by the caller, so a refused issuance leaves no trace.
/// Sends issuances to the writer task and waits for their own outcome.
pub(crate) type IssuanceWriter = tokio::sync::mpsc::Sender<(
    Issuance,
    tokio::sync::oneshot::Sender<Result<(), StoreError>>,
)>;

/// Most issuances one transaction carries.
const MAX_BATCH: usize = 128;

/// Group commit: every issuance in the audit chain takes the chain's cluster-wide lock until
/// its commit, so one transaction per issuance means one WAL flush per certificate across all
/// replicas. The writer gathers the issuances waiting in this process into one transaction,
/// each in a savepoint so a refused one rolls back alone, appends their audit entries last (the
/// lock is then held only for the append and the commit, never while waiting on a row lock),
/// and answers each caller only after the commit. A failed commit retries each issuance in a
/// transaction of its own.
pub(crate) fn issuance_writer(pool: sqlx::PgPool) -> IssuanceWriter {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(
        Issuance,
        tokio::sync::oneshot::Sender<Result<(), StoreError>>,
    )>(4096);
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(item) => batch.push(item),
                    Err(_) => break,
                }
            }
            let items: Vec<&Issuance> = batch.iter().map(|(i, _)| i).collect();
            if items.len() > 1 && commit_group(&pool, &items).await.is_ok() {
                for (_, reply) in batch {
                    let _ = reply.send(Ok(()));
                }
                continue;
            }
            let results = match commit_batch(&pool, &batch).await {
                Ok(r) => r,
                Err(_) => {
                    let mut r = Vec::with_capacity(batch.len());
                    for (iss, _) in &batch {
                        r.push(commit_one(&pool, iss).await);
                    }
                    r
                }
            };
            for ((_, reply), res) in batch.into_iter().zip(results) {
                let _ = reply.send(res);
            }
        }
    });
    tx
}

/// The fast path for a batch: a handful of multi-row statements for all of it, as the SQLite
/// writer does (per-statement round trips, not the rows, are what costs). Any refusal or
/// error rolls the whole group back, and the caller then takes the savepoint path, where each
/// issuance succeeds or fails alone.
async fn commit_group(pool: &sqlx::PgPool, items: &[&Issuance]) -> Result<(), StoreError> {
    use sqlx::{Postgres, QueryBuilder};
    use std::collections::HashSet;
    // Two issuances for one device in a batch: which one registers the device is an order
    // question the per-issuance path answers; so is a serial repeated.
    let devices: HashSet<(&str, &str)> = items
        .iter()
        .map(|i| (i.cert.device.model.as_str(), i.cert.device.serial.as_str()))
        .collect();
    let serials: HashSet<String> = items.iter().map(|i| i.cert.serial.to_hex()).collect();
    if devices.len() != items.len() || serials.len() != items.len() {
        return Err(StoreError::Refused(
            "batch repeats a device or serial".into(),
        ));
    }
    let mut tx = pool.begin().await.map_err(be)?;

    let mut q =
        QueryBuilder::<Postgres>::new("INSERT INTO devices (model, serial, status, created_at) ");
    q.push_values(items, |mut b, i| {
        b.push_bind(i.cert.device.model.as_str())
            .push_bind(i.cert.device.serial.as_str())
            .push_bind("active")
            .push_bind(ts(i.cert.issued_at));
    });
    q.push(" ON CONFLICT DO NOTHING RETURNING model, serial");
    let created: HashSet<(String, String)> = q
        .build_query_as::<(String, String)>()
        .fetch_all(&mut *tx)
        .await
        .map_err(be)?
        .into_iter()
        .collect();
    let existing: Vec<&&Issuance> = items
        .iter()
        .filter(|i| {
            !created.contains(&(
                i.cert.device.model.as_str().to_owned(),
                i.cert.device.serial.as_str().to_owned(),
            ))
        })
        .collect();
    if !existing.is_empty() {
        // FOR SHARE, as on the per-issuance path: a retirement waits for these certificates or
        // has committed first and is seen here.
        // count(*) cannot take FOR SHARE itself: the rows are locked in a subquery.
        let mut q = QueryBuilder::<Postgres>::new(
            "SELECT count(*) FROM (SELECT 1 FROM devices WHERE status = 'active' AND (model, serial) IN ",
        );
        q.push_tuples(&existing, |mut b, i| {
            b.push_bind(i.cert.device.model.as_str())
                .push_bind(i.cert.device.serial.as_str());
        });
        q.push(" FOR SHARE) AS locked");
        let active: i64 = q
            .build_query_scalar()
            .fetch_one(&mut *tx)
            .await
            .map_err(be)?;
        if usize::try_from(active).ok() != Some(existing.len()) {
            return Err(StoreError::Refused(
                "a device in the batch is retired".into(),
            ));
        }
    }

    let mut q = QueryBuilder::<Postgres>::new(
        "INSERT INTO certs (serial, issuer, device_model, device_serial, profile, kind, subject,
            key_algorithm, spki_sha256, not_before, not_after, issued_at, replaces, der) ",
    );
    q.push_values(items, |mut b, i| {
        let c = &i.cert;
        b.push_bind(c.serial.to_hex())
            .push_bind(c.issuer.as_str())
            .push_bind(c.device.model.as_str())
            .push_bind(c.device.serial.as_str())
            .push_bind(c.profile.as_str())
            .push_bind(c.kind.as_str())
            .push_bind(c.subject.as_str())
            .push_bind(c.key_algorithm.as_str())
            .push_bind(c.spki_sha256.as_str())
            .push_bind(ts(c.not_before))
            .push_bind(ts(c.not_after))
            .push_bind(ts(c.issued_at))
            .push_bind(c.replaces.as_ref().map(|s| s.to_hex()))
            .push_bind(c.der.as_slice());
    });
    q.build().execute(&mut *tx).await.map_err(be)?;

    let spending: Vec<&&Issuance> = items.iter().filter(|i| i.spend_token.is_some()).collect();
    if !spending.is_empty() {
        let mut q = QueryBuilder::<Postgres>::new(
            "UPDATE enrollment_tokens t SET used_at = v.at, used_by_cert = v.serial FROM (",
        );
        q.push_values(&spending, |mut b, i| {
            b.push_bind(i.spend_token.as_deref().unwrap_or_default())
                .push_bind(ts(i.cert.issued_at))
                .push_bind(i.cert.serial.to_hex());
        });
        q.push(
            ") AS v(hash, at, serial)
             WHERE t.secret_sha256 = v.hash AND t.used_at IS NULL AND t.expires_at > v.at",
        );
        let n = q
            .build()
            .execute(&mut *tx)
            .await
            .map_err(be)?
            .rows_affected();
        if usize::try_from(n).ok() != Some(spending.len()) {
            return Err(StoreError::Refused("a token in the batch is spent".into()));
        }
    }
    let superseding: Vec<&&Issuance> = items.iter().filter(|i| i.supersede.is_some()).collect();
    if !superseding.is_empty() {
        let mut q = QueryBuilder::<Postgres>::new("UPDATE certs c SET revoke_after = v.at FROM (");
        q.push_values(&superseding, |mut b, i| {
            if let Some((old, at)) = &i.supersede {
                b.push_bind(old.to_hex()).push_bind(ts(*at));
            }
        });
        q.push(") AS v(serial, at) WHERE c.serial = v.serial AND c.revoked_at IS NULL");
        let n = q
            .build()
            .execute(&mut *tx)
            .await
            .map_err(be)?
            .rows_affected();
        if usize::try_from(n).ok() != Some(superseding.len()) {
            return Err(StoreError::Refused(
                "a superseded certificate in the batch is revoked".into(),
            ));
        }
    }

    let mut audits: Vec<AuditRecord> = Vec::new();
    for i in items {
        let c = &i.cert;
        if created.contains(&(
            c.device.model.as_str().to_owned(),
            c.device.serial.as_str().to_owned(),
        )) {
            audits.push(AuditRecord::new(
                &i.audit
                    .first()
                    .map(|a| a.actor.clone())
                    .unwrap_or_else(medsec_core::Actor::system),
                medsec_core::AuditAction::DeviceRegistered,
                c.device.urn(),
                serde_json::json!({"profile": c.profile}),
            ));
        }
        audits.extend(i.audit.iter().cloned());
    }
    append_audits(&mut tx, &audits.iter().collect::<Vec<_>>()).await?;
    tx.commit().await.map_err(be)
}

async fn commit_one(pool: &sqlx::PgPool, iss: &Issuance) -> Result<(), StoreError> {
    let mut tx = pool.begin().await.map_err(be)?;
    let recs = insert_issuance_rows(&mut tx, iss).await?;
    append_audits(&mut tx, &recs.iter().collect::<Vec<_>>()).await?;
    tx.commit().await.map_err(be)
}

/// One transaction for the batch; the outer error means the commit itself failed.
async fn commit_batch(
    pool: &sqlx::PgPool,
    batch: &[(
        Issuance,
        tokio::sync::oneshot::Sender<Result<(), StoreError>>,
    )],
) -> Result<Vec<Result<(), StoreError>>, StoreError> {
    let mut tx = pool.begin().await.map_err(be)?;
    let mut results = Vec::with_capacity(batch.len());
    let mut audits = Vec::new();
    for (iss, _) in batch {
        sqlx::query("SAVEPOINT issuance")
            .execute(&mut *tx)
            .await
            .map_err(be)?;
        match insert_issuance_rows(&mut tx, iss).await {
            Ok(recs) => {
                sqlx::query("RELEASE SAVEPOINT issuance")
                    .execute(&mut *tx)
                    .await
                    .map_err(be)?;
                audits.extend(recs);
                results.push(Ok(()));
            }
            Err(e) => {
                sqlx::query("ROLLBACK TO SAVEPOINT issuance")
                    .execute(&mut *tx)
                    .await
                    .map_err(be)?;
                results.push(Err(e));
            }
        }
    }
    append_audits(&mut tx, &audits.iter().collect::<Vec<_>>()).await?;
    tx.commit().await.map_err(be)?;
    Ok(results)
}

/// The rows of one issuance (device, certificate, token, supersession), returning the audit
/// records that describe it, for the caller to append last.
async fn insert_issuance_rows(
    conn: &mut PgConnection,
    iss: &Issuance,
) -> Result<Vec<AuditRecord>, StoreError> {
    let c = &iss.cert;
    let model = c.device.model.as_str();
    let serial = c.device.serial.as_str();

    // A device seen for the first time is created active. A concurrent first issuance for the
    // same device waits on the insert and then sees the row as existing.
    let created = sqlx::query(
        "INSERT INTO devices (model, serial, status, created_at) VALUES ($1, $2, 'active', $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(model)
    .bind(serial)
    .bind(ts(c.issued_at))
    .execute(&mut *conn)
    .await
    .map_err(be)?
    .rows_affected()
        == 1;
    if !created {
        // FOR SHARE, not a plain read: the foreign key alone only takes a KEY SHARE lock, which
        // does not conflict with retirement's status update. Holding a share lock to commit
        // means a retirement either waits for this certificate (and then revokes it) or has
        // committed first (and this issuance sees `retired`).
        let status: Option<String> = sqlx::query_scalar(
            "SELECT status FROM devices WHERE model = $1 AND serial = $2 FOR SHARE",
        )
        .bind(model)
        .bind(serial)
        .fetch_optional(&mut *conn)
        .await
        .map_err(be)?;
        if status.as_deref() != Some("active") {
            return Err(StoreError::Refused(format!(
                "device urn:medsec:device:{model}:{serial} is retired"
            )));
        }
    }

    sqlx::query(
        "INSERT INTO certs (serial, issuer, device_model, device_serial, profile, kind, subject, key_algorithm,
            spki_sha256, not_before, not_after, issued_at, replaces, der)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(c.serial.to_hex())
    .bind(c.issuer.as_str())
    .bind(model)
    .bind(serial)
    .bind(c.profile.as_str())
    .bind(c.kind.as_str())
    .bind(&c.subject)
    .bind(c.key_algorithm.as_str())
    .bind(&c.spki_sha256)
    .bind(ts(c.not_before))
    .bind(ts(c.not_after))
    .bind(ts(c.issued_at))
    .bind(c.replaces.as_ref().map(|s| s.to_hex()))
    .bind(&c.der)
    .execute(&mut *conn)
    .await
    .map_err(|e| match be(e) {
        StoreError::Conflict(_) => {
            StoreError::Conflict(format!("certificate serial {} already exists", c.serial))
        }
        other => other,
    })?;

    if let Some(hash) = &iss.spend_token {
        // Two replicas spending the same token: the second UPDATE waits for the first's row
        // lock, re-evaluates `used_at IS NULL` on the committed row and matches nothing.
        let n = sqlx::query(
            "UPDATE enrollment_tokens SET used_at = $1, used_by_cert = $2
             WHERE secret_sha256 = $3 AND used_at IS NULL AND expires_at > $1",
        )
        .bind(ts(c.issued_at))
        .bind(c.serial.to_hex())
        .bind(hash)
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
            "UPDATE certs SET revoke_after = $1 WHERE serial = $2 AND revoked_at IS NULL",
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

    let registered = created.then(|| {
        AuditRecord::new(
            &iss.audit
                .first()
                .map(|a| a.actor.clone())
                .unwrap_or_else(medsec_core::Actor::system),
            medsec_core::AuditAction::DeviceRegistered,
            c.device.urn(),
            serde_json::json!({"profile": c.profile}),
        )
    });
    Ok(registered
        .into_iter()
        .chain(iss.audit.iter().cloned())
        .collect())
}

#[async_trait]
impl CaStore for PgStore {
    async fn insert_ca(&self, ca: &CaRecord, audit: &AuditRecord) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO cas (name, role, parent, serial, cert_der, key_ref, key_algorithm, crl_url, ocsp_url,
                crl_validity_secs, not_after, created_at, crl_shards)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
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
            StoreError::Conflict(_) => {
                StoreError::Conflict(format!("CA {} already exists", ca.name))
            }
            other => other,
        })?;
        commit_audited(tx, audit).await
    }

    async fn get_ca(&self, name: &Name) -> Result<Option<CaRecord>, StoreError> {
        sqlx::query("SELECT * FROM cas WHERE name = $1")
            .bind(name.as_str())
            .fetch_optional(self.pool())
            .await
            .map_err(be)?
            .map(|r| ca_from(&r))
            .transpose()
    }

    async fn list_cas(&self) -> Result<Vec<CaRecord>, StoreError> {
        sqlx::query("SELECT * FROM cas ORDER BY created_at, name")
            .fetch_all(self.pool())
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
            "INSERT INTO profiles (name, body, updated_at) VALUES ($1, $2, extract(epoch from now())::bigint)
             ON CONFLICT (name) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
        )
        .bind(profile.name.as_str())
        .bind(body)
        .execute(&mut *tx)
        .await
        .map_err(be)?;
        commit_audited(tx, audit).await
    }

    async fn get_profile(&self, name: &Name) -> Result<Option<Profile>, StoreError> {
        let body: Option<String> = sqlx::query_scalar("SELECT body FROM profiles WHERE name = $1")
            .bind(name.as_str())
            .fetch_optional(self.pool())
            .await
            .map_err(be)?;
        body.map(|b| serde_json::from_str(&b).map_err(|e| corrupt("profile", e)))
            .transpose()
    }

    async fn list_profiles(&self) -> Result<Vec<Profile>, StoreError> {
        let bodies: Vec<String> = sqlx::query_scalar("SELECT body FROM profiles ORDER BY name")
            .fetch_all(self.pool())
            .await
            .map_err(be)?;
        bodies
            .iter()
            .map(|b| serde_json::from_str(b).map_err(|e| corrupt("profile", e)))
            .collect()
    }

    async fn get_device(&self, id: &DeviceId) -> Result<Option<DeviceRecord>, StoreError> {
        sqlx::query("SELECT * FROM devices WHERE model = $1 AND serial = $2")
            .bind(id.model.as_str())
            .bind(id.serial.as_str())
            .fetch_optional(self.pool())
            .await
            .map_err(be)?
            .map(|r| device_from(&r))
            .transpose()
    }

    async fn list_devices(&self) -> Result<Vec<DeviceRecord>, StoreError> {
        sqlx::query("SELECT * FROM devices ORDER BY model, serial")
            .fetch_all(self.pool())
            .await
            .map_err(be)?
            .iter()
            .map(device_from)
            .collect()
    }

    async fn commit_issuance(&self, issuance: &Issuance) -> Result<(), StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.issuances
            .send((issuance.clone(), reply))
            .await
            .map_err(|_| StoreError::Backend("the issuance writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Backend("the issuance writer dropped the issuance".into()))?
    }

    async fn get_cert(&self, serial: &CertSerial) -> Result<Option<CertRecord>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CERT_COLS} FROM certs WHERE serial = $1"
        )))
        .bind(serial.to_hex())
        .fetch_optional(self.pool())
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
        // Typed casts: PostgreSQL cannot infer a parameter's type from `$n IS NULL` alone.
        // `LIMIT NULL` is no limit, as SQLite's `LIMIT -1`.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CERT_COLS} FROM certs
             WHERE ($1::text IS NULL OR device_model = $1) AND ($2::text IS NULL OR device_serial = $2)
               AND ($3::text IS NULL OR issuer = $3)
               AND ($4::bigint IS NULL OR (not_after >= $4 AND not_after < $5::bigint))
               AND ($6::boolean IS NULL OR (revoked_at IS NOT NULL) = $6)
             ORDER BY issued_at, serial LIMIT $7::bigint"
        )))
        .bind(f.device.as_ref().map(|d| d.model.as_str()))
        .bind(f.device.as_ref().map(|d| d.serial.as_str()))
        .bind(f.issuer.as_ref().map(|n| n.as_str()))
        .bind(from)
        .bind(until)
        .bind(f.revoked)
        .bind(f.limit.map(i64::from))
        .fetch_all(self.pool())
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
        // The row lock makes read-decide-write atomic against another replica revoking the
        // same certificate (with a different reason) at the same moment.
        let current: Option<Option<String>> =
            sqlx::query_scalar("SELECT revoked_reason FROM certs WHERE serial = $1 FOR UPDATE")
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
                sqlx::query(
                    "UPDATE certs SET revoked_reason = $1, invalidity_date = COALESCE($2, invalidity_date)
                     WHERE serial = $3",
                )
                .bind(rev.reason.as_str())
                .bind(rev.invalidity_date.map(ts))
                .bind(serial.to_hex())
                .execute(&mut *tx)
                .await
                .map_err(be)?;
            }
            Some(None) => {
                sqlx::query(
                    "UPDATE certs SET revoked_reason = $1, revoked_at = $2, invalidity_date = $3
                     WHERE serial = $4 AND revoked_at IS NULL",
                )
                .bind(rev.reason.as_str())
                .bind(ts(rev.revoked_at))
                .bind(rev.invalidity_date.map(ts))
                .bind(serial.to_hex())
                .execute(&mut *tx)
                .await
                .map_err(be)?;
            }
        }
        commit_audited(tx, audit).await
    }

    async fn retire_device(
        &self,
        id: &DeviceId,
        at: OffsetDateTime,
        reason: RevocationReason,
        audit: &AuditRecord,
    ) -> Result<Vec<CertSerial>, StoreError> {
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "UPDATE devices SET status = 'retired', retired_at = $1
             WHERE model = $2 AND serial = $3 AND status = 'active'",
        )
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
        // One statement both revokes and reports: a separate SELECT could list a certificate
        // another replica revokes in between, which this retirement then did not revoke.
        let mut serials: Vec<String> = sqlx::query_scalar(
            "UPDATE certs SET revoked_reason = $1, revoked_at = $2
             WHERE device_model = $3 AND device_serial = $4 AND revoked_at IS NULL
             RETURNING serial",
        )
        .bind(reason.as_str())
        .bind(ts(at))
        .bind(id.model.as_str())
        .bind(id.serial.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(be)?;
        serials.sort();
        let mut rec = audit.clone();
        rec.details["revoked"] = serde_json::json!(serials);
        commit_audited(tx, &rec).await?;
        serials.iter().map(|s| parse("serial", s)).collect()
    }

    async fn due_supersessions(&self, now: OffsetDateTime) -> Result<Vec<CertSerial>, StoreError> {
        let v: Vec<String> = sqlx::query_scalar(
            "SELECT serial FROM certs
             WHERE revoke_after IS NOT NULL AND revoked_at IS NULL AND revoke_after <= $1
             ORDER BY serial",
        )
        .bind(ts(now))
        .fetch_all(self.pool())
        .await
        .map_err(be)?;
        v.iter().map(|s| parse("serial", s)).collect()
    }

    async fn revoked_serials(&self) -> Result<Vec<CertSerial>, StoreError> {
        let v: Vec<String> =
            sqlx::query_scalar("SELECT serial FROM certs WHERE revoked_at IS NOT NULL")
                .fetch_all(self.pool())
                .await
                .map_err(be)?;
        v.iter().map(|s| parse("serial", s)).collect()
    }

    async fn revoked_by_issuer(
        &self,
        issuer: &Name,
    ) -> Result<Vec<(CertSerial, Revocation)>, StoreError> {
        let rows = sqlx::query(
            "SELECT serial, revoked_reason, revoked_at, invalidity_date FROM certs
             WHERE issuer = $1 AND revoked_at IS NOT NULL",
        )
        .bind(issuer.as_str())
        .fetch_all(self.pool())
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
        let n = sqlx::query(
            "UPDATE cas SET revoked_reason = $1, revoked_at = $2, invalidity_date = $3
             WHERE name = $4 AND role = 'issuing' AND revoked_at IS NULL",
        )
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
        commit_audited(tx, audit).await
    }

    async fn revoked_cas(
        &self,
        parent: &Name,
    ) -> Result<Vec<(CertSerial, Revocation)>, StoreError> {
        let rows = sqlx::query(
            "SELECT serial, revoked_reason, revoked_at, invalidity_date FROM cas
             WHERE parent = $1 AND revoked_at IS NOT NULL",
        )
        .bind(parent.as_str())
        .fetch_all(self.pool())
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
        // The increment locks the CA's row until commit: replicas generating CRLs together
        // take numbers one after the other, and a failed build returns its number unused.
        let n: Option<i64> = sqlx::query_scalar(
            "UPDATE cas SET crl_number = crl_number + 1 WHERE name = $1 RETURNING crl_number",
        )
        .bind(ca.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(be)?;
        let n = n.ok_or_else(|| StoreError::NotFound(format!("CA {ca}")))?;
        let number = u64::try_from(n).map_err(|e| corrupt("CRL number", e))?;
        // Read after the CA's row is locked: a generation that took a lower number committed
        // before these reads, so this CRL lists everything it did (READ COMMITTED: each
        // statement sees what was committed when it started).
        let certs = sqlx::query(
            "SELECT serial, revoked_reason, revoked_at, invalidity_date FROM certs
             WHERE issuer = $1 AND revoked_at IS NOT NULL",
        )
        .bind(ca.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(be)?;
        let cas = sqlx::query(
            "SELECT serial, revoked_reason, revoked_at, invalidity_date FROM cas
             WHERE parent = $1 AND revoked_at IS NOT NULL",
        )
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
            "INSERT INTO crls (ca, number, this_update, next_update, der, shard) VALUES ($1, $2, $3, $4, $5, $6)",
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
        commit_audited(tx, &rec).await?;
        Ok(crl)
    }

    async fn latest_crl(&self, ca: &Name, shard: u32) -> Result<Option<CrlRecord>, StoreError> {
        sqlx::query("SELECT * FROM crls WHERE ca = $1 AND shard = $2 ORDER BY number DESC LIMIT 1")
            .bind(ca.as_str())
            .bind(i64::from(shard))
            .fetch_optional(self.pool())
            .await
            .map_err(be)?
            .map(|r| crl_from(&r))
            .transpose()
    }

    async fn append_audit(&self, audit: &AuditRecord) -> Result<(), StoreError> {
        let tx = self.begin().await?;
        commit_audited(tx, audit).await
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
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
        commit_audited(tx, audit).await
    }

    async fn find_enrollment_token(
        &self,
        secret_sha256: &str,
    ) -> Result<Option<EnrollmentToken>, StoreError> {
        let row = sqlx::query("SELECT * FROM enrollment_tokens WHERE secret_sha256 = $1")
            .bind(secret_sha256)
            .fetch_optional(self.pool())
            .await
            .map_err(be)?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(EnrollmentToken {
            id: text(&r, "id")?,
            device: DeviceId::new(
                parse("device model", &text(&r, "device_model")?)?,
                parse("device serial", &text(&r, "device_serial")?)?,
            ),
            profile: parse("profile", &text(&r, "profile")?)?,
            created_at: from_ts(r.try_get("created_at").map_err(be)?)?,
            expires_at: from_ts(r.try_get("expires_at").map_err(be)?)?,
            used_at: opt_ts(r.try_get("used_at").map_err(be)?)?,
        }))
    }
}

#[async_trait]
impl medsec_auth::AuthStore for PgStore {
    async fn insert_api_token(
        &self,
        t: &medsec_auth::ApiToken,
        phc_hash: &str,
        audit: &AuditRecord,
    ) -> Result<(), medsec_auth::AuthError> {
        let err = |e: StoreError| medsec_auth::AuthError::Store(e.to_string());
        let mut tx = self.begin().await.map_err(err)?;
        sqlx::query(
            "INSERT INTO api_tokens (id, name, role, phc_hash, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
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
        commit_audited(tx, audit).await.map_err(err)
    }

    async fn get_api_token(
        &self,
        id: &str,
    ) -> Result<Option<(medsec_auth::ApiToken, String)>, medsec_auth::AuthError> {
        let err = |e: StoreError| medsec_auth::AuthError::Store(e.to_string());
        let row = sqlx::query("SELECT * FROM api_tokens WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(|e| err(be(e)))?;
        row.as_ref().map(crate::api_token_from).transpose()
    }

    async fn list_api_tokens(&self) -> Result<Vec<medsec_auth::ApiToken>, medsec_auth::AuthError> {
        let err = |e: StoreError| medsec_auth::AuthError::Store(e.to_string());
        let rows = sqlx::query("SELECT * FROM api_tokens ORDER BY created_at DESC, id")
            .fetch_all(self.pool())
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
        let n = sqlx::query("UPDATE api_tokens SET revoked = 1 WHERE id = $1 AND revoked = 0")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| err(be(e)))?
            .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        commit_audited(tx, audit).await.map_err(err)?;
        Ok(true)
    }
}
