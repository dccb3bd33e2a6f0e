//! What the agent needs to know: where the server is, what to trust, where to keep its state.

use std::path::PathBuf;
use std::time::Duration;

use medsec_core::{KeyAlgorithm, Name};

/// Agent settings. Built by the binary from its command line, or by an embedding application.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AgentConfig {
    /// `host:port` of the EST (HTTPS) listener.
    pub server_https: String,
    /// `host:port` of the mTLS device gateway.
    pub server_device: String,
    /// The name the server certificate must carry (DNS name or IP address); also the SNI.
    pub server_name: String,
    /// PEM file with the certificate(s) the server must chain to. The only trust anchors used.
    pub trust_root_pem: PathBuf,
    /// Where the device key, certificate and CA chain live.
    pub state_dir: PathBuf,
    /// EST label (certificate profile); `None` uses the server's default profile.
    pub profile_label: Option<Name>,
    /// Algorithm for keys the agent generates (enrollment and rekey).
    pub key_algorithm: KeyAlgorithm,
    pub timeouts: Timeouts,
}

impl AgentConfig {
    /// A configuration with the safe defaults: P-256 keys, the default profile, 10 s timeouts.
    pub fn new(
        server_https: impl Into<String>,
        server_device: impl Into<String>,
        server_name: impl Into<String>,
        trust_root_pem: impl Into<PathBuf>,
        state_dir: impl Into<PathBuf>,
    ) -> Self {
        AgentConfig {
            server_https: server_https.into(),
            server_device: server_device.into(),
            server_name: server_name.into(),
            trust_root_pem: trust_root_pem.into(),
            state_dir: state_dir.into(),
            profile_label: None,
            key_algorithm: KeyAlgorithm::EcdsaP256,
            timeouts: Timeouts::default(),
        }
    }
}

/// Bounds on each network step. A device runs unattended: a peer that stops answering must
/// produce an error, not a hung agent.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// TCP connect.
    pub connect: Duration,
    /// TLS handshake.
    pub handshake: Duration,
    /// Sending the request and reading the whole response.
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            handshake: Duration::from_secs(10),
            request: Duration::from_secs(10),
        }
    }
}
