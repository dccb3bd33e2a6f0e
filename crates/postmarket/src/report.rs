//! Drafts of the mandatory problem reports (Medical Devices Regulations s.59-61.1: a
//! preliminary report within the deadline, a final report when the investigation ends) from
//! an incident's data, for a person to review before filing.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::PostmarketError;
use crate::incident::{Incident, TimelineKind};

/// Which report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportKind {
    Preliminary,
    Final,
}

impl ReportKind {
    pub fn parse(s: &str) -> Result<ReportKind, PostmarketError> {
        match s {
            "preliminary" => Ok(ReportKind::Preliminary),
            "final" => Ok(ReportKind::Final),
            _ => Err(PostmarketError::Invalid {
                what: "report kind",
                message: format!("{s:?} is not preliminary or final"),
            }),
        }
    }
}

/// What the incident itself does not hold: the manufacturer's details and the device's
/// regulatory identity, gathered by the caller from configuration and the inventory.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReportContext {
    pub manufacturer: String,
    pub manufacturer_address: Option<String>,
    /// Device name as licensed.
    pub device_name: String,
    /// Medical device licence number, when known.
    pub licence_number: Option<String>,
    /// Firmware versions of the affected devices.
    pub firmware_versions: Vec<String>,
    /// Consequences for patients or users, as established so far.
    pub consequences: Option<String>,
    /// Other medical devices or accessories involved.
    pub other_devices: Vec<String>,
}

fn md_escape(s: &str) -> String {
    // Table cells and list items must not break the document's structure.
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// Whole seconds in UTC: a regulator's form has no use for nanoseconds.
fn date(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// Drafts the report as Markdown. Missing facts are written as `TO BE COMPLETED` rather than
/// left out, so the reviewer sees every field the form asks for.
pub fn draft(
    incident: &Incident,
    kind: ReportKind,
    ctx: &ReportContext,
    now: OffsetDateTime,
) -> Result<String, PostmarketError> {
    let todo = "TO BE COMPLETED";
    let mut o = String::new();
    let title = match kind {
        ReportKind::Preliminary => "Preliminary mandatory problem report",
        ReportKind::Final => "Final mandatory problem report",
    };
    let w = |o: &mut String, s: String| {
        o.push_str(&s);
        o.push('\n');
    };
    w(&mut o, format!("# {title} — {}", incident.id()));
    w(&mut o, String::new());
    w(
        &mut o,
        format!(
            "Draft generated {} from incident {} (status {}). Review every field before filing.",
            date(now),
            incident.id(),
            incident.status().as_str()
        ),
    );
    w(&mut o, String::new());
    w(&mut o, "## 1. Device".into());
    w(
        &mut o,
        format!("- Device name: {}", or(&ctx.device_name, todo)),
    );
    w(&mut o, format!("- Model: {}", incident.model()));
    w(
        &mut o,
        format!(
            "- Licence number: {}",
            ctx.licence_number.as_deref().unwrap_or(todo)
        ),
    );
    let fw = if ctx.firmware_versions.is_empty() {
        todo.to_string()
    } else {
        ctx.firmware_versions.join(", ")
    };
    w(&mut o, format!("- Firmware versions: {}", md_escape(&fw)));
    let devices: Vec<String> = incident.devices().map(|d| d.urn()).collect();
    w(&mut o, format!("- Devices involved: {}", devices.len()));
    for d in devices.iter().take(50) {
        w(&mut o, format!("  - `{d}`"));
    }
    if devices.len() > 50 {
        w(
            &mut o,
            format!(
                "  - and {} more (see the incident record)",
                devices.len() - 50
            ),
        );
    }
    w(&mut o, String::new());
    w(&mut o, "## 2. Manufacturer".into());
    w(&mut o, format!("- Name: {}", or(&ctx.manufacturer, todo)));
    w(
        &mut o,
        format!(
            "- Address: {}",
            ctx.manufacturer_address.as_deref().unwrap_or(todo)
        ),
    );
    w(&mut o, String::new());
    w(&mut o, "## 3. Dates".into());
    let r = incident.reportability();
    w(
        &mut o,
        format!(
            "- Manufacturer aware: {}",
            r.map(|r| date(r.aware_at)).unwrap_or_else(|| todo.into())
        ),
    );
    w(
        &mut o,
        format!("- First detection: {}", date(incident.opened_at())),
    );
    w(&mut o, String::new());
    w(&mut o, "## 4. Reportability".into());
    match r {
        Some(r) if r.reportable => {
            w(
                &mut o,
                format!("- Reportable: yes — {}", md_escape(r.rationale.as_str())),
            );
            w(&mut o, String::new());
            w(&mut o, "| Obligation | Due (UTC) | Met |".into());
            w(&mut o, "|---|---|---|".into());
            for c in incident.clocks()? {
                w(
                    &mut o,
                    format!(
                        "| {} | {} | {} |",
                        c.obligation.citation(),
                        date(c.due),
                        c.met_at.map(date).unwrap_or_else(|| "no".into())
                    ),
                );
            }
        }
        Some(r) => w(
            &mut o,
            format!("- Reportable: no — {}", md_escape(r.rationale.as_str())),
        ),
        None => w(
            &mut o,
            format!("- Reportable: {todo} (no decision recorded)"),
        ),
    }
    w(&mut o, String::new());
    w(&mut o, "## 5. Details of the incident".into());
    w(
        &mut o,
        format!("- Summary: {}", md_escape(incident.title())),
    );
    w(&mut o, format!("- Detection rule: {}", incident.rule()));
    let vulns: Vec<&str> = incident
        .vulnerabilities()
        .iter()
        .map(|v| v.as_str())
        .collect();
    if !vulns.is_empty() {
        w(&mut o, format!("- Vulnerabilities: {}", vulns.join(", ")));
    }
    let risks: Vec<&str> = incident.risks().iter().map(|v| v.as_str()).collect();
    if !risks.is_empty() {
        w(
            &mut o,
            format!("- Risk register entries: {}", risks.join(", ")),
        );
    }
    w(
        &mut o,
        format!(
            "- Consequences: {}",
            ctx.consequences
                .as_deref()
                .map(md_escape)
                .unwrap_or_else(|| todo.into())
        ),
    );
    let others = if ctx.other_devices.is_empty() {
        "none known".to_string()
    } else {
        ctx.other_devices.join(", ")
    };
    w(
        &mut o,
        format!("- Other devices involved: {}", md_escape(&others)),
    );
    w(&mut o, String::new());
    w(&mut o, "## 6. Actions".into());
    let mut actions = 0;
    for e in incident.timeline() {
        if let TimelineKind::Action { note } = &e.what {
            actions += 1;
            w(
                &mut o,
                format!("- {} ({}): {}", date(e.at), e.by, md_escape(note.as_str())),
            );
        }
    }
    if actions == 0 {
        w(&mut o, format!("- Proposed actions: {todo}"));
    }
    w(&mut o, String::new());
    w(&mut o, "## 7. Timetable".into());
    let mut rows = 0;
    for c in incident.clocks()? {
        if c.met_at.is_none() {
            rows += 1;
            w(
                &mut o,
                format!("- {}: by {}", c.obligation.citation(), date(c.due)),
            );
        }
    }
    if kind == ReportKind::Final {
        let _ = writeln!(
            o,
            "- Investigation concluded; incident status {}.",
            incident.status().as_str()
        );
    } else if rows == 0 {
        w(&mut o, format!("- {todo}"));
    }
    w(&mut o, String::new());
    w(&mut o, "## 8. Timeline".into());
    for e in incident.timeline() {
        let what = match &e.what {
            TimelineKind::Detection {
                rule,
                device,
                events,
            } => {
                format!(
                    "detection {rule} on {} ({} events)",
                    device.urn(),
                    events.len()
                )
            }
            TimelineKind::StatusChanged { from, to } => {
                format!("status {} → {}", from.as_str(), to.as_str())
            }
            TimelineKind::OwnerAssigned { owner } => format!("owner {owner}"),
            TimelineKind::VulnerabilityLinked { vulnerability } => {
                format!("linked {vulnerability}")
            }
            TimelineKind::RiskLinked { risk } => format!("linked risk {risk}"),
            TimelineKind::Action { note } => format!("action: {}", md_escape(note.as_str())),
            TimelineKind::ReportabilityDecided { decision } => format!(
                "reportability decided: {}",
                if decision.reportable {
                    "reportable"
                } else {
                    "not reportable"
                }
            ),
            TimelineKind::ObligationMet { obligation, .. } => {
                format!("met {}", obligation.as_str())
            }
        };
        w(&mut o, format!("- {} {}: {what}", date(e.at), e.by));
    }
    Ok(o)
}

fn or<'a>(s: &'a str, d: &'a str) -> &'a str {
    if s.trim().is_empty() { d } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Obligation;
    use crate::event::{EventId, Severity};
    use crate::incident::{Note, Reportability};
    use crate::rules::{Detection, RuleId};
    use medsec_core::{Actor, DeviceId, DeviceModel, DeviceSerial};
    use time::macros::datetime;

    #[test]
    fn drafts_carry_the_form_fields_and_clocks() {
        let d = Detection {
            rule: RuleId::parse("tamper").unwrap(),
            title: "Physical tamper | enclosure".into(),
            severity: Severity::Critical,
            device: DeviceId::new(
                DeviceModel::parse("pump-x").unwrap(),
                DeviceSerial::parse("SN1").unwrap(),
            ),
            at: datetime!(2026-03-01 10:00 UTC),
            events: vec![EventId::parse("e1").unwrap()],
        };
        let mut inc = Incident::from_detection(&d);
        let who = Actor::parse("api:psirt").unwrap();
        let ctx = ReportContext {
            manufacturer: "Acme Medical".into(),
            device_name: "Acme Infusion Pump X".into(),
            ..ReportContext::default()
        };
        let now = datetime!(2026-03-02 09:00 UTC);
        let pre = draft(&inc, ReportKind::Preliminary, &ctx, now).unwrap();
        assert!(pre.contains("Reportable: TO BE COMPLETED"));
        assert!(pre.contains("Licence number: TO BE COMPLETED"));
        assert!(pre.contains("Physical tamper \\| enclosure"));
        inc.decide_reportability(
            Reportability::new(
                true,
                [Obligation::MdrCouldLeadIfRecurred].into(),
                Note::parse("could lead to serious deterioration if it recurred").unwrap(),
                datetime!(2026-03-01 12:00 UTC),
            )
            .unwrap(),
            who.clone(),
            now,
        )
        .unwrap();
        inc.record_action(Note::parse("device isolated").unwrap(), who, now);
        let pre = draft(&inc, ReportKind::Preliminary, &ctx, now).unwrap();
        assert!(
            pre.contains("Manufacturer aware: 2026-03-01T12:00:00Z"),
            "{pre}"
        );
        assert!(pre.contains(
            "| Medical Devices Regulations s.59-61.1 (30 days) | 2026-03-31T12:00:00Z | no |"
        ));
        assert!(pre.contains("device isolated"));
        assert!(pre.contains("`urn:medsec:device:pump-x:SN1`"));
        let fin = draft(&inc, ReportKind::Final, &ctx, now).unwrap();
        assert!(fin.starts_with("# Final mandatory problem report"));
        // Same data, same bytes.
        assert_eq!(fin, draft(&inc, ReportKind::Final, &ctx, now).unwrap());
    }
}
