//! rustls configurations for the two TLS listeners, and the server's own certificate.

use std::sync::Arc;

use medsec_ca::CaStore;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};

use crate::ServerError;
use crate::state::{AppState, RevocationWatch};

/// The server's TLS certificate chain and key.
pub struct ServerIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivatePkcs8KeyDer<'static>,
    /// Set for a self-issued identity: who issues its successor, for which names.
    reissue: Option<(medsec_core::Name, Vec<String>)>,
}

/// The certificate both TLS listeners present, swapped in place when the server renews its
/// self-issued one, so connections after the swap get the new chain without a restart.
#[derive(Debug)]
pub struct ServerCert(std::sync::RwLock<Arc<CertifiedKey>>);

impl ServerCert {
    pub fn new(identity: &ServerIdentity) -> Result<Arc<Self>, ServerError> {
        Ok(Arc::new(ServerCert(std::sync::RwLock::new(
            identity.certified_key()?,
        ))))
    }

    fn set(&self, identity: &ServerIdentity) -> Result<(), ServerError> {
        let key = identity.certified_key()?;
        match self.0.write() {
            Ok(mut g) => *g = key,
            Err(p) => *p.into_inner() = key,
        }
        Ok(())
    }

    fn current(&self) -> Arc<CertifiedKey> {
        match self.0.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

impl ResolvesServerCert for ServerCert {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// Renews a self-issued server certificate once two thirds of its lifetime have passed, as
/// the agent does for devices; an operator-supplied certificate is the operator's to renew.
/// Checks every `every`; a failed renewal is logged and retried at the next check, while the
/// current certificate still has a third of its life.
pub(crate) async fn renew_server_cert<S: CaStore>(
    state: Arc<AppState<S>>,
    cert: Arc<ServerCert>,
    mut identity: ServerIdentity,
    every: std::time::Duration,
) {
    let Some((issuer, names)) = identity.reissue.clone() else {
        return;
    };
    loop {
        tokio::time::sleep(every).await;
        let due = match renewal_due(&identity) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!("server certificate: {e}");
                true
            }
        };
        if !due {
            continue;
        }
        match ServerIdentity::issue(&state, &issuer, &names).await {
            Ok(next) => match cert.set(&next) {
                Ok(()) => {
                    tracing::info!("server certificate renewed for {}", names.join(", "));
                    identity = next;
                }
                Err(e) => tracing::warn!("server certificate renewal: {e}"),
            },
            Err(e) => tracing::warn!("server certificate renewal failed: {e}"),
        }
    }
}

/// Whether two thirds of the identity's leaf lifetime have passed.
fn renewal_due(identity: &ServerIdentity) -> Result<bool, ServerError> {
    use x509_parser::prelude::FromDer;
    let leaf = identity
        .chain
        .first()
        .ok_or_else(|| ServerError::Tls("empty certificate chain".into()))?;
    let (_, c) = x509_parser::certificate::X509Certificate::from_der(leaf)
        .map_err(|e| ServerError::Tls(format!("server certificate: {e}")))?;
    let (nb, na) = (
        c.validity().not_before.timestamp(),
        c.validity().not_after.timestamp(),
    );
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    Ok(now >= nb + (na - nb) * 2 / 3)
}

impl ServerIdentity {
    /// From PEM files supplied by the operator.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, ServerError> {
        let chain: Vec<CertificateDer<'static>> = pem_blocks(cert_pem, "CERTIFICATE")?
            .into_iter()
            .map(CertificateDer::from)
            .collect();
        let key = pem_blocks(key_pem, "PRIVATE KEY")?
            .into_iter()
            .next()
            .ok_or_else(|| ServerError::Tls("no PRIVATE KEY block in the key file".into()))?;
        if chain.is_empty() {
            return Err(ServerError::Tls(
                "no CERTIFICATE block in the certificate file".into(),
            ));
        }
        Ok(ServerIdentity {
            chain,
            key: PrivatePkcs8KeyDer::from(key),
            reissue: None,
        })
    }

    /// A fresh key and a certificate for `names` from the issuing CA `issuer`, for a server
    /// run without operator-supplied TLS files. The key lives only in this process.
    pub async fn issue<S: CaStore>(
        state: &AppState<S>,
        issuer: &medsec_core::Name,
        names: &[String],
    ) -> Result<Self, ServerError> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| ServerError::Tls(e.to_string()))?;
        let der = state
            .ca
            .issue_server_cert(
                issuer,
                names,
                &rcgen::PublicKeyData::subject_public_key_info(&key),
                time::Duration::try_from(state.server_cert_lifetime)
                    .map_err(|e| ServerError::Tls(format!("server certificate lifetime: {e}")))?,
                &state.actor,
            )
            .await?;
        let mut chain = vec![CertificateDer::from(der)];
        for c in pem_blocks(state.ca.chain_pem(issuer).await?.as_bytes(), "CERTIFICATE")? {
            chain.push(CertificateDer::from(c));
        }
        Ok(ServerIdentity {
            chain,
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
            reissue: Some((issuer.clone(), names.to_vec())),
        })
    }

    fn certified_key(&self) -> Result<Arc<CertifiedKey>, ServerError> {
        let key = provider()
            .key_provider
            .load_private_key(PrivateKeyDer::Pkcs8(self.key.clone_key()))
            .map_err(|e| ServerError::Tls(format!("server key: {e}")))?;
        let ck = CertifiedKey::new(self.chain.clone(), key);
        // The key must be the certificate's: rustls would otherwise fail every handshake.
        ck.keys_match()
            .map_err(|e| ServerError::Tls(format!("server key and certificate: {e}")))?;
        Ok(Arc::new(ck))
    }
}

fn pem_blocks(data: &[u8], tag: &str) -> Result<Vec<Vec<u8>>, ServerError> {
    let blocks = pem_parse_many(data)?;
    Ok(blocks
        .into_iter()
        .filter(|(t, _)| t == tag)
        .map(|(_, d)| d)
        .collect())
}

fn pem_parse_many(data: &[u8]) -> Result<Vec<(String, Vec<u8>)>, ServerError> {
    use x509_parser::pem::Pem;
    let mut out = Vec::new();
    for p in Pem::iter_from_buffer(data) {
        let p = p.map_err(|e| ServerError::Tls(format!("PEM: {e}")))?;
        out.push((p.label, p.contents));
    }
    Ok(out)
}

/// Every unrevoked CA certificate we operate, as trust anchors for client certificates.
async fn our_roots<S: CaStore>(state: &AppState<S>) -> Result<RootCertStore, ServerError> {
    let mut roots = RootCertStore::empty();
    for ca in state.ca.list_cas().await? {
        if ca.revocation.is_some() {
            continue;
        }
        roots
            .add(CertificateDer::from(ca.cert_der.clone()))
            .map_err(|e| ServerError::Tls(format!("CA {}: {e}", ca.name)))?;
    }
    Ok(roots)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn server_config(
    verifier: Arc<dyn ClientCertVerifier>,
    cert: &Arc<ServerCert>,
) -> Result<rustls::ServerConfig, ServerError> {
    // rustls speaks only TLS 1.2 and 1.3: older versions and plaintext never get through.
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ServerError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(cert.clone());
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// The EST/API listener: a client certificate is optional, and when present it must chain to
/// one of our CAs (checked again by the CA on use).
pub async fn est_tls_config<S: CaStore>(
    state: &AppState<S>,
    cert: &Arc<ServerCert>,
) -> Result<rustls::ServerConfig, ServerError> {
    let mut roots = our_roots(state).await?;
    for der in &state.idevid_cas {
        roots
            .add(CertificateDer::from(der.clone()))
            .map_err(|e| ServerError::Tls(format!("manufacturing CA: {e}")))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| ServerError::Tls(e.to_string()))?;
    server_config(verifier, cert)
}

/// The device listener: a client certificate chaining to our CAs is mandatory, and a revoked
/// one fails the handshake.
pub async fn device_tls_config<S: CaStore>(
    state: &AppState<S>,
    cert: &Arc<ServerCert>,
) -> Result<rustls::ServerConfig, ServerError> {
    let inner =
        WebPkiClientVerifier::builder_with_provider(Arc::new(our_roots(state).await?), provider())
            .build()
            .map_err(|e| ServerError::Tls(e.to_string()))?;
    let verifier = Arc::new(RevocationChecking {
        inner,
        watch: state.watch.clone(),
        observed: state.revoked_use.clone(),
    });
    server_config(verifier, cert)
}

/// Chain validation by webpki, then the in-process revocation set.
#[derive(Debug)]
struct RevocationChecking {
    inner: Arc<dyn ClientCertVerifier>,
    watch: Arc<RevocationWatch>,
    /// Where refused revoked serials are reported (post-market surveillance).
    observed: tokio::sync::mpsc::Sender<medsec_core::CertSerial>,
}

impl std::fmt::Debug for RevocationWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationWatch").finish_non_exhaustive()
    }
}

impl ClientCertVerifier for RevocationChecking {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let ok = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        use x509_parser::prelude::FromDer;
        let (_, cert) =
            x509_parser::certificate::X509Certificate::from_der(end_entity).map_err(|_| {
                rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
            })?;
        let serial = medsec_core::CertSerial::from_bytes(cert.raw_serial()).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        if self.watch.is_revoked(serial.as_bytes()) {
            let _ = self.observed.try_send(serial);
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Revoked,
            ));
        }
        Ok(ok)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
