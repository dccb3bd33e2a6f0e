//! Traceability: threat <-> control <-> test <-> vulnerability/finding, and the gaps.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::findings::Finding;
use crate::ids::{ControlId, FindingId, RiskId, TestRef, ThreatId, VulnRef};
use crate::register::Register;
use crate::threats::{ThreatModel, ThreatStatus, ThreatTarget};

/// One threat with everything traced to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceRow {
    pub threat: ThreatId,
    pub status: ThreatStatus,
    pub risks: Vec<RiskId>,
    pub controls: Vec<ControlId>,
    pub tests: Vec<TestRef>,
    /// Vulnerabilities named by the same risk entries.
    pub vulnerabilities: Vec<VulnRef>,
    /// Computed findings on the threat's link.
    pub findings: Vec<FindingId>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traceability {
    pub rows: Vec<TraceRow>,
    /// Open or mitigated threats no control is traced to (accepted and not-applicable ones are
    /// decided without controls, so they are not gaps).
    pub threats_without_controls: Vec<ThreatId>,
    pub controls_without_tests: Vec<ControlId>,
    /// Controls no risk entry cites.
    pub unused_controls: Vec<ControlId>,
    /// Threat ids cited by the register but absent from the threat model.
    pub unknown_threats: Vec<ThreatId>,
}

pub fn trace(model: &ThreatModel, register: &Register, findings: &[Finding]) -> Traceability {
    let mut out = Traceability::default();
    for t in &model.threats {
        let entries: Vec<_> = register
            .risks
            .iter()
            .filter(|r| r.threats.contains(&t.id))
            .collect();
        let controls: BTreeSet<ControlId> = entries
            .iter()
            .flat_map(|r| r.controls.iter().cloned())
            .collect();
        let tests: BTreeSet<TestRef> = controls
            .iter()
            .filter_map(|c| register.control(c))
            .flat_map(|c| c.tests.iter().cloned())
            .collect();
        let vulns: BTreeSet<VulnRef> = entries
            .iter()
            .flat_map(|r| r.vulnerabilities.iter().cloned())
            .collect();
        let finds = match &t.target {
            ThreatTarget::Link(l) => findings
                .iter()
                .filter(|f| &f.link == l)
                .map(|f| f.id.clone())
                .collect(),
            ThreatTarget::Endpoint(_) => Vec::new(),
        };
        if controls.is_empty() && matches!(t.status, ThreatStatus::Open | ThreatStatus::Mitigated) {
            out.threats_without_controls.push(t.id.clone());
        }
        out.rows.push(TraceRow {
            threat: t.id.clone(),
            status: t.status,
            risks: entries.iter().map(|r| r.id.clone()).collect(),
            controls: controls.into_iter().collect(),
            tests: tests.into_iter().collect(),
            vulnerabilities: vulns.into_iter().collect(),
            findings: finds,
        });
    }
    let cited: BTreeSet<&ControlId> = register
        .risks
        .iter()
        .flat_map(|r| r.controls.iter())
        .collect();
    for c in &register.controls {
        if c.tests.is_empty() {
            out.controls_without_tests.push(c.id.clone());
        }
        if !cited.contains(&c.id) {
            out.unused_controls.push(c.id.clone());
        }
    }
    let known: BTreeSet<&ThreatId> = model.threats.iter().map(|t| &t.id).collect();
    let unknown: BTreeSet<ThreatId> = register
        .risks
        .iter()
        .flat_map(|r| r.threats.iter())
        .filter(|t| !known.contains(t))
        .cloned()
        .collect();
    out.unknown_threats = unknown.into_iter().collect();
    out
}
