//! Dogfooding the supply chain (docs/supply-chain.md): medsec's own Cargo.lock made into a
//! CycloneDX SBOM by `medsec sbom from-cargo-lock`, validated by the published schema, checked
//! package by package against the lock, and matched by `medsec vuln scan` against the vendored
//! crates.io OSV records; the result must be what the document says.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn medsec(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_medsec"))
        .args(args)
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let o = medsec(args);
    assert!(
        o.status.success(),
        "medsec {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// The crates.io records of the test-data corpus (rustsec/advisory-db, osv branch).
fn osv_crates_io() -> String {
    root()
        .join("crates/vuln/tests/data/osv/crates.io")
        .display()
        .to_string()
}

fn validate_cyclonedx(file: &Path) {
    let tests = root().join("crates/vuln/tests");
    let o = Command::new("python3")
        .arg(tests.join("validate_schema.py"))
        .arg(tests.join("data/schemas"))
        .arg("cyclonedx")
        .arg(file)
        .output()
        .expect("python3 must be installed");
    assert!(
        o.status.success(),
        "medsec's own SBOM does not validate against CycloneDX 1.5 (pip install jsonschema):\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// (name, version, source) of every package in the lock, read independently of medsec-sbom.
fn locked(lock: &str) -> Vec<(String, String, Option<String>)> {
    let v: toml::Value = toml::from_str(lock).unwrap();
    v["package"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["version"].as_str().unwrap().to_owned(),
                p.get("source").and_then(|s| s.as_str()).map(str::to_owned),
            )
        })
        .collect()
}

fn scan(sbom: &Path) -> serde_json::Value {
    let out = ok(&[
        "--json",
        "vuln",
        "scan",
        "--sbom",
        sbom.to_str().unwrap(),
        "--osv",
        &osv_crates_io(),
    ]);
    serde_json::from_str(&out).unwrap()
}

/// (purl, advisory ids) of every finding.
fn findings(scan: &serde_json::Value) -> Vec<(String, Vec<String>)> {
    scan["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["purl"].as_str().unwrap().to_owned(),
                f["advisories"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn own_sbom_is_valid_complete_and_matches_the_documented_result() {
    let dir = tempfile::tempdir().unwrap();
    let lock_path = root().join("Cargo.lock");
    let lock = std::fs::read_to_string(&lock_path).unwrap();
    let out = dir.path().join("medsec.cdx.json");
    ok(&[
        "sbom",
        "from-cargo-lock",
        lock_path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--timestamp",
        "2026-08-31T00:00:00Z",
    ]);
    validate_cyclonedx(&out);
    let bom: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(bom["metadata"]["component"]["name"], "medsec");
    assert_eq!(bom["metadata"]["component"]["type"], "application");
    assert_eq!(
        bom["metadata"]["component"]["version"],
        env!("CARGO_PKG_VERSION")
    );

    // Every crates.io package is a component with its purl and the lock's checksum; every
    // workspace package is a component without purl; nothing else is.
    let comps = bom["components"].as_array().unwrap();
    let packages = locked(&lock);
    assert_eq!(comps.len(), packages.len());
    let mut registry = 0;
    for (name, version, source) in &packages {
        let c = comps
            .iter()
            .find(|c| c["name"] == name.as_str() && c["version"] == version.as_str())
            .unwrap_or_else(|| panic!("{name} {version} is not a component"));
        match source.as_deref() {
            Some("registry+https://github.com/rust-lang/crates.io-index") => {
                registry += 1;
                // The purl spec percent-encodes `+` (SemVer build metadata) in versions.
                let purl_version = version.replace('+', "%2B");
                assert_eq!(c["purl"], format!("pkg:cargo/{name}@{purl_version}"));
                assert_eq!(c["hashes"][0]["alg"], "SHA-256", "{name}");
            }
            None => assert!(c.get("purl").is_none(), "workspace {name} has a purl"),
            Some(other) => panic!("{name} comes from {other}; deny.toml allows crates.io only"),
        }
    }
    assert!(registry > 100, "{registry} registry packages");
    // The lock's graph is there, rooted at the application.
    let deps = bom["dependencies"].as_array().unwrap();
    assert_eq!(deps[0]["ref"], bom["metadata"]["component"]["bom-ref"]);
    assert!(
        deps[0]["dependsOn"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d == "workspace:medsec-core@0.1.0")
    );

    // Reproducible: the same lock and time give the same bytes (serial included).
    let again = dir.path().join("again.cdx.json");
    ok(&[
        "sbom",
        "from-cargo-lock",
        lock_path.to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
        "--timestamp",
        "2026-08-31T00:00:00Z",
    ]);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());

    // The documented result: no crates.io advisory of the corpus affects a locked version.
    let v = scan(&out);
    assert_eq!(
        v["advisories_loaded"], 106,
        "every vendored crates.io record read"
    );
    assert_eq!(
        v["unmatchable"],
        serde_json::json!([]),
        "every version read"
    );
    assert_eq!(
        findings(&v),
        Vec::<(String, Vec<String>)>::new(),
        "docs/supply-chain.md says no finding; triage any new one there"
    );
}

/// The same path finds what it should: the lock with tokio moved back to 1.38.1 matches
/// RUSTSEC-2025-0023 (fixed in 1.38.2), so an empty result above is not a blind matcher.
#[test]
fn a_vulnerable_version_in_the_lock_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).unwrap();
    let (name, version, _) = locked(&lock)
        .into_iter()
        .find(|(n, _, _)| n == "tokio")
        .expect("medsec locks tokio");
    let needle = format!("name = \"{name}\"\nversion = \"{version}\"");
    assert!(lock.contains(&needle));
    let old = lock.replace(&needle, "name = \"tokio\"\nversion = \"1.38.1\"");
    let lock_path = dir.path().join("Cargo.lock");
    std::fs::write(&lock_path, old).unwrap();
    let out = dir.path().join("old.cdx.json");
    ok(&[
        "sbom",
        "from-cargo-lock",
        lock_path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let f = findings(&scan(&out));
    assert_eq!(
        f,
        vec![(
            "pkg:cargo/tokio@1.38.1".to_owned(),
            vec!["RUSTSEC-2025-0023".to_owned()]
        )]
    );
}

#[test]
fn bad_lock_files_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("Cargo.lock");
    let run = |text: &str, extra: &[&str]| {
        std::fs::write(&bad, text).unwrap();
        let mut args = vec!["sbom", "from-cargo-lock", bad.to_str().unwrap()];
        args.extend_from_slice(extra);
        let o = medsec(&args);
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, err) = run("version = 4\n[[package]]\nname = \"x\"\n", &[]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("not a Cargo.lock") && err.contains("line"),
        "{err}"
    );
    let one = "version = 4\n[[package]]\nname = \"app\"\nversion = \"1.0.0\"\ndependencies = [\"gone\"]\n";
    let (code, err) = run(one, &[]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("package[0].dependencies[0]") && err.contains("gone"),
        "{err}"
    );
    let fine = "version = 4\n[[package]]\nname = \"app\"\nversion = \"1.0.0\"\n";
    let (code, err) = run(fine, &[]);
    assert_eq!(code, Some(1));
    assert!(err.contains("--product-version"), "{err}");
    let (code, err) = run(fine, &["--product", "app", "--timestamp", "yesterday"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("RFC 3339"), "{err}");
    let (code, _) = run(fine, &["--product", "app"]);
    assert_eq!(code, Some(0));
}
