//! The agent's operations: enroll, renew/rekey when due, whoami, status.

use std::path::PathBuf;
use std::sync::Arc;

use hyper::Method;
use hyper::header::ACCEPT;
use medsec_core::{CertSerial, DeviceModel, DeviceSerial, KeyAlgorithm, Name};
use medsec_keys::{KeyError, KeySource, Pkcs11KeySource};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::config::AgentConfig;
use crate::keys::{
    DeviceKey, KeyHome, StoredKey, TokenKeyRecord, check_token_key_label, token_key_labels,
};
use crate::state::{CertInfo, Enrolled, StateDir};
use crate::transport::{self, Endpoint};
use crate::{AgentError, csr, est, tls_key};

/// When a certificate should be renewed: once two thirds of its validity have passed. That
/// leaves a third of the lifetime (four months of a one-year certificate) to get through
/// outages and offline periods before the device loses its identity.
pub fn renewal_time(not_before: OffsetDateTime, not_after: OffsetDateTime) -> OffsetDateTime {
    if not_after <= not_before {
        return not_before;
    }
    let life = not_after - not_before;
    // `life - life / 3` rather than `life * 2 / 3`: no overflow, and it rounds towards later.
    not_before + (life - life / 3)
}

/// Whether a certificate valid `not_before..not_after` is due for renewal at `now`.
pub fn renewal_due(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    now: OffsetDateTime,
) -> bool {
    now >= renewal_time(not_before, not_after)
}

/// What [`Agent::renew_if_due`] did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum RenewOutcome {
    /// Nothing to do yet.
    NotDue {
        current: CertInfo,
        due_at: OffsetDateTime,
    },
    /// A new certificate for the same key.
    Renewed { old: CertSerial, new: CertInfo },
    /// A new certificate for a new key; the old certificate stays valid through the profile's
    /// overlap and is then revoked as superseded by the server.
    Rekeyed { old: CertSerial, new: CertInfo },
}

/// The device gateway's view of us (`GET /device/v1/whoami`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Whoami {
    /// `urn:medsec:device:<model>:<serial>`.
    pub device: String,
    pub model: DeviceModel,
    pub serial: DeviceSerial,
    /// Serial of the certificate we authenticated with.
    pub certificate: CertSerial,
    pub profile: Name,
    /// Unix time.
    pub not_after: i64,
}

/// The local state, without asking the server.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Status {
    pub state_dir: PathBuf,
    pub certificate: CertInfo,
    pub key_algorithm: KeyAlgorithm,
    /// Where the key is: `device.key`, or `pkcs11:object=<label> in token "<token>"`.
    pub key_location: String,
    #[serde(with = "time::serde::rfc3339")]
    pub renew_after: OffsetDateTime,
    pub renewal_due: bool,
    pub expired: bool,
}

/// A device agent for one state directory and one server.
#[derive(Debug)]
pub struct Agent {
    cfg: AgentConfig,
    roots: Arc<RootCertStore>,
    state: StateDir,
}

impl Agent {
    /// Reads the trust root; nothing else is touched until an operation runs.
    pub fn new(cfg: AgentConfig) -> Result<Self, AgentError> {
        let pem = std::fs::read(&cfg.trust_root_pem)
            .map_err(|e| AgentError::io("reading trust root", &cfg.trust_root_pem, e))?;
        let roots = transport::roots_from_pem(&pem, &cfg.trust_root_pem.display().to_string())?;
        // Refuse a key type we cannot generate now rather than at the first rekey.
        if !crate::keys::SUPPORTED.contains(&cfg.key_algorithm) {
            return Err(AgentError::Config(format!(
                "the agent does not generate {} keys; use ecdsa-p256, ecdsa-p384 or ed25519",
                cfg.key_algorithm
            )));
        }
        // The token itself is opened only by the operations that need it (status never does).
        if let Some(p) = &cfg.pkcs11 {
            if p.token.module.as_os_str().is_empty() {
                return Err(AgentError::Config("PKCS#11 module path is empty".into()));
            }
            if p.token.token_label.is_empty() {
                return Err(AgentError::Config("PKCS#11 token label is empty".into()));
            }
            check_token_key_label(&p.key_label)?;
        }
        Ok(Agent {
            state: StateDir::new(cfg.state_dir.clone()),
            roots: Arc::new(roots),
            cfg,
        })
    }

    pub fn config(&self) -> &AgentConfig {
        &self.cfg
    }

    fn label(&self) -> Option<&Name> {
        self.cfg.profile_label.as_ref()
    }

    /// The EST endpoint, server-authenticated only, or with `client` (state and its opened
    /// key) as client certificate.
    fn est_endpoint(
        &self,
        client: Option<(&Enrolled, &DeviceKey)>,
    ) -> Result<Endpoint, AgentError> {
        let auth = client.map(|(e, k)| client_identity(e, k)).transpose()?;
        let tls = transport::client_config(self.roots.clone(), auth)?;
        Endpoint::new(
            &self.cfg.server_https,
            &self.cfg.server_name,
            tls,
            self.cfg.timeouts,
        )
    }

    /// The configured token, logged in; `None` without PKCS#11 configuration.
    fn open_token(&self) -> Result<Option<Pkcs11KeySource>, AgentError> {
        let Some(p) = &self.cfg.pkcs11 else {
            return Ok(None);
        };
        Pkcs11KeySource::open(p.token.clone())
            .map(Some)
            .map_err(|e| AgentError::Key(format!("token {:?}: {e}", p.token.token_label)))
    }

    /// A new key where the configuration says new keys go. `first`: the device's first key,
    /// which gets the configured label itself if it is free.
    fn new_key(
        &self,
        token: Option<&Pkcs11KeySource>,
        first: bool,
        now: OffsetDateTime,
    ) -> Result<DeviceKey, AgentError> {
        match (&self.cfg.pkcs11, token) {
            (Some(p), Some(t)) => DeviceKey::generate_in_token(
                t,
                &token_key_labels(&p.key_label, first, now.unix_timestamp()),
                self.cfg.key_algorithm,
            ),
            (None, _) => DeviceKey::generate(self.cfg.key_algorithm),
            (Some(_), None) => Err(AgentError::Config(
                "PKCS#11 is configured but the token was not opened".into(),
            )),
        }
    }

    /// The current key, ready to sign: a file key as loaded, a token key found in `token`.
    fn open_key(
        &self,
        stored: &StoredKey,
        token: Option<&Pkcs11KeySource>,
    ) -> Result<DeviceKey, AgentError> {
        match (stored, token) {
            (StoredKey::File(k), _) => Ok(k.clone()),
            (StoredKey::Token(r), Some(t)) => DeviceKey::open_in_token(t, r),
            (StoredKey::Token(r), None) => Err(AgentError::Config(format!(
                "the device key is {}: configure the PKCS#11 module, token and PIN to use it",
                r.location()
            ))),
        }
    }

    /// The token, if the current key is in it or a new key is to be made there.
    fn token_for(
        &self,
        cur: &StoredKey,
        new_key: bool,
    ) -> Result<Option<Pkcs11KeySource>, AgentError> {
        if matches!(cur, StoredKey::Token(_)) || (new_key && self.cfg.pkcs11.is_some()) {
            self.open_token()
        } else {
            Ok(None)
        }
    }

    /// First enrollment: a new key, a CSR, the one-time `token` for device `serial`.
    pub async fn enroll(&self, serial: &DeviceSerial, token: &str) -> Result<CertInfo, AgentError> {
        self.state.create()?;
        self.state.recover()?;
        if self.state.has_cert() {
            return Err(AgentError::AlreadyEnrolled(self.state.dir().to_path_buf()));
        }
        // Before anything reaches the network, so a wrong PIN or token costs no round trip.
        let pkcs11 = self.open_token()?;
        let key = self.new_key(pkcs11.as_ref(), true, OffsetDateTime::now_utc())?;
        let result = async {
            let ep = self.est_endpoint(None)?;
            let chain = est::cacerts(&ep, self.label()).await?;
            // The CA sets the subject from its profile; CN=serial only labels the request.
            let csr = csr::build(&key, &csr::cn_subject(serial.as_str()))?;
            self.state.stage_key(&key)?;
            let certs = est::simpleenroll(&ep, self.label(), &csr, serial, token).await?;
            let (leaf, info) = self.accept_issued(&certs, &key, &chain)?;
            self.state.write_chain(&chain)?;
            self.state.commit_cert(&leaf)?;
            Ok(info)
        }
        .await;
        if result.is_err() {
            // Drop the staged key now rather than at the next start, and a token key that
            // never got its certificate with it. Best effort: the original error is what the
            // caller needs to see.
            let _ = self.state.recover();
            if let KeyHome::Token(record) = key.home() {
                self.discard_token_key(pkcs11.as_ref(), record);
            }
        }
        result
    }

    /// Best effort: destroys token key `record` (one a rekey replaced, or a new one that never
    /// got its certificate) so it stops taking up a slot in the token. A key the state
    /// directory still names, current or staged, is never touched; a failure is reported on
    /// stderr and otherwise ignored, since the device's identity does not depend on it.
    fn discard_token_key(&self, token: Option<&Pkcs11KeySource>, record: &TokenKeyRecord) {
        let Some(token) = token else {
            return;
        };
        if record.token != token.token_label() || self.state.references_token_key(record) {
            return;
        }
        match token.destroy(&record.key_ref()) {
            Ok(()) | Err(KeyError::NotFound { .. }) => {}
            Err(e) => eprintln!(
                "warning: could not remove unused device key {}: {e}",
                record.location()
            ),
        }
    }

    /// Re-enrolls when two thirds of the validity have passed at `now`, or always with
    /// `force`. `rekey` asks for a certificate on a freshly generated key instead of the
    /// current one.
    pub async fn renew_if_due(
        &self,
        now: OffsetDateTime,
        force: bool,
        rekey: bool,
    ) -> Result<RenewOutcome, AgentError> {
        let cur = self.state.load()?;
        let due_at = renewal_time(cur.cert.not_before, cur.cert.not_after);
        if !force && now < due_at {
            return Ok(RenewOutcome::NotDue {
                current: cur.cert,
                due_at,
            });
        }
        if now >= cur.cert.not_after {
            return Err(AgentError::Expired(rfc3339(cur.cert.not_after)));
        }
        let pkcs11 = self.token_for(&cur.key, rekey)?;
        // The current key authenticates the request (TLS client certificate) either way.
        let cur_key = self.open_key(&cur.key, pkcs11.as_ref())?;
        let new_key = if rekey {
            Some(self.new_key(pkcs11.as_ref(), false, now)?)
        } else {
            None
        };
        let key = new_key.as_ref().unwrap_or(&cur_key);
        let result = async {
            // RFC 7030 4.2.2: the subject must be the current certificate's, byte for byte.
            let csr = csr::build(key, &cur.cert.subject_der)?;
            let ep = self.est_endpoint(Some((&cur, &cur_key)))?;
            // Refresh the chain too: the CA may have rolled its issuing certificate.
            let chain = est::cacerts(&ep, self.label()).await?;
            if let Some(k) = &new_key {
                self.state.stage_key(k)?;
            }
            let certs = est::simplereenroll(&ep, self.label(), &csr).await?;
            let (leaf, info) = self.accept_issued(&certs, key, &chain)?;
            self.state.write_chain(&chain)?;
            self.state.commit_cert(&leaf)?;
            Ok(info)
        }
        .await;
        match result {
            Ok(new) if rekey => {
                // The new key and certificate are current now; the old token key is unused.
                if let StoredKey::Token(old) = &cur.key {
                    self.discard_token_key(pkcs11.as_ref(), old);
                }
                Ok(RenewOutcome::Rekeyed {
                    old: cur.cert.serial,
                    new,
                })
            }
            Ok(new) => Ok(RenewOutcome::Renewed {
                old: cur.cert.serial,
                new,
            }),
            Err(e) => {
                let _ = self.state.recover();
                if let Some(KeyHome::Token(record)) = new_key.as_ref().map(DeviceKey::home) {
                    self.discard_token_key(pkcs11.as_ref(), record);
                }
                Err(e)
            }
        }
    }

    /// Asks the device gateway who we are, authenticating with the current certificate.
    pub async fn whoami(&self) -> Result<Whoami, AgentError> {
        const OP: &str = "whoami";
        let cur = self.state.load()?;
        let pkcs11 = self.token_for(&cur.key, false)?;
        let key = self.open_key(&cur.key, pkcs11.as_ref())?;
        let tls = transport::client_config(self.roots.clone(), Some(client_identity(&cur, &key)?))?;
        let ep = Endpoint::new(
            &self.cfg.server_device,
            &self.cfg.server_name,
            tls,
            self.cfg.timeouts,
        )?;
        let r = ep
            .request(
                Method::GET,
                "/device/v1/whoami",
                &[(ACCEPT, "application/json".into())],
                Vec::new(),
            )
            .await?;
        if r.status != 200 {
            let detail = serde_json::from_slice::<serde_json::Value>(&r.body)
                .ok()
                .and_then(|v| v.get("detail")?.as_str().map(str::to_owned))
                .unwrap_or_else(|| "no detail given".into());
            return Err(AgentError::Refused {
                operation: OP,
                status: r.status,
                detail: detail
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(500)
                    .collect(),
            });
        }
        serde_json::from_slice(&r.body).map_err(|e| AgentError::BadResponse {
            operation: OP,
            reason: format!("not the expected JSON: {e}"),
        })
    }

    /// The local state: certificate, key type, when renewal falls due.
    pub fn status(&self, now: OffsetDateTime) -> Result<Status, AgentError> {
        let cur = self.state.load()?;
        let renew_after = renewal_time(cur.cert.not_before, cur.cert.not_after);
        Ok(Status {
            state_dir: self.state.dir().to_path_buf(),
            key_algorithm: cur.key.algorithm(),
            key_location: cur.key.location(),
            renewal_due: now >= renew_after,
            expired: now >= cur.cert.not_after,
            renew_after,
            certificate: cur.cert,
        })
    }

    /// The path of the current device certificate (PEM).
    pub fn certificate_path(&self) -> PathBuf {
        self.state.cert_path()
    }

    /// Picks the certificate for `key` out of an EST reply and checks it before it replaces
    /// anything: it must certify the key we sent and chain, for client authentication, to
    /// the configured trust root or to a root the server published in `cacerts` (received
    /// over the TLS connection authenticated by that trust root).
    fn accept_issued(
        &self,
        certs: &[Vec<u8>],
        key: &DeviceKey,
        chain: &[Vec<u8>],
    ) -> Result<(Vec<u8>, CertInfo), AgentError> {
        let (leaf, info) = certs
            .iter()
            .find_map(|c| {
                let info = CertInfo::parse(c).ok()?;
                info.certifies(&key.spki_der()).then(|| (c.clone(), info))
            })
            .ok_or_else(|| {
                AgentError::BadCertificate(
                    "no certificate in the reply certifies the public key we sent".into(),
                )
            })?;
        let mut anchors = (*self.roots).clone();
        for c in chain.iter().filter(|c| is_self_signed(c)) {
            // A malformed extra anchor is only a certificate we will not trust.
            let _ = anchors.add(CertificateDer::from(c.clone()));
        }
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(anchors), transport::provider())
                .build()
                .map_err(|e| AgentError::Config(format!("certificate verifier: {e}")))?;
        let intermediates: Vec<CertificateDer<'_>> = chain
            .iter()
            .chain(certs.iter())
            .filter(|c| **c != leaf)
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
        verifier
            .verify_client_cert(
                &CertificateDer::from(leaf.as_slice()),
                &intermediates,
                UnixTime::now(),
            )
            .map_err(|e| {
                AgentError::BadCertificate(format!(
                    "certificate {} does not verify as a device certificate: {e}",
                    info.serial
                ))
            })?;
        Ok((leaf, info))
    }
}

/// The TLS client identity: leaf plus the intermediates we know (never a self-signed root,
/// which the server has and would ignore), signed for by `key`, which `StateDir::load` has
/// matched with the leaf.
fn client_identity(
    e: &Enrolled,
    key: &DeviceKey,
) -> Result<rustls::sign::CertifiedKey, AgentError> {
    let mut chain = vec![CertificateDer::from(e.cert_der.clone())];
    chain.extend(
        e.chain
            .iter()
            .filter(|c| !is_self_signed(c))
            .map(|c| CertificateDer::from(c.clone())),
    );
    tls_key::certified_key(chain, key.signer())
}

fn is_self_signed(der: &[u8]) -> bool {
    X509Certificate::from_der(der)
        .map(|(_, c)| c.subject().as_raw() == c.issuer().as_raw())
        .unwrap_or(false)
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;
    use time::macros::datetime;

    #[test]
    fn renewal_falls_due_at_two_thirds_of_the_validity() {
        let nb = datetime!(2025-01-01 0:00 UTC);
        let na = nb + Duration::days(300);
        assert_eq!(renewal_time(nb, na), nb + Duration::days(200));
        assert!(!renewal_due(nb, na, nb));
        assert!(!renewal_due(nb, na, nb + Duration::days(199)));
        assert!(!renewal_due(
            nb,
            na,
            nb + Duration::days(200) - Duration::seconds(1)
        ));
        assert!(renewal_due(nb, na, nb + Duration::days(200)));
        assert!(renewal_due(nb, na, na));
        assert!(renewal_due(nb, na, na + Duration::days(1)));
    }

    #[test]
    fn renewal_time_for_a_one_year_certificate() {
        let nb = datetime!(2025-01-01 0:00 UTC);
        let na = nb + Duration::days(365);
        // 243⅓ days: due on day 243 plus 8 hours.
        assert_eq!(
            renewal_time(nb, na),
            nb + Duration::days(243) + Duration::hours(8)
        );
    }

    #[test]
    fn odd_lifetimes_round_towards_later_and_nonsense_is_due() {
        let nb = datetime!(2025-01-01 0:00 UTC);
        // 10 s: two thirds is 6.67 s, so due at 7 s, not before.
        let na = nb + Duration::seconds(10);
        assert!(!renewal_due(nb, na, nb + Duration::milliseconds(6_666)));
        assert!(renewal_due(nb, na, nb + Duration::seconds(7)));
        // notAfter before notBefore: nothing to wait for.
        assert!(renewal_due(na, nb, na));
    }

    #[test]
    fn whoami_json_is_parsed_into_newtypes() {
        let w: Whoami = serde_json::from_str(
            r#"{"device":"urn:medsec:device:demo-device:SN1","model":"demo-device",
                "serial":"SN1","certificate":"0a1b","profile":"default","not_after":1700000000,
                "extra":"ignored"}"#,
        )
        .unwrap();
        assert_eq!(w.serial.as_str(), "SN1");
        assert_eq!(w.certificate.to_hex(), "0a1b");
        // A serial the domain rules reject is a bad response, not a silently accepted string.
        assert!(
            serde_json::from_str::<Whoami>(
                r#"{"device":"x","model":"m","serial":"bad serial","certificate":"01",
                    "profile":"p","not_after":0}"#
            )
            .is_err()
        );
    }
}
