//! Local users of the web dashboard: usernames with Argon2id password hashes, lockout after
//! repeated failed sign-ins, and browser sessions.
//!
//! A session is named by a cookie holding 256 random bits; the store keeps only the value's
//! SHA-256, so a copy of the database yields no usable cookie. (A fast hash is enough: unlike a
//! password, the value cannot be guessed.) Each session also carries a CSRF token, another 256
//! random bits that the dashboard puts in its pages and expects back with every request that
//! changes something. That token is stored as is, on purpose: the server must be able to render
//! it into any page of the session, and on its own it grants nothing, since a forged request
//! still needs the victim's cookie, which the database does not hold.
//!
//! The logic here reads no clock: every function takes `now`, so lockouts and timeouts can be
//! walked through with fixed times. Times are kept to the second, as the stores keep them.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use async_trait::async_trait;
use base64::Engine;
use medsec_core::{Actor, AuditAction, AuditRecord};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime, UtcOffset};

use crate::{AuthError, Role, hasher, random_bytes};

/// Shortest password accepted. Length is what makes a password hard to guess (NIST SP
/// 800-63B), so no composition rules are imposed on top.
pub const PASSWORD_MIN_CHARS: usize = 12;
/// Longest password accepted, so that a request cannot make the server hash megabytes.
pub const PASSWORD_MAX_CHARS: usize = 1024;

/// How often a session's `last_seen` is written. Every dashboard request reads its session;
/// writing on each one would turn every page view into a database commit. The idle timeout is
/// therefore enforced to within this interval.
pub const TOUCH_INTERVAL: Duration = Duration::MINUTE;

/// Random bytes in a cookie value and in a CSRF token: 256 bits.
const SECRET_BYTES: usize = 32;
/// Characters of a cookie value: 32 bytes in unpadded base64url.
const COOKIE_CHARS: usize = 43;

/// A dashboard user's name: 1-64 characters of `a-z`, `0-9`, `.`, `_` and `-`, starting with
/// a letter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

impl Username {
    /// Parses a username. ASCII capitals are folded to lowercase, so `Alice` and `alice` can
    /// never be two accounts and a user may type either at the sign-in form.
    pub fn parse(s: &str) -> Result<Self, AuthError> {
        let s = s.to_ascii_lowercase();
        let valid = (1..=64).contains(&s.len())
            && s.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
        if !valid {
            // The input is not echoed: people sometimes type their password into this field.
            return Err(AuthError::Invalid {
                what: "username",
                reason: "1-64 characters of a-z, 0-9, '.', '_' and '-', starting with a letter"
                    .into(),
            });
        }
        Ok(Username(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The audit subject naming this user: `user:<name>`.
    pub fn subject(&self) -> String {
        format!("user:{}", self.0)
    }

    /// The audit actor for what this user does: `user:<name>`.
    pub fn actor(&self) -> Actor {
        Actor::parse(&self.subject()).unwrap_or_else(|_| Actor::system())
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Username {
    type Err = AuthError;
    fn from_str(s: &str) -> Result<Self, AuthError> {
        Username::parse(s)
    }
}

impl TryFrom<String> for Username {
    type Error = AuthError;
    fn try_from(s: String) -> Result<Self, AuthError> {
        Username::parse(&s)
    }
}

impl From<Username> for String {
    fn from(u: Username) -> String {
        u.0
    }
}

/// Checks a new password against the rules: 12 to 1024 characters, not the username itself.
pub fn check_password(username: &Username, password: &str) -> Result<(), AuthError> {
    let chars = password.chars().count();
    let reason = if chars < PASSWORD_MIN_CHARS {
        format!("must have at least {PASSWORD_MIN_CHARS} characters")
    } else if chars > PASSWORD_MAX_CHARS {
        format!("must have at most {PASSWORD_MAX_CHARS} characters")
    } else if password.to_lowercase() == username.as_str() {
        "must not be the username".to_owned()
    } else {
        return Ok(());
    };
    Err(AuthError::Invalid {
        what: "password",
        reason,
    })
}

/// A dashboard user (without the password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub username: Username,
    pub role: Role,
    pub created_at: OffsetDateTime,
    /// Consecutive failed sign-ins since the last success (or since a lock ran out).
    pub failed_attempts: u32,
    /// Set when the failures reached the policy's limit; past values are simply ignored.
    pub locked_until: Option<OffsetDateTime>,
    /// Switched off by an administrator: no sign-in, no session.
    pub disabled: bool,
}

impl User {
    /// The end of the lock in force at `now`, if any.
    pub fn locked_at(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        self.locked_until.filter(|until| *until > now)
    }
}

/// Lockout and session lifetimes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// Consecutive failed sign-ins that lock an account (at least 1 is used).
    pub max_failures: u32,
    /// How long a lock lasts.
    pub lockout: Duration,
    /// A session unused this long ends.
    pub idle_timeout: Duration,
    /// A session ends this long after sign-in, however busy.
    pub absolute_lifetime: Duration,
}

impl Default for SessionPolicy {
    /// 5 failures lock for 15 minutes; sessions end after 30 idle minutes or 12 hours (a
    /// working shift), whichever comes first.
    fn default() -> Self {
        SessionPolicy {
            max_failures: 5,
            lockout: Duration::minutes(15),
            idle_timeout: Duration::minutes(30),
            absolute_lifetime: Duration::hours(12),
        }
    }
}

/// A user's failure state after one more failed sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailedAttempt {
    pub failed_attempts: u32,
    pub locked_until: Option<OffsetDateTime>,
    /// This failure is the one that locked the account (exactly one failure per lock is).
    pub newly_locked: bool,
}

/// The lockout arithmetic, shared by every store so they all count alike. A store calls it
/// inside the transaction that reads and writes the counter.
///
/// Failures while a lock is in force are counted but neither extend the lock nor lock again.
/// Once a lock has run out the count starts afresh, so the user gets `max_failures` new tries.
pub fn after_failure(
    failed_attempts: u32,
    locked_until: Option<OffsetDateTime>,
    now: OffsetDateTime,
    policy: &SessionPolicy,
) -> FailedAttempt {
    match locked_until {
        Some(until) if until > now => FailedAttempt {
            failed_attempts: failed_attempts.saturating_add(1),
            locked_until: Some(until),
            newly_locked: false,
        },
        _ => {
            let count = if locked_until.is_some() {
                1
            } else {
                failed_attempts.saturating_add(1)
            };
            let lock = count >= policy.max_failures.max(1);
            FailedAttempt {
                failed_attempts: count,
                locked_until: lock.then(|| now + policy.lockout),
                newly_locked: lock,
            }
        }
    }
}

/// A session as the store inserts it. `id_sha256` is the hex SHA-256 of the cookie value.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub id_sha256: String,
    pub username: Username,
    pub csrf_token: String,
    pub created_at: OffsetDateTime,
    /// The absolute end of the session.
    pub expires_at: OffsetDateTime,
}

impl fmt::Debug for SessionRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionRow")
            .field("id_sha256", &self.id_sha256)
            .field("username", &self.username)
            .field("csrf_token", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A stored session with its user as the store has it now (role, lock, disabled).
#[derive(Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub user: User,
    pub csrf_token: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub last_seen: OffsetDateTime,
}

impl SessionRecord {
    pub fn username(&self) -> &Username {
        &self.user.username
    }

    pub fn role(&self) -> Role {
        self.user.role
    }

    /// The audit actor for what is done in this session.
    pub fn actor(&self) -> Actor {
        self.user.username.actor()
    }
}

impl fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionRecord")
            .field("user", &self.user)
            .field("csrf_token", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("last_seen", &self.last_seen)
            .finish()
    }
}

/// What a successful sign-in hands the server: the cookie value (shown to the browser only,
/// never stored), the session's CSRF token, and when the session ends at the latest.
#[derive(Clone)]
pub struct NewSession {
    pub cookie_value: String,
    pub csrf_token: String,
    pub expires_at: OffsetDateTime,
    pub user: User,
}

impl fmt::Debug for NewSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewSession")
            .field("cookie_value", &"<redacted>")
            .field("csrf_token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("user", &self.user)
            .finish()
    }
}

/// Storage for users and sessions. Every method that changes state appends its audit record
/// in the same transaction as the change.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Inserts a new user; `AuthError::UserExists` if the name is taken.
    async fn insert_user(
        &self,
        user: &User,
        phc_hash: &str,
        audit: &AuditRecord,
    ) -> Result<(), AuthError>;

    /// The user and its password's PHC hash.
    async fn get_user(&self, username: &Username) -> Result<Option<(User, String)>, AuthError>;

    /// All users, by name.
    async fn list_users(&self) -> Result<Vec<User>, AuthError>;

    /// Counts one failed sign-in in one transaction: reads the counter, applies
    /// [`after_failure`], writes it, appends `failed` (with `failed_attempts` added to its
    /// details) and, if this failure locks the account, `locked` (with `failed_attempts` and
    /// `locked_until`). Concurrent calls must serialize, so that no failure is lost and a lock
    /// is recorded once. For an unknown user only `failed` is appended (with
    /// `unknown_user: true`) and `None` returned: such attempts are worth an audit trail, and
    /// the write keeps their timing like that of a real account's.
    async fn record_failed_attempt(
        &self,
        username: &Username,
        now: OffsetDateTime,
        policy: &SessionPolicy,
        failed: &AuditRecord,
        locked: &AuditRecord,
    ) -> Result<Option<FailedAttempt>, AuthError>;

    /// Replaces the password hash and ends all the user's sessions (a changed password must
    /// shut out whoever knew the old one); returns how many sessions ended, also added to the
    /// audit details as `sessions_ended`.
    async fn set_password(
        &self,
        username: &Username,
        phc_hash: &str,
        audit: &AuditRecord,
    ) -> Result<u64, AuthError>;

    /// Disables or re-enables a user; disabling ends its sessions. Returns false (and appends
    /// nothing) if the user was already in that state.
    async fn set_disabled(
        &self,
        username: &Username,
        disabled: bool,
        audit: &AuditRecord,
    ) -> Result<bool, AuthError>;

    /// Clears the failure counter and any lock. Returns false (and appends nothing) if there
    /// was nothing to clear.
    async fn unlock(&self, username: &Username, audit: &AuditRecord) -> Result<bool, AuthError>;

    /// Completes a sign-in in one transaction: checks that the user still has the password
    /// hash `verified_phc` that was just verified (a password changed meanwhile must not let
    /// the old one in), is not disabled (`InvalidCredentials`) and not locked at
    /// `session.created_at` (`Locked`, a concurrent failure may have locked it); resets the
    /// failure counter; inserts the session and appends `audit`. Returns the updated user.
    async fn insert_session(
        &self,
        session: &SessionRow,
        verified_phc: &str,
        audit: &AuditRecord,
    ) -> Result<User, AuthError>;

    /// The session with this id hash, joined with its user.
    async fn get_session(&self, id_sha256: &str) -> Result<Option<SessionRecord>, AuthError>;

    /// Moves `last_seen` forward to `now` (never back).
    async fn touch_session(&self, id_sha256: &str, now: OffsetDateTime) -> Result<(), AuthError>;

    /// Deletes one session; appends `audit` if given and a session was deleted. Returns
    /// whether one was.
    async fn delete_session(
        &self,
        id_sha256: &str,
        audit: Option<&AuditRecord>,
    ) -> Result<bool, AuthError>;

    /// Deletes all of a user's sessions; appends `audit` (with `sessions_ended`) if any were.
    async fn delete_sessions_of(
        &self,
        username: &Username,
        audit: &AuditRecord,
    ) -> Result<u64, AuthError>;

    /// Deletes sessions past their absolute end or idle since `now - idle_timeout`. Expiry is
    /// not a user's act, so nothing is audited.
    async fn purge_expired(
        &self,
        now: OffsetDateTime,
        idle_timeout: Duration,
    ) -> Result<u64, AuthError>;
}

/// `now` in UTC, to the second, as stored: what a function returns then equals what a later
/// read gives back.
fn whole_seconds(now: OffsetDateTime) -> OffsetDateTime {
    let utc = now.to_offset(UtcOffset::UTC);
    utc.replace_nanosecond(0).unwrap_or(utc)
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The id under which a session is stored: the hex SHA-256 of its cookie value.
pub fn session_id_hash(cookie_value: &str) -> String {
    hex::encode(sha256(cookie_value.as_bytes()))
}

/// 256 random bits in unpadded base64url: cookie values and CSRF tokens.
fn random_secret() -> Result<String, AuthError> {
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<SECRET_BYTES>()?))
}

/// A cheap shape check before any hashing or lookup.
fn well_formed_cookie(v: &str) -> bool {
    v.len() == COOKIE_CHARS
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Equality whose running time does not depend on where the inputs differ.
fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keeps the optimizer from turning the fold into an early-exit comparison.
    std::hint::black_box(diff) == 0
}

/// Checks the CSRF token a request presents against its session's, in constant time. Both are
/// hashed first so that not even the presented token's length shapes the comparison.
pub fn check_csrf(session: &SessionRecord, presented: &str) -> Result<(), AuthError> {
    let same = ct_eq(
        &sha256(session.csrf_token.as_bytes()),
        &sha256(presented.as_bytes()),
    );
    if same && !session.csrf_token.is_empty() {
        Ok(())
    } else {
        Err(AuthError::Invalid {
            what: "CSRF token",
            reason: "missing or not this session's".into(),
        })
    }
}

/// The Argon2id PHC hash of a password, with a fresh random salt.
fn hash_password(password: &str) -> Result<String, AuthError> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()?)
        .map_err(|e| AuthError::Store(e.to_string()))?;
    Ok(hasher()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| AuthError::Store(e.to_string()))?
        .to_string())
}

/// A hash no password is checked against for real: sign-ins for unknown users verify against
/// it so that they cost as much as sign-ins for real ones. It has the parameters real hashes
/// get; its fixed salt does not matter, since its only use is to take time.
fn dummy_phc() -> Option<&'static str> {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    DUMMY
        .get_or_init(|| {
            let salt = SaltString::encode_b64(b"medsec-no-user!!").ok()?;
            hasher()
                .hash_password(b"medsec dummy password", &salt)
                .ok()
                .map(|h| h.to_string())
        })
        .as_deref()
}

#[cfg(test)]
thread_local! {
    /// Argon2 verifications run on this thread, so tests can see the dummy path is taken.
    static VERIFICATIONS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Verifies `password` against `phc`, or against the dummy hash when there is no user. Runs
/// exactly one Argon2 computation either way, also for a password too long to be anyone's.
fn verify(phc: Option<&str>, password: &str) -> bool {
    #[cfg(test)]
    VERIFICATIONS.with(|c| c.set(c.get() + 1));
    let too_long =
        password.len() > 4 * PASSWORD_MAX_CHARS || password.chars().count() > PASSWORD_MAX_CHARS;
    let (target, input, real) = match phc {
        Some(p) if !too_long => (p, password, true),
        _ => (
            dummy_phc().unwrap_or_default(),
            if too_long { "" } else { password },
            false,
        ),
    };
    let Ok(parsed) = PasswordHash::new(target) else {
        return false;
    };
    let ok = hasher().verify_password(input.as_bytes(), &parsed).is_ok();
    ok && real
}

fn anonymous() -> Actor {
    Actor::parse("anonymous").unwrap_or_else(|_| Actor::system())
}

/// The first 16 hex digits of a session's id hash: enough to pair a sign-in with its sign-out
/// in the audit log, useless as a cookie.
fn session_ref(id_sha256: &str) -> &str {
    id_sha256.get(..16).unwrap_or_default()
}

/// Creates a user. The password is checked against the rules and only its hash is stored.
pub async fn create_user(
    store: &dyn UserStore,
    username: &str,
    password: &str,
    role: Role,
    actor: &Actor,
    now: OffsetDateTime,
) -> Result<User, AuthError> {
    let username = Username::parse(username)?;
    check_password(&username, password)?;
    let phc = hash_password(password)?;
    let user = User {
        username,
        role,
        created_at: whole_seconds(now),
        failed_attempts: 0,
        locked_until: None,
        disabled: false,
    };
    let audit = AuditRecord::new(
        actor,
        AuditAction::UserCreated,
        user.username.subject(),
        serde_json::json!({"role": role}),
    );
    store.insert_user(&user, &phc, &audit).await?;
    Ok(user)
}

/// Counts a failed password check for `username`, auditing it (and a lock it causes).
async fn record_failure(
    store: &dyn UserStore,
    username: &Username,
    actor: &Actor,
    during: &str,
    now: OffsetDateTime,
    policy: &SessionPolicy,
) -> Result<(), AuthError> {
    let failed = AuditRecord::new(
        actor,
        AuditAction::UserSignInFailed,
        username.subject(),
        serde_json::json!({"during": during}),
    );
    let locked = AuditRecord::new(
        &Actor::system(),
        AuditAction::UserLocked,
        username.subject(),
        serde_json::json!({"reason": "too many failed sign-ins"}),
    );
    store
        .record_failed_attempt(username, now, policy, &failed, &locked)
        .await?;
    Ok(())
}

/// Signs a user in. Every failure reads `InvalidCredentials` (unknown user, wrong password,
/// disabled account), except a lock in force, which reads `Locked` and checks no password.
///
/// Timing: an unknown or malformed username still costs one Argon2 verification (against a
/// dummy hash), and an unknown user's failure is written to the audit log like a real one's,
/// so the time to answer does not tell whether an account exists.
pub async fn sign_in(
    store: &dyn UserStore,
    username: &str,
    password: &str,
    now: OffsetDateTime,
    policy: &SessionPolicy,
) -> Result<NewSession, AuthError> {
    let now = whole_seconds(now);
    // Made on the first sign-in whatever its path, so that the first unknown user's answer is
    // not the one slower by an extra Argon2 run.
    let _ = dummy_phc();
    let Ok(name) = Username::parse(username) else {
        // No account can have this name; nothing to count, but the answer takes as long.
        verify(None, password);
        return Err(AuthError::InvalidCredentials);
    };
    let Some((user, phc)) = store.get_user(&name).await? else {
        verify(None, password);
        record_failure(store, &name, &anonymous(), "sign-in", now, policy).await?;
        return Err(AuthError::InvalidCredentials);
    };
    if let Some(until) = user.locked_at(now) {
        return Err(AuthError::Locked { until });
    }
    if !verify(Some(&phc), password) {
        record_failure(store, &name, &anonymous(), "sign-in", now, policy).await?;
        return Err(AuthError::InvalidCredentials);
    }
    if user.disabled {
        return Err(AuthError::InvalidCredentials);
    }
    let cookie_value = random_secret()?;
    let csrf_token = random_secret()?;
    let row = SessionRow {
        id_sha256: session_id_hash(&cookie_value),
        username: name.clone(),
        csrf_token: csrf_token.clone(),
        created_at: now,
        expires_at: now + policy.absolute_lifetime,
    };
    let audit = AuditRecord::new(
        &name.actor(),
        AuditAction::UserSignedIn,
        name.subject(),
        serde_json::json!({
            "session": session_ref(&row.id_sha256),
            "expires_at": row.expires_at.unix_timestamp(),
        }),
    );
    let user = store.insert_session(&row, &phc, &audit).await?;
    Ok(NewSession {
        cookie_value,
        csrf_token,
        expires_at: row.expires_at,
        user,
    })
}

/// Where a stored session stands at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SessionState {
    /// Usable; `touch` says `last_seen` is due to be written.
    Valid { touch: bool },
    /// Past its absolute end or idle too long: gone for good.
    Expired,
    /// The user is disabled or locked: refused, but the lock may end.
    UserBlocked,
}

fn session_state(s: &SessionRecord, now: OffsetDateTime, policy: &SessionPolicy) -> SessionState {
    // The policy in force now bounds sessions made under a more lenient one.
    let absolute_end = s.expires_at.min(s.created_at + policy.absolute_lifetime);
    if now >= absolute_end || now >= s.last_seen + policy.idle_timeout {
        SessionState::Expired
    } else if s.user.disabled || s.user.locked_at(now).is_some() {
        SessionState::UserBlocked
    } else {
        SessionState::Valid {
            touch: now - s.last_seen >= TOUCH_INTERVAL,
        }
    }
}

/// The session a request's cookie names, checked (exists, within its absolute and idle
/// lifetimes, user neither disabled nor locked) and touched. Every refusal reads
/// `SessionInvalid`; an expired session is deleted on the way.
pub async fn session(
    store: &dyn UserStore,
    cookie_value: &str,
    now: OffsetDateTime,
    policy: &SessionPolicy,
) -> Result<SessionRecord, AuthError> {
    let now = whole_seconds(now);
    if !well_formed_cookie(cookie_value) {
        return Err(AuthError::SessionInvalid);
    }
    let id = session_id_hash(cookie_value);
    let mut s = store
        .get_session(&id)
        .await?
        .ok_or(AuthError::SessionInvalid)?;
    match session_state(&s, now, policy) {
        SessionState::Valid { touch } => {
            if touch {
                store.touch_session(&id, now).await?;
                s.last_seen = now;
            }
            Ok(s)
        }
        SessionState::Expired => {
            store.delete_session(&id, None).await?;
            Err(AuthError::SessionInvalid)
        }
        SessionState::UserBlocked => Err(AuthError::SessionInvalid),
    }
}

/// Ends the session the cookie names. Returns whether there was one; signing out twice is
/// not an error.
pub async fn sign_out(store: &dyn UserStore, cookie_value: &str) -> Result<bool, AuthError> {
    if !well_formed_cookie(cookie_value) {
        return Ok(false);
    }
    let id = session_id_hash(cookie_value);
    let Some(s) = store.get_session(&id).await? else {
        return Ok(false);
    };
    let audit = AuditRecord::new(
        &s.actor(),
        AuditAction::UserSignedOut,
        s.username().subject(),
        serde_json::json!({"session": session_ref(&id)}),
    );
    store.delete_session(&id, Some(&audit)).await
}

/// Ends all of a user's sessions ("sign out everywhere"), by the user or an administrator.
pub async fn end_sessions(
    store: &dyn UserStore,
    username: &Username,
    actor: &Actor,
) -> Result<u64, AuthError> {
    let audit = AuditRecord::new(
        actor,
        AuditAction::UserSignedOut,
        username.subject(),
        serde_json::json!({"all": true}),
    );
    store.delete_sessions_of(username, &audit).await
}

/// A user changes their own password, proving the current one. A wrong current password
/// counts as a failed sign-in: a stolen session must not allow unlimited guessing. All the
/// user's sessions end, this one included; returns how many.
pub async fn change_password(
    store: &dyn UserStore,
    username: &Username,
    current: &str,
    new: &str,
    now: OffsetDateTime,
    policy: &SessionPolicy,
) -> Result<u64, AuthError> {
    let now = whole_seconds(now);
    check_password(username, new)?;
    let Some((user, phc)) = store.get_user(username).await? else {
        verify(None, current);
        return Err(AuthError::InvalidCredentials);
    };
    if let Some(until) = user.locked_at(now) {
        return Err(AuthError::Locked { until });
    }
    if !verify(Some(&phc), current) {
        record_failure(
            store,
            username,
            &username.actor(),
            "password-change",
            now,
            policy,
        )
        .await?;
        return Err(AuthError::InvalidCredentials);
    }
    if user.disabled {
        return Err(AuthError::InvalidCredentials);
    }
    let new_phc = hash_password(new)?;
    let audit = AuditRecord::new(
        &username.actor(),
        AuditAction::UserPasswordChanged,
        username.subject(),
        serde_json::json!({"by": "self"}),
    );
    store.set_password(username, &new_phc, &audit).await
}

/// An administrator sets a user's password (the server checks the role). All the user's
/// sessions end; returns how many.
pub async fn reset_password(
    store: &dyn UserStore,
    username: &Username,
    new: &str,
    actor: &Actor,
) -> Result<u64, AuthError> {
    check_password(username, new)?;
    let phc = hash_password(new)?;
    let audit = AuditRecord::new(
        actor,
        AuditAction::UserPasswordChanged,
        username.subject(),
        serde_json::json!({"by": "administrator"}),
    );
    store.set_password(username, &phc, &audit).await
}

/// An administrator lifts a lock and clears the failure count. Returns false if there was
/// nothing to lift.
pub async fn unlock(
    store: &dyn UserStore,
    username: &Username,
    actor: &Actor,
) -> Result<bool, AuthError> {
    let audit = AuditRecord::new(
        actor,
        AuditAction::UserUnlocked,
        username.subject(),
        serde_json::json!({"failures_cleared": true}),
    );
    store.unlock(username, &audit).await
}

/// An administrator disables (ending its sessions) or re-enables a user. Disabling is an
/// indefinite lock, so it is audited as `user.locked` / `user.unlocked` with
/// `disabled` in the details. Returns false if the user was already in that state.
pub async fn set_disabled(
    store: &dyn UserStore,
    username: &Username,
    disabled: bool,
    actor: &Actor,
) -> Result<bool, AuthError> {
    let action = if disabled {
        AuditAction::UserLocked
    } else {
        AuditAction::UserUnlocked
    };
    let audit = AuditRecord::new(
        actor,
        action,
        username.subject(),
        serde_json::json!({"disabled": disabled}),
    );
    store.set_disabled(username, disabled, &audit).await
}

/// Deletes expired sessions; for a periodic housekeeping task.
pub async fn purge_sessions(
    store: &dyn UserStore,
    now: OffsetDateTime,
    policy: &SessionPolicy,
) -> Result<u64, AuthError> {
    store
        .purge_expired(whole_seconds(now), policy.idle_timeout)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    #[derive(Clone)]
    struct StoredSession {
        username: Username,
        csrf: String,
        created_at: OffsetDateTime,
        expires_at: OffsetDateTime,
        last_seen: OffsetDateTime,
    }

    /// An in-memory store following the trait's contract, one lock for "transactions".
    #[derive(Default)]
    struct Mem {
        users: Mutex<HashMap<Username, (User, String)>>,
        sessions: Mutex<HashMap<String, StoredSession>>,
        audit: Mutex<Vec<AuditRecord>>,
    }

    impl Mem {
        fn actions(&self) -> Vec<&'static str> {
            self.audit
                .lock()
                .unwrap()
                .iter()
                .map(|a| a.action.as_str())
                .collect()
        }
        fn user(&self, name: &str) -> User {
            self.users.lock().unwrap()[&Username::parse(name).unwrap()]
                .0
                .clone()
        }
    }

    fn no_user() -> AuthError {
        AuthError::Invalid {
            what: "user",
            reason: "no such user".into(),
        }
    }

    #[async_trait]
    impl UserStore for Mem {
        async fn insert_user(&self, u: &User, h: &str, a: &AuditRecord) -> Result<(), AuthError> {
            let mut users = self.users.lock().unwrap();
            if users.contains_key(&u.username) {
                return Err(AuthError::UserExists(u.username.to_string()));
            }
            users.insert(u.username.clone(), (u.clone(), h.to_owned()));
            self.audit.lock().unwrap().push(a.clone());
            Ok(())
        }
        async fn get_user(&self, n: &Username) -> Result<Option<(User, String)>, AuthError> {
            Ok(self.users.lock().unwrap().get(n).cloned())
        }
        async fn list_users(&self) -> Result<Vec<User>, AuthError> {
            let mut v: Vec<User> = self
                .users
                .lock()
                .unwrap()
                .values()
                .map(|(u, _)| u.clone())
                .collect();
            v.sort_by(|a, b| a.username.cmp(&b.username));
            Ok(v)
        }
        async fn record_failed_attempt(
            &self,
            n: &Username,
            now: OffsetDateTime,
            policy: &SessionPolicy,
            failed: &AuditRecord,
            locked: &AuditRecord,
        ) -> Result<Option<FailedAttempt>, AuthError> {
            let mut users = self.users.lock().unwrap();
            let mut audit = self.audit.lock().unwrap();
            let Some((u, _)) = users.get_mut(n) else {
                audit.push(failed.clone());
                return Ok(None);
            };
            let out = after_failure(u.failed_attempts, u.locked_until, now, policy);
            u.failed_attempts = out.failed_attempts;
            u.locked_until = out.locked_until;
            audit.push(failed.clone());
            if out.newly_locked {
                audit.push(locked.clone());
            }
            Ok(Some(out))
        }
        async fn set_password(
            &self,
            n: &Username,
            h: &str,
            a: &AuditRecord,
        ) -> Result<u64, AuthError> {
            let mut users = self.users.lock().unwrap();
            let (_, phc) = users.get_mut(n).ok_or_else(no_user)?;
            *phc = h.to_owned();
            let mut sessions = self.sessions.lock().unwrap();
            let before = sessions.len();
            sessions.retain(|_, s| &s.username != n);
            self.audit.lock().unwrap().push(a.clone());
            Ok((before - sessions.len()) as u64)
        }
        async fn set_disabled(
            &self,
            n: &Username,
            d: bool,
            a: &AuditRecord,
        ) -> Result<bool, AuthError> {
            let mut users = self.users.lock().unwrap();
            let (u, _) = users.get_mut(n).ok_or_else(no_user)?;
            if u.disabled == d {
                return Ok(false);
            }
            u.disabled = d;
            if d {
                self.sessions
                    .lock()
                    .unwrap()
                    .retain(|_, s| &s.username != n);
            }
            self.audit.lock().unwrap().push(a.clone());
            Ok(true)
        }
        async fn unlock(&self, n: &Username, a: &AuditRecord) -> Result<bool, AuthError> {
            let mut users = self.users.lock().unwrap();
            let (u, _) = users.get_mut(n).ok_or_else(no_user)?;
            if u.failed_attempts == 0 && u.locked_until.is_none() {
                return Ok(false);
            }
            u.failed_attempts = 0;
            u.locked_until = None;
            self.audit.lock().unwrap().push(a.clone());
            Ok(true)
        }
        async fn insert_session(
            &self,
            s: &SessionRow,
            verified: &str,
            a: &AuditRecord,
        ) -> Result<User, AuthError> {
            let mut users = self.users.lock().unwrap();
            let (u, phc) = users
                .get_mut(&s.username)
                .ok_or(AuthError::InvalidCredentials)?;
            if phc != verified || u.disabled {
                return Err(AuthError::InvalidCredentials);
            }
            if let Some(until) = u.locked_at(s.created_at) {
                return Err(AuthError::Locked { until });
            }
            u.failed_attempts = 0;
            u.locked_until = None;
            self.sessions.lock().unwrap().insert(
                s.id_sha256.clone(),
                StoredSession {
                    username: s.username.clone(),
                    csrf: s.csrf_token.clone(),
                    created_at: s.created_at,
                    expires_at: s.expires_at,
                    last_seen: s.created_at,
                },
            );
            self.audit.lock().unwrap().push(a.clone());
            Ok(u.clone())
        }
        async fn get_session(&self, id: &str) -> Result<Option<SessionRecord>, AuthError> {
            let Some(s) = self.sessions.lock().unwrap().get(id).cloned() else {
                return Ok(None);
            };
            Ok(Some(SessionRecord {
                user: self.user(s.username.as_str()),
                csrf_token: s.csrf,
                created_at: s.created_at,
                expires_at: s.expires_at,
                last_seen: s.last_seen,
            }))
        }
        async fn touch_session(&self, id: &str, now: OffsetDateTime) -> Result<(), AuthError> {
            if let Some(s) = self.sessions.lock().unwrap().get_mut(id) {
                s.last_seen = s.last_seen.max(now);
            }
            Ok(())
        }
        async fn delete_session(
            &self,
            id: &str,
            a: Option<&AuditRecord>,
        ) -> Result<bool, AuthError> {
            let gone = self.sessions.lock().unwrap().remove(id).is_some();
            if let (true, Some(a)) = (gone, a) {
                self.audit.lock().unwrap().push(a.clone());
            }
            Ok(gone)
        }
        async fn delete_sessions_of(
            &self,
            n: &Username,
            a: &AuditRecord,
        ) -> Result<u64, AuthError> {
            let mut sessions = self.sessions.lock().unwrap();
            let before = sessions.len();
            sessions.retain(|_, s| &s.username != n);
            let ended = (before - sessions.len()) as u64;
            if ended > 0 {
                self.audit.lock().unwrap().push(a.clone());
            }
            Ok(ended)
        }
        async fn purge_expired(
            &self,
            now: OffsetDateTime,
            idle: Duration,
        ) -> Result<u64, AuthError> {
            let mut sessions = self.sessions.lock().unwrap();
            let before = sessions.len();
            sessions.retain(|_, s| s.expires_at > now && s.last_seen > now - idle);
            Ok((before - sessions.len()) as u64)
        }
    }

    fn t(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_750_000_000 + secs).unwrap()
    }

    const MIN: i64 = 60;
    const PW: &str = "correct horse battery";

    fn verifications() -> u32 {
        VERIFICATIONS.with(|c| c.get())
    }

    #[test]
    fn username_rules() {
        for ok in ["a", "alice", "a.b_c-1", "x9", &"a".repeat(64)] {
            assert_eq!(Username::parse(ok).unwrap().as_str(), ok);
        }
        assert_eq!(Username::parse("Alice.B").unwrap().as_str(), "alice.b");
        for bad in [
            "",
            "1abc",
            "_x",
            ".x",
            "-x",
            "al ice",
            "élise",
            "alice!",
            "a/b",
            &"a".repeat(65),
        ] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
        let u = Username::parse("alice").unwrap();
        assert_eq!(u.subject(), "user:alice");
        assert_eq!(u.actor().as_str(), "user:alice");
        let json = serde_json::to_string(&u).unwrap();
        assert_eq!(json, "\"alice\"");
        assert!(serde_json::from_str::<Username>("\"9lives\"").is_err());
    }

    #[test]
    fn password_rules() {
        let u = Username::parse("operator.one").unwrap();
        assert!(check_password(&u, "elevenchars").is_err());
        assert!(check_password(&u, "twelve chars").is_ok());
        // Characters, not bytes: twelve two-byte letters pass, eleven do not.
        assert!(check_password(&u, &"é".repeat(12)).is_ok());
        assert!(check_password(&u, &"é".repeat(11)).is_err());
        assert!(check_password(&u, &"x".repeat(PASSWORD_MAX_CHARS)).is_ok());
        assert!(check_password(&u, &"x".repeat(PASSWORD_MAX_CHARS + 1)).is_err());
        assert!(check_password(&u, "Operator.One").is_err());
        // The rejection never repeats the password.
        let e = check_password(&u, "secretsecre").unwrap_err().to_string();
        assert!(!e.contains("secretsecre"), "{e}");
    }

    #[test]
    fn csrf_compare() {
        let s = SessionRecord {
            user: User {
                username: Username::parse("a").unwrap(),
                role: Role::Auditor,
                created_at: t(0),
                failed_attempts: 0,
                locked_until: None,
                disabled: false,
            },
            csrf_token: "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWo".into(),
            created_at: t(0),
            expires_at: t(3600),
            last_seen: t(0),
        };
        assert!(check_csrf(&s, "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWo").is_ok());
        assert!(check_csrf(&s, "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWp").is_err());
        assert!(check_csrf(&s, "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaW").is_err());
        assert!(check_csrf(&s, "").is_err());
        // A session without a token accepts nothing, not even an empty token.
        let empty = SessionRecord {
            csrf_token: String::new(),
            ..s.clone()
        };
        assert!(check_csrf(&empty, "").is_err());
        // Nor does Debug print it.
        assert!(!format!("{s:?}").contains("Zm9v"));
    }

    #[test]
    fn lockout_arithmetic() {
        let p = SessionPolicy::default();
        // Four failures count up without a lock; the fifth locks for 15 minutes from then.
        let mut state = (0, None);
        for i in 1..=4 {
            let f = after_failure(state.0, state.1, t(i), &p);
            assert_eq!(
                (f.failed_attempts, f.locked_until, f.newly_locked),
                (i as u32, None, false)
            );
            state = (f.failed_attempts, f.locked_until);
        }
        let f = after_failure(state.0, state.1, t(10), &p);
        assert_eq!(f.failed_attempts, 5);
        assert_eq!(f.locked_until, Some(t(10 + 15 * MIN)));
        assert!(f.newly_locked);
        // While locked: counted, but the lock neither moves nor is recorded again.
        let g = after_failure(5, f.locked_until, t(20), &p);
        assert_eq!(
            (g.failed_attempts, g.locked_until, g.newly_locked),
            (6, f.locked_until, false)
        );
        // A second before the end the lock still holds; at its end a fresh series starts.
        let h = after_failure(6, f.locked_until, t(10 + 15 * MIN - 1), &p);
        assert!(!h.newly_locked && h.locked_until == f.locked_until);
        let k = after_failure(6, f.locked_until, t(10 + 15 * MIN), &p);
        assert_eq!(
            (k.failed_attempts, k.locked_until, k.newly_locked),
            (1, None, false)
        );
        // A limit of zero is read as one, not as "lock never".
        let strict = SessionPolicy {
            max_failures: 0,
            ..p
        };
        assert!(after_failure(0, None, t(0), &strict).newly_locked);
    }

    fn record(created: i64, last_seen: i64) -> SessionRecord {
        SessionRecord {
            user: User {
                username: Username::parse("a").unwrap(),
                role: Role::Operator,
                created_at: t(0),
                failed_attempts: 0,
                locked_until: None,
                disabled: false,
            },
            csrf_token: "x".into(),
            created_at: t(created),
            expires_at: t(created + 12 * 60 * MIN),
            last_seen: t(last_seen),
        }
    }

    #[test]
    fn session_lifetimes() {
        let p = SessionPolicy::default();
        let s = record(0, 0);
        assert_eq!(
            session_state(&s, t(30), &p),
            SessionState::Valid { touch: false }
        );
        assert_eq!(
            session_state(&s, t(MIN), &p),
            SessionState::Valid { touch: true }
        );
        assert_eq!(
            session_state(&s, t(30 * MIN - 1), &p),
            SessionState::Valid { touch: true }
        );
        assert_eq!(session_state(&s, t(30 * MIN), &p), SessionState::Expired);
        // Busy sessions still end after 12 hours.
        let busy = record(0, 12 * 60 * MIN - MIN);
        assert_eq!(
            session_state(&busy, t(12 * 60 * MIN - 1), &p),
            SessionState::Valid { touch: false }
        );
        assert_eq!(
            session_state(&busy, t(12 * 60 * MIN), &p),
            SessionState::Expired
        );
        // A stricter policy applies to sessions made under the old one.
        let short = SessionPolicy {
            absolute_lifetime: Duration::hours(1),
            ..p
        };
        assert_eq!(
            session_state(&record(0, 59 * MIN), t(60 * MIN), &short),
            SessionState::Expired
        );
        // Locked or disabled users are refused; expiry is checked first.
        let mut locked = record(0, 0);
        locked.user.locked_until = Some(t(10 * MIN));
        assert_eq!(
            session_state(&locked, t(MIN), &p),
            SessionState::UserBlocked
        );
        assert_eq!(
            session_state(&locked, t(10 * MIN), &p),
            SessionState::Valid { touch: true }
        );
        let mut disabled = record(0, 0);
        disabled.user.disabled = true;
        assert_eq!(
            session_state(&disabled, t(MIN), &p),
            SessionState::UserBlocked
        );
    }

    #[test]
    fn dummy_hash_matches_real_parameters() {
        let real = hash_password(PW).unwrap();
        let real = PasswordHash::new(&real).unwrap();
        let dummy = PasswordHash::new(dummy_phc().unwrap()).unwrap();
        assert_eq!(dummy.algorithm, real.algorithm);
        assert_eq!(dummy.version, real.version);
        assert_eq!(dummy.params, real.params);
        assert_eq!(real.algorithm.as_str(), "argon2id");
        // It is a complete hash, so checking against it costs a full Argon2 run ...
        assert!(
            hasher()
                .verify_password(b"medsec dummy password", &dummy)
                .is_ok()
        );
        // ... yet the dummy path never reports a match, not even for that password.
        assert!(!verify(None, "medsec dummy password"));
    }

    #[tokio::test]
    async fn unknown_users_cost_one_verification_and_read_the_same() {
        let store = Mem::default();
        let p = SessionPolicy::default();
        create_user(&store, "alice", PW, Role::Admin, &Actor::system(), t(0))
            .await
            .unwrap();
        for name in ["mallory", "Not A Name!"] {
            let before = verifications();
            let e = sign_in(&store, name, PW, t(1), &p).await.unwrap_err();
            assert!(matches!(e, AuthError::InvalidCredentials), "{e}");
            assert_eq!(verifications() - before, 1, "{name}");
        }
        let before = verifications();
        let e = sign_in(&store, "alice", "wrong password!", t(1), &p)
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), AuthError::InvalidCredentials.to_string());
        assert_eq!(verifications() - before, 1);
        // A password too long to be anyone's still costs exactly one verification.
        let before = verifications();
        let long = "x".repeat(PASSWORD_MAX_CHARS + 1);
        assert!(sign_in(&store, "alice", &long, t(1), &p).await.is_err());
        assert_eq!(verifications() - before, 1);
        // The well-formed unknown name was audited; the malformed one could not be.
        assert_eq!(
            store.actions(),
            [
                "user.created",
                "user.sign-in-failed",
                "user.sign-in-failed",
                "user.sign-in-failed"
            ]
        );
        assert_eq!(store.user("alice").failed_attempts, 2);
    }

    #[tokio::test]
    async fn lockout_session_and_sign_out() {
        let store = Mem::default();
        let p = SessionPolicy::default();
        let admin = Actor::parse("cli:setup").unwrap();
        create_user(&store, "Bob", PW, Role::Operator, &admin, t(0))
            .await
            .unwrap();
        assert!(matches!(
            create_user(&store, "bob", PW, Role::Operator, &admin, t(0)).await,
            Err(AuthError::UserExists(_))
        ));
        // The stored hash is Argon2id, not the password.
        let (_, phc) = store
            .get_user(&Username::parse("bob").unwrap())
            .await
            .unwrap()
            .unwrap();
        assert!(phc.starts_with("$argon2id$") && !phc.contains(PW));

        // Two failures, then success resets the count.
        for _ in 0..2 {
            assert!(
                sign_in(&store, "bob", "not the password", t(1), &p)
                    .await
                    .is_err()
            );
        }
        assert_eq!(store.user("bob").failed_attempts, 2);
        let s = sign_in(&store, "bob", PW, t(2), &p).await.unwrap();
        assert_eq!(s.user.failed_attempts, 0);
        assert_eq!(s.expires_at, t(2 + 12 * 60 * MIN));
        assert_eq!(s.cookie_value.len(), COOKIE_CHARS);
        assert!(!format!("{s:?}").contains(&s.cookie_value));

        // Five failures lock; the right password is refused until the lock ends.
        for i in 0..5 {
            let e = sign_in(&store, "bob", "not the password", t(10 + i), &p)
                .await
                .unwrap_err();
            assert!(matches!(e, AuthError::InvalidCredentials));
        }
        let until = t(14 + 15 * MIN);
        assert_eq!(store.user("bob").locked_until, Some(until));
        let e = sign_in(&store, "bob", PW, t(20), &p).await.unwrap_err();
        assert!(matches!(e, AuthError::Locked { until: u } if u == until));
        // The existing session is refused while the lock holds.
        assert!(matches!(
            session(&store, &s.cookie_value, t(30), &p).await,
            Err(AuthError::SessionInvalid)
        ));
        let s2 = sign_in(&store, "bob", PW, until, &p).await.unwrap();
        assert_eq!((s2.user.failed_attempts, s2.user.locked_until), (0, None));

        // The session: checked, touched, CSRF-guarded, signed out.
        let got = session(&store, &s2.cookie_value, until + Duration::minutes(5), &p)
            .await
            .unwrap();
        assert_eq!(got.last_seen, until + Duration::minutes(5));
        assert_eq!(got.role(), Role::Operator);
        assert!(check_csrf(&got, &s2.csrf_token).is_ok());
        assert!(check_csrf(&got, &s.csrf_token).is_err());
        assert!(session(&store, "garbage", until, &p).await.is_err());
        assert!(sign_out(&store, &s2.cookie_value).await.unwrap());
        assert!(!sign_out(&store, &s2.cookie_value).await.unwrap());
        assert!(session(&store, &s2.cookie_value, until, &p).await.is_err());

        // A password change ends the remaining session; the old password stops working.
        let bob = Username::parse("bob").unwrap();
        let later = until + Duration::hours(1);
        let s3 = sign_in(&store, "bob", PW, later, &p).await.unwrap();
        assert!(matches!(
            change_password(
                &store,
                &bob,
                "wrong current pw",
                "a brand new secret",
                later,
                &p
            )
            .await,
            Err(AuthError::InvalidCredentials)
        ));
        assert!(
            change_password(&store, &bob, PW, "short", later, &p)
                .await
                .is_err()
        );
        assert_eq!(
            change_password(&store, &bob, PW, "a brand new secret", later, &p)
                .await
                .unwrap(),
            2
        );
        assert!(session(&store, &s3.cookie_value, later, &p).await.is_err());
        assert!(sign_in(&store, "bob", PW, later, &p).await.is_err());
        sign_in(&store, "bob", "a brand new secret", later, &p)
            .await
            .unwrap();

        // Disabled: signed out everywhere, and sign-in reads like a wrong password.
        assert!(set_disabled(&store, &bob, true, &admin).await.unwrap());
        assert!(!set_disabled(&store, &bob, true, &admin).await.unwrap());
        assert!(matches!(
            sign_in(&store, "bob", "a brand new secret", later, &p).await,
            Err(AuthError::InvalidCredentials)
        ));
        assert!(set_disabled(&store, &bob, false, &admin).await.unwrap());
        assert!(
            sign_in(&store, "bob", "not the password", later, &p)
                .await
                .is_err()
        );
        assert!(unlock(&store, &bob, &admin).await.unwrap());
        assert_eq!(store.user("bob").failed_attempts, 0);
        assert!(!unlock(&store, &bob, &admin).await.unwrap());

        assert_eq!(
            store.actions(),
            [
                "user.created",
                "user.sign-in-failed",
                "user.sign-in-failed",
                "user.signed-in",
                "user.sign-in-failed",
                "user.sign-in-failed",
                "user.sign-in-failed",
                "user.sign-in-failed",
                "user.sign-in-failed",
                "user.locked",
                "user.signed-in",
                "user.signed-out",
                "user.signed-in",
                "user.sign-in-failed",
                "user.password-changed",
                "user.sign-in-failed",
                "user.signed-in",
                "user.locked",
                "user.unlocked",
                "user.sign-in-failed",
                "user.unlocked",
            ]
        );
    }
}
