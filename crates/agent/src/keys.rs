//! The device's private key: generated here, kept as PKCS#8, used for CSRs and TLS client auth.
//!
//! Why a plaintext PKCS#8 file (mode 0600) and not `medsec_keys::EncryptedFileKeySource`: the
//! device key has to be usable unattended at boot, so a passphrase would have to sit next to
//! the sealed file and would protect nothing; and rustls needs the PKCS#8 itself for client
//! authentication, which a `Signer` deliberately does not give out. Protection at rest on a
//! device comes from the platform (secure element / TPM through PKCS#11, encrypted storage),
//! which is the place for a second key back end.

use medsec_core::KeyAlgorithm;
use rcgen::{PublicKeyData, SigningKey};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use zeroize::Zeroizing;

use crate::AgentError;

/// The device key algorithms the agent can generate; the server's profile decides which of
/// them it accepts.
pub const SUPPORTED: [KeyAlgorithm; 3] = [
    KeyAlgorithm::EcdsaP256,
    KeyAlgorithm::EcdsaP384,
    KeyAlgorithm::Ed25519,
];

/// A device key pair.
pub(crate) struct DeviceKey {
    pair: rcgen::KeyPair,
    alg: KeyAlgorithm,
}

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("DeviceKey")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

fn rcgen_alg(alg: KeyAlgorithm) -> Result<&'static rcgen::SignatureAlgorithm, AgentError> {
    match alg {
        KeyAlgorithm::EcdsaP256 => Ok(&rcgen::PKCS_ECDSA_P256_SHA256),
        KeyAlgorithm::EcdsaP384 => Ok(&rcgen::PKCS_ECDSA_P384_SHA384),
        KeyAlgorithm::Ed25519 => Ok(&rcgen::PKCS_ED25519),
        other => Err(AgentError::Config(format!(
            "the agent does not generate {other} keys; use ecdsa-p256, ecdsa-p384 or ed25519"
        ))),
    }
}

impl DeviceKey {
    pub(crate) fn generate(alg: KeyAlgorithm) -> Result<Self, AgentError> {
        let pair = rcgen::KeyPair::generate_for(rcgen_alg(alg)?)
            .map_err(|e| AgentError::Key(format!("generating a {alg} key: {e}")))?;
        Ok(DeviceKey { pair, alg })
    }

    /// Parses a `PRIVATE KEY` (PKCS#8) PEM; `origin` names the source in errors.
    pub(crate) fn from_pem(pem: &str, origin: &str) -> Result<Self, AgentError> {
        let pair = rcgen::KeyPair::from_pem(pem)
            .map_err(|e| AgentError::Key(format!("{origin} is not a usable PKCS#8 key: {e}")))?;
        let a = pair.algorithm();
        let alg = SUPPORTED
            .into_iter()
            .find(|k| rcgen_alg(*k).is_ok_and(|r| r == a))
            .ok_or_else(|| {
                AgentError::Key(format!(
                    "{origin} holds a key type the agent does not use ({a:?})"
                ))
            })?;
        Ok(DeviceKey { pair, alg })
    }

    pub(crate) fn to_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(self.pair.serialize_pem())
    }

    pub(crate) fn algorithm(&self) -> KeyAlgorithm {
        self.alg
    }

    /// DER SubjectPublicKeyInfo.
    pub(crate) fn spki_der(&self) -> Vec<u8> {
        self.pair.subject_public_key_info()
    }

    /// A signature over `msg` in X.509 encoding (DER ECDSA-Sig-Value, raw Ed25519).
    pub(crate) fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, AgentError> {
        self.pair
            .sign(msg)
            .map_err(|e| AgentError::Key(format!("signing failed: {e}")))
    }

    /// DER AlgorithmIdentifier of the signatures [`sign`](Self::sign) makes. Fixed per key
    /// type (no parameters for ECDSA or Ed25519, RFC 5758 / RFC 8410).
    pub(crate) fn signature_algorithm_der(&self) -> &'static [u8] {
        match self.alg {
            // ecdsa-with-SHA384
            KeyAlgorithm::EcdsaP384 => &[
                0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03,
            ],
            // id-Ed25519
            KeyAlgorithm::Ed25519 => &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70],
            // ecdsa-with-SHA256; `new`/`from_pem` admit nothing outside SUPPORTED.
            _ => &[
                0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
            ],
        }
    }

    /// The key for rustls client authentication.
    pub(crate) fn rustls_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.pair.serialize_der()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip_keeps_algorithm_and_public_key() {
        for alg in SUPPORTED {
            let k = DeviceKey::generate(alg).unwrap();
            let back = DeviceKey::from_pem(&k.to_pem(), "test").unwrap();
            assert_eq!(back.algorithm(), alg);
            assert_eq!(back.spki_der(), k.spki_der());
        }
    }

    #[test]
    fn rsa_is_refused_with_a_clear_message() {
        let e = DeviceKey::generate(KeyAlgorithm::Rsa2048).unwrap_err();
        assert!(e.to_string().contains("ecdsa-p256"), "{e}");
    }

    #[test]
    fn garbage_is_not_a_key() {
        assert!(DeviceKey::from_pem("not pem", "x").is_err());
    }
}
