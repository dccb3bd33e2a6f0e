//! The API-token story on both back ends: create, list, revoke once (audited, in the same
//! transaction), refuse a second revocation and an unknown id, and verification refusing the
//! revoked token.

mod common;

use medsec_auth::{AuthStore, Role, create_token, revoke_token, still_valid, verify_token};
use medsec_core::Actor;
use medsec_store::{AuditLog, SqliteStore, Synchronous, verify_audit};

async fn token_story<S: AuthStore + AuditLog>(s: &S) {
    let actor = Actor::parse("cli:test").unwrap();
    let (secret, t) = create_token(s, "ci", Role::Operator, None, &actor)
        .await
        .unwrap();
    let (_, other) = create_token(s, "other", Role::Auditor, None, &actor)
        .await
        .unwrap();
    let p = verify_token(s, &secret).await.unwrap();
    let listed = s.list_api_tokens().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|t| !t.revoked));
    let entries = verify_audit(s).await.unwrap().unwrap();

    let r = revoke_token(s, &t.id, &actor).await.unwrap();
    assert!(r.revoked);
    assert!(verify_token(s, &secret).await.is_err());
    assert!(
        still_valid(s, &p).await.is_err(),
        "a cached principal is refused"
    );
    // One audit entry, chained.
    assert_eq!(verify_audit(s).await.unwrap().unwrap(), entries + 1);
    let last = s.audit_page(0, 1000).await.unwrap().pop().unwrap();
    assert_eq!(
        (last.action.as_str(), last.subject.as_str()),
        ("api-token.revoked", format!("api-token:{}", t.id).as_str())
    );

    // Twice, or an unknown id: refused, nothing written.
    assert!(revoke_token(s, &t.id, &actor).await.is_err());
    assert!(
        !s.revoke_api_token(&t.id, &last_record(&actor))
            .await
            .unwrap()
    );
    assert!(revoke_token(s, "00000000000000ff", &actor).await.is_err());
    assert_eq!(verify_audit(s).await.unwrap().unwrap(), entries + 1);
    let listed = s.list_api_tokens().await.unwrap();
    let state = |id: &str| listed.iter().find(|t| t.id == id).unwrap().revoked;
    assert!(state(&t.id));
    assert!(!state(&other.id), "only the named token is revoked");
}

fn last_record(actor: &Actor) -> medsec_core::AuditRecord {
    medsec_core::AuditRecord::new(
        actor,
        medsec_core::AuditAction::ApiTokenRevoked,
        "api-token:x".to_owned(),
        serde_json::json!({}),
    )
}

#[tokio::test]
async fn sqlite_token_story() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("medsec.db"), Synchronous::Full)
        .await
        .unwrap();
    token_story(&s).await;
}

#[tokio::test]
async fn pg_token_story() {
    token_story(&common::pg().await).await;
}
