//! The evidence story against `EvidenceStore`, run on every back end: JUnit and SARIF files
//! imported for one firmware version and listed back with the summaries `parse` gives, the
//! files returned byte for byte, a second import of the same file refused, a file that is not
//! evidence refused before anything is stored, and the audit chain intact.

mod common;

use std::path::Path;

use medsec_core::{Actor, AuditAction, DeviceModel, FirmwareVersion, StoreError};
use medsec_docs::DocsError;
use medsec_docs::evidence::{
    EvidenceKind, EvidenceStore, NewEvidence, TestCategory, parse, sha256_hex,
};
use medsec_store::{AuditLog, PgStore, SqliteStore, Synchronous, verify_audit};
use time::OffsetDateTime;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../docs/tests/data/evidence")
            .join(name),
    )
    .unwrap()
}

async fn evidence_story<S: EvidenceStore + AuditLog + Clone>(store: S) {
    let actor = Actor::parse("user:test-engineer").unwrap();
    let model = DeviceModel::parse("infusion-pump-x2").unwrap();
    let version = FirmwareVersion::parse("2.4.1").unwrap();
    let other_version = FirmwareVersion::parse("2.5.0-rc.1").unwrap();
    // Stores keep the import time to the second.
    let at = OffsetDateTime::from_unix_timestamp(1_715_680_000).unwrap();
    let new = |category, name: &str, hint| {
        NewEvidence::new(
            model.clone(),
            version.clone(),
            category,
            &format!("/srv/ci/artifacts/{name}"),
            fixture(name),
            hint,
            actor.clone(),
            at,
        )
        .unwrap()
    };

    assert!(
        store
            .list_evidence(&model, &version)
            .await
            .unwrap()
            .is_empty()
    );
    let imports = [
        new(
            TestCategory::PenetrationTest,
            "junit-pentest-two-failures.xml",
            Some(EvidenceKind::Junit),
        ),
        new(
            TestCategory::Fuzzing,
            "junit-ctest-fuzzing-one-failure.xml",
            None,
        ),
        new(
            TestCategory::StaticAnalysis,
            "sarif-semgrep-findings.sarif",
            Some(EvidenceKind::Sarif),
        ),
        new(
            TestCategory::StaticAnalysis,
            "sarif-codeql-no-errors.sarif",
            None,
        ),
    ];
    let mut ids = Vec::new();
    for e in &imports {
        ids.push(store.add_evidence(e, &e.audit_record()).await.unwrap());
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    let listed = store.list_evidence(&model, &version).await.unwrap();
    assert_eq!(listed.len(), imports.len());
    for ((s, e), id) in listed.iter().zip(&imports).zip(&ids) {
        assert_eq!(s.id, *id);
        assert_eq!(s.model, model);
        assert_eq!(s.version, version);
        assert_eq!(s.category, e.category);
        assert_eq!(s.kind, e.kind);
        assert_eq!(s.file_name, e.file_name);
        assert!(!s.file_name.contains('/'));
        assert_eq!(s.sha256, sha256_hex(&e.bytes));
        assert_eq!(s.size, e.bytes.len() as u64);
        assert_eq!(s.imported_at, at);
        assert_eq!(s.author, actor);
        // The stored summary is exactly what parsing the file gives.
        assert_eq!(s.summary, parse(None, &e.bytes).unwrap());
        assert_eq!(
            store.evidence_file(*id).await.unwrap().as_deref(),
            Some(e.bytes.as_slice())
        );
    }
    assert_eq!(listed[0].kind, EvidenceKind::Junit);
    assert!(!listed[0].summary.passed());
    assert_eq!(listed[2].kind, EvidenceKind::Sarif);
    assert!(!listed[2].summary.passed());
    assert!(listed[3].summary.passed());
    assert_eq!(store.evidence_file(9_999).await.unwrap(), None);
    assert_eq!(store.evidence_file(u64::MAX).await.unwrap(), None);

    // The same file again for the same firmware version is refused, even under another
    // name or category; for another version it is new evidence.
    let mut again = new(TestCategory::Other, "sarif-semgrep-findings.sarif", None);
    again.file_name = "semgrep-rerun.sarif".into();
    let err = store
        .add_evidence(&again, &again.audit_record())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert!(
        err.to_string().contains("sarif-semgrep-findings.sarif"),
        "{err}"
    );
    let mut other = again.clone();
    other.version = other_version.clone();
    store
        .add_evidence(&other, &other.audit_record())
        .await
        .unwrap();
    assert_eq!(
        store
            .list_evidence(&model, &other_version)
            .await
            .unwrap()
            .len(),
        1
    );

    // A record whose bytes do not match its hash is refused by the store.
    let mut tampered = new(
        TestCategory::Functional,
        "junit-functional-nested.xml",
        None,
    );
    tampered.bytes.extend_from_slice(b"\n<!-- appended -->\n");
    assert!(matches!(
        store
            .add_evidence(&tampered, &tampered.audit_record())
            .await,
        Err(StoreError::Refused(_))
    ));

    // Files that are not evidence never reach the store.
    for (name, hint, expect) in [
        ("not-evidence.html", None, "root element is <html>"),
        ("junit-truncated.xml", None, "invalid XML at line 1"),
        (
            "junit-pentest-two-failures.xml",
            Some(EvidenceKind::Sarif),
            "expected SARIF",
        ),
    ] {
        let err = NewEvidence::new(
            model.clone(),
            version.clone(),
            TestCategory::PenetrationTest,
            name,
            fixture(name),
            hint,
            actor.clone(),
            at,
        )
        .unwrap_err();
        assert!(matches!(err, DocsError::Invalid { .. }), "{err}");
        assert!(err.to_string().contains(expect), "{name}: {err}");
    }
    assert_eq!(
        store.list_evidence(&model, &version).await.unwrap().len(),
        imports.len()
    );

    // One audit entry per stored import, none for the refusals.
    let entries = store.audit_page(0, 1000).await.unwrap();
    let imported: Vec<_> = entries
        .iter()
        .filter(|e| e.action == AuditAction::EvidenceImported.as_str())
        .collect();
    assert_eq!(imported.len(), imports.len() + 1);
    assert_eq!(imported[0].subject, "infusion-pump-x2@2.4.1");
    assert!(
        imported[0]
            .details
            .contains("junit-pentest-two-failures.xml")
    );
    assert!(verify_audit(&store).await.unwrap().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_evidence_story() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("medsec.db");
    let store = SqliteStore::open(&path, Synchronous::Full).await.unwrap();
    evidence_story(store.clone()).await;
    // Evidence is kept as imported: the database refuses to change it.
    assert!(
        sqlx::query("UPDATE evidence SET category = 'other'")
            .execute(store.pool())
            .await
            .is_err()
    );
    assert!(
        sqlx::query("UPDATE evidence_files SET bytes = x'00'")
            .execute(store.pool())
            .await
            .is_err()
    );
    // And it is still there after reopening.
    drop(store);
    let store = SqliteStore::open(&path, Synchronous::Full).await.unwrap();
    let model = DeviceModel::parse("infusion-pump-x2").unwrap();
    let version = FirmwareVersion::parse("2.4.1").unwrap();
    assert_eq!(
        store.list_evidence(&model, &version).await.unwrap().len(),
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_evidence_story() {
    let url = medsec_store::pg_cluster::Cluster::fresh_database().unwrap();
    let store = PgStore::connect(&url, &Default::default()).await.unwrap();
    evidence_story(store.clone()).await;
    // Evidence is kept as imported: the database refuses to change it.
    assert!(
        sqlx::query("UPDATE evidence SET category = 'other'")
            .execute(store.pool())
            .await
            .is_err()
    );
    assert!(
        sqlx::query("UPDATE evidence_files SET bytes = '\\x00'::bytea")
            .execute(store.pool())
            .await
            .is_err()
    );
    // And another replica (a new pool) sees it.
    drop(store);
    let store = PgStore::connect(&url, &Default::default()).await.unwrap();
    let model = DeviceModel::parse("infusion-pump-x2").unwrap();
    let version = FirmwareVersion::parse("2.4.1").unwrap();
    assert_eq!(
        store.list_evidence(&model, &version).await.unwrap().len(),
        4
    );
}

/// The same file imported by two replicas at once is stored once; every other import is
/// refused naming the stored record, and only the stored one is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_evidence_import_races_across_replicas() {
    let url = medsec_store::pg_cluster::Cluster::fresh_database().unwrap();
    let a = PgStore::connect(&url, &Default::default()).await.unwrap();
    let b = PgStore::connect(&url, &Default::default()).await.unwrap();
    let model = DeviceModel::parse("infusion-pump-x2").unwrap();
    let version = FirmwareVersion::parse("2.4.1").unwrap();
    let e = NewEvidence::new(
        model.clone(),
        version.clone(),
        TestCategory::Fuzzing,
        "junit-ctest-fuzzing-one-failure.xml",
        fixture("junit-ctest-fuzzing-one-failure.xml"),
        None,
        Actor::parse("user:test-engineer").unwrap(),
        OffsetDateTime::from_unix_timestamp(1_715_680_000).unwrap(),
    )
    .unwrap();
    let mut tasks = Vec::new();
    for i in 0..50usize {
        let store = if i.is_multiple_of(2) {
            a.clone()
        } else {
            b.clone()
        };
        let e = e.clone();
        tasks.push(tokio::spawn(async move {
            store.add_evidence(&e, &e.audit_record()).await
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(id) => ids.push(id),
            Err(StoreError::Conflict(m)) => {
                assert!(m.contains("junit-ctest-fuzzing-one-failure.xml"), "{m}")
            }
            Err(err) => panic!("unexpected: {err:?}"),
        }
    }
    assert_eq!(ids.len(), 1);
    let listed = b.list_evidence(&model, &version).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, ids[0]);
    assert_eq!(
        a.evidence_file(ids[0]).await.unwrap().as_deref(),
        Some(e.bytes.as_slice())
    );
    let imported = a
        .audit_page(0, 10_000)
        .await
        .unwrap()
        .iter()
        .filter(|x| x.action == AuditAction::EvidenceImported.as_str())
        .count();
    assert_eq!(imported, 1);
    assert!(verify_audit(&b).await.unwrap().is_ok());
}
