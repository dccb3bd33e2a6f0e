//! Findings over time, reconstructed from what the store keeps: when each current finding was
//! first seen and the append-only history of triage decisions.
//!
//! The store holds current findings, not snapshots, so a finding that re-matching has since
//! removed (a withdrawn advisory, a corrected SBOM) is missing from the past too. Everything
//! else is exact: a finding counts as open at instant `t` when it had been seen by `t` and the
//! newest decision applying to it made by `t` does not close it.

use std::collections::HashMap;

use serde::Serialize;
use time::OffsetDateTime;

use crate::model::{Decision, FindingRecord};

/// Open findings at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrendPoint {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub open: u64,
    /// Of which listed in CISA KEV.
    pub kev: u64,
}

/// The open findings at each of `points` (in the order given).
pub fn trend(
    findings: &[FindingRecord],
    decisions: &[Decision],
    points: &[OffsetDateTime],
) -> Vec<TrendPoint> {
    // Decisions per firmware version, oldest first, so "in force at t" is the newest applying
    // one within the prefix made by t.
    let mut by_fw: HashMap<(&str, &str), Vec<&Decision>> = HashMap::new();
    for d in decisions {
        by_fw
            .entry((d.model.as_str(), d.version.as_str()))
            .or_default()
            .push(d);
    }
    for v in by_fw.values_mut() {
        // Stable: decisions made in the same second keep the store's (insertion) order.
        v.sort_by_key(|d| d.at);
    }
    points
        .iter()
        .map(|&at| {
            let (mut open, mut kev) = (0, 0);
            for f in findings.iter().filter(|f| f.first_seen <= at) {
                let closed = by_fw
                    .get(&(f.model.as_str(), f.version.as_str()))
                    .and_then(|ds| {
                        ds.iter()
                            .take_while(|d| d.at <= at)
                            .filter(|d| d.applies_to(f))
                            .last()
                    })
                    .is_some_and(|d| d.closes());
                if !closed {
                    open += 1;
                    kev += u64::from(f.kev);
                }
            }
            TrendPoint { at, open, kev }
        })
        .collect()
}

/// `n` instants a week apart, the last one `now`: the points of a weekly trend.
pub fn weekly(now: OffsetDateTime, n: u32) -> Vec<OffsetDateTime> {
    (0..n)
        .rev()
        .map(|i| now - time::Duration::weeks(i64::from(i)))
        .collect()
}

#[cfg(test)]
mod tests {
    use medsec_core::{Actor, DeviceModel, FirmwareVersion};
    use medsec_vuln::{Justification, VexStatus};
    use time::Duration;

    use super::*;
    use crate::model::MatchedBy;

    fn t0() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap()
    }

    fn finding(version: &str, id: &str, seen_days: i64, kev: bool) -> FindingRecord {
        FindingRecord {
            model: DeviceModel::parse("pump-x2").unwrap(),
            version: FirmwareVersion::parse(version).unwrap(),
            vuln_id: id.into(),
            identifiers: vec![id.into()],
            advisories: vec![id.into()],
            component: "pkg:cargo/foo@1.0.0".into(),
            matched_by: MatchedBy::Purl,
            summary: None,
            cvss_score: Some(9.8),
            cvss_vector: None,
            kev,
            first_seen: t0() + Duration::days(seen_days),
            last_seen: t0() + Duration::days(seen_days),
        }
    }

    fn decision(version: &str, id: &str, day: i64, status: VexStatus) -> Decision {
        Decision {
            model: DeviceModel::parse("pump-x2").unwrap(),
            version: FirmwareVersion::parse(version).unwrap(),
            vuln_id: id.into(),
            component: None,
            status,
            detail: "triaged".into(),
            action: None,
            author: Actor::parse("user:alice").unwrap(),
            at: t0() + Duration::days(day),
        }
    }

    #[test]
    fn findings_open_until_a_closing_decision_and_reopen_when_it_is_reversed() {
        let fs = [
            finding("1.0.0", "CVE-2026-0001", 0, true),
            finding("1.0.0", "CVE-2026-0002", 10, false),
            // Same vulnerability in another version: a decision on 1.0.0 must not close it.
            finding("2.0.0", "CVE-2026-0001", 0, true),
        ];
        let ds = [
            decision(
                "1.0.0",
                "CVE-2026-0001",
                5,
                VexStatus::NotAffected {
                    justification: Justification::VulnerableCodeNotInExecutePath,
                },
            ),
            decision("1.0.0", "CVE-2026-0001", 20, VexStatus::Affected),
            decision("1.0.0", "CVE-2026-0002", 12, VexStatus::InTriage),
        ];
        let at = |d: i64| t0() + Duration::days(d);
        let got = trend(&fs, &ds, &[at(-1), at(1), at(6), at(11), at(21)]);
        let counts: Vec<(u64, u64)> = got.iter().map(|p| (p.open, p.kev)).collect();
        // before anything; both CVE-1 seen; 1.0.0's closed; CVE-2 seen; 1.0.0's reopened.
        assert_eq!(counts, [(0, 0), (2, 2), (1, 1), (2, 1), (3, 2)]);
        assert_eq!(got[2].at, at(6));
    }

    #[test]
    fn weekly_points_end_now() {
        let p = weekly(t0(), 3);
        assert_eq!(
            p,
            [t0() - Duration::weeks(2), t0() - Duration::weeks(1), t0()]
        );
        assert!(weekly(t0(), 0).is_empty());
    }
}
