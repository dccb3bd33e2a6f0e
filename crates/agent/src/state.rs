//! The state directory: device key, device certificate, CA chain, and how they are replaced.
//!
//! Files (all written to a temporary name, fsynced, then renamed, so a reader sees the old or
//! the new content and never a torn file):
//!
//! * `device.key`  PKCS#8 PEM, mode 0600 (see `keys.rs` for why it is not sealed)
//! * `device.pem`  the current device certificate
//! * `chain.pem`   the CA certificates from the server's `cacerts` (issuing first)
//!
//! Key and certificate must change together, which two renames cannot do atomically. So a new
//! key is staged as `device.key.next` before the request and the new certificate as
//! `device.pem.next` after it; then both are renamed into place. Whatever a crash leaves
//! behind, [`StateDir::recover`] resolves by matching public keys: a staged certificate goes
//! with whichever key it certifies, and a staged key without a certificate belongs to an
//! exchange that never completed and is dropped (the server keeps the old certificate valid
//! through the rekey overlap, so the agent simply tries again).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use medsec_core::{CertSerial, DeviceId};
use serde::Serialize;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::AgentError;
use crate::keys::DeviceKey;

const KEY: &str = "device.key";
const CERT: &str = "device.pem";
const CHAIN: &str = "chain.pem";
const KEY_NEXT: &str = "device.key.next";
const CERT_NEXT: &str = "device.pem.next";

/// What the agent reads from a certificate.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct CertInfo {
    pub serial: CertSerial,
    /// RFC 4514-style rendering, for people.
    pub subject: String,
    /// The device URN from the subjectAltName, when there is one.
    pub device: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// DER of the subject, copied into re-enrollment CSRs.
    #[serde(skip)]
    pub subject_der: Vec<u8>,
    /// DER SubjectPublicKeyInfo.
    #[serde(skip)]
    pub spki_der: Vec<u8>,
}

impl CertInfo {
    /// Parses a DER certificate; the error says what is wrong, for the caller to place.
    pub fn parse(der: &[u8]) -> Result<Self, String> {
        let (rest, c) =
            X509Certificate::from_der(der).map_err(|e| format!("not a DER certificate: {e}"))?;
        if !rest.is_empty() {
            return Err("trailing bytes after the certificate".into());
        }
        let serial = CertSerial::from_bytes(c.raw_serial()).map_err(|e| e.to_string())?;
        let mut device = None;
        if let Ok(Some(san)) = c.subject_alternative_name() {
            for n in &san.value.general_names {
                if let GeneralName::URI(u) = n
                    && let Ok(id) = DeviceId::parse_urn(u)
                {
                    device = Some(id.urn());
                }
            }
        }
        Ok(CertInfo {
            serial,
            subject: c.subject().to_string(),
            device,
            not_before: c.validity().not_before.to_datetime(),
            not_after: c.validity().not_after.to_datetime(),
            subject_der: c.subject().as_raw().to_vec(),
            spki_der: c.public_key().raw.to_vec(),
        })
    }

    /// Whether `key` is the key this certificate certifies.
    pub(crate) fn certifies(&self, key: &DeviceKey) -> bool {
        same_spki(&self.spki_der, &key.spki_der())
    }
}

/// SPKI equality by content (algorithm, parameters, key bits) rather than by encoding.
pub(crate) fn same_spki(a: &[u8], b: &[u8]) -> bool {
    use x509_parser::x509::SubjectPublicKeyInfo;
    match (
        SubjectPublicKeyInfo::from_der(a),
        SubjectPublicKeyInfo::from_der(b),
    ) {
        (Ok((_, a)), Ok((_, b))) => {
            a.algorithm.algorithm == b.algorithm.algorithm
                && a.algorithm.parameters.as_ref().map(|p| p.as_bytes())
                    == b.algorithm.parameters.as_ref().map(|p| p.as_bytes())
                && a.subject_public_key.data == b.subject_public_key.data
        }
        _ => false,
    }
}

/// An enrolled device as found on disk.
#[derive(Debug)]
pub(crate) struct Enrolled {
    pub key: DeviceKey,
    pub cert_der: Vec<u8>,
    pub cert: CertInfo,
    /// CA certificates (DER), issuing first; may be empty if `chain.pem` is missing.
    pub chain: Vec<Vec<u8>>,
}

/// The agent's state directory.
#[derive(Debug, Clone)]
pub(crate) struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    pub(crate) fn new(dir: PathBuf) -> Self {
        StateDir { dir }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub(crate) fn cert_path(&self) -> PathBuf {
        self.path(CERT)
    }

    fn state_err(&self, reason: impl Into<String>) -> AgentError {
        AgentError::State {
            dir: self.dir.clone(),
            reason: reason.into(),
        }
    }

    /// Creates the directory (0700: it holds the device's private key).
    pub(crate) fn create(&self) -> Result<(), AgentError> {
        let mut b = fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(&self.dir)
            .map_err(|e| AgentError::io("creating", &self.dir, e))
    }

    pub(crate) fn has_cert(&self) -> bool {
        self.path(CERT).exists()
    }

    /// Finishes or drops a replacement a crash interrupted (see the module doc).
    pub(crate) fn recover(&self) -> Result<(), AgentError> {
        let cert_next = self.path(CERT_NEXT);
        let key_next = self.path(KEY_NEXT);
        if !cert_next.exists() {
            if key_next.exists() {
                remove(&key_next)?;
            }
            return Ok(());
        }
        let info = self.read_cert(CERT_NEXT)?.1;
        if key_next.exists() && info.certifies(&self.read_key(KEY_NEXT)?) {
            rename(&key_next, &self.path(KEY))?;
        } else if self.path(KEY).exists() && info.certifies(&self.read_key(KEY)?) {
            if key_next.exists() {
                remove(&key_next)?;
            }
        } else {
            return Err(self.state_err(format!(
                "{CERT_NEXT} matches neither {KEY} nor {KEY_NEXT}; remove the .next files to continue"
            )));
        }
        rename(&cert_next, &self.path(CERT))?;
        sync_dir(&self.dir)
    }

    fn read_key(&self, name: &str) -> Result<DeviceKey, AgentError> {
        let p = self.path(name);
        let bytes = zeroize::Zeroizing::new(read(&p)?);
        let s = std::str::from_utf8(&bytes)
            .map_err(|_| AgentError::Key(format!("{} is not PEM", p.display())))?;
        DeviceKey::from_pem(s, &p.display().to_string())
    }

    /// A certificate file (PEM), as DER and parsed.
    fn read_cert(&self, name: &str) -> Result<(Vec<u8>, CertInfo), AgentError> {
        let der = first_pem(&read(&self.path(name))?, "CERTIFICATE")
            .map_err(|e| self.state_err(format!("{name}: {e}")))?;
        let info = CertInfo::parse(&der).map_err(|e| self.state_err(format!("{name}: {e}")))?;
        Ok((der, info))
    }

    /// The enrolled state, after recovery; `NotEnrolled` without a certificate.
    pub(crate) fn load(&self) -> Result<Enrolled, AgentError> {
        self.recover()?;
        let cert_path = self.path(CERT);
        if !cert_path.exists() {
            return Err(AgentError::NotEnrolled(self.dir.clone()));
        }
        let (cert_der, cert) = self.read_cert(CERT)?;
        if !self.path(KEY).exists() {
            return Err(self.state_err(format!("{CERT} exists but {KEY} does not")));
        }
        let key = self.read_key(KEY)?;
        if !cert.certifies(&key) {
            return Err(self.state_err(format!("{KEY} is not the key of {CERT}")));
        }
        let chain_path = self.path(CHAIN);
        let chain = if chain_path.exists() {
            all_pem(&read(&chain_path)?, "CERTIFICATE")
                .map_err(|e| self.state_err(format!("{CHAIN}: {e}")))?
        } else {
            Vec::new()
        };
        Ok(Enrolled {
            key,
            cert_der,
            cert,
            chain,
        })
    }

    /// Stages a new key before the request that certifies it.
    pub(crate) fn stage_key(&self, key: &DeviceKey) -> Result<(), AgentError> {
        write_atomic(&self.path(KEY_NEXT), key.to_pem().as_bytes(), 0o600)
    }

    /// Stores the CA chain (DER certificates) as PEM.
    pub(crate) fn write_chain(&self, chain: &[Vec<u8>]) -> Result<(), AgentError> {
        write_atomic(&self.path(CHAIN), pem_certs(chain).as_bytes(), 0o644)
    }

    /// Puts a new certificate (and the staged key, if it is that key's) into place.
    pub(crate) fn commit_cert(&self, cert_der: &[u8]) -> Result<(), AgentError> {
        write_atomic(
            &self.path(CERT_NEXT),
            pem_certs(&[cert_der.to_vec()]).as_bytes(),
            0o644,
        )?;
        self.recover()
    }
}

/// PEM for DER certificates.
pub(crate) fn pem_certs(ders: &[Vec<u8>]) -> String {
    ders.iter()
        .map(|d| pem::encode(&pem::Pem::new("CERTIFICATE", d.clone())))
        .collect()
}

/// Every `tag` block of a PEM file.
pub(crate) fn all_pem(data: &[u8], tag: &str) -> Result<Vec<Vec<u8>>, String> {
    let blocks = pem::parse_many(data).map_err(|e| format!("not valid PEM: {e}"))?;
    Ok(blocks
        .into_iter()
        .filter(|p| p.tag() == tag)
        .map(pem::Pem::into_contents)
        .collect())
}

fn first_pem(data: &[u8], tag: &str) -> Result<Vec<u8>, String> {
    all_pem(data, tag)?
        .into_iter()
        .next()
        .ok_or_else(|| format!("no {tag} block"))
}

fn read(p: &Path) -> Result<Vec<u8>, AgentError> {
    fs::read(p).map_err(|e| AgentError::io("reading", p, e))
}

fn remove(p: &Path) -> Result<(), AgentError> {
    fs::remove_file(p).map_err(|e| AgentError::io("removing", p, e))
}

fn rename(from: &Path, to: &Path) -> Result<(), AgentError> {
    fs::rename(from, to).map_err(|e| AgentError::io("renaming", from, e))
}

/// Makes renames in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), AgentError> {
    #[cfg(unix)]
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| AgentError::io("syncing", dir, e))?;
    Ok(())
}

/// Writes `data` to `path` through a temporary file in the same directory: created with
/// `mode` (so a key is never readable by others, not even briefly), fsynced, renamed.
pub(crate) fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), AgentError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp_name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    // A leftover from an earlier crash may have other permissions: start afresh.
    if tmp.exists() {
        remove(&tmp)?;
    }
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts
        .open(&tmp)
        .map_err(|e| AgentError::io("creating", &tmp, e))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(|e| AgentError::io("writing", &tmp, e))?;
    drop(f);
    rename(&tmp, path)?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use medsec_core::KeyAlgorithm;

    fn self_signed(key: &DeviceKey) -> Vec<u8> {
        let kp = rcgen::KeyPair::from_pem(&key.to_pem()).unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "test device");
        p.self_signed(&kp).unwrap().der().to_vec()
    }

    fn fresh() -> (tempfile::TempDir, StateDir) {
        let t = tempfile::tempdir().unwrap();
        let s = StateDir::new(t.path().join("state"));
        s.create().unwrap();
        (t, s)
    }

    #[test]
    fn stage_and_commit_replaces_key_and_cert_together() {
        let (_t, s) = fresh();
        assert!(matches!(s.load(), Err(AgentError::NotEnrolled(_))));
        let k1 = DeviceKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        s.stage_key(&k1).unwrap();
        s.commit_cert(&self_signed(&k1)).unwrap();
        let e = s.load().unwrap();
        assert!(e.cert.certifies(&k1));
        assert!(e.chain.is_empty());

        // Renew: same key, new certificate, nothing staged.
        let c2 = self_signed(&k1);
        s.commit_cert(&c2).unwrap();
        assert_eq!(s.load().unwrap().cert_der, c2);

        // Rekey.
        let k2 = DeviceKey::generate(KeyAlgorithm::Ed25519).unwrap();
        s.stage_key(&k2).unwrap();
        s.commit_cert(&self_signed(&k2)).unwrap();
        let e = s.load().unwrap();
        assert!(e.cert.certifies(&k2));
        assert!(!s.path(KEY_NEXT).exists() && !s.path(CERT_NEXT).exists());
    }

    #[cfg(unix)]
    #[test]
    fn the_key_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let (_t, s) = fresh();
        let k = DeviceKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        s.stage_key(&k).unwrap();
        s.commit_cert(&self_signed(&k)).unwrap();
        let mode = fs::metadata(s.path(KEY)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let mode = fs::metadata(s.dir()).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0);
    }

    #[test]
    fn recovery_after_crashes_at_each_step() {
        let (_t, s) = fresh();
        let k1 = DeviceKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        s.stage_key(&k1).unwrap();
        s.commit_cert(&self_signed(&k1)).unwrap();

        // Crash after staging the key, before an answer: the staged key is dropped.
        let k2 = DeviceKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        s.stage_key(&k2).unwrap();
        assert!(s.load().unwrap().cert.certifies(&k1));
        assert!(!s.path(KEY_NEXT).exists());

        // Crash after storing the new certificate, before the renames: both go in.
        s.stage_key(&k2).unwrap();
        write_atomic(
            &s.path(CERT_NEXT),
            pem_certs(&[self_signed(&k2)]).as_bytes(),
            0o644,
        )
        .unwrap();
        assert!(s.load().unwrap().cert.certifies(&k2));

        // Crash between the renames (key moved, certificate not): the certificate follows.
        let k3 = DeviceKey::generate(KeyAlgorithm::EcdsaP384).unwrap();
        write_atomic(
            &s.path(CERT_NEXT),
            pem_certs(&[self_signed(&k3)]).as_bytes(),
            0o644,
        )
        .unwrap();
        fs::write(s.path(KEY), k3.to_pem().as_bytes()).unwrap();
        assert!(s.load().unwrap().cert.certifies(&k3));

        // A staged certificate for no key we hold is reported, not guessed at.
        let stray = DeviceKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        write_atomic(
            &s.path(CERT_NEXT),
            pem_certs(&[self_signed(&stray)]).as_bytes(),
            0o644,
        )
        .unwrap();
        assert!(matches!(s.load(), Err(AgentError::State { .. })));
    }

    #[test]
    fn a_key_that_does_not_match_the_certificate_is_refused() {
        let (_t, s) = fresh();
        let k1 = DeviceKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let k2 = DeviceKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        fs::write(s.path(KEY), k2.to_pem().as_bytes()).unwrap();
        fs::write(s.path(CERT), pem_certs(&[self_signed(&k1)])).unwrap();
        let e = s.load().unwrap_err();
        assert!(e.to_string().contains("is not the key of"), "{e}");
    }
}
