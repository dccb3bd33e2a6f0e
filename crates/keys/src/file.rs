//! Encrypted key files: PKCS#8 sealed with AES-256-GCM under an Argon2id-derived key.
//!
//! File format (JSON, one file per key, `<dir>/<label>.key.json`, mode 0600):
//! `{"format":"medsec-key-v1","algorithm":..,"kdf":{"alg":"argon2id","m_kib":..,"t":..,"p":..,"salt":..},
//!   "aead":"aes-256-gcm","nonce":..,"public_key":..,"ciphertext":..}` (binary fields base64).
//! Every header field is bound into the AEAD's associated data, so swapping the algorithm, the
//! KDF parameters or the public key makes decryption fail instead of silently misbehaving.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use medsec_core::KeyAlgorithm;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{KeyError, KeyRef, KeySource, Passphrase, Signer, SoftwareSigner, check_label};

const FORMAT: &str = "medsec-key-v1";

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    pub m_kib: u32,
    pub t: u32,
    pub p: u32,
}

impl Default for KdfParams {
    /// RFC 9106's second recommended option (64 MiB, 3 passes); one unlock costs well under a
    /// second, which a CA pays once per process.
    fn default() -> Self {
        KdfParams {
            m_kib: 64 * 1024,
            t: 3,
            p: 1,
        }
    }
}

impl KdfParams {
    /// Floor below which a file is refused on load, so that an attacker who can write the key
    /// directory cannot downgrade the work factor of keys we create later to nothing.
    const MIN: KdfParams = KdfParams {
        m_kib: 19 * 1024,
        t: 2,
        p: 1,
    };

    fn check(&self) -> Result<(), String> {
        if self.m_kib < Self::MIN.m_kib || self.t < Self::MIN.t || self.p < 1 {
            return Err(format!(
                "Argon2id parameters m={} KiB t={} are below the floor m={} KiB t={}",
                self.m_kib,
                self.t,
                Self::MIN.m_kib,
                Self::MIN.t
            ));
        }
        if self.m_kib > 4 * 1024 * 1024 || self.t > 64 || self.p > 64 {
            return Err("Argon2id parameters are unreasonably large".into());
        }
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KdfHeader {
    alg: String,
    m_kib: u32,
    t: u32,
    p: u32,
    salt: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    format: String,
    algorithm: KeyAlgorithm,
    kdf: KdfHeader,
    aead: String,
    nonce: String,
    public_key: String,
    ciphertext: String,
}

impl KeyFile {
    fn aad(&self) -> Vec<u8> {
        format!(
            "{}|{}|{}|{}|{}|{}|{}|{}|{}",
            self.format,
            self.algorithm,
            self.kdf.alg,
            self.kdf.m_kib,
            self.kdf.t,
            self.kdf.p,
            self.kdf.salt,
            self.aead,
            self.public_key
        )
        .into_bytes()
    }
}

fn derive_key(
    pass: &Passphrase,
    salt: &[u8],
    p: KdfParams,
) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let params = argon2::Params::new(p.m_kib, p.t, p.p, Some(32))
        .map_err(|e| KeyError::Passphrase(format!("argon2 parameters: {e}")))?;
    let a2 = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 32]);
    a2.hash_password_into(pass.expose(), salt, out.as_mut())
        .map_err(|e| KeyError::Passphrase(format!("argon2: {e}")))?;
    Ok(out)
}

/// Keys as encrypted files in one directory, all sealed under one passphrase.
pub struct EncryptedFileKeySource {
    dir: PathBuf,
    passphrase: Passphrase,
    kdf: KdfParams,
}

impl std::fmt::Debug for EncryptedFileKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptedFileKeySource")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl EncryptedFileKeySource {
    pub fn new(dir: impl Into<PathBuf>, passphrase: Passphrase) -> Self {
        EncryptedFileKeySource {
            dir: dir.into(),
            passphrase,
            kdf: KdfParams::default(),
        }
    }

    /// Sets the Argon2id cost for keys created from now on (never below the load floor).
    pub fn with_kdf(mut self, kdf: KdfParams) -> Result<Self, KeyError> {
        kdf.check().map_err(KeyError::Passphrase)?;
        self.kdf = kdf;
        Ok(self)
    }

    fn path(&self, label: &str) -> PathBuf {
        self.dir.join(format!("{label}.key.json"))
    }

    /// Seals an existing PKCS#8 private key (e.g. an imported root key) under this source.
    pub fn import_pkcs8(&self, label: &str, pkcs8: &[u8]) -> Result<Box<dyn Signer>, KeyError> {
        check_label(label)?;
        let key_ref = KeyRef::File {
            label: label.to_owned(),
        };
        let signer = SoftwareSigner::from_pkcs8_any(key_ref, pkcs8)?;
        self.seal(label, signer.algorithm(), pkcs8, signer.public_key())?;
        Ok(Box::new(signer))
    }

    fn seal(
        &self,
        label: &str,
        alg: KeyAlgorithm,
        pkcs8: &[u8],
        public: &[u8],
    ) -> Result<(), KeyError> {
        let path = self.path(label);
        let rng = SystemRandom::new();
        let mut salt = [0u8; 16];
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill(&mut salt)
            .and_then(|_| rng.fill(&mut nonce))
            .map_err(|_| KeyError::Rejected("system RNG failed".into()))?;
        let mut file = KeyFile {
            format: FORMAT.into(),
            algorithm: alg,
            kdf: KdfHeader {
                alg: "argon2id".into(),
                m_kib: self.kdf.m_kib,
                t: self.kdf.t,
                p: self.kdf.p,
                salt: B64.encode(salt),
            },
            aead: "aes-256-gcm".into(),
            nonce: B64.encode(nonce),
            public_key: B64.encode(public),
            ciphertext: String::new(),
        };
        let kek = derive_key(&self.passphrase, &salt, self.kdf)?;
        let key = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, kek.as_ref())
                .map_err(|_| KeyError::Rejected("AEAD key setup failed".into()))?,
        );
        let mut buf = Zeroizing::new(pkcs8.to_vec());
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(file.aad()),
            &mut *buf,
        )
        .map_err(|_| KeyError::Rejected("AEAD seal failed".into()))?;
        file.ciphertext = B64.encode(&*buf);
        let json = serde_json::to_vec_pretty(&file)
            .map_err(|e| KeyError::Rejected(format!("serialize key file: {e}")))?;
        write_new_private_file(&path, &json)
    }

    fn open(&self, label: &str) -> Result<SoftwareSigner, KeyError> {
        let path = self.path(label);
        let shown = path.display().to_string();
        let malformed = |reason: String| KeyError::Malformed {
            path: shown.clone(),
            reason,
        };
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(KeyError::NotFound {
                    key: format!("file:{label} ({shown})"),
                });
            }
            Err(source) => {
                return Err(KeyError::Io {
                    op: "read key file",
                    path: shown,
                    source,
                });
            }
        };
        if bytes.len() > 64 * 1024 {
            return Err(malformed("larger than 64 KiB".into()));
        }
        let file: KeyFile = serde_json::from_slice(&bytes).map_err(|e| malformed(e.to_string()))?;
        if file.format != FORMAT || file.kdf.alg != "argon2id" || file.aead != "aes-256-gcm" {
            return Err(malformed(format!(
                "unsupported format {:?} / kdf {:?} / aead {:?}",
                file.format, file.kdf.alg, file.aead
            )));
        }
        let params = KdfParams {
            m_kib: file.kdf.m_kib,
            t: file.kdf.t,
            p: file.kdf.p,
        };
        params.check().map_err(malformed)?;
        let salt = B64
            .decode(&file.kdf.salt)
            .map_err(|e| malformed(format!("salt: {e}")))?;
        let nonce: [u8; NONCE_LEN] = B64
            .decode(&file.nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or_else(|| malformed("nonce is not 12 bytes of base64".into()))?;
        let public = B64
            .decode(&file.public_key)
            .map_err(|e| malformed(format!("public_key: {e}")))?;
        let mut buf = Zeroizing::new(
            B64.decode(&file.ciphertext)
                .map_err(|e| malformed(format!("ciphertext: {e}")))?,
        );
        let kek = derive_key(&self.passphrase, &salt, params)?;
        let key = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, kek.as_ref())
                .map_err(|_| KeyError::Rejected("AEAD key setup failed".into()))?,
        );
        let plain = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(file.aad()),
                &mut buf,
            )
            .map_err(|_| KeyError::Decrypt {
                path: shown.clone(),
            })?;
        let signer = SoftwareSigner::from_pkcs8(
            KeyRef::File {
                label: label.to_owned(),
            },
            file.algorithm,
            plain,
        )?;
        if signer.public_key() != public.as_slice() {
            return Err(malformed(
                "public key does not match the private key".into(),
            ));
        }
        Ok(signer)
    }
}

/// Writes a file that must not exist yet, readable only by its owner, and fsyncs it, so a key is
/// never half-written nor world-readable.
fn write_new_private_file(path: &Path, data: &[u8]) -> Result<(), KeyError> {
    let shown = path.display().to_string();
    let io = |op: &'static str| {
        let shown = shown.clone();
        move |source| KeyError::Io {
            op,
            path: shown,
            source,
        }
    };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io("create key directory"))?;
    }
    if path.exists() {
        return Err(KeyError::AlreadyExists { key: shown });
    }
    let tmp = path.with_extension("json.tmp");
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let _ = fs::remove_file(&tmp);
    let mut f = opts.open(&tmp).map_err(io("create key file"))?;
    f.write_all(data).map_err(io("write key file"))?;
    f.sync_all().map_err(io("sync key file"))?;
    drop(f);
    // hard_link + remove refuses to replace an existing key created meanwhile, unlike rename.
    fs::hard_link(&tmp, path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            KeyError::AlreadyExists { key: shown.clone() }
        } else {
            KeyError::Io {
                op: "publish key file",
                path: shown.clone(),
                source: e,
            }
        }
    })?;
    let _ = fs::remove_file(&tmp);
    if let Some(d) = path.parent().and_then(|p| fs::File::open(p).ok()) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The label of a `file:` reference, checked; other references are refused.
fn file_label_of(key: &KeyRef) -> Result<&str, KeyError> {
    match key {
        KeyRef::File { label } => {
            check_label(label)?;
            Ok(label)
        }
        other => Err(KeyError::BadRef {
            value: other.to_string(),
            reason: "not a file: key; configure a PKCS#11 module for pkcs11: keys",
        }),
    }
}

impl KeySource for EncryptedFileKeySource {
    fn generate(&self, label: &str, alg: KeyAlgorithm) -> Result<Box<dyn Signer>, KeyError> {
        check_label(label)?;
        if !alg.usable_for_ca() {
            return Err(KeyError::UnsupportedAlgorithm(alg));
        }
        if self.path(label).exists() {
            return Err(KeyError::AlreadyExists {
                key: format!("file:{label}"),
            });
        }
        let pkcs8 = SoftwareSigner::generate_pkcs8(alg)?;
        let key_ref = KeyRef::File {
            label: label.to_owned(),
        };
        let signer = SoftwareSigner::from_pkcs8(key_ref, alg, &pkcs8)?;
        self.seal(label, alg, &pkcs8, signer.public_key())?;
        Ok(Box::new(signer))
    }

    fn load(&self, key: &KeyRef) -> Result<Box<dyn Signer>, KeyError> {
        Ok(Box::new(self.open(file_label_of(key)?)?))
    }

    fn destroy(&self, key: &KeyRef) -> Result<(), KeyError> {
        let label = file_label_of(key)?;
        let path = self.path(label);
        let shown = path.display().to_string();
        match fs::remove_file(&path) {
            Ok(()) => {
                if let Some(d) = path.parent().and_then(|p| fs::File::open(p).ok()) {
                    let _ = d.sync_all();
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(KeyError::NotFound {
                key: format!("file:{label} ({shown})"),
            }),
            Err(source) => Err(KeyError::Io {
                op: "remove key file",
                path: shown,
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(dir: &Path, pass: &str) -> EncryptedFileKeySource {
        // Lowest accepted cost keeps unit tests quick; the default is exercised by the CLI tests.
        EncryptedFileKeySource::new(dir, Passphrase::new(pass.as_bytes().to_vec()).unwrap())
            .with_kdf(KdfParams::MIN)
            .unwrap()
    }

    #[test]
    fn generate_load_sign_for_each_algorithm() {
        let dir = tempfile::tempdir().unwrap();
        let src = source(dir.path(), "correct horse battery");
        for (i, alg) in [
            KeyAlgorithm::EcdsaP256,
            KeyAlgorithm::EcdsaP384,
            KeyAlgorithm::Ed25519,
        ]
        .into_iter()
        .enumerate()
        {
            let label = format!("k{i}");
            let s = src.generate(&label, alg).unwrap();
            let loaded = src.load(&format!("file:{label}").parse().unwrap()).unwrap();
            assert_eq!(s.public_key(), loaded.public_key());
            let sig = loaded.sign(b"hello").unwrap();
            let verify_alg: &dyn aws_lc_rs::signature::VerificationAlgorithm = match alg {
                KeyAlgorithm::EcdsaP256 => &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
                KeyAlgorithm::EcdsaP384 => &aws_lc_rs::signature::ECDSA_P384_SHA384_ASN1,
                _ => &aws_lc_rs::signature::ED25519,
            };
            aws_lc_rs::signature::UnparsedPublicKey::new(verify_alg, s.public_key())
                .verify(b"hello", &sig)
                .unwrap();
        }
    }

    #[test]
    fn file_holds_no_plaintext_key_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let src = source(dir.path(), "correct horse battery");
        src.generate("k", KeyAlgorithm::EcdsaP256).unwrap();
        let path = dir.path().join("k.key.json");
        let text = fs::read_to_string(&path).unwrap();
        assert!(!text.contains("PRIVATE KEY"));
        assert!(text.contains("argon2id"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }

    #[test]
    fn wrong_passphrase_and_tampering_refused() {
        let dir = tempfile::tempdir().unwrap();
        source(dir.path(), "correct horse battery")
            .generate("k", KeyAlgorithm::EcdsaP256)
            .unwrap();
        let r: KeyRef = "file:k".parse().unwrap();
        let wrong = source(dir.path(), "incorrect horse battery");
        assert!(matches!(wrong.load(&r), Err(KeyError::Decrypt { .. })));

        let path = dir.path().join("k.key.json");
        let orig = fs::read_to_string(&path).unwrap();
        // Claiming another algorithm changes the AAD, so the tag no longer verifies.
        fs::write(&path, orig.replace("ecdsa-p256", "ecdsa-p384")).unwrap();
        let right = source(dir.path(), "correct horse battery");
        assert!(matches!(right.load(&r), Err(KeyError::Decrypt { .. })));
        // A KDF downgrade is refused before any work is done.
        let v: serde_json::Value = serde_json::from_str(&orig).unwrap();
        let mut v2 = v.clone();
        v2["kdf"]["m_kib"] = 8.into();
        fs::write(&path, v2.to_string()).unwrap();
        assert!(matches!(right.load(&r), Err(KeyError::Malformed { .. })));
        fs::write(&path, b"garbage").unwrap();
        assert!(matches!(right.load(&r), Err(KeyError::Malformed { .. })));
    }

    #[test]
    fn destroy_removes_the_key_once() {
        let dir = tempfile::tempdir().unwrap();
        let src = source(dir.path(), "correct horse battery");
        src.generate("gone", KeyAlgorithm::EcdsaP256).unwrap();
        src.generate("kept", KeyAlgorithm::EcdsaP256).unwrap();
        let r: KeyRef = "file:gone".parse().unwrap();
        src.destroy(&r).unwrap();
        assert!(!dir.path().join("gone.key.json").exists());
        assert!(matches!(src.load(&r), Err(KeyError::NotFound { .. })));
        assert!(matches!(src.destroy(&r), Err(KeyError::NotFound { .. })));
        // Other keys are untouched, and the label can be used again.
        src.load(&"file:kept".parse().unwrap()).unwrap();
        src.generate("gone", KeyAlgorithm::Ed25519).unwrap();
        assert!(matches!(
            src.destroy(&"pkcs11:object=gone".parse().unwrap()),
            Err(KeyError::BadRef { .. })
        ));
    }

    #[test]
    fn never_overwrites_and_rejects_short_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let src = source(dir.path(), "correct horse battery");
        src.generate("k", KeyAlgorithm::Ed25519).unwrap();
        assert!(matches!(
            src.generate("k", KeyAlgorithm::Ed25519),
            Err(KeyError::AlreadyExists { .. })
        ));
        assert!(Passphrase::new(b"short".to_vec()).is_err());
        assert!(matches!(
            src.generate("rsa", KeyAlgorithm::Rsa2048),
            Err(KeyError::UnsupportedAlgorithm(_))
        ));
    }
}
