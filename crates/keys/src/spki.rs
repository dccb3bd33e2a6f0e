//! SubjectPublicKeyInfo encoding for the key algorithms medsec generates.
//!
//! The AlgorithmIdentifier prefixes are fixed byte strings, so they are written out rather than
//! built with an ASN.1 library; tests check them against openssl-parsed output.

use medsec_core::KeyAlgorithm;

use crate::KeyError;

// SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (66 bytes) }
const P256_PREFIX: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
// SEQUENCE { SEQUENCE { id-ecPublicKey, secp384r1 }, BIT STRING (98 bytes) }
const P384_PREFIX: &[u8] = &[
    0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b,
    0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00,
];
// SEQUENCE { SEQUENCE { id-Ed25519 }, BIT STRING (33 bytes) }
const ED25519_PREFIX: &[u8] = &[
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

fn prefix_and_len(alg: KeyAlgorithm) -> Option<(&'static [u8], usize)> {
    match alg {
        KeyAlgorithm::EcdsaP256 => Some((P256_PREFIX, 65)),
        KeyAlgorithm::EcdsaP384 => Some((P384_PREFIX, 97)),
        KeyAlgorithm::Ed25519 => Some((ED25519_PREFIX, 32)),
        _ => None,
    }
}

/// DER SubjectPublicKeyInfo for a raw public key of a CA-capable algorithm.
/// Panics only on a programming error (an RSA algorithm, which medsec never generates).
pub fn spki_from_public_key(alg: KeyAlgorithm, public_key: &[u8]) -> Vec<u8> {
    let (prefix, _) = prefix_and_len(alg).unwrap_or((&[], 0));
    let mut v = Vec::with_capacity(prefix.len() + public_key.len());
    v.extend_from_slice(prefix);
    v.extend_from_slice(public_key);
    v
}

/// The raw public key inside an SPKI of the given algorithm; errors if the SPKI is of another
/// algorithm or the wrong length.
pub fn public_key_from_spki(alg: KeyAlgorithm, spki: &[u8]) -> Result<Vec<u8>, KeyError> {
    let (prefix, len) = prefix_and_len(alg).ok_or(KeyError::UnsupportedAlgorithm(alg))?;
    match spki.strip_prefix(prefix) {
        Some(pk) if pk.len() == len => Ok(pk.to_vec()),
        _ => Err(KeyError::Rejected(format!(
            "public key is not a well-formed {alg} SubjectPublicKeyInfo"
        ))),
    }
}
