//! Import of OWASP Threat Dragon v2 JSON models as a starting inventory and threat list.
//!
//! Threat Dragon diagrams carry less than the inventory needs (no authentication method, no TLS
//! version, trust boundaries only as drawn curves), so the import fills conservative defaults
//! and reports every assumption in `warnings` for a human to review.

use std::collections::{BTreeMap, BTreeSet};

use medsec_core::DeviceModel;
use serde::Deserialize;
use serde_json::Value;

use crate::RiskError;
use crate::ids::{EndpointId, LinkId, ThreatId};
use crate::inventory::{
    AuthMethod, CredentialScope, Direction, Encryption, Endpoint, EndpointKind, Inventory, Link,
};
use crate::threats::{LifecyclePhase, Stride, Threat, ThreatOrigin, ThreatStatus, ThreatTarget};

const FILE: &str = "threat-dragon";

/// The result of an import: review `warnings` before relying on the inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdImport {
    pub title: String,
    pub inventory: Inventory,
    pub threats: Vec<Threat>,
    pub warnings: Vec<String>,
}

#[derive(Deserialize)]
struct TdModel {
    #[serde(default)]
    summary: TdSummary,
    detail: TdDetail,
}

#[derive(Deserialize, Default)]
struct TdSummary {
    #[serde(default)]
    title: String,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize)]
struct TdDetail {
    #[serde(default)]
    diagrams: Vec<TdDiagram>,
}

#[derive(Deserialize)]
struct TdDiagram {
    #[serde(default)]
    title: String,
    #[serde(default)]
    cells: Vec<Value>,
}

#[derive(Deserialize)]
struct TdThreat {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    title: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    severity: String,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    mitigation: String,
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

fn bool_at(v: &Value, path: &[&str]) -> bool {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(x) => cur = x,
            None => return false,
        }
    }
    cur.as_bool().unwrap_or(false)
}

/// Lower-case slug of a display name, usable as an id; `fallback` when nothing is left.
fn slug(name: &str, fallback: &str) -> String {
    let mut s = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c.to_ascii_lowercase());
        } else if !s.ends_with('-') && !s.is_empty() {
            s.push('-');
        }
    }
    let s = s.trim_end_matches('-');
    let s: String = s.chars().take(60).collect();
    if s.is_empty() { fallback.to_owned() } else { s }
}

fn unique(base: String, taken: &mut BTreeSet<String>) -> String {
    let mut id = base.clone();
    let mut n = 2;
    while !taken.insert(id.clone()) {
        id = format!("{base}-{n}");
        n += 1;
    }
    id
}

fn stride(kind: &str) -> Option<Stride> {
    // STRIDE names as Threat Dragon writes them, plus its CIA model mapped to the nearest
    // STRIDE category so those threats are not lost.
    match kind.trim().to_ascii_lowercase().as_str() {
        "spoofing" => Some(Stride::Spoofing),
        "tampering" | "integrity" => Some(Stride::Tampering),
        "repudiation" => Some(Stride::Repudiation),
        "information disclosure" | "confidentiality" => Some(Stride::InformationDisclosure),
        "denial of service" | "availability" => Some(Stride::DenialOfService),
        "elevation of privilege" => Some(Stride::ElevationOfPrivilege),
        _ => None,
    }
}

fn status(s: &str) -> Option<ThreatStatus> {
    match s.trim().to_ascii_lowercase().as_str() {
        "open" | "" => Some(ThreatStatus::Open),
        "mitigated" => Some(ThreatStatus::Mitigated),
        "notapplicable" | "not applicable" | "n/a" | "na" => Some(ThreatStatus::NotApplicable),
        "accepted" => Some(ThreatStatus::Accepted),
        _ => None,
    }
}

fn clean(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Imports a Threat Dragon v2 model (2.0 – 2.3 JSON) for device model `model`.
pub fn import(json: &str, model: DeviceModel) -> Result<TdImport, RiskError> {
    let td: TdModel = serde_json::from_str(json).map_err(|e| RiskError::Json {
        file: FILE,
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    let mut warnings = Vec::new();
    let mut endpoints = Vec::new();
    let mut links = Vec::new();
    let mut threats = Vec::new();
    let mut taken_ep = BTreeSet::new();
    let mut taken_link = BTreeSet::new();
    // Cell uuid -> endpoint id, to resolve flow ends.
    let mut by_cell: BTreeMap<String, EndpointId> = BTreeMap::new();
    let mut pending_threats: Vec<(ThreatTarget, Vec<Value>, String)> = Vec::new();

    let bad_id = |what: &str, v: &str| RiskError::Invalid {
        file: FILE,
        line: None,
        field: what.to_owned(),
        message: format!("cannot form an id from {v:?}"),
    };

    for diagram in &td.detail.diagrams {
        for cell in &diagram.cells {
            let shape = cell.get("shape").and_then(Value::as_str).unwrap_or("");
            let kind = match shape {
                "actor" => EndpointKind::User,
                "process" => EndpointKind::Other,
                "store" => EndpointKind::DataStore,
                _ => continue,
            };
            let cell_id = cell.get("id").and_then(Value::as_str).unwrap_or("");
            let name = clean(
                str_at(cell, &["data", "name"])
                    .or_else(|| str_at(cell, &["attrs", "text", "text"]))
                    .unwrap_or(""),
            );
            let id = unique(slug(&name, shape), &mut taken_ep);
            let id = EndpointId::parse(&id).map_err(|_| bad_id("endpoint.id", &id))?;
            if bool_at(cell, &["data", "outOfScope"]) {
                warnings.push(format!(
                    "endpoint {id} ({name}) is marked out of scope in Threat Dragon"
                ));
            }
            by_cell.insert(cell_id.to_owned(), id.clone());
            let desc = str_at(cell, &["data", "description"])
                .map(clean)
                .filter(|d| !d.is_empty());
            endpoints.push(Endpoint {
                id: id.clone(),
                name: if name.is_empty() {
                    id.to_string()
                } else {
                    name
                },
                kind,
                zone: None,
                via: None,
                description: desc,
            });
            if let Some(ts) = cell.pointer("/data/threats").and_then(Value::as_array) {
                pending_threats.push((ThreatTarget::Endpoint(id), ts.clone(), cell_id.to_owned()));
            }
        }
    }
    for diagram in &td.detail.diagrams {
        for cell in &diagram.cells {
            if cell.get("shape").and_then(Value::as_str) != Some("flow") {
                continue;
            }
            let cell_id = cell.get("id").and_then(Value::as_str).unwrap_or("");
            let name = clean(
                str_at(cell, &["data", "name"])
                    .or_else(|| {
                        cell.pointer("/labels/0/attrs/labelText/text")
                            .and_then(Value::as_str)
                    })
                    .unwrap_or(""),
            );
            let end = |side: &str| {
                str_at(cell, &[side, "cell"])
                    .and_then(|c| by_cell.get(c))
                    .cloned()
            };
            let dropped = cell
                .pointer("/data/threats")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let (Some(from), Some(to)) = (end("source"), end("target")) else {
                warnings.push(format!(
                    "flow {cell_id} ({name:?}) in diagram {:?} is not attached to two elements; skipped with its {dropped} threat(s)",
                    diagram.title
                ));
                continue;
            };
            if from == to {
                warnings.push(format!(
                    "flow {cell_id} ({name:?}) loops on {from}; skipped"
                ));
                continue;
            }
            let base = if name.is_empty() {
                format!("{from}-to-{to}")
            } else {
                slug(&name, "flow")
            };
            let id = unique(base, &mut taken_link);
            let id = LinkId::parse(&id).map_err(|_| bad_id("link.id", &id))?;
            let protocol = str_at(cell, &["data", "protocol"])
                .map(clean)
                .unwrap_or_default();
            let encrypted = bool_at(cell, &["data", "isEncrypted"]);
            warnings.push(format!(
                "link {id}: authentication unknown in Threat Dragon, set to \"none\"{}",
                if encrypted {
                    "; encrypted flow assumed tls-1.2"
                } else {
                    ""
                }
            ));
            links.push(Link {
                id: id.clone(),
                from,
                to,
                direction: if bool_at(cell, &["data", "isBidirectional"]) {
                    Direction::Bidirectional
                } else {
                    Direction::Outbound
                },
                protocol: if protocol.is_empty() {
                    "unspecified".to_owned()
                } else {
                    protocol
                },
                port: None,
                auth: AuthMethod::None,
                mutual: false,
                credential: CredentialScope::PerDevice,
                encryption: if encrypted {
                    Encryption::Tls12
                } else {
                    Encryption::None
                },
                data: Vec::new(),
                boundary: bool_at(cell, &["data", "isPublicNetwork"])
                    .then(|| "public-network".to_owned()),
                description: str_at(cell, &["data", "description"])
                    .map(clean)
                    .filter(|d| !d.is_empty()),
            });
            if let Some(ts) = cell.pointer("/data/threats").and_then(Value::as_array) {
                pending_threats.push((ThreatTarget::Link(id), ts.clone(), cell_id.to_owned()));
            }
        }
    }
    let mut taken_threat = BTreeSet::new();
    for (target, list, cell_id) in pending_threats {
        for (n, raw) in list.into_iter().enumerate() {
            let t: TdThreat = match serde_json::from_value(raw) {
                Ok(t) => t,
                Err(e) => {
                    warnings.push(format!(
                        "threat {n} of cell {cell_id} unreadable ({e}); skipped"
                    ));
                    continue;
                }
            };
            let Some(category) = stride(&t.kind) else {
                warnings.push(format!(
                    "threat {:?} has type {:?}, not STRIDE/CIA; skipped",
                    t.title, t.kind
                ));
                continue;
            };
            let st = status(&t.status).unwrap_or_else(|| {
                warnings.push(format!(
                    "threat {:?} has unknown status {:?}; set to open",
                    t.title, t.status
                ));
                ThreatStatus::Open
            });
            let td_id = t.id.clone().unwrap_or_else(|| format!("{cell_id}-{n}"));
            let id = unique(format!("TD-{}", slug(&td_id, "threat")), &mut taken_threat);
            let id = ThreatId::parse(&id).map_err(|_| bad_id("threat.id", &id))?;
            let mut assumptions = Vec::new();
            if !t.severity.trim().is_empty() {
                assumptions.push(format!("Threat Dragon severity: {}", t.severity.trim()));
            }
            threats.push(Threat {
                id,
                target: target.clone(),
                category,
                title: clean(&t.title),
                description: t.description.trim().to_owned(),
                assumptions,
                // Threat Dragon has no lifecycle notion; its diagrams model the running system.
                phase: LifecyclePhase::Operation,
                status: st,
                mitigation: Some(t.mitigation.trim().to_owned()).filter(|m| !m.is_empty()),
                origin: ThreatOrigin::ThreatDragon(td_id),
            });
        }
    }
    threats.sort_by(|a, b| a.id.cmp(&b.id));
    let inventory = Inventory {
        model,
        description: clean(&td.summary.description),
        endpoints,
        links,
    };
    inventory.validate()?;
    Ok(TdImport {
        title: td.summary.title,
        inventory,
        threats,
        warnings,
    })
}
