//! The CA storage story, written once against the `CaStore` + `AuditLog` traits and run on
//! every back end (SQLite here; PostgreSQL joins when its store lands).

mod common;

use std::sync::Arc;

use common::{csr, profile, ready};
use medsec_ca::{CaStore, CertFilter, CertStatus};
use medsec_core::{DeviceId, DeviceModel, DeviceSerial, KeyAlgorithm, Name, RevocationReason};
use medsec_store::{AuditLog, SqliteStore, Synchronous, verify_audit};
use time::Duration;

/// The whole lifecycle of one device's certificates.
async fn lifecycle_story<S: CaStore + AuditLog>(store: S, dir: &std::path::Path) {
    let (ca, actor) = ready(store, dir).await;
    let pname = Name::parse("pump").unwrap();
    let sn = DeviceSerial::parse("SN-0001").unwrap();
    let dev = DeviceId::new(DeviceModel::parse("pump-x2").unwrap(), sn.clone());

    let first = ca
        .issue(&pname, &sn, &csr(&rcgen::PKCS_ECDSA_P256_SHA256), &actor)
        .await
        .unwrap();
    let stored = ca.get_cert(&first.record.serial).await.unwrap();
    assert_eq!(stored, first.record, "what is stored is what was issued");
    assert!(
        stored.serial.as_bytes().len() >= 8,
        "at least 64 bits of serial"
    );
    assert_eq!(
        ca.get_device(&dev).await.unwrap().status,
        medsec_ca::DeviceStatus::Active
    );

    // A P-384 key is not allowed by this profile and leaves no trace.
    let before = ca.list_certs(&CertFilter::default()).await.unwrap().len();
    let e = ca
        .issue(&pname, &sn, &csr(&rcgen::PKCS_ECDSA_P384_SHA384), &actor)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not allowed"), "{e}");
    assert_eq!(
        ca.list_certs(&CertFilter::default()).await.unwrap().len(),
        before
    );

    // Renew: same key, new serial, old stays valid.
    let renewed = ca.renew(&first.record.serial, &actor).await.unwrap();
    assert_ne!(renewed.record.serial, first.record.serial);
    assert_eq!(renewed.record.spki_sha256, first.record.spki_sha256);
    assert_eq!(renewed.record.replaces.as_ref(), Some(&first.record.serial));
    assert_eq!(
        ca.get_cert(&first.record.serial).await.unwrap().status,
        CertStatus::Valid
    );

    // Rekey with the default overlap: old one scheduled, not yet revoked.
    let rk = ca
        .rekey(
            &renewed.record.serial,
            &csr(&rcgen::PKCS_ED25519),
            None,
            &actor,
        )
        .await
        .unwrap();
    assert_eq!(rk.issued.record.key_algorithm, KeyAlgorithm::Ed25519);
    let old = ca.get_cert(&renewed.record.serial).await.unwrap();
    assert_eq!(old.status, CertStatus::Valid);
    assert!(old.revoke_after.is_some());
    // Rekeying with the same key is refused: that is a renewal.
    let same = ca.get_cert(&rk.issued.record.serial).await.unwrap();
    assert!(
        ca.rekey(
            &same.serial,
            &csr(&rcgen::PKCS_ED25519),
            Some(Duration::ZERO),
            &actor
        )
        .await
        .is_ok()
    );
    let prev = ca.get_cert(&same.serial).await.unwrap();
    match prev.status {
        CertStatus::Revoked(r) => assert_eq!(r.reason, RevocationReason::Superseded),
        other => panic!("zero-overlap rekey left the old certificate {other:?}"),
    }

    // Revoke with keyCompromise and an invalidity date; a second revocation is refused.
    let inv = time::OffsetDateTime::now_utc() - Duration::days(2);
    let inv = inv.replace_nanosecond(0).unwrap();
    let r = ca
        .revoke(
            &first.record.serial,
            RevocationReason::KeyCompromise,
            Some(inv),
            &actor,
        )
        .await
        .unwrap();
    match &r.status {
        CertStatus::Revoked(rev) => assert_eq!(rev.invalidity_date, Some(inv)),
        other => panic!("{other:?}"),
    }
    assert!(
        ca.revoke(
            &first.record.serial,
            RevocationReason::Superseded,
            None,
            &actor
        )
        .await
        .is_err()
    );
    // ... but escalating a superseded certificate to keyCompromise is allowed.
    ca.revoke(&prev.serial, RevocationReason::KeyCompromise, None, &actor)
        .await
        .unwrap();

    // CRL numbers only increase, and the CRL lists every revoked serial.
    let issuing = Name::parse("issuing").unwrap();
    let c1 = ca.generate_crl(&issuing, &actor).await.unwrap();
    let c2 = ca.generate_crl(&issuing, &actor).await.unwrap();
    assert_eq!((c1.number, c2.number), (1, 2));
    let revoked = ca
        .list_certs(&CertFilter {
            revoked: Some(true),
            ..CertFilter::default()
        })
        .await
        .unwrap();
    let (_, crl) = x509_parser::parse_x509_crl(&c2.der).unwrap();
    let listed: Vec<Vec<u8>> = crl
        .iter_revoked_certificates()
        .map(|r| r.raw_serial().to_vec())
        .collect();
    assert_eq!(listed.len(), revoked.len());
    for c in &revoked {
        assert!(
            listed
                .iter()
                .any(|s| s.as_slice() == c.serial.to_der_integer_bytes().as_slice())
        );
    }
    let root_crl = ca
        .generate_crl(&Name::parse("root").unwrap(), &actor)
        .await
        .unwrap();
    assert_eq!(root_crl.number, 1);

    // Expiry queries.
    assert!(!ca.expiring_within(400).await.unwrap().is_empty());
    assert!(ca.expiring_within(1).await.unwrap().is_empty());

    // Retire: every certificate revoked with cessationOfOperation, no re-enrolment.
    let valid_before = ca
        .list_certs(&CertFilter {
            device: Some(dev.clone()),
            revoked: Some(false),
            ..CertFilter::default()
        })
        .await
        .unwrap();
    assert!(!valid_before.is_empty());
    let gone = ca.retire(&dev, &actor).await.unwrap();
    assert_eq!(gone.len(), valid_before.len());
    for s in &gone {
        match ca.get_cert(s).await.unwrap().status {
            CertStatus::Revoked(r) => assert_eq!(r.reason, RevocationReason::CessationOfOperation),
            other => panic!("{other:?}"),
        }
    }
    let n = ca.list_certs(&CertFilter::default()).await.unwrap().len();
    let e = ca
        .issue(&pname, &sn, &csr(&rcgen::PKCS_ECDSA_P256_SHA256), &actor)
        .await
        .unwrap_err();
    assert!(matches!(e, medsec_ca::CaError::DeviceRetired(_)), "{e}");
    assert_eq!(
        ca.list_certs(&CertFilter::default()).await.unwrap().len(),
        n
    );

    let entries = verify_audit(ca.store()).await.unwrap().unwrap();
    assert!(entries > 10, "every change was audited ({entries})");
}

/// 10,000 issuances yield 10,000 distinct serials, and the store refuses a forced duplicate.
async fn serial_story<S: CaStore + AuditLog + Clone + 'static>(store: S, dir: &std::path::Path) {
    let (ca, actor) = ready(store.clone(), dir).await;
    let ca = Arc::new(ca);
    let pname = Name::parse("pump").unwrap();
    let csrs: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..64)
            .map(|_| csr(&rcgen::PKCS_ECDSA_P256_SHA256))
            .collect(),
    );
    let mut tasks = Vec::new();
    for t in 0..8 {
        let (ca, actor, pname, csrs) = (ca.clone(), actor.clone(), pname.clone(), csrs.clone());
        tasks.push(tokio::spawn(async move {
            let mut serials = Vec::new();
            for i in 0..1250 {
                let sn = DeviceSerial::parse(&format!("D{t}-{i}")).unwrap();
                let c = ca
                    .issue(&pname, &sn, &csrs[i % csrs.len()], &actor)
                    .await
                    .unwrap();
                serials.push(c.record.serial);
            }
            serials
        }));
    }
    let mut all = std::collections::HashSet::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    assert_eq!(all.len(), 10_000);
    let stored = ca.list_certs(&CertFilter::default()).await.unwrap();
    assert_eq!(stored.len(), 10_000);
    assert_eq!(
        stored
            .iter()
            .map(|c| &c.serial)
            .collect::<std::collections::HashSet<_>>()
            .len(),
        10_000
    );

    // Force a duplicate: the same issuance committed again.
    let one = stored[0].clone();
    let dup = medsec_ca::Issuance {
        cert: one.clone(),
        supersede: None,
        spend_token: None,
        audit: vec![medsec_core::AuditRecord::new(
            &actor,
            medsec_core::AuditAction::CertIssued,
            one.serial.to_hex(),
            serde_json::json!({}),
        )],
    };
    let head_before = store.audit_head().await.unwrap();
    let e = store.commit_issuance(&dup).await.unwrap_err();
    assert!(matches!(e, medsec_store::StoreError::Conflict(_)), "{e}");
    assert_eq!(
        store.audit_head().await.unwrap(),
        head_before,
        "a refused issuance leaves no audit trace"
    );
    assert_eq!(
        ca.list_certs(&CertFilter::default()).await.unwrap().len(),
        10_000
    );
    assert!(verify_audit(&store).await.unwrap().is_ok());
}

/// One-time tokens: used once, expire, bound to their profile; a failed issuance spends nothing.
async fn token_story<S: CaStore + AuditLog>(store: S, dir: &std::path::Path) {
    let (ca, actor) = ready(store, dir).await;
    let pname = Name::parse("pump").unwrap();
    let sn = DeviceSerial::parse("TOK-1").unwrap();
    let (secret, tok) = ca
        .create_enrollment_token(&pname, &sn, Duration::hours(1), &actor)
        .await
        .unwrap();
    assert_eq!(tok.device.urn(), "urn:medsec:device:pump-x2:TOK-1");
    // A CSR the profile refuses does not burn the token.
    let e = ca
        .enroll_with_token(
            &pname,
            &secret,
            &csr(&rcgen::PKCS_ECDSA_P384_SHA384),
            &actor,
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not allowed"), "{e}");
    // Addressed to another profile (EST label): refused.
    let mut other = profile();
    other.name = Name::parse("other").unwrap();
    ca.put_profile(&other, &actor).await.unwrap();
    let e = ca
        .enroll_with_token(
            &other.name,
            &secret,
            &csr(&rcgen::PKCS_ECDSA_P256_SHA256),
            &actor,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, medsec_ca::CaError::TokenWrongProfile { .. }),
        "{e}"
    );
    let issued = ca
        .enroll_with_token(
            &pname,
            &secret,
            &csr(&rcgen::PKCS_ECDSA_P256_SHA256),
            &actor,
        )
        .await
        .unwrap();
    assert_eq!(issued.record.device, tok.device);
    let e = ca
        .enroll_with_token(
            &pname,
            &secret,
            &csr(&rcgen::PKCS_ECDSA_P256_SHA256),
            &actor,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, medsec_ca::CaError::TokenRejected), "{e}");
    assert!(
        ca.enroll_with_token(
            &pname,
            "made-up",
            &csr(&rcgen::PKCS_ECDSA_P256_SHA256),
            &actor
        )
        .await
        .is_err()
    );
    // Expiry.
    let (short, _) = ca
        .create_enrollment_token(
            &pname,
            &DeviceSerial::parse("TOK-2").unwrap(),
            Duration::seconds(1),
            &actor,
        )
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let e = ca
        .enroll_with_token(&pname, &short, &csr(&rcgen::PKCS_ECDSA_P256_SHA256), &actor)
        .await
        .unwrap_err();
    assert!(matches!(e, medsec_ca::CaError::TokenRejected), "{e}");
    assert!(
        ca.create_enrollment_token(&pname, &sn, Duration::days(31), &actor)
            .await
            .is_err()
    );
    assert!(verify_audit(ca.store()).await.unwrap().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_token_story() {
    let dir = tempfile::tempdir().unwrap();
    token_story(sqlite(dir.path()).await, dir.path()).await;
}

async fn sqlite(dir: &std::path::Path) -> SqliteStore {
    SqliteStore::open(&dir.join("medsec.db"), Synchronous::Full)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_lifecycle_story() {
    let dir = tempfile::tempdir().unwrap();
    lifecycle_story(sqlite(dir.path()).await, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_serial_story() {
    let dir = tempfile::tempdir().unwrap();
    serial_story(sqlite(dir.path()).await, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edited_migration_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path()).await;
    sqlx::query("UPDATE schema_migrations SET sha256 = 'x' WHERE version = 1")
        .execute(store.pool())
        .await
        .unwrap();
    drop(store);
    let e = SqliteStore::open(&dir.path().join("medsec.db"), Synchronous::Full)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("never change"), "{e}");
}
