//! PKI targets: PKCS#10 CSRs (DER and PEM, as `medsec_ca::parse_and_verify_csr` takes them),
//! EST request bodies (base64, decoded as the EST handler does) and OCSP requests (parsed and
//! answered by `medsec_ca::OcspResponder` for a fixed test CA).

use std::sync::{Arc, OnceLock};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use der::{Decode, Encode};
use medsec_ca::{CertStatus, OcspResponder, OcspStatusSource, Revocation, VerifiedCsr};
use medsec_core::{CertSerial, Name, RevocationReason};
use medsec_keys::{KeyRef, Signer, SoftwareSigner};
use x509_ocsp::{BasicOcspResponse, OcspRequest, OcspResponse, OcspResponseStatus};

use crate::contains;

/// `crates/fuzz/data/ocsp-ca.*`: a P-256 test CA made for these targets only (the seeds in
/// `corpus/ocsp_request/` ask about it, so they reach the answering code).
const OCSP_CA_KEY: &[u8] = include_bytes!("../data/ocsp-ca.pk8");
const OCSP_CA_CERT: &[u8] = include_bytes!("../data/ocsp-ca.der");

/// Checks an accepted CSR against the DER it came from.
fn check_csr(der: &[u8], v: &VerifiedCsr) {
    let alg = medsec_ca::classify_spki_der(&v.spki_der)
        .expect("the SPKI of an accepted CSR classifies on its own");
    assert_eq!(
        alg, v.key_algorithm,
        "key type from the SPKI differs from the CSR's"
    );
    assert!(
        contains(der, &v.spki_der),
        "spki_der is not the request's own bytes"
    );
    assert!(
        contains(der, &v.subject_der),
        "subject_der is not the request's own bytes"
    );
}

fn same(a: &VerifiedCsr, b: &VerifiedCsr) -> bool {
    a.spki_der == b.spki_der
        && a.key_algorithm == b.key_algorithm
        && a.subject_der == b.subject_der
        && a.requested_subject == b.requested_subject
}

/// A CSR as DER or PEM. Accepted requests: the key type is the SPKI's, the SPKI and subject
/// are the request's bytes, and the same request in the other encoding gives the same answer.
pub fn csr(data: &[u8]) {
    let Ok(v) = medsec_ca::parse_and_verify_csr(data) else {
        return;
    };
    let der = if data.trim_ascii_start().starts_with(b"-----BEGIN") {
        pem::parse(data)
            .expect("an accepted PEM CSR is PEM")
            .into_contents()
    } else {
        data.to_vec()
    };
    check_csr(&der, &v);
    if der.len() > 40 * 1024 {
        // Its PEM would pass the 64 KiB input bound; no real CSR comes near.
        return;
    }
    let again = if der.as_slice() == data {
        let p = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der.clone()));
        medsec_ca::parse_and_verify_csr(p.as_bytes())
    } else {
        medsec_ca::parse_and_verify_csr(&der)
    }
    .expect("the same CSR in the other encoding is refused");
    assert!(same(&v, &again), "PEM and DER of one CSR disagree");
}

/// An EST `simpleenroll` / `simplereenroll` body: base64 with line breaks, decoded by
/// `medsec_server::request_bodies::decode_csr_body`, then the CSR intake.
pub fn est_csr_body(data: &[u8]) {
    let decode = medsec_server::request_bodies::decode_csr_body;
    let Ok(der) = decode(data) else {
        return;
    };
    // Line breaks anywhere do not change the decoded bytes (RFC 7030 bodies wrap at 64).
    let enc = B64.encode(&der);
    let wrapped: Vec<u8> = enc
        .as_bytes()
        .chunks(64)
        .flat_map(|c| c.iter().copied().chain(*b"\r\n"))
        .collect();
    assert_eq!(
        decode(&wrapped).expect("re-encoded body"),
        der,
        "base64 round trip"
    );
    if let Ok(v) = medsec_ca::parse_and_verify_csr(&der) {
        check_csr(&der, &v);
    }
}

struct Fixture {
    responder: OcspResponder,
    public_key: Vec<u8>,
}

fn ocsp_fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let key_ref: KeyRef = "file:fuzz-ocsp-ca".parse().expect("key ref");
        let signer =
            SoftwareSigner::from_pkcs8(key_ref, medsec_core::KeyAlgorithm::EcdsaP256, OCSP_CA_KEY)
                .expect("test CA key");
        let public_key = signer.public_key().to_vec();
        let responder = OcspResponder::for_ca(
            time::Duration::hours(1),
            Name::parse("fuzz-ca").expect("name"),
            OCSP_CA_CERT,
            Arc::new(signer),
        )
        .expect("test CA");
        Fixture {
            responder,
            public_key,
        }
    })
}

/// Answers good, revoked or unknown by the serial's last byte, so all three are encoded.
struct ByLastByte;

impl OcspStatusSource for ByLastByte {
    fn status(&self, _issuer: &Name, serial: &CertSerial) -> Option<CertStatus> {
        match serial.as_bytes().last().copied().unwrap_or(0) % 3 {
            0 => Some(CertStatus::Valid),
            1 => Some(CertStatus::Revoked(Revocation {
                reason: RevocationReason::KeyCompromise,
                revoked_at: time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000),
                invalidity_date: None,
            })),
            _ => None,
        }
    }
}

/// A DER OCSP request. Refused ones get a parseable error response; accepted ones yield
/// 1..=10 CertIDs (those of the request, in order) and a nonce of 1..=32 octets, and their
/// signed response answers exactly those CertIDs, echoes the nonce and verifies under the CA key.
pub fn ocsp_request(data: &[u8]) {
    let f = ocsp_fixture();
    let parsed = match f.responder.parse(data) {
        Ok(p) => p,
        Err(resp) => {
            let r = OcspResponse::from_der(&resp).expect("error responses are DER OCSPResponses");
            assert_ne!(r.response_status, OcspResponseStatus::Successful);
            assert!(r.response_bytes.is_none());
            return;
        }
    };
    let ids: Vec<_> = parsed.cert_ids().collect();
    assert!(
        (1..=medsec_ca::MAX_CERTS_PER_REQUEST).contains(&ids.len()),
        "{} CertIDs accepted",
        ids.len()
    );
    assert!(
        ids.iter().any(|(_, ours)| *ours),
        "accepted a request about no CA of ours"
    );
    let req = OcspRequest::from_der(data).expect("an accepted request decodes");
    let asked: Vec<_> = req
        .tbs_request
        .request_list
        .iter()
        .map(|r| &r.req_cert)
        .collect();
    assert_eq!(
        ids.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        asked,
        "CertIDs differ from the request's"
    );
    let lookups = parsed.lookups(&f.responder).count();
    assert_eq!(lookups, ids.iter().filter(|(_, ours)| *ours).count());
    if let Some(n) = parsed.nonce() {
        let inner = der::asn1::OctetString::from_der(n).expect("nonce is an OCTET STRING");
        assert!((1..=32).contains(&inner.as_bytes().len()), "nonce length");
    }

    let now = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_500);
    let resp = f.responder.respond(&parsed, &ByLastByte, now);
    let r = OcspResponse::from_der(&resp).expect("responses are DER");
    assert_eq!(r.response_status, OcspResponseStatus::Successful);
    let bytes = r.response_bytes.expect("a successful response has a body");
    let basic = BasicOcspResponse::from_der(bytes.response.as_bytes()).expect("basic response");
    let answered: Vec<_> = basic
        .tbs_response_data
        .responses
        .iter()
        .map(|s| &s.cert_id)
        .collect();
    assert_eq!(answered, asked, "the response answers other CertIDs");
    let echoed = basic
        .tbs_response_data
        .response_extensions
        .as_ref()
        .and_then(|e| e.first())
        .map(|e| e.extn_value.as_bytes());
    assert_eq!(echoed, parsed.nonce(), "nonce not echoed");
    let tbs = basic.tbs_response_data.to_der().expect("re-encode tbs");
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
        &f.public_key,
    )
    .verify(&tbs, basic.signature.raw_bytes())
    .expect("the response's signature verifies under the CA key");
}
