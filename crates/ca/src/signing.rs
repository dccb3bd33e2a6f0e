//! Adapters from `medsec_keys::Signer` to what rcgen and the OCSP encoder need.

use std::sync::Arc;

use der::asn1::ObjectIdentifier;
use medsec_core::KeyAlgorithm;
use medsec_keys::Signer;
use spki::AlgorithmIdentifierOwned;

/// A CA key as rcgen sees it: public key bytes, signature algorithm, and a sign call that goes
/// to whichever `KeySource` holds the key.
#[derive(Clone)]
pub(crate) struct CaKey {
    signer: Arc<dyn Signer>,
    alg: &'static rcgen::SignatureAlgorithm,
}

impl CaKey {
    pub(crate) fn new(signer: Arc<dyn Signer>) -> Result<Self, crate::CaError> {
        let alg = rcgen_alg(signer.algorithm()).ok_or_else(|| {
            crate::CaError::Config(format!("{} cannot be a CA key", signer.algorithm()))
        })?;
        Ok(CaKey { signer, alg })
    }

    pub(crate) fn signer(&self) -> &dyn Signer {
        &*self.signer
    }
}

pub(crate) fn rcgen_alg(alg: KeyAlgorithm) -> Option<&'static rcgen::SignatureAlgorithm> {
    match alg {
        KeyAlgorithm::EcdsaP256 => Some(&rcgen::PKCS_ECDSA_P256_SHA256),
        KeyAlgorithm::EcdsaP384 => Some(&rcgen::PKCS_ECDSA_P384_SHA384),
        KeyAlgorithm::Ed25519 => Some(&rcgen::PKCS_ED25519),
        _ => None,
    }
}

impl rcgen::PublicKeyData for CaKey {
    fn der_bytes(&self) -> &[u8] {
        self.signer.public_key()
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.alg
    }
}

impl rcgen::SigningKey for CaKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        // rcgen's error type has no room for our message; the cause is logged by the key source.
        self.signer
            .sign(msg)
            .map_err(|_| rcgen::Error::RemoteKeyError)
    }
}

/// The AlgorithmIdentifier of signatures made by `alg` (for structures rcgen does not build).
pub(crate) fn signature_algorithm_id(alg: KeyAlgorithm) -> Option<AlgorithmIdentifierOwned> {
    let oid = match alg {
        KeyAlgorithm::EcdsaP256 => ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2"),
        KeyAlgorithm::EcdsaP384 => ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3"),
        KeyAlgorithm::Ed25519 => ObjectIdentifier::new_unwrap("1.3.101.112"),
        _ => return None,
    };
    Some(AlgorithmIdentifierOwned {
        oid,
        parameters: None,
    })
}
