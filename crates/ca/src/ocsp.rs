//! OCSP (RFC 6960) responses signed by the issuing CA itself, for DER requests.
//!
//! Split in two so that lookups can be asynchronous: [`OcspResponder::parse`] turns a request
//! into the (CA, serial) pairs to look up; [`OcspResponder::respond`] signs the answer. Any
//! request that cannot be answered still gets a DER `OCSPResponse`, with an error status.

use std::time::Duration;

use der::asn1::{BitString, GeneralizedTime, ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use medsec_core::{CertSerial, KeyAlgorithm, Name, RevocationReason};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};
use time::OffsetDateTime;
use x509_cert::Certificate;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::CrlReason;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus as OcspCertStatus, OcspGeneralizedTime, OcspRequest,
    OcspResponse, OcspResponseStatus, ResponderId, ResponseBytes, ResponseData, RevokedInfo,
    SingleResponse, Version,
};

use crate::model::CertStatus;
use crate::signing::{CaKey, signature_algorithm_id};

const OID_NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");
const OID_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
const OID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const OID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const OID_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const OID_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");

/// Requests larger than this, or asking about more certificates, are refused as malformed:
/// a device asks about one certificate, maybe its chain.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;
pub const MAX_CERTS_PER_REQUEST: usize = 10;
/// RFC 8954: a nonce is 1 to 32 octets.
const MAX_NONCE: usize = 32;

/// Where the responder learns a certificate's status.
pub trait OcspStatusSource {
    /// `None` when `issuer` never issued `serial`.
    fn status(&self, issuer: &Name, serial: &CertSerial) -> Option<CertStatus>;
}

struct Hashes {
    name: Vec<u8>,
    key: Vec<u8>,
}

/// One CA the responder answers for.
struct ResponderCa {
    name: Name,
    cert: Certificate,
    key: CaKey,
    sha1_key_hash: Vec<u8>,
    by_alg: Vec<(ObjectIdentifier, Hashes)>,
}

/// Signs OCSP responses for a set of CAs whose keys it holds.
pub struct OcspResponder {
    cas: Vec<ResponderCa>,
    validity: time::Duration,
}

/// A parsed request: which certificates it asks about, and the nonce to echo.
pub struct ParsedRequest {
    /// For each single request: its CertID and, when it names one of our CAs, that CA's index
    /// and the serial.
    items: Vec<(CertId, Option<(usize, CertSerial)>)>,
    nonce: Option<Extension>,
}

impl ParsedRequest {
    /// The `(CA name, serial)` pairs whose status the caller must look up.
    pub fn lookups<'a>(
        &'a self,
        r: &'a OcspResponder,
    ) -> impl Iterator<Item = (&'a Name, &'a CertSerial)> + 'a {
        self.items
            .iter()
            .filter_map(|(_, m)| m.as_ref().map(|(i, s)| (&r.cas[*i].name, s)))
    }

    /// Every CertID of the request, in request order, with whether it names one of the
    /// responder's CAs (and a serial it can look up).
    pub fn cert_ids(&self) -> impl Iterator<Item = (&CertId, bool)> + '_ {
        self.items.iter().map(|(id, m)| (id, m.is_some()))
    }

    /// The nonce the response will echo (the extension's OCTET STRING contents), if any.
    pub fn nonce(&self) -> Option<&[u8]> {
        self.nonce.as_ref().map(|e| e.extn_value.as_bytes())
    }
}

fn digest(oid: &ObjectIdentifier, data: &[u8]) -> Vec<u8> {
    match *oid {
        OID_SHA1 => Sha1::digest(data).to_vec(),
        OID_SHA256 => Sha256::digest(data).to_vec(),
        OID_SHA384 => Sha384::digest(data).to_vec(),
        _ => Sha512::digest(data).to_vec(),
    }
}

/// An OCSP response carrying only an error status.
pub fn error_response(status: OcspResponseStatus) -> Vec<u8> {
    OcspResponse {
        response_status: status,
        response_bytes: None,
    }
    .to_der()
    // Encoding a two-field SEQUENCE with no payload cannot fail; keep a valid fallback anyway.
    .unwrap_or_else(|_| vec![0x30, 0x03, 0x0a, 0x01, status as u8])
}

fn to_gt(t: OffsetDateTime) -> Result<OcspGeneralizedTime, der::Error> {
    let secs = t.unix_timestamp().max(0) as u64;
    Ok(OcspGeneralizedTime(GeneralizedTime::from_unix_duration(
        Duration::from_secs(secs),
    )?))
}

fn ocsp_reason(r: RevocationReason) -> CrlReason {
    match r {
        RevocationReason::KeyCompromise => CrlReason::KeyCompromise,
        RevocationReason::CaCompromise => CrlReason::CaCompromise,
        RevocationReason::AffiliationChanged => CrlReason::AffiliationChanged,
        RevocationReason::Superseded => CrlReason::Superseded,
        RevocationReason::CessationOfOperation => CrlReason::CessationOfOperation,
        RevocationReason::CertificateHold => CrlReason::CertificateHold,
        RevocationReason::PrivilegeWithdrawn => CrlReason::PrivilegeWithdrawn,
        RevocationReason::AaCompromise => CrlReason::AaCompromise,
        _ => CrlReason::Unspecified,
    }
}

impl OcspResponder {
    /// `validity` is how long a response may be cached (thisUpdate to nextUpdate).
    pub(crate) fn new(validity: time::Duration) -> Self {
        OcspResponder {
            cas: Vec::new(),
            validity,
        }
    }

    /// A responder for one CA whose key `signer` holds, for callers outside the CA service
    /// (the fuzz targets of `medsec-fuzz` parse and answer requests with it).
    pub fn for_ca(
        validity: time::Duration,
        name: Name,
        cert_der: &[u8],
        signer: std::sync::Arc<dyn medsec_keys::Signer>,
    ) -> Result<Self, crate::CaError> {
        let mut r = Self::new(validity);
        r.add_ca(name, cert_der, CaKey::new(signer)?)?;
        Ok(r)
    }

    pub(crate) fn add_ca(
        &mut self,
        name: Name,
        cert_der: &[u8],
        key: CaKey,
    ) -> Result<(), crate::CaError> {
        let cert = Certificate::from_der(cert_der)?;
        let name_der = cert.tbs_certificate.subject.to_der()?;
        let key_bits = cert
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes()
            .to_vec();
        let by_alg = [OID_SHA1, OID_SHA256, OID_SHA384, OID_SHA512]
            .into_iter()
            .map(|oid| {
                let h = Hashes {
                    name: digest(&oid, &name_der),
                    key: digest(&oid, &key_bits),
                };
                (oid, h)
            })
            .collect();
        self.cas.push(ResponderCa {
            name,
            cert,
            key,
            sha1_key_hash: Sha1::digest(&key_bits).to_vec(),
            by_alg,
        });
        Ok(())
    }

    /// Parses a DER request. On failure returns the error response to send.
    pub fn parse(&self, der: &[u8]) -> Result<ParsedRequest, Vec<u8>> {
        let malformed = || error_response(OcspResponseStatus::MalformedRequest);
        if der.len() > MAX_REQUEST_BYTES {
            return Err(malformed());
        }
        let req = OcspRequest::from_der(der).map_err(|_| malformed())?;
        let list = &req.tbs_request.request_list;
        if list.is_empty() || list.len() > MAX_CERTS_PER_REQUEST {
            return Err(malformed());
        }
        let nonce = match &req.tbs_request.request_extensions {
            Some(exts) => match exts.iter().find(|e| e.extn_id == OID_NONCE) {
                Some(e) => {
                    // The extension value is an OCTET STRING holding the nonce.
                    let inner =
                        OctetString::from_der(e.extn_value.as_bytes()).map_err(|_| malformed())?;
                    if inner.as_bytes().is_empty() || inner.as_bytes().len() > MAX_NONCE {
                        return Err(malformed());
                    }
                    Some(e.clone())
                }
                None => None,
            },
            None => None,
        };
        let mut items = Vec::with_capacity(list.len());
        for r in list {
            let id = &r.req_cert;
            let m = self.cas.iter().enumerate().find_map(|(i, ca)| {
                let (_, h) = ca
                    .by_alg
                    .iter()
                    .find(|(o, _)| *o == id.hash_algorithm.oid)?;
                (h.name == id.issuer_name_hash.as_bytes() && h.key == id.issuer_key_hash.as_bytes())
                    .then_some(i)
            });
            let m = match m {
                Some(i) => match CertSerial::from_bytes(id.serial_number.as_bytes()) {
                    Ok(s) => Some((i, s)),
                    Err(_) => None,
                },
                None => None,
            };
            items.push((id.clone(), m));
        }
        if items.iter().all(|(_, m)| m.is_none()) {
            // None of the certificates are from a CA we answer for.
            return Err(error_response(OcspResponseStatus::Unauthorized));
        }
        Ok(ParsedRequest { items, nonce })
    }

    /// Signs a response for a parsed request; `source` gives each certificate's status.
    /// The response is signed by the CA of the first certificate we know; entries for other
    /// CAs in the same request are answered `unknown`, since one signature covers them all.
    pub fn respond(
        &self,
        req: &ParsedRequest,
        source: &dyn OcspStatusSource,
        now: OffsetDateTime,
    ) -> Vec<u8> {
        self.try_respond(req, source, now)
            .unwrap_or_else(|_| error_response(OcspResponseStatus::InternalError))
    }

    fn try_respond(
        &self,
        req: &ParsedRequest,
        source: &dyn OcspStatusSource,
        now: OffsetDateTime,
    ) -> Result<Vec<u8>, crate::CaError> {
        let Some(signer_idx) = req
            .items
            .iter()
            .find_map(|(_, m)| m.as_ref().map(|(i, _)| *i))
        else {
            return Ok(error_response(OcspResponseStatus::Unauthorized));
        };
        let ca = &self.cas[signer_idx];
        let this_update = to_gt(now)?;
        let next_update = to_gt(now + self.validity)?;
        let mut responses = Vec::with_capacity(req.items.len());
        for (id, m) in &req.items {
            let status = match m {
                Some((i, serial)) if *i == signer_idx => match source.status(&ca.name, serial) {
                    Some(CertStatus::Valid) => OcspCertStatus::good(),
                    Some(CertStatus::Revoked(rev)) => OcspCertStatus::Revoked(RevokedInfo {
                        revocation_time: to_gt(rev.revoked_at)?,
                        revocation_reason: Some(ocsp_reason(rev.reason)),
                    }),
                    None => OcspCertStatus::unknown(),
                },
                _ => OcspCertStatus::unknown(),
            };
            responses.push(SingleResponse {
                cert_id: id.clone(),
                cert_status: status,
                this_update,
                next_update: Some(next_update),
                single_extensions: None,
            });
        }
        let tbs = ResponseData {
            version: Version::V1,
            responder_id: ResponderId::ByKey(OctetString::new(ca.sha1_key_hash.clone())?),
            produced_at: this_update,
            responses,
            response_extensions: req.nonce.clone().map(|n| vec![n]),
        };
        let tbs_der = tbs.to_der()?;
        let sig = ca.key.signer().sign(&tbs_der)?;
        let alg: KeyAlgorithm = ca.key.signer().algorithm();
        let signature_algorithm = signature_algorithm_id(alg)
            .ok_or_else(|| crate::CaError::Config(format!("{alg} cannot sign OCSP")))?;
        let basic = BasicOcspResponse {
            tbs_response_data: tbs,
            signature_algorithm,
            signature: BitString::from_bytes(&sig)?,
            certs: Some(vec![ca.cert.clone()]),
        };
        let resp = OcspResponse {
            response_status: OcspResponseStatus::Successful,
            response_bytes: Some(ResponseBytes {
                response_type: OID_BASIC,
                response: OctetString::new(basic.to_der()?)?,
            }),
        };
        Ok(resp.to_der()?)
    }
}
