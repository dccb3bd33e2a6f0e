//! The storage vulnerability management needs, as a trait the SQLite and PostgreSQL stores
//! implement. Every mutating call takes the audit record describing it and commits it in the
//! same transaction.

use std::collections::HashMap;

use async_trait::async_trait;
use medsec_core::{AuditRecord, DeviceId, DeviceModel, FirmwareVersion, StoreError};
use time::OffsetDateTime;

use crate::model::{AdvisoryRow, Decision, FindingRecord, FirmwareRecord, SbomRecord};

#[async_trait]
pub trait InventoryStore: Send + Sync {
    /// Creates a firmware version, or updates its release date and support commitment.
    async fn put_firmware(
        &self,
        fw: &FirmwareRecord,
        audit: &AuditRecord,
    ) -> Result<(), StoreError>;
    async fn get_firmware(
        &self,
        model: &DeviceModel,
        version: &FirmwareVersion,
    ) -> Result<Option<FirmwareRecord>, StoreError>;
    async fn list_firmware(
        &self,
        model: Option<&DeviceModel>,
    ) -> Result<Vec<FirmwareRecord>, StoreError>;

    /// Stores the SBOM of a firmware version (which must exist). Refuses (`Conflict`) when one
    /// is stored already unless `replace`; replacing drops that firmware's findings (the next
    /// match recomputes them) but never its triage decisions.
    async fn put_sbom(
        &self,
        sbom: &SbomRecord,
        replace: bool,
        audit: &AuditRecord,
    ) -> Result<(), StoreError>;
    async fn get_sbom(
        &self,
        model: &DeviceModel,
        version: &FirmwareVersion,
    ) -> Result<Option<SbomRecord>, StoreError>;

    /// `id -> modified` of every stored advisory, for incremental import.
    async fn advisory_versions(&self) -> Result<HashMap<String, OffsetDateTime>, StoreError>;
    /// Inserts or replaces advisories, all in one transaction.
    async fn upsert_advisories(
        &self,
        rows: &[AdvisoryRow],
        audit: &AuditRecord,
    ) -> Result<(), StoreError>;
    /// Raw JSON of every stored advisory.
    async fn advisories_raw(&self) -> Result<Vec<Vec<u8>>, StoreError>;
    async fn get_advisory_raw(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Replaces the stored CISA KEV catalog (it is published as a whole snapshot).
    async fn put_kev(&self, raw: &[u8], audit: &AuditRecord) -> Result<(), StoreError>;
    async fn get_kev(&self) -> Result<Option<Vec<u8>>, StoreError>;

    /// Replaces the findings of one firmware version with `findings`, keeping `first_seen`
    /// of findings that were there before.
    async fn replace_findings(
        &self,
        model: &DeviceModel,
        version: &FirmwareVersion,
        findings: &[FindingRecord],
        audit: &AuditRecord,
    ) -> Result<(), StoreError>;
    /// Findings of one model (and version), or of all.
    async fn list_findings(
        &self,
        model: Option<&DeviceModel>,
        version: Option<&FirmwareVersion>,
    ) -> Result<Vec<FindingRecord>, StoreError>;

    /// Appends a triage decision (the history is never rewritten).
    async fn add_decision(&self, d: &Decision, audit: &AuditRecord) -> Result<(), StoreError>;
    /// Every decision for the firmware versions selected, oldest first.
    async fn list_decisions(
        &self,
        model: Option<&DeviceModel>,
        version: Option<&FirmwareVersion>,
    ) -> Result<Vec<Decision>, StoreError>;

    /// Records the firmware a device runs. Refuses (`NotFound`) an unknown device or firmware
    /// version of another model, and (`Refused`) a retired device.
    async fn set_device_firmware(
        &self,
        device: &DeviceId,
        version: &FirmwareVersion,
        at: OffsetDateTime,
        audit: &AuditRecord,
    ) -> Result<(), StoreError>;
    async fn device_firmware(
        &self,
        device: &DeviceId,
    ) -> Result<Option<(FirmwareVersion, OffsetDateTime)>, StoreError>;
    /// Active (not retired) devices of `model` running one of `versions`, with the version.
    async fn devices_on_firmware(
        &self,
        model: &DeviceModel,
        versions: &[FirmwareVersion],
    ) -> Result<Vec<(DeviceId, FirmwareVersion)>, StoreError>;
}
