//! The security architecture views, laid out in-process: the global system view and the
//! multi-patient harm view from the trust inventory (layered by distance from the device,
//! zones drawn as trust boundaries), the updatability view, and sequence views for the security
//! use cases (enrollment, update, decommissioning).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use medsec_risk::{
    AuthMethod, CredentialScope, DataClass, Encryption, EndpointKind, Inventory, Link,
};

use crate::doc::{Diagram, Edge, EdgeStyle, Node, NodeKind};

const W: f32 = 170.0;
const H: f32 = 56.0;
const COL: f32 = 250.0;
const ROW: f32 = 96.0;
const PAD: f32 = 30.0;

fn node_kind(k: EndpointKind) -> NodeKind {
    match k {
        EndpointKind::Device => NodeKind::Device,
        EndpointKind::BackendServer | EndpointKind::CloudService | EndpointKind::DataStore => {
            NodeKind::Server
        }
        EndpointKind::User => NodeKind::Person,
        _ => NodeKind::External,
    }
}

/// Weak: a finding in itself (no or old encryption, no authentication, shared credentials,
/// or one-way authentication carrying therapy commands).
pub fn link_is_weak(l: &Link) -> bool {
    matches!(l.encryption, Encryption::None)
        || l.encryption.is_weak_tls()
        || l.auth == AuthMethod::None
        || l.credential == CredentialScope::Shared
        || (!l.is_mutual() && l.carries(DataClass::TherapyCommands))
}

fn kind_name(k: EndpointKind) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn link_label(l: &Link) -> String {
    match l.port {
        Some(p) => format!("{} :{p}", l.protocol),
        None => l.protocol.clone(),
    }
}

/// The point where the segment from the centre of `r` towards `(tx, ty)` leaves `r`.
fn border(r: &Node, tx: f32, ty: f32) -> (f32, f32) {
    let (cx, cy) = (r.x + r.w / 2.0, r.y + r.h / 2.0);
    let (dx, dy) = (tx - cx, ty - cy);
    if dx.abs() < f32::EPSILON && dy.abs() < f32::EPSILON {
        return (cx, cy);
    }
    let sx = if dx.abs() > f32::EPSILON {
        (r.w / 2.0) / dx.abs()
    } else {
        f32::INFINITY
    };
    let sy = if dy.abs() > f32::EPSILON {
        (r.h / 2.0) / dy.abs()
    } else {
        f32::INFINITY
    };
    let s = sx.min(sy);
    (cx + dx * s, cy + dy * s)
}

fn straight(a: &Node, b: &Node) -> Vec<(f32, f32)> {
    let (bx, by) = (b.x + b.w / 2.0, b.y + b.h / 2.0);
    let (ax, ay) = (a.x + a.w / 2.0, a.y + a.h / 2.0);
    vec![border(a, bx, by), border(b, ax, ay)]
}

fn legend_inventory() -> Vec<(EdgeStyle, String)> {
    vec![
        (
            EdgeStyle::Secure,
            "authenticated and encrypted (TLS 1.2+, per-device credentials)".into(),
        ),
        (
            EdgeStyle::Weak,
            "finding: unencrypted, old TLS, unauthenticated, shared credentials or one-way authentication for therapy commands".into(),
        ),
    ]
}

/// Lays out the endpoints and links of `inv` that `keep` selects: columns by link distance
/// from the device endpoints, rows by zone then id, one boundary box per zone.
fn layered(id: &str, title: &str, inv: &Inventory, keep: impl Fn(&Link) -> bool) -> Diagram {
    let links: Vec<&Link> = inv.links.iter().filter(|l| keep(l)).collect();
    let used: BTreeSet<&str> = links
        .iter()
        .flat_map(|l| [l.from.as_str(), l.to.as_str()])
        .chain(
            inv.endpoints
                .iter()
                .filter(|e| e.kind == EndpointKind::Device)
                .map(|e| e.id.as_str()),
        )
        .collect();
    let eps: Vec<_> = inv
        .endpoints
        .iter()
        .filter(|e| used.contains(e.id.as_str()))
        .collect();
    // Rank by breadth-first distance from the devices; unreachable endpoints go last.
    let mut rank: BTreeMap<&str, usize> = BTreeMap::new();
    let mut q: VecDeque<&str> = VecDeque::new();
    for e in eps.iter().filter(|e| e.kind == EndpointKind::Device) {
        rank.insert(e.id.as_str(), 0);
        q.push_back(e.id.as_str());
    }
    while let Some(n) = q.pop_front() {
        let r = rank.get(n).copied().unwrap_or(0);
        for l in &links {
            let other = if l.from.as_str() == n {
                l.to.as_str()
            } else if l.to.as_str() == n {
                l.from.as_str()
            } else {
                continue;
            };
            if !rank.contains_key(other) {
                rank.insert(other, r + 1);
                q.push_back(other);
            }
        }
    }
    let max_rank = rank.values().copied().max().unwrap_or(0);
    // Each zone gets its own horizontal band across all columns, so zone boxes never
    // overlap; bands are ordered by how close the zone is to the device.
    let rank_of =
        |e: &medsec_risk::Endpoint| rank.get(e.id.as_str()).copied().unwrap_or(max_rank + 1);
    let mut bands: BTreeMap<(usize, String), Vec<&medsec_risk::Endpoint>> = BTreeMap::new();
    let mut zone_rank: BTreeMap<String, usize> = BTreeMap::new();
    for e in &eps {
        let z = e.zone.clone().unwrap_or_default();
        let r = zone_rank.entry(z).or_insert(usize::MAX);
        *r = (*r).min(rank_of(e));
    }
    for e in &eps {
        let z = e.zone.clone().unwrap_or_default();
        let zr = zone_rank.get(&z).copied().unwrap_or(usize::MAX);
        bands.entry((zr, z)).or_default().push(e);
    }
    let mut nodes: Vec<Node> = Vec::new();
    let mut y = PAD + 40.0;
    for members in bands.values_mut() {
        members.sort_by(|a, b| (rank_of(a), &a.id).cmp(&(rank_of(b), &b.id)));
        let mut per_col: BTreeMap<usize, usize> = BTreeMap::new();
        let mut rows_here = 0usize;
        for e in members.iter() {
            let c = rank_of(e);
            let row = per_col.entry(c).or_default();
            nodes.push(Node {
                id: e.id.as_str().to_string(),
                label: e.name.clone(),
                sublabel: Some(kind_name(e.kind)),
                kind: node_kind(e.kind),
                x: PAD + 20.0 + c as f32 * COL,
                y: y + *row as f32 * ROW,
                w: W,
                h: H,
            });
            *row += 1;
            rows_here = rows_here.max(*row);
        }
        y += rows_here as f32 * ROW + 34.0;
    }
    let columns: BTreeSet<usize> = eps.iter().map(|e| rank_of(e)).collect();
    let max_col = columns.iter().copied().max().unwrap_or(0);
    let by_id: BTreeMap<&str, &Node> = nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let mut edges = Vec::new();
    for l in &links {
        let (Some(a), Some(b)) = (by_id.get(l.from.as_str()), by_id.get(l.to.as_str())) else {
            continue;
        };
        edges.push(Edge {
            from: l.from.as_str().to_string(),
            to: l.to.as_str().to_string(),
            label: Some(link_label(l)),
            style: if link_is_weak(l) {
                EdgeStyle::Weak
            } else {
                EdgeStyle::Secure
            },
            points: straight(a, b),
            both_ways: l.direction == medsec_risk::Direction::Bidirectional,
        });
    }
    // Zones as boundaries around their members, drawn before (behind) the nodes.
    let mut zones: BTreeMap<&str, (f32, f32, f32, f32)> = BTreeMap::new();
    for e in &eps {
        if let (Some(z), Some(n)) = (e.zone.as_deref(), by_id.get(e.id.as_str())) {
            let b = zones
                .entry(z)
                .or_insert((f32::MAX, f32::MAX, f32::MIN, f32::MIN));
            b.0 = b.0.min(n.x);
            b.1 = b.1.min(n.y);
            b.2 = b.2.max(n.x + n.w);
            b.3 = b.3.max(n.y + n.h);
        }
    }
    let mut boundaries: Vec<Node> = zones
        .into_iter()
        .map(|(z, (x0, y0, x1, y1))| Node {
            id: format!("zone-{z}"),
            label: z.to_string(),
            sublabel: None,
            kind: NodeKind::Boundary,
            x: x0 - 14.0,
            y: y0 - 26.0,
            w: x1 - x0 + 28.0,
            h: y1 - y0 + 40.0,
        })
        .collect();
    boundaries.extend(nodes);
    Diagram {
        id: id.to_string(),
        title: title.to_string(),
        width: PAD * 2.0 + 40.0 + max_col as f32 * COL + W,
        height: y + PAD,
        nodes: boundaries,
        edges,
        legend: legend_inventory(),
    }
}

/// Every endpoint and link of the inventory.
pub fn global_view(inv: &Inventory) -> Diagram {
    layered(
        "global-system-view",
        "Global system view: every trust relationship of the device",
        inv,
        |_| true,
    )
}

/// Links through which one compromise reaches many patients: those ending at a server,
/// cloud service, EHR interface, gateway or data store that serves the whole fleet.
pub fn multi_patient_view(inv: &Inventory) -> Diagram {
    let fleet: BTreeSet<&str> = inv
        .endpoints
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EndpointKind::BackendServer
                    | EndpointKind::CloudService
                    | EndpointKind::EhrInterface
                    | EndpointKind::Gateway
                    | EndpointKind::DataStore
            )
        })
        .map(|e| e.id.as_str())
        .collect();
    layered(
        "multi-patient-harm-view",
        "Multi-patient harm view: fleet-wide systems and their links",
        inv,
        |l| fleet.contains(l.from.as_str()) || fleet.contains(l.to.as_str()),
    )
}

/// Lays out a sequence: actors in a row, one horizontal arrow per step below them, and a
/// dashed lifeline under each actor.
fn sequence(
    id: &str,
    title: &str,
    actors: &[(&str, &str, NodeKind)],
    steps: &[(&str, &str, &str)],
) -> Diagram {
    let top = PAD + 10.0;
    let step_h = 34.0;
    let height = top + H + 30.0 + steps.len() as f32 * step_h + PAD;
    let mut nodes = Vec::new();
    let mut centre = BTreeMap::new();
    for (i, (aid, label, kind)) in actors.iter().enumerate() {
        let x = PAD + i as f32 * 210.0;
        centre.insert(*aid, x + W / 2.0);
        nodes.push(Node {
            id: format!("lifeline-{aid}"),
            label: String::new(),
            sublabel: None,
            kind: NodeKind::Boundary,
            x: x + W / 2.0 - 1.0,
            y: top + H,
            w: 2.0,
            h: height - top - H - PAD / 2.0,
        });
        nodes.push(Node {
            id: (*aid).to_string(),
            label: (*label).to_string(),
            sublabel: None,
            kind: *kind,
            x,
            y: top,
            w: W,
            h: H,
        });
    }
    let edges = steps
        .iter()
        .enumerate()
        .filter_map(|(i, (from, to, what))| {
            let (a, b) = (centre.get(from)?, centre.get(to)?);
            let y = top + H + 30.0 + i as f32 * step_h;
            // A step an actor takes on its own is a short arrow off its lifeline.
            let points = if from == to {
                vec![(*a, y), (*a + 60.0, y)]
            } else {
                vec![(*a, y), (*b, y)]
            };
            Some(Edge {
                from: (*from).to_string(),
                to: (*to).to_string(),
                label: Some(format!("{}. {what}", i + 1)),
                style: EdgeStyle::Flow,
                points,
                both_ways: false,
            })
        })
        .collect();
    Diagram {
        id: id.to_string(),
        title: title.to_string(),
        width: PAD * 2.0 + (actors.len().max(1) as f32 - 1.0) * 210.0 + W,
        height,
        nodes,
        edges,
        legend: vec![(EdgeStyle::Flow, "step of the use case, in order".into())],
    }
}

/// How a release reaches a device and what the device checks before installing it.
pub fn updatability_view(model: &str) -> Diagram {
    sequence(
        "updatability-view",
        "Updatability and patchability view",
        &[
            (
                "signers",
                "Release signers (offline keys)",
                NodeKind::Person,
            ),
            ("repo", "TUF repository (medsec)", NodeKind::Server),
            ("director", "Director (online key)", NodeKind::Server),
            ("device", &format!("Device ({model})"), NodeKind::Device),
        ],
        &[
            ("signers", "repo", "sign targets for the model (threshold)"),
            (
                "director",
                "device",
                "signed instruction: version, cohort, counter",
            ),
            ("repo", "device", "root, timestamp, snapshot, targets (TUF)"),
            ("repo", "device", "firmware image (length and hash checked)"),
            (
                "device",
                "device",
                "verify, install to inactive slot, reboot",
            ),
            (
                "device",
                "director",
                "status report over mTLS (confirm or revert)",
            ),
        ],
    )
}

pub fn enrollment_view(model: &str) -> Diagram {
    sequence(
        "use-case-enrollment",
        "Security use case: enrollment",
        &[
            ("device", &format!("Device ({model})"), NodeKind::Device),
            ("est", "EST server (medsec)", NodeKind::Server),
            ("ca", "Issuing CA", NodeKind::Server),
        ],
        &[
            (
                "device",
                "device",
                "generate key pair (never leaves the device)",
            ),
            (
                "device",
                "est",
                "simpleenroll: CSR + one-time token or IDevID (TLS)",
            ),
            ("est", "ca", "check bootstrap credential, profile, key type"),
            ("ca", "est", "certificate with the device URN (SAN)"),
            ("est", "device", "PKCS#7 certs-only response"),
            ("device", "est", "simplereenroll at 2/3 of validity (mTLS)"),
        ],
    )
}

pub fn update_use_case_view(model: &str) -> Diagram {
    sequence(
        "use-case-update",
        "Security use case: update",
        &[
            ("operator", "Operator", NodeKind::Person),
            ("medsec", "medsec (director + TUF)", NodeKind::Server),
            ("device", &format!("Device ({model})"), NodeKind::Device),
        ],
        &[
            (
                "operator",
                "medsec",
                "publish release, create staged rollout",
            ),
            ("device", "medsec", "GET /device/v1/update (mTLS)"),
            ("medsec", "device", "signed instruction + TUF metadata"),
            (
                "device",
                "device",
                "refuse tampered, stale, downgraded or wrong-hardware images",
            ),
            ("device", "medsec", "POST /device/v1/update-status"),
            (
                "medsec",
                "operator",
                "promote, halt or abort stages on reported outcomes",
            ),
        ],
    )
}

pub fn decommissioning_view(model: &str) -> Diagram {
    sequence(
        "use-case-decommissioning",
        "Security use case: decommissioning",
        &[
            ("operator", "Service / hospital", NodeKind::Person),
            ("device", &format!("Device ({model})"), NodeKind::Device),
            ("medsec", "medsec (CA, OCSP, CRL)", NodeKind::Server),
        ],
        &[
            (
                "operator",
                "device",
                "secure erase: patient data, keys, configuration",
            ),
            ("operator", "medsec", "retire the device (audited)"),
            (
                "medsec",
                "medsec",
                "revoke all its certificates (cessationOfOperation)",
            ),
            (
                "medsec",
                "operator",
                "CRL and OCSP report revoked; gateway refuses it",
            ),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv() -> Inventory {
        Inventory::from_toml(
            r#"
model = "pump"
[[endpoint]]
id = "pump"
name = "Pump"
kind = "device"
zone = "ward"
[[endpoint]]
id = "srv"
name = "Backend"
kind = "backend-server"
zone = "cloud"
[[endpoint]]
id = "ehr"
name = "EHR"
kind = "ehr-interface"
zone = "hospital"
[[link]]
id = "l1"
from = "pump"
to = "srv"
direction = "bidirectional"
protocol = "https"
port = 443
auth = "mtls-our-pki"
encryption = "tls-1.3"
[[link]]
id = "l2"
from = "srv"
to = "ehr"
direction = "outbound"
protocol = "hl7"
port = 2575
auth = "none"
encryption = "none"
data = ["phi"]
"#,
        )
        .unwrap()
    }

    #[test]
    fn layers_follow_distance_and_styles_follow_weakness() {
        let d = global_view(&inv());
        let x = |id: &str| d.nodes.iter().find(|n| n.id == id).unwrap().x;
        assert!(x("pump") < x("srv") && x("srv") < x("ehr"));
        let style = |to: &str| d.edges.iter().find(|e| e.to == to).unwrap().style;
        assert_eq!(style("srv"), EdgeStyle::Secure);
        assert_eq!(style("ehr"), EdgeStyle::Weak);
        assert_eq!(
            d.nodes
                .iter()
                .filter(|n| n.kind == NodeKind::Boundary)
                .count(),
            3
        );
        // Edges end on the node borders, not the centres.
        let e = d.edges.iter().find(|e| e.to == "srv").unwrap();
        let srv = d.nodes.iter().find(|n| n.id == "srv").unwrap();
        let (px, py) = e.points[1];
        let on_x = (px - srv.x).abs() < 0.01 || (px - srv.x - srv.w).abs() < 0.01;
        let on_y = (py - srv.y).abs() < 0.01 || (py - srv.y - srv.h).abs() < 0.01;
        assert!(
            (on_x && py >= srv.y - 0.01 && py <= srv.y + srv.h + 0.01)
                || (on_y && px >= srv.x - 0.01 && px <= srv.x + srv.w + 0.01),
            "{px},{py} is not on the border of {srv:?}"
        );
        assert_eq!(global_view(&inv()), d, "deterministic");
    }

    #[test]
    fn sequences_number_their_steps() {
        let d = enrollment_view("pump");
        assert_eq!(
            d.edges[1].label.as_deref(),
            Some("2. simpleenroll: CSR + one-time token or IDevID (TLS)")
        );
        assert!(d.edges.iter().all(|e| e.style == EdgeStyle::Flow));
    }
}
