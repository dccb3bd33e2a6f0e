//! Secure firmware updates on the device, Uptane-style: the image repository (TUF, verified
//! with tough) says which images are genuine, the director (a signed per-device instruction
//! from the device gateway) says which one this device should install, and the device installs
//! only what both agree on, into the inactive of two slots, switching atomically.
//!
//! The flow, for the CLI or an embedding application:
//!
//! 1. [`UpdateClient::check`]: reverts an unconfirmed install first (it did not prove itself),
//!    fetches the instruction (`GET /device/v1/update`, 204 = nothing to do), verifies it
//!    against the pinned director keys, refreshes and verifies the TUF repository, and
//!    cross-checks the two. `Ok(Some(offer))` when there is something to install.
//! 2. [`UpdateClient::install`]: downloads the image through tough (length and hash from the
//!    signed metadata, nothing beyond the declared length is read), writes it to the inactive
//!    slot, fsyncs, verifies the file again from disk and switches the `active` pointer; the
//!    new slot is `pending`.
//! 3. After the new image has booted and passed its self-test: [`UpdateClient::confirm`]
//!    (raises the anti-rollback floor to its security version); otherwise
//!    [`UpdateClient::revert`] (or the next `check`) switches back to the previous slot.
//!
//! [`UpdateClient::report_status`] tells the server how it went
//! (`POST /device/v1/update-status`).
//!
//! Every refusal is an [`AgentError::UpdateRefused`] with a [`Refusal`] saying which check
//! failed; network failures stay network errors, so a caller can tell "try again later" from
//! "someone is attacking this device".

pub(crate) mod gateway;
mod http;
mod store;
mod tuf;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use futures_core::Stream;
use medsec_updates::{DirectorKey, Instruction, ReleaseCustom, SignedInstruction, UpdatesError};
use serde::Serialize;
use tough::TargetName;

pub use gateway::ReportedStatus;
pub use store::{Slot, SlotImage};
/// The checks made on a verified repository, public for the fuzz targets (`medsec-fuzz`).
pub use tuf::{delegated_versions, find_in_role, verifying_loader};

use crate::AgentError;
use crate::config::AgentConfig;
use crate::state::StateDir;
use http::RepoTransport;
use store::{Pointer, UpdateDir, hash_file};

/// Which check refused an update. The variants name the attack the check defends against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Refusal {
    /// Signatures: below threshold, duplicate keys, revoked or unknown keys, an untrusted
    /// director key.
    Signature,
    /// Metadata older than what this device already trusted.
    Rollback,
    /// Expired metadata or instruction (freeze attack).
    Freeze,
    /// Length or hash mismatch, more data than declared (endless data).
    Integrity,
    /// Director and repository disagree, or the image is not in the current repository
    /// (mix-and-match, a stolen director key).
    Mismatch,
    /// The instruction or image is for another device, model or hardware revision.
    WrongDevice,
    /// The image's security version is below the installed one.
    SecurityVersion,
    /// A director instruction older than one already accepted.
    Replay,
    /// The clock went backwards since the last refresh.
    Clock,
    /// Any other malformed or inconsistent metadata.
    Metadata,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::Signature => "signature",
            Refusal::Rollback => "rollback",
            Refusal::Freeze => "freeze",
            Refusal::Integrity => "integrity",
            Refusal::Mismatch => "mismatch",
            Refusal::WrongDevice => "wrong device",
            Refusal::SecurityVersion => "security version",
            Refusal::Replay => "replay",
            Refusal::Clock => "clock",
            Refusal::Metadata => "metadata",
        })
    }
}

pub(crate) fn refused(kind: Refusal, detail: impl Into<String>) -> AgentError {
    AgentError::UpdateRefused {
        kind,
        detail: detail.into(),
    }
}

/// Size bounds on everything fetched from the repository (endless-data attacks).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct UpdateLimits {
    pub max_root_size: u64,
    pub max_timestamp_size: u64,
    pub max_snapshot_size: u64,
    /// For targets metadata whose length the snapshot does not give.
    pub max_targets_size: u64,
    /// Root versions walked in one refresh.
    pub max_root_updates: u64,
    /// No image larger than this is downloaded, whatever the metadata says.
    pub max_image_size: u64,
}

impl Default for UpdateLimits {
    fn default() -> Self {
        UpdateLimits {
            max_root_size: 512 * 1024,
            max_timestamp_size: 64 * 1024,
            max_snapshot_size: 1024 * 1024,
            max_targets_size: 4 * 1024 * 1024,
            max_root_updates: 64,
            max_image_size: 1024 * 1024 * 1024,
        }
    }
}

/// Update settings. The agent settings supply the gateway, its trust root, the state
/// directory (and the device certificate in it, which says who the device is) and timeouts.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct UpdateConfig {
    pub agent: AgentConfig,
    /// The provisioned TUF root (`root.json`). Only its first use matters: afterwards the
    /// device trusts the newest root it has verified.
    pub tuf_root: PathBuf,
    /// JSON array of [`DirectorKey`]s (a single object is accepted too).
    pub director_keys: PathBuf,
    /// TUF metadata base URL (`http` or `https`; the metadata is signed, TLS is optional).
    pub metadata_url: String,
    /// TUF targets base URL.
    pub targets_url: String,
    /// Trust anchors for an `https` repository; `None` uses the agent's trust root.
    pub repository_trust_root_pem: Option<PathBuf>,
    /// This device's hardware revision; `None` means the model (as `ReleaseCustom` defaults).
    pub hardware_id: Option<String>,
    /// Slots, pointer and update state; defaults to `<state dir>/update`.
    pub update_dir: PathBuf,
    pub limits: UpdateLimits,
}

impl UpdateConfig {
    /// Settings with safe defaults; the repository lays out `metadata/` and `targets/` under
    /// `repository_url`.
    pub fn new(
        agent: AgentConfig,
        repository_url: &str,
        tuf_root: impl Into<PathBuf>,
        director_keys: impl Into<PathBuf>,
    ) -> Self {
        let base = repository_url.trim_end_matches('/');
        UpdateConfig {
            update_dir: agent.state_dir.join("update"),
            agent,
            tuf_root: tuf_root.into(),
            director_keys: director_keys.into(),
            metadata_url: format!("{base}/metadata/"),
            targets_url: format!("{base}/targets/"),
            repository_trust_root_pem: None,
            hardware_id: None,
            limits: UpdateLimits::default(),
        }
    }
}

/// Who this device is, from its certificate (and the configured hardware revision).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceIdentity {
    /// `urn:medsec:device:<model>:<serial>`.
    pub device: String,
    pub model: String,
    pub hardware_id: String,
}

/// Something to install: a director instruction that the repository confirms. Only
/// [`UpdateClient::check`] makes one; it carries the verified repository it was checked
/// against, and [`UpdateClient::install`] downloads through exactly that.
#[derive(Debug, Clone)]
pub struct Offer {
    pub instruction: Instruction,
    pub release: ReleaseCustom,
    repo: tough::Repository,
}

/// Install progress, for a progress display or status reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Progress {
    Downloading {
        received: u64,
        total: u64,
    },
    /// Downloaded and fsynced; re-reading the slot from disk.
    Verifying,
    /// Switched; the new slot is pending until confirmed.
    Installed {
        slot: Slot,
    },
}

/// The result of [`UpdateClient::install`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Installed {
    pub slot: Slot,
    pub image: SlotImage,
    /// The slot switched away from, kept for `revert`.
    pub previous: Option<Slot>,
}

/// What a repository refresh verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefreshSummary {
    pub root_version: u64,
    /// Targets listed by the top-level and the delegated targets roles.
    pub targets: usize,
}

/// The result of a revert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reverted {
    /// The slot active again.
    pub slot: Slot,
    pub image: Option<SlotImage>,
    /// The image that was abandoned.
    pub abandoned: Option<SlotImage>,
}

/// Local update state, without network.
#[derive(Debug, Clone, Serialize)]
pub struct UpdateStatus {
    pub update_dir: PathBuf,
    pub active: Option<Slot>,
    pub pending: bool,
    pub active_image: Option<SlotImage>,
    pub previous: Option<Slot>,
    pub previous_image: Option<SlotImage>,
    /// The anti-rollback floor.
    pub installed_security_version: u64,
    pub last_director_counter: Option<u64>,
    /// Version of the newest TUF root this device has verified.
    pub trusted_root_version: u64,
}

/// The device's update client.
pub struct UpdateClient {
    cfg: UpdateConfig,
    dir: UpdateDir,
    transport: RepoTransport,
    director_keys: Vec<DirectorKey>,
    provisioned_root: Vec<u8>,
    metadata_url: url::Url,
    targets_url: url::Url,
    gateway_roots: Arc<rustls::RootCertStore>,
    /// One state change at a time within this process.
    lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for UpdateClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdateClient")
            .field("update_dir", &self.dir.dir())
            .field("metadata_url", &self.metadata_url.as_str())
            .field("targets_url", &self.targets_url.as_str())
            .finish_non_exhaustive()
    }
}

fn read_file(p: &Path, what: &'static str) -> Result<Vec<u8>, AgentError> {
    std::fs::read(p).map_err(|e| AgentError::io(what, p, e))
}

fn base_url(s: &str, what: &str) -> Result<url::Url, AgentError> {
    let with_slash = if s.ends_with('/') {
        s.to_owned()
    } else {
        format!("{s}/")
    };
    let u = url::Url::parse(&with_slash)
        .map_err(|e| AgentError::Config(format!("{what} {s:?}: {e}")))?;
    if u.scheme() != "http" && u.scheme() != "https" {
        return Err(AgentError::Config(format!(
            "{what} {s:?}: only http and https repositories are supported"
        )));
    }
    Ok(u)
}

impl UpdateClient {
    /// Reads the provisioned root, the director keys and the trust roots; nothing is fetched.
    pub fn new(cfg: UpdateConfig) -> Result<Self, AgentError> {
        let provisioned_root = read_file(&cfg.tuf_root, "reading the TUF root")?;
        serde_json::from_slice::<tough::schema::Signed<tough::schema::Root>>(&provisioned_root)
            .map_err(|e| {
                AgentError::Config(format!("{} is not a TUF root: {e}", cfg.tuf_root.display()))
            })?;
        let keys_raw = read_file(&cfg.director_keys, "reading the director keys")?;
        let director_keys: Vec<DirectorKey> = serde_json::from_slice(&keys_raw)
            .or_else(|_| serde_json::from_slice::<DirectorKey>(&keys_raw).map(|k| vec![k]))
            .map_err(|e| {
                AgentError::Config(format!(
                    "{} holds no director keys: {e}",
                    cfg.director_keys.display()
                ))
            })?;
        if director_keys.is_empty() {
            return Err(AgentError::Config(format!(
                "{} holds no director keys",
                cfg.director_keys.display()
            )));
        }
        let metadata_url = base_url(&cfg.metadata_url, "metadata URL")?;
        let targets_url = base_url(&cfg.targets_url, "targets URL")?;
        let agent_root = read_file(&cfg.agent.trust_root_pem, "reading trust root")?;
        let gateway_roots = crate::transport::roots_from_pem(
            &agent_root,
            &cfg.agent.trust_root_pem.display().to_string(),
        )?;
        let tls = if metadata_url.scheme() == "https" || targets_url.scheme() == "https" {
            let roots = match &cfg.repository_trust_root_pem {
                Some(p) => crate::transport::roots_from_pem(
                    &read_file(p, "reading the repository trust root")?,
                    &p.display().to_string(),
                )?,
                None => gateway_roots.clone(),
            };
            Some(http::repo_tls(roots)?)
        } else {
            None
        };
        let l = cfg.limits;
        let max_body = [
            l.max_image_size,
            l.max_root_size,
            l.max_timestamp_size,
            l.max_snapshot_size,
            l.max_targets_size,
        ]
        .into_iter()
        .max()
        .unwrap_or(l.max_image_size);
        Ok(UpdateClient {
            dir: UpdateDir::new(cfg.update_dir.clone()),
            transport: RepoTransport::new(tls, cfg.agent.timeouts, max_body),
            director_keys,
            provisioned_root,
            metadata_url,
            targets_url,
            gateway_roots: Arc::new(gateway_roots),
            cfg,
            lock: tokio::sync::Mutex::new(()),
        })
    }

    pub fn config(&self) -> &UpdateConfig {
        &self.cfg
    }

    /// TCP connections the repository transport has opened (keep-alive keeps this low).
    pub fn repository_connections(&self) -> u64 {
        self.transport.connections_opened()
    }

    /// Who this device is, from the certificate in the state directory.
    pub fn identity(&self) -> Result<DeviceIdentity, AgentError> {
        let cur = StateDir::new(self.cfg.agent.state_dir.clone()).load()?;
        let urn = cur.cert.device.ok_or_else(|| {
            AgentError::BadCertificate("the device certificate carries no device URN".into())
        })?;
        let id = medsec_core::DeviceId::parse_urn(&urn)
            .map_err(|e| AgentError::BadCertificate(format!("device URN {urn:?}: {e}")))?;
        let model = id.model.to_string();
        Ok(DeviceIdentity {
            device: id.urn(),
            hardware_id: self
                .cfg
                .hardware_id
                .clone()
                .unwrap_or_else(|| model.clone()),
            model,
        })
    }

    /// Fetches this device's instruction from the gateway (`None` on 204).
    pub async fn fetch_instruction(&self) -> Result<Option<SignedInstruction>, AgentError> {
        gateway::Gateway::open(&self.cfg.agent, self.gateway_roots.clone())?
            .instruction()
            .await
    }

    /// Reports progress to the gateway (`POST /device/v1/update-status`).
    pub async fn report_status(
        &self,
        rollout: &str,
        target: &str,
        status: ReportedStatus,
        detail: &str,
    ) -> Result<(), AgentError> {
        gateway::Gateway::open(&self.cfg.agent, self.gateway_roots.clone())?
            .report(rollout, target, status, detail)
            .await
    }

    /// Refreshes and verifies the TUF repository alone (no director, no install): the newest
    /// root and every role's floor are persisted, as in [`check`](Self::check). Returns the
    /// trusted root version and how many targets the verified metadata lists.
    pub async fn refresh(&self) -> Result<RefreshSummary, AgentError> {
        let _guard = self.lock.lock().await;
        self.dir.create()?;
        let repo = tuf::load(
            &self.dir,
            &self.provisioned_root,
            &self.metadata_url,
            &self.targets_url,
            &self.transport,
            &self.cfg.limits,
        )
        .await?;
        let targets = repo.targets().signed.targets.len()
            + repo
                .targets()
                .signed
                .delegations
                .as_ref()
                .map(|d| {
                    d.roles
                        .iter()
                        .map(|r| r.targets.as_ref().map_or(0, |t| t.signed.targets.len()))
                        .sum::<usize>()
                })
                .unwrap_or(0);
        Ok(RefreshSummary {
            root_version: repo.root().signed.version.get(),
            targets,
        })
    }

    /// Reverts an unconfirmed install, fetches the instruction and checks it; see the module
    /// documentation. `Ok(None)`: nothing to do (no instruction, or its image is running).
    pub async fn check(&self) -> Result<Option<Offer>, AgentError> {
        self.revert_if_pending().await?;
        let instruction = self.fetch_instruction().await?;
        self.check_instruction(instruction.as_ref()).await
    }

    /// [`check`](Self::check) for an instruction obtained some other way (a service tool,
    /// removable media): the same verification, the same cross-checks.
    pub async fn check_instruction(
        &self,
        signed: Option<&SignedInstruction>,
    ) -> Result<Option<Offer>, AgentError> {
        let _guard = self.lock.lock().await;
        let Some(signed) = signed else {
            return Ok(None);
        };
        self.dir.create()?;
        let me = self.identity()?;
        let mut state = self.dir.persisted()?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let instr = self.verify_director(signed, &me, now, state.last_counter)?;

        let repo = tuf::load(
            &self.dir,
            &self.provisioned_root,
            &self.metadata_url,
            &self.targets_url,
            &self.transport,
            &self.cfg.limits,
        )
        .await?;
        // tuf::load may have raised the floors; keep them.
        state = self.dir.persisted()?;
        let release = cross_check(&repo, &instr, &me, &self.cfg.limits)?;

        let pointer = self.dir.pointer()?;
        let floor = security_floor(state.installed_security_version, pointer.as_ref());
        if release.security_version < floor {
            return Err(refused(
                Refusal::SecurityVersion,
                format!(
                    "{} has security version {}, below the installed {floor}",
                    instr.target, release.security_version
                ),
            ));
        }
        state.last_counter = Some(state.last_counter.unwrap_or(0).max(instr.counter));
        self.dir.write_persisted(&state)?;
        if let Some(p) = &pointer
            && p.image(p.active).is_some_and(|i| i.sha256 == instr.sha256)
        {
            // Already running it (the director has not caught up yet).
            return Ok(None);
        }
        Ok(Some(Offer {
            instruction: instr,
            release,
            repo,
        }))
    }

    fn verify_director(
        &self,
        signed: &SignedInstruction,
        me: &DeviceIdentity,
        now: i64,
        last: Option<u64>,
    ) -> Result<Instruction, AgentError> {
        match medsec_updates::verify_instruction(signed, &self.director_keys, &me.device, now, last)
        {
            Ok(i) => Ok(i),
            Err(UpdatesError::Signature(m)) => Err(refused(Refusal::Signature, m)),
            Err(UpdatesError::Refused(m)) => {
                // The signature verified; see which rule the instruction broke.
                let kind = base64::engine::general_purpose::STANDARD
                    .decode(&signed.payload)
                    .ok()
                    .and_then(|p| serde_json::from_slice::<Instruction>(&p).ok())
                    .map(|i| {
                        if i.device != me.device {
                            Refusal::WrongDevice
                        } else if i.expires <= now {
                            Refusal::Freeze
                        } else {
                            Refusal::Replay
                        }
                    })
                    .unwrap_or(Refusal::Metadata);
                Err(refused(kind, format!("director instruction: {m}")))
            }
            Err(e) => Err(refused(
                Refusal::Metadata,
                format!("director instruction: {e}"),
            )),
        }
    }

    /// If the active slot is pending (installed, never confirmed), switches back.
    pub async fn revert_if_pending(&self) -> Result<Option<Reverted>, AgentError> {
        let _guard = self.lock.lock().await;
        match self.dir.pointer()? {
            Some(p) if p.pending => self.revert_locked(p).map(Some),
            _ => Ok(None),
        }
    }

    /// Switches back from a pending install to the previous slot.
    pub async fn revert(&self) -> Result<Reverted, AgentError> {
        let _guard = self.lock.lock().await;
        match self.dir.pointer()? {
            Some(p) if p.pending => self.revert_locked(p),
            _ => Err(self.state_err("there is no pending update to revert")),
        }
    }

    fn revert_locked(&self, p: Pointer) -> Result<Reverted, AgentError> {
        let prev = p.previous.ok_or_else(|| {
            self.state_err("the pending update has no previous slot to go back to")
        })?;
        let image = p.image(prev).cloned();
        if let Some(img) = &image {
            // Going back to a slot that no longer holds what it did would be no rescue.
            let (len, sha) = hash_file(&self.dir.slot_path(prev))?;
            if len != img.length || sha != img.sha256 {
                return Err(self.state_err(format!(
                    "slot {prev} no longer holds {} (length {len}, sha256 {sha}); not reverting to it",
                    img.target
                )));
            }
        }
        let abandoned = p.image(p.active).cloned();
        let next = Pointer {
            active: prev,
            pending: false,
            previous: Some(p.active),
            ..p
        };
        self.dir.write_pointer(&next)?;
        Ok(Reverted {
            slot: prev,
            image,
            abandoned,
        })
    }

    /// Makes the pending install permanent and raises the security version floor to it.
    pub async fn confirm(&self) -> Result<SlotImage, AgentError> {
        let _guard = self.lock.lock().await;
        let p = match self.dir.pointer()? {
            Some(p) if p.pending => p,
            _ => return Err(self.state_err("there is no pending update to confirm")),
        };
        let img = p
            .image(p.active)
            .cloned()
            .ok_or_else(|| self.state_err("the pending slot records no image"))?;
        // Pointer first: if the floor write is lost, `security_floor` recomputes it from the
        // confirmed slot.
        self.dir.write_pointer(&Pointer {
            pending: false,
            ..p
        })?;
        let mut st = self.dir.persisted()?;
        st.installed_security_version = st.installed_security_version.max(img.security_version);
        self.dir.write_persisted(&st)?;
        Ok(img)
    }

    /// The local update state.
    pub fn status(&self) -> Result<UpdateStatus, AgentError> {
        let p = self.dir.pointer()?;
        let st = self.dir.persisted()?;
        Ok(UpdateStatus {
            update_dir: self.dir.dir().to_path_buf(),
            active: p.as_ref().map(|p| p.active),
            pending: p.as_ref().is_some_and(|p| p.pending),
            active_image: p.as_ref().and_then(|p| p.image(p.active).cloned()),
            previous: p.as_ref().and_then(|p| p.previous),
            previous_image: p
                .as_ref()
                .and_then(|p| p.previous.and_then(|s| p.image(s).cloned())),
            installed_security_version: security_floor(st.installed_security_version, p.as_ref()),
            last_director_counter: st.last_counter,
            trusted_root_version: st.floors.root,
        })
    }

    /// Downloads the offered image into the inactive slot and switches to it (pending).
    pub async fn install(
        &self,
        offer: &Offer,
        mut progress: Option<&mut (dyn FnMut(&Progress) + Send)>,
    ) -> Result<Installed, AgentError> {
        let _guard = self.lock.lock().await;
        self.dir.create()?;
        let i = &offer.instruction;
        let old = self.dir.pointer()?;
        if old.as_ref().is_some_and(|p| p.pending) {
            return Err(
                self.state_err("an earlier update is still pending: confirm or revert it first")
            );
        }
        let st = self.dir.persisted()?;
        let floor = security_floor(st.installed_security_version, old.as_ref());
        if offer.release.security_version < floor {
            return Err(refused(
                Refusal::SecurityVersion,
                format!(
                    "security version {} is below the installed {floor}",
                    offer.release.security_version
                ),
            ));
        }
        let (slot, previous) = match &old {
            Some(p) => (p.active.other(), Some(p.active)),
            None => (Slot::A, None),
        };
        // The slot about to be overwritten must no longer be described as holding its old
        // image: a crash mid-write must not leave a pointer that vouches for a torn slot.
        if let Some(p) = &old
            && p.image(slot).is_some()
        {
            let mut cleared = p.clone();
            cleared.set_image(slot, None);
            if cleared.previous == Some(slot) {
                cleared.previous = None;
            }
            self.dir.write_pointer(&cleared)?;
        }

        let name = TargetName::new(i.target.clone()).map_err(|e| {
            refused(
                Refusal::Metadata,
                format!("target name {:?}: {e}", i.target),
            )
        })?;
        let stream = offer
            .repo
            .read_target(&name)
            .await
            .map_err(|e| tuf::classify(&e, "downloading the image"))?
            .ok_or_else(|| {
                refused(
                    Refusal::Mismatch,
                    format!("{} is not in the repository", i.target),
                )
            })?;
        let path = self.dir.slot_path(slot);
        let received = write_slot(&path, stream, i.length, &mut progress).await?;
        if received != i.length {
            return Err(refused(
                Refusal::Integrity,
                format!(
                    "received {received} bytes of {}, expected {}",
                    i.target, i.length
                ),
            ));
        }

        if let Some(cb) = progress.as_deref_mut() {
            cb(&Progress::Verifying);
        }
        let (len, sha) = hash_file(&path)?;
        if len != i.length || sha != i.sha256 {
            return Err(refused(
                Refusal::Integrity,
                format!(
                    "slot {slot} read back as {len} bytes with sha256 {sha}, expected {} bytes with {}",
                    i.length, i.sha256
                ),
            ));
        }
        let image = SlotImage {
            target: i.target.clone(),
            length: i.length,
            sha256: i.sha256.clone(),
            version: offer.release.version.clone(),
            security_version: offer.release.security_version,
            rollout: i.rollout.clone(),
        };
        let mut next = match self.dir.pointer()? {
            Some(p) => p,
            None => Pointer {
                active: slot,
                pending: true,
                previous: None,
                a: None,
                b: None,
            },
        };
        next.set_image(slot, Some(image.clone()));
        next.active = slot;
        next.pending = true;
        next.previous = previous;
        self.dir.write_pointer(&next)?;
        if let Some(cb) = progress {
            cb(&Progress::Installed { slot });
        }
        Ok(Installed {
            slot,
            image,
            previous,
        })
    }

    fn state_err(&self, reason: impl Into<String>) -> AgentError {
        AgentError::State {
            dir: self.dir.dir().to_path_buf(),
            reason: reason.into(),
        }
    }
}

/// The anti-rollback floor: the persisted one, or the confirmed active image's if higher (the
/// floor is written after the pointer on confirm, so a crash in between loses nothing).
fn security_floor(persisted: u64, p: Option<&Pointer>) -> u64 {
    let active = p
        .filter(|p| !p.pending)
        .and_then(|p| p.image(p.active))
        .map_or(0, |i| i.security_version);
    persisted.max(active)
}

/// The director's instruction against the repository: the target must be listed by the
/// delegated role of the device's model, with the same length, hash and security version,
/// and be built for this model and hardware revision. Public for the fuzz targets.
pub fn cross_check(
    repo: &tough::Repository,
    i: &Instruction,
    me: &DeviceIdentity,
    limits: &UpdateLimits,
) -> Result<ReleaseCustom, AgentError> {
    let name = TargetName::new(i.target.clone()).map_err(|e| {
        refused(
            Refusal::Mismatch,
            format!("target name {:?}: {e}", i.target),
        )
    })?;
    let in_role = tuf::find_in_role(&repo.targets().signed, &me.model, &i.target);
    // What tough's delegation search (and so the download) resolves the name to.
    let resolved = repo.targets().signed.find_target(&name, false).ok();
    let target = match (in_role, resolved) {
        (Some(a), Some(b)) if a == b => a,
        (Some(_), Some(_)) => {
            return Err(refused(
                Refusal::Mismatch,
                format!(
                    "{} resolves to a different entry than the one role {} lists",
                    i.target, me.model
                ),
            ));
        }
        _ => {
            return Err(refused(
                Refusal::Mismatch,
                format!(
                    "{} is not released for model {} in the current repository (director and repository disagree)",
                    i.target, me.model
                ),
            ));
        }
    };
    let tuf_sha = hex::encode(target.hashes.sha256.as_ref());
    if target.length != i.length || tuf_sha != i.sha256.to_ascii_lowercase() {
        return Err(refused(
            Refusal::Mismatch,
            format!(
                "director says {} is {} bytes with sha256 {}, the repository says {} bytes with {tuf_sha}",
                i.target, i.length, i.sha256, target.length
            ),
        ));
    }
    let custom = serde_json::Value::Object(target.custom.clone().into_iter().collect());
    let release: ReleaseCustom = serde_json::from_value(custom).map_err(|e| {
        refused(
            Refusal::Metadata,
            format!("{} has no valid release metadata: {e}", i.target),
        )
    })?;
    if release.security_version != i.security_version {
        return Err(refused(
            Refusal::Mismatch,
            format!(
                "director says security version {}, the repository says {}",
                i.security_version, release.security_version
            ),
        ));
    }
    if release.model != me.model || release.hardware_id != me.hardware_id {
        return Err(refused(
            Refusal::WrongDevice,
            format!(
                "{} is built for model {} hardware {}, this device is model {} hardware {}",
                i.target, release.model, release.hardware_id, me.model, me.hardware_id
            ),
        ));
    }
    if target.length > limits.max_image_size {
        return Err(refused(
            Refusal::Integrity,
            format!(
                "{} is {} bytes, more than the {} this device accepts",
                i.target, target.length, limits.max_image_size
            ),
        ));
    }
    Ok(release)
}

/// Streams the image into `path` (truncated first) and fsyncs it; returns the bytes written.
async fn write_slot<S>(
    path: &Path,
    stream: S,
    total: u64,
    progress: &mut Option<&mut (dyn FnMut(&Progress) + Send)>,
) -> Result<u64, AgentError>
where
    S: Stream<Item = Result<hyper::body::Bytes, tough::error::Error>>,
{
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(path)
        .map_err(|e| AgentError::io("opening", path, e))?;
    let mut stream = std::pin::pin!(stream);
    let mut received: u64 = 0;
    while let Some(chunk) = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
        let bytes = chunk.map_err(|e| tuf::classify(&e, "downloading the image"))?;
        received = received.saturating_add(bytes.len() as u64);
        // tough stops at the declared length; this is the belt to its braces.
        if received > total {
            return Err(refused(
                Refusal::Integrity,
                format!("the image is longer than the declared {total} bytes"),
            ));
        }
        f.write_all(&bytes)
            .map_err(|e| AgentError::io("writing", path, e))?;
        if let Some(cb) = progress.as_mut() {
            cb(&Progress::Downloading { received, total });
        }
    }
    f.sync_all()
        .map_err(|e| AgentError::io("syncing", path, e))?;
    Ok(received)
}
