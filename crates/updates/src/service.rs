//! The director as a service: releases known to the repository, rollouts over the fleet, the
//! signed instruction a device gets when it asks, device status reports and the automatic
//! promotion / halt they drive, and the rollout view with its time-to-X% metrics.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use medsec_core::{Actor, AuditAction, AuditRecord, DeviceId, StoreError};
use medsec_keys::Signer;
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;

use crate::UpdatesError;
use crate::director::{DirectorKey, Instruction, SignedInstruction};
use crate::rollout::{Rollout, RolloutState, StageOutcome, UpdateStatus};

/// A release the image repository holds, as the director knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReleaseRecord {
    pub model: String,
    pub version: String,
    pub target: String,
    pub length: u64,
    pub sha256: String,
    pub security_version: u64,
    pub hardware_id: String,
    /// Unix seconds.
    pub published_at: i64,
}

/// One device's newest report for a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceReport {
    pub device: String,
    pub status: UpdateStatus,
    pub detail: String,
    /// Unix seconds.
    pub at: i64,
}

/// The storage the director needs.
#[async_trait]
pub trait UpdateStore: Send + Sync {
    async fn put_release(&self, r: &ReleaseRecord, audit: &AuditRecord) -> Result<(), StoreError>;
    async fn get_release(
        &self,
        model: &str,
        version: &str,
    ) -> Result<Option<ReleaseRecord>, StoreError>;
    async fn list_releases(&self, model: Option<&str>) -> Result<Vec<ReleaseRecord>, StoreError>;

    async fn insert_rollout(&self, r: &Rollout, audit: &AuditRecord) -> Result<(), StoreError>;
    /// Saves a rollout's state and stage.
    async fn update_rollout(&self, r: &Rollout, audit: &AuditRecord) -> Result<(), StoreError>;
    async fn get_rollout(&self, id: &str) -> Result<Option<Rollout>, StoreError>;
    async fn list_rollouts(&self, model: Option<&str>) -> Result<Vec<Rollout>, StoreError>;

    /// Active (not retired) devices of a model with their tags.
    async fn fleet(&self, model: &str) -> Result<Vec<(String, Vec<String>)>, StoreError>;
    async fn set_device_tags(
        &self,
        device: &DeviceId,
        tags: &[String],
        audit: &AuditRecord,
    ) -> Result<(), StoreError>;
    async fn device_tags(&self, device: &DeviceId) -> Result<Vec<String>, StoreError>;

    /// The next instruction counter for a device (strictly increasing, durable).
    async fn next_counter(&self, device: &DeviceId) -> Result<u64, StoreError>;

    /// Records a device's report (history kept).
    async fn add_report(
        &self,
        rollout: &str,
        report: &DeviceReport,
        audit: &AuditRecord,
    ) -> Result<(), StoreError>;
    /// The newest report of each device for a rollout, with the time each device first
    /// confirmed (for time-to-X% metrics).
    async fn latest_reports(&self, rollout: &str) -> Result<Vec<DeviceReport>, StoreError>;
    /// One device's newest report for a rollout (the path every device poll takes).
    async fn device_report(
        &self,
        rollout: &str,
        device: &str,
    ) -> Result<Option<DeviceReport>, StoreError>;
}

/// Per-stage counts and fleet metrics of one rollout.
#[derive(Debug, Clone, Serialize)]
pub struct RolloutView {
    #[serde(flatten)]
    pub rollout: Rollout,
    pub cohort_size: usize,
    /// For each stage: devices in it, and how many reported each status.
    pub stages: Vec<StageView>,
    /// Seconds from release publication until this share of the cohort confirmed the update.
    pub time_to_percent: BTreeMap<String, Option<i64>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StageView {
    pub share: u8,
    pub devices: usize,
    pub by_status: BTreeMap<String, usize>,
}

/// How long a director instruction stays valid: short, so a frozen director cannot keep a
/// device on an old instruction.
const INSTRUCTION_TTL_SECS: i64 = 24 * 3600;

pub struct Director {
    store: Arc<dyn UpdateStore>,
    key: Arc<dyn Signer>,
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// A rollout id: time and randomness enough to be unique per director.
fn new_id() -> Result<String, UpdatesError> {
    let mut b = [0u8; 6];
    aws_lc_rs::rand::fill(&mut b)
        .map_err(|_| UpdatesError::invalid("rollout id", "no randomness"))?;
    Ok(format!("ro-{}", hex::encode(b)))
}

/// Options of a new rollout.
#[derive(Debug, Clone)]
pub struct RolloutPlan {
    pub cohort: crate::Cohort,
    pub stages: Vec<u8>,
    pub promote_success_rate: f64,
    pub halt_failure_rate: f64,
    pub min_reports: u32,
}

impl Default for RolloutPlan {
    fn default() -> Self {
        RolloutPlan {
            cohort: crate::Cohort::Percent(100),
            stages: vec![5, 25, 100],
            promote_success_rate: 0.95,
            halt_failure_rate: 0.1,
            min_reports: 3,
        }
    }
}

impl Director {
    pub fn new(store: Arc<dyn UpdateStore>, key: Arc<dyn Signer>) -> Self {
        Director { store, key }
    }

    pub fn store(&self) -> &dyn UpdateStore {
        &*self.store
    }

    /// The key devices must be provisioned with to accept this director's instructions.
    pub fn public_key(&self) -> DirectorKey {
        DirectorKey::of(&*self.key)
    }

    /// Records a release the image repository has published.
    pub async fn record_release(
        &self,
        actor: &Actor,
        r: &ReleaseRecord,
    ) -> Result<(), UpdatesError> {
        let audit = AuditRecord::new(
            actor,
            AuditAction::ReleasePublished,
            format!("{}@{}", r.model, r.version),
            json!({"target": r.target, "sha256": r.sha256, "length": r.length,
                   "security_version": r.security_version}),
        );
        self.store.put_release(r, &audit).await?;
        Ok(())
    }

    /// Starts a rollout of a published release.
    pub async fn create_rollout(
        &self,
        actor: &Actor,
        model: &str,
        version: &str,
        plan: RolloutPlan,
    ) -> Result<Rollout, UpdatesError> {
        let rel = self
            .store
            .get_release(model, version)
            .await?
            .ok_or_else(|| UpdatesError::NotFound {
                what: "release",
                key: format!("{model}@{version}"),
            })?;
        let r = Rollout {
            id: new_id()?,
            model: rel.model,
            target: rel.target,
            length: rel.length,
            sha256: rel.sha256,
            security_version: rel.security_version,
            cohort: plan.cohort,
            stages: plan.stages,
            current_stage: 0,
            state: RolloutState::Active,
            promote_success_rate: plan.promote_success_rate,
            halt_failure_rate: plan.halt_failure_rate,
            min_reports: plan.min_reports,
            created_at: now(),
        };
        r.validate()?;
        let audit = AuditRecord::new(
            actor,
            AuditAction::RolloutChanged,
            &r.id,
            json!({"created": true, "model": r.model, "target": r.target, "cohort": r.cohort,
                   "stages": r.stages}),
        );
        self.store.insert_rollout(&r, &audit).await?;
        Ok(r)
    }

    async fn rollout(&self, id: &str) -> Result<Rollout, UpdatesError> {
        self.store
            .get_rollout(id)
            .await?
            .ok_or_else(|| UpdatesError::NotFound {
                what: "rollout",
                key: id.to_owned(),
            })
    }

    /// Pause, resume (to active) or abort; takes effect for the next device request.
    pub async fn control(
        &self,
        actor: &Actor,
        id: &str,
        to: RolloutState,
    ) -> Result<Rollout, UpdatesError> {
        let mut r = self.rollout(id).await?;
        let from = r.state;
        r.control(to)?;
        let audit = AuditRecord::new(
            actor,
            AuditAction::RolloutChanged,
            id,
            json!({"from": from.as_str(), "to": to.as_str()}),
        );
        self.store.update_rollout(&r, &audit).await?;
        Ok(r)
    }

    /// The signed instruction for `device`, if an active rollout offers it something it has
    /// not yet confirmed. The newest offering rollout wins.
    pub async fn instruction_for(
        &self,
        device: &DeviceId,
    ) -> Result<Option<SignedInstruction>, UpdatesError> {
        let urn = device.urn();
        let tags = self.store.device_tags(device).await?;
        let mut rollouts = self
            .store
            .list_rollouts(Some(device.model.as_str()))
            .await?;
        rollouts.sort_by_key(|r| std::cmp::Reverse(r.created_at));
        for r in rollouts {
            if !r.offers_to(&urn, &tags) {
                continue;
            }
            let done = self
                .store
                .device_report(&r.id, &urn)
                .await?
                .is_some_and(|x| x.status == UpdateStatus::Confirmed);
            if done {
                continue;
            }
            let t = now();
            let i = Instruction {
                device: urn.clone(),
                rollout: r.id.clone(),
                target: r.target.clone(),
                length: r.length,
                sha256: r.sha256.clone(),
                security_version: r.security_version,
                counter: self.store.next_counter(device).await?,
                issued_at: t,
                expires: t + INSTRUCTION_TTL_SECS,
            };
            return Ok(Some(SignedInstruction::sign(&i, &*self.key)?));
        }
        Ok(None)
    }

    /// Records a device's report and applies the rollout's automatic rules.
    pub async fn report(
        &self,
        device: &DeviceId,
        rollout: &str,
        status: UpdateStatus,
        detail: &str,
    ) -> Result<Rollout, UpdatesError> {
        let mut r = self.rollout(rollout).await?;
        if r.model != device.model.as_str() {
            return Err(UpdatesError::Refused(format!(
                "rollout {rollout} is for model {}, not {}",
                r.model, device.model
            )));
        }
        let detail: String = detail.chars().take(1024).collect();
        let actor = Actor::parse(&format!("device:{}", device.urn()))
            .map_err(|e| UpdatesError::invalid("device", e.to_string()))?;
        let rep = DeviceReport {
            device: device.urn(),
            status,
            detail,
            at: now(),
        };
        let audit = AuditRecord::new(
            &actor,
            AuditAction::UpdateReported,
            rollout,
            json!({"status": status.as_str(), "detail": rep.detail}),
        );
        self.store.add_report(rollout, &rep, &audit).await?;
        let reports = self.store.latest_reports(rollout).await?;
        let fleet = self.store.fleet(&r.model).await?;
        let mut o = StageOutcome {
            devices: fleet
                .iter()
                .filter(|(d, tags)| {
                    crate::in_cohort(&r.cohort, &r.id, d, tags) && r.in_stage(d, r.current_stage)
                })
                .count() as u32,
            ..StageOutcome::default()
        };
        for x in reports
            .iter()
            .filter(|x| r.in_stage(&x.device, r.current_stage))
        {
            o.reported += 1;
            match x.status.outcome() {
                Some(true) => o.succeeded += 1,
                Some(false) => o.failed += 1,
                None => {}
            }
        }
        let before = (r.state, r.current_stage);
        if r.evaluate(&o).is_some() {
            let audit = AuditRecord::new(
                &Actor::system(),
                AuditAction::RolloutChanged,
                rollout,
                json!({"automatic": true, "from": before.0.as_str(), "to": r.state.as_str(),
                       "stage": r.current_stage, "outcome": o}),
            );
            self.store.update_rollout(&r, &audit).await?;
        }
        Ok(r)
    }

    /// The rollout with per-stage counts and time-to-X% of the cohort confirmed.
    pub async fn view(&self, id: &str) -> Result<RolloutView, UpdatesError> {
        let r = self.rollout(id).await?;
        let fleet = self.store.fleet(&r.model).await?;
        let cohort: Vec<&String> = fleet
            .iter()
            .filter(|(d, tags)| crate::in_cohort(&r.cohort, &r.id, d, tags))
            .map(|(d, _)| d)
            .collect();
        let reports = self.store.latest_reports(id).await?;
        let stages = r
            .stages
            .iter()
            .enumerate()
            .map(|(i, share)| {
                let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
                for x in reports.iter().filter(|x| r.in_stage(&x.device, i)) {
                    *by_status.entry(x.status.as_str().to_owned()).or_default() += 1;
                }
                StageView {
                    share: *share,
                    devices: cohort.iter().filter(|d| r.in_stage(d, i)).count(),
                    by_status,
                }
            })
            .collect();
        let published = self
            .store
            .list_releases(Some(&r.model))
            .await?
            .into_iter()
            .find(|x| x.target == r.target)
            .map(|x| x.published_at)
            .unwrap_or(r.created_at);
        let mut confirmed: Vec<i64> = reports
            .iter()
            .filter(|x| x.status == UpdateStatus::Confirmed)
            .map(|x| x.at)
            .collect();
        confirmed.sort_unstable();
        let mut ttp = BTreeMap::new();
        for pct in [50usize, 90, 100] {
            let need = (cohort.len() * pct).div_ceil(100).max(1);
            ttp.insert(
                format!("{pct}%"),
                confirmed.get(need - 1).map(|t| t - published),
            );
        }
        Ok(RolloutView {
            cohort_size: cohort.len(),
            rollout: r,
            stages,
            time_to_percent: ttp,
        })
    }
}
