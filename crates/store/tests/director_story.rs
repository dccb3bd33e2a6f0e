//! The director story against `UpdateStore` (+ the CA's store for the fleet), run on every back
//! end: cohorts, staged offers, automatic promotion and halt, pause/resume/abort taking effect
//! at once, signed instructions the device verifies, and the rollout view.

mod common;

use std::sync::Arc;

use common::{csr, keys, ready};
use medsec_ca::CaStore;
use medsec_core::{DeviceId, DeviceModel, DeviceSerial, KeyAlgorithm, Name};
use medsec_keys::KeySource;
use medsec_store::{AuditLog, PgStore, SqliteStore, Synchronous, verify_audit};
use medsec_updates::{
    Cohort, Director, ReleaseRecord, Rollout, RolloutPlan, RolloutState, UpdateStatus, UpdateStore,
    UpdatesError, verify_instruction,
};

async fn director_story<S>(store: S, dir: &std::path::Path)
where
    S: CaStore + UpdateStore + AuditLog + Clone + 'static,
{
    let (ca, actor) = ready(store.clone(), dir).await;
    let model = DeviceModel::parse("pump-x2").unwrap();
    let dev = |i: usize| {
        DeviceId::new(
            model.clone(),
            DeviceSerial::parse(&format!("SN-{i}")).unwrap(),
        )
    };
    for i in 0..40 {
        ca.issue(
            &Name::parse("pump").unwrap(),
            &dev(i).serial,
            &csr(&rcgen::PKCS_ECDSA_P256_SHA256),
            &actor,
        )
        .await
        .unwrap();
    }
    let key: Arc<dyn medsec_keys::Signer> = Arc::from(
        keys(&dir.join("director"))
            .generate("director", KeyAlgorithm::EcdsaP256)
            .unwrap(),
    );
    let director = Director::new(Arc::new(store.clone()), key);
    let trusted = vec![director.public_key()];
    let rel = ReleaseRecord {
        model: "pump-x2".into(),
        version: "2.1".into(),
        target: "pump-x2/pump-x2-2.1.bin".into(),
        length: 1234,
        sha256: "ab".repeat(32),
        security_version: 3,
        hardware_id: "pump-x2".into(),
        published_at: time::OffsetDateTime::now_utc().unix_timestamp(),
    };
    director.record_release(&actor, &rel).await.unwrap();
    assert!(matches!(
        director
            .create_rollout(&actor, "pump-x2", "9.9", RolloutPlan::default())
            .await,
        Err(UpdatesError::NotFound { .. })
    ));

    // A device-list cohort: only the listed device is offered the release.
    let only = director
        .create_rollout(
            &actor,
            "pump-x2",
            "2.1",
            RolloutPlan {
                cohort: Cohort::Devices(vec![dev(1).urn()]),
                stages: vec![100],
                ..RolloutPlan::default()
            },
        )
        .await
        .unwrap();
    let env = director.instruction_for(&dev(1)).await.unwrap().unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let i = verify_instruction(&env, &trusted, &dev(1).urn(), now, None).unwrap();
    assert_eq!(
        (i.target.as_str(), i.length, i.security_version),
        (rel.target.as_str(), 1234, 3)
    );
    assert!(
        director.instruction_for(&dev(2)).await.unwrap().is_none(),
        "outside the cohort"
    );
    // Counters only grow: a second instruction has a higher one.
    let again = director.instruction_for(&dev(1)).await.unwrap().unwrap();
    let j = verify_instruction(&again, &trusted, &dev(1).urn(), now, Some(i.counter)).unwrap();
    assert!(j.counter > i.counter);
    // Pause takes effect at once; resume restores; abort is final.
    director
        .control(&actor, &only.id, RolloutState::Paused)
        .await
        .unwrap();
    assert!(director.instruction_for(&dev(1)).await.unwrap().is_none());
    director
        .control(&actor, &only.id, RolloutState::Active)
        .await
        .unwrap();
    assert!(director.instruction_for(&dev(1)).await.unwrap().is_some());
    director
        .control(&actor, &only.id, RolloutState::Aborted)
        .await
        .unwrap();
    assert!(director.instruction_for(&dev(1)).await.unwrap().is_none());
    assert!(
        director
            .control(&actor, &only.id, RolloutState::Active)
            .await
            .is_err()
    );

    // Tags.
    let tagged = director
        .create_rollout(
            &actor,
            "pump-x2",
            "2.1",
            RolloutPlan {
                cohort: Cohort::Tag("icu".into()),
                stages: vec![100],
                ..RolloutPlan::default()
            },
        )
        .await
        .unwrap();
    store
        .set_device_tags(
            &dev(5),
            &["icu".into()],
            &medsec_core::AuditRecord::new(
                &actor,
                medsec_core::AuditAction::DeviceTagged,
                dev(5).urn(),
                serde_json::json!({"tags": ["icu"]}),
            ),
        )
        .await
        .unwrap();
    assert!(director.instruction_for(&dev(5)).await.unwrap().is_some());
    assert!(director.instruction_for(&dev(6)).await.unwrap().is_none());
    director
        .control(&actor, &tagged.id, RolloutState::Aborted)
        .await
        .unwrap();

    // The whole fleet in stages: promotion on success, halt on failures.
    let staged = director
        .create_rollout(
            &actor,
            "pump-x2",
            "2.1",
            RolloutPlan {
                cohort: Cohort::Percent(100),
                stages: vec![25, 100],
                promote_success_rate: 0.9,
                halt_failure_rate: 0.3,
                min_reports: 3,
            },
        )
        .await
        .unwrap();
    let fleet: Vec<DeviceId> = (0..40).map(dev).collect();
    let stage0: Vec<&DeviceId> = fleet
        .iter()
        .filter(|d| staged.in_stage(&d.urn(), 0))
        .collect();
    let rest: Vec<&DeviceId> = fleet
        .iter()
        .filter(|d| !staged.in_stage(&d.urn(), 0))
        .collect();
    assert!(
        stage0.len() >= 3 && !rest.is_empty(),
        "{} / {}",
        stage0.len(),
        rest.len()
    );
    assert!(
        director.instruction_for(rest[0]).await.unwrap().is_none(),
        "not yet its stage"
    );
    for d in &stage0 {
        assert!(director.instruction_for(d).await.unwrap().is_some());
        director
            .report(d, &staged.id, UpdateStatus::Confirmed, "ok")
            .await
            .unwrap();
    }
    let r = director
        .store()
        .get_rollout(&staged.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        r.current_stage, 1,
        "promoted after the first stage succeeded"
    );
    assert!(director.instruction_for(rest[0]).await.unwrap().is_some());
    // A device that confirmed is not offered the same release again.
    assert!(director.instruction_for(stage0[0]).await.unwrap().is_none());
    // Failures past the threshold halt the rollout.
    let mut halted = false;
    for d in rest.iter().take(10) {
        let r = director
            .report(d, &staged.id, UpdateStatus::Failed, "boot loop")
            .await
            .unwrap();
        if r.state == RolloutState::Halted {
            halted = true;
            break;
        }
    }
    assert!(halted);
    assert!(director.instruction_for(rest[12]).await.unwrap().is_none());
    // A report for a rollout of another model is refused.
    let other = DeviceId::new(
        DeviceModel::parse("vent-1").unwrap(),
        DeviceSerial::parse("V1").unwrap(),
    );
    assert!(
        director
            .report(&other, &staged.id, UpdateStatus::Confirmed, "")
            .await
            .is_err()
    );

    let view = director.view(&staged.id).await.unwrap();
    assert_eq!(view.cohort_size, 40);
    assert_eq!(view.stages.len(), 2);
    assert_eq!(
        view.stages[0].by_status.get("confirmed"),
        Some(&stage0.len())
    );
    assert!(view.time_to_percent["100%"].is_none());
    assert!(verify_audit(&store).await.unwrap().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_director_story() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("medsec.db"), Synchronous::Full)
        .await
        .unwrap();
    director_story(store, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_director_story() {
    let dir = tempfile::tempdir().unwrap();
    director_story(common::pg().await, dir.path()).await;
}

/// Two replicas (two pools) on one database.
async fn replicas() -> (PgStore, PgStore) {
    let url = medsec_store::pg_cluster::Cluster::fresh_database().unwrap();
    let a = PgStore::connect(&url, &Default::default()).await.unwrap();
    let b = PgStore::connect(&url, &Default::default()).await.unwrap();
    (a, b)
}

async fn rollout_changes(store: &PgStore) -> usize {
    store
        .audit_page(0, 10_000)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.action == "rollout.changed")
        .count()
}

fn audit(what: &str) -> medsec_core::AuditRecord {
    medsec_core::AuditRecord::new(
        &medsec_core::Actor::parse("test:race").unwrap(),
        medsec_core::AuditAction::RolloutChanged,
        "ro-race",
        serde_json::json!({ "to": what }),
    )
}

/// Rollout transitions decided by racing replicas from the same read: one kind wins, is
/// applied and audited once, and the decisions taken on the stale read are refused instead of
/// undoing it. An abort from many replicas lands once. Instruction counters never repeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_rollout_transitions_race_across_replicas() {
    let (a, b) = replicas().await;
    let actor = medsec_core::Actor::parse("test:race").unwrap();
    let rel = ReleaseRecord {
        model: "pump-x2".into(),
        version: "2.1".into(),
        target: "pump-x2/pump-x2-2.1.bin".into(),
        length: 1234,
        sha256: "ab".repeat(32),
        security_version: 3,
        hardware_id: "pump-x2".into(),
        published_at: 1_700_000_000,
    };
    a.put_release(
        &rel,
        &medsec_core::AuditRecord::new(
            &actor,
            medsec_core::AuditAction::ReleasePublished,
            "pump-x2@2.1",
            serde_json::json!({}),
        ),
    )
    .await
    .unwrap();
    let r0 = Rollout {
        id: "ro-race".into(),
        model: rel.model.clone(),
        target: rel.target.clone(),
        length: rel.length,
        sha256: rel.sha256.clone(),
        security_version: rel.security_version,
        cohort: Cohort::Percent(100),
        stages: vec![10, 50, 100],
        current_stage: 0,
        state: RolloutState::Active,
        promote_success_rate: 0.95,
        halt_failure_rate: 0.1,
        min_reports: 3,
        created_at: 1_700_000_100,
    };
    a.insert_rollout(&r0, &audit("created")).await.unwrap();
    let stores = [a.clone(), b.clone()];

    // Every replica read the rollout at stage 0; half decide a promotion, half a pause.
    let read = [
        a.get_rollout("ro-race").await.unwrap().unwrap(),
        b.get_rollout("ro-race").await.unwrap().unwrap(),
    ];
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = stores[i % 2].clone();
        let mut r = read[i % 2].clone();
        // Both kinds from both replicas: i = 0, 1 promote; 2, 3 pause; ...
        let promote = i % 4 < 2;
        if promote {
            r.current_stage += 1;
        } else {
            r.control(RolloutState::Paused).unwrap();
        }
        tasks.push(tokio::spawn(async move {
            (promote, store.update_rollout(&r, &audit("race")).await)
        }));
    }
    let (mut promoted, mut paused) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            (true, Ok(())) => promoted += 1,
            (false, Ok(())) => paused += 1,
            (_, Err(medsec_core::StoreError::Refused(_))) => {}
            (_, Err(e)) => panic!("unexpected: {e:?}"),
        }
    }
    let promotes = (0..50).filter(|i| i % 4 < 2).count();
    let now = b.get_rollout("ro-race").await.unwrap().unwrap();
    // The winning decision is done (once, see the audit below) for everyone who took it; every
    // decision of the other kind was taken on a stale read and is refused.
    match (now.state, now.current_stage) {
        (RolloutState::Active, 1) => assert_eq!((promoted, paused), (promotes, 0)),
        (RolloutState::Paused, 0) => assert_eq!((promoted, paused), (0, 50 - promotes)),
        other => panic!("a mix of two decisions was stored: {other:?}"),
    }
    assert_eq!(rollout_changes(&a).await, 2, "created + one transition");

    // Abort from every replica at once: one lands, the rest find it final.
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = stores[i % 2].clone();
        let mut r = now.clone();
        r.control(RolloutState::Aborted).unwrap();
        tasks.push(tokio::spawn(async move {
            store.update_rollout(&r, &audit("aborted")).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(medsec_core::StoreError::Refused(_)) => {}
            Err(e) => panic!("unexpected: {e:?}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(rollout_changes(&b).await, 3);
    let done = a.get_rollout("ro-race").await.unwrap().unwrap();
    assert_eq!(done.state, RolloutState::Aborted);
    assert_eq!(done.current_stage, now.current_stage);

    // Counters handed out by both replicas at once never repeat.
    let dev = DeviceId::new(
        DeviceModel::parse("pump-x2").unwrap(),
        DeviceSerial::parse("SN-1").unwrap(),
    );
    let mut tasks = Vec::new();
    for i in 0..100 {
        let (store, dev) = (stores[i % 2].clone(), dev.clone());
        tasks.push(tokio::spawn(async move {
            store.next_counter(&dev).await.unwrap()
        }));
    }
    let mut got = Vec::new();
    for t in tasks {
        got.push(t.await.unwrap());
    }
    got.sort_unstable();
    assert_eq!(got, (1..=100).collect::<Vec<u64>>());
    assert!(verify_audit(&a).await.unwrap().is_ok());
}
