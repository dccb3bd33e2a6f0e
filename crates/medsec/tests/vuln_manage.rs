//! Vulnerability management through the CLI on real data: a real SBOM stored per firmware
//! version, the real OSV npm dump and KEV catalog imported (and re-imported incrementally),
//! findings, triage surviving a re-match, affected devices, and VEX exports checked by their
//! published schemas and the BSI CSAF validator.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Env;

fn data(p: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(p)
        .display()
        .to_string()
}

const JUICE: &str = "sbom/tests/data/cyclonedx/cdx-1.6-juice-shop-14.1.1-npm.json";
const NPM_DUMP: &str = "vuln/tests/data/osv-npm-all.zip";
const KEV: &str = "vuln/tests/data/known_exploited_vulnerabilities.json";

fn validate_schema(kind: &str, file: &Path) {
    let tests = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../vuln/tests");
    let o = Command::new("python3")
        .arg(tests.join("validate_schema.py"))
        .arg(tests.join("data/schemas"))
        .arg(kind)
        .arg(file)
        .output()
        .expect("python3 must be installed");
    assert!(
        o.status.success(),
        "{kind} export does not validate (pip install jsonschema):\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn bsi_validate(file: &Path) {
    let tool = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tools/csaf-validator");
    assert!(
        tool.join("node_modules").exists(),
        "the BSI CSAF validator is needed: npm ci --prefix tools/csaf-validator"
    );
    let o = Command::new("node")
        .arg(tool.join("validate.js"))
        .arg(file)
        .output()
        .expect("node must be installed");
    assert!(
        o.status.success(),
        "BSI validator rejected the CSAF export:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn open_ids(v: &serde_json::Value) -> Vec<(String, String)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["vuln_id"].as_str().unwrap().to_owned(),
                f["component"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn firmware_sbom_findings_triage_affected_vex() {
    let env = Env::new();
    env.init_ca("p256");
    env.issue("d1", "p256", "SN-1");
    env.issue("d2", "p256", "SN-2");

    // Firmware versions and SBOMs; a broken SBOM stores nothing.
    env.ok(&[
        "firmware",
        "add",
        "--model",
        "pump-x2",
        "--version",
        "14.1.1",
        "--released",
        "2026-02-01",
        "--support",
        "security-only",
        "--end-of-support",
        "2028-02-01",
    ]);
    let (code, err) = env.fail(&[
        "firmware",
        "add",
        "--model",
        "pump-x2",
        "--version",
        "14.1.2",
        "--support",
        "forever",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("not one of supported"), "{err}");
    let v = env.json(&[
        "sbom",
        "import",
        "--model",
        "pump-x2",
        "--version",
        "14.1.1",
        &data(JUICE),
    ]);
    let n_components = v["components"].as_u64().unwrap();
    assert!(n_components > 500, "{v}");
    let broken = env.path("broken.json");
    std::fs::write(&broken, b"{\"bomFormat\": \"CycloneDX\", \"specVersion\": \"1.5\", \"components\": [{\"type\": \"library\"}]}").unwrap();
    let (_, err) = env.fail(&[
        "sbom",
        "import",
        "--model",
        "pump-x2",
        "--version",
        "15.0",
        broken.to_str().unwrap(),
    ]);
    assert!(err.contains("components[0]"), "names where: {err}");
    let fws = env.json(&["firmware", "list", "--model", "pump-x2"]);
    assert_eq!(fws.as_array().unwrap().len(), 1, "nothing stored: {fws}");
    // Importing again for the same version needs --replace.
    let (_, err) = env.fail(&[
        "sbom",
        "import",
        "--model",
        "pump-x2",
        "--version",
        "14.1.1",
        &data(JUICE),
    ]);
    assert!(err.contains("already has an SBOM"), "{err}");

    // The stored SBOM comes back out as CycloneDX 1.5 that validates.
    let exported = env.path("export.cdx.json");
    env.ok(&[
        "sbom",
        "export",
        "--model",
        "pump-x2",
        "--version",
        "14.1.1",
        "--out",
        exported.to_str().unwrap(),
    ]);
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&exported).unwrap()).unwrap();
    assert_eq!(doc["specVersion"], "1.5");
    assert_eq!(
        doc["components"].as_array().unwrap().len() as u64,
        n_components
    );
    validate_schema("cyclonedx", &exported);

    // Advisories: the npm dump and KEV; a second import writes nothing.
    let v = env.json(&[
        "vuln",
        "import",
        "--osv",
        &data(NPM_DUMP),
        "--kev",
        &data(KEV),
    ]);
    let read = v["osv"]["read"].as_u64().unwrap();
    assert!(read > 5, "{v}");
    assert_eq!(v["osv"]["new"].as_u64().unwrap(), read);
    let v = env.json(&["vuln", "import", "--osv", &data(NPM_DUMP)]);
    assert_eq!(v["osv"]["unchanged"].as_u64().unwrap(), read, "{v}");
    assert_eq!(v["osv"]["new"].as_u64().unwrap(), 0);
    let (_, err) = env.fail(&["vuln", "import"]);
    assert!(err.contains("nothing to import"), "{err}");

    // Matching.
    let m = env.json(&["vuln", "match"]);
    assert_eq!(m["firmware_versions"], 1);
    assert!(m["findings"].as_u64().unwrap() > 0, "{m}");
    let f = env.json(&["vuln", "findings", "--model", "pump-x2"]);
    let braces = (
        "CVE-2024-4068".to_owned(),
        "pkg:npm/braces@2.3.2".to_owned(),
    );
    assert!(open_ids(&f).contains(&braces), "{f}");
    let row = f
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["vuln_id"] == "CVE-2024-4068" && r["component"] == braces.1)
        .unwrap();
    assert_eq!(row["cvss_score"], 7.5);
    assert_eq!(row["severity"], "high");
    assert_eq!(row["exploitability"], "high");
    assert_eq!(row["risk"], "unacceptable");
    assert_eq!(row["state"], "in_triage");
    assert_eq!(row["confidence"], "high");

    // Devices in the field.
    env.ok(&[
        "device",
        "set-firmware",
        "urn:medsec:device:pump-x2:SN-1",
        "14.1.1",
    ]);
    let (_, err) = env.fail(&[
        "device",
        "set-firmware",
        "urn:medsec:device:pump-x2:SN-2",
        "99.0",
    ]);
    assert!(err.contains("not found"), "{err}");
    let a = env.json(&["vuln", "affected", "CVE-2024-4068"]);
    assert_eq!(a["count"], 1, "{a}");
    assert_eq!(a["devices"][0]["device"], "urn:medsec:device:pump-x2:SN-1");
    // Same answer by the GHSA id.
    assert_eq!(
        env.json(&["vuln", "affected", "GHSA-grv7-fg5c-xmjg"])["count"],
        1
    );
    let dev = env.json(&["device", "findings", "urn:medsec:device:pump-x2:SN-1"]);
    assert_eq!(dev["firmware"], "14.1.1");
    assert!(open_ids(&dev["open_findings"]).contains(&braces));

    // Triage, with clear refusals of bad input.
    let (_, err) = env.fail(&[
        "vuln",
        "triage",
        "--model",
        "pump-x2",
        "--version",
        "14.1.1",
        "--vuln",
        "CVE-2024-4068",
        "--state",
        "not_affected",
        "--reason",
        "x",
    ]);
    assert!(err.contains("--justification"), "{err}");
    let (_, err) = env.fail(&[
        "vuln",
        "triage",
        "--model",
        "pump-x2",
        "--version",
        "14.1.1",
        "--vuln",
        "CVE-1999-9999",
        "--state",
        "affected",
        "--reason",
        "x",
    ]);
    assert!(err.contains("not found"), "{err}");
    let d = env.json(&[
        "--actor",
        "user:analyst",
        "vuln",
        "triage",
        "--model",
        "pump-x2",
        "--version",
        "14.1.1",
        "--vuln",
        "GHSA-grv7-fg5c-xmjg",
        "--component",
        "pkg:npm/braces@2.3.2",
        "--state",
        "not_affected",
        "--justification",
        "vulnerable_code_not_in_execute_path",
        "--reason",
        "braces is only used by the build tooling, never on the device",
    ]);
    assert_eq!(d["vuln_id"], "CVE-2024-4068");
    assert_eq!(d["author"], "user:analyst");
    assert_eq!(env.json(&["vuln", "affected", "CVE-2024-4068"])["count"], 0);
    let open = env.json(&["vuln", "findings", "--model", "pump-x2"]);
    assert!(!open_ids(&open).contains(&braces));
    let all = env.json(&["vuln", "findings", "--model", "pump-x2", "--all"]);
    assert!(open_ids(&all).contains(&braces));

    // The decision survives re-import and re-match.
    env.ok(&["vuln", "import", "--osv", &data(NPM_DUMP)]);
    env.ok(&["vuln", "match"]);
    let all = env.json(&["vuln", "findings", "--model", "pump-x2", "--all"]);
    let row = all
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["vuln_id"] == "CVE-2024-4068" && r["component"] == braces.1)
        .unwrap();
    assert_eq!(row["state"], "not_affected");
    assert!(row["risk"].is_null());

    // VEX exports validate; CSAF also passes the BSI validator.
    for (fmt, kind) in [
        ("openvex", "openvex"),
        ("cyclonedx", "cyclonedx"),
        ("csaf", "csaf"),
    ] {
        let out = env.path(&format!("vex-{fmt}.json"));
        env.ok(&[
            "vex",
            "export",
            "--format",
            fmt,
            "--model",
            "pump-x2",
            "--version",
            "14.1.1",
            "--out",
            out.to_str().unwrap(),
        ]);
        validate_schema(kind, &out);
        if fmt == "csaf" {
            bsi_validate(&out);
        }
        if fmt == "openvex" {
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
            assert!(
                v["statements"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|s| s["vulnerability"]["name"] == "CVE-2024-4068"
                        && s["status"] == "not_affected"),
                "{v}"
            );
        }
    }
    let (_, err) = env.fail(&["vex", "export", "--format", "spdx"]);
    assert!(err.contains("invalid value"), "{err}");

    // Two firmware versions' SBOMs compared from the store.
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../store/tests/data/inventory");
    for (v, f) in [("2.0", "pump-2.0.cdx.json"), ("2.1", "pump-2.1.cdx.json")] {
        env.ok(&[
            "sbom",
            "import",
            "--model",
            "pump-x2",
            "--version",
            v,
            fixtures.join(f).to_str().unwrap(),
        ]);
    }
    let d = env.json(&["sbom", "diff", "--model", "pump-x2", "2.0", "2.1"]);
    let changed: Vec<(&str, &str, &str)> = d["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["component"].as_str().unwrap(),
                c["from"].as_str().unwrap(),
                c["to"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        changed.contains(&("pkg:npm/lodash", "4.17.20", "4.17.21")),
        "{d}"
    );
    let (_, err) = env.fail(&["sbom", "diff", "--model", "pump-x2", "2.0", "7.7"]);
    assert!(err.contains("not found"), "{err}");

    // Everything above is in the audit chain, intact.
    env.ok(&["audit", "verify"]);
}
