//! CSR intake: parse a PKCS#10 request, verify its signature, and classify its key from the
//! SubjectPublicKeyInfo itself.
//!
//! Nothing in a CSR except the public key reaches a certificate. Requested extensions are read
//! only to refuse requests that ask to be a CA, so a confused or malicious requester gets a
//! clear answer instead of a silently different certificate.

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use medsec_core::KeyAlgorithm;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::der_parser::oid;
use x509_parser::der_parser::oid::Oid;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

use crate::CaError;

/// A CSR whose signature verified and whose key is of a known type.
#[derive(Debug, Clone)]
pub struct VerifiedCsr {
    /// DER SubjectPublicKeyInfo, exactly as in the request.
    pub spki_der: Vec<u8>,
    pub key_algorithm: KeyAlgorithm,
    /// The requested subject, for logs only; certificates take their subject from the profile.
    pub requested_subject: String,
    /// DER of the requested subject, compared on re-enrollment (RFC 7030 4.2.2).
    pub subject_der: Vec<u8>,
}

/// Upper bound on a CSR; real ones are well under 4 KiB even with RSA-4096.
const MAX_CSR_BYTES: usize = 64 * 1024;

fn err(m: impl Into<String>) -> CaError {
    CaError::Csr(m.into())
}

/// Accepts PEM (`CERTIFICATE REQUEST` / `NEW CERTIFICATE REQUEST`) or DER.
pub fn parse_and_verify_csr(input: &[u8]) -> Result<VerifiedCsr, CaError> {
    if input.len() > MAX_CSR_BYTES {
        return Err(err(format!("larger than {MAX_CSR_BYTES} bytes")));
    }
    let der = if input.trim_ascii_start().starts_with(b"-----BEGIN") {
        let p = pem::parse(input).map_err(|e| err(format!("not valid PEM: {e}")))?;
        if p.tag() != "CERTIFICATE REQUEST" && p.tag() != "NEW CERTIFICATE REQUEST" {
            return Err(err(format!(
                "PEM block is {:?}, expected CERTIFICATE REQUEST",
                p.tag()
            )));
        }
        p.into_contents()
    } else {
        input.to_vec()
    };
    let (rest, csr) = X509CertificationRequest::from_der(&der)
        .map_err(|e| err(format!("not a DER PKCS#10 request: {e}")))?;
    if !rest.is_empty() {
        return Err(err("trailing bytes after the request"));
    }
    let info = &csr.certification_request_info;
    let spki = &info.subject_pki;
    let key_bits: &[u8] = &spki.subject_public_key.data;
    let key_algorithm = classify_key(spki)?;

    let sig_oid = &csr.signature_algorithm.algorithm;
    let verifier = verification_algorithm(key_algorithm, sig_oid)?;
    UnparsedPublicKey::new(verifier, key_bits)
        .verify(info.raw, &csr.signature_value.data)
        .map_err(|_| {
            err("signature does not verify: the request was altered or not signed by its key")
        })?;

    if let Some(exts) = csr.requested_extensions() {
        for ext in exts {
            match ext {
                ParsedExtension::BasicConstraints(bc) if bc.ca => {
                    return Err(err(
                        "requests CA:TRUE in basicConstraints; device certificates are never CAs",
                    ));
                }
                ParsedExtension::KeyUsage(ku) if ku.key_cert_sign() || ku.crl_sign() => {
                    return Err(err(
                        "requests keyCertSign/cRLSign key usage; device certificates cannot sign certificates",
                    ));
                }
                _ => {}
            }
        }
    }
    Ok(VerifiedCsr {
        spki_der: spki.raw.to_vec(),
        key_algorithm,
        requested_subject: info.subject.to_string(),
        subject_der: info.subject.as_raw().to_vec(),
    })
}

const OID_EC_PUBLIC_KEY: Oid<'static> = oid!(1.2.840.10045.2.1);
const OID_P256: Oid<'static> = oid!(1.2.840.10045.3.1.7);
const OID_P384: Oid<'static> = oid!(1.3.132.0.34);
const OID_ED25519: Oid<'static> = oid!(1.3.101.112);
const OID_RSA: Oid<'static> = oid!(1.2.840.113549.1.1.1);
const OID_ECDSA_SHA256: Oid<'static> = oid!(1.2.840.10045.4.3.2);
const OID_ECDSA_SHA384: Oid<'static> = oid!(1.2.840.10045.4.3.3);
const OID_ECDSA_SHA512: Oid<'static> = oid!(1.2.840.10045.4.3.4);
const OID_RSA_SHA256: Oid<'static> = oid!(1.2.840.113549.1.1.11);
const OID_RSA_SHA384: Oid<'static> = oid!(1.2.840.113549.1.1.12);
const OID_RSA_SHA512: Oid<'static> = oid!(1.2.840.113549.1.1.13);

/// Classifies a DER SubjectPublicKeyInfo as [`parse_and_verify_csr`] does (`spki_der` of a
/// [`VerifiedCsr`] classifies to its `key_algorithm`; the fuzz targets check that).
pub fn classify_spki_der(spki_der: &[u8]) -> Result<KeyAlgorithm, CaError> {
    let (rest, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki_der)
        .map_err(|e| err(format!("not a DER SubjectPublicKeyInfo: {e}")))?;
    if !rest.is_empty() {
        return Err(err("trailing bytes after the SubjectPublicKeyInfo"));
    }
    classify_key(&spki)
}

/// Decides the key type from the SPKI (algorithm OID, curve and size), never from the
/// signature algorithm.
pub(crate) fn classify_key(
    spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>,
) -> Result<KeyAlgorithm, CaError> {
    let alg = &spki.algorithm.algorithm;
    let bits: &[u8] = &spki.subject_public_key.data;
    if *alg == OID_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .ok_or_else(|| err("EC key without a named curve"))?;
        let (ka, len) = if curve == OID_P256 {
            (KeyAlgorithm::EcdsaP256, 65)
        } else if curve == OID_P384 {
            (KeyAlgorithm::EcdsaP384, 97)
        } else {
            return Err(err(format!(
                "EC curve {curve} is not supported (P-256 or P-384)"
            )));
        };
        if bits.len() != len || bits[0] != 0x04 {
            return Err(err(
                "EC public key must be an uncompressed point of the curve's size",
            ));
        }
        return Ok(ka);
    }
    if *alg == OID_ED25519 {
        if spki.algorithm.parameters.is_some() || bits.len() != 32 {
            return Err(err("malformed Ed25519 public key"));
        }
        return Ok(KeyAlgorithm::Ed25519);
    }
    if *alg == OID_RSA {
        let Ok(PublicKey::RSA(rsa)) = spki.parsed() else {
            return Err(err("malformed RSA public key"));
        };
        let m = rsa.modulus;
        let first = m.iter().position(|&b| b != 0).unwrap_or(m.len());
        let m = &m[first..];
        let nbits = if m.is_empty() {
            0
        } else {
            m.len() * 8 - m[0].leading_zeros() as usize
        };
        return KeyAlgorithm::from_rsa_bits(nbits).ok_or_else(|| {
            err(format!(
                "RSA modulus of {nbits} bits; only 2048, 3072 and 4096 are accepted"
            ))
        });
    }
    Err(err(format!("public key algorithm {alg} is not supported")))
}

fn verification_algorithm(
    key: KeyAlgorithm,
    sig: &Oid<'_>,
) -> Result<&'static dyn VerificationAlgorithm, CaError> {
    use KeyAlgorithm::*;
    let v: &'static dyn VerificationAlgorithm = match key {
        EcdsaP256 if *sig == OID_ECDSA_SHA256 => &signature::ECDSA_P256_SHA256_ASN1,
        EcdsaP256 if *sig == OID_ECDSA_SHA384 => &signature::ECDSA_P256_SHA384_ASN1,
        EcdsaP256 if *sig == OID_ECDSA_SHA512 => &signature::ECDSA_P256_SHA512_ASN1,
        EcdsaP384 if *sig == OID_ECDSA_SHA256 => &signature::ECDSA_P384_SHA256_ASN1,
        EcdsaP384 if *sig == OID_ECDSA_SHA384 => &signature::ECDSA_P384_SHA384_ASN1,
        EcdsaP384 if *sig == OID_ECDSA_SHA512 => &signature::ECDSA_P384_SHA512_ASN1,
        Ed25519 if *sig == OID_ED25519 => &signature::ED25519,
        Rsa2048 | Rsa3072 | Rsa4096 if *sig == OID_RSA_SHA256 => {
            &signature::RSA_PKCS1_2048_8192_SHA256
        }
        Rsa2048 | Rsa3072 | Rsa4096 if *sig == OID_RSA_SHA384 => {
            &signature::RSA_PKCS1_2048_8192_SHA384
        }
        Rsa2048 | Rsa3072 | Rsa4096 if *sig == OID_RSA_SHA512 => {
            &signature::RSA_PKCS1_2048_8192_SHA512
        }
        _ => {
            return Err(err(format!(
                "signature algorithm {sig} does not match a {key} key or is not supported"
            )));
        }
    };
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csr_pem(alg: &'static rcgen::SignatureAlgorithm, ca: bool) -> String {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
        if ca {
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        }
        params.serialize_request(&key).unwrap().pem().unwrap()
    }

    #[test]
    fn accepts_supported_keys() {
        for (alg, want) in [
            (&rcgen::PKCS_ECDSA_P256_SHA256, KeyAlgorithm::EcdsaP256),
            (&rcgen::PKCS_ECDSA_P384_SHA384, KeyAlgorithm::EcdsaP384),
            (&rcgen::PKCS_ED25519, KeyAlgorithm::Ed25519),
        ] {
            let v = parse_and_verify_csr(csr_pem(alg, false).as_bytes()).unwrap();
            assert_eq!(v.key_algorithm, want);
        }
    }

    #[test]
    fn refuses_ca_request_garbage_and_tampering() {
        let e = parse_and_verify_csr(csr_pem(&rcgen::PKCS_ECDSA_P256_SHA256, true).as_bytes());
        assert!(e.unwrap_err().to_string().contains("CA:TRUE"));
        assert!(parse_and_verify_csr(b"garbage").is_err());
        assert!(
            parse_and_verify_csr(
                b"-----BEGIN CERTIFICATE REQUEST-----\n!!\n-----END CERTIFICATE REQUEST-----\n"
            )
            .is_err()
        );

        let pem = csr_pem(&rcgen::PKCS_ECDSA_P256_SHA256, false);
        let mut der = pem::parse(&pem).unwrap().into_contents();
        // Flip a bit inside the signed info (the subject key bytes sit near the end of it).
        let n = der.len();
        der[n - 90] ^= 0x01;
        let e = parse_and_verify_csr(&der).unwrap_err().to_string();
        assert!(e.contains("CSR rejected"), "{e}");
    }
}
