//! TUF 1.0 client verification with tough, plus what tough leaves to the application.
//!
//! tough does the specification's client workflow: walks the root chain from the trusted root
//! (each new root signed by a threshold of the old and of its own keys), checks threshold
//! signatures with duplicate key ids refused, expirations (freeze), versions against its
//! datastore (rollback), lengths and hashes from the signing role (mix-and-match, endless
//! data), and delegations with their path patterns.
//!
//! Added here, because tough does not:
//!
//! * It starts every refresh from the root it is given and only writes the newer root to its
//!   datastore. Started from the provisioned root each time, a repository that withholds
//!   `N+1.root.json` would have the device trust keys that were revoked since. So the newest
//!   verified root is kept (`root.json`, written atomically) and is the trusted root of the
//!   next refresh.
//! * It writes its datastore in place (truncate, write), so a power cut can leave an empty
//!   `snapshot.json`, which it then silently treats as "no trusted snapshot". The version of
//!   every role, delegated ones included, is therefore also kept as a floor in `state.json`,
//!   written atomically, and a loaded repository below a floor is refused.

use std::collections::BTreeMap;

use tough::schema::{RoleType, Root, Signed, Target, Targets};
use tough::{ExpirationEnforcement, Limits, Repository, RepositoryLoader};

use super::http::{NetError, RepoTransport};
use super::store::{Floors, UpdateDir};
use super::{Refusal, UpdateLimits, refused};
use crate::AgentError;
use crate::transport::chain_text;

/// Loads and verifies the repository; on success the newest root and the role floors are
/// persisted before anything is returned.
pub(crate) async fn load(
    dir: &UpdateDir,
    provisioned_root: &[u8],
    metadata_url: &url::Url,
    targets_url: &url::Url,
    transport: &RepoTransport,
    limits: &UpdateLimits,
) -> Result<Repository, AgentError> {
    let root = trusted_root(dir, provisioned_root)?;
    let repo = verifying_loader(&root, metadata_url, targets_url, limits)
        .transport(transport.clone())
        .datastore(dir.datastore())
        .load()
        .await
        .map_err(|e| classify(&e, "loading the TUF repository"))?;

    let mut state = dir.persisted()?;
    let floors = check_floors(&state.floors, &repo)?;
    // The root first: it is what the next refresh starts from.
    let root_bytes = serde_json::to_vec(repo.root())
        .map_err(|e| refused(Refusal::Metadata, format!("re-serializing root: {e}")))?;
    if repo.root().signed.version.get() >= state.floors.root {
        dir.save_root(&root_bytes)?;
    }
    if floors != state.floors {
        state.floors = floors;
        dir.write_persisted(&state)?;
    }
    Ok(repo)
}

/// tough's loader with the device's verification settings: the size and root-chain limits and
/// safe expiration enforcement (an expired role is refused, never merely logged). Every
/// consumer of device-side TUF verification builds its loader here, so the settings cannot
/// drift apart; the caller adds the transport and the datastore.
pub fn verifying_loader<'a>(
    root: &'a impl AsRef<[u8]>,
    metadata_url: &url::Url,
    targets_url: &url::Url,
    limits: &UpdateLimits,
) -> RepositoryLoader<'a> {
    RepositoryLoader::new(root, metadata_url.clone(), targets_url.clone())
        .limits(Limits {
            max_root_size: limits.max_root_size,
            max_targets_size: limits.max_targets_size,
            max_timestamp_size: limits.max_timestamp_size,
            max_snapshot_size: limits.max_snapshot_size,
            max_root_updates: limits.max_root_updates,
        })
        .expiration_enforcement(ExpirationEnforcement::Safe)
}

/// The newer of the provisioned root and the last root this device verified.
fn trusted_root(dir: &UpdateDir, provisioned: &[u8]) -> Result<Vec<u8>, AgentError> {
    let prov: Signed<Root> = serde_json::from_slice(provisioned)
        .map_err(|e| AgentError::Config(format!("the provisioned TUF root is not valid: {e}")))?;
    let Some(saved) = dir.saved_root()? else {
        return Ok(provisioned.to_vec());
    };
    // Fail closed: falling back to the provisioned root would re-trust revoked keys.
    let s: Signed<Root> = serde_json::from_slice(&saved).map_err(|e| AgentError::State {
        dir: dir.dir().to_path_buf(),
        reason: format!("root.json (the last verified TUF root) is damaged: {e}"),
    })?;
    Ok(if s.signed.version > prov.signed.version {
        saved
    } else {
        provisioned.to_vec()
    })
}

fn keyids(root: &Root, role: RoleType) -> Vec<String> {
    let mut ids: Vec<String> = root
        .roles
        .get(&role)
        .map(|r| r.keyids.iter().map(|k| hex::encode(k.as_ref())).collect())
        .unwrap_or_default();
    ids.sort();
    ids
}

/// Every delegated role tough loaded, with its version.
pub fn delegated_versions(t: &Targets, out: &mut BTreeMap<String, u64>) {
    if let Some(d) = &t.delegations {
        for r in &d.roles {
            if let Some(signed) = &r.targets {
                out.insert(r.name.clone(), signed.signed.version.get());
                delegated_versions(&signed.signed, out);
            }
        }
    }
}

/// Refuses a repository older than what was trusted before; returns the new floors.
fn check_floors(old: &Floors, repo: &Repository) -> Result<Floors, AgentError> {
    let root = &repo.root().signed;
    let mut base = old.clone();
    let ts_keys = keyids(root, RoleType::Timestamp);
    let sn_keys = keyids(root, RoleType::Snapshot);
    let tg_keys = keyids(root, RoleType::Targets);
    if base.timestamp_keys != ts_keys || base.snapshot_keys != sn_keys {
        base.timestamp = 0;
        base.snapshot = 0;
    }
    if base.targets_keys != tg_keys {
        base.targets = 0;
        base.delegated.clear();
    }
    let mut delegated = BTreeMap::new();
    delegated_versions(&repo.targets().signed, &mut delegated);
    let now = [
        ("root", root.version.get(), old.root),
        (
            "timestamp",
            repo.timestamp().signed.version.get(),
            base.timestamp,
        ),
        (
            "snapshot",
            repo.snapshot().signed.version.get(),
            base.snapshot,
        ),
        ("targets", repo.targets().signed.version.get(), base.targets),
    ];
    for (role, got, floor) in now {
        if got < floor {
            return Err(refused(
                Refusal::Rollback,
                format!(
                    "{role} metadata version {got} is older than version {floor}, which this device already trusted"
                ),
            ));
        }
    }
    for (name, floor) in &base.delegated {
        match delegated.get(name) {
            Some(v) if v < floor => {
                return Err(refused(
                    Refusal::Rollback,
                    format!(
                        "delegated role {name} version {v} is older than version {floor}, which this device already trusted"
                    ),
                ));
            }
            _ => {}
        }
    }
    let mut merged = base.delegated.clone();
    for (k, v) in delegated {
        let e = merged.entry(k).or_insert(0);
        *e = (*e).max(v);
    }
    Ok(Floors {
        root: root.version.get().max(old.root),
        timestamp: repo.timestamp().signed.version.get(),
        snapshot: repo.snapshot().signed.version.get(),
        targets: repo.targets().signed.version.get(),
        delegated: merged,
        timestamp_keys: ts_keys,
        snapshot_keys: sn_keys,
        targets_keys: tg_keys,
    })
}

/// The target `name` as listed by the delegated role `role` (searched through the whole
/// delegation tree), with its role; `None` if that role does not list it.
pub fn find_in_role<'a>(t: &'a Targets, role: &str, name: &str) -> Option<&'a Target> {
    let d = t.delegations.as_ref()?;
    for r in &d.roles {
        let Some(signed) = &r.targets else { continue };
        if r.name == role
            && let Some((_, target)) = signed.signed.targets.iter().find(|(n, _)| n.raw() == name)
        {
            return Some(target);
        }
        if let Some(found) = find_in_role(&signed.signed, role, name) {
            return Some(found);
        }
    }
    None
}

/// Turns a tough error into the agent's: network failures stay network failures (retry later),
/// everything that is verification is a refusal with the attack it most likely is.
pub(crate) fn classify(e: &tough::error::Error, what: &str) -> AgentError {
    use tough::error::Error as E;
    let text = chain_text(e);
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut kind = None;
    let mut net = None;
    while let Some(c) = cur {
        if let Some(t) = c.downcast_ref::<E>() {
            let k = match t {
                E::OlderMetadata { .. }
                | E::OlderSnapshotInTimestamp { .. }
                | E::SnapshotRoleRollback { .. }
                | E::SnapshotRoleMissing { .. } => Some(Refusal::Rollback),
                E::ExpiredMetadata { .. } => Some(Refusal::Freeze),
                E::VerifyMetadata { .. }
                | E::VerifyTrustedMetadata { .. }
                | E::VerifyRoleMetadata { .. } => Some(Refusal::Signature),
                E::HashMismatch { .. } | E::MaxSizeExceeded { .. } => Some(Refusal::Integrity),
                E::VersionMismatch { .. } => Some(Refusal::Mismatch),
                E::SystemTimeSteppedBackward { .. } => Some(Refusal::Clock),
                _ => None,
            };
            if k.is_some() && kind.is_none() {
                kind = k;
            }
        }
        if c.downcast_ref::<NetError>().is_some() {
            net = Some(c.to_string());
        }
        if let Some(t) = c.downcast_ref::<tough::TransportError>()
            && t.kind() == tough::TransportErrorKind::FileNotFound
            && net.is_none()
        {
            net = Some(format!("{} not found", t.url()));
        }
        cur = c.source();
    }
    match (kind, net) {
        (Some(k), _) => refused(k, format!("{what}: {text}")),
        (None, Some(_)) => AgentError::Http {
            addr: "TUF repository".into(),
            reason: format!("{what}: {text}"),
        },
        (None, None) => refused(Refusal::Metadata, format!("{what}: {text}")),
    }
}
