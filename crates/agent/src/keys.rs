//! The device's private key: a PKCS#8 file in the state directory, or a non-extractable key
//! inside a PKCS#11 token. Either way it signs (CSRs, TLS client authentication) only through
//! `medsec_keys::Signer`, so nothing past this module cares where the key lives.
//!
//! Why a plaintext PKCS#8 file (mode 0600) and not `medsec_keys::EncryptedFileKeySource` for
//! the file case: the device key has to be usable unattended at boot, so a passphrase would
//! have to sit next to the sealed file and would protect nothing. Protection at rest on a
//! device comes from the platform: a secure element or TPM through PKCS#11 (the token case,
//! where the key is generated inside the token and never leaves it), or encrypted storage.
//!
//! A token key is recorded in the state directory by a [`TokenKeyRecord`]: which token
//! object it is, and its public key. The public key lets the state directory pair keys with
//! certificates (and finish an interrupted replacement) without opening the token, and lets
//! loading notice a token whose object under that label is no longer our key.

use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use medsec_core::KeyAlgorithm;
use medsec_keys::{KeyError, KeyRef, KeySource, Pkcs11KeySource, Signer, SoftwareSigner};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::AgentError;

/// The device key algorithms the agent can generate; the server's profile decides which of
/// them it accepts.
pub const SUPPORTED: [KeyAlgorithm; 3] = [
    KeyAlgorithm::EcdsaP256,
    KeyAlgorithm::EcdsaP384,
    KeyAlgorithm::Ed25519,
];

/// Label of the first key the agent generates in a token; later ones add the Unix time.
pub const DEFAULT_PKCS11_KEY_LABEL: &str = "device-key";

/// The name file keys carry in `medsec_keys` (it shows up in signing errors).
const FILE_KEY_NAME: &str = "device.key";

fn unsupported(alg: KeyAlgorithm) -> AgentError {
    AgentError::Config(format!(
        "the agent does not generate {alg} keys; use ecdsa-p256, ecdsa-p384 or ed25519"
    ))
}

/// A device key pair, ready to sign.
#[derive(Clone)]
pub(crate) struct DeviceKey {
    alg: KeyAlgorithm,
    signer: Arc<dyn Signer>,
    home: KeyHome,
}

/// Where a [`DeviceKey`] lives, which decides how the state directory records it.
#[derive(Clone)]
pub(crate) enum KeyHome {
    /// In memory and in `device.key`: the PKCS#8 DER (shared, so a clone copies no key).
    File(Arc<Zeroizing<Vec<u8>>>),
    /// In a token; only the reference and public key are ours to store.
    Token(TokenKeyRecord),
}

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("DeviceKey")
            .field("alg", &self.alg)
            .field("location", &self.location())
            .finish_non_exhaustive()
    }
}

impl DeviceKey {
    /// A new software key, to be stored as `device.key`.
    pub(crate) fn generate(alg: KeyAlgorithm) -> Result<Self, AgentError> {
        let rng = SystemRandom::new();
        let doc = match alg {
            KeyAlgorithm::EcdsaP256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            }
            KeyAlgorithm::EcdsaP384 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, &rng)
            }
            KeyAlgorithm::Ed25519 => Ed25519KeyPair::generate_pkcs8(&rng),
            other => return Err(unsupported(other)),
        }
        .map_err(|_| AgentError::Key(format!("generating a {alg} key failed")))?;
        Self::from_pkcs8(Zeroizing::new(doc.as_ref().to_vec()), "a generated key")
    }

    fn from_pkcs8(pkcs8: Zeroizing<Vec<u8>>, origin: &str) -> Result<Self, AgentError> {
        let key_ref = KeyRef::File {
            label: FILE_KEY_NAME.into(),
        };
        let signer = SoftwareSigner::from_pkcs8_any(key_ref, &pkcs8)
            .map_err(|e| AgentError::Key(format!("{origin} is not a usable PKCS#8 key: {e}")))?;
        let alg = signer.algorithm();
        if !SUPPORTED.contains(&alg) {
            return Err(AgentError::Key(format!(
                "{origin} holds a key type the agent does not use ({alg})"
            )));
        }
        Ok(DeviceKey {
            alg,
            signer: Arc::new(signer),
            home: KeyHome::File(Arc::new(pkcs8)),
        })
    }

    /// Parses a `PRIVATE KEY` (PKCS#8) PEM; `origin` names the source in errors.
    pub(crate) fn from_pem(pem: &str, origin: &str) -> Result<Self, AgentError> {
        let block = pem::parse(pem)
            .map_err(|e| AgentError::Key(format!("{origin} is not a usable PKCS#8 key: {e}")))?;
        if block.tag() != "PRIVATE KEY" {
            return Err(AgentError::Key(format!(
                "{origin} holds a {} block, not a PKCS#8 PRIVATE KEY",
                block.tag()
            )));
        }
        Self::from_pkcs8(Zeroizing::new(block.into_contents()), origin)
    }

    /// A new key generated inside the token under the first free label of `labels`. The
    /// private half is created sensitive and non-extractable by `medsec_keys`; only its
    /// public key and label come back.
    pub(crate) fn generate_in_token(
        token: &Pkcs11KeySource,
        labels: &[String],
        alg: KeyAlgorithm,
    ) -> Result<Self, AgentError> {
        if !SUPPORTED.contains(&alg) {
            return Err(unsupported(alg));
        }
        for label in labels {
            match token.generate(label, alg) {
                Ok(signer) => return Ok(Self::in_token(token, signer.into())),
                // Left by an earlier attempt that never got a certificate (or by someone else):
                // never reuse or replace it, take the next label.
                Err(KeyError::AlreadyExists { .. }) => continue,
                Err(e) => {
                    return Err(AgentError::Key(format!(
                        "generating a {alg} key in token {:?}: {e}",
                        token.token_label()
                    )));
                }
            }
        }
        Err(AgentError::Key(format!(
            "token {:?} already holds keys labelled {}; remove stale ones or choose another --pkcs11-key-label",
            token.token_label(),
            labels.join(", ")
        )))
    }

    /// The token key a [`TokenKeyRecord`] names, checked to still be the key recorded.
    pub(crate) fn open_in_token(
        token: &Pkcs11KeySource,
        record: &TokenKeyRecord,
    ) -> Result<Self, AgentError> {
        if record.token != token.token_label() {
            return Err(AgentError::Config(format!(
                "the device key is {} in token {:?}, but the configured token is {:?}",
                record.key_ref(),
                record.token,
                token.token_label()
            )));
        }
        let signer: Arc<dyn Signer> = token
            .load(&record.key_ref())
            .map_err(|e| AgentError::Key(format!("token {:?}: {e}", record.token)))?
            .into();
        // A re-initialized token can hold a different key under the same label; signing with
        // it would only produce requests and handshakes the server refuses, less clearly.
        if signer.algorithm() != record.algorithm
            || !crate::state::same_spki(&signer.spki_der(), &record.spki_der)
        {
            return Err(AgentError::Key(format!(
                "{} in token {:?} is no longer the device key recorded in the state directory",
                record.key_ref(),
                record.token
            )));
        }
        Ok(Self::in_token(token, signer))
    }

    fn in_token(token: &Pkcs11KeySource, signer: Arc<dyn Signer>) -> Self {
        let record = TokenKeyRecord {
            label: signer.key_ref().label().to_owned(),
            token: token.token_label().to_owned(),
            algorithm: signer.algorithm(),
            spki_der: signer.spki_der(),
        };
        DeviceKey {
            alg: signer.algorithm(),
            signer,
            home: KeyHome::Token(record),
        }
    }

    pub(crate) fn home(&self) -> &KeyHome {
        &self.home
    }

    /// PKCS#8 PEM of a file key; `None` for a token key, which has no exportable form.
    pub(crate) fn to_pem(&self) -> Option<Zeroizing<String>> {
        match &self.home {
            KeyHome::File(der) => Some(pkcs8_pem(der)),
            KeyHome::Token(_) => None,
        }
    }

    pub(crate) fn algorithm(&self) -> KeyAlgorithm {
        self.alg
    }

    /// For people: `device.key`, or the token object.
    pub(crate) fn location(&self) -> String {
        match &self.home {
            KeyHome::File(_) => FILE_KEY_NAME.into(),
            KeyHome::Token(r) => r.location(),
        }
    }

    /// DER SubjectPublicKeyInfo.
    pub(crate) fn spki_der(&self) -> Vec<u8> {
        self.signer.spki_der()
    }

    /// The key as a `medsec_keys::Signer`, e.g. for TLS client authentication.
    pub(crate) fn signer(&self) -> Arc<dyn Signer> {
        Arc::clone(&self.signer)
    }

    /// A signature over `msg` in X.509 encoding (DER ECDSA-Sig-Value, raw Ed25519).
    pub(crate) fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, AgentError> {
        self.signer
            .sign(msg)
            .map_err(|e| AgentError::Key(format!("{}: {e}", self.location())))
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
            // ecdsa-with-SHA256; every constructor admits nothing outside SUPPORTED.
            _ => &[
                0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
            ],
        }
    }
}

/// PEM of PKCS#8 DER, built in a zeroizing buffer (reserved up front, so growing it leaves
/// no copies behind).
fn pkcs8_pem(der: &[u8]) -> Zeroizing<String> {
    const BEGIN: &str = "-----BEGIN PRIVATE KEY-----\n";
    const END: &str = "-----END PRIVATE KEY-----\n";
    let b64 = Zeroizing::new(B64.encode(der));
    let mut out = Zeroizing::new(String::with_capacity(
        BEGIN.len() + END.len() + b64.len() + b64.len() / 64 + 1,
    ));
    out.push_str(BEGIN);
    for (i, c) in b64.chars().enumerate() {
        if i > 0 && i % 64 == 0 {
            out.push('\n');
        }
        out.push(c);
    }
    out.push('\n');
    out.push_str(END);
    out
}

/// Labels to try for a new token key: `base` itself for the first key of a device, else (and
/// when `base` is taken) `base-<unix time>`, with a counter for several keys in one second.
pub(crate) fn token_key_labels(base: &str, first: bool, unix_time: i64) -> Vec<String> {
    let stamped = format!("{base}-{unix_time}");
    let mut labels = Vec::new();
    if first {
        labels.push(base.to_owned());
    }
    labels.push(stamped.clone());
    labels.extend((2..=9).map(|n| format!("{stamped}-{n}")));
    labels
}

/// Checks a configured key label: it and every label derived from it must be valid token
/// object labels.
pub(crate) fn check_token_key_label(base: &str) -> Result<(), AgentError> {
    for candidate in [base.to_owned(), format!("{base}-{}-9", i64::MAX)] {
        format!("pkcs11:object={candidate}")
            .parse::<KeyRef>()
            .map_err(|e| {
                AgentError::Config(format!(
                    "PKCS#11 key label {base:?}: {e} (and leave room for the \"-<unix time>\" suffix of later keys)"
                ))
            })?;
    }
    Ok(())
}

/// What the state directory keeps about a key in a token: enough to find it again and to
/// match it with certificates, nothing secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenKeyRecord {
    /// CKA_LABEL of the key pair.
    pub label: String,
    /// Label of the token holding it.
    pub token: String,
    pub algorithm: KeyAlgorithm,
    /// DER SubjectPublicKeyInfo.
    pub spki_der: Vec<u8>,
}

/// The on-disk form of a [`TokenKeyRecord`].
#[derive(Serialize, Deserialize)]
struct RecordFile {
    /// `pkcs11:object=<label>`, the form `medsec_keys::KeyRef` reads.
    key: String,
    token: String,
    algorithm: KeyAlgorithm,
    /// Base64 DER SubjectPublicKeyInfo.
    public_key: String,
}

impl TokenKeyRecord {
    pub(crate) fn key_ref(&self) -> KeyRef {
        KeyRef::Pkcs11 {
            label: self.label.clone(),
        }
    }

    /// For people: the object and its token.
    pub(crate) fn location(&self) -> String {
        format!("{} in token {:?}", self.key_ref(), self.token)
    }

    pub(crate) fn to_json(&self) -> Result<Vec<u8>, AgentError> {
        let file = RecordFile {
            key: self.key_ref().to_string(),
            token: self.token.clone(),
            algorithm: self.algorithm,
            public_key: B64.encode(&self.spki_der),
        };
        let mut out = serde_json::to_vec_pretty(&file)
            .map_err(|e| AgentError::Key(format!("recording {}: {e}", self.location())))?;
        out.push(b'\n');
        Ok(out)
    }

    /// Parses a record file; `origin` names it in errors.
    pub(crate) fn from_json(data: &[u8], origin: &str) -> Result<Self, String> {
        let f: RecordFile = serde_json::from_slice(data)
            .map_err(|e| format!("{origin} is not a token key record: {e}"))?;
        let label = match f.key.parse::<KeyRef>() {
            Ok(KeyRef::Pkcs11 { label }) => label,
            Ok(other) => return Err(format!("{origin}: {other} is not a pkcs11: reference")),
            Err(e) => return Err(format!("{origin}: {e}")),
        };
        if !SUPPORTED.contains(&f.algorithm) {
            return Err(format!(
                "{origin}: {} is not a device key type",
                f.algorithm
            ));
        }
        if f.token.is_empty() {
            return Err(format!("{origin}: empty token label"));
        }
        let spki_der = B64
            .decode(f.public_key.as_bytes())
            .map_err(|e| format!("{origin}: public_key is not base64: {e}"))?;
        Ok(TokenKeyRecord {
            label,
            token: f.token,
            algorithm: f.algorithm,
            spki_der,
        })
    }
}

/// The current key as the state directory holds it, before any token is opened: a file key
/// is usable at once, a token key is only a record until [`DeviceKey::open_in_token`].
#[derive(Debug)]
pub(crate) enum StoredKey {
    File(DeviceKey),
    Token(TokenKeyRecord),
}

impl StoredKey {
    pub(crate) fn spki_der(&self) -> Vec<u8> {
        match self {
            StoredKey::File(k) => k.spki_der(),
            StoredKey::Token(r) => r.spki_der.clone(),
        }
    }

    pub(crate) fn algorithm(&self) -> KeyAlgorithm {
        match self {
            StoredKey::File(k) => k.algorithm(),
            StoredKey::Token(r) => r.algorithm,
        }
    }

    pub(crate) fn location(&self) -> String {
        match self {
            StoredKey::File(k) => k.location(),
            StoredKey::Token(r) => r.location(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::PublicKeyData;

    #[test]
    fn pem_round_trip_keeps_algorithm_and_public_key() {
        for alg in SUPPORTED {
            let k = DeviceKey::generate(alg).unwrap();
            let pem = k.to_pem().unwrap();
            let back = DeviceKey::from_pem(&pem, "test").unwrap();
            assert_eq!(back.algorithm(), alg);
            assert_eq!(back.spki_der(), k.spki_der());
            // Other tools read it too (the format of existing device.key files).
            let other = rcgen::KeyPair::from_pem(&pem).unwrap();
            assert_eq!(other.subject_public_key_info(), k.spki_der());
        }
    }

    #[test]
    fn key_files_written_by_earlier_versions_still_load() {
        // Earlier agents wrote rcgen's PKCS#8 PEM.
        for (alg, rc) in [
            (KeyAlgorithm::EcdsaP256, &rcgen::PKCS_ECDSA_P256_SHA256),
            (KeyAlgorithm::EcdsaP384, &rcgen::PKCS_ECDSA_P384_SHA384),
            (KeyAlgorithm::Ed25519, &rcgen::PKCS_ED25519),
        ] {
            let old = rcgen::KeyPair::generate_for(rc).unwrap();
            let k = DeviceKey::from_pem(&old.serialize_pem(), "old").unwrap();
            assert_eq!(k.algorithm(), alg);
            assert_eq!(k.spki_der(), old.subject_public_key_info());
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
        let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let e = DeviceKey::from_pem(cert, "x").unwrap_err();
        assert!(e.to_string().contains("CERTIFICATE"), "{e}");
    }

    #[test]
    fn signatures_verify_against_the_public_key() {
        use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
        for alg in SUPPORTED {
            let k = DeviceKey::generate(alg).unwrap();
            let v: &'static dyn VerificationAlgorithm = match alg {
                KeyAlgorithm::EcdsaP256 => &signature::ECDSA_P256_SHA256_ASN1,
                KeyAlgorithm::EcdsaP384 => &signature::ECDSA_P384_SHA384_ASN1,
                _ => &signature::ED25519,
            };
            let public = medsec_keys::public_key_from_spki(alg, &k.spki_der()).unwrap();
            let sig = k.sign(b"csr body").unwrap();
            UnparsedPublicKey::new(v, public)
                .verify(b"csr body", &sig)
                .unwrap();
        }
    }

    #[test]
    fn labels_for_new_token_keys() {
        assert_eq!(
            token_key_labels("device-key", true, 1700000000)[..3],
            [
                "device-key",
                "device-key-1700000000",
                "device-key-1700000000-2"
            ]
        );
        let rekey = token_key_labels("device-key", false, 1700000000);
        assert_eq!(rekey[0], "device-key-1700000000");
        assert!(!rekey.contains(&"device-key".to_owned()));
        check_token_key_label(DEFAULT_PKCS11_KEY_LABEL).unwrap();
        for bad in ["", "../x", "a b", &"x".repeat(90)] {
            assert!(check_token_key_label(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn token_record_round_trip_and_validation() {
        let k = DeviceKey::generate(KeyAlgorithm::EcdsaP384).unwrap();
        let r = TokenKeyRecord {
            label: "device-key".into(),
            token: "medsec-device".into(),
            algorithm: KeyAlgorithm::EcdsaP384,
            spki_der: k.spki_der(),
        };
        let json = r.to_json().unwrap();
        let text = String::from_utf8(json.clone()).unwrap();
        assert!(text.contains("pkcs11:object=device-key"), "{text}");
        assert_eq!(TokenKeyRecord::from_json(&json, "t").unwrap(), r);
        assert_eq!(
            r.location(),
            "pkcs11:object=device-key in token \"medsec-device\""
        );
        for bad in [
            r#"{"key":"file:x","token":"t","algorithm":"ecdsa-p256","public_key":""}"#,
            r#"{"key":"pkcs11:object=../x","token":"t","algorithm":"ecdsa-p256","public_key":""}"#,
            r#"{"key":"pkcs11:object=x","token":"t","algorithm":"rsa-2048","public_key":""}"#,
            r#"{"key":"pkcs11:object=x","token":"","algorithm":"ecdsa-p256","public_key":""}"#,
            r#"{"key":"pkcs11:object=x","token":"t","algorithm":"ecdsa-p256","public_key":"!"}"#,
            "not json",
        ] {
            assert!(
                TokenKeyRecord::from_json(bad.as_bytes(), "t").is_err(),
                "{bad}"
            );
        }
    }
}
