//! The risk-management story against `RiskStore`, run on every back end: the example inventory
//! and register stored (a bad file stores nothing), threats and findings computed, a sign-off
//! that a policy change invalidates, a concurrent edit refused, history kept, audit intact.

mod common;

use std::path::Path;
use std::sync::Arc;

use medsec_core::{Actor, DeviceModel};
use medsec_risk::service::RiskService;
use medsec_risk::store::{DocKind, RiskStore};
use medsec_risk::{FindingInputs, RiskError, RiskId, SignOffState};
use medsec_store::{AuditLog, PgStore, SqliteStore, Synchronous, verify_audit};

fn example(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/infusion-pump")
            .join(name),
    )
    .unwrap()
}

async fn risk_story<S: RiskStore + AuditLog + Clone + 'static>(store: S) {
    let svc = RiskService::new(Arc::new(store.clone()));
    let actor = Actor::parse("user:risk-manager").unwrap();
    let inv_toml = example("inventory.toml");
    let model = DeviceModel::parse(
        inv_toml
            .lines()
            .find_map(|l| l.strip_prefix("model = "))
            .unwrap()
            .trim_matches('"'),
    )
    .unwrap();
    let (inv, v1) = svc.put_inventory(&actor, &model, &inv_toml).await.unwrap();
    assert_eq!(v1, 1);
    assert!(inv.links.len() >= 5);
    // A broken inventory names line and field, and stores nothing.
    let broken = inv_toml.replacen("encryption", "encrytion", 1);
    let e = svc
        .put_inventory(&actor, &model, &broken)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("line"), "{e}");
    assert_eq!(
        svc.store()
            .doc_history(model.as_str(), DocKind::Inventory)
            .await
            .unwrap()
            .len(),
        1
    );
    // The file must be about the model it is stored under.
    let other = DeviceModel::parse("ventilator-v1").unwrap();
    assert!(svc.put_inventory(&actor, &other, &inv_toml).await.is_err());

    let threats = svc.threats(&model).await.unwrap();
    assert!(!threats.threats.is_empty());
    let now = time::OffsetDateTime::now_utc();
    let findings = svc.findings(&model, &FindingInputs::at(now)).await.unwrap();
    assert!(!findings.is_empty(), "the example has weak links");

    let (reg, _) = svc
        .put_register(&actor, &model, &example("register.toml"))
        .await
        .unwrap();
    let first = reg.risks[0].id.clone();
    svc.sign_off(&actor, &model, &first, now).await.unwrap();
    let policy = svc.policy().await.unwrap();
    let reg = svc.register(&model).await.unwrap();
    assert!(reg.is_signed_off_valid(&first, &policy).unwrap());
    // A new acceptability matrix re-rates, and invalidates the sign-off.
    let stricter = medsec_risk::Policy::default_policy_toml()
        .replace("acceptable = true", "acceptable = false");
    svc.put_policy(&actor, &stricter).await.unwrap();
    let policy = svc.policy().await.unwrap();
    assert!(!reg.is_signed_off_valid(&first, &policy).unwrap());
    assert!(matches!(
        reg.sign_off_state(&reg.risks[0], &policy).unwrap(),
        SignOffState::Invalidated
    ));
    // Signing off an unknown entry is refused.
    assert!(matches!(
        svc.sign_off(&actor, &model, &RiskId::parse("R-999").unwrap(), now)
            .await,
        Err(RiskError::NotFound { .. })
    ));
    // A lost update is refused: the expected version must be the current one.
    let cur = svc
        .store()
        .get_doc(model.as_str(), DocKind::Inventory)
        .await
        .unwrap()
        .unwrap();
    let audit = medsec_core::AuditRecord::new(
        &actor,
        medsec_core::AuditAction::RiskDocumentChanged,
        "x",
        serde_json::json!({}),
    );
    assert!(matches!(
        svc.store()
            .put_doc(
                model.as_str(),
                DocKind::Inventory,
                &inv_toml,
                Some(cur.version - 1),
                &actor,
                &audit
            )
            .await,
        Err(medsec_core::StoreError::Conflict(_))
    ));
    let report = svc
        .report(&model, "Risk management report", &FindingInputs::at(now))
        .await
        .unwrap();
    assert!(report.to_markdown().contains("|"));
    assert!(verify_audit(&store).await.unwrap().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_risk_story() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("medsec.db"), Synchronous::Full)
        .await
        .unwrap();
    risk_story(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_risk_story() {
    risk_story(common::pg().await).await;
}

/// Edits from two replicas made against the same version: exactly one becomes the next
/// version, every other is refused as stale, and the history has no gap or duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_document_versions_race_across_replicas() {
    let url = medsec_store::pg_cluster::Cluster::fresh_database().unwrap();
    let a = PgStore::connect(&url, &Default::default()).await.unwrap();
    let b = PgStore::connect(&url, &Default::default()).await.unwrap();
    let actor = Actor::parse("user:risk-manager").unwrap();
    let audit = medsec_core::AuditRecord::new(
        &actor,
        medsec_core::AuditAction::RiskDocumentChanged,
        "pump",
        serde_json::json!({}),
    );
    // Round 0 creates the document (expected: none), rounds 1 and 2 edit version 1 then 2.
    for (round, expected) in [None, Some(1), Some(2)].into_iter().enumerate() {
        let mut tasks = Vec::new();
        for i in 0..50usize {
            let store = if i.is_multiple_of(2) {
                a.clone()
            } else {
                b.clone()
            };
            let (actor, audit) = (actor.clone(), audit.clone());
            tasks.push(tokio::spawn(async move {
                let body = format!("round {round} edit {i}");
                store
                    .put_doc("pump", DocKind::Register, &body, expected, &actor, &audit)
                    .await
                    .map(|v| (v, body))
            }));
        }
        let mut won = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                Ok(w) => won.push(w),
                Err(medsec_core::StoreError::Conflict(_)) => {}
                Err(e) => panic!("unexpected: {e:?}"),
            }
        }
        assert_eq!(won.len(), 1, "round {round}: {won:?}");
        assert_eq!(won[0].0, expected.unwrap_or(0) + 1);
        let cur = b.get_doc("pump", DocKind::Register).await.unwrap().unwrap();
        assert_eq!((cur.version, &cur.body), (won[0].0, &won[0].1));
    }
    let history = a.doc_history("pump", DocKind::Register).await.unwrap();
    assert_eq!(
        history.iter().map(|d| d.version).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    let changes = a
        .audit_page(0, 10_000)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.action == "risk.document-changed")
        .count();
    assert_eq!(changes, 3, "only the stored edits are audited");
    assert!(verify_audit(&b).await.unwrap().is_ok());
}
