//! Opaque keyset cursors: the last row a page showed, so the next page starts after it.
//!
//! Callers get a short base64url string and must treat it as opaque; the content is a version
//! tag, the listing it belongs to and the key of the last row. It is not a secret (the key is
//! on the page already) but it is checked strictly on the way back in: a cursor from another
//! listing, a hand-edited one or plain garbage is refused rather than silently restarting or
//! skipping rows.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use medsec_core::{CertSerial, DeviceId};
use serde::{Deserialize, Serialize};

use crate::FleetError;

/// Longest encoded cursor accepted: a device URN is at most 18 + 64 + 1 + 64 bytes, so anything
/// longer was not made here and is refused before decoding.
const MAX_ENCODED: usize = 256;

const DEVICE_TAG: &str = "d1:";
const CERT_TAG: &str = "c1:";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// The fleet listing, ordered by (model, serial): the last device shown.
    Device(DeviceId),
    /// The certificate listing, ordered by serial (lowercase hex): the last certificate shown.
    Cert(CertSerial),
}

/// Where the next page starts. Encoded with [`fmt::Display`], decoded with [`FromStr`] /
/// [`Cursor::decode`]; serialised as that string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cursor(Key);

impl Cursor {
    /// The cursor after `device` in the fleet listing.
    pub fn after_device(device: &DeviceId) -> Self {
        Cursor(Key::Device(device.clone()))
    }

    /// The cursor after `serial` in the certificate listing.
    pub fn after_cert(serial: &CertSerial) -> Self {
        Cursor(Key::Cert(serial.clone()))
    }

    /// The device this fleet cursor points after; refused for a certificate cursor.
    pub fn device(&self) -> Result<&DeviceId, FleetError> {
        match &self.0 {
            Key::Device(d) => Ok(d),
            Key::Cert(_) => Err(FleetError::BadCursor(
                "a certificate cursor cannot page the fleet",
            )),
        }
    }

    /// The certificate serial this cursor points after; refused for a fleet cursor.
    pub fn cert(&self) -> Result<&CertSerial, FleetError> {
        match &self.0 {
            Key::Cert(s) => Ok(s),
            Key::Device(_) => Err(FleetError::BadCursor(
                "a fleet cursor cannot page certificates",
            )),
        }
    }

    /// The opaque string form.
    pub fn encode(&self) -> String {
        let plain = match &self.0 {
            Key::Device(d) => format!("{DEVICE_TAG}{}", d.urn()),
            Key::Cert(s) => format!("{CERT_TAG}{}", s.to_hex()),
        };
        URL_SAFE_NO_PAD.encode(plain)
    }

    /// Parses a cursor a caller sent back. Only the exact strings [`Cursor::encode`] produces
    /// are accepted.
    pub fn decode(s: &str) -> Result<Self, FleetError> {
        if s.is_empty() || s.len() > MAX_ENCODED {
            return Err(FleetError::BadCursor("wrong length"));
        }
        let raw = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| FleetError::BadCursor("not base64url"))?;
        let plain = String::from_utf8(raw).map_err(|_| FleetError::BadCursor("not text"))?;
        let c = if let Some(urn) = plain.strip_prefix(DEVICE_TAG) {
            Cursor(Key::Device(
                DeviceId::parse_urn(urn).map_err(|_| FleetError::BadCursor("not a device"))?,
            ))
        } else if let Some(hex) = plain.strip_prefix(CERT_TAG) {
            let serial: CertSerial = hex
                .parse()
                .map_err(|_| FleetError::BadCursor("not a certificate serial"))?;
            Cursor(Key::Cert(serial))
        } else {
            return Err(FleetError::BadCursor("unknown kind or version"));
        };
        // Canonical form only: a serial with leading zeros, upper-case hex or `0x` would decode
        // to the same key, and accepting those would make cursors malleable for no benefit.
        if c.encode() != s {
            return Err(FleetError::BadCursor("not in canonical form"));
        }
        Ok(c)
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

impl FromStr for Cursor {
    type Err = FleetError;
    fn from_str(s: &str) -> Result<Self, FleetError> {
        Cursor::decode(s)
    }
}

impl Serialize for Cursor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.encode())
    }
}

impl<'de> Deserialize<'de> for Cursor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Cursor::decode(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(s: &str) -> DeviceId {
        DeviceId::parse_urn(s).unwrap()
    }

    #[test]
    fn round_trips_both_kinds() {
        let d = Cursor::after_device(&dev("urn:medsec:device:pump-x2:SN-0001"));
        let back = Cursor::decode(&d.encode()).unwrap();
        assert_eq!(back, d);
        assert_eq!(back.device().unwrap().serial.as_str(), "SN-0001");
        let serial: CertSerial = "7f01ab".parse().unwrap();
        let c = Cursor::after_cert(&serial);
        let back: Cursor = c.to_string().parse().unwrap();
        assert_eq!(back.cert().unwrap(), &serial);
        // Opaque: the URN is not readable in the encoded form.
        assert!(!d.encode().contains("pump"));
    }

    #[test]
    fn refuses_the_wrong_listing() {
        let d = Cursor::after_device(&dev("urn:medsec:device:m:s"));
        assert!(matches!(d.cert(), Err(FleetError::BadCursor(_))));
        let c = Cursor::after_cert(&"01".parse().unwrap());
        assert!(matches!(c.device(), Err(FleetError::BadCursor(_))));
    }

    #[test]
    fn refuses_garbage() {
        let b = |s: &str| URL_SAFE_NO_PAD.encode(s);
        let too_long = "A".repeat(MAX_ENCODED + 1);
        let bad = [
            "",
            "!!!",
            "not base64 at all",
            too_long.as_str(),
            // Padding and the standard alphabet are not what we produce.
            &format!("{}=", b("d1:urn:medsec:device:m:s")),
            &b("d2:urn:medsec:device:m:s"),
            &b("d1:urn:medsec:device:m"),
            &b("d1:urn:medsec:device:m:s p"),
            &b("c1:zz"),
            &b("c1:"),
            // Same key, non-canonical spelling.
            &b("c1:00ff"),
            &b("c1:FF"),
            &b("x1:whatever"),
        ];
        for s in bad {
            assert!(
                matches!(Cursor::decode(s), Err(FleetError::BadCursor(_))),
                "{s:?} accepted"
            );
        }
        let non_utf8 = URL_SAFE_NO_PAD.encode([0x64, 0x31, 0x3a, 0xff, 0xfe]);
        assert!(Cursor::decode(&non_utf8).is_err());
    }

    #[test]
    fn serde_is_the_string_form() {
        let d = Cursor::after_device(&dev("urn:medsec:device:m:s"));
        let j = serde_json::to_string(&d).unwrap();
        assert_eq!(j, format!("\"{}\"", d.encode()));
        let back: Cursor = serde_json::from_str(&j).unwrap();
        assert_eq!(back, d);
        assert!(serde_json::from_str::<Cursor>("\"garbage\"").is_err());
    }
}
