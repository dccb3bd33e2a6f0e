//! `EstClient`: the EST operations on their own, without the agent's state directory, for
//! tools that enroll many identities (load tests, provisioning stations).

use medsec_core::{DeviceSerial, Name};

use crate::AgentError;
use crate::config::Timeouts;
use crate::transport::{Endpoint, client_config, roots_from_pem};

/// An EST client bound to one server; every call opens a fresh TLS connection, as a device
/// enrolling for the first time does.
pub struct EstClient {
    ep: Endpoint,
}

impl EstClient {
    /// `addr` is `host:port`; the server must chain to a certificate in `trust_root_pem`.
    pub fn new(
        addr: &str,
        server_name: &str,
        trust_root_pem: &[u8],
        timeouts: Timeouts,
    ) -> Result<Self, AgentError> {
        let roots = roots_from_pem(trust_root_pem, "trust root")?;
        let tls = client_config(std::sync::Arc::new(roots), None)?;
        Ok(EstClient {
            ep: Endpoint::new(addr, server_name, tls, timeouts)?,
        })
    }

    /// `simpleenroll` with a one-time token; returns the DER certificates of the reply.
    pub async fn simpleenroll(
        &self,
        label: Option<&Name>,
        csr_der: &[u8],
        serial: &DeviceSerial,
        token: &str,
    ) -> Result<Vec<Vec<u8>>, AgentError> {
        crate::est::simpleenroll(&self.ep, label, csr_der, serial, token).await
    }
}
