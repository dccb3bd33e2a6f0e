//! `medsec.toml` in the data directory, with defaults for a first run.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub pki: PkiConfig,
    #[serde(default)]
    pub keys: KeysConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PkiConfig {
    pub organization: String,
    pub country: Option<String>,
    /// `{ca}` is replaced by the CA's name.
    pub crl_url: Option<String>,
    pub ocsp_url: Option<String>,
    pub key_algorithm: String,
    pub root_validity_days: u32,
    pub issuing_validity_days: u32,
    pub root_crl_hours: u32,
    pub issuing_crl_hours: u32,
}

impl Default for PkiConfig {
    fn default() -> Self {
        PkiConfig {
            organization: "medsec demo manufacturer".into(),
            country: None,
            crl_url: Some("http://127.0.0.1:8080/crl/{ca}.crl".into()),
            ocsp_url: Some("http://127.0.0.1:8080/ocsp".into()),
            key_algorithm: "ecdsa-p256".into(),
            root_validity_days: 20 * 365,
            issuing_validity_days: 10 * 365,
            root_crl_hours: 30 * 24,
            issuing_crl_hours: 24,
        }
    }
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum KeyBackend {
    #[default]
    File,
    Pkcs11,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// Where new CA keys are generated.
    pub backend: KeyBackend,
    pub pkcs11_module: Option<PathBuf>,
    pub pkcs11_token: Option<String>,
    /// File holding the token PIN; `MEDSEC_PKCS11_PIN` is used when unset.
    pub pkcs11_pin_file: Option<PathBuf>,
}

impl Config {
    /// Reads `path` if given, else `<data_dir>/medsec.toml` if it exists, else defaults.
    pub fn load(data_dir: &Path, path: Option<&Path>) -> Result<Config> {
        let (p, required) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (data_dir.join("medsec.toml"), false),
        };
        let text = match std::fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                return Ok(Config::default());
            }
            Err(e) => return Err(e).with_context(|| format!("reading config {}", p.display())),
        };
        let cfg: Config =
            toml::from_str(&text).with_context(|| format!("parsing config {}", p.display()))?;
        if cfg.keys.backend == KeyBackend::Pkcs11
            && (cfg.keys.pkcs11_module.is_none() || cfg.keys.pkcs11_token.is_none())
        {
            bail!(
                "config {}: keys.backend = \"pkcs11\" needs keys.pkcs11_module and keys.pkcs11_token",
                p.display()
            );
        }
        Ok(cfg)
    }
}
