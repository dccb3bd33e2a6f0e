//! IDevID bootstrap: a manufacturer-installed device certificate, chained to a configured
//! manufacturing CA, stands in for an enrollment token at first enrollment (IEEE 802.1AR).

use medsec_core::DeviceSerial;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::CaError;

/// X.520 serialNumber.
const OID_SERIAL_NUMBER: &str = "2.5.4.5";

/// Checks that `leaf` was signed by one of `manufacturing_cas` (DER) and is within its validity,
/// and returns the device serial from its subject's serialNumber attribute, with a short
/// description of the evidence for the audit log.
pub fn verify_idevid(
    leaf: &[u8],
    manufacturing_cas: &[Vec<u8>],
) -> Result<(DeviceSerial, String), CaError> {
    let bad = |m: &str| CaError::Csr(format!("IDevID rejected: {m}"));
    let (_, cert) = X509Certificate::from_der(leaf).map_err(|_| bad("not a certificate"))?;
    if !cert.validity().is_valid() {
        return Err(bad("outside its validity period"));
    }
    let issuer = manufacturing_cas
        .iter()
        .filter_map(|der| X509Certificate::from_der(der).ok().map(|(_, c)| c))
        .find(|ca| {
            ca.subject().as_raw() == cert.issuer().as_raw()
                && cert.verify_signature(Some(ca.public_key())).is_ok()
        })
        .ok_or_else(|| bad("not issued by a configured manufacturing CA"))?;
    let serial = subject_serial(cert.subject().as_raw())
        .ok_or_else(|| bad("the subject has no serialNumber attribute"))??;
    let evidence = format!(
        "idevid:{}/{}",
        issuer.subject(),
        hex::encode(cert.raw_serial())
    );
    Ok((serial, evidence))
}

/// The device serial in a DER Name's serialNumber attribute: `None` when absent, an error when
/// present but not a valid device serial.
pub fn subject_serial(name_der: &[u8]) -> Option<Result<DeviceSerial, CaError>> {
    let (_, name) = x509_parser::x509::X509Name::from_der(name_der).ok()?;
    let s = name
        .iter_attributes()
        .find(|a| a.attr_type().to_id_string() == OID_SERIAL_NUMBER)
        .and_then(|a| a.as_str().ok())?
        .to_owned();
    Some(DeviceSerial::parse(&s).map_err(CaError::from))
}
