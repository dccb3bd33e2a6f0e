//! A minimal HTTPS client: one request per connection, HTTP/1.1 over rustls, strict trust.
//!
//! Deliberately small instead of a general HTTP client: the agent makes a handful of requests
//! a year, so connection reuse buys nothing, while every knob it does not have is one that
//! cannot be misconfigured. What it insists on:
//!
//! * the server chains to the configured trust root and nothing else (no system roots),
//! * TLS 1.2 or 1.3 only (rustls has nothing older),
//! * a timeout on connect, handshake and the request as a whole,
//! * a response body limit.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue, USER_AGENT};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::AgentError;
use crate::config::Timeouts;

/// No answer the agent expects comes near this; anything larger is refused unread.
pub(crate) const MAX_BODY: usize = 1024 * 1024;

pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Trust anchors from a PEM file's CERTIFICATE blocks.
pub(crate) fn roots_from_pem(pem: &[u8], origin: &str) -> Result<RootCertStore, AgentError> {
    let ders = crate::state::all_pem(pem, "CERTIFICATE")
        .map_err(|e| AgentError::Config(format!("trust root {origin}: {e}")))?;
    if ders.is_empty() {
        return Err(AgentError::Config(format!(
            "trust root {origin} holds no CERTIFICATE block"
        )));
    }
    let mut roots = RootCertStore::empty();
    for d in ders {
        roots
            .add(CertificateDer::from(d))
            .map_err(|e| AgentError::Config(format!("trust root {origin}: {e}")))?;
    }
    Ok(roots)
}

/// A client configuration trusting `roots` only; with a client certificate when given.
///
/// The identity's key signs through `tls_key::SignerKey` (file and token keys alike), so it
/// goes in through a resolver rather than `with_client_auth_cert`, which wants the private
/// key bytes.
pub(crate) fn client_config(
    roots: Arc<RootCertStore>,
    client_auth: Option<CertifiedKey>,
) -> Result<Arc<ClientConfig>, AgentError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| AgentError::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots);
    let mut cfg = match client_auth {
        Some(identity) => {
            builder.with_client_cert_resolver(Arc::new(SingleCertAndKey::from(identity)))
        }
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// One server address with the TLS settings to reach it.
pub(crate) struct Endpoint {
    addr: String,
    server_name: ServerName<'static>,
    tls: Arc<ClientConfig>,
    timeouts: Timeouts,
}

/// What came back.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// Aborts the connection task however the request ends (error, timeout, success).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Endpoint {
    pub(crate) fn new(
        addr: &str,
        server_name: &str,
        tls: Arc<ClientConfig>,
        timeouts: Timeouts,
    ) -> Result<Self, AgentError> {
        let server_name = ServerName::try_from(server_name.to_owned()).map_err(|_| {
            AgentError::Config(format!(
                "server name {server_name:?} is neither a DNS name nor an IP address"
            ))
        })?;
        Ok(Endpoint {
            addr: addr.to_owned(),
            server_name,
            tls,
            timeouts,
        })
    }

    fn timeout_err(&self, step: &'static str, d: Duration) -> AgentError {
        AgentError::Timeout {
            step,
            addr: self.addr.clone(),
            secs: d.as_secs().max(1),
        }
    }

    /// Sends one request and reads the whole response (up to [`MAX_BODY`]).
    pub(crate) async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(hyper::header::HeaderName, String)],
        body: Vec<u8>,
    ) -> Result<Reply, AgentError> {
        let t = self.timeouts;
        let tcp = tokio::time::timeout(t.connect, TcpStream::connect(&self.addr))
            .await
            .map_err(|_| self.timeout_err("connecting", t.connect))?
            .map_err(|source| AgentError::Connect {
                addr: self.addr.clone(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let connector = TlsConnector::from(self.tls.clone());
        let tls = tokio::time::timeout(
            t.handshake,
            connector.connect(self.server_name.clone(), tcp),
        )
        .await
        .map_err(|_| self.timeout_err("TLS handshake", t.handshake))?
        .map_err(|e| {
            self.tls_or(&e, |m| AgentError::Tls {
                addr: self.addr.clone(),
                reason: m,
            })
        })?;

        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(
                USER_AGENT,
                concat!("medsec-agent/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| AgentError::Config(format!("request for {path}: {e}")))?;
        let h = req.headers_mut();
        h.insert(
            HOST,
            HeaderValue::from_str(&self.addr)
                .map_err(|_| AgentError::Config(format!("address {:?}", self.addr)))?,
        );
        for (name, value) in headers {
            h.insert(
                name.clone(),
                HeaderValue::from_str(value)
                    .map_err(|_| AgentError::Config(format!("header {name} is not valid")))?,
            );
        }

        let exchange = async {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .map_err(|e| self.http_err(&e))?;
            let _conn = AbortOnDrop(tokio::spawn(async move {
                // Errors also reach `send_request`, which reports them.
                let _ = conn.await;
            }));
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| self.http_err(&e))?;
            let status = resp.status().as_u16();
            let content_type = resp
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let body = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        AgentError::Http {
                            addr: self.addr.clone(),
                            reason: format!("response body larger than {MAX_BODY} bytes"),
                        }
                    } else {
                        self.http_err(e.as_ref())
                    }
                })?
                .to_bytes()
                .to_vec();
            Ok(Reply {
                status,
                content_type,
                body,
            })
        };
        tokio::time::timeout(t.request, exchange)
            .await
            .map_err(|_| self.timeout_err("request", t.request))?
    }

    fn http_err(&self, e: &(dyn std::error::Error + 'static)) -> AgentError {
        self.tls_or(e, |m| AgentError::Http {
            addr: self.addr.clone(),
            reason: m,
        })
    }

    /// A TLS error if a rustls error is anywhere in the chain (with TLS 1.3 a refused client
    /// certificate arrives as an alert after the handshake, so it surfaces here), else `other`.
    fn tls_or(
        &self,
        e: &(dyn std::error::Error + 'static),
        other: impl FnOnce(String) -> AgentError,
    ) -> AgentError {
        match find_rustls(e) {
            Some(r) => AgentError::Tls {
                addr: self.addr.clone(),
                reason: describe_tls(r),
            },
            None => other(chain_text(e)),
        }
    }
}

fn find_rustls<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        // io::Error hides its payload from `source()`: look inside explicitly.
        if let Some(r) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(r);
        }
        cur = e.source();
    }
    None
}

fn describe_tls(e: &rustls::Error) -> String {
    use rustls::AlertDescription as A;
    match e {
        rustls::Error::AlertReceived(A::CertificateRevoked) => {
            "the server refused our certificate: it is revoked".into()
        }
        rustls::Error::AlertReceived(A::CertificateExpired) => {
            "the server refused our certificate: it has expired".into()
        }
        rustls::Error::AlertReceived(
            A::BadCertificate | A::UnknownCA | A::CertificateRequired | A::AccessDenied,
        ) => format!("the server refused our certificate ({e})"),
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer) => {
            "the server's certificate is not trusted: it does not chain to the configured trust root"
                .into()
        }
        rustls::Error::InvalidCertificate(c) => {
            format!("the server's certificate is not trusted: {c}")
        }
        other => other.to_string(),
    }
}

/// `e: cause: cause` on one line.
pub(crate) fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}
