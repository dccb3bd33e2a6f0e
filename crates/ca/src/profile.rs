//! Certificate profiles: what a device class's certificates look like and which keys they may certify.

use medsec_core::{DeviceModel, DeviceSerial, KeyAlgorithm, Name};
use serde::{Deserialize, Serialize};

use crate::CaError;

/// One device class's certificate policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: Name,
    /// The device model this profile issues for; the device id is `(model, serial)`.
    pub model: DeviceModel,
    /// The issuing CA that signs this profile's certificates.
    pub issuer: Name,
    /// Key types a CSR may carry.
    pub key_types: Vec<KeyAlgorithm>,
    pub validity_days: u32,
    /// Adds the serverAuth EKU (devices that also accept TLS connections); clientAuth is always set.
    #[serde(default)]
    pub server_auth: bool,
    /// Subject O.
    pub organization: String,
    /// Subject CN; `{model}` and `{serial}` are replaced.
    #[serde(default = "default_cn_template")]
    pub cn_template: String,
    /// Whether network enrollment (EST) must present a bootstrap credential (IDevID or a
    /// one-time token). Turning it off is a weakening, so it is named as such in the CLI.
    #[serde(default = "yes")]
    pub requires_bootstrap: bool,
    /// Days a rekeyed-away certificate stays valid before it is revoked as superseded.
    #[serde(default = "default_overlap")]
    pub rekey_overlap_days: u32,
}

fn default_cn_template() -> String {
    "{model}-{serial}".to_owned()
}
fn yes() -> bool {
    true
}
fn default_overlap() -> u32 {
    7
}

impl Profile {
    /// Checks the rules serde cannot express.
    pub fn validate(&self) -> Result<(), CaError> {
        let bad = |m: String| CaError::Config(format!("profile {}: {m}", self.name));
        if self.key_types.is_empty() {
            return Err(bad("key_types must name at least one key type".into()));
        }
        if self.validity_days == 0 || self.validity_days > 3650 {
            return Err(bad("validity_days must be between 1 and 3650".into()));
        }
        if self.rekey_overlap_days > 365 {
            return Err(bad("rekey_overlap_days must be at most 365".into()));
        }
        if self.organization.trim().is_empty() || self.organization.len() > 64 {
            return Err(bad("organization must be 1 to 64 characters".into()));
        }
        if self.cn_template.is_empty() || self.cn_template.len() > 64 {
            return Err(bad("cn_template must be 1 to 64 characters".into()));
        }
        // Placeholders other than the two known ones are almost certainly typos.
        let stripped = self
            .cn_template
            .replace("{model}", "")
            .replace("{serial}", "");
        if stripped.contains('{') || stripped.contains('}') {
            return Err(bad("cn_template may only use {model} and {serial}".into()));
        }
        if self
            .organization
            .chars()
            .chain(self.cn_template.chars())
            .any(char::is_control)
        {
            return Err(bad("control characters are not allowed".into()));
        }
        Ok(())
    }

    pub fn common_name(&self, serial: &DeviceSerial) -> String {
        let cn = self
            .cn_template
            .replace("{model}", self.model.as_str())
            .replace("{serial}", serial.as_str());
        // The CN is capped at 64 characters (X.520 ub-common-name).
        cn.chars().take(64).collect()
    }

    pub fn allows(&self, alg: KeyAlgorithm) -> bool {
        self.key_types.contains(&alg)
    }

    pub fn allowed_list(&self) -> String {
        self.key_types
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Profile {
        Profile {
            name: Name::parse("pump").unwrap(),
            model: DeviceModel::parse("pump-x2").unwrap(),
            issuer: Name::parse("issuing").unwrap(),
            key_types: vec![KeyAlgorithm::EcdsaP256],
            validity_days: 365,
            server_auth: false,
            organization: "Acme Medical".into(),
            cn_template: default_cn_template(),
            requires_bootstrap: true,
            rekey_overlap_days: 7,
        }
    }

    #[test]
    fn validates_and_renders_cn() {
        let p = sample();
        p.validate().unwrap();
        assert_eq!(
            p.common_name(&DeviceSerial::parse("SN1").unwrap()),
            "pump-x2-SN1"
        );
        let mut bad = p.clone();
        bad.cn_template = "{modle}".into();
        assert!(bad.validate().is_err());
        let mut bad = p.clone();
        bad.key_types.clear();
        assert!(bad.validate().is_err());
        let mut bad = p;
        bad.validity_days = 0;
        assert!(bad.validate().is_err());
    }

    #[test]
    fn toml_round_trip_with_defaults() {
        let p: Profile = serde_json::from_value(serde_json::json!({
            "name": "pump", "model": "pump-x2", "issuer": "issuing",
            "key_types": ["ecdsa-p256", "ed25519"], "validity_days": 90,
            "organization": "Acme"
        }))
        .unwrap();
        assert!(p.requires_bootstrap);
        assert_eq!(p.cn_template, "{model}-{serial}");
        assert!(p.allows(KeyAlgorithm::Ed25519));
        assert!(!p.allows(KeyAlgorithm::Rsa2048));
    }
}
