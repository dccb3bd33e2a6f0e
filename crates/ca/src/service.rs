//! `Ca`: the CA's operations over a store and a key source, each one recorded in the audit log.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use medsec_core::{
    Actor, AuditAction, AuditRecord, CertSerial, DeviceId, DeviceSerial, KeyAlgorithm, Name,
    RevocationReason,
};
use medsec_keys::{KeyRef, KeySource, Signer};
use serde_json::json;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use crate::CaError;
use crate::crl::{CrlContent, encode_crl};
use crate::csr::{VerifiedCsr, parse_and_verify_csr};
use crate::model::{
    CaRecord, CaRole, CertRecord, CertStatus, CrlRecord, DeviceRecord, DeviceStatus,
    EnrollmentToken, Issuance, IssuanceKind, Revocation,
};
use crate::ocsp::{OcspResponder, OcspStatusSource};
use crate::profile::Profile;
use crate::signing::CaKey;
use crate::store::{CaStore, CertFilter, CrlEntries, StoreError};
use crate::x509::{
    CaCertSpec, DeviceCertSpec, ca_dn, ca_params, cert_facts, device_params, new_serial,
    pem_encode_cert,
};

/// Where relying parties find revocation status; written into every certificate a CA issues.
#[derive(Debug, Clone, Default)]
pub struct CaUrls {
    /// CRL URL; `{ca}` is replaced by the issuing CA's name, `{shard}` by the CRL shard (0 for
    /// an unsharded CA, whose one CRL covers everything).
    pub crl_url_template: Option<String>,
    pub ocsp_url: Option<String>,
    /// Shards for the CRLs of issuing CAs created with these URLs (0 or 1: one CRL per CA).
    /// A root's CRL lists only its few subordinate CAs and is never sharded.
    pub crl_shards: u32,
}

impl CaUrls {
    /// The CRL URL stored for a CA with `shards` shards: a sharded CA keeps `{shard}` to fill
    /// in per certificate; an unsharded one has its single URL.
    fn crl_for(&self, ca: &Name, shards: u32) -> Option<String> {
        self.crl_url_template.as_ref().map(|t| {
            let u = t.replace("{ca}", ca.as_str());
            if shards > 1 {
                u
            } else {
                crate::crl::crl_shard_url(&u, 0)
            }
        })
    }

    /// The shard count for an issuing CA (never 0).
    fn issuing_shards(&self) -> u32 {
        self.crl_shards.max(1)
    }

    fn check(&self) -> Result<(), CaError> {
        let shards = self.issuing_shards();
        if shards > crate::crl::MAX_CRL_SHARDS {
            return Err(CaError::Config(format!(
                "crl_shards = {shards} is more than the {} allowed",
                crate::crl::MAX_CRL_SHARDS
            )));
        }
        if shards > 1 {
            // Every shard needs its own URL, or the certificates of all shards would name one
            // distribution point and relying parties would fetch one shard for all of them.
            match &self.crl_url_template {
                Some(t) if t.contains(crate::crl::SHARD_PLACEHOLDER) => {}
                Some(t) => {
                    return Err(CaError::Config(format!(
                        "crl_shards = {shards} needs a CRL URL template with {{shard}} (e.g. \
                         http://host/crl/{{ca}}/{{shard}}.crl); {t:?} has none"
                    )));
                }
                None => {
                    return Err(CaError::Config(format!(
                        "crl_shards = {shards} needs a CRL URL template with {{shard}}"
                    )));
                }
            }
        }
        for u in self.crl_url_template.iter().chain(self.ocsp_url.iter()) {
            let ok = (u.starts_with("http://") || u.starts_with("https://"))
                && u.is_ascii()
                && !u.chars().any(|c| c.is_ascii_control() || c == ' ');
            if !ok {
                return Err(CaError::Config(format!(
                    "URL {u:?} must be an absolute http(s) URL without spaces"
                )));
            }
        }
        Ok(())
    }
}

/// What `ca init` creates: a root and one issuing CA under it.
#[derive(Debug, Clone)]
pub struct CaInitSpec {
    pub root_name: Name,
    pub root_common_name: String,
    pub issuing_name: Name,
    pub issuing_common_name: String,
    pub organization: String,
    pub country: Option<String>,
    pub key_algorithm: KeyAlgorithm,
    pub root_validity_days: u32,
    pub issuing_validity_days: u32,
    pub root_crl_validity: Duration,
    pub issuing_crl_validity: Duration,
    pub urls: CaUrls,
}

/// A freshly issued certificate with what a device needs to use it.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    pub record: CertRecord,
    pub pem: String,
    /// The issuing CA certificate(s) up to, not including, the root.
    pub chain_pem: String,
}

/// The result of a rekey.
#[derive(Debug, Clone)]
pub struct RekeyOutcome {
    pub issued: IssuedCert,
    pub old: CertSerial,
    /// When the old certificate is (or was) revoked as superseded.
    pub old_revoked_at: OffsetDateTime,
}

/// Why a certificate is being issued, and what it replaces or spends.
enum Basis<'a> {
    /// First certificate for a key; with a token when the device bootstrapped with one.
    New {
        token: Option<(&'a EnrollmentToken, &'a str)>,
        /// How the device proved who it is, when not by token or operator.
        evidence: Option<&'a str>,
    },
    /// Same key, new validity.
    Renew(&'a CertRecord),
    /// New key; the old certificate is revoked as superseded at the given time.
    Rekey(&'a CertRecord, OffsetDateTime),
}

struct LoadedCa {
    record: CaRecord,
    /// PEM of this CA's certificate and its parents below the root; CA certificates never
    /// change, so it is computed once.
    chain_pem: String,
    key: CaKey,
    issuer: rcgen::Issuer<'static, CaKey>,
    ski: Option<Vec<u8>>,
}

/// X.509 has one-second resolution; keeping stored times at that resolution makes what we
/// store equal to what we sign.
fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(0).unwrap_or(t)
}

/// Backdating absorbs clock skew on devices that have just booted.
const BACKDATE: Duration = Duration::seconds(60);

/// The longest life of a server certificate the CA issues to a server's in-memory key.
pub const MAX_SERVER_CERT_DAYS: i64 = 30;
/// How often to retry issuance when a random serial collides with a stored one.
const SERIAL_ATTEMPTS: usize = 4;

fn spki_hash(spki: &[u8]) -> String {
    hex::encode(Sha256::digest(spki))
}

fn subject_key_identifier(der: &[u8]) -> Option<Vec<u8>> {
    use x509_parser::prelude::{FromDer, ParsedExtension, X509Certificate};
    let (_, c) = X509Certificate::from_der(der).ok()?;
    c.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        })
}

/// The CA: one per process, shared by the CLI command or the server.
pub struct Ca<S> {
    store: S,
    keys: Arc<dyn KeySource>,
    loaded: Mutex<HashMap<Name, Arc<LoadedCa>>>,
    load_lock: tokio::sync::Mutex<()>,
    responder_cache: Mutex<Option<CachedResponder>>,
    ocsp_validity: Duration,
}

type CachedResponder = (Arc<(OcspResponder, Vec<CaRecord>)>, std::time::Instant);

/// How long the OCSP responder's view of the CA set may be stale for CAs added by another
/// process (this process invalidates it itself).
const RESPONDER_TTL: std::time::Duration = std::time::Duration::from_secs(10);

impl<S: CaStore> Ca<S> {
    pub fn new(store: S, keys: Arc<dyn KeySource>) -> Self {
        Ca {
            store,
            keys,
            loaded: Mutex::new(HashMap::new()),
            load_lock: tokio::sync::Mutex::new(()),
            responder_cache: Mutex::new(None),
            ocsp_validity: Duration::hours(1),
        }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    fn cached(&self, name: &Name) -> Option<Arc<LoadedCa>> {
        self.loaded.lock().ok().and_then(|m| m.get(name).cloned())
    }

    async fn load(&self, name: &Name) -> Result<Arc<LoadedCa>, CaError> {
        if let Some(l) = self.cached(name) {
            return Ok(l);
        }
        // Unlocking a key costs an Argon2id derivation (or a token login); concurrent first
        // users wait for one load instead of each doing their own.
        let _single = self.load_lock.lock().await;
        if let Some(l) = self.cached(name) {
            return Ok(l);
        }
        let record = self
            .store
            .get_ca(name)
            .await?
            .ok_or_else(|| CaError::CaNotFound(name.clone()))?;
        let key_ref = record
            .key_ref
            .as_ref()
            .ok_or_else(|| CaError::CaHasNoKey(name.clone()))?
            .parse()?;
        let signer: Arc<dyn Signer> = Arc::from(self.keys.load(&key_ref)?);
        let facts = cert_facts(&record.cert_der)?;
        if signer.public_key() != facts.public_key.as_slice() {
            return Err(CaError::Config(format!(
                "the key {key_ref} does not match CA {name}'s certificate"
            )));
        }
        let key = CaKey::new(signer)?;
        let issuer = rcgen::Issuer::from_ca_cert_der(&record.cert_der.clone().into(), key.clone())?;
        let chain_pem = self.chain_pem(name).await?;
        let loaded = Arc::new(LoadedCa {
            chain_pem,
            ski: subject_key_identifier(&record.cert_der),
            record,
            key,
            issuer,
        });
        if let Ok(mut m) = self.loaded.lock() {
            m.insert(name.clone(), loaded.clone());
        }
        Ok(loaded)
    }

    /// Unlocks the signing key of CA `name` once per process (then a cache lookup) and checks
    /// it against the CA's certificate: what a readiness probe asks before this process is
    /// sent enrollments.
    pub async fn ensure_key_loaded(&self, name: &Name) -> Result<(), CaError> {
        self.load(name).await.map(|_| ())
    }

    fn forget(&self, name: &Name) {
        if let Ok(mut m) = self.loaded.lock() {
            m.remove(name);
        }
        self.ca_set_changed();
    }

    fn ca_set_changed(&self) {
        if let Ok(mut c) = self.responder_cache.lock() {
            *c = None;
        }
    }

    /// Creates a root CA and an issuing CA (pathlen 0) under it.
    pub async fn init(
        &self,
        spec: &CaInitSpec,
        actor: &Actor,
    ) -> Result<(CaRecord, CaRecord), CaError> {
        spec.urls.check()?;
        if !spec.key_algorithm.usable_for_ca() {
            return Err(CaError::Config(format!(
                "{} cannot be a CA key",
                spec.key_algorithm
            )));
        }
        for d in [spec.root_validity_days, spec.issuing_validity_days] {
            if d == 0 || d > 36500 {
                return Err(CaError::Config(
                    "CA validity must be 1 to 36500 days".into(),
                ));
            }
        }
        if spec.issuing_validity_days > spec.root_validity_days {
            return Err(CaError::Config(
                "the issuing CA cannot outlive the root".into(),
            ));
        }
        let root_exists = self.store.get_ca(&spec.root_name).await?.is_some();
        let issuing_exists = self.store.get_ca(&spec.issuing_name).await?.is_some();
        if issuing_exists {
            let taken = if root_exists {
                &spec.root_name
            } else {
                &spec.issuing_name
            };
            return Err(CaError::CaExists(taken.clone()));
        }
        if root_exists {
            // What an init killed after recording the root leaves: say how to finish it.
            return Err(CaError::Config(format!(
                "CA {root} already exists but {issuing} does not (an earlier init may have been \
                 interrupted); add the issuing CA with `medsec ca add-issuing --name {issuing} \
                 --parent {root}`",
                root = spec.root_name,
                issuing = spec.issuing_name
            )));
        }
        if spec.root_name == spec.issuing_name {
            return Err(CaError::Config(
                "root and issuing CA need different names".into(),
            ));
        }
        let t = now();
        let dn = ca_dn(
            &spec.root_common_name,
            &spec.organization,
            spec.country.as_deref(),
        )?;
        let serial = new_serial()?;
        let signer = self.new_ca_key(&spec.root_name, spec.key_algorithm).await?;
        let key = CaKey::new(signer.clone())?;
        let not_after = t + Duration::days(spec.root_validity_days.into());
        let params = ca_params(&CaCertSpec {
            dn,
            serial: &serial,
            not_before: t - BACKDATE,
            not_after,
            path_len: None,
            crl_url: None,
            ocsp_url: None,
        })?;
        let cert = params.self_signed(&key)?;
        let root = CaRecord {
            name: spec.root_name.clone(),
            role: CaRole::Root,
            parent: None,
            cert_der: cert.der().to_vec(),
            key_ref: Some(signer.key_ref().to_string()),
            key_algorithm: spec.key_algorithm,
            crl_url: spec.urls.crl_for(&spec.root_name, 1),
            ocsp_url: spec.urls.ocsp_url.clone(),
            crl_shards: 1,
            crl_validity_secs: spec.root_crl_validity.whole_seconds(),
            serial,
            not_after,
            created_at: t,
            revocation: None,
        };
        self.store
            .insert_ca(
                &root,
                &AuditRecord::new(
                    actor,
                    AuditAction::CaCreated,
                    root.name.as_str(),
                    json!({"role": "root", "serial": root.serial, "key": root.key_ref, "algorithm": spec.key_algorithm}),
                ),
            )
            .await?;
        self.ca_set_changed();
        let issuing = self
            .add_issuing(
                &spec.issuing_name,
                &spec.issuing_common_name,
                &spec.organization,
                spec.country.as_deref(),
                &spec.root_name,
                spec.key_algorithm,
                spec.issuing_validity_days,
                spec.issuing_crl_validity,
                &spec.urls,
                actor,
            )
            .await?;
        Ok((root, issuing))
    }

    /// A new signing key for CA `name`, labelled `ca-<name>`. The callers checked that no CA
    /// of that name exists, so a key already under the label belongs to no CA: an init or
    /// add-issuing killed between generating the key and recording the CA left it (key
    /// sources never overwrite). It is taken up, so that the name is not blocked for good,
    /// unless a CA record references it or it has another algorithm.
    async fn new_ca_key(&self, name: &Name, alg: KeyAlgorithm) -> Result<Arc<dyn Signer>, CaError> {
        let label = format!("ca-{name}");
        let key = match self.keys.generate(&label, alg) {
            Ok(s) => return Ok(Arc::from(s)),
            Err(medsec_keys::KeyError::AlreadyExists { key }) => key,
            Err(e) => return Err(e.into()),
        };
        let key_ref: KeyRef = key.parse()?;
        for ca in self.store.list_cas().await? {
            if ca
                .key_ref
                .as_deref()
                .and_then(|r| r.parse::<KeyRef>().ok())
                .as_ref()
                == Some(&key_ref)
            {
                return Err(CaError::Config(format!(
                    "key {key} is CA {}'s key; it cannot be {name}'s",
                    ca.name
                )));
            }
        }
        let signer = self.keys.load(&key_ref)?;
        if signer.algorithm() != alg {
            return Err(CaError::Config(format!(
                "key {key} is left over from an interrupted CA creation and is {} rather than \
                 {alg}; ask for {} or remove the key",
                signer.algorithm(),
                signer.algorithm()
            )));
        }
        Ok(Arc::from(signer))
    }

    /// Adds an issuing CA (pathlen 0) signed by `parent`, e.g. one per product line.
    #[allow(clippy::too_many_arguments)]
    pub async fn add_issuing(
        &self,
        name: &Name,
        common_name: &str,
        organization: &str,
        country: Option<&str>,
        parent: &Name,
        alg: KeyAlgorithm,
        validity_days: u32,
        crl_validity: Duration,
        urls: &CaUrls,
        actor: &Actor,
    ) -> Result<CaRecord, CaError> {
        urls.check()?;
        if self.store.get_ca(name).await?.is_some() {
            return Err(CaError::CaExists(name.clone()));
        }
        let parent_ca = self.load(parent).await?;
        if parent_ca.record.role != CaRole::Root {
            return Err(CaError::Config(format!(
                "issuing CAs are signed by a root; {parent} is an issuing CA (pathlen 0)"
            )));
        }
        if parent_ca.record.revocation.is_some() {
            return Err(CaError::Config(format!("CA {parent} is revoked")));
        }
        let t = now();
        let not_after = (t + Duration::days(validity_days.into())).min(parent_ca.record.not_after);
        let dn = ca_dn(common_name, organization, country)?;
        let serial = new_serial()?;
        let signer = self.new_ca_key(name, alg).await?;
        let key = CaKey::new(signer.clone())?;
        let params = ca_params(&CaCertSpec {
            dn,
            serial: &serial,
            not_before: t - BACKDATE,
            not_after,
            path_len: Some(0),
            crl_url: parent_ca.record.crl_url.as_deref(),
            ocsp_url: parent_ca.record.ocsp_url.as_deref(),
        })?;
        let cert = params.signed_by(&key, &parent_ca.issuer)?;
        let rec = CaRecord {
            name: name.clone(),
            role: CaRole::Issuing,
            parent: Some(parent.clone()),
            cert_der: cert.der().to_vec(),
            key_ref: Some(signer.key_ref().to_string()),
            key_algorithm: alg,
            crl_url: urls.crl_for(name, urls.issuing_shards()),
            ocsp_url: urls.ocsp_url.clone(),
            crl_shards: urls.issuing_shards(),
            crl_validity_secs: crl_validity.whole_seconds(),
            serial,
            not_after,
            created_at: t,
            revocation: None,
        };
        self.store
            .insert_ca(
                &rec,
                &AuditRecord::new(
                    actor,
                    AuditAction::CaCreated,
                    name.as_str(),
                    json!({"role": "issuing", "parent": parent, "serial": rec.serial, "key": rec.key_ref, "algorithm": alg}),
                ),
            )
            .await?;
        self.ca_set_changed();
        Ok(rec)
    }

    /// Registers an existing root certificate (made elsewhere, e.g. at an offline ceremony).
    /// `key` is its private key when it is to sign here; without it the root is trust-only.
    pub async fn import_root(
        &self,
        name: &Name,
        cert_der: &[u8],
        key: Option<Box<dyn Signer>>,
        urls: &CaUrls,
        crl_validity: Duration,
        actor: &Actor,
    ) -> Result<CaRecord, CaError> {
        urls.check()?;
        if self.store.get_ca(name).await?.is_some() {
            return Err(CaError::CaExists(name.clone()));
        }
        let facts = cert_facts(cert_der)?;
        if !facts.is_ca {
            return Err(CaError::Import(
                "the certificate is not a CA (basicConstraints CA:TRUE missing)".into(),
            ));
        }
        verify_self_signed(cert_der)?;
        let t = now();
        if facts.not_after <= t {
            return Err(CaError::Import(format!(
                "the certificate expired at {}",
                facts.not_after
            )));
        }
        let alg = key_algorithm_of_cert(cert_der)?;
        if let Some(k) = &key
            && k.public_key() != facts.public_key.as_slice()
        {
            return Err(CaError::Import(
                "the private key does not belong to the certificate".into(),
            ));
        }
        let rec = CaRecord {
            name: name.clone(),
            role: CaRole::Root,
            parent: None,
            cert_der: cert_der.to_vec(),
            key_ref: key.as_ref().map(|k| k.key_ref().to_string()),
            key_algorithm: alg,
            crl_url: urls.crl_for(name, 1),
            ocsp_url: urls.ocsp_url.clone(),
            crl_shards: 1,
            crl_validity_secs: crl_validity.whole_seconds(),
            serial: facts.serial,
            not_after: facts.not_after,
            created_at: t,
            revocation: None,
        };
        self.store
            .insert_ca(
                &rec,
                &AuditRecord::new(
                    actor,
                    AuditAction::CaImported,
                    name.as_str(),
                    json!({"subject": facts.subject, "serial": rec.serial, "with_key": key.is_some()}),
                ),
            )
            .await?;
        self.ca_set_changed();
        Ok(rec)
    }

    /// Revokes a subordinate CA; its certificate goes onto the parent's CRL.
    pub async fn revoke_ca(
        &self,
        name: &Name,
        reason: RevocationReason,
        actor: &Actor,
    ) -> Result<(), CaError> {
        let rec = self
            .store
            .get_ca(name)
            .await?
            .ok_or_else(|| CaError::CaNotFound(name.clone()))?;
        if rec.role == CaRole::Root {
            return Err(CaError::Config(
                "a root cannot be revoked by medsec; remove it from trust stores".into(),
            ));
        }
        let rev = Revocation {
            reason,
            revoked_at: now(),
            invalidity_date: None,
        };
        self.store
            .revoke_ca(
                name,
                &rev,
                &AuditRecord::new(
                    actor,
                    AuditAction::CertRevoked,
                    name.as_str(),
                    json!({"ca": true, "reason": reason, "serial": rec.serial}),
                ),
            )
            .await?;
        self.forget(name);
        Ok(())
    }

    pub async fn list_cas(&self) -> Result<Vec<CaRecord>, CaError> {
        Ok(self.store.list_cas().await?)
    }

    pub async fn get_ca(&self, name: &Name) -> Result<CaRecord, CaError> {
        self.store
            .get_ca(name)
            .await?
            .ok_or_else(|| CaError::CaNotFound(name.clone()))
    }

    /// PEM of `name`'s certificate followed by its parents' up to, excluding, the root.
    pub async fn chain_pem(&self, name: &Name) -> Result<String, CaError> {
        let mut out = String::new();
        let mut cur = Some(name.clone());
        let mut depth = 0;
        while let Some(n) = cur {
            let rec = self.get_ca(&n).await?;
            if rec.role == CaRole::Root {
                break;
            }
            out.push_str(&pem_encode_cert(&rec.cert_der));
            cur = rec.parent.clone();
            depth += 1;
            if depth > 8 {
                return Err(CaError::Config("CA hierarchy loops".into()));
            }
        }
        Ok(out)
    }

    /// Creates or replaces a profile.
    pub async fn put_profile(&self, profile: &Profile, actor: &Actor) -> Result<(), CaError> {
        profile.validate()?;
        let ca = self
            .store
            .get_ca(&profile.issuer)
            .await?
            .ok_or_else(|| CaError::CaNotFound(profile.issuer.clone()))?;
        if ca.role != CaRole::Issuing {
            return Err(CaError::Config(format!(
                "profile {} must name an issuing CA; {} is a root",
                profile.name, profile.issuer
            )));
        }
        let existed = self.store.get_profile(&profile.name).await?;
        let action = if existed.is_some() {
            AuditAction::ProfileUpdated
        } else {
            AuditAction::ProfileCreated
        };
        let details = serde_json::to_value(profile).unwrap_or(serde_json::Value::Null);
        self.store
            .put_profile(
                profile,
                &AuditRecord::new(actor, action, profile.name.as_str(), details),
            )
            .await?;
        Ok(())
    }

    pub async fn get_profile(&self, name: &Name) -> Result<Profile, CaError> {
        self.store
            .get_profile(name)
            .await?
            .ok_or_else(|| CaError::ProfileNotFound(name.clone()))
    }

    pub async fn list_profiles(&self) -> Result<Vec<Profile>, CaError> {
        Ok(self.store.list_profiles().await?)
    }

    /// Issues a device certificate from a CSR under `profile` for the device with `serial`.
    /// The device row is created on first issuance.
    pub async fn issue(
        &self,
        profile: &Name,
        serial: &DeviceSerial,
        csr: &[u8],
        actor: &Actor,
    ) -> Result<IssuedCert, CaError> {
        self.issue_new(profile, serial, csr, None, actor).await
    }

    async fn issue_new(
        &self,
        profile: &Name,
        serial: &DeviceSerial,
        csr: &[u8],
        evidence: Option<&str>,
        actor: &Actor,
    ) -> Result<IssuedCert, CaError> {
        let profile = self.get_profile(profile).await?;
        let csr = parse_and_verify_csr(csr)?;
        let device = DeviceId::new(profile.model.clone(), serial.clone());
        let basis = Basis::New {
            token: None,
            evidence,
        };
        self.issue_verified(&profile, &device, &csr, basis, actor)
            .await
    }

    async fn issue_verified(
        &self,
        profile: &Profile,
        device: &DeviceId,
        csr: &VerifiedCsr,
        basis: Basis<'_>,
        actor: &Actor,
    ) -> Result<IssuedCert, CaError> {
        let (kind, replaces, token, evidence) = match basis {
            Basis::New { token, evidence } => (IssuanceKind::Issue, None, token, evidence),
            Basis::Renew(old) => (IssuanceKind::Renew, Some((old, old.not_after)), None, None),
            Basis::Rekey(old, at) => (IssuanceKind::Rekey, Some((old, at)), None, None),
        };
        if !profile.allows(csr.key_algorithm) {
            return Err(CaError::KeyNotAllowed {
                profile: profile.name.clone(),
                got: csr.key_algorithm,
                allowed: profile.allowed_list(),
            });
        }
        // A retired device is refused inside the store's transaction (see commit_issuance), the
        // only place where the check cannot race with a concurrent retirement.
        let ca = self.load(&profile.issuer).await?;
        if ca.record.revocation.is_some() {
            return Err(CaError::Config(format!(
                "issuing CA {} is revoked",
                ca.record.name
            )));
        }
        let public = rcgen::SubjectPublicKeyInfo::from_der(&csr.spki_der)?;
        let t = now();
        let not_after = (t + Duration::days(profile.validity_days.into())).min(ca.record.not_after);
        if not_after <= t {
            return Err(CaError::Config(format!(
                "issuing CA {} has expired",
                ca.record.name
            )));
        }
        let common_name = profile.common_name(&device.serial);
        let subject = format!(
            "O={}, CN={}, serialNumber={}",
            profile.organization, common_name, device.serial
        );
        let rsa = matches!(
            csr.key_algorithm,
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096
        );
        let mut last_conflict = None;
        for _ in 0..SERIAL_ATTEMPTS {
            let serial = new_serial()?;
            // A sharded CA points each certificate at its own shard's CRL.
            let crl_url = ca.record.crl_url_for(&serial);
            let params = device_params(&DeviceCertSpec {
                device,
                serial: &serial,
                organization: &profile.organization,
                common_name: &common_name,
                not_before: t - BACKDATE,
                not_after,
                server_auth: profile.server_auth,
                rsa,
                crl_url: crl_url.as_deref(),
                ocsp_url: ca.record.ocsp_url.as_deref(),
            })?;
            let cert = params.signed_by(&public, &ca.issuer)?;
            let der = cert.der().to_vec();
            let record = CertRecord {
                serial: serial.clone(),
                issuer: ca.record.name.clone(),
                device: device.clone(),
                profile: profile.name.clone(),
                kind,
                subject: subject.clone(),
                key_algorithm: csr.key_algorithm,
                spki_sha256: spki_hash(&csr.spki_der),
                not_before: t - BACKDATE,
                not_after,
                issued_at: t,
                replaces: replaces.map(|(r, _)| r.serial.clone()),
                revoke_after: None,
                status: CertStatus::Valid,
                der,
            };
            let action = match kind {
                IssuanceKind::Issue => AuditAction::CertIssued,
                IssuanceKind::Renew => AuditAction::CertRenewed,
                IssuanceKind::Rekey => AuditAction::CertRekeyed,
            };
            let mut details = json!({
                "device": device.urn(),
                "profile": profile.name,
                "issuer": ca.record.name,
                "key": csr.key_algorithm,
                "not_after": not_after.unix_timestamp(),
            });
            if let Some((t, _)) = token {
                details["auth"] = json!(format!("enrollment-token:{}", t.id));
            }
            if let Some(e) = evidence {
                details["auth"] = json!(e);
            }
            if let Some((old, at)) = replaces {
                details["replaces"] = json!(old.serial);
                if kind == IssuanceKind::Rekey {
                    details["old_revoked_at"] = json!(at.unix_timestamp());
                }
            }
            let issuance = Issuance {
                supersede: replaces
                    .filter(|_| kind == IssuanceKind::Rekey)
                    .map(|(old, at)| (old.serial.clone(), at)),
                spend_token: token.map(|(_, hash)| hash.to_owned()),
                audit: vec![AuditRecord::new(actor, action, serial.to_hex(), details)],
                cert: record,
            };
            match self.store.commit_issuance(&issuance).await {
                Ok(()) => {
                    let pem = pem_encode_cert(&issuance.cert.der);
                    return Ok(IssuedCert {
                        record: issuance.cert,
                        pem,
                        chain_pem: ca.chain_pem.clone(),
                    });
                }
                // A random 127-bit serial colliding means our RNG is broken or the store
                // already holds it; retry a few times, then give up loudly.
                Err(StoreError::Conflict(m)) if m.contains("serial") => last_conflict = Some(m),
                Err(StoreError::Refused(m)) if m.contains("retired") => {
                    return Err(CaError::DeviceRetired(device.clone()));
                }
                Err(StoreError::Refused(m)) if m.contains("enrollment token") => {
                    return Err(CaError::TokenRejected);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Conflict(last_conflict.unwrap_or_default()).into())
    }

    /// Creates a one-time enrollment token for device `serial` under `profile`, valid for
    /// `ttl`. Returns the secret (shown once, stored only as a hash) and the token record.
    pub async fn create_enrollment_token(
        &self,
        profile: &Name,
        serial: &DeviceSerial,
        ttl: Duration,
        actor: &Actor,
    ) -> Result<(String, EnrollmentToken), CaError> {
        use base64::Engine;
        if ttl <= Duration::ZERO || ttl > Duration::days(30) {
            return Err(CaError::Config(
                "a token lives between 1 second and 30 days".into(),
            ));
        }
        let profile = self.get_profile(profile).await?;
        let device = DeviceId::new(profile.model.clone(), serial.clone());
        if let Ok(d) = self.get_device(&device).await
            && d.status == DeviceStatus::Retired
        {
            return Err(CaError::DeviceRetired(device));
        }
        let mut secret = [0u8; 32];
        let mut id = [0u8; 8];
        {
            use aws_lc_rs::rand::SecureRandom;
            let rng = aws_lc_rs::rand::SystemRandom::new();
            rng.fill(&mut secret)
                .and_then(|_| rng.fill(&mut id))
                .map_err(|_| CaError::Encoding("system RNG failed".into()))?;
        }
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
        let t = now();
        let token = EnrollmentToken {
            id: hex::encode(id),
            device: device.clone(),
            profile: profile.name.clone(),
            created_at: t,
            expires_at: t + ttl,
            used_at: None,
        };
        let audit = AuditRecord::new(
            actor,
            AuditAction::TokenCreated,
            device.urn(),
            json!({"token": token.id, "profile": profile.name, "expires_at": token.expires_at.unix_timestamp()}),
        );
        self.store
            .insert_enrollment_token(&token_hash(&secret), &token, &audit)
            .await?;
        Ok((secret, token))
    }

    /// First enrollment with a one-time token (EST simpleenroll). `label_profile` is the
    /// profile the request was addressed to; the token must have been made for it. The token
    /// is spent in the same transaction that stores the certificate.
    pub async fn enroll_with_token(
        &self,
        label_profile: &Name,
        secret: &str,
        csr: &[u8],
        actor: &Actor,
    ) -> Result<IssuedCert, CaError> {
        let hash = token_hash(secret);
        let token = self
            .store
            .find_enrollment_token(&hash)
            .await?
            .ok_or(CaError::TokenRejected)?;
        if token.used_at.is_some() || token.expires_at <= now() {
            return Err(CaError::TokenRejected);
        }
        if &token.profile != label_profile {
            return Err(CaError::TokenWrongProfile {
                token_profile: token.profile,
                requested: label_profile.clone(),
            });
        }
        let profile = self.get_profile(&token.profile).await?;
        let csr = parse_and_verify_csr(csr)?;
        self.issue_verified(
            &profile,
            &token.device,
            &csr,
            Basis::New {
                token: Some((&token, &hash)),
                evidence: None,
            },
            actor,
        )
        .await
    }

    /// First enrollment without any bootstrap credential, allowed only for a profile created
    /// with `--danger-no-bootstrap`. The device serial comes from the CSR subject's
    /// serialNumber attribute: anyone who can reach the endpoint can claim any serial, which is
    /// exactly the weakening that flag names.
    pub async fn enroll_unauthenticated(
        &self,
        profile: &Name,
        csr: &[u8],
        actor: &Actor,
    ) -> Result<IssuedCert, CaError> {
        let p = self.get_profile(profile).await?;
        if p.requires_bootstrap {
            return Err(CaError::TokenRejected);
        }
        let parsed = parse_and_verify_csr(csr)?;
        let serial = crate::bootstrap::subject_serial(&parsed.subject_der).ok_or_else(|| {
            CaError::Csr(
                "without a bootstrap credential the CSR subject must carry serialNumber".into(),
            )
        })??;
        self.issue_new(
            profile,
            &serial,
            csr,
            Some("unauthenticated: profile requires no bootstrap credential"),
            actor,
        )
        .await
    }

    /// First enrollment of a device that proved its identity some other way than a token
    /// (an IDevID verified by [`crate::bootstrap::verify_idevid`]); `evidence` goes to the
    /// audit log.
    pub async fn enroll_bootstrapped(
        &self,
        profile: &Name,
        serial: &DeviceSerial,
        evidence: &str,
        csr: &[u8],
        actor: &Actor,
    ) -> Result<IssuedCert, CaError> {
        self.issue_new(profile, serial, csr, Some(evidence), actor)
            .await
    }

    /// Checks a certificate a device presented (already chain-verified by TLS): it must be one
    /// we issued, unrevoked, unexpired, for an active device. Returns its record.
    pub async fn authenticate_device_cert(&self, der: &[u8]) -> Result<CertRecord, CaError> {
        let facts = cert_facts(der)?;
        let rec = self
            .store
            .get_cert(&facts.serial)
            .await?
            .ok_or_else(|| CaError::CertNotFound(facts.serial.clone()))?;
        // The serial alone is not proof: the presented bytes must be the certificate we stored.
        if rec.der != der {
            return Err(CaError::CertNotFound(facts.serial));
        }
        if let CertStatus::Revoked(r) = &rec.status {
            return Err(CaError::CertRevoked {
                serial: rec.serial.clone(),
                reason: r.reason.to_string(),
            });
        }
        let t = OffsetDateTime::now_utc();
        if rec.not_after <= t || rec.not_before > t {
            return Err(CaError::CertExpired(rec.serial.clone()));
        }
        if self.get_device(&rec.device).await?.status == DeviceStatus::Retired {
            return Err(CaError::DeviceRetired(rec.device.clone()));
        }
        Ok(rec)
    }

    /// EST simplereenroll: the device authenticates with its current certificate and sends a
    /// CSR with the same subject. The same key renews; a new key rekeys (the old certificate
    /// is then revoked as superseded after the profile's overlap).
    pub async fn reenroll(
        &self,
        presented: &[u8],
        csr: &[u8],
        actor: &Actor,
    ) -> Result<IssuedCert, CaError> {
        let current = self.authenticate_device_cert(presented).await?;
        let req = parse_and_verify_csr(csr)?;
        let cert_subject = cert_subject_der(presented)?;
        if req.subject_der != cert_subject {
            return Err(CaError::Csr(
                "re-enrollment must keep the subject of the current certificate (RFC 7030 4.2.2)"
                    .into(),
            ));
        }
        if spki_hash(&req.spki_der) == current.spki_sha256 {
            self.renew(&current.serial, actor).await
        } else {
            Ok(self.rekey(&current.serial, csr, None, actor).await?.issued)
        }
    }

    /// Signs a TLS server certificate for medsec's own listeners (serverAuth; DNS names and IP
    /// addresses from `names`), valid 30 days. Audited; not a device, so not in the registry.
    /// A server certificate for `names`, valid for `lifetime` (at most the CA's own), for a
    /// key that lives only in the server's memory. It is short-lived and renewed by the server
    /// long before it expires, and it is not stored, so it cannot be revoked: it says so with
    /// RFC 9608 noRevAvail instead of pointing at a CRL or OCSP responder that would not know it.
    pub async fn issue_server_cert(
        &self,
        issuer: &Name,
        names: &[String],
        spki_der: &[u8],
        lifetime: Duration,
        actor: &Actor,
    ) -> Result<Vec<u8>, CaError> {
        if lifetime <= Duration::ZERO || lifetime > Duration::days(MAX_SERVER_CERT_DAYS) {
            return Err(CaError::Config(format!(
                "a server certificate lives 1 second to {MAX_SERVER_CERT_DAYS} days"
            )));
        }
        let ca = self.load(issuer).await?;
        let public = rcgen::SubjectPublicKeyInfo::from_der(spki_der)?;
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new())?;
        let first = names.first().ok_or_else(|| {
            CaError::Config("a server certificate needs at least one name".into())
        })?;
        p.distinguished_name
            .push(rcgen::DnType::CommonName, first.as_str());
        for n in names {
            p.subject_alt_names
                .push(match n.parse::<std::net::IpAddr>() {
                    Ok(ip) => rcgen::SanType::IpAddress(ip),
                    Err(_) => rcgen::SanType::DnsName(
                        rcgen::string::Ia5String::try_from(n.as_str()).map_err(|_| {
                            CaError::Config(format!("server name {n:?} is not ASCII"))
                        })?,
                    ),
                });
        }
        let serial = new_serial()?;
        let t = now();
        p.serial_number = Some(rcgen::SerialNumber::from_slice(
            &serial.to_der_integer_bytes(),
        ));
        p.not_before = t - BACKDATE;
        p.not_after = (t + lifetime).min(ca.record.not_after);
        p.is_ca = rcgen::IsCa::ExplicitNoCa;
        p.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        p.use_authority_key_identifier_extension = true;
        // id-ce-noRevAvail (2.5.29.56), NULL, non-critical (RFC 9608).
        p.custom_extensions = vec![rcgen::CustomExtension::from_oid_content(
            &[2, 5, 29, 56],
            vec![0x05, 0x00],
        )];
        let cert = p.signed_by(&public, &ca.issuer)?;
        // Recorded in the audit log only: the server's key never leaves its process and the
        // certificate is re-issued at every start and renewed while the server runs.
        let audit = AuditRecord::new(
            actor,
            AuditAction::CertIssued,
            serial.to_hex(),
            json!({"service": true, "names": names, "issuer": issuer}),
        );
        self.store.append_audit(&audit).await?;
        Ok(cert.der().to_vec())
    }

    async fn current(&self, serial: &CertSerial) -> Result<CertRecord, CaError> {
        let rec = self
            .store
            .get_cert(serial)
            .await?
            .ok_or_else(|| CaError::CertNotFound(serial.clone()))?;
        if let CertStatus::Revoked(r) = &rec.status {
            return Err(CaError::CertRevoked {
                serial: serial.clone(),
                reason: r.reason.to_string(),
            });
        }
        Ok(rec)
    }

    /// A new certificate for the same key and subject with a fresh validity period. The old
    /// certificate stays valid until it expires: the key has not changed.
    pub async fn renew(&self, serial: &CertSerial, actor: &Actor) -> Result<IssuedCert, CaError> {
        let old = self.current(serial).await?;
        let profile = self.get_profile(&old.profile).await?;
        let spki = spki_of_cert(&old.der)?;
        let csr = VerifiedCsr {
            key_algorithm: old.key_algorithm,
            spki_der: spki,
            requested_subject: old.subject.clone(),
            subject_der: Vec::new(),
        };
        self.issue_verified(&profile, &old.device, &csr, Basis::Renew(&old), actor)
            .await
    }

    /// A certificate for a new key (from a new CSR) that replaces `serial`; the old one is
    /// revoked as superseded after `overlap` (the profile's default when `None`).
    pub async fn rekey(
        &self,
        serial: &CertSerial,
        csr: &[u8],
        overlap: Option<Duration>,
        actor: &Actor,
    ) -> Result<RekeyOutcome, CaError> {
        let old = self.current(serial).await?;
        let profile = self.get_profile(&old.profile).await?;
        let csr = parse_and_verify_csr(csr)?;
        if spki_hash(&csr.spki_der) == old.spki_sha256 {
            return Err(CaError::Csr(
                "a rekey needs a new key; this CSR carries the old one (use renew)".into(),
            ));
        }
        let overlap = overlap.unwrap_or(Duration::days(profile.rekey_overlap_days.into()));
        if overlap.is_negative() {
            return Err(CaError::Config("overlap cannot be negative".into()));
        }
        let at = now() + overlap;
        let issued = self
            .issue_verified(&profile, &old.device, &csr, Basis::Rekey(&old, at), actor)
            .await?;
        // With no overlap the old certificate is revoked now rather than at the next sweep.
        if overlap.is_zero() {
            self.process_due_supersessions(actor).await?;
        }
        Ok(RekeyOutcome {
            issued,
            old: old.serial,
            old_revoked_at: at,
        })
    }

    /// Revokes the certificates whose supersession is due. Run by every state-changing CLI
    /// command and periodically by the server.
    pub async fn process_due_supersessions(
        &self,
        actor: &Actor,
    ) -> Result<Vec<CertSerial>, CaError> {
        let t = now();
        let due = self.store.due_supersessions(t).await?;
        let mut done = Vec::new();
        for serial in due {
            let rev = Revocation {
                reason: RevocationReason::Superseded,
                revoked_at: t,
                invalidity_date: None,
            };
            let audit = AuditRecord::new(
                actor,
                AuditAction::CertRevoked,
                serial.to_hex(),
                json!({"reason": RevocationReason::Superseded, "scheduled": true}),
            );
            match self.store.revoke(&serial, &rev, &audit).await {
                Ok(()) => done.push(serial),
                // Revoked meanwhile for another reason: nothing left to do.
                Err(StoreError::Refused(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(done)
    }

    /// Revokes a certificate. A revoked certificate stays revoked; only an escalation to
    /// keyCompromise is accepted for one already revoked.
    pub async fn revoke(
        &self,
        serial: &CertSerial,
        reason: RevocationReason,
        invalidity_date: Option<OffsetDateTime>,
        actor: &Actor,
    ) -> Result<CertRecord, CaError> {
        let t = now();
        if let Some(d) = invalidity_date
            && d > t
        {
            return Err(CaError::Config(
                "the invalidity date cannot be in the future".into(),
            ));
        }
        let existing = self
            .store
            .get_cert(serial)
            .await?
            .ok_or_else(|| CaError::CertNotFound(serial.clone()))?;
        let rev = Revocation {
            reason,
            revoked_at: t,
            invalidity_date,
        };
        let audit = AuditRecord::new(
            actor,
            AuditAction::CertRevoked,
            serial.to_hex(),
            json!({"reason": reason, "device": existing.device.urn(), "invalidity_date": invalidity_date.map(|d| d.unix_timestamp())}),
        );
        self.store
            .revoke(serial, &rev, &audit)
            .await
            .map_err(|e| match e {
                StoreError::Refused(m) => CaError::CertRevoked {
                    serial: serial.clone(),
                    reason: m,
                },
                e => e.into(),
            })?;
        self.store
            .get_cert(serial)
            .await?
            .ok_or_else(|| CaError::CertNotFound(serial.clone()))
    }

    /// Retires a device: it may never enroll again, and each of its certificates is revoked
    /// with cessationOfOperation.
    pub async fn retire(
        &self,
        device: &DeviceId,
        actor: &Actor,
    ) -> Result<Vec<CertSerial>, CaError> {
        let d = self
            .store
            .get_device(device)
            .await?
            .ok_or_else(|| CaError::DeviceNotFound(device.clone()))?;
        if d.status == crate::model::DeviceStatus::Retired {
            return Err(CaError::DeviceRetired(device.clone()));
        }
        let audit = AuditRecord::new(actor, AuditAction::DeviceRetired, device.urn(), json!({}));
        Ok(self
            .store
            .retire_device(
                device,
                now(),
                RevocationReason::CessationOfOperation,
                &audit,
            )
            .await?)
    }

    pub async fn get_cert(&self, serial: &CertSerial) -> Result<CertRecord, CaError> {
        self.store
            .get_cert(serial)
            .await?
            .ok_or_else(|| CaError::CertNotFound(serial.clone()))
    }

    pub async fn list_certs(&self, filter: &CertFilter) -> Result<Vec<CertRecord>, CaError> {
        Ok(self.store.list_certs(filter).await?)
    }

    /// Unrevoked certificates that expire within `days`.
    pub async fn expiring_within(&self, days: u32) -> Result<Vec<CertRecord>, CaError> {
        let t = now();
        Ok(self
            .store
            .list_certs(&CertFilter {
                expiring_before: Some((t, t + Duration::days(days.into()))),
                revoked: Some(false),
                ..CertFilter::default()
            })
            .await?)
    }

    pub async fn get_device(&self, id: &DeviceId) -> Result<DeviceRecord, CaError> {
        self.store
            .get_device(id)
            .await?
            .ok_or_else(|| CaError::DeviceNotFound(id.clone()))
    }

    pub async fn list_devices(&self) -> Result<Vec<DeviceRecord>, CaError> {
        Ok(self.store.list_devices().await?)
    }

    /// Generates the next full CRL for `ca`: its revoked device certificates, or for a root its
    /// revoked subordinate CAs. For a sharded CA this is the whole-CA CRL (shard 0, every
    /// revocation, no IDP): valid for any of its certificates, for export; the server
    /// publishes the shards instead.
    pub async fn generate_crl(&self, name: &Name, actor: &Actor) -> Result<CrlRecord, CaError> {
        self.generate_crl_shard(name, 0, actor).await
    }

    /// Generates the next CRL of one shard of `name` (0: the whole CA). A shard CRL lists only
    /// the revoked certificates [`crate::crl_shard_of`] assigns to it and carries a critical
    /// IDP naming the shard's URL as written into those certificates.
    pub async fn generate_crl_shard(
        &self,
        name: &Name,
        shard: u32,
        actor: &Actor,
    ) -> Result<CrlRecord, CaError> {
        let ca = self.load(name).await?;
        let shards = ca.record.crl_shards;
        if shard > 0 && (shards <= 1 || shard > shards) {
            return Err(CaError::Config(format!(
                "CA {name} has no CRL shard {shard} (it has {shards})"
            )));
        }
        let idp_url = if shard == 0 {
            None
        } else {
            let url = ca
                .record
                .crl_url
                .as_deref()
                .ok_or_else(|| CaError::Config(format!("sharded CA {name} has no CRL URL")))?;
            Some(crate::crl::crl_shard_url(url, shard))
        };
        let t = now();
        let validity = Duration::seconds(ca.record.crl_validity_secs.max(60));
        let next = t + validity;
        // The entries come from the store, read in the transaction that takes the number.
        let build = |number: u64, entries: CrlEntries| -> Result<(CrlRecord, usize), String> {
            let mut revoked = entries.certs;
            if shard == 0 {
                revoked.extend(entries.cas);
            } else {
                // Only issuing CAs are sharded, and pathlen 0 means they have no subordinate
                // CAs: device certificates are all there is to list (onlyContainsUserCerts).
                revoked.retain(|(s, _)| crate::crl::crl_shard_of(s, shards) == shard);
            }
            let der = encode_crl(
                &ca.issuer,
                ca.ski.as_deref(),
                &CrlContent {
                    number,
                    this_update: t,
                    next_update: next,
                    revoked: &revoked,
                    idp_url: idp_url.as_deref(),
                },
            )
            .map_err(|e| e.to_string())?;
            let crl = CrlRecord {
                ca: name.clone(),
                shard,
                number,
                this_update: t,
                next_update: next,
                der,
            };
            Ok((crl, revoked.len()))
        };
        // `entries` is filled in by the store with the count the CRL lists.
        let details = if shard == 0 {
            json!({"entries": 0})
        } else {
            json!({"entries": 0, "shard": shard, "shards": shards})
        };
        let audit = AuditRecord::new(actor, AuditAction::CrlGenerated, name.as_str(), details);
        Ok(self.store.store_crl(name, shard, &build, &audit).await?)
    }

    /// How many CRL shards `name` has (1: unsharded). From the loaded CA when there is one;
    /// otherwise read, not loaded: serving a stored CRL must not need the CA's key.
    pub async fn crl_shard_count(&self, name: &Name) -> Result<u32, CaError> {
        if let Some(l) = self.cached(name) {
            return Ok(l.record.crl_shards);
        }
        Ok(self.get_ca(name).await?.crl_shards)
    }

    /// The CRLs to reissue after the certificates in `revoked` were revoked: the one CRL of
    /// every unsharded CA holding a key (as before sharding: it is one CRL, and a root's also
    /// covers subordinate-CA revocations not in `revoked`), and for a sharded CA only the
    /// shards holding one of `revoked` it issued. When `revoked` is large (a first load, a
    /// mass revocation) looking each one up costs more than reissuing every shard.
    pub async fn crls_affected_by(
        &self,
        revoked: &[CertSerial],
    ) -> Result<Vec<(Name, u32)>, CaError> {
        const LOOKUP_LIMIT: usize = 256;
        let cas = self.store.list_cas().await?;
        let mut out = Vec::new();
        let mut sharded: HashMap<Name, (u32, std::collections::BTreeSet<u32>)> = HashMap::new();
        for c in cas.iter().filter(|c| c.key_ref.is_some()) {
            if c.is_sharded() {
                sharded.insert(c.name.clone(), (c.crl_shards, Default::default()));
            } else {
                out.push((c.name.clone(), 0));
            }
        }
        if sharded.is_empty() {
            return Ok(out);
        }
        if revoked.len() > LOOKUP_LIMIT {
            for (n, set) in sharded.values_mut() {
                set.extend(1..=*n);
            }
        } else {
            for serial in revoked {
                if let Some(cert) = self.store.get_cert(serial).await?
                    && let Some((n, set)) = sharded.get_mut(&cert.issuer)
                {
                    set.insert(crate::crl::crl_shard_of(serial, *n));
                }
            }
        }
        let mut names: Vec<_> = sharded.into_iter().collect();
        names.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        for (name, (_, set)) in names {
            out.extend(set.into_iter().map(|k| (name.clone(), k)));
        }
        Ok(out)
    }

    pub async fn revoked_serials(&self) -> Result<Vec<CertSerial>, CaError> {
        Ok(self.store.revoked_serials().await?)
    }

    /// The newest whole-CA CRL (shard 0) of `name`.
    pub async fn latest_crl(&self, name: &Name) -> Result<Option<CrlRecord>, CaError> {
        self.latest_crl_shard(name, 0).await
    }

    /// The newest CRL of one shard of `name` (0: the whole CA).
    pub async fn latest_crl_shard(
        &self,
        name: &Name,
        shard: u32,
    ) -> Result<Option<CrlRecord>, CaError> {
        Ok(self.store.latest_crl(name, shard).await?)
    }

    /// Answers a DER OCSP request with a DER OCSP response (errors are OCSP error statuses,
    /// not Rust errors: a relying party must always get a response it can parse).
    pub async fn ocsp_respond(&self, request_der: &[u8]) -> Vec<u8> {
        let cached = match self.responder().await {
            Ok(r) => r,
            Err(_) => {
                return crate::ocsp::error_response(x509_ocsp::OcspResponseStatus::InternalError);
            }
        };
        let (responder, cas) = &*cached;
        let parsed = match responder.parse(request_der) {
            Ok(p) => p,
            Err(resp) => return resp,
        };
        let mut found: HashMap<(Name, CertSerial), CertStatus> = HashMap::new();
        for (ca, serial) in parsed.lookups(responder) {
            match self.lookup_status(ca, serial, cas).await {
                Ok(Some(s)) => {
                    found.insert((ca.clone(), serial.clone()), s);
                }
                Ok(None) => {}
                Err(_) => {
                    return crate::ocsp::error_response(x509_ocsp::OcspResponseStatus::TryLater);
                }
            }
        }
        struct Found(HashMap<(Name, CertSerial), CertStatus>);
        impl OcspStatusSource for Found {
            fn status(&self, issuer: &Name, serial: &CertSerial) -> Option<CertStatus> {
                self.0.get(&(issuer.clone(), serial.clone())).cloned()
            }
        }
        responder.respond(&parsed, &Found(found), now())
    }

    async fn lookup_status(
        &self,
        ca: &Name,
        serial: &CertSerial,
        cas: &[CaRecord],
    ) -> Result<Option<CertStatus>, CaError> {
        if let Some(c) = self.store.get_cert(serial).await?
            && &c.issuer == ca
        {
            return Ok(Some(c.status));
        }
        // A root is asked about its subordinate CAs; their status is read fresh.
        if let Some(sub) = cas
            .iter()
            .find(|sub| sub.parent.as_ref() == Some(ca) && &sub.serial == serial)
        {
            return Ok(self
                .store
                .get_ca(&sub.name)
                .await?
                .map(|r| match r.revocation {
                    Some(r) => CertStatus::Revoked(r),
                    None => CertStatus::Valid,
                }));
        }
        Ok(None)
    }

    /// The responder for every CA holding a key, rebuilt at most every few seconds (it hashes
    /// each CA's name and key, which every request would otherwise redo) and whenever this
    /// process changes the CA set.
    async fn responder(&self) -> Result<Arc<(OcspResponder, Vec<CaRecord>)>, CaError> {
        if let Some((r, at)) = self.responder_cache.lock().ok().and_then(|c| c.clone())
            && at.elapsed() < RESPONDER_TTL
        {
            return Ok(r);
        }
        let cas = self.store.list_cas().await?;
        let mut r = OcspResponder::new(self.ocsp_validity);
        for rec in &cas {
            if rec.key_ref.is_none() {
                continue;
            }
            let l = self.load(&rec.name).await?;
            r.add_ca(rec.name.clone(), &rec.cert_der, l.key.clone())?;
        }
        let r = Arc::new((r, cas));
        if let Ok(mut c) = self.responder_cache.lock() {
            *c = Some((r.clone(), std::time::Instant::now()));
        }
        Ok(r)
    }
}

fn token_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn cert_subject_der(der: &[u8]) -> Result<Vec<u8>, CaError> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, c) = X509Certificate::from_der(der).map_err(|e| CaError::Import(e.to_string()))?;
    Ok(c.subject().as_raw().to_vec())
}

fn spki_of_cert(der: &[u8]) -> Result<Vec<u8>, CaError> {
    Ok(cert_facts(der)?.spki_der)
}

fn key_algorithm_of_cert(der: &[u8]) -> Result<KeyAlgorithm, CaError> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, c) = X509Certificate::from_der(der).map_err(|e| CaError::Import(e.to_string()))?;
    let alg =
        crate::csr::classify_key(c.public_key()).map_err(|e| CaError::Import(e.to_string()))?;
    if !alg.usable_for_ca() {
        return Err(CaError::Import(format!("a {alg} CA key is not supported")));
    }
    Ok(alg)
}

/// Checks that a root certificate is self-issued and its signature verifies with its own key.
fn verify_self_signed(der: &[u8]) -> Result<(), CaError> {
    use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, c) = X509Certificate::from_der(der).map_err(|e| CaError::Import(e.to_string()))?;
    if c.subject().as_raw() != c.issuer().as_raw() {
        return Err(CaError::Import(
            "not self-issued (subject differs from issuer): not a root".into(),
        ));
    }
    let alg =
        crate::csr::classify_key(c.public_key()).map_err(|e| CaError::Import(e.to_string()))?;
    let sig_oid = c.signature_algorithm.algorithm.to_id_string();
    let v: &dyn VerificationAlgorithm = match (alg, sig_oid.as_str()) {
        (KeyAlgorithm::EcdsaP256, "1.2.840.10045.4.3.2") => &signature::ECDSA_P256_SHA256_ASN1,
        (KeyAlgorithm::EcdsaP256, "1.2.840.10045.4.3.3") => &signature::ECDSA_P256_SHA384_ASN1,
        (KeyAlgorithm::EcdsaP384, "1.2.840.10045.4.3.3") => &signature::ECDSA_P384_SHA384_ASN1,
        (KeyAlgorithm::EcdsaP384, "1.2.840.10045.4.3.2") => &signature::ECDSA_P384_SHA256_ASN1,
        (KeyAlgorithm::Ed25519, "1.3.101.112") => &signature::ED25519,
        _ => {
            return Err(CaError::Import(format!(
                "unsupported root signature algorithm {sig_oid}"
            )));
        }
    };
    UnparsedPublicKey::new(v, c.public_key().subject_public_key.data.as_ref())
        .verify(c.tbs_certificate.as_ref(), c.signature_value.data.as_ref())
        .map_err(|_| CaError::Import("the self-signature does not verify".into()))
}
