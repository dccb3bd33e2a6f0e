//! In-memory software signer over aws-lc-rs, used once an encrypted key file is opened.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair,
    KeyPair,
};
use medsec_core::KeyAlgorithm;

use crate::{KeyError, KeyRef, Signer};

enum Inner {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A key held in process memory (aws-lc-rs zeroes its key material on drop).
pub struct SoftwareSigner {
    key_ref: KeyRef,
    alg: KeyAlgorithm,
    inner: Inner,
    public: Vec<u8>,
    rng: SystemRandom,
}

impl std::fmt::Debug for SoftwareSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareSigner")
            .field("key_ref", &self.key_ref)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl SoftwareSigner {
    /// Generates a new key, returning its PKCS#8 DER so the caller can seal it.
    pub(crate) fn generate_pkcs8(
        alg: KeyAlgorithm,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, KeyError> {
        let rng = SystemRandom::new();
        let doc = match alg {
            KeyAlgorithm::EcdsaP256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            }
            KeyAlgorithm::EcdsaP384 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, &rng)
            }
            KeyAlgorithm::Ed25519 => Ed25519KeyPair::generate_pkcs8(&rng),
            other => return Err(KeyError::UnsupportedAlgorithm(other)),
        }
        .map_err(|_| KeyError::Rejected("key generation failed".into()))?;
        Ok(zeroize::Zeroizing::new(doc.as_ref().to_vec()))
    }

    /// Opens a PKCS#8 private key of the given algorithm.
    pub fn from_pkcs8(key_ref: KeyRef, alg: KeyAlgorithm, pkcs8: &[u8]) -> Result<Self, KeyError> {
        let reject = |e: aws_lc_rs::error::KeyRejected| {
            KeyError::Rejected(format!("not a valid {alg} PKCS#8 private key: {e}"))
        };
        let inner = match alg {
            KeyAlgorithm::EcdsaP256 => Inner::Ecdsa(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8).map_err(reject)?,
            ),
            KeyAlgorithm::EcdsaP384 => Inner::Ecdsa(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, pkcs8).map_err(reject)?,
            ),
            KeyAlgorithm::Ed25519 => {
                Inner::Ed25519(Ed25519KeyPair::from_pkcs8(pkcs8).map_err(reject)?)
            }
            other => return Err(KeyError::UnsupportedAlgorithm(other)),
        };
        let public = match &inner {
            Inner::Ecdsa(k) => k.public_key().as_ref().to_vec(),
            Inner::Ed25519(k) => k.public_key().as_ref().to_vec(),
        };
        Ok(SoftwareSigner {
            key_ref,
            alg,
            inner,
            public,
            rng: SystemRandom::new(),
        })
    }

    /// Tries each CA-capable algorithm on a PKCS#8 blob; for importing keys of unknown type.
    pub fn from_pkcs8_any(key_ref: KeyRef, pkcs8: &[u8]) -> Result<Self, KeyError> {
        for alg in [
            KeyAlgorithm::EcdsaP256,
            KeyAlgorithm::EcdsaP384,
            KeyAlgorithm::Ed25519,
        ] {
            if let Ok(s) = Self::from_pkcs8(key_ref.clone(), alg, pkcs8) {
                return Ok(s);
            }
        }
        Err(KeyError::Rejected(
            "not a PKCS#8 ECDSA P-256, ECDSA P-384 or Ed25519 private key".into(),
        ))
    }
}

impl Signer for SoftwareSigner {
    fn key_ref(&self) -> &KeyRef {
        &self.key_ref
    }
    fn algorithm(&self) -> KeyAlgorithm {
        self.alg
    }
    fn public_key(&self) -> &[u8] {
        &self.public
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.inner {
            Inner::Ecdsa(k) => k
                .sign(&self.rng, msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Sign("ECDSA signing failed".into())),
            Inner::Ed25519(k) => Ok(k.sign(msg).as_ref().to_vec()),
        }
    }
}
