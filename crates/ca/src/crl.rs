//! CRL encoding (RFC 5280 section 5) for one CA.

use medsec_core::{CertSerial, RevocationReason};
use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};
use time::OffsetDateTime;

use crate::CaError;
use crate::model::Revocation;
use crate::signing::CaKey;

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
/// whose SKI was not computed the way rcgen would.
pub(crate) fn build_crl(
    issuer: &rcgen::Issuer<'_, CaKey>,
    ski: Option<&[u8]>,
    number: u64,
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
    revoked: &[(CertSerial, Revocation)],
) -> Result<Vec<u8>, CaError> {
    let mut entries: Vec<RevokedCertParams> = revoked
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
    let mut n = number.to_be_bytes().to_vec();
    while n.len() > 1 && n[0] == 0 {
        n.remove(0);
    }
    if n[0] & 0x80 != 0 {
        n.insert(0, 0);
    }
    let params = CertificateRevocationListParams {
        this_update,
        next_update,
        crl_number: SerialNumber::from_slice(&n),
        issuing_distribution_point: None,
        revoked_certs: entries,
        key_identifier_method: match ski {
            Some(ski) => KeyIdMethod::PreSpecified(ski.to_vec()),
            None => KeyIdMethod::Sha256,
        },
    };
    Ok(params.signed_by(issuer)?.der().to_vec())
}
