//! The device side of medsec: an agent that gets a device its certificate over EST
//! (RFC 7030), keeps it fresh, and uses it on the mTLS device gateway.
//!
//! * [`Agent::enroll`] generates the device key, sends a CSR with a one-time enrollment token
//!   (`simpleenroll`) and stores the certificate and the CA chain.
//! * [`Agent::renew_if_due`] re-enrolls (`simplereenroll`, authenticated by the current
//!   certificate as TLS client certificate) once two thirds of the validity have passed:
//!   same key by default, a new key with `rekey`.
//! * [`Agent::whoami`] asks the device gateway who the server thinks we are.
//! * [`EventReporter`] records security events in a durable spool and delivers them to the
//!   device gateway, exactly once in the server's store (see [`events`]).
//!
//! The device key is a PKCS#8 file in the state directory by default, or, with
//! [`AgentConfig::pkcs11`], a non-extractable key generated inside a PKCS#11 token (secure
//! element, TPM); then only a reference to it is stored, and CSRs and TLS handshakes are
//! signed by the token.
//!
//! The server is authenticated against one configured trust root, never the system store: a
//! medical device talks to its manufacturer's PKI and nothing else. Every network step has a
//! timeout and every response a size limit, so a misbehaving peer cannot hang or exhaust an
//! unattended device.

mod agent;
mod client;
mod config;
mod csr;
mod est;
pub mod events;
mod keys;
mod state;
mod tls_key;
mod transport;
pub mod update;

use std::path::PathBuf;

pub use agent::{Agent, RenewOutcome, Status, Whoami, renewal_due, renewal_time};
pub use client::EstClient;
pub use config::{AgentConfig, Pkcs11KeyConfig, Timeouts};
pub use events::{EventReporter, NewEvent};
pub use keys::{DEFAULT_PKCS11_KEY_LABEL, SUPPORTED as SUPPORTED_KEY_ALGORITHMS};
pub use state::CertInfo;
pub use update::{Refusal, UpdateClient, UpdateConfig};

/// Everything that can go wrong in the agent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("not enrolled: no device certificate in {0} (run `enroll` first)")]
    NotEnrolled(PathBuf),
    #[error(
        "already enrolled: {0} holds a device certificate; use `renew`, or start again from an empty state directory"
    )]
    AlreadyEnrolled(PathBuf),
    #[error("local state in {dir} is unusable: {reason}")]
    State { dir: PathBuf, reason: String },
    #[error("device key: {0}")]
    Key(String),
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS with {addr} failed: {reason}")]
    Tls { addr: String, reason: String },
    #[error("{step} with {addr} timed out after {secs} s")]
    Timeout {
        step: &'static str,
        addr: String,
        secs: u64,
    },
    #[error("HTTP exchange with {addr} failed: {reason}")]
    Http { addr: String, reason: String },
    #[error("{operation} refused by the server (HTTP {status}): {detail}")]
    Refused {
        operation: &'static str,
        status: u16,
        detail: String,
    },
    #[error("unexpected response to {operation}: {reason}")]
    BadResponse {
        operation: &'static str,
        reason: String,
    },
    #[error("the server returned an unacceptable certificate: {0}")]
    BadCertificate(String),
    #[error(
        "the device certificate expired at {0}; an expired certificate cannot be renewed, enroll again with a new token"
    )]
    Expired(String),
    /// A security event the server would refuse; the message names the field.
    #[error("invalid security event: {0}")]
    InvalidEvent(String),
    /// The event spool has no room the drop policy may make (see `events`).
    #[error("the security event spool is full: {0}")]
    SpoolFull(String),
    /// A firmware update failed verification; `kind` says which check (and so which attack).
    #[error("update refused ({kind}): {detail}")]
    UpdateRefused {
        kind: update::Refusal,
        detail: String,
    },
}

impl AgentError {
    pub(crate) fn io(op: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        AgentError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}
