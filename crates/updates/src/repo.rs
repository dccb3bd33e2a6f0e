//! The TUF image repository: TUF 1.0 metadata (root, targets, snapshot, timestamp) built and
//! signed with tough's editor, one terminating delegated targets role per device model (paths
//! `<model>/*`) signed by that model's release keys, root rotation and key revocation.
//!
//! Keys live in a medsec `KeySource` (encrypted files or PKCS#11) and sign through
//! [`TufKeySource`]; the repository directory only holds public metadata, target files and
//! `repo.json` (key references, options; no private key material).
//!
//! On-disk layout (serve `metadata/` and `targets/` as static files):
//! ```text
//! <dir>/repo.json                          key catalogue (keyid -> KeyRef) and options
//! <dir>/metadata/root.json                 the current root (a convenience copy)
//! <dir>/metadata/<N>.root.json             every root version, for clients walking the chain
//! <dir>/metadata/timestamp.json
//! <dir>/metadata/<N>.snapshot.json         (`snapshot.json` without consistent snapshots)
//! <dir>/metadata/<N>.targets.json
//! <dir>/metadata/<N>.<model>.json          one delegated role per device model
//! <dir>/targets/<model>/<SHA256>.<model>-<version>.bin   (TUF 5.7.3; without consistent
//!                                          snapshots `<model>/<model>-<version>.bin`)
//! ```
//!
//! Blocking: signing may talk to an HSM and files are written synchronously, so async callers
//! run these methods in `spawn_blocking`.

mod bridge;
mod fsio;

pub use bridge::{TufKeySource, tuf_key, tuf_keyid};
pub use fsio::resolve_served_file;

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use medsec_core::{DeviceModel, FirmwareVersion, KeyAlgorithm};
use medsec_keys::{KeyError, KeyRef, KeySource, Signer};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tough::editor::signed::SignedRole;
use tough::key_source::KeySource as ToughKeySource;
use tough::schema::decoded::{Decoded, Hex};
use tough::schema::{
    DelegatedRole, DelegatedTargets, Delegations, Hashes, KeyHolder, Metafile, PathPattern,
    PathSet, Role, RoleKeys, RoleType, Root, Signed, Snapshot, Target, Targets, Timestamp,
};

use crate::{ReleaseCustom, UpdatesError, target_name};

const SPEC_VERSION: &str = "1.0.0";
const STATE_FILE: &str = "repo.json";
const STATE_FORMAT: &str = "medsec-tuf-repo-v1";
/// Metadata directory under the repository directory.
pub const METADATA_DIR: &str = "metadata";
/// Target files directory under the repository directory.
pub const TARGETS_DIR: &str = "targets";
/// Names a model cannot take: its delegated role file would shadow a top-level role's.
const RESERVED_ROLE_NAMES: [&str; 4] = ["root", "targets", "snapshot", "timestamp"];

/// How long each role's metadata stays valid, in whole seconds (TUF clients such as
/// python-tuf refuse fractional-second expiries, so the type cannot express them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expiries {
    pub root_secs: u64,
    pub targets_secs: u64,
    /// The per-model delegated roles.
    pub releases_secs: u64,
    pub snapshot_secs: u64,
    /// Short, so a freeze attack (serving stale metadata) is noticed within it; the server
    /// re-signs it with [`Repository::refresh_timestamp`].
    pub timestamp_secs: u64,
}

const DAY: u64 = 86_400;

impl Default for Expiries {
    fn default() -> Self {
        Expiries {
            root_secs: 365 * DAY,
            targets_secs: 90 * DAY,
            releases_secs: 90 * DAY,
            snapshot_secs: 7 * DAY,
            timestamp_secs: DAY,
        }
    }
}

impl Expiries {
    fn check(&self) -> Result<(), UpdatesError> {
        let all = [
            self.root_secs,
            self.targets_secs,
            self.releases_secs,
            self.snapshot_secs,
            self.timestamp_secs,
        ];
        // Ten years bounds the arithmetic and keeps a typo from minting near-eternal metadata.
        if all.iter().any(|s| *s == 0 || *s > 3650 * DAY) {
            return Err(UpdatesError::invalid(
                "expiries",
                "every expiry must be between 1 second and 10 years",
            ));
        }
        Ok(())
    }
}

/// How a new repository is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoOptions {
    pub root_keys: u32,
    pub root_threshold: u32,
    pub targets_keys: u32,
    pub targets_threshold: u32,
    pub snapshot_keys: u32,
    pub timestamp_keys: u32,
    pub key_algorithm: KeyAlgorithm,
    pub expiries: Expiries,
    /// Version-prefixed metadata and hash-prefixed target files, so a client never mixes files
    /// from two repository states while the server updates them.
    pub consistent_snapshot: bool,
    /// Prefix of the key labels generated in the key source (`<prefix>-root-1`, ...); give each
    /// repository sharing a key source its own.
    pub label_prefix: String,
    /// How many versions of each non-root metadata file stay on disk for clients mid-update
    /// (root versions are all kept).
    pub keep_metadata_versions: u64,
    /// Allows a root signed by a single key. A single stolen root key then hands over the
    /// whole repository, hence the name.
    pub danger_single_root_key: bool,
}

impl Default for RepoOptions {
    fn default() -> Self {
        RepoOptions {
            root_keys: 3,
            root_threshold: 2,
            targets_keys: 1,
            targets_threshold: 1,
            snapshot_keys: 1,
            timestamp_keys: 1,
            key_algorithm: KeyAlgorithm::EcdsaP256,
            expiries: Expiries::default(),
            consistent_snapshot: true,
            label_prefix: "tuf".into(),
            keep_metadata_versions: 3,
            danger_single_root_key: false,
        }
    }
}

/// A role whose keys can be changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleRef {
    Root,
    Targets,
    Snapshot,
    Timestamp,
    /// A device model's delegated release role.
    Release(DeviceModel),
}

impl std::fmt::Display for RoleRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RoleRef::Root => f.write_str("root"),
            RoleRef::Targets => f.write_str("targets"),
            RoleRef::Snapshot => f.write_str("snapshot"),
            RoleRef::Timestamp => f.write_str("timestamp"),
            RoleRef::Release(m) => write!(f, "release role {m}"),
        }
    }
}

/// A firmware image to publish.
#[derive(Debug, Clone, Copy)]
pub enum Image<'a> {
    Bytes(&'a [u8]),
    Path(&'a Path),
}

/// One release to publish.
#[derive(Debug, Clone, Copy)]
pub struct NewRelease<'a> {
    pub model: &'a DeviceModel,
    pub version: &'a FirmwareVersion,
    /// Never below the model's highest published one.
    pub security_version: u64,
    /// Defaults to the model.
    pub hardware_id: Option<&'a str>,
    pub image: Image<'a>,
    /// The firmware version's SBOM; its SHA-256 goes into the target's custom metadata.
    pub sbom: Option<&'a [u8]>,
}

/// A release as the repository lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedRelease {
    /// The TUF target name, `<model>/<model>-<version>.bin`.
    pub target_name: String,
    pub length: u64,
    /// Lowercase hex.
    pub sha256: String,
    pub custom: ReleaseCustom,
    /// The file, relative to the repository directory.
    pub path: PathBuf,
}

/// What a key change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyChange {
    /// Hex key ids of the keys generated and added.
    pub added: Vec<String>,
    /// Hex key ids of the keys removed.
    pub removed: Vec<String>,
    /// The root version now current.
    pub root_version: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    key_ref: String,
}

/// `repo.json`: which key (reference) a key id is, and the options. The metadata itself is
/// the source of truth for which keys belong to which role.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    format: String,
    consistent_snapshot: bool,
    key_algorithm: KeyAlgorithm,
    label_prefix: String,
    expiries: Expiries,
    keep_metadata_versions: u64,
    root_version: u64,
    keys: BTreeMap<String, KeyEntry>,
    /// Next number for each label base, so a new key never reuses a label.
    label_counters: BTreeMap<String, u64>,
}

/// An open TUF image repository.
pub struct Repository {
    dir: PathBuf,
    keys: Arc<dyn KeySource>,
    state: State,
    signers: HashMap<String, Arc<dyn Signer>>,
    root: Signed<Root>,
    targets: Signed<Targets>,
    releases: BTreeMap<String, Signed<Targets>>,
    /// Highest security version published per model, so a publish need not re-read every
    /// release's custom metadata.
    highest_sv: BTreeMap<String, u64>,
    snapshot: Signed<Snapshot>,
    timestamp: Signed<Timestamp>,
    /// Held for the repository's lifetime: the CLI publishing and the server re-signing the
    /// timestamp must not interleave their writes.
    _lock: std::fs::File,
}

/// Takes the repository's exclusive lock, waiting up to a minute for another holder (the
/// server re-signing its timestamp, another `medsec` command) to finish.
fn lock(dir: &Path) -> Result<std::fs::File, UpdatesError> {
    let io = |e: std::io::Error| {
        UpdatesError::invalid("repository lock", format!("{}: {e}", dir.display()))
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".lock"))
        .map_err(io)?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match f.try_lock() {
            Ok(()) => return Ok(f),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(UpdatesError::Refused(format!(
                    "the repository in {} is busy (locked by another process for over a minute)",
                    dir.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
    }
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("dir", &self.dir)
            .field("root_version", &self.state.root_version)
            .finish_non_exhaustive()
    }
}

/// What one operation changed, written out by `commit`.
#[derive(Default)]
struct Pending {
    root: Option<SignedRole<Root>>,
    targets: Option<SignedRole<Targets>>,
    releases: Vec<(String, SignedRole<DelegatedTargets>)>,
    /// Re-sign the snapshot even if no targets role changed (its keys changed).
    snapshot: bool,
}

fn tough_err(what: &'static str) -> impl Fn(tough::error::Error) -> UpdatesError {
    move |e| UpdatesError::invalid(what, e.to_string())
}

fn nz(v: u64) -> Result<NonZeroU64, UpdatesError> {
    NonZeroU64::new(v).ok_or_else(|| UpdatesError::invalid("version", "zero"))
}

fn next_version(v: NonZeroU64) -> Result<NonZeroU64, UpdatesError> {
    v.checked_add(1)
        .ok_or_else(|| UpdatesError::invalid("version", "overflow"))
}

/// `now + secs`, truncated to whole seconds: tough would write the sub-second part of the
/// current time and python-tuf refuses such expiries.
fn expiry(secs: u64) -> Result<jiff::Timestamp, UpdatesError> {
    let now = jiff::Timestamp::now().as_second();
    let secs = i64::try_from(secs).map_err(|_| UpdatesError::invalid("expiry", "too large"))?;
    jiff::Timestamp::from_second(now.saturating_add(secs))
        .map_err(|e| UpdatesError::invalid("expiry", e.to_string()))
}

fn ids_of(root: &Root, rt: RoleType) -> Result<Vec<Decoded<Hex>>, UpdatesError> {
    root.roles
        .get(&rt)
        .map(|r| r.keyids.clone())
        .ok_or_else(|| UpdatesError::invalid("root", format!("no {rt} role")))
}

fn hex_id(id: &Decoded<Hex>) -> String {
    hex::encode(id.as_ref() as &[u8])
}

fn parse_keyid(s: &str) -> Result<Decoded<Hex>, UpdatesError> {
    let bytes = hex::decode(s).map_err(|e| UpdatesError::invalid("key id", e.to_string()))?;
    if bytes.len() != 32 {
        return Err(UpdatesError::invalid("key id", "expected 64 hex digits"));
    }
    Ok(bytes.into())
}

fn check_model_name(model: &DeviceModel) -> Result<(), UpdatesError> {
    if RESERVED_ROLE_NAMES.contains(&model.as_str()) {
        return Err(UpdatesError::invalid(
            "device model",
            format!("{model} is a top-level TUF role name"),
        ));
    }
    Ok(())
}

fn role_type(role: &RoleRef) -> Option<RoleType> {
    match role {
        RoleRef::Root => Some(RoleType::Root),
        RoleRef::Targets => Some(RoleType::Targets),
        RoleRef::Snapshot => Some(RoleType::Snapshot),
        RoleRef::Timestamp => Some(RoleType::Timestamp),
        RoleRef::Release(_) => None,
    }
}

fn sign_role<T: Role + Serialize>(
    role: T,
    holder: &KeyHolder,
    keys: &[Box<dyn ToughKeySource>],
) -> Result<SignedRole<T>, UpdatesError> {
    let rng = SystemRandom::new();
    // Our key sources and signers never await anything, so no runtime is needed.
    let signed = futures_executor::block_on(SignedRole::new(role, holder, keys, &rng))
        .map_err(tough_err("signing"))?;
    fsio::check_whole_second_expiry(signed.buffer())?;
    Ok(signed)
}

fn release_of(name: &str, t: &Target) -> Result<PublishedRelease, UpdatesError> {
    let custom: ReleaseCustom = serde_json::from_value(serde_json::Value::Object(
        t.custom.clone().into_iter().collect(),
    ))
    .map_err(|e| UpdatesError::invalid("target custom metadata", format!("{name}: {e}")))?;
    let sha256 = hex::encode(&t.hashes.sha256 as &[u8]);
    Ok(PublishedRelease {
        target_name: name.to_owned(),
        length: t.length,
        path: PathBuf::new(), // filled in by the caller, which knows the layout
        sha256,
        custom,
    })
}

impl Repository {
    /// Creates a repository in `dir` (which must not hold one), generating its top-level keys
    /// in `keys`.
    pub fn init(
        dir: impl Into<PathBuf>,
        keys: Arc<dyn KeySource>,
        opts: RepoOptions,
    ) -> Result<Self, UpdatesError> {
        let dir = dir.into();
        opts.expiries.check()?;
        let counts = [
            (opts.root_keys, opts.root_threshold, "root"),
            (opts.targets_keys, opts.targets_threshold, "targets"),
            (opts.snapshot_keys, 1, "snapshot"),
            (opts.timestamp_keys, 1, "timestamp"),
        ];
        for (n, t, what) in counts {
            if t == 0 || t > n || n > 16 {
                return Err(UpdatesError::invalid(
                    "repository options",
                    format!("{what}: threshold {t} of {n} keys (1 <= threshold <= keys <= 16)"),
                ));
            }
        }
        if opts.root_threshold < 2 && !opts.danger_single_root_key {
            return Err(UpdatesError::Refused(
                "a root threshold below 2 lets one stolen key take over the repository \
                 (set danger_single_root_key to allow it)"
                    .into(),
            ));
        }
        if !matches!(
            opts.key_algorithm,
            KeyAlgorithm::EcdsaP256 | KeyAlgorithm::Ed25519
        ) {
            return Err(UpdatesError::invalid(
                "repository options",
                "TUF keys are ECDSA P-256 or Ed25519",
            ));
        }
        if opts.keep_metadata_versions == 0 {
            return Err(UpdatesError::invalid(
                "repository options",
                "keep at least the current metadata version",
            ));
        }
        if dir.join(STATE_FILE).exists() {
            return Err(UpdatesError::Refused(format!(
                "{} already holds a TUF repository",
                dir.display()
            )));
        }
        let lock_file = lock(&dir)?;
        if dir.join(STATE_FILE).exists() {
            return Err(UpdatesError::Refused(format!(
                "{} already holds a TUF repository",
                dir.display()
            )));
        }
        fsio::create_dir(&dir.join(METADATA_DIR))?;
        fsio::create_dir(&dir.join(TARGETS_DIR))?;

        let mut repo = Repository {
            _lock: lock_file,
            dir,
            keys,
            state: State {
                format: STATE_FORMAT.into(),
                consistent_snapshot: opts.consistent_snapshot,
                key_algorithm: opts.key_algorithm,
                label_prefix: opts.label_prefix.clone(),
                expiries: opts.expiries,
                keep_metadata_versions: opts.keep_metadata_versions,
                root_version: 0,
                keys: BTreeMap::new(),
                label_counters: BTreeMap::new(),
            },
            signers: HashMap::new(),
            // Placeholders until the first commit below.
            root: Signed {
                signed: Root {
                    spec_version: SPEC_VERSION.into(),
                    consistent_snapshot: opts.consistent_snapshot,
                    version: nz(1)?,
                    expires: expiry(opts.expiries.root_secs)?,
                    keys: HashMap::new(),
                    roles: HashMap::new(),
                    _extra: HashMap::new(),
                },
                signatures: Vec::new(),
            },
            targets: Signed {
                signed: Targets::new(SPEC_VERSION.into(), nz(1)?, expiry(1)?),
                signatures: Vec::new(),
            },
            releases: BTreeMap::new(),
            highest_sv: BTreeMap::new(),
            snapshot: Signed {
                signed: Snapshot::new(SPEC_VERSION.into(), nz(1)?, expiry(1)?),
                signatures: Vec::new(),
            },
            timestamp: Signed {
                signed: Timestamp::new(SPEC_VERSION.into(), nz(1)?, expiry(1)?),
                signatures: Vec::new(),
            },
        };
        // Built with version 0 so that the first snapshot and timestamp get version 1.
        let mut root = repo.root.signed.clone();
        for (role, n, t) in [
            (RoleType::Root, opts.root_keys, opts.root_threshold),
            (RoleType::Targets, opts.targets_keys, opts.targets_threshold),
            (RoleType::Snapshot, opts.snapshot_keys, 1),
            (RoleType::Timestamp, opts.timestamp_keys, 1),
        ] {
            let mut keyids = Vec::new();
            for _ in 0..n {
                let (id, key) = repo.generate_key(&role.to_string())?;
                root.keys.insert(id.clone(), key);
                keyids.push(id);
            }
            root.roles.insert(
                role,
                RoleKeys {
                    keyids,
                    threshold: nz(u64::from(t))?,
                    _extra: HashMap::new(),
                },
            );
        }
        repo.save_state()?;
        let root_keys = repo.sources(ids_of(&root, RoleType::Root)?.iter())?;
        let signed_root = sign_role(root.clone(), &KeyHolder::Root(root.clone()), &root_keys)?;
        root.verify_role(signed_root.signed())
            .map_err(|e| UpdatesError::Signature(format!("new root: {e}")))?;
        repo.root = signed_root.signed().clone();

        let mut targets = Targets::new(
            SPEC_VERSION.into(),
            nz(1)?,
            expiry(opts.expiries.targets_secs)?,
        );
        targets.delegations = Some(Delegations::new());
        let signed_targets = repo.sign_targets(targets)?;
        repo.snapshot.signed.version = nz(1)?; // bumped by commit from a virtual version 0
        repo.timestamp.signed.version = nz(1)?;
        repo.commit_init(signed_root, signed_targets)?;
        Ok(repo)
    }

    /// Opens an existing repository; keys are opened in `keys` when first needed.
    pub fn open(dir: impl Into<PathBuf>, keys: Arc<dyn KeySource>) -> Result<Self, UpdatesError> {
        let dir = dir.into();
        let lock_file = lock(&dir)?;
        let state: State = fsio::read_json(&dir.join(STATE_FILE))?;
        if state.format != STATE_FORMAT {
            return Err(UpdatesError::invalid(
                "repository state",
                format!("unknown format {:?}", state.format),
            ));
        }
        let md = dir.join(METADATA_DIR);
        let root: Signed<Root> =
            fsio::read_json(&md.join(format!("{}.root.json", state.root_version)))?;
        root.signed
            .verify_role(&root)
            .map_err(|e| UpdatesError::Signature(format!("root: {e}")))?;
        let timestamp: Signed<Timestamp> = fsio::read_json(&md.join("timestamp.json"))?;
        root.signed
            .verify_role(&timestamp)
            .map_err(|e| UpdatesError::Signature(format!("timestamp: {e}")))?;
        let cs = state.consistent_snapshot;
        let snap_ver = timestamp
            .signed
            .meta
            .get("snapshot.json")
            .map(|m| m.version)
            .ok_or_else(|| UpdatesError::invalid("timestamp", "no snapshot.json entry"))?;
        let snapshot: Signed<Snapshot> =
            fsio::read_json(&md.join(fsio::role_file(cs, snap_ver, "snapshot")))?;
        root.signed
            .verify_role(&snapshot)
            .map_err(|e| UpdatesError::Signature(format!("snapshot: {e}")))?;
        let meta_version = |name: &str| {
            snapshot
                .signed
                .meta
                .get(&format!("{name}.json"))
                .map(|m| m.version)
                .ok_or_else(|| UpdatesError::invalid("snapshot", format!("no {name}.json entry")))
        };
        let targets: Signed<Targets> =
            fsio::read_json(&md.join(fsio::role_file(cs, meta_version("targets")?, "targets")))?;
        root.signed
            .verify_role(&targets)
            .map_err(|e| UpdatesError::Signature(format!("targets: {e}")))?;
        let mut releases = BTreeMap::new();
        if let Some(delegations) = &targets.signed.delegations {
            for role in &delegations.roles {
                let t: Signed<Targets> = fsio::read_json(&md.join(fsio::role_file(
                    cs,
                    meta_version(&role.name)?,
                    &role.name,
                )))?;
                delegations
                    .verify_role(&t, &role.name)
                    .map_err(|e| UpdatesError::Signature(format!("{}: {e}", role.name)))?;
                releases.insert(role.name.clone(), t);
            }
        }
        let mut highest_sv = BTreeMap::new();
        for (model, t) in &releases {
            let mut highest = 0;
            for (n, target) in &t.signed.targets {
                highest = highest.max(release_of(n.raw(), target)?.custom.security_version);
            }
            highest_sv.insert(model.clone(), highest);
        }
        Ok(Repository {
            _lock: lock_file,
            dir,
            keys,
            state,
            signers: HashMap::new(),
            root,
            targets,
            releases,
            highest_sv,
            snapshot,
            timestamp,
        })
    }

    /// The repository directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory to serve as the TUF metadata base URL.
    pub fn metadata_dir(&self) -> PathBuf {
        self.dir.join(METADATA_DIR)
    }

    /// The directory to serve as the TUF targets base URL.
    pub fn targets_dir(&self) -> PathBuf {
        self.dir.join(TARGETS_DIR)
    }

    /// The current root version.
    pub fn root_version(&self) -> u64 {
        self.root.signed.version.get()
    }

    /// The bytes of root version `version`, e.g. `1` to provision a device's trust anchor
    /// (clients walk the chain from there).
    pub fn root_json(&self, version: u64) -> Result<Vec<u8>, UpdatesError> {
        fsio::read(&self.metadata_dir().join(format!("{version}.root.json")))
    }

    /// Hex key ids of a role's keys, as the current metadata lists them.
    pub fn role_keyids(&self, role: &RoleRef) -> Result<Vec<String>, UpdatesError> {
        Ok(self.role_keys(role)?.keyids.iter().map(hex_id).collect())
    }

    /// The expiries new metadata is signed with.
    pub fn expiries(&self) -> Expiries {
        self.state.expiries
    }

    /// Changes the expiries used from now on (e.g. a shorter timestamp), persisted.
    pub fn set_expiries(&mut self, expiries: Expiries) -> Result<(), UpdatesError> {
        expiries.check()?;
        self.state.expiries = expiries;
        self.save_state()
    }

    /// The device models with a release role.
    pub fn models(&self) -> Vec<String> {
        self.releases.keys().cloned().collect()
    }

    /// Delegates `<model>/*` to a new terminating role named after the model, signed by
    /// `threshold` of `release_keys` keys generated for it.
    pub fn add_model(
        &mut self,
        model: &DeviceModel,
        release_keys: u32,
        threshold: u32,
    ) -> Result<Vec<String>, UpdatesError> {
        check_model_name(model)?;
        if self.releases.contains_key(model.as_str()) {
            return Err(UpdatesError::Refused(format!(
                "device model {model} already has a release role"
            )));
        }
        if threshold == 0 || threshold > release_keys || release_keys > 16 {
            return Err(UpdatesError::invalid(
                "release keys",
                format!("threshold {threshold} of {release_keys} keys"),
            ));
        }
        let mut targets = self.targets.signed.clone();
        let mut delegations = targets.delegations.take().unwrap_or_default();
        let mut keyids = Vec::new();
        for _ in 0..release_keys {
            let (id, key) = self.generate_key(&format!("release-{model}"))?;
            delegations.keys.insert(id.clone(), key);
            keyids.push(id);
        }
        self.save_state()?;
        let pattern = PathPattern::new(format!("{model}/*"))
            .map_err(|e| UpdatesError::invalid("path pattern", e.to_string()))?;
        delegations.roles.push(DelegatedRole {
            name: model.to_string(),
            keyids: keyids.clone(),
            threshold: nz(u64::from(threshold))?,
            paths: PathSet::Paths(vec![pattern]),
            // Nothing else may claim `<model>/*`: the search stops at this role.
            terminating: true,
            targets: None,
        });
        targets.delegations = Some(delegations);
        targets.version = next_version(targets.version)?;
        targets.expires = expiry(self.state.expiries.targets_secs)?;
        let signed_targets = self.sign_targets(targets)?;
        let release = Targets::new(
            SPEC_VERSION.into(),
            nz(1)?,
            expiry(self.state.expiries.releases_secs)?,
        );
        let signed_release = self.sign_release(model.as_str(), release, signed_targets.signed())?;
        self.commit(Pending {
            targets: Some(signed_targets),
            releases: vec![(model.to_string(), signed_release)],
            ..Pending::default()
        })?;
        Ok(keyids.iter().map(hex_id).collect())
    }

    /// Publishes a release of a model. Republishing an identical release is a no-op; a
    /// different image under an existing version, a security version below the model's
    /// highest, or an unknown model is refused.
    pub fn publish(&mut self, r: &NewRelease<'_>) -> Result<PublishedRelease, UpdatesError> {
        let mut out = self.publish_many(std::slice::from_ref(r))?;
        out.pop()
            .ok_or_else(|| UpdatesError::invalid("publish", "no release"))
    }

    /// Publishes several releases with one signature per touched model role plus one
    /// snapshot and timestamp (instead of one of each per release). All or nothing: any
    /// refusal publishes none of them.
    pub fn publish_many(
        &mut self,
        releases: &[NewRelease<'_>],
    ) -> Result<Vec<PublishedRelease>, UpdatesError> {
        // Per model: the role's targets as this batch changes them, and its highest
        // security version.
        let mut staged: BTreeMap<String, (Targets, u64, bool)> = BTreeMap::new();
        let mut out = Vec::new();
        let mut files = Vec::new();
        for r in releases {
            let model = r.model.as_str();
            if !staged.contains_key(model) {
                let current = self
                    .releases
                    .get(model)
                    .ok_or_else(|| UpdatesError::NotFound {
                        what: "device model",
                        key: model.to_owned(),
                    })?;
                let highest = self.highest_sv.get(model).copied().unwrap_or(0);
                staged.insert(model.to_owned(), (current.signed.clone(), highest, false));
            }
            let Some((role, highest, changed)) = staged.get_mut(model) else {
                continue;
            };
            let hardware_id = match r.hardware_id {
                Some(h) => DeviceModel::parse(h)
                    .map_err(|e| UpdatesError::invalid("hardware id", e.to_string()))?
                    .to_string(),
                None => model.to_owned(),
            };
            let name = target_name(r.model, r.version);
            let (sha256, length) = match r.image {
                Image::Bytes(b) => (Sha256::digest(b).to_vec(), b.len() as u64),
                Image::Path(p) => fsio::hash_file(p)?,
            };
            if length == 0 {
                return Err(UpdatesError::invalid("image", "empty"));
            }
            let custom = ReleaseCustom {
                model: model.to_owned(),
                hardware_id,
                version: r.version.to_string(),
                security_version: r.security_version,
                sbom_sha256: r.sbom.map(|s| hex::encode(Sha256::digest(s))),
            };
            let tname = tough::TargetName::new(name.clone())
                .map_err(|e| UpdatesError::invalid("target name", e.to_string()))?;
            if let Some(t) = role.targets.get(&tname) {
                let rel = release_of(&name, t)?;
                if rel.sha256 == hex::encode(&sha256)
                    && rel.length == length
                    && rel.custom == custom
                {
                    out.push(self.with_path(rel));
                    continue;
                }
                return Err(UpdatesError::Refused(format!(
                    "{name} is already published with different content; publish a new version"
                )));
            }
            if r.security_version < *highest {
                return Err(UpdatesError::Refused(format!(
                    "security version {} is below {highest}, the highest of {model}: \
                     devices would refuse it as a rollback",
                    r.security_version
                )));
            }
            *highest = r.security_version;
            let custom_map = match serde_json::to_value(&custom) {
                Ok(serde_json::Value::Object(m)) => m.into_iter().collect(),
                _ => return Err(UpdatesError::invalid("custom", "not a JSON object")),
            };
            role.targets.insert(
                tname,
                Target {
                    length,
                    hashes: Hashes {
                        sha256: sha256.clone().into(),
                        _extra: HashMap::new(),
                    },
                    custom: custom_map,
                    _extra: HashMap::new(),
                },
            );
            *changed = true;
            let rel_path = fsio::target_path(self.state.consistent_snapshot, &name, &sha256);
            files.push((rel_path.clone(), r.image));
            out.push(PublishedRelease {
                target_name: name,
                length,
                sha256: hex::encode(&sha256),
                custom,
                path: rel_path,
            });
        }
        if !staged.values().any(|(_, _, changed)| *changed) {
            return Ok(out);
        }
        // The images go on disk before any metadata names them.
        for (rel_path, image) in files {
            let src = match image {
                Image::Bytes(b) => fsio::Staged::Bytes(b),
                Image::Path(p) => fsio::Staged::Path(p),
            };
            fsio::write_target(&self.dir.join(rel_path), src)?;
        }
        let targets = self.targets.clone();
        let mut p = Pending::default();
        let mut new_highest = Vec::new();
        for (model, (mut role, highest, changed)) in staged {
            if !changed {
                continue;
            }
            new_highest.push((model.clone(), highest));
            role.version = next_version(role.version)?;
            role.expires = expiry(self.state.expiries.releases_secs)?;
            let signed = self.sign_release(&model, role, &targets)?;
            p.releases.push((model, signed));
        }
        self.commit(p)?;
        self.highest_sv.extend(new_highest);
        Ok(out)
    }

    /// A model's releases, by security version then version.
    pub fn releases(&self, model: &DeviceModel) -> Result<Vec<PublishedRelease>, UpdatesError> {
        let current = self
            .releases
            .get(model.as_str())
            .ok_or_else(|| UpdatesError::NotFound {
                what: "device model",
                key: model.to_string(),
            })?;
        let mut out = current
            .signed
            .targets
            .iter()
            .map(|(n, t)| release_of(n.raw(), t).map(|r| self.with_path(r)))
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| {
            (a.custom.security_version, &a.custom.version)
                .cmp(&(b.custom.security_version, &b.custom.version))
        });
        Ok(out)
    }

    /// Re-signs the timestamp with a fresh short expiry; run it well within
    /// `Expiries::timestamp_secs` so clients never see an expired one.
    pub fn refresh_timestamp(&mut self) -> Result<u64, UpdatesError> {
        self.commit(Pending::default())?;
        Ok(self.timestamp.signed.version.get())
    }

    /// Re-signs every role whose metadata expires within `within_secs` (the root only if its
    /// keys are available), then the snapshot and timestamp.
    pub fn refresh_expiring(&mut self, within_secs: u64) -> Result<(), UpdatesError> {
        let horizon = expiry(within_secs)?;
        let mut p = Pending {
            snapshot: self.snapshot.signed.expires <= horizon,
            ..Pending::default()
        };
        if self.root.signed.expires <= horizon {
            let mut root = self.root.signed.clone();
            root.version = next_version(root.version)?;
            root.expires = expiry(self.state.expiries.root_secs)?;
            p.root = Some(self.sign_root(root)?);
        }
        let mut targets = self.targets.clone();
        if self.targets.signed.expires <= horizon {
            let mut t = self.targets.signed.clone();
            t.version = next_version(t.version)?;
            t.expires = expiry(self.state.expiries.targets_secs)?;
            let signed = self.sign_targets(t)?;
            targets = signed.signed().clone();
            p.targets = Some(signed);
        }
        let expiring: Vec<(String, Targets)> = self
            .releases
            .iter()
            .filter(|(_, t)| t.signed.expires <= horizon)
            .map(|(n, t)| (n.clone(), t.signed.clone()))
            .collect();
        for (name, mut t) in expiring {
            t.version = next_version(t.version)?;
            t.expires = expiry(self.state.expiries.releases_secs)?;
            let signed = self.sign_release(&name, t, &targets)?;
            p.releases.push((name, signed));
        }
        self.commit(p)
    }

    /// Root key rotation: generates `add` new root keys, retires the keys `retire` (hex key
    /// ids) and sets the threshold (default: unchanged). The new root version is signed by a
    /// threshold of the old root's keys and of the new one's, and every root version stays on
    /// disk so clients can walk the chain.
    pub fn rotate_root(
        &mut self,
        add: u32,
        retire: &[String],
        threshold: Option<u32>,
    ) -> Result<KeyChange, UpdatesError> {
        self.change_keys(&RoleRef::Root, add, retire, threshold)
    }

    /// Revokes a key of a role: removes it from the metadata that delegates to it, re-signs
    /// that metadata and the role's own with the remaining keys, and destroys the key in its
    /// source. Refused if fewer keys than the threshold would remain (add one first).
    pub fn revoke_key(&mut self, role: &RoleRef, keyid: &str) -> Result<KeyChange, UpdatesError> {
        self.change_keys(role, 0, &[keyid.to_owned()], None)
    }

    /// Generates a new key for a role and adds it (e.g. before revoking one).
    pub fn add_key(&mut self, role: &RoleRef) -> Result<KeyChange, UpdatesError> {
        self.change_keys(role, 1, &[], None)
    }

    /// The general key change behind rotation, revocation and addition.
    pub fn change_keys(
        &mut self,
        role: &RoleRef,
        add: u32,
        remove: &[String],
        threshold: Option<u32>,
    ) -> Result<KeyChange, UpdatesError> {
        let current = self.role_keys(role)?;
        let remove_ids = remove
            .iter()
            .map(|s| parse_keyid(s))
            .collect::<Result<Vec<_>, _>>()?;
        for id in &remove_ids {
            if !current.keyids.contains(id) {
                return Err(UpdatesError::NotFound {
                    what: "key of the role",
                    key: format!("{role}: {}", hex_id(id)),
                });
            }
        }
        let mut keyids: Vec<Decoded<Hex>> = current
            .keyids
            .iter()
            .filter(|k| !remove_ids.contains(k))
            .cloned()
            .collect();
        let threshold = match threshold {
            Some(0) => return Err(UpdatesError::invalid("threshold", "zero")),
            Some(t) => u64::from(t),
            None => current.threshold.get(),
        };
        let remaining = keyids.len() as u64 + u64::from(add);
        if threshold > remaining || add > 16 || remaining > 16 {
            return Err(UpdatesError::Refused(format!(
                "{role} would keep {remaining} keys for a threshold of {threshold}; add keys first"
            )));
        }
        if *role == RoleRef::Root && threshold < 2 && current.threshold.get() >= 2 {
            return Err(UpdatesError::Refused(
                "lowering the root threshold below 2 lets one stolen key take over the repository"
                    .into(),
            ));
        }
        let label_base = match role {
            RoleRef::Release(m) => format!("release-{m}"),
            other => other.to_string(),
        };
        let mut new_keys = Vec::new();
        for _ in 0..add {
            let (id, key) = self.generate_key(&label_base)?;
            keyids.push(id.clone());
            new_keys.push((id, key));
        }
        self.save_state()?;
        let mut p = Pending::default();
        match role {
            RoleRef::Release(model) => {
                let mut targets = self.targets.signed.clone();
                let delegations = targets
                    .delegations
                    .as_mut()
                    .ok_or_else(|| UpdatesError::invalid("targets", "no delegations"))?;
                for (id, key) in &new_keys {
                    delegations.keys.insert(id.clone(), key.clone());
                }
                let r = delegations
                    .roles
                    .iter_mut()
                    .find(|r| r.name == model.as_str())
                    .ok_or_else(|| UpdatesError::NotFound {
                        what: "device model",
                        key: model.to_string(),
                    })?;
                r.keyids = keyids;
                r.threshold = nz(threshold)?;
                let still_used: Vec<Decoded<Hex>> = delegations
                    .roles
                    .iter()
                    .flat_map(|r| r.keyids.iter().cloned())
                    .collect();
                delegations.keys.retain(|k, _| still_used.contains(k));
                targets.version = next_version(targets.version)?;
                targets.expires = expiry(self.state.expiries.targets_secs)?;
                let signed_targets = self.sign_targets(targets)?;
                // The delegated role is re-signed by the remaining keys, so no signature by
                // the revoked key is left in what clients fetch.
                let release = self
                    .releases
                    .get(model.as_str())
                    .map(|t| t.signed.clone())
                    .ok_or_else(|| UpdatesError::NotFound {
                        what: "device model",
                        key: model.to_string(),
                    })?;
                let mut release = release;
                release.version = next_version(release.version)?;
                release.expires = expiry(self.state.expiries.releases_secs)?;
                let signed_release =
                    self.sign_release(model.as_str(), release, signed_targets.signed())?;
                p.targets = Some(signed_targets);
                p.releases.push((model.to_string(), signed_release));
            }
            other => {
                let rt = role_type(other).ok_or_else(|| UpdatesError::invalid("role", "?"))?;
                let mut root = self.root.signed.clone();
                for (id, key) in &new_keys {
                    root.keys.insert(id.clone(), key.clone());
                }
                let rk = root
                    .roles
                    .get_mut(&rt)
                    .ok_or_else(|| UpdatesError::invalid("root", format!("no {rt} role")))?;
                rk.keyids = keyids;
                rk.threshold = nz(threshold)?;
                let still_used: Vec<Decoded<Hex>> = root
                    .roles
                    .values()
                    .flat_map(|r| r.keyids.iter().cloned())
                    .collect();
                root.keys.retain(|k, _| still_used.contains(k));
                root.version = next_version(root.version)?;
                root.expires = expiry(self.state.expiries.root_secs)?;
                let signed_root = self.sign_root(root.clone())?;
                // Sign the role's metadata under the new root's keys.
                let prev_root = std::mem::replace(&mut self.root, signed_root.signed().clone());
                let res = (|| -> Result<(), UpdatesError> {
                    match rt {
                        RoleType::Targets => {
                            let mut t = self.targets.signed.clone();
                            t.version = next_version(t.version)?;
                            t.expires = expiry(self.state.expiries.targets_secs)?;
                            p.targets = Some(self.sign_targets(t)?);
                        }
                        RoleType::Snapshot => p.snapshot = true,
                        _ => {}
                    }
                    Ok(())
                })();
                self.root = prev_root;
                res?;
                p.root = Some(signed_root);
            }
        }
        self.commit(p)?;
        // Revoked keys are destroyed in their source: nothing should sign with them again.
        for id in &remove_ids {
            let hid = hex_id(id);
            if let Some(entry) = self.state.keys.remove(&hid) {
                self.signers.remove(&entry.key_ref);
                if let Ok(kr) = entry.key_ref.parse::<KeyRef>() {
                    match self.keys.destroy(&kr) {
                        Ok(()) | Err(KeyError::NotFound { .. }) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        self.save_state()?;
        Ok(KeyChange {
            added: new_keys.iter().map(|(id, _)| hex_id(id)).collect(),
            removed: remove.to_vec(),
            root_version: self.root_version(),
        })
    }

    // ---- internals ----

    fn role_keys(&self, role: &RoleRef) -> Result<RoleKeys, UpdatesError> {
        match role {
            RoleRef::Release(model) => {
                let d = self
                    .targets
                    .signed
                    .delegations
                    .as_ref()
                    .and_then(|d| d.roles.iter().find(|r| r.name == model.as_str()))
                    .ok_or_else(|| UpdatesError::NotFound {
                        what: "device model",
                        key: model.to_string(),
                    })?;
                Ok(RoleKeys {
                    keyids: d.keyids.clone(),
                    threshold: d.threshold,
                    _extra: HashMap::new(),
                })
            }
            other => {
                let rt = role_type(other).ok_or_else(|| UpdatesError::invalid("role", "?"))?;
                self.root
                    .signed
                    .roles
                    .get(&rt)
                    .cloned()
                    .ok_or_else(|| UpdatesError::invalid("root", format!("no {rt} role")))
            }
        }
    }

    /// Generates a key labelled `<prefix>-<base>-<n>` and records it in the catalogue (the
    /// caller saves the state before any metadata names the key).
    fn generate_key(
        &mut self,
        base: &str,
    ) -> Result<(Decoded<Hex>, tough::schema::key::Key), UpdatesError> {
        let counter = self
            .state
            .label_counters
            .entry(base.to_owned())
            .or_insert(1);
        // A label left behind by an interrupted operation is skipped, never overwritten.
        for _ in 0..64 {
            let label = format!("{}-{base}-{counter}", self.state.label_prefix);
            *counter += 1;
            match self.keys.generate(&label, self.state.key_algorithm) {
                Ok(signer) => {
                    let signer: Arc<dyn Signer> = Arc::from(signer);
                    let key = tuf_key(&*signer)?;
                    let id = tuf_keyid(&*signer)?;
                    let key_ref = signer.key_ref().to_string();
                    self.state.keys.insert(
                        hex_id(&id),
                        KeyEntry {
                            key_ref: key_ref.clone(),
                        },
                    );
                    self.signers.insert(key_ref, signer);
                    return Ok((id, key));
                }
                Err(KeyError::AlreadyExists { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(UpdatesError::Refused(format!(
            "no free key label for {base} in the key source"
        )))
    }

    /// Opened signers for the given key ids (those in the catalogue), as tough key sources.
    fn sources<'a>(
        &mut self,
        keyids: impl Iterator<Item = &'a Decoded<Hex>>,
    ) -> Result<Vec<Box<dyn ToughKeySource>>, UpdatesError> {
        let mut out: Vec<Box<dyn ToughKeySource>> = Vec::new();
        for id in keyids {
            let Some(entry) = self.state.keys.get(&hex_id(id)) else {
                continue;
            };
            let signer = match self.signers.get(&entry.key_ref) {
                Some(s) => s.clone(),
                None => {
                    let kr: KeyRef = entry.key_ref.parse()?;
                    let s: Arc<dyn Signer> = Arc::from(self.keys.load(&kr)?);
                    self.signers.insert(entry.key_ref.clone(), s.clone());
                    s
                }
            };
            out.push(Box::new(TufKeySource::new(signer)?));
        }
        Ok(out)
    }

    /// Signs a new root with the keys of both the current root and the new one, and checks
    /// that each one's threshold is met (tough does not check it for the root).
    fn sign_root(&mut self, root: Root) -> Result<SignedRole<Root>, UpdatesError> {
        let old = self.root.signed.clone();
        let mut ids: Vec<Decoded<Hex>> = ids_of(&root, RoleType::Root)?;
        for id in &ids_of(&old, RoleType::Root).unwrap_or_default() {
            if !ids.contains(id) {
                ids.push(id.clone());
            }
        }
        let keys = self.sources(ids.iter())?;
        let new_signed = sign_role(root.clone(), &KeyHolder::Root(root.clone()), &keys)?;
        let mut signed = new_signed;
        if old.roles.contains_key(&RoleType::Root) {
            let by_old = sign_role(root.clone(), &KeyHolder::Root(old.clone()), &keys)?;
            signed = signed
                .add_old_signatures(by_old.signed().signatures.clone())
                .map_err(tough_err("root"))?;
            old.verify_role(signed.signed()).map_err(|e| {
                UpdatesError::Signature(format!("new root lacks the old root's threshold: {e}"))
            })?;
        }
        root.verify_role(signed.signed()).map_err(|e| {
            UpdatesError::Signature(format!("new root lacks its own threshold: {e}"))
        })?;
        fsio::check_whole_second_expiry(signed.buffer())?;
        Ok(signed)
    }

    fn sign_targets(&mut self, targets: Targets) -> Result<SignedRole<Targets>, UpdatesError> {
        let ids = ids_of(&self.root.signed, RoleType::Targets)?;
        let keys = self.sources(ids.iter())?;
        let holder = KeyHolder::Root(self.root.signed.clone());
        // tough refuses to sign a non-root role below its threshold.
        sign_role(targets, &holder, &keys)
    }

    fn sign_release(
        &mut self,
        model: &str,
        release: Targets,
        parent: &Signed<Targets>,
    ) -> Result<SignedRole<DelegatedTargets>, UpdatesError> {
        let delegations = parent
            .signed
            .delegations
            .clone()
            .ok_or_else(|| UpdatesError::invalid("targets", "no delegations"))?;
        let ids = delegations
            .roles
            .iter()
            .find(|r| r.name == model)
            .map(|r| r.keyids.clone())
            .ok_or_else(|| UpdatesError::NotFound {
                what: "device model",
                key: model.to_owned(),
            })?;
        let keys = self.sources(ids.iter())?;
        let role = DelegatedTargets {
            name: model.to_owned(),
            targets: release,
        };
        let holder = KeyHolder::Delegations(delegations.clone());
        // tough refuses to sign a non-root role below its threshold.
        sign_role(role, &holder, &keys)
    }

    fn with_path(&self, mut r: PublishedRelease) -> PublishedRelease {
        let sha = hex::decode(&r.sha256).unwrap_or_default();
        r.path = fsio::target_path(self.state.consistent_snapshot, &r.target_name, &sha);
        r
    }

    fn save_state(&self) -> Result<(), UpdatesError> {
        fsio::write_json_atomic(&self.dir.join(STATE_FILE), &self.state)
    }

    fn commit_init(
        &mut self,
        root: SignedRole<Root>,
        targets: SignedRole<Targets>,
    ) -> Result<(), UpdatesError> {
        // The first snapshot and timestamp are version 1: start from a virtual version 0.
        self.snapshot.signed.version = nz(1)?;
        self.timestamp.signed.version = nz(1)?;
        self.commit_inner(
            Pending {
                root: Some(root),
                targets: Some(targets),
                ..Pending::default()
            },
            true,
        )
    }

    fn commit(&mut self, p: Pending) -> Result<(), UpdatesError> {
        self.commit_inner(p, false)
    }

    /// Writes what changed, then a new snapshot (if any targets role changed) and timestamp.
    /// Order matters to clients polling meanwhile: everything a timestamp points to is on
    /// disk before the timestamp that points to it.
    fn commit_inner(&mut self, p: Pending, first: bool) -> Result<(), UpdatesError> {
        let cs = self.state.consistent_snapshot;
        let md = self.metadata_dir();
        let root_signed = p.root.as_ref().map(|r| r.signed().clone());
        let root_for_signing = root_signed
            .as_ref()
            .map(|r| r.signed.clone())
            .unwrap_or_else(|| self.root.signed.clone());

        let mut meta = self.snapshot.signed.meta.clone();
        let mut snapshot_changed = p.snapshot || first;
        for (name, r) in &p.releases {
            fsio::write_atomic(&md.join(r.signed().signed.filename(cs)), r.buffer())?;
            meta.insert(format!("{name}.json"), metafile(r));
            snapshot_changed = true;
        }
        if let Some(t) = &p.targets {
            fsio::write_atomic(&md.join(t.signed().signed.filename(cs)), t.buffer())?;
            meta.insert("targets.json".into(), metafile(t));
            snapshot_changed = true;
        }
        let holder = KeyHolder::Root(root_for_signing.clone());
        let mut new_snapshot = None;
        if snapshot_changed {
            let mut s = Snapshot::new(
                SPEC_VERSION.into(),
                if first {
                    nz(1)?
                } else {
                    next_version(self.snapshot.signed.version)?
                },
                expiry(self.state.expiries.snapshot_secs)?,
            );
            s.meta = meta;
            let ids = ids_of(&root_for_signing, RoleType::Snapshot)?;
            let keys = self.sources(ids.iter())?;
            let signed = sign_role(s, &holder, &keys)?;
            fsio::write_atomic(
                &md.join(signed.signed().signed.filename(cs)),
                signed.buffer(),
            )?;
            new_snapshot = Some(signed);
        }
        if let Some(r) = &p.root {
            let v = r.signed().signed.version.get();
            fsio::write_atomic(&md.join(format!("{v}.root.json")), r.buffer())?;
            fsio::write_atomic(&md.join("root.json"), r.buffer())?;
        }
        let snapshot_meta = match &new_snapshot {
            Some(s) => metafile(s),
            None => {
                let bytes = fsio::read(&md.join(fsio::role_file(
                    cs,
                    self.snapshot.signed.version,
                    "snapshot",
                )))?;
                Metafile {
                    length: Some(bytes.len() as u64),
                    hashes: Some(Hashes {
                        sha256: Sha256::digest(&bytes).to_vec().into(),
                        _extra: HashMap::new(),
                    }),
                    version: self.snapshot.signed.version,
                    _extra: HashMap::new(),
                }
            }
        };
        let mut ts = Timestamp::new(
            SPEC_VERSION.into(),
            if first {
                nz(1)?
            } else {
                next_version(self.timestamp.signed.version)?
            },
            expiry(self.state.expiries.timestamp_secs)?,
        );
        ts.meta.insert("snapshot.json".into(), snapshot_meta);
        let ids = ids_of(&root_for_signing, RoleType::Timestamp)?;
        let keys = self.sources(ids.iter())?;
        let signed_ts = sign_role(ts, &holder, &keys)?;

        // Persist the root version before the timestamp makes the new state visible.
        if let Some(r) = &root_signed {
            self.state.root_version = r.signed.version.get();
            self.save_state()?;
        }
        fsio::write_atomic(&md.join("timestamp.json"), signed_ts.buffer())?;

        if let Some(r) = root_signed {
            self.root = r;
        }
        if let Some(t) = p.targets {
            self.targets = t.signed().clone();
        }
        for (name, r) in p.releases {
            let (_, t) = r.signed().clone().targets();
            self.releases.insert(name, t);
        }
        if let Some(s) = new_snapshot {
            self.snapshot = s.signed().clone();
        }
        self.timestamp = signed_ts.signed().clone();
        if cs {
            self.prune()?;
        }
        Ok(())
    }

    /// Deletes versioned metadata older than the last `keep_metadata_versions` of each role.
    fn prune(&self) -> Result<(), UpdatesError> {
        let keep = self.state.keep_metadata_versions;
        let mut current: HashMap<String, u64> = self
            .snapshot
            .signed
            .meta
            .iter()
            .filter_map(|(k, m)| Some((k.strip_suffix(".json")?.to_owned(), m.version.get())))
            .collect();
        current.insert("snapshot".into(), self.snapshot.signed.version.get());
        fsio::prune_versions(&self.metadata_dir(), &current, keep)
    }
}

fn metafile<T: Role>(r: &SignedRole<T>) -> Metafile {
    Metafile {
        length: Some(*r.length()),
        hashes: Some(Hashes {
            sha256: r.sha256().to_vec().into(),
            _extra: HashMap::new(),
        }),
        version: r.signed().signed.version(),
        _extra: HashMap::new(),
    }
}
