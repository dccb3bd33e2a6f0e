//! The state directory: device key (or where it lives), device certificate, CA chain, and how
//! they are replaced.
//!
//! Files (all written to a temporary name, fsynced, then renamed, so a reader sees the old or
//! the new content and never a torn file):
//!
//! * `device.key`     PKCS#8 PEM, mode 0600, for a file key (see `keys.rs` for why it is not
//!   sealed), or
//! * `device.keyref`  for a key in a PKCS#11 token: its label, token and public key (JSON);
//!   the private key never leaves the token, so it is never here
//! * `device.pem`     the current device certificate
//! * `chain.pem`      the CA certificates from the server's `cacerts` (issuing first)
//!
//! Key and certificate must change together, which two renames cannot do atomically. So a new
//! key is staged (`device.key.next` or `device.keyref.next`) before the request and the new
//! certificate as `device.pem.next` after it; then both are renamed into place, and a current
//! key of the other kind (a rekey that moved the key into or out of a token) is removed.
//! Whatever a crash leaves behind, [`StateDir::recover`] resolves by matching public keys: a
//! staged certificate goes with whichever key it certifies, and a staged key without a
//! certificate belongs to an exchange that never completed and is dropped (the server keeps
//! the old certificate valid through the rekey overlap, so the agent simply tries again).
//! Matching a token key needs only the public key in its record, so recovery never has to
//! open the token.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use medsec_core::{CertSerial, DeviceId};
use serde::Serialize;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::AgentError;
use crate::keys::{DeviceKey, KeyHome, StoredKey, TokenKeyRecord};

const KEY: &str = "device.key";
const KEY_REF: &str = "device.keyref";
const CERT: &str = "device.pem";
const CHAIN: &str = "chain.pem";
const KEY_NEXT: &str = "device.key.next";
const KEY_REF_NEXT: &str = "device.keyref.next";
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

    /// Whether the key with SubjectPublicKeyInfo `spki_der` is the one this certificate
    /// certifies.
    pub(crate) fn certifies(&self, spki_der: &[u8]) -> bool {
        same_spki(&self.spki_der, spki_der)
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
    /// The key `cert` certifies; a token key still has to be opened to sign.
    pub key: StoredKey,
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
        if !cert_next.exists() {
            for staged in [KEY_NEXT, KEY_REF_NEXT] {
                self.remove_if_exists(staged)?;
            }
            return Ok(());
        }
        let info = self.read_cert(CERT_NEXT)?.1;
        // Staged keys first: a new certificate normally comes with a new key. A current key
        // matches on renewal, or when an earlier recovery stopped after moving the key.
        let mut matching = None;
        for name in [KEY_NEXT, KEY_REF_NEXT, KEY, KEY_REF] {
            if self.path(name).exists() && info.certifies(&self.read_stored(name)?.spki_der()) {
                matching = Some(name);
                break;
            }
        }
        let (slot, other) = match matching {
            Some(KEY_NEXT | KEY) => (KEY, KEY_REF),
            Some(_) => (KEY_REF, KEY),
            None => {
                return Err(self.state_err(format!(
                    "{CERT_NEXT} matches none of {KEY}, {KEY_REF}, {KEY_NEXT}, {KEY_REF_NEXT}; remove the .next files to continue"
                )));
            }
        };
        if let Some(staged @ (KEY_NEXT | KEY_REF_NEXT)) = matching {
            rename(&self.path(staged), &self.path(slot))?;
        }
        // Only now, with the new key in place: the key of the other kind is the one replaced.
        for stale in [other, KEY_NEXT, KEY_REF_NEXT] {
            self.remove_if_exists(stale)?;
        }
        rename(&cert_next, &self.path(CERT))?;
        sync_dir(&self.dir)
    }

    fn remove_if_exists(&self, name: &str) -> Result<(), AgentError> {
        let p = self.path(name);
        if p.exists() { remove(&p) } else { Ok(()) }
    }

    fn read_key(&self, name: &str) -> Result<DeviceKey, AgentError> {
        let p = self.path(name);
        let bytes = zeroize::Zeroizing::new(read(&p)?);
        let s = std::str::from_utf8(&bytes)
            .map_err(|_| AgentError::Key(format!("{} is not PEM", p.display())))?;
        DeviceKey::from_pem(s, &p.display().to_string())
    }

    fn read_record(&self, name: &str) -> Result<TokenKeyRecord, AgentError> {
        TokenKeyRecord::from_json(&read(&self.path(name))?, name).map_err(|e| self.state_err(e))
    }

    /// A key file or token key record, by file name.
    fn read_stored(&self, name: &str) -> Result<StoredKey, AgentError> {
        if name == KEY_REF || name == KEY_REF_NEXT {
            self.read_record(name).map(StoredKey::Token)
        } else {
            self.read_key(name).map(StoredKey::File)
        }
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
        let present: Vec<&str> = [KEY, KEY_REF]
            .into_iter()
            .filter(|n| self.path(n).exists())
            .collect();
        let key = match present.as_slice() {
            [] => {
                return Err(self.state_err(format!(
                    "{CERT} exists but neither {KEY} nor {KEY_REF} does"
                )));
            }
            [name] => {
                let key = self.read_stored(name)?;
                if !cert.certifies(&key.spki_der()) {
                    return Err(self.state_err(format!("{name} is not the key of {CERT}")));
                }
                key
            }
            // Both: not a state the replacement steps leave, but only the one that matches
            // the certificate can be meant.
            _ => {
                let file = self.read_stored(KEY)?;
                let token = self.read_stored(KEY_REF)?;
                match (
                    cert.certifies(&file.spki_der()),
                    cert.certifies(&token.spki_der()),
                ) {
                    (true, false) => file,
                    (false, true) => token,
                    _ => {
                        return Err(self.state_err(format!(
                            "both {KEY} and {KEY_REF} exist and it is unclear which is the key of {CERT}; remove the wrong one"
                        )));
                    }
                }
            }
        };
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

    /// Whether the state directory names token key `record` as its current or staged key,
    /// i.e. whether destroying it could cost the device its identity. Answers yes when a
    /// record cannot be read, so that doubt never destroys a key.
    pub(crate) fn references_token_key(&self, record: &TokenKeyRecord) -> bool {
        [KEY_REF, KEY_REF_NEXT]
            .into_iter()
            .any(|name| match self.path(name).try_exists() {
                Ok(false) => false,
                Ok(true) => self
                    .read_record(name)
                    .map_or(true, |r| r.label == record.label && r.token == record.token),
                Err(_) => true,
            })
    }

    /// Stages a new key before the request that certifies it: the PKCS#8 of a file key, the
    /// record of a token key.
    pub(crate) fn stage_key(&self, key: &DeviceKey) -> Result<(), AgentError> {
        match key.home() {
            KeyHome::File(_) => {
                let pem = key
                    .to_pem()
                    .ok_or_else(|| AgentError::Key("a file key without PKCS#8".into()))?;
                write_atomic(&self.path(KEY_NEXT), pem.as_bytes(), 0o600)
            }
            KeyHome::Token(record) => {
                write_atomic(&self.path(KEY_REF_NEXT), &record.to_json()?, 0o600)
            }
        }
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

    fn cert_for_spki(signing: &DeviceKey, spki_der: &[u8]) -> Vec<u8> {
        let kp = rcgen::KeyPair::from_pem(&signing.to_pem().unwrap()).unwrap();
        let issuer_params = {
            let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            p.distinguished_name
                .push(rcgen::DnType::CommonName, "test issuer");
            p
        };
        let issuer = rcgen::Issuer::new(issuer_params, &kp);
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "test device");
        let spki = rcgen::SubjectPublicKeyInfo::from_der(spki_der).unwrap();
        p.signed_by(&spki, &issuer).unwrap().der().to_vec()
    }

    fn cert_for(key: &DeviceKey) -> Vec<u8> {
        cert_for_spki(key, &key.spki_der())
    }

    /// A token key as the state directory sees it: only a record. Its public key is a file
    /// key's, which lets the tests make certificates for it without a token.
    fn token_record(label: &str, alg: KeyAlgorithm) -> (TokenKeyRecord, DeviceKey) {
        let k = DeviceKey::generate(alg).unwrap();
        let r = TokenKeyRecord {
            label: label.into(),
            token: "test-token".into(),
            algorithm: alg,
            spki_der: k.spki_der(),
        };
        (r, k)
    }

    fn stage_record(s: &StateDir, r: &TokenKeyRecord) {
        write_atomic(&s.path(KEY_REF_NEXT), &r.to_json().unwrap(), 0o600).unwrap();
    }

    fn stage_cert(s: &StateDir, der: Vec<u8>) {
        write_atomic(&s.path(CERT_NEXT), pem_certs(&[der]).as_bytes(), 0o644).unwrap();
    }

    fn fresh() -> (tempfile::TempDir, StateDir) {
        let t = tempfile::tempdir().unwrap();
        let s = StateDir::new(t.path().join("state"));
        s.create().unwrap();
        (t, s)
    }

    fn current_token_label(s: &StateDir) -> Option<String> {
        match s.load().unwrap().key {
            StoredKey::Token(r) => Some(r.label),
            StoredKey::File(_) => None,
        }
    }

    #[test]
    fn stage_and_commit_replaces_key_and_cert_together() {
        let (_t, s) = fresh();
        assert!(matches!(s.load(), Err(AgentError::NotEnrolled(_))));
        let k1 = DeviceKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        s.stage_key(&k1).unwrap();
        s.commit_cert(&cert_for(&k1)).unwrap();
        let e = s.load().unwrap();
        assert!(e.cert.certifies(&k1.spki_der()));
        assert!(e.chain.is_empty());

        // Renew: same key, new certificate, nothing staged.
        let c2 = cert_for(&k1);
        s.commit_cert(&c2).unwrap();
        assert_eq!(s.load().unwrap().cert_der, c2);

        // Rekey.
        let k2 = DeviceKey::generate(KeyAlgorithm::Ed25519).unwrap();
        s.stage_key(&k2).unwrap();
        s.commit_cert(&cert_for(&k2)).unwrap();
        let e = s.load().unwrap();
        assert!(e.cert.certifies(&k2.spki_der()));
        assert!(!s.path(KEY_NEXT).exists() && !s.path(CERT_NEXT).exists());
    }

    #[test]
    fn token_keys_are_recorded_never_written() {
        let (_t, s) = fresh();
        let (r1, k1) = token_record("device-key", KeyAlgorithm::EcdsaP256);
        stage_record(&s, &r1);
        s.commit_cert(&cert_for(&k1)).unwrap();
        assert!(!s.path(KEY).exists() && !s.path(KEY_REF_NEXT).exists());
        assert_eq!(current_token_label(&s).as_deref(), Some("device-key"));
        assert_eq!(s.load().unwrap().key.algorithm(), KeyAlgorithm::EcdsaP256);

        // Renewal keeps the record.
        s.commit_cert(&cert_for(&k1)).unwrap();
        assert_eq!(current_token_label(&s).as_deref(), Some("device-key"));

        // Rekey within the token.
        let (r2, k2) = token_record("device-key-1700000000", KeyAlgorithm::EcdsaP384);
        stage_record(&s, &r2);
        s.commit_cert(&cert_for(&k2)).unwrap();
        assert_eq!(
            current_token_label(&s).as_deref(),
            Some("device-key-1700000000")
        );
        assert!(!s.path(KEY).exists());
    }

    #[test]
    fn a_rekey_can_move_the_key_into_a_token_and_back() {
        let (_t, s) = fresh();
        let file1 = DeviceKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        s.stage_key(&file1).unwrap();
        s.commit_cert(&cert_for(&file1)).unwrap();

        // File to token: the plaintext key file goes once the token key is in place.
        let (r, tk) = token_record("device-key", KeyAlgorithm::EcdsaP256);
        stage_record(&s, &r);
        s.commit_cert(&cert_for(&tk)).unwrap();
        assert!(!s.path(KEY).exists(), "the replaced file key is removed");
        assert_eq!(current_token_label(&s).as_deref(), Some("device-key"));

        // And back to a file key.
        let file2 = DeviceKey::generate(KeyAlgorithm::Ed25519).unwrap();
        s.stage_key(&file2).unwrap();
        s.commit_cert(&cert_for(&file2)).unwrap();
        assert!(!s.path(KEY_REF).exists());
        let e = s.load().unwrap();
        assert!(matches!(e.key, StoredKey::File(_)));
        assert!(e.cert.certifies(&file2.spki_der()));
    }

    #[cfg(unix)]
    #[test]
    fn current_and_staged_token_keys_are_referenced() {
        let (_d, s) = fresh();
        let (cur, _) = token_record("dev-1", KeyAlgorithm::EcdsaP256);
        let (next, _) = token_record("dev-2", KeyAlgorithm::EcdsaP256);
        let (other, _) = token_record("dev-3", KeyAlgorithm::EcdsaP256);
        assert!(!s.references_token_key(&cur));
        write_atomic(&s.path(KEY_REF), &cur.to_json().unwrap(), 0o600).unwrap();
        stage_record(&s, &next);
        assert!(s.references_token_key(&cur));
        assert!(s.references_token_key(&next));
        assert!(!s.references_token_key(&other));
        // The same label in another token is another key.
        let elsewhere = TokenKeyRecord {
            token: "other-token".into(),
            ..cur.clone()
        };
        assert!(!s.references_token_key(&elsewhere));
        // An unreadable record could be any key.
        fs::write(s.path(KEY_REF_NEXT), b"garbage").unwrap();
        assert!(s.references_token_key(&other));
    }

    #[test]
    fn the_key_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let (_t, s) = fresh();
        let k = DeviceKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        s.stage_key(&k).unwrap();
        s.commit_cert(&cert_for(&k)).unwrap();
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
        s.commit_cert(&cert_for(&k1)).unwrap();

        // Crash after staging the key, before an answer: the staged key is dropped.
        let k2 = DeviceKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        s.stage_key(&k2).unwrap();
        assert!(s.load().unwrap().cert.certifies(&k1.spki_der()));
        assert!(!s.path(KEY_NEXT).exists());

        // Crash after storing the new certificate, before the renames: both go in.
        s.stage_key(&k2).unwrap();
        stage_cert(&s, cert_for(&k2));
        assert!(s.load().unwrap().cert.certifies(&k2.spki_der()));

        // Crash between the renames (key moved, certificate not): the certificate follows.
        let k3 = DeviceKey::generate(KeyAlgorithm::EcdsaP384).unwrap();
        stage_cert(&s, cert_for(&k3));
        fs::write(s.path(KEY), k3.to_pem().unwrap().as_bytes()).unwrap();
        assert!(s.load().unwrap().cert.certifies(&k3.spki_der()));

        // A staged certificate for no key we hold is reported, not guessed at.
        let stray = DeviceKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        stage_cert(&s, cert_for(&stray));
        assert!(matches!(s.load(), Err(AgentError::State { .. })));
    }

    #[test]
    fn recovery_of_a_move_into_the_token_at_each_step() {
        let setup = || {
            let (t, s) = fresh();
            let file = DeviceKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
            s.stage_key(&file).unwrap();
            s.commit_cert(&cert_for(&file)).unwrap();
            let (r, tk) = token_record("device-key-2", KeyAlgorithm::EcdsaP256);
            (t, s, file, r, tk)
        };

        // Record staged, no certificate yet: dropped, the file key stays current.
        let (_t, s, file, r, _) = setup();
        stage_record(&s, &r);
        let e = s.load().unwrap();
        assert!(e.cert.certifies(&file.spki_der()));
        assert!(!s.path(KEY_REF_NEXT).exists() && s.path(KEY).exists());

        // Record and certificate staged: both go in, the file key goes.
        let (_t, s, _, r, tk) = setup();
        stage_record(&s, &r);
        stage_cert(&s, cert_for(&tk));
        assert_eq!(current_token_label(&s).as_deref(), Some("device-key-2"));
        assert!(!s.path(KEY).exists());

        // Record moved into place, file key not yet removed, certificate still staged.
        let (_t, s, _, r, tk) = setup();
        write_atomic(&s.path(KEY_REF), &r.to_json().unwrap(), 0o600).unwrap();
        stage_cert(&s, cert_for(&tk));
        assert_eq!(current_token_label(&s).as_deref(), Some("device-key-2"));
        assert!(!s.path(KEY).exists());

        // File key already removed, certificate still staged.
        let (_t, s, _, r, tk) = setup();
        write_atomic(&s.path(KEY_REF), &r.to_json().unwrap(), 0o600).unwrap();
        fs::remove_file(s.path(KEY)).unwrap();
        stage_cert(&s, cert_for(&tk));
        assert_eq!(current_token_label(&s).as_deref(), Some("device-key-2"));
    }

    #[test]
    fn a_key_that_does_not_match_the_certificate_is_refused() {
        let (_t, s) = fresh();
        let k1 = DeviceKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let k2 = DeviceKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        fs::write(s.path(KEY), k2.to_pem().unwrap().as_bytes()).unwrap();
        fs::write(s.path(CERT), pem_certs(&[cert_for(&k1)])).unwrap();
        let e = s.load().unwrap_err();
        assert!(e.to_string().contains("is not the key of"), "{e}");

        // The same for a token key record.
        fs::remove_file(s.path(KEY)).unwrap();
        let (r, _) = token_record("device-key", KeyAlgorithm::EcdsaP256);
        write_atomic(&s.path(KEY_REF), &r.to_json().unwrap(), 0o600).unwrap();
        let e = s.load().unwrap_err();
        assert!(
            e.to_string().contains("device.keyref is not the key of"),
            "{e}"
        );

        // Neither.
        fs::remove_file(s.path(KEY_REF)).unwrap();
        let e = s.load().unwrap_err();
        assert!(e.to_string().contains("neither"), "{e}");
    }

    #[test]
    fn with_both_key_kinds_present_the_matching_one_is_used() {
        let (_t, s) = fresh();
        let file = DeviceKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let (r, tk) = token_record("device-key", KeyAlgorithm::EcdsaP256);
        fs::write(s.path(KEY), file.to_pem().unwrap().as_bytes()).unwrap();
        write_atomic(&s.path(KEY_REF), &r.to_json().unwrap(), 0o600).unwrap();
        fs::write(s.path(CERT), pem_certs(&[cert_for(&tk)])).unwrap();
        assert_eq!(current_token_label(&s).as_deref(), Some("device-key"));
        fs::write(s.path(CERT), pem_certs(&[cert_for(&file)])).unwrap();
        assert_eq!(current_token_label(&s), None);
    }
}
