//! The process's key source: encrypted files by default, PKCS#11 when configured, routed by
//! the kind of key reference; secrets are read only when a key is actually used.

use std::path::PathBuf;
use std::sync::OnceLock;

use medsec_core::KeyAlgorithm;
use medsec_keys::{
    EncryptedFileKeySource, KeyError, KeyRef, KeySource, Passphrase, Pkcs11Config, Pkcs11KeySource,
    Signer,
};
use zeroize::Zeroizing;

use crate::config::{KeyBackend, KeysConfig};

pub const PASSPHRASE_ENV: &str = "MEDSEC_KEY_PASSPHRASE";
pub const PASSPHRASE_FILE_ENV: &str = "MEDSEC_KEY_PASSPHRASE_FILE";
pub const PIN_ENV: &str = "MEDSEC_PKCS11_PIN";

pub struct Keys {
    dir: PathBuf,
    passphrase_file: Option<PathBuf>,
    backend: KeyBackend,
    pkcs11_module: Option<PathBuf>,
    pkcs11_token: Option<String>,
    pkcs11_pin_file: Option<PathBuf>,
    file: OnceLock<EncryptedFileKeySource>,
    pkcs11: OnceLock<Pkcs11KeySource>,
}

impl Keys {
    pub fn new(dir: PathBuf, passphrase_file: Option<PathBuf>, cfg: &KeysConfig) -> Self {
        Keys {
            dir,
            passphrase_file,
            backend: cfg.backend,
            pkcs11_module: cfg.pkcs11_module.clone(),
            pkcs11_token: cfg.pkcs11_token.clone(),
            pkcs11_pin_file: cfg.pkcs11_pin_file.clone(),
            file: OnceLock::new(),
            pkcs11: OnceLock::new(),
        }
    }

    pub fn passphrase(&self) -> Result<Passphrase, KeyError> {
        if let Some(p) = &self.passphrase_file {
            return Passphrase::from_file(p);
        }
        if let Some(p) = std::env::var_os(PASSPHRASE_FILE_ENV) {
            return Passphrase::from_file(&PathBuf::from(p));
        }
        match std::env::var(PASSPHRASE_ENV) {
            Ok(v) => Passphrase::new(v.into_bytes()),
            Err(_) => Err(KeyError::Passphrase(format!(
                "CA keys are encrypted at rest: set {PASSPHRASE_ENV} or {PASSPHRASE_FILE_ENV}, or pass --passphrase-file"
            ))),
        }
    }

    pub fn file_source(&self) -> Result<&EncryptedFileKeySource, KeyError> {
        if let Some(s) = self.file.get() {
            return Ok(s);
        }
        let s = EncryptedFileKeySource::new(self.dir.clone(), self.passphrase()?);
        Ok(self.file.get_or_init(|| s))
    }

    fn pkcs11_source(&self) -> Result<&Pkcs11KeySource, KeyError> {
        if let Some(s) = self.pkcs11.get() {
            return Ok(s);
        }
        let missing = |what: &str| KeyError::Pkcs11 {
            op: "configure",
            reason: format!("keys.{what} is not set in medsec.toml"),
        };
        let module = self
            .pkcs11_module
            .clone()
            .ok_or_else(|| missing("pkcs11_module"))?;
        let token_label = self
            .pkcs11_token
            .clone()
            .ok_or_else(|| missing("pkcs11_token"))?;
        let pin = match &self.pkcs11_pin_file {
            Some(f) => std::fs::read_to_string(f)
                .map(|s| s.lines().next().unwrap_or("").to_owned())
                .map_err(|source| KeyError::Io {
                    op: "read PIN file",
                    path: f.display().to_string(),
                    source,
                })?,
            None => std::env::var(PIN_ENV).map_err(|_| KeyError::Pkcs11 {
                op: "configure",
                reason: format!("set {PIN_ENV} or keys.pkcs11_pin_file"),
            })?,
        };
        let s = Pkcs11KeySource::open(Pkcs11Config {
            module,
            token_label,
            pin: Zeroizing::new(pin),
        })?;
        Ok(self.pkcs11.get_or_init(|| s))
    }
}

impl KeySource for Keys {
    fn generate(&self, label: &str, alg: KeyAlgorithm) -> Result<Box<dyn Signer>, KeyError> {
        match self.backend {
            KeyBackend::File => self.file_source()?.generate(label, alg),
            KeyBackend::Pkcs11 => self.pkcs11_source()?.generate(label, alg),
        }
    }

    fn load(&self, key: &KeyRef) -> Result<Box<dyn Signer>, KeyError> {
        match key {
            KeyRef::Pkcs11 { .. } => self.pkcs11_source()?.load(key),
            _ => self.file_source()?.load(key),
        }
    }

    fn destroy(&self, key: &KeyRef) -> Result<(), KeyError> {
        match key {
            KeyRef::Pkcs11 { .. } => self.pkcs11_source()?.destroy(key),
            _ => self.file_source()?.destroy(key),
        }
    }
}
