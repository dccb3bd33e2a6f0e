//! Import of real OWASP Threat Dragon v2 models (tests/data/, see README there).

use medsec_core::DeviceModel;
use medsec_risk::threat_dragon::import;
use medsec_risk::*;

fn data(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn model() -> DeviceModel {
    DeviceModel::parse("demo-web-app").unwrap()
}

#[test]
fn demo_model_elements_flows_and_threats_map() {
    let td = import(&data("v2-threat-model.json"), model()).unwrap();
    assert_eq!(td.title, "Demo Threat Model");
    let inv = &td.inventory;
    let eps: Vec<(&str, EndpointKind)> = inv
        .endpoints
        .iter()
        .map(|e| (e.id.as_str(), e.kind))
        .collect();
    let mut sorted = eps.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            ("background-worker-process", EndpointKind::Other),
            ("browser", EndpointKind::User),
            ("database", EndpointKind::DataStore),
            ("message-queue", EndpointKind::DataStore),
            ("web-application", EndpointKind::Other),
            ("web-application-config", EndpointKind::DataStore),
            ("worker-config", EndpointKind::DataStore),
        ]
    );
    // Ten flows, one of which ("Web Request") is not attached at its source.
    assert_eq!(inv.links.len(), 9);
    assert!(
        td.warnings
            .iter()
            .any(|w| w.contains("\"Web Request\"") && w.contains("1 threat(s)")),
        "{:#?}",
        td.warnings
    );
    let resp = inv.link(&LinkId::parse("web-response").unwrap()).unwrap();
    assert_eq!(
        (resp.from.as_str(), resp.to.as_str()),
        ("web-application", "browser")
    );
    assert_eq!(resp.encryption, Encryption::Tls12);
    assert_eq!(resp.protocol, "HTTP/S");
    let msg = inv.link(&LinkId::parse("message").unwrap()).unwrap();
    assert_eq!(msg.encryption, Encryption::None);
    assert_eq!(msg.auth, AuthMethod::None);

    // 14 threats in the file, minus the one on the detached flow.
    assert_eq!(td.threats.len(), 13);
    let t = td
        .threats
        .iter()
        .find(|t| t.id.as_str() == "TD-21fc4b20-ca29-4891-9691-d8f0331b2a11")
        .unwrap();
    assert_eq!(t.title, "Unauthorised access");
    assert_eq!(t.status, ThreatStatus::Mitigated);
    assert_eq!(t.category, Stride::InformationDisclosure);
    assert_eq!(
        t.target,
        ThreatTarget::Endpoint(EndpointId::parse("database").unwrap())
    );
    assert_eq!(
        t.mitigation.as_deref(),
        Some("Require all queries to be authenticated.")
    );
    let on_flow = td
        .threats
        .iter()
        .find(|t| t.id.as_str().starts_with("TD-72b9712b"))
        .unwrap();
    assert_eq!(on_flow.title, "Man in the middle attack");
    assert_eq!(
        on_flow.target,
        ThreatTarget::Link(LinkId::parse("worker-query-results").unwrap())
    );
    let mut by_cat = std::collections::BTreeMap::new();
    for t in &td.threats {
        *by_cat.entry(t.category).or_insert(0) += 1;
    }
    assert_eq!(by_cat[&Stride::InformationDisclosure], 9); // 10 in the file, one on the detached flow
    assert_eq!(by_cat[&Stride::DenialOfService], 2);
    assert_eq!(by_cat[&Stride::Tampering], 1);
    assert_eq!(by_cat[&Stride::Spoofing], 1);
}

#[test]
fn imported_model_is_a_starting_point_for_the_rest() {
    let td = import(&data("v2-threat-model.json"), model()).unwrap();
    // It serialises to an inventory file a person can then complete.
    let toml = td.inventory.to_toml().unwrap();
    assert_eq!(Inventory::from_toml(&toml).unwrap(), td.inventory);
    // Rule-generated threats and imported ones live side by side.
    let mut threats = RuleSet::default_rules().unwrap().generate(&td.inventory);
    let generated = threats.threats.len();
    threats.merge(td.threats.clone());
    assert_eq!(threats.threats.len(), generated + 13);
    // Authentication is unknown in Threat Dragon, so every link is flagged for review.
    let findings = compute_findings(
        &td.inventory,
        &FindingInputs::at(time::macros::datetime!(2026-11-28 0:00 UTC)),
    );
    assert_eq!(
        findings
            .iter()
            .filter(|f| f.kind == FindingKind::Unauthenticated)
            .count(),
        9
    );
    assert_eq!(
        findings
            .iter()
            .filter(|f| f.kind == FindingKind::PlaintextLink)
            .count(),
        6
    );
}

#[test]
fn iot_cookbook_model_imports() {
    let td = import(&data("iot-device.json"), model()).unwrap();
    assert_eq!(td.inventory.endpoints.len(), 11);
    assert_eq!(td.inventory.links.len(), 14);
    let ids: Vec<&str> = td.inventory.links.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "user-to-my-script",
            "user-to-browser",
            "user-to-mobile-app",
            "broadcast",
            "http",
            "http-2",
            "https",
            "https-2",
            "send-command",
            "cloud-api-to-mysql-database",
            "web-site-to-mysql-database",
            "web-site-to-cloud-integration",
            "cloud-integration-to-social-networks-weather-data-etc",
            "cloud-integration-to-mysql-database",
        ]
    );
    let send = td
        .inventory
        .link(&LinkId::parse("send-command").unwrap())
        .unwrap();
    assert_eq!(
        (send.from.as_str(), send.to.as_str()),
        ("cloud-api", "iot-device")
    );
    let got: Vec<(&str, &str, Stride, ThreatStatus)> = td
        .threats
        .iter()
        .map(|t| (t.title.as_str(), t.target.id_str(), t.category, t.status))
        .collect();
    assert_eq!(
        got,
        [
            (
                "IoT configuration changed",
                "iot-device",
                Stride::Tampering,
                ThreatStatus::Open
            ),
            (
                "No AuthN",
                "local-api",
                Stride::ElevationOfPrivilege,
                ThreatStatus::Open
            ),
            (
                "SQL injection",
                "cloud-api",
                Stride::Tampering,
                ThreatStatus::Mitigated
            ),
            (
                "New STRIDE threat",
                "local-api",
                Stride::Spoofing,
                ThreatStatus::Open
            ),
        ]
    );
}

#[test]
fn malformed_json_names_line_and_column() {
    let err = import("{\n  \"summary\": {},\n  \"detail\": [\n", model()).unwrap_err();
    assert!(matches!(err, RiskError::Json { line: 4, .. }), "{err:?}");
    let err = import("{\n  \"summary\": {},\n  \"detail\": 5\n}", model()).unwrap_err();
    assert!(matches!(err, RiskError::Json { line: 3, .. }), "{err:?}");
}
