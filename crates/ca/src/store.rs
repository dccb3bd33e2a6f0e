//! The storage the CA needs, as a trait the SQLite and PostgreSQL stores implement.

use async_trait::async_trait;
use medsec_core::{AuditRecord, CertSerial, DeviceId, Name, RevocationReason};
use time::OffsetDateTime;

use crate::model::{
    CaRecord, CertRecord, CrlRecord, DeviceRecord, EnrollmentToken, Issuance, Revocation,
};
use crate::profile::Profile;

pub use medsec_core::StoreError;

/// Which certificates to list.
#[derive(Debug, Clone, Default)]
pub struct CertFilter {
    pub device: Option<DeviceId>,
    pub issuer: Option<Name>,
    /// Only unrevoked certificates whose notAfter falls in `[now, expiring_before)`.
    pub expiring_before: Option<(OffsetDateTime, OffsetDateTime)>,
    pub revoked: Option<bool>,
    pub limit: Option<u32>,
}

/// What a CA's CRL can list, read by [`CaStore::store_crl`] in the transaction that numbers
/// the CRL.
#[derive(Debug, Clone, Default)]
pub struct CrlEntries {
    /// The revoked certificates the CA issued.
    pub certs: Vec<(CertSerial, Revocation)>,
    /// The CA's revoked subordinate CAs.
    pub cas: Vec<(CertSerial, Revocation)>,
}

/// Builds a CRL from its number and the entries it may list; returns the CRL and how many
/// entries it lists.
pub type CrlBuilder<'a> =
    dyn Fn(u64, CrlEntries) -> Result<(CrlRecord, usize), String> + Send + Sync + 'a;

/// What the CA reads and writes. Every mutating call takes the audit records describing it and
/// must commit them in the same transaction as the change.
#[async_trait]
pub trait CaStore: Send + Sync {
    async fn insert_ca(&self, ca: &CaRecord, audit: &AuditRecord) -> Result<(), StoreError>;
    async fn get_ca(&self, name: &Name) -> Result<Option<CaRecord>, StoreError>;
    async fn list_cas(&self) -> Result<Vec<CaRecord>, StoreError>;

    /// Creates or replaces a profile.
    async fn put_profile(&self, profile: &Profile, audit: &AuditRecord) -> Result<(), StoreError>;
    async fn get_profile(&self, name: &Name) -> Result<Option<Profile>, StoreError>;
    async fn list_profiles(&self) -> Result<Vec<Profile>, StoreError>;

    async fn get_device(&self, id: &DeviceId) -> Result<Option<DeviceRecord>, StoreError>;
    async fn list_devices(&self) -> Result<Vec<DeviceRecord>, StoreError>;

    /// Commits one issuance atomically. Must refuse (`Conflict`) a serial that exists and
    /// (`Refused`) a device that is retired, leaving no trace in either case.
    async fn commit_issuance(&self, issuance: &Issuance) -> Result<(), StoreError>;

    async fn get_cert(&self, serial: &CertSerial) -> Result<Option<CertRecord>, StoreError>;
    async fn list_certs(&self, filter: &CertFilter) -> Result<Vec<CertRecord>, StoreError>;

    /// Revokes one certificate. A certificate already revoked stays revoked: the call fails
    /// with `Refused`, except that a later keyCompromise may replace a milder reason.
    async fn revoke(
        &self,
        serial: &CertSerial,
        revocation: &Revocation,
        audit: &AuditRecord,
    ) -> Result<(), StoreError>;

    /// Marks the device retired and revokes each of its unrevoked certificates with
    /// `reason`, in one transaction. Returns the serials revoked.
    async fn retire_device(
        &self,
        id: &DeviceId,
        at: OffsetDateTime,
        reason: RevocationReason,
        audit: &AuditRecord,
    ) -> Result<Vec<CertSerial>, StoreError>;

    /// Certificates whose scheduled supersession time has come and that are still unrevoked.
    async fn due_supersessions(&self, now: OffsetDateTime) -> Result<Vec<CertSerial>, StoreError>;

    /// Serials of every revoked device certificate (for in-process status at TLS handshakes).
    async fn revoked_serials(&self) -> Result<Vec<CertSerial>, StoreError>;
    /// Revoked certificates issued by `issuer` (for its CRL).
    async fn revoked_by_issuer(
        &self,
        issuer: &Name,
    ) -> Result<Vec<(CertSerial, Revocation)>, StoreError>;
    /// Revokes a subordinate CA (recorded on its `cas` row; it stays revoked).
    async fn revoke_ca(
        &self,
        name: &Name,
        revocation: &Revocation,
        audit: &AuditRecord,
    ) -> Result<(), StoreError>;
    /// Revoked subordinate CAs of `parent`, for the parent's CRL.
    async fn revoked_cas(&self, parent: &Name)
    -> Result<Vec<(CertSerial, Revocation)>, StoreError>;

    /// Allocates the next CRL number for `ca` and stores the CRL built by `build` with it as
    /// `shard`'s newest (0: the whole CA; 1..=N: a shard), in one transaction, so numbers only
    /// ever increase and each is used once. The number sequence is the CA's, shared by all its
    /// shards: each shard's numbers then increase too (RFC 5280 5.2.3 asks for that per CRL
    /// scope; gaps are allowed), and no shard needs its own counter.
    ///
    /// `build` gets the entries ([`CrlEntries`]) read in that transaction after the number was
    /// taken, so a CRL never lists less than one numbered below it: of two generations racing,
    /// the one that read the revoked set first cannot store it under the higher number and
    /// hide a revocation the other listed. The audit entry gets `number` and `entries`.
    async fn store_crl(
        &self,
        ca: &Name,
        shard: u32,
        build: &CrlBuilder<'_>,
        audit: &AuditRecord,
    ) -> Result<CrlRecord, StoreError>;
    /// The newest CRL of `ca`'s `shard` (0: the whole CA).
    async fn latest_crl(&self, ca: &Name, shard: u32) -> Result<Option<CrlRecord>, StoreError>;

    /// Appends an audit entry that goes with no other change.
    async fn append_audit(&self, audit: &AuditRecord) -> Result<(), StoreError>;

    /// Stores a new enrollment token under the SHA-256 of its secret.
    async fn insert_enrollment_token(
        &self,
        secret_sha256: &str,
        token: &EnrollmentToken,
        audit: &AuditRecord,
    ) -> Result<(), StoreError>;
    /// Finds a token by the SHA-256 of its secret (used or not; the caller decides).
    async fn find_enrollment_token(
        &self,
        secret_sha256: &str,
    ) -> Result<Option<EnrollmentToken>, StoreError>;
}

/// A shared store is a store: the binary holds its back end as `Arc<dyn ...>` chosen at start
/// (SQLite or PostgreSQL), and `Ca<Arc<dyn Backend>>` must work without knowing which.
#[async_trait]
impl<T: CaStore + ?Sized> CaStore for std::sync::Arc<T> {
    async fn insert_ca(&self, ca: &CaRecord, audit: &AuditRecord) -> Result<(), StoreError> {
        (**self).insert_ca(ca, audit).await
    }
    async fn get_ca(&self, name: &Name) -> Result<Option<CaRecord>, StoreError> {
        (**self).get_ca(name).await
    }
    async fn list_cas(&self) -> Result<Vec<CaRecord>, StoreError> {
        (**self).list_cas().await
    }
    async fn put_profile(&self, profile: &Profile, audit: &AuditRecord) -> Result<(), StoreError> {
        (**self).put_profile(profile, audit).await
    }
    async fn get_profile(&self, name: &Name) -> Result<Option<Profile>, StoreError> {
        (**self).get_profile(name).await
    }
    async fn list_profiles(&self) -> Result<Vec<Profile>, StoreError> {
        (**self).list_profiles().await
    }
    async fn get_device(&self, id: &DeviceId) -> Result<Option<DeviceRecord>, StoreError> {
        (**self).get_device(id).await
    }
    async fn list_devices(&self) -> Result<Vec<DeviceRecord>, StoreError> {
        (**self).list_devices().await
    }
    async fn commit_issuance(&self, issuance: &Issuance) -> Result<(), StoreError> {
        (**self).commit_issuance(issuance).await
    }
    async fn get_cert(&self, serial: &CertSerial) -> Result<Option<CertRecord>, StoreError> {
        (**self).get_cert(serial).await
    }
    async fn list_certs(&self, filter: &CertFilter) -> Result<Vec<CertRecord>, StoreError> {
        (**self).list_certs(filter).await
    }
    async fn revoke(
        &self,
        serial: &CertSerial,
        revocation: &Revocation,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        (**self).revoke(serial, revocation, audit).await
    }
    async fn retire_device(
        &self,
        id: &DeviceId,
        at: OffsetDateTime,
        reason: RevocationReason,
        audit: &AuditRecord,
    ) -> Result<Vec<CertSerial>, StoreError> {
        (**self).retire_device(id, at, reason, audit).await
    }
    async fn due_supersessions(&self, now: OffsetDateTime) -> Result<Vec<CertSerial>, StoreError> {
        (**self).due_supersessions(now).await
    }
    async fn revoked_serials(&self) -> Result<Vec<CertSerial>, StoreError> {
        (**self).revoked_serials().await
    }
    async fn revoked_by_issuer(
        &self,
        issuer: &Name,
    ) -> Result<Vec<(CertSerial, Revocation)>, StoreError> {
        (**self).revoked_by_issuer(issuer).await
    }
    async fn revoke_ca(
        &self,
        name: &Name,
        revocation: &Revocation,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        (**self).revoke_ca(name, revocation, audit).await
    }
    async fn revoked_cas(
        &self,
        parent: &Name,
    ) -> Result<Vec<(CertSerial, Revocation)>, StoreError> {
        (**self).revoked_cas(parent).await
    }
    async fn store_crl(
        &self,
        ca: &Name,
        shard: u32,
        build: &CrlBuilder<'_>,
        audit: &AuditRecord,
    ) -> Result<CrlRecord, StoreError> {
        (**self).store_crl(ca, shard, build, audit).await
    }
    async fn latest_crl(&self, ca: &Name, shard: u32) -> Result<Option<CrlRecord>, StoreError> {
        (**self).latest_crl(ca, shard).await
    }
    async fn append_audit(&self, audit: &AuditRecord) -> Result<(), StoreError> {
        (**self).append_audit(audit).await
    }
    async fn insert_enrollment_token(
        &self,
        secret_sha256: &str,
        token: &EnrollmentToken,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        (**self)
            .insert_enrollment_token(secret_sha256, token, audit)
            .await
    }
    async fn find_enrollment_token(
        &self,
        secret_sha256: &str,
    ) -> Result<Option<EnrollmentToken>, StoreError> {
        (**self).find_enrollment_token(secret_sha256).await
    }
}
