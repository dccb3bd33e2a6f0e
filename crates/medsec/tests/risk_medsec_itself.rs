//! medsec's own threat model (examples/medsec-itself) built with `medsec risk`: the built-in
//! rules plus the example's medsec rules generate the threats, the register traces every one
//! to a control or a review decision, every control names tests that exist in this workspace,
//! and the residual risks the policy finds unacceptable are exactly the open items of
//! examples/medsec-itself/README.md.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::Env;

const MODEL: &str = "medsec-platform";

fn repo(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(p)
}

fn strs(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn medsec_threat_model_builds_without_traceability_gaps() {
    let env = Env::new();
    let dir = repo("examples/medsec-itself");
    // The example's rules extend the built-in set, as a data directory that also holds device
    // models would do.
    let mut rules = env.ok(&["risk", "get", "rules"]);
    rules.push('\n');
    rules.push_str(&std::fs::read_to_string(dir.join("rules-medsec.toml")).unwrap());
    std::fs::write(env.path("rules.toml"), rules).unwrap();
    env.ok(&["risk", "set-rules", &env.p("rules.toml")]);
    let inv = dir.join("inventory.toml").display().to_string();
    env.ok(&["risk", "set-inventory", "--model", MODEL, &inv]);
    let reg = dir.join("register.toml").display().to_string();
    env.ok(&["risk", "set-register", "--model", MODEL, &reg]);

    let tm = env.json(&["risk", "threats", "--model", MODEL]);
    let threats = tm["threats"].as_array().unwrap();
    assert_eq!(threats.len(), 45, "threat count changed: update the README");
    let categories: BTreeSet<&str> = threats
        .iter()
        .map(|t| t["category"].as_str().unwrap())
        .collect();
    assert_eq!(
        categories.len(),
        6,
        "all six STRIDE categories: {categories:?}"
    );
    for id in [
        "T-key-theft-online-keys",
        "T-key-theft-root-keys",
        "T-store-tamper-server-database",
        "T-web-session-operator-dashboard",
        "T-dependency-compromise-medsec-server",
    ] {
        assert!(threats.iter().any(|t| t["id"] == id), "{id} not generated");
    }

    // No traceability gaps: every open threat has a control, every control a test and a
    // risk entry, every cited threat exists.
    let t = env.json(&["risk", "trace", "--model", MODEL]);
    for gap in [
        "threats_without_controls",
        "controls_without_tests",
        "unused_controls",
        "unknown_threats",
    ] {
        assert_eq!(strs(&t[gap]), Vec::<String>::new(), "{gap}");
    }
    // The only threat without a risk entry is one decided by review.
    let untraced: Vec<&str> = t["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["risks"].as_array().unwrap().is_empty())
        .map(|r| r["threat"].as_str().unwrap())
        .collect();
    assert_eq!(untraced, ["T-eavesdrop-device-plain"]);

    // The residual risks the default policy does not accept: the README's open items.
    let a = env.json(&["risk", "assess", "--model", MODEL]);
    let open: Vec<&str> = a
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["residual"]["acceptable"] == false)
        .map(|r| r["risk"].as_str().unwrap())
        .collect();
    assert_eq!(
        open,
        [
            "R-UPDATE-PATH",
            "R-ONLINE-KEYS",
            "R-ROOT-KEYS",
            "R-DEPENDENCIES"
        ]
    );
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    for id in &open {
        assert!(readme.contains(id), "README does not list {id}");
    }

    // The report builds in every format.
    for format in ["markdown", "html", "json", "text"] {
        let body = env.ok(&["risk", "report", "--model", MODEL, "--format", format]);
        assert!(body.contains("R-ROOT-KEYS"), "{format}");
    }
}

/// Every test a control cites (`<crate>:<path, '/' as '.'>:<function>`) is a function in that
/// file, so the register cannot point at a test that was renamed or deleted.
#[test]
fn every_cited_test_exists() {
    let reg: toml::Value = toml::from_str(
        &std::fs::read_to_string(repo("examples/medsec-itself/register.toml")).unwrap(),
    )
    .unwrap();
    let mut n = 0;
    for c in reg["control"].as_array().unwrap() {
        for t in c["tests"].as_array().unwrap() {
            let t = t.as_str().unwrap();
            let parts: Vec<&str> = t.split(':').collect();
            let [krate, path, func] = parts[..] else {
                panic!("{t}: not <crate>:<path>:<function>");
            };
            let file = repo(&format!("crates/{krate}/{}.rs", path.replace('.', "/")));
            let src = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{t}: {}: {e}", file.display()));
            assert!(
                src.contains(&format!("fn {func}(")),
                "{t}: no fn {func} in {}",
                file.display()
            );
            n += 1;
        }
    }
    assert!(n >= 30, "{n} test references");
}
