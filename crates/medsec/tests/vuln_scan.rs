//! `medsec vuln scan`: a real SBOM against a real OSV dump, and refusals of bad input.

use std::path::PathBuf;
use std::process::Command;

fn data(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(p)
}

fn scan(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_medsec"))
        .arg("--json")
        .args(["vuln", "scan"])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn juice_shop_against_the_npm_dump() {
    let sbom = data("sbom/tests/data/cyclonedx/cdx-1.6-juice-shop-14.1.1-npm.json");
    let osv = data("vuln/tests/data/osv-npm-all.zip");
    let kev = data("vuln/tests/data/known_exploited_vulnerabilities.json");
    let o = scan(&[
        "--sbom",
        sbom.to_str().unwrap(),
        "--osv",
        osv.to_str().unwrap(),
        "--kev",
        kev.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let findings = v["findings"].as_array().unwrap();
    let has = |purl: &str, id: &str| {
        findings.iter().any(|f| {
            f["purl"] == purl && f["advisories"].as_array().unwrap().iter().any(|a| a == id)
        })
    };
    assert!(has("pkg:npm/braces@2.3.2", "GHSA-grv7-fg5c-xmjg"));
    assert!(
        !has("pkg:npm/braces@3.0.3", "GHSA-grv7-fg5c-xmjg"),
        "3.0.3 is the fixed version"
    );
    assert!(
        findings.iter().any(|f| f["cvss_base"].as_f64().is_some()),
        "CVSS scores computed"
    );
    assert!(v["advisories_loaded"].as_u64().unwrap() >= 10);
}

#[test]
fn bad_inputs_are_refused_clearly() {
    let good_osv = data("vuln/tests/data/osv/npm");
    let bad_sbom =
        data("sbom/tests/data/malformed/upstream-spec-fixtures/invalid-component-type-1.6.json");
    let o = scan(&[
        "--sbom",
        bad_sbom.to_str().unwrap(),
        "--osv",
        good_osv.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("components[0].type"));
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "{\"id\": 5}").unwrap();
    let sbom = data("sbom/tests/data/cyclonedx/cdx-1.5-poetry-torch-2.1.2-pypi.xml");
    let o = scan(&[
        "--sbom",
        sbom.to_str().unwrap(),
        "--osv",
        junk.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("junk.json"));
}

#[test]
fn sbom_show_and_diff() {
    let a = data("sbom/tests/data/cyclonedx/spec-fixtures/valid-dependency-1.5.json");
    let b = data("sbom/tests/data/cyclonedx/cdx-1.5-poetry-torch-2.1.2-pypi.xml");
    let o = Command::new(env!("CARGO_BIN_EXE_medsec"))
        .args(["--json", "sbom", "show"])
        .arg(&b)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["format"], "CycloneDxXml");
    assert!(v["components"].as_array().unwrap().iter().any(|c| {
        c["purl"]
            .as_str()
            .is_some_and(|p| p.starts_with("pkg:pypi/jinja2@"))
    }));
    let o = Command::new(env!("CARGO_BIN_EXE_medsec"))
        .args(["--json", "sbom", "diff"])
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let d: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(!d["added"].as_array().unwrap().is_empty());
    let bad = data("sbom/tests/data/malformed/truncated-json.cdx.json");
    let o = Command::new(env!("CARGO_BIN_EXE_medsec"))
        .args(["sbom", "show"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("line"));
}
