//! The device-identity certificate authority: hierarchy, profiles, CSR policy, issuance,
//! lifecycle (renew, rekey, revoke, retire), CRLs and OCSP responses.
//!
//! Pure domain logic: no network IO and no SQL. Persistence goes through the [`CaStore`] trait
//! this crate defines; keys go through `medsec_keys::Signer`. [`Ca`] ties the two together and
//! is what the CLI and the server call.

pub mod bootstrap;
mod crl;
mod csr;
mod model;
mod ocsp;
pub mod pkcs7;
mod profile;
mod service;
mod signing;
mod store;
mod x509;

pub use crl::{
    CrlContent, MAX_CRL_SHARDS, SHARD_PLACEHOLDER, crl_shard_of, crl_shard_url, encode_crl,
};
pub use csr::{VerifiedCsr, classify_spki_der, parse_and_verify_csr};
pub use model::{
    CaRecord, CaRole, CertRecord, CertStatus, CrlRecord, DeviceRecord, DeviceStatus,
    EnrollmentToken, Issuance, IssuanceKind, Revocation,
};
pub use ocsp::{
    MAX_CERTS_PER_REQUEST, OcspResponder, OcspStatusSource, error_response as ocsp_error_response,
};
pub use profile::Profile;
pub use service::{Ca, CaInitSpec, CaUrls, IssuedCert, RekeyOutcome};
pub use store::{CaStore, CertFilter, CrlBuilder, CrlEntries, StoreError};
pub use x509::{new_serial, pem_encode_cert};
pub use x509_ocsp::OcspResponseStatus as OcspErrorStatus;

use medsec_core::{CertSerial, CoreError, DeviceId, KeyAlgorithm, Name};

/// Everything that can go wrong in the CA. Variants carry the object they are about, so the
/// CLI and the HTTP layer can report them without more context.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    #[error(transparent)]
    Invalid(#[from] CoreError),
    #[error("CSR rejected: {0}")]
    Csr(String),
    #[error("key type {got} is not allowed by profile {profile} (allowed: {allowed})")]
    KeyNotAllowed {
        profile: Name,
        got: KeyAlgorithm,
        allowed: String,
    },
    #[error("CA {0} not found")]
    CaNotFound(Name),
    #[error("CA {0} already exists")]
    CaExists(Name),
    #[error("CA {0} holds no private key here (it was imported as a certificate only)")]
    CaHasNoKey(Name),
    #[error("profile {0} not found")]
    ProfileNotFound(Name),
    #[error("device {0} not found")]
    DeviceNotFound(DeviceId),
    #[error("device {0} is retired and cannot receive certificates")]
    DeviceRetired(DeviceId),
    #[error("certificate {0} not found")]
    CertNotFound(CertSerial),
    #[error("certificate {serial} is revoked ({reason})")]
    CertRevoked { serial: CertSerial, reason: String },
    #[error("certificate {0} has expired")]
    CertExpired(CertSerial),
    /// Deliberately vague: it must not tell a guesser which tokens exist.
    #[error("enrollment token is unknown, expired or already used")]
    TokenRejected,
    #[error("enrollment token is for profile {token_profile}, not {requested}")]
    TokenWrongProfile {
        token_profile: Name,
        requested: Name,
    },
    #[error("imported certificate rejected: {0}")]
    Import(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("OCSP request malformed: {0}")]
    OcspMalformed(String),
    #[error(transparent)]
    Key(#[from] medsec_keys::KeyError),
    #[error("certificate encoding: {0}")]
    Encoding(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rcgen::Error> for CaError {
    fn from(e: rcgen::Error) -> Self {
        CaError::Encoding(e.to_string())
    }
}

impl From<der::Error> for CaError {
    fn from(e: der::Error) -> Self {
        CaError::Encoding(e.to_string())
    }
}
