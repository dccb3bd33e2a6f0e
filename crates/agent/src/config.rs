//! What the agent needs to know: where the server is, what to trust, where to keep its state.

use std::path::PathBuf;
use std::time::Duration;

use medsec_core::{KeyAlgorithm, Name};
use medsec_keys::Pkcs11Config;
use zeroize::Zeroizing;

use crate::keys::DEFAULT_PKCS11_KEY_LABEL;

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
    /// Where keys the agent generates live: `None` for a PKCS#8 file in the state directory,
    /// or a PKCS#11 token. The current key is used wherever the state directory says it is;
    /// this setting decides only where the next one is made (so a rekey can move a device
    /// from a file key into a token).
    pub pkcs11: Option<Pkcs11KeyConfig>,
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
            pkcs11: None,
            timeouts: Timeouts::default(),
        }
    }
}

/// A device key inside a PKCS#11 token: generated there, non-extractable, never on disk.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Pkcs11KeyConfig {
    /// Module, token label and user PIN (the PIN is never printed).
    pub token: Pkcs11Config,
    /// Label of the device's first key; later keys (rekey, or an enrollment retried after a
    /// failure) get `<label>-<unix time>`, and the state directory records which is current.
    pub key_label: String,
}

impl Pkcs11KeyConfig {
    /// Keys labelled from [`DEFAULT_PKCS11_KEY_LABEL`] in the token `token_label`.
    pub fn new(
        module: impl Into<PathBuf>,
        token_label: impl Into<String>,
        pin: Zeroizing<String>,
    ) -> Self {
        Pkcs11KeyConfig {
            token: Pkcs11Config {
                module: module.into(),
                token_label: token_label.into(),
                pin,
            },
            key_label: DEFAULT_PKCS11_KEY_LABEL.to_owned(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_pin() {
        let mut cfg = AgentConfig::new("a:1", "a:2", "localhost", "/root.pem", "/state");
        cfg.pkcs11 = Some(Pkcs11KeyConfig::new(
            "/usr/lib/x.so",
            "tok",
            Zeroizing::new("s3cret-pin".into()),
        ));
        let text = format!("{cfg:?}");
        assert!(
            text.contains("tok") && text.contains(DEFAULT_PKCS11_KEY_LABEL),
            "{text}"
        );
        assert!(!text.contains("s3cret"), "{text}");
    }
}
