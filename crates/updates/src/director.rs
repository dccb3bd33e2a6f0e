//! The director's per-device instructions: "device D should install target T (length, hash,
//! security version)", signed with the director's online key and checked by the device against
//! the key it was provisioned with, before it cross-checks them with the TUF image repository.
//!
//! The envelope signs the exact payload bytes (base64 in the envelope), so no JSON
//! canonicalisation is needed to verify.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use medsec_core::KeyAlgorithm;
use medsec_keys::Signer;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::UpdatesError;

/// What the director tells one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instruction {
    /// The device URN the instruction is for; a device refuses anyone else's.
    pub device: String,
    pub rollout: String,
    /// The TUF target name in the image repository.
    pub target: String,
    pub length: u64,
    /// Lowercase hex SHA-256 of the image.
    pub sha256: String,
    pub security_version: u64,
    /// Increases with every instruction the director issues for this device, so a replayed
    /// older instruction is refused.
    pub counter: u64,
    /// Unix seconds.
    pub issued_at: i64,
    /// Unix seconds; a device refuses an expired instruction (freeze).
    pub expires: i64,
}

/// The signed envelope served to the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedInstruction {
    /// Base64 of the instruction's JSON bytes, exactly as signed.
    pub payload: String,
    /// Hex SHA-256 of the signing public key.
    pub keyid: String,
    pub signature: String,
}

/// A director public key a device trusts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectorKey {
    pub algorithm: KeyAlgorithm,
    /// Hex: the uncompressed EC point or the 32-byte Ed25519 key.
    pub public_key: String,
}

impl DirectorKey {
    pub fn of(signer: &dyn Signer) -> Self {
        DirectorKey {
            algorithm: signer.algorithm(),
            public_key: hex::encode(signer.public_key()),
        }
    }

    pub fn keyid(&self) -> String {
        hex::encode(Sha256::digest(self.public_key.as_bytes()))
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<(), UpdatesError> {
        use aws_lc_rs::signature as s;
        let key = hex::decode(&self.public_key)
            .map_err(|e| UpdatesError::invalid("director key", e.to_string()))?;
        let alg: &dyn s::VerificationAlgorithm = match self.algorithm {
            KeyAlgorithm::EcdsaP256 => &s::ECDSA_P256_SHA256_ASN1,
            KeyAlgorithm::EcdsaP384 => &s::ECDSA_P384_SHA384_ASN1,
            KeyAlgorithm::Ed25519 => &s::ED25519,
            other => {
                return Err(UpdatesError::invalid(
                    "director key",
                    format!("{other:?} is not a director key algorithm"),
                ));
            }
        };
        s::UnparsedPublicKey::new(alg, key)
            .verify(msg, sig)
            .map_err(|_| UpdatesError::Signature("the director signature does not verify".into()))
    }
}

impl SignedInstruction {
    /// Signs `i` with the director's key.
    pub fn sign(i: &Instruction, signer: &dyn Signer) -> Result<Self, UpdatesError> {
        let payload = serde_json::to_vec(i)
            .map_err(|e| UpdatesError::invalid("instruction", e.to_string()))?;
        let sig = signer.sign(&payload)?;
        Ok(SignedInstruction {
            payload: B64.encode(&payload),
            keyid: DirectorKey::of(signer).keyid(),
            signature: B64.encode(sig),
        })
    }
}

/// Checks an instruction as a device must: signed by a trusted director key, for this device,
/// not expired at `now`, and not older than the last instruction it accepted (`last_counter`).
pub fn verify_instruction(
    env: &SignedInstruction,
    trusted: &[DirectorKey],
    device: &str,
    now: i64,
    last_counter: Option<u64>,
) -> Result<Instruction, UpdatesError> {
    let key = trusted
        .iter()
        .find(|k| k.keyid() == env.keyid)
        .ok_or_else(|| {
            UpdatesError::Signature(format!(
                "instruction signed by key {} which this device does not trust",
                env.keyid
            ))
        })?;
    let payload = B64
        .decode(&env.payload)
        .map_err(|e| UpdatesError::invalid("instruction payload", e.to_string()))?;
    let sig = B64
        .decode(&env.signature)
        .map_err(|e| UpdatesError::invalid("instruction signature", e.to_string()))?;
    key.verify(&payload, &sig)?;
    let i: Instruction = serde_json::from_slice(&payload)
        .map_err(|e| UpdatesError::invalid("instruction", e.to_string()))?;
    if i.device != device {
        return Err(UpdatesError::Refused(format!(
            "the instruction is for {}, not for this device ({device})",
            i.device
        )));
    }
    if i.expires <= now {
        return Err(UpdatesError::Refused(format!(
            "the instruction expired at {} (now {now}): freeze attack or stale director",
            i.expires
        )));
    }
    if let Some(last) = last_counter
        && i.counter < last
    {
        return Err(UpdatesError::Refused(format!(
            "instruction counter {} is below the last accepted {last}: replayed instruction",
            i.counter
        )));
    }
    Ok(i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use medsec_keys::KeySource;

    fn signer(dir: &std::path::Path) -> Box<dyn Signer> {
        let pass = medsec_keys::Passphrase::new(b"director test passphrase".to_vec()).unwrap();
        let src = medsec_keys::EncryptedFileKeySource::new(dir.to_path_buf(), pass)
            .with_kdf(medsec_keys::KdfParams {
                m_kib: 19 * 1024,
                t: 2,
                p: 1,
            })
            .unwrap();
        src.generate("director", KeyAlgorithm::EcdsaP256).unwrap()
    }

    fn instr(counter: u64) -> Instruction {
        Instruction {
            device: "urn:medsec:device:pump-x2:SN-1".into(),
            rollout: "r1".into(),
            target: "pump-x2/pump-x2-2.1.bin".into(),
            length: 3,
            sha256: hex::encode(Sha256::digest(b"abc")),
            security_version: 7,
            counter,
            issued_at: 1_000,
            expires: 2_000,
        }
    }

    #[test]
    fn signed_instructions_verify_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let s = signer(dir.path());
        let key = DirectorKey::of(&*s);
        let dev = "urn:medsec:device:pump-x2:SN-1";
        let env = SignedInstruction::sign(&instr(5), &*s).unwrap();
        assert_eq!(
            verify_instruction(&env, std::slice::from_ref(&key), dev, 1_500, Some(5)).unwrap(),
            instr(5)
        );
        // Someone else's instruction, an expired one, a replayed one.
        assert!(
            verify_instruction(
                &env,
                std::slice::from_ref(&key),
                "urn:medsec:device:pump-x2:SN-2",
                1_500,
                None
            )
            .is_err()
        );
        assert!(verify_instruction(&env, std::slice::from_ref(&key), dev, 2_000, None).is_err());
        assert!(verify_instruction(&env, std::slice::from_ref(&key), dev, 1_500, Some(6)).is_err());
        // A payload changed after signing.
        let mut bad = env.clone();
        let mut i = instr(5);
        i.sha256 = hex::encode(Sha256::digest(b"evil"));
        bad.payload = B64.encode(serde_json::to_vec(&i).unwrap());
        assert!(matches!(
            verify_instruction(&bad, std::slice::from_ref(&key), dev, 1_500, None),
            Err(UpdatesError::Signature(_))
        ));
        // An untrusted key.
        let dir2 = tempfile::tempdir().unwrap();
        let other = signer(dir2.path());
        let env2 = SignedInstruction::sign(&instr(5), &*other).unwrap();
        assert!(verify_instruction(&env2, &[key], dev, 1_500, None).is_err());
    }
}
