//! Device-side update targets: TUF metadata verified as the agent verifies it (tough's client
//! workflow through the agent's own `verifying_loader`, from a fixed trusted root, then the
//! agent's own checks), and the director's signed instructions (`verify_instruction` against a
//! fixed director key).
//!
//! `tuf_metadata` input: the files a repository would serve, separated by NUL bytes (JSON
//! never holds one): `timestamp.json`, the snapshot, the top-level targets, the delegated role
//! of any name, and optionally `2.root.json`. A missing part is a 404. The seeds
//! (`corpus/tuf_metadata/`) were signed by the keys of `data/tuf-root.json`
//! (`tests/make_seeds.rs`), so mutations reach every stage of the verification.

use std::cell::RefCell;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use medsec_agent::update::{
    DeviceIdentity, UpdateLimits, cross_check, delegated_versions, find_in_role, verifying_loader,
};
use medsec_core::KeyAlgorithm;
use medsec_keys::{KeyRef, Signer, SoftwareSigner};
use medsec_updates::{
    DirectorKey, Instruction, ReleaseCustom, SignedInstruction, verify_instruction,
};
use tough::{Bytes, Transport, TransportError, TransportErrorKind, TransportStream};

/// The root the device was provisioned with (see `tests/make_seeds.rs`).
const TRUSTED_ROOT: &[u8] = include_bytes!("../data/tuf-root.json");
/// The director's test key; only its public half is trusted here.
const DIRECTOR_KEY: &[u8] = include_bytes!("../data/director.pk8");

/// One body, then the end of the stream.
struct Once(Option<Bytes>);

impl futures_core::Stream for Once {
    type Item = Result<Bytes, TransportError>;
    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(self.0.take().map(Ok))
    }
}

/// Serves the parts of the input by file name (any version prefix).
#[derive(Debug, Clone)]
struct Files(Arc<Vec<Vec<u8>>>);

fn part_of(name: &str) -> Option<usize> {
    let (version, base) = match name.split_once('.') {
        Some((v, rest)) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
            (Some(v), rest)
        }
        _ => (None, name),
    };
    match base {
        "root.json" => (version == Some("2")).then_some(4),
        "timestamp.json" => Some(0),
        "snapshot.json" => Some(1),
        "targets.json" => Some(2),
        b if b.ends_with(".json") => Some(3),
        _ => None,
    }
}

#[tough::async_trait]
impl Transport for Files {
    async fn fetch(&self, url: url::Url) -> Result<TransportStream, TransportError> {
        let name = url
            .path_segments()
            .and_then(|mut s| s.next_back())
            .unwrap_or("")
            .to_owned();
        match part_of(&name).and_then(|i| self.0.get(i)) {
            Some(body) => Ok(Box::pin(Once(Some(Bytes::from(body.clone()))))),
            None => Err(TransportError::new(TransportErrorKind::FileNotFound, url)),
        }
    }
}

fn runtime<R>(f: impl FnOnce(&tokio::runtime::Runtime) -> R) -> R {
    thread_local! {
        static RT: RefCell<Option<tokio::runtime::Runtime>> = const { RefCell::new(None) };
    }
    RT.with(|rt| {
        let mut rt = rt.borrow_mut();
        let rt = rt.get_or_insert_with(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime")
        });
        f(rt)
    })
}

/// TUF metadata from a repository, verified from the fixed trusted root; for every target of
/// a delegated role, the director instruction naming it exactly passes the agent's
/// cross-check when its release metadata is this device's, and one naming another length never does.
pub fn tuf_metadata(data: &[u8]) {
    let parts: Vec<Vec<u8>> = data.split(|b| *b == 0).map(<[u8]>::to_vec).collect();
    let files = Files(Arc::new(parts));
    let Ok(store) = tempfile::tempdir() else {
        return;
    };
    let limits = UpdateLimits::default();
    let metadata_url = url::Url::parse("https://repo.invalid/metadata/").expect("url");
    let targets_url = url::Url::parse("https://repo.invalid/targets/").expect("url");
    let loaded = runtime(|rt| {
        rt.block_on(async {
            verifying_loader(&TRUSTED_ROOT, &metadata_url, &targets_url, &limits)
                .transport(files)
                .datastore(store.path())
                .load()
                .await
                .ok()
        })
    });
    let Some(repo) = loaded else {
        return;
    };
    let root_version = repo.root().signed.version.get();
    assert!(
        (1..=2).contains(&root_version),
        "root version {root_version}"
    );
    let mut versions = std::collections::BTreeMap::new();
    delegated_versions(&repo.targets().signed, &mut versions);
    assert!(versions.values().all(|v| *v >= 1));

    let Some(delegations) = &repo.targets().signed.delegations else {
        return;
    };
    for role in &delegations.roles {
        let Some(signed) = &role.targets else {
            continue;
        };
        for (name, target) in signed.signed.targets.iter().take(8) {
            let found = find_in_role(&repo.targets().signed, &role.name, name.raw());
            assert!(found.is_some(), "{} not found in its own role", name.raw());
            let custom = serde_json::Value::Object(target.custom.clone().into_iter().collect());
            let release: Option<ReleaseCustom> = serde_json::from_value(custom).ok();
            let me = DeviceIdentity {
                device: "urn:medsec:device:fuzz-pump:SN-0001".into(),
                model: role.name.clone(),
                hardware_id: release
                    .as_ref()
                    .map_or_else(|| role.name.clone(), |r| r.hardware_id.clone()),
            };
            let honest = Instruction {
                device: me.device.clone(),
                rollout: "r-0001".into(),
                target: name.raw().to_owned(),
                length: target.length,
                sha256: hex::encode(target.hashes.sha256.as_ref()),
                security_version: release.as_ref().map_or(0, |r| r.security_version),
                counter: 1,
                issued_at: 0,
                expires: i64::MAX,
            };
            let got = cross_check(&repo, &honest, &me, &limits);
            let resolves_here = repo
                .targets()
                .signed
                .find_target(name, false)
                .ok()
                .is_some_and(|t| Some(t) == found);
            let expected_ok = resolves_here
                && release.as_ref().is_some_and(|r| r.model == role.name)
                && target.length <= limits.max_image_size;
            match (&got, expected_ok) {
                (Ok(r), true) => assert_eq!(Some(r), release.as_ref()),
                (Err(_), false) => {}
                (r, e) => panic!("cross-check of {} gave {r:?}, expected ok: {e}", name.raw()),
            }
            let longer = Instruction {
                length: target.length.wrapping_add(1),
                ..honest
            };
            assert!(
                cross_check(&repo, &longer, &me, &limits).is_err(),
                "a wrong length passed the cross-check"
            );
        }
    }
}

const DEVICE: &str = "urn:medsec:device:fuzz-pump:SN-0001";
const NOW: i64 = 1_750_000_000;
const LAST_COUNTER: u64 = 3;

fn director_key() -> &'static DirectorKey {
    static K: OnceLock<DirectorKey> = OnceLock::new();
    K.get_or_init(|| {
        let kr: KeyRef = "file:fuzz-director".parse().expect("key ref");
        let s = SoftwareSigner::from_pkcs8(kr, KeyAlgorithm::EcdsaP256, DIRECTOR_KEY)
            .expect("director test key");
        let k = DirectorKey::of(&s as &dyn Signer);
        assert_eq!(k.algorithm, KeyAlgorithm::EcdsaP256);
        k
    })
}

/// A director instruction envelope (`GET /device/v1/update`), checked as the agent checks it:
/// an accepted one is for this device, unexpired and not replayed, and stops being accepted
/// for another device, later than its expiry or after a higher counter.
pub fn director_instruction(data: &[u8]) {
    let Ok(env) = serde_json::from_slice::<SignedInstruction>(data) else {
        return;
    };
    let keys = std::slice::from_ref(director_key());
    let Ok(i) = verify_instruction(&env, keys, DEVICE, NOW, Some(LAST_COUNTER)) else {
        return;
    };
    assert_eq!(i.device, DEVICE);
    assert!(i.expires > NOW);
    assert!(i.counter >= LAST_COUNTER);
    assert!(
        verify_instruction(&env, keys, "urn:medsec:device:fuzz-pump:SN-0002", NOW, None).is_err()
    );
    assert!(verify_instruction(&env, keys, DEVICE, i.expires, None).is_err());
    if let Some(next) = i.counter.checked_add(1) {
        assert!(verify_instruction(&env, keys, DEVICE, NOW, Some(next)).is_err());
    }
    assert!(verify_instruction(&env, &[], DEVICE, NOW, None).is_err());
}
