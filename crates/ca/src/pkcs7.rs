//! PKCS#7 / CMS "certs-only" messages (RFC 5652 SignedData without signers), the format EST
//! (RFC 7030) uses to return certificates.

use cms::cert::CertificateChoices;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{CertificateSet, EncapsulatedContentInfo, SignedData, SignerInfos};
use der::asn1::{ObjectIdentifier, SetOfVec};
use der::{Any, Decode, Encode};
use x509_cert::Certificate;

use crate::CaError;

const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");

/// DER of a certs-only SignedData carrying `certs` (each DER).
pub fn certs_only(certs: &[&[u8]]) -> Result<Vec<u8>, CaError> {
    let mut set = SetOfVec::new();
    for der in certs {
        set.insert(CertificateChoices::Certificate(Certificate::from_der(der)?))?;
    }
    let sd = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::new(),
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent: None,
        },
        certificates: Some(CertificateSet(set)),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::new()),
    };
    let ci = ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(&sd)?,
    };
    Ok(ci.to_der()?)
}

/// The certificates inside a certs-only message (for clients and tests).
pub fn parse_certs_only(der: &[u8]) -> Result<Vec<Vec<u8>>, CaError> {
    let ci = ContentInfo::from_der(der)?;
    if ci.content_type != ID_SIGNED_DATA {
        return Err(CaError::Encoding("not a CMS SignedData".into()));
    }
    let sd: SignedData = ci.content.decode_as()?;
    let mut out = Vec::new();
    for c in sd.certificates.map(|s| s.0.into_vec()).unwrap_or_default() {
        if let CertificateChoices::Certificate(c) = c {
            out.push(c.to_der()?);
        }
    }
    Ok(out)
}
