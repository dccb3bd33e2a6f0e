//! SBOM ingest: CycloneDX 1.2-1.6 (JSON and XML) and SPDX 2.2/2.3 (JSON and tag-value) parsed
//! into one component model, with errors that name the field and where it is.
//!
//! A file that fails any check yields an error and no partial result: callers store all of an
//! SBOM or none of it.
//!
//! `cargo_lock` goes the other way for Rust: a workspace's `Cargo.lock` becomes an SBOM, which
//! is how medsec's own supply chain is described (docs/supply-chain.md).

mod cargo_lock;
mod cyclonedx;
mod diff;
mod export;
mod license;
mod spdx;

pub use cargo_lock::{CargoLock, LockSource, LockedPackage, parse_cargo_lock};
pub use diff::{Change, Diff, apply_support_csv, diff};
pub use export::{ExportMeta, SerialNumber, Timestamp, to_cyclonedx_json};
use medsec_core::Purl;
use serde::Serialize;

/// Where in the input an error is: a JSON path (`components[3].purl`) or an XML/text line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SbomError {
    #[error("not a recognised SBOM: {0}")]
    UnknownFormat(String),
    #[error("{at}: {reason}")]
    Invalid { at: String, reason: String },
    #[error("SBOM larger than {0} bytes")]
    TooLarge(usize),
}

impl SbomError {
    pub(crate) fn at(at: impl Into<String>, reason: impl Into<String>) -> Self {
        SbomError::Invalid {
            at: at.into(),
            reason: reason.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Format {
    CycloneDxJson,
    CycloneDxXml,
    SpdxJson,
    SpdxTagValue,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hash {
    /// CycloneDX's name for the algorithm (`SHA-256`, `SHA-1`, `BLAKE2b-256`, ...) whatever the
    /// input spelled it (SPDX writes `SHA256`), so hashes compare across formats; an algorithm
    /// CycloneDX has no name for (SPDX's `SHA224`, `ADLER32`, ...) is kept as written.
    pub alg: String,
    /// Lowercase hex.
    pub value: String,
}

/// One component, whatever format it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Component {
    /// The SBOM's own reference (CycloneDX bom-ref, SPDX SPDXID), for the dependency graph.
    pub id: Option<String>,
    pub name: String,
    pub version: Option<String>,
    pub supplier: Option<String>,
    pub purl: Option<Purl>,
    pub cpes: Vec<String>,
    pub hashes: Vec<Hash>,
    pub licenses: Vec<String>,
    /// Manufacturer's support commitment for this component, from the CycloneDX property or SPDX
    /// annotation `medsec:support-level` (e.g. "supported", "security-only", "unsupported").
    pub support_level: Option<String>,
    /// From `medsec:end-of-support` (ISO 8601 date).
    pub end_of_support: Option<String>,
}

/// A parsed SBOM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sbom {
    pub format: Format,
    pub spec_version: String,
    pub components: Vec<Component>,
    /// (from id, to id): `from` depends on `to`.
    pub dependencies: Vec<(String, String)>,
}

/// Largest SBOM accepted (real container SBOMs reach tens of MiB).
pub const MAX_BYTES: usize = 64 * 1024 * 1024;

/// Detects the format and parses.
pub fn parse(bytes: &[u8]) -> Result<Sbom, SbomError> {
    if bytes.len() > MAX_BYTES {
        return Err(SbomError::TooLarge(MAX_BYTES));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|e| SbomError::at(format!("byte {}", e.valid_up_to()), "not UTF-8"))?;
    let t = text.trim_start_matches('\u{feff}').trim_start();
    if t.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(t).map_err(|e| {
            SbomError::at(
                format!("line {} column {}", e.line(), e.column()),
                format!("invalid JSON: {e}"),
            )
        })?;
        if v.get("bomFormat").is_some()
            || v.get("specVersion").is_some() && v.get("spdxVersion").is_none()
        {
            return cyclonedx::from_json(&v);
        }
        if v.get("spdxVersion").is_some() {
            return spdx::from_json(&v);
        }
        return Err(SbomError::UnknownFormat(
            "JSON without bomFormat (CycloneDX) or spdxVersion (SPDX)".into(),
        ));
    }
    if t.starts_with('<') {
        return cyclonedx::from_xml(t);
    }
    if t.lines().any(|l| l.starts_with("SPDXVersion:")) {
        return spdx::from_tag_value(t);
    }
    Err(SbomError::UnknownFormat(
        "neither JSON, XML nor SPDX tag-value".into(),
    ))
}

pub(crate) fn parse_purl(s: &str, at: &str) -> Result<Purl, SbomError> {
    Purl::parse(s).map_err(|e| SbomError::at(at, e.to_string()))
}

/// CycloneDX's spelling of a hash algorithm name as CycloneDX or SPDX writes it, or `None` for
/// an algorithm CycloneDX has no name for.
pub(crate) fn canonical_alg(alg: &str) -> Option<&'static str> {
    Some(
        match alg.trim().to_ascii_uppercase().replace('_', "-").as_str() {
            "MD5" => "MD5",
            "SHA-1" | "SHA1" => "SHA-1",
            "SHA-256" | "SHA256" => "SHA-256",
            "SHA-384" | "SHA384" => "SHA-384",
            "SHA-512" | "SHA512" => "SHA-512",
            "SHA3-256" => "SHA3-256",
            "SHA3-384" => "SHA3-384",
            "SHA3-512" => "SHA3-512",
            "BLAKE2B-256" => "BLAKE2b-256",
            "BLAKE2B-384" => "BLAKE2b-384",
            "BLAKE2B-512" => "BLAKE2b-512",
            "BLAKE3" => "BLAKE3",
            _ => return None,
        },
    )
}

/// A parsed hash: algorithm spelled the CycloneDX way when it has one, value lowercase.
pub(crate) fn hash(alg: &str, value: &str) -> Hash {
    Hash {
        alg: canonical_alg(alg).map_or_else(|| alg.trim().to_owned(), str::to_owned),
        value: value.trim().to_ascii_lowercase(),
    }
}

/// Checks a hash value against its algorithm's length, as the CycloneDX schema does.
pub(crate) fn check_hash(alg: &str, value: &str, at: &str) -> Result<(), SbomError> {
    let want = match alg.to_ascii_uppercase().replace('_', "-").as_str() {
        "MD5" => Some(32),
        "SHA-1" | "SHA1" => Some(40),
        "SHA-256" | "SHA256" | "SHA3-256" | "BLAKE2B-256" => Some(64),
        "SHA-384" | "SHA384" | "SHA3-384" | "BLAKE2B-384" => Some(96),
        "SHA-512" | "SHA512" | "SHA3-512" | "BLAKE2B-512" => Some(128),
        _ => None,
    };
    if let Some(n) = want
        && (value.len() != n || !value.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(SbomError::at(
            at,
            format!("{alg} hash must be {n} hex digits"),
        ));
    }
    Ok(())
}
