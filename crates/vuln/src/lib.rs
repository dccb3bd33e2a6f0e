//! Vulnerability matching building blocks: how each package ecosystem orders its versions, and
//! whether a version falls inside an OSV `affected` entry.
//!
//! Versions are never compared as strings: "1.10" > "1.9", "1.0rc1" < "1.0", "1:0.9" > "2.0",
//! "1.0~rc1" < "1.0". Each ecosystem's rule lives in its own module and is tested against the
//! cases that break naive comparison.

mod alpine;
pub mod cpe;
pub mod cvss;
mod dpkg;
mod kev;
mod maven;
mod osv;
mod packagist;
mod pep440;
mod range;
mod rubygems;
mod semver;
mod vex;

pub use cpe::{Cpe, CpePart, CpeValue};
pub use kev::{Kev, KevEntry};
pub use osv::{Advisory, AffectedPackage, Finding, Index, OsvPackage, Severity, zip_records};
pub use range::{Event, Range, RangeKind, affected};
pub use vex::{Justification, VexDocument, VexProduct, VexStatement, VexStatus};

use std::cmp::Ordering;
use std::fmt;

/// Errors from version parsing and range evaluation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VulnError {
    #[error("{ecosystem} version {version:?} is not valid: {reason}")]
    BadVersion {
        ecosystem: Ecosystem,
        version: String,
        reason: &'static str,
    },
    #[error("ecosystem {0:?} is not supported")]
    UnknownEcosystem(String),
    #[error("malformed range: {0}")]
    BadRange(String),
    /// A feed or record that is not what it claims (not OSV JSON, not a zip, not a KEV
    /// catalog, a field with the wrong syntax).
    #[error("{0}")]
    BadFeed(String),
    #[error("CVSS vector {vector:?} is not valid: {reason}")]
    BadCvss { vector: String, reason: String },
    #[error("CPE {cpe:?} is not valid: {reason}")]
    BadCpe { cpe: String, reason: String },
}

/// Package ecosystems with a version ordering of their own (OSV names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Ecosystem {
    Npm,
    CratesIo,
    Go,
    PyPI,
    Maven,
    Debian,
    Ubuntu,
    Alpine,
    RubyGems,
    Packagist,
}

impl Ecosystem {
    /// From an OSV ecosystem name; a release suffix (`Debian:12`, `Alpine:v3.20`) is ignored.
    pub fn from_osv(name: &str) -> Result<Self, VulnError> {
        let base = name.split(':').next().unwrap_or(name);
        Ok(match base {
            "npm" => Ecosystem::Npm,
            "crates.io" => Ecosystem::CratesIo,
            "Go" => Ecosystem::Go,
            "PyPI" => Ecosystem::PyPI,
            "Maven" => Ecosystem::Maven,
            "Debian" => Ecosystem::Debian,
            "Ubuntu" => Ecosystem::Ubuntu,
            "Alpine" => Ecosystem::Alpine,
            "RubyGems" => Ecosystem::RubyGems,
            "Packagist" => Ecosystem::Packagist,
            _ => return Err(VulnError::UnknownEcosystem(name.to_owned())),
        })
    }

    /// From a purl type (`pkg:<type>/...`).
    pub fn from_purl_type(t: &str) -> Option<Self> {
        Some(match t {
            "npm" => Ecosystem::Npm,
            "cargo" => Ecosystem::CratesIo,
            "golang" => Ecosystem::Go,
            "pypi" => Ecosystem::PyPI,
            "maven" => Ecosystem::Maven,
            "deb" => Ecosystem::Debian,
            "apk" => Ecosystem::Alpine,
            // `gem` and `composer` purls are not mapped yet: RubyGems and Packagist are ordered
            // for CPE matching, but their purl-to-OSV name mapping is still to be written.
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Ecosystem::Npm => "npm",
            Ecosystem::CratesIo => "crates.io",
            Ecosystem::Go => "Go",
            Ecosystem::PyPI => "PyPI",
            Ecosystem::Maven => "Maven",
            Ecosystem::Debian => "Debian",
            Ecosystem::Ubuntu => "Ubuntu",
            Ecosystem::Alpine => "Alpine",
            Ecosystem::RubyGems => "RubyGems",
            Ecosystem::Packagist => "Packagist",
        }
    }

    /// Compares two versions by this ecosystem's rules.
    pub fn compare(self, a: &str, b: &str) -> Result<Ordering, VulnError> {
        let bad = |v: &str, reason| VulnError::BadVersion {
            ecosystem: self,
            version: v.chars().take(80).collect(),
            reason,
        };
        match self {
            Ecosystem::Npm | Ecosystem::CratesIo | Ecosystem::Go => {
                let pa = semver::Version::parse(a).map_err(|r| bad(a, r))?;
                let pb = semver::Version::parse(b).map_err(|r| bad(b, r))?;
                Ok(pa.cmp(&pb))
            }
            Ecosystem::PyPI => {
                let pa = pep440::Version::parse(a).map_err(|r| bad(a, r))?;
                let pb = pep440::Version::parse(b).map_err(|r| bad(b, r))?;
                Ok(pa.cmp(&pb))
            }
            Ecosystem::Maven => Ok(maven::compare(a, b)),
            Ecosystem::Debian | Ecosystem::Ubuntu => {
                dpkg::compare(a, b).map_err(|(v, r)| bad(if v { a } else { b }, r))
            }
            Ecosystem::Alpine => {
                let pa = alpine::Version::parse(a).map_err(|r| bad(a, r))?;
                let pb = alpine::Version::parse(b).map_err(|r| bad(b, r))?;
                Ok(pa.cmp(&pb))
            }
            Ecosystem::RubyGems => {
                let pa = rubygems::Version::parse(a).map_err(|r| bad(a, r))?;
                let pb = rubygems::Version::parse(b).map_err(|r| bad(b, r))?;
                Ok(pa.cmp(&pb))
            }
            Ecosystem::Packagist => {
                let pa = packagist::Version::parse(a).map_err(|r| bad(a, r))?;
                let pb = packagist::Version::parse(b).map_err(|r| bad(b, r))?;
                Ok(pa.cmp(&pb))
            }
        }
    }
}

impl fmt::Display for Ecosystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
