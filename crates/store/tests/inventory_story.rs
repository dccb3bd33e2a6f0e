//! The vulnerability-management story, written once against `InventoryStore` (+ the CA's store
//! for devices) and run on every back end: firmware and SBOM intake, advisory import and
//! re-import, matching with aliases / withdrawn / KEV / CPE fallback, triage that survives
//! re-matching, affected devices, VEX, and an intact audit chain.

mod common;

use std::path::{Path, PathBuf};

use common::{csr, ready};
use medsec_ca::CaStore;
use medsec_core::{Actor, DeviceId, DeviceModel, DeviceSerial, FirmwareVersion, Name, StoreError};
use medsec_inventory::{
    Inventory, InventoryError, InventoryStore, MatchedBy, RiskLevel, SupportLevel, VexScope,
};
use medsec_store::{AuditLog, PgStore, SqliteStore, Synchronous, verify_audit};
use medsec_vuln::{Justification, VexStatus};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/inventory")
        .join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(data(name)).unwrap()
}

fn osv_docs() -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(data("osv"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v.into_iter()
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect()
}

fn fw(s: &str) -> FirmwareVersion {
    FirmwareVersion::parse(s).unwrap()
}

fn no_progress(_: usize, _: usize) {}

async fn inventory_story<S>(store: S, dir: &Path)
where
    S: CaStore + InventoryStore + AuditLog + Clone + 'static,
{
    let (ca, actor) = ready(store.clone(), dir).await;
    let inv = Inventory::new(std::sync::Arc::new(store.clone()));
    let model = DeviceModel::parse("pump-x2").unwrap();
    let profile = Name::parse("pump").unwrap();
    let dev = |s: &str| DeviceId::new(model.clone(), DeviceSerial::parse(s).unwrap());
    for sn in ["SN-1", "SN-2", "SN-3"] {
        ca.issue(
            &profile,
            &DeviceSerial::parse(sn).unwrap(),
            &csr(&rcgen::PKCS_ECDSA_P256_SHA256),
            &actor,
        )
        .await
        .unwrap();
    }

    // Firmware versions with their support commitment; an end of support before the release
    // date is refused.
    let date = |s: &str| {
        time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).unwrap()
    };
    inv.put_firmware(
        &actor,
        &model,
        &fw("2.0"),
        Some(date("2026-01-10")),
        SupportLevel::SecurityOnly,
        Some(date("2028-01-01")),
    )
    .await
    .unwrap();
    assert!(matches!(
        inv.put_firmware(
            &actor,
            &model,
            &fw("2.0"),
            Some(date("2026-01-10")),
            SupportLevel::Supported,
            Some(date("2025-01-01")),
        )
        .await,
        Err(InventoryError::Invalid { .. })
    ));

    // SBOMs: 2.1 is registered by its import; a second import without replace is refused and a
    // broken file stores nothing.
    let s20 = inv
        .import_sbom(
            &actor,
            &model,
            &fw("2.0"),
            &read("pump-2.0.cdx.json"),
            None,
            false,
        )
        .await
        .unwrap();
    inv.import_sbom(
        &actor,
        &model,
        &fw("2.1"),
        &read("pump-2.1.cdx.json"),
        None,
        false,
    )
    .await
    .unwrap();
    let again = inv
        .import_sbom(
            &actor,
            &model,
            &fw("2.0"),
            &read("pump-2.1.cdx.json"),
            None,
            false,
        )
        .await;
    assert!(
        matches!(again, Err(InventoryError::Store(StoreError::Conflict(_)))),
        "{again:?}"
    );
    let bad = inv
        .import_sbom(
            &actor,
            &model,
            &fw("2.2"),
            &read("truncated-sbom.cdx.json"),
            None,
            false,
        )
        .await;
    assert!(matches!(bad, Err(InventoryError::Sbom(_))), "{bad:?}");
    assert!(
        store
            .get_firmware(&model, &fw("2.2"))
            .await
            .unwrap()
            .is_none(),
        "a refused SBOM registers nothing"
    );
    let back = inv.sbom(&model, &fw("2.0")).await.unwrap();
    assert_eq!(back.sbom, s20.sbom, "the stored SBOM reads back whole");
    assert_eq!(back.sha256, s20.sha256);
    let lodash = back
        .sbom
        .components
        .iter()
        .find(|c| c.name == "lodash")
        .unwrap();
    assert_eq!(lodash.support_level.as_deref(), Some("security-only"));
    assert_eq!(lodash.end_of_support.as_deref(), Some("2027-06-30"));
    let listed = store.list_firmware(Some(&model)).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].support_level, SupportLevel::SecurityOnly);

    // Advisories: first import stores all, a repeat changes nothing, a newer record updates.
    let st = inv
        .import_osv(&actor, osv_docs(), &no_progress)
        .await
        .unwrap();
    assert_eq!(
        (st.read, st.new, st.updated, st.unchanged),
        (5, 5, 0, 0),
        "{st:?}"
    );
    assert_eq!(st.withdrawn, 1);
    let st = inv
        .import_osv(&actor, osv_docs(), &no_progress)
        .await
        .unwrap();
    assert_eq!((st.new, st.updated, st.unchanged), (0, 0, 5), "{st:?}");
    // A malformed record in a batch stores none of the batch.
    let mut broken = osv_docs();
    broken.push((
        "broken.json".into(),
        b"{\"id\": \"X-1\", \"modified\": \"yesterday\"}".to_vec(),
    ));
    assert!(inv.import_osv(&actor, broken, &no_progress).await.is_err());
    assert_eq!(store.advisory_versions().await.unwrap().len(), 5);
    assert_eq!(
        inv.import_kev(&actor, &read("kev-lodash.json"))
            .await
            .unwrap(),
        1
    );

    // Matching: purl findings with aliases merged, the withdrawn record ignored, KEV flagged,
    // and the zlib component (CPE only) matched when the fallback is asked for.
    let ms = inv
        .rematch(&actor, &VexScope::default(), true, &no_progress)
        .await
        .unwrap();
    assert_eq!(ms.firmware_versions, 2);
    assert!(ms.unmatchable.is_empty(), "{:?}", ms.unmatchable);
    let f20 = inv.findings(Some(&model), Some(&fw("2.0"))).await.unwrap();
    let ids: Vec<(&str, &str, MatchedBy)> = f20
        .iter()
        .map(|v| {
            (
                v.finding.vuln_id.as_str(),
                v.finding.component.as_str(),
                v.finding.matched_by,
            )
        })
        .collect();
    assert_eq!(
        ids,
        vec![
            ("CVE-2018-25032", "zlib@1.2.11", MatchedBy::Cpe),
            ("CVE-2019-10906", "pkg:pypi/jinja2@2.10", MatchedBy::Purl),
            ("CVE-2021-23337", "pkg:npm/lodash@4.17.20", MatchedBy::Purl),
        ]
    );
    let jinja = &f20[1];
    assert_eq!(
        jinja.finding.advisories,
        vec!["GHSA-462w-v97r-4m45", "PYSEC-2019-217"],
        "one finding for two advisories of one CVE"
    );
    assert_eq!(jinja.finding.cvss_score, Some(8.6));
    assert_eq!(jinja.confidence, "high");
    assert_eq!(f20[0].confidence, "low");
    let lodash = &f20[2];
    assert!(lodash.finding.kev);
    assert_eq!(lodash.finding.cvss_score, Some(7.2));
    // KEV makes it highly exploitable: high severity x high exploitability.
    assert_eq!(lodash.risk, Some(RiskLevel::Unacceptable));
    assert!(
        inv.findings(Some(&model), Some(&fw("2.1")))
            .await
            .unwrap()
            .is_empty(),
        "2.1 carries the fixed versions"
    );
    // Without the fallback there is no CPE finding.
    inv.rematch(
        &actor,
        &VexScope {
            model: Some(model.clone()),
            version: Some(fw("2.0")),
        },
        false,
        &no_progress,
    )
    .await
    .unwrap();
    assert_eq!(
        inv.findings(Some(&model), Some(&fw("2.0")))
            .await
            .unwrap()
            .len(),
        2
    );

    // Devices report firmware; unknown versions and devices are refused.
    inv.set_device_firmware(&actor, &dev("SN-1"), &fw("2.0"))
        .await
        .unwrap();
    inv.set_device_firmware(&actor, &dev("SN-2"), &fw("2.1"))
        .await
        .unwrap();
    inv.set_device_firmware(&actor, &dev("SN-3"), &fw("2.0"))
        .await
        .unwrap();
    assert!(matches!(
        inv.set_device_firmware(&actor, &dev("SN-1"), &fw("9.9"))
            .await,
        Err(InventoryError::NotFound { .. })
    ));
    assert!(
        inv.set_device_firmware(&actor, &dev("SN-404"), &fw("2.0"))
            .await
            .is_err()
    );
    // A retired device is out of the field.
    ca.retire(&dev("SN-3"), &actor).await.unwrap();
    assert!(
        inv.set_device_firmware(&actor, &dev("SN-3"), &fw("2.1"))
            .await
            .is_err()
    );

    let affected = inv.affected_devices("CVE-2019-10906").await.unwrap();
    let serials: Vec<String> = affected.iter().map(|a| a.device.urn()).collect();
    assert_eq!(serials, vec!["urn:medsec:device:pump-x2:SN-1"]);
    // Found by any alias.
    assert_eq!(
        inv.affected_devices("GHSA-462w-v97r-4m45").await.unwrap(),
        affected
    );
    assert!(matches!(
        inv.affected_devices("CVE-1999-0000").await,
        Err(InventoryError::NotFound { .. })
    ));

    // Triage: jinja2 is not affected in 2.0 (by the GHSA alias; filed under the CVE).
    let d = inv
        .triage(
            &Actor::parse("user:analyst").unwrap(),
            &model,
            &fw("2.0"),
            "GHSA-462w-v97r-4m45",
            None,
            VexStatus::NotAffected {
                justification: Justification::VulnerableCodeNotInExecutePath,
            },
            "Templates are compiled at build time; no user-controlled template reaches the sandbox.",
            None,
        )
        .await
        .unwrap();
    assert_eq!(d.vuln_id, "CVE-2019-10906");
    assert!(
        inv.triage(
            &actor,
            &model,
            &fw("2.0"),
            "CVE-2021-23337",
            None,
            VexStatus::Affected,
            "  ",
            None
        )
        .await
        .is_err(),
        "a decision needs a reason"
    );
    assert!(matches!(
        inv.triage(
            &actor,
            &model,
            &fw("2.1"),
            "CVE-2021-23337",
            None,
            VexStatus::Fixed,
            "fixed",
            None
        )
        .await,
        Err(InventoryError::NotFound { .. })
    ));
    assert!(
        inv.affected_devices("CVE-2019-10906")
            .await
            .unwrap()
            .is_empty()
    );
    let (dfw, open) = inv.device_findings(&dev("SN-1")).await.unwrap();
    assert_eq!(dfw, Some(fw("2.0")));
    assert_eq!(
        open.iter()
            .map(|v| v.finding.vuln_id.as_str())
            .collect::<Vec<_>>(),
        vec!["CVE-2021-23337"]
    );

    // The decision survives a re-import of changed advisories and a re-match.
    let mut newer = osv_docs();
    for (name, raw) in &mut newer {
        if name.ends_with("PYSEC-2019-217.json") {
            *raw = String::from_utf8(raw.clone())
                .unwrap()
                .replace("2024-02-02T00:00:00Z", "2025-05-05T00:00:00Z")
                .into_bytes();
        }
    }
    let st = inv.import_osv(&actor, newer, &no_progress).await.unwrap();
    assert_eq!((st.updated, st.unchanged), (1, 4));
    let before = inv.findings(Some(&model), Some(&fw("2.0"))).await.unwrap();
    inv.rematch(&actor, &VexScope::default(), true, &no_progress)
        .await
        .unwrap();
    let after = inv.findings(Some(&model), Some(&fw("2.0"))).await.unwrap();
    let j = after
        .iter()
        .find(|v| v.finding.vuln_id == "CVE-2019-10906")
        .unwrap();
    assert_eq!(j.state, "not_affected");
    assert_eq!(j.risk, None, "a closed finding carries no open risk");
    assert_eq!(
        j.finding.first_seen,
        before
            .iter()
            .find(|v| v.finding.vuln_id == "CVE-2019-10906")
            .unwrap()
            .finding
            .first_seen,
        "first_seen is kept across re-matching"
    );

    // VEX for the firmware: the decision and the untriaged findings.
    let doc = inv
        .vex(
            &VexScope {
                model: Some(model.clone()),
                version: Some(fw("2.0")),
            },
            "Story Medical",
            "https://story.example",
        )
        .await
        .unwrap();
    let ov = doc.to_openvex();
    let statuses: Vec<(String, String)> = ov["statements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["vulnerability"]["name"].as_str().unwrap().to_owned(),
                s["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(statuses.contains(&("CVE-2019-10906".into(), "not_affected".into())));
    assert!(statuses.contains(&("CVE-2021-23337".into(), "under_investigation".into())));
    assert_eq!(doc.revisions.len(), 2, "initial + one decision");

    // The audit chain holds every change made above.
    let n = verify_audit(&store).await.unwrap().unwrap();
    assert!(n > 15, "{n}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_inventory_story() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("medsec.db"), Synchronous::Full)
        .await
        .unwrap();
    inventory_story(store, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_inventory_story() {
    let dir = tempfile::tempdir().unwrap();
    inventory_story(common::pg().await, dir.path()).await;
}

/// Two replicas (two pools) on one database.
async fn replicas() -> (PgStore, PgStore) {
    let url = medsec_store::pg_cluster::Cluster::fresh_database().unwrap();
    let a = PgStore::connect(&url, &Default::default()).await.unwrap();
    let b = PgStore::connect(&url, &Default::default()).await.unwrap();
    (a, b)
}

fn digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

async fn count_audit(store: &PgStore, action: &str) -> usize {
    store
        .audit_page(0, 10_000)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.action == action)
        .count()
}

/// A firmware version's SBOM is imported once when replicas race to import one (whole, never
/// a mix of two files), and readers racing replacements always see one whole SBOM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_sbom_import_races_across_replicas() {
    let (a, b) = replicas().await;
    let actor = Actor::parse("test:race").unwrap();
    let model = DeviceModel::parse("pump-x2").unwrap();
    let files = [read("pump-2.0.cdx.json"), read("pump-2.1.cdx.json")];
    let parsed = [
        medsec_sbom::parse(&files[0]).unwrap(),
        medsec_sbom::parse(&files[1]).unwrap(),
    ];
    assert_ne!(parsed[0], parsed[1]);
    let invs = [
        std::sync::Arc::new(Inventory::new(std::sync::Arc::new(a.clone()))),
        std::sync::Arc::new(Inventory::new(std::sync::Arc::new(b.clone()))),
    ];

    // 2 x 25 first imports of one version, half of each file: exactly one lands.
    let mut tasks = Vec::new();
    for i in 0..50 {
        let (inv, actor, model, file) = (
            invs[i % 2].clone(),
            actor.clone(),
            model.clone(),
            files[(i / 2) % 2].clone(),
        );
        tasks.push(tokio::spawn(async move {
            inv.import_sbom(&actor, &model, &fw("3.0"), &file, None, false)
                .await
        }));
    }
    let mut won = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(rec) => won.push(rec),
            Err(InventoryError::Store(StoreError::Conflict(_))) => {}
            Err(e) => panic!("unexpected: {e:?}"),
        }
    }
    assert_eq!(won.len(), 1, "exactly one import of the SBOM");
    let stored = b.get_sbom(&model, &fw("3.0")).await.unwrap().unwrap();
    assert_eq!(stored.sha256, won[0].sha256);
    assert_eq!(stored.sbom, won[0].sbom, "the winner's SBOM, whole");
    assert_eq!(count_audit(&a, "sbom.imported").await, 1);

    // Replacements racing each other and readers: each read is one whole SBOM, matching its
    // own digest, and every replacement is applied (serialised, none lost).
    let mut writers = Vec::new();
    for i in 0..20 {
        let (inv, actor, model, file) = (
            invs[i % 2].clone(),
            actor.clone(),
            model.clone(),
            files[(i / 2) % 2].clone(),
        );
        writers.push(tokio::spawn(async move {
            inv.import_sbom(&actor, &model, &fw("3.0"), &file, None, true)
                .await
                .map(|r| r.sha256)
        }));
    }
    let mut readers = Vec::new();
    for i in 0..4usize {
        let store = if i.is_multiple_of(2) {
            a.clone()
        } else {
            b.clone()
        };
        let (model, parsed) = (model.clone(), parsed.clone());
        readers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..25 {
                let r = store.get_sbom(&model, &fw("3.0")).await.unwrap().unwrap();
                let which = parsed
                    .iter()
                    .position(|p| *p == r.sbom)
                    .expect("a read is one whole SBOM, never a mix");
                seen.push((which, r.sha256));
            }
            seen
        }));
    }
    let mut digests = std::collections::BTreeSet::new();
    for w in writers {
        digests.insert(w.await.unwrap().unwrap());
    }
    assert_eq!(digests.len(), 2);
    for r in readers {
        for (which, sha) in r.await.unwrap() {
            // The header read with the components belongs to the same file.
            assert_eq!(sha, digest(&files[which]));
        }
    }
    assert_eq!(count_audit(&b, "sbom.imported").await, 21);
    // The stored SBOM is the one the audit chain says was imported last.
    let log = a.audit_page(0, 10_000).await.unwrap();
    let last = log
        .iter()
        .rev()
        .find(|e| e.action == "sbom.imported")
        .unwrap();
    let details: serde_json::Value = serde_json::from_str(&last.details).unwrap();
    let now = b.get_sbom(&model, &fw("3.0")).await.unwrap().unwrap();
    assert_eq!(details["sha256"].as_str(), Some(now.sha256.as_str()));
    assert!(verify_audit(&a).await.unwrap().is_ok());
}
