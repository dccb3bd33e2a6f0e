//! The device's calls on the mTLS device gateway: fetch this device's director instruction,
//! report update progress, and (for `crate::events`) post security event batches. All
//! authenticate with the device certificate, like `whoami`.

use std::sync::Arc;

use hyper::Method;
use hyper::header::{ACCEPT, CONTENT_TYPE};
use medsec_updates::SignedInstruction;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use serde::Serialize;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::config::AgentConfig;
use crate::keys::{DeviceKey, StoredKey};
use crate::state::StateDir;
use crate::transport::{self, Endpoint, Reply};
use crate::{AgentError, tls_key};

/// What the device reports with `POST /device/v1/update-status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportedStatus {
    Downloading,
    Installed,
    Confirmed,
    Failed,
    Reverted,
}

#[derive(Serialize)]
struct StatusBody<'a> {
    rollout: &'a str,
    target: &'a str,
    status: ReportedStatus,
    detail: &'a str,
}

/// The enrolled device's mTLS endpoint on the gateway.
pub(crate) struct Gateway {
    ep: Endpoint,
}

impl Gateway {
    /// Opens the enrolled state (and the token, for a token key) and builds the endpoint.
    pub(crate) fn open(cfg: &AgentConfig, roots: Arc<RootCertStore>) -> Result<Self, AgentError> {
        let state = StateDir::new(cfg.state_dir.clone());
        let cur = state.load()?;
        let key = match &cur.key {
            StoredKey::File(k) => k.clone(),
            StoredKey::Token(r) => {
                let p = cfg.pkcs11.as_ref().ok_or_else(|| {
                    AgentError::Config(format!(
                        "the device key is {}: configure the PKCS#11 module, token and PIN to use it",
                        r.location()
                    ))
                })?;
                let token = medsec_keys::Pkcs11KeySource::open(p.token.clone()).map_err(|e| {
                    AgentError::Key(format!("token {:?}: {e}", p.token.token_label))
                })?;
                DeviceKey::open_in_token(&token, r)?
            }
        };
        let mut chain = vec![CertificateDer::from(cur.cert_der.clone())];
        chain.extend(
            cur.chain
                .iter()
                .filter(|c| !is_self_signed(c))
                .map(|c| CertificateDer::from(c.clone())),
        );
        let identity = tls_key::certified_key(chain, key.signer())?;
        let tls = transport::client_config(roots, Some(identity))?;
        let ep = Endpoint::new(&cfg.server_device, &cfg.server_name, tls, cfg.timeouts)?;
        Ok(Gateway { ep })
    }

    /// `GET /device/v1/update`: the signed instruction, or `None` on 204 (nothing to do).
    pub(crate) async fn instruction(&self) -> Result<Option<SignedInstruction>, AgentError> {
        const OP: &str = "fetching the update instruction";
        let r = self
            .ep
            .request(
                Method::GET,
                "/device/v1/update",
                &[(ACCEPT, "application/json".into())],
                Vec::new(),
            )
            .await?;
        match r.status {
            204 => Ok(None),
            200 => serde_json::from_slice(&r.body)
                .map(Some)
                .map_err(|e| AgentError::BadResponse {
                    operation: OP,
                    reason: format!("not a signed instruction: {e}"),
                }),
            s => Err(refused_by_server(OP, s, &r.body)),
        }
    }

    /// `POST /device/v1/update-status`.
    pub(crate) async fn report(
        &self,
        rollout: &str,
        target: &str,
        status: ReportedStatus,
        detail: &str,
    ) -> Result<(), AgentError> {
        const OP: &str = "reporting update status";
        let body = serde_json::to_vec(&StatusBody {
            rollout,
            target,
            status,
            detail,
        })
        .map_err(|e| AgentError::Config(format!("status report: {e}")))?;
        let r = self
            .ep
            .request(
                Method::POST,
                "/device/v1/update-status",
                &[
                    (CONTENT_TYPE, "application/json".into()),
                    (ACCEPT, "application/json".into()),
                ],
                body,
            )
            .await?;
        if (200..300).contains(&r.status) {
            Ok(())
        } else {
            Err(refused_by_server(OP, r.status, &r.body))
        }
    }

    /// `POST`s a JSON body to `path` and hands back the reply whatever its status, for a
    /// caller that treats statuses differently (event batches: 5xx retry later, 400 split).
    pub(crate) async fn post_json(&self, path: &str, body: Vec<u8>) -> Result<Reply, AgentError> {
        self.ep
            .request(
                Method::POST,
                path,
                &[
                    (CONTENT_TYPE, "application/json".into()),
                    (ACCEPT, "application/json".into()),
                ],
                body,
            )
            .await
    }
}

pub(crate) fn refused_by_server(operation: &'static str, status: u16, body: &[u8]) -> AgentError {
    AgentError::Refused {
        operation,
        status,
        detail: problem_detail(body),
    }
}

/// The `detail` of a problem+json body, without control characters and at most 500
/// characters: it ends up in messages and files, and comes from the network.
pub(crate) fn problem_detail(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("detail")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| "no detail given".into())
        .chars()
        .filter(|c| !c.is_control())
        .take(500)
        .collect()
}

fn is_self_signed(der: &[u8]) -> bool {
    X509Certificate::from_der(der)
        .map(|(_, c)| c.subject().as_raw() == c.issuer().as_raw())
        .unwrap_or(false)
}
