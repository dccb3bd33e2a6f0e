//! `UserStore` for PostgreSQL: dashboard users and their sessions (migration 0009).
//!
//! Every change is one transaction with its audit entry, as on SQLite. SQLite's write lock
//! serialised all writers; here several replicas write at once, so every read-decide-write
//! first locks the user's row (`SELECT ... FOR UPDATE`, or an UPDATE that takes it). Concurrent
//! failed sign-ins from any replica queue on that lock and each reads the count the previous
//! one committed, so none is lost and exactly one of them locks the account.

use async_trait::async_trait;
use medsec_auth::AuthError;
use medsec_auth::users::{
    FailedAttempt, SessionPolicy, SessionRecord, SessionRow, User, UserStore, Username,
    after_failure,
};
use medsec_core::AuditRecord;
use sqlx::Row;
use sqlx::postgres::PgRow;
use time::{Duration, OffsetDateTime};

use crate::StoreError;
use crate::pg::{PgStore, append_audits, be, commit_audited};
use crate::sqlite::{corrupt, from_ts, ts};

fn err(e: StoreError) -> AuthError {
    AuthError::Store(e.to_string())
}

fn sql(e: sqlx::Error) -> AuthError {
    err(be(e))
}

fn no_user(u: &Username) -> AuthError {
    AuthError::Invalid {
        what: "user",
        reason: format!("no user named {u}"),
    }
}

/// The audit record with `key: value` added to its details. Details that are not a JSON object
/// are left alone rather than replaced: the record is the caller's.
fn with_detail(rec: &AuditRecord, key: &str, value: serde_json::Value) -> AuditRecord {
    let mut rec = rec.clone();
    if rec.details.is_null() {
        rec.details = serde_json::json!({});
    }
    if let Some(map) = rec.details.as_object_mut() {
        map.insert(key.to_owned(), value);
    }
    rec
}

/// The columns `user_from` reads; queries joining sessions name theirs differently.
const USER_COLS: &str = "username, role, created_at, failed_attempts, locked_until, disabled";

fn user_from(r: &PgRow) -> Result<User, StoreError> {
    let name: String = r.try_get("username").map_err(be)?;
    let role: String = r.try_get("role").map_err(be)?;
    let failed: i64 = r.try_get("failed_attempts").map_err(be)?;
    let locked: Option<i64> = r.try_get("locked_until").map_err(be)?;
    Ok(User {
        username: Username::parse(&name).map_err(|e| corrupt("username", e))?,
        role: role.parse().map_err(|e| corrupt("user role", e))?,
        created_at: from_ts(r.try_get("created_at").map_err(be)?)?,
        failed_attempts: u32::try_from(failed).map_err(|e| corrupt("failed attempts", e))?,
        locked_until: locked.map(from_ts).transpose()?,
        disabled: r.try_get::<i64, _>("disabled").map_err(be)? != 0,
    })
}

/// Reads the user and locks its row until the transaction ends: what SQLite's `BEGIN
/// IMMEDIATE` gave for free, a replica's read-decide-write on one user must take explicitly.
async fn lock_user(
    conn: &mut sqlx::PgConnection,
    username: &Username,
) -> Result<Option<User>, AuthError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {USER_COLS} FROM users WHERE username = $1 FOR UPDATE"
    )))
    .bind(username.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(sql)?
    .map(|r| user_from(&r).map_err(err))
    .transpose()
}

async fn delete_sessions(
    conn: &mut sqlx::PgConnection,
    username: &Username,
) -> Result<u64, AuthError> {
    Ok(sqlx::query("DELETE FROM user_sessions WHERE username = $1")
        .bind(username.as_str())
        .execute(&mut *conn)
        .await
        .map_err(sql)?
        .rows_affected())
}

#[async_trait]
impl UserStore for PgStore {
    async fn insert_user(
        &self,
        user: &User,
        phc_hash: &str,
        audit: &AuditRecord,
    ) -> Result<(), AuthError> {
        let mut tx = self.begin().await.map_err(err)?;
        sqlx::query(
            "INSERT INTO users (username, role, phc_hash, created_at, failed_attempts, locked_until, disabled)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(user.username.as_str())
        .bind(user.role.as_str())
        .bind(phc_hash)
        .bind(ts(user.created_at))
        .bind(i64::from(user.failed_attempts))
        .bind(user.locked_until.map(ts))
        .bind(i64::from(user.disabled))
        .execute(&mut *tx)
        .await
        .map_err(|e| match be(e) {
            StoreError::Conflict(_) => AuthError::UserExists(user.username.to_string()),
            other => err(other),
        })?;
        commit_audited(tx, audit).await.map_err(err)
    }

    async fn get_user(&self, username: &Username) -> Result<Option<(User, String)>, AuthError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLS}, phc_hash FROM users WHERE username = $1"
        )))
        .bind(username.as_str())
        .fetch_optional(self.pool())
        .await
        .map_err(sql)?;
        let Some(r) = row else { return Ok(None) };
        let user = user_from(&r).map_err(err)?;
        Ok(Some((user, r.try_get("phc_hash").map_err(sql)?)))
    }

    async fn list_users(&self) -> Result<Vec<User>, AuthError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLS} FROM users ORDER BY username"
        )))
        .fetch_all(self.pool())
        .await
        .map_err(sql)?
        .iter()
        .map(|r| user_from(r).map_err(err))
        .collect()
    }

    async fn record_failed_attempt(
        &self,
        username: &Username,
        now: OffsetDateTime,
        policy: &SessionPolicy,
        failed: &AuditRecord,
        locked: &AuditRecord,
    ) -> Result<Option<FailedAttempt>, AuthError> {
        let mut tx = self.begin().await.map_err(err)?;
        let Some(user) = lock_user(&mut tx, username).await? else {
            let rec = with_detail(failed, "unknown_user", serde_json::json!(true));
            commit_audited(tx, &rec).await.map_err(err)?;
            return Ok(None);
        };
        let out = after_failure(user.failed_attempts, user.locked_until, now, policy);
        sqlx::query("UPDATE users SET failed_attempts = $1, locked_until = $2 WHERE username = $3")
            .bind(i64::from(out.failed_attempts))
            .bind(out.locked_until.map(ts))
            .bind(username.as_str())
            .execute(&mut *tx)
            .await
            .map_err(sql)?;
        let count = serde_json::json!(out.failed_attempts);
        let mut recs = vec![with_detail(failed, "failed_attempts", count.clone())];
        if out.newly_locked {
            let rec = with_detail(locked, "failed_attempts", count);
            recs.push(with_detail(
                &rec,
                "locked_until",
                serde_json::json!(out.locked_until.map(ts)),
            ));
        }
        append_audits(&mut tx, &recs.iter().collect::<Vec<_>>())
            .await
            .map_err(err)?;
        tx.commit().await.map_err(sql)?;
        Ok(Some(out))
    }

    async fn set_password(
        &self,
        username: &Username,
        phc_hash: &str,
        audit: &AuditRecord,
    ) -> Result<u64, AuthError> {
        let mut tx = self.begin().await.map_err(err)?;
        let n = sqlx::query("UPDATE users SET phc_hash = $1 WHERE username = $2")
            .bind(phc_hash)
            .bind(username.as_str())
            .execute(&mut *tx)
            .await
            .map_err(sql)?
            .rows_affected();
        if n != 1 {
            return Err(no_user(username));
        }
        let ended = delete_sessions(&mut tx, username).await?;
        let rec = with_detail(audit, "sessions_ended", serde_json::json!(ended));
        commit_audited(tx, &rec).await.map_err(err)?;
        Ok(ended)
    }

    async fn set_disabled(
        &self,
        username: &Username,
        disabled: bool,
        audit: &AuditRecord,
    ) -> Result<bool, AuthError> {
        let mut tx = self.begin().await.map_err(err)?;
        let n =
            sqlx::query("UPDATE users SET disabled = $1 WHERE username = $2 AND disabled <> $1")
                .bind(i64::from(disabled))
                .bind(username.as_str())
                .execute(&mut *tx)
                .await
                .map_err(sql)?
                .rows_affected();
        if n == 0 {
            return match lock_user(&mut tx, username).await? {
                Some(_) => Ok(false),
                None => Err(no_user(username)),
            };
        }
        let ended = if disabled {
            delete_sessions(&mut tx, username).await?
        } else {
            0
        };
        let rec = with_detail(audit, "sessions_ended", serde_json::json!(ended));
        commit_audited(tx, &rec).await.map_err(err)?;
        Ok(true)
    }

    async fn unlock(&self, username: &Username, audit: &AuditRecord) -> Result<bool, AuthError> {
        let mut tx = self.begin().await.map_err(err)?;
        let n = sqlx::query(
            "UPDATE users SET failed_attempts = 0, locked_until = NULL
             WHERE username = $1 AND (failed_attempts > 0 OR locked_until IS NOT NULL)",
        )
        .bind(username.as_str())
        .execute(&mut *tx)
        .await
        .map_err(sql)?
        .rows_affected();
        if n == 0 {
            return match lock_user(&mut tx, username).await? {
                Some(_) => Ok(false),
                None => Err(no_user(username)),
            };
        }
        commit_audited(tx, audit).await.map_err(err)?;
        Ok(true)
    }

    async fn insert_session(
        &self,
        session: &SessionRow,
        verified_phc: &str,
        audit: &AuditRecord,
    ) -> Result<User, AuthError> {
        let mut tx = self.begin().await.map_err(err)?;
        // Re-read under the row lock: the password may have changed, the account may have
        // been disabled or locked (by any replica) since the caller verified the password,
        // and none of that may happen between this check and the commit.
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLS}, phc_hash FROM users WHERE username = $1 FOR UPDATE"
        )))
        .bind(session.username.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(sql)?
        .ok_or(AuthError::InvalidCredentials)?;
        let user = user_from(&row).map_err(err)?;
        let phc: String = row.try_get("phc_hash").map_err(sql)?;
        if phc != verified_phc || user.disabled {
            return Err(AuthError::InvalidCredentials);
        }
        if let Some(until) = user.locked_at(session.created_at) {
            return Err(AuthError::Locked { until });
        }
        sqlx::query(
            "UPDATE users SET failed_attempts = 0, locked_until = NULL WHERE username = $1",
        )
        .bind(session.username.as_str())
        .execute(&mut *tx)
        .await
        .map_err(sql)?;
        sqlx::query(
            "INSERT INTO user_sessions (id_sha256, username, csrf_token, created_at, expires_at, last_seen)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&session.id_sha256)
        .bind(session.username.as_str())
        .bind(&session.csrf_token)
        .bind(ts(session.created_at))
        .bind(ts(session.expires_at))
        .bind(ts(session.created_at))
        .execute(&mut *tx)
        .await
        .map_err(sql)?;
        commit_audited(tx, audit).await.map_err(err)?;
        Ok(User {
            failed_attempts: 0,
            locked_until: None,
            ..user
        })
    }

    async fn get_session(&self, id_sha256: &str) -> Result<Option<SessionRecord>, AuthError> {
        let row = sqlx::query(
            "SELECT s.csrf_token, s.created_at AS s_created_at, s.expires_at AS s_expires_at,
                    s.last_seen AS s_last_seen, u.username, u.role, u.created_at,
                    u.failed_attempts, u.locked_until, u.disabled
             FROM user_sessions s JOIN users u ON u.username = s.username
             WHERE s.id_sha256 = $1",
        )
        .bind(id_sha256)
        .fetch_optional(self.pool())
        .await
        .map_err(sql)?;
        let Some(r) = row else { return Ok(None) };
        let at = |c: &str| -> Result<OffsetDateTime, AuthError> {
            from_ts(r.try_get(c).map_err(sql)?).map_err(err)
        };
        Ok(Some(SessionRecord {
            user: user_from(&r).map_err(err)?,
            csrf_token: r.try_get("csrf_token").map_err(sql)?,
            created_at: at("s_created_at")?,
            expires_at: at("s_expires_at")?,
            last_seen: at("s_last_seen")?,
        }))
    }

    async fn touch_session(&self, id_sha256: &str, now: OffsetDateTime) -> Result<(), AuthError> {
        // `last_seen < ?1`: two requests racing cannot move it back.
        sqlx::query(
            "UPDATE user_sessions SET last_seen = $1 WHERE id_sha256 = $2 AND last_seen < $1",
        )
        .bind(ts(now))
        .bind(id_sha256)
        .execute(self.pool())
        .await
        .map_err(sql)?;
        Ok(())
    }

    async fn delete_session(
        &self,
        id_sha256: &str,
        audit: Option<&AuditRecord>,
    ) -> Result<bool, AuthError> {
        let mut tx = self.begin().await.map_err(err)?;
        let n = sqlx::query("DELETE FROM user_sessions WHERE id_sha256 = $1")
            .bind(id_sha256)
            .execute(&mut *tx)
            .await
            .map_err(sql)?
            .rows_affected();
        match audit {
            Some(a) if n > 0 => commit_audited(tx, a).await.map_err(err)?,
            _ => tx.commit().await.map_err(sql)?,
        }
        Ok(n > 0)
    }

    async fn delete_sessions_of(
        &self,
        username: &Username,
        audit: &AuditRecord,
    ) -> Result<u64, AuthError> {
        let mut tx = self.begin().await.map_err(err)?;
        let ended = delete_sessions(&mut tx, username).await?;
        if ended == 0 {
            return Ok(0);
        }
        let rec = with_detail(audit, "sessions_ended", serde_json::json!(ended));
        commit_audited(tx, &rec).await.map_err(err)?;
        Ok(ended)
    }

    async fn purge_expired(
        &self,
        now: OffsetDateTime,
        idle_timeout: Duration,
    ) -> Result<u64, AuthError> {
        Ok(
            sqlx::query("DELETE FROM user_sessions WHERE expires_at <= $1 OR last_seen <= $2")
                .bind(ts(now))
                .bind(ts(now - idle_timeout))
                .execute(self.pool())
                .await
                .map_err(sql)?
                .rows_affected(),
        )
    }
}
