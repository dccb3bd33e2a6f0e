//! `medsec risk` on the shipped example model: inventory stored (a broken file stores nothing),
//! findings including end of support from the firmware registry, threats, the register rated,
//! signed off, and invalidated by a new policy; the report; a Threat Dragon import.

mod common;

use std::path::PathBuf;

use common::Env;

fn repo(p: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(p)
        .display()
        .to_string()
}

const MODEL: &str = "infusion-pump-x2";

#[test]
fn example_model_through_the_cli() {
    let env = Env::new();
    env.init_ca("p256");
    let inv = repo("examples/infusion-pump/inventory.toml");
    let v = env.json(&["risk", "set-inventory", "--model", MODEL, &inv]);
    assert_eq!(v["version"], 1);
    // A broken file names line and field and stores nothing.
    let (code, err) = env.fail(&[
        "risk",
        "set-inventory",
        "--model",
        MODEL,
        &repo("crates/risk/tests/data/dangling_endpoint_reference.toml"),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("line 26") && err.contains("link.to"), "{err}");
    let stored = env.ok(&["risk", "get", "inventory", "--model", MODEL]);
    assert_eq!(stored.trim(), std::fs::read_to_string(&inv).unwrap().trim());

    // A firmware version past its end of support makes connected links findings.
    env.ok(&[
        "firmware",
        "add",
        "--model",
        MODEL,
        "--version",
        "1.0",
        "--support",
        "unsupported",
        "--released",
        "2020-01-01",
        "--end-of-support",
        "2024-01-01",
    ]);
    let f = env.json(&["risk", "findings", "--model", MODEL]);
    let kinds: Vec<String> = f
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["kind"].as_str().unwrap_or_default().to_owned())
        .collect();
    for k in ["plaintext-link", "end-of-support"] {
        assert!(kinds.iter().any(|x| x == k), "{k} missing in {kinds:?}");
    }
    let t = env.json(&["risk", "threats", "--model", MODEL]);
    assert!(t["threats"].as_array().unwrap().len() >= 10, "{t}");

    env.ok(&[
        "risk",
        "set-register",
        "--model",
        MODEL,
        &repo("examples/infusion-pump/register.toml"),
    ]);
    env.ok(&[
        "--actor",
        "user:qa-lead",
        "risk",
        "signoff",
        "--model",
        MODEL,
        "--risk",
        "R-001",
    ]);
    let state = |a: &serde_json::Value| {
        a.as_array()
            .unwrap()
            .iter()
            .find(|x| x["risk"] == "R-001")
            .map(|x| x["sign_off"].to_string())
            .unwrap()
    };
    let a = env.json(&["risk", "assess", "--model", MODEL]);
    assert!(state(&a).to_lowercase().contains("valid"), "{a}");
    assert!(!state(&a).to_lowercase().contains("invalid"), "{a}");
    // A different acceptability matrix re-rates and invalidates the sign-off.
    let policy = env.ok(&["risk", "get", "policy"]);
    let stricter = env.path("stricter.toml");
    std::fs::write(
        &stricter,
        policy.replace("acceptable = true", "acceptable = false"),
    )
    .unwrap();
    env.ok(&["risk", "set-policy", stricter.to_str().unwrap()]);
    let b = env.json(&["risk", "assess", "--model", MODEL]);
    assert!(state(&b).to_lowercase().contains("invalid"), "{b}");
    assert_ne!(a, b, "the register is re-rated");
    let (_, err) = env.fail(&["risk", "signoff", "--model", MODEL, "--risk", "R-999"]);
    assert!(err.contains("R-999"), "{err}");

    let html = env.path("report.html");
    env.ok(&[
        "risk",
        "report",
        "--model",
        MODEL,
        "--format",
        "html",
        "--out",
        html.to_str().unwrap(),
    ]);
    let body = std::fs::read_to_string(&html).unwrap();
    assert!(body.contains("<table") && body.contains(MODEL), "{body}");
    let md = env.ok(&["risk", "report", "--model", MODEL]);
    assert!(md.contains("| "), "{md}");
    let tr = env.json(&["risk", "trace", "--model", MODEL]);
    assert!(tr.get("threats_without_controls").is_some(), "{tr}");

    let td = env.ok(&[
        "risk",
        "import-threat-dragon",
        "--model",
        "td-demo",
        "--store",
        &repo("crates/risk/tests/data/v2-threat-model.json"),
    ]);
    assert!(td.contains("[[endpoint]]"), "{td}");
    env.ok(&["risk", "threats", "--model", "td-demo"]);
    env.ok(&["audit", "verify"]);
}
