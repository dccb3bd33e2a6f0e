//! The fleet-risk view: devices where an exploitable vulnerability, an expiring identity and an
//! untaken fix meet. Each tool shows one of these; the combination is what needs a decision
//! this week: a device whose certificate must be renewed anyway is the cheapest moment to
//! update it, and one running KEV-listed firmware should not simply be handed a fresh identity.
//!
//! A device is in the view when at once:
//! 1. its running firmware has an open finding that is KEV-listed or critical
//!    (CVSS >= [`CRITICAL_CVSS`]) — an *urgent* finding;
//! 2. its current certificate is unrevoked and expires within N days, or has expired;
//! 3. a *fixing release* exists and the device does not run it (it runs the vulnerable
//!    firmware, so it has not taken it).
//!
//! A fixing release for firmware `F` of model `M` is a published release (published_at <= now)
//! of `M` that is newer than `F` — a higher `security_version` than `F`'s own release record,
//! or, when `F` has no release record, published on a later day than `F`'s release date (any
//! published release of `M` when that date is unknown too) — whose firmware has no open finding
//! for at least one of `F`'s urgent vulnerabilities (compared by primary vulnerability id).
//! Among several, [`plan_fixes`] picks the one that fixes the most of them; then one whose SBOM
//! is on record (without an SBOM "no open finding" means "never analysed", not "fixed"); then
//! the smallest step (lowest security_version, earliest published).
//!
//! The ranking ([`RiskScore`]) orders devices, most urgent first, by:
//! 1. tier: any KEV-listed finding before critical-only;
//! 2. days until the certificate expires (whole days, negative once expired): sooner first;
//! 3. vulnerable components (components with any open finding in the firmware): more first;
//! 4. highest CVSS among the urgent findings: higher first;
//! 5. device URN, so equal scores have a stable order.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeSet, HashMap};

use medsec_core::{CertSerial, DeviceId, DeviceModel, FirmwareVersion};
use serde::Serialize;
use time::{Date, OffsetDateTime};

use crate::CertStatus;
use crate::model::as_urn;

/// CVSS base score from which a finding counts as critical (CVSS v3/v4 "Critical").
pub const CRITICAL_CVSS: f64 = 9.0;

const DAY_SECS: i64 = 86_400;

/// Checks the risk view's parameters: the window as for fleet queries, `limit` in
/// 1..=[`crate::MAX_LIMIT`].
pub fn validate_risk(expiring_within_days: u32, limit: u32) -> Result<(), crate::FleetError> {
    crate::query::check_days(expiring_within_days)?;
    crate::query::check_limit(limit)
}

/// Whether a finding is urgent: KEV-listed or critical.
pub fn is_urgent(kev: bool, cvss_score: Option<f64>) -> bool {
    kev || cvss_score.is_some_and(|s| s >= CRITICAL_CVSS)
}

/// An open, urgent finding in a firmware version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UrgentFinding {
    pub vuln_id: String,
    pub component: String,
    pub kev: bool,
    pub cvss_score: Option<f64>,
}

/// A running firmware version that has urgent findings, as the store found it.
#[derive(Debug, Clone, PartialEq)]
pub struct FirmwareFacts {
    pub model: DeviceModel,
    pub version: FirmwareVersion,
    /// The firmware's release date, used to order releases when it has no release record.
    pub released_on: Option<Date>,
    /// Its open urgent findings (at least one).
    pub urgent: Vec<UrgentFinding>,
    /// Distinct components with any open finding, urgent or not.
    pub vulnerable_components: u32,
}

/// A release the director knows for a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseInfo {
    pub version: FirmwareVersion,
    pub security_version: u64,
    pub published_at: OffsetDateTime,
    /// The release's firmware has an SBOM on record, so its findings mean something.
    pub sbom_on_record: bool,
    /// The newest active rollout of this release, if any.
    pub active_rollout: Option<String>,
}

/// The release chosen to fix a firmware's urgent findings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FixingRelease {
    pub version: FirmwareVersion,
    pub security_version: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub published_at: OffsetDateTime,
    pub sbom_on_record: bool,
    /// Urgent vulnerabilities of the running firmware this release has no open finding for.
    pub fixes: Vec<String>,
    /// Urgent vulnerabilities it does not fix (still open in its firmware).
    pub not_fixed: Vec<String>,
    /// The id of an active rollout of this release: the one-click path to the update.
    pub active_rollout: Option<String>,
}

/// A running firmware with urgent findings and the release that fixes them.
#[derive(Debug, Clone, PartialEq)]
pub struct FirmwareRisk {
    pub model: DeviceModel,
    pub version: FirmwareVersion,
    pub urgent: Vec<UrgentFinding>,
    pub vulnerable_components: u32,
    pub fix: FixingRelease,
}

/// Chooses the fixing release for every firmware in `firmware` that has one.
///
/// `releases(model)` are the model's releases; `open_in(model, version, vuln_id)` tells whether
/// a release's firmware has an open finding for the vulnerability.
pub fn plan_fixes<'a>(
    firmware: &[FirmwareFacts],
    releases: impl Fn(&DeviceModel) -> &'a [ReleaseInfo],
    open_in: impl Fn(&DeviceModel, &FirmwareVersion, &str) -> bool,
    now: OffsetDateTime,
) -> Vec<FirmwareRisk> {
    let mut out = Vec::new();
    for fw in firmware {
        let vulns: BTreeSet<&str> = fw
            .urgent
            .iter()
            .filter(|f| is_urgent(f.kev, f.cvss_score))
            .map(|f| f.vuln_id.as_str())
            .collect();
        if vulns.is_empty() {
            continue;
        }
        let all = releases(&fw.model);
        let running = all.iter().find(|r| r.version == fw.version);
        let newer = |r: &ReleaseInfo| match running {
            Some(run) => r.security_version > run.security_version,
            None => match fw.released_on {
                Some(d) => r.published_at.date() > d,
                None => true,
            },
        };
        let best = all
            .iter()
            .filter(|r| r.version != fw.version && r.published_at <= now && newer(r))
            .map(|r| {
                let (fixes, not_fixed): (Vec<&str>, Vec<&str>) = vulns
                    .iter()
                    .partition(|v| !open_in(&fw.model, &r.version, v));
                (r, fixes, not_fixed)
            })
            .filter(|(_, fixes, _)| !fixes.is_empty())
            .max_by(|(a, fa, _), (b, fb, _)| {
                (
                    fa.len(),
                    a.sbom_on_record,
                    Reverse(a.security_version),
                    Reverse(a.published_at),
                    Reverse(&a.version),
                )
                    .cmp(&(
                        fb.len(),
                        b.sbom_on_record,
                        Reverse(b.security_version),
                        Reverse(b.published_at),
                        Reverse(&b.version),
                    ))
            });
        if let Some((r, fixes, not_fixed)) = best {
            out.push(FirmwareRisk {
                model: fw.model.clone(),
                version: fw.version.clone(),
                urgent: fw.urgent.clone(),
                vulnerable_components: fw.vulnerable_components,
                fix: FixingRelease {
                    version: r.version.clone(),
                    security_version: r.security_version,
                    published_at: r.published_at,
                    sbom_on_record: r.sbom_on_record,
                    fixes: fixes.into_iter().map(str::to_owned).collect(),
                    not_fixed: not_fixed.into_iter().map(str::to_owned).collect(),
                    active_rollout: r.active_rollout.clone(),
                },
            });
        }
    }
    out
}

/// A device the store found on a firmware from [`plan_fixes`] whose current certificate is
/// unrevoked and expires within the window (or has expired).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskCandidate {
    pub device: DeviceId,
    pub firmware: FirmwareVersion,
    pub cert_serial: CertSerial,
    pub cert_not_after: OffsetDateTime,
}

/// KEV-listed outranks critical.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskTier {
    Critical,
    Kev,
}

/// The documented ranking score (see the module documentation for the order).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RiskScore {
    pub tier: RiskTier,
    /// Whole days from now until the certificate's notAfter, rounded down: 0 = expires within
    /// a day, negative = expired that many days ago (rounded away from zero).
    pub days_to_expiry: i64,
    pub vulnerable_components: u32,
    pub max_cvss: Option<f64>,
}

impl RiskScore {
    /// `Less` when `self` is more urgent than `other`: sorting ascending puts the most urgent
    /// first.
    pub fn urgency_cmp(&self, other: &RiskScore) -> Ordering {
        other
            .tier
            .cmp(&self.tier)
            .then(self.days_to_expiry.cmp(&other.days_to_expiry))
            .then(other.vulnerable_components.cmp(&self.vulnerable_components))
            .then(
                other
                    .max_cvss
                    .unwrap_or(-1.0)
                    .total_cmp(&self.max_cvss.unwrap_or(-1.0)),
            )
    }
}

/// Why a device is in the risk view.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RiskReason {
    /// An open finding listed in CISA KEV.
    KevFinding {
        vuln_id: String,
        component: String,
        cvss_score: Option<f64>,
    },
    /// An open finding with CVSS >= 9.0 (not KEV-listed).
    CriticalFinding {
        vuln_id: String,
        component: String,
        cvss_score: Option<f64>,
    },
    CertExpiring {
        serial: CertSerial,
        #[serde(with = "time::serde::rfc3339")]
        not_after: OffsetDateTime,
        days_left: i64,
    },
    CertExpired {
        serial: CertSerial,
        #[serde(with = "time::serde::rfc3339")]
        not_after: OffsetDateTime,
    },
    /// A published release fixes it and the device does not run it.
    FixNotTaken {
        release: FirmwareVersion,
        security_version: u64,
        active_rollout: Option<String>,
    },
}

/// One row of the risk view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetRiskRow {
    /// 1 = most urgent.
    pub rank: u32,
    #[serde(serialize_with = "as_urn")]
    pub device: DeviceId,
    pub firmware: FirmwareVersion,
    pub cert_serial: CertSerial,
    #[serde(with = "time::serde::rfc3339")]
    pub cert_not_after: OffsetDateTime,
    /// Expiring or Expired.
    pub cert_status: CertStatus,
    pub score: RiskScore,
    /// KEV findings first, then critical ones, then the certificate, then the untaken fix.
    pub reasons: Vec<RiskReason>,
    pub fix: FixingRelease,
}

fn days_until(t: OffsetDateTime, now: OffsetDateTime) -> i64 {
    (t - now).whole_seconds().div_euclid(DAY_SECS)
}

/// Ranks candidates on planned firmware, most urgent first, and keeps the first `limit`.
/// Candidates on a firmware without a plan, or whose certificate is outside the window, are
/// dropped (the store's query should not return them; this keeps the view's rules in one
/// place).
pub fn rank_risk(
    candidates: Vec<RiskCandidate>,
    plans: &[FirmwareRisk],
    now: OffsetDateTime,
    expiring_within_days: u32,
    limit: u32,
) -> Vec<FleetRiskRow> {
    let by_fw: HashMap<(&DeviceModel, &FirmwareVersion), &FirmwareRisk> =
        plans.iter().map(|p| ((&p.model, &p.version), p)).collect();
    let mut scored: Vec<(RiskScore, RiskCandidate, &FirmwareRisk)> = candidates
        .into_iter()
        .filter_map(|c| {
            let plan = *by_fw.get(&(&c.device.model, &c.firmware))?;
            let status = CertStatus::of_cert(false, c.cert_not_after, now, expiring_within_days);
            if !matches!(status, CertStatus::Expiring | CertStatus::Expired) {
                return None;
            }
            let urgent: Vec<&UrgentFinding> = plan
                .urgent
                .iter()
                .filter(|f| is_urgent(f.kev, f.cvss_score))
                .collect();
            let score = RiskScore {
                tier: if urgent.iter().any(|f| f.kev) {
                    RiskTier::Kev
                } else {
                    RiskTier::Critical
                },
                days_to_expiry: days_until(c.cert_not_after, now),
                vulnerable_components: plan.vulnerable_components,
                max_cvss: urgent
                    .iter()
                    .filter_map(|f| f.cvss_score)
                    .max_by(f64::total_cmp),
            };
            Some((score, c, plan))
        })
        .collect();
    scored.sort_by(|(sa, ca, _), (sb, cb, _)| {
        sa.urgency_cmp(sb).then_with(|| {
            (ca.device.model.as_str(), ca.device.serial.as_str())
                .cmp(&(cb.device.model.as_str(), cb.device.serial.as_str()))
        })
    });
    scored.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    scored
        .into_iter()
        .enumerate()
        .map(|(i, (score, c, plan))| {
            let status = CertStatus::of_cert(false, c.cert_not_after, now, expiring_within_days);
            let mut findings: Vec<&UrgentFinding> = plan
                .urgent
                .iter()
                .filter(|f| is_urgent(f.kev, f.cvss_score))
                .collect();
            findings.sort_by(|a, b| {
                b.kev
                    .cmp(&a.kev)
                    .then(
                        b.cvss_score
                            .unwrap_or(-1.0)
                            .total_cmp(&a.cvss_score.unwrap_or(-1.0)),
                    )
                    .then(a.vuln_id.cmp(&b.vuln_id))
                    .then(a.component.cmp(&b.component))
            });
            let mut reasons: Vec<RiskReason> = findings
                .into_iter()
                .map(|f| {
                    let (vuln_id, component, cvss_score) =
                        (f.vuln_id.clone(), f.component.clone(), f.cvss_score);
                    if f.kev {
                        RiskReason::KevFinding {
                            vuln_id,
                            component,
                            cvss_score,
                        }
                    } else {
                        RiskReason::CriticalFinding {
                            vuln_id,
                            component,
                            cvss_score,
                        }
                    }
                })
                .collect();
            reasons.push(if status == CertStatus::Expired {
                RiskReason::CertExpired {
                    serial: c.cert_serial.clone(),
                    not_after: c.cert_not_after,
                }
            } else {
                RiskReason::CertExpiring {
                    serial: c.cert_serial.clone(),
                    not_after: c.cert_not_after,
                    days_left: score.days_to_expiry,
                }
            });
            reasons.push(RiskReason::FixNotTaken {
                release: plan.fix.version.clone(),
                security_version: plan.fix.security_version,
                active_rollout: plan.fix.active_rollout.clone(),
            });
            FleetRiskRow {
                rank: u32::try_from(i + 1).unwrap_or(u32::MAX),
                device: c.device,
                firmware: c.firmware,
                cert_serial: c.cert_serial,
                cert_not_after: c.cert_not_after,
                cert_status: status,
                score,
                reasons,
                fix: plan.fix.clone(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(secs).unwrap()
    }
    const NOW: i64 = 1_800_000_000;
    fn now() -> OffsetDateTime {
        at(NOW)
    }
    fn m(s: &str) -> DeviceModel {
        DeviceModel::parse(s).unwrap()
    }
    fn v(s: &str) -> FirmwareVersion {
        FirmwareVersion::parse(s).unwrap()
    }
    fn f(vuln: &str, comp: &str, kev: bool, cvss: Option<f64>) -> UrgentFinding {
        UrgentFinding {
            vuln_id: vuln.into(),
            component: comp.into(),
            kev,
            cvss_score: cvss,
        }
    }
    fn rel(ver: &str, sv: u64, published: i64, sbom: bool, rollout: Option<&str>) -> ReleaseInfo {
        ReleaseInfo {
            version: v(ver),
            security_version: sv,
            published_at: at(published),
            sbom_on_record: sbom,
            active_rollout: rollout.map(str::to_owned),
        }
    }
    fn facts(model: &str, ver: &str, urgent: Vec<UrgentFinding>, comps: u32) -> FirmwareFacts {
        FirmwareFacts {
            model: m(model),
            version: v(ver),
            released_on: None,
            urgent,
            vulnerable_components: comps,
        }
    }

    #[test]
    fn urgency() {
        assert!(is_urgent(true, None));
        assert!(is_urgent(false, Some(9.0)));
        assert!(!is_urgent(false, Some(8.9)));
        assert!(!is_urgent(false, None));
    }

    type Open = BTreeSet<(String, String, String)>;

    fn plan(
        fw: &[FirmwareFacts],
        releases: &BTreeMap<DeviceModel, Vec<ReleaseInfo>>,
        open: &Open,
    ) -> Vec<FirmwareRisk> {
        plan_fixes(
            fw,
            |model| releases.get(model).map(Vec::as_slice).unwrap_or(&[]),
            |model, ver, vuln| {
                open.contains(&(model.to_string(), ver.to_string(), vuln.to_owned()))
            },
            now(),
        )
    }

    fn open(items: &[(&str, &str, &str)]) -> Open {
        items
            .iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect()
    }

    #[test]
    fn fixing_release_is_newer_published_and_actually_fixes() {
        let fw = vec![facts(
            "pump",
            "2.0",
            vec![
                f("CVE-1", "a", true, None),
                f("CVE-2", "b", false, Some(9.8)),
            ],
            3,
        )];
        let releases = BTreeMap::from([(
            m("pump"),
            vec![
                rel("1.0", 1, NOW - 900, true, None),
                rel("2.0", 2, NOW - 500, true, None),
                // Still carries both: not a fix.
                rel("2.1", 3, NOW - 400, true, None),
                // Fixes CVE-1 only.
                rel("2.2", 4, NOW - 300, true, Some("ro-22")),
                // Fixes both.
                rel("2.3", 5, NOW - 200, true, Some("ro-23")),
                // Fixes both but is not published yet.
                rel("2.4", 6, NOW + 100, true, None),
            ],
        )]);
        let open = open(&[
            ("pump", "1.0", "CVE-1"),
            ("pump", "2.1", "CVE-1"),
            ("pump", "2.1", "CVE-2"),
            ("pump", "2.2", "CVE-2"),
        ]);
        let p = plan(&fw, &releases, &open);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].fix.version, v("2.3"));
        assert_eq!(p[0].fix.fixes, vec!["CVE-1", "CVE-2"]);
        assert!(p[0].fix.not_fixed.is_empty());
        assert_eq!(p[0].fix.active_rollout.as_deref(), Some("ro-23"));

        // Without 2.3 the partial fix is chosen and says what it leaves open.
        let mut fewer = releases.clone();
        fewer
            .get_mut(&m("pump"))
            .unwrap()
            .retain(|r| r.version != v("2.3"));
        let p = plan(&fw, &fewer, &open);
        assert_eq!(p[0].fix.version, v("2.2"));
        assert_eq!(p[0].fix.fixes, vec!["CVE-1"]);
        assert_eq!(p[0].fix.not_fixed, vec!["CVE-2"]);

        // Older releases (lower security_version) never count, even if "clean".
        let old_only = BTreeMap::from([(
            m("pump"),
            vec![
                rel("1.5", 1, NOW - 900, true, None),
                rel("2.0", 2, NOW - 500, true, None),
            ],
        )]);
        assert!(plan(&fw, &old_only, &Open::new()).is_empty());
    }

    #[test]
    fn smallest_analysed_step_wins_ties() {
        let fw = vec![facts("pump", "2.0", vec![f("CVE-1", "a", true, None)], 1)];
        let releases = BTreeMap::from([(
            m("pump"),
            vec![
                rel("2.0", 2, NOW - 500, true, None),
                rel("3.0", 4, NOW - 100, true, None),
                rel("2.5", 3, NOW - 200, true, None),
                // Lowest step, but never analysed: "no open finding" proves nothing.
                rel("2.1", 3, NOW - 300, false, None),
            ],
        )]);
        let p = plan(&fw, &releases, &Open::new());
        assert_eq!(p[0].fix.version, v("2.5"));
        assert!(p[0].fix.sbom_on_record);
    }

    #[test]
    fn without_a_release_record_newer_means_published_later() {
        let mut fw = facts("pump", "2.0-hotfix", vec![f("CVE-1", "a", true, None)], 1);
        let day = |d: i64| at(NOW - d * DAY_SECS);
        fw.released_on = Some(day(10).date());
        let releases = BTreeMap::from([(
            m("pump"),
            vec![
                rel("1.9", 9, day(20).unix_timestamp(), true, None),
                rel("2.1", 1, day(5).unix_timestamp(), true, None),
            ],
        )]);
        // Security versions are not comparable without a record: 2.1 is newer by date even
        // though its counter is lower than 1.9's.
        let p = plan(std::slice::from_ref(&fw), &releases, &Open::new());
        assert_eq!(p[0].fix.version, v("2.1"));
        // 1.9 was published before 2.0-hotfix: no fix on its own...
        let only_old = BTreeMap::from([(m("pump"), vec![releases[&m("pump")][0].clone()])]);
        assert!(plan(std::slice::from_ref(&fw), &only_old, &Open::new()).is_empty());
        // ...unless the release date is unknown: then every published release is a candidate.
        fw.released_on = None;
        let p = plan(&[fw], &only_old, &Open::new());
        assert_eq!(p[0].fix.version, v("1.9"));
    }

    fn cand(model: &str, serial: &str, ver: &str, expires_in_secs: i64) -> RiskCandidate {
        RiskCandidate {
            device: DeviceId::new(m(model), medsec_core::DeviceSerial::parse(serial).unwrap()),
            firmware: v(ver),
            cert_serial: format!("{:02x}", serial.len() + 1).parse().unwrap(),
            cert_not_after: at(NOW + expires_in_secs),
        }
    }

    fn fix(ver: &str, rollout: Option<&str>) -> FixingRelease {
        FixingRelease {
            version: v(ver),
            security_version: 9,
            published_at: at(NOW - 10),
            sbom_on_record: true,
            fixes: vec!["CVE-1".into()],
            not_fixed: vec![],
            active_rollout: rollout.map(str::to_owned),
        }
    }

    #[test]
    fn ranking_kev_then_expiry_then_components() {
        let plans = vec![
            FirmwareRisk {
                model: m("pump"),
                version: v("1.0"),
                urgent: vec![
                    f("CVE-9", "z", false, Some(9.1)),
                    f("CVE-1", "a", true, Some(7.0)),
                ],
                vulnerable_components: 2,
                fix: fix("2.0", Some("ro-1")),
            },
            FirmwareRisk {
                model: m("pump"),
                version: v("1.1"),
                urgent: vec![f("CVE-2", "b", false, Some(9.8))],
                vulnerable_components: 5,
                fix: fix("2.0", None),
            },
            FirmwareRisk {
                model: m("pump"),
                version: v("1.2"),
                urgent: vec![f("CVE-3", "c", true, None)],
                vulnerable_components: 7,
                fix: fix("2.0", None),
            },
        ];
        let d = DAY_SECS;
        let rows = rank_risk(
            vec![
                // Critical only, expires tomorrow: below every KEV device.
                cand("pump", "crit-soon", "1.1", d + 5),
                // KEV, 10 days left.
                cand("pump", "kev-10d", "1.0", 10 * d + 5),
                // KEV, expired 3 days ago: most urgent.
                cand("pump", "kev-expired", "1.0", -3 * d),
                // KEV, same day bucket as kev-10d but more vulnerable components.
                cand("pump", "kev-10d-more", "1.2", 10 * d + 100),
                // Outside the 30-day window: dropped.
                cand("pump", "kev-far", "1.0", 40 * d),
                // Firmware without a plan: dropped.
                cand("pump", "no-plan", "0.9", d),
            ],
            &plans,
            now(),
            30,
            10,
        );
        let order: Vec<&str> = rows.iter().map(|r| r.device.serial.as_str()).collect();
        assert_eq!(
            order,
            vec!["kev-expired", "kev-10d-more", "kev-10d", "crit-soon"]
        );
        assert_eq!(
            rows.iter().map(|r| r.rank).collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
        let top = &rows[0];
        assert_eq!(top.cert_status, CertStatus::Expired);
        assert_eq!(top.score.tier, RiskTier::Kev);
        assert_eq!(top.score.days_to_expiry, -3);
        assert_eq!(top.fix.active_rollout.as_deref(), Some("ro-1"));
        // KEV reason first, then critical, then the certificate, then the fix.
        let kinds: Vec<&str> = top
            .reasons
            .iter()
            .map(|r| match r {
                RiskReason::KevFinding { .. } => "kev",
                RiskReason::CriticalFinding { .. } => "critical",
                RiskReason::CertExpiring { .. } => "expiring",
                RiskReason::CertExpired { .. } => "expired",
                RiskReason::FixNotTaken { .. } => "fix",
            })
            .collect();
        assert_eq!(kinds, vec!["kev", "critical", "expired", "fix"]);
        assert_eq!(
            top.reasons.last(),
            Some(&RiskReason::FixNotTaken {
                release: v("2.0"),
                security_version: 9,
                active_rollout: Some("ro-1".into())
            })
        );
        assert_eq!(rows[3].score.tier, RiskTier::Critical);
        assert!(matches!(
            rows[3].reasons[1],
            RiskReason::CertExpiring { days_left: 1, .. }
        ));
        // The limit keeps the most urgent.
        let top2 = rank_risk(
            vec![
                cand("pump", "crit-soon", "1.1", d),
                cand("pump", "kev-expired", "1.0", -3 * d),
            ],
            &plans,
            now(),
            30,
            1,
        );
        assert_eq!(top2.len(), 1);
        assert_eq!(top2[0].device.serial.as_str(), "kev-expired");
    }

    #[test]
    fn score_order_is_total_and_documented() {
        let s = |tier, days, comps, cvss| RiskScore {
            tier,
            days_to_expiry: days,
            vulnerable_components: comps,
            max_cvss: cvss,
        };
        use RiskTier::*;
        let a = s(Kev, 20, 1, None);
        let b = s(Critical, -100, 50, Some(10.0));
        assert_eq!(a.urgency_cmp(&b), Ordering::Less, "KEV beats critical");
        assert_eq!(
            s(Kev, 1, 1, None).urgency_cmp(&s(Kev, 2, 9, None)),
            Ordering::Less,
            "sooner expiry beats more components"
        );
        assert_eq!(
            s(Kev, 1, 3, None).urgency_cmp(&s(Kev, 1, 2, Some(10.0))),
            Ordering::Less
        );
        assert_eq!(
            s(Kev, 1, 3, Some(9.9)).urgency_cmp(&s(Kev, 1, 3, None)),
            Ordering::Less
        );
        assert_eq!(
            s(Kev, 1, 3, None).urgency_cmp(&s(Kev, 1, 3, None)),
            Ordering::Equal
        );
        assert_eq!(days_until(at(NOW - 1), now()), -1);
        assert_eq!(days_until(at(NOW), now()), 0);
        assert_eq!(days_until(at(NOW + DAY_SECS - 1), now()), 0);
    }
}
