//! Staged rollouts: which devices a release is offered to (a cohort, then growing stages of it),
//! when a stage is promoted (success rate) or the rollout halted (failure rate), and the
//! operator's pause, resume and abort.
//!
//! Stage membership is a deterministic function of (rollout id, device), so a device's answer
//! never flips between requests and a stage only ever adds devices to the previous one.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::UpdatesError;

/// Which devices a rollout is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum Cohort {
    /// Exactly these device URNs.
    Devices(Vec<String>),
    /// Devices carrying this tag.
    Tag(String),
    /// This percentage (1-100) of the model's fleet, chosen deterministically per device.
    Percent(u8),
}

/// Where a device falls in [0, 10000) for this rollout: the same every time it asks.
fn bucket(salt: &str, rollout: &str, device: &str) -> u32 {
    let mut h = Sha256::new();
    for p in [salt, rollout, device] {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]]) % 10_000
}

/// Whether `device` (with `tags`) belongs to `cohort` of rollout `rollout`.
pub fn in_cohort(cohort: &Cohort, rollout: &str, device: &str, tags: &[String]) -> bool {
    match cohort {
        Cohort::Devices(list) => list.iter().any(|d| d == device),
        Cohort::Tag(t) => tags.iter().any(|x| x == t),
        Cohort::Percent(p) => bucket("cohort", rollout, device) < u32::from(*p) * 100,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutState {
    Active,
    /// Stopped by an operator; resumes where it was.
    Paused,
    /// Stopped automatically: too many failures. An operator may resume after looking.
    Halted,
    /// Stopped for good.
    Aborted,
    /// Every stage done.
    Completed,
}

impl RolloutState {
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutState::Active => "active",
            RolloutState::Paused => "paused",
            RolloutState::Halted => "halted",
            RolloutState::Aborted => "aborted",
            RolloutState::Completed => "completed",
        }
    }
}

impl FromStr for RolloutState {
    type Err = UpdatesError;
    fn from_str(s: &str) -> Result<Self, UpdatesError> {
        Ok(match s {
            "active" => RolloutState::Active,
            "paused" => RolloutState::Paused,
            "halted" => RolloutState::Halted,
            "aborted" => RolloutState::Aborted,
            "completed" => RolloutState::Completed,
            _ => return Err(UpdatesError::invalid("rollout state", s)),
        })
    }
}

impl fmt::Display for RolloutState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a device reports about an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateStatus {
    Downloading,
    Installed,
    Confirmed,
    Failed,
    Reverted,
}

impl UpdateStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateStatus::Downloading => "downloading",
            UpdateStatus::Installed => "installed",
            UpdateStatus::Confirmed => "confirmed",
            UpdateStatus::Failed => "failed",
            UpdateStatus::Reverted => "reverted",
        }
    }

    /// Counted as a success (confirmed) or a failure (failed, reverted); else in progress.
    pub fn outcome(self) -> Option<bool> {
        match self {
            UpdateStatus::Confirmed => Some(true),
            UpdateStatus::Failed | UpdateStatus::Reverted => Some(false),
            _ => None,
        }
    }
}

impl FromStr for UpdateStatus {
    type Err = UpdatesError;
    fn from_str(s: &str) -> Result<Self, UpdatesError> {
        Ok(match s {
            "downloading" => UpdateStatus::Downloading,
            "installed" => UpdateStatus::Installed,
            "confirmed" => UpdateStatus::Confirmed,
            "failed" => UpdateStatus::Failed,
            "reverted" => UpdateStatus::Reverted,
            _ => {
                return Err(UpdatesError::invalid(
                    "update status",
                    format!(
                        "{s:?} is not one of downloading, installed, confirmed, failed, reverted"
                    ),
                ));
            }
        })
    }
}

/// One stage: the share (1-100 %) of the cohort offered the release.
pub type Stage = u8;

/// Counts of the current stage's devices by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StageOutcome {
    /// Devices of the cohort in the stage.
    pub devices: u32,
    /// Devices in the stage that reported anything.
    pub reported: u32,
    pub succeeded: u32,
    pub failed: u32,
}

/// A rollout of one release to a cohort.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    pub id: String,
    pub model: String,
    /// TUF target name of the release.
    pub target: String,
    pub length: u64,
    pub sha256: String,
    pub security_version: u64,
    pub cohort: Cohort,
    /// Increasing shares of the cohort, ending at 100.
    pub stages: Vec<Stage>,
    pub current_stage: usize,
    pub state: RolloutState,
    /// Promote when at least `min_reports` devices of the stage finished and this share of them
    /// succeeded.
    pub promote_success_rate: f64,
    /// Halt as soon as this share of finished devices failed (with at least `min_reports`).
    pub halt_failure_rate: f64,
    pub min_reports: u32,
    /// Unix seconds.
    pub created_at: i64,
}

impl Rollout {
    /// Checks the stage plan and thresholds.
    pub fn validate(&self) -> Result<(), UpdatesError> {
        let bad = |r: &str| Err(UpdatesError::invalid("rollout", r.to_owned()));
        if self.stages.is_empty() || self.stages.last() != Some(&100) {
            return bad("stages must end at 100 (%)");
        }
        if self.stages.windows(2).any(|w| w[0] >= w[1]) || self.stages[0] == 0 {
            return bad("stages must be increasing percentages between 1 and 100");
        }
        if !(0.0..=1.0).contains(&self.promote_success_rate)
            || !(0.0..=1.0).contains(&self.halt_failure_rate)
        {
            return bad("rates are between 0 and 1");
        }
        if let Cohort::Percent(p) = self.cohort
            && !(1..=100).contains(&p)
        {
            return bad("a percentage cohort is 1-100");
        }
        if let Cohort::Devices(d) = &self.cohort
            && d.is_empty()
        {
            return bad("a device-list cohort needs at least one device");
        }
        Ok(())
    }

    /// Whether the release is offered to `device` now: the rollout is active, the device is in
    /// the cohort, and within the current stage's share of it.
    pub fn offers_to(&self, device: &str, tags: &[String]) -> bool {
        self.state == RolloutState::Active
            && in_cohort(&self.cohort, &self.id, device, tags)
            && self.in_stage(device, self.current_stage)
    }

    /// Whether `device` (already in the cohort) belongs to stage `stage` (stages are nested).
    pub fn in_stage(&self, device: &str, stage: usize) -> bool {
        let share = self.stages.get(stage).copied().unwrap_or(100);
        bucket("stage", &self.id, device) < u32::from(share) * 100
    }

    /// Applies the automatic rules to the current stage's outcome. Returns what changed.
    pub fn evaluate(&mut self, o: &StageOutcome) -> Option<RolloutState> {
        if self.state != RolloutState::Active {
            return None;
        }
        let finished = o.succeeded + o.failed;
        if finished >= self.min_reports.max(1)
            && f64::from(o.failed) / f64::from(finished) > self.halt_failure_rate
        {
            self.state = RolloutState::Halted;
            return Some(self.state);
        }
        if finished >= self.min_reports
            && finished > 0
            && f64::from(o.succeeded) / f64::from(finished) >= self.promote_success_rate
        {
            if self.current_stage + 1 < self.stages.len() {
                self.current_stage += 1;
                return Some(self.state);
            }
            // Complete only when every device of the last stage has finished, not merely the
            // ones that happened to report.
            if finished >= o.devices {
                self.state = RolloutState::Completed;
                return Some(self.state);
            }
        }
        None
    }

    /// Operator controls. Abort is final; pause and resume only move between active, paused
    /// and halted.
    pub fn control(&mut self, to: RolloutState) -> Result<(), UpdatesError> {
        use RolloutState::*;
        let ok = matches!(
            (self.state, to),
            (Active, Paused) | (Paused | Halted, Active) | (Active | Paused | Halted, Aborted)
        );
        if !ok {
            return Err(UpdatesError::Refused(format!(
                "a {} rollout cannot become {}",
                self.state, to
            )));
        }
        self.state = to;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(cohort: Cohort) -> Rollout {
        Rollout {
            id: "r1".into(),
            model: "pump-x2".into(),
            target: "pump-x2/pump-x2-2.1.bin".into(),
            length: 1,
            sha256: "00".into(),
            security_version: 2,
            cohort,
            stages: vec![10, 50, 100],
            current_stage: 0,
            state: RolloutState::Active,
            promote_success_rate: 0.95,
            halt_failure_rate: 0.2,
            min_reports: 5,
            created_at: 0,
        }
    }

    #[test]
    fn cohorts_are_deterministic_and_stages_nested() {
        let devs: Vec<String> = (0..2000)
            .map(|i| format!("urn:medsec:device:pump-x2:SN-{i}"))
            .collect();
        let ro = r(Cohort::Percent(30));
        let n = devs
            .iter()
            .filter(|d| in_cohort(&ro.cohort, &ro.id, d, &[]))
            .count();
        assert!((500..700).contains(&n), "about 30% of 2000: {n}");
        for d in &devs {
            assert_eq!(
                in_cohort(&ro.cohort, "r1", d, &[]),
                in_cohort(&ro.cohort, "r1", d, &[])
            );
            // Nested stages: in stage 0 implies in stage 1.
            if ro.in_stage(d, 0) {
                assert!(ro.in_stage(d, 1));
            }
        }
        let list = r(Cohort::Devices(vec![devs[0].clone()]));
        assert!(in_cohort(&list.cohort, "r1", &devs[0], &[]));
        assert!(!in_cohort(&list.cohort, "r1", &devs[1], &[]));
        let tag = r(Cohort::Tag("icu".into()));
        assert!(in_cohort(&tag.cohort, "r1", &devs[1], &["icu".into()]));
        assert!(!in_cohort(&tag.cohort, "r1", &devs[1], &[]));
    }

    #[test]
    fn promotion_halt_and_controls() {
        let mut ro = r(Cohort::Percent(100));
        ro.validate().unwrap();
        // Too few reports: nothing happens.
        assert_eq!(
            ro.evaluate(&StageOutcome {
                devices: 20,
                reported: 3,
                succeeded: 3,
                failed: 0
            }),
            None
        );
        assert_eq!(ro.current_stage, 0);
        ro.evaluate(&StageOutcome {
            devices: 20,
            reported: 10,
            succeeded: 10,
            failed: 0,
        });
        assert_eq!(ro.current_stage, 1);
        // 3 of 10 failed > 20%: halted, and a halted rollout offers nothing.
        assert_eq!(
            ro.evaluate(&StageOutcome {
                devices: 20,
                reported: 10,
                succeeded: 7,
                failed: 3
            }),
            Some(RolloutState::Halted)
        );
        assert!(!ro.offers_to("urn:medsec:device:pump-x2:SN-1", &[]));
        ro.control(RolloutState::Active).unwrap();
        // On the last stage: complete only once every device in it finished.
        ro.current_stage = 2;
        assert_eq!(
            ro.evaluate(&StageOutcome {
                devices: 20,
                reported: 10,
                succeeded: 10,
                failed: 0
            }),
            None
        );
        assert_eq!(
            ro.evaluate(&StageOutcome {
                devices: 20,
                reported: 20,
                succeeded: 20,
                failed: 0
            }),
            Some(RolloutState::Completed)
        );
        ro.state = RolloutState::Active;
        ro.control(RolloutState::Paused).unwrap();
        assert!(!ro.offers_to("urn:medsec:device:pump-x2:SN-1", &[]));
        ro.control(RolloutState::Aborted).unwrap();
        assert!(ro.control(RolloutState::Active).is_err(), "abort is final");
        let mut bad = r(Cohort::Percent(0));
        assert!(bad.validate().is_err());
        bad.cohort = Cohort::Percent(50);
        bad.stages = vec![50, 20, 100];
        assert!(bad.validate().is_err());
    }
}
