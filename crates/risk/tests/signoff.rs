//! Policy is data: changing the matrix re-rates; sign-off survives only unchanged inputs.

use medsec_core::Actor;
use medsec_risk::*;
use time::macros::datetime;

const REGISTER: &str = include_str!("../../../examples/infusion-pump/register.toml");

fn rid(s: &str) -> RiskId {
    RiskId::parse(s).unwrap()
}

fn level(s: &str) -> LevelName {
    LevelName::parse(s).unwrap()
}

fn residual(reg: &Register, p: &Policy, id: &str) -> (String, bool) {
    let a = reg.assess_entry(reg.risk(&rid(id)).unwrap(), p).unwrap();
    (a.residual.level.to_string(), a.controlled)
}

#[test]
fn changing_the_matrix_re_rates_risks() {
    let reg = Register::from_toml(REGISTER).unwrap();
    let default = Policy::default_policy().unwrap();
    assert_eq!(residual(&reg, &default, "R-001"), ("low".to_owned(), true));

    // A stricter policy from a file: anything critical or worse is at least medium.
    let strict_src = Policy::default_policy_toml().replace(
        r#"["low",      "low",    "low",    "low",    "medium"], # very-low"#,
        r#"["low",      "low",    "low",    "medium", "medium"], # very-low"#,
    );
    assert_ne!(strict_src, Policy::default_policy_toml());
    let strict = Policy::from_toml(&strict_src).unwrap();
    assert_eq!(
        residual(&reg, &strict, "R-001"),
        ("medium".to_owned(), false)
    );
    // R-004's residual is very-low x serious: untouched by the change.
    assert_eq!(residual(&reg, &strict, "R-004"), ("low".to_owned(), true));

    // Making "medium" acceptable flips R-002 to controlled without touching the register.
    let mut lenient = default.clone();
    lenient
        .levels
        .iter_mut()
        .find(|l| l.name == level("medium"))
        .unwrap()
        .acceptable = true;
    assert_eq!(
        residual(&reg, &lenient, "R-002"),
        ("medium".to_owned(), true)
    );
    assert_eq!(
        residual(&reg, &default, "R-002"),
        ("medium".to_owned(), false)
    );
}

#[test]
fn custom_scales_and_cvss_mapping() {
    let src = r#"
severity = ["minor", "major"]
exploitability = ["unlikely", "likely", "certain"]
matrix = [["ok", "ok"], ["ok", "bad"], ["bad", "bad"]]
[[level]]
name = "ok"
acceptable = true
[[level]]
name = "bad"
acceptable = false
"#;
    let p = Policy::from_toml(src).unwrap();
    assert_eq!(
        p.rate(&level("likely"), &level("major")).unwrap().level,
        level("bad")
    );
    let v = CvssVector::parse("CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:H/I:H/A:H").unwrap();
    assert_eq!(v.exploitability_rank(false), 0);
    assert_eq!(
        p.exploitability_for_rank(v.exploitability_rank(false))
            .unwrap(),
        &level("unlikely")
    );
    assert_eq!(
        p.exploitability_for_rank(v.exploitability_rank(true))
            .unwrap(),
        &level("certain")
    );
    let adj = CvssVector::parse("CVSS:3.1/AV:A/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H").unwrap();
    assert_eq!(adj.exploitability_rank(false), 3); // 8.22*.62*.77*.85*.85 = 2.84
    assert!(matches!(
        p.rate(&level("moderate"), &level("minor")),
        Err(RiskError::UnknownLevel { .. })
    ));
    assert!(matches!(
        CvssVector::parse("CVSS:4.0/AV:N"),
        Err(RiskError::Cvss { .. })
    ));
    assert!(matches!(
        CvssVector::parse("CVSS:3.1/AV:N/AC:L"),
        Err(RiskError::Cvss { .. })
    ));

    let bad = src.replace(r#"["bad", "bad"]]"#, r#"["bad", "worse"]]"#);
    let err = Policy::from_toml(&bad).unwrap_err();
    assert!(
        matches!(&err, RiskError::Invalid { line: Some(4), field, .. } if field == "matrix"),
        "{err}"
    );
}

#[test]
fn sign_off_is_kept_and_invalidated_when_inputs_change() {
    let policy = Policy::default_policy().unwrap();
    let mut reg = Register::from_toml(REGISTER).unwrap();
    let r2 = rid("R-002");
    assert!(!reg.is_signed_off_valid(&r2, &policy).unwrap());
    reg.sign_off(
        &r2,
        Actor::parse("cli:qa").unwrap(),
        datetime!(2026-11-28 10:00 UTC),
        &policy,
    )
    .unwrap();
    assert!(reg.is_signed_off_valid(&r2, &policy).unwrap());

    // Kept: survives a TOML round trip and unrelated edits (another entry, an uncited control).
    let mut kept = Register::from_toml(&reg.to_toml().unwrap()).unwrap();
    assert!(kept.is_signed_off_valid(&r2, &policy).unwrap());
    kept.risks[0].harm.push_str(" (edited)");
    kept.controls
        .iter_mut()
        .find(|c| c.id.as_str() == "C-SAFE-STANDALONE")
        .unwrap()
        .tests
        .clear();
    assert!(kept.is_signed_off_valid(&r2, &policy).unwrap());
    assert!(!kept.is_signed_off_valid(&rid("R-001"), &policy).unwrap()); // R-001 itself was edited

    // Invalidated: any field of the entry.
    let mut edited = reg.clone();
    edited.risks[1].severity = LevelName::parse("serious").unwrap();
    assert!(!edited.is_signed_off_valid(&r2, &policy).unwrap());
    let mut edited = reg.clone();
    edited.risks[1].rationale.push('.');
    assert_eq!(
        edited.sign_off_state(&edited.risks[1], &policy).unwrap(),
        SignOffState::Invalidated
    );

    // Invalidated: a control the entry cites (R-001 cites C-DOSE-LIMITS).
    let r1 = rid("R-001");
    assert!(reg.is_signed_off_valid(&r1, &policy).unwrap());
    let mut edited = reg.clone();
    edited
        .controls
        .iter_mut()
        .find(|c| c.id.as_str() == "C-DOSE-LIMITS")
        .unwrap()
        .tests
        .clear();
    assert!(!edited.is_signed_off_valid(&r1, &policy).unwrap());

    // Invalidated: the matrix, even in a cell this entry does not use.
    let mut other = policy.clone();
    other.matrix[0][0] = LevelName::parse("medium").unwrap();
    assert!(!reg.is_signed_off_valid(&r1, &other).unwrap());
    assert!(!reg.is_signed_off_valid(&r2, &other).unwrap());

    // Re-signing under the new matrix makes it valid again, and reports show the state.
    reg.sign_off(
        &r1,
        Actor::parse("cli:qa").unwrap(),
        datetime!(2026-11-29 10:00 UTC),
        &other,
    )
    .unwrap();
    assert!(reg.is_signed_off_valid(&r1, &other).unwrap());
    let states: Vec<SignOffState> = reg
        .assess(&policy)
        .unwrap()
        .iter()
        .map(|a| a.sign_off)
        .collect();
    assert_eq!(
        states,
        [
            SignOffState::Invalidated,
            SignOffState::Valid,
            SignOffState::Missing,
            SignOffState::Missing,
            SignOffState::Missing
        ]
    );

    assert!(matches!(
        reg.is_signed_off_valid(&rid("R-999"), &policy),
        Err(RiskError::NotFound { .. })
    ));
}

#[test]
fn register_file_errors_name_line_and_field() {
    let bad = REGISTER.replace(
        r#"controls = ["C-SIGNED-FW", "C-AUDIT-LOG"]"#,
        r#"controls = ["C-SIGNED-FW", "C-NOPE"]"#,
    );
    let err = Register::from_toml(&bad).unwrap_err();
    match &err {
        RiskError::Invalid {
            field,
            line: Some(line),
            message,
            ..
        } => {
            assert_eq!(field, "risk.controls");
            let want = bad.lines().position(|l| l.contains("C-NOPE")).unwrap() + 1;
            assert_eq!(*line, want);
            assert!(message.contains("C-NOPE"), "{message}");
        }
        other => panic!("{other}"),
    }
    let bad = REGISTER.replace("exploitability = \"high\"\n", "");
    let err = Register::from_toml(&bad).unwrap_err();
    assert!(
        matches!(&err, RiskError::Invalid { field, .. } if field == "risk.exploitability"),
        "{err}"
    );
    let bad = REGISTER.replace(
        "harm = \"Privacy breach; no physical harm.\"",
        "harm = \"x\"\nharms = \"y\"",
    );
    let err = Register::from_toml(&bad).unwrap_err();
    assert!(
        matches!(&err, RiskError::Syntax { field: Some(f), .. } if f == "harms"),
        "{err}"
    );
}
