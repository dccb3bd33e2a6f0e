//! CSAF security advisories checked by outside tools: the CSAF 2.0 and provider-metadata JSON
//! schemas (python-jsonschema, schemas vendored in tests/data/schemas), the BSI CSAF validator
//! (mandatory tests 6.1.x), FIRST's CVSS calculators, and `sha256sum`/`sha512sum` on the
//! directory distribution written to disk.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use medsec_postmarket::advisory::{
    Advisory, AdvisoryContent, AdvisoryId, AdvisoryStatus, CvssV3, ProviderBaseUrl, ProviderRole,
    Tlp, directory_files, provider_metadata,
};
use serde_json::{Value, json};
use time::macros::datetime;

const GENERATOR: &str = "0.1.0";

fn here() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

fn fixture(name: &str) -> AdvisoryContent {
    let path = here().join("data/csaf_advisory").join(name);
    serde_json::from_slice(&std::fs::read(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn base() -> ProviderBaseUrl {
    ProviderBaseUrl::parse("https://psirt.acme-medical.example").unwrap()
}

/// The advisory after each of its revisions: a TLP:AMBER draft shared with coordinators, a
/// WHITE draft once the fixed firmware is out, and the final public release.
fn stages() -> Vec<Advisory> {
    let mut a = Advisory::new(
        fixture("two_models_two_vulns.draft.json"),
        "Initial draft, shared with CISA for coordinated disclosure.",
        datetime!(2026-02-16 09:00 UTC),
        AdvisoryStatus::Draft,
    )
    .unwrap();
    let mut out = vec![a.clone()];
    a.revise_with(
        fixture("two_models_two_vulns.final.json"),
        "Fixed firmware X2 2.2.0 and X3 1.5.0 released; prepared for publication.",
        datetime!(2026-03-02 15:30 UTC),
        AdvisoryStatus::Draft,
    )
    .unwrap();
    out.push(a.clone());
    a.revise(
        "Initial public release.",
        datetime!(2026-03-03 08:00 UTC),
        AdvisoryStatus::Final,
    )
    .unwrap();
    out.push(a);
    out
}

fn final_advisory() -> Advisory {
    stages().pop().unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "medsec-csaf-advisory-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `Some(valid)` from python-jsonschema, or `None` when jsonschema is not installed outside CI.
fn schema_valid(kind: &str, doc: &Value, name: &str) -> Option<(bool, String)> {
    let f = temp_dir(&format!("schema-{name}")).join("doc.json");
    std::fs::write(&f, serde_json::to_vec_pretty(doc).unwrap()).unwrap();
    let o = Command::new("python3")
        .arg(here().join("validate_schema.py"))
        .arg(here().join("data/schemas"))
        .arg(kind)
        .arg(&f)
        .output()
        .expect("python3 must be installed");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    if err.contains("No module named") {
        if std::env::var_os("CI").is_some() {
            panic!("python jsonschema is required in CI: {err}");
        }
        eprintln!("SKIPPED: python jsonschema not installed (pip install jsonschema)");
        return None;
    }
    Some((o.status.success(), err))
}

#[test]
fn every_stage_validates_against_the_csaf_schema() {
    for (i, a) in stages().iter().enumerate() {
        let doc = a.to_csaf_at(GENERATOR, &base());
        let Some((ok, err)) = schema_valid("csaf", &doc, &format!("stage{i}")) else {
            return;
        };
        assert!(
            ok,
            "revision {} does not validate:\n{err}\n{}",
            a.version(),
            serde_json::to_string_pretty(&doc).unwrap()
        );
    }
    // The check can fail: an unknown severity and a missing revision history are rejected.
    let mut bad = final_advisory().to_csaf(GENERATOR);
    bad["vulnerabilities"][0]["scores"][0]["cvss_v3"]["baseSeverity"] = json!("SEVERE");
    bad["document"]["tracking"]
        .as_object_mut()
        .unwrap()
        .remove("revision_history");
    let (ok, err) = schema_valid("csaf", &bad, "broken").unwrap();
    assert!(!ok);
    assert!(err.contains("revision_history"), "{err}");
    assert!(err.contains("SEVERE"), "{err}");
}

#[test]
fn final_document_carries_status_remediations_scores_and_kev() {
    let a = final_advisory();
    assert_eq!(a.version(), "3");
    let d = a.to_csaf_at(GENERATOR, &base());
    let doc = &d["document"];
    assert_eq!(doc["category"], "csaf_security_advisory");
    assert_eq!(doc["distribution"]["tlp"]["label"], "WHITE");
    assert_eq!(doc["tracking"]["status"], "final");
    assert_eq!(doc["tracking"]["version"], "3");
    assert_eq!(
        doc["tracking"]["revision_history"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // First published with the final revision; drafts before it were not publication.
    assert_eq!(
        doc["tracking"]["initial_release_date"],
        "2026-03-03T08:00:00Z"
    );
    assert_eq!(
        doc["references"][0]["url"],
        "https://psirt.acme-medical.example/.well-known/csaf/white/2026/medsec-2026-0001.json"
    );

    let x2_old = "pkg:generic/infusion-x2@2.1.0";
    let x2_new = "pkg:generic/infusion-x2@2.2.0";
    let x3_old = "pkg:generic/infusion-x3@1.4.2";
    let x3_new = "pkg:generic/infusion-x3@1.5.0";
    let vulns = d["vulnerabilities"].as_array().unwrap();
    let creds = &vulns[0];
    assert_eq!(creds["cve"], "CVE-2026-21001");
    assert_eq!(creds["cwe"]["id"], "CWE-798");
    assert_eq!(creds["product_status"]["known_affected"], json!([x2_old]));
    // Fixed in a later release: 2.2.0 is listed as fixed and named by the vendor fix.
    assert_eq!(creds["product_status"]["fixed"], json!([x2_new]));
    assert_eq!(
        creds["product_status"]["known_not_affected"],
        json!([x3_old, x3_new])
    );
    let fix = &creds["remediations"][0];
    assert_eq!(fix["category"], "vendor_fix");
    assert_eq!(fix["product_ids"], json!([x2_old]));
    assert!(fix["details"].as_str().unwrap().contains("2.2.0"), "{fix}");
    assert_eq!(fix["url"], "https://acme-medical.example/security/firmware");
    let cvss = &creds["scores"][0]["cvss_v3"];
    assert_eq!(cvss["version"], "3.1");
    assert_eq!(cvss["baseScore"], json!(8.8));
    assert_eq!(cvss["baseSeverity"], "HIGH");
    assert_eq!(creds["scores"][0]["products"], json!([x2_old]));
    assert_eq!(creds["threats"][0]["category"], "impact");

    let kev = &vulns[1];
    assert!(kev.get("scores").is_none());
    assert_eq!(kev["ids"][0]["text"], "PSIRT-1187");
    let exploit = kev["threats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["category"] == "exploit_status")
        .expect("a KEV vulnerability carries an exploit_status threat");
    assert!(
        exploit["details"]
            .as_str()
            .unwrap()
            .contains("Known Exploited")
    );
    assert_eq!(exploit["product_ids"], json!([x2_old, x3_old]));
    assert_eq!(kev["product_status"]["fixed"], json!([x2_new, x3_new]));

    // Every known-affected product of every vulnerability has a vendor fix.
    for v in vulns {
        for p in v["product_status"]["known_affected"].as_array().unwrap() {
            assert!(
                v["remediations"].as_array().unwrap().iter().any(|r| {
                    r["category"] == "vendor_fix"
                        && r["product_ids"].as_array().unwrap().contains(p)
                }),
                "{p} has no vendor fix in {v}"
            );
        }
    }

    // The first draft had no fix for the credentials yet: none_available, not silence.
    let draft = stages()[0].to_csaf(GENERATOR);
    assert_eq!(draft["document"]["tracking"]["status"], "draft");
    assert_eq!(draft["document"]["distribution"]["tlp"]["label"], "AMBER");
    assert_eq!(
        draft["vulnerabilities"][0]["remediations"][0]["category"],
        "none_available"
    );
}

fn bsi_validator() -> Option<PathBuf> {
    let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/csaf-validator");
    if tool
        .join("node_modules/@secvisogram/csaf-validator-lib")
        .exists()
    {
        return Some(tool);
    }
    if std::env::var_os("CI").is_some() {
        panic!("the BSI validator is required in CI: npm ci --prefix tools/csaf-validator");
    }
    eprintln!(
        "SKIPPED: run `npm ci --prefix tools/csaf-validator` to install the BSI CSAF validator"
    );
    None
}

fn run_bsi(tool: &Path, doc: &Value, name: &str) -> Output {
    let f = temp_dir(&format!("bsi-{name}")).join("doc.json");
    std::fs::write(&f, serde_json::to_vec_pretty(doc).unwrap()).unwrap();
    Command::new("node")
        .arg(tool.join("validate.js"))
        .arg(&f)
        .output()
        .expect("node must be installed")
}

/// Every revision passes the BSI CSAF validator (secvisogram csaf-validator-lib): the strict
/// schema test and every mandatory test, among them 6.1.9 (CVSS scores recomputed), 6.1.11
/// (CWE names), 6.1.16-6.1.22 (versions and revision history) and the security advisory
/// profile tests 6.1.27.x.
#[test]
fn every_stage_passes_the_bsi_validator() {
    let Some(tool) = bsi_validator() else {
        return;
    };
    for (i, a) in stages().iter().enumerate() {
        let doc = a.to_csaf_at(GENERATOR, &base());
        let o = run_bsi(&tool, &doc, &format!("stage{i}"));
        assert!(
            o.status.success(),
            "BSI validator rejected revision {} ({}):\n{}{}",
            a.version(),
            a.status(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // And it does reject broken documents, so the checks above can fail.
    let good = final_advisory().to_csaf_at(GENERATOR, &base());
    let mut undefined = good.clone();
    undefined["vulnerabilities"][0]["product_status"]["known_affected"] =
        json!(["no-such-product"]);
    let mut wrong_score = good.clone();
    wrong_score["vulnerabilities"][0]["scores"][0]["cvss_v3"]["baseScore"] = json!(9.9);
    let mut draft_history = good;
    draft_history["document"]["tracking"]["revision_history"][0]["number"] = json!("0");
    for (name, bad, expect) in [
        ("undefined", undefined, "mandatoryTest_6_1_1 "),
        ("score", wrong_score, "mandatoryTest_6_1_9 "),
        ("history", draft_history, "mandatoryTest_6_1_18 "),
    ] {
        let o = run_bsi(&tool, &bad, name);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{name} must be rejected");
        assert!(err.contains(expect), "{name}: expected {expect} in\n{err}");
    }
}

/// The scores computed from the vector agree with FIRST's reference calculators for every
/// one of the 2 x 2592 CVSS v3.0/v3.1 base vectors.
#[test]
fn cvss_scores_match_first_reference_calculators() {
    let Some(tool) = bsi_validator() else {
        return;
    };
    let first = tool.join("node_modules/@secvisogram/csaf-validator-lib/lib/shared/first.js");
    let o = Command::new("node")
        .arg(here().join("cvss_reference.mjs"))
        .arg(first)
        .output()
        .expect("node must be installed");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    let mut n = 0;
    for line in out.lines() {
        let mut parts = line.split(' ');
        let (vector, score, severity) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let c = CvssV3::parse(vector).unwrap();
        assert_eq!(c.base_score(), score.parse::<f64>().unwrap(), "{vector}");
        assert_eq!(c.base_severity(), severity, "{vector}");
        n += 1;
    }
    assert_eq!(n, 2 * 4 * 2 * 3 * 2 * 2 * 3 * 3 * 3);
}

#[test]
fn provider_metadata_validates_and_matches_the_example_shape() {
    let publisher = final_advisory().content().publisher.clone();
    let m = provider_metadata(
        &publisher,
        &base(),
        datetime!(2026-03-03 08:05 UTC),
        ProviderRole::CsafProvider,
    )
    .unwrap();
    let example: Value = serde_json::from_slice(
        &std::fs::read(here().join("data/csaf_advisory/example-01-provider-metadata.json"))
            .unwrap(),
    )
    .unwrap();
    // The upstream example validates with the same setup, so a failure below is ours.
    let Some((ok, err)) = schema_valid("provider", &example, "example") else {
        return;
    };
    assert!(ok, "the OASIS example does not validate: {err}");
    let (ok, err) = schema_valid("provider", &m, "ours").unwrap();
    assert!(
        ok,
        "provider-metadata.json does not validate:\n{err}\n{m:#}"
    );

    // Same members as the example except the OpenPGP keys a trusted provider lists.
    let keys = |v: &Value| {
        v.as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<BTreeSet<_>>()
    };
    let mut expected = keys(&example);
    expected.remove("public_openpgp_keys");
    assert_eq!(keys(&m), expected);
    assert!(keys(&m["publisher"]).is_superset(&keys(&example["publisher"])));
    assert_eq!(
        m["canonical_url"],
        "https://psirt.acme-medical.example/.well-known/csaf/provider-metadata.json"
    );
    // The example uses ROLIE; we use the directory distribution.
    assert_eq!(
        m["distributions"],
        json!([{"directory_url": "https://psirt.acme-medical.example/.well-known/csaf/white/"}])
    );
    assert_eq!(m["role"], "csaf_provider");

    // The check can fail.
    let mut bad = m.clone();
    bad.as_object_mut().unwrap().remove("publisher");
    bad["canonical_url"] = json!("https://psirt.acme-medical.example/csaf.json");
    let (ok, err) = schema_valid("provider", &bad, "broken").unwrap();
    assert!(!ok);
    assert!(
        err.contains("publisher") && err.contains("provider-metadata"),
        "{err}"
    );
}

fn run_in(dir: &Path, program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

#[test]
fn directory_distribution_on_disk() {
    let mut published = Vec::new();
    for a in stages() {
        published.push(a.publish(GENERATOR, &base()));
    }
    // Another advisory, TLP:AMBER and final: must not reach the public folder.
    let mut amber = fixture("two_models_two_vulns.draft.json");
    amber.id = AdvisoryId::parse("MEDSEC-2026-0002").unwrap();
    assert_eq!(amber.tlp, Tlp::Amber);
    let amber = Advisory::new(
        amber,
        "Shared with coordinators only.",
        datetime!(2026-03-04 00:00 UTC),
        AdvisoryStatus::Final,
    )
    .unwrap();
    published.push(amber.publish(GENERATOR, &base()));
    // An older advisory from 2025, to see the year folders and the changes.csv order.
    let mut old = fixture("two_models_two_vulns.final.json");
    old.id = AdvisoryId::parse("MEDSEC-2025-0007").unwrap();
    old.vulnerabilities.truncate(1);
    let old = Advisory::new(
        old,
        "Initial public release.",
        datetime!(2025-11-20 10:00 UTC),
        AdvisoryStatus::Final,
    )
    .unwrap();
    published.push(old.publish(GENERATOR, &base()));

    let files = directory_files(&published).unwrap();
    let dir = temp_dir("directory");
    for (path, bytes) in &files {
        let f = dir.join(path);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, bytes).unwrap();
    }

    let index = std::fs::read_to_string(dir.join("index.txt")).unwrap();
    assert_eq!(
        index,
        "2025/medsec-2025-0007.json\n2026/medsec-2026-0001.json\n"
    );
    let changes = std::fs::read_to_string(dir.join("changes.csv")).unwrap();
    assert_eq!(
        changes,
        "\"2026/medsec-2026-0001.json\",\"2026-03-03T08:00:00Z\"\n\
         \"2025/medsec-2025-0007.json\",\"2025-11-20T10:00:00Z\"\n"
    );
    assert!(!files.iter().any(|(p, _)| p.contains("medsec-2026-0002")));

    for path in index.lines() {
        // The served document is the final one, its name derives from its id and its folder
        // from its initial release year.
        let doc: Value = serde_json::from_slice(&std::fs::read(dir.join(path)).unwrap()).unwrap();
        let tracking = &doc["document"]["tracking"];
        let id = AdvisoryId::parse(tracking["id"].as_str().unwrap()).unwrap();
        let (year, name) = path.split_once('/').unwrap();
        assert_eq!(name, id.file_name());
        assert!(
            tracking["initial_release_date"]
                .as_str()
                .unwrap()
                .starts_with(year)
        );
        assert_eq!(tracking["status"], "final");
        assert_eq!(doc["document"]["distribution"]["tlp"]["label"], "WHITE");

        // sha256sum/sha512sum accept the hash files as written, from the folder they sit in.
        let folder = dir.join(year);
        for tool in ["sha256sum", "sha512sum"] {
            let ext = &tool[..6];
            let o = run_in(
                &folder,
                tool,
                &["--check", "--strict", &format!("{name}.{ext}")],
            );
            assert!(
                o.status.success(),
                "{tool} --check {name}.{ext}: {}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
    // And they notice a changed byte.
    let served = dir.join("2026/medsec-2026-0001.json");
    let mut bytes = std::fs::read(&served).unwrap();
    bytes[10] ^= 0x01;
    std::fs::write(&served, bytes).unwrap();
    let o = run_in(
        &dir.join("2026"),
        "sha256sum",
        &["--check", "medsec-2026-0001.json.sha256"],
    );
    assert!(!o.status.success());
}

#[test]
fn authoring_state_survives_storage() {
    let a = final_advisory();
    let stored = serde_json::to_string(&a).unwrap();
    let back: Advisory = serde_json::from_str(&stored).unwrap();
    assert_eq!(back, a);
    assert_eq!(
        serde_json::to_vec(&back.to_csaf(GENERATOR)).unwrap(),
        serde_json::to_vec(&a.to_csaf(GENERATOR)).unwrap()
    );
}
