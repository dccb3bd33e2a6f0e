//! The cybersecurity section of the labelling / instructions for use: what users must do,
//! which ports and services the device uses, how updates arrive, SBOM availability, end of
//! support, vulnerability reporting, backup and secure decommissioning.

use medsec_risk::{AuthMethod, EndpointKind};

use crate::diagrams::link_is_weak;
use crate::doc::{Block, Document, Section, Table};
use crate::inputs::DocInputs;
use crate::premarket::{date, meta};

fn enc_name(e: medsec_risk::Encryption) -> String {
    serde_json::to_value(e)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn auth_name(l: &medsec_risk::Link) -> String {
    let a = serde_json::to_value(l.auth)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    if l.is_mutual() && l.auth != AuthMethod::MtlsOurPki {
        format!("{a} (mutual)")
    } else {
        a
    }
}

pub fn build(i: &DocInputs) -> Document {
    let mut sections = Vec::new();
    let mut controls = vec![
        "Install the device on a segmented clinical network; allow only the connections listed in the ports and services table.".to_string(),
        "Keep the device's firmware current: install updates when the manufacturer releases them.".into(),
        "Restrict physical access to service ports to authorised service personnel.".into(),
        "Report suspected security events or vulnerabilities to the manufacturer (see below).".into(),
    ];
    let mut ports = Vec::new();
    if let Some(r) = &i.risk {
        let inv = &r.inventory;
        let devices: Vec<&str> = inv
            .endpoints
            .iter()
            .filter(|e| e.kind == EndpointKind::Device)
            .map(|e| e.id.as_str())
            .collect();
        let name = |id: &str| {
            inv.endpoints
                .iter()
                .find(|e| e.id.as_str() == id)
                .map(|e| e.name.clone())
                .unwrap_or_else(|| id.to_string())
        };
        for l in &inv.links {
            use medsec_risk::Direction;
            // `direction` is declared from the link's `from` end; the table speaks from the
            // device's side.
            let (dev, peer, device_is_from) = if devices.contains(&l.from.as_str()) {
                (l.from.as_str(), l.to.as_str(), true)
            } else if devices.contains(&l.to.as_str()) {
                (l.to.as_str(), l.from.as_str(), false)
            } else {
                continue;
            };
            let direction = match (l.direction, device_is_from) {
                (Direction::Bidirectional, _) => "both",
                (Direction::Outbound, true) | (Direction::Inbound, false) => "outbound",
                (Direction::Inbound, true) | (Direction::Outbound, false) => "inbound",
            };
            ports.push(vec![
                l.port.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                l.protocol.clone(),
                direction.to_string(),
                format!("{} - {}", name(dev), name(peer)),
                enc_name(l.encryption),
                auth_name(l),
                l.description.clone().unwrap_or_default(),
            ]);
            if link_is_weak(l) {
                controls.push(format!(
                    "The {} link to {} ({}) is not fully protected by the device: place it on an isolated network segment or behind a firewall that allows only this peer.",
                    l.protocol,
                    name(peer),
                    l.id
                ));
            }
        }
        for c in &r.register.controls {
            if c.category == medsec_risk::ControlCategory::ResiliencyRecovery
                || c.category == medsec_risk::ControlCategory::Confidentiality
            {
                controls.push(c.description.clone());
            }
        }
    }
    sections.push(
        Section::new(
            "user-controls",
            "Recommended cybersecurity controls for users",
        )
        .push(Block::Bullets(controls)),
    );
    let mut p = Section::new("ports", "Network ports, protocols and services");
    p = if ports.is_empty() {
        p.push(Block::Callout(
            "No trust-relationship inventory: the ports and services cannot be listed.".into(),
        ))
    } else {
        p.push(Block::Table(Table {
            caption: Some("Connections of the device".into()),
            header: [
                "Port",
                "Protocol",
                "Direction",
                "Between",
                "Encryption",
                "Authentication",
                "Purpose",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            rows: ports,
        }))
    };
    sections.push(p);
    let u = &i.updates;
    sections.push(
        Section::new("updates", "Software updates").push(Block::Bullets(if u.tuf_repository {
            vec![
                "Updates are delivered by the manufacturer's update service and installed by the device itself; no removable media are needed.".into(),
                format!(
                    "Every image is signed; the device verifies the signatures against keys it trusts (The Update Framework{}), the image's length and hash, that it is meant for this hardware, and that it is not older than the installed version.",
                    match (u.root_threshold, u.root_keys) {
                        (Some(t), Some(n)) => format!(", root keys {t} of {n}"),
                        _ => String::new(),
                    }
                ),
                "The new image is installed to the inactive slot; if the device does not confirm a good start, it returns to the previous version.".into(),
                "Updates are rolled out in stages; the manufacturer can pause or stop a rollout at any time.".into(),
            ]
        } else {
            vec!["Contact the manufacturer for the update procedure.".into()]
        })),
    );
    sections.push(
        Section::new("sbom", "Software bill of materials").push(Block::Paragraph(format!(
            "A machine-readable SBOM (CycloneDX) listing the {} software components of firmware {} is available from {} on request{}.",
            i.components.len(),
            i.version,
            i.manufacturer,
            i.cvd
                .contacts
                .first()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default()
        ))),
    );
    let eos = i.firmware.as_ref().and_then(|f| f.end_of_support);
    sections.push(
        Section::new("end-of-support", "End of support").push(Block::Paragraph(match eos {
            Some(d) => format!(
                "The manufacturer provides security updates for firmware {} until {}. After that date no further fixes are provided; plan the device's replacement or upgrade before then.",
                i.version,
                date(d)
            ),
            None => "The end-of-support date is not yet set; ask the manufacturer.".into(),
        })),
    );
    let c = &i.cvd;
    let mut report = vec![format!(
        "Contact: {}",
        if c.contacts.is_empty() {
            "see the manufacturer's website".to_string()
        } else {
            c.contacts.join(", ")
        }
    )];
    if let Some(u) = &c.intake_url {
        report.push(format!("Online form (JSON API): {u}"));
    }
    if let Some(u) = &c.security_txt_url {
        report.push(format!("security.txt: {u}"));
    }
    report.push(format!(
        "The manufacturer acknowledges reports within {} days and coordinates public disclosure within {} days.",
        c.acknowledge_days, c.disclosure_days
    ));
    sections.push(
        Section::new("report-vulnerability", "How to report a vulnerability")
            .push(Block::Bullets(report)),
    );
    sections.push(
        Section::new("decommissioning", "Backup, restore and secure decommissioning").push(Block::Bullets(vec![
            "Configuration backup and restore are performed by authorised service personnel; backups contain no private keys.".into(),
            "Before disposal or return, erase patient data, configuration and keys with the device's secure-erase function.".into(),
            "Ask the manufacturer to retire the device: its certificates are revoked, so it can no longer connect to the manufacturer's services or be impersonated.".into(),
        ])),
    );
    Document {
        slug: "labelling-cybersecurity".into(),
        title: format!(
            "Instructions for use, cybersecurity section: {} {}",
            i.device_name, i.version
        ),
        subtitle: None,
        meta: meta(i),
        sections,
    }
}
