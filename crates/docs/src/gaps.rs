//! The gaps report: every piece of missing evidence, each with where to fix it.

use serde::Serialize;

use medsec_risk::AuthMethod;

use crate::doc::{Block, Document, Section, Table};
use crate::inputs::DocInputs;
use crate::premarket::meta;

/// What kind of evidence is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GapKind {
    NoInventory,
    ThreatWithoutControl,
    ControlWithoutTest,
    ComponentWithoutSupplier,
    ComponentWithoutSupportLevel,
    LinkWithoutAuthenticationRationale,
    FindingWithoutTriage,
    NoTestEvidence,
    NoEndOfSupport,
    NoCvdContact,
}

impl GapKind {
    pub fn title(self) -> &'static str {
        match self {
            GapKind::NoInventory => "No trust-relationship inventory",
            GapKind::ThreatWithoutControl => "Threats without a control",
            GapKind::ControlWithoutTest => "Controls without a test",
            GapKind::ComponentWithoutSupplier => "Components without a supplier",
            GapKind::ComponentWithoutSupportLevel => "Components without a support level",
            GapKind::LinkWithoutAuthenticationRationale => {
                "Links without mutual authentication and without a rationale"
            }
            GapKind::FindingWithoutTriage => "Open findings without triage",
            GapKind::NoTestEvidence => "No test evidence",
            GapKind::NoEndOfSupport => "No end-of-support date",
            GapKind::NoCvdContact => "No vulnerability disclosure contact",
        }
    }
}

/// One missing piece: what, and the command or file that fixes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gap {
    pub kind: GapKind,
    pub item: String,
    pub fix: String,
}

pub fn gaps(i: &DocInputs) -> Vec<Gap> {
    let (m, v) = (i.model.as_str(), i.version.as_str());
    let mut out = Vec::new();
    let mut gap = |kind, item: String, fix: String| out.push(Gap { kind, item, fix });
    match &i.risk {
        None => gap(
            GapKind::NoInventory,
            m.to_string(),
            format!("medsec risk set-inventory --model {m} inventory.toml"),
        ),
        Some(r) => {
            for t in &r.traceability.threats_without_controls {
                gap(
                    GapKind::ThreatWithoutControl,
                    t.to_string(),
                    format!(
                        "register of {m}: a [[risk]] entry citing {t} with controls, or threat_status (medsec risk set-register)"
                    ),
                );
            }
            for c in &r.traceability.controls_without_tests {
                gap(
                    GapKind::ControlWithoutTest,
                    c.to_string(),
                    format!(
                        "register of {m}: tests = [...] on control {c} (medsec risk set-register)"
                    ),
                );
            }
            for l in &r.inventory.links {
                let weak_auth = !l.is_mutual()
                    || matches!(
                        l.auth,
                        AuthMethod::None | AuthMethod::Password | AuthMethod::SharedSecret
                    );
                if weak_auth && l.description.as_deref().is_none_or(|d| d.trim().is_empty()) {
                    gap(
                        GapKind::LinkWithoutAuthenticationRationale,
                        format!("{} ({} {} -> {})", l.id, l.protocol, l.from, l.to),
                        format!(
                            "inventory of {m}: description on link {} explaining the authentication chosen (medsec risk set-inventory)",
                            l.id
                        ),
                    );
                }
            }
        }
    }
    for c in &i.components {
        let name = match &c.version {
            Some(ver) => format!("{}@{ver}", c.name),
            None => c.name.clone(),
        };
        if c.supplier.is_none() {
            gap(
                GapKind::ComponentWithoutSupplier,
                name.clone(),
                format!(
                    "supplier in the SBOM of {m} {v} (re-import with medsec sbom import --replace)"
                ),
            );
        }
        if c.support_level.is_none() {
            gap(
                GapKind::ComponentWithoutSupportLevel,
                name,
                format!(
                    "support level in an addendum CSV (medsec sbom import --model {m} --version {v} --addendum support.csv --replace)"
                ),
            );
        }
    }
    for f in i.findings.iter().filter(|f| f.state == "in_triage") {
        gap(
            GapKind::FindingWithoutTriage,
            format!("{} in {}", f.id, f.component),
            format!(
                "medsec vuln triage --model {m} --version {v} --vuln {} --state ...",
                f.id
            ),
        );
    }
    if i.evidence.is_empty() {
        gap(
            GapKind::NoTestEvidence,
            format!("{m} {v}"),
            format!(
                "medsec evidence import --model {m} --version {v} --category penetration-test report.xml"
            ),
        );
    }
    if i.firmware.as_ref().and_then(|f| f.end_of_support).is_none() {
        gap(
            GapKind::NoEndOfSupport,
            format!("{m} {v}"),
            format!("medsec firmware add --model {m} --version {v} --end-of-support YYYY-MM-DD"),
        );
    }
    if i.cvd.contacts.is_empty() {
        gap(
            GapKind::NoCvdContact,
            "security.txt".into(),
            "medsec.toml: [postmarket.security_txt] contact = [\"mailto:...\"]".into(),
        );
    }
    out.sort_by(|a, b| (a.kind, &a.item).cmp(&(b.kind, &b.item)));
    out
}

pub fn build(i: &DocInputs) -> Document {
    let all = gaps(i);
    let mut sections =
        vec![
            Section::new("summary", "Summary").push(Block::Paragraph(if all.is_empty() {
                "No gaps: every piece of evidence the documentation needs is present.".to_string()
            } else {
                format!("{} gaps to close before submission.", all.len())
            })),
        ];
    let mut kinds: Vec<GapKind> = all.iter().map(|g| g.kind).collect();
    kinds.dedup();
    for k in kinds {
        let rows: Vec<Vec<String>> = all
            .iter()
            .filter(|g| g.kind == k)
            .map(|g| vec![g.item.clone(), g.fix.clone()])
            .collect();
        let id = serde_json::to_value(k)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        sections.push(Section::new(&id, k.title()).push(Block::Table(Table {
            caption: Some(format!("{} items", rows.len())),
            header: vec!["Item".into(), "Where to fix".into()],
            rows,
        })));
    }
    Document {
        slug: "gaps".into(),
        title: format!("Documentation gaps: {} {}", i.device_name, i.version),
        subtitle: None,
        meta: meta(i),
        sections,
    }
}
