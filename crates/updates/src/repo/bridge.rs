//! Bridges medsec's `Signer` (encrypted key files, PKCS#11 tokens) to tough's `KeySource` and
//! `Sign`, so TUF metadata is signed where the key lives and private keys never leave it.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lc_rs::rand::SecureRandom;
use medsec_core::KeyAlgorithm;
use medsec_keys::Signer;
use tough::schema::decoded::{Decoded, Hex};
use tough::schema::key::{EcdsaKey, EcdsaScheme, Ed25519Key, Ed25519Scheme, Key};

use crate::UpdatesError;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The TUF public key of a signer: `ecdsa` / `ecdsa-sha2-nistp256` with a PEM
/// SubjectPublicKeyInfo (what python-tuf, tuf-js and tough all read), or `ed25519` with the hex
/// key. Other algorithms have no TUF scheme the standard clients share, so they are refused.
pub fn tuf_key(signer: &dyn Signer) -> Result<Key, UpdatesError> {
    let public = signer.public_key().to_vec();
    match signer.algorithm() {
        KeyAlgorithm::EcdsaP256 if public.len() == 65 => Ok(Key::Ecdsa {
            // tough encodes these bytes as the PEM SPKI in the metadata.
            keyval: EcdsaKey {
                public: public.into(),
                _extra: HashMap::new(),
            },
            scheme: EcdsaScheme::EcdsaSha2Nistp256,
            _extra: HashMap::new(),
        }),
        KeyAlgorithm::Ed25519 if public.len() == 32 => Ok(Key::Ed25519 {
            keyval: Ed25519Key {
                public: public.into(),
                _extra: HashMap::new(),
            },
            scheme: Ed25519Scheme::Ed25519,
            _extra: HashMap::new(),
        }),
        other => Err(UpdatesError::invalid(
            "TUF key",
            format!(
                "{other} key {} cannot sign TUF metadata (use ECDSA P-256 or Ed25519)",
                signer.key_ref()
            ),
        )),
    }
}

/// The TUF key id: SHA-256 of the key's canonical JSON, as tough computes it.
pub fn tuf_keyid(signer: &dyn Signer) -> Result<Decoded<Hex>, UpdatesError> {
    tuf_key(signer)?
        .key_id()
        .map_err(|e| UpdatesError::invalid("TUF key", e.to_string()))
}

/// A medsec signer seen through tough's `KeySource`/`Sign` traits. Holds an already opened
/// signer, so tough asking for it on every role it signs costs nothing (opening an encrypted
/// key file runs Argon2).
#[derive(Clone)]
pub struct TufKeySource {
    signer: Arc<dyn Signer>,
    key: Key,
}

impl std::fmt::Debug for TufKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TufKeySource")
            .field("key", &self.signer.key_ref().to_string())
            .finish_non_exhaustive()
    }
}

impl TufKeySource {
    /// Wraps a signer; refuses algorithms without a shared TUF scheme.
    pub fn new(signer: Arc<dyn Signer>) -> Result<Self, UpdatesError> {
        let key = tuf_key(&*signer)?;
        Ok(TufKeySource { signer, key })
    }
}

#[tough::async_trait]
impl tough::sign::Sign for TufKeySource {
    fn tuf_key(&self) -> Key {
        self.key.clone()
    }

    async fn sign(
        &self,
        msg: &[u8],
        _rng: &(dyn SecureRandom + Sync),
    ) -> Result<Vec<u8>, BoxError> {
        // medsec signers return DER ECDSA-Sig-Value and raw Ed25519 signatures, which is what
        // the TUF ecdsa-sha2-nistp256 and ed25519 schemes carry.
        Ok(self.signer.sign(msg)?)
    }
}

#[tough::async_trait]
impl tough::key_source::KeySource for TufKeySource {
    async fn as_sign(&self) -> Result<Box<dyn tough::sign::Sign>, BoxError> {
        Ok(Box::new(self.clone()))
    }

    async fn write(&self, _value: &str, _key_id_hex: &str) -> Result<(), BoxError> {
        // Private keys stay in their medsec KeySource; there is nothing to write.
        Err("medsec keys are generated inside their key source and are never written out".into())
    }
}
