//! What the update client keeps on disk, and how each file is replaced.
//!
//! In the update directory (`<state dir>/update` by default):
//!
//! * `slot-a.bin`, `slot-b.bin`: the two firmware slots. Only the inactive one is ever written.
//! * `active`: the pointer (JSON): which slot is active, whether it is `pending` (installed but
//!   not yet confirmed), which slot was active before, and what image each slot holds. It is
//!   the one file whose replacement switches firmware, so it is written to a temporary file,
//!   fsynced, renamed and the directory fsynced: after a crash it names the old slot or the
//!   new one, and the slot it names was fully written and verified before the switch.
//! * `state.json`: the installed security version (the anti-rollback floor), the last director
//!   counter accepted, and the version floors of every TUF role (see `tuf.rs`).
//! * `root.json`: the newest TUF root this device has verified, so that trust never falls back
//!   to the provisioned root (whose keys may have been revoked since).
//! * `tuf/`: tough's datastore (trusted timestamp, snapshot, targets, the last known time).

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::AgentError;
use crate::state::write_atomic;

/// One of the two firmware slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    A,
    B,
}

impl Slot {
    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }

    pub fn file_name(self) -> &'static str {
        match self {
            Slot::A => "slot-a.bin",
            Slot::B => "slot-b.bin",
        }
    }
}

impl std::fmt::Display for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Slot::A => "a",
            Slot::B => "b",
        })
    }
}

/// The image a slot holds, as verified when it was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotImage {
    /// TUF target name.
    pub target: String,
    pub length: u64,
    /// Lowercase hex SHA-256.
    pub sha256: String,
    /// Firmware version (`custom.version`).
    pub version: String,
    pub security_version: u64,
    /// The rollout that installed it; empty for a provisioned image.
    #[serde(default)]
    pub rollout: String,
}

/// The `active` pointer file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Pointer {
    pub active: Slot,
    /// Installed but not confirmed: `revert` (or the next `check`) switches back to `previous`.
    pub pending: bool,
    pub previous: Option<Slot>,
    pub a: Option<SlotImage>,
    pub b: Option<SlotImage>,
}

impl Pointer {
    pub(crate) fn image(&self, s: Slot) -> Option<&SlotImage> {
        match s {
            Slot::A => self.a.as_ref(),
            Slot::B => self.b.as_ref(),
        }
    }

    pub(crate) fn set_image(&mut self, s: Slot, img: Option<SlotImage>) {
        match s {
            Slot::A => self.a = img,
            Slot::B => self.b = img,
        }
    }
}

/// Highest versions of each TUF role this device has trusted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Floors {
    pub root: u64,
    pub timestamp: u64,
    pub snapshot: u64,
    pub targets: u64,
    pub delegated: BTreeMap<String, u64>,
    /// Key ids the floors above were established under: when the repository rotates the
    /// timestamp or snapshot keys (TUF 5.3.11, recovery from a fast-forward attack) or the
    /// targets keys, the affected floors start again.
    pub timestamp_keys: Vec<String>,
    pub snapshot_keys: Vec<String>,
    pub targets_keys: Vec<String>,
}

/// `state.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Persisted {
    /// Never install an image with a lower `security_version`.
    pub installed_security_version: u64,
    /// The counter of the last director instruction accepted; older ones are replays.
    pub last_counter: Option<u64>,
    pub floors: Floors,
}

/// The update directory.
#[derive(Debug, Clone)]
pub(crate) struct UpdateDir {
    dir: PathBuf,
}

const POINTER: &str = "active";
const STATE: &str = "state.json";
const ROOT: &str = "root.json";
const DATASTORE: &str = "tuf";

impl UpdateDir {
    pub(crate) fn new(dir: PathBuf) -> Self {
        UpdateDir { dir }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub(crate) fn slot_path(&self, s: Slot) -> PathBuf {
        self.path(s.file_name())
    }

    pub(crate) fn datastore(&self) -> PathBuf {
        self.path(DATASTORE)
    }

    fn state_err(&self, reason: impl Into<String>) -> AgentError {
        AgentError::State {
            dir: self.dir.clone(),
            reason: reason.into(),
        }
    }

    /// Creates the directory and the datastore (0700: rollback protection depends on them).
    pub(crate) fn create(&self) -> Result<(), AgentError> {
        for d in [self.dir.clone(), self.datastore()] {
            let mut b = fs::DirBuilder::new();
            b.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
            b.create(&d)
                .map_err(|e| AgentError::io("creating", &d, e))?;
        }
        Ok(())
    }

    fn read_json<T: for<'de> Deserialize<'de>>(&self, name: &str) -> Result<Option<T>, AgentError> {
        let p = self.path(name);
        match fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                // Fail closed: a damaged floor or pointer must not silently become "none".
                .map_err(|e| self.state_err(format!("{name} is damaged: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(AgentError::io("reading", &p, e)),
        }
    }

    fn write_json<T: Serialize>(&self, name: &str, v: &T) -> Result<(), AgentError> {
        let data = serde_json::to_vec_pretty(v)
            .map_err(|e| self.state_err(format!("serializing {name}: {e}")))?;
        write_atomic(&self.path(name), &data, 0o600)
    }

    pub(crate) fn pointer(&self) -> Result<Option<Pointer>, AgentError> {
        self.read_json(POINTER)
    }

    /// Replaces the pointer atomically and durably (temp, fsync, rename, fsync dir).
    pub(crate) fn write_pointer(&self, p: &Pointer) -> Result<(), AgentError> {
        self.write_json(POINTER, p)
    }

    pub(crate) fn persisted(&self) -> Result<Persisted, AgentError> {
        Ok(self.read_json(STATE)?.unwrap_or_default())
    }

    pub(crate) fn write_persisted(&self, s: &Persisted) -> Result<(), AgentError> {
        self.write_json(STATE, s)
    }

    pub(crate) fn saved_root(&self) -> Result<Option<Vec<u8>>, AgentError> {
        let p = self.path(ROOT);
        match fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(AgentError::io("reading", &p, e)),
        }
    }

    pub(crate) fn save_root(&self, bytes: &[u8]) -> Result<(), AgentError> {
        write_atomic(&self.path(ROOT), bytes, 0o600)
    }
}

/// Length and lowercase hex SHA-256 of a file, read back from disk.
pub(crate) fn hash_file(path: &Path) -> Result<(u64, String), AgentError> {
    let mut f = fs::File::open(path).map_err(|e| AgentError::io("opening", path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut len: u64 = 0;
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| AgentError::io("reading", path, e))?;
        if n == 0 {
            break;
        }
        len += n as u64;
        h.update(&buf[..n]);
    }
    Ok((len, hex::encode(h.finalize())))
}
