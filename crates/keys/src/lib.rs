//! Private keys behind one `Signer` trait: encrypted key files (default) and PKCS#11 tokens.
//!
//! The invariant this crate keeps: a private key never leaves its `KeySource` in plaintext.
//! File keys are sealed with AES-256-GCM under a key derived from a passphrase by Argon2id;
//! token keys are generated inside the token as non-extractable objects and only ever asked
//! to sign.

mod file;
mod keyref;
mod passphrase;
mod pkcs11;
mod software;
mod spki;

pub use file::{EncryptedFileKeySource, KdfParams};
pub use keyref::KeyRef;
pub use passphrase::Passphrase;
pub use pkcs11::{Pkcs11Config, Pkcs11KeySource};
pub use software::SoftwareSigner;
pub use spki::{public_key_from_spki, spki_from_public_key};

use medsec_core::KeyAlgorithm;

/// Errors from key generation, loading and signing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("key algorithm {0} cannot be used here")]
    UnsupportedAlgorithm(KeyAlgorithm),
    #[error("key {key} not found")]
    NotFound { key: String },
    #[error("key {key} already exists; refusing to overwrite it")]
    AlreadyExists { key: String },
    #[error("wrong passphrase, or key file {path} was modified")]
    Decrypt { path: String },
    #[error("key file {path} is malformed: {reason}")]
    Malformed { path: String, reason: String },
    #[error("passphrase: {0}")]
    Passphrase(String),
    #[error("invalid key reference {value:?}: {reason}")]
    BadRef { value: String, reason: &'static str },
    #[error("key material rejected: {0}")]
    Rejected(String),
    #[error("{op} on {path}: {source}")]
    Io {
        op: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("PKCS#11 {op}: {reason}")]
    Pkcs11 { op: &'static str, reason: String },
    #[error("signing failed: {0}")]
    Sign(String),
}

/// A private key that can sign, wherever it lives. Signatures are returned in the encoding
/// X.509 uses: DER `ECDSA-Sig-Value` for ECDSA, the raw 64 bytes for Ed25519.
pub trait Signer: Send + Sync {
    fn key_ref(&self) -> &KeyRef;
    fn algorithm(&self) -> KeyAlgorithm;
    /// The subjectPublicKey bits: an uncompressed EC point, or the 32-byte Ed25519 key.
    fn public_key(&self) -> &[u8];
    /// The DER SubjectPublicKeyInfo.
    fn spki_der(&self) -> Vec<u8> {
        spki_from_public_key(self.algorithm(), self.public_key())
    }
    /// Signs `msg` (the whole message; hashing is the signer's job).
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, KeyError>;
}

/// Where keys are made and found.
pub trait KeySource: Send + Sync {
    /// Creates a new key named `label`; refuses to replace an existing one.
    fn generate(&self, label: &str, alg: KeyAlgorithm) -> Result<Box<dyn Signer>, KeyError>;
    /// Opens an existing key.
    fn load(&self, key: &KeyRef) -> Result<Box<dyn Signer>, KeyError>;
    /// Deletes a key for good, e.g. one a rekey replaced, so that it stops occupying the
    /// source (a token has room for few objects). `NotFound` if there is no such key.
    /// Signers already loaded from it stop working.
    fn destroy(&self, key: &KeyRef) -> Result<(), KeyError>;
}

/// Checks a key label: it becomes a file name or a token object label.
pub(crate) fn check_label(label: &str) -> Result<(), KeyError> {
    let ok = !label.is_empty()
        && label.len() <= 100
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !label.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(KeyError::BadRef {
            value: label.to_owned(),
            reason: "labels are 1-100 characters of letters, digits, '-', '_' and '.', not starting with '.'",
        })
    }
}
