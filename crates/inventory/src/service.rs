//! The vulnerability-management service: firmware and SBOM intake, advisory import, matching,
//! triage, affected devices and VEX documents, over any `InventoryStore`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use medsec_core::{
    Actor, AuditAction, AuditRecord, DeviceId, DeviceModel, FirmwareVersion, StoreError,
};
use medsec_sbom::{Component, Sbom};
use medsec_vuln::{Advisory, Index, Kev, VexDocument, VexProduct, VexStatement, VexStatus};
use serde_json::json;
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};

use crate::InventoryError;
use crate::model::{
    AdvisoryRow, AffectedDevice, Decision, FindingRecord, FindingView, FirmwareRecord, ImportStats,
    KevExposure, MatchStats, MatchedBy, SbomRecord, SupportLevel,
};
use crate::rating::{Exploitability, RiskPolicy, SeverityLevel, rate};
use crate::store::InventoryStore;

/// Rows per advisory write transaction: large enough to amortise the commit, small enough that
/// progress moves on a full ecosystem dump.
const ADVISORY_CHUNK: usize = 2_000;

/// Which firmware versions a VEX document or a match covers.
#[derive(Debug, Clone, Default)]
pub struct VexScope {
    pub model: Option<DeviceModel>,
    pub version: Option<FirmwareVersion>,
}

/// The service. It holds its store as a trait object so that the server and the CLI can carry
/// it without threading another type parameter through every handler.
pub struct Inventory {
    store: Arc<dyn InventoryStore>,
    policy: RiskPolicy,
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// A component's identity within a firmware: canonical purl, else `name@version`.
fn component_key(c: &Component) -> String {
    match (&c.purl, &c.version) {
        (Some(p), _) => p.to_string(),
        (None, Some(v)) => format!("{}@{v}", c.name),
        (None, None) => c.name.clone(),
    }
}

/// The identifier a finding is filed under: the lowest CVE, else the lowest advisory id, so the
/// same vulnerability gets the same name whichever feed reported it first.
fn primary_id(identifiers: &BTreeSet<String>, advisories: &BTreeSet<String>) -> String {
    identifiers
        .iter()
        .find(|i| i.starts_with("CVE-"))
        .or_else(|| advisories.iter().next())
        .or_else(|| identifiers.iter().next())
        .cloned()
        .unwrap_or_default()
}

/// The highest CVSS (v3.x or v4.0) base score among an advisory's severities, with its vector.
fn best_cvss(a: &Advisory) -> Option<(f64, String)> {
    a.severity
        .iter()
        .filter_map(|s| {
            let c = medsec_vuln::cvss::parse(&s.score).ok()?;
            Some((c.base_score?, c.vector))
        })
        .max_by(|x, y| x.0.total_cmp(&y.0))
}

fn match_cpe(
    index: &Index,
    cpe: &str,
) -> Result<Vec<medsec_vuln::Finding>, medsec_vuln::VulnError> {
    index.match_cpe(&medsec_vuln::Cpe::parse(cpe)?)
}

fn parse_modified(a: &Advisory) -> Result<OffsetDateTime, InventoryError> {
    OffsetDateTime::parse(&a.modified, &Rfc3339).map_err(|e| InventoryError::Advisory {
        id: a.id.clone(),
        reason: medsec_vuln::VulnError::BadFeed(format!(
            "`modified` {:?} is not an RFC 3339 timestamp: {e}",
            a.modified
        )),
    })
}

impl Inventory {
    pub fn new(store: Arc<dyn InventoryStore>) -> Self {
        Inventory {
            store,
            policy: RiskPolicy::default(),
        }
    }

    pub fn with_policy(mut self, policy: RiskPolicy) -> Self {
        self.policy = policy;
        self
    }

    pub fn store(&self) -> &dyn InventoryStore {
        &*self.store
    }

    /// Registers a firmware version, or updates its release date and support commitment.
    pub async fn put_firmware(
        &self,
        actor: &Actor,
        model: &DeviceModel,
        version: &FirmwareVersion,
        released_on: Option<Date>,
        support_level: SupportLevel,
        end_of_support: Option<Date>,
    ) -> Result<FirmwareRecord, InventoryError> {
        if let (Some(r), Some(e)) = (released_on, end_of_support)
            && e < r
        {
            return Err(InventoryError::invalid(
                "end of support",
                format!("{e} is before the release date {r}"),
            ));
        }
        let created_at = match self.store.get_firmware(model, version).await? {
            Some(old) => old.created_at,
            None => now(),
        };
        let fw = FirmwareRecord {
            model: model.clone(),
            version: version.clone(),
            released_on,
            support_level,
            end_of_support,
            created_at,
        };
        let audit = AuditRecord::new(
            actor,
            AuditAction::FirmwareRegistered,
            format!("{model}@{version}"),
            json!({"support_level": support_level.as_str(),
                   "released_on": released_on.map(|d| d.to_string()),
                   "end_of_support": end_of_support.map(|d| d.to_string())}),
        );
        self.store.put_firmware(&fw, &audit).await?;
        Ok(fw)
    }

    async fn firmware(
        &self,
        model: &DeviceModel,
        version: &FirmwareVersion,
    ) -> Result<FirmwareRecord, InventoryError> {
        self.store
            .get_firmware(model, version)
            .await?
            .ok_or_else(|| InventoryError::NotFound {
                what: "firmware version",
                key: format!("{model}@{version}"),
            })
    }

    /// Parses an SBOM (and an optional support addendum CSV) and stores it for a firmware
    /// version, registering the version if it is new. Anything that fails to parse stores
    /// nothing.
    pub async fn import_sbom(
        &self,
        actor: &Actor,
        model: &DeviceModel,
        version: &FirmwareVersion,
        bytes: &[u8],
        addendum: Option<&str>,
        replace: bool,
    ) -> Result<SbomRecord, InventoryError> {
        let mut sbom = medsec_sbom::parse(bytes)?;
        if let Some(csv) = addendum {
            medsec_sbom::apply_support_csv(&mut sbom, csv)?;
        }
        if self.store.get_firmware(model, version).await?.is_none() {
            self.put_firmware(actor, model, version, None, SupportLevel::Supported, None)
                .await?;
        }
        let rec = SbomRecord {
            model: model.clone(),
            version: version.clone(),
            sha256: hex::encode(Sha256::digest(bytes)),
            sbom,
            imported_at: now(),
        };
        let audit = AuditRecord::new(
            actor,
            AuditAction::SbomImported,
            format!("{model}@{version}"),
            json!({"sha256": rec.sha256, "format": rec.sbom.format,
                   "components": rec.sbom.components.len(), "replace": replace}),
        );
        self.store.put_sbom(&rec, replace, &audit).await?;
        Ok(rec)
    }

    pub async fn sbom(
        &self,
        model: &DeviceModel,
        version: &FirmwareVersion,
    ) -> Result<SbomRecord, InventoryError> {
        self.store
            .get_sbom(model, version)
            .await?
            .ok_or_else(|| InventoryError::NotFound {
                what: "SBOM of firmware version",
                key: format!("{model}@{version}"),
            })
    }

    /// Imports OSV records: each document is one JSON record or an OSV zip dump. Every record is
    /// parsed before anything is written, so a bad one stores nothing; then only records newer
    /// than what is stored (by `modified`) are written. `progress(done, total)` is called as
    /// records are written.
    pub async fn import_osv(
        &self,
        actor: &Actor,
        docs: Vec<(String, Vec<u8>)>,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<ImportStats, InventoryError> {
        let mut incoming: HashMap<String, AdvisoryRow> = HashMap::new();
        let mut stats = ImportStats::default();
        let mut take = |raw: Vec<u8>, origin: &str| -> Result<(), InventoryError> {
            let a = Advisory::from_json(&raw).map_err(|e| InventoryError::Advisory {
                id: origin.to_owned(),
                reason: e,
            })?;
            if a.id.is_empty() {
                return Err(InventoryError::invalid(
                    "advisory",
                    format!("{origin}: no id"),
                ));
            }
            let modified = parse_modified(&a)?;
            stats.read += 1;
            let row = AdvisoryRow {
                id: a.id.clone(),
                modified,
                withdrawn: a.withdrawn.is_some(),
                raw,
            };
            match incoming.get(&a.id) {
                Some(old) if old.modified >= modified => {}
                _ => {
                    incoming.insert(a.id, row);
                }
            }
            Ok(())
        };
        for (origin, bytes) in docs {
            if bytes.starts_with(b"PK\x03\x04") {
                for (name, raw) in
                    medsec_vuln::zip_records(&bytes).map_err(|e| InventoryError::Advisory {
                        id: origin.clone(),
                        reason: e,
                    })?
                {
                    take(raw, &format!("{origin}:{name}"))?;
                }
            } else {
                take(bytes, &origin)?;
            }
        }
        let stored = self.store.advisory_versions().await?;
        let mut rows: Vec<AdvisoryRow> = Vec::new();
        for (id, row) in incoming {
            match stored.get(&id) {
                Some(m) if *m >= row.modified => stats.unchanged += 1,
                Some(_) => {
                    stats.updated += 1;
                    stats.withdrawn += usize::from(row.withdrawn);
                    rows.push(row);
                }
                None => {
                    stats.new += 1;
                    stats.withdrawn += usize::from(row.withdrawn);
                    rows.push(row);
                }
            }
        }
        rows.sort_by(|a, b| a.id.cmp(&b.id));
        let total = rows.len();
        progress(0, total);
        for (i, chunk) in rows.chunks(ADVISORY_CHUNK).enumerate() {
            let audit = AuditRecord::new(
                actor,
                AuditAction::AdvisoriesImported,
                "osv",
                json!({"records": chunk.len(),
                       "first": chunk.first().map(|r| r.id.as_str()),
                       "last": chunk.last().map(|r| r.id.as_str())}),
            );
            self.store.upsert_advisories(chunk, &audit).await?;
            progress((i * ADVISORY_CHUNK + chunk.len()).min(total), total);
        }
        Ok(stats)
    }

    /// Stores the CISA KEV catalog (replacing the previous snapshot). Returns its entry count.
    pub async fn import_kev(&self, actor: &Actor, bytes: &[u8]) -> Result<usize, InventoryError> {
        let kev = Kev::from_json(bytes)?;
        let audit = AuditRecord::new(
            actor,
            AuditAction::KevImported,
            "cisa-kev",
            json!({"version": kev.version, "entries": kev.len()}),
        );
        self.store.put_kev(bytes, &audit).await?;
        Ok(kev.len())
    }

    /// Stores a new KEV catalog like [`import_kev`](Self::import_kev) and returns, for the
    /// CVEs it lists that the previous catalog did not, the fielded devices running firmware
    /// with an open finding for them, grouped by model and firmware version. This is what a
    /// post-market "newly KEV-listed on fielded firmware" rule acts on.
    pub async fn import_kev_exposures(
        &self,
        actor: &Actor,
        bytes: &[u8],
    ) -> Result<(usize, Vec<KevExposure>), InventoryError> {
        let new = Kev::from_json(bytes)?;
        let old = match self.store.get_kev().await? {
            Some(raw) => Kev::from_json(&raw)
                .map_err(|e| StoreError::Corrupt(format!("stored KEV catalog: {e}")))?,
            None => Kev::default(),
        };
        let n = self.import_kev(actor, bytes).await?;
        let added: BTreeSet<&str> = new.cves().filter(|c| !old.contains(c)).collect();
        if added.is_empty() {
            return Ok((n, Vec::new()));
        }
        let mut groups: BTreeMap<(String, DeviceModel, FirmwareVersion), ()> = BTreeMap::new();
        for v in self.findings(None, None).await? {
            if !v.is_open() {
                continue;
            }
            let f = &v.finding;
            let hit = std::iter::once(&f.vuln_id)
                .chain(f.identifiers.iter())
                .find(|id| added.contains(id.as_str()));
            if let Some(id) = hit {
                groups.insert((id.clone(), f.model.clone(), f.version.clone()), ());
            }
        }
        let mut out = Vec::new();
        for (vulnerability, model, version) in groups.into_keys() {
            let devices: Vec<DeviceId> = self
                .store
                .devices_on_firmware(&model, std::slice::from_ref(&version))
                .await?
                .into_iter()
                .map(|(d, _)| d)
                .collect();
            if !devices.is_empty() {
                out.push(KevExposure {
                    vulnerability,
                    model,
                    version,
                    devices,
                });
            }
        }
        Ok((n, out))
    }

    /// The matching index over every stored advisory, and the KEV catalog.
    pub async fn load_index(&self) -> Result<(Index, Kev), InventoryError> {
        let raws = self.store.advisories_raw().await?;
        let mut advisories = Vec::with_capacity(raws.len());
        for raw in raws {
            advisories.push(Advisory::from_json(&raw).map_err(|e| {
                StoreError::Corrupt(format!("stored advisory does not parse: {e}"))
            })?);
        }
        let kev = match self.store.get_kev().await? {
            Some(raw) => Kev::from_json(&raw)
                .map_err(|e| StoreError::Corrupt(format!("stored KEV catalog: {e}")))?,
            None => Kev::default(),
        };
        Ok((Index::new(advisories), kev))
    }

    /// Matches the SBOMs in scope against every stored advisory (the index is built once for
    /// all of them) and replaces their findings. CPE matching of components without a purl is
    /// opt-in and its findings are marked low-confidence.
    pub async fn rematch(
        &self,
        actor: &Actor,
        scope: &VexScope,
        cpe_fallback: bool,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<MatchStats, InventoryError> {
        let (index, kev) = self.load_index().await?;
        let mut versions: Vec<FirmwareRecord> =
            self.store.list_firmware(scope.model.as_ref()).await?;
        if let Some(v) = &scope.version {
            versions.retain(|f| &f.version == v);
            if versions.is_empty() {
                return Err(InventoryError::NotFound {
                    what: "firmware version",
                    key: format!(
                        "{}@{v}",
                        scope.model.as_ref().map(|m| m.as_str()).unwrap_or("*")
                    ),
                });
            }
        }
        let mut stats = MatchStats::default();
        let total = versions.len();
        for (i, fw) in versions.iter().enumerate() {
            progress(i, total);
            let Some(sbom) = self.store.get_sbom(&fw.model, &fw.version).await? else {
                continue;
            };
            let findings = self.match_sbom(&index, &kev, fw, &sbom.sbom, cpe_fallback, &mut stats);
            let audit = AuditRecord::new(
                actor,
                AuditAction::FindingsMatched,
                format!("{}@{}", fw.model, fw.version),
                json!({"findings": findings.len(), "advisories": index.len(),
                       "cpe_fallback": cpe_fallback}),
            );
            self.store
                .replace_findings(&fw.model, &fw.version, &findings, &audit)
                .await?;
            stats.firmware_versions += 1;
            stats.findings += findings.len();
        }
        progress(total, total);
        Ok(stats)
    }

    fn match_sbom(
        &self,
        index: &Index,
        kev: &Kev,
        fw: &FirmwareRecord,
        sbom: &Sbom,
        cpe_fallback: bool,
        stats: &mut MatchStats,
    ) -> Vec<FindingRecord> {
        let t = now();
        let mut out: BTreeMap<(String, String), FindingRecord> = BTreeMap::new();
        for c in &sbom.components {
            stats.components += 1;
            let key = component_key(c);
            let (found, by) = match &c.purl {
                Some(p) => match index.match_purl(p) {
                    Ok(f) => (f, MatchedBy::Purl),
                    Err(e) => {
                        stats
                            .unmatchable
                            .push(format!("{}@{}: {p}: {e}", fw.model, fw.version));
                        continue;
                    }
                },
                None if cpe_fallback => {
                    let mut all = Vec::new();
                    for s in &c.cpes {
                        // A CPE we cannot read is no evidence either way; matching by CPE is
                        // a heuristic, so it is reported rather than failing the run.
                        match match_cpe(index, s) {
                            Ok(f) => all.extend(f),
                            Err(e) => stats.unmatchable.push(format!("{key}: {s}: {e}")),
                        }
                    }
                    (all, MatchedBy::Cpe)
                }
                None => continue,
            };
            for f in found {
                let vuln_id = primary_id(&f.identifiers, &f.advisories);
                let mut best: Option<(f64, String)> = None;
                let mut summary = None;
                for id in &f.advisories {
                    if let Some(a) = index.advisory(id) {
                        if summary.is_none() {
                            summary = a.summary.clone();
                        }
                        if let Some(c) = best_cvss(a)
                            && best.as_ref().is_none_or(|b| c.0 > b.0)
                        {
                            best = Some(c);
                        }
                    }
                }
                if by == MatchedBy::Cpe {
                    stats.cpe_findings += 1;
                }
                let entry = out
                    .entry((vuln_id.clone(), key.clone()))
                    .or_insert_with(|| FindingRecord {
                        model: fw.model.clone(),
                        version: fw.version.clone(),
                        vuln_id,
                        identifiers: Vec::new(),
                        advisories: Vec::new(),
                        component: key.clone(),
                        matched_by: by,
                        summary,
                        cvss_score: None,
                        cvss_vector: None,
                        kev: false,
                        first_seen: t,
                        last_seen: t,
                    });
                let ids: BTreeSet<String> = entry
                    .identifiers
                    .drain(..)
                    .chain(f.identifiers.iter().cloned())
                    .collect();
                let advs: BTreeSet<String> = entry
                    .advisories
                    .drain(..)
                    .chain(f.advisories.iter().cloned())
                    .collect();
                entry.kev = kev.lookup(ids.iter()).is_some();
                entry.identifiers = ids.into_iter().collect();
                entry.advisories = advs.into_iter().collect();
                // A purl match outranks a CPE guess for the same component and vulnerability.
                if by == MatchedBy::Purl {
                    entry.matched_by = MatchedBy::Purl;
                }
                if let Some((s, v)) = best
                    && entry.cvss_score.is_none_or(|old| s > old)
                {
                    entry.cvss_score = Some(s);
                    entry.cvss_vector = Some(v);
                }
            }
        }
        out.into_values().collect()
    }

    fn view(&self, f: FindingRecord, decisions: &[Decision]) -> FindingView {
        // The newest decision that applies wins; a component-specific one is as good as a
        // firmware-wide one, so order alone decides.
        let decision = decisions.iter().rev().find(|d| d.applies_to(&f)).cloned();
        let severity = SeverityLevel::from_score(f.cvss_score);
        let exploitability = Exploitability::assess(f.cvss_vector.as_deref(), f.kev);
        let closed = decision.as_ref().is_some_and(Decision::closes);
        FindingView {
            confidence: f.matched_by.confidence(),
            state: decision
                .as_ref()
                .map(|d| d.status.to_string())
                .unwrap_or_else(|| "in_triage".into()),
            risk: (!closed).then(|| rate(&self.policy, severity, exploitability)),
            severity,
            exploitability,
            decision,
            finding: f,
        }
    }

    /// Findings with their decisions and ratings, for one model (and version) or all.
    pub async fn findings(
        &self,
        model: Option<&DeviceModel>,
        version: Option<&FirmwareVersion>,
    ) -> Result<Vec<FindingView>, InventoryError> {
        let findings = self.store.list_findings(model, version).await?;
        let decisions = self.store.list_decisions(model, version).await?;
        Ok(findings
            .into_iter()
            .map(|f| self.view(f, &decisions))
            .collect())
    }

    /// Open findings (and KEV-listed ones) at each of `points`, for one model or all: the trend
    /// the dashboard charts (see [`crate::trend`] for what it can and cannot reconstruct).
    pub async fn findings_trend(
        &self,
        model: Option<&DeviceModel>,
        points: &[OffsetDateTime],
    ) -> Result<Vec<crate::TrendPoint>, InventoryError> {
        let findings = self.store.list_findings(model, None).await?;
        let decisions = self.store.list_decisions(model, None).await?;
        Ok(crate::trend(&findings, &decisions, points))
    }

    /// Records a triage decision for a vulnerability (any of its identifiers) found in a
    /// firmware version, optionally for one component only.
    #[allow(clippy::too_many_arguments)]
    pub async fn triage(
        &self,
        actor: &Actor,
        model: &DeviceModel,
        version: &FirmwareVersion,
        vuln: &str,
        component: Option<&str>,
        status: VexStatus,
        detail: &str,
        action: Option<&str>,
    ) -> Result<Decision, InventoryError> {
        self.firmware(model, version).await?;
        if detail.trim().is_empty() {
            return Err(InventoryError::invalid(
                "triage decision",
                "a reason (detail) is required: VEX statements must say why",
            ));
        }
        if detail.len() > 4096 || action.is_some_and(|a| a.len() > 4096) {
            return Err(InventoryError::invalid(
                "triage decision",
                "detail and action are limited to 4096 bytes",
            ));
        }
        let findings = self.store.list_findings(Some(model), Some(version)).await?;
        let hit = findings
            .iter()
            .find(|f| f.is_named(vuln) && component.is_none_or(|c| c == f.component))
            .ok_or_else(|| InventoryError::NotFound {
                what: "finding",
                key: format!(
                    "{vuln} in {model}@{version}{}",
                    component.map(|c| format!(" ({c})")).unwrap_or_default()
                ),
            })?;
        let d = Decision {
            model: model.clone(),
            version: version.clone(),
            // Filed under the finding's primary id, so an alias given by the user still
            // lands on the same key.
            vuln_id: hit.vuln_id.clone(),
            component: component.map(str::to_owned),
            status,
            detail: detail.to_owned(),
            action: action.map(str::to_owned),
            author: actor.clone(),
            at: now(),
        };
        let audit = AuditRecord::new(
            actor,
            AuditAction::VexDecided,
            format!("{model}@{version}"),
            json!({"vulnerability": d.vuln_id, "component": d.component,
                   "state": d.status.to_string(), "detail": d.detail}),
        );
        self.store.add_decision(&d, &audit).await?;
        Ok(d)
    }

    /// Records the firmware a device reports or an operator sets.
    pub async fn set_device_firmware(
        &self,
        actor: &Actor,
        device: &DeviceId,
        version: &FirmwareVersion,
    ) -> Result<(), InventoryError> {
        self.firmware(&device.model, version).await?;
        let audit = AuditRecord::new(
            actor,
            AuditAction::DeviceFirmwareReported,
            device.urn(),
            json!({"firmware": version}),
        );
        self.store
            .set_device_firmware(device, version, now(), &audit)
            .await?;
        Ok(())
    }

    /// Devices in the field whose current firmware carries `vuln` (any identifier) in a
    /// finding not closed by a decision (not_affected, false_positive, fixed).
    pub async fn affected_devices(
        &self,
        vuln: &str,
    ) -> Result<Vec<AffectedDevice>, InventoryError> {
        let views = self.findings(None, None).await?;
        let mut open: BTreeMap<DeviceModel, BTreeSet<FirmwareVersion>> = BTreeMap::new();
        let mut known = false;
        for v in views.iter().filter(|v| v.finding.is_named(vuln)) {
            known = true;
            if v.is_open() {
                open.entry(v.finding.model.clone())
                    .or_default()
                    .insert(v.finding.version.clone());
            }
        }
        if !known && self.store.get_advisory_raw(vuln).await?.is_none() {
            return Err(InventoryError::NotFound {
                what: "vulnerability (no finding or advisory has this id)",
                key: vuln.to_owned(),
            });
        }
        let mut out = Vec::new();
        for (model, versions) in open {
            let versions: Vec<FirmwareVersion> = versions.into_iter().collect();
            for (device, firmware) in self.store.devices_on_firmware(&model, &versions).await? {
                out.push(AffectedDevice { device, firmware });
            }
        }
        Ok(out)
    }

    /// A device's firmware and its open findings.
    pub async fn device_findings(
        &self,
        device: &DeviceId,
    ) -> Result<(Option<FirmwareVersion>, Vec<FindingView>), InventoryError> {
        let Some((fw, _)) = self.store.device_firmware(device).await? else {
            return Ok((None, Vec::new()));
        };
        let mut v = self.findings(Some(&device.model), Some(&fw)).await?;
        v.retain(FindingView::is_open);
        Ok((Some(fw), v))
    }

    /// A VEX document with one statement per finding in scope: the decision in force, or
    /// `in_triage` when there is none. Revisions are the decision history.
    pub async fn vex(
        &self,
        scope: &VexScope,
        publisher: &str,
        publisher_namespace: &str,
    ) -> Result<VexDocument, InventoryError> {
        if let (Some(m), Some(v)) = (&scope.model, &scope.version) {
            self.firmware(m, v).await?;
        }
        let views = self
            .findings(scope.model.as_ref(), scope.version.as_ref())
            .await?;
        let decisions = self
            .store
            .list_decisions(scope.model.as_ref(), scope.version.as_ref())
            .await?;
        let first = views
            .iter()
            .map(|v| v.finding.first_seen)
            .min()
            .unwrap_or_else(now);
        let mut revisions = vec![(
            first.replace_nanosecond(0).unwrap_or(first),
            "Initial findings".to_owned(),
        )];
        for d in &decisions {
            revisions.push((
                d.at.replace_nanosecond(0).unwrap_or(d.at),
                format!("{} in {}@{}: {}", d.vuln_id, d.model, d.version, d.status),
            ));
        }
        let statements = views
            .into_iter()
            .map(|v| {
                let f = &v.finding;
                let (status, detail, action, author, timestamp) = match &v.decision {
                    Some(d) => (
                        d.status.clone(),
                        d.detail.clone(),
                        d.action.clone(),
                        d.author.to_string(),
                        d.at,
                    ),
                    None => (
                        VexStatus::InTriage,
                        f.summary.clone().unwrap_or_else(|| {
                            "Found by SBOM matching; under investigation.".into()
                        }),
                        None,
                        "medsec".to_owned(),
                        f.first_seen,
                    ),
                };
                VexStatement {
                    vulnerability: f.vuln_id.clone(),
                    aliases: f
                        .identifiers
                        .iter()
                        .filter(|i| **i != f.vuln_id)
                        .cloned()
                        .collect(),
                    product: VexProduct {
                        model: f.model.to_string(),
                        firmware_version: f.version.to_string(),
                        component: medsec_core::Purl::parse(&f.component).ok(),
                    },
                    status,
                    detail,
                    action,
                    author,
                    timestamp,
                }
            })
            .collect();
        let scope_name = match (&scope.model, &scope.version) {
            (Some(m), Some(v)) => format!("{m}:{v}"),
            (Some(m), None) => m.to_string(),
            _ => "all".to_owned(),
        };
        Ok(VexDocument {
            id: format!("urn:medsec:vex:{scope_name}"),
            publisher: publisher.to_owned(),
            publisher_namespace: publisher_namespace.to_owned(),
            title: format!("VEX for {scope_name}"),
            revisions,
            statements,
        })
    }
}

/// A stored SBOM as CycloneDX 1.5 JSON with `medsec:support-level` / `medsec:end-of-support`
/// properties. The serial number is derived from the content, so exporting the same SBOM twice
/// gives the same document and a changed one a new serial.
pub fn export_sbom(
    rec: &SbomRecord,
    manufacturer: &str,
) -> Result<serde_json::Value, InventoryError> {
    let mut h = Sha256::new();
    for part in [
        rec.model.as_str(),
        rec.version.as_str(),
        rec.sha256.as_str(),
        manufacturer,
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    let mut b: [u8; 16] = [0; 16];
    b.copy_from_slice(&h.finalize()[..16]);
    // An RFC 4122 name-based UUID layout (version 5 nibble, variant 10).
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = hex::encode(b);
    let uuid = format!(
        "{}-{}-{}-{}-{}",
        &x[..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..]
    );
    let ts = rec
        .imported_at
        .replace_nanosecond(0)
        .unwrap_or(rec.imported_at)
        .format(&Rfc3339)
        .map_err(|e| InventoryError::invalid("timestamp", e.to_string()))?;
    let meta = medsec_sbom::ExportMeta {
        product: rec.model.to_string(),
        firmware_version: rec.version.to_string(),
        manufacturer: manufacturer.to_owned(),
        timestamp: medsec_sbom::Timestamp::parse(&ts)?,
        serial_number: medsec_sbom::SerialNumber::parse(&uuid)?,
    };
    Ok(medsec_sbom::to_cyclonedx_json(&rec.sbom, &meta))
}
