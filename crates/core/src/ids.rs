//! Identifier newtypes: device serials and models, device ids, certificate serials, names, actors.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::CoreError;

/// Checks the token syntax shared by model and serial: 1..=64 chars of `[A-Za-z0-9._-]`,
/// starting with an alphanumeric. Colons are excluded because the device URN uses them as
/// separators; spaces and control characters are excluded so the values can go into
/// subject names, URNs, URLs and file names without escaping.
fn check_token(what: &'static str, s: &str) -> Result<(), CoreError> {
    check_token_with(what, s, true)
}

/// Device serials also go into the X.520 `serialNumber` attribute, a PrintableString, which has
/// no underscore; so they allow one character fewer.
fn check_serial(what: &'static str, s: &str) -> Result<(), CoreError> {
    check_token_with(what, s, false)
}

fn check_token_with(what: &'static str, s: &str, underscore: bool) -> Result<(), CoreError> {
    if s.is_empty() {
        return Err(CoreError::invalid(what, s, "must not be empty"));
    }
    if s.len() > 64 {
        return Err(CoreError::invalid(what, s, "longer than 64 characters"));
    }
    if !s.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(CoreError::invalid(
            what,
            s,
            "must start with a letter or digit",
        ));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || (underscore && b == b'_'))
    {
        return Err(CoreError::invalid(
            what,
            s,
            if underscore {
                "only letters, digits, '.', '_' and '-' are allowed"
            } else {
                "only letters, digits, '.' and '-' are allowed"
            },
        ));
    }
    Ok(())
}

macro_rules! token_newtype {
    ($(#[$m:meta])* $name:ident, $what:literal) => {
        token_newtype!($(#[$m])* $name, $what, check_token);
    };
    ($(#[$m:meta])* $name:ident, $what:literal, $check:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses and checks the value.
            pub fn parse(s: &str) -> Result<Self, CoreError> {
                $check($what, s)?;
                Ok(Self(s.to_owned()))
            }

            /// The checked value.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = CoreError;
            fn from_str(s: &str) -> Result<Self, CoreError> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = CoreError;
            fn try_from(s: String) -> Result<Self, CoreError> {
                $check($what, &s)?;
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

token_newtype!(
    /// A manufacturer's serial number for one device unit.
    DeviceSerial,
    "device serial",
    check_serial
);
token_newtype!(
    /// A device model (device class / product line), e.g. `infusion-pump-x2`.
    DeviceModel,
    "device model"
);
token_newtype!(
    /// The name of a configured object: a CA, a certificate profile.
    Name,
    "name"
);
token_newtype!(
    /// A firmware version of one device model as the manufacturer names it (`2.4.1`,
    /// `2.5.0-rc.1`). Compared for equality only: release order is the TUF security version's job.
    FirmwareVersion,
    "firmware version"
);

/// One device unit: its model and its serial. Rendered as `urn:medsec:device:<model>:<serial>`,
/// the URI written into the certificate's subjectAltName.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeviceId {
    pub model: DeviceModel,
    pub serial: DeviceSerial,
}

impl DeviceId {
    const PREFIX: &'static str = "urn:medsec:device:";

    pub fn new(model: DeviceModel, serial: DeviceSerial) -> Self {
        DeviceId { model, serial }
    }

    /// The URN form used in certificates.
    pub fn urn(&self) -> String {
        format!("{}{}:{}", Self::PREFIX, self.model, self.serial)
    }

    /// Parses the URN form.
    pub fn parse_urn(s: &str) -> Result<Self, CoreError> {
        let rest = s.strip_prefix(Self::PREFIX).ok_or_else(|| {
            CoreError::invalid("device URN", s, "must start with urn:medsec:device:")
        })?;
        let (model, serial) = rest.split_once(':').ok_or_else(|| {
            CoreError::invalid(
                "device URN",
                s,
                "must be urn:medsec:device:<model>:<serial>",
            )
        })?;
        Ok(DeviceId {
            model: DeviceModel::parse(model)?,
            serial: DeviceSerial::parse(serial)?,
        })
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.urn())
    }
}

/// A certificate serial number: a positive integer of 1..=20 octets (RFC 5280 4.1.2.2),
/// kept as its minimal big-endian bytes and shown as lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CertSerial(Vec<u8>);

impl CertSerial {
    /// From big-endian bytes as they appear in a DER INTEGER (a leading 0x00 sign byte is allowed).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CoreError> {
        let what = "certificate serial";
        let mut b = bytes;
        if b.first() == Some(&0) && b.len() > 1 {
            b = &b[1..];
        }
        if b.is_empty() || b.iter().all(|&x| x == 0) {
            return Err(CoreError::invalid(
                what,
                &hex::encode(bytes),
                "must be positive",
            ));
        }
        if b[0] & 0x80 != 0 && bytes.first() != Some(&0) {
            return Err(CoreError::invalid(
                what,
                &hex::encode(bytes),
                "negative serial",
            ));
        }
        // Strip any further leading zeros so that equal numbers compare equal.
        let first = b.iter().position(|&x| x != 0).unwrap_or(0);
        let b = &b[first..];
        if b.len() > 20 {
            return Err(CoreError::invalid(
                what,
                &hex::encode(bytes),
                "longer than 20 octets",
            ));
        }
        Ok(CertSerial(b.to_vec()))
    }

    /// Minimal unsigned big-endian magnitude.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes of the DER INTEGER content: magnitude with a 0x00 prefix when the top bit is set.
    pub fn to_der_integer_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.0.len() + 1);
        if self.0[0] & 0x80 != 0 {
            v.push(0);
        }
        v.extend_from_slice(&self.0);
        v
    }

    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }
}

impl FromStr for CertSerial {
    type Err = CoreError;
    /// Accepts hex with optional `0x` prefix and optional `:` separators (as openssl prints them).
    fn from_str(s: &str) -> Result<Self, CoreError> {
        let what = "certificate serial";
        let t = s.trim();
        let t = t.strip_prefix("0x").unwrap_or(t);
        let cleaned: String = t.chars().filter(|&c| c != ':').collect();
        if cleaned.is_empty() || cleaned.len() > 42 {
            return Err(CoreError::invalid(
                what,
                s,
                "expected 1 to 20 octets of hex",
            ));
        }
        let padded = if cleaned.len() % 2 == 1 {
            format!("0{cleaned}")
        } else {
            cleaned
        };
        let bytes = hex::decode(&padded).map_err(|_| CoreError::invalid(what, s, "not hex"))?;
        // Hex input is a magnitude, never a signed encoding.
        let mut mag = vec![0u8];
        mag.extend_from_slice(&bytes);
        CertSerial::from_bytes(&mag)
    }
}

impl fmt::Display for CertSerial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for CertSerial {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for CertSerial {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Who did something: `cli:<os user>`, `api:<token name>`, `device:<urn>`, `system`.
/// Free text for humans, but bounded and without control characters so logs stay readable.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Actor(String);

impl Actor {
    pub fn parse(s: &str) -> Result<Self, CoreError> {
        if s.is_empty() || s.len() > 200 {
            return Err(CoreError::invalid(
                "actor",
                s,
                "must be 1 to 200 characters",
            ));
        }
        if s.chars().any(char::is_control) {
            return Err(CoreError::invalid(
                "actor",
                s,
                "control characters are not allowed",
            ));
        }
        Ok(Actor(s.to_owned()))
    }

    pub fn system() -> Self {
        Actor("system".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Actor {
    type Error = CoreError;
    fn try_from(s: String) -> Result<Self, CoreError> {
        Actor::parse(&s)
    }
}

impl From<Actor> for String {
    fn from(a: Actor) -> String {
        a.0
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_reject_separators_and_controls() {
        assert!(DeviceSerial::parse("SN-0001").is_ok());
        assert!(DeviceModel::parse("pump_x2").is_ok());
        for bad in [
            "",
            "a_b",
            "a:b",
            "a b",
            "-lead",
            "x\n",
            "é",
            &"a".repeat(65),
        ] {
            assert!(DeviceSerial::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn device_urn_round_trips() {
        let id = DeviceId::new(
            DeviceModel::parse("pump-x2").unwrap(),
            DeviceSerial::parse("SN1").unwrap(),
        );
        assert_eq!(id.urn(), "urn:medsec:device:pump-x2:SN1");
        assert_eq!(DeviceId::parse_urn(&id.urn()).unwrap(), id);
        assert!(DeviceId::parse_urn("urn:medsec:device:pump").is_err());
        assert!(DeviceId::parse_urn("urn:other:pump:SN1").is_err());
    }

    #[test]
    fn serial_normalizes_sign_and_zeros() {
        let a = CertSerial::from_bytes(&[0x00, 0x80, 0x01]).unwrap();
        assert_eq!(a.as_bytes(), &[0x80, 0x01]);
        assert_eq!(a.to_der_integer_bytes(), vec![0, 0x80, 1]);
        assert_eq!("80:01".parse::<CertSerial>().unwrap(), a);
        assert_eq!("0x8001".parse::<CertSerial>().unwrap(), a);
        assert!(CertSerial::from_bytes(&[0x80]).is_err(), "negative");
        assert!(CertSerial::from_bytes(&[0]).is_err(), "zero");
        assert!("zz".parse::<CertSerial>().is_err());
        assert!(CertSerial::from_bytes(&[1; 21]).is_err());
    }
}
