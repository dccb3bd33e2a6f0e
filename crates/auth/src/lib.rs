//! Who may call the API: API tokens with roles, stored as Argon2id hashes.
//!
//! A token reads `mst_<id>_<secret>`. The id finds the row; the secret (256 random bits) is
//! checked against its Argon2id PHC hash, so a copy of the database yields no usable token.
//! Roles are fixed and ordered: an auditor reads, an operator also runs the device lifecycle
//! (issue, revoke, retire, enrollment tokens), an admin also changes configuration (profiles,
//! CAs, API tokens).
//!
//! The web dashboard's people sign in with a username and password instead; see [`users`].

use std::fmt;
use std::str::FromStr;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use async_trait::async_trait;
use base64::Engine;
use medsec_core::{Actor, AuditRecord};
use serde::Serialize;
use time::OffsetDateTime;

pub mod users;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Deliberately uninformative: the caller must not learn which part was wrong.
    #[error("invalid or expired API token")]
    InvalidToken,
    #[error("role {have} may not {action}; it needs {need}")]
    Forbidden {
        have: Role,
        need: Role,
        action: &'static str,
    },
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
    #[error("store: {0}")]
    Store(String),
    #[error("user {0} already exists")]
    UserExists(String),
    /// Deliberately uninformative: an unknown user, a wrong password and a disabled account
    /// all read the same, so a sign-in form cannot be used to find out which accounts exist.
    #[error("invalid username or password")]
    InvalidCredentials,
    /// Too many failed sign-ins; no password is checked until `until`.
    #[error("account locked until {until}")]
    Locked { until: OffsetDateTime },
    /// Deliberately uninformative, like `InvalidToken`: unknown, expired, idle or revoked.
    #[error("invalid or expired session")]
    SessionInvalid,
}

/// API roles, ordered by power.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Auditor,
    Operator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Auditor => "auditor",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Checks that this role is at least `need` for `action`.
    pub fn require(self, need: Role, action: &'static str) -> Result<(), AuthError> {
        if self >= need {
            Ok(())
        } else {
            Err(AuthError::Forbidden {
                have: self,
                need,
                action,
            })
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = AuthError;
    fn from_str(s: &str) -> Result<Self, AuthError> {
        match s {
            "auditor" => Ok(Role::Auditor),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            _ => Err(AuthError::Invalid {
                what: "role",
                reason: format!("{s:?}: expected admin, operator or auditor"),
            }),
        }
    }
}

/// A stored API token (without its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    pub id: String,
    pub name: String,
    pub role: Role,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    pub revoked: bool,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub token_id: String,
    pub name: String,
    pub role: Role,
}

impl Principal {
    pub fn actor(&self) -> Actor {
        Actor::parse(&format!("api:{}", self.name)).unwrap_or_else(|_| Actor::system())
    }
}

/// Storage the API token scheme needs.
#[async_trait]
pub trait AuthStore: Send + Sync {
    async fn insert_api_token(
        &self,
        token: &ApiToken,
        phc_hash: &str,
        audit: &AuditRecord,
    ) -> Result<(), AuthError>;
    async fn get_api_token(&self, id: &str) -> Result<Option<(ApiToken, String)>, AuthError>;
    /// Every token, newest first (without secrets or hashes).
    async fn list_api_tokens(&self) -> Result<Vec<ApiToken>, AuthError>;
    /// Marks token `id` revoked with its audit entry, in one transaction; false when there is
    /// no such token or it was revoked already (and then nothing is written).
    async fn revoke_api_token(&self, id: &str, audit: &AuditRecord) -> Result<bool, AuthError>;
}

/// Argon2id with a modest cost: the secret is 256 random bits, so the hash guards against
/// database theft, not guessing; the server caches verified tokens to keep requests cheap.
fn hasher() -> argon2::Argon2<'static> {
    let params = argon2::Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

fn random_bytes<const N: usize>() -> Result<[u8; N], AuthError> {
    use aws_lc_rs::rand::SecureRandom;
    let mut b = [0u8; N];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| AuthError::Store("system RNG failed".into()))?;
    Ok(b)
}

/// Creates a token named `name` with `role`; returns the full token string (shown once).
pub async fn create_token(
    store: &dyn AuthStore,
    name: &str,
    role: Role,
    ttl: Option<time::Duration>,
    actor: &Actor,
) -> Result<(String, ApiToken), AuthError> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(AuthError::Invalid {
            what: "token name",
            reason: "1-64 characters of letters, digits, '-', '_' and '.'".into(),
        });
    }
    let id = hex::encode(random_bytes::<8>()?);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
    let salt = SaltString::encode_b64(&random_bytes::<16>()?)
        .map_err(|e| AuthError::Store(e.to_string()))?;
    let phc = hasher()
        .hash_password(secret.as_bytes(), &salt)
        .map_err(|e| AuthError::Store(e.to_string()))?
        .to_string();
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or(OffsetDateTime::now_utc());
    let token = ApiToken {
        id: id.clone(),
        name: name.to_owned(),
        role,
        created_at: now,
        expires_at: ttl.map(|t| now + t),
        revoked: false,
    };
    let audit = AuditRecord::new(
        actor,
        medsec_core::AuditAction::ApiTokenCreated,
        format!("api-token:{id}"),
        serde_json::json!({"name": name, "role": role}),
    );
    store.insert_api_token(&token, &phc, &audit).await?;
    Ok((format!("mst_{id}_{secret}"), token))
}

/// Revokes token `id` (its 16 hex digits, as `apitoken list` shows). Every server refuses it
/// from its next request on: servers re-read a token's state even when its hash is cached.
pub async fn revoke_token(
    store: &dyn AuthStore,
    id: &str,
    actor: &Actor,
) -> Result<ApiToken, AuthError> {
    let (token, _) = store
        .get_api_token(id)
        .await?
        .ok_or_else(|| AuthError::Invalid {
            what: "API token id",
            reason: format!("no API token {id:?}"),
        })?;
    if token.revoked {
        return Err(AuthError::Invalid {
            what: "API token id",
            reason: format!("API token {id} is revoked already"),
        });
    }
    let audit = AuditRecord::new(
        actor,
        medsec_core::AuditAction::ApiTokenRevoked,
        format!("api-token:{id}"),
        serde_json::json!({"name": token.name, "role": token.role}),
    );
    if !store.revoke_api_token(id, &audit).await? {
        return Err(AuthError::Invalid {
            what: "API token id",
            reason: format!("API token {id} is revoked already"),
        });
    }
    Ok(ApiToken {
        revoked: true,
        ..token
    })
}

/// Whether the token behind an already verified principal is still good (not revoked, not
/// expired): a database read without the Argon2id check, for callers that cache principals.
pub async fn still_valid(store: &dyn AuthStore, p: &Principal) -> Result<(), AuthError> {
    let (token, _) = store
        .get_api_token(&p.token_id)
        .await?
        .ok_or(AuthError::InvalidToken)?;
    if token.revoked
        || token
            .expires_at
            .is_some_and(|e| e <= OffsetDateTime::now_utc())
    {
        return Err(AuthError::InvalidToken);
    }
    Ok(())
}

/// Checks a presented token string and returns its principal.
pub async fn verify_token(store: &dyn AuthStore, presented: &str) -> Result<Principal, AuthError> {
    let rest = presented
        .strip_prefix("mst_")
        .ok_or(AuthError::InvalidToken)?;
    let (id, secret) = rest.split_once('_').ok_or(AuthError::InvalidToken)?;
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) || secret.len() > 100 {
        return Err(AuthError::InvalidToken);
    }
    let (token, phc) = store
        .get_api_token(id)
        .await?
        .ok_or(AuthError::InvalidToken)?;
    let parsed = PasswordHash::new(&phc).map_err(|_| AuthError::InvalidToken)?;
    hasher()
        .verify_password(secret.as_bytes(), &parsed)
        .map_err(|_| AuthError::InvalidToken)?;
    if token.revoked
        || token
            .expires_at
            .is_some_and(|e| e <= OffsetDateTime::now_utc())
    {
        return Err(AuthError::InvalidToken);
    }
    Ok(Principal {
        token_id: token.id,
        name: token.name,
        role: token.role,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Mem(Mutex<HashMap<String, (ApiToken, String)>>);

    #[async_trait]
    impl AuthStore for Mem {
        async fn insert_api_token(
            &self,
            t: &ApiToken,
            h: &str,
            _: &AuditRecord,
        ) -> Result<(), AuthError> {
            self.0
                .lock()
                .unwrap()
                .insert(t.id.clone(), (t.clone(), h.to_owned()));
            Ok(())
        }
        async fn get_api_token(&self, id: &str) -> Result<Option<(ApiToken, String)>, AuthError> {
            Ok(self.0.lock().unwrap().get(id).cloned())
        }
        async fn list_api_tokens(&self) -> Result<Vec<ApiToken>, AuthError> {
            Ok(self
                .0
                .lock()
                .unwrap()
                .values()
                .map(|(t, _)| t.clone())
                .collect())
        }
        async fn revoke_api_token(&self, id: &str, _: &AuditRecord) -> Result<bool, AuthError> {
            Ok(match self.0.lock().unwrap().get_mut(id) {
                Some((t, _)) if !t.revoked => {
                    t.revoked = true;
                    true
                }
                _ => false,
            })
        }
    }

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Admin.require(Role::Operator, "x").is_ok());
        assert!(Role::Auditor.require(Role::Operator, "revoke").is_err());
        assert_eq!("operator".parse::<Role>().unwrap(), Role::Operator);
        assert!("root".parse::<Role>().is_err());
    }

    #[tokio::test]
    async fn create_verify_and_reject() {
        let store = Mem::default();
        let actor = Actor::parse("test").unwrap();
        let (secret, t) = create_token(&store, "ci", Role::Operator, None, &actor)
            .await
            .unwrap();
        let p = verify_token(&store, &secret).await.unwrap();
        assert_eq!(
            (p.role, p.token_id.as_str()),
            (Role::Operator, t.id.as_str())
        );
        // The stored hash is Argon2id, not the secret.
        let (_, phc) = store.get_api_token(&t.id).await.unwrap().unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(!phc.contains(secret.rsplit('_').next().unwrap()));
        let mut wrong = secret.clone();
        wrong.pop();
        wrong.push(if secret.ends_with('A') { 'B' } else { 'A' });
        assert!(verify_token(&store, &wrong).await.is_err());
        assert!(verify_token(&store, "mst_nothex_x").await.is_err());
        assert!(verify_token(&store, "garbage").await.is_err());
        assert!(
            create_token(&store, "bad name", Role::Admin, None, &actor)
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_revoked_token_stops_working_and_stays_revoked() {
        let store = Mem::default();
        let actor = Actor::parse("test").unwrap();
        let (secret, t) = create_token(&store, "ci", Role::Admin, None, &actor)
            .await
            .unwrap();
        let p = verify_token(&store, &secret).await.unwrap();
        still_valid(&store, &p).await.unwrap();
        let r = revoke_token(&store, &t.id, &actor).await.unwrap();
        assert!(r.revoked);
        assert!(matches!(
            verify_token(&store, &secret).await,
            Err(AuthError::InvalidToken)
        ));
        // A cached principal is refused too.
        assert!(still_valid(&store, &p).await.is_err());
        assert!(revoke_token(&store, &t.id, &actor).await.is_err());
        assert!(
            revoke_token(&store, "0000000000000000", &actor)
                .await
                .is_err()
        );
        assert_eq!(store.list_api_tokens().await.unwrap().len(), 1);
    }
}
