//! The passphrase that unlocks encrypted key files, read from an env var or a file, never argv.

use std::path::Path;

use zeroize::Zeroizing;

use crate::KeyError;

/// A passphrase held in memory that is wiped on drop.
pub struct Passphrase(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(***)")
    }
}

impl Passphrase {
    /// Shorter passphrases make the Argon2id work factor the only defence; refuse them.
    pub const MIN_LEN: usize = 12;

    pub fn new(bytes: Vec<u8>) -> Result<Self, KeyError> {
        let bytes = Zeroizing::new(bytes);
        if bytes.len() < Self::MIN_LEN {
            return Err(KeyError::Passphrase(format!(
                "must be at least {} bytes long",
                Self::MIN_LEN
            )));
        }
        Ok(Passphrase(bytes))
    }

    /// Reads the first line of a file (a trailing newline is not part of the passphrase).
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let raw = Zeroizing::new(std::fs::read(path).map_err(|source| KeyError::Io {
            op: "read passphrase file",
            path: path.display().to_string(),
            source,
        })?);
        let line = raw.split(|&b| b == b'\n').next().unwrap_or(&[]);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        Self::new(line.to_vec())
    }

    pub(crate) fn expose(&self) -> &[u8] {
        &self.0
    }
}
