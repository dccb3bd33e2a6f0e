//! Test support for the update tests: deterministic keys, TUF repositories built with tough's
//! editor (and attack variants of them), a loopback HTTP server for the repository and an mTLS
//! one for the device gateway, a fake enrolled device and a director.
//!
//! Everything an attack test serves is generated here into a temporary directory by a function
//! named after the attack; `tests/data/README.md` lists them.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aws_lc_rs::signature::Ed25519KeyPair;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use medsec_agent::update::{UpdateClient, UpdateConfig};
use medsec_agent::{AgentConfig, AgentError, Refusal};
use medsec_updates::{DirectorKey, Instruction, SignedInstruction};
use sha2::{Digest, Sha256};
use tough::editor::RepositoryEditor;
use tough::key_source::KeySource;
use tough::schema::decoded::{Decoded, Hex};
use tough::schema::key::Key;
use tough::schema::{
    Hashes, PathPattern, PathSet, Role, RoleKeys, RoleType, Root, Signature, Signed, Snapshot,
    Target, Timestamp,
};

pub const MODEL: &str = "pump-x2";
pub const OTHER_MODEL: &str = "infusion-y";
pub const SERIAL: &str = "SN-0001";

pub fn urn(model: &str, serial: &str) -> String {
    format!("urn:medsec:device:{model}:{serial}")
}

// ---------------------------------------------------------------------------------------------
// Keys

/// An Ed25519 key derived from a name, so every run builds the same keys.
#[derive(Clone)]
pub struct TestKey {
    seed: [u8; 32],
}

impl TestKey {
    pub fn new(name: &str) -> Self {
        TestKey {
            seed: Sha256::digest(format!("medsec update test key {name}")).into(),
        }
    }

    fn pair(&self) -> Ed25519KeyPair {
        Ed25519KeyPair::from_seed_unchecked(&self.seed).expect("seed")
    }

    pub fn tuf_key(&self) -> Key {
        tough::sign::Sign::tuf_key(&self.pair())
    }

    pub fn keyid(&self) -> Decoded<Hex> {
        self.tuf_key().key_id().expect("key id")
    }

    pub fn source(&self) -> Box<dyn KeySource> {
        Box::new(SeedSource(self.seed))
    }

    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        self.pair().sign(msg).as_ref().to_vec()
    }

    pub fn signature<T: Role>(&self, role: &T) -> Signature {
        Signature {
            keyid: self.keyid(),
            sig: self
                .sign(&role.canonical_form().expect("canonical form"))
                .into(),
        }
    }
}

struct SeedSource([u8; 32]);

impl std::fmt::Debug for SeedSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SeedSource")
    }
}

#[tough::async_trait]
impl KeySource for SeedSource {
    async fn as_sign(
        &self,
    ) -> Result<Box<dyn tough::sign::Sign>, Box<dyn std::error::Error + Send + Sync + 'static>>
    {
        Ok(Box::new(Ed25519KeyPair::from_seed_unchecked(&self.0)?))
    }

    async fn write(
        &self,
        _value: &str,
        _key_id_hex: &str,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        Err("test keys are not written".into())
    }
}

/// The repository's keys. `targets_old` is the targets key root version 1 trusts and root
/// version 2 revokes.
pub struct Keys {
    pub root: TestKey,
    pub targets_old: TestKey,
    pub targets: TestKey,
    pub targets2: TestKey,
    pub snapshot: TestKey,
    pub timestamp: TestKey,
    pub timestamp2: TestKey,
    pub release: TestKey,
    pub other_release: TestKey,
}

impl Keys {
    pub fn new() -> Self {
        Keys {
            root: TestKey::new("root"),
            targets_old: TestKey::new("targets-revoked"),
            targets: TestKey::new("targets"),
            targets2: TestKey::new("targets-2"),
            snapshot: TestKey::new("snapshot"),
            timestamp: TestKey::new("timestamp"),
            timestamp2: TestKey::new("timestamp-2"),
            release: TestKey::new("release-pump-x2"),
            other_release: TestKey::new("release-infusion-y"),
        }
    }
}

pub fn in_hours(h: i64) -> jiff::Timestamp {
    jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(h))
        .expect("time")
}

fn nz(v: u64) -> NonZeroU64 {
    NonZeroU64::new(v).expect("non-zero version")
}

fn role_keys(keys: &[&TestKey], threshold: u64) -> RoleKeys {
    RoleKeys {
        keyids: keys.iter().map(|k| k.keyid()).collect(),
        threshold: nz(threshold),
        _extra: HashMap::new(),
    }
}

/// Root version 1: targets signed by `targets_old` alone.
/// Root version 2 (signed by the root key, as the unchanged root role requires twice): the
/// targets role is `targets` + `targets2` with threshold 2, so `targets_old` is revoked.
/// Both: timestamp is `timestamp` + `timestamp2` with threshold 2, snapshot one key.
pub fn root(keys: &Keys, version: u64) -> Signed<Root> {
    let mut all: Vec<&TestKey> = vec![
        &keys.root,
        &keys.snapshot,
        &keys.timestamp,
        &keys.timestamp2,
    ];
    let mut roles = HashMap::new();
    roles.insert(RoleType::Root, role_keys(&[&keys.root], 1));
    roles.insert(RoleType::Snapshot, role_keys(&[&keys.snapshot], 1));
    roles.insert(
        RoleType::Timestamp,
        role_keys(&[&keys.timestamp, &keys.timestamp2], 2),
    );
    if version == 1 {
        all.push(&keys.targets_old);
        roles.insert(RoleType::Targets, role_keys(&[&keys.targets_old], 1));
    } else {
        all.extend([&keys.targets, &keys.targets2]);
        roles.insert(
            RoleType::Targets,
            role_keys(&[&keys.targets, &keys.targets2], 2),
        );
    }
    let r = Root {
        spec_version: "1.0.0".into(),
        consistent_snapshot: false,
        version: nz(version),
        expires: in_hours(24 * 365),
        keys: all.iter().map(|k| (k.keyid(), k.tuf_key())).collect(),
        roles,
        _extra: HashMap::new(),
    };
    let sig = keys.root.signature(&r);
    Signed {
        signed: r,
        signatures: vec![sig],
    }
}

// ---------------------------------------------------------------------------------------------
// Repositories

/// One firmware image in the repository.
#[derive(Clone)]
pub struct Release {
    pub model: String,
    pub version: String,
    pub hardware_id: String,
    pub security_version: u64,
    pub bytes: Vec<u8>,
    /// What `custom.model` claims, when it is not the role the image is listed in.
    pub claimed_model: Option<String>,
}

impl Release {
    /// Deterministic image bytes of `len` bytes.
    pub fn new(model: &str, version: &str, security_version: u64, len: usize) -> Self {
        let mut bytes = Vec::with_capacity(len);
        let mut block = Sha256::digest(format!("{model} {version}")).to_vec();
        while bytes.len() < len {
            bytes.extend_from_slice(&block);
            block = Sha256::digest(&block).to_vec();
        }
        bytes.truncate(len);
        Release {
            model: model.into(),
            version: version.into(),
            hardware_id: model.into(),
            security_version,
            bytes,
            claimed_model: None,
        }
    }

    pub fn target(&self) -> String {
        format!("{0}/{0}-{1}.bin", self.model, self.version)
    }

    pub fn sha256(&self) -> String {
        hex::encode(Sha256::digest(&self.bytes))
    }
}

/// Versions, expiries and content of one repository state.
#[derive(Clone)]
pub struct RepoSpec {
    /// The root chain to publish (`N.root.json` for each); the last one signs.
    pub roots: Vec<u64>,
    pub timestamp_version: u64,
    pub snapshot_version: u64,
    pub targets_version: u64,
    pub role_version: u64,
    pub timestamp_expires: jiff::Timestamp,
    pub snapshot_expires: jiff::Timestamp,
    pub targets_expires: jiff::Timestamp,
    pub role_expires: jiff::Timestamp,
    pub releases: Vec<Release>,
}

impl RepoSpec {
    /// Root versions 1 and 2, every other role at `version`, valid for a day.
    pub fn new(version: u64, releases: Vec<Release>) -> Self {
        RepoSpec {
            roots: vec![1, 2],
            timestamp_version: version,
            snapshot_version: version,
            targets_version: version,
            role_version: version,
            timestamp_expires: in_hours(24),
            snapshot_expires: in_hours(24),
            targets_expires: in_hours(24),
            role_expires: in_hours(24),
            releases,
        }
    }
}

pub fn metadata_dir(dir: &Path) -> PathBuf {
    dir.join("metadata")
}

pub fn targets_dir(dir: &Path) -> PathBuf {
    dir.join("targets")
}

/// Builds `spec` into `dir/metadata` and `dir/targets` with tough's editor: one delegated role
/// per model (named after the model, paths `<model>/*`, signed by that model's release key).
pub async fn build_repo(dir: &Path, keys: &Keys, spec: &RepoSpec) {
    let meta = metadata_dir(dir);
    let tdir = targets_dir(dir);
    std::fs::create_dir_all(&meta).unwrap();
    std::fs::create_dir_all(&tdir).unwrap();
    let mut last = PathBuf::new();
    for v in &spec.roots {
        let r = root(keys, *v);
        last = meta.join(format!("{v}.root.json"));
        std::fs::write(&last, serde_json::to_vec_pretty(&r).unwrap()).unwrap();
    }
    let current = *spec.roots.last().unwrap();
    let top_keys: Vec<Box<dyn KeySource>> = if current == 1 {
        vec![keys.targets_old.source()]
    } else {
        vec![keys.targets.source(), keys.targets2.source()]
    };

    let mut ed = RepositoryEditor::new(&last).await.unwrap();
    ed.targets_version(nz(spec.targets_version))
        .unwrap()
        .targets_expires(spec.targets_expires)
        .unwrap();
    let mut models: Vec<&str> = spec.releases.iter().map(|r| r.model.as_str()).collect();
    models.sort();
    models.dedup();
    let release_key = |m: &str| {
        if m == MODEL {
            keys.release.clone()
        } else {
            keys.other_release.clone()
        }
    };
    for m in &models {
        ed.delegate_role(
            m,
            &[release_key(m).source()],
            PathSet::Paths(vec![PathPattern::new(format!("{m}/*")).unwrap()]),
            true,
            nz(1),
            spec.role_expires,
            nz(spec.role_version),
        )
        .await
        .unwrap();
    }
    ed.sign_targets_editor(&top_keys).await.unwrap();
    for m in &models {
        ed.change_delegated_targets(m).unwrap();
        // The editor keeps a role's content, not its version and expiry.
        ed.targets_version(nz(spec.role_version))
            .unwrap()
            .targets_expires(spec.role_expires)
            .unwrap();
        for r in spec.releases.iter().filter(|r| r.model == *m) {
            ed.add_target(r.target(), target_entry(r)).unwrap();
            let p = tdir.join(r.target());
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, &r.bytes).unwrap();
        }
        ed.sign_targets_editor(&[release_key(m).source()])
            .await
            .unwrap();
    }
    ed.snapshot_version(nz(spec.snapshot_version))
        .snapshot_expires(spec.snapshot_expires)
        .timestamp_version(nz(spec.timestamp_version))
        .timestamp_expires(spec.timestamp_expires);
    let all = vec![
        keys.snapshot.source(),
        keys.timestamp.source(),
        keys.timestamp2.source(),
    ];
    let signed = ed.sign(&all).await.unwrap();
    signed.write(&meta).await.unwrap();
}

pub fn target_entry(r: &Release) -> Target {
    let custom = serde_json::json!({
        "model": r.claimed_model.as_deref().unwrap_or(&r.model),
        "hardware_id": r.hardware_id,
        "version": r.version,
        "security_version": r.security_version,
    });
    let serde_json::Value::Object(map) = custom else {
        unreachable!()
    };
    Target {
        length: r.bytes.len() as u64,
        hashes: Hashes {
            sha256: Sha256::digest(&r.bytes).to_vec().into(),
            _extra: HashMap::new(),
        },
        custom: map.into_iter().collect(),
        _extra: HashMap::new(),
    }
}

fn read_json<T: serde::de::DeserializeOwned>(p: &Path) -> T {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn write_json<T: serde::Serialize>(p: &Path, v: &T) {
    std::fs::write(p, serde_json::to_vec_pretty(v).unwrap()).unwrap();
}

fn metafile_for(path: &Path, version: NonZeroU64) -> tough::schema::Metafile {
    let b = std::fs::read(path).unwrap();
    tough::schema::Metafile {
        length: Some(b.len() as u64),
        hashes: Some(Hashes {
            sha256: Sha256::digest(&b).to_vec().into(),
            _extra: HashMap::new(),
        }),
        version,
        _extra: HashMap::new(),
    }
}

/// After tampering with targets metadata: what an attacker holding the (online) snapshot and
/// timestamp keys does, so that only the check under test can catch the tampering.
pub fn resign_snapshot_and_timestamp(dir: &Path, keys: &Keys) {
    let meta = metadata_dir(dir);
    let sp = meta.join("snapshot.json");
    let mut snap: Signed<Snapshot> = read_json(&sp);
    let names: Vec<String> = snap.signed.meta.keys().cloned().collect();
    for n in names {
        let v = snap.signed.meta[&n].version;
        snap.signed
            .meta
            .insert(n.clone(), metafile_for(&meta.join(&n), v));
    }
    snap.signatures = vec![keys.snapshot.signature(&snap.signed)];
    write_json(&sp, &snap);
    let tp = meta.join("timestamp.json");
    let mut ts: Signed<Timestamp> = read_json(&tp);
    let v = ts.signed.meta["snapshot.json"].version;
    ts.signed
        .meta
        .insert("snapshot.json".into(), metafile_for(&sp, v));
    ts.signatures = sign_timestamp_all(&ts.signed, keys);
    write_json(&tp, &ts);
}

fn sign_timestamp_all(ts: &Timestamp, keys: &Keys) -> Vec<Signature> {
    vec![keys.timestamp.signature(ts), keys.timestamp2.signature(ts)]
}

// ----- Attack generators: each writes a complete repository into `dir`. -----

pub fn pump(version: &str, sv: u64) -> Release {
    Release::new(MODEL, version, sv, 64 * 1024 + 17)
}

/// The honest repository the attacks start from: pump-x2 1.0 (sv 1) and 2.0 (sv 2).
pub async fn honest(dir: &Path, keys: &Keys, version: u64) -> RepoSpec {
    let spec = RepoSpec::new(version, vec![pump("1.0", 1), pump("2.0", 2)]);
    build_repo(dir, keys, &spec).await;
    spec
}

/// tampered-image: the image bytes change after signing (same length).
pub async fn tampered_image(dir: &Path, keys: &Keys) -> Release {
    honest(dir, keys, 1).await;
    let r = pump("2.0", 2);
    let p = targets_dir(dir).join(r.target());
    let mut b = std::fs::read(&p).unwrap();
    b[1000] ^= 0x5a;
    std::fs::write(&p, b).unwrap();
    r
}

/// wrong-length: the served image is longer than the signed length.
pub async fn wrong_length(dir: &Path, keys: &Keys) -> Release {
    honest(dir, keys, 1).await;
    let r = pump("2.0", 2);
    let p = targets_dir(dir).join(r.target());
    let mut b = std::fs::read(&p).unwrap();
    b.extend_from_slice(&[0u8; 4096]);
    std::fs::write(&p, b).unwrap();
    r
}

/// below-threshold-signatures: timestamp and targets carry one valid signature of the two
/// their roles require (snapshot and timestamp re-signed where needed so that only the
/// threshold can refuse).
pub async fn below_threshold_signatures(dir: &Path, keys: &Keys, role: &str) {
    honest(dir, keys, 1).await;
    let meta = metadata_dir(dir);
    match role {
        "timestamp" => {
            let p = meta.join("timestamp.json");
            let mut ts: Signed<Timestamp> = read_json(&p);
            ts.signatures.truncate(1);
            write_json(&p, &ts);
        }
        _ => {
            let p = meta.join("targets.json");
            let mut t: Signed<serde_json::Value> = read_json(&p);
            t.signatures.truncate(1);
            write_json(&p, &t);
            resign_snapshot_and_timestamp(dir, keys);
        }
    }
}

/// duplicate-key-signatures: the threshold of two "met" by one key's signature twice.
pub async fn duplicate_key_signatures(dir: &Path, keys: &Keys, role: &str) {
    honest(dir, keys, 1).await;
    let meta = metadata_dir(dir);
    if role == "timestamp" {
        let p = meta.join("timestamp.json");
        let mut ts: Signed<Timestamp> = read_json(&p);
        let s = keys.timestamp.signature(&ts.signed);
        ts.signatures = vec![s.clone(), s];
        write_json(&p, &ts);
    } else {
        let p = meta.join("targets.json");
        let mut t: Signed<serde_json::Value> = read_json(&p);
        let keep = t
            .signatures
            .iter()
            .find(|s| s.keyid == keys.targets.keyid())
            .cloned()
            .unwrap();
        t.signatures = vec![keep.clone(), keep];
        write_json(&p, &t);
        resign_snapshot_and_timestamp(dir, keys);
    }
}

/// freeze-attack: one role (`timestamp`, `snapshot`, `targets` or the model's delegated
/// role) expired an hour ago; everything else is current and correctly signed.
pub async fn freeze_attack(dir: &Path, keys: &Keys, role: &str, version: u64) {
    let mut spec = RepoSpec::new(version, vec![pump("1.0", 1), pump("2.0", 2)]);
    let past = in_hours(-1);
    match role {
        "timestamp" => spec.timestamp_expires = past,
        "snapshot" => spec.snapshot_expires = past,
        "targets" => spec.targets_expires = past,
        _ => spec.role_expires = past,
    }
    build_repo(dir, keys, &spec).await;
}

/// rollback-attack: the repository as it was, with `role` at version 1 while the device has
/// trusted version 2; the roles above it are at version 3 so only that role's version can
/// give the rollback away (or, for `timestamp`, everything at version 1).
pub async fn rollback_attack(dir: &Path, keys: &Keys, role: &str) {
    let mut spec = RepoSpec::new(3, vec![pump("1.0", 1), pump("2.0", 2)]);
    match role {
        "timestamp" => spec = RepoSpec::new(1, spec.releases.clone()),
        "snapshot" => {
            spec.snapshot_version = 1;
            spec.targets_version = 2;
            spec.role_version = 2;
        }
        "targets" => {
            spec.targets_version = 1;
            spec.role_version = 2;
        }
        _ => {
            spec.targets_version = 2;
            spec.role_version = 1;
        }
    }
    build_repo(dir, keys, &spec).await;
}

/// revoked-key: metadata signed by the targets key root version 2 removed, served with only
/// `1.root.json` (the newer root withheld), so a client that falls back to its provisioned
/// root would accept it.
pub async fn revoked_key(dir: &Path, keys: &Keys) {
    let mut spec = RepoSpec::new(5, vec![pump("1.0", 1), pump("2.0", 2), pump("6.6", 9)]);
    spec.roots = vec![1];
    build_repo(dir, keys, &spec).await;
}

/// mix-and-match (metadata): targets metadata from another repository state with the same
/// version number, under the honest snapshot.
pub async fn mix_and_match_metadata(dir: &Path, keys: &Keys) {
    honest(dir, keys, 1).await;
    let other = tempfile::tempdir().unwrap();
    build_repo(
        other.path(),
        keys,
        &RepoSpec::new(1, vec![pump("1.0", 1), pump("2.0", 2), pump("6.6", 9)]),
    )
    .await;
    std::fs::copy(
        metadata_dir(other.path()).join("targets.json"),
        metadata_dir(dir).join("targets.json"),
    )
    .unwrap();
}

/// wrong-hardware: the model's role lists an image for hardware revision `rev-b` and one whose
/// metadata claims the other model; the other model's role lists its own image.
pub async fn wrong_hardware(dir: &Path, keys: &Keys) -> (Release, Release, Release) {
    let mut rev_b = pump("3.0", 3);
    rev_b.hardware_id = "rev-b".into();
    let mut claims_other = pump("3.1", 3);
    claims_other.claimed_model = Some(OTHER_MODEL.into());
    let other = Release::new(OTHER_MODEL, "3.0", 3, 5000);
    let spec = RepoSpec::new(
        1,
        vec![
            pump("1.0", 1),
            rev_b.clone(),
            claims_other.clone(),
            other.clone(),
        ],
    );
    build_repo(dir, keys, &spec).await;
    (rev_b, claims_other, other)
}

// ---------------------------------------------------------------------------------------------
// Director

pub struct Director {
    pkcs8: Vec<u8>,
}

impl Director {
    pub fn new(name: &str) -> Self {
        // Deterministic per name is not needed for ECDSA; a fresh key per test is.
        let _ = name;
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let doc = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &rng,
        )
        .unwrap();
        Director {
            pkcs8: doc.as_ref().to_vec(),
        }
    }

    fn signer(&self) -> medsec_keys::SoftwareSigner {
        medsec_keys::SoftwareSigner::from_pkcs8(
            "file:director".parse().unwrap(),
            medsec_core::KeyAlgorithm::EcdsaP256,
            &self.pkcs8,
        )
        .unwrap()
    }

    pub fn key(&self) -> DirectorKey {
        DirectorKey::of(&self.signer())
    }

    pub fn sign(&self, i: &Instruction) -> SignedInstruction {
        SignedInstruction::sign(i, &self.signer()).unwrap()
    }

    /// An instruction for this test's device to install `r`, with `counter`.
    pub fn instruct(&self, r: &Release, counter: u64) -> SignedInstruction {
        self.sign(&instruction(r, counter))
    }
}

pub fn instruction(r: &Release, counter: u64) -> Instruction {
    let now = jiff::Timestamp::now().as_second();
    Instruction {
        device: urn(MODEL, SERIAL),
        rollout: format!("rollout-{}", r.version),
        target: r.target(),
        length: r.bytes.len() as u64,
        sha256: r.sha256(),
        security_version: r.security_version,
        counter,
        issued_at: now,
        expires: now + 3600,
    }
}

// ---------------------------------------------------------------------------------------------
// A fake enrolled device (certificate with the device URN, file key) and its PKI

pub struct Pki {
    pub trust_root: PathBuf,
    pub server_cert_der: Vec<u8>,
    pub server_key_der: Vec<u8>,
    pub ca_der: Vec<u8>,
}

/// Writes `device.key`, `device.pem`, `chain.pem` into `state_dir` as enrollment would, and
/// the CA as `trust.pem` next to it.
pub fn enroll(state_dir: &Path, model: &str, serial: &str) -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, SanType,
    };
    std::fs::create_dir_all(state_dir).unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(DnType::CommonName, "update test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, &ca_key);

    let dev_key = KeyPair::generate().unwrap();
    let mut dev = CertificateParams::new(Vec::<String>::new()).unwrap();
    dev.distinguished_name.push(DnType::CommonName, serial);
    dev.subject_alt_names
        .push(SanType::URI(urn(model, serial).try_into().unwrap()));
    dev.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let dev_cert = dev.signed_by(&dev_key, &issuer).unwrap();

    let srv_key = KeyPair::generate().unwrap();
    let mut srv = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    srv.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let srv_cert = srv.signed_by(&srv_key, &issuer).unwrap();

    std::fs::write(state_dir.join("device.key"), dev_key.serialize_pem()).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            state_dir.join("device.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    }
    std::fs::write(state_dir.join("device.pem"), dev_cert.pem()).unwrap();
    std::fs::write(state_dir.join("chain.pem"), ca_cert.pem()).unwrap();
    let trust_root = state_dir.parent().unwrap().join("trust.pem");
    std::fs::write(&trust_root, ca_cert.pem()).unwrap();
    Pki {
        trust_root,
        server_cert_der: srv_cert.der().to_vec(),
        server_key_der: srv_key.serialize_der(),
        ca_der: ca_cert.der().to_vec(),
    }
}

// ---------------------------------------------------------------------------------------------
// Loopback servers

#[derive(Default)]
pub struct ServerState {
    /// Directory the repository is served from (`metadata/`, `targets/`).
    pub root: Mutex<PathBuf>,
    /// Paths answered with an endless body.
    pub endless: Mutex<HashSet<String>>,
    pub connections: AtomicU64,
    pub requests: AtomicU64,
    /// The gateway's `GET /device/v1/update` answer: `None` = 204.
    pub instruction: Mutex<Option<SignedInstruction>>,
    /// Bodies of `POST /device/v1/update-status`.
    pub reports: Mutex<Vec<serde_json::Value>>,
}

pub struct Server {
    pub addr: SocketAddr,
    pub state: Arc<ServerState>,
}

impl Server {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn serve_dir(&self, dir: &Path) {
        *self.state.root.lock().unwrap() = dir.to_path_buf();
    }
}

/// Serves the repository over plain HTTP, or the gateway over mTLS with `pki`.
pub async fn start_server(pki: Option<&Pki>) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = Arc::new(ServerState::default());
    let tls = pki.map(|p| {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from(p.ca_der.clone())).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .unwrap();
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![CertificateDer::from(p.server_cert_der.clone())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(p.server_key_der.clone())),
            )
            .unwrap();
        tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
    });
    let st = state.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            st.connections.fetch_add(1, Ordering::SeqCst);
            let st = st.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let st = st.clone();
                    async move { Ok::<_, Infallible>(handle(req, &st).await) }
                });
                let builder = hyper::server::conn::http1::Builder::new();
                match tls {
                    Some(acc) => {
                        if let Ok(s) = acc.accept(tcp).await {
                            let _ = builder.serve_connection(TokioIo::new(s), svc).await;
                        }
                    }
                    None => {
                        let _ = builder.serve_connection(TokioIo::new(tcp), svc).await;
                    }
                }
            });
        }
    });
    Server { addr, state }
}

type Body = BoxBody<Bytes, Infallible>;

fn full(status: StatusCode, b: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(Full::new(b.into()).boxed())
        .unwrap()
}

struct Endless;

impl hyper::body::Body for Endless {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        std::task::Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(
            &[b'A'; 16 * 1024],
        )))))
    }
}

async fn handle(req: Request<Incoming>, st: &ServerState) -> Response<Body> {
    st.requests.fetch_add(1, Ordering::SeqCst);
    let path = req.uri().path().to_owned();
    match (req.method().as_str(), path.as_str()) {
        ("GET", "/device/v1/update") => {
            return match st.instruction.lock().unwrap().clone() {
                Some(i) => full(StatusCode::OK, serde_json::to_vec(&i).unwrap()),
                None => full(StatusCode::NO_CONTENT, Bytes::new()),
            };
        }
        ("POST", "/device/v1/update-status") => {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            st.reports
                .lock()
                .unwrap()
                .push(serde_json::from_slice(&body).unwrap());
            return full(StatusCode::NO_CONTENT, Bytes::new());
        }
        _ => {}
    }
    if st.endless.lock().unwrap().contains(&path) {
        return Response::new(Endless.boxed());
    }
    let rel = path.trim_start_matches('/');
    if rel.split('/').any(|c| c == ".." || c.is_empty()) {
        return full(StatusCode::BAD_REQUEST, "bad path");
    }
    let file = st.root.lock().unwrap().join(rel);
    match std::fs::read(&file) {
        Ok(b) => full(StatusCode::OK, b),
        Err(_) => full(StatusCode::NOT_FOUND, "not found"),
    }
}

// ---------------------------------------------------------------------------------------------
// A device under test

pub struct Device {
    pub tmp: tempfile::TempDir,
    pub state_dir: PathBuf,
    pub pki: Pki,
    pub keys: Keys,
    pub director: Director,
    pub repo: Server,
    pub gateway: Server,
    pub cfg: UpdateConfig,
}

impl Device {
    /// An enrolled device trusting root version 1 and `director`, with its repository served
    /// from `<tmp>/repo` and its gateway running.
    pub async fn new() -> Device {
        let tmp = tempfile::tempdir().unwrap();
        let state_dir = tmp.path().join("state");
        let pki = enroll(&state_dir, MODEL, SERIAL);
        let keys = Keys::new();
        let director = Director::new("director");
        let root_path = tmp.path().join("1.root.json");
        write_json(&root_path, &root(&keys, 1));
        let dk_path = tmp.path().join("director-keys.json");
        write_json(&dk_path, &vec![director.key()]);
        let repo = start_server(None).await;
        repo.serve_dir(&tmp.path().join("repo"));
        let gateway = start_server(Some(&pki)).await;
        let agent = AgentConfig::new(
            "127.0.0.1:1",
            gateway.addr.to_string(),
            "localhost",
            &pki.trust_root,
            &state_dir,
        );
        let cfg = UpdateConfig::new(agent, &repo.url(), &root_path, &dk_path);
        Device {
            tmp,
            state_dir,
            pki,
            keys,
            director,
            repo,
            gateway,
            cfg,
        }
    }

    pub fn repo_dir(&self) -> PathBuf {
        self.tmp.path().join("repo")
    }

    /// A fresh directory to build a repository state into, served from now on.
    pub fn next_repo_dir(&self, name: &str) -> PathBuf {
        let d = self.tmp.path().join(format!("repo-{name}"));
        self.repo.serve_dir(&d);
        d
    }

    pub fn client(&self) -> UpdateClient {
        UpdateClient::new(self.cfg.clone()).unwrap()
    }

    pub fn slot_bytes(&self, slot: medsec_agent::update::Slot) -> Vec<u8> {
        std::fs::read(self.cfg.update_dir.join(slot.file_name())).unwrap_or_default()
    }

    /// Installs and confirms `r` (which the served repository must hold).
    pub async fn install_confirmed(&self, c: &UpdateClient, r: &Release, counter: u64) {
        let offer = c
            .check_instruction(Some(&self.director.instruct(r, counter)))
            .await
            .unwrap()
            .expect("an offer");
        c.install(&offer, None).await.unwrap();
        c.confirm().await.unwrap();
    }

    /// The bytes of the image the active slot holds.
    pub fn active_bytes(&self, c: &UpdateClient) -> Vec<u8> {
        match c.status().unwrap().active {
            Some(s) => self.slot_bytes(s),
            None => Vec::new(),
        }
    }
}

/// The refusal kind of an error, or a panic saying what came instead.
pub fn refusal<T: std::fmt::Debug>(r: Result<T, AgentError>) -> Refusal {
    match r {
        Err(AgentError::UpdateRefused { kind, detail }) => {
            eprintln!("refused ({kind}): {detail}");
            kind
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}
