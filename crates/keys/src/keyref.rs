//! `KeyRef`: where a key lives, as a string a database row can hold.

use std::fmt;
use std::str::FromStr;

use crate::{KeyError, check_label};

/// A reference to a key: `file:<label>` for an encrypted key file in the key directory, or
/// `pkcs11:object=<label>` (RFC 7512 style) for a key in the configured PKCS#11 token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyRef {
    File { label: String },
    Pkcs11 { label: String },
}

impl KeyRef {
    pub fn label(&self) -> &str {
        match self {
            KeyRef::File { label } | KeyRef::Pkcs11 { label } => label,
        }
    }
}

impl fmt::Display for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyRef::File { label } => write!(f, "file:{label}"),
            KeyRef::Pkcs11 { label } => write!(f, "pkcs11:object={label}"),
        }
    }
}

impl FromStr for KeyRef {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        if let Some(label) = s.strip_prefix("file:") {
            check_label(label)?;
            return Ok(KeyRef::File {
                label: label.to_owned(),
            });
        }
        if let Some(attrs) = s.strip_prefix("pkcs11:") {
            let label = attrs
                .split(';')
                .find_map(|kv| kv.strip_prefix("object="))
                .ok_or_else(|| KeyError::BadRef {
                    value: s.to_owned(),
                    reason: "a pkcs11: reference needs object=<label>",
                })?;
            check_label(label)?;
            return Ok(KeyRef::Pkcs11 {
                label: label.to_owned(),
            });
        }
        Err(KeyError::BadRef {
            value: s.to_owned(),
            reason: "expected file:<label> or pkcs11:object=<label>",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        for s in ["file:root-ca", "pkcs11:object=issuing-1"] {
            assert_eq!(s.parse::<KeyRef>().unwrap().to_string(), s);
        }
        assert!("file:../etc/passwd".parse::<KeyRef>().is_err());
        assert!("pkcs11:token=x".parse::<KeyRef>().is_err());
        assert!("s3:bucket".parse::<KeyRef>().is_err());
    }
}
