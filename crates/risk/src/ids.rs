//! Identifier newtypes for inventory, threat-model and register objects.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why an identifier was refused; folded into [`crate::RiskError`] with file/line context by callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdError {
    pub what: &'static str,
    pub value: String,
    pub reason: &'static str,
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {} {:?}: {}", self.what, self.value, self.reason)
    }
}

impl std::error::Error for IdError {}

/// Ids go into file names, URLs, HTML and Markdown tables, so the alphabet is kept small:
/// letters, digits, `.`, `_`, `-` and `:` (for `CVE-...`/`GHSA-...`/`urn:`-like references),
/// starting with a letter or digit, at most 128 characters.
fn check_id(what: &'static str, s: &str) -> Result<(), IdError> {
    let err = |reason| IdError {
        what,
        value: s.chars().take(80).collect(),
        reason,
    };
    if s.is_empty() {
        return Err(err("must not be empty"));
    }
    if s.len() > 128 {
        return Err(err("longer than 128 characters"));
    }
    if !s.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(err("must start with a letter or digit"));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'))
    {
        return Err(err(
            "only letters, digits, '.', '_', '-' and ':' are allowed",
        ));
    }
    Ok(())
}

macro_rules! id_newtype {
    ($(#[$m:meta])* $name:ident, $what:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses and checks the value.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                check_id($what, s)?;
                Ok(Self(s.to_owned()))
            }

            /// The checked value.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Joins already-checked parts with `-` (e.g. `T`, rule id, target id). Checked
            /// ids are ASCII from the id alphabet, so the result is valid whenever the first
            /// part starts with a letter or digit; callers pass constants there. Avoids a
            /// fallible parse (and a panic path) for derived ids.
            ///
            /// A join longer than 128 bytes keeps its first 111 bytes and ends with `-` and
            /// 16 hex digits of its SHA-256, so two long ids that share a prefix stay distinct
            /// (plain truncation made, e.g., the threats of two links with long ids share one
            /// id, and one of them was dropped; found by the `risk_inventory` fuzz target).
            #[allow(dead_code)]
            pub(crate) fn derived(parts: &[&str]) -> Self {
                let mut s = parts.join("-");
                if s.len() > 128 {
                    use sha2::Digest;
                    let h = hex::encode(sha2::Sha256::digest(s.as_bytes()));
                    s.truncate(111);
                    s.push('-');
                    s.push_str(&h[..16]);
                }
                debug_assert!(check_id($what, &s).is_ok(), "derived id {s:?}");
                Self(s)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                check_id($what, &s)?;
                Ok(Self(s))
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_newtype!(
    /// An endpoint of the trust-relationship graph (`hospital-server`, `usb-port`).
    EndpointId,
    "endpoint id"
);
id_newtype!(
    /// A link (edge) of the trust-relationship graph.
    LinkId,
    "link id"
);
id_newtype!(
    /// A threat: `T-<rule>-<target>` when generated, `TD-<uuid>` when imported, free otherwise.
    ThreatId,
    "threat id"
);
id_newtype!(
    /// A rule of the threat rule set.
    RuleId,
    "rule id"
);
id_newtype!(
    /// A risk-register entry (`R-001`).
    RiskId,
    "risk id"
);
id_newtype!(
    /// A security control (`C-MTLS`).
    ControlId,
    "control id"
);
id_newtype!(
    /// A design-input requirement a control is traced to (`REQ-SEC-012`).
    RequirementId,
    "requirement id"
);
id_newtype!(
    /// A verification test reference (`TC-SEC-031`, `crates/ca/tests/mtls.rs:rejects_expired`
    /// is not allowed: use a test id, the test plan maps it to code).
    TestRef,
    "test reference"
);
id_newtype!(
    /// A vulnerability or computed finding a risk entry is about (`CVE-2024-3094`, `F-plaintext-pump-usb`).
    VulnRef,
    "vulnerability reference"
);
id_newtype!(
    /// A computed finding: `F-<kind>-<link>`.
    FindingId,
    "finding id"
);
id_newtype!(
    /// A level name on one of the policy's scales (`serious`, `moderate`, `unacceptable`).
    LevelName,
    "level name"
);
