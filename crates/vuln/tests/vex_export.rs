//! VEX exports validate against the published OpenVEX 0.2, CycloneDX 1.5 and CSAF 2.0 JSON
//! schemas (vendored in tests/data/schemas), checked by python-jsonschema.

use std::path::Path;
use std::process::Command;

use medsec_core::Purl;
use medsec_vuln::{Justification, VexDocument, VexProduct, VexStatement, VexStatus};
use time::macros::datetime;

fn doc() -> VexDocument {
    let product = |c: &str| VexProduct {
        model: "infusion-x2".into(),
        firmware_version: "2.1.0".into(),
        component: Some(Purl::parse(c).unwrap()),
    };
    let st = |id: &str, c: &str, status: VexStatus, action: Option<&str>| VexStatement {
        vulnerability: id.into(),
        aliases: vec!["GHSA-jfh8-c2jp-5v3q".into()],
        product: product(c),
        status,
        detail: "triaged by the product security team".into(),
        action: action.map(str::to_owned),
        author: "psirt@acme.example".into(),
        timestamp: datetime!(2026-11-01 10:00:00 UTC),
    };
    VexDocument {
        id: "https://acme.example/vex/infusion-x2-2.1.0".into(),
        publisher: "Acme Medical".into(),
        publisher_namespace: "https://acme.example".into(),
        title: "Infusion pump X2 firmware 2.1.0: vulnerability exploitability".into(),
        revisions: vec![
            (datetime!(2026-10-01 08:00:00 UTC), "Initial triage.".into()),
            (
                datetime!(2026-10-15 08:00:00 UTC),
                "log4j-core not reachable.".into(),
            ),
            (
                datetime!(2026-11-02 08:00:00 UTC),
                "Fix for braces in 2.1.1.".into(),
            ),
        ],
        statements: vec![
            st(
                "CVE-2021-44228",
                "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1",
                VexStatus::NotAffected {
                    justification: Justification::VulnerableCodeNotInExecutePath,
                },
                None,
            ),
            st(
                "CVE-2023-0001",
                "pkg:npm/braces@2.3.2",
                VexStatus::Affected,
                Some("Update to firmware 2.1.1."),
            ),
            st(
                "CVE-2023-0002",
                "pkg:pypi/jinja2@3.1.3",
                VexStatus::Fixed,
                None,
            ),
            st(
                "GHSA-aaaa-bbbb-cccc",
                "pkg:cargo/tokio@1.19.2",
                VexStatus::InTriage,
                None,
            ),
            st(
                "CVE-2023-0003",
                "pkg:npm/lodash@4.17.21",
                VexStatus::FalsePositive,
                None,
            ),
            st(
                "CVE-2023-0004",
                "pkg:npm/left-pad@1.0.0",
                VexStatus::Affected,
                None,
            ),
        ],
    }
}

fn validate(kind: &str, doc: &serde_json::Value) {
    let dir = tempfile_dir();
    let f = dir.join(format!("{kind}.json"));
    std::fs::write(&f, serde_json::to_vec_pretty(doc).unwrap()).unwrap();
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let o = Command::new("python3")
        .arg(here.join("validate_schema.py"))
        .arg(here.join("data/schemas"))
        .arg(kind)
        .arg(&f)
        .output()
        .expect("python3 must be installed");
    let err = String::from_utf8_lossy(&o.stderr);
    if err.contains("No module named") && std::env::var_os("CI").is_none() {
        eprintln!("SKIPPED: python jsonschema not installed (pip install jsonschema)");
        return;
    }
    assert!(
        o.status.success(),
        "{kind} export does not validate:\n{err}\n{}",
        serde_json::to_string_pretty(doc).unwrap()
    );
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "medsec-vex-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn openvex_validates_and_maps_states() {
    let v = doc().to_openvex();
    validate("openvex", &v);
    let st = v["statements"].as_array().unwrap();
    assert_eq!(st[0]["status"], "not_affected");
    assert_eq!(
        st[0]["justification"],
        "vulnerable_code_not_in_execute_path"
    );
    assert_eq!(st[1]["status"], "affected");
    assert!(
        st[1]["action_statement"]
            .as_str()
            .unwrap()
            .contains("2.1.1")
    );
    assert_eq!(st[3]["status"], "under_investigation");
    assert_eq!(v["version"], 3);
}

#[test]
fn cyclonedx_vex_validates() {
    let v = doc().to_cyclonedx();
    validate("cyclonedx", &v);
    assert_eq!(v["vulnerabilities"][0]["analysis"]["state"], "not_affected");
    assert_eq!(
        v["vulnerabilities"][4]["analysis"]["state"],
        "false_positive"
    );
}

#[test]
fn csaf_vex_validates() {
    let v = doc().to_csaf();
    validate("csaf", &v);
    assert_eq!(v["document"]["category"], "csaf_vex");
    let vulns = v["vulnerabilities"].as_array().unwrap();
    let log4j = vulns.iter().find(|x| x["cve"] == "CVE-2021-44228").unwrap();
    assert_eq!(
        log4j["product_status"]["known_not_affected"][0],
        "pkg:generic/infusion-x2@2.1.0"
    );
    assert!(
        vulns
            .iter()
            .any(|x| x["ids"][0]["text"] == "GHSA-aaaa-bbbb-cccc")
    );
    // Every affected product has a remediation (CSAF VEX profile).
    for x in vulns {
        if x["product_status"].get("known_affected").is_some() {
            assert!(x["remediations"].is_array(), "{x}");
        }
    }
}

/// The CSAF export passes the BSI CSAF validator (secvisogram csaf-validator-lib): the strict
/// schema test and every mandatory test, which include the VEX profile's rules.
#[test]
fn csaf_vex_passes_the_bsi_validator() {
    let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/csaf-validator");
    if !tool
        .join("node_modules/@secvisogram/csaf-validator-lib")
        .exists()
    {
        if std::env::var_os("CI").is_some() {
            panic!("the BSI validator is required in CI: npm ci --prefix tools/csaf-validator");
        }
        eprintln!(
            "SKIPPED: run `npm ci --prefix tools/csaf-validator` to install the BSI CSAF validator"
        );
        return;
    }
    let f = tempfile_dir().join("bsi.json");
    std::fs::write(&f, serde_json::to_vec_pretty(&doc().to_csaf()).unwrap()).unwrap();
    let o = Command::new("node")
        .arg(tool.join("validate.js"))
        .arg(&f)
        .output()
        .expect("node must be installed");
    assert!(
        o.status.success(),
        "BSI validator rejected the CSAF export:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    // And it does reject a broken document, so the check above can fail.
    let mut bad = doc().to_csaf();
    bad["vulnerabilities"][0]["product_status"]["known_affected"] =
        serde_json::json!(["no-such-product"]);
    std::fs::write(&f, serde_json::to_vec_pretty(&bad).unwrap()).unwrap();
    let o = Command::new("node")
        .arg(tool.join("validate.js"))
        .arg(&f)
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "a reference to an undefined product must fail"
    );
}
