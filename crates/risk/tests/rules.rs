//! The threat rule set is data: it round-trips, custom rules apply, bad rules name line and field.

use medsec_risk::*;

const INVENTORY: &str = include_str!("../../../examples/infusion-pump/inventory.toml");

#[test]
fn default_rules_round_trip_and_cover_every_phase() {
    let rules = RuleSet::default_rules().unwrap();
    assert_eq!(
        RuleSet::from_toml(&rules.to_toml().unwrap()).unwrap(),
        rules
    );
    let phases: std::collections::BTreeSet<LifecyclePhase> =
        rules.rules.iter().map(|r| r.threat.phase).collect();
    assert_eq!(phases.len(), 6);
}

#[test]
fn custom_rule_generates_threats_and_statuses_survive_regeneration() {
    let src = r#"
[[rule]]
id = "ble-relay"
scope = "link"
[rule.when]
protocol = ["HTTPS"]
data = ["therapy-commands"]
mutual = false
[rule.threat]
category = "spoofing"
title = "Relay of {protocol} session on {link} from {from} to {to}"
assumptions = ["Attacker within radio range of {to}"]
phase = "operation"

[[rule]]
id = "tablet-with-therapy"
scope = "endpoint"
[rule.when]
endpoint_kind = ["clinician-tablet"]
data = ["therapy-commands"]
[rule.threat]
category = "elevation-of-privilege"
title = "{name} can program therapy"
phase = "deployment"
"#;
    let rules = RuleSet::from_toml(src).unwrap();
    let inv = Inventory::from_toml(INVENTORY).unwrap();
    let mut model = rules.generate(&inv);
    let ids: Vec<&str> = model.threats.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "T-ble-relay-tablet-pump",
            "T-tablet-with-therapy-clinician-tablet"
        ]
    );
    assert_eq!(
        model.threats[0].title,
        "Relay of https session on tablet-pump from clinician-tablet to pump"
    );
    assert_eq!(
        model.threats[0].assumptions,
        ["Attacker within radio range of pump"]
    );
    assert_eq!(
        model.threats[1].title,
        "Clinician programming tablet can program therapy"
    );

    let mut statuses = std::collections::BTreeMap::new();
    statuses.insert(
        ThreatId::parse("T-ble-relay-tablet-pump").unwrap(),
        ThreatStatus::Mitigated,
    );
    statuses.insert(ThreatId::parse("T-gone").unwrap(), ThreatStatus::Accepted);
    let stale = model.apply_statuses(&statuses);
    assert_eq!(stale, [ThreatId::parse("T-gone").unwrap()]);
    assert_eq!(model.threats[0].status, ThreatStatus::Mitigated);
    let json: serde_json::Value = serde_json::from_str(&model.to_json().unwrap()).unwrap();
    assert_eq!(json["threats"][0]["status"], "mitigated");
    assert_eq!(json["threats"][0]["target"]["type"], "link");
}

#[test]
fn bad_rules_name_line_and_field() {
    let src = "[[rule]]\nid = \"x\"\nscope = \"link\"\n[rule.when]\nencrypton = [\"none\"]\n[rule.threat]\ncategory = \"spoofing\"\ntitle = \"t\"\nphase = \"operation\"\n";
    let err = RuleSet::from_toml(src).unwrap_err();
    assert!(
        matches!(&err, RiskError::Syntax { line: 5, field: Some(f), .. } if f == "encrypton"),
        "{err:?}"
    );
    let src = src
        .replace("encrypton", "encryption")
        .replace("spoofing", "spoofed");
    let err = RuleSet::from_toml(&src).unwrap_err();
    assert!(
        matches!(&err, RiskError::Syntax { line: 7, field: Some(f), .. } if f == "category"),
        "{err:?}"
    );
    let dup = format!("{src}\n{src}").replace("spoofed", "spoofing");
    let err = RuleSet::from_toml(&dup).unwrap_err();
    assert!(
        matches!(&err, RiskError::Invalid { line: Some(12), field, .. } if field == "rule.id"),
        "{err:?}"
    );
}
