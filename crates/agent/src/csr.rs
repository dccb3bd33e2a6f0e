//! PKCS#10 requests built directly in DER.
//!
//! Re-enrollment (RFC 7030 4.2.2) requires the CSR subject to equal the current certificate's
//! subject byte for byte. rcgen can only build a subject from its own `DistinguishedName`,
//! which re-encodes (and cannot hold two attributes of one type), so the request is assembled
//! here around the subject DER copied from the certificate. The structure is small and fixed:
//!
//! ```text
//! CertificationRequest ::= SEQUENCE { certificationRequestInfo, signatureAlgorithm, signature BIT STRING }
//! CertificationRequestInfo ::= SEQUENCE { version INTEGER (0), subject Name,
//!                                         subjectPKInfo SubjectPublicKeyInfo, attributes [0] SET OF {} }
//! ```
//!
//! No attributes are sent: the CA takes nothing from a CSR but the public key.
//!
//! Building the bytes here also means the signature is one call to the device key's
//! `medsec_keys::Signer`, which is all a key inside a PKCS#11 token can offer.

use crate::AgentError;
use crate::keys::DeviceKey;

/// DER tag-length-value.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const UTF8_STRING: u8 = 0x0c;
const BIT_STRING: u8 = 0x03;
const CONTEXT_0_CONSTRUCTED: u8 = 0xa0;
/// commonName, 2.5.4.3.
const OID_CN: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x03];

/// DER `Name` holding one commonName (UTF8String). Used for first enrollment, where the CA
/// ignores the requested subject; the CN just makes the request readable in logs.
pub(crate) fn cn_subject(cn: &str) -> Vec<u8> {
    let mut atv = OID_CN.to_vec();
    atv.extend(tlv(UTF8_STRING, cn.as_bytes()));
    tlv(SEQUENCE, &tlv(SET, &tlv(SEQUENCE, &atv)))
}

/// A signed DER PKCS#10 request for `key` with `subject_der` copied verbatim.
pub(crate) fn build(key: &DeviceKey, subject_der: &[u8]) -> Result<Vec<u8>, AgentError> {
    if subject_der.first() != Some(&SEQUENCE) {
        return Err(AgentError::Key(
            "the CSR subject is not a DER Name (SEQUENCE)".into(),
        ));
    }
    let mut info = vec![0x02, 0x01, 0x00]; // version INTEGER 0 (v1)
    info.extend_from_slice(subject_der);
    info.extend(key.spki_der());
    info.extend(tlv(CONTEXT_0_CONSTRUCTED, &[]));
    let info = tlv(SEQUENCE, &info);
    let sig = key.sign(&info)?;
    let mut bits = Vec::with_capacity(sig.len() + 1);
    bits.push(0); // no unused bits
    bits.extend(sig);
    let mut body = info;
    body.extend_from_slice(key.signature_algorithm_der());
    body.extend(tlv(BIT_STRING, &bits));
    Ok(tlv(SEQUENCE, &body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SUPPORTED;

    #[test]
    fn length_encoding() {
        assert_eq!(tlv(4, &[0; 5])[..2], [4, 5]);
        assert_eq!(tlv(4, &[0; 0x7f])[..2], [4, 0x7f]);
        assert_eq!(tlv(4, &[0; 0x80])[..3], [4, 0x81, 0x80]);
        assert_eq!(tlv(4, &[0; 0x1234])[..4], [4, 0x82, 0x12, 0x34]);
    }

    /// The CA's own intake (signature check, key classification) accepts what we build, and
    /// the subject comes through byte for byte.
    #[test]
    fn ca_accepts_our_csrs_and_sees_our_subject() {
        // A subject like the CA issues (O, CN, serialNumber as PrintableString), and a long
        // one that needs multi-byte lengths.
        let issued_style = rcgen::CertificateParams::new(Vec::<String>::new())
            .map(|mut p| {
                p.distinguished_name
                    .push(rcgen::DnType::OrganizationName, "Acme Medical");
                p.distinguished_name
                    .push(rcgen::DnType::CommonName, "demo-device-SN1");
                p
            })
            .unwrap();
        let k = DeviceKey::generate(medsec_core::KeyAlgorithm::EcdsaP256).unwrap();
        let cert = issued_style.self_signed(&key_pair(&k)).unwrap();
        let from_cert = crate::state::CertInfo::parse(cert.der())
            .unwrap()
            .subject_der;
        let long = cn_subject(&"x".repeat(300));
        for subject in [cn_subject("SN-1"), from_cert, long] {
            for alg in SUPPORTED {
                let k = DeviceKey::generate(alg).unwrap();
                let der = build(&k, &subject).unwrap();
                let v = medsec_ca::parse_and_verify_csr(&der).unwrap();
                assert_eq!(v.subject_der, subject);
                assert_eq!(v.key_algorithm, alg);
                assert_eq!(v.spki_der, k.spki_der());
            }
        }
    }

    #[test]
    fn a_non_name_subject_is_refused() {
        let k = DeviceKey::generate(medsec_core::KeyAlgorithm::EcdsaP256).unwrap();
        assert!(build(&k, &[0x04, 0x00]).is_err());
        assert!(build(&k, &[]).is_err());
    }

    fn key_pair(k: &DeviceKey) -> rcgen::KeyPair {
        rcgen::KeyPair::from_pem(&k.to_pem().unwrap()).unwrap()
    }
}
