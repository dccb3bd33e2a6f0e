//! The TUF image repository's operations and refusals, checked on the files it writes.

mod common;

use std::path::Path;

use medsec_core::{DeviceModel, FirmwareVersion};
use medsec_updates::{Image, NewRelease, Repository, RoleRef, UpdatesError};
use sha2::{Digest, Sha256};
use tough::schema::{Root, Signed, Targets};

fn model(s: &str) -> DeviceModel {
    DeviceModel::parse(s).unwrap()
}

fn ver(s: &str) -> FirmwareVersion {
    FirmwareVersion::parse(s).unwrap()
}

fn release<'a>(
    m: &'a DeviceModel,
    v: &'a FirmwareVersion,
    sv: u64,
    image: &'a [u8],
) -> NewRelease<'a> {
    NewRelease {
        model: m,
        version: v,
        security_version: sv,
        hardware_id: None,
        image: Image::Bytes(image),
        sbom: None,
    }
}

fn read_json<T: serde::de::DeserializeOwned>(p: &Path) -> T {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// Every metadata file's `expires` is `YYYY-MM-DDTHH:MM:SSZ`, without fractional seconds.
fn assert_whole_second_expiries(md: &Path) {
    for e in std::fs::read_dir(md).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            let v: serde_json::Value = read_json(&p);
            let exp = v["signed"]["expires"].as_str().unwrap();
            assert_eq!(exp.len(), 20, "{}: {exp}", p.display());
            assert!(!exp.contains('.'), "{}: {exp}", p.display());
        }
    }
}

#[test]
fn init_writes_a_2_of_3_root_and_reopens() {
    let f = common::fixture();
    let repo = Repository::init(&f.repo_dir, f.keys.clone(), common::options()).unwrap();
    let md = f.repo_dir.join("metadata");
    for name in [
        "1.root.json",
        "root.json",
        "1.targets.json",
        "1.snapshot.json",
        "timestamp.json",
    ] {
        assert!(md.join(name).is_file(), "{name}");
    }
    assert_whole_second_expiries(&md);
    let root: Signed<Root> = read_json(&md.join("1.root.json"));
    let rk = &root.signed.roles[&tough::schema::RoleType::Root];
    assert_eq!((rk.keyids.len(), rk.threshold.get()), (3, 2));
    assert!(root.signed.consistent_snapshot);
    root.signed.verify_role(&root).unwrap();
    // ECDSA keys as PEM SPKI with the standard scheme.
    let v: serde_json::Value = read_json(&md.join("1.root.json"));
    let key = v["signed"]["keys"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap();
    assert_eq!(key["keytype"], "ecdsa");
    assert_eq!(key["scheme"], "ecdsa-sha2-nistp256");
    assert!(
        key["keyval"]["public"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----")
    );
    // Timestamp expiry is short (1 day by default).
    let ts: serde_json::Value = read_json(&md.join("timestamp.json"));
    let exp: jiff::Timestamp = ts["signed"]["expires"].as_str().unwrap().parse().unwrap();
    let left = exp.as_second() - jiff::Timestamp::now().as_second();
    assert!((86_300..=86_400).contains(&left), "{left}");
    // Labels in the key source, and no private material in repo.json.
    for label in [
        "tuf-root-1",
        "tuf-root-3",
        "tuf-targets-1",
        "tuf-snapshot-1",
        "tuf-timestamp-1",
    ] {
        assert!(
            f.tmp
                .path()
                .join(format!("keys/{label}.key.json"))
                .is_file(),
            "{label}"
        );
    }
    let state = std::fs::read_to_string(f.repo_dir.join("repo.json")).unwrap();
    assert!(state.contains("file:tuf-root-1") && !state.contains("ciphertext"));
    drop(repo);
    // A second init over it is refused; open works.
    assert!(matches!(
        Repository::init(&f.repo_dir, f.keys.clone(), common::options()),
        Err(UpdatesError::Refused(_))
    ));
    let repo = Repository::open(&f.repo_dir, f.keys.clone()).unwrap();
    assert_eq!(repo.root_version(), 1);
}

#[test]
fn unsafe_options_are_refused() {
    let f = common::fixture();
    let mut o = common::options();
    o.root_threshold = 1;
    assert!(matches!(
        Repository::init(&f.repo_dir, f.keys.clone(), o.clone()),
        Err(UpdatesError::Refused(_))
    ));
    o.root_threshold = 4;
    assert!(Repository::init(&f.repo_dir, f.keys.clone(), o.clone()).is_err());
    let mut o = common::options();
    o.expiries.timestamp_secs = 0;
    assert!(Repository::init(&f.repo_dir, f.keys.clone(), o).is_err());
    let mut o = common::options();
    o.key_algorithm = medsec_core::KeyAlgorithm::EcdsaP384;
    assert!(Repository::init(&f.repo_dir, f.keys.clone(), o).is_err());
}

#[test]
fn publish_lists_and_refuses() {
    let f = common::fixture();
    let mut repo = Repository::init(&f.repo_dir, f.keys.clone(), common::options()).unwrap();
    let m = model("pump-x2");
    let keyids = repo.add_model(&m, 2, 1).unwrap();
    assert_eq!(keyids.len(), 2);
    assert!(
        f.tmp
            .path()
            .join("keys/tuf-release-pump-x2-1.key.json")
            .is_file()
    );
    assert!(matches!(
        repo.add_model(&m, 1, 1),
        Err(UpdatesError::Refused(_))
    ));
    assert!(repo.add_model(&model("targets"), 1, 1).is_err());
    assert!(repo.add_model(&model("pump-y"), 1, 2).is_err());

    // The delegation: terminating, paths <model>/*.
    let md = f.repo_dir.join("metadata");
    let targets: serde_json::Value = read_json(&md.join("2.targets.json"));
    let role = &targets["signed"]["delegations"]["roles"][0];
    assert_eq!(role["name"], "pump-x2");
    assert_eq!(role["paths"], serde_json::json!(["pump-x2/*"]));
    assert_eq!(role["terminating"], true);
    assert_eq!(role["threshold"], 1);

    let v1 = ver("1.0.0");
    let img = b"firmware image 1.0.0".as_slice();
    let sbom = br#"{"bomFormat":"CycloneDX"}"#.as_slice();
    let r1 = repo
        .publish(&NewRelease {
            hardware_id: Some("rev-b"),
            sbom: Some(sbom),
            ..release(&m, &v1, 3, img)
        })
        .unwrap();
    assert_eq!(r1.target_name, "pump-x2/pump-x2-1.0.0.bin");
    assert_eq!(r1.sha256, hex::encode(Sha256::digest(img)));
    assert_eq!(r1.length, img.len() as u64);
    assert_eq!(r1.custom.hardware_id, "rev-b");
    assert_eq!(r1.custom.security_version, 3);
    assert_eq!(
        r1.custom.sbom_sha256,
        Some(hex::encode(Sha256::digest(sbom)))
    );
    // Spec path for consistent snapshots: targets/<model>/<HASH>.<model>-<version>.bin.
    assert_eq!(
        r1.path,
        Path::new(&format!("targets/pump-x2/{}.pump-x2-1.0.0.bin", r1.sha256))
    );
    assert_eq!(std::fs::read(f.repo_dir.join(&r1.path)).unwrap(), img);
    assert_whole_second_expiries(&md);

    // Identical republish is a no-op; different content under the same version is refused.
    let before = std::fs::read(md.join("timestamp.json")).unwrap();
    let again = repo
        .publish(&NewRelease {
            hardware_id: Some("rev-b"),
            sbom: Some(sbom),
            ..release(&m, &v1, 3, img)
        })
        .unwrap();
    assert_eq!(again, r1);
    assert_eq!(before, std::fs::read(md.join("timestamp.json")).unwrap());
    assert!(matches!(
        repo.publish(&release(&m, &v1, 3, b"evil")),
        Err(UpdatesError::Refused(_))
    ));
    // Rollback of the security version is refused; equal and higher are fine.
    let v0 = ver("0.9.0");
    assert!(matches!(
        repo.publish(&release(&m, &v0, 2, b"old")),
        Err(UpdatesError::Refused(_))
    ));
    let v2 = ver("1.0.1");
    repo.publish(&release(&m, &v2, 3, b"1.0.1")).unwrap();
    let v3 = ver("2.0.0");
    repo.publish(&release(&m, &v3, 4, b"2.0.0")).unwrap();
    // Unknown model, bad hardware id, empty image.
    assert!(matches!(
        repo.publish(&release(&model("other"), &v1, 1, img)),
        Err(UpdatesError::NotFound { .. })
    ));
    assert!(
        repo.publish(&NewRelease {
            hardware_id: Some("a b"),
            ..release(&m, &ver("3.0.0"), 5, img)
        })
        .is_err()
    );
    assert!(repo.publish(&release(&m, &ver("3.0.0"), 5, b"")).is_err());

    let list = repo.releases(&m).unwrap();
    let versions: Vec<_> = list.iter().map(|r| r.custom.version.as_str()).collect();
    assert_eq!(versions, ["1.0.0", "1.0.1", "2.0.0"]);
    assert!(repo.releases(&model("other")).is_err());

    // The delegated role file lists them, signed by the model's key.
    drop(repo); // the repository is locked while open
    let reopened = Repository::open(&f.repo_dir, f.keys.clone()).unwrap();
    assert_eq!(reopened.releases(&m).unwrap(), list);
    assert_eq!(reopened.models(), ["pump-x2"]);
}

#[test]
fn publish_from_a_file_path() {
    let f = common::fixture();
    let mut repo = Repository::init(&f.repo_dir, f.keys.clone(), common::options()).unwrap();
    let m = model("monitor");
    repo.add_model(&m, 1, 1).unwrap();
    let img_path = f.tmp.path().join("image.bin");
    std::fs::write(&img_path, vec![7u8; 200_000]).unwrap();
    let v = ver("5.1");
    let r = repo
        .publish(&NewRelease {
            image: Image::Path(&img_path),
            ..release(&m, &v, 1, b"")
        })
        .unwrap();
    assert_eq!(r.length, 200_000);
    assert_eq!(
        std::fs::read(f.repo_dir.join(&r.path)).unwrap(),
        vec![7u8; 200_000]
    );
}

#[test]
fn root_rotation_is_signed_by_both_thresholds() {
    let f = common::fixture();
    let mut repo = Repository::init(&f.repo_dir, f.keys.clone(), common::options()).unwrap();
    let old_ids = repo.role_keyids(&RoleRef::Root).unwrap();
    // Replace two of the three root keys with two new ones.
    let change = repo.rotate_root(2, &old_ids[..2], None).unwrap();
    assert_eq!(change.root_version, 2);
    assert_eq!(change.added.len(), 2);
    let md = f.repo_dir.join("metadata");
    let v1: Signed<Root> = read_json(&md.join("1.root.json"));
    let v2: Signed<Root> = read_json(&md.join("2.root.json"));
    // A client trusting v1 accepts v2, and v2 verifies under itself.
    v1.signed.verify_role(&v2).unwrap();
    v2.signed.verify_role(&v2).unwrap();
    assert_eq!(
        std::fs::read(md.join("2.root.json")).unwrap(),
        std::fs::read(md.join("root.json")).unwrap()
    );
    let new_ids = repo.role_keyids(&RoleRef::Root).unwrap();
    assert_eq!(new_ids.len(), 3);
    assert!(!new_ids.contains(&old_ids[0]) && !new_ids.contains(&old_ids[1]));
    // The retired keys are gone from the root and destroyed in the key source.
    assert!(!f.tmp.path().join("keys/tuf-root-1.key.json").exists());
    assert!(f.tmp.path().join("keys/tuf-root-4.key.json").is_file());
    assert_whole_second_expiries(&md);
    // Threshold changes: not above the key count, not below 2.
    assert!(matches!(
        repo.rotate_root(0, &[], Some(4)),
        Err(UpdatesError::Refused(_))
    ));
    assert!(matches!(
        repo.rotate_root(0, &[], Some(1)),
        Err(UpdatesError::Refused(_))
    ));
    drop(repo); // the repository is locked while open
    let reopened = Repository::open(&f.repo_dir, f.keys.clone()).unwrap();
    assert_eq!(reopened.root_version(), 2);
}

#[test]
fn revoking_keys_resigns_what_they_signed() {
    let f = common::fixture();
    let mut repo = Repository::init(&f.repo_dir, f.keys.clone(), common::options()).unwrap();
    let m = model("pump-x2");
    let ids = repo.add_model(&m, 2, 1).unwrap();
    let v = ver("1.0");
    repo.publish(&release(&m, &v, 1, b"one")).unwrap();
    let md = f.repo_dir.join("metadata");

    // A release key: the delegation drops it and the role is re-signed by the other key.
    repo.revoke_key(&RoleRef::Release(m.clone()), &ids[0])
        .unwrap();
    assert_eq!(
        repo.role_keyids(&RoleRef::Release(m.clone())).unwrap(),
        [ids[1].clone()]
    );
    let targets: Signed<Targets> = read_json(&md.join("3.targets.json"));
    let d = targets.signed.delegations.as_ref().unwrap();
    let all: Vec<String> = d
        .keys
        .keys()
        .map(|k| hex::encode(k.as_ref() as &[u8]))
        .collect();
    assert!(!all.contains(&ids[0]));
    let role: serde_json::Value = read_json(&md.join("3.pump-x2.json"));
    let sigs: Vec<&str> = role["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["keyid"].as_str().unwrap())
        .collect();
    assert_eq!(sigs, [ids[1].as_str()]);
    let role: Signed<Targets> = read_json(&md.join("3.pump-x2.json"));
    d.verify_role(&role, "pump-x2").unwrap();
    // Revoking the last key below the threshold is refused; an unknown key is NotFound.
    assert!(matches!(
        repo.revoke_key(&RoleRef::Release(m.clone()), &ids[1]),
        Err(UpdatesError::Refused(_))
    ));
    assert!(matches!(
        repo.revoke_key(&RoleRef::Release(m.clone()), &ids[0]),
        Err(UpdatesError::NotFound { .. })
    ));
    // Publishing still works with the remaining key.
    repo.publish(&release(&m, &ver("1.1"), 1, b"two")).unwrap();

    // A timestamp key: add a replacement, revoke the old one; a new root says so.
    let old_ts = repo.role_keyids(&RoleRef::Timestamp).unwrap();
    assert!(matches!(
        repo.revoke_key(&RoleRef::Timestamp, &old_ts[0]),
        Err(UpdatesError::Refused(_))
    ));
    repo.add_key(&RoleRef::Timestamp).unwrap();
    let change = repo.revoke_key(&RoleRef::Timestamp, &old_ts[0]).unwrap();
    assert_eq!(change.root_version, 3);
    let ts: serde_json::Value = read_json(&md.join("timestamp.json"));
    let new_ts = repo.role_keyids(&RoleRef::Timestamp).unwrap();
    assert_eq!(ts["signatures"][0]["keyid"], new_ts[0].as_str());
    assert_ne!(new_ts[0], old_ts[0]);
    // Targets key revocation re-signs targets.json.
    repo.add_key(&RoleRef::Targets).unwrap();
    let old_t = repo.role_keyids(&RoleRef::Targets).unwrap();
    repo.revoke_key(&RoleRef::Targets, &old_t[0]).unwrap();
    drop(repo); // the repository is locked while open
    let reopened = Repository::open(&f.repo_dir, f.keys.clone()).unwrap();
    assert_eq!(
        reopened.role_keyids(&RoleRef::Targets).unwrap(),
        [old_t[1].clone()]
    );
    assert_eq!(reopened.releases(&m).unwrap().len(), 2);
    assert_whole_second_expiries(&md);
}

#[test]
fn timestamp_refresh_and_expiry_settings() {
    let f = common::fixture();
    let mut repo = Repository::init(&f.repo_dir, f.keys.clone(), common::options()).unwrap();
    let mut e = repo.expiries();
    e.timestamp_secs = 600;
    repo.set_expiries(e).unwrap();
    assert_eq!(repo.refresh_timestamp().unwrap(), 2);
    let ts: serde_json::Value = read_json(&f.repo_dir.join("metadata/timestamp.json"));
    let exp: jiff::Timestamp = ts["signed"]["expires"].as_str().unwrap().parse().unwrap();
    let left = exp.as_second() - jiff::Timestamp::now().as_second();
    assert!((500..=600).contains(&left), "{left}");
    // The setting persists.
    drop(repo); // the repository is locked while open
    let mut repo = Repository::open(&f.repo_dir, f.keys.clone()).unwrap();
    assert_eq!(repo.expiries().timestamp_secs, 600);
    // Everything expiring within 30 days (the snapshot) is re-signed.
    repo.refresh_expiring(30 * 86_400).unwrap();
    assert!(f.repo_dir.join("metadata/2.snapshot.json").is_file());
}

#[test]
fn served_paths_stay_inside_metadata_and_targets() {
    let f = common::fixture();
    Repository::init(&f.repo_dir, f.keys.clone(), common::options()).unwrap();
    let r = |p: &str| medsec_updates::repo::resolve_served_file(&f.repo_dir, p);
    assert!(r("/metadata/1.root.json").is_some());
    assert!(r("/metadata/timestamp.json?x=1").is_some());
    assert!(r("/repo.json").is_none());
    assert!(r("/metadata/../repo.json").is_none());
    assert!(r("/metadata/.timestamp.json.tmp").is_none());
    assert!(r("/metadata").is_none());
    assert!(r("/targets/../../etc/passwd").is_none());
}

#[test]
fn non_consistent_snapshots_use_plain_names() {
    let f = common::fixture();
    let mut o = common::options();
    o.consistent_snapshot = false;
    let mut repo = Repository::init(&f.repo_dir, f.keys.clone(), o).unwrap();
    let m = model("pump-x2");
    repo.add_model(&m, 1, 1).unwrap();
    let r = repo.publish(&release(&m, &ver("1.0"), 1, b"x")).unwrap();
    assert_eq!(r.path, Path::new("targets/pump-x2/pump-x2-1.0.bin"));
    for n in [
        "targets.json",
        "snapshot.json",
        "pump-x2.json",
        "timestamp.json",
    ] {
        assert!(f.repo_dir.join("metadata").join(n).is_file(), "{n}");
    }
    drop(repo); // the repository is locked while open
    Repository::open(&f.repo_dir, f.keys.clone()).unwrap();
}

/// Not timed: 1,000 releases of one model published one by one and 1,000 of another as one
/// batch; prints how long they take and how large the metadata gets. Ignored by default
/// (about 30 s in a debug build): `cargo test -p medsec-updates --test repo -- --ignored`.
#[test]
#[ignore = "slow: measures 1,000 single publishes"]
fn thousand_releases() {
    releases_at_scale(1000);
}

/// The same at a size the default test run affords.
#[test]
fn hundred_releases_one_by_one_and_thousand_batched() {
    releases_at_scale(100);
}

fn releases_at_scale(singles: usize) {
    let f = common::fixture();
    let mut repo = Repository::init(&f.repo_dir, f.keys.clone(), common::options()).unwrap();
    let (a, b) = (model("pump-x2"), model("monitor"));
    repo.add_model(&a, 1, 1).unwrap();
    repo.add_model(&b, 1, 1).unwrap();
    let versions: Vec<FirmwareVersion> = (0..1000).map(|i| ver(&format!("1.{i}"))).collect();
    let images: Vec<String> = (0..1000).map(|i| format!("image {i}")).collect();

    let start = std::time::Instant::now();
    for i in 0..singles {
        repo.publish(&release(
            &a,
            &versions[i],
            i as u64 / 10,
            images[i].as_bytes(),
        ))
        .unwrap();
    }
    let one_by_one = start.elapsed();

    let batch: Vec<NewRelease<'_>> = (0..1000)
        .map(|i| release(&b, &versions[i], i as u64 / 10, images[i].as_bytes()))
        .collect();
    let start = std::time::Instant::now();
    assert_eq!(repo.publish_many(&batch).unwrap().len(), 1000);
    let batched = start.elapsed();

    let md = f.repo_dir.join("metadata");
    let files = std::fs::read_dir(&md).unwrap().count();
    let role_len = std::fs::metadata(md.join("2.monitor.json")).unwrap().len();
    eprintln!(
        "{singles} publishes one by one: {one_by_one:?} ({:?} each); 1000 as one batch: \
         {batched:?}; delegated role with 1000 releases {role_len} bytes; {files} metadata \
         files kept",
        one_by_one / singles as u32
    );
    assert_eq!(repo.releases(&a).unwrap().len(), singles);
    // Old versions are pruned: the last 3 of each role stay.
    let last = singles + 1;
    assert!(md.join(format!("{last}.pump-x2.json")).is_file());
    assert!(md.join(format!("{}.pump-x2.json", last - 2)).is_file());
    assert!(!md.join(format!("{}.pump-x2.json", last - 3)).exists());
    let start = std::time::Instant::now();
    drop(repo); // the repository is locked while open
    let repo = Repository::open(&f.repo_dir, f.keys.clone()).unwrap();
    eprintln!("open with 2000 releases: {:?}", start.elapsed());
    assert_eq!(repo.releases(&b).unwrap().len(), 1000);
}
