//! Key algorithms medsec knows, with the facts needed to check and describe them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::CoreError;

/// A public-key algorithm and size. CA keys may be the first three; device keys (from CSRs)
/// may also be RSA, which some legacy device classes need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[non_exhaustive]
pub enum KeyAlgorithm {
    EcdsaP256,
    EcdsaP384,
    Ed25519,
    Rsa2048,
    Rsa3072,
    Rsa4096,
}

impl KeyAlgorithm {
    pub const ALL: [KeyAlgorithm; 6] = [
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::EcdsaP384,
        KeyAlgorithm::Ed25519,
        KeyAlgorithm::Rsa2048,
        KeyAlgorithm::Rsa3072,
        KeyAlgorithm::Rsa4096,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::EcdsaP256 => "ecdsa-p256",
            KeyAlgorithm::EcdsaP384 => "ecdsa-p384",
            KeyAlgorithm::Ed25519 => "ed25519",
            KeyAlgorithm::Rsa2048 => "rsa-2048",
            KeyAlgorithm::Rsa3072 => "rsa-3072",
            KeyAlgorithm::Rsa4096 => "rsa-4096",
        }
    }

    /// Whether a CA key (which medsec generates itself) may use this algorithm.
    pub fn usable_for_ca(self) -> bool {
        matches!(
            self,
            KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384 | KeyAlgorithm::Ed25519
        )
    }

    /// RSA modulus sizes map to one of the named variants; anything else is refused.
    pub fn from_rsa_bits(bits: usize) -> Option<Self> {
        match bits {
            2048 => Some(KeyAlgorithm::Rsa2048),
            3072 => Some(KeyAlgorithm::Rsa3072),
            4096 => Some(KeyAlgorithm::Rsa4096),
            _ => None,
        }
    }
}

impl FromStr for KeyAlgorithm {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, CoreError> {
        let norm = s.trim().to_ascii_lowercase().replace('_', "-");
        let alg = match norm.as_str() {
            "ecdsa-p256" | "p256" | "p-256" | "ec-p256" | "prime256v1" => KeyAlgorithm::EcdsaP256,
            "ecdsa-p384" | "p384" | "p-384" | "ec-p384" | "secp384r1" => KeyAlgorithm::EcdsaP384,
            "ed25519" => KeyAlgorithm::Ed25519,
            "rsa-2048" | "rsa2048" => KeyAlgorithm::Rsa2048,
            "rsa-3072" | "rsa3072" => KeyAlgorithm::Rsa3072,
            "rsa-4096" | "rsa4096" => KeyAlgorithm::Rsa4096,
            _ => {
                return Err(CoreError::invalid(
                    "key algorithm",
                    s,
                    "expected ecdsa-p256, ecdsa-p384, ed25519, rsa-2048, rsa-3072 or rsa-4096",
                ));
            }
        };
        Ok(alg)
    }
}

impl TryFrom<String> for KeyAlgorithm {
    type Error = CoreError;
    fn try_from(s: String) -> Result<Self, CoreError> {
        s.parse()
    }
}

impl From<KeyAlgorithm> for String {
    fn from(a: KeyAlgorithm) -> String {
        a.as_str().to_owned()
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in KeyAlgorithm::ALL {
            assert_eq!(a.as_str().parse::<KeyAlgorithm>().unwrap(), a);
        }
        assert!("dsa".parse::<KeyAlgorithm>().is_err());
        assert!(!KeyAlgorithm::Rsa2048.usable_for_ca());
    }
}
