//! CRL encoding (RFC 5280 section 5) for one CA, whole or partitioned into shards.
//!
//! A large fleet's CRL grows with every revocation, and every relying party downloads all of
//! it. A CA with `crl_shards = N > 1` instead assigns each certificate at issuance to one of N
//! shards (from its serial, see [`crl_shard_of`]), writes that shard's URL into the
//! certificate's CRL distribution point, and publishes one CRL per shard listing only that
//! shard's revoked certificates. Each shard CRL carries a critical Issuing Distribution Point
//! (RFC 5280 5.2.5) naming exactly that URL, so a relying party can tell that a shard CRL
//! covers the certificate it is checking (and refuses one for another shard).
//!
//! Shard numbers: 0 is the whole CA (the only CRL of an unsharded CA, no IDP, byte-compatible
//! with CRLs from before sharding existed); a sharded CA's shards are 1..=N.

use medsec_core::{CertSerial, RevocationReason};
use rcgen::{
    CertificateRevocationListParams, CrlDistributionPoint, CrlIssuingDistributionPoint, CrlScope,
    KeyIdMethod, RevokedCertParams, SerialNumber,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::CaError;
use crate::model::Revocation;

/// The most shards one CA may have: beyond this a relying party gains little (each shard is
/// already a small fraction of the revocations) while the CA signs many CRLs per refresh.
pub const MAX_CRL_SHARDS: u32 = 1024;

/// The placeholder a CRL URL template uses for the shard number.
pub const SHARD_PLACEHOLDER: &str = "{shard}";

/// The shard (1..=`shards`) a certificate with `serial` belongs to, or 0 when the CA is not
/// sharded. Derived from the first four bytes of SHA-256 over the serial's magnitude bytes, so
/// it is stable across processes, versions and back ends and needs no stored column; hashing
/// (rather than taking serial bytes directly) keeps the spread even for imported or
/// non-random serials.
pub fn crl_shard_of(serial: &CertSerial, shards: u32) -> u32 {
    if shards <= 1 {
        return 0;
    }
    let h = Sha256::digest(serial.as_bytes());
    let v = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
    1 + v % shards
}

/// The URL of `shard` from a CA's stored CRL URL (which keeps `{shard}` for a sharded CA).
pub fn crl_shard_url(template: &str, shard: u32) -> String {
    template.replace(SHARD_PLACEHOLDER, &shard.to_string())
}

/// What one CRL says, apart from who signs it.
#[derive(Debug, Clone)]
pub struct CrlContent<'a> {
    pub number: u64,
    pub this_update: OffsetDateTime,
    pub next_update: OffsetDateTime,
    pub revoked: &'a [(CertSerial, Revocation)],
    /// For a shard CRL: the shard's URL exactly as written into its certificates' CRL
    /// distribution point. It goes into a critical IDP with onlyContainsUserCerts (sharded CAs
    /// are issuing CAs with pathlen 0: they revoke only end-entity certificates). `None` for a
    /// whole-CA CRL, which has no IDP.
    pub idp_url: Option<&'a str>,
}

fn rcgen_reason(r: RevocationReason) -> rcgen::RevocationReason {
    use rcgen::RevocationReason as R;
    match r {
        RevocationReason::Unspecified => R::Unspecified,
        RevocationReason::KeyCompromise => R::KeyCompromise,
        RevocationReason::CaCompromise => R::CaCompromise,
        RevocationReason::AffiliationChanged => R::AffiliationChanged,
        RevocationReason::Superseded => R::Superseded,
        RevocationReason::CessationOfOperation => R::CessationOfOperation,
        RevocationReason::CertificateHold => R::CertificateHold,
        RevocationReason::PrivilegeWithdrawn => R::PrivilegeWithdrawn,
        RevocationReason::AaCompromise => R::AaCompromise,
        _ => R::Unspecified,
    }
}

/// Builds and signs a full CRL. `ski` is the CA certificate's subjectKeyIdentifier, copied into
/// the CRL's authorityKeyIdentifier so that path builders match them even for imported CAs
/// whose SKI was not computed the way rcgen would. Generic over the key so that `medsec bench`
/// can measure encoding with an in-memory key.
pub fn encode_crl<K: rcgen::SigningKey>(
    issuer: &rcgen::Issuer<'_, K>,
    ski: Option<&[u8]>,
    content: &CrlContent<'_>,
) -> Result<Vec<u8>, CaError> {
    let mut entries: Vec<RevokedCertParams> = content
        .revoked
        .iter()
        .map(|(serial, rev)| RevokedCertParams {
            serial_number: SerialNumber::from_slice(&serial.to_der_integer_bytes()),
            revocation_time: rev.revoked_at,
            // Unspecified is expressed by omitting the reason (RFC 5280 5.3.1).
            reason_code: (rev.reason != RevocationReason::Unspecified)
                .then(|| rcgen_reason(rev.reason)),
            invalidity_date: rev.invalidity_date,
        })
        .collect();
    // A stable order makes CRLs for the same state byte-comparable apart from dates.
    entries.sort_by(|a, b| a.serial_number.as_ref().cmp(b.serial_number.as_ref()));
    let mut n = content.number.to_be_bytes().to_vec();
    while n.len() > 1 && n[0] == 0 {
        n.remove(0);
    }
    if n[0] & 0x80 != 0 {
        n.insert(0, 0);
    }
    let params = CertificateRevocationListParams {
        this_update: content.this_update,
        next_update: content.next_update,
        crl_number: SerialNumber::from_slice(&n),
        // rcgen marks the IDP critical, as RFC 5280 5.2.5 requires.
        issuing_distribution_point: content.idp_url.map(|u| CrlIssuingDistributionPoint {
            distribution_point: CrlDistributionPoint {
                uris: vec![u.to_owned()],
            },
            scope: Some(CrlScope::UserCertsOnly),
        }),
        revoked_certs: entries,
        key_identifier_method: match ski {
            Some(ski) => KeyIdMethod::PreSpecified(ski.to_vec()),
            None => KeyIdMethod::Sha256,
        },
    };
    Ok(params.signed_by(issuer)?.der().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
    use x509_parser::prelude::FromDer;
    use x509_parser::revocation_list::CertificateRevocationList;

    fn serial(i: u32) -> CertSerial {
        // Serials shaped like ours: 16 bytes, first byte non-zero with the top bit clear.
        let h = Sha256::digest(i.to_be_bytes());
        let mut b = h[..16].to_vec();
        b[0] = (b[0] & 0x7f) | 0x01;
        CertSerial::from_bytes(&b).unwrap()
    }

    fn issuer() -> (rcgen::Issuer<'static, rcgen::KeyPair>, Vec<u8>) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        p.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "test issuing CA");
        let cert = p.self_signed(&key).unwrap();
        let der = cert.der().to_vec();
        (rcgen::Issuer::new(p, key), der)
    }

    fn revoked(serials: &[CertSerial]) -> Vec<(CertSerial, Revocation)> {
        serials
            .iter()
            .map(|s| {
                (
                    s.clone(),
                    Revocation {
                        reason: RevocationReason::KeyCompromise,
                        revoked_at: OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
                        invalidity_date: None,
                    },
                )
            })
            .collect()
    }

    fn content<'a>(
        revoked: &'a [(CertSerial, Revocation)],
        idp_url: Option<&'a str>,
    ) -> CrlContent<'a> {
        let t = OffsetDateTime::from_unix_timestamp(1_700_000_100).unwrap();
        CrlContent {
            number: 7,
            this_update: t,
            next_update: t + time::Duration::days(1),
            revoked,
            idp_url,
        }
    }

    #[test]
    fn shard_assignment_is_stable_and_spread() {
        assert_eq!(crl_shard_of(&serial(1), 1), 0);
        assert_eq!(crl_shard_of(&serial(1), 0), 0);
        // Pinned values: a change here would move issued certificates to other shards, whose
        // CRLs would then no longer list them. Never change the function.
        // (Computed independently with Python's hashlib.)
        let pinned: [(&str, [u32; 4]); 2] = [
            ("01020304", [4, 8, 8, 840]),
            ("4f3c2a1b0d9e8f7a6b5c4d3e2f1a0b9c", [4, 12, 44, 620]),
        ];
        for (hex, want) in pinned {
            let s: CertSerial = hex.parse().unwrap();
            let got = [4, 16, 64, 1024].map(|n| crl_shard_of(&s, n));
            assert_eq!(got, want, "serial {hex}");
        }
        for shards in [2u32, 4, 16, 64] {
            let mut counts = vec![0u32; shards as usize + 1];
            let n = 20_000u32;
            for i in 0..n {
                let k = crl_shard_of(&serial(i), shards);
                assert!((1..=shards).contains(&k), "shard {k} of {shards}");
                counts[k as usize] += 1;
            }
            assert_eq!(counts[0], 0);
            let expect = n / shards;
            for (k, c) in counts.iter().enumerate().skip(1) {
                // Well within binomial noise (about 4 standard deviations at 64 shards).
                assert!(
                    c.abs_diff(expect) < expect / 4 + 20,
                    "shard {k}/{shards} has {c}, expected about {expect}"
                );
            }
        }
    }

    #[test]
    fn shard_url_replaces_the_placeholder() {
        assert_eq!(
            crl_shard_url("http://h/crl/issuing/{shard}.crl", 12),
            "http://h/crl/issuing/12.crl"
        );
        assert_eq!(crl_shard_url("http://h/crl/a.crl", 3), "http://h/crl/a.crl");
    }

    #[test]
    fn shard_crl_carries_a_critical_idp_naming_the_url() {
        let (issuer, _) = issuer();
        let rev = revoked(&[serial(1), serial(2)]);
        let url = "http://crl.example/crl/issuing/3.crl";
        let der = encode_crl(&issuer, None, &content(&rev, Some(url))).unwrap();
        let (rest, crl) = CertificateRevocationList::from_der(&der).unwrap();
        assert!(rest.is_empty());
        let ext = crl
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "2.5.29.28")
            .expect("IDP present");
        assert!(ext.critical, "the IDP must be critical (RFC 5280 5.2.5)");
        let ParsedExtension::IssuingDistributionPoint(idp) = ext.parsed_extension() else {
            panic!("IDP did not parse: {:?}", ext.parsed_extension());
        };
        assert!(idp.only_contains_user_certs);
        assert!(!idp.only_contains_ca_certs);
        assert!(!idp.indirect_crl);
        let Some(DistributionPointName::FullName(names)) = &idp.distribution_point else {
            panic!("no fullName in {idp:?}");
        };
        assert_eq!(names.len(), 1);
        assert!(matches!(&names[0], GeneralName::URI(u) if *u == url));
        assert_eq!(crl.iter_revoked_certificates().count(), 2);

        // A whole-CA CRL has no IDP at all, as before sharding existed.
        let whole = encode_crl(&issuer, None, &content(&rev, None)).unwrap();
        let (_, crl) = CertificateRevocationList::from_der(&whole).unwrap();
        assert!(
            crl.extensions()
                .iter()
                .all(|e| e.oid.to_id_string() != "2.5.29.28")
        );
    }

    #[test]
    fn a_revoked_certificate_appears_only_in_its_shard() {
        let (issuer, _) = issuer();
        let shards = 4;
        let all: Vec<CertSerial> = (0..40).map(serial).collect();
        let revoked_serials: Vec<CertSerial> = all.iter().step_by(3).cloned().collect();
        let rev = revoked(&revoked_serials);
        let mut seen = HashSet::new();
        for shard in 1..=shards {
            let mine: Vec<_> = rev
                .iter()
                .filter(|(s, _)| crl_shard_of(s, shards) == shard)
                .cloned()
                .collect();
            let url = crl_shard_url("http://h/crl/i/{shard}.crl", shard);
            let der = encode_crl(&issuer, None, &content(&mine, Some(&url))).unwrap();
            let (_, crl) = CertificateRevocationList::from_der(&der).unwrap();
            let listed: HashSet<Vec<u8>> = crl
                .iter_revoked_certificates()
                .map(|r| r.raw_serial().to_vec())
                .collect();
            for s in &all {
                let is_listed = listed.contains(&s.to_der_integer_bytes());
                let should = revoked_serials.contains(s) && crl_shard_of(s, shards) == shard;
                assert_eq!(is_listed, should, "serial {s} in shard {shard}");
                if is_listed {
                    assert!(seen.insert(s.clone()), "{s} listed twice");
                }
            }
        }
        assert_eq!(seen.len(), revoked_serials.len());
    }
}
