//! Post-market work through the CLI on real data: a vulnerability of fielded firmware newly
//! listed in KEV opens one incident; the incident is decided reportable, its clocks run and the
//! report is drafted; a CSAF security advisory is authored from the findings, revised from
//! draft to final and published as a provider directory that the CSAF schema, the BSI
//! validator and `sha256sum` accept.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Env, contains};
use serde_json::{Value, json};

fn data(p: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(p)
        .display()
        .to_string()
}

const JUICE: &str = "sbom/tests/data/cyclonedx/cdx-1.6-juice-shop-14.1.1-npm.json";
const NPM_DUMP: &str = "vuln/tests/data/osv-npm-all.zip";

fn kev(env: &Env, name: &str, cves: &[&str]) -> String {
    let v: Vec<Value> = cves
        .iter()
        .map(|c| {
            json!({"cveID": c, "dateAdded": "2026-11-01", "dueDate": "2026-11-22",
                        "knownRansomwareCampaignUse": "Unknown"})
        })
        .collect();
    let p = env.path(name);
    std::fs::write(
        &p,
        json!({"catalogVersion": name, "count": v.len(), "vulnerabilities": v}).to_string(),
    )
    .unwrap();
    p.display().to_string()
}

fn schemas() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../postmarket/tests")
}

fn schema_ok(kind: &str, file: &Path) {
    let o = Command::new("python3")
        .arg(schemas().join("validate_schema.py"))
        .arg(schemas().join("data/schemas"))
        .arg(kind)
        .arg(file)
        .output()
        .expect("python3 must be installed");
    assert!(
        o.status.success(),
        "{} is not valid {kind} (pip install jsonschema):\n{}",
        file.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn bsi_ok(file: &Path) {
    let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/csaf-validator");
    if !tool
        .join("node_modules/@secvisogram/csaf-validator-lib")
        .exists()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "the BSI validator is required in CI: npm ci --prefix tools/csaf-validator"
        );
        eprintln!("SKIPPED: npm ci --prefix tools/csaf-validator");
        return;
    }
    let o = Command::new("node")
        .arg(tool.join("validate.js"))
        .arg(file)
        .output()
        .expect("node must be installed");
    assert!(
        o.status.success(),
        "BSI validator rejected {}:\n{}{}",
        file.display(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn kev_incident_reportability_and_csaf_advisory() {
    let env = Env::new();
    env.init_ca("p256");
    env.issue("d1", "p256", "SN-1");
    env.issue("d2", "p256", "SN-2");
    for (v, eos) in [("14.1.1", "2028-02-01"), ("14.1.2", "2029-02-01")] {
        env.ok(&[
            "firmware",
            "add",
            "--model",
            "pump-x2",
            "--version",
            v,
            "--support",
            "supported",
            "--end-of-support",
            eos,
        ]);
    }
    env.ok(&[
        "sbom",
        "import",
        "--model",
        "pump-x2",
        "--version",
        "14.1.1",
        &data(JUICE),
    ]);
    env.ok(&[
        "vuln",
        "import",
        "--osv",
        &data(NPM_DUMP),
        "--kev",
        &kev(&env, "kev-1", &[]),
    ]);
    env.ok(&["vuln", "match"]);
    for d in ["SN-1", "SN-2"] {
        env.ok(&[
            "device",
            "set-firmware",
            &format!("urn:medsec:device:pump-x2:{d}"),
            "14.1.1",
        ]);
    }

    // The catalog now lists a CVE that the fielded firmware carries: one incident, both
    // devices, the CVE linked. The same catalog again changes nothing.
    let v = env.json(&[
        "vuln",
        "import",
        "--kev",
        &kev(&env, "kev-2", &["CVE-2024-4068", "CVE-1999-0001"]),
    ]);
    let inc = v["incidents"].as_array().unwrap();
    assert_eq!(inc.len(), 1, "{v}");
    assert_eq!(inc[0]["opened"], true);
    assert_eq!(inc[0]["rule"], "kev-listed-fielded");
    let id = inc[0]["incident"].as_str().unwrap().to_owned();
    let v = env.json(&[
        "vuln",
        "import",
        "--kev",
        &kev(&env, "kev-2", &["CVE-2024-4068", "CVE-1999-0001"]),
    ]);
    assert!(v["incidents"].as_array().unwrap().is_empty(), "{v}");
    let i = env.json(&["incident", "show", &id]);
    assert_eq!(i["devices"].as_object().unwrap().len(), 2, "{i}");
    assert!(
        i["vulnerabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("CVE-2024-4068")),
        "{i}"
    );
    assert_eq!(
        env.json(&["incident", "list", "--open"])["incidents"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Workflow: illegal moves are refused with a message; reportability starts the clocks.
    let (code, err) = env.fail(&["incident", "status", &id, "recovered"]);
    assert_eq!(code, 1);
    contains(&err, "illegal incident transition from new to recovered");
    env.ok(&["incident", "status", &id, "triage"]);
    env.ok(&["incident", "assign", &id, "user:psirt-lead"]);
    env.ok(&[
        "incident",
        "note",
        &id,
        "Customers advised to segment the pump network",
    ]);
    let (_, err) = env.fail(&["incident", "decide", &id, "--rationale", "x"]);
    contains(&err, "--obligation");
    let aware = (time::OffsetDateTime::now_utc() - time::Duration::days(40))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let i = env.json(&[
        "incident",
        "decide",
        &id,
        "--obligation",
        "fda-customer-notification",
        "--obligation",
        "fda-fix-validated",
        "--rationale",
        "uncontrolled risk: exploited in the wild",
        "--aware-at",
        &aware,
    ]);
    assert_eq!(i["clocks"].as_array().unwrap().len(), 2, "{i}");
    // Overdue clocks make `incident clocks` exit 4 so monitoring can alert on it.
    let o = env.run(&["--json", "incident", "clocks"]);
    assert_eq!(o.status.code(), Some(4));
    let c: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        c["overdue"][0]["obligation"], "fda-customer-notification",
        "{c}"
    );
    assert_eq!(c["running"][0]["obligation"], "fda-fix-validated", "{c}");
    env.ok(&[
        "incident",
        "met",
        &id,
        "fda-customer-notification",
        "--note",
        "customer letter sent",
    ]);
    let o = env.run(&["incident", "clocks"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let report = env.path("final.md");
    env.ok(&[
        "incident",
        "report",
        &id,
        "--kind",
        "final",
        "--consequences",
        "No patient harm reported",
        "--out",
        report.to_str().unwrap(),
    ]);
    let md = std::fs::read_to_string(&report).unwrap();
    for needle in [
        "Final mandatory problem report",
        "pump-x2",
        "14.1.1",
        "CVE-2024-4068",
        "urn:medsec:device:pump-x2:SN-2",
        "Customers advised to segment",
        "Consequences: No patient harm reported",
    ] {
        contains(&md, needle);
    }

    // A CSAF advisory from the findings: 14.1.1 affected, 14.1.2 the fix.
    let (_, err) = env.fail(&[
        "advisory",
        "create",
        "--id",
        "ACME-2026-0001",
        "--title",
        "t",
        "--model",
        "pump-x2",
        "--vuln",
        "CVE-0000-0000",
    ]);
    contains(&err, "no finding of pump-x2 names CVE-0000-0000");
    let a = env.json(&[
        "advisory",
        "create",
        "--id",
        "ACME-2026-0001",
        "--title",
        "Pump X2: vulnerable braces package in the service UI",
        "--model",
        "pump-x2",
        "--vuln",
        "CVE-2024-4068",
        "--fixed-in",
        "14.1.2",
        "--tlp",
        "white",
    ]);
    assert_eq!(a["document"]["category"], "csaf_security_advisory");
    assert_eq!(a["document"]["tracking"]["status"], "draft");
    let v0 = &a["vulnerabilities"][0];
    assert_eq!(v0["cve"], "CVE-2024-4068", "{v0}");
    assert_eq!(
        v0["product_status"]["known_affected"][0],
        "pkg:generic/pump-x2@14.1.1"
    );
    assert_eq!(
        v0["product_status"]["fixed"][0],
        "pkg:generic/pump-x2@14.1.2"
    );
    let (_, err) = env.fail(&[
        "advisory",
        "create",
        "--id",
        "ACME-2026-0001",
        "--title",
        "t",
        "--model",
        "pump-x2",
        "--vuln",
        "CVE-2024-4068",
    ]);
    contains(&err, "already exists");
    env.ok(&[
        "advisory",
        "revise",
        "ACME-2026-0001",
        "--summary",
        "Initial public release.",
        "--status",
        "final",
    ]);
    env.ok(&[
        "advisory",
        "create",
        "--id",
        "ACME-2026-0002",
        "--title",
        "Embargoed",
        "--model",
        "pump-x2",
        "--vuln",
        "CVE-2024-4068",
        "--status",
        "final",
    ]);
    // Without --fixed-in, the fix comes from the published releases: 14.1.2 is signed into the
    // TUF repository, 14.1.1 (affected) is not a release, so 14.1.2 is the fix.
    env.ok(&["tuf", "init"]);
    let fw = env.path("fw-14.1.2.bin");
    std::fs::write(&fw, b"pump firmware 14.1.2").unwrap();
    env.ok(&[
        "release",
        "publish",
        "--model",
        "pump-x2",
        "--version",
        "14.1.2",
        "--security-version",
        "3",
        fw.to_str().unwrap(),
    ]);
    let auto = env.json(&[
        "advisory",
        "create",
        "--id",
        "ACME-2026-0003",
        "--title",
        "Derived fix",
        "--model",
        "pump-x2",
        "--vuln",
        "CVE-2024-4068",
    ]);
    let v = &auto["vulnerabilities"][0];
    assert_eq!(
        v["product_status"]["fixed"][0], "pkg:generic/pump-x2@14.1.2",
        "{v}"
    );
    assert_eq!(v["remediations"][0]["category"], "vendor_fix", "{v}");
    let doc = env.path("adv.json");
    env.ok(&[
        "advisory",
        "show",
        "ACME-2026-0001",
        "--out",
        doc.to_str().unwrap(),
    ]);
    let d: Value = serde_json::from_slice(&std::fs::read(&doc).unwrap()).unwrap();
    assert_eq!(d["document"]["tracking"]["version"], "2");
    assert_eq!(
        d["document"]["tracking"]["revision_history"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    schema_ok("csaf", &doc);
    bsi_ok(&doc);

    // The provider directory: only the public, released advisory; hashes check out.
    let pubdir = env.path("pub");
    env.ok(&["advisory", "publish", "--out", pubdir.to_str().unwrap()]);
    let root = pubdir.join(".well-known/csaf");
    schema_ok("provider", &root.join("provider-metadata.json"));
    let index = std::fs::read_to_string(root.join("white/index.txt")).unwrap();
    assert_eq!(index.lines().count(), 1, "{index}");
    assert!(index.trim().ends_with("/acme-2026-0001.json"), "{index}");
    let rel = index.trim();
    let dir = root.join("white").join(rel).parent().unwrap().to_path_buf();
    for tool in ["sha256sum", "sha512sum"] {
        let ext = if tool == "sha256sum" {
            "sha256"
        } else {
            "sha512"
        };
        let o = Command::new(tool)
            .args(["--check", &format!("acme-2026-0001.json.{ext}")])
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    env.ok(&["audit", "verify"]);
}

#[test]
fn detection_rules_from_the_cli() {
    let env = Env::new();
    let rules = env.ok(&["events", "rules"]);
    let v: Value = serde_json::from_str(&rules).unwrap();
    assert!(v["rules"].as_array().unwrap().len() >= 7);
    let bad = env.path("bad.json");
    std::fs::write(
        &bad,
        rules.replacen("\"window_minutes\": 10", "\"window_minutes\": 0", 1),
    )
    .unwrap();
    let (code, err) = env.fail(&["events", "set-rules", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    contains(&err, "rules[0].condition.window_minutes");
    assert_eq!(
        env.ok(&["events", "rules"]),
        rules,
        "a bad file changes nothing"
    );
    let good = env.path("good.json");
    std::fs::write(&good, rules.replacen("\"count\": 5", "\"count\": 3", 1)).unwrap();
    let v = env.json(&["events", "set-rules", good.to_str().unwrap()]);
    assert_eq!(v["version"], 1);
    contains(&env.ok(&["events", "rules"]), "\"count\": 3");
    let (_, err) = env.fail(&["incident", "show", "INC-000009"]);
    contains(&err, "unknown incident INC-000009");
    let (_, err) = env.fail(&["cvd", "show", "CVD-123"]);
    contains(&err, "not CVD- followed by 26 base32");
}
