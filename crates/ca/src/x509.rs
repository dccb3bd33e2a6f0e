//! Certificate construction with rcgen: root, issuing CA and device certificates.

use der::Encode;
use der::asn1::Ia5String;
use medsec_core::{CertSerial, DeviceId};
use rcgen::{
    BasicConstraints, CertificateParams, CrlDistributionPoint, CustomExtension, DistinguishedName,
    DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{AccessDescription, AuthorityInfoAccessSyntax};

use crate::CaError;

/// RFC 5280 id-pe-authorityInfoAccess.
const OID_AIA: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 1, 1];
/// X.520 serialNumber attribute.
const OID_SERIAL_NUMBER: &[u64] = &[2, 5, 4, 5];

/// A fresh serial: 16 random bytes, top bit cleared (positive) and lowest bit of the first byte
/// set (so the encoding is always 16 bytes): 126 random bits, well above the 64 that CA/B Forum
/// and our invariant require.
pub fn new_serial() -> Result<CertSerial, CaError> {
    use aws_lc_rs::rand::SecureRandom;
    let mut b = [0u8; 16];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| CaError::Encoding("system RNG failed".into()))?;
    b[0] &= 0x7f;
    b[0] |= 0x01;
    Ok(CertSerial::from_bytes(&b)?)
}

pub fn pem_encode_cert(der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new("CERTIFICATE", der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

pub(crate) fn aia_ocsp(url: &str) -> Result<CustomExtension, CaError> {
    let uri = Ia5String::new(url)
        .map_err(|_| CaError::Config(format!("OCSP URL {url:?} is not ASCII")))?;
    let aia = AuthorityInfoAccessSyntax(vec![AccessDescription {
        access_method: const_oid_ocsp(),
        access_location: GeneralName::UniformResourceIdentifier(uri),
    }]);
    Ok(CustomExtension::from_oid_content(OID_AIA, aia.to_der()?))
}

fn const_oid_ocsp() -> der::asn1::ObjectIdentifier {
    der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1")
}

/// Distinguished name `C=.., O=.., CN=..` for a CA.
pub(crate) fn ca_dn(
    common_name: &str,
    organization: &str,
    country: Option<&str>,
) -> Result<DistinguishedName, CaError> {
    let mut dn = DistinguishedName::new();
    if let Some(c) = country {
        let ok = c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase());
        let pc = rcgen::string::PrintableString::try_from(c)
            .ok()
            .filter(|_| ok)
            .ok_or_else(|| {
                CaError::Config(format!(
                    "country {c:?} must be two capital letters (ISO 3166)"
                ))
            })?;
        dn.push(DnType::CountryName, DnValue::PrintableString(pc));
    }
    for (what, v) in [("organization", organization), ("common name", common_name)] {
        if v.trim().is_empty() || v.len() > 64 || v.chars().any(char::is_control) {
            return Err(CaError::Config(format!(
                "CA {what} must be 1 to 64 printable characters"
            )));
        }
    }
    dn.push(DnType::OrganizationName, organization);
    dn.push(DnType::CommonName, common_name);
    Ok(dn)
}

pub(crate) struct CaCertSpec<'a> {
    pub dn: DistinguishedName,
    pub serial: &'a CertSerial,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// `None`: root (unconstrained); `Some(0)`: issuing CA that may sign only end entities.
    pub path_len: Option<u8>,
    pub crl_url: Option<&'a str>,
    pub ocsp_url: Option<&'a str>,
}

pub(crate) fn ca_params(spec: &CaCertSpec<'_>) -> Result<CertificateParams, CaError> {
    let mut p = CertificateParams::default();
    p.distinguished_name = spec.dn.clone();
    p.serial_number = Some(rcgen::SerialNumber::from_slice(
        &spec.serial.to_der_integer_bytes(),
    ));
    p.not_before = spec.not_before;
    p.not_after = spec.not_after;
    p.is_ca = IsCa::Ca(match spec.path_len {
        None => BasicConstraints::Unconstrained,
        Some(n) => BasicConstraints::Constrained(n),
    });
    // digitalSignature lets the CA sign OCSP responses itself.
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.use_authority_key_identifier_extension = spec.path_len.is_some();
    if let Some(url) = spec.crl_url {
        p.crl_distribution_points = vec![CrlDistributionPoint {
            uris: vec![url.to_owned()],
        }];
    }
    if let Some(url) = spec.ocsp_url {
        p.custom_extensions.push(aia_ocsp(url)?);
    }
    Ok(p)
}

pub(crate) struct DeviceCertSpec<'a> {
    pub device: &'a DeviceId,
    pub serial: &'a CertSerial,
    pub organization: &'a str,
    pub common_name: &'a str,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub server_auth: bool,
    pub rsa: bool,
    pub crl_url: Option<&'a str>,
    pub ocsp_url: Option<&'a str>,
}

pub(crate) fn device_params(spec: &DeviceCertSpec<'_>) -> Result<CertificateParams, CaError> {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, spec.organization);
    dn.push(DnType::CommonName, spec.common_name);
    let sn = rcgen::string::PrintableString::try_from(spec.device.serial.as_str())
        .map_err(|_| CaError::Encoding("device serial is not a PrintableString".into()))?;
    dn.push(
        DnType::CustomDnType(OID_SERIAL_NUMBER.to_vec()),
        DnValue::PrintableString(sn),
    );
    p.distinguished_name = dn;
    p.serial_number = Some(rcgen::SerialNumber::from_slice(
        &spec.serial.to_der_integer_bytes(),
    ));
    p.not_before = spec.not_before;
    p.not_after = spec.not_after;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if spec.rsa {
        // TLS 1.2 RSA key exchange needs it; harmless otherwise.
        p.key_usages.push(KeyUsagePurpose::KeyEncipherment);
    }
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    if spec.server_auth {
        p.extended_key_usages
            .push(ExtendedKeyUsagePurpose::ServerAuth);
    }
    let urn = rcgen::string::Ia5String::try_from(spec.device.urn())
        .map_err(|_| CaError::Encoding("device URN is not IA5".into()))?;
    p.subject_alt_names = vec![SanType::URI(urn)];
    p.use_authority_key_identifier_extension = true;
    if let Some(url) = spec.crl_url {
        p.crl_distribution_points = vec![CrlDistributionPoint {
            uris: vec![url.to_owned()],
        }];
    }
    if let Some(url) = spec.ocsp_url {
        p.custom_extensions.push(aia_ocsp(url)?);
    }
    Ok(p)
}

/// Facts read back from a DER certificate.
pub(crate) struct CertFacts {
    pub serial: CertSerial,
    pub spki_der: Vec<u8>,
    pub public_key: Vec<u8>,
    pub not_after: OffsetDateTime,
    pub is_ca: bool,
    pub subject: String,
}

pub(crate) fn cert_facts(der: &[u8]) -> Result<CertFacts, CaError> {
    use x509_parser::prelude::FromDer;
    let (rest, c) = x509_parser::certificate::X509Certificate::from_der(der)
        .map_err(|e| CaError::Import(format!("not a DER X.509 certificate: {e}")))?;
    if !rest.is_empty() {
        return Err(CaError::Import(
            "trailing bytes after the certificate".into(),
        ));
    }
    let tbs = &c.tbs_certificate;
    let ts = |t: x509_parser::time::ASN1Time| t.to_datetime();
    Ok(CertFacts {
        serial: CertSerial::from_bytes(tbs.raw_serial())?,
        spki_der: tbs.subject_pki.raw.to_vec(),
        public_key: tbs.subject_pki.subject_public_key.data.to_vec(),
        not_after: ts(tbs.validity.not_after),
        is_ca: c.is_ca(),
        subject: tbs.subject.to_string(),
    })
}
