//! The CA storage story, written once against the `CaStore` + `AuditLog` traits and run on
//! every back end (SQLite and PostgreSQL), plus PostgreSQL's own test that two replicas racing
//! on one database still issue each serial once and spend each enrollment token once.

mod common;

use std::sync::Arc;

use common::{csr, profile, ready};
use medsec_ca::{CaStore, CertFilter, CertStatus};
use medsec_core::{DeviceId, DeviceModel, DeviceSerial, KeyAlgorithm, Name, RevocationReason};
use medsec_store::pg_cluster::Cluster;
use medsec_store::{AuditLog, PgStore, SqliteStore, Synchronous, verify_audit};
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

/// A sharded issuing CA: each certificate names its shard's CRL, each shard's CRL lists only
/// that shard's revocations under an IDP naming the same URL, and every CRL of the CA takes
/// the next number of the CA's one sequence.
async fn crl_shard_story<S: CaStore + AuditLog>(store: S, dir: &std::path::Path) {
    use medsec_ca::{CaUrls, crl_shard_of};
    use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
    let (ca, actor) = ready(store, dir).await;
    let root = Name::parse("root").unwrap();
    let sharded = Name::parse("sharded").unwrap();
    let add = |template: &str, shards: u32| {
        let urls = CaUrls {
            crl_url_template: Some(template.to_owned()),
            ocsp_url: None,
            crl_shards: shards,
        };
        let (ca, actor, root, sharded) = (&ca, &actor, &root, &sharded);
        async move {
            ca.add_issuing(
                sharded,
                "Sharded Issuing",
                "Story Medical",
                None,
                root,
                KeyAlgorithm::EcdsaP256,
                365,
                Duration::days(1),
                &urls,
                actor,
            )
            .await
        }
    };
    // Without {shard} every certificate would name one URL: refused, nothing stored.
    let e = add("http://pki.example/crl/{ca}.crl", 4).await.unwrap_err();
    assert!(e.to_string().contains("{shard}"), "{e}");
    assert!(ca.store().get_ca(&sharded).await.unwrap().is_none());
    let rec = add("http://pki.example/crl/{ca}/{shard}.crl", 4)
        .await
        .unwrap();
    assert_eq!(rec.crl_shards, 4);
    assert_eq!(ca.get_ca(&sharded).await.unwrap().crl_shards, 4);
    assert_eq!(
        ca.get_ca(&Name::parse("issuing").unwrap())
            .await
            .unwrap()
            .crl_shards,
        1
    );
    let mut p = profile();
    p.name = Name::parse("pump-sharded").unwrap();
    p.issuer = sharded.clone();
    ca.put_profile(&p, &actor).await.unwrap();

    let mut issued = Vec::new();
    for i in 0..16 {
        let sn = DeviceSerial::parse(&format!("SH-{i:03}")).unwrap();
        let c = ca
            .issue(&p.name, &sn, &csr(&rcgen::PKCS_ECDSA_P256_SHA256), &actor)
            .await
            .unwrap();
        let shard = crl_shard_of(&c.record.serial, 4);
        let (_, x) = x509_parser::parse_x509_certificate(&c.record.der).unwrap();
        let cdp: Vec<String> = x
            .extensions()
            .iter()
            .filter_map(|e| match e.parsed_extension() {
                ParsedExtension::CRLDistributionPoints(d) => Some(d),
                _ => None,
            })
            .flat_map(|d| d.points.iter())
            .filter_map(|p| match &p.distribution_point {
                Some(DistributionPointName::FullName(n)) => Some(n),
                _ => None,
            })
            .flatten()
            .filter_map(|n| match n {
                GeneralName::URI(u) => Some(u.to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(
            cdp,
            vec![format!("http://pki.example/crl/sharded/{shard}.crl")]
        );
        issued.push(c.record);
    }
    for c in issued.iter().step_by(3) {
        ca.revoke(&c.serial, RevocationReason::KeyCompromise, None, &actor)
            .await
            .unwrap();
    }
    let revoked: Vec<_> = issued.iter().step_by(3).map(|c| c.serial.clone()).collect();
    let mut last = 0;
    for shard in 1..=4 {
        let crl = ca
            .generate_crl_shard(&sharded, shard, &actor)
            .await
            .unwrap();
        assert_eq!(crl.shard, shard);
        assert!(crl.number > last, "one increasing sequence per CA");
        last = crl.number;
        assert_eq!(
            ca.store().latest_crl(&sharded, shard).await.unwrap(),
            Some(crl.clone())
        );
        let (_, x) = x509_parser::parse_x509_crl(&crl.der).unwrap();
        let listed: Vec<Vec<u8>> = x
            .iter_revoked_certificates()
            .map(|r| r.raw_serial().to_vec())
            .collect();
        let mine: Vec<_> = revoked
            .iter()
            .filter(|s| crl_shard_of(s, 4) == shard)
            .collect();
        assert_eq!(listed.len(), mine.len(), "shard {shard}");
        for s in mine {
            assert!(listed.contains(&s.to_der_integer_bytes()));
        }
    }
    // The whole-CA CRL (shard 0) is its own scope and lists everything.
    assert!(ca.latest_crl(&sharded).await.unwrap().is_none());
    let whole = ca.generate_crl(&sharded, &actor).await.unwrap();
    assert_eq!((whole.shard, whole.number), (0, last + 1));
    let (_, x) = x509_parser::parse_x509_crl(&whole.der).unwrap();
    assert_eq!(x.iter_revoked_certificates().count(), revoked.len());
    assert_eq!(
        ca.store()
            .latest_crl(&sharded, 1)
            .await
            .unwrap()
            .unwrap()
            .number,
        last - 3
    );
    // Shards that do not exist are refused.
    assert!(ca.generate_crl_shard(&sharded, 5, &actor).await.is_err());
    assert!(
        ca.generate_crl_shard(&Name::parse("issuing").unwrap(), 1, &actor)
            .await
            .is_err()
    );
    // Revocations reach only their own shard's CRL.
    let affected = ca.crls_affected_by(&revoked[..1]).await.unwrap();
    let want = (sharded.clone(), crl_shard_of(&revoked[0], 4));
    assert!(affected.contains(&want), "{affected:?}");
    assert_eq!(
        affected.iter().filter(|(n, _)| n == &sharded).count(),
        1,
        "{affected:?}"
    );
    assert!(verify_audit(ca.store()).await.unwrap().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_crl_shard_story() {
    let dir = tempfile::tempdir().unwrap();
    crl_shard_story(sqlite(dir.path()).await, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_crl_shard_story() {
    let dir = tempfile::tempdir().unwrap();
    crl_shard_story(common::pg().await, dir.path()).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_token_story() {
    let dir = tempfile::tempdir().unwrap();
    token_story(common::pg().await, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_lifecycle_story() {
    let dir = tempfile::tempdir().unwrap();
    lifecycle_story(common::pg().await, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_serial_story() {
    let dir = tempfile::tempdir().unwrap();
    serial_story(common::pg().await, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_edited_migration_is_refused() {
    let url = Cluster::fresh_database().unwrap();
    let store = PgStore::connect(&url, &Default::default()).await.unwrap();
    sqlx::query("UPDATE schema_migrations SET sha256 = 'x' WHERE version = 1")
        .execute(store.pool())
        .await
        .unwrap();
    store.pool().close().await;
    drop(store);
    let e = PgStore::connect(&url, &Default::default())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("never change"), "{e}");
}

/// Two replicas (two `PgStore`s, two pools) on one database, each with 50 concurrent attempts:
/// one enrollment token spent by 100 issuances yields exactly one certificate, and 100
/// issuances of one serial yield exactly one row. Neither store's memory can help here; only
/// the database's constraints and row locks can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_replicas_spend_tokens_and_serials_once() {
    use medsec_ca::{Issuance, new_serial};
    use medsec_core::{AuditAction, AuditRecord};
    use sha2::Digest;

    let dir = tempfile::tempdir().unwrap();
    let url = Cluster::fresh_database().unwrap();
    let a = PgStore::connect(&url, &Default::default()).await.unwrap();
    let b = PgStore::connect(&url, &Default::default()).await.unwrap();
    let (ca, actor) = ready(a.clone(), dir.path()).await;
    let pname = Name::parse("pump").unwrap();
    let template = ca
        .issue(
            &pname,
            &DeviceSerial::parse("TEMPLATE").unwrap(),
            &csr(&rcgen::PKCS_ECDSA_P256_SHA256),
            &actor,
        )
        .await
        .unwrap()
        .record;
    let issuance = |serial, device: &DeviceId, token: Option<String>| Issuance {
        cert: medsec_ca::CertRecord {
            serial,
            device: device.clone(),
            ..template.clone()
        },
        supersede: None,
        spend_token: token,
        audit: vec![AuditRecord::new(
            &actor,
            AuditAction::CertIssued,
            device.urn(),
            serde_json::json!({}),
        )],
    };
    async fn race(
        stores: [&PgStore; 2],
        items: Vec<Issuance>,
    ) -> Vec<Result<(), medsec_store::StoreError>> {
        let tasks: Vec<_> = items
            .into_iter()
            .enumerate()
            .map(|(i, iss)| {
                let store = stores[i % 2].clone();
                tokio::spawn(async move { store.commit_issuance(&iss).await })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    }

    // One token, 100 distinct serials for its device; once for a device the token registers,
    // where the racers also queue on the new device row, and once for a device already known,
    // where nothing but the token's own row orders them.
    let cb = medsec_ca::Ca::new(b.clone(), common::keys(dir.path()));
    for (device, known) in [("RACE-NEW", false), ("RACE-KNOWN", true)] {
        let sn = DeviceSerial::parse(device).unwrap();
        if known {
            ca.issue(&pname, &sn, &csr(&rcgen::PKCS_ECDSA_P256_SHA256), &actor)
                .await
                .unwrap();
        }
        let (secret, tok) = ca
            .create_enrollment_token(&pname, &sn, Duration::hours(1), &actor)
            .await
            .unwrap();
        let hash = hex::encode(sha2::Sha256::digest(secret.as_bytes()));
        let items = (0..100)
            .map(|_| issuance(new_serial().unwrap(), &tok.device, Some(hash.clone())))
            .collect();
        let results = race([&a, &b], items).await;
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{device}");
        for r in results.iter().filter_map(|r| r.as_ref().err()) {
            assert!(
                matches!(r, medsec_store::StoreError::Refused(m) if m.contains("enrollment token")),
                "{r}"
            );
        }
        let on_device = b
            .list_certs(&CertFilter {
                device: Some(tok.device.clone()),
                ..CertFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(
            on_device.len(),
            1 + usize::from(known),
            "{device}: one token, one certificate"
        );
        let spent = b.find_enrollment_token(&hash).await.unwrap().unwrap();
        assert!(spent.used_at.is_some());
        // The service agrees: the spent token is rejected through the other replica.
        let e = cb
            .enroll_with_token(
                &pname,
                &secret,
                &csr(&rcgen::PKCS_ECDSA_P256_SHA256),
                &actor,
            )
            .await
            .unwrap_err();
        assert!(matches!(e, medsec_ca::CaError::TokenRejected), "{e}");
    }

    // One serial, 100 devices.
    let serial = new_serial().unwrap();
    let items = (0..100)
        .map(|i| {
            let dev = DeviceId::new(
                template.device.model.clone(),
                DeviceSerial::parse(&format!("DUP-{i}")).unwrap(),
            );
            issuance(serial.clone(), &dev, None)
        })
        .collect();
    let results = race([&a, &b], items).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(
            matches!(r, medsec_store::StoreError::Conflict(m) if m.contains("serial")),
            "{r}"
        );
    }
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM certs WHERE serial = $1")
        .bind(serial.to_hex())
        .fetch_one(a.pool())
        .await
        .unwrap();
    assert_eq!(n, 1);
    // The losers left nothing behind, not even the devices they would have registered.
    let devices: i64 = sqlx::query_scalar("SELECT count(*) FROM devices WHERE serial LIKE 'DUP-%'")
        .fetch_one(a.pool())
        .await
        .unwrap();
    assert_eq!(devices, 1);

    // Retiring a device on one replica while the other issues for it: whichever order the
    // database picks, a retired device keeps no unrevoked certificate.
    let dev = DeviceId::new(
        template.device.model.clone(),
        DeviceSerial::parse("RETIRING").unwrap(),
    );
    a.commit_issuance(&issuance(new_serial().unwrap(), &dev, None))
        .await
        .unwrap();
    let items: Vec<Issuance> = (0..40)
        .map(|_| issuance(new_serial().unwrap(), &dev, None))
        .collect();
    let issuing = tokio::spawn(async move { race([&a, &b], items).await });
    let retired = cb.retire(&dev, &actor).await.unwrap();
    let results = issuing.await.unwrap();
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(
            matches!(r, medsec_store::StoreError::Refused(m) if m.contains("retired")),
            "{r}"
        );
    }
    let left = cb
        .list_certs(&CertFilter {
            device: Some(dev.clone()),
            revoked: Some(false),
            ..CertFilter::default()
        })
        .await
        .unwrap();
    assert!(left.is_empty(), "{} unrevoked after retirement", left.len());
    assert_eq!(
        retired.len(),
        1 + results.iter().filter(|r| r.is_ok()).count()
    );
    assert!(verify_audit(cb.store()).await.unwrap().is_ok());
}

/// PostgreSQL writes a batch of concurrent issuances with multi-row statements; a batch with
/// one bad issuance falls back to one savepoint each. Both paths, through one store: devices
/// already known and new ones mixed, each token spent by its own issuance, and one issuance
/// whose token was spent before fails alone while the rest of its batch is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_batched_issuances_fail_alone() {
    use medsec_ca::{Issuance, new_serial};
    use medsec_core::{AuditAction, AuditRecord};
    use sha2::Digest;

    let dir = tempfile::tempdir().unwrap();
    let store = common::pg().await;
    let (ca, actor) = ready(store.clone(), dir.path()).await;
    let pname = Name::parse("pump").unwrap();
    let mut items = Vec::new();
    let mut spent_hash = None;
    for i in 0..60 {
        let sn = DeviceSerial::parse(&format!("BATCH-{i:03}")).unwrap();
        let known = i % 2 == 0;
        if known {
            ca.issue(&pname, &sn, &csr(&rcgen::PKCS_ECDSA_P256_SHA256), &actor)
                .await
                .unwrap();
        }
        let (secret, tok) = ca
            .create_enrollment_token(&pname, &sn, Duration::hours(1), &actor)
            .await
            .unwrap();
        let hash = hex::encode(sha2::Sha256::digest(secret.as_bytes()));
        let template = ca
            .list_certs(&CertFilter::default())
            .await
            .unwrap()
            .remove(0);
        if i == 7 {
            // Spent beforehand: this issuance must be refused, and only it.
            ca.enroll_with_token(
                &pname,
                &secret,
                &csr(&rcgen::PKCS_ECDSA_P256_SHA256),
                &actor,
            )
            .await
            .unwrap();
            spent_hash = Some(hash.clone());
        }
        items.push(Issuance {
            cert: medsec_ca::CertRecord {
                serial: new_serial().unwrap(),
                device: tok.device.clone(),
                ..template
            },
            supersede: None,
            spend_token: Some(hash),
            audit: vec![AuditRecord::new(
                &actor,
                AuditAction::CertIssued,
                tok.device.urn(),
                serde_json::json!({}),
            )],
        });
    }
    let before = store
        .list_certs(&CertFilter::default())
        .await
        .unwrap()
        .len();
    // Twice: all good (the multi-row path), then with the spent token among them.
    let (good, with_bad): (Vec<_>, Vec<_>) =
        items.into_iter().enumerate().partition(|(i, _)| *i >= 30);
    for (round, batch) in [good, with_bad].into_iter().enumerate() {
        let tasks: Vec<_> = batch
            .into_iter()
            .map(|(i, iss)| {
                let s = store.clone();
                tokio::spawn(async move { (i, s.commit_issuance(&iss).await) })
            })
            .collect();
        for t in tasks {
            let (i, r) = t.await.unwrap();
            if i == 7 {
                assert!(
                    matches!(&r, Err(medsec_store::StoreError::Refused(m)) if m.contains("enrollment token")),
                    "round {round}: {r:?}"
                );
            } else {
                r.unwrap_or_else(|e| panic!("round {round}, issuance {i}: {e}"));
            }
        }
    }
    let after = store
        .list_certs(&CertFilter::default())
        .await
        .unwrap()
        .len();
    assert_eq!(
        after - before,
        59,
        "every issuance but the refused one stored"
    );
    assert!(spent_hash.is_some());
    // Every device registered once, with its audit entry, and the chain intact.
    let registered = store
        .audit_page(0, 100_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "device.registered" && e.subject.contains("BATCH-"))
        .count();
    assert_eq!(registered, 60);
    assert!(verify_audit(&store).await.unwrap().is_ok());
}

/// An init killed after a CA's key was generated but before the CA was recorded leaves the key
/// under the CA's label (key sources never overwrite). Running init again takes that key up
/// instead of failing on the name for good; a leftover of another algorithm is refused with a
/// reason. An init killed after the root was recorded names the command that finishes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_ca_init_is_resumable() {
    use medsec_keys::KeySource;
    let dir = tempfile::tempdir().unwrap();
    let keys = common::keys(dir.path());
    let actor = medsec_core::Actor::parse("test:story").unwrap();
    let ca = medsec_ca::Ca::new(sqlite(dir.path()).await, keys.clone());

    // The first run died right after generating the root key.
    let leftover = keys.generate("ca-root", KeyAlgorithm::EcdsaP256).unwrap();
    let (root, issuing) = ca.init(&common::spec(), &actor).await.unwrap();
    assert_eq!(root.key_ref.as_deref(), Some("file:ca-root"));
    let (_, cert) = x509_parser::parse_x509_certificate(&root.cert_der).unwrap();
    assert_eq!(
        cert.public_key().subject_public_key.data.as_ref() as &[u8],
        leftover.public_key(),
        "the root certificate must carry the leftover key"
    );
    assert_eq!(issuing.parent.as_ref(), Some(&root.name));

    // A leftover of another algorithm than the one asked for is not silently used.
    keys.generate("ca-line2", KeyAlgorithm::EcdsaP384).unwrap();
    let urls = common::spec().urls;
    let line2 = Name::parse("line2").unwrap();
    let add = |alg| {
        ca.add_issuing(
            &line2,
            "Line 2",
            "Story Medical",
            None,
            &root.name,
            alg,
            365,
            Duration::days(1),
            &urls,
            &actor,
        )
    };
    let err = add(KeyAlgorithm::EcdsaP256).await.unwrap_err().to_string();
    assert!(
        err.contains("left over") && err.contains("ecdsa-p384"),
        "{err}"
    );
    assert!(ca.store().get_ca(&line2).await.unwrap().is_none());
    let rec = add(KeyAlgorithm::EcdsaP384).await.unwrap();
    assert_eq!(rec.key_ref.as_deref(), Some("file:ca-line2"));

    // Another store where a run died after recording the root (here: the root alone).
    let dir2 = tempfile::tempdir().unwrap();
    let ca2 = medsec_ca::Ca::new(sqlite(dir2.path()).await, common::keys(dir2.path()));
    ca2.import_root(
        &root.name,
        &root.cert_der,
        None,
        &urls,
        Duration::days(30),
        &actor,
    )
    .await
    .unwrap();
    let err = ca2
        .init(&common::spec(), &actor)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("root already exists but issuing does not")
            && err.contains("medsec ca add-issuing --name issuing --parent root"),
        "{err}"
    );
    // Once both exist, init refuses on the root's name as before.
    let err = ca
        .init(&common::spec(), &actor)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("CA root already exists"), "{err}");
}
