//! Bad inventory files are refused with the line and field a person has to fix.
//! Fixtures live in tests/data/, named after the case.

use medsec_risk::{Inventory, RiskError};

fn load(name: &str) -> RiskError {
    let path = format!("{}/tests/data/{name}.toml", env!("CARGO_MANIFEST_DIR"));
    let src = std::fs::read_to_string(&path).unwrap();
    Inventory::from_toml(&src).unwrap_err()
}

#[test]
fn unknown_field() {
    let err = load("unknown_field");
    match &err {
        RiskError::Syntax {
            line,
            field,
            message,
            ..
        } => {
            assert_eq!(*line, 21);
            assert_eq!(field.as_deref(), Some("encrytion"));
            assert!(message.contains("unknown field"), "{message}");
        }
        other => panic!("wrong error: {other:?}"),
    }
    let shown = err.to_string();
    assert!(
        shown.contains("line 21") && shown.contains("`encrytion`"),
        "{shown}"
    );
}

#[test]
fn dangling_endpoint_reference() {
    let err = load("dangling_endpoint_reference");
    assert!(
        matches!(
            &err,
            RiskError::Invalid { file: "inventory", line: Some(26), field, message }
                if field == "link.to" && message == "endpoint \"ehr-gateway\" is not defined"
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "inventory: line 26, field `link.to`: endpoint \"ehr-gateway\" is not defined"
    );
}

#[test]
fn via_cycle() {
    let err = load("via_cycle");
    match &err {
        RiskError::Invalid {
            line,
            field,
            message,
            ..
        } => {
            assert_eq!(*line, Some(13));
            assert_eq!(field, "endpoint.via");
            assert!(
                message.contains("gw-a -> gw-b -> gw-c -> gw-a"),
                "{message}"
            );
        }
        other => panic!("wrong error: {other:?}"),
    }
}

#[test]
fn duplicate_id() {
    let err = load("duplicate_id");
    assert!(
        matches!(&err, RiskError::Invalid { line: Some(15), field, message, .. }
            if field == "endpoint.id" && message.contains("duplicate")),
        "{err:?}"
    );
}

#[test]
fn unknown_encryption_value() {
    let err = load("unknown_encryption_value");
    assert!(
        matches!(&err, RiskError::Syntax { line: 21, field: Some(f), .. } if f == "encryption"),
        "{err:?}"
    );
}

#[test]
fn invalid_id() {
    let err = load("invalid_id");
    assert!(
        matches!(&err, RiskError::Syntax { line: 10, field: Some(f), .. } if f == "id"),
        "{err:?}"
    );
    assert!(err.to_string().contains("only letters"), "{err}");
}

#[test]
fn self_loop_and_impossible_mutual_are_refused() {
    let src = r#"model = "m"
[[endpoint]]
id = "a"
name = "A"
kind = "device"
[[link]]
id = "l"
from = "a"
to = "a"
direction = "outbound"
protocol = "x"
auth = "none"
encryption = "none"
"#;
    let err = Inventory::from_toml(src).unwrap_err();
    assert!(
        matches!(&err, RiskError::Invalid { line: Some(9), field, .. } if field == "link.to"),
        "{err:?}"
    );
    let src = src.replace("to = \"a\"", "to = \"b\"").replace(
        "[[link]]",
        "[[endpoint]]\nid = \"b\"\nname = \"B\"\nkind = \"other\"\n[[link]]",
    ) + "mutual = true\n";
    let err = Inventory::from_toml(&src).unwrap_err();
    assert!(
        matches!(&err, RiskError::Invalid { line: Some(18), field, .. } if field == "link.mutual"),
        "{err:?}"
    );
}
