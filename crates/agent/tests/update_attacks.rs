//! Every attack the update client must refuse, one test each, against repositories generated
//! by the attack-named functions in `update_support` and served over loopback HTTP, so the
//! real transport, tough's verification and the director cross-check all take part.
//! `tests/data/README.md` lists the attacks.

mod update_support;

use std::time::Duration;

use medsec_agent::Refusal;
use medsec_agent::update::Slot;
use update_support::*;
// The generators are named after the attacks, like the tests: call them by path.
use update_support as fixture;

/// A device running pump-x2 1.0 (confirmed) from the honest repository at version 1.
async fn running_v1() -> (Device, medsec_agent::UpdateClient) {
    let d = Device::new().await;
    honest(&d.repo_dir(), &d.keys, 1).await;
    let c = d.client();
    d.install_confirmed(&c, &pump("1.0", 1), 1).await;
    (d, c)
}

fn assert_still_v1(d: &Device, c: &medsec_agent::UpdateClient) {
    let st = c.status().unwrap();
    assert_eq!(st.active, Some(Slot::A));
    assert!(!st.pending);
    assert_eq!(d.active_bytes(c), pump("1.0", 1).bytes);
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_image() {
    let (d, c) = running_v1().await;
    let dir = d.next_repo_dir("tampered-image");
    let r = fixture::tampered_image(&dir, &d.keys).await;
    let offer = c
        .check_instruction(Some(&d.director.instruct(&r, 2)))
        .await
        .unwrap()
        .expect("the metadata is fine");
    assert_eq!(refusal(c.install(&offer, None).await), Refusal::Integrity);
    assert_still_v1(&d, &c);
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_length() {
    let (d, c) = running_v1().await;
    let dir = d.next_repo_dir("wrong-length");
    let r = fixture::wrong_length(&dir, &d.keys).await;
    let offer = c
        .check_instruction(Some(&d.director.instruct(&r, 2)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(refusal(c.install(&offer, None).await), Refusal::Integrity);
    assert_still_v1(&d, &c);
}

#[tokio::test(flavor = "multi_thread")]
async fn endless_data() {
    let (d, c) = running_v1().await;
    let r = pump("2.0", 2);
    // An endless image: reading stops at the signed length.
    let offer = c
        .check_instruction(Some(&d.director.instruct(&r, 2)))
        .await
        .unwrap()
        .unwrap();
    d.repo
        .state
        .endless
        .lock()
        .unwrap()
        .insert(format!("/targets/{}", r.target()));
    let res = tokio::time::timeout(Duration::from_secs(30), c.install(&offer, None))
        .await
        .expect("endless data must not hang the device");
    assert_eq!(refusal(res), Refusal::Integrity);
    assert_still_v1(&d, &c);
    // An endless timestamp (whose size nothing signed gives): bounded by max_timestamp_size.
    d.repo
        .state
        .endless
        .lock()
        .unwrap()
        .insert("/metadata/timestamp.json".into());
    let res = tokio::time::timeout(
        Duration::from_secs(30),
        c.check_instruction(Some(&d.director.instruct(&r, 3))),
    )
    .await
    .expect("endless metadata must not hang the device");
    assert_eq!(refusal(res), Refusal::Integrity);
}

#[tokio::test(flavor = "multi_thread")]
async fn below_threshold_signatures() {
    for role in ["timestamp", "targets"] {
        let d = Device::new().await;
        fixture::below_threshold_signatures(&d.repo_dir(), &d.keys, role).await;
        let r = d
            .client()
            .check_instruction(Some(&d.director.instruct(&pump("1.0", 1), 1)))
            .await;
        assert_eq!(refusal(r), Refusal::Signature, "{role}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_key_signatures() {
    for role in ["timestamp", "targets"] {
        let d = Device::new().await;
        fixture::duplicate_key_signatures(&d.repo_dir(), &d.keys, role).await;
        let r = d
            .client()
            .check_instruction(Some(&d.director.instruct(&pump("1.0", 1), 1)))
            .await;
        assert_eq!(refusal(r), Refusal::Signature, "{role}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn freeze_attack() {
    for role in ["timestamp", "snapshot", "targets", MODEL] {
        let d = Device::new().await;
        fixture::freeze_attack(&d.repo_dir(), &d.keys, role, 1).await;
        let r = d
            .client()
            .check_instruction(Some(&d.director.instruct(&pump("1.0", 1), 1)))
            .await;
        assert_eq!(refusal(r), Refusal::Freeze, "{role}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_attack() {
    for role in ["timestamp", "snapshot", "targets", MODEL] {
        let d = Device::new().await;
        honest(&d.next_repo_dir("v2"), &d.keys, 2).await;
        let c = d.client();
        c.check_instruction(Some(&d.director.instruct(&pump("1.0", 1), 1)))
            .await
            .unwrap();
        fixture::rollback_attack(&d.next_repo_dir(role), &d.keys, role).await;
        let r = c
            .check_instruction(Some(&d.director.instruct(&pump("1.0", 1), 2)))
            .await;
        assert_eq!(refusal(r), Refusal::Rollback, "{role}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_attack_after_losing_tough_datastore() {
    // tough writes its datastore in place; a power cut can empty it. The floors in state.json
    // still refuse every older role.
    for role in ["timestamp", "snapshot", "targets", MODEL] {
        let d = Device::new().await;
        honest(&d.next_repo_dir("v2"), &d.keys, 2).await;
        let c = d.client();
        c.check_instruction(Some(&d.director.instruct(&pump("1.0", 1), 1)))
            .await
            .unwrap();
        let ds = d.cfg.update_dir.join("tuf");
        for e in std::fs::read_dir(&ds).unwrap() {
            std::fs::write(e.unwrap().path(), b"").unwrap();
        }
        fixture::rollback_attack(&d.next_repo_dir(role), &d.keys, role).await;
        let r = c
            .check_instruction(Some(&d.director.instruct(&pump("1.0", 1), 2)))
            .await;
        assert_eq!(refusal(r), Refusal::Rollback, "{role}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn security_version_rollback() {
    let d = Device::new().await;
    honest(&d.repo_dir(), &d.keys, 1).await;
    let c = d.client();
    d.install_confirmed(&c, &pump("2.0", 2), 1).await;
    // 1.0 is genuine and still listed, but its security version is lower.
    let r = c
        .check_instruction(Some(&d.director.instruct(&pump("1.0", 1), 2)))
        .await;
    assert_eq!(refusal(r), Refusal::SecurityVersion);
    // The director claiming a higher security version than the repository signed.
    let mut i = instruction(&pump("1.0", 1), 3);
    i.security_version = 2;
    let r = c.check_instruction(Some(&d.director.sign(&i))).await;
    assert_eq!(refusal(r), Refusal::Mismatch);
    assert_eq!(c.status().unwrap().installed_security_version, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn mix_and_match() {
    let (d, c) = running_v1().await;
    // An image that is not in the current snapshot (6.6 exists only in another repository).
    let r = c
        .check_instruction(Some(&d.director.instruct(&pump("6.6", 9), 2)))
        .await;
    assert_eq!(refusal(r), Refusal::Mismatch);
    // Director and repository disagree on the hash (and on the length).
    let mut i = instruction(&pump("2.0", 2), 3);
    i.sha256 = pump("1.0", 1).sha256();
    assert_eq!(
        refusal(c.check_instruction(Some(&d.director.sign(&i))).await),
        Refusal::Mismatch
    );
    let mut i = instruction(&pump("2.0", 2), 4);
    i.length += 1;
    assert_eq!(
        refusal(c.check_instruction(Some(&d.director.sign(&i))).await),
        Refusal::Mismatch
    );
    // Targets metadata from another repository state under this snapshot.
    let dir = d.next_repo_dir("mix-and-match");
    mix_and_match_metadata(&dir, &d.keys).await;
    let r = c
        .check_instruction(Some(&d.director.instruct(&pump("6.6", 9), 5)))
        .await;
    assert_eq!(refusal(r), Refusal::Integrity);
    assert_still_v1(&d, &c);
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_hardware() {
    let d = Device::new().await;
    let (rev_b, claims_other, other_model) = fixture::wrong_hardware(&d.repo_dir(), &d.keys).await;
    let c = d.client();
    for (n, r) in [rev_b, claims_other].iter().enumerate() {
        let res = c
            .check_instruction(Some(&d.director.instruct(r, n as u64 + 1)))
            .await;
        assert_eq!(refusal(res), Refusal::WrongDevice, "{}", r.target());
    }
    // Another model's image, listed (and signed) only by that model's role.
    let res = c
        .check_instruction(Some(&d.director.instruct(&other_model, 5)))
        .await;
    assert_eq!(refusal(res), Refusal::Mismatch);
}

#[tokio::test(flavor = "multi_thread")]
async fn revoked_key() {
    // A device that has seen root version 2 refuses targets signed by the key v2 revoked,
    // even when the repository withholds 2.root.json.
    let (d, c) = running_v1().await;
    assert_eq!(c.status().unwrap().trusted_root_version, 2);
    let dir = d.next_repo_dir("revoked-key");
    fixture::revoked_key(&dir, &d.keys).await;
    let r = c
        .check_instruction(Some(&d.director.instruct(&pump("6.6", 9), 2)))
        .await;
    assert_eq!(refusal(r), Refusal::Signature);
    // With 2.root.json served as well, still refused.
    std::fs::copy(
        d.repo_dir().join("metadata/2.root.json"),
        dir.join("metadata/2.root.json"),
    )
    .unwrap();
    let r = c
        .check_instruction(Some(&d.director.instruct(&pump("6.6", 9), 3)))
        .await;
    assert_eq!(refusal(r), Refusal::Signature);
    assert_still_v1(&d, &c);

    // The same repository is otherwise well-formed: a device that only ever knew root v1
    // accepts it, which is exactly why the newest root must be remembered.
    let fresh = Device::new().await;
    fixture::revoked_key(&fresh.repo_dir(), &fresh.keys).await;
    assert!(
        fresh
            .client()
            .check_instruction(Some(&fresh.director.instruct(&pump("6.6", 9), 1)))
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stolen_director_key() {
    // The director key signs whatever the thief wants; the release keys did not sign it.
    let (d, c) = running_v1().await;
    let evil = Release::new(MODEL, "9.9", 99, 70_000);
    let p = d.repo_dir().join("targets").join(evil.target());
    std::fs::write(&p, &evil.bytes).unwrap();
    let r = c
        .check_instruction(Some(&d.director.instruct(&evil, 2)))
        .await;
    assert_eq!(refusal(r), Refusal::Mismatch);
    // A genuine target name with the thief's image behind it.
    let mut i = instruction(&pump("2.0", 2), 3);
    i.sha256 = evil.sha256();
    i.length = evil.bytes.len() as u64;
    std::fs::write(
        d.repo_dir().join("targets").join(pump("2.0", 2).target()),
        &evil.bytes,
    )
    .unwrap();
    assert_eq!(
        refusal(c.check_instruction(Some(&d.director.sign(&i))).await),
        Refusal::Mismatch
    );
    assert_still_v1(&d, &c);
    assert_ne!(d.slot_bytes(Slot::B), evil.bytes);
}

#[tokio::test(flavor = "multi_thread")]
async fn instruction_for_another_device() {
    let (d, c) = running_v1().await;
    let mut i = instruction(&pump("2.0", 2), 2);
    i.device = urn(MODEL, "SN-9999");
    assert_eq!(
        refusal(c.check_instruction(Some(&d.director.sign(&i))).await),
        Refusal::WrongDevice
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_instruction() {
    let (d, c) = running_v1().await;
    let mut i = instruction(&pump("2.0", 2), 2);
    i.expires = i.issued_at - 1;
    assert_eq!(
        refusal(c.check_instruction(Some(&d.director.sign(&i))).await),
        Refusal::Freeze
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn replayed_instruction_counter() {
    let (d, c) = running_v1().await;
    // Counter 5 accepted (the image is then installed and confirmed)...
    d.install_confirmed(&c, &pump("2.0", 2), 5).await;
    // ...so an older instruction, validly signed, is a replay.
    let r = c
        .check_instruction(Some(&d.director.instruct(&pump("2.0", 2), 4)))
        .await;
    assert_eq!(refusal(r), Refusal::Replay);
    assert_eq!(c.status().unwrap().last_director_counter, Some(5));
}

#[tokio::test(flavor = "multi_thread")]
async fn untrusted_director_key() {
    let (d, c) = running_v1().await;
    let thief = Director::new("not pinned");
    let r = c
        .check_instruction(Some(&thief.instruct(&pump("2.0", 2), 2)))
        .await;
    assert_eq!(refusal(r), Refusal::Signature);
    assert_still_v1(&d, &c);
}
